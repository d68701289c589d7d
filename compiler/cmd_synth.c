/* cmd_synth.c — `qplan synth`: writes a synthetic model (random, well-scaled weights) with the
 * shape of a given model or header (--like), or a tiny Qwen2 shape from parameters (--arch).
 * The generation itself is compiler/synth.c (include/qp_synth.h); this file parses arguments.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "qp_synth.h"

static void print_usage(FILE *f) {
    fprintf(f,
        "usage: qplan synth --like MODEL_OR_HEADER.gguf -o OUT.gguf [--seed N]\n"
        "       qplan synth --arch qwen2 --n-layer L --n-embd D --n-head H --n-head-kv K\n"
        "                   --n-ff F (--n-vocab V | --vocab VOCAB.gguf) [--types SPEC]\n"
        "                   [--n-ctx C] [--rope-base B] [--eps E] -o OUT.gguf [--seed N]\n"
        "  Writes a valid GGUF of random, well-scaled weights (deterministic for a seed,\n"
        "  default 1). --like copies every metadata key and the whole tensor table of a\n"
        "  model or of its header (qplan header). --arch builds a Qwen2 shape with a tiny\n"
        "  byte-level vocabulary of V tokens (V >= 273), or copies VOCAB.gguf's tokenizer.\n"
        "  --types SPEC: comma-separated RULE=TYPE, later rules win. RULE: '*' (every weight\n"
        "  matrix), a role (attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down,\n"
        "  token_embd, output, attn_norm, attn_q.bias, ...) or a full name (blk.1.ffn_down).\n"
        "  TYPE: f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_k .. q6_k; 'output=tied'\n"
        "  drops output.weight. Defaults: matrices q8_0, norms and biases f32.\n");
}

/* Parses a non-negative integer argument in [lo, hi]. */
static int arg_int(const char *opt, const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 0);
    if (end == s || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "qplan synth: %s '%s': expected an integer in [%lld, %lld]\n", opt, s,
                lo, hi);
        return 0;
    }
    *out = v;
    return 1;
}

int qp_cmd_synth(int argc, char **argv) {
    const char *like = NULL, *arch = NULL, *out = NULL;
    struct qp_synth_arch a = {0};
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            print_usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "qplan synth: '%s' needs a value or is unknown\n", o);
            print_usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        long long n = 0;
        int ok = 1;
        if (!strcmp(o, "--like")) like = v;
        else if (!strcmp(o, "--arch")) arch = v;
        else if (!strcmp(o, "-o")) out = v;
        else if (!strcmp(o, "--types")) a.types = v;
        else if (!strcmp(o, "--vocab")) a.vocab_path = v;
        else if (!strcmp(o, "--seed")) {
            char *end;
            errno = 0;
            seed = strtoull(v, &end, 0);
            ok = end != v && !*end && !errno && v[0] != '-';
            if (!ok) fprintf(stderr, "qplan synth: --seed '%s': expected an unsigned integer\n", v);
        } else if (!strcmp(o, "--rope-base") || !strcmp(o, "--eps")) {
            char *end;
            float f = strtof(v, &end);
            ok = end != v && !*end && f > 0;
            if (!ok) fprintf(stderr, "qplan synth: %s '%s': expected a positive number\n", o, v);
            if (o[2] == 'r') a.rope_base = f;
            else a.eps = f;
        } else {
            int32_t *dst = !strcmp(o, "--n-layer")     ? &a.n_layer
                         : !strcmp(o, "--n-embd")      ? &a.n_embd
                         : !strcmp(o, "--n-head")      ? &a.n_head
                         : !strcmp(o, "--n-head-kv")   ? &a.n_head_kv
                         : !strcmp(o, "--n-ff")        ? &a.n_ff
                         : !strcmp(o, "--n-vocab")     ? &a.n_vocab
                         : !strcmp(o, "--n-ctx")       ? &a.n_ctx
                                                       : NULL;
            if (!dst) {
                fprintf(stderr, "qplan synth: unknown option '%s'\n", o);
                print_usage(stderr);
                return 2;
            }
            ok = arg_int(o, v, 1, 1 << 30, &n);
            if (ok) *dst = (int32_t)n;
        }
        if (!ok) return 2;
    }
    if (!out || (!like == !arch)) {
        fprintf(stderr, "qplan synth: give -o and exactly one of --like and --arch\n");
        print_usage(stderr);
        return 2;
    }
    struct qp_error err = {{0}};
    enum qp_status s;
    if (like) {
        s = qp_synth_write_like(like, seed, out, &err);
    } else {
        if (strcmp(arch, "qwen2") != 0) {
            fprintf(stderr, "qplan synth: --arch '%s': only qwen2 is supported\n", arch);
            return 2;
        }
        if (!a.n_layer || !a.n_embd || !a.n_head || !a.n_head_kv || !a.n_ff ||
            (!a.n_vocab && !a.vocab_path)) {
            fprintf(stderr, "qplan synth: --arch qwen2 needs --n-layer, --n-embd, --n-head, "
                            "--n-head-kv, --n-ff and --n-vocab or --vocab\n");
            return 2;
        }
        s = qp_synth_write_arch(&a, seed, out, &err);
    }
    if (s != QP_OK) {
        fprintf(stderr, "qplan synth: %s\n", err.msg);
        return 1;
    }
    return 0;
}
