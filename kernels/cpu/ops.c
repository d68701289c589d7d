/* ops.c — the CPU backend's op table: qp_cpu_ops[op] unpacks struct qp_op_args, checks every
 * shape, pointer, type and bound it reads (a bad plan gets a status and a one-line message
 * naming the op, never a crash), and calls the plain functions of qp_cpu.h.
 *
 * Linear uses quantized dot products when n_tok is 1 (decode) and dequantizes each weight row
 * once for all tokens otherwise (prefill); the choice is the op's, never the tile's.
 *
 * Fused linear: the prologue (RMSNorm of the input) and the staging the epilogues need (the
 * "up" half for SwiGLU, K and V before RoPE and the cache write) go through a workspace of
 * WS floats on the stack, or args->scratch when that is larger; tokens are processed in tiles
 * that fit it. Because qp_cpu_linear's elements do not depend on the tile, every fused form
 * equals its unfused sequence bit for bit (tests/test_ops_fused.c).
 */
#include <string.h>

#include "cpu_internal.h"
#include "qp_cpu.h"
#include "qp_ggml.h"

#define WS 32768 /* f32 workspace on the stack: 128 KiB */

static const char *op_name(const struct qp_op_args *a) {
    const struct qp_op_desc *d = qp_op_desc(a->op);
    return d ? d->name : "?";
}

static enum qp_status check_n_tok(const struct qp_op_args *a, struct qp_error *err) {
    if (a->n_tok < 1)
        return qp_error_set(err, QP_ERR_INVALID, "%s: n_tok %d, expected >= 1", op_name(a), (int)a->n_tok);
    return QP_OK;
}

static enum qp_status check_ptr(const struct qp_op_args *a, const void *p, const char *what,
                                struct qp_error *err) {
    if (!p) return qp_error_set(err, QP_ERR_INVALID, "%s: %s is NULL", op_name(a), what);
    return QP_OK;
}

/* out_w (or in_w) of 0 means "the op's natural width"; any other value must equal it. */
static enum qp_status check_width(const struct qp_op_args *a, const char *field, int64_t got, int64_t want,
                                  struct qp_error *err) {
    if (got != 0 && got != want)
        return qp_error_set(err, QP_ERR_INVALID, "%s: %s is %lld, expected %lld", op_name(a), field,
                            (long long)got, (long long)want);
    return QP_OK;
}

static enum qp_status check_weight(const struct qp_op_args *a, int i, struct qp_error *err) {
    const struct qp_weight *w = &a->w[i];
    size_t rb = 0;
    if (!w->data) return qp_error_set(err, QP_ERR_INVALID, "%s: weight part %d has no data", op_name(a), i);
    if (!qp_ggml_type_info(w->type))
        return qp_error_set(err, QP_ERR_UNSUPPORTED, "%s: weight part %d has unknown type id %d", op_name(a), i,
                            (int)w->type);
    if (!qp_cpu_weight_type_supported(w->type))
        return qp_error_set(err, QP_ERR_UNSUPPORTED, "%s: weight part %d has type %s, which the CPU backend cannot read",
                            op_name(a), i, qp_ggml_type_name(w->type));
    if (w->rows < 1 || w->cols < 1 || !qp_ggml_row_bytes(w->type, w->cols, &rb) || rb != w->row_bytes)
        return qp_error_set(err, QP_ERR_INVALID,
                            "%s: weight part %d (%s, %lld x %lld) has row_bytes %zu, expected %zu (cols a multiple of %u)",
                            op_name(a), i, qp_ggml_type_name(w->type), (long long)w->rows, (long long)w->cols,
                            w->row_bytes, rb, qp_ggml_type_info(w->type)->block_elems);
    return QP_OK;
}

static enum qp_status check_step(const struct qp_op_args *a, struct qp_error *err) {
    if (!a->step) return qp_error_set(err, QP_ERR_INVALID, "%s: no step state", op_name(a));
    if (a->step->n_tok != a->n_tok)
        return qp_error_set(err, QP_ERR_INVALID, "%s: step state holds %d rows but the op was given n_tok %d",
                            op_name(a), (int)a->step->n_tok, (int)a->n_tok);
    if (a->step->n_out != a->n_tok && a->step->n_out != 1)
        return qp_error_set(err, QP_ERR_INVALID, "%s: step state outputs %d rows of %d (1 or all)", op_name(a),
                            (int)a->step->n_out, (int)a->n_tok);
    for (int32_t t = 0; t < a->n_tok; t++)
        if (a->step->rows[t].pos < 0)
            return qp_error_set(err, QP_ERR_INVALID, "%s: row %d's position %d is negative", op_name(a), (int)t,
                                (int)a->step->rows[t].pos);
    return QP_OK;
}

/* head geometry: n_head, n_head_kv >= 1, n_head % n_head_kv == 0, head_dim even in [2, MAX]. */
static enum qp_status check_heads(const struct qp_op_args *a, bool need_kv, struct qp_error *err) {
    if (a->head_dim < 2 || a->head_dim % 2 || a->head_dim > QP_CPU_MAX_HEAD_DIM)
        return qp_error_set(err, QP_ERR_INVALID, "%s: head_dim %d, expected an even number in [2, %d]",
                            op_name(a), (int)a->head_dim, QP_CPU_MAX_HEAD_DIM);
    if (a->n_head < 1) return qp_error_set(err, QP_ERR_INVALID, "%s: n_head %d", op_name(a), (int)a->n_head);
    if (need_kv && (a->n_head_kv < 1 || a->n_head % a->n_head_kv))
        return qp_error_set(err, QP_ERR_INVALID, "%s: n_head %d is not a multiple of n_head_kv %d", op_name(a),
                            (int)a->n_head, (int)a->n_head_kv);
    return QP_OK;
}

/* The cache slice and the rows [pos, pos+n_tok) this step touches; kv_dim must match the heads. */
static enum qp_status check_kv(const struct qp_op_args *a, struct qp_error *err) {
    const struct qp_kv_ref *kv = &a->kv;
    if (!kv->k || !kv->v) return qp_error_set(err, QP_ERR_INVALID, "%s: KV cache not bound", op_name(a));
    if (kv->type != QP_GGML_F32 && kv->type != QP_GGML_F16)
        return qp_error_set(err, QP_ERR_UNSUPPORTED, "%s: KV cache type %s, expected F16 or F32", op_name(a),
                            qp_ggml_type_name(kv->type));
    if (kv->kv_dim != (int64_t)a->n_head_kv * a->head_dim)
        return qp_error_set(err, QP_ERR_INVALID, "%s: KV cache kv_dim %lld, expected n_head_kv %d x head_dim %d",
                            op_name(a), (long long)kv->kv_dim, (int)a->n_head_kv, (int)a->head_dim);
    for (int32_t t = 0; t < a->n_tok; t++) {
        const struct qp_step_row *r = &a->step->rows[t];
        if (r->slot < 0) continue; /* a padding row */
        if (r->slot >= kv->slots)
            return qp_error_set(err, QP_ERR_RANGE, "%s: row %d is in slot %d, the KV cache has %lld", op_name(a),
                                (int)t, (int)r->slot, (long long)kv->slots);
        if (r->pos >= kv->ctx)
            return qp_error_set(err, QP_ERR_RANGE, "%s: context full: row %d's position %d does not fit a KV cache "
                                "of %lld", op_name(a), (int)t, (int)r->pos, (long long)kv->ctx);
    }
    return QP_OK;
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        enum qp_status s_ = (x);                                                                   \
        if (s_ != QP_OK) return s_;                                                                \
    } while (0)

static enum qp_status op_embed(const struct qp_op_args *a, struct qp_error *err) {
    TRY(check_n_tok(a, err));
    TRY(check_step(a, err));
    TRY(check_ptr(a, a->out, "out", err));
    if (a->n_parts != 1)
        return qp_error_set(err, QP_ERR_INVALID, "embed: %d weight parts, expected 1", (int)a->n_parts);
    TRY(check_weight(a, 0, err));
    TRY(check_width(a, "out_w", a->out_w, a->w[0].cols, err));
    for (int32_t t = 0; t < a->n_tok; t++) {
        int32_t id = a->step->rows[t].token;
        if (id < 0 || id >= a->w[0].rows)
            return qp_error_set(err, QP_ERR_RANGE, "embed: token %d (#%d of the step) is outside the vocabulary of %lld",
                                (int)id, (int)t, (long long)a->w[0].rows);
    }
    qp_cpu_embed(&a->w[0], a->step->rows, a->n_tok, a->out);
    return QP_OK;
}

static enum qp_status op_rms_norm(const struct qp_op_args *a, struct qp_error *err) {
    TRY(check_n_tok(a, err));
    TRY(check_ptr(a, a->in0, "in0", err));
    TRY(check_ptr(a, a->out, "out", err));
    TRY(check_ptr(a, a->norm, "norm", err));
    if (a->in_w < 1) return qp_error_set(err, QP_ERR_INVALID, "rms_norm: in_w %lld", (long long)a->in_w);
    TRY(check_width(a, "out_w", a->out_w, a->in_w, err));
    if (!(a->eps >= 0.0f)) return qp_error_set(err, QP_ERR_INVALID, "rms_norm: eps %g is negative", (double)a->eps);
    qp_cpu_rms_norm(a->in0, a->norm, a->out, a->n_tok, a->in_w, a->eps);
    return QP_OK;
}

/* Linear: checks, then tiles of tokens through the workspace (see the file comment). */
static enum qp_status op_linear(const struct qp_op_args *a, struct qp_error *err) {
    TRY(check_n_tok(a, err));
    TRY(check_ptr(a, a->in0, "in0", err));
    TRY(check_ptr(a, a->out, "out", err));
    if (a->n_parts < 1 || a->n_parts > QP_OP_MAX_PARTS)
        return qp_error_set(err, QP_ERR_INVALID, "linear: %d weight parts, expected 1..%d", (int)a->n_parts,
                            QP_OP_MAX_PARTS);
    int64_t rows_total = 0;
    for (int i = 0; i < a->n_parts; i++) {
        TRY(check_weight(a, i, err));
        if (a->w[i].cols != a->in_w)
            return qp_error_set(err, QP_ERR_INVALID, "linear: weight part %d has %lld columns, expected in_w %lld", i,
                                (long long)a->w[i].cols, (long long)a->in_w);
        rows_total += a->w[i].rows;
    }
    if (a->prologue == QP_PROLOGUE_RMS_NORM) {
        TRY(check_ptr(a, a->norm, "norm (rms_norm prologue)", err));
        if (!(a->eps >= 0.0f)) return qp_error_set(err, QP_ERR_INVALID, "linear: eps %g is negative", (double)a->eps);
    } else if (a->prologue != QP_PROLOGUE_NONE) {
        return qp_error_set(err, QP_ERR_INVALID, "linear: unknown prologue %d", (int)a->prologue);
    }

    int64_t out_w = rows_total, stage = 0; /* stage: f32 per token the epilogue stages */
    switch (a->epilogue) {
    case QP_EPILOGUE_NONE: break;
    case QP_EPILOGUE_RESIDUAL: TRY(check_ptr(a, a->in1, "in1 (residual)", err)); break;
    case QP_EPILOGUE_ARGMAX: TRY(check_ptr(a, a->step, "step (argmax epilogue)", err)); break;
    case QP_EPILOGUE_SWIGLU:
        if (a->n_parts != 2 || a->w[0].rows != a->w[1].rows)
            return qp_error_set(err, QP_ERR_INVALID, "linear/swiglu: expected 2 parts (gate, up) of equal rows, got %d",
                                (int)a->n_parts);
        out_w = stage = a->w[0].rows;
        break;
    case QP_EPILOGUE_ROPE_KV:
        if (a->n_parts != 3)
            return qp_error_set(err, QP_ERR_INVALID, "linear/rope_kv: expected 3 parts (q, k, v), got %d",
                                (int)a->n_parts);
        TRY(check_heads(a, true, err));
        TRY(check_step(a, err));
        TRY(check_kv(a, err));
        if (a->w[0].rows != (int64_t)a->n_head * a->head_dim || a->w[1].rows != a->kv.kv_dim ||
            a->w[2].rows != a->kv.kv_dim)
            return qp_error_set(err, QP_ERR_INVALID,
                                "linear/rope_kv: q, k, v have %lld, %lld, %lld rows, expected %lld, %lld, %lld",
                                (long long)a->w[0].rows, (long long)a->w[1].rows, (long long)a->w[2].rows,
                                (long long)a->n_head * a->head_dim, (long long)a->kv.kv_dim,
                                (long long)a->kv.kv_dim);
        out_w = a->w[0].rows;
        stage = 2 * a->kv.kv_dim;
        break;
    default: return qp_error_set(err, QP_ERR_INVALID, "linear: unknown epilogue %d", (int)a->epilogue);
    }
    if (a->out_w != out_w)
        return qp_error_set(err, QP_ERR_INVALID, "linear/%s: out_w %lld, expected %lld",
                            qp_epilogue_name(a->epilogue), (long long)a->out_w, (long long)out_w);

    float ws_stack[WS];
    float *ws = ws_stack;
    int64_t ws_n = WS;
    if (a->scratch && a->scratch_bytes / sizeof(float) > (size_t)WS) {
        ws = a->scratch;
        ws_n = (int64_t)(a->scratch_bytes / sizeof(float));
    }
    int64_t per_tok = stage + (a->prologue == QP_PROLOGUE_RMS_NORM ? a->in_w : 0);
    int64_t tile = per_tok ? ws_n / per_tok : a->n_tok;
    if (tile < 1)
        return qp_error_set(err, QP_ERR_INVALID, "linear: needs %lld bytes of scratch per token, has %lld",
                            (long long)per_tok * 4, (long long)ws_n * 4);
    if (tile > a->n_tok) tile = a->n_tok;
    /* a chunk of one sequence's tokens (prefill): dequantize each weight row once for them all;
     * one token, or a batch of sequences: quantized dot products, so that a sequence's rows are
     * bit-identical whatever else shares its step */
    const bool dq = a->n_tok > 1 && (!a->step || a->step->n_out == 1);
    float *xs = ws, *st = ws + (a->prologue == QP_PROLOGUE_RMS_NORM ? tile * a->in_w : 0);

    for (int64_t t0 = 0; t0 < a->n_tok; t0 += tile) {
        int64_t n = a->n_tok - t0 < tile ? a->n_tok - t0 : tile;
        const float *x = a->in0 + t0 * a->in_w;
        if (a->prologue == QP_PROLOGUE_RMS_NORM) {
            qp_cpu_rms_norm(x, a->norm, xs, n, a->in_w, a->eps);
            x = xs;
        }
        float *out = a->out + t0 * out_w;
        switch (a->epilogue) {
        case QP_EPILOGUE_NONE:
        case QP_EPILOGUE_ARGMAX:
        case QP_EPILOGUE_RESIDUAL: {
            int64_t off = 0;
            for (int i = 0; i < a->n_parts; i++) {
                const float *add = a->epilogue == QP_EPILOGUE_RESIDUAL ? a->in1 + t0 * out_w + off : NULL;
                qp_cpu_linear(&a->w[i], a->bias[i], x, a->in_w, n, out + off, out_w, add, out_w, dq);
                off += a->w[i].rows;
            }
            break;
        }
        case QP_EPILOGUE_SWIGLU:
            qp_cpu_linear(&a->w[0], a->bias[0], x, a->in_w, n, out, out_w, NULL, 0, dq);
            qp_cpu_linear(&a->w[1], a->bias[1], x, a->in_w, n, st, out_w, NULL, 0, dq);
            qp_cpu_swiglu(out, st, out, n * out_w);
            break;
        case QP_EPILOGUE_ROPE_KV: {
            int64_t kvd = a->kv.kv_dim;
            float *k = st, *v = st + n * kvd;
            qp_cpu_linear(&a->w[0], a->bias[0], x, a->in_w, n, out, out_w, NULL, 0, dq);
            qp_cpu_linear(&a->w[1], a->bias[1], x, a->in_w, n, k, kvd, NULL, 0, dq);
            qp_cpu_linear(&a->w[2], a->bias[2], x, a->in_w, n, v, kvd, NULL, 0, dq);
            qp_cpu_rope(out, out_w, n, a->n_head, a->head_dim, a->step->rows + t0, a->rope_base);
            qp_cpu_rope(k, kvd, n, a->n_head_kv, a->head_dim, a->step->rows + t0, a->rope_base);
            qp_cpu_kv_write(&a->kv, k, v, n, a->step->rows + t0);
            break;
        }
        }
    }
    if (a->epilogue == QP_EPILOGUE_ARGMAX)
        for (int32_t t = 0; t < a->n_tok; t++) a->step->rows[t].next = qp_cpu_argmax(a->out + t * out_w, out_w);
    return QP_OK;
}

static enum qp_status op_rope(const struct qp_op_args *a, struct qp_error *err) {
    TRY(check_n_tok(a, err));
    TRY(check_step(a, err));
    TRY(check_ptr(a, a->out, "out", err));
    TRY(check_heads(a, false, err));
    int64_t w = (int64_t)a->n_head * a->head_dim;
    if (a->out_w != w)
        return qp_error_set(err, QP_ERR_INVALID, "rope: out_w %lld, expected n_head %d x head_dim %d",
                            (long long)a->out_w, (int)a->n_head, (int)a->head_dim);
    if (a->in0 && a->in0 != a->out) {
        TRY(check_width(a, "in_w", a->in_w, w, err));
        memmove(a->out, a->in0, (size_t)(a->n_tok * w) * sizeof(float));
    }
    qp_cpu_rope(a->out, w, a->n_tok, a->n_head, a->head_dim, a->step->rows, a->rope_base);
    return QP_OK;
}

static enum qp_status op_kv_write(const struct qp_op_args *a, struct qp_error *err) {
    TRY(check_n_tok(a, err));
    TRY(check_step(a, err));
    TRY(check_ptr(a, a->in0, "in0 (K)", err));
    TRY(check_ptr(a, a->in1, "in1 (V)", err));
    TRY(check_heads(a, true, err));
    TRY(check_kv(a, err));
    TRY(check_width(a, "in_w", a->in_w, a->kv.kv_dim, err));
    qp_cpu_kv_write(&a->kv, a->in0, a->in1, a->n_tok, a->step->rows);
    return QP_OK;
}

static enum qp_status op_attention(const struct qp_op_args *a, struct qp_error *err) {
    TRY(check_n_tok(a, err));
    TRY(check_step(a, err));
    TRY(check_ptr(a, a->in0, "in0 (q)", err));
    TRY(check_ptr(a, a->out, "out", err));
    TRY(check_heads(a, true, err));
    TRY(check_kv(a, err));
    int64_t w = (int64_t)a->n_head * a->head_dim;
    TRY(check_width(a, "in_w", a->in_w, w, err));
    TRY(check_width(a, "out_w", a->out_w, w, err));
    qp_cpu_attention(a->in0, &a->kv, a->out, a->n_tok, a->n_head, a->n_head_kv, a->head_dim, a->step->rows);
    return QP_OK;
}

/* swiglu and add: [n][w] with w = out_w (in_w 0 or equal). */
static enum qp_status check_binary(const struct qp_op_args *a, struct qp_error *err) {
    TRY(check_n_tok(a, err));
    TRY(check_ptr(a, a->in0, "in0", err));
    TRY(check_ptr(a, a->in1, "in1", err));
    TRY(check_ptr(a, a->out, "out", err));
    if (a->out_w < 1) return qp_error_set(err, QP_ERR_INVALID, "%s: out_w %lld", op_name(a), (long long)a->out_w);
    return check_width(a, "in_w", a->in_w, a->out_w, err);
}

static enum qp_status op_swiglu(const struct qp_op_args *a, struct qp_error *err) {
    TRY(check_binary(a, err));
    qp_cpu_swiglu(a->in0, a->in1, a->out, a->n_tok * a->out_w);
    return QP_OK;
}

static enum qp_status op_add(const struct qp_op_args *a, struct qp_error *err) {
    TRY(check_binary(a, err));
    qp_cpu_add(a->in0, a->in1, a->out, a->n_tok * a->out_w);
    return QP_OK;
}

static enum qp_status op_argmax(const struct qp_op_args *a, struct qp_error *err) {
    TRY(check_n_tok(a, err));
    TRY(check_ptr(a, a->in0, "in0", err));
    TRY(check_ptr(a, a->step, "step", err));
    if (a->in_w < 1) return qp_error_set(err, QP_ERR_INVALID, "argmax: in_w %lld", (long long)a->in_w);
    for (int32_t t = 0; t < a->n_tok; t++)
        a->step->rows[t].next = qp_cpu_argmax(a->in0 + (int64_t)t * a->in_w, a->in_w);
    return QP_OK;
}

static enum qp_status op_step_advance(const struct qp_op_args *a, struct qp_error *err) {
    TRY(check_n_tok(a, err));
    TRY(check_step(a, err));
    for (int32_t t = 0; t < a->n_tok; t++)
        if (a->step->rows[t].pos == INT32_MAX)
            return qp_error_set(err, QP_ERR_RANGE, "step_advance: row %d's position overflows", (int)t);
    qp_cpu_step_advance(a->step);
    return QP_OK;
}

const qp_op_fn qp_cpu_ops[QP_OP_COUNT] = {
    [QP_OP_EMBED] = op_embed,
    [QP_OP_RMS_NORM] = op_rms_norm,
    [QP_OP_LINEAR] = op_linear,
    [QP_OP_ROPE] = op_rope,
    [QP_OP_KV_WRITE] = op_kv_write,
    [QP_OP_ATTENTION] = op_attention,
    [QP_OP_SWIGLU] = op_swiglu,
    [QP_OP_ADD] = op_add,
    [QP_OP_ARGMAX] = op_argmax,
    [QP_OP_STEP_ADVANCE] = op_step_advance,
};
