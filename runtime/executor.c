/* executor.c — the plan executor: weight binding, op-args preparation, running programs.
 *
 * Owns the backend, the host copy of stacked weights (host-memory backends only), the
 * prepared programs (struct qp_op_args per node, built once at load) and one host buffer of
 * n_vocab logits. Per forward it only patches each node's n_tok (and a last-row node's input
 * pointers), writes the step state when the backend does not already hold it, and runs:
 * nothing is allocated per token or per chunk.
 */
#include "executor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qp_ggml.h"
#include "qp_kernels.h"

#define NODE_NAME_MAX 96

struct exec_program {
    struct qp_backend_program prog;
    struct qp_op_args *args;  /* [n_nodes] */
    int32_t *ran;             /* [n_nodes] kernel the backend launched last (-1: not run yet) */
    const char **names;       /* [n_nodes] -> name_buf */
    char *name_buf;           /* [n_nodes][NODE_NAME_MAX] */
    const float **in0_base;   /* [n_nodes] row 0 of in0 (last-row nodes advance from it) */
    const float **in1_base;   /* [n_nodes] */
    int64_t *in0_w;           /* [n_nodes] row stride to advance in0 by (0: not advanced) */
    int64_t *in1_w;           /* [n_nodes] same for in1 */
    uint8_t *last_row;        /* [n_nodes] node runs on the last row only */
    int32_t logits_node;      /* last node writing an n_vocab-wide buffer; -1 when none */
    bool has_argmax;
    bool has_advance;         /* ends with step_advance: the backend moves the step itself */
};

struct qp_exec {
    const struct qp_plan *plan;
    struct qp_backend *b;
    void *stacked;                /* host copies of stacked weights (host-memory backends) */
    const void **wptr;            /* [n_weights] backend pointers of plan weights */
    struct exec_program *progs;   /* [plan->n_programs] */
    float *logits;                /* [n_vocab] host */
    struct qp_step *step_host;    /* header + rows[max_chunk]: staging for step writes */
    /* last forward */
    int32_t last_prog;
    int32_t last_n;
    int32_t last_rows;            /* rows the last batch's outputs are (qp_exec_batch_next) */
    /* what the backend's step state holds after the last chunk (see begin) */
    bool dev_known;
    int64_t dev_pos;
    int32_t dev_slot;
    int32_t dev_tok0;
    bool dev_tok0_known;
};

static size_t align_up(size_t n) { return (n + QP_BACKEND_ALIGN - 1) / QP_BACKEND_ALIGN * QP_BACKEND_ALIGN; }

static enum qp_status bind_weights(struct qp_exec *x, const struct qp_gguf *g,
                                   const struct qp_exec_config *cfg, struct qp_error *err) {
    const struct qp_plan *p = x->plan;
    bool host = x->b->vt->host_memory;
    size_t pool = 0, total = 0;
    for (int32_t i = 0; i < p->n_weights; i++) {
        const struct qp_plan_weight *w = &p->weights[i];
        total += w->bytes;
        if (!host || w->n_from > 1) pool += align_up(w->bytes);
    }
    char *base = NULL;
    if (pool) {
        if (host) {
            x->stacked = aligned_alloc(QP_BACKEND_ALIGN, pool);
            if (!x->stacked)
                return qp_error_set(err, QP_ERR_NOMEM, "cannot allocate %zu bytes for stacked weights",
                                    pool);
            base = x->stacked;
        } else {
            enum qp_status s = x->b->vt->weights_alloc(x->b, pool, err);
            if (s != QP_OK) return s;
            base = x->b->weights;
        }
    }
    size_t off = 0;
    uint64_t done = 0;
    for (int32_t i = 0; i < p->n_weights; i++) {
        const struct qp_plan_weight *w = &p->weights[i];
        if (host && w->n_from == 1) {
            const struct qp_gguf_tensor *t = qp_gguf_find_tensor(g, w->from[0]);
            if (!t || !t->data || t->bytes != w->bytes)
                return qp_error_set(err, QP_ERR_INVALID, "%s: plan weight '%s' does not match tensor '%s' of %s",
                                    p->source ? p->source : "plan", w->name, w->from[0], qp_gguf_path(g));
            x->wptr[i] = t->data;
        } else {
            char *dst = base + off;
            size_t sum = 0;
            for (int32_t j = 0; j < w->n_from; j++) {
                const struct qp_gguf_tensor *t = qp_gguf_find_tensor(g, w->from[j]);
                if (!t || !t->data || sum + t->bytes > w->bytes)
                    return qp_error_set(err, QP_ERR_INVALID,
                                        "%s: plan weight '%s': source tensor '%s' missing in %s or larger than the weight",
                                        p->source ? p->source : "plan", w->name, w->from[j], qp_gguf_path(g));
                enum qp_status s = host ? (memcpy(dst + sum, t->data, t->bytes), QP_OK)
                                        : x->b->vt->upload(x->b, dst + sum, t->data, t->bytes, err);
                if (s != QP_OK) return s;
                sum += t->bytes;
            }
            if (sum != w->bytes)
                return qp_error_set(err, QP_ERR_INVALID, "%s: plan weight '%s' is %llu bytes, its sources %zu",
                                    p->source ? p->source : "plan", w->name, (unsigned long long)w->bytes, sum);
            x->wptr[i] = dst;
            off += align_up(w->bytes);
        }
        done += w->bytes;
        if (cfg->progress) cfg->progress(cfg->progress_user, done, total);
    }
    if (!host) return x->b->vt->weights_sync(x->b, err);
    return QP_OK;
}

/* An op part: rows [row0, row0 + rows) of a bound plan weight. */
static enum qp_status set_weight(struct qp_exec *x, const struct qp_plan_part *part,
                                 struct qp_weight *out, struct qp_error *err) {
    const struct qp_plan_weight *w = &x->plan->weights[part->weight];
    size_t rb;
    if (!qp_ggml_row_bytes(w->type, w->cols, &rb))
        return qp_error_set(err, QP_ERR_INVALID, "plan weight '%s': bad type %s for %lld columns",
                            w->name, qp_ggml_type_name(w->type), (long long)w->cols);
    out->type = w->type;
    out->data = (const char *)x->wptr[part->weight] + (size_t)part->row0 * rb;
    out->rows = part->rows;
    out->cols = w->cols;
    out->row_bytes = rb;
    return QP_OK;
}

/* Resolves node i's kernel name through the registry and checks that the kernel can run the
 * node as prepared in a, on this backend's device (the plan's target for the CPU, which runs every
 * kernel with its op's reference function). */
static enum qp_status resolve_kernel(struct qp_exec *x, const struct qp_plan_program *pp, int32_t i,
                                     struct qp_op_args *a, struct qp_error *err) {
    const struct qp_plan *p = x->plan;
    const struct qp_plan_node *nd = &pp->nodes[i];
    const char *src = p->source ? p->source : "plan";
    const struct qp_op_desc *od = qp_op_desc(nd->op);
    const struct qp_kernel_desc *kd = nd->kernel ? qp_kernel_find(nd->kernel) : NULL;
    if (!kd || kd->op != nd->op) {
        char names[256];
        qp_kernel_names(nd->op, names, sizeof names);
        return qp_error_set(err, QP_ERR_INVALID, "%s:%d: %s node %d (%s): %s kernel '%s' (kernels of %s: %s)",
                            src, nd->line, pp->name, i, od ? od->name : "?", kd ? "not an op's" : "no",
                            nd->kernel ? nd->kernel : "", od ? od->name : "?", names);
    }
    a->kernel = kd->id;
    struct qp_kernel_target t;
    qp_exec_target(x, &t);
    struct qp_op_args c = *a;
    c.n_tok = nd->rows == QP_PLAN_ROWS_LAST ? 1 : pp->max_tok;
    struct qp_error e;
    if (qp_kernel_check(kd->id, &c, &t, &e) != QP_OK)
        return qp_error_set(err, QP_ERR_INVALID, "%s:%d: %s node %d (%s): %s cannot run it on %s (sm_%d): %s", src,
                            nd->line, pp->name, i, od ? od->name : "?", kd->name, x->b->device_name,
                            t.sm, e.msg);
    return QP_OK;
}

static enum qp_status prepare_program(struct qp_exec *x, int32_t id, struct qp_error *err) {
    const struct qp_plan *p = x->plan;
    const struct qp_plan_program *pp = &p->programs[id];
    struct exec_program *e = &x->progs[id];
    size_t n = (size_t)(pp->n_nodes > 0 ? pp->n_nodes : 1);
    e->args = calloc(n, sizeof *e->args);
    e->ran = malloc(n * sizeof *e->ran);
    e->names = calloc(n, sizeof *e->names);
    e->name_buf = calloc(n, NODE_NAME_MAX);
    e->in0_base = calloc(n, sizeof *e->in0_base);
    e->in1_base = calloc(n, sizeof *e->in1_base);
    e->in0_w = calloc(n, sizeof *e->in0_w);
    e->in1_w = calloc(n, sizeof *e->in1_w);
    e->last_row = calloc(n, 1);
    if (!e->args || !e->ran || !e->names || !e->name_buf || !e->in0_base || !e->in1_base || !e->in0_w ||
        !e->in1_w || !e->last_row)
        return qp_error_set(err, QP_ERR_NOMEM, "out of memory preparing the %s program", pp->name);
    for (size_t i = 0; i < n; i++) e->ran[i] = -1;
    char *arena = x->b->arena;
    e->logits_node = -1;
    for (int32_t i = 0; i < pp->n_nodes; i++) {
        const struct qp_plan_node *nd = &pp->nodes[i];
        struct qp_op_args *a = &e->args[i];
        const struct qp_op_desc *d = qp_op_desc(nd->op);
        char *name = e->name_buf + (size_t)i * NODE_NAME_MAX;
        snprintf(name, NODE_NAME_MAX, "%s%s%s (plan line %d)", d ? d->name : "?",
                 nd->out >= 0 ? " -> " : "", nd->out >= 0 ? p->buffers[nd->out].name : "",
                 nd->line);
        e->names[i] = name;
        a->op = nd->op;
        a->batch = pp->batch;
        a->n_tok = 1;
        a->step = x->b->step;
        /* A last-row node reads row n_tok-1 of a per-token input ([max_chunk] rows), but row 0
         * of an input that is itself last-row only ([1] row, written by an earlier last-row
         * node): only the former is advanced per chunk (in*_w = 0 keeps the latter). */
        if (nd->n_in > 0) {
            a->in0 = (const float *)(arena + p->buffers[nd->in[0]].offset);
            a->in_w = p->buffers[nd->in[0]].cols;
            e->in0_w[i] = p->buffers[nd->in[0]].rows > 1 ? a->in_w : 0;
        }
        if (nd->n_in > 1) {
            a->in1 = (const float *)(arena + p->buffers[nd->in[1]].offset);
            e->in1_w[i] = p->buffers[nd->in[1]].rows > 1 ? p->buffers[nd->in[1]].cols : 0;
        }
        if (nd->out >= 0) {
            a->out = (float *)(arena + p->buffers[nd->out].offset);
            a->out_w = p->buffers[nd->out].cols;
            if (p->buffers[nd->out].cols == p->hparams.n_vocab) e->logits_node = i;
        }
        struct qp_plan_part parts[QP_OP_MAX_PARTS], bparts[QP_OP_MAX_PARTS];
        int np = qp_plan_node_parts(p, nd, false, parts);
        int nb = qp_plan_node_parts(p, nd, true, bparts);
        if (np < 0 || nb < 0 || (nb > 0 && nb != np))
            return qp_error_set(err, QP_ERR_INVALID, "%s: %s node %d '%s': %d weight parts and %d bias parts",
                                p->source ? p->source : "plan", pp->name, i, name, np, nb);
        a->n_parts = np;
        for (int k = 0; k < np; k++) {
            enum qp_status s = set_weight(x, &parts[k], &a->w[k], err);
            if (s != QP_OK) return s;
        }
        for (int k = 0; k < nb; k++)
            a->bias[k] = (const float *)x->wptr[bparts[k].weight] + bparts[k].row0;
        a->prologue = nd->prologue;
        a->epilogue = nd->epilogue;
        if (nd->norm >= 0) a->norm = x->wptr[nd->norm];
        a->eps = (float)nd->params.eps;
        a->n_head = (int32_t)nd->params.n_head;
        a->n_head_kv = (int32_t)nd->params.n_head_kv;
        a->head_dim = (int32_t)nd->params.head_dim;
        a->rope_base = (float)nd->params.rope_base;
        if (nd->params.layer >= 0) {
            uint64_t lo = (uint64_t)nd->params.layer * p->kv.layer_stride;
            a->kv.k = arena + p->kv.k_offset + lo;
            a->kv.v = arena + p->kv.v_offset + lo;
            a->kv.type = p->kv.type;
            a->kv.ctx = p->kv.ctx;
            a->kv.slots = p->kv.slots;
            a->kv.kv_dim = p->kv.kv_dim;
        }
        if (nd->scratch_bytes) {
            a->scratch = arena + nd->scratch_offset;
            a->scratch_bytes = nd->scratch_bytes;
        }
        a->launch = nd->launch;
        a->stream = x->b->stream;
        e->in0_base[i] = a->in0;
        e->in1_base[i] = a->in1;
        e->last_row[i] = nd->rows == QP_PLAN_ROWS_LAST;
        if (nd->op == QP_OP_ARGMAX || nd->epilogue == QP_EPILOGUE_ARGMAX) e->has_argmax = true;
        if (nd->op == QP_OP_STEP_ADVANCE) e->has_advance = true;
        enum qp_status ks = resolve_kernel(x, pp, i, a, err);
        if (ks != QP_OK) return ks;
    }
    if (e->logits_node < 0)
        return qp_error_set(err, QP_ERR_INVALID, "%s: the %s program writes no buffer of n_vocab (%lld) columns: no logits",
                            p->source ? p->source : "plan", pp->name, (long long)p->hparams.n_vocab);
    e->prog.name = pp->name;
    e->prog.ran = e->ran;
    e->prog.n_nodes = pp->n_nodes;
    e->prog.args = e->args;
    e->prog.node_names = e->names;
    e->prog.capture = pp->capture;
    return QP_OK;
}

enum qp_status qp_exec_init(const struct qp_plan *p, const struct qp_gguf *g,
                            const struct qp_exec_config *cfg, struct qp_exec **out,
                            struct qp_error *err) {
    *out = NULL;
    struct qp_exec *x = calloc(1, sizeof *x);
    if (!x) return qp_error_set(err, QP_ERR_NOMEM, "out of memory");
    x->plan = p;
    x->last_prog = -1;
    enum qp_status s = QP_OK;
    struct qp_backend_config bc = {
        .arena_bytes = (size_t)p->memory.arena_bytes,
        .step_offset = (size_t)p->step.offset,
        .max_chunk = (int32_t)p->limits.max_chunk,
        .device = cfg->device,
        .threads = cfg->threads,
        .use_graph = cfg->use_graph,
        .verbose = cfg->verbose,
        .sync_each = cfg->sync_each,
        .profile = cfg->profile,
    };
    x->wptr = calloc((size_t)(p->n_weights > 0 ? p->n_weights : 1), sizeof *x->wptr);
    x->logits = malloc((size_t)p->hparams.n_vocab * sizeof *x->logits);
    x->step_host = calloc(1, QP_STEP_HEADER_BYTES + QP_STEP_ROW_BYTES * (size_t)p->limits.max_chunk);
    x->progs = calloc((size_t)p->n_programs + 1, sizeof *x->progs);
    if (!x->wptr || !x->logits || !x->step_host || !x->progs) {
        s = qp_error_set(err, QP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    s = cfg->backend->init(&bc, &x->b, err);
    if (s != QP_OK) goto fail;
    if (x->b->sm > 0 && (x->b->sm != p->target.sm || x->b->sms != p->target.sms))
        fprintf(stderr, "qrun: note: the plan's kernels and launch shapes were chosen for sm_%d with %d SMs; %s is "
                "sm_%d with %d SMs (qplan compile --target sm_%d --sms %d, or qplan tune, fits them to it)\n",
                p->target.sm, p->target.sms, x->b->device_name, x->b->sm, x->b->sms, x->b->sm, x->b->sms);
    s = bind_weights(x, g, cfg, err);
    if (s != QP_OK) goto fail;
    for (int32_t id = 0; id < p->n_programs; id++) {
        s = prepare_program(x, id, err);
        if (s != QP_OK) goto fail;
    }
    *out = x;
    return QP_OK;
fail:
    qp_exec_free(x);
    return s;
}

void qp_exec_free(struct qp_exec *x) {
    if (!x) return;
    for (int32_t id = 0; x->progs && id < x->plan->n_programs; id++) {
        struct exec_program *e = &x->progs[id];
        free(e->args);
        free(e->ran);
        free(e->names);
        free(e->name_buf);
        free(e->in0_base);
        free(e->in1_base);
        free(e->in0_w);
        free(e->in1_w);
        free(e->last_row);
    }
    if (x->b) x->b->vt->free(x->b);
    free(x->stacked);
    free(x->wptr);
    free(x->logits);
    free(x->step_host);
    free(x->progs);
    free(x);
}

/* Sets every node of program id up for a chunk of n tokens: n_tok, and a last-row node's inputs
 * advanced to row n-1. */
static void set_chunk(struct exec_program *e, int32_t n) {
    for (int32_t i = 0; i < e->prog.n_nodes; i++) {
        struct qp_op_args *a = &e->args[i];
        if (e->last_row[i]) {
            a->n_tok = 1;
            a->in0 = e->in0_base[i] ? e->in0_base[i] + (int64_t)(n - 1) * e->in0_w[i] : NULL;
            a->in1 = e->in1_base[i] ? e->in1_base[i] + (int64_t)(n - 1) * e->in1_w[i] : NULL;
        } else {
            a->n_tok = n;
        }
    }
}

/* The chunk program for n tokens of the sequence in slot at pos, set up (set_chunk), with the step
 * state written unless the backend already holds it; *id is the program. */
static enum qp_status begin(struct qp_exec *x, int32_t slot, const int32_t *tokens, int32_t n, int64_t pos,
                            int32_t *id, struct qp_error *err) {
    const struct qp_plan *p = x->plan;
    if (n < 1 || n > p->limits.max_chunk)
        return qp_error_set(err, QP_ERR_RANGE, "forward: %d tokens, the plan's chunk is 1..%lld", n,
                            (long long)p->limits.max_chunk);
    if (pos < 0 || pos + n > p->limits.max_ctx)
        return qp_error_set(err, QP_ERR_RANGE,
                            "forward: positions %lld..%lld are past the KV cache (%lld positions)",
                            (long long)pos, (long long)(pos + n - 1), (long long)p->limits.max_ctx);
    if (slot < 0 || slot >= p->kv.slots)
        return qp_error_set(err, QP_ERR_RANGE, "forward: slot %d, the plan has %lld", slot, (long long)p->kv.slots);
    *id = qp_plan_find_program(p, n, false); /* validated: one program runs each chunk size */
    if (*id < 0) return qp_error_set(err, QP_ERR_INVALID, "forward: no program of the plan runs %d tokens", n);
    set_chunk(&x->progs[*id], n);
    /* The step state: skip the write when the backend already holds it (a decode program that
     * advanced the step itself and picked this very token): that is what lets a replayed
     * decode graph run with no host-to-device copy per token. */
    bool skip = n == 1 && x->dev_known && x->dev_pos == pos && x->dev_slot == slot && x->dev_tok0_known &&
                x->dev_tok0 == tokens[0];
    x->dev_known = false;
    x->dev_tok0_known = false;
    if (skip) return QP_OK;
    struct qp_step *h = x->step_host;
    h->n_tok = n;
    h->n_out = 1;
    for (int32_t t = 0; t < n; t++) h->rows[t] = (struct qp_step_row){tokens[t], (int32_t)(pos + t), slot, -1};
    return x->b->vt->write(x->b, x->b->step, h, QP_STEP_HEADER_BYTES + QP_STEP_ROW_BYTES * (size_t)n, err);
}

/* Runs program id as set up; a captured one replays its graph where the backend has graphs. */
static enum qp_status run_program(struct qp_exec *x, int32_t id, int32_t n, struct qp_error *err) {
    struct exec_program *e = &x->progs[id];
    enum qp_status s = e->prog.capture && x->b->vt->replay ? x->b->vt->replay(x->b, &e->prog, err)
                                                           : x->b->vt->run(x->b, &e->prog, err);
    if (s != QP_OK) return s;
    x->last_prog = id;
    x->last_n = n;
    return QP_OK;
}

enum qp_status qp_exec_forward_slot(struct qp_exec *x, int32_t slot, const int32_t *tokens, int32_t n, int64_t pos,
                                    struct qp_error *err) {
    int32_t id = -1;
    enum qp_status s = begin(x, slot, tokens, n, pos, &id, err);
    if (s == QP_OK) s = run_program(x, id, n, err);
    if (s != QP_OK) return s;
    x->last_rows = 1;
    if (x->progs[id].has_advance) {
        x->dev_known = true;
        x->dev_pos = pos + n;
        x->dev_slot = slot;
    }
    return QP_OK;
}

enum qp_status qp_exec_forward(struct qp_exec *x, const int32_t *tokens, int32_t n, int64_t pos,
                               struct qp_error *err) {
    return qp_exec_forward_slot(x, 0, tokens, n, pos, err);
}

/* The batch program for n sequences: the smallest bucket of at least n. */
static int32_t batch_program(const struct qp_plan *p, int32_t n) {
    int32_t best = -1;
    for (int32_t k = 0; k < p->n_programs; k++)
        if (p->programs[k].batch && p->programs[k].max_tok >= n &&
            (best < 0 || p->programs[k].max_tok < p->programs[best].max_tok))
            best = k;
    return best;
}

enum qp_status qp_exec_forward_batch(struct qp_exec *x, const struct qp_step_row *rows, int32_t n,
                                     struct qp_error *err) {
    const struct qp_plan *p = x->plan;
    if (n == 1) return qp_exec_forward_slot(x, rows[0].slot, &rows[0].token, 1, rows[0].pos, err);
    const int32_t id = n >= 2 ? batch_program(p, n) : -1;
    if (id < 0)
        return qp_error_set(err, QP_ERR_RANGE, "forward: a batch of %d sequences, the plan runs 1..%lld (its slots)",
                            n, (long long)p->kv.slots);
    for (int32_t t = 0; t < n; t++) {
        const struct qp_step_row *r = &rows[t];
        if (r->slot < 0 || r->slot >= p->kv.slots || r->pos < 0 || r->pos >= p->limits.max_ctx)
            return qp_error_set(err, QP_ERR_RANGE, "forward: batch row %d: slot %d (of %lld), position %d (of %lld)",
                                t, r->slot, (long long)p->kv.slots, r->pos, (long long)p->limits.max_ctx);
        for (int32_t u = 0; u < t; u++)
            if (rows[u].slot == r->slot)
                return qp_error_set(err, QP_ERR_INVALID, "forward: batch rows %d and %d are both slot %d", u, t, r->slot);
    }
    const int32_t B = p->programs[id].max_tok;
    struct qp_step *h = x->step_host;
    h->n_tok = B;
    h->n_out = B;
    for (int32_t t = 0; t < B; t++)
        h->rows[t] = t < n ? (struct qp_step_row){rows[t].token, rows[t].pos, rows[t].slot, -1}
                           : (struct qp_step_row){0, 0, -1, -1}; /* padding: no cache write, output 0 */
    x->dev_known = false;
    x->dev_tok0_known = false;
    set_chunk(&x->progs[id], B);
    enum qp_status s = x->b->vt->write(x->b, x->b->step, h, QP_STEP_HEADER_BYTES + QP_STEP_ROW_BYTES * (size_t)B, err);
    if (s == QP_OK) s = run_program(x, id, B, err);
    if (s == QP_OK) x->last_rows = n;
    return s;
}

enum qp_status qp_exec_batch_next(struct qp_exec *x, int32_t *tokens, int32_t n, struct qp_error *err) {
    if (x->last_prog < 0 || !x->progs[x->last_prog].has_argmax || n > x->last_rows)
        return qp_error_set(err, QP_ERR_INVALID, "batch tokens read without a batch run with an argmax");
    if (!x->plan->programs[x->last_prog].batch) return qp_exec_argmax(x, tokens, err); /* a chunk: one row */
    struct qp_step *h = x->step_host;
    enum qp_status s = x->b->vt->read(x->b, h, x->b->step, QP_STEP_HEADER_BYTES + QP_STEP_ROW_BYTES * (size_t)n, err);
    if (s != QP_OK) return s;
    for (int32_t t = 0; t < n; t++) {
        if (h->rows[t].next < 0 || h->rows[t].next >= x->plan->hparams.n_vocab)
            return qp_error_set(err, QP_ERR_DEVICE, "the backend's argmax wrote token %d for row %d (vocabulary %lld)",
                                h->rows[t].next, t, (long long)x->plan->hparams.n_vocab);
        tokens[t] = h->rows[t].next;
    }
    return QP_OK;
}

enum qp_status qp_exec_batch_logits(struct qp_exec *x, int32_t row, const float **logits, struct qp_error *err) {
    if (x->last_prog < 0 || row < 0 || row >= x->last_rows)
        return qp_error_set(err, QP_ERR_INVALID, "logits of row %d read, the last run had %d", row, x->last_rows);
    const struct exec_program *e = &x->progs[x->last_prog];
    if (!x->plan->programs[x->last_prog].batch) return qp_exec_logits(x, logits, err); /* a chunk: its last token's */
    const struct qp_op_args *a = &e->args[e->logits_node];
    enum qp_status s = x->b->vt->read(x->b, x->logits, a->out + (int64_t)row * a->out_w,
                                      (size_t)x->plan->hparams.n_vocab * sizeof(float), err);
    if (s != QP_OK) return s;
    *logits = x->logits;
    return QP_OK;
}

enum qp_status qp_exec_begin(struct qp_exec *x, const int32_t *tokens, int32_t n, int64_t pos, int32_t *program,
                             struct qp_error *err) {
    return begin(x, 0, tokens, n, pos, program, err);
}

struct qp_op_args *qp_exec_node_args(struct qp_exec *x, int32_t program, int32_t node) {
    if (program < 0 || program >= x->plan->n_programs || node < 0 || node >= x->progs[program].prog.n_nodes)
        return NULL;
    return &x->progs[program].args[node];
}

enum qp_status qp_exec_run_op(struct qp_exec *x, const struct qp_op_args *a, struct qp_error *err) {
    int32_t ran = -1;
    const char *name = "tuning";
    const struct qp_backend_program one = {"tune", 1, (struct qp_op_args *)a, &name, false, &ran};
    return x->b->vt->run(x->b, &one, err);
}

enum qp_status qp_exec_time_op(struct qp_exec *x, const struct qp_op_args *a, int reps, double *us,
                               struct qp_error *err) {
    if (!x->b->vt->time_op) return qp_error_set(err, QP_ERR_UNSUPPORTED, "the %s backend cannot time ops", x->b->vt->name);
    return x->b->vt->time_op(x->b, a, reps, us, err);
}

enum qp_status qp_exec_alloc_extra(struct qp_exec *x, size_t bytes, void **out, struct qp_error *err) {
    if (!x->b->vt->alloc_extra) return qp_error_set(err, QP_ERR_UNSUPPORTED, "the %s backend has no extra memory", x->b->vt->name);
    return x->b->vt->alloc_extra(x->b, bytes, out, err);
}

enum qp_status qp_exec_copy(struct qp_exec *x, void *dst, const void *src, size_t bytes, struct qp_error *err) {
    if (!x->b->vt->copy) return qp_error_set(err, QP_ERR_UNSUPPORTED, "the %s backend cannot copy", x->b->vt->name);
    return x->b->vt->copy(x->b, dst, src, bytes, err);
}

enum qp_status qp_exec_read(struct qp_exec *x, void *dst, const void *src, size_t bytes, struct qp_error *err) {
    return x->b->vt->read(x->b, dst, src, bytes, err);
}

void *qp_exec_arena(const struct qp_exec *x, size_t *bytes) {
    if (bytes) *bytes = x->b->arena_bytes;
    return x->b->arena;
}

void qp_exec_device(const struct qp_exec *x, int32_t *sm, int32_t *sms, char *name, size_t n) {
    *sm = x->b->sm;
    *sms = x->b->sms;
    snprintf(name, n, "%s", x->b->device_name ? x->b->device_name : x->b->vt->name);
}

void qp_exec_target(const struct qp_exec *x, struct qp_kernel_target *t) {
    *t = x->b->sm > 0 ? (struct qp_kernel_target){x->b->sm, x->b->sms}
                      : (struct qp_kernel_target){x->plan->target.sm, x->plan->target.sms};
}

enum qp_status qp_exec_logits(struct qp_exec *x, const float **logits, struct qp_error *err) {
    if (x->last_prog < 0) return qp_error_set(err, QP_ERR_INVALID, "logits read before any forward");
    const struct exec_program *e = &x->progs[x->last_prog];
    const struct qp_op_args *a = &e->args[e->logits_node];
    int64_t row = e->last_row[e->logits_node] ? 0 : x->last_n - 1;
    const float *src = a->out + row * a->out_w;
    enum qp_status s = x->b->vt->read(x->b, x->logits, src,
                                      (size_t)x->plan->hparams.n_vocab * sizeof(float), err);
    if (s != QP_OK) return s;
    *logits = x->logits;
    return QP_OK;
}

bool qp_exec_has_argmax(const struct qp_exec *x) {
    for (int32_t k = 0; k < x->plan->n_programs; k++)
        if (!x->progs[k].has_argmax) return false;
    return true;
}

int32_t qp_exec_kernel_ran(const struct qp_exec *x, int32_t program, int32_t node) {
    if (program < 0 || program >= x->plan->n_programs || node < 0 || node >= x->plan->programs[program].n_nodes)
        return -1;
    return x->progs[program].ran[node];
}

const struct qp_plan *qp_exec_plan(const struct qp_exec *x) { return x->plan; }

enum qp_status qp_exec_argmax(struct qp_exec *x, int32_t *token, struct qp_error *err) {
    if (x->last_prog < 0 || !x->progs[x->last_prog].has_argmax)
        return qp_error_set(err, QP_ERR_INVALID, "argmax read without an argmax in the program");
    struct qp_step *h = x->step_host;
    enum qp_status s = x->b->vt->read(x->b, h, x->b->step, QP_STEP_HEADER_BYTES + QP_STEP_ROW_BYTES, err);
    if (s != QP_OK) return s;
    /* a chunk's argmax ran on its last row into rows[0].next, which step_advance then made
     * rows[0].token */
    const int32_t tok = x->dev_known ? h->rows[0].token : h->rows[0].next;
    if (tok < 0 || tok >= x->plan->hparams.n_vocab)
        return qp_error_set(err, QP_ERR_DEVICE, "the backend's argmax wrote token %d (vocabulary %lld)", tok,
                            (long long)x->plan->hparams.n_vocab);
    *token = tok;
    if (x->dev_known) { /* step_advance moved the picked token into rows[0].token */
        x->dev_tok0 = tok;
        x->dev_tok0_known = true;
    }
    return QP_OK;
}

const char *qp_exec_backend_name(const struct qp_exec *x) { return x->b->vt->name; }
