/* qrun_internal.h — struct qrun, shared by the files of libqrun that work on an open runtime
 * (qrun.c: loading and generation; tune.c: qplan tune's measurements). Not a public header. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "executor.h"
#include "qp_chat.h"
#include "qp_gguf.h"
#include "qp_plan.h"
#include "qp_tokenizer.h"

struct qrun {
    struct qp_plan *plan;
    struct qp_gguf *gguf;
    struct qp_exec *exec;
    struct qp_tokenizer *tok;
    struct qp_chat *chat;
    char *chat_template; /* copy; NULL when the model has none */
    char *model_path;
    char *plan_path;
    int64_t n_ctx;
    int64_t pos;
    int32_t pending;     /* a generated token not yet fed to the cache (chat), -1 none */
    double load_s;
    char bar[128];       /* the loading bar's text as last drawn ("" before the first) */
    double bar_t;        /* when it was drawn */
    bool bar_ended;      /* its line was ended with a newline */
    /* the scheduler (sched.c): sized by the plan's slots at open */
    int32_t n_slots;
    int32_t step_tokens;          /* prompt tokens a step runs at most */
    struct qrun_seq **slot_seq;   /* [n_slots] the sequence in each slot, NULL when free */
    int32_t n_seqs;               /* open sequences */
    uint64_t next_ticket;         /* prefill turns: each chunk sends its sequence to the back of the line */
    struct qp_step_row *rows;     /* [n_slots] a decode step's rows */
    struct qrun_seq **row_seq;    /* [n_slots] the sequence of each row */
    int32_t *row_tok;             /* [n_slots] the argmax of each row */
    bool *was_decoding;           /* [n_slots] the slot's sequence was generating when the step began */
};

/* The scheduler's part of qrun_open and qrun_close (sched.c). */
enum qp_status qrun_sched_init(struct qrun *q, int32_t step_tokens, struct qp_error *err);
void qrun_sched_free(struct qrun *q);
