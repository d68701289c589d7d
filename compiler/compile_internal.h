/* compile_internal.h — what the compiler's stages share (not a public header).
 *
 * The graph being compiled is a struct qp_plan whose programs[QP_BUILD_GRAPH] holds the one
 * node list the lowering and the passes work on; compile.c clones it into the plan's programs
 * (one per range of chunk sizes) once the passes are done, then selects kernels and plans memory.
 */
#pragma once
#include "qp_compile.h"
#include "qp_gguf.h"
#include "qp_plan.h"

/* The working graph's program index while lowering and fusing. */
#define QP_BUILD_GRAPH 0

/* --- builder (build.c) --- */

/* Adds a weight (or returns the index of an existing one of the same name and shape). bytes
 * computed from type and shape. part_rows may be NULL when n_from == 1. */
enum qp_status qp_build_weight(struct qp_plan *p, const char *name, int32_t type, int64_t rows,
                               int64_t cols, int32_t n_from, const char *const *from,
                               const int64_t *part_rows, int32_t *idx, struct qp_error *err);
/* Adds an f32 buffer of rows x cols, or returns the existing one of that name (same shape). */
enum qp_status qp_build_buffer(struct qp_plan *p, const char *name, int64_t rows, int64_t cols,
                               int32_t *idx, struct qp_error *err);
/* Appends a node (out, norm = -1, params.layer = -1, kernel NULL) to the working graph. */
enum qp_status qp_build_node(struct qp_plan *p, enum qp_op op, struct qp_plan_node **node,
                             struct qp_error *err);
/* Removes nodes whose op is QP_OP_COUNT (the passes' deletion mark) from the working graph. */
void qp_build_compact(struct qp_plan *p);
/* Removes buffers and weights no node references, renumbering references. */
enum qp_status qp_build_remove_dead(struct qp_plan *p, int32_t *removed_buffers,
                                    int32_t *removed_weights, struct qp_error *err);
char *qp_build_strdup(const char *s); /* NULL on allocation failure */

/* --- architectures (arch.c) --- */
typedef enum qp_status (*qp_lower_fn)(const struct qp_gguf *g, struct qp_plan *p,
                                      struct qp_error *err);
struct qp_arch {
    const char *name; /* general.architecture */
    qp_lower_fn lower;
};
const struct qp_arch *qp_arch_find(const char *name); /* NULL when unsupported */

/* lower_qwen2.c: fills hparams, weights, buffers and the unfused graph. */
enum qp_status qp_lower_qwen2(const struct qp_gguf *g, struct qp_plan *p, struct qp_error *err);

/* --- passes (pass_fuse.c): each returns the number of rewrites, or -1 (err set) --- */
int qp_pass_run(struct qp_plan *p, enum qp_pass pass, struct qp_error *err);

/* --- kernel selection (select.c) and memory planning (memplan.c) --- */
/* Chooses every node's kernel and launch shape for p->target (the registry's defaults, or the
 * options' --kernel overrides) and sizes its scratch. */
enum qp_status qp_select_kernels(struct qp_plan *p, const struct qp_compile_options *o, struct qp_error *err);
/* Sets node i of program g to run kernel with launch, and sizes its scratch for it (its offset is
 * the memory planner's to set). */
enum qp_status qp_select_set(struct qp_plan *p, struct qp_plan_program *g, int32_t i, int32_t kernel,
                             const struct qp_launch *launch, struct qp_error *err);
/* The description of node n of program g that include/qp_kernels.h's functions take (no data
 * pointers; n_tok = the most tokens the node runs with; scratch_bytes = the node's). */
enum qp_status qp_select_node_args(const struct qp_plan *p, const struct qp_plan_program *g,
                                   const struct qp_plan_node *n, struct qp_op_args *a, struct qp_error *err);
enum qp_status qp_memplan(struct qp_plan *p, struct qp_error *err);
