/* cuda_scratch.c — the scratch layout of each CUDA op node (see include/qp_cuda.h). Plain C so
 * that the compiler (which never links CUDA) and the CUDA launchers agree on the same numbers.
 * Owns only arithmetic: every product is overflow-checked because shapes come from files.
 */
#include "qp_cuda.h"

#include "qp_ggml.h"
#include "qp_kernels.h"

static bool align_add(size_t *off, size_t bytes, size_t *start) {
    size_t o = (*off + 255u) & ~(size_t)255u;
    if (o < *off) return false;
    *start = o;
    return qp_add_size(o, bytes, off);
}

int64_t qp_cuda_rows_total(const struct qp_op_args *a) {
    int64_t r = 0;
    for (int i = 0; i < a->n_parts && i < QP_OP_MAX_PARTS; i++) {
        if (a->w[i].rows < 0) return 0;
        r += a->w[i].rows;
    }
    return r;
}

enum qp_status qp_cuda_scratch_plan(const struct qp_op_args *a, struct qp_cuda_scratch_layout *l,
                                    struct qp_error *err) {
    struct qp_cuda_scratch_layout z = {0};
    *l = z;
    size_t off = 0, b = 0;
    if (a->n_tok < 1) return qp_error_set(err, QP_ERR_INVALID, "cuda scratch: n_tok %d < 1", a->n_tok);
    const size_t n = (size_t)a->n_tok;
    bool argmax = a->kernel == QP_KERNEL_ARGMAX || a->kernel == QP_KERNEL_MMV_ARGMAX ||
                  ((a->kernel == QP_KERNEL_GEMM || a->kernel == QP_KERNEL_MMV_BATCH || a->kernel == QP_KERNEL_MMVQ) &&
                   a->epilogue == QP_EPILOGUE_ARGMAX);
    if (argmax && (!qp_mul_size((size_t)QP_CUDA_ARGMAX_BLOCKS * 8u, n, &b) || !align_add(&off, b, &l->argmax_off)))
        goto overflow;
    if (a->kernel == QP_KERNEL_GEMM) {
        int64_t rows = qp_cuda_rows_total(a);
        if (rows <= 0 || a->in_w <= 0)
            return qp_error_set(err, QP_ERR_INVALID, "cuda scratch: linear with %lld rows x %lld cols",
                                (long long)rows, (long long)a->in_w);
        l->gemm = true;
        int64_t chunk = a->launch.rows_per_block;
        if (chunk <= 0) { /* balanced chunks of at most QP_CUDA_GEMM_CHUNK_BYTES, 64-row multiples */
            int64_t per = (int64_t)(QP_CUDA_GEMM_CHUNK_BYTES / (2u * (size_t)a->in_w));
            if (per < 64) per = 64;
            int64_t n_chunks = (rows + per - 1) / per;
            chunk = ((rows + n_chunks - 1) / n_chunks + 63) / 64 * 64;
        }
        if (chunk > rows) chunk = rows;
        l->chunk_rows = chunk;
        l->gemm_direct = a->epilogue == QP_EPILOGUE_NONE || a->epilogue == QP_EPILOGUE_ARGMAX ||
                         a->epilogue == QP_EPILOGUE_RESIDUAL;
        if (!l->gemm_direct &&
            (!qp_mul_size(n, (size_t)rows, &b) || !qp_mul_size(b, 4, &b) || !align_add(&off, b, &l->y_off)))
            goto overflow;
        if (!qp_mul_size(n, (size_t)a->in_w, &b) || !qp_mul_size(b, 2, &b) || !align_add(&off, b, &l->xh_off))
            goto overflow;
        if (!qp_mul_size((size_t)chunk, (size_t)a->in_w, &b) || !qp_mul_size(b, 2, &b) ||
            !align_add(&off, b, &l->wh_off))
            goto overflow;
        if (!align_add(&off, QP_CUDA_GEMM_WS_BYTES, &l->ws_off)) goto overflow;
    }
    if (a->kernel == QP_KERNEL_ATTN_SPLIT || a->kernel == QP_KERNEL_ATTN_GQA) {
        if (a->n_head <= 0 || a->head_dim <= 0 || a->launch.split < 1)
            return qp_error_set(err, QP_ERR_INVALID, "cuda scratch: attention with %d heads of %d, split %d",
                                a->n_head, a->head_dim, a->launch.split);
        l->attn_split = a->launch.split;
        if (!qp_mul_size(n, (size_t)a->n_head, &b) || !qp_mul_size(b, (size_t)l->attn_split, &b) ||
            !qp_mul_size(b, (size_t)a->head_dim + 2u, &b) || !qp_mul_size(b, 4, &b) ||
            !align_add(&off, b, &l->attn_off))
            goto overflow;
    }
    l->total = off;
    return QP_OK;
overflow:
    return qp_error_set(err, QP_ERR_RANGE, "cuda scratch: the scratch of a %s kernel overflows",
                        qp_kernel_desc(a->kernel) ? qp_kernel_desc(a->kernel)->name : "?");
}
