/* perplexity.c — `qrun --perplexity` and `--kl-divergence` (include/qrun_perplexity.h):
 * llama-perplexity's method over libqrun's public API (qrun_eval), so it runs on any backend.
 *
 * Owns, per call: the text's tokens, one chunk's tokens, the base file's reader or writer
 * (include/qp_kld.h: one row at a time) and the KLD statistics. Nothing here knows the
 * architecture: a chunk is tokens in, next-token logits out.
 * Per chunk: positions 0 .. first (first = n_ctx/2) in one qrun_eval (prefilled in the plan's
 * chunks), which returns the logits at `first`; then each of first+1 .. n_ctx-2 as a one-token
 * qrun_eval (the decode program). Scored: the token after each of first .. n_ctx-2.
 */
#define _POSIX_C_SOURCE 200809L
#include "qrun_perplexity.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "qp_kld.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct qrun_ppl_options qrun_ppl_options_default(void) {
    struct qrun_ppl_options o = {0};
    return o;
}

void qrun_ppl_acc_add(struct qrun_ppl_acc *a, double nll) {
    a->nll += nll;
    a->nll2 += nll * nll;
    a->count++;
}

void qrun_ppl_acc_value(const struct qrun_ppl_acc *a, double *ppl, double *err) {
    *ppl = *err = 0.0;
    if (a->count < 1) return;
    double mean = a->nll / (double)a->count;
    double var = a->nll2 / (double)a->count - mean * mean;
    *ppl = exp(mean);
    *err = var > 0.0 && a->count > 1 ? sqrt(var / (double)(a->count - 1)) * *ppl : 0.0;
}

int32_t qrun_ppl_bos(const struct qp_tokenizer *t) {
    return qp_tokenizer_add_bos(t) ? qp_tokenizer_bos(t) : -1;
}

enum qp_status qrun_ppl_tokenize(struct qp_tokenizer *t, const char *text, size_t len,
                                 int32_t n_ctx, int32_t max_chunks, int32_t **tokens,
                                 int64_t *n_tokens, int32_t *n_chunk, struct qp_error *err) {
    *tokens = NULL;
    *n_tokens = 0;
    *n_chunk = 0;
    int32_t *ids = NULL;
    size_t n = 0;
    enum qp_status s = qp_tokenizer_encode(t, text, len, false, &ids, &n, err);
    if (s != QP_OK) return s;
    int32_t bos = qrun_ppl_bos(t);
    if (bos >= 0) {
        int32_t *b = malloc((n + 1) * sizeof *b);
        if (!b) {
            free(ids);
            return qp_error_set(err, QP_ERR_NOMEM, "out of memory");
        }
        b[0] = bos;
        if (n) memcpy(b + 1, ids, n * sizeof *b);
        free(ids);
        ids = b;
        n++;
    }
    if ((int64_t)n < 2 * (int64_t)n_ctx) {
        free(ids);
        return qp_error_set(err, QP_ERR_RANGE, "the text is %zu tokens; perplexity with -c %d "
                            "needs at least %lld (two chunks): give a longer text or a smaller -c",
                            n, (int)n_ctx, 2 * (long long)n_ctx);
    }
    int64_t nc = (int64_t)n / n_ctx;
    if (max_chunks > 0 && nc > max_chunks) nc = max_chunks;
    *tokens = ids;
    *n_tokens = (int64_t)n;
    *n_chunk = (int32_t)nc;
    return QP_OK;
}

static void progress_line(const struct qrun_ppl_options *o, int32_t c, int32_t n_chunk, int32_t p,
                          int32_t n_ctx) {
    if (o->progress && (p % 16 == 0 || p == n_ctx - 2))
        fprintf(stderr, "\rperplexity: chunk %d/%d, position %4d/%d", (int)c + 1, (int)n_chunk,
                (int)p + 1, (int)n_ctx);
}

enum qp_status qrun_perplexity(struct qrun *q, const char *text, size_t len,
                               const struct qrun_ppl_options *o, FILE *out,
                               struct qrun_ppl_result *res, struct qp_error *err) {
    struct qrun_ppl_result r = {0};
    struct qp_kld_reader *rd = NULL;
    struct qp_kld_writer *wr = NULL;
    struct qp_kld_stats ks = {0};
    struct qrun_ppl_acc acc = {0};
    int32_t *all = NULL, *ids = NULL;
    const int32_t nv = qrun_n_vocab(q);
    int32_t n_ctx = o->n_ctx, n_chunk = 0;
    enum qp_status s = QP_OK;
    if (o->kld) {
        if (!o->kld_base)
            return qp_error_set(err, QP_ERR_INVALID, "--kl-divergence needs the base file "
                                "(--kl-divergence-base FILE)");
        if ((s = qp_kld_reader_open(o->kld_base, &rd, err)) != QP_OK) return s;
        const struct qp_kld_header *h = qp_kld_reader_header(rd);
        if (h->n_vocab != nv) {
            s = qp_error_set(err, QP_ERR_INVALID, "%s: the base has %d logits per token, this "
                             "model %d: it was written for another vocabulary (another model)",
                             o->kld_base, (int)h->n_vocab, (int)nv);
            goto done;
        }
        if (n_ctx > 0 && n_ctx != h->n_ctx) {
            s = qp_error_set(err, QP_ERR_INVALID, "%s: the base was written with chunks of %d "
                             "tokens (-c %d), not %d: give -c %d or leave -c out", o->kld_base,
                             (int)h->n_ctx, (int)h->n_ctx, (int)n_ctx, (int)h->n_ctx);
            goto done;
        }
        n_ctx = h->n_ctx;
        n_chunk = h->n_chunk;
        if (o->n_chunks > 0 && o->n_chunks < n_chunk) n_chunk = o->n_chunks;
        r.n_text_tokens = (int64_t)h->n_chunk * h->n_ctx;
    } else {
        if (n_ctx <= 0) n_ctx = QRUN_PPL_DEFAULT_CTX;
    }
    if (n_ctx < QRUN_PPL_MIN_CTX || n_ctx > qrun_n_ctx(q)) {
        s = qp_error_set(err, QP_ERR_RANGE, "chunks of %d tokens: perplexity needs %d to %lld (the "
                         "usable context; -c up to the plan's max_ctx)", (int)n_ctx,
                         QRUN_PPL_MIN_CTX, (long long)qrun_n_ctx(q));
        goto done;
    }
    if (!o->kld) {
        if (!text) {
            s = qp_error_set(err, QP_ERR_INVALID, "perplexity needs a text");
            goto done;
        }
        if ((s = qrun_ppl_tokenize(qrun_tokenizer(q), text, len, n_ctx, o->n_chunks, &all,
                                   &r.n_text_tokens, &n_chunk, err)) != QP_OK)
            goto done;
        if (o->kld_base &&
            (s = qp_kld_writer_open(o->kld_base, n_ctx, nv, n_chunk, all, &wr, err)) != QP_OK)
            goto done;
    }
    const int32_t first = n_ctx / 2, per_chunk = qp_kld_rows_per_chunk(n_ctx);
    const int32_t bos = qrun_ppl_bos(qrun_tokenizer(q));
    const int32_t *src = o->kld ? qp_kld_reader_tokens(rd) : all;
    r.n_ctx = n_ctx;
    r.n_chunk = n_chunk;
    r.n_scored = (int64_t)n_chunk * per_chunk;
    if (o->kld && (s = qp_kld_stats_init(&ks, r.n_scored, err)) != QP_OK) goto done;
    if (!(ids = malloc((size_t)n_ctx * sizeof *ids))) {
        s = qp_error_set(err, QP_ERR_NOMEM, "out of memory");
        goto done;
    }
    fprintf(stderr, "perplexity: %lld tokens, %d chunks of %d, scoring the last %d of each; %s; "
            "%s backend\n", (long long)r.n_text_tokens, (int)n_chunk, (int)n_ctx, (int)per_chunk,
            bos >= 0 ? "BOS first in each chunk" : "no BOS (the vocabulary adds none)",
            qrun_device(q));
    if (o->kld) qp_kld_stats_print_head(out);
    const double t0 = now_s();
    for (int32_t c = 0; c < n_chunk && s == QP_OK; c++) {
        const double tc = now_s();
        memcpy(ids, src + (size_t)c * (size_t)n_ctx, (size_t)n_ctx * sizeof *ids);
        if (bos >= 0) ids[0] = bos;
        for (int32_t p = first; p <= n_ctx - 2; p++) {
            if (o->interrupt && *o->interrupt) {
                s = qp_error_set(err, QP_ERR_INTERRUPTED, "interrupted at chunk %d, position %d",
                                 (int)c + 1, (int)p);
                break;
            }
            const float *lg;
            s = p == first ? qrun_eval(q, ids, (size_t)first + 1, 0, &lg, err)
                           : qrun_eval(q, ids + p, 1, p, &lg, err);
            if (s != QP_OK) break;
            const int32_t next = ids[p + 1];
            if (o->kld) {
                const uint16_t *row;
                if ((s = qp_kld_reader_row(rd, &row, err)) != QP_OK) break;
                struct qp_kld_token t;
                qp_kld_compare_row(lg, nv, row, next, &t);
                if (!isfinite(t.nll) || !isfinite(t.kld)) {
                    s = qp_error_set(err, QP_ERR_INVALID, "chunk %d, position %d: the logits "
                                     "are not finite (NaN or inf)", (int)c + 1, (int)p);
                    break;
                }
                qp_kld_stats_add(&ks, &t);
                qrun_ppl_acc_add(&acc, t.nll);
            } else {
                double nll = qp_kld_nll(lg, nv, next);
                if (!isfinite(nll)) {
                    s = qp_error_set(err, QP_ERR_INVALID, "chunk %d, position %d: the logits "
                                     "are not finite (NaN or inf)", (int)c + 1, (int)p);
                    break;
                }
                qrun_ppl_acc_add(&acc, nll);
                if (wr && (s = qp_kld_writer_row(wr, lg, err)) != QP_OK) break;
            }
            progress_line(o, c, n_chunk, p, n_ctx);
        }
        if (s != QP_OK) break;
        if (o->progress) fputc('\r', stderr);
        if (c == 0) {
            double dt = now_s() - tc;
            fprintf(stderr, "perplexity: %.2f seconds per chunk - ETA %.2f minutes\n", dt,
                    dt * (n_chunk - 1) / 60.0);
        }
        if (o->kld) {
            qp_kld_stats_print_chunk(&ks, c + 1, out);
        } else {
            double ppl, pe;
            qrun_ppl_acc_value(&acc, &ppl, &pe);
            fprintf(out, "[%d]%.4f,", (int)c + 1, ppl);
        }
        fflush(out);
    }
    if (s != QP_OK) goto done;
    r.seconds = now_s() - t0;
    qrun_ppl_acc_value(&acc, &r.ppl, &r.ppl_err);
    fputc('\n', out);
    if (o->kld) {
        r.kld_mean = ks.count ? ks.sum_kld / (double)ks.count : 0.0;
        r.same_top = ks.count ? (double)ks.n_same_top / (double)ks.count : 0.0;
        qp_kld_stats_print_final(&ks, out);
    } else {
        fprintf(out, "Final estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_err);
    }
    if (wr) {
        s = qp_kld_writer_commit(wr, err);
        wr = NULL;
        if (s != QP_OK) goto done;
        fprintf(stderr, "perplexity: wrote the base file %s\n", o->kld_base);
    }
    fprintf(stderr, "qrun: %s | %d chunks of %d tokens (%lld scored) in %.2f s: %.1f tokens/s\n",
            qrun_device(q), (int)n_chunk, (int)n_ctx, (long long)r.n_scored, r.seconds,
            r.seconds > 0 ? (double)n_chunk * n_ctx / r.seconds : 0.0);
done:
    if (o->progress && s != QP_OK) fputc('\n', stderr);
    qp_kld_writer_abort(wr);
    qp_kld_reader_close(rd);
    qp_kld_stats_free(&ks);
    free(all);
    free(ids);
    if (res) *res = r;
    return s;
}

/* The whole file (NUL-terminated; *len without the NUL). */
static enum qp_status read_text(const char *path, char **out, size_t *len, struct qp_error *err) {
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return qp_error_set(err, QP_ERR_IO, "-f %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || S_ISDIR(st.st_mode)) {
        fclose(f);
        return qp_error_set(err, QP_ERR_IO, "-f %s: not a regular file", path);
    }
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    while (b) {
        if (n + 1 >= cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
        }
        size_t r = fread(b + n, 1, cap - n - 1, f);
        if (r == 0) break;
        n += r;
    }
    bool bad = ferror(f);
    fclose(f);
    if (!b) return qp_error_set(err, QP_ERR_NOMEM, "-f %s: out of memory", path);
    if (bad) {
        free(b);
        return qp_error_set(err, QP_ERR_IO, "-f %s: read error", path);
    }
    b[n] = 0;
    *out = b;
    *len = n;
    return QP_OK;
}

enum qp_status qrun_perplexity_cmd(const char *plan, const struct qrun_options *o,
                                   const struct qrun_ppl_options *po, const char *text_path,
                                   FILE *out, struct qrun_ppl_result *res, struct qp_error *err) {
    struct qrun_options oo = *o;
    struct qrun_ppl_options pp = *po;
    char *text = NULL;
    size_t len = 0;
    enum qp_status s = QP_OK;
    if (pp.kld) {
        /* the base's chunk length is the default: read its header first (cheap, streamed) */
        struct qp_kld_reader *rd = NULL;
        if ((s = qp_kld_reader_open(pp.kld_base ? pp.kld_base : "", &rd, err)) != QP_OK) return s;
        if (pp.n_ctx <= 0) oo.n_ctx = qp_kld_reader_header(rd)->n_ctx;
        qp_kld_reader_close(rd);
    } else {
        if (!text_path) return qp_error_set(err, QP_ERR_INVALID, "--perplexity needs a text: -f FILE");
        if ((s = read_text(text_path, &text, &len, err)) != QP_OK) return s;
    }
    if (pp.n_ctx > 0) oo.n_ctx = pp.n_ctx;
    else if (!pp.kld) oo.n_ctx = pp.n_ctx = QRUN_PPL_DEFAULT_CTX;
    struct qrun *q = NULL;
    s = qrun_open(plan, &oo, &q, err);
    if (s == QP_OK) s = qrun_perplexity(q, text, len, &pp, out, res, err);
    qrun_close(q);
    free(text);
    return s;
}
