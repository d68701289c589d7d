/* quant_blocks.cuh — device decoders of the GGML block types, one per type, all with one shape:
 * qp_dec32<T>(block, sub, v) writes the 32 consecutive elements sub*32 .. sub*32+31 of the
 * block at `block` into v[32] (registers). Legacy types have one 32-element sub-chunk per
 * block, K-quants eight per 256-element block; F32/F16/BF16 are read as "blocks" of 32 elements.
 *
 * Layouts follow ggml-common.h / ggml-quants.c (summarised in docs/cuda-kernels.md) and are
 * checked element by element against the CPU dequantizer (include/qp_quant.h) by the GPU tests.
 * Loads: each decoder reads whole fields with the widest access the block size allows once the
 * row starts 16-byte aligned (ops.cu checks that): 16-byte loads for Q4_K, Q5_K and the float
 * types, 8 for Q5_1, 4 for Q4_1 and Q2_K, 2 for the 2-byte-aligned blocks (Q4_0, Q5_0, Q8_0,
 * Q3_K, Q6_K: 18, 22, 34, 110 and 210 bytes per block).
 */
#pragma once
#include <stdint.h>
#include <string.h>

#include <type_traits>

#include "cuda_common.cuh"

template <int T> struct qp_qt;
/* QK: elements per block; BYTES: bytes per block; SUBS: 32-element sub-chunks per block. */
#define QP_QT(T_, QK_, BYTES_, ALIGN_)                                                          \
    template <> struct qp_qt<T_> {                                                              \
        static constexpr int QK = QK_, BYTES = BYTES_, SUBS = QK_ / 32, ALIGN = ALIGN_;         \
    }
QP_QT(QP_GGML_F32, 32, 128, 16);
QP_QT(QP_GGML_F16, 32, 64, 16);
QP_QT(QP_GGML_BF16, 32, 64, 16);
QP_QT(QP_GGML_Q4_0, 32, 18, 2);
QP_QT(QP_GGML_Q4_1, 32, 20, 4);
QP_QT(QP_GGML_Q5_0, 32, 22, 2);
QP_QT(QP_GGML_Q5_1, 32, 24, 8);
QP_QT(QP_GGML_Q8_0, 32, 34, 2);
QP_QT(QP_GGML_Q2_K, 256, 84, 4);
QP_QT(QP_GGML_Q3_K, 256, 110, 2);
QP_QT(QP_GGML_Q4_K, 256, 144, 16);
QP_QT(QP_GGML_Q5_K, 256, 176, 16);
QP_QT(QP_GGML_Q6_K, 256, 210, 2);
#undef QP_QT

/* Where the decoders read from. qp_ldg: global memory through the read-only path (__ldg; the
 * weights never change while a kernel runs). qp_lds: any address a plain load can read, for
 * blocks already copied into shared memory (matvec_stream.cu). */
struct qp_ldg {
    template <class V> static __device__ __forceinline__ V ld(const V *p) { return __ldg(p); }
};
struct qp_lds {
    template <class V> static __device__ __forceinline__ V ld(const V *p) { return *p; }
};

/* N bytes from p (A-byte aligned) into registers, with the widest loads A allows. */
template <int N, int A, class L = qp_ldg>
static __device__ __forceinline__ void qp_ldb(const uint8_t *__restrict__ p, uint8_t (&o)[N]) {
    if constexpr (A >= 16 && N % 16 == 0) {
#pragma unroll
        for (int i = 0; i < N / 16; i++) {
            uint4 v = L::ld((const uint4 *)(p + 16 * i));
            memcpy(o + 16 * i, &v, 16);
        }
    } else if constexpr (A >= 8 && N % 8 == 0) {
#pragma unroll
        for (int i = 0; i < N / 8; i++) {
            uint2 v = L::ld((const uint2 *)(p + 8 * i));
            memcpy(o + 8 * i, &v, 8);
        }
    } else if constexpr (A >= 4 && N % 4 == 0) {
#pragma unroll
        for (int i = 0; i < N / 4; i++) {
            uint32_t v = L::ld((const unsigned int *)(p + 4 * i));
            memcpy(o + 4 * i, &v, 4);
        }
    } else {
        static_assert(N % 2 == 0 && A >= 2, "2-byte loads at least");
#pragma unroll
        for (int i = 0; i < N / 2; i++) {
            uint16_t v = L::ld((const unsigned short *)(p + 2 * i));
            memcpy(o + 2 * i, &v, 2);
        }
    }
}

static __device__ __forceinline__ uint16_t qp_u16(const uint8_t *b) {
    return (uint16_t)(b[0] | (b[1] << 8));
}
static __device__ __forceinline__ uint32_t qp_u32(const uint8_t *b) {
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}

/* K-quant 6-bit scale and min j (0..7) of Q4_K / Q5_K from their 12 packed bytes. */
static __device__ __forceinline__ void qp_scale_min_k4(int j, const uint8_t *q, int *sc, int *mn) {
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* --- the integer fields of four weights at once (the decoders below and quant_dot.cuh) ---
 * A weight's integer value q (0..255) becomes a float by one byte permute into the mantissa of
 * 2^23 (PRMT: the bits 0x4B0000qq are the float 2^23 + q) and one subtraction of 2^23 plus the
 * block's offset: exact, as both are integers below 2^24. This replaces the shift, mask and
 * int-to-float conversion (I2F, a quarter-rate instruction) per weight of a plain decode. */

/* float(2^23 + byte K of w): byte K of w into the low mantissa byte of 2^23 (0x4B000000). */
template <int K> static __device__ __forceinline__ float qp_mbyte(uint32_t w) {
    return __uint_as_float(__byte_perm(w, 0x4B000000u, 0x7540u | K));
}

/* Bits 0..3 of n into bit 4 of bytes 0..3 (n < 16): the multiply places bit k at bit 8k + 4
 * among non-overlapping copies of n, the mask keeps those four bits. */
static __device__ __forceinline__ uint32_t qp_spread4_b4(uint32_t n) { return (n * 0x02040810u) & 0x10101010u; }

/* 4 bytes at p (2-byte aligned) as one word. */
template <class L> static __device__ __forceinline__ uint32_t qp_ld32a2(const uint8_t *p) {
    return (uint32_t)L::ld((const unsigned short *)p) | ((uint32_t)L::ld((const unsigned short *)(p + 2)) << 16);
}

/* Q5_0's word i (0..3) of qs (q) with the fifth bits from qh: the values 0..31 of weights 4i..4i+3
 * (hi: 16+4i..16+4i+3), one per byte. */
static __device__ __forceinline__ uint32_t qp_q5_0_word(uint32_t q, uint32_t qh, int i, bool hi) {
    return hi ? ((q >> 4) & 0x0F0F0F0Fu) | qp_spread4_b4((qh >> (16 + 4 * i)) & 0xFu)
              : (q & 0x0F0F0F0Fu) | qp_spread4_b4((qh >> (4 * i)) & 0xFu);
}

/* Q6_K's four values 0..63 from a word of ql (4 bits at nsh) and of qh (2 bits at hsh), one per byte. */
static __device__ __forceinline__ uint32_t qp_q6k_word(uint32_t l, uint32_t h, int nsh, int hsh) {
    return ((l >> nsh) & 0x0F0F0F0Fu) | (((h >> hsh) & 0x03030303u) << 4);
}

/* v[0..3] = (byte k of w - off) * d for k = 0..3 (off includes the 2^23): the same value, bit for
 * bit, as (float)(q - off') * d of an integer q. */
static __device__ __forceinline__ void qp_dec4(float *v, uint32_t w, float off, float d) {
    v[0] = (qp_mbyte<0>(w) - off) * d;
    v[1] = (qp_mbyte<1>(w) - off) * d;
    v[2] = (qp_mbyte<2>(w) - off) * d;
    v[3] = (qp_mbyte<3>(w) - off) * d;
}

/* v[0..3] = d * (byte k of w) - m (a K-quant's scale and minimum), the same float as d * (float)q - m. */
static __device__ __forceinline__ void qp_dec4_min(float *v, uint32_t w, float d, float m) {
    v[0] = d * (qp_mbyte<0>(w) - 8388608.0f) - m;
    v[1] = d * (qp_mbyte<1>(w) - 8388608.0f) - m;
    v[2] = d * (qp_mbyte<2>(w) - 8388608.0f) - m;
    v[3] = d * (qp_mbyte<3>(w) - 8388608.0f) - m;
}

/* qp_dec<T>::run<L>: the decoder of type T reading through loader L (one struct per type, so the
 * loader can stay a template parameter). */
template <int T> struct qp_dec;

template <> struct qp_dec<QP_GGML_F32> {
    template <class L>
    static __device__ __forceinline__ void run(const uint8_t *__restrict__ b, int, float (&v)[32]) {
#pragma unroll
        for (int i = 0; i < 8; i++) {
            float4 f = L::ld((const float4 *)b + i);
            v[4 * i] = f.x; v[4 * i + 1] = f.y; v[4 * i + 2] = f.z; v[4 * i + 3] = f.w;
        }
    }
};

template <> struct qp_dec<QP_GGML_F16> {
    template <class L>
    static __device__ __forceinline__ void run(const uint8_t *__restrict__ b, int, float (&v)[32]) {
        uint8_t q[64];
        qp_ldb<64, 16, L>(b, q);
#pragma unroll
        for (int i = 0; i < 32; i++) v[i] = qp_h2f(qp_u16(q + 2 * i));
    }
};

template <> struct qp_dec<QP_GGML_BF16> {
    template <class L>
    static __device__ __forceinline__ void run(const uint8_t *__restrict__ b, int, float (&v)[32]) {
        uint8_t q[64];
        qp_ldb<64, 16, L>(b, q);
#pragma unroll
        for (int i = 0; i < 32; i++) v[i] = qp_bf2f(qp_u16(q + 2 * i));
    }
};

template <> struct qp_dec<QP_GGML_Q4_0> { /* d, qs[16]: v[j] = (low nibble of qs[j] - 8) * d, v[j+16] the high */
    template <class L>
    static __device__ __forceinline__ void run(const uint8_t *__restrict__ b, int, float (&v)[32]) {
        const float d = qp_h2f(L::ld((const unsigned short *)b)), off = 8388608.0f + 8.0f;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const uint32_t q = qp_ld32a2<L>(b + 2 + 4 * i);
            qp_dec4(v + 4 * i, q & 0x0F0F0F0Fu, off, d);
            qp_dec4(v + 16 + 4 * i, (q >> 4) & 0x0F0F0F0Fu, off, d);
        }
    }
};

template <> struct qp_dec<QP_GGML_Q4_1> {
    template <class L>
    static __device__ __forceinline__ void run(const uint8_t *__restrict__ b, int, float (&v)[32]) {
        uint8_t h[4], q[16];
        qp_ldb<4, 4, L>(b, h);
        qp_ldb<16, 4, L>(b + 4, q);
        const float d = qp_h2f(qp_u16(h)), m = qp_h2f(qp_u16(h + 2));
#pragma unroll
        for (int j = 0; j < 16; j++) {
            v[j] = (float)(q[j] & 0xF) * d + m;
            v[j + 16] = (float)(q[j] >> 4) * d + m;
        }
    }
};

template <> struct qp_dec<QP_GGML_Q5_0> { /* d, qh (u32), qs[16]: (nibble | bit j (j + 16) of qh << 4) - 16 */
    template <class L>
    static __device__ __forceinline__ void run(const uint8_t *__restrict__ b, int, float (&v)[32]) {
        const float d = qp_h2f(L::ld((const unsigned short *)b)), off = 8388608.0f + 16.0f;
        const uint32_t qh = qp_ld32a2<L>(b + 2);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const uint32_t q = qp_ld32a2<L>(b + 6 + 4 * i);
            qp_dec4(v + 4 * i, qp_q5_0_word(q, qh, i, false), off, d);
            qp_dec4(v + 16 + 4 * i, qp_q5_0_word(q, qh, i, true), off, d);
        }
    }
};

template <> struct qp_dec<QP_GGML_Q5_1> {
    template <class L>
    static __device__ __forceinline__ void run(const uint8_t *__restrict__ b, int, float (&v)[32]) {
        uint8_t h[8], q[16];
        qp_ldb<8, 8, L>(b, h);
        qp_ldb<16, 8, L>(b + 8, q);
        const float d = qp_h2f(qp_u16(h)), m = qp_h2f(qp_u16(h + 2));
        const uint32_t qh = qp_u32(h + 4);
#pragma unroll
        for (int j = 0; j < 16; j++) {
            const int x0 = (int)((q[j] & 0xF) | (((qh >> j) << 4) & 0x10));
            const int x1 = (int)((q[j] >> 4) | ((qh >> (j + 12)) & 0x10));
            v[j] = (float)x0 * d + m;
            v[j + 16] = (float)x1 * d + m;
        }
    }
};

template <> struct qp_dec<QP_GGML_Q8_0> { /* d, qs[32] int8: flipping the sign bit gives q + 128 */
    template <class L>
    static __device__ __forceinline__ void run(const uint8_t *__restrict__ b, int, float (&v)[32]) {
        const float d = qp_h2f(L::ld((const unsigned short *)b)), off = 8388608.0f + 128.0f;
#pragma unroll
        for (int i = 0; i < 8; i++) qp_dec4(v + 4 * i, qp_ld32a2<L>(b + 2 + 4 * i) ^ 0x80808080u, off, d);
    }
};

/* Q2_K: scales[16] (low nibble scale, high nibble min), qs[64], d, dmin. Sub-chunk s: half
 * s/4 of qs (32 bytes), 2-bit field s%4; scale 2s for elements 0..15, 2s+1 for 16..31. */
template <> struct qp_dec<QP_GGML_Q2_K> {
    template <class L>
    static __device__ __forceinline__ void run(const uint8_t *__restrict__ b, int s, float (&v)[32]) {
        uint8_t q[32], dd[4];
        qp_ldb<32, 4, L>(b + 16 + 32 * (s >> 2), q);
        qp_ldb<4, 4, L>(b + 80, dd);
        const uint16_t sc2 = L::ld((const unsigned short *)(b + 2 * s));
        const float d = qp_h2f(qp_u16(dd)), dmin = qp_h2f(qp_u16(dd + 2));
        const int shift = 2 * (s & 3);
        const uint8_t sa = (uint8_t)(sc2 & 0xFF), sb = (uint8_t)(sc2 >> 8);
        const float dla = d * (float)(sa & 0xF), mla = dmin * (float)(sa >> 4);
        const float dlb = d * (float)(sb & 0xF), mlb = dmin * (float)(sb >> 4);
#pragma unroll
        for (int l = 0; l < 16; l++) {
            v[l] = dla * (float)((q[l] >> shift) & 3) - mla;
            v[l + 16] = dlb * (float)((q[l + 16] >> shift) & 3) - mlb;
        }
    }
};

/* Q3_K: hmask[32], qs[64], scales[12] (16 six-bit scales), d. Sub-chunk s: half s/4 of qs,
 * 2-bit field s%4, high bit (1 << s) of hmask[l] (clear = subtract 4), scales 2s and 2s+1. */
template <> struct qp_dec<QP_GGML_Q3_K> {
    template <class L>
    static __device__ __forceinline__ void run(const uint8_t *__restrict__ b, int s, float (&v)[32]) {
        uint8_t hm[32], q[32], sc[12];
        qp_ldb<32, 2, L>(b, hm);
        qp_ldb<32, 2, L>(b + 32 + 32 * (s >> 2), q);
        qp_ldb<12, 2, L>(b + 96, sc);
        const float d = qp_h2f(L::ld((const unsigned short *)(b + 108)));
        float dl[2];
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int k = 2 * s + h;
            const int lo = k < 8 ? (sc[k] & 0xF) : (sc[k - 8] >> 4);
            const int hi = (sc[8 + (k & 3)] >> (2 * (k >> 2))) & 3;
            dl[h] = d * (float)((lo | (hi << 4)) - 32);
        }
        const int shift = 2 * (s & 3);
        const uint8_t m = (uint8_t)(1u << s);
#pragma unroll
        for (int l = 0; l < 32; l++) {
            const int x = (int)((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4);
            v[l] = dl[l >> 4] * (float)x;
        }
    }
};

/* Q4_K: d, dmin, scales[12], qs[128]. Sub-chunk s: bytes qs[32(s/2) ..], low nibble for even s,
 * high for odd; scale/min s. */
template <> struct qp_dec<QP_GGML_Q4_K> {
    template <class L>
    static __device__ __forceinline__ void run(const uint8_t *__restrict__ b, int s, float (&v)[32]) {
        uint8_t h[16];
        qp_ldb<16, 16, L>(b, h);
        int sc, mn;
        qp_scale_min_k4(s, h + 4, &sc, &mn);
        const float d = qp_h2f(qp_u16(h)) * (float)sc, m = qp_h2f(qp_u16(h + 2)) * (float)mn;
        const int shift = 4 * (s & 1);
#pragma unroll
        for (int i = 0; i < 2; i++) {
            const uint4 w = L::ld((const uint4 *)(b + 16 + 32 * (s >> 1) + 16 * i));
            const uint32_t wv[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
            for (int k = 0; k < 4; k++) qp_dec4_min(v + 16 * i + 4 * k, (wv[k] >> shift) & 0x0F0F0F0Fu, d, m);
        }
    }
};

/* Q5_K: d, dmin, scales[12], qh[32], qs[128]; as Q4_K plus 16 when bit s of qh[l] is set. */
template <> struct qp_dec<QP_GGML_Q5_K> {
    template <class L>
    static __device__ __forceinline__ void run(const uint8_t *__restrict__ b, int s, float (&v)[32]) {
        uint8_t h[16], qh[32], q[32];
        qp_ldb<16, 16, L>(b, h);
        qp_ldb<32, 16, L>(b + 16, qh);
        qp_ldb<32, 16, L>(b + 48 + 32 * (s >> 1), q);
        int sc, mn;
        qp_scale_min_k4(s, h + 4, &sc, &mn);
        const float d = qp_h2f(qp_u16(h)) * (float)sc, m = qp_h2f(qp_u16(h + 2)) * (float)mn;
        const int shift = 4 * (s & 1);
#pragma unroll
        for (int l = 0; l < 32; l++) {
            const int x = ((q[l] >> shift) & 0xF) + ((qh[l] >> s) & 1) * 16;
            v[l] = d * (float)x - m;
        }
    }
};

/* Q6_K: ql[128], qh[64], scales[16] int8, d. Sub-chunk s = 4*half + quarter: ql bytes
 * 64*half + 32*(quarter&1), nibble quarter>>1; qh bytes 128+32*half, bits 2*quarter; scales
 * 8*half + 2*quarter (+1 for elements 16..31). */
template <> struct qp_dec<QP_GGML_Q6_K> {
    template <class L>
    static __device__ __forceinline__ void run(const uint8_t *__restrict__ b, int s, float (&v)[32]) {
        const int hf = s >> 2, qq = s & 3;
        const uint8_t *ql = b + 64 * hf + 32 * (qq & 1), *qh = b + 128 + 32 * hf;
        const uint16_t sc2 = L::ld((const unsigned short *)(b + 192 + 8 * hf + 2 * qq));
        const float d = qp_h2f(L::ld((const unsigned short *)(b + 208)));
        const float da = d * (float)(int8_t)(sc2 & 0xFF), db = d * (float)(int8_t)(sc2 >> 8);
        const int nsh = 4 * (qq >> 1), hsh = 2 * qq;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const uint32_t l = qp_ld32a2<L>(ql + 4 * i), h = qp_ld32a2<L>(qh + 4 * i);
            qp_dec4(v + 4 * i, qp_q6k_word(l, h, nsh, hsh), 8388608.0f + 32.0f, i < 4 ? da : db);
        }
    }
};

/* The 32 elements of sub-chunk `sub` of the block at b, into v (the decoder of type T; loader L,
 * global memory by default). */
template <int T, class L = qp_ldg>
static __device__ __forceinline__ void qp_dec32(const uint8_t *__restrict__ b, int sub, float (&v)[32]) {
    qp_dec<T>::template run<L>(b, sub, v);
}

/* One element of a float-typed row (any column count, any alignment of 4 / 2 bytes). */
template <int T>
static __device__ __forceinline__ float qp_get1(const uint8_t *__restrict__ row, int64_t i) {
    if constexpr (T == QP_GGML_F32) return __ldg((const float *)row + i);
    else if constexpr (T == QP_GGML_F16) return qp_h2f(__ldg((const unsigned short *)row + i));
    else return qp_bf2f(__ldg((const unsigned short *)row + i));
}

template <int T> struct qp_is_float {
    static constexpr bool value = T == QP_GGML_F32 || T == QP_GGML_F16 || T == QP_GGML_BF16;
};

/* Every type with a decoder, as X(type) for each: the one list the run-time dispatches (below,
 * and the device switches of matvec.cu and matvec_stream.cu) expand. */
#define QP_CUDA_TYPES(X)                                                                          \
    X(QP_GGML_F32) X(QP_GGML_F16) X(QP_GGML_BF16) X(QP_GGML_Q4_0) X(QP_GGML_Q4_1) X(QP_GGML_Q5_0) \
    X(QP_GGML_Q5_1) X(QP_GGML_Q8_0) X(QP_GGML_Q2_K) X(QP_GGML_Q3_K) X(QP_GGML_Q4_K) X(QP_GGML_Q5_K) \
    X(QP_GGML_Q6_K)

/* Calls f(std::integral_constant<int, T>{}) for the runtime type id; returns false for a type without a
 * decoder. */
template <class F> static bool qp_type_dispatch(int32_t type, F &&f) {
#define QP_TYPE_CASE(T_) \
    case T_: f(std::integral_constant<int, T_>{}); return true;
    switch (type) {
        QP_CUDA_TYPES(QP_TYPE_CASE)
    default: return false;
    }
#undef QP_TYPE_CASE
}

/* Sum over this thread's share of sum_c W[row][c] * x[c] (* norm[c] when norm != NULL), for a
 * warp (lane 0..31) splitting the row. Quantized rows: one 32-element sub-chunk per lane per
 * step. Float rows: the same when cols % 32 == 0 and rows are 16-byte aligned (`vec`), else one
 * element per lane per step. The caller reduces across the warp. */
template <int T>
static __device__ __forceinline__ float qp_row_dot_lane(const uint8_t *__restrict__ row, int64_t cols,
                                                        const float *__restrict__ x,
                                                        const float *__restrict__ norm, bool vec,
                                                        int lane) {
    float acc = 0.0f;
    if constexpr (qp_is_float<T>::value) {
        if (!vec) {
            for (int64_t c = lane; c < cols; c += 32) {
                float xv = x[c];
                if (norm) xv *= norm[c];
                acc += qp_get1<T>(row, c) * xv;
            }
            return acc;
        }
    }
    using Q = qp_qt<T>;
    const int64_t nsub = cols / 32;
    for (int64_t s = lane; s < nsub; s += 32) {
        float v[32];
        qp_dec32<T>(row + (s / Q::SUBS) * Q::BYTES, (int)(s % Q::SUBS), v);
        const float4 *x4 = (const float4 *)(x + s * 32);
        if (norm) {
            const float4 *n4 = (const float4 *)(norm + s * 32);
#pragma unroll
            for (int i = 0; i < 8; i++) {
                float4 a = x4[i], n = n4[i];
                acc += v[4 * i] * (a.x * n.x) + v[4 * i + 1] * (a.y * n.y) +
                       v[4 * i + 2] * (a.z * n.z) + v[4 * i + 3] * (a.w * n.w);
            }
        } else {
#pragma unroll
            for (int i = 0; i < 8; i++) {
                float4 a = x4[i];
                acc += v[4 * i] * a.x + v[4 * i + 1] * a.y + v[4 * i + 2] * a.z + v[4 * i + 3] * a.w;
            }
        }
    }
    return acc;
}
