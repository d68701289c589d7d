/* serve.h — qrun --serve (docs/serving.md): an OpenAI-compatible HTTP server over libqrun's
 * sequences. Internal to qrun's server files:
 *   serve.c          the engine: the request queue, the slots, the thread that runs qrun_step, shutdown
 *   serve_http.c     HTTP (libmicrohttpd): routes, the API key, body limit, SSE streaming, timeouts
 *   serve_json.c     request bodies into struct serve_params, answers and stream chunks (jansson)
 *   serve_metrics.c  the Prometheus counters and histograms of GET /metrics
 *
 * A request's life: a connection thread (libmicrohttpd runs one per connection) reads and parses
 * the body, renders and tokenizes the prompt, and submits a struct serve_req; the engine thread
 * puts it into a slot when one is free (reusing the slot whose cache shares the longest prefix),
 * runs steps, and after each step copies every running request's new text (and logprobs) into it
 * and wakes its connection thread, which writes the answer or the next SSE events. A request is
 * shared by the two threads under the server's lock and freed by whichever lets go last.
 */
#pragma once
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qrun.h"

#define SERVE_MAX_STOP 16        /* stop strings per request (OpenAI allows 4) */
#define SERVE_MAX_TOP_LOGPROBS 20 /* OpenAI's bound on top_logprobs */
#define SERVE_MAX_BODY (1u << 20) /* request bodies above 1 MiB get 413 */

/* The command line's part of the server (qrun --serve ...). */
struct serve_config {
    const char *plan;
    struct qrun_options o;             /* -m, -c, -t, --device ... as for generation */
    struct qp_sampler_params sampling; /* defaults for what a request leaves out (--temp ...) */
    int64_t n_predict;                 /* -n: default max_tokens; -1 = until the context is full */
    const char *host;                  /* --host (default 127.0.0.1) */
    int port;                          /* --port (default 8080; 0 = any free port, printed) */
    int parallel;                      /* --parallel: slots to use; 0 = all the plan's */
    const char *api_key;               /* --api-key: NULL = no authentication */
    int queue;                         /* --queue: requests waiting for a slot at most */
    int timeout_s;                     /* --timeout: idle seconds before a connection is closed */
    int shutdown_s;                    /* --shutdown-timeout: SIGTERM's grace for running requests */
};

enum serve_kind { SERVE_CHAT, SERVE_COMPLETION };

/* A parsed request body (serve_json.c). */
struct serve_params {
    enum serve_kind kind;
    bool stream, include_usage;
    char *prompt;                      /* malloc'd text: the rendered chat or the completion's prompt */
    int32_t *prompt_ids;               /* malloc'd: a completion's prompt given as token ids; else NULL */
    size_t n_prompt_ids;
    struct qp_sampler_params sampling;
    int64_t max_tokens;                /* -1: not given */
    char *stop[SERVE_MAX_STOP];        /* malloc'd copies */
    int n_stop;
    bool logprobs;
    int top_logprobs;                  /* 0..SERVE_MAX_TOP_LOGPROBS */
    bool ignore_eos;                   /* llama-server's: generate max_tokens whatever the model says */
};
void serve_params_free(struct serve_params *p);

/* The logprob of one generated token and its most likely alternatives. */
struct serve_logprob {
    int32_t token;
    float logprob;
    int n_top;
    int32_t top_tok[SERVE_MAX_TOP_LOGPROBS];
    float top_lp[SERVE_MAX_TOP_LOGPROBS];
};

enum serve_req_state { SERVE_REQ_QUEUED, SERVE_REQ_RUNNING, SERVE_REQ_DONE };

struct serve_req {
    /* set before serve_submit, then read-only */
    struct serve_params p;
    int32_t *ids;                 /* [n_ids] the prompt's tokens */
    size_t n_ids;
    int64_t n_predict;            /* max_tokens capped by the context left after the prompt */
    bool capped;                  /* max_tokens (or no limit) went past the context: "length" */
    double t_arrive;              /* qrun_bench_now() when the request was complete */
    /* under the server's lock */
    enum serve_req_state state;
    bool cancel;                  /* the client went away: stop it at the next step */
    int refs;                     /* 2 while both the connection and the engine hold it */
    char *text;                   /* [text_len] generated text so far (valid UTF-8) */
    size_t text_len, text_cap;
    struct serve_logprob *lp;     /* [n_lp] with logprobs: one per generated token (allocated at admission) */
    size_t n_lp, lp_cap;
    int64_t n_gen;                /* tokens generated */
    int64_t n_reused;             /* prompt positions a slot's cache already held */
    const char *finish;           /* "stop" or "length" once DONE; NULL for a failure */
    int status;                   /* a failure's HTTP status (0: none) */
    char error[QP_ERROR_MSG_MAX];  /* a failure's message */
    double t_first, t_last;       /* when the first and the latest token came */
    int32_t slot;                 /* while RUNNING */
    pthread_cond_t cond;          /* signalled when output or the end arrives */
    struct serve_req *next;       /* the queue */
};

struct serve;

/* Runs the server until SIGTERM or SIGINT: listens, loads the plan, serves. Returns the exit
 * status (0 after a clean shutdown, 1 when the plan does not load or the port is taken); messages
 * go to stderr. */
int qrun_serve(const struct serve_config *c);

/* --- the engine (serve.c), for serve_http.c --- */

enum serve_state { SERVE_LOADING, SERVE_READY, SERVE_STOPPING };
enum serve_state serve_state(struct serve *sv);
const struct serve_config *serve_config(const struct serve *sv);
const char *serve_model_id(const struct serve *sv);     /* the GGUF's file name */
int64_t serve_n_ctx(const struct serve *sv);
struct qp_tokenizer *serve_tokenizer(const struct serve *sv);
const char *serve_chat_template(const struct serve *sv);
void serve_slots(struct serve *sv, int *busy, int *total, int *queued);

/* Tokenizes text (special tokens parsed, BOS where the model asks for one) into *ids (malloc'd),
 * serialised across connection threads (the tokenizer's word cache is not thread-safe). */
enum qp_status serve_tokenize(struct serve *sv, const char *text, int32_t **ids, size_t *n, struct qp_error *err);

/* Queues r (its p, ids, n_predict, t_arrive set; takes ownership): 0, or the HTTP status that
 * refuses it (503: the queue is full or the server is loading or stopping). */
int serve_submit(struct serve *sv, struct serve_req *r);
/* Waits up to ms milliseconds for r to have more than text_seen bytes of text or more than lp_seen
 * logprobs, or to end; returns with the lock held (serve_unlock). */
void serve_wait(struct serve *sv, struct serve_req *r, size_t text_seen, size_t lp_seen, int ms);
void serve_lock(struct serve *sv);
void serve_unlock(struct serve *sv);
/* The client went away: r stops within one step and its slot is free for the next. */
void serve_cancel(struct serve *sv, struct serve_req *r);
/* The connection is done with r (after serve_submit); r is freed when the engine is done too. */
void serve_release(struct serve *sv, struct serve_req *r);
/* Frees a request that was never submitted. */
void serve_req_free(struct serve_req *r);

/* --- HTTP (serve_http.c) --- */

struct serve_http;
/* Starts listening on c's host and port (the connection threads run from now on); *port_out gets
 * the port bound. NULL with a message in err when the address cannot be bound. */
struct serve_http *serve_http_start(struct serve *sv, const struct serve_config *c, int *port_out, char *err,
                                    size_t errsz);
void serve_http_quiesce(struct serve_http *h); /* stop accepting connections */
void serve_http_stop(struct serve_http *h);    /* close every connection and free */

/* --- JSON (serve_json.c): every string returned is malloc'd; NULL only when out of memory --- */

/* Parses a request body of the given kind into p (defaults: the server's sampling). Returns 0, or
 * 400 with msg (what is wrong) and param (the field, "" when none) filled; p is then freed. tmpl:
 * the model's chat template (chat requests). */
int serve_json_parse(enum serve_kind kind, const char *body, size_t len, const char *tmpl,
                     const struct qp_sampler_params *defaults, struct serve_params *p, char *msg, size_t msgsz,
                     char *param, size_t paramsz);
/* {"error": {"message", "type", "param", "code"}}; param may be NULL or "". */
char *serve_json_error(const char *message, const char *type, const char *param);
/* The whole answer of a finished request (under the server's lock). */
char *serve_json_answer(const struct serve_req *r, const struct qp_tokenizer *t, const char *id, long long created,
                        const char *model);
/* One SSE event's JSON: text[text_off..text_len) and logprobs [lp_off..n_lp) of r, the role on the
 * first chunk, finish (and usage) on the last (finish NULL: not the last). */
char *serve_json_chunk(const struct serve_req *r, const struct qp_tokenizer *t, const char *id, long long created,
                       const char *model, size_t text_off, size_t lp_off, bool first, const char *finish);
/* GET /v1/models. */
char *serve_json_models(const char *model, long long created);

/* --- metrics (serve_metrics.c): every call takes the metrics' own lock --- */

void serve_metrics_init(void);
void serve_metrics_request(int status);            /* one answer with this HTTP status */
void serve_metrics_tokens(int64_t prompt, int64_t reused, int64_t generated);
void serve_metrics_ttft(double seconds);
void serve_metrics_itl(double seconds);
/* The Prometheus text (malloc'd) with the given gauges. */
char *serve_metrics_render(int slots_busy, int slots_total, int queued);
