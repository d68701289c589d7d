/* qp_kernels.h — the kernel registry: every kernel a plan may name, the op it runs, what it
 * needs (architecture, types, shapes, launch shape), the launch the compiler writes for it by
 * default and the launch shapes `qplan tune` times.
 *
 * Plain C (kernels/kernel_table.c, part of qpkernels), so the compiler (kernel selection,
 * `qplan validate`), `qplan tune` and the backends (load-time checks) share one description. A
 * backend binds the ids to code: the CUDA backend runs each kernel's own launcher (kernels/cuda/
 * ops.cu dispatches on qp_op_args.kernel and never picks another); the CPU backend, the
 * reference, runs every kernel of an op with that op's reference function.
 *
 * A node is described to these functions by a struct qp_op_args whose op, epilogue, prologue,
 * weight parts (type, rows, cols, row_bytes), in_w, out_w, heads, kv (type, ctx, kv_dim) and
 * launch are set, and whose n_tok is the most tokens the node runs with (its program's
 * max_tok, 1 for a last-row node). Data pointers are not looked at: they may be NULL.
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

enum qp_kernel {
    QP_KERNEL_UNKNOWN = 0,
    QP_KERNEL_EMBED,        /* embed: one block per token */
    QP_KERNEL_RMS_NORM,     /* rms_norm: one block per token */
    QP_KERNEL_ROPE,         /* rope: one thread per rotated pair */
    QP_KERNEL_KV_WRITE,     /* kv_write: one thread per cache element */
    QP_KERNEL_SWIGLU,       /* swiglu: elementwise */
    QP_KERNEL_ADD,          /* add: elementwise */
    QP_KERNEL_ARGMAX,       /* argmax: two stages through scratch */
    QP_KERNEL_STEP_ADVANCE, /* step_advance: one thread */
    QP_KERNEL_MMV,          /* linear: a warp (or `split` warps) per output unit, weights read
                               from global memory as stored (kernels/cuda/matvec.cu) */
    QP_KERNEL_MMV_ARGMAX,   /* linear with the argmax epilogue: mmv over `split` blocks, the
                               last block reduces the row maxima (the LM head) */
    QP_KERNEL_MMV_STREAM,   /* linear: each block's weight rows bulk-copied into shared memory
                               before it waits for its input (sm_90; matvec_stream.cu) */
    QP_KERNEL_GEMM,         /* linear: weight rows dequantized to f16 in chunks, cuBLAS GEMM
                               (gemm.cu); f16 operands, f32 accumulation */
    QP_KERNEL_ATTN_SPLIT,   /* attention: flash-decoding per (chunk, head, token), then a combine */
    QP_KERNEL_ATTN_GQA,     /* attention: flash-decoding per (chunk, KV head, token), all query
                               heads of a KV head at once (f16 cache, head_dim 64 or 128) */
    QP_KERNEL_ATTN_PREFILL, /* attention: 16 query rows per block, key tiles in shared memory */
    QP_KERNEL_MMV_BATCH,    /* linear for a few tokens (batched decode): each weight sub-chunk
                               decoded once for `split` tokens (matvec_batch.cu) */
    QP_KERNEL_MMVQ,         /* linear: x quantized to 8 bits per 32 values in shared memory,
                               integer (DP4A) dots with the weight blocks (matvec_q8.cu) */
    QP_KERNEL_COUNT
};

/* What a plan's launch shapes are chosen for (the plan's `target`). */
struct qp_kernel_target {
    int32_t sm;  /* compute capability x 10 (90: H100, H200) */
    int32_t sms; /* streaming multiprocessors */
};

struct qp_kernel_desc {
    enum qp_kernel id;
    const char *name; /* as written in plans */
    enum qp_op op;
    int32_t min_sm;   /* lowest compute capability x 10 it runs on */
    const char *what; /* one line, for `qrun -v` and the docs */
};

/* The kernel with this id or name; NULL when there is none. */
const struct qp_kernel_desc *qp_kernel_desc(int32_t id);
const struct qp_kernel_desc *qp_kernel_find(const char *name);
/* The names of op's kernels, ", "-separated, into buf (for messages). */
void qp_kernel_names(enum qp_op op, char *buf, size_t n);

/* QP_OK when kernel id can run node a with a->launch on target t; otherwise QP_ERR_UNSUPPORTED
 * (this node is outside what the kernel does: op, epilogue, type, shape, architecture) or
 * QP_ERR_INVALID (the launch shape is not one the kernel accepts, or not enough scratch is
 * planned: a->scratch_bytes is compared with the kernel's need when a->scratch_bytes is not
 * SIZE_MAX), with a message saying what and why. */
enum qp_status qp_kernel_check(int32_t id, const struct qp_op_args *a, const struct qp_kernel_target *t,
                               struct qp_error *err);

/* The launch shape the compiler writes for kernel id on node a (the kernel's documented default;
 * pdl as given). QP_ERR_UNSUPPORTED when the kernel cannot run the node. */
enum qp_status qp_kernel_default_launch(int32_t id, const struct qp_op_args *a, const struct qp_kernel_target *t,
                                        bool pdl, struct qp_launch *out, struct qp_error *err);

struct qp_kernel_choice {
    int32_t kernel; /* enum qp_kernel */
    struct qp_launch launch;
};

/* Every kernel and launch shape worth timing for node a on t (what `qplan tune` tries), each
 * passing qp_kernel_check with unlimited scratch; pdl as given. Writes at most max; returns how
 * many there are (may exceed max). */
int qp_kernel_candidates(const struct qp_op_args *a, const struct qp_kernel_target *t, bool pdl,
                         struct qp_kernel_choice *out, int max);

/* The bound on the relative L2 difference between a kernel's output and its op's CPU reference
 * on the same inputs (the tests and qplan tune hold every kernel to it): 2e-5 for the kernels that
 * read weights as stored and accumulate in f32 (the two sides differ by summation order, ~sqrt(n)
 * 2^-24 over n <= 18944 terms); 3e-3 for gemm, whose operands are rounded to f16 (2^-11 each,
 * ~5e-4 expected); 2e-2 for mmvq, which rounds x to 8 bits per 32 values (error uniform within
 * half a step of max|x|/127: ~4e-3 relative for uniform x, ~5e-3 for Gaussian x, ~4x margin).
 * docs/cuda-kernels.md derives them. */
#define QP_KERNEL_TOL_F32 2e-5
#define QP_KERNEL_TOL_F16 3e-3
#define QP_KERNEL_TOL_Q8 2e-2
double qp_kernel_tolerance(int32_t id);

/* --- kernel geometry the launchers and the checks share --- */

/* Output units of a linear: the work items of the matvec kernels (one row; a gate/up pair for
 * swiglu; a rotated pair or a v row for rope_kv; linear_common.cuh). */
int64_t qp_linear_units(const struct qp_op_args *a);

/* mmv_stream's block geometry for `upb` units per block. */
struct qp_mmvs_geometry {
    int64_t units;   /* qp_linear_units */
    int64_t blocks;  /* ceil(units / upb) */
    int32_t nr;      /* weight rows per unit (2 for swiglu and rope_kv) */
    int64_t nchunk;  /* chunks of 32 sub-chunks per row */
    uint32_t wbytes; /* shared memory for the block's weight rows */
    size_t smem;     /* dynamic shared memory of a block */
};
/* Fills g for upb units per block and `tokens` tokens decoded together (launch.split; 0 counts as
 * 1), or says why the kernel cannot run so (too much shared memory, too many partial sums or copy
 * segments, too many tokens). */
enum qp_status qp_mmvs_geometry(const struct qp_op_args *a, int64_t upb, int32_t tokens, struct qp_mmvs_geometry *g,
                                struct qp_error *err);
/* The units per block mmv_stream takes by default: the fewest blocks whose rows fit the shared
 * memory budget, but at least `blocks_per_sm` blocks per SM of t so that a small matrix still
 * spreads over the whole GPU. 0 when no upb fits. */
int64_t qp_mmvs_default_upb(const struct qp_op_args *a, const struct qp_kernel_target *t, int blocks_per_sm);

#ifdef __cplusplus
}
#endif
