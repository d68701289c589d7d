/* argmax.cu — ARGMAX (and the ARGMAX epilogue): step->next_token = the first index of the
 * largest value of one row. Two stages: QP_CUDA_ARGMAX_BLOCKS blocks each reduce a strided share
 * of the row to (value, index) in scratch; one block reduces those and writes the token. Ties
 * go to the smaller index at every merge, so the result is the first maximum, as on the CPU.
 * NaN never wins a comparison; a row of only NaN gives index 0. */
#include "cuda_common.cuh"
#include "qp_cuda.h"

static __global__ void argmax_stage1_kernel(const float *__restrict__ x, int64_t n,
                                            qp_amax *__restrict__ part) {
    qp_pdl_wait(); /* PDL: before touching anything an earlier kernel wrote */
    qp_pdl_trigger();
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
    float v = -INFINITY;
    int32_t i = INT32_MAX;
    for (int k = threadIdx.x; k < n; k += blockDim.x) qp_amax_merge(&v, &i, part[k].v, part[k].i);
    qp_amax_block(&v, &i);
    if (threadIdx.x == 0) step->next_token = i == INT32_MAX ? 0 : i;
}

enum qp_status qp_cuda_argmax_row(const struct qp_op_args *a, const float *logits, int64_t n_cols,
                                  void *scratch, struct qp_error *err) {
    const int64_t bs = a->launch.block;
    int64_t blocks = (n_cols + 4 * bs - 1) / (4 * bs); /* >= 4 elements per thread */
    if (blocks > QP_CUDA_ARGMAX_BLOCKS) blocks = QP_CUDA_ARGMAX_BLOCKS;
    if (blocks < 1) blocks = 1;
    qp_amax *part = (qp_amax *)scratch;
    QP_CUDA_LAUNCH(err, argmax_stage1_kernel, (unsigned)blocks, (unsigned)bs, 0, a, logits, n_cols, part);
    QP_CUDA_LAUNCH(err, argmax_stage2_kernel, 1, (unsigned)bs, 0, a, part, (int)blocks, a->step);
    return QP_OK;
}
