/* synth.c — synthetic models (qp_synth.h): a GGUF writer session whose tensor table comes
 * from a real model's header or from Qwen2 shape parameters, and whose data is generated one
 * tensor at a time from a per-tensor deterministic random stream.
 *
 * Owns: the tiny byte-level vocabulary, the --types rules, the per-role value distributions.
 * Does not own: the file format (gguf.c reads, gguf_write.c writes), random quant blocks
 * (kernels/cpu: qp_quant_random_row). Invariant: the bytes written depend only on the seed
 * and the tensor table (no libm, no host-dependent arithmetic; see qp_synth.h).
 */
#include "qp_synth.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "qp_ggml.h"
#include "qp_gguf.h"
#include "qp_gguf_write.h"
#include "qp_quant.h"
#include "qp_rng.h"

/* One tensor to generate (file order). */
struct syn_tensor {
    char name[64];
    uint32_t n_dims;
    int64_t ne[4];
    int32_t type;
};

struct syn_model {
    struct syn_tensor *t; /* [n] */
    int64_t n, cap;
    uint64_t seed;
    float *vals;          /* [max row length] scratch for F32/F16/BF16 rows */
    int64_t vals_n;
};

static bool syn_push(struct syn_model *m, const char *name, uint32_t n_dims, const int64_t *ne,
                     int32_t type) {
    if (m->n == m->cap) {
        int64_t cap = m->cap ? m->cap * 2 : 64;
        struct syn_tensor *p = realloc(m->t, (size_t)cap * sizeof(*p));
        if (!p) return false;
        m->t = p;
        m->cap = cap;
    }
    struct syn_tensor *t = &m->t[m->n++];
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = n_dims;
    for (int d = 0; d < 4; d++) t->ne[d] = d < (int)n_dims ? ne[d] : 1;
    t->type = type;
    return true;
}

/* ---- value distributions ---- */

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !memcmp(s + n - k, suffix, k);
}

/* Mean and standard deviation of a tensor's values by its role (see qp_synth.h). */
static void syn_dist(const struct syn_tensor *t, float *mean, float *sd) {
    const float cols = (float)t->ne[0];
    *mean = 0.0f;
    if (ends_with(t->name, "norm.weight")) {
        *mean = 1.0f;
        *sd = 0.1f;
    } else if (ends_with(t->name, ".bias")) {
        *sd = 0.1f;
    } else if (!strcmp(t->name, "token_embd.weight") || !strcmp(t->name, "output.weight")) {
        /* logits = E . x with |x| ~ sqrt(cols) after the norm: sd 3/sqrt(cols) gives logits
         * of sd ~3, i.e. O(1..10). */
        *sd = 3.0f / sqrtf(cols);
        if (*sd < 0.05f) *sd = 0.05f;
        if (*sd > 1.0f) *sd = 1.0f;
    } else {
        *sd = 1.0f / sqrtf(cols); /* keeps a matvec's output at the input's scale */
    }
}

/* An approximately normal value (Irwin-Hall, 4 uniforms): exact IEEE single arithmetic. */
static float syn_gauss(uint64_t *st) {
    /* One call per statement: the order in which a + b's operands are evaluated is
     * unspecified in C, so two draws in one expression could differ between compilers. */
    float s = qp_rng_uniform(st);
    s += qp_rng_uniform(st);
    s += qp_rng_uniform(st);
    s += qp_rng_uniform(st);
    return (s - 2.0f) * 1.7320508f; /* variance 4/12 scaled to 1 */
}

/* The random stream of tensor i: a splitmix64 state derived from (seed, i). */
static uint64_t syn_stream(uint64_t seed, int64_t i) {
    uint64_t st = seed ^ (0xD1B54A32D192ED03ull * (uint64_t)(i + 1));
    return qp_rng_next(&st);
}

static bool syn_fill(void *ctx, int64_t i, void *buf, size_t bytes, struct qp_error *err) {
    struct syn_model *m = ctx;
    const struct syn_tensor *t = &m->t[i];
    const int64_t cols = t->ne[0];
    size_t row_bytes;
    if (!qp_ggml_row_bytes(t->type, cols, &row_bytes) || row_bytes == 0 || bytes % row_bytes) {
        qp_error_set(err, QP_ERR_INVALID, "synth: tensor '%s': bad row size for %s", t->name,
                     qp_ggml_type_name(t->type));
        return false;
    }
    const size_t rows = bytes / row_bytes;
    float mean, sd;
    syn_dist(t, &mean, &sd);
    uint64_t st = syn_stream(m->seed, i);
    const bool scalar = t->type == QP_GGML_F32 || t->type == QP_GGML_F16 ||
                        t->type == QP_GGML_BF16;
    if (!scalar && !qp_quant_supported(t->type)) {
        qp_error_set(err, QP_ERR_UNSUPPORTED, "synth: tensor '%s' has type %s (%d), for which "
                     "no random blocks can be made", t->name, qp_ggml_type_name(t->type),
                     (int)t->type);
        return false;
    }
    if (scalar && cols > m->vals_n) {
        float *p = realloc(m->vals, (size_t)cols * sizeof(float));
        if (!p) {
            qp_error_set(err, QP_ERR_NOMEM, "synth: out of memory");
            return false;
        }
        m->vals = p;
        m->vals_n = cols;
    }
    for (size_t r = 0; r < rows; r++) {
        unsigned char *dst = (unsigned char *)buf + r * row_bytes;
        if (!scalar) {
            qp_quant_random_row(t->type, &st, sd, dst, cols);
            continue;
        }
        for (int64_t c = 0; c < cols; c++) m->vals[c] = mean + sd * syn_gauss(&st);
        for (int64_t c = 0; c < cols; c++) {
            if (t->type == QP_GGML_F32) {
                memcpy(dst + 4 * c, &m->vals[c], 4); /* little-endian hosts only, as GGUF */
            } else {
                uint16_t h = t->type == QP_GGML_F16 ? qp_fp32_to_fp16(m->vals[c])
                                                    : qp_fp32_to_bf16(m->vals[c]);
                memcpy(dst + 2 * c, &h, 2);
            }
        }
    }
    return true;
}

static enum qp_status syn_write(struct qp_gguf_writer *w, struct syn_model *m,
                                const char *out_path, struct qp_error *err) {
    for (int64_t i = 0; i < m->n; i++) {
        const struct syn_tensor *t = &m->t[i];
        if (!qp_gguf_writer_add_tensor(w, t->name, t->n_dims, t->ne, t->type))
            return qp_error_set(err, QP_ERR_INVALID, "%s: tensor '%s' [%lld, %lld, %lld, %lld] "
                                "of type %s: the row length is not a multiple of the type's "
                                "block, or out of memory", out_path, t->name,
                                (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                                (long long)t->ne[3], qp_ggml_type_name(t->type));
    }
    return qp_gguf_writer_write_path(w, out_path, syn_fill, m, false, err);
}

/* ---- the tiny vocabulary ---- */

/* GPT-2 byte-level order: the 188 printable bytes map to themselves and come first (ids
 * 0..187); the other 68 bytes, ascending, map to U+0100.. and take ids 188..255. */
static void byte_unicode_order(int order[256], int cp_of_byte[256]) {
    int k = 0, extra = 0;
    for (int b = 0; b < 256; b++)
        if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
            order[k++] = b;
            cp_of_byte[b] = b;
        }
    for (int b = 0; b < 256; b++)
        if (!((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))) {
            order[k++] = b;
            cp_of_byte[b] = 256 + extra++;
        }
}

/* Appends the byte-level form of raw bytes s to out (UTF-8 of the mapped code points). */
static size_t byte_level(const char *s, const int cp_of_byte[256], char *out) {
    size_t n = 0;
    for (; *s; s++) {
        int cp = cp_of_byte[(unsigned char)*s];
        if (cp < 0x80) {
            out[n++] = (char)cp;
        } else {
            out[n++] = (char)(0xC0 | (cp >> 6));
            out[n++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    out[n] = 0;
    return n;
}

/* Raw merges in rank order; each adds the token left+right. */
static const char *const tiny_merges[][2] = {
    {" ", " "}, {"i", "n"}, {" ", "t"}, {"e", "r"}, {"o", "n"}, {" ", "a"}, {"r", "e"},
    {"a", "t"}, {"s", "t"}, {"e", "n"}, {"o", "r"}, {" t", "h"}, {" th", "e"}, {"h", "e"},
};
#define TINY_N_MERGES ((int)(sizeof tiny_merges / sizeof tiny_merges[0]))
#define TINY_MIN_VOCAB (256 + TINY_N_MERGES + 3)

static const char tiny_template[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}";

static enum qp_status add_tiny_vocab(struct qp_gguf_writer *w, int32_t n_vocab,
                                     struct qp_error *err) {
    if (n_vocab < TINY_MIN_VOCAB)
        return qp_error_set(err, QP_ERR_INVALID, "synth: --n-vocab %d is below %d, the size of "
                            "the built-in byte-level vocabulary", (int)n_vocab, TINY_MIN_VOCAB);
    int order[256], cp_of_byte[256];
    byte_unicode_order(order, cp_of_byte);
    const size_t tok_max = 32; /* longest token: "[PAD2147483647]" or 4 raw bytes x 2 */
    char *store = malloc((size_t)n_vocab * tok_max + (size_t)TINY_N_MERGES * tok_max);
    const char **tokens = malloc((size_t)n_vocab * sizeof(char *));
    const char **merges = malloc((size_t)TINY_N_MERGES * sizeof(char *));
    int32_t *types = malloc((size_t)n_vocab * sizeof(int32_t));
    enum qp_status s = QP_OK;
    if (!store || !tokens || !merges || !types) {
        s = qp_error_set(err, QP_ERR_NOMEM, "synth: out of memory for the vocabulary");
        goto done;
    }
    int32_t id = 0;
    for (; id < 256; id++) {
        char raw[2] = {(char)order[id], 0};
        char *t = store + (size_t)id * tok_max;
        byte_level(raw, cp_of_byte, t);
        if (order[id] == 0) { /* byte 0 has no C-string form: its mapped code point U+0100 */
            t[0] = (char)0xC4;
            t[1] = (char)0x80;
            t[2] = 0;
        }
        tokens[id] = t;
        types[id] = 1; /* normal */
    }
    for (int j = 0; j < TINY_N_MERGES; j++, id++) {
        char *t = store + (size_t)id * tok_max;
        char *mg = store + (size_t)n_vocab * tok_max + (size_t)j * tok_max;
        size_t a = byte_level(tiny_merges[j][0], cp_of_byte, mg);
        mg[a] = ' ';
        byte_level(tiny_merges[j][1], cp_of_byte, mg + a + 1);
        char raw[16];
        snprintf(raw, sizeof raw, "%s%s", tiny_merges[j][0], tiny_merges[j][1]);
        byte_level(raw, cp_of_byte, t);
        tokens[id] = t;
        merges[j] = mg;
        types[id] = 1;
    }
    const int32_t eot = id;
    static const char *const control[3] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    for (int j = 0; j < 3; j++, id++) {
        tokens[id] = control[j];
        types[id] = 3; /* control */
    }
    for (; id < n_vocab; id++) {
        char *t = store + (size_t)id * tok_max;
        snprintf(t, tok_max, "[PAD%d]", (int)id);
        tokens[id] = t;
        types[id] = 5; /* unused */
    }
    if (!qp_gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2") ||
        !qp_gguf_writer_add_str(w, "tokenizer.ggml.pre", "qwen2") ||
        !qp_gguf_writer_add_str_array(w, "tokenizer.ggml.tokens", (uint64_t)n_vocab, tokens) ||
        !qp_gguf_writer_add_array(w, "tokenizer.ggml.token_type", QP_GGUF_I32,
                                  (uint64_t)n_vocab, types) ||
        !qp_gguf_writer_add_str_array(w, "tokenizer.ggml.merges", TINY_N_MERGES, merges) ||
        !qp_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eot + 2) ||
        !qp_gguf_writer_add_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)eot) ||
        !qp_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)eot) ||
        !qp_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", false) ||
        !qp_gguf_writer_add_str(w, "tokenizer.chat_template", tiny_template))
        s = qp_error_set(err, QP_ERR_NOMEM, "synth: out of memory for the vocabulary");
done:
    free(store);
    free(tokens);
    free(merges);
    free(types);
    return s;
}

/* Copies every tokenizer.* key of vocab_path; *n_vocab = its token count. */
static enum qp_status add_file_vocab(struct qp_gguf_writer *w, const char *vocab_path,
                                     int32_t *n_vocab, struct qp_error *err) {
    struct qp_gguf *g = NULL;
    enum qp_status s = qp_gguf_open(vocab_path, QP_GGUF_HEADER_ONLY, &g, err);
    if (s != QP_OK) return s;
    const struct qp_gguf_value *toks;
    s = qp_gguf_get_array(g, "tokenizer.ggml.tokens", QP_GGUF_STRING, &toks, err);
    if (s == QP_OK && (toks->arr.n < 1 || toks->arr.n > INT32_MAX))
        s = qp_error_set(err, QP_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %llu entries",
                         vocab_path, (unsigned long long)toks->arr.n);
    if (s == QP_OK) *n_vocab = (int32_t)toks->arr.n;
    for (int64_t i = 0; s == QP_OK && i < qp_gguf_n_kv(g); i++) {
        const struct qp_gguf_kv *kv = qp_gguf_kv(g, i);
        if (!strncmp(kv->key, "tokenizer.", 10) && !qp_gguf_writer_add(w, kv->key, &kv->value))
            s = qp_error_set(err, QP_ERR_NOMEM, "synth: out of memory copying '%s'", kv->key);
    }
    qp_gguf_close(g);
    return s;
}

/* ---- --types rules ---- */

struct syn_rule {
    char pat[64];
    int32_t type; /* -1: "tied" */
};

static enum qp_status parse_rules(const char *spec, struct syn_rule **out, int *n_out,
                                  struct qp_error *err) {
    *out = NULL;
    *n_out = 0;
    if (!spec || !*spec) return QP_OK;
    int cap = 1;
    for (const char *p = spec; *p; p++) cap += *p == ',';
    struct syn_rule *r = calloc((size_t)cap, sizeof(*r));
    if (!r) return qp_error_set(err, QP_ERR_NOMEM, "synth: out of memory");
    int n = 0;
    const char *p = spec;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        char type[32];
        size_t plen = eq ? (size_t)(eq - p) : 0, tlen = eq ? len - plen - 1 : 0;
        if (!eq || plen == 0 || plen >= sizeof r[n].pat || tlen == 0 || tlen >= sizeof type) {
            free(r);
            return qp_error_set(err, QP_ERR_INVALID, "synth: --types rule '%.*s': expected "
                                "RULE=TYPE (e.g. ffn_down=q4_k)", (int)len, p);
        }
        memcpy(r[n].pat, p, plen);
        memcpy(type, eq + 1, tlen);
        type[tlen] = 0;
        if (!strcmp(type, "tied")) {
            if (strcmp(r[n].pat, "output") != 0) {
                qp_error_set(err, QP_ERR_INVALID, "synth: --types '%s=tied': only output can "
                             "be tied", r[n].pat);
                free(r);
                return QP_ERR_INVALID;
            }
            r[n].type = -1;
        } else if ((r[n].type = qp_ggml_type_from_name(type)) < 0) {
            free(r);
            return qp_error_set(err, QP_ERR_INVALID, "synth: --types rule '%.*s': unknown type "
                                "'%s'", (int)len, p, type);
        }
        n++;
        p += len;
        if (*p == ',') p++;
    }
    *out = r;
    *n_out = n;
    return QP_OK;
}

/* The type the rules give tensor `name` (def when no rule matches); -1 for a tied output. */
static int32_t rule_type(const struct syn_rule *r, int n, const char *name, bool matrix,
                         int32_t def) {
    char base[64], role[64];
    snprintf(base, sizeof base, "%s", name);
    if (ends_with(base, ".weight")) base[strlen(base) - 7] = 0;
    const char *rl = base;
    if (!strncmp(base, "blk.", 4)) {
        const char *dot = strchr(base + 4, '.');
        if (dot) rl = dot + 1;
    }
    snprintf(role, sizeof role, "%s", rl);
    int32_t t = def;
    for (int i = 0; i < n; i++)
        if ((!strcmp(r[i].pat, "*") && matrix) || !strcmp(r[i].pat, role) ||
            !strcmp(r[i].pat, base))
            t = r[i].type;
    return t;
}

/* ---- entry points ---- */

enum qp_status qp_synth_write_arch(const struct qp_synth_arch *a, uint64_t seed,
                                   const char *out_path, struct qp_error *err) {
    const int32_t L = a->n_layer, D = a->n_embd, H = a->n_head, K = a->n_head_kv, F = a->n_ff;
    const int32_t lim = 1 << 20;
    if (L < 1 || L > 4096 || D < 2 || D > lim || H < 1 || K < 1 || F < 1 || F > lim ||
        a->n_vocab < 0 || a->n_vocab > (1 << 24) || a->n_ctx < 0)
        return qp_error_set(err, QP_ERR_INVALID, "synth: shape out of range (layers 1..4096, "
                            "embd 2..%d, heads >= 1, ffn 1..%d, vocab <= 2^24)", lim, lim);
    if (D % H || (D / H) % 2 || H % K)
        return qp_error_set(err, QP_ERR_INVALID, "synth: embd %d, %d heads, %d KV heads: need "
                            "heads | embd, an even head size and KV heads | heads", (int)D,
                            (int)H, (int)K);
    struct syn_rule *rules = NULL;
    int n_rules = 0;
    enum qp_status s = parse_rules(a->types, &rules, &n_rules, err);
    if (s != QP_OK) return s;

    struct syn_model m = {.seed = seed};
    struct qp_gguf_writer *w = qp_gguf_writer_new(3);
    if (!w) {
        s = qp_error_set(err, QP_ERR_NOMEM, "synth: out of memory");
        goto done;
    }
    char name[96];
    snprintf(name, sizeof name, "synthetic qwen2 L%d D%d H%d/%d F%d", (int)L, (int)D, (int)H,
             (int)K, (int)F);
    if (!qp_gguf_writer_add_str(w, "general.architecture", "qwen2") ||
        !qp_gguf_writer_add_str(w, "general.name", name) ||
        !qp_gguf_writer_add_u32(w, "qwen2.block_count", (uint32_t)L) ||
        !qp_gguf_writer_add_u32(w, "qwen2.context_length",
                                (uint32_t)(a->n_ctx ? a->n_ctx : 4096)) ||
        !qp_gguf_writer_add_u32(w, "qwen2.embedding_length", (uint32_t)D) ||
        !qp_gguf_writer_add_u32(w, "qwen2.feed_forward_length", (uint32_t)F) ||
        !qp_gguf_writer_add_u32(w, "qwen2.attention.head_count", (uint32_t)H) ||
        !qp_gguf_writer_add_u32(w, "qwen2.attention.head_count_kv", (uint32_t)K) ||
        !qp_gguf_writer_add_f32(w, "qwen2.rope.freq_base", a->rope_base > 0 ? a->rope_base : 1e6f) ||
        !qp_gguf_writer_add_f32(w, "qwen2.attention.layer_norm_rms_epsilon",
                                a->eps > 0 ? a->eps : 1e-6f) ||
        !qp_gguf_writer_add_u32(w, "general.quantization_version", 2)) {
        s = qp_error_set(err, QP_ERR_NOMEM, "synth: out of memory");
        goto done;
    }
    int32_t V = a->n_vocab;
    if (a->vocab_path) {
        int32_t fv = 0;
        if ((s = add_file_vocab(w, a->vocab_path, &fv, err)) != QP_OK) goto done;
        if (V && V != fv) {
            s = qp_error_set(err, QP_ERR_INVALID, "synth: --n-vocab %d but %s has %d tokens",
                             (int)V, a->vocab_path, (int)fv);
            goto done;
        }
        V = fv;
    } else if ((s = add_tiny_vocab(w, V, err)) != QP_OK) {
        goto done;
    }

    /* The tensor table, in the order of a llama.cpp conversion. */
    const int64_t hd = D / H, Q = (int64_t)H * hd, KV = (int64_t)K * hd;
    struct {
        const char *suffix;
        int64_t ne0, ne1; /* ne1 0: a vector */
    } const per_layer[] = {
        {"attn_norm.weight", D, 0}, {"attn_q.weight", D, Q},  {"attn_q.bias", Q, 0},
        {"attn_k.weight", D, KV},   {"attn_k.bias", KV, 0},   {"attn_v.weight", D, KV},
        {"attn_v.bias", KV, 0},     {"attn_output.weight", Q, D}, {"ffn_norm.weight", D, 0},
        {"ffn_gate.weight", D, F},  {"ffn_up.weight", D, F},  {"ffn_down.weight", F, D},
    };
    bool ok = true;
    int32_t emb_t = rule_type(rules, n_rules, "token_embd.weight", true, QP_GGML_Q8_0);
    int64_t ne[2] = {D, V};
    ok = ok && emb_t >= 0 && syn_push(&m, "token_embd.weight", 2, ne, emb_t);
    for (int32_t l = 0; ok && l < L; l++) {
        for (size_t j = 0; ok && j < sizeof per_layer / sizeof per_layer[0]; j++) {
            char tn[64];
            snprintf(tn, sizeof tn, "blk.%d.%s", (int)l, per_layer[j].suffix);
            const bool matrix = per_layer[j].ne1 > 0;
            int32_t t = rule_type(rules, n_rules, tn, matrix, matrix ? QP_GGML_Q8_0 : QP_GGML_F32);
            int64_t e[2] = {per_layer[j].ne0, per_layer[j].ne1};
            ok = t >= 0 && syn_push(&m, tn, matrix ? 2 : 1, e, t);
        }
    }
    int32_t on_t = rule_type(rules, n_rules, "output_norm.weight", false, QP_GGML_F32);
    int64_t ne_on[1] = {D};
    ok = ok && on_t >= 0 && syn_push(&m, "output_norm.weight", 1, ne_on, on_t);
    int32_t out_t = rule_type(rules, n_rules, "output.weight", true, QP_GGML_Q8_0);
    if (ok && out_t >= 0) ok = syn_push(&m, "output.weight", 2, ne, out_t);
    if (!ok) {
        s = qp_error_set(err, QP_ERR_NOMEM, "synth: out of memory"); /* tied: output only */
        goto done;
    }
    for (int64_t i = 0; i < m.n; i++) {
        const struct qp_ggml_type_info *ti = qp_ggml_type_info(m.t[i].type);
        if (!ti || !ti->name || m.t[i].ne[0] % ti->block_elems) {
            s = qp_error_set(err, QP_ERR_INVALID, "synth: tensor '%s' has rows of %lld, not a "
                             "multiple of %s's block of %u elements (change --types)",
                             m.t[i].name, (long long)m.t[i].ne[0],
                             qp_ggml_type_name(m.t[i].type), ti ? ti->block_elems : 0);
            goto done;
        }
    }
    s = syn_write(w, &m, out_path, err);
done:
    qp_gguf_writer_free(w);
    free(rules);
    free(m.t);
    free(m.vals);
    return s;
}

/* Copies like's metadata and tensor table into w (and m's tensor list when m is non-NULL). */
static enum qp_status copy_header(const struct qp_gguf *g, struct qp_gguf_writer *w,
                                  struct syn_model *m, struct qp_error *err) {
    const char *path = qp_gguf_path(g);
    for (int64_t i = 0; i < qp_gguf_n_kv(g); i++) {
        const struct qp_gguf_kv *kv = qp_gguf_kv(g, i);
        if (!qp_gguf_writer_add(w, kv->key, &kv->value))
            return qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory copying key '%s'", path,
                                kv->key);
    }
    for (int64_t i = 0; i < qp_gguf_n_tensors(g); i++) {
        const struct qp_gguf_tensor *t = qp_gguf_tensor(g, i);
        if ((m && !syn_push(m, t->name, t->n_dims, t->ne, t->type)) ||
            (!m && !qp_gguf_writer_add_tensor(w, t->name, t->n_dims, t->ne, t->type)))
            return qp_error_set(err, QP_ERR_NOMEM, "%s: cannot copy tensor '%s'", path, t->name);
    }
    return QP_OK;
}

/* The copy's header must be byte-for-byte the source's (same keys, values, tensor table and
 * offsets): the writer lays tensors out as llama.cpp does, so a source laid out otherwise
 * cannot be copied exactly, and is refused rather than silently changed. */
static enum qp_status check_same_header(const struct qp_gguf *src, const char *out_path,
                                        struct qp_error *err) {
    struct qp_gguf *o = NULL;
    enum qp_status s = qp_gguf_open(out_path, QP_GGUF_HEADER_ONLY, &o, err);
    if (s != QP_OK) return s;
    if (qp_gguf_header_bytes(o) != qp_gguf_header_bytes(src) ||
        qp_gguf_header_hash(o) != qp_gguf_header_hash(src))
        s = qp_error_set(err, QP_ERR_UNSUPPORTED, "%s: its header cannot be reproduced exactly "
                         "(%zu bytes written vs %zu: tensor offsets not in llama.cpp's layout?)",
                         qp_gguf_path(src), qp_gguf_header_bytes(o), qp_gguf_header_bytes(src));
    qp_gguf_close(o);
    if (s != QP_OK) remove(out_path);
    return s;
}

enum qp_status qp_synth_write_like(const char *like_path, uint64_t seed, const char *out_path,
                                   struct qp_error *err) {
    struct qp_gguf *g = NULL;
    enum qp_status s = qp_gguf_open(like_path, QP_GGUF_HEADER_ONLY, &g, err);
    if (s != QP_OK) return s;
    struct syn_model m = {.seed = seed};
    struct qp_gguf_writer *w = qp_gguf_writer_new(qp_gguf_version(g));
    if (!w) s = qp_error_set(err, QP_ERR_NOMEM, "synth: out of memory");
    if (s == QP_OK) s = copy_header(g, w, &m, err);
    if (s == QP_OK) s = syn_write(w, &m, out_path, err);
    if (s == QP_OK) s = check_same_header(g, out_path, err);
    qp_gguf_writer_free(w);
    qp_gguf_close(g);
    free(m.t);
    free(m.vals);
    return s;
}

enum qp_status qp_synth_write_header(const char *model_path, const char *out_path,
                                     struct qp_error *err) {
    struct qp_gguf *g = NULL;
    enum qp_status s = qp_gguf_open(model_path, QP_GGUF_HEADER_ONLY, &g, err);
    if (s != QP_OK) return s;
    struct qp_gguf_writer *w = qp_gguf_writer_new(qp_gguf_version(g));
    if (!w) s = qp_error_set(err, QP_ERR_NOMEM, "synth: out of memory");
    if (s == QP_OK) s = copy_header(g, w, NULL, err);
    if (s == QP_OK) s = qp_gguf_writer_write_path(w, out_path, NULL, NULL, true, err);
    if (s == QP_OK) s = check_same_header(g, out_path, err);
    qp_gguf_writer_free(w);
    qp_gguf_close(g);
    return s;
}
