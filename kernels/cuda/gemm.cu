/* gemm.cu — the kernel gemm: LINEAR for many tokens (prefill) through cuBLAS, chunks of
 * launch.rows_per_block weight rows dequantized to f16 at a time.
 *
 * Steps, all on a->stream, all buffers in the node's scratch (include/qp_cuda.h):
 *   1. xh [n][in_w] f16 = prologue(x) (RMS norm applied here, once per token and node).
 *   2. In chunks of chunk_rows stacked rows (a chunk spans parts: q, k and v are one chunk):
 *      dequantize the rows into wh [chunk][in_w] f16 (one launch per run of parts of one type
 *      that lie back to back in memory), then one cublasGemmEx (f16 inputs, fp32 accumulation
 *      and output) at the chunk's stacked row.
 *   3. SWIGLU and ROPE_KV: the products go to y [n][rows_total] f32 and the epilogue kernel
 *      turns y into out (bias, SwiGLU, RoPE + KV write), shared with the matvec through
 *      linear_common.cuh. NONE, ARGMAX and RESIDUAL ("direct"): cuBLAS writes out itself
 *      (ld = out_w; RESIDUAL with beta = 1 over out holding in1, copied there first unless
 *      in1 is out), then biases, if any, are added by gemm_bias_kernel. ARGMAX then runs the
 *      two-stage argmax on the last row.
 *
 * Layout in cuBLAS's column-major terms (the classic trap): a row-major [R][C] buffer is the
 * column-major C x R matrix, i.e. its transpose. We want Y = X W^T with X [n][in_w] and
 * W [rows][in_w] row-major (GGUF rows). Column-major, Y^T (rows x n, ld = rows_total) =
 * W (rows x in_w) * X^T (in_w x n). wh as stored is W^T column-major (in_w x chunk, ld = in_w),
 * so A = wh with transa = CUBLAS_OP_T, lda = in_w; xh as stored is X^T column-major
 * (in_w x n, ld = in_w), so B = xh with transb = CUBLAS_OP_N, ldb = in_w; C = y + row offset,
 * ldc = rows_total, m = chunk rows, n = n_tok, k = in_w. Only the weight is transposed: it is
 * the operand whose row-major rows are the dot-product vectors.
 *
 * a->blas is the cublasHandle_t (the backend creates it and keeps the math mode default). Its
 * workspace is this node's scratch (QP_CUDA_GEMM_WS_BYTES at l.ws_off), set after every
 * cublasSetStream (which resets it to cuBLAS's own pool, an allocation outside the arena).
 */
#include "linear_common.cuh"
#include "qp_cuda.h"
#include "quant_blocks.cuh"

static __global__ void gemm_prep_x_kernel(const float *__restrict__ x, const float *__restrict__ norm,
                                          float eps, int64_t cols, __half *__restrict__ xh) {
    qp_pdl_wait(); /* PDL: before touching anything an earlier kernel wrote */
    qp_pdl_trigger();
    __shared__ float red[32];
    const int t = blockIdx.x;
    const float *xr = x + (int64_t)t * cols;
    const float inv = norm ? qp_block_inv_rms(xr, cols, eps, red) : 1.0f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        const float v = norm ? xr[c] * norm[c] * inv : xr[c];
        xh[(int64_t)t * cols + c] = __float2half_rn(v);
    }
}

/* wh[r][c] = W[row0 + r][c], r < nrows: one thread per 32-element sub-chunk (quantized, or
 * float rows with cols % 32 == 0 and 16-byte rows), else one thread per element. */
template <int T>
static __global__ void dequant_rows_kernel(const uint8_t *__restrict__ w, size_t row_bytes,
                                           int64_t row0, int64_t nrows, int64_t cols, int vec,
                                           __half *__restrict__ wh) {
    qp_pdl_wait(); /* PDL: before touching anything an earlier kernel wrote */
    qp_pdl_trigger();
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (vec || !qp_is_float<T>::value) {
        using Q = qp_qt<T>;
        const int64_t nsub = cols / 32;
        if (i >= nrows * nsub) return;
        const int64_t r = i / nsub, s = i % nsub;
        float v[32];
        qp_dec32<T>(w + (size_t)(row0 + r) * row_bytes + (s / Q::SUBS) * Q::BYTES, (int)(s % Q::SUBS), v);
        __half2 h[16];
#pragma unroll
        for (int k = 0; k < 16; k++) h[k] = __floats2half2_rn(v[2 * k], v[2 * k + 1]);
        uint4 *dst = (uint4 *)(wh + r * cols + s * 32); /* cols % 32 == 0: 64-byte aligned */
#pragma unroll
        for (int k = 0; k < 4; k++) dst[k] = ((const uint4 *)h)[k];
    } else {
        if (i >= nrows * cols) return;
        const int64_t r = i / cols, c = i % cols;
        wh[i] = __float2half_rn(qp_get1<T>(w + (size_t)(row0 + r) * row_bytes, c));
    }
}

template <int EPI>
static __global__ void linear_epilogue_kernel(const qp_lin_params p, const float *__restrict__ y,
                                              int64_t rows_total) {
    qp_pdl_wait(); /* PDL: before touching anything an earlier kernel wrote */
    qp_pdl_trigger();
    const int64_t u = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int t = blockIdx.y;
    if (u >= p.units) return;
    int64_t ra, rb;
    qp_unit_rows<EPI>(p, u, &ra, &rb);
    const float *yt = y + (int64_t)t * rows_total;
    qp_unit_store<EPI>(p, t, u, ra, rb, yt[ra], rb >= 0 ? yt[rb] : 0.0f);
}

enum qp_status qp_cuda_linear_epilogue(const struct qp_op_args *a, const float *y,
                                       struct qp_error *err) {
    const qp_lin_params p = qp_lin_params_make(a);
    const dim3 grid((unsigned)((p.units + 255) / 256), (unsigned)a->n_tok);
    cudaStream_t st = QP_STREAM(a);
    enum qp_status s = QP_OK;
    qp_epi_dispatch(a->epilogue, [&](auto te_) {
                    constexpr int EPI = decltype(te_)::value;
        cudaError_t e = qp_cuda_launch_k(linear_epilogue_kernel<EPI>, grid, 256, 0, st, a->launch.pdl != 0, p, y, p.row0[a->n_parts]);
        if (e == cudaSuccess) e = cudaPeekAtLastError();
        if (e != cudaSuccess)
            s = qp_error_set(err, QP_ERR_DEVICE, "%s:%d: linear_epilogue_kernel<%s>: %s", __FILE__,
                             __LINE__, qp_epilogue_name((enum qp_epilogue)EPI), cudaGetErrorString(e));
    });
    return s;
}

/* out[t][r] += bias of stacked row r (the direct path: cuBLAS wrote the products into out). */
static __global__ void gemm_bias_kernel(const qp_lin_params p, int64_t rows_total) {
    qp_pdl_wait(); /* PDL: before touching anything an earlier kernel wrote */
    qp_pdl_trigger();
    const int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows_total) return;
    p.out[(int64_t)blockIdx.y * p.out_w + r] += qp_lin_bias(p, r);
}

/* Parts whose rows are back to back in memory with one type (a stacked weight such as
 * ffn_gate_up) dequantize as one segment: one launch per segment and chunk. */
struct gemm_seg {
    const uint8_t *data;
    size_t row_bytes;
    int32_t type; /* GGML type */
    int64_t row0, rows; /* stacked */
};

static int gemm_segments(const struct qp_op_args *a, struct gemm_seg *sg) {
    int n = 0;
    int64_t row0 = 0;
    for (int pi = 0; pi < a->n_parts; pi++) {
        const struct qp_weight *w = &a->w[pi];
        if (n > 0 && sg[n - 1].type == w->type && sg[n - 1].row_bytes == w->row_bytes &&
            sg[n - 1].data + (size_t)sg[n - 1].rows * sg[n - 1].row_bytes == (const uint8_t *)w->data) {
            sg[n - 1].rows += w->rows;
        } else {
            sg[n] = (struct gemm_seg){(const uint8_t *)w->data, w->row_bytes, w->type, row0, w->rows};
            n++;
        }
        row0 += w->rows;
    }
    return n;
}

enum qp_status qp_cuda_gemm(const struct qp_op_args *a, struct qp_error *err) {
    struct qp_cuda_scratch_layout l;
    enum qp_status s = qp_cuda_scratch_plan(a, &l, err);
    if (s != QP_OK) return s;
    cudaStream_t st = QP_STREAM(a);
    cublasHandle_t h = (cublasHandle_t)a->blas;
    char *sc = (char *)a->scratch;
    __half *xh = (__half *)(sc + l.xh_off), *wh = (__half *)(sc + l.wh_off);
    const int64_t rows_total = qp_cuda_rows_total(a), cols = a->in_w;
    const size_t out_bytes = (size_t)a->n_tok * (size_t)a->out_w * sizeof(float);
    /* the products' destination: y (staged for the epilogue kernel) or out itself */
    float *y = l.gemm_direct ? a->out : (float *)(sc + l.y_off);
    const int64_t ldy = l.gemm_direct ? a->out_w : rows_total;
    QP_CUDA_LAUNCH(err, gemm_prep_x_kernel, a->n_tok, 256, 0, a, a->in0,
                   a->prologue == QP_PROLOGUE_RMS_NORM ? a->norm : (const float *)NULL, a->eps, cols, xh);
    float beta = 0.0f;
    if (l.gemm_direct && a->epilogue == QP_EPILOGUE_RESIDUAL) {
        beta = 1.0f; /* out = in1 + W x: cuBLAS accumulates onto out, holding in1 (copied
                      * after the prologue has read in0, which may be out) */
        if (a->in1 != a->out) {
            const char *o = (const char *)a->out, *i1 = (const char *)a->in1;
            if (o < i1 + out_bytes && i1 < o + out_bytes)
                return qp_error_set(err, QP_ERR_INVALID,
                                    "cuda gemm: residual input and output overlap without being the same buffer");
            QP_CUDA_CHECK(err, cudaMemcpyAsync(a->out, a->in1, out_bytes, cudaMemcpyDeviceToDevice, st));
        }
    }

    /* cublasSetStream resets the workspace to cuBLAS's own pool (which it would allocate):
     * set ours, in this node's scratch, after it, every call. */
    qp_cuda_note_launch(QP_KERNEL_GEMM);
    QP_CUBLAS_CHECK(err, cublasSetStream(h, st));
    QP_CUBLAS_CHECK(err, cublasSetWorkspace(h, sc + l.ws_off, QP_CUDA_GEMM_WS_BYTES));
    const float one = 1.0f;
    struct gemm_seg sg[QP_OP_MAX_PARTS];
    const int n_seg = gemm_segments(a, sg);
    for (int64_t r0 = 0; r0 < rows_total; r0 += l.chunk_rows) {
        const int64_t nr = rows_total - r0 < l.chunk_rows ? rows_total - r0 : l.chunk_rows;
        for (int si = 0; si < n_seg; si++) { /* the part of each segment inside [r0, r0 + nr) */
            const struct gemm_seg *g = &sg[si];
            const int64_t lo = g->row0 > r0 ? g->row0 : r0;
            const int64_t hi = g->row0 + g->rows < r0 + nr ? g->row0 + g->rows : r0 + nr;
            if (lo >= hi) continue;
            const int vec = cols % 32 == 0 && g->row_bytes % 16 == 0 && (uintptr_t)g->data % 16 == 0;
            bool ok = qp_type_dispatch(g->type, [&](auto tc_) {
                constexpr int T = decltype(tc_)::value;
                const int64_t items = (vec || !qp_is_float<T>::value) ? (hi - lo) * (cols / 32) : (hi - lo) * cols;
                const unsigned blocks = (unsigned)((items + 255) / 256);
                cudaError_t e = qp_cuda_launch_k(dequant_rows_kernel<T>, blocks, 256, 0, st, a->launch.pdl != 0, g->data, g->row_bytes,
                                                 lo - g->row0, hi - lo, cols, vec, wh + (lo - r0) * cols);
                if (e == cudaSuccess) e = cudaPeekAtLastError();
                if (e != cudaSuccess)
                    s = qp_error_set(err, QP_ERR_DEVICE, "%s:%d: dequant_rows_kernel<%s>: %s", __FILE__,
                                     __LINE__, qp_ggml_type_name(T), cudaGetErrorString(e));
            });
            if (!ok)
                return qp_error_set(err, QP_ERR_UNSUPPORTED, "cuda gemm: weight type %s has no kernel",
                                    qp_ggml_type_name(g->type));
            if (s != QP_OK) return s;
        }
        QP_CUBLAS_CHECK(err, cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)nr, a->n_tok, (int)cols, &one, wh,
                                          CUDA_R_16F, (int)cols, xh, CUDA_R_16F, (int)cols, &beta, y + r0,
                                          CUDA_R_32F, (int)ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
    if (l.gemm_direct) {
        bool bias = false;
        for (int pi = 0; pi < a->n_parts; pi++) bias = bias || a->bias[pi];
        if (bias) {
            const dim3 grid((unsigned)((rows_total + 255) / 256), (unsigned)a->n_tok);
            QP_CUDA_LAUNCH(err, gemm_bias_kernel, grid, 256, 0, a, qp_lin_params_make(a), rows_total);
        }
    } else {
        s = qp_cuda_linear_epilogue(a, y, err);
        if (s != QP_OK) return s;
    }
    if (a->epilogue == QP_EPILOGUE_ARGMAX)
        return qp_cuda_argmax_rows(a, a->out, a->out_w, a->n_tok, sc + l.argmax_off, err);
    return QP_OK;
}
