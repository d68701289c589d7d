/* test_ops.c — every CPU op, through qp_cpu_ops[], against straightforward double-precision
 * math on fresh random inputs, at Qwen2.5-0.5B's shapes (dim 896, 14 heads / 2 KV heads,
 * head_dim 64, FFN 4864) and awkward ones (1 token, 7 tokens, one head, rows longer than the
 * 16384-element chunk, more than 2048 positions), KV caches in F16 and F32. Plus one planted
 * wrong result that the checker must reject.
 *
 * Tolerances are worst-case rounding bounds of the f32 computation, with u = FLT_EPSILON/2:
 *   dot products of K terms summed in 8 interleaved partial sums: (K/8 + 4) * 2u * sum|a_i b_i|;
 *   element-wise ops (rms scale, rope rotation, silu, add): a few u times the magnitudes.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops_util.h"
#include "qp_ggml.h"
#include "qp_quant.h"

#define U ((double)FLT_EPSILON / 2)

/* Every type the CPU backend reads (kernels/cpu/quant.c); Q4_K_M files of Qwen2.5 mix Q5_0,
 * Q8_0, Q4_K, Q6_K and F32. */
static const int32_t weight_types[] = {QP_GGML_F32,  QP_GGML_F16,  QP_GGML_BF16, QP_GGML_Q4_0, QP_GGML_Q4_1,
                                       QP_GGML_Q5_0, QP_GGML_Q5_1, QP_GGML_Q8_0, QP_GGML_Q2_K, QP_GGML_Q3_K,
                                       QP_GGML_Q4_K, QP_GGML_Q5_K, QP_GGML_Q6_K};
#define N_TYPES ((int)(sizeof weight_types / sizeof weight_types[0]))

static struct qp_step *new_step(int32_t pos, int32_t n_tok, int32_t max_tok) {
    struct qp_step *s = tu_alloc(sizeof *s + sizeof(struct qp_step_row) * (size_t)max_tok);
    s->n_tok = n_tok;
    s->n_out = 1;
    for (int32_t t = 0; t < max_tok; t++) s->rows[t] = (struct qp_step_row){0, pos + t, 0, -1};
    return s;
}

static enum qp_status run_op(const struct qp_op_args *a) {
    struct qp_error err = {{0}};
    enum qp_status s = qp_cpu_ops[a->op](a, &err);
    if (s != QP_OK) printf("  op %s failed: %s: %s\n", qp_op_desc(a->op)->name, qp_status_str(s), err.msg);
    return s;
}

/* Tolerance of an f32 dot product of k terms with the given sum of |products|. */
static double dot_tol(int64_t k, double abs_sum) {
    return ((double)k / 8 + 4) * 2 * U * abs_sum + 1e-30;
}

static void test_embed(void) {
    for (int ti = 0; ti < N_TYPES; ti++) {
        struct tu_weight tw;
        const int64_t D = qp_ggml_type_info(weight_types[ti])->block_elems == 256 ? 1024 : 896;
        tu_weight_rand(&tw, weight_types[ti], 1000, D, 1.0f);
        float *wf = tu_weight_f32(&tw);
        int32_t n = 7;
        struct qp_step *st = new_step(0, n, n);
        for (int t = 0; t < n; t++) st->rows[t].token = (int32_t)tu_int(0, 999);
        st->rows[0].token = 999; /* the last row */
        float *out = tu_alloc(sizeof(float) * (size_t)n * D);
        struct qp_op_args a = {.op = QP_OP_EMBED, .n_tok = n, .step = st, .out = out, .out_w = D, .n_parts = 1,
                               .w = {tw.w}};
        tu_expect(run_op(&a) == QP_OK, "embed %s runs", qp_ggml_type_name(tw.w.type));
        double *want = tu_alloc(sizeof(double) * (size_t)n * D);
        for (int t = 0; t < n; t++)
            for (int c = 0; c < D; c++) want[t * D + c] = wf[(int64_t)st->rows[t].token * D + c];
        char what[64];
        snprintf(what, sizeof what, "embed %s 7 tokens", qp_ggml_type_name(tw.w.type));
        tu_check(what, out, want, NULL, 0.0, n * D);
        free(want), free(out), free(st), free(wf);
        tu_weight_free(&tw);
    }
}

static void test_rms_norm(int64_t n, int64_t dim) {
    float *x = tu_alloc(sizeof(float) * (size_t)(n * dim)), *w = tu_alloc(sizeof(float) * (size_t)dim);
    float *out = tu_alloc(sizeof(float) * (size_t)(n * dim));
    double *want = tu_alloc(sizeof(double) * (size_t)(n * dim)), *tol = tu_alloc(sizeof(double) * (size_t)(n * dim));
    tu_fill(x, n * dim, -3.0f, 3.0f);
    tu_fill(w, dim, -2.0f, 2.0f);
    float eps = 1e-6f;
    for (int64_t t = 0; t < n; t++) {
        double ss = 0;
        for (int64_t i = 0; i < dim; i++) ss += (double)x[t * dim + i] * x[t * dim + i];
        double inv = 1.0 / sqrt(ss / (double)dim + eps);
        for (int64_t i = 0; i < dim; i++) {
            want[t * dim + i] = x[t * dim + i] * inv * w[i];
            /* sum of squares: dot bound (relative, all terms positive); its sqrt halves it;
             * then the division, sqrt and two products: 6u more */
            tol[t * dim + i] = (((double)dim / 8 + 4) * 2 * U / 2 + 8 * U) * fabs(want[t * dim + i]) + 1e-30;
        }
    }
    struct qp_op_args a = {.op = QP_OP_RMS_NORM, .n_tok = (int32_t)n, .in0 = x, .out = out, .in_w = dim,
                           .out_w = dim, .norm = w, .eps = eps};
    run_op(&a);
    char what[64];
    snprintf(what, sizeof what, "rms_norm n=%lld dim=%lld", (long long)n, (long long)dim);
    tu_check(what, out, want, tol, 0, n * dim);
    free(x), free(w), free(out), free(want), free(tol);
}

/* linear (epilogue none or residual) vs double math; returns the test's mismatches. With
 * plant, one result element is moved by 4x its tolerance first: the check must then fail. */
static int64_t test_linear(int32_t type, int64_t n, int64_t rows, int64_t cols, bool bias, bool residual,
                           bool plant) {
    struct tu_weight tw;
    tu_weight_rand(&tw, type, rows, cols, 1.0f);
    float *wf = tu_weight_f32(&tw);
    float *x = tu_alloc(sizeof(float) * (size_t)(n * cols)), *b = tu_alloc(sizeof(float) * (size_t)rows);
    float *res = tu_alloc(sizeof(float) * (size_t)(n * rows)), *out = tu_alloc(sizeof(float) * (size_t)(n * rows));
    double *want = tu_alloc(sizeof(double) * (size_t)(n * rows)), *tol = tu_alloc(sizeof(double) * (size_t)(n * rows));
    tu_fill(x, n * cols, -1.0f, 1.0f);
    tu_fill(b, rows, -1.0f, 1.0f);
    tu_fill(res, n * rows, -4.0f, 4.0f);
    for (int64_t t = 0; t < n; t++)
        for (int64_t r = 0; r < rows; r++) {
            double s = 0, as = 0;
            for (int64_t c = 0; c < cols; c++) {
                double p = (double)wf[r * cols + c] * x[t * cols + c];
                s += p;
                as += fabs(p);
            }
            double chunks = (double)((cols + 16383) / 16384); /* chunk sums added: one more rounding each */
            double v = s + (bias ? b[r] : 0.0), e = dot_tol(cols, as) + chunks * U * as;
            if (bias) e += U * (fabs(v) + as);
            if (residual) {
                v += res[t * rows + r];
                e += U * (fabs(v) + as + 4);
            }
            want[t * rows + r] = v;
            tol[t * rows + r] = e;
        }
    struct qp_op_args a = {.op = QP_OP_LINEAR, .n_tok = (int32_t)n, .in0 = x, .in1 = residual ? res : NULL,
                           .out = out, .in_w = cols, .out_w = rows, .n_parts = 1, .w = {tw.w},
                           .bias = {bias ? b : NULL}, .epilogue = residual ? QP_EPILOGUE_RESIDUAL : QP_EPILOGUE_NONE};
    run_op(&a);
    char what[128];
    snprintf(what, sizeof what, "%slinear %s n=%lld %lldx%lld%s%s", plant ? "planted wrong " : "",
             qp_ggml_type_name(type), (long long)n, (long long)rows, (long long)cols, bias ? " +bias" : "",
             residual ? " +residual" : "");
    if (plant) {
        int64_t i = tu_int(0, n * rows - 1);
        out[i] += (float)(4 * tol[i]) + 1e-6f;
        tu_planting = true;
        int64_t bad = tu_check(what, out, want, tol, 0, n * rows);
        tu_planting = false;
        tu_expect(bad == 1, "the checker rejects the planted wrong element (%lld mismatch reported)", (long long)bad);
    } else {
        tu_check(what, out, want, tol, 0, n * rows);
    }
    free(wf), free(x), free(b), free(res), free(out), free(want), free(tol);
    tu_weight_free(&tw);
    return 0;
}

static void test_rope(int64_t n, int32_t n_head, int32_t hd, int32_t pos0, float base) {
    int64_t w = (int64_t)n_head * hd;
    float *x = tu_alloc(sizeof(float) * (size_t)(n * w)), *x0 = tu_alloc(sizeof(float) * (size_t)(n * w));
    double *want = tu_alloc(sizeof(double) * (size_t)(n * w)), *tol = tu_alloc(sizeof(double) * (size_t)(n * w));
    tu_fill(x0, n * w, -2.0f, 2.0f);
    memcpy(x, x0, sizeof(float) * (size_t)(n * w));
    for (int64_t t = 0; t < n; t++)
        for (int h = 0; h < n_head; h++)
            for (int i = 0; i < hd / 2; i++) {
                double th = (double)(pos0 + t) * pow((double)base, -2.0 * i / hd);
                int64_t o = t * w + (int64_t)h * hd;
                double a = x0[o + i], b = x0[o + i + hd / 2];
                want[o + i] = a * cos(th) - b * sin(th);
                want[o + i + hd / 2] = a * sin(th) + b * cos(th);
                /* cos, sin rounded to f32 (u each), two products and a sum: 3u */
                tol[o + i] = tol[o + i + hd / 2] = 4 * U * (fabs(a) + fabs(b)) + 1e-30;
            }
    union tu_step sb;
    tu_step_chunk(&sb, pos0, (int32_t)n);
    struct qp_op_args a = {.op = QP_OP_ROPE, .n_tok = (int32_t)n, .step = &sb.s, .out = x, .out_w = w,
                           .n_head = n_head, .head_dim = hd, .rope_base = base};
    run_op(&a);
    char what[96];
    snprintf(what, sizeof what, "rope n=%lld heads=%d hd=%d pos=%d", (long long)n, n_head, hd, pos0);
    tu_check(what, x, want, tol, 0, n * w);
    free(x), free(x0), free(want), free(tol);
}

/* A KV cache slice of ctx rows, filled with random values (or NaN beyond `fill` rows). */
static struct qp_kv_ref new_kv(int32_t type, int64_t ctx, int64_t kv_dim, int64_t fill) {
    size_t es = type == QP_GGML_F16 ? 2 : 4;
    struct qp_kv_ref kv = {.k = tu_alloc(es * (size_t)(ctx * kv_dim)), .v = tu_alloc(es * (size_t)(ctx * kv_dim)),
                           .type = type, .ctx = ctx, .kv_dim = kv_dim, .slots = 1};
    for (int64_t i = 0; i < ctx * kv_dim; i++) {
        float k = i < fill * kv_dim ? tu_uniform(-1.0f, 1.0f) : NAN;
        float v = i < fill * kv_dim ? tu_uniform(-1.0f, 1.0f) : NAN;
        if (type == QP_GGML_F16) {
            ((uint16_t *)kv.k)[i] = qp_fp32_to_fp16(k);
            ((uint16_t *)kv.v)[i] = qp_fp32_to_fp16(v);
        } else {
            ((float *)kv.k)[i] = k;
            ((float *)kv.v)[i] = v;
        }
    }
    return kv;
}

static double kv_get(const struct qp_kv_ref *kv, const void *c, int64_t i) {
    return kv->type == QP_GGML_F16 ? qp_fp16_to_fp32(((const uint16_t *)c)[i]) : ((const float *)c)[i];
}

static void test_kv_write(int32_t type, int64_t n, int32_t pos0) {
    int64_t kvd = 128, ctx = pos0 + n + 3;
    struct qp_kv_ref kv = new_kv(type, ctx, kvd, ctx); /* pre-filled: rows outside must survive */
    size_t es = type == QP_GGML_F16 ? 2 : 4, bytes = es * (size_t)(ctx * kvd);
    void *k_before = tu_alloc(bytes), *v_before = tu_alloc(bytes);
    memcpy(k_before, kv.k, bytes);
    memcpy(v_before, kv.v, bytes);
    float *k = tu_alloc(sizeof(float) * (size_t)(n * kvd)), *v = tu_alloc(sizeof(float) * (size_t)(n * kvd));
    tu_fill(k, n * kvd, -100.0f, 100.0f);
    tu_fill(v, n * kvd, -1e-3f, 1e-3f);
    union tu_step sb;
    tu_step_chunk(&sb, pos0, (int32_t)n);
    struct qp_op_args a = {.op = QP_OP_KV_WRITE, .n_tok = (int32_t)n, .step = &sb.s, .in0 = k, .in1 = v,
                           .in_w = kvd, .n_head = 2, .n_head_kv = 2, .head_dim = 64, .kv = kv};
    run_op(&a);
    /* Written rows: F32 exact; F16 the nearest half (relative error <= 2^-11 in the normal range,
     * absolute <= 2^-25 in the subnormal range of the small V values). */
    double *wk = tu_alloc(sizeof(double) * (size_t)(n * kvd)), *wv = tu_alloc(sizeof(double) * (size_t)(n * kvd));
    double *tk = tu_alloc(sizeof(double) * (size_t)(n * kvd)), *tv = tu_alloc(sizeof(double) * (size_t)(n * kvd));
    float *gk = tu_alloc(sizeof(float) * (size_t)(n * kvd)), *gv = tu_alloc(sizeof(float) * (size_t)(n * kvd));
    for (int64_t i = 0; i < n * kvd; i++) {
        wk[i] = k[i], wv[i] = v[i];
        double h = type == QP_GGML_F16 ? ldexp(1.0, -11) : 0.0, s = type == QP_GGML_F16 ? ldexp(1.0, -25) : 0.0;
        tk[i] = h * fabs(k[i]) + s;
        tv[i] = h * fabs(v[i]) + s;
        gk[i] = (float)kv_get(&kv, kv.k, pos0 * kvd + i);
        gv[i] = (float)kv_get(&kv, kv.v, pos0 * kvd + i);
    }
    char what[96];
    snprintf(what, sizeof what, "kv_write %s K n=%lld pos=%d", qp_ggml_type_name(type), (long long)n, pos0);
    tu_check(what, gk, wk, tk, 0, n * kvd);
    snprintf(what, sizeof what, "kv_write %s V n=%lld pos=%d", qp_ggml_type_name(type), (long long)n, pos0);
    tu_check(what, gv, wv, tv, 0, n * kvd);
    /* Rows outside [pos0, pos0+n) untouched. */
    size_t lo = es * (size_t)(pos0 * kvd), hi = es * (size_t)((pos0 + n) * kvd);
    tu_expect(memcmp(kv.k, k_before, lo) == 0 && memcmp((char *)kv.k + hi, (char *)k_before + hi, bytes - hi) == 0 &&
                  memcmp(kv.v, v_before, lo) == 0 && memcmp((char *)kv.v + hi, (char *)v_before + hi, bytes - hi) == 0,
              "kv_write %s leaves the other rows untouched", qp_ggml_type_name(type));
    free(kv.k), free(kv.v), free(k_before), free(v_before), free(k), free(v), free(wk), free(wv), free(tk), free(tv),
        free(gk), free(gv);
}

static void test_attention(int32_t type, int64_t n, int32_t n_head, int32_t n_head_kv, int32_t hd, int32_t pos0) {
    int64_t kvd = (int64_t)n_head_kv * hd, qw = (int64_t)n_head * hd, ctx = pos0 + n + 5;
    /* Rows past pos0+n-1 hold NaN: a causal-mask slip makes the output NaN and fails. */
    struct qp_kv_ref kv = new_kv(type, ctx, kvd, pos0 + n);
    float *q = tu_alloc(sizeof(float) * (size_t)(n * qw)), *out = tu_alloc(sizeof(float) * (size_t)(n * qw));
    double *want = tu_alloc(sizeof(double) * (size_t)(n * qw)), *tol = tu_alloc(sizeof(double) * (size_t)(n * qw));
    tu_fill(q, n * qw, -1.0f, 1.0f);
    double *p = tu_alloc(sizeof(double) * (size_t)(pos0 + n));
    for (int64_t t = 0; t < n; t++)
        for (int h = 0; h < n_head; h++) {
            int g = h / (n_head / n_head_kv);
            int64_t len = pos0 + t + 1;
            double m = -INFINITY, l = 0;
            for (int64_t j = 0; j < len; j++) {
                double s = 0;
                for (int i = 0; i < hd; i++)
                    s += (double)q[t * qw + (int64_t)h * hd + i] * kv_get(&kv, kv.k, j * kvd + (int64_t)g * hd + i);
                p[j] = s / sqrt((double)hd);
                if (p[j] > m) m = p[j];
            }
            for (int64_t j = 0; j < len; j++) l += (p[j] = exp(p[j] - m));
            for (int i = 0; i < hd; i++) {
                double o = 0;
                for (int64_t j = 0; j < len; j++) o += p[j] / l * kv_get(&kv, kv.v, j * kvd + (int64_t)g * hd + i);
                want[t * qw + (int64_t)h * hd + i] = o;
                /* |q|,|k|,|v| <= 1: each score has absolute error <= (hd/8+6)*2u*hd/sqrt(hd); the
                 * weights' relative error <= that + (len+4)*2u (f32 exp, running sum, rescale);
                 * the output, a weighted mean of |v| <= 1, errs by at most the same, plus len*2u. */
                double se = ((double)hd / 8 + 6) * 2 * U * sqrt((double)hd);
                tol[t * qw + (int64_t)h * hd + i] = 2 * se + (2.0 * (double)len + 8) * 2 * U;
            }
        }
    union tu_step sb;
    tu_step_chunk(&sb, pos0, (int32_t)n);
    struct qp_op_args a = {.op = QP_OP_ATTENTION, .n_tok = (int32_t)n, .step = &sb.s, .in0 = q, .out = out,
                           .in_w = qw, .out_w = qw, .n_head = n_head, .n_head_kv = n_head_kv, .head_dim = hd, .kv = kv};
    run_op(&a);
    char what[128];
    snprintf(what, sizeof what, "attention %s n=%lld heads=%d/%d hd=%d pos=%d", qp_ggml_type_name(type), (long long)n,
             n_head, n_head_kv, hd, pos0);
    tu_check(what, out, want, tol, 0, n * qw);
    free(kv.k), free(kv.v), free(q), free(out), free(want), free(tol), free(p);
}

static void test_swiglu_add(int64_t n, int64_t w) {
    float *g = tu_alloc(sizeof(float) * (size_t)(n * w)), *u = tu_alloc(sizeof(float) * (size_t)(n * w));
    float *out = tu_alloc(sizeof(float) * (size_t)(n * w));
    double *want = tu_alloc(sizeof(double) * (size_t)(n * w)), *tol = tu_alloc(sizeof(double) * (size_t)(n * w));
    tu_fill(g, n * w, -20.0f, 20.0f);
    tu_fill(u, n * w, -3.0f, 3.0f);
    for (int64_t i = 0; i < n * w; i++) {
        want[i] = g[i] / (1.0 + exp(-(double)g[i])) * u[i];
        /* expf (within 2 ulp, argument exact), a sum, a division and a product: 6u relative */
        tol[i] = 6 * U * fabs(want[i]) + 1e-30;
    }
    struct qp_op_args a = {.op = QP_OP_SWIGLU, .n_tok = (int32_t)n, .in0 = g, .in1 = u, .out = out, .in_w = w,
                           .out_w = w};
    run_op(&a);
    char what[64];
    snprintf(what, sizeof what, "swiglu n=%lld w=%lld", (long long)n, (long long)w);
    tu_check(what, out, want, tol, 0, n * w);
    for (int64_t i = 0; i < n * w; i++) {
        want[i] = (double)g[i] + u[i];
        tol[i] = U * fabs(want[i]); /* one rounding */
    }
    a.op = QP_OP_ADD;
    a.out = g; /* in place: out == in0 */
    run_op(&a);
    snprintf(what, sizeof what, "add (in place) n=%lld w=%lld", (long long)n, (long long)w);
    tu_check(what, g, want, tol, 0, n * w);
    free(g), free(u), free(out), free(want), free(tol);
}

static void test_softmax(int64_t n, int64_t w) {
    float *x = tu_alloc(sizeof(float) * (size_t)(n * w));
    double *want = tu_alloc(sizeof(double) * (size_t)(n * w)), *tol = tu_alloc(sizeof(double) * (size_t)(n * w));
    tu_fill(x, n * w, -30.0f, 30.0f);
    for (int64_t t = 0; t < n; t++) {
        double m = -INFINITY, s = 0;
        for (int64_t i = 0; i < w; i++) m = fmax(m, x[t * w + i]);
        for (int64_t i = 0; i < w; i++) s += exp(x[t * w + i] - m);
        for (int64_t i = 0; i < w; i++) {
            want[t * w + i] = exp(x[t * w + i] - m) / s;
            /* x - max rounds by u|x - max|, which exp turns into that relative error; then expf
             * (2 ulp), the recursive sum of w terms, the reciprocal and the product */
            tol[t * w + i] = (((double)w + 8) * 2 * U + U * (m - x[t * w + i])) * want[t * w + i] + 1e-30;
        }
    }
    qp_cpu_softmax(x, n, w);
    char what[64];
    snprintf(what, sizeof what, "softmax n=%lld w=%lld", (long long)n, (long long)w);
    tu_check(what, x, want, tol, 0, n * w);
    free(x), free(want), free(tol);
}

static void test_argmax_step(void) {
    int64_t vocab = 1000, n = 3;
    float *x = tu_alloc(sizeof(float) * (size_t)(n * vocab));
    tu_fill(x, n * vocab, -5.0f, 5.0f);
    int64_t at = tu_int(1, vocab - 2);
    x[(n - 1) * vocab + at] = 9.0f;
    x[(n - 1) * vocab + at + 1] = 9.0f; /* a tie: the first index wins */
    x[0] = 100.0f;                       /* a larger value in an earlier row: ignored */
    union tu_step sb;
    tu_step_chunk(&sb, 5, (int32_t)n);
    struct qp_op_args a = {.op = QP_OP_ARGMAX, .n_tok = (int32_t)n, .step = &sb.s, .in0 = x, .in_w = vocab};
    run_op(&a);
    tu_expect(sb.s.rows[n - 1].next == at, "argmax of the last row, first index on a tie: %d (want %lld)",
              (int)sb.s.rows[n - 1].next, (long long)at);
    tu_expect(sb.s.rows[0].next == 0, "argmax of every row: the first row's is its 100 at 0 (%d)", (int)sb.s.rows[0].next);
    float nan_row[4] = {NAN, 1.0f, NAN, 3.0f}, all_nan[2] = {NAN, NAN};
    tu_expect(qp_cpu_argmax(nan_row, 4) == 3 && qp_cpu_argmax(all_nan, 2) == 0, "argmax: NaNs never win");
    a = (struct qp_op_args){.op = QP_OP_STEP_ADVANCE, .n_tok = (int32_t)n, .step = &sb.s};
    sb.s.rows[0].next = sb.s.rows[n - 1].next; /* a chunk's argmax runs on its last row only, into row 0 */
    run_op(&a);
    tu_expect(sb.s.rows[0].pos == 5 + n && sb.s.n_tok == 1 && sb.s.rows[0].token == at,
              "step_advance of a chunk: pos %d, n_tok %d, token %d", (int)sb.s.rows[0].pos, (int)sb.s.n_tok,
              (int)sb.s.rows[0].token);
    /* a batch of 3 sequences: every row moves on to its next token */
    union tu_step bt;
    tu_step_chunk(&bt, 0, 3);
    bt.s.n_out = 3;
    for (int t = 0; t < 3; t++) bt.s.rows[t] = (struct qp_step_row){t, 10 * t, t, 100 + t};
    a = (struct qp_op_args){.op = QP_OP_STEP_ADVANCE, .n_tok = 3, .step = &bt.s};
    run_op(&a);
    tu_expect(bt.s.n_tok == 3 && bt.s.rows[2].token == 102 && bt.s.rows[2].pos == 21 && bt.s.rows[2].slot == 2,
              "step_advance of a batch: n_tok %d, row 2 {%d, %d, %d}", (int)bt.s.n_tok, (int)bt.s.rows[2].token,
              (int)bt.s.rows[2].pos, (int)bt.s.rows[2].slot);
    free(x);
}

static void test_f16(void) {
    /* Every half decodes to its exact value; encoding is round-to-nearest-even. */
    int64_t bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        uint32_t e = (h >> 10) & 31, m = h & 1023;
        double want = e == 0 ? ldexp((double)m, -24) : ldexp(1024.0 + m, (int)e - 25);
        if (h & 0x8000) want = -want;
        float got = qp_fp16_to_fp32((uint16_t)h);
        if (e == 31) {
            if (m ? got == got : !isinf(got)) bad++;
            continue;
        }
        if ((double)got != want || qp_fp32_to_fp16(got) != h) bad++;
        /* midpoint to the next half up (in magnitude) rounds to the even one */
        if (e < 30 || m < 1023) {
            double next = e == 0 ? ldexp((double)m + 1, -24) : ldexp(1024.0 + m + 1, (int)e - 25);
            float mid = (float)((fabs(want) + next) / 2 * (h & 0x8000 ? -1 : 1));
            uint16_t r = qp_fp32_to_fp16(mid);
            uint16_t even = (m & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
            if (r != even) bad++;
        }
    }
    tu_expect(bad == 0, "f16 <-> f32: all 65536 halves exact, midpoints to even (%lld bad)", (long long)bad);
    tu_expect(qp_fp32_to_fp16(70000.0f) == 0x7c00 && qp_fp32_to_fp16(65519.0f) == 0x7bff,
              "f16: overflow to inf at 65520");
}

/* The pool's thread count: set, capped, restored; a linear's bits do not depend on it. */
static void test_thread_count(void) {
    int before = qp_cpu_thread_count();
    enum { ROWS = 96, COLS = 256, N = 5 };
    static float w[ROWS * COLS], x[N * COLS], y1[N * ROWS], y3[N * ROWS];
    for (int i = 0; i < ROWS * COLS; i++) w[i] = tu_uniform(-1, 1);
    for (int i = 0; i < N * COLS; i++) x[i] = tu_uniform(-1, 1);
    struct qp_weight wt = {QP_GGML_F32, w, ROWS, COLS, COLS * sizeof(float)};
    tu_expect(qp_cpu_set_threads(1) == 1 && qp_cpu_thread_count() == 1, "threads: 1 when set to 1");
    qp_cpu_linear(&wt, NULL, x, COLS, N, y1, ROWS, NULL, 0, true);
    int three = qp_cpu_set_threads(3);
    tu_expect(three >= 1 && three <= 3 && qp_cpu_thread_count() == three, "threads: %d when set to 3", three);
    qp_cpu_linear(&wt, NULL, x, COLS, N, y3, ROWS, NULL, 0, true);
    tu_expect(memcmp(y1, y3, sizeof y1) == 0, "linear: the same bits on 1 and %d threads", three);
    tu_expect(qp_cpu_set_threads(1 << 20) <= QP_CPU_MAX_THREADS, "threads: capped at %d", QP_CPU_MAX_THREADS);
    tu_expect(qp_cpu_set_threads(0) >= 1, "threads: 0 means one per processor");
    qp_cpu_set_threads(before);
}

int main(void) {
    tu_seed("test_ops");
    printf("threads: %d\n", qp_cpu_thread_count());
    test_f16();
    test_thread_count();
    test_embed();
    test_rms_norm(1, 896);
    test_rms_norm(7, 896);
    test_rms_norm(3, 4864);
    for (int ti = 0; ti < N_TYPES; ti++) {
        int32_t t = weight_types[ti];
        bool k_quant = qp_ggml_type_info(t)->block_elems == 256; /* rows of 896 are not a multiple of 256 */
        test_linear(t, 1, 896, k_quant ? 1024 : 896, true, false, false);
        test_linear(t, 7, 896, k_quant ? 1024 : 896, true, false, false);
        test_linear(t, 7, 4864, k_quant ? 256 : 896, false, false, false);
        test_linear(t, 1, 896, 4864, false, true, false);
        test_linear(t, 7, 896, 4864, false, true, false);
        test_linear(t, 1, 1, k_quant ? 256 : 32, true, true, false);
    }
    test_linear(QP_GGML_F32, 40, 5, 16384 + 256, true, false, false); /* two chunks, two token groups */
    test_linear(QP_GGML_Q8_0, 3, 3, 16384 * 2 + 32, false, true, false);
    test_linear(QP_GGML_Q6_K, 33, 4, 16384 + 512, true, true, false);
    test_linear(QP_GGML_F32, 7, 896, 896, true, false, true); /* planted wrong element */
    test_rope(1, 14, 64, 0, 1e6f);
    test_rope(7, 14, 64, 37, 1e6f);
    test_rope(7, 2, 64, 100000, 1e6f);
    test_rope(3, 1, 2, 5, 10000.0f);
    test_rope(2, 1, 128, 4000, 10000.0f);
    test_kv_write(QP_GGML_F32, 7, 3);
    test_kv_write(QP_GGML_F16, 7, 3);
    test_kv_write(QP_GGML_F16, 1, 0);
    for (int f16 = 0; f16 < 2; f16++) {
        int32_t kt = f16 ? QP_GGML_F16 : QP_GGML_F32;
        test_attention(kt, 1, 14, 2, 64, 0);
        test_attention(kt, 7, 14, 2, 64, 0);
        test_attention(kt, 7, 14, 2, 64, 37);
        test_attention(kt, 1, 1, 1, 64, 9);
        test_attention(kt, 3, 4, 4, 32, 5);
        test_attention(kt, 2, 2, 1, 64, 3000); /* online softmax over two chunks */
    }
    test_swiglu_add(1, 4864);
    test_swiglu_add(7, 4864);
    test_softmax(1, 7);
    test_softmax(3, 1000);
    test_argmax_step();
    return tu_finish("test_ops");
}
