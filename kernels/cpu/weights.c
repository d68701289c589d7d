/* weights.c — reading rows of GGUF-layout weights (struct qp_weight) as f32 for the CPU ops.
 *
 * Owns: which weight types the CPU ops accept (every type qp_quant.h dequantizes), and
 * row-slice access. The decoding itself is qp_quant_dequant_row (kernels/cpu/quant.c).
 */
#include <string.h>

#include "cpu_internal.h"
#include "qp_cpu.h"
#include "qp_ggml.h"
#include "qp_quant.h"

bool qp_cpu_weight_type_supported(int32_t type) {
    return qp_quant_supported(type);
}

void qp_cpu_weight_row(const struct qp_weight *w, int64_t row, int64_t first, int64_t n, float *dst) {
    const struct qp_ggml_type_info *ti = qp_ggml_type_info(w->type);
    QP_ASSERT(ti && first % ti->block_elems == 0 && row >= 0 && row < w->rows && first + n <= w->cols);
    const uint8_t *src = (const uint8_t *)w->data + (size_t)row * w->row_bytes +
                         (size_t)(first / ti->block_elems) * ti->block_bytes;
    if (w->type == QP_GGML_F32)
        memcpy(dst, src, (size_t)n * sizeof(float));
    else
        qp_quant_dequant_row(w->type, src, dst, n);
}
