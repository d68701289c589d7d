/* weights.c — reading rows of GGUF-layout weights (struct qp_weight) as f32 for the CPU ops.
 *
 * Owns: which weight types the CPU ops accept, and row access. Quantized types are
 * dequantized by qp_quant_dequant_row (kernels/cpu/quant.c, branch quant); until that lands
 * this file reads F32 and F16 itself (f16 conversion below, also used by the KV cache).
 */
#include <string.h>

#include "cpu_internal.h"
#include "qp_cpu.h"
#include "qp_ggml.h"

float qp_cpu_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

uint16_t qp_cpu_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00); /* NaN */
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to >= 65520: inf */
    if (ax < 0x38800000u) {                                   /* below 2^-14: subnormal f16 */
        if (ax < 0x33000000u) return sign;                    /* below half the smallest: 0 */
        uint32_t e = ax >> 23;
        uint32_t m = (ax & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* value = m * 2^(e-150); f16 unit 2^-24 -> shift = 126-e */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t e = (ax >> 23) - 127 + 15;
    uint32_t m = ax & 0x7fffff;
    uint32_t q = (e << 10) | (m >> 13);
    uint32_t rem = m & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (q & 1))) q++; /* carries into the exponent correctly */
    return (uint16_t)(sign | q);
}

bool qp_cpu_weight_type_supported(int32_t type) {
    return type == QP_GGML_F32 || type == QP_GGML_F16;
}

void qp_cpu_weight_row(const struct qp_weight *w, int64_t row, int64_t first, int64_t n, float *dst) {
    const struct qp_ggml_type_info *ti = qp_ggml_type_info(w->type);
    QP_ASSERT(ti && first % ti->block_elems == 0 && row >= 0 && row < w->rows && first + n <= w->cols);
    const uint8_t *src = (const uint8_t *)w->data + (size_t)row * w->row_bytes +
                         (size_t)(first / ti->block_elems) * ti->block_bytes;
    switch (w->type) {
    case QP_GGML_F32: memcpy(dst, src, (size_t)n * sizeof(float)); break;
    case QP_GGML_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = qp_cpu_f16_to_f32(h);
        }
        break;
    default: QP_ASSERT(!"weight type checked by the op entry");
    }
}
