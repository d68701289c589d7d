/* test_synth.c — the synthetic model generator (compiler/synth.c) and header extraction.
 *
 * Checks: (1) an --arch model reads back exactly: every metadata value and the tensor table
 * (names, shapes, types from the --types rules) as asked, the tiny vocabulary in GPT-2 byte
 * order; (2) determinism: the same seed gives the same bytes, another seed the same header and
 * other data; (3) values finite and spread as documented per role; (4) `qplan header` writes
 * exactly the source's header, and `qplan synth --like` (from the model or its header-only
 * copy) reproduces the source's header byte for byte and, with the source's seed, the whole
 * file; (5) --vocab copies a real vocabulary (when /work/shared/data has it); (6) bad --types
 * rules fail with a message naming the problem; (7) with --real (ctest test_synth_model, label
 * model): the same for the real default model's header, at its full size.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "qp_ggml.h"
#include "qp_gguf.h"
#include "qp_quant.h"
#include "qp_synth.h"

static int fails;
#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                        \
            printf(__VA_ARGS__);                                                               \
            printf("\n");                                                                      \
            fails++;                                                                           \
        }                                                                                      \
    } while (0)

static char dir[1024];

static const char *tmp_path(const char *name) {
    static char buf[8][1200];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

/* Runs `qplan synth` / `qplan header` with a space-separated argument string. */
static int run_cmd(int (*cmd)(int, char **), const char *args) {
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", args);
    char *argv[64];
    int argc = 0;
    for (char *t = strtok(buf, " "); t && argc < 63; t = strtok(NULL, " ")) argv[argc++] = t;
    argv[argc] = NULL;
    return cmd(argc, argv);
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc(len > 0 ? (size_t)len : 1);
    if (p && fread(p, 1, (size_t)len, f) != (size_t)len) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return p;
}

static int64_t get_int(const struct qp_gguf *g, const char *key) {
    int64_t v = -1;
    struct qp_error err;
    if (qp_gguf_get_int(g, key, 0, INT64_MAX, &v, &err) != QP_OK) printf("  (%s)\n", err.msg);
    return v;
}

/* The documented distribution of a tensor's values (qp_synth.h). */
static void expected_dist(const struct qp_gguf_tensor *t, double *mean, double *sd) {
    size_t n = strlen(t->name);
    *mean = 0;
    if (n > 11 && !strcmp(t->name + n - 11, "norm.weight")) {
        *mean = t->type == QP_GGML_F32 || t->type == QP_GGML_F16 || t->type == QP_GGML_BF16;
        *sd = 0.1;
    } else if (n > 5 && !strcmp(t->name + n - 5, ".bias")) {
        *sd = 0.1;
    } else if (!strcmp(t->name, "token_embd.weight") || !strcmp(t->name, "output.weight")) {
        *sd = fmin(1.0, fmax(0.05, 3.0 / sqrt((double)t->ne[0])));
    } else {
        *sd = 1.0 / sqrt((double)t->ne[0]);
    }
}

/* Every value finite; mean and standard deviation as documented. Tolerances: the sample sd of
 * N values is off by ~1/sqrt(2N) relative (3 of those allowed), and quantization changes the
 * spread a little (qp_quant_random_row promises ~10%; measured within 2% for every type), so
 * |sd/target - 1| <= 0.15 + 3/sqrt(2N): a wrong scale (a missing 1/sqrt(cols) is 8-16x here)
 * cannot pass. Mean within 0.1 sd + 4 sd/sqrt(N) (sampling). */
static double ratio_lo[QP_GGML_TYPE_COUNT], ratio_hi[QP_GGML_TYPE_COUNT];

static void check_values(const struct qp_gguf *g) {
    for (int64_t i = 0; i < qp_gguf_n_tensors(g); i++) {
        const struct qp_gguf_tensor *t = qp_gguf_tensor(g, i);
        float *v = malloc((size_t)t->n_elems * sizeof(float));
        if (!v) return;
        size_t rb;
        qp_ggml_row_bytes(t->type, t->ne[0], &rb);
        const int64_t rows = t->n_elems / t->ne[0];
        for (int64_t r = 0; r < rows; r++)
            qp_quant_dequant_row(t->type, (const char *)t->data + (size_t)r * rb,
                                 v + r * t->ne[0], t->ne[0]);
        double s = 0, s2 = 0;
        int64_t bad = 0;
        for (int64_t j = 0; j < t->n_elems; j++) {
            if (!isfinite(v[j])) bad++;
            s += v[j];
        }
        const double mean = s / (double)t->n_elems;
        for (int64_t j = 0; j < t->n_elems; j++) s2 += (v[j] - mean) * (v[j] - mean);
        const double sd = sqrt(s2 / (double)t->n_elems);
        double em, esd;
        expected_dist(t, &em, &esd);
        const double mean_tol = 0.1 * esd + 4 * esd / sqrt((double)t->n_elems);
        const double sd_tol = 0.15 + 3 / sqrt(2.0 * (double)t->n_elems);
        CHECK(bad == 0, "%s: %lld values not finite", t->name, (long long)bad);
        const double ratio = sd / esd;
        if (ratio_lo[t->type] == 0 || ratio < ratio_lo[t->type]) ratio_lo[t->type] = ratio;
        if (ratio > ratio_hi[t->type]) ratio_hi[t->type] = ratio;
        CHECK(fabs(sd / esd - 1) <= sd_tol, "%s (%s, %lld values): sd %.4g, expected %.4g +- %.0f%%",
              t->name, qp_ggml_type_name(t->type), (long long)t->n_elems, sd, esd, 100 * sd_tol);
        CHECK(fabs(mean - em) <= mean_tol, "%s (%s): mean %.4g, expected %.4g +- %.3g", t->name,
              qp_ggml_type_name(t->type), mean, em, mean_tol);
        free(v);
    }
}

/* (1) + (3): an --arch model. */
static void test_arch(void) {
    const char *a = tmp_path("synth-arch.gguf");
    char args[1024];
    snprintf(args, sizeof args, "synth --arch qwen2 --n-layer 2 --n-embd 96 --n-head 3 "
             "--n-head-kv 1 --n-ff 256 --n-vocab 300 --n-ctx 512 --types "
             "*=q5_0,attn_k=q4_0,attn_v=q5_1,attn_output=q4_1,ffn_down=q6_k,token_embd=bf16,"
             "blk.1.ffn_gate=f16,ffn_up=q8_0,output=tied --seed 5 -o %s", a);
    CHECK(run_cmd(qp_cmd_synth, args) == 0, "qplan %s", args);
    struct qp_gguf *g = NULL;
    struct qp_error err;
    if (qp_gguf_open(a, QP_GGUF_DEFAULT, &g, &err) != QP_OK) {
        CHECK(0, "%s", err.msg);
        return;
    }
    const char *s = NULL;
    CHECK(qp_gguf_get_str(g, "general.architecture", &s, &err) == QP_OK && !strcmp(s, "qwen2"),
          "architecture");
    CHECK(get_int(g, "qwen2.block_count") == 2, "block_count");
    CHECK(get_int(g, "qwen2.embedding_length") == 96, "embedding_length");
    CHECK(get_int(g, "qwen2.attention.head_count") == 3, "head_count");
    CHECK(get_int(g, "qwen2.attention.head_count_kv") == 1, "head_count_kv");
    CHECK(get_int(g, "qwen2.feed_forward_length") == 256, "feed_forward_length");
    CHECK(get_int(g, "qwen2.context_length") == 512, "context_length");
    double f = 0;
    CHECK(qp_gguf_get_float(g, "qwen2.rope.freq_base", &f, &err) == QP_OK && f == 1e6, "rope");
    CHECK(qp_gguf_get_float(g, "qwen2.attention.layer_norm_rms_epsilon", &f, &err) == QP_OK &&
          f == (double)1e-6f, "eps");

    /* Tensor table: token_embd, 12 per layer, output_norm; tied: no output.weight. */
    CHECK(qp_gguf_n_tensors(g) == 1 + 12 * 2 + 1, "n_tensors %lld", (long long)qp_gguf_n_tensors(g));
    static const struct { const char *name; int32_t type; int64_t ne0, ne1; } want[] = {
        {"token_embd.weight", QP_GGML_BF16, 96, 300},
        {"blk.0.attn_norm.weight", QP_GGML_F32, 96, 1},
        {"blk.0.attn_q.weight", QP_GGML_Q5_0, 96, 96},
        {"blk.0.attn_q.bias", QP_GGML_F32, 96, 1},
        {"blk.0.attn_k.weight", QP_GGML_Q4_0, 96, 32},
        {"blk.0.attn_k.bias", QP_GGML_F32, 32, 1},
        {"blk.0.attn_v.weight", QP_GGML_Q5_1, 96, 32},
        {"blk.0.attn_output.weight", QP_GGML_Q4_1, 96, 96},
        {"blk.0.ffn_gate.weight", QP_GGML_Q5_0, 96, 256},
        {"blk.1.ffn_gate.weight", QP_GGML_F16, 96, 256},
        {"blk.1.ffn_up.weight", QP_GGML_Q8_0, 96, 256},
        {"blk.1.ffn_down.weight", QP_GGML_Q6_K, 256, 96},
        {"output_norm.weight", QP_GGML_F32, 96, 1},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct qp_gguf_tensor *t = qp_gguf_find_tensor(g, want[i].name);
        CHECK(t && t->type == want[i].type && t->ne[0] == want[i].ne0 && t->ne[1] == want[i].ne1,
              "tensor %s: %s [%lld, %lld], expected %s [%lld, %lld]", want[i].name,
              t ? qp_ggml_type_name(t->type) : "missing", t ? (long long)t->ne[0] : 0,
              t ? (long long)t->ne[1] : 0, qp_ggml_type_name(want[i].type),
              (long long)want[i].ne0, (long long)want[i].ne1);
    }
    CHECK(!qp_gguf_find_tensor(g, "output.weight"), "output=tied still wrote output.weight");

    /* The tiny vocabulary: GPT-2 byte order, merges, control tokens, padding. */
    const struct qp_gguf_value *toks = NULL, *merges = NULL, *types = NULL;
    CHECK(qp_gguf_get_array(g, "tokenizer.ggml.tokens", QP_GGUF_STRING, &toks, &err) == QP_OK &&
          toks->arr.n == 300, "tokens");
    CHECK(qp_gguf_get_array(g, "tokenizer.ggml.merges", QP_GGUF_STRING, &merges, &err) == QP_OK &&
          merges->arr.n == 14, "merges");
    CHECK(qp_gguf_get_array(g, "tokenizer.ggml.token_type", QP_GGUF_I32, &types, &err) == QP_OK &&
          types->arr.n == 300, "token_type");
    CHECK(qp_gguf_get_str(g, "tokenizer.ggml.pre", &s, &err) == QP_OK && !strcmp(s, "qwen2"), "pre");
    if (toks && toks->arr.n == 300 && merges && merges->arr.n == 14 && types) {
        const struct qp_gguf_str *t = toks->arr.strs;
#define TOK_IS(i, lit) (t[i].len == sizeof(lit) - 1 && !memcmp(t[i].ptr, lit, sizeof(lit) - 1))
        CHECK(TOK_IS(0, "!"), "token 0 is '!' in GPT-2 byte order");
        CHECK(TOK_IS(188, "\xC4\x80"), "token 188 is byte 0 as U+0100");
        CHECK(TOK_IS(220, "\xC4\xA0"), "token 220 is the space as U+0120 (as in Qwen2)");
        CHECK(TOK_IS(256, "\xC4\xA0\xC4\xA0"), "token 256 is the first merge's result");
        CHECK(TOK_IS(270, "<|endoftext|>") && TOK_IS(271, "<|im_start|>") &&
              TOK_IS(272, "<|im_end|>"), "control tokens at 270..272");
        CHECK(TOK_IS(299, "[PAD299]"), "padding tokens");
        const struct qp_gguf_str *m = merges->arr.strs;
        CHECK(m[0].len == 5 && !memcmp(m[0].ptr, "\xC4\xA0 \xC4\xA0", 5), "merge 0 'Ġ Ġ'");
        CHECK(qp_gguf_arr_int(types, 0) == 1 && qp_gguf_arr_int(types, 270) == 3 &&
              qp_gguf_arr_int(types, 299) == 5, "token types normal/control/unused");
        CHECK(get_int(g, "tokenizer.ggml.eos_token_id") == 272, "eos is <|im_end|>");
#undef TOK_IS
    }
    check_values(g);
    qp_gguf_close(g);
}

/* (2) + (4): determinism, header extraction and --like. */
static void test_like(void) {
    const char *a = tmp_path("like-src.gguf"), *b = tmp_path("like-same.gguf"),
               *c = tmp_path("like-other.gguf"), *h = tmp_path("like-header.gguf"),
               *d = tmp_path("like-from-header.gguf");
    char args[1024];
    const char *shape = "synth --arch qwen2 --n-layer 1 --n-embd 256 --n-head 4 --n-head-kv 2 "
                        "--n-ff 512 --n-vocab 273 --types *=q4_k,ffn_up=q2_k,attn_v=q3_k,"
                        "attn_output=q5_k,ffn_down=q6_k,output=q4_0";
    snprintf(args, sizeof args, "%s --seed 42 -o %s", shape, a);
    CHECK(run_cmd(qp_cmd_synth, args) == 0, "qplan %s", args);
    snprintf(args, sizeof args, "%s --seed 42 -o %s", shape, b);
    CHECK(run_cmd(qp_cmd_synth, args) == 0, "qplan %s", args);
    snprintf(args, sizeof args, "%s --seed 43 -o %s", shape, c);
    CHECK(run_cmd(qp_cmd_synth, args) == 0, "qplan %s", args);
    snprintf(args, sizeof args, "header %s -o %s", a, h);
    CHECK(run_cmd(qp_cmd_header, args) == 0, "qplan %s", args);
    snprintf(args, sizeof args, "synth --like %s --seed 42 -o %s", h, d);
    CHECK(run_cmd(qp_cmd_synth, args) == 0, "qplan %s", args);

    size_t na, nb, nc, nh, nd;
    unsigned char *pa = slurp(a, &na), *pb = slurp(b, &nb), *pc = slurp(c, &nc),
                  *ph = slurp(h, &nh), *pd = slurp(d, &nd);
    struct qp_gguf *g = NULL, *gh = NULL;
    struct qp_error err;
    if (!pa || !pb || !pc || !ph || !pd || qp_gguf_open(a, QP_GGUF_DEFAULT, &g, &err) != QP_OK) {
        CHECK(0, "files missing or unreadable");
        goto done;
    }
    const size_t hb = qp_gguf_header_bytes(g);
    CHECK(na == nb && !memcmp(pa, pb, na), "same seed, different bytes");
    CHECK(na == nc && !memcmp(pa, pc, hb), "another seed changed the header");
    CHECK(na == nc && memcmp(pa + hb, pc + hb, na - hb) != 0, "another seed, same data");
    size_t same = 0;
    for (size_t i = hb; i < na && i < nc; i++) same += pa[i] == pc[i];
    CHECK(same < (na - hb) / 2, "seeds 42 and 43 share %zu of %zu data bytes", same, na - hb);
    CHECK(nh == hb && !memcmp(pa, ph, hb), "qplan header: %zu bytes, not the source's %zu-byte "
          "header", nh, hb);
    CHECK(qp_gguf_open(h, QP_GGUF_HEADER_ONLY, &gh, &err) == QP_OK &&
              qp_gguf_n_tensors(gh) == qp_gguf_n_tensors(g) &&
              qp_gguf_header_hash(gh) == qp_gguf_header_hash(g),
          "the header file does not read back as the source's header");
    CHECK(nd == na && !memcmp(pa, pd, na), "synth --like HEADER with the source's seed is not "
          "the source, byte for byte");
    check_values(g);
done:
    qp_gguf_close(gh);
    qp_gguf_close(g);
    free(pa);
    free(pb);
    free(pc);
    free(ph);
    free(pd);
    remove(a);
    remove(b);
    remove(c);
    remove(h);
    remove(d);
}

/* (5): a real vocabulary copied. */
static void test_vocab(void) {
    const char *vocab = QP_SHARED_DATA "/qwen2-vocab.gguf";
    FILE *f = fopen(vocab, "rb");
    if (!f) {
        printf("note: %s absent: --vocab not checked here\n", vocab);
        return;
    }
    fclose(f);
    const char *a = tmp_path("vocab.gguf");
    char args[1200];
    snprintf(args, sizeof args, "synth --arch qwen2 --n-layer 1 --n-embd 64 --n-head 2 "
             "--n-head-kv 1 --n-ff 64 --vocab %s --types token_embd=q4_0,output=tied -o %s",
             vocab, a);
    CHECK(run_cmd(qp_cmd_synth, args) == 0, "qplan %s", args);
    struct qp_gguf *g = NULL, *v = NULL;
    struct qp_error err;
    if (qp_gguf_open(a, QP_GGUF_DEFAULT, &g, &err) != QP_OK ||
        qp_gguf_open(vocab, QP_GGUF_HEADER_ONLY, &v, &err) != QP_OK) {
        CHECK(0, "%s", err.msg);
    } else {
        int copied = 0;
        for (int64_t i = 0; i < qp_gguf_n_kv(v); i++) {
            const struct qp_gguf_kv *kv = qp_gguf_kv(v, i);
            if (strncmp(kv->key, "tokenizer.", 10)) continue;
            const struct qp_gguf_kv *o = qp_gguf_find(g, kv->key);
            CHECK(o && o->value.type == kv->value.type, "key %s not copied", kv->key);
            copied++;
        }
        const struct qp_gguf_value *tv = NULL, *tg = NULL;
        qp_gguf_get_array(v, "tokenizer.ggml.tokens", QP_GGUF_STRING, &tv, &err);
        qp_gguf_get_array(g, "tokenizer.ggml.tokens", QP_GGUF_STRING, &tg, &err);
        CHECK(tv && tg && tv->arr.n == tg->arr.n, "token count");
        if (tv && tg && tv->arr.n == tg->arr.n) {
            uint64_t diff = 0;
            for (uint64_t i = 0; i < tv->arr.n; i++)
                diff += tv->arr.strs[i].len != tg->arr.strs[i].len ||
                        memcmp(tv->arr.strs[i].ptr, tg->arr.strs[i].ptr, tv->arr.strs[i].len);
            CHECK(diff == 0, "%llu tokens differ", (unsigned long long)diff);
            const struct qp_gguf_tensor *te = qp_gguf_find_tensor(g, "token_embd.weight");
            CHECK(te && (uint64_t)te->ne[1] == tv->arr.n, "token_embd rows = vocabulary size");
        }
        printf("--vocab: %d tokenizer keys copied, %llu tokens\n", copied,
               tv ? (unsigned long long)tv->arr.n : 0ull);
    }
    qp_gguf_close(g);
    qp_gguf_close(v);
    remove(a);
}

/* (6): bad parameters fail with a message naming the problem, and leave no file. */
static void test_errors(void) {
    const char *a = tmp_path("bad.gguf");
    struct qp_synth_arch p = {.n_layer = 1, .n_embd = 64, .n_head = 4, .n_head_kv = 2,
                              .n_ff = 128, .n_vocab = 300};
    struct qp_error err = {{0}};
    static const struct { const char *types, *msg_part; } cases[] = {
        {"attn_q=q4_k", "blk.0.attn_q.weight"},  /* rows of 64: not a multiple of 256 */
        {"ffn_up=q9_9", "unknown type"},
        {"attn_q=tied", "only output"},
        {"attn_q", "RULE=TYPE"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        p.types = cases[i].types;
        err.msg[0] = 0;
        enum qp_status s = qp_synth_write_arch(&p, 1, a, &err);
        CHECK(s == QP_ERR_INVALID && strstr(err.msg, cases[i].msg_part),
              "--types %s: status %d, message '%s'", cases[i].types, (int)s, err.msg);
        FILE *f = fopen(a, "rb");
        CHECK(!f, "--types %s: a failed write left %s", cases[i].types, a);
        if (f) fclose(f);
    }
    p.types = NULL;
    p.n_vocab = 100;
    CHECK(qp_synth_write_arch(&p, 1, a, &err) == QP_ERR_INVALID && strstr(err.msg, "below"),
          "tiny vocabulary below its minimum: '%s'", err.msg);
    p.n_vocab = 300;
    p.n_head = 3;
    CHECK(qp_synth_write_arch(&p, 1, a, &err) == QP_ERR_INVALID && strstr(err.msg, "heads"),
          "64 not divisible by 3 heads: '%s'", err.msg);
    CHECK(qp_synth_write_like(tmp_path("does-not-exist.gguf"), 1, a, &err) == QP_ERR_IO,
          "--like a missing file: '%s'", err.msg);
}

/* (7) With --real (label model): the default model's header extracted and a same-shaped
 * synthetic model made from it: header byte for byte the real one, same size, sane values. */
static int test_real(void) {
    char model[2048];
    const char *env = getenv("QP_MODEL"), *home = getenv("HOME");
    if (env && *env)
        snprintf(model, sizeof model, "%s", env);
    else
        snprintf(model, sizeof model, "%s/.cache/qplan/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                 home ? home : "");
    FILE *f = fopen(model, "rb");
    if (!f) {
        printf("skip: no model at %s (scripts/fetch-model.sh fetches it; or set QP_MODEL)\n",
               model);
        return 77;
    }
    fclose(f);
    const char *h = tmp_path("real-header.gguf"), *s = tmp_path("real-synth.gguf");
    char args[4200];
    snprintf(args, sizeof args, "header %s -o %s", model, h);
    CHECK(run_cmd(qp_cmd_header, args) == 0, "qplan %s", args);
    snprintf(args, sizeof args, "synth --like %s --seed 3 -o %s", h, s);
    CHECK(run_cmd(qp_cmd_synth, args) == 0, "qplan %s", args);
    struct qp_gguf *gm = NULL, *gh = NULL, *gs = NULL;
    struct qp_error err;
    if (qp_gguf_open(model, QP_GGUF_DEFAULT, &gm, &err) != QP_OK ||
        qp_gguf_open(h, QP_GGUF_HEADER_ONLY, &gh, &err) != QP_OK ||
        qp_gguf_open(s, QP_GGUF_DEFAULT, &gs, &err) != QP_OK) {
        CHECK(0, "%s", err.msg);
    } else {
        const size_t hb = qp_gguf_header_bytes(gm);
        CHECK(qp_gguf_header_bytes(gh) == hb && qp_gguf_header_bytes(gs) == hb &&
                  !memcmp(qp_gguf_bytes(gh), qp_gguf_bytes(gm), hb) &&
                  !memcmp(qp_gguf_bytes(gs), qp_gguf_bytes(gm), hb),
              "header or synthetic model's header differs from %s's", model);
        CHECK(qp_gguf_file_size(gs) == qp_gguf_file_size(gm), "size %zu, the model's %zu",
              qp_gguf_file_size(gs), qp_gguf_file_size(gm));
        printf("real model: header %zu bytes (file %zu), synthetic copy %zu bytes, %lld tensors\n",
               hb, qp_gguf_file_size(gh), qp_gguf_file_size(gs), (long long)qp_gguf_n_tensors(gs));
        check_values(gs);
    }
    qp_gguf_close(gm);
    qp_gguf_close(gh);
    qp_gguf_close(gs);
    remove(h);
    remove(s);
    return fails ? 1 : 0;
}

int main(int argc, char **argv) {
    snprintf(dir, sizeof dir, "%s/tests", QP_BUILD_DIR);
    if (argc > 1 && !strcmp(argv[1], "--real")) {
        int rc = test_real();
        if (rc != 77) printf("%s: %d failures\n", fails ? "FAIL" : "ok", fails);
        return rc;
    }
    test_arch();
    test_like();
    test_vocab();
    test_errors();
    printf("measured sd / target sd per type:");
    for (int t = 0; t < QP_GGML_TYPE_COUNT; t++)
        if (ratio_hi[t] > 0) printf(" %s %.3f..%.3f", qp_ggml_type_name(t), ratio_lo[t], ratio_hi[t]);
    printf("\n");
    printf("%s: %d failures\n", fails ? "FAIL" : "ok", fails);
    return fails ? 1 : 0;
}
