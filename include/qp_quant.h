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
uint16_t qp_fp32_to_bf16(float f); /* round to nearest even; NaN stays a (quiet) NaN */

/* True when kernels/cpu/quant.c dequantizes type. */
bool qp_quant_supported(int32_t type);

/* dst[0..n) = the n elements of the row src of the given type. */
void qp_quant_dequant_row(int32_t type, const void *src, float *dst, int64_t n);

/* sum_i row[i] * x[i] over the n elements of a quantized row, fp32 accumulation. */
float qp_quant_dot_row(int32_t type, const void *row, const float *x, int64_t n);

/* Writes n elements (whole blocks) of valid random blocks of type to dst (row-bytes of the
 * type, see qp_ggml_row_bytes): quants uniform random, block scales/mins chosen so that the
 * dequantized values have mean ~0 and standard deviation ~scale (scale > 0; within ~10% for
 * n >= 4096), all fp16 fields finite. Deterministic: the same *rng_state (advanced, qp_rng.h)
 * gives the same bytes on every platform. Implemented in kernels/cpu/quant_random.c. */
void qp_quant_random_row(int32_t type, uint64_t *rng_state, float scale, void *dst, int64_t n);

#ifdef __cplusplus
}
#endif
