/* build.c — helpers the lowering and the passes use to grow and shrink a plan under
 * construction: add weights, buffers and nodes; compact deleted nodes; drop dead buffers and
 * weights. Arrays grow geometrically (capacity = the next power of two of the count). */
#include <stdlib.h>
#include <string.h>

#include "compile_internal.h"
#include "qp_ggml.h"

char *qp_build_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Makes room for element n of an array of elem bytes (grows at 0 and powers of two). */
static bool grow(void **arr, int32_t n, size_t elem) {
    if (n != 0 && (n & (n - 1)) != 0) return true;
    size_t cap = n ? (size_t)n * 2 : 8;
    void *na = realloc(*arr, cap * elem);
    if (!na) return false;
    *arr = na;
    return true;
}

enum qp_status qp_build_weight(struct qp_plan *p, const char *name, int32_t type, int64_t rows,
                               int64_t cols, int32_t n_from, const char *const *from,
                               const int64_t *part_rows, int32_t *idx, struct qp_error *err) {
    int32_t k = qp_plan_find_weight(p, name);
    if (k >= 0) {
        const struct qp_plan_weight *w = &p->weights[k];
        if (w->type != type || w->rows != rows || w->cols != cols)
            return qp_error_set(err, QP_ERR_INVALID, "internal: weight '%s' added twice with "
                                "different shapes", name);
        *idx = k;
        return QP_OK;
    }
    size_t rb, bytes;
    if (!qp_ggml_row_bytes(type, cols, &rb) || !qp_mul_size(rb, (size_t)rows, &bytes))
        return qp_error_set(err, QP_ERR_FORMAT, "weight '%s': %lld x %lld of %s has no valid size",
                            name, (long long)rows, (long long)cols, qp_ggml_type_name(type));
    if (!grow((void **)&p->weights, p->n_weights, sizeof *p->weights)) goto oom;
    struct qp_plan_weight *w = &p->weights[p->n_weights];
    memset(w, 0, sizeof *w);
    w->name = qp_build_strdup(name);
    w->from = calloc((size_t)n_from, sizeof *w->from);
    w->part_rows = calloc((size_t)n_from, sizeof *w->part_rows);
    p->n_weights++; /* owned from here on: qp_plan_free releases partial entries */
    if (!w->name || !w->from || !w->part_rows) goto oom;
    w->type = type;
    w->rows = rows;
    w->cols = cols;
    w->bytes = bytes;
    for (int32_t j = 0; j < n_from; j++) {
        w->from[j] = qp_build_strdup(from[j]);
        w->n_from = j + 1;
        if (!w->from[j]) goto oom;
        w->part_rows[j] = part_rows ? part_rows[j] : (rows == 1 ? cols : rows);
    }
    *idx = p->n_weights - 1;
    return QP_OK;
oom:
    return qp_error_set(err, QP_ERR_NOMEM, "out of memory building a plan");
}

enum qp_status qp_build_buffer(struct qp_plan *p, const char *name, int64_t rows, int64_t cols,
                               int32_t *idx, struct qp_error *err) {
    int32_t k = qp_plan_find_buffer(p, name);
    if (k >= 0) {
        if (p->buffers[k].rows != rows || p->buffers[k].cols != cols)
            return qp_error_set(err, QP_ERR_INVALID, "internal: buffer '%s' reused with another "
                                "shape", name);
        *idx = k;
        return QP_OK;
    }
    size_t bytes;
    if (!qp_mul_size((size_t)rows, (size_t)cols, &bytes) || !qp_mul_size(bytes, 4, &bytes))
        return qp_error_set(err, QP_ERR_RANGE, "buffer '%s': %lld x %lld floats overflow", name,
                            (long long)rows, (long long)cols);
    if (!grow((void **)&p->buffers, p->n_buffers, sizeof *p->buffers)) goto oom;
    struct qp_plan_buffer *b = &p->buffers[p->n_buffers];
    memset(b, 0, sizeof *b);
    b->name = qp_build_strdup(name);
    p->n_buffers++;
    if (!b->name) goto oom;
    b->dtype = QP_GGML_F32;
    b->rows = rows;
    b->cols = cols;
    b->bytes = bytes;
    *idx = p->n_buffers - 1;
    return QP_OK;
oom:
    return qp_error_set(err, QP_ERR_NOMEM, "out of memory building a plan");
}

enum qp_status qp_build_node(struct qp_plan *p, enum qp_op op, struct qp_plan_node **node,
                             struct qp_error *err) {
    struct qp_plan_program *g = &p->programs[QP_BUILD_GRAPH];
    if (!grow((void **)&g->nodes, g->n_nodes, sizeof *g->nodes))
        return qp_error_set(err, QP_ERR_NOMEM, "out of memory building a plan");
    struct qp_plan_node *n = &g->nodes[g->n_nodes++];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->out = -1;
    n->norm = -1;
    n->params.layer = -1;
    *node = n;
    return QP_OK;
}

void qp_build_compact(struct qp_plan *p) {
    struct qp_plan_program *g = &p->programs[QP_BUILD_GRAPH];
    int32_t k = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].op == QP_OP_COUNT) {
            free(g->nodes[i].kernel);
            continue;
        }
        g->nodes[k++] = g->nodes[i];
    }
    g->n_nodes = k;
}

enum qp_status qp_build_remove_dead(struct qp_plan *p, int32_t *removed_buffers,
                                    int32_t *removed_weights, struct qp_error *err) {
    int32_t *bmap = calloc((size_t)p->n_buffers + 1, sizeof *bmap);
    int32_t *wmap = calloc((size_t)p->n_weights + 1, sizeof *wmap);
    if (!bmap || !wmap) {
        free(bmap);
        free(wmap);
        return qp_error_set(err, QP_ERR_NOMEM, "out of memory building a plan");
    }
    /* mark: 1 = used */
    for (int32_t k = 0; k < p->n_programs; k++) {
        const struct qp_plan_program *g = &p->programs[k];
        for (int32_t i = 0; i < g->n_nodes; i++) {
            const struct qp_plan_node *n = &g->nodes[i];
            for (int32_t j = 0; j < n->n_in; j++) bmap[n->in[j]] = 1;
            if (n->out >= 0) bmap[n->out] = 1;
            for (int32_t j = 0; j < n->n_weights; j++) wmap[n->weights[j]] = 1;
            for (int32_t j = 0; j < n->n_bias; j++) wmap[n->bias[j]] = 1;
            if (n->norm >= 0) wmap[n->norm] = 1;
        }
    }
    int32_t nb = 0, nw = 0;
    for (int32_t i = 0; i < p->n_buffers; i++) {
        if (!bmap[i]) {
            free(p->buffers[i].name);
            bmap[i] = -1;
            continue;
        }
        p->buffers[nb] = p->buffers[i];
        bmap[i] = nb++;
    }
    for (int32_t i = 0; i < p->n_weights; i++) {
        struct qp_plan_weight *w = &p->weights[i];
        if (!wmap[i]) {
            free(w->name);
            for (int32_t j = 0; j < w->n_from; j++) free(w->from[j]);
            free(w->from);
            free(w->part_rows);
            wmap[i] = -1;
            continue;
        }
        p->weights[nw] = *w;
        wmap[i] = nw++;
    }
    *removed_buffers = p->n_buffers - nb;
    *removed_weights = p->n_weights - nw;
    p->n_buffers = nb;
    p->n_weights = nw;
    for (int32_t k = 0; k < p->n_programs; k++) {
        struct qp_plan_program *g = &p->programs[k];
        for (int32_t i = 0; i < g->n_nodes; i++) {
            struct qp_plan_node *n = &g->nodes[i];
            for (int32_t j = 0; j < n->n_in; j++) n->in[j] = bmap[n->in[j]];
            if (n->out >= 0) n->out = bmap[n->out];
            for (int32_t j = 0; j < n->n_weights; j++) n->weights[j] = wmap[n->weights[j]];
            for (int32_t j = 0; j < n->n_bias; j++) n->bias[j] = wmap[n->bias[j]];
            if (n->norm >= 0) n->norm = wmap[n->norm];
        }
    }
    free(bmap);
    free(wmap);
    return QP_OK;
}
