/* embed.c — the embedding row gather (CPU reference). Token ids are checked by the op entry. */
#include "qp_cpu.h"

void qp_cpu_embed(const struct qp_weight *w, const struct qp_step_row *rows, int64_t n, float *out) {
    for (int64_t t = 0; t < n; t++) qp_cpu_weight_row(w, rows[t].token, 0, w->cols, out + t * w->cols);
}
