/* test_reference_model.c — the oracle against the numpy reference on the real default model
 * (label model; skipped when the model is absent or is another file than the expected logits
 * were made from).
 *
 * Expected: tests/data/reference/qwen2.5-coder-0.5b-q4_k_m.logits, the first 8 positions of
 * a fixed English prompt (scripts/make-reference-logits.sh), per position the top 16 ids and
 * 256 sampled ids of the float64 numpy forward pass.
 *
 * Tolerance: max relative error (max |oracle - numpy| / max |numpy| per position) <= 1e-4,
 * and the argmax equal at all 8 positions. The only difference is f32 accumulation (oracle)
 * vs f64 (numpy) over 24 layers with dot products of up to 4864 terms; measured 2.95e-6
 * (max abs 3.65e-5 on logits up to 24), so 1e-4 is a ~30x margin.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qp_gguf.h"
#include "qwen2_ref.h"

#define REL_TOL 1e-4

int main(int argc, char **argv) {
    if (argc != 2) {
        printf("FAIL usage: test_reference_model EXPECTED.logits\n");
        return 1;
    }
    char path[4096];
    const char *env = getenv("QP_MODEL"), *home = getenv("HOME");
    if (env && *env)
        snprintf(path, sizeof path, "%s", env);
    else
        snprintf(path, sizeof path, "%s/.cache/qplan/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                 home ? home : "");
    struct stat st;
    if (stat(path, &st) != 0) {
        printf("skip: no model at %s (scripts/fetch-model.sh fetches it; or set QP_MODEL)\n", path);
        return 77;
    }
    struct qp_error err = {{0}};
    struct qp_ref_expected e;
    if (qp_ref_expected_read(argv[1], &e, &err) != QP_OK) {
        printf("FAIL %s\n", err.msg);
        return 1;
    }
    if (e.file_bytes != (uint64_t)st.st_size) {
        printf("skip: %s is %lld bytes, the expected logits were made from %s of %llu bytes\n",
               path, (long long)st.st_size, e.model, (unsigned long long)e.file_bytes);
        qp_ref_expected_free(&e);
        return 77;
    }
    int rc = 1;
    struct qp_gguf *g = NULL;
    struct qp_ref *r = NULL;
    float *logits = NULL;
    if (qp_gguf_open(path, QP_GGUF_DEFAULT, &g, &err) != QP_OK ||
        qp_ref_open(g, e.n_tok, &r, &err) != QP_OK) {
        printf("FAIL %s\n", err.msg);
        goto done;
    }
    if (qp_ref_config(r)->n_vocab != e.n_vocab) {
        printf("FAIL %s: vocab %d, expected %d\n", path, qp_ref_config(r)->n_vocab, e.n_vocab);
        goto done;
    }
    logits = malloc((size_t)e.n_tok * (size_t)e.n_vocab * sizeof(float));
    if (!logits) goto done;
    for (int32_t p = 0; p < e.n_tok; p++)
        if (qp_ref_forward(r, e.tokens[p], p, logits + (size_t)p * (size_t)e.n_vocab, &err) !=
            QP_OK) {
            printf("FAIL %s\n", err.msg);
            goto done;
        }
    struct qp_ref_compare c;
    qp_ref_compare(&e, logits, &c);
    printf("%s, %d positions, %lld logits: max abs %.3g, max rel %.3g (pos %d id %d), top-1 "
           "%d/%d\n", e.model, e.n_tok, (long long)e.n_entries, c.max_abs, c.max_rel,
           c.worst_pos, c.worst_id, c.top1_agree, e.n_tok);
    if (c.max_rel <= REL_TOL && c.top1_agree == e.n_tok) {
        rc = 0;
        printf("ok\n");
    } else {
        printf("FAIL max rel error %.3g (tolerance %.0e) or top-1 disagreement\n", c.max_rel,
               REL_TOL);
    }
done:
    free(logits);
    qp_ref_free(r);
    qp_gguf_close(g);
    qp_ref_expected_free(&e);
    return rc;
}
