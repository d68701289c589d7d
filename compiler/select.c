/* select.c — kernel variants, launch parameters and scratch sizes per node and program, for
 * the "cuda" target (the CPU backend runs the same plan and ignores kernel names and launch
 * params; scratch sizes cover what either backend needs).
 *
 * The numbers are starting points reasoned from the H100, not measurements yet; they are plan
 * data precisely so that tuning is a plan edit:
 *  - mmv (decode matvec on quantized weights): 256 threads = 8 warps, one warp per output row
 *    (rows_per_block 8) so each warp streams whole rows; split 1.
 *  - mmv_argmax (decode LM head + argmax): as mmv, but at most QP_CUDA_ARGMAX_BLOCKS blocks
 *    (grid stride over rows), one (max, index) partial per block in scratch (8 bytes each,
 *    split = number of blocks), reduced by the last block done: one launch, no second pass.
 *  - gemm (prefill linear): dequantize rows_per_block stacked weight rows (across parts) at a
 *    time into f16 scratch (<= QP_CUDA_GEMM_CHUNK_BYTES, never the whole LM head), convert the
 *    activations to f16 once, one cuBLAS call per chunk (split = chunks); swiglu and rope_kv
 *    stage the f32 product in scratch, the other epilogues let cuBLAS write out directly.
 *  - attn_decode: flash-decoding, split = KV chunks of ATTN_SPLIT_POS positions (<= 64), each
 *    writing a partial (head_dim outputs + max + sum) per head to scratch.
 *  - attn_prefill: 128 threads, 16 query rows per block, keys streamed from the cache.
 *  - elementwise ops: 256 threads; rms_norm one block per row; argmax one block of 1024.
 */
#include <stdlib.h>
#include <string.h>

#include "compile_internal.h"
#include "qp_cuda.h"
#include "qp_ggml.h"

#define ATTN_SPLIT_POS 256
#define ATTN_MAX_SPLIT 64

static uint64_t align_up(uint64_t v) {
    return (v + QP_PLAN_ALIGNMENT - 1) / QP_PLAN_ALIGNMENT * QP_PLAN_ALIGNMENT;
}

static enum qp_status set_kernel(struct qp_plan_node *n, const char *k, int32_t block,
                                 int32_t rpb, int32_t split, struct qp_error *err) {
    free(n->kernel);
    n->kernel = qp_build_strdup(k);
    if (!n->kernel) return qp_error_set(err, QP_ERR_NOMEM, "out of memory selecting kernels");
    n->launch = (struct qp_launch){block, rpb, split, 0};
    return QP_OK;
}

static enum qp_status select_linear(struct qp_plan *p, struct qp_plan_node *n, bool prefill,
                                    struct qp_error *err) {
    struct qp_plan_part parts[QP_OP_MAX_PARTS];
    int np = qp_plan_node_parts(p, n, false, parts);
    int64_t rows = 0, cols = p->weights[n->weights[0]].cols, R = p->limits.max_chunk;
    for (int i = 0; i < np; i++) rows += parts[i].rows;
    /* what the CPU backend stages per token: the normalised input, the second half of the
     * epilogue (up for swiglu, k and v for rope_kv) */
    int64_t stage = n->epilogue == QP_EPILOGUE_SWIGLU ? rows / 2
                  : n->epilogue == QP_EPILOGUE_ROPE_KV ? 2 * p->kv.kv_dim : 0;
    uint64_t cpu = 4 * (uint64_t)(stage + (n->prologue == QP_PROLOGUE_RMS_NORM ? cols : 0));
    uint64_t cuda = 0;
    enum qp_status st;
    if (prefill && n->rows == QP_PLAN_ROWS_ALL) {
        /* balanced chunks over the stacked rows of all parts (one cuBLAS call each), at most
         * QP_CUDA_GEMM_CHUNK_BYTES of f16 rows, 64-row multiples */
        int64_t per = (int64_t)(QP_CUDA_GEMM_CHUNK_BYTES / (2 * (uint64_t)cols));
        if (per < 64) per = 64;
        int64_t n_chunks = (rows + per - 1) / per;
        int64_t chunk = ((rows + n_chunks - 1) / n_chunks + 63) / 64 * 64;
        if (chunk > rows) chunk = rows;
        n_chunks = (rows + chunk - 1) / chunk;
        st = set_kernel(n, "gemm", 256, (int32_t)chunk, (int32_t)n_chunks, err);
        /* the CUDA scratch (y, x and weight rows in f16, cuBLAS workspace) is sized below by
         * cuda_scratch_need from qp_cuda_scratch_plan */
        cpu *= (uint64_t)R; /* the CPU op tiles tokens through the scratch */
    } else if (n->epilogue == QP_EPILOGUE_ARGMAX) {
        /* kernels/cuda/matvec.cu: at most QP_CUDA_ARGMAX_BLOCKS blocks walk the rows with a grid
         * stride, one (max, index) partial each; the last block done reduces them */
        int64_t blocks = (rows + 7) / 8;
        if (blocks > QP_CUDA_ARGMAX_BLOCKS) blocks = QP_CUDA_ARGMAX_BLOCKS;
        st = set_kernel(n, "mmv_argmax", 256, 8, (int32_t)blocks, err);
        cuda = 8 * (uint64_t)QP_CUDA_ARGMAX_BLOCKS;
    } else {
        st = set_kernel(n, "mmv", 256, 8, 1, err);
    }
    n->scratch_bytes = align_up(cuda > cpu ? cuda : cpu);
    return st;
}

static enum qp_status select_node(struct qp_plan *p, struct qp_plan_node *n, bool prefill,
                                  struct qp_error *err) {
    n->scratch_bytes = 0;
    switch (n->op) {
    case QP_OP_EMBED: return set_kernel(n, "embed", 256, 0, 0, err);
    case QP_OP_RMS_NORM: return set_kernel(n, "rms_norm", 256, 1, 0, err);
    case QP_OP_LINEAR: return select_linear(p, n, prefill, err);
    case QP_OP_ROPE: return set_kernel(n, "rope", 128, 0, 0, err);
    case QP_OP_KV_WRITE: return set_kernel(n, "kv_write", 256, 0, 0, err);
    case QP_OP_ATTENTION:
        if (prefill) return set_kernel(n, "attn_prefill", 128, 16, 0, err);
        {
            int64_t split = (p->limits.max_ctx + ATTN_SPLIT_POS - 1) / ATTN_SPLIT_POS;
            if (split > ATTN_MAX_SPLIT) split = ATTN_MAX_SPLIT;
            n->scratch_bytes = align_up(4 * (uint64_t)p->hparams.n_head * (uint64_t)split *
                                        (uint64_t)(p->hparams.head_dim + 2));
            return set_kernel(n, "attn_decode", 128, 0, (int32_t)split, err);
        }
    case QP_OP_SWIGLU: return set_kernel(n, "swiglu", 256, 0, 0, err);
    case QP_OP_ADD: return set_kernel(n, "add", 256, 0, 0, err);
    case QP_OP_ARGMAX:
        n->scratch_bytes = align_up(8 * (uint64_t)QP_CUDA_ARGMAX_BLOCKS); /* stage-1 partials */
        return set_kernel(n, "argmax", 256, 0, 0, err);
    case QP_OP_STEP_ADVANCE: return set_kernel(n, "step_advance", 32, 0, 0, err);
    case QP_OP_COUNT: break;
    }
    return qp_error_set(err, QP_ERR_INVALID, "internal: node with no op");
}

/* The scratch the CUDA op needs for this node (qp_cuda_scratch_plan, the layout the CUDA
 * launchers use), maximised over every n_tok the node can run with: 1 in decode and for
 * last-row nodes, 1..max_chunk in prefill. */
static enum qp_status cuda_scratch_need(const struct qp_plan *p, const struct qp_plan_node *n,
                                        bool prefill, uint64_t *need, struct qp_error *err) {
    struct qp_op_args a;
    memset(&a, 0, sizeof a);
    a.op = n->op;
    a.prologue = n->prologue;
    a.epilogue = n->epilogue;
    a.n_head = (int32_t)n->params.n_head;
    a.n_head_kv = (int32_t)n->params.n_head_kv;
    a.head_dim = (int32_t)n->params.head_dim;
    a.kv.ctx = p->kv.ctx;
    a.kv.kv_dim = p->kv.kv_dim;
    a.kv.type = p->kv.type;
    a.launch = n->launch;
    if (n->n_in > 0) a.in_w = p->buffers[n->in[0]].cols;
    if (n->out >= 0) a.out_w = p->buffers[n->out].cols;
    struct qp_plan_part parts[QP_OP_MAX_PARTS];
    int np = n->n_weights > 0 ? qp_plan_node_parts(p, n, false, parts) : 0;
    if (np < 0) return qp_error_set(err, QP_ERR_INVALID, "internal: node with too many weight parts");
    a.n_parts = np;
    for (int i = 0; i < np; i++) {
        const struct qp_plan_weight *w = &p->weights[parts[i].weight];
        a.w[i].type = w->type;
        a.w[i].rows = parts[i].rows;
        a.w[i].cols = w->cols;
        if (!qp_ggml_row_bytes(w->type, w->cols, &a.w[i].row_bytes))
            return qp_error_set(err, QP_ERR_INVALID, "weight '%s': bad row size", w->name);
    }
    int64_t max_tok = prefill && n->rows == QP_PLAN_ROWS_ALL ? p->limits.max_chunk : 1;
    *need = 0;
    for (int64_t t = 1; t <= max_tok; t++) {
        a.n_tok = (int32_t)t;
        struct qp_cuda_scratch_layout l;
        enum qp_status st = qp_cuda_scratch_plan(&a, &l, err);
        if (st != QP_OK) return st;
        if (l.total > *need) *need = l.total;
    }
    return QP_OK;
}

enum qp_status qp_select_kernels(struct qp_plan *p, struct qp_error *err) {
    for (int k = 0; k < QP_PLAN_N_PROGRAMS; k++) {
        struct qp_plan_program *g = &p->programs[k];
        for (int32_t i = 0; i < g->n_nodes; i++) {
            struct qp_plan_node *n = &g->nodes[i];
            enum qp_status st = select_node(p, n, k == QP_PLAN_PREFILL, err);
            if (st != QP_OK) return st;
            uint64_t need;
            st = cuda_scratch_need(p, n, k == QP_PLAN_PREFILL, &need, err);
            if (st != QP_OK) return st;
            if (align_up(need) > n->scratch_bytes) n->scratch_bytes = align_up(need);
        }
    }
    return QP_OK;
}
