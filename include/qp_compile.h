/* qp_compile.h — the plan compiler: GGUF model → struct qp_plan (compiler/compile.c).
 *
 * Stages: the architecture's lowering (compiler/arch.c picks it by general.architecture)
 * builds the unfused op graph; the fusion passes (compiler/pass_fuse.c), each switchable,
 * rewrite it; dead buffers and weights are removed; kernels and launch params are chosen per
 * program (compiler/select.c); the memory planner (compiler/memplan.c) places the step state,
 * KV cache, buffers and scratch in one arena. The result passes qp_plan_validate.
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "qp_gguf.h"
#include "qp_plan.h"
#include "qp_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The fusion passes, in the order they run (the design's numbering). */
enum qp_pass {
    QP_PASS_FUSE_NORM,     /* 1: rms_norm folded into the following linears' prologue      */
    QP_PASS_FUSE_QKV,      /* 2: q, k, v linears + rope q/k + kv_write → linear rope_kv     */
    QP_PASS_FUSE_SWIGLU,   /* 3: gate, up linears + swiglu → linear swiglu                  */
    QP_PASS_FUSE_RESIDUAL, /* 4: linear + add into the residual → linear residual (in place)*/
    QP_PASS_FUSE_LM_HEAD,  /* 5: final norm + LM head + argmax → linear rms_norm/argmax     */
    QP_PASS_COUNT
};

const char *qp_pass_name(enum qp_pass p); /* "fuse_norm", ...; "unknown" out of range */
int qp_pass_from_name(const char *name);  /* -1 when unknown ("norm" works for "fuse_norm") */

#define QP_COMPILE_DEFAULT_CTX 4096  /* default --ctx cap: the model's context if smaller */
#define QP_COMPILE_DEFAULT_CHUNK 512 /* default prefill chunk (capped by ctx) */
/* Default --matvec-tokens: chunks of up to this many tokens run the matvec kernels (program
 * prefill_small), which read the weights once per token in f32 where the gemm kernel
 * dequantizes them to f16 once per chunk; 8 is where the two met on an H100 (docs/performance.md). */
#define QP_COMPILE_DEFAULT_MATVEC_TOKENS 8
#define QP_COMPILE_DEFAULT_SM 90 /* default --target: sm_90 (H100, H200) */

/* --kernel PATTERN=NAME: every node PATTERN matches runs kernel NAME. PATTERN is
 * PROGRAM:OP[:WEIGHT], each part a shell glob (fnmatch) against the program's name, the node's op
 * and its first weight's name (WEIGHT left out: any node, with weights or not). */
struct qp_kernel_override {
    const char *pattern;
    const char *kernel;
};

struct qp_compile_options {
    int64_t ctx;       /* KV positions; 0 = min(model context, QP_COMPILE_DEFAULT_CTX) */
    int64_t chunk;     /* prefill chunk; 0 = min(QP_COMPILE_DEFAULT_CHUNK, ctx) */
    int32_t kv_type;   /* QP_GGML_F16 (default when 0 is given as -1) or QP_GGML_F32 */
    unsigned disabled; /* bit (1u << pass) set: pass not run */
    const char *file_name; /* recorded as model.file; NULL = base name of the GGUF path */
    int32_t sm;            /* target compute capability x 10; 0 = QP_COMPILE_DEFAULT_SM */
    int32_t sms;           /* target SMs; 0 = the usual count for sm (qp_compile_default_sms) */
    int32_t matvec_tokens; /* -1 = QP_COMPILE_DEFAULT_MATVEC_TOKENS; 0 or 1: no prefill_small */
    int32_t slots;         /* sequences decoded together, each its own KV region; 0 = 1. With
                              slots >= 2 the plan has batch programs batch_2, batch_4, ... up to
                              slots (each captured), a step of n sequences padded to a bucket */
    bool int8_activations; /* one-token linears where 8-bit activations measured faster run mmvq
                              (the 1.5B model's gate+up, LM heads of Q8_0 / Q5_0 / Q4_0): faster
                              decode at a measured fidelity cost (docs/fidelity.md) */
    int32_t n_overrides;
    const struct qp_kernel_override *overrides; /* [n_overrides], applied in order (last wins) */
};

/* What the compile did, for the summary. */
struct qp_compile_stats {
    int32_t fused[QP_PASS_COUNT];      /* rewrites each pass made */
    int32_t unfused_nodes;             /* nodes the lowering made (one program) */
    int32_t removed_buffers, removed_weights;
    bool ctx_defaulted;                /* ctx came from the default rule */
    int64_t model_ctx;                 /* the model's trained context */
};

/* SMs of the usual card of a compute capability (sm_90: H100 SXM and H200, 132). */
int32_t qp_compile_default_sms(int32_t sm);

/* Options with their defaults (ctx 0, chunk 0, kv f16, all passes on, sm_90, matvec_tokens -1). */
void qp_compile_options_default(struct qp_compile_options *o);

/* Compiles the opened model. On success *out is a validated plan (caller frees). On failure
 * returns a status with a message naming the file and the problem, and *out is NULL. */
enum qp_status qp_compile(const struct qp_gguf *g, const struct qp_compile_options *o,
                          struct qp_plan **out, struct qp_compile_stats *stats,
                          struct qp_error *err);

/* Every node's kernel is one of the registry's (include/qp_kernels.h), of the node's op, and can
 * run the node with its launch shape and scratch on the plan's target. QP_ERR_INVALID naming the
 * plan line on the first that cannot. (qplan validate runs it; the runtime checks the same at load
 * against the device it runs on.) */
enum qp_status qp_plan_check_kernels(const struct qp_plan *p, struct qp_error *err);

/* Does plan p compute model g? (compiler/plan_semantics.c) Compiles g again with the options p
 * records (limits.max_ctx, limits.max_chunk, kv_cache.type, the passes p lists, the chunk range
 * of program prefill_small) and requires what decides the computation to equal that reference:
 * hparams (as g's metadata gives them), the KV cache geometry, each GGUF tensor the lowering uses
 * read by exactly one plan weight and no other tensor read, every weight's type, shape, sources
 * and parts, the buffers' shapes, the programs' names, token ranges and capture, and every
 * node's op, rows, in, out, weights, bias, norm, prologue, epilogue and params. Kernels, launch
 * shapes, scratch, offsets and totals are not compared (qp_plan_validate and
 * qp_plan_check_kernels check them). Expects p to have passed qp_plan_validate and
 * qp_plan_check_model against g. QP_ERR_INVALID with "plan:line: what the plan says, what the
 * model needs" on the first difference; g may be opened header-only. */
enum qp_status qp_plan_check_semantics(const struct qp_plan *p, const struct qp_gguf *g,
                                       struct qp_error *err);

/* The same check for many plans of one model (tests that edit a plan line by line): the
 * reference is compiled once and kept while the plans' options stay the same. g must outlive s. */
struct qp_semantics;
enum qp_status qp_semantics_new(const struct qp_gguf *g, struct qp_semantics **out,
                                struct qp_error *err);
enum qp_status qp_semantics_check(struct qp_semantics *s, const struct qp_plan *p,
                                  struct qp_error *err);
void qp_semantics_free(struct qp_semantics *s); /* NULL is fine */

/* Comma-separated list of the architectures with a lowering, e.g. "qwen2". */
const char *qp_compile_architectures(void);

#ifdef __cplusplus
}
#endif
