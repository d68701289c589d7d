/* rope.cu — ROPE: in place on out [n][n_head*head_dim], NEOX pairs (i, i + head_dim/2) rotated
 * by (step->pos + t) * base^(-2i/head_dim), the angle in float as on the CPU. One thread per
 * pair. (The fused form is the ROPE_KV epilogue of the QKV projection, linear_common.cuh.) */
#include "cuda_common.cuh"

static __global__ void rope_kernel(float *__restrict__ x, int n_head, int hd, float base,
                                   const struct qp_step *__restrict__ step) {
    const int t = blockIdx.y, half = hd / 2;
    const int64_t u = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (u >= (int64_t)n_head * half) return;
    const int h = (int)(u / half), i = (int)(u % half);
    float *v = x + ((int64_t)t * n_head + h) * hd;
    float sn, cs;
    sincosf(qp_rope_theta(step->pos + t, i, hd, base), &sn, &cs);
    const float x0 = v[i], x1 = v[i + half];
    v[i] = x0 * cs - x1 * sn;
    v[i + half] = x0 * sn + x1 * cs;
}

enum qp_status qp_cuda_rope(const struct qp_op_args *a, struct qp_error *err) {
    const int64_t pairs = (int64_t)a->n_head * (a->head_dim / 2);
    const dim3 grid((unsigned)((pairs + 127) / 128), (unsigned)a->n_tok);
    QP_CUDA_LAUNCH(err, rope_kernel, grid, 128, 0, QP_STREAM(a), a->out, a->n_head, a->head_dim,
                   a->rope_base, a->step);
    return QP_OK;
}
