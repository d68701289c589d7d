/* fp16.c — the public binary16 / bfloat16 conversions of qp_quant.h.
 *
 * Thin wrappers over kernels/cpu/fp16_inline.h, which the quant kernels inline directly.
 * Exactness and rounding are tested in tests/test_quant.c against math done in double.
 */
#include "fp16_inline.h"
#include "qp_quant.h"

float qp_fp16_to_fp32(uint16_t h) { return qp_h2f(h); }

uint16_t qp_fp32_to_fp16(float f) { return qp_f2h(f); }

float qp_bf16_to_fp32(uint16_t h) { return qp_bf2f(h); }

uint16_t qp_fp32_to_bf16(float f) { return qp_f2bf(f); }
