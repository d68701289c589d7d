/* qp_cuda.h — what the CUDA ops (kernels/cuda/) need from a plan beyond qp_ops.h, computable
 * without CUDA so that the compiler can size each node's scratch: the per-node scratch layout,
 * and the rules that choose a kernel path (matvec or cuBLAS GEMM, flash-decoding split).
 *
 * Implemented in kernels/cuda_scratch.c (plain C, part of qpkernels). The CUDA launchers use
 * the same function, so a plan sized by it always fits. Offsets are from a->scratch, 256-byte
 * aligned; a node whose total is 0 needs no scratch.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qp_ops.h"
#include "qp_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* LINEAR with n_tok <= this runs the quantized matvec (weights read per token); above it the
 * weights are dequantized to f16 in row chunks and multiplied by cuBLAS (prefill). */
#define QP_CUDA_MATVEC_MAX_TOK 8
/* Most blocks of argmax's first stage, and of the decode matvec with the fused ARGMAX epilogue
 * (its warps then walk the rows with a grid stride): one (value, index) partial per block in
 * scratch, 8 bytes each. */
#define QP_CUDA_ARGMAX_BLOCKS 1024
/* Bytes of f16 weight rows dequantized per cuBLAS call (the chunk, over the parts' stacked rows),
 * unless launch.rows_per_block of a GEMM node names the rows per chunk. 24 MiB holds every
 * per-layer matrix of Qwen2.5-0.5B (ffn gate+up: 9728 x 896 x 2 B = 17 MiB) in one chunk. */
#define QP_CUDA_GEMM_CHUNK_BYTES ((size_t)24 << 20)
/* cuBLAS workspace of a GEMM node, in its scratch (so that it lives in the plan's arena and
 * cuBLAS never allocates, also not in graph capture). Measured: see docs/performance.md. */
#define QP_CUDA_GEMM_WS_BYTES ((size_t)4 << 20)

struct qp_cuda_scratch_layout {
    size_t total;         /* bytes of scratch the node needs (0: none) */
    size_t argmax_off;    /* QP_CUDA_ARGMAX_BLOCKS x {f32 value, i32 index} (argmax, epilogue) */
    bool gemm;            /* LINEAR takes the cuBLAS path */
    bool gemm_direct;     /* gemm: cuBLAS writes out itself (epilogue NONE, ARGMAX, RESIDUAL with
                           * beta = 1); no y; biases added after by a small kernel */
    size_t y_off;         /* gemm, not direct: f32 [n_tok][rows_total] raw products W x */
    size_t xh_off;        /* gemm: f16 [n_tok][in_w] prologue(x) */
    size_t wh_off;        /* gemm: f16 [chunk_rows][in_w] dequantized weight rows */
    int64_t chunk_rows;   /* gemm: stacked weight rows per cuBLAS call (chunks span parts) */
    size_t ws_off;        /* gemm: QP_CUDA_GEMM_WS_BYTES of cuBLAS workspace */
    int32_t attn_split;   /* attention: chunks of the sequence per (token, head) */
    size_t attn_off;      /* attention: f32 [n_tok][n_head][split][head_dim + 2] partials */
};

/* Fills l for the node described by a (op, n_tok, in_w, parts, epilogue, n_head, head_dim,
 * kv.ctx, launch). Returns QP_ERR_RANGE when a size overflows, QP_ERR_INVALID on a zero or
 * negative dimension the op needs. Never touches device memory. */
enum qp_status qp_cuda_scratch_plan(const struct qp_op_args *a, struct qp_cuda_scratch_layout *l,
                                    struct qp_error *err);

/* Total rows of the parts of a linear, stacked (0 when a count is negative). */
int64_t qp_cuda_rows_total(const struct qp_op_args *a);

#ifdef __cplusplus
}
#endif
