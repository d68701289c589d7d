/* tune.c — what `qplan tune` measures (qrun_tune, include/qrun.h): every node of every program of
 * an open runtime's plan, run on its own with each kernel and launch shape the registry offers for
 * it on this device (qp_kernel_candidates), timed, and checked against the CPU op.
 *
 * How: the state is made real first (a prefill of `depth` tokens), then each program runs node by
 * node at its largest chunk (decode 1 token, prefill its max_tok), so every node sees the inputs the
 * nodes before it produced. Before node i, the device arena is copied to a snapshot (backend
 * memory) and into a CPU executor's arena (the same plan, so the same offsets), where the CPU op
 * computes the reference outputs once. Each candidate then starts from the snapshot, runs once to
 * be compared (its out rows, the K/V rows it writes, the token an argmax picks, the step state),
 * and, if it passes its kernel's bound (qp_kernel_tolerance), is timed (time_op: eager launches).
 * Candidates run with their own scratch (one extra region as large as the largest need), so the
 * plan's scratch sizes do not limit what is tried. Last, the node runs with the plan's own kernel
 * to move the state on.
 *
 * Allocates at the start (the CPU executor, two device regions, one host buffer) and frees at the
 * end; the runtime's own state (KV cache, position) is left changed: qrun_reset it after.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qp_cuda.h"
#include "qp_ggml.h"
#include "qp_kernels.h"
#include "qp_quant.h"
#include "qrun.h"
#include "qrun_internal.h"

struct tuner {
    struct qrun *q;
    struct qp_exec *x, *ref; /* the runtime's executor, and a CPU one for the references */
    struct qp_kernel_target t;
    char *dev_arena, *ref_arena, *snapshot;
    size_t arena_bytes;
    void *scratch; /* candidates' scratch */
    size_t scratch_bytes;
    float *h_a; /* host staging for comparisons */
    size_t h_floats;
    int reps;
};

/* The node's args as the tuner describes it to the registry: as prepared for this chunk. */
static struct qp_op_args node_args(struct tuner *u, int32_t k, int32_t i) {
    return *qp_exec_node_args(u->x, k, i);
}

/* The largest scratch any candidate of any node needs at its program's largest chunk. */
static enum qp_status plan_scratch(struct tuner *u, struct qp_error *err) {
    const struct qp_plan *p = u->q->plan;
    size_t need = 256;
    for (int32_t k = 0; k < p->n_programs; k++)
        for (int32_t i = 0; i < p->programs[k].n_nodes; i++) {
            struct qp_op_args a = *qp_exec_node_args(u->x, k, i);
            a.n_tok = p->programs[k].nodes[i].rows == QP_PLAN_ROWS_LAST ? 1 : p->programs[k].max_tok;
            int n = qp_kernel_candidates(&a, &u->t, a.launch.pdl != 0, (struct qp_kernel_choice *)NULL, 0);
            struct qp_kernel_choice *c = calloc((size_t)n + 2, sizeof *c);
            if (!c) return qp_error_set(err, QP_ERR_NOMEM, "tune: out of memory");
            n = qp_kernel_candidates(&a, &u->t, a.launch.pdl != 0, c, n);
            c[n++] = (struct qp_kernel_choice){a.kernel, a.launch};
            for (int j = 0; j < n; j++) {
                struct qp_op_args b = a;
                b.kernel = c[j].kernel;
                b.launch = c[j].launch;
                struct qp_cuda_scratch_layout l;
                if (qp_cuda_scratch_plan(&b, &l, err) == QP_OK && l.total > need) need = l.total;
            }
            free(c);
        }
    u->scratch_bytes = need;
    return qp_exec_alloc_extra(u->x, need, &u->scratch, err);
}

/* Relative L2 difference of n values at device pointer dev (as type: F32, or an F16 KV cache) from
 * the same region of the reference arena. INFINITY when a value is not finite. */
static enum qp_status region_err(struct tuner *u, const void *dev, size_t n, int32_t type, double *rel,
                                 struct qp_error *err) {
    const size_t es = type == QP_GGML_F16 ? 2 : 4;
    if (n * es > u->h_floats * sizeof(float))
        return qp_error_set(err, QP_ERR_INVALID, "tune: a node's output of %zu bytes exceeds the staging", n * es);
    enum qp_status s = qp_exec_read(u->x, u->h_a, dev, n * es, err);
    if (s != QP_OK) return s;
    const char *ref = u->ref_arena + ((const char *)dev - u->dev_arena);
    double d2 = 0, r2 = 0;
    for (size_t i = 0; i < n; i++) {
        float g, c;
        if (es == 2) {
            g = qp_fp16_to_fp32(((const uint16_t *)u->h_a)[i]);
            c = qp_fp16_to_fp32(((const uint16_t *)ref)[i]);
        } else {
            memcpy(&g, (const char *)u->h_a + 4 * i, 4);
            memcpy(&c, ref + 4 * i, 4);
        }
        if (!isfinite(g) && isfinite(c)) {
            *rel = INFINITY;
            return QP_OK;
        }
        if (!isfinite(c)) continue;
        d2 += ((double)g - c) * ((double)g - c);
        r2 += (double)c * c;
    }
    *rel = r2 > 0 ? sqrt(d2 / r2) : sqrt(d2);
    return QP_OK;
}

/* Compares what candidate a just wrote with the reference: out rows, K/V rows, the step state. */
static enum qp_status compare(struct tuner *u, const struct qp_op_args *a, int64_t pos, struct qrun_tune_choice *c,
                              struct qp_error *err) {
    double worst = 0, e = 0;
    enum qp_status s;
    c->tol = qp_kernel_tolerance(c->kernel);
    if (a->out) {
        if ((s = region_err(u, a->out, (size_t)a->n_tok * (size_t)a->out_w, QP_GGML_F32, &e, err)) != QP_OK) return s;
        worst = e;
    }
    const bool writes_kv = a->op == QP_OP_KV_WRITE || (a->op == QP_OP_LINEAR && a->epilogue == QP_EPILOGUE_ROPE_KV);
    double kv_tol = c->tol;
    if (writes_kv) {
        /* an f16 cache: one rounding step apart where the f32 values straddle a rounding boundary */
        if (a->kv.type == QP_GGML_F16 && kv_tol < 1e-3) kv_tol = 1e-3;
        const size_t es = a->kv.type == QP_GGML_F16 ? 2 : 4, row = (size_t)a->kv.kv_dim;
        for (int side = 0; side < 2; side++) {
            const char *base = (const char *)(side ? a->kv.v : a->kv.k) + (size_t)pos * row * es;
            if ((s = region_err(u, base, (size_t)a->n_tok * row, a->kv.type, &e, err)) != QP_OK) return s;
            if (e * c->tol / kv_tol > worst) worst = e * c->tol / kv_tol; /* in units of the out bound */
        }
    }
    c->err = worst;
    c->ok = worst <= c->tol;
    if (!c->ok) snprintf(c->why, sizeof c->why, "outputs differ from the CPU op's by %.2e (bound %.0e)", worst, c->tol);
    const bool argmax = a->op == QP_OP_ARGMAX || (a->op == QP_OP_LINEAR && a->epilogue == QP_EPILOGUE_ARGMAX);
    if (argmax || a->op == QP_OP_STEP_ADVANCE) {
        int32_t dev[4], ref[4];
        if ((s = qp_exec_read(u->x, dev, a->step, sizeof dev, err)) != QP_OK) return s;
        memcpy(ref, u->ref_arena + ((const char *)a->step - u->dev_arena), sizeof ref);
        bool same = memcmp(dev, ref, sizeof dev) == 0;
        if (!same && argmax && a->op == QP_OP_LINEAR && dev[2] >= 0 && dev[2] < a->out_w) {
            /* a near-tie: another index within the output's bound of the maximum */
            const float *lg = (const float *)(u->ref_arena + ((const char *)a->out - u->dev_arena)) +
                              (size_t)(a->n_tok - 1) * (size_t)a->out_w;
            same = fabsf(lg[dev[2]] - lg[ref[2]]) <= (float)c->tol * fabsf(lg[ref[2]]) + 1e-6f;
        }
        if (!same) {
            c->ok = false;
            snprintf(c->why, sizeof c->why, "step state differs (next token %d, the CPU op's %d)", dev[2], ref[2]);
        }
    }
    return QP_OK;
}

/* Runs choice c of node a from the snapshot, compares, and times it when it passes. */
static enum qp_status try_choice(struct tuner *u, const struct qp_op_args *a0, int64_t pos, struct qrun_tune_choice *c,
                                 struct qp_error *err) {
    struct qp_op_args a = *a0;
    a.kernel = c->kernel;
    a.launch = c->launch;
    a.scratch = u->scratch;
    a.scratch_bytes = u->scratch_bytes;
    struct qp_error e = {{0}};
    if (qp_kernel_check(c->kernel, &a, &u->t, &e) != QP_OK) {
        snprintf(c->why, sizeof c->why, "%.159s", e.msg);
        return QP_OK;
    }
    enum qp_status s = qp_exec_copy(u->x, u->dev_arena, u->snapshot, u->arena_bytes, err);
    if (s != QP_OK) return s;
    if (qp_exec_run_op(u->x, &a, &e) != QP_OK) {
        snprintf(c->why, sizeof c->why, "%.159s", e.msg);
        return QP_OK;
    }
    if ((s = compare(u, &a, pos, c, err)) != QP_OK || !c->ok) return s;
    if (a.op == QP_OP_STEP_ADVANCE) return QP_OK; /* it moves the state it reads: not repeatable, one kernel */
    int reps = u->reps;
    if (reps < 1) { /* adaptive: about 2 ms per batch, 3..200 runs */
        double est = 0;
        if ((s = qp_exec_time_op(u->x, &a, 3, &est, err)) != QP_OK) return s;
        reps = est > 0 ? (int)(2000.0 / est) : 200;
        reps = reps < 3 ? 3 : reps > 200 ? 200 : reps;
    }
    return qp_exec_time_op(u->x, &a, reps, &c->us, err);
}

static enum qp_status tune_node(struct tuner *u, int32_t k, int32_t i, int64_t pos, struct qrun_tune_node *r,
                                struct qp_error *err) {
    const struct qp_plan_node *nd = &u->q->plan->programs[k].nodes[i];
    struct qp_op_args a = node_args(u, k, i);
    memset(r, 0, sizeof *r);
    r->program = k;
    r->node = i;
    r->line = nd->line;
    r->n_tok = a.n_tok;
    /* the state before the node: snapshot, and the CPU's reference outputs from it */
    enum qp_status s = qp_exec_copy(u->x, u->snapshot, u->dev_arena, u->arena_bytes, err);
    if (s == QP_OK) s = qp_exec_read(u->x, u->ref_arena, u->dev_arena, u->arena_bytes, err);
    if (s == QP_OK) s = qp_exec_run_op(u->ref, qp_exec_node_args(u->ref, k, i), err);
    if (s != QP_OK) return s;
    struct qp_kernel_choice c[QRUN_TUNE_MAX_CHOICES];
    c[0] = (struct qp_kernel_choice){a.kernel, a.launch};
    int n = qp_kernel_candidates(&a, &u->t, a.launch.pdl != 0, c + 1, QRUN_TUNE_MAX_CHOICES - 1);
    if (n > QRUN_TUNE_MAX_CHOICES - 1) n = QRUN_TUNE_MAX_CHOICES - 1;
    /* no candidate less precise than the plan's kernel allows, beyond f16 operands: 8-bit
     * activations (mmvq) cost fidelity, which the plan's author chooses by naming the kernel
     * (docs/fidelity.md), not a timing */
    double tol_max = qp_kernel_tolerance(c[0].kernel);
    if (tol_max < QP_KERNEL_TOL_F16) tol_max = QP_KERNEL_TOL_F16;
    r->n_choices = 1;
    for (int j = 1; j <= n; j++)
        if ((c[j].kernel != c[0].kernel || memcmp(&c[j].launch, &c[0].launch, sizeof c[0].launch)) &&
            qp_kernel_tolerance(c[j].kernel) <= tol_max)
            c[r->n_choices++] = c[j];
    r->best = -1;
    for (int j = 0; j < r->n_choices && s == QP_OK; j++) {
        struct qrun_tune_choice *ch = &r->choice[j];
        ch->kernel = c[j].kernel;
        ch->launch = c[j].launch;
        s = try_choice(u, &a, pos, ch, err);
        if (s == QP_OK && ch->ok && (r->best < 0 || ch->us < r->choice[r->best].us)) r->best = j;
    }
    /* on with the plan's own kernel, from the snapshot */
    if (s == QP_OK) s = qp_exec_copy(u->x, u->dev_arena, u->snapshot, u->arena_bytes, err);
    if (s == QP_OK) s = qp_exec_run_op(u->x, qp_exec_node_args(u->x, k, i), err);
    return s;
}

enum qp_status qrun_tune(struct qrun *q, int64_t depth, int reps, qrun_tune_fn cb, void *user, struct qp_error *err) {
    const struct qp_plan *p = q->plan;
    struct tuner u = {.q = q, .x = q->exec, .reps = reps};
    qp_exec_target(u.x, &u.t);
    u.dev_arena = qp_exec_arena(u.x, &u.arena_bytes);
    struct qp_exec_config rc = {.backend = &qp_backend_cpu};
    enum qp_status s = qp_exec_init(p, q->gguf, &rc, &u.ref, err);
    if (s != QP_OK) return s;
    u.ref_arena = qp_exec_arena(u.ref, NULL);
    s = qp_exec_alloc_extra(u.x, u.arena_bytes, (void **)&u.snapshot, err);
    if (s == QP_OK) s = plan_scratch(&u, err);
    u.h_floats = u.arena_bytes / sizeof(float) + 1;
    u.h_a = s == QP_OK ? malloc(u.h_floats * sizeof(float)) : NULL;
    if (s == QP_OK && !u.h_a) s = qp_error_set(err, QP_ERR_NOMEM, "tune: out of memory");
    /* a real state: depth positions of the KV cache filled by a prefill of fixed tokens */
    const int64_t max_chunk = p->limits.max_chunk;
    int32_t *ids = s == QP_OK ? malloc((size_t)max_chunk * sizeof *ids) : NULL;
    if (s == QP_OK && !ids) s = qp_error_set(err, QP_ERR_NOMEM, "tune: out of memory");
    for (int64_t i = 0; ids && i < max_chunk; i++) ids[i] = (int32_t)((i * 2654435761u + 17) % (uint64_t)p->hparams.n_vocab);
    if (depth > p->limits.max_ctx - max_chunk) depth = p->limits.max_ctx - max_chunk;
    if (depth < 0) depth = 0;
    for (int64_t at = 0; s == QP_OK && at < depth;) {
        const int32_t n = (int32_t)(depth - at < max_chunk ? depth - at : max_chunk);
        s = qp_exec_forward(u.x, ids, n, at, err);
        at += n;
    }
    for (int32_t k = 0; s == QP_OK && k < p->n_programs; k++) {
        const struct qp_plan_program *g = &p->programs[k];
        const int32_t n = g->max_tok;
        int32_t prog = -1;
        s = qp_exec_begin(u.x, ids, n, depth, &prog, err);
        int32_t rprog = -1;
        if (s == QP_OK) s = qp_exec_begin(u.ref, ids, n, depth, &rprog, err);
        if (s == QP_OK && (prog != k || rprog != k))
            s = qp_error_set(err, QP_ERR_INVALID, "tune: program %s does not run its largest chunk (%d tokens)",
                             g->name, n);
        for (int32_t i = 0; s == QP_OK && i < g->n_nodes; i++) {
            struct qrun_tune_node r;
            s = tune_node(&u, k, i, depth, &r, err);
            if (s == QP_OK && cb) cb(user, &r);
        }
    }
    free(ids);
    free(u.h_a);
    qp_exec_free(u.ref);
    q->pos = 0; /* the cache holds the tuner's tokens now */
    return s;
}
