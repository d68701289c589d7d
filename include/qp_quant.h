/* qp_quant.h — dequantization and quantized dot products of the GGML types (CPU reference).
 *
 * Formats as ggml-common.h / ggml-quants.c define them; known answers come from the `gguf`
 * PyPI package (tests/data/quant/, made by scripts/make-quant-vectors.py). Every function
 * takes n elements = a whole number of blocks of the type (callers check; QP_ASSERT here).
 * fp32 accumulation throughout. Implemented in kernels/cpu/quant.c.
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "qp_ggml.h"
#include "qp_status.h"

#ifdef __cplusplus
extern "C" {
#endif

float qp_fp16_to_fp32(uint16_t h);
uint16_t qp_fp32_to_fp16(float f); /* round to nearest even; overflow to inf */
float qp_bf16_to_fp32(uint16_t h);

/* True when kernels/cpu/quant.c dequantizes type. */
bool qp_quant_supported(int32_t type);

/* dst[0..n) = the n elements of the row src of the given type. */
void qp_quant_dequant_row(int32_t type, const void *src, float *dst, int64_t n);

/* sum_i row[i] * x[i] over the n elements of a quantized row, fp32 accumulation. */
float qp_quant_dot_row(int32_t type, const void *row, const float *x, int64_t n);

#ifdef __cplusplus
}
#endif
