/* qp_cuda.h — what the CUDA ops (kernels/cuda/) need from a plan beyond qp_ops.h, computable
 * without CUDA so that the compiler can size each node's scratch and check launch shapes: the
 * per-node scratch layout of each kernel (by qp_op_args.kernel) and the kernels' fixed shapes.
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

/* Most blocks of argmax's first stage, and of mmv_argmax (whose warps then walk the rows with a
 * grid stride): one (value, index) partial per block in scratch, 8 bytes each. */
#define QP_CUDA_ARGMAX_BLOCKS 1024
/* Most rows one argmax (op or epilogue) picks a token for: each has its partials and, in
 * mmv_argmax, its own done-counter in module memory. */
#define QP_CUDA_ARGMAX_MAX_ROWS 1024
/* Bytes of f16 weight rows the gemm kernel dequantizes per cuBLAS call by default (the chunk, over
 * the parts' stacked rows; launch.rows_per_block of a gemm node is the chunk's rows). 24 MiB holds
 * every per-layer matrix of Qwen2.5-0.5B (ffn gate+up: 9728 x 896 x 2 B = 17 MiB) in one chunk. */
#define QP_CUDA_GEMM_CHUNK_BYTES ((size_t)24 << 20)
/* cuBLAS workspace of a GEMM node, in its scratch (so that it lives in the plan's arena and
 * cuBLAS never allocates, also not in graph capture). Measured: see docs/performance.md. */
#define QP_CUDA_GEMM_WS_BYTES ((size_t)4 << 20)

/* Kernel shapes fixed at compile time, which the plan's launch must name (qp_kernel_check). */
#define QP_CUDA_MMV_MAX_THREADS 256   /* matvec_kernel's __launch_bounds__ (registers) */
#define QP_CUDA_MMVS_THREADS 512      /* matvec_stream_kernel's block */
#define QP_CUDA_MMVS_WBYTES (48 * 1024) /* weight bytes a matvec_stream block holds */
#define QP_CUDA_MMVS_MAX_SEGS 16       /* copy segments per matvec_stream block */
#define QP_CUDA_MMVS_MAX_PARTIALS 2048 /* chunk sums per matvec_stream block (shared, 4 B each) */
#define QP_CUDA_MMVB_MAX_TOKENS 8      /* mmv_batch: most tokens a block decodes each weight for */
/* dynamic shared memory a block may take: sm_90's 227 KB opt-in limit less the kernels' static
 * shared memory (under 2 KB) */
#define QP_CUDA_SMEM_MAX (225 * 1024)
#define QP_CUDA_XS_STRIDE 36           /* floats per staged 32-float sub-chunk of x (padding) */
#define QP_CUDA_ATTN_SPLIT_THREADS 128 /* attn_split's partial kernel: 4 warps */
#define QP_CUDA_ATTN_MAX_HEAD_DIM 256  /* attn_split: 8 values per lane */
#define QP_CUDA_ATTN_MAX_SPLIT 256     /* chunks of a flash-decoding attention */
#define QP_CUDA_GQA_THREADS 256        /* attn_gqa: 8 warps */
#define QP_CUDA_GQA_GMAX 8             /* attn_gqa: most query heads per KV head */
#define QP_CUDA_AP_THREADS 128         /* attn_prefill: 4 warps */
#define QP_CUDA_AP_ROWS 16             /* attn_prefill: query rows per block */

/* Shared-memory bytes of a staged x of `cols` floats (cols % 32 == 0; matvec_stage.cuh). */
static inline size_t qp_cuda_xs_bytes(int64_t cols) {
    return (size_t)(cols / 32) * QP_CUDA_XS_STRIDE * sizeof(float);
}

/* Shared-memory bytes of x quantized to 8 bits (mmvq, matvec_q8.cu): `cols` int8 values, a float
 * scale per 32 and an int sum per 16 (cols % 32 == 0). */
static inline size_t qp_cuda_xq8_bytes(int64_t cols) {
    return (size_t)cols + (size_t)(cols / 32) * sizeof(float) + (size_t)(cols / 16) * sizeof(int);
}

struct qp_cuda_scratch_layout {
    size_t total;         /* bytes of scratch the node needs (0: none) */
    size_t argmax_off;    /* [n_tok][QP_CUDA_ARGMAX_BLOCKS] {f32 value, i32 index} (argmax, epilogue) */
    bool gemm;            /* the gemm kernel (cuBLAS) */
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

/* Fills l for the node described by a (kernel, op, n_tok, in_w, parts, epilogue, n_head,
 * head_dim, kv.ctx, launch). Returns QP_ERR_RANGE when a size overflows, QP_ERR_INVALID on a zero
 * or negative dimension the kernel needs. Never touches device memory. */
enum qp_status qp_cuda_scratch_plan(const struct qp_op_args *a, struct qp_cuda_scratch_layout *l,
                                    struct qp_error *err);

/* The enum qp_kernel the calling thread's last CUDA op launched (kernels/cuda/ops.cu; the
 * launchers record what they actually enqueued): how a backend reports which kernel ran. */
int32_t qp_cuda_last_kernel(void);

/* Total rows of the parts of a linear, stacked (0 when a count is negative). */
int64_t qp_cuda_rows_total(const struct qp_op_args *a);

#ifdef __cplusplus
}
#endif
