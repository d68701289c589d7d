/* pool.c — the CPU ops' persistent thread pool.
 *
 * Created once, on first use (pthread_once), with $QP_THREADS threads in all (default: the
 * online processor count; at most POOL_MAX): the caller plus that many minus one workers that
 * sleep on a condition variable between jobs. No thread is created or joined per call, and
 * the pool lives until the process exits. A job splits [0, n) into contiguous ranges; range 0
 * runs on the caller, range i on worker i-1. Jobs from several threads are serialised.
 * If a worker cannot be started the pool simply runs with fewer threads.
 */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "cpu_internal.h"
#include "qp_cpu.h"

#define POOL_MAX 64

static struct {
    pthread_once_t once;
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

static void pool_start(void) {
    long n = 0;
    const char *env = getenv("QP_THREADS");
    if (env && *env) n = strtol(env, NULL, 10);
    if (n <= 0) n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 0) n = 1;
    if (n > POOL_MAX) n = POOL_MAX;
    for (long i = 0; i < n - 1; i++) {
        pthread_t th;
        if (pthread_create(&th, NULL, worker_main, (void *)(intptr_t)pool.n_workers) != 0) break;
        pthread_detach(th);
        pool.n_workers++;
    }
    /* Wait until every worker has read the job counter, so none can miss the first job. */
    pthread_mutex_lock(&pool.mu);
    while (pool.started < pool.n_workers) pthread_cond_wait(&pool.done_cv, &pool.mu);
    pthread_mutex_unlock(&pool.mu);
}

int qp_cpu_thread_count(void) {
    pthread_once(&pool.once, pool_start);
    return pool.n_workers + 1;
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
