/* kv.c — the KV-cache append (CPU reference): each row's K and V at its slot and position. */
#include <string.h>

#include "cpu_internal.h"
#include "fp16_inline.h"
#include "qp_cpu.h"
#include "qp_ggml.h"

static void write_row(void *cache, int32_t type, const float *src, int64_t at, int64_t dim) {
    if (type == QP_GGML_F32) {
        memcpy((float *)cache + at * dim, src, (size_t)dim * sizeof(float));
        return;
    }
    uint16_t *dst = (uint16_t *)cache + at * dim;
    for (int64_t i = 0; i < dim; i++) dst[i] = qp_f2h(src[i]);
}

void qp_cpu_kv_write(const struct qp_kv_ref *kv, const float *k, const float *v, int64_t n,
                     const struct qp_step_row *rows) {
    const int64_t dim = kv->kv_dim;
    for (int64_t t = 0; t < n; t++) {
        if (rows[t].slot < 0) continue; /* a padding row */
        const int64_t at = (int64_t)rows[t].slot * kv->ctx + rows[t].pos;
        write_row(kv->k, kv->type, k + t * dim, at, dim);
        write_row(kv->v, kv->type, v + t * dim, at, dim);
    }
}
