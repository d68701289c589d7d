/* detokenize.c — ids ▸ text that is always valid UTF-8, streamed one token at a time, and the
 * UTF-8 validator the tokenizer shares.
 *
 * Owns: the streaming decoder state machine (struct qp_detok), whole-sequence decoding, and
 * qp_utf8_validate. Does not own: what bytes a token stands for (tokenizer.c).
 *
 * Rules: bytes of a token are run through a UTF-8 decoder that keeps at most 3 bytes of an
 * unfinished character (the longest valid prefix) until the next token completes it. A byte
 * that cannot continue the held prefix ends it: the held prefix (a "maximal subpart", Unicode
 * §3.9) becomes one U+FFFD and the byte is decoded afresh; a byte that can start nothing
 * (0x80..0xC1, 0xF5..0xFF) becomes one U+FFFD. This is exactly Python's
 * bytes.decode("utf-8", "replace"), so streamed output equals one-shot output for any split.
 * Special tokens print their text (or nothing, with QP_DETOK_HIDE_SPECIAL for control and
 * unused tokens); a held prefix before one is ended (U+FFFD) first.
 */
#include <stdlib.h>
#include <string.h>

#include "qp_tokenizer.h"

static const char replacement[3] = {(char)0xEF, (char)0xBF, (char)0xBD}; /* U+FFFD */

/* Bytes that follow lead byte c: 0 for ASCII, -1 for a byte that cannot lead. */
static int utf8_need(unsigned char c) {
    if (c < 0x80) return 0;
    if (c >= 0xC2 && c <= 0xDF) return 1;
    if (c >= 0xE0 && c <= 0xEF) return 2;
    if (c >= 0xF0 && c <= 0xF4) return 3;
    return -1;
}

/* Whether b may be the byte at index k (1..3) of a sequence led by lead. The second byte's
 * range excludes overlongs (E0, F0), surrogates (ED) and values above U+10FFFF (F4). */
static bool utf8_cont_ok(unsigned char lead, int k, unsigned char b) {
    if (k == 1) {
        if (lead == 0xE0) return b >= 0xA0 && b <= 0xBF;
        if (lead == 0xED) return b >= 0x80 && b <= 0x9F;
        if (lead == 0xF0) return b >= 0x90 && b <= 0xBF;
        if (lead == 0xF4) return b >= 0x80 && b <= 0x8F;
    }
    return b >= 0x80 && b <= 0xBF;
}

bool qp_utf8_validate(const char *s, size_t n, size_t *bad_at) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        int need = utf8_need(p[i]);
        bool ok = need > 0 && (size_t)need < n - i;
        for (int k = 1; ok && k <= need; k++) ok = utf8_cont_ok(p[i], k, p[i + (size_t)k]);
        if (!ok) {
            if (bad_at) *bad_at = i;
            return false;
        }
        i += (size_t)need + 1;
    }
    return true;
}

struct qp_detok {
    const struct qp_tokenizer *tok;
    unsigned flags;
    unsigned char held[4]; /* a valid, unfinished prefix of one character */
    int n_held;
    int need; /* bytes the held character has in all after its lead */
    char *out; /* output of the last call */
    size_t out_len, out_cap;
};

enum qp_status qp_detok_new(const struct qp_tokenizer *t, unsigned flags, struct qp_detok **out,
                            struct qp_error *err) {
    *out = calloc(1, sizeof **out);
    if (!*out) return qp_error_set(err, QP_ERR_NOMEM, "detokenizer: out of memory");
    (*out)->tok = t;
    (*out)->flags = flags;
    return QP_OK;
}

void qp_detok_free(struct qp_detok *d) {
    if (!d) return;
    free(d->out);
    free(d);
}

static bool reserve(struct qp_detok *d, size_t extra) {
    if (d->out_len + extra <= d->out_cap) return true;
    size_t cap = d->out_cap ? d->out_cap : 64;
    while (cap < d->out_len + extra) cap *= 2;
    char *p = realloc(d->out, cap);
    if (!p) return false;
    d->out = p;
    d->out_cap = cap;
    return true;
}

/* Appends without checks: callers reserved 3 bytes per input byte plus 3 for the held part. */
static void emit(struct qp_detok *d, const void *p, size_t n) {
    memcpy(d->out + d->out_len, p, n);
    d->out_len += n;
}

static void end_held(struct qp_detok *d) {
    if (d->n_held) emit(d, replacement, 3);
    d->n_held = 0;
}

static void feed_byte(struct qp_detok *d, unsigned char b) {
    if (d->n_held) {
        if (utf8_cont_ok(d->held[0], d->n_held, b)) {
            d->held[d->n_held++] = b;
            if (d->n_held == d->need + 1) {
                emit(d, d->held, (size_t)d->n_held);
                d->n_held = 0;
            }
            return;
        }
        end_held(d); /* b starts afresh */
    }
    int need = utf8_need(b);
    if (need == 0) {
        emit(d, &b, 1);
    } else if (need < 0) {
        emit(d, replacement, 3);
    } else {
        d->held[0] = b;
        d->n_held = 1;
        d->need = need;
    }
}

enum qp_status qp_detok_push(struct qp_detok *d, int32_t id, const char **out, size_t *len,
                             struct qp_error *err) {
    d->out_len = 0;
    *out = d->out ? d->out : "";
    *len = 0;
    size_t n;
    const char *p = qp_tokenizer_token_bytes(d->tok, id, &n);
    if (!p) {
        return qp_error_set(err, QP_ERR_RANGE, "detokenizer: token id %d is outside [0, %d)", (int)id,
                            (int)qp_tokenizer_n_vocab(d->tok));
    }
    enum qp_token_type ty = qp_tokenizer_token_type(d->tok, id);
    bool special = ty == QP_TOKEN_CONTROL || ty == QP_TOKEN_USER_DEFINED || ty == QP_TOKEN_UNUSED ||
                   ty == QP_TOKEN_UNKNOWN;
    if (special && (d->flags & QP_DETOK_HIDE_SPECIAL) && ty != QP_TOKEN_USER_DEFINED) return QP_OK;
    if (n > (SIZE_MAX - 8) / 3 || !reserve(d, 3 * n + 8)) {
        return qp_error_set(err, QP_ERR_NOMEM, "detokenizer: out of memory");
    }
    if (special) { /* its text is a whole string, never part of a character */
        end_held(d);
        for (size_t i = 0; i < n; i++) feed_byte(d, (unsigned char)p[i]);
        end_held(d);
    } else {
        for (size_t i = 0; i < n; i++) feed_byte(d, (unsigned char)p[i]);
    }
    *out = d->out;
    *len = d->out_len;
    return QP_OK;
}

void qp_detok_flush(struct qp_detok *d, const char **out, size_t *len) {
    d->out_len = 0;
    if (d->n_held && reserve(d, 3)) end_held(d);
    d->n_held = 0;
    *out = d->out ? d->out : "";
    *len = d->out_len;
}

enum qp_status qp_tokenizer_decode(const struct qp_tokenizer *t, const int32_t *ids, size_t n,
                                   unsigned flags, char **out, size_t *len,
                                   struct qp_error *err) {
    *out = NULL;
    *len = 0;
    struct qp_detok *d;
    enum qp_status st = qp_detok_new(t, flags, &d, err);
    if (st) return st;
    size_t cap = 256, used = 0;
    char *buf = malloc(cap);
    for (size_t i = 0; buf && i <= n; i++) {
        const char *p;
        size_t k;
        if (i < n) {
            if ((st = qp_detok_push(d, ids[i], &p, &k, err))) {
                if (st == QP_ERR_RANGE) {
                    st = qp_error_set(err, QP_ERR_RANGE, "detokenize: id #%zu = %d is outside [0, %d)", i,
                                      (int)ids[i], (int)qp_tokenizer_n_vocab(t));
                }
                free(buf);
                qp_detok_free(d);
                return st;
            }
        } else {
            qp_detok_flush(d, &p, &k);
        }
        if (used + k + 1 > cap) {
            while (used + k + 1 > cap) cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) free(buf);
            buf = nb;
            if (!buf) break;
        }
        if (k) memcpy(buf + used, p, k);
        used += k;
    }
    qp_detok_free(d);
    if (!buf) return qp_error_set(err, QP_ERR_NOMEM, "detokenize: out of memory");
    buf[used] = '\0';
    *out = buf;
    *len = used;
    return QP_OK;
}
