/* kld_stats.c — llama-perplexity's KL-divergence statistics (include/qp_kld.h): running sums per
 * scored token, the per-chunk table and the final report, with llama.cpp's labels, estimators
 * and percentile rule so that the two tools' reports read side by side.
 *
 * Owns the per-token KLD and Δp arrays (cap entries each, ~28 KB for 14 chunks of 512).
 * The "Q" of the report is the model under test, "base" the base file.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qp_kld.h"

enum qp_status qp_kld_stats_init(struct qp_kld_stats *s, int64_t cap, struct qp_error *err) {
    memset(s, 0, sizeof *s);
    s->cap = cap > 0 ? cap : 1;
    s->kld_values = malloc((size_t)s->cap * sizeof *s->kld_values);
    s->p_diff_values = malloc((size_t)s->cap * sizeof *s->p_diff_values);
    if (!s->kld_values || !s->p_diff_values) {
        qp_kld_stats_free(s);
        return qp_error_set(err, QP_ERR_NOMEM, "out of memory for %lld token statistics",
                            (long long)cap);
    }
    return QP_OK;
}

void qp_kld_stats_free(struct qp_kld_stats *s) {
    free(s->kld_values);
    free(s->p_diff_values);
    s->kld_values = s->p_diff_values = NULL;
}

void qp_kld_stats_add(struct qp_kld_stats *s, const struct qp_kld_token *t) {
    if (s->count >= s->cap) return;
    s->sum_nll += t->nll;
    s->sum_nll2 += t->nll * t->nll;
    s->sum_nll_base += t->nll_base;
    s->sum_nll_base2 += t->nll_base * t->nll_base;
    s->sum_nll_nll_base += t->nll * t->nll_base;
    s->sum_kld += t->kld;
    s->sum_kld2 += t->kld * t->kld;
    const double d2 = t->p_diff * t->p_diff;
    s->sum_p_diff += t->p_diff;
    s->sum_p_diff2 += d2;
    s->sum_p_diff4 += d2 * d2;
    if (fabs(t->p_diff) > s->max_p_diff) s->max_p_diff = fabs(t->p_diff);
    s->n_same_top += t->same_top;
    s->kld_values[s->count] = (float)t->kld;
    s->p_diff_values[s->count] = (float)t->p_diff;
    s->count++;
}

void qp_kld_mean_err(double sum, double sum2, int64_t count, double *mean, double *err) {
    *mean = *err = 0.0;
    if (count < 1) return;
    *mean = sum / (double)count;
    double var = sum2 / (double)count - *mean * *mean;
    *err = var > 0.0 && count > 10 ? sqrt(var / (double)(count - 1)) : 0.0;
}

/* Covariance of the two means (llama.cpp's: 0 below 10 values). */
static double covariance(double sa, double sb, double sab, int64_t count) {
    if (count < 10) return 0.0;
    double n = (double)count;
    return (sab / n - (sa / n) * (sb / n)) / (n - 1.0);
}

struct summary {
    double lp, lp_err, lpb, lpb_err, cov, ratio, ratio_err, kld, kld_err, rms, rms_err, top,
        top_err;
};

static void summarise(const struct qp_kld_stats *s, struct summary *m) {
    qp_kld_mean_err(s->sum_nll, s->sum_nll2, s->count, &m->lp, &m->lp_err);
    qp_kld_mean_err(s->sum_nll_base, s->sum_nll_base2, s->count, &m->lpb, &m->lpb_err);
    m->cov = covariance(s->sum_nll, s->sum_nll_base, s->sum_nll_nll_base, s->count);
    m->ratio = m->lp - m->lpb;
    double v = m->lp_err * m->lp_err + m->lpb_err * m->lpb_err - 2.0 * m->cov;
    m->ratio_err = v > 0.0 ? sqrt(v) : 0.0;
    qp_kld_mean_err(s->sum_kld, s->sum_kld2, s->count, &m->kld, &m->kld_err);
    double mse, mse_err;
    qp_kld_mean_err(s->sum_p_diff2, s->sum_p_diff4, s->count, &mse, &mse_err);
    m->rms = sqrt(mse);
    m->rms_err = m->rms > 0.0 ? 0.5 / m->rms * mse_err : 0.0;
    m->top = s->count ? (double)s->n_same_top / (double)s->count : 0.0;
    m->top_err = s->count > 1 ? sqrt(m->top * (1.0 - m->top) / (double)(s->count - 1)) : 0.0;
}

void qp_kld_stats_print_head(FILE *f) {
    fprintf(f, "chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence"
               "              Δp RMS            Same top p\n");
}

void qp_kld_stats_print_chunk(const struct qp_kld_stats *s, int32_t chunk, FILE *f) {
    struct summary m;
    summarise(s, &m);
    const double ppl = exp(m.lp);
    fprintf(f, "%4d    %9.4f ± %9.4f    %10.5f ± %10.5f    %10.5f ± %10.5f    %6.3f ± %6.3f %%"
               "    %6.3f ± %6.3f %%\n",
            (int)chunk, ppl, ppl * m.lp_err, m.ratio, m.ratio_err, m.kld, m.kld_err,
            100.0 * m.rms, 100.0 * m.rms_err, 100.0 * m.top, 100.0 * m.top_err);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* llama.cpp's: linear interpolation between the two nearest ranks of the sorted values. */
static double percentile(const float *v, int64_t n, double fraction) {
    if (fraction <= 0.0) return v[0];
    if (fraction >= 1.0) return v[n - 1];
    double p = fraction * (double)(n - 1);
    int64_t i = (int64_t)p;
    p -= (double)i;
    return (1.0 - p) * v[i] + p * v[i + 1 < n ? i + 1 : n - 1];
}

static double median(const float *v, int64_t n) {
    return n % 2 ? v[n / 2] : 0.5 * ((double)v[n / 2] + (double)v[n / 2 - 1]);
}

void qp_kld_stats_print_final(struct qp_kld_stats *s, FILE *f) {
    if (s->count < 100) {
        fprintf(f, "(%lld tokens: too few for the statistics; llama.cpp also needs 100)\n",
                (long long)s->count);
        return;
    }
    const int64_t n = s->count;
    qsort(s->kld_values, (size_t)n, sizeof *s->kld_values, cmp_float);
    qsort(s->p_diff_values, (size_t)n, sizeof *s->p_diff_values, cmp_float);
    struct summary m;
    summarise(s, &m);

    fprintf(f, "====== Perplexity statistics ======\n");
    const double ppl = exp(m.lp), ppl_err = ppl * m.lp_err;
    const double pplb = exp(m.lpb), pplb_err = pplb * m.lpb_err;
    fprintf(f, "Mean PPL(Q)                   : %10.6f ± %10.6f\n", ppl, ppl_err);
    fprintf(f, "Mean PPL(base)                : %10.6f ± %10.6f\n", pplb, pplb_err);
    const double denom = m.lp_err * m.lpb_err;
    fprintf(f, "Cor(ln(PPL(Q)), ln(PPL(base))): %6.2f%%\n", denom > 0.0 ? 100.0 * m.cov / denom : 0.0);
    fprintf(f, "Mean ln(PPL(Q)/PPL(base))     : %10.6f ± %10.6f\n", m.ratio, m.ratio_err);
    const double ratio = exp(m.ratio);
    fprintf(f, "Mean PPL(Q)/PPL(base)         : %10.6f ± %10.6f\n", ratio, ratio * m.ratio_err);
    const double pcov = ppl * pplb * m.cov;
    const double dv = ppl_err * ppl_err + pplb_err * pplb_err - 2.0 * pcov;
    fprintf(f, "Mean PPL(Q)-PPL(base)         : %10.6f ± %10.6f\n", ppl - pplb, dv > 0.0 ? sqrt(dv) : 0.0);

    fprintf(f, "\n====== KL divergence statistics ======\n");
    fprintf(f, "Mean    KLD: %10.6f ± %10.6f   (%.4g)\n", m.kld, m.kld_err, m.kld);
    const float *k = s->kld_values;
    fprintf(f, "Maximum KLD: %10.6f\n", (double)k[n - 1]);
    fprintf(f, "99.9%%   KLD: %10.6f\n", percentile(k, n, 0.999));
    fprintf(f, "99.0%%   KLD: %10.6f\n", percentile(k, n, 0.990));
    fprintf(f, "95.0%%   KLD: %10.6f\n", percentile(k, n, 0.950));
    fprintf(f, "90.0%%   KLD: %10.6f\n", percentile(k, n, 0.900));
    fprintf(f, "Median  KLD: %10.6f\n", median(k, n));
    fprintf(f, "10.0%%   KLD: %10.6f\n", percentile(k, n, 0.100));
    fprintf(f, " 5.0%%   KLD: %10.6f\n", percentile(k, n, 0.050));
    fprintf(f, " 1.0%%   KLD: %10.6f\n", percentile(k, n, 0.010));
    fprintf(f, " 0.1%%   KLD: %10.6f\n", percentile(k, n, 0.001));
    fprintf(f, "Minimum KLD: %10.6f\n", (double)k[0]);

    fprintf(f, "\n====== Token probability statistics ======\n");
    double pd, pd_err;
    qp_kld_mean_err(s->sum_p_diff, s->sum_p_diff2, n, &pd, &pd_err);
    const float *d = s->p_diff_values;
    fprintf(f, "Mean    Δp: %6.3f ± %5.3f %%\n", 100.0 * pd, 100.0 * pd_err);
    fprintf(f, "Maximum Δp: %6.3f%%\n", 100.0 * d[n - 1]);
    fprintf(f, "99.9%%   Δp: %6.3f%%\n", 100.0 * percentile(d, n, 0.999));
    fprintf(f, "99.0%%   Δp: %6.3f%%\n", 100.0 * percentile(d, n, 0.990));
    fprintf(f, "95.0%%   Δp: %6.3f%%\n", 100.0 * percentile(d, n, 0.950));
    fprintf(f, "90.0%%   Δp: %6.3f%%\n", 100.0 * percentile(d, n, 0.900));
    fprintf(f, "75.0%%   Δp: %6.3f%%\n", 100.0 * percentile(d, n, 0.750));
    fprintf(f, "Median  Δp: %6.3f%%\n", 100.0 * median(d, n));
    fprintf(f, "25.0%%   Δp: %6.3f%%\n", 100.0 * percentile(d, n, 0.250));
    fprintf(f, "10.0%%   Δp: %6.3f%%\n", 100.0 * percentile(d, n, 0.100));
    fprintf(f, " 5.0%%   Δp: %6.3f%%\n", 100.0 * percentile(d, n, 0.050));
    fprintf(f, " 1.0%%   Δp: %6.3f%%\n", 100.0 * percentile(d, n, 0.010));
    fprintf(f, " 0.1%%   Δp: %6.3f%%\n", 100.0 * percentile(d, n, 0.001));
    fprintf(f, "Minimum Δp: %6.3f%%\n", 100.0 * d[0]);
    fprintf(f, "RMS Δp    : %6.3f ± %5.3f %%\n", 100.0 * m.rms, 100.0 * m.rms_err);
    fprintf(f, "Same top p: %6.3f ± %5.3f %%\n", 100.0 * m.top, 100.0 * m.top_err);
}
