/* plan_write.c — struct qp_plan → YAML, through libyaml's emitter (events, no hand-built text).
 *
 * Deterministic: the same plan gives the same bytes (fixed key order, integers in decimal,
 * floating-point values in their shortest round-tripping form, no timestamps or paths beyond
 * what the plan holds). Optional node fields are written only when they differ from their
 * defaults, and plan_read.c reads the defaults back, so emit ▸ parse ▸ emit is byte-identical.
 * Weights and buffers are one flow mapping per line; nodes are block mappings with flow-style
 * fields, so a diff of two plans reads line by line. The flat sections (target, hparams, limits,
 * memory, step, kv_cache, a node's params, launch and scratch) are written from plan_fields.h's
 * tables, the ones plan_read.c reads them with.
 *
 * Files are written atomically: a temporary file in the target's directory, fsync, rename.
 * On any failure the temporary file is removed and the target is left as it was.
 */
#define _POSIX_C_SOURCE 200809L
#include "qp_atomic_file.h"
#include "qp_plan.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "plan_fields.h"
#include "qp_ggml.h"

struct out_buf {
    char *data;
    size_t len, cap;
    bool oom;
};

static int out_handler(void *ctx, unsigned char *buffer, size_t size) {
    struct out_buf *o = ctx;
    if (o->len + size + 1 > o->cap) {
        size_t ncap = o->cap ? o->cap : 1 << 16;
        while (ncap < o->len + size + 1) ncap *= 2;
        char *nd = realloc(o->data, ncap);
        if (!nd) {
            o->oom = true;
            return 0;
        }
        o->data = nd;
        o->cap = ncap;
    }
    memcpy(o->data + o->len, buffer, size);
    o->len += size;
    o->data[o->len] = 0;
    return 1;
}

struct em {
    yaml_emitter_t e;
    bool failed;
};

static void ev(struct em *m, yaml_event_t *event, int ok) {
    if (m->failed) {
        if (ok) yaml_event_delete(event);
        return;
    }
    if (!ok || !yaml_emitter_emit(&m->e, event)) m->failed = true;
}

static void scalar_style(struct em *m, const char *s, yaml_scalar_style_t style) {
    yaml_event_t e;
    int ok = yaml_scalar_event_initialize(&e, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1,
                                          1, style);
    ev(m, &e, ok);
}
static void str(struct em *m, const char *s) { scalar_style(m, s, YAML_PLAIN_SCALAR_STYLE); }

static void i64(struct em *m, int64_t v) {
    char b[32];
    snprintf(b, sizeof b, "%" PRId64, v);
    str(m, b);
}
static void u64(struct em *m, uint64_t v) {
    char b[32];
    snprintf(b, sizeof b, "%" PRIu64, v);
    str(m, b);
}

/* Shortest text that reads back as the same value: as a float when the value is exactly a
 * float (eps and rope_base come from GGUF f32 fields), else as a double. */
static void f64(struct em *m, double v) {
    char b[40];
    if ((double)(float)v == v) {
        for (int prec = 1; prec <= 9; prec++) {
            snprintf(b, sizeof b, "%.*g", prec, v);
            if (strtof(b, NULL) == (float)v) break;
        }
        /* the reader parses doubles: "1e-06" reads back as the double 1e-06, whose shortest
         * double form is again "1e-06", so a second emit gives the same text */
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(b, sizeof b, "%.*g", prec, v);
            if (strtod(b, NULL) == v) break;
        }
    }
    str(m, b);
}

static void map_start(struct em *m, bool flow) {
    yaml_event_t e;
    int ok = yaml_mapping_start_event_initialize(
        &e, NULL, NULL, 1, flow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE);
    ev(m, &e, ok);
}
static void map_end(struct em *m) {
    yaml_event_t e;
    int ok = yaml_mapping_end_event_initialize(&e);
    ev(m, &e, ok);
}
static void seq_start(struct em *m, bool flow) {
    yaml_event_t e;
    int ok = yaml_sequence_start_event_initialize(
        &e, NULL, NULL, 1, flow ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
    ev(m, &e, ok);
}
static void seq_end(struct em *m) {
    yaml_event_t e;
    int ok = yaml_sequence_end_event_initialize(&e);
    ev(m, &e, ok);
}

static void kv_str(struct em *m, const char *k, const char *v) { str(m, k); str(m, v); }
static void kv_i64(struct em *m, const char *k, int64_t v) { str(m, k); i64(m, v); }
static void kv_u64(struct em *m, const char *k, uint64_t v) { str(m, k); u64(m, v); }

static void shape(struct em *m, int64_t rows, int64_t cols) {
    str(m, "shape");
    seq_start(m, true);
    i64(m, rows);
    i64(m, cols);
    seq_end(m);
}

/* A flat section from its table (plan_fields.h): every field, but optional ones that hold
 * their default, in table order, as a flow or block mapping. */
static void emit_fields(struct em *m, const char *key, const struct qp_field_table *t, const void *base,
                        bool flow) {
    str(m, key);
    map_start(m, flow);
    for (int i = 0; i < t->n; i++) {
        const struct qp_field *f = &t->fields[i];
        if (qp_field_is_default(f, base)) continue;
        const char *at = (const char *)base + f->off;
        char b[32];
        str(m, f->key);
        switch (f->kind) {
        case QP_FIELD_STR: str(m, *(char *const *)at ? *(char *const *)at : ""); break;
        case QP_FIELD_I64: i64(m, *(const int64_t *)at); break;
        case QP_FIELD_I32: i64(m, *(const int32_t *)at); break;
        case QP_FIELD_U64: u64(m, *(const uint64_t *)at); break;
        case QP_FIELD_F64: f64(m, *(const double *)at); break;
        case QP_FIELD_BOOL01: str(m, *(const int32_t *)at ? "true" : "false"); break;
        case QP_FIELD_KV_TYPE: str(m, *(const int32_t *)at == QP_GGML_F32 ? "f32" : "f16"); break;
        case QP_FIELD_SM:
            snprintf(b, sizeof b, "sm_%d", (int)*(const int32_t *)at);
            str(m, b);
            break;
        }
    }
    map_end(m);
}

/* True when any field of a table holds other than its default (a section worth writing). */
static bool any_set(const struct qp_field_table *t, const void *base) {
    for (int i = 0; i < t->n; i++)
        if (!qp_field_is_default(&t->fields[i], base)) return true;
    return false;
}

static void lower_name(char *dst, size_t n, const char *src) {
    size_t i = 0;
    for (; src[i] && i + 1 < n; i++)
        dst[i] = (char)(src[i] >= 'A' && src[i] <= 'Z' ? src[i] - 'A' + 'a' : src[i]);
    dst[i] = 0;
}

static void emit_weight_refs(struct em *m, const struct qp_plan *p, const char *key,
                             const int32_t *idx, int32_t n) {
    str(m, key);
    seq_start(m, true);
    for (int32_t i = 0; i < n; i++) str(m, p->weights[idx[i]].name);
    seq_end(m);
}

static void emit_node(struct em *m, const struct qp_plan *p, const struct qp_plan_node *n) {
    const struct qp_op_desc *d = qp_op_desc(n->op);
    map_start(m, false);
    kv_str(m, "op", d ? d->name : "unknown");
    kv_str(m, "kernel", n->kernel ? n->kernel : "");
    str(m, "in");
    seq_start(m, true);
    for (int32_t i = 0; i < n->n_in; i++) str(m, p->buffers[n->in[i]].name);
    seq_end(m);
    if (n->out >= 0) kv_str(m, "out", p->buffers[n->out].name);
    if (n->n_weights) emit_weight_refs(m, p, "weights", n->weights, n->n_weights);
    if (n->n_bias) emit_weight_refs(m, p, "bias", n->bias, n->n_bias);
    if (n->norm >= 0) kv_str(m, "norm", p->weights[n->norm].name);
    if (n->prologue != QP_PROLOGUE_NONE) kv_str(m, "prologue", qp_prologue_name(n->prologue));
    if (n->epilogue != QP_EPILOGUE_NONE) kv_str(m, "epilogue", qp_epilogue_name(n->epilogue));
    if (n->rows != QP_PLAN_ROWS_ALL) kv_str(m, "rows", qp_plan_rows_name(n->rows));
    if (any_set(&qp_fields_params, &n->params)) emit_fields(m, "params", &qp_fields_params, &n->params, true);
    emit_fields(m, "launch", &qp_fields_launch, &n->launch, true);
    if (n->scratch_bytes) {
        const struct qp_scratch_view sv = {n->scratch_offset, n->scratch_bytes};
        emit_fields(m, "scratch", &qp_fields_scratch, &sv, true);
    }
    map_end(m);
}

static void emit_plan(struct em *m, const struct qp_plan *p) {
    char hash[24];
    yaml_event_t e;
    int ok = yaml_stream_start_event_initialize(&e, YAML_UTF8_ENCODING);
    ev(m, &e, ok);
    ok = yaml_document_start_event_initialize(&e, NULL, NULL, NULL, 1);
    ev(m, &e, ok);
    map_start(m, false);
    kv_i64(m, "qplan", p->version);
    emit_fields(m, "target", &qp_fields_target, &p->target, true);
    str(m, "passes");
    seq_start(m, true);
    for (int32_t i = 0; i < p->n_passes; i++) str(m, p->passes[i]);
    seq_end(m);

    str(m, "model");
    map_start(m, false);
    kv_str(m, "file", p->model.file ? p->model.file : "");
    kv_u64(m, "size", p->model.size);
    snprintf(hash, sizeof hash, "0x%016" PRIx64, p->model.header_hash);
    str(m, "header_hash");
    scalar_style(m, hash, YAML_DOUBLE_QUOTED_SCALAR_STYLE);
    map_end(m);

    emit_fields(m, "hparams", &qp_fields_hparams, &p->hparams, false);
    emit_fields(m, "limits", &qp_fields_limits, &p->limits, false);
    emit_fields(m, "memory", &qp_fields_memory, &p->memory, false);
    emit_fields(m, "step", &qp_fields_step, &p->step, true);
    emit_fields(m, "kv_cache", &qp_fields_kv, &p->kv, false);

    str(m, "weights");
    seq_start(m, false);
    for (int32_t i = 0; i < p->n_weights; i++) {
        const struct qp_plan_weight *w = &p->weights[i];
        map_start(m, true);
        kv_str(m, "name", w->name);
        kv_str(m, "type", qp_ggml_type_name(w->type));
        shape(m, w->rows, w->cols);
        kv_u64(m, "bytes", w->bytes);
        str(m, "from");
        seq_start(m, true);
        for (int32_t j = 0; j < w->n_from; j++) str(m, w->from[j]);
        seq_end(m);
        if (w->n_from > 1) {
            str(m, "parts");
            seq_start(m, true);
            for (int32_t j = 0; j < w->n_from; j++) i64(m, w->part_rows ? w->part_rows[j] : 0);
            seq_end(m);
        }
        map_end(m);
    }
    seq_end(m);

    str(m, "buffers");
    seq_start(m, false);
    for (int32_t i = 0; i < p->n_buffers; i++) {
        const struct qp_plan_buffer *b = &p->buffers[i];
        char dt[16];
        lower_name(dt, sizeof dt, qp_ggml_type_name(b->dtype));
        map_start(m, true);
        kv_str(m, "name", b->name);
        kv_str(m, "dtype", dt);
        shape(m, b->rows, b->cols);
        kv_u64(m, "offset", b->offset);
        kv_u64(m, "bytes", b->bytes);
        map_end(m);
    }
    seq_end(m);

    str(m, "programs");
    map_start(m, false);
    for (int32_t k = 0; k < p->n_programs; k++) {
        const struct qp_plan_program *g = &p->programs[k];
        str(m, g->name ? g->name : "");
        map_start(m, false);
        str(m, "tokens");
        seq_start(m, true);
        i64(m, g->min_tok);
        i64(m, g->max_tok);
        seq_end(m);
        if (g->batch) kv_str(m, "batch", "true");
        kv_str(m, "capture", g->capture ? "true" : "false");
        str(m, "nodes");
        seq_start(m, false);
        for (int32_t i = 0; i < g->n_nodes; i++) emit_node(m, p, &g->nodes[i]);
        seq_end(m);
        map_end(m);
    }
    map_end(m);

    map_end(m);
    ok = yaml_document_end_event_initialize(&e, 1);
    ev(m, &e, ok);
    ok = yaml_stream_end_event_initialize(&e);
    ev(m, &e, ok);
}

enum qp_status qp_plan_write_memory(const struct qp_plan *p, char **out, size_t *len,
                                    struct qp_error *err) {
    *out = NULL;
    *len = 0;
    struct out_buf o = {0};
    struct em m = {.failed = false};
    if (!yaml_emitter_initialize(&m.e))
        return qp_error_set(err, QP_ERR_NOMEM, "cannot initialise the YAML emitter");
    yaml_emitter_set_output(&m.e, out_handler, &o);
    yaml_emitter_set_unicode(&m.e, 1);
    yaml_emitter_set_width(&m.e, -1); /* one weight, buffer or field per line */
    yaml_emitter_set_indent(&m.e, 2);
    emit_plan(&m, p);
    if (!m.failed && !yaml_emitter_flush(&m.e)) m.failed = true;
    enum qp_status st = QP_OK;
    if (o.oom) st = qp_error_set(err, QP_ERR_NOMEM, "out of memory writing a plan");
    else if (m.failed)
        st = qp_error_set(err, QP_ERR_INVALID, "YAML emitter error: %s",
                          m.e.problem ? m.e.problem : "unknown");
    yaml_emitter_delete(&m.e);
    if (st != QP_OK) {
        free(o.data);
        return st;
    }
    *out = o.data;
    *len = o.len;
    return QP_OK;
}

enum qp_status qp_plan_write(const struct qp_plan *p, const char *path, struct qp_error *err) {
    char *text;
    size_t len;
    enum qp_status st = qp_plan_write_memory(p, &text, &len, err);
    if (st != QP_OK) return st;
    struct qp_atomic_file f;
    if ((st = qp_atomic_file_open(&f, path, err)) == QP_OK &&
        (st = qp_atomic_file_write(&f, text, len, err)) == QP_OK) {
        st = qp_atomic_file_commit(&f, err);
    }
    free(text);
    return st;
}
