/* matvec.cu — the kernels mmv and mmv_argmax: LINEAR that reads the quantized weight blocks
 * directly, no dequantized copy, one launch per node; made for a few tokens (decode), since every
 * token re-reads the weights.
 *
 * Mapping: one warp per epilogue unit (linear_common.cuh), a block of launch.block threads (at
 * most 256), grid.y = token, warps walk units with a grid stride: mmv_argmax runs launch.split
 * blocks; mmv one unit per warp, or at most launch.grid blocks when that is set. Each lane
 * takes 32-element sub-chunks of the row in turn (qp_row_dot_lane), fp32 accumulation, then a
 * warp reduction. The RMS-norm prologue is folded in: each block computes 1/rms of its token's
 * input, and the product uses x * norm, scaled by 1/rms after the reduction. x * norm is staged
 * once per block in shared memory (padded, conflict-free; QP_XS_STRIDE), never re-read per lane
 * from global memory.
 *
 * Parts of one type (the usual case) run a kernel specialised on that block type. Parts of
 * different types (e.g. q/k Q5_0 with v Q8_0) run ONE launch of the "mixed" kernel (T = -1),
 * which picks the decoder per row at run time (the switch is per row, outside the inner loop).
 *
 * PDL (cuda_common.cuh): before qp_pdl_wait() each warp prefetches its first unit's weight rows
 * into L2 (weights are immutable), so the weight stream of this kernel overlaps the tail of the
 * previous one; everything else happens after the wait.
 *
 * ARGMAX epilogue, fused, for every token: each block merges the (logit, row) pairs of its warps
 * into one partial per token in scratch; the last block to finish a token (a device counter per
 * token, reset by that block) merges its partials and writes step->rows[t].next. Ties go to the
 * first index, NaN never wins, as in argmax.cu. The counters are module memory
 * (qp_mmv_argmax_done): kernels in one stream never overlap their use of them (PDL: the next
 * kernel touches them only after its wait).
 */
#include "linear_common.cuh"
#include "qp_cuda.h"
#include "matvec_stage.cuh"
#include "quant_blocks.cuh"
#include "quant_dot.cuh"

#define QP_MMV_MIXED (-1)

static __device__ unsigned int qp_mmv_argmax_done[QP_CUDA_ARGMAX_MAX_ROWS]; /* blocks done, per row */

/* As qp_row_dot_lane (quant_blocks.cuh) but x (x*norm) from xs, each sub-chunk through qp_dot32
 * (quant_dot.cuh). */
template <int T, int STEP = 32>
static __device__ __forceinline__ float qp_row_dot_lane_xs(const uint8_t *__restrict__ row, int64_t cols,
                                                           const float *__restrict__ xs, int lane) {
    using Q = qp_qt<T>;
    float acc = 0.0f;
    const int64_t nsub = cols / 32;
    for (int64_t s = lane; s < nsub; s += STEP)
        acc += qp_dot32<T>(row + (s / Q::SUBS) * Q::BYTES, (int)(s % Q::SUBS), xs + s * QP_XS_STRIDE);
    return acc;
}

/* One lane's share of row . x: from the staged xs when the block staged it (xs != NULL; float
 * rows only when `vec`), else from global memory. */
template <int T>
static __device__ __forceinline__ float qp_dot_lane(const uint8_t *__restrict__ row, const qp_lin_params &p,
                                                    const float *x, const float *xs, int vec, int lane) {
    if (xs && (vec || !qp_is_float<T>::value)) return qp_row_dot_lane_xs<T>(row, p.cols, xs, lane);
    return qp_row_dot_lane<T>(row, p.cols, x, p.norm, vec, lane);
}

/* Runtime-type dot for the mixed kernel: the same decoders as the specialised kernels. */
static __device__ __noinline__ float qp_row_dot_lane_any(int type, const uint8_t *__restrict__ row,
                                                         const qp_lin_params &p, const float *x,
                                                         const float *xs, int vec, int lane) {
#define QP_DOT_CASE(T_) \
    case T_: return qp_dot_lane<T_>(row, p, x, xs, vec, lane);
    switch (type) {
        QP_CUDA_TYPES(QP_DOT_CASE)
    default: return __int_as_float(0x7fc00000); /* ops.cu admits no other type */
    }
#undef QP_DOT_CASE
}

template <int T>
static __device__ __forceinline__ float qp_mmv_dot(const qp_lin_params &p, int64_t r, const float *x,
                                                   const float *xs, int vec, int lane) {
    int part;
    const uint8_t *row = qp_lin_row(p, r, &part);
    if constexpr (T == QP_MMV_MIXED)
        return qp_row_dot_lane_any(p.type[part], row, p, x, xs, vec, lane);
    else
        return qp_dot_lane<T>(row, p, x, xs, vec, lane);
}

/* KS > 1 (long rows, quantized, x staged, no argmax): KS warps of the block share one unit, warp k
 * of the group taking sub-chunks k*32 + lane, k*32 + lane + 32*KS, ...; the KS warp sums are
 * added in warp order through shared memory. One staged x serves the block's nw/KS units. A
 * separate template instance, so the KS = 1 kernel keeps its registers (docs/performance.md).
 * __launch_bounds__(256) with no minimum of blocks per SM: spelling the minimum as 1 let ptxas
 * take ~122 registers instead of ~78 (2 blocks per SM instead of 3), measured 6% slower (docs/performance.md). */
template <int T, int EPI, bool AM, int KS>
static __global__ void __launch_bounds__(256)
    matvec_kernel(const qp_lin_params p, const int vec, qp_amax *__restrict__ part) {
    __shared__ float red[32];
    __shared__ bool last;
    const int t = blockIdx.y;
    const int lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    const int64_t stride = (int64_t)gridDim.x * nw;
    const int64_t ufirst = (int64_t)blockIdx.x * nw + (threadIdx.x >> 5);
    if (t == 0 && ufirst < p.units) qp_prefetch_unit<EPI>(p, ufirst, lane); /* weights only: before the wait */
    qp_pdl_wait();
    qp_pdl_trigger();
    const float *x = p.x + (int64_t)t * p.cols;
    float inv = 1.0f;
    QP_DYNAMIC_SMEM(float4, qp_xs4);
    const float *xs = NULL;
    if (p.cols % 32 == 0) { /* stage x (x * norm) once per block; see QP_XS_STRIDE */
        inv = qp_stage_x_block((float *)qp_xs4, x, p.norm, p.cols, p.eps, red);
        xs = (const float *)qp_xs4;
    } else if (p.norm) {
        inv = qp_block_inv_rms(x, p.cols, p.eps, red);
    }
    if constexpr (KS > 1) {
        static_assert(!AM && !qp_is_float<T>::value && T != QP_MMV_MIXED, "split-K: quantized rows only");
        __shared__ float kred[2][32];
        const int w = threadIdx.x >> 5, g = w / KS, k = w % KS, upb = nw / KS;
        for (int64_t u0 = (int64_t)blockIdx.x * upb; u0 < p.units; u0 += (int64_t)gridDim.x * upb) {
            const int64_t u = u0 + g;
            int64_t ra = -1, rb = -1;
            float a = 0.0f, b = 0.0f;
            if (u < p.units) {
                int pi;
                qp_unit_rows<EPI>(p, u, &ra, &rb);
                a = qp_warp_sum(qp_row_dot_lane_xs<T, 32 * KS>(qp_lin_row(p, ra, &pi), p.cols, xs, k * 32 + lane));
                if (rb >= 0)
                    b = qp_warp_sum(qp_row_dot_lane_xs<T, 32 * KS>(qp_lin_row(p, rb, &pi), p.cols, xs, k * 32 + lane));
            }
            if (lane == 0) {
                kred[0][w] = a;
                kred[1][w] = b;
            }
            __syncthreads();
            if (k == 0 && lane == 0 && u < p.units) {
                float sa = 0.0f, sb = 0.0f;
#pragma unroll
                for (int j = 0; j < KS; j++) {
                    sa += kred[0][w + j];
                    sb += kred[1][w + j];
                }
                qp_unit_store<EPI>(p, t, u, ra, rb, sa * inv, sb * inv);
            }
            __syncthreads();
        }
        return;
    }
    float bv = -INFINITY;
    int32_t bi = INT32_MAX;
    if constexpr (AM) /* the first unit's rows are in L2 already (before the wait); the second's now */
        if (t == 0 && ufirst + stride < p.units) {
            int pi;
            const uint8_t *r2 = qp_lin_row(p, ufirst + stride, &pi);
            qp_prefetch_row(r2, p.row_bytes[pi], lane);
        }
    for (int64_t u = ufirst; u < p.units; u += stride) {
        int64_t ra, rb;
        qp_unit_rows<EPI>(p, u, &ra, &rb);
        /* the LM head: its grid is capped at QP_CUDA_ARGMAX_BLOCKS, so each warp walks ~20 rows, one
         * DRAM round trip each; the row two steps ahead goes to L2 now */
        if constexpr (AM)
            if (t == 0 && u + 2 * stride < p.units) {
                int pi;
                const uint8_t *r2 = qp_lin_row(p, u + 2 * stride, &pi);
                qp_prefetch_row(r2, p.row_bytes[pi], lane);
            }
        const float a = qp_warp_sum(qp_mmv_dot<T>(p, ra, x, xs, vec, lane));
        float b = 0.0f;
        if (rb >= 0) b = qp_warp_sum(qp_mmv_dot<T>(p, rb, x, xs, vec, lane));
        if (lane == 0) {
            const float val = qp_unit_store<EPI>(p, t, u, ra, rb, a * inv, b * inv);
            if constexpr (AM) qp_amax_merge(&bv, &bi, val, (int32_t)u);
        }
    }
    if constexpr (AM) /* every token's row: its partials at part[t * gridDim.x], its own counter */
        qp_amax_finish(bv, bi, part + (int64_t)t * gridDim.x, &qp_mmv_argmax_done[t], p.step, t, &last);
}

template <int T, int EPI, bool AM, int KS = 1>
static enum qp_status launch_mmv(const qp_lin_params &p, dim3 grid, int threads, int vec, qp_amax *part,
                                 cudaStream_t st, bool pdl, struct qp_error *err) {
    const size_t smem = p.cols % 32 == 0 ? qp_xs_bytes(p.cols) : 0;
    cudaError_t e = cudaSuccess;
    static size_t smem_set = 48 * 1024; /* per instance: beyond the default dynamic limit, opt in once */
    if (smem > smem_set) {
        e = cudaFuncSetAttribute(matvec_kernel<T, EPI, AM, KS>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e == cudaSuccess) smem_set = smem;
    }
    if (e == cudaSuccess) e = qp_cuda_launch_k(matvec_kernel<T, EPI, AM, KS>, grid, threads, smem, st, pdl, p, vec, part);
    if (e == cudaSuccess) e = cudaPeekAtLastError();
    if (e != cudaSuccess)
        return qp_error_set(err, QP_ERR_DEVICE, "%s:%d: matvec_kernel<%s, %s%s, ks %d><<<%u x %u, %d>>>: %s", __FILE__,
                            __LINE__, T == QP_MMV_MIXED ? "mixed" : qp_ggml_type_name(T),
                            qp_epilogue_name((enum qp_epilogue)EPI), AM ? " + argmax" : "", KS, grid.x, grid.y,
                            threads, cudaGetErrorString(e));
    return QP_OK;
}

/* At most launch.grid blocks when that is set: warps then take several units with the grid
 * stride and the kernel is one wave. */
static int64_t mmv_blocks_capped(const struct qp_op_args *a, int64_t blocks) {
    return a->launch.grid > 0 && blocks > a->launch.grid ? a->launch.grid : blocks;
}

enum qp_status qp_cuda_matvec(const struct qp_op_args *a, struct qp_error *err) {
    const qp_lin_params p = qp_lin_params_make(a);
    cudaStream_t st = QP_STREAM(a);
    const bool pdl = a->launch.pdl != 0;
    const int threads = a->launch.block;
    const int warps = threads / 32;
    bool vec = a->in_w % 32 == 0;
    bool mixed = false;
    for (int i = 0; i < a->n_parts; i++) {
        vec = vec && a->w[i].row_bytes % 16 == 0 && (uintptr_t)a->w[i].data % 16 == 0;
        mixed = mixed || a->w[i].type != a->w[0].type;
    }
    const bool am = a->kernel == QP_KERNEL_MMV_ARGMAX;
    if (am != (a->epilogue == QP_EPILOGUE_ARGMAX))
        return qp_error_set(err, QP_ERR_INVALID, "cuda matvec: the argmax epilogue runs with mmv_argmax only");
    const int ks = am ? 1 : a->launch.split;
    if (threads < 32 || threads > 256 || threads % 32 || (ks != 1 && ks != 2 && ks != 4) || warps % ks)
        return qp_error_set(err, QP_ERR_INVALID, "cuda matvec: launch.block %d, split %d (1, 2 or 4 warps per "
                            "unit dividing at most 8 warps)", threads, ks);
    qp_amax *part = NULL;
    int64_t blocks = (p.units + warps - 1) / warps;
    if (am) {
        struct qp_cuda_scratch_layout l;
        enum qp_status s = qp_cuda_scratch_plan(a, &l, err);
        if (s != QP_OK) return s;
        part = (qp_amax *)((char *)a->scratch + l.argmax_off);
        blocks = a->launch.split;
        if (blocks < 1 || blocks > QP_CUDA_ARGMAX_BLOCKS)
            return qp_error_set(err, QP_ERR_INVALID, "cuda mmv_argmax: launch.split %d blocks, 1..%d",
                                a->launch.split, QP_CUDA_ARGMAX_BLOCKS);
    } else {
        blocks = mmv_blocks_capped(a, blocks);
    }
    if (blocks < 1) return QP_OK;
    const dim3 grid((unsigned)blocks, (unsigned)a->n_tok);
    const int v = vec ? 1 : 0;
    qp_cuda_note_launch(am ? QP_KERNEL_MMV_ARGMAX : QP_KERNEL_MMV);
    enum qp_status s = QP_OK;
    if (mixed) {
        if (ks != 1)
            return qp_error_set(err, QP_ERR_INVALID, "cuda mmv: split %d needs weight parts of one type", ks);
        qp_epi_dispatch(a->epilogue, [&](auto te_) {
            constexpr int EPI = decltype(te_)::value;
            if constexpr (EPI == QP_EPILOGUE_NONE) /* ARGMAX dispatches as NONE */
                if (am) {
                    s = launch_mmv<QP_MMV_MIXED, EPI, true>(p, grid, threads, v, part, st, pdl, err);
                    return;
                }
            s = launch_mmv<QP_MMV_MIXED, EPI, false>(p, grid, threads, v, part, st, pdl, err);
        });
        return s;
    }
    /* split-K: ks warps per unit (the residual epilogue on quantized rows: ffn_down's long rows) */
    if (ks > 1) {
        if (a->epilogue != QP_EPILOGUE_RESIDUAL || a->in_w % 32)
            return qp_error_set(err, QP_ERR_UNSUPPORTED, "cuda mmv: split %d needs the residual epilogue and "
                                "rows of whole 32-element sub-chunks", ks);
        const int upb = warps / ks;
        const dim3 gk((unsigned)mmv_blocks_capped(a, (p.units + upb - 1) / upb), (unsigned)a->n_tok);
        bool ok = qp_type_dispatch(a->w[0].type, [&](auto tc_) {
            constexpr int T = decltype(tc_)::value;
            if constexpr (!qp_is_float<T>::value) {
                if (ks == 2) s = launch_mmv<T, QP_EPILOGUE_RESIDUAL, false, 2>(p, gk, threads, v, part, st, pdl, err);
                else s = launch_mmv<T, QP_EPILOGUE_RESIDUAL, false, 4>(p, gk, threads, v, part, st, pdl, err);
            } else {
                s = qp_error_set(err, QP_ERR_UNSUPPORTED, "cuda mmv: split %d needs quantized rows", ks);
            }
        });
        if (!ok)
            return qp_error_set(err, QP_ERR_UNSUPPORTED, "cuda mmv: weight type %s has no kernel",
                                qp_ggml_type_name(a->w[0].type));
        return s;
    }
    bool ok = qp_type_dispatch(a->w[0].type, [&](auto tc_) {
        constexpr int T = decltype(tc_)::value;
        qp_epi_dispatch(a->epilogue, [&](auto te_) {
            constexpr int EPI = decltype(te_)::value;
            if constexpr (EPI == QP_EPILOGUE_NONE) /* ARGMAX dispatches as NONE */
                if (am) {
                    s = launch_mmv<T, EPI, true>(p, grid, threads, v, part, st, pdl, err);
                    return;
                }
            s = launch_mmv<T, EPI, false>(p, grid, threads, v, part, st, pdl, err);
        });
    });
    if (!ok)
        return qp_error_set(err, QP_ERR_UNSUPPORTED, "cuda matvec: weight type %s has no kernel",
                            qp_ggml_type_name(a->w[0].type));
    return s;
}
