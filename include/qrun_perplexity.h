/* qrun_perplexity.h — perplexity and KL divergence of a plan over a text (`qrun --perplexity`,
 * `qrun --kl-divergence`), by llama-perplexity's method, through libqrun's public API (so every
 * backend runs it unchanged). docs/fidelity.md explains both measures and the numbers.
 *
 * The method: tokenize the whole text (special-token text stays text; a BOS first when the
 * vocabulary's add_bos_token says so), cut it into n_chunk = min(--chunks, n / n_ctx) chunks of
 * n_ctx tokens, evaluate each from an empty context (its first token replaced by BOS when the
 * model adds one), and score positions n_ctx/2 .. n_ctx-2, each by -log p(next token).
 * PPL = exp(mean NLL) with the standard error of the mean, as llama.cpp prints it.
 * The unscored first half (and one more token) is prefilled in the plan's chunks; the scored
 * positions then run one token each through the decode program, whose logits are the plan's
 * output (a plan's prefill computes the LM head for its last row only).
 */
#pragma once
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "qp_status.h"
#include "qp_tokenizer.h"
#include "qrun.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QRUN_PPL_DEFAULT_CTX 512 /* llama-perplexity's -c default */
#define QRUN_PPL_MIN_CTX 4

struct qrun_ppl_options {
    int32_t n_ctx;        /* -c: tokens per chunk; 0 = the base file's with kld, else 512 */
    int32_t n_chunks;     /* --chunks: at most this many chunks; <= 0: every whole chunk */
    const char *kld_base; /* --kl-divergence-base: written with perplexity, read with kld */
    bool kld;             /* --kl-divergence: compare with kld_base over the base's tokens */
    bool progress;        /* a progress line on stderr (a terminal) while chunks run */
    volatile sig_atomic_t *interrupt; /* stop (QP_ERR_INTERRUPTED) when it becomes nonzero */
};
struct qrun_ppl_options qrun_ppl_options_default(void);

struct qrun_ppl_result {
    double ppl, ppl_err;   /* exp(mean NLL) and its standard error */
    int64_t n_text_tokens; /* tokens of the text (the base's n_chunk * n_ctx with kld) */
    int32_t n_ctx, n_chunk;
    int64_t n_scored;      /* n_chunk * (n_ctx - 1 - n_ctx/2) */
    double seconds;        /* evaluation, tokenization excluded */
    double kld_mean;       /* kld: mean KL divergence from the base */
    double same_top;       /* kld: fraction of scored tokens whose argmax equals the base's */
};

/* Running -log p sums: PPL = exp(nll / count); its error as llama-perplexity prints it. */
struct qrun_ppl_acc {
    double nll, nll2;
    int64_t count;
};
void qrun_ppl_acc_add(struct qrun_ppl_acc *a, double nll);
void qrun_ppl_acc_value(const struct qrun_ppl_acc *a, double *ppl, double *err);

/* The BOS id to put first in every chunk: the vocabulary's BOS when add_bos_token is true,
 * else -1 (Qwen2: -1). */
int32_t qrun_ppl_bos(const struct qp_tokenizer *t);

/* Tokenizes text[0..len) the method's way and counts the chunks: *n_chunk = min(max_chunks
 * (<= 0: no limit), n / n_ctx). QP_ERR_RANGE naming both counts when the text has fewer than
 * 2 * n_ctx tokens (llama-perplexity's rule); QP_ERR_INVALID for text that is not UTF-8.
 * *tokens is malloc'd ([*n_tokens]; the caller frees). */
enum qp_status qrun_ppl_tokenize(struct qp_tokenizer *t, const char *text, size_t len,
                                 int32_t n_ctx, int32_t max_chunks, int32_t **tokens,
                                 int64_t *n_tokens, int32_t *n_chunk, struct qp_error *err);

/* Runs the method on an open plan (whose usable context, qrun_n_ctx, must hold n_ctx), writing
 * to out: perplexity prints the running value per chunk ("[1]4.8612,[2]...") and the final
 * "Final estimate: PPL = x +/- y", and writes the base file when o->kld_base is set; kld reads
 * the base's tokens (text is ignored; NULL is fine), refuses a base of another vocabulary or
 * (when o->n_ctx is given) another chunk length, and prints llama-perplexity's per-chunk table
 * and final statistics. Timings and progress go to stderr. res may be NULL. Errors: those of
 * qrun_ppl_tokenize, of the base file (qp_kld.h), of the backend, QP_ERR_INVALID for logits
 * that are not finite, QP_ERR_INTERRUPTED. A base file is only ever complete or absent. */
enum qp_status qrun_perplexity(struct qrun *q, const char *text, size_t len,
                               const struct qrun_ppl_options *o, FILE *out,
                               struct qrun_ppl_result *res, struct qp_error *err);

/* `qrun PLAN --perplexity / --kl-divergence`: reads the base's header first with kld (its
 * n_ctx is the default chunk length), opens the plan with o (its n_ctx replaced by the chunk
 * length), reads the text file text_path (ignored with kld; may be NULL) and runs
 * qrun_perplexity. */
enum qp_status qrun_perplexity_cmd(const char *plan, const struct qrun_options *o,
                                   const struct qrun_ppl_options *po, const char *text_path,
                                   FILE *out, struct qrun_ppl_result *res, struct qp_error *err);

#ifdef __cplusplus
}
#endif
