/* bench_batch.c — `qrun PLAN --bench --batch 1,4,16,64` (bench.h): llama-batched-bench's
 * measurement on a plan compiled with slots. For each batch size B: B prompts of PP random
 * tokens, each prefilled in its own slot in the plan's chunks up to its first token (T_PP), then
 * TG decode steps of all B sequences together, each step feeding back the tokens the backend
 * picked (T_TG: the plan's batch program for B rows, a captured graph on CUDA). One untimed
 * warm-up run captures the graphs, then reps timed runs; the table shows their mean.
 *
 * Columns as llama-batched-bench prints them: PP, TG, B, N_KV = B * (PP + TG), T_PP s,
 * S_PP t/s = B * PP / T_PP, T_TG s, S_TG t/s = B * TG / T_TG, T s = T_PP + T_TG, S t/s = N_KV / T.
 * Times are host wall-clock around work that ends in a device read (the picked tokens).
 * Nothing is allocated inside a timed loop.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "executor.h"
#include "qrun_internal.h"

enum qp_status qrun_bench_parse_batch(const char *s, struct qrun_bench_options *o, struct qp_error *err) {
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 1 || v > 65536 || (*end && *end != ','))
            return qp_error_set(err, QP_ERR_INVALID, "--batch '%s': expected comma-separated counts of 1..65536", s);
        if (n == QRUN_BENCH_MAX_BATCH)
            return qp_error_set(err, QP_ERR_INVALID, "--batch '%s': at most %d sizes", s, QRUN_BENCH_MAX_BATCH);
        o->batch[n++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    if (n == 0) return qp_error_set(err, QP_ERR_INVALID, "--batch '%s': no size", s);
    o->n_batch = n;
    return QP_OK;
}

struct batch_row {
    int32_t b;
    bool skipped;
    char why[96];
    double t_pp, t_tg; /* mean seconds */
};

/* One run: B prompts prefilled one after the other, then tg batched steps. */
static enum qp_status run_once(struct qrun *q, int32_t B, int pp, int tg, const int32_t *ids, int32_t *tok,
                               struct qp_step_row *rows, double *t_pp, double *t_tg, struct qp_error *err) {
    struct qp_exec *x = q->exec;
    const int32_t chunk = (int32_t)q->plan->limits.max_chunk;
    const bool dev = qp_exec_has_argmax(x);
    const int32_t nv = (int32_t)q->plan->hparams.n_vocab;
    enum qp_status s = QP_OK;
    double t0 = qrun_bench_now();
    for (int32_t b = 0; b < B && s == QP_OK; b++) {
        const int32_t *p = ids + (size_t)b * (size_t)pp;
        for (int off = 0; off < pp && s == QP_OK; off += chunk) {
            const int32_t k = pp - off < chunk ? pp - off : chunk;
            s = qp_exec_forward_slot(x, b, p + off, k, off, err);
        }
        if (s != QP_OK) break;
        if (dev) {
            s = qp_exec_argmax(x, &tok[b], err);
        } else {
            const float *l;
            s = qp_exec_logits(x, &l, err);
            int32_t best = 0;
            for (int32_t i = 1; s == QP_OK && i < nv; i++)
                if (l[i] > l[best]) best = i;
            tok[b] = best;
        }
    }
    *t_pp = qrun_bench_now() - t0;
    t0 = qrun_bench_now();
    for (int step = 0; step < tg && s == QP_OK; step++) {
        for (int32_t b = 0; b < B; b++) rows[b] = (struct qp_step_row){tok[b], pp + step, b, -1};
        s = qp_exec_forward_batch(x, rows, B, err);
        if (s != QP_OK) break;
        if (dev) {
            s = qp_exec_batch_next(x, tok, B, err);
        } else {
            for (int32_t b = 0; b < B && s == QP_OK; b++) {
                const float *l;
                s = qp_exec_batch_logits(x, b, &l, err);
                int32_t best = 0;
                for (int32_t i = 1; s == QP_OK && i < nv; i++)
                    if (l[i] > l[best]) best = i;
                tok[b] = best;
            }
        }
    }
    *t_tg = qrun_bench_now() - t0;
    return s;
}

enum qp_status qrun_bench_batch(const char *plan_path, const struct qrun_options *o,
                                const struct qrun_bench_options *bo, FILE *out, struct qp_error *err) {
    if (bo->reps < 1 || bo->n_prompt < 1 || bo->n_gen < 1 || bo->n_batch < 1)
        return qp_error_set(err, QP_ERR_INVALID, "--bench --batch: repetitions, --bench-pp and --bench-tg must be >= 1");
    struct qrun_options oo = *o;
    oo.progress = false;
    struct qrun *q = NULL;
    enum qp_status s = qrun_open(plan_path, &oo, &q, err);
    if (s != QP_OK) return s;
    const int pp = bo->n_prompt, tg = bo->n_gen;
    int32_t max_b = 0;
    for (int i = 0; i < bo->n_batch; i++)
        if (bo->batch[i] > max_b) max_b = bo->batch[i];
    if (max_b > q->n_slots) max_b = q->n_slots;
    int32_t *ids = malloc((size_t)max_b * (size_t)pp * sizeof *ids), *tok = malloc((size_t)max_b * sizeof *tok);
    struct qp_step_row *rows = malloc((size_t)max_b * sizeof *rows);
    struct batch_row res[QRUN_BENCH_MAX_BATCH];
    memset(res, 0, sizeof res);
    if (!ids || !tok || !rows) {
        s = qp_error_set(err, QP_ERR_NOMEM, "out of memory");
        goto done;
    }
    uint64_t rng = bo->seed ? bo->seed : 1;
    for (size_t i = 0; i < (size_t)max_b * (size_t)pp; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        ids[i] = (int32_t)(rng % (uint64_t)q->plan->hparams.n_vocab);
    }
    for (int i = 0; i < bo->n_batch; i++) {
        struct batch_row *r = &res[i];
        r->b = bo->batch[i];
        if (r->b > q->n_slots) {
            r->skipped = true;
            snprintf(r->why, sizeof r->why, "the plan has %d slots (qplan compile --slots)", q->n_slots);
            continue;
        }
        if (pp + tg > q->n_ctx) {
            r->skipped = true;
            snprintf(r->why, sizeof r->why, "needs %d positions, a slot has %lld", pp + tg, (long long)q->n_ctx);
            continue;
        }
        if (bo->progress)
            fprintf(stderr, "bench: B=%d: %d prompts of %d, a warm-up, then %d run%s of %d decode steps\n",
                    r->b, r->b, pp, bo->reps, bo->reps == 1 ? "" : "s", tg);
        double a, b;
        s = run_once(q, r->b, pp, tg, ids, tok, rows, &a, &b, err); /* warm-up: captures the graphs */
        for (int rep = 0; rep < bo->reps && s == QP_OK; rep++) {
            s = run_once(q, r->b, pp, tg, ids, tok, rows, &a, &b, err);
            r->t_pp += a / bo->reps;
            r->t_tg += b / bo->reps;
        }
        if (s != QP_OK) goto done;
    }
    char dev[128];
    int32_t sm = 0, sms = 0;
    qrun_device_info(q, &sm, &sms, dev, sizeof dev);
    fprintf(out, "\nmodel %s, plan %s, %s%s (%s), %d slots of %lld positions, chunk %lld, %d repetitions, "
            "random token ids (seed %llu)\n\n", q->plan->model.file ? q->plan->model.file : "?", plan_path,
            qrun_device(q), o->no_graph ? " eager" : "", dev, q->n_slots, (long long)q->n_ctx,
            (long long)q->plan->limits.max_chunk, bo->reps, (unsigned long long)bo->seed);
    fprintf(out, "|    PP |     TG |    B |   N_KV |   T_PP s | S_PP t/s |   T_TG s | S_TG t/s |      T s |    S t/s |\n");
    fprintf(out, "|-------|--------|------|--------|----------|----------|----------|----------|----------|----------|\n");
    for (int i = 0; i < bo->n_batch; i++) {
        const struct batch_row *r = &res[i];
        if (r->skipped) {
            fprintf(out, "| %5d | %6d | %4d | skipped: %s |\n", pp, tg, r->b, r->why);
            continue;
        }
        const double nkv = (double)r->b * (pp + tg), t = r->t_pp + r->t_tg;
        fprintf(out, "| %5d | %6d | %4d | %6.0f | %8.3f | %8.2f | %8.3f | %8.2f | %8.3f | %8.2f |\n", pp, tg, r->b, nkv,
                r->t_pp, (double)r->b * pp / r->t_pp, r->t_tg, (double)r->b * tg / r->t_tg, t, nkv / t);
    }
    if (bo->json_path) {
        FILE *f = fopen(bo->json_path, "w");
        if (!f) {
            s = qp_error_set(err, QP_ERR_IO, "%s: cannot write: %s", bo->json_path, strerror(errno));
            goto done;
        }
        fprintf(f, "{\n  \"model\": ");
        qrun_bench_json_str(f, q->plan->model.file ? q->plan->model.file : "");
        fprintf(f, ",\n  \"plan\": ");
        qrun_bench_json_str(f, plan_path);
        fprintf(f, ",\n  \"backend\": ");
        qrun_bench_json_str(f, qrun_device(q));
        fprintf(f, ",\n  \"graph\": %s,\n  \"device\": ", !o->no_graph && strcmp(qrun_device(q), "cuda") == 0 ? "true" : "false");
        qrun_bench_json_str(f, dev);
        fprintf(f, ",\n  \"slots\": %d,\n  \"n_ctx\": %lld,\n  \"chunk\": %lld,\n  \"reps\": %d,\n  \"seed\": %llu,\n",
                q->n_slots, (long long)q->n_ctx, (long long)q->plan->limits.max_chunk, bo->reps,
                (unsigned long long)bo->seed);
        fprintf(f, "  \"rows\": [");
        for (int i = 0; i < bo->n_batch; i++) {
            const struct batch_row *r = &res[i];
            fprintf(f, "%s\n    {\"pp\": %d, \"tg\": %d, \"pl\": %d, \"skipped\": %s", i ? "," : "", pp, tg, r->b,
                    r->skipped ? "true" : "false");
            if (!r->skipped) {
                const double nkv = (double)r->b * (pp + tg), t = r->t_pp + r->t_tg;
                fprintf(f, ", \"n_kv\": %.0f, \"t_pp\": %.6f, \"speed_pp\": %.3f, \"t_tg\": %.6f, \"speed_tg\": %.3f, "
                        "\"t\": %.6f, \"speed\": %.3f", nkv, r->t_pp, (double)r->b * pp / r->t_pp, r->t_tg,
                        (double)r->b * tg / r->t_tg, t, nkv / t);
            }
            fprintf(f, "}");
        }
        fprintf(f, "\n  ]\n}\n");
        if (fclose(f) != 0) {
            s = qp_error_set(err, QP_ERR_IO, "%s: write failed: %s", bo->json_path, strerror(errno));
            goto done;
        }
        fprintf(out, "wrote %s\n", bo->json_path);
    }
done:
    free(ids);
    free(tok);
    free(rows);
    qrun_close(q);
    return s;
}
