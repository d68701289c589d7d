/* activation.cu — SWIGLU (out = silu(in0) * in1) and ADD (out = in0 + in1), elementwise over
 * [n][w] with w = out_w. silu(g) = g / (1 + exp(-g)) with the accurate expf, as on the CPU. */
#include "cuda_common.cuh"

static __global__ void swiglu_kernel(const float *__restrict__ g, const float *__restrict__ u,
                                     int64_t n, float *__restrict__ out) {
    qp_pdl_wait(); /* PDL: before touching anything an earlier kernel wrote */
    qp_pdl_trigger();
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* out may alias in0 or in1 (each element read then written by one thread). */
static __global__ void add_kernel(const float *a, const float *b, int64_t n, float *out) {
    qp_pdl_wait(); /* PDL: before touching anything an earlier kernel wrote */
    qp_pdl_trigger();
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = a[i] + b[i];
}

enum qp_status qp_cuda_swiglu(const struct qp_op_args *a, struct qp_error *err) {
    const int64_t n = (int64_t)a->n_tok * a->out_w, bs = a->launch.block;
    QP_CUDA_LAUNCH(err, swiglu_kernel, (unsigned)((n + bs - 1) / bs), (unsigned)bs, 0, a, a->in0, a->in1, n,
                   a->out);
    return QP_OK;
}

enum qp_status qp_cuda_add(const struct qp_op_args *a, struct qp_error *err) {
    const int64_t n = (int64_t)a->n_tok * a->out_w, bs = a->launch.block;
    QP_CUDA_LAUNCH(err, add_kernel, (unsigned)((n + bs - 1) / bs), (unsigned)bs, 0, a, a->in0, a->in1, n,
                   a->out);
    return QP_OK;
}
