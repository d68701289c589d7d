/* qpref_main.c — `qpref`, the oracle's command line (a developer tool, not a test).
 *
 *   qpref MODEL.gguf --tokens 1,2,3 [-n N] [--ctx C]     logits stats per position, then the
 *                                                        greedy continuation of N tokens (ids)
 *   qpref MODEL.gguf --check EXPECTED.logits [-n N]      the same over the file's tokens, and
 *                                                        the comparison with numpy_forward.py
 *   qpref MODEL.gguf --prompt "text" [-n N]              ids from the model's vocabulary (the
 *                                                        C tokenizer); the continuation decoded
 *   qpref MODEL.gguf --perplexity -f TEXT [-c N] [--chunks K] [--kl-divergence-base OUT] [-t T]
 *         [--rounding exact|kv-f16|llama-cpu]
 *       perplexity by llama-perplexity's method (include/qrun_perplexity.h) on the oracle's
 *       double-precision pass (qp_ref_seq64, T threads, default all); OUT gets every scored
 *       token's distribution in llama.cpp's base-file format (qrun --kl-divergence reads it);
 *       --rounding rounds what an engine stores in lower precision (enum qp_ref_rounding)
 *   qpref MODEL.gguf --kl-divergence --kl-divergence-base BASE [--chunks K] [-t T] [--rounding R]
 *       the same pass over BASE's tokens, compared with BASE: llama-perplexity's statistics
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qp_kld.h"
#include "qp_tokenizer.h"
#include "qrun_perplexity.h"
#include "qwen2_ref.h"

static int usage(void) {
    fprintf(stderr, "usage: qpref MODEL.gguf (--tokens ID,ID,... | --check EXPECTED.logits | "
                    "--prompt TEXT) [-n N] [--ctx C]\n"
                    "       qpref MODEL.gguf --perplexity -f TEXT [-c N] [--chunks K] "
                    "[--kl-divergence-base OUT] [-t THREADS]\n"
                    "             [--rounding exact|kv-f16|llama-cpu]\n"
                    "       qpref MODEL.gguf --kl-divergence --kl-divergence-base BASE [--chunks K] "
                    "[-t THREADS] [--rounding R]\n");
    return 2;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* What the double-precision pass hands each scored row to. */
struct ppl_ctx {
    const int32_t *ids;          /* the chunk [n_ctx] */
    int32_t n_vocab;
    struct qrun_ppl_acc acc;
    float *row;                  /* [n_vocab] the logits narrowed for the base file */
    struct qp_kld_writer *w;     /* NULL: no base file to write */
    struct qp_kld_reader *rd;    /* NULL: no base file to compare with */
    struct qp_kld_stats *ks;     /* with rd */
    struct qp_error *err;
    enum qp_status ws;           /* the writer's failure, if any */
};

static int ppl_row(void *user, int32_t pos, const double *logits) {
    struct ppl_ctx *c = user;
    const int32_t nv = c->n_vocab, next = c->ids[pos + 1];
    double mx = logits[0];
    for (int32_t i = 1; i < nv; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0.0;
    for (int32_t i = 0; i < nv; i++) sum += exp(logits[i] - mx);
    qrun_ppl_acc_add(&c->acc, mx + log(sum) - logits[next]);
    for (int32_t i = 0; (c->w || c->rd) && i < nv; i++) c->row[i] = (float)logits[i];
    if (c->w && (c->ws = qp_kld_writer_row(c->w, c->row, c->err)) != QP_OK) return 1;
    if (c->rd) {
        const uint16_t *base;
        if ((c->ws = qp_kld_reader_row(c->rd, &base, c->err)) != QP_OK) return 1;
        struct qp_kld_token t;
        qp_kld_compare_row(c->row, nv, base, next, &t);
        qp_kld_stats_add(c->ks, &t);
    }
    return 0;
}

/* --perplexity: the method of qrun --perplexity, each chunk through qp_ref_seq64. */
/* The text of file (NUL-terminated), or NULL with a message. */
static char *read_text(const char *file, size_t *len_out) {
    FILE *f = fopen(file, "rb");
    size_t len = 0, cap = 1 << 16;
    if (!f) {
        fprintf(stderr, "qpref: -f %s: %s\n", file, strerror(errno));
        return NULL;
    }
    char *text = malloc(cap);
    for (size_t k; text && (k = fread(text + len, 1, cap - len - 1, f)) > 0;) {
        len += k;
        if (len + 1 == cap) {
            char *t = realloc(text, cap *= 2);
            if (!t) free(text);
            text = t;
        }
    }
    fclose(f);
    if (!text) {
        fprintf(stderr, "qpref: out of memory\n");
        return NULL;
    }
    text[len] = 0;
    *len_out = len;
    return text;
}

/* kld: compare with base (its tokens) instead of writing it. */
static int perplexity_mode(const char *model, const char *file, long n_ctx_l, long n_chunks,
                           const char *base, bool kld, long n_threads,
                           enum qp_ref_rounding rounding) {
    struct qp_error err = {{0}};
    struct qp_gguf *g = NULL;
    struct qp_tokenizer *tok = NULL;
    struct qp_ref *r = NULL;
    struct qp_kld_writer *w = NULL;
    struct qp_kld_reader *rd = NULL;
    struct qp_kld_stats ks = {0};
    char *text = NULL;
    int32_t *all = NULL, *ids = NULL;
    const int32_t *src = NULL;
    float *row = NULL;
    int rc = 1;
    int32_t n_ctx = (int32_t)(n_ctx_l ? n_ctx_l : QRUN_PPL_DEFAULT_CTX);
    if (n_ctx < QRUN_PPL_MIN_CTX) return usage();
    if (n_threads <= 0) n_threads = sysconf(_SC_NPROCESSORS_ONLN);
    if (n_threads <= 0) n_threads = 1;
    int64_t n_tokens = 0;
    int32_t n_chunk = 0;
    size_t len = 0;
    if (qp_gguf_open(model, QP_GGUF_DEFAULT, &g, &err) != QP_OK ||
        qp_tokenizer_load(g, &tok, &err) != QP_OK)
        goto fail;
    if (kld) {
        if (qp_kld_reader_open(base, &rd, &err) != QP_OK) goto fail;
        const struct qp_kld_header *h = qp_kld_reader_header(rd);
        if (n_ctx_l && n_ctx != h->n_ctx) {
            qp_error_set(&err, QP_ERR_INVALID, "%s: written with -c %d, not %d", base,
                         (int)h->n_ctx, (int)n_ctx);
            goto fail;
        }
        n_ctx = h->n_ctx;
        n_chunk = n_chunks > 0 && n_chunks < h->n_chunk ? (int32_t)n_chunks : h->n_chunk;
        n_tokens = (int64_t)h->n_chunk * h->n_ctx;
        src = qp_kld_reader_tokens(rd);
    } else {
        if (!(text = read_text(file, &len))) goto fail_quiet;
        if (qrun_ppl_tokenize(tok, text, len, n_ctx, (int32_t)n_chunks, &all, &n_tokens,
                              &n_chunk, &err) != QP_OK)
            goto fail;
        src = all;
    }
    if (qp_ref_open(g, n_ctx, &r, &err) != QP_OK) goto fail;
    const int32_t nv = qp_ref_config(r)->n_vocab, bos = qrun_ppl_bos(tok), first = n_ctx / 2;
    if (kld && qp_kld_reader_header(rd)->n_vocab != nv) {
        qp_error_set(&err, QP_ERR_INVALID, "%s: %d logits per token, the model %d", base,
                     (int)qp_kld_reader_header(rd)->n_vocab, (int)nv);
        goto fail;
    }
    if (kld && qp_kld_stats_init(&ks, (int64_t)n_chunk * qp_kld_rows_per_chunk(n_ctx), &err) != QP_OK)
        goto fail;
    if (!kld && base && qp_kld_writer_open(base, n_ctx, nv, n_chunk, all, &w, &err) != QP_OK)
        goto fail;
    ids = malloc((size_t)n_ctx * sizeof *ids);
    row = malloc((size_t)nv * sizeof *row);
    if (!ids || !row) {
        qp_error_set(&err, QP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    fprintf(stderr, "qpref: %lld tokens, %d chunks of %d, scoring the last %d of each; %s; "
            "double precision (rounding: %s), %ld threads\n", (long long)n_tokens, (int)n_chunk,
            (int)n_ctx, (int)qp_kld_rows_per_chunk(n_ctx),
            bos >= 0 ? "BOS first in each chunk" : "no BOS",
            rounding == QP_REF_EXACT ? "none" : rounding == QP_REF_KV_F16 ? "kv-f16" : "llama-cpu",
            n_threads);
    struct ppl_ctx pc = {.ids = ids, .n_vocab = nv, .row = row, .w = w, .rd = rd, .ks = &ks,
                         .err = &err};
    const double t0 = now_s();
    if (kld) qp_kld_stats_print_head(stdout);
    for (int32_t c = 0; c < n_chunk; c++) {
        const double tc = now_s();
        memcpy(ids, src + (size_t)c * (size_t)n_ctx, (size_t)n_ctx * sizeof *ids);
        if (bos >= 0) ids[0] = bos;
        /* the last token is only predicted, never an input of a scored position */
        if (qp_ref_seq64(r, ids, n_ctx - 1, first, (int)n_threads, rounding, ppl_row, &pc, &err) !=
            QP_OK)
            goto fail;
        double ppl, pe;
        qrun_ppl_acc_value(&pc.acc, &ppl, &pe);
        if (kld) qp_kld_stats_print_chunk(&ks, c + 1, stdout);
        else printf("[%d]%.4f,", (int)c + 1, ppl);
        fflush(stdout);
        fprintf(stderr, "qpref: chunk %d/%d in %.1f s\n", (int)c + 1, (int)n_chunk, now_s() - tc);
    }
    double ppl, pe;
    qrun_ppl_acc_value(&pc.acc, &ppl, &pe);
    printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", ppl, pe);
    if (kld) qp_kld_stats_print_final(&ks, stdout);
    fprintf(stderr, "qpref: %d chunks in %.1f s\n", (int)n_chunk, now_s() - t0);
    if (w) {
        enum qp_status s = qp_kld_writer_commit(w, &err);
        w = NULL;
        if (s != QP_OK) goto fail;
        fprintf(stderr, "qpref: wrote the base file %s\n", base);
    }
    rc = 0;
fail:
    if (rc) fprintf(stderr, "qpref: %s\n", err.msg);
fail_quiet:
    qp_kld_writer_abort(w);
    qp_kld_reader_close(rd);
    qp_kld_stats_free(&ks);
    qp_ref_free(r);
    qp_tokenizer_free(tok);
    qp_gguf_close(g);
    free(text);
    free(all);
    free(ids);
    free(row);
    return rc;
}

static int parse_tokens(const char *s, int32_t **out, int32_t *n) {
    int32_t cap = 16, k = 0;
    int32_t *t = malloc((size_t)cap * sizeof(int32_t));
    while (t && *s) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v > INT32_MAX) break;
        if (k == cap) {
            int32_t *nt = realloc(t, (size_t)(cap *= 2) * sizeof(int32_t));
            if (!nt) break;
            t = nt;
        }
        t[k++] = (int32_t)v;
        s = end;
        if (*s == ',') s++;
        else if (*s) break;
    }
    if (!t || *s || k == 0) {
        free(t);
        return 0;
    }
    *out = t;
    *n = k;
    return 1;
}

static int32_t argmax(const float *x, int32_t n) {
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

int main(int argc, char **argv) {
    const char *model = NULL, *tokens_arg = NULL, *check = NULL, *prompt = NULL, *file = NULL,
               *base = NULL, *rounding = "exact";
    long n_gen = 0, n_ctx = 0, n_chunks = 0, n_threads = 0;
    int ppl = 0, kld = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--perplexity")) ppl = 1;
        else if (!strcmp(argv[i], "--kl-divergence")) kld = 1;
        else if (!strcmp(argv[i], "-f") && i + 1 < argc) file = argv[++i];
        else if (!strcmp(argv[i], "-c") && i + 1 < argc) n_ctx = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--chunks") && i + 1 < argc) n_chunks = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--kl-divergence-base") && i + 1 < argc) base = argv[++i];
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) n_threads = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--rounding") && i + 1 < argc) rounding = argv[++i];
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) tokens_arg = argv[++i];
        else if (!strcmp(argv[i], "--check") && i + 1 < argc) check = argv[++i];
        else if (!strcmp(argv[i], "--prompt") && i + 1 < argc) prompt = argv[++i];
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) n_gen = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--ctx") && i + 1 < argc) n_ctx = strtol(argv[++i], NULL, 10);
        else if (argv[i][0] != '-' && !model) model = argv[i];
        else return usage();
    }
    if (ppl || kld) {
        if (!model || (kld ? !base || file : !file) || tokens_arg || check || prompt || n_ctx < 0 || n_ctx > 1 << 24 ||
            n_chunks < 0 || n_chunks > INT32_MAX || n_threads < 0 || n_threads > 64)
            return usage();
        enum qp_ref_rounding rd = QP_REF_EXACT;
        if (!strcmp(rounding, "kv-f16")) rd = QP_REF_KV_F16;
        else if (!strcmp(rounding, "llama-cpu")) rd = QP_REF_LLAMA_CPU;
        else if (strcmp(rounding, "exact") != 0) return usage();
        return perplexity_mode(model, file, n_ctx, n_chunks, base, kld, n_threads, rd);
    }
    if (file || base || n_chunks || n_threads) return usage();
    if (!model || (!!tokens_arg + !!check + !!prompt) != 1 || n_gen < 0 || n_gen > 1 << 20 || n_ctx < 0 ||
        n_ctx > 1 << 24)
        return usage();

    struct qp_error err = {{0}};
    struct qp_ref_expected exp = {0};
    int32_t *tokens = NULL, n_tok = 0;
    if (check && qp_ref_expected_read(check, &exp, &err) != QP_OK) {
        fprintf(stderr, "qpref: %s\n", err.msg);
        return 1;
    }
    struct qp_tokenizer *tok = NULL;
    if (prompt) {
        size_t n = 0;
        if (qp_tokenizer_load_file(model, &tok, &err) != QP_OK ||
            qp_tokenizer_encode(tok, prompt, strlen(prompt), false, &tokens, &n, &err) != QP_OK) {
            fprintf(stderr, "qpref: %s\n", err.msg);
            qp_tokenizer_free(tok);
            return 1;
        }
        if (n == 0 || n > INT32_MAX) {
            fprintf(stderr, "qpref: the prompt gave no tokens\n");
            qp_tokenizer_free(tok);
            free(tokens);
            return 2;
        }
        n_tok = (int32_t)n;
        printf("prompt ids:");
        for (int32_t i = 0; i < n_tok; i++) printf("%s%d", i ? "," : " ", tokens[i]);
        printf("\n");
    } else if (tokens_arg) {
        if (!parse_tokens(tokens_arg, &tokens, &n_tok)) {
            fprintf(stderr, "qpref: --tokens '%s': expected comma-separated ids\n", tokens_arg);
            return 2;
        }
    } else {
        n_tok = exp.n_tok;
        tokens = malloc((size_t)n_tok * sizeof(int32_t));
        if (!tokens) return 1;
        memcpy(tokens, exp.tokens, (size_t)n_tok * sizeof(int32_t));
    }
    if (check && (n_tok != exp.n_tok || memcmp(tokens, exp.tokens, (size_t)n_tok * 4) != 0)) {
        fprintf(stderr, "qpref: --tokens differ from the tokens of %s\n", check);
        return 2;
    }
    if (!n_ctx) n_ctx = n_tok + n_gen;

    struct qp_gguf *g = NULL;
    struct qp_ref *r = NULL;
    if (qp_gguf_open(model, QP_GGUF_DEFAULT, &g, &err) != QP_OK ||
        qp_ref_open(g, (int32_t)n_ctx, &r, &err) != QP_OK) {
        fprintf(stderr, "qpref: %s\n", err.msg);
        qp_gguf_close(g);
        return 1;
    }
    const struct qp_ref_config *c = qp_ref_config(r);
    printf("%s: qwen2, %d layers, embd %d, heads %d/%d (hd %d), ffn %d, vocab %d, %s output\n",
           model, c->n_layer, c->n_embd, c->n_head, c->n_head_kv, c->head_dim, c->n_ff,
           c->n_vocab, c->tied_output ? "tied" : "separate");

    const size_t V = (size_t)c->n_vocab;
    float *logits = malloc((size_t)n_tok * V * sizeof(float));
    int rc = 0;
    if (!logits) {
        fprintf(stderr, "qpref: out of memory\n");
        rc = 1;
        goto done;
    }
    for (int32_t p = 0; p < n_tok; p++) {
        float *row = logits + (size_t)p * V;
        if (qp_ref_forward(r, tokens[p], p, row, &err) != QP_OK) {
            fprintf(stderr, "qpref: %s\n", err.msg);
            rc = 1;
            goto done;
        }
        double sum = 0;
        float mn = row[0], mx = row[0];
        for (size_t i = 0; i < V; i++) {
            sum += row[i];
            mn = row[i] < mn ? row[i] : mn;
            mx = row[i] > mx ? row[i] : mx;
        }
        printf("pos %d token %d: argmax %d max %.4f min %.4f mean %.4f\n", p, tokens[p],
               argmax(row, (int32_t)V), mx, mn, sum / (double)V);
    }
    if (check) {
        if ((int32_t)V != exp.n_vocab) {
            fprintf(stderr, "qpref: %s has vocab %d, the model %zu\n", check, exp.n_vocab, V);
            rc = 1;
            goto done;
        }
        struct qp_ref_compare cmp;
        qp_ref_compare(&exp, logits, &cmp);
        printf("vs %s (%" PRId64 " logits): max abs err %.3g, max rel err %.3g (pos %d id %d), "
               "top-1 agreement %d/%d\n",
               check, exp.n_entries, cmp.max_abs, cmp.max_rel, cmp.worst_pos, cmp.worst_id,
               cmp.top1_agree, exp.n_tok);
    }
    if (n_gen > 0) {
        float *row = malloc(V * sizeof(float));
        int32_t *gen = malloc((size_t)n_gen * sizeof(int32_t));
        if (!row || !gen) {
            free(row);
            free(gen);
            rc = 1;
            goto done;
        }
        int32_t next = argmax(logits + (size_t)(n_tok - 1) * V, (int32_t)V);
        long n_done = 0;
        printf("greedy:");
        for (long i = 0; i < n_gen; i++) {
            printf("%s%d", i ? "," : " ", next);
            gen[n_done++] = next;
            fflush(stdout);
            if (i + 1 == n_gen) break;
            if (qp_ref_forward(r, next, n_tok + (int32_t)i, row, &err) != QP_OK) {
                fprintf(stderr, "\nqpref: %s\n", err.msg);
                rc = 1;
                break;
            }
            next = argmax(row, (int32_t)V);
        }
        printf("\n");
        if (tok) { /* the raw bytes of the tokens, in order: whole UTF-8 characters at the end */
            printf("text: ");
            for (long i = 0; i < n_done; i++) {
                size_t len = 0;
                const char *b = qp_tokenizer_token_bytes(tok, gen[i], &len);
                if (b) fwrite(b, 1, len, stdout);
            }
            printf("\n");
        }
        free(gen);
        free(row);
    }
done:
    free(logits);
    free(tokens);
    qp_ref_expected_free(&exp);
    qp_tokenizer_free(tok);
    qp_ref_free(r);
    qp_gguf_close(g);
    return rc;
}
