/* kld_base.c — llama.cpp's KL-divergence base file (include/qp_kld.h): the row encoding, the
 * per-token comparison with a row, and the streaming writer and reader.
 *
 * Owns: one row buffer per writer or reader (qp_kld_row_len(n_vocab) uint16 and its bytes), the
 * reader's tokens. Never holds more than one row of the file. Byte order: the file is
 * little-endian; rows and integers are decoded byte by byte, so the host's order does not
 * matter. The writer goes through qp_atomic_file: a failed or abandoned write leaves nothing.
 * Invariant (reader and writer): rows_done <= n_chunk * rows_per_chunk.
 */
#define _POSIX_C_SOURCE 200809L
#include "qp_kld.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qp_atomic_file.h"

int64_t qp_kld_row_len(int32_t n_vocab) { return 2 * (((int64_t)n_vocab + 1) / 2) + 4; }

int32_t qp_kld_rows_per_chunk(int32_t n_ctx) { return n_ctx - 1 - n_ctx / 2; }

bool qp_kld_file_bytes(int32_t n_ctx, int32_t n_vocab, int32_t n_chunk, uint64_t *bytes) {
    if (n_ctx < 1 || n_vocab < 1 || n_chunk < 1) return false;
    /* each factor is below 2^31: the products fit 63 bits when checked one at a time */
    uint64_t tok = (uint64_t)n_chunk * (uint64_t)n_ctx * 4u;
    uint64_t row = (uint64_t)qp_kld_row_len(n_vocab) * 2u;
    uint64_t rows = (uint64_t)n_chunk * (uint64_t)(n_ctx - 1 - n_ctx / 2);
    if (rows && row > (UINT64_C(1) << 62) / rows) return false;
    *bytes = QP_KLD_HEADER_BYTES + tok + rows * row;
    return true;
}

/* ---- bytes ---- */

static void put32(uint8_t *b, uint32_t v) {
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)(v >> 16);
    b[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* A row's two floats live in its first four uint16 (low half first, as the bytes lie). */
static void row_put_f32(uint16_t *row, float f) {
    uint32_t u = f32_bits(f);
    row[0] = (uint16_t)u;
    row[1] = (uint16_t)(u >> 16);
}

static float row_get_f32(const uint16_t *row) {
    return bits_f32((uint32_t)row[0] | (uint32_t)row[1] << 16);
}

/* ---- per-token math ---- */

double qp_kld_nll(const float *logits, int32_t n_vocab, int32_t token) {
    float mx = logits[0];
    for (int32_t i = 1; i < n_vocab; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - (double)mx);
    return (double)mx + log(sum) - (double)logits[token];
}

void qp_kld_encode_row(const float *logits, int32_t n_vocab, uint16_t *row) {
    float mx = logits[0], mn = logits[0];
    for (int32_t i = 1; i < n_vocab; i++) {
        if (logits[i] > mx) mx = logits[i];
        if (logits[i] < mn) mn = logits[i];
    }
    if (mn < mx - 16.0f) mn = mx - 16.0f; /* below max - 16 everything becomes q = 0 */
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - (double)mx);
    const float log_sum_exp = (float)log(sum);
    const float scale = (mx - mn) / 65535.0f;
    row_put_f32(row, scale);
    row_put_f32(row + 2, mn - mx - log_sum_exp);
    uint16_t *q = row + 4;
    if (scale > 0.0f) {
        const float inv = 1.0f / scale;
        for (int32_t i = 0; i < n_vocab; i++) {
            long v = logits[i] > mn ? lrintf(inv * (logits[i] - mn)) : 0;
            q[i] = (uint16_t)(v < 0 ? 0 : v > 65535 ? 65535 : v);
        }
    } else {
        memset(q, 0, (size_t)n_vocab * sizeof *q);
    }
    if (n_vocab % 2) q[n_vocab] = 0;
}

void qp_kld_compare_row(const float *logits, int32_t n_vocab, const uint16_t *row, int32_t token,
                        struct qp_kld_token *out) {
    float mx = logits[0];
    int32_t imax = 0;
    for (int32_t i = 1; i < n_vocab; i++)
        if (logits[i] > mx) {
            mx = logits[i];
            imax = i;
        }
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - (double)mx);
    const double norm = (double)mx + log(sum); /* log q_i = logits[i] - norm */
    const double scale = row_get_f32(row), min_lp = row_get_f32(row + 2);
    const uint16_t *q = row + 4;
    out->nll = norm - (double)logits[token];
    out->nll_base = -(scale * q[token] + min_lp);
    double kld = 0.0, best = 0.0;
    int32_t imax_base = 0;
    for (int32_t i = 0; i < n_vocab; i++) {
        const double lp = scale * q[i] + min_lp;
        if (i == 0 || lp > best) {
            best = lp;
            imax_base = i;
        }
        if (lp > -16.0) kld += exp(lp) * (lp - ((double)logits[i] - norm));
    }
    out->kld = kld;
    out->same_top = imax == imax_base;
    out->p_diff = exp(-out->nll) - exp(-out->nll_base);
}

/* ---- writer ---- */

struct qp_kld_writer {
    struct qp_atomic_file f;
    char *path;
    int32_t n_vocab;
    int64_t rows_total, rows_done;
    uint16_t *row;  /* [qp_kld_row_len(n_vocab)] */
    uint8_t *bytes; /* its little-endian bytes */
};

static void writer_free(struct qp_kld_writer *w) {
    free(w->path);
    free(w->row);
    free(w->bytes);
    free(w);
}

void qp_kld_writer_abort(struct qp_kld_writer *w) {
    if (!w) return;
    qp_atomic_file_abort(&w->f);
    writer_free(w);
}

enum qp_status qp_kld_writer_open(const char *path, int32_t n_ctx, int32_t n_vocab,
                                  int32_t n_chunk, const int32_t *tokens,
                                  struct qp_kld_writer **out, struct qp_error *err) {
    *out = NULL;
    uint64_t bytes;
    if (n_ctx < 3 || n_ctx > QP_KLD_MAX_CTX || n_vocab < 1 || n_vocab > QP_KLD_MAX_VOCAB ||
        n_chunk < 1 || !qp_kld_file_bytes(n_ctx, n_vocab, n_chunk, &bytes))
        return qp_error_set(err, QP_ERR_INVALID, "%s: cannot write a base file of %d chunks of %d "
                            "tokens over %d logits", path, (int)n_chunk, (int)n_ctx, (int)n_vocab);
    struct qp_kld_writer *w = calloc(1, sizeof *w);
    if (!w) return qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", path);
    w->f.fd = -1;
    const int64_t rl = qp_kld_row_len(n_vocab);
    w->path = malloc(strlen(path) + 1);
    w->row = malloc((size_t)rl * sizeof *w->row);
    w->bytes = malloc((size_t)rl * 2);
    size_t ntok = (size_t)n_chunk * (size_t)n_ctx;
    uint8_t *hdr = malloc(QP_KLD_HEADER_BYTES + ntok * 4);
    if (!w->path || !w->row || !w->bytes || !hdr) {
        free(hdr);
        writer_free(w);
        return qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", path);
    }
    strcpy(w->path, path);
    w->n_vocab = n_vocab;
    w->rows_total = (int64_t)n_chunk * qp_kld_rows_per_chunk(n_ctx);
    memcpy(hdr, QP_KLD_MAGIC, 8);
    put32(hdr + 8, (uint32_t)n_ctx);
    put32(hdr + 12, (uint32_t)n_vocab);
    put32(hdr + 16, (uint32_t)n_chunk);
    for (size_t i = 0; i < ntok; i++) put32(hdr + QP_KLD_HEADER_BYTES + 4 * i, (uint32_t)tokens[i]);
    enum qp_status s = qp_atomic_file_open(&w->f, w->path, err);
    if (s == QP_OK) s = qp_atomic_file_write(&w->f, hdr, QP_KLD_HEADER_BYTES + ntok * 4, err);
    free(hdr);
    if (s != QP_OK) {
        qp_kld_writer_abort(w);
        return s;
    }
    *out = w;
    return QP_OK;
}

enum qp_status qp_kld_writer_row(struct qp_kld_writer *w, const float *logits,
                                 struct qp_error *err) {
    if (w->rows_done >= w->rows_total)
        return qp_error_set(err, QP_ERR_RANGE, "%s: all %lld rows are already written", w->path,
                            (long long)w->rows_total);
    qp_kld_encode_row(logits, w->n_vocab, w->row);
    const int64_t rl = qp_kld_row_len(w->n_vocab);
    for (int64_t i = 0; i < rl; i++) {
        w->bytes[2 * i] = (uint8_t)w->row[i];
        w->bytes[2 * i + 1] = (uint8_t)(w->row[i] >> 8);
    }
    enum qp_status s = qp_atomic_file_write(&w->f, w->bytes, (size_t)rl * 2, err);
    if (s == QP_OK) w->rows_done++;
    return s;
}

enum qp_status qp_kld_writer_commit(struct qp_kld_writer *w, struct qp_error *err) {
    enum qp_status s;
    if (w->rows_done != w->rows_total) {
        s = qp_error_set(err, QP_ERR_INVALID, "%s: %lld of %lld rows written: not saved", w->path,
                         (long long)w->rows_done, (long long)w->rows_total);
        qp_kld_writer_abort(w);
        return s;
    }
    s = qp_atomic_file_commit(&w->f, err);
    writer_free(w);
    return s;
}

/* ---- reader ---- */

struct qp_kld_reader {
    FILE *f;
    char *path;
    struct qp_kld_header h;
    int32_t *tokens;  /* [n_chunk * n_ctx] */
    int64_t rows_per_chunk, rows_total, rows_done;
    uint16_t *row;    /* [qp_kld_row_len(n_vocab)] */
    uint8_t *bytes;   /* the row as read */
};

void qp_kld_reader_close(struct qp_kld_reader *r) {
    if (!r) return;
    if (r->f) fclose(r->f);
    free(r->path);
    free(r->tokens);
    free(r->row);
    free(r->bytes);
    free(r);
}

enum qp_status qp_kld_reader_open(const char *path, struct qp_kld_reader **out,
                                  struct qp_error *err) {
    *out = NULL;
    struct qp_kld_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = malloc(strlen(path) + 1))) {
        free(r);
        return qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", path);
    }
    strcpy(r->path, path);
    enum qp_status s = QP_OK;
    struct stat st;
    if (!(r->f = fopen(path, "rb"))) {
        s = qp_error_set(err, QP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(fileno(r->f), &st) != 0 || S_ISDIR(st.st_mode)) {
        s = qp_error_set(err, QP_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    uint8_t hdr[QP_KLD_HEADER_BYTES];
    size_t got = fread(hdr, 1, sizeof hdr, r->f);
    if (got < 8 || memcmp(hdr, QP_KLD_MAGIC, 8) != 0) {
        s = qp_error_set(err, QP_ERR_FORMAT, "%s: not a KL-divergence base file (it does not "
                         "begin with '_logits_'; write one with --perplexity --kl-divergence-base)",
                         path);
        goto fail;
    }
    if (got < sizeof hdr) {
        s = qp_error_set(err, QP_ERR_FORMAT, "%s: truncated: the header needs %d bytes, the file "
                         "has %zu", path, QP_KLD_HEADER_BYTES, got);
        goto fail;
    }
    r->h.n_ctx = (int32_t)get32(hdr + 8);
    r->h.n_vocab = (int32_t)get32(hdr + 12);
    r->h.n_chunk = (int32_t)get32(hdr + 16);
    if (r->h.n_ctx < 3 || r->h.n_ctx > QP_KLD_MAX_CTX || r->h.n_vocab < 1 ||
        r->h.n_vocab > QP_KLD_MAX_VOCAB || r->h.n_chunk < 1 || r->h.n_chunk > QP_KLD_MAX_CTX) {
        s = qp_error_set(err, QP_ERR_FORMAT, "%s: impossible header: n_ctx %d, n_vocab %d, "
                         "n_chunk %d (want n_ctx in [3, %d], n_vocab in [1, %d], n_chunk >= 1)",
                         path, (int)r->h.n_ctx, (int)r->h.n_vocab, (int)r->h.n_chunk,
                         QP_KLD_MAX_CTX, QP_KLD_MAX_VOCAB);
        goto fail;
    }
    uint64_t want;
    if (!qp_kld_file_bytes(r->h.n_ctx, r->h.n_vocab, r->h.n_chunk, &want)) {
        s = qp_error_set(err, QP_ERR_FORMAT, "%s: impossible header: %d chunks of %d tokens over "
                         "%d logits overflow", path, (int)r->h.n_chunk, (int)r->h.n_ctx,
                         (int)r->h.n_vocab);
        goto fail;
    }
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size != want) {
        s = qp_error_set(err, QP_ERR_FORMAT, "%s: %s: %d chunks of %d tokens over %d logits need "
                         "%llu bytes, the file has %llu", path,
                         (uint64_t)st.st_size < want ? "truncated" : "trailing bytes",
                         (int)r->h.n_chunk, (int)r->h.n_ctx, (int)r->h.n_vocab,
                         (unsigned long long)want, (unsigned long long)st.st_size);
        goto fail;
    }
    const size_t ntok = (size_t)r->h.n_chunk * (size_t)r->h.n_ctx;
    const int64_t rl = qp_kld_row_len(r->h.n_vocab);
    r->tokens = malloc(ntok * sizeof *r->tokens);
    r->row = malloc((size_t)rl * sizeof *r->row);
    r->bytes = malloc((size_t)rl * 2 > ntok * 4 ? (size_t)rl * 2 : ntok * 4);
    if (!r->tokens || !r->row || !r->bytes) {
        s = qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    if (fread(r->bytes, 4, ntok, r->f) != ntok) {
        s = qp_error_set(err, QP_ERR_FORMAT, "%s: truncated inside the %zu tokens", path, ntok);
        goto fail;
    }
    for (size_t i = 0; i < ntok; i++) {
        int32_t t = (int32_t)get32(r->bytes + 4 * i);
        if (t < 0 || t >= r->h.n_vocab) {
            s = qp_error_set(err, QP_ERR_FORMAT, "%s: token %d at index %zu (chunk %zu) is "
                             "outside the file's vocabulary [0, %d)", path, (int)t, i,
                             i / (size_t)r->h.n_ctx + 1, (int)r->h.n_vocab);
            goto fail;
        }
        r->tokens[i] = t;
    }
    r->rows_per_chunk = qp_kld_rows_per_chunk(r->h.n_ctx);
    r->rows_total = (int64_t)r->h.n_chunk * r->rows_per_chunk;
    *out = r;
    return QP_OK;
fail:
    qp_kld_reader_close(r);
    return s;
}

const struct qp_kld_header *qp_kld_reader_header(const struct qp_kld_reader *r) { return &r->h; }

const int32_t *qp_kld_reader_tokens(const struct qp_kld_reader *r) { return r->tokens; }

enum qp_status qp_kld_reader_row(struct qp_kld_reader *r, const uint16_t **row,
                                 struct qp_error *err) {
    const int64_t chunk = r->rows_done / r->rows_per_chunk + 1,
                  pos = r->h.n_ctx / 2 + r->rows_done % r->rows_per_chunk;
    if (r->rows_done >= r->rows_total)
        return qp_error_set(err, QP_ERR_RANGE, "%s: all %lld rows are already read", r->path,
                            (long long)r->rows_total);
    const int64_t rl = qp_kld_row_len(r->h.n_vocab);
    if (fread(r->bytes, 2, (size_t)rl, r->f) != (size_t)rl)
        return qp_error_set(err, QP_ERR_FORMAT, "%s: truncated at chunk %lld, position %lld%s%s",
                            r->path, (long long)chunk, (long long)pos,
                            ferror(r->f) ? ": " : "", ferror(r->f) ? strerror(errno) : "");
    for (int64_t i = 0; i < rl; i++)
        r->row[i] = (uint16_t)(r->bytes[2 * i] | r->bytes[2 * i + 1] << 8);
    const float scale = row_get_f32(r->row), min_lp = row_get_f32(r->row + 2);
    if (!isfinite(scale) || scale < 0.0f || !isfinite(min_lp) || min_lp > 0.0f)
        return qp_error_set(err, QP_ERR_FORMAT, "%s: chunk %lld, position %lld: scale %g and "
                            "minimum log-prob %g are not a base row's (scale >= 0, log-prob <= 0)",
                            r->path, (long long)chunk, (long long)pos, (double)scale,
                            (double)min_lp);
    r->rows_done++;
    *row = r->row;
    return QP_OK;
}
