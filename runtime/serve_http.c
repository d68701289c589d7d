/* serve_http.c — the server's HTTP side (serve.h), through libmicrohttpd: one thread per
 * connection (a slow client holds only its own thread; --timeout closes an idle or trickling one),
 * the routes, the API key, the body limit, and each generation request's life on its connection:
 * parse (serve_json.c), tokenize, check against the context, submit to the engine (serve.c), then
 * either wait for the whole answer or stream it as server-sent events. While a request generates,
 * its connection is polled for a hang-up every 50 ms; a client that went away cancels its request.
 *
 * Routes: GET /health, GET /metrics, GET /v1/models, POST /v1/chat/completions,
 * POST /v1/completions (each also without /v1). With --api-key every route but /health needs
 * "Authorization: Bearer KEY".
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "qp_tokenizer.h"
#include "serve.h"

#define POLL_MS 50 /* how often a waiting connection checks for its client's hang-up */

struct serve_http {
    struct MHD_Daemon *d;
    struct serve *sv;
    const struct serve_config *c;
};

/* One request on a connection (MHD's con_cls): its body as it arrives. */
struct conn {
    char *body;
    size_t len, cap;
    bool answered;  /* a response was queued before the body was read (413) */
    bool too_large;
};

/* A streamed answer: the SSE bytes made but not yet sent, and how far r's output has been sent. */
struct stream {
    struct serve_http *h;
    struct serve_req *r;
    int fd;
    char *buf;
    size_t len, off, cap;
    size_t text_seen, lp_seen;
    bool first, ended;
    char id[48];
    long long created;
};

/* True when the client closed its side of the connection (or reset it). */
static bool hung_up(int fd) {
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static int conn_fd(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, char *text, const char *type) {
    serve_metrics_request((int)status);
    if (!text) {
        static char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}";
        struct MHD_Response *r = MHD_create_response_from_buffer(strlen(oom), oom, MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(r, "Content-Type", "application/json");
        enum MHD_Result ok = MHD_queue_response(c, 500, r);
        MHD_destroy_response(r);
        return ok;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    if (status == 503) MHD_add_response_header(r, "Retry-After", "1");
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *msg, const char *param) {
    const char *type = status == 401   ? "authentication_error"
                       : status == 404 ? "not_found_error"
                       : status == 503 ? "unavailable_error"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    return send_text(c, status, serve_json_error(msg, type, param), "application/json");
}

/* Constant-time comparison, so that the key cannot be guessed byte by byte from timings. */
static bool key_ok(const char *given, const char *key) {
    size_t gl = strlen(given), kl = strlen(key);
    unsigned char d = gl != kl;
    for (size_t i = 0; i < kl; i++) d |= (unsigned char)(key[i] ^ (i < gl ? given[i] : 0));
    return d == 0;
}

static bool authorized(struct MHD_Connection *c, const char *key) {
    if (!key) return true;
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    return a && strncmp(a, "Bearer ", 7) == 0 && key_ok(a + 7, key);
}

static void make_id(char *id, size_t n, enum serve_kind kind) {
    static unsigned long counter;
    unsigned long k = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
    snprintf(id, n, "%s-%lx%06lu", kind == SERVE_CHAT ? "chatcmpl" : "cmpl", (unsigned long)time(NULL), k);
}

static bool sse_put(struct stream *st, const char *a, const char *b) {
    size_t need = st->len + strlen(a) + (b ? strlen(b) : 0) + 1;
    if (need > st->cap) {
        size_t cap = st->cap ? st->cap : 1024;
        while (cap < need) cap *= 2;
        char *p = realloc(st->buf, cap);
        if (!p) return false;
        st->buf = p;
        st->cap = cap;
    }
    st->len += (size_t)sprintf(st->buf + st->len, "%s%s", a, b ? b : "");
    return true;
}

/* Appends "data: JSON\n\n" (json is freed). */
static bool sse_event(struct stream *st, char *json) {
    bool ok = json && sse_put(st, "data: ", json) && sse_put(st, "\n\n", NULL);
    free(json);
    return ok;
}

/* Makes the next SSE events of st's request from snap, a copy of it taken under the server's lock
 * (its text the new part only; its logprob entries are never changed once written, so they are
 * read in place): the JSON is made without the lock, so that the engine never waits for it. */
static bool stream_fill(struct stream *st, struct serve_req *snap) {
    struct serve *sv = st->h->sv;
    const struct qp_tokenizer *t = serve_tokenizer(sv);
    const char *model = serve_model_id(sv);
    bool more = snap->text_len > 0 || snap->n_lp > st->lp_seen;
    bool ok = true;
    if (snap->state == SERVE_REQ_DONE && snap->status) {
        ok = sse_event(st, serve_json_error(snap->error, snap->status >= 500 ? "server_error" : "invalid_request_error",
                                            NULL));
    } else if (snap->state == SERVE_REQ_DONE) {
        if (more) ok = sse_event(st, serve_json_chunk(snap, t, st->id, st->created, model, 0, st->lp_seen, st->first,
                                                      NULL));
        st->first = false;
        st->lp_seen = snap->n_lp;
        snap->text_len = 0;
        ok = ok && sse_event(st, serve_json_chunk(snap, t, st->id, st->created, model, 0, st->lp_seen, st->first,
                                                  snap->finish));
    } else if (more) {
        ok = sse_event(st, serve_json_chunk(snap, t, st->id, st->created, model, 0, st->lp_seen, st->first, NULL));
        st->first = false;
        st->lp_seen = snap->n_lp;
        return ok;
    } else {
        return true;
    }
    st->ended = true;
    return ok && sse_put(st, "data: [DONE]\n\n", NULL);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max) {
    (void)pos;
    struct stream *st = cls;
    struct serve *sv = st->h->sv;
    for (;;) {
        if (st->off < st->len) {
            size_t n = st->len - st->off < max ? st->len - st->off : max;
            memcpy(out, st->buf + st->off, n);
            st->off += n;
            if (st->off == st->len) st->off = st->len = 0;
            return (ssize_t)n;
        }
        if (st->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        if (hung_up(st->fd)) {
            serve_cancel(sv, st->r);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        serve_wait(sv, st->r, st->text_seen, st->lp_seen, POLL_MS);
        struct serve_req snap = *st->r;
        size_t n = st->r->text_len - st->text_seen;
        snap.text = n ? malloc(n) : NULL;
        if (snap.text) memcpy(snap.text, st->r->text + st->text_seen, n);
        snap.text_len = snap.text ? n : 0;
        st->text_seen += snap.text_len;
        serve_unlock(sv);
        bool ok = (n == 0 || snap.text) && stream_fill(st, &snap);
        free(snap.text);
        if (!ok) {
            serve_cancel(sv, st->r);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

static void stream_free(void *cls) {
    struct stream *st = cls;
    serve_release(st->h->sv, st->r);
    free(st->buf);
    free(st);
}

/* A generation request whose body is complete. */
static enum MHD_Result generate(struct serve_http *h, struct MHD_Connection *c, enum serve_kind kind,
                                struct conn *cn) {
    struct serve *sv = h->sv;
    enum serve_state state = serve_state(sv);
    if (state != SERVE_READY)
        return send_error(c, 503, state == SERVE_LOADING ? "the model is loading" : "the server is shutting down", NULL);
    struct serve_req *r = calloc(1, sizeof *r);
    if (!r) return send_error(c, 500, "out of memory", NULL);
    pthread_cond_init(&r->cond, NULL);
    char msg[512], param[64];
    if (serve_json_parse(kind, cn->body ? cn->body : "", cn->len, serve_chat_template(sv), &h->c->sampling, &r->p, msg,
                         sizeof msg, param, sizeof param)) {
        serve_req_free(r);
        return send_error(c, 400, msg, param);
    }
    const char *pfield = kind == SERVE_CHAT ? "messages" : "prompt";
    const int32_t nv = qp_tokenizer_n_vocab(serve_tokenizer(sv));
    struct qp_error e = {{0}};
    if (r->p.prompt_ids) {
        for (size_t i = 0; i < r->p.n_prompt_ids; i++)
            if (r->p.prompt_ids[i] >= nv) {
                snprintf(msg, sizeof msg, "prompt token %d at %zu is outside the vocabulary (%d tokens)",
                         r->p.prompt_ids[i], i, nv);
                serve_req_free(r);
                return send_error(c, 400, msg, pfield);
            }
        r->ids = r->p.prompt_ids;
        r->n_ids = r->p.n_prompt_ids;
        r->p.prompt_ids = NULL;
    } else {
        enum qp_status st = serve_tokenize(sv, r->p.prompt, &r->ids, &r->n_ids, &e);
        if (st != QP_OK) {
            serve_req_free(r);
            return send_error(c, st == QP_ERR_NOMEM ? 500 : 400, e.msg, pfield);
        }
    }
    const int64_t n_ctx = serve_n_ctx(sv);
    if (r->n_ids == 0) {
        serve_req_free(r);
        return send_error(c, 400, "the prompt is empty", pfield);
    }
    if ((int64_t)r->n_ids >= n_ctx) {
        snprintf(msg, sizeof msg,
                 "the prompt is %zu tokens; the context holds %lld positions (the prompt and at least one generated "
                 "token must fit)",
                 r->n_ids, (long long)n_ctx);
        serve_req_free(r);
        return send_error(c, 400, msg, pfield);
    }
    const int64_t room = n_ctx - (int64_t)r->n_ids;
    int64_t want = r->p.max_tokens >= 0 ? r->p.max_tokens : h->c->n_predict;
    r->capped = want < 0 || want > room;
    r->n_predict = r->capped ? room : want;
    r->t_arrive = qrun_bench_now();
    bool stream = r->p.stream;
    int fd = conn_fd(c);
    int refused = serve_submit(sv, r);
    if (refused) {
        serve_req_free(r);
        return send_error(c, (unsigned)refused,
                          serve_state(sv) == SERVE_READY ? "the server is busy: too many requests are queued; retry later"
                                                         : "the server is shutting down",
                          NULL);
    }
    /* the request is complete: from here on the connection lives as long as its generation, which
     * a hang-up cancels (the idle timeout comes back when the answer is sent) */
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0);
    if (stream) {
        struct stream *st = calloc(1, sizeof *st);
        if (!st) {
            serve_release(sv, r);
            return send_error(c, 500, "out of memory", NULL);
        }
        st->h = h;
        st->r = r;
        st->fd = fd;
        st->first = true;
        st->created = (long long)time(NULL);
        make_id(st->id, sizeof st->id, kind);
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, st,
                                                                      stream_free);
        if (!resp) {
            stream_free(st);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        MHD_add_response_header(resp, "X-Accel-Buffering", "no"); /* nginx: pass events on at once */
        serve_metrics_request(200);
        enum MHD_Result ok = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return ok;
    }
    for (;;) {
        serve_wait(sv, r, (size_t)-1, (size_t)-1, POLL_MS);
        bool done = r->state == SERVE_REQ_DONE;
        serve_unlock(sv);
        if (done) break;
        if (hung_up(fd)) {
            serve_release(sv, r);
            return MHD_NO;
        }
    }
    /* done: the engine lets go of r, so reading it needs no lock */
    enum MHD_Result ok;
    if (r->status) {
        ok = send_error(c, (unsigned)r->status, r->error, NULL);
    } else {
        char id[48];
        make_id(id, sizeof id, kind);
        ok = send_text(c, 200, serve_json_answer(r, serve_tokenizer(sv), id, (long long)time(NULL), serve_model_id(sv)),
                       "application/json");
    }
    serve_release(sv, r);
    return ok;
}

static enum MHD_Result route(struct serve_http *h, struct MHD_Connection *c, const char *url, const char *method,
                             struct conn *cn) {
    struct serve *sv = h->sv;
    if (strncmp(url, "/v1/", 4) == 0) url += 3;
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    if (strcmp(url, "/health") == 0) {
        if (!get) return send_error(c, 405, "use GET /health", NULL);
        enum serve_state s = serve_state(sv);
        if (s == SERVE_READY)
            return send_text(c, 200, strdup("{\"status\":\"ok\"}"), "application/json");
        return send_error(c, 503, s == SERVE_LOADING ? "the model is loading" : "the server is shutting down", NULL);
    }
    if (!authorized(c, h->c->api_key))
        return send_error(c, 401, "a valid API key is needed: Authorization: Bearer KEY (qrun --api-key)", NULL);
    if (strcmp(url, "/metrics") == 0) {
        if (!get) return send_error(c, 405, "use GET /metrics", NULL);
        int busy = 0, total = 0, queued = 0;
        if (serve_state(sv) != SERVE_LOADING) serve_slots(sv, &busy, &total, &queued);
        return send_text(c, 200, serve_metrics_render(busy, total, queued), "text/plain; version=0.0.4");
    }
    bool chat = strcmp(url, "/chat/completions") == 0, completion = strcmp(url, "/completions") == 0;
    if (strcmp(url, "/models") == 0) {
        if (!get) return send_error(c, 405, "use GET /v1/models", NULL);
        if (serve_state(sv) == SERVE_LOADING) return send_error(c, 503, "the model is loading", NULL);
        return send_text(c, 200, serve_json_models(serve_model_id(sv), (long long)time(NULL)), "application/json");
    }
    if (!chat && !completion) return send_error(c, 404, "no such endpoint", NULL);
    if (!post) return send_error(c, 405, chat ? "use POST /v1/chat/completions" : "use POST /v1/completions", NULL);
    if (cn->too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request body is over the limit of %u bytes", SERVE_MAX_BODY);
        return send_error(c, 413, msg, NULL);
    }
    return generate(h, c, chat ? SERVE_CHAT : SERVE_COMPLETION, cn);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    struct serve_http *h = cls;
    struct conn *cn = *con_cls;
    if (!cn) {
        if (!(cn = calloc(1, sizeof *cn))) return MHD_NO;
        *con_cls = cn;
        /* a declared body over the limit is refused before it is read */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > SERVE_MAX_BODY) {
            char msg[128];
            snprintf(msg, sizeof msg, "the request body is over the limit of %u bytes", SERVE_MAX_BODY);
            cn->answered = true;
            cn->too_large = true;
            return send_error(c, 413, msg, NULL);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!cn->too_large && cn->len + *upload_size > SERVE_MAX_BODY) {
            cn->too_large = true;
            free(cn->body);
            cn->body = NULL;
            cn->len = cn->cap = 0;
        }
        if (!cn->too_large) {
            if (cn->len + *upload_size + 1 > cn->cap) {
                size_t cap = cn->cap ? cn->cap : 4096;
                while (cap < cn->len + *upload_size + 1) cap *= 2;
                char *b = realloc(cn->body, cap);
                if (!b) return MHD_NO;
                cn->body = b;
                cn->cap = cap;
            }
            memcpy(cn->body + cn->len, upload, *upload_size);
            cn->len += *upload_size;
            cn->body[cn->len] = 0;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (cn->answered) return MHD_YES;
    return route(h, c, url, method, cn);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode why) {
    (void)why;
    struct serve_http *h = cls;
    struct conn *cn = *con_cls;
    if (cn) {
        free(cn->body);
        free(cn);
        *con_cls = NULL;
    }
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)h->c->timeout_s);
}

struct serve_http *serve_http_start(struct serve *sv, const struct serve_config *c, int *port_out, char *err,
                                    size_t errsz) {
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char port[16];
    snprintf(port, sizeof port, "%d", c->port);
    int gai = getaddrinfo(c->host, port, &hints, &ai);
    if (gai != 0) {
        snprintf(err, errsz, "--host %s: %s", c->host, gai_strerror(gai));
        return NULL;
    }
    struct serve_http *h = calloc(1, sizeof *h);
    if (!h) {
        freeaddrinfo(ai);
        snprintf(err, errsz, "out of memory");
        return NULL;
    }
    h->sv = sv;
    h->c = c;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    h->d = MHD_start_daemon(flags, (uint16_t)c->port, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)c->timeout_s, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)1024, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->d) {
        snprintf(err, errsz, "cannot listen on %s:%d: the port is in use, or the address is not this machine's",
                 c->host, c->port);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    *port_out = di ? di->port : c->port;
    return h;
}

void serve_http_quiesce(struct serve_http *h) {
    MHD_socket fd = MHD_quiesce_daemon(h->d);
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

void serve_http_stop(struct serve_http *h) {
    if (!h) return;
    MHD_stop_daemon(h->d);
    free(h);
}
