/* plan_fields.h — the flat sections of a plan as tables of fields (internal to core/).
 *
 * A section whose keys map one to one onto the members of a C struct (hparams, limits, memory,
 * step, kv_cache, target, a node's params, launch and scratch) is described once here: key,
 * kind, offset in the struct, range, and whether it may be left out. plan_read.c reads and
 * range-checks a section from its table, plan_write.c writes it from the same table, so a field
 * added to a table is read, written and checked alike. Consistency between fields stays in
 * plan_validate.c.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum qp_field_kind {
    QP_FIELD_STR,     /* char *, non-empty */
    QP_FIELD_I64,     /* int64_t in [lo, hi] */
    QP_FIELD_I32,     /* int32_t in [lo, hi] */
    QP_FIELD_U64,     /* uint64_t, 0 .. INT64_MAX (sizes, offsets) */
    QP_FIELD_F64,     /* double, finite */
    QP_FIELD_BOOL01,  /* int32_t 0 or 1, written as false / true */
    QP_FIELD_KV_TYPE, /* int32_t GGML type, written "f16" or "f32" */
    QP_FIELD_SM,      /* int32_t compute capability x 10, written "sm_90" */
};

struct qp_field {
    const char *key;
    enum qp_field_kind kind;
    size_t off;     /* offset of the member in its struct */
    int64_t lo, hi; /* QP_FIELD_I64 / I32 range */
    bool optional;  /* may be absent: then it holds def, and it is not written when it holds def */
    int64_t def;    /* the value of an absent optional integer field (optional reals default to 0) */
};

struct qp_field_table {
    const char *name; /* section name in messages, e.g. "hparams" */
    const struct qp_field *fields;
    int n;
};

/* A node's scratch region as its own struct, for the scratch table. */
struct qp_scratch_view {
    uint64_t offset, bytes;
};

extern const struct qp_field_table qp_fields_target, qp_fields_hparams, qp_fields_limits,
    qp_fields_memory, qp_fields_step, qp_fields_kv, qp_fields_params, qp_fields_launch,
    qp_fields_scratch;

/* Sets every optional field of a struct described by t to its default. */
void qp_fields_set_defaults(const struct qp_field_table *t, void *base);
/* True when field f of base holds its default (the writer leaves it out). */
bool qp_field_is_default(const struct qp_field *f, const void *base);
