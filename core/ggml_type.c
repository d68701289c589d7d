/* ggml_type.c — the table of GGML tensor types (ids, block geometry) as GGUF files use them.
 * Block sizes follow ggml-common.h; "supported" marks the types kernels/cpu/quant.c handles. */
#include "qp_ggml.h"

#include <ctype.h>
#include <string.h>

static const struct qp_ggml_type_info types[QP_GGML_TYPE_COUNT] = {
    [QP_GGML_F32] = {"F32", 1, 4, true},
    [QP_GGML_F16] = {"F16", 1, 2, true},
    [QP_GGML_Q4_0] = {"Q4_0", 32, 18, true},
    [QP_GGML_Q4_1] = {"Q4_1", 32, 20, true},
    [QP_GGML_Q5_0] = {"Q5_0", 32, 22, true},
    [QP_GGML_Q5_1] = {"Q5_1", 32, 24, true},
    [QP_GGML_Q8_0] = {"Q8_0", 32, 34, true},
    [QP_GGML_Q8_1] = {"Q8_1", 32, 36, false},
    [QP_GGML_Q2_K] = {"Q2_K", 256, 84, true},
    [QP_GGML_Q3_K] = {"Q3_K", 256, 110, true},
    [QP_GGML_Q4_K] = {"Q4_K", 256, 144, true},
    [QP_GGML_Q5_K] = {"Q5_K", 256, 176, true},
    [QP_GGML_Q6_K] = {"Q6_K", 256, 210, true},
    [QP_GGML_Q8_K] = {"Q8_K", 256, 292, false},
    [QP_GGML_IQ2_XXS] = {"IQ2_XXS", 256, 66, false},
    [QP_GGML_IQ2_XS] = {"IQ2_XS", 256, 74, false},
    [QP_GGML_IQ3_XXS] = {"IQ3_XXS", 256, 98, false},
    [QP_GGML_IQ1_S] = {"IQ1_S", 256, 50, false},
    [QP_GGML_IQ4_NL] = {"IQ4_NL", 32, 18, false},
    [QP_GGML_IQ3_S] = {"IQ3_S", 256, 110, false},
    [QP_GGML_IQ2_S] = {"IQ2_S", 256, 82, false},
    [QP_GGML_IQ4_XS] = {"IQ4_XS", 256, 136, false},
    [QP_GGML_I8] = {"I8", 1, 1, false},
    [QP_GGML_I16] = {"I16", 1, 2, false},
    [QP_GGML_I32] = {"I32", 1, 4, false},
    [QP_GGML_I64] = {"I64", 1, 8, false},
    [QP_GGML_F64] = {"F64", 1, 8, false},
    [QP_GGML_IQ1_M] = {"IQ1_M", 256, 56, false},
    [QP_GGML_BF16] = {"BF16", 1, 2, true},
    [QP_GGML_TQ1_0] = {"TQ1_0", 256, 54, false},
    [QP_GGML_TQ2_0] = {"TQ2_0", 256, 66, false},
    [QP_GGML_MXFP4] = {"MXFP4", 32, 17, false},
};

const struct qp_ggml_type_info *qp_ggml_type_info(int32_t type) {
    if (type < 0 || type >= QP_GGML_TYPE_COUNT || types[type].name == NULL) return NULL;
    return &types[type];
}

const char *qp_ggml_type_name(int32_t type) {
    const struct qp_ggml_type_info *ti = qp_ggml_type_info(type);
    return ti ? ti->name : "unknown";
}

int32_t qp_ggml_type_from_name(const char *name) {
    for (int32_t t = 0; t < QP_GGML_TYPE_COUNT; t++) {
        const char *n = types[t].name;
        if (!n) continue;
        size_t i = 0;
        while (n[i] && name[i] && toupper((unsigned char)name[i]) == n[i]) i++;
        if (!n[i] && !name[i]) return t;
    }
    return -1;
}

bool qp_ggml_row_bytes(int32_t type, int64_t n, size_t *out) {
    const struct qp_ggml_type_info *ti = qp_ggml_type_info(type);
    if (!ti || n < 0 || n % ti->block_elems != 0) return false;
    return qp_mul_size((size_t)(n / ti->block_elems), ti->block_bytes, out);
}
