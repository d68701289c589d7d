/* attn_prefill.cu — the kernel attn_prefill: ATTENTION for many tokens (prefill), 128 threads, 16
 * query rows per block, keys streamed from the cache through shared memory.
 *
 * Same function as attention.cu (out[t] = causal GQA attention of q = in0[t] over the cache rows
 * 0 .. pos+t, capped at kv.ctx; scale 1/sqrt(head_dim); softmax in f32), arranged for many
 * queries: attention.cu's flash-decoding grid (split x head x token) walks each token's keys
 * serially per warp and re-reads them per token, which measured 317 us per layer at 512 tokens
 * on an H100 (69% of the prefill). Here a block takes QT = 16 consecutive tokens of one query
 * head; it loads tiles of KT = 32 keys and values (f16 or f32 cache, as f32) into shared memory
 * once for its 16 tokens; each of the 4 warps owns 4 tokens (rows) with an online softmax:
 *   score: lane k computes q_row . key[k0 + k] (q row broadcast from shared, keys padded by one
 *          float per row: no bank conflicts), masked past pos+t (causal) and ctx;
 *   softmax: one warp max and one warp sum per row and tile (not per key);
 *   output: lane owns head dims lane + 32 j; p of each key broadcast by a shuffle.
 * head_dim must be 32, 64 or 128 (NJ = head_dim / 32 values per lane; qp_kernel_check refuses
 * other nodes at load).
 */
#include "cuda_common.cuh"
#include "qp_cuda.h"

#define QP_AP_QT QP_CUDA_AP_ROWS /* tokens (query rows) per block */
#define QP_AP_KT 32 /* keys per shared tile: one per lane */
#define QP_AP_WARPS (QP_CUDA_AP_THREADS / 32)
#define QP_AP_RPW (QP_AP_QT / QP_AP_WARPS) /* rows per warp */


template <typename C, int NJ>
static __global__ void __launch_bounds__(QP_AP_WARPS * 32)
    attn_prefill_kernel(const float *__restrict__ q, const C *__restrict__ kc, const C *__restrict__ vc,
                        int64_t kv_dim, int64_t ctx, int n_head, int n_head_kv, int n_tok, float scale,
                        const struct qp_step *__restrict__ step, float *__restrict__ out) {
    qp_pdl_wait(); /* PDL: before touching anything an earlier kernel wrote */
    qp_pdl_trigger();
    constexpr int HD = NJ * 32;
    __shared__ float qs[QP_AP_QT][HD];
    __shared__ float ks[QP_AP_KT][HD + 1];
    __shared__ float vs[QP_AP_KT][HD];
    const int h = blockIdx.y, t0 = blockIdx.x * QP_AP_QT;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int kvh = h / (n_head / n_head_kv);
    /* a chunk of one sequence: its rows are consecutive positions of one slot */
    const int64_t pos = step->rows[0].pos;
    kc += (int64_t)(step->rows[0].slot > 0 ? step->rows[0].slot : 0) * ctx * kv_dim;
    vc += (int64_t)(step->rows[0].slot > 0 ? step->rows[0].slot : 0) * ctx * kv_dim;
    for (int i = threadIdx.x; i < QP_AP_QT * HD; i += blockDim.x) {
        const int r = i / HD, d = i % HD, t = t0 + r;
        qs[r][d] = t < n_tok ? q[((int64_t)t * n_head + h) * HD + d] * scale : 0.0f;
    }
    const int t_end = t0 + QP_AP_QT < n_tok ? t0 + QP_AP_QT : n_tok;
    int64_t nkeys = pos + t_end; /* keys 0 .. pos + t_end - 1 */
    if (nkeys > ctx) nkeys = ctx;
    float m[QP_AP_RPW], l[QP_AP_RPW], o[QP_AP_RPW][NJ];
#pragma unroll
    for (int rr = 0; rr < QP_AP_RPW; rr++) {
        m[rr] = -INFINITY;
        l[rr] = 0.0f;
#pragma unroll
        for (int j = 0; j < NJ; j++) o[rr][j] = 0.0f;
    }
    for (int64_t k0 = 0; k0 < nkeys; k0 += QP_AP_KT) {
        __syncthreads(); /* the last tile is consumed (and qs written, the first time) */
        for (int i = threadIdx.x; i < QP_AP_KT * HD; i += blockDim.x) {
            const int kk = i / HD, d = i % HD;
            const int64_t p = k0 + kk;
            const bool in = p < nkeys;
            ks[kk][d] = in ? qp_kv_f32(kc + p * kv_dim + (int64_t)kvh * HD + d) : 0.0f;
            vs[kk][d] = in ? qp_kv_f32(vc + p * kv_dim + (int64_t)kvh * HD + d) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int rr = 0; rr < QP_AP_RPW; rr++) {
            const int r = warp * QP_AP_RPW + rr, t = t0 + r;
            if (t >= n_tok) continue; /* warp-uniform */
            int64_t lim = pos + t; /* last key this row sees */
            if (lim > ctx - 1) lim = ctx - 1;
            if (lim < k0) continue; /* warp-uniform: no key of this tile */
            const int64_t key = k0 + lane;
            float sc = -INFINITY;
            if (key <= lim) {
                float acc = 0.0f;
#pragma unroll 16
                for (int d = 0; d < HD; d++) acc += qs[r][d] * ks[lane][d];
                sc = acc;
            }
            const float mn = fmaxf(m[rr], qp_warp_max(sc)); /* finite: key k0 <= lim is valid */
            const float c = expf(m[rr] - mn);
            const float p = key <= lim ? expf(sc - mn) : 0.0f;
            l[rr] = l[rr] * c + qp_warp_sum(p);
#pragma unroll
            for (int j = 0; j < NJ; j++) o[rr][j] *= c;
            const int kmax = lim - k0 + 1 < QP_AP_KT ? (int)(lim - k0 + 1) : QP_AP_KT;
            for (int kk = 0; kk < kmax; kk++) {
                const float pk = __shfl_sync(0xffffffffu, p, kk);
#pragma unroll
                for (int j = 0; j < NJ; j++) o[rr][j] += pk * vs[kk][lane + 32 * j];
            }
            m[rr] = mn;
        }
    }
#pragma unroll
    for (int rr = 0; rr < QP_AP_RPW; rr++) {
        const int t = t0 + warp * QP_AP_RPW + rr;
        if (t >= n_tok) continue;
        float *orow = out + ((int64_t)t * n_head + h) * HD;
#pragma unroll
        for (int j = 0; j < NJ; j++) orow[lane + 32 * j] = o[rr][j] / l[rr];
    }
}

enum qp_status qp_cuda_attn_prefill(const struct qp_op_args *a, struct qp_error *err) {
    if (a->launch.block != QP_AP_WARPS * 32 || a->launch.rows_per_block != QP_AP_QT)
        return qp_error_set(err, QP_ERR_INVALID, "cuda attn_prefill: launch.block %d and rows_per_block %d, "
                            "the kernel runs %d and %d", a->launch.block, a->launch.rows_per_block,
                            QP_AP_WARPS * 32, QP_AP_QT);
    const dim3 grid((unsigned)((a->n_tok + QP_AP_QT - 1) / QP_AP_QT), (unsigned)a->n_head);
    const float scale = 1.0f / sqrtf((float)a->head_dim);
    const bool f16 = a->kv.type == QP_GGML_F16;
    qp_cuda_note_launch(QP_KERNEL_ATTN_PREFILL);
    const struct qp_step *step = (const struct qp_step *)a->step;
#define QP_AP_GO(C, NJ)                                                                          \
    QP_CUDA_LAUNCH(err, (attn_prefill_kernel<C, NJ>), grid, QP_AP_WARPS * 32, 0, a, a->in0,       \
                   (const C *)a->kv.k, (const C *)a->kv.v, a->kv.kv_dim, a->kv.ctx, a->n_head,    \
                   a->n_head_kv, a->n_tok, scale, step, a->out)
    switch (a->head_dim) {
    case 32: if (f16) QP_AP_GO(__half, 1); else QP_AP_GO(float, 1); break;
    case 64: if (f16) QP_AP_GO(__half, 2); else QP_AP_GO(float, 2); break;
    case 128: if (f16) QP_AP_GO(__half, 4); else QP_AP_GO(float, 4); break;
    default:
        return qp_error_set(err, QP_ERR_UNSUPPORTED, "cuda attn_prefill: head_dim %d (32, 64 or 128)", a->head_dim);
    }
#undef QP_AP_GO
    return QP_OK;
}
