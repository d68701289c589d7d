/* compile.c — qp_compile: the compiler's driver. Lowering by architecture, the fusion passes
 * in order (each skippable), dead buffer and weight removal, the graph cloned into the plan's
 * programs (decode, prefill_small, prefill), kernel selection, memory planning, totals, and a
 * final qp_plan_validate so that a plan the compiler returns is one the runtime accepts.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compile_internal.h"
#include "qp_ggml.h"

int32_t qp_compile_default_sms(int32_t sm) {
    if (sm >= 90) return 132; /* H100 SXM, H200 */
    if (sm >= 89) return 128; /* RTX 4090 */
    if (sm >= 86) return 84;  /* RTX 3090 */
    return 108;               /* A100 */
}

void qp_compile_options_default(struct qp_compile_options *o) {
    memset(o, 0, sizeof *o);
    o->kv_type = QP_GGML_F16;
    o->matvec_tokens = -1;
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

#define MAX_PROGRAMS 24

/* Replaces the working graph by the plan's programs, each a copy of it: decode (1 token,
 * captured), prefill_small (chunks of 2..matvec_tokens: the matvec kernels), prefill (the rest, up
 * to the chunk), and with slots >= 2 the batch programs batch_B (B sequences a token each,
 * captured) for B = 2, 4, 8, ... and slots itself. A batch runs every node on all its rows, so the
 * chunk programs' last-row nodes run on every row there, and their output buffers hold a row per
 * sequence. */
static enum qp_status split_programs(struct qp_plan *p, int64_t chunk, int64_t matvec_tokens, int64_t slots,
                                     struct qp_error *err) {
    struct {
        char name[32];
        int64_t lo, hi;
        bool capture, batch;
    } want[MAX_PROGRAMS] = {{"decode", 1, 1, true, false}, {"prefill_small", 2, 0, false, false},
                            {"prefill", 2, chunk, false, false}};
    int n_want = 3;
    const int64_t small = matvec_tokens < chunk ? matvec_tokens : chunk;
    if (small >= 2) {
        want[1].hi = small;
        want[2].lo = small + 1;
    }
    for (int64_t b = 2; slots >= 2 && n_want < MAX_PROGRAMS; b = b * 2 < slots && b * 2 > b ? b * 2 : slots) {
        snprintf(want[n_want].name, sizeof want[n_want].name, "batch_%lld", (long long)b);
        want[n_want].lo = want[n_want].hi = b;
        want[n_want].capture = want[n_want].batch = true;
        n_want++;
        if (b == slots) break;
    }
    struct qp_plan_program *graph = &p->programs[QP_BUILD_GRAPH];
    struct qp_plan_program *progs = calloc(MAX_PROGRAMS, sizeof *progs);
    if (!progs) return qp_error_set(err, QP_ERR_NOMEM, "out of memory building a plan");
    int32_t n = 0;
    for (int k = 0; k < n_want; k++) {
        if (want[k].hi < want[k].lo) continue;
        struct qp_plan_program *g = &progs[n++];
        g->name = qp_build_strdup(want[k].name);
        g->nodes = calloc((size_t)graph->n_nodes + 1, sizeof *g->nodes);
        if (!g->name || !g->nodes) {
            for (int32_t i = 0; i < n; i++) {
                free(progs[i].name);
                free(progs[i].nodes);
            }
            free(progs);
            return qp_error_set(err, QP_ERR_NOMEM, "out of memory building a plan");
        }
        g->min_tok = (int32_t)want[k].lo;
        g->max_tok = (int32_t)want[k].hi;
        g->capture = want[k].capture;
        g->batch = want[k].batch;
        memcpy(g->nodes, graph->nodes, (size_t)graph->n_nodes * sizeof *g->nodes);
        for (int32_t i = 0; i < graph->n_nodes; i++) {
            g->nodes[i].kernel = NULL; /* chosen later */
            if (!g->batch || g->nodes[i].rows != QP_PLAN_ROWS_LAST) continue;
            g->nodes[i].rows = QP_PLAN_ROWS_ALL;
            struct qp_plan_buffer *o = g->nodes[i].out >= 0 ? &p->buffers[g->nodes[i].out] : NULL;
            if (o && o->rows < g->max_tok) { /* a last-row output: a row per sequence of the largest batch */
                o->rows = g->max_tok;
                o->bytes = (uint64_t)o->rows * (uint64_t)o->cols * 4;
            }
        }
        g->n_nodes = graph->n_nodes;
    }
    for (int32_t i = 0; i < graph->n_nodes; i++) free(graph->nodes[i].kernel);
    free(graph->name);
    free(graph->nodes);
    free(p->programs);
    p->programs = progs;
    p->n_programs = n;
    return QP_OK;
}

/* The plan's record of the fusion passes that ran. */
static enum qp_status record_passes(struct qp_plan *p, unsigned disabled, struct qp_error *err) {
    p->passes = calloc(QP_PASS_COUNT, sizeof *p->passes);
    if (!p->passes) return qp_error_set(err, QP_ERR_NOMEM, "out of memory building a plan");
    for (int k = 0; k < QP_PASS_COUNT; k++) {
        if (disabled & (1u << k)) continue;
        if (!(p->passes[p->n_passes] = qp_build_strdup(qp_pass_name((enum qp_pass)k))))
            return qp_error_set(err, QP_ERR_NOMEM, "out of memory building a plan");
        p->n_passes++;
    }
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

    /* identity, target, and the working graph's program */
    p->target.backend = qp_build_strdup("cuda");
    p->target.sm = o->sm ? o->sm : QP_COMPILE_DEFAULT_SM;
    p->target.sms = o->sms ? o->sms : qp_compile_default_sms(p->target.sm);
    p->model.file = qp_build_strdup(o->file_name ? o->file_name : base_name(path));
    p->model.size = qp_gguf_file_size(g);
    p->model.header_hash = qp_gguf_header_hash(g);
    p->programs = calloc(1, sizeof *p->programs);
    if (!p->target.backend || !p->model.file || !p->programs) {
        st = qp_error_set(err, QP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    p->n_programs = 1;
    if (p->target.sm < 50 || p->target.sm > 200 || p->target.sms < 1 || p->target.sms > 4096) {
        st = qp_error_set(err, QP_ERR_RANGE, "--target sm_%d with %d SMs: expected sm_50..sm_200 and 1..4096 SMs",
                          p->target.sm, p->target.sms);
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
    const int64_t slots = o->slots > 0 ? o->slots : 1;
    if (slots > chunk || slots > 65536) {
        st = qp_error_set(err, QP_ERR_RANGE, "--slots %" PRId64 " is more than the chunk (%" PRId64 " rows a step): "
                          "raise --chunk", slots, chunk);
        goto fail;
    }
    p->limits.max_ctx = ctx;
    p->limits.max_chunk = chunk;

    TRY(arch->lower(g, p, err));
    stats->unfused_nodes = p->programs[QP_BUILD_GRAPH].n_nodes;
    p->kv.type = o->kv_type;
    p->kv.n_layer = p->hparams.n_layer;
    p->kv.slots = slots;
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
    TRY(record_passes(p, o->disabled, err));
    TRY(qp_build_remove_dead(p, &stats->removed_buffers, &stats->removed_weights, err));
    TRY(split_programs(p, chunk, o->matvec_tokens < 0 ? QP_COMPILE_DEFAULT_MATVEC_TOKENS : o->matvec_tokens,
                       slots, err));
    TRY(qp_select_kernels(p, o, err));
    TRY(qp_memplan(p, err));
    uint64_t wb = 0;
    for (int32_t i = 0; i < p->n_weights; i++) wb += p->weights[i].bytes;
    p->memory.weight_bytes = wb;

    struct qp_error verr;
    if (qp_plan_validate(p, &verr) != QP_OK || qp_plan_check_kernels(p, &verr) != QP_OK) {
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
