/* qp_synth.h — synthetic models: valid GGUF files of random but well-scaled weights, with the
 * shape of a real model (copied from its header) or a tiny Qwen2 shape from parameters, and
 * the header-only extraction that carries a real model's shape where its data cannot go.
 *
 * Data: every tensor from its own deterministic stream (seed, tensor index), so the bytes of a
 * synthetic model depend only on the seed and the tensor table — the same on every machine
 * (integer RNG, IEEE single arithmetic without libm). Tensors are generated one at a time
 * while the file is written (streamed): memory stays at the largest tensor, not the model.
 * Scales, chosen so that a forward pass stays O(1) and logits land in O(1..10):
 *   norm weights (*_norm.weight)      mean 1, standard deviation 0.1
 *   biases (*.bias)                   mean 0, sd 0.1
 *   token_embd / output (rows = vocab) mean 0, sd clamp(3/sqrt(cols), 0.05, 1)
 *   every other matrix                mean 0, sd 1/sqrt(cols)
 * F32/F16/BF16 values are written directly; quantized types as valid random blocks of that
 * standard deviation (qp_quant_random_row), mean 0 (a quantized norm weight gets mean 0).
 * Files are written atomically (qp_gguf_write.h). Implemented in compiler/synth.c.
 */
#pragma once
#include <stdint.h>

#include "qp_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A Qwen2 shape from parameters (qplan synth --arch qwen2 ...). */
struct qp_synth_arch {
    int32_t n_layer, n_embd, n_head, n_head_kv, n_ff, n_vocab; /* n_vocab 0: from vocab_path */
    int32_t n_ctx;      /* qwen2.context_length written (0: 4096) */
    float rope_base;    /* 0: 1e6 (Qwen2.5) */
    float eps;          /* 0: 1e-6 */
    /* Tensor types: comma-separated RULE=TYPE, applied in order (later wins) to every tensor.
     * RULE is '*' (every 2-D weight matrix), a role as in tensor names (attn_q, attn_k, attn_v,
     * attn_output, ffn_gate, ffn_up, ffn_down, token_embd, output, attn_norm, ffn_norm,
     * output_norm, attn_q.bias, ...) or a full name without ".weight" (blk.1.ffn_down). TYPE is a
     * GGML type name (f32, q4_k, ...), or "tied" for output (no output.weight: the LM head is
     * token_embd). Defaults: matrices Q8_0, norms and biases F32, a separate output. NULL = "". */
    const char *types;
    /* A GGUF whose tokenizer.* keys are copied (a real vocabulary); NULL: a tiny byte-level
     * gpt2 vocabulary (pre qwen2: 256 byte tokens in GPT-2 byte-unicode order, 14 merges,
     * <|endoftext|>, <|im_start|>, <|im_end|>, then [PADn] tokens up to n_vocab >= 273). */
    const char *vocab_path;
};

/* Writes a synthetic Qwen2 model of shape a to out_path. QP_ERR_INVALID names the bad
 * parameter or types rule (a row length that is not a multiple of the type's block size). */
enum qp_status qp_synth_write_arch(const struct qp_synth_arch *a, uint64_t seed,
                                   const char *out_path, struct qp_error *err);

/* Writes a synthetic model with exactly the metadata (every key, in order) and tensor table
 * (names, shapes, types, order, offsets) of like_path, which may be header-only. */
enum qp_status qp_synth_write_like(const char *like_path, uint64_t seed, const char *out_path,
                                   struct qp_error *err);

/* Writes model_path's header (metadata and tensor table, no data) to out_path: a file that
 * qp_gguf_open reads with QP_GGUF_HEADER_ONLY and qp_synth_write_like accepts. */
enum qp_status qp_synth_write_header(const char *model_path, const char *out_path,
                                     struct qp_error *err);

#ifdef __cplusplus
}
#endif
