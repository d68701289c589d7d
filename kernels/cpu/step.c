/* step.c — advancing the step state after a step (CPU reference of step_advance). */
#include "qp_cpu.h"

void qp_cpu_step_advance(struct qp_step *step) {
    step->pos += step->n_tok;
    step->tokens[0] = step->next_token;
    step->n_tok = 1;
}
