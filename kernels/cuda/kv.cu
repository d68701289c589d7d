/* kv.cu — KV_WRITE: row t's K and V = in0[t], in1[t] ([n][kv_dim]) at its position in its slot
 * (step->rows[t]), stored as the cache type (F16 rounded to nearest even, or F32). Padding rows
 * (slot < 0), slots past the cache's and positions at or past kv.ctx are never written (the host
 * refuses to run past the context; this keeps a bad row from corrupting memory). */
#include "cuda_common.cuh"

template <typename C>
static __global__ void kv_write_kernel(const float *__restrict__ k, const float *__restrict__ v,
                                       int64_t kv_dim, int64_t ctx, int64_t slots,
                                       const struct qp_step *__restrict__ step, C *__restrict__ kc,
                                       C *__restrict__ vc) {
    qp_pdl_wait(); /* PDL: before touching anything an earlier kernel wrote */
    qp_pdl_trigger();
    const int t = blockIdx.y;
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const struct qp_step_row rw = step->rows[t];
    if (i >= kv_dim || rw.slot < 0 || rw.slot >= slots || rw.pos < 0 || rw.pos >= ctx) return;
    const int64_t pos = (int64_t)rw.slot * ctx + rw.pos;
    const float kv = k[(int64_t)t * kv_dim + i], vv = v[(int64_t)t * kv_dim + i];
    if constexpr (sizeof(C) == 2) {
        kc[pos * kv_dim + i] = __float2half_rn(kv);
        vc[pos * kv_dim + i] = __float2half_rn(vv);
    } else {
        kc[pos * kv_dim + i] = kv;
        vc[pos * kv_dim + i] = vv;
    }
}

enum qp_status qp_cuda_kv_write(const struct qp_op_args *a, struct qp_error *err) {
    const int64_t bs = a->launch.block;
    const dim3 grid((unsigned)((a->kv.kv_dim + bs - 1) / bs), (unsigned)a->n_tok);
    if (a->kv.type == QP_GGML_F16)
        QP_CUDA_LAUNCH(err, kv_write_kernel<__half>, grid, (unsigned)bs, 0, a, a->in0, a->in1, a->kv.kv_dim,
                       a->kv.ctx, a->kv.slots, a->step, (__half *)a->kv.k, (__half *)a->kv.v);
    else
        QP_CUDA_LAUNCH(err, kv_write_kernel<float>, grid, (unsigned)bs, 0, a, a->in0, a->in1, a->kv.kv_dim,
                       a->kv.ctx, a->kv.slots, a->step, (float *)a->kv.k, (float *)a->kv.v);
    return QP_OK;
}
