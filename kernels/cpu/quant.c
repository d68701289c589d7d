/* quant.c — dequantization and row·vector dot products of the GGML types (qp_quant.h).
 *
 * Owns: the block decoders of F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K,
 * Q5_K and Q6_K, written from ggml-common.h / ggml-quants.c (layouts: docs/quant-formats.md).
 * Does not own: type geometry (core/ggml_type.c), random blocks (quant_random.c).
 *
 * Dequantization uses exactly the per-element operation order of ggml's dequantize_row_* (and
 * of the `gguf` package), so results are bit-identical to those references: e.g. Q4_K is
 * (d*sc)*q - (dmin*m), each product rounded to fp32. The file is compiled in ISO C mode, where
 * gcc does not contract a*b+c into an fma, which would change the last bit.
 *
 * Dot products do not dequantize: per (sub-)block they form the integer quants as floats and
 * sum q·x and (for types with a min) x in 8 fp32 lanes, then apply the block's scale and min:
 *     sum_i (d q_i - m) x_i  =  d · sum_i q_i x_i  -  m · sum_i x_i.
 * That is ~2 flops per element instead of ~4 and the fixed-size lane loops vectorise at -O2;
 * the rounding differs from "dequantize, then dot" by a few ulp of sum |(d q_i)+(m)|·|x_i|, which
 * tests/test_quant.c bounds against a double-precision sum.
 *
 * Blocks are read byte-wise (fp16 fields assembled little-endian), so rows need no alignment.
 */
#include "qp_quant.h"

#include <string.h>

#include "fp16_inline.h"

#define QK 32   /* elements per legacy block */
#define QK_K 256 /* elements per K-quant super-block */
#define LANES 8 /* fp32 accumulator lanes of the dot products (two SSE / one AVX register) */

static inline uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static inline uint32_t ld32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline float f16_at(const uint8_t *p) { return qp_h2f(ld16(p)); }

/* Q5 high bits as floats: k_qh16[v][t] = 16 if bit t of the 4-bit value v is set. Adding
 * rows of this table (one per 4 elements) avoids per-element variable shifts, which SSE2 and
 * AVX2 cannot vectorise well. */
static const float k_qh16[16][4] = {
    {0, 0, 0, 0},   {16, 0, 0, 0},   {0, 16, 0, 0},   {16, 16, 0, 0},   {0, 0, 16, 0},   {16, 0, 16, 0},
    {0, 16, 16, 0}, {16, 16, 16, 0}, {0, 0, 0, 16},   {16, 0, 0, 16},   {0, 16, 0, 16},  {16, 16, 0, 16},
    {0, 0, 16, 16}, {16, 0, 16, 16}, {0, 16, 16, 16}, {16, 16, 16, 16},
};

/* q[i] += 16 * bit i of qh, i < 32. */
static inline void add_qh16(uint32_t qh, float q[32]) {
    for (int g = 0; g < 8; g++) {
        const float *t = k_qh16[(qh >> (4 * g)) & 0xF];
        for (int l = 0; l < 4; l++) q[4 * g + l] += t[l];
    }
}

static inline float hsum(const float a[LANES]) {
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* 6-bit scale and min j (0..7) of a Q4_K / Q5_K super-block (ggml's get_scale_min_k4). */
static inline void scale_min_k4(int j, const uint8_t *s, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
        *m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* 6-bit scale i (0..15) of a Q3_K super-block, still biased by 32. */
static inline int q3k_scale(int i, const uint8_t *s) {
    const int lo = i < 8 ? (s[i] & 0xF) : (s[i - 8] >> 4);
    const int hi = (s[8 + (i & 3)] >> (2 * (i >> 2))) & 3;
    return lo | (hi << 4);
}

/* ---------------------------------------------------------------- block dequantizers */
/* Each writes the block's elements to y in order; b points at the block's first byte. */

static void deq_q4_0(const uint8_t *b, float *y) {
    const float d = f16_at(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((int)(qs[j] & 0xF) - 8);
        y[j + 16] = d * (float)((int)(qs[j] >> 4) - 8);
    }
}

static void deq_q4_1(const uint8_t *b, float *y) {
    const float d = f16_at(b), m = f16_at(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)(qs[j] & 0xF) + m;
        y[j + 16] = d * (float)(qs[j] >> 4) + m;
    }
}

static void deq_q5_0(const uint8_t *b, float *y) {
    const float d = f16_at(b);
    const uint32_t qh = ld32(b + 2);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        const int q0 = (int)((qs[j] & 0xFu) | (((qh >> j) & 1u) << 4)) - 16;
        const int q1 = (int)((qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4)) - 16;
        y[j] = d * (float)q0;
        y[j + 16] = d * (float)q1;
    }
}

static void deq_q5_1(const uint8_t *b, float *y) {
    const float d = f16_at(b), m = f16_at(b + 2);
    const uint32_t qh = ld32(b + 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        const uint32_t q0 = (qs[j] & 0xFu) | (((qh >> j) & 1u) << 4);
        const uint32_t q1 = (qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4);
        y[j] = d * (float)q0 + m;
        y[j + 16] = d * (float)q1 + m;
    }
}

static void deq_q8_0(const uint8_t *b, float *y) {
    const float d = f16_at(b);
    const int8_t *qs = (const int8_t *)(b + 2);
    for (int j = 0; j < QK; j++) y[j] = (float)qs[j] * d;
}

/* Q2_K: scales[16] (low nibble scale, high nibble min), qs[64], d, dmin. Element 128c+32j+l
 * (c < 2, j < 4, l < 32) is bits 2j..2j+1 of qs[32c+l], in sub-block (128c+32j+l)/16. */
static void deq_q2_k(const uint8_t *b, float *y) {
    const uint8_t *sc = b, *qs = b + 16;
    const float d = f16_at(b + 80), dmin = f16_at(b + 82);
    for (int c = 0; c < 2; c++)
        for (int j = 0; j < 4; j++)
            for (int h = 0; h < 2; h++) {
                const int is = 8 * c + 2 * j + h;
                const float dl = d * (float)(sc[is] & 0xF), ml = dmin * (float)(sc[is] >> 4);
                float *o = y + 128 * c + 32 * j + 16 * h;
                const uint8_t *q = qs + 32 * c + 16 * h;
                for (int l = 0; l < 16; l++) o[l] = dl * (float)((q[l] >> (2 * j)) & 3) - ml;
            }
}

/* Q3_K: hmask[32], qs[64], scales[12], d. Element 128c+32j+l: low 2 bits as Q2_K, minus 4
 * when bit 4c+j of hmask[l] is clear; scale (128c+32j+l)/16, 6-bit, minus 32. */
static void deq_q3_k(const uint8_t *b, float *y) {
    const uint8_t *hm = b, *qs = b + 32, *sc = b + 96;
    const float d = f16_at(b + 108);
    for (int c = 0; c < 2; c++)
        for (int j = 0; j < 4; j++)
            for (int h = 0; h < 2; h++) {
                const int is = 8 * c + 2 * j + h;
                const float dl = d * (float)(q3k_scale(is, sc) - 32);
                float *o = y + 128 * c + 32 * j + 16 * h;
                const uint8_t *q = qs + 32 * c + 16 * h;
                const uint8_t *hh = hm + 16 * h;
                for (int l = 0; l < 16; l++) {
                    const int v = ((q[l] >> (2 * j)) & 3) - (((hh[l] >> (4 * c + j)) & 1) ? 0 : 4);
                    o[l] = dl * (float)v;
                }
            }
}

/* Q4_K: d, dmin, scales[12], qs[128]. Chunk c < 4 of 64: element 64c+l is the low nibble of
 * qs[32c+l] (sub-block 2c), element 64c+32+l the high nibble (sub-block 2c+1). */
static void deq_q4_k(const uint8_t *b, float *y) {
    const float d = f16_at(b), dmin = f16_at(b + 2);
    const uint8_t *s = b + 4, *qs = b + 16;
    for (int c = 0; c < 4; c++) {
        uint8_t sc, m;
        scale_min_k4(2 * c, s, &sc, &m);
        const float d1 = d * (float)sc, m1 = dmin * (float)m;
        scale_min_k4(2 * c + 1, s, &sc, &m);
        const float d2 = d * (float)sc, m2 = dmin * (float)m;
        const uint8_t *q = qs + 32 * c;
        for (int l = 0; l < 32; l++) y[64 * c + l] = d1 * (float)(q[l] & 0xF) - m1;
        for (int l = 0; l < 32; l++) y[64 * c + 32 + l] = d2 * (float)(q[l] >> 4) - m2;
    }
}

/* Q5_K: d, dmin, scales[12], qh[32], qs[128]. As Q4_K, plus 16 when bit 2c (low nibbles) or
 * 2c+1 (high nibbles) of qh[l] is set. */
static void deq_q5_k(const uint8_t *b, float *y) {
    const float d = f16_at(b), dmin = f16_at(b + 2);
    const uint8_t *s = b + 4, *qh = b + 16, *qs = b + 48;
    for (int c = 0; c < 4; c++) {
        uint8_t sc, m;
        scale_min_k4(2 * c, s, &sc, &m);
        const float d1 = d * (float)sc, m1 = dmin * (float)m;
        scale_min_k4(2 * c + 1, s, &sc, &m);
        const float d2 = d * (float)sc, m2 = dmin * (float)m;
        const uint8_t *q = qs + 32 * c;
        for (int l = 0; l < 32; l++)
            y[64 * c + l] = d1 * (float)((q[l] & 0xF) | (((qh[l] >> (2 * c)) & 1) << 4)) - m1;
        for (int l = 0; l < 32; l++)
            y[64 * c + 32 + l] = d2 * (float)((q[l] >> 4) | (((qh[l] >> (2 * c + 1)) & 1) << 4)) - m2;
    }
}

/* Q6_K: ql[128], qh[64], scales[16] int8, d. Half h < 2 of 128, element 128h+32j+l: low 4 bits
 * from ql[64h+l] (j=0 low nibble, j=2 high nibble) or ql[64h+32+l] (j=1 low, j=3 high), high 2
 * bits (qh[32h+l] >> 2j) & 3, minus 32; scale (128h+32j+l)/16. */
static inline int q6k_q(const uint8_t *ql, const uint8_t *qh, int h, int j, int l) {
    const uint8_t lo = ql[64 * h + 32 * (j & 1) + l];
    const int nib = (j < 2) ? (lo & 0xF) : (lo >> 4);
    return (nib | (((qh[32 * h + l] >> (2 * j)) & 3) << 4)) - 32;
}

static void deq_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    const float d = f16_at(b + 208);
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) {
                const float dl = d * (float)sc[8 * h + 2 * j + l / 16];
                y[128 * h + 32 * j + l] = dl * (float)q6k_q(ql, qh, h, j, l);
            }
}

/* ------------------------------------------------------------------------ type table */

typedef void (*deq_fn)(const uint8_t *b, float *y);
typedef float (*dot_fn)(const uint8_t *row, const float *x, int64_t nb);

/* ---------------------------------------------------------------------- dot products */
/* Each takes nb blocks of its type; x has nb * block_elems floats.
 *
 * QP_DOT_CLONES: on x86-64 with GCC (ifunc), each dot is also compiled for AVX2 and the loader
 * picks the version the CPU supports; the build stays baseline x86-64 (SSE2). The explicit
 * 8-lane accumulators fix the summation order, and ISO C mode forbids fma contraction, so both
 * versions return bit-identical results. Measured (bench_matvec, 896x4864, EPYC, CPU time):
 * AVX2 is ~2x SSE2 for Q8_0 / Q4_K / Q6_K, but ~0.5x for the nibble-split legacy types
 * (Q4_0, Q4_1, Q5_0, Q5_1: 2.5 vs 4.6 Gelem/s for Q4_0), which therefore stay baseline only.
 * Elsewhere the attribute expands to nothing. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(QP_NO_CLONES)
#define QP_DOT_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define QP_DOT_CLONES
#endif

/* lanes s[l] += q[j+l] * x[j+l] over n (multiple of LANES) elements; xs likewise sums x. */
static inline void lane_dot(const float *q, const float *x, int n, float s[LANES]) {
    for (int j = 0; j < n; j += LANES)
        for (int l = 0; l < LANES; l++) s[l] += q[j + l] * x[j + l];
}

static inline void lane_dot_sum(const float *q, const float *x, int n, float s[LANES], float xs[LANES]) {
    for (int j = 0; j < n; j += LANES)
        for (int l = 0; l < LANES; l++) {
            s[l] += q[j + l] * x[j + l];
            xs[l] += x[j + l];
        }
}

QP_DOT_CLONES static float dot_f32(const uint8_t *row, const float *x, int64_t n) {
    const float *w = (const float *)(const void *)row; /* dot_row checked the alignment */
    float acc[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += w[i + l] * x[i + l];
    float s = hsum(acc);
    for (; i < n; i++) s += w[i] * x[i];
    return s;
}

QP_DOT_CLONES static float dot_f32_unaligned(const uint8_t *row, const float *x, int64_t n) {
    float acc[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        float w[LANES];
        memcpy(w, row + 4 * i, sizeof w);
        for (int l = 0; l < LANES; l++) acc[l] += w[l] * x[i + l];
    }
    float s = hsum(acc);
    for (; i < n; i++) {
        float w;
        memcpy(&w, row + 4 * i, sizeof w);
        s += w * x[i];
    }
    return s;
}

QP_DOT_CLONES static float dot_f16(const uint8_t *row, const float *x, int64_t n) {
    float acc[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        float w[LANES];
        for (int l = 0; l < LANES; l++) w[l] = qp_h2f(ld16(row + 2 * (i + l)));
        for (int l = 0; l < LANES; l++) acc[l] += w[l] * x[i + l];
    }
    float s = hsum(acc);
    for (; i < n; i++) s += qp_h2f(ld16(row + 2 * i)) * x[i];
    return s;
}

QP_DOT_CLONES static float dot_bf16(const uint8_t *row, const float *x, int64_t n) {
    float acc[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        float w[LANES];
        for (int l = 0; l < LANES; l++) w[l] = qp_bf2f(ld16(row + 2 * (i + l)));
        for (int l = 0; l < LANES; l++) acc[l] += w[l] * x[i + l];
    }
    float s = hsum(acc);
    for (; i < n; i++) s += qp_bf2f(ld16(row + 2 * i)) * x[i];
    return s;
}

/* The 32 4-bit quants of a legacy block (low nibbles, then high nibbles) minus `off`, as floats
 * (exact: small integers). */
static inline void unpack_nibbles(const uint8_t *qs, int off, float q[QK]) {
    for (int j = 0; j < 16; j++) {
        q[j] = (float)((int)(qs[j] & 0xF) - off);
        q[j + 16] = (float)((int)(qs[j] >> 4) - off);
    }
}

static float dot_q4_0(const uint8_t *row, const float *x, int64_t nb) {
    float acc[LANES] = {0};
    for (int64_t ib = 0; ib < nb; ib++, row += 18, x += QK) {
        const float d = f16_at(row);
        const uint8_t *qs = row + 2;
        float q[QK], s[LANES] = {0};
        unpack_nibbles(qs, 8, q);
        lane_dot(q, x, QK, s);
        for (int l = 0; l < LANES; l++) acc[l] += d * s[l];
    }
    return hsum(acc);
}

static float dot_q4_1(const uint8_t *row, const float *x, int64_t nb) {
    float acc[LANES] = {0};
    for (int64_t ib = 0; ib < nb; ib++, row += 20, x += QK) {
        const float d = f16_at(row), m = f16_at(row + 2);
        const uint8_t *qs = row + 4;
        float q[QK], s[LANES] = {0}, xs[LANES] = {0};
        unpack_nibbles(qs, 0, q);
        lane_dot_sum(q, x, QK, s, xs);
        for (int l = 0; l < LANES; l++) acc[l] += d * s[l] + m * xs[l];
    }
    return hsum(acc);
}

static float dot_q5_0(const uint8_t *row, const float *x, int64_t nb) {
    float acc[LANES] = {0};
    for (int64_t ib = 0; ib < nb; ib++, row += 22, x += QK) {
        const float d = f16_at(row);
        const uint8_t *qs = row + 6;
        float q[QK], s[LANES] = {0};
        unpack_nibbles(qs, 16, q);
        add_qh16(ld32(row + 2), q); /* exact: small integers */
        lane_dot(q, x, QK, s);
        for (int l = 0; l < LANES; l++) acc[l] += d * s[l];
    }
    return hsum(acc);
}

static float dot_q5_1(const uint8_t *row, const float *x, int64_t nb) {
    float acc[LANES] = {0};
    for (int64_t ib = 0; ib < nb; ib++, row += 24, x += QK) {
        const float d = f16_at(row), m = f16_at(row + 2);
        const uint8_t *qs = row + 8;
        float q[QK], s[LANES] = {0}, xs[LANES] = {0};
        unpack_nibbles(qs, 0, q);
        add_qh16(ld32(row + 4), q);
        lane_dot_sum(q, x, QK, s, xs);
        for (int l = 0; l < LANES; l++) acc[l] += d * s[l] + m * xs[l];
    }
    return hsum(acc);
}

QP_DOT_CLONES static float dot_q8_0(const uint8_t *row, const float *x, int64_t nb) {
    float acc[LANES] = {0};
    for (int64_t ib = 0; ib < nb; ib++, row += 34, x += QK) {
        const float d = f16_at(row);
        const int8_t *qs = (const int8_t *)(row + 2);
        float q[QK], s[LANES] = {0};
        for (int j = 0; j < QK; j++) q[j] = (float)qs[j];
        lane_dot(q, x, QK, s);
        for (int l = 0; l < LANES; l++) acc[l] += d * s[l];
    }
    return hsum(acc);
}

QP_DOT_CLONES static float dot_q2_k(const uint8_t *row, const float *x, int64_t nb) {
    float acc[LANES] = {0};
    for (int64_t ib = 0; ib < nb; ib++, row += 84, x += QK_K) {
        const uint8_t *sc = row, *qs = row + 16;
        const float d = f16_at(row + 80), dmin = f16_at(row + 82);
        for (int c = 0; c < 2; c++)
            for (int j = 0; j < 4; j++) {
                float q[32];
                for (int l = 0; l < 32; l++) q[l] = (float)((qs[32 * c + l] >> (2 * j)) & 3);
                for (int h = 0; h < 2; h++) {
                    const int is = 8 * c + 2 * j + h;
                    const float dl = d * (float)(sc[is] & 0xF), ml = dmin * (float)(sc[is] >> 4);
                    float s[LANES] = {0}, xs[LANES] = {0};
                    lane_dot_sum(q + 16 * h, x + 128 * c + 32 * j + 16 * h, 16, s, xs);
                    for (int l = 0; l < LANES; l++) acc[l] += dl * s[l] - ml * xs[l];
                }
            }
    }
    return hsum(acc);
}

QP_DOT_CLONES static float dot_q3_k(const uint8_t *row, const float *x, int64_t nb) {
    float acc[LANES] = {0};
    for (int64_t ib = 0; ib < nb; ib++, row += 110, x += QK_K) {
        const uint8_t *hm = row, *qs = row + 32, *sc = row + 96;
        const float d = f16_at(row + 108);
        for (int c = 0; c < 2; c++)
            for (int j = 0; j < 4; j++) {
                float q[32];
                for (int l = 0; l < 32; l++)
                    q[l] = (float)(((qs[32 * c + l] >> (2 * j)) & 3) - (((hm[l] >> (4 * c + j)) & 1) ? 0 : 4));
                for (int h = 0; h < 2; h++) {
                    const float dl = d * (float)(q3k_scale(8 * c + 2 * j + h, sc) - 32);
                    float s[LANES] = {0};
                    lane_dot(q + 16 * h, x + 128 * c + 32 * j + 16 * h, 16, s);
                    for (int l = 0; l < LANES; l++) acc[l] += dl * s[l];
                }
            }
    }
    return hsum(acc);
}

/* Q4_K/Q5_K: chunk c (64 elements: sub-blocks 2c and 2c+1) of a block, whose unscaled quants
 * are q[0..64) and inputs x[0..64): adds d·scale·Σq·x − dmin·min·Σx of each sub-block to acc. */
__attribute__((always_inline)) static inline void kq_chunk_acc(const float q[64], const float *x,
                                                               const uint8_t *s6, int c, float d,
                                                               float dmin, float acc[LANES]) {
    for (int h = 0; h < 2; h++) {
        uint8_t sc, m;
        scale_min_k4(2 * c + h, s6, &sc, &m);
        const float dl = d * (float)sc, ml = dmin * (float)m;
        float s[LANES] = {0}, xs[LANES] = {0};
        lane_dot_sum(q + 32 * h, x + 32 * h, 32, s, xs);
        for (int l = 0; l < LANES; l++) acc[l] += dl * s[l] - ml * xs[l];
    }
}

QP_DOT_CLONES static float dot_q4_k(const uint8_t *row, const float *x, int64_t nb) {
    float acc[LANES] = {0};
    for (int64_t ib = 0; ib < nb; ib++, row += 144, x += QK_K) {
        const float d = f16_at(row), dmin = f16_at(row + 2);
        const uint8_t *s6 = row + 4, *qs = row + 16;
        for (int c = 0; c < 4; c++) {
            const uint8_t *qc = qs + 32 * c;
            float q[64];
            for (int l = 0; l < 32; l++) {
                q[l] = (float)(qc[l] & 0xF);
                q[l + 32] = (float)(qc[l] >> 4);
            }
            kq_chunk_acc(q, x + 64 * c, s6, c, d, dmin, acc);
        }
    }
    return hsum(acc);
}

QP_DOT_CLONES static float dot_q5_k(const uint8_t *row, const float *x, int64_t nb) {
    float acc[LANES] = {0};
    for (int64_t ib = 0; ib < nb; ib++, row += 176, x += QK_K) {
        const float d = f16_at(row), dmin = f16_at(row + 2);
        const uint8_t *s6 = row + 4, *qh = row + 16, *qs = row + 48;
        for (int c = 0; c < 4; c++) {
            const uint8_t *qc = qs + 32 * c;
            float q[64];
            for (int l = 0; l < 32; l++) {
                q[l] = (float)((qc[l] & 0xF) | (((qh[l] >> (2 * c)) & 1) << 4));
                q[l + 32] = (float)((qc[l] >> 4) | (((qh[l] >> (2 * c + 1)) & 1) << 4));
            }
            kq_chunk_acc(q, x + 64 * c, s6, c, d, dmin, acc);
        }
    }
    return hsum(acc);
}

QP_DOT_CLONES static float dot_q6_k(const uint8_t *row, const float *x, int64_t nb) {
    float acc[LANES] = {0};
    for (int64_t ib = 0; ib < nb; ib++, row += 210, x += QK_K) {
        const uint8_t *ql = row, *qh = row + 128;
        const int8_t *sc = (const int8_t *)(row + 192);
        const float d = f16_at(row + 208);
        for (int h = 0; h < 2; h++) {
            const uint8_t *l0 = ql + 64 * h, *l1 = ql + 64 * h + 32, *hh = qh + 32 * h;
            float q[128];
            for (int l = 0; l < 32; l++) {
                q[l] = (float)((int)((l0[l] & 0xF) | ((hh[l] & 3) << 4)) - 32);
                q[l + 32] = (float)((int)((l1[l] & 0xF) | (((hh[l] >> 2) & 3) << 4)) - 32);
                q[l + 64] = (float)((int)((l0[l] >> 4) | (((hh[l] >> 4) & 3) << 4)) - 32);
                q[l + 96] = (float)((int)((l1[l] >> 4) | (((hh[l] >> 6) & 3) << 4)) - 32);
            }
            for (int is = 0; is < 8; is++) {
                const float dl = d * (float)sc[8 * h + is];
                float s[LANES] = {0};
                lane_dot(q + 16 * is, x + 128 * h + 16 * is, 16, s);
                for (int l = 0; l < LANES; l++) acc[l] += dl * s[l];
            }
        }
    }
    return hsum(acc);
}

/* ------------------------------------------------------------------------ dispatch */

struct quant_impl {
    deq_fn deq; /* one block; NULL for the scalar types (handled inline) */
    dot_fn dot; /* nb blocks (scalar types: n elements) */
};

static const struct quant_impl *impl_of(int32_t type) {
    static const struct quant_impl impls[QP_GGML_TYPE_COUNT] = {
        [QP_GGML_F32] = {NULL, dot_f32},
        [QP_GGML_F16] = {NULL, dot_f16},
        [QP_GGML_BF16] = {NULL, dot_bf16},
        [QP_GGML_Q4_0] = {deq_q4_0, dot_q4_0},
        [QP_GGML_Q4_1] = {deq_q4_1, dot_q4_1},
        [QP_GGML_Q5_0] = {deq_q5_0, dot_q5_0},
        [QP_GGML_Q5_1] = {deq_q5_1, dot_q5_1},
        [QP_GGML_Q8_0] = {deq_q8_0, dot_q8_0},
        [QP_GGML_Q2_K] = {deq_q2_k, dot_q2_k},
        [QP_GGML_Q3_K] = {deq_q3_k, dot_q3_k},
        [QP_GGML_Q4_K] = {deq_q4_k, dot_q4_k},
        [QP_GGML_Q5_K] = {deq_q5_k, dot_q5_k},
        [QP_GGML_Q6_K] = {deq_q6_k, dot_q6_k},
    };
    if (type < 0 || type >= QP_GGML_TYPE_COUNT || impls[type].dot == NULL) return NULL;
    return &impls[type];
}

bool qp_quant_supported(int32_t type) { return impl_of(type) != NULL; }

/* Geometry of a supported type and n checked against it (internal invariant: callers check). */
static const struct qp_ggml_type_info *checked_info(int32_t type, int64_t n) {
    const struct qp_ggml_type_info *ti = qp_ggml_type_info(type);
    QP_ASSERT(ti != NULL && impl_of(type) != NULL);
    QP_ASSERT(n >= 0 && n % ti->block_elems == 0);
    return ti;
}

void qp_quant_dequant_row(int32_t type, const void *src, float *dst, int64_t n) {
    const struct qp_ggml_type_info *ti = checked_info(type, n);
    const uint8_t *p = src;
    switch (type) {
    case QP_GGML_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return;
    case QP_GGML_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = qp_h2f(ld16(p + 2 * i));
        return;
    case QP_GGML_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = qp_bf2f(ld16(p + 2 * i));
        return;
    default: break;
    }
    const deq_fn deq = impl_of(type)->deq;
    const int64_t nb = n / ti->block_elems;
    for (int64_t ib = 0; ib < nb; ib++) deq(p + ib * ti->block_bytes, dst + ib * ti->block_elems);
}

float qp_quant_dot_row(int32_t type, const void *row, const float *x, int64_t n) {
    const struct qp_ggml_type_info *ti = checked_info(type, n);
    if (type == QP_GGML_F32)
        return ((uintptr_t)row % _Alignof(float)) == 0 ? dot_f32(row, x, n) : dot_f32_unaligned(row, x, n);
    if (ti->block_elems == 1) return impl_of(type)->dot(row, x, n);
    return impl_of(type)->dot(row, x, n / ti->block_elems);
}
