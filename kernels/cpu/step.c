/* step.c — advancing the step state after a step (CPU reference of step_advance; struct qp_step
 * says what it does). */
#include "qp_cpu.h"

void qp_cpu_step_advance(struct qp_step *step) {
    if (step->n_out == step->n_tok) { /* a batch: every row its sequence's newest token */
        for (int32_t t = 0; t < step->n_tok; t++) {
            step->rows[t].token = step->rows[t].next;
            step->rows[t].pos += 1;
        }
        return;
    }
    const struct qp_step_row last = step->rows[step->n_tok - 1];
    step->rows[0] = (struct qp_step_row){step->rows[0].next, last.pos + 1, last.slot, -1};
    step->n_tok = 1;
    step->n_out = 1;
}
