/* plan_read.c — YAML plan → struct qp_plan, through libyaml's document loader.
 *
 * Owns the syntax of a plan: every mapping's keys are checked against the keys it may and
 * must have, every scalar against its type and range, and names are resolved (op names
 * through the op table, buffer and weight names through the plan's own lists). Every error
 * names the file and the line (from the node's yaml_mark) and the field's path, e.g.
 * "plan.yaml:41: weights[3].shape: expected [rows, cols]". Consistency between fields (sizes,
 * offsets, widths, liveness) is plan_validate.c's job, not this file's.
 */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "qp_plan.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "plan_fields.h"
#include "qp_ggml.h"

struct rd {
    yaml_document_t doc;
    const char *name;
    struct qp_error *err;
};

static int line_of(const yaml_node_t *n) { return (int)n->start_mark.line + 1; }

static enum qp_status fail(struct rd *r, const yaml_node_t *n, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static enum qp_status fail(struct rd *r, const yaml_node_t *n, const char *fmt, ...) {
    char what[QP_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return qp_error_set(r->err, QP_ERR_FORMAT, "%s:%d: %s", r->name, n ? line_of(n) : 0, what);
}

static yaml_node_t *node_at(struct rd *r, int i) { return yaml_document_get_node(&r->doc, i); }

static const char *scalar(const yaml_node_t *n) {
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* Value of key in mapping m, or NULL. */
static yaml_node_t *map_get(struct rd *r, yaml_node_t *m, const char *key) {
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        const char *k = scalar(node_at(r, p->key));
        if (k && strcmp(k, key) == 0) return node_at(r, p->value);
    }
    return NULL;
}

static bool in_list(const char *s, const char *const *list) {
    for (; *list; list++)
        if (strcmp(s, *list) == 0) return true;
    return false;
}

/* m must be a mapping whose keys are all in allowed (NULL-terminated), each once, and which
 * has every key of required. */
static enum qp_status check_map(struct rd *r, yaml_node_t *m, const char *what,
                                const char *const *allowed, const char *const *required) {
    if (!m || m->type != YAML_MAPPING_NODE) return fail(r, m, "%s: expected a mapping", what);
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = node_at(r, p->key);
        const char *k = scalar(kn);
        if (!k) return fail(r, kn, "%s: keys must be plain names", what);
        if (!in_list(k, allowed)) return fail(r, kn, "%s: unknown key '%s'", what, k);
        for (yaml_node_pair_t *q = m->data.mapping.pairs.start; q < p; q++) {
            const char *k2 = scalar(node_at(r, q->key));
            if (k2 && strcmp(k, k2) == 0) return fail(r, kn, "%s: duplicate key '%s'", what, k);
        }
    }
    for (; required && *required; required++)
        if (!map_get(r, m, *required))
            return fail(r, m, "%s: missing key '%s'", what, *required);
    return QP_OK;
}

static enum qp_status get_i64(struct rd *r, yaml_node_t *n, const char *what, int64_t lo,
                              int64_t hi, int64_t *out) {
    const char *s = scalar(n);
    if (!s || !*s) return fail(r, n, "%s: expected an integer", what);
    const char *d = s + (*s == '-');
    for (const char *c = d; *c; c++)
        if (*c < '0' || *c > '9') return fail(r, n, "%s: expected an integer, found '%s'", what, s);
    if (!*d) return fail(r, n, "%s: expected an integer, found '%s'", what, s);
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE || v < lo || v > hi)
        return fail(r, n, "%s: %s out of range [%lld, %lld]", what, s, (long long)lo,
                    (long long)hi);
    *out = v;
    return QP_OK;
}

/* Non-negative integers up to INT64_MAX (sizes and offsets). */
static enum qp_status get_u64(struct rd *r, yaml_node_t *n, const char *what, uint64_t *out) {
    int64_t v = 0;
    const char *s = scalar(n);
    if (s && s[0] == '-') return fail(r, n, "%s: negative value %s", what, s);
    enum qp_status st = get_i64(r, n, what, 0, INT64_MAX, &v);
    if (st == QP_OK) *out = (uint64_t)v;
    return st;
}

static enum qp_status get_i32(struct rd *r, yaml_node_t *n, const char *what, int32_t lo,
                              int32_t hi, int32_t *out) {
    int64_t v = 0;
    enum qp_status st = get_i64(r, n, what, lo, hi, &v);
    if (st == QP_OK) *out = (int32_t)v;
    return st;
}

static enum qp_status get_f64(struct rd *r, yaml_node_t *n, const char *what, double *out) {
    const char *s = scalar(n);
    if (!s || !*s) return fail(r, n, "%s: expected a number", what);
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(v))
        return fail(r, n, "%s: expected a finite number, found '%s'", what, s);
    *out = v;
    return QP_OK;
}

static enum qp_status get_bool(struct rd *r, yaml_node_t *n, const char *what, bool *out) {
    const char *s = scalar(n);
    if (s && strcmp(s, "true") == 0) *out = true;
    else if (s && strcmp(s, "false") == 0) *out = false;
    else return fail(r, n, "%s: expected true or false", what);
    return QP_OK;
}

/* A non-empty string, copied. */
static enum qp_status get_str(struct rd *r, yaml_node_t *n, const char *what, char **out) {
    const char *s = scalar(n);
    if (!s || !*s) return fail(r, n, "%s: expected a non-empty string", what);
    *out = strdup(s);
    if (!*out) return qp_error_set(r->err, QP_ERR_NOMEM, "%s: out of memory", r->name);
    return QP_OK;
}

static enum qp_status get_seq(struct rd *r, yaml_node_t *n, const char *what, int lo, int hi,
                              int *count) {
    if (!n || n->type != YAML_SEQUENCE_NODE) return fail(r, n, "%s: expected a sequence", what);
    ptrdiff_t c = n->data.sequence.items.top - n->data.sequence.items.start;
    if (c < lo || c > hi)
        return fail(r, n, "%s: expected %d to %d entries, found %td", what, lo, hi, c);
    *count = (int)c;
    return QP_OK;
}

static yaml_node_t *seq_item(struct rd *r, yaml_node_t *n, int i) {
    return node_at(r, n->data.sequence.items.start[i]);
}

/* "0x" + 16 hex digits. */
static enum qp_status get_hash(struct rd *r, yaml_node_t *n, const char *what, uint64_t *out) {
    const char *s = scalar(n);
    if (!s || strlen(s) != 18 || s[0] != '0' || s[1] != 'x')
        return fail(r, n, "%s: expected 0x and 16 hex digits", what);
    uint64_t v = 0;
    for (int i = 2; i < 18; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return fail(r, n, "%s: expected 0x and 16 hex digits, found '%s'", what, s);
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return QP_OK;
}

#define TRY(x)                                                                                 \
    do {                                                                                       \
        enum qp_status st_ = (x);                                                              \
        if (st_ != QP_OK) return st_;                                                          \
    } while (0)

/* One field of a flat section (plan_fields.h) from node n into base. */
static enum qp_status get_field(struct rd *r, yaml_node_t *n, const char *what, const struct qp_field *f,
                                void *base) {
    char *at = (char *)base + f->off;
    switch (f->kind) {
    case QP_FIELD_STR: return get_str(r, n, what, (char **)at);
    case QP_FIELD_I64: return get_i64(r, n, what, f->lo, f->hi, (int64_t *)at);
    case QP_FIELD_I32: return get_i32(r, n, what, (int32_t)f->lo, (int32_t)f->hi, (int32_t *)at);
    case QP_FIELD_U64: return get_u64(r, n, what, (uint64_t *)at);
    case QP_FIELD_F64: return get_f64(r, n, what, (double *)at);
    case QP_FIELD_BOOL01: {
        bool b = false;
        TRY(get_bool(r, n, what, &b));
        *(int32_t *)at = b;
        return QP_OK;
    }
    case QP_FIELD_KV_TYPE: {
        const char *s = scalar(n);
        if (s && strcmp(s, "f16") == 0) *(int32_t *)at = QP_GGML_F16;
        else if (s && strcmp(s, "f32") == 0) *(int32_t *)at = QP_GGML_F32;
        else return fail(r, n, "%s: expected f16 or f32, found '%s'", what, s ? s : "?");
        return QP_OK;
    }
    case QP_FIELD_SM: {
        const char *s = scalar(n);
        int64_t v = 0;
        if (!s || strncmp(s, "sm_", 3) != 0)
            return fail(r, n, "%s: expected sm_<compute capability>, e.g. sm_90, found '%s'", what,
                        s ? s : "?");
        yaml_node_t tmp = *n; /* the digits, parsed as an integer with the node's mark */
        tmp.data.scalar.value = (yaml_char_t *)(s + 3);
        TRY(get_i64(r, &tmp, what, f->lo, f->hi, &v));
        *(int32_t *)at = (int32_t)v;
        return QP_OK;
    }
    }
    return fail(r, n, "%s: internal: unknown field kind", what);
}

/* A flat section: mapping m with the table's keys (the optional ones may be absent and then hold
 * their defaults), each parsed and range-checked into base. prefix names the section in messages. */
static enum qp_status read_fields(struct rd *r, yaml_node_t *m, const char *prefix,
                                  const struct qp_field_table *t, void *base) {
    const char *allowed[24], *required[24];
    int na = 0, nr = 0;
    for (int i = 0; i < t->n && na < 23; i++) {
        allowed[na++] = t->fields[i].key;
        if (!t->fields[i].optional) required[nr++] = t->fields[i].key;
    }
    allowed[na] = NULL;
    required[nr] = NULL;
    TRY(check_map(r, m, prefix, allowed, required));
    qp_fields_set_defaults(t, base);
    for (int i = 0; i < t->n; i++) {
        yaml_node_t *v = map_get(r, m, t->fields[i].key);
        if (!v) continue;
        char what[192];
        snprintf(what, sizeof what, "%s.%s", prefix, t->fields[i].key);
        TRY(get_field(r, v, what, &t->fields[i], base));
    }
    return QP_OK;
}

static enum qp_status read_model(struct rd *r, yaml_node_t *m, struct qp_plan *p) {
    static const char *const keys[] = {"file", "size", "header_hash", NULL};
    TRY(check_map(r, m, "model", keys, keys));
    TRY(get_str(r, map_get(r, m, "file"), "model.file", &p->model.file));
    TRY(get_u64(r, map_get(r, m, "size"), "model.size", &p->model.size));
    TRY(get_hash(r, map_get(r, m, "header_hash"), "model.header_hash", &p->model.header_hash));
    return QP_OK;
}

/* shape: [rows, cols], each >= 1. */
static enum qp_status get_shape(struct rd *r, yaml_node_t *n, const char *what, int64_t *rows,
                                int64_t *cols) {
    int c = 0;
    if (!n || n->type != YAML_SEQUENCE_NODE ||
        n->data.sequence.items.top - n->data.sequence.items.start != 2)
        return fail(r, n, "%s: expected [rows, cols]", what);
    TRY(get_seq(r, n, what, 2, 2, &c));
    TRY(get_i64(r, seq_item(r, n, 0), what, 1, INT64_MAX / 2, rows));
    TRY(get_i64(r, seq_item(r, n, 1), what, 1, INT64_MAX / 2, cols));
    return QP_OK;
}

static enum qp_status get_type(struct rd *r, yaml_node_t *n, const char *what, int32_t *out) {
    const char *s = scalar(n);
    int32_t t = s ? qp_ggml_type_from_name(s) : -1;
    if (t < 0) return fail(r, n, "%s: unknown GGML type '%s'", what, s ? s : "?");
    *out = t;
    return QP_OK;
}

static enum qp_status read_weights(struct rd *r, yaml_node_t *n, struct qp_plan *p) {
    static const char *const keys[] = {"name", "type", "shape", "bytes", "from", "parts", NULL};
    static const char *const required[] = {"name", "type", "shape", "bytes", "from", NULL};
    int count = 0;
    TRY(get_seq(r, n, "weights", 0, INT32_MAX, &count));
    p->weights = calloc((size_t)count + 1, sizeof *p->weights);
    if (!p->weights) return qp_error_set(r->err, QP_ERR_NOMEM, "%s: out of memory", r->name);
    for (int i = 0; i < count; i++) {
        yaml_node_t *m = seq_item(r, n, i);
        struct qp_plan_weight *w = &p->weights[i];
        char what[96];
        p->n_weights = i + 1;
        w->line = line_of(m);
        snprintf(what, sizeof what, "weights[%d]", i);
        TRY(check_map(r, m, what, keys, required));
        snprintf(what, sizeof what, "weights[%d].name", i);
        TRY(get_str(r, map_get(r, m, "name"), what, &w->name));
        for (int j = 0; j < i; j++)
            if (strcmp(p->weights[j].name, w->name) == 0)
                return fail(r, m, "%s: duplicate weight name '%s'", what, w->name);
        snprintf(what, sizeof what, "weight '%s'.type", w->name);
        TRY(get_type(r, map_get(r, m, "type"), what, &w->type));
        snprintf(what, sizeof what, "weight '%s'.shape", w->name);
        TRY(get_shape(r, map_get(r, m, "shape"), what, &w->rows, &w->cols));
        snprintf(what, sizeof what, "weight '%s'.bytes", w->name);
        TRY(get_u64(r, map_get(r, m, "bytes"), what, &w->bytes));
        yaml_node_t *f = map_get(r, m, "from");
        int nf = 0;
        snprintf(what, sizeof what, "weight '%s'.from", w->name);
        TRY(get_seq(r, f, what, 1, 16, &nf));
        w->from = calloc((size_t)nf, sizeof *w->from);
        if (!w->from) return qp_error_set(r->err, QP_ERR_NOMEM, "%s: out of memory", r->name);
        w->part_rows = calloc((size_t)nf, sizeof *w->part_rows);
        if (!w->part_rows) return qp_error_set(r->err, QP_ERR_NOMEM, "%s: out of memory", r->name);
        for (int j = 0; j < nf; j++) {
            w->n_from = j + 1;
            TRY(get_str(r, seq_item(r, f, j), what, &w->from[j]));
        }
        yaml_node_t *pr = map_get(r, m, "parts");
        snprintf(what, sizeof what, "weight '%s'.parts", w->name);
        if (!pr && nf > 1) return fail(r, m, "%s: missing (needed with several 'from')", what);
        if (pr) {
            int np = 0;
            TRY(get_seq(r, pr, what, nf, nf, &np));
            for (int j = 0; j < np; j++)
                TRY(get_i64(r, seq_item(r, pr, j), what, 1, INT64_MAX / 2, &w->part_rows[j]));
        } else {
            w->part_rows[0] = w->rows == 1 ? w->cols : w->rows;
        }
    }
    return QP_OK;
}

static enum qp_status read_buffers(struct rd *r, yaml_node_t *n, struct qp_plan *p) {
    static const char *const keys[] = {"name", "dtype", "shape", "offset", "bytes", NULL};
    int count = 0;
    TRY(get_seq(r, n, "buffers", 0, INT32_MAX, &count));
    p->buffers = calloc((size_t)count + 1, sizeof *p->buffers);
    if (!p->buffers) return qp_error_set(r->err, QP_ERR_NOMEM, "%s: out of memory", r->name);
    for (int i = 0; i < count; i++) {
        yaml_node_t *m = seq_item(r, n, i);
        struct qp_plan_buffer *b = &p->buffers[i];
        char what[96];
        p->n_buffers = i + 1;
        b->line = line_of(m);
        snprintf(what, sizeof what, "buffers[%d]", i);
        TRY(check_map(r, m, what, keys, keys));
        snprintf(what, sizeof what, "buffers[%d].name", i);
        TRY(get_str(r, map_get(r, m, "name"), what, &b->name));
        for (int j = 0; j < i; j++)
            if (strcmp(p->buffers[j].name, b->name) == 0)
                return fail(r, m, "%s: duplicate buffer name '%s'", what, b->name);
        snprintf(what, sizeof what, "buffer '%s'.dtype", b->name);
        TRY(get_type(r, map_get(r, m, "dtype"), what, &b->dtype));
        snprintf(what, sizeof what, "buffer '%s'.shape", b->name);
        TRY(get_shape(r, map_get(r, m, "shape"), what, &b->rows, &b->cols));
        snprintf(what, sizeof what, "buffer '%s'.offset", b->name);
        TRY(get_u64(r, map_get(r, m, "offset"), what, &b->offset));
        snprintf(what, sizeof what, "buffer '%s'.bytes", b->name);
        TRY(get_u64(r, map_get(r, m, "bytes"), what, &b->bytes));
    }
    return QP_OK;
}

/* A list of weight names → indices. */
static enum qp_status get_weight_refs(struct rd *r, const struct qp_plan *p, yaml_node_t *n,
                                      const char *what, int32_t *idx, int32_t *count) {
    int c = 0;
    TRY(get_seq(r, n, what, 0, QP_OP_MAX_PARTS, &c));
    for (int i = 0; i < c; i++) {
        yaml_node_t *it = seq_item(r, n, i);
        const char *s = scalar(it);
        int32_t k = s ? qp_plan_find_weight(p, s) : -1;
        if (k < 0) return fail(r, it, "%s: no weight named '%s' in the plan", what, s ? s : "?");
        idx[i] = k;
    }
    *count = c;
    return QP_OK;
}

static enum qp_status get_buffer_ref(struct rd *r, const struct qp_plan *p, yaml_node_t *n,
                                     const char *what, int32_t *out) {
    const char *s = scalar(n);
    int32_t k = s ? qp_plan_find_buffer(p, s) : -1;
    if (k < 0) return fail(r, n, "%s: no buffer named '%s' in the plan", what, s ? s : "?");
    *out = k;
    return QP_OK;
}

static enum qp_status read_node(struct rd *r, const struct qp_plan *p, yaml_node_t *m,
                                const char *prog, int i, struct qp_plan_node *nd) {
    static const char *const keys[] = {"op",       "kernel",   "in",   "out",    "weights",
                                       "bias",     "norm",     "prologue", "epilogue",
                                       "rows",     "params",   "launch", "scratch", NULL};
    static const char *const required[] = {"op", "kernel", "in", "launch", NULL};
    char what[128];
    snprintf(what, sizeof what, "programs.%s[%d]", prog, i);
    nd->line = line_of(m);
    nd->out = -1;
    nd->norm = -1;
    nd->params.layer = -1;
    TRY(check_map(r, m, what, keys, required));

    yaml_node_t *opn = map_get(r, m, "op");
    const char *ops = scalar(opn);
    const struct qp_op_desc *d = ops ? qp_op_find(ops) : NULL;
    if (!d) return fail(r, opn, "%s.op: unknown op '%s'", what, ops ? ops : "?");
    nd->op = d->op;
    snprintf(what, sizeof what, "programs.%s[%d] (%s)", prog, i, d->name);
    char fw[160];

    snprintf(fw, sizeof fw, "%s.kernel", what);
    TRY(get_str(r, map_get(r, m, "kernel"), fw, &nd->kernel));

    yaml_node_t *in = map_get(r, m, "in");
    int nin = 0;
    snprintf(fw, sizeof fw, "%s.in", what);
    TRY(get_seq(r, in, fw, 0, QP_PLAN_MAX_IN, &nin));
    for (int k = 0; k < nin; k++) TRY(get_buffer_ref(r, p, seq_item(r, in, k), fw, &nd->in[k]));
    nd->n_in = nin;

    yaml_node_t *v;
    if ((v = map_get(r, m, "out"))) {
        snprintf(fw, sizeof fw, "%s.out", what);
        TRY(get_buffer_ref(r, p, v, fw, &nd->out));
    }
    if ((v = map_get(r, m, "weights"))) {
        snprintf(fw, sizeof fw, "%s.weights", what);
        TRY(get_weight_refs(r, p, v, fw, nd->weights, &nd->n_weights));
    }
    if ((v = map_get(r, m, "bias"))) {
        snprintf(fw, sizeof fw, "%s.bias", what);
        TRY(get_weight_refs(r, p, v, fw, nd->bias, &nd->n_bias));
    }
    if ((v = map_get(r, m, "norm"))) {
        const char *s = scalar(v);
        nd->norm = s ? qp_plan_find_weight(p, s) : -1;
        if (nd->norm < 0)
            return fail(r, v, "%s.norm: no weight named '%s' in the plan", what, s ? s : "?");
    }
    if ((v = map_get(r, m, "prologue"))) {
        const char *s = scalar(v);
        int k = s ? qp_prologue_from_name(s) : -1;
        if (k < 0) return fail(r, v, "%s.prologue: unknown prologue '%s'", what, s ? s : "?");
        nd->prologue = (enum qp_prologue)k;
    }
    if ((v = map_get(r, m, "epilogue"))) {
        const char *s = scalar(v);
        int k = s ? qp_epilogue_from_name(s) : -1;
        if (k < 0) return fail(r, v, "%s.epilogue: unknown epilogue '%s'", what, s ? s : "?");
        nd->epilogue = (enum qp_epilogue)k;
    }
    if ((v = map_get(r, m, "rows"))) {
        const char *s = scalar(v);
        if (s && strcmp(s, "all") == 0) nd->rows = QP_PLAN_ROWS_ALL;
        else if (s && strcmp(s, "last") == 0) nd->rows = QP_PLAN_ROWS_LAST;
        else return fail(r, v, "%s.rows: expected all or last, found '%s'", what, s ? s : "?");
    }
    if ((v = map_get(r, m, "params"))) {
        snprintf(fw, sizeof fw, "%s.params", what);
        TRY(read_fields(r, v, fw, &qp_fields_params, &nd->params));
    }
    snprintf(fw, sizeof fw, "%s.launch", what);
    TRY(read_fields(r, map_get(r, m, "launch"), fw, &qp_fields_launch, &nd->launch));
    if ((v = map_get(r, m, "scratch"))) {
        struct qp_scratch_view sv;
        snprintf(fw, sizeof fw, "%s.scratch", what);
        TRY(read_fields(r, v, fw, &qp_fields_scratch, &sv));
        nd->scratch_offset = sv.offset;
        nd->scratch_bytes = sv.bytes;
    }
    return QP_OK;
}

/* programs: a mapping of program name to {tokens: [min, max], batch (default false), capture,
 * nodes}. */
static enum qp_status read_programs(struct rd *r, yaml_node_t *m, struct qp_plan *p) {
    if (!m || m->type != YAML_MAPPING_NODE) return fail(r, m, "programs: expected a mapping");
    ptrdiff_t count = m->data.mapping.pairs.top - m->data.mapping.pairs.start;
    if (count < 1 || count > 64) return fail(r, m, "programs: expected 1 to 64 programs, found %td", count);
    p->programs = calloc((size_t)count, sizeof *p->programs);
    if (!p->programs) return qp_error_set(r->err, QP_ERR_NOMEM, "%s: out of memory", r->name);
    static const char *const pk[] = {"tokens", "batch", "capture", "nodes", NULL};
    static const char *const pk_req[] = {"tokens", "capture", "nodes", NULL};
    for (ptrdiff_t k = 0; k < count; k++) {
        yaml_node_pair_t *pair = &m->data.mapping.pairs.start[k];
        yaml_node_t *kn = node_at(r, pair->key), *g = node_at(r, pair->value);
        struct qp_plan_program *pg = &p->programs[k];
        p->n_programs = (int32_t)k + 1;
        char what[96];
        TRY(get_str(r, kn, "programs: program name", &pg->name));
        pg->line = line_of(kn);
        if (qp_plan_program_by_name(p, pg->name) != (int32_t)k)
            return fail(r, kn, "programs: duplicate program '%s'", pg->name);
        snprintf(what, sizeof what, "programs.%s", pg->name);
        TRY(check_map(r, g, what, pk, pk_req));
        yaml_node_t *tk = map_get(r, g, "tokens");
        int nt = 0;
        snprintf(what, sizeof what, "programs.%s.tokens", pg->name);
        TRY(get_seq(r, tk, what, 2, 2, &nt));
        TRY(get_i32(r, seq_item(r, tk, 0), what, 1, INT32_MAX, &pg->min_tok));
        TRY(get_i32(r, seq_item(r, tk, 1), what, 1, INT32_MAX, &pg->max_tok));
        snprintf(what, sizeof what, "programs.%s.capture", pg->name);
        TRY(get_bool(r, map_get(r, g, "capture"), what, &pg->capture));
        yaml_node_t *bn = map_get(r, g, "batch");
        snprintf(what, sizeof what, "programs.%s.batch", pg->name);
        if (bn) TRY(get_bool(r, bn, what, &pg->batch));
        yaml_node_t *nodes = map_get(r, g, "nodes");
        int n = 0;
        snprintf(what, sizeof what, "programs.%s.nodes", pg->name);
        TRY(get_seq(r, nodes, what, 1, INT32_MAX, &n));
        pg->nodes = calloc((size_t)n, sizeof *pg->nodes);
        if (!pg->nodes) return qp_error_set(r->err, QP_ERR_NOMEM, "%s: out of memory", r->name);
        for (int i = 0; i < n; i++) {
            pg->n_nodes = i + 1;
            TRY(read_node(r, p, seq_item(r, nodes, i), pg->name, i, &pg->nodes[i]));
        }
    }
    return QP_OK;
}

/* passes: [name, ...], the compiler's record of the fusion passes that ran. */
static enum qp_status read_passes(struct rd *r, yaml_node_t *n, struct qp_plan *p) {
    int count = 0;
    TRY(get_seq(r, n, "passes", 0, 64, &count));
    p->passes = calloc((size_t)count + 1, sizeof *p->passes);
    if (!p->passes) return qp_error_set(r->err, QP_ERR_NOMEM, "%s: out of memory", r->name);
    for (int i = 0; i < count; i++) {
        p->n_passes = i + 1;
        TRY(get_str(r, seq_item(r, n, i), "passes", &p->passes[i]));
    }
    return QP_OK;
}

/* The lines of the top-level sections and of the fields of the flat ones (qp_plan_line). root is
 * a mapping whose keys check_map accepted. */
static bool is_flat(const char *section) {
    static const char *const flat[] = {"target", "model", "hparams", "limits", "memory",
                                       "step", "kv_cache", NULL};
    return in_list(section, flat);
}

static void add_line(struct qp_plan *p, const char *section, const char *key, int line) {
    struct qp_plan_line *l = &p->lines[p->n_lines++];
    if (key) snprintf(l->path, sizeof l->path, "%s.%.20s", section, key);
    else snprintf(l->path, sizeof l->path, "%s", section);
    l->line = line;
}

static enum qp_status record_lines(struct rd *r, yaml_node_t *root, struct qp_plan *p) {
    yaml_node_pair_t *first = root->data.mapping.pairs.start, *end = root->data.mapping.pairs.top;
    size_t n = 0;
    for (yaml_node_pair_t *s = first; s < end; s++) {
        yaml_node_t *v = node_at(r, s->value);
        n++;
        if (is_flat(scalar(node_at(r, s->key))) && v && v->type == YAML_MAPPING_NODE)
            n += (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
    }
    if (!(p->lines = calloc(n + 1, sizeof *p->lines)))
        return qp_error_set(r->err, QP_ERR_NOMEM, "%s: out of memory", r->name);
    for (yaml_node_pair_t *s = first; s < end; s++) {
        yaml_node_t *k = node_at(r, s->key), *v = node_at(r, s->value);
        const char *section = scalar(k);
        add_line(p, section, NULL, line_of(k));
        if (!is_flat(section) || !v || v->type != YAML_MAPPING_NODE) continue;
        for (yaml_node_pair_t *f = v->data.mapping.pairs.start; f < v->data.mapping.pairs.top; f++) {
            yaml_node_t *fk = node_at(r, f->key);
            if (scalar(fk)) add_line(p, section, scalar(fk), line_of(fk));
        }
    }
    return QP_OK;
}

static enum qp_status read_root(struct rd *r, struct qp_plan *p) {
    static const char *const keys[] = {"qplan",  "target",   "passes",   "model",  "hparams",
                                       "limits", "memory",   "step",     "kv_cache",
                                       "weights", "buffers", "programs", NULL};
    yaml_node_t *root = yaml_document_get_root_node(&r->doc);
    if (!root) return fail(r, NULL, "empty document: not a plan");
    if (root->type == YAML_MAPPING_NODE) { /* the version first: an old plan gets the advice */
        yaml_node_t *vn = map_get(r, root, "qplan");
        if (vn) {
            TRY(get_i32(r, vn, "qplan (format version)", 0, INT32_MAX, &p->version));
            if (p->version != QP_PLAN_VERSION)
                return fail(r, vn, "plan format version %d, this build reads %d: compile the plan "
                            "again with this build's qplan compile", p->version, QP_PLAN_VERSION);
        }
    }
    TRY(check_map(r, root, "plan", keys, keys));
    TRY(record_lines(r, root, p));
    TRY(read_fields(r, map_get(r, root, "target"), "target", &qp_fields_target, &p->target));
    TRY(read_passes(r, map_get(r, root, "passes"), p));
    TRY(read_model(r, map_get(r, root, "model"), p));
    TRY(read_fields(r, map_get(r, root, "hparams"), "hparams", &qp_fields_hparams, &p->hparams));
    TRY(read_fields(r, map_get(r, root, "limits"), "limits", &qp_fields_limits, &p->limits));
    TRY(read_fields(r, map_get(r, root, "memory"), "memory", &qp_fields_memory, &p->memory));
    TRY(read_fields(r, map_get(r, root, "step"), "step", &qp_fields_step, &p->step));
    TRY(read_fields(r, map_get(r, root, "kv_cache"), "kv_cache", &qp_fields_kv, &p->kv));
    TRY(read_weights(r, map_get(r, root, "weights"), p));
    TRY(read_buffers(r, map_get(r, root, "buffers"), p));
    TRY(read_programs(r, map_get(r, root, "programs"), p));
    return QP_OK;
}

enum qp_status qp_plan_read_memory(const char *text, size_t len, const char *name,
                                   struct qp_plan **out, struct qp_error *err) {
    *out = NULL;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return qp_error_set(err, QP_ERR_NOMEM, "%s: cannot initialise the YAML parser", name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    struct rd r = {.name = name, .err = err};
    if (!yaml_parser_load(&parser, &r.doc)) {
        enum qp_status st = qp_error_set(
            err, QP_ERR_FORMAT, "%s:%zu:%zu: YAML error: %s%s%s", name,
            parser.problem_mark.line + 1, parser.problem_mark.column + 1,
            parser.problem ? parser.problem : "unknown", parser.context ? " " : "",
            parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return st;
    }
    struct qp_plan *p = qp_plan_new();
    enum qp_status st = p ? read_root(&r, p)
                          : qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", name);
    if (st == QP_OK) {
        /* One document per plan: a second one is a mistake (a concatenated file). */
        yaml_document_t extra;
        if (!yaml_parser_load(&parser, &extra)) {
            st = qp_error_set(err, QP_ERR_FORMAT, "%s: YAML error after the plan document", name);
        } else {
            if (yaml_document_get_root_node(&extra))
                st = qp_error_set(err, QP_ERR_FORMAT, "%s:%zu: a second YAML document", name,
                                  extra.start_mark.line + 1);
            yaml_document_delete(&extra);
        }
    }
    if (st == QP_OK) {
        p->source = strdup(name);
        if (!p->source) st = qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", name);
    }
    yaml_document_delete(&r.doc);
    yaml_parser_delete(&parser);
    if (st != QP_OK) {
        qp_plan_free(p);
        return st;
    }
    *out = p;
    return QP_OK;
}

enum qp_status qp_plan_read(const char *path, struct qp_plan **out, struct qp_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return qp_error_set(err, QP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return qp_error_set(err, QP_ERR_IO, "%s: not a regular file", path);
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 1 << 16;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                fclose(f);
                return qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    bool bad = ferror(f);
    int read_errno = errno;
    fclose(f);
    if (bad) {
        free(buf);
        return qp_error_set(err, QP_ERR_IO, "%s: read error: %s", path, strerror(read_errno));
    }
    enum qp_status st = qp_plan_read_memory(buf, len, path, out, err);
    free(buf);
    return st;
}
