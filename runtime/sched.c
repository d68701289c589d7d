/* sched.c — many sequences at once (include/qrun.h, "Sequences"): each open sequence owns one of
 * the plan's slots; qrun_step runs one prefill chunk of a waiting prompt (they take turns), then
 * one batched decode step of every generating sequence, and hands each picked token to its
 * sequence's stop rules and text stream (gen.h).
 *
 * Invariants: a sequence's pos <= q->n_ctx, and nothing is run that would write a position
 * >= n_ctx; pending is the token picked last and not yet in the cache (-1: none); a sequence in
 * DECODE always has one. Per step nothing is allocated but unread output growing.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "gen.h"
#include "qrun.h"
#include "qrun_internal.h"

struct qrun_seq {
    struct qrun *q;
    int32_t slot;
    enum qrun_seq_state state;
    enum qrun_stop stop;
    int64_t pos;               /* positions of the slot in use */
    int32_t pending;           /* picked, not yet in the cache; -1 none */
    uint64_t ticket;           /* when its prompt was queued or last got a chunk: the lowest goes next */
    bool started;              /* a prompt was appended once (BOS goes on the first only) */
    int32_t *hist;             /* [n_ctx] the token at each position of the slot's cache in use,
                                  [0, pos): what qrun_seq_restart compares a new prompt with */
    struct qrun_seq_options opt;
    const char **stop_copy;    /* the options' stop strings, for a new turn's qp_gen */
    struct qp_gen gen;
    bool device_greedy;
    int32_t *queue;            /* prompt tokens waiting to run: queue[q_off .. q_len) */
    size_t q_off, q_len, q_cap;
    int32_t *out_tok;          /* output since the last read */
    size_t out_n, out_cap;
    char *out_text;
    size_t out_len, out_text_cap;
    float *logits;             /* keep_logits: [n_vocab] */
    bool has_logits;
};

struct qrun_seq_options qrun_seq_options_default(void) {
    struct qrun_seq_options o = {0};
    o.sampling = qp_sampler_defaults();
    o.n_predict = -1;
    o.greedy_on_device = true;
    return o;
}

enum qp_status qrun_sched_init(struct qrun *q, int32_t step_tokens, struct qp_error *err) {
    const int64_t chunk = q->plan->limits.max_chunk;
    if (step_tokens < 0 || step_tokens > chunk)
        return qp_error_set(err, QP_ERR_RANGE, "step tokens %d: the plan runs chunks of 1..%lld tokens", step_tokens,
                            (long long)chunk);
    q->step_tokens = step_tokens ? step_tokens : (int32_t)chunk;
    q->n_slots = (int32_t)q->plan->kv.slots;
    q->slot_seq = calloc((size_t)q->n_slots, sizeof *q->slot_seq);
    q->rows = calloc((size_t)q->n_slots, sizeof *q->rows);
    q->row_seq = calloc((size_t)q->n_slots, sizeof *q->row_seq);
    q->row_tok = calloc((size_t)q->n_slots, sizeof *q->row_tok);
    q->was_decoding = calloc((size_t)q->n_slots, sizeof *q->was_decoding);
    if (!q->slot_seq || !q->rows || !q->row_seq || !q->row_tok || !q->was_decoding) return qp_error_set(err, QP_ERR_NOMEM, "out of memory");
    return QP_OK;
}

void qrun_sched_free(struct qrun *q) {
    for (int32_t i = 0; q->slot_seq && i < q->n_slots; i++) qrun_seq_close(q->slot_seq[i]);
    free(q->slot_seq);
    free(q->rows);
    free(q->row_seq);
    free(q->row_tok);
    free(q->was_decoding);
}

int32_t qrun_slots(const struct qrun *q) { return q->n_slots; }

static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *n = realloc(*p, c * elem);
    if (!n) return false;
    *p = n;
    *cap = c;
    return true;
}

enum qp_status qrun_seq_open(struct qrun *q, const struct qrun_seq_options *o, struct qrun_seq **out,
                             struct qp_error *err) {
    *out = NULL;
    int32_t slot = -1;
    for (int32_t i = 0; i < q->n_slots && slot < 0; i++)
        if (!q->slot_seq[i]) slot = i;
    if (slot < 0)
        return qp_error_set(err, QP_ERR_RANGE,
                            "all %d slots are in use: close a sequence first, or compile the plan with more "
                            "(qplan compile --slots)",
                            q->n_slots);
    if (o->n_stop < 0 || (o->n_stop > 0 && !o->stop))
        return qp_error_set(err, QP_ERR_INVALID, "sequence: %d stop strings without a list", o->n_stop);
    struct qrun_seq *s = calloc(1, sizeof *s);
    if (!s) return qp_error_set(err, QP_ERR_NOMEM, "out of memory");
    s->q = q;
    s->slot = slot;
    s->pending = -1;
    s->opt = *o;
    const int32_t nv = (int32_t)q->plan->hparams.n_vocab;
    enum qp_status st = QP_OK;
    if (o->n_stop > 0) {
        s->stop_copy = calloc((size_t)o->n_stop, sizeof *s->stop_copy);
        if (!s->stop_copy) st = qp_error_set(err, QP_ERR_NOMEM, "out of memory");
        for (int i = 0; st == QP_OK && i < o->n_stop; i++) {
            s->stop_copy[i] = o->stop[i] ? strdup(o->stop[i]) : NULL;
            if (!s->stop_copy[i])
                st = o->stop[i] ? qp_error_set(err, QP_ERR_NOMEM, "out of memory")
                                : qp_error_set(err, QP_ERR_INVALID, "sequence: stop string %d is NULL", i);
        }
        s->opt.stop = s->stop_copy;
    }
    if (st == QP_OK)
        st = qp_gen_init(&s->gen, q->tok, nv, &o->sampling, o->n_predict, s->opt.stop, o->n_stop, err);
    s->gen.ignore_eog = o->ignore_eog;
    if (st == QP_OK && o->keep_logits && !(s->logits = malloc((size_t)nv * sizeof *s->logits)))
        st = qp_error_set(err, QP_ERR_NOMEM, "out of memory");
    if (st == QP_OK && !(s->hist = malloc((size_t)q->n_ctx * sizeof *s->hist)))
        st = qp_error_set(err, QP_ERR_NOMEM, "out of memory");
    if (st == QP_OK && (!grow((void **)&s->out_tok, &s->out_cap, 64, sizeof *s->out_tok) ||
                        !grow((void **)&s->out_text, &s->out_text_cap, 1024, 1)))
        st = qp_error_set(err, QP_ERR_NOMEM, "out of memory");
    if (st != QP_OK) {
        s->slot = -1; /* not yet in the table */
        qrun_seq_close(s);
        return st;
    }
    s->device_greedy = o->greedy_on_device && qp_sampler_params_greedy(&o->sampling) && qp_exec_has_argmax(q->exec);
    /* the single-sequence conversation lives in slot 0, which sequences now share */
    q->pos = 0;
    q->pending = -1;
    q->slot_seq[slot] = s;
    q->n_seqs++;
    *out = s;
    return QP_OK;
}

void qrun_seq_close(struct qrun_seq *s) {
    if (!s) return;
    if (s->slot >= 0) {
        s->q->slot_seq[s->slot] = NULL;
        s->q->n_seqs--;
    }
    qp_gen_free(&s->gen);
    for (int i = 0; s->stop_copy && i < s->opt.n_stop; i++) free((void *)s->stop_copy[i]);
    free(s->stop_copy);
    free(s->queue);
    free(s->hist);
    free(s->out_tok);
    free(s->out_text);
    free(s->logits);
    free(s);
}

enum qp_status qrun_seq_append(struct qrun_seq *s, const int32_t *ids, size_t n, struct qp_error *err) {
    struct qrun *q = s->q;
    if (s->state == QRUN_SEQ_DECODE)
        return qp_error_set(err, QP_ERR_INVALID, "sequence in slot %d is generating: append after it stops", s->slot);
    if (n == 0) return qp_error_set(err, QP_ERR_INVALID, "sequence in slot %d: an empty prompt", s->slot);
    const int32_t nv = (int32_t)q->plan->hparams.n_vocab;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= nv)
            return qp_error_set(err, QP_ERR_RANGE, "prompt token %d at %zu is outside the vocabulary (%d)", ids[i], i,
                                nv);
    const bool new_turn = s->state != QRUN_SEQ_PREFILL;
    const size_t carry = new_turn && s->pending >= 0 ? 1 : 0; /* a stopped turn's last token, not yet in the cache */
    const size_t waiting = s->q_len - s->q_off;
    if ((int64_t)(waiting + carry + n) > q->n_ctx - s->pos)
        return qp_error_set(err, QP_ERR_RANGE,
                            "the prompt (%zu tokens) does not fit sequence %d's context: %lld positions, %lld used%s",
                            n + carry, s->slot, (long long)q->n_ctx, (long long)(s->pos + (int64_t)waiting),
                            s->pos + (int64_t)waiting > 0 ? "" : "; compile the plan with a larger --ctx");
    /* compact the queue, then append */
    if (waiting) memmove(s->queue, s->queue + s->q_off, waiting * sizeof *s->queue);
    s->q_len = waiting;
    s->q_off = 0;
    if (!grow((void **)&s->queue, &s->q_cap, waiting + carry + n, sizeof *s->queue))
        return qp_error_set(err, QP_ERR_NOMEM, "out of memory");
    if (new_turn) {
        if (s->state == QRUN_SEQ_DONE) { /* a new turn: fresh stop rules and count, same conversation */
            qp_gen_free(&s->gen);
            enum qp_status st = qp_gen_init(&s->gen, q->tok, nv, &s->opt.sampling, s->opt.n_predict, s->opt.stop,
                                            s->opt.n_stop, err);
            if (st != QP_OK) return st;
            s->gen.ignore_eog = s->opt.ignore_eog;
        }
        if (carry) s->queue[s->q_len++] = s->pending;
        s->pending = -1;
        s->stop = QRUN_STOP_NONE;
        s->state = QRUN_SEQ_PREFILL;
        s->ticket = q->next_ticket++;
    }
    memcpy(s->queue + s->q_len, ids, n * sizeof *ids);
    s->q_len += n;
    for (size_t i = 0; i < n; i++) qp_gen_prompt(&s->gen, ids[i]);
    s->started = true;
    return QP_OK;
}

enum qp_status qrun_seq_append_text(struct qrun_seq *s, const char *text, bool parse_special, struct qp_error *err) {
    struct qp_tokenizer *t = s->q->tok;
    int32_t *ids = NULL;
    size_t n = 0;
    enum qp_status st = qp_tokenizer_encode(t, text, strlen(text), parse_special, &ids, &n, err);
    if (st != QP_OK) return st;
    if (!s->started && qp_tokenizer_add_bos(t) && qp_tokenizer_bos(t) >= 0) {
        int32_t *b = malloc((n + 1) * sizeof *b);
        if (!b) {
            free(ids);
            return qp_error_set(err, QP_ERR_NOMEM, "out of memory");
        }
        b[0] = qp_tokenizer_bos(t);
        if (n) memcpy(b + 1, ids, n * sizeof *b);
        free(ids);
        ids = b;
        n++;
    }
    st = qrun_seq_append(s, ids, n, err);
    free(ids);
    return st;
}

int64_t qrun_seq_common_prefix(const struct qrun_seq *s, const int32_t *ids, size_t n) {
    int64_t k = 0;
    while (k < s->pos && (size_t)k < n && s->hist[k] == ids[k]) k++;
    return k;
}

enum qp_status qrun_seq_restart(struct qrun_seq *s, const struct qrun_seq_options *o, const int32_t *ids, size_t n,
                                int64_t *reused, struct qp_error *err) {
    struct qrun *q = s->q;
    const int32_t nv = (int32_t)q->plan->hparams.n_vocab;
    if (s->state == QRUN_SEQ_PREFILL || s->state == QRUN_SEQ_DECODE)
        return qp_error_set(err, QP_ERR_INVALID, "sequence in slot %d is running: restart it after it stops", s->slot);
    if (n == 0) return qp_error_set(err, QP_ERR_INVALID, "sequence in slot %d: an empty prompt", s->slot);
    if ((int64_t)n > q->n_ctx)
        return qp_error_set(err, QP_ERR_RANGE, "the prompt (%zu tokens) does not fit sequence %d's context: %lld positions",
                            n, s->slot, (long long)q->n_ctx);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= nv)
            return qp_error_set(err, QP_ERR_RANGE, "prompt token %d at %zu is outside the vocabulary (%d)", ids[i], i,
                                nv);
    if (o->n_stop < 0 || (o->n_stop > 0 && !o->stop))
        return qp_error_set(err, QP_ERR_INVALID, "sequence: %d stop strings without a list", o->n_stop);
    /* everything that can fail first, into new state; s changes only once all of it succeeded */
    struct qp_gen gen;
    const char **stops = NULL;
    float *logits = s->logits;
    enum qp_status st = QP_OK;
    if (o->n_stop > 0 && !(stops = calloc((size_t)o->n_stop, sizeof *stops)))
        st = qp_error_set(err, QP_ERR_NOMEM, "out of memory");
    for (int i = 0; st == QP_OK && i < o->n_stop; i++)
        if (!o->stop[i]) st = qp_error_set(err, QP_ERR_INVALID, "sequence: stop string %d is NULL", i);
        else if (!(stops[i] = strdup(o->stop[i]))) st = qp_error_set(err, QP_ERR_NOMEM, "out of memory");
    if (st == QP_OK && o->keep_logits && !logits && !(logits = malloc((size_t)nv * sizeof *logits)))
        st = qp_error_set(err, QP_ERR_NOMEM, "out of memory");
    if (st == QP_OK) {
        st = qp_gen_init(&gen, q->tok, nv, &o->sampling, o->n_predict, stops, o->n_stop, err);
        if (st != QP_OK) qp_gen_free(&gen);
    }
    if (st == QP_OK && !grow((void **)&s->queue, &s->q_cap, n, sizeof *s->queue))
        st = qp_error_set(err, QP_ERR_NOMEM, "out of memory");
    if (st != QP_OK) {
        for (int i = 0; stops && i < o->n_stop; i++) free((void *)stops[i]);
        free(stops);
        if (logits != s->logits) free(logits);
        return st;
    }
    for (int i = 0; s->stop_copy && i < s->opt.n_stop; i++) free((void *)s->stop_copy[i]);
    free(s->stop_copy);
    qp_gen_free(&s->gen);
    s->gen = gen;
    s->gen.ignore_eog = o->ignore_eog;
    s->stop_copy = stops;
    s->opt = *o;
    s->opt.stop = stops;
    s->logits = logits;
    s->has_logits = false;
    s->device_greedy = o->greedy_on_device && qp_sampler_params_greedy(&o->sampling) && qp_exec_has_argmax(q->exec);
    /* keep the shared prefix, but run at least the prompt's last token: its logits pick the first token */
    int64_t keep = qrun_seq_common_prefix(s, ids, n);
    if (keep == (int64_t)n) keep--;
    for (int64_t i = 0; i < keep; i++) qp_gen_prompt(&s->gen, ids[i]);
    s->pos = keep;
    s->pending = -1;
    s->out_n = s->out_len = 0;
    s->q_off = 0;
    s->q_len = n - (size_t)keep;
    memcpy(s->queue, ids + keep, s->q_len * sizeof *s->queue);
    for (size_t i = (size_t)keep; i < n; i++) qp_gen_prompt(&s->gen, ids[i]);
    s->stop = QRUN_STOP_NONE;
    s->state = QRUN_SEQ_PREFILL;
    s->ticket = q->next_ticket++;
    s->started = true;
    if (reused) *reused = keep;
    return QP_OK;
}

/* Appends output; on a failed allocation the text is dropped, never cut mid-character. */
static void out_push(struct qrun_seq *s, int32_t tok, const char *text, size_t len) {
    if (tok >= 0 && grow((void **)&s->out_tok, &s->out_cap, s->out_n + 1, sizeof *s->out_tok))
        s->out_tok[s->out_n++] = tok;
    if (len && grow((void **)&s->out_text, &s->out_text_cap, s->out_len + len + 1, 1)) {
        memcpy(s->out_text + s->out_len, text, len);
        s->out_len += len;
        s->out_text[s->out_len] = 0;
    }
}

static void finish(struct qrun_seq *s, enum qrun_stop why) {
    if (why != QRUN_STOP_STRING && why != QRUN_STOP_CANCEL) {
        const char *t;
        size_t l;
        qp_gen_flush(&s->gen, &t, &l);
        out_push(s, -1, t, l);
    }
    s->state = QRUN_SEQ_DONE;
    s->stop = why;
}

/* The token the model picked for s (from logits lg when the sequence samples on the host). */
static enum qp_status take(struct qrun_seq *s, int32_t tok, struct qp_error *err) {
    enum qrun_stop why;
    const char *t;
    size_t l;
    enum qp_status st = qp_gen_take(&s->gen, tok, &why, &t, &l, err);
    if (st != QP_OK) return st;
    if (why == QRUN_STOP_EOG) {
        finish(s, why);
        return QP_OK;
    }
    s->pending = tok;
    out_push(s, tok, t, l);
    if (why != QRUN_STOP_NONE) finish(s, why);
    else if (s->pos >= s->q->n_ctx) finish(s, QRUN_STOP_CONTEXT);
    else s->state = QRUN_SEQ_DECODE;
    return QP_OK;
}

/* Picks s's token from the last run's output row `row`: the backend's argmax (dev_tok) or its
 * logits through s's sampler. */
static enum qp_status pick(struct qrun_seq *s, int32_t row, int32_t dev_tok, int32_t *tok, struct qp_error *err) {
    struct qp_exec *x = s->q->exec;
    if (s->device_greedy && !s->opt.keep_logits) {
        *tok = dev_tok;
        return QP_OK;
    }
    const float *lg;
    enum qp_status st = qp_exec_batch_logits(x, row, &lg, err);
    if (st != QP_OK) return st;
    if (s->opt.keep_logits) {
        memcpy(s->logits, lg, (size_t)s->q->plan->hparams.n_vocab * sizeof *lg);
        s->has_logits = true;
    }
    *tok = s->device_greedy ? dev_tok : qp_gen_sample(&s->gen, lg);
    return QP_OK;
}

/* One chunk of the waiting prompt whose turn it is: the one served least recently (round robin), so
 * that a short prompt arriving behind a long one waits one chunk per prompt ahead of it, not for
 * the whole long prompt. */
static enum qp_status prefill(struct qrun *q, int32_t *ran, struct qp_error *err) {
    struct qrun_seq *s = NULL;
    for (int32_t i = 0; i < q->n_slots; i++) {
        struct qrun_seq *c = q->slot_seq[i];
        if (c && c->state == QRUN_SEQ_PREFILL && (!s || c->ticket < s->ticket)) s = c;
    }
    *ran = 0;
    if (!s) return QP_OK;
    const size_t waiting = s->q_len - s->q_off;
    const int32_t m = (int32_t)(waiting < (size_t)q->step_tokens ? waiting : (size_t)q->step_tokens);
    enum qp_status st = qp_exec_forward_slot(q->exec, s->slot, s->queue + s->q_off, m, s->pos, err);
    if (st != QP_OK) return st;
    *ran = m;
    memcpy(s->hist + s->pos, s->queue + s->q_off, (size_t)m * sizeof *s->hist);
    s->pos += m;
    s->q_off += (size_t)m;
    s->ticket = q->next_ticket++; /* to the back of the line: prompts waiting together take turns */
    if (s->q_off < s->q_len) return QP_OK;
    s->q_off = s->q_len = 0;
    if (s->gen.n_predict == 0) {
        finish(s, QRUN_STOP_LENGTH);
        return QP_OK;
    }
    int32_t dev = -1, tok;
    if (s->device_greedy) st = qp_exec_argmax(q->exec, &dev, err);
    if (st == QP_OK) st = pick(s, 0, dev, &tok, err);
    if (st == QP_OK) st = take(s, tok, err);
    return st;
}

/* One token of every sequence that was generating when the step began. */
static enum qp_status decode(struct qrun *q, const bool *was_decoding, int32_t *ran, struct qp_error *err) {
    int32_t n = 0;
    bool any_device = false;
    for (int32_t i = 0; i < q->n_slots; i++) {
        struct qrun_seq *s = q->slot_seq[i];
        if (!s || !was_decoding[i] || s->state != QRUN_SEQ_DECODE) continue;
        q->rows[n] = (struct qp_step_row){s->pending, (int32_t)s->pos, s->slot, -1};
        q->row_seq[n++] = s;
        any_device = any_device || s->device_greedy;
    }
    *ran = n;
    if (n == 0) return QP_OK;
    enum qp_status st = qp_exec_forward_batch(q->exec, q->rows, n, err);
    if (st == QP_OK && any_device) st = qp_exec_batch_next(q->exec, q->row_tok, n, err);
    if (st != QP_OK) return st;
    for (int32_t t = 0; t < n && st == QP_OK; t++) {
        struct qrun_seq *s = q->row_seq[t];
        s->hist[s->pos++] = s->pending;
        s->pending = -1; /* in the cache now */
        int32_t tok;
        st = pick(s, t, s->device_greedy ? q->row_tok[t] : -1, &tok, err);
        if (st == QP_OK) st = take(s, tok, err);
    }
    return st;
}

enum qp_status qrun_step(struct qrun *q, struct qrun_step_info *info, struct qp_error *err) {
    struct qrun_step_info in = {0};
    /* who decodes this step is fixed before the prefill: a sequence whose prompt ends now
     * decodes from the next step on */
    bool *was_decoding = q->was_decoding;
    for (int32_t i = 0; i < q->n_slots; i++)
        was_decoding[i] = q->slot_seq[i] && q->slot_seq[i]->state == QRUN_SEQ_DECODE;
    enum qp_status st = prefill(q, &in.n_prefill, err);
    if (st == QP_OK) st = decode(q, was_decoding, &in.n_decode, err);
    for (int32_t i = 0; i < q->n_slots; i++) {
        const struct qrun_seq *s = q->slot_seq[i];
        if (s && (s->state == QRUN_SEQ_PREFILL || s->state == QRUN_SEQ_DECODE)) in.n_active++;
    }
    if (info) *info = in;
    return st;
}

void qrun_seq_read(struct qrun_seq *s, const int32_t **tokens, size_t *n, const char **text, size_t *len) {
    /* what was read last time is dropped first, so the pointers stay valid until the next call */
    *tokens = s->out_tok;
    *n = s->out_n;
    *text = s->out_len ? s->out_text : "";
    *len = s->out_len;
    s->out_n = 0;
    s->out_len = 0;
}

void qrun_seq_cancel(struct qrun_seq *s) {
    if (s->state == QRUN_SEQ_DONE) return;
    s->q_off = s->q_len = 0;
    finish(s, QRUN_STOP_CANCEL);
}

enum qrun_seq_state qrun_seq_state(const struct qrun_seq *s) { return s->state; }
enum qrun_stop qrun_seq_stop(const struct qrun_seq *s) { return s->state == QRUN_SEQ_DONE ? s->stop : QRUN_STOP_NONE; }
int32_t qrun_seq_slot(const struct qrun_seq *s) { return s->slot; }
int64_t qrun_seq_pos(const struct qrun_seq *s) { return s->pos; }
int64_t qrun_seq_n_gen(const struct qrun_seq *s) { return s->gen.n_gen; }
const float *qrun_seq_logits(const struct qrun_seq *s) { return s->has_logits ? s->logits : NULL; }
