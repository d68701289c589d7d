/* op_table.c — the plan-facing names of the ops, prologues and epilogues of qp_ops.h.
 *
 * Owns: the name <-> enum mapping used by the plan writer (compiler) and reader (runtime).
 * Does not own: the ops themselves (kernels/cpu/ops.c, kernels/cuda/). Invariant: every enum
 * value below its COUNT has exactly one name, and names are unique (tests/test_op_table.c).
 */
#include <string.h>

#include "qp_ops.h"

static const struct qp_op_desc op_descs[QP_OP_COUNT] = {
    [QP_OP_EMBED] = {QP_OP_EMBED, "embed"},
    [QP_OP_RMS_NORM] = {QP_OP_RMS_NORM, "rms_norm"},
    [QP_OP_LINEAR] = {QP_OP_LINEAR, "linear"},
    [QP_OP_ROPE] = {QP_OP_ROPE, "rope"},
    [QP_OP_KV_WRITE] = {QP_OP_KV_WRITE, "kv_write"},
    [QP_OP_ATTENTION] = {QP_OP_ATTENTION, "attention"},
    [QP_OP_SWIGLU] = {QP_OP_SWIGLU, "swiglu"},
    [QP_OP_ADD] = {QP_OP_ADD, "add"},
    [QP_OP_ARGMAX] = {QP_OP_ARGMAX, "argmax"},
    [QP_OP_STEP_ADVANCE] = {QP_OP_STEP_ADVANCE, "step_advance"},
};

static const char *const prologue_names[] = {
    [QP_PROLOGUE_NONE] = "none",
    [QP_PROLOGUE_RMS_NORM] = "rms_norm",
};

static const char *const epilogue_names[] = {
    [QP_EPILOGUE_NONE] = "none",
    [QP_EPILOGUE_RESIDUAL] = "residual",
    [QP_EPILOGUE_SWIGLU] = "swiglu",
    [QP_EPILOGUE_ROPE_KV] = "rope_kv",
    [QP_EPILOGUE_ARGMAX] = "argmax",
};

#define N_PROLOGUES ((int)(sizeof prologue_names / sizeof prologue_names[0]))
#define N_EPILOGUES ((int)(sizeof epilogue_names / sizeof epilogue_names[0]))

const struct qp_op_desc *qp_op_desc(enum qp_op op) {
    if ((int)op < 0 || (int)op >= QP_OP_COUNT) return NULL;
    return &op_descs[op];
}

const struct qp_op_desc *qp_op_find(const char *name) {
    if (!name) return NULL;
    for (int i = 0; i < QP_OP_COUNT; i++)
        if (strcmp(op_descs[i].name, name) == 0) return &op_descs[i];
    return NULL;
}

const char *qp_prologue_name(enum qp_prologue p) {
    if ((int)p < 0 || (int)p >= N_PROLOGUES) return NULL;
    return prologue_names[p];
}

const char *qp_epilogue_name(enum qp_epilogue e) {
    if ((int)e < 0 || (int)e >= N_EPILOGUES) return NULL;
    return epilogue_names[e];
}

int qp_prologue_from_name(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < N_PROLOGUES; i++)
        if (strcmp(prologue_names[i], name) == 0) return i;
    return -1;
}

int qp_epilogue_from_name(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < N_EPILOGUES; i++)
        if (strcmp(epilogue_names[i], name) == 0) return i;
    return -1;
}
