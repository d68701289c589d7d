/* test_runtime_synth.c — qrun end to end on the CPU backend over synthetic Qwen2 models that
 * qplan writes and compiles at test time (no real model needed: CI):
 *   - plan execution logits equal the oracle (tests/reference) at every position, for decode
 *     (one token per step) and prefill (chunks, including a chunk boundary inside the prompt);
 *   - fused and --no-fuse all plans give the same greedy tokens; device-side and host argmax
 *     agree; greedy is reproducible; a seeded sampling run is reproducible (another seed differs);
 *   - stop conditions: -n, stop strings (not printed), the callback, an interrupt, a full context
 *     (clean stop, never past the cache) and a prompt that does not fit.
 * Tolerance: the plan keeps K and V as the plan's kv type (F16 in compiled plans) where the
 * oracle keeps f32, and sums in another order; 2e-3 of the logits' scale (max(1, max|logit|))
 * covers f16 rounding of K/V (2^-11 relative) through two layers, and is far below the
 * differences a wrong op makes (O(1) of the scale: see the planted check below).
 */
#include "runtime_common.h"

#define TOL 2e-3

static void check_against_oracle(const char *name, const char *plan, const char *model) {
    struct qrun *q = open_plan(plan, model, 0);
    int32_t nv = qrun_n_vocab(q);
    struct qp_error e = {{0}};
    struct qp_gguf *g = NULL;
    struct qp_ref *r = NULL;
    if (qp_gguf_open(model, 0, &g, &e) != QP_OK || qp_ref_open(g, 64, &r, &e) != QP_OK) {
        printf("FAIL: oracle on %s: %s\n", model, e.msg);
        exit(1);
    }
    enum { N = 40 };
    int32_t toks[N];
    srand(1234);
    for (int i = 0; i < N; i++) toks[i] = rand() % nv;
    float *ref = malloc((size_t)N * (size_t)nv * sizeof(float));
    for (int p = 0; p < N; p++)
        if (qp_ref_forward(r, toks[p], p, ref + (size_t)p * nv, &e) != QP_OK) {
            printf("FAIL: oracle forward: %s\n", e.msg);
            exit(1);
        }
    /* decode: one token per step, every position */
    double worst = 0.0;
    int agree = 0;
    for (int p = 0; p < N; p++) {
        const float *lg;
        CHECK(qrun_eval(q, &toks[p], 1, p, &lg, &e) == QP_OK, "%s: eval: %s", name, e.msg);
        int32_t wi;
        double d = logits_err(lg, ref + (size_t)p * nv, nv, &wi);
        if (d > worst) worst = d;
        agree += argmax_f(lg, nv) == argmax_f(ref + (size_t)p * nv, nv);
        CHECK(d <= TOL, "%s: decode pos %d: logit %d differs by %.3g of the scale", name, p, wi, d);
    }
    printf("%s: decode vs oracle over %d positions: worst %.3g of the scale, argmax agrees at %d\n",
           name, N, worst, agree);
    CHECK(agree == N, "%s: argmax differs from the oracle at %d positions", name, N - agree);
    /* planted fault: the logits of the wrong position must fail the same check */
    {
        const float *lg;
        qrun_eval(q, toks, 2, 0, &lg, &e);
        int32_t wi;
        double d = logits_err(lg, ref + 0 * (size_t)nv, nv, &wi);
        CHECK(d > TOL, "planted: logits of position 1 pass as position 0's (%.3g)", d);
    }
    /* prefill: the whole prompt (in as many chunks as the plan's max_chunk makes), the last
     * logits at each prompt length; and a prompt split at an odd point */
    worst = 0.0;
    for (int n = 2; n <= N; n += 7) {
        const float *lg;
        CHECK(qrun_eval(q, toks, (size_t)n, 0, &lg, &e) == QP_OK, "%s: eval: %s", name, e.msg);
        int32_t wi;
        double d = logits_err(lg, ref + (size_t)(n - 1) * nv, nv, &wi);
        if (d > worst) worst = d;
        CHECK(d <= TOL, "%s: prefill of %d: logit %d differs by %.3g", name, n, wi, d);
    }
    {
        const float *lg;
        qrun_eval(q, toks, 5, 0, &lg, &e);
        CHECK(qrun_eval(q, toks + 5, N - 5, 5, &lg, &e) == QP_OK, "eval: %s", e.msg);
        int32_t wi;
        double d = logits_err(lg, ref + (size_t)(N - 1) * nv, nv, &wi);
        if (d > worst) worst = d;
        CHECK(d <= TOL, "%s: prefill 5 + %d: logit %d differs by %.3g", name, N - 5, wi, d);
    }
    printf("%s: prefill vs oracle: worst %.3g of the scale\n", name, worst);
    free(ref);
    qp_ref_free(r);
    qp_gguf_close(g);
    qrun_close(q);
}

static struct collect *gen(struct qrun *q, const int32_t *prompt, size_t n,
                           const struct qrun_gen_options *g, struct qrun_stats *st,
                           enum qp_status *status) {
    static struct collect c;
    memset(&c, 0, sizeof c);
    struct qp_error e = {{0}};
    *status = qrun_generate_tokens(q, prompt, n, g, collect_cb, &c, st, &e);
    if (*status != QP_OK) printf("generate: %s\n", e.msg);
    return &c;
}

static void check_generation(const char *plan, const char *plan_nofuse, const char *model) {
    struct qrun *q = open_plan(plan, model, 0), *qn = open_plan(plan_nofuse, model, 0);
    int32_t prompt[7] = {72, 101, 108, 108, 111, 32, 119};
    struct qrun_gen_options g = qrun_gen_options_default();
    g.sampling.temp = 0.0f;
    g.n_predict = 24;
    struct qrun_stats st;
    enum qp_status s;
    struct collect a, b;
    a = *gen(q, prompt, 7, &g, &st, &s);
    CHECK(s == QP_OK && st.n_gen == 24 && st.stop == QRUN_STOP_LENGTH && a.n == 24,
          "greedy -n 24: %d tokens, stop %s", a.n, qrun_stop_str(st.stop));
    CHECK(st.pos == 7 + 23, "after 24 tokens the cache holds %lld positions, want 30", (long long)st.pos);
    b = *gen(q, prompt, 7, &g, &st, &s);
    CHECK(a.n == b.n && memcmp(a.tok, b.tok, sizeof(int32_t) * (size_t)a.n) == 0, "greedy is not reproducible");
    b = *gen(qn, prompt, 7, &g, &st, &s);
    CHECK(a.n == b.n && memcmp(a.tok, b.tok, sizeof(int32_t) * (size_t)a.n) == 0,
          "fused and --no-fuse all plans give different greedy tokens");
    g.greedy_on_device = false;
    b = *gen(q, prompt, 7, &g, &st, &s);
    CHECK(a.n == b.n && memcmp(a.tok, b.tok, sizeof(int32_t) * (size_t)a.n) == 0,
          "backend argmax and host argmax give different tokens");
    printf("greedy: %d tokens, same twice, same fused / unfused, same device / host argmax\n", a.n);

    /* seeded sampling */
    g = qrun_gen_options_default();
    g.sampling.temp = 1.0f;
    g.sampling.seed = 42;
    g.n_predict = 24;
    a = *gen(q, prompt, 7, &g, &st, &s);
    b = *gen(q, prompt, 7, &g, &st, &s);
    CHECK(a.n == 24 && a.n == b.n && memcmp(a.tok, b.tok, sizeof(int32_t) * (size_t)a.n) == 0,
          "seed 42 twice gave different tokens");
    g.sampling.seed = 43;
    b = *gen(q, prompt, 7, &g, &st, &s);
    CHECK(memcmp(a.tok, b.tok, sizeof(int32_t) * 24) != 0, "seeds 42 and 43 gave the same 24 tokens");
    printf("sampling: seed 42 reproducible, seed 43 differs\n");

    /* stop string: a piece of the greedy text; what is printed stops right before it */
    g = qrun_gen_options_default();
    g.sampling.temp = 0.0f;
    g.n_predict = 24;
    a = *gen(q, prompt, 7, &g, &st, &s);
    if (a.len >= 6) {
        char stop[8] = {0};
        size_t at = a.len / 2;
        memcpy(stop, a.text + at, 3);
        if (strlen(stop) == 3) {
            const char *stops[1] = {stop};
            g.stop = stops;
            g.n_stop = 1;
            b = *gen(q, prompt, 7, &g, &st, &s);
            size_t first = (size_t)(strstr(a.text, stop) - a.text);
            CHECK(st.stop == QRUN_STOP_STRING, "stop string: stop %s", qrun_stop_str(st.stop));
            CHECK(b.len == first && memcmp(b.text, a.text, first) == 0,
                  "stop string: printed %zu bytes, want the %zu before it", b.len, first);
            printf("stop string \"%s\": stopped after %zu bytes, the stop not printed\n", stop, b.len);
            g.stop = NULL;
            g.n_stop = 0;
        }
    }
    /* callback stop, interrupt */
    {
        static struct collect c;
        memset(&c, 0, sizeof c);
        c.stop_after = 3;
        struct qp_error e;
        s = qrun_generate_tokens(q, prompt, 7, &g, collect_cb, &c, &st, &e);
        CHECK(s == QP_OK && st.stop == QRUN_STOP_CALLBACK && st.n_gen == 3, "callback stop: %s %lld",
              qrun_stop_str(st.stop), (long long)st.n_gen);
        volatile sig_atomic_t flag = 0;
        memset(&c, 0, sizeof c);
        c.stop_after = 5;
        c.flag_after = &flag;
        g.interrupt = &flag;
        s = qrun_generate_tokens(q, prompt, 7, &g, collect_cb, &c, &st, &e);
        CHECK(s == QP_OK && st.stop == QRUN_STOP_INTERRUPT && st.n_gen == 5, "interrupt: %s %lld",
              qrun_stop_str(st.stop), (long long)st.n_gen);
        g.interrupt = NULL;
    }
    qrun_close(q);
    qrun_close(qn);

    /* full context: 7 prompt tokens in a context of 10: 3 decode steps fill it, a 4th token
     * comes from the last logits, then a clean stop */
    q = open_plan(plan, model, 10);
    g = qrun_gen_options_default();
    g.sampling.temp = 0.0f;
    a = *gen(q, prompt, 7, &g, &st, &s);
    CHECK(s == QP_OK && st.stop == QRUN_STOP_CONTEXT && st.n_gen == 4 && st.pos == 10,
          "full context: stop %s, %lld tokens, pos %lld", qrun_stop_str(st.stop), (long long)st.n_gen,
          (long long)st.pos);
    int32_t longp[11] = {0};
    struct qp_error e = {{0}};
    s = qrun_generate_tokens(q, longp, 11, &g, NULL, NULL, &st, &e);
    CHECK(s == QP_ERR_RANGE && strstr(e.msg, "does not fit"), "an 11-token prompt in 10 positions: %s", e.msg);
    printf("full context: clean stop at %lld positions; too long a prompt: %s\n", (long long)st.pos, e.msg);
    qrun_close(q);
}

int main(void) {
    if (access(QPLAN, X_OK) != 0) {
        printf("FAIL: %s not built\n", QPLAN);
        return 1;
    }
    tmp_init("qrun-synth");
    char m[600], p[600], pn[600], m2[600], p2[600];
    snprintf(m, sizeof m, "%s/tiny.gguf", tmpdir);
    snprintf(p, sizeof p, "%s/tiny.yaml", tmpdir);
    snprintf(pn, sizeof pn, "%s/tiny-nofuse.yaml", tmpdir);
    snprintf(m2, sizeof m2, "%s/mixed.gguf", tmpdir);
    snprintf(p2, sizeof p2, "%s/mixed.yaml", tmpdir);
    sh("%s synth --arch qwen2 --n-layer 2 --n-embd 256 --n-head 4 --n-head-kv 2 --n-ff 512 "
       "--n-vocab 320 --seed 7 -o %s", QPLAN, m);
    sh("%s compile %s -o %s --ctx 64 --chunk 16", QPLAN, m, p);
    sh("%s compile %s -o %s --ctx 64 --chunk 16 --no-fuse all", QPLAN, m, pn);
    check_against_oracle("q8_0 fused", p, m);
    check_against_oracle("q8_0 unfused", pn, m);
    check_generation(p, pn, m);
    /* the default model's mix of types (and K-quants), tied output */
    sh("%s synth --arch qwen2 --n-layer 2 --n-embd 256 --n-head 4 --n-head-kv 2 --n-ff 512 "
       "--n-vocab 320 --seed 8 --types 'attn_q=q5_0,attn_k=q5_0,attn_v=q8_0,attn_output=q5_0,"
       "ffn_gate=q4_k,ffn_up=q4_0,ffn_down=q6_k,token_embd=q8_0,output=tied' -o %s", QPLAN, m2);
    sh("%s compile %s -o %s --ctx 64 --chunk 16", QPLAN, m2, p2);
    check_against_oracle("mixed types, tied output", p2, m2);
    tmp_cleanup();
    if (failures) printf("%d failure(s)\n", failures);
    else printf("runtime synth: all checks passed\n");
    return failures ? 1 : 0;
}
