/* qp_kld.h — llama.cpp's KL-divergence base file (what `llama-perplexity --kl-divergence-base`
 * writes and `--kl-divergence` reads), the per-token math of perplexity and KL divergence, and
 * llama-perplexity's statistics. Shared by `qrun --perplexity / --kl-divergence` and the
 * oracle's `qpref --perplexity`, so a file written by one is read by the others and by
 * llama.cpp, and the other way round.
 *
 * The file (docs/fidelity.md; little-endian, no padding):
 *   char    magic[8]                 "_logits_"
 *   int32   n_ctx                    tokens per chunk
 *   int32   n_vocab                  logits per token
 *   int32   n_chunk                  chunks
 *   int32   tokens[n_chunk][n_ctx]   the evaluated tokens (before any BOS substitution)
 *   then per chunk, for the scored positions p = n_ctx/2 .. n_ctx-2 (n_ctx - 1 - n_ctx/2 rows),
 *   one row of qp_kld_row_len(n_vocab) uint16:
 *     float32 scale, float32 min_log_prob     (the first 8 bytes)
 *     uint16  q[n_vocab]                      log p_i = scale * q_i + min_log_prob
 *     uint16  0                               when n_vocab is odd
 *   The log-probs are quantized over [max - 16, max] of the logits (q = 0 below), so one step is
 *   at most 16/65535 = 2.4e-4 nats.
 *
 * Base files are gigabytes (14 chunks of 512 over 151,936 logits: 1.09 GB): both the reader and
 * the writer stream one row at a time and never hold the file.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "qp_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QP_KLD_MAGIC "_logits_"
#define QP_KLD_HEADER_BYTES 20   /* magic + n_ctx + n_vocab + n_chunk */
#define QP_KLD_MAX_CTX (1 << 24) /* limits on what a reader accepts (far above any model) */
#define QP_KLD_MAX_VOCAB (1 << 24)

/* uint16 entries of one row: 4 for the two floats, n_vocab rounded up to even. */
int64_t qp_kld_row_len(int32_t n_vocab);

/* Scored positions per chunk: n_ctx/2 .. n_ctx-2, each predicting the next token. */
int32_t qp_kld_rows_per_chunk(int32_t n_ctx);

/* The whole file's size for these dimensions; false when it overflows 63 bits. */
bool qp_kld_file_bytes(int32_t n_ctx, int32_t n_vocab, int32_t n_chunk, uint64_t *bytes);

/* ---- per-token math ---- */

/* -log softmax(logits)[token]: max, sum of exp in double. */
double qp_kld_nll(const float *logits, int32_t n_vocab, int32_t token);

/* The quantized log-probs of logits into row[qp_kld_row_len(n_vocab)] (llama.cpp's encoding:
 * round to nearest, q = 0 at or below max - 16). */
void qp_kld_encode_row(const float *logits, int32_t n_vocab, uint16_t *row);

/* One scored token compared with a base row. */
struct qp_kld_token {
    double nll;      /* -log q(token) of the logits under test */
    double nll_base; /* -log p(token) of the base row */
    double kld;      /* sum over i with log p_i > -16 of p_i (log p_i - log q_i) */
    double p_diff;   /* q(token) - p(token) */
    bool same_top;   /* argmax of the logits == argmax of the base row (first maximum) */
};
void qp_kld_compare_row(const float *logits, int32_t n_vocab, const uint16_t *row, int32_t token,
                        struct qp_kld_token *out);

/* ---- the writer ---- */

struct qp_kld_writer;

/* Creates path (atomically: a temporary file beside it, renamed into place by commit) and
 * writes the header and tokens[n_chunk * n_ctx]. QP_ERR_INVALID for dimensions out of range,
 * QP_ERR_IO naming the file. */
enum qp_status qp_kld_writer_open(const char *path, int32_t n_ctx, int32_t n_vocab,
                                  int32_t n_chunk, const int32_t *tokens,
                                  struct qp_kld_writer **out, struct qp_error *err);

/* Encodes and appends the next row (chunk by chunk, position by position). QP_ERR_RANGE past
 * the last row. On a write failure the file is removed (abort is then enough). */
enum qp_status qp_kld_writer_row(struct qp_kld_writer *w, const float *logits,
                                 struct qp_error *err);

/* Checks every row was written, syncs, renames into place, frees w (also on failure). */
enum qp_status qp_kld_writer_commit(struct qp_kld_writer *w, struct qp_error *err);

/* Removes the temporary file and frees w. NULL is fine. */
void qp_kld_writer_abort(struct qp_kld_writer *w);

/* ---- the reader ---- */

struct qp_kld_header {
    int32_t n_ctx, n_vocab, n_chunk;
};

struct qp_kld_reader;

/* Opens path, reads and checks the header (magic, dimensions in range, the file's size equal to
 * what they imply when it is a regular file) and the tokens (each in [0, n_vocab)). Errors name
 * the file and the problem: QP_ERR_IO, QP_ERR_FORMAT (not a base file, truncated, trailing
 * bytes, a token out of range), QP_ERR_NOMEM. */
enum qp_status qp_kld_reader_open(const char *path, struct qp_kld_reader **out,
                                  struct qp_error *err);

const struct qp_kld_header *qp_kld_reader_header(const struct qp_kld_reader *r);
const int32_t *qp_kld_reader_tokens(const struct qp_kld_reader *r); /* [n_chunk * n_ctx] */

/* Reads the next row into a buffer owned by r (valid until the next call) and checks its two
 * floats (scale finite and >= 0, min_log_prob finite and <= 0). QP_ERR_FORMAT on a short read
 * (naming chunk and row) or bad floats; QP_ERR_RANGE past the last row. */
enum qp_status qp_kld_reader_row(struct qp_kld_reader *r, const uint16_t **row,
                                 struct qp_error *err);

void qp_kld_reader_close(struct qp_kld_reader *r); /* NULL is fine */

/* ---- statistics (llama-perplexity --kl-divergence's) ---- */

struct qp_kld_stats {
    double sum_nll, sum_nll2, sum_nll_base, sum_nll_base2, sum_nll_nll_base;
    double sum_kld, sum_kld2, sum_p_diff, sum_p_diff2, sum_p_diff4;
    double max_p_diff; /* max |p_diff| */
    int64_t n_same_top, count, cap;
    float *kld_values;    /* [cap] per token, for the median and percentiles */
    float *p_diff_values; /* [cap] */
};

/* Room for cap tokens. QP_ERR_NOMEM. */
enum qp_status qp_kld_stats_init(struct qp_kld_stats *s, int64_t cap, struct qp_error *err);
void qp_kld_stats_free(struct qp_kld_stats *s);
/* Adds one token (ignored past cap). */
void qp_kld_stats_add(struct qp_kld_stats *s, const struct qp_kld_token *t);

/* The per-chunk table: its header line, then one line per chunk (running values). */
void qp_kld_stats_print_head(FILE *f);
void qp_kld_stats_print_chunk(const struct qp_kld_stats *s, int32_t chunk, FILE *f);

/* The final report: perplexity statistics (PPL of both, their ratio and difference, the
 * correlation), KL divergence (mean, maximum, percentiles, median, minimum), token probability
 * differences and the same-top rate. Sorts the value arrays. Fewer than 100 tokens: only a
 * note (as llama.cpp). */
void qp_kld_stats_print_final(struct qp_kld_stats *s, FILE *f);

/* Mean and its standard error over count values from their sum and sum of squares (the error
 * is 0 for 10 values or fewer, as llama.cpp's). */
void qp_kld_mean_err(double sum, double sum2, int64_t count, double *mean, double *err);

#ifdef __cplusplus
}
#endif
