/* test_compiler.c — qplan compile / validate.
 *
 * Synthetic header-only Qwen2 models of several shapes are written with the GGUF writer into
 * the build folder; the compiler's plans for two tiny shapes are compared byte for byte with
 * checked-in goldens (tests/data/plans/; regenerate with QP_UPDATE_GOLDEN=1 and review the
 * diff); emit ▸ parse ▸ emit is identical; compiling twice gives identical bytes; every
 * fusion pass can be turned off and the plan still validates; corrupted plans are each caught
 * with their own message; bad inputs fail with no output file; every op a plan uses exists in
 * the op table and the CPU backend; 7B- and 72B-shaped models compile.
 */
#define _POSIX_C_SOURCE 200809L /* strdup, unlink */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qp_compile.h"
#include "qp_ggml.h"
#include "qp_gguf_write.h"
#include "qp_ops.h"
#include "qp_plan.h"

#include "check.h"

struct shape {
    const char *name;
    int64_t embd, layers, ff, heads, heads_kv, vocab, ctx;
    int32_t wtype;       /* projection weights */
    int32_t v_type_l0;   /* attn_v of layer 0 (a different type → multi-part qkv) */
    int32_t embd_type;
    bool tied;           /* no output.weight */
    int32_t out_type;
    bool tokens;         /* vocabulary as tokenizer.ggml.tokens (else qwen2.vocab_size) */
    const char *arch;
    const char *skip_tensor; /* leave this tensor out */
    int64_t bad_q_rows;  /* attn_q rows override (misshapen) when non-zero */
};

static void add_t(struct qp_gguf_writer *w, const char *name, int64_t ne0, int64_t ne1,
                  int32_t type, const struct shape *s) {
    if (s->skip_tensor && !strcmp(name, s->skip_tensor)) return;
    int64_t ne[2] = {ne0, ne1};
    if (!qp_gguf_writer_add_tensor(w, name, ne1 ? 2 : 1, ne, type)) {
        printf("FAIL: cannot add tensor %s\n", name);
        exit(1);
    }
}

static void model_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/test_compiler_%s.gguf", QP_BUILD_DIR, name);
}

static void write_model(const struct shape *s, char *path, size_t n) {
    model_path(path, n, s->name);
    struct qp_gguf_writer *w = qp_gguf_writer_new(3);
    int64_t hd = s->embd / s->heads, Q = s->heads * hd, KV = s->heads_kv * hd;
    qp_gguf_writer_add_str(w, "general.architecture", s->arch ? s->arch : "qwen2");
    qp_gguf_writer_add_str(w, "general.name", s->name);
    qp_gguf_writer_add_u32(w, "qwen2.context_length", (uint32_t)s->ctx);
    qp_gguf_writer_add_u32(w, "qwen2.embedding_length", (uint32_t)s->embd);
    qp_gguf_writer_add_u32(w, "qwen2.block_count", (uint32_t)s->layers);
    qp_gguf_writer_add_u32(w, "qwen2.feed_forward_length", (uint32_t)s->ff);
    qp_gguf_writer_add_u32(w, "qwen2.attention.head_count", (uint32_t)s->heads);
    qp_gguf_writer_add_u32(w, "qwen2.attention.head_count_kv", (uint32_t)s->heads_kv);
    qp_gguf_writer_add_f32(w, "qwen2.rope.freq_base", 1000000.0f);
    qp_gguf_writer_add_f32(w, "qwen2.attention.layer_norm_rms_epsilon", 1e-6f);
    if (s->tokens) {
        char **toks = calloc((size_t)s->vocab, sizeof *toks);
        for (int64_t i = 0; i < s->vocab; i++) {
            toks[i] = malloc(24);
            snprintf(toks[i], 24, "t%lld", (long long)i);
        }
        qp_gguf_writer_add_str_array(w, "tokenizer.ggml.tokens", (uint64_t)s->vocab,
                                     (const char *const *)toks);
        for (int64_t i = 0; i < s->vocab; i++) free(toks[i]);
        free(toks);
    } else {
        qp_gguf_writer_add_u32(w, "qwen2.vocab_size", (uint32_t)s->vocab);
    }
    add_t(w, "token_embd.weight", s->embd, s->vocab, s->embd_type, s);
    for (int64_t l = 0; l < s->layers; l++) {
        char nm[96];
#define T(sfx, a, b, t)                                                                        \
    do {                                                                                       \
        snprintf(nm, sizeof nm, "blk.%lld.%s", (long long)l, sfx);                             \
        add_t(w, nm, a, b, t, s);                                                              \
    } while (0)
        T("attn_norm.weight", s->embd, 0, QP_GGML_F32);
        T("attn_q.weight", s->embd, s->bad_q_rows ? s->bad_q_rows : Q, s->wtype);
        T("attn_k.weight", s->embd, KV, s->wtype);
        T("attn_v.weight", s->embd, KV, l == 0 ? s->v_type_l0 : s->wtype);
        T("attn_q.bias", Q, 0, QP_GGML_F32);
        T("attn_k.bias", KV, 0, QP_GGML_F32);
        T("attn_v.bias", KV, 0, QP_GGML_F32);
        T("attn_output.weight", Q, s->embd, s->wtype);
        T("ffn_norm.weight", s->embd, 0, QP_GGML_F32);
        T("ffn_gate.weight", s->embd, s->ff, s->wtype);
        T("ffn_up.weight", s->embd, s->ff, s->wtype);
        T("ffn_down.weight", s->ff, s->embd, s->wtype);
#undef T
    }
    add_t(w, "output_norm.weight", s->embd, 0, QP_GGML_F32, s);
    if (!s->tied) add_t(w, "output.weight", s->embd, s->vocab, s->out_type, s);
    struct qp_error err;
    if (qp_gguf_writer_write_path(w, path, NULL, NULL, true, &err) != QP_OK) {
        printf("FAIL: writing %s: %s\n", path, err.msg);
        exit(1);
    }
    qp_gguf_writer_free(w);
}

/* tiny-a: GQA, tied embeddings, layer 0's attn_v of another type (multi-part qkv). */
static const struct shape TINY_A = {"tiny-a", 64, 2, 128, 4, 2, 256, 512, QP_GGML_Q8_0,
                                    QP_GGML_Q5_0, QP_GGML_Q8_0, true, 0, true, NULL, NULL, 0};
/* tiny-b: no GQA, separate output head of K-quant type, F16 projections. */
static const struct shape TINY_B = {"tiny-b", 256, 3, 512, 4, 4, 320, 2048, QP_GGML_F16,
                                    QP_GGML_F16, QP_GGML_Q4_K, false, QP_GGML_Q6_K, true, NULL,
                                    NULL, 0};

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) n = 0;
    b[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return b;
}

static bool g_int8; /* compile_shape: qp_compile_options.int8_activations */

static struct qp_plan *compile_shape(const struct shape *s, unsigned disabled, int64_t ctx,
                                     int32_t kv_type, struct qp_compile_stats *stats) {
    char path[512];
    write_model(s, path, sizeof path);
    struct qp_error err;
    struct qp_gguf *g;
    if (qp_gguf_open(path, QP_GGUF_HEADER_ONLY, &g, &err) != QP_OK) {
        printf("FAIL: open %s: %s\n", path, err.msg);
        failures++;
        return NULL;
    }
    struct qp_compile_options o;
    qp_compile_options_default(&o);
    o.disabled = disabled;
    o.ctx = ctx;
    if (kv_type >= 0) o.kv_type = kv_type;
    o.int8_activations = g_int8;
    char fname[64];
    snprintf(fname, sizeof fname, "%s.gguf", s->name);
    o.file_name = fname;
    struct qp_plan *p = NULL;
    if (qp_compile(g, &o, &p, stats, &err) != QP_OK) {
        printf("FAIL: compile %s: %s\n", s->name, err.msg);
        failures++;
    } else if (qp_plan_check_model(p, g, &err) != QP_OK) {
        printf("FAIL: plan of %s does not match its model: %s\n", s->name, err.msg);
        failures++;
    }
    qp_gguf_close(g);
    return p;
}

static char *emit(const struct qp_plan *p) {
    char *t;
    size_t n;
    struct qp_error err;
    if (qp_plan_write_memory(p, &t, &n, &err) != QP_OK) {
        printf("FAIL: emit: %s\n", err.msg);
        failures++;
        return NULL;
    }
    return t;
}

static void test_golden(const struct shape *s) {
    struct qp_plan *p = compile_shape(s, 0, 0, -1, NULL);
    if (!p) return;
    char *text = emit(p);
    char golden[512];
    snprintf(golden, sizeof golden, "%s/plans/%s.yaml", QP_TEST_DATA, s->name);
    if (getenv("QP_UPDATE_GOLDEN")) {
        FILE *f = fopen(golden, "wb");
        fputs(text, f);
        fclose(f);
        printf("updated %s\n", golden);
    }
    char *want = slurp(golden, NULL);
    CHECK(want && !strcmp(want, text), "%s: plan differs from the golden %s (QP_UPDATE_GOLDEN=1 "
          "regenerates it; review the diff)", s->name, golden);
    /* emit ▸ parse ▸ emit */
    struct qp_plan *q;
    struct qp_error err;
    enum qp_status st = qp_plan_read_memory(text, strlen(text), "golden", &q, &err);
    CHECK(st == QP_OK, "%s: re-read: %s", s->name, err.msg);
    if (st == QP_OK) {
        CHECK(qp_plan_validate(q, &err) == QP_OK, "%s: re-read plan invalid: %s", s->name,
              err.msg);
        char *again = emit(q);
        CHECK(again && !strcmp(again, text), "%s: emit ▸ parse ▸ emit differs", s->name);
        free(again);
        qp_plan_free(q);
    }
    /* determinism: a second compile gives the same bytes */
    struct qp_plan *p2 = compile_shape(s, 0, 0, -1, NULL);
    char *text2 = p2 ? emit(p2) : NULL;
    CHECK(text2 && !strcmp(text, text2), "%s: two compiles differ", s->name);
    /* every op the plan uses is in the op table and the CPU backend */
    for (int32_t k = 0; k < p->n_programs; k++)
        for (int32_t i = 0; i < p->programs[k].n_nodes; i++) {
            const struct qp_plan_node *n = &p->programs[k].nodes[i];
            const struct qp_op_desc *d = qp_op_desc(n->op);
            CHECK(d && qp_op_find(d->name) == d, "op %d not in the op table", (int)n->op);
            CHECK(qp_cpu_ops[n->op] != NULL, "op %s has no CPU function", d ? d->name : "?");
            CHECK(qp_prologue_from_name(qp_prologue_name(n->prologue)) == (int)n->prologue &&
                      qp_epilogue_from_name(qp_epilogue_name(n->epilogue)) == (int)n->epilogue,
                  "prologue/epilogue names");
        }
    free(text2);
    qp_plan_free(p2);
    free(want);
    free(text);
    qp_plan_free(p);
}

static void test_fusions(void) {
    struct qp_compile_stats s;
    struct qp_plan *p = compile_shape(&TINY_A, 0, 0, -1, &s);
    if (!p) return;
    /* 2 layers: 2 norms each + the final one; one qkv, swiglu per layer; 2 residuals per layer */
    CHECK(s.fused[QP_PASS_FUSE_NORM] == 5, "fuse_norm %d", s.fused[QP_PASS_FUSE_NORM]);
    CHECK(s.fused[QP_PASS_FUSE_QKV] == 2, "fuse_qkv %d", s.fused[QP_PASS_FUSE_QKV]);
    CHECK(s.fused[QP_PASS_FUSE_SWIGLU] == 2, "fuse_swiglu %d", s.fused[QP_PASS_FUSE_SWIGLU]);
    CHECK(s.fused[QP_PASS_FUSE_RESIDUAL] == 4, "fuse_residual %d", s.fused[QP_PASS_FUSE_RESIDUAL]);
    CHECK(s.fused[QP_PASS_FUSE_LM_HEAD] == 1, "fuse_lm_head %d", s.fused[QP_PASS_FUSE_LM_HEAD]);
    /* embed + 5 per layer (qkv, attention, o, gate_up, down) + lm head + step */
    CHECK(p->n_programs >= 2 && p->programs[0].n_nodes == 1 + 5 * 2 + 2 &&
              p->programs[1].n_nodes == p->programs[0].n_nodes,
          "nodes %d %d", p->programs[0].n_nodes, p->n_programs > 1 ? p->programs[1].n_nodes : -1);
    CHECK(s.unfused_nodes == 1 + 16 * 2 + 4, "unfused %d", s.unfused_nodes);
    /* layer 0 qkv: 3 parts (v is Q5_0); layer 1: one stacked weight of 3 sources */
    int qkv = 0;
    for (int32_t i = 0; i < p->programs[0].n_nodes; i++) {
        const struct qp_plan_node *n = &p->programs[0].nodes[i];
        if (n->epilogue != QP_EPILOGUE_ROPE_KV) continue;
        struct qp_plan_part parts[QP_OP_MAX_PARTS];
        CHECK(qp_plan_node_parts(p, n, false, parts) == 3, "rope_kv parts");
        CHECK(n->n_weights == (qkv == 0 ? 3 : 1), "qkv layer %d: %d weights", qkv, n->n_weights);
        qkv++;
    }
    CHECK(qkv == 2, "qkv nodes %d", qkv);
    qp_plan_free(p);
    /* each pass off alone, and all off: still valid (compile validates), fewer fusions */
    for (int k = 0; k <= QP_PASS_COUNT; k++) {
        unsigned dis = k == QP_PASS_COUNT ? (1u << QP_PASS_COUNT) - 1 : 1u << k;
        p = compile_shape(&TINY_A, dis, 0, -1, &s);
        CHECK(p != NULL, "compile with passes 0x%x off", dis);
        for (int j = 0; j < QP_PASS_COUNT; j++)
            if (dis & (1u << j)) CHECK(s.fused[j] == 0, "pass %d off but fused", j);
        if (k == QP_PASS_COUNT && p) CHECK(p->programs[0].n_nodes == s.unfused_nodes, "no-fuse all");
        qp_plan_free(p);
    }
    /* kv f32 and a smaller ctx */
    p = compile_shape(&TINY_A, 0, 128, QP_GGML_F32, &s);
    CHECK(p && p->kv.type == QP_GGML_F32 && p->kv.ctx == 128 &&
              p->memory.kv_bytes == 2ull * 2 * 128 * 32 * 4, "f32 kv ctx 128");
    qp_plan_free(p);
}

/* --- corrupted plans: text edits of the tiny-a golden, each caught with its own message --- */
struct corrupt {
    const char *from, *to; /* first occurrence replaced (to NULL: delete the line) */
    const char *want;      /* substring of the message */
};

static char *replace_first(const char *text, const char *from, const char *to) {
    const char *at = strstr(text, from);
    if (!at) return NULL;
    size_t a = (size_t)(at - text), fl = strlen(from), tl = strlen(to);
    char *r = malloc(strlen(text) - fl + tl + 1);
    memcpy(r, text, a);
    memcpy(r + a, to, tl);
    strcpy(r + a + tl, at + fl);
    return r;
}

static void test_corrupt(void) {
    char golden[512];
    snprintf(golden, sizeof golden, "%s/plans/tiny-a.yaml", QP_TEST_DATA);
    char *text = slurp(golden, NULL);
    CHECK(text, "cannot read %s", golden);
    if (!text) return;
    static const struct corrupt cases[] = {
        {"- op: attention", "- op: attend", "unknown op 'attend'"},
        {"qplan: 3", "qplan: 4", "plan format version 4"},
        {"  alignment: 256", "  alignment: 128", "memory.alignment 128"},
        {"name: x, dtype: f32, shape: [512, 64], offset: ", "name: x, dtype: f32, shape: [512, 64], offset: 1", "not a multiple of the alignment"},
        {"header_hash: \"0x", "header_hash: \"0xz", "16 hex digits"},
        {"type: Q5_0", "type: Q4_0", "bytes"},
        {"shape: [128, 64], bytes: 8704", "shape: [64, 64], bytes: 8704", "bytes 8704 != rows * row bytes"},
        {"  type: f16", "  type: q8_0", "kv_cache.type: expected f16 or f32"},
        {"launch: {block: 128,", "launch: {block: 100,", "launch.block 100"},
        {"launch: {block: 128, rows_per_block: 0,", "launch: {block: 128, rows_per_block: -3,", "rows_per_block: -3 out of range"},
        {"rows_per_block: 0, split: 0, grid", "rows_per_block: 0, grid", "missing key 'split'"},
        {"capture: true", "capture: true\n    captured: yes", "unknown key 'captured'"},
        {"in: [x]", "in: [nowhere]", "no buffer named 'nowhere'"},
        {"weights: [token_embd.weight]", "weights: [token_embd.weights]", "no weight named 'token_embd.weights'"},
        {"step: {offset: 0, bytes: 8208}", "step: {offset: 0, bytes: 16}", "step.bytes 16"},
        {"k_offset: 8448", "k_offset: -8448", "negative value -8448"},
        {"  ctx: 512", "  ctx: 256", "kv_cache.ctx 256 != limits.max_ctx 512"},
        {"      epilogue: rope_kv", "      epilogue: swiglu", "swiglu needs 2 parts"},
        {"params: {n_head: 4, n_head_kv: 2, head_dim: 16, layer: 0}", "params: {n_head: 4, n_head_kv: 2, head_dim: 16, layer: 9}", "params.layer 9"},
        {"  capture: false", "  capture: true", "a captured program runs one chunk size"},
        {"tokens: [2, 8]", "tokens: [1, 8]", "both run chunks of 1 tokens"},
        {"tokens: [2, 8]", "tokens: [3, 8]", "no program runs a chunk of 2 tokens"},
        {"target: {backend: cuda, arch: sm_90", "target: {backend: cuda, arch: 90", "expected sm_<compute capability>"},
        {"      epilogue: residual", "      epilogue: none", "takes 1 input buffer(s)"},
    };
    int n_ok = 0;
    char *msgs[64] = {0};
    int n_msgs = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct corrupt *c = &cases[i];
        if (!c->want) continue;
        char *t = replace_first(text, c->from, c->to);
        CHECK(t, "case %zu: '%s' not found in the golden", i, c->from);
        if (!t) continue;
        struct qp_plan *p;
        struct qp_error err;
        enum qp_status st = qp_plan_read_memory(t, strlen(t), "corrupt.yaml", &p, &err);
        if (st == QP_OK) {
            st = qp_plan_validate(p, &err);
            qp_plan_free(p);
        }
        CHECK(st != QP_OK, "case %zu (%s → %s) not caught", i, c->from, c->to);
        if (st != QP_OK) {
            CHECK(strstr(err.msg, c->want), "case %zu: message '%s' lacks '%s'", i, err.msg,
                  c->want);
            CHECK(strncmp(err.msg, "corrupt.yaml:", 13) == 0, "case %zu: no file:line: %s", i,
                  err.msg);
            bool dup = false;
            for (int j = 0; j < n_msgs; j++) dup |= !strcmp(msgs[j], err.msg);
            CHECK(!dup, "case %zu: same message as another case: %s", i, err.msg);
            if (n_msgs < 64) msgs[n_msgs++] = strdup(err.msg);
            if (strstr(err.msg, c->want)) n_ok++;
        }
        free(t);
    }
    /* overlapping live buffers: put 'attn' on top of 'q' (both live at the attention node) */
    {
        struct qp_plan *p;
        struct qp_error err;
        qp_plan_read_memory(text, strlen(text), "corrupt.yaml", &p, &err);
        int32_t q = qp_plan_find_buffer(p, "q"), a = qp_plan_find_buffer(p, "attn");
        p->buffers[a].offset = p->buffers[q].offset;
        CHECK(qp_plan_validate(p, &err) != QP_OK && strstr(err.msg, "are both live here and overlap"),
              "overlapping live buffers not caught: %s", err.msg);
        n_ok++;
        /* buffer past the arena */
        p->buffers[a].offset = p->memory.arena_bytes;
        CHECK(qp_plan_validate(p, &err) != QP_OK && strstr(err.msg, "extends past the arena"),
              "buffer past arena not caught: %s", err.msg);
        n_ok++;
        qp_plan_free(p);
    }
    /* against the model: another model's plan, wrong type, missing tensor */
    {
        char pb[512];
        write_model(&TINY_B, pb, sizeof pb);
        struct qp_gguf *gb;
        struct qp_error err;
        struct qp_plan *p;
        qp_plan_read_memory(text, strlen(text), "corrupt.yaml", &p, &err);
        CHECK(qp_gguf_open(pb, QP_GGUF_HEADER_ONLY, &gb, &err) == QP_OK, "open: %s", err.msg);
        CHECK(qp_plan_check_model(p, gb, &err) != QP_OK && strstr(err.msg, "another file"),
              "other model not caught: %s", err.msg);
        qp_gguf_close(gb);
        n_ok++;
        struct shape s2 = TINY_A;
        s2.v_type_l0 = QP_GGML_Q8_0; /* same header otherwise: plan says Q5_0 */
        s2.name = "tiny-a-v8";
        write_model(&s2, pb, sizeof pb);
        qp_gguf_open(pb, QP_GGUF_HEADER_ONLY, &gb, &err);
        p->model.size = qp_gguf_file_size(gb);
        p->model.header_hash = qp_gguf_header_hash(gb);
        CHECK(qp_plan_check_model(p, gb, &err) != QP_OK && strstr(err.msg, "is Q8_0 in"),
              "wrong weight type not caught: %s", err.msg);
        qp_gguf_close(gb);
        n_ok++;
        qp_plan_free(p);
    }
    printf("corrupted plans caught: %d\n", n_ok);
    CHECK(n_ok >= 15, "only %d corrupted cases caught", n_ok);
    for (int j = 0; j < n_msgs; j++) free(msgs[j]);
    free(text);
}

/* --- bad inputs through the CLI: an error, a non-zero exit, no output file --- */
static void cli_fails(const struct shape *s, const char *args, const char *want) {
    char model[512], out[600], cmd[2048], log[600];
    write_model(s, model, sizeof model);
    snprintf(out, sizeof out, "%s/test_compiler_out_%s.yaml", QP_BUILD_DIR, s->name);
    snprintf(log, sizeof log, "%s/test_compiler_out_%s.log", QP_BUILD_DIR, s->name);
    unlink(out);
    snprintf(cmd, sizeof cmd, "%s/compiler/qplan compile --header-only %s -o %s %s 2>%s",
             QP_BUILD_DIR, model, out, args, log);
    int rc = system(cmd);
    struct stat st;
    CHECK(rc != 0, "%s %s: exit 0", s->name, args);
    CHECK(stat(out, &st) != 0, "%s %s: left an output file", s->name, args);
    char *msg = slurp(log, NULL);
    CHECK(msg && strstr(msg, want), "%s %s: message '%s' lacks '%s'", s->name, args,
          msg ? msg : "", want);
    free(msg);
    /* no temporary file left beside it either */
    snprintf(cmd, sizeof cmd, "ls %s/test_compiler_out_%s.yaml.tmp.* >/dev/null 2>&1",
             QP_BUILD_DIR, s->name);
    CHECK(system(cmd) != 0, "%s: temporary file left", s->name);
}

static void test_bad_inputs(void) {
    struct shape s = TINY_A;
    s.name = "bad-arch";
    s.arch = "llama";
    cli_fails(&s, "", "architecture 'llama' is not supported (supported: qwen2)");
    s = TINY_A;
    s.name = "bad-missing";
    s.skip_tensor = "blk.1.ffn_up.weight";
    cli_fails(&s, "", "tensor 'blk.1.ffn_up.weight' (FFN up) is missing");
    s = TINY_A;
    s.name = "bad-shape";
    s.bad_q_rows = 32;
    cli_fails(&s, "", "tensor 'blk.0.attn_q.weight' (query projection) has shape [64, 32, 1, 1]");
    s = TINY_A;
    s.name = "bad-heads";
    s.heads = 3; /* 64 % 3 */
    s.wtype = s.v_type_l0 = s.embd_type = QP_GGML_F16; /* rows of 63 fit no quant block */
    cli_fails(&s, "", "is not a multiple of head_count 3");
    s = TINY_A;
    s.name = "bad-ctx";
    cli_fails(&s, "--ctx 1024", "--ctx 1024 is outside 1..512");
    s.name = "bad-kv";
    cli_fails(&s, "--kv-type q8", "--kv-type 'q8'");
    s.name = "bad-pass";
    cli_fails(&s, "--no-fuse everything", "unknown pass");
    s.name = "bad-chunk";
    cli_fails(&s, "--chunk 4096", "--chunk 4096 is outside 1..512");
}

static void test_big_shapes(void) {
    /* Qwen2.5-7B and -72B shapes (header only; vocab from qwen2.vocab_size) */
    static const struct shape b7 = {"qwen7b-shape", 3584, 28, 18944, 28, 4, 152064, 32768,
                                    QP_GGML_Q4_K, QP_GGML_Q6_K, QP_GGML_Q4_K, false,
                                    QP_GGML_Q6_K, false, NULL, NULL, 0};
    /* 72B: FFN rows of 29568 are not a multiple of 256, so no K-quants (as in real files) */
    static const struct shape b72 = {"qwen72b-shape", 8192, 80, 29568, 64, 8, 152064, 32768,
                                     QP_GGML_Q4_0, QP_GGML_Q8_0, QP_GGML_Q4_0, false,
                                     QP_GGML_Q6_K, false, NULL, NULL, 0};
    const struct shape *ss[2] = {&b7, &b72};
    for (int i = 0; i < 2; i++) {
        struct qp_compile_stats st;
        struct qp_plan *p = compile_shape(ss[i], 0, 0, -1, &st);
        CHECK(p != NULL, "%s does not compile", ss[i]->name);
        if (!p) continue;
        CHECK(p->hparams.n_layer == ss[i]->layers && p->limits.max_ctx == 4096 &&
                  p->programs[0].n_nodes == 1 + 5 * (int)ss[i]->layers + 2,
              "%s: layers %lld ctx %lld nodes %d", ss[i]->name, (long long)p->hparams.n_layer,
              (long long)p->limits.max_ctx, p->programs[0].n_nodes);
        printf("%s: arena %.1f MiB (KV %.1f MiB), weights %.2f GiB, %d nodes per program\n",
               ss[i]->name, p->memory.arena_bytes / 1048576.0, p->memory.kv_bytes / 1048576.0,
               p->memory.weight_bytes / 1073741824.0, p->programs[0].n_nodes);
        qp_plan_free(p);
    }
}

/* --int8-activations: mmvq exactly where compiler/select.c's one_token_mmvq says, nowhere without
 * it. The 7B shape: every decode gate+up (18,944 x 3,584 Q4_K pairs, many waves of mmv_stream
 * blocks) and not its Q6_K LM head; tiny-a: its Q8_0 LM head (decode, and prefill's last row) and no
 * gate+up (one wave). */
static void test_int8_activations(void) {
    static const struct shape b7 = {"qwen7b-shape", 3584, 28, 18944, 28, 4, 152064, 32768,
                                    QP_GGML_Q4_K, QP_GGML_Q6_K, QP_GGML_Q4_K, false,
                                    QP_GGML_Q6_K, false, NULL, NULL, 0};
    const struct shape *ss[2] = {&b7, &TINY_A};
    for (int i = 0; i < 2; i++)
        for (int on = 0; on < 2; on++) {
            g_int8 = on;
            struct qp_compile_stats st;
            struct qp_plan *p = compile_shape(ss[i], 0, 0, -1, &st);
            g_int8 = false;
            if (!p) continue;
            int gate_up = 0, head = 0, other = 0;
            for (int32_t k = 0; k < p->n_programs; k++) {
                const struct qp_plan_program *g = &p->programs[k];
                for (int32_t j = 0; j < g->n_nodes; j++) {
                    const struct qp_plan_node *n = &g->nodes[j];
                    if (strcmp(n->kernel, "mmvq") != 0) continue;
                    const bool decode = strcmp(g->name, "decode") == 0;
                    if (decode && n->epilogue == QP_EPILOGUE_SWIGLU) gate_up++;
                    else if (n->epilogue == QP_EPILOGUE_ARGMAX) head++;
                    else other++;
                }
            }
            const int want_gu = on && i == 0 ? (int)ss[i]->layers : 0, want_head = on && i == 1 ? 3 : 0;
            CHECK(gate_up == want_gu && head == want_head && other == 0,
                  "%s%s: mmvq on %d gate+up nodes (want %d), %d LM heads (want %d), %d others (want 0)", ss[i]->name,
                  on ? " --int8-activations" : "", gate_up, want_gu, head, want_head, other);
            qp_plan_free(p);
        }
}

int main(void) {
    test_golden(&TINY_A);
    test_golden(&TINY_B);
    test_fusions();
    test_corrupt();
    test_bad_inputs();
    test_big_shapes();
    test_int8_activations();
    if (failures) {
        printf("%d failure(s)\n", failures);
        return 1;
    }
    printf("all compiler tests passed\n");
    return 0;
}
