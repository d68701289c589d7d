/* bench_gemm.cu — cuBLAS facts the prefill GEMM path (kernels/cuda/gemm.cu) depends on, measured
 * on the device in one run (an executable, never a test; numbers go to bench/RESULTS.md):
 *   1. device memory (cudaMemGetInfo deltas) taken by cublasCreate, by the first GEMM with a
 *      workspace of ours, and by the first GEMM of a handle left on cuBLAS's own workspace pool
 *      (what cublasSetStream falls back to);
 *   2. the time of one Qwen2.5-0.5B layer's prefill GEMMs (512 tokens, f16 x f16 -> f32, fp32
 *      accumulation, the layout of gemm.cu) called per part (q, k, v, gate, up separately: the
 *      old path) and per stacked node (qkv, o, gate+up, down: the new path), for several
 *      workspace sizes. Median of 30 timed repetitions (CUDA events) after 5 warm-ups.
 * Usage: bench_gemm [n_tok]   (default 512)
 */
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_cuda.h"

#define CB(x)                                                                                  \
    do {                                                                                       \
        cublasStatus_t s_ = (x);                                                               \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                     \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cublasGetStatusString(s_)); \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

static __global__ void fill_kernel(__half *p, size_t n, uint32_t seed) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed;
        h ^= h >> 13;
        h *= 0x5bd1e995u;
        h ^= h >> 15;
        p[i] = __float2half(((float)(h & 0xffff) / 65535.0f - 0.5f) * 0.2f);
    }
}

static double mib(size_t b) { return (double)b / 1048576.0; }
static size_t free_now(void) {
    size_t f, t;
    CK(cudaMemGetInfo(&f, &t));
    return f;
}

struct shape { int m, k; }; /* rows of the weight (chunk), input width */

/* one layer: every GEMM of the list, y at its stacked offset (ld = max m) */
static float time_layer(cublasHandle_t h, cudaStream_t st, const struct shape *sh, int ns, int n, const __half *w,
                        const __half *x, float *y) {
    const float one = 1.0f, zero = 0.0f;
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    float ts[30];
    for (int rep = -5; rep < 30; rep++) {
        CK(cudaEventRecord(e0, st));
        for (int i = 0; i < ns; i++)
            CB(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, sh[i].m, n, sh[i].k, &one, w, CUDA_R_16F, sh[i].k, x,
                            CUDA_R_16F, sh[i].k, &zero, y, CUDA_R_32F, sh[i].m, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT));
        CK(cudaEventRecord(e1, st));
        CK(cudaEventSynchronize(e1));
        if (rep >= 0) CK(cudaEventElapsedTime(&ts[rep], e0, e1));
    }
    qsort(ts, 30, sizeof ts[0], bench_cmp_f);
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    return ts[15];
}

int main(int argc, char **argv) {
    const int n = argc > 1 ? atoi(argv[1]) : 512;
    CK(cudaFree(0));
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("bench_gemm: %s, %d SMs, n_tok %d\n", prop.name, prop.multiProcessorCount, n);
    const size_t wmax = (size_t)9728 * 4864, xmax = (size_t)n * 4864, ymax = (size_t)n * 9728;
    __half *w, *x;
    float *y;
    void *ws;
    const size_t ws_max = (size_t)32 << 20;
    CK(cudaMalloc(&w, wmax * 2));
    CK(cudaMalloc(&x, xmax * 2));
    CK(cudaMalloc(&y, ymax * 4));
    CK(cudaMalloc(&ws, ws_max));
    fill_kernel<<<1024, 256>>>(w, wmax, 1);
    fill_kernel<<<1024, 256>>>(x, xmax, 2);
    CK(cudaDeviceSynchronize());
    cudaStream_t st;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));

    /* 1. memory */
    const struct shape one_s = {896, 896};
    size_t f0 = free_now();
    cublasHandle_t h;
    CB(cublasCreate(&h));
    size_t f1 = free_now();
    CB(cublasSetStream(h, st));
    CB(cublasSetWorkspace(h, ws, (size_t)4 << 20));
    time_layer(h, st, &one_s, 1, n, w, x, y);
    size_t f2 = free_now();
    cublasHandle_t h2;
    CB(cublasCreate(&h2));
    CB(cublasSetStream(h2, st)); /* cuBLAS's own workspace pool */
    size_t f3 = free_now();
    time_layer(h2, st, &one_s, 1, n, w, x, y);
    size_t f4 = free_now();
    printf("memory: cublasCreate %.1f MiB; first GEMMs with our 4 MiB workspace %.1f MiB; second handle "
           "%.1f MiB; its first GEMMs on cuBLAS's own pool %.1f MiB\n",
           mib(f0 - f1), mib(f1 - f2), mib(f2 - f3), mib(f3 - f4));
    CB(cublasDestroy(h2));
    printf("memory: after destroying the second handle %.1f MiB back\n", mib(free_now() - f4));

    /* 2. time of one layer's GEMMs */
    const struct shape old_s[] = {{896, 896}, {128, 896}, {128, 896}, {896, 896}, {4864, 896}, {4864, 896}, {896, 4864}};
    const struct shape new_s[] = {{1152, 896}, {896, 896}, {9728, 896}, {896, 4864}};
    const double flop = 2.0 * n * (1152.0 * 896 + 896.0 * 896 + 9728.0 * 896 + 896.0 * 4864);
    const size_t wss[] = {0, (size_t)1 << 20, (size_t)2 << 20, (size_t)4 << 20, (size_t)8 << 20, (size_t)16 << 20,
                          (size_t)32 << 20};
    printf("| workspace | per part (7 GEMMs) us | stacked (4 GEMMs) us | stacked TFLOP/s |\n| ---: | ---: | ---: | ---: |\n");
    for (size_t i = 0; i < sizeof wss / sizeof wss[0]; i++) {
        CB(cublasSetStream(h, st));
        CB(cublasSetWorkspace(h, wss[i] ? ws : NULL, wss[i]));
        float to = time_layer(h, st, old_s, 7, n, w, x, y);
        float tn = time_layer(h, st, new_s, 4, n, w, x, y);
        printf("| %zu MiB | %.1f | %.1f | %.0f |\n", wss[i] >> 20, to * 1e3, tn * 1e3, flop / (tn * 1e-3) / 1e12);
    }
    for (int i = 0; i < 4; i++) {
        CB(cublasSetWorkspace(h, ws, (size_t)4 << 20));
        float t = time_layer(h, st, &new_s[i], 1, n, w, x, y);
        printf("shape m %d k %d n %d: %.1f us, %.0f TFLOP/s (4 MiB workspace)\n", new_s[i].m, new_s[i].k, n, t * 1e3,
               2.0 * n * new_s[i].m * new_s[i].k / (t * 1e-3) / 1e12);
    }
    CB(cublasDestroy(h));
    return 0;
}
