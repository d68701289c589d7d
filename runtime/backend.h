/* backend.h — the interface the executor (runtime/executor.c) drives: one table of hooks per
 * backend (runtime/backend_cpu.c: "cpu"; runtime/cuda/backend_cuda.cu: "cuda").
 *
 * What a backend owns: its memory (one arena of the plan's arena_bytes, holding every
 * activation buffer, the KV cache and the step state at the plan's offsets; one weight pool
 * when weights must be copied into its memory), its stream, and (optionally) a captured decode
 * graph. What it does not own: the plan, the GGUF mapping, the op args (the executor prepares
 * them once at load, with pointers into the backend's arena and weights) and the sampler.
 *
 * Life of a backend, as the executor calls it:
 *   init(cfg)                  one arena of cfg->arena_bytes, zero-filled; b->arena, b->step set
 *   if (!vt->host_memory):     weights_alloc(total) once, then upload(dst, src, n) per weight
 *                              part (src: the GGUF mmap, valid until weights_sync returns),
 *                              then weights_sync
 *   if (vt->host_memory):      the executor points weights straight into the GGUF mmap and
 *                              assembles stacked weights in host memory itself (no hook)
 *   per step:                  write(step state) when the host changed it; run(program) or replay(); read(next token / logits)
 *   free
 *
 * Guarantees every hook must give:
 *   - No allocation and no free after init/weights_alloc: nothing per token, nothing per chunk.
 *   - Errors return a status and fill err with one line; a failure while running a node names
 *     that node (program name, index, node name, op), e.g.
 *     "decode node 41 'blk.3.ffn_down' (linear): unsupported weight type Q2_K".
 *   - Pointers handed to hooks as "backend memory" are inside b->arena or the weight pool.
 *   - No CUDA type appears here: the stream is a void *; CUDA code casts it.
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

/* Alignment of the arena base, the weight pool base, and every weight placed in the pool. */
#define QP_BACKEND_ALIGN 256
/* Extra regions a backend hands out (alloc_extra). */
#define QP_BACKEND_MAX_EXTRA 4

/* What init needs to know. All sizes come from a validated plan. */
struct qp_backend_config {
    size_t arena_bytes;  /* the plan's arena total (activations + KV cache + step + scratch) */
    size_t step_offset;  /* arena offset of the struct qp_step (aligned to 16) */
    int32_t max_chunk;   /* tokens per prefill chunk: step->tokens has this many slots */
    int32_t device;      /* device ordinal (CUDA); ignored by the CPU backend */
    int32_t threads;     /* CPU ops' threads, the caller included, process-wide (the CPU
                            backend's init sets it); 0 = keep the process's count (one per
                            online processor unless set before); ignored by CUDA */
    bool use_graph;      /* false: --no-graph (replay falls back to eager run) */
    bool verbose;        /* print device memory totals etc. to stderr */
    bool sync_each;      /* --sync-each: synchronise after every node, so that an asynchronous
                            fault is reported against the node that caused it (CUDA) */
    bool profile;        /* --profile: device time of every node of eager runs, per op (CUDA) */
};

/* A program prepared for running: the executor builds it once at load. */
struct qp_backend_program {
    const char *name;              /* the plan program's name: "decode", "prefill", ... */
    int32_t n_nodes;
    struct qp_op_args *args;       /* [n_nodes], host memory; pointers into backend memory */
    const char *const *node_names; /* [n_nodes], for messages (the plan node's name) */
    bool capture;                  /* the plan marks this program for graph capture */
    int32_t *ran;                  /* [n_nodes]: the backend writes the enum qp_kernel it launched
                                      for each node when it runs or captures the program
                                      (QP_KERNEL_UNKNOWN: the CPU's reference op) */
};

struct qp_backend_vtbl;

/* A live backend. The executor reads these fields; only the backend writes them. */
struct qp_backend {
    const struct qp_backend_vtbl *vt;
    void *arena;           /* [arena_bytes] backend memory, QP_BACKEND_ALIGN-aligned, zeroed */
    size_t arena_bytes;
    struct qp_step *step;  /* arena + step_offset (backend memory: read/write it via hooks) */
    void *weights;         /* [weights_bytes] backend memory from weights_alloc; NULL before */
    size_t weights_bytes;
    void *stream;          /* cudaStream_t for CUDA, NULL for CPU: copied into qp_op_args */
    const qp_op_fn *ops;   /* [QP_OP_COUNT] the op functions this backend runs */
    int32_t sm, sms;       /* the device's compute capability x 10 and SMs (0: a CPU, which
                              runs every kernel with its op's reference function) */
    void *extra[QP_BACKEND_MAX_EXTRA]; /* regions from alloc_extra, [extra_bytes[i]] each */
    size_t extra_bytes[QP_BACKEND_MAX_EXTRA];
    const char *device_name; /* e.g. "NVIDIA H100 80GB HBM3", "cpu" */
    void *impl;            /* backend-private state */
};

struct qp_backend_vtbl {
    const char *name; /* "cpu", "cuda" */

    /* true: arena and weights are ordinary host memory, so the executor may point weights into
     * the GGUF mmap directly and read/write step state with plain loads (the hooks still work). */
    bool host_memory;

    /* Creates a backend with one zero-filled arena of cfg->arena_bytes. Fails with
     * QP_ERR_NOMEM (host) or QP_ERR_DEVICE (no device, not enough device memory: the message
     * gives bytes needed and free and suggests --device cpu). */
    enum qp_status (*init)(const struct qp_backend_config *cfg, struct qp_backend **out,
                           struct qp_error *err);

    /* Allocates the weight pool (b->weights, b->weights_bytes = bytes) once. May be NULL for a
     * host_memory backend. */
    enum qp_status (*weights_alloc)(struct qp_backend *b, size_t bytes, struct qp_error *err);

    /* Copies bytes from host src to backend memory dst (inside the weight pool), possibly
     * asynchronously: src must stay valid until weights_sync returns. */
    enum qp_status (*upload)(struct qp_backend *b, void *dst, const void *src, size_t bytes,
                             struct qp_error *err);

    /* Waits for every upload. After it, runs may start. */
    enum qp_status (*weights_sync)(struct qp_backend *b, struct qp_error *err);

    /* Runs every node of prog in order, eagerly, with the args exactly as prepared (the executor
     * sets each node's n_tok and, for last-row nodes, its in0/in1 before the call). Synchronous
     * for the caller: when it returns QP_OK, the results are readable with read(). */
    enum qp_status (*run)(struct qp_backend *b, const struct qp_backend_program *prog,
                          struct qp_error *err);

    /* Decode graph: replay prog (n_tok = 1) from a captured graph, capturing it on the first
     * call after a warm-up eager run. Same contract as run. NULL when unsupported (CPU): the
     * executor then calls run. With cfg.use_graph false, an implementation runs eagerly. */
    enum qp_status (*replay)(struct qp_backend *b, const struct qp_backend_program *prog,
                             struct qp_error *err);

    /* Copies bytes from backend memory src to host dst; waits for the work before it. */
    enum qp_status (*read)(struct qp_backend *b, void *dst, const void *src, size_t bytes,
                           struct qp_error *err);

    /* Copies bytes from host src to backend memory dst (step state, token ids) in stream
     * order: visible to the next run/replay. src may be reused when it returns. */
    enum qp_status (*write)(struct qp_backend *b, void *dst, const void *src, size_t bytes,
                            struct qp_error *err);

    /* --- for qplan tune (runtime/tune.c); no per-token path uses them --- */

    /* Runs the one op a (pointers into backend memory) reps times after warming it up and sets *us
     * to the device time of one run: the median of three batches of reps. Synchronous. */
    enum qp_status (*time_op)(struct qp_backend *b, const struct qp_op_args *a, int reps, double *us,
                              struct qp_error *err);

    /* Another region of backend memory of bytes (zeroed), owned by the backend until free: the
     * tuner's arena snapshot and scratch. At most QP_BACKEND_MAX_EXTRA regions. */
    enum qp_status (*alloc_extra)(struct qp_backend *b, size_t bytes, void **out, struct qp_error *err);

    /* Copies bytes within backend memory (arena, weights, extra regions) in stream order and waits. */
    enum qp_status (*copy)(struct qp_backend *b, void *dst, const void *src, size_t bytes,
                           struct qp_error *err);

    /* Releases everything init, weights_alloc and alloc_extra made; NULL is fine. */
    void (*free)(struct qp_backend *b);
};

/* The CPU backend (runtime/backend_cpu.c): plain C ops from qp_cpu_ops, host memory. */
extern const struct qp_backend_vtbl qp_backend_cpu;

#ifdef QP_HAVE_CUDA_BACKEND
/* The CUDA backend (the .cu files of runtime/cuda/). runtime/CMakeLists.txt defines QP_HAVE_CUDA_BACKEND
 * when CUDA is built and runtime/cuda/ has sources. */
extern const struct qp_backend_vtbl qp_backend_cuda;
#endif

/* The median of three timings (time_op). */
static inline double qp_backend_median3(const double t[3]) {
    const double lo = t[0] < t[1] ? t[0] : t[1], hi = t[0] < t[1] ? t[1] : t[0];
    return t[2] < lo ? lo : t[2] > hi ? hi : t[2];
}

/* The backend named name ("cpu", "cuda"); NULL when unknown or not built. */
const struct qp_backend_vtbl *qp_backend_find(const char *name);

#ifdef __cplusplus
}
#endif
