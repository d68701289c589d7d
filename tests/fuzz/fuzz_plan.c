/* fuzz_plan.c — libFuzzer target for the plan loader and validator: any bytes must give QP_OK
 * or a clean error with a message, never a crash, hang or out-of-bounds access (ASan/UBSan run
 * with it). Beyond "no crash", one property is checked: a plan that loads and validates must
 * write (qp_plan_write_memory), read back, validate again and write again to the same bytes
 * (emit ▸ parse ▸ emit is a fixed point), so the validator accepts nothing the writer cannot
 * express. A plan that loads but does not validate is still written once (the writer must not
 * crash on a plan it did not build). A broken property aborts (libFuzzer keeps the input). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qp_plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink;

static void broken(const char *what, const struct qp_error *err) {
    fprintf(stderr, "fuzz_plan: property broken: %s: %s\n", what, err ? err->msg : "");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct qp_plan *p = NULL;
    struct qp_error err = {{0}};
    enum qp_status st = qp_plan_read_memory((const char *)data, size, "fuzz.yaml", &p, &err);
    if (st != QP_OK) {
        if (p) broken("failed read left a plan", &err);
        if (!err.msg[0]) broken("failed read without a message", NULL);
        return 0;
    }
    bool valid = qp_plan_validate(p, &err) == QP_OK;
    if (!valid && !err.msg[0]) broken("failed validation without a message", NULL);
    char *text = NULL;
    size_t len = 0;
    st = qp_plan_write_memory(p, &text, &len, &err);
    if (!valid) {
        if (st == QP_OK) sink += len;
        free(text);
        qp_plan_free(p);
        return 0;
    }
    if (st != QP_OK) broken("a valid plan does not write", &err);
    struct qp_plan *q = NULL;
    if (qp_plan_read_memory(text, len, "fuzz-rewritten.yaml", &q, &err) != QP_OK)
        broken("a written valid plan does not read back", &err);
    if (qp_plan_validate(q, &err) != QP_OK) broken("a written valid plan does not validate", &err);
    char *text2 = NULL;
    size_t len2 = 0;
    if (qp_plan_write_memory(q, &text2, &len2, &err) != QP_OK)
        broken("a re-read plan does not write", &err);
    if (len2 != len || memcmp(text, text2, len) != 0) broken("emit/parse/emit differs", NULL);
    free(text2);
    free(text);
    qp_plan_free(q);
    qp_plan_free(p);
    return 0;
}
