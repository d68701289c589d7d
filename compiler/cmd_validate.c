/* cmd_validate.c — `qplan validate plan.yaml [model.gguf]`: reads and validates a plan, and
 * when a model is given checks the plan against it: identity and weights
 * (qp_plan_check_model), then that it computes the model (qp_plan_check_semantics). */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "qp_compile.h"
#include "qp_plan.h"

static void usage(FILE *f) {
    fprintf(f, "usage: qplan validate plan.yaml [model.gguf]\n"
               "  checks the plan on its own (syntax, sizes, arena regions, liveness, ops, each node's\n"
               "  kernel and launch shape on the plan's target) and,\n"
               "  with a model, that it was compiled from that file (size, header hash, weights) and that\n"
               "  it computes that model: every tensor used once, biases, norms, RoPE and every node's\n"
               "  operands as the compiler lowers the model with the plan's options\n");
}

int qp_cmd_validate(int argc, char **argv) {
    const char *plan = NULL, *model = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "qplan validate: unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
        if (!plan) plan = argv[i];
        else if (!model) model = argv[i];
        else {
            fprintf(stderr, "qplan validate: too many arguments\n");
            usage(stderr);
            return 2;
        }
    }
    if (!plan) {
        fprintf(stderr, "qplan validate: no plan given\n");
        usage(stderr);
        return 2;
    }
    struct qp_error err;
    struct qp_plan *p = NULL;
    if (qp_plan_read(plan, &p, &err) != QP_OK || qp_plan_validate(p, &err) != QP_OK ||
        qp_plan_check_kernels(p, &err) != QP_OK) {
        fprintf(stderr, "qplan validate: %s\n", err.msg);
        qp_plan_free(p); /* read but invalid (LeakSanitizer: the plan was leaked here) */
        return 1;
    }
    if (model) {
        struct qp_gguf *g;
        /* header-only is enough: the check reads the header and tensor table */
        enum qp_status st = qp_gguf_open(model, QP_GGUF_HEADER_ONLY, &g, &err);
        if (st == QP_OK) {
            st = qp_plan_check_model(p, g, &err);
            if (st == QP_OK) st = qp_plan_check_semantics(p, g, &err);
            qp_gguf_close(g);
        }
        if (st != QP_OK) {
            fprintf(stderr, "qplan validate: %s\n", err.msg);
            qp_plan_free(p);
            return 1;
        }
    }
    printf("%s: valid plan (%d weights, %d buffers, programs", plan, p->n_weights, p->n_buffers);
    for (int32_t k = 0; k < p->n_programs; k++)
        printf("%s %s %d nodes", k ? "," : "", p->programs[k].name, p->programs[k].n_nodes);
    printf(")%s%s\n", model ? ", matches " : "", model ? model : "");
    qp_plan_free(p);
    return 0;
}
