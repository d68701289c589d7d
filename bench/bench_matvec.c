/* bench_matvec.c — CPU matvec per GGML type at Qwen2.5-0.5B shapes, in GB/s of weights read.
 *
 * y[r] = qp_quant_dot_row(type, W + r * row_bytes, x, cols) for every row r, single thread,
 * weights from qp_quant_random_row (the same kernels qrun's CPU backend links). Reports the
 * median thread-CPU time of --reps runs (default 5) after one warm-up run. Shapes (rows x cols): 4864x896
 * (ffn_gate/ffn_up), 896x4864 (ffn_down), 151936x896 (output / token_embd; quantized 32-block
 * types only, to keep the working set <= ~150 MB). Shapes whose cols are not a multiple of the
 * type's block are skipped (K-quants need cols % 256 == 0).
 * Usage: bench_matvec [--reps N] [type ...]      e.g. bench_matvec q8_0 q4_k
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qp_ggml.h"
#include "qp_quant.h"
#include "qp_rng.h"

/* Thread CPU time, not wall time: the development machine's 2 cores are shared by several
 * users, and wall time there mostly measures who else is running (seen: 0.9 to 3.2 ms for
 * the same matvec). CPU time still includes cache misses and memory stalls. */
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void bench_one(int32_t type, int64_t rows, int64_t cols, int reps) {
    const struct qp_ggml_type_info *ti = qp_ggml_type_info(type);
    size_t row_bytes, total;
    if (cols % ti->block_elems != 0 || !qp_ggml_row_bytes(type, cols, &row_bytes) ||
        !qp_mul_size(row_bytes, (size_t)rows, &total))
        return;
    uint8_t *w = malloc(total);
    float *x = malloc((size_t)cols * sizeof(float)), *y = malloc((size_t)rows * sizeof(float));
    if (!w || !x || !y) {
        fprintf(stderr, "bench_matvec: out of memory for %s %lldx%lld\n", ti->name, (long long)rows, (long long)cols);
        exit(1);
    }
    uint64_t rs = 1234;
    for (int64_t r = 0; r < rows; r++) qp_quant_random_row(type, &rs, 0.02f, w + (size_t)r * row_bytes, cols);
    for (int64_t i = 0; i < cols; i++) x[i] = qp_rng_uniform(&rs) * 2.0f - 1.0f;
    double t[64];
    if (reps > 64) reps = 64;
    double check = 0;
    for (int k = -1; k < reps; k++) {
        const double t0 = now_s();
        for (int64_t r = 0; r < rows; r++) y[r] = qp_quant_dot_row(type, w + (size_t)r * row_bytes, x, cols);
        const double dt = now_s() - t0;
        if (k >= 0) t[k] = dt;
        check += y[rows / 2];
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    const double med = t[reps / 2];
    printf("| %-5s | %6lldx%-5lld | %8.2f | %9.3f | %6.2f | %6.2f |\n", ti->name, (long long)rows, (long long)cols,
           (double)total / 1e6, med * 1e3, (double)total / med / 1e9, (double)rows * cols / med / 1e9);
    if (check != check) printf("(non-finite output)\n");
    free(w);
    free(x);
    free(y);
}

int main(int argc, char **argv) {
    int reps = 5;
    int32_t types[64];
    int nt = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = atoi(argv[++i]);
            if (reps < 1) reps = 1;
            continue;
        }
        const int32_t t = qp_ggml_type_from_name(argv[i]);
        if (t < 0 || !qp_quant_supported(t)) {
            fprintf(stderr, "bench_matvec: '%s' is not a supported type\n", argv[i]);
            return 2;
        }
        if (nt < 64) types[nt++] = t;
    }
    if (nt == 0) {
        const int32_t all[] = {QP_GGML_F32,  QP_GGML_F16,  QP_GGML_BF16, QP_GGML_Q4_0, QP_GGML_Q4_1,
                               QP_GGML_Q5_0, QP_GGML_Q5_1, QP_GGML_Q8_0, QP_GGML_Q2_K, QP_GGML_Q3_K,
                               QP_GGML_Q4_K, QP_GGML_Q5_K, QP_GGML_Q6_K};
        nt = (int)(sizeof all / sizeof all[0]);
        memcpy(types, all, sizeof all);
    }
    printf("| type  | rows x cols  | weight MB | median CPU ms | GB/s   | Gelem/s |\n");
    printf("| ----- | ------------ | -------- | --------- | ------ | ------ |\n");
    for (int i = 0; i < nt; i++) {
        bench_one(types[i], 4864, 896, reps);
        bench_one(types[i], 896, 4864, reps);
        if (qp_ggml_type_info(types[i])->block_elems == 32) bench_one(types[i], 151936, 896, reps);
    }
    return 0;
}
