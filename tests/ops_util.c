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
#include "../kernels/cpu/cpu_internal.h" /* f16 conversion until qp_quant.h lands */

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

/* Positions of the f16 scale fields (d, dmin, m) inside a block, per type: random bytes there
 * could be inf/NaN, so they are overwritten with small finite halves. -1 ends the list. */
static const int *scale_offsets(int32_t type) {
    static const int none[] = {-1}, d0[] = {0, -1}, d0m2[] = {0, 2, -1}, q2k[] = {80, 82, -1},
                     q3k[] = {108, -1}, q6k[] = {208, -1};
    switch (type) {
    case QP_GGML_Q4_0:
    case QP_GGML_Q5_0:
    case QP_GGML_Q8_0: return d0;
    case QP_GGML_Q4_1:
    case QP_GGML_Q5_1:
    case QP_GGML_Q4_K:
    case QP_GGML_Q5_K: return d0m2;
    case QP_GGML_Q2_K: return q2k;
    case QP_GGML_Q3_K: return q3k;
    case QP_GGML_Q6_K: return q6k;
    default: return none;
    }
}

/* An f16 near v (truncation is enough for test data). */
static uint16_t to_half(float v) {
    return qp_cpu_f32_to_f16(v);
}

void tu_weight_rand(struct tu_weight *tw, int32_t type, int64_t rows, int64_t cols, float scale) {
    const struct qp_ggml_type_info *ti = qp_ggml_type_info(type);
    size_t rb = 0;
    if (!ti || !qp_ggml_row_bytes(type, cols, &rb)) {
        printf("test bug: weight %s x %lld\n", qp_ggml_type_name(type), (long long)cols);
        exit(1);
    }
    uint8_t *m = tu_alloc(rb * (size_t)rows);
    size_t total = rb * (size_t)rows;
    if (type == QP_GGML_F32) {
        tu_fill((float *)m, rows * cols, -scale, scale);
    } else if (type == QP_GGML_F16) {
        for (size_t i = 0; i < total / 2; i++) {
            uint16_t h = to_half(tu_uniform(-scale, scale));
            memcpy(m + 2 * i, &h, 2);
        }
    } else if (type == QP_GGML_BF16) {
        for (size_t i = 0; i < total / 2; i++) {
            float f = tu_uniform(-scale, scale);
            uint32_t b;
            memcpy(&b, &f, 4);
            uint16_t h = (uint16_t)(b >> 16);
            memcpy(m + 2 * i, &h, 2);
        }
    } else {
        for (size_t i = 0; i < total; i++) m[i] = (uint8_t)tu_next();
        const int *off = scale_offsets(type);
        for (size_t b = 0; b < total / ti->block_bytes; b++)
            for (int k = 0; off[k] >= 0; k++) {
                /* d around scale/16: quant levels span about +-8..32 times d */
                uint16_t h = to_half(tu_uniform(0.25f, 1.0f) * scale / 16.0f);
                memcpy(m + b * ti->block_bytes + (size_t)off[k], &h, 2);
            }
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
