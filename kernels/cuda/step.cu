/* step.cu — STEP_ADVANCE: the step state moves on by itself inside the captured decode graph:
 * pos += n_tok, tokens[0] = next_token, n_tok = 1. Thread 0 of one block does it. */
#include "cuda_common.cuh"

static __global__ void step_advance_kernel(struct qp_step *s) {
    qp_pdl_wait(); /* PDL: before touching anything an earlier kernel wrote */
    qp_pdl_trigger();
    if (threadIdx.x != 0) return;
    s->pos += s->n_tok;
    s->tokens[0] = s->next_token;
    s->n_tok = 1;
}

enum qp_status qp_cuda_step_advance(const struct qp_op_args *a, struct qp_error *err) {
    QP_CUDA_LAUNCH(err, step_advance_kernel, 1, a->launch.block, 0, a, a->step);
    return QP_OK;
}
