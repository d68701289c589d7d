/* test_sampler.c — the sampler of qp_sampler.h against probabilities computed here by hand:
 * greedy = argmax, same seed = same draws, token frequencies over many draws match the intended
 * distribution (chi-square) for temperature, top-k, top-p, min-p and a combination, and the
 * repetition penalty's arithmetic, and the frequency and presence penalties'. A planted wrong expectation must fail the chi-square check.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qp_sampler.h"

#include "check.h"

#define NV 8
/* Probabilities in descending order; logits are their logs so expectations are closed-form. */
static const double P[NV] = {0.30, 0.20, 0.15, 0.12, 0.10, 0.08, 0.04, 0.01};

/* Chi-square critical values at significance 0.001 for df = 1..7 (standard tables). A correct
 * sampler fails this with probability 0.001 per case; seeds are fixed, so the test is
 * deterministic. */
static const double CHI2_CRIT[8] = {0, 10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322};

static struct qp_sampler *make(struct qp_sampler_params p, int32_t nv) {
    struct qp_error e = {{0}};
    struct qp_sampler *s = NULL;
    if (qp_sampler_init(&p, nv, &s, &e) != QP_OK) {
        printf("init failed: %s\n", e.msg);
        exit(1);
    }
    return s;
}

/* Draws n tokens; returns chi-square of counts vs expected (tokens with expected 0 must never
 * be drawn: counted in *forbidden). */
static double chi2_of(const long *cnt, const double *expect, long n, int *df, long *forbidden) {
    double chi = 0.0;
    *df = -1;
    *forbidden = 0;
    for (int i = 0; i < NV; i++) {
        if (expect[i] == 0.0) {
            *forbidden += cnt[i];
            continue;
        }
        double e = expect[i] * (double)n;
        chi += ((double)cnt[i] - e) * ((double)cnt[i] - e) / e;
        (*df)++;
    }
    return chi;
}

static void draw(struct qp_sampler_params p, long n, long *cnt) {
    float logits[NV];
    for (int i = 0; i < NV; i++) logits[i] = (float)log(P[i]);
    struct qp_sampler *s = make(p, NV);
    memset(cnt, 0, NV * sizeof *cnt);
    for (long k = 0; k < n; k++) {
        int32_t t = qp_sampler_sample(s, logits);
        if (t >= 0 && t < NV) cnt[t]++;
    }
    qp_sampler_free(s);
}

/* expected[i] ∝ P[i]^(1/temp) over the kept set (first `keep` tokens), 0 elsewhere. */
static void expect_kept(int keep, double temp, double *ex) {
    double sum = 0.0;
    for (int i = 0; i < NV; i++) {
        ex[i] = i < keep ? pow(P[i], 1.0 / temp) : 0.0;
        sum += ex[i];
    }
    for (int i = 0; i < NV; i++) ex[i] /= sum;
}

static void check_dist(const char *name, struct qp_sampler_params p, int keep, double temp) {
    const long n = 200000;
    long cnt[NV], forbidden;
    double ex[NV];
    int df;
    draw(p, n, cnt);
    expect_kept(keep, temp, ex);
    double chi = chi2_of(cnt, ex, n, &df, &forbidden);
    printf("%-28s keep %d  chi2 %.2f (df %d, crit %.2f)  counts:", name, keep, chi, df,
           CHI2_CRIT[df]);
    for (int i = 0; i < NV; i++) printf(" %ld", cnt[i]);
    printf("\n");
    CHECK(forbidden == 0, "%s: %ld draws of tokens the filters remove", name, forbidden);
    CHECK(chi < CHI2_CRIT[df], "%s: chi2 %.2f >= %.2f", name, chi, CHI2_CRIT[df]);
}

static struct qp_sampler_params base(uint64_t seed) {
    struct qp_sampler_params p = qp_sampler_defaults();
    p.temp = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = seed;
    return p;
}

int main(void) {
    /* greedy: argmax, first index on ties, whatever the seed */
    {
        struct qp_sampler_params p = base(1);
        p.temp = 0.0f;
        CHECK(qp_sampler_params_greedy(&p), "temp 0 without penalty must be greedy");
        srand(7);
        float lg[1000];
        for (int r = 0; r < 50; r++) {
            for (int i = 0; i < 1000; i++) lg[i] = (float)(rand() % 2000) / 100.0f - 10.0f;
            int best = 0;
            for (int i = 1; i < 1000; i++)
                if (lg[i] > lg[best]) best = i;
            p.seed = (uint64_t)r;
            struct qp_sampler *s = make(p, 1000);
            int32_t t = qp_sampler_sample(s, lg);
            CHECK(t == best, "greedy picked %d, argmax is %d", t, best);
            qp_sampler_free(s);
        }
        float tie[4] = {1, 3, 3, 2};
        struct qp_sampler *s = make(p, 4);
        CHECK(qp_sampler_sample(s, tie) == 1, "greedy tie must go to the first index");
        qp_sampler_free(s);
    }
    /* same seed -> same draws; another seed -> other draws */
    {
        struct qp_sampler_params p = qp_sampler_defaults();
        p.seed = 1234;
        float lg[NV];
        for (int i = 0; i < NV; i++) lg[i] = (float)log(P[i]);
        struct qp_sampler *a = make(p, NV), *b = make(p, NV);
        p.seed = 1235;
        struct qp_sampler *c = make(p, NV);
        int same = 1, differ = 0;
        for (int k = 0; k < 200; k++) {
            int32_t ta = qp_sampler_sample(a, lg), tb = qp_sampler_sample(b, lg),
                    tc = qp_sampler_sample(c, lg);
            same &= ta == tb;
            differ |= ta != tc;
        }
        CHECK(same, "two samplers with one seed drew different tokens");
        CHECK(differ, "two seeds drew the same 200 tokens");
        qp_sampler_free(a);
        qp_sampler_free(b);
        qp_sampler_free(c);
    }
    /* distributions */
    {
        struct qp_sampler_params p = base(11);
        check_dist("temp 1", p, NV, 1.0);
        p = base(12);
        p.temp = 0.5f;
        check_dist("temp 0.5", p, NV, 0.5);
        p = base(13);
        p.temp = 1.7f;
        check_dist("temp 1.7", p, NV, 1.7);
        p = base(14);
        p.top_k = 3;
        check_dist("top-k 3", p, 3, 1.0);
        p = base(15);
        p.top_p = 0.7f; /* cumulative .30 .50 .65 .77: keeps 4 */
        check_dist("top-p 0.7", p, 4, 1.0);
        p = base(16);
        p.min_p = 0.3f; /* keeps p >= 0.09: 5 tokens */
        check_dist("min-p 0.3", p, 5, 1.0);
        p = base(17);
        p.top_k = 6;
        p.top_p = 0.9f; /* within the 6: .30 .50 .65 .77 .87 .95 -> keeps 6 */
        p.min_p = 0.35f; /* of those, p >= 0.105: 4 */
        p.temp = 0.7f;
        check_dist("top-k 6 top-p .9 min-p .35 t.7", p, 4, 0.7);

        /* planted fault: temp 0.5 draws checked against temp 1 expectations must fail */
        long cnt[NV], forbidden;
        double ex[NV];
        int df;
        p = base(12);
        p.temp = 0.5f;
        draw(p, 200000, cnt);
        expect_kept(NV, 1.0, ex);
        double chi = chi2_of(cnt, ex, 200000, &df, &forbidden);
        CHECK(chi > CHI2_CRIT[df], "planted fault not caught: chi2 %.2f", chi);
    }
    /* repetition penalty: divide positive, multiply negative, once per distinct token, only
     * the last repeat_last_n accepted tokens */
    {
        struct qp_sampler_params p = base(1);
        p.repeat_penalty = 2.0f;
        p.repeat_last_n = 3;
        struct qp_sampler *s = make(p, 5);
        float lg[5] = {2.0f, -2.0f, 1.0f, 0.5f, 4.0f};
        qp_sampler_accept(s, 4); /* falls out of the window */
        qp_sampler_accept(s, 0);
        qp_sampler_accept(s, 1);
        qp_sampler_accept(s, 0);
        qp_sampler_penalize(s, lg);
        const float want[5] = {1.0f, -4.0f, 1.0f, 0.5f, 4.0f};
        for (int i = 0; i < 5; i++) CHECK(lg[i] == want[i], "penalty: logit %d = %g, want %g", i, (double)lg[i], (double)want[i]);
        /* greedy with penalty: token 4 (4.0) wins; after accepting it, 4 -> 2.0 and the
         * window holds {1, 0, 4}: logits {1, -4, 1, .5, 2} -> 4 still wins; penalty 5 -> 0.8 */
        p.temp = 0.0f;
        p.repeat_penalty = 5.0f;
        struct qp_sampler *g = make(p, 5);
        float lg2[5] = {2.0f, -2.0f, 1.0f, 0.5f, 4.0f};
        CHECK(qp_sampler_sample(g, lg2) == 4, "greedy before penalty");
        qp_sampler_accept(g, 4);
        CHECK(qp_sampler_sample(g, lg2) == 0, "greedy after penalty should pick 0 (2.0 > 0.8)");
        qp_sampler_reset(g);
        CHECK(qp_sampler_sample(g, lg2) == 4, "reset must clear the window");
        qp_sampler_free(s);
        qp_sampler_free(g);
    }
    /* frequency and presence penalties (OpenAI's, applied as llama.cpp does): over the same
     * window, after the repetition penalty, count x frequency and presence once are subtracted */
    {
        struct qp_sampler_params p = base(1);
        p.repeat_penalty = 2.0f;
        p.repeat_last_n = 4;
        p.freq_penalty = 0.5f;
        p.presence_penalty = 0.25f;
        struct qp_sampler *s = make(p, 5);
        float lg[5] = {2.0f, -2.0f, 1.0f, 0.5f, 4.0f};
        qp_sampler_accept(s, 4); /* falls out of the window */
        qp_sampler_accept(s, 0);
        qp_sampler_accept(s, 1);
        qp_sampler_accept(s, 0);
        qp_sampler_accept(s, 0);
        qp_sampler_penalize(s, lg);
        const float want[5] = {1.0f - 1.5f - 0.25f, -4.0f - 0.5f - 0.25f, 1.0f, 0.5f, 4.0f};
        for (int i = 0; i < 5; i++)
            CHECK(lg[i] == want[i], "frequency/presence: logit %d = %g, want %g", i, (double)lg[i], (double)want[i]);
        p.repeat_penalty = 1.0f;
        p.temp = 0.0f;
        CHECK(!qp_sampler_params_greedy(&p), "a presence penalty is not greedy (the host must sample)");
        p.freq_penalty = p.presence_penalty = 0.0f;
        CHECK(qp_sampler_params_greedy(&p), "no penalty at temp 0 is greedy");
        qp_sampler_free(s);
    }
    /* bad parameters get a message naming the option */
    {
        struct qp_sampler_params p = base(1);
        p.top_p = 0.0f;
        struct qp_error e = {{0}};
        struct qp_sampler *s = NULL;
        CHECK(qp_sampler_init(&p, 10, &s, &e) == QP_ERR_INVALID && strstr(e.msg, "--top-p"),
              "top-p 0 must be refused: %s", e.msg);
    }
    if (failures) printf("%d failure(s)\n", failures);
    else printf("sampler: all checks passed\n");
    return failures ? 1 : 0;
}
