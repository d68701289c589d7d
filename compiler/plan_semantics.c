/* plan_semantics.c — does a plan compute its model? (qp_plan_check_semantics, qp_semantics_*)
 *
 * What a plan computes is fixed by its hyperparameters and KV cache geometry, which GGUF tensors
 * make which plan weight (type, shape, stacking order), the buffers' shapes, the programs' chunk
 * ranges, and every node's op, rows, inputs, output, weights, biases, norm, prologue, epilogue
 * and params. The check compiles the model again with the options the plan records and requires
 * all of these to equal the reference's. What decides only how or how fast a node runs — kernel,
 * launch, scratch, arena offsets and totals, target — is not compared: hand edits there stay
 * allowed, and qp_plan_validate and qp_plan_check_kernels check them.
 *
 * The reference is qp_compile of the model with: ctx = limits.max_ctx, chunk = limits.max_chunk,
 * kv type = kv_cache.type, the fusion passes the plan lists (each known, in the compiler's order,
 * at most once; the others disabled), and the matvec bound = the last chunk size of program
 * prefill_small (0 when there is none). It goes through the plan writer and reader, so its numbers
 * are those a compiled plan file holds (an f32 eps written as its shortest text) and compare
 * exactly with a plan read from a file. Kernels are chosen for the default target: selection never
 * changes what a node computes.
 *
 * Before the field by field comparison the model's tensors are accounted for, the way the lowering
 * uses them: each tensor the reference reads is read by exactly one plan weight, and the plan reads
 * no other. Every message starts "plan:line:" with the line of the node, weight, buffer, program or
 * field concerned and says what the plan has and what the model needs. The first difference is
 * reported.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qp_compile.h"
#include "qp_ggml.h"

struct qp_semantics {
    const struct qp_gguf *g;
    struct qp_compile_options o; /* the options ref was compiled with */
    struct qp_plan *ref;         /* NULL until a check needs it */
};

/* A comparison in progress. */
struct sc {
    const struct qp_plan *p, *ref;
    const char *src; /* the plan's file name for messages */
    struct qp_error *err;
};

static enum qp_status bad(struct sc *c, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static enum qp_status bad(struct sc *c, int line, const char *fmt, ...) {
    char what[QP_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return qp_error_set(c->err, QP_ERR_INVALID, "%s:%d: %s", c->src, line, what);
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        enum qp_status st_ = (x);                                                                  \
        if (st_ != QP_OK) return st_;                                                              \
    } while (0)

/* --- the reference ----------------------------------------------------------------------- */

/* The compile options p records, or a message naming the line that records an impossible one. */
static enum qp_status plan_options(struct sc *c, struct qp_compile_options *o) {
    const struct qp_plan *p = c->p;
    qp_compile_options_default(o);
    o->ctx = p->limits.max_ctx;
    o->chunk = p->limits.max_chunk;
    o->kv_type = p->kv.type;
    o->slots = (int32_t)p->kv.slots;
    unsigned ran = 0;
    int last = -1;
    const int line = qp_plan_line(p, "passes");
    for (int32_t i = 0; i < p->n_passes; i++) {
        int k = -1;
        for (int j = 0; j < QP_PASS_COUNT && k < 0; j++)
            if (strcmp(p->passes[i], qp_pass_name((enum qp_pass)j)) == 0) k = j;
        if (k < 0)
            return bad(c, line,
                       "passes: unknown pass '%s' (the compiler's "
                       "passes, in order: fuse_norm, fuse_qkv, fuse_swiglu, fuse_residual, "
                       "fuse_lm_head)",
                       p->passes[i]);
        if (k <= last)
            return bad(c, line,
                       "passes: '%s' after '%s': the compiler runs "
                       "each pass at most once, in the order fuse_norm, fuse_qkv, fuse_swiglu, "
                       "fuse_residual, fuse_lm_head",
                       p->passes[i], p->passes[i - 1]);
        ran |= 1u << k;
        last = k;
    }
    o->disabled = ~ran & ((1u << QP_PASS_COUNT) - 1);
    int32_t small = qp_plan_program_by_name(p, "prefill_small");
    o->matvec_tokens = small >= 0 ? p->programs[small].max_tok : 0;
    return QP_OK;
}

static bool same_options(const struct qp_compile_options *a, const struct qp_compile_options *b) {
    return a->ctx == b->ctx && a->chunk == b->chunk && a->kv_type == b->kv_type &&
           a->disabled == b->disabled && a->matvec_tokens == b->matvec_tokens && a->slots == b->slots;
}

/* s->ref := the model compiled with options o, written and read back. */
static enum qp_status build_reference(struct qp_semantics *s, struct sc *c,
                                      const struct qp_compile_options *o) {
    qp_plan_free(s->ref);
    s->ref = NULL;
    struct qp_plan *built = NULL;
    struct qp_error e;
    char *text = NULL;
    size_t len = 0;
    enum qp_status st = qp_compile(s->g, o, &built, NULL, &e);
    if (st != QP_OK) {
        char passes[160] = "";
        for (int32_t i = 0; i < c->p->n_passes; i++) {
            size_t at = strlen(passes);
            snprintf(passes + at, sizeof passes - at, "%s%s", i ? ", " : "", c->p->passes[i]);
        }
        const int line = qp_plan_line(c->p, "limits");
        return bad(c, line,
                   "the plan's compile options (ctx %" PRId64 ", chunk %" PRId64
                   ", kv_cache %s, passes [%s], prefill_small up to %d tokens) "
                   "do not compile this model: %s",
                   o->ctx, o->chunk, qp_ggml_type_name(o->kv_type), passes, o->matvec_tokens,
                   e.msg);
    }
    st = qp_plan_write_memory(built, &text, &len, &e);
    qp_plan_free(built);
    if (st == QP_OK) st = qp_plan_read_memory(text, len, "(reference)", &s->ref, &e);
    free(text);
    if (st != QP_OK)
        return qp_error_set(c->err, st,
                            "%s: internal error: the reference plan does not read back: "
                            "%s",
                            c->src, e.msg);
    s->o = *o;
    return QP_OK;
}

/* --- hyperparameters and the KV cache ---------------------------------------------------- */

/* A hyperparameter, and the metadata it comes from (%s: the architecture). */
struct hfield {
    const char *key;
    size_t off;
    char kind; /* 's' char *, 'i' int64_t, 'd' double */
    const char *from;
};

#define H(key, kind, from)                                                                         \
    { #key, offsetof(struct qp_plan_hparams, key), kind, from }
static const struct hfield hfields[] = {
    H(arch, 's', "general.architecture"),
    H(n_vocab, 'i', "the count of tokenizer.ggml.tokens"),
    H(n_embd, 'i', "%s.embedding_length"),
    H(n_layer, 'i', "%s.block_count"),
    H(n_ff, 'i', "%s.feed_forward_length"),
    H(n_head, 'i', "%s.attention.head_count"),
    H(n_head_kv, 'i', "%s.attention.head_count_kv"),
    H(head_dim, 'i', "embedding_length / head_count"),
    H(n_ctx_train, 'i', "%s.context_length"),
    H(rope_base, 'd', "%s.rope.freq_base"),
    H(eps, 'd', "%s.attention.layer_norm_rms_epsilon"),
};
#undef H

static const struct hfield *hfield(const char *key) {
    for (size_t i = 0; i < sizeof hfields / sizeof hfields[0]; i++)
        if (strcmp(hfields[i].key, key) == 0) return &hfields[i];
    return NULL;
}

/* "(the model's qwen2.rope.freq_base)" for a hyperparameter key, "" for others. */
static void source_of(const struct sc *c, const char *key, char *out, size_t n) {
    const struct hfield *f = hfield(key);
    out[0] = 0;
    if (!f) return;
    char from[96];
    snprintf(from, sizeof from, f->from, c->ref->hparams.arch);
    snprintf(out, n, " (the model's %s)", from);
}

static void value_text(const struct hfield *f, const void *base, char *out, size_t n) {
    const char *at = (const char *)base + f->off;
    if (f->kind == 's')
        snprintf(out, n, "%s", *(char *const *)at ? *(char *const *)at : "");
    else if (f->kind == 'i')
        snprintf(out, n, "%" PRId64, *(const int64_t *)at);
    else
        snprintf(out, n, "%.9g", *(const double *)at);
}

static enum qp_status check_hparams(struct sc *c) {
    for (size_t i = 0; i < sizeof hfields / sizeof hfields[0]; i++) {
        const struct hfield *f = &hfields[i];
        char have[64], want[64], path[48], from[128];
        value_text(f, &c->p->hparams, have, sizeof have);
        value_text(f, &c->ref->hparams, want, sizeof want);
        if (strcmp(have, want) == 0) continue;
        snprintf(path, sizeof path, "hparams.%s", f->key);
        source_of(c, f->key, from, sizeof from);
        return bad(c, qp_plan_line(c->p, path), "%s: the plan says %s, the model needs %s%s", path,
                   have, want, from);
    }
    const struct qp_plan_kv *a = &c->p->kv, *b = &c->ref->kv;
    const struct {
        const char *path;
        int64_t have, want;
    } kv[] = {{"kv_cache.n_layer", a->n_layer, b->n_layer},
              {"kv_cache.ctx", a->ctx, b->ctx},
              {"kv_cache.kv_dim", a->kv_dim, b->kv_dim}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (kv[i].have != kv[i].want)
            return bad(c, qp_plan_line(c->p, kv[i].path),
                       "%s: the plan says %" PRId64 ", the model "
                       "needs %" PRId64,
                       kv[i].path, kv[i].have, kv[i].want);
    return QP_OK;
}

/* --- weights: every tensor accounted for, each weight as the lowering makes it ------------- */

/* The weight of p that reads tensor name (and which source it is), below index `before`; -1. */
static int32_t weight_reading(const struct qp_plan *p, const char *name, int32_t before,
                              int32_t *part) {
    for (int32_t i = 0; i < before && i < p->n_weights; i++)
        for (int32_t j = 0; j < p->weights[i].n_from; j++)
            if (strcmp(p->weights[i].from[j], name) == 0) {
                if (part) *part = j;
                return i;
            }
    return -1;
}

/* "[a, b, c]" of n names. */
static void list_text(char *out, size_t n, const char *const *names, int32_t count) {
    size_t at = (size_t)snprintf(out, n, "[");
    for (int32_t i = 0; i < count && at < n; i++)
        at += (size_t)snprintf(out + at, n - at, "%s%s", i ? ", " : "", names[i]);
    if (at < n) snprintf(out + at, n - at, "]");
}

static void parts_text(char *out, size_t n, const int64_t *parts, int32_t count) {
    size_t at = (size_t)snprintf(out, n, "[");
    for (int32_t i = 0; i < count && at < n; i++)
        at += (size_t)snprintf(out + at, n - at, "%s%" PRId64, i ? ", " : "", parts[i]);
    if (at < n) snprintf(out + at, n - at, "]");
}

static enum qp_status account_tensors(struct sc *c) {
    const struct qp_plan *p = c->p, *ref = c->ref;
    for (int32_t i = 0; i < p->n_weights; i++) {
        const struct qp_plan_weight *w = &p->weights[i];
        for (int32_t j = 0; j < w->n_from; j++) {
            if (weight_reading(ref, w->from[j], ref->n_weights, NULL) < 0)
                return bad(c, w->line,
                           "weight '%s' reads tensor '%s', which the model's graph does "
                           "not use",
                           w->name, w->from[j]);
            int32_t other = weight_reading(p, w->from[j], i, NULL);
            if (other >= 0)
                return bad(c, w->line,
                           "weight '%s' reads tensor '%s', which weight '%s' (line %d) "
                           "reads too: the model's graph uses each tensor once",
                           w->name, w->from[j], p->weights[other].name, p->weights[other].line);
            for (int32_t k = 0; k < j; k++)
                if (strcmp(w->from[k], w->from[j]) == 0)
                    return bad(c, w->line,
                               "weight '%s' reads tensor '%s' twice: the model's graph "
                               "uses each tensor once",
                               w->name, w->from[j]);
        }
    }
    const int line = qp_plan_line(p, "weights");
    for (int32_t i = 0; i < ref->n_weights; i++)
        for (int32_t j = 0; j < ref->weights[i].n_from; j++)
            if (weight_reading(p, ref->weights[i].from[j], p->n_weights, NULL) < 0)
                return bad(c, line,
                           "weights: no weight reads tensor '%s', "
                           "which the model's graph uses (in weight '%s')",
                           ref->weights[i].from[j], ref->weights[i].name);
    return QP_OK;
}

static enum qp_status check_weights(struct sc *c) {
    TRY(account_tensors(c));
    const struct qp_plan *p = c->p, *ref = c->ref;
    for (int32_t i = 0; i < p->n_weights; i++) {
        const struct qp_plan_weight *w = &p->weights[i];
        int32_t k = qp_plan_find_weight(ref, w->name);
        if (k < 0) {
            const struct qp_plan_weight *rw =
                &ref->weights[weight_reading(ref, w->from[0], ref->n_weights, NULL)];
            return bad(c, w->line,
                       "weight '%s': the model's graph has no weight of this name (tensor "
                       "'%s' is in its weight '%s')",
                       w->name, w->from[0], rw->name);
        }
        const struct qp_plan_weight *r = &ref->weights[k];
        char have[512], want[512];
        list_text(have, sizeof have, (const char *const *)w->from, w->n_from);
        list_text(want, sizeof want, (const char *const *)r->from, r->n_from);
        if (strcmp(have, want) != 0)
            return bad(c, w->line, "weight '%s': from: the plan says %s, the model needs %s",
                       w->name, have, want);
        parts_text(have, sizeof have, w->part_rows, w->n_from);
        parts_text(want, sizeof want, r->part_rows, r->n_from);
        if (strcmp(have, want) != 0)
            return bad(c, w->line, "weight '%s': parts: the plan says %s, the model needs %s",
                       w->name, have, want);
        if (w->type != r->type || w->rows != r->rows || w->cols != r->cols)
            return bad(c, w->line,
                       "weight '%s': the plan says %s [%" PRId64 ", %" PRId64 "], the "
                       "model needs %s [%" PRId64 ", %" PRId64 "]",
                       w->name, qp_ggml_type_name(w->type), w->rows, w->cols,
                       qp_ggml_type_name(r->type), r->rows, r->cols);
    }
    return QP_OK;
}

/* --- buffers ---------------------------------------------------------------------------- */

static enum qp_status check_buffers(struct sc *c) {
    const struct qp_plan *p = c->p, *ref = c->ref;
    for (int32_t i = 0; i < p->n_buffers; i++) {
        const struct qp_plan_buffer *b = &p->buffers[i];
        int32_t k = qp_plan_find_buffer(ref, b->name);
        if (k < 0)
            return bad(c, b->line, "buffer '%s': the model's graph has no buffer of this name",
                       b->name);
        const struct qp_plan_buffer *r = &ref->buffers[k];
        if (b->dtype != r->dtype || b->rows != r->rows || b->cols != r->cols)
            return bad(c, b->line,
                       "buffer '%s': the plan says %s [%" PRId64 ", %" PRId64 "], the "
                       "model needs %s [%" PRId64 ", %" PRId64 "]",
                       b->name, qp_ggml_type_name(b->dtype), b->rows, b->cols,
                       qp_ggml_type_name(r->dtype), r->rows, r->cols);
    }
    const int line = qp_plan_line(p, "buffers");
    for (int32_t k = 0; k < ref->n_buffers; k++)
        if (qp_plan_find_buffer(p, ref->buffers[k].name) < 0)
            return bad(c, line,
                       "buffers: no buffer '%s' [%" PRId64 ", %" PRId64
                       "], which the model's graph needs",
                       ref->buffers[k].name, ref->buffers[k].rows, ref->buffers[k].cols);
    return QP_OK;
}

/* --- programs and nodes ----------------------------------------------------------------- */

/* The names of a node's buffers or weights as text: "[a, b]". */
static void buffers_text(const struct qp_plan *p, const int32_t *idx, int32_t n, char *out,
                         size_t len) {
    const char *names[QP_OP_MAX_PARTS > QP_PLAN_MAX_IN ? QP_OP_MAX_PARTS : QP_PLAN_MAX_IN];
    for (int32_t i = 0; i < n; i++) names[i] = p->buffers[idx[i]].name;
    list_text(out, len, names, n);
}

static void weights_text(const struct qp_plan *p, const int32_t *idx, int32_t n, char *out,
                         size_t len) {
    const char *names[QP_OP_MAX_PARTS];
    for (int32_t i = 0; i < n; i++) names[i] = p->weights[idx[i]].name;
    list_text(out, len, names, n);
}

/* One field of a node as text, for comparing and for the message. */
enum nfield {
    NF_OP,
    NF_ROWS,
    NF_IN,
    NF_OUT,
    NF_WEIGHTS,
    NF_BIAS,
    NF_NORM,
    NF_PROLOGUE,
    NF_EPILOGUE,
    NF_EPS,
    NF_N_HEAD,
    NF_N_HEAD_KV,
    NF_HEAD_DIM,
    NF_ROPE_BASE,
    NF_LAYER,
    NF_COUNT
};
static const char *const nfield_names[NF_COUNT] = {"op",
                                                   "rows",
                                                   "in",
                                                   "out",
                                                   "weights",
                                                   "bias",
                                                   "norm",
                                                   "prologue",
                                                   "epilogue",
                                                   "params.eps",
                                                   "params.n_head",
                                                   "params.n_head_kv",
                                                   "params.head_dim",
                                                   "params.rope_base",
                                                   "params.layer"};

static void node_field(const struct qp_plan *p, const struct qp_plan_node *n, enum nfield f,
                       char *out, size_t len) {
    const struct qp_op_desc *d = qp_op_desc(n->op);
    const char *pro = qp_prologue_name(n->prologue), *epi = qp_epilogue_name(n->epilogue);
    switch (f) {
    case NF_OP: snprintf(out, len, "%s", d ? d->name : "?"); return;
    case NF_ROWS: snprintf(out, len, "%s", qp_plan_rows_name(n->rows)); return;
    case NF_IN: buffers_text(p, n->in, n->n_in, out, len); return;
    case NF_OUT: snprintf(out, len, "%s", n->out >= 0 ? p->buffers[n->out].name : "none"); return;
    case NF_WEIGHTS: weights_text(p, n->weights, n->n_weights, out, len); return;
    case NF_BIAS: weights_text(p, n->bias, n->n_bias, out, len); return;
    case NF_NORM:
        snprintf(out, len, "%s", n->norm >= 0 ? p->weights[n->norm].name : "none");
        return;
    case NF_PROLOGUE: snprintf(out, len, "%s", pro ? pro : "?"); return;
    case NF_EPILOGUE: snprintf(out, len, "%s", epi ? epi : "?"); return;
    case NF_EPS: snprintf(out, len, "%.9g", n->params.eps); return;
    case NF_N_HEAD: snprintf(out, len, "%" PRId64, n->params.n_head); return;
    case NF_N_HEAD_KV: snprintf(out, len, "%" PRId64, n->params.n_head_kv); return;
    case NF_HEAD_DIM: snprintf(out, len, "%" PRId64, n->params.head_dim); return;
    case NF_ROPE_BASE: snprintf(out, len, "%.9g", n->params.rope_base); return;
    case NF_LAYER: snprintf(out, len, "%" PRId64, n->params.layer); return;
    case NF_COUNT: break;
    }
    out[0] = 0;
}

/* "decode node 3 (linear -> q)" */
static void node_label(const struct qp_plan *p, const struct qp_plan_program *g, int32_t i,
                       char *out, size_t len) {
    const struct qp_plan_node *n = &g->nodes[i];
    const struct qp_op_desc *d = qp_op_desc(n->op);
    if (n->out >= 0)
        snprintf(out, len, "%s node %d (%s -> %s)", g->name, i, d ? d->name : "?",
                 p->buffers[n->out].name);
    else
        snprintf(out, len, "%s node %d (%s)", g->name, i, d ? d->name : "?");
}

static enum qp_status check_node(struct sc *c, const struct qp_plan_program *g, int32_t i,
                                 const struct qp_plan_node *r) {
    const struct qp_plan_node *n = &g->nodes[i];
    for (int f = 0; f < NF_COUNT; f++) {
        char have[640], want[640];
        node_field(c->p, n, (enum nfield)f, have, sizeof have);
        node_field(c->ref, r, (enum nfield)f, want, sizeof want);
        if (strcmp(have, want) == 0) continue;
        char label[192], from[128] = "";
        node_label(c->p, g, i, label, sizeof label);
        if (f == NF_EPS) source_of(c, "eps", from, sizeof from);
        if (f == NF_ROPE_BASE) source_of(c, "rope_base", from, sizeof from);
        if (f == NF_BIAS && r->n_bias && !n->n_bias)
            return bad(c, n->line,
                       "%s: bias: the plan has none, the model has a bias for this linear: "
                       "%s",
                       label, want);
        if (f == NF_BIAS && !r->n_bias)
            return bad(c, n->line,
                       "%s: bias: the plan says %s, the model has no bias for this node", label,
                       have);
        return bad(c, n->line, "%s: %s: the plan says %s, the model needs %s%s", label,
                   nfield_names[f], have, want, from);
    }
    return QP_OK;
}

static void programs_text(const struct qp_plan *p, char *out, size_t len) {
    size_t at = 0;
    out[0] = 0;
    for (int32_t k = 0; k < p->n_programs && at < len; k++)
        at += (size_t)snprintf(out + at, len - at, "%s%s [%d, %d]", k ? ", " : "",
                               p->programs[k].name, p->programs[k].min_tok, p->programs[k].max_tok);
}

static const char *yes_no(bool b) { return b ? "true" : "false"; }

static enum qp_status check_programs(struct sc *c) {
    const struct qp_plan *p = c->p, *ref = c->ref;
    char progs[256];
    programs_text(ref, progs, sizeof progs);
    for (int32_t k = 0; k < p->n_programs; k++) {
        const struct qp_plan_program *g = &p->programs[k];
        int32_t rk = qp_plan_program_by_name(ref, g->name);
        if (rk < 0)
            return bad(c, g->line,
                       "program %s: the model's graph has no program of this name (its "
                       "programs: %s)",
                       g->name, progs);
        const struct qp_plan_program *rg = &ref->programs[rk];
        if (g->min_tok != rg->min_tok || g->max_tok != rg->max_tok || g->capture != rg->capture)
            return bad(c, g->line,
                       "program %s: the plan says tokens [%d, %d], capture %s, the model "
                       "needs tokens [%d, %d], capture %s",
                       g->name, g->min_tok, g->max_tok, yes_no(g->capture), rg->min_tok,
                       rg->max_tok, yes_no(rg->capture));
        int32_t common = g->n_nodes < rg->n_nodes ? g->n_nodes : rg->n_nodes;
        for (int32_t i = 0; i < common; i++) TRY(check_node(c, g, i, &rg->nodes[i]));
        if (g->n_nodes > rg->n_nodes) {
            char label[192];
            node_label(p, g, common, label, sizeof label);
            return bad(c, g->nodes[common].line,
                       "%s: the model's graph ends before this node (%s "
                       "has %d nodes)",
                       label, g->name, rg->n_nodes);
        }
        if (g->n_nodes < rg->n_nodes) {
            char label[192];
            node_label(ref, rg, common, label, sizeof label);
            return bad(c, g->line,
                       "program %s: %d nodes, the model needs %d: %s and what follows "
                       "are missing",
                       g->name, g->n_nodes, rg->n_nodes, label);
        }
    }
    const int line = qp_plan_line(p, "programs");
    for (int32_t k = 0; k < ref->n_programs; k++)
        if (qp_plan_program_by_name(p, ref->programs[k].name) < 0)
            return bad(c, line,
                       "programs: no program %s, which the model "
                       "needs (its programs: %s)",
                       ref->programs[k].name, progs);
    return QP_OK;
}

/* --- entry points ----------------------------------------------------------------------- */

enum qp_status qp_semantics_new(const struct qp_gguf *g, struct qp_semantics **out,
                                struct qp_error *err) {
    *out = calloc(1, sizeof **out);
    if (!*out) return qp_error_set(err, QP_ERR_NOMEM, "out of memory");
    (*out)->g = g;
    return QP_OK;
}

void qp_semantics_free(struct qp_semantics *s) {
    if (!s) return;
    qp_plan_free(s->ref);
    free(s);
}

enum qp_status qp_semantics_check(struct qp_semantics *s, const struct qp_plan *p,
                                  struct qp_error *err) {
    struct sc c = {p, NULL, p->source ? p->source : "(plan)", err};
    struct qp_compile_options o;
    TRY(plan_options(&c, &o));
    if (!s->ref || !same_options(&s->o, &o)) TRY(build_reference(s, &c, &o));
    c.ref = s->ref;
    TRY(check_hparams(&c));
    TRY(check_weights(&c));
    TRY(check_buffers(&c));
    return check_programs(&c);
}

enum qp_status qp_plan_check_semantics(const struct qp_plan *p, const struct qp_gguf *g,
                                       struct qp_error *err) {
    struct qp_semantics *s;
    TRY(qp_semantics_new(g, &s, err));
    enum qp_status st = qp_semantics_check(s, p, err);
    qp_semantics_free(s);
    return st;
}
