/* matvec_q8.cu — the kernel mmvq: LINEAR of a few tokens on 8-bit activations. Each block
 * quantizes its token's input (times the RMS-norm weight) per 32 values into shared memory
 * (quant_dot_q8.cuh: int8 values, a scale per 32, a sum per 16), then every weight block is
 * dotted with DP4A integer products, its scales applied once per group in f32.
 *
 * Why: the f32 dots of mmv spend ~3-4 instructions a weight, and the decode linears are bound by
 * instruction issue, not by DRAM (docs/performance.md, issue 23); DP4A takes 4 weights per
 * instruction. The price is x's quantization (~0.5% relative error per output; the kernel's
 * tolerance and the whole model's perplexity and KL divergence are measured, docs/fidelity.md).
 *
 * Mapping: one warp per epilogue unit (linear_common.cuh: a row, a gate/up pair, a RoPE pair),
 * the unit's rows cut into items (32 weights; 64 for Q6_K) that the lanes take in turn across
 * both rows, so a 1,536-wide gate/up pair of Q4_K is 96 items, 3 per lane, with no idle lanes;
 * then a warp sum per row and the epilogue by lane 0. launch.block threads a block (at most 256),
 * grid.y = token; at most launch.grid blocks when that is set, the warps then walking units with
 * a grid stride (fewer blocks quantize x fewer times). Weight rows of the first unit are
 * prefetched into L2 before the PDL wait, as in mmv.
 *
 * Parts of different types (q/k and v) run the same launch: the type is looked up per unit
 * (both rows of a unit lie in one part) and the unit runs that type's loop.
 *
 * ARGMAX epilogue (the LM head), as mmv_argmax does it (matvec.cu): launch.grid blocks per token,
 * each merging its warps' (logit, row) pairs into a partial in scratch; the last block to finish a
 * token (a device counter per token, reset by that block) merges the partials into
 * step->rows[t].next. Ties go to the first index, NaN never wins.
 */
#include "linear_common.cuh"
#include "matvec_stage.cuh"
#include "qp_cuda.h"
#include "quant_dot_q8.cuh"

#define QP_MMVQ_MIXED (-1)

static __device__ unsigned int qp_mmvq_argmax_done[QP_CUDA_ARGMAX_MAX_ROWS]; /* blocks done, per row */

/* A NaN-propagating max of magnitudes: a NaN anywhere in a group makes its scale NaN, so that it
 * reaches every output that reads the group (as in the f32 path). */
static __device__ __forceinline__ float qp_amax2(float a, float b) { return (a > b || a != a) ? a : b; }

/* Quantizes x (times norm when norm != NULL) of `cols` values (cols % 32 == 0) into xq (layout of
 * qp_xq8: q at smem, d after cols bytes, s16 after that) and returns 1/rms(x) with eps when norm
 * != NULL, else 1. Thread c takes 4 values at a time; the 8 consecutive lanes holding one 32-value
 * group reduce its maximum, and 4 lanes each 16-value sum, by shuffles. Contains __syncthreads()
 * (call from all threads); xq is ready for every thread on return. `red` is __shared__ float[32]. */
static __device__ __forceinline__ float qp_quantize_x(int8_t *q, float *d, int *s16, const float *x,
                                                      const float *norm, int64_t cols, float eps, float *red) {
    const int64_t n4 = cols / 4;
    const int lane = threadIdx.x & 31;
    const bool aligned = ((((uintptr_t)x) | (uintptr_t)norm) & 15u) == 0;
    float ss = 0.0f;
    /* the loop's trip count is the same for the 32 lanes of a warp: n4 is a multiple of 8 and the
     * lanes of a warp hold consecutive c, so whole 8-lane groups are in or out together */
    for (int64_t base = threadIdx.x - lane; base < n4; base += blockDim.x) {
        const int64_t c = base + lane;
        const bool in = c < n4;
        float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (in) {
            float4 g = make_float4(1.0f, 1.0f, 1.0f, 1.0f);
            if (aligned) {
                v = ((const float4 *)x)[c];
                if (norm) g = __ldg((const float4 *)norm + c);
            } else {
                v = make_float4(x[4 * c], x[4 * c + 1], x[4 * c + 2], x[4 * c + 3]);
                if (norm) g = make_float4(norm[4 * c], norm[4 * c + 1], norm[4 * c + 2], norm[4 * c + 3]);
            }
            ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
            v = make_float4(v.x * g.x, v.y * g.y, v.z * g.z, v.w * g.w);
        }
        float a = qp_amax2(qp_amax2(fabsf(v.x), fabsf(v.y)), qp_amax2(fabsf(v.z), fabsf(v.w)));
#pragma unroll
        for (int o = 1; o < 8; o <<= 1) a = qp_amax2(a, __shfl_xor_sync(0xffffffffu, a, o));
        /* a zero group quantizes to zeros; an infinite one too, with scale inf (inf * 0 = NaN reaches
         * the outputs, as inf does in f32) */
        const float id = a > 0.0f && a <= 3.402823466e38f ? 127.0f / a : 0.0f;
        int qv[4] = {__float2int_rn(v.x * id), __float2int_rn(v.y * id), __float2int_rn(v.z * id),
                     __float2int_rn(v.w * id)};
        int s = 0;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            qv[k] = qv[k] > 127 ? 127 : qv[k] < -127 ? -127 : qv[k];
            s += qv[k];
        }
        s += __shfl_xor_sync(0xffffffffu, s, 1);
        s += __shfl_xor_sync(0xffffffffu, s, 2);
        if (in) {
            ((uint32_t *)q)[c] = (uint32_t)(qv[0] & 0xFF) | ((uint32_t)(qv[1] & 0xFF) << 8) |
                                 ((uint32_t)(qv[2] & 0xFF) << 16) | ((uint32_t)(qv[3] & 0xFF) << 24);
            if ((lane & 3) == 0) s16[c >> 2] = s;
            if ((lane & 7) == 0) d[c >> 3] = a / 127.0f;
        }
    }
    float inv = 1.0f;
    if (norm) inv = 1.0f / sqrtf(qp_block_sum(ss, red) / (float)cols + eps);
    __syncthreads();
    return inv;
}

/* One unit's products: rows ra (and rb >= 0) of type T, items over both rows, a warp sum each. */
template <int T>
static __device__ __forceinline__ void qp_mmvq_unit(const uint8_t *rowa, const uint8_t *rowb, int64_t cols,
                                                    const qp_xq8 &x, int lane, float *a, float *b) {
    using D = qp_q8dot<T>;
    const int64_t per = cols / D::W, total = rowb ? 2 * per : per;
    float acc[2] = {0.0f, 0.0f};
    /* an item's place in its block is the lane's (the stride 32 and a row's items are multiples of
     * a block's), so the decoder computes its scale positions once */
    const int k = lane & D::KMASK;
#pragma unroll 2
    for (int64_t it = lane; it < total; it += 32) {
        const bool second = it >= per;
        const float v = D::run(second ? rowb : rowa, second ? it - per : it, k, x);
        if (second) acc[1] += v;
        else acc[0] += v;
    }
    *a = qp_warp_sum(acc[0]);
    *b = qp_warp_sum(acc[1]);
}

static __device__ __noinline__ void qp_mmvq_unit_any(int type, const uint8_t *rowa, const uint8_t *rowb,
                                                     int64_t cols, const qp_xq8 &x, int lane, float *a, float *b) {
#define QP_UNIT_CASE(T_) \
    case T_: qp_mmvq_unit<T_>(rowa, rowb, cols, x, lane, a, b); return;
    switch (type) {
        QP_MMVQ_TYPES(QP_UNIT_CASE)
    default: *a = *b = __int_as_float(0x7fc00000); /* the kernel check admits no other type */
    }
#undef QP_UNIT_CASE
}

template <int T, int EPI, bool AM>
static __global__ void __launch_bounds__(256) matvec_q8_kernel(const qp_lin_params p, qp_amax *__restrict__ part) {
    __shared__ float red[32];
    __shared__ bool last;
    const int t = blockIdx.y;
    const int lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    const int64_t stride = (int64_t)gridDim.x * nw;
    const int64_t ufirst = (int64_t)blockIdx.x * nw + (threadIdx.x >> 5);
    if (t == 0 && ufirst < p.units) qp_prefetch_unit<EPI>(p, ufirst, lane); /* weights only: before the wait */
    qp_pdl_wait();
    qp_pdl_trigger();
    QP_DYNAMIC_SMEM(int4, qp_xq4);
    int8_t *q = (int8_t *)qp_xq4;
    float *d = (float *)(q + p.cols);
    int *s16 = (int *)(d + p.cols / 32);
    const float inv = qp_quantize_x(q, d, s16, p.x + (int64_t)t * p.cols, p.norm, p.cols, p.eps, red);
    const qp_xq8 x = {q, d, s16};
    float bv = -INFINITY;
    int32_t bi = INT32_MAX;
    for (int64_t u = ufirst; u < p.units; u += stride) {
        int64_t ra, rb;
        qp_unit_rows<EPI>(p, u, &ra, &rb);
        /* the LM head's warps walk ~10-20 rows each: the row two steps ahead goes to L2 now */
        if constexpr (AM)
            if (t == 0 && u + 2 * stride < p.units) {
                int pn;
                const uint8_t *r2 = qp_lin_row(p, u + 2 * stride, &pn);
                qp_prefetch_row(r2, p.row_bytes[pn], lane);
            }
        int pi;
        const uint8_t *rowa = qp_lin_row(p, ra, &pi), *rowb = rb >= 0 ? qp_lin_row(p, rb, &pi) : NULL;
        float a, b;
        if constexpr (T == QP_MMVQ_MIXED)
            qp_mmvq_unit_any(p.type[pi], rowa, rowb, p.cols, x, lane, &a, &b);
        else
            qp_mmvq_unit<T>(rowa, rowb, p.cols, x, lane, &a, &b);
        if (lane == 0) {
            const float val = qp_unit_store<EPI>(p, t, u, ra, rb, a * inv, b * inv);
            if constexpr (AM) qp_amax_merge(&bv, &bi, val, (int32_t)u);
        }
    }
    if constexpr (AM) /* every token's row: its partials at part[t * gridDim.x], its own counter */
        qp_amax_finish(bv, bi, part + (int64_t)t * gridDim.x, &qp_mmvq_argmax_done[t], p.step, t, &last);
}

template <int T, int EPI, bool AM>
static enum qp_status launch_mmvq(const qp_lin_params &p, dim3 grid, int threads, qp_amax *part, cudaStream_t st,
                                  bool pdl, struct qp_error *err) {
    const size_t smem = qp_cuda_xq8_bytes(p.cols); /* include/qp_cuda.h: the kernel check uses it too */
    cudaError_t e = cudaSuccess;
    static size_t smem_set = 48 * 1024; /* per instance: beyond the default dynamic limit, opt in once */
    if (smem > smem_set) {
        e = cudaFuncSetAttribute(matvec_q8_kernel<T, EPI, AM>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e == cudaSuccess) smem_set = smem;
    }
    if (e == cudaSuccess) e = qp_cuda_launch_k(matvec_q8_kernel<T, EPI, AM>, grid, threads, smem, st, pdl, p, part);
    if (e == cudaSuccess) e = cudaPeekAtLastError();
    if (e != cudaSuccess)
        return qp_error_set(err, QP_ERR_DEVICE, "%s:%d: matvec_q8_kernel<%s, %s%s><<<%u x %u, %d>>>: %s", __FILE__,
                            __LINE__, T == QP_MMVQ_MIXED ? "mixed" : qp_ggml_type_name(T),
                            qp_epilogue_name((enum qp_epilogue)EPI), AM ? " + argmax" : "", grid.x, grid.y, threads,
                            cudaGetErrorString(e));
    return QP_OK;
}

enum qp_status qp_cuda_matvec_q8(const struct qp_op_args *a, struct qp_error *err) {
    const qp_lin_params p = qp_lin_params_make(a);
    const int threads = a->launch.block, warps = threads / 32;
    bool mixed = false;
    for (int i = 0; i < a->n_parts; i++) mixed = mixed || a->w[i].type != a->w[0].type;
    const bool am = a->epilogue == QP_EPILOGUE_ARGMAX;
    if (threads < 32 || threads > 256 || threads % 32 || a->in_w % 32 || a->launch.grid < 0 ||
        (am && (a->launch.grid < 1 || a->launch.grid > QP_CUDA_ARGMAX_BLOCKS)))
        return qp_error_set(err, QP_ERR_INVALID, "cuda mmvq: launch.block %d (a multiple of 32, at most 256), "
                            "grid %d, %lld columns (a multiple of 32)", threads, a->launch.grid, (long long)a->in_w);
    qp_amax *part = NULL;
    int64_t blocks = (p.units + warps - 1) / warps;
    if (a->launch.grid > 0 && blocks > a->launch.grid) blocks = a->launch.grid;
    if (am) {
        struct qp_cuda_scratch_layout l;
        enum qp_status s = qp_cuda_scratch_plan(a, &l, err);
        if (s != QP_OK) return s;
        part = (qp_amax *)((char *)a->scratch + l.argmax_off);
        blocks = a->launch.grid; /* every block takes part in the merge, rows or not */
    }
    if (blocks < 1) return QP_OK;
    const dim3 grid((unsigned)blocks, (unsigned)a->n_tok);
    cudaStream_t st = QP_STREAM(a);
    const bool pdl = a->launch.pdl != 0;
    qp_cuda_note_launch(QP_KERNEL_MMVQ);
    enum qp_status s = QP_OK;
    const int type = mixed ? QP_MMVQ_MIXED : a->w[0].type;
    bool ok = true;
    qp_epi_dispatch(a->epilogue, [&](auto te_) {
        constexpr int EPI = decltype(te_)::value;
        auto go = [&](auto am_) {
            constexpr bool AM = decltype(am_)::value;
#define QP_LAUNCH_CASE(T_) \
    case T_: s = launch_mmvq<T_, EPI, AM>(p, grid, threads, part, st, pdl, err); break;
            switch (type) {
                QP_LAUNCH_CASE(QP_MMVQ_MIXED)
                QP_MMVQ_TYPES(QP_LAUNCH_CASE)
            default: ok = false; break;
            }
#undef QP_LAUNCH_CASE
        };
        if constexpr (EPI == QP_EPILOGUE_NONE) { /* ARGMAX dispatches as NONE */
            if (am) go(std::true_type{});
            else go(std::false_type{});
        } else {
            go(std::false_type{});
        }
    });
    if (!ok)
        return qp_error_set(err, QP_ERR_UNSUPPORTED, "cuda mmvq: weight type %s has no 8-bit dot",
                            qp_ggml_type_name(a->w[0].type));
    return s;
}
