/* qp_plan.h — the in-memory execution plan: what `qplan compile` builds and writes as YAML,
 * what `qrun` reads back, validates and executes. docs/plan-format.md describes the YAML
 * field by field; this header is the same model in C.
 *
 * Ownership: a struct qp_plan owns every string and array it points to; qp_plan_free()
 * releases all of it. Cross references inside a plan (node → buffer, node → weight) are
 * indices into the plan's arrays, resolved from names by the reader; -1 means "none".
 *
 * Memory model. One arena of `memory.arena_bytes` bytes (256-byte aligned offsets) holds, at
 * plan-given offsets: the step state (struct qp_step, tokens[max_chunk]), the KV cache, every
 * activation buffer and every node's scratch. Weights are not in the arena: the runtime binds
 * each plan weight to the bytes of its GGUF tensor(s) (stacking the rows of several tensors
 * when `from` names more than one). Buffers whose lifetimes (first to last use, in program
 * order, per program) do not overlap may share arena bytes; the validator checks that no two
 * buffers live at the same node overlap, and that a node's scratch overlaps no live buffer.
 *
 * Programs. Each program runs chunks of min_tok..max_tok tokens; the ranges of a plan's programs
 * are disjoint and cover 1..limits.max_chunk, so the runtime runs a chunk of n tokens with the one
 * program whose range holds n (the compiler writes `decode` for 1 token, captured once into a
 * CUDA graph, `prefill_small` for chunks short enough for the matvec kernels, and `prefill`).
 * Every program reads position, token ids and n_tok from the step state. A node with rows =
 * QP_PLAN_ROWS_LAST runs on the last token row only: the runtime passes in0 (and in1) advanced
 * to row n_tok-1 and n_tok = 1 (used for the final norm and LM head of prefill, whose other rows
 * nobody reads).
 *
 * Kernels. A node's `kernel` names one kernel of the target backend's registry
 * (include/qp_kernels.h) and `launch` its launch shape; the backend runs exactly that, and a
 * name it does not know, or a kernel that cannot run the node, is a load error.
 *
 * How a node fills struct qp_op_args (include/qp_ops.h):
 *   in0/in1  = arena + buffers[in[0]/in[1]].offset (advanced to the last row for ROWS_LAST)
 *   out      = arena + buffers[out].offset; in_w = buffers[in[0]].cols; out_w = buffers[out].cols
 *   w[i]     = weights[weights[i]] bound to device memory; bias[i] = weights[bias[i]] (f32)
 *   norm     = weights[norm] (f32 [in_w]); eps, n_head, n_head_kv, head_dim, rope_base = params
 *   kv       = k: arena + kv.k_offset + layer * kv.layer_stride, v likewise from v_offset;
 *              type, ctx, kv_dim from kv_cache
 *   scratch  = arena + scratch_offset, scratch_bytes; launch = launch
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qp_gguf.h"
#include "qp_ops.h"
#include "qp_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QP_PLAN_VERSION 3
#define QP_PLAN_ALIGNMENT 256 /* arena offsets: enough for any vector load and cuBLAS */
#define QP_PLAN_MAX_IN 2


/* The GGUF file a plan was compiled from. header_hash = qp_gguf_header_hash(). */
struct qp_plan_model {
    char *file;           /* file name as given to the compiler (base name) */
    uint64_t size;        /* bytes of the file */
    uint64_t header_hash; /* FNV-1a 64 of the header and tensor table */
};

/* Hyperparameters, for reading and for the validator's width checks. */
struct qp_plan_hparams {
    char *arch;          /* general.architecture, e.g. "qwen2" */
    int64_t n_vocab;     /* rows of the LM head */
    int64_t n_embd;      /* residual stream width */
    int64_t n_layer;
    int64_t n_ff;        /* FFN hidden width */
    int64_t n_head;
    int64_t n_head_kv;   /* n_head % n_head_kv == 0 (GQA) */
    int64_t head_dim;    /* even (NEOX RoPE pairs) */
    int64_t n_ctx_train; /* trained context; limits.max_ctx <= this */
    double rope_base;
    double eps;          /* RMSNorm epsilon */
};

struct qp_plan_limits {
    int64_t max_ctx;   /* positions the KV cache holds */
    int64_t max_chunk; /* tokens per prefill step (rows of the activation buffers) */
};

struct qp_plan_memory {
    uint64_t alignment;    /* QP_PLAN_ALIGNMENT */
    uint64_t arena_bytes;  /* the whole arena: step state + KV cache + buffers + scratch */
    uint64_t kv_bytes;     /* the KV cache's share of the arena */
    uint64_t weight_bytes; /* sum of the plan weights' bytes (bound outside the arena) */
};

/* The step state region: struct qp_step + struct qp_step_row rows[max_chunk] (include/qp_ops.h). */
struct qp_plan_step {
    uint64_t offset;
    uint64_t bytes; /* >= QP_STEP_HEADER_BYTES + QP_STEP_ROW_BYTES * max_chunk */
};

/* KV cache: for layer l, K is [slots][ctx][kv_dim] of type at k_offset + l * layer_stride, V
 * likewise at v_offset + l * layer_stride; slot s is one sequence's [ctx][kv_dim] region.
 * kv_bytes = 2 * n_layer * slots * ctx * kv_dim * sizeof(type). */
struct qp_plan_kv {
    int32_t type;          /* QP_GGML_F16 or QP_GGML_F32 */
    int64_t n_layer;
    int64_t slots;         /* sequences (qplan compile --slots), each its own region */
    int64_t ctx;           /* == limits.max_ctx: positions per slot */
    int64_t kv_dim;        /* n_head_kv * head_dim */
    uint64_t k_offset;
    uint64_t v_offset;
    uint64_t layer_stride; /* >= slots * ctx * kv_dim * sizeof(type) */
};

/* A weight as the kernels see it: rows x cols of one GGML type in GGUF layout. Vectors (norm
 * weights, biases) are rows = 1. from[] lists the GGUF tensors whose rows are stacked, in
 * order, to make it (one entry: the tensor itself); all share type and cols; part_rows[j] is
 * the rows of from[j] (a vector source counts as its ne[0] entries when stacked: biases are
 * stacked end to end, rows = 1, cols = sum). A node that names a stacked weight gets one op
 * part per source, views into the contiguous stacked rows (see qp_plan_node_parts). */
struct qp_plan_weight {
    char *name;    /* unique in the plan; the GGUF name when from has one entry */
    int32_t type;  /* enum qp_ggml_type */
    int64_t rows;  /* sum of the source tensors' rows (GGUF ne[1]; 1 for a vector) */
    int64_t cols;  /* GGUF ne[0], a multiple of the type's block size */
    uint64_t bytes;/* rows * row_bytes(type, cols) */
    int32_t n_from;
    char **from;   /* [n_from] GGUF tensor names */
    int64_t *part_rows; /* [n_from] rows (cols for a stacked vector) of each source */
    int line;      /* YAML line (1-based) it was read from; 0 when built in memory */
};

/* An activation buffer in the arena: rows x cols of dtype, row-major. */
struct qp_plan_buffer {
    char *name;
    int32_t dtype;   /* QP_GGML_F32 (activations) */
    int64_t rows;    /* max_chunk for per-token activations, 1 for last-row-only buffers */
    int64_t cols;
    uint64_t offset; /* multiple of memory.alignment */
    uint64_t bytes;  /* rows * cols * sizeof(dtype) */
    int line;
};

enum qp_plan_rows {
    QP_PLAN_ROWS_ALL,  /* the node runs on all n_tok rows */
    QP_PLAN_ROWS_LAST, /* only on row n_tok - 1 (see the file comment) */
};

/* Op parameters; an op reads the ones its qp_ops.h comment names, the rest are 0 / -1. */
struct qp_plan_params {
    double eps;        /* rms_norm, rms_norm prologue */
    int64_t n_head;    /* rope: heads rotated in this buffer; attention, rope_kv: query heads */
    int64_t n_head_kv; /* attention, rope_kv */
    int64_t head_dim;  /* rope, attention, rope_kv */
    double rope_base;  /* rope, rope_kv */
    int64_t layer;     /* kv_write, attention, rope_kv: KV cache layer; -1 otherwise */
};

struct qp_plan_node {
    enum qp_op op;
    char *kernel;                      /* a kernel of the registry, e.g. "mmv_stream", "gemm" */
    int32_t n_in;
    int32_t in[QP_PLAN_MAX_IN];        /* buffer indices */
    int32_t out;                       /* buffer index; -1 for kv_write, argmax, step_advance */
    int32_t n_weights;
    int32_t weights[QP_OP_MAX_PARTS];  /* weight indices: the parts, stacked along rows */
    int32_t n_bias;                    /* 0 or n_weights */
    int32_t bias[QP_OP_MAX_PARTS];     /* weight indices (f32 vectors), one per part */
    int32_t norm;                      /* weight index (rms_norm, rms_norm prologue) or -1 */
    enum qp_prologue prologue;
    enum qp_epilogue epilogue;
    enum qp_plan_rows rows;
    struct qp_plan_params params;
    struct qp_launch launch;           /* the kernel's launch shape (qp_kernels.h) */
    uint64_t scratch_offset;           /* arena offset, aligned; 0 with scratch_bytes 0 */
    uint64_t scratch_bytes;
    int line;
};

struct qp_plan_program {
    char *name;                   /* unique in the plan: "decode", "prefill_small", "prefill",
                                     "batch_4", ... */
    int32_t min_tok, max_tok;     /* runs steps of min_tok..max_tok rows */
    bool batch;                   /* false: a chunk of one sequence's consecutive tokens; true: a
                                     batch, one token of each of min_tok..max_tok sequences */
    bool capture;                 /* replayed from a CUDA graph (min_tok == max_tok) */
    int32_t n_nodes;
    struct qp_plan_node *nodes;   /* [n_nodes], in execution order */
    int line;
};

/* Where the reader found a top-level section or a field of a flat section: path "hparams",
 * "hparams.eps", "kv_cache.ctx", ... (see qp_plan_line). */
struct qp_plan_line {
    char path[32];
    int line; /* YAML line, 1-based */
};

/* What the plan's kernels and launch shapes were chosen for. */
struct qp_plan_target {
    char *backend; /* "cuda" (the CPU backend runs any plan with its reference ops) */
    int32_t sm;    /* compute capability x 10, e.g. 90 for sm_90 (H100, H200) */
    int32_t sms;   /* streaming multiprocessors the grids were sized for */
    char *card;    /* the card qplan tune measured the choices on (NULL: not tuned) */
};

struct qp_plan {
    int32_t version; /* QP_PLAN_VERSION */
    struct qp_plan_target target;
    int32_t n_passes;
    char **passes;   /* [n_passes] the compiler's fusion passes that ran, in order */
    struct qp_plan_model model;
    struct qp_plan_hparams hparams;
    struct qp_plan_limits limits;
    struct qp_plan_memory memory;
    struct qp_plan_step step;
    struct qp_plan_kv kv;
    int32_t n_weights;
    struct qp_plan_weight *weights; /* [n_weights] */
    int32_t n_buffers;
    struct qp_plan_buffer *buffers; /* [n_buffers] */
    int32_t n_programs;
    struct qp_plan_program *programs; /* [n_programs] */
    char *source;                   /* path it was read from (messages); NULL when built */
    int32_t n_lines;
    struct qp_plan_line *lines;     /* [n_lines] the sections' and flat fields' lines; NULL when
                                       built in memory */
};

/* The program that runs a chunk of n tokens of one sequence (batch false), or a batch of n
 * sequences (batch true); -1 when none does. */
int32_t qp_plan_find_program(const struct qp_plan *p, int64_t n, bool batch);
/* The program named name; -1 when absent. */
int32_t qp_plan_program_by_name(const struct qp_plan *p, const char *name);
/* The YAML line of a top-level section ("passes", "hparams", ...) or of a field of a flat section
 * ("hparams.rope_base", "limits.max_ctx", "kv_cache.type", ...), for messages that name where a
 * value came from; a field's section line when the field has none, 0 when neither is known (a
 * plan built in memory). */
int qp_plan_line(const struct qp_plan *p, const char *path);
/* Name of a node's rows mode: "all", "last". */
const char *qp_plan_rows_name(enum qp_plan_rows r);

/* An empty plan (all zero, indices -1 where that means none). Free with qp_plan_free. */
struct qp_plan *qp_plan_new(void);
void qp_plan_free(struct qp_plan *p); /* NULL is fine */

/* One op part of a node: rows [row0, row0 + rows) of plan weight `weight` (for a stacked
 * vector: entries [row0, row0 + rows) of its single row). */
struct qp_plan_part {
    int32_t weight;
    int64_t row0;
    int64_t rows;
};

/* The op parts of a node's weights (bias = false) or biases (bias = true), in order: every
 * plan weight named by the node contributes one part per source tensor. Returns the number of
 * parts, or -1 when they would exceed QP_OP_MAX_PARTS. The runtime fills qp_op_args.w[] and
 * bias[] from these; the validator checks the op's part rules on them. */
int qp_plan_node_parts(const struct qp_plan *p, const struct qp_plan_node *n, bool bias,
                       struct qp_plan_part out[QP_OP_MAX_PARTS]);

/* Find by name; -1 when absent. */
int32_t qp_plan_find_weight(const struct qp_plan *p, const char *name);
int32_t qp_plan_find_buffer(const struct qp_plan *p, const char *name);

/* Reads a plan from a YAML file (core/plan_read.c). Checks the syntax and the types of
 * every field, refuses unknown and missing keys, and resolves names (ops via the op table,
 * buffers, weights). Does NOT check the plan's consistency: call qp_plan_validate. On failure
 * returns QP_ERR_IO / QP_ERR_FORMAT with "path:line: what" in err and leaves *out NULL. */
enum qp_status qp_plan_read(const char *path, struct qp_plan **out, struct qp_error *err);
/* Same from bytes in memory; name is used in messages. */
enum qp_status qp_plan_read_memory(const char *text, size_t len, const char *name,
                                   struct qp_plan **out, struct qp_error *err);

/* Checks a plan on its own (core/plan_validate.c): version, limits, step state and KV
 * cache geometry, weight and buffer sizes, every region inside the arena and aligned, no two
 * buffers live at the same node overlapping (nor a node's scratch with a live buffer), no
 * buffer read before it is written, every op's operands, weights, widths and params
 * consistent with its op, launch params in range, memory totals equal to their sums.
 * QP_ERR_INVALID with "source:line: what" on the first problem. */
enum qp_status qp_plan_validate(const struct qp_plan *p, struct qp_error *err);

/* Checks a plan against the GGUF it claims to come from: file size and header hash, and
 * every plan weight's source tensors present with the plan's type, cols and summed rows.
 * QP_ERR_INVALID with a message naming both files on the first mismatch. */
enum qp_status qp_plan_check_model(const struct qp_plan *p, const struct qp_gguf *g,
                                   struct qp_error *err);

/* Writes the plan as YAML (core/plan_write.c) with libyaml's emitter, deterministically,
 * atomically: a temporary file in the same directory, fsync, rename. On failure nothing is
 * left at path (nor the temporary file). */
enum qp_status qp_plan_write(const struct qp_plan *p, const char *path, struct qp_error *err);
/* Same into a malloc'd NUL-terminated string (*out, *len); the caller frees *out. */
enum qp_status qp_plan_write_memory(const struct qp_plan *p, char **out, size_t *len,
                                    struct qp_error *err);

#ifdef __cplusplus
}
#endif
