/* matvec.cu — LINEAR for a few tokens (decode; n_tok <= QP_CUDA_MATVEC_MAX_TOK): reads the
 * quantized weight blocks directly, no dequantized copy. One launch per node.
 *
 * Mapping: one warp per epilogue unit (linear_common.cuh), a block of launch.block threads
 * (default 256 = 8 units), grid.y = token, warps walk units with a grid stride (the ARGMAX
 * epilogue caps the grid at QP_CUDA_ARGMAX_BLOCKS blocks; otherwise one unit per warp). Each lane
 * takes 32-element sub-chunks of the row in turn (qp_row_dot_lane), fp32 accumulation, then a
 * warp reduction. Long rows (more than 64 sub-chunks: ffn_down's 4864 columns) are split over
 * ks = 2..8 warps of the block (split-K: warp kp takes sub-chunks kp*32 + lane, step 32*ks), the
 * ks warp sums added in warp order through shared memory. Rows of Q4_0/Q5_0/Q8_0 up to 1 KiB are
 * read by the warp with coalesced 4-byte loads into shared memory first ("coop", below; opt-in,
 * measured slower). The RMS-norm prologue is folded in: each block computes 1/rms of its token's
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
 * ARGMAX epilogue, fused: each block merges the (logit, row) pairs of its warps into one partial
 * in scratch; the last block to finish (a device counter, reset by that block) merges the
 * partials and writes step->next_token. Ties go to the first index, NaN never wins, as in
 * argmax.cu. The counter is module memory (qp_mmv_argmax_done): kernels in one stream never
 * overlap their use of it (PDL: the next kernel touches it only after its wait).
 */
#include "linear_common.cuh"
#include "qp_cuda.h"
#include "quant_blocks.cuh"

#define QP_MMV_MIXED (-1)
/* Blocks of 256 per SM the register allocation must allow. 3 or 4 (<= 85 / 64 registers) made
 * ptxas spill in most instantiations (checked with -Xptxas -v), so the default asks nothing:
 * ~80 registers, 3 blocks (24 warps) per SM, as before split-K. */
#ifndef QP_MMV_MIN_BLOCKS
#define QP_MMV_MIN_BLOCKS 1
#endif

static __device__ unsigned int qp_mmv_argmax_done;

/* Row r of the stacked matrix and the part it lies in. */
static __device__ __forceinline__ const uint8_t *qp_lin_row(const qp_lin_params &p, int64_t r, int *part) {
    int i = 0;
    while (i + 1 < p.n_parts && r >= p.row0[i + 1]) i++;
    *part = i;
    return p.w[i] + (size_t)(r - p.row0[i]) * p.row_bytes[i];
}

static __device__ __forceinline__ void qp_prefetch_l2(const void *ptr) {
    asm volatile("prefetch.global.L2 [%0];" ::"l"(ptr));
}

/* The row's bytes into L2, a warp's lanes striding 128-byte lines. */
static __device__ __forceinline__ void qp_prefetch_row(const uint8_t *row, size_t bytes, int lane) {
    const uintptr_t a0 = (uintptr_t)row & ~(uintptr_t)127, end = (uintptr_t)row + bytes;
    for (uintptr_t a = a0 + 128u * (uintptr_t)lane; a < end; a += 128u * 32u) qp_prefetch_l2((const void *)a);
}

/* xs: the block's token input (times norm when the prologue is on) staged in shared memory,
 * sub-chunk s of 32 floats at xs + s * QP_XS_STRIDE. The 4-float pad puts the 8 lanes of each
 * 16-byte load phase in different banks; reading x straight from global memory instead (each lane
 * a different 128-byte line per float4) cost 32 L1 wavefronts per load and was what held the
 * decode matvec to 2-14% of bandwidth (docs/performance.md). */
#define QP_XS_STRIDE 36

/* As qp_row_dot_lane (quant_blocks.cuh) but x (x*norm) from xs: the same products, summed in
 * the same order. */
template <int T>
static __device__ __forceinline__ float qp_row_dot_lane_xs(const uint8_t *__restrict__ row, int64_t cols,
                                                           const float *__restrict__ xs, int s0, int step) {
    using Q = qp_qt<T>;
    float acc = 0.0f;
    const int64_t nsub = cols / 32;
    for (int64_t s = s0; s < nsub; s += step) {
        float v[32];
        qp_dec32<T>(row + (s / Q::SUBS) * Q::BYTES, (int)(s % Q::SUBS), v);
        const float4 *x4 = (const float4 *)(xs + s * QP_XS_STRIDE);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const float4 a = x4[i];
            acc += v[4 * i] * a.x + v[4 * i + 1] * a.y + v[4 * i + 2] * a.z + v[4 * i + 3] * a.w;
        }
    }
    return acc;
}

/* One lane's share of row . x: from the staged xs when the block staged it (xs != NULL; float
 * rows only when `vec`): sub-chunks s0, s0 + step, ...; else from global memory (then the host
 * guarantees s0 = lane, step = 32: one warp per row). */
template <int T>
static __device__ __forceinline__ float qp_dot_lane(const uint8_t *__restrict__ row, const qp_lin_params &p,
                                                    const float *x, const float *xs, int vec, int s0, int step,
                                                    int lane) {
    if (xs && (vec || !qp_is_float<T>::value)) return qp_row_dot_lane_xs<T>(row, p.cols, xs, s0, step);
    return qp_row_dot_lane<T>(row, p.cols, x, p.norm, vec, lane);
}

/* Cooperative row staging ("coop"): for the 2-byte-aligned legacy blocks (Q4_0, Q5_0, Q8_0: 18,
 * 22, 34 bytes) a lane reading its own block needs 9-17 2-byte loads whose warp-wide footprint
 * spans 5-8 L1 lines each (~60 L1 wavefronts per 616-byte Q5_0 row). Instead the warp reads the
 * row with coalesced 4-byte loads (lane i word i, i + 32, ...: one wavefront per 128 bytes; all
 * loads of both rows of a unit issued before any store) into its own shared buffer, then each
 * lane decodes its block from there: the same values, products and summation order as
 * qp_row_dot_lane_xs. Rows up to QP_COOP_BYTES, 4-byte-aligned rows only (the host checks). */
#define QP_COOP_BYTES 1024
#define QP_COOP_WORDS (QP_COOP_BYTES / 4)
template <int T> struct qp_coop_type {
    static constexpr bool value = T == QP_GGML_Q4_0 || T == QP_GGML_Q5_0 || T == QP_GGML_Q8_0;
};
static bool qp_coop_type_rt(int t) { return t == QP_GGML_Q4_0 || t == QP_GGML_Q5_0 || t == QP_GGML_Q8_0; }

/* The 32 elements of the block at b (shared memory, 2-byte aligned): as qp_dec32. */
template <int T>
static __device__ __forceinline__ void qp_dec32_sm(const uint8_t *b, float (&v)[32]) {
    const uint16_t *h = (const uint16_t *)b;
    const float d = qp_h2f(h[0]);
    if constexpr (T == QP_GGML_Q8_0) {
#pragma unroll
        for (int j = 0; j < 16; j++) {
            const uint16_t w = h[1 + j];
            v[2 * j] = (float)(int8_t)(w & 0xFF) * d;
            v[2 * j + 1] = (float)(int8_t)(w >> 8) * d;
        }
    } else {
        constexpr int Q0 = T == QP_GGML_Q5_0 ? 3 : 1; /* first u16 of qs */
        uint8_t q[16];
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const uint16_t w = h[Q0 + j];
            q[2 * j] = (uint8_t)(w & 0xFF);
            q[2 * j + 1] = (uint8_t)(w >> 8);
        }
        if constexpr (T == QP_GGML_Q5_0) {
            const uint32_t qh = (uint32_t)h[1] | ((uint32_t)h[2] << 16);
#pragma unroll
            for (int j = 0; j < 16; j++) {
                const int x0 = (int)((q[j] & 0xF) | (((qh >> j) << 4) & 0x10)) - 16;
                const int x1 = (int)((q[j] >> 4) | ((qh >> (j + 12)) & 0x10)) - 16;
                v[j] = (float)x0 * d;
                v[j + 16] = (float)x1 * d;
            }
        } else {
#pragma unroll
            for (int j = 0; j < 16; j++) {
                v[j] = (float)((q[j] & 0xF) - 8) * d;
                v[j + 16] = (float)((q[j] >> 4) - 8) * d;
            }
        }
    }
}

template <int T>
static __device__ __forceinline__ float qp_row_dot_lane_sm(const uint8_t *row, int64_t cols, const float *xs,
                                                           int lane) {
    float acc = 0.0f;
    const int64_t nsub = cols / 32;
    for (int64_t s = lane; s < nsub; s += 32) {
        float v[32];
        qp_dec32_sm<T>(row + s * qp_qt<T>::BYTES, v);
        const float4 *x4 = (const float4 *)(xs + s * QP_XS_STRIDE);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const float4 a = x4[i];
            acc += v[4 * i] * a.x + v[4 * i + 1] * a.y + v[4 * i + 2] * a.z + v[4 * i + 3] * a.w;
        }
    }
    return acc;
}

/* Loads (coalesced) the nw words of row r into registers; stored by qp_coop_store. */
static __device__ __forceinline__ void qp_coop_load(const uint8_t *row, int nw, int lane,
                                                    uint32_t (&r)[QP_COOP_WORDS / 32]) {
#pragma unroll
    for (int i = 0; i < QP_COOP_WORDS / 32; i++) {
        const int k = lane + 32 * i;
        r[i] = k < nw ? __ldg((const unsigned int *)row + k) : 0u;
    }
}
static __device__ __forceinline__ void qp_coop_store(uint32_t *dst, int nw, int lane,
                                                     const uint32_t (&r)[QP_COOP_WORDS / 32]) {
#pragma unroll
    for (int i = 0; i < QP_COOP_WORDS / 32; i++) {
        const int k = lane + 32 * i;
        if (k < nw) dst[k] = r[i];
    }
}

/* Runtime-type dot for the mixed kernel: the same decoders as the specialised kernels. */
static __device__ __noinline__ float qp_row_dot_lane_any(int type, const uint8_t *__restrict__ row,
                                                         const qp_lin_params &p, const float *x,
                                                         const float *xs, int vec, int s0, int step,
                                                         int lane) {
#define QP_DOT_CASE(T_) \
    case T_: return qp_dot_lane<T_>(row, p, x, xs, vec, s0, step, lane);
    switch (type) {
        QP_DOT_CASE(QP_GGML_F32) QP_DOT_CASE(QP_GGML_F16) QP_DOT_CASE(QP_GGML_BF16)
        QP_DOT_CASE(QP_GGML_Q4_0) QP_DOT_CASE(QP_GGML_Q4_1) QP_DOT_CASE(QP_GGML_Q5_0)
        QP_DOT_CASE(QP_GGML_Q5_1) QP_DOT_CASE(QP_GGML_Q8_0) QP_DOT_CASE(QP_GGML_Q2_K)
        QP_DOT_CASE(QP_GGML_Q3_K) QP_DOT_CASE(QP_GGML_Q4_K) QP_DOT_CASE(QP_GGML_Q5_K)
        QP_DOT_CASE(QP_GGML_Q6_K)
    default: return __int_as_float(0x7fc00000); /* ops.cu admits no other type */
    }
#undef QP_DOT_CASE
}

template <int T>
static __device__ __forceinline__ float qp_mmv_dot(const qp_lin_params &p, int64_t r, const float *x,
                                                   const float *xs, int vec, int s0, int step, int lane) {
    int part;
    const uint8_t *row = qp_lin_row(p, r, &part);
    if constexpr (T == QP_MMV_MIXED)
        return qp_row_dot_lane_any(p.type[part], row, p, x, xs, vec, s0, step, lane);
    else
        return qp_dot_lane<T>(row, p, x, xs, vec, s0, step, lane);
}

/* Row r (staged in shared memory at sm) . xs, this lane's share. */
template <int T>
static __device__ __forceinline__ float qp_mmv_dot_sm(const qp_lin_params &p, int part, const uint8_t *sm,
                                                      const float *xs, int lane) {
    if constexpr (T == QP_MMV_MIXED) {
        switch (p.type[part]) {
        case QP_GGML_Q4_0: return qp_row_dot_lane_sm<QP_GGML_Q4_0>(sm, p.cols, xs, lane);
        case QP_GGML_Q5_0: return qp_row_dot_lane_sm<QP_GGML_Q5_0>(sm, p.cols, xs, lane);
        case QP_GGML_Q8_0: return qp_row_dot_lane_sm<QP_GGML_Q8_0>(sm, p.cols, xs, lane);
        default: return __int_as_float(0x7fc00000); /* the host enables coop for these only */
        }
    } else if constexpr (qp_coop_type<T>::value) {
        (void)part;
        return qp_row_dot_lane_sm<T>(sm, p.cols, xs, lane);
    } else {
        (void)part, (void)sm, (void)xs, (void)lane;
        return __int_as_float(0x7fc00000); /* the host enables coop for these only */
    }
}

template <int T, int EPI, bool AM>
static __global__ void __launch_bounds__(256, QP_MMV_MIN_BLOCKS)
    matvec_kernel(const qp_lin_params p, const int vec, const int ks, const int coop, qp_amax *__restrict__ part) {
    __shared__ float red[32];
    __shared__ float kred[2][8]; /* per-warp partial products when ks > 1 (<= 8 warps) */
    __shared__ bool last;
    const int t = blockIdx.y;
    const int lane = threadIdx.x & 31, nw = blockDim.x >> 5, warp = threadIdx.x >> 5;
    /* ks warps per unit (split-K): group g of the block, this warp's share kp of the row */
    const int gpb = nw / ks, g = warp / ks, kp = warp % ks;
    const int64_t stride = (int64_t)gridDim.x * gpb;
    const int64_t ufirst = (int64_t)blockIdx.x * gpb + g;
    if (t == 0 && kp == 0 && ufirst < p.units) { /* weights only: safe before the wait */
        int64_t ra, rb;
        int pi;
        qp_unit_rows<EPI>(p, ufirst, &ra, &rb);
        qp_prefetch_row(qp_lin_row(p, ra, &pi), p.row_bytes[pi], lane);
        if (rb >= 0) qp_prefetch_row(qp_lin_row(p, rb, &pi), p.row_bytes[pi], lane);
    }
    qp_pdl_wait();
    qp_pdl_trigger();
    const float *x = p.x + (int64_t)t * p.cols;
    const float inv = p.norm ? qp_block_inv_rms(x, p.cols, p.eps, red) : 1.0f;
    extern __shared__ float4 qp_xs4[];
    const float *xs = NULL;
    if (p.cols % 32 == 0) { /* stage x (x * norm) once per block; see QP_XS_STRIDE */
        float *w = (float *)qp_xs4;
        if (((uintptr_t)x & 15) == 0 && ((uintptr_t)p.norm & 15) == 0) {
            /* 16-byte loads, 4 in flight per thread: float4 c holds elements 4c..4c+3 of sub-chunk
             * c / 8 (a 4864-column row is 19 KB: scalar loads were ~19 dependent L2 round trips) */
            const float4 *x4 = (const float4 *)x, *n4 = (const float4 *)p.norm;
            const int64_t nc4 = p.cols / 4;
#pragma unroll 4
            for (int64_t c = threadIdx.x; c < nc4; c += blockDim.x) {
                float4 v = x4[c];
                if (n4) {
                    const float4 n = n4[c];
                    v.x *= n.x;
                    v.y *= n.y;
                    v.z *= n.z;
                    v.w *= n.w;
                }
                *(float4 *)(w + (c >> 3) * QP_XS_STRIDE + (c & 7) * 4) = v;
            }
        } else {
            for (int64_t c = threadIdx.x; c < p.cols; c += blockDim.x)
                w[(c >> 5) * QP_XS_STRIDE + (c & 31)] = p.norm ? x[c] * p.norm[c] : x[c];
        }
        __syncthreads();
        xs = w;
    }
    /* coop: this warp's two row buffers after xs (the host sizes the dynamic shared memory) */
    uint32_t *wb = coop ? (uint32_t *)((float *)qp_xs4 + (p.cols / 32) * QP_XS_STRIDE) + warp * 2 * QP_COOP_WORDS
                        : NULL;
    float bv = -INFINITY;
    int32_t bi = INT32_MAX;
    /* block-uniform trip count: every warp reaches the __syncthreads of the ks > 1 reduction */
    for (int64_t u0 = (int64_t)blockIdx.x * gpb; u0 < p.units; u0 += stride) {
        const int64_t u = u0 + g;
        int64_t ra = 0, rb = -1;
        float a = 0.0f, b = 0.0f;
        if (u < p.units) {
            qp_unit_rows<EPI>(p, u, &ra, &rb);
            if (coop) {
                int pa, pb = 0;
                const uint8_t *rowa = qp_lin_row(p, ra, &pa), *rowb = rb >= 0 ? qp_lin_row(p, rb, &pb) : NULL;
                const int nwa = (int)(p.row_bytes[pa] / 4), nwb = rb >= 0 ? (int)(p.row_bytes[pb] / 4) : 0;
                uint32_t la[QP_COOP_WORDS / 32], lb[QP_COOP_WORDS / 32];
                qp_coop_load(rowa, nwa, lane, la);
                if (rowb) qp_coop_load(rowb, nwb, lane, lb);
                qp_coop_store(wb, nwa, lane, la);
                if (rowb) qp_coop_store(wb + QP_COOP_WORDS, nwb, lane, lb);
                __syncwarp();
                a = qp_warp_sum(qp_mmv_dot_sm<T>(p, pa, (const uint8_t *)wb, xs, lane));
                if (rowb) b = qp_warp_sum(qp_mmv_dot_sm<T>(p, pb, (const uint8_t *)(wb + QP_COOP_WORDS), xs, lane));
                __syncwarp(); /* the buffers are rewritten by the next unit */
            } else {
                const int s0 = kp * 32 + lane, step = 32 * ks;
                a = qp_warp_sum(qp_mmv_dot<T>(p, ra, x, xs, vec, s0, step, lane));
                if (rb >= 0) b = qp_warp_sum(qp_mmv_dot<T>(p, rb, x, xs, vec, s0, step, lane));
            }
        }
        if (ks > 1) { /* the ks warps of a unit: partials summed in warp order (deterministic) */
            if (lane == 0) {
                kred[0][warp] = a;
                kred[1][warp] = b;
            }
            __syncthreads();
            if (kp == 0) {
                a = 0.0f;
                b = 0.0f;
                for (int k = 0; k < ks; k++) {
                    a += kred[0][warp + k];
                    b += kred[1][warp + k];
                }
            }
            __syncthreads();
        }
        if (kp == 0 && lane == 0 && u < p.units) {
            const float val = qp_unit_store<EPI>(p, t, u, ra, rb, a * inv, b * inv);
            if constexpr (AM) qp_amax_merge(&bv, &bi, val, (int32_t)u);
        }
    }
    if constexpr (AM) {
        if (t != (int)gridDim.y - 1) return; /* argmax of the last token's row only */
        qp_amax_block(&bv, &bi);
        if (threadIdx.x == 0) {
            part[blockIdx.x] = qp_amax{bv, bi};
            __threadfence();
            last = atomicAdd(&qp_mmv_argmax_done, 1u) == gridDim.x - 1;
        }
        __syncthreads();
        if (!last) return;
        __threadfence();
        bv = -INFINITY;
        bi = INT32_MAX;
        for (int k = threadIdx.x; k < (int)gridDim.x; k += blockDim.x) {
            const float2 pk = __ldcg((const float2 *)(part + k));
            qp_amax_merge(&bv, &bi, pk.x, __float_as_int(pk.y));
        }
        qp_amax_block(&bv, &bi);
        if (threadIdx.x == 0) {
            ((struct qp_step *)p.step)->next_token = bi == INT32_MAX ? 0 : bi;
            qp_mmv_argmax_done = 0;
        }
    }
}

template <int T, int EPI, bool AM>
static enum qp_status launch_mmv(const qp_lin_params &p, dim3 grid, int threads, int vec, int ks, int coop,
                                 qp_amax *part, cudaStream_t st, struct qp_error *err) {
    size_t smem = p.cols % 32 == 0 ? (size_t)(p.cols / 32) * QP_XS_STRIDE * sizeof(float) : 0;
    if (coop) smem += (size_t)(threads / 32) * 2 * QP_COOP_BYTES;
    cudaError_t e = cudaSuccess;
    if (smem > 48 * 1024) /* beyond the default dynamic limit: opt in (not a stream operation) */
        e = cudaFuncSetAttribute(matvec_kernel<T, EPI, AM>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e == cudaSuccess) e = qp_cuda_launch_k(matvec_kernel<T, EPI, AM>, grid, threads, smem, st, p, vec, ks, coop, part);
    if (e == cudaSuccess) e = cudaPeekAtLastError();
    if (e != cudaSuccess)
        return qp_error_set(err, QP_ERR_DEVICE, "%s:%d: matvec_kernel<%s, %s%s><<<%u x %u, %d>>> (ks %d, coop %d): %s",
                            __FILE__, __LINE__, T == QP_MMV_MIXED ? "mixed" : qp_ggml_type_name(T),
                            qp_epilogue_name((enum qp_epilogue)EPI), AM ? " + argmax" : "", grid.x, grid.y,
                            threads, ks, coop, cudaGetErrorString(e));
    return QP_OK;
}

/* Experiment knobs read once: QP_CUDA_MMV_KS=<n> forces the split (1 = off), QP_CUDA_MMV_COOP=1
 * turns the cooperative row staging on; unset = the defaults chosen below. */
static int qp_mmv_env(const char *name, int dflt) {
    const char *e = getenv(name);
    return e && e[0] ? atoi(e) : dflt;
}

enum qp_status qp_cuda_matvec(const struct qp_op_args *a, struct qp_error *err) {
    static int env_ks = -2, env_coop = -2;
    if (env_ks == -2) {
        env_ks = qp_mmv_env("QP_CUDA_MMV_KS", -1);
        env_coop = qp_mmv_env("QP_CUDA_MMV_COOP", -1);
    }
    const qp_lin_params p = qp_lin_params_make(a);
    cudaStream_t st = QP_STREAM(a);
    const int threads = a->launch.block > 0 ? a->launch.block : 256;
    const int warps = threads / 32;
    bool vec = a->in_w % 32 == 0;
    bool mixed = false, quant = true, coop = a->in_w % 32 == 0;
    for (int i = 0; i < a->n_parts; i++) {
        vec = vec && a->w[i].row_bytes % 16 == 0 && (uintptr_t)a->w[i].data % 16 == 0;
        mixed = mixed || a->w[i].type != a->w[0].type;
        quant = quant && a->w[i].type != QP_GGML_F32 && a->w[i].type != QP_GGML_F16 && a->w[i].type != QP_GGML_BF16;
        coop = coop && qp_coop_type_rt(a->w[i].type) && a->w[i].row_bytes % 4 == 0 &&
               a->w[i].row_bytes <= QP_COOP_BYTES && (uintptr_t)a->w[i].data % 4 == 0;
    }
    const bool am = a->epilogue == QP_EPILOGUE_ARGMAX;
    /* split-K (ks warps per unit): long rows only (ffn_down, 4864 columns = 152 sub-chunks: one
     * warp per row left each lane 5 serial sub-chunks and 8 warps per SM, docs/performance.md);
     * only on the staged-x path (quantized rows, cols % 32 == 0); not with the argmax grid cap. */
    int ks = 1;
    if (quant && a->in_w % 32 == 0 && !am) {
        const int64_t nsub = a->in_w / 32;
        if (env_ks >= 1) {
            while (ks * 2 <= env_ks && warps % (ks * 2) == 0) ks *= 2;
        } else {
            while (warps % (ks * 2) == 0 && nsub > 64 * ks) ks *= 2;
        }
    }
    /* coop measured slower on an H100 (tg128 626 -> 613 t/s, docs/performance.md): opt-in only */
    if (ks > 1 || env_coop != 1) coop = false;
    const int gpb = warps / ks;
    int64_t blocks = (p.units + gpb - 1) / gpb;
    qp_amax *part = NULL;
    if (am) {
        struct qp_cuda_scratch_layout l;
        enum qp_status s = qp_cuda_scratch_plan(a, &l, err);
        if (s != QP_OK) return s;
        part = (qp_amax *)((char *)a->scratch + l.argmax_off);
        if (blocks > QP_CUDA_ARGMAX_BLOCKS) blocks = QP_CUDA_ARGMAX_BLOCKS;
    }
    if (blocks < 1) return QP_OK;
    const dim3 grid((unsigned)blocks, (unsigned)a->n_tok);
    const int v = vec ? 1 : 0, c = coop ? 1 : 0;
    enum qp_status s = QP_OK;
    if (mixed) {
        qp_epi_dispatch(a->epilogue, [&](auto te_) {
            constexpr int EPI = decltype(te_)::value;
            if constexpr (EPI == QP_EPILOGUE_NONE) /* ARGMAX dispatches as NONE */
                if (am) {
                    s = launch_mmv<QP_MMV_MIXED, EPI, true>(p, grid, threads, v, ks, c, part, st, err);
                    return;
                }
            s = launch_mmv<QP_MMV_MIXED, EPI, false>(p, grid, threads, v, ks, c, part, st, err);
        });
        return s;
    }
    bool ok = qp_type_dispatch(a->w[0].type, [&](auto tc_) {
        constexpr int T = decltype(tc_)::value;
        qp_epi_dispatch(a->epilogue, [&](auto te_) {
            constexpr int EPI = decltype(te_)::value;
            if constexpr (EPI == QP_EPILOGUE_NONE) /* ARGMAX dispatches as NONE */
                if (am) {
                    s = launch_mmv<T, EPI, true>(p, grid, threads, v, ks, c, part, st, err);
                    return;
                }
            s = launch_mmv<T, EPI, false>(p, grid, threads, v, ks, c, part, st, err);
        });
    });
    if (!ok)
        return qp_error_set(err, QP_ERR_UNSUPPORTED, "cuda matvec: weight type %s has no kernel",
                            qp_ggml_type_name(a->w[0].type));
    return s;
}
