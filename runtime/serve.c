/* serve.c — the server's engine (serve.h): the bounded request queue, the slots, the one thread
 * that owns the struct qrun and runs its scheduler, and the process's lifecycle (listen, load,
 * serve, SIGTERM). HTTP and JSON live in serve_http.c and serve_json.c.
 *
 * The engine thread loops: under the lock it stops requests whose client went away, moves queued
 * requests into free slots (qrun_seq_restart keeps the prefix of a slot's cache that the prompt
 * shares, and the slot whose cache shares the longest is chosen), then runs one qrun_step without
 * the lock (one prefill chunk of a waiting prompt, one decode step of every generating request),
 * then under the lock copies each running request's new text and logprobs into it and wakes its
 * connection thread.
 *
 * Invariants: only the engine thread touches the struct qrun and its sequences; a request is in
 * the queue (QUEUED), in exactly one slot (RUNNING), or neither (DONE); each slot's sequence stays
 * open once made, so that its cache can serve the next turn of the conversation. Per step nothing
 * is allocated unless a request's text outgrows its buffer (doubling); the logprob entries are
 * allocated when a request gets its slot.
 */
#define _POSIX_C_SOURCE 200809L
#include "serve.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "qp_tokenizer.h"

struct serve_slot {
    struct qrun_seq *seq;  /* NULL until first used; then open for good */
    struct serve_req *req; /* running in it, NULL when free */
    uint64_t used;         /* when it last got a request: the least recent goes first */
};

struct serve {
    const struct serve_config *c;
    pthread_mutex_t lock;
    pthread_cond_t work;           /* the engine waits for requests on it */
    pthread_mutex_t tok_lock;      /* serialises tokenization */
    enum serve_state state;
    bool load_failed;
    double drain_deadline;         /* SIGTERM: running requests are cancelled after it */
    struct qrun *q;
    char model_id[256];
    int64_t n_ctx;
    int n_slots;
    struct serve_slot *slots;      /* [n_slots] */
    uint64_t n_used;
    struct serve_req *head, *tail; /* the queue, first come first served */
    int queued;
    float *lp_scratch;             /* [n_vocab] log-softmax of one row */
};

enum serve_state serve_state(struct serve *sv) {
    serve_lock(sv);
    enum serve_state s = sv->state;
    serve_unlock(sv);
    return s;
}
const struct serve_config *serve_config(const struct serve *sv) { return sv->c; }
const char *serve_model_id(const struct serve *sv) { return sv->model_id; }
int64_t serve_n_ctx(const struct serve *sv) { return sv->n_ctx; }
struct qp_tokenizer *serve_tokenizer(const struct serve *sv) { return qrun_tokenizer(sv->q); }
const char *serve_chat_template(const struct serve *sv) { return qrun_chat_template(sv->q); }
void serve_lock(struct serve *sv) { pthread_mutex_lock(&sv->lock); }
void serve_unlock(struct serve *sv) { pthread_mutex_unlock(&sv->lock); }

void serve_slots(struct serve *sv, int *busy, int *total, int *queued) {
    serve_lock(sv);
    *busy = 0;
    for (int i = 0; i < sv->n_slots; i++) *busy += sv->slots[i].req != NULL;
    *total = sv->n_slots;
    *queued = sv->queued;
    serve_unlock(sv);
}

enum qp_status serve_tokenize(struct serve *sv, const char *text, int32_t **ids, size_t *n, struct qp_error *err) {
    struct qp_tokenizer *t = qrun_tokenizer(sv->q);
    pthread_mutex_lock(&sv->tok_lock);
    enum qp_status s = qp_tokenizer_encode(t, text, strlen(text), true, ids, n, err);
    pthread_mutex_unlock(&sv->tok_lock);
    if (s != QP_OK || !qp_tokenizer_add_bos(t) || qp_tokenizer_bos(t) < 0) return s;
    int32_t *b = malloc((*n + 1) * sizeof *b);
    if (!b) {
        free(*ids);
        *ids = NULL;
        return qp_error_set(err, QP_ERR_NOMEM, "out of memory");
    }
    b[0] = qp_tokenizer_bos(t);
    if (*n) memcpy(b + 1, *ids, *n * sizeof *b);
    free(*ids);
    *ids = b;
    (*n)++;
    return QP_OK;
}

void serve_req_free(struct serve_req *r) {
    if (!r) return;
    serve_params_free(&r->p);
    free(r->ids);
    free(r->text);
    free(r->lp);
    pthread_cond_destroy(&r->cond);
    free(r);
}

static void unref(struct serve_req *r) {
    if (--r->refs == 0) serve_req_free(r);
}

int serve_submit(struct serve *sv, struct serve_req *r) {
    serve_lock(sv);
    int status = 0;
    if (sv->state != SERVE_READY) status = 503;
    else if (sv->queued >= sv->c->queue) status = 503;
    if (status) {
        serve_unlock(sv);
        return status;
    }
    r->state = SERVE_REQ_QUEUED;
    r->refs = 2;
    r->next = NULL;
    if (sv->tail) sv->tail->next = r;
    else sv->head = r;
    sv->tail = r;
    sv->queued++;
    pthread_cond_signal(&sv->work);
    serve_unlock(sv);
    return 0;
}

void serve_wait(struct serve *sv, struct serve_req *r, size_t text_seen, size_t lp_seen, int ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    serve_lock(sv);
    while (r->state != SERVE_REQ_DONE && r->text_len <= text_seen && r->n_lp <= lp_seen)
        if (pthread_cond_timedwait(&r->cond, &sv->lock, &ts) == ETIMEDOUT) break;
}

/* Marks r cancelled (under the lock) unless it is done; the engine frees its slot next step. */
static void cancel_locked(struct serve *sv, struct serve_req *r) {
    if (r->state != SERVE_REQ_DONE) {
        r->cancel = true;
        pthread_cond_signal(&sv->work);
    }
}

void serve_cancel(struct serve *sv, struct serve_req *r) {
    serve_lock(sv);
    cancel_locked(sv, r);
    serve_unlock(sv);
}

void serve_release(struct serve *sv, struct serve_req *r) {
    serve_lock(sv);
    cancel_locked(sv, r);
    unref(r);
    serve_unlock(sv);
}

/* Ends r (under the lock): finish reason, or a failure's status and message. */
static void req_done(struct serve *sv, struct serve_req *r, const char *finish, int status, const char *msg) {
    if (r->state == SERVE_REQ_RUNNING) sv->slots[r->slot].req = NULL;
    r->state = SERVE_REQ_DONE;
    r->finish = finish;
    r->status = status;
    if (msg) snprintf(r->error, sizeof r->error, "%s", msg);
    pthread_cond_broadcast(&r->cond);
    unref(r);
}

static bool text_push(struct serve_req *r, const char *t, size_t n) {
    if (r->text_len + n + 1 > r->text_cap) {
        size_t cap = r->text_cap ? r->text_cap : 256;
        while (cap < r->text_len + n + 1) cap *= 2;
        char *b = realloc(r->text, cap);
        if (!b) return false;
        r->text = b;
        r->text_cap = cap;
    }
    memcpy(r->text + r->text_len, t, n);
    r->text_len += n;
    r->text[r->text_len] = 0;
    return true;
}

/* The logprob of tok under logits lg [nv] and the top k alternatives, into e (lp: scratch [nv]). */
static void fill_logprob(struct serve_logprob *e, const float *lg, int32_t nv, int32_t tok, int k, float *lp) {
    float mx = -INFINITY;
    for (int32_t i = 0; i < nv; i++)
        if (lg[i] > mx) mx = lg[i];
    double sum = 0;
    for (int32_t i = 0; i < nv; i++) sum += exp((double)(lg[i] - mx));
    const float lse = mx + (float)log(sum);
    for (int32_t i = 0; i < nv; i++) lp[i] = lg[i] - lse;
    e->token = tok;
    e->logprob = lp[tok];
    e->n_top = 0;
    /* k <= 20: a partial selection by insertion is cheaper than a sort of the vocabulary */
    for (int32_t i = 0; i < nv && k > 0; i++) {
        int j = e->n_top;
        if (j == k && lp[i] <= e->top_lp[k - 1]) continue;
        if (j < k) e->n_top++;
        else j = k - 1;
        while (j > 0 && e->top_lp[j - 1] < lp[i]) {
            e->top_lp[j] = e->top_lp[j - 1];
            e->top_tok[j] = e->top_tok[j - 1];
            j--;
        }
        e->top_lp[j] = lp[i];
        e->top_tok[j] = i;
    }
}

/* The slot for the next request: the one whose cache shares the longest prefix with its prompt,
 * else a never-used one, else the least recently used; -1 when all are busy. */
static int pick_slot(struct serve *sv, const struct serve_req *r) {
    int best = -1;
    int64_t best_len = -1;
    for (int i = 0; i < sv->n_slots; i++) {
        const struct serve_slot *s = &sv->slots[i];
        if (s->req) continue;
        int64_t len = s->seq ? qrun_seq_common_prefix(s->seq, r->ids, r->n_ids) : 0;
        bool better = best < 0 || len > best_len ||
                      (len == best_len && (!s->seq || (sv->slots[best].seq && s->used < sv->slots[best].used)));
        if (better) {
            best = i;
            best_len = len;
        }
    }
    return best;
}

/* Moves queued requests into free slots (under the lock). */
static void admit(struct serve *sv) {
    while (sv->head) {
        struct serve_req *r = sv->head;
        int i = pick_slot(sv, r);
        if (i < 0) return;
        sv->head = r->next;
        if (!sv->head) sv->tail = NULL;
        sv->queued--;
        struct serve_slot *s = &sv->slots[i];
        struct qrun_seq_options o = qrun_seq_options_default();
        o.sampling = r->p.sampling;
        o.n_predict = r->n_predict;
        o.stop = (const char *const *)r->p.stop;
        o.n_stop = r->p.n_stop;
        o.keep_logits = r->p.logprobs;
        o.ignore_eog = r->p.ignore_eos;
        struct qp_error e = {{0}};
        enum qp_status st = QP_OK;
        if (r->p.logprobs && !(r->lp = calloc((size_t)r->n_predict + 1, sizeof *r->lp)))
            st = qp_error_set(&e, QP_ERR_NOMEM, "out of memory");
        r->lp_cap = (size_t)r->n_predict + 1;
        if (st == QP_OK && !s->seq) st = qrun_seq_open(sv->q, &o, &s->seq, &e);
        if (st == QP_OK) st = qrun_seq_restart(s->seq, &o, r->ids, r->n_ids, &r->n_reused, &e);
        if (st != QP_OK) {
            req_done(sv, r, NULL, st == QP_ERR_NOMEM ? 500 : 400, e.msg);
            continue;
        }
        r->state = SERVE_REQ_RUNNING;
        r->slot = i;
        s->req = r;
        s->used = ++sv->n_used;
        serve_metrics_tokens((int64_t)r->n_ids, r->n_reused, 0);
    }
}

/* Stops requests whose client went away (and, past the shutdown deadline, all), under the lock. */
static void reap(struct serve *sv, double now) {
    bool drain = sv->state == SERVE_STOPPING && now > sv->drain_deadline;
    for (struct serve_req **p = &sv->head; *p;) {
        struct serve_req *r = *p;
        if (r->cancel || sv->state == SERVE_STOPPING) {
            *p = r->next;
            sv->queued--;
            req_done(sv, r, NULL, 503, "the server is shutting down");
        } else {
            p = &r->next;
        }
    }
    sv->tail = NULL;
    for (struct serve_req *r = sv->head; r; r = r->next) sv->tail = r;
    for (int i = 0; i < sv->n_slots; i++) {
        struct serve_req *r = sv->slots[i].req;
        if (r && (r->cancel || drain)) {
            qrun_seq_cancel(sv->slots[i].seq);
            req_done(sv, r, "length", 0, NULL);
        }
    }
}

/* After a step (under the lock): each running request's new output, and its end. */
static void collect(struct serve *sv, double now) {
    const int32_t nv = qrun_n_vocab(sv->q);
    for (int i = 0; i < sv->n_slots; i++) {
        struct serve_req *r = sv->slots[i].req;
        if (!r) continue;
        struct qrun_seq *s = sv->slots[i].seq;
        const int32_t *toks;
        size_t n, len;
        const char *text;
        qrun_seq_read(s, &toks, &n, &text, &len);
        bool grew = len > 0 || n > 0;
        if (len && !text_push(r, text, len)) {
            qrun_seq_cancel(s);
            req_done(sv, r, NULL, 500, "out of memory");
            continue;
        }
        const float *lg = qrun_seq_logits(s);
        for (size_t k = 0; k < n && r->lp && lg && r->n_lp < r->lp_cap; k++)
            fill_logprob(&r->lp[r->n_lp++], lg, nv, toks[k], r->p.top_logprobs, sv->lp_scratch);
        if (n > 0) {
            if (r->n_gen == 0) serve_metrics_ttft(now - r->t_arrive);
            else serve_metrics_itl(now - r->t_last);
            if (r->n_gen == 0) r->t_first = now;
            r->t_last = now;
            serve_metrics_tokens(0, 0, (int64_t)n);
        }
        r->n_gen = qrun_seq_n_gen(s);
        if (qrun_seq_state(s) == QRUN_SEQ_DONE) {
            enum qrun_stop why = qrun_seq_stop(s);
            bool length = why == QRUN_STOP_LENGTH || why == QRUN_STOP_CONTEXT || why == QRUN_STOP_CANCEL;
            req_done(sv, r, length ? "length" : "stop", 0, NULL);
        } else if (grew) {
            pthread_cond_broadcast(&r->cond);
        }
    }
}

static bool running(const struct serve *sv) {
    for (int i = 0; i < sv->n_slots; i++)
        if (sv->slots[i].req) return true;
    return false;
}

static enum qp_status load(struct serve *sv, struct qp_error *err) {
    const struct serve_config *c = sv->c;
    struct qrun *q = NULL;
    enum qp_status st = qrun_open(c->plan, &c->o, &q, err);
    if (st != QP_OK) return st;
    int slots = qrun_slots(q);
    if (c->parallel > slots) {
        qrun_close(q);
        return qp_error_set(err, QP_ERR_RANGE,
                            "--parallel %d: the plan holds %d slot%s (compile it with qplan compile --slots %d)",
                            c->parallel, slots, slots == 1 ? "" : "s", c->parallel);
    }
    sv->n_slots = c->parallel > 0 ? c->parallel : slots;
    sv->slots = calloc((size_t)sv->n_slots, sizeof *sv->slots);
    sv->lp_scratch = malloc((size_t)qrun_n_vocab(q) * sizeof *sv->lp_scratch);
    if (!sv->slots || !sv->lp_scratch) {
        qrun_close(q);
        return qp_error_set(err, QP_ERR_NOMEM, "out of memory");
    }
    const char *mp = qrun_model_path(q), *base = strrchr(mp, '/');
    snprintf(sv->model_id, sizeof sv->model_id, "%s", base ? base + 1 : mp);
    sv->n_ctx = qrun_n_ctx(q);
    serve_lock(sv);
    sv->q = q; /* published under the lock: the main thread looks at it while stopping */
    serve_unlock(sv);
    return QP_OK;
}

static void *engine(void *arg) {
    struct serve *sv = arg;
    struct qp_error err = {{0}};
    if (load(sv, &err) != QP_OK) {
        fprintf(stderr, "qrun: %s\n", err.msg);
        serve_lock(sv);
        sv->load_failed = true;
        serve_unlock(sv);
        return NULL;
    }
    serve_lock(sv);
    if (sv->state == SERVE_LOADING) sv->state = SERVE_READY; /* not when SIGTERM came during the load */
    for (;;) {
        reap(sv, qrun_bench_now());
        if (sv->state != SERVE_STOPPING) admit(sv);
        if (!running(sv)) {
            if (sv->state == SERVE_STOPPING) break;
            if (!sv->head) pthread_cond_wait(&sv->work, &sv->lock);
            continue;
        }
        serve_unlock(sv);
        struct qrun_step_info info;
        enum qp_status st = qrun_step(sv->q, &info, &err);
        serve_lock(sv);
        if (st != QP_OK) {
            /* the sequences the step ran are undefined: end every running request and start them afresh */
            fprintf(stderr, "qrun: serve: a step failed: %s\n", err.msg);
            for (int i = 0; i < sv->n_slots; i++) {
                if (sv->slots[i].req) req_done(sv, sv->slots[i].req, NULL, 500, err.msg);
                qrun_seq_close(sv->slots[i].seq);
                sv->slots[i].seq = NULL;
            }
            continue;
        }
        collect(sv, qrun_bench_now());
    }
    serve_unlock(sv);
    return NULL;
}

/* SIGTERM and SIGINT are blocked in every thread and taken by the main thread with sigtimedwait. */
static sigset_t stop_signals(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    return set;
}

int qrun_serve(const struct serve_config *c) {
    struct serve sv = {0};
    sv.c = c;
    pthread_mutex_init(&sv.lock, NULL);
    pthread_mutex_init(&sv.tok_lock, NULL);
    pthread_cond_init(&sv.work, NULL);
    sv.state = SERVE_LOADING;
    serve_metrics_init();
    sigset_t set = stop_signals();
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN); /* a client that hangs up is an EPIPE, not the end of the server */
    char msg[512];
    int port = 0;
    struct serve_http *h = serve_http_start(&sv, c, &port, msg, sizeof msg);
    if (!h) {
        fprintf(stderr, "qrun: --serve: %s\n", msg);
        return 1;
    }
    fprintf(stderr, "qrun: listening on http://%s:%d (loading %s)\n", c->host, port, c->plan);
    pthread_t th;
    if (pthread_create(&th, NULL, engine, &sv) != 0) {
        fprintf(stderr, "qrun: --serve: cannot start the engine thread\n");
        serve_http_stop(h);
        return 1;
    }
    /* wait for a stop signal, or for the load to fail */
    int rc = 0;
    bool said_ready = false;
    for (;;) {
        struct timespec tick = {0, 100 * 1000000L};
        int sig = sigtimedwait(&set, NULL, &tick);
        serve_lock(&sv);
        bool failed = sv.load_failed, ready = sv.state == SERVE_READY;
        serve_unlock(&sv);
        if (failed) {
            rc = 1;
            break;
        }
        if (ready && !said_ready) {
            fprintf(stderr, "qrun: serving %s with %d slot%s, context %lld, on http://%s:%d\n", sv.model_id,
                    sv.n_slots, sv.n_slots == 1 ? "" : "s", (long long)sv.n_ctx, c->host, port);
            said_ready = true;
        }
        if (sig == SIGTERM || sig == SIGINT) {
            fprintf(stderr, "qrun: %s: no new connections; running requests get %d s to finish\n",
                    sig == SIGTERM ? "SIGTERM" : "SIGINT", c->shutdown_s);
            break;
        }
    }
    serve_http_quiesce(h);
    serve_lock(&sv);
    /* a stop while loading: the engine finishes loading, then finds nothing to do */
    sv.state = SERVE_STOPPING;
    sv.drain_deadline = qrun_bench_now() + c->shutdown_s;
    pthread_cond_signal(&sv.work);
    serve_unlock(&sv);
    /* the engine ends once no request runs; past the deadline it cancels them (reap) */
    for (;;) {
        serve_lock(&sv);
        bool busy = sv.q && (running(&sv) || sv.head);
        pthread_cond_signal(&sv.work);
        serve_unlock(&sv);
        if (!busy) break;
        struct timespec t = {0, 50 * 1000000L};
        nanosleep(&t, NULL);
    }
    pthread_join(th, NULL);
    serve_http_stop(h);
    for (int i = 0; i < sv.n_slots; i++) qrun_seq_close(sv.slots[i].seq);
    qrun_close(sv.q);
    free(sv.slots);
    free(sv.lp_scratch);
    if (rc == 0) fprintf(stderr, "qrun: stopped\n");
    return rc;
}
