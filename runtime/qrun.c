/* qrun.c — libqrun (include/qrun.h): plan + GGUF loading, the generation loop (prefill in
 * chunks, decode, sampling, stop conditions, streaming UTF-8 text), chat turns, timings.
 *
 * Owns the plan, the GGUF mapping, the executor (and through it the backend and its arena),
 * the tokenizer and the chat state. Invariants: pos <= n_ctx <= plan max_ctx, and no forward
 * is ever asked to write a position >= n_ctx (a full context is a clean stop).
 */
#define _POSIX_C_SOURCE 200809L
#include "qrun.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "executor.h"
#include "gen.h"
#include "qrun_internal.h"
#include "qp_kernels.h"
#include "qp_chat.h"
#include "qp_gguf.h"
#include "qp_cpu.h"
#include "qp_plan.h"
#include "qp_tokenizer.h"

_Static_assert(QRUN_MAX_THREADS == QP_CPU_MAX_THREADS, "qrun.h's thread limit is the pool's");

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

struct qrun_options qrun_options_default(void) {
    struct qrun_options o = {0};
    return o;
}

struct qrun_gen_options qrun_gen_options_default(void) {
    struct qrun_gen_options g = {0};
    g.sampling = qp_sampler_defaults();
    g.n_predict = -1;
    g.greedy_on_device = true;
    return g;
}

const char *qrun_stop_str(enum qrun_stop r) {
    switch (r) {
    case QRUN_STOP_NONE: return "running";
    case QRUN_STOP_EOG: return "end of generation";
    case QRUN_STOP_LENGTH: return "token limit (-n) reached";
    case QRUN_STOP_STRING: return "stop string";
    case QRUN_STOP_CONTEXT: return "context full";
    case QRUN_STOP_INTERRUPT: return "interrupted";
    case QRUN_STOP_CALLBACK: return "stopped by the caller";
    case QRUN_STOP_CANCEL: return "cancelled";
    }
    return "unknown";
}

/* The loading bar on stderr: redrawn only when its text changes and at most every 0.1 s
 * (the last state always), ended with a newline when done. */
static void progress_bar(void *user, uint64_t done, uint64_t total) {
    struct qrun *q = user;
    int w = 30, f = total ? (int)((double)done / (double)total * w) : w;
    char bar[31], text[sizeof q->bar];
    for (int i = 0; i < w; i++) bar[i] = i < f ? '#' : ' ';
    bar[w] = 0;
    snprintf(text, sizeof text, "loading weights [%s] %3d%% %6.1f / %.1f MiB", bar,
             total ? (int)(100.0 * (double)done / (double)total) : 100, (double)done / 1048576.0,
             (double)total / 1048576.0);
    bool last = done >= total;
    double t = now_s();
    bool changed = strcmp(text, q->bar) != 0;
    if (changed && (last || !q->bar[0] || t - q->bar_t >= 0.1)) {
        fprintf(stderr, "\r%s", text);
        memcpy(q->bar, text, sizeof text);
        q->bar_t = t;
        changed = false;
    }
    if (last && !changed) {
        fputc('\n', stderr);
        q->bar_ended = true;
    }
}

static bool file_exists(const char *p) { return access(p, R_OK) == 0; }

/* The GGUF for a plan: -m, else model.file next to the plan, in $QP_MODEL's folder, then in
 * ~/.cache/qplan. */
static enum qp_status find_model(const char *plan_path, const struct qp_plan *p,
                                 const char *given, char **out, struct qp_error *err) {
    if (given) {
        *out = dup_str(given);
        return *out ? QP_OK : qp_error_set(err, QP_ERR_NOMEM, "out of memory");
    }
    const char *file = p->model.file;
    if (!file || !*file || strchr(file, '/'))
        return qp_error_set(err, QP_ERR_INVALID, "%s: model.file '%s' must be a plain file name",
                            plan_path, file ? file : "");
    char cand[3][4096];
    int n = 0;
    const char *slash = strrchr(plan_path, '/');
    int dl = slash ? (int)(slash - plan_path) : 1;
    snprintf(cand[n++], sizeof cand[0], "%.*s/%s", dl, slash ? plan_path : ".", file);
    const char *env = getenv("QP_MODEL");
    if (env && *env) {
        const char *es = strrchr(env, '/');
        int el = es ? (int)(es - env) : 1;
        snprintf(cand[n++], sizeof cand[0], "%.*s/%s", el, es ? env : ".", file);
    }
    const char *home = getenv("HOME");
    if (home) snprintf(cand[n++], sizeof cand[0], "%s/.cache/qplan/%s", home, file);
    for (int i = 0; i < n; i++)
        if (file_exists(cand[i])) {
            *out = dup_str(cand[i]);
            return *out ? QP_OK : qp_error_set(err, QP_ERR_NOMEM, "out of memory");
        }
    return qp_error_set(err, QP_ERR_IO,
                        "%s: its model '%s' is not next to the plan (%s)%s%s nor in ~/.cache/qplan: "
                        "give the GGUF with -m",
                        plan_path, file, cand[0], n > 2 ? " nor at " : "", n > 2 ? cand[1] : "");
}

enum qp_status qrun_find_model(const char *plan_path, const char *model_override, char **out,
                               struct qp_error *err) {
    *out = NULL;
    if (model_override) return find_model(plan_path, NULL, model_override, out, err);
    struct qp_plan *p = NULL;
    enum qp_status s = qp_plan_read(plan_path, &p, err);
    if (s == QP_OK) s = find_model(plan_path, p, NULL, out, err);
    qp_plan_free(p);
    return s;
}

enum qp_status qrun_open(const char *plan_path, const struct qrun_options *o, struct qrun **out,
                         struct qp_error *err) {
    *out = NULL;
    double t0 = now_s();
    struct qrun *q = calloc(1, sizeof *q);
    if (!q) return qp_error_set(err, QP_ERR_NOMEM, "out of memory");
    q->pending = -1;
    q->plan_path = dup_str(plan_path);
    if (!q->plan_path) {
        free(q);
        return qp_error_set(err, QP_ERR_NOMEM, "out of memory");
    }
    enum qp_status s = qp_plan_read(plan_path, &q->plan, err);
    if (s == QP_OK) s = qp_plan_validate(q->plan, err);
    if (s == QP_OK) s = find_model(plan_path, q->plan, o->model_path, &q->model_path, err);
    if (s == QP_OK) s = qp_gguf_open(q->model_path, QP_GGUF_DEFAULT, &q->gguf, err);
    if (s == QP_OK) s = qp_plan_check_model(q->plan, q->gguf, err);
    if (s == QP_OK) s = qp_tokenizer_load(q->gguf, &q->tok, err);
    if (s != QP_OK) goto fail;
    if (qp_tokenizer_n_vocab(q->tok) > q->plan->hparams.n_vocab) {
        s = qp_error_set(err, QP_ERR_INVALID, "%s: the tokenizer has %d tokens, the plan's LM head %lld",
                         q->model_path, qp_tokenizer_n_vocab(q->tok), (long long)q->plan->hparams.n_vocab);
        goto fail;
    }
    if (qp_gguf_find(q->gguf, "tokenizer.chat_template")) {
        const char *t = NULL;
        struct qp_error e2;
        if (qp_gguf_get_str(q->gguf, "tokenizer.chat_template", &t, &e2) == QP_OK && t)
            q->chat_template = dup_str(t);
    }
    q->n_ctx = q->plan->limits.max_ctx;
    if (o->n_ctx > 0) {
        if (o->n_ctx > q->plan->limits.max_ctx) {
            s = qp_error_set(err, QP_ERR_RANGE,
                             "-c %lld is larger than the plan's KV cache (%lld positions): compile "
                             "the plan with a larger context",
                             (long long)o->n_ctx, (long long)q->plan->limits.max_ctx);
            goto fail;
        }
        q->n_ctx = o->n_ctx;
    }
    if (o->threads < 0 || o->threads > QRUN_MAX_THREADS) {
        s = qp_error_set(err, QP_ERR_RANGE, "-t %d: expected 1 to %d threads (0: one per processor)",
                         (int)o->threads, QRUN_MAX_THREADS);
        goto fail;
    }
    struct qp_exec_config xc = {
        .device = 0,
        .threads = o->threads,
        .use_graph = !o->no_graph,
        .verbose = o->verbose,
        .sync_each = o->sync_each,
        .profile = o->profile,
        .progress = o->progress ? progress_bar : NULL,
        .progress_user = q,
    };
    if (o->device) {
        xc.backend = qp_backend_find(o->device);
        if (!xc.backend) {
            s = qp_error_set(err, QP_ERR_UNSUPPORTED, "--device %s: %s", o->device,
                             strcmp(o->device, "cuda") == 0
                                 ? "this build has no CUDA backend: use --device cpu"
                                 : "unknown device (cpu or cuda)");
            goto fail;
        }
        s = qp_exec_init(q->plan, q->gguf, &xc, &q->exec, err);
    } else {
        xc.backend = qp_backend_find("cuda");
        s = xc.backend ? qp_exec_init(q->plan, q->gguf, &xc, &q->exec, err) : QP_ERR_UNSUPPORTED;
        /* no GPU (or no CUDA build): the CPU runs the plan; a plan the GPU cannot run is an error */
        if (s == QP_ERR_DEVICE || s == QP_ERR_UNSUPPORTED) {
            if (xc.backend && o->verbose) fprintf(stderr, "qrun: cuda unavailable (%s): using cpu\n", err->msg);
            xc.backend = &qp_backend_cpu;
            s = qp_exec_init(q->plan, q->gguf, &xc, &q->exec, err);
        }
    }
    if (s != QP_OK) goto fail;
    s = qrun_sched_init(q, o->step_tokens, err);
    if (s != QP_OK) goto fail;
    q->load_s = now_s() - t0;
    *out = q;
    return QP_OK;
fail:
    if (q->bar[0] && !q->bar_ended) fputc('\n', stderr); /* the message starts a line */
    qrun_close(q);
    return s;
}

void qrun_close(struct qrun *q) {
    if (!q) return;
    qrun_sched_free(q);
    qp_exec_free(q->exec);
    qp_tokenizer_free(q->tok);
    qp_chat_free(q->chat);
    qp_gguf_close(q->gguf);
    qp_plan_free(q->plan);
    free(q->chat_template);
    free(q->model_path);
    free(q->plan_path);
    free(q);
}

void qrun_reset(struct qrun *q) {
    q->pos = 0;
    q->pending = -1;
    qp_chat_free(q->chat);
    q->chat = NULL;
}

const char *qrun_context_advice(const struct qrun *q, int64_t needed, char *buf, size_t size) {
    int64_t max_ctx = q->plan->limits.max_ctx, trained = q->plan->hparams.n_ctx_train;
    if (needed <= max_ctx) {
        snprintf(buf, size, "raise -c (up to the plan's %lld)", (long long)max_ctx);
    } else if (max_ctx >= trained) {
        snprintf(buf, size, "the plan already holds the model's whole trained context (%lld positions)",
                 (long long)trained);
    } else if (needed > trained) {
        snprintf(buf, size, "the largest plan for this model holds %lld positions, its trained context "
                            "(qplan compile %s --ctx %lld -o %s)",
                 (long long)trained, q->model_path, (long long)trained, q->plan_path);
    } else {
        /* at least twice this plan, in steps of 1024, within the trained context */
        int64_t want = needed > 2 * max_ctx ? needed : 2 * max_ctx;
        want = (want + 1023) / 1024 * 1024;
        if (want > trained) want = trained;
        snprintf(buf, size, "the plan holds %lld positions: compile a larger one (qplan compile %s "
                            "--ctx %lld -o %s)",
                 (long long)max_ctx, q->model_path, (long long)want, q->plan_path);
    }
    return buf;
}

int64_t qrun_n_ctx(const struct qrun *q) { return q->n_ctx; }
int64_t qrun_pos(const struct qrun *q) { return q->pos; }
int32_t qrun_n_vocab(const struct qrun *q) { return (int32_t)q->plan->hparams.n_vocab; }
const char *qrun_device(const struct qrun *q) { return qp_exec_backend_name(q->exec); }
const char *qrun_model_path(const struct qrun *q) { return q->model_path; }
const char *qrun_chat_template(const struct qrun *q) { return q->chat_template; }
void qrun_device_info(const struct qrun *q, int32_t *sm, int32_t *sms, char *name, size_t n) {
    qp_exec_device(q->exec, sm, sms, name, n);
}
struct qp_tokenizer *qrun_tokenizer(struct qrun *q) { return q->tok; }
double qrun_load_seconds(const struct qrun *q) { return q->load_s; }

/* Feeds ids at positions q->pos.. in chunks of max_chunk; g (may be NULL) gives the interrupt
 * flag and the progress callback. */
static enum qp_status feed(struct qrun *q, const int32_t *ids, size_t n,
                           const struct qrun_gen_options *g, bool *interrupted,
                           struct qp_error *err) {
    int64_t chunk = q->plan->limits.max_chunk;
    double t0 = now_s();
    bool report = g && g->on_prefill;
    if (report) g->on_prefill(g->prefill_user, 0, (int64_t)n, 0.0);
    for (size_t i = 0; i < n;) {
        if (g && g->interrupt && *g->interrupt) {
            *interrupted = true;
            return QP_OK;
        }
        int32_t m = (int32_t)((int64_t)(n - i) < chunk ? (int64_t)(n - i) : chunk);
        enum qp_status s = qp_exec_forward(q->exec, ids + i, m, q->pos, err);
        if (s != QP_OK) return s;
        q->pos += m;
        i += (size_t)m;
        if (report) g->on_prefill(g->prefill_user, (int64_t)i, (int64_t)n, now_s() - t0);
    }
    return QP_OK;
}

enum qp_status qrun_eval(struct qrun *q, const int32_t *ids, size_t n, int64_t pos,
                         const float **logits, struct qp_error *err) {
    if (n == 0) return qp_error_set(err, QP_ERR_INVALID, "eval: no tokens");
    if (q->n_seqs > 0)
        return qp_error_set(err, QP_ERR_INVALID, "eval: %d sequences are open (qrun_seq_open): close them first",
                            q->n_seqs);
    if (pos < 0 || pos > q->n_ctx || (int64_t)n > q->n_ctx - pos)
        return qp_error_set(err, QP_ERR_RANGE, "eval: %zu tokens at position %lld do not fit the context (%lld)",
                            n, (long long)pos, (long long)q->n_ctx);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= q->plan->hparams.n_vocab)
            return qp_error_set(err, QP_ERR_RANGE, "eval: token %d at %zu is outside the vocabulary", ids[i], i);
    q->pos = pos;
    q->pending = -1;
    bool intr = false;
    enum qp_status s = feed(q, ids, n, NULL, &intr, err);
    if (s != QP_OK) return s;
    return qp_exec_logits(q->exec, logits, err);
}

enum qp_status qrun_generate_tokens(struct qrun *q, const int32_t *ids_in, size_t n_in,
                                    const struct qrun_gen_options *g, qrun_token_fn cb, void *user,
                                    struct qrun_stats *stats, struct qp_error *err) {
    struct qrun_stats st = {0};
    double t0 = now_s();
    if (q->n_seqs > 0)
        return qp_error_set(err, QP_ERR_INVALID, "generate: %d sequences are open (qrun_seq_open): close them first",
                            q->n_seqs);
    if (!g->keep_context) {
        q->pos = 0;
        q->pending = -1;
    }
    /* a chat reply stopped before its end token left its last token unfed: feed it first */
    int32_t pend = q->pending;
    q->pending = -1;
    size_t n = n_in + (pend >= 0 ? 1 : 0);
    if (n == 0) return qp_error_set(err, QP_ERR_INVALID, "empty prompt: nothing to generate from");
    if ((int64_t)n > q->n_ctx - q->pos) {
        char advice[QP_ERROR_MSG_MAX];
        qrun_context_advice(q, q->pos + (int64_t)n, advice, sizeof advice);
        return qp_error_set(err, QP_ERR_RANGE,
                            "the prompt (%zu tokens) does not fit the context: %lld positions, %lld "
                            "used; %s, or shorten the prompt",
                            n, (long long)q->n_ctx, (long long)q->pos, advice);
    }
    int32_t nv = (int32_t)q->plan->hparams.n_vocab;
    for (size_t i = 0; i < n_in; i++)
        if (ids_in[i] < 0 || ids_in[i] >= nv)
            return qp_error_set(err, QP_ERR_RANGE, "prompt token %d at %zu is outside the vocabulary (%d)",
                                ids_in[i], i, nv);
    int32_t *ids = NULL;
    struct qp_gen gen;
    int64_t n_decode_total = 0;
    enum qp_status s = qp_gen_init(&gen, q->tok, nv, &g->sampling, g->n_predict, g->stop, g->n_stop, err);
    if (s != QP_OK) goto done;
    ids = malloc(n * sizeof *ids);
    if (!ids) {
        s = qp_error_set(err, QP_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (pend >= 0) ids[0] = pend;
    if (n_in) memcpy(ids + (pend >= 0), ids_in, n_in * sizeof *ids);
    for (size_t i = 0; i < n; i++) qp_gen_prompt(&gen, ids[i]);

    bool intr = false;
    s = feed(q, ids, n, g, &intr, err);
    if (s != QP_OK) goto done;
    st.n_prompt = (int64_t)n;
    st.t_prompt_s = now_s() - t0;
    if (intr) {
        st.stop = QRUN_STOP_INTERRUPT;
        goto done;
    }
    if (g->n_predict == 0) {
        st.stop = QRUN_STOP_LENGTH;
        goto done;
    }
    bool device_greedy = g->greedy_on_device && qp_sampler_params_greedy(&g->sampling) &&
                         qp_exec_has_argmax(q->exec);
    double tg0 = 0.0;
    int64_t n_decode = 0;
    for (;;) {
        int32_t tok;
        if (device_greedy) {
            s = qp_exec_argmax(q->exec, &tok, err);
        } else {
            const float *lg;
            s = qp_exec_logits(q->exec, &lg, err);
            if (s == QP_OK) tok = qp_gen_sample(&gen, lg);
        }
        if (s != QP_OK) goto done;
        if (st.n_gen == 0 && n_decode == 0) {
            st.t_first_s = now_s() - t0;
            tg0 = now_s();
        }
        enum qrun_stop why;
        const char *txt;
        size_t tl;
        s = qp_gen_take(&gen, tok, &why, &txt, &tl, err);
        if (s != QP_OK) goto done;
        if (why == QRUN_STOP_EOG) {
            st.stop = why;
            break;
        }
        st.n_gen++;
        q->pending = tok; /* not yet in the cache */
        int rc = cb ? cb(user, tok, txt, tl) : 0;
        if (why == QRUN_STOP_STRING || rc || why == QRUN_STOP_LENGTH) {
            st.stop = why == QRUN_STOP_STRING ? why : rc ? QRUN_STOP_CALLBACK : why;
            break;
        }
        if (g->interrupt && *g->interrupt) {
            st.stop = QRUN_STOP_INTERRUPT;
            break;
        }
        if (q->pos >= q->n_ctx) {
            st.stop = QRUN_STOP_CONTEXT;
            break;
        }
        s = qp_exec_forward(q->exec, &tok, 1, q->pos, err);
        if (s != QP_OK) goto done;
        q->pos++;
        q->pending = -1;
        n_decode++;
        n_decode_total = n_decode;
    }
    st.t_gen_s = n_decode ? now_s() - tg0 : 0.0;
    if (st.stop != QRUN_STOP_STRING) {
        const char *txt;
        size_t tl;
        qp_gen_flush(&gen, &txt, &tl);
        if (tl && cb) cb(user, -1, txt, tl);
    }
done:
    st.pos = q->pos;
    st.n_decode = n_decode_total;
    if (stats) *stats = st;
    free(ids);
    qp_gen_free(&gen);
    return s;
}

enum qp_status qrun_generate(struct qrun *q, const char *prompt, const struct qrun_gen_options *g,
                             qrun_token_fn cb, void *user, struct qrun_stats *stats,
                             struct qp_error *err) {
    int32_t *ids = NULL;
    size_t n = 0;
    enum qp_status s = qp_tokenizer_encode(q->tok, prompt, strlen(prompt), g->parse_special, &ids, &n, err);
    if (s != QP_OK) return s;
    if (qp_tokenizer_add_bos(q->tok) && qp_tokenizer_bos(q->tok) >= 0 && !g->keep_context) {
        int32_t *b = malloc((n + 1) * sizeof *b);
        if (!b) {
            free(ids);
            return qp_error_set(err, QP_ERR_NOMEM, "out of memory");
        }
        b[0] = qp_tokenizer_bos(q->tok);
        if (n) memcpy(b + 1, ids, n * sizeof *b);
        free(ids);
        ids = b;
        n++;
    }
    s = qrun_generate_tokens(q, ids, n, g, cb, user, stats, err);
    free(ids);
    return s;
}

enum qp_status qrun_chat_turn(struct qrun *q, const char *system, const char *user_msg,
                              const struct qrun_gen_options *g, qrun_token_fn cb, void *user,
                              struct qrun_stats *stats, struct qp_error *err) {
    if (q->n_seqs > 0)
        return qp_error_set(err, QP_ERR_INVALID, "chat: %d sequences are open (qrun_seq_open): close them first",
                            q->n_seqs);
    if (!q->chat) {
        enum qp_status s = qp_chat_init(q->chat_template, system, &q->chat, err);
        if (s != QP_OK) return s;
        q->pos = 0;
        q->pending = -1;
    }
    const char *text = qp_chat_next_turn(q->chat, user_msg, err);
    if (!text) return QP_ERR_NOMEM;
    struct qrun_gen_options gg = *g;
    gg.parse_special = true;
    gg.keep_context = qp_chat_turns(q->chat) > 1;
    return qrun_generate(q, text, &gg, cb, user, stats, err);
}

int32_t qrun_node_kernels(const struct qrun *q, struct qrun_node_kernel *out, int32_t max) {
    const struct qp_plan *p = q->plan;
    int32_t n = 0;
    for (int32_t k = 0; k < p->n_programs; k++)
        for (int32_t i = 0; i < p->programs[k].n_nodes; i++, n++) {
            if (n >= max) continue;
            const struct qp_plan_node *nd = &p->programs[k].nodes[i];
            const int32_t ran = qp_exec_kernel_ran(q->exec, k, i);
            const struct qp_op_desc *od = qp_op_desc(nd->op);
            const struct qp_kernel_desc *kd = qp_kernel_desc(ran);
            out[n] = (struct qrun_node_kernel){
                .program = p->programs[k].name,
                .node = i,
                .line = nd->line,
                .op = od ? od->name : "?",
                .out = nd->out >= 0 ? p->buffers[nd->out].name : "",
                .kernel = nd->kernel,
                .ran = ran < 0 ? NULL : kd ? kd->name : "reference",
                .launch = nd->launch,
            };
        }
    return n;
}

void qrun_print_kernels(const struct qrun *q, FILE *f) {
    const int32_t n = qrun_node_kernels(q, NULL, 0);
    struct qrun_node_kernel *r = calloc((size_t)n + 1, sizeof *r);
    if (!r) return;
    qrun_node_kernels(q, r, n);
    fprintf(f, "qrun: kernels on %s (program node op -> out: plan kernel {block, rows_per_block, split, grid, "
            "pdl}, what ran; nodes of programs that did not run are left out)\n", qrun_device(q));
    for (int32_t i = 0; i < n; i++) {
        if (!r[i].ran) continue;
        const struct qp_launch *l = &r[i].launch;
        fprintf(f, "  %-13s %3d %-9s -> %-5s %-12s {%d, %d, %d, %d, %d}  ran %s  (line %d)\n", r[i].program,
                r[i].node, r[i].op, r[i].out, r[i].kernel, l->block, l->rows_per_block, l->split, l->grid,
                l->pdl, r[i].ran, r[i].line);
    }
    free(r);
}
