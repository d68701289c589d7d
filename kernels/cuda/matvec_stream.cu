/* matvec_stream.cu — the kernel mmv_stream: LINEAR for a few tokens (decode) with its weights
 * streamed into shared memory by the copy engine of each SM (TMA bulk copies, sm_90) before the
 * kernel waits for its input.
 *
 * Why (docs/performance.md): the one-warp-per-row kernel (matvec.cu) pays a chain of
 * latencies per block and per wave — stage x and its RMS norm, then issue a row's loads, wait a
 * DRAM round trip, reduce, store — so a 6 MB gate+up took ~13 us against ~2 us of bandwidth. Here
 * each block owns one contiguous range of launch.rows_per_block units whose rows fit in
 * QP_CUDA_MMVS_WBYTES of shared memory (qp_mmvs_geometry, kernels/kernel_table.c, sizes it);
 * its first thread issues one bulk copy per contiguous row segment, all at kernel start, and only
 * then does the block wait for the previous kernel (PDL: the copies overlap that kernel's tail) and
 * stage x. The DRAM stream of the whole range is in flight at once, and the decode reads shared
 * memory.
 *
 * Work inside a block: items (unit, row a/b, chunk of 32 sub-chunks); warp w takes items w, w +
 * warps, ...; each lane decodes one 32-element sub-chunk (the decoders of quant_blocks.cuh through
 * the shared-memory loader) and the warp sums the chunk. The chunk sums of each row are added in
 * chunk order (deterministic), then one thread per unit writes the epilogue (linear_common.cuh).
 * For n_tok > 1 the weights are copied once and the tokens run from shared memory in groups of
 * launch.split (batched decode): the group's inputs are staged together, and each lane decodes its
 * sub-chunk into registers once (qp_dec32) and dots it with every token of the group, so a group
 * costs about one decode of the weights, not one per token. One token at a time (split 0 or 1)
 * takes the integer dots of quant_dot.cuh instead, the fastest for a single token.
 *
 * Segments: the unit -> rows map of each epilogue is affine on "pieces" (a part for NONE/RESIDUAL,
 * the whole range for SWIGLU, a head's pairs for ROPE_KV); a block's range meets a few pieces, each
 * giving one segment per row kind (a, b). A segment's bytes go to shared memory at the same address
 * modulo 16 as in global memory (so the decoders' aligned loads hold); the 16-byte-aligned middle
 * is one bulk copy, the at most 15 + 15 bytes outside it are copied by one thread each.
 *
 * Tiles: a block's work is two device functions of its unit range [u0, u1), so that a resident
 * kernel can run the same code for ranges it picks: qp_mmvs_issue (one thread: the
 * segments and their copies, weights only) and qp_mmvs_run (the edges, a wait given by the caller,
 * then the dots and the epilogue). The kernel below is the two with the PDL wait between them.
 *
 * Does not run (qp_kernel_check refuses it at load): the ARGMAX epilogue, rows whose columns are not
 * a multiple of 32, float rows not 16-byte aligned, one unit larger than the budget.
 */
#include "bulk_copy.cuh"
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

/* A tile's copy: the segments of its unit range and the barrier its bulk copies complete. */
struct qp_mmvs_tile {
    uint64_t bar; /* an mbarrier (qp_mbar_init): one phase per issue */
    int nseg;
    qp_mmvs_seg seg[QP_MMVS_MAX_SEGS];
};

/* One thread: the segments of units [u0, u1) into tl, each segment's 16-byte-aligned middle
 * bulk-copied to wsm + its offset, completing tl.bar's current phase. Reads only weights: safe
 * before the wait for the input. */
template <int EPI>
static __device__ __forceinline__ void qp_mmvs_issue(const qp_lin_params &p, int64_t u0, int64_t u1, uint8_t *wsm,
                                                     qp_mmvs_tile &tl) {
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
            tl.seg[ns++] = g;
        }
        u = e;
    }
    tl.nseg = ns;
    qp_mbar_arrive_tx(&tl.bar, tx);
    for (int k = 0; k < ns; k++) {
        const uintptr_t s = (uintptr_t)tl.seg[k].src;
        const uintptr_t lo = (s + 15u) & ~(uintptr_t)15u, hi = (s + tl.seg[k].bytes) & ~(uintptr_t)15u;
        if (hi > lo) qp_bulk_copy(wsm + tl.seg[k].off + (lo - s), (const void *)lo, (uint32_t)(hi - lo), &tl.bar);
    }
}

/* The block's shared memory a tile runs in, beside the weights of its issue. */
struct qp_mmvs_smem {
    float *xs;    /* staged x: G x qp_xs_bytes(cols) */
    float *part;  /* chunk sums: G x items (given, not derived from xs here: deriving it in the
                   * group instances spilled more registers, scripts/sass-compare.sh) */
    float *red;   /* 32 floats (32 x QP_MMVS_MAX_TOKENS for groups): the norms' reduction */
    float *inv_s; /* QP_MMVS_MAX_TOKENS: each token's norm */
};

/* The whole block: units [u0, u1) of n_tok tokens, whose weights qp_mmvs_issue put at wsm (tl, the
 * parity of the barrier phase it completes), x staged in groups of tpg. wait() is called by every
 * thread after the edge bytes are loaded and before x is read: the caller's wait for the input
 * (the PDL wait in the kernel). The caller syncs the block between the issue and this. */
template <int T, int EPI, bool MULTI, class W>
static __device__ __forceinline__ void qp_mmvs_run(const qp_lin_params &p, int64_t u0, int64_t u1, uint8_t *wsm,
                                                   qp_mmvs_tile &tl, uint32_t parity, const qp_mmvs_smem &sm,
                                                   int n_tok, int tpg, W wait) {
    const int64_t xsf = (p.cols / 32) * QP_XS_STRIDE; /* floats of one token's staged x */
    float *const xs = sm.xs, *const part = sm.part, *const red = sm.red, *const inv_s = sm.inv_s;
    qp_mmvs_seg *const seg = tl.seg;
    int &nseg = tl.nseg;
    constexpr int NR = (EPI == QP_EPILOGUE_SWIGLU || EPI == QP_EPILOGUE_ROPE_KV) ? 2 : 1;
#ifdef QP_MMVS_TRACE /* a measurement build: SM clock at each phase, printed by two blocks */
    long long tr[7];
    unsigned long long g0, g1;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(g0));
    tr[0] = clock64();
#define QP_TR(i) tr[i] = clock64()
#else
#define QP_TR(i) (void)0
#endif
    /* the bytes outside each segment's aligned middle: in each round, thread 32k + j takes byte j of
     * segment k's head (j < 16) or tail (j >= 16); loaded now, stored after the x staging */
    uint8_t edge[QP_MMVS_EDGE_ROUNDS];
    int32_t edge_at[QP_MMVS_EDGE_ROUNDS];
#pragma unroll
    for (int e = 0; e < QP_MMVS_EDGE_ROUNDS; e++) {
        const int k = (threadIdx.x >> 5) + e * (QP_MMVS_THREADS / 32), j = threadIdx.x & 31;
        edge[e] = 0;
        edge_at[e] = -1;
        if (k < nseg) {
            const uintptr_t s = (uintptr_t)seg[k].src, end = s + seg[k].bytes;
            const uintptr_t lo = (s + 15u) & ~(uintptr_t)15u, hi = end & ~(uintptr_t)15u;
            uintptr_t a = 0;
            if (hi <= lo) a = s + j < end ? s + j : 0; /* no bulk part: bytes < 32, one per thread */
            else if (j < 16) a = s + j < lo ? s + j : 0;
            else a = hi + (j - 16) < end ? hi + (j - 16) : 0;
            if (a) {
                edge[e] = __ldg((const uint8_t *)a);
                edge_at[e] = (int32_t)(seg[k].off + (uint32_t)(a - s));
            }
        }
    }
    /* this thread's first epilogue unit (units are taken from the block's last thread down, so the
     * threads with no x to stage prepare them), its RoPE frequency, and the norm weights into L2:
     * none depends on the input */
    const int ue = (int)blockDim.x - 1 - (int)threadIdx.x;
    const bool has_ue = ue < u1 - u0;
    const double freq = has_ue ? qp_unit_freq<EPI>(p, u0 + ue) : 0.0;
    if (p.norm)
        for (int64_t c = (int64_t)threadIdx.x * 32; c < p.cols; c += (int64_t)blockDim.x * 32) qp_prefetch_l2(p.norm + c);
    wait();
    QP_TR(2);

    /* 2. per group of tpg tokens: stage their x, the items, the epilogues */
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    const int64_t nsub = p.cols / 32;
    const int nchunk = (int)((nsub + 31) / 32);
    const int nu = (int)(u1 - u0), nitems = nu * NR * nchunk;
    for (int t0 = 0; t0 < n_tok; t0 += tpg) {
        const int g = n_tok - t0 < tpg ? n_tok - t0 : tpg;
        if constexpr (!MULTI) {
            const float inv = qp_stage_x_block(xs, p.x + (int64_t)t0 * p.cols, p.norm, p.cols, p.eps, red);
            if (threadIdx.x == 0) inv_s[0] = inv;
        } else {
            qp_stage_x_group(xs, xsf, p.x + (int64_t)t0 * p.cols, p.norm, p.cols, g, p.eps, red, inv_s);
        }
        if (t0 == 0) {
            QP_TR(3);
#pragma unroll
            for (int e = 0; e < QP_MMVS_EDGE_ROUNDS; e++)
                if (edge_at[e] >= 0) wsm[edge_at[e]] = edge[e];
            qp_mbar_wait(&tl.bar, parity);
            QP_TR(4);
        }
        __syncthreads(); /* inv_s, and the edge bytes */
        /* the epilogue's loads and RoPE angle, ahead of the dots: by the block's last threads, whose
         * warps have no item when the block has few (qkv, attn_output); one token at a time only */
        qp_unit_pre pre = {1.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        if (!MULTI && has_ue) pre = qp_unit_prepare<EPI>(p, t0, u0 + ue, freq);
        /* item it = j * nchunk + c, stepped by nw without a division per item */
        const int dj = nw / nchunk, dc = nw % nchunk;
        for (int it = warp, c = warp % nchunk, j = warp / nchunk; it < nitems; it += nw) {
            int64_t ra, rb;
            qp_unit_rows<EPI>(p, u0 + j / NR, &ra, &rb);
            const int64_t row = j % NR ? rb : ra;
            const uint8_t *rp = NULL;
            int pi = 0;
            const int64_t s = (int64_t)c * 32 + lane;
            if (row >= 0) {
                int k = 0;
                while (k + 1 < nseg && !(row >= seg[k].row && row < seg[k].row + seg[k].n)) k++;
                pi = seg[k].part;
                rp = wsm + seg[k].off + (size_t)(row - seg[k].row) * p.row_bytes[pi];
            }
            if constexpr (!MULTI) {
                float acc = 0.0f;
                if (rp && s < nsub) {
                    if constexpr (T == QP_MMVS_MIXED) acc = qp_mmvs_sub_any(p.type[pi], rp, s, xs);
                    else acc = qp_mmvs_sub<T>(rp, s, xs);
                }
                acc = qp_warp_sum(acc);
                if (lane == 0) part[it] = acc;
            } else {
                float acc[QP_MMVS_MAX_TOKENS];
#pragma unroll
                for (int k = 0; k < QP_MMVS_MAX_TOKENS; k++) acc[k] = 0.0f;
                if (rp && s < nsub) {
                    if constexpr (T == QP_MMVS_MIXED) qp_mmvs_sub_multi_any(p.type[pi], rp, s, xs, xsf, g, acc);
                    else qp_mmvs_sub_multi<T>(rp, s, xs, xsf, g, acc);
                }
                /* lane l holds token (l / (32 / MAX))'s sum: one multi-value reduction, not one per token */
                constexpr int LPT = 32 / QP_MMVS_MAX_TOKENS;
                const float sum = qp_warp_sum_n<QP_MMVS_MAX_TOKENS>(acc, lane);
                const int tk = lane / LPT;
                if (lane % LPT == 0 && tk < g) part[tk * nitems + it] = sum;
            }
            c += dc;
            j += dj;
            if (c >= nchunk) {
                c -= nchunk;
                j++;
            }
        }
        if (t0 == 0) QP_TR(5);
        __syncthreads();
        if constexpr (!MULTI) {
            const float inv = inv_s[0];
            for (int ui = ue; ui < nu; ui += blockDim.x) {
                float a = 0.0f, b = 0.0f;
                for (int c = 0; c < nchunk; c++) a += part[(ui * NR) * nchunk + c];
                if constexpr (NR == 2)
                    for (int c = 0; c < nchunk; c++) b += part[(ui * NR + 1) * nchunk + c];
                int64_t ra, rb;
                qp_unit_rows<EPI>(p, u0 + ui, &ra, &rb);
                if (ui == ue) {
                    qp_unit_store_pre<EPI>(p, t0, u0 + ui, ra, rb, a * inv, b * inv, pre);
                } else { /* more units than threads */
                    const qp_unit_pre pu = qp_unit_prepare<EPI>(p, t0, u0 + ui, qp_unit_freq<EPI>(p, u0 + ui));
                    qp_unit_store_pre<EPI>(p, t0, u0 + ui, ra, rb, a * inv, b * inv, pu);
                }
            }
        } else { /* the (token, unit) pairs of the group in parallel, from the block's last thread */
            for (int wi = ue; wi < g * nu; wi += blockDim.x) {
                const int k = wi / nu, ui = wi - k * nu;
                const float inv = inv_s[k];
                const float *pk = part + k * nitems;
                float a = 0.0f, b = 0.0f;
                for (int c = 0; c < nchunk; c++) a += pk[(ui * NR) * nchunk + c];
                if constexpr (NR == 2)
                    for (int c = 0; c < nchunk; c++) b += pk[(ui * NR + 1) * nchunk + c];
                int64_t ra, rb;
                qp_unit_rows<EPI>(p, u0 + ui, &ra, &rb);
                const qp_unit_pre pu = qp_unit_prepare<EPI>(p, t0 + k, u0 + ui, qp_unit_freq<EPI>(p, u0 + ui));
                qp_unit_store_pre<EPI>(p, t0 + k, u0 + ui, ra, rb, a * inv, b * inv, pu);
            }
        }
        if (t0 + tpg < n_tok) __syncthreads(); /* xs, inv_s and part are rewritten by the next group */
    }
#ifdef QP_MMVS_TRACE
    QP_TR(6);
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(g1));
    if (threadIdx.x == 0 && (blockIdx.x == 0 || blockIdx.x == gridDim.x / 2))
        printf("mvs T%d E%d b%d units %lld: wait %lld stage %lld mbar %lld items %lld end %lld cycles; "
               "ns %llu .. %llu\n",
               T, EPI, blockIdx.x, (long long)(u1 - u0), tr[2] - tr[0], tr[3] - tr[0], tr[4] - tr[0],
               tr[5] - tr[0], tr[6] - tr[0], g0, g1);
#endif
#undef QP_TR
}

/* Dynamic shared memory: [weights: wbytes][staged x: G x qp_xs_bytes(cols)][chunk sums: G x items],
 * G = the tokens decoded together (tpg). MULTI: the instance for groups of tokens (tpg > 1); the
 * one-token instance is compiled apart, so that the group code costs it no registers. Block b runs
 * units [b * upb, (b + 1) * upb): its copies first, then the PDL wait, then the dots. */
template <int T, int EPI, bool MULTI>
static __global__ void __launch_bounds__(QP_MMVS_THREADS, QP_MMVS_MIN_BLOCKS)
    matvec_stream_kernel(const qp_lin_params p, const int64_t upb, const uint32_t wbytes, const int n_tok,
                         const int tpg) {
    QP_DYNAMIC_SMEM(float4, qp_mmvs_smem_raw);
    __shared__ qp_mmvs_tile tl;
    __shared__ float red[MULTI ? 32 * QP_MMVS_MAX_TOKENS : 32];
    __shared__ float inv_s[QP_MMVS_MAX_TOKENS];
    uint8_t *wsm = (uint8_t *)qp_mmvs_smem_raw;
    qp_mmvs_smem sm;
    sm.xs = (float *)(wsm + wbytes);
    sm.part = sm.xs + tpg * ((p.cols / 32) * QP_XS_STRIDE);
    sm.red = red;
    sm.inv_s = inv_s;
    const int64_t u0 = (int64_t)blockIdx.x * upb, u1 = u0 + upb < p.units ? u0 + upb : p.units;
    if (threadIdx.x == 0) {
        qp_mbar_init(&tl.bar);
        qp_mmvs_issue<EPI>(p, u0, u1, wsm, tl);
    }
    __syncthreads();
    qp_mmvs_run<T, EPI, MULTI>(p, u0, u1, wsm, tl, 0u, sm, n_tok, tpg, [] {
        qp_pdl_wait();
        qp_pdl_trigger();
    });
}

template <int T, int EPI, bool MULTI>
static enum qp_status launch_mmvs(const qp_lin_params &p, int64_t blocks, int64_t upb, uint32_t wbytes, size_t smem,
                                  int n_tok, int tpg, cudaStream_t st, bool pdl, struct qp_error *err) {
    auto k = matvec_stream_kernel<T, EPI, MULTI>;
    cudaError_t e = cudaSuccess;
    /* per instance, set when first needed, not on every (eager) per-token launch: the dynamic
     * shared memory beyond the default 48 KB, and the largest carveout, so that the next node's
     * block can fit beside this one */
    static size_t smem_set = 0; /* the default limit counts static shared memory too: opt in always */
    static bool carveout_set = false;
    if (smem > smem_set) {
        e = cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e == cudaSuccess) smem_set = smem;
    }
    if (e == cudaSuccess && !carveout_set) {
        e = cudaFuncSetAttribute(k, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared);
        carveout_set = e == cudaSuccess;
    }
    if (e == cudaSuccess)
        e = qp_cuda_launch_k(k, dim3((unsigned)blocks), dim3(QP_MMVS_THREADS), smem, st, pdl, p, upb, wbytes, n_tok, tpg);
    if (e == cudaSuccess) e = cudaPeekAtLastError();
    if (e != cudaSuccess)
        return qp_error_set(err, QP_ERR_DEVICE, "%s:%d: matvec_stream_kernel<%s, %s><<<%lld, %d, %zu>>>: %s", __FILE__,
                            __LINE__, T == QP_MMVS_MIXED ? "mixed" : qp_ggml_type_name(T),
                            qp_epilogue_name((enum qp_epilogue)EPI), (long long)blocks, QP_MMVS_THREADS, smem,
                            cudaGetErrorString(e));
    return QP_OK;
}

/* Whether the kernels were built for sm_90 or later (the bulk copies and mbarriers need it). */
static bool qp_mmvs_built_for_sm90(void) {
    static int ok = -1;
    if (ok < 0) {
        cudaFuncAttributes fa;
        ok = cudaFuncGetAttributes(&fa, matvec_stream_kernel<QP_GGML_Q8_0, QP_EPILOGUE_NONE, false>) == cudaSuccess &&
             fa.binaryVersion >= 90;
        (void)cudaGetLastError();
    }
    return ok != 0;
}

enum qp_status qp_cuda_matvec_stream(const struct qp_op_args *a, struct qp_error *err) {
    if (!qp_mmvs_built_for_sm90())
        return qp_error_set(err, QP_ERR_UNSUPPORTED, "cuda mmv_stream: this build has no sm_90 code for it "
                            "(CMAKE_CUDA_ARCHITECTURES); compile the plan for this card's --target");
    if (a->epilogue == QP_EPILOGUE_ARGMAX || a->in_w % 32 != 0)
        return qp_error_set(err, QP_ERR_UNSUPPORTED, "cuda mmv_stream: no argmax epilogue, rows of whole "
                            "32-element sub-chunks");
    if (a->launch.block != QP_MMVS_THREADS)
        return qp_error_set(err, QP_ERR_INVALID, "cuda mmv_stream: launch.block %d, the kernel runs %d",
                            a->launch.block, QP_MMVS_THREADS);
    struct qp_mmvs_geometry g;
    enum qp_status s = qp_mmvs_geometry(a, a->launch.rows_per_block, a->launch.split, &g, err);
    if (s != QP_OK) return s;
    const qp_lin_params p = qp_lin_params_make(a);
    bool mixed = false;
    for (int i = 0; i < a->n_parts; i++) {
        const bool fl = a->w[i].type == QP_GGML_F32 || a->w[i].type == QP_GGML_F16 || a->w[i].type == QP_GGML_BF16;
        if (fl && (a->w[i].row_bytes % 16 || (uintptr_t)a->w[i].data % 16))
            return qp_error_set(err, QP_ERR_UNSUPPORTED, "cuda mmv_stream: %s rows must be 16-byte aligned",
                                qp_ggml_type_name(a->w[i].type));
        mixed = mixed || a->w[i].type != a->w[0].type;
    }
    if (g.blocks < 1) return QP_OK;
    cudaStream_t st = QP_STREAM(a);
    const bool pdl = a->launch.pdl != 0;
    const int64_t upb = a->launch.rows_per_block;
    const int tpg = a->launch.split > 1 ? a->launch.split : 1; /* geometry bounds it */
    qp_cuda_note_launch(QP_KERNEL_MMV_STREAM);
    if (mixed) {
        qp_epi_dispatch(a->epilogue, [&](auto te_) {
            constexpr int EPI = decltype(te_)::value;
            s = tpg > 1 ? launch_mmvs<QP_MMVS_MIXED, EPI, true>(p, g.blocks, upb, g.wbytes, g.smem, a->n_tok, tpg, st, pdl, err)
                        : launch_mmvs<QP_MMVS_MIXED, EPI, false>(p, g.blocks, upb, g.wbytes, g.smem, a->n_tok, tpg, st, pdl, err);
        });
        return s;
    }
    const bool ok = qp_type_dispatch(a->w[0].type, [&](auto tc_) {
        constexpr int T = decltype(tc_)::value;
        qp_epi_dispatch(a->epilogue, [&](auto te_) {
            constexpr int EPI = decltype(te_)::value;
            s = tpg > 1 ? launch_mmvs<T, EPI, true>(p, g.blocks, upb, g.wbytes, g.smem, a->n_tok, tpg, st, pdl, err)
                        : launch_mmvs<T, EPI, false>(p, g.blocks, upb, g.wbytes, g.smem, a->n_tok, tpg, st, pdl, err);
        });
    });
    if (!ok)
        return qp_error_set(err, QP_ERR_UNSUPPORTED, "cuda mmv_stream: weight type %s has no kernel",
                            qp_ggml_type_name(a->w[0].type));
    return s;
}
