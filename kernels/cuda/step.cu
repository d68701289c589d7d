/* step.cu — STEP_ADVANCE: the step state moves on by itself inside a captured graph (struct
 * qp_step says how): a batch's rows each take their next token at the next position, a chunk
 * becomes one row after its last. One block: a thread per row, then thread 0 for the header. */
#include "cuda_common.cuh"

static __global__ void step_advance_kernel(struct qp_step *s) {
    qp_pdl_wait(); /* PDL: before touching anything an earlier kernel wrote */
    qp_pdl_trigger();
    const int n = s->n_tok;
    if (s->n_out == n) { /* a batch */
        for (int t = threadIdx.x; t < n; t += blockDim.x) {
            s->rows[t].token = s->rows[t].next;
            s->rows[t].pos += 1;
        }
        return;
    }
    if (threadIdx.x != 0) return;
    const struct qp_step_row last = s->rows[n - 1];
    s->rows[0].token = s->rows[0].next;
    s->rows[0].pos = last.pos + 1;
    s->rows[0].slot = last.slot;
    s->rows[0].next = -1; /* not known until the next argmax */
    s->n_tok = 1;
    s->n_out = 1;
}

enum qp_status qp_cuda_step_advance(const struct qp_op_args *a, struct qp_error *err) {
    QP_CUDA_LAUNCH(err, step_advance_kernel, 1, a->launch.block, 0, a, a->step);
    return QP_OK;
}
