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
 *   2. attn_combine_kernel, grid (n_head, n_tok): out = sum_s e^(m_s-M) o_s / sum_s e^(m_s-M) l_s.
 * Query head h reads KV head h / (n_head / n_head_kv). head_dim <= 256 (8 values per lane).
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

static __global__ void attn_combine_kernel(const float *__restrict__ part, int n_head, int hd, const int gridS,
                                           int64_t ctx, const struct qp_step *__restrict__ step,
                                           float *__restrict__ out) {
    qp_pdl_wait(); /* PDL: before touching anything an earlier kernel wrote */
    qp_pdl_trigger();
    const int h = blockIdx.x, t = blockIdx.y;
    int S = gridS;
    int64_t L = (int64_t)step->pos + t + 1;
    if (L > ctx) L = ctx;
    { /* only the chunks that hold positions (the others are empty: M = -inf) */
        const int64_t used = (L + qp_attn_chunk(L, S) - 1) / qp_attn_chunk(L, S);
        if (used < S) S = used < 1 ? 1 : (int)used;
    }
    const float *pp = part + ((int64_t)t * n_head + h) * gridS * (hd + 2);
    float M = -INFINITY;
    for (int s = 0; s < S; s++) M = fmaxf(M, pp[s * (hd + 2)]);
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float acc = 0.0f, lt = 0.0f;
        for (int s = 0; s < S; s++) {
            const float *ps = pp + s * (hd + 2);
            if (ps[0] == -INFINITY) continue;
            const float c = expf(ps[0] - M);
            lt += ps[1] * c;
            acc += ps[2 + d] * c;
        }
        out[((int64_t)t * n_head + h) * hd + d] = acc / lt;
    }
}

enum qp_status qp_cuda_attention(const struct qp_op_args *a, struct qp_error *err) {
    struct qp_cuda_scratch_layout l;
    enum qp_status s = qp_cuda_scratch_plan(a, &l, err);
    if (s != QP_OK) return s;
    float *part = (float *)((char *)a->scratch + l.attn_off);
    cudaStream_t st = QP_STREAM(a);
    const dim3 grid((unsigned)l.attn_split, (unsigned)a->n_head, (unsigned)a->n_tok);
    const float scale = 1.0f / sqrtf((float)a->head_dim);
    if (a->kv.type == QP_GGML_F16)
        QP_CUDA_LAUNCH(err, attn_partial_kernel<__half>, grid, QP_ATTN_WARPS * 32, 0, st, a->in0,
                       (const __half *)a->kv.k, (const __half *)a->kv.v, a->kv.kv_dim, a->kv.ctx,
                       a->n_head, a->n_head_kv, a->head_dim, scale, a->step, part);
    else
        QP_CUDA_LAUNCH(err, attn_partial_kernel<float>, grid, QP_ATTN_WARPS * 32, 0, st, a->in0,
                       (const float *)a->kv.k, (const float *)a->kv.v, a->kv.kv_dim, a->kv.ctx,
                       a->n_head, a->n_head_kv, a->head_dim, scale, a->step, part);
    const dim3 g2((unsigned)a->n_head, (unsigned)a->n_tok);
    const int threads = ((a->head_dim + 31) / 32) * 32;
    QP_CUDA_LAUNCH(err, attn_combine_kernel, g2, threads, 0, st, part, a->n_head, a->head_dim,
                   (int)l.attn_split, a->kv.ctx, (const struct qp_step *)a->step, a->out);
    return QP_OK;
}
