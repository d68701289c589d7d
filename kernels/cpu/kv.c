/* kv.c — the KV-cache append (CPU reference): rows [pos0, pos0+n) of one layer's K and V. */
#include <string.h>

#include "cpu_internal.h"
#include "fp16_inline.h"
#include "qp_cpu.h"
#include "qp_ggml.h"

static void write_rows(void *cache, int32_t type, const float *src, int64_t n, int64_t pos0, int64_t dim) {
    if (type == QP_GGML_F32) {
        memcpy((float *)cache + pos0 * dim, src, (size_t)(n * dim) * sizeof(float));
        return;
    }
    uint16_t *dst = (uint16_t *)cache + pos0 * dim;
    for (int64_t i = 0; i < n * dim; i++) dst[i] = qp_f2h(src[i]);
}

void qp_cpu_kv_write(const struct qp_kv_ref *kv, const float *k, const float *v, int64_t n, int64_t pos0) {
    write_rows(kv->k, kv->type, k, n, pos0, kv->kv_dim);
    write_rows(kv->v, kv->type, v, n, pos0, kv->kv_dim);
}
