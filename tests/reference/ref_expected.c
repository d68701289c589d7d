/* ref_expected.c — the expected-logits files written by scripts/numpy_forward.py, and the
 * comparison of computed logits against them (used by the reference tests and by qpref).
 *
 * Format: one record a line, '#' comment lines. "model NAME", "bytes N", "fnv1a64 HEX",
 * "meta TEXT", "tokens N id...", "vocab V", "top1 POS ID", "L POS ID LOGIT". Every number is
 * checked: a
 * position outside [0, N), an id outside [0, V) or a malformed line is an error naming the
 * file and line.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qwen2_ref.h"

void qp_ref_expected_free(struct qp_ref_expected *e) {
    if (!e) return;
    free(e->tokens);
    free(e->top1);
    free(e->pos);
    free(e->id);
    free(e->logit);
    memset(e, 0, sizeof(*e));
}

static int push_entry(struct qp_ref_expected *e, int64_t *cap, int32_t p, int32_t id, double v) {
    if (e->n_entries == *cap) {
        int64_t nc = *cap ? *cap * 2 : 4096;
        int32_t *np = realloc(e->pos, (size_t)nc * sizeof(int32_t));
        if (!np) return 0;
        e->pos = np;
        int32_t *ni = realloc(e->id, (size_t)nc * sizeof(int32_t));
        if (!ni) return 0;
        e->id = ni;
        double *nv = realloc(e->logit, (size_t)nc * sizeof(double));
        if (!nv) return 0;
        e->logit = nv;
        *cap = nc;
    }
    e->pos[e->n_entries] = p;
    e->id[e->n_entries] = id;
    e->logit[e->n_entries] = v;
    e->n_entries++;
    return 1;
}

/* Parses a decimal integer in [lo, hi] at *s, advancing it. */
static int parse_int(char **s, long long lo, long long hi, int32_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(*s, &end, 10);
    if (end == *s || errno || v < lo || v > hi) return 0;
    *s = end;
    *out = (int32_t)v;
    return 1;
}

enum qp_status qp_ref_expected_read(const char *path, struct qp_ref_expected *e,
                                    struct qp_error *err) {
    memset(e, 0, sizeof(*e));
    FILE *f = fopen(path, "r");
    if (!f) return qp_error_set(err, QP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char line[8192];
    int64_t lineno = 0, cap = 0;
    enum qp_status s = QP_OK;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t n = strlen(line);
        if (n && line[n - 1] == '\n') line[--n] = 0;
        else if (!feof(f)) {
            s = qp_error_set(err, QP_ERR_FORMAT, "%s:%lld: line too long", path, (long long)lineno);
            break;
        }
        char *p = line;
        int ok = 1;
        if (!*p || *p == '#') continue;
        if (!strncmp(p, "L ", 2)) {
            int32_t pos, id;
            p += 2;
            ok = e->tokens && parse_int(&p, 0, e->n_tok - 1, &pos) &&
                 parse_int(&p, 0, (long long)e->n_vocab - 1, &id);
            if (ok) {
                char *end;
                double v = strtod(p, &end);
                ok = end != p && isfinite(v);
                if (ok && !push_entry(e, &cap, pos, id, v)) {
                    s = qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", path);
                    break;
                }
            }
        } else if (!strncmp(p, "top1 ", 5)) {
            int32_t pos, id;
            p += 5;
            ok = e->top1 && parse_int(&p, 0, e->n_tok - 1, &pos) &&
                 parse_int(&p, 0, (long long)e->n_vocab - 1, &id);
            if (ok) e->top1[pos] = id;
        } else if (!strncmp(p, "tokens ", 7)) {
            p += 7;
            ok = !e->tokens && parse_int(&p, 1, 1 << 20, &e->n_tok);
            if (ok) {
                e->tokens = calloc((size_t)e->n_tok, sizeof(int32_t));
                e->top1 = calloc((size_t)e->n_tok, sizeof(int32_t));
                if (!e->tokens || !e->top1) {
                    s = qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", path);
                    break;
                }
                for (int32_t i = 0; i < e->n_tok && ok; i++)
                    ok = parse_int(&p, 0, INT32_MAX, &e->tokens[i]);
            }
        } else if (!strncmp(p, "vocab ", 6)) {
            p += 6;
            ok = parse_int(&p, 1, INT32_MAX, &e->n_vocab);
        } else if (!strncmp(p, "model ", 6)) {
            snprintf(e->model, sizeof e->model, "%.255s", p + 6);
        } else if (!strncmp(p, "meta ", 5)) {
            if (!e->meta[0]) snprintf(e->meta, sizeof e->meta, "%.1023s", p + 5);
        } else if (!strncmp(p, "bytes ", 6)) {
            char *end;
            errno = 0;
            e->file_bytes = strtoull(p + 6, &end, 10);
            ok = end != p + 6 && !*end && !errno;
        } else if (!strncmp(p, "fnv1a64 ", 8)) {
            char *end;
            errno = 0;
            e->fnv1a64 = strtoull(p + 8, &end, 16);
            ok = end != p + 8 && !errno;
            e->has_fnv = ok;
        } else {
            ok = 0;
        }
        if (!ok) {
            s = qp_error_set(err, QP_ERR_FORMAT, "%s:%lld: malformed or out-of-order record '%.60s'",
                             path, (long long)lineno, line);
            break;
        }
    }
    if (s == QP_OK && ferror(f)) s = qp_error_set(err, QP_ERR_IO, "%s: read error", path);
    fclose(f);
    if (s == QP_OK && (!e->tokens || !e->n_vocab || !e->n_entries))
        s = qp_error_set(err, QP_ERR_FORMAT, "%s: no tokens, vocab or logit records", path);
    if (s != QP_OK) qp_ref_expected_free(e);
    return s;
}

void qp_ref_compare(const struct qp_ref_expected *e, const float *logits,
                    struct qp_ref_compare *c) {
    memset(c, 0, sizeof(*c));
    for (int32_t p = 0; p < e->n_tok; p++) {
        double err_p = 0.0, ref_p = 0.0;
        int32_t id_p = -1;
        const float *row = logits + (size_t)p * (size_t)e->n_vocab;
        for (int64_t i = 0; i < e->n_entries; i++) {
            if (e->pos[i] != p) continue;
            const double d = fabs((double)row[e->id[i]] - e->logit[i]);
            if (!(d <= err_p)) { /* also catches NaN */
                err_p = isnan(d) ? INFINITY : d;
                id_p = e->id[i];
            }
            if (fabs(e->logit[i]) > ref_p) ref_p = fabs(e->logit[i]);
        }
        if (err_p > c->max_abs) c->max_abs = err_p;
        const double rel = ref_p > 0 ? err_p / ref_p : err_p;
        if (p == 0 || rel > c->max_rel) {
            c->max_rel = rel;
            c->worst_pos = p;
            c->worst_id = id_p;
        }
        int32_t best = 0;
        for (int32_t v = 1; v < e->n_vocab; v++)
            if (row[v] > row[best]) best = v;
        c->top1_agree += best == e->top1[p];
    }
}

enum qp_status qp_ref_file_fnv1a64(const char *path, uint64_t *out, struct qp_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return qp_error_set(err, QP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    uint64_t h = 0xCBF29CE484222325ull;
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        for (size_t i = 0; i < n; i++) h = (h ^ buf[i]) * 0x100000001B3ull;
    int bad = ferror(f);
    fclose(f);
    if (bad) return qp_error_set(err, QP_ERR_IO, "%s: read error", path);
    *out = h;
    return QP_OK;
}
