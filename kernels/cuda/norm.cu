/* norm.cu — RMS_NORM: out[t] = in0[t] / sqrt(mean(in0[t]^2) + eps) * norm, one block per token,
 * fp32 sums. (The fused form lives in the matvec prologue, matvec.cu.) */
#include "cuda_common.cuh"

static __global__ void rms_norm_kernel(const float *__restrict__ x, const float *__restrict__ w,
                                       float eps, int64_t n, float *__restrict__ out) {
    qp_pdl_wait(); /* PDL: before touching anything an earlier kernel wrote */
    qp_pdl_trigger();
    __shared__ float red[32];
    const float *xr = x + (int64_t)blockIdx.x * n;
    float *o = out + (int64_t)blockIdx.x * n;
    const float inv = qp_block_inv_rms(xr, n, eps, red);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) o[i] = xr[i] * inv * w[i];
}

enum qp_status qp_cuda_rms_norm(const struct qp_op_args *a, struct qp_error *err) {
    QP_CUDA_LAUNCH(err, rms_norm_kernel, a->n_tok, a->launch.block, 0, a, a->in0, a->norm, a->eps, a->in_w,
                   a->out);
    return QP_OK;
}
