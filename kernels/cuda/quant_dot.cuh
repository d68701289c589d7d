/* quant_dot.cuh — one lane's dot product of a 32-element sub-chunk of a GGML block with 32 floats
 * of staged x: qp_dot32<T, L>(block, sub, x). The decode matvecs (matvec.cu, matvec_stream.cu)
 * spend their time issuing instructions, not waiting for DRAM (docs/performance.md:
 * ~14 instructions per weight with qp_dec32 + multiply-add), so the types of the common GGUF
 * mixes have their own dots here, written for few instructions per weight:
 *
 *   - the integer value of each weight becomes a float by one byte permute into the mantissa of
 *     2^23 (PRMT: bits 0x4B0000qq are the float 2^23 + qq) and one subtraction of 2^23 plus the
 *     block's offset (exact: both are integers below 2^24), instead of shifts, masks and an
 *     int-to-float conversion per weight;
 *   - four weights' bit fields are unpacked at once with 32-bit masks (and the high bits of Q5_0
 *     spread into their bytes by one multiply);
 *   - the block scale multiplies the sub-chunk's sum once, not every weight, and Q4_K's minimum
 *     multiplies the sum of x.
 *
 * The result is the exact sum of (integer weight * x) in fp32 (four accumulators) times the
 * scale: the same math as dequantize-then-dot (qp_dec32), rounded in a different order — within
 * the GPU tests' fp32 tolerance, not bit-identical. Other types use qp_dec32 and a dot.
 * x: 32 floats, 16-byte aligned (the staged layout of matvec_stage.cuh); L: the loader of
 * quant_blocks.cuh (global or shared memory).
 */
#pragma once
#include "quant_blocks.cuh"

/* acc[k] += (float(byte k of w) - off) * x[k], k = 0..3 (off includes the 2^23). */
static __device__ __forceinline__ void qp_fma4(float (&acc)[4], uint32_t w, float off, const float4 x) {
    acc[0] = fmaf(qp_mbyte<0>(w) - off, x.x, acc[0]);
    acc[1] = fmaf(qp_mbyte<1>(w) - off, x.y, acc[1]);
    acc[2] = fmaf(qp_mbyte<2>(w) - off, x.z, acc[2]);
    acc[3] = fmaf(qp_mbyte<3>(w) - off, x.w, acc[3]);
}

template <int T> struct qp_dotq {
    static constexpr bool fast = false;
};

template <> struct qp_dotq<QP_GGML_Q4_0> { /* d, qs[16]: (nibble - 8) * d */
    static constexpr bool fast = true;
    template <class L> static __device__ __forceinline__ float run(const uint8_t *b, int, const float *x) {
        const float d = qp_h2f(L::ld((const unsigned short *)b));
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        const float off = 8388608.0f + 8.0f;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const uint32_t q = qp_ld32a2<L>(b + 2 + 4 * i);
            qp_fma4(acc, q & 0x0F0F0F0Fu, off, *(const float4 *)(x + 4 * i));
            qp_fma4(acc, (q >> 4) & 0x0F0F0F0Fu, off, *(const float4 *)(x + 16 + 4 * i));
        }
        return d * ((acc[0] + acc[1]) + (acc[2] + acc[3]));
    }
};

template <> struct qp_dotq<QP_GGML_Q5_0> { /* d, qh (u32), qs[16]: (nibble | high bit << 4) - 16 */
    static constexpr bool fast = true;
    template <class L> static __device__ __forceinline__ float run(const uint8_t *b, int, const float *x) {
        const float d = qp_h2f(L::ld((const unsigned short *)b));
        const uint32_t qh = qp_ld32a2<L>(b + 2);
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        const float off = 8388608.0f + 16.0f;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const uint32_t q = qp_ld32a2<L>(b + 6 + 4 * i);
            qp_fma4(acc, qp_q5_0_word(q, qh, i, false), off, *(const float4 *)(x + 4 * i));
            qp_fma4(acc, qp_q5_0_word(q, qh, i, true), off, *(const float4 *)(x + 16 + 4 * i));
        }
        return d * ((acc[0] + acc[1]) + (acc[2] + acc[3]));
    }
};

template <> struct qp_dotq<QP_GGML_Q8_0> { /* d, qs[32] int8: flipping the sign bit gives q + 128 */
    static constexpr bool fast = true;
    template <class L> static __device__ __forceinline__ float run(const uint8_t *b, int, const float *x) {
        const float d = qp_h2f(L::ld((const unsigned short *)b));
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        const float off = 8388608.0f + 128.0f;
#pragma unroll
        for (int i = 0; i < 8; i++)
            qp_fma4(acc, qp_ld32a2<L>(b + 2 + 4 * i) ^ 0x80808080u, off, *(const float4 *)(x + 4 * i));
        return d * ((acc[0] + acc[1]) + (acc[2] + acc[3]));
    }
};

template <> struct qp_dotq<QP_GGML_Q4_K> { /* d*sc*q - dmin*mn: d*sc * sum(q x) - dmin*mn * sum(x) */
    static constexpr bool fast = true;
    template <class L> static __device__ __forceinline__ float run(const uint8_t *b, int s, const float *x) {
        uint8_t h[16];
        qp_ldb<16, 16, L>(b, h);
        int sc, mn;
        qp_scale_min_k4(s, h + 4, &sc, &mn);
        const float d = qp_h2f(qp_u16(h)) * (float)sc, m = qp_h2f(qp_u16(h + 2)) * (float)mn;
        const int shift = 4 * (s & 1);
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f}, sx = 0.0f;
        const float off = 8388608.0f;
#pragma unroll
        for (int i = 0; i < 2; i++) {
            const uint4 w = L::ld((const uint4 *)(b + 16 + 32 * (s >> 1) + 16 * i));
            const uint32_t wv[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
            for (int k = 0; k < 4; k++) {
                const float4 xv = *(const float4 *)(x + 16 * i + 4 * k);
                qp_fma4(acc, (wv[k] >> shift) & 0x0F0F0F0Fu, off, xv);
                sx += (xv.x + xv.y) + (xv.z + xv.w);
            }
        }
        return d * ((acc[0] + acc[1]) + (acc[2] + acc[3])) - m * sx;
    }
};

template <> struct qp_dotq<QP_GGML_Q6_K> { /* ql[128], qh[64], int8 scales[16], d: (ql | qh << 4) - 32 */
    static constexpr bool fast = true;
    template <class L> static __device__ __forceinline__ float run(const uint8_t *b, int s, const float *x) {
        const int hf = s >> 2, qq = s & 3;
        const uint8_t *ql = b + 64 * hf + 32 * (qq & 1), *qh = b + 128 + 32 * hf;
        const uint16_t sc2 = L::ld((const unsigned short *)(b + 192 + 8 * hf + 2 * qq));
        const float d = qp_h2f(L::ld((const unsigned short *)(b + 208)));
        const int nsh = 4 * (qq >> 1), hsh = 2 * qq;
        float acc[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
        const float off = 8388608.0f + 32.0f;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const uint32_t l = qp_ld32a2<L>(ql + 4 * i), h = qp_ld32a2<L>(qh + 4 * i);
            qp_fma4(acc[i >> 2], qp_q6k_word(l, h, nsh, hsh), off, *(const float4 *)(x + 4 * i));
        }
        const float da = d * (float)(int8_t)(sc2 & 0xFF), db = d * (float)(int8_t)(sc2 >> 8);
        return da * ((acc[0][0] + acc[0][1]) + (acc[0][2] + acc[0][3])) +
               db * ((acc[1][0] + acc[1][1]) + (acc[1][2] + acc[1][3]));
    }
};

/* Sub-chunk `sub` of the block at b dotted with x[0..32). */
template <int T, class L = qp_ldg>
static __device__ __forceinline__ float qp_dot32(const uint8_t *__restrict__ b, int sub, const float *__restrict__ x) {
    if constexpr (qp_dotq<T>::fast) {
        return qp_dotq<T>::template run<L>(b, sub, x);
    } else {
        float v[32];
        qp_dec32<T, L>(b, sub, v);
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const float4 a = *(const float4 *)(x + 4 * i);
            acc[0] = fmaf(v[4 * i], a.x, acc[0]);
            acc[1] = fmaf(v[4 * i + 1], a.y, acc[1]);
            acc[2] = fmaf(v[4 * i + 2], a.z, acc[2]);
            acc[3] = fmaf(v[4 * i + 3], a.w, acc[3]);
        }
        return (acc[0] + acc[1]) + (acc[2] + acc[3]);
    }
}

/* Sub-chunk `sub` of the block at b decoded once (qp_dec32, loader L) and dotted with g <= G
 * inputs: d[j] = the 32 weights . x[j * xstride .. + 32) (each 16-byte aligned), for a group of
 * tokens decoded together (matvec_batch.cu, matvec_stream.cu). Each token's sum is in the same
 * order whatever g is. */
template <int T, class L, int G>
static __device__ __forceinline__ void qp_dot32_group(const uint8_t *__restrict__ b, int sub,
                                                      const float *__restrict__ x, int64_t xstride, int g,
                                                      float (&d)[G]) {
    float v[32];
    qp_dec32<T, L>(b, sub, v);
#pragma unroll
    for (int j = 0; j < G; j++) {
        if (j >= g) break;
        const float4 *x4 = (const float4 *)(x + j * xstride);
        float t0 = 0.0f, t1 = 0.0f; /* two chains of fused multiply-adds: one instruction a weight */
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const float4 a = x4[i];
            t0 = fmaf(v[4 * i], a.x, t0);
            t1 = fmaf(v[4 * i + 1], a.y, t1);
            t0 = fmaf(v[4 * i + 2], a.z, t0);
            t1 = fmaf(v[4 * i + 3], a.w, t1);
        }
        d[j] = t0 + t1;
    }
}
