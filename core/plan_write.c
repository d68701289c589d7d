/* plan_write.c — struct qp_plan → YAML, through libyaml's emitter (events, no hand-built text).
 *
 * Deterministic: the same plan gives the same bytes (fixed key order, integers in decimal,
 * floating-point values in their shortest round-tripping form, no timestamps or paths beyond
 * what the plan holds). Optional node fields are written only when they differ from their
 * defaults, and plan_read.c reads the defaults back, so emit ▸ parse ▸ emit is byte-identical.
 * Weights and buffers are one flow mapping per line; nodes are block mappings with flow-style
 * fields, so a diff of two plans reads line by line.
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
static void kv_f64(struct em *m, const char *k, double v) { str(m, k); f64(m, v); }

static void shape(struct em *m, int64_t rows, int64_t cols) {
    str(m, "shape");
    seq_start(m, true);
    i64(m, rows);
    i64(m, cols);
    seq_end(m);
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
    const struct qp_plan_params *pp = &n->params;
    if (pp->eps != 0 || pp->n_head || pp->n_head_kv || pp->head_dim || pp->rope_base != 0 ||
        pp->layer >= 0) {
        str(m, "params");
        map_start(m, true);
        if (pp->eps != 0) kv_f64(m, "eps", pp->eps);
        if (pp->n_head) kv_i64(m, "n_head", pp->n_head);
        if (pp->n_head_kv) kv_i64(m, "n_head_kv", pp->n_head_kv);
        if (pp->head_dim) kv_i64(m, "head_dim", pp->head_dim);
        if (pp->rope_base != 0) kv_f64(m, "rope_base", pp->rope_base);
        if (pp->layer >= 0) kv_i64(m, "layer", pp->layer);
        map_end(m);
    }
    str(m, "launch");
    map_start(m, true);
    kv_i64(m, "block", n->launch.block);
    kv_i64(m, "rows_per_block", n->launch.rows_per_block);
    kv_i64(m, "split", n->launch.split);
    map_end(m);
    if (n->scratch_bytes) {
        str(m, "scratch");
        map_start(m, true);
        kv_u64(m, "offset", n->scratch_offset);
        kv_u64(m, "bytes", n->scratch_bytes);
        map_end(m);
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
    kv_str(m, "target", p->target ? p->target : "");

    str(m, "model");
    map_start(m, false);
    kv_str(m, "file", p->model.file ? p->model.file : "");
    kv_u64(m, "size", p->model.size);
    snprintf(hash, sizeof hash, "0x%016" PRIx64, p->model.header_hash);
    str(m, "header_hash");
    scalar_style(m, hash, YAML_DOUBLE_QUOTED_SCALAR_STYLE);
    map_end(m);

    const struct qp_plan_hparams *h = &p->hparams;
    str(m, "hparams");
    map_start(m, false);
    kv_str(m, "arch", h->arch ? h->arch : "");
    kv_i64(m, "n_vocab", h->n_vocab);
    kv_i64(m, "n_embd", h->n_embd);
    kv_i64(m, "n_layer", h->n_layer);
    kv_i64(m, "n_ff", h->n_ff);
    kv_i64(m, "n_head", h->n_head);
    kv_i64(m, "n_head_kv", h->n_head_kv);
    kv_i64(m, "head_dim", h->head_dim);
    kv_i64(m, "n_ctx_train", h->n_ctx_train);
    kv_f64(m, "rope_base", h->rope_base);
    kv_f64(m, "eps", h->eps);
    map_end(m);

    str(m, "limits");
    map_start(m, false);
    kv_i64(m, "max_ctx", p->limits.max_ctx);
    kv_i64(m, "max_chunk", p->limits.max_chunk);
    map_end(m);

    str(m, "memory");
    map_start(m, false);
    kv_u64(m, "alignment", p->memory.alignment);
    kv_u64(m, "arena_bytes", p->memory.arena_bytes);
    kv_u64(m, "kv_bytes", p->memory.kv_bytes);
    kv_u64(m, "weight_bytes", p->memory.weight_bytes);
    map_end(m);

    str(m, "step");
    map_start(m, true);
    kv_u64(m, "offset", p->step.offset);
    kv_u64(m, "bytes", p->step.bytes);
    map_end(m);

    str(m, "kv_cache");
    map_start(m, false);
    kv_str(m, "type", p->kv.type == QP_GGML_F32 ? "f32" : "f16");
    kv_i64(m, "n_layer", p->kv.n_layer);
    kv_i64(m, "ctx", p->kv.ctx);
    kv_i64(m, "kv_dim", p->kv.kv_dim);
    kv_u64(m, "k_offset", p->kv.k_offset);
    kv_u64(m, "v_offset", p->kv.v_offset);
    kv_u64(m, "layer_stride", p->kv.layer_stride);
    map_end(m);

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
    for (int k = 0; k < QP_PLAN_N_PROGRAMS; k++) {
        const struct qp_plan_program *g = &p->programs[k];
        str(m, qp_plan_program_name((enum qp_plan_program_id)k));
        map_start(m, false);
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
