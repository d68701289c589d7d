/* attention.cu — ATTENTION: out[t] = causal GQA attention of q = in0[t] over the cache rows
 * 0 .. pos+t (pos = step->pos, read on the device), scale 1/sqrt(head_dim), softmax in f32.
 *
 * Flash-decoding for every n_tok (decode is n_tok = 1; prefill runs the same kernels with one
 * grid row per token, which is causal by construction): the sequence 0..L-1 (L = pos+t+1,
 * capped at kv.ctx) is cut into `split` chunks of ceil(L/split) positions, split fixed at launch
 * (include/qp_cuda.h) so that a captured graph stays valid as L grows.
 *   1. attn_partial_kernel, grid (split, n_head, n_tok), 4 warps: each warp walks positions of
 *      the chunk with an online softmax (running max m, sum l, output o); the 4 warps merge;
 *      the block writes {m, l, o[head_dim]} to scratch.
 *   2. attn_combine_kernel, grid (n_head, n_tok), 256 threads: out = sum_s e^(m_s-M) o_s / sum_s e^(m_s-M) l_s,
 *      the chunks split over the threads (see the kernel).
 * Query head h reads KV head h / (n_head / n_head_kv). head_dim <= 256 (8 values per lane).
 *
 * Step 1 for an f16 cache with head_dim 64 or 128 and G = n_head / n_head_kv <= 8 query heads per
 * KV head (Qwen2.5-0.5B: 14 / 2 = 7) is attn_gqa_kernel instead: grid (split, n_head_kv, n_tok),
 * one block per (chunk, KV head) computing ALL G query heads of the group, so each K/V row is
 * read once instead of G times; a position's row is held by head_dim / 8 lanes with one 16-byte
 * load each (64: 8 lanes, 4 positions per warp per step), two steps' loads issued before any
 * math; online softmax per (lane group, head), merged over the warp by shuffles and over the 8
 * warps through shared memory into the same {m, l, o} partials, so step 2 is unchanged.
 * Decode only (n_tok <= QP_CUDA_MATVEC_MAX_TOK); prefill keeps the per-head kernel.
 * QP_CUDA_ATTN_GQA=0 in the environment selects the per-head kernel (a measurement knob).
 *
 * Fused combine (decode GQA path only): attn_gqa_kernel<HD, true> also does step 2, so a decode
 * step has one attention launch per layer instead of two. Each block, after writing its
 * partials, arrives once at a counter per (token, KV head) (module memory qp_attn_done, see
 * there); the block that arrives last (count == gridDim.x - 1: every block of the grid's chunk
 * row arrives exactly once, chunks with no live positions included) runs the combine for the G
 * query heads of its group with the same __device__ function and thread count as
 * attn_combine_kernel (bit-identical results), reading the other blocks' partials from L2
 * (__ldcg), then resets the counter to 0 for the next launch (and graph replay).
 * QP_CUDA_ATTN_FUSED=0 in the environment restores the two-launch form (a measurement knob);
 * prefill and the per-head kernel always use two launches.
 *
 * Memory ordering of the arrival (the pattern of cooperative groups' grid sync and of the
 * matvec's argmax): writers: partial stores by all threads; __syncthreads() (CTA-scope
 * ordering); thread 0: __threadfence() (fence.sc.gpu, cumulative: covers the block's stores it
 * has observed through the barrier), then atomicAdd. Last block: thread 0 saw the count of every
 * other block's release; __threadfence() after the atomic, __syncthreads(), and all threads
 * __threadfence() again before reading with ld.global.cg (L2: L1 is not coherent across SMs).
 */
#include "cuda_common.cuh"
#include "qp_cuda.h"

#define QP_ATTN_WARPS 4
#define QP_ATTN_MAX_HD 256

/* Positions per chunk: ceil(L / S), but at least QP_ATTN_MIN_CHUNK, so that at a short live
 * length only the first few chunks have work and the combine reads only those (the split S is
 * fixed by the plan's context, e.g. 64 at 16k, while L grows from 1). */
#define QP_ATTN_MIN_CHUNK 16
static __device__ __forceinline__ int64_t qp_attn_chunk(int64_t L, int S) {
    const int64_t c = (L + S - 1) / S;
    return c > QP_ATTN_MIN_CHUNK ? c : QP_ATTN_MIN_CHUNK;
}

template <typename C> static __device__ __forceinline__ float qp_ld_kv(const C *p) {
    if constexpr (sizeof(C) == 2) return __half2float(*(const __half *)p);
    else return *p;
}

template <typename C>
static __global__ void __launch_bounds__(QP_ATTN_WARPS * 32)
    attn_partial_kernel(const float *__restrict__ q, const C *__restrict__ kc, const C *__restrict__ vc,
                        int64_t kv_dim, int64_t ctx, int n_head, int n_head_kv, int hd, float scale,
                        const struct qp_step *__restrict__ step, float *__restrict__ part) {
    qp_pdl_wait(); /* PDL: before touching anything an earlier kernel wrote */
    qp_pdl_trigger();
    constexpr int NJ = QP_ATTN_MAX_HD / 32;
    __shared__ float sm[QP_ATTN_WARPS], sl[QP_ATTN_WARPS], so[QP_ATTN_WARPS][QP_ATTN_MAX_HD];
    const int s = blockIdx.x, h = blockIdx.y, t = blockIdx.z, S = gridDim.x;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int64_t L = (int64_t)step->pos + t + 1;
    if (L > ctx) L = ctx;
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
            if (d < hd) sc += qr[j] * qp_ld_kv(kr + d);
        }
        sc = qp_warp_sum(sc);
        const float mn = fmaxf(m, sc), c = expf(m - mn), e = expf(sc - mn);
        l = l * c + e;
#pragma unroll
        for (int j = 0; j < NJ; j++) {
            const int d = lane + 32 * j;
            if (d < hd) o[j] = o[j] * c + e * qp_ld_kv(vr + d);
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

/* Parallel combine: one block of QP_COMB_THREADS per (head, token). (1) the threads split the
 * used chunks: each loads m_s, a block max M (warp shuffles + shared memory), then w_s = e^(m_s-M)
 * (0 for an empty chunk) into shared memory and the block sum lt = sum_s w_s l_s; (2) the
 * threads are NG = blockDim / hd groups of hd: group g sums w_s o_s[d] over s = g, g+NG, ...
 * (coalesced rows, independent loads, no expf in the loop); (3) the NG group sums are added in
 * order through shared memory. Cost per step ~ S / NG loads per thread instead of S serial
 * {m, l, o} round trips with an expf each.
 *
 * qp_attn_combine_heads is that body for the heads h0 .. h0+G-1 (G <= GM) of token t at live
 * length L, the heads side by side: every thread does, for each head, exactly the operations
 * (same values, same order, same thread and lane) it does for one head alone, so a head's result
 * does not depend on G; the heads share the barriers and their loads are in flight together (the
 * fused kernel's last block combines its G = 7 heads in about the latency of one). Callers:
 * attn_combine_kernel (GM = 1, one head per block) and the last block of attn_gqa_kernel<HD, true>
 * (GM = QP_GQA_GMAX), both with QP_COMB_THREADS threads: the same bits. Every thread of the block
 * must call it (barriers). Shared memory from the caller: sw[G][gridS] weights,
 * red[G][QP_COMB_THREADS / 32], acc_s[G][QP_COMB_THREADS]. Partials are read with ld.global.cg
 * (L2): in the fused kernel other blocks wrote them during this launch. */
#define QP_COMB_THREADS 256
template <int GM>
static __device__ __forceinline__ void qp_attn_combine_heads(const float *part, int n_head, int hd, int gridS,
                                                             int64_t L, int h0, int G, int t,
                                                             float *__restrict__ out, float *sw, float *red,
                                                             float *acc_s) {
    const int tid = threadIdx.x, nt = blockDim.x;
    const int lane = tid & 31, warp = tid >> 5, nw = nt >> 5;
    int S = gridS;
    { /* only the chunks that hold positions (the others are empty: M = -inf) */
        const int64_t used = (L + qp_attn_chunk(L, S) - 1) / qp_attn_chunk(L, S);
        if (used < S) S = used < 1 ? 1 : (int)used;
    }
    const int64_t stride = hd + 2;
    const float *pp0 = part + ((int64_t)t * n_head + h0) * gridS * stride; /* head h0 + g: + g * gridS * stride */
    const int64_t hs = (int64_t)gridS * stride;
    /* (1) block max of m_s */
    float M[GM];
#pragma unroll
    for (int g = 0; g < GM; g++) M[g] = -INFINITY;
    for (int s = tid; s < S; s += nt) {
#pragma unroll
        for (int g = 0; g < GM; g++)
            if (g < G) M[g] = fmaxf(M[g], __ldcg(pp0 + g * hs + s * stride));
    }
#pragma unroll
    for (int g = 0; g < GM; g++) {
        if (g >= G) break;
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) M[g] = fmaxf(M[g], __shfl_xor_sync(0xffffffffu, M[g], off));
        if (lane == 0) red[g * nw + warp] = M[g];
    }
    __syncthreads();
#pragma unroll
    for (int g = 0; g < GM; g++) {
        if (g >= G) break;
        M[g] = -INFINITY;
        for (int w = 0; w < nw; w++) M[g] = fmaxf(M[g], red[g * nw + w]);
    }
    __syncthreads(); /* red is reused below */
    float lp[GM];
#pragma unroll
    for (int g = 0; g < GM; g++) lp[g] = 0.0f;
    for (int s = tid; s < S; s += nt) {
#pragma unroll
        for (int g = 0; g < GM; g++) {
            if (g >= G) break;
            const float ms = __ldcg(pp0 + g * hs + s * stride);
            const float w = ms == -INFINITY ? 0.0f : expf(ms - M[g]);
            sw[g * gridS + s] = w;
            lp[g] += w * __ldcg(pp0 + g * hs + s * stride + 1);
        }
    }
#pragma unroll
    for (int g = 0; g < GM; g++) {
        if (g >= G) break;
        lp[g] = qp_warp_sum(lp[g]);
        if (lane == 0) red[g * nw + warp] = lp[g];
    }
    __syncthreads();
    float lt[GM];
#pragma unroll
    for (int g = 0; g < GM; g++) {
        lt[g] = 0.0f;
        if (g >= G) break;
        for (int w = 0; w < nw; w++) lt[g] += red[g * nw + w];
    }
    /* (2) group k of hd threads: dims d, chunks k, k + NG, ... */
    const int NG = nt / hd, k = tid / hd, d = tid % hd;
    float acc[GM], a1[GM];
#pragma unroll
    for (int g = 0; g < GM; g++) acc[g] = a1[g] = 0.0f;
    if (k < NG) {
        const float *po = pp0 + 2 + d;
        int s = k;
        for (; s + NG < S; s += 2 * NG) { /* two independent loads per head in flight */
#pragma unroll
            for (int g = 0; g < GM; g++) {
                if (g >= G) break;
                acc[g] += sw[g * gridS + s] * __ldcg(po + g * hs + s * stride);
                a1[g] += sw[g * gridS + s + NG] * __ldcg(po + g * hs + (s + NG) * stride);
            }
        }
#pragma unroll
        for (int g = 0; g < GM; g++) {
            if (g >= G) break;
            if (s < S) acc[g] += sw[g * gridS + s] * __ldcg(po + g * hs + s * stride);
            acc[g] += a1[g];
        }
    }
#pragma unroll
    for (int g = 0; g < GM; g++) {
        if (g >= G) break;
        acc_s[g * nt + tid] = acc[g];
    }
    __syncthreads();
    /* (3) the NG group sums in order */
    if (tid < hd) {
#pragma unroll
        for (int g = 0; g < GM; g++) {
            if (g >= G) break;
            float r = 0.0f;
            for (int j = 0; j < NG; j++) r += acc_s[g * nt + j * hd + tid];
            out[((int64_t)t * n_head + h0 + g) * hd + tid] = r / lt[g];
        }
    }
}

/* Dynamic shared memory: gridS floats of weights. */
static __global__ void __launch_bounds__(QP_COMB_THREADS)
    attn_combine_kernel(const float *__restrict__ part, int n_head, int hd, const int gridS, int64_t ctx,
                        const struct qp_step *__restrict__ step, float *__restrict__ out) {
    qp_pdl_wait(); /* PDL: before touching anything an earlier kernel wrote */
    qp_pdl_trigger();
    extern __shared__ float sw[]; /* gridS weights */
    __shared__ float red[QP_COMB_THREADS / 32];
    __shared__ float acc_s[QP_COMB_THREADS];
    const int h = blockIdx.x, t = blockIdx.y;
    int64_t L = (int64_t)step->pos + t + 1;
    if (L > ctx) L = ctx;
    qp_attn_combine_heads<1>(part, n_head, hd, gridS, L, h, 1, t, out, sw, red, acc_s);
}

#define QP_GQA_WARPS 8
#define QP_GQA_GMAX 8

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

/* Arrival counters of the fused combine, one per (token, KV head) of a launch: module memory,
 * zero at module load, and returned to zero by the last block of each (token, KV head), so every
 * launch (and every replay of a captured graph) starts from zero. Kernels in one stream never
 * overlap their use (with PDL the next kernel touches them only after qp_pdl_wait, i.e. after
 * this grid completed). Not the node's scratch: scratch is arena memory shared with other nodes
 * and not zero (it would need a memset launch per step, the cost being removed), and a counter
 * left there would be overwritten by the next node using those bytes. Limitation: two attention
 * launches running concurrently on different streams of one device would share the counters;
 * the runtime runs one stream per device. The launcher fuses only where n_tok * n_head_kv fits. */
#define QP_ATTN_DONE_MAX 1024
static __device__ unsigned int qp_attn_done[QP_ATTN_DONE_MAX];

/* FUSED: also the combine (see the file comment); out is then written, else only part. */
template <int HD, bool FUSED>
static __global__ void __launch_bounds__(QP_GQA_WARPS * 32)
    attn_gqa_kernel(const float *__restrict__ q, const __half *__restrict__ kc, const __half *__restrict__ vc,
                    int64_t kv_dim, int64_t ctx, int n_head, int n_head_kv, float scale,
                    const struct qp_step *__restrict__ step, float *__restrict__ part, float *__restrict__ out) {
    qp_pdl_wait(); /* PDL: before touching anything an earlier kernel wrote */
    qp_pdl_trigger();
    constexpr int LPP = HD / 8, PPW = 32 / LPP, NG = QP_GQA_WARPS * PPW; /* lanes/position, positions/warp */
    static_assert(QP_GQA_WARPS * 32 == QP_COMB_THREADS, "the fused combine needs the combine's thread count");
    __shared__ float sm_m[QP_GQA_GMAX][QP_GQA_WARPS], sm_l[QP_GQA_GMAX][QP_GQA_WARPS];
    __shared__ float so[QP_GQA_GMAX][QP_GQA_WARPS][HD];
    const int s = blockIdx.x, kvh = blockIdx.y, t = blockIdx.z, S = gridDim.x;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int G = n_head / n_head_kv, grp = lane / LPP, d0 = (lane % LPP) * 8;
    int64_t L = (int64_t)step->pos + t + 1;
    if (L > ctx) L = ctx;
    const int64_t chunk = qp_attn_chunk(L, S), p0 = (int64_t)s * chunk;
    const int64_t p1 = p0 + chunk < L ? p0 + chunk : L;
    /* A chunk with no live position (p0 >= L: a short live length) writes no partials: the
     * combine reads only chunks s < ceil(L / chunk), i.e. p0 < L. Uniform over the block. In the
     * fused form such a block still arrives at the counter below. */
    if (p0 < L) {
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
            float *pw = part + (((int64_t)t * n_head + (int64_t)kvh * G + g) * S + s) * (HD + 2);
            pw[2 + d] = acc;
            if (d == 0) {
                pw[0] = M;
                pw[1] = lt;
            }
        }
    }
    if constexpr (FUSED) {
        __shared__ bool last;
        __shared__ float red[QP_GQA_GMAX * QP_COMB_THREADS / 32], acc_s[QP_GQA_GMAX * QP_COMB_THREADS];
        unsigned int *done = &qp_attn_done[t * n_head_kv + kvh];
        __syncthreads(); /* the block's partial stores (all threads) before thread 0's release */
        if (threadIdx.x == 0) {
            __threadfence();
            last = atomicAdd(done, 1u) == gridDim.x - 1;
            __threadfence();
        }
        __syncthreads();
        if (!last) return;
        __threadfence();
        /* the partial merge is over: so holds the G x S combine weights (launcher: G * S fits) */
        qp_attn_combine_heads<QP_GQA_GMAX>(part, n_head, HD, S, L, kvh * G, G, t, out, &so[0][0][0], red, acc_s);
        if (threadIdx.x == 0) *done = 0; /* no other block touches it again in this launch */
    }
}



/* The path knobs: forced by qp_cuda_attn_paths_force (tests), else the environment (read once). */
static struct qp_cuda_attn_paths g_attn_force = {-1, -1, -1};

extern "C" void qp_cuda_attn_paths_force(const struct qp_cuda_attn_paths *p) {
    const struct qp_cuda_attn_paths none = {-1, -1, -1};
    g_attn_force = p ? *p : none;
}

static bool qp_attn_env_on(const char *name) {
    const char *e = getenv(name);
    return !(e && e[0] == '0');
}

int qp_cuda_attn_knob(int which) {
    static int env[3] = {-1, -1, -1};
    static const char *const names[3] = {"QP_CUDA_ATTN_PREFILL", "QP_CUDA_ATTN_GQA", "QP_CUDA_ATTN_FUSED"};
    const int f = which == 0 ? g_attn_force.prefill : which == 1 ? g_attn_force.gqa : g_attn_force.fused;
    if (f >= 0) return f != 0;
    if (env[which] < 0) env[which] = qp_attn_env_on(names[which]);
    return env[which];
}

enum qp_status qp_cuda_attention(const struct qp_op_args *a, struct qp_error *err) {
    struct qp_cuda_scratch_layout l;
    enum qp_status s = qp_cuda_scratch_plan(a, &l, err);
    if (s != QP_OK) return s;
    float *part = (float *)((char *)a->scratch + l.attn_off);
    cudaStream_t st = QP_STREAM(a);
    const dim3 grid((unsigned)l.attn_split, (unsigned)a->n_head, (unsigned)a->n_tok);
    const float scale = 1.0f / sqrtf((float)a->head_dim);
    const int G = a->n_head_kv > 0 && a->n_head % a->n_head_kv == 0 ? a->n_head / a->n_head_kv : 0;
    /* decode only (n_tok <= QP_CUDA_MATVEC_MAX_TOK): with it, pp512 measured 43.3k -> 41.4k t/s */
    const bool gqa = qp_cuda_attn_knob(QP_CUDA_ATTN_KNOB_GQA) && a->n_tok <= QP_CUDA_MATVEC_MAX_TOK &&
                     a->kv.type == QP_GGML_F16 && (a->head_dim == 64 || a->head_dim == 128) &&
                     G >= 1 && G <= QP_GQA_GMAX && a->kv.kv_dim % 8 == 0 && (uintptr_t)a->kv.k % 16 == 0 &&
                     (uintptr_t)a->kv.v % 16 == 0;
    /* fused combine: a counter per (token, KV head) must exist, and the combine weights of G
     * heads x attn_split chunks must fit the kernel's `so` array (QP_GQA_GMAX x QP_GQA_WARPS x
     * head_dim floats); otherwise the two-launch form (same results) */
    const bool fused = gqa && qp_cuda_attn_knob(QP_CUDA_ATTN_KNOB_FUSED) &&
                       (int64_t)a->n_tok * a->n_head_kv <= QP_ATTN_DONE_MAX &&
                       (int64_t)l.attn_split * G <= QP_GQA_GMAX * QP_GQA_WARPS * a->head_dim;
    const dim3 gg((unsigned)l.attn_split, (unsigned)a->n_head_kv, (unsigned)a->n_tok);
#define QP_GQA_LAUNCH(HD, F)                                                                                \
    QP_CUDA_LAUNCH(err, (attn_gqa_kernel<HD, F>), gg, QP_GQA_WARPS * 32, 0, st, a->in0, (const __half *)a->kv.k, \
                   (const __half *)a->kv.v, a->kv.kv_dim, a->kv.ctx, a->n_head, a->n_head_kv, scale, a->step,  \
                   part, a->out)
    if (fused && a->head_dim == 64) QP_GQA_LAUNCH(64, true);
    else if (fused) QP_GQA_LAUNCH(128, true);
    else if (gqa && a->head_dim == 64) QP_GQA_LAUNCH(64, false);
    else if (gqa) QP_GQA_LAUNCH(128, false);
    else if (a->kv.type == QP_GGML_F16)
        QP_CUDA_LAUNCH(err, attn_partial_kernel<__half>, grid, QP_ATTN_WARPS * 32, 0, st, a->in0,
                       (const __half *)a->kv.k, (const __half *)a->kv.v, a->kv.kv_dim, a->kv.ctx,
                       a->n_head, a->n_head_kv, a->head_dim, scale, a->step, part);
    else
        QP_CUDA_LAUNCH(err, attn_partial_kernel<float>, grid, QP_ATTN_WARPS * 32, 0, st, a->in0,
                       (const float *)a->kv.k, (const float *)a->kv.v, a->kv.kv_dim, a->kv.ctx,
                       a->n_head, a->n_head_kv, a->head_dim, scale, a->step, part);
#undef QP_GQA_LAUNCH
    if (fused) return QP_OK; /* the last block of each (token, KV head) wrote out */
    const dim3 g2((unsigned)a->n_head, (unsigned)a->n_tok);
    QP_CUDA_LAUNCH(err, attn_combine_kernel, g2, QP_COMB_THREADS, (size_t)l.attn_split * sizeof(float), st, part,
                   a->n_head, a->head_dim,
                   (int)l.attn_split, a->kv.ctx, (const struct qp_step *)a->step, a->out);
    return QP_OK;
}
