/* quant_random.c — valid random blocks of every supported GGML type (qp_quant_random_row).
 *
 * Owns the recipe for synthetic weights: quants uniform over their range (Q4_0 / Q5_0 leave out
 * the lowest code, so that the block is symmetric about the format's fixed offset), per-block and
 * per-sub-block scales drawn from a fixed band, mins set so the block is centred, and the
 * super-block scale d computed from the second moment of that recipe so the dequantized
 * values have RMS ~= the requested scale. Moments used (q uniform integers):
 *   E[(q - c)^2] over k levels centred:  (k^2 - 1) / 12;  uniform integers a..b: mean (a+b)/2,
 *   variance ((b-a+1)^2 - 1) / 12.
 * Every fp16 field is the rounding of a finite value inside the fp16 range. Q6_K's d is
 * subnormal for scales below ~0.1 (as in real files: |value| <= 4064 d); the fp16 step there
 * (2^-24) keeps its relative rounding error below 0.5% for scales >= 0.01.
 */
#include <math.h>
#include <string.h>

#include "fp16_inline.h"
#include "qp_quant.h"
#include "qp_rng.h"

static void st16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xFF);
    p[1] = (uint8_t)(v >> 8);
}

static void put_f16(uint8_t *p, float v) { st16(p, qp_f2h(v)); }

static uint8_t rnd_byte(uint64_t *rs) { return (uint8_t)(qp_rng_next(rs) >> 56); }

static void rnd_bytes(uint64_t *rs, uint8_t *p, int n) {
    for (int i = 0; i < n; i++) p[i] = rnd_byte(rs);
}

/* Uniform integer in [a, b]. */
static int rnd_int(uint64_t *rs, int a, int b) { return a + (int)qp_rng_below(rs, (uint32_t)(b - a + 1)); }

/* Uniform in [-1, 1) scaled so the standard deviation is s: uniform on [-a, a] has sd a/sqrt 3. */
static float rnd_f(uint64_t *rs, float s) { return (2.0f * qp_rng_uniform(rs) - 1.0f) * s * 1.7320508f; }

/* Second moments of the quant recipes below. */
#define M2_Q4_CENTRED 18.6667f /* (q-8), q in 1..15: (15^2 - 1) / 12 */
#define M2_Q4_SPAN 21.25f     /* q - 7.5 */
#define M2_Q5_CENTRED 80.0f   /* (q-16), q in 1..31: (31^2 - 1) / 12 */
#define M2_Q5_SPAN 85.25f     /* q - 15.5 */
#define M2_Q8 5461.33333f     /* q in -127..127: (255^2 - 1) / 12 */
#define M2_Q2_SPAN 1.25f      /* q - 1.5, q in 0..3 */
#define M2_Q3 5.5f            /* q in -4..3: var 5.25 + 0.25 */
#define M2_Q6 341.5f          /* q-32, q in 0..63: var 341.25 + 0.25 */
#define M2_SC_32_63 2341.5f   /* 6-bit scales in 32..63: 47.5^2 + 85.25 */
#define M2_SC_8_15 137.5f     /* 4-bit scales in 8..15: 11.5^2 + 5.25 */
#define M2_SC_16_31 573.5f    /* |Q3_K scale| in 16..31: 23.5^2 + 21.25 */
#define M2_SC_64_127 9461.5f  /* |Q6_K scale| in 64..127: 95.5^2 + 341.25 */

/* Packs 6-bit scale/min pairs j = 0..7 into the 12-byte Q4_K / Q5_K layout (inverse of
 * scale_min_k4 in quant.c). */
static void pack_scale_min_k4(const uint8_t sc[8], const uint8_t m[8], uint8_t s[12]) {
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        s[j + 4] = (uint8_t)((m[j] & 63) | ((m[j + 4] >> 4) << 6));
        s[j + 8] = (uint8_t)((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
    }
}

/* Packs Q3_K 6-bit biased scales i = 0..15 into 12 bytes (inverse of q3k_scale in quant.c). */
static void pack_q3k_scales(const uint8_t sc[16], uint8_t s[12]) {
    memset(s, 0, 12);
    for (int i = 0; i < 16; i++) {
        if (i < 8)
            s[i] |= (uint8_t)(sc[i] & 0xF);
        else
            s[i - 8] |= (uint8_t)((sc[i] & 0xF) << 4);
        s[8 + (i & 3)] |= (uint8_t)(((sc[i] >> 4) & 3) << (2 * (i >> 2)));
    }
}

static void random_block(int32_t type, uint64_t *rs, float scale, uint8_t *b) {
    switch (type) {
    case QP_GGML_Q4_0: /* q in 1..15, not 0..15: symmetric about the offset 8, so mean 0 */
        put_f16(b, scale / sqrtf(M2_Q4_CENTRED));
        for (int j = 0; j < 16; j++) { /* two statements: the order of a | b is unspecified */
            const int lo = rnd_int(rs, 1, 15);
            const int hi = rnd_int(rs, 1, 15);
            b[2 + j] = (uint8_t)(lo | (hi << 4));
        }
        return;
    case QP_GGML_Q4_1: {
        const float d = qp_h2f(qp_f2h(scale / sqrtf(M2_Q4_SPAN)));
        put_f16(b, d);
        put_f16(b + 2, -7.5f * d);
        rnd_bytes(rs, b + 4, 16);
        return;
    }
    case QP_GGML_Q5_0: { /* q in 1..31 (symmetric about 16), split into qh bits and nibbles */
        put_f16(b, scale / sqrtf(M2_Q5_CENTRED));
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            const int q0 = rnd_int(rs, 1, 31), q1 = rnd_int(rs, 1, 31);
            b[6 + j] = (uint8_t)((q0 & 0xF) | ((q1 & 0xF) << 4));
            qh |= (uint32_t)(q0 >> 4) << j | (uint32_t)(q1 >> 4) << (j + 16);
        }
        for (int j = 0; j < 4; j++) b[2 + j] = (uint8_t)(qh >> (8 * j));
        return;
    }
    case QP_GGML_Q5_1: {
        const float d = qp_h2f(qp_f2h(scale / sqrtf(M2_Q5_SPAN)));
        put_f16(b, d);
        put_f16(b + 2, -15.5f * d);
        rnd_bytes(rs, b + 4, 20);
        return;
    }
    case QP_GGML_Q8_0:
        put_f16(b, scale / sqrtf(M2_Q8));
        for (int i = 0; i < 32; i++) b[2 + i] = (uint8_t)(int8_t)rnd_int(rs, -127, 127);
        return;
    case QP_GGML_Q2_K: { /* value = d*sc*q - dmin*m with m = sc, dmin = 1.5 d: d*sc*(q - 1.5) */
        const float d = qp_h2f(qp_f2h(scale / sqrtf(M2_SC_8_15 * M2_Q2_SPAN)));
        for (int i = 0; i < 16; i++) {
            const int sc = rnd_int(rs, 8, 15);
            b[i] = (uint8_t)(sc | (sc << 4));
        }
        rnd_bytes(rs, b + 16, 64);
        put_f16(b + 80, d);
        put_f16(b + 82, 1.5f * d);
        return;
    }
    case QP_GGML_Q3_K: { /* value = d*(sc-32)*q, |sc-32| in 16..31 with a random sign */
        uint8_t sc[16];
        for (int i = 0; i < 16; i++) {
            const int mag = rnd_int(rs, 16, 31);
            sc[i] = (uint8_t)(32 + ((qp_rng_next(rs) >> 63) ? -mag : mag));
        }
        rnd_bytes(rs, b, 96);
        pack_q3k_scales(sc, b + 96);
        put_f16(b + 108, scale / sqrtf(M2_SC_16_31 * M2_Q3));
        return;
    }
    case QP_GGML_Q4_K:
    case QP_GGML_Q5_K: { /* value = d*sc*q - dmin*m with m = sc, dmin = (levels-1)/2 * d */
        const bool five = type == QP_GGML_Q5_K;
        const float d = qp_h2f(qp_f2h(scale / sqrtf(M2_SC_32_63 * (five ? M2_Q5_SPAN : M2_Q4_SPAN))));
        uint8_t sc[8];
        for (int j = 0; j < 8; j++) sc[j] = (uint8_t)rnd_int(rs, 32, 63);
        put_f16(b, d);
        put_f16(b + 2, (five ? 15.5f : 7.5f) * d);
        pack_scale_min_k4(sc, sc, b + 4);
        rnd_bytes(rs, b + 16, five ? 160 : 128);
        return;
    }
    case QP_GGML_Q6_K: { /* value = d*sc*(q-32), |sc| in 64..127 with a random sign */
        rnd_bytes(rs, b, 192);
        for (int i = 0; i < 16; i++) {
            const int mag = rnd_int(rs, 64, 127);
            b[192 + i] = (uint8_t)(int8_t)((qp_rng_next(rs) >> 63) ? -mag : mag);
        }
        put_f16(b + 208, scale / sqrtf(M2_SC_64_127 * M2_Q6));
        return;
    }
    default: QP_ASSERT(!"random_block: type without a recipe");
    }
}

void qp_quant_random_row(int32_t type, uint64_t *rng_state, float scale, void *dst, int64_t n) {
    const struct qp_ggml_type_info *ti = qp_ggml_type_info(type);
    QP_ASSERT(ti != NULL && qp_quant_supported(type));
    QP_ASSERT(n >= 0 && n % ti->block_elems == 0);
    uint8_t *p = dst;
    switch (type) {
    case QP_GGML_F32:
        for (int64_t i = 0; i < n; i++) {
            const float v = rnd_f(rng_state, scale);
            memcpy(p + 4 * i, &v, 4);
        }
        return;
    case QP_GGML_F16:
        for (int64_t i = 0; i < n; i++) st16(p + 2 * i, qp_f2h(rnd_f(rng_state, scale)));
        return;
    case QP_GGML_BF16:
        for (int64_t i = 0; i < n; i++) st16(p + 2 * i, qp_f2bf(rnd_f(rng_state, scale)));
        return;
    default: break;
    }
    const int64_t nb = n / ti->block_elems;
    for (int64_t ib = 0; ib < nb; ib++) random_block(type, rng_state, scale, p + ib * ti->block_bytes);
}
