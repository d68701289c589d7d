/* cmd_compile.c — `qplan compile model.gguf [-o plan.yaml] [--ctx N] [--kv-type f16|f32]
 * [--chunk N] [--no-fuse NAME|all]... [--target sm_NN] [--sms N] [--matvec-tokens N]
 * [--kernel PATTERN=NAME]...`: compiles a GGUF into a plan, writes it atomically and prints a
 * summary (fusions applied, programs and their kernels, arena / KV / weight bytes). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "qp_compile.h"
#include "qp_ggml.h"

static void usage(FILE *f) {
    fprintf(f, "usage: qplan compile model.gguf [-o plan.yaml] [--ctx N] [--kv-type f16|f32]\n"
               "                    [--chunk N] [--no-fuse NAME]... [--target sm_NN] [--sms N]\n"
               "                    [--matvec-tokens N] [--kernel PATTERN=NAME]... [--int8-activations]\n"
               "                    [--header-only]\n"
               "  -o PATH         output plan (default: model name with .yaml, in the current folder)\n"
               "  --ctx N         KV cache positions (default: min(model context, %d))\n"
               "  --kv-type T     KV cache type f16 (default) or f32\n"
               "  --chunk N       prefill tokens per step (default: min(%d, ctx))\n"
               "  --no-fuse NAME  skip a fusion pass: fuse_norm, fuse_qkv, fuse_swiglu,\n"
               "                  fuse_residual, fuse_lm_head, or all (repeatable)\n"
               "  --target sm_NN  the GPU architecture to choose kernels for (default sm_%d: H100, H200)\n"
               "  --sms N         its streaming multiprocessors, for grid sizes (default: 132 for sm_90)\n"
               "  --matvec-tokens N  chunks of up to N tokens run the matvec kernels (program\n"
               "                  prefill_small; default %d, 0 for none)\n"
               "  --slots N       sequences decoded together, each its own KV cache of --ctx positions\n"
               "                  (default 1); N >= 2 adds the batch programs batch_2, batch_4, ... N\n"
               "  --kernel PATTERN=NAME  run kernel NAME on the nodes PATTERN matches (repeatable):\n"
               "                  PROGRAM:OP[:WEIGHT], shell globs, e.g. 'decode:linear=mmv',\n"
               "                  '*:attention=attn_split', 'decode:linear:blk.*.ffn_down.weight=mmv'\n"
               "  --int8-activations  one-token linears where it measured faster (gate+up of\n"
               "                  matrices beyond one wave, Q8_0/Q5_0/Q4_0 LM heads) quantize\n"
               "                  their input to 8 bits (kernel mmvq): faster decode, a small\n"
               "                  fidelity cost (docs/fidelity.md)\n"
               "  --header-only   accept a GGUF without tensor data (synthetic shapes)\n",
            QP_COMPILE_DEFAULT_CTX, QP_COMPILE_DEFAULT_CHUNK, QP_COMPILE_DEFAULT_SM,
            QP_COMPILE_DEFAULT_MATVEC_TOKENS);
}

static bool parse_int(const char *s, int64_t *out) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < 1 || v > INT32_MAX) return false;
    *out = v;
    return true;
}

static void human(char *b, size_t n, uint64_t v) {
    if (v >= (1ull << 30)) snprintf(b, n, "%.2f GiB", (double)v / (1ull << 30));
    else snprintf(b, n, "%.2f MiB", (double)v / (1ull << 20));
}

#define QP_MAX_OVERRIDES 64

int qp_cmd_compile(int argc, char **argv) {
    struct qp_compile_options o;
    qp_compile_options_default(&o);
    struct qp_kernel_override ov[QP_MAX_OVERRIDES];
    char ov_text[QP_MAX_OVERRIDES][256];
    o.overrides = ov;
    const char *model = NULL, *out_path = NULL;
    unsigned flags = QP_GGUF_DEFAULT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-o") && has_val) {
            out_path = argv[++i];
        } else if (!strcmp(a, "--ctx") && has_val) {
            if (!parse_int(argv[++i], &o.ctx)) {
                fprintf(stderr, "qplan compile: --ctx '%s' is not a positive integer\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--chunk") && has_val) {
            if (!parse_int(argv[++i], &o.chunk)) {
                fprintf(stderr, "qplan compile: --chunk '%s' is not a positive integer\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--kv-type") && has_val) {
            const char *t = argv[++i];
            if (!strcmp(t, "f16")) o.kv_type = QP_GGML_F16;
            else if (!strcmp(t, "f32")) o.kv_type = QP_GGML_F32;
            else {
                fprintf(stderr, "qplan compile: --kv-type '%s': expected f16 or f32\n", t);
                return 2;
            }
        } else if (!strcmp(a, "--no-fuse") && has_val) {
            const char *n = argv[++i];
            if (!strcmp(n, "all")) {
                o.disabled = (1u << QP_PASS_COUNT) - 1;
            } else {
                int k = qp_pass_from_name(n);
                if (k < 0) {
                    fprintf(stderr, "qplan compile: --no-fuse '%s': unknown pass (passes: "
                                    "fuse_norm, fuse_qkv, fuse_swiglu, fuse_residual, "
                                    "fuse_lm_head, all)\n", n);
                    return 2;
                }
                o.disabled |= 1u << k;
            }
        } else if (!strcmp(a, "--target") && has_val) {
            const char *t = argv[++i];
            int64_t sm = 0;
            if (strncmp(t, "sm_", 3) != 0 || !parse_int(t + 3, &sm) || sm < 50 || sm > 200) {
                fprintf(stderr, "qplan compile: --target '%s': expected sm_NN (e.g. sm_90 for H100/H200, sm_80 for A100)\n", t);
                return 2;
            }
            o.sm = (int32_t)sm;
        } else if (!strcmp(a, "--sms") && has_val) {
            int64_t v = 0;
            if (!parse_int(argv[++i], &v) || v > 4096) {
                fprintf(stderr, "qplan compile: --sms '%s' is not a count of 1..4096\n", argv[i]);
                return 2;
            }
            o.sms = (int32_t)v;
        } else if (!strcmp(a, "--slots") && has_val) {
            int64_t v = 0;
            if (!parse_int(argv[++i], &v) || v > 65536) {
                fprintf(stderr, "qplan compile: --slots '%s' is not a count of 1..65536\n", argv[i]);
                return 2;
            }
            o.slots = (int32_t)v;
        } else if (!strcmp(a, "--matvec-tokens") && has_val) {
            int64_t v = 0;
            const char *t = argv[++i];
            if (strcmp(t, "0") != 0 && !parse_int(t, &v)) {
                fprintf(stderr, "qplan compile: --matvec-tokens '%s' is not a token count\n", t);
                return 2;
            }
            o.matvec_tokens = (int32_t)v;
        } else if (!strcmp(a, "--kernel") && has_val) {
            const char *t = argv[++i], *eq = strrchr(t, '=');
            if (!eq || eq == t || !eq[1] || strlen(t) >= sizeof ov_text[0] || !strchr(t, ':') ||
                strchr(t, ':') > eq) {
                fprintf(stderr, "qplan compile: --kernel '%s': expected PROGRAM:OP[:WEIGHT]=NAME, e.g. decode:linear=mmv\n", t);
                return 2;
            }
            if (o.n_overrides == QP_MAX_OVERRIDES) {
                fprintf(stderr, "qplan compile: more than %d --kernel options\n", QP_MAX_OVERRIDES);
                return 2;
            }
            char *c = ov_text[o.n_overrides];
            memcpy(c, t, strlen(t) + 1);
            c[eq - t] = 0;
            ov[o.n_overrides++] = (struct qp_kernel_override){c, c + (eq - t) + 1};
        } else if (!strcmp(a, "--int8-activations")) {
            o.int8_activations = true;
        } else if (!strcmp(a, "--header-only")) {
            flags |= QP_GGUF_HEADER_ONLY;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "qplan compile: unknown option or missing value: %s\n", a);
            usage(stderr);
            return 2;
        } else if (!model) {
            model = a;
        } else {
            fprintf(stderr, "qplan compile: more than one model given: %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr, "qplan compile: no model given\n");
        usage(stderr);
        return 2;
    }
    char def_out[4096];
    if (!out_path) {
        const char *b = strrchr(model, '/');
        b = b ? b + 1 : model;
        size_t n = strlen(b);
        if (n > 5 && !strcmp(b + n - 5, ".gguf")) n -= 5;
        snprintf(def_out, sizeof def_out, "%.*s.yaml", (int)n, b);
        out_path = def_out;
    }

    struct qp_error err;
    struct qp_gguf *g;
    if (qp_gguf_open(model, flags, &g, &err) != QP_OK) {
        fprintf(stderr, "qplan compile: %s\n", err.msg);
        return 1;
    }
    struct qp_plan *p;
    struct qp_compile_stats s;
    enum qp_status st = qp_compile(g, &o, &p, &s, &err);
    qp_gguf_close(g);
    if (st != QP_OK) {
        fprintf(stderr, "qplan compile: %s\n", err.msg);
        return 1;
    }
    st = qp_plan_write(p, out_path, &err);
    if (st != QP_OK) {
        fprintf(stderr, "qplan compile: %s\n", err.msg);
        qp_plan_free(p);
        return 1;
    }
    char a[32], kv[32], w[32];
    human(a, sizeof a, p->memory.arena_bytes);
    human(kv, sizeof kv, p->memory.kv_bytes);
    human(w, sizeof w, p->memory.weight_bytes);
    printf("qplan: %s (%s, %" PRId64 " layers, %" PRId64 " wide, vocab %" PRId64 ") -> %s\n",
           model, p->hparams.arch, p->hparams.n_layer, p->hparams.n_embd, p->hparams.n_vocab,
           out_path);
    printf("  context      %" PRId64 "%s, prefill chunk %" PRId64 ", KV %s, %" PRId64 " slot%s\n", p->limits.max_ctx,
           s.ctx_defaulted ? " (default: min(model context, 4096))" : "", p->limits.max_chunk,
           p->kv.type == QP_GGML_F32 ? "f32" : "f16", p->kv.slots, p->kv.slots == 1 ? "" : "s");
    printf("  fusions applied\n");
    for (int k = 0; k < QP_PASS_COUNT; k++)
        if (!(o.disabled & (1u << k)))
            printf("    %-14s %d\n", qp_pass_name((enum qp_pass)k), s.fused[k]);
        else
            printf("    %-14s off\n", qp_pass_name((enum qp_pass)k));
    printf("  target       %s sm_%d, %d SMs\n", p->target.backend, p->target.sm, p->target.sms);
    printf("  programs     %d unfused nodes ->", s.unfused_nodes);
    for (int32_t k = 0; k < p->n_programs; k++)
        printf("%s %s (%d..%d tokens%s) %d nodes", k ? "," : "", p->programs[k].name, p->programs[k].min_tok,
               p->programs[k].max_tok, p->programs[k].capture ? ", captured" : "", p->programs[k].n_nodes);
    printf("\n");
    printf("  removed      %d dead buffers, %d weights replaced by stacked ones\n",
           s.removed_buffers, s.removed_weights);
    printf("  memory       arena %" PRIu64 " bytes (%s), of which KV %" PRIu64 " (%s); weights %"
           PRIu64 " (%s) in %d plan weights; %d buffers\n",
           p->memory.arena_bytes, a, p->memory.kv_bytes, kv, p->memory.weight_bytes, w,
           p->n_weights, p->n_buffers);
    qp_plan_free(p);
    return 0;
}
