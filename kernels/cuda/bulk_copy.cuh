/* bulk_copy.cuh — the copy engine of an SM (TMA bulk copies, sm_90) into shared memory,
 * completing on an mbarrier: one thread initialises the barrier, announces the bytes of a phase
 * (qp_mbar_arrive_tx) and issues the copies; the block waits for the phase (qp_mbar_wait, by its
 * parity: 0 for the first use of a barrier, 1 for the second, ...). Users: matvec_stream.cu (one
 * phase a launch) and bench/bench_persistent.cu (a barrier per buffer, reused every node).
 * On the CPU emulator each helper calls kemu's mbarrier and bulk-copy model (tests/kemu).
 */
#pragma once
#include <cuda_runtime.h>
#include <stdint.h>

static __device__ __forceinline__ uint32_t qp_smem_addr(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}
static __device__ __forceinline__ void qp_mbar_init(uint64_t *bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(qp_smem_addr(bar)) : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
#elif defined(QP_KEMU)
    kemu::mbar_init(bar, 1);
#endif
}
/* The single arrival of the barrier's current phase, announcing `bytes` of bulk copies to complete it. */
static __device__ __forceinline__ void qp_mbar_arrive_tx(uint64_t *bar, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(qp_smem_addr(bar)), "r"(bytes)
                 : "memory");
#elif defined(QP_KEMU)
    kemu::mbar_arrive_tx(bar, bytes);
#endif
}
/* bytes (a multiple of 16, both addresses 16-byte aligned) from global src to shared dst. */
static __device__ __forceinline__ void qp_bulk_copy(void *dst, const void *src, uint32_t bytes, uint64_t *bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                     qp_smem_addr(dst)),
                 "l"(src), "r"(bytes), "r"(qp_smem_addr(bar))
                 : "memory");
#elif defined(QP_KEMU)
    kemu::bulk_copy(dst, src, bytes, bar);
#endif
}
/* Returns once the barrier's phase of this parity has completed. */
static __device__ __forceinline__ void qp_mbar_wait(uint64_t *bar, uint32_t parity) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    uint32_t done = 0;
    while (!done)
        asm volatile("{\n\t.reg .pred p;\n\tmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n\t"
                     "selp.u32 %0, 1, 0, p;\n\t}"
                     : "=r"(done)
                     : "r"(qp_smem_addr(bar)), "r"(parity)
                     : "memory");
#elif defined(QP_KEMU)
    kemu::mbar_wait(bar, parity);
#endif
}
