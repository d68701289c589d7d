/* qrun.h — libqrun, the runtime as a C library (what the qrun CLI itself uses): open a
 * compiled plan with its GGUF weights, generate text with a token callback, close.
 *
 *   struct qrun *q; struct qp_error e;
 *   struct qrun_options o = qrun_options_default();
 *   if (qrun_open("plans/qwen2.5-0.5b.yaml", &o, &q, &e)) { fprintf(stderr, "%s\n", e.msg); ... }
 *   struct qrun_gen_options g = qrun_gen_options_default();
 *   qrun_generate(q, "Write a haiku about the sea", &g, on_text, user, &stats, &e);
 *   qrun_close(q);
 *
 * Memory: qrun_open allocates everything (one backend arena of the plan's arena_bytes holding
 * activations, KV cache and step state; the sampler's buffers sized by the vocabulary); a
 * generation allocates only the prompt's token array, never per token.
 * Threads: one struct qrun (with its sequences) is used by one thread at a time.
 *
 * Many sequences at once (a plan compiled with --slots N): qrun_seq_open takes a slot, append a
 * prompt, call qrun_step while anything runs, read each sequence's new tokens and text after each
 * step, close; see "Sequences" below.
 */
#pragma once
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <stdio.h>

#include "qp_ops.h"
#include "qp_sampler.h"
#include "qp_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QRUN_MAX_THREADS 256 /* QP_CPU_MAX_THREADS */

struct qrun_options {
    const char *model_path; /* -m: the GGUF; NULL = the plan's model.file next to the plan,
                               then in $QP_MODEL's folder and ~/.cache/qplan */
    const char *device;     /* "cpu", "cuda"; NULL = cuda when built and a GPU is present,
                               else cpu */
    int64_t n_ctx;          /* -c: positions usable (<= the plan's max_ctx); 0 = max_ctx */
    int32_t threads;        /* -t: the CPU backend's threads, the caller included, for the whole
                               process; at most QRUN_MAX_THREADS; 0 = as they are (one per
                               online processor unless an earlier qrun_open set a count) */
    bool no_graph;          /* --no-graph: launch decode eagerly */
    bool progress;          /* progress bar on stderr while weights load (redrawn when its
                               text changes, at most 10 times a second) */
    bool verbose;
    bool sync_each;         /* --sync-each: synchronise after every node (CUDA), so that a fault is
                               reported against its node */
    bool profile;           /* --profile: per-op device times of eager runs on stderr (CUDA) */
    int32_t step_tokens;    /* the scheduler's token budget: prompt tokens one qrun_step runs at
                               most (one chunk); 0 = the plan's max_chunk */
};
struct qrun_options qrun_options_default(void);

enum qrun_stop {
    QRUN_STOP_NONE,      /* still running (never returned) */
    QRUN_STOP_EOG,       /* the model emitted an end-of-generation token */
    QRUN_STOP_LENGTH,    /* -n tokens generated */
    QRUN_STOP_STRING,    /* a stop string appeared (it is not printed) */
    QRUN_STOP_CONTEXT,   /* the context is full: stopped before writing past the KV cache */
    QRUN_STOP_INTERRUPT, /* *interrupt became nonzero (Ctrl-C) */
    QRUN_STOP_CALLBACK,  /* the callback returned nonzero */
    QRUN_STOP_CANCEL,    /* qrun_seq_cancel */
};
const char *qrun_stop_str(enum qrun_stop r); /* "end of generation", "context full", ... */

struct qrun_gen_options {
    struct qp_sampler_params sampling;
    int64_t n_predict;               /* -n: tokens to generate at most; < 0 = no limit */
    const char *const *stop;         /* [n_stop] stop strings (not printed) */
    int n_stop;
    bool parse_special;              /* special-token text in the prompt becomes those tokens */
    bool keep_context;               /* continue the conversation in the KV cache (chat turns);
                                        false: start at position 0 */
    bool greedy_on_device;           /* greedy sampling reads the backend's argmax (default
                                        true); false reads the logits and argmaxes on the host */
    volatile sig_atomic_t *interrupt;/* stop cleanly when it becomes nonzero; may be NULL */
    /* Prompt progress, for a display: called before the prompt's first chunk and after each,
     * with the prompt tokens evaluated so far (done of total) and the seconds since the prompt
     * began. May be NULL. */
    void (*on_prefill)(void *user, int64_t done, int64_t total, double seconds);
    void *prefill_user;
};
struct qrun_gen_options qrun_gen_options_default(void);

/* Called for every generated token: token id (-1 for a final flush of held text) and the
 * bytes now printable (valid UTF-8, possibly empty: text is held while it may be the start of
 * a stop string or of an unfinished character). Return nonzero to stop. */
typedef int (*qrun_token_fn)(void *user, int32_t token, const char *text, size_t len);

struct qrun_stats {
    int64_t n_prompt;      /* prompt tokens evaluated */
    int64_t n_gen;         /* tokens generated (the EOG token not counted) */
    int64_t pos;           /* positions in the KV cache afterwards */
    double t_prompt_s;     /* prefill time */
    int64_t n_decode;      /* decode steps run (generated tokens fed back) */
    double t_gen_s;        /* time of those decode steps, each with its sampling */
    double t_first_s;      /* time to first token, from the call */
    enum qrun_stop stop;
};

struct qrun;

/* Opens a plan: reads and validates it (the shared validator), finds its GGUF (see
 * model_path), checks the file's identity against the plan, maps it, binds the weights on the
 * chosen device, allocates the arena, loads the tokenizer. Errors name the file and problem. */
enum qp_status qrun_open(const char *plan_path, const struct qrun_options *o, struct qrun **out,
                         struct qp_error *err);
void qrun_close(struct qrun *q); /* NULL is fine */

/* Generates from a text prompt (tokenized with the model's tokenizer). Streams through cb;
 * fills stats (may be NULL). QP_ERR_RANGE when the prompt does not fit the context. A stop of
 * any kind (including interrupt and full context) is QP_OK with stats->stop saying which. */
enum qp_status qrun_generate(struct qrun *q, const char *prompt, const struct qrun_gen_options *g,
                             qrun_token_fn cb, void *user, struct qrun_stats *stats,
                             struct qp_error *err);

/* Same from token ids. */
enum qp_status qrun_generate_tokens(struct qrun *q, const int32_t *ids, size_t n,
                                    const struct qrun_gen_options *g, qrun_token_fn cb, void *user,
                                    struct qrun_stats *stats, struct qp_error *err);

/* Evaluates ids at positions pos..pos+n-1 (in chunks) and returns the logits of the last one
 * ([n_vocab], owned by q, valid until the next call). For tests and tools. */
enum qp_status qrun_eval(struct qrun *q, const int32_t *ids, size_t n, int64_t pos,
                         const float **logits, struct qp_error *err);

/* Chat: one user turn rendered with the model's ChatML template (system message on the first
 * turn: system, or the template's default when NULL), generated with keep_context so earlier
 * turns stay in the KV cache. QP_ERR_UNSUPPORTED when the model's template is not ChatML. */
enum qp_status qrun_chat_turn(struct qrun *q, const char *system, const char *user_msg,
                              const struct qrun_gen_options *g, qrun_token_fn cb, void *user,
                              struct qrun_stats *stats, struct qp_error *err);

/* The GGUF path a plan resolves to (model_override, else the plan's model.file next to the
 * plan, in $QP_MODEL's folder, in ~/.cache/qplan). *out is malloc'd. Reads the plan only. */
enum qp_status qrun_find_model(const char *plan_path, const char *model_override, char **out,
                               struct qp_error *err);

/* What to do when `needed` positions do not fit: "raise -c (up to the plan's M)" when the
 * plan's KV cache holds them; else, when the plan is smaller than the model's trained context,
 * the qplan command that compiles a larger one (--ctx at least twice the plan's, within the
 * trained context); else that the plan already holds the whole trained context. Writes one
 * clause, no final period, into buf and returns buf. */
const char *qrun_context_advice(const struct qrun *q, int64_t needed, char *buf, size_t size);

/* Forgets the conversation (position 0, chat turns, sampler window). */
void qrun_reset(struct qrun *q);

/* One plan node, and the kernel the backend launched for it the last time it ran. */
struct qrun_node_kernel {
    const char *program; /* the plan program's name */
    int32_t node;        /* index in the program */
    int line;            /* the node's line in the plan */
    const char *op, *out;
    const char *kernel;  /* the plan's kernel */
    const char *ran;     /* what the backend launched: a kernel name; "reference" for the CPU
                            backend's op; NULL when the node has not run */
    struct qp_launch launch;
};
/* Fills out[0 .. min(count, max)) with every node of every program, in plan order; returns the
 * count (out may be NULL with max 0). */
int32_t qrun_node_kernels(const struct qrun *q, struct qrun_node_kernel *out, int32_t max);
/* The same as a table on f (qrun -v prints it after generating): the nodes that ran. */
void qrun_print_kernels(const struct qrun *q, FILE *f);

/* --- Tuning: what `qplan tune` measures (runtime/tune.c) --- */

#define QRUN_TUNE_MAX_CHOICES 48

/* One kernel and launch shape tried on one node. */
struct qrun_tune_choice {
    int32_t kernel;          /* enum qp_kernel */
    struct qp_launch launch;
    double us;               /* device time of one run (eager launches), when ok */
    double err;              /* relative L2 difference of its outputs from the CPU op's */
    double tol;              /* its kernel's bound (qp_kernel_tolerance) */
    bool ok;                 /* ran, within the bound, and picked the same token where it picks one */
    char why[160];           /* when not ok: why */
};

struct qrun_tune_node {
    int32_t program, node;   /* in the plan */
    int line;                /* the node's line in the plan */
    int32_t n_tok;           /* tokens it ran with */
    int32_t n_choices;       /* choice[0] is the plan's own kernel and launch */
    struct qrun_tune_choice choice[QRUN_TUNE_MAX_CHOICES];
    int32_t best;            /* the fastest ok choice; -1 when none passed */
};
typedef void (*qrun_tune_fn)(void *user, const struct qrun_tune_node *r);

/* Runs every node of every program of q's plan on its own with each kernel and launch shape the
 * registry offers for it on q's device (qp_kernel_candidates), on the state a prefill of depth
 * tokens leaves, at the program's largest chunk; checks each against the CPU op on the same
 * inputs and times those that pass (reps runs per batch; 0: about 2 ms of runs). cb gets each
 * node's results. The runtime's cache is left holding the tuner's tokens (position 0 after). */
enum qp_status qrun_tune(struct qrun *q, int64_t depth, int reps, qrun_tune_fn cb, void *user,
                         struct qp_error *err);

/* --- Sequences: many at once (runtime/sched.c) ---
 *
 * A plan compiled with `qplan compile --slots N` keeps N sequences, each in a slot: its own region
 * of the KV cache (max_ctx positions; -c limits what a sequence may use) and its own positions.
 *
 *   struct qrun_seq *s; qrun_seq_open(q, &so, &s, &e);        takes a free slot
 *   qrun_seq_append_text(s, prompt, true, &e);                 queues its prompt
 *   while (qrun_step(q, &info, &e) == QP_OK && info.n_active > 0)
 *       for each open s: qrun_seq_read(s, &toks, &n, &text, &len); ... qrun_seq_state(s)
 *   qrun_seq_close(s);                                         frees the slot
 *
 * The scheduler (qrun_step): one step runs at most one prefill chunk (at most step_tokens of one
 * waiting prompt; waiting prompts take turns, chunk by chunk) and then one batched decode step of
 * every sequence that is generating (the plan's batch program for that many rows: each weight is
 * read once for all of them). A long prompt is thus spread over steps: it delays the others'
 * decoding by one chunk per step and a short prompt behind it by one chunk per prompt ahead. A sequence whose prompt ends in a step gets its first token from that
 * chunk and decodes from the next step on. Each decoding sequence gets one token per step.
 *
 * Sampling is per sequence (its own qp_sampler_params, seed, stop strings, token limit); greedy
 * sequences take the backend's argmax, the others read their row of logits.
 *
 * Limits, and what happens at them: opening more sequences than slots is QP_ERR_RANGE (nothing
 * changes; a server queues the request until one closes); a prompt that does not fit the
 * sequence's context is QP_ERR_RANGE from append (nothing queued); a sequence that reaches its
 * context while generating stops with QRUN_STOP_CONTEXT. No position past a sequence's context
 * is ever written, and sequences never see each other's cache.
 *
 * Memory: qrun_open sizes the scheduler by the plan's slots; qrun_seq_open allocates the
 * sequence (its sampler, detokenizer, output buffers); a step allocates nothing, except that
 * output left unread grows its buffer.
 *
 * Threads: q and its sequences are used by one thread at a time (a server runs qrun_step on one
 * thread and hands requests to it). While sequences are open, qrun_generate, qrun_eval and
 * qrun_chat_turn fail (they use slot 0); opening a sequence forgets their conversation. */

struct qrun_seq;

struct qrun_seq_options {
    struct qp_sampler_params sampling;
    int64_t n_predict;       /* tokens to generate at most per prompt; < 0 = no limit */
    const char *const *stop; /* [n_stop] stop strings (copied; never output) */
    int n_stop;
    bool greedy_on_device;   /* greedy sampling reads the backend's argmax (default true) */
    bool keep_logits;        /* qrun_seq_logits gives the logits of every token it picks */
    bool ignore_eog;         /* end-of-generation tokens do not stop it (they are generated as any
                                other token, their text hidden): a benchmark's fixed length */
};
struct qrun_seq_options qrun_seq_options_default(void);

enum qrun_seq_state {
    QRUN_SEQ_IDLE,    /* open, nothing queued */
    QRUN_SEQ_PREFILL, /* its prompt is (partly) waiting to run */
    QRUN_SEQ_DECODE,  /* generating */
    QRUN_SEQ_DONE,    /* stopped: qrun_seq_stop says why; append continues it */
};

struct qrun_step_info {
    int32_t n_prefill; /* prompt tokens this step ran (one sequence's chunk) */
    int32_t n_decode;  /* sequences this step decoded a token of */
    int32_t n_active;  /* sequences with work left (prefill or decode) after the step */
};

/* Opens a sequence in a free slot: QP_ERR_RANGE when all of the plan's slots are open,
 * QP_ERR_INVALID for bad options (the message names the option). */
enum qp_status qrun_seq_open(struct qrun *q, const struct qrun_seq_options *o, struct qrun_seq **out,
                             struct qp_error *err);
/* Closes it and frees its slot (NULL is fine); its output not yet read is lost. */
void qrun_seq_close(struct qrun_seq *s);

/* Queues prompt tokens; the next steps run them, then generate. On a stopped sequence it starts
 * a new turn of the same conversation (what it generated stays in its cache). QP_ERR_RANGE when
 * a token is outside the vocabulary or the tokens do not fit the sequence's context; QP_ERR_INVALID
 * while it is generating. Nothing is queued on error. */
enum qp_status qrun_seq_append(struct qrun_seq *s, const int32_t *ids, size_t n, struct qp_error *err);
/* The same with text (the model's tokenizer; special-token text becomes those tokens when
 * parse_special); the first prompt of a sequence gets the model's BOS where it asks for one. */
enum qp_status qrun_seq_append_text(struct qrun_seq *s, const char *text, bool parse_special, struct qp_error *err);

/* Starts a new request in s, which must not be running (IDLE or DONE; QP_ERR_INVALID otherwise):
 * options o replace s's, and the prompt ids[0..n) replaces its conversation, except that the
 * longest prefix of ids that s's cache already holds (what its earlier prompts and generations left
 * there) is kept and not run again; the prompt's last token always runs (its logits pick the first
 * token). *reused (may be NULL) gets the positions kept. No BOS is added. QP_ERR_RANGE when a token
 * is outside the vocabulary or n exceeds the context; QP_ERR_INVALID for bad options; QP_ERR_NOMEM.
 * On error s is unchanged. This is how a server reuses a slot's cache for a conversation's next
 * turn (its prompt repeats the earlier turns). */
enum qp_status qrun_seq_restart(struct qrun_seq *s, const struct qrun_seq_options *o, const int32_t *ids, size_t n,
                                int64_t *reused, struct qp_error *err);
/* How many leading tokens of ids[0..n) s's cache holds at the same positions (what qrun_seq_restart
 * would keep, before it keeps one back for the last token). */
int64_t qrun_seq_common_prefix(const struct qrun_seq *s, const int32_t *ids, size_t n);

/* One scheduler step (see above). With nothing to do it returns QP_OK with info all 0. A failure
 * (the device's, or memory) is returned as is, and the sequences the step ran are then in an
 * undefined state: close them. info may be NULL. */
enum qp_status qrun_step(struct qrun *q, struct qrun_step_info *info, struct qp_error *err);

/* What s generated since the last read: tokens[0..*n) and text[0..*len) (valid UTF-8, never a
 * stop string), owned by s and valid until the next qrun_step, read or close. The final text of a
 * stopped sequence (held characters) is in the read after the step it stopped in. */
void qrun_seq_read(struct qrun_seq *s, const int32_t **tokens, size_t *n, const char **text, size_t *len);

/* Stops s now (QRUN_STOP_CANCEL): nothing more runs for it and its queued prompt is dropped
 * (what already ran stays in its cache); it stays open until closed. */
void qrun_seq_cancel(struct qrun_seq *s);

enum qrun_seq_state qrun_seq_state(const struct qrun_seq *s);
enum qrun_stop qrun_seq_stop(const struct qrun_seq *s); /* QRUN_STOP_NONE unless DONE */
int32_t qrun_seq_slot(const struct qrun_seq *s);
int64_t qrun_seq_pos(const struct qrun_seq *s);   /* positions of its cache in use */
int64_t qrun_seq_n_gen(const struct qrun_seq *s); /* tokens generated for its last prompt */
/* With keep_logits: the logits its last picked token came from ([n_vocab], owned by s), NULL
 * before the first. */
const float *qrun_seq_logits(const struct qrun_seq *s);

int32_t qrun_slots(const struct qrun *q); /* sequences the plan holds at once */

int64_t qrun_n_ctx(const struct qrun *q);          /* usable positions */
int64_t qrun_pos(const struct qrun *q);            /* positions used */
int32_t qrun_n_vocab(const struct qrun *q);
const char *qrun_device(const struct qrun *q);     /* "cpu", "cuda" */
/* The device: compute capability x 10 and SMs (0 for the CPU), its name into name[n]. */
void qrun_device_info(const struct qrun *q, int32_t *sm, int32_t *sms, char *name, size_t n);
const char *qrun_model_path(const struct qrun *q);
/* The model's tokenizer.chat_template, NULL when it has none. Owned by q. */
const char *qrun_chat_template(const struct qrun *q);
struct qp_tokenizer *qrun_tokenizer(struct qrun *q);
double qrun_load_seconds(const struct qrun *q);

#ifdef __cplusplus
}
#endif
