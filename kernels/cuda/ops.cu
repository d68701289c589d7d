/* ops.cu — the CUDA op table (qp_cuda_ops, include/qp_ops.h): for each op, check the shapes,
 * types, pointers and scratch that the kernels rely on, then call the launcher of the kernel the
 * plan names (a->kernel, include/qp_kernels.h; the executor has checked at load that it can run
 * the node), which enqueues on a->stream. No entry chooses a kernel. Nothing here synchronises,
 * allocates or reads device memory, so every entry may run inside CUDA Graph capture. Errors
 * name the op and what is wrong; the runtime adds the plan node.
 */
#include "cuda_common.cuh"
#include "qp_cuda.h"

#define FAIL(...) return qp_error_set(err, QP_ERR_INVALID, __VA_ARGS__)

static bool qp_cuda_type_ok(int32_t t) {
    switch (t) {
    case QP_GGML_F32: case QP_GGML_F16: case QP_GGML_BF16: case QP_GGML_Q4_0: case QP_GGML_Q4_1:
    case QP_GGML_Q5_0: case QP_GGML_Q5_1: case QP_GGML_Q8_0: case QP_GGML_Q2_K: case QP_GGML_Q3_K:
    case QP_GGML_Q4_K: case QP_GGML_Q5_K: case QP_GGML_Q6_K: return true;
    default: return false;
    }
}

static bool is_float_type(int32_t t) {
    return t == QP_GGML_F32 || t == QP_GGML_F16 || t == QP_GGML_BF16;
}

static enum qp_status check_common(const struct qp_op_args *a, const char *op, bool needs_step,
                                   struct qp_error *err) {
    if (a->n_tok < 1) FAIL("cuda %s: n_tok %d < 1", op, a->n_tok);
    if (needs_step && !a->step) FAIL("cuda %s: no step state", op);
    if (a->launch.block < 32 || a->launch.block > 1024 || a->launch.block % 32)
        FAIL("cuda %s: launch.block %d is not a multiple of 32 in [32, 1024]", op, a->launch.block);
    return QP_OK;
}

static enum qp_status check_weight(const struct qp_weight *w, int64_t cols, const char *op, int i,
                                   struct qp_error *err) {
    if (!qp_cuda_type_ok(w->type))
        return qp_error_set(err, QP_ERR_UNSUPPORTED, "cuda %s: weight part %d has type %s, which has no CUDA kernel",
                            op, i, qp_ggml_type_name(w->type));
    if (!w->data) FAIL("cuda %s: weight part %d has no data", op, i);
    if (w->rows < 1 || w->cols != cols)
        FAIL("cuda %s: weight part %d is %lld x %lld, expected %lld columns", op, i, (long long)w->rows,
             (long long)w->cols, (long long)cols);
    size_t rb;
    if (!qp_ggml_row_bytes(w->type, w->cols, &rb) || rb != w->row_bytes)
        FAIL("cuda %s: weight part %d: %lld columns of %s do not make rows of %zu bytes", op, i,
             (long long)w->cols, qp_ggml_type_name(w->type), w->row_bytes);
    if (!is_float_type(w->type) && (uintptr_t)w->data % 16)
        FAIL("cuda %s: weight part %d (%s) must start 16-byte aligned", op, i, qp_ggml_type_name(w->type));
    if (is_float_type(w->type) && (uintptr_t)w->data % (w->type == QP_GGML_F32 ? 4 : 2))
        FAIL("cuda %s: weight part %d (%s) is misaligned", op, i, qp_ggml_type_name(w->type));
    return QP_OK;
}

static enum qp_status check_scratch(const struct qp_op_args *a, const char *op, struct qp_error *err) {
    struct qp_cuda_scratch_layout l;
    enum qp_status s = qp_cuda_scratch_plan(a, &l, err);
    if (s != QP_OK) return s;
    if (l.total > 0 && (!a->scratch || a->scratch_bytes < l.total))
        FAIL("cuda %s: needs %zu bytes of scratch, the node has %zu", op, l.total, a->scratch_bytes);
    if (l.total > 0 && (uintptr_t)a->scratch % 256)
        FAIL("cuda %s: scratch must be 256-byte aligned", op);
    return QP_OK;
}

static enum qp_status op_embed(const struct qp_op_args *a, struct qp_error *err) {
    enum qp_status s = check_common(a, "embed", true, err);
    if (s != QP_OK) return s;
    if (a->n_parts < 1 || !a->out) FAIL("cuda embed: needs a weight and an output");
    s = check_weight(&a->w[0], a->w[0].cols, "embed", 0, err);
    if (s != QP_OK) return s;
    if (a->out_w != a->w[0].cols)
        FAIL("cuda embed: out is [n][%lld], the table has %lld columns", (long long)a->out_w,
             (long long)a->w[0].cols);
    return qp_cuda_embed(a, err);
}

static enum qp_status op_rms_norm(const struct qp_op_args *a, struct qp_error *err) {
    enum qp_status s = check_common(a, "rms_norm", false, err);
    if (s != QP_OK) return s;
    if (!a->in0 || !a->out || !a->norm || a->in_w < 1) FAIL("cuda rms_norm: needs in0, out, norm and in_w >= 1");
    if (a->out_w != 0 && a->out_w != a->in_w)
        FAIL("cuda rms_norm: out_w %lld != in_w %lld", (long long)a->out_w, (long long)a->in_w);
    return qp_cuda_rms_norm(a, err);
}

static enum qp_status op_linear(const struct qp_op_args *a, struct qp_error *err) {
    enum qp_status s = check_common(a, "linear", a->epilogue == QP_EPILOGUE_ROPE_KV ||
                                                     a->epilogue == QP_EPILOGUE_ARGMAX, err);
    if (s != QP_OK) return s;
    if (a->n_parts < 1 || a->n_parts > QP_OP_MAX_PARTS) FAIL("cuda linear: %d weight parts", a->n_parts);
    if (!a->in0 || !a->out || a->in_w < 1) FAIL("cuda linear: needs in0, out and in_w >= 1");
    for (int i = 0; i < a->n_parts; i++) {
        s = check_weight(&a->w[i], a->in_w, "linear", i, err);
        if (s != QP_OK) return s;
    }
    if (a->in_w % 32 == 0 && (uintptr_t)a->in0 % 16)
        FAIL("cuda linear: in0 must be 16-byte aligned");
    if (a->prologue == QP_PROLOGUE_RMS_NORM && !a->norm) FAIL("cuda linear: rms_norm prologue without norm");
    if (a->prologue != QP_PROLOGUE_NONE && a->prologue != QP_PROLOGUE_RMS_NORM)
        FAIL("cuda linear: unknown prologue %d", (int)a->prologue);
    const int64_t rows = qp_cuda_rows_total(a);
    switch (a->epilogue) {
    case QP_EPILOGUE_NONE:
    case QP_EPILOGUE_ARGMAX:
    case QP_EPILOGUE_RESIDUAL:
        if (a->out_w != rows)
            FAIL("cuda linear: out is [n][%lld], the weights have %lld rows", (long long)a->out_w, (long long)rows);
        if (a->epilogue == QP_EPILOGUE_RESIDUAL && !a->in1) FAIL("cuda linear: residual epilogue without in1");
        break;
    case QP_EPILOGUE_SWIGLU:
        if (a->n_parts != 2 || a->w[0].rows != a->w[1].rows || a->out_w != a->w[0].rows)
            FAIL("cuda linear: swiglu needs parts gate and up of out_w rows each");
        if (a->w[0].type != a->w[1].type)
            return qp_error_set(err, QP_ERR_UNSUPPORTED, "cuda linear: swiglu parts of types %s and %s (one type needed)",
                                qp_ggml_type_name(a->w[0].type), qp_ggml_type_name(a->w[1].type));
        break;
    case QP_EPILOGUE_ROPE_KV: {
        const int64_t hd = a->head_dim, kvd = (int64_t)a->n_head_kv * hd;
        if (a->n_parts != 3 || hd < 2 || hd % 2 || a->n_head < 1 || a->n_head_kv < 1 ||
            a->n_head % a->n_head_kv || a->w[0].rows != a->n_head * hd || a->w[1].rows != kvd ||
            a->w[2].rows != kvd || a->kv.kv_dim != kvd || a->out_w != a->n_head * hd)
            FAIL("cuda linear: rope_kv needs parts q [%d*%d], k and v [%d*%d] matching kv_dim %lld and out_w",
                 a->n_head, a->head_dim, a->n_head_kv, a->head_dim, (long long)a->kv.kv_dim);
        if (!a->kv.k || !a->kv.v || (a->kv.type != QP_GGML_F16 && a->kv.type != QP_GGML_F32))
            FAIL("cuda linear: rope_kv needs a KV cache of F16 or F32");
        break;
    }
    default: FAIL("cuda linear: unknown epilogue %d", (int)a->epilogue);
    }
    if (rows > INT32_MAX || a->in_w > INT32_MAX) FAIL("cuda linear: matrix larger than 2^31 rows or columns");
    s = check_scratch(a, "linear", err);
    if (s != QP_OK) return s;
    switch (a->kernel) {
    case QP_KERNEL_MMV:
    case QP_KERNEL_MMV_ARGMAX: return qp_cuda_matvec(a, err);
    case QP_KERNEL_MMV_STREAM: return qp_cuda_matvec_stream(a, err);
    case QP_KERNEL_MMV_BATCH: return qp_cuda_matvec_batch(a, err);
    case QP_KERNEL_MMVQ: return qp_cuda_matvec_q8(a, err);
    case QP_KERNEL_GEMM:
        if (!a->blas) FAIL("cuda linear: the gemm kernel needs the cuBLAS handle (args.blas)");
        return qp_cuda_gemm(a, err);
    default: FAIL("cuda linear: kernel id %d is not a linear kernel", (int)a->kernel);
    }
}

static enum qp_status op_rope(const struct qp_op_args *a, struct qp_error *err) {
    enum qp_status s = check_common(a, "rope", true, err);
    if (s != QP_OK) return s;
    if (!a->out || a->n_head < 1 || a->head_dim < 2 || a->head_dim % 2)
        FAIL("cuda rope: needs out, n_head >= 1 and an even head_dim (got %d, %d)", a->n_head, a->head_dim);
    if (a->out_w != (int64_t)a->n_head * a->head_dim)
        FAIL("cuda rope: out_w %lld, expected n_head %d x head_dim %d", (long long)a->out_w, a->n_head, a->head_dim);
    return qp_cuda_rope(a, err);
}

static enum qp_status check_kv(const struct qp_op_args *a, const char *op, struct qp_error *err) {
    if (!a->kv.k || !a->kv.v || a->kv.kv_dim < 1 || a->kv.ctx < 1)
        FAIL("cuda %s: needs a KV cache (k, v, kv_dim, ctx)", op);
    if (a->kv.type != QP_GGML_F16 && a->kv.type != QP_GGML_F32)
        return qp_error_set(err, QP_ERR_UNSUPPORTED, "cuda %s: KV cache type %s (F16 or F32 only)", op,
                            qp_ggml_type_name(a->kv.type));
    return QP_OK;
}

static enum qp_status op_kv_write(const struct qp_op_args *a, struct qp_error *err) {
    enum qp_status s = check_common(a, "kv_write", true, err);
    if (s == QP_OK) s = check_kv(a, "kv_write", err);
    if (s != QP_OK) return s;
    if (!a->in0 || !a->in1) FAIL("cuda kv_write: needs in0 (K) and in1 (V)");
    return qp_cuda_kv_write(a, err);
}

static enum qp_status op_attention(const struct qp_op_args *a, struct qp_error *err) {
    enum qp_status s = check_common(a, "attention", true, err);
    if (s == QP_OK) s = check_kv(a, "attention", err);
    if (s != QP_OK) return s;
    if (!a->in0 || !a->out) FAIL("cuda attention: needs in0 (q) and out");
    if (a->n_head < 1 || a->n_head_kv < 1 || a->n_head % a->n_head_kv || a->head_dim < 1 ||
        a->head_dim > 256 || a->kv.kv_dim != (int64_t)a->n_head_kv * a->head_dim)
        FAIL("cuda attention: %d heads, %d KV heads of %d (<= 256) do not match kv_dim %lld", a->n_head,
             a->n_head_kv, a->head_dim, (long long)a->kv.kv_dim);
    s = check_scratch(a, "attention", err);
    if (s != QP_OK) return s;
    if (a->kernel == QP_KERNEL_ATTN_PREFILL) return qp_cuda_attn_prefill(a, err);
    return qp_cuda_attention(a, err);
}

static enum qp_status op_swiglu(const struct qp_op_args *a, struct qp_error *err) {
    enum qp_status s = check_common(a, "swiglu", false, err);
    if (s != QP_OK) return s;
    if (!a->in0 || !a->in1 || !a->out || a->out_w < 1) FAIL("cuda swiglu: needs in0, in1, out and out_w >= 1");
    return qp_cuda_swiglu(a, err);
}

static enum qp_status op_add(const struct qp_op_args *a, struct qp_error *err) {
    enum qp_status s = check_common(a, "add", false, err);
    if (s != QP_OK) return s;
    if (!a->in0 || !a->in1 || !a->out || a->out_w < 1) FAIL("cuda add: needs in0, in1, out and out_w >= 1");
    return qp_cuda_add(a, err);
}

static enum qp_status op_argmax(const struct qp_op_args *a, struct qp_error *err) {
    enum qp_status s = check_common(a, "argmax", true, err);
    if (s != QP_OK) return s;
    if (!a->in0 || a->in_w < 1 || a->in_w > INT32_MAX) FAIL("cuda argmax: needs in0 and 1 <= in_w < 2^31");
    s = check_scratch(a, "argmax", err);
    if (s != QP_OK) return s;
    struct qp_cuda_scratch_layout l;
    s = qp_cuda_scratch_plan(a, &l, err);
    if (s != QP_OK) return s;
    return qp_cuda_argmax_rows(a, a->in0, a->in_w, a->n_tok, (char *)a->scratch + l.argmax_off, err);
}

static enum qp_status op_step_advance(const struct qp_op_args *a, struct qp_error *err) {
    enum qp_status s = check_common(a, "step_advance", true, err);
    if (s != QP_OK) return s;
    return qp_cuda_step_advance(a, err);
}

static_assert(QP_OP_EMBED == 0 && QP_OP_RMS_NORM == 1 && QP_OP_LINEAR == 2 && QP_OP_ROPE == 3 &&
                  QP_OP_KV_WRITE == 4 && QP_OP_ATTENTION == 5 && QP_OP_SWIGLU == 6 && QP_OP_ADD == 7 &&
                  QP_OP_ARGMAX == 8 && QP_OP_STEP_ADVANCE == 9 && QP_OP_COUNT == 10,
              "qp_cuda_ops lists the ops in enum order");
static thread_local int32_t qp_cuda_launched = QP_KERNEL_UNKNOWN;
void qp_cuda_note_launch(int32_t id) { qp_cuda_launched = id; }
extern "C" int32_t qp_cuda_last_kernel(void) { return qp_cuda_launched; }

/* Every entry of the table: the node's kernel must be one of its op's (the executor resolved the
 * plan's name and checked the kernel against the node at load; this guards direct callers). */
template <qp_op_fn F> static enum qp_status op_entry(const struct qp_op_args *a, struct qp_error *err) {
    const struct qp_kernel_desc *d = qp_kernel_desc(a->kernel);
    const struct qp_op_desc *od = qp_op_desc(a->op);
    if (!d || d->op != a->op)
        return qp_error_set(err, QP_ERR_INVALID, "cuda %s: kernel id %d (%s) does not run this op",
                            od ? od->name : "?", (int)a->kernel, d ? d->name : "unknown");
    qp_cuda_launched = QP_KERNEL_UNKNOWN;
    const enum qp_status s = F(a, err);
    /* an op with one kernel: its launcher is that kernel */
    if (s == QP_OK && a->op != QP_OP_LINEAR && a->op != QP_OP_ATTENTION) qp_cuda_launched = a->kernel;
    return s;
}

extern "C" const qp_op_fn qp_cuda_ops[QP_OP_COUNT] = {
    op_entry<op_embed>,  op_entry<op_rms_norm>, op_entry<op_linear>,  op_entry<op_rope>,   op_entry<op_kv_write>,
    op_entry<op_attention>, op_entry<op_swiglu>, op_entry<op_add>, op_entry<op_argmax>, op_entry<op_step_advance>,
};
