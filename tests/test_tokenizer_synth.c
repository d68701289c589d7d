/* test_tokenizer_synth.c — the tokenizer on small vocabularies built in memory (needs no data):
 * BPE rank order and leftmost ties, special-token matching (longest first; control tokens
 * only in chat mode, user-defined always), the streaming detokenizer on byte tokens that
 * split characters or are invalid UTF-8 (expected bytes from Python's
 * bytes.decode("utf-8", "replace")), the CLI helpers, and malformed vocabularies each
 * refused with a clear message. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qp_gguf.h"
#include "qp_gguf_write.h"
#include "qp_tokenizer.h"

#include "check.h"
#include "gpt2_bytes.h"

/* What to build, and which single thing to break. */
struct spec {
    const char *model;      /* tokenizer.ggml.model */
    const char *pre;        /* tokenizer.ggml.pre */
    bool no_merges;         /* omit tokenizer.ggml.merges */
    const char *bad_merge;  /* appended to the merges */
    bool tokens_as_ints;    /* tokens stored as an i32 array */
    int types_delta;        /* token_type length = n + delta */
    int types_elem;         /* element type of token_type (QP_GGUF_I32 normally) */
    int types_bad_value;    /* when non-zero, token_type[0] = this */
    int64_t bos, eos;       /* ids to write */
    bool drop_byte_token;   /* replace the token of byte 'z' by "zz" */
};

/* Tokens: the 256 byte characters (id = byte), then "aa", "bc", "ab", "abc", "Ġa", then
 * specials: "<s>" control (261), "<s>x" user-defined (262), "<|endoftext|>" control (263),
 * "<|im_end|>" control (264), "[PAD]" unused (265). */
enum { ID_AA = 256, ID_BC, ID_AB, ID_ABC, ID_GA, ID_S, ID_SX, ID_EOT, ID_IMEND, ID_PAD, N_TOK };

static void *blob; /* the last built file's bytes (the reader borrows them) */

static enum qp_status build(const struct spec *sp, struct qp_tokenizer **tok, struct qp_error *err) {
    static char store[N_TOK][16];
    const char *tokens[N_TOK];
    int32_t types[N_TOK + 4];
    for (int b = 0; b < 256; b++) {
        byte_char(b, store[b]);
        tokens[b] = store[b];
        types[b] = 1;
    }
    if (sp->drop_byte_token) tokens['z'] = "zz";
    const char *extra[] = {"aa", "bc", "ab", "abc", "\xC4\xA0\x61" /* "Ġa" */, "<s>", "<s>x", "<|endoftext|>",
                           "<|im_end|>", "[PAD]"};
    const int32_t extra_type[] = {1, 1, 1, 1, 1, 3, 4, 3, 3, 5};
    for (int i = 0; i < N_TOK - 256; i++) {
        tokens[256 + i] = extra[i];
        types[256 + i] = extra_type[i];
    }
    for (int i = N_TOK; i < N_TOK + 4; i++) types[i] = 1;
    if (sp->types_bad_value) types[0] = sp->types_bad_value;
    const char *merges[8] = {"a a", "b c", "a b", "ab c", "\xC4\xA0 a"};
    int n_merges = 5;
    if (sp->bad_merge) merges[n_merges++] = sp->bad_merge;

    struct qp_gguf_writer *w = qp_gguf_writer_new(3);
    bool ok = w != NULL;
    ok = ok && qp_gguf_writer_add_str(w, "general.architecture", "qwen2");
    if (sp->model) ok = ok && qp_gguf_writer_add_str(w, "tokenizer.ggml.model", sp->model);
    if (sp->pre) ok = ok && qp_gguf_writer_add_str(w, "tokenizer.ggml.pre", sp->pre);
    if (sp->tokens_as_ints) {
        ok = ok && qp_gguf_writer_add_array(w, "tokenizer.ggml.tokens", QP_GGUF_I32, N_TOK, types);
    } else {
        ok = ok && qp_gguf_writer_add_str_array(w, "tokenizer.ggml.tokens", N_TOK, tokens);
    }
    uint64_t nt = (uint64_t)(N_TOK + sp->types_delta);
    if (sp->types_elem == QP_GGUF_STRING) {
        ok = ok && qp_gguf_writer_add_str_array(w, "tokenizer.ggml.token_type", N_TOK, tokens);
    } else if (sp->types_elem == QP_GGUF_F32) {
        static float f[N_TOK];
        for (int i = 0; i < N_TOK; i++) f[i] = (float)types[i];
        ok = ok && qp_gguf_writer_add_array(w, "tokenizer.ggml.token_type", QP_GGUF_F32, nt, f);
    } else {
        ok = ok && qp_gguf_writer_add_array(w, "tokenizer.ggml.token_type", QP_GGUF_I32, nt, types);
    }
    if (!sp->no_merges) {
        ok = ok && qp_gguf_writer_add_str_array(w, "tokenizer.ggml.merges", (uint64_t)n_merges, merges);
    }
    ok = ok && qp_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)sp->bos);
    ok = ok && qp_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)sp->eos);
    ok = ok && qp_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", false);
    if (!ok) {
        fprintf(stderr, "test: building the GGUF failed\n");
        exit(1);
    }
    free(blob);
    size_t len;
    enum qp_status st = qp_gguf_writer_header(w, true, &blob, &len, err);
    qp_gguf_writer_free(w);
    if (st) return st;
    struct qp_gguf *g;
    st = qp_gguf_open_memory(blob, len, "synthetic.gguf", QP_GGUF_HEADER_ONLY, &g, err);
    if (st) return st;
    st = qp_tokenizer_load(g, tok, err);
    qp_gguf_close(g);
    return st;
}

static struct spec good(void) {
    return (struct spec){.model = "gpt2", .pre = "qwen2", .types_elem = QP_GGUF_I32,
                         .bos = ID_EOT, .eos = ID_IMEND};
}

static bool ids_eq(struct qp_tokenizer *t, const char *text, bool special, const int32_t *want,
                   size_t n_want) {
    int32_t *ids;
    size_t n;
    struct qp_error err = {{0}};
    if (qp_tokenizer_encode(t, text, strlen(text), special, &ids, &n, &err)) {
        fprintf(stderr, "encode '%s': %s\n", text, err.msg);
        return false;
    }
    bool ok = n == n_want && (n == 0 || !memcmp(ids, want, n * sizeof *ids));
    if (!ok) {
        fprintf(stderr, "encode '%s' (%s): got", text, special ? "special" : "plain");
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "; want");
        for (size_t i = 0; i < n_want; i++) fprintf(stderr, " %d", want[i]);
        fprintf(stderr, "\n");
    }
    free(ids);
    return ok;
}
#define IDS(...) (const int32_t[]){__VA_ARGS__}, sizeof((const int32_t[]){__VA_ARGS__}) / sizeof(int32_t)

static void test_bpe_and_specials(void) {
    struct qp_tokenizer *t;
    struct qp_error err = {{0}};
    struct spec sp = good();
    enum qp_status st = build(&sp, &t, &err);
    if (st) fprintf(stderr, "load: %s\n", err.msg);
    CHECK(st == QP_OK);
    if (st) return;
    CHECK(qp_tokenizer_n_vocab(t) == N_TOK);
    /* rank order: "b c" (rank 1) beats "a b" (rank 2), and no "a bc" merge exists */
    CHECK(ids_eq(t, "abc", false, IDS('a', ID_BC)));
    CHECK(ids_eq(t, "ab", false, IDS(ID_AB)));
    CHECK(ids_eq(t, "abd", false, IDS(ID_AB, 'd')));
    /* ties go left: "aaa" is aa·a, not a·aa */
    CHECK(ids_eq(t, "aaa", false, IDS(ID_AA, 'a')));
    CHECK(ids_eq(t, "aaaaa", false, IDS(ID_AA, ID_AA, 'a')));
    /* space is byte-level Ġ (byte 0x20 is token 0x20 here); " a" merges to Ġa */
    CHECK(ids_eq(t, " ab", false, IDS(0x20, ID_AB)));
    CHECK(ids_eq(t, " a", false, IDS(ID_GA)));
    CHECK(ids_eq(t, "", false, NULL, 0));
    /* specials: longest first; control only in chat mode; user-defined always */
    CHECK(ids_eq(t, "<s>xy", true, IDS(ID_SX, 'y')));
    CHECK(ids_eq(t, "<s>xy", false, IDS(ID_SX, 'y')));
    CHECK(ids_eq(t, "<s>y", true, IDS(ID_S, 'y')));
    CHECK(ids_eq(t, "<s>y", false, IDS('<', 's', '>', 'y')));
    CHECK(ids_eq(t, "a<|im_end|>", true, IDS('a', ID_IMEND)));
    CHECK(ids_eq(t, "[PAD]", true, IDS('[', 'P', 'A', 'D', ']')));
    CHECK(qp_tokenizer_is_eog(t, ID_IMEND) && qp_tokenizer_is_eog(t, ID_EOT));
    CHECK(!qp_tokenizer_is_eog(t, ID_S) && !qp_tokenizer_is_eog(t, 'a') && !qp_tokenizer_is_eog(t, -1));
    CHECK(qp_tokenizer_find(t, "<s>x") == ID_SX && qp_tokenizer_find(t, "nope") == -1);
    CHECK(qp_tokenizer_bos(t) == ID_EOT && qp_tokenizer_eos(t) == ID_IMEND && qp_tokenizer_pad(t) == -1);
    CHECK(!qp_tokenizer_add_bos(t));
    CHECK(!strcmp(qp_tokenizer_pre(t), "qwen2"));
    size_t len;
    CHECK(qp_tokenizer_token_bytes(t, N_TOK, &len) == NULL && len == 0);
    const char *b = qp_tokenizer_token_bytes(t, 0x20, &len);
    CHECK(b && len == 1 && b[0] == ' ');
    b = qp_tokenizer_token_bytes(t, ID_GA, &len);
    CHECK(b && len == 2 && !memcmp(b, " a", 2));
    b = qp_tokenizer_token_bytes(t, ID_PAD, &len);
    CHECK(b && len == 0);

    /* invalid UTF-8 input is refused, naming the byte */
    int32_t *ids;
    size_t n;
    CHECK(qp_tokenizer_encode(t, "ab\xC3(", 4, false, &ids, &n, &err) == QP_ERR_INVALID);
    CHECK(strstr(err.msg, "byte 2") != NULL);

    /* CLI helpers */
    char *buf;
    size_t blen;
    FILE *f = open_memstream(&buf, &blen);
    CHECK(qp_tokenize_cmd(t, "abc<s>", true, true, f, &err) == QP_OK);
    fclose(f);
    CHECK(!strcmp(buf, "97 257 261\n97\ta\n257\tbc\n261\t<s>\n"));
    free(buf);
    f = open_memstream(&buf, &blen);
    CHECK(qp_detokenize_cmd(t, "[97, 257,261 32]", f, &err) == QP_OK);
    fclose(f);
    CHECK(!strcmp(buf, "abc<s> \n"));
    free(buf);
    f = open_memstream(&buf, &blen);
    CHECK(qp_detokenize_cmd(t, "97 x1", f, &err) == QP_ERR_INVALID && strstr(err.msg, "'x1'"));
    CHECK(qp_detokenize_cmd(t, "97 266", f, &err) == QP_ERR_RANGE && strstr(err.msg, "266"));
    CHECK(qp_detokenize_cmd(t, "-1", f, &err) == QP_ERR_RANGE);
    fclose(f);
    free(buf);

    /* ---- streaming detokenizer ---- */
    struct qp_detok *d;
    CHECK(qp_detok_new(t, QP_DETOK_DEFAULT, &d, &err) == QP_OK);
    const char *o;
    size_t ol;
    /* U+1F600 split over four byte tokens: nothing until the last byte */
    const unsigned char smile[4] = {0xF0, 0x9F, 0x98, 0x80};
    for (int i = 0; i < 4; i++) {
        CHECK(qp_detok_push(d, smile[i], &o, &ol, &err) == QP_OK);
        CHECK(ol == (i < 3 ? 0u : 4u));
    }
    CHECK(!memcmp(o, smile, 4));
    CHECK(qp_detok_push(d, N_TOK, &o, &ol, &err) == QP_ERR_RANGE);
    /* Expected outputs from Python: bytes(seq).decode("utf-8", "replace").encode() */
    struct {
        unsigned char in[8];
        int n;
        const char *want;
    } cases[] = {
        {{0xFF}, 1, "\xEF\xBF\xBD"},
        {{0xE4, 0xB8, 'A'}, 3, "\xEF\xBF\xBD" "A"},
        {{0xE4, 0xB8}, 2, "\xEF\xBF\xBD"}, /* unfinished at the end: flushed as one U+FFFD */
        {{0xED, 0xA0, 0x80}, 3, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* surrogate */
        {{0xC0, 0xAF}, 2, "\xEF\xBF\xBD\xEF\xBF\xBD"},                     /* overlong */
        {{0xF4, 0x90, 0x80, 0x80}, 4, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
        {{0xF0, 0x9F, 0x98, 0xE4, 0xB8, 0xAD}, 6, "\xEF\xBF\xBD\xE4\xB8\xAD"},
        {{0x80, 'a', 0xC3, 0xA9}, 4, "\xEF\xBF\xBD" "a\xC3\xA9"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char got[64];
        size_t gl = 0;
        for (int i = 0; i < cases[c].n; i++) {
            CHECK(qp_detok_push(d, cases[c].in[i], &o, &ol, &err) == QP_OK);
            CHECK(qp_utf8_validate(o, ol, NULL));
            memcpy(got + gl, o, ol);
            gl += ol;
        }
        qp_detok_flush(d, &o, &ol);
        memcpy(got + gl, o, ol);
        gl += ol;
        if (gl != strlen(cases[c].want) || memcmp(got, cases[c].want, gl)) {
            fprintf(stderr, "detok case %zu: wrong output (%zu bytes)\n", c, gl);
            failures++;
        }
    }
    /* a special token ends a held prefix; hidden when asked (control), user-defined shown */
    CHECK(qp_detok_push(d, 0xE4, &o, &ol, &err) == QP_OK && ol == 0);
    CHECK(qp_detok_push(d, ID_IMEND, &o, &ol, &err) == QP_OK);
    CHECK(ol == 13 && !memcmp(o, "\xEF\xBF\xBD<|im_end|>", 13));
    qp_detok_free(d);
    CHECK(qp_detok_new(t, QP_DETOK_HIDE_SPECIAL, &d, &err) == QP_OK);
    CHECK(qp_detok_push(d, ID_IMEND, &o, &ol, &err) == QP_OK && ol == 0);
    CHECK(qp_detok_push(d, ID_PAD, &o, &ol, &err) == QP_OK && ol == 0);
    CHECK(qp_detok_push(d, ID_SX, &o, &ol, &err) == QP_OK && ol == 4 && !memcmp(o, "<s>x", 4));
    qp_detok_free(d);

    /* random byte-token streams: every chunk valid UTF-8, and streamed == one-shot decode */
    uint64_t rng = 12345;
    for (int iter = 0; iter < 2000; iter++) {
        int32_t seq[24];
        int n_seq = 1 + iter % 24;
        for (int i = 0; i < n_seq; i++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            unsigned r = (unsigned)(rng >> 33);
            /* bias toward bytes that start or continue multi-byte characters */
            seq[i] = (r & 3) ? (int32_t)(0x80 + (r >> 2) % 0x80) : (int32_t)((r >> 2) % N_TOK);
        }
        char *whole;
        size_t wl;
        CHECK(qp_tokenizer_decode(t, seq, (size_t)n_seq, 0, &whole, &wl, &err) == QP_OK);
        CHECK(qp_utf8_validate(whole, wl, NULL));
        CHECK(qp_detok_new(t, 0, &d, &err) == QP_OK);
        size_t at = 0;
        bool same = true;
        for (int i = 0; i <= n_seq; i++) {
            if (i < n_seq) CHECK(qp_detok_push(d, seq[i], &o, &ol, &err) == QP_OK);
            else qp_detok_flush(d, &o, &ol);
            if (!qp_utf8_validate(o, ol, NULL)) same = false;
            if (at + ol > wl || memcmp(whole + at, o, ol)) same = false;
            at += ol;
        }
        CHECK(same && at == wl);
        qp_detok_free(d);
        free(whole);
    }
    qp_tokenizer_free(t);
}

/* Each malformed vocabulary: the expected status and a phrase the message must hold. */
static void expect_error(const char *what, struct spec sp, enum qp_status want, const char *phrase) {
    struct qp_tokenizer *t = (struct qp_tokenizer *)&t; /* must come back NULL */
    struct qp_error err = {{0}};
    enum qp_status st = build(&sp, &t, &err);
    bool ok = st == want && t == NULL && strstr(err.msg, phrase) && strstr(err.msg, "synthetic.gguf");
    printf("%-36s -> %s: %s\n", what, qp_status_str(st), err.msg);
    if (!ok) {
        fprintf(stderr, "FAIL %s: want status %s and '%s' in the message\n", what, qp_status_str(want), phrase);
        failures++;
    }
    if (st == QP_OK) qp_tokenizer_free(t);
}

static void test_malformed(void) {
    struct spec sp;
    sp = good(), sp.no_merges = true;
    expect_error("missing merges", sp, QP_ERR_FORMAT, "tokenizer.ggml.merges is missing");
    sp = good(), sp.bad_merge = "a qq";
    expect_error("merge naming an unknown token", sp, QP_ERR_FORMAT, "'qq', which is not a token");
    sp = good(), sp.bad_merge = "abc";
    expect_error("merge without a space", sp, QP_ERR_FORMAT, "not two tokens separated by one space");
    sp = good(), sp.bad_merge = "a  b";
    expect_error("merge with two spaces", sp, QP_ERR_FORMAT, "not two tokens separated by one space");
    sp = good(), sp.bad_merge = "c d";
    expect_error("merge whose result is no token", sp, QP_ERR_FORMAT, "merged text is not a token");
    sp = good(), sp.bos = N_TOK;
    expect_error("bos id out of range", sp, QP_ERR_FORMAT, "tokenizer.ggml.bos_token_id");
    sp = good(), sp.eos = 1u << 31;
    expect_error("eos id out of range", sp, QP_ERR_FORMAT, "tokenizer.ggml.eos_token_id");
    sp = good(), sp.types_delta = -1;
    expect_error("token_type too short", sp, QP_ERR_FORMAT, "token_type has 265 entries");
    sp = good(), sp.types_delta = 3;
    expect_error("token_type too long", sp, QP_ERR_FORMAT, "token_type has 269 entries");
    sp = good(), sp.types_elem = QP_GGUF_F32;
    expect_error("token_type of f32", sp, QP_ERR_FORMAT, "array of f32");
    sp = good(), sp.types_elem = QP_GGUF_STRING;
    expect_error("token_type of strings", sp, QP_ERR_FORMAT, "array of string");
    sp = good(), sp.types_bad_value = 9;
    expect_error("token_type value 9", sp, QP_ERR_FORMAT, "token_type[0] = 9");
    sp = good(), sp.tokens_as_ints = true;
    expect_error("tokens array of i32", sp, QP_ERR_FORMAT, "tokenizer.ggml.tokens");
    sp = good(), sp.model = NULL;
    expect_error("missing model", sp, QP_ERR_INVALID, "tokenizer.ggml.model");
    sp = good(), sp.model = "llama";
    expect_error("sentencepiece model", sp, QP_ERR_UNSUPPORTED, "only 'gpt2'");
    sp = good(), sp.pre = "falcon";
    expect_error("unknown pre-tokenizer", sp, QP_ERR_UNSUPPORTED, "'falcon' is not a known pre-tokenizer");
    sp = good(), sp.drop_byte_token = true;
    expect_error("byte without a token", sp, QP_ERR_FORMAT, "no token for byte 0x7A");
}

int main(void) {
    test_bpe_and_specials();
    test_malformed();
    free(blob);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
