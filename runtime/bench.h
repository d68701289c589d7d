/* bench.h — `qrun PLAN --bench` (runtime/bench.c): llama-bench's measurements on a compiled plan.
 *
 * Tests, each repeated reps times after one warm-up: ppN (prefill of n_prompt random token
 * ids at position 0, in the plan's chunks, until the first token is picked: its time is also
 * the TTFT), and tgN @ dD for each depth D (D random tokens prefilled untimed, then n_gen
 * greedy decode steps, each feeding back the token the backend picked: the decode graph on
 * CUDA). Token ids are random valid ids (no tokenizer). Rows whose positions exceed the plan's
 * context are reported as skipped. Prints a table in llama-bench's shape (model, size,
 * params, backend, test, t/s ± sd), the TTFT and the device memory the process holds, and
 * writes the same as JSON when json_path is set.
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "qp_status.h"
#include "qrun.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QRUN_BENCH_MAX_DEPTHS 8
#define QRUN_BENCH_MAX_BATCH 16

struct qrun_bench_options {
    int reps;          /* timed repetitions per test (>= 1; default 5) */
    int n_prompt;      /* ppN: tokens (default 512; 0 = no pp test) */
    int n_gen;         /* tgN: tokens (default 128; 0 = no tg tests) */
    int n_depths;      /* entries of depths (default 3: 0, 4096, 16384) */
    int64_t depths[QRUN_BENCH_MAX_DEPTHS];
    uint64_t seed;     /* token ids */
    const char *json_path; /* --bench-json PATH, or NULL */
    /* when not NULL: the mean t/s of each test, in the table's order (pp first, then tg per depth;
     * 0 for a skipped test), and how many were written */
    double *mean_ts;
    int *n_mean_ts;
    /* --batch 1,4,16,64: llama-batched-bench's table instead (qrun_bench_batch) */
    int n_batch;
    int32_t batch[QRUN_BENCH_MAX_BATCH];
    bool progress;     /* a line on stderr as each test starts (qrun: when stderr is a terminal) */
};
struct qrun_bench_options qrun_bench_options_default(void);

/* Parses "0,4096,16384" into o->depths. QP_ERR_INVALID with a message when malformed. */
enum qp_status qrun_bench_parse_depths(const char *s, struct qrun_bench_options *o,
                                       struct qp_error *err);

/* Opens plan_path as qrun_open does (o: device, model, --no-graph), runs the tests, prints the
 * table to out and writes the JSON. Errors name the file and problem. */
enum qp_status qrun_bench(const char *plan_path, const struct qrun_options *o,
                          const struct qrun_bench_options *bo, FILE *out, struct qp_error *err);

/* Parses "1,4,16,64" into o->batch. QP_ERR_INVALID with a message when malformed. */
enum qp_status qrun_bench_parse_batch(const char *s, struct qrun_bench_options *o, struct qp_error *err);

/* `--bench --batch LIST` (runtime/bench_batch.c): for each batch size B of o->batch, B prompts of
 * n_prompt random tokens prefilled each in its slot, then n_gen decode steps of all B together;
 * prints llama-batched-bench's table (PP, TG, B, N_KV, T_PP s, S_PP t/s, T_TG s, S_TG t/s, T s,
 * S t/s) and writes its rows as JSON when json_path is set. Sizes above the plan's slots, or a
 * PP + TG past a slot's context, are reported as skipped. */
enum qp_status qrun_bench_batch(const char *plan_path, const struct qrun_options *o,
                                const struct qrun_bench_options *bo, FILE *out, struct qp_error *err);

/* s as a JSON string literal (quotes, escapes) on f. */
void qrun_bench_json_str(FILE *f, const char *s);
/* Seconds on the monotonic clock: what both benchmarks time with. */
double qrun_bench_now(void);

#ifdef __cplusplus
}
#endif
