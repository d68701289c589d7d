/* test_perplexity_model.c — `qrun --perplexity` on the default real model (label model; skips
 * with the reason when the model, its checked-in plan or Debian's GPL-3 text is absent): the
 * CPU backend's perplexity over the first 2 chunks of /usr/share/common-licenses/GPL-3 with
 * -c 512 equals the recorded value to 4 decimals.
 * The recorded value is the CPU backend's own (docs/fidelity.md, where the 14-chunk run and the
 * comparison with llama.cpp and the double-precision oracle are): the CPU ops sum each output
 * in one fixed order whatever the thread count, so the value is reproducible to far better
 * than 1e-4; a change in any op, the tokenizer or the method moves it.
 */
#define _XOPEN_SOURCE 700
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "qrun.h"
#include "qrun_perplexity.h"

#define GPL3 "/usr/share/common-licenses/GPL-3"
#define PLAN QP_SOURCE_DIR "/plans/qwen2.5-coder-0.5b-instruct-q4_k_m.yaml"
#define RECORDED_PPL 4.719954 /* qrun --perplexity -c 512 --chunks 2, CPU backend ([1]4.8700,[2]4.7200) */
#define RECORDED_TOKENS 7486 /* GPL-3 in the Qwen2.5 vocabulary (llama.cpp: the same tokens) */

static const char *model_path(void) {
    static char p[1024];
    const char *env = getenv("QP_MODEL");
    if (env && *env) return access(env, R_OK) == 0 ? env : NULL;
    snprintf(p, sizeof p, "%s/.cache/qplan/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
             getenv("HOME") ? getenv("HOME") : "");
    return access(p, R_OK) == 0 ? p : NULL;
}

int main(void) {
    const char *model = model_path();
    if (!model) {
        printf("skip: the default model is not in ~/.cache/qplan (scripts/fetch-model.sh) nor at $QP_MODEL\n");
        return 77;
    }
    if (access(GPL3, R_OK) != 0) {
        printf("skip: %s is absent (Debian's base-files package installs it)\n", GPL3);
        return 77;
    }
    if (access(PLAN, R_OK) != 0) {
        printf("skip: %s is absent\n", PLAN);
        return 77;
    }
    struct qrun_options qo = qrun_options_default();
    qo.device = "cpu";
    qo.model_path = model;
    qo.n_ctx = 512;
    struct qrun *q = NULL;
    struct qp_error oe = {{0}};
    if (qrun_open(PLAN, &qo, &q, &oe) != QP_OK) {
        printf("FAIL: qrun_open %s: %s\n", PLAN, oe.msg);
        return 1;
    }
    struct qrun_ppl_options o = qrun_ppl_options_default();
    o.n_ctx = 512;
    o.n_chunks = 2;
    struct qrun_ppl_result r;
    struct qp_error e = {{0}};
    FILE *f = fopen(GPL3, "rb");
    static char text[1 << 17];
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f) fclose(f);
    text[n] = 0;
    CHECK(n > 30000 && n < sizeof text - 1, "%s: %zu bytes", GPL3, n);
    CHECK(qrun_perplexity(q, text, n, &o, stdout, &r, &e) == QP_OK, "perplexity: %s", e.msg);
    printf("GPL-3: %lld tokens; PPL over 2 chunks of 512 = %.6f +/- %.5f (recorded %.6f), %.1f s\n",
           (long long)r.n_text_tokens, r.ppl, r.ppl_err, RECORDED_PPL, r.seconds);
    CHECK(r.n_text_tokens == RECORDED_TOKENS, "GPL-3 is %lld tokens, recorded %d",
          (long long)r.n_text_tokens, RECORDED_TOKENS);
    CHECK(fabs(r.ppl - RECORDED_PPL) < 1e-4, "PPL %.6f differs from the recorded %.6f", r.ppl,
          RECORDED_PPL);
    qrun_close(q);
    printf("%s: %d failure(s)\n", failures ? "FAIL" : "ok", failures);
    return failures ? 1 : 0;
}
