/* select.c — kernel selection: every node's kernel and launch shape, for the plan's target, and
 * its scratch. The one place that chooses kernels: the backends run what the plan names.
 *
 * Default choice (each a registry kernel with its default launch, include/qp_kernels.h):
 *  - linear: in programs whose chunks are short enough for the matvec kernels (decode,
 *    prefill_small, the batch programs up to --matvec-tokens) and on last-row nodes: for the
 *    argmax epilogue (the LM head) mmv_batch for more than one token, mmv_argmax for one; else
 *    mmv_stream where the target has it (sm_90) and the node fits it (more than one token: in
 *    groups decoded together, launch.split) but mmv for one token where that was measured faster
 *    (one_token_mmv), else mmv_batch for more than one token, else mmv; in prefill, gemm.
 *  - with --int8-activations (qp_compile_options.int8_activations) mmvq instead for one token
 *    where it measured faster end to end (one_token_mmvq): x quantized to 8 bits, a fidelity cost.
 *  - attention: attn_gqa for those short chunks where the node fits it, else attn_split; in
 *    prefill attn_prefill where it fits, else attn_split.
 *  - every other op has one kernel.
 *  - pdl (programmatic dependent launch) on the nodes of the short-chunk programs when the target
 *    is sm_90: measured faster there, and slower in prefill, where cuBLAS kernels sit between ours
 *    (docs/performance.md).
 * A --kernel override replaces the choice for the nodes its pattern matches; a named kernel that
 * cannot run a matched node is an error naming both.
 *
 * Scratch: what the chosen CUDA kernel needs (qp_cuda_scratch_plan) for any token count the node
 * runs with, or what the CPU backend stages, whichever is larger (the CPU backend runs the same
 * plan).
 */
#define _POSIX_C_SOURCE 200809L /* fnmatch */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compile_internal.h"
#include "qp_cuda.h"
#include "qp_ggml.h"
#include "qp_kernels.h"

static uint64_t align_up(uint64_t v) {
    return (v + QP_PLAN_ALIGNMENT - 1) / QP_PLAN_ALIGNMENT * QP_PLAN_ALIGNMENT;
}

/* Most tokens node n of program g runs with. */
static int32_t node_tokens(const struct qp_plan_program *g, const struct qp_plan_node *n) {
    return n->rows == QP_PLAN_ROWS_LAST ? 1 : g->max_tok;
}

enum qp_status qp_select_node_args(const struct qp_plan *p, const struct qp_plan_program *g,
                                   const struct qp_plan_node *n, struct qp_op_args *a, struct qp_error *err) {
    memset(a, 0, sizeof *a);
    const struct qp_kernel_desc *kd = n->kernel ? qp_kernel_find(n->kernel) : NULL;
    a->kernel = kd ? kd->id : QP_KERNEL_UNKNOWN;
    a->op = n->op;
    a->n_tok = node_tokens(g, n);
    a->prologue = n->prologue;
    a->epilogue = n->epilogue;
    a->n_head = (int32_t)n->params.n_head;
    a->n_head_kv = (int32_t)n->params.n_head_kv;
    a->head_dim = (int32_t)n->params.head_dim;
    a->eps = (float)n->params.eps;
    a->kv.ctx = p->kv.ctx;
    a->kv.kv_dim = p->kv.kv_dim;
    a->kv.type = p->kv.type;
    a->kv.slots = p->kv.slots;
    a->batch = g->batch;
    a->launch = n->launch;
    a->scratch_bytes = n->scratch_bytes;
    if (n->n_in > 0) a->in_w = p->buffers[n->in[0]].cols;
    if (n->out >= 0) a->out_w = p->buffers[n->out].cols;
    struct qp_plan_part parts[QP_OP_MAX_PARTS];
    int np = n->n_weights > 0 ? qp_plan_node_parts(p, n, false, parts) : 0;
    if (np < 0) return qp_error_set(err, QP_ERR_INVALID, "node with more than %d weight parts", QP_OP_MAX_PARTS);
    a->n_parts = np;
    for (int i = 0; i < np; i++) {
        const struct qp_plan_weight *w = &p->weights[parts[i].weight];
        a->w[i].type = w->type;
        a->w[i].rows = parts[i].rows;
        a->w[i].cols = w->cols;
        if (!qp_ggml_row_bytes(w->type, w->cols, &a->w[i].row_bytes))
            return qp_error_set(err, QP_ERR_INVALID, "weight '%s': bad row size", w->name);
    }
    return QP_OK;
}

/* One token through mmv_stream's default launch, or mmv instead: mmv where its blocks would
 * outnumber the SMs (at ~100 registers a thread one mmv_stream block fits an SM, so the matrix
 * runs in waves of tiles: the 1.5B model's gate+up and ffn_down). Measured end to end on an H100
 * (2026-12-06, docs/performance.md "Linear kernels at the bandwidth"): the 1.5B twin's tg128 542 ->
 * 642 with mmv for its linears; the 0.5B twin's 1,390 -> 1,307 with mmv for its ffn_down (rows of
 * 4,864 columns, one wave), which bench_linear alone had timed faster. */
static bool one_token_mmv(const struct qp_op_args *a, const struct qp_kernel_target *t, const struct qp_launch *stream) {
    if (a->n_tok != 1) return false;
    struct qp_mmvs_geometry g;
    struct qp_error e;
    return qp_mmvs_geometry(a, stream->rows_per_block, stream->split, &g, &e) == QP_OK && g.blocks > t->sms;
}

/* With --int8-activations: one token's linear on mmvq where that measured faster end to end
 * (H200, 2026-12-06, docs/performance.md "8-bit activations"): gate+up where mmv_stream would run
 * in waves (the 1.5B model: tg128 653 -> 743), and the LM head of the legacy types (the 0.5B
 * model's Q8_0: 1,405 -> 1,415). Not for the K-quant heads or ffn_down, where it measured slower. */
static bool one_token_mmvq(const struct qp_op_args *a, const struct qp_kernel_target *t, bool waves) {
    struct qp_launch l;
    struct qp_error e;
    if (a->n_tok != 1 || qp_kernel_default_launch(QP_KERNEL_MMVQ, a, t, false, &l, &e) != QP_OK) return false;
    if (a->epilogue == QP_EPILOGUE_SWIGLU) return waves;
    if (a->epilogue != QP_EPILOGUE_ARGMAX) return false;
    for (int i = 0; i < a->n_parts; i++)
        if (a->w[i].type != QP_GGML_Q8_0 && a->w[i].type != QP_GGML_Q5_0 && a->w[i].type != QP_GGML_Q4_0) return false;
    return true;
}

/* The registry's default kernel for node a (see the file comment). */
static int32_t default_kernel(const struct qp_op_args *a, const struct qp_kernel_target *t, int32_t matvec_tokens,
                              bool int8) {
    struct qp_launch l;
    struct qp_error e;
    const bool short_chunk = a->n_tok <= matvec_tokens || a->n_tok == 1;
    switch (a->op) {
    case QP_OP_EMBED: return QP_KERNEL_EMBED;
    case QP_OP_RMS_NORM: return QP_KERNEL_RMS_NORM;
    case QP_OP_ROPE: return QP_KERNEL_ROPE;
    case QP_OP_KV_WRITE: return QP_KERNEL_KV_WRITE;
    case QP_OP_SWIGLU: return QP_KERNEL_SWIGLU;
    case QP_OP_ADD: return QP_KERNEL_ADD;
    case QP_OP_ARGMAX: return QP_KERNEL_ARGMAX;
    case QP_OP_STEP_ADVANCE: return QP_KERNEL_STEP_ADVANCE;
    case QP_OP_LINEAR:
        if (!short_chunk) return QP_KERNEL_GEMM;
        /* more than one token: kernels that decode each weight once for a group of them */
        if (a->epilogue == QP_EPILOGUE_ARGMAX) {
            if (int8 && one_token_mmvq(a, t, false)) return QP_KERNEL_MMVQ;
            return a->n_tok > 1 && qp_kernel_default_launch(QP_KERNEL_MMV_BATCH, a, t, false, &l, &e) == QP_OK
                       ? QP_KERNEL_MMV_BATCH
                       : QP_KERNEL_MMV_ARGMAX;
        }
        if (qp_kernel_default_launch(QP_KERNEL_MMV_STREAM, a, t, false, &l, &e) == QP_OK) {
            const bool waves = one_token_mmv(a, t, &l);
            if (int8 && one_token_mmvq(a, t, waves)) return QP_KERNEL_MMVQ;
            return waves ? QP_KERNEL_MMV : QP_KERNEL_MMV_STREAM;
        }
        if (a->n_tok > 1 && qp_kernel_default_launch(QP_KERNEL_MMV_BATCH, a, t, false, &l, &e) == QP_OK)
            return QP_KERNEL_MMV_BATCH;
        return QP_KERNEL_MMV;
    case QP_OP_ATTENTION: {
        const int32_t want = short_chunk || a->batch ? QP_KERNEL_ATTN_GQA : QP_KERNEL_ATTN_PREFILL;
        return qp_kernel_default_launch(want, a, t, false, &l, &e) == QP_OK ? want : QP_KERNEL_ATTN_SPLIT;
    }
    case QP_OP_COUNT: break;
    }
    return QP_KERNEL_UNKNOWN;
}

/* Whether override pattern pat (PROGRAM:OP[:WEIGHT]) matches node n of program g. */
static bool pattern_matches(const char *pat, const struct qp_plan *p, const struct qp_plan_program *g,
                            const struct qp_plan_node *n) {
    char buf[256];
    size_t len = strlen(pat);
    if (len >= sizeof buf) return false;
    memcpy(buf, pat, len + 1);
    char *prog = buf, *op = strchr(prog, ':');
    if (!op) return false;
    *op++ = 0;
    char *weight = strchr(op, ':');
    if (weight) *weight++ = 0;
    const struct qp_op_desc *d = qp_op_desc(n->op);
    if (fnmatch(prog, g->name, 0) != 0 || !d || fnmatch(op, d->name, 0) != 0) return false;
    if (!weight) return true;
    const char *wn = n->n_weights > 0 ? p->weights[n->weights[0]].name : "";
    return fnmatch(weight, wn, 0) == 0;
}

/* What the CPU backend stages in a linear node's scratch per token: the normalised input and the
 * second half of the epilogue (up for swiglu, k and v for rope_kv). */
static uint64_t cpu_linear_scratch(const struct qp_plan *p, const struct qp_op_args *a) {
    int64_t rows = 0;
    for (int i = 0; i < a->n_parts; i++) rows += a->w[i].rows;
    const int64_t stage = a->epilogue == QP_EPILOGUE_SWIGLU ? rows / 2
                        : a->epilogue == QP_EPILOGUE_ROPE_KV ? 2 * p->kv.kv_dim : 0;
    const uint64_t per_tok = 4 * (uint64_t)(stage + (a->prologue == QP_PROLOGUE_RMS_NORM ? a->in_w : 0));
    return per_tok * (uint64_t)a->n_tok; /* the CPU op tiles the chunk's tokens through it */
}

/* The scratch the chosen CUDA kernel needs, maximised over every token count the node runs with. */
static enum qp_status cuda_scratch_need(const struct qp_op_args *a0, uint64_t *need, struct qp_error *err) {
    struct qp_op_args a = *a0;
    *need = 0;
    for (int32_t t = 1; t <= a0->n_tok; t++) {
        a.n_tok = t;
        struct qp_cuda_scratch_layout l;
        enum qp_status st = qp_cuda_scratch_plan(&a, &l, err);
        if (st != QP_OK) return st;
        if (l.total > *need) *need = l.total;
    }
    return QP_OK;
}

static enum qp_status set_kernel_name(struct qp_plan_node *n, const char *name, struct qp_error *err) {
    free(n->kernel);
    n->kernel = qp_build_strdup(name);
    return n->kernel ? QP_OK : qp_error_set(err, QP_ERR_NOMEM, "out of memory selecting kernels");
}

static enum qp_status select_node(struct qp_plan *p, struct qp_plan_program *g, int32_t i,
                                  const struct qp_compile_options *o, int32_t matvec_tokens, bool *matched,
                                  struct qp_error *err) {
    struct qp_plan_node *n = &g->nodes[i];
    const struct qp_kernel_target t = {p->target.sm, p->target.sms};
    struct qp_op_args a;
    n->scratch_bytes = 0;
    enum qp_status st = qp_select_node_args(p, g, n, &a, err);
    if (st != QP_OK) return st;
    int32_t k = default_kernel(&a, &t, matvec_tokens, o->int8_activations);
    const char *by = NULL;
    for (int32_t j = 0; j < o->n_overrides; j++) {
        if (!pattern_matches(o->overrides[j].pattern, p, g, n)) continue;
        const struct qp_kernel_desc *kd = qp_kernel_find(o->overrides[j].kernel);
        if (!kd) {
            char names[256];
            qp_kernel_names(n->op, names, sizeof names);
            return qp_error_set(err, QP_ERR_INVALID, "--kernel %s=%s: no kernel '%s' (kernels of %s: %s)",
                                o->overrides[j].pattern, o->overrides[j].kernel, o->overrides[j].kernel,
                                qp_op_desc(n->op)->name, names);
        }
        k = kd->id;
        by = o->overrides[j].pattern;
        matched[j] = true;
    }
    const bool pdl = p->target.sm >= 90 && (a.n_tok <= matvec_tokens || a.n_tok == 1 || g->batch);
    struct qp_error e;
    st = qp_kernel_default_launch(k, &a, &t, pdl, &n->launch, &e);
    if (st != QP_OK) {
        const char *kn = qp_kernel_desc(k) ? qp_kernel_desc(k)->name : "?";
        const char *wn = n->n_weights > 0 ? p->weights[n->weights[0]].name : "";
        if (by)
            return qp_error_set(err, st, "--kernel %s=%s: %s node %d (%s %s) cannot run it: %s", by, kn, g->name, i,
                                qp_op_desc(n->op)->name, wn, e.msg);
        return qp_error_set(err, st, "%s node %d (%s %s): no kernel can run it: %s", g->name, i,
                            qp_op_desc(n->op)->name, wn, e.msg);
    }
    return qp_select_set(p, g, i, k, &n->launch, err);
}

enum qp_status qp_select_set(struct qp_plan *p, struct qp_plan_program *g, int32_t i, int32_t kernel,
                             const struct qp_launch *launch, struct qp_error *err) {
    struct qp_plan_node *n = &g->nodes[i];
    const struct qp_kernel_desc *kd = qp_kernel_desc(kernel);
    if (!kd) return qp_error_set(err, QP_ERR_INVALID, "internal: kernel id %d", (int)kernel);
    enum qp_status st = set_kernel_name(n, kd->name, err);
    if (st != QP_OK) return st;
    n->launch = *launch;
    struct qp_op_args a;
    if ((st = qp_select_node_args(p, g, n, &a, err)) != QP_OK) return st;
    uint64_t cuda = 0, cpu = n->op == QP_OP_LINEAR ? cpu_linear_scratch(p, &a) : 0;
    st = cuda_scratch_need(&a, &cuda, err);
    if (st != QP_OK) return st;
    n->scratch_bytes = align_up(cuda > cpu ? cuda : cpu);
    if (!n->scratch_bytes) n->scratch_offset = 0;
    return QP_OK;
}

enum qp_status qp_select_kernels(struct qp_plan *p, const struct qp_compile_options *o, struct qp_error *err) {
    const int32_t matvec_tokens = o->matvec_tokens < 0 ? QP_COMPILE_DEFAULT_MATVEC_TOKENS : o->matvec_tokens;
    bool *matched = calloc((size_t)o->n_overrides + 1, sizeof *matched);
    if (!matched) return qp_error_set(err, QP_ERR_NOMEM, "out of memory selecting kernels");
    enum qp_status st = QP_OK;
    for (int32_t k = 0; k < p->n_programs && st == QP_OK; k++)
        for (int32_t i = 0; i < p->programs[k].n_nodes && st == QP_OK; i++)
            st = select_node(p, &p->programs[k], i, o, matvec_tokens, matched, err);
    char progs[128] = "";
    for (int32_t k = 0; k < p->n_programs; k++) {
        size_t at = strlen(progs);
        snprintf(progs + at, sizeof progs - at, "%s%s", k ? ", " : "", p->programs[k].name);
    }
    for (int32_t j = 0; j < o->n_overrides && st == QP_OK; j++)
        if (!matched[j])
            st = qp_error_set(err, QP_ERR_INVALID, "--kernel %s=%s matches no node (PROGRAM:OP[:WEIGHT]; this "
                              "plan's programs: %s)", o->overrides[j].pattern, o->overrides[j].kernel, progs);
    free(matched);
    return st;
}

enum qp_status qp_plan_check_kernels(const struct qp_plan *p, struct qp_error *err) {
    const struct qp_kernel_target t = {p->target.sm, p->target.sms};
    const char *src = p->source ? p->source : "plan";
    for (int32_t k = 0; k < p->n_programs; k++) {
        const struct qp_plan_program *g = &p->programs[k];
        for (int32_t i = 0; i < g->n_nodes; i++) {
            const struct qp_plan_node *n = &g->nodes[i];
            const struct qp_op_desc *od = qp_op_desc(n->op);
            const struct qp_kernel_desc *kd = qp_kernel_find(n->kernel);
            if (!kd || kd->op != n->op) {
                char names[256];
                qp_kernel_names(n->op, names, sizeof names);
                return qp_error_set(err, QP_ERR_INVALID, "%s:%d: %s node %d (%s): %s kernel '%s' (kernels of %s: %s)",
                                    src, n->line, g->name, i, od->name, kd ? "not an op's" : "no", n->kernel,
                                    od->name, names);
            }
            struct qp_op_args a;
            enum qp_status st = qp_select_node_args(p, g, n, &a, err);
            if (st != QP_OK) return st;
            struct qp_error e;
            if (qp_kernel_check(kd->id, &a, &t, &e) != QP_OK)
                return qp_error_set(err, QP_ERR_INVALID, "%s:%d: %s node %d (%s): kernel %s on sm_%d: %s", src,
                                    n->line, g->name, i, od->name, kd->name, t.sm, e.msg);
        }
    }
    return QP_OK;
}
