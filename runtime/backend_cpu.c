/* backend_cpu.c — the CPU backend: host memory, the plain-C ops of qp_cpu_ops, eager only.
 *
 * Owns one host arena (aligned, zeroed at init); init sets the CPU ops' thread count
 * (cfg->threads, process-wide). Weights are not copied: the executor points them into the GGUF
 * mmap (host_memory = true), so weights_alloc/upload exist only so that the generic path also
 * works (tests use it to check the executor's upload path on the CPU). Nothing is allocated
 * after init and weights_alloc.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "backend.h"
#include "qp_kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qp_cpu.h"
#include "qp_ggml.h"

static enum qp_status cpu_init(const struct qp_backend_config *cfg, struct qp_backend **out,
                               struct qp_error *err) {
    *out = NULL;
    if (cfg->arena_bytes == 0 || cfg->step_offset % 16 != 0 ||
        cfg->step_offset + sizeof(struct qp_step) + (size_t)cfg->max_chunk * sizeof(int32_t) >
            cfg->arena_bytes)
        return qp_error_set(err, QP_ERR_INVALID,
                            "cpu backend: step state at offset %zu (+%d tokens) does not fit the "
                            "arena of %zu bytes",
                            cfg->step_offset, cfg->max_chunk, cfg->arena_bytes);
    struct qp_backend *b = calloc(1, sizeof *b);
    if (!b) return qp_error_set(err, QP_ERR_NOMEM, "cpu backend: out of host memory");
    size_t bytes = (cfg->arena_bytes + QP_BACKEND_ALIGN - 1) / QP_BACKEND_ALIGN * QP_BACKEND_ALIGN;
    b->arena = aligned_alloc(QP_BACKEND_ALIGN, bytes);
    if (!b->arena) {
        free(b);
        return qp_error_set(err, QP_ERR_NOMEM, "cpu backend: cannot allocate the arena (%zu bytes)",
                            cfg->arena_bytes);
    }
    memset(b->arena, 0, bytes);
    b->vt = &qp_backend_cpu;
    b->arena_bytes = cfg->arena_bytes;
    b->step = (struct qp_step *)((char *)b->arena + cfg->step_offset);
    b->ops = qp_cpu_ops;
    b->device_name = "cpu";
    /* 0 keeps the count the process has (one per processor unless an earlier init set one):
     * a second backend, such as qplan tune's reference, does not undo qrun -t */
    int threads = cfg->threads > 0 ? qp_cpu_set_threads(cfg->threads) : qp_cpu_thread_count();
    if (cfg->verbose) fprintf(stderr, "cpu backend: %d thread%s\n", threads, threads == 1 ? "" : "s");
    *out = b;
    return QP_OK;
}

static enum qp_status cpu_weights_alloc(struct qp_backend *b, size_t bytes, struct qp_error *err) {
    if (b->weights) return qp_error_set(err, QP_ERR_INVALID, "cpu backend: weights allocated twice");
    size_t n = (bytes + QP_BACKEND_ALIGN - 1) / QP_BACKEND_ALIGN * QP_BACKEND_ALIGN;
    if (n == 0) n = QP_BACKEND_ALIGN;
    b->weights = aligned_alloc(QP_BACKEND_ALIGN, n);
    if (!b->weights)
        return qp_error_set(err, QP_ERR_NOMEM, "cpu backend: cannot allocate %zu bytes of weights",
                            bytes);
    b->weights_bytes = bytes;
    return QP_OK;
}

static enum qp_status cpu_copy(void *dst, const void *src, size_t bytes) {
    memcpy(dst, src, bytes);
    return QP_OK;
}

static enum qp_status cpu_upload(struct qp_backend *b, void *dst, const void *src, size_t bytes,
                                 struct qp_error *err) {
    (void)b;
    (void)err;
    return cpu_copy(dst, src, bytes);
}

static enum qp_status cpu_weights_sync(struct qp_backend *b, struct qp_error *err) {
    (void)b;
    (void)err;
    return QP_OK;
}

static enum qp_status cpu_run(struct qp_backend *b, const struct qp_backend_program *prog,
                              struct qp_error *err) {
    for (int32_t i = 0; i < prog->n_nodes; i++) {
        const struct qp_op_args a = prog->args[i];
        if ((unsigned)a.op >= QP_OP_COUNT || !b->ops[a.op])
            return qp_error_set(err, QP_ERR_UNSUPPORTED, "%s node %d '%s': op %d has no cpu function",
                                prog->name, i, prog->node_names[i], (int)a.op);
        struct qp_error e = {{0}};
        enum qp_status s = b->ops[a.op](&a, &e);
        if (s != QP_OK) {
            const struct qp_op_desc *d = qp_op_desc(a.op);
            return qp_error_set(err, s, "%s node %d '%s' (%s): %s", prog->name, i,
                                prog->node_names[i], d ? d->name : "?", e.msg);
        }
        if (prog->ran) prog->ran[i] = QP_KERNEL_UNKNOWN; /* the op's reference function */
    }
    return QP_OK;
}

static enum qp_status cpu_read(struct qp_backend *b, void *dst, const void *src, size_t bytes,
                               struct qp_error *err) {
    (void)b;
    (void)err;
    return cpu_copy(dst, src, bytes);
}

static enum qp_status cpu_write(struct qp_backend *b, void *dst, const void *src, size_t bytes,
                                struct qp_error *err) {
    (void)b;
    (void)err;
    return cpu_copy(dst, src, bytes);
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

static enum qp_status cpu_time_op(struct qp_backend *b, const struct qp_op_args *a, int reps, double *us,
                                  struct qp_error *err) {
    if ((unsigned)a->op >= QP_OP_COUNT || !b->ops[a->op] || reps < 1)
        return qp_error_set(err, QP_ERR_INVALID, "cpu backend: cannot time op %d (%d runs)", (int)a->op, reps);
    double t[3];
    for (int k = -1; k < 3; k++) { /* k = -1: the warm-up batch */
        const double t0 = cpu_now();
        for (int r = 0; r < reps; r++) {
            struct qp_error e = {{0}};
            enum qp_status s = b->ops[a->op](a, &e);
            if (s != QP_OK) return qp_error_set(err, s, "cpu backend: %s", e.msg);
        }
        if (k >= 0) t[k] = (cpu_now() - t0) / reps;
    }
    *us = qp_backend_median3(t);
    return QP_OK;
}

static enum qp_status cpu_alloc_extra(struct qp_backend *b, size_t bytes, void **out, struct qp_error *err) {
    int i = 0;
    while (i < QP_BACKEND_MAX_EXTRA && b->extra[i]) i++;
    if (i == QP_BACKEND_MAX_EXTRA)
        return qp_error_set(err, QP_ERR_INVALID, "cpu backend: more than %d extra regions", QP_BACKEND_MAX_EXTRA);
    const size_t n = (bytes + QP_BACKEND_ALIGN - 1) / QP_BACKEND_ALIGN * QP_BACKEND_ALIGN;
    b->extra[i] = aligned_alloc(QP_BACKEND_ALIGN, n ? n : QP_BACKEND_ALIGN);
    if (!b->extra[i]) return qp_error_set(err, QP_ERR_NOMEM, "cpu backend: cannot allocate %zu bytes", bytes);
    memset(b->extra[i], 0, n);
    b->extra_bytes[i] = bytes;
    *out = b->extra[i];
    return QP_OK;
}

static enum qp_status cpu_copy_within(struct qp_backend *b, void *dst, const void *src, size_t bytes,
                                      struct qp_error *err) {
    (void)b;
    (void)err;
    memmove(dst, src, bytes);
    return QP_OK;
}

static void cpu_free(struct qp_backend *b) {
    if (!b) return;
    for (int i = 0; i < QP_BACKEND_MAX_EXTRA; i++) free(b->extra[i]);
    free(b->arena);
    free(b->weights);
    free(b);
}

const struct qp_backend_vtbl qp_backend_cpu = {
    .name = "cpu",
    .host_memory = true,
    .init = cpu_init,
    .weights_alloc = cpu_weights_alloc,
    .upload = cpu_upload,
    .weights_sync = cpu_weights_sync,
    .run = cpu_run,
    .replay = NULL,
    .read = cpu_read,
    .write = cpu_write,
    .time_op = cpu_time_op,
    .alloc_extra = cpu_alloc_extra,
    .copy = cpu_copy_within,
    .free = cpu_free,
};

const struct qp_backend_vtbl *qp_backend_find(const char *name) {
    if (!name) return NULL;
    if (strcmp(name, "cpu") == 0) return &qp_backend_cpu;
#ifdef QP_HAVE_CUDA_BACKEND
    if (strcmp(name, "cuda") == 0) return &qp_backend_cuda;
#endif
    return NULL;
}
