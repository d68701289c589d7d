/* serve_metrics.c — what GET /metrics reports (serve.h), in Prometheus's text exposition format:
 * answers by HTTP status, prompt, reused and generated tokens, time-to-first-token and
 * inter-token latency histograms; the gauges (slots busy, queue depth) come from the engine at
 * render time. One process-wide set behind its own lock (a server is one per process).
 *
 * Histogram buckets are fixed: TTFT from 5 ms (a GPU's short prompt) to 30 s (a long prompt on the
 * CPU backend); inter-token latency from 1 ms to 2.5 s.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

static const double ttft_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
static const double itl_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
enum { N_TTFT = sizeof ttft_bounds / sizeof *ttft_bounds, N_ITL = sizeof itl_bounds / sizeof *itl_bounds };
static const int statuses[] = {200, 400, 401, 404, 405, 413, 500, 503};
enum { N_STATUS = sizeof statuses / sizeof *statuses };

struct hist {
    uint64_t count[16]; /* per bucket (not cumulative); the last is +Inf */
    uint64_t n;
    double sum;
};

static struct {
    pthread_mutex_t lock;
    uint64_t requests[N_STATUS + 1]; /* the last: any other status */
    uint64_t prompt, reused, generated;
    struct hist ttft, itl;
} m = {.lock = PTHREAD_MUTEX_INITIALIZER};

void serve_metrics_init(void) {
    pthread_mutex_lock(&m.lock);
    memset(m.requests, 0, sizeof m.requests);
    m.prompt = m.reused = m.generated = 0;
    memset(&m.ttft, 0, sizeof m.ttft);
    memset(&m.itl, 0, sizeof m.itl);
    pthread_mutex_unlock(&m.lock);
}

void serve_metrics_request(int status) {
    int i = 0;
    while (i < N_STATUS && statuses[i] != status) i++;
    pthread_mutex_lock(&m.lock);
    m.requests[i]++;
    pthread_mutex_unlock(&m.lock);
}

void serve_metrics_tokens(int64_t prompt, int64_t reused, int64_t generated) {
    pthread_mutex_lock(&m.lock);
    m.prompt += (uint64_t)prompt;
    m.reused += (uint64_t)reused;
    m.generated += (uint64_t)generated;
    pthread_mutex_unlock(&m.lock);
}

static void observe(struct hist *h, const double *bounds, int nb, double v) {
    int i = 0;
    while (i < nb && v > bounds[i]) i++;
    pthread_mutex_lock(&m.lock);
    h->count[i]++;
    h->n++;
    h->sum += v;
    pthread_mutex_unlock(&m.lock);
}

void serve_metrics_ttft(double s) { observe(&m.ttft, ttft_bounds, N_TTFT, s); }
void serve_metrics_itl(double s) { observe(&m.itl, itl_bounds, N_ITL, s); }

struct buf {
    char *p;
    size_t len, cap;
    bool failed;
};

static void put(struct buf *b, const char *fmt, ...) {
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

static void put_hist(struct buf *b, const char *name, const char *help, const struct hist *h, const double *bounds,
                     int nb) {
    put(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < nb; i++) {
        cum += h->count[i];
        put(b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long)cum);
    }
    put(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, (unsigned long long)h->n, name, h->sum,
        name, (unsigned long long)h->n);
}

char *serve_metrics_render(int slots_busy, int slots_total, int queued) {
    struct buf b = {malloc(4096), 0, 4096, false};
    if (!b.p) return NULL;
    pthread_mutex_lock(&m.lock);
    put(&b, "# HELP qrun_requests_total HTTP answers by status code.\n# TYPE qrun_requests_total counter\n");
    for (int i = 0; i < N_STATUS; i++)
        put(&b, "qrun_requests_total{code=\"%d\"} %llu\n", statuses[i], (unsigned long long)m.requests[i]);
    put(&b, "qrun_requests_total{code=\"other\"} %llu\n", (unsigned long long)m.requests[N_STATUS]);
    put(&b,
        "# HELP qrun_prompt_tokens_total Prompt tokens of the requests that got a slot.\n"
        "# TYPE qrun_prompt_tokens_total counter\nqrun_prompt_tokens_total %llu\n"
        "# HELP qrun_prompt_tokens_reused_total Prompt tokens a slot's cache already held (not run again).\n"
        "# TYPE qrun_prompt_tokens_reused_total counter\nqrun_prompt_tokens_reused_total %llu\n"
        "# HELP qrun_generated_tokens_total Tokens generated.\n"
        "# TYPE qrun_generated_tokens_total counter\nqrun_generated_tokens_total %llu\n",
        (unsigned long long)m.prompt, (unsigned long long)m.reused, (unsigned long long)m.generated);
    put_hist(&b, "qrun_time_to_first_token_seconds", "From a request's arrival to its first token.", &m.ttft,
             ttft_bounds, N_TTFT);
    put_hist(&b, "qrun_inter_token_latency_seconds", "Between consecutive tokens of a request.", &m.itl, itl_bounds,
             N_ITL);
    pthread_mutex_unlock(&m.lock);
    put(&b,
        "# HELP qrun_slots_busy Slots running a request.\n# TYPE qrun_slots_busy gauge\nqrun_slots_busy %d\n"
        "# HELP qrun_slots_total Slots served (--parallel).\n# TYPE qrun_slots_total gauge\nqrun_slots_total %d\n"
        "# HELP qrun_queue_depth Requests waiting for a slot.\n# TYPE qrun_queue_depth gauge\nqrun_queue_depth %d\n",
        slots_busy, slots_total, queued);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
