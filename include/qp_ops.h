/* qp_ops.h — the op table: the contract between the compiler (which emits nodes by op name),
 * the runtime (which binds a node's buffers and weights into a struct qp_op_args and calls the
 * backend's function for the op) and the backends (kernels/cpu/, kernels/cuda/).
 *
 * Activations are f32, row-major, contiguous: a buffer of "[n][w]" holds n token rows of w
 * floats. Weights stay in their GGUF layout: row r of a weight of `rows` x `cols` (GGUF ne[1] x
 * ne[0]) is row_bytes bytes at data + r * row_bytes, in blocks of its type. A linear op computes
 * out[t][r] = sum_c W[r][c] * x[t][c] (+ bias[r]) — x times W transposed.
 *
 * Dynamic values live in the step state (struct qp_step), in the backend's memory, so a captured
 * graph replays unchanged: a step is n_tok rows, each a token of one sequence with its position
 * and its sequence's slot (KV region); kernels read them from the rows, argmax writes each row's
 * next token there, step_advance moves the rows on. A chunk of one sequence (prefill) is rows of
 * consecutive positions in one slot; a batch is one row per sequence.
 *
 * Every op function: returns QP_OK, or a status with a message (shape mismatch, unsupported
 * type). CPU functions run synchronously; CUDA functions enqueue on args->stream and never
 * synchronise, allocate or read device memory from the host (they run inside graph capture).
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "qp_status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum qp_op {
    QP_OP_EMBED,        /* out[t] = dequant(w[0] row step->rows[t].token);    out [n][dim]     */
    QP_OP_RMS_NORM,     /* out[t] = in0[t] / rms(in0[t]) * norm;              out [n][in_w]    */
    QP_OP_LINEAR,       /* out = epilogue(W · prologue(in0) + bias), see enum qp_epilogue     */
    QP_OP_ROPE,         /* in place on out [n][n_head*head_dim], NEOX pairs, at rows[t].pos    */
    QP_OP_KV_WRITE,     /* cache[slot][pos] = in0[t] (K), in1[t] (V) of row t; [n][kv_dim]    */
    QP_OP_ATTENTION,    /* out[t] = causal GQA attention of in0[t] (q) over cache[slot][0..pos]*/
    QP_OP_SWIGLU,       /* out = silu(in0) * in1                              [n][w]           */
    QP_OP_ADD,          /* out = in0 + in1                                    [n][w]           */
    QP_OP_ARGMAX,       /* step->rows[t].next = argmax of in0[t], every row     [n][vocab]   */
    QP_OP_STEP_ADVANCE, /* the rows move on: each output's token is its next (qp_step)         */
    QP_OP_COUNT
};

enum qp_prologue {
    QP_PROLOGUE_NONE,
    QP_PROLOGUE_RMS_NORM, /* fusion 1: x' = x / rms(x) * norm (eps) before the product */
};

enum qp_epilogue {
    QP_EPILOGUE_NONE,     /* out [n][rows_total] = W x + b                                    */
    QP_EPILOGUE_RESIDUAL, /* fusion 4: out = in1 + W x + b (in1 may equal out: in place)       */
    QP_EPILOGUE_SWIGLU,   /* fusion 3: parts (gate, up) of R rows each: out [n][R] = silu(g)*u */
    QP_EPILOGUE_ROPE_KV,  /* fusion 2: parts (q, k, v) with biases; RoPE on q and k; k and v
                             written to the cache at pos+t; out [n][n_head*head_dim] = q      */
    QP_EPILOGUE_ARGMAX,   /* fusion 5: out [n][rows] = logits; step->rows[t].next = argmax of
                             out[t], every row (first index wins ties)                         */
};

/* One weight matrix (or vector: rows = 1) in GGUF layout. */
struct qp_weight {
    int32_t type;     /* enum qp_ggml_type */
    const void *data; /* [rows][row_bytes], in the backend's memory */
    int64_t rows;     /* GGUF ne[1] */
    int64_t cols;     /* GGUF ne[0], a multiple of the type's block size */
    size_t row_bytes;
};

/* One row of a step: a token of one sequence. */
struct qp_step_row {
    int32_t token; /* its id */
    int32_t pos;   /* its position in its sequence: where its K and V go, what it attends to */
    int32_t slot;  /* its sequence's KV region, 0 .. kv.slots-1; < 0: a padding row of a batch
                      (its K and V are not written, its attention output is 0) */
    int32_t next;  /* row t of an argmax's input: the token picked from it */
};

/* The step state, at the plan's offset in the arena.
 * step_advance: when n_out == n_tok (a batch: every row is its sequence's newest token), each row
 * becomes {next, pos + 1, slot}; when n_out == 1 (a chunk of one sequence), the step becomes one
 * row {rows[0].next, rows[n_tok-1].pos + 1, rows[n_tok-1].slot, next -1} (the chunk's argmax ran
 * on its last row only, so its token is rows[0].next; -1: the next token is not known yet). */
struct qp_step {
    int32_t n_tok;             /* rows in this step */
    int32_t n_out;             /* n_tok (a batch) or 1 (a chunk of one sequence) */
    int32_t reserved[2];
    struct qp_step_row rows[]; /* [max_chunk] */
};
#define QP_STEP_ROW_BYTES 16
#define QP_STEP_HEADER_BYTES 16

/* One layer's KV cache: k and v are [slots][ctx][kv_dim] of type (F16 or F32); a row's slot
 * selects its sequence's [ctx][kv_dim] region. */
struct qp_kv_ref {
    void *k;
    void *v;
    int32_t type;   /* QP_GGML_F16 or QP_GGML_F32 */
    int64_t ctx;    /* positions per slot; ops fail (CPU) / never write (CUDA) past it */
    int64_t kv_dim; /* n_head_kv * head_dim */
    int64_t slots;  /* sequences' regions */
};

/* Launch parameters of a node's kernel: plan data, chosen by the compiler (or qplan tune) and
 * checked against the kernel at load (include/qp_kernels.h says what each kernel reads). */
struct qp_launch {
    int32_t block;          /* threads per block */
    int32_t rows_per_block; /* output units per block (matvec), rows per chunk (gemm), query rows
                               per block (prefill attention); 0 where the kernel has none */
    int32_t split;          /* warps per row (mmv), blocks (mmv_argmax), tokens decoded together
                               (mmv_stream, mmv_batch), chunks (gemm, attention) */
    int32_t grid;           /* most blocks of the launch (mmv; 0: one unit per warp) */
    int32_t pdl;            /* 1: launched with programmatic dependent launch (sm_90), may start
                               before the previous kernel ends; 0: ordinary stream order */
};

#ifdef __cplusplus
static_assert(sizeof(struct qp_step_row) == QP_STEP_ROW_BYTES, "a step row crosses host and device as 16 bytes");
static_assert(sizeof(struct qp_step) == QP_STEP_HEADER_BYTES, "the step header is 16 bytes");
#else
_Static_assert(sizeof(struct qp_step_row) == QP_STEP_ROW_BYTES, "a step row crosses host and device as 16 bytes");
_Static_assert(sizeof(struct qp_step) == QP_STEP_HEADER_BYTES, "the step header is 16 bytes");
#endif

#define QP_OP_MAX_PARTS 3

/* Everything an op reads. Each op uses the fields its enum comment names; the rest are 0. */
struct qp_op_args {
    enum qp_op op;
    int32_t kernel;         /* enum qp_kernel (include/qp_kernels.h): the plan's kernel for the node */
    int32_t batch;          /* 1: the rows are tokens of different sequences (a batch program);
                               0: consecutive tokens of one sequence (a chunk) */
    int32_t n_tok;          /* activation rows: 1 for decode, the chunk size for prefill */
    struct qp_step *step;   /* backend memory */

    const float *in0;       /* [n][in_w] */
    const float *in1;       /* second operand / residual: [n][out_w] (or [n][w] for swiglu/add) */
    float *out;             /* [n][out_w] */
    int64_t in_w;
    int64_t out_w;

    int32_t n_parts;                            /* weight parts, stacked along rows */
    struct qp_weight w[QP_OP_MAX_PARTS];
    const float *bias[QP_OP_MAX_PARTS];         /* f32 [w[i].rows] or NULL */
    enum qp_prologue prologue;
    enum qp_epilogue epilogue;
    const float *norm;                          /* f32 [in_w] (rms_norm, prologue) */
    float eps;

    int32_t n_head, n_head_kv, head_dim;        /* rope, attention, rope_kv */
    float rope_base;
    struct qp_kv_ref kv;                        /* kv_write, attention, rope_kv */

    void *scratch;                              /* per-node scratch in the arena (backend memory) */
    size_t scratch_bytes;
    struct qp_launch launch;
    void *stream;                               /* cudaStream_t for CUDA, NULL for CPU */
    void *blas;                                 /* cublasHandle_t for CUDA (the gemm kernel),
                                                   owned by the backend; NULL for CPU */
};

typedef enum qp_status (*qp_op_fn)(const struct qp_op_args *a, struct qp_error *err);

/* Plan-facing description of an op (core/op_table.c). */
struct qp_op_desc {
    enum qp_op op;
    const char *name; /* as written in plans: "embed", "rms_norm", "linear", ... */
};

const struct qp_op_desc *qp_op_desc(enum qp_op op);           /* NULL when out of range */
const struct qp_op_desc *qp_op_find(const char *name);        /* NULL when unknown */
const char *qp_prologue_name(enum qp_prologue p);             /* "none", "rms_norm"; NULL when out of range */
const char *qp_epilogue_name(enum qp_epilogue e);             /* "none", "residual", ...; NULL when out of range */
int qp_prologue_from_name(const char *name);                  /* -1 when unknown */
int qp_epilogue_from_name(const char *name);                  /* -1 when unknown */

/* Backends: a function per op, indexed by enum qp_op. */
extern const qp_op_fn qp_cpu_ops[QP_OP_COUNT];  /* kernels/cpu/ */
#ifdef QP_HAVE_CUDA
extern const qp_op_fn qp_cuda_ops[QP_OP_COUNT]; /* kernels/cuda/ */
#endif

#ifdef __cplusplus
}
#endif
