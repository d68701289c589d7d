/* test_runtime_model.c — qrun on the default real model (label model; skips when the model is
 * absent): the plan's logits equal the oracle's at each of the first 16 positions of a prompt
 * (decode steps) and after a 16-token prefill; and the haiku anti-cheat test: a haiku
 * about a word chosen at random now, greedy with a small -n, must be non-empty, differ between
 * two words, and be reproduced token for token by the oracle's forward pass.
 * Tolerance as in test_runtime_synth.c (F16 KV cache vs the oracle's f32), 24 layers: 5e-3 of
 * the logits' scale.
 */
#include "runtime_common.h"

#include <time.h>

#include "qp_chat.h"
#include "qp_tokenizer.h"

#define TOL 5e-3
#define N_HAIKU 8 /* tokens generated per word: enough to differ, small for 2 cores */

static const char *model_path(void) {
    static char p[1024];
    const char *env = getenv("QP_MODEL");
    if (env && *env) return access(env, R_OK) == 0 ? env : NULL;
    snprintf(p, sizeof p, "%s/.cache/qplan/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
             getenv("HOME") ? getenv("HOME") : "");
    return access(p, R_OK) == 0 ? p : NULL;
}

static const char *const WORDS[] = {
    "river", "lantern", "granite", "orchid", "thunder", "harbor", "meadow", "comet", "velvet",
    "glacier", "ember", "willow", "compass", "desert", "violin", "snowfall", "lighthouse",
    "saffron", "tortoise", "volcano", "pebble", "midnight", "canyon", "sparrow", "kettle",
    "autumn", "mirror", "bamboo", "coral", "whisper",
};

/* Generates a haiku about word; checks it against the oracle token for token. Returns the
 * number of generated tokens copied into out. */
static int haiku(struct qrun *q, struct qp_ref *r, const char *word, int32_t *out) {
    char msg[256];
    snprintf(msg, sizeof msg, "Write a haiku about %s.", word);
    qrun_reset(q);
    struct qrun_gen_options g = qrun_gen_options_default();
    g.sampling.temp = 0.0f;
    g.n_predict = N_HAIKU;
    struct qrun_stats st;
    struct qp_error e = {{0}};
    static struct collect c;
    memset(&c, 0, sizeof c);
    CHECK(qrun_chat_turn(q, NULL, msg, &g, collect_cb, &c, &st, &e) == QP_OK, "chat: %s", e.msg);
    printf("haiku about '%s' (%d tokens, %s): \"%s\"\n", word, c.n, qrun_stop_str(st.stop), c.text);
    CHECK(c.n > 0 && c.len > 0, "empty output for '%s'", word);

    /* the oracle: the same rendered prompt, tokenized the same way, then greedy */
    struct qp_chat *ch = NULL;
    struct qp_gguf *g2 = NULL;
    const char *tmpl = NULL;
    CHECK(qp_gguf_open(qrun_model_path(q), 0, &g2, &e) == QP_OK &&
              qp_gguf_get_str(g2, "tokenizer.chat_template", &tmpl, &e) == QP_OK &&
              qp_chat_init(tmpl, NULL, &ch, &e) == QP_OK,
          "chat template: %s", e.msg);
    const char *text = qp_chat_next_turn(ch, msg, &e);
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(qp_tokenizer_encode(qrun_tokenizer(q), text, strlen(text), true, &ids, &n, &e) == QP_OK,
          "encode: %s", e.msg);
    CHECK((int64_t)n == st.n_prompt, "prompt: %zu tokens here, %lld in qrun", n, (long long)st.n_prompt);
    int32_t nv = qp_ref_config(r)->n_vocab;
    float *lg = malloc((size_t)nv * sizeof(float));
    int pos = 0;
    for (size_t i = 0; i < n; i++) qp_ref_forward(r, ids[i], pos++, lg, &e);
    int same = 0;
    for (int k = 0; k < c.n; k++) {
        int32_t t = argmax_f(lg, nv);
        if (t != c.tok[k]) {
            printf("oracle picks %d at generated token %d, qrun %d\n", t, k, c.tok[k]);
            break;
        }
        same++;
        qp_ref_forward(r, t, pos++, lg, &e);
    }
    CHECK(same == c.n, "the oracle reproduces %d of %d tokens for '%s'", same, c.n, word);
    printf("oracle reproduces all %d tokens for '%s'\n", same, word);
    memcpy(out, c.tok, sizeof(int32_t) * (size_t)c.n);
    free(lg);
    free(ids);
    qp_chat_free(ch);
    qp_gguf_close(g2);
    return c.n;
}

int main(void) {
    const char *model = model_path();
    if (!model) {
        printf("skip: the default model is absent (scripts/fetch-model.sh, or set QP_MODEL)\n");
        return 77;
    }
    tmp_init("qrun-model");
    char plan[600];
    snprintf(plan, sizeof plan, "%s/model.yaml", tmpdir);
    sh("%s compile %s -o %s --ctx 256", QPLAN, model, plan);
    struct qrun *q = open_plan(plan, model, 0);
    struct qp_error e = {{0}};
    struct qp_gguf *g = NULL;
    struct qp_ref *r = NULL;
    if (qp_gguf_open(model, 0, &g, &e) != QP_OK || qp_ref_open(g, 256, &r, &e) != QP_OK) {
        printf("FAIL: oracle: %s\n", e.msg);
        return 1;
    }
    int32_t nv = qrun_n_vocab(q);
    /* first 16 tokens of a prompt */
    const char *prompt = "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number, iteratively.\"\"\"\n";
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(qp_tokenizer_encode(qrun_tokenizer(q), prompt, strlen(prompt), false, &ids, &n, &e) == QP_OK && n >= 16,
          "tokenize: %s (%zu tokens)", e.msg, n);
    float *ref = malloc(16 * (size_t)nv * sizeof(float));
    for (int p = 0; p < 16; p++) qp_ref_forward(r, ids[p], p, ref + (size_t)p * nv, &e);
    double worst = 0.0;
    for (int p = 0; p < 16; p++) {
        const float *lg;
        CHECK(qrun_eval(q, &ids[p], 1, p, &lg, &e) == QP_OK, "eval: %s", e.msg);
        int32_t wi;
        double d = logits_err(lg, ref + (size_t)p * nv, nv, &wi);
        if (d > worst) worst = d;
        CHECK(d <= TOL, "decode pos %d: logit %d differs by %.3g of the scale", p, wi, d);
        CHECK(argmax_f(lg, nv) == argmax_f(ref + (size_t)p * nv, nv), "argmax differs at %d", p);
    }
    printf("default model, 16 decode positions vs oracle: worst %.3g of the scale\n", worst);
    {
        const float *lg;
        CHECK(qrun_eval(q, ids, 16, 0, &lg, &e) == QP_OK, "eval: %s", e.msg);
        int32_t wi;
        double d = logits_err(lg, ref + 15 * (size_t)nv, nv, &wi);
        CHECK(d <= TOL, "prefill of 16: logit %d differs by %.3g", wi, d);
        printf("default model, prefill of 16 vs oracle: %.3g of the scale\n", d);
    }
    free(ref);
    free(ids);

    /* haiku anti-cheat: two different words chosen now */
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    srand(seed);
    int nw = (int)(sizeof WORDS / sizeof WORDS[0]);
    int a = rand() % nw, b = rand() % (nw - 1);
    if (b >= a) b++;
    printf("haiku words (seed %u): %s, %s\n", seed, WORDS[a], WORDS[b]);
    int32_t ta[N_HAIKU] = {0}, tb[N_HAIKU] = {0};
    qp_ref_free(r);
    qp_ref_open(g, 256, &r, &e);
    int na = haiku(q, r, WORDS[a], ta);
    qp_ref_free(r);
    qp_ref_open(g, 256, &r, &e);
    int nb = haiku(q, r, WORDS[b], tb);
    CHECK(na != nb || memcmp(ta, tb, sizeof(int32_t) * (size_t)na) != 0,
          "the haikus about '%s' and '%s' are the same tokens", WORDS[a], WORDS[b]);

    /* chat keeps earlier turns in the KV cache: turn 2 continued from the cache gives the
     * tokens that evaluating the whole conversation from position 0 gives */
    {
        qrun_reset(q);
        struct qrun_gen_options gg = qrun_gen_options_default();
        gg.sampling.temp = 0.0f;
        gg.n_predict = 4;
        struct qrun_stats st1, st2, st3;
        static struct collect c1, c2, c3;
        memset(&c1, 0, sizeof c1);
        memset(&c2, 0, sizeof c2);
        memset(&c3, 0, sizeof c3);
        CHECK(qrun_chat_turn(q, NULL, "Name a color.", &gg, collect_cb, &c1, &st1, &e) == QP_OK, "%s", e.msg);
        CHECK(qrun_chat_turn(q, NULL, "Another one?", &gg, collect_cb, &c2, &st2, &e) == QP_OK, "%s", e.msg);
        CHECK(st2.n_prompt < 20, "turn 2 evaluated %lld prompt tokens: earlier turns were re-fed",
              (long long)st2.n_prompt);
        /* the same conversation as one token sequence from position 0 */
        struct qp_chat *ch = NULL;
        const char *tmpl = NULL;
        qp_gguf_get_str(g, "tokenizer.chat_template", &tmpl, &e);
        qp_chat_init(tmpl, NULL, &ch, &e);
        int32_t all[512];
        size_t na2 = 0;
        const char *turns[2] = {"Name a color.", "Another one?"};
        for (int t = 0; t < 2; t++) {
            const char *txt = qp_chat_next_turn(ch, turns[t], &e);
            int32_t *ids2 = NULL;
            size_t n2 = 0;
            qp_tokenizer_encode(qrun_tokenizer(q), txt, strlen(txt), true, &ids2, &n2, &e);
            for (size_t k = 0; k < n2 && na2 < 512; k++) all[na2++] = ids2[k];
            free(ids2);
            if (t == 0) /* the reply as generated; if it hit -n, its last token was never fed */
                for (int k = 0; k < c1.n && na2 < 512; k++) all[na2++] = c1.tok[k];
        }
        qp_chat_free(ch);
        CHECK(qrun_generate_tokens(q, all, na2, &gg, collect_cb, &c3, &st3, &e) == QP_OK, "%s", e.msg);
        CHECK(c2.n == c3.n && memcmp(c2.tok, c3.tok, sizeof(int32_t) * (size_t)c2.n) == 0,
              "turn 2 from the KV cache (\"%s\") differs from the whole conversation (\"%s\")",
              c2.text, c3.text);
        printf("chat: turn 2 from the cache (%lld new prompt tokens) = whole conversation (%lld): \"%s\"\n",
               (long long)st2.n_prompt, (long long)st3.n_prompt, c2.text);
    }
    qp_ref_free(r);
    qp_gguf_close(g);
    qrun_close(q);
    tmp_cleanup();
    if (failures) printf("%d failure(s)\n", failures);
    else printf("runtime model: all checks passed\n");
    return failures ? 1 : 0;
}
