/* qwen2_ref.h — the reference forward pass (the oracle): a short, readable Qwen2 forward step
 * over a GGUF file, written straight from the architecture, independent of plans and of the
 * kernels/cpu op library. Plan execution on every backend is tested against it; it is itself
 * tested against scripts/numpy_forward.py (float64 numpy, the `gguf` package's dequantization).
 *
 * It uses only the GGUF reader (qp_gguf) and row dequantization (qp_quant_dequant_row); all
 * arithmetic is its own. Two passes over the same weights:
 *   qp_ref_forward  fp32 with fp32 accumulation, one token per call, its own f32 KV cache;
 *                   weights dequantized a row at a time (slow, small);
 *   qp_ref_seq64    a whole sequence from an empty context in double precision (every
 *                   activation, sum, norm, softmax and RoPE angle), the weights dequantized
 *                   exactly (f32 values, widened): the precision reference of docs/fidelity.md.
 * Also: the compact expected-logits files (tests/data/reference/, NAME.logits) and their comparison.
 */
#pragma once
#include <stdint.h>

#include "qp_gguf.h"
#include "qp_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Hyperparameters as the oracle read them. */
struct qp_ref_config {
    int32_t n_layer;   /* qwen2.block_count */
    int32_t n_embd;    /* D: qwen2.embedding_length */
    int32_t n_head;    /* H: qwen2.attention.head_count */
    int32_t n_head_kv; /* K: qwen2.attention.head_count_kv (H % K == 0) */
    int32_t head_dim;  /* D / H, even */
    int32_t n_ff;      /* F: ffn_gate rows */
    int32_t n_vocab;   /* V: token_embd rows */
    int32_t n_ctx;     /* KV cache rows (the caller's choice) */
    float eps;         /* qwen2.attention.layer_norm_rms_epsilon */
    float rope_base;   /* qwen2.rope.freq_base (10000 when absent) */
    int tied_output;   /* 1 when output.weight is absent and token_embd is the LM head */
};

struct qp_ref;

/* Builds an oracle over an open GGUF (which must outlive it) with a KV cache of n_ctx
 * positions. Checks the architecture, every tensor's presence, shape and type (a type the
 * project cannot dequantize gets QP_ERR_UNSUPPORTED naming the tensor). On failure *out is
 * NULL and err says what and where. */
enum qp_status qp_ref_open(const struct qp_gguf *g, int32_t n_ctx, struct qp_ref **out,
                           struct qp_error *err);

/* One forward step: token at position pos (0 <= pos <= the number of positions already
 * filled, pos < n_ctx); writes its K and V into the cache at pos and the n_vocab logits of
 * the next token into logits. QP_ERR_RANGE for a bad token or position. */
enum qp_status qp_ref_forward(struct qp_ref *r, int32_t token, int32_t pos, float *logits,
                              struct qp_error *err);

const struct qp_ref_config *qp_ref_config(const struct qp_ref *r);

/* Receives the logits that follow position pos ([n_vocab] doubles, valid during the call).
 * Return nonzero to stop the pass (qp_ref_seq64 then returns QP_ERR_INTERRUPTED). */
typedef int (*qp_ref_row_fn)(void *user, int32_t pos, const double *logits);

/* What the double-precision pass rounds on purpose, to measure what an engine's storage
 * precision costs (docs/fidelity.md). Everything else stays double. */
enum qp_ref_rounding {
    QP_REF_EXACT = 0,     /* nothing */
    QP_REF_KV_F16 = 1,    /* K (after RoPE) and V stored as f16, as qrun's plans keep the cache */
    QP_REF_LLAMA_CPU = 2, /* KV_F16, and what llama.cpp's CPU backend also rounds: each matrix
                             product's input to its weight type's vec_dot type (q8_0 blocks of 32
                             for Q4_0..Q8_0, q8_K blocks of 256 for the K-quants, f16 for F16,
                             f32 otherwise), and flash attention's f16 query and f16 running sum
                             of V */
};

/* The double-precision pass: tokens[0..n) at positions 0..n-1 from an empty context (1 <= n
 * <= n_ctx), then row(user, p, logits) for p = first .. n-1 in order. n_threads >= 1 threads
 * split every matrix product and the attention heads; each output is summed in one fixed
 * order, so results do not depend on n_threads. Uses its own buffers (allocated per call,
 * ~100 MB for n = 512 and the 0.5B model's vocabulary); does not touch qp_ref_forward's cache.
 * QP_ERR_RANGE for a bad token, n or first; QP_ERR_NOMEM. */
enum qp_status qp_ref_seq64(struct qp_ref *r, const int32_t *tokens, int32_t n, int32_t first,
                            int n_threads, enum qp_ref_rounding rounding, qp_ref_row_fn row,
                            void *user, struct qp_error *err);

void qp_ref_free(struct qp_ref *r); /* NULL is fine */

/* ---- expected logits (scripts/numpy_forward.py output) ---- */

/* One file: the token sequence, and per entry (pos, id, logit); top1[p] the argmax at p. */
struct qp_ref_expected {
    char model[256];   /* base name of the model file it was made from */
    uint64_t file_bytes; /* size of the model file; 0 when not recorded */
    uint64_t fnv1a64;  /* of the whole model file; 0 when not recorded */
    int has_fnv;
    char meta[1024];   /* the first "meta" line ("" when none) */
    int32_t n_tok;
    int32_t *tokens;   /* [n_tok] */
    int32_t n_vocab;
    int32_t *top1;     /* [n_tok] */
    int64_t n_entries;
    int32_t *pos;      /* [n_entries] */
    int32_t *id;       /* [n_entries] */
    double *logit;     /* [n_entries] */
};

/* Parses path into *e (zeroed first). QP_ERR_FORMAT with the line number on a bad line. */
enum qp_status qp_ref_expected_read(const char *path, struct qp_ref_expected *e,
                                    struct qp_error *err);
void qp_ref_expected_free(struct qp_ref_expected *e);

/* The comparison of computed logits ([n_tok][n_vocab] f32) against the expected entries. */
struct qp_ref_compare {
    double max_abs;     /* max |computed - expected| over all entries */
    double max_rel;     /* max over positions of (max abs error at p) / (max |expected| at p) */
    int32_t worst_pos;  /* where max_rel occurs */
    int32_t worst_id;   /* id of the largest error at worst_pos */
    int32_t top1_agree; /* positions whose argmax equals the expected top1 */
};

/* Fills *c. logits must hold e->n_tok rows of e->n_vocab floats. */
void qp_ref_compare(const struct qp_ref_expected *e, const float *logits,
                    struct qp_ref_compare *c);

/* 64-bit FNV-1a of a whole file (what numpy_forward.py records). QP_ERR_IO when unreadable. */
enum qp_status qp_ref_file_fnv1a64(const char *path, uint64_t *out, struct qp_error *err);

#ifdef __cplusplus
}
#endif
