/* matvec_batch.cu — the kernel mmv_batch: LINEAR for a few tokens at once (batched decode: one
 * token of each of B sequences), each weight sub-chunk read from memory and decoded once for all
 * of a block's tokens.
 *
 * Where (compiler/select.c): the LM head of a batch (the argmax epilogue over B tokens: mmv_argmax
 * would read its 145 MB once per token), and linear nodes of a few tokens that mmv_stream cannot
 * run (targets before sm_90). One warp per output unit, as mmv: for the small matrices of a layer
 * it pays mmv's chain of latencies, which mmv_stream's bulk copies avoid (docs/performance.md).
 *
 * Mapping: grid.y = token groups of launch.split tokens (the last may be short), grid.x blocks of
 * launch.block threads; one warp per epilogue unit (linear_common.cuh), warps walk units with a
 * grid stride (at most launch.grid blocks when that is set: mmv_argmax's shape for the LM head).
 * Each block stages its tokens' inputs together (x * norm, matvec_stage.cuh's padded layout) in
 * shared memory, with each token's 1/rms. Each lane takes 32-element sub-chunks of the
 * row in turn: decodes one into 32 registers and dots it with each token's staged x (qp_dot32_group,
 * quant_dot.cuh), adding into that token's accumulator. One warp reduction for all the tokens
 * (qp_warp_sum_n) leaves token j's dot in lane j * 32 / 8, which writes that token's epilogue.
 * Every token's sum is in the same order whatever the group size, so a sequence's result does not
 * depend on which others share its step.
 *
 * ARGMAX epilogue (the LM head): as mmv_argmax (matvec.cu), per token: each block merges its
 * warps' (logit, row) pairs into one partial per token in scratch, the last block to finish a
 * token (a device counter per token, reset by that block) merges them and writes
 * step->rows[t].next. Ties go to the first index, NaN never wins.
 *
 * Weights of different types in one node (q/k Q5_0 with v Q8_0) take a switch per row, outside
 * the sub-chunk loop. Requires columns in whole 32-element sub-chunks and float rows 16-byte
 * aligned (qp_kernel_check), and split staged inputs within shared memory.
 */
#include "linear_common.cuh"
#include "matvec_stage.cuh"
#include "qp_cuda.h"
#include "quant_blocks.cuh"
#include "quant_dot.cuh"

#define QP_MMVB_MIXED (-1)
#define QP_MMVB_NT QP_CUDA_MMVB_MAX_TOKENS /* accumulators per lane: the most tokens of a block */
#define QP_MMVB_LPT (32 / QP_MMVB_NT)      /* lanes per token after the reduction */

static __device__ unsigned int qp_mmvb_argmax_done[QP_CUDA_ARGMAX_MAX_ROWS]; /* blocks done, per row */

/* This lane's share of row . x_j for the nt tokens j of the block: acc[j] += over sub-chunks
 * s = lane, lane + 32, ...; xs holds token j's staged input at xs + j * xsf. */
template <int T>
static __device__ __forceinline__ void qp_mmvb_dots(const uint8_t *__restrict__ row, int64_t cols,
                                                    const float *__restrict__ xs, int64_t xsf, int nt, int lane,
                                                    float (&acc)[QP_MMVB_NT]) {
    using Q = qp_qt<T>;
    const int64_t nsub = cols / 32;
    for (int64_t s = lane; s < nsub; s += 32) {
        float d[QP_MMVB_NT];
        qp_dot32_group<T, qp_ldg>(row + (s / Q::SUBS) * Q::BYTES, (int)(s % Q::SUBS), xs + s * QP_XS_STRIDE, xsf, nt,
                                  d);
#pragma unroll
        for (int j = 0; j < QP_MMVB_NT; j++)
            if (j < nt) acc[j] += d[j];
    }
}

/* Row r's dots (see qp_mmvb_dots), the decoder picked by the row's part type when T is MIXED;
 * returns token lane / QP_MMVB_LPT's whole dot (qp_warp_sum_n: one reduction for all tokens). */
template <int T>
static __device__ __forceinline__ float qp_mmvb_row_dots(const qp_lin_params &p, int64_t r, const float *xs,
                                                         int64_t xsf, int nt, int lane) {
    float acc[QP_MMVB_NT];
#pragma unroll
    for (int j = 0; j < QP_MMVB_NT; j++) acc[j] = 0.0f;
    int part;
    const uint8_t *row = qp_lin_row(p, r, &part);
    if constexpr (T == QP_MMVB_MIXED) {
#define QP_MMVB_CASE(T_) \
    case T_: qp_mmvb_dots<T_>(row, p.cols, xs, xsf, nt, lane, acc); break;
        switch (p.type[part]) {
            QP_CUDA_TYPES(QP_MMVB_CASE)
        default: break; /* ops.cu admits no other type */
        }
#undef QP_MMVB_CASE
    } else {
        qp_mmvb_dots<T>(row, p.cols, xs, xsf, nt, lane, acc);
    }
    return qp_warp_sum_n<QP_MMVB_NT>(acc, lane);
}

/* Dynamic shared memory: the block's tokens' staged inputs, xsf floats each. */
template <int T, int EPI, bool AM>
static __global__ void __launch_bounds__(QP_CUDA_MMV_MAX_THREADS)
    matvec_batch_kernel(const qp_lin_params p, const int n_tok, const int per_block, qp_amax *__restrict__ part) {
    __shared__ float red[32 * QP_MMVB_NT];
    __shared__ float inv_s[QP_MMVB_NT];
    __shared__ bool last;
    const int t0 = blockIdx.y * per_block;
    const int nt = n_tok - t0 < per_block ? n_tok - t0 : per_block;
    const int lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    const int64_t stride = (int64_t)gridDim.x * nw;
    const int64_t ufirst = (int64_t)blockIdx.x * nw + (threadIdx.x >> 5);
    if (blockIdx.y == 0 && ufirst < p.units) qp_prefetch_unit<EPI>(p, ufirst, lane); /* weights only */
    qp_pdl_wait();
    qp_pdl_trigger();
    QP_DYNAMIC_SMEM(float4, qp_xb4);
    float *xs = (float *)qp_xb4;
    const int64_t xsf = (p.cols / 32) * QP_XS_STRIDE; /* floats of one staged input (qp_xs_bytes) */
    qp_stage_x_group(xs, xsf, p.x + (int64_t)t0 * p.cols, p.norm, p.cols, nt, p.eps, red, inv_s);
    /* after each row's reduction, lane tk * QP_MMVB_LPT holds token tk's dot: those lanes write the
     * epilogues, one token each, and keep their token's best (logit, row) */
    const int tk = lane / QP_MMVB_LPT;
    const bool writer = lane % QP_MMVB_LPT == 0 && tk < nt;
    const float inv = writer ? inv_s[tk] : 0.0f;
    float bv = -INFINITY;
    int32_t bi = INT32_MAX;
    for (int64_t u = ufirst; u < p.units; u += stride) {
        int64_t ra, rb;
        qp_unit_rows<EPI>(p, u, &ra, &rb);
        /* the LM head's warps walk many rows (grid capped): the row two steps ahead goes to L2 now */
        if constexpr (AM)
            if (blockIdx.y == 0 && u + 2 * stride < p.units) {
                int pi;
                const uint8_t *r2 = qp_lin_row(p, u + 2 * stride, &pi);
                qp_prefetch_row(r2, p.row_bytes[pi], lane);
            }
        const float a = qp_mmvb_row_dots<T>(p, ra, xs, xsf, nt, lane);
        const float b = rb >= 0 ? qp_mmvb_row_dots<T>(p, rb, xs, xsf, nt, lane) : 0.0f;
        if (writer) {
            const float val = qp_unit_store<EPI>(p, t0 + tk, u, ra, rb, a * inv, b * inv);
            if constexpr (AM) qp_amax_merge(&bv, &bi, val, (int32_t)u);
        }
    }
    if constexpr (AM) { /* per token: its partials at part[t * gridDim.x], its own counter */
        for (int j = 0; j < nt; j++) {
            const bool mine = writer && tk == j;
            qp_amax_finish(mine ? bv : -INFINITY, mine ? bi : INT32_MAX, part + (int64_t)(t0 + j) * gridDim.x,
                           &qp_mmvb_argmax_done[t0 + j], p.step, t0 + j, &last);
        }
    }
}

template <int T, int EPI, bool AM>
static enum qp_status launch_mmvb(const qp_lin_params &p, dim3 grid, int threads, int n_tok, int per_block,
                                  qp_amax *part, cudaStream_t st, bool pdl, struct qp_error *err) {
    const size_t smem = (size_t)per_block * qp_xs_bytes(p.cols);
    cudaError_t e = cudaSuccess;
    static size_t smem_set = 0; /* per instance, once: the default limit counts the static 1 KB too */
    if (smem > smem_set) {
        e = cudaFuncSetAttribute(matvec_batch_kernel<T, EPI, AM>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)smem);
        if (e == cudaSuccess) smem_set = smem;
    }
    if (e == cudaSuccess)
        e = qp_cuda_launch_k(matvec_batch_kernel<T, EPI, AM>, grid, threads, smem, st, pdl, p, n_tok, per_block, part);
    if (e == cudaSuccess) e = cudaPeekAtLastError();
    if (e != cudaSuccess)
        return qp_error_set(err, QP_ERR_DEVICE, "%s:%d: matvec_batch_kernel<%s, %s%s><<<%u x %u, %d>>>: %s", __FILE__,
                            __LINE__, T == QP_MMVB_MIXED ? "mixed" : qp_ggml_type_name(T),
                            qp_epilogue_name((enum qp_epilogue)EPI), AM ? " + argmax" : "", grid.x, grid.y,
                            threads, cudaGetErrorString(e));
    return QP_OK;
}

enum qp_status qp_cuda_matvec_batch(const struct qp_op_args *a, struct qp_error *err) {
    const qp_lin_params p = qp_lin_params_make(a);
    cudaStream_t st = QP_STREAM(a);
    const bool pdl = a->launch.pdl != 0;
    const int threads = a->launch.block, per_block = a->launch.split;
    bool mixed = false;
    for (int i = 0; i < a->n_parts; i++) mixed = mixed || a->w[i].type != a->w[0].type;
    const bool am = a->epilogue == QP_EPILOGUE_ARGMAX;
    /* qp_kernel_check holds these already; a kernel never trusts its caller with memory */
    if (threads < 32 || threads > QP_CUDA_MMV_MAX_THREADS || threads % 32 || per_block < 1 ||
        per_block > QP_MMVB_NT || a->in_w % 32 || (am && a->launch.grid < 1))
        return qp_error_set(err, QP_ERR_INVALID, "cuda mmv_batch: launch.block %d, split %d, grid %d, %lld columns",
                            threads, per_block, a->launch.grid, (long long)a->in_w);
    qp_amax *part = NULL;
    if (am) {
        struct qp_cuda_scratch_layout l;
        enum qp_status s = qp_cuda_scratch_plan(a, &l, err);
        if (s != QP_OK) return s;
        part = (qp_amax *)((char *)a->scratch + l.argmax_off);
    }
    const int warps = threads / 32;
    int64_t blocks = (p.units + warps - 1) / warps;
    if (a->launch.grid > 0 && blocks > a->launch.grid) blocks = a->launch.grid;
    if (blocks < 1) return QP_OK;
    const dim3 grid((unsigned)blocks, (unsigned)((a->n_tok + per_block - 1) / per_block));
    qp_cuda_note_launch(QP_KERNEL_MMV_BATCH);
    enum qp_status s = QP_OK;
    auto run_type = [&](auto tc_) {
        constexpr int T = decltype(tc_)::value;
        qp_epi_dispatch(a->epilogue, [&](auto te_) {
            constexpr int EPI = decltype(te_)::value;
            if constexpr (EPI == QP_EPILOGUE_NONE) /* ARGMAX dispatches as NONE */
                if (am) {
                    s = launch_mmvb<T, EPI, true>(p, grid, threads, a->n_tok, per_block, part, st, pdl, err);
                    return;
                }
            s = launch_mmvb<T, EPI, false>(p, grid, threads, a->n_tok, per_block, part, st, pdl, err);
        });
    };
    if (mixed) {
        run_type(std::integral_constant<int, QP_MMVB_MIXED>{});
        return s;
    }
    if (!qp_type_dispatch(a->w[0].type, run_type))
        return qp_error_set(err, QP_ERR_UNSUPPORTED, "cuda mmv_batch: weight type %s has no kernel",
                            qp_ggml_type_name(a->w[0].type));
    return s;
}
