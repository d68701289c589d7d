/* test_grid_sync.cu — the waits between blocks of kernels/cuda/grid_sync.cuh, on the GPU
 * (test_grid_sync, label gpu; exits 77 without one) and on the CPU emulator (test_grid_sync_emu,
 * whose cooperative launches run every block on an OS thread of its own):
 *   1. barriers: a grid as large as the card holds resident crosses 48 grid barriers; between
 *      two, every block writes its slice of a double buffer and, after the barrier, reads every
 *      other block's slice: each value must be the one written in that phase (a barrier that let
 *      a block through early, or a write not yet visible, shows as a stale value)
 *   2. dependencies against the launch order: block b waits for the counter to reach the number
 *      of blocks above it, reads what block b + 1 wrote and writes one more, so the blocks finish
 *      last to first (an emulator or card running blocks in index order without co-residency
 *      would hang here)
 *   3. the watch: every block waits for a counter nobody adds to; each wait gives up after its
 *      bound or on seeing another's record, the kernel ends, and the record names the task, the
 *      block, the target and the value seen
 *   4. a cooperative grid one block larger than the card holds fails to launch, and says so
 *   5. counters keep counting across launches: the barrier kernel run again from the counter's
 *      value after the first run
 */
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "grid_sync.cuh"

#define PHASES 48
#define THREADS 128
/* waits that should complete: a bound far above any healthy wait (microseconds on the card;
 * on the emulator, 132 OS threads on a few cores) */
#define BOUND_NS 60000000000ull
/* the wait that cannot complete: 50 ms */
#define SHORT_BOUND_NS 50000000ull

#define CUDA_OK(x)                                                                                 \
    do {                                                                                           \
        cudaError_t e_ = (x);                                                                      \
        if (e_ != cudaSuccess) {                                                                   \
            printf("FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));        \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

static __device__ __forceinline__ unsigned stamp(unsigned phase, unsigned block, unsigned t) {
    return phase * 0x9E3779B1u ^ block * 0x85EBCA77u ^ t * 0xC2B2AE3Du;
}

/* 1 and 5: buf holds 2 x blocks x THREADS words */
static __global__ void __launch_bounds__(THREADS) barrier_kernel(unsigned *buf, unsigned long long *ctr,
                                                                 unsigned long long base, unsigned *errors,
                                                                 qp_watch *w) {
    const unsigned nb = gridDim.x, b = blockIdx.x, t = threadIdx.x;
    for (unsigned k = 0; k < PHASES; k++) {
        unsigned *cur = buf + (k & 1) * nb * THREADS;
        cur[b * THREADS + t] = stamp(k, b, t);
        if (!qp_grid_barrier(ctr, base, k, k, w, BOUND_NS)) return;
        unsigned bad = 0;
        for (unsigned i = t; i < nb * THREADS; i += THREADS) bad += cur[i] != stamp(k, i / THREADS, i % THREADS);
        if (bad) atomicAdd(errors, bad);
    }
}

/* 2: val[nb] is 0 before the launch; block b writes val[b] = val[b + 1] + 1 */
static __global__ void __launch_bounds__(THREADS) chain_kernel(unsigned *val, unsigned long long *ctr, qp_watch *w) {
    const unsigned nb = gridDim.x, b = blockIdx.x;
    if (threadIdx.x == 0) {
        if (!qp_counter_wait(ctr, nb - 1 - b, b, w, BOUND_NS)) return;
        val[b] = val[b + 1] + 1;
        qp_counter_add(ctr, 1);
    }
}

/* 3: a wait that no block can satisfy */
static __global__ void __launch_bounds__(THREADS) stuck_kernel(const unsigned long long *never, qp_watch *w) {
    if (threadIdx.x == 0) qp_counter_wait(never, 1, 1000 + blockIdx.x, w, SHORT_BOUND_NS);
}

int main(void) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev < 1) {
        printf("SKIP test_grid_sync: no CUDA device\n");
        return 77;
    }
    cudaDeviceProp prop;
    CUDA_OK(cudaGetDeviceProperties(&prop, 0));
    int per_sm = 0;
    CUDA_OK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, barrier_kernel, THREADS, 0));
    CHECK(per_sm >= 1, "barrier_kernel fits %d blocks an SM", per_sm);
    /* 1 block an SM: the persistent kernel's shape; the emulator's one OS thread a block */
    const unsigned nb = (unsigned)prop.multiProcessorCount;
    printf("%s: %u SMs, %d blocks of %d threads resident an SM\n", prop.name, nb, per_sm, THREADS);
    cudaStream_t st;
    CUDA_OK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));

    unsigned *buf, *errors, *val;
    unsigned long long *ctr;
    qp_watch *w;
    CUDA_OK(cudaMalloc(&buf, 2 * (size_t)nb * THREADS * sizeof *buf));
    CUDA_OK(cudaMalloc(&errors, sizeof *errors));
    CUDA_OK(cudaMalloc(&val, (nb + 1) * sizeof *val));
    CUDA_OK(cudaMalloc(&ctr, sizeof *ctr));
    CUDA_OK(cudaMalloc(&w, sizeof *w));

    /* 1 and 5: two launches on one counter */
    CUDA_OK(cudaMemset(buf, 0, 2 * (size_t)nb * THREADS * sizeof *buf));
    CUDA_OK(cudaMemset(errors, 0, sizeof *errors));
    CUDA_OK(cudaMemset(ctr, 0, sizeof *ctr));
    CUDA_OK(cudaMemset(w, 0, sizeof *w));
    for (int run = 0; run < 2; run++) {
        const unsigned long long base = (unsigned long long)run * PHASES * nb;
        CUDA_OK(qp_cuda_launch_coop(barrier_kernel, dim3(nb), dim3(THREADS), 0, st, buf, ctr, base, errors, w));
        CUDA_OK(cudaStreamSynchronize(st));
        unsigned e = 0;
        unsigned long long c = 0;
        qp_watch hw;
        CUDA_OK(cudaMemcpy(&e, errors, sizeof e, cudaMemcpyDeviceToHost));
        CUDA_OK(cudaMemcpy(&c, ctr, sizeof c, cudaMemcpyDeviceToHost));
        CUDA_OK(cudaMemcpy(&hw, w, sizeof hw, cudaMemcpyDeviceToHost));
        CHECK(e == 0, "run %d: %u stale values read after a barrier", run, e);
        CHECK(hw.stuck == 0, "run %d: barrier %u timed out in block %u (counter %llu of %llu)", run, hw.task, hw.block,
              hw.seen, hw.target);
        CHECK(c == base + (unsigned long long)PHASES * nb, "run %d: counter %llu, expected %llu", run, c,
              base + (unsigned long long)PHASES * nb);
        printf("%s barriers: run %d, %u blocks x %d barriers, counter %llu\n", e || hw.stuck ? "FAIL" : "ok  ", run, nb,
               PHASES, c);
    }

    /* 2 */
    CUDA_OK(cudaMemset(val, 0, (nb + 1) * sizeof *val));
    CUDA_OK(cudaMemset(ctr, 0, sizeof *ctr));
    CUDA_OK(cudaMemset(w, 0, sizeof *w));
    CUDA_OK(qp_cuda_launch_coop(chain_kernel, dim3(nb), dim3(THREADS), 0, st, val, ctr, w));
    CUDA_OK(cudaStreamSynchronize(st));
    {
        unsigned h[1024];
        qp_watch hw;
        CUDA_OK(cudaMemcpy(h, val, (nb + 1) * sizeof *val, cudaMemcpyDeviceToHost));
        CUDA_OK(cudaMemcpy(&hw, w, sizeof hw, cudaMemcpyDeviceToHost));
        unsigned bad = 0;
        for (unsigned b = 0; b < nb; b++) bad += h[b] != nb - b;
        CHECK(bad == 0 && hw.stuck == 0, "%u blocks read a stale value (block 0: %u, expected %u); watch %u", bad, h[0],
              nb, hw.stuck);
        printf("%s dependencies: %u blocks finished last to first, block 0 read %u\n",
               bad || hw.stuck ? "FAIL" : "ok  ", nb, h[0]);
    }

    /* 3 */
    CUDA_OK(cudaMemset(ctr, 0, sizeof *ctr));
    CUDA_OK(cudaMemset(w, 0, sizeof *w));
    CUDA_OK(qp_cuda_launch_coop(stuck_kernel, dim3(nb), dim3(THREADS), 0, st, (const unsigned long long *)ctr, w));
    CUDA_OK(cudaStreamSynchronize(st));
    {
        qp_watch hw;
        CUDA_OK(cudaMemcpy(&hw, w, sizeof hw, cudaMemcpyDeviceToHost));
        const bool ok = hw.stuck == 1 && hw.task == 1000 + hw.block && hw.block < nb && hw.target == 1 && hw.seen == 0;
        CHECK(ok, "watch: stuck %u task %u block %u target %llu seen %llu", hw.stuck, hw.task, hw.block, hw.target,
              hw.seen);
        printf("%s watch: the stuck wait named: task %u in block %u, waiting for 1, saw %llu\n", ok ? "ok  " : "FAIL",
               hw.task, hw.block, hw.seen);
    }

    /* 4 */
    {
        int stuck_per_sm = 0;
        CUDA_OK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&stuck_per_sm, stuck_kernel, THREADS, 0));
        const unsigned too_many = nb * (unsigned)stuck_per_sm + 1;
        const cudaError_t e = qp_cuda_launch_coop(stuck_kernel, dim3(too_many), dim3(THREADS), 0, st,
                                                  (const unsigned long long *)ctr, w);
        (void)cudaGetLastError();
        CHECK(e == cudaErrorCooperativeLaunchTooLarge, "a cooperative grid of %u blocks: %s", too_many,
              cudaGetErrorName(e));
        printf("%s too large: %u blocks refused (%s)\n", e == cudaErrorCooperativeLaunchTooLarge ? "ok  " : "FAIL",
               too_many, cudaGetErrorName(e));
    }

    CUDA_OK(cudaFree(buf));
    CUDA_OK(cudaFree(errors));
    CUDA_OK(cudaFree(val));
    CUDA_OK(cudaFree(ctr));
    CUDA_OK(cudaFree(w));
    CUDA_OK(cudaStreamDestroy(st));
    printf("%d failed\n", failures);
    return failures ? 1 : 0;
}
