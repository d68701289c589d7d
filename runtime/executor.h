/* executor.h — runs a validated plan on a backend (runtime/executor.c): binds weights, turns
 * every plan node into a struct qp_op_args once at load, and runs a program on a chunk of
 * tokens. Internal to libqrun (the public API is include/qrun.h).
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "qp_gguf.h"
#include "qp_kernels.h"
#include "qp_plan.h"
#include "qp_status.h"

struct qp_exec_config {
    const struct qp_backend_vtbl *backend;
    int32_t device;
    int32_t threads; /* the CPU backend's threads (struct qp_backend_config) */
    bool use_graph;
    bool verbose;
    bool sync_each; /* backend config, see runtime/backend.h */
    bool profile;
    /* Called as weights are bound (done of total bytes); may be NULL. */
    void (*progress)(void *user, uint64_t done, uint64_t total);
    void *progress_user;
};

struct qp_exec;

/* Creates the backend (one arena of the plan's arena_bytes), binds every plan weight to its
 * GGUF tensor(s) (the mmap of g, which must outlive the executor; stacked weights assembled
 * here) and prepares every program's op args, resolving each node's kernel through the registry
 * (include/qp_kernels.h): an unknown name, or a kernel that cannot run its node on this device,
 * is QP_ERR_INVALID naming the plan line. p must be validated and checked against g. */
enum qp_status qp_exec_init(const struct qp_plan *p, const struct qp_gguf *g,
                            const struct qp_exec_config *cfg, struct qp_exec **out,
                            struct qp_error *err);
void qp_exec_free(struct qp_exec *x); /* NULL is fine */

/* Runs tokens[0..n) of the sequence in slot 0 at positions pos .. pos+n-1 (their K and V go to the
 * cache there) with the plan's program for chunks of n tokens (graph replay where it is captured
 * and the backend has graphs). qp_exec_forward_slot: the same for the sequence in slot.
 * QP_ERR_RANGE when n is not in [1, max_chunk] or pos + n > max_ctx (nothing is written). */
enum qp_status qp_exec_forward(struct qp_exec *x, const int32_t *tokens, int32_t n, int64_t pos,
                               struct qp_error *err);
enum qp_status qp_exec_forward_slot(struct qp_exec *x, int32_t slot, const int32_t *tokens, int32_t n, int64_t pos,
                                    struct qp_error *err);

/* One token of each of n sequences (rows[t]: token, position, slot; slots distinct, each in
 * 0..slots-1): the plan's batch program of the smallest bucket >= n, the rows past n padding
 * (no cache write); n == 1 runs the decode chunk. QP_ERR_RANGE when n exceeds the plan's slots
 * or a row's slot or position is out of range. Then qp_exec_batch_next reads each row's argmax
 * (device greedy) and qp_exec_batch_logits a row's logits (host sampling). */
enum qp_status qp_exec_forward_batch(struct qp_exec *x, const struct qp_step_row *rows, int32_t n,
                                     struct qp_error *err);
enum qp_status qp_exec_batch_next(struct qp_exec *x, int32_t *tokens, int32_t n, struct qp_error *err);
/* Logits of output row `row` of the last run ([n_vocab] host floats owned by x, valid until the
 * next call): a batch's row t is its sequence t; a chunk has one, row 0. */
enum qp_status qp_exec_batch_logits(struct qp_exec *x, int32_t row, const float **logits, struct qp_error *err);

/* The last forward's logits of its last token: [n_vocab] host floats owned by x, valid until
 * the next forward. */
enum qp_status qp_exec_logits(struct qp_exec *x, const float **logits, struct qp_error *err);

/* True when every program picks the argmax on the backend (argmax op or epilogue). */
bool qp_exec_has_argmax(const struct qp_exec *x);

/* The enum qp_kernel the backend launched for node `node` of program `program` the last time it
 * ran (QP_KERNEL_UNKNOWN: the CPU's reference op), -1 when it has not run. */
int32_t qp_exec_kernel_ran(const struct qp_exec *x, int32_t program, int32_t node);
const struct qp_plan *qp_exec_plan(const struct qp_exec *x);

/* The last forward's argmax, picked on the backend (one small read). Requires has_argmax. */
enum qp_status qp_exec_argmax(struct qp_exec *x, int32_t *token, struct qp_error *err);

const char *qp_exec_backend_name(const struct qp_exec *x);

/* --- for qplan tune (runtime/tune.c): one node at a time --- */

/* Sets up the program for n tokens at pos (its nodes' n_tok and last-row inputs) and writes the
 * step state, as qp_exec_forward does before it runs; *program is the program. */
enum qp_status qp_exec_begin(struct qp_exec *x, const int32_t *tokens, int32_t n, int64_t pos, int32_t *program,
                             struct qp_error *err);
/* The prepared args of a node (owned by x; set up by qp_exec_begin); NULL out of range. */
struct qp_op_args *qp_exec_node_args(struct qp_exec *x, int32_t program, int32_t node);
/* Runs one op (args as qp_exec_node_args gives them, or a copy with another kernel, launch or
 * scratch in backend memory), eagerly and synchronously. */
enum qp_status qp_exec_run_op(struct qp_exec *x, const struct qp_op_args *a, struct qp_error *err);
/* The device time of one run of the op, in microseconds (the backend's time_op). */
enum qp_status qp_exec_time_op(struct qp_exec *x, const struct qp_op_args *a, int reps, double *us,
                               struct qp_error *err);
/* Backend memory beyond the arena (the backend's alloc_extra), a copy within backend memory, and a
 * read of backend memory into host memory. */
enum qp_status qp_exec_alloc_extra(struct qp_exec *x, size_t bytes, void **out, struct qp_error *err);
enum qp_status qp_exec_copy(struct qp_exec *x, void *dst, const void *src, size_t bytes, struct qp_error *err);
enum qp_status qp_exec_read(struct qp_exec *x, void *dst, const void *src, size_t bytes, struct qp_error *err);
/* The backend's arena (backend memory) and its size. */
void *qp_exec_arena(const struct qp_exec *x, size_t *bytes);
/* The backend's device: compute capability x 10 and SMs (0 for the CPU), and its name. */
void qp_exec_device(const struct qp_exec *x, int32_t *sm, int32_t *sms, char *name, size_t n);
/* What kernels are checked against: the device (CUDA), or the plan's target (CPU). */
void qp_exec_target(const struct qp_exec *x, struct qp_kernel_target *t);
