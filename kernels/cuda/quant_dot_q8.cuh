/* quant_dot_q8.cuh — integer dot products of GGML weight blocks with 8-bit activations, for the
 * kernel mmvq (matvec_q8.cu).
 *
 * The activations: one token's x (times the RMS-norm weight) quantized per 32 consecutive values
 * as llama.cpp's q8_1 does — d = max|x| / 127, q = round(x / d) in [-127, 127] — and staged in
 * shared memory by the kernel (struct qp_xq8): the int8 values, the scale of each 32, and the
 * integer sum of each 16 (the offsets of Q4_0 / Q5_0 / Q6_K and Q4_K's minimum multiply it).
 *
 * The weights: each type's integer values, unpacked four at a time with 32-bit masks, dotted with
 * four activations by one DP4A (a 4-way int8 multiply-add into int32): ~1 instruction for 4 weights
 * where the f32 dots of quant_dot.cuh spend ~3-4 per weight. Every integer sum is exact; the block
 * and activation scales multiply it once in f32. The only rounding beyond fp32 summation is x's
 * quantization: ~0.4-0.6% relative error per output on random inputs (docs/cuda-kernels.md derives
 * the tolerance).
 *
 * An "item" is what one lane does per step: 32 weights (64 for Q6_K: one scale per 16 weights in
 * four groups), identified by its index in the row and, for the K-quants, its place k in its
 * block (item & KMASK); qp_q8dot<T>::run(row, item, k, xq) returns the item's sum of w * x in f32.
 */
#pragma once
#include "quant_blocks.cuh"
#include "quant_dot.cuh"

/* The staged activations of one token: q[cols] int8, d[cols / 32] scales, s16[cols / 16] sums. */
struct qp_xq8 {
    const int8_t *q;
    const float *d;
    const int *s16;
};

/* Sum of four DP4As: words w[k] (weights, 4 int8 each) with x words from 16 bytes of shared memory. */
static __device__ __forceinline__ int qp_dp16(const uint32_t (&w)[4], const int8_t *x) {
    const int4 v = *(const int4 *)x;
    int s = __dp4a((int)w[0], v.x, 0);
    s = __dp4a((int)w[1], v.y, s);
    s = __dp4a((int)w[2], v.z, s);
    return __dp4a((int)w[3], v.w, s);
}

template <int T> struct qp_q8dot; /* the types below: QP_MMVQ_TYPES */

/* The types with an 8-bit dot below, as X(type) (the kernel's switches; kernel_table.c checks the
 * same list). */
#define QP_MMVQ_TYPES(X) X(QP_GGML_Q4_0) X(QP_GGML_Q5_0) X(QP_GGML_Q8_0) X(QP_GGML_Q4_K) X(QP_GGML_Q6_K)

/* A 32-weight block `it` of scale d whose values are lo (weights 0..15) and hi (16..31), four per
 * word, each `off` above the weight: d * x's scale * the exact integer sum of (value - off) * x. */
static __device__ __forceinline__ float qp_q8_block32(float d, const uint32_t (&lo)[4], const uint32_t (&hi)[4],
                                                      int off, int64_t it, const qp_xq8 &x) {
    const int8_t *xq = x.q + it * 32;
    const int s = qp_dp16(lo, xq) + qp_dp16(hi, xq + 16) - off * (x.s16[2 * it] + x.s16[2 * it + 1]);
    return d * x.d[it] * (float)s;
}

/* Q4_0 (d, qs[16]): byte j's low nibble is weight j, its high nibble weight j + 16; value - 8. */
template <> struct qp_q8dot<QP_GGML_Q4_0> {
    static constexpr int W = 32;    /* weights per item */
    static constexpr int KMASK = 0; /* items of a block - 1 */
    static __device__ __forceinline__ float run(const uint8_t *row, int64_t it, int, const qp_xq8 &x) {
        const uint8_t *b = row + it * 18;
        uint32_t lo[4], hi[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const uint32_t q = qp_ld32a2<qp_ldg>(b + 2 + 4 * i);
            lo[i] = q & 0x0F0F0F0Fu;
            hi[i] = (q >> 4) & 0x0F0F0F0Fu;
        }
        return qp_q8_block32(qp_h2f(__ldg((const unsigned short *)b)), lo, hi, 8, it, x);
    }
};

/* Q5_0 (d, qh u32, qs[16]): as Q4_0 with bit j of qh as bit 4 of weight j; value - 16. */
template <> struct qp_q8dot<QP_GGML_Q5_0> {
    static constexpr int W = 32;
    static constexpr int KMASK = 0;
    static __device__ __forceinline__ float run(const uint8_t *row, int64_t it, int, const qp_xq8 &x) {
        const uint8_t *b = row + it * 22;
        const uint32_t qh = qp_ld32a2<qp_ldg>(b + 2);
        uint32_t lo[4], hi[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const uint32_t q = qp_ld32a2<qp_ldg>(b + 6 + 4 * i);
            lo[i] = qp_q5_0_word(q, qh, i, false);
            hi[i] = qp_q5_0_word(q, qh, i, true);
        }
        return qp_q8_block32(qp_h2f(__ldg((const unsigned short *)b)), lo, hi, 16, it, x);
    }
};

/* Q8_0 (d, qs[32] int8). */
template <> struct qp_q8dot<QP_GGML_Q8_0> {
    static constexpr int W = 32;
    static constexpr int KMASK = 0;
    static __device__ __forceinline__ float run(const uint8_t *row, int64_t it, int, const qp_xq8 &x) {
        const uint8_t *b = row + it * 34;
        uint32_t a[4], c[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            a[i] = qp_ld32a2<qp_ldg>(b + 2 + 4 * i);
            c[i] = qp_ld32a2<qp_ldg>(b + 18 + 4 * i);
        }
        return qp_q8_block32(qp_h2f(__ldg((const unsigned short *)b)), a, c, 0, it, x);
    }
};

/* Q4_K (d, dmin, scales[12], qs[128]): sub-chunk j of 32 is d * sc_j * nibble - dmin * m_j; the
 * 32 bytes qs[32 g ..) hold sub-chunk 2g in their low nibbles and 2g + 1 in their high ones. An
 * item is 16 of those bytes: weights 64g + 16h + [0, 16) and 64g + 32 + 16h + [0, 16); k = 2g + h
 * is the item's place in its 256-weight block, the same for every item of a lane (matvec_q8.cu),
 * so the positions of its scales are computed once. */
template <> struct qp_q8dot<QP_GGML_Q4_K> {
    static constexpr int W = 32;
    static constexpr int KMASK = 7; /* items of a block - 1 */
    static __device__ __forceinline__ float run(const uint8_t *row, int64_t it, int k, const qp_xq8 &x) {
        const int64_t sb = it >> 3;
        const int g = k >> 1, h = k & 1;
        const uint8_t *b = row + sb * 144;
        const uint4 hd = __ldg((const uint4 *)b);
        const uint4 qs = __ldg((const uint4 *)(b + 16 + 32 * g + 16 * h));
        const uint32_t w[4] = {qs.x, qs.y, qs.z, qs.w};
        uint32_t lo[4], hi[4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            lo[i] = w[i] & 0x0F0F0F0Fu;
            hi[i] = (w[i] >> 4) & 0x0F0F0F0Fu;
        }
        /* scales and minimums of sub-chunks 2g and 2g + 1 (qp_scale_min_k4's rule), both bytes at
         * once: for g < 2 the low 6 bits of scale bytes 2g, 2g + 1 (hd.y) and 4 + 2g, .. (hd.z); for
         * g >= 2 four bits of bytes 8 + 2g' (hd.w, g' = g - 2) and the top two of bytes 2g' (hd.y),
         * 4 + 2g' (hd.z) */
        const bool up = g >= 2;
        const int sh = 16 * (g & 1);
        const uint32_t m1 = up ? 0x0F0Fu : 0x3F3Fu, m2 = up ? 0x0303u : 0u;
        const uint32_t tsc = (((up ? hd.w : hd.y) >> sh) & m1) | ((((hd.y >> sh) >> 6) & m2) << 4);
        const uint32_t tmn = ((((up ? hd.w : hd.z) >> sh) >> (up ? 4 : 0)) & m1) | ((((hd.z >> sh) >> 6) & m2) << 4);
        const float d = qp_h2f((uint16_t)(hd.x & 0xFFFFu)), dmin = qp_h2f((uint16_t)(hd.x >> 16));
        const int64_t x0 = sb * 256 + 64 * g + 16 * h; /* the low nibbles' activations; +32 the high */
        const int dl = qp_dp16(lo, x.q + x0), dh = qp_dp16(hi, x.q + x0 + 32);
        const int sl = x.s16[x0 >> 4], sh16 = x.s16[(x0 >> 4) + 2];
        const float *xd = x.d + sb * 8 + 2 * g;
        return xd[0] * (d * (float)((int)(tsc & 0xFFu) * dl) - dmin * (float)((int)(tmn & 0xFFu) * sl)) +
               xd[1] * (d * (float)((int)(tsc >> 8) * dh) - dmin * (float)((int)(tmn >> 8) * sh16));
    }
};

/* Q6_K (ql[128], qh[64], scales[16] int8, d): weight 128 hf + 32 n + l (n = 0..3, l = 0..31) is
 * (4 bits of ql | 2 bits of qh << 4) - 32 times d * scales[8 hf + 2 n + l / 16]. An item is
 * hf and l in [16 j, 16 j + 16): 64 weights, four groups of 16 of one scale each. */
template <> struct qp_q8dot<QP_GGML_Q6_K> {
    static constexpr int W = 64;
    static constexpr int KMASK = 3;
    static __device__ __forceinline__ float run(const uint8_t *row, int64_t it, int k, const qp_xq8 &x) {
        const int64_t sb = it >> 2;
        const int hf = k >> 1, j = k & 1;
        const uint8_t *b = row + sb * 210;
        const uint8_t *qla = b + 64 * hf + 16 * j, *qlb = qla + 32, *qh = b + 128 + 32 * hf + 16 * j;
        uint32_t q[4][4];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const uint32_t la = qp_ld32a2<qp_ldg>(qla + 4 * i), lb = qp_ld32a2<qp_ldg>(qlb + 4 * i);
            const uint32_t hh = qp_ld32a2<qp_ldg>(qh + 4 * i);
            q[0][i] = (la & 0x0F0F0F0Fu) | ((hh << 4) & 0x30303030u);
            q[1][i] = (lb & 0x0F0F0F0Fu) | ((hh << 2) & 0x30303030u);
            q[2][i] = ((la >> 4) & 0x0F0F0F0Fu) | (hh & 0x30303030u);
            q[3][i] = ((lb >> 4) & 0x0F0F0F0Fu) | ((hh >> 2) & 0x30303030u);
        }
        /* scales[8 hf + j + 2n], n = 0..3: bytes j, j + 2, j + 4, j + 6 of the half's eight */
        const uint32_t s0 = qp_ld32a2<qp_ldg>(b + 192 + 8 * hf), s1 = qp_ld32a2<qp_ldg>(b + 196 + 8 * hf);
        const float d = qp_h2f(__ldg((const unsigned short *)(b + 208)));
        const int64_t x0 = sb * 256 + 128 * hf + 16 * j;
        float acc = 0.0f;
#pragma unroll
        for (int n = 0; n < 4; n++) {
            const uint32_t sw = n < 2 ? s0 : s1;
            const int sc = (int)(int8_t)((sw >> (8 * (j + 2 * (n & 1)))) & 0xFFu);
            const int64_t xo = x0 + 32 * n;
            const int s = qp_dp16(q[n], x.q + xo) - 32 * x.s16[xo >> 4];
            acc += x.d[xo >> 5] * (float)(sc * s);
        }
        return d * acc;
    }
};
