/* qp_tokenizer.h — the byte-level BPE tokenizer read from a GGUF vocabulary, its
 * streaming detokenizer, and the `qrun --tokenize / --detokenize` helpers.
 *
 * Pipeline (docs/tokenizer.md): text (valid UTF-8) ▸ split out special tokens as whole
 * strings (leftmost, longest first; control tokens only with parse_special, user-defined
 * tokens always, as Hugging Face and llama.cpp do) ▸ pre-tokenizer regex chosen by
 * `tokenizer.ggml.pre` (PCRE2, Unicode properties) ▸ each piece's bytes as GPT-2 byte-level
 * symbols ▸ BPE merges, lowest rank first, ties to the left ▸ ids. Every byte has a token and
 * every merge result is a token (both checked at load), so every piece encodes: the byte
 * fallback is structural.
 *
 * Threads: a tokenizer is read-only after load except for its word cache and regex scratch,
 * which qp_tokenizer_encode updates: do not encode on one tokenizer from two threads at once.
 * Everything else (token_bytes, is_eog, detokenizers) only reads it.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "qp_gguf.h"
#include "qp_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* tokenizer.ggml.token_type values (llama.cpp's). */
enum qp_token_type {
    QP_TOKEN_UNDEFINED = 0,
    QP_TOKEN_NORMAL = 1,
    QP_TOKEN_UNKNOWN = 2,
    QP_TOKEN_CONTROL = 3,      /* <|im_start|>, <|endoftext|>: matched only with parse_special */
    QP_TOKEN_USER_DEFINED = 4, /* <tool_call>: always matched as a whole string */
    QP_TOKEN_UNUSED = 5,       /* [PAD151665]: never produced by encode */
    QP_TOKEN_BYTE = 6,
};

struct qp_tokenizer;

/* Builds a tokenizer from g's tokenizer.ggml.* keys: model (must be "gpt2"), pre (a
 * pre-tokenizer this build knows: "qwen2", ...), tokens (array of strings), token_type
 * (optional: array of integers, one per token, values 0..6; absent means all normal), merges
 * (array of "left right" strings; rank = index), bos/eos/padding/eot token ids (optional, each
 * in [0, n_vocab)), add_bos_token (optional bool, default false). Everything is copied: g may be
 * closed afterwards. On failure returns QP_ERR_FORMAT / QP_ERR_UNSUPPORTED / QP_ERR_NOMEM with
 * err naming the file, the key and the entry, and leaves *out NULL. */
enum qp_status qp_tokenizer_load(const struct qp_gguf *g, struct qp_tokenizer **out,
                                 struct qp_error *err);

/* Opens path (header only is enough: a vocabulary-only GGUF works), loads, closes. */
enum qp_status qp_tokenizer_load_file(const char *path, struct qp_tokenizer **out,
                                      struct qp_error *err);

void qp_tokenizer_free(struct qp_tokenizer *t); /* NULL is fine */

/* Tokenizes text[0..len) (must be valid UTF-8: QP_ERR_INVALID naming the byte otherwise).
 * parse_special: control tokens' text becomes those tokens (chat mode); otherwise it is
 * tokenized as ordinary text. No BOS is added here (see qp_tokenizer_add_bos). On success
 * *ids is a malloc'd array the caller frees (NULL when *n == 0). Not thread-safe per
 * tokenizer (it updates the word cache). */
enum qp_status qp_tokenizer_encode(struct qp_tokenizer *t, const char *text, size_t len,
                                   bool parse_special, int32_t **ids, size_t *n,
                                   struct qp_error *err);

int32_t qp_tokenizer_n_vocab(const struct qp_tokenizer *t);
const char *qp_tokenizer_pre(const struct qp_tokenizer *t); /* "qwen2" */

/* The raw bytes a token stands for (a normal token's byte-level text decoded; a special
 * token's text as is; empty for unused tokens). NULL (and *len 0) when id is out of range.
 * Not NUL-terminated; valid until qp_tokenizer_free. A token may hold part of a UTF-8
 * character: use a detokenizer to print. */
const char *qp_tokenizer_token_bytes(const struct qp_tokenizer *t, int32_t id, size_t *len);

/* The token's string as the vocabulary stores it (byte-level form for normal tokens:
 * "Ġworld"). NULL when out of range. */
const char *qp_tokenizer_token_text(const struct qp_tokenizer *t, int32_t id, size_t *len);

/* enum qp_token_type of id; QP_TOKEN_UNDEFINED when out of range. */
enum qp_token_type qp_tokenizer_token_type(const struct qp_tokenizer *t, int32_t id);

/* Control or user-defined token. */
bool qp_tokenizer_is_special(const struct qp_tokenizer *t, int32_t id);

/* End of generation: the EOS id, the EOT id if the file names one, and every control token
 * whose text is an end-of-turn / end-of-text / FIM pad / repo / file separator marker
 * (<|im_end|>, <|endoftext|>, <|fim_pad|>, <|repo_name|>, <|file_sep|>, <|eot_id|>, ...). */
bool qp_tokenizer_is_eog(const struct qp_tokenizer *t, int32_t id);

/* The id whose vocabulary string is exactly text (NUL-terminated), e.g. "<|im_start|>";
 * -1 when there is none. */
int32_t qp_tokenizer_find(const struct qp_tokenizer *t, const char *text);

int32_t qp_tokenizer_bos(const struct qp_tokenizer *t); /* -1 when the file names none */
int32_t qp_tokenizer_eos(const struct qp_tokenizer *t); /* -1 when the file names none */
int32_t qp_tokenizer_pad(const struct qp_tokenizer *t); /* -1 when the file names none */
bool qp_tokenizer_add_bos(const struct qp_tokenizer *t); /* tokenizer.ggml.add_bos_token */

/* ---- UTF-8 ---- */

/* True when s[0..n) is valid UTF-8 (no overlongs, surrogates or values above U+10FFFF).
 * Otherwise false and *bad_at (when non-NULL) = offset of the first byte of the first
 * invalid sequence. */
bool qp_utf8_validate(const char *s, size_t n, size_t *bad_at);

/* ---- streaming detokenizer ---- */

enum qp_detok_flags {
    QP_DETOK_DEFAULT = 0,
    /* Control and unused tokens print nothing (user-defined ones like <tool_call> are content
     * and still print). */
    QP_DETOK_HIDE_SPECIAL = 1,
};

struct qp_detok;

/* A detokenizer over t (which must outlive it). NULL in *out and QP_ERR_NOMEM on failure. */
enum qp_status qp_detok_new(const struct qp_tokenizer *t, unsigned flags, struct qp_detok **out,
                            struct qp_error *err);
void qp_detok_free(struct qp_detok *d); /* NULL is fine */

/* Feeds one id. *out / *len: bytes ready to print, always complete valid UTF-8 (possibly
 * none): an incomplete multi-byte character is held until its remaining bytes arrive, and
 * each maximal invalid subsequence becomes U+FFFD (as Python's errors="replace"). *out stays
 * valid until the next call on d. QP_ERR_RANGE for an id outside the vocabulary (state kept). */
enum qp_status qp_detok_push(struct qp_detok *d, int32_t id, const char **out, size_t *len,
                             struct qp_error *err);

/* Ends the stream: held bytes of an unfinished character become U+FFFD. Resets d. */
void qp_detok_flush(struct qp_detok *d, const char **out, size_t *len);

/* Whole sequence: ids ▸ text (valid UTF-8), a malloc'd NUL-terminated string the caller
 * frees; *len excludes the NUL. QP_ERR_RANGE naming the position for an id out of range. */
enum qp_status qp_tokenizer_decode(const struct qp_tokenizer *t, const int32_t *ids, size_t n,
                                   unsigned flags, char **out, size_t *len,
                                   struct qp_error *err);

/* ---- qrun --tokenize / --detokenize ---- */

/* `qrun --tokenize TEXT`: encodes text (parse_special as given) and prints to out one line of
 * ids separated by spaces; with verbose, then one line per token: id, TAB, the token's bytes
 * with non-printable bytes and backslash escaped as \xHH / \\ / \n / \t / \r. */
enum qp_status qp_tokenize_cmd(struct qp_tokenizer *t, const char *text, bool parse_special,
                               bool verbose, FILE *out, struct qp_error *err);

/* `qrun --detokenize IDS`: ids as decimal integers separated by spaces and/or commas
 * (brackets allowed: "[9707, 11, 1879]"); prints the decoded text (special tokens shown)
 * and a newline. QP_ERR_INVALID naming the offending text for anything else, QP_ERR_RANGE
 * for an id outside the vocabulary. */
enum qp_status qp_detokenize_cmd(const struct qp_tokenizer *t, const char *ids, FILE *out,
                                 struct qp_error *err);

#ifdef __cplusplus
}
#endif
