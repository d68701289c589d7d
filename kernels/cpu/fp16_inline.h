/* fp16_inline.h — inline IEEE binary16 / bfloat16 <-> binary32 conversions for the CPU kernels.
 *
 * Internal to kernels/cpu/ (the public entry points are qp_fp16_to_fp32 & co. in qp_quant.h,
 * kernels/cpu/fp16.c). Plain integer arithmetic, no intrinsics, exact: every binary16 value,
 * subnormals included, converts to the binary32 value it denotes; NaN stays NaN (payload kept,
 * quiet bit set on narrowing); narrowing rounds to nearest, ties to even, overflow to inf.
 */
#pragma once
#include <stdint.h>
#include <string.h>

static inline float qp_bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t qp_f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float qp_h2f(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1Fu;
    uint32_t man = h & 0x3FFu;
    if (exp == 0x1Fu) return qp_bits_to_f32(sign | 0x7F800000u | (man << 13)); /* inf, NaN */
    if (exp != 0) return qp_bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
    if (man == 0) return qp_bits_to_f32(sign); /* +-0 */
    /* subnormal: value = man * 2^-24; normalise the mantissa (man < 2^10). */
    uint32_t e = 113u; /* biased f32 exponent of 2^-14, the binary16 subnormal exponent */
    while ((man & 0x400u) == 0) {
        man <<= 1;
        e--;
    }
    return qp_bits_to_f32(sign | (e << 23) | ((man & 0x3FFu) << 13));
}

static inline uint16_t qp_f2h(float f) {
    const uint32_t u = qp_f32_to_bits(f);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    const uint32_t exp = (u >> 23) & 0xFFu;
    const uint32_t man = u & 0x7FFFFFu;
    if (exp == 0xFFu) { /* inf or NaN (keep the top payload bits, force quiet) */
        if (man == 0) return (uint16_t)(sign | 0x7C00u);
        return (uint16_t)(sign | 0x7E00u | (man >> 13));
    }
    const int32_t e = (int32_t)exp - 127; /* unbiased exponent */
    if (e > 15) return (uint16_t)(sign | 0x7C00u); /* |f| >= 2^16: inf */
    if (e >= -14) {                                 /* normal binary16 range (may round up) */
        uint32_t m = man >> 13;
        const uint32_t rest = man & 0x1FFFu;
        uint32_t h = ((uint32_t)(e + 15) << 10) | m;
        if (rest > 0x1000u || (rest == 0x1000u && (m & 1u))) h++; /* carry may reach inf: correct */
        return (uint16_t)(sign | h);
    }
    if (e < -25) return sign; /* below half the smallest subnormal (2^-25): rounds to 0 */
    /* subnormal result, e in [-25, -15]: f = full * 2^(e-23) with full = 1.man as a 24-bit
     * integer; in units of 2^-24 (the binary16 subnormal step) that is full * 2^(e+1), so
     * shift = -e-1 (14..24) bits of full are dropped and rounded. */
    const uint32_t full = man | 0x800000u;
    const uint32_t shift = (uint32_t)(-e - 1);
    uint32_t m = full >> shift;
    const uint32_t rest = full & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1u);
    if (rest > half || (rest == half && (m & 1u))) m++; /* may become the smallest normal: correct */
    return (uint16_t)(sign | m);
}

static inline float qp_bf2f(uint16_t h) { return qp_bits_to_f32((uint32_t)h << 16); }

static inline uint16_t qp_f2bf(float f) {
    const uint32_t u = qp_f32_to_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);                 /* nearest even */
}
