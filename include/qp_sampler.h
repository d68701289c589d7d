/* qp_sampler.h — picks the next token from a row of logits: greedy, temperature, top-k, top-p,
 * min-p and a repetition penalty, with a seeded generator so that the same seed, options and
 * logits give the same tokens.
 *
 * Order of the steps (llama.cpp's default chain): repetition penalty ▸ top-k ▸ top-p ▸ min-p ▸
 * temperature ▸ draw. Greedy (temp <= 0) is the penalty then argmax (first index wins ties).
 *   - repetition penalty (llama.cpp semantics): every distinct token among the last
 *     repeat_last_n accepted tokens has its logit divided by the penalty when positive and
 *     multiplied by it when negative (once, however often it occurs); then, as llama.cpp applies
 *     OpenAI's two in the same step over the same window, freq_penalty times its count and
 *     presence_penalty once are subtracted;
 *   - top-k keeps the k largest logits (ties: lower id first);
 *   - top-p keeps the smallest prefix of the candidates, sorted by logit, whose softmax
 *     probabilities (at temperature 1) sum to at least p;
 *   - min-p keeps the candidates whose probability is at least min_p times the largest;
 *   - temperature divides the logits; the draw is from their softmax.
 * At least one candidate always remains.
 *
 * Generator: xoshiro256** (Blackman & Vigna), its state seeded from the 64-bit seed through
 * splitmix64; a uniform double in [0, 1) from the top 53 bits of each output.
 *
 * Memory: every buffer is sized once by the vocabulary at init; sampling allocates nothing.
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "qp_status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct qp_sampler_params {
    float temp;            /* <= 0: greedy */
    int32_t top_k;         /* <= 0 or >= vocab: off */
    float top_p;           /* >= 1: off; must be > 0 */
    float min_p;           /* <= 0: off; must be <= 1 */
    float repeat_penalty;  /* 1: off; must be > 0 */
    int32_t repeat_last_n; /* window of the penalties, in accepted tokens (>= 0) */
    float freq_penalty;    /* OpenAI's frequency_penalty: minus count x this; 0: off */
    float presence_penalty;/* OpenAI's presence_penalty: minus this once per token present; 0: off */
    uint64_t seed;
};

/* llama.cpp's defaults: temp 0.8, top-k 40, top-p 0.95, min-p 0.05, penalty 1 (off) over 64. */
struct qp_sampler_params qp_sampler_defaults(void);

/* True when params make sampling the argmax of the logits (temp <= 0, no penalty): a backend
 * may then pick the token on the device. */
bool qp_sampler_params_greedy(const struct qp_sampler_params *p);

struct qp_sampler;

/* Creates a sampler for a vocabulary of n_vocab logits. QP_ERR_INVALID for out-of-range
 * parameters (message names the option), QP_ERR_NOMEM. */
enum qp_status qp_sampler_init(const struct qp_sampler_params *p, int32_t n_vocab,
                               struct qp_sampler **out, struct qp_error *err);
void qp_sampler_free(struct qp_sampler *s); /* NULL is fine */

/* Picks a token from logits [n_vocab] (not modified). Never fails on finite logits; NaN logits
 * are treated as -inf; all -inf gives token 0. Does not record the token: call accept. */
int32_t qp_sampler_sample(struct qp_sampler *s, const float *logits);

/* Records a token as generated or prompted (the penalty window). */
void qp_sampler_accept(struct qp_sampler *s, int32_t token);

/* Forgets the accepted tokens (a new conversation); the generator keeps its state. */
void qp_sampler_reset(struct qp_sampler *s);

/* Applies the repetition penalty of the current window to logits [n_vocab] in place. */
void qp_sampler_penalize(const struct qp_sampler *s, float *logits);

/* The generator alone: the next uniform double in [0, 1). */
double qp_sampler_uniform(struct qp_sampler *s);

#ifdef __cplusplus
}
#endif
