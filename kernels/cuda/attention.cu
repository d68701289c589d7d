/* attention.cu — the kernels attn_split and attn_gqa: ATTENTION, out[t] = causal GQA attention of
 * q = in0[t] over the cache rows 0 .. pos+t (pos = step->pos, read on the device), scale
 * 1/sqrt(head_dim), softmax in f32.
 *
 * attn_split: flash-decoding for every n_tok (decode is n_tok = 1; prefill runs the same kernels with one
 * grid row per token, which is causal by construction): the sequence 0..L-1 (L = pos+t+1,
 * capped at kv.ctx) is cut into launch.split chunks of ceil(L/split) positions, split fixed by the
 * plan so that a captured graph stays valid as L grows.
 *   1. attn_partial_kernel, grid (split, n_head, n_tok), 4 warps: each warp walks positions of
 *      the chunk with an online softmax (running max m, sum l, output o); the 4 warps merge;
 *      the block writes {m, l, o[head_dim]} to scratch.
 *   2. attn_combine_kernel, grid (n_head, n_tok), 256 threads: out = sum_s e^(m_s-M) o_s / sum_s e^(m_s-M) l_s,
 *      the chunks split over the threads (see the kernel); every partial kernel writes all
 *      `split` chunks each launch (empty ones as m = -inf, l = 0), which the combine relies on.
 * Query head h reads KV head h / (n_head / n_head_kv). head_dim <= 256 (8 values per lane).
 *
 * attn_gqa: step 1 for an f16 cache with head_dim 64 or 128 and G = n_head / n_head_kv <= 8 query
 * heads per KV head (Qwen2.5-0.5B: 14 / 2 = 7) is attn_gqa_kernel instead: grid (split, n_head_kv, n_tok),
 * one block per (chunk, KV head) computing ALL G query heads of the group, so each K/V row is
 * read once instead of G times; a position's row is held by head_dim / 8 lanes with one 16-byte
 * load each (64: 8 lanes, 4 positions per warp per step), two steps' loads issued before any
 * math; online softmax per (lane group, head), merged over the warp by shuffles and over the 8
 * warps through shared memory into the same {m, l, o} partials, so step 2 is unchanged. Within it,
 * by the chunk's length: >= QP_GQA_MMA_MIN positions on the tensor cores (attn_gqa_mma), shorter
 * chunks one warp per query head (attn_gqa_short), and the CUDA-core path just described only
 * where QP_GQA_MMA_MIN sets the tensor cores aside (the chunk's length changes as the sequence
 * grows, so this choice is made on the device at every step). Made for decode; the compiler gives
 * prefill attn_prefill (docs/performance.md: attn_gqa measured slower for 512-token chunks).
 */
#include "cuda_common.cuh"
#include "qp_cuda.h"

#define QP_ATTN_WARPS (QP_CUDA_ATTN_SPLIT_THREADS / 32)
#define QP_ATTN_MAX_HD QP_CUDA_ATTN_MAX_HEAD_DIM

/* Positions per chunk: ceil(L / S), but at least QP_ATTN_MIN_CHUNK, so that at a short live
 * length only the first few chunks have work and the combine reads only those (the split S is
 * fixed by the plan's context, e.g. 64 at 16k, while L grows from 1). */
#ifndef QP_ATTN_MIN_CHUNK
#define QP_ATTN_MIN_CHUNK 16
#endif
static __device__ __forceinline__ int64_t qp_attn_chunk(int64_t L, int S) {
    const int64_t c = (L + S - 1) / S;
    return c > QP_ATTN_MIN_CHUNK ? c : QP_ATTN_MIN_CHUNK;
}

/* Positions row t attends to: 0..pos of its slot (capped at ctx); none for a padding row (slot
 * < 0) or a slot past the cache's, whose partials are then all empty and whose output is 0. */
static __device__ __forceinline__ int64_t qp_attn_len(const struct qp_step *step, int t, int64_t ctx, int64_t slots) {
    const struct qp_step_row rw = step->rows[t];
    if (rw.slot < 0 || rw.slot >= slots) return 0;
    const int64_t L = (int64_t)rw.pos + 1;
    return L < ctx ? L : ctx;
}
/* Elements from the layer's cache to row t's slot. */
static __device__ __forceinline__ int64_t qp_attn_slot(const struct qp_step *step, int t, int64_t ctx, int64_t kv_dim) {
    const int32_t slot = step->rows[t].slot;
    return slot > 0 ? (int64_t)slot * ctx * kv_dim : 0;
}


template <typename C>
static __global__ void __launch_bounds__(QP_ATTN_WARPS * 32)
    attn_partial_kernel(const float *__restrict__ q, const C *__restrict__ kc, const C *__restrict__ vc,
                        int64_t kv_dim, int64_t ctx, int64_t slots, int n_head, int n_head_kv, int hd, float scale,
                        const struct qp_step *__restrict__ step, float *__restrict__ part) {
    qp_pdl_wait(); /* PDL: before touching anything an earlier kernel wrote */
    qp_pdl_trigger();
    constexpr int NJ = QP_ATTN_MAX_HD / 32;
    __shared__ float sm[QP_ATTN_WARPS], sl[QP_ATTN_WARPS], so[QP_ATTN_WARPS][QP_ATTN_MAX_HD];
    const int s = blockIdx.x, h = blockIdx.y, t = blockIdx.z, S = gridDim.x;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t L = qp_attn_len(step, t, ctx, slots);
    kc += qp_attn_slot(step, t, ctx, kv_dim);
    vc += qp_attn_slot(step, t, ctx, kv_dim);
    const int64_t chunk = qp_attn_chunk(L, S), p0 = (int64_t)s * chunk;
    const int64_t p1 = p0 + chunk < L ? p0 + chunk : L;
    const int kvh = h / (n_head / n_head_kv);
    const float *qh = q + ((int64_t)t * n_head + h) * hd;
    float qr[NJ], o[NJ];
#pragma unroll
    for (int j = 0; j < NJ; j++) {
        const int d = lane + 32 * j;
        qr[j] = d < hd ? qh[d] * scale : 0.0f;
        o[j] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int64_t p = p0 + warp; p < p1; p += QP_ATTN_WARPS) {
        const C *kr = kc + p * kv_dim + (int64_t)kvh * hd;
        const C *vr = vc + p * kv_dim + (int64_t)kvh * hd;
        float sc = 0.0f;
#pragma unroll
        for (int j = 0; j < NJ; j++) {
            const int d = lane + 32 * j;
            if (d < hd) sc += qr[j] * qp_kv_f32(kr + d);
        }
        sc = qp_warp_sum(sc);
        const float mn = fmaxf(m, sc), c = expf(m - mn), e = expf(sc - mn);
        l = l * c + e;
#pragma unroll
        for (int j = 0; j < NJ; j++) {
            const int d = lane + 32 * j;
            if (d < hd) o[j] = o[j] * c + e * qp_kv_f32(vr + d);
        }
        m = mn;
    }
    if (lane == 0) {
        sm[warp] = m;
        sl[warp] = l;
    }
#pragma unroll
    for (int j = 0; j < NJ; j++) {
        const int d = lane + 32 * j;
        if (d < hd) so[warp][d] = o[j];
    }
    __syncthreads();
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < QP_ATTN_WARPS; w++) M = fmaxf(M, sm[w]);
    float *out = part + (((int64_t)t * n_head + h) * S + s) * (hd + 2);
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float acc = 0.0f;
        if (M != -INFINITY)
            for (int w = 0; w < QP_ATTN_WARPS; w++) acc += so[w][d] * expf(sm[w] - M);
        out[2 + d] = acc;
    }
    if (threadIdx.x == 0) {
        float lt = 0.0f;
        if (M != -INFINITY)
            for (int w = 0; w < QP_ATTN_WARPS; w++) lt += sl[w] * expf(sm[w] - M);
        out[0] = M;
        out[1] = lt;
    }
}

#define QP_GQA_WARPS (QP_CUDA_GQA_THREADS / 32)
#define QP_GQA_GMAX QP_CUDA_GQA_GMAX

/* 8 halves (one 16-byte load) to floats. */
static __device__ __forceinline__ void qp_h8(const uint4 &r, float (&f)[8]) {
    const __half2 *h = (const __half2 *)&r;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float2 v = __half22float2(h[i]);
        f[2 * i] = v.x;
        f[2 * i + 1] = v.y;
    }
}

/* A short chunk (at most QP_GQA_SHORT_BATCHES x QP_GQA_SHORT_STEPS steps of PPW positions: every
 * chunk while the live length is below 64 x 256 positions at head_dim 64): warp g of the block
 * computes query head g alone over all the chunk's positions, each batch's K/V loads issued first, the online
 * softmax per lane group, the groups merged by shuffles, and writes its head's partial itself —
 * no cross-warp merge, no barrier (the K/V rows are read by the G warps through L1). The long
 * path below reads each row once for all G heads, which is what matters at depth. */
#define QP_GQA_SHORT_STEPS 8 /* steps of PPW positions whose loads are issued together */
#ifndef QP_GQA_SHORT_BATCHES
/* The longest chunk the short path takes, in batches of those steps: 8 (256 positions at head_dim
 * 64) measured best on the H100 (d4096: 1 batch 1,060, 2 1,062, 8 1,139 t/s; tg128 the same). */
#define QP_GQA_SHORT_BATCHES 8
#endif
template <int HD>
static __device__ __forceinline__ void attn_gqa_short(const float *__restrict__ q, const __half *__restrict__ kc,
                                                      const __half *__restrict__ vc, int64_t kv_dim, int n_head,
                                                      float scale, int t, int kvh, int G, int g, int s, int S,
                                                      int64_t p0, int64_t p1, float *__restrict__ part) {
    constexpr int LPP = HD / 8, PPW = 32 / LPP;
    const int lane = threadIdx.x & 31, grp = lane / LPP, d0 = (lane % LPP) * 8;
    const int64_t h = (int64_t)kvh * G + g;
    float qr[8], o[8];
#pragma unroll
    for (int i = 0; i < 8; i++) {
        qr[i] = q[((int64_t)t * n_head + h) * HD + d0 + i] * scale;
        o[i] = 0.0f;
    }
    const __half *kb = kc + (int64_t)kvh * HD + d0, *vb = vc + (int64_t)kvh * HD + d0;
    float m = -INFINITY, l = 0.0f;
    for (int64_t pb = p0; pb < p1; pb += QP_GQA_SHORT_STEPS * PPW) { /* batches, all loads first */
        uint4 kr[QP_GQA_SHORT_STEPS], vr[QP_GQA_SHORT_STEPS];
#pragma unroll
        for (int k = 0; k < QP_GQA_SHORT_STEPS; k++) {
            const int64_t p = pb + (int64_t)k * PPW + grp;
            const bool ok = p < p1;
            kr[k] = ok ? __ldg((const uint4 *)(kb + p * kv_dim)) : make_uint4(0, 0, 0, 0);
            vr[k] = ok ? __ldg((const uint4 *)(vb + p * kv_dim)) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int k = 0; k < QP_GQA_SHORT_STEPS; k++) {
            if (pb + (int64_t)k * PPW >= p1) break; /* warp-uniform: no group has a position left */
            float kf[8], vf[8];
            qp_h8(kr[k], kf);
            qp_h8(vr[k], vf);
            float sc = 0.0f;
#pragma unroll
            for (int i = 0; i < 8; i++) sc += qr[i] * kf[i];
#pragma unroll
            for (int off = LPP / 2; off > 0; off >>= 1) sc += __shfl_xor_sync(0xffffffffu, sc, off);
            if (pb + (int64_t)k * PPW + grp < p1) {
                const float mn = fmaxf(m, sc), c = expf(m - mn), e = expf(sc - mn);
                l = l * c + e;
#pragma unroll
                for (int i = 0; i < 8; i++) o[i] = o[i] * c + e * vf[i];
                m = mn;
            }
        }
    }
    /* merge the lane groups (same dims, different positions) */
    float M = m;
#pragma unroll
    for (int off = LPP; off < 32; off <<= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, off));
    const float c = m == -INFINITY ? 0.0f : expf(m - M);
    float lt = l * c;
#pragma unroll
    for (int off = LPP; off < 32; off <<= 1) lt += __shfl_xor_sync(0xffffffffu, lt, off);
    float *out = part + (((int64_t)t * n_head + h) * S + s) * (HD + 2);
#pragma unroll
    for (int i = 0; i < 8; i++) {
        float v = o[i] * c;
#pragma unroll
        for (int off = LPP; off < 32; off <<= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
        if (grp == 0) out[2 + d0 + i] = v;
    }
    if (lane == 0) {
        out[0] = M;
        out[1] = lt;
    }
}

/* ---- long chunks on tensor cores (mma.sync m16n8k16, f16 in, f32 accumulate) ----
 *
 * A KV head's G <= 8 query heads are the 16 rows of the A operand (rows G..15 zero), so one
 * group of 16 positions costs each warp 2 x HD/16 x 2 mma for the scores S = Q K^T and HD/8 x 2
 * for P V, instead of ~30 instructions per (head, position) on the CUDA cores: the CUDA-core
 * path in attn_gqa_kernel is bound by that arithmetic, not by the K/V bytes (docs/performance.md,
 * docs/performance.md).
 *
 * Accuracy: q and p are not f16 values. Each is split into hi = f16(v) and lo = f16(v - hi), and
 * both halves go through the tensor cores (K, V are f16 already, so every product is exact in the
 * f32 accumulator): v = hi + lo to ~2^-22 relative, the f32 kernel's accuracy, where f16 q or p
 * alone would carry 2^-11 errors into the output.
 *
 * Fragment layouts (PTX ISA, mma.m16n8k16 .f16): lane = 4 g + t (g 0..7, t 0..3); A regs
 * {A[g][2t..2t+1]}, {A[g+8][2t..]}, {A[g][2t+8..]}, {A[g+8][2t+8..]}; B regs {B[2t..2t+1][g]},
 * {B[2t+8..2t+9][g]}; C {C[g][2t]}, {C[g][2t+1]}, {C[g+8][2t]}, {C[g+8][2t+1]}. A dot product
 * does not care in which order its k index runs, only that A and B agree on it, so the k order
 * is chosen for the loads:
 *   S = Q K^T, k = head dims: in k-step j, lane t's k 2t, 2t+1 are dims D + 0, 1 and its k 2t+8,
 *     2t+9 are dims D + 2, 3, D = (HD/4) t + 4 j, so a lane's dims over all k-steps are one
 *     contiguous run of HD/4 halves of the K row: 16-byte loads, each B register one 32-bit word.
 *   The 8 columns (positions) of the two S tiles of a group of 16: tile 0 column c is position
 *     4 (c/2) + c%2, tile 1 column c is 4 (c/2) + 2 + c%2. Lane t's scores (C of both tiles,
 *     columns 2t, 2t+1) are then positions 4t .. 4t+3, and as the A operand of P V (k =
 *     positions: C of two n8 tiles is the A layout of one k16 step) its k 2t, 2t+1, 2t+8, 2t+9
 *     are the same 4 positions, whose V rows the lane loads itself.
 *   P V, n = head dims: column g of n-tile jn is dim (HD/8) g + jn, so lane g's V dims are one
 *     contiguous run of HD/8 halves: one 16-byte load (HD 64) per row, B registers made by byte
 *     permutes of two rows' words.
 */
#ifndef QP_GQA_MMA_MIN
/* The shortest chunk (positions) that takes the tensor-core path; shorter ones keep the short or
 * long path. A measurement knob (docs/performance.md). */
#define QP_GQA_MMA_MIN 64
#endif

static __device__ __forceinline__ void qp_mma16816(float (&c)[4], uint32_t a0, uint32_t a2, uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    /* rows g + 8 of A (registers 1 and 3) are the zero padding of the G <= 8 heads */
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(0u), "r"(a2), "r"(0u), "r"(b0), "r"(b1));
#elif defined(QP_KEMU)
    const uint32_t a[4] = {a0, 0u, a2, 0u}, b[2] = {b0, b1};
    kemu::mma(kemu::MMA_F16_16816, a, b, (uint32_t *)c);
#else
    (void)c; (void)a0; (void)a2; (void)b0; (void)b1;
    __trap(); /* the host takes this path only on sm_80 and later */
#endif
}

/* f16x2 {lo = a, hi = b} as a 32-bit register, and the f16 residuals of the same pair. */
static __device__ __forceinline__ uint32_t qp_h2_bits(__half2 h) { return *(uint32_t *)&h; }
static __device__ __forceinline__ void qp_split2(float a, float b, uint32_t *hi, uint32_t *lo) {
    const __half2 h = __floats2half2_rn(a, b);
    const float2 f = __half22float2(h);
    *hi = qp_h2_bits(h);
    *lo = qp_h2_bits(__floats2half2_rn(a - f.x, b - f.y));
}

/* One warp's share of a long chunk [p0, p1) of KV head kvh: groups of 16 positions i = warp,
 * warp + QP_GQA_WARPS, ..., UN groups' K/V loads issued before any math; online softmax per query
 * head (row g of the fragments); the warp's {m, l, o} of each head written to so / sm_m / sm_l
 * for the block's merge (attn_gqa_kernel). */
template <int HD>
static __device__ __forceinline__ void attn_gqa_mma(const float *__restrict__ q, const __half *__restrict__ kc,
                                                    const __half *__restrict__ vc, int64_t kv_dim, int n_head,
                                                    float scale, int t, int kvh, int G, int64_t p0, int64_t p1,
                                                    float (*so)[QP_GQA_WARPS][HD],
                                                    float (*sm_m)[QP_GQA_WARPS], float (*sm_l)[QP_GQA_WARPS]) {
    constexpr int KS = HD / 16;         /* k-steps of S */
    constexpr int KW = HD / 4 / 8;      /* 16-byte loads of a lane's K dims (HD/4 halves) */
    constexpr int NT = HD / 8;          /* n-tiles of P V */
    constexpr int VW = HD / 8 / 8;      /* 16-byte loads of a lane's V dims (HD/8 halves) */
    constexpr int UN = HD == 64 ? 2 : 1; /* groups whose loads are in flight together */
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;
    /* Q of head g, this lane's dims, scaled, split into f16 hi and lo A registers */
    uint32_t qh[KS][2], ql[KS][2];
    {
        const float *qr = q + ((int64_t)t * n_head + (int64_t)kvh * G + g) * HD + (HD / 4) * t4;
#pragma unroll
        for (int j = 0; j < KS; j++) {
            float v[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            if (g < G)
#pragma unroll
                for (int e = 0; e < 4; e++) v[e] = qr[4 * j + e] * scale;
            qp_split2(v[0], v[1], &qh[j][0], &ql[j][0]);
            qp_split2(v[2], v[3], &qh[j][1], &ql[j][1]);
        }
    }
    float o[NT][4];
#pragma unroll
    for (int n = 0; n < NT; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m = -INFINITY, l = 0.0f; /* row g's running max; this lane's share of its sum */
    const __half *kb = kc + (int64_t)kvh * HD + (HD / 4) * t4;
    const __half *vb = vc + (int64_t)kvh * HD + (HD / 8) * g;
    const int kp = 4 * (g >> 1) + (g & 1); /* tile 0 column g's position in the group; tile 1: + 2 */
    for (int64_t gb = p0 + (int64_t)warp * 16; gb < p1; gb += (int64_t)UN * QP_GQA_WARPS * 16) {
        uint4 kr[UN][2][KW], vr[UN][4][VW];
#pragma unroll
        for (int u = 0; u < UN; u++) {
            const int64_t base = gb + (int64_t)u * QP_GQA_WARPS * 16;
#pragma unroll
            for (int ti = 0; ti < 2; ti++) {
                const int64_t p = base + kp + 2 * ti;
#pragma unroll
                for (int w = 0; w < KW; w++)
                    kr[u][ti][w] = p < p1 ? __ldg((const uint4 *)(kb + p * kv_dim) + w) : make_uint4(0, 0, 0, 0);
            }
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int64_t p = base + 4 * t4 + e;
#pragma unroll
                for (int w = 0; w < VW; w++)
                    vr[u][e][w] = p < p1 ? __ldg((const uint4 *)(vb + p * kv_dim) + w) : make_uint4(0, 0, 0, 0);
            }
        }
#pragma unroll
        for (int u = 0; u < UN; u++) {
            const int64_t base = gb + (int64_t)u * QP_GQA_WARPS * 16;
            if (base >= p1) break; /* warp-uniform */
            float sc[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
#pragma unroll
            for (int ti = 0; ti < 2; ti++) {
                const uint32_t *kw = (const uint32_t *)kr[u][ti];
#pragma unroll
                for (int j = 0; j < KS; j++) {
                    qp_mma16816(sc[ti], qh[j][0], qh[j][1], kw[2 * j], kw[2 * j + 1]);
                    qp_mma16816(sc[ti], ql[j][0], ql[j][1], kw[2 * j], kw[2 * j + 1]);
                }
            }
            /* this lane's 4 scores of head g: positions base + 4 t4 + {0, 1} (tile 0) and {2, 3} (tile 1) */
            float s4[4] = {sc[0][0], sc[0][1], sc[1][0], sc[1][1]};
            float mx = -INFINITY;
#pragma unroll
            for (int e = 0; e < 4; e++) {
                if (base + 4 * t4 + e >= p1) s4[e] = -INFINITY;
                mx = fmaxf(mx, s4[e]);
            }
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            const float mn = fmaxf(m, mx); /* finite: position base is live */
            const float c = expf(m - mn);
            float pv[4], ps = 0.0f;
#pragma unroll
            for (int e = 0; e < 4; e++) {
                pv[e] = expf(s4[e] - mn);
                ps += pv[e];
            }
            l = l * c + ps;
            m = mn;
            uint32_t ph[2], pl[2];
            qp_split2(pv[0], pv[1], &ph[0], &pl[0]);
            qp_split2(pv[2], pv[3], &ph[1], &pl[1]);
            if (g >= G) ph[0] = ph[1] = pl[0] = pl[1] = 0u; /* padding rows stay zero */
#pragma unroll
            for (int n = 0; n < NT; n++) {
                o[n][0] *= c;
                o[n][1] *= c;
                /* B: V rows 4 t4 + {0, 1} and {2, 3}, dim (HD/8) g + n: half n of each row's run */
                const uint32_t *r0 = (const uint32_t *)vr[u][0], *r1 = (const uint32_t *)vr[u][1];
                const uint32_t *r2 = (const uint32_t *)vr[u][2], *r3 = (const uint32_t *)vr[u][3];
                const uint32_t sel = n & 1 ? 0x7632u : 0x5410u;
                const uint32_t b0 = __byte_perm(r0[n >> 1], r1[n >> 1], sel);
                const uint32_t b1 = __byte_perm(r2[n >> 1], r3[n >> 1], sel);
                qp_mma16816(o[n], ph[0], ph[1], b0, b1);
                qp_mma16816(o[n], pl[0], pl[1], b0, b1);
            }
        }
    }
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    if (g < G) {
        /* C of n-tile n: row g, columns 2 t4, 2 t4 + 1 = dims (HD/8)(2 t4) + n, (HD/8)(2 t4 + 1) + n */
#pragma unroll
        for (int n = 0; n < NT; n++) {
            so[g][warp][(HD / 8) * (2 * t4) + n] = o[n][0];
            so[g][warp][(HD / 8) * (2 * t4 + 1) + n] = o[n][1];
        }
        if (t4 == 0) {
            sm_m[g][warp] = m;
            sm_l[g][warp] = l;
        }
    }
}

/* The block's merge of its warps' {m, l, o} per query head (in shared memory) into the chunk's
 * partial. */
template <int HD>
static __device__ __forceinline__ void attn_gqa_merge(float *__restrict__ part, int n_head, int kvh, int G, int t,
                                                      int s, int S, float (*so)[QP_GQA_WARPS][HD],
                                                      float (*sm_m)[QP_GQA_WARPS], float (*sm_l)[QP_GQA_WARPS]) {
    for (int idx = threadIdx.x; idx < G * HD; idx += blockDim.x) {
        const int g = idx / HD, d = idx % HD;
        float M = -INFINITY;
#pragma unroll
        for (int w = 0; w < QP_GQA_WARPS; w++) M = fmaxf(M, sm_m[g][w]);
        float acc = 0.0f, lt = 0.0f;
        if (M != -INFINITY)
#pragma unroll
            for (int w = 0; w < QP_GQA_WARPS; w++) {
                const float c = sm_m[g][w] == -INFINITY ? 0.0f : expf(sm_m[g][w] - M);
                acc += so[g][w][d] * c;
                lt += sm_l[g][w] * c;
            }
        float *out = part + (((int64_t)t * n_head + (int64_t)kvh * G + g) * S + s) * (HD + 2);
        out[2 + d] = acc;
        if (d == 0) {
            out[0] = M;
            out[1] = lt;
        }
    }
}

template <int HD>
static __global__ void __launch_bounds__(QP_GQA_WARPS * 32)
    attn_gqa_kernel(const float *__restrict__ q, const __half *__restrict__ kc, const __half *__restrict__ vc,
                    int64_t kv_dim, int64_t ctx, int64_t slots, int n_head, int n_head_kv, float scale,
                    const struct qp_step *__restrict__ step, float *__restrict__ part) {
    qp_pdl_wait(); /* PDL: before touching anything an earlier kernel wrote */
    qp_pdl_trigger();
    constexpr int LPP = HD / 8, PPW = 32 / LPP, NG = QP_GQA_WARPS * PPW; /* lanes/position, positions/warp */
    __shared__ float sm_m[QP_GQA_GMAX][QP_GQA_WARPS], sm_l[QP_GQA_GMAX][QP_GQA_WARPS];
    __shared__ float so[QP_GQA_GMAX][QP_GQA_WARPS][HD];
    const int s = blockIdx.x, kvh = blockIdx.y, t = blockIdx.z, S = gridDim.x;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int G = n_head / n_head_kv, grp = lane / LPP, d0 = (lane % LPP) * 8;
    const int64_t L = qp_attn_len(step, t, ctx, slots);
    kc += qp_attn_slot(step, t, ctx, kv_dim);
    vc += qp_attn_slot(step, t, ctx, kv_dim);
    const int64_t chunk = qp_attn_chunk(L, S), p0 = (int64_t)s * chunk;
    const int64_t p1 = p0 + chunk < L ? p0 + chunk : L;
    if (chunk >= QP_GQA_MMA_MIN) { /* tensor cores, see above */
        attn_gqa_mma<HD>(q, kc, vc, kv_dim, n_head, scale, t, kvh, G, p0, p1, so, sm_m, sm_l);
        __syncthreads();
        attn_gqa_merge<HD>(part, n_head, kvh, G, t, s, S, so, sm_m, sm_l);
        return;
    }
    if (chunk <= QP_GQA_SHORT_BATCHES * QP_GQA_SHORT_STEPS * PPW) { /* one warp per query head, see above */
        if (warp < G) attn_gqa_short<HD>(q, kc, vc, kv_dim, n_head, scale, t, kvh, G, warp, s, S, p0, p1, part);
        return;
    }
    float qr[QP_GQA_GMAX][8], o[QP_GQA_GMAX][8], m[QP_GQA_GMAX], l[QP_GQA_GMAX];
#pragma unroll
    for (int g = 0; g < QP_GQA_GMAX; g++) {
        m[g] = -INFINITY;
        l[g] = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            o[g][i] = 0.0f;
            qr[g][i] = g < G ? q[((int64_t)t * n_head + (int64_t)kvh * G + g) * HD + d0 + i] * scale : 0.0f;
        }
    }
    const __half *kb = kc + (int64_t)kvh * HD + d0, *vb = vc + (int64_t)kvh * HD + d0;
    /* warp-uniform trip count; lane groups past p1 load nothing and update nothing */
    for (int64_t pb = p0 + (int64_t)warp * PPW; pb < p1; pb += 2 * NG) {
        uint4 kr[2], vr[2];
        bool ok[2];
#pragma unroll
        for (int u = 0; u < 2; u++) {
            const int64_t p = pb + (int64_t)u * NG + grp;
            ok[u] = p < p1;
            kr[u] = ok[u] ? __ldg((const uint4 *)(kb + p * kv_dim)) : make_uint4(0, 0, 0, 0);
            vr[u] = ok[u] ? __ldg((const uint4 *)(vb + p * kv_dim)) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < 2; u++) {
            float kf[8], vf[8];
            qp_h8(kr[u], kf);
            qp_h8(vr[u], vf);
#pragma unroll
            for (int g = 0; g < QP_GQA_GMAX; g++) {
                if (g >= G) break; /* G is uniform over the block */
                float sc = 0.0f;
#pragma unroll
                for (int i = 0; i < 8; i++) sc += qr[g][i] * kf[i];
#pragma unroll
                for (int off = LPP / 2; off > 0; off >>= 1) sc += __shfl_xor_sync(0xffffffffu, sc, off);
                if (ok[u]) {
                    const float mn = fmaxf(m[g], sc), c = expf(m[g] - mn), e = expf(sc - mn);
                    l[g] = l[g] * c + e;
#pragma unroll
                    for (int i = 0; i < 8; i++) o[g][i] = o[g][i] * c + e * vf[i];
                    m[g] = mn;
                }
            }
        }
    }
    /* merge the warp's lane groups (same dims, different positions), then the warps */
#pragma unroll
    for (int g = 0; g < QP_GQA_GMAX; g++) {
        if (g >= G) break;
        float M = m[g];
#pragma unroll
        for (int off = LPP; off < 32; off <<= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, off));
        const float c = m[g] == -INFINITY ? 0.0f : expf(m[g] - M);
        float lg = l[g] * c;
#pragma unroll
        for (int off = LPP; off < 32; off <<= 1) lg += __shfl_xor_sync(0xffffffffu, lg, off);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            float v = o[g][i] * c;
#pragma unroll
            for (int off = LPP; off < 32; off <<= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
            if (grp == 0) so[g][warp][d0 + i] = v;
        }
        if (lane == 0) {
            sm_m[g][warp] = M;
            sm_l[g][warp] = lg;
        }
    }
    __syncthreads();
    attn_gqa_merge<HD>(part, n_head, kvh, G, t, s, S, so, sm_m, sm_l);
}

/* Parallel combine: one block of QP_COMB_THREADS per (head, token), every chunk's partial read with
 * no dependent load before it (the partial kernels write all gridS chunks each step; an empty one
 * has m = -inf, l = 0, o = 0, so the live length need not be read first). The threads are NG =
 * blockDim / hd groups of hd: group g takes chunks g, g + NG, ..., QP_COMB_BATCH at a time with
 * all their loads in flight, and folds them into a running (max, sum of weights * l, sum of
 * weights * o[d]) as flash-decoding does; the NG group results are merged in order through shared
 * memory. Measured (docs/performance.md): one L2 round trip instead of three (the step,
 * then m, then o). */
#define QP_COMB_THREADS 256
#define QP_COMB_BATCH 8
static __global__ void __launch_bounds__(QP_COMB_THREADS)
    attn_combine_kernel(const float *__restrict__ part, int n_head, int hd, const int gridS,
                        float *__restrict__ out) {
    qp_pdl_wait(); /* PDL: before touching anything an earlier kernel wrote */
    qp_pdl_trigger();
    __shared__ float gm[QP_COMB_THREADS], gl[QP_COMB_THREADS]; /* NG <= blockDim groups */
    __shared__ float acc_s[QP_COMB_THREADS];
    const int h = blockIdx.x, t = blockIdx.y, tid = threadIdx.x;
    const int NG = blockDim.x / hd, g = tid / hd, d = tid % hd;
    const int64_t stride = hd + 2;
    const float *pp = part + ((int64_t)t * n_head + h) * gridS * stride;
    float M = -INFINITY, lsum = 0.0f, acc = 0.0f;
    if (g < NG) {
        for (int s0 = g; s0 < gridS; s0 += NG * QP_COMB_BATCH) {
            float ms[QP_COMB_BATCH], ls[QP_COMB_BATCH], os[QP_COMB_BATCH];
#pragma unroll
            for (int k = 0; k < QP_COMB_BATCH; k++) {
                const int s = s0 + k * NG;
                const bool ok = s < gridS;
                ms[k] = ok ? pp[s * stride] : -INFINITY;
                ls[k] = ok ? pp[s * stride + 1] : 0.0f;
                os[k] = ok ? pp[s * stride + 2 + d] : 0.0f;
            }
            float mb = M;
#pragma unroll
            for (int k = 0; k < QP_COMB_BATCH; k++) mb = fmaxf(mb, ms[k]);
            if (mb == -INFINITY) continue; /* nothing live yet */
            const float c = M == -INFINITY ? 0.0f : expf(M - mb);
            lsum *= c;
            acc *= c;
#pragma unroll
            for (int k = 0; k < QP_COMB_BATCH; k++) {
                const float w = ms[k] == -INFINITY ? 0.0f : expf(ms[k] - mb);
                lsum += w * ls[k];
                acc += w * os[k];
            }
            M = mb;
        }
    }
    acc_s[tid] = acc;
    if (d == 0 && g < NG) {
        gm[g] = M;
        gl[g] = lsum;
    }
    __syncthreads();
    if (tid < hd) { /* the NG group results in order */
        float Mt = -INFINITY;
        for (int k = 0; k < NG; k++) Mt = fmaxf(Mt, gm[k]);
        float r = 0.0f, lt = 0.0f;
        for (int k = 0; k < NG; k++) {
            const float c = gm[k] == -INFINITY ? 0.0f : expf(gm[k] - Mt);
            r += acc_s[k * hd + tid] * c;
            lt += gl[k] * c;
        }
        out[((int64_t)t * n_head + h) * hd + tid] = lt > 0.0f ? r / lt : 0.0f; /* no positions: a padding row */
    }
}

enum qp_status qp_cuda_attention(const struct qp_op_args *a, struct qp_error *err) {
    struct qp_cuda_scratch_layout l;
    enum qp_status s = qp_cuda_scratch_plan(a, &l, err);
    if (s != QP_OK) return s;
    float *part = (float *)((char *)a->scratch + l.attn_off);
    const dim3 grid((unsigned)l.attn_split, (unsigned)a->n_head, (unsigned)a->n_tok);
    const float scale = 1.0f / sqrtf((float)a->head_dim);
    const int G = a->n_head_kv > 0 && a->n_head % a->n_head_kv == 0 ? a->n_head / a->n_head_kv : 0;
    const bool gqa = a->kernel == QP_KERNEL_ATTN_GQA;
    if (gqa && !(a->kv.type == QP_GGML_F16 && (a->head_dim == 64 || a->head_dim == 128) && G >= 1 &&
                 G <= QP_GQA_GMAX && a->kv.kv_dim % 8 == 0 && (uintptr_t)a->kv.k % 16 == 0 &&
                 (uintptr_t)a->kv.v % 16 == 0))
        return qp_error_set(err, QP_ERR_UNSUPPORTED, "cuda attn_gqa: needs an f16 cache (16-byte aligned), "
                            "head_dim 64 or 128 and 1..%d query heads per KV head", QP_GQA_GMAX);
    if (a->launch.block != (gqa ? QP_GQA_WARPS : QP_ATTN_WARPS) * 32)
        return qp_error_set(err, QP_ERR_INVALID, "cuda %s: launch.block %d, the kernel runs %d",
                            gqa ? "attn_gqa" : "attn_split", a->launch.block, (gqa ? QP_GQA_WARPS : QP_ATTN_WARPS) * 32);
    const dim3 gg((unsigned)l.attn_split, (unsigned)a->n_head_kv, (unsigned)a->n_tok);
    qp_cuda_note_launch(gqa ? QP_KERNEL_ATTN_GQA : QP_KERNEL_ATTN_SPLIT);
    if (gqa && a->head_dim == 64)
        QP_CUDA_LAUNCH(err, attn_gqa_kernel<64>, gg, QP_GQA_WARPS * 32, 0, a, a->in0, (const __half *)a->kv.k,
                       (const __half *)a->kv.v, a->kv.kv_dim, a->kv.ctx, a->kv.slots, a->n_head, a->n_head_kv, scale, a->step,
                       part);
    else if (gqa)
        QP_CUDA_LAUNCH(err, attn_gqa_kernel<128>, gg, QP_GQA_WARPS * 32, 0, a, a->in0, (const __half *)a->kv.k,
                       (const __half *)a->kv.v, a->kv.kv_dim, a->kv.ctx, a->kv.slots, a->n_head, a->n_head_kv, scale, a->step,
                       part);
    else if (a->kv.type == QP_GGML_F16)
        QP_CUDA_LAUNCH(err, attn_partial_kernel<__half>, grid, QP_ATTN_WARPS * 32, 0, a, a->in0,
                       (const __half *)a->kv.k, (const __half *)a->kv.v, a->kv.kv_dim, a->kv.ctx, a->kv.slots,
                       a->n_head, a->n_head_kv, a->head_dim, scale, a->step, part);
    else
        QP_CUDA_LAUNCH(err, attn_partial_kernel<float>, grid, QP_ATTN_WARPS * 32, 0, a, a->in0,
                       (const float *)a->kv.k, (const float *)a->kv.v, a->kv.kv_dim, a->kv.ctx, a->kv.slots,
                       a->n_head, a->n_head_kv, a->head_dim, scale, a->step, part);
    const dim3 g2((unsigned)a->n_head, (unsigned)a->n_tok);
    QP_CUDA_LAUNCH(err, attn_combine_kernel, g2, QP_COMB_THREADS, 0, a, part, a->n_head, a->head_dim,
                   (int)l.attn_split, a->out);
    return QP_OK;
}
