/* gen.h — what happens to each token one sequence generates, shared by qrun_generate and the
 * scheduler (runtime/sched.c): the stop rules (end of generation, token limit, stop strings),
 * the sampler and its penalty window, and the streamed text, valid UTF-8, held back while it may
 * be the start of a stop string. Internal to libqrun.
 *
 * Memory: qp_gen_init allocates the sampler (sized by the vocabulary), the detokenizer and the
 * held-text buffer; a token allocates nothing once the held text has reached its longest (a
 * stop string's length plus one token's text).
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qp_sampler.h"
#include "qp_status.h"
#include "qp_tokenizer.h"
#include "qrun.h"

struct qp_gen {
    const struct qp_tokenizer *tok;
    struct qp_sampler *smp;
    struct qp_detok *dt;
    char **stop;       /* [n_stop] copies of the stop strings */
    int n_stop;
    char *hold;        /* text not yet released */
    size_t hold_len, hold_cap;
    size_t out_len;    /* bytes of hold released by the last take (at its start) */
    int64_t n_predict; /* < 0: no limit */
    int64_t n_gen;     /* tokens taken (end-of-generation tokens not counted) */
    bool ignore_eog;   /* end-of-generation tokens are taken as any other (benchmarks: a fixed length) */
};

/* Sets g up for one generation; on failure g is left freeable (qp_gen_free). */
enum qp_status qp_gen_init(struct qp_gen *g, const struct qp_tokenizer *t, int32_t n_vocab,
                           const struct qp_sampler_params *sampling, int64_t n_predict, const char *const *stop,
                           int n_stop, struct qp_error *err);
void qp_gen_free(struct qp_gen *g);

/* Records a prompt token in the sampler's penalty window. */
void qp_gen_prompt(struct qp_gen *g, int32_t token);

/* Picks the next token from logits [n_vocab] with the sequence's sampler. */
int32_t qp_gen_sample(struct qp_gen *g, const float *logits);

/* Takes the token the model picked: *stop is why the generation ends here (QRUN_STOP_NONE: it goes
 * on; QRUN_STOP_EOG: tok is an end-of-generation token, not taken; QRUN_STOP_STRING: a stop
 * string appeared, neither it nor what follows is released; QRUN_STOP_LENGTH: tok was the last
 * n_predict allows) and text[0..*len) the bytes printable now (owned by g, valid until the next
 * call). */
enum qp_status qp_gen_take(struct qp_gen *g, int32_t tok, enum qrun_stop *stop, const char **text, size_t *len,
                           struct qp_error *err);

/* At the end of a generation that did not stop at a stop string: the rest of the held text (an
 * unfinished character as U+FFFD, text that turned out not to start a stop string). */
void qp_gen_flush(struct qp_gen *g, const char **text, size_t *len);
