/* matvec.cu — LINEAR for a few tokens (decode; n_tok <= QP_CUDA_MATVEC_MAX_TOK): reads the
 * quantized weight blocks directly, no dequantized copy.
 *
 * Mapping: one warp per epilogue unit (linear_common.cuh), a block of launch.block threads
 * (default 256 = 8 units), grid.y = token. Each lane takes 32-element sub-chunks of the row in
 * turn (qp_row_dot_lane), fp32 accumulation, then a warp reduction. The RMS-norm prologue is
 * folded in: each block computes 1/rms of its token's input, and the product uses x * norm,
 * scaled by 1/rms after the reduction. Parts of different types (e.g. q/k Q5_0, v Q8_0) run as
 * separate launches over their unit ranges, so each launch is specialised on one block type.
 */
#include "linear_common.cuh"
#include "qp_cuda.h"
#include "quant_blocks.cuh"

static __device__ __forceinline__ const uint8_t *qp_lin_row(const qp_lin_params &p, int64_t r) {
    int i = 0;
    while (i + 1 < p.n_parts && r >= p.row0[i + 1]) i++;
    return p.w[i] + (size_t)(r - p.row0[i]) * p.row_bytes[i];
}

template <int T, int EPI>
static __global__ void __launch_bounds__(256)
    matvec_kernel(const qp_lin_params p, const int64_t u0, const int64_t u1, const int vec) {
    __shared__ float red[32];
    const int t = blockIdx.y;
    const float *x = p.x + (int64_t)t * p.cols;
    const float inv = p.norm ? qp_block_inv_rms(x, p.cols, p.eps, red) : 1.0f;
    const int lane = threadIdx.x & 31;
    const int64_t u = u0 + (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (u >= u1) return;
    int64_t ra, rb;
    qp_unit_rows<EPI>(p, u, &ra, &rb);
    const float a = qp_warp_sum(qp_row_dot_lane<T>(qp_lin_row(p, ra), p.cols, x, p.norm, vec, lane));
    float b = 0.0f;
    if (rb >= 0) b = qp_warp_sum(qp_row_dot_lane<T>(qp_lin_row(p, rb), p.cols, x, p.norm, vec, lane));
    if (lane == 0) qp_unit_store<EPI>(p, t, u, ra, rb, a * inv, b * inv);
}

/* Unit range of part i (for epilogues whose units do not straddle parts). */
static void part_units(const struct qp_op_args *a, const qp_lin_params &p, int i, int64_t *u0,
                       int64_t *u1) {
    if (a->epilogue == QP_EPILOGUE_ROPE_KV) {
        const int64_t nq = (int64_t)a->n_head * a->head_dim / 2;
        const int64_t nk = (int64_t)a->n_head_kv * a->head_dim / 2;
        const int64_t b[4] = {0, nq, nq + nk, p.units};
        *u0 = b[i];
        *u1 = b[i + 1];
    } else {
        *u0 = p.row0[i];
        *u1 = p.row0[i + 1];
    }
}

enum qp_status qp_cuda_matvec(const struct qp_op_args *a, struct qp_error *err) {
    const qp_lin_params p = qp_lin_params_make(a);
    cudaStream_t st = QP_STREAM(a);
    const int threads = a->launch.block > 0 ? a->launch.block : 256;
    const int warps = threads / 32;
    bool vec = a->in_w % 32 == 0;
    for (int i = 0; i < a->n_parts; i++)
        vec = vec && a->w[i].row_bytes % 16 == 0 && (uintptr_t)a->w[i].data % 16 == 0;

    /* Segments: runs of parts of one type (SWIGLU: one segment, its parts share a type). */
    const int nseg_parts = a->epilogue == QP_EPILOGUE_SWIGLU ? 1 : a->n_parts;
    for (int i = 0; i < nseg_parts;) {
        int j = i + 1;
        while (j < nseg_parts && a->w[j].type == a->w[i].type) j++;
        int64_t u0, u1, tmp;
        if (a->epilogue == QP_EPILOGUE_SWIGLU) {
            u0 = 0;
            u1 = p.units;
        } else {
            part_units(a, p, i, &u0, &tmp);
            part_units(a, p, j - 1, &tmp, &u1);
        }
        if (u1 > u0) {
            const dim3 grid((unsigned)((u1 - u0 + warps - 1) / warps), (unsigned)a->n_tok);
            enum qp_status s = QP_OK;
            bool ok = qp_type_dispatch(a->w[i].type, [&](auto tc_) {
                constexpr int T = decltype(tc_)::value;
                qp_epi_dispatch(a->epilogue, [&](auto te_) {
                    constexpr int EPI = decltype(te_)::value;
                    matvec_kernel<T, EPI><<<grid, threads, 0, st>>>(p, u0, u1, vec ? 1 : 0);
                    cudaError_t e = cudaPeekAtLastError();
                    if (e != cudaSuccess)
                        s = qp_error_set(err, QP_ERR_DEVICE, "%s:%d: matvec_kernel<%s, %s><<<%u, %d>>>: %s",
                                         __FILE__, __LINE__, qp_ggml_type_name(T),
                                         qp_epilogue_name((enum qp_epilogue)EPI), grid.x, threads,
                                         cudaGetErrorString(e));
                });
            });
            if (!ok)
                return qp_error_set(err, QP_ERR_UNSUPPORTED, "cuda matvec: weight type %s has no kernel",
                                    qp_ggml_type_name(a->w[i].type));
            if (s != QP_OK) return s;
        }
        i = j;
    }
    if (a->epilogue == QP_EPILOGUE_ARGMAX) {
        struct qp_cuda_scratch_layout l;
        enum qp_status s = qp_cuda_scratch_plan(a, &l, err);
        if (s != QP_OK) return s;
        return qp_cuda_argmax_row(a->out + (int64_t)(a->n_tok - 1) * a->out_w, a->out_w, a->step,
                                  (char *)a->scratch + l.argmax_off, st, err);
    }
    return QP_OK;
}
