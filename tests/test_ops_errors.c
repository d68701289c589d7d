/* test_ops_errors.c — the CPU op entries reject bad arguments with a status and a message
 * (never a crash): shape mismatches, wrong part counts, unknown or unreadable weight types, bad
 * row_bytes, bad head geometry, NULL buffers, a token outside the vocabulary, a step state that
 * disagrees with n_tok, and the context-full case (QP_ERR_RANGE, cache left untouched). Also the
 * op table's names. Each case starts from valid arguments (checked to succeed) and breaks one
 * thing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops_util.h"
#include "qp_ggml.h"

static void expect_status(const char *what, const struct qp_op_args *a, enum qp_status want, const char *needle) {
    struct qp_error err = {{0}};
    enum qp_status s = qp_cpu_ops[a->op](a, &err);
    bool ok = s == want && (s == QP_OK || (err.msg[0] && (!needle || strstr(err.msg, needle))));
    tu_expect(ok, "%s: %s%s%s", what, qp_status_str(s), err.msg[0] ? ": " : "", err.msg);
}

static void test_op_table(void) {
    static const char *const names[QP_OP_COUNT] = {"embed", "rms_norm", "linear", "rope", "kv_write",
                                                    "attention", "swiglu", "add", "argmax", "step_advance"};
    bool ok = true;
    for (int i = 0; i < QP_OP_COUNT; i++) {
        const struct qp_op_desc *d = qp_op_desc((enum qp_op)i);
        ok = ok && d && (int)d->op == i && strcmp(d->name, names[i]) == 0 && qp_op_find(names[i]) == d && qp_cpu_ops[i];
    }
    tu_expect(ok, "op table: every op has its plan name, qp_op_find inverts it, a CPU function");
    tu_expect(!qp_op_desc(QP_OP_COUNT) && !qp_op_desc((enum qp_op)-1) && !qp_op_find("matmul") && !qp_op_find(NULL),
              "op table: out-of-range ops and unknown names give NULL");
    const char *pro[] = {"none", "rms_norm"}, *epi[] = {"none", "residual", "swiglu", "rope_kv", "argmax"};
    ok = true;
    for (int i = 0; i < 2; i++) ok = ok && !strcmp(qp_prologue_name(i), pro[i]) && qp_prologue_from_name(pro[i]) == i;
    for (int i = 0; i < 5; i++) ok = ok && !strcmp(qp_epilogue_name(i), epi[i]) && qp_epilogue_from_name(epi[i]) == i;
    tu_expect(ok && qp_prologue_from_name("swiglu") == -1 && qp_epilogue_from_name("rms_norm") == -1 &&
                  !qp_epilogue_name((enum qp_epilogue)5) && !qp_prologue_name((enum qp_prologue)2),
              "op table: prologue and epilogue names round-trip; unknown ones are rejected");
}

int main(void) {
    tu_seed("test_ops_errors");
    test_op_table();
    enum { D = 64, R = 32, NH = 2, HD = 16, KVD = 16, CTX = 8 };
    struct tu_weight w, wk, wv, wq;
    tu_weight_rand(&w, QP_GGML_F32, R, D, 1.0f);
    tu_weight_rand(&wq, QP_GGML_F32, NH * HD, D, 1.0f);
    tu_weight_rand(&wk, QP_GGML_F32, KVD, D, 1.0f);
    tu_weight_rand(&wv, QP_GGML_F16, KVD, D, 1.0f);
    float *x = tu_alloc(4 * 8 * 4096), *y = tu_alloc(4 * 8 * 4096), *norm = tu_alloc(4 * 4096);
    tu_fill(x, 8 * D, -1, 1);
    tu_fill(norm, D, -1, 1);
    struct qp_kv_ref kv = {tu_alloc(4 * CTX * KVD), tu_alloc(4 * CTX * KVD), QP_GGML_F32, CTX, KVD, 1};
    union tu_step sb;
    tu_step_chunk(&sb, 0, 2);

    /* linear */
    struct qp_op_args lin = {.op = QP_OP_LINEAR, .n_tok = 2, .in0 = x, .out = y, .in_w = D, .out_w = R,
                             .n_parts = 1, .w = {w.w}};
    expect_status("linear valid", &lin, QP_OK, NULL);
    struct qp_op_args a = lin;
    a.in_w = D + 32;
    expect_status("linear in_w != weight cols", &a, QP_ERR_INVALID, "columns");
    a = lin, a.out_w = R + 1;
    expect_status("linear out_w != rows", &a, QP_ERR_INVALID, "out_w");
    a = lin, a.n_parts = 0;
    expect_status("linear 0 parts", &a, QP_ERR_INVALID, "parts");
    a = lin, a.n_parts = 4;
    expect_status("linear 4 parts", &a, QP_ERR_INVALID, "parts");
    a = lin, a.w[0].type = QP_GGML_IQ2_XXS;
    expect_status("linear IQ2_XXS weight", &a, QP_ERR_UNSUPPORTED, "IQ2_XXS");
    a = lin, a.w[0].type = 99;
    expect_status("linear unknown type id", &a, QP_ERR_UNSUPPORTED, "99");
    a = lin, a.w[0].row_bytes = 4 * D - 4;
    expect_status("linear wrong row_bytes", &a, QP_ERR_INVALID, "row_bytes");
    a = lin, a.w[0].data = NULL;
    expect_status("linear weight without data", &a, QP_ERR_INVALID, "no data");
    a = lin, a.in0 = NULL;
    expect_status("linear NULL in0", &a, QP_ERR_INVALID, "in0");
    a = lin, a.n_tok = 0;
    expect_status("linear n_tok 0", &a, QP_ERR_INVALID, "n_tok");
    a = lin, a.prologue = QP_PROLOGUE_RMS_NORM;
    expect_status("linear rms_norm prologue without norm", &a, QP_ERR_INVALID, "norm");
    a = lin, a.prologue = (enum qp_prologue)7;
    expect_status("linear unknown prologue", &a, QP_ERR_INVALID, "prologue");
    a = lin, a.epilogue = (enum qp_epilogue)9;
    expect_status("linear unknown epilogue", &a, QP_ERR_INVALID, "epilogue");
    a = lin, a.epilogue = QP_EPILOGUE_RESIDUAL;
    expect_status("linear residual without in1", &a, QP_ERR_INVALID, "in1");
    a = lin, a.epilogue = QP_EPILOGUE_ARGMAX;
    expect_status("linear argmax without step", &a, QP_ERR_INVALID, "step");
    a = lin, a.epilogue = QP_EPILOGUE_SWIGLU;
    expect_status("linear swiglu with 1 part", &a, QP_ERR_INVALID, "2 parts");
    a = lin, a.epilogue = QP_EPILOGUE_SWIGLU, a.n_parts = 2, a.w[1] = wk.w;
    expect_status("linear swiglu with unequal parts", &a, QP_ERR_INVALID, "equal rows");
    a = lin, a.in_w = 8192, a.w[0].cols = 8192, a.w[0].row_bytes = 4 * 8192, a.prologue = QP_PROLOGUE_RMS_NORM,
    a.norm = norm, a.epilogue = QP_EPILOGUE_SWIGLU, a.n_parts = 2, a.w[0].rows = 1, a.w[1] = a.w[0];
    a.w[0].rows = a.w[1].rows = 30000, a.out_w = 30000; /* checked before any read: data is never touched */
    expect_status("linear swiglu too wide for the workspace", &a, QP_ERR_INVALID, "scratch");

    /* rope_kv */
    struct qp_op_args rkv = {.op = QP_OP_LINEAR, .n_tok = 2, .step = &sb.s, .in0 = x, .out = y, .in_w = D,
                             .out_w = NH * HD, .n_parts = 3, .w = {wq.w, wk.w, wv.w}, .epilogue = QP_EPILOGUE_ROPE_KV,
                             .n_head = NH, .n_head_kv = 1, .head_dim = HD, .rope_base = 1e6f, .kv = kv};
    expect_status("rope_kv valid", &rkv, QP_OK, NULL);
    a = rkv, a.n_parts = 2;
    expect_status("rope_kv 2 parts", &a, QP_ERR_INVALID, "3 parts");
    a = rkv, a.w[1] = wq.w;
    expect_status("rope_kv k rows != kv_dim", &a, QP_ERR_INVALID, "rows");
    a = rkv, a.head_dim = 15;
    expect_status("rope_kv odd head_dim", &a, QP_ERR_INVALID, "head_dim");
    a = rkv, a.n_head = 3, a.n_head_kv = 2;
    expect_status("rope_kv n_head not a multiple of n_head_kv", &a, QP_ERR_INVALID, "n_head");
    a = rkv, a.n_head_kv = 2;
    expect_status("rope_kv kv_dim != n_head_kv*head_dim", &a, QP_ERR_INVALID, "kv_dim");
    a = rkv, a.kv.type = QP_GGML_Q8_0;
    expect_status("rope_kv Q8_0 cache", &a, QP_ERR_UNSUPPORTED, "cache type");
    a = rkv, a.kv.v = NULL;
    expect_status("rope_kv cache not bound", &a, QP_ERR_INVALID, "not bound");
    sb.s.n_tok = 3;
    expect_status("rope_kv step n_tok != n_tok", &rkv, QP_ERR_INVALID, "n_tok");
    sb.s.n_tok = 2, sb.s.rows[0].pos = -1;
    expect_status("rope_kv negative position", &rkv, QP_ERR_INVALID, "negative");
    /* context full: positions 7, 8 in a cache of 8; nothing written */
    tu_step_chunk(&sb, CTX - 1, 2);
    memset(kv.k, 0x5a, 4 * CTX * KVD);
    memset(y, 0, 4 * 2 * NH * HD);
    expect_status("rope_kv past the context", &rkv, QP_ERR_RANGE, "context full");
    bool untouched = true;
    for (int i = 0; i < 4 * CTX * KVD; i++) untouched = untouched && ((unsigned char *)kv.k)[i] == 0x5a;
    tu_expect(untouched, "  ... the K cache is left untouched");
    tu_step_chunk(&sb, CTX - 2, 2);
    expect_status("rope_kv filling the context exactly", &rkv, QP_OK, NULL);

    /* kv_write, attention, rope */
    tu_step_chunk(&sb, CTX - 1, 2);
    struct qp_op_args kw = {.op = QP_OP_KV_WRITE, .n_tok = 2, .step = &sb.s, .in0 = x, .in1 = x, .in_w = KVD,
                            .n_head = NH, .n_head_kv = 1, .head_dim = HD, .kv = kv};
    expect_status("kv_write past the context", &kw, QP_ERR_RANGE, "context full");
    struct qp_op_args at = {.op = QP_OP_ATTENTION, .n_tok = 2, .step = &sb.s, .in0 = x, .out = y, .in_w = NH * HD,
                            .out_w = NH * HD, .n_head = NH, .n_head_kv = 1, .head_dim = HD, .kv = kv};
    expect_status("attention past the context", &at, QP_ERR_RANGE, "context full");
    tu_step_chunk(&sb, 0, 2);
    expect_status("kv_write valid", &kw, QP_OK, NULL);
    expect_status("attention valid", &at, QP_OK, NULL);
    a = kw, a.in_w = 2 * KVD;
    expect_status("kv_write in_w != kv_dim", &a, QP_ERR_INVALID, "in_w");
    a = kw, a.in1 = NULL;
    expect_status("kv_write without V", &a, QP_ERR_INVALID, "in1");
    a = at, a.out_w = HD;
    expect_status("attention out_w", &a, QP_ERR_INVALID, "out_w");
    a = at, a.n_head_kv = 0;
    expect_status("attention n_head_kv 0", &a, QP_ERR_INVALID, "n_head_kv");
    a = at, a.head_dim = 4096;
    expect_status("attention head_dim too large", &a, QP_ERR_INVALID, "head_dim");
    a = at, a.step = NULL;
    expect_status("attention without step", &a, QP_ERR_INVALID, "step");
    struct qp_op_args ro = {.op = QP_OP_ROPE, .n_tok = 2, .step = &sb.s, .out = y, .out_w = NH * HD, .n_head = NH,
                            .head_dim = HD, .rope_base = 1e6f};
    expect_status("rope valid", &ro, QP_OK, NULL);
    a = ro, a.out_w = NH * HD + 2;
    expect_status("rope out_w != n_head*head_dim", &a, QP_ERR_INVALID, "out_w");

    /* embed, rms_norm, swiglu, add, argmax, step_advance */
    sb.s.rows[0].token = 3, sb.s.rows[1].token = R - 1;
    struct qp_op_args em = {.op = QP_OP_EMBED, .n_tok = 2, .step = &sb.s, .out = y, .out_w = D, .n_parts = 1,
                            .w = {w.w}};
    expect_status("embed valid", &em, QP_OK, NULL);
    sb.s.rows[1].token = R;
    expect_status("embed token == vocab size", &em, QP_ERR_RANGE, "vocabulary");
    sb.s.rows[1].token = -1;
    expect_status("embed negative token", &em, QP_ERR_RANGE, "vocabulary");
    sb.s.rows[1].token = 0;
    a = em, a.out_w = D + 1;
    expect_status("embed out_w != cols", &a, QP_ERR_INVALID, "out_w");
    struct qp_op_args rn = {.op = QP_OP_RMS_NORM, .n_tok = 2, .in0 = x, .out = y, .in_w = D, .out_w = D,
                            .norm = norm, .eps = 1e-6f};
    expect_status("rms_norm valid", &rn, QP_OK, NULL);
    a = rn, a.out_w = 2 * D;
    expect_status("rms_norm out_w != in_w", &a, QP_ERR_INVALID, "out_w");
    a = rn, a.norm = NULL;
    expect_status("rms_norm without weight", &a, QP_ERR_INVALID, "norm");
    a = rn, a.eps = -1.0f;
    expect_status("rms_norm negative eps", &a, QP_ERR_INVALID, "eps");
    struct qp_op_args sw = {.op = QP_OP_SWIGLU, .n_tok = 2, .in0 = x, .in1 = x, .out = y, .in_w = D, .out_w = D};
    expect_status("swiglu valid", &sw, QP_OK, NULL);
    a = sw, a.in_w = D / 2;
    expect_status("swiglu in_w != out_w", &a, QP_ERR_INVALID, "in_w");
    a = sw, a.op = QP_OP_ADD, a.in1 = NULL;
    expect_status("add without in1", &a, QP_ERR_INVALID, "in1");
    struct qp_op_args am = {.op = QP_OP_ARGMAX, .n_tok = 2, .step = &sb.s, .in0 = x, .in_w = D};
    expect_status("argmax valid", &am, QP_OK, NULL);
    a = am, a.in_w = 0;
    expect_status("argmax in_w 0", &a, QP_ERR_INVALID, "in_w");
    struct qp_op_args sa = {.op = QP_OP_STEP_ADVANCE, .n_tok = 2, .step = &sb.s};
    tu_step_chunk(&sb, INT32_MAX - 1, 2);
    expect_status("step_advance overflowing the position", &sa, QP_ERR_RANGE, "overflow");
    tu_step_chunk(&sb, 0, 2);
    expect_status("step_advance valid", &sa, QP_OK, NULL);
    tu_expect(sb.s.rows[0].pos == 2 && sb.s.n_tok == 1, "  ... pos 2, n_tok 1");
    /* a batch row in a slot past the cache's */
    tu_step_chunk(&sb, 0, 2);
    sb.s.n_out = 2;
    sb.s.rows[1].slot = 1;
    expect_status("kv_write to a slot the cache does not have", &kw, QP_ERR_RANGE, "slot 1");
    sb.s.rows[1].slot = -1; /* a padding row: nothing written, attention 0 */
    expect_status("kv_write with a padding row", &kw, QP_OK, NULL);

    free(x), free(y), free(norm), free(kv.k), free(kv.v);
    tu_weight_free(&w), tu_weight_free(&wq), tu_weight_free(&wk), tu_weight_free(&wv);
    return tu_finish("test_ops_errors");
}
