/* matvec_stream.cuh — what the two streamed matvec kernels share (matvec_stream.cu: a block's
 * rows copied into shared memory at once; matvec_ring.cu: a block's run of tiles streamed through a
 * ring of shared-memory slots): the copy segments of a unit range and their bulk copies, the
 * mbarrier operations, and the sub-chunk dots from shared memory.
 *
 * Segments: the unit -> rows map of each epilogue is affine on "pieces" (a part for NONE/RESIDUAL,
 * the whole range for SWIGLU, a head's pairs for ROPE_KV); a range of units meets a few pieces,
 * each giving one segment per row kind (a, b). A segment's bytes go to shared memory at the same
 * address modulo 16 as in global memory (so the decoders' aligned loads hold); the 16-byte-aligned
 * middle is one bulk copy, the at most 15 + 15 bytes outside it are copied by threads.
 */
#pragma once
#include "linear_common.cuh"
#include "matvec_stage.cuh"
#include "qp_cuda.h"
#include "quant_blocks.cuh"
#include "quant_dot.cuh"
#include "qp_kernels.h"

#define QP_MMVS_THREADS QP_CUDA_MMVS_THREADS
/* Blocks of 512 threads per SM the registers must allow: 2 caps them at 64, so that the next
 * node's block (PDL) fits beside this one. */
#ifndef QP_MMVS_MIN_BLOCKS
#define QP_MMVS_MIN_BLOCKS 1
#endif
#define QP_MMVS_MAX_SEGS QP_CUDA_MMVS_MAX_SEGS /* segments per block (qp_mmvs_geometry bounds a block's range) */
#define QP_MMVS_MIXED (-1)
#define QP_MMVS_MAX_TOKENS QP_CUDA_MMVB_MAX_TOKENS /* tokens decoded together, at most */
/* rounds of the edge copy: one warp per segment per round */
#define QP_MMVS_EDGE_ROUNDS ((QP_MMVS_MAX_SEGS * 32 + QP_MMVS_THREADS - 1) / QP_MMVS_THREADS)

struct qp_mmvs_seg {
    const uint8_t *src; /* first byte in global memory */
    int64_t row;        /* first stacked row */
    uint32_t bytes;     /* rows * row_bytes */
    uint32_t off;       /* byte offset of src's copy in the block's weight area */
    int32_t n, part;    /* rows, part */
};

/* ---- mbarrier and bulk copy (PTX, sm_90) ---- */
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
/* The single arrival of the barrier's phase 0, announcing `bytes` of bulk copies to complete it. */
static __device__ __forceinline__ void qp_mbar_arrive_tx(uint64_t *bar, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(qp_smem_addr(bar)), "r"(bytes)
                 : "memory");
#elif defined(QP_KEMU)
    kemu::mbar_arrive_tx(bar, bytes);
#endif
}
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
static __device__ __forceinline__ void qp_mbar_wait0(uint64_t *bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    uint32_t done = 0;
    while (!done)
        asm volatile("{\n\t.reg .pred p;\n\tmbarrier.try_wait.parity.shared::cta.b64 p, [%1], 0;\n\t"
                     "selp.u32 %0, 1, 0, p;\n\t}"
                     : "=r"(done)
                     : "r"(qp_smem_addr(bar))
                     : "memory");
#elif defined(QP_KEMU)
    kemu::mbar_wait(bar, 0);
#endif
}

/* The end (exclusive) of the piece holding unit u: on [u, end) the rows of qp_unit_rows grow by
 * one per unit. */
template <int EPI>
static __device__ __forceinline__ int64_t qp_unit_piece_end(const qp_lin_params &p, int64_t u) {
    if constexpr (EPI == QP_EPILOGUE_SWIGLU) {
        return p.units;
    } else if constexpr (EPI == QP_EPILOGUE_ROPE_KV) {
        const int64_t half = p.head_dim / 2, nq = (int64_t)p.n_head * half, nk = (int64_t)p.n_head_kv * half;
        if (u < nq) return (u / half + 1) * half;
        if (u < nq + nk) return nq + ((u - nq) / half + 1) * half;
        return p.units;
    } else {
        int i = 0;
        while (i + 1 < p.n_parts && u >= p.row0[i + 1]) i++;
        return p.row0[i + 1];
    }
}

/* Sub-chunk s of a row (in shared memory) dotted with the staged x (quant_dot.cuh). */
template <int T>
static __device__ __forceinline__ float qp_mmvs_sub(const uint8_t *row, int64_t s, const float *xs) {
    using Q = qp_qt<T>;
    return qp_dot32<T, qp_lds>(row + (s / Q::SUBS) * Q::BYTES, (int)(s % Q::SUBS), xs + s * QP_XS_STRIDE);
}

static __device__ __noinline__ float qp_mmvs_sub_any(int type, const uint8_t *row, int64_t s, const float *xs) {
#define QP_SUB_CASE(T_) \
    case T_: return qp_mmvs_sub<T_>(row, s, xs);
    switch (type) {
        QP_CUDA_TYPES(QP_SUB_CASE)
    default: return __int_as_float(0x7fc00000); /* ops.cu admits no other type */
    }
#undef QP_SUB_CASE
}

/* Sub-chunk s of a row (in shared memory) dotted with the staged inputs of g tokens, xsf floats
 * apart, decoded once (quant_dot.cuh). */
template <int T>
static __device__ __forceinline__ void qp_mmvs_sub_multi(const uint8_t *row, int64_t s, const float *xs, int64_t xsf,
                                                         int g, float (&acc)[QP_MMVS_MAX_TOKENS]) {
    using Q = qp_qt<T>;
    qp_dot32_group<T, qp_lds>(row + (s / Q::SUBS) * Q::BYTES, (int)(s % Q::SUBS), xs + s * QP_XS_STRIDE, xsf, g, acc);
}

/* As qp_mmvs_sub_multi for a row whose type is known at run time only (a mixed node). */
static __device__ __noinline__ void qp_mmvs_sub_multi_any(int type, const uint8_t *row, int64_t s, const float *xs,
                                                          int64_t xsf, int g, float (&acc)[QP_MMVS_MAX_TOKENS]) {
#define QP_SUBM_CASE(T_) \
    case T_: qp_mmvs_sub_multi<T_>(row, s, xs, xsf, g, acc); return;
    switch (type) {
        QP_CUDA_TYPES(QP_SUBM_CASE)
    default:
        for (int j = 0; j < QP_MMVS_MAX_TOKENS; j++) acc[j] = __int_as_float(0x7fc00000); /* ops.cu admits no other type */
    }
#undef QP_SUBM_CASE
}


/* The proxy fence between this block's generic-proxy reads of shared memory and the bulk copies
 * (async proxy) that next write it: a slot of the ring is refilled only after it. */
static __device__ __forceinline__ void qp_fence_proxy_async(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
#endif
}

/* Waits for the completion of the barrier's phase of the given parity (0 for its first use, then
 * 1, 0, ... as a ring slot is reused). */
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

/* One thread: the segments of units [u0, u1) into seg (at most QP_MMVS_MAX_SEGS; the geometry
 * bounds a range's pieces), laid out from wsm; announces their bulk bytes on bar (one arrival) and
 * issues the bulk copies. Returns the number of segments. */
template <int EPI>
static __device__ int qp_mmvs_fill(const qp_lin_params &p, int64_t u0, int64_t u1, qp_mmvs_seg *seg, uint8_t *wsm,
                                   uint64_t *bar) {
    int ns = 0;
    uint32_t off = 0, tx = 0;
    for (int64_t u = u0; u < u1;) {
        int64_t e = qp_unit_piece_end<EPI>(p, u), ra, rb;
        if (e > u1) e = u1;
        qp_unit_rows<EPI>(p, u, &ra, &rb);
        for (int k = 0; k < 2 && ns < QP_MMVS_MAX_SEGS; k++) {
            const int64_t r = k ? rb : ra;
            if (r < 0) continue;
            int pi = 0;
            while (pi + 1 < p.n_parts && r >= p.row0[pi + 1]) pi++;
            qp_mmvs_seg g;
            g.src = p.w[pi] + (size_t)(r - p.row0[pi]) * p.row_bytes[pi];
            g.row = r;
            g.n = (int32_t)(e - u);
            g.part = pi;
            g.bytes = (uint32_t)(g.n * p.row_bytes[pi]);
            const uint32_t mis = (uint32_t)((uintptr_t)g.src & 15u);
            g.off = off + mis;
            off += (mis + g.bytes + 15u) & ~15u;
            const uintptr_t lo = ((uintptr_t)g.src + 15u) & ~(uintptr_t)15u;
            const uintptr_t hi = ((uintptr_t)g.src + g.bytes) & ~(uintptr_t)15u;
            if (hi > lo) tx += (uint32_t)(hi - lo);
            seg[ns++] = g;
        }
        u = e;
    }
    qp_mbar_arrive_tx(bar, tx);
    for (int k = 0; k < ns; k++) {
        const uintptr_t s = (uintptr_t)seg[k].src;
        const uintptr_t lo = (s + 15u) & ~(uintptr_t)15u, hi = (s + seg[k].bytes) & ~(uintptr_t)15u;
        if (hi > lo) qp_bulk_copy(wsm + seg[k].off + (lo - s), (const void *)lo, (uint32_t)(hi - lo), bar);
    }
    return ns;
}

/* The block's threads: the bytes of each segment outside its bulk-copied middle, loaded and
 * stored into wsm (warp w takes segments w, w + warps, ...; lane j byte j of the head, or j - 16 of
 * the tail). Visible to the block after its next __syncthreads. */
static __device__ __forceinline__ void qp_mmvs_edges(const qp_mmvs_seg *seg, int ns, uint8_t *wsm) {
    const int j = threadIdx.x & 31;
    for (int k = threadIdx.x >> 5; k < ns; k += blockDim.x >> 5) {
        const uintptr_t s = (uintptr_t)seg[k].src, end = s + seg[k].bytes;
        const uintptr_t lo = (s + 15u) & ~(uintptr_t)15u, hi = end & ~(uintptr_t)15u;
        uintptr_t a = 0;
        if (hi <= lo) a = s + j < end ? s + j : 0; /* no bulk part: fewer than 32 bytes */
        else if (j < 16) a = s + j < lo ? s + j : 0;
        else a = hi + (j - 16) < end ? hi + (j - 16) : 0;
        if (a) wsm[seg[k].off + (uint32_t)(a - s)] = __ldg((const uint8_t *)a);
    }
}

/* The shared-memory address of stacked row `row` among a range's segments, and its part. */
static __device__ __forceinline__ const uint8_t *qp_mmvs_row(const qp_lin_params &p, const qp_mmvs_seg *seg, int ns,
                                                            const uint8_t *wsm, int64_t row, int *part) {
    int k = 0;
    while (k + 1 < ns && !(row >= seg[k].row && row < seg[k].row + seg[k].n)) k++;
    *part = seg[k].part;
    return wsm + seg[k].off + (size_t)(row - seg[k].row) * p.row_bytes[seg[k].part];
}
