/* cpu_internal.h — helpers shared by the files of kernels/cpu/ (not a public header).
 *
 * The thread pool (pool.c), the f32 dot product every CPU op uses (fixed summation order, so
 * results are reproducible bit for bit). f16 conversion: fp16_inline.h (qp_h2f, qp_f2h).
 */
#pragma once
#include <stdint.h>

/* A task covers items [begin, end) of a parallel loop. */
typedef void (*qp_cpu_task_fn)(void *ctx, int64_t begin, int64_t end);

/* Runs fn over [0, n) split into contiguous ranges of at least min_items items, on the pool's
 * threads and the caller's; returns when every range is done. Calls from several threads are
 * serialised. Each item must be independent of the split (callers compute an item whole). */
void qp_cpu_parallel_for(int64_t n, int64_t min_items, qp_cpu_task_fn fn, void *ctx);

/* sum_i a[i]*b[i] in f32: eight interleaved partial sums (i mod 8), added pairwise at the end,
 * then the tail. A fixed order: the same inputs give the same bits everywhere. */
static inline float qp_cpu_dot(const float *a, const float *b, int64_t n) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += a[i + j] * b[i + j];
    float r = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}
