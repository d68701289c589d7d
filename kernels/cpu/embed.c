/* embed.c — the embedding row gather (CPU reference). Token ids are checked by the op entry. */
#include "qp_cpu.h"

void qp_cpu_embed(const struct qp_weight *w, const int32_t *tokens, int64_t n, float *out) {
    for (int64_t t = 0; t < n; t++) qp_cpu_weight_row(w, tokens[t], 0, w->cols, out + t * w->cols);
}
