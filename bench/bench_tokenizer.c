/* bench_tokenizer.c — tokenizer throughput: encodes ~1 MB of deterministic mixed UTF-8 text
 * (English prose, code with tabs and runs of spaces, numbers, CJK, Cyrillic, Arabic, emoji,
 * chat markup) and reports MB/s and tokens/s (chat mode: special tokens parsed), cold (empty word cache) and warm, and the
 * decode rate. Usage: bench_tokenizer [vocab.gguf] (default: $QP_VOCAB, the shared vocabulary,
 * or the default model). Results go in bench/RESULTS.md. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qp_tokenizer.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *const pieces[] = {
    "the ", "quick ", "brown ", "fox ", "jumps ", "over ", "lazy ", "dog", ". ", ", ",
    "I'm ", "they'll ", "isn't ", "Hello ", "world", "!\n", "\n\n", "model ", "inference ",
    "tokenizer ", "runtime ", "def ", "return ", "    ", "\t\t", "int main(void) {\n", "}\n",
    "x[i] = y[i] * 2;", "        ", "// comment\n", "#include <stdio.h>\r\n", "0x7F ",
    "12345 ", "3.14159 ", "2024-11-26 ", "你好", "世界", "这是一个测试", "。", "日本語の",
    "テキスト", "한국어 ", "Привет ", "мир ", "как дела? ", "مرحبا ", "بالعالم ", "नमस्ते ",
    "😀", "🚀 ", "👨‍👩‍👧‍👦 ", "❤️ ", "café ", "naïve ", "Straße ", "<|im_start|>user\n",
    "<|im_end|>\n", "   \n   ", "!!! ", "... ", "=== ", "->", "&&",
};

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : getenv("QP_VOCAB");
    char buf[4096];
    if (!path) {
        const char *home = getenv("HOME");
        snprintf(buf, sizeof buf, "%s/.cache/qplan/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", home ? home : "");
        path = access("../shared/data/qwen2-vocab.gguf", R_OK) == 0 ? "../shared/data/qwen2-vocab.gguf" : buf;
    }
    struct qp_error err = {{0}};
    struct qp_tokenizer *t;
    double t0 = now();
    if (qp_tokenizer_load_file(path, &t, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double t_load = now() - t0;

    size_t cap = 1 << 20, len = 0;
    char *text = malloc(cap + 64);
    uint64_t rng = 1;
    const size_t np = sizeof pieces / sizeof pieces[0];
    while (len < cap) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        const char *p = pieces[(rng >> 33) % np];
        size_t k = strlen(p);
        memcpy(text + len, p, k);
        len += k;
    }
    text[len] = 0;

    int32_t *ids;
    size_t n;
    double best_warm = 1e9, cold;
    t0 = now();
    if (qp_tokenizer_encode(t, text, len, true, &ids, &n, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    cold = now() - t0;
    free(ids);
    for (int r = 0; r < 5; r++) {
        t0 = now();
        if (qp_tokenizer_encode(t, text, len, true, &ids, &n, &err)) return 1;
        double dt = now() - t0;
        if (dt < best_warm) best_warm = dt;
        if (r < 4) free(ids);
    }
    char *back;
    size_t bl;
    t0 = now();
    if (qp_tokenizer_decode(t, ids, n, 0, &back, &bl, &err)) return 1;
    double t_dec = now() - t0;
    double mb = (double)len / 1e6;
    printf("vocabulary: %s (load %.1f ms)\n", path, 1e3 * t_load);
    printf("text: %.2f MB, %zu tokens (%.2f bytes/token)\n", mb, n, (double)len / (double)n);
    printf("encode cold (empty cache): %.1f ms = %.1f MB/s\n", 1e3 * cold, mb / cold);
    printf("encode warm (best of 5):   %.1f ms = %.1f MB/s, %.2f M tokens/s\n", 1e3 * best_warm,
           mb / best_warm, (double)n / best_warm / 1e6);
    printf("decode: %.1f ms = %.1f MB/s\n", 1e3 * t_dec, mb / t_dec);
    free(back);
    free(ids);
    free(text);
    qp_tokenizer_free(t);
    return 0;
}
