/* bench_linear.cu — every LINEAR kernel of the registry (include/qp_kernels.h) at the decode
 * shapes of Qwen2.5 0.5B, 1.5B and 7B, in the GGML types of their Q4_K_M files, against the read
 * ceiling of the card measured in the same run. An executable, never a test; its table goes to
 * bench/RESULTS.md and docs/performance.md with card, date and commit.
 *
 * What it runs. For each model (0.5B: 896 wide, FFN 4864, vocab 151936, 14/2 heads of 64; 1.5B:
 * 1536, 8960, 151936, 12/2 of 128; 7B: 3584, 18944, 152064, 28/4 of 128), each decode node
 *   qkv          q, k, v parts, biases, RMS-norm prologue, rope_kv epilogue (f16 cache)
 *   attn_output  embd x embd, residual epilogue
 *   ffn_gate_up  gate and up parts of n_ff rows, RMS-norm prologue, swiglu epilogue
 *   ffn_down     embd x n_ff, residual epilogue
 *   lm_head      vocab x embd, RMS-norm prologue, argmax epilogue
 * each weight type Q4_K, Q5_0, Q6_K, Q8_0 (where the row width is a multiple of the type's block:
 * the 256-element K-quants do not fit 896), and n_tok 1, 4, 16, every kernel that can run the node
 * (qp_kernel_check) is launched through qp_cuda_ops — the entry the runtime uses — with its default
 * launch (qp_kernel_default_launch) and every launch shape `qplan tune` would time
 * (qp_kernel_candidates), PDL on (as the compiler sets it for decode); the best is reported.
 *
 * Timing. Weights are valid random blocks (qp_quant_random_row: a pool of rows repeated down the
 * matrix). A decode step reads every matrix once, cold in L2, so the benchmark keeps several copies
 * of the weights — together at least 4 x the L2 and 192 MiB — and each launch reads the next copy.
 * One CUDA graph holds N launches (N = the copies, at least 3); after one warm-up replay, the
 * median of --reps replays (CUDA events) divided by N is the time of a launch. That includes the
 * kernel boundary of a graph (~1.2 us with PDL on an H100, bench_boundary), as in the decode graph.
 * A kernel whose launches cannot be captured is timed as N stream launches instead (marked
 * "eager").
 *
 * Bytes are what the node must read: all weight bytes plus x (n_tok rows), the norm, the biases and
 * the residual; TB/s = bytes / time; "% ceil" against the read ceiling: bench_read.cuh's streaming
 * read of 1 GiB, best of 1, 2 and 4 blocks of 512 threads per SM, measured at the start and the end
 * of the run (the larger is used; both are printed).
 *
 * --check runs each kernel and launch once on the same inputs as the CPU op (qp_cpu_ops) and
 * compares: rel = ||gpu - cpu||_2 / ||cpu||_2 of the output within qp_kernel_tolerance, the K and V
 * rows rope_kv writes (f16: within max(tol, 1e-3), as test_gpu_ops), the argmax's token (equal, or
 * a tie within the output tolerance). A launch that fails is listed and left out of "best"; the
 * exit status is then 1.
 *
 * Usage: bench_linear [--check] [--defaults] [--reps N] [--models 0.5B,1.5B,7B]
 *                     [--nodes qkv,attn_output,ffn_gate_up,ffn_down,lm_head] [--types
 * Q4_K,Q5_0,Q6_K,Q8_0]
 *                     [--ntok 1,4,16] [--kernels mmv,mmv_stream,...]
 *   --defaults  each kernel's default launch only (no candidates): a quicker table
 *   --copies N, --ceiling-mib M  N weight copies instead of the L2 rule, an M MiB ceiling read
 *               instead of 1 GiB: for a smoke run on the CPU emulator (bench_linear_emu), not
 * timings $QP_COMMIT, when set, is printed in the header (the device machine's copy has no .git).
 */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qp_cpu.h"
#include "qp_cuda.h"
#include "qp_ggml.h"
#include "qp_kernels.h"
#include "qp_ops.h"
#include "qp_quant.h"
#include "qp_rng.h"

#include "bench_cuda.h"
#include "bench_read.cuh"

#define MAX_TOK    16
#define KV_CTX     64 /* cache rows; the step's position is KV_POS, so pos + MAX_TOK fits */
#define KV_POS     8
#define POOL_ROWS  97 /* distinct random rows per weight part, repeated down the matrix */
#define MAX_CANDS  256
#define MAX_COPIES 1024

struct model {
    const char *name;
    int64_t embd, ff, vocab;
    int n_head, n_kv, hd;
};
static const struct model k_models[] = {
    {"0.5B", 896, 4864, 151936, 14, 2, 64},
    {"1.5B", 1536, 8960, 151936, 12, 2, 128},
    {"7B", 3584, 18944, 152064, 28, 4, 128},
};
#define N_MODELS ((int)(sizeof k_models / sizeof k_models[0]))

enum node { NODE_QKV, NODE_ATTN_OUT, NODE_GATE_UP, NODE_DOWN, NODE_HEAD, NODE_COUNT };
static const char *const k_node_names[NODE_COUNT] = {"qkv", "attn_output", "ffn_gate_up",
                                                     "ffn_down", "lm_head"};

static const int32_t k_types[] = {QP_GGML_Q4_K, QP_GGML_Q5_0, QP_GGML_Q6_K, QP_GGML_Q8_0};
#define N_TYPES ((int)(sizeof k_types / sizeof k_types[0]))
static const int k_ntoks[] = {1, 4, 16};
#define N_NTOK ((int)(sizeof k_ntoks / sizeof k_ntoks[0]))

/* One node of one model in one weight type. */
struct shape {
    const struct model *m;
    enum node node;
    int32_t type;
    int n_parts;
    int64_t rows[QP_OP_MAX_PARTS];
    int64_t cols, out_w;
    enum qp_prologue pro;
    enum qp_epilogue epi;
    bool bias;
};

/* false when the type's blocks do not tile the row */
static bool shape_make(const struct model *m, enum node nd, int32_t type, struct shape *s) {
    memset(s, 0, sizeof *s);
    s->m = m;
    s->node = nd;
    s->type = type;
    const int64_t q = (int64_t)m->n_head * m->hd, kv = (int64_t)m->n_kv * m->hd;
    switch (nd) {
    case NODE_QKV:
        *s = (struct shape){
            m,   nd, type, 3, {q, kv, kv}, m->embd, q, QP_PROLOGUE_RMS_NORM, QP_EPILOGUE_ROPE_KV,
            true};
        break;
    case NODE_ATTN_OUT:
        *s = (struct shape){
            m,    nd, type, 1, {m->embd, 0, 0}, q, m->embd, QP_PROLOGUE_NONE, QP_EPILOGUE_RESIDUAL,
            false};
        break;
    case NODE_GATE_UP:
        *s = (struct shape){m,
                            nd,
                            type,
                            2,
                            {m->ff, m->ff, 0},
                            m->embd,
                            m->ff,
                            QP_PROLOGUE_RMS_NORM,
                            QP_EPILOGUE_SWIGLU,
                            false};
        break;
    case NODE_DOWN:
        *s = (struct shape){m,
                            nd,
                            type,
                            1,
                            {m->embd, 0, 0},
                            m->ff,
                            m->embd,
                            QP_PROLOGUE_NONE,
                            QP_EPILOGUE_RESIDUAL,
                            false};
        break;
    default:
        *s = (struct shape){m,
                            nd,
                            type,
                            1,
                            {m->vocab, 0, 0},
                            m->embd,
                            m->vocab,
                            QP_PROLOGUE_RMS_NORM,
                            QP_EPILOGUE_ARGMAX,
                            false};
        break;
    }
    return s->cols % qp_ggml_type_info(type)->block_elems == 0;
}

/* ---- options ---- */
static bool g_check, g_defaults;
static int g_reps = 5, g_copies = 0, g_ceiling_mib = 1024;
static bool g_model_on[N_MODELS], g_node_on[NODE_COUNT], g_type_on[N_TYPES], g_ntok_on[N_NTOK],
    g_kernel_on[QP_KERNEL_COUNT];

/* Sets on[i] for each comma-separated name of list that equals names[i]; exits on an unknown one.
 */
static void parse_list(const char *opt, const char *list, const char *const *names, int n,
                       bool *on) {
    for (int i = 0; i < n; i++) on[i] = false;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int i = 0;
        while (i < n && (!names[i] || strcmp(names[i], tok) != 0)) i++;
        if (i == n) {
            fprintf(stderr, "bench_linear: %s: unknown name '%s'\n", opt, tok);
            exit(2);
        }
        on[i] = true;
    }
}

/* ---- results ---- */
struct result {
    const char *model, *node, *type, *kernel;
    int n_tok;
    int64_t rows, cols;
    double mbytes;  /* bytes read per launch, 1e6 */
    double def_us;  /* default launch */
    double best_us; /* best launch (that passed --check) */
    struct qp_launch best;
    int n_launch, n_fail;
    bool eager;
};
static struct result *g_res;
static int g_nres, g_cap_res;
static double g_ceiling_tbs;
static int g_failed;

static void add_result(const struct result *r) {
    if (g_nres == g_cap_res) {
        g_cap_res = g_cap_res ? 2 * g_cap_res : 256;
        g_res = (struct result *)realloc(g_res, sizeof *g_res * (size_t)g_cap_res);
        if (!g_res) {
            fprintf(stderr, "bench_linear: out of memory\n");
            exit(1);
        }
    }
    g_res[g_nres++] = *r;
}

/* ---- host and device buffers of one shape ---- */
struct bench {
    struct shape s;
    size_t rb[QP_OP_MAX_PARTS], part_off[QP_OP_MAX_PARTS], copy_bytes, wbytes;
    int copies;
    uint8_t *hw; /* host weights, parts at part_off (one copy) */
    uint8_t *dw; /* device: `copies` copies of hw, copy_bytes apart */
    float *hx, *hnorm, *hbias[QP_OP_MAX_PARTS], *hin1;
    uint16_t *hk, *hv; /* initial f16 caches [KV_CTX][kv_dim] */
    float *dx, *dnorm, *dbias[QP_OP_MAX_PARTS], *din1, *dout;
    void *dk, *dv;
    struct qp_step *hstep, *dstep;
    size_t step_bytes;
    int64_t kv_dim;
};

static uint64_t g_rng = 0x5EED;
static float urand(float lo, float hi) { return lo + (hi - lo) * qp_rng_uniform(&g_rng); }

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "bench_linear: out of host memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}
static void *dmalloc(size_t n) {
    void *p = NULL;
    CK(cudaMalloc(&p, n ? n : 1));
    return p;
}
static float *frand_host(size_t n, float lo, float hi) {
    float *p = (float *)xmalloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = urand(lo, hi);
    return p;
}
static void *to_dev(const void *h, size_t n) {
    void *d = dmalloc(n);
    CK(cudaMemcpy(d, h, n, cudaMemcpyHostToDevice));
    return d;
}

/* The step state of a chunk of n tokens of one sequence in slot 0 at positions KV_POS.., nothing
 * picked yet (the argmax epilogue writes each row's next). */
static void step_reset(struct qp_step *st, int n) {
    st->n_tok = n;
    st->n_out = 1;
    for (int i = 0; i < MAX_TOK; i++) st->rows[i] = (struct qp_step_row){0, KV_POS + i, 0, -1};
}

static void bench_init(struct bench *b, const struct shape *s, size_t l2_bytes) {
    memset(b, 0, sizeof *b);
    b->s = *s;
    size_t off = 0;
    for (int i = 0; i < s->n_parts; i++) {
        if (!qp_ggml_row_bytes(s->type, s->cols, &b->rb[i])) {
            fprintf(stderr, "bench_linear: %s rows of %lld\n", qp_ggml_type_name(s->type),
                    (long long)s->cols);
            exit(1);
        }
        b->part_off[i] = off;
        off = (off + b->rb[i] * (size_t)s->rows[i] + 255) &
              ~(size_t)255; /* parts 256-aligned, as the runtime places weights */
        b->wbytes += b->rb[i] * (size_t)s->rows[i];
    }
    b->copy_bytes = off;
    b->hw = (uint8_t *)xmalloc(b->copy_bytes);
    for (int i = 0; i < s->n_parts; i++) {
        uint8_t *pool = (uint8_t *)xmalloc(b->rb[i] * POOL_ROWS);
        for (int r = 0; r < POOL_ROWS; r++)
            qp_quant_random_row(s->type, &g_rng, 0.05f, pool + b->rb[i] * r, s->cols);
        for (int64_t r = 0; r < s->rows[i]; r++)
            memcpy(b->hw + b->part_off[i] + b->rb[i] * (size_t)r,
                   pool + b->rb[i] * (size_t)(r % POOL_ROWS), b->rb[i]);
        free(pool);
    }
    /* copies: together >= max(4 x L2, 192 MiB), so that each launch reads weights cold in L2 */
    size_t want = 4 * l2_bytes > ((size_t)192 << 20) ? 4 * l2_bytes : ((size_t)192 << 20);
    b->copies = (int)((want + b->copy_bytes - 1) / b->copy_bytes);
    if (b->copies < 1) b->copies = 1;
    if (b->copies > MAX_COPIES) b->copies = MAX_COPIES;
    if (g_copies > 0) b->copies = g_copies;
    b->dw = (uint8_t *)dmalloc(b->copy_bytes * (size_t)b->copies);
    CK(cudaMemcpy(b->dw, b->hw, b->copy_bytes, cudaMemcpyHostToDevice));
    for (int c = 1; c < b->copies; c++)
        CK(cudaMemcpy(b->dw + b->copy_bytes * (size_t)c, b->dw, b->copy_bytes,
                      cudaMemcpyDeviceToDevice));

    b->hx = frand_host((size_t)MAX_TOK * s->cols, -1.0f, 1.0f);
    b->hnorm = frand_host((size_t)s->cols, 0.5f, 1.5f);
    b->hin1 = frand_host((size_t)MAX_TOK * s->out_w, -1.0f, 1.0f);
    b->dx = (float *)to_dev(b->hx, sizeof(float) * MAX_TOK * (size_t)s->cols);
    b->dnorm = (float *)to_dev(b->hnorm, sizeof(float) * (size_t)s->cols);
    b->din1 = (float *)to_dev(b->hin1, sizeof(float) * MAX_TOK * (size_t)s->out_w);
    b->dout = (float *)dmalloc(sizeof(float) * MAX_TOK * (size_t)s->out_w);
    for (int i = 0; i < s->n_parts && s->bias; i++) {
        b->hbias[i] = frand_host((size_t)s->rows[i], -0.5f, 0.5f);
        b->dbias[i] = (float *)to_dev(b->hbias[i], sizeof(float) * (size_t)s->rows[i]);
    }
    b->kv_dim = (int64_t)s->m->n_kv * s->m->hd;
    const size_t kvn = (size_t)KV_CTX * (size_t)b->kv_dim;
    b->hk = (uint16_t *)xmalloc(kvn * 2);
    b->hv = (uint16_t *)xmalloc(kvn * 2);
    for (size_t i = 0; i < kvn; i++) {
        b->hk[i] = qp_fp32_to_fp16(urand(-1.0f, 1.0f));
        b->hv[i] = qp_fp32_to_fp16(urand(-1.0f, 1.0f));
    }
    b->dk = to_dev(b->hk, kvn * 2);
    b->dv = to_dev(b->hv, kvn * 2);
    b->step_bytes = sizeof(struct qp_step) + MAX_TOK * sizeof(struct qp_step_row);
    b->hstep = (struct qp_step *)calloc(1, b->step_bytes);
    step_reset(b->hstep, 1);
    b->dstep = (struct qp_step *)to_dev(b->hstep, b->step_bytes);
}

static void bench_free(struct bench *b) {
    free(b->hw);
    CK(cudaFree(b->dw));
    free(b->hx);
    free(b->hnorm);
    free(b->hin1);
    CK(cudaFree(b->dx));
    CK(cudaFree(b->dnorm));
    CK(cudaFree(b->din1));
    CK(cudaFree(b->dout));
    for (int i = 0; i < QP_OP_MAX_PARTS; i++) {
        free(b->hbias[i]);
        if (b->dbias[i]) CK(cudaFree(b->dbias[i]));
    }
    free(b->hk);
    free(b->hv);
    CK(cudaFree(b->dk));
    CK(cudaFree(b->dv));
    free(b->hstep);
    CK(cudaFree(b->dstep));
}

/* The node's arguments for n tokens, on the device (copy 0 of the weights) or on the host. */
static struct qp_op_args bench_args(const struct bench *b, int n, bool host) {
    const struct shape *s = &b->s;
    struct qp_op_args a;
    memset(&a, 0, sizeof a);
    a.op = QP_OP_LINEAR;
    a.n_tok = n;
    a.step = host ? b->hstep : b->dstep;
    a.in0 = host ? b->hx : b->dx;
    a.in1 = s->epi == QP_EPILOGUE_RESIDUAL ? (host ? b->hin1 : b->din1) : NULL;
    a.out = host ? NULL : b->dout; /* the host caller sets its own */
    a.in_w = s->cols;
    a.out_w = s->out_w;
    a.n_parts = s->n_parts;
    for (int i = 0; i < s->n_parts; i++) {
        a.w[i] = (struct qp_weight){s->type, (host ? b->hw : b->dw) + b->part_off[i], s->rows[i],
                                    s->cols, b->rb[i]};
        a.bias[i] = host ? b->hbias[i] : b->dbias[i];
    }
    a.prologue = s->pro;
    a.epilogue = s->epi;
    a.norm = s->pro == QP_PROLOGUE_RMS_NORM ? (host ? b->hnorm : b->dnorm) : NULL;
    a.eps = 1e-6f;
    if (s->epi == QP_EPILOGUE_ROPE_KV) {
        a.n_head = s->m->n_head;
        a.n_head_kv = s->m->n_kv;
        a.head_dim = s->m->hd;
        a.rope_base = 1e6f;
        a.kv = (struct qp_kv_ref){host ? (void *)b->hk : b->dk, host ? (void *)b->hv : b->dv,
                                  QP_GGML_F16, KV_CTX, b->kv_dim, 1};
    }
    return a;
}

/* bytes a launch of n tokens must read */
static double bench_bytes(const struct bench *b, int n) {
    const struct shape *s = &b->s;
    double by = (double)b->wbytes + 4.0 * n * (double)s->cols;
    if (s->pro == QP_PROLOGUE_RMS_NORM) by += 4.0 * (double)s->cols;
    for (int i = 0; i < s->n_parts && s->bias; i++) by += 4.0 * (double)s->rows[i];
    if (s->epi == QP_EPILOGUE_RESIDUAL) by += 4.0 * n * (double)s->out_w;
    return by;
}

/* ---- the device side ---- */
static struct qp_kernel_target g_target;
static cudaStream_t g_st;
static cublasHandle_t g_blas;
static void *g_scratch;
static size_t g_scratch_bytes;

/* Sets kernel, launch and scratch (grown as needed) on g; false with a message when the registry
 * or the scratch plan refuses. */
static bool prepare(struct qp_op_args *g, const struct qp_kernel_choice *k, char *msg, size_t n) {
    struct qp_error err;
    memset(&err, 0, sizeof err);
    g->kernel = k->kernel;
    g->launch = k->launch;
    g->scratch_bytes = SIZE_MAX;
    struct qp_cuda_scratch_layout l;
    if (qp_kernel_check(k->kernel, g, &g_target, &err) != QP_OK ||
        qp_cuda_scratch_plan(g, &l, &err) != QP_OK) {
        snprintf(msg, n, "%s", err.msg);
        return false;
    }
    if (l.total > g_scratch_bytes) {
        if (g_scratch) CK(cudaFree(g_scratch));
        g_scratch = dmalloc(l.total);
        g_scratch_bytes = l.total;
    }
    g->scratch = l.total ? g_scratch : NULL;
    g->scratch_bytes = l.total;
    g->stream = g_st;
    g->blas = g_blas;
    return true;
}

/* One launch through the op table, on the stream; false with a message. */
static bool launch_once(const struct qp_op_args *g, char *msg, size_t n) {
    struct qp_error err;
    memset(&err, 0, sizeof err);
    if (qp_cuda_ops[QP_OP_LINEAR](g, &err) != QP_OK) {
        snprintf(msg, n, "%s", err.msg);
        return false;
    }
    return true;
}

/* Runs g once and waits; false with a message (launch error, fault, or another kernel ran). */
static bool run_sync(const struct qp_op_args *g, char *msg, size_t n) {
    if (!launch_once(g, msg, n)) return false;
    cudaError_t e = cudaStreamSynchronize(g_st);
    if (e != cudaSuccess) {
        snprintf(msg, n, "%s", cudaGetErrorString(e));
        return false;
    }
    if (qp_cuda_last_kernel() != g->kernel) {
        snprintf(msg, n, "the op ran another kernel than the one named");
        return false;
    }
    return true;
}

static double rel_l2(const float *gpu, const float *cpu, size_t n, size_t *nonfinite) {
    double d2 = 0, c2 = 0;
    *nonfinite = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(gpu[i])) {
            (*nonfinite)++;
            continue;
        }
        const double d = (double)gpu[i] - cpu[i];
        d2 += d * d;
        c2 += (double)cpu[i] * cpu[i];
    }
    return c2 > 0 ? sqrt(d2 / c2) : sqrt(d2);
}

/* The CPU op's results for n tokens: out, the cache rows rope_kv writes (as f32), next_token. */
struct reference {
    int n;
    float *out, *k, *v;
    int32_t next;
};

static void reference_free(struct reference *r) {
    free(r->out);
    free(r->k);
    free(r->v);
    memset(r, 0, sizeof *r);
}

static void reference_make(struct bench *b, int n, struct reference *r) {
    reference_free(r);
    r->n = n;
    struct qp_op_args c = bench_args(b, n, true);
    const size_t kvn = (size_t)KV_CTX * (size_t)b->kv_dim;
    uint16_t *k0 = NULL, *v0 = NULL;
    if (c.epilogue ==
        QP_EPILOGUE_ROPE_KV) { /* the CPU writes the host caches: keep the initial ones */
        k0 = (uint16_t *)xmalloc(kvn * 2);
        v0 = (uint16_t *)xmalloc(kvn * 2);
        memcpy(k0, b->hk, kvn * 2);
        memcpy(v0, b->hv, kvn * 2);
    }
    r->out = (float *)xmalloc(sizeof(float) * (size_t)n * (size_t)b->s.out_w);
    c.out = r->out;
    step_reset(b->hstep, n);
    struct qp_error err;
    memset(&err, 0, sizeof err);
    if (qp_cpu_ops[QP_OP_LINEAR](&c, &err) != QP_OK) {
        fprintf(stderr, "bench_linear: the CPU op refuses %s %s: %s\n", b->s.m->name,
                k_node_names[b->s.node], err.msg);
        exit(1);
    }
    r->next = b->hstep->rows[n - 1].next;
    if (k0) {
        const size_t m = (size_t)n * (size_t)b->kv_dim, at = (size_t)KV_POS * (size_t)b->kv_dim;
        r->k = (float *)xmalloc(sizeof(float) * m);
        r->v = (float *)xmalloc(sizeof(float) * m);
        for (size_t i = 0; i < m; i++) {
            r->k[i] = qp_fp16_to_fp32(b->hk[at + i]);
            r->v[i] = qp_fp16_to_fp32(b->hv[at + i]);
        }
        memcpy(b->hk, k0, kvn * 2);
        memcpy(b->hv, v0, kvn * 2);
        free(k0);
        free(v0);
    }
}

/* Runs g (prepared, n tokens) and compares it with ref; false with a message. */
static bool check_launch(struct bench *b, struct qp_op_args *g, const struct reference *ref,
                         char *msg, size_t n) {
    const size_t no = (size_t)ref->n * (size_t)b->s.out_w;
    CK(cudaMemset(b->dout, 0xFF, no * sizeof(float))); /* NaN: an unwritten element fails */
    step_reset(b->hstep, ref->n);
    CK(cudaMemcpy(b->dstep, b->hstep, b->step_bytes, cudaMemcpyHostToDevice));
    if (!run_sync(g, msg, n)) return false;
    const double tol = qp_kernel_tolerance(g->kernel);
    float *o = (float *)xmalloc(no * sizeof(float));
    CK(cudaMemcpy(o, b->dout, no * sizeof(float), cudaMemcpyDeviceToHost));
    size_t bad = 0;
    const double rel = rel_l2(o, ref->out, no, &bad);
    bool ok = bad == 0 && rel <= tol;
    if (!ok) snprintf(msg, n, "out: rel %.2e (tol %.0e), %zu non-finite", rel, tol, bad);
    if (ok && ref->k) {
        const size_t m = (size_t)ref->n * (size_t)b->kv_dim,
                     at = (size_t)KV_POS * (size_t)b->kv_dim;
        uint16_t *kh = (uint16_t *)xmalloc(m * 2), *vh = (uint16_t *)xmalloc(m * 2);
        float *kf = (float *)xmalloc(m * sizeof(float)), *vf = (float *)xmalloc(m * sizeof(float));
        CK(cudaMemcpy(kh, (uint16_t *)b->dk + at, m * 2, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(vh, (uint16_t *)b->dv + at, m * 2, cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < m; i++) {
            kf[i] = qp_fp16_to_fp32(kh[i]);
            vf[i] = qp_fp16_to_fp32(vh[i]);
        }
        const double ktol =
            tol > 1e-3 ? tol : 1e-3; /* f16: one rounding step apart where f32 values straddle */
        size_t bk = 0, bv = 0;
        const double rk = rel_l2(kf, ref->k, m, &bk), rv = rel_l2(vf, ref->v, m, &bv);
        ok = bk == 0 && bv == 0 && rk <= ktol && rv <= ktol;
        if (!ok)
            snprintf(msg, n, "KV cache: K rel %.2e, V rel %.2e (tol %.0e), %zu non-finite", rk, rv,
                     ktol, bk + bv);
        free(kh);
        free(vh);
        free(kf);
        free(vf);
    }
    if (ok && b->s.epi == QP_EPILOGUE_ARGMAX) {
        struct qp_step_row last_row;
        CK(cudaMemcpy(&last_row, (const char *)b->dstep + QP_STEP_HEADER_BYTES + (size_t)(ref->n - 1) * QP_STEP_ROW_BYTES,
                      sizeof last_row, cudaMemcpyDeviceToHost));
        const float *last = ref->out + (size_t)(ref->n - 1) * (size_t)b->s.out_w;
        const int32_t gt = last_row.next, ct = ref->next;
        const float slack = (g->kernel == QP_KERNEL_GEMM ? 1e-2f : 1e-4f) * fabsf(last[ct]) + 1e-6f;
        ok = gt == ct || (gt >= 0 && gt < b->s.out_w && fabsf(last[gt] - last[ct]) <= slack);
        if (!ok) snprintf(msg, n, "argmax: gpu %d, cpu %d", gt, ct);
    }
    free(o);
    return ok;
}

/* Median microseconds of one launch of g (prepared, n tokens): a graph of N launches, each reading
 * the next copy of the weights; *eager when they had to be stream launches. Negative on an error
 * (message in msg). */
static double time_launch(struct bench *b, struct qp_op_args *g, bool *eager, char *msg, size_t n) {
    const int N = b->copies < 3 ? 3 : b->copies;
    struct qp_op_args a = *g;
    auto launch_all = [&](bool *ok) {
        for (int i = 0; i < N && *ok; i++) {
            const uint8_t *base = b->dw + b->copy_bytes * (size_t)(i % b->copies);
            for (int p = 0; p < a.n_parts; p++) a.w[p].data = base + b->part_off[p];
            *ok = launch_once(&a, msg, n);
        }
    };
    step_reset(b->hstep, g->n_tok);
    CK(cudaMemcpy(b->dstep, b->hstep, b->step_bytes, cudaMemcpyHostToDevice));
    *eager = false;
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    bool ok = true;
    if (cudaStreamBeginCapture(g_st, cudaStreamCaptureModeThreadLocal) == cudaSuccess) {
        launch_all(&ok);
        cudaError_t e = cudaStreamEndCapture(g_st, &graph);
        if (!ok || e != cudaSuccess || cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess) {
            if (graph) cudaGraphDestroy(graph);
            graph = NULL;
            exec = NULL;
            (void)cudaGetLastError();
        }
    } else {
        (void)cudaGetLastError();
    }
    if (!exec) {
        *eager = true;
        ok = true;
        launch_all(&ok); /* the stream launches of the timing, once, to see that they run */
        if (!ok || cudaStreamSynchronize(g_st) != cudaSuccess) {
            if (ok) snprintf(msg, n, "%s", cudaGetErrorString(cudaGetLastError()));
            return -1.0;
        }
    }
    const float ms = bench_timed_ms(g_st, g_reps, [&] {
        if (exec) {
            CK(cudaGraphLaunch(exec, g_st));
        } else {
            bool k = true;
            launch_all(&k);
        }
    });
    cudaError_t e = cudaStreamSynchronize(g_st);
    if (exec) {
        CK(cudaGraphExecDestroy(exec));
        CK(cudaGraphDestroy(graph));
    }
    if (e != cudaSuccess) {
        snprintf(msg, n, "%s", cudaGetErrorString(e));
        return -1.0;
    }
    return 1e3 * ms / N;
}

static void launch_str(char *buf, size_t n, const struct qp_launch *l) {
    snprintf(buf, n, "{%d,%d,%d,%d,%d}", l->block, l->rows_per_block, l->split, l->grid, l->pdl);
}

/* Every kernel and launch on shape b at n tokens. */
static void bench_shape_ntok(struct bench *b, int n, struct reference *ref) {
    const bool pdl = g_target.sm >= 90;
    struct qp_op_args g = bench_args(b, n, false);
    static struct qp_kernel_choice cands[MAX_CANDS];
    int nc = qp_kernel_candidates(&g, &g_target, pdl, cands, MAX_CANDS);
    if (nc > MAX_CANDS) nc = MAX_CANDS;
    if (g_check && ref->n != n) reference_make(b, n, ref);
    for (int32_t id = 1; id < QP_KERNEL_COUNT; id++) {
        const struct qp_kernel_desc *d = qp_kernel_desc(id);
        if (!d || d->op != QP_OP_LINEAR || !g_kernel_on[id]) continue;
        struct qp_launch def;
        struct qp_error err;
        memset(&err, 0, sizeof err);
        if (qp_kernel_default_launch(id, &g, &g_target, pdl, &def, &err) != QP_OK)
            continue; /* cannot run it */
        struct qp_kernel_choice list[MAX_CANDS];
        int nl = 0;
        list[nl++] = (struct qp_kernel_choice){id, def};
        for (int i = 0; i < nc && !g_defaults; i++)
            if (cands[i].kernel == id && memcmp(&cands[i].launch, &def, sizeof def) != 0 &&
                nl < MAX_CANDS)
                list[nl++] = cands[i];
        struct result r;
        memset(&r, 0, sizeof r);
        r.model = b->s.m->name;
        r.node = k_node_names[b->s.node];
        r.type = qp_ggml_type_name(b->s.type);
        r.kernel = d->name;
        r.n_tok = n;
        r.rows = qp_cuda_rows_total(&g);
        r.cols = b->s.cols;
        r.mbytes = bench_bytes(b, n) / 1e6;
        r.def_us = -1.0;
        r.best_us = -1.0;
        for (int li = 0; li < nl; li++) {
            char msg[512] = "", ls[64];
            launch_str(ls, sizeof ls, &list[li].launch);
            struct qp_op_args a = g;
            bool ok = prepare(&a, &list[li], msg, sizeof msg);
            if (ok && g_check)
                ok = check_launch(b, &a, ref, msg, sizeof msg);
            else if (ok)
                ok = run_sync(&a, msg, sizeof msg); /* first use: attributes set outside capture */
            bool eager = false;
            const double us = ok ? time_launch(b, &a, &eager, msg, sizeof msg) : -1.0;
            r.n_launch++;
            if (us < 0) {
                r.n_fail++;
                g_failed++;
                printf("FAIL %s %s %s n=%d %s %s: %s\n", r.model, r.node, r.type, n, d->name, ls,
                       msg);
                continue;
            }
            if (g_check)
                printf("ok   %s %s %s n=%d %s %s\n", r.model, r.node, r.type, n, d->name, ls);
            if (li == 0) r.def_us = us;
            if (r.best_us < 0 || us < r.best_us) {
                r.best_us = us;
                r.best = list[li].launch;
                r.eager = eager;
            }
        }
        add_result(&r);
        fprintf(stderr, "  %s %s %s n=%d %-11s %3d launches: best %9.2f us\n", r.model, r.node,
                r.type, n, d->name, r.n_launch, r.best_us);
    }
}

static double read_ceiling_tbs(const char *when) {
    const size_t bytes = (size_t)g_ceiling_mib << 20;
    void *buf = dmalloc(bytes);
    unsigned *sink = (unsigned *)dmalloc(sizeof(unsigned));
    CK(cudaMemset(buf, 1, bytes));
    double best = 0;
    printf("read ceiling (%s): %d MiB, 16-byte non-caching loads:", when, g_ceiling_mib);
    for (int k = 1; k <= 4; k *= 2) {
        const int grid = g_target.sms * k;
        const float ms = bench_read_ms(g_st, buf, bytes, grid, 512, sink, 10);
        const double tbs = bytes / (ms * 1e-3) / 1e12;
        printf(" %d x 512 %.3f TB/s;", grid, tbs);
        if (tbs > best) best = tbs;
    }
    printf(" best %.3f TB/s\n", best);
    CK(cudaFree(buf));
    CK(cudaFree(sink));
    return best;
}

static void print_tables(void) {
    printf("\n| model | node | type | n_tok | rows x cols | MB read | kernel | default us | best "
           "us | best launch "
           "{block,rows_per_block,split,grid,pdl} | TB/s | %% of ceiling |\n");
    printf("| --- | --- | --- | ---: | --- | ---: | --- | ---: | ---: | --- | ---: | ---: |\n");
    for (int i = 0; i < g_nres; i++) {
        const struct result *r = &g_res[i];
        char ls[64] = "—", best[32] = "FAIL", def[32] = "FAIL", tbs[32] = "—", pct[32] = "—";
        if (r->best_us >= 0) {
            launch_str(ls, sizeof ls, &r->best);
            snprintf(best, sizeof best, "%.2f%s", r->best_us, r->eager ? " (eager)" : "");
            snprintf(tbs, sizeof tbs, "%.3f", r->mbytes / r->best_us);
            snprintf(pct, sizeof pct, "%.0f%%", 100.0 * r->mbytes / r->best_us / g_ceiling_tbs);
        }
        if (r->def_us >= 0) snprintf(def, sizeof def, "%.2f", r->def_us);
        printf("| %s | %s | %s | %d | %lld x %lld | %.2f | %s | %s | %s | %s%s | %s | %s |\n",
               r->model, r->node, r->type, r->n_tok, (long long)r->rows, (long long)r->cols,
               r->mbytes, r->kernel, def, best, ls, r->n_fail ? " (some launches failed)" : "", tbs,
               pct);
    }
    /* the fastest kernel of each shape */
    printf("\n| model | node | type | n_tok | MB read | fastest kernel | us | TB/s | %% of ceiling "
           "|\n");
    printf("| --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: |\n");
    for (int i = 0; i < g_nres;) {
        int j = i, best = -1;
        while (j < g_nres && g_res[j].model == g_res[i].model && g_res[j].node == g_res[i].node &&
               g_res[j].type == g_res[i].type && g_res[j].n_tok == g_res[i].n_tok) {
            if (g_res[j].best_us >= 0 && (best < 0 || g_res[j].best_us < g_res[best].best_us))
                best = j;
            j++;
        }
        if (best >= 0) {
            const struct result *r = &g_res[best];
            printf("| %s | %s | %s | %d | %.2f | %s | %.2f | %.3f | %.0f%% |\n", r->model, r->node,
                   r->type, r->n_tok, r->mbytes, r->kernel, r->best_us, r->mbytes / r->best_us,
                   100.0 * r->mbytes / r->best_us / g_ceiling_tbs);
        }
        i = j;
    }
}

int main(int argc, char **argv) {
    const char *model_names[N_MODELS], *type_names[N_TYPES], *ntok_names[N_NTOK],
        *kernel_names[QP_KERNEL_COUNT];
    char ntok_buf[N_NTOK][8];
    for (int i = 0; i < N_MODELS; i++) model_names[i] = k_models[i].name;
    for (int i = 0; i < N_TYPES; i++) type_names[i] = qp_ggml_type_name(k_types[i]);
    for (int i = 0; i < N_NTOK; i++) {
        snprintf(ntok_buf[i], sizeof ntok_buf[i], "%d", k_ntoks[i]);
        ntok_names[i] = ntok_buf[i];
    }
    kernel_names[0] = NULL;
    for (int i = 1; i < QP_KERNEL_COUNT; i++) {
        const struct qp_kernel_desc *d = qp_kernel_desc(i);
        kernel_names[i] = d && d->op == QP_OP_LINEAR ? d->name : NULL;
    }
    for (int i = 0; i < N_MODELS; i++) g_model_on[i] = true;
    for (int i = 0; i < NODE_COUNT; i++) g_node_on[i] = true;
    for (int i = 0; i < N_TYPES; i++) g_type_on[i] = true;
    for (int i = 0; i < N_NTOK; i++) g_ntok_on[i] = true;
    for (int i = 0; i < QP_KERNEL_COUNT; i++) g_kernel_on[i] = kernel_names[i] != NULL;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--check"))
            g_check = true;
        else if (!strcmp(o, "--defaults"))
            g_defaults = true;
        else if (!strcmp(o, "--reps") && v)
            g_reps = atoi(argv[++i]);
        else if (!strcmp(o, "--copies") && v)
            g_copies = atoi(argv[++i]);
        else if (!strcmp(o, "--ceiling-mib") && v)
            g_ceiling_mib = atoi(argv[++i]);
        else if (!strcmp(o, "--models") && v)
            parse_list(o, argv[++i], model_names, N_MODELS, g_model_on);
        else if (!strcmp(o, "--nodes") && v)
            parse_list(o, argv[++i], k_node_names, NODE_COUNT, g_node_on);
        else if (!strcmp(o, "--types") && v)
            parse_list(o, argv[++i], type_names, N_TYPES, g_type_on);
        else if (!strcmp(o, "--ntok") && v)
            parse_list(o, argv[++i], ntok_names, N_NTOK, g_ntok_on);
        else if (!strcmp(o, "--kernels") && v)
            parse_list(o, argv[++i], kernel_names, QP_KERNEL_COUNT, g_kernel_on);
        else {
            fprintf(
                stderr,
                "usage: bench_linear [--check] [--defaults] [--reps N] [--models LIST] [--nodes "
                "LIST] "
                "[--types LIST] [--ntok LIST] [--kernels LIST] [--copies N] [--ceiling-mib M]\n");
            return 2;
        }
    }
    if (g_reps < 1 || g_reps > 1000 || g_copies < 0 || g_copies > MAX_COPIES || g_ceiling_mib < 1 ||
        g_ceiling_mib > 16384) {
        fprintf(stderr, "bench_linear: --reps 1..1000, --copies 0..%d, --ceiling-mib 1..16384\n",
                MAX_COPIES);
        return 2;
    }
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        fprintf(stderr, "bench_linear: no CUDA device\n");
        return 1;
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    int clock_khz = 0, mem_khz = 0;
    cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0);
    cudaDeviceGetAttribute(&mem_khz, cudaDevAttrMemoryClockRate, 0);
    g_target = (struct qp_kernel_target){prop.major * 10 + prop.minor, prop.multiProcessorCount};
    const char *commit = getenv("QP_COMMIT");
    printf("bench_linear: %s (sm_%d%d, %d SMs, SM clock %d MHz, memory clock %d MHz, %d-bit bus, "
           "L2 %d MiB); "
           "commit %s; CPU threads %d; %s%s, %d timed replays\n",
           prop.name, prop.major, prop.minor, prop.multiProcessorCount, clock_khz / 1000,
           mem_khz / 1000, prop.memoryBusWidth, prop.l2CacheSize >> 20,
           commit ? commit : "(QP_COMMIT unset)", qp_cpu_thread_count(),
           g_defaults ? "default launches" : "default and candidate launches",
           g_check ? ", checked against the CPU op" : "", g_reps);
    CK(cudaStreamCreateWithFlags(&g_st, cudaStreamNonBlocking));
    if (cublasCreate(&g_blas) != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "bench_linear: cublasCreate failed\n");
        return 1;
    }
    const double c0 = read_ceiling_tbs("start");
    g_ceiling_tbs = c0;
    struct reference ref;
    memset(&ref, 0, sizeof ref);
    for (int mi = 0; mi < N_MODELS; mi++)
        for (int nd = 0; nd < NODE_COUNT; nd++)
            for (int ti = 0; ti < N_TYPES; ti++) {
                if (!g_model_on[mi] || !g_node_on[nd] || !g_type_on[ti]) continue;
                struct shape s;
                if (!shape_make(&k_models[mi], (enum node)nd, k_types[ti], &s)) continue;
                struct bench b;
                bench_init(&b, &s, (size_t)prop.l2CacheSize);
                fprintf(stderr, "%s %s %s: %.1f MB of weights, %d copies\n", s.m->name,
                        k_node_names[nd], qp_ggml_type_name(s.type), b.wbytes / 1e6, b.copies);
                for (int ni = 0; ni < N_NTOK; ni++)
                    if (g_ntok_on[ni]) bench_shape_ntok(&b, k_ntoks[ni], &ref);
                reference_free(&ref);
                bench_free(&b);
            }
    const double c1 = read_ceiling_tbs("end");
    if (c1 > g_ceiling_tbs) g_ceiling_tbs = c1;
    printf("ceiling used: %.3f TB/s (start %.3f, end %.3f)\n", g_ceiling_tbs, c0, c1);
    print_tables();
    if (g_failed) printf("\n%d launches failed (listed above as FAIL)\n", g_failed);
    if (g_scratch) CK(cudaFree(g_scratch));
    cublasDestroy(g_blas);
    CK(cudaStreamDestroy(g_st));
    free(g_res);
    return g_failed ? 1 : 0;
}
