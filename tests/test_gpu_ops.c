/* test_gpu_ops.c — every CUDA kernel of the registry (include/qp_kernels.h) against its op's CPU
 * reference (qp_cpu_ops) on fresh random inputs: the real Qwen2.5-0.5B shapes (896 wide, 14/2
 * heads of 64, FFN 4864, vocab 151936), the 1.5B model's FFN (1536 wide, 8960), plus awkward
 * ones (1 row, odd rows, 33 columns for float weights), every weight type, every prologue and epilogue. Each case runs once on the CPU and
 * then on the GPU with every kernel that can run it (qp_kernel_check): with its default launch
 * (`test_gpu_ops`), or with every launch shape `qplan tune` would time, with and without PDL
 * (`test_gpu_ops --all`).
 *
 * Each GPU output is poisoned (0xFF bytes: NaN) before the run, so an unwritten element fails;
 * NaN never passes. Error measure: rel = ||gpu - cpu||_2 / ||cpu||_2 over the whole output, with
 * the bound per path stated at its table below (docs/cuda-kernels.md explains them). A planted
 * wrong output must be caught by the same checker, or the test fails.
 *
 * Weight types the CPU backend cannot read yet are reported as "no CPU reference" (not a pass,
 * not a skip: listed at the end). Without a GPU the test prints why and exits 77 (skipped).
 * The seed is printed; QP_SEED=<n> replays a run.
 */
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qp_cpu.h"
#include "qp_cuda.h"
#include "qp_ggml.h"
#include "qp_kernels.h"
#include "qp_ops.h"

/* Bounds on rel (see the file comment). fp32 paths: both sides accumulate in f32 in different
 * orders over at most 8960 terms: ~sqrt(n) * 2^-24 ~ 1e-6 expected, 2e-5 allowed. The cuBLAS
 * path rounds x and the weights to f16 (2^-11 relative each): ~5e-4 expected, 3e-3 allowed. */
#define TOL_F32 QP_KERNEL_TOL_F32
#define TOL_GEMM QP_KERNEL_TOL_F16
#define MAX_CHUNK 1024 /* rows of the test step state */

static int g_fail, g_pass;
static bool g_all;                     /* --all: every candidate launch, PDL on and off */
static struct qp_kernel_target g_target; /* the device */
static char g_noref[1024];
static uint64_t g_rng;

static uint32_t rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 11);
}
static float frand(void) { return (float)(rnd() & 0xFFFFFF) / (float)0x800000 - 1.0f; } /* [-1, 1) */

#define CK(x)                                                                                      \
    do {                                                                                           \
        cudaError_t e_ = (x);                                                                      \
        if (e_ != cudaSuccess) {                                                                   \
            printf("FATAL %s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));       \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static void *dalloc(size_t n) {
    void *p = NULL;
    CK(cudaMalloc(&p, n ? n : 1));
    return p;
}
static void *dup_to_dev(const void *h, size_t n) {
    void *d = dalloc(n);
    CK(cudaMemcpy(d, h, n, cudaMemcpyHostToDevice));
    return d;
}
static float *frand_buf(size_t n) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = frand();
    return p;
}

/* Compares n floats; prints one line; returns true on pass. */
static bool compare(const char *what, const float *gpu, const float *cpu, size_t n, double tol) {
    double d2 = 0, c2 = 0, maxd = 0;
    size_t nan = 0, first_bad = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        if (isnan(gpu[i]) || isinf(gpu[i])) {
            if (!nan) first_bad = i;
            nan++;
            continue;
        }
        double d = (double)gpu[i] - cpu[i];
        d2 += d * d;
        c2 += (double)cpu[i] * cpu[i];
        if (fabs(d) > maxd) maxd = fabs(d);
    }
    double rel = c2 > 0 ? sqrt(d2 / c2) : sqrt(d2);
    bool ok = !nan && rel <= tol;
    printf("%-4s %-58s rel %.2e (tol %.0e) max|d| %.2e", ok ? "ok" : "FAIL", what, rel, tol, maxd);
    if (nan) printf("  %zu NaN/inf (first at %zu: gpu %g cpu %g)", nan, first_bad, gpu[first_bad], cpu[first_bad]);
    printf("\n");
    return ok;
}
static void check(const char *what, const float *gpu, const float *cpu, size_t n, double tol) {
    if (compare(what, gpu, cpu, n, tol)) g_pass++;
    else g_fail++;
}

/* ---- weights ---- */
static uint16_t rand_f16(int emin, int emax, bool sign) { /* 2^(e-15), e in [emin, emax] */
    int e = emin + (int)(rnd() % (uint32_t)(emax - emin + 1));
    return (uint16_t)((sign && (rnd() & 1) ? 0x8000 : 0) | (e << 10) | (rnd() & 0x3FF));
}

/* Random bytes of a valid block layout: every f16 scale finite and of moderate size. */
static void *rand_weight(int32_t type, int64_t rows, int64_t cols, size_t *row_bytes) {
    if (!qp_ggml_row_bytes(type, cols, row_bytes)) {
        printf("FATAL: %s cannot have %lld columns\n", qp_ggml_type_name(type), (long long)cols);
        exit(1);
    }
    size_t nb = *row_bytes * (size_t)rows;
    uint8_t *w = malloc(nb);
    for (size_t i = 0; i < nb; i++) w[i] = (uint8_t)rnd();
    const struct qp_ggml_type_info *ti = qp_ggml_type_info(type);
    size_t bb = ti->block_bytes, nblk = nb / bb;
    for (size_t b = 0; b < nblk; b++) {
        uint8_t *p = w + b * bb;
        uint16_t h;
        switch (type) {
        case QP_GGML_F32: { float f = frand(); memcpy(p, &f, 4); break; }
        case QP_GGML_F16: h = rand_f16(10, 15, true); memcpy(p, &h, 2); break;
        case QP_GGML_BF16: { int e = 122 + (int)(rnd() % 6); h = (uint16_t)((rnd() & 1) << 15 | e << 7 | (rnd() & 0x7F)); memcpy(p, &h, 2); break; }
        case QP_GGML_Q4_0: case QP_GGML_Q5_0: case QP_GGML_Q8_0: h = rand_f16(9, 12, false); memcpy(p, &h, 2); break;
        case QP_GGML_Q4_1: case QP_GGML_Q5_1: case QP_GGML_Q4_K: case QP_GGML_Q5_K:
            h = rand_f16(9, 12, false); memcpy(p, &h, 2);
            h = rand_f16(9, 12, type == QP_GGML_Q4_1 || type == QP_GGML_Q5_1); memcpy(p + 2, &h, 2);
            break;
        case QP_GGML_Q2_K: h = rand_f16(9, 12, false); memcpy(p + 80, &h, 2); h = rand_f16(9, 12, false); memcpy(p + 82, &h, 2); break;
        case QP_GGML_Q3_K: h = rand_f16(7, 10, false); memcpy(p + 108, &h, 2); break;
        case QP_GGML_Q6_K: h = rand_f16(5, 8, false); memcpy(p + 208, &h, 2); break;
        default: break;
        }
    }
    return w;
}

static const int32_t k_types[] = {QP_GGML_F32, QP_GGML_F16, QP_GGML_BF16, QP_GGML_Q8_0, QP_GGML_Q4_0,
                                  QP_GGML_Q4_1, QP_GGML_Q5_0, QP_GGML_Q5_1, QP_GGML_Q2_K, QP_GGML_Q3_K,
                                  QP_GGML_Q4_K, QP_GGML_Q5_K, QP_GGML_Q6_K};
#define N_TYPES ((int)(sizeof k_types / sizeof k_types[0]))

static bool is_k(int32_t t) { return qp_ggml_type_info(t)->block_elems == 256; }

static bool cpu_has(int32_t t, const char *what) {
    if (qp_cpu_weight_type_supported(t)) return true;
    char line[128];
    snprintf(line, sizeof line, " %s/%s", qp_ggml_type_name(t), what);
    if (strlen(g_noref) + strlen(line) < sizeof g_noref) strcat(g_noref, line);
    return false;
}

/* ---- the step state, mirrored host/device ---- */
struct step_pair {
    struct qp_step *h, *d;
    size_t bytes;
};
static struct step_pair step_new(void) {
    struct step_pair s;
    s.bytes = sizeof(struct qp_step) + MAX_CHUNK * sizeof(struct qp_step_row);
    s.h = calloc(1, s.bytes);
    s.d = dalloc(s.bytes);
    return s;
}
/* A chunk of n_tok rows of one sequence in slot 0 at positions pos.., random tokens < vocab. */
static void step_set(struct step_pair *s, int pos, int n_tok, int vocab) {
    s->h->n_tok = n_tok;
    s->h->n_out = 1;
    for (int i = 0; i < MAX_CHUNK; i++)
        s->h->rows[i] = (struct qp_step_row){vocab > 0 ? (int32_t)(rnd() % (uint32_t)vocab) : 0, pos + i, 0, -1};
    CK(cudaMemcpy(s->d, s->h, s->bytes, cudaMemcpyHostToDevice));
}

/* A batch of n rows, each its own sequence: row t in slot t at a random position below ctx; the
 * last row a padding row (slot -1) when pad. */
static void step_set_batch(struct step_pair *s, int n, int ctx, bool pad) {
    s->h->n_tok = n;
    s->h->n_out = n;
    for (int i = 0; i < MAX_CHUNK; i++) s->h->rows[i] = (struct qp_step_row){0, (int32_t)(rnd() % (uint32_t)ctx), i, -1};
    if (pad) s->h->rows[n - 1].slot = -1;
    CK(cudaMemcpy(s->d, s->h, s->bytes, cudaMemcpyHostToDevice));
}

/* Runs c on the CPU (host pointers); must succeed. */
static bool run_cpu(const char *what, struct qp_op_args *c) {
    struct qp_error err = {{0}};
    enum qp_status s = qp_cpu_ops[c->op](c, &err);
    if (s != QP_OK) {
        printf("FAIL %-58s CPU op: %s\n", what, err.msg);
        g_fail++;
    }
    return s == QP_OK;
}

#define MAX_CHOICES 96
/* Chunks up to this many tokens are where the compiler gives the matvec and decode-attention
 * kernels (QP_COMPILE_DEFAULT_MATVEC_TOKENS); beyond, the kernels made for many tokens. */
#define MATVEC_TOKENS 8

/* The kernels the compiler's defaults give a node like g (compiler/select.c), in order of
 * preference within each group: every matvec for a few tokens (mmv_batch, and mmv_stream where
 * the device has it, mmv on any card), the first attention kernel that can run it, gemm for many
 * tokens. */
static int default_kernels(const struct qp_op_args *g, int32_t *ids) {
    const bool few = g->n_tok <= MATVEC_TOKENS;
    switch (g->op) {
    case QP_OP_LINEAR:
        if (!few) return ids[0] = QP_KERNEL_GEMM, 1;
        int n = 0;
        if (g->n_tok > 1) ids[n++] = QP_KERNEL_MMV_BATCH; /* the LM head's, and mmv_stream's fallback */
        if (g->epilogue == QP_EPILOGUE_ARGMAX) {
            ids[n++] = QP_KERNEL_MMV_ARGMAX;
            ids[n++] = QP_KERNEL_MMVQ;
            return n;
        }
        ids[n++] = QP_KERNEL_MMV_STREAM;
        ids[n++] = QP_KERNEL_MMV;
        ids[n++] = QP_KERNEL_MMVQ; /* where its types allow: the plan may name it (qplan tune) */
        return n;
    case QP_OP_ATTENTION:
        ids[0] = few ? QP_KERNEL_ATTN_GQA : QP_KERNEL_ATTN_PREFILL;
        ids[1] = QP_KERNEL_ATTN_SPLIT;
        return -2; /* the first that can run it */
    default:
        for (int32_t k = 1; k < QP_KERNEL_COUNT; k++)
            if (qp_kernel_desc(k)->op == g->op) return ids[0] = k, 1;
        return 0;
    }
}

/* The kernels and launches to run g with: the kernels the compiler's defaults give such a node,
 * each with its default launch (PDL where the device has it); or with --all every candidate of
 * qp_kernel_candidates (every kernel that can run it, whatever the tokens, with every launch shape
 * qplan tune times), with PDL on and off. */
static int gpu_choices(const struct qp_op_args *g, struct qp_kernel_choice *out) {
    int n = 0;
    const bool pdl = g_target.sm >= 90;
    if (!g_all) {
        int32_t ids[5];
        const int nd = default_kernels(g, ids);
        for (int i = 0; i < (nd < 0 ? -nd : nd); i++) {
            struct qp_launch l;
            struct qp_error e;
            if (qp_kernel_default_launch(ids[i], g, &g_target, pdl, &l, &e) != QP_OK) continue;
            out[n++] = (struct qp_kernel_choice){ids[i], l};
            if (nd < 0) break;
        }
        return n;
    }
    n = qp_kernel_candidates(g, &g_target, pdl, out, MAX_CHOICES);
    if (n > MAX_CHOICES) n = MAX_CHOICES;
    if (pdl) {
        int m = n;
        for (int i = 0; i < m && n < MAX_CHOICES; i++) {
            out[n] = out[i];
            out[n++].launch.pdl = 0;
        }
    }
    return n;
}

/* "what [kernel {block, rows_per_block, split, grid, pdl}]" */
static void choice_name(char *buf, size_t n, const char *what, const struct qp_kernel_choice *k) {
    const struct qp_launch *l = &k->launch;
    snprintf(buf, n, "%s [%s {%d,%d,%d,%d,%d}]", what, qp_kernel_desc(k->kernel)->name, l->block,
             l->rows_per_block, l->split, l->grid, l->pdl);
}

/* Runs g on the GPU with choice k (scratch as the kernel plans it); must succeed. */
static bool run_gpu(const char *what, struct qp_op_args *g, const struct qp_kernel_choice *k) {
    struct qp_error err = {{0}};
    g->kernel = k->kernel;
    g->launch = k->launch;
    g->scratch_bytes = SIZE_MAX;
    if (qp_kernel_check(k->kernel, g, &g_target, &err) != QP_OK) {
        printf("FAIL %-58s kernel check: %s\n", what, err.msg);
        g_fail++;
        return false;
    }
    struct qp_cuda_scratch_layout l;
    if (qp_cuda_scratch_plan(g, &l, &err) != QP_OK) {
        printf("FAIL %-58s scratch plan: %s\n", what, err.msg);
        g_fail++;
        return false;
    }
    g->scratch = l.total ? dalloc(l.total) : NULL;
    g->scratch_bytes = l.total;
    if (l.total) CK(cudaMemset(g->scratch, 0xFF, l.total));
    enum qp_status s = qp_cuda_ops[g->op](g, &err);
    cudaError_t e = cudaDeviceSynchronize();
    if (g->scratch) CK(cudaFree(g->scratch));
    g->scratch = NULL;
    const int32_t ran = qp_cuda_last_kernel();
    if (s != QP_OK || e != cudaSuccess || ran != k->kernel) {
        printf("FAIL %-58s CUDA op: %s%s%s\n", what, s != QP_OK ? err.msg : "", e != cudaSuccess ? cudaGetErrorString(e) : "",
               s == QP_OK && e == cudaSuccess ? "ran another kernel than the one named" : "");
        g_fail++;
        return false;
    }
    return true;
}

static float *poisoned(size_t n) {
    float *d = dalloc(n * sizeof(float));
    CK(cudaMemset(d, 0xFF, n * sizeof(float)));
    return d;
}
static float *download(const void *d, size_t n) {
    float *h = malloc(n * sizeof(float));
    CK(cudaMemcpy(h, d, n * sizeof(float), cudaMemcpyDeviceToHost));
    return h;
}
/* KV cache bytes -> floats (F16 converted on the host with the GPU's own rounding already done) */
static float half_to_float(uint16_t h) {
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 0x3FF, bits;
    if (e == 0) {
        float f = ldexpf((float)m, -24);
        return s ? -f : f;
    }
    if (e == 31) bits = s | 0x7F800000u | (m << 13);
    else bits = s | ((e + 112) << 23) | (m << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}
static float *kv_to_f32(const void *h, int32_t type, size_t n) {
    float *o = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) o[i] = type == QP_GGML_F16 ? half_to_float(((const uint16_t *)h)[i]) : ((const float *)h)[i];
    return o;
}

/* ---- LINEAR ---- */
struct lin_case {
    int n_parts;
    int64_t rows[3];
    int64_t cols;
    int n_tok;
    enum qp_prologue pro;
    enum qp_epilogue epi;
    bool bias;
    int32_t kv_type;
    enum x_pattern { X_UNIFORM, X_RANGE, X_NAN, X_INF } xpat; /* what x holds (shape_x) */
    bool v_q8; /* part 2 in Q8_0 whatever the case's type: a mixed node, as attn_v in the real model */
};

/* n_tok rows of cols floats of the pattern: inputs a decode matvec must carry whole, whatever
 * form it stages x in (a scale per 32-element block is the usual trick of quantized dots):
 *   X_UNIFORM  uniform in [-3, 3)
 *   X_RANGE    block 0 all zero, block 1 subnormal (multiples of 2^-149 up to 2^-130), every
 *              other block scaled by 2^k, k uniform in [-40, 40], and within a block each element
 *              by 2^-j, j uniform in [0, 24]
 *   X_NAN      uniform, one NaN at a random place of each token: every output must be NaN or inf
 *   X_INF      uniform, one +inf at a random place of each token: likewise */
static void shape_x(float *x, int n_tok, int64_t cols, enum x_pattern pat) {
    const size_t n = (size_t)n_tok * (size_t)cols;
    for (size_t i = 0; i < n; i++) x[i] = 3.0f * frand();
    for (int t = 0; pat == X_RANGE && t < n_tok; t++)
        for (int64_t b = 0; b < cols / 32; b++) {
            const int k = (int)(rnd() % 81) - 40;
            for (float *v = x + (size_t)t * cols + b * 32, *e = v + 32; v < e; v++) {
                if (b == 0) *v = 0.0f;
                else if (b == 1) *v = ldexpf((float)((int)(rnd() % 2001) - 1000), -149 + (int)(rnd() % 9));
                else *v = ldexpf(*v, k - (int)(rnd() % 25));
            }
        }
    for (int t = 0; (pat == X_NAN || pat == X_INF) && t < n_tok; t++)
        x[(size_t)t * cols + rnd() % (uint64_t)cols] = pat == X_NAN ? NAN : INFINITY;
}

/* Every element of gpu and of cpu not finite (NaN or inf in x reaches every output). */
static void check_nonfinite(const char *what, const float *gpu, const float *cpu, size_t n) {
    size_t fin_g = 0, fin_c = 0;
    for (size_t i = 0; i < n; i++) {
        fin_g += isfinite(gpu[i]) != 0;
        fin_c += isfinite(cpu[i]) != 0;
    }
    bool ok = !fin_g && !fin_c;
    printf("%-4s %-58s finite outputs: gpu %zu cpu %zu (of %zu; 0 expected)\n", ok ? "ok" : "FAIL", what, fin_g, fin_c, n);
    ok ? g_pass++ : g_fail++;
}

/* When set, test_linear runs its n tokens as a batch: row t in slot t of an n-slot cache, at a random
 * position, the last row padding (the rope_kv epilogue's cache writes per row and slot). */
static bool g_batch_rows;

static void test_linear(int32_t type, const struct lin_case *lc) {
    char what[160];
    static const char *const xpat_name[] = {"", " x:range", " x:NaN", " x:inf"};
    snprintf(what, sizeof what, "linear %s%s %lldx%lld%s %s=%d %s/%s%s%s", qp_ggml_type_name(type),
             lc->v_q8 ? "+Q8_0" : "", (long long)(lc->rows[0] + lc->rows[1] + lc->rows[2]), (long long)lc->cols,
             lc->n_parts > 1 ? " (parts)" : "", g_batch_rows ? "batch" : "n", lc->n_tok, qp_prologue_name(lc->pro),
             qp_epilogue_name(lc->epi),
             lc->bias ? " +bias" : "", xpat_name[lc->xpat]);
    if (!cpu_has(type, "linear") || (lc->v_q8 && !cpu_has(QP_GGML_Q8_0, "linear"))) return;
    static cublasHandle_t blas;
    if (!blas && cublasCreate(&blas) != CUBLAS_STATUS_SUCCESS) {
        printf("FATAL: cublasCreate failed\n");
        exit(1);
    }
    struct qp_op_args c = {0}, g;
    struct step_pair sp = step_new();
    const int n = lc->n_tok;
    const int n_head = 14, n_kv = 2, hd = 64, ctx = 256, slots = g_batch_rows ? n : 1;
    int pos = (int)(rnd() % 150);
    if (g_batch_rows) step_set_batch(&sp, n, ctx, n > 1);
    else step_set(&sp, pos, n, 0);
    c.op = QP_OP_LINEAR;
    c.n_tok = n;
    c.step = sp.h;
    c.in_w = lc->cols;
    c.n_parts = lc->n_parts;
    c.prologue = lc->pro;
    c.epilogue = lc->epi;
    c.eps = 1e-6f;
    int64_t rows_total = 0;
    void *wh[3] = {0}, *wd[3] = {0};
    float *bh[3] = {0}, *bd[3] = {0};
    for (int i = 0; i < lc->n_parts; i++) {
        size_t rb;
        const int32_t ti = i == 2 && lc->v_q8 ? QP_GGML_Q8_0 : type;
        wh[i] = rand_weight(ti, lc->rows[i], lc->cols, &rb);
        wd[i] = dup_to_dev(wh[i], rb * (size_t)lc->rows[i]);
        c.w[i] = (struct qp_weight){ti, wh[i], lc->rows[i], lc->cols, rb};
        if (lc->bias) {
            bh[i] = frand_buf((size_t)lc->rows[i]);
            bd[i] = dup_to_dev(bh[i], (size_t)lc->rows[i] * 4);
            c.bias[i] = bh[i];
        }
        rows_total += lc->rows[i];
    }
    int64_t out_w = lc->epi == QP_EPILOGUE_SWIGLU ? lc->rows[0] : lc->epi == QP_EPILOGUE_ROPE_KV ? lc->rows[0] : rows_total;
    c.out_w = out_w;
    /* inputs with a non-trivial scale, so the RMS norm matters */
    float *x = malloc((size_t)n * lc->cols * sizeof *x);
    shape_x(x, n, lc->cols, lc->xpat);
    float *norm = frand_buf((size_t)lc->cols);
    float *res = frand_buf((size_t)n * out_w);
    c.in0 = x;
    c.norm = norm;
    c.in1 = lc->epi == QP_EPILOGUE_RESIDUAL ? res : NULL;
    float *out_c = malloc((size_t)n * out_w * 4);
    c.out = out_c;
    size_t kvn = (size_t)slots * ctx * n_kv * hd, kvb = kvn * (lc->kv_type == QP_GGML_F16 ? 2 : 4);
    void *kc_h = NULL, *vc_h = NULL, *kc_d = NULL, *vc_d = NULL;
    if (lc->epi == QP_EPILOGUE_ROPE_KV) {
        c.n_head = n_head;
        c.n_head_kv = n_kv;
        c.head_dim = hd;
        c.rope_base = 1e6f;
        kc_h = malloc(kvb);
        vc_h = malloc(kvb);
        for (size_t i = 0; i < kvb; i++) ((uint8_t *)kc_h)[i] = (uint8_t)rnd();
        if (lc->kv_type == QP_GGML_F16)
            for (size_t i = 0; i < kvn; i++) ((uint16_t *)kc_h)[i] = rand_f16(10, 15, true);
        else
            for (size_t i = 0; i < kvn; i++) ((float *)kc_h)[i] = frand();
        memcpy(vc_h, kc_h, kvb);
        kc_d = dup_to_dev(kc_h, kvb);
        vc_d = dup_to_dev(vc_h, kvb);
        c.kv = (struct qp_kv_ref){kc_h, vc_h, lc->kv_type, ctx, (int64_t)n_kv * hd, slots};
    }
    g = c;
    g.step = sp.d;
    g.blas = blas;
    for (int i = 0; i < lc->n_parts; i++) {
        g.w[i].data = wd[i];
        g.bias[i] = bd[i];
    }
    g.in0 = dup_to_dev(x, (size_t)n * lc->cols * 4);
    g.norm = dup_to_dev(norm, (size_t)lc->cols * 4);
    g.in1 = c.in1 ? dup_to_dev(res, (size_t)n * out_w * 4) : NULL;
    g.out = poisoned((size_t)n * out_w);
    if (kc_d) g.kv = (struct qp_kv_ref){kc_d, vc_d, lc->kv_type, ctx, (int64_t)n_kv * hd, slots};
    g.batch = c.batch = g_batch_rows;
    struct qp_kernel_choice ch[MAX_CHOICES];
    const int nch = run_cpu(what, &c) ? gpu_choices(&g, ch) : -1;
    if (nch == 0) {
        printf("FAIL %-58s no CUDA kernel can run it\n", what);
        g_fail++;
    }
    for (int ci = 0; ci < nch; ci++) {
        char wk[256];
        choice_name(wk, sizeof wk, what, &ch[ci]);
        if (ch[ci].kernel == QP_KERNEL_GEMM && lc->xpat == X_RANGE) {
            /* its f16 operands hold |x| <= 65504, and these inputs reach 2^40 (docs/cuda-kernels.md) */
            printf("--   %-58s not run: gemm rounds x to f16\n", wk);
            continue;
        }
        if (ch[ci].kernel == QP_KERNEL_MMVQ && lc->xpat == X_RANGE) {
            /* within a block of 32 these inputs span 2^24, and mmvq keeps 2^-7 of the block's largest */
            printf("--   %-58s not run: mmvq rounds x to 8 bits per 32 values\n", wk);
            continue;
        }
        CK(cudaMemset(g.out, 0xFF, (size_t)n * out_w * sizeof(float)));
        if (!run_gpu(wk, &g, &ch[ci])) continue;
        const double tol = qp_kernel_tolerance(ch[ci].kernel);
        float *o = download(g.out, (size_t)n * out_w);
        if (lc->xpat == X_NAN || lc->xpat == X_INF) check_nonfinite(wk, o, out_c, (size_t)n * out_w);
        else check(wk, o, out_c, (size_t)n * out_w, tol);
        if (kc_d) {
            void *kg = malloc(kvb), *vg = malloc(kvb);
            CK(cudaMemcpy(kg, kc_d, kvb, cudaMemcpyDeviceToHost));
            CK(cudaMemcpy(vg, vc_d, kvb, cudaMemcpyDeviceToHost));
            float *a1 = kv_to_f32(kg, lc->kv_type, kvn), *a2 = kv_to_f32(kc_h, lc->kv_type, kvn);
            float *b1 = kv_to_f32(vg, lc->kv_type, kvn), *b2 = kv_to_f32(vc_h, lc->kv_type, kvn);
            /* f16 caches: one f16 rounding step apart at most where the f32 values straddle */
            double ktol = lc->kv_type == QP_GGML_F16 ? (tol > 1e-3 ? tol : 1e-3) : tol;
            char w2[200];
            snprintf(w2, sizeof w2, "  K cache (%s) of %s", qp_ggml_type_name(lc->kv_type), qp_ggml_type_name(type));
            check(w2, a1, a2, kvn, ktol);
            snprintf(w2, sizeof w2, "  V cache (%s) of %s", qp_ggml_type_name(lc->kv_type), qp_ggml_type_name(type));
            check(w2, b1, b2, kvn, ktol);
            free(a1); free(a2); free(b1); free(b2); free(kg); free(vg);
        }
        if (lc->epi == QP_EPILOGUE_ARGMAX) { /* every row's token */
            struct qp_step *st = malloc(sp.bytes);
            CK(cudaMemcpy(st, sp.d, sp.bytes, cudaMemcpyDeviceToHost));
            bool ok = true;
            int bad_t = -1;
            /* mmvq's logits are x's 8-bit rounding apart from the CPU's (its tolerance): its token must
             * be the first maximum of its own logits, which it also writes */
            const bool own = ch[ci].kernel == QP_KERNEL_MMVQ;
            for (int t = 0; t < n; t++) {
                const float *row = (own ? o : out_c) + (size_t)t * out_w;
                int ct = sp.h->rows[t].next;
                if (own)
                    for (int64_t r = ct = 0; r < out_w; r++)
                        if (row[r] > row[ct]) ct = (int)r;
                const int gt = st->rows[t].next;
                /* a different index passes only as a near-tie within the output tolerance */
                const bool same = gt == ct || (gt >= 0 && gt < out_w && fabsf(row[gt] - row[ct]) <=
                                  (ch[ci].kernel == QP_KERNEL_GEMM ? 1e-2f : 1e-4f) * fabsf(row[ct]) + 1e-6f);
                if (!same && bad_t < 0) bad_t = t;
                ok = ok && same;
            }
            printf("%-4s %-58s next token of every row (first mismatch: %d)\n", ok ? "ok" : "FAIL", "  argmax epilogue", bad_t);
            ok ? g_pass++ : g_fail++;
            free(st);
        }
        free(o);
    }
    for (int i = 0; i < lc->n_parts; i++) {
        free(wh[i]); CK(cudaFree(wd[i])); free(bh[i]); if (bd[i]) CK(cudaFree(bd[i]));
    }
    CK(cudaFree((void *)g.in0)); CK(cudaFree((void *)g.norm)); if (g.in1) CK(cudaFree((void *)g.in1));
    CK(cudaFree(g.out)); CK(cudaFree(sp.d));
    if (kc_d) { CK(cudaFree(kc_d)); CK(cudaFree(vc_d)); free(kc_h); free(vc_h); }
    free(x); free(norm); free(res); free(out_c); free(sp.h);
}

/* ---- the other ops ---- */
static void test_embed(int32_t type, int64_t rows, int64_t cols, int n) {
    char what[160];
    snprintf(what, sizeof what, "embed %s %lldx%lld n=%d", qp_ggml_type_name(type), (long long)rows, (long long)cols, n);
    if (!cpu_has(type, "embed")) return;
    struct step_pair sp = step_new();
    step_set(&sp, 0, n, (int)rows);
    size_t rb;
    void *wh = rand_weight(type, rows, cols, &rb), *wd = dup_to_dev(wh, rb * (size_t)rows);
    struct qp_op_args c = {0}, g;
    c.op = QP_OP_EMBED;
    c.n_tok = n;
    c.step = sp.h;
    c.n_parts = 1;
    c.w[0] = (struct qp_weight){type, wh, rows, cols, rb};
    c.out_w = cols;
    float *oc = malloc((size_t)n * cols * 4);
    c.out = oc;
    g = c;
    g.step = sp.d;
    g.w[0].data = wd;
    g.out = poisoned((size_t)n * cols);
    struct qp_kernel_choice ch[MAX_CHOICES];
    const int nch = run_cpu(what, &c) ? gpu_choices(&g, ch) : -1;
    if (nch == 0) {
        printf("FAIL %-58s no CUDA kernel can run it\n", what);
        g_fail++;
    }
    for (int ci = 0; ci < nch; ci++) {
        char wk[256];
        choice_name(wk, sizeof wk, what, &ch[ci]);
        CK(cudaMemset(g.out, 0xFF, (size_t)n * cols * sizeof(float)));
        if (!run_gpu(wk, &g, &ch[ci])) continue;
        float *o = download(g.out, (size_t)n * cols);
        check(wk, o, oc, (size_t)n * cols, 1e-6);
        free(o);
    }
    free(wh); free(oc); free(sp.h);
    CK(cudaFree(wd)); CK(cudaFree(g.out)); CK(cudaFree(sp.d));
}

/* Elementwise-style ops on activations: rms_norm, swiglu, add, rope. */
static void test_act(enum qp_op op, int n, int64_t w, bool inplace) {
    char what[160];
    const struct qp_op_desc *d = qp_op_desc(op);
    snprintf(what, sizeof what, "%s n=%d w=%lld%s", d ? d->name : "?", n, (long long)w, inplace ? " in place" : "");
    struct step_pair sp = step_new();
    step_set(&sp, (int)(rnd() % 100000), n, 0);
    size_t nel = (size_t)n * w;
    float *a = frand_buf(nel), *b = frand_buf(nel), *nw = frand_buf((size_t)w);
    for (size_t i = 0; i < nel; i++) a[i] *= 4.0f; /* silu over a wider range */
    struct qp_op_args c = {0}, g;
    c.op = op;
    c.n_tok = n;
    c.step = sp.h;
    c.in0 = a;
    c.in1 = b;
    c.in_w = w;
    c.out_w = w;
    c.norm = nw;
    c.eps = 1e-6f;
    float *oc = malloc(nel * 4);
    if (op == QP_OP_ROPE) {
        c.n_head = (int)(w / 64);
        c.head_dim = 64;
        c.rope_base = 1e6f;
        memcpy(oc, a, nel * 4);
        if (inplace) c.in0 = NULL;
    }
    c.out = oc;
    g = c;
    g.step = sp.d;
    float *ad = dup_to_dev(a, nel * 4);
    g.in0 = ad;
    g.in1 = dup_to_dev(b, nel * 4);
    g.norm = dup_to_dev(nw, (size_t)w * 4);
    if (op == QP_OP_ROPE && inplace) {
        g.in0 = NULL;
        g.out = ad;
    } else {
        g.out = poisoned(nel);
    }
    struct qp_kernel_choice ch[MAX_CHOICES];
    const int nch = run_cpu(what, &c) ? gpu_choices(&g, ch) : -1;
    if (nch == 0) {
        printf("FAIL %-58s no CUDA kernel can run it\n", what);
        g_fail++;
    }
    for (int ci = 0; ci < nch; ci++) {
        char wk[256];
        choice_name(wk, sizeof wk, what, &ch[ci]);
        if (g.out == ad) CK(cudaMemcpy(ad, a, nel * 4, cudaMemcpyHostToDevice)); /* in place: the input again */
        else CK(cudaMemset(g.out, 0xFF, nel * sizeof(float)));
        if (!run_gpu(wk, &g, &ch[ci])) continue;
        float *o = download(g.out, nel);
        check(wk, o, oc, nel, op == QP_OP_ROPE ? 1e-6 : TOL_F32);
        free(o);
    }
    if (g.out != ad) CK(cudaFree(g.out));
    CK(cudaFree(ad)); CK(cudaFree((void *)g.in1)); CK(cudaFree((void *)g.norm)); CK(cudaFree(sp.d));
    free(a); free(b); free(nw); free(oc); free(sp.h);
}

/* The attention of q (n rows of qw floats) by c on the CPU, then by g with every kernel choice on
 * the GPU, each against the CPU's output (the caches and the step state already set in both). */
static void attention_on_choices(const char *what, struct qp_op_args *c, struct qp_op_args *g, const float *q, int n,
                                 int64_t qw) {
    c->in_w = c->out_w = qw;
    float *oc = malloc((size_t)n * qw * 4);
    c->out = oc;
    g->in0 = dup_to_dev(q, (size_t)n * qw * 4);
    g->in1 = NULL;
    g->in_w = g->out_w = qw;
    g->out = poisoned((size_t)n * qw);
    struct qp_kernel_choice ch[MAX_CHOICES];
    const int nch = run_cpu(what, c) ? gpu_choices(g, ch) : -1; /* -1: the CPU's failure is counted */
    if (nch == 0) {
        printf("FAIL %-58s no CUDA kernel can run it\n", what);
        g_fail++;
    }
    for (int ci = 0; ci < nch; ci++) {
        char wk[256];
        choice_name(wk, sizeof wk, what, &ch[ci]);
        CK(cudaMemset(g->out, 0xFF, (size_t)n * qw * sizeof(float)));
        if (!run_gpu(wk, g, &ch[ci])) continue;
        float *o = download(g->out, (size_t)n * qw);
        check(wk, o, oc, (size_t)n * qw, TOL_F32);
        free(o);
    }
    CK(cudaFree((void *)g->in0));
    CK(cudaFree(g->out));
    free(oc);
}

/* kv_write then attention on a cache pre-filled with random rows below pos. */
static void test_attention(int n, int pos, int ctx, int n_head, int n_kv, int hd, int32_t kvt) {
    char what[160];
    snprintf(what, sizeof what, "kv_write+attention %s n=%d pos=%d ctx=%d heads %d/%d hd %d", qp_ggml_type_name(kvt), n, pos,
             ctx, n_head, n_kv, hd);
    struct step_pair sp = step_new();
    step_set(&sp, pos, n, 0);
    const int64_t kvd = (int64_t)n_kv * hd, qw = (int64_t)n_head * hd;
    size_t kvn = (size_t)ctx * kvd, es = kvt == QP_GGML_F16 ? 2 : 4;
    void *kh = malloc(kvn * es), *vh = malloc(kvn * es);
    for (size_t i = 0; i < kvn; i++) {
        if (kvt == QP_GGML_F16) {
            ((uint16_t *)kh)[i] = rand_f16(12, 15, true);
            ((uint16_t *)vh)[i] = rand_f16(12, 15, true);
        } else {
            ((float *)kh)[i] = frand() * 2.0f;
            ((float *)vh)[i] = frand();
        }
    }
    void *kd = dup_to_dev(kh, kvn * es), *vd = dup_to_dev(vh, kvn * es);
    float *q = frand_buf((size_t)n * qw), *k = frand_buf((size_t)n * kvd), *v = frand_buf((size_t)n * kvd);
    for (size_t i = 0; i < (size_t)n * qw; i++) q[i] *= 2.0f;
    struct qp_op_args c = {0}, g;
    c.op = QP_OP_KV_WRITE;
    c.n_tok = n;
    c.step = sp.h;
    c.in0 = k;
    c.in1 = v;
    c.in_w = kvd;
    c.n_head = n_head;
    c.n_head_kv = n_kv;
    c.head_dim = hd;
    c.kv = (struct qp_kv_ref){kh, vh, kvt, ctx, kvd, 1};
    g = c;
    g.step = sp.d;
    g.in0 = dup_to_dev(k, (size_t)n * kvd * 4);
    g.in1 = dup_to_dev(v, (size_t)n * kvd * 4);
    g.kv = (struct qp_kv_ref){kd, vd, kvt, ctx, kvd, 1};
    struct qp_kernel_choice kw[MAX_CHOICES];
    const int nkw = run_cpu(what, &c) ? gpu_choices(&g, kw) : 0;
    bool ok = nkw > 0;
    for (int ci = 0; ci < nkw && ok; ci++) { /* each writes the same rows */
        char wk[256];
        choice_name(wk, sizeof wk, what, &kw[ci]);
        ok = run_gpu(wk, &g, &kw[ci]);
    }
    CK(cudaFree((void *)g.in0)); CK(cudaFree((void *)g.in1));
    if (ok) {
        void *kg = malloc(kvn * es);
        CK(cudaMemcpy(kg, kd, kvn * es, cudaMemcpyDeviceToHost));
        float *a1 = kv_to_f32(kg, kvt, kvn), *a2 = kv_to_f32(kh, kvt, kvn);
        char w2[200];
        snprintf(w2, sizeof w2, "  kv_write K rows (%s)", qp_ggml_type_name(kvt));
        check(w2, a1, a2, kvn, 0.0); /* same f32 in, same rounding: exact */
        free(a1); free(a2); free(kg);
        c.op = g.op = QP_OP_ATTENTION;
        c.in0 = q;
        c.in1 = NULL;
        attention_on_choices(what, &c, &g, q, n, qw);
    }
    CK(cudaFree(kd)); CK(cudaFree(vd)); CK(cudaFree(sp.d));
    free(kh); free(vh); free(q); free(k); free(v); free(sp.h);
}

/* A batch: row t in slot t of a cache of `slots` regions pre-filled with random rows, each at its
 * own position (the last row padding when pad); kv_write then attention, against the CPU. */
static void test_attention_batch(int n, int slots, int ctx, int n_head, int n_kv, int hd, int32_t kvt, bool pad) {
    char what[160];
    snprintf(what, sizeof what, "kv_write+attention %s batch=%d%s slots=%d ctx=%d heads %d/%d hd %d",
             qp_ggml_type_name(kvt), n, pad ? " (last padding)" : "", slots, ctx, n_head, n_kv, hd);
    struct step_pair sp = step_new();
    step_set_batch(&sp, n, ctx, pad);
    const int64_t kvd = (int64_t)n_kv * hd, qw = (int64_t)n_head * hd;
    size_t kvn = (size_t)slots * ctx * kvd, es = kvt == QP_GGML_F16 ? 2 : 4;
    void *kh = malloc(kvn * es), *vh = malloc(kvn * es);
    for (size_t i = 0; i < kvn; i++) {
        if (kvt == QP_GGML_F16) {
            ((uint16_t *)kh)[i] = rand_f16(12, 15, true);
            ((uint16_t *)vh)[i] = rand_f16(12, 15, true);
        } else {
            ((float *)kh)[i] = frand() * 2.0f;
            ((float *)vh)[i] = frand();
        }
    }
    void *kd = dup_to_dev(kh, kvn * es), *vd = dup_to_dev(vh, kvn * es);
    float *q = frand_buf((size_t)n * qw), *k = frand_buf((size_t)n * kvd), *v = frand_buf((size_t)n * kvd);
    struct qp_op_args c = {0}, g;
    c.op = QP_OP_KV_WRITE;
    c.batch = 1;
    c.n_tok = n;
    c.step = sp.h;
    c.in0 = k;
    c.in1 = v;
    c.in_w = kvd;
    c.n_head = n_head;
    c.n_head_kv = n_kv;
    c.head_dim = hd;
    c.kv = (struct qp_kv_ref){kh, vh, kvt, ctx, kvd, slots};
    g = c;
    g.step = sp.d;
    g.in0 = dup_to_dev(k, (size_t)n * kvd * 4);
    g.in1 = dup_to_dev(v, (size_t)n * kvd * 4);
    g.kv = (struct qp_kv_ref){kd, vd, kvt, ctx, kvd, slots};
    struct qp_kernel_choice ch[MAX_CHOICES];
    int nch = run_cpu(what, &c) ? gpu_choices(&g, ch) : 0;
    bool ok = nch > 0;
    for (int ci = 0; ci < nch && ok; ci++) {
        char wk[256];
        choice_name(wk, sizeof wk, what, &ch[ci]);
        ok = run_gpu(wk, &g, &ch[ci]);
    }
    CK(cudaFree((void *)g.in0)); CK(cudaFree((void *)g.in1));
    if (ok) {
        void *kg = malloc(kvn * es);
        CK(cudaMemcpy(kg, kd, kvn * es, cudaMemcpyDeviceToHost));
        float *a1 = kv_to_f32(kg, kvt, kvn), *a2 = kv_to_f32(kh, kvt, kvn);
        check("  kv_write K rows of every slot (padding row: none)", a1, a2, kvn, 0.0);
        free(a1); free(a2); free(kg);
        c.op = g.op = QP_OP_ATTENTION;
        c.in0 = q;
        c.in1 = NULL;
        attention_on_choices(what, &c, &g, q, n, qw);
    }
    CK(cudaFree(kd)); CK(cudaFree(vd)); CK(cudaFree(sp.d));
    free(kh); free(vh); free(q); free(k); free(v); free(sp.h);
}

static void test_argmax(int n, int64_t vocab, bool plant_tie) {
    char what[160];
    snprintf(what, sizeof what, "argmax n=%d vocab=%lld%s", n, (long long)vocab, plant_tie ? " (planted tie)" : "");
    struct step_pair sp = step_new();
    step_set(&sp, 0, n, 0);
    float *x = frand_buf((size_t)n * vocab);
    if (plant_tie) { /* two equal maxima in the last row: the first must win */
        int64_t i = (int64_t)(rnd() % (uint32_t)(vocab / 2)), j = i + 1 + (int64_t)(rnd() % (uint32_t)(vocab / 2 - 1));
        x[(size_t)(n - 1) * vocab + i] = x[(size_t)(n - 1) * vocab + j] = 7.5f;
    }
    struct qp_op_args c = {0}, g;
    c.op = QP_OP_ARGMAX;
    c.n_tok = n;
    c.step = sp.h;
    c.in0 = x;
    c.in_w = vocab;
    g = c;
    g.step = sp.d;
    g.in0 = dup_to_dev(x, (size_t)n * vocab * 4);
    struct qp_step *start = malloc(sp.bytes); /* the device state each run starts from */
    memcpy(start, sp.h, sp.bytes);
    struct qp_kernel_choice ch[MAX_CHOICES];
    const int nch = run_cpu(what, &c) ? gpu_choices(&g, ch) : -1;
    if (nch == 0) {
        printf("FAIL %-58s no CUDA kernel can run it\n", what);
        g_fail++;
    }
    for (int ci = 0; ci < nch; ci++) {
        char wk[256];
        choice_name(wk, sizeof wk, what, &ch[ci]);
        CK(cudaMemcpy(sp.d, start, sp.bytes, cudaMemcpyHostToDevice)); /* next tokens back to -1 */
        if (!run_gpu(wk, &g, &ch[ci])) continue;
        struct qp_step *st = malloc(sp.bytes);
        CK(cudaMemcpy(st, sp.d, sp.bytes, cudaMemcpyDeviceToHost));
        bool ok = true;
        for (int t = 0; t < n; t++) ok = ok && st->rows[t].next == sp.h->rows[t].next;
        printf("%-4s %-58s next token of the last row gpu %d cpu %d, and of every other row\n", ok ? "ok" : "FAIL", wk,
               st->rows[n - 1].next, sp.h->rows[n - 1].next);
        ok ? g_pass++ : g_fail++;
        free(st);
    }
    CK(cudaFree((void *)g.in0)); CK(cudaFree(sp.d)); free(x); free(sp.h); free(start);
}

static void test_step_advance(void) {
    struct step_pair sp = step_new();
    step_set(&sp, 41, 7, 1000);
    sp.h->rows[0].next = 1234; /* a chunk: its argmax wrote row 0 */
    CK(cudaMemcpy(sp.d, sp.h, sp.bytes, cudaMemcpyHostToDevice));
    struct qp_op_args c = {0}, g;
    c.op = QP_OP_STEP_ADVANCE;
    c.n_tok = 7;
    c.step = sp.h;
    g = c;
    g.step = sp.d;
    const char *what = "step_advance";
    struct qp_step *start = malloc(sp.bytes); /* the device state each run starts from */
    memcpy(start, sp.h, sp.bytes);
    struct qp_kernel_choice ch[MAX_CHOICES];
    const int nch = run_cpu(what, &c) ? gpu_choices(&g, ch) : -1;
    if (nch == 0) {
        printf("FAIL %-58s no CUDA kernel can run it\n", what);
        g_fail++;
    }
    for (int ci = 0; ci < nch; ci++) {
        char wk[256];
        choice_name(wk, sizeof wk, what, &ch[ci]);
        CK(cudaMemcpy(sp.d, start, sp.bytes, cudaMemcpyHostToDevice));
        if (!run_gpu(wk, &g, &ch[ci])) continue;
        struct qp_step *st = malloc(sp.bytes);
        CK(cudaMemcpy(st, sp.d, sp.bytes, cudaMemcpyDeviceToHost));
        bool ok = memcmp(st, sp.h, sp.bytes) == 0 && st->rows[0].pos == 48 && st->n_tok == 1 && st->rows[0].token == 1234;
        printf("%-4s %-58s pos %d n_tok %d token %d\n", ok ? "ok" : "FAIL", "step_advance", st->rows[0].pos, st->n_tok,
               st->rows[0].token);
        ok ? g_pass++ : g_fail++;
        free(st);
    }
    free(start);
    CK(cudaFree(sp.d)); free(sp.h);
}

/* The checker itself: a planted wrong element and a planted NaN must both be caught. */
static void test_checker(void) {
    float a[64], b[64];
    for (int i = 0; i < 64; i++) a[i] = b[i] = frand();
    a[17] += 0.05f;
    bool c1 = compare("planted wrong element (must report FAIL)", a, b, 64, TOL_F32);
    a[17] = b[17];
    a[3] = NAN;
    bool c2 = compare("planted NaN (must report FAIL)", a, b, 64, 1e30);
    bool ok = !c1 && !c2;
    printf("%-4s %-58s\n", ok ? "ok" : "FAIL", "the checker catches both planted faults");
    ok ? g_pass++ : g_fail++;
}

int main(int argc, char **argv) {
    g_all = argc > 1 && strcmp(argv[1], "--all") == 0;
    int ndev = 0;
    cudaError_t e = cudaGetDeviceCount(&ndev);
    if (e != cudaSuccess || ndev == 0) {
        printf("skip: no CUDA device (%s)\n", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        return 77;
    }
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    const char *seed_env = getenv("QP_SEED");
    g_rng = seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t)time(NULL) * 2654435761u;
    if (!g_rng) g_rng = 1;
    g_target = (struct qp_kernel_target){prop.major * 10 + prop.minor, prop.multiProcessorCount};
    printf("device: %s (sm_%d%d, %d SMs); seed %llu (QP_SEED to replay); kernels: %s\n", prop.name, prop.major,
           prop.minor, prop.multiProcessorCount, (unsigned long long)g_rng,
           g_all ? "every launch shape qplan tune tries, PDL on and off" : "each with its default launch");

    test_checker();
    for (int ti = 0; ti < N_TYPES; ti++) {
        int32_t t = k_types[ti];
        bool k = is_k(t), fl = t == QP_GGML_F32 || t == QP_GGML_F16 || t == QP_GGML_BF16;
        int64_t cols = k ? 4864 : 896; /* K-quants need 256-multiples: ffn_down's 4864 */
        test_embed(t, 1000, k ? 1024 : 896, 5);
        struct lin_case real = {1, {k ? 896 : 4864, 0, 0}, cols, 1, QP_PROLOGUE_RMS_NORM, QP_EPILOGUE_NONE, false, 0, X_UNIFORM, false};
        test_linear(t, &real);
        struct lin_case res = {1, {k ? 896 : 896, 0, 0}, cols, 3, QP_PROLOGUE_NONE, QP_EPILOGUE_RESIDUAL, true, 0, X_UNIFORM, false};
        test_linear(t, &res);
        if (!fl) { /* long rows, residual: the matvec's split-K instance (37 rows: a partial last block) */
            struct lin_case lng = {1, {37, 0, 0}, 4864, 2, QP_PROLOGUE_NONE, QP_EPILOGUE_RESIDUAL, true, 0, X_UNIFORM, false};
            test_linear(t, &lng);
        }
        struct lin_case odd = {2, {1, 37, 0}, k ? 256 : 96, 2, QP_PROLOGUE_RMS_NORM, QP_EPILOGUE_NONE, true, 0, X_UNIFORM, false};
        test_linear(t, &odd);
        /* one token with ARGMAX, the LM head's shape of call, on every type */
        struct lin_case head1 = {1, {4000, 0, 0}, k ? 1024 : 896, 1, QP_PROLOGUE_RMS_NORM, QP_EPILOGUE_ARGMAX, false, 0, X_UNIFORM, false};
        test_linear(t, &head1);
        struct lin_case gm = {1, {k ? 896 : 4864, 0, 0}, cols, 33, QP_PROLOGUE_RMS_NORM, QP_EPILOGUE_NONE, true, 0, X_UNIFORM, false};
        test_linear(t, &gm);
        struct lin_case sw = {2, {k ? 896 : 4864, k ? 896 : 4864, 0}, cols, 1, QP_PROLOGUE_RMS_NORM, QP_EPILOGUE_SWIGLU, false, 0, X_UNIFORM, false};
        test_linear(t, &sw);
        if (!k) {
            struct lin_case qkv = {3, {896, 128, 128}, 896, 1, QP_PROLOGUE_RMS_NORM, QP_EPILOGUE_ROPE_KV, true, QP_GGML_F16, X_UNIFORM, false};
            test_linear(t, &qkv);
        }
        if (fl) {
            struct lin_case awk = {1, {5, 0, 0}, 33, 2, QP_PROLOGUE_RMS_NORM, QP_EPILOGUE_NONE, true, 0, X_UNIFORM, false};
            test_linear(t, &awk);
            awk.n_tok = 20;
            test_linear(t, &awk);
        }
    }
    /* extreme x (shape_x) on the types of the common GGUF mixes, 1 and 2 tokens, with and
     * without the norm */
    const int32_t mix_types[] = {QP_GGML_Q4_0, QP_GGML_Q5_0, QP_GGML_Q8_0, QP_GGML_Q4_K, QP_GGML_Q6_K};
    for (size_t i = 0; i < sizeof mix_types / sizeof mix_types[0]; i++)
        for (int pat = X_RANGE; pat <= X_INF; pat++) {
            const int32_t t = mix_types[i];
            const int64_t cols = is_k(t) ? 4864 : 896;
            struct lin_case xc = {1, {896, 0, 0}, cols, 1, QP_PROLOGUE_RMS_NORM, QP_EPILOGUE_NONE, false, 0, pat, false};
            test_linear(t, &xc);
            xc.n_tok = 2;
            xc.pro = QP_PROLOGUE_NONE;
            test_linear(t, &xc);
            if (pat == X_RANGE) { /* and through the LM head's kernel (one token, ARGMAX) */
                struct lin_case hc = {1, {4000, 0, 0}, is_k(t) ? 1024 : 896, 1, QP_PROLOGUE_RMS_NORM, QP_EPILOGUE_ARGMAX, false, 0, pat, false};
                test_linear(t, &hc);
            }
        }
    /* the 1.5B model's shapes, where the compiler gives one token to mmv (rows over 1,024 columns,
     * compiler/select.c) and mmv_stream runs in waves of blocks: ffn gate+up and ffn_down, Q4_K */
    {
        struct lin_case sw15 = {2, {8960, 8960, 0}, 1536, 1, QP_PROLOGUE_RMS_NORM, QP_EPILOGUE_SWIGLU, false, 0, X_UNIFORM, false};
        test_linear(QP_GGML_Q4_K, &sw15);
        struct lin_case down15 = {1, {1536, 0, 0}, 8960, 1, QP_PROLOGUE_NONE, QP_EPILOGUE_RESIDUAL, false, 0, X_UNIFORM, false};
        test_linear(QP_GGML_Q4_K, &down15);
    }
    /* fused epilogues and paths on the types of the real model */
    const int32_t real_types[] = {QP_GGML_Q5_0, QP_GGML_Q8_0, QP_GGML_F16};
    for (int i = 0; i < 3; i++) {
        int32_t t = real_types[i];
        struct lin_case qkv = {3, {896, 128, 128}, 896, 12, QP_PROLOGUE_RMS_NORM, QP_EPILOGUE_ROPE_KV, true, QP_GGML_F32, X_UNIFORM, false};
        test_linear(t, &qkv);
        qkv.n_tok = 1;
        test_linear(t, &qkv);
        if (t != QP_GGML_Q8_0) { /* a mixed node, v in Q8_0 (the real model's attn_v): one launch, a type per row */
            struct lin_case mx = {3, {896, 128, 128}, 896, 1, QP_PROLOGUE_RMS_NORM, QP_EPILOGUE_ROPE_KV, true, QP_GGML_F16, X_UNIFORM, true};
            test_linear(t, &mx);
            mx.n_tok = 3;
            test_linear(t, &mx);
            if (t == QP_GGML_Q5_0) test_linear(QP_GGML_Q4_0, &mx);
        }
        struct lin_case sw = {2, {4864, 4864, 0}, 896, 16, QP_PROLOGUE_RMS_NORM, QP_EPILOGUE_SWIGLU, false, 0, X_UNIFORM, false};
        test_linear(t, &sw);
        struct lin_case res = {1, {896, 0, 0}, 896, 17, QP_PROLOGUE_NONE, QP_EPILOGUE_RESIDUAL, true, 0, X_UNIFORM, false};
        test_linear(t, &res);
        /* the ARGMAX epilogue on 2 tokens (the argmax of the last), at 896 and 96 columns (Q8_0:
         * 952- and 102-byte rows) */
        struct lin_case am = {1, {3001, 0, 0}, 896, 2, QP_PROLOGUE_RMS_NORM, QP_EPILOGUE_ARGMAX, false, 0, X_UNIFORM, false};
        test_linear(t, &am);
        am.cols = 96;
        test_linear(t, &am);
    }
    {
        struct lin_case head = {1, {151936, 0, 0}, 896, 1, QP_PROLOGUE_RMS_NORM, QP_EPILOGUE_ARGMAX, false, 0, X_UNIFORM, false};
        int32_t t = qp_cpu_weight_type_supported(QP_GGML_Q8_0) ? QP_GGML_Q8_0 : QP_GGML_F16;
        test_linear(t, &head);
        head.n_tok = 9;
        test_linear(t, &head);
    }
    test_act(QP_OP_RMS_NORM, 3, 896, false);
    test_act(QP_OP_RMS_NORM, 2, 33, false);
    test_act(QP_OP_SWIGLU, 3, 4864, false);
    test_act(QP_OP_SWIGLU, 1, 33, false);
    test_act(QP_OP_ADD, 3, 896, false);
    test_act(QP_OP_ADD, 5, 33, false);
    test_act(QP_OP_ROPE, 1, 896, true);
    test_act(QP_OP_ROPE, 7, 128, false);
    for (int kt = 0; kt < 2; kt++) {
        int32_t kvt = kt ? QP_GGML_F32 : QP_GGML_F16;
        test_attention(1, (int)(rnd() % 4000), 4096, 14, 2, 64, kvt);
        test_attention(1, 0, 4096, 14, 2, 64, kvt);
        /* decode split 64 (ctx 16384): all chunks live, a few, a chunk boundary (16 positions) */
        test_attention(1, 16383, 16384, 14, 2, 64, kvt);
        test_attention(1, 700, 16384, 14, 2, 64, kvt);
        test_attention(2, 14, 16384, 14, 2, 64, kvt);
        test_attention(8, 4088, 4096, 14, 2, 64, kvt);
        test_attention(1, 1500, 2048, 16, 2, 128, kvt);
        /* decode GQA's short-chunk path (one warp per query head): head_dim 128 with 8 query heads
         * per KV head, and 2 tokens at head_dim 64 crossing a chunk boundary */
        test_attention(1, 100, 2048, 16, 2, 128, kvt);
        test_attention(2, 30, 4096, 8, 1, 128, kvt);
        test_attention(40, 100, 512, 14, 2, 64, kvt);
        test_attention(3, 17, 64, 3, 1, 32, kvt);
        test_attention(1, 200, 300, 4, 4, 128, kvt);
        /* attn_prefill.cu: head_dim 128 with a token count that is not a multiple of its 16
         * rows per block, and a whole 512-token chunk from position 0 (16 key tiles) */
        test_attention(37, 100, 512, 8, 2, 128, kvt);
        test_attention(512, 0, 512, 14, 2, 64, kvt);
        /* decode GQA's tensor-core path (chunks of >= 64 positions): 65-position chunks whose
         * last is 6 positions long (not a whole group of 16), 128 at head_dim 128 with 8 query
         * heads per KV head, 3 tokens over 601-position chunks */
        test_attention(1, 4100, 16384, 14, 2, 64, kvt);
        test_attention(1, 2047, 2048, 16, 2, 128, kvt);
        test_attention(3, 3000, 4096, 14, 2, 64, kvt);
    }
    /* batches: a row per sequence, each its own slot and position, padding rows */
    for (int kt = 0; kt < 2; kt++) {
        const int32_t kvt = kt ? QP_GGML_F32 : QP_GGML_F16;
        test_attention_batch(4, 4, 512, 14, 2, 64, kvt, true);
        test_attention_batch(3, 5, 2048, 16, 2, 128, kvt, false);
    }
    g_batch_rows = true;
    {
        struct lin_case qkv = {3, {896, 128, 128}, 896, 4, QP_PROLOGUE_RMS_NORM, QP_EPILOGUE_ROPE_KV, true, QP_GGML_F16, X_UNIFORM, false};
        test_linear(QP_GGML_Q5_0, &qkv);
        struct lin_case am = {1, {3001, 0, 0}, 896, 4, QP_PROLOGUE_RMS_NORM, QP_EPILOGUE_ARGMAX, false, 0, X_UNIFORM, false};
        test_linear(QP_GGML_Q8_0, &am);
        /* the 0.5B model's batched decode nodes at a batch of 8 (mmv_batch): gate+up, ffn_down
         * (4,864 columns: groups of tokens by default), attn_output, the LM head */
        struct lin_case sw = {2, {4864, 4864, 0}, 896, 8, QP_PROLOGUE_RMS_NORM, QP_EPILOGUE_SWIGLU, false, 0, X_UNIFORM, false};
        test_linear(QP_GGML_Q5_0, &sw);
        struct lin_case down = {1, {896, 0, 0}, 4864, 8, QP_PROLOGUE_NONE, QP_EPILOGUE_RESIDUAL, true, 0, X_UNIFORM, false};
        test_linear(QP_GGML_Q6_K, &down);
        struct lin_case out = {1, {896, 0, 0}, 896, 8, QP_PROLOGUE_NONE, QP_EPILOGUE_RESIDUAL, true, 0, X_UNIFORM, false};
        test_linear(QP_GGML_Q5_0, &out);
        out.n_tok = 3; /* a group that is not a power of two */
        test_linear(QP_GGML_Q8_0, &out);
        struct lin_case head = {1, {151936, 0, 0}, 896, 8, QP_PROLOGUE_RMS_NORM, QP_EPILOGUE_ARGMAX, false, 0, X_UNIFORM, false};
        test_linear(qp_cpu_weight_type_supported(QP_GGML_Q8_0) ? QP_GGML_Q8_0 : QP_GGML_F16, &head);
    }
    g_batch_rows = false;
    test_argmax(1, 151936, false);
    test_argmax(2, 151936, true);
    test_argmax(1, 1, false);
    test_step_advance();

    if (g_noref[0]) printf("no CPU reference yet (weights the CPU backend cannot read):%s\n", g_noref);
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
