/* grid_sync.cuh — waiting on other blocks of the same grid: the primitives a persistent kernel
 * (one resident launch running many plan nodes, issue 18) is built from, and the rules that keep
 * them from hanging.
 *
 *   counter   a 64-bit word in global memory that only grows. A block that finished a piece of
 *             work adds to it with release semantics (qp_counter_add); a block that needs that
 *             work waits until it reaches a target (qp_counter_wait, acquire). Nothing resets it,
 *             so there is no serial reset step and no ABA: the n-th use of a counter waits for
 *             base + n * producers, base being what it held before the launch.
 *   barrier   a grid-wide barrier is a counter every block adds 1 to and waits for
 *             base + k * gridDim (qp_grid_barrier); a dependency on some tiles of an earlier node
 *             is the same wait on that node's counter with a smaller target.
 *   watch     every wait is bounded. A wait that passes its bound (nanoseconds of %globaltimer)
 *             records, once per launch, which task waited, in which block, for what target and
 *             what it saw (struct qp_watch), and returns false; a wait that sees another wait's
 *             record returns false at once. The kernel then leaves, and the host reports the
 *             record: a hang becomes an error that names the stuck task.
 *
 * Blocks that wait on each other must all be resident at once: such a kernel is launched with
 * qp_cuda_launch_coop (a cooperative launch, which fails instead of starting when the grid cannot
 * be resident on this card). On the CPU emulator (tests/kemu) a cooperative launch runs its blocks
 * concurrently, one OS thread each, and these waits yield to the other threads of the block.
 */
#pragma once
#include <cuda_runtime.h>
#include <stdint.h>

#include <utility>

#include "cuda_common.cuh"

/* Where a launch's first timed-out wait is recorded (global memory, zeroed before the launch). */
struct qp_watch {
    unsigned stuck;            /* 0, or 1 once a wait timed out */
    unsigned task;             /* the waiting task's id (the caller's numbering: node, tile) */
    unsigned block;            /* blockIdx.x of the waiter */
    unsigned pad;
    unsigned long long target; /* what it waited for */
    unsigned long long seen;   /* what the counter held when it gave up */
};

static __device__ __forceinline__ unsigned long long qp_globaltimer_ns(void) {
#ifdef QP_KEMU
    return kemu::globaltimer_ns();
#else
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
#endif
}

static __device__ __forceinline__ unsigned long long qp_ld_acquire_u64(const unsigned long long *p) {
#ifdef QP_KEMU
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
#else
    unsigned long long v;
    asm volatile("ld.acquire.gpu.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
    return v;
#endif
}

static __device__ __forceinline__ unsigned qp_ld_acquire_u32(const unsigned *p) {
#ifdef QP_KEMU
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
#else
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
#endif
}

/* Adds v to counter c with release semantics: every write this thread made (and, after a
 * __syncthreads, every write of its block) is visible to a thread that acquires the new value. */
static __device__ __forceinline__ void qp_counter_add(unsigned long long *c, unsigned long long v) {
#ifdef QP_KEMU
    kemu::counter_add(c, v);
#else
    asm volatile("red.release.gpu.global.add.u64 [%0], %1;" ::"l"(c), "l"(v) : "memory");
#endif
}

/* Waits (one thread) until *c >= target, with acquire semantics; false when the wait passed
 * bound_ns or another wait of this launch already timed out (w->stuck). The first wait to time
 * out records task, block, target and the value it saw in *w. */
static __device__ __forceinline__ bool qp_counter_wait(const unsigned long long *c, unsigned long long target,
                                                       unsigned task, qp_watch *w, unsigned long long bound_ns) {
    unsigned long long v = qp_ld_acquire_u64(c);
    if (v >= target) return true;
    const unsigned long long t0 = qp_globaltimer_ns();
    for (unsigned spin = 0;; spin++) {
#ifdef QP_KEMU
        kemu::spin();
#else
        __nanosleep(32);
#endif
        v = qp_ld_acquire_u64(c);
        if (v >= target) return true;
        if ((spin & 63) == 63) {
            if (qp_ld_acquire_u32(&w->stuck)) return false;
            if (qp_globaltimer_ns() - t0 > bound_ns) {
                if (atomicCAS(&w->stuck, 0u, 1u) == 0u) {
                    w->task = task;
                    w->block = blockIdx.x;
                    w->target = target;
                    w->seen = v;
                    __threadfence();
                }
                return false;
            }
        }
    }
}

/* Grid-wide barrier k (0, 1, 2, ... within the launch) on counter c, which held `base` when the
 * launch started: the block's writes before it are visible to every block after it. Called by
 * every thread of every block; returns false in every thread of the block when the wait timed
 * out (see qp_counter_wait; task names the barrier). */
static __device__ __forceinline__ bool qp_grid_barrier(unsigned long long *c, unsigned long long base, unsigned k,
                                                       unsigned task, qp_watch *w, unsigned long long bound_ns) {
    __shared__ int qp_barrier_ok;
    __syncthreads(); /* the block's writes happen before thread 0's release */
    if (threadIdx.x == 0) {
        qp_counter_add(c, 1);
        const unsigned long long n = (unsigned long long)gridDim.x * gridDim.y * gridDim.z;
        qp_barrier_ok = qp_counter_wait(c, base + (k + 1ull) * n, task, w, bound_ns);
    }
    __syncthreads();
    return qp_barrier_ok != 0;
}

/* Launches kernel k with every block resident at once (cooperative), or returns the launch's
 * error (cudaErrorCooperativeLaunchTooLarge where the grid does not fit this card). */
template <typename... KArgs, typename... Args>
static cudaError_t qp_cuda_launch_coop(void (*k)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t st,
                                       Args &&...args) {
    return qp_cuda_launch_kc(k, grid, block, smem, st, false, true, std::forward<Args>(args)...);
}
