/* rope.cu — ROPE: out [n][n_head*head_dim] = RoPE(in0, or out itself when in0 is NULL or equal),
 * NEOX pairs (i, i + head_dim/2) rotated by step->rows[t].pos * base^(-2i/head_dim), the angle in
 * double as on the CPU (cuda_common.cuh). One thread per pair: it reads both elements before it
 * writes, so in place is safe. (The fused form is the ROPE_KV epilogue, linear_common.cuh.) */
#include "cuda_common.cuh"

static __global__ void rope_kernel(const float *src, float *dst, int n_head, int hd, float base,
                                   const struct qp_step *__restrict__ step) {
    qp_pdl_wait(); /* PDL: before touching anything an earlier kernel wrote */
    qp_pdl_trigger();
    const int t = blockIdx.y, half = hd / 2;
    const int64_t u = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (u >= (int64_t)n_head * half) return;
    const int h = (int)(u / half), i = (int)(u % half);
    const int64_t off = ((int64_t)t * n_head + h) * hd;
    float sn, cs;
    qp_rope_cs((int64_t)step->rows[t].pos, i, hd, base, &cs, &sn);
    const float x0 = src[off + i], x1 = src[off + i + half];
    dst[off + i] = x0 * cs - x1 * sn;
    dst[off + i + half] = x0 * sn + x1 * cs;
}

enum qp_status qp_cuda_rope(const struct qp_op_args *a, struct qp_error *err) {
    const int64_t pairs = (int64_t)a->n_head * (a->head_dim / 2);
    const int64_t bs = a->launch.block;
    const dim3 grid((unsigned)((pairs + bs - 1) / bs), (unsigned)a->n_tok);
    QP_CUDA_LAUNCH(err, rope_kernel, grid, (unsigned)bs, 0, a, a->in0 ? a->in0 : a->out, a->out, a->n_head,
                   a->head_dim, a->rope_base, a->step);
    return QP_OK;
}
