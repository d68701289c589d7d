/* test_inspect.c — `qplan` CLI and `qplan inspect`, run as a user runs them (the built
 * executable, via the shell), output lines checked after collapsing runs of spaces.
 *
 *   test_inspect cli    usage and errors; a byte-built file of a generic architecture
 *                       (every section); a header-only file.
 *   test_inspect vocab  the Qwen2 vocabulary GGUF (QP_SHARED_DATA; where that is absent, the
 *                       default model's vocabulary; skipped with a reason when both are).
 *   test_inspect model  the real default model ($QP_MODEL or ~/.cache/qplan/...), exact lines
 *                       when it is the pinned default file; skipped with a reason when absent.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gguf_bytes.h"
#include "qp_ggml.h"

#define QPLAN QP_BUILD_DIR "/compiler/qplan"

#include "check.h"
static char tmpdir[] = "/tmp/qp_test_inspect_XXXXXX";

struct result {
    int code;        /* exit status, -1 when it did not exit normally */
    char *out, *err; /* stdout and stderr, NUL-terminated */
};

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return strdup("");
    struct gb b = {0};
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) gb_raw(&b, buf, n);
    fclose(f);
    gb_u8(&b, 0);
    return (char *)b.p;
}

/* Runs `qplan <args>` (args already shell-quoted where needed). */
static struct result run(const char *args) {
    char out[300], err[300], cmd[2048];
    snprintf(out, sizeof out, "%s/stdout", tmpdir);
    snprintf(err, sizeof err, "%s/stderr", tmpdir);
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s' 2>'%s'", QPLAN, args, out, err);
    int st = system(cmd);
    struct result r = {WIFEXITED(st) ? WEXITSTATUS(st) : -1, slurp(out), slurp(err)};
    return r;
}

static void result_free(struct result *r) {
    free(r->out);
    free(r->err);
}

/* True when some line of text, with leading spaces removed and runs of spaces collapsed to
 * one, equals want. */
static bool has_line(const char *text, const char *want) {
    const char *p = text;
    char line[4096];
    while (*p) {
        size_t n = 0;
        bool space = true; /* drops leading spaces */
        for (; *p && *p != '\n'; p++) {
            if (*p == ' ') {
                if (!space && n < sizeof line - 1) line[n++] = ' ';
                space = true;
            } else {
                if (n < sizeof line - 1) line[n++] = *p;
                space = false;
            }
        }
        while (n > 0 && line[n - 1] == ' ') n--;
        line[n] = '\0';
        if (*p == '\n') p++;
        if (strcmp(line, want) == 0) return true;
    }
    return false;
}

static void expect_line(const struct result *r, const char *want, int line) {
    if (!has_line(r->out, want)) {
        fprintf(stderr, "%s:%d: no output line '%s'\n", __FILE__, line, want);
        failures++;
    }
}
#define LINE(r, want) expect_line(&(r), (want), __LINE__)


static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

/* ---- cli ---------------------------------------------------------------------------------- */

static void test_usage(void) {
    struct result r = run("");
    CHECK(r.code == 2 && strstr(r.err, "no command given") && strstr(r.err, "inspect"));
    result_free(&r);
    r = run("--help");
    CHECK(r.code == 0 && strstr(r.out, "usage: qplan <command>") && strstr(r.out, "inspect"));
    result_free(&r);
    r = run("frobnicate x");
    CHECK(r.code == 2 && strstr(r.err, "unknown command 'frobnicate'"));
    result_free(&r);
    r = run("inspect --help");
    CHECK(r.code == 0 && strstr(r.out, "usage: qplan inspect"));
    result_free(&r);
    r = run("inspect");
    CHECK(r.code == 2 && strstr(r.err, "no model file given"));
    result_free(&r);
    r = run("inspect --bogus x.gguf");
    CHECK(r.code == 2 && strstr(r.err, "unknown option '--bogus'"));
    result_free(&r);
    r = run("inspect a.gguf b.gguf");
    CHECK(r.code == 2 && strstr(r.err, "one file at a time"));
    result_free(&r);

    char args[600];
    snprintf(args, sizeof args, "inspect '%s/missing.gguf'", tmpdir);
    r = run(args);
    CHECK(r.code == 1 && strstr(r.err, "missing.gguf: cannot open") && r.out[0] == '\0');
    result_free(&r);

    char bad[300];
    snprintf(bad, sizeof bad, "%s/bad.gguf", tmpdir);
    struct gb b = {0};
    gb_header(&b, 3, 0, 1);
    gb_kv_u32(&b, "general.alignment", 48);
    write_file(bad, b.p, b.n);
    gb_free(&b);
    snprintf(args, sizeof args, "inspect '%s'", bad);
    r = run(args);
    CHECK(r.code == 1 && strstr(r.err, "bad.gguf: general.alignment 48 is not a power of two"));
    result_free(&r);
    remove(bad);
}

/* A small file of a generic architecture exercising every section of the output. */
static size_t build_tiny(struct gb *b) {
    gb_header(b, 3, 2, 16);
    gb_kv_str(b, "general.architecture", "llama");
    gb_kv_str(b, "general.name", "tiny \"test\"\n");
    gb_kv_u32(b, "llama.block_count", 2);
    gb_kv_f32(b, "llama.rope.freq_base", 10000.5f);
    gb_kv_u32(b, "llama.embedding_length", 64);
    gb_kv_u32(b, "llama.attention.head_count", 4);
    gb_kv_str(b, "tokenizer.ggml.model", "gpt2");
    gb_kv_arr(b, "tokenizer.ggml.tokens", 8, 3), gb_str(b, "a"), gb_str(b, "b"), gb_str(b, "<s>");
    gb_kv_u32(b, "tokenizer.ggml.bos_token_id", 2);
    gb_kv_u32(b, "tokenizer.ggml.eos_token_id", 7);
    gb_kv_arr(b, "x.nested", 9, 2);
    gb_i32(b, 5), gb_u64(b, 2), gb_i32(b, 1), gb_i32(b, 2);
    gb_i32(b, 8), gb_u64(b, 1), gb_str(b, "s");
    gb_kv_bool(b, "x.bool", 1);
    gb_key(b, "x.f64", 12), gb_f64(b, 0.1);
    char lng[101];
    memset(lng, 'a', 100);
    lng[100] = '\0';
    gb_kv_str(b, "x.long", lng);
    gb_kv_u32(b, "x.\x1b[31mred", 1); /* an escape sequence in a key */
    gb_kv_arr(b, "x.deep", 9, 1);      /* [[[5]]]: deeper than inspect shows elements */
    gb_i32(b, 9), gb_u64(b, 1), gb_i32(b, 5), gb_u64(b, 1), gb_i32(b, 5);
    gb_tensor(b, "token_embd.weight", 2, (int64_t[]){64, 3}, QP_GGML_Q8_0, 0);    /* 204 bytes */
    gb_tensor(b, "blk.0.attn_norm.weight", 1, (int64_t[]){64}, QP_GGML_F32, 224); /* 256 */
    size_t header = b->n;
    gb_pad(b, 32);
    gb_fill(b, 480, 1);
    return header;
}

static void check_tiny(const struct result *r) {
    LINE(*r, "version 3");
    LINE(*r, "alignment 32");
    LINE(*r, "metadata keys 16");
    LINE(*r, "tensors 2");
    LINE(*r, "architecture \"llama\"");
    LINE(*r, "name \"tiny \\\"test\\\"\\n\"");
    LINE(*r, "hyperparameters (llama.*)");
    LINE(*r, "llama.block_count 2");
    LINE(*r, "llama.rope.freq_base 10000.5");
    LINE(*r, "llama.embedding_length 64");
    LINE(*r, "head_dim (derived) 16");
    LINE(*r, "model \"gpt2\"");
    LINE(*r, "pre (absent)");
    LINE(*r, "vocab size 3 tokens");
    LINE(*r, "merges (absent)");
    LINE(*r, "bos token 2 \"<s>\"");
    LINE(*r, "eos token 7 (not a token id of the vocabulary)");
    LINE(*r, "chat template absent");
    LINE(*r, "x.nested array<array>[2] [array<i32>[2] 1, 2, array<string>[1] \"s\"]");
    LINE(*r, "x.bool bool true");
    LINE(*r, "x.f64 f64 0.1");
    LINE(*r, "x.long string \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"... "
             "(100 bytes)");
    LINE(*r, "x.?[31mred u32 1");
    LINE(*r, "x.deep array<array>[1] [array<array>[1] [array<i32>[1]]]");
    CHECK(!strchr(r->out, '\x1b'));
    LINE(*r, "tensors (2)");
    LINE(*r, "# name type shape bytes offset");
    LINE(*r, "0 token_embd.weight Q8_0 [64, 3] 204 0");
    LINE(*r, "1 blk.0.attn_norm.weight F32 [64] 256 224");
    LINE(*r, "F32 1 256 0.00");
    LINE(*r, "Q8_0 1 204 0.00");
    LINE(*r, "all 2 460 0.00");
    LINE(*r, "parameters 256 (0.000 B)");
    /* Shown keys are not repeated under "other metadata". */
    CHECK(!strstr(r->out, "general.name"));
    CHECK(!strstr(r->out, "tokenizer.ggml.bos_token_id"));
}

static void test_tiny(void) {
    char path[300], args[600];
    snprintf(path, sizeof path, "%s/tiny.gguf", tmpdir);
    struct gb b = {0};
    size_t header = build_tiny(&b);
    write_file(path, b.p, b.n);
    snprintf(args, sizeof args, "inspect '%s'", path);
    struct result r = run(args);
    CHECK(r.code == 0 && r.err[0] == '\0');
    if (r.code != 0) fprintf(stderr, "stderr: %s\n", r.err);
    char want[400];
    snprintf(want, sizeof want, "file %s", path);
    LINE(r, want);
    snprintf(want, sizeof want, "size %zu bytes (0.00 MiB)", b.n);
    LINE(r, want);
    snprintf(want, sizeof want, "header %zu bytes (metadata and tensor table)", header);
    LINE(r, want);
    check_tiny(&r);
    result_free(&r);

    /* The same header without data: refused by default, shown with --header-only. */
    write_file(path, b.p, header);
    r = run(args);
    CHECK(r.code == 1 && strstr(r.err, "tiny.gguf: truncated"));
    result_free(&r);
    snprintf(args, sizeof args, "inspect --header-only '%s'", path);
    r = run(args);
    CHECK(r.code == 0);
    check_tiny(&r);
    result_free(&r);
    remove(path);
    gb_free(&b);
}

/* $QP_MODEL, else the default model where scripts/fetch-model.sh puts it. */
static const char *default_model_path(char *buf, size_t size) {
    const char *env = getenv("QP_MODEL");
    if (env && *env) {
        snprintf(buf, size, "%s", env);
    } else {
        const char *home = getenv("HOME");
        snprintf(buf, size, "%s/.cache/qplan/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                 home ? home : "");
    }
    return buf;
}

static int test_vocab(void) {
    /* The tensor-less vocabulary file; where the shared data folder is not beside the checkout
     * (a clean clone elsewhere), the default model's file, which holds the same vocabulary and
     * header values: only the tensor lines differ. */
    const char *path = QP_SHARED_DATA "/qwen2-vocab.gguf";
    char model[1024];
    bool tensorless = access(path, R_OK) == 0;
    if (!tensorless) {
        path = default_model_path(model, sizeof model);
        if (access(path, R_OK) != 0) {
            printf("skipped: no model at %s (run scripts/fetch-model.sh) and no %s\n", path,
                   QP_SHARED_DATA "/qwen2-vocab.gguf");
            return 77;
        }
        printf("vocab: %s is absent; checking the vocabulary of %s\n",
               QP_SHARED_DATA "/qwen2-vocab.gguf", path);
    }
    char args[1200];
    snprintf(args, sizeof args, "inspect '%s'", path);
    struct result r = run(args);
    CHECK(r.code == 0);
    LINE(r, "architecture \"qwen2\"");
    LINE(r, "qwen2.block_count 24");
    LINE(r, "qwen2.embedding_length 896");
    LINE(r, "qwen2.attention.head_count_kv 2");
    LINE(r, "qwen2.rope.freq_base 1000000");
    LINE(r, "qwen2.attention.layer_norm_rms_epsilon 1e-06");
    LINE(r, "head_dim (derived) 64");
    LINE(r, "model \"gpt2\"");
    LINE(r, "pre \"qwen2\"");
    LINE(r, "vocab size 151936 tokens");
    LINE(r, "merges 151387");
    LINE(r, "bos token 151643 \"<|endoftext|>\"");
    LINE(r, "eos token 151645 \"<|im_end|>\"");
    LINE(r, "add_bos false");
    if (tensorless) {
        LINE(r, "tensors (0)");
        LINE(r, "all 0 0 0.00");
    }
    result_free(&r);
    return 0;
}

/* ---- model -------------------------------------------------------------------------------- */

static int test_model(void) {
    char path[1024];
    default_model_path(path, sizeof path);
    if (access(path, R_OK) != 0) {
        printf("skipped: no model at %s (run scripts/fetch-model.sh or set QP_MODEL)\n", path);
        return 77;
    }
    char args[1200];
    snprintf(args, sizeof args, "inspect '%s'", path);
    struct result r = run(args);
    CHECK(r.code == 0);
    LINE(r, "architecture \"qwen2\"");
    LINE(r, "model \"gpt2\"");
    LINE(r, "pre \"qwen2\"");
    CHECK(strstr(r.out, "qwen2.block_count") && strstr(r.out, "\ntotals by type\n"));
    /* The pinned default file (scripts/fetch-model.sh): its exact numbers. */
    if (has_line(r.out, "size 491400064 bytes (468.64 MiB)")) {
        LINE(r, "header hash ee75aa407f74d534 (FNV-1a 64 of the header)");
        LINE(r, "file type 15 (Q4_K_M)");
        LINE(r, "qwen2.block_count 24");
        LINE(r, "qwen2.embedding_length 896");
        LINE(r, "qwen2.feed_forward_length 4864");
        LINE(r, "qwen2.attention.head_count 14");
        LINE(r, "qwen2.attention.head_count_kv 2");
        LINE(r, "vocab size 151936 tokens");
        LINE(r, "chat template present, 2507 bytes");
        LINE(r, "tensors (291)");
        LINE(r, "0 output.weight Q8_0 [896, 151936] 144643072 0");
        LINE(r, "1 token_embd.weight Q5_0 [896, 151936] 93592576 144643072");
        LINE(r, "3 blk.0.ffn_down.weight Q6_K [4864, 896] 3575040 238239232");
        LINE(r, "290 output_norm.weight F32 [896] 3584 485448704");
        LINE(r, "F32 121 286208 0.27");
        LINE(r, "Q5_0 133 266742784 254.39");
        LINE(r, "Q8_0 13 146105344 139.34");
        LINE(r, "Q4_K 12 29417472 28.05");
        LINE(r, "Q6_K 12 42900480 40.91");
        LINE(r, "all 291 485452288 462.96");
    } else {
        printf("note: %s is not the pinned default model; exact numbers not checked\n", path);
    }
    result_free(&r);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2 ||
        (strcmp(argv[1], "cli") && strcmp(argv[1], "vocab") && strcmp(argv[1], "model"))) {
        fprintf(stderr, "usage: test_inspect cli|vocab|model\n");
        return 2;
    }
    if (access(QPLAN, X_OK) != 0) {
        fprintf(stderr, "%s is not built\n", QPLAN);
        return 1;
    }
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    int rc = 0;
    if (!strcmp(argv[1], "cli")) {
        test_usage();
        test_tiny();
    } else if (!strcmp(argv[1], "vocab")) {
        rc = test_vocab();
    } else {
        rc = test_model();
    }
    char p[300];
    snprintf(p, sizeof p, "%s/stdout", tmpdir), remove(p);
    snprintf(p, sizeof p, "%s/stderr", tmpdir), remove(p);
    rmdir(tmpdir);
    if (failures) {
        fprintf(stderr, "test_inspect %s: %d check(s) failed\n", argv[1], failures);
        return 1;
    }
    if (rc == 0) printf("test_inspect %s: all checks passed\n", argv[1]);
    return rc;
}
