/* argmax.cu — ARGMAX (and the gemm kernel's ARGMAX epilogue): step->rows[t].next = the first index
 * of the largest value of row t, for every row. Two stages: up to QP_CUDA_ARGMAX_BLOCKS blocks per
 * row each reduce a strided share of it to (value, index) in scratch; one block per row reduces
 * those and writes the token. Ties go to the smaller index at every merge, so the result is the
 * first maximum, as on the CPU. NaN never wins a comparison; a row of only NaN gives index 0. */
#include "cuda_common.cuh"
#include "qp_cuda.h"

static __global__ void argmax_stage1_kernel(const float *__restrict__ x, int64_t n,
                                            qp_amax *__restrict__ part) {
    qp_pdl_wait(); /* PDL: before touching anything an earlier kernel wrote */
    qp_pdl_trigger();
    x += (int64_t)blockIdx.y * n; /* row blockIdx.y; its partials at part[row * gridDim.x] */
    part += (int64_t)blockIdx.y * gridDim.x;
    float v = -INFINITY;
    int32_t i = INT32_MAX;
    for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < n;
         k += (int64_t)gridDim.x * blockDim.x)
        qp_amax_merge(&v, &i, x[k], (int32_t)k);
    qp_amax_block(&v, &i);
    if (threadIdx.x == 0) part[blockIdx.x] = qp_amax{v, i};
}

static __global__ void argmax_stage2_kernel(const qp_amax *__restrict__ part, int n,
                                            struct qp_step *__restrict__ step) {
    qp_pdl_wait(); /* PDL: before touching anything an earlier kernel wrote */
    qp_pdl_trigger();
    part += (int64_t)blockIdx.x * n; /* row blockIdx.x */
    float v = -INFINITY;
    int32_t i = INT32_MAX;
    for (int k = threadIdx.x; k < n; k += blockDim.x) qp_amax_merge(&v, &i, part[k].v, part[k].i);
    qp_amax_block(&v, &i);
    if (threadIdx.x == 0) step->rows[blockIdx.x].next = i == INT32_MAX ? 0 : i;
}

enum qp_status qp_cuda_argmax_rows(const struct qp_op_args *a, const float *logits, int64_t n_cols, int n_rows,
                                   void *scratch, struct qp_error *err) {
    const int64_t bs = a->launch.block;
    int64_t blocks = (n_cols + 4 * bs - 1) / (4 * bs); /* >= 4 elements per thread */
    if (blocks > QP_CUDA_ARGMAX_BLOCKS) blocks = QP_CUDA_ARGMAX_BLOCKS;
    if (blocks < 1) blocks = 1;
    qp_amax *part = (qp_amax *)scratch;
    if (n_rows < 1 || n_rows > QP_CUDA_ARGMAX_MAX_ROWS)
        return qp_error_set(err, QP_ERR_INVALID, "cuda argmax: %d rows (1..%d)", n_rows, QP_CUDA_ARGMAX_MAX_ROWS);
    QP_CUDA_LAUNCH(err, argmax_stage1_kernel, dim3((unsigned)blocks, (unsigned)n_rows), (unsigned)bs, 0, a, logits,
                   n_cols, part);
    QP_CUDA_LAUNCH(err, argmax_stage2_kernel, (unsigned)n_rows, (unsigned)bs, 0, a, part, (int)blocks, a->step);
    return QP_OK;
}
