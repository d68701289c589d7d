/* test_kld_base.c — the KL-divergence base file (include/qp_kld.h, runtime/kld_base.c and
 * kld_stats.c), without a model:
 *   - the bytes of a small file against the format written out by hand (header, tokens, a row's
 *     two floats and its quantized log-probs: llama.cpp's encoding);
 *   - a round trip at odd and even vocabularies: every decoded log-prob within half a
 *     quantization step of the exact log-softmax, the KL divergence of a row against its own
 *     logits ~0 and against other logits equal to the exact KL divergence (to the quantization);
 *   - refusals, each with its message: no file, another format, a short header, impossible
 *     dimensions, a truncated file, trailing bytes, a token outside the vocabulary, a row whose
 *     floats are not a base row's, a read past the end; a writer that stops early leaves no file;
 *   - the statistics' median and percentiles on known values.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "qp_kld.h"

static char dir[256];

static const char *path_of(const char *name) {
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

/* logits[n] with values in about [-spread, spread] from a small LCG. */
static void fill(float *x, int32_t n, uint32_t seed, float spread) {
    uint32_t s = seed * 2654435761u + 1;
    for (int32_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = spread * ((float)(s >> 8) / 8388608.0f - 1.0f);
    }
}

static double exact_log_softmax(const float *x, int32_t n, int32_t i) {
    double mx = x[0], sum = 0.0;
    for (int32_t k = 1; k < n; k++) mx = x[k] > mx ? x[k] : mx;
    for (int32_t k = 0; k < n; k++) sum += exp(x[k] - mx);
    return x[i] - mx - log(sum);
}

static uint8_t *slurp(const char *p, size_t *n) {
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n ? *n : 1);
    if (b && fread(b, 1, *n, f) != *n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    return b;
}

static void spill(const char *p, const uint8_t *b, size_t n) {
    FILE *f = fopen(p, "wb");
    if (f) {
        fwrite(b, 1, n, f);
        fclose(f);
    }
}

static uint32_t le32(const uint8_t *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static float lef32(const uint8_t *b) {
    uint32_t u = le32(b);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* The format by hand: n_ctx 4 (positions 2 scored: one row per chunk), n_vocab 3, one chunk. */
static void check_bytes(void) {
    const char *p = path_of("tiny.kld");
    const int32_t toks[4] = {2, 0, 1, 2};
    const float lg[3] = {2.0f, 0.0f, -20.0f};
    struct qp_kld_writer *w = NULL;
    struct qp_error e = {{0}};
    CHECK(qp_kld_writer_open(p, 4, 3, 1, toks, &w, &e) == QP_OK, "%s", e.msg);
    if (!w) return;
    CHECK(qp_kld_writer_row(w, lg, &e) == QP_OK, "%s", e.msg);
    CHECK(qp_kld_writer_row(w, lg, &e) == QP_ERR_RANGE, "a second row of a 1-row file was taken");
    CHECK(qp_kld_writer_commit(w, &e) == QP_OK, "%s", e.msg);
    size_t n = 0;
    uint8_t *b = slurp(p, &n);
    /* 20 header + 16 tokens + one row of (3 rounded up to 4) + 4 uint16 = 16 bytes */
    CHECK(b && n == 20 + 16 + 16, "tiny file is %zu bytes, want 52", n);
    if (!b || n != 52) {
        free(b);
        return;
    }
    CHECK(memcmp(b, "_logits_", 8) == 0 && le32(b + 8) == 4 && le32(b + 12) == 3 && le32(b + 16) == 1,
          "header bytes");
    CHECK(le32(b + 20) == 2 && le32(b + 24) == 0 && le32(b + 28) == 1 && le32(b + 32) == 2, "token bytes");
    const uint8_t *r = b + 36;
    /* max 2, min clamped to 2 - 16 = -14: scale 16/65535, log-probs from -14 - 2 - lse */
    const float scale = lef32(r), min_lp = lef32(r + 4);
    const double lse = log(1.0 + exp(-2.0) + exp(-22.0));
    CHECK(scale == 16.0f / 65535.0f, "scale %.9g", (double)scale);
    CHECK(fabs(min_lp - (-16.0 - lse)) < 1e-5, "min log-prob %.7g, want %.7g", (double)min_lp, -16.0 - lse);
    const unsigned q0 = r[8] | r[9] << 8, q1 = r[10] | r[11] << 8, q2 = r[12] | r[13] << 8,
                   pad = r[14] | r[15] << 8;
    /* q1 = round(14 / scale) = round(57343.125); the -20 logit is below the window: 0 */
    CHECK(q0 == 65535 && q1 == 57343 && q2 == 0 && pad == 0, "q = %u %u %u pad %u", q0, q1, q2, pad);
    free(b);
    printf("bytes: header, tokens and one row as the format says\n");
}

static void round_trip(int32_t nv) {
    const int32_t n_ctx = 10, n_chunk = 3, rows = qp_kld_rows_per_chunk(n_ctx);
    CHECK(rows == 4, "rows per chunk of 10: %d", rows);
    const char *p = path_of("rt.kld");
    int32_t toks[30];
    for (int i = 0; i < 30; i++) toks[i] = (i * 37) % nv;
    float *lg = malloc((size_t)nv * sizeof(float)), *other = malloc((size_t)nv * sizeof(float));
    struct qp_kld_writer *w = NULL;
    struct qp_error e = {{0}};
    CHECK(qp_kld_writer_open(p, n_ctx, nv, n_chunk, toks, &w, &e) == QP_OK, "%s", e.msg);
    for (int k = 0; w && k < n_chunk * rows; k++) {
        fill(lg, nv, (uint32_t)k, k == 0 ? 0.0f : k % 2 ? 12.0f : 3.0f); /* row 0: all equal */
        CHECK(qp_kld_writer_row(w, lg, &e) == QP_OK, "%s", e.msg);
    }
    CHECK(w && qp_kld_writer_commit(w, &e) == QP_OK, "%s", e.msg);
    uint64_t want = 0;
    qp_kld_file_bytes(n_ctx, nv, n_chunk, &want);
    CHECK(access(p, R_OK) == 0, "no file after commit");

    struct qp_kld_reader *r = NULL;
    CHECK(qp_kld_reader_open(p, &r, &e) == QP_OK, "%s", e.msg);
    if (!r) goto done;
    const struct qp_kld_header *h = qp_kld_reader_header(r);
    CHECK(h->n_ctx == n_ctx && h->n_vocab == nv && h->n_chunk == n_chunk, "header read back");
    CHECK(memcmp(qp_kld_reader_tokens(r), toks, sizeof toks) == 0, "tokens read back");
    double worst = 0.0, worst_kld_self = 0.0, worst_kld_rel = 0.0;
    for (int k = 0; k < n_chunk * rows; k++) {
        const uint16_t *row;
        CHECK(qp_kld_reader_row(r, &row, &e) == QP_OK, "%s", e.msg);
        if (!row) break;
        fill(lg, nv, (uint32_t)k, k == 0 ? 0.0f : k % 2 ? 12.0f : 3.0f);
        float scale, min_lp;
        uint32_t u = (uint32_t)row[0] | (uint32_t)row[1] << 16;
        memcpy(&scale, &u, 4);
        u = (uint32_t)row[2] | (uint32_t)row[3] << 16;
        memcpy(&min_lp, &u, 4);
        float mx = lg[0];
        for (int32_t i = 1; i < nv; i++) mx = lg[i] > mx ? lg[i] : mx;
        for (int32_t i = 0; i < nv; i++) {
            double got = (double)scale * row[4 + i] + min_lp, ex = exact_log_softmax(lg, nv, i);
            if (lg[i] > mx - 16.0f) {
                double d = fabs(got - ex);
                if (d > worst) worst = d;
                CHECK(d <= 0.5 * scale + 1e-5, "row %d id %d: log-prob %.7g, exact %.7g", k, i, got, ex);
            } else {
                CHECK(row[4 + i] == 0, "row %d id %d below the window: q %u", k, i, row[4 + i]);
            }
        }
        /* against itself: only the quantization is left */
        struct qp_kld_token t;
        int32_t tok = toks[(k / rows) * n_ctx + n_ctx / 2 + k % rows + 1];
        qp_kld_compare_row(lg, nv, row, tok, &t);
        CHECK(t.same_top || k == 0, "row %d: argmax differs from its own base", k);
        if (lg[tok] > mx - 16.0f) /* below the window the base only knows "at most min_lp" */
            CHECK(fabs(t.nll - t.nll_base) <= scale + 1e-5, "row %d: nll %.7g vs base %.7g", k, t.nll, t.nll_base);
        else
            CHECK(t.nll_base == -(double)min_lp, "row %d: below the window, nll_base %.7g", k, t.nll_base);
        if (fabs(t.kld) > worst_kld_self) worst_kld_self = fabs(t.kld);
        /* against other logits: the exact KL(P || Q) over the window */
        fill(other, nv, (uint32_t)k + 100, 6.0f);
        qp_kld_compare_row(other, nv, row, tok, &t);
        double kl = 0.0;
        for (int32_t i = 0; i < nv; i++) {
            double lp = exact_log_softmax(lg, nv, i);
            if (lp > -16.0) kl += exp(lp) * (lp - exact_log_softmax(other, nv, i));
        }
        double rel = fabs(t.kld - kl) / (kl > 1e-3 ? kl : 1e-3);
        if (rel > worst_kld_rel) worst_kld_rel = rel;
        CHECK(rel < 2e-3, "row %d: KLD %.7g, exact %.7g", k, t.kld, kl);
    }
    const uint16_t *row;
    CHECK(qp_kld_reader_row(r, &row, &e) == QP_ERR_RANGE, "a row past the end was read");
    printf("round trip, n_vocab %d: %zu bytes; log-probs within %.3g; KLD vs itself <= %.3g, vs "
           "others within %.3g relative\n", nv, (size_t)want, worst, worst_kld_self, worst_kld_rel);
    CHECK(worst_kld_self < 1e-4, "KLD of a row against its own logits: %.3g", worst_kld_self);
    qp_kld_reader_close(r);
done:
    free(lg);
    free(other);
}

/* Opens p and expects the status and a message containing want. */
static void refuse(const char *what, const char *p, enum qp_status st, const char *want) {
    struct qp_kld_reader *r = NULL;
    struct qp_error e = {{0}};
    enum qp_status s = qp_kld_reader_open(p, &r, &e);
    CHECK(s == st && !r && strstr(e.msg, want), "%s: status %d, message '%s' (want '%s')", what, s,
          e.msg, want);
    if (s == st && strstr(e.msg, want)) printf("refused (%s): %s\n", what, e.msg);
    qp_kld_reader_close(r);
}

static void refusals(void) {
    const char *good = path_of("rt.kld"), *bad = path_of("bad.kld");
    size_t n = 0;
    uint8_t *b = slurp(good, &n);
    CHECK(b != NULL, "no round-trip file");
    if (!b) return;
    refuse("no file", path_of("absent.kld"), QP_ERR_IO, "cannot open");
    refuse("a folder", dir, QP_ERR_IO, "not a regular file");
    spill(bad, (const uint8_t *)"GGUF\3\0\0\0", 8);
    refuse("another format", bad, QP_ERR_FORMAT, "not a KL-divergence base file");
    spill(bad, b, 12);
    refuse("short header", bad, QP_ERR_FORMAT, "the header needs 20 bytes");
    uint8_t *c = malloc(n);
    memcpy(c, b, n);
    c[12] = c[13] = c[14] = c[15] = 0xff; /* n_vocab -1 */
    spill(bad, c, n);
    refuse("n_vocab -1", bad, QP_ERR_FORMAT, "impossible header");
    memcpy(c, b, n);
    spill(bad, c, n - 100);
    refuse("truncated", bad, QP_ERR_FORMAT, "truncated");
    spill(bad, c, 30);
    refuse("truncated in the tokens", bad, QP_ERR_FORMAT, "truncated");
    uint8_t *d = malloc(n + 8);
    memcpy(d, b, n);
    memset(d + n, 0, 8);
    spill(bad, d, n + 8);
    refuse("trailing bytes", bad, QP_ERR_FORMAT, "trailing bytes");
    free(d);
    memcpy(c, b, n);
    c[20 + 4 * 5 + 3] = 0x7f; /* token 5 becomes huge */
    spill(bad, c, n);
    refuse("token out of range", bad, QP_ERR_FORMAT, "outside the file's vocabulary");
    /* a row whose scale is NaN: the header is fine, the row is refused when read */
    memcpy(c, b, n);
    const size_t row0 = 20 + 4 * 30;
    c[row0 + 2] = 0xc0;
    c[row0 + 3] = 0x7f;
    spill(bad, c, n);
    struct qp_kld_reader *r = NULL;
    struct qp_error e = {{0}};
    CHECK(qp_kld_reader_open(bad, &r, &e) == QP_OK, "%s", e.msg);
    const uint16_t *row;
    if (r) {
        enum qp_status s = qp_kld_reader_row(r, &row, &e);
        CHECK(s == QP_ERR_FORMAT && strstr(e.msg, "not a base row's"), "NaN scale: %d '%s'", s, e.msg);
        if (s == QP_ERR_FORMAT) printf("refused (NaN scale): %s\n", e.msg);
    }
    qp_kld_reader_close(r);
    free(c);
    free(b);

    /* a writer given fewer rows than it promised leaves nothing behind */
    const char *p = path_of("short.kld");
    int32_t toks[8] = {0};
    float lg[5] = {1, 2, 3, 4, 5};
    struct qp_kld_writer *w = NULL;
    CHECK(qp_kld_writer_open(p, 8, 5, 1, toks, &w, &e) == QP_OK, "%s", e.msg);
    if (w) {
        qp_kld_writer_row(w, lg, &e);
        enum qp_status s = qp_kld_writer_commit(w, &e);
        CHECK(s == QP_ERR_INVALID && strstr(e.msg, "not saved"), "short commit: %d '%s'", s, e.msg);
    }
    CHECK(access(p, F_OK) != 0, "a short base file was left at %s", p);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls %s | grep -q tmp", dir);
    CHECK(system(cmd) != 0, "a temporary file was left in %s", dir);
    CHECK(qp_kld_writer_open(path_of("no/such/dir.kld"), 8, 5, 1, toks, &w, &e) == QP_ERR_IO,
          "a missing folder: %s", e.msg);
}

static void statistics(void) {
    struct qp_kld_stats s;
    struct qp_error e = {{0}};
    CHECK(qp_kld_stats_init(&s, 201, &e) == QP_OK, "%s", e.msg);
    for (int i = 0; i < 201; i++) {
        struct qp_kld_token t = {.nll = 1.0 + (i % 7) * 0.1, .nll_base = 1.0 + (i % 7) * 0.1,
                                 .kld = (200 - i) * 1e-3, .p_diff = (i - 100) * 1e-4,
                                 .same_top = i % 4 != 0};
        qp_kld_stats_add(&s, &t);
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    qp_kld_stats_print_final(&s, f);
    fclose(f);
    /* values 0, 0.001 .. 0.2: median 0.1, 90% at rank 180 = 0.18, 99.9% at 199.8 -> 0.1998 */
    CHECK(strstr(buf, "Median  KLD:   0.100000"), "median:\n%s", buf);
    CHECK(strstr(buf, "90.0%   KLD:   0.180000"), "90%%:\n%s", buf);
    CHECK(strstr(buf, "99.9%   KLD:   0.199800"), "99.9%%:\n%s", buf);
    CHECK(strstr(buf, "Maximum KLD:   0.200000") && strstr(buf, "Minimum KLD:   0.000000"), "extremes");
    CHECK(strstr(buf, "Mean PPL(Q)/PPL(base)         :   1.000000"), "ratio of equal PPLs:\n%s", buf);
    CHECK(strstr(buf, "Same top p: 74.627"), "same top 150/201:\n%s", buf);
    free(buf);
    qp_kld_stats_free(&s);
    printf("statistics: median, percentiles, ratio and same-top as llama-perplexity computes them\n");
}

int main(void) {
    snprintf(dir, sizeof dir, "%s/qp-kld.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) {
        printf("FAIL cannot create a temporary folder\n");
        return 1;
    }
    check_bytes();
    round_trip(301);
    round_trip(300);
    refusals();
    statistics();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", dir);
    printf("%s: %d failures\n", failures ? "FAIL" : "ok", failures);
    return failures ? 1 : 0;
}
