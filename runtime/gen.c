/* gen.c — one sequence's generated tokens: stop rules, sampling, streamed text (gen.h). */
#define _POSIX_C_SOURCE 200809L
#include "gen.h"

#include <stdlib.h>
#include <string.h>

enum qp_status qp_gen_init(struct qp_gen *g, const struct qp_tokenizer *t, int32_t n_vocab,
                           const struct qp_sampler_params *sampling, int64_t n_predict, const char *const *stop,
                           int n_stop, struct qp_error *err) {
    memset(g, 0, sizeof *g);
    g->tok = t;
    g->n_predict = n_predict;
    enum qp_status s = qp_sampler_init(sampling, n_vocab, &g->smp, err);
    if (s == QP_OK) s = qp_detok_new(t, QP_DETOK_HIDE_SPECIAL, &g->dt, err);
    if (s != QP_OK) return s;
    if (n_stop < 0 || (n_stop > 0 && !stop)) return qp_error_set(err, QP_ERR_INVALID, "stop strings: %d given", n_stop);
    if (n_stop > 0) {
        g->stop = calloc((size_t)n_stop, sizeof *g->stop);
        if (!g->stop) return qp_error_set(err, QP_ERR_NOMEM, "out of memory");
        for (int i = 0; i < n_stop; i++) {
            if (!stop[i]) return qp_error_set(err, QP_ERR_INVALID, "stop string %d is NULL", i);
            g->stop[i] = strdup(stop[i]);
            if (!g->stop[i]) return qp_error_set(err, QP_ERR_NOMEM, "out of memory");
            g->n_stop = i + 1;
        }
    }
    return QP_OK;
}

void qp_gen_free(struct qp_gen *g) {
    qp_sampler_free(g->smp);
    qp_detok_free(g->dt);
    for (int i = 0; i < g->n_stop; i++) free(g->stop[i]);
    free(g->stop);
    free(g->hold);
    memset(g, 0, sizeof *g);
}

void qp_gen_prompt(struct qp_gen *g, int32_t token) { qp_sampler_accept(g->smp, token); }

int32_t qp_gen_sample(struct qp_gen *g, const float *logits) { return qp_sampler_sample(g->smp, logits); }

/* Drops what the last call released, then appends s[0..n). */
static bool hold_append(struct qp_gen *g, const char *s, size_t n) {
    if (g->out_len) memmove(g->hold, g->hold + g->out_len, g->hold_len - g->out_len);
    g->hold_len -= g->out_len;
    g->out_len = 0;
    if (g->hold_len + n + 1 > g->hold_cap) {
        size_t cap = (g->hold_len + n + 1) * 2;
        char *b = realloc(g->hold, cap);
        if (!b) return false;
        g->hold = b;
        g->hold_cap = cap;
    }
    if (n) memcpy(g->hold + g->hold_len, s, n);
    g->hold_len += n;
    return true;
}

/* The bytes of the held text that may be printed now; *found: a stop string starts there. */
static size_t hold_release(const struct qp_gen *g, bool *found) {
    *found = false;
    size_t best = g->hold_len;
    for (int i = 0; i < g->n_stop; i++) {
        size_t sl = strlen(g->stop[i]);
        if (!sl || sl > g->hold_len) continue;
        for (size_t p = 0; p + sl <= g->hold_len && p < best; p++)
            if (memcmp(g->hold + p, g->stop[i], sl) == 0) {
                best = p;
                *found = true;
                break;
            }
    }
    if (*found) return best;
    /* keep the longest suffix that is a proper prefix of a stop string */
    size_t keep = 0;
    for (int i = 0; i < g->n_stop; i++) {
        size_t sl = strlen(g->stop[i]);
        for (size_t k = sl > 0 ? sl - 1 : 0; k > keep; k--)
            if (k <= g->hold_len && memcmp(g->hold + g->hold_len - k, g->stop[i], k) == 0) {
                keep = k;
                break;
            }
    }
    return g->hold_len - keep;
}

enum qp_status qp_gen_take(struct qp_gen *g, int32_t tok, enum qrun_stop *stop, const char **text, size_t *len,
                           struct qp_error *err) {
    *stop = QRUN_STOP_NONE;
    *text = "";
    *len = 0;
    if (!g->ignore_eog && qp_tokenizer_is_eog(g->tok, tok)) {
        *stop = QRUN_STOP_EOG;
        return QP_OK;
    }
    qp_sampler_accept(g->smp, tok);
    g->n_gen++;
    const char *t;
    size_t tl;
    enum qp_status s = qp_detok_push(g->dt, tok, &t, &tl, err);
    if (s != QP_OK) return s;
    if (!hold_append(g, t, tl)) return qp_error_set(err, QP_ERR_NOMEM, "out of memory");
    bool found;
    g->out_len = hold_release(g, &found);
    *text = g->hold;
    *len = g->out_len;
    if (found) {
        g->hold_len = g->out_len; /* the stop string and what follows are never released */
        *stop = QRUN_STOP_STRING;
    } else if (g->n_predict >= 0 && g->n_gen >= g->n_predict) {
        *stop = QRUN_STOP_LENGTH;
    }
    return QP_OK;
}

void qp_gen_flush(struct qp_gen *g, const char **text, size_t *len) {
    const char *t;
    size_t tl;
    qp_detok_flush(g->dt, &t, &tl);
    *text = "";
    *len = 0;
    if (!hold_append(g, t, tl)) return; /* out of memory: the held bytes are lost, never garbled */
    g->out_len = g->hold_len;
    *text = g->hold;
    *len = g->hold_len;
}
