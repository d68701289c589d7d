/* pool.c — the CPU ops' persistent thread pool.
 *
 * A job runs on `active` threads: the caller plus active - 1 workers that sleep on a condition
 * variable between jobs. The count is set by qp_cpu_set_threads (the CPU backend passes its
 * configuration: qrun -t) or, when nobody set it, on first use to the online processor count;
 * at most QP_CPU_MAX_THREADS. Workers are started when a count first needs them and never
 * stopped: a smaller count leaves the extra ones asleep. No thread is created or joined per
 * job, and the pool lives until the process exits. A job splits [0, n) into contiguous ranges;
 * range 0 runs on the caller, range i on worker i-1. Jobs from several threads are serialised.
 * If a worker cannot be started the pool simply runs with fewer threads.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#include "cpu_internal.h"
#include "qp_cpu.h"

static struct {
    pthread_once_t once;      /* the default count, when nobody set one before the first job */
    pthread_mutex_t setup;    /* guards active, configured and starting workers */
    int active;               /* threads a job uses, the caller included; <= n_workers + 1 */
    bool configured;          /* active has been set */
    pthread_mutex_t mu;       /* guards everything below */
    pthread_mutex_t dispatch; /* one job at a time */
    pthread_cond_t work_cv, done_cv;
    int n_workers;
    uint64_t gen;     /* job counter: workers wake when it changes */
    int n_ranges;     /* ranges of the current job (workers 0..n_ranges-2 take part) */
    int pending;      /* workers of the current job not done yet */
    int started;      /* workers that have entered their loop (pool_start waits for all) */
    qp_cpu_task_fn fn;
    void *ctx;
    int64_t n;
} pool = {.once = PTHREAD_ONCE_INIT,
          .setup = PTHREAD_MUTEX_INITIALIZER,
          .mu = PTHREAD_MUTEX_INITIALIZER,
          .dispatch = PTHREAD_MUTEX_INITIALIZER,
          .work_cv = PTHREAD_COND_INITIALIZER,
          .done_cv = PTHREAD_COND_INITIALIZER};

static void range_of(int64_t n, int parts, int i, int64_t *b, int64_t *e) {
    *b = n * i / parts;
    *e = n * (i + 1) / parts;
}

static void *worker_main(void *arg) {
    int id = (int)(intptr_t)arg;
    pthread_mutex_lock(&pool.mu);
    uint64_t seen = pool.gen;
    pool.started++;
    pthread_cond_signal(&pool.done_cv);
    for (;;) {
        while (pool.gen == seen) pthread_cond_wait(&pool.work_cv, &pool.mu);
        seen = pool.gen;
        /* A worker of this job cannot miss it: the job does not finish (and no later job is
         * posted) until it has run its range. */
        if (id + 1 < pool.n_ranges) {
            qp_cpu_task_fn fn = pool.fn;
            void *ctx = pool.ctx;
            int64_t b, e;
            range_of(pool.n, pool.n_ranges, id + 1, &b, &e);
            pthread_mutex_unlock(&pool.mu);
            fn(ctx, b, e);
            pthread_mutex_lock(&pool.mu);
            if (--pool.pending == 0) pthread_cond_signal(&pool.done_cv);
        }
    }
    return NULL;
}

/* Starts workers until there are n_workers (or one fails to start). Called with pool.setup
 * held. Returns once every new worker has read the job counter, so none can miss a job. */
static void start_workers(int n_workers) {
    int before = pool.n_workers;
    while (pool.n_workers < n_workers) {
        pthread_t th;
        if (pthread_create(&th, NULL, worker_main, (void *)(intptr_t)pool.n_workers) != 0) break;
        pthread_detach(th);
        pthread_mutex_lock(&pool.mu);
        pool.n_workers++;
        pthread_mutex_unlock(&pool.mu);
    }
    if (pool.n_workers == before) return;
    pthread_mutex_lock(&pool.mu);
    while (pool.started < pool.n_workers) pthread_cond_wait(&pool.done_cv, &pool.mu);
    pthread_mutex_unlock(&pool.mu);
}

int qp_cpu_set_threads(int n) {
    if (n <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (cores < QP_CPU_MAX_THREADS ? (int)cores : QP_CPU_MAX_THREADS) : 1;
    }
    if (n > QP_CPU_MAX_THREADS) n = QP_CPU_MAX_THREADS;
    pthread_mutex_lock(&pool.setup);
    start_workers(n - 1);
    pool.active = n <= pool.n_workers + 1 ? n : pool.n_workers + 1;
    pool.configured = true;
    n = pool.active;
    pthread_mutex_unlock(&pool.setup);
    return n;
}

static void set_default_threads(void) {
    pthread_mutex_lock(&pool.setup);
    bool configured = pool.configured;
    pthread_mutex_unlock(&pool.setup);
    if (!configured) qp_cpu_set_threads(0);
}

int qp_cpu_thread_count(void) {
    pthread_once(&pool.once, set_default_threads);
    pthread_mutex_lock(&pool.setup);
    int n = pool.active;
    pthread_mutex_unlock(&pool.setup);
    return n;
}

void qp_cpu_parallel_for(int64_t n, int64_t min_items, qp_cpu_task_fn fn, void *ctx) {
    if (n <= 0) return;
    if (min_items < 1) min_items = 1;
    int threads = qp_cpu_thread_count();
    int64_t parts = n / min_items;
    if (parts > threads) parts = threads;
    if (parts <= 1) {
        fn(ctx, 0, n);
        return;
    }
    pthread_mutex_lock(&pool.dispatch);
    pthread_mutex_lock(&pool.mu);
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    pool.n_ranges = (int)parts;
    pool.pending = (int)parts - 1;
    pool.gen++;
    pthread_cond_broadcast(&pool.work_cv);
    pthread_mutex_unlock(&pool.mu);

    int64_t b, e;
    range_of(n, (int)parts, 0, &b, &e);
    fn(ctx, b, e);

    pthread_mutex_lock(&pool.mu);
    while (pool.pending > 0) pthread_cond_wait(&pool.done_cv, &pool.mu);
    pthread_mutex_unlock(&pool.mu);
    pthread_mutex_unlock(&pool.dispatch);
}
