/* compile.c — qp_compile: the compiler's driver. Lowering by architecture, the fusion passes
 * in order (each skippable), dead buffer and weight removal, the graph cloned into the
 * prefill and decode programs, kernel selection, memory planning, totals, and a final
 * qp_plan_validate so that a plan the compiler returns is one the runtime accepts.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compile_internal.h"
#include "qp_ggml.h"

void qp_compile_options_default(struct qp_compile_options *o) {
    memset(o, 0, sizeof *o);
    o->kv_type = QP_GGML_F16;
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

#define TRY(x)                                                                                 \
    do {                                                                                       \
        st = (x);                                                                              \
        if (st != QP_OK) goto fail;                                                            \
    } while (0)

static enum qp_status clone_program(struct qp_plan *p, struct qp_error *err) {
    const struct qp_plan_program *src = &p->programs[QP_PLAN_PREFILL];
    struct qp_plan_program *dst = &p->programs[QP_PLAN_DECODE];
    dst->nodes = calloc((size_t)src->n_nodes + 1, sizeof *dst->nodes);
    if (!dst->nodes) return qp_error_set(err, QP_ERR_NOMEM, "out of memory building a plan");
    memcpy(dst->nodes, src->nodes, (size_t)src->n_nodes * sizeof *dst->nodes);
    for (int32_t i = 0; i < src->n_nodes; i++) dst->nodes[i].kernel = NULL; /* chosen later */
    dst->n_nodes = src->n_nodes;
    p->programs[QP_PLAN_PREFILL].capture = false;
    dst->capture = true;
    return QP_OK;
}

enum qp_status qp_compile(const struct qp_gguf *g, const struct qp_compile_options *o,
                          struct qp_plan **out, struct qp_compile_stats *stats,
                          struct qp_error *err) {
    *out = NULL;
    struct qp_compile_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    const char *path = qp_gguf_path(g);
    enum qp_status st = QP_OK;
    struct qp_plan *p = qp_plan_new();
    if (!p) return qp_error_set(err, QP_ERR_NOMEM, "out of memory");

    /* identity */
    p->target = qp_build_strdup("cuda");
    p->model.file = qp_build_strdup(o->file_name ? o->file_name : base_name(path));
    p->model.size = qp_gguf_file_size(g);
    p->model.header_hash = qp_gguf_header_hash(g);
    if (!p->target || !p->model.file) {
        st = qp_error_set(err, QP_ERR_NOMEM, "out of memory");
        goto fail;
    }

    /* architecture */
    const char *arch_name;
    TRY(qp_gguf_get_str(g, "general.architecture", &arch_name, err));
    const struct qp_arch *arch = qp_arch_find(arch_name);
    if (!arch) {
        st = qp_error_set(err, QP_ERR_UNSUPPORTED, "%s: architecture '%s' is not supported "
                          "(supported: %s)", path, arch_name, qp_compile_architectures());
        goto fail;
    }
    p->hparams.arch = qp_build_strdup(arch_name);
    if (!p->hparams.arch) {
        st = qp_error_set(err, QP_ERR_NOMEM, "out of memory");
        goto fail;
    }

    /* limits: ctx from the option or min(trained context, default); chunk likewise */
    char key[128];
    int64_t n_ctx_train;
    snprintf(key, sizeof key, "%s.context_length", arch_name);
    TRY(qp_gguf_get_int(g, key, 1, INT32_MAX, &n_ctx_train, err));
    stats->model_ctx = n_ctx_train;
    int64_t ctx = o->ctx;
    if (ctx == 0) {
        ctx = n_ctx_train < QP_COMPILE_DEFAULT_CTX ? n_ctx_train : QP_COMPILE_DEFAULT_CTX;
        stats->ctx_defaulted = true;
    } else if (ctx < 1 || ctx > n_ctx_train) {
        st = qp_error_set(err, QP_ERR_RANGE, "%s: --ctx %" PRId64 " is outside 1..%" PRId64
                          " (the model's trained context, %s)", path, ctx, n_ctx_train, key);
        goto fail;
    }
    int64_t chunk = o->chunk ? o->chunk
                             : (ctx < QP_COMPILE_DEFAULT_CHUNK ? ctx : QP_COMPILE_DEFAULT_CHUNK);
    if (chunk < 1 || chunk > ctx) {
        st = qp_error_set(err, QP_ERR_RANGE, "--chunk %" PRId64 " is outside 1..%" PRId64
                          " (the context)", chunk, ctx);
        goto fail;
    }
    if (o->kv_type != QP_GGML_F16 && o->kv_type != QP_GGML_F32) {
        st = qp_error_set(err, QP_ERR_INVALID, "KV cache type %s: expected f16 or f32",
                          qp_ggml_type_name(o->kv_type));
        goto fail;
    }
    p->limits.max_ctx = ctx;
    p->limits.max_chunk = chunk;

    TRY(arch->lower(g, p, err));
    stats->unfused_nodes = p->programs[QP_PLAN_PREFILL].n_nodes;
    p->kv.type = o->kv_type;
    p->kv.n_layer = p->hparams.n_layer;
    p->kv.ctx = ctx;
    p->kv.kv_dim = p->hparams.n_head_kv * p->hparams.head_dim;

    for (int k = 0; k < QP_PASS_COUNT; k++) {
        if (o->disabled & (1u << k)) continue;
        int n = qp_pass_run(p, (enum qp_pass)k, err);
        if (n < 0) {
            st = QP_ERR_INVALID;
            goto fail;
        }
        stats->fused[k] = n;
    }
    TRY(clone_program(p, err));
    TRY(qp_build_remove_dead(p, &stats->removed_buffers, &stats->removed_weights, err));
    TRY(qp_select_kernels(p, err));
    TRY(qp_memplan(p, err));
    uint64_t wb = 0;
    for (int32_t i = 0; i < p->n_weights; i++) wb += p->weights[i].bytes;
    p->memory.weight_bytes = wb;
    for (int k = 0; k < QP_PLAN_N_PROGRAMS; k++) stats->n_nodes[k] = p->programs[k].n_nodes;

    struct qp_error verr;
    if (qp_plan_validate(p, &verr) != QP_OK) {
        st = qp_error_set(err, QP_ERR_INVALID, "%s: internal error: the compiled plan does not "
                          "validate: %s", path, verr.msg);
        goto fail;
    }
    *out = p;
    return QP_OK;
fail:
    qp_plan_free(p);
    return st;
}
