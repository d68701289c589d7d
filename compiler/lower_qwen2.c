/* lower_qwen2.c — the qwen2 architecture (Qwen2, Qwen2.5) as an unfused op graph.
 *
 * Hyperparameters come only from the GGUF metadata (qwen2.* keys, the tokenizer's token
 * count); tensors are checked for presence, shape and a type the kernels read before any node
 * uses them. The graph, for n_tok token rows (buffers are sized for limits.max_chunk rows; the
 * tail runs on the last row only):
 *
 *   x = embed(token_embd)
 *   per layer L:  h = rms_norm(x, attn_norm)
 *                 q, k, v = linear(h, attn_q/k/v + bias);  rope q;  rope k;  kv_write(k, v)
 *                 attn = attention(q);  o = linear(attn, attn_output);  x = x + o
 *                 h = rms_norm(x, ffn_norm);  gate, up = linear(h, ffn_gate / ffn_up)
 *                 act = swiglu(gate, up);  down = linear(act, ffn_down);  x = x + down
 *   hf = rms_norm(x, output_norm) [last row];  logits = linear(hf, output | token_embd)
 *   argmax(logits);  step_advance
 *
 * Buffers are named by role and reused by every layer (x, h, q, k, v, attn, o, gate, up, act,
 * down); the memory planner overlaps those whose live ranges do not meet.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "compile_internal.h"
#include "qp_ggml.h"

struct lw {
    const struct qp_gguf *g;
    struct qp_plan *p;
    struct qp_error *err;
    const char *path;
};

/* A tensor that must exist as [ne0] (ne1 == 0: a vector) or [ne0, ne1], of a supported type
 * (F32 when f32_only). Adds it to the plan's weights. */
static enum qp_status need(struct lw *l, const char *name, int64_t ne0, int64_t ne1,
                           bool f32_only, const char *what, int32_t *idx) {
    const struct qp_gguf_tensor *t = qp_gguf_find_tensor(l->g, name);
    if (!t)
        return qp_error_set(l->err, QP_ERR_FORMAT, "%s: tensor '%s' (%s) is missing", l->path,
                            name, what);
    bool vec = ne1 == 0;
    if (t->ne[0] != ne0 || t->ne[1] != (vec ? 1 : ne1) || t->ne[2] != 1 || t->ne[3] != 1) {
        char want[64];
        if (vec) snprintf(want, sizeof want, "[%" PRId64 "]", ne0);
        else snprintf(want, sizeof want, "[%" PRId64 ", %" PRId64 "]", ne0, ne1);
        return qp_error_set(l->err, QP_ERR_FORMAT,
                            "%s: tensor '%s' (%s) has shape [%" PRId64 ", %" PRId64 ", %" PRId64
                            ", %" PRId64 "] (ne), expected %s",
                            l->path, name, what, t->ne[0], t->ne[1], t->ne[2], t->ne[3], want);
    }
    const struct qp_ggml_type_info *ti = qp_ggml_type_info(t->type);
    if (f32_only && t->type != QP_GGML_F32)
        return qp_error_set(l->err, QP_ERR_UNSUPPORTED, "%s: tensor '%s' (%s) is %s, expected F32",
                            l->path, name, what, qp_ggml_type_name(t->type));
    if (!ti || !ti->supported)
        return qp_error_set(l->err, QP_ERR_UNSUPPORTED,
                            "%s: tensor '%s' has type %s, which this project cannot run", l->path,
                            name, qp_ggml_type_name(t->type));
    return qp_build_weight(l->p, name, t->type, vec ? 1 : ne1, ne0, 1, &name, NULL, idx, l->err);
}

static enum qp_status get_int(struct lw *l, const char *key, int64_t *out) {
    char k[96];
    snprintf(k, sizeof k, "qwen2.%s", key);
    return qp_gguf_get_int(l->g, k, 1, INT32_MAX, out, l->err);
}

#define TRY(x)                                                                                 \
    do {                                                                                       \
        enum qp_status st_ = (x);                                                              \
        if (st_ != QP_OK) return st_;                                                          \
    } while (0)

static enum qp_status hparams(struct lw *l) {
    struct qp_plan_hparams *h = &l->p->hparams;
    const struct qp_gguf *g = l->g;
    TRY(get_int(l, "context_length", &h->n_ctx_train));
    TRY(get_int(l, "embedding_length", &h->n_embd));
    TRY(get_int(l, "block_count", &h->n_layer));
    TRY(get_int(l, "feed_forward_length", &h->n_ff));
    TRY(get_int(l, "attention.head_count", &h->n_head));
    if (qp_gguf_find(g, "qwen2.attention.head_count_kv"))
        TRY(get_int(l, "attention.head_count_kv", &h->n_head_kv));
    else
        h->n_head_kv = h->n_head; /* llama.cpp's rule: no key means no GQA */
    double v;
    TRY(qp_gguf_get_float(g, "qwen2.attention.layer_norm_rms_epsilon", &v, l->err));
    if (!(v > 0 && v < 1))
        return qp_error_set(l->err, QP_ERR_FORMAT, "%s: qwen2.attention.layer_norm_rms_epsilon "
                            "is %g, expected a value in (0, 1)", l->path, v);
    h->eps = v;
    if (qp_gguf_find(g, "qwen2.rope.freq_base")) {
        TRY(qp_gguf_get_float(g, "qwen2.rope.freq_base", &v, l->err));
        if (!(v > 1))
            return qp_error_set(l->err, QP_ERR_FORMAT, "%s: qwen2.rope.freq_base is %g, expected "
                                "> 1", l->path, v);
        h->rope_base = v;
    } else {
        h->rope_base = 10000.0; /* llama.cpp's default when the key is absent */
    }
    /* vocabulary: the tokenizer's token count (what llama.cpp uses) */
    const struct qp_gguf_kv *tok = qp_gguf_find(g, "tokenizer.ggml.tokens");
    if (tok) {
        const struct qp_gguf_value *arr;
        TRY(qp_gguf_get_array(g, "tokenizer.ggml.tokens", QP_GGUF_STRING, &arr, l->err));
        if (arr->arr.n < 1 || arr->arr.n > INT32_MAX)
            return qp_error_set(l->err, QP_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %" PRIu64
                                " entries", l->path, arr->arr.n);
        h->n_vocab = (int64_t)arr->arr.n;
    } else if (qp_gguf_find(g, "qwen2.vocab_size")) {
        TRY(get_int(l, "vocab_size", &h->n_vocab));
    } else {
        return qp_error_set(l->err, QP_ERR_FORMAT, "%s: no vocabulary size: neither "
                            "tokenizer.ggml.tokens nor qwen2.vocab_size is present", l->path);
    }
    /* contradictions */
    if (h->n_embd % h->n_head)
        return qp_error_set(l->err, QP_ERR_FORMAT, "%s: embedding_length %" PRId64 " is not a "
                            "multiple of head_count %" PRId64, l->path, h->n_embd, h->n_head);
    if (h->n_head % h->n_head_kv)
        return qp_error_set(l->err, QP_ERR_FORMAT, "%s: head_count %" PRId64 " is not a multiple "
                            "of head_count_kv %" PRId64, l->path, h->n_head, h->n_head_kv);
    h->head_dim = h->n_embd / h->n_head;
    int64_t kl;
    if (qp_gguf_find(g, "qwen2.attention.key_length")) {
        TRY(get_int(l, "attention.key_length", &kl));
        if (kl != h->head_dim)
            return qp_error_set(l->err, QP_ERR_UNSUPPORTED, "%s: attention.key_length %" PRId64
                                " differs from embedding_length / head_count = %" PRId64,
                                l->path, kl, h->head_dim);
    }
    if (h->head_dim % 2)
        return qp_error_set(l->err, QP_ERR_FORMAT, "%s: head dimension %" PRId64 " is odd (RoPE "
                            "rotates pairs)", l->path, h->head_dim);
    if (qp_gguf_find_tensor(g, "blk.0.attn_qkv.weight"))
        return qp_error_set(l->err, QP_ERR_UNSUPPORTED, "%s: fused 'attn_qkv' tensors are not "
                            "supported yet (separate attn_q/attn_k/attn_v expected)", l->path);
    return QP_OK;
}

/* One node: in[0..n_in) buffers, out buffer (or -1), weights (or -1), bias (or -1), norm. */
static enum qp_status node(struct lw *l, enum qp_op op, int32_t in0, int32_t in1, int32_t out,
                           int32_t w, int32_t bias, int32_t norm, int64_t layer,
                           struct qp_plan_node **np) {
    struct qp_plan_node *n;
    TRY(qp_build_node(l->p, op, &n, l->err));
    const struct qp_plan_hparams *h = &l->p->hparams;
    if (in0 >= 0) n->in[n->n_in++] = in0;
    if (in1 >= 0) n->in[n->n_in++] = in1;
    n->out = out;
    if (w >= 0) n->weights[n->n_weights++] = w;
    if (bias >= 0) n->bias[n->n_bias++] = bias;
    n->norm = norm;
    if (norm >= 0) n->params.eps = h->eps;
    if (op == QP_OP_ROPE || op == QP_OP_ATTENTION || op == QP_OP_KV_WRITE) {
        n->params.head_dim = h->head_dim;
        n->params.layer = layer;
    }
    if (op == QP_OP_ATTENTION || op == QP_OP_KV_WRITE) {
        n->params.n_head = h->n_head;
        n->params.n_head_kv = h->n_head_kv;
    }
    if (op == QP_OP_KV_WRITE || op == QP_OP_ROPE) n->params.layer = op == QP_OP_ROPE ? -1 : layer;
    if (op == QP_OP_ROPE) n->params.rope_base = h->rope_base;
    if (np) *np = n;
    return QP_OK;
}

enum qp_status qp_lower_qwen2(const struct qp_gguf *g, struct qp_plan *p, struct qp_error *err) {
    struct lw l = {g, p, err, qp_gguf_path(g)};
    TRY(hparams(&l));
    const struct qp_plan_hparams *h = &p->hparams;
    int64_t E = h->n_embd, F = h->n_ff, Q = h->n_head * h->head_dim;
    int64_t KV = h->n_head_kv * h->head_dim, R = p->limits.max_chunk;
    if (R < 1) return qp_error_set(err, QP_ERR_INVALID, "internal: max_chunk not set");

    int32_t x, hb, q, k, v, attn, o, gate, up, act, down, hf, logits;
    TRY(qp_build_buffer(p, "x", R, E, &x, err));
    TRY(qp_build_buffer(p, "h", R, E, &hb, err));
    TRY(qp_build_buffer(p, "q", R, Q, &q, err));
    TRY(qp_build_buffer(p, "k", R, KV, &k, err));
    TRY(qp_build_buffer(p, "v", R, KV, &v, err));
    TRY(qp_build_buffer(p, "attn", R, Q, &attn, err));
    TRY(qp_build_buffer(p, "o", R, E, &o, err));
    TRY(qp_build_buffer(p, "gate", R, F, &gate, err));
    TRY(qp_build_buffer(p, "up", R, F, &up, err));
    TRY(qp_build_buffer(p, "act", R, F, &act, err));
    TRY(qp_build_buffer(p, "down", R, E, &down, err));
    TRY(qp_build_buffer(p, "hf", 1, E, &hf, err));
    TRY(qp_build_buffer(p, "logits", 1, h->n_vocab, &logits, err));

    int32_t embd, out_w, out_norm;
    TRY(need(&l, "token_embd.weight", E, h->n_vocab, false, "token embeddings", &embd));
    TRY(node(&l, QP_OP_EMBED, -1, -1, x, embd, -1, -1, -1, NULL));

    for (int64_t L = 0; L < h->n_layer; L++) {
        char nm[96];
        int32_t an, wq, wk, wv, bq, bk, bv, wo, fn, wg, wu, wd;
#define T(suffix, ne0, ne1, f32, what, idx)                                                    \
    do {                                                                                       \
        snprintf(nm, sizeof nm, "blk.%" PRId64 ".%s", L, suffix);                              \
        TRY(need(&l, nm, ne0, ne1, f32, what, idx));                                           \
    } while (0)
        T("attn_norm.weight", E, 0, true, "attention norm", &an);
        T("attn_q.weight", E, Q, false, "query projection", &wq);
        T("attn_k.weight", E, KV, false, "key projection", &wk);
        T("attn_v.weight", E, KV, false, "value projection", &wv);
        T("attn_q.bias", Q, 0, true, "query bias", &bq);
        T("attn_k.bias", KV, 0, true, "key bias", &bk);
        T("attn_v.bias", KV, 0, true, "value bias", &bv);
        T("attn_output.weight", Q, E, false, "attention output", &wo);
        T("ffn_norm.weight", E, 0, true, "FFN norm", &fn);
        T("ffn_gate.weight", E, F, false, "FFN gate", &wg);
        T("ffn_up.weight", E, F, false, "FFN up", &wu);
        T("ffn_down.weight", F, E, false, "FFN down", &wd);
#undef T
        struct qp_plan_node *n;
        TRY(node(&l, QP_OP_RMS_NORM, x, -1, hb, -1, -1, an, L, NULL));
        TRY(node(&l, QP_OP_LINEAR, hb, -1, q, wq, bq, -1, L, NULL));
        TRY(node(&l, QP_OP_LINEAR, hb, -1, k, wk, bk, -1, L, NULL));
        TRY(node(&l, QP_OP_LINEAR, hb, -1, v, wv, bv, -1, L, NULL));
        TRY(node(&l, QP_OP_ROPE, q, -1, q, -1, -1, -1, L, &n));
        n->params.n_head = h->n_head;
        TRY(node(&l, QP_OP_ROPE, k, -1, k, -1, -1, -1, L, &n));
        n->params.n_head = h->n_head_kv;
        TRY(node(&l, QP_OP_KV_WRITE, k, v, -1, -1, -1, -1, L, NULL));
        TRY(node(&l, QP_OP_ATTENTION, q, -1, attn, -1, -1, -1, L, NULL));
        TRY(node(&l, QP_OP_LINEAR, attn, -1, o, wo, -1, -1, L, NULL));
        TRY(node(&l, QP_OP_ADD, x, o, x, -1, -1, -1, L, NULL));
        TRY(node(&l, QP_OP_RMS_NORM, x, -1, hb, -1, -1, fn, L, NULL));
        TRY(node(&l, QP_OP_LINEAR, hb, -1, gate, wg, -1, -1, L, NULL));
        TRY(node(&l, QP_OP_LINEAR, hb, -1, up, wu, -1, -1, L, NULL));
        TRY(node(&l, QP_OP_SWIGLU, gate, up, act, -1, -1, -1, L, NULL));
        TRY(node(&l, QP_OP_LINEAR, act, -1, down, wd, -1, -1, L, NULL));
        TRY(node(&l, QP_OP_ADD, x, down, x, -1, -1, -1, L, NULL));
    }
    TRY(need(&l, "output_norm.weight", E, 0, true, "final norm", &out_norm));
    if (qp_gguf_find_tensor(g, "output.weight"))
        TRY(need(&l, "output.weight", E, h->n_vocab, false, "LM head", &out_w));
    else
        out_w = embd; /* tied embeddings */
    struct qp_plan_node *n;
    TRY(node(&l, QP_OP_RMS_NORM, x, -1, hf, -1, -1, out_norm, -1, &n));
    n->rows = QP_PLAN_ROWS_LAST;
    TRY(node(&l, QP_OP_LINEAR, hf, -1, logits, out_w, -1, -1, -1, &n));
    n->rows = QP_PLAN_ROWS_LAST;
    TRY(node(&l, QP_OP_ARGMAX, logits, -1, -1, -1, -1, -1, -1, &n));
    n->rows = QP_PLAN_ROWS_LAST;
    TRY(node(&l, QP_OP_STEP_ADVANCE, -1, -1, -1, -1, -1, -1, -1, NULL));
    return QP_OK;
}
