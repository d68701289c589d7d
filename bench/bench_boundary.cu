/* bench_boundary.cu — what a kernel boundary, a grid-wide barrier and a pure weight read cost on
 * this card: the three numbers that decide whether a persistent decode kernel (
 * docs/performance.md) can beat the CUDA Graph of one kernel per plan node. An executable, never
 * a test; numbers go to bench/RESULTS.md with card, date and commit.
 *
 *   1. boundary: a CUDA Graph of N dependent launches of a kernel that waits for its predecessor,
 *      reads a 896-float vector the predecessor wrote and writes its own (what every decode node
 *      does, minus the work), at the decode matvec's shape (one block of 512 threads per SM,
 *      dynamic shared memory 0 or 100 KB), with and without Programmatic Dependent Launch.
 *   2. barrier: one kernel of the same shape crossing N grid-wide barriers, the same read/write
 *      between them, four ways: a self-resetting arrival counter and generation word; a 64-bit
 *      counter that only grows (no serial reset step); a flag per block that every block reads;
 *      and kernels/cuda/grid_sync.cuh's qp_grid_barrier (the growing counter, polled with a
 *      32 ns __nanosleep between reads, and a bounded wait: what the persistent engine uses).
 *   3. read ceiling: a streaming read of 6 MB (one layer's gate+up) and 145 MB (the LM head) with
 *      16-byte loads over one wave, and cudaMemcpy of 145 MB, as bandwidth.
 * Each time is the median of 20 timed repetitions (CUDA events) after 3 warm-ups. The persistent
 * kernel is launched cooperatively (the launch fails, rather than hangs, where its blocks cannot
 * all be resident) and every barrier wait is bounded: a wait that passes QP_SPIN_NS records the
 * barrier kind, its number and the block in a qp_watch (grid_sync.cuh), and the benchmark exits 1.
 * Usage: bench_boundary [N]   (default 144, the decode graph's kernel count)
 */
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_cuda.h"
#include "bench_read.cuh"
#include "grid_sync.cuh"

#define VEC 896
#define REPS 20

/* One node without work: wait for the predecessor, read its vector, write ours (block b writes
 * its slice, as a matvec's units). */
static __global__ void __launch_bounds__(512) node_kernel(const float *in, float *out, int use_smem) {
    extern __shared__ float smem[];
    qp_pdl_wait();
    qp_pdl_trigger();
    float s = 0.0f;
    for (int i = threadIdx.x; i < VEC; i += blockDim.x) s += in[i];
    if (use_smem && threadIdx.x < 32) smem[threadIdx.x] = s; /* the dynamic smem is used */
    const int per = (VEC + gridDim.x - 1) / gridDim.x;
    const int i = blockIdx.x * per + threadIdx.x;
    if (threadIdx.x < per && i < VEC) out[i] = s * 0.5f + (use_smem ? smem[threadIdx.x & 31] * 0.0f : 0.0f);
}

/* A bounded wait: a barrier spin that lasts longer than this has deadlocked (a healthy one takes
 * microseconds). The first to expire records its barrier (task = kind << 16 | barrier) and block
 * in the watch, as grid_sync.cuh's waits do. */
#define QP_SPIN_NS 2000000000ull
static __device__ __forceinline__ bool spin_expired(unsigned long long t0, qp_watch *w, int kind, int k) {
    if (qp_globaltimer_ns() - t0 < QP_SPIN_NS) return false;
    if (atomicCAS(&w->stuck, 0u, 1u) == 0u) {
        w->task = (unsigned)kind << 16 | ((unsigned)k & 0xffffu);
        w->block = blockIdx.x;
    }
    return true;
}

/* Grid-wide barrier: every block's thread 0 publishes its writes (fence), arrives on the counter;
 * the last arrival resets it and bumps the generation; the others spin on the generation. Each
 * barrier returns false (for the whole block) when its wait timed out. */
struct gbar {
    unsigned count, gen;
};
static __device__ __forceinline__ bool grid_barrier(gbar *b, qp_watch *w, int k) {
    __shared__ int ok;
    __syncthreads();
    if (threadIdx.x == 0) {
        ok = 1;
        const unsigned g = qp_ld_acquire_u32(&b->gen);
        __threadfence();
        if (atomicAdd(&b->count, 1u) == gridDim.x - 1) {
            b->count = 0;
            __threadfence();
            atomicAdd(&b->gen, 1u);
        } else {
            const unsigned long long t0 = qp_globaltimer_ns();
            while (qp_ld_acquire_u32(&b->gen) == g)
                if (spin_expired(t0, w, 0, k)) {
                    ok = 0;
                    break;
                }
        }
    }
    __syncthreads();
    return ok;
}

/* The same barrier without the serial reset: a 64-bit counter that only grows; barrier k of a
 * launch waits for base + (k + 1) * gridDim.x arrivals (base: the arrivals before the launch).
 * grid_sync.cuh's counter, polled without a sleep between reads. */
static __device__ __forceinline__ bool grid_barrier_mono(unsigned long long *count, unsigned long long target,
                                                         qp_watch *w, int k) {
    __shared__ int ok;
    __syncthreads();
    if (threadIdx.x == 0) {
        ok = 1;
        qp_counter_add(count, 1);
        const unsigned long long t0 = qp_globaltimer_ns();
        unsigned long long v;
        do {
            v = qp_ld_acquire_u64(count);
            if (v < target && spin_expired(t0, w, 1, k)) {
                ok = 0;
                break;
            }
        } while (v < target);
    }
    __syncthreads();
    return ok;
}

/* Per-block flags: block b publishes the barrier's number in flag[b]; warp 0 of every block reads
 * all the flags (a lane per flag) until each has reached it. */
static __device__ __forceinline__ bool grid_barrier_flags(unsigned *flag, unsigned k, qp_watch *w, int kn) {
    __shared__ int ok;
    if (threadIdx.x == 0) ok = 1;
    __syncthreads();
    if (threadIdx.x < 32) {
        if (threadIdx.x == 0) asm volatile("st.release.gpu.global.u32 [%0], %1;" ::"l"(flag + blockIdx.x), "r"(k) : "memory");
        const unsigned long long t0 = qp_globaltimer_ns();
        for (unsigned j = threadIdx.x; j < gridDim.x; j += 32) {
            unsigned v;
            do {
                v = qp_ld_acquire_u32(flag + j);
                if ((int)(v - k) < 0 && spin_expired(t0, w, 2, kn)) {
                    ok = 0;
                    break;
                }
            } while ((int)(v - k) < 0);
        }
        __syncwarp();
    }
    __syncthreads();
    return ok;
}

/* kind 0: grid_barrier; 1: grid_barrier_mono; 2: grid_barrier_flags; 3: qp_grid_barrier */
static __global__ void __launch_bounds__(512) persistent_kernel(float *a, float *b, gbar *bar, unsigned long long *count,
                                                                unsigned long long base, unsigned *flag,
                                                                unsigned epoch, int n, int kind, qp_watch *watch) {
    for (int k = 0; k < n; k++) {
        const float *in = k & 1 ? b : a;
        float *out = k & 1 ? a : b;
        float s = 0.0f;
        for (int i = threadIdx.x; i < VEC; i += blockDim.x) s += in[i];
        const int per = (VEC + gridDim.x - 1) / gridDim.x;
        const int i = blockIdx.x * per + threadIdx.x;
        if (threadIdx.x < per && i < VEC) out[i] = s * 0.5f;
        const bool ok = kind == 0   ? grid_barrier(bar, watch, k)
                        : kind == 1 ? grid_barrier_mono(count, base + (unsigned long long)(k + 1) * gridDim.x, watch, k)
                        : kind == 2 ? grid_barrier_flags(flag, epoch + (unsigned)k, watch, k)
                                    : qp_grid_barrier(count, base, (unsigned)k, 3u << 16 | (unsigned)k, watch, QP_SPIN_NS);
        if (!ok) return;
    }
}

/* median ms of REPS runs of fn() after 3 warm-ups */
template <class F> static float timed(cudaStream_t st, F fn) { return bench_timed_ms(st, REPS, fn); }

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* each result line out as it is measured */
    const int n = argc > 1 ? atoi(argv[1]) : 144;
    if (n < 2 || n > 100000) {
        fprintf(stderr, "bench_boundary: N must be 2..100000, got %s\n", argv[1]);
        return 2;
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    const int sms = prop.multiProcessorCount;
    printf("device %s, %d SMs; N = %d nodes\n", prop.name, sms, n);
    cudaStream_t st;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    float *a, *b;
    CK(cudaMalloc(&a, VEC * sizeof(float)));
    CK(cudaMalloc(&b, VEC * sizeof(float)));
    CK(cudaMemset(a, 0, VEC * sizeof(float)));
    CK(cudaMemset(b, 0, VEC * sizeof(float)));
    CK(cudaFuncSetAttribute(node_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 * 1024));

    /* 1. a graph of n dependent node launches */
    const int smems[2] = {0, 100 * 1024};
    for (int pdl = 0; pdl < 2; pdl++)
        for (int si = 0; si < 2; si++) {
            cudaGraph_t g;
            cudaGraphExec_t ge;
            CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
            for (int k = 0; k < n; k++)
                CK(qp_cuda_launch_k(node_kernel, dim3(sms), dim3(512), smems[si], st, pdl != 0,
                                    (const float *)(k & 1 ? b : a), k & 1 ? a : b, smems[si] > 0 ? 1 : 0));
            CK(cudaStreamEndCapture(st, &g));
            CK(cudaGraphInstantiate(&ge, g, 0));
            const float ms = timed(st, [&] { CK(cudaGraphLaunch(ge, st)); });
            printf("boundary: graph of %d launches, %d x 512 threads, smem %3d KB, PDL %s: %.3f ms, %.2f us per node\n",
                   n, sms, smems[si] / 1024, pdl ? "on " : "off", ms, ms * 1000.0f / n);
            CK(cudaGraphExecDestroy(ge));
            CK(cudaGraphDestroy(g));
        }

    /* 2. one persistent kernel crossing n grid barriers, three ways */
    int per_sm = 0;
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, persistent_kernel, 512, 0));
    if (per_sm < 1) {
        fprintf(stderr, "bench_boundary: the persistent kernel does not fit one block per SM\n");
        return 1;
    }
    gbar *bar;
    unsigned long long *count;
    unsigned *flag;
    CK(cudaMalloc(&bar, sizeof(gbar)));
    CK(cudaMemset(bar, 0, sizeof(gbar)));
    CK(cudaMalloc(&count, sizeof *count));
    CK(cudaMemset(count, 0, sizeof *count));
    CK(cudaMalloc(&flag, (size_t)sms * sizeof *flag));
    CK(cudaMemset(flag, 0, (size_t)sms * sizeof *flag));
    qp_watch *watch;
    CK(cudaMalloc(&watch, sizeof *watch));
    CK(cudaMemset(watch, 0, sizeof *watch));
    unsigned long long base = 0; /* arrivals on count so far (kinds 1 and 3) */
    unsigned epoch = 1;          /* next barrier number (kind 2) */
    static const char *const kind_name[4] = {"counter + generation word", "monotonic counter (red.release)",
                                             "per-block flags, all read by each",
                                             "grid_sync.cuh qp_grid_barrier (monotonic, nanosleep 32)"};
    for (int kind = 0; kind < 4; kind++) {
        auto launch = [&](int nb) {
            /* cooperative: every block resident at once, or the launch fails */
            CK(qp_cuda_launch_coop(persistent_kernel, dim3(sms), dim3(512), 0, st, a, b, bar, count, base, flag, epoch, nb,
                                   kind, watch));
            if (kind == 1 || kind == 3) base += (unsigned long long)nb * sms; /* the kinds that add to count */
            epoch += (unsigned)nb;
        };
        /* one untimed launch first: a barrier that deadlocks fails here, in one bound, rather
         * than once for every timed launch */
        auto stuck = [&] {
            qp_watch hw;
            CK(cudaMemcpy(&hw, watch, sizeof hw, cudaMemcpyDeviceToHost));
            if (hw.stuck)
                fprintf(stderr, "bench_boundary: barrier kind %u (%s), barrier %u, block %u waited more than %.1f s\n",
                        hw.task >> 16, kind_name[hw.task >> 16], hw.task & 0xffff, hw.block, QP_SPIN_NS / 1e9);
            return hw.stuck != 0;
        };
        launch(n);
        CK(cudaStreamSynchronize(st));
        if (stuck()) return 1;
        const float ms = timed(st, [&] { launch(n); });
        const float ms1 = timed(st, [&] { launch(1); });
        if (stuck()) return 1;
        printf("barrier: one kernel, %d x 512 threads, %d grid barriers (%s): %.3f ms, %.2f us per barrier "
               "(one barrier alone: %.3f ms)\n",
               sms, n, kind_name[kind], ms, (ms - ms1) * 1000.0f / (n - 1), ms1);
    }

    /* 3. read ceilings: 6 MB slices rotating over a 145 MB buffer (each read cold in the 50 MB L2,
     * as each layer's weights are in a decode step), then the whole 145 MB */
    unsigned *sink;
    CK(cudaMalloc(&sink, sizeof(unsigned)));
    const size_t big = (size_t)145 << 20, small = (size_t)6 << 20;
    uint4 *buf;
    CK(cudaMalloc(&buf, big));
    CK(cudaMemset(buf, 1, big));
    const int blocks_per_sm[3] = {1, 2, 4};
    for (int si = 0; si < 2; si++) {
        const size_t bytes = si ? big : small;
        for (int bi = 0; bi < 3; bi++) {
            const int grid = sms * blocks_per_sm[bi];
            size_t slice = 0;
            const float ms = timed(st, [&] {
                bench_read_kernel<<<grid, 512, 0, st>>>(buf + (si ? 0 : slice * (small / 16)), bytes / 16, sink);
                CK(cudaGetLastError());
                slice = (slice + 1) % (big / small);
            });
            printf("read: %6.1f MB, %4d blocks x 512: %.4f ms, %.0f GB/s (one launch, cold in L2)\n", bytes / 1e6, grid,
                   ms, bytes / (ms * 1e6));
        }
    }
    {
        uint4 *dst;
        CK(cudaMalloc(&dst, big));
        const float ms = timed(st, [&] { CK(cudaMemcpyAsync(dst, buf, big, cudaMemcpyDeviceToDevice, st)); });
        printf("copy: cudaMemcpy %.1f MB: %.4f ms, %.0f GB/s read + write\n", big / 1e6, ms, 2.0 * big / (ms * 1e6));
        CK(cudaFree(dst));
    }
    CK(cudaFree(buf));
    CK(cudaFree(sink));
    CK(cudaFree(bar));
    CK(cudaFree(count));
    CK(cudaFree(flag));
    CK(cudaFree(watch));
    CK(cudaFree(a));
    CK(cudaFree(b));
    CK(cudaStreamDestroy(st));
    return 0;
}
