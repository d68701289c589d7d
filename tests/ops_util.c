/* ops_util.c — see ops_util.h. */
#include "ops_util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qp_ggml.h"
#include "qp_quant.h"

int tu_failures;
bool tu_planting;
static uint64_t rng_state;

uint64_t tu_seed(const char *test_name) {
    const char *env = getenv("QP_SEED");
    uint64_t seed = env && *env ? strtoull(env, NULL, 0)
                                : ((uint64_t)time(NULL) * 1000003u) ^ ((uint64_t)getpid() << 20);
    printf("%s: seed %llu (rerun with QP_SEED=%llu)\n", test_name, (unsigned long long)seed,
           (unsigned long long)seed);
    tu_srand(seed);
    return seed;
}

void tu_srand(uint64_t seed) {
    rng_state = seed;
}

uint64_t tu_next(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float tu_uniform(float lo, float hi) {
    return lo + (hi - lo) * (float)((tu_next() >> 40) * (1.0 / 16777216.0));
}

int64_t tu_int(int64_t lo, int64_t hi) {
    return lo + (int64_t)(tu_next() % (uint64_t)(hi - lo + 1));
}

void tu_fill(float *x, int64_t n, float lo, float hi) {
    for (int64_t i = 0; i < n; i++) x[i] = tu_uniform(lo, hi);
}

void *tu_alloc(size_t bytes) {
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) {
        printf("out of memory allocating %zu bytes\n", bytes);
        exit(1);
    }
    return p;
}

void tu_weight_rand(struct tu_weight *tw, int32_t type, int64_t rows, int64_t cols, float scale) {
    const struct qp_ggml_type_info *ti = qp_ggml_type_info(type);
    size_t rb = 0;
    if (!ti || !qp_ggml_row_bytes(type, cols, &rb)) {
        printf("test bug: weight %s x %lld\n", qp_ggml_type_name(type), (long long)cols);
        exit(1);
    }
    uint8_t *m = tu_alloc(rb * (size_t)rows);
    if (type == QP_GGML_F32) {
        tu_fill((float *)m, rows * cols, -scale, scale);
    } else {
        /* valid random blocks, values of standard deviation ~scale/sqrt(3) like U(-scale, scale) */
        uint64_t st = tu_next();
        for (int64_t r = 0; r < rows; r++) qp_quant_random_row(type, &st, scale / 1.7320508f, m + (size_t)r * rb, cols);
    }
    tw->mem = m;
    tw->w = (struct qp_weight){.type = type, .data = m, .rows = rows, .cols = cols, .row_bytes = rb};
}

void tu_weight_free(struct tu_weight *tw) {
    free(tw->mem);
    tw->mem = NULL;
}

float *tu_weight_f32(const struct tu_weight *tw) {
    float *f = tu_alloc(sizeof(float) * (size_t)(tw->w.rows * tw->w.cols));
    for (int64_t r = 0; r < tw->w.rows; r++) qp_cpu_weight_row(&tw->w, r, 0, tw->w.cols, f + r * tw->w.cols);
    return f;
}

int64_t tu_check(const char *what, const float *got, const double *want, const double *tol, double tol_all,
                 int64_t n) {
    int64_t bad = 0, worst_i = 0;
    double worst = -1.0;
    for (int64_t i = 0; i < n; i++) {
        double t = tol ? tol[i] : tol_all;
        double e = fabs((double)got[i] - want[i]);
        if (!(e <= t)) { /* NaN fails */
            if (bad < 5)
                printf("  %s: [%lld] got %.9g, want %.9g, error %.3g > tolerance %.3g\n", what, (long long)i,
                       (double)got[i], want[i], e, t);
            bad++;
        }
        if (!(e <= worst)) {
            worst = e;
            worst_i = i;
        }
    }
    printf("%s %s: %lld values, %lld mismatches, largest error %.3g at [%lld]\n",
           bad ? (tu_planting ? "caught" : "FAIL") : "ok  ", what,
           (long long)n, (long long)bad, worst, (long long)worst_i);
    if (bad && !tu_planting) tu_failures++;
    return bad;
}

int64_t tu_check_bits(const char *what, const float *a, const float *b, int64_t n) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) {
            if (bad < 5)
                printf("  %s: [%lld] %.9g != %.9g\n", what, (long long)i, (double)a[i], (double)b[i]);
            bad++;
        }
    printf("%s %s: %lld values, %lld differ in bits\n", bad ? "FAIL" : "ok  ", what, (long long)n, (long long)bad);
    if (bad) tu_failures++;
    return bad;
}

int64_t tu_check_bytes(const char *what, const void *a, const void *b, size_t n) {
    const uint8_t *x = a, *y = b;
    int64_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i]) {
            if (bad < 5) printf("  %s: byte %zu: %02x != %02x\n", what, i, x[i], y[i]);
            bad++;
        }
    printf("%s %s: %zu bytes, %lld differ\n", bad ? "FAIL" : "ok  ", what, n, (long long)bad);
    if (bad) tu_failures++;
    return bad;
}

void tu_expect(bool ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (!ok) tu_failures++;
}

int tu_finish(const char *test_name) {
    printf("%s: %s (%d failure%s)\n", test_name, tu_failures ? "FAILED" : "passed", tu_failures,
           tu_failures == 1 ? "" : "s");
    return tu_failures ? 1 : 0;
}

void tu_step_chunk(union tu_step *u, int32_t pos0, int32_t n) {
    memset(u, 0, sizeof *u);
    u->s.n_tok = n;
    u->s.n_out = 1;
    for (int32_t t = 0; t < n && t < TU_STEP_ROWS; t++) u->s.rows[t] = (struct qp_step_row){0, pos0 + t, 0, -1};
}
