/* runtime_common.h — helpers shared by the runtime's end-to-end tests: temporary folders,
 * running qplan (synth, compile), comparing logits with the oracle, collecting generations.
 * Header-only (static functions) so each test is one executable.
 */
#pragma once
#define _XOPEN_SOURCE 700
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qp_gguf.h"
#include "qrun.h"
#include "qwen2_ref.h"

#include "check.h"

#define QPLAN QP_BUILD_DIR "/compiler/qplan"

static char tmpdir[512];

static inline void tmp_init(const char *tag) {
    snprintf(tmpdir, sizeof tmpdir, "%s/%s.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", tag);
    if (!mkdtemp(tmpdir)) {
        printf("cannot create a temporary folder\n");
        exit(1);
    }
}

static inline void tmp_cleanup(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", tmpdir);
}

/* Runs a shell command (printf-style); exits the test on failure (a broken qplan is a
 * failure of this test's premise, reported with the command). */
static inline void sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    printf("$ %s\n", cmd);
    fflush(stdout);
    int rc = system(cmd);
    if (rc != 0) {
        printf("FAIL: command exited with %d\n", rc);
        exit(1);
    }
}

static struct qrun *open_plan(const char *plan, const char *model, int64_t n_ctx) {
    struct qrun_options o = qrun_options_default();
    o.device = "cpu";
    o.model_path = model;
    o.n_ctx = n_ctx;
    struct qp_error e = {{0}};
    struct qrun *q = NULL;
    if (qrun_open(plan, &o, &q, &e) != QP_OK) {
        printf("FAIL: qrun_open %s: %s\n", plan, e.msg);
        exit(1);
    }
    return q;
}

/* |a - b| <= tol * max(1, max |b|) over n logits; returns the worst ratio err / scale. */
static inline double logits_err(const float *a, const float *b, int32_t n, int32_t *worst) {
    double mx = 1.0, e = 0.0;
    for (int32_t i = 0; i < n; i++)
        if (fabs((double)b[i]) > mx) mx = fabs((double)b[i]);
    *worst = 0;
    for (int32_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > e) {
            e = d;
            *worst = i;
        }
    }
    return e / mx;
}

static inline int32_t argmax_f(const float *x, int32_t n) {
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* A generation's tokens and text, collected by the callback. */
struct collect {
    int32_t tok[4096];
    int n;
    char text[65536];
    size_t len;
    int stop_after; /* return nonzero after this many tokens (0: never) */
    volatile sig_atomic_t *flag_after; /* set after stop_after tokens instead */
};

static inline int collect_cb(void *user, int32_t token, const char *text, size_t len) {
    struct collect *c = user;
    if (token >= 0 && c->n < 4096) c->tok[c->n++] = token;
    if (c->len + len < sizeof c->text) {
        memcpy(c->text + c->len, text, len);
        c->len += len;
        c->text[c->len] = 0;
    }
    if (c->stop_after && c->n >= c->stop_after) {
        if (c->flag_after) {
            *c->flag_after = 1;
            return 0;
        }
        return 1;
    }
    return 0;
}
