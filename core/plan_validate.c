/* plan_validate.c — is a plan internally consistent, and does it match its GGUF?
 *
 * qp_plan_validate checks everything that can be checked from the plan alone, so that a
 * runtime that trusts a validated plan can fill struct qp_op_args without further checks:
 * sizes recomputed from shapes and types, every arena region (step state, KV slices,
 * buffers, scratch) aligned and inside the arena, memory totals equal to their sums, buffer
 * liveness (no two buffers live at the same node share bytes; no read before a write), and
 * each node's operands, weights, widths, params and launch params consistent with its op.
 *
 * Liveness: a buffer is live from a node that writes it (its `out`) to the last node that
 * reads it (an `in`) before the next node that overwrites it without reading it; a node that
 * both reads and writes a buffer (in-place rope, residual add) continues its live range.
 * Ranges are per program; programs never run at once.
 *
 * qp_plan_check_model checks the plan's identity (file size, header hash) and weights
 * against an opened GGUF. Every message starts "source:line:" (the plan's YAML line when the
 * plan was read from a file).
 */
#include "qp_plan.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qp_ggml.h"

struct vd {
    const struct qp_plan *p;
    struct qp_error *err;
};

static enum qp_status bad(struct vd *v, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static enum qp_status bad(struct vd *v, int line, const char *fmt, ...) {
    char what[QP_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return qp_error_set(v->err, QP_ERR_INVALID, "%s:%d: %s",
                        v->p->source ? v->p->source : "(plan)", line, what);
}

#define TRY(x)                                                                                 \
    do {                                                                                       \
        enum qp_status st_ = (x);                                                              \
        if (st_ != QP_OK) return st_;                                                          \
    } while (0)

/* The line of a section or field ("hparams.eps", qp_plan_line); 1 for a plan built in memory. */
static int at(const struct vd *v, const char *path) {
    int line = qp_plan_line(v->p, path);
    return line ? line : 1;
}

/* [off, off + bytes) inside the arena and aligned. */
static enum qp_status check_region(struct vd *v, int line, const char *what, uint64_t off,
                                   uint64_t bytes) {
    const struct qp_plan *p = v->p;
    if (off % p->memory.alignment)
        return bad(v, line, "%s: offset %" PRIu64 " is not a multiple of the alignment %" PRIu64,
                   what, off, p->memory.alignment);
    if (off > p->memory.arena_bytes || bytes > p->memory.arena_bytes - off)
        return bad(v, line,
                   "%s: [%" PRIu64 ", %" PRIu64 ") extends past the arena (%" PRIu64 " bytes)",
                   what, off, off + bytes, p->memory.arena_bytes);
    return QP_OK;
}

static bool overlap(uint64_t a, uint64_t an, uint64_t b, uint64_t bn) {
    return an && bn && a < b + bn && b < a + an;
}

static size_t elem_size(int32_t t) { return t == QP_GGML_F16 ? 2 : 4; }

/* Fixed regions: step state and the 2 * n_layer KV slices. */
struct region {
    uint64_t off, bytes;
    char what[48];
};

static enum qp_status check_header(struct vd *v, struct region **fixed, int64_t *n_fixed) {
    const struct qp_plan *p = v->p;
    const struct qp_plan_hparams *h = &p->hparams;
    *fixed = NULL;
    if (p->version != QP_PLAN_VERSION)
        return bad(v, at(v, "qplan"), "plan format version %d, expected %d", p->version, QP_PLAN_VERSION);
    if (!p->target.backend || strcmp(p->target.backend, "cuda") != 0)
        return bad(v, at(v, "target.backend"), "target.backend '%s' is not known (known: cuda)",
                   p->target.backend ? p->target.backend : "");
    if (p->memory.alignment != QP_PLAN_ALIGNMENT)
        return bad(v, at(v, "memory.alignment"), "memory.alignment %" PRIu64 ", expected %d", p->memory.alignment,
                   QP_PLAN_ALIGNMENT);
    if (h->n_head % h->n_head_kv)
        return bad(v, at(v, "hparams.n_head"), "hparams: n_head %" PRId64 " is not a multiple of n_head_kv %" PRId64,
                   h->n_head, h->n_head_kv);
    if (h->head_dim % 2)
        return bad(v, at(v, "hparams.head_dim"), "hparams: head_dim %" PRId64 " is odd (RoPE rotates pairs)", h->head_dim);
    if (!(h->eps > 0 && h->eps < 1) || !(h->rope_base > 0))
        return bad(v, at(v, "hparams"), "hparams: eps %g must be in (0, 1) and rope_base %g positive", h->eps,
                   h->rope_base);
    if (p->limits.max_chunk > p->limits.max_ctx)
        return bad(v, at(v, "limits.max_chunk"), "limits: max_chunk %" PRId64 " exceeds max_ctx %" PRId64,
                   p->limits.max_chunk, p->limits.max_ctx);
    if (p->limits.max_ctx > h->n_ctx_train)
        return bad(v, at(v, "limits.max_ctx"), "limits: max_ctx %" PRId64 " exceeds the trained context %" PRId64,
                   p->limits.max_ctx, h->n_ctx_train);
    /* step state */
    uint64_t need = QP_STEP_HEADER_BYTES + QP_STEP_ROW_BYTES * (uint64_t)p->limits.max_chunk;
    if (p->step.bytes < need)
        return bad(v, at(v, "step.bytes"), "step.bytes %" PRIu64 " < %" PRIu64 " (16 + 16 * max_chunk)",
                   p->step.bytes, need);
    TRY(check_region(v, at(v, "step.offset"), "step", p->step.offset, p->step.bytes));
    /* KV cache */
    const struct qp_plan_kv *kv = &p->kv;
    if (kv->type != QP_GGML_F16 && kv->type != QP_GGML_F32)
        return bad(v, at(v, "kv_cache.type"), "kv_cache.type must be f16 or f32");
    if (kv->n_layer != h->n_layer)
        return bad(v, at(v, "kv_cache.n_layer"), "kv_cache.n_layer %" PRId64 " != hparams.n_layer %" PRId64, kv->n_layer,
                   h->n_layer);
    if (kv->ctx != p->limits.max_ctx)
        return bad(v, at(v, "kv_cache.ctx"), "kv_cache.ctx %" PRId64 " != limits.max_ctx %" PRId64, kv->ctx,
                   p->limits.max_ctx);
    if (kv->kv_dim != h->n_head_kv * h->head_dim)
        return bad(v, at(v, "kv_cache.kv_dim"), "kv_cache.kv_dim %" PRId64 " != n_head_kv * head_dim = %" PRId64,
                   kv->kv_dim, h->n_head_kv * h->head_dim);
    if (kv->slots > p->limits.max_chunk)
        return bad(v, at(v, "kv_cache.slots"), "kv_cache.slots %" PRId64 " exceeds limits.max_chunk %" PRId64
                   " (a batch step holds a row per slot)", kv->slots, p->limits.max_chunk);
    uint64_t slice = (uint64_t)kv->ctx * (uint64_t)kv->kv_dim; /* both < 2^31 */
    if (!qp_mul_size(slice, elem_size(kv->type), &slice) || !qp_mul_size(slice, (size_t)kv->slots, &slice))
        return bad(v, at(v, "kv_cache"), "kv_cache: slice size overflows");
    if (kv->layer_stride < slice)
        return bad(v, at(v, "kv_cache.layer_stride"), "kv_cache.layer_stride %" PRIu64 " < slots * ctx * kv_dim * %zu = %"
                   PRIu64, kv->layer_stride, elem_size(kv->type), slice);
    size_t kvb;
    if (!qp_mul_size(slice, 2 * (size_t)kv->n_layer, &kvb) || kvb != p->memory.kv_bytes)
        return bad(v, at(v, "memory.kv_bytes"), "memory.kv_bytes %" PRIu64 " != 2 * n_layer * slots * ctx * kv_dim * %zu = %zu",
                   p->memory.kv_bytes, elem_size(kv->type), kvb);
    *n_fixed = 1 + 2 * kv->n_layer;
    struct region *r = calloc((size_t)*n_fixed, sizeof *r);
    if (!r) return qp_error_set(v->err, QP_ERR_NOMEM, "out of memory validating a plan");
    *fixed = r;
    r[0] = (struct region){p->step.offset, p->step.bytes, "step"};
    for (int64_t l = 0; l < kv->n_layer; l++) {
        uint64_t ko, vo;
        if (!qp_mul_size((size_t)l, kv->layer_stride, &ko) ||
            !qp_add_size(ko, kv->k_offset, &vo) || !qp_add_size(ko, kv->v_offset, &ko))
            return bad(v, at(v, "kv_cache"), "kv_cache: layer offsets overflow");
        struct region *rk = &r[1 + 2 * l], *rv = &r[2 + 2 * l];
        rk->off = vo; /* k_offset + l * stride */
        rk->bytes = slice;
        snprintf(rk->what, sizeof rk->what, "kv_cache K of layer %" PRId64, l);
        rv->off = ko; /* v_offset + l * stride */
        rv->bytes = slice;
        snprintf(rv->what, sizeof rv->what, "kv_cache V of layer %" PRId64, l);
    }
    for (int64_t i = 0; i < *n_fixed; i++) {
        TRY(check_region(v, at(v, i ? "kv_cache" : "step"), r[i].what, r[i].off, r[i].bytes));
        for (int64_t j = 0; j < i; j++)
            if (overlap(r[i].off, r[i].bytes, r[j].off, r[j].bytes))
                return bad(v, at(v, i ? "kv_cache" : "step"), "%s overlaps %s", r[i].what, r[j].what);
    }
    return QP_OK;
}

static enum qp_status check_weights(struct vd *v) {
    const struct qp_plan *p = v->p;
    uint64_t total = 0;
    for (int32_t i = 0; i < p->n_weights; i++) {
        const struct qp_plan_weight *w = &p->weights[i];
        const struct qp_ggml_type_info *ti = qp_ggml_type_info(w->type);
        if (!ti || !ti->supported)
            return bad(v, w->line, "weight '%s': type %s is not supported", w->name,
                       qp_ggml_type_name(w->type));
        size_t rb, bytes;
        if (!qp_ggml_row_bytes(w->type, w->cols, &rb))
            return bad(v, w->line, "weight '%s': %" PRId64 " columns are not a multiple of %s's "
                       "block of %u", w->name, w->cols, ti->name, ti->block_elems);
        if (!qp_mul_size(rb, (size_t)w->rows, &bytes) || bytes != w->bytes)
            return bad(v, w->line, "weight '%s': bytes %" PRIu64 " != rows * row bytes = %zu",
                       w->name, w->bytes, bytes);
        if (w->n_from < 1 || !w->part_rows)
            return bad(v, w->line, "weight '%s': empty 'from'", w->name);
        int64_t sum = 0;
        for (int32_t j = 0; j < w->n_from; j++) sum += w->part_rows[j];
        if (sum != (w->rows == 1 ? w->cols : w->rows))
            return bad(v, w->line, "weight '%s': parts sum to %" PRId64 ", the shape has %" PRId64,
                       w->name, sum, w->rows == 1 ? w->cols : w->rows);
        if (!qp_add_size(total, bytes, &total))
            return bad(v, w->line, "weight bytes overflow");
    }
    if (total != p->memory.weight_bytes)
        return bad(v, at(v, "memory.weight_bytes"), "memory.weight_bytes %" PRIu64 " != sum of the weights' bytes %" PRIu64,
                   p->memory.weight_bytes, total);
    return QP_OK;
}

static enum qp_status check_buffers(struct vd *v, const struct region *fixed, int64_t n_fixed) {
    const struct qp_plan *p = v->p;
    for (int32_t i = 0; i < p->n_buffers; i++) {
        const struct qp_plan_buffer *b = &p->buffers[i];
        if (b->dtype != QP_GGML_F32)
            return bad(v, b->line, "buffer '%s': dtype %s, activations are f32", b->name,
                       qp_ggml_type_name(b->dtype));
        size_t bytes;
        if (!qp_mul_size((size_t)b->rows, (size_t)b->cols, &bytes) ||
            !qp_mul_size(bytes, 4, &bytes) || bytes != b->bytes)
            return bad(v, b->line, "buffer '%s': bytes %" PRIu64 " != rows * cols * 4 = %zu",
                       b->name, b->bytes, bytes);
        char what[160];
        snprintf(what, sizeof what, "buffer '%s'", b->name);
        TRY(check_region(v, b->line, what, b->offset, b->bytes));
        for (int64_t j = 0; j < n_fixed; j++)
            if (overlap(b->offset, b->bytes, fixed[j].off, fixed[j].bytes))
                return bad(v, b->line, "buffer '%s' [%" PRIu64 ", %" PRIu64 ") overlaps %s",
                           b->name, b->offset, b->offset + b->bytes, fixed[j].what);
    }
    return QP_OK;
}

/* Shorthands for node checks. */
struct nctx {
    struct vd *v;
    const struct qp_plan_node *n;
    const char *prog;
    int idx;
    const char *opname;
};

static enum qp_status nbad(struct nctx *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static enum qp_status nbad(struct nctx *c, const char *fmt, ...) {
    char what[QP_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return bad(c->v, c->n->line, "%s node %d (%s): %s", c->prog, c->idx, c->opname, what);
}

static const struct qp_plan_buffer *buf(struct nctx *c, int32_t i) {
    return &c->v->p->buffers[i];
}
static const struct qp_plan_weight *wt(struct nctx *c, int32_t i) {
    return &c->v->p->weights[i];
}

static enum qp_status want_io(struct nctx *c, int n_in, bool has_out) {
    if (c->n->n_in != n_in)
        return nbad(c, "takes %d input buffer(s), the plan gives %d", n_in, c->n->n_in);
    if (has_out != (c->n->out >= 0))
        return nbad(c, has_out ? "needs an 'out' buffer" : "must not have an 'out' buffer");
    return QP_OK;
}

static enum qp_status want_weights(struct nctx *c, int lo, int hi, bool bias_ok, bool norm) {
    const struct qp_plan_node *n = c->n;
    if (n->n_weights < lo || n->n_weights > hi)
        return nbad(c, "takes %d to %d weight part(s), the plan gives %d", lo, hi, n->n_weights);
    if (n->n_bias && (!bias_ok || n->n_bias != n->n_weights))
        return nbad(c, bias_ok ? "needs one bias per weight part (%d), the plan gives %d"
                               : "takes no bias (%d parts), the plan gives %d",
                    n->n_weights, n->n_bias);
    if (norm != (n->norm >= 0))
        return nbad(c, norm ? "needs a 'norm' weight" : "must not have a 'norm' weight");
    return QP_OK;
}

/* A f32 vector weight of cols entries. */
static enum qp_status want_vector(struct nctx *c, int32_t wi, int64_t cols, const char *role) {
    const struct qp_plan_weight *w = wt(c, wi);
    if (w->type != QP_GGML_F32 || w->rows != 1 || w->cols != cols)
        return nbad(c, "%s '%s' must be F32 [1, %" PRId64 "], is %s [%" PRId64 ", %" PRId64 "]",
                    role, w->name, cols, qp_ggml_type_name(w->type), w->rows, w->cols);
    return QP_OK;
}

static enum qp_status want_cols(struct nctx *c, int32_t bi, int64_t cols, const char *role) {
    const struct qp_plan_buffer *b = buf(c, bi);
    if (b->cols != cols)
        return nbad(c, "%s buffer '%s' is %" PRId64 " wide, the op needs %" PRId64, role, b->name,
                    b->cols, cols);
    return QP_OK;
}

static enum qp_status want_layer(struct nctx *c) {
    if (c->n->params.layer < 0 || c->n->params.layer >= c->v->p->kv.n_layer)
        return nbad(c, "params.layer %" PRId64 " is not a KV cache layer (0..%" PRId64 ")",
                    c->n->params.layer, c->v->p->kv.n_layer - 1);
    return QP_OK;
}

static enum qp_status want_heads(struct nctx *c, bool kv) {
    const struct qp_plan_params *pp = &c->n->params;
    const struct qp_plan_hparams *h = &c->v->p->hparams;
    if (pp->head_dim != h->head_dim)
        return nbad(c, "params.head_dim %" PRId64 " != hparams.head_dim %" PRId64, pp->head_dim,
                    h->head_dim);
    if (kv && (pp->n_head != h->n_head || pp->n_head_kv != h->n_head_kv))
        return nbad(c, "params n_head %" PRId64 " / n_head_kv %" PRId64 " != hparams %" PRId64
                    " / %" PRId64, pp->n_head, pp->n_head_kv, h->n_head, h->n_head_kv);
    return QP_OK;
}

static enum qp_status want_eps(struct nctx *c) {
    if (!(c->n->params.eps > 0 && c->n->params.eps < 1))
        return nbad(c, "params.eps %g must be in (0, 1)", c->n->params.eps);
    return QP_OK;
}

static enum qp_status want_rope(struct nctx *c) {
    if (!(c->n->params.rope_base > 0))
        return nbad(c, "params.rope_base %g must be positive", c->n->params.rope_base);
    return QP_OK;
}

static enum qp_status check_linear(struct nctx *c) {
    const struct qp_plan_node *n = c->n;
    const struct qp_plan_hparams *h = &c->v->p->hparams;
    bool residual = n->epilogue == QP_EPILOGUE_RESIDUAL;
    TRY(want_io(c, residual ? 2 : 1, true));
    TRY(want_weights(c, 1, QP_OP_MAX_PARTS, true, n->prologue == QP_PROLOGUE_RMS_NORM));
    struct qp_plan_part wp[QP_OP_MAX_PARTS], bp[QP_OP_MAX_PARTS];
    int np = qp_plan_node_parts(c->v->p, n, false, wp);
    int nbp = n->n_bias ? qp_plan_node_parts(c->v->p, n, true, bp) : 0;
    if (np < 0) return nbad(c, "its weights have more than %d parts", QP_OP_MAX_PARTS);
    if (n->n_bias && nbp != np)
        return nbad(c, "its biases have %d parts, its weights %d", nbp, np);
    int64_t in_w = buf(c, n->in[0])->cols, total = 0;
    for (int i = 0; i < np; i++) {
        const struct qp_plan_weight *w = wt(c, wp[i].weight);
        if (w->cols != in_w)
            return nbad(c, "weight '%s' has %" PRId64 " columns, the input is %" PRId64 " wide",
                        w->name, w->cols, in_w);
        total += wp[i].rows;
        if (n->n_bias) {
            const struct qp_plan_weight *b = wt(c, bp[i].weight);
            if (b->type != QP_GGML_F32 || b->rows != 1 || bp[i].rows != wp[i].rows)
                return nbad(c, "bias '%s' part %d must be F32 with %" PRId64 " entries", b->name,
                            i, wp[i].rows);
        }
    }
    if (n->prologue == QP_PROLOGUE_RMS_NORM) {
        TRY(want_vector(c, n->norm, in_w, "norm"));
        TRY(want_eps(c));
    }
    switch (n->epilogue) {
    case QP_EPILOGUE_NONE:
    case QP_EPILOGUE_ARGMAX: return want_cols(c, n->out, total, "out");
    case QP_EPILOGUE_RESIDUAL:
        TRY(want_cols(c, n->in[1], total, "residual"));
        return want_cols(c, n->out, total, "out");
    case QP_EPILOGUE_SWIGLU:
        if (np != 2 || wp[0].rows != wp[1].rows)
            return nbad(c, "swiglu needs 2 parts (gate, up) of equal rows, has %d", np);
        return want_cols(c, n->out, wp[0].rows, "out");
    case QP_EPILOGUE_ROPE_KV:
        TRY(want_heads(c, true));
        TRY(want_rope(c));
        TRY(want_layer(c));
        if (np != 3 || wp[0].rows != h->n_head * h->head_dim ||
            wp[1].rows != h->n_head_kv * h->head_dim || wp[2].rows != h->n_head_kv * h->head_dim)
            return nbad(c, "rope_kv needs 3 parts q, k, v of %" PRId64 ", %" PRId64 ", %" PRId64
                        " rows", h->n_head * h->head_dim, h->n_head_kv * h->head_dim,
                        h->n_head_kv * h->head_dim);
        return want_cols(c, n->out, h->n_head * h->head_dim, "out");
    }
    return nbad(c, "unknown epilogue %d", (int)n->epilogue);
}

static enum qp_status check_node(struct nctx *c) {
    const struct qp_plan_node *n = c->n;
    const struct qp_plan *p = c->v->p;
    const struct qp_plan_hparams *h = &p->hparams;
    if (!n->kernel || !*n->kernel) return nbad(c, "empty kernel name");
    if (n->op != QP_OP_LINEAR && (n->prologue != QP_PROLOGUE_NONE ||
                                  n->epilogue != QP_EPILOGUE_NONE))
        return nbad(c, "only linear takes a prologue or an epilogue");
    const struct qp_launch *l = &n->launch;
    if (l->block < 32 || l->block > 1024 || l->block % 32)
        return nbad(c, "launch.block %d must be a multiple of 32 in [32, 1024]", l->block);
    if (l->rows_per_block < 0 || l->split < 0 || l->grid < 0 || (l->pdl != 0 && l->pdl != 1))
        return nbad(c, "launch: rows_per_block %d, split %d and grid %d must be >= 0, pdl 0 or 1",
                    l->rows_per_block, l->split, l->grid);
    if (n->scratch_bytes) {
        char what[96];
        snprintf(what, sizeof what, "%s node %d scratch", c->prog, c->idx);
        TRY(check_region(c->v, n->line, what, n->scratch_offset, n->scratch_bytes));
    } else if (n->scratch_offset) {
        return nbad(c, "scratch offset without bytes");
    }
    switch (n->op) {
    case QP_OP_EMBED: {
        TRY(want_io(c, 0, true));
        TRY(want_weights(c, 1, 1, false, false));
        const struct qp_plan_weight *w = wt(c, n->weights[0]);
        if (w->rows != h->n_vocab)
            return nbad(c, "embedding '%s' has %" PRId64 " rows, n_vocab is %" PRId64, w->name,
                        w->rows, h->n_vocab);
        return want_cols(c, n->out, w->cols, "out");
    }
    case QP_OP_RMS_NORM:
        TRY(want_io(c, 1, true));
        TRY(want_weights(c, 0, 0, false, true));
        TRY(want_vector(c, n->norm, buf(c, n->in[0])->cols, "norm"));
        TRY(want_eps(c));
        return want_cols(c, n->out, buf(c, n->in[0])->cols, "out");
    case QP_OP_LINEAR: return check_linear(c);
    case QP_OP_ROPE:
        TRY(want_io(c, 1, true));
        TRY(want_weights(c, 0, 0, false, false));
        if (n->in[0] != n->out) return nbad(c, "rope works in place: in and out must be equal");
        TRY(want_heads(c, false));
        TRY(want_rope(c));
        if (n->params.n_head != h->n_head && n->params.n_head != h->n_head_kv)
            return nbad(c, "params.n_head %" PRId64 " is neither n_head nor n_head_kv",
                        n->params.n_head);
        return want_cols(c, n->out, n->params.n_head * n->params.head_dim, "out");
    case QP_OP_KV_WRITE:
        TRY(want_io(c, 2, false));
        TRY(want_weights(c, 0, 0, false, false));
        TRY(want_layer(c));
        TRY(want_cols(c, n->in[0], p->kv.kv_dim, "k"));
        return want_cols(c, n->in[1], p->kv.kv_dim, "v");
    case QP_OP_ATTENTION:
        TRY(want_io(c, 1, true));
        TRY(want_weights(c, 0, 0, false, false));
        TRY(want_heads(c, true));
        TRY(want_layer(c));
        TRY(want_cols(c, n->in[0], h->n_head * h->head_dim, "q"));
        return want_cols(c, n->out, h->n_head * h->head_dim, "out");
    case QP_OP_SWIGLU:
    case QP_OP_ADD:
        TRY(want_io(c, 2, true));
        TRY(want_weights(c, 0, 0, false, false));
        TRY(want_cols(c, n->in[1], buf(c, n->in[0])->cols, "second input"));
        return want_cols(c, n->out, buf(c, n->in[0])->cols, "out");
    case QP_OP_ARGMAX:
        TRY(want_io(c, 1, false));
        return want_weights(c, 0, 0, false, false);
    case QP_OP_STEP_ADVANCE:
        TRY(want_io(c, 0, false));
        return want_weights(c, 0, 0, false, false);
    case QP_OP_COUNT: break;
    }
    return nbad(c, "unknown op %d", (int)n->op);
}

/* Live ranges of one program: seg_start[b] / seg_end[b] hold the current segment of buffer b
 * while walking the nodes; finished segments are checked against every other buffer's
 * segments by recording, per node, which buffers are live (a bitmap row per node would cost
 * n_nodes * n_buffers; instead we keep every segment and compare pairs). */
struct seg {
    int32_t buf;
    int32_t start, end; /* node indices, inclusive */
};

static enum qp_status check_program(struct vd *v, int32_t id) {
    const struct qp_plan *p = v->p;
    const struct qp_plan_program *g = &p->programs[id];
    const char *prog = g->name;
    if (g->n_nodes < 1) return bad(v, g->line, "program %s has no nodes", prog);
    if (g->min_tok < 1 || g->min_tok > g->max_tok || g->max_tok > p->limits.max_chunk)
        return bad(v, g->line, "program %s: tokens [%d, %d] must satisfy 1 <= min <= max <= max_chunk %" PRId64,
                   prog, g->min_tok, g->max_tok, p->limits.max_chunk);
    if (g->capture && g->min_tok != g->max_tok)
        return bad(v, g->line, "program %s: a captured program runs one chunk size, tokens are [%d, %d]",
                   prog, g->min_tok, g->max_tok);
    int64_t rows_all = g->max_tok;

    size_t nb = (size_t)p->n_buffers;
    int32_t *cur = malloc((nb + 1) * sizeof *cur); /* current segment index per buffer, -1 */
    size_t cap = 64, n_seg = 0;
    struct seg *segs = malloc(cap * sizeof *segs);
    if (!cur || !segs) {
        free(cur);
        free(segs);
        return qp_error_set(v->err, QP_ERR_NOMEM, "out of memory validating a plan");
    }
    for (size_t b = 0; b < nb; b++) cur[b] = -1;
    enum qp_status st = QP_OK;

    for (int32_t i = 0; i < g->n_nodes && st == QP_OK; i++) {
        const struct qp_plan_node *n = &g->nodes[i];
        const struct qp_op_desc *d = qp_op_desc(n->op);
        struct nctx c = {v, n, prog, i, d ? d->name : "?"};
        st = check_node(&c);
        if (st != QP_OK) break;
        /* rows: what the node touches of each buffer */
        for (int k = 0; k < n->n_in && st == QP_OK; k++) {
            const struct qp_plan_buffer *b = &p->buffers[n->in[k]];
            /* a last-row node reads row n_tok-1 of a chunk buffer, or row 0 of a 1-row one */
            bool ok = b->rows >= rows_all || (n->rows == QP_PLAN_ROWS_LAST && b->rows == 1);
            if (!ok)
                st = nbad(&c, "input '%s' has %" PRId64 " rows, the program runs %" PRId64,
                          b->name, b->rows, rows_all);
        }
        if (st != QP_OK) break;
        if (n->out >= 0) {
            const struct qp_plan_buffer *b = &p->buffers[n->out];
            int64_t need = n->rows == QP_PLAN_ROWS_LAST ? 1 : rows_all;
            if (b->rows < need) {
                st = nbad(&c, "output '%s' has %" PRId64 " rows, the node writes %" PRId64,
                          b->name, b->rows, need);
                break;
            }
        }
        /* liveness: reads extend, a write that does not also read starts a new segment */
        bool reads_out = false;
        for (int k = 0; k < n->n_in; k++) {
            int32_t b = n->in[k];
            if (b == n->out) reads_out = true;
            if (cur[b] < 0) {
                st = nbad(&c, "reads buffer '%s' before any node of %s writes it",
                          p->buffers[b].name, prog);
                break;
            }
            segs[cur[b]].end = i;
        }
        if (st != QP_OK) break;
        if (n->out >= 0 && !reads_out) {
            if (n_seg == cap) {
                cap *= 2;
                struct seg *ns = realloc(segs, cap * sizeof *segs);
                if (!ns) {
                    st = qp_error_set(v->err, QP_ERR_NOMEM, "out of memory validating a plan");
                    break;
                }
                segs = ns;
            }
            segs[n_seg] = (struct seg){n->out, i, i};
            cur[n->out] = (int32_t)n_seg++;
        }
    }
    /* no two buffers with overlapping bytes live at the same node; sort-free O(S^2) is fine
     * for the few hundred segments a plan has, but segments of one buffer are skipped. */
    for (size_t a = 0; a < n_seg && st == QP_OK; a++) {
        const struct qp_plan_buffer *ba = &p->buffers[segs[a].buf];
        for (size_t b = a + 1; b < n_seg && st == QP_OK; b++) {
            if (segs[b].start > segs[a].end) continue;
            if (segs[a].buf == segs[b].buf || segs[b].end < segs[a].start) continue;
            const struct qp_plan_buffer *bb = &p->buffers[segs[b].buf];
            if (overlap(ba->offset, ba->bytes, bb->offset, bb->bytes)) {
                const struct qp_plan_node *n = &g->nodes[segs[b].start];
                st = bad(v, n->line,
                         "%s node %d: buffers '%s' [%" PRIu64 ", %" PRIu64 ") and '%s' [%" PRIu64
                         ", %" PRIu64 ") are both live here and overlap",
                         prog, segs[b].start, ba->name, ba->offset, ba->offset + ba->bytes,
                         bb->name, bb->offset, bb->offset + bb->bytes);
            }
        }
    }
    /* a node's scratch overlaps no buffer live at that node */
    for (size_t s = 0; s < n_seg && st == QP_OK; s++) {
        const struct qp_plan_buffer *b = &p->buffers[segs[s].buf];
        for (int32_t i = segs[s].start; i <= segs[s].end && st == QP_OK; i++) {
            const struct qp_plan_node *n = &g->nodes[i];
            if (overlap(n->scratch_offset, n->scratch_bytes, b->offset, b->bytes))
                st = bad(v, n->line, "%s node %d: scratch [%" PRIu64 ", %" PRIu64
                         ") overlaps buffer '%s', live here", prog, i, n->scratch_offset,
                         n->scratch_offset + n->scratch_bytes, b->name);
        }
    }
    for (int32_t i = 0; i < g->n_nodes && st == QP_OK; i++) {
        const struct qp_plan_node *n = &g->nodes[i];
        if (!n->scratch_bytes) continue;
        bool hit = overlap(n->scratch_offset, n->scratch_bytes, p->step.offset, p->step.bytes);
        uint64_t slice = (uint64_t)p->kv.slots * (uint64_t)p->kv.ctx * (uint64_t)p->kv.kv_dim * elem_size(p->kv.type);
        for (int64_t l = 0; l < p->kv.n_layer && !hit; l++) {
            uint64_t o = (uint64_t)l * p->kv.layer_stride; /* bounded: check_header passed */
            hit = overlap(n->scratch_offset, n->scratch_bytes, p->kv.k_offset + o, slice) ||
                  overlap(n->scratch_offset, n->scratch_bytes, p->kv.v_offset + o, slice);
        }
        if (hit)
            st = bad(v, n->line, "%s node %d: scratch overlaps the step state or the KV cache",
                     prog, i);
    }
    /* the step advances exactly once, at the end */
    if (st == QP_OK && g->nodes[g->n_nodes - 1].op != QP_OP_STEP_ADVANCE)
        st = bad(v, g->nodes[g->n_nodes - 1].line, "program %s must end with step_advance",
                 prog);
    free(cur);
    free(segs);
    return st;
}

enum qp_status qp_plan_validate(const struct qp_plan *p, struct qp_error *err) {
    struct vd v = {p, err};
    struct region *fixed = NULL;
    int64_t n_fixed = 0;
    enum qp_status st = check_header(&v, &fixed, &n_fixed);
    if (st == QP_OK) st = check_weights(&v);
    if (st == QP_OK) st = check_buffers(&v, fixed, n_fixed);
    free(fixed);
    for (int32_t k = 0; k < p->n_programs && st == QP_OK; k++) st = check_program(&v, k);
    /* the chunk programs' token ranges are disjoint and cover every chunk size 1..max_chunk; the
     * batch programs' are disjoint and within 2..slots (a batch of one is the decode chunk) */
    for (int b = 0; b < 2 && st == QP_OK; b++) {
        const bool batch = b == 1;
        const int64_t top = batch ? p->kv.slots : p->limits.max_chunk;
        for (int64_t n = 1; n <= top && st == QP_OK; n++) {
            int32_t first = qp_plan_find_program(p, n, batch), again = -1;
            for (int32_t k = first + 1; first >= 0 && k < p->n_programs && again < 0; k++)
                if (p->programs[k].batch == batch && n >= p->programs[k].min_tok && n <= p->programs[k].max_tok)
                    again = k;
            if (first < 0 && !batch)
                st = bad(&v, at(&v, "programs"), "programs: no program runs a chunk of %" PRId64 " tokens (their "
                         "tokens ranges must cover 1..max_chunk %" PRId64 ")", n, p->limits.max_chunk);
            else if (again >= 0)
                st = bad(&v, p->programs[again].line, "programs %s and %s both run %s of %" PRId64 " %s",
                         p->programs[first].name, p->programs[again].name, batch ? "batches" : "chunks", n,
                         batch ? "sequences" : "tokens");
        }
        for (int32_t k = 0; batch && k < p->n_programs && st == QP_OK; k++)
            if (p->programs[k].batch && (p->programs[k].min_tok < 2 || p->programs[k].max_tok > p->kv.slots))
                st = bad(&v, p->programs[k].line, "program %s: a batch of %d..%d sequences, the plan has %" PRId64
                         " slots (a batch is 2..slots)", p->programs[k].name, p->programs[k].min_tok,
                         p->programs[k].max_tok, p->kv.slots);
    }
    /* every buffer is used by some program (dead buffers are removed by the compiler) */
    for (int32_t b = 0; b < p->n_buffers && st == QP_OK; b++) {
        bool used = false;
        for (int32_t k = 0; k < p->n_programs && !used; k++) {
            const struct qp_plan_program *g = &p->programs[k];
            for (int32_t i = 0; i < g->n_nodes && !used; i++) {
                const struct qp_plan_node *n = &g->nodes[i];
                used = n->out == b || (n->n_in > 0 && n->in[0] == b) ||
                       (n->n_in > 1 && n->in[1] == b);
            }
        }
        if (!used) st = bad(&v, p->buffers[b].line, "buffer '%s' is used by no node",
                            p->buffers[b].name);
    }
    return st;
}

enum qp_status qp_plan_check_model(const struct qp_plan *p, const struct qp_gguf *g,
                                   struct qp_error *err) {
    struct vd v = {p, err};
    const char *gp = qp_gguf_path(g);
    if (qp_gguf_file_size(g) != p->model.size)
        return bad(&v, at(&v, "model.size"), "the plan was compiled from %s (%" PRIu64 " bytes) but %s is %zu "
                   "bytes: it is another file",
                   p->model.file ? p->model.file : "(unnamed)", p->model.size, gp,
                   qp_gguf_file_size(g));
    uint64_t hh = qp_gguf_header_hash(g);
    if (hh != p->model.header_hash)
        return bad(&v, at(&v, "model.header_hash"), "the plan was compiled from %s (header hash 0x%016" PRIx64 ") but %s "
                   "hashes to 0x%016" PRIx64 ": it is another file",
                   p->model.file ? p->model.file : "(unnamed)", p->model.header_hash, gp, hh);
    for (int32_t i = 0; i < p->n_weights; i++) {
        const struct qp_plan_weight *w = &p->weights[i];
        bool vec = w->rows == 1; /* vectors (stacked: entries end to end) */
        for (int32_t j = 0; j < w->n_from; j++) {
            const struct qp_gguf_tensor *t = qp_gguf_find_tensor(g, w->from[j]);
            if (!t)
                return bad(&v, w->line, "weight '%s': tensor '%s' is not in %s", w->name,
                           w->from[j], gp);
            if (t->type != w->type)
                return bad(&v, w->line, "weight '%s': tensor '%s' is %s in %s, the plan says %s",
                           w->name, w->from[j], qp_ggml_type_name(t->type), gp,
                           qp_ggml_type_name(w->type));
            int64_t want_ne0 = vec ? w->part_rows[j] : w->cols;
            int64_t want_ne1 = vec ? 1 : w->part_rows[j];
            if (t->ne[0] != want_ne0 || t->ne[1] != want_ne1 || t->ne[2] != 1 || t->ne[3] != 1)
                return bad(&v, w->line, "weight '%s': tensor '%s' is [%" PRId64 ", %" PRId64
                           ", %" PRId64 ", %" PRId64 "] (ne) in %s, the plan needs [%" PRId64
                           ", %" PRId64 "]", w->name, w->from[j], t->ne[0], t->ne[1], t->ne[2],
                           t->ne[3], gp, want_ne0, want_ne1);
        }
    }
    return QP_OK;
}
