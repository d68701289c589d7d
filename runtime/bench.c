/* bench.c — `qrun PLAN --bench` (bench.h): loads a plan on a backend through the executor,
 * times prefill (ppN, TTFT) and greedy decode at several KV depths (tgN @ dD), and prints a
 * table in llama-bench's shape plus the device memory the process holds; optionally JSON.
 *
 * Owns only its own loading (plan, GGUF mapping, executor: the same steps as qrun_open) and
 * the token buffers, all allocated before timing: nothing is allocated inside a timed loop.
 * Times are host wall-clock (CLOCK_MONOTONIC) around work that ends in a device read (the
 * picked token), so they include every launch and the token's copy back, as a user sees them.
 */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "executor.h"
#include "qp_gguf.h"
#include "qp_plan.h"

#ifdef QP_HAVE_CUDA_BACKEND
#include <cuda_runtime_api.h>
#endif

struct qrun_bench_options qrun_bench_options_default(void) {
    struct qrun_bench_options o;
    memset(&o, 0, sizeof o);
    o.reps = 5;
    o.n_prompt = 512;
    o.n_gen = 128;
    o.n_depths = 3;
    o.depths[0] = 0;
    o.depths[1] = 4096;
    o.depths[2] = 16384;
    o.seed = 42;
    return o;
}

enum qp_status qrun_bench_parse_depths(const char *s, struct qrun_bench_options *o,
                                       struct qp_error *err) {
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX || (*end && *end != ','))
            return qp_error_set(err, QP_ERR_INVALID, "--bench-depths '%s': expected comma-separated integers >= 0", s);
        if (n == QRUN_BENCH_MAX_DEPTHS)
            return qp_error_set(err, QP_ERR_INVALID, "--bench-depths '%s': at most %d depths", s,
                                QRUN_BENCH_MAX_DEPTHS);
        o->depths[n++] = v;
        p = *end ? end + 1 : end;
    }
    if (n == 0) return qp_error_set(err, QP_ERR_INVALID, "--bench-depths '%s': no depth", s);
    o->n_depths = n;
    return QP_OK;
}

/* Seconds on the monotonic clock (bench.h). */
double qrun_bench_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t xorshift(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

#define MAX_REPS 100
#define MAX_TESTS (1 + QRUN_BENCH_MAX_DEPTHS)

struct test_result {
    char name[48];
    int n_prompt, n_gen;
    int64_t depth;
    bool skipped;
    char why[96];
    int reps;
    double ts[MAX_REPS]; /* tokens per second per repetition */
    double sec[MAX_REPS];
};

static void mean_sd(const double *v, int n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = n ? s / n : 0;
    for (int i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

struct memory {
    bool known;
    char device[256];
    double total, context, used, weights, arena, kv, other; /* MiB */
};

/* One benchmark run: what it loaded, the token ids, the results. */
struct bench {
    const char *plan_path;
    const struct qrun_options *o;
    const struct qrun_bench_options *bo;
    const struct qp_backend_vtbl *vt;
    struct qp_plan *p;
    struct qp_gguf *g;
    struct qp_exec *x;
    char *model;  /* the GGUF's path */
    double t_load;
    int32_t chunk;
    int32_t *ids; /* [n_ids] random, n_ids = max(n_prompt, deepest depth), capped at max_ctx */
    int64_t n_ids;
    bool argmax;  /* the backend picks the token */
    struct test_result *res; /* [MAX_TESTS] */
    int n_res;
    struct memory mem;
    size_t cuda_free0, cuda_total; /* device memory before loading (CUDA) */
    double params;       /* weight elements */
    char backend[64];    /* "cpu", "cuda graph", "cuda eager" */
    const char *mname;   /* the model's file name as the plan records it */
};

/* Prefills ids[0..n) at position 0.. in chunks; picks the next token (device or host argmax). */
static enum qp_status prefill(struct bench *B, const int32_t *ids, int64_t n, int32_t *next,
                              struct qp_error *err) {
    for (int64_t off = 0; off < n; off += B->chunk) {
        int32_t k = (int32_t)(n - off < B->chunk ? n - off : B->chunk);
        enum qp_status s = qp_exec_forward(B->x, ids + off, k, off, err);
        if (s != QP_OK) return s;
    }
    if (B->argmax) return qp_exec_argmax(B->x, next, err);
    const float *l;
    enum qp_status s = qp_exec_logits(B->x, &l, err);
    if (s != QP_OK) return s;
    int32_t best = 0;
    for (int32_t i = 1; i < (int32_t)B->p->hparams.n_vocab; i++)
        if (l[i] > l[best]) best = i;
    *next = best;
    return QP_OK;
}

/* n greedy decode steps from position pos, starting with token tok. */
static enum qp_status decode(struct bench *B, int32_t tok, int64_t pos, int n, struct qp_error *err) {
    for (int i = 0; i < n; i++) {
        enum qp_status s = qp_exec_forward(B->x, &tok, 1, pos + i, err);
        if (s != QP_OK) return s;
        if (B->argmax) {
            s = qp_exec_argmax(B->x, &tok, err);
        } else {
            const float *l;
            s = qp_exec_logits(B->x, &l, err);
            if (s == QP_OK) {
                int32_t best = 0;
                for (int32_t j = 1; j < (int32_t)B->p->hparams.n_vocab; j++)
                    if (l[j] > l[best]) best = j;
                tok = best;
            }
        }
        if (s != QP_OK) return s;
    }
    return QP_OK;
}

void qrun_bench_json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

/* Picks the backend as qrun_open does (-device, else cuda when present, else cpu) and, on
 * CUDA, records the card and its free memory before loading. */
static enum qp_status choose_backend(struct bench *B, struct qp_error *err) {
    const char *dev = B->o->device ? B->o->device : "cuda";
    B->vt = qp_backend_find(dev);
    if (!B->vt) {
        if (B->o->device)
            return qp_error_set(err, QP_ERR_UNSUPPORTED, "--device %s: not built into this qrun", dev);
        B->vt = &qp_backend_cpu;
    }
#ifdef QP_HAVE_CUDA_BACKEND
    if (B->vt == &qp_backend_cuda) {
        int nd = 0;
        if (cudaGetDeviceCount(&nd) != cudaSuccess || nd == 0) {
            if (B->o->device) return qp_error_set(err, QP_ERR_DEVICE, "no CUDA device; run with --device cpu");
            B->vt = &qp_backend_cpu;
        } else if (cudaFree(0) == cudaSuccess && cudaMemGetInfo(&B->cuda_free0, &B->cuda_total) == cudaSuccess) {
            struct cudaDeviceProp prop;
            if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
                snprintf(B->mem.device, sizeof B->mem.device, "%s", prop.name);
            B->mem.known = true;
        }
    }
#endif
    return QP_OK;
}

/* The same steps as qrun_open: plan, validation, model, identity check, executor. */
static enum qp_status load(struct bench *B, struct qp_error *err) {
    double t0 = qrun_bench_now();
    enum qp_status s = qp_plan_read(B->plan_path, &B->p, err);
    if (s == QP_OK) s = qp_plan_validate(B->p, err);
    if (s == QP_OK) s = qrun_find_model(B->plan_path, B->o->model_path, &B->model, err);
    if (s == QP_OK) s = qp_gguf_open(B->model, QP_GGUF_DEFAULT, &B->g, err);
    if (s == QP_OK) s = qp_plan_check_model(B->p, B->g, err);
    if (s != QP_OK) return s;
    struct qp_exec_config xc;
    memset(&xc, 0, sizeof xc);
    xc.backend = B->vt;
    xc.threads = B->o->threads;
    xc.use_graph = !B->o->no_graph;
    xc.verbose = B->o->verbose;
    s = qp_exec_init(B->p, B->g, &xc, &B->x, err);
    if (s != QP_OK) return s;
    B->t_load = qrun_bench_now() - t0;
    B->chunk = (int32_t)B->p->limits.max_chunk;
    B->argmax = qp_exec_has_argmax(B->x);
    return QP_OK;
}

/* Random valid token ids for the longest prefill any test needs. */
static enum qp_status make_token_ids(struct bench *B, struct qp_error *err) {
    const struct qrun_bench_options *bo = B->bo;
    int64_t max_depth = 0;
    for (int i = 0; i < bo->n_depths; i++)
        if (bo->depths[i] > max_depth) max_depth = bo->depths[i];
    B->n_ids = max_depth > bo->n_prompt ? max_depth : bo->n_prompt;
    if (B->n_ids > B->p->limits.max_ctx) B->n_ids = B->p->limits.max_ctx;
    B->ids = malloc((size_t)(B->n_ids > 0 ? B->n_ids : 1) * sizeof *B->ids);
    if (!B->ids) return qp_error_set(err, QP_ERR_NOMEM, "out of memory");
    uint64_t rng = bo->seed ? bo->seed : 1;
    for (int64_t i = 0; i < B->n_ids; i++)
        B->ids[i] = (int32_t)(xorshift(&rng) % (uint64_t)B->p->hparams.n_vocab);
    return QP_OK;
}

/* ppN: prefill until the first token (also the TTFT); one warm-up first. */
static enum qp_status run_pp_test(struct bench *B, struct test_result *r, struct qp_error *err) {
    const struct qrun_bench_options *bo = B->bo;
    snprintf(r->name, sizeof r->name, "pp%d", bo->n_prompt);
    r->n_prompt = bo->n_prompt;
    if (bo->n_prompt > B->p->limits.max_ctx) {
        r->skipped = true;
        snprintf(r->why, sizeof r->why, "the plan's context is %lld", (long long)B->p->limits.max_ctx);
        return QP_OK;
    }
    if (bo->progress)
        fprintf(stderr, "bench: %s: a warm-up, then %d run%s\n", r->name, bo->reps, bo->reps == 1 ? "" : "s");
    int32_t next;
    for (int rep = -1; rep < bo->reps; rep++) {
        double t0 = qrun_bench_now();
        enum qp_status s = prefill(B, B->ids, bo->n_prompt, &next, err);
        if (s != QP_OK) return s;
        double t = qrun_bench_now() - t0;
        if (rep >= 0) {
            r->sec[rep] = t;
            r->ts[rep] = bo->n_prompt / t;
        }
    }
    r->reps = bo->reps;
    return QP_OK;
}

/* tgN @ dD: depth prefilled untimed, warm-up (captures the decode graph), then reps. */
static enum qp_status run_tg_test(struct bench *B, int64_t depth, struct test_result *r,
                                  struct qp_error *err) {
    const struct qrun_bench_options *bo = B->bo;
    if (depth) snprintf(r->name, sizeof r->name, "tg%d @ d%lld", bo->n_gen, (long long)depth);
    else snprintf(r->name, sizeof r->name, "tg%d", bo->n_gen);
    r->n_gen = bo->n_gen;
    r->depth = depth;
    if (depth + bo->n_gen > B->p->limits.max_ctx) {
        r->skipped = true;
        snprintf(r->why, sizeof r->why, "needs %lld positions, the plan's context is %lld",
                 (long long)(depth + bo->n_gen), (long long)B->p->limits.max_ctx);
        return QP_OK;
    }
    if (bo->progress)
        fprintf(stderr, "bench: %s: %sa warm-up, then %d run%s of %d decode steps\n", r->name,
                depth ? "the depth's prefill, " : "", bo->reps, bo->reps == 1 ? "" : "s", bo->n_gen);
    int32_t tok = B->ids[0];
    enum qp_status s = QP_OK;
    if (depth > 0) {
        s = prefill(B, B->ids, depth, &tok, err);
        if (s != QP_OK) return s;
    }
    int warm = bo->n_gen < 8 ? bo->n_gen : 8;
    s = decode(B, tok, depth, warm, err);
    if (s != QP_OK) return s;
    for (int rep = 0; rep < bo->reps; rep++) {
        double t0 = qrun_bench_now();
        s = decode(B, B->ids[(rep + 1) % (B->n_ids > 0 ? B->n_ids : 1)], depth, bo->n_gen, err);
        if (s != QP_OK) return s;
        double t = qrun_bench_now() - t0;
        r->sec[rep] = t;
        r->ts[rep] = bo->n_gen / t;
    }
    r->reps = bo->reps;
    return QP_OK;
}

/* What the process holds on the device, against the plan's parts. */
static void measure_memory(struct bench *B) {
    struct memory *mem = &B->mem;
    mem->weights = (double)B->p->memory.weight_bytes / 1048576.0;
    mem->arena = (double)B->p->memory.arena_bytes / 1048576.0;
    mem->kv = (double)B->p->memory.kv_bytes / 1048576.0;
#ifdef QP_HAVE_CUDA_BACKEND
    if (mem->known) {
        size_t free1 = 0, t1 = 0;
        if (cudaMemGetInfo(&free1, &t1) == cudaSuccess) {
            mem->total = (double)B->cuda_total / 1048576.0;
            mem->context = (double)(B->cuda_total - B->cuda_free0) / 1048576.0;
            mem->used = (double)(B->cuda_free0 - free1) / 1048576.0;
            mem->other = mem->used - mem->weights - mem->arena;
        } else {
            mem->known = false;
        }
    }
#endif
}

/* The names and totals the table and the JSON share. */
static void describe(struct bench *B) {
    B->params = 0;
    for (int32_t i = 0; i < B->p->n_weights; i++)
        B->params += (double)B->p->weights[i].rows * (double)B->p->weights[i].cols;
    snprintf(B->backend, sizeof B->backend, "%s%s", qp_exec_backend_name(B->x),
             B->vt->replay ? (B->o->no_graph ? " eager" : " graph") : "");
    B->mname = B->p->model.file ? B->p->model.file : B->model;
}

/* The TTFT: the pp test's mean and sd in seconds; false (and zeros) when it did not run. */
static bool ttft(const struct bench *B, double *mean, double *sd) {
    *mean = *sd = 0;
    if (B->n_res == 0 || B->bo->n_prompt == 0 || B->res[0].skipped) return false;
    mean_sd(B->res[0].sec, B->res[0].reps, mean, sd);
    return true;
}

/* llama-bench's table, the TTFT, load time and memory; each test's mean t/s also into
 * bo->mean_ts when given. */
static void print_table(const struct bench *B, FILE *out) {
    const struct memory *mem = &B->mem;
    fprintf(out, "\n| model | size | params | backend | test | t/s |\n");
    fprintf(out, "| --- | ---: | ---: | --- | --- | ---: |\n");
    for (int i = 0; i < B->n_res; i++) {
        const struct test_result *r = &B->res[i];
        fprintf(out, "| %s | %.2f MiB | %.2f M | %s | %s | ", B->mname, mem->weights, B->params / 1e6,
                B->backend, r->name);
        double m = 0, sd = 0;
        if (r->skipped) {
            fprintf(out, "skipped: %s |\n", r->why);
        } else {
            mean_sd(r->ts, r->reps, &m, &sd);
            fprintf(out, "%.2f ± %.2f |\n", m, sd);
        }
        if (B->bo->mean_ts) B->bo->mean_ts[i] = m;
    }
    if (B->bo->n_mean_ts) *B->bo->n_mean_ts = B->n_res;
    double t_first, t_first_sd;
    if (ttft(B, &t_first, &t_first_sd))
        fprintf(out, "\nTTFT (%d-token prompt, prefill + first token): %.2f ± %.2f ms\n", B->bo->n_prompt,
                t_first * 1e3, t_first_sd * 1e3);
    fprintf(out, "load: %.2f s (plan, mapping, weights to the backend); %d repetitions per test, "
            "random token ids (seed %llu)\n", B->t_load, B->bo->reps, (unsigned long long)B->bo->seed);
    if (mem->known)
        fprintf(out, "device memory (%s): %.1f MiB held = weights %.1f + arena %.1f (of which KV cache %.1f) "
                "+ other %.1f (cuBLAS handle, kernel modules, decode graph, allocation rounding; qrun -v "
                "itemises); CUDA context %.1f; card %.1f\n",
                mem->device, mem->used, mem->weights, mem->arena, mem->kv, mem->other, mem->context, mem->total);
    else
        fprintf(out, "memory: weights %.1f MiB, arena %.1f MiB (of which KV cache %.1f)\n", mem->weights,
                mem->arena, mem->kv);
}

/* The same results as JSON at bo->json_path. */
static enum qp_status write_json(const struct bench *B, FILE *out, struct qp_error *err) {
    const char *path = B->bo->json_path;
    const struct memory *mem = &B->mem;
    FILE *f = fopen(path, "w");
    if (!f) return qp_error_set(err, QP_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    double t_first, t_first_sd;
    ttft(B, &t_first, &t_first_sd);
    fprintf(f, "{\n  \"model\": ");
    qrun_bench_json_str(f, B->mname);
    fprintf(f, ",\n  \"plan\": ");
    qrun_bench_json_str(f, B->plan_path);
    fprintf(f, ",\n  \"model_size\": %llu,\n  \"model_n_params\": %.0f,\n  \"backend\": ",
            (unsigned long long)B->p->memory.weight_bytes, B->params);
    qrun_bench_json_str(f, B->backend);
    fprintf(f, ",\n  \"device\": ");
    qrun_bench_json_str(f, mem->known ? mem->device : "");
    fprintf(f, ",\n  \"n_ctx\": %lld,\n  \"chunk\": %d,\n  \"reps\": %d,\n  \"seed\": %llu,\n",
            (long long)B->p->limits.max_ctx, B->chunk, B->bo->reps, (unsigned long long)B->bo->seed);
    fprintf(f, "  \"load_s\": %.6f,\n  \"ttft_ms\": %.6f,\n  \"ttft_sd_ms\": %.6f,\n", B->t_load,
            t_first * 1e3, t_first_sd * 1e3);
    fprintf(f, "  \"memory_mib\": {\"known\": %s, \"held\": %.3f, \"weights\": %.3f, \"arena\": %.3f, "
            "\"kv\": %.3f, \"other\": %.3f, \"context\": %.3f, \"total\": %.3f},\n",
            mem->known ? "true" : "false", mem->used, mem->weights, mem->arena, mem->kv, mem->other,
            mem->context, mem->total);
    fprintf(f, "  \"tests\": [");
    for (int i = 0; i < B->n_res; i++) {
        const struct test_result *r = &B->res[i];
        double m = 0, sd = 0;
        if (!r->skipped) mean_sd(r->ts, r->reps, &m, &sd);
        fprintf(f, "%s\n    {\"test\": ", i ? "," : "");
        qrun_bench_json_str(f, r->name);
        fprintf(f, ", \"n_prompt\": %d, \"n_gen\": %d, \"n_depth\": %lld, \"skipped\": %s, \"avg_ts\": %.6f, "
                "\"stddev_ts\": %.6f, \"samples_ts\": [", r->n_prompt, r->n_gen, (long long)r->depth,
                r->skipped ? "true" : "false", m, sd);
        for (int k = 0; k < r->reps; k++) fprintf(f, "%s%.6f", k ? ", " : "", r->ts[k]);
        fprintf(f, "], \"samples_ns\": [");
        for (int k = 0; k < r->reps; k++) fprintf(f, "%s%.0f", k ? ", " : "", r->sec[k] * 1e9);
        fprintf(f, "]}");
    }
    fprintf(f, "\n  ]\n}\n");
    if (fclose(f) != 0) return qp_error_set(err, QP_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    fprintf(out, "wrote %s\n", path);
    return QP_OK;
}

/* Runs the pp test, then the tg test at each depth. */
static enum qp_status run_tests(struct bench *B, struct qp_error *err) {
    enum qp_status s = QP_OK;
    if (B->bo->n_prompt > 0) s = run_pp_test(B, &B->res[B->n_res++], err);
    for (int d = 0; s == QP_OK && B->bo->n_gen > 0 && d < B->bo->n_depths; d++)
        s = run_tg_test(B, B->bo->depths[d], &B->res[B->n_res++], err);
    return s;
}

enum qp_status qrun_bench(const char *plan_path, const struct qrun_options *o,
                          const struct qrun_bench_options *bo, FILE *out, struct qp_error *err) {
    if (bo->reps < 1 || bo->reps > MAX_REPS || bo->n_prompt < 0 || bo->n_gen < 0)
        return qp_error_set(err, QP_ERR_INVALID, "--bench: repetitions must be 1..%d, token counts >= 0", MAX_REPS);
    struct bench B;
    memset(&B, 0, sizeof B);
    B.plan_path = plan_path;
    B.o = o;
    B.bo = bo;
    B.res = calloc(MAX_TESTS, sizeof *B.res);
    if (!B.res) return qp_error_set(err, QP_ERR_NOMEM, "out of memory");
    enum qp_status s = choose_backend(&B, err);
    if (s == QP_OK) s = load(&B, err);
    if (s == QP_OK) s = make_token_ids(&B, err);
    if (s == QP_OK) s = run_tests(&B, err);
    if (s == QP_OK) {
        measure_memory(&B);
        describe(&B);
        print_table(&B, out);
        if (bo->json_path) s = write_json(&B, out, err);
    }
    free(B.ids);
    free(B.res);
    qp_exec_free(B.x);
    qp_gguf_close(B.g);
    qp_plan_free(B.p);
    free(B.model);
    return s;
}
