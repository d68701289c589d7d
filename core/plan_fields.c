/* plan_fields.c — the field tables of plan_fields.h: one line per key of each flat section.
 * The order of a table is the order the writer emits the keys in. */
#include "plan_fields.h"

#include <string.h>

#include "qp_plan.h"

#define I32MAX INT32_MAX
#define F(type, key, kind, member, lo, hi) {key, kind, offsetof(type, member), lo, hi, false, 0}
#define OPT(type, key, kind, member, lo, hi, def) {key, kind, offsetof(type, member), lo, hi, true, def}
#define TABLE(var, name, arr) \
    const struct qp_field_table var = {name, arr, (int)(sizeof arr / sizeof arr[0])}

static const struct qp_field target[] = {
    F(struct qp_plan_target, "backend", QP_FIELD_STR, backend, 0, 0),
    F(struct qp_plan_target, "arch", QP_FIELD_SM, sm, 10, 1000),
    F(struct qp_plan_target, "sms", QP_FIELD_I32, sms, 1, 4096),
    OPT(struct qp_plan_target, "card", QP_FIELD_STR, card, 0, 0, 0),
};
TABLE(qp_fields_target, "target", target);

static const struct qp_field hparams[] = {
    F(struct qp_plan_hparams, "arch", QP_FIELD_STR, arch, 0, 0),
    F(struct qp_plan_hparams, "n_vocab", QP_FIELD_I64, n_vocab, 1, I32MAX),
    F(struct qp_plan_hparams, "n_embd", QP_FIELD_I64, n_embd, 1, I32MAX),
    F(struct qp_plan_hparams, "n_layer", QP_FIELD_I64, n_layer, 1, I32MAX),
    F(struct qp_plan_hparams, "n_ff", QP_FIELD_I64, n_ff, 1, I32MAX),
    F(struct qp_plan_hparams, "n_head", QP_FIELD_I64, n_head, 1, I32MAX),
    F(struct qp_plan_hparams, "n_head_kv", QP_FIELD_I64, n_head_kv, 1, I32MAX),
    F(struct qp_plan_hparams, "head_dim", QP_FIELD_I64, head_dim, 1, I32MAX),
    F(struct qp_plan_hparams, "n_ctx_train", QP_FIELD_I64, n_ctx_train, 1, I32MAX),
    F(struct qp_plan_hparams, "rope_base", QP_FIELD_F64, rope_base, 0, 0),
    F(struct qp_plan_hparams, "eps", QP_FIELD_F64, eps, 0, 0),
};
TABLE(qp_fields_hparams, "hparams", hparams);

static const struct qp_field limits[] = {
    F(struct qp_plan_limits, "max_ctx", QP_FIELD_I64, max_ctx, 1, I32MAX),
    F(struct qp_plan_limits, "max_chunk", QP_FIELD_I64, max_chunk, 1, I32MAX),
};
TABLE(qp_fields_limits, "limits", limits);

static const struct qp_field memory[] = {
    F(struct qp_plan_memory, "alignment", QP_FIELD_U64, alignment, 0, 0),
    F(struct qp_plan_memory, "arena_bytes", QP_FIELD_U64, arena_bytes, 0, 0),
    F(struct qp_plan_memory, "kv_bytes", QP_FIELD_U64, kv_bytes, 0, 0),
    F(struct qp_plan_memory, "weight_bytes", QP_FIELD_U64, weight_bytes, 0, 0),
};
TABLE(qp_fields_memory, "memory", memory);

static const struct qp_field step[] = {
    F(struct qp_plan_step, "offset", QP_FIELD_U64, offset, 0, 0),
    F(struct qp_plan_step, "bytes", QP_FIELD_U64, bytes, 0, 0),
};
TABLE(qp_fields_step, "step", step);

static const struct qp_field kv[] = {
    F(struct qp_plan_kv, "type", QP_FIELD_KV_TYPE, type, 0, 0),
    F(struct qp_plan_kv, "n_layer", QP_FIELD_I64, n_layer, 1, I32MAX),
    F(struct qp_plan_kv, "slots", QP_FIELD_I64, slots, 1, 65536),
    F(struct qp_plan_kv, "ctx", QP_FIELD_I64, ctx, 1, I32MAX),
    F(struct qp_plan_kv, "kv_dim", QP_FIELD_I64, kv_dim, 1, I32MAX),
    F(struct qp_plan_kv, "k_offset", QP_FIELD_U64, k_offset, 0, 0),
    F(struct qp_plan_kv, "v_offset", QP_FIELD_U64, v_offset, 0, 0),
    F(struct qp_plan_kv, "layer_stride", QP_FIELD_U64, layer_stride, 0, 0),
};
TABLE(qp_fields_kv, "kv_cache", kv);

/* A node's params: an op reads the ones docs/ops.md names; absent ones are 0 (layer: -1). */
static const struct qp_field params[] = {
    OPT(struct qp_plan_params, "eps", QP_FIELD_F64, eps, 0, 0, 0),
    OPT(struct qp_plan_params, "n_head", QP_FIELD_I64, n_head, 1, I32MAX, 0),
    OPT(struct qp_plan_params, "n_head_kv", QP_FIELD_I64, n_head_kv, 1, I32MAX, 0),
    OPT(struct qp_plan_params, "head_dim", QP_FIELD_I64, head_dim, 1, I32MAX, 0),
    OPT(struct qp_plan_params, "rope_base", QP_FIELD_F64, rope_base, 0, 0, 0),
    OPT(struct qp_plan_params, "layer", QP_FIELD_I64, layer, 0, I32MAX, -1),
};
TABLE(qp_fields_params, "params", params);

/* Every kernel's launch has all five; the kernel's check (qp_kernels.h) says which values it
 * accepts. */
static const struct qp_field launch[] = {
    F(struct qp_launch, "block", QP_FIELD_I32, block, 0, 1024),
    F(struct qp_launch, "rows_per_block", QP_FIELD_I32, rows_per_block, 0, 1 << 24),
    F(struct qp_launch, "split", QP_FIELD_I32, split, 0, 65535),
    F(struct qp_launch, "grid", QP_FIELD_I32, grid, 0, 1 << 20),
    F(struct qp_launch, "pdl", QP_FIELD_BOOL01, pdl, 0, 1),
};
TABLE(qp_fields_launch, "launch", launch);

/* scratch: a node's scratch_offset and scratch_bytes, read and written through a
 * struct qp_scratch_view */
static const struct qp_field scratch[] = {
    F(struct qp_scratch_view, "offset", QP_FIELD_U64, offset, 0, 0),
    F(struct qp_scratch_view, "bytes", QP_FIELD_U64, bytes, 0, 0),
};
TABLE(qp_fields_scratch, "scratch", scratch);

void qp_fields_set_defaults(const struct qp_field_table *t, void *base) {
    for (int i = 0; i < t->n; i++) {
        const struct qp_field *f = &t->fields[i];
        if (!f->optional) continue;
        char *at = (char *)base + f->off;
        switch (f->kind) {
        case QP_FIELD_I64: *(int64_t *)at = f->def; break;
        case QP_FIELD_I32: case QP_FIELD_BOOL01: case QP_FIELD_KV_TYPE: case QP_FIELD_SM:
            *(int32_t *)at = (int32_t)f->def;
            break;
        case QP_FIELD_U64: *(uint64_t *)at = (uint64_t)f->def; break;
        case QP_FIELD_F64: *(double *)at = 0; break;
        case QP_FIELD_STR: *(char **)at = NULL; break;
        }
    }
}

bool qp_field_is_default(const struct qp_field *f, const void *base) {
    if (!f->optional) return false;
    const char *at = (const char *)base + f->off;
    switch (f->kind) {
    case QP_FIELD_I64: return *(const int64_t *)at == f->def;
    case QP_FIELD_I32: case QP_FIELD_BOOL01: case QP_FIELD_KV_TYPE: case QP_FIELD_SM:
        return *(const int32_t *)at == (int32_t)f->def;
    case QP_FIELD_U64: return *(const uint64_t *)at == (uint64_t)f->def;
    case QP_FIELD_F64: return *(const double *)at == 0;
    case QP_FIELD_STR: return *(char *const *)at == NULL;
    }
    return false;
}
