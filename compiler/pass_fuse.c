/* pass_fuse.c — the five fusion passes, each a named rewrite of the graph (programs[QP_BUILD_GRAPH]
 * while compiling), each switchable with `qplan compile --no-fuse NAME`.
 *
 *   fuse_norm      rms_norm(a) → b, read only by linears  ⇒  those linears read a with an
 *                  rms_norm prologue (the norm is recomputed per linear; fuse_qkv and
 *                  fuse_swiglu then leave one linear per norm)
 *   fuse_qkv       linear q, k, v (same input) + rope q + rope k + kv_write  ⇒  one linear with
 *                  the rope_kv epilogue; one stacked weight (and bias) when the three types
 *                  agree, three parts otherwise (Q4_K_M files mix Q5_0 and Q8_0 in attn_v)
 *   fuse_swiglu    linear gate, up (same input) + swiglu  ⇒  one linear, swiglu epilogue;
 *                  stacked weight when the types agree, two parts otherwise
 *   fuse_residual  linear → t; x = x + t  ⇒  linear with the residual epilogue, in place on x
 *   fuse_lm_head   [rms_norm →] linear → logits; argmax(logits)  ⇒  one linear with the
 *                  rms_norm prologue and the argmax epilogue
 *
 * Patterns are matched on consecutive nodes as the lowerings emit them; a rewrite happens only
 * when the buffers it stops writing are read by no later node (before being overwritten), so
 * every fused graph computes what the unfused one does. Deleted nodes are marked with op
 * QP_OP_COUNT and compacted at the end of each pass.
 */
#include <stdio.h>
#include <string.h>

#include "compile_internal.h"

const char *qp_pass_name(enum qp_pass p) {
    switch (p) {
    case QP_PASS_FUSE_NORM: return "fuse_norm";
    case QP_PASS_FUSE_QKV: return "fuse_qkv";
    case QP_PASS_FUSE_SWIGLU: return "fuse_swiglu";
    case QP_PASS_FUSE_RESIDUAL: return "fuse_residual";
    case QP_PASS_FUSE_LM_HEAD: return "fuse_lm_head";
    case QP_PASS_COUNT: break;
    }
    return "unknown";
}

int qp_pass_from_name(const char *name) {
    for (int i = 0; i < QP_PASS_COUNT; i++) {
        const char *n = qp_pass_name((enum qp_pass)i);
        if (strcmp(name, n) == 0 || strcmp(name, n + 5) == 0) return i; /* "norm" = fuse_norm */
    }
    return -1;
}

#define DELETED QP_OP_COUNT

static bool reads(const struct qp_plan_node *n, int32_t b) {
    for (int32_t k = 0; k < n->n_in; k++)
        if (n->in[k] == b) return true;
    return false;
}

/* Is b's value (as it stands after node from - 1) read by node from or later? */
static bool read_later(const struct qp_plan_program *g, int32_t from, int32_t b) {
    for (int32_t j = from; j < g->n_nodes; j++) {
        const struct qp_plan_node *n = &g->nodes[j];
        if (n->op == DELETED) continue;
        if (reads(n, b)) return true;
        if (n->out == b) return false;
    }
    return false;
}

static bool plain_linear(const struct qp_plan_node *n) {
    return n->op == QP_OP_LINEAR && n->epilogue == QP_EPILOGUE_NONE && n->n_in == 1;
}

/* Folds the rms_norm at node i into every linear that reads its output; false (nothing
 * changed) unless all readers are linears without a prologue and the norm's input is not
 * overwritten before the last of them. */
static bool fold_norm(struct qp_plan_program *g, int32_t i) {
    struct qp_plan_node *nn = &g->nodes[i];
    if (nn->op != QP_OP_RMS_NORM) return false;
    int32_t a = nn->in[0], b = nn->out, last = -1;
    for (int32_t j = i + 1; j < g->n_nodes; j++) {
        const struct qp_plan_node *n = &g->nodes[j];
        if (n->op == DELETED) continue;
        if (reads(n, b)) {
            if (n->op != QP_OP_LINEAR || n->prologue != QP_PROLOGUE_NONE || n->in[0] != b ||
                (n->n_in > 1 && n->in[1] == b) || n->rows != nn->rows)
                return false;
            last = j;
        }
        if (n->out == b && !reads(n, b)) break;
        if (n->out == a && last < 0) return false; /* input changes before a reader */
        if (n->out == a) {
            /* a changes here: fine only if no later node reads b */
            if (read_later(g, j + 1, b)) return false;
            break;
        }
    }
    if (last < 0) return false;
    for (int32_t j = i + 1; j <= last; j++) {
        struct qp_plan_node *n = &g->nodes[j];
        if (n->op == DELETED || !reads(n, b)) continue;
        n->in[0] = a;
        n->prologue = QP_PROLOGUE_RMS_NORM;
        n->norm = nn->norm;
        n->params.eps = nn->params.eps;
    }
    nn->op = DELETED;
    return true;
}

static int pass_norm(struct qp_plan *p) {
    struct qp_plan_program *g = &p->programs[QP_BUILD_GRAPH];
    int count = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) count += fold_norm(g, i);
    return count;
}

/* Name for a stacked weight: the first source's name with `from` replaced by `to`, or with
 * `suffix` appended when it does not contain `from`. */
static void stacked_name(char *dst, size_t n, const char *src, const char *from, const char *to) {
    const char *at = strstr(src, from);
    if (at)
        snprintf(dst, n, "%.*s%s%s", (int)(at - src), src, to, at + strlen(from));
    else
        snprintf(dst, n, "%s.%s", src, to);
}

/* Merges the single-source weights ws[0..k) into one stacked weight (types must agree) or
 * returns them as k parts. */
static enum qp_status merge_weights(struct qp_plan *p, const int32_t *ws, int k, bool stack,
                                    const char *from, const char *to, int32_t *out, int *n_out,
                                    struct qp_error *err) {
    if (!stack) {
        for (int i = 0; i < k; i++) out[i] = ws[i];
        *n_out = k;
        return QP_OK;
    }
    const char *names[QP_OP_MAX_PARTS];
    int64_t parts[QP_OP_MAX_PARTS], sum = 0;
    const struct qp_plan_weight *w0 = &p->weights[ws[0]];
    bool vec = w0->rows == 1;
    for (int i = 0; i < k; i++) {
        const struct qp_plan_weight *w = &p->weights[ws[i]];
        names[i] = w->from[0];
        parts[i] = vec ? w->cols : w->rows;
        sum += parts[i];
    }
    char name[160];
    stacked_name(name, sizeof name, w0->name, from, to);
    int32_t type = w0->type, cols = (int32_t)w0->cols;
    enum qp_status st = vec ? qp_build_weight(p, name, type, 1, sum, k, names, parts, out, err)
                            : qp_build_weight(p, name, type, sum, cols, k, names, parts, out, err);
    *n_out = 1;
    return st;
}

static bool single(const struct qp_plan *p, const struct qp_plan_node *n) {
    return n->n_weights == 1 && p->weights[n->weights[0]].n_from == 1 &&
           (n->n_bias == 0 || (n->n_bias == 1 && p->weights[n->bias[0]].n_from == 1));
}

static bool same_input(const struct qp_plan_node *a, const struct qp_plan_node *b) {
    return a->in[0] == b->in[0] && a->prologue == b->prologue && a->norm == b->norm &&
           a->rows == b->rows && a->n_bias == b->n_bias;
}

static bool types_agree(const struct qp_plan *p, const struct qp_plan_node *const *ns, int k) {
    for (int i = 1; i < k; i++)
        if (p->weights[ns[i]->weights[0]].type != p->weights[ns[0]->weights[0]].type) return false;
    return true;
}

static int pass_qkv(struct qp_plan *p, struct qp_error *err) {
    struct qp_plan_program *g = &p->programs[QP_BUILD_GRAPH];
    int count = 0;
    for (int32_t i = 0; i + 5 < g->n_nodes; i++) {
        struct qp_plan_node *nq = &g->nodes[i], *nk = nq + 1, *nv = nq + 2;
        struct qp_plan_node *rq = nq + 3, *rk = nq + 4, *kw = nq + 5;
        if (!plain_linear(nq) || !plain_linear(nk) || !plain_linear(nv)) continue;
        if (!same_input(nq, nk) || !same_input(nq, nv) || !single(p, nq) || !single(p, nk) ||
            !single(p, nv))
            continue;
        int32_t q = nq->out, k = nk->out, v = nv->out;
        if (rq->op != QP_OP_ROPE || rq->out != q || rk->op != QP_OP_ROPE || rk->out != k ||
            kw->op != QP_OP_KV_WRITE || kw->in[0] != k || kw->in[1] != v)
            continue;
        if (q == k || q == v || k == v || read_later(g, i + 6, k) || read_later(g, i + 6, v))
            continue;
        const struct qp_plan_node *ns[3] = {nq, nk, nv};
        bool stack = types_agree(p, ns, 3);
        int32_t w3[3] = {nq->weights[0], nk->weights[0], nv->weights[0]};
        int32_t b3[3] = {nq->bias[0], nk->bias[0], nv->bias[0]};
        int32_t wo[3], bo[3];
        int nw, nb = 0;
        if (merge_weights(p, w3, 3, stack, "attn_q.", "attn_qkv.", wo, &nw, err) != QP_OK)
            return -1;
        if (nq->n_bias &&
            merge_weights(p, b3, 3, stack, "attn_q.", "attn_qkv.", bo, &nb, err) != QP_OK)
            return -1;
        /* qp_build_weight may have moved p->weights but not g->nodes: pointers stay valid */
        nq->n_weights = nw;
        memcpy(nq->weights, wo, sizeof wo);
        nq->n_bias = nb;
        memcpy(nq->bias, bo, sizeof bo);
        nq->epilogue = QP_EPILOGUE_ROPE_KV;
        nq->params.n_head = kw->params.n_head;
        nq->params.n_head_kv = kw->params.n_head_kv;
        nq->params.head_dim = kw->params.head_dim;
        nq->params.rope_base = rq->params.rope_base;
        nq->params.layer = kw->params.layer;
        nk->op = nv->op = rq->op = rk->op = kw->op = DELETED;
        count++;
        i += 5;
    }
    return count;
}

static int pass_swiglu(struct qp_plan *p, struct qp_error *err) {
    struct qp_plan_program *g = &p->programs[QP_BUILD_GRAPH];
    int count = 0;
    for (int32_t i = 0; i + 2 < g->n_nodes; i++) {
        struct qp_plan_node *ng = &g->nodes[i], *nu = ng + 1, *sw = ng + 2;
        if (!plain_linear(ng) || !plain_linear(nu) || !same_input(ng, nu) || !single(p, ng) ||
            !single(p, nu) || sw->op != QP_OP_SWIGLU || sw->in[0] != ng->out ||
            sw->in[1] != nu->out || ng->out == nu->out)
            continue;
        if (read_later(g, i + 3, ng->out) || read_later(g, i + 3, nu->out)) continue;
        if (p->weights[ng->weights[0]].rows != p->weights[nu->weights[0]].rows) continue;
        const struct qp_plan_node *ns[2] = {ng, nu};
        bool stack = types_agree(p, ns, 2);
        int32_t w2[2] = {ng->weights[0], nu->weights[0]}, b2[2] = {ng->bias[0], nu->bias[0]};
        int32_t wo[QP_OP_MAX_PARTS] = {0}, bo[QP_OP_MAX_PARTS] = {0};
        int nw, nb = 0;
        if (merge_weights(p, w2, 2, stack, "ffn_gate.", "ffn_gate_up.", wo, &nw, err) != QP_OK)
            return -1;
        if (ng->n_bias &&
            merge_weights(p, b2, 2, stack, "ffn_gate.", "ffn_gate_up.", bo, &nb, err) != QP_OK)
            return -1;
        ng->n_weights = nw;
        memcpy(ng->weights, wo, sizeof wo);
        ng->n_bias = nb;
        memcpy(ng->bias, bo, sizeof bo);
        ng->epilogue = QP_EPILOGUE_SWIGLU;
        ng->out = sw->out;
        nu->op = sw->op = DELETED;
        count++;
        i += 2;
    }
    return count;
}

static int pass_residual(struct qp_plan *p) {
    struct qp_plan_program *g = &p->programs[QP_BUILD_GRAPH];
    int count = 0;
    for (int32_t i = 0; i + 1 < g->n_nodes; i++) {
        struct qp_plan_node *nl = &g->nodes[i], *ad = nl + 1;
        if (!plain_linear(nl) || ad->op != QP_OP_ADD || nl->rows != ad->rows) continue;
        int32_t t = nl->out, x;
        if (ad->in[1] == t) x = ad->in[0];
        else if (ad->in[0] == t) x = ad->in[1];
        else continue;
        if (x == t || ad->out != x || nl->in[0] == x || read_later(g, i + 2, t)) continue;
        nl->n_in = 2;
        nl->in[1] = x;
        nl->out = x;
        nl->epilogue = QP_EPILOGUE_RESIDUAL;
        ad->op = DELETED;
        count++;
        i += 1;
    }
    return count;
}

static int pass_lm_head(struct qp_plan *p) {
    struct qp_plan_program *g = &p->programs[QP_BUILD_GRAPH];
    int count = 0;
    for (int32_t i = 0; i + 1 < g->n_nodes; i++) {
        struct qp_plan_node *nl = &g->nodes[i], *am = nl + 1;
        if (!plain_linear(nl) || am->op != QP_OP_ARGMAX || am->in[0] != nl->out ||
            am->rows != nl->rows)
            continue;
        nl->epilogue = QP_EPILOGUE_ARGMAX;
        am->op = DELETED;
        /* the final norm, when fuse_norm did not already fold it */
        if (nl->prologue == QP_PROLOGUE_NONE && i > 0) fold_norm(g, i - 1);
        count++;
    }
    return count;
}

int qp_pass_run(struct qp_plan *p, enum qp_pass pass, struct qp_error *err) {
    int n = -1;
    switch (pass) {
    case QP_PASS_FUSE_NORM: n = pass_norm(p); break;
    case QP_PASS_FUSE_QKV: n = pass_qkv(p, err); break;
    case QP_PASS_FUSE_SWIGLU: n = pass_swiglu(p, err); break;
    case QP_PASS_FUSE_RESIDUAL: n = pass_residual(p); break;
    case QP_PASS_FUSE_LM_HEAD: n = pass_lm_head(p); break;
    case QP_PASS_COUNT: qp_error_set(err, QP_ERR_INVALID, "unknown pass"); break;
    }
    qp_build_compact(p);
    return n;
}
