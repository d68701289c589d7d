/* test_tokenizer.c — the tokenizer on the real Qwen2 vocabulary:
 *  1. known answers: every vector in tests/data/tokenizer/vectors.txt (made by
 *     scripts/make-tokenizer-vectors.py with Hugging Face tokenizers) encodes to exactly its ids,
 *     and decodes back to exactly its text, also when streamed one id at a time;
 *  2. round trip text ▸ ids ▸ text on random valid UTF-8 strings (both modes), streamed chunks
 *     always valid UTF-8;
 *  3. special tokens in chat vs plain mode, end-of-generation ids, name lookups.
 * Vocabulary: $QP_VOCAB, else QP_SHARED_DATA/qwen2-vocab.gguf, else $QP_MODEL or the default
 * model (same vocabulary); skips (77) when none exists. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qp_tokenizer.h"

#include "check.h"

static const char *find_vocab(char *buf, size_t cap) {
    const char *env = getenv("QP_VOCAB");
    if (env && access(env, R_OK) == 0) return env;
    if (access(QP_SHARED_DATA "/qwen2-vocab.gguf", R_OK) == 0) return QP_SHARED_DATA "/qwen2-vocab.gguf";
    env = getenv("QP_MODEL");
    if (env && access(env, R_OK) == 0) return env;
    const char *home = getenv("HOME");
    if (home) {
        snprintf(buf, cap, "%s/.cache/qplan/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", home);
        if (access(buf, R_OK) == 0) return buf;
    }
    return NULL;
}

static void print_ids(const char *label, const int32_t *ids, size_t n) {
    fprintf(stderr, "  %s:", label);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
}

/* Decodes ids one at a time; checks each chunk is valid UTF-8 and the whole equals want. */
static bool stream_equals(const struct qp_tokenizer *t, const int32_t *ids, size_t n,
                          const char *want, size_t want_len) {
    struct qp_detok *d;
    struct qp_error err = {{0}};
    if (qp_detok_new(t, 0, &d, &err)) return false;
    size_t at = 0;
    bool ok = true;
    for (size_t i = 0; i <= n && ok; i++) {
        const char *o;
        size_t ol;
        if (i < n) ok = qp_detok_push(d, ids[i], &o, &ol, &err) == QP_OK;
        else qp_detok_flush(d, &o, &ol);
        ok = ok && qp_utf8_validate(o, ol, NULL) && at + ol <= want_len && !memcmp(want + at, o, ol);
        at += ol;
    }
    qp_detok_free(d);
    return ok && at == want_len;
}

static int hexval(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void test_vectors(struct qp_tokenizer *t) {
    const char *path = QP_TEST_DATA "/tokenizer/vectors.txt";
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        failures++;
        return;
    }
    char *line = NULL;
    size_t cap = 0;
    int n_vec = 0, n_bad = 0, lineno = 0;
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n') continue;
        /* mode TAB hex TAB ids; hex and ids are empty for the empty text */
        char *mode = line, *hex = strchr(line, '\t'), *idstr = hex ? strchr(hex + 1, '\t') : NULL;
        if (!idstr) {
            fprintf(stderr, "%s:%d: malformed line\n", path, lineno);
            failures++;
            continue;
        }
        *hex++ = 0;
        *idstr++ = 0;
        idstr[strcspn(idstr, "\r\n")] = 0;
        size_t hl = strlen(hex);
        char *text = malloc(hl / 2 + 1);
        for (size_t i = 0; i < hl / 2; i++) text[i] = (char)(hexval(hex[2 * i]) * 16 + hexval(hex[2 * i + 1]));
        size_t tl = hl / 2;
        text[tl] = 0;
        int32_t want[1024];
        size_t nw = 0;
        for (char *s = strtok(idstr, " "); s && nw < 1024; s = strtok(NULL, " ")) want[nw++] = atoi(s);
        bool special = !strcmp(mode, "special");
        int32_t *ids;
        size_t n;
        struct qp_error err = {{0}};
        enum qp_status st = qp_tokenizer_encode(t, text, tl, special, &ids, &n, &err);
        bool ok = st == QP_OK && n == nw && (n == 0 || !memcmp(ids, want, n * sizeof *ids));
        if (!ok) {
            fprintf(stderr, "%s:%d: %s '%s': ids differ%s%s\n", path, lineno, mode, text, st ? ": " : "",
                    st ? err.msg : "");
            if (!st) {
                print_ids("got ", ids, n);
                print_ids("want", want, nw);
            }
            n_bad++;
        } else {
            char *back;
            size_t bl;
            st = qp_tokenizer_decode(t, ids, n, 0, &back, &bl, &err);
            if (st || bl != tl || memcmp(back, text, tl)) {
                fprintf(stderr, "%s:%d: round trip of '%s' differs\n", path, lineno, text);
                n_bad++;
            }
            if (!stream_equals(t, ids, n, text, tl)) {
                fprintf(stderr, "%s:%d: streamed decode of '%s' differs\n", path, lineno, text);
                n_bad++;
            }
            free(back);
        }
        free(ids);
        free(text);
        n_vec++;
    }
    free(line);
    fclose(f);
    printf("vectors: %d checked, %d wrong\n", n_vec, n_bad);
    CHECK(n_vec >= 40);
    failures += n_bad;
}

/* A random valid UTF-8 string drawn from ranges that stress the split and the byte mapping. */
static size_t random_text(uint64_t *rng, char *out, size_t max_chars) {
    static const unsigned ranges[][2] = {
        {0x20, 0x7E},     {0x20, 0x7E},     {0x20, 0x7E}, {'\t', '\r'},     {0x80, 0xFF},
        {0x100, 0x24F},   {0x300, 0x36F},   {0x370, 0x3FF}, {0x400, 0x4FF}, {0x600, 0x6FF},
        {0x900, 0x97F},   {0x2000, 0x206F}, {0x3000, 0x303F}, {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3},
        {0xE000, 0xF8FF}, {0xFF00, 0xFFEF}, {0x1F300, 0x1FAFF}, {0x10000, 0x10FFFF}, {'0', '9'},
    };
    size_t n = 0;
    *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
    size_t chars = (size_t)(*rng >> 33) % max_chars;
    for (size_t i = 0; i < chars; i++) {
        *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
        unsigned r = (unsigned)(*rng >> 32);
        const unsigned *g = ranges[r % (sizeof ranges / sizeof ranges[0])];
        unsigned cp = g[0] + (r >> 8) % (g[1] - g[0] + 1);
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
        if (cp < 0x80) out[n++] = (char)cp;
        else if (cp < 0x800) {
            out[n++] = (char)(0xC0 | cp >> 6);
            out[n++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out[n++] = (char)(0xE0 | cp >> 12);
            out[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[n++] = (char)(0x80 | (cp & 0x3F));
        } else {
            out[n++] = (char)(0xF0 | cp >> 18);
            out[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
            out[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[n++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    return n;
}

static void test_round_trip(struct qp_tokenizer *t) {
    uint64_t rng = 42;
    char text[4 * 200 + 1];
    int bad = 0, n_multi = 0;
    for (int iter = 0; iter < 3000; iter++) {
        size_t tl = random_text(&rng, text, 200);
        CHECK(qp_utf8_validate(text, tl, NULL));
        for (int mode = 0; mode < 2; mode++) {
            int32_t *ids;
            size_t n;
            struct qp_error err = {{0}};
            if (qp_tokenizer_encode(t, text, tl, mode, &ids, &n, &err)) {
                fprintf(stderr, "random #%d: %s\n", iter, err.msg);
                bad++;
                continue;
            }
            for (size_t i = 0; i < n; i++) {
                size_t k;
                const char *b = qp_tokenizer_token_bytes(t, ids[i], &k);
                if (b && !qp_utf8_validate(b, k, NULL)) n_multi++; /* a token that splits a character */
            }
            if (!stream_equals(t, ids, n, text, tl)) {
                fprintf(stderr, "random #%d (%zu bytes): round trip differs\n", iter, tl);
                bad++;
            }
            free(ids);
        }
    }
    printf("round trip: 3000 random strings x 2 modes, %d tokens holding partial characters, %d wrong\n",
           n_multi, bad);
    CHECK(n_multi > 0); /* the streaming hold was exercised */
    failures += bad;
}

static void test_specials(struct qp_tokenizer *t) {
    int32_t im_start = qp_tokenizer_find(t, "<|im_start|>"), im_end = qp_tokenizer_find(t, "<|im_end|>");
    int32_t eot = qp_tokenizer_find(t, "<|endoftext|>");
    CHECK(im_start == 151644 && im_end == 151645 && eot == 151643);
    CHECK(qp_tokenizer_n_vocab(t) == 151936);
    CHECK(qp_tokenizer_eos(t) == 151645 && qp_tokenizer_bos(t) == 151643 && !qp_tokenizer_add_bos(t));
    const char *eog[] = {"<|im_end|>", "<|endoftext|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"};
    for (size_t i = 0; i < 5; i++) CHECK(qp_tokenizer_is_eog(t, qp_tokenizer_find(t, eog[i])));
    const char *not_eog[] = {"<|im_start|>", "<|fim_prefix|>", "<|fim_middle|>", "<tool_call>", "Hello"};
    for (size_t i = 0; i < 5; i++) CHECK(!qp_tokenizer_is_eog(t, qp_tokenizer_find(t, not_eog[i])));
    int n_eog = 0;
    for (int32_t i = 0; i < qp_tokenizer_n_vocab(t); i++) n_eog += qp_tokenizer_is_eog(t, i);
    CHECK(n_eog == 5);
    CHECK(qp_tokenizer_token_type(t, im_start) == QP_TOKEN_CONTROL);
    CHECK(qp_tokenizer_token_type(t, qp_tokenizer_find(t, "<tool_call>")) == QP_TOKEN_USER_DEFINED);
    CHECK(qp_tokenizer_token_type(t, 151935) == QP_TOKEN_UNUSED);

    const char *chat = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n";
    int32_t *ids;
    size_t n;
    struct qp_error err = {{0}};
    CHECK(qp_tokenizer_encode(t, chat, strlen(chat), true, &ids, &n, &err) == QP_OK);
    CHECK(n >= 4 && ids[0] == im_start && ids[n - 3] == im_start);
    int specials = 0;
    for (size_t i = 0; i < n; i++) specials += qp_tokenizer_is_special(t, ids[i]);
    CHECK(specials == 3);
    char *s;
    size_t sl;
    CHECK(qp_tokenizer_decode(t, ids, n, QP_DETOK_HIDE_SPECIAL, &s, &sl, &err) == QP_OK);
    CHECK(!strcmp(s, "user\nhi\nassistant\n"));
    free(s);
    free(ids);
    CHECK(qp_tokenizer_encode(t, chat, strlen(chat), false, &ids, &n, &err) == QP_OK);
    for (size_t i = 0; i < n; i++) CHECK(!qp_tokenizer_is_special(t, ids[i]));
    free(ids);
}

int main(void) {
    char buf[4096];
    const char *path = find_vocab(buf, sizeof buf);
    if (!path) {
        printf("skip: no Qwen2 vocabulary (set QP_VOCAB, or provide %s or the default model)\n",
               QP_SHARED_DATA "/qwen2-vocab.gguf");
        return 77;
    }
    struct qp_tokenizer *t;
    struct qp_error err = {{0}};
    if (qp_tokenizer_load_file(path, &t, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    printf("vocabulary: %s (pre %s, %d tokens)\n", path, qp_tokenizer_pre(t), qp_tokenizer_n_vocab(t));
    test_vectors(t);
    test_round_trip(t);
    test_specials(t);
    qp_tokenizer_free(t);
    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
