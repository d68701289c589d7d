/* fuzz_tokenizer.c — libFuzzer target for the tokenizer: any bytes are encoded in both special
 * modes; invalid UTF-8 must be refused (QP_ERR_INVALID, in agreement with qp_utf8_validate) and
 * valid UTF-8 must encode to in-range ids that decode back to exactly the input — as a whole
 * (qp_tokenizer_decode) and streamed one id at a time (qp_detok_push + flush). A broken
 * property aborts (libFuzzer keeps the input).
 *
 * Vocabularies: a small byte-level one built in memory with qp_gguf_write.h (256 byte tokens,
 * a few merges, control / user-defined / unused specials: always present), and the real Qwen2
 * vocabulary when it is found ($QP_VOCAB, else QP_SHARED_DATA/qwen2-vocab.gguf). Each input
 * runs through every vocabulary loaded. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qp_gguf.h"
#include "qp_gguf_write.h"
#include "../gpt2_bytes.h"
#include "qp_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct qp_tokenizer *toks[2];
static int n_toks;
static void *small_blob; /* the in-memory vocabulary's bytes, kept for the process */

static void die(const char *what, const char *msg) {
    fprintf(stderr, "fuzz_tokenizer: %s: %s\n", what, msg ? msg : "");
    abort();
}

static struct qp_tokenizer *small_vocab(void) {
    enum { N_BYTE = 256 };
    static const char *const extra[] = {
        "\xC4\xA0" "t", "h" "e", "\xC4\xA0" "the", "i" "n", "\xC4\xA0\xC4\xA0", "\xC4\x8A" "\xC4\x8A",
        "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "<tool_call>x", "[PAD0]"};
    static const int32_t extra_type[] = {1, 1, 1, 1, 1, 1, 3, 3, 3, 4, 4, 5};
    static const char *const merges[] = {"\xC4\xA0 t", "h e", "\xC4\xA0t he", "i n",
                                         "\xC4\xA0 \xC4\xA0", "\xC4\x8A \xC4\x8A"};
    enum { N_EXTRA = sizeof extra / sizeof extra[0], N_TOK = N_BYTE + N_EXTRA };
    static char store[N_BYTE][3];
    const char *tokens[N_TOK];
    int32_t types[N_TOK];
    for (int b = 0; b < N_BYTE; b++) {
        byte_char(b, store[b]);
        tokens[b] = store[b];
        types[b] = 1;
    }
    for (int i = 0; i < N_EXTRA; i++) {
        tokens[N_BYTE + i] = extra[i];
        types[N_BYTE + i] = extra_type[i];
    }
    struct qp_gguf_writer *w = qp_gguf_writer_new(3);
    bool ok = w != NULL;
    ok = ok && qp_gguf_writer_add_str(w, "general.architecture", "qwen2");
    ok = ok && qp_gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2");
    ok = ok && qp_gguf_writer_add_str(w, "tokenizer.ggml.pre", "qwen2");
    ok = ok && qp_gguf_writer_add_str_array(w, "tokenizer.ggml.tokens", N_TOK, tokens);
    ok = ok && qp_gguf_writer_add_array(w, "tokenizer.ggml.token_type", QP_GGUF_I32, N_TOK, types);
    ok = ok && qp_gguf_writer_add_str_array(w, "tokenizer.ggml.merges",
                                            sizeof merges / sizeof merges[0], merges);
    ok = ok && qp_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", N_BYTE + 6);
    if (!ok) die("building the in-memory vocabulary", "allocation failed");
    struct qp_error err;
    size_t len;
    if (qp_gguf_writer_header(w, true, &small_blob, &len, &err) != QP_OK)
        die("writing the in-memory vocabulary", err.msg);
    qp_gguf_writer_free(w);
    struct qp_gguf *g;
    if (qp_gguf_open_memory(small_blob, len, "fuzz-vocab.gguf", QP_GGUF_HEADER_ONLY, &g, &err))
        die("reading the in-memory vocabulary", err.msg);
    struct qp_tokenizer *t;
    if (qp_tokenizer_load(g, &t, &err) != QP_OK) die("loading the in-memory vocabulary", err.msg);
    qp_gguf_close(g);
    return t;
}

static void init(void) {
    toks[n_toks++] = small_vocab();
    const char *path = getenv("QP_VOCAB");
    if (!path || !*path) path = QP_SHARED_DATA "/qwen2-vocab.gguf";
    if (access(path, R_OK) == 0) {
        struct qp_error err;
        if (qp_tokenizer_load_file(path, &toks[n_toks], &err) != QP_OK) die(path, err.msg);
        n_toks++;
    }
}

static void check(struct qp_tokenizer *t, const uint8_t *data, size_t size, bool special) {
    int32_t *ids = NULL;
    size_t n = 0;
    struct qp_error err = {{0}};
    size_t bad_at = 0;
    bool valid = qp_utf8_validate((const char *)data, size, &bad_at);
    enum qp_status st = qp_tokenizer_encode(t, (const char *)data, size, special, &ids, &n, &err);
    if (!valid) {
        if (st != QP_ERR_INVALID) die("invalid UTF-8 not refused", qp_status_str(st));
        if (!err.msg[0]) die("refusal without a message", NULL);
        free(ids);
        return;
    }
    if (st != QP_OK) die("valid UTF-8 refused", err.msg);
    if ((n == 0) != (size == 0)) die("token count", n ? "ids from empty text" : "no ids");
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= qp_tokenizer_n_vocab(t)) die("id out of range", NULL);
        if (qp_tokenizer_token_type(t, ids[i]) == QP_TOKEN_UNUSED) die("unused token produced", NULL);
        if (!special && qp_tokenizer_token_type(t, ids[i]) == QP_TOKEN_CONTROL)
            die("control token produced without parse_special", NULL);
    }
    char *text = NULL;
    size_t len = 0;
    if (qp_tokenizer_decode(t, ids, n, QP_DETOK_DEFAULT, &text, &len, &err) != QP_OK)
        die("decode", err.msg);
    if (len != size || memcmp(text, data, size) != 0) die("round trip differs", special ? "special" : "plain");
    free(text);

    /* Streamed: the chunks concatenated are the text again, and each chunk is valid UTF-8. */
    struct qp_detok *d;
    if (qp_detok_new(t, QP_DETOK_DEFAULT, &d, &err) != QP_OK) die("detok_new", err.msg);
    size_t at = 0;
    for (size_t i = 0; i <= n; i++) {
        const char *chunk;
        size_t cl;
        if (i < n) {
            if (qp_detok_push(d, ids[i], &chunk, &cl, &err) != QP_OK) die("detok_push", err.msg);
        } else {
            qp_detok_flush(d, &chunk, &cl);
        }
        if (!qp_utf8_validate(chunk, cl, NULL)) die("streamed chunk not valid UTF-8", NULL);
        if (at + cl > size || memcmp(chunk, data + at, cl) != 0) die("streamed text differs", NULL);
        at += cl;
    }
    if (at != size) die("streamed text short", NULL);
    qp_detok_free(d);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!n_toks) init();
    if (size > 4096) return 0; /* BPE cost grows with word length; long inputs add nothing */
    for (int i = 0; i < n_toks; i++) {
        check(toks[i], data, size, false);
        check(toks[i], data, size, true);
    }
    return 0;
}
