/* test_reference_synth.c — the oracle against the numpy reference on synthetic models.
 *
 * For each expected-logits file given on the command line (tests/data/reference/synth-*.logits,
 * made once by scripts/make-reference-logits.sh): regenerate the synthetic model with the exact
 * `qplan synth` command recorded in its "meta" line, check that the generator reproduced the
 * very bytes numpy read (fnv1a64 and size), run the oracle over the recorded tokens one step
 * at a time, and compare every logit.
 *
 * Tolerance: max relative error (per position: max |oracle - numpy| / max |numpy|) <= 1e-4,
 * and the argmax equal at every position. Both sides dequantize the same blocks to the same
 * f32 values (the quant known-answer tests pin that bit for bit); what differs is the
 * arithmetic: the oracle accumulates in f32 (unit roundoff 6e-8, sums of up to 512 products,
 * a few chained layers), numpy in f64. Measured: <= 1.7e-6 on these models, so 1e-4 leaves
 * ~60x margin while an error in any formula (a wrong RoPE pairing, GQA mapping, scale, bias)
 * moves logits by O(1e-2..1) relative. A planted error of 1e-3 must be caught (checked).
 *
 * The double-precision pass (qp_ref_seq64) is held to 1e-6 over the same tokens: it does
 * numpy's arithmetic (f64 throughout) in another order, so what is left is the 9 significant
 * digits the expected file keeps and this test's f32 copy of the logits (2^-24 of each):
 * measured <= 5.0e-8, against 6.7e-7..1.7e-6 for the f32 pass. Its results must not depend on
 * the thread count (1 and 3 threads give the same bits).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "qp_gguf.h"
#include "qwen2_ref.h"

#define REL_TOL 1e-4
#define REL_TOL_64 1e-6

/* qp_ref_seq64's rows, narrowed to f32, into logits [n][n_vocab]. */
struct rows64 {
    float *logits;
    int32_t n_vocab;
};

static int take_row(void *user, int32_t pos, const double *lg) {
    struct rows64 *r = user;
    for (int32_t i = 0; i < r->n_vocab; i++)
        r->logits[(size_t)pos * (size_t)r->n_vocab + (size_t)i] = (float)lg[i];
    return 0;
}

static int check_one(const char *path) {
    struct qp_error err = {{0}};
    struct qp_ref_expected e;
    if (qp_ref_expected_read(path, &e, &err) != QP_OK) {
        printf("FAIL %s\n", err.msg);
        return 1;
    }
    int fails = 0;
    /* The recorded command, split at spaces (it has no quoted parts), plus -o OUT. */
    char cmd[1024], out[1200];
    snprintf(cmd, sizeof cmd, "%s", e.meta);
    snprintf(out, sizeof out, "%s/tests/ref-%s", QP_BUILD_DIR, e.model);
    char *argv[64];
    int argc = 0;
    for (char *tok = strtok(cmd, " "); tok && argc < 60; tok = strtok(NULL, " ")) argv[argc++] = tok;
    if (argc < 2 || strcmp(argv[0], "synth") != 0) {
        printf("FAIL %s: meta line '%s' is not a qplan synth command\n", path, e.meta);
        qp_ref_expected_free(&e);
        return 1;
    }
    argv[argc++] = "-o";
    argv[argc++] = out;
    argv[argc] = NULL;
    if (qp_cmd_synth(argc, argv) != 0) {
        printf("FAIL %s: qplan %s failed\n", path, e.meta);
        qp_ref_expected_free(&e);
        return 1;
    }
    uint64_t h = 0;
    if (qp_ref_file_fnv1a64(out, &h, &err) != QP_OK) {
        printf("FAIL %s\n", err.msg);
        qp_ref_expected_free(&e);
        return 1;
    }
    if (!e.has_fnv || h != e.fnv1a64) {
        printf("FAIL %s: the generator wrote other bytes (fnv1a64 %016llx, expected %016llx) "
               "than numpy read: a generator change (regenerate with "
               "scripts/make-reference-logits.sh if intended)\n",
               out, (unsigned long long)h, (unsigned long long)e.fnv1a64);
        qp_ref_expected_free(&e);
        return 1;
    }

    struct qp_gguf *g = NULL;
    struct qp_ref *r = NULL;
    float *logits = NULL;
    if (qp_gguf_open(out, QP_GGUF_DEFAULT, &g, &err) != QP_OK ||
        qp_ref_open(g, e.n_tok, &r, &err) != QP_OK) {
        printf("FAIL %s\n", err.msg);
        fails++;
        goto done;
    }
    const struct qp_ref_config *c = qp_ref_config(r);
    if (c->n_vocab != e.n_vocab) {
        printf("FAIL %s: vocab %d, expected %d\n", out, c->n_vocab, e.n_vocab);
        fails++;
        goto done;
    }
    logits = malloc((size_t)e.n_tok * (size_t)e.n_vocab * sizeof(float));
    if (!logits) {
        printf("FAIL out of memory\n");
        fails++;
        goto done;
    }
    for (int32_t p = 0; p < e.n_tok; p++) {
        if (qp_ref_forward(r, e.tokens[p], p, logits + (size_t)p * (size_t)e.n_vocab, &err) !=
            QP_OK) {
            printf("FAIL %s\n", err.msg);
            fails++;
            goto done;
        }
    }
    struct qp_ref_compare cmp;
    qp_ref_compare(&e, logits, &cmp);
    printf("%s: L%d D%d H%d/%d F%d V%d %s, %d positions: max abs %.3g, max rel %.3g (pos %d id "
           "%d), top-1 %d/%d\n", e.model, c->n_layer, c->n_embd, c->n_head, c->n_head_kv,
           c->n_ff, c->n_vocab, c->tied_output ? "tied" : "separate", e.n_tok, cmp.max_abs,
           cmp.max_rel, cmp.worst_pos, cmp.worst_id, cmp.top1_agree, e.n_tok);
    if (!(cmp.max_rel <= REL_TOL) || cmp.top1_agree != e.n_tok) {
        printf("FAIL %s: max rel error %.3g > %.0e or top-1 disagreement\n", out, cmp.max_rel,
               REL_TOL);
        fails++;
    }
    /* The double-precision pass over the same tokens, on 1 and 3 threads. */
    {
        const size_t cells = (size_t)e.n_tok * (size_t)e.n_vocab;
        struct rows64 a = {malloc(cells * sizeof(float)), e.n_vocab};
        struct rows64 b = {malloc(cells * sizeof(float)), e.n_vocab};
        if (!a.logits || !b.logits ||
            qp_ref_seq64(r, e.tokens, e.n_tok, 0, 1, QP_REF_EXACT, take_row, &a, &err) != QP_OK ||
            qp_ref_seq64(r, e.tokens, e.n_tok, 0, 3, QP_REF_EXACT, take_row, &b, &err) != QP_OK) {
            printf("FAIL %s: seq64: %s\n", out, a.logits && b.logits ? err.msg : "out of memory");
            fails++;
        } else {
            struct qp_ref_compare c64;
            qp_ref_compare(&e, a.logits, &c64);
            printf("%s: double-precision pass: max abs %.3g, max rel %.3g (pos %d id %d), top-1 "
                   "%d/%d\n", e.model, c64.max_abs, c64.max_rel, c64.worst_pos, c64.worst_id,
                   c64.top1_agree, e.n_tok);
            if (!(c64.max_rel <= REL_TOL_64) || c64.top1_agree != e.n_tok) {
                printf("FAIL %s: double-precision pass: max rel error %.3g > %.0e or top-1 "
                       "disagreement\n", out, c64.max_rel, REL_TOL_64);
                fails++;
            }
            if (memcmp(a.logits, b.logits, cells * sizeof(float)) != 0) {
                printf("FAIL %s: double-precision pass: 1 and 3 threads differ\n", out);
                fails++;
            }
            /* The deliberate roundings must move the logits, and not far: measured, an f16
             * cache by 3.8e-4..5.1e-4 of their scale, llama.cpp's 8-bit inputs by 1.9e-2..2.5e-2
             * (random weights: the real model's effect is in docs/fidelity.md). */
            const enum qp_ref_rounding modes[2] = {QP_REF_KV_F16, QP_REF_LLAMA_CPU};
            const double lo[2] = {1e-6, 1e-4}, hi[2] = {1e-2, 1e-1};
            for (int m = 0; m < 2; m++) {
                if (qp_ref_seq64(r, e.tokens, e.n_tok, 0, 2, modes[m], take_row, &b, &err) != QP_OK) {
                    printf("FAIL %s: seq64 rounding %d: %s\n", out, (int)modes[m], err.msg);
                    fails++;
                    continue;
                }
                qp_ref_compare(&e, b.logits, &c64);
                printf("%s: rounding %s: max rel %.3g from numpy\n", e.model,
                       m ? "llama-cpu" : "kv-f16", c64.max_rel);
                if (!(c64.max_rel >= lo[m] && c64.max_rel <= hi[m])) {
                    printf("FAIL %s: rounding %d moves the logits by %.3g, outside [%g, %g]\n", out,
                           (int)modes[m], c64.max_rel, lo[m], hi[m]);
                    fails++;
                }
            }
        }
        free(a.logits);
        free(b.logits);
    }
    /* The checker itself: one logit moved by 1e-3 of the position's scale must fail. */
    const int64_t k = e.n_entries / 2;
    float *cell = logits + (size_t)e.pos[k] * (size_t)e.n_vocab + (size_t)e.id[k];
    double scale = 0;
    for (int64_t i = 0; i < e.n_entries; i++)
        if (e.pos[i] == e.pos[k] && fabs(e.logit[i]) > scale) scale = fabs(e.logit[i]);
    *cell += (float)(1e-3 * scale);
    qp_ref_compare(&e, logits, &cmp);
    if (!(cmp.max_rel > REL_TOL)) {
        printf("FAIL %s: a planted error of 1e-3 was not caught (max rel %.3g)\n", out,
               cmp.max_rel);
        fails++;
    }
done:
    free(logits);
    qp_ref_free(r);
    qp_gguf_close(g);
    qp_ref_expected_free(&e);
    remove(out);
    return fails;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        printf("FAIL usage: test_reference_synth EXPECTED.logits EXPECTED.logits ...  (at least "
               "two models)\n");
        return 1;
    }
    int fails = 0;
    for (int i = 1; i < argc; i++) fails += check_one(argv[i]);
    printf("%s: %d of %d models failed\n", fails ? "FAIL" : "ok", fails, argc - 1);
    return fails ? 1 : 0;
}
