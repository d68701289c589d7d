/* backend_cuda.cu — the CUDA backend (qp_backend_cuda, runtime/backend.h): device memory, the
 * stream, the cuBLAS handle, weight upload, eager runs and the captured decode graph.
 *
 * Owns, all made in init / weights_alloc and released in free (nothing per token or chunk):
 *   - one cudaMalloc'd arena of the plan's arena_bytes (zeroed): activations, KV cache, step
 *     state and per-node scratch at the plan's offsets;
 *   - one cudaMalloc'd weight pool (weights_alloc), filled by upload from two pinned staging
 *     buffers used in turn (the host copies into one while the other's DMA runs);
 *   - one non-blocking stream, one cuBLAS handle bound to it, passed to every op as args.blas;
 *     its workspace is not ours to hold: each GEMM node sets its own, in the node's scratch in
 *     the arena (kernels/cuda/gemm.cu), so cuBLAS never allocates one;
 *   - two small pinned bounce buffers for read (results, next token) and write (step state);
 *   - the decode graph: captured once, after one warm-up eager run, then launched per token.
 *
 * Error reporting: every CUDA / cuBLAS call goes through CK / CKB, which name the statement,
 * file and line, and (inside a program) the node: "<program> node <i> '<name>' (<op>)". A run
 * checks cudaGetLastError after each node; --sync-each (cfg.sync_each) also synchronises after each
 * node, so that an asynchronous fault is reported against the node that caused it.
 *
 * Host-side code only (no kernels here): the ops are kernels/cuda/ (qp_cuda_ops).
 */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "qp_cuda.h"
#include "qp_ops.h"

#define STAGING_BYTES ((size_t)8 << 20)     /* each of the two pinned upload buffers */
#define READ_BOUNCE_BYTES ((size_t)1 << 20) /* pinned; larger reads go in pieces */
#define WRITE_BOUNCE_BYTES ((size_t)64 << 10)

struct cuda_impl {
    int device;
    bool use_graph, verbose, sync_each;
    cudaStream_t stream;
    cublasHandle_t blas;
    /* upload: two pinned buffers used in turn */
    void *staging[2];
    cudaEvent_t staging_free[2]; /* recorded after the last copy out of the buffer */
    bool staging_pending[2];
    int cur;
    size_t fill;
    /* pinned bounce buffers */
    void *rd, *wr;
    cudaEvent_t wr_free;
    bool wr_pending;
    /* decode graph */
    cudaGraphExec_t exec;
    const struct qp_backend_program *graph_prog; /* the program the graph was captured from */
    int32_t graph_nodes;
    bool warmed; /* one eager replay done (modules loaded, kernels checked) */
    /* memory accounting: cudaMemGetInfo's free bytes after each step (verbose prints deltas) */
    size_t total_mem, free_at_start, free_after_init;
    size_t free_after_arena, free_after_stream, free_after_blas, free_after_weights;
    /* --profile: device time of each node of eager runs (events), printed per run */
    bool profile;
    char name[256];
    int cc_major, cc_minor, sms;
};

static struct cuda_impl *impl_of(struct qp_backend *b) { return (struct cuda_impl *)b->impl; }

/* "where" is "" outside a program, or "decode node 41 'name' (linear): ". */
static enum qp_status cuda_fail(struct qp_error *err, const char *where, const char *file, int line,
                                const char *stmt, cudaError_t e) {
    return qp_error_set(err, QP_ERR_DEVICE, "%scuda backend: %s:%d: %s: %s (%s)", where, file, line,
                        stmt, cudaGetErrorString(e), cudaGetErrorName(e));
}

#define CKW(where, stmt)                                                                       \
    do {                                                                                       \
        cudaError_t ck_e_ = (stmt);                                                            \
        if (ck_e_ != cudaSuccess) return cuda_fail(err, (where), __FILE__, __LINE__, #stmt, ck_e_); \
    } while (0)
#define CK(stmt) CKW("", stmt)
#define CKB(stmt)                                                                              \
    do {                                                                                       \
        cublasStatus_t ck_s_ = (stmt);                                                         \
        if (ck_s_ != CUBLAS_STATUS_SUCCESS)                                                    \
            return qp_error_set(err, QP_ERR_DEVICE, "cuda backend: %s:%d: %s: cuBLAS %s", __FILE__, \
                                __LINE__, #stmt, cublasGetStatusString(ck_s_));                 \
    } while (0)

static double mib(size_t n) { return (double)n / (1024.0 * 1024.0); }

static bool in_range(const void *p, size_t n, const void *base, size_t size) {
    const char *c = (const char *)p, *lo = (const char *)base;
    return base && c >= lo && (size_t)(c - lo) <= size && n <= size - (size_t)(c - lo);
}

static bool backend_memory(const struct qp_backend *b, const void *p, size_t n) {
    if (in_range(p, n, b->arena, b->arena_bytes) || in_range(p, n, b->weights, b->weights_bytes)) return true;
    for (int i = 0; i < QP_BACKEND_MAX_EXTRA; i++)
        if (in_range(p, n, b->extra[i], b->extra_bytes[i])) return true;
    return false;
}

static void cuda_free(struct qp_backend *b);

static enum qp_status cuda_init_impl(const struct qp_backend_config *cfg, struct qp_backend *b,
                                     struct cuda_impl *m, struct qp_error *err) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0)
        return qp_error_set(err, QP_ERR_DEVICE, "no CUDA device (%s); run with --device cpu",
                            e != cudaSuccess ? cudaGetErrorString(e) : "cudaGetDeviceCount found 0");
    if (cfg->device < 0 || cfg->device >= n)
        return qp_error_set(err, QP_ERR_DEVICE, "CUDA device %d does not exist (%d present); run with --device cpu",
                            cfg->device, n);
    m->device = cfg->device;
    CK(cudaSetDevice(m->device));
    CK(cudaFree(0)); /* create the context now, so that free memory below excludes it */
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, m->device));
    snprintf(m->name, sizeof m->name, "%s", prop.name);
    m->cc_major = prop.major;
    m->cc_minor = prop.minor;
    m->sms = prop.multiProcessorCount;
    b->sm = prop.major * 10 + prop.minor;
    b->sms = prop.multiProcessorCount;
    b->device_name = m->name;
    CK(cudaMemGetInfo(&m->free_at_start, &m->total_mem));
    if (cfg->arena_bytes > m->free_at_start)
        return qp_error_set(err, QP_ERR_DEVICE,
                            "not enough device memory on %s: the arena needs %zu bytes, "
                            "%zu of %zu are free; compile the plan with a smaller context, or run with --device cpu",
                            m->name, cfg->arena_bytes, m->free_at_start, m->total_mem);
    size_t tot;
    CK(cudaMalloc(&b->arena, cfg->arena_bytes));
    CK(cudaMemset(b->arena, 0, cfg->arena_bytes));
    b->arena_bytes = cfg->arena_bytes;
    b->step = (struct qp_step *)((char *)b->arena + cfg->step_offset);
    CK(cudaMemGetInfo(&m->free_after_arena, &tot));
    CK(cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking));
    b->stream = m->stream;
    CK(cudaMemGetInfo(&m->free_after_stream, &tot));
    /* cublasCreate allocates a default workspace pool, measured 64 MiB on an H100 (bench_gemm),
     * that this program never uses: every GEMM node sets its own workspace in the arena
     * (kernels/cuda/gemm.cu). CUBLAS_WORKSPACE_CONFIG (cuBLAS's documented knob, read when the
     * handle is made) shrinks the pool to 8 x 16 KiB, unless the user has set it. */
    setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8", 0);
    CKB(cublasCreate(&m->blas));
    CKB(cublasSetStream(m->blas, m->stream));
    CK(cudaMemGetInfo(&m->free_after_blas, &tot));
    for (int i = 0; i < 2; i++) {
        CK(cudaHostAlloc(&m->staging[i], STAGING_BYTES, cudaHostAllocDefault));
        CK(cudaEventCreateWithFlags(&m->staging_free[i], cudaEventDisableTiming));
    }
    CK(cudaHostAlloc(&m->rd, READ_BOUNCE_BYTES, cudaHostAllocDefault));
    CK(cudaHostAlloc(&m->wr, WRITE_BOUNCE_BYTES, cudaHostAllocDefault));
    CK(cudaEventCreateWithFlags(&m->wr_free, cudaEventDisableTiming));
    CK(cudaDeviceSynchronize()); /* the memset: the arena is zero when init returns */
    CK(cudaMemGetInfo(&m->free_after_init, &tot));
    return QP_OK;
}

static enum qp_status cuda_init(const struct qp_backend_config *cfg, struct qp_backend **out,
                                struct qp_error *err) {
    *out = NULL;
    if (cfg->arena_bytes == 0 || cfg->step_offset % 16 != 0 || cfg->max_chunk < 1 ||
        cfg->step_offset + sizeof(struct qp_step) + (size_t)cfg->max_chunk * sizeof(int32_t) >
            cfg->arena_bytes)
        return qp_error_set(err, QP_ERR_INVALID,
                            "cuda backend: step state at offset %zu (+%d tokens) does not fit the "
                            "arena of %zu bytes",
                            cfg->step_offset, cfg->max_chunk, cfg->arena_bytes);
    if ((size_t)cfg->max_chunk * sizeof(int32_t) + sizeof(struct qp_step) > WRITE_BOUNCE_BYTES)
        return qp_error_set(err, QP_ERR_INVALID, "cuda backend: max_chunk %d is larger than %zu tokens",
                            cfg->max_chunk, (WRITE_BOUNCE_BYTES - sizeof(struct qp_step)) / 4);
    struct qp_backend *b = (struct qp_backend *)calloc(1, sizeof *b);
    struct cuda_impl *m = (struct cuda_impl *)calloc(1, sizeof *m);
    if (!b || !m) {
        free(b);
        free(m);
        return qp_error_set(err, QP_ERR_NOMEM, "cuda backend: out of host memory");
    }
    b->vt = &qp_backend_cuda;
    b->impl = m;
    b->ops = qp_cuda_ops;
    m->use_graph = cfg->use_graph;
    m->verbose = cfg->verbose;
    m->sync_each = cfg->sync_each;
    m->profile = cfg->profile;
    enum qp_status s = cuda_init_impl(cfg, b, m, err);
    if (s != QP_OK) {
        cuda_free(b);
        return s;
    }
    if (m->verbose)
        fprintf(stderr, "cuda: %s (sm_%d%d, %d SMs): arena %.1f MiB; device memory taken by init: arena %.1f, "
                "stream %.1f, cuBLAS handle %.1f, pinned buffers and events %.1f MiB; %.1f of %.1f MiB free\n",
                m->name, m->cc_major, m->cc_minor, m->sms, mib(b->arena_bytes),
                mib(m->free_at_start - m->free_after_arena), mib(m->free_after_arena - m->free_after_stream),
                mib(m->free_after_stream - m->free_after_blas), mib(m->free_after_blas - m->free_after_init),
                mib(m->free_after_init), mib(m->total_mem));
    *out = b;
    return QP_OK;
}

static enum qp_status cuda_weights_alloc(struct qp_backend *b, size_t bytes, struct qp_error *err) {
    struct cuda_impl *m = impl_of(b);
    if (b->weights) return qp_error_set(err, QP_ERR_INVALID, "cuda backend: weights allocated twice");
    size_t fr, tot;
    CK(cudaMemGetInfo(&fr, &tot));
    size_t n = (bytes + QP_BACKEND_ALIGN - 1) / QP_BACKEND_ALIGN * QP_BACKEND_ALIGN;
    if (n == 0) n = QP_BACKEND_ALIGN;
    if (n > fr)
        return qp_error_set(err, QP_ERR_DEVICE,
                            "not enough device memory on %s for the weights: %zu bytes needed, %zu of %zu "
                            "free (the arena holds %zu); run with --device cpu",
                            m->name, bytes, fr, tot, b->arena_bytes);
    CK(cudaMalloc(&b->weights, n));
    b->weights_bytes = bytes;
    return QP_OK;
}

/* Copies through the pinned buffers: host memcpy into one while the other's DMA runs. */
static enum qp_status cuda_upload(struct qp_backend *b, void *dst, const void *src, size_t bytes,
                                  struct qp_error *err) {
    struct cuda_impl *m = impl_of(b);
    if (!in_range(dst, bytes, b->weights, b->weights_bytes))
        return qp_error_set(err, QP_ERR_INVALID, "cuda backend: upload of %zu bytes to %p is outside the weight pool",
                            bytes, dst);
    const char *s = (const char *)src;
    char *d = (char *)dst;
    while (bytes > 0) {
        if (m->fill == STAGING_BYTES) { /* this buffer is full: hand it over, take the other */
            CK(cudaEventRecord(m->staging_free[m->cur], m->stream));
            m->staging_pending[m->cur] = true;
            m->cur ^= 1;
            m->fill = 0;
        }
        if (m->fill == 0 && m->staging_pending[m->cur]) {
            CK(cudaEventSynchronize(m->staging_free[m->cur]));
            m->staging_pending[m->cur] = false;
        }
        size_t k = STAGING_BYTES - m->fill;
        if (k > bytes) k = bytes;
        char *p = (char *)m->staging[m->cur] + m->fill;
        memcpy(p, s, k);
        CK(cudaMemcpyAsync(d, p, k, cudaMemcpyHostToDevice, m->stream));
        m->fill += k;
        s += k;
        d += k;
        bytes -= k;
    }
    return QP_OK;
}

static enum qp_status cuda_weights_sync(struct qp_backend *b, struct qp_error *err) {
    struct cuda_impl *m = impl_of(b);
    CK(cudaStreamSynchronize(m->stream));
    m->staging_pending[0] = m->staging_pending[1] = false;
    m->fill = 0;
    m->cur = 0;
    size_t fr, tot;
    CK(cudaMemGetInfo(&fr, &tot));
    m->free_after_weights = fr;
    size_t used = m->free_at_start - fr;
    size_t other = used > b->arena_bytes + b->weights_bytes ? used - b->arena_bytes - b->weights_bytes : 0;
    /* One line, always: what this process holds on the device. */
    fprintf(stderr,
            "cuda: %s: device memory %.1f MiB = weights %.1f + arena %.1f (activations, KV cache, scratch "
            "with the cuBLAS workspaces) + other %.1f (cuBLAS handle, allocation rounding); context %.1f; "
            "%.1f of %.1f MiB free\n",
            m->name, mib(used), mib(b->weights_bytes), mib(b->arena_bytes), mib(other),
            mib(m->total_mem - m->free_at_start), mib(fr), mib(tot));
    return QP_OK;
}

/* Enqueues every node of prog; with check, checks the last error after each node (and
 * synchronises with sync_each). Inside capture, check is false: nothing may synchronise. */
static enum qp_status enqueue(struct qp_backend *b, const struct qp_backend_program *prog, bool check,
                              cudaEvent_t *ev, struct qp_error *err) {
    struct cuda_impl *m = impl_of(b);
    if (ev) CK(cudaEventRecord(ev[0], m->stream));
    for (int32_t i = 0; i < prog->n_nodes; i++) {
        struct qp_op_args a = prog->args[i];
        a.stream = m->stream;
        a.blas = m->blas;
        const struct qp_op_desc *d = qp_op_desc(a.op);
        char where[192];
        snprintf(where, sizeof where, "%s node %d '%s' (%s): ", prog->name, i, prog->node_names[i],
                 d ? d->name : "?");
        if ((unsigned)a.op >= QP_OP_COUNT || !b->ops[a.op])
            return qp_error_set(err, QP_ERR_UNSUPPORTED, "%sop %d has no cuda function", where, (int)a.op);
        struct qp_error e = {{0}};
        enum qp_status s = b->ops[a.op](&a, &e);
        if (s != QP_OK) return qp_error_set(err, s, "%s%s", where, e.msg);
        if (prog->ran) prog->ran[i] = qp_cuda_last_kernel();
        if (check) {
            CKW(where, cudaGetLastError());
            if (m->sync_each) CKW(where, cudaStreamSynchronize(m->stream));
        }
        if (ev) CKW(where, cudaEventRecord(ev[i + 1], m->stream));
    }
    return QP_OK;
}

/* --profile: the device time between the events around each node, summed by op and
 * epilogue, one table per eager run on stderr (a diagnostic: the events cost a little). */
static void profile_print(const struct qp_backend_program *prog, cudaEvent_t *ev) {
    struct row { int op, epi; double ms; int n; } rows[64];
    int nr = 0;
    float total = 0;
    cudaEventElapsedTime(&total, ev[0], ev[prog->n_nodes]);
    for (int32_t i = 0; i < prog->n_nodes; i++) {
        float t = 0;
        if (cudaEventElapsedTime(&t, ev[i], ev[i + 1]) != cudaSuccess) return;
        const struct qp_op_args *a = &prog->args[i];
        int op = (int)a->op, epi = a->op == QP_OP_LINEAR ? (int)a->epilogue : -1, k = 0;
        while (k < nr && (rows[k].op != op || rows[k].epi != epi)) k++;
        if (k == nr) {
            if (nr == 64) continue;
            rows[nr++] = (struct row){op, epi, 0.0, 0};
        }
        rows[k].ms += t;
        rows[k].n++;
    }
    fprintf(stderr, "cuda profile: %s program, %d nodes, n_tok %d: %.3f ms\n", prog->name, prog->n_nodes,
            prog->n_nodes ? prog->args[0].n_tok : 0, total);
    for (int k = 0; k < nr; k++) {
        const struct qp_op_desc *d = qp_op_desc((enum qp_op)rows[k].op);
        fprintf(stderr, "cuda profile:   %-10s %-9s x%-4d %8.3f ms  %5.1f%%\n", d ? d->name : "?",
                rows[k].epi >= 0 ? qp_epilogue_name((enum qp_epilogue)rows[k].epi) : "", rows[k].n, rows[k].ms,
                total > 0 ? 100.0 * rows[k].ms / total : 0.0);
    }
}

static enum qp_status cuda_run(struct qp_backend *b, const struct qp_backend_program *prog,
                               struct qp_error *err) {
    struct cuda_impl *m = impl_of(b);
    cudaEvent_t *ev = NULL;
    if (m->profile) {
        ev = (cudaEvent_t *)calloc((size_t)prog->n_nodes + 1, sizeof *ev);
        for (int32_t i = 0; ev && i <= prog->n_nodes; i++)
            if (cudaEventCreate(&ev[i]) != cudaSuccess) ev[i] = NULL;
        for (int32_t i = 0; ev && i <= prog->n_nodes; i++)
            if (!ev[i]) {
                for (int32_t j = 0; j <= prog->n_nodes; j++)
                    if (ev[j]) cudaEventDestroy(ev[j]);
                free(ev);
                ev = NULL;
            }
    }
    enum qp_status s = enqueue(b, prog, true, ev, err);
    cudaError_t e = s == QP_OK ? cudaStreamSynchronize(m->stream) : cudaSuccess;
    if (ev) {
        if (s == QP_OK && e == cudaSuccess) profile_print(prog, ev);
        for (int32_t i = 0; i <= prog->n_nodes; i++) cudaEventDestroy(ev[i]);
        free(ev);
    }
    if (s != QP_OK) return s;
    if (e != cudaSuccess)
        return qp_error_set(err, QP_ERR_DEVICE,
                            "%s program: a kernel failed: %s (%s); run with --no-graph --sync-each to name the node",
                            prog->name, cudaGetErrorString(e), cudaGetErrorName(e));
    return QP_OK;
}

/* Captures prog into m->exec. Any failure ends the capture first (the stream stays usable). */
static enum qp_status capture(struct qp_backend *b, const struct qp_backend_program *prog,
                              struct qp_error *err) {
    struct cuda_impl *m = impl_of(b);
    CK(cudaStreamBeginCapture(m->stream, cudaStreamCaptureModeThreadLocal));
    enum qp_status s = enqueue(b, prog, false, NULL, err);
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(m->stream, &g);
    if (s != QP_OK) {
        if (g) cudaGraphDestroy(g);
        return s;
    }
    if (e != cudaSuccess) {
        if (g) cudaGraphDestroy(g);
        return cuda_fail(err, "decode graph capture: ", __FILE__, __LINE__, "cudaStreamEndCapture", e);
    }
    size_t n_graph_nodes = 0;
    (void)cudaGraphGetNodes(g, NULL, &n_graph_nodes); /* for the message only */
    e = cudaGraphInstantiate(&m->exec, g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) {
        m->exec = NULL;
        return cuda_fail(err, "decode graph: ", __FILE__, __LINE__, "cudaGraphInstantiate", e);
    }
    m->graph_prog = prog;
    m->graph_nodes = prog->n_nodes;
    if (m->verbose) {
        size_t fr, tot;
        CK(cudaMemGetInfo(&fr, &tot));
        fprintf(stderr, "cuda: captured the %s program (%d plan nodes) into a CUDA graph of %zu nodes; "
                "%.1f MiB free\n", prog->name, prog->n_nodes, n_graph_nodes, mib(fr));
    }
    return QP_OK;
}

/* Decode: eager warm-up on the first call, capture on the second, then one graph launch per
 * call. Does not synchronise (the next read waits in stream order), so a step costs the host
 * one launch plus the 4-byte token read; a fault shows at that read. */
static enum qp_status cuda_replay(struct qp_backend *b, const struct qp_backend_program *prog,
                                  struct qp_error *err) {
    struct cuda_impl *m = impl_of(b);
    if (!m->use_graph || !prog->capture) return cuda_run(b, prog, err);
    if (m->exec && (m->graph_prog != prog || m->graph_nodes != prog->n_nodes)) {
        CK(cudaGraphExecDestroy(m->exec)); /* another program: recapture (never per token) */
        m->exec = NULL;
        m->warmed = false;
    }
    if (!m->exec) {
        if (!m->warmed) {
            enum qp_status s = cuda_run(b, prog, err);
            if (s == QP_OK) m->warmed = true;
            return s;
        }
        enum qp_status s = capture(b, prog, err);
        if (s != QP_OK) return s;
    }
    CKW("decode graph: ", cudaGraphLaunch(m->exec, m->stream));
    if (m->sync_each) CKW("decode graph: ", cudaStreamSynchronize(m->stream));
    return QP_OK;
}

static enum qp_status cuda_read(struct qp_backend *b, void *dst, const void *src, size_t bytes,
                                struct qp_error *err) {
    struct cuda_impl *m = impl_of(b);
    if (!backend_memory(b, src, bytes))
        return qp_error_set(err, QP_ERR_INVALID, "cuda backend: read of %zu bytes from %p is outside the arena and weights",
                            bytes, src);
    const char *s = (const char *)src;
    char *d = (char *)dst;
    while (bytes > 0) {
        size_t k = bytes < READ_BOUNCE_BYTES ? bytes : READ_BOUNCE_BYTES;
        CK(cudaMemcpyAsync(m->rd, s, k, cudaMemcpyDeviceToHost, m->stream));
        cudaError_t e = cudaStreamSynchronize(m->stream);
        if (e != cudaSuccess)
            return qp_error_set(err, QP_ERR_DEVICE,
                                "cuda backend: reading results: %s (%s): a kernel of the last program failed; "
                                "run with --no-graph --sync-each to name the node",
                                cudaGetErrorString(e), cudaGetErrorName(e));
        memcpy(d, m->rd, k);
        s += k;
        d += k;
        bytes -= k;
    }
    return QP_OK;
}

static enum qp_status cuda_write(struct qp_backend *b, void *dst, const void *src, size_t bytes,
                                 struct qp_error *err) {
    struct cuda_impl *m = impl_of(b);
    if (!backend_memory(b, dst, bytes))
        return qp_error_set(err, QP_ERR_INVALID, "cuda backend: write of %zu bytes to %p is outside the arena and weights",
                            bytes, dst);
    const char *s = (const char *)src;
    char *d = (char *)dst;
    while (bytes > 0) {
        size_t k = bytes < WRITE_BOUNCE_BYTES ? bytes : WRITE_BOUNCE_BYTES;
        if (m->wr_pending) CK(cudaEventSynchronize(m->wr_free)); /* the last write's DMA is done */
        memcpy(m->wr, s, k);
        CK(cudaMemcpyAsync(d, m->wr, k, cudaMemcpyHostToDevice, m->stream));
        CK(cudaEventRecord(m->wr_free, m->stream));
        m->wr_pending = true;
        s += k;
        d += k;
        bytes -= k;
    }
    return QP_OK;
}

/* qplan tune: one op, warmed up, then three batches of reps between events; the median batch's
 * time per run. Launches are eager (no graph), so each includes its launch overhead. */
static enum qp_status cuda_time_op(struct qp_backend *b, const struct qp_op_args *a0, int reps, double *us,
                                   struct qp_error *err) {
    struct cuda_impl *m = impl_of(b);
    if ((unsigned)a0->op >= QP_OP_COUNT || !b->ops[a0->op] || reps < 1)
        return qp_error_set(err, QP_ERR_INVALID, "cuda backend: cannot time op %d (%d runs)", (int)a0->op, reps);
    struct qp_op_args a = *a0;
    a.stream = m->stream;
    a.blas = m->blas;
    cudaEvent_t ev[2];
    CK(cudaEventCreate(&ev[0]));
    if (cudaEventCreate(&ev[1]) != cudaSuccess) {
        cudaEventDestroy(ev[0]);
        return qp_error_set(err, QP_ERR_DEVICE, "cuda backend: cudaEventCreate failed");
    }
    enum qp_status s = QP_OK;
    double t[3] = {0, 0, 0};
    for (int k = -1; k < 3 && s == QP_OK; k++) { /* k = -1: the warm-up batch */
        if (cudaEventRecord(ev[0], m->stream) != cudaSuccess) s = QP_ERR_DEVICE;
        for (int r = 0; r < reps && s == QP_OK; r++) s = b->ops[a.op](&a, err);
        if (s == QP_OK && (cudaEventRecord(ev[1], m->stream) != cudaSuccess ||
                           cudaEventSynchronize(ev[1]) != cudaSuccess))
            s = qp_error_set(err, QP_ERR_DEVICE, "cuda backend: timing a kernel: %s",
                             cudaGetErrorString(cudaGetLastError()));
        float ms = 0;
        if (s == QP_OK && k >= 0 && cudaEventElapsedTime(&ms, ev[0], ev[1]) == cudaSuccess) t[k] = 1e3 * ms / reps;
    }
    cudaEventDestroy(ev[0]);
    cudaEventDestroy(ev[1]);
    if (s == QP_OK) *us = qp_backend_median3(t);
    return s;
}

static enum qp_status cuda_alloc_extra(struct qp_backend *b, size_t bytes, void **out, struct qp_error *err) {
    int i = 0;
    while (i < QP_BACKEND_MAX_EXTRA && b->extra[i]) i++;
    if (i == QP_BACKEND_MAX_EXTRA)
        return qp_error_set(err, QP_ERR_INVALID, "cuda backend: more than %d extra regions", QP_BACKEND_MAX_EXTRA);
    CK(cudaMalloc(&b->extra[i], bytes ? bytes : 1));
    CK(cudaMemset(b->extra[i], 0, bytes ? bytes : 1));
    b->extra_bytes[i] = bytes;
    *out = b->extra[i];
    return QP_OK;
}

static enum qp_status cuda_copy(struct qp_backend *b, void *dst, const void *src, size_t bytes,
                                struct qp_error *err) {
    struct cuda_impl *m = impl_of(b);
    if (!backend_memory(b, dst, bytes) || !backend_memory(b, src, bytes))
        return qp_error_set(err, QP_ERR_INVALID, "cuda backend: copy of %zu bytes outside backend memory", bytes);
    CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, m->stream));
    CK(cudaStreamSynchronize(m->stream));
    return QP_OK;
}

static void cuda_free(struct qp_backend *b) {
    if (!b) return;
    for (int i = 0; i < QP_BACKEND_MAX_EXTRA; i++)
        if (b->extra[i]) cudaFree(b->extra[i]);
    struct cuda_impl *m = impl_of(b);
    if (m) {
        if (m->stream) cudaStreamSynchronize(m->stream);
        if (m->exec) cudaGraphExecDestroy(m->exec);
        if (m->verbose && m->free_after_weights) {
            size_t fr = 0, tot = 0;
            if (cudaMemGetInfo(&fr, &tot) == cudaSuccess)
                fprintf(stderr, "cuda: device memory taken since the weights were loaded: %.1f MiB (kernel "
                        "modules loaded on first use, cuBLAS kernels, decode graph)\n",
                        m->free_after_weights >= fr ? mib(m->free_after_weights - fr) : 0.0);
        }
        if (m->blas) cublasDestroy(m->blas);
        for (int i = 0; i < 2; i++) {
            if (m->staging[i]) cudaFreeHost(m->staging[i]);
            if (m->staging_free[i]) cudaEventDestroy(m->staging_free[i]);
        }
        if (m->rd) cudaFreeHost(m->rd);
        if (m->wr) cudaFreeHost(m->wr);
        if (m->wr_free) cudaEventDestroy(m->wr_free);
        if (m->stream) cudaStreamDestroy(m->stream);
    }
    cudaFree(b->arena);
    cudaFree(b->weights);
    free(m);
    free(b);
}

extern "C" const struct qp_backend_vtbl qp_backend_cuda = {
    /* name */ "cuda",
    /* host_memory */ false,
    /* init */ cuda_init,
    /* weights_alloc */ cuda_weights_alloc,
    /* upload */ cuda_upload,
    /* weights_sync */ cuda_weights_sync,
    /* run */ cuda_run,
    /* replay */ cuda_replay,
    /* read */ cuda_read,
    /* write */ cuda_write,
    /* time_op */ cuda_time_op,
    /* alloc_extra */ cuda_alloc_extra,
    /* copy */ cuda_copy,
    /* free */ cuda_free,
};
