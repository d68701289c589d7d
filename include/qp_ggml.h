/* qp_ggml.h — the GGML tensor types: ids as GGUF stores them, block geometry, names.
 *
 * A tensor row of n elements of type t occupies (n / block_elems) * block_bytes bytes and n
 * must be a multiple of block_elems. Types this project cannot dequantize are still known by
 * id and name where possible so that errors can name them.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum qp_ggml_type {
    QP_GGML_F32 = 0,
    QP_GGML_F16 = 1,
    QP_GGML_Q4_0 = 2,
    QP_GGML_Q4_1 = 3,
    QP_GGML_Q5_0 = 6,
    QP_GGML_Q5_1 = 7,
    QP_GGML_Q8_0 = 8,
    QP_GGML_Q8_1 = 9,
    QP_GGML_Q2_K = 10,
    QP_GGML_Q3_K = 11,
    QP_GGML_Q4_K = 12,
    QP_GGML_Q5_K = 13,
    QP_GGML_Q6_K = 14,
    QP_GGML_Q8_K = 15,
    QP_GGML_IQ2_XXS = 16,
    QP_GGML_IQ2_XS = 17,
    QP_GGML_IQ3_XXS = 18,
    QP_GGML_IQ1_S = 19,
    QP_GGML_IQ4_NL = 20,
    QP_GGML_IQ3_S = 21,
    QP_GGML_IQ2_S = 22,
    QP_GGML_IQ4_XS = 23,
    QP_GGML_I8 = 24,
    QP_GGML_I16 = 25,
    QP_GGML_I32 = 26,
    QP_GGML_I64 = 27,
    QP_GGML_F64 = 28,
    QP_GGML_IQ1_M = 29,
    QP_GGML_BF16 = 30,
    QP_GGML_TQ1_0 = 34,
    QP_GGML_TQ2_0 = 35,
    QP_GGML_MXFP4 = 39,
    QP_GGML_TYPE_COUNT = 40, /* ids >= this are unknown */
};

struct qp_ggml_type_info {
    const char *name;     /* "Q4_K"; NULL for ids that GGML never assigned */
    uint32_t block_elems; /* elements per block (1 for scalar types) */
    uint32_t block_bytes; /* bytes per block */
    bool supported;       /* this project dequantizes it (kernels/cpu/quant.c) */
};

/* Info for a type id; NULL when the id is unknown (negative, unassigned or >= COUNT). */
const struct qp_ggml_type_info *qp_ggml_type_info(int32_t type);

/* Name of a type id, or "unknown" — for messages. Never NULL. */
const char *qp_ggml_type_name(int32_t type);

/* Type id for a name ("q5_0", "Q5_0", case-insensitive); -1 when unknown. */
int32_t qp_ggml_type_from_name(const char *name);

/* Bytes of one row of n elements: false when the type is unknown, n is not a multiple of the
 * block size, or the result overflows. */
bool qp_ggml_row_bytes(int32_t type, int64_t n, size_t *out);

/* Overflow-checked helpers for sizes computed from untrusted input. */
static inline bool qp_mul_size(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool qp_add_size(size_t a, size_t b, size_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

#ifdef __cplusplus
}
#endif
