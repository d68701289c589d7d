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
    int64_t n_ctx;
    int64_t pos;
    int32_t pending;     /* a generated token not yet fed to the cache (chat), -1 none */
    double load_s;
    bool progress_shown;
};
