/* main.c — the qrun command line (llama.cpp conventions) over libqrun (include/qrun.h):
 * one-shot generation (-p / -f), interactive chat (--chat), --tokenize / --detokenize, --bench
 * (runtime/bench.c, bench_batch.c), --perplexity / --kl-divergence (runtime/perplexity.c), --serve
 * (runtime/serve.c: an OpenAI-compatible HTTP server, docs/serving.md).
 * Text streams to stdout, ended with a newline on a terminal or in a file (a pipe gets the text
 * exactly); the seed (when sampling is random), progress (on a terminal), messages and timings
 * go to stderr.
 * SIGINT stops a generation cleanly (exit 130); in --chat it stops the reply and the
 * conversation goes on.
 *
 * main parses the command line into a struct cli (parse_args), then runs one mode: the
 * tokenizer commands, the benchmark, or generation (one prompt or a chat loop).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "qp_tokenizer.h"
#include "qrun.h"
#include "qp_read_file.h"
#include "qrun_perplexity.h"
#ifdef QP_HAVE_SERVE
#include "serve.h"
#endif

#define MAX_STOP 16

static volatile sig_atomic_t g_interrupt;

static void on_sigint(int sig) {
    (void)sig;
    g_interrupt = 1;
}

/* The parsed command line. */
struct cli {
    const char *plan, *prompt, *file, *system, *tokenize, *detokenize;
    const char *stops[MAX_STOP];
    int n_stop;
    bool chat, seed_given, bench, pp_given, perplexity;
    bool ctx_zero; /* -c 0 given: the plan's whole context, said at run time */
    bool serve;    /* --serve and its options */
    const char *host, *api_key;
    int port, parallel, queue, timeout_s, shutdown_s;
    struct qrun_ppl_options po; /* --perplexity / --kl-divergence */
    struct qrun_bench_options bo;
    struct qrun_options o;
    struct qrun_gen_options g;
};

static void usage(FILE *f) {
    fputs("usage: qrun PLAN.yaml [options]\n"
          "  -p, --prompt TEXT       prompt (special tokens like <|im_start|> are parsed)\n"
          "  -f, --file FILE         read the prompt from FILE\n"
          "  -n, --n-predict N       tokens to generate (default -1: until end or full context)\n"
          "  -c, --ctx-size N        context positions (default or 0: the plan's max_ctx)\n"
          "  --temp T                temperature (default 0.8; 0 or below = greedy)\n"
          "  --top-k N               top-k (default 40; 0 = off)\n"
          "  --top-p P               top-p (default 0.95; 1 = off)\n"
          "  --min-p P               min-p (default 0.05; 0 = off)\n"
          "  --repeat-penalty F      repetition penalty (default 1.0 = off)\n"
          "  --repeat-last-n N       tokens the penalties look back (default 64)\n"
          "  --frequency-penalty F   minus F x a token's count in that window (default 0 = off)\n"
          "  --presence-penalty F    minus F for a token present in it (default 0 = off)\n"
          "  --seed N                sampling seed (default: random, printed when --temp > 0)\n"
          "  --device cpu|cuda       backend (default: cuda when built and a GPU is present)\n"
          "  -t, --threads N         CPU backend threads (default: one per processor core)\n"
          "  --chat                  interactive chat (ChatML); -p gives the first message\n"
          "  --system TEXT           system message for --chat (default: the template's)\n"
          "  --stop TEXT             stop when TEXT appears (repeatable, up to 16)\n"
          "  -m, --model FILE        the GGUF (default: the plan's model.file next to the plan)\n"
          "  --tokenize TEXT         print the token ids of TEXT on one line and exit (-v: then\n"
          "                          one line per token: its id, a tab and its text)\n"
          "  --detokenize IDS        print the text of ids \"1,2,3\" and exit\n"
          "  --no-graph              launch the decode step eagerly (no CUDA graph)\n"
          "  --sync-each             synchronise after every node (CUDA): a fault names its node\n"
          "  --profile               per-op device times of every eager run on stderr (CUDA)\n"
          "  --bench                 benchmark (llama-bench's table: pp512, tg128 at depths 0,\n"
          "                          4096, 16384; TTFT; device memory) instead of generating\n"
          "  --bench-json PATH       also write the benchmark as JSON\n"
          "  --bench-reps N          repetitions per test (default 5)\n"
          "  --bench-depths LIST     tg depths, e.g. 0,4096,16384 (tokens already in the KV cache)\n"
          "  --bench-pp N, --bench-tg N  tokens of the pp and tg tests (default 512, 128)\n"
          "  --batch LIST            with --bench: llama-batched-bench's table for these numbers of\n"
          "                          sequences decoded together, e.g. 1,4,16,64 (a plan compiled with\n"
          "                          --slots; PP 128 unless --bench-pp, TG --bench-tg)\n"
          "  --perplexity            perplexity of the text of -f (llama-perplexity's method;\n"
          "                          -c N tokens per chunk, default 512)\n"
          "  --chunks N              at most N chunks (default: all)\n"
          "  --kl-divergence-base F  with --perplexity: write the full distributions to F\n"
          "                          (llama.cpp's format); with --kl-divergence: read them\n"
          "  --kl-divergence         compare with --kl-divergence-base F over its tokens: KLD,\n"
          "                          PPL ratio, same top token (llama-perplexity's statistics)\n"
          "  --serve                 an OpenAI-compatible HTTP server (docs/serving.md): the plan's\n"
          "                          slots decoded together; -n, --temp ... are request defaults\n"
          "  --host ADDR             --serve: address to listen on (default 127.0.0.1)\n"
          "  --port N                --serve: port (default 8080; 0: any free one, printed)\n"
          "  -np, --parallel N       --serve: slots to use (default: all the plan's --slots)\n"
          "  --api-key KEY           --serve: requests need \"Authorization: Bearer KEY\"\n"
          "  --queue N               --serve: requests waiting for a slot at most (default 64);\n"
          "                          beyond it 503 with Retry-After\n"
          "  --timeout S             --serve: idle connections closed after S s (default 30)\n"
          "  --shutdown-timeout S    --serve: on SIGTERM, running requests get S s to finish\n"
          "                          (default 10), then are cut short\n"
          "  -v, --verbose           more messages on stderr, and after generating, per plan node,\n"
          "                          the kernel the backend ran\n"
          "  -h, --help              this text\n",
          f);
}

/* What has been written to stdout, so that the text can be ended with a newline. */
struct text_out {
    size_t n;  /* bytes */
    char last; /* the last byte */
};

static int on_token(void *user, int32_t token, const char *text, size_t len) {
    struct text_out *out = user;
    (void)token;
    if (len) {
        fwrite(text, 1, len, stdout);
        fflush(stdout);
        out->n += len;
        out->last = text[len - 1];
    }
    return 0;
}

/* Ends the generated text with a newline when stdout is a terminal or a regular file (so that
 * the next output, or the shell prompt, starts on its own line) and the text did not end with
 * one; a pipe or another program gets the text exactly. */
static void end_text_line(struct text_out *out) {
    struct stat sb;
    bool file = fstat(1, &sb) == 0 && S_ISREG(sb.st_mode);
    if (out->n && out->last != '\n' && (file || isatty(1))) {
        fputc('\n', stdout);
        fflush(stdout);
    }
    out->n = 0;
}

/* The prompt's progress on a terminal: "prompt 512/1001 tokens, 11.3 tok/s", redrawn at most
 * every 0.1 s and erased when the prompt is done, so that the text starts on a clean line. */
struct prompt_line {
    bool drawn;
    double t_drawn; /* seconds into the prompt */
};

static void on_prefill(void *user, int64_t done, int64_t total, double seconds) {
    struct prompt_line *pl = user;
    if (done >= total) {
        if (pl->drawn) fputs("\r\033[K", stderr);
        pl->drawn = false;
        return;
    }
    if (pl->drawn && seconds - pl->t_drawn < 0.1) return;
    if (done == 0) fprintf(stderr, "\rprompt 0/%lld tokens\033[K", (long long)total);
    else
        fprintf(stderr, "\rprompt %lld/%lld tokens, %.1f tok/s\033[K", (long long)done,
                (long long)total, seconds > 0 ? (double)done / seconds : 0.0);
    pl->drawn = true;
    pl->t_drawn = seconds;
}

static void print_timings(const struct qrun *q, const struct qrun_stats *st) {
    fprintf(stderr, "\nqrun: %s | load %.2f s | prompt %lld tokens in %.3f s (%.1f tok/s) | "
                    "first token %.3f s | generated %lld tokens, %lld decode steps in %.3f s (%.2f tok/s)"
                    " | stop: %s\n",
            qrun_device(q), qrun_load_seconds(q), (long long)st->n_prompt, st->t_prompt_s,
            st->t_prompt_s > 0 ? (double)st->n_prompt / st->t_prompt_s : 0.0, st->t_first_s,
            (long long)st->n_gen, (long long)st->n_decode, st->t_gen_s,
            st->t_gen_s > 0 ? (double)st->n_decode / st->t_gen_s : 0.0, qrun_stop_str(st->stop));
    if (st->stop == QRUN_STOP_CONTEXT) {
        char advice[512];
        qrun_context_advice(q, qrun_n_ctx(q) + 1, advice, sizeof advice);
        fprintf(stderr, "qrun: the context is full (%lld positions): stopped cleanly; %s\n",
                (long long)qrun_n_ctx(q), advice);
    }
}


static int parse_int(const char *opt, const char *v, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "qrun: %s '%s': expected an integer in [%lld, %lld]\n", opt, v, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_float(const char *opt, const char *v, float *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end) {
        fprintf(stderr, "qrun: %s '%s': expected a number\n", opt, v);
        return -1;
    }
    *out = (float)x;
    return 0;
}

static int parse_seed(const char *v, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long s = strtoull(v, &end, 10);
    /* strtoull takes "-1" as 2^64 - 1: refuse a sign instead of wrapping silently */
    if (errno || end == v || *end || strchr(v, '-')) {
        fprintf(stderr, "qrun: --seed '%s': expected a non-negative integer\n", v);
        return -1;
    }
    *out = s;
    return 0;
}

/* Fills c from argv. Returns true when qrun should go on; false when it is done, with the exit
 * status in *rc (0 after --help, 2 for a bad command line, the message printed). */
static bool parse_args(int argc, char **argv, struct cli *c, int *rc) {
    memset(c, 0, sizeof *c);
    c->bo = qrun_bench_options_default();
    c->po = qrun_ppl_options_default();
    c->o = qrun_options_default();
    c->g = qrun_gen_options_default();
    c->g.parse_special = true;
    c->host = "127.0.0.1";
    c->port = 8080;
    c->queue = 64;
    c->timeout_s = 30;
    c->shutdown_s = 10;
    struct qrun_options *o = &c->o;
    struct qrun_gen_options *g = &c->g;
    struct qrun_bench_options *bo = &c->bo;
    long long v;
    *rc = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VAL                                                                               \
    do {                                                                                       \
        if (!val) {                                                                            \
            fprintf(stderr, "qrun: %s needs a value (see --help)\n", a);                      \
            return false;                                                                      \
        }                                                                                      \
        i++;                                                                                   \
    } while (0)
#define IS(s1, s2) (strcmp(a, s1) == 0 || strcmp(a, s2) == 0)
        if (IS("-h", "--help")) {
            usage(stdout);
            *rc = 0;
            return false;
        } else if (IS("-p", "--prompt")) { NEED_VAL; c->prompt = val; }
        else if (IS("-f", "--file")) { NEED_VAL; c->file = val; }
        else if (IS("-n", "--n-predict")) { NEED_VAL; if (parse_int(a, val, -1, INT32_MAX, &v)) return false; g->n_predict = v; }
        else if (IS("-c", "--ctx-size")) { NEED_VAL; if (parse_int(a, val, 0, INT32_MAX, &v)) return false; o->n_ctx = v; c->ctx_zero = v == 0; }
        else if (IS("--temp", "--temp")) { NEED_VAL; if (parse_float(a, val, &g->sampling.temp)) return false; }
        else if (IS("--top-k", "--top-k")) { NEED_VAL; if (parse_int(a, val, 0, INT32_MAX, &v)) return false; g->sampling.top_k = (int32_t)v; }
        else if (IS("--top-p", "--top-p")) { NEED_VAL; if (parse_float(a, val, &g->sampling.top_p)) return false; }
        else if (IS("--min-p", "--min-p")) { NEED_VAL; if (parse_float(a, val, &g->sampling.min_p)) return false; }
        else if (IS("--repeat-penalty", "--repeat-penalty")) { NEED_VAL; if (parse_float(a, val, &g->sampling.repeat_penalty)) return false; }
        else if (IS("--repeat-last-n", "--repeat-last-n")) { NEED_VAL; if (parse_int(a, val, 0, 1 << 20, &v)) return false; g->sampling.repeat_last_n = (int32_t)v; }
        else if (IS("--frequency-penalty", "--frequency-penalty")) { NEED_VAL; if (parse_float(a, val, &g->sampling.freq_penalty)) return false; }
        else if (IS("--presence-penalty", "--presence-penalty")) { NEED_VAL; if (parse_float(a, val, &g->sampling.presence_penalty)) return false; }
        else if (IS("--seed", "--seed")) { NEED_VAL; if (parse_seed(val, &g->sampling.seed)) return false; c->seed_given = true; }
        else if (IS("--device", "--device")) { NEED_VAL; o->device = val; }
        else if (IS("-t", "--threads")) { NEED_VAL; if (parse_int(a, val, 1, QRUN_MAX_THREADS, &v)) return false; o->threads = (int32_t)v; }
        else if (IS("--chat", "--chat")) c->chat = true;
        else if (IS("--system", "--system")) { NEED_VAL; c->system = val; }
        else if (IS("--stop", "--stop")) {
            NEED_VAL;
            if (c->n_stop == MAX_STOP) {
                fprintf(stderr, "qrun: at most %d --stop strings\n", MAX_STOP);
                return false;
            }
            c->stops[c->n_stop++] = val;
        }
        else if (IS("-m", "--model")) { NEED_VAL; o->model_path = val; }
        else if (IS("--tokenize", "--tokenize")) { NEED_VAL; c->tokenize = val; }
        else if (IS("--detokenize", "--detokenize")) { NEED_VAL; c->detokenize = val; }
        else if (IS("--no-graph", "--no-graph")) o->no_graph = true;
        else if (IS("--sync-each", "--sync-each")) o->sync_each = true;
        else if (IS("--profile", "--profile")) o->profile = true;
        else if (IS("--bench", "--bench")) c->bench = true;
        else if (IS("--bench-json", "--bench-json")) { NEED_VAL; bo->json_path = val; c->bench = true; }
        else if (IS("--bench-reps", "--bench-reps")) { NEED_VAL; if (parse_int(a, val, 1, 100, &v)) return false; bo->reps = (int)v; }
        else if (IS("--bench-pp", "--bench-pp")) { NEED_VAL; if (parse_int(a, val, 0, 1 << 20, &v)) return false; bo->n_prompt = (int)v; c->pp_given = true; }
        else if (IS("--bench-tg", "--bench-tg")) { NEED_VAL; if (parse_int(a, val, 0, 1 << 20, &v)) return false; bo->n_gen = (int)v; }
        else if (IS("--batch", "--batch")) {
            NEED_VAL;
            struct qp_error be = {{0}};
            if (qrun_bench_parse_batch(val, bo, &be) != QP_OK) {
                fprintf(stderr, "qrun: %s\n", be.msg);
                return false;
            }
            c->bench = true;
        }
        else if (IS("--bench-depths", "--bench-depths")) {
            NEED_VAL;
            struct qp_error be = {{0}};
            if (qrun_bench_parse_depths(val, bo, &be) != QP_OK) {
                fprintf(stderr, "qrun: %s\n", be.msg);
                return false;
            }
        }
        else if (IS("--perplexity", "--perplexity")) c->perplexity = true;
        else if (IS("--kl-divergence", "--kl-divergence")) c->po.kld = true;
        else if (IS("--kl-divergence-base", "--kl-divergence-base")) { NEED_VAL; c->po.kld_base = val; }
        else if (IS("--chunks", "--chunks")) {
            NEED_VAL;
            if (parse_int(a, val, 1, INT32_MAX, &v)) return false;
            c->po.n_chunks = (int32_t)v;
        }
        else if (IS("--serve", "--serve")) c->serve = true;
        else if (IS("--host", "--host")) { NEED_VAL; c->host = val; }
        else if (IS("--port", "--port")) { NEED_VAL; if (parse_int(a, val, 0, 65535, &v)) return false; c->port = (int)v; }
        else if (IS("-np", "--parallel")) { NEED_VAL; if (parse_int(a, val, 1, 4096, &v)) return false; c->parallel = (int)v; }
        else if (IS("--api-key", "--api-key")) { NEED_VAL; c->api_key = val; }
        else if (IS("--queue", "--queue")) { NEED_VAL; if (parse_int(a, val, 0, 65536, &v)) return false; c->queue = (int)v; }
        else if (IS("--timeout", "--timeout")) { NEED_VAL; if (parse_int(a, val, 1, 86400, &v)) return false; c->timeout_s = (int)v; }
        else if (IS("--shutdown-timeout", "--shutdown-timeout")) { NEED_VAL; if (parse_int(a, val, 0, 3600, &v)) return false; c->shutdown_s = (int)v; }
        else if (IS("-v", "--verbose")) o->verbose = true;
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "qrun: unknown option %s (see --help)\n", a);
            return false;
        } else if (!c->plan) c->plan = a;
        else {
            fprintf(stderr, "qrun: unexpected argument '%s' (the plan is %s)\n", a, c->plan);
            return false;
        }
#undef NEED_VAL
#undef IS
    }
    return true;
}

/* --tokenize / --detokenize: needs only the model's tokenizer (no plan load, no weights). */
static int run_tokenizer_cmd(const struct cli *c) {
    if (!c->plan && !c->o.model_path) {
        fprintf(stderr, "qrun: --tokenize/--detokenize need a plan or -m MODEL.gguf\n");
        return 2;
    }
    struct qp_error err = {{0}};
    char *mp = NULL;
    struct qp_tokenizer *t = NULL;
    enum qp_status s = c->plan ? qrun_find_model(c->plan, c->o.model_path, &mp, &err) : QP_OK;
    if (s == QP_OK) s = qp_tokenizer_load_file(mp ? mp : c->o.model_path, &t, &err);
    if (s == QP_OK)
        s = c->tokenize ? qp_tokenize_cmd(t, c->tokenize, true, c->o.verbose, stdout, &err)
                        : qp_detokenize_cmd(t, c->detokenize, stdout, &err);
    qp_tokenizer_free(t);
    free(mp);
    if (s != QP_OK) {
        fprintf(stderr, "qrun: %s\n", err.msg);
        return 1;
    }
    return 0;
}

static int run_bench(struct cli *c) {
    struct qp_error err = {{0}};
    c->bo.progress = isatty(2);
    /* llama-batched-bench's shape: PP 128, TG 128 */
    if (c->bo.n_batch > 0 && !c->pp_given) c->bo.n_prompt = 128;
    enum qp_status s = c->bo.n_batch > 0 ? qrun_bench_batch(c->plan, &c->o, &c->bo, stdout, &err)
                                         : qrun_bench(c->plan, &c->o, &c->bo, stdout, &err);
    if (s != QP_OK) fprintf(stderr, "qrun: %s\n", err.msg);
    return s == QP_OK ? 0 : 1;
}

/* A seed from the clock and the process id, 32 bits so that it is easy to type back. */
static uint64_t random_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid()) & 0xffffffffu;
}

static void install_sigint_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: Ctrl-C at the chat prompt ends the read */
    sigaction(SIGINT, &sa, NULL);
}

/* One generation from the prompt; exit status 0, 1 (an error) or 130 (interrupted). verbose:
 * then the kernel each plan node ran. */
static int generate_once(struct qrun *q, const char *prompt, const struct qrun_gen_options *g,
                         bool verbose) {
    struct qp_error err = {{0}};
    struct qrun_stats st;
    struct text_out out = {0};
    enum qp_status s = qrun_generate(q, prompt, g, on_token, &out, &st, &err);
    end_text_line(&out);
    if (s != QP_OK) {
        fprintf(stderr, "\nqrun: %s\n", err.msg);
        return 1;
    }
    print_timings(q, &st);
    if (verbose) qrun_print_kernels(q, stderr);
    return st.stop == QRUN_STOP_INTERRUPT ? 130 : 0;
}

/* The chat loop: the first message is first_msg (when given), then lines of stdin until end of
 * input, Ctrl-C at the prompt (exit 130) or a full context. */
static int chat_loop(struct qrun *q, const char *system, const char *first_msg,
                     const struct qrun_gen_options *g, bool verbose) {
    struct qp_error err = {{0}};
    struct qrun_stats st;
    struct text_out out = {0};
    bool tty = isatty(0);
    char *line = NULL;
    size_t cap = 0;
    const char *msg = first_msg;
    int rc = 0;
    for (;;) {
        if (!msg) {
            if (tty) {
                fputs("\n> ", stdout);
                fflush(stdout);
            }
            g_interrupt = 0;
            errno = 0;
            ssize_t r = getline(&line, &cap, stdin);
            if (r < 0) {
                if (errno == EINTR || g_interrupt) rc = 130;
                break;
            }
            while (r > 0 && (line[r - 1] == '\n' || line[r - 1] == '\r')) line[--r] = 0;
            if (r == 0) continue;
            msg = line;
        }
        g_interrupt = 0;
        enum qp_status s = qrun_chat_turn(q, system, msg, g, on_token, &out, &st, &err);
        out.n = 0;
        msg = NULL;
        if (s != QP_OK) {
            fprintf(stderr, "\nqrun: %s\n", err.msg);
            rc = 1;
            break;
        }
        fputc('\n', stdout);
        if (verbose || !tty) print_timings(q, &st);
        if (st.stop == QRUN_STOP_CONTEXT) {
            fprintf(stderr, "qrun: the conversation filled the context (%lld positions)\n",
                    (long long)qrun_n_ctx(q));
            break;
        }
    }
    free(line);
    return rc;
}

/* Generation (one prompt or --chat): checks the prompt options, opens the plan, runs. */
static int run_generation(struct cli *c) {
    if (c->prompt && c->file) {
        fprintf(stderr, "qrun: give the prompt with -p or -f, not both\n");
        return 2;
    }
    char *file_text = NULL;
    if (c->file) {
        size_t file_len;
        struct qp_error ferr = {{0}};
        if (qp_read_file(c->file, &file_text, &file_len, &ferr) != QP_OK) {
            fprintf(stderr, "qrun: -f %s\n", ferr.msg);
            return 1;
        }
    }
    const char *prompt = file_text ? file_text : c->prompt;
    if (!prompt && !c->chat) {
        fprintf(stderr, "qrun: no prompt: give -p TEXT, -f FILE or --chat (see --help)\n");
        free(file_text);
        return 2;
    }
    if (c->g.sampling.temp < 0.0f)
        fprintf(stderr, "qrun: --temp %g is below 0: greedy sampling, as with --temp 0\n",
                (double)c->g.sampling.temp);
    c->g.stop = c->stops;
    c->g.n_stop = c->n_stop;
    c->g.interrupt = &g_interrupt;
    bool progress = isatty(2);
    c->o.progress = progress;
    struct prompt_line pl = {0};
    if (progress) {
        c->g.on_prefill = on_prefill;
        c->g.prefill_user = &pl;
    }
    install_sigint_handler();

    struct qp_error err = {{0}};
    struct qrun *q = NULL;
    if (qrun_open(c->plan, &c->o, &q, &err) != QP_OK) {
        fprintf(stderr, "qrun: %s\n", err.msg);
        free(file_text);
        return 1;
    }
    if (c->o.verbose)
        fprintf(stderr, "qrun: %s on %s, context %lld\n", qrun_model_path(q), qrun_device(q),
                (long long)qrun_n_ctx(q));
    if (c->ctx_zero)
        fprintf(stderr, "qrun: -c 0: the plan's whole context, %lld positions\n",
                (long long)qrun_n_ctx(q));
    /* the seed matters only to random sampling, and only once the plan has loaded */
    if (!c->seed_given && c->g.sampling.temp > 0.0f) {
        c->g.sampling.seed = random_seed();
        fprintf(stderr, "qrun: seed %llu\n", (unsigned long long)c->g.sampling.seed);
    }
    int rc = c->chat ? chat_loop(q, c->system, prompt, &c->g, c->o.verbose)
                     : generate_once(q, prompt, &c->g, c->o.verbose);
    qrun_close(q);
    free(file_text);
    return rc;
}

/* --perplexity / --kl-divergence: checks the combination (exit 2), runs, reports (exit 1 or 130
 * on failure). */
static int run_perplexity(struct cli *c) {
    struct qrun_ppl_options *po = &c->po;
    po->n_ctx = (int32_t)c->o.n_ctx;
    if (po->kld && !po->kld_base) {
        fprintf(stderr, "qrun: --kl-divergence needs --kl-divergence-base FILE (the base to compare with)\n");
        return 2;
    }
    if (!po->kld && !c->file) {
        fprintf(stderr, "qrun: --perplexity needs the text: -f FILE%s\n",
                c->prompt ? " (-p is not read by --perplexity)" : "");
        return 2;
    }
    if (po->n_ctx != 0 && po->n_ctx < QRUN_PPL_MIN_CTX) {
        fprintf(stderr, "qrun: -c %d: perplexity needs chunks of at least %d tokens\n", (int)po->n_ctx,
                QRUN_PPL_MIN_CTX);
        return 2;
    }
    signal(SIGINT, on_sigint);
    po->interrupt = &g_interrupt;
    po->progress = isatty(2);
    struct qp_error err = {{0}};
    enum qp_status s = qrun_perplexity_cmd(c->plan, &c->o, po, po->kld ? NULL : c->file, stdout, NULL, &err);
    if (s != QP_OK) {
        fprintf(stderr, "qrun: %s\n", err.msg);
        return s == QP_ERR_INTERRUPTED ? 130 : 1;
    }
    return 0;
}

/* --serve: the server's configuration from the command line; runs until SIGTERM. */
static int run_serve(const struct cli *c) {
#ifdef QP_HAVE_SERVE
    struct serve_config sc = {0};
    sc.plan = c->plan;
    sc.o = c->o;
    sc.sampling = c->g.sampling;
    sc.n_predict = c->g.n_predict;
    sc.host = c->host;
    sc.port = c->port;
    sc.parallel = c->parallel;
    sc.api_key = c->api_key;
    sc.queue = c->queue;
    sc.timeout_s = c->timeout_s;
    sc.shutdown_s = c->shutdown_s;
    return qrun_serve(&sc);
#else
    (void)c;
    fprintf(stderr, "qrun: --serve: this qrun was built without the server: libmicrohttpd and jansson were not "
                    "found when it was configured (install libmicrohttpd-dev and libjansson-dev, e.g. with "
                    "scripts/deps.sh, and build again)\n");
    return 1;
#endif
}

int main(int argc, char **argv) {
    struct cli c;
    int rc;
    if (!parse_args(argc, argv, &c, &rc)) return rc;
    if (c.tokenize || c.detokenize) return run_tokenizer_cmd(&c);
    if (!c.plan) {
        usage(stderr);
        return 2;
    }
    if (c.perplexity || c.po.kld) return run_perplexity(&c);
    if (c.po.kld_base || c.po.n_chunks) {
        fprintf(stderr, "qrun: %s goes with --perplexity or --kl-divergence\n",
                c.po.kld_base ? "--kl-divergence-base" : "--chunks");
        return 2;
    }
    if (c.bench) return run_bench(&c);
    if (c.serve) return run_serve(&c);
    return run_generation(&c);
}
