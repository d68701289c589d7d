/* plan.c — the in-memory plan's life cycle (qp_plan_new / qp_plan_free), name lookups and the
 * names of its small enums. Reading, writing and validating live in plan_read.c,
 * plan_write.c and plan_validate.c. */
#include "qp_plan.h"

#include <stdlib.h>
#include <string.h>

int32_t qp_plan_find_program(const struct qp_plan *p, int64_t n, bool batch) {
    for (int32_t k = 0; k < p->n_programs; k++)
        if (p->programs[k].batch == batch && n >= p->programs[k].min_tok && n <= p->programs[k].max_tok) return k;
    return -1;
}

int32_t qp_plan_program_by_name(const struct qp_plan *p, const char *name) {
    for (int32_t k = 0; k < p->n_programs; k++)
        if (p->programs[k].name && strcmp(p->programs[k].name, name) == 0) return k;
    return -1;
}

int qp_plan_line(const struct qp_plan *p, const char *path) {
    size_t sect = strcspn(path, ".");
    int at = 0;
    for (int32_t i = 0; i < p->n_lines; i++) {
        const char *k = p->lines[i].path;
        if (strcmp(k, path) == 0) return p->lines[i].line;
        if (strlen(k) == sect && strncmp(k, path, sect) == 0) at = p->lines[i].line;
    }
    return at;
}

const char *qp_plan_rows_name(enum qp_plan_rows r) {
    return r == QP_PLAN_ROWS_LAST ? "last" : "all";
}

struct qp_plan *qp_plan_new(void) {
    struct qp_plan *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->version = QP_PLAN_VERSION;
    p->memory.alignment = QP_PLAN_ALIGNMENT;
    p->kv.type = -1;
    return p;
}

void qp_plan_free(struct qp_plan *p) {
    if (!p) return;
    free(p->target.backend);
    free(p->target.card);
    for (int32_t i = 0; i < p->n_passes; i++) free(p->passes[i]);
    free(p->passes);
    free(p->source);
    free(p->lines);
    free(p->model.file);
    free(p->hparams.arch);
    for (int32_t i = 0; i < p->n_weights; i++) {
        struct qp_plan_weight *w = &p->weights[i];
        free(w->name);
        for (int32_t j = 0; j < w->n_from; j++) free(w->from[j]);
        free(w->from);
        free(w->part_rows);
    }
    free(p->weights);
    for (int32_t i = 0; i < p->n_buffers; i++) free(p->buffers[i].name);
    free(p->buffers);
    for (int32_t k = 0; k < p->n_programs; k++) {
        struct qp_plan_program *g = &p->programs[k];
        free(g->name);
        for (int32_t i = 0; i < g->n_nodes; i++) free(g->nodes[i].kernel);
        free(g->nodes);
    }
    free(p->programs);
    free(p);
}

int32_t qp_plan_find_weight(const struct qp_plan *p, const char *name) {
    for (int32_t i = 0; i < p->n_weights; i++)
        if (p->weights[i].name && strcmp(p->weights[i].name, name) == 0) return i;
    return -1;
}

int32_t qp_plan_find_buffer(const struct qp_plan *p, const char *name) {
    for (int32_t i = 0; i < p->n_buffers; i++)
        if (p->buffers[i].name && strcmp(p->buffers[i].name, name) == 0) return i;
    return -1;
}

int qp_plan_node_parts(const struct qp_plan *p, const struct qp_plan_node *n, bool bias,
                       struct qp_plan_part out[QP_OP_MAX_PARTS]) {
    const int32_t *idx = bias ? n->bias : n->weights;
    int32_t cnt = bias ? n->n_bias : n->n_weights;
    int k = 0;
    for (int32_t i = 0; i < cnt; i++) {
        const struct qp_plan_weight *w = &p->weights[idx[i]];
        int64_t row0 = 0;
        for (int32_t j = 0; j < w->n_from; j++) {
            if (k == QP_OP_MAX_PARTS) return -1;
            int64_t r = w->part_rows ? w->part_rows[j] : (w->rows == 1 ? w->cols : w->rows);
            out[k++] = (struct qp_plan_part){idx[i], row0, r};
            row0 += r;
        }
    }
    return k;
}
