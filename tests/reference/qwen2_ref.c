/* qwen2_ref.c — the oracle: a Qwen2 forward step, llama2.c style, top to bottom.
 *
 * Owns: the oracle's weight table (pointers into the GGUF mapping), its f32 activations and
 * KV cache. Does not own: the GGUF (the caller's), dequantization (qp_quant_dequant_row).
 * Nothing here comes from the plan machinery or kernels/cpu: a bug there cannot hide here.
 *
 * The architecture (per layer l, x the residual stream [D]):
 *   h = rmsnorm(x) * attn_norm
 *   q = Wq h + bq [H*hd], k = Wk h + bk [K*hd], v = Wv h + bv [K*hd]
 *   RoPE (NEOX pairs (i, i + hd/2), angle pos * base^(-2i/hd)) on q and k; cache k, v at pos
 *   per query head hh (KV head hh / (H/K)): softmax(q.k_t / sqrt(hd), t <= pos) . v_t
 *   x += Wo att (+ bo when present)
 *   n = rmsnorm(x) * ffn_norm;  x += Wdown (silu(Wgate n) * Wup n)
 * logits = Wout (rmsnorm(x) * output_norm), Wout = token_embd when output.weight is absent.
 */
#include "qwen2_ref.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qp_ggml.h"
#include "qp_quant.h"

/* A weight as the file holds it: rows x cols of `type`, row r at data + r * row_bytes. */
struct ref_mat {
    const void *data;
    int32_t type;
    int64_t rows, cols; /* GGUF ne[1], ne[0] */
    size_t row_bytes;
};

struct ref_layer {
    float *attn_norm;                 /* [D] */
    struct ref_mat wq, wk, wv, wo;    /* [H*hd][D], [K*hd][D], [K*hd][D], [D][H*hd] */
    float *bq, *bk, *bv;              /* [H*hd], [K*hd], [K*hd] */
    float *bo;                        /* [D] or NULL */
    float *ffn_norm;                  /* [D] */
    struct ref_mat w_gate, w_up, w_down; /* [F][D], [F][D], [D][F] */
};

struct qp_ref {
    struct qp_ref_config c;
    const struct qp_gguf *g;
    struct ref_mat token_embd;        /* [V][D] */
    struct ref_layer *layers;         /* [n_layer] */
    float *output_norm;               /* [D] */
    struct ref_mat output;            /* [V][D] (token_embd when tied) */
    /* activations */
    float *x;                         /* [D] residual stream */
    float *xb;                        /* [D] normed input of a projection */
    float *q;                         /* [H*hd] */
    float *att;                       /* [H*hd] attention output */
    float *scores;                    /* [n_ctx] */
    float *gate, *up;                 /* [F] */
    float *row;                       /* [max(D, F)] one dequantized weight row */
    float *k_cache, *v_cache;         /* [n_layer][n_ctx][K*hd] */
    int32_t n_filled;                 /* positions [0, n_filled) of the cache are written */
};

/* ---- loading ---- */

static enum qp_status get_mat(const struct qp_gguf *g, const char *name, int64_t rows,
                              int64_t cols, struct ref_mat *m, struct qp_error *err) {
    const struct qp_gguf_tensor *t = qp_gguf_find_tensor(g, name);
    if (!t)
        return qp_error_set(err, QP_ERR_FORMAT, "%s: tensor '%s' is missing", qp_gguf_path(g),
                            name);
    if (t->n_dims > 2 || t->ne[0] != cols || t->ne[1] != rows)
        return qp_error_set(err, QP_ERR_FORMAT,
                            "%s: tensor '%s' has shape [%lld, %lld], expected [%lld, %lld]",
                            qp_gguf_path(g), name, (long long)t->ne[0], (long long)t->ne[1],
                            (long long)cols, (long long)rows);
    if (!qp_quant_supported(t->type))
        return qp_error_set(err, QP_ERR_UNSUPPORTED, "%s: tensor '%s' has type %s (%d), which "
                            "the CPU dequantizer does not support", qp_gguf_path(g), name,
                            qp_ggml_type_name(t->type), (int)t->type);
    if (!t->data)
        return qp_error_set(err, QP_ERR_INVALID, "%s: tensor '%s' has no data (header-only file)",
                            qp_gguf_path(g), name);
    size_t rb;
    if (!qp_ggml_row_bytes(t->type, cols, &rb))
        return qp_error_set(err, QP_ERR_FORMAT, "%s: tensor '%s': bad row size", qp_gguf_path(g),
                            name);
    *m = (struct ref_mat){.data = t->data, .type = t->type, .rows = rows, .cols = cols,
                          .row_bytes = rb};
    return QP_OK;
}

/* A vector tensor of n elements, dequantized into a new f32 array (*out owned by the caller). */
static enum qp_status get_vec(const struct qp_gguf *g, const char *name, int64_t n, float **out,
                              struct qp_error *err) {
    struct ref_mat m = {0}; /* get_mat fills it or fails */
    enum qp_status s = get_mat(g, name, 1, n, &m, err);
    if (s != QP_OK) return s;
    *out = malloc((size_t)n * sizeof(float));
    if (!*out) return qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", qp_gguf_path(g));
    qp_quant_dequant_row(m.type, m.data, *out, n);
    return QP_OK;
}

static enum qp_status get_hparam(const struct qp_gguf *g, const char *key, int32_t *out,
                                 struct qp_error *err) {
    int64_t v;
    enum qp_status s = qp_gguf_get_int(g, key, 1, INT32_MAX, &v, err);
    if (s == QP_OK) *out = (int32_t)v;
    return s;
}

enum qp_status qp_ref_open(const struct qp_gguf *g, int32_t n_ctx, struct qp_ref **out,
                           struct qp_error *err) {
    *out = NULL;
    const char *path = qp_gguf_path(g);
    const char *arch;
    enum qp_status s = qp_gguf_get_str(g, "general.architecture", &arch, err);
    if (s != QP_OK) return s;
    if (strcmp(arch, "qwen2") != 0)
        return qp_error_set(err, QP_ERR_UNSUPPORTED, "%s: architecture '%s', the oracle runs "
                            "qwen2 only", path, arch);
    if (n_ctx < 1) return qp_error_set(err, QP_ERR_INVALID, "n_ctx %d < 1", (int)n_ctx);

    struct qp_ref *r = calloc(1, sizeof(*r));
    if (!r) return qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", path);
    r->g = g;
    struct qp_ref_config *c = &r->c;
    c->n_ctx = n_ctx;
    if ((s = get_hparam(g, "qwen2.block_count", &c->n_layer, err)) != QP_OK ||
        (s = get_hparam(g, "qwen2.embedding_length", &c->n_embd, err)) != QP_OK ||
        (s = get_hparam(g, "qwen2.attention.head_count", &c->n_head, err)) != QP_OK ||
        (s = get_hparam(g, "qwen2.attention.head_count_kv", &c->n_head_kv, err)) != QP_OK)
        goto fail;
    double eps, base = 10000.0;
    if ((s = qp_gguf_get_float(g, "qwen2.attention.layer_norm_rms_epsilon", &eps, err)) != QP_OK)
        goto fail;
    if (qp_gguf_find(g, "qwen2.rope.freq_base") &&
        (s = qp_gguf_get_float(g, "qwen2.rope.freq_base", &base, err)) != QP_OK)
        goto fail;
    c->eps = (float)eps;
    c->rope_base = (float)base;
    if (c->n_embd % c->n_head != 0 || c->n_head % c->n_head_kv != 0 ||
        (c->n_embd / c->n_head) % 2 != 0) {
        s = qp_error_set(err, QP_ERR_FORMAT, "%s: embedding %d, %d heads, %d KV heads: need "
                         "heads | embedding, KV heads | heads and an even head size", path,
                         (int)c->n_embd, (int)c->n_head, (int)c->n_head_kv);
        goto fail;
    }
    c->head_dim = c->n_embd / c->n_head;
    const int64_t D = c->n_embd, Q = (int64_t)c->n_head * c->head_dim,
                  KV = (int64_t)c->n_head_kv * c->head_dim;

    const struct qp_gguf_tensor *te = qp_gguf_find_tensor(g, "token_embd.weight");
    const struct qp_gguf_tensor *tg = qp_gguf_find_tensor(g, "blk.0.ffn_gate.weight");
    if (!te || !tg || te->ne[1] > INT32_MAX || tg->ne[1] > INT32_MAX) {
        s = qp_error_set(err, QP_ERR_FORMAT, "%s: token_embd.weight or blk.0.ffn_gate.weight "
                         "missing or too large", path);
        goto fail;
    }
    c->n_vocab = (int32_t)te->ne[1];
    c->n_ff = (int32_t)tg->ne[1];
    const int64_t F = c->n_ff, V = c->n_vocab;
    if (qp_gguf_find_tensor(g, "blk.0.attn_qkv.weight")) {
        s = qp_error_set(err, QP_ERR_UNSUPPORTED, "%s: fused attn_qkv tensors are not "
                         "supported by the oracle", path);
        goto fail;
    }

    if ((s = get_mat(g, "token_embd.weight", V, D, &r->token_embd, err)) != QP_OK ||
        (s = get_vec(g, "output_norm.weight", D, &r->output_norm, err)) != QP_OK)
        goto fail;
    c->tied_output = qp_gguf_find_tensor(g, "output.weight") == NULL;
    if (c->tied_output)
        r->output = r->token_embd;
    else if ((s = get_mat(g, "output.weight", V, D, &r->output, err)) != QP_OK)
        goto fail;

    r->layers = calloc((size_t)c->n_layer, sizeof(*r->layers));
    if (!r->layers) goto nomem;
    for (int32_t l = 0; l < c->n_layer; l++) {
        struct ref_layer *L = &r->layers[l];
        char n[96];
#define NAME(suffix) (snprintf(n, sizeof n, "blk.%d." suffix, (int)l), n)
        if ((s = get_vec(g, NAME("attn_norm.weight"), D, &L->attn_norm, err)) != QP_OK ||
            (s = get_mat(g, NAME("attn_q.weight"), Q, D, &L->wq, err)) != QP_OK ||
            (s = get_mat(g, NAME("attn_k.weight"), KV, D, &L->wk, err)) != QP_OK ||
            (s = get_mat(g, NAME("attn_v.weight"), KV, D, &L->wv, err)) != QP_OK ||
            (s = get_vec(g, NAME("attn_q.bias"), Q, &L->bq, err)) != QP_OK ||
            (s = get_vec(g, NAME("attn_k.bias"), KV, &L->bk, err)) != QP_OK ||
            (s = get_vec(g, NAME("attn_v.bias"), KV, &L->bv, err)) != QP_OK ||
            (s = get_mat(g, NAME("attn_output.weight"), D, Q, &L->wo, err)) != QP_OK ||
            (s = get_vec(g, NAME("ffn_norm.weight"), D, &L->ffn_norm, err)) != QP_OK ||
            (s = get_mat(g, NAME("ffn_gate.weight"), F, D, &L->w_gate, err)) != QP_OK ||
            (s = get_mat(g, NAME("ffn_up.weight"), F, D, &L->w_up, err)) != QP_OK ||
            (s = get_mat(g, NAME("ffn_down.weight"), D, F, &L->w_down, err)) != QP_OK)
            goto fail;
        if (qp_gguf_find_tensor(g, NAME("attn_output.bias")) &&
            (s = get_vec(g, n, D, &L->bo, err)) != QP_OK)
            goto fail;
#undef NAME
    }

    /* Sizes: all small products of int32 values, in 64 bits; the cache is the big one. */
    const size_t cache = (size_t)c->n_layer * (size_t)n_ctx * (size_t)KV;
    r->x = calloc((size_t)D, sizeof(float));
    r->xb = calloc((size_t)D, sizeof(float));
    r->q = calloc((size_t)Q, sizeof(float));
    r->att = calloc((size_t)Q, sizeof(float));
    r->scores = calloc((size_t)n_ctx, sizeof(float));
    r->gate = calloc((size_t)F, sizeof(float));
    r->up = calloc((size_t)F, sizeof(float));
    r->row = calloc((size_t)(D > F ? (D > Q ? D : Q) : (F > Q ? F : Q)), sizeof(float));
    r->k_cache = calloc(cache, sizeof(float));
    r->v_cache = calloc(cache, sizeof(float));
    if (!r->x || !r->xb || !r->q || !r->att || !r->scores || !r->gate || !r->up || !r->row ||
        !r->k_cache || !r->v_cache)
        goto nomem;
    *out = r;
    return QP_OK;
nomem:
    s = qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory building the oracle (n_ctx %d)", path,
                     (int)n_ctx);
fail:
    qp_ref_free(r);
    return s;
}

void qp_ref_free(struct qp_ref *r) {
    if (!r) return;
    if (r->layers) {
        for (int32_t l = 0; l < r->c.n_layer; l++) {
            struct ref_layer *L = &r->layers[l];
            free(L->attn_norm);
            free(L->bq);
            free(L->bk);
            free(L->bv);
            free(L->bo);
            free(L->ffn_norm);
        }
        free(r->layers);
    }
    free(r->output_norm);
    free(r->x);
    free(r->xb);
    free(r->q);
    free(r->att);
    free(r->scores);
    free(r->gate);
    free(r->up);
    free(r->row);
    free(r->k_cache);
    free(r->v_cache);
    free(r);
}

const struct qp_ref_config *qp_ref_config(const struct qp_ref *r) { return &r->c; }

/* ---- the math ---- */

/* out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i] */
static void rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    float ss = 0.0f;
    for (int64_t i = 0; i < n; i++) ss += x[i] * x[i];
    const float scale = 1.0f / sqrtf(ss / (float)n + eps);
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
}

/* out[r] = W[r] . x (+ bias[r]) for the m.rows rows; each row dequantized into `row`. */
static void matvec(float *out, const struct ref_mat *m, const float *x, const float *bias,
                   float *row) {
    for (int64_t r = 0; r < m->rows; r++) {
        qp_quant_dequant_row(m->type, (const char *)m->data + (size_t)r * m->row_bytes, row,
                             m->cols);
        float acc = 0.0f;
        for (int64_t c = 0; c < m->cols; c++) acc += row[c] * x[c];
        out[r] = acc + (bias ? bias[r] : 0.0f);
    }
}

/* NEOX RoPE on one head vector v [hd]: pairs (i, i + hd/2) rotate by pos * base^(-2i/hd). */
static void rope(float *v, int32_t hd, int32_t pos, float base) {
    for (int32_t i = 0; i < hd / 2; i++) {
        const double angle = (double)pos * pow((double)base, -2.0 * i / hd);
        const float cs = (float)cos(angle), sn = (float)sin(angle);
        const float a = v[i], b = v[i + hd / 2];
        v[i] = a * cs - b * sn;
        v[i + hd / 2] = a * sn + b * cs;
    }
}

static void softmax(float *x, int64_t n) {
    float mx = x[0];
    for (int64_t i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    for (int64_t i = 0; i < n; i++) x[i] /= sum;
}

enum qp_status qp_ref_forward(struct qp_ref *r, int32_t token, int32_t pos, float *logits,
                              struct qp_error *err) {
    const struct qp_ref_config *c = &r->c;
    if (token < 0 || token >= c->n_vocab)
        return qp_error_set(err, QP_ERR_RANGE, "%s: token id %d out of range [0, %d)",
                            qp_gguf_path(r->g), (int)token, (int)c->n_vocab);
    if (pos < 0 || pos >= c->n_ctx || pos > r->n_filled)
        return qp_error_set(err, QP_ERR_RANGE, "position %d: need 0 <= pos <= %d (filled) and "
                            "< n_ctx %d", (int)pos, (int)r->n_filled, (int)c->n_ctx);
    const int32_t D = c->n_embd, hd = c->head_dim, H = c->n_head, K = c->n_head_kv;
    const int64_t KV = (int64_t)K * hd;
    const int32_t group = H / K; /* query heads per KV head */
    const float att_scale = 1.0f / sqrtf((float)hd);

    /* x = token_embd[token] */
    qp_quant_dequant_row(r->token_embd.type,
                         (const char *)r->token_embd.data + (size_t)token * r->token_embd.row_bytes,
                         r->x, D);

    for (int32_t l = 0; l < c->n_layer; l++) {
        const struct ref_layer *L = &r->layers[l];
        float *k_row = r->k_cache + ((size_t)l * (size_t)c->n_ctx + (size_t)pos) * (size_t)KV;
        float *v_row = r->v_cache + ((size_t)l * (size_t)c->n_ctx + (size_t)pos) * (size_t)KV;

        /* attention block */
        rmsnorm(r->xb, r->x, L->attn_norm, D, c->eps);
        matvec(r->q, &L->wq, r->xb, L->bq, r->row);
        matvec(k_row, &L->wk, r->xb, L->bk, r->row);
        matvec(v_row, &L->wv, r->xb, L->bv, r->row);
        for (int32_t h = 0; h < H; h++) rope(r->q + (size_t)h * hd, hd, pos, c->rope_base);
        for (int32_t h = 0; h < K; h++) rope(k_row + (size_t)h * hd, hd, pos, c->rope_base);

        for (int32_t h = 0; h < H; h++) {
            const float *qh = r->q + (size_t)h * hd;
            const size_t kv_off = (size_t)(h / group) * (size_t)hd;
            const float *kl = r->k_cache + (size_t)l * (size_t)c->n_ctx * (size_t)KV;
            const float *vl = r->v_cache + (size_t)l * (size_t)c->n_ctx * (size_t)KV;
            for (int32_t t = 0; t <= pos; t++) {
                const float *kt = kl + (size_t)t * (size_t)KV + kv_off;
                float dot = 0.0f;
                for (int32_t i = 0; i < hd; i++) dot += qh[i] * kt[i];
                r->scores[t] = dot * att_scale;
            }
            softmax(r->scores, (int64_t)pos + 1);
            float *out = r->att + (size_t)h * hd;
            for (int32_t i = 0; i < hd; i++) out[i] = 0.0f;
            for (int32_t t = 0; t <= pos; t++) {
                const float *vt = vl + (size_t)t * (size_t)KV + kv_off;
                for (int32_t i = 0; i < hd; i++) out[i] += r->scores[t] * vt[i];
            }
        }
        matvec(r->xb, &L->wo, r->att, L->bo, r->row);
        for (int32_t i = 0; i < D; i++) r->x[i] += r->xb[i];

        /* feed-forward block */
        rmsnorm(r->xb, r->x, L->ffn_norm, D, c->eps);
        matvec(r->gate, &L->w_gate, r->xb, NULL, r->row);
        matvec(r->up, &L->w_up, r->xb, NULL, r->row);
        for (int32_t i = 0; i < c->n_ff; i++) {
            const float g = r->gate[i];
            r->gate[i] = g / (1.0f + expf(-g)) * r->up[i];
        }
        matvec(r->xb, &L->w_down, r->gate, NULL, r->row);
        for (int32_t i = 0; i < D; i++) r->x[i] += r->xb[i];
    }

    rmsnorm(r->xb, r->x, r->output_norm, D, c->eps);
    matvec(logits, &r->output, r->xb, NULL, r->row);
    r->n_filled = pos + 1; /* a step at an earlier position starts the sequence over there */
    return QP_OK;
}

/* ---- the double-precision sequence pass ----
 *
 * The same architecture as qp_ref_forward, over a whole sequence at once: activations are
 * [n][width] doubles, every product is widened to double before it is summed, and each output
 * element is one sum in ascending column order (so neither the thread count nor the SIMD width
 * of the clone the loader picks changes a bit: ISO C mode forbids fma contraction). Matrix
 * products run weight rows (dequantized to f32 exactly, then widened) against the inputs
 * transposed into blocks of TB tokens: the TB accumulators of a row are independent, so they
 * vectorise, and a block of inputs stays in cache while the rows stream past it. */

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define REF_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define REF_CLONES
#endif

enum {
    TB = 32,    /* tokens per input block: 32 accumulators per weight row */
    PANEL = 64, /* weight rows dequantized at a time per thread */
};

/* Runs fn(ctx, lo, hi) over n_threads contiguous ranges of [0, n): range 0 on the caller. */
typedef void (*par_fn)(void *ctx, int64_t lo, int64_t hi);

struct par_arg {
    par_fn fn;
    void *ctx;
    int64_t lo, hi;
};

static void *par_main(void *a) {
    struct par_arg *p = a;
    p->fn(p->ctx, p->lo, p->hi);
    return NULL;
}

static void par_for(int n_threads, int64_t n, par_fn fn, void *ctx) {
    enum { MAXT = 64 };
    if (n_threads > MAXT) n_threads = MAXT;
    if (n_threads > n) n_threads = (int)(n > 0 ? n : 1);
    pthread_t th[MAXT];
    struct par_arg arg[MAXT];
    bool started[MAXT] = {false};
    for (int i = 0; i < n_threads; i++)
        arg[i] = (struct par_arg){fn, ctx, n * i / n_threads, n * (i + 1) / n_threads};
    for (int i = 1; i < n_threads; i++)
        started[i] = pthread_create(&th[i], NULL, par_main, &arg[i]) == 0;
    fn(ctx, arg[0].lo, arg[0].hi);
    for (int i = 1; i < n_threads; i++) {
        if (started[i]) pthread_join(th[i], NULL);
        else fn(ctx, arg[i].lo, arg[i].hi); /* a thread that could not start: run it here */
    }
}

/* acc[j] = sum over c of w[c] * xt[c][j], j < TB, c ascending. */
REF_CLONES static void dot_block(const double *w, const double *xt, int64_t cols, double *acc) {
    double s[TB] = {0};
    for (int64_t c = 0; c < cols; c++) {
        const double wc = w[c];
        const double *x = xt + c * TB;
        for (int j = 0; j < TB; j++) s[j] += wc * x[j];
    }
    for (int j = 0; j < TB; j++) acc[j] = s[j];
}

/* x [n][cols] into xt [ceil(n/TB)][cols][TB] (rows past n are zero). */
static void transpose_blocks(const double *x, int32_t n, int64_t cols, double *xt) {
    int32_t nb = (n + TB - 1) / TB;
    for (int32_t b = 0; b < nb; b++) {
        double *blk = xt + (size_t)b * (size_t)cols * TB;
        for (int64_t c = 0; c < cols; c++)
            for (int j = 0; j < TB; j++) {
                int32_t t = b * TB + j;
                blk[c * TB + j] = t < n ? x[(size_t)t * (size_t)cols + (size_t)c] : 0.0;
            }
    }
}

/* ---- deliberate roundings (enum qp_ref_rounding) ---- */

static double to_f16(double x) { return (double)qp_fp16_to_fp32(qp_fp32_to_fp16((float)x)); }

/* llama.cpp's q8_0 of a block of 32 (its reference quantizer): d = amax / 127 stored as f16,
 * q = roundf(x / d); the product then sees d16 * q. */
static void q8_0_block(float *x) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    const float d16 = qp_fp16_to_fp32(qp_fp32_to_fp16(d));
    for (int j = 0; j < 32; j++) x[j] = d16 * roundf(x[j] * id);
}

/* llama.cpp's q8_K of a block of 256: iscale = -127 / (the value of largest magnitude),
 * q = min(127, round-to-even(iscale * x)), d = 1 / iscale in f32. */
static void q8_k_block(float *x) {
    float amax = 0.0f, mx = 0.0f;
    for (int j = 0; j < 256; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            mx = x[j];
        }
    if (amax == 0.0f) return;
    const float iscale = -127.0f / mx, d = 1.0f / iscale;
    for (int j = 0; j < 256; j++) {
        float q = rintf(iscale * x[j]);
        x[j] = d * (q > 127.0f ? 127.0f : q);
    }
}

/* The input of a product with weights of type `type` as llama.cpp's CPU backend feeds it: x
 * [n][cols] in place, through f32 and the type's vec_dot format. */
static void round_like_llama(double *x, int32_t n, int64_t cols, int32_t type, float *tmp) {
    const bool legacy = type == QP_GGML_Q4_0 || type == QP_GGML_Q4_1 || type == QP_GGML_Q5_0 ||
                        type == QP_GGML_Q5_1 || type == QP_GGML_Q8_0;
    const bool kq = type == QP_GGML_Q2_K || type == QP_GGML_Q3_K || type == QP_GGML_Q4_K ||
                    type == QP_GGML_Q5_K || type == QP_GGML_Q6_K;
    for (int32_t t = 0; t < n; t++) {
        double *row = x + (size_t)t * (size_t)cols;
        for (int64_t c = 0; c < cols; c++) tmp[c] = (float)row[c];
        if (legacy && cols % 32 == 0)
            for (int64_t c = 0; c < cols; c += 32) q8_0_block(tmp + c);
        else if (kq && cols % 256 == 0)
            for (int64_t c = 0; c < cols; c += 256) q8_k_block(tmp + c);
        else if (type == QP_GGML_F16)
            for (int64_t c = 0; c < cols; c++) tmp[c] = qp_fp16_to_fp32(qp_fp32_to_fp16(tmp[c]));
        for (int64_t c = 0; c < cols; c++) row[c] = (double)tmp[c];
    }
}

/* out[t][r] = W[r] . x[t] (+ bias[r]) for t < n and the rows of m; out's row stride is ldo. */
struct mm_job {
    const struct ref_mat *m;
    const double *xt; /* transpose_blocks of the input */
    int32_t n;
    const float *bias;
    double *out;
    int64_t ldo;
    bool nomem; /* a thread could not allocate its panel */
};

static void mm_range(void *ctx, int64_t r0, int64_t r1) {
    struct mm_job *j = ctx;
    const struct ref_mat *m = j->m;
    const int64_t cols = m->cols;
    float *rowf = malloc((size_t)cols * sizeof(float));
    double *panel = malloc((size_t)PANEL * (size_t)cols * sizeof(double));
    if (!rowf || !panel) {
        j->nomem = true; /* benign race: every writer stores true */
        free(rowf);
        free(panel);
        return;
    }
    const int32_t nb = (j->n + TB - 1) / TB;
    double acc[TB];
    for (int64_t p0 = r0; p0 < r1; p0 += PANEL) {
        const int64_t np = r1 - p0 < PANEL ? r1 - p0 : PANEL;
        for (int64_t i = 0; i < np; i++) {
            qp_quant_dequant_row(m->type, (const char *)m->data + (size_t)(p0 + i) * m->row_bytes,
                                 rowf, cols);
            for (int64_t c = 0; c < cols; c++) panel[i * cols + c] = (double)rowf[c];
        }
        for (int32_t b = 0; b < nb; b++) {
            const double *blk = j->xt + (size_t)b * (size_t)cols * TB;
            for (int64_t i = 0; i < np; i++) {
                const int64_t r = p0 + i;
                dot_block(panel + i * cols, blk, cols, acc);
                const double bias = j->bias ? (double)j->bias[r] : 0.0;
                for (int t = 0; t < TB && b * TB + t < j->n; t++)
                    j->out[(size_t)(b * TB + t) * (size_t)j->ldo + (size_t)r] = acc[t] + bias;
            }
        }
    }
    free(rowf);
    free(panel);
}

/* xr: scratch [n][cols] for the rounded input (LLAMA_CPU), tmp: [cols] floats. */
struct mm_ctx {
    double *xt, *xr;
    float *tmp;
    int n_threads;
    enum qp_ref_rounding rounding;
};

static enum qp_status mm64(const struct ref_mat *m, const double *x, int32_t n, const float *bias,
                           double *out, int64_t ldo, const struct mm_ctx *mc,
                           struct qp_error *err) {
    double *xt = mc->xt;
    const int n_threads = mc->n_threads;
    if (mc->rounding == QP_REF_LLAMA_CPU) {
        memcpy(mc->xr, x, (size_t)n * (size_t)m->cols * sizeof(double));
        round_like_llama(mc->xr, n, m->cols, m->type, mc->tmp);
        x = mc->xr;
    }
    transpose_blocks(x, n, m->cols, xt);
    struct mm_job j = {.m = m, .xt = xt, .n = n, .bias = bias, .out = out, .ldo = ldo};
    par_for(n_threads, m->rows, mm_range, &j);
    if (j.nomem) return qp_error_set(err, QP_ERR_NOMEM, "oracle: out of memory");
    return QP_OK;
}

static void rmsnorm64(double *out, const double *x, const float *w, int64_t n, double eps) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += x[i] * x[i];
    const double scale = 1.0 / sqrt(ss / (double)n + eps);
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale * (double)w[i];
}

static void rope64(double *v, int32_t hd, int32_t pos, double base) {
    for (int32_t i = 0; i < hd / 2; i++) {
        const double angle = (double)pos * pow(base, -2.0 * i / hd);
        const double cs = cos(angle), sn = sin(angle);
        const double a = v[i], b = v[i + hd / 2];
        v[i] = a * cs - b * sn;
        v[i + hd / 2] = a * sn + b * cs;
    }
}

/* Causal attention of every query head over the sequence: att[t][h] from q, k, v. */
struct att_job {
    const struct qp_ref_config *c;
    int32_t n;
    const double *q, *k, *v; /* [n][H*hd], [n][K*hd], [n][K*hd] */
    double *att;             /* [n][H*hd] */
    bool llama;              /* flash attention as llama.cpp's CPU backend runs it */
    bool nomem;
};

/* One query against keys 0..t, llama.cpp's CPU flash attention: an online softmax whose running
 * sum of V is an f16 vector (rescaled and accumulated in f16), the query and keys f16 (they are
 * already rounded by the caller). o [hd]. */
static void att_row_llama(const double *qh, const double *k, const double *v, int64_t kw,
                          int64_t ko, int32_t t, int32_t hd, double scale, double *o) {
    double S = 0.0, M = -INFINITY;
    for (int32_t i = 0; i < hd; i++) o[i] = 0.0;
    for (int32_t s = 0; s <= t; s++) {
        const double *ks = k + s * kw + ko, *vs_row = v + s * kw + ko;
        double dot = 0.0;
        for (int32_t i = 0; i < hd; i++) dot += qh[i] * ks[i];
        const float sc = (float)(dot * scale);
        float ms = 1.0f, vs = 1.0f;
        if (sc > M) {
            const double mold = M;
            M = sc;
            ms = expf((float)(mold - M));
            for (int32_t i = 0; i < hd; i++) o[i] = to_f16(o[i] * ms);
        } else {
            vs = expf((float)(sc - M));
        }
        for (int32_t i = 0; i < hd; i++) o[i] = to_f16(o[i] + vs_row[i] * vs);
        S = (float)(S * ms + vs);
    }
    for (int32_t i = 0; i < hd; i++) o[i] /= S;
}

static void att_range(void *ctx, int64_t h0, int64_t h1) {
    struct att_job *j = ctx;
    const int32_t hd = j->c->head_dim, H = j->c->n_head, K = j->c->n_head_kv;
    const int64_t QW = (int64_t)H * hd, KW = (int64_t)K * hd;
    const double scale = 1.0 / sqrt((double)hd);
    double *sc = malloc((size_t)j->n * sizeof(double));
    if (!sc) {
        j->nomem = true;
        return;
    }
    for (int64_t h = h0; h < h1; h++) {
        const int64_t ko = (h / (H / K)) * hd;
        for (int32_t t = 0; t < j->n; t++) {
            const double *qh = j->q + t * QW + h * hd;
            if (j->llama) {
                att_row_llama(qh, j->k, j->v, KW, ko, t, hd, scale, j->att + t * QW + h * hd);
                continue;
            }
            double mx = -INFINITY;
            for (int32_t s = 0; s <= t; s++) {
                const double *ks = j->k + s * KW + ko;
                double dot = 0.0;
                for (int32_t i = 0; i < hd; i++) dot += qh[i] * ks[i];
                sc[s] = dot * scale;
                if (sc[s] > mx) mx = sc[s];
            }
            double sum = 0.0;
            for (int32_t s = 0; s <= t; s++) {
                sc[s] = exp(sc[s] - mx);
                sum += sc[s];
            }
            double *o = j->att + t * QW + h * hd;
            for (int32_t i = 0; i < hd; i++) o[i] = 0.0;
            for (int32_t s = 0; s <= t; s++) {
                const double p = sc[s] / sum;
                const double *vs = j->v + s * KW + ko;
                for (int32_t i = 0; i < hd; i++) o[i] += p * vs[i];
            }
        }
    }
    free(sc);
}

enum qp_status qp_ref_seq64(struct qp_ref *r, const int32_t *tokens, int32_t n, int32_t first,
                            int n_threads, enum qp_ref_rounding rounding, qp_ref_row_fn row,
                            void *user, struct qp_error *err) {
    const struct qp_ref_config *c = &r->c;
    if (n < 1 || n > c->n_ctx || first < 0 || first >= n)
        return qp_error_set(err, QP_ERR_RANGE, "oracle: %d tokens from row %d: need 0 <= first < "
                            "n <= n_ctx %d", (int)n, (int)first, (int)c->n_ctx);
    for (int32_t t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= c->n_vocab)
            return qp_error_set(err, QP_ERR_RANGE, "%s: token id %d at %d out of range [0, %d)",
                                qp_gguf_path(r->g), (int)tokens[t], (int)t, (int)c->n_vocab);
    if (n_threads < 1) n_threads = 1;
    const int64_t D = c->n_embd, hd = c->head_dim, QW = (int64_t)c->n_head * hd,
                  KW = (int64_t)c->n_head_kv * hd, F = c->n_ff, V = c->n_vocab;
    const int64_t widest = F > QW ? (F > D ? F : D) : (QW > D ? QW : D);
    const size_t nn = (size_t)n, nblk = (size_t)((n + TB - 1) / TB);
    const int32_t n_out = n - first, out_rows = n_out < TB ? n_out : TB;
    double *x = malloc(nn * (size_t)D * sizeof(double));
    double *xb = malloc(nn * (size_t)D * sizeof(double));
    double *q = malloc(nn * (size_t)QW * sizeof(double));
    double *k = malloc(nn * (size_t)KW * sizeof(double));
    double *v = malloc(nn * (size_t)KW * sizeof(double));
    double *att = malloc(nn * (size_t)QW * sizeof(double));
    double *gate = malloc(nn * (size_t)F * sizeof(double));
    double *up = malloc(nn * (size_t)F * sizeof(double));
    double *xt = malloc(nblk * TB * (size_t)widest * sizeof(double));
    double *logits = malloc((size_t)out_rows * (size_t)V * sizeof(double));
    float *rowf = malloc((size_t)widest * sizeof(float));
    double *xr = rounding == QP_REF_LLAMA_CPU ? malloc(nn * (size_t)widest * sizeof(double)) : NULL;
    const struct mm_ctx mc = {.xt = xt, .xr = xr, .tmp = rowf, .n_threads = n_threads,
                              .rounding = rounding};
    enum qp_status s = QP_OK;
    if (!x || !xb || !q || !k || !v || !att || !gate || !up || !xt || !logits || !rowf ||
        (rounding == QP_REF_LLAMA_CPU && !xr)) {
        s = qp_error_set(err, QP_ERR_NOMEM, "oracle: out of memory for a sequence of %d tokens",
                         (int)n);
        goto done;
    }
    for (int32_t t = 0; t < n; t++) {
        qp_quant_dequant_row(r->token_embd.type,
                             (const char *)r->token_embd.data +
                                 (size_t)tokens[t] * r->token_embd.row_bytes,
                             rowf, D);
        for (int64_t i = 0; i < D; i++) x[(size_t)t * (size_t)D + (size_t)i] = (double)rowf[i];
    }
    const double eps = (double)c->eps, base = (double)c->rope_base;
    for (int32_t l = 0; l < c->n_layer && s == QP_OK; l++) {
        const struct ref_layer *L = &r->layers[l];
        for (int32_t t = 0; t < n; t++)
            rmsnorm64(xb + (size_t)t * (size_t)D, x + (size_t)t * (size_t)D, L->attn_norm, D, eps);
        if ((s = mm64(&L->wq, xb, n, L->bq, q, QW, &mc, err)) != QP_OK ||
            (s = mm64(&L->wk, xb, n, L->bk, k, KW, &mc, err)) != QP_OK ||
            (s = mm64(&L->wv, xb, n, L->bv, v, KW, &mc, err)) != QP_OK)
            break;
        for (int32_t t = 0; t < n; t++) {
            for (int64_t h = 0; h < c->n_head; h++) rope64(q + t * QW + h * hd, (int32_t)hd, t, base);
            for (int64_t h = 0; h < c->n_head_kv; h++) rope64(k + t * KW + h * hd, (int32_t)hd, t, base);
        }
        if (rounding != QP_REF_EXACT)
            for (size_t i = 0; i < nn * (size_t)KW; i++) {
                k[i] = to_f16(k[i]);
                v[i] = to_f16(v[i]);
            }
        if (rounding == QP_REF_LLAMA_CPU)
            for (size_t i = 0; i < nn * (size_t)QW; i++) q[i] = to_f16(q[i]);
        struct att_job aj = {.c = c, .n = n, .q = q, .k = k, .v = v, .att = att,
                             .llama = rounding == QP_REF_LLAMA_CPU};
        par_for(n_threads, c->n_head, att_range, &aj);
        if (aj.nomem) {
            s = qp_error_set(err, QP_ERR_NOMEM, "oracle: out of memory");
            break;
        }
        if ((s = mm64(&L->wo, att, n, L->bo, xb, D, &mc, err)) != QP_OK) break;
        for (size_t i = 0; i < nn * (size_t)D; i++) x[i] += xb[i];

        for (int32_t t = 0; t < n; t++)
            rmsnorm64(xb + (size_t)t * (size_t)D, x + (size_t)t * (size_t)D, L->ffn_norm, D, eps);
        if ((s = mm64(&L->w_gate, xb, n, NULL, gate, F, &mc, err)) != QP_OK ||
            (s = mm64(&L->w_up, xb, n, NULL, up, F, &mc, err)) != QP_OK)
            break;
        for (size_t i = 0; i < nn * (size_t)F; i++) {
            const double g = gate[i];
            gate[i] = g / (1.0 + exp(-g)) * up[i];
        }
        if ((s = mm64(&L->w_down, gate, n, NULL, xb, D, &mc, err)) != QP_OK) break;
        for (size_t i = 0; i < nn * (size_t)D; i++) x[i] += xb[i];
    }
    /* the LM head on rows first.. in groups of out_rows, each group's logits handed out in order */
    for (int32_t g0 = first; g0 < n && s == QP_OK; g0 += out_rows) {
        const int32_t m = n - g0 < out_rows ? n - g0 : out_rows;
        for (int32_t t = 0; t < m; t++)
            rmsnorm64(xb + (size_t)t * (size_t)D, x + (size_t)(g0 + t) * (size_t)D, r->output_norm,
                      D, eps);
        if ((s = mm64(&r->output, xb, m, NULL, logits, V, &mc, err)) != QP_OK) break;
        for (int32_t t = 0; t < m; t++)
            if (row(user, g0 + t, logits + (size_t)t * (size_t)V)) {
                s = qp_error_set(err, QP_ERR_INTERRUPTED, "oracle: stopped by the caller");
                break;
            }
    }
done:
    free(x);
    free(xb);
    free(q);
    free(k);
    free(v);
    free(att);
    free(gate);
    free(up);
    free(xt);
    free(logits);
    free(rowf);
    free(xr);
    return s;
}
