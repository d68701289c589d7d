/* bench_read.cuh — the read ceiling the CUDA benchmarks compare against (bench_boundary.cu,
 * bench_linear.cu): a kernel that only streams a buffer in with 16-byte non-caching loads, grid
 * stride, one launch, timed with CUDA events (median of `reps` after 3 warm-ups). What it reaches
 * is the most a kernel that reads each byte once can expect from this card; bench_linear reports
 * every linear kernel as a fraction of it.
 *
 * Header-only for the benchmarks' translation units (static functions), CUDA C++; also compiles on
 * the CPU emulator (tests/kemu), for a smoke run of a benchmark's logic.
 */
#pragma once
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdlib.h>

#include "bench_cuda.h"

static __global__ void bench_read_kernel(const uint4 *p, size_t n, unsigned *sink) {
    uint32_t acc = 0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint4 v;
#ifdef QP_KEMU /* the CPU emulator (tests/kemu): a plain load */
        v = p[i];
#else
        asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
                     : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                     : "l"(p + i));
#endif
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == 0x12345678u) *sink = acc; /* never true in practice; keeps the loads */
}

/* Median milliseconds of `reps` timed runs of fn() on stream st, after 3 warm-ups. */
template <class F> static float bench_timed_ms(cudaStream_t st, int reps, F fn) {
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    float *t = (float *)malloc(sizeof(float) * (size_t)reps);
    for (int r = 0; r < 3; r++) fn();
    for (int r = 0; r < reps; r++) {
        CK(cudaEventRecord(e0, st));
        fn();
        CK(cudaEventRecord(e1, st));
        CK(cudaEventSynchronize(e1));
        CK(cudaEventElapsedTime(&t[r], e0, e1));
    }
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    qsort(t, (size_t)reps, sizeof t[0], bench_cmp_f);
    const float m = t[reps / 2];
    free(t);
    return m;
}

/* Median milliseconds of one read of `bytes` (a multiple of 16) at buf with grid x block threads;
 * sink is a device word the kernel may write. */
static float bench_read_ms(cudaStream_t st, const void *buf, size_t bytes, int grid, int block,
                           unsigned *sink, int reps) {
    return bench_timed_ms(st, reps, [&] {
#ifdef QP_KEMU
        CK(kemu_launch(bench_read_kernel, dim3(grid), dim3(block), 0, st, false, (const uint4 *)buf,
                       bytes / 16, sink));
#else
        bench_read_kernel<<<grid, block, 0, st>>>((const uint4 *)buf, bytes / 16, sink);
        CK(cudaGetLastError());
#endif
    });
}
