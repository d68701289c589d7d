/* cmd_tune.c — `qplan tune plan.yaml [-o out.yaml]`: on a GPU, chooses every node's kernel and
 * launch shape by measurement, and writes them into the plan.
 *
 * Steps: qrun_tune (runtime/tune.c) runs each node on its own with every kernel and launch shape
 * the registry offers on this card, keeps those whose outputs pass the kernel's bound against the
 * CPU op, and times them; the fastest per node goes into a copy of the plan, whose scratch and
 * arena are planned again (the compiler's memory planner), and which records the card. Then both
 * plans run qrun's benchmark in this process (pp and tg, llama-bench's shape): a program whose
 * tuned choices measure slower end to end (decode by tg, prefill by pp; the per-node timings miss
 * the overlap of kernels in a graph) keeps its untuned choices, so a tuned plan is never slower
 * than the untuned one on the same card. The result is written atomically, and a table prints
 * each changed node, before and after, and the benchmark's two rows.
 *
 * Owns only the orchestration; the measuring is libqrun's, the kernel data the registry's.
 */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "commands.h"
#include "compile_internal.h"
#include "qp_kernels.h"
#include "qrun.h"

static void usage(FILE *f) {
    fprintf(f, "usage: qplan tune plan.yaml [-o out.yaml] [-m model.gguf] [--device cuda|cpu]\n"
               "                  [--depth N] [--reps N] [--bench-reps N] [--bench-pp N] [--bench-tg N]\n"
               "                  [--no-bench]\n"
               "  times every kernel and launch shape of every node on this card, checks each against\n"
               "  the CPU op, writes the fastest into the plan (atomically; default: the plan itself)\n"
               "  -o PATH          write the tuned plan here instead\n"
               "  -m PATH          the GGUF (default: the plan's model.file, found as qrun finds it)\n"
               "  --device D       cuda (default) or cpu (the CPU runs every kernel as its reference op:\n"
               "                   only for checking the tuner itself)\n"
               "  --depth N        KV cache positions filled before timing (default 256)\n"
               "  --reps N         timed runs per batch (default 0: about 2 ms of runs)\n"
               "  --bench-reps N, --bench-pp N, --bench-tg N  the end-to-end check (default 3, 512, 128)\n"
               "  --no-bench       keep every node's fastest choice without the end-to-end check\n");
}

struct collect {
    struct qrun_tune_node *r;
    int32_t n, cap;
    const struct qp_plan *p;
};

static void on_node(void *user, const struct qrun_tune_node *r) {
    struct collect *c = user;
    if (c->n < c->cap) c->r[c->n++] = *r;
    const struct qp_plan_program *g = &c->p->programs[r->program];
    if (r->node + 1 == g->n_nodes || (r->node + 1) % 20 == 0)
        fprintf(stderr, "qplan tune: %s: %d of %d nodes\n", g->name, r->node + 1, g->n_nodes);
}

static bool parse_count(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static const char *kname(int32_t k) { return qp_kernel_desc(k) ? qp_kernel_desc(k)->name : "?"; }

/* The tuned copy of p: every node of a program marked in keep takes its fastest passing choice;
 * memory planned again; validated. */
static enum qp_status apply(const char *plan_path, const struct collect *c, const bool *keep, int32_t sm,
                            int32_t sms, const char *card, struct qp_plan **out, struct qp_error *err) {
    struct qp_plan *t = NULL;
    enum qp_status st = qp_plan_read(plan_path, &t, err);
    for (int32_t i = 0; st == QP_OK && i < c->n; i++) {
        const struct qrun_tune_node *r = &c->r[i];
        if (!keep[r->program] || r->best <= 0) continue;
        st = qp_select_set(t, &t->programs[r->program], r->node, r->choice[r->best].kernel, &r->choice[r->best].launch,
                           err);
    }
    if (st == QP_OK) {
        if (sm > 0) { /* a GPU: its architecture; the CPU keeps the plan's target */
            t->target.sm = sm;
            t->target.sms = sms;
        }
        free(t->target.card);
        t->target.card = strdup(card);
        if (!t->target.card) st = qp_error_set(err, QP_ERR_NOMEM, "out of memory");
    }
    if (st == QP_OK) st = qp_memplan(t, err);
    if (st == QP_OK) st = qp_plan_validate(t, err);
    if (st == QP_OK) st = qp_plan_check_kernels(t, err);
    if (st != QP_OK) {
        qp_plan_free(t);
        return st;
    }
    *out = t;
    return QP_OK;
}

/* pp and tg t/s of a plan file (qrun's benchmark, its table printed to stderr). */
static enum qp_status bench(const char *path, const struct qrun_options *o, int reps, int pp, int tg, double ts[2],
                            struct qp_error *err) {
    struct qrun_bench_options bo = qrun_bench_options_default();
    double m[QRUN_BENCH_MAX_DEPTHS + 1] = {0};
    int n = 0;
    bo.reps = reps;
    bo.n_prompt = pp;
    bo.n_gen = tg;
    bo.n_depths = 1;
    bo.depths[0] = 0;
    bo.mean_ts = m;
    bo.n_mean_ts = &n;
    enum qp_status st = qrun_bench(path, o, &bo, stderr, err);
    ts[0] = m[0];
    ts[1] = m[1];
    return st;
}

static void print_changes(const struct qp_plan *p, const struct collect *c, const bool *keep) {
    printf("%-13s %4s %-9s %-6s %5s  %-34s %9s  %-34s %9s\n", "program", "node", "op", "out", "line", "untuned",
           "us", "tuned", "us");
    for (int32_t k = 0; k < p->n_programs; k++) {
        double before = 0, after = 0;
        int changed = 0;
        for (int32_t i = 0; i < c->n; i++) {
            const struct qrun_tune_node *r = &c->r[i];
            if (r->program != k) continue;
            const struct qrun_tune_choice *b = &r->choice[0];
            const struct qrun_tune_choice *a = r->best >= 0 && keep[k] ? &r->choice[r->best] : b;
            before += b->ok ? b->us : 0;
            after += a->ok ? a->us : 0;
            if (a == b) continue;
            changed++;
            const struct qp_plan_node *nd = &p->programs[k].nodes[r->node];
            char bk[64], ak[64];
            snprintf(bk, sizeof bk, "%s {%d,%d,%d,%d,%d}", kname(b->kernel), b->launch.block, b->launch.rows_per_block,
                     b->launch.split, b->launch.grid, b->launch.pdl);
            snprintf(ak, sizeof ak, "%s {%d,%d,%d,%d,%d}", kname(a->kernel), a->launch.block, a->launch.rows_per_block,
                     a->launch.split, a->launch.grid, a->launch.pdl);
            printf("%-13s %4d %-9s %-6s %5d  %-34s %9.2f  %-34s %9.2f\n", p->programs[k].name, r->node,
                   qp_op_desc(nd->op)->name, nd->out >= 0 ? p->buffers[nd->out].name : "", r->line, bk,
                   b->ok ? b->us : 0.0, ak, a->us);
        }
        printf("%-13s %d nodes changed%s; sum of the nodes' own times: %.1f -> %.1f us per step\n", p->programs[k].name,
               changed, keep[k] ? "" : " (kept untuned: slower end to end)", before, after);
    }
    for (int32_t i = 0; i < c->n; i++)
        if (!c->r[i].choice[0].ok)
            printf("note: %s node %d (line %d): the plan's own kernel %s did not pass: %s\n",
                   p->programs[c->r[i].program].name, c->r[i].node, c->r[i].line, kname(c->r[i].choice[0].kernel),
                   c->r[i].choice[0].why);
}

int qp_cmd_tune(int argc, char **argv) {
    const char *plan = NULL, *out = NULL;
    struct qrun_options o = qrun_options_default();
    o.device = "cuda";
    int64_t depth = 256, reps = 0, breps = 3, bpp = 512, btg = 128;
    bool do_bench = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const bool has = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-o") && has) {
            out = argv[++i];
        } else if (!strcmp(a, "-m") && has) {
            o.model_path = argv[++i];
        } else if (!strcmp(a, "--device") && has) {
            o.device = argv[++i];
        } else if (!strcmp(a, "--no-bench")) {
            do_bench = false;
        } else if ((!strcmp(a, "--depth") || !strcmp(a, "--reps") || !strcmp(a, "--bench-reps") ||
                    !strcmp(a, "--bench-pp") || !strcmp(a, "--bench-tg")) && has) {
            int64_t *dst = !strcmp(a, "--depth") ? &depth : !strcmp(a, "--reps") ? &reps
                         : !strcmp(a, "--bench-reps") ? &breps : !strcmp(a, "--bench-pp") ? &bpp : &btg;
            const int64_t lo = !strcmp(a, "--depth") || !strcmp(a, "--reps") ? 0 : 1;
            if (!parse_count(argv[++i], lo, 1 << 24, dst)) {
                fprintf(stderr, "qplan tune: %s '%s' is not a count of %lld or more\n", a, argv[i], (long long)lo);
                return 2;
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "qplan tune: unknown option or missing value: %s\n", a);
            usage(stderr);
            return 2;
        } else if (!plan) {
            plan = a;
        } else {
            fprintf(stderr, "qplan tune: more than one plan given: %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!plan) {
        fprintf(stderr, "qplan tune: no plan given\n");
        usage(stderr);
        return 2;
    }
    if (!out) out = plan;
    struct qp_error err = {{0}};
    struct qp_plan *p = NULL;
    if (qp_plan_read(plan, &p, &err) != QP_OK || qp_plan_validate(p, &err) != QP_OK ||
        qp_plan_check_kernels(p, &err) != QP_OK) {
        fprintf(stderr, "qplan tune: %s\n", err.msg);
        qp_plan_free(p);
        return 1;
    }
    int32_t total = 0;
    for (int32_t k = 0; k < p->n_programs; k++) total += p->programs[k].n_nodes;
    struct collect c = {calloc((size_t)total + 1, sizeof *c.r), 0, total, p};
    bool *keep = calloc((size_t)p->n_programs + 1, sizeof *keep);
    struct qrun *q = NULL;
    int rc = 1;
    char model[4096] = "", card[256] = "", tmp[4200] = "";
    int32_t sm = 0, sms = 0;
    struct qp_plan *t = NULL;
    if (!c.r || !keep) {
        fprintf(stderr, "qplan tune: out of memory\n");
        goto done;
    }
    if (qrun_open(plan, &o, &q, &err) != QP_OK) {
        fprintf(stderr, "qplan tune: %s\n", err.msg);
        goto done;
    }
    qrun_device_info(q, &sm, &sms, card, sizeof card);
    if (depth > p->limits.max_ctx - p->limits.max_chunk) depth = p->limits.max_ctx - p->limits.max_chunk;
    snprintf(model, sizeof model, "%s", qrun_model_path(q));
    fprintf(stderr, "qplan tune: %s on %s (sm_%d, %d SMs), %d nodes, state of %lld positions\n", plan, card, sm, sms,
            total, (long long)depth);
    if (qrun_tune(q, depth, (int)reps, on_node, &c, &err) != QP_OK) {
        fprintf(stderr, "qplan tune: %s\n", err.msg);
        goto done;
    }
    qrun_close(q);
    q = NULL;
    for (int32_t k = 0; k < p->n_programs; k++) keep[k] = true;
    if (apply(plan, &c, keep, sm, sms, card, &t, &err) != QP_OK) {
        fprintf(stderr, "qplan tune: %s\n", err.msg);
        goto done;
    }
    double before[2] = {0, 0}, after[2] = {0, 0};
    if (do_bench) {
        /* the tuned plan, next to the output (so qrun_bench finds nothing but what -m names) */
        snprintf(tmp, sizeof tmp, "%s.tune.yaml", out);
        o.model_path = model;
        if (qp_plan_write(t, tmp, &err) != QP_OK || bench(plan, &o, (int)breps, (int)bpp, (int)btg, before, &err) != QP_OK ||
            bench(tmp, &o, (int)breps, (int)bpp, (int)btg, after, &err) != QP_OK) {
            fprintf(stderr, "qplan tune: %s\n", err.msg);
            goto done;
        }
        /* decode is what tg measures, prefill what pp measures */
        const int32_t dec = qp_plan_find_program(p, 1, false), pre = qp_plan_find_program(p, p->limits.max_chunk, false);
        bool again = false;
        if (dec >= 0 && after[1] < before[1]) keep[dec] = false, again = true;
        if (pre >= 0 && pre != dec && after[0] < before[0]) keep[pre] = false, again = true;
        if (again) {
            qp_plan_free(t);
            t = NULL;
            if (apply(plan, &c, keep, sm, sms, card, &t, &err) != QP_OK) {
                fprintf(stderr, "qplan tune: %s\n", err.msg);
                goto done;
            }
        }
    }
    if (qp_plan_write(t, out, &err) != QP_OK) {
        fprintf(stderr, "qplan tune: %s\n", err.msg);
        goto done;
    }
    print_changes(p, &c, keep);
    if (do_bench)
        printf("end to end on %s: pp%lld %.1f -> %.1f t/s, tg%lld %.1f -> %.1f t/s (the tuned plan %s)\n", card,
               (long long)bpp, before[0], after[0], (long long)btg, before[1], after[1],
               keep[qp_plan_find_program(p, 1, false)] && keep[qp_plan_find_program(p, p->limits.max_chunk, false)]
                   ? "as measured"
                   : "with the slower programs' choices reverted");
    printf("qplan tune: wrote %s (tuned on %s)\n", out, card);
    rc = 0;
done:
    if (tmp[0]) remove(tmp);
    qrun_close(q);
    qp_plan_free(t);
    qp_plan_free(p);
    free(c.r);
    free(keep);
    return rc;
}
