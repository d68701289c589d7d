/* memplan.c — places everything in one arena: the step state at 0, the KV cache after it
 * (all layers' K, then all layers' V, each slice 256-aligned), then the activation buffers
 * and per-node scratch regions.
 *
 * Liveness is computed per program over the node order exactly as plan_validate.c defines it
 * (a write that does not read starts a live segment, reads extend it). Two buffers conflict
 * when any of their segments meet in either program; a node's scratch conflicts with the
 * buffers live at that node and with nothing else (scratch lives only during its node).
 * Placement is greedy first-fit: buffers by decreasing size, then scratch regions by
 * decreasing size, each at the lowest aligned offset clear of every conflicting region already
 * placed. Ties break on index, so the result is deterministic.
 */
#include <stdlib.h>
#include <string.h>

#include "compile_internal.h"
#include "qp_ggml.h"

static uint64_t align_up(uint64_t v) {
    return (v + QP_PLAN_ALIGNMENT - 1) / QP_PLAN_ALIGNMENT * QP_PLAN_ALIGNMENT;
}

struct item {
    uint64_t bytes, off;
    int32_t buf;        /* buffer index, or -1 for a scratch */
    int32_t prog, node; /* scratch: where it lives */
    bool placed;
};

/* live[k][i * nb + b]: buffer b is live at node i of program k. */
static bool *liveness(const struct qp_plan *p, int32_t k) {
    const struct qp_plan_program *g = &p->programs[k];
    size_t nb = (size_t)p->n_buffers, nn = (size_t)g->n_nodes;
    bool *live = calloc(nn * nb + 1, 1);
    int32_t *start = malloc((nb + 1) * sizeof *start), *end = malloc((nb + 1) * sizeof *end);
    if (!live || !start || !end) {
        free(live);
        free(start);
        free(end);
        return NULL;
    }
    for (size_t b = 0; b < nb; b++) start[b] = -1;
    /* close a segment: mark [start, end] */
#define CLOSE(b)                                                                               \
    do {                                                                                       \
        if (start[b] >= 0)                                                                     \
            for (int32_t j_ = start[b]; j_ <= end[b]; j_++) live[(size_t)j_ * nb + (b)] = true; \
    } while (0)
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const struct qp_plan_node *n = &g->nodes[i];
        bool reads_out = false;
        for (int32_t j = 0; j < n->n_in; j++) {
            int32_t b = n->in[j];
            if (b == n->out) reads_out = true;
            if (start[b] >= 0) end[b] = i;
        }
        if (n->out >= 0 && !reads_out) {
            CLOSE(n->out);
            start[n->out] = end[n->out] = i;
        }
    }
    for (size_t b = 0; b < nb; b++) CLOSE(b);
#undef CLOSE
    free(start);
    free(end);
    return live;
}

static int by_size(const void *a, const void *b) {
    const struct item *x = a, *y = b;
    bool xs = x->buf < 0, ys = y->buf < 0;
    if (xs != ys) return xs ? 1 : -1; /* buffers first */
    if (x->bytes != y->bytes) return x->bytes > y->bytes ? -1 : 1;
    if (x->buf != y->buf) return x->buf < y->buf ? -1 : 1;
    if (x->prog != y->prog) return x->prog < y->prog ? -1 : 1;
    return x->node < y->node ? -1 : x->node > y->node;
}

enum qp_status qp_memplan(struct qp_plan *p, struct qp_error *err) {
    size_t es = p->kv.type == QP_GGML_F32 ? 4 : 2;
    uint64_t slice = (uint64_t)p->kv.slots * (uint64_t)p->kv.ctx * (uint64_t)p->kv.kv_dim * es;
    p->step.offset = 0;
    p->step.bytes = QP_STEP_HEADER_BYTES + QP_STEP_ROW_BYTES * (uint64_t)p->limits.max_chunk;
    p->kv.k_offset = align_up(p->step.bytes);
    p->kv.layer_stride = align_up(slice);
    p->kv.v_offset = p->kv.k_offset + p->kv.layer_stride * (uint64_t)p->kv.n_layer;
    p->memory.kv_bytes = 2 * slice * (uint64_t)p->kv.n_layer;
    uint64_t base = p->kv.v_offset + p->kv.layer_stride * (uint64_t)p->kv.n_layer;

    size_t nb = (size_t)p->n_buffers, n_items = nb;
    for (int32_t k = 0; k < p->n_programs; k++)
        for (int32_t i = 0; i < p->programs[k].n_nodes; i++)
            n_items += p->programs[k].nodes[i].scratch_bytes > 0;
    struct item *items = calloc(n_items + 1, sizeof *items);
    bool *conf = calloc(nb * nb + 1, 1);
    bool **live = calloc((size_t)p->n_programs + 1, sizeof *live);
    bool live_ok = live != NULL;
    for (int32_t k = 0; live && k < p->n_programs; k++) live_ok = (live[k] = liveness(p, k)) != NULL && live_ok;
    enum qp_status st = QP_OK;
    if (!items || !conf || !live_ok) {
        st = qp_error_set(err, QP_ERR_NOMEM, "out of memory planning the arena");
        goto done;
    }
    for (size_t b = 0; b < nb; b++) items[b] = (struct item){p->buffers[b].bytes, 0, (int32_t)b, -1, -1, false};
    size_t m = nb;
    for (int32_t k = 0; k < p->n_programs; k++)
        for (int32_t i = 0; i < p->programs[k].n_nodes; i++)
            if (p->programs[k].nodes[i].scratch_bytes)
                items[m++] = (struct item){p->programs[k].nodes[i].scratch_bytes, 0, -1, k, i, false};
    /* buffer-buffer conflicts */
    for (int32_t k = 0; k < p->n_programs; k++)
        for (int32_t i = 0; i < p->programs[k].n_nodes; i++) {
            const bool *row = live[k] + (size_t)i * nb;
            for (size_t a = 0; a < nb; a++)
                if (row[a])
                    for (size_t b = 0; b < nb; b++)
                        if (row[b]) conf[a * nb + b] = true;
        }
    qsort(items, n_items, sizeof *items, by_size);
    uint64_t top = base;
    for (size_t it = 0; it < n_items; it++) {
        struct item *x = &items[it];
        uint64_t off = base;
        for (bool moved = true; moved;) {
            moved = false;
            for (size_t j = 0; j < it; j++) {
                const struct item *y = &items[j];
                if (y->buf < 0) continue; /* scratch never conflicts with scratch or buffers placed later */
                bool c = x->buf >= 0 ? conf[(size_t)x->buf * nb + (size_t)y->buf]
                                     : live[x->prog][(size_t)x->node * nb + (size_t)y->buf];
                if (c && off < y->off + y->bytes && y->off < off + x->bytes) {
                    off = align_up(y->off + y->bytes);
                    moved = true;
                }
            }
        }
        x->off = off;
        x->placed = true;
        if (off + x->bytes > top) top = off + x->bytes;
        if (x->buf >= 0) p->buffers[x->buf].offset = off;
        else p->programs[x->prog].nodes[x->node].scratch_offset = off;
    }
    p->memory.arena_bytes = align_up(top);
done:
    free(items);
    free(conf);
    for (int32_t k = 0; live && k < p->n_programs; k++) free(live[k]);
    free(live);
    return st;
}
