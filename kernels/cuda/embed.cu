/* embed.cu — EMBED: out[t] = dequant(row step->rows[t].token of w[0]), read from the device step
 * state so that a captured graph embeds whatever token the previous step chose. A token id out
 * of [0, rows) cannot be reported from the device: its row is written as NaN, which every check
 * downstream (tests, qrun's logits check) rejects; the host validates prompt ids beforehand.
 */
#include "qp_cuda.h"
#include "quant_blocks.cuh"

template <int T>
static __global__ void embed_kernel(const uint8_t *__restrict__ w, size_t row_bytes, int64_t rows,
                                    int64_t cols, int vec, const struct qp_step *__restrict__ step,
                                    float *__restrict__ out) {
    qp_pdl_wait(); /* PDL: before touching anything an earlier kernel wrote */
    qp_pdl_trigger();
    const int t = blockIdx.x;
    const int32_t tok = step->rows[t].token;
    float *o = out + (int64_t)t * cols;
    if (tok < 0 || tok >= rows) {
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) o[c] = __int_as_float(0x7fc00000);
        return;
    }
    const uint8_t *row = w + (size_t)tok * row_bytes;
    if (vec || !qp_is_float<T>::value) {
        using Q = qp_qt<T>;
        for (int64_t s = threadIdx.x; s < cols / 32; s += blockDim.x) {
            float v[32];
            qp_dec32<T>(row + (s / Q::SUBS) * Q::BYTES, (int)(s % Q::SUBS), v);
            float4 *o4 = (float4 *)(o + s * 32);
#pragma unroll
            for (int i = 0; i < 8; i++) o4[i] = make_float4(v[4 * i], v[4 * i + 1], v[4 * i + 2], v[4 * i + 3]);
        }
    } else {
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) o[c] = qp_get1<T>(row, c);
    }
}

enum qp_status qp_cuda_embed(const struct qp_op_args *a, struct qp_error *err) {
    const struct qp_weight *w = &a->w[0];
    /* Quantized rows are whole blocks, so a row starts at the block alignment the decoder's
     * loads need whenever the table does (quant_blocks.cuh): only float rows need row_bytes % 16. */
    const bool qrow = !(w->type == QP_GGML_F32 || w->type == QP_GGML_F16 || w->type == QP_GGML_BF16);
    const int vec = w->cols % 32 == 0 && (qrow || w->row_bytes % 16 == 0) &&
                    (uintptr_t)w->data % 16 == 0 && (uintptr_t)a->out % 16 == 0;
    enum qp_status s = QP_OK;
    cudaStream_t st = QP_STREAM(a);
    bool ok = qp_type_dispatch(w->type, [&](auto tc_) {
                constexpr int T = decltype(tc_)::value;
        if (!vec && !qp_is_float<T>::value) {
            s = qp_error_set(err, QP_ERR_INVALID, "cuda embed: %s rows or output not 16-byte aligned",
                             qp_ggml_type_name(T));
            return;
        }
        cudaError_t e = qp_cuda_launch_k(embed_kernel<T>, a->n_tok, a->launch.block, 0, st, a->launch.pdl != 0,
                                         (const uint8_t *)w->data, w->row_bytes, w->rows, w->cols, vec, a->step,
                                         a->out);
        if (e == cudaSuccess) e = cudaPeekAtLastError();
        if (e != cudaSuccess)
            s = qp_error_set(err, QP_ERR_DEVICE, "%s:%d: embed_kernel<%s>: %s", __FILE__, __LINE__,
                             qp_ggml_type_name(T), cudaGetErrorString(e));
    });
    if (!ok)
        return qp_error_set(err, QP_ERR_UNSUPPORTED, "cuda embed: weight type %s has no kernel",
                            qp_ggml_type_name(w->type));
    return s;
}
