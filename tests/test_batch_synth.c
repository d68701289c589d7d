/* test_batch_synth.c — many sequences at once (include/qrun.h, "Sequences") on the CPU backend
 * over a synthetic Qwen2 model that qplan writes and compiles with 16 slots at test time:
 *   - every sequence's logits in a batch are bit-identical to its logits decoded alone, at every
 *     step, with mixed depths (3 and 3,000 positions) and sequences joining, finishing and being
 *     cancelled mid-batch (the CPU ops compute each row on its own, so nothing may differ);
 *   - 16 prompts decoded together give each one's greedy tokens alone, and seeded sampling per
 *     sequence gives the same tokens together as alone;
 *   - a sequence's streamed text equals qrun_generate's for the same prompt and options;
 *   - qrun_seq_restart keeps the prefix a new prompt shares with the slot's cache (an earlier
 *     prompt and what it generated) and gives the same logits as the whole prompt run afresh;
 *   - limits: more sequences than slots, a prompt past the context, a token outside the
 *     vocabulary, append while generating, qrun_generate while sequences are open: clear errors,
 *     nothing changed; a full context stops the sequence exactly at its last position.
 */
#include "runtime_common.h"

enum { MAX_GEN = 48, SLOTS = 16 };

/* One sequence's generation: its tokens, and (keep_logits) the logits each came from. */
struct gen_rec {
    int32_t tok[MAX_GEN];
    float *logits; /* [MAX_GEN][n_vocab] */
    int n;
    char text[8192];
    size_t len;
    enum qrun_stop stop;
};

static void rec_init(struct gen_rec *r, int32_t nv) {
    memset(r, 0, sizeof *r);
    r->logits = calloc((size_t)MAX_GEN * (size_t)nv, sizeof(float));
}

/* Reads what s produced this step into r (at most one token per step, by the scheduler's rule). */
static void rec_read(struct qrun_seq *s, struct gen_rec *r, int32_t nv, const char *what) {
    const int32_t *t;
    size_t n, len;
    const char *text;
    qrun_seq_read(s, &t, &n, &text, &len);
    CHECK(n <= 1, "%s: %zu tokens in one step", what, n);
    for (size_t i = 0; i < n && r->n < MAX_GEN; i++) {
        const float *lg = qrun_seq_logits(s);
        if (lg) memcpy(r->logits + (size_t)r->n * (size_t)nv, lg, (size_t)nv * sizeof(float));
        r->tok[r->n++] = t[i];
    }
    if (r->len + len < sizeof r->text) {
        memcpy(r->text + r->len, text, len);
        r->len += len;
        r->text[r->len] = 0;
    }
    r->stop = qrun_seq_stop(s);
}

static struct qrun_seq *open_seq(struct qrun *q, const struct qrun_seq_options *o, const int32_t *p, size_t n) {
    struct qp_error e = {{0}};
    struct qrun_seq *s = NULL;
    if (qrun_seq_open(q, o, &s, &e) != QP_OK || qrun_seq_append(s, p, n, &e) != QP_OK) {
        printf("FAIL: opening a sequence: %s\n", e.msg);
        exit(1);
    }
    return s;
}

static void step(struct qrun *q, struct qrun_step_info *in) {
    struct qp_error e = {{0}};
    if (qrun_step(q, in, &e) != QP_OK) {
        printf("FAIL: step: %s\n", e.msg);
        exit(1);
    }
}

/* Runs one sequence alone to its end. */
static void alone(struct qrun *q, const struct qrun_seq_options *o, const int32_t *p, size_t n, struct gen_rec *r) {
    const int32_t nv = qrun_n_vocab(q);
    struct qrun_seq *s = open_seq(q, o, p, n);
    struct qrun_step_info in;
    do {
        step(q, &in);
        rec_read(s, r, nv, "alone");
    } while (in.n_active > 0);
    qrun_seq_close(s);
}

static int32_t *random_prompt(size_t n, int32_t nv, unsigned seed) {
    int32_t *p = malloc(n * sizeof *p);
    srand(seed);
    for (size_t i = 0; i < n; i++) p[i] = rand() % nv;
    return p;
}

/* Sequences joining at different steps, at depths from 1 to 3,000, one cancelled mid-batch, one
 * ending at its token limit while others go on: every logit of every token bit-identical to the
 * sequence decoded alone. */
static void check_logits_identical(struct qrun *q) {
    enum { N = 6 };
    /* the 3,000-token prompt takes ~190 steps of 16-token chunks; the others join near its end,
     * take turns with it, and decode next to it (up to 5 rows: the 8-row program, with padding) */
    const size_t len[N] = {3, 3000, 17, 1, 40, 100};
    const int join[N] = {165, 0, 160, 170, 175, 180};  /* the step it opens at */
    const int64_t limit[N] = {48, 24, 6, 48, 48, 20};  /* n_predict */
    const int cancel_at = 215, cancelled = 3;          /* that sequence is cancelled at that step */
    const int32_t nv = qrun_n_vocab(q);
    int32_t *p[N];
    struct gen_rec ref[N], got[N];
    struct qrun_seq_options o = qrun_seq_options_default();
    o.sampling.temp = 0.0f;
    o.keep_logits = true;
    for (int i = 0; i < N; i++) {
        p[i] = random_prompt(len[i], nv, 100u + (unsigned)i);
        rec_init(&ref[i], nv);
        rec_init(&got[i], nv);
        o.n_predict = limit[i];
        alone(q, &o, p[i], len[i], &ref[i]);
    }
    struct qrun_seq *s[N] = {0};
    int most = 0, steps = 0;
    for (;; steps++) {
        for (int i = 0; i < N; i++)
            if (join[i] == steps) {
                o.n_predict = limit[i];
                s[i] = open_seq(q, &o, p[i], len[i]);
            }
        if (steps == cancel_at) qrun_seq_cancel(s[cancelled]);
        struct qrun_step_info in;
        step(q, &in);
        if (in.n_decode > most) most = in.n_decode;
        for (int i = 0; i < N; i++)
            if (s[i]) rec_read(s[i], &got[i], nv, "batch");
        if (in.n_active == 0 && steps >= join[N - 1]) break;
    }
    int compared = 0;
    for (int i = 0; i < N; i++) {
        const int n = got[i].n;
        if (i == cancelled) CHECK(got[i].stop == QRUN_STOP_CANCEL && n < ref[i].n, "seq %d: not cancelled (%d tokens)", i, n);
        else CHECK(n == ref[i].n && got[i].stop == ref[i].stop, "seq %d: %d tokens (%s), alone %d (%s)", i, n,
                   qrun_stop_str(got[i].stop), ref[i].n, qrun_stop_str(ref[i].stop));
        for (int k = 0; k < n && k < ref[i].n; k++) {
            const bool same = got[i].tok[k] == ref[i].tok[k] &&
                              memcmp(got[i].logits + (size_t)k * (size_t)nv, ref[i].logits + (size_t)k * (size_t)nv,
                                     (size_t)nv * sizeof(float)) == 0;
            CHECK(same, "seq %d (prompt %zu) token %d: logits differ from alone", i, len[i], k);
            compared++;
        }
        qrun_seq_close(s[i]);
    }
    CHECK(most >= 5, "at most %d sequences decoded in one step: the test did not batch", most);
    printf("logits: %d tokens of %d sequences (prompts 1..3000, up to %d in one batch, %d steps) bit-identical to "
           "alone\n", compared, N, most, steps);
    for (int i = 0; i < N; i++) {
        free(p[i]);
        free(ref[i].logits);
        free(got[i].logits);
    }
}

/* 16 prompts together against each alone: greedy tokens, then seeded sampling. */
static void check_sixteen(struct qrun *q, bool sampled) {
    const int32_t nv = qrun_n_vocab(q);
    int32_t *p[SLOTS];
    size_t len[SLOTS];
    struct gen_rec ref[SLOTS], got[SLOTS];
    struct qrun_seq_options o[SLOTS];
    for (int i = 0; i < SLOTS; i++) {
        len[i] = 1 + (size_t)(i * 7) % 50;
        p[i] = random_prompt(len[i], nv, 500u + (unsigned)i);
        o[i] = qrun_seq_options_default();
        o[i].n_predict = MAX_GEN;
        if (sampled) { /* each its own sampler: temperatures, top-k, seeds */
            o[i].sampling.temp = 0.5f + 0.1f * (float)(i % 5);
            o[i].sampling.top_k = 10 + i;
            o[i].sampling.seed = 1000u + (uint64_t)i;
            o[i].sampling.repeat_penalty = i % 2 ? 1.1f : 1.0f;
        } else {
            o[i].sampling.temp = 0.0f;
        }
        rec_init(&ref[i], 1);
        rec_init(&got[i], 1);
        alone(q, &o[i], p[i], len[i], &ref[i]);
    }
    struct qrun_seq *s[SLOTS];
    for (int i = 0; i < SLOTS; i++) s[i] = open_seq(q, &o[i], p[i], len[i]);
    struct qrun_step_info in;
    int most = 0;
    do {
        step(q, &in);
        if (in.n_decode > most) most = in.n_decode;
        for (int i = 0; i < SLOTS; i++) rec_read(s[i], &got[i], 1, "batch");
    } while (in.n_active > 0);
    int same = 0;
    for (int i = 0; i < SLOTS; i++) {
        bool eq = got[i].n == ref[i].n && memcmp(got[i].tok, ref[i].tok, (size_t)got[i].n * sizeof(int32_t)) == 0 &&
                  got[i].len == ref[i].len && memcmp(got[i].text, ref[i].text, got[i].len) == 0;
        CHECK(eq, "%s prompt %d: %d tokens together, %d alone, or other tokens or text", sampled ? "sampled" : "greedy",
              i, got[i].n, ref[i].n);
        same += eq;
        qrun_seq_close(s[i]);
        free(p[i]);
        free(ref[i].logits);
        free(got[i].logits);
    }
    CHECK(most > SLOTS / 2, "at most %d of %d decoded in one step: the %d-row program never ran", most, SLOTS, SLOTS);
    printf("%s: %d of %d prompts decoded together (up to %d per step) give the tokens and text they give alone\n",
           sampled ? "seeded sampling" : "greedy", same, SLOTS, most);
}

/* The streamed text and stop rules are qrun_generate's: same prompt, options and stop string. */
static void check_text_matches_generate(struct qrun *q) {
    const int32_t nv = qrun_n_vocab(q);
    int32_t *p = random_prompt(12, nv, 77);
    struct qrun_gen_options g = qrun_gen_options_default();
    g.sampling.temp = 0.0f;
    g.n_predict = 30;
    struct collect c = {0};
    struct qrun_stats st;
    struct qp_error e = {{0}};
    CHECK(qrun_generate_tokens(q, p, 12, &g, collect_cb, &c, &st, &e) == QP_OK, "generate: %s", e.msg);
    /* a stop string from the middle of that text: both must stop there, neither print it */
    char stop[4] = {0};
    if (c.len >= 12) memcpy(stop, c.text + c.len / 2, 2);
    const char *stops[1] = {stop};
    g.stop = stops;
    g.n_stop = stop[0] ? 1 : 0;
    struct collect c2 = {0};
    CHECK(qrun_generate_tokens(q, p, 12, &g, collect_cb, &c2, &st, &e) == QP_OK, "generate: %s", e.msg);
    struct qrun_seq_options o = qrun_seq_options_default();
    o.sampling.temp = 0.0f;
    o.n_predict = 30;
    o.stop = stops;
    o.n_stop = g.n_stop;
    struct gen_rec r;
    rec_init(&r, 1);
    alone(q, &o, p, 12, &r);
    CHECK(r.len == c2.len && memcmp(r.text, c2.text, r.len) == 0 && r.stop == st.stop,
          "sequence text '%s' (%s), generate's '%s' (%s)", r.text, qrun_stop_str(r.stop), c2.text,
          qrun_stop_str(st.stop));
    printf("text: a sequence streams what qrun_generate prints (%zu bytes, a %zu-byte stop string: %s)\n", r.len,
           strlen(stop), qrun_stop_str(r.stop));
    free(r.logits);
    free(p);
}

/* A conversation's next turn through qrun_seq_restart: the new prompt repeats the first prompt and
 * what was generated, then adds tokens; the kept prefix is exactly what the cache holds (the last
 * generated token is not in it), and every logit equals those of the whole prompt run in a fresh
 * slot. Restarting a running sequence is refused and changes nothing. */
static void check_restart(struct qrun *q) {
    const int32_t nv = qrun_n_vocab(q);
    struct qp_error e = {{0}};
    struct qrun_seq_options o = qrun_seq_options_default();
    o.sampling.temp = 0;
    o.keep_logits = true;
    o.n_predict = 8;
    int32_t *p = random_prompt(20, nv, 11);
    struct gen_rec first, again, fresh;
    rec_init(&first, nv);
    rec_init(&again, nv);
    rec_init(&fresh, nv);
    struct qrun_seq *s = open_seq(q, &o, p, 20);
    struct qrun_step_info in;
    do {
        step(q, &in);
        rec_read(s, &first, nv, "restart: first turn");
    } while (in.n_active > 0);
    CHECK(first.n == 8, "restart: first turn made %d tokens", first.n);
    int32_t next[40];
    memcpy(next, p, 20 * sizeof *p);
    memcpy(next + 20, first.tok, 8 * sizeof *p);
    for (int i = 0; i < 5; i++) next[28 + i] = (i * 37 + 5) % nv;
    CHECK(qrun_seq_common_prefix(s, next, 33) == 27, "restart: common prefix %lld, expected 27",
          (long long)qrun_seq_common_prefix(s, next, 33));
    o.n_predict = 6;
    int64_t reused = -1;
    CHECK(qrun_seq_restart(s, &o, next, 33, &reused, &e) == QP_OK && reused == 27, "restart: %s (reused %lld)", e.msg,
          (long long)reused);
    step(q, &in);
    CHECK(qrun_seq_restart(s, &o, next, 33, NULL, &e) == QP_ERR_INVALID && qrun_seq_state(s) != QRUN_SEQ_IDLE,
          "restart while running: not refused");
    rec_read(s, &again, nv, "restart");
    while (in.n_active > 0) {
        step(q, &in);
        rec_read(s, &again, nv, "restart");
    }
    qrun_seq_close(s);
    alone(q, &o, next, 33, &fresh);
    CHECK(again.n == 6 && fresh.n == 6, "restart: %d and %d tokens", again.n, fresh.n);
    /* the kept positions were written by decode steps, the fresh ones by a prefill chunk: the
     * CPU ops round those differently in the last bits, so the logits agree to a tolerance and
     * the greedy tokens exactly */
    double worst = 0;
    for (int t = 0; t < again.n && t < fresh.n; t++) {
        CHECK(again.tok[t] == fresh.tok[t], "restart: token %d differs from the whole prompt run afresh (%d vs %d)", t,
              again.tok[t], fresh.tok[t]);
        for (int32_t i = 0; i < nv; i++) {
            double d = fabs((double)again.logits[(size_t)t * (size_t)nv + (size_t)i] -
                            (double)fresh.logits[(size_t)t * (size_t)nv + (size_t)i]);
            if (d > worst) worst = d;
        }
    }
    CHECK(worst < 1e-3, "restart: logits differ by %g from the whole prompt run afresh", worst);
    printf("restart: 27 of 33 prompt positions kept; 6 tokens as from the whole prompt afresh (logits within %.2g)\n",
           worst);
    /* the whole prompt again: all of it is cached, and its last token still runs */
    s = open_seq(q, &o, next, 33);
    do step(q, &in); while (in.n_active > 0);
    CHECK(qrun_seq_restart(s, &o, next, 33, &reused, &e) == QP_OK && reused == 32, "restart, same prompt: reused %lld",
          (long long)reused);
    do step(q, &in); while (in.n_active > 0);
    CHECK(qrun_seq_n_gen(s) == 6, "restart, same prompt: %lld tokens", (long long)qrun_seq_n_gen(s));
    qrun_seq_close(s);
    free(first.logits);
    free(again.logits);
    free(fresh.logits);
    free(p);
}

static void check_limits(const char *plan, const char *model) {
    struct qrun *q = open_plan(plan, model, 64); /* -c 64: each sequence 64 positions */
    const int32_t nv = qrun_n_vocab(q);
    struct qp_error e = {{0}};
    struct qrun_seq_options o = qrun_seq_options_default();
    o.sampling.temp = 0.0f;
    struct qrun_seq *s[SLOTS + 1] = {0};
    for (int i = 0; i < SLOTS; i++) CHECK(qrun_seq_open(q, &o, &s[i], &e) == QP_OK, "open %d: %s", i, e.msg);
    CHECK(qrun_slots(q) == SLOTS, "slots %d", qrun_slots(q));
    enum qp_status st = qrun_seq_open(q, &o, &s[SLOTS], &e);
    CHECK(st == QP_ERR_RANGE && s[SLOTS] == NULL && strstr(e.msg, "slots"), "one sequence too many: %s", e.msg);
    printf("limits: a 17th sequence: %s\n", e.msg);
    int32_t *p = random_prompt(65, nv, 9);
    st = qrun_seq_append(s[0], p, 65, &e);
    CHECK(st == QP_ERR_RANGE && qrun_seq_state(s[0]) == QRUN_SEQ_IDLE, "a prompt of 65 in 64: %s", e.msg);
    printf("limits: %s\n", e.msg);
    int32_t bad[2] = {1, nv};
    st = qrun_seq_append(s[0], bad, 2, &e);
    CHECK(st == QP_ERR_RANGE && qrun_seq_state(s[0]) == QRUN_SEQ_IDLE, "a token outside the vocabulary: %s", e.msg);
    struct collect c = {0};
    struct qrun_gen_options g = qrun_gen_options_default();
    st = qrun_generate_tokens(q, p, 4, &g, collect_cb, &c, NULL, &e);
    CHECK(st == QP_ERR_INVALID && c.n == 0, "generate with sequences open: %s", e.msg);
    /* a full context: 60 prompt tokens, then tokens up to position 64 exactly */
    CHECK(qrun_seq_append(s[1], p, 60, &e) == QP_OK, "append: %s", e.msg);
    CHECK(qrun_seq_append(s[2], p, 5, &e) == QP_OK, "append: %s", e.msg);
    struct qrun_step_info in;
    int steps = 0;
    bool tried = false;
    do {
        step(q, &in);
        steps++;
        if (!tried && qrun_seq_state(s[2]) == QRUN_SEQ_DECODE) {
            st = qrun_seq_append(s[2], p, 1, &e);
            CHECK(st == QP_ERR_INVALID, "append while generating: %s", e.msg);
            tried = true;
        }
    } while (in.n_active > 0 && steps < 1000);
    const int32_t *t;
    size_t n, len;
    const char *text;
    qrun_seq_read(s[1], &t, &n, &text, &len);
    CHECK(qrun_seq_stop(s[1]) == QRUN_STOP_CONTEXT && qrun_seq_pos(s[1]) == 64 && n == 5,
          "full context: %s at position %lld after %zu tokens (want context full at 64 after 5)",
          qrun_stop_str(qrun_seq_stop(s[1])), (long long)qrun_seq_pos(s[1]), n);
    CHECK(qrun_seq_stop(s[2]) == QRUN_STOP_CONTEXT && qrun_seq_pos(s[2]) == 64, "the other: %s at %lld",
          qrun_stop_str(qrun_seq_stop(s[2])), (long long)qrun_seq_pos(s[2]));
    st = qrun_seq_append(s[1], p, 1, &e);
    CHECK(st == QP_ERR_RANGE, "a new turn in a full context: %s", e.msg);
    printf("limits: a full context stops at position %lld; then %s\n", (long long)qrun_seq_pos(s[1]), e.msg);
    /* a stopped sequence continues with a new turn; a closed slot opens again */
    qrun_seq_close(s[3]);
    CHECK(qrun_seq_open(q, &o, &s[3], &e) == QP_OK && qrun_seq_slot(s[3]) == 3, "reopen: %s", e.msg);
    o.n_predict = 3;
    qrun_seq_close(s[4]);
    CHECK(qrun_seq_open(q, &o, &s[4], &e) == QP_OK, "reopen: %s", e.msg);
    CHECK(qrun_seq_append(s[4], p, 10, &e) == QP_OK, "append: %s", e.msg);
    do step(q, &in); while (in.n_active > 0);
    CHECK(qrun_seq_stop(s[4]) == QRUN_STOP_LENGTH && qrun_seq_pos(s[4]) == 12, "3 tokens: %s at %lld",
          qrun_stop_str(qrun_seq_stop(s[4])), (long long)qrun_seq_pos(s[4]));
    CHECK(qrun_seq_append(s[4], p, 4, &e) == QP_OK, "a second turn: %s", e.msg);
    do step(q, &in); while (in.n_active > 0);
    CHECK(qrun_seq_stop(s[4]) == QRUN_STOP_LENGTH && qrun_seq_pos(s[4]) == 12 + 1 + 4 + 2 &&
              qrun_seq_n_gen(s[4]) == 3,
          "second turn: %s at %lld", qrun_stop_str(qrun_seq_stop(s[4])), (long long)qrun_seq_pos(s[4]));
    for (int i = 0; i < SLOTS; i++) qrun_seq_close(s[i]);
    CHECK(qrun_generate_tokens(q, p, 4, &g, collect_cb, &c, NULL, &e) == QP_OK, "generate after closing: %s", e.msg);
    free(p);
    qrun_close(q);
}

int main(void) {
    if (access(QPLAN, X_OK) != 0) {
        printf("FAIL: %s not built\n", QPLAN);
        return 1;
    }
    tmp_init("qrun-batch");
    char m[600], p[600];
    snprintf(m, sizeof m, "%s/tiny.gguf", tmpdir);
    snprintf(p, sizeof p, "%s/tiny-slots.yaml", tmpdir);
    sh("%s synth --arch qwen2 --n-layer 2 --n-embd 256 --n-head 4 --n-head-kv 2 --n-ff 512 "
       "--n-vocab 320 --seed 7 -o %s", QPLAN, m);
    sh("%s compile %s -o %s --ctx 3200 --chunk 16 --slots %d", QPLAN, m, p, SLOTS);
    struct qrun *q = open_plan(p, m, 0);
    check_logits_identical(q);
    check_sixteen(q, false);
    check_sixteen(q, true);
    check_text_matches_generate(q);
    check_restart(q);
    qrun_close(q);
    check_limits(p, m);
    tmp_cleanup();
    if (failures) printf("%d failure(s)\n", failures);
    else printf("batch synth: all checks passed\n");
    return failures ? 1 : 0;
}
