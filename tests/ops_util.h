/* ops_util.h — shared helpers of the CPU op tests: a seeded RNG (seed printed, $QP_SEED
 * reproduces a run), random weights of a GGML type, double-precision references and a
 * checker that prints the first mismatches. Test code only. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "qp_cpu.h"
#include "qp_ops.h"

/* The seed: $QP_SEED if set, else time and pid; printed with how to reproduce. */
uint64_t tu_seed(const char *test_name);
void tu_srand(uint64_t seed);
uint64_t tu_next(void);
float tu_uniform(float lo, float hi); /* [lo, hi) */
int64_t tu_int(int64_t lo, int64_t hi); /* [lo, hi] */
void tu_fill(float *x, int64_t n, float lo, float hi);
void *tu_alloc(size_t bytes); /* zeroed; exits the test with a message when out of memory */

/* A weight of type `type`, rows x cols, random valid contents (finite scales). */
struct tu_weight {
    struct qp_weight w;
    void *mem;
};
void tu_weight_rand(struct tu_weight *tw, int32_t type, int64_t rows, int64_t cols, float scale);
void tu_weight_free(struct tu_weight *tw);
/* The weight dequantized to f32, [rows][cols] (owned by the caller). */
float *tu_weight_f32(const struct tu_weight *tw);

/* Compares got[i] against want[i] with |got - want| <= tol[i] (tol NULL: tol_all); prints the
 * first 5 mismatches and the largest error under `what`. Returns the number of mismatches. */
int64_t tu_check(const char *what, const float *got, const double *want, const double *tol, double tol_all,
                 int64_t n);
/* Bit-for-bit equality of two f32 arrays; prints the first mismatches. Returns mismatches. */
int64_t tu_check_bits(const char *what, const float *a, const float *b, int64_t n);
/* Same for raw bytes (KV caches). */
int64_t tu_check_bytes(const char *what, const void *a, const void *b, size_t n);

/* A step state with room for TU_STEP_ROWS rows (a struct ending in a flexible array may be a
 * union's member, not another struct's: C11 6.7.2.1). */
#define TU_STEP_ROWS 64
union tu_step {
    struct qp_step s;
    struct qp_step_row room[1 + TU_STEP_ROWS]; /* the 16-byte header, then the rows */
};
/* u as a chunk of n rows of one sequence in slot 0 at positions pos0.., tokens 0, n_out 1. */
void tu_step_chunk(union tu_step *u, int32_t pos0, int32_t n);

/* Test report: counts a failure when n != 0. */
extern int tu_failures;
/* While set, tu_check reports mismatches as "caught" and does not count them (planted faults). */
extern bool tu_planting;
void tu_expect(bool ok, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
int tu_finish(const char *test_name); /* prints the summary, returns the exit code */
