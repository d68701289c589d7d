/* kernel_table.c — the kernel registry's catalogue (include/qp_kernels.h): names, what each
 * kernel requires of a node and its launch shape, default launches, and the launch shapes worth
 * timing. Plain C, no CUDA: the compiler, `qplan validate`, `qplan tune` and both backends use
 * it. The numbers a kernel is compiled with (block sizes, shared-memory budgets) are in
 * include/qp_cuda.h, where the CUDA sources take them from too.
 *
 * Rule for launch shapes: a kernel reads some of block, rows_per_block, split, grid (its entry
 * below says which); the fields it does not read must be 0, so a plan never carries a number
 * that does nothing.
 */
#include "qp_kernels.h"

#include <stdio.h>
#include <string.h>

#include "qp_cuda.h"
#include "qp_ggml.h"

static const struct qp_kernel_desc table[QP_KERNEL_COUNT] = {
    [QP_KERNEL_EMBED] = {QP_KERNEL_EMBED, "embed", QP_OP_EMBED, 0, "one block per token, rows dequantized"},
    [QP_KERNEL_RMS_NORM] = {QP_KERNEL_RMS_NORM, "rms_norm", QP_OP_RMS_NORM, 0, "one block per token"},
    [QP_KERNEL_ROPE] = {QP_KERNEL_ROPE, "rope", QP_OP_ROPE, 0, "one thread per rotated pair"},
    [QP_KERNEL_KV_WRITE] = {QP_KERNEL_KV_WRITE, "kv_write", QP_OP_KV_WRITE, 0, "one thread per cache element"},
    [QP_KERNEL_SWIGLU] = {QP_KERNEL_SWIGLU, "swiglu", QP_OP_SWIGLU, 0, "elementwise"},
    [QP_KERNEL_ADD] = {QP_KERNEL_ADD, "add", QP_OP_ADD, 0, "elementwise"},
    [QP_KERNEL_ARGMAX] = {QP_KERNEL_ARGMAX, "argmax", QP_OP_ARGMAX, 0, "two stages through scratch"},
    [QP_KERNEL_STEP_ADVANCE] = {QP_KERNEL_STEP_ADVANCE, "step_advance", QP_OP_STEP_ADVANCE, 0, "one thread"},
    [QP_KERNEL_MMV] = {QP_KERNEL_MMV, "mmv", QP_OP_LINEAR, 0,
                       "matvec: split warps per output unit, weights read as stored"},
    [QP_KERNEL_MMV_ARGMAX] = {QP_KERNEL_MMV_ARGMAX, "mmv_argmax", QP_OP_LINEAR, 0,
                              "matvec + argmax over split blocks (LM head)"},
    [QP_KERNEL_MMV_STREAM] = {QP_KERNEL_MMV_STREAM, "mmv_stream", QP_OP_LINEAR, 90,
                              "matvec: weight rows bulk-copied into shared memory"},
    [QP_KERNEL_GEMM] = {QP_KERNEL_GEMM, "gemm", QP_OP_LINEAR, 0,
                        "f16 rows dequantized in chunks, cuBLAS GEMM"},
    [QP_KERNEL_ATTN_SPLIT] = {QP_KERNEL_ATTN_SPLIT, "attn_split", QP_OP_ATTENTION, 0,
                              "flash-decoding per (chunk, head, token)"},
    [QP_KERNEL_ATTN_GQA] = {QP_KERNEL_ATTN_GQA, "attn_gqa", QP_OP_ATTENTION, 0,
                            "flash-decoding per (chunk, KV head, token), query heads grouped"},
    [QP_KERNEL_ATTN_PREFILL] = {QP_KERNEL_ATTN_PREFILL, "attn_prefill", QP_OP_ATTENTION, 0,
                                "16 query rows per block, key tiles in shared memory"},
    [QP_KERNEL_MMV_BATCH] = {QP_KERNEL_MMV_BATCH, "mmv_batch", QP_OP_LINEAR, 0,
                             "matvec for a few tokens: each weight decoded once for split tokens"},
    [QP_KERNEL_MMVQ] = {QP_KERNEL_MMVQ, "mmvq", QP_OP_LINEAR, 0,
                        "matvec on x quantized to 8 bits per 32: integer dots (DP4A)"},
};

const struct qp_kernel_desc *qp_kernel_desc(int32_t id) {
    return id > QP_KERNEL_UNKNOWN && id < QP_KERNEL_COUNT ? &table[id] : NULL;
}

const struct qp_kernel_desc *qp_kernel_find(const char *name) {
    for (int k = 1; k < QP_KERNEL_COUNT; k++)
        if (strcmp(table[k].name, name) == 0) return &table[k];
    return NULL;
}

void qp_kernel_names(enum qp_op op, char *buf, size_t n) {
    size_t at = 0;
    if (n) buf[0] = 0;
    for (int k = 1; k < QP_KERNEL_COUNT && n; k++) {
        if (table[k].op != op) continue;
        int w = snprintf(buf + at, n - at, "%s%s", at ? ", " : "", table[k].name);
        if (w < 0 || (size_t)w >= n - at) break;
        at += (size_t)w;
    }
}

double qp_kernel_tolerance(int32_t id) {
    return id == QP_KERNEL_GEMM ? QP_KERNEL_TOL_F16 : id == QP_KERNEL_MMVQ ? QP_KERNEL_TOL_Q8 : QP_KERNEL_TOL_F32;
}

static bool is_float_type(int32_t t) { return t == QP_GGML_F32 || t == QP_GGML_F16 || t == QP_GGML_BF16; }

static int64_t rows_total(const struct qp_op_args *a) {
    int64_t r = 0;
    for (int i = 0; i < a->n_parts && i < QP_OP_MAX_PARTS; i++) r += a->w[i].rows;
    return r;
}

int64_t qp_linear_units(const struct qp_op_args *a) {
    switch (a->epilogue) {
    case QP_EPILOGUE_SWIGLU: return a->n_parts > 0 ? a->w[0].rows : 0;
    case QP_EPILOGUE_ROPE_KV:
        return (int64_t)a->n_head * a->head_dim / 2 + (int64_t)a->n_head_kv * a->head_dim / 2 +
               (int64_t)a->n_head_kv * a->head_dim;
    default: return rows_total(a);
    }
}

/* --- mmv_stream geometry (matvec_stream.cu's host side uses the same function) --- */

/* Bytes of weight rows per unit, rows per unit, and the most units per block the shared memory,
 * the partial sums and the copy segments allow (0: not even one). */
static int64_t mmvs_fit(const struct qp_op_args *a, size_t *bpu_out, int32_t *nr_out, int64_t *nchunk_out) {
    size_t rbmax = 0;
    for (int i = 0; i < a->n_parts; i++)
        if (a->w[i].row_bytes > rbmax) rbmax = a->w[i].row_bytes;
    const int32_t nr = a->epilogue == QP_EPILOGUE_SWIGLU || a->epilogue == QP_EPILOGUE_ROPE_KV ? 2 : 1;
    const size_t bpu = a->epilogue == QP_EPILOGUE_SWIGLU && a->n_parts == 2 ? a->w[0].row_bytes + a->w[1].row_bytes
                                                                             : (size_t)nr * rbmax;
    const int64_t nchunk = (a->in_w / 32 + 31) / 32;
    const size_t slack = (size_t)QP_CUDA_MMVS_MAX_SEGS * 32; /* alignment of each segment's copy */
    *bpu_out = bpu;
    *nr_out = nr;
    *nchunk_out = nchunk;
    if (bpu == 0 || nchunk < 1 || bpu + slack > QP_CUDA_MMVS_WBYTES) return 0;
    int64_t fit = (int64_t)((QP_CUDA_MMVS_WBYTES - slack) / bpu);
    if (fit > QP_CUDA_MMVS_MAX_PARTIALS / (nr * nchunk)) fit = QP_CUDA_MMVS_MAX_PARTIALS / (nr * nchunk);
    if (a->epilogue == QP_EPILOGUE_ROPE_KV) { /* <= MAX_SEGS segments: at most 8 pieces */
        const int64_t half = a->head_dim / 2;
        if (fit > (QP_CUDA_MMVS_MAX_SEGS / 2 - 3) * half) fit = (QP_CUDA_MMVS_MAX_SEGS / 2 - 3) * half;
    }
    return fit;
}

enum qp_status qp_mmvs_geometry(const struct qp_op_args *a, int64_t upb, int32_t tokens, struct qp_mmvs_geometry *g,
                                struct qp_error *err) {
    size_t bpu;
    int32_t nr;
    int64_t nchunk;
    const int64_t fit = mmvs_fit(a, &bpu, &nr, &nchunk);
    const int64_t units = qp_linear_units(a);
    if (fit < 1)
        return qp_error_set(err, QP_ERR_UNSUPPORTED, "mmv_stream: one unit's rows (%zu bytes) do not fit a "
                            "block's %d bytes of shared memory", bpu, QP_CUDA_MMVS_WBYTES);
    if (upb < 1 || upb > fit)
        return qp_error_set(err, QP_ERR_INVALID, "mmv_stream: launch.rows_per_block %lld, must be 1..%lld "
                            "(units of %zu bytes in %d bytes of shared memory, %d partial sums, %d copy segments)",
                            (long long)upb, (long long)fit, bpu, QP_CUDA_MMVS_WBYTES, QP_CUDA_MMVS_MAX_PARTIALS,
                            QP_CUDA_MMVS_MAX_SEGS);
    if (tokens < 0 || tokens > QP_CUDA_MMVB_MAX_TOKENS)
        return qp_error_set(err, QP_ERR_INVALID, "mmv_stream: launch.split %d (tokens decoded together), must "
                            "be 0..%d", tokens, QP_CUDA_MMVB_MAX_TOKENS);
    const size_t ntok = tokens > 1 ? (size_t)tokens : 1;
    const size_t slack = (size_t)QP_CUDA_MMVS_MAX_SEGS * 32;
    g->units = units;
    g->blocks = (units + upb - 1) / upb;
    g->nr = nr;
    g->nchunk = nchunk;
    g->wbytes = (uint32_t)(((size_t)upb * bpu + slack + 15) & ~(size_t)15);
    g->smem = g->wbytes + ntok * (qp_cuda_xs_bytes(a->in_w) + (size_t)upb * (size_t)nr * (size_t)nchunk * sizeof(float));
    if (g->smem > QP_CUDA_SMEM_MAX)
        return qp_error_set(err, QP_ERR_INVALID, "mmv_stream: %lld units per block and %zu tokens at once need %zu "
                            "bytes of shared memory, more than %d", (long long)upb, ntok, g->smem, QP_CUDA_SMEM_MAX);
    return QP_OK;
}

int64_t qp_mmvs_default_upb(const struct qp_op_args *a, const struct qp_kernel_target *t, int blocks_per_sm) {
    size_t bpu;
    int32_t nr;
    int64_t nchunk;
    const int64_t fit = mmvs_fit(a, &bpu, &nr, &nchunk), units = qp_linear_units(a);
    if (fit < 1 || units < 1) return 0;
    int64_t blocks = (units + fit - 1) / fit;
    const int64_t want = (int64_t)t->sms * blocks_per_sm;
    if (blocks < want) blocks = want < units ? want : units;
    int64_t upb = (units + blocks - 1) / blocks;
    struct qp_mmvs_geometry g;
    struct qp_error e;
    while (upb > 1 && qp_mmvs_geometry(a, upb, 1, &g, &e) != QP_OK) upb--; /* the smem cap */
    return qp_mmvs_geometry(a, upb, 1, &g, &e) == QP_OK ? upb : 0;
}

/* mmv_stream: tokens decoded together for a node of more than one token (launch.split; 0 for one
 * token): all of them up to QP_CUDA_MMVB_MAX_TOKENS where the block still fits twice per SM, else
 * balanced groups that do. */
static int32_t mmvs_default_tokens(const struct qp_op_args *a, int64_t upb) {
    if (a->n_tok <= 1 || upb < 1) return 0;
    int32_t fit = a->n_tok < QP_CUDA_MMVB_MAX_TOKENS ? a->n_tok : QP_CUDA_MMVB_MAX_TOKENS;
    struct qp_mmvs_geometry g = {0};
    struct qp_error e;
    while (fit > 1 && (qp_mmvs_geometry(a, upb, fit, &g, &e) != QP_OK || g.smem > QP_CUDA_SMEM_MAX / 2)) fit--;
    const int32_t groups = (a->n_tok + fit - 1) / fit;
    return (a->n_tok + groups - 1) / groups;
}

/* --- checks --- */

#define UNSUP(...) return qp_error_set(err, QP_ERR_UNSUPPORTED, __VA_ARGS__)
#define BAD(...) return qp_error_set(err, QP_ERR_INVALID, __VA_ARGS__)

/* The launch fields a kernel reads. */
enum { L_BLOCK = 1, L_ROWS = 2, L_SPLIT = 4, L_GRID = 8 };

static enum qp_status check_unused(const char *k, const struct qp_launch *l, unsigned reads, struct qp_error *err) {
    if (!(reads & L_ROWS) && l->rows_per_block)
        BAD("launch.rows_per_block %d means nothing to kernel %s: it must be 0", l->rows_per_block, k);
    if (!(reads & L_SPLIT) && l->split)
        BAD("launch.split %d means nothing to kernel %s: it must be 0", l->split, k);
    if (!(reads & L_GRID) && l->grid) BAD("launch.grid %d means nothing to kernel %s: it must be 0", l->grid, k);
    return QP_OK;
}

static enum qp_status check_block(const char *k, int32_t block, int32_t max, int32_t fixed, struct qp_error *err) {
    if (fixed && block != fixed) BAD("kernel %s runs blocks of %d threads: launch.block %d", k, fixed, block);
    if (block < 32 || block > max || block % 32)
        BAD("kernel %s: launch.block %d must be a multiple of 32 in [32, %d]", k, block, max);
    return QP_OK;
}

static enum qp_status check_scratch(const struct qp_op_args *a, const char *k, struct qp_error *err) {
    if (a->scratch_bytes == SIZE_MAX) return QP_OK;
    struct qp_cuda_scratch_layout l;
    enum qp_status s = qp_cuda_scratch_plan(a, &l, err);
    if (s != QP_OK) return s;
    if (l.total > a->scratch_bytes)
        BAD("kernel %s needs %zu bytes of scratch here, the node has %zu", k, l.total, a->scratch_bytes);
    return QP_OK;
}

static enum qp_status check_linear(int32_t id, const char *k, const struct qp_op_args *a,
                                   const struct qp_kernel_target *t, struct qp_error *err) {
    const struct qp_launch *l = &a->launch;
    bool mixed = false, quant = true;
    for (int i = 0; i < a->n_parts; i++) {
        mixed = mixed || a->w[i].type != a->w[0].type;
        quant = quant && !is_float_type(a->w[i].type);
    }
    const bool am = a->epilogue == QP_EPILOGUE_ARGMAX;
    enum qp_status s;
    switch (id) {
    case QP_KERNEL_MMV:
        if (am) UNSUP("kernel mmv does not take the argmax epilogue (mmv_argmax does)");
        if ((s = check_block(k, l->block, QP_CUDA_MMV_MAX_THREADS, 0, err)) != QP_OK) return s;
        if (l->split != 1 && l->split != 2 && l->split != 4)
            BAD("kernel mmv: launch.split %d (warps per output unit) must be 1, 2 or 4", l->split);
        if ((l->block / 32) % l->split)
            BAD("kernel mmv: launch.split %d does not divide the %d warps of a block", l->split, l->block / 32);
        if (l->split > 1 && (a->epilogue != QP_EPILOGUE_RESIDUAL || mixed || !quant || a->in_w % 32))
            UNSUP("kernel mmv: split %d needs the residual epilogue, quantized weights of one type and "
                  "rows of whole 32-element blocks", l->split);
        if (a->in_w % 32 == 0 && qp_cuda_xs_bytes(a->in_w) > QP_CUDA_SMEM_MAX)
            UNSUP("kernel mmv: a staged input of %lld floats exceeds shared memory", (long long)a->in_w);
        return check_unused(k, l, L_BLOCK | L_SPLIT | L_GRID, err);
    case QP_KERNEL_MMV_ARGMAX:
        if (!am) UNSUP("kernel mmv_argmax runs the argmax epilogue only (the node has %s)",
                       qp_epilogue_name(a->epilogue));
        if ((s = check_block(k, l->block, QP_CUDA_MMV_MAX_THREADS, 0, err)) != QP_OK) return s;
        if (l->split < 1 || l->split > QP_CUDA_ARGMAX_BLOCKS)
            BAD("kernel mmv_argmax: launch.split %d (blocks) must be in [1, %d]", l->split, QP_CUDA_ARGMAX_BLOCKS);
        if (a->in_w % 32 == 0 && qp_cuda_xs_bytes(a->in_w) > QP_CUDA_SMEM_MAX)
            UNSUP("kernel mmv_argmax: a staged input of %lld floats exceeds shared memory", (long long)a->in_w);
        return check_unused(k, l, L_BLOCK | L_SPLIT, err);
    case QP_KERNEL_MMV_STREAM: {
        if (am) UNSUP("kernel mmv_stream does not take the argmax epilogue");
        if (a->in_w % 32) UNSUP("kernel mmv_stream needs rows of whole 32-element sub-chunks (%lld columns)",
                                (long long)a->in_w);
        for (int i = 0; i < a->n_parts; i++)
            if (is_float_type(a->w[i].type) && a->w[i].row_bytes % 16)
                UNSUP("kernel mmv_stream: %s rows of %zu bytes are not 16-byte multiples",
                      qp_ggml_type_name(a->w[i].type), a->w[i].row_bytes);
        if ((s = check_block(k, l->block, 1024, QP_CUDA_MMVS_THREADS, err)) != QP_OK) return s;
        struct qp_mmvs_geometry g;
        if ((s = qp_mmvs_geometry(a, l->rows_per_block, l->split, &g, err)) != QP_OK) return s;
        return check_unused(k, l, L_BLOCK | L_ROWS | L_SPLIT, err);
    }
    case QP_KERNEL_MMV_BATCH:
        if ((s = check_block(k, l->block, QP_CUDA_MMV_MAX_THREADS, 0, err)) != QP_OK) return s;
        if (l->split < 1 || l->split > QP_CUDA_MMVB_MAX_TOKENS)
            BAD("kernel mmv_batch: launch.split %d (tokens per block) must be in [1, %d]", l->split,
                QP_CUDA_MMVB_MAX_TOKENS);
        if (a->in_w % 32) UNSUP("kernel mmv_batch needs rows of whole 32-element sub-chunks (%lld columns)",
                                (long long)a->in_w);
        for (int i = 0; i < a->n_parts; i++)
            if (is_float_type(a->w[i].type) && a->w[i].row_bytes % 16)
                UNSUP("kernel mmv_batch: %s rows of %zu bytes are not 16-byte multiples",
                      qp_ggml_type_name(a->w[i].type), a->w[i].row_bytes);
        if ((size_t)l->split * qp_cuda_xs_bytes(a->in_w) > QP_CUDA_SMEM_MAX)
            UNSUP("kernel mmv_batch: %d staged inputs of %lld floats need %zu bytes of shared memory, more than %d",
                  l->split, (long long)a->in_w, (size_t)l->split * qp_cuda_xs_bytes(a->in_w), QP_CUDA_SMEM_MAX);
        if (am && (l->grid < 1 || l->grid > QP_CUDA_ARGMAX_BLOCKS))
            BAD("kernel mmv_batch: with the argmax epilogue launch.grid %d (blocks per token group) must be in "
                "[1, %d]", l->grid, QP_CUDA_ARGMAX_BLOCKS);
        return check_unused(k, l, L_BLOCK | L_SPLIT | L_GRID, err);
    case QP_KERNEL_MMVQ:
        for (int i = 0; i < a->n_parts; i++) {
            const int32_t ty = a->w[i].type;
            if (ty != QP_GGML_Q4_0 && ty != QP_GGML_Q5_0 && ty != QP_GGML_Q8_0 && ty != QP_GGML_Q4_K &&
                ty != QP_GGML_Q6_K)
                UNSUP("kernel mmvq has 8-bit dots for Q4_0, Q5_0, Q8_0, Q4_K and Q6_K weights, not %s",
                      qp_ggml_type_name(ty));
        }
        if (a->in_w % 32) UNSUP("kernel mmvq needs rows of whole 32-element blocks (%lld columns)", (long long)a->in_w);
        if (qp_cuda_xq8_bytes(a->in_w) > QP_CUDA_SMEM_MAX)
            UNSUP("kernel mmvq: a quantized input of %lld values exceeds shared memory", (long long)a->in_w);
        if ((s = check_block(k, l->block, QP_CUDA_MMV_MAX_THREADS, 0, err)) != QP_OK) return s;
        if (l->grid < 0) BAD("kernel mmvq: launch.grid %d (most blocks; 0: a warp per unit) must be >= 0", l->grid);
        if (am && (l->grid < 1 || l->grid > QP_CUDA_ARGMAX_BLOCKS))
            BAD("kernel mmvq: with the argmax epilogue launch.grid %d (blocks per token) must be in [1, %d]", l->grid,
                QP_CUDA_ARGMAX_BLOCKS);
        return check_unused(k, l, L_BLOCK | L_GRID, err);
    case QP_KERNEL_GEMM:
        if ((s = check_block(k, l->block, 1024, 256, err)) != QP_OK) return s;
        if (l->rows_per_block < 1) BAD("kernel gemm: launch.rows_per_block %d (weight rows per cuBLAS call) "
                                       "must be at least 1", l->rows_per_block);
        if (rows_total(a) > INT32_MAX || a->in_w > INT32_MAX) UNSUP("kernel gemm: a matrix beyond 2^31 rows");
        (void)t;
        return check_unused(k, l, L_BLOCK | L_ROWS, err);
    default: break;
    }
    UNSUP("kernel %s does not run linear", k);
}

static enum qp_status check_attention(int32_t id, const char *k, const struct qp_op_args *a, struct qp_error *err) {
    const struct qp_launch *l = &a->launch;
    const int G = a->n_head_kv > 0 && a->n_head % a->n_head_kv == 0 ? a->n_head / a->n_head_kv : 0;
    enum qp_status s;
    if (a->kv.type != QP_GGML_F16 && a->kv.type != QP_GGML_F32)
        UNSUP("kernel %s: KV cache of %s (f16 or f32)", k, qp_ggml_type_name(a->kv.type));
    switch (id) {
    case QP_KERNEL_ATTN_SPLIT:
    case QP_KERNEL_ATTN_GQA:
        if (id == QP_KERNEL_ATTN_SPLIT && a->head_dim > QP_CUDA_ATTN_MAX_HEAD_DIM)
            UNSUP("kernel attn_split: head_dim %d > %d", a->head_dim, QP_CUDA_ATTN_MAX_HEAD_DIM);
        if (id == QP_KERNEL_ATTN_GQA &&
            (a->kv.type != QP_GGML_F16 || (a->head_dim != 64 && a->head_dim != 128) || G < 1 ||
             G > QP_CUDA_GQA_GMAX || a->kv.kv_dim % 8))
            UNSUP("kernel attn_gqa needs an f16 cache, head_dim 64 or 128 and 1..%d query heads per KV head "
                  "(%s, head_dim %d, %d per KV head)", QP_CUDA_GQA_GMAX, qp_ggml_type_name(a->kv.type),
                  a->head_dim, G);
        s = check_block(k, l->block, 1024, id == QP_KERNEL_ATTN_GQA ? QP_CUDA_GQA_THREADS : QP_CUDA_ATTN_SPLIT_THREADS,
                        err);
        if (s != QP_OK) return s;
        if (l->split < 1 || l->split > QP_CUDA_ATTN_MAX_SPLIT)
            BAD("kernel %s: launch.split %d (chunks of the sequence) must be in [1, %d]", k, l->split,
                QP_CUDA_ATTN_MAX_SPLIT);
        return check_unused(k, l, L_BLOCK | L_SPLIT, err);
    case QP_KERNEL_ATTN_PREFILL:
        if (a->batch) UNSUP("kernel attn_prefill runs a chunk of one sequence's tokens, not a batch of sequences");
        if (a->head_dim != 32 && a->head_dim != 64 && a->head_dim != 128)
            UNSUP("kernel attn_prefill needs head_dim 32, 64 or 128 (%d)", a->head_dim);
        if ((s = check_block(k, l->block, 1024, QP_CUDA_AP_THREADS, err)) != QP_OK) return s;
        if (l->rows_per_block != QP_CUDA_AP_ROWS)
            BAD("kernel attn_prefill runs %d query rows per block: launch.rows_per_block %d", QP_CUDA_AP_ROWS,
                l->rows_per_block);
        return check_unused(k, l, L_BLOCK | L_ROWS, err);
    default: break;
    }
    UNSUP("kernel %s does not run attention", k);
}

enum qp_status qp_kernel_check(int32_t id, const struct qp_op_args *a, const struct qp_kernel_target *t,
                               struct qp_error *err) {
    const struct qp_kernel_desc *d = qp_kernel_desc(id);
    if (!d) return qp_error_set(err, QP_ERR_INVALID, "unknown kernel id %d", (int)id);
    const struct qp_op_desc *od = qp_op_desc(a->op);
    if (d->op != a->op)
        UNSUP("kernel %s runs %s, the node is %s", d->name, qp_op_desc(d->op)->name, od ? od->name : "?");
    if (t->sm < d->min_sm)
        UNSUP("kernel %s needs sm_%d or newer, the target is sm_%d", d->name, d->min_sm, t->sm);
    if (a->launch.pdl && t->sm < 90)
        BAD("launch.pdl needs sm_90 or newer (programmatic dependent launch), the target is sm_%d", t->sm);
    if (a->launch.pdl != 0 && a->launch.pdl != 1) BAD("launch.pdl %d must be 0 or 1", a->launch.pdl);
    const bool argmax = d->op == QP_OP_ARGMAX || (d->op == QP_OP_LINEAR && a->epilogue == QP_EPILOGUE_ARGMAX);
    if (argmax && a->n_tok > QP_CUDA_ARGMAX_MAX_ROWS)
        UNSUP("kernel %s: an argmax of %d rows (at most %d)", d->name, a->n_tok, QP_CUDA_ARGMAX_MAX_ROWS);
    enum qp_status s;
    switch (d->op) {
    case QP_OP_LINEAR: s = check_linear(id, d->name, a, t, err); break;
    case QP_OP_ATTENTION: s = check_attention(id, d->name, a, err); break;
    default:
        s = check_block(d->name, a->launch.block, 1024, 0, err);
        if (s == QP_OK) s = check_unused(d->name, &a->launch, L_BLOCK, err);
        break;
    }
    if (s == QP_OK) s = check_scratch(a, d->name, err);
    return s;
}

/* --- default launches --- */

/* Flash-decoding chunks: enough that the heads fill the GPU at long contexts for a few tokens
 * (about 256 positions per chunk, at most 64), fewer for many tokens, which have n_tok x n_head
 * blocks already. */
static int32_t attn_default_split(const struct qp_op_args *a) {
    int64_t s = a->n_tok <= 8 ? (a->kv.ctx + 255) / 256 : (a->kv.ctx + 1023) / 1024;
    const int64_t cap = a->n_tok <= 8 ? 64 : 8;
    if (s < 1) s = 1;
    if (s > cap) s = cap;
    return (int32_t)s;
}

/* gemm: balanced chunks over the stacked rows of at most QP_CUDA_GEMM_CHUNK_BYTES of f16, in
 * 64-row multiples. */
static int32_t gemm_default_chunk(const struct qp_op_args *a) {
    const int64_t rows = rows_total(a);
    int64_t per = a->in_w > 0 ? (int64_t)(QP_CUDA_GEMM_CHUNK_BYTES / (2 * (uint64_t)a->in_w)) : 64;
    if (per < 64) per = 64;
    const int64_t n_chunks = rows > 0 ? (rows + per - 1) / per : 1;
    int64_t chunk = ((rows + n_chunks - 1) / n_chunks + 63) / 64 * 64;
    if (chunk > rows) chunk = rows;
    if (chunk < 1) chunk = 1;
    return (int32_t)chunk;
}

/* Blocks of an argmax epilogue over several blocks (mmv_argmax, mmv_batch, mmvq): 8 rows a block,
 * at most the last block's merge can take. */
static int32_t argmax_default_blocks(const struct qp_op_args *a) {
    const int64_t blocks = (qp_linear_units(a) + 7) / 8;
    return (int32_t)(blocks > QP_CUDA_ARGMAX_BLOCKS ? QP_CUDA_ARGMAX_BLOCKS : blocks < 1 ? 1 : blocks);
}

/* mmv_batch: tokens per block. All of a step's tokens (at most QP_CUDA_MMVB_MAX_TOKENS) when their
 * staged inputs fit in half of a block's shared memory (two blocks per SM), else balanced groups
 * that do: ffn_down's 4,864 columns take 21.9 KB a token. */
static int32_t mmvb_default_tokens(const struct qp_op_args *a) {
    const size_t xs = qp_cuda_xs_bytes(a->in_w);
    int64_t fit = xs ? (int64_t)((QP_CUDA_SMEM_MAX / 2) / xs) : QP_CUDA_MMVB_MAX_TOKENS;
    if (fit > QP_CUDA_MMVB_MAX_TOKENS) fit = QP_CUDA_MMVB_MAX_TOKENS;
    if (fit < 1) fit = 1;
    const int64_t n = a->n_tok > 0 ? a->n_tok : 1, groups = (n + fit - 1) / fit;
    return (int32_t)((n + groups - 1) / groups);
}

static int32_t default_block(int32_t id) {
    switch (id) {
    case QP_KERNEL_EMBED: case QP_KERNEL_ROPE: case QP_KERNEL_KV_WRITE: return 128;
    case QP_KERNEL_STEP_ADVANCE: return 32;
    case QP_KERNEL_MMV_STREAM: return QP_CUDA_MMVS_THREADS;
    case QP_KERNEL_ATTN_SPLIT: return QP_CUDA_ATTN_SPLIT_THREADS;
    case QP_KERNEL_ATTN_GQA: return QP_CUDA_GQA_THREADS;
    case QP_KERNEL_ATTN_PREFILL: return QP_CUDA_AP_THREADS;
    default: return 256;
    }
}

enum qp_status qp_kernel_default_launch(int32_t id, const struct qp_op_args *a, const struct qp_kernel_target *t,
                                        bool pdl, struct qp_launch *out, struct qp_error *err) {
    struct qp_launch l = {default_block(id), 0, 0, 0, pdl ? 1 : 0};
    switch (id) {
    case QP_KERNEL_MMV: {
        /* long quantized rows with the residual epilogue (ffn_down: 4864 columns, ~5 sub-chunks per
         * lane with one warp per row) take 2 warps per row: docs/performance.md measured 2 best */
        bool one_type = true, quant = true;
        for (int i = 0; i < a->n_parts; i++) {
            one_type = one_type && a->w[i].type == a->w[0].type;
            quant = quant && !is_float_type(a->w[i].type);
        }
        l.split = a->epilogue == QP_EPILOGUE_RESIDUAL && one_type && quant && a->in_w % 32 == 0 &&
                          a->in_w / 32 >= 128 ? 2 : 1;
        break;
    }
    case QP_KERNEL_MMV_ARGMAX: l.split = argmax_default_blocks(a); break;
    case QP_KERNEL_MMVQ:
        if (a->epilogue == QP_EPILOGUE_ARGMAX) l.grid = argmax_default_blocks(a);
        break;
    case QP_KERNEL_MMV_STREAM:
        l.rows_per_block = (int32_t)qp_mmvs_default_upb(a, t, 1);
        l.split = mmvs_default_tokens(a, l.rows_per_block);
        break;
    case QP_KERNEL_MMV_BATCH: {
        l.split = mmvb_default_tokens(a);
        if (a->epilogue == QP_EPILOGUE_ARGMAX) l.grid = argmax_default_blocks(a);
        break;
    }
    case QP_KERNEL_GEMM: l.rows_per_block = gemm_default_chunk(a); break;
    case QP_KERNEL_ATTN_SPLIT: case QP_KERNEL_ATTN_GQA: l.split = attn_default_split(a); break;
    case QP_KERNEL_ATTN_PREFILL: l.rows_per_block = QP_CUDA_AP_ROWS; break;
    default: break;
    }
    struct qp_op_args c = *a;
    c.kernel = id;
    c.launch = l;
    c.scratch_bytes = SIZE_MAX;
    enum qp_status s = qp_kernel_check(id, &c, t, err);
    if (s != QP_OK) return s;
    *out = l;
    return QP_OK;
}

/* --- candidates --- */

struct cands {
    struct qp_kernel_choice *out;
    int max, n;
    const struct qp_op_args *a;
    const struct qp_kernel_target *t;
};

static void add(struct cands *c, int32_t id, struct qp_launch l) {
    struct qp_op_args x = *c->a;
    x.kernel = id;
    x.launch = l;
    x.scratch_bytes = SIZE_MAX;
    struct qp_error e;
    if (qp_kernel_check(id, &x, c->t, &e) != QP_OK) return;
    for (int i = 0; i < c->n && i < c->max; i++)
        if (c->out[i].kernel == id && !memcmp(&c->out[i].launch, &l, sizeof l)) return;
    if (c->n < c->max) c->out[c->n] = (struct qp_kernel_choice){id, l};
    c->n++;
}

int qp_kernel_candidates(const struct qp_op_args *a, const struct qp_kernel_target *t, bool pdl,
                         struct qp_kernel_choice *out, int max) {
    struct cands c = {out, max, 0, a, t};
    const int32_t p = pdl ? 1 : 0;
    struct qp_error e;
    struct qp_launch d;
    for (int32_t id = 1; id < QP_KERNEL_COUNT; id++) {
        if (table[id].op != a->op || qp_kernel_default_launch(id, a, t, pdl, &d, &e) != QP_OK) continue;
        add(&c, id, d);
        switch (id) {
        case QP_KERNEL_MMV:
            for (int32_t block = 128; block <= QP_CUDA_MMV_MAX_THREADS; block *= 2)
                for (int32_t split = 1; split <= 4; split *= 2)
                    for (int32_t g = 0; g <= 2; g++)
                        add(&c, id, (struct qp_launch){block, 0, split, g * t->sms, p});
            break;
        case QP_KERNEL_MMV_ARGMAX:
            for (int32_t block = 128; block <= QP_CUDA_MMV_MAX_THREADS; block *= 2)
                for (int32_t k = 1; k <= 8; k *= 2)
                    add(&c, id, (struct qp_launch){block, 0, k * t->sms, 0, p});
            break;
        case QP_KERNEL_MMV_STREAM:
            for (int bps = 1; bps <= 4; bps++) {
                const int32_t upb = (int32_t)qp_mmvs_default_upb(a, t, bps);
                add(&c, id, (struct qp_launch){d.block, upb, d.split, 0, p});
                for (int32_t tok = 2; tok <= QP_CUDA_MMVB_MAX_TOKENS && tok <= a->n_tok; tok *= 2)
                    add(&c, id, (struct qp_launch){d.block, upb, tok, 0, p});
            }
            break;
        case QP_KERNEL_MMV_BATCH:
            for (int32_t block = 128; block <= QP_CUDA_MMV_MAX_THREADS; block *= 2)
                for (int32_t tok = 1; tok <= QP_CUDA_MMVB_MAX_TOKENS; tok *= 2)
                    for (int32_t g = 0; g <= 2; g++) {
                        const int32_t grid = a->epilogue == QP_EPILOGUE_ARGMAX ? d.grid << g : g * t->sms;
                        add(&c, id, (struct qp_launch){block, 0, tok, grid, p});
                    }
            break;
        case QP_KERNEL_MMVQ:
            for (int32_t block = 128; block <= QP_CUDA_MMV_MAX_THREADS; block *= 2)
                for (int32_t g = 0; g <= 8; g = g ? 2 * g : 1) /* blocks: a warp per unit, 1..8 per SM */
                    add(&c, id, (struct qp_launch){block, 0, 0, g * t->sms, p});
            break;
        case QP_KERNEL_GEMM:
            add(&c, id, (struct qp_launch){d.block, (int32_t)rows_total(a), 0, 0, p});
            break;
        case QP_KERNEL_ATTN_SPLIT:
        case QP_KERNEL_ATTN_GQA:
            add(&c, id, (struct qp_launch){d.block, 0, d.split * 2, 0, p});
            if (d.split > 1) add(&c, id, (struct qp_launch){d.block, 0, d.split / 2, 0, p});
            break;
        default: break;
        }
    }
    return c.n;
}
