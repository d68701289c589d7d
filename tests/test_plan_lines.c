/* test_plan_lines.c — every line of a plan, deleted in turn: the checks of `qplan validate plan
 * model` refuse the edit with a message naming a line, or the CPU backend's answer is unchanged.
 * No edit both validates and changes the answer.
 *
 *   test_plan_lines cpu     a small synthetic Qwen2 model made here (tied LM head, one layer's
 *                           q/k/v and another's gate/up of mixed types, so both stacked and
 *                           part-wise weights occur), compiled; every line deleted, and every
 *                           line swapped with the next; plus targeted edits (a swapped weight, a
 *                           wrong layer, eps, the passes list) that must be refused, and plans
 *                           compiled with other kernels, target and options that must pass
 *   test_plan_lines model   the checked-in plans/qwen2.5-coder-0.5b-instruct-q4_k_m.yaml with its
 *                           model (label model; exit 77 without it); every line deleted
 *
 * The checks are those cmd_validate.c runs, in its order and in process: qp_plan_read,
 * qp_plan_validate, qp_plan_check_kernels, qp_plan_check_model, qp_plan_check_semantics (through
 * one struct qp_semantics, so the reference plan is compiled once). An edit they all accept is
 * compared with the unedited plan as the plan writer writes both (the runtime sees nothing else):
 *   - the same text: the same plan (a key moved, a default written out); nothing to run;
 *   - one program's text differs, nothing else: the CPU backend (libqrun) runs that program on
 *     PROMPT's tokens (a chunk of its smallest size; for the 1-token program then 4 greedy
 *     tokens) and its logits and tokens must equal the unedited plan's bit for bit;
 *   - anything else: the whole answer: logits after a 9-token chunk (prefill), a 2-token chunk
 *     (prefill_small) and a 1-token step (decode), then 4 greedy tokens, bit for bit.
 * A run costs seconds on the real model (a CPU prefill chunk dequantizes every weight), and the
 * ~100 scratch lines of matvec linears (CPU staging, which the CPU op can take from its stack)
 * pass; one program's run keeps the model instance to minutes.
 * The answer check proves itself first: the first bias line deleted (a semantic fault the other
 * checks let through) must change the answer.
 */
#define _XOPEN_SOURCE 700
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "qp_compile.h"
#include "qp_ggml.h"
#include "qp_gguf.h"
#include "qp_plan.h"
#include "qp_synth.h"
#include "qp_tokenizer.h"
#include "qrun.h"

#define PROMPT "The capital of France is Paris, and the capital of Italy is"
#define N_GEN  4

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* --- the answer: what the CPU backend computes with a plan --------------------------------- */

/* What is run: chunks of PROMPT's tokens in turn from position 0 (their logits kept), then, with
 * generate, N_GEN greedy tokens from the next prompt token on that context. */
struct workload {
    int n_chunks;
    int32_t chunk[3];
    bool generate;
};

static const struct workload FULL = {3, {9, 2, 1}, true};

/* The workload that runs only program k of p: a chunk of its smallest size (then greedy tokens when
 * that is 1). False when the prompt is too short for it. */
static bool program_workload(const struct qp_plan *p, int32_t k, struct workload *w) {
    int32_t lo = p->programs[k].min_tok;
    *w = (struct workload){1, {lo, 0, 0}, lo == 1};
    return lo <= 12;
}

struct answer {
    int32_t n_vocab;
    int n_logits;
    float *logits[3]; /* after each chunk */
    int32_t tokens[N_GEN];
    int n_tokens;
};

static void answer_free(struct answer *a) {
    for (int i = 0; i < 3; i++) free(a->logits[i]);
    memset(a, 0, sizeof *a);
}

static int collect(void *user, int32_t token, const char *text, size_t len) {
    (void)text;
    (void)len;
    struct answer *a = user;
    if (token >= 0 && a->n_tokens < N_GEN) a->tokens[a->n_tokens++] = token;
    return 0;
}

/* The answer of plan on model for workload w, or a message in err (qrun refused the plan or
 * failed). */
static enum qp_status run_plan(const char *plan, const char *model, const struct workload *w,
                               struct answer *a, struct qp_error *err) {
    memset(a, 0, sizeof *a);
    struct qrun_options o = qrun_options_default();
    o.device = "cpu";
    o.model_path = model;
    struct qrun *q = NULL;
    enum qp_status st = qrun_open(plan, &o, &q, err);
    if (st != QP_OK) return st;
    a->n_vocab = qrun_n_vocab(q);
    int32_t *ids = NULL;
    size_t n = 0, need = w->generate ? 1 : 0, pos = 0;
    for (int i = 0; i < w->n_chunks; i++) need += (size_t)w->chunk[i];
    st = qp_tokenizer_encode(qrun_tokenizer(q), PROMPT, strlen(PROMPT), false, &ids, &n, err);
    if (st == QP_OK && n < need)
        st = qp_error_set(err, QP_ERR_INVALID, "the prompt is %zu tokens, the workload needs %zu",
                          n, need);
    for (int i = 0; i < w->n_chunks && st == QP_OK; i++) {
        const float *lg = NULL;
        st = qrun_eval(q, ids + pos, (size_t)w->chunk[i], (int64_t)pos, &lg, err);
        pos += (size_t)w->chunk[i];
        if (st != QP_OK) break;
        a->logits[i] = malloc((size_t)a->n_vocab * sizeof(float));
        if (!a->logits[i]) {
            st = qp_error_set(err, QP_ERR_NOMEM, "out of memory");
            break;
        }
        memcpy(a->logits[i], lg, (size_t)a->n_vocab * sizeof(float));
        a->n_logits = i + 1;
    }
    if (st == QP_OK && w->generate) {
        struct qrun_gen_options g = qrun_gen_options_default();
        g.sampling.temp = 0.0f;
        g.n_predict = N_GEN;
        g.keep_context = true; /* after the positions qrun_eval filled */
        struct qrun_stats stats;
        st = qrun_generate_tokens(q, ids + pos, 1, &g, collect, a, &stats, err);
    }
    free(ids);
    qrun_close(q);
    return st;
}

static bool same_answer(const struct answer *a, const struct answer *b) {
    if (a->n_vocab != b->n_vocab || a->n_logits != b->n_logits || a->n_tokens != b->n_tokens ||
        memcmp(a->tokens, b->tokens, sizeof(int32_t) * (size_t)a->n_tokens) != 0)
        return false;
    for (int i = 0; i < a->n_logits; i++)
        if (memcmp(a->logits[i], b->logits[i], (size_t)a->n_vocab * sizeof(float)) != 0)
            return false;
    return true;
}

/* --- what an edit changed, as the plan writer writes it ---------------------------------- */

#define DIFF_OTHER (1u << 31) /* something outside the programs, or their list */

/* Program name's section of a written plan (from its "  name:" line to the next line indented
 * two spaces); len 0 when absent. */
static const char *program_text(const char *text, const char *name, size_t *len) {
    char key[96];
    snprintf(key, sizeof key, "\n  %s:\n", name);
    const char *at = strstr(text, key), *end;
    *len = 0;
    if (!at) return NULL;
    for (end = at + strlen(key) - 1; (end = strchr(end + 1, '\n')) != NULL;)
        if (end[1] == ' ' && end[2] == ' ' && end[3] != ' ' && end[3] != '-') break;
    *len = end ? (size_t)(end - at) : strlen(at);
    return at;
}

/* Bit k: program k of base is written differently in edited; DIFF_OTHER: anything else is. */
static unsigned plan_diff(const struct qp_plan *base, const struct qp_plan *edited) {
    char *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    struct qp_error e;
    unsigned diff = 0;
    if (qp_plan_write_memory(base, &a, &la, &e) != QP_OK ||
        qp_plan_write_memory(edited, &b, &lb, &e) != QP_OK) {
        free(a);
        return DIFF_OTHER;
    }
    const char *pa = strstr(a, "\nprograms:\n"), *pb = strstr(b, "\nprograms:\n");
    if (!pa || !pb || pa - a != pb - b || memcmp(a, b, (size_t)(pa - a)) != 0 ||
        base->n_programs != edited->n_programs)
        diff |= DIFF_OTHER;
    for (int32_t k = 0; k < base->n_programs && !diff; k++)
        if (qp_plan_program_by_name(edited, base->programs[k].name) < 0) diff |= DIFF_OTHER;
    for (int32_t k = 0; k < base->n_programs && !(diff & DIFF_OTHER); k++) {
        size_t na, nb;
        const char *sa = program_text(pa, base->programs[k].name, &na);
        const char *sb = program_text(pb, base->programs[k].name, &nb);
        if (!sa || !sb)
            diff |= DIFF_OTHER;
        else if (na != nb || memcmp(sa, sb, na) != 0)
            diff |= 1u << k;
    }
    free(a);
    free(b);
    return diff;
}

/* --- the checks of qplan validate plan model ---------------------------------------------- */

enum stage { ST_READ, ST_VALIDATE, ST_KERNELS, ST_MODEL, ST_SEMANTICS, ST_PASSED, ST_COUNT };
static const char *const stage_names[ST_COUNT] = {"read",  "validate",  "kernels",
                                                  "model", "semantics", "passed"};

struct subject {
    const char *model;
    const char *text_path;    /* the unedited plan's file */
    struct qp_gguf *g;        /* header-only, as qplan validate opens it */
    struct qp_semantics *sem; /* one reference for every edit */
    char *text;               /* the plan file */
    size_t len;
    int n_lines;
    size_t *line_at;          /* [n_lines + 1] byte offset of each line, then len */
    struct qp_plan *plan;     /* the unedited plan, read */
    struct answer base;       /* the unedited plan's answer to FULL */
    struct answer *base_prog; /* [plan->n_programs] its answers to each program's workload; run
                                 when first needed (n_vocab 0 until then) */
    char edited_path[600];    /* where an edit that passes is written for qrun */
};

/* The stage at which text (named name) is refused, with its message in err; ST_PASSED. With
 * out, a plan that passes is returned there (the caller frees it). */
static enum stage check_text(struct subject *s, const char *text, size_t len, const char *name,
                             struct qp_plan **out, struct qp_error *err) {
    struct qp_plan *p = NULL;
    enum stage at = ST_READ;
    if (qp_plan_read_memory(text, len, name, &p, err) != QP_OK) return ST_READ;
    if (qp_plan_validate(p, err) != QP_OK)
        at = ST_VALIDATE;
    else if (qp_plan_check_kernels(p, err) != QP_OK)
        at = ST_KERNELS;
    else if (qp_plan_check_model(p, s->g, err) != QP_OK)
        at = ST_MODEL;
    else if (qp_semantics_check(s->sem, p, err) != QP_OK)
        at = ST_SEMANTICS;
    else
        at = ST_PASSED;
    if (at == ST_PASSED && out)
        *out = p;
    else
        qp_plan_free(p);
    return at;
}

/* Does msg start "name:LINE:" with LINE a line of a file of n_lines lines? */
static bool names_line(const char *msg, const char *name, int n_lines) {
    size_t k = strlen(name);
    if (strncmp(msg, name, k) != 0 || msg[k] != ':') return false;
    char *end;
    long line = strtol(msg + k + 1, &end, 10);
    return end != msg + k + 1 && *end == ':' && line >= 1 && line <= n_lines;
}

static bool write_file(const char *path, const char *text, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(text, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

static bool read_file(const char *path, char **text, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *text = malloc((size_t)n + 1);
    bool ok = *text && n >= 0 && fread(*text, 1, (size_t)n, f) == (size_t)n;
    fclose(f);
    if (ok) (*text)[n] = 0;
    *len = (size_t)n;
    return ok;
}

struct tally {
    int n[ST_COUNT];
    int same_plan;                     /* passed, written as the unedited plan: nothing to run */
    int unchanged_full, unchanged_one; /* passed, run (whole answer / one program): unchanged */
    int changed;         /* passed, and the answer changed or qrun refused: failures */
    int shown[ST_COUNT]; /* messages printed per stage */
    int show_passed;     /* passing edits to print */
};

/* The unedited plan's answer to w, for program k (-1: FULL). */
static const struct answer *base_answer(struct subject *s, int32_t k, const struct workload *w) {
    if (k < 0) return &s->base;
    struct answer *a = &s->base_prog[k];
    struct qp_error e = {{0}};
    if (!a->n_vocab && run_plan(s->text_path, s->model, w, a, &e) != QP_OK)
        printf("FAIL: qrun on the unedited plan, program %s: %s\n", s->plan->programs[k].name,
               e.msg);
    return a;
}

enum outcome { SAME_PLAN, UNCHANGED, CHANGED, QRUN_REFUSED };

/* The answer of edited plan p (text) against the unedited plan's: the same plan as written, or
 * run on the workload of the one program that differs (*k), or on FULL (*k = -1). */
static enum outcome compare_answer(struct subject *s, const struct qp_plan *p, const char *text,
                                   size_t len, int32_t *k, struct qp_error *err) {
    unsigned diff = plan_diff(s->plan, p);
    *k = -1;
    if (!diff) return SAME_PLAN;
    struct workload w = FULL;
    for (int32_t j = 0; j < s->plan->n_programs; j++)
        if (diff == 1u << j && program_workload(s->plan, j, &w)) *k = j;
    if (*k < 0) w = FULL;
    if (!write_file(s->edited_path, text, len)) {
        qp_error_set(err, QP_ERR_IO, "cannot write %s", s->edited_path);
        return QRUN_REFUSED;
    }
    const struct answer *want = base_answer(s, *k, &w);
    struct answer a;
    enum qp_status st = run_plan(s->edited_path, s->model, &w, &a, err);
    enum outcome o = st != QP_OK ? QRUN_REFUSED : same_answer(&a, want) ? UNCHANGED : CHANGED;
    answer_free(&a);
    return o;
}

/* One edited plan: checked; when it passes, its answer compared. what names the edit. */
static void judge(struct subject *s, const char *text, size_t len, int n_lines, const char *what,
                  struct tally *t) {
    struct qp_error e = {{0}};
    struct qp_plan *p = NULL;
    enum stage at = check_text(s, text, len, "edited.yaml", &p, &e);
    t->n[at]++;
    if (at != ST_PASSED) {
        CHECK(names_line(e.msg, "edited.yaml", n_lines),
              "%s: refused at %s without naming a line: %s", what, stage_names[at], e.msg);
        if (t->shown[at]++ < 2) printf("  %s refused (%s): %s\n", what, stage_names[at], e.msg);
        return;
    }
    int32_t k;
    enum outcome o = compare_answer(s, p, text, len, &k, &e);
    qp_plan_free(p);
    const char *runs = k < 0 ? "every program" : s->plan->programs[k].name;
    switch (o) {
    case SAME_PLAN: t->same_plan++; return;
    case UNCHANGED:
        if (k < 0)
            t->unchanged_full++;
        else
            t->unchanged_one++;
        if (t->unchanged_full + t->unchanged_one <= t->show_passed)
            printf("  %s passes; run on %s, the answer is unchanged\n", what, runs);
        return;
    case CHANGED:
        t->changed++;
        CHECK(0, "%s passes every check of qplan validate and changes the answer on %s", what,
              runs);
        return;
    case QRUN_REFUSED:
        t->changed++;
        CHECK(0, "%s passes every check of qplan validate, and qrun on %s refuses it: %s", what,
              runs, e.msg);
        return;
    }
}

static void index_lines(struct subject *s) {
    s->n_lines = 0;
    for (size_t i = 0; i < s->len; i++) s->n_lines += s->text[i] == '\n';
    if (s->len && s->text[s->len - 1] != '\n') s->n_lines++;
    s->line_at = malloc(((size_t)s->n_lines + 1) * sizeof *s->line_at);
    int k = 0;
    s->line_at[k++] = 0;
    for (size_t i = 0; i < s->len && k < s->n_lines; i++)
        if (s->text[i] == '\n') s->line_at[k++] = i + 1;
    s->line_at[s->n_lines] = s->len;
}

static void report(const char *what, int edits, const struct tally *t, double secs) {
    printf("%s: %d edits: refused %d (read %d, validate %d, kernels %d, model %d, semantics %d), "
           "passed %d (the same plan as written %d; run, answer unchanged: one program %d, every "
           "program %d; answer changed or refused by qrun %d); %.1f s\n",
           what, edits, edits - t->n[ST_PASSED], t->n[ST_READ], t->n[ST_VALIDATE], t->n[ST_KERNELS],
           t->n[ST_MODEL], t->n[ST_SEMANTICS], t->n[ST_PASSED], t->same_plan, t->unchanged_one,
           t->unchanged_full, t->changed, secs);
}

/* Every line deleted in turn. */
static void delete_each_line(struct subject *s) {
    char *buf = malloc(s->len + 1);
    struct tally t;
    memset(&t, 0, sizeof t);
    t.show_passed = 10;
    double t0 = now();
    for (int i = 0; i < s->n_lines; i++) {
        size_t a = s->line_at[i], b = s->line_at[i + 1];
        memcpy(buf, s->text, a);
        memcpy(buf + a, s->text + b, s->len - b);
        char what[64];
        snprintf(what, sizeof what, "line %d deleted", i + 1);
        judge(s, buf, s->len - (b - a), s->n_lines - 1, what, &t);
    }
    report("deletions", s->n_lines, &t, now() - t0);
    free(buf);
}

/* Every line swapped with the next. */
static void swap_each_line(struct subject *s) {
    char *buf = malloc(s->len + 2);
    struct tally t;
    memset(&t, 0, sizeof t);
    double t0 = now();
    for (int i = 0; i + 1 < s->n_lines; i++) {
        size_t a = s->line_at[i], b = s->line_at[i + 1], c = s->line_at[i + 2];
        if (c == s->len && s->text[c - 1] != '\n') continue; /* a last line without '\n' */
        memcpy(buf, s->text, a);
        memcpy(buf + a, s->text + b, c - b);
        memcpy(buf + a + (c - b), s->text + a, b - a);
        memcpy(buf + c, s->text + c, s->len - c);
        char what[64];
        snprintf(what, sizeof what, "lines %d and %d swapped", i + 1, i + 2);
        judge(s, buf, s->len, s->n_lines, what, &t);
    }
    report("swaps with the next line", s->n_lines - 1, &t, now() - t0);
    free(buf);
}

/* The answer check proves itself: the first bias line deleted must be refused by the semantic
 * check (naming a line), pass the others, and, run as judge would run it, change the answer. */
static void planted_bias(struct subject *s) {
    const char *at = strstr(s->text, "\n      bias: [");
    CHECK(at != NULL, "no bias line in the plan");
    if (!at) return;
    size_t a = (size_t)(at - s->text) + 1, b = a + strcspn(s->text + a, "\n") + 1;
    char *buf = malloc(s->len);
    memcpy(buf, s->text, a);
    memcpy(buf + a, s->text + b, s->len - b);
    size_t len = s->len - (b - a);
    int line = 1;
    for (size_t i = 0; i < a; i++) line += s->text[i] == '\n';
    struct qp_error e = {{0}};
    enum stage st = check_text(s, buf, len, "edited.yaml", NULL, &e);
    printf("planted: line %d (the first bias) deleted: refused at %s: %s\n", line, stage_names[st],
           e.msg);
    CHECK(st == ST_SEMANTICS && names_line(e.msg, "edited.yaml", s->n_lines - 1),
          "the deleted bias must be refused by the semantic check naming a line");
    struct qp_plan *p = NULL;
    CHECK(qp_plan_read_memory(buf, len, "edited.yaml", &p, &e) == QP_OK, "%s", e.msg);
    if (p) {
        int32_t k;
        enum outcome o = compare_answer(s, p, buf, len, &k, &e);
        printf("planted: without the bias, run on %s: %s\n",
               k < 0 ? "every program" : s->plan->programs[k].name,
               o == CHANGED     ? "the answer changes"
               : o == UNCHANGED ? "the answer is unchanged"
               : o == SAME_PLAN ? "the same plan"
                                : e.msg);
        CHECK(o == CHANGED, "the answer check does not see the bias missing");
        qp_plan_free(p);
    }
    free(buf);
}

static bool open_subject(struct subject *s, const char *plan, const char *model, const char *tmp) {
    struct qp_error e = {{0}};
    s->model = model;
    s->text_path = plan;
    snprintf(s->edited_path, sizeof s->edited_path, "%s/edited.yaml", tmp);
    if (!read_file(plan, &s->text, &s->len)) {
        printf("FAIL: cannot read %s\n", plan);
        return false;
    }
    index_lines(s);
    if (qp_gguf_open(model, QP_GGUF_HEADER_ONLY, &s->g, &e) != QP_OK ||
        qp_semantics_new(s->g, &s->sem, &e) != QP_OK) {
        printf("FAIL: %s\n", e.msg);
        return false;
    }
    double t0 = now();
    enum stage st = check_text(s, s->text, s->len, plan, &s->plan, &e);
    printf("%s: %d lines; the unedited plan: %s (%.3f s, the reference compiled)\n", plan,
           s->n_lines, st == ST_PASSED ? "passes" : e.msg, now() - t0);
    if (st != ST_PASSED) return false;
    s->base_prog = calloc((size_t)s->plan->n_programs, sizeof *s->base_prog);
    t0 = now();
    st = check_text(s, s->text, s->len, plan, NULL, &e);
    printf("one check of the whole plan with the reference kept: %.4f s\n", now() - t0);
    t0 = now();
    if (run_plan(plan, model, &FULL, &s->base, &e) != QP_OK) {
        printf("FAIL: qrun on the unedited plan: %s\n", e.msg);
        return false;
    }
    printf("the unedited plan's answer: greedy tokens");
    for (int i = 0; i < s->base.n_tokens; i++) printf(" %d", s->base.tokens[i]);
    printf(" (qrun on the cpu, every program: %.2f s)\n", now() - t0);
    return true;
}

static void close_subject(struct subject *s) {
    answer_free(&s->base);
    for (int32_t k = 0; s->base_prog && k < s->plan->n_programs; k++) answer_free(&s->base_prog[k]);
    free(s->base_prog);
    qp_plan_free(s->plan);
    qp_semantics_free(s->sem);
    qp_gguf_close(s->g);
    free(s->text);
    free(s->line_at);
}

/* --- the synthetic instance's targeted edits and accepted plans ---------------------------- */

/* text with the first occurrence of from replaced by to: refused at the semantic check naming
 * a line, with want in the message. */
static void refuse_edit(struct subject *s, const char *what, const char *from, const char *to,
                        const char *want) {
    const char *at = strstr(s->text, from);
    CHECK(at != NULL, "%s: '%s' not in the plan (format changed?)", what, from);
    if (!at) return;
    size_t a = (size_t)(at - s->text), lf = strlen(from), lt = strlen(to);
    char *buf = malloc(s->len - lf + lt + 1);
    memcpy(buf, s->text, a);
    memcpy(buf + a, to, lt);
    memcpy(buf + a + lt, at + lf, s->len - a - lf);
    struct qp_error e = {{0}};
    enum stage st = check_text(s, buf, s->len - lf + lt, "edited.yaml", NULL, &e);
    printf("edit '%s': refused at %s: %s\n", what, stage_names[st], e.msg);
    CHECK(st == ST_SEMANTICS && names_line(e.msg, "edited.yaml", s->n_lines) && strstr(e.msg, want),
          "%s: want a semantic refusal naming a line and saying '%s'", what, want);
    free(buf);
}

/* A plan compiled from the model with other options passes every check. */
static void accept_compiled(struct subject *s, const char *what, const struct qp_compile_options *o,
                            const char *path) {
    struct qp_error e = {{0}};
    struct qp_gguf *full = NULL;
    struct qp_plan *p = NULL;
    char *text = NULL;
    size_t len = 0;
    if (qp_gguf_open(s->model, 0, &full, &e) != QP_OK ||
        qp_compile(full, o, &p, NULL, &e) != QP_OK || qp_plan_write(p, path, &e) != QP_OK ||
        !read_file(path, &text, &len)) {
        CHECK(0, "%s: cannot compile: %s", what, e.msg);
    } else {
        enum stage st = check_text(s, text, len, path, NULL, &e);
        CHECK(st == ST_PASSED, "%s: refused at %s: %s", what, stage_names[st], e.msg);
        if (st == ST_PASSED) printf("accepted: %s\n", what);
    }
    free(text);
    qp_plan_free(p);
    qp_gguf_close(full);
}

static void synthetic_cases(struct subject *s, const char *tmp) {
    refuse_edit(s, "layer 0's attn_output swapped for layer 1's",
                "weights: [blk.0.attn_output.weight]", "weights: [blk.1.attn_output.weight]",
                "weights: the plan says [blk.1.attn_output.weight]");
    refuse_edit(s, "layer 1's attention reads KV layer 0", "head_dim: 16, layer: 1}",
                "head_dim: 16, layer: 0}", "params.layer");
    refuse_edit(s, "eps", "  eps: 1e-06\n", "  eps: 1e-05\n", "layer_norm_rms_epsilon");
    refuse_edit(s, "rope base of a node", "rope_base: 1e+06, layer: 1}",
                "rope_base: 10000, layer: 1}",
                "params.rope_base: the plan says 10000, the model needs 1000000 (the model's "
                "qwen2.rope.freq_base)");
    refuse_edit(s, "fuse_qkv struck from the passes", "fuse_norm, fuse_qkv, ", "fuse_norm, ",
                "the model's graph has no weight of this name");
    refuse_edit(s, "passes out of order", "fuse_norm, fuse_qkv", "fuse_qkv, fuse_norm", "passes");
    refuse_edit(s, "residual added twice", "in: [attn, x]", "in: [x, x]",
                "in: the plan says [x, x]");

    char path[600];
    struct qp_compile_options o;
    static const struct qp_kernel_override mmv = {"decode:linear:blk.*", "mmv"};
    qp_compile_options_default(&o);
    o.ctx = 64;
    o.chunk = 16;
    o.sm = 80;
    o.n_overrides = 1;
    o.overrides = &mmv;
    snprintf(path, sizeof path, "%s/kernels.yaml", tmp);
    accept_compiled(s, "other kernels, launch shapes and target (sm_80, decode linears on mmv)", &o,
                    path);
    qp_compile_options_default(&o);
    o.ctx = 48;
    o.chunk = 12;
    o.kv_type = QP_GGML_F32;
    o.matvec_tokens = 4;
    o.disabled = 1u << QP_PASS_FUSE_QKV | 1u << QP_PASS_FUSE_RESIDUAL;
    snprintf(path, sizeof path, "%s/options.yaml", tmp);
    accept_compiled(
        s, "other options (ctx 48, chunk 12, kv f32, matvec 4, no fuse_qkv, fuse_residual)", &o,
        path);
    qp_compile_options_default(&o);
    o.ctx = 64;
    o.chunk = 1;
    snprintf(path, sizeof path, "%s/decode.yaml", tmp);
    accept_compiled(s, "a decode-only plan (chunk 1)", &o, path);
}

/* --- main -------------------------------------------------------------------------------- */

static int run_cpu(const char *tmp) {
    char model[600], plan[600];
    snprintf(model, sizeof model, "%s/synth.gguf", tmp);
    snprintf(plan, sizeof plan, "%s/synth.yaml", tmp);
    struct qp_synth_arch a = {.n_layer = 2,
                              .n_embd = 64,
                              .n_head = 4,
                              .n_head_kv = 2,
                              .n_ff = 128,
                              .n_vocab = 300,
                              .types = "output=tied,blk.1.attn_v=q4_0,blk.0.ffn_up=q4_0"};
    struct qp_error e = {{0}};
    struct qp_gguf *g = NULL;
    struct qp_plan *p = NULL;
    struct qp_compile_options o;
    qp_compile_options_default(&o);
    o.ctx = 64;
    o.chunk = 16;
    if (qp_synth_write_arch(&a, 7, model, &e) != QP_OK || qp_gguf_open(model, 0, &g, &e) != QP_OK ||
        qp_compile(g, &o, &p, NULL, &e) != QP_OK || qp_plan_write(p, plan, &e) != QP_OK) {
        printf("FAIL: making the synthetic model and plan: %s\n", e.msg);
        return 1;
    }
    qp_plan_free(p);
    qp_gguf_close(g);
    struct subject s = {0};
    if (!open_subject(&s, plan, model, tmp)) return 1;
    planted_bias(&s);
    synthetic_cases(&s, tmp);
    delete_each_line(&s);
    swap_each_line(&s);
    close_subject(&s);
    return 0;
}

static int run_model(const char *tmp) {
    char model[1024];
    snprintf(model, sizeof model, "%s/.cache/qplan/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
             getenv("HOME") ? getenv("HOME") : "");
    if (access(model, R_OK) != 0) {
        printf("SKIP: %s is absent (scripts/fetch-model.sh fetches it)\n", model);
        return 77;
    }
    struct subject s = {0};
    if (!open_subject(&s, QP_SOURCE_DIR "/plans/qwen2.5-coder-0.5b-instruct-q4_k_m.yaml", model,
                      tmp))
        return 1;
    planted_bias(&s);
    delete_each_line(&s);
    close_subject(&s);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2 || (strcmp(argv[1], "cpu") != 0 && strcmp(argv[1], "model") != 0)) {
        fprintf(stderr, "usage: test_plan_lines cpu|model\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress as it happens, under ctest too */
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s/plan_lines.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp)) {
        printf("FAIL: cannot create a temporary folder\n");
        return 1;
    }
    double t0 = now();
    int rc = strcmp(argv[1], "cpu") == 0 ? run_cpu(tmp) : run_model(tmp);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) printf("note: could not remove %s\n", tmp);
    printf("test_plan_lines %s: %.1f s, %d failure(s)\n", argv[1], now() - t0, failures);
    return rc ? rc : failures ? 1 : 0;
}
