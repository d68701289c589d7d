/* matvec_stage.cuh — the decode matvecs' x staging (matvec.cu, matvec_stream.cu): one token's
 * input, times the RMS-norm weight when the prologue is on, copied once per block into shared
 * memory in a padded layout, with the sum of squares for 1/rms taken on the way. */
#pragma once
#include "cuda_common.cuh"
#include "linear_common.cuh"
#include "qp_cuda.h"

static __device__ __forceinline__ void qp_prefetch_l2(const void *ptr) {
#ifdef QP_KEMU
    (void)ptr; /* a hint only */
#else
    asm volatile("prefetch.global.L2 [%0];" ::"l"(ptr));
#endif
}

/* The row's bytes into L2, a warp's lanes striding 128-byte lines. */
static __device__ __forceinline__ void qp_prefetch_row(const uint8_t *row, size_t bytes, int lane) {
    const uintptr_t a0 = (uintptr_t)row & ~(uintptr_t)127, end = (uintptr_t)row + bytes;
    for (uintptr_t a = a0 + 128u * (uintptr_t)lane; a < end; a += 128u * 32u) qp_prefetch_l2((const void *)a);
}

/* The rows of unit u (linear_common.cuh) into L2, by the calling warp: what the matvec kernels
 * touch before their PDL wait (the weights never change, so this is safe while the previous
 * kernel still runs). */
template <int EPI>
static __device__ __forceinline__ void qp_prefetch_unit(const qp_lin_params &p, int64_t u, int lane) {
    int64_t ra, rb;
    int pi;
    qp_unit_rows<EPI>(p, u, &ra, &rb);
    /* the row first: an argument list may read p.row_bytes[pi] before qp_lin_row sets pi */
    const uint8_t *row = qp_lin_row(p, ra, &pi);
    qp_prefetch_row(row, p.row_bytes[pi], lane);
    if (rb >= 0) {
        row = qp_lin_row(p, rb, &pi);
        qp_prefetch_row(row, p.row_bytes[pi], lane);
    }
}

/* xs: the block's token input (times norm when the prologue is on) staged in shared memory,
 * sub-chunk s of 32 floats at xs + s * QP_XS_STRIDE. The 4-float pad puts the 8 lanes of each
 * 16-byte load phase in different banks; reading x straight from global memory instead (each lane
 * a different 128-byte line per float4) cost 32 L1 wavefronts per load and was what held the
 * decode matvec to 2-14% of bandwidth (docs/performance.md). */
#define QP_XS_STRIDE QP_CUDA_XS_STRIDE /* include/qp_cuda.h, where the shared-memory sizes are planned */

/* Stages x (times norm when norm != NULL) into w, sub-chunk s of 32 floats at w + s *
 * QP_XS_STRIDE, with 16-byte loads, QP_STAGE_BATCH of them (and of norm) issued per thread before
 * any is used: the scalar load-store loop this replaces made a 4864-float x ~19 serial L2 round
 * trips per thread (docs/performance.md). Returns this thread's sum of x^2 (the RMS norm's
 * input, so x is read once). Requires cols % 32 == 0 and x, norm 16-byte aligned. */
#define QP_STAGE_BATCH 4
static __device__ __forceinline__ float qp_stage_x4(float *w, const float *x, const float *norm, int64_t cols) {
    const float4 *x4 = (const float4 *)x, *n4 = (const float4 *)norm;
    const int64_t n = cols / 4, step = blockDim.x;
    float ss = 0.0f;
    for (int64_t c0 = threadIdx.x; c0 < n; c0 += QP_STAGE_BATCH * step) {
        float4 a[QP_STAGE_BATCH], g[QP_STAGE_BATCH];
#pragma unroll
        for (int j = 0; j < QP_STAGE_BATCH; j++) {
            const int64_t c = c0 + j * step;
            if (c < n) {
                a[j] = x4[c];
                g[j] = norm ? __ldg(n4 + c) : make_float4(1.0f, 1.0f, 1.0f, 1.0f);
            }
        }
#pragma unroll
        for (int j = 0; j < QP_STAGE_BATCH; j++) {
            const int64_t c = c0 + j * step;
            if (c < n) {
                const float4 v = a[j];
                ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
                *(float4 *)(w + (c >> 3) * QP_XS_STRIDE + 4 * (c & 7)) =
                    norm ? make_float4(v.x * g[j].x, v.y * g[j].y, v.z * g[j].z, v.w * g[j].w) : v;
            }
        }
    }
    return ss;
}

/* Stages x (x * norm when norm != NULL) of `cols` floats (cols % 32 == 0) into w and returns
 * 1/rms(x) with eps when norm != NULL, else 1. Contains __syncthreads() (call from all threads);
 * w is ready for every thread on return. `red` is __shared__ float[32]. */
static __device__ __forceinline__ float qp_stage_x_block(float *w, const float *x, const float *norm, int64_t cols,
                                                         float eps, float *red) {
    float ss = 0.0f; /* this thread's sum of x^2, for the norm */
    if ((((uintptr_t)x | (uintptr_t)norm) & 15u) == 0) {
        ss = qp_stage_x4(w, x, norm, cols);
    } else {
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
            const float xv = x[c];
            ss += xv * xv;
            w[(c >> 5) * QP_XS_STRIDE + (c & 31)] = norm ? xv * norm[c] : xv;
        }
    }
    float inv = 1.0f;
    if (norm) inv = 1.0f / sqrtf(qp_block_sum(ss, red) / (float)cols + eps);
    __syncthreads();
    return inv;
}

/* Stages g <= QP_CUDA_MMVB_MAX_TOKENS consecutive token rows of x (row j at x + j * cols) at
 * w + j * xsf, as qp_stage_x_block does one, and writes each row's 1/rms (norm != NULL; else 1)
 * to inv[j]. The rows' loads are issued together and their sums of squares reduced in one block
 * reduction: staging the rows one after the other cost a global round trip and two barriers per
 * token, which made a batch of 8 three times slower than one token (docs/performance.md).
 * Requires cols % 32 == 0 and x, norm 16-byte aligned. Contains __syncthreads() (call from all
 * threads); w and inv are ready for every thread on return. `red` is __shared__ float[32 *
 * QP_CUDA_MMVB_MAX_TOKENS]. */
static __device__ __forceinline__ void qp_stage_x_group(float *w, int64_t xsf, const float *x, const float *norm,
                                                        int64_t cols, int g, float eps, float *red, float *inv) {
    constexpr int G = QP_CUDA_MMVB_MAX_TOKENS;
    if ((((uintptr_t)x | (uintptr_t)norm) & 15u) != 0) { /* unaligned rows: one at a time */
        for (int j = 0; j < g; j++) {
            const float v = qp_stage_x_block(w + j * xsf, x + j * cols, norm, cols, eps, red);
            if (threadIdx.x == 0) inv[j] = v;
        }
        __syncthreads();
        return;
    }
    float ss[G];
#pragma unroll
    for (int j = 0; j < G; j++) ss[j] = 0.0f;
    const float4 *x4 = (const float4 *)x, *n4 = (const float4 *)norm;
    const int64_t n = cols / 4, total = n * g, step = blockDim.x;
    for (int64_t i0 = threadIdx.x; i0 < total; i0 += QP_STAGE_BATCH * step) {
        float4 a[QP_STAGE_BATCH], m[QP_STAGE_BATCH];
#pragma unroll
        for (int k = 0; k < QP_STAGE_BATCH; k++) {
            const int64_t i = i0 + k * step;
            if (i < total) {
                a[k] = x4[i];
                m[k] = norm ? __ldg(n4 + i % n) : make_float4(1.0f, 1.0f, 1.0f, 1.0f);
            }
        }
#pragma unroll
        for (int k = 0; k < QP_STAGE_BATCH; k++) {
            const int64_t i = i0 + k * step;
            if (i < total) {
                const int64_t j = i / n, c = i - j * n;
                const float4 v = a[k];
                const float q = v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
#pragma unroll
                for (int r = 0; r < G; r++)
                    if (r == j) ss[r] += q; /* register array: no dynamic index */
                *(float4 *)(w + j * xsf + (c >> 3) * QP_XS_STRIDE + 4 * (c & 7)) =
                    norm ? make_float4(v.x * m[k].x, v.y * m[k].y, v.z * m[k].z, v.w * m[k].w) : v;
            }
        }
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
    for (int j = 0; j < G; j++) {
        const float v = qp_warp_sum(ss[j]);
        if (lane == 0) red[j * 32 + warp] = v;
    }
    __syncthreads();
    for (int j = warp; j < g; j += nw) { /* warp j sums row j's warp totals */
        const float v = qp_warp_sum(lane < nw ? red[j * 32 + lane] : 0.0f);
        if (lane == 0) inv[j] = norm ? 1.0f / sqrtf(v / (float)cols + eps) : 1.0f;
    }
    __syncthreads();
}

/* Shared-memory bytes of a staged x of `cols` floats (cols % 32 == 0). */
static inline size_t qp_xs_bytes(int64_t cols) { return qp_cuda_xs_bytes(cols); }
