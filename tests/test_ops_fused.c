/* test_ops_fused.c — every fused form of linear equals its unfused op sequence bit for bit
 * (the CPU backend computes each element in the same order either way, see kernels/cpu/ops.c):
 *   rms_norm -> linear                    == linear with the rms_norm prologue
 *   linear q, k, v (+bias) -> rope q, rope k -> kv_write == linear/rope_kv (+ rms_norm prologue)
 *   linear gate, linear up -> swiglu      == linear/swiglu (+ rms_norm prologue)
 *   linear -> add                         == linear/residual (also in place: in1 == out)
 *   linear -> argmax                      == linear/argmax (+ rms_norm prologue)
 * at Qwen2.5-0.5B's shapes, 1, 7 and 40 tokens (40 needs two tiles of the prologue workspace),
 * KV caches in F16 and F32, weights of the types the real file uses for these shapes (q/k/v of
 * different types in one node, as Q4_K_M files have).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops_util.h"
#include "qp_ggml.h"

enum { DIM = 896, NH = 14, NKV = 2, HD = 64, FFN = 4864, VOCAB = 1000, MAXT = 40 };

/* Types Qwen2.5-0.5B Q4_K_M uses for rows of 896 (Q5_0, Q8_0), plus F32 and F16. */
static const int32_t weight_types[] = {QP_GGML_F32, QP_GGML_F16, QP_GGML_Q5_0, QP_GGML_Q8_0};
#define N_TYPES ((int)(sizeof weight_types / sizeof weight_types[0]))

static void run(const struct qp_op_args *a) {
    struct qp_error err = {{0}};
    enum qp_status s = qp_cpu_ops[a->op](a, &err);
    if (s != QP_OK) {
        printf("FAIL op %s: %s: %s\n", qp_op_desc(a->op)->name, qp_status_str(s), err.msg);
        tu_failures++;
    }
}

static float *fl(int64_t n) {
    return tu_alloc(sizeof(float) * (size_t)n);
}

static float *rnd(int64_t n, float lo, float hi) {
    float *x = fl(n);
    tu_fill(x, n, lo, hi);
    return x;
}


static void fused_norm_linear(int32_t type, int32_t n) {
    struct tu_weight w;
    tu_weight_rand(&w, type, DIM, DIM, 1.0f);
    float *x = rnd(n * DIM, -2, 2), *g = rnd(DIM, -1, 1), *b = rnd(DIM, -1, 1);
    float *h = fl(n * DIM), *y1 = fl(n * DIM), *y2 = fl(n * DIM);
    run(&(struct qp_op_args){.op = QP_OP_RMS_NORM, .n_tok = n, .in0 = x, .out = h, .in_w = DIM, .out_w = DIM,
                             .norm = g, .eps = 1e-6f});
    run(&(struct qp_op_args){.op = QP_OP_LINEAR, .n_tok = n, .in0 = h, .out = y1, .in_w = DIM, .out_w = DIM,
                             .n_parts = 1, .w = {w.w}, .bias = {b}});
    run(&(struct qp_op_args){.op = QP_OP_LINEAR, .n_tok = n, .in0 = x, .out = y2, .in_w = DIM, .out_w = DIM,
                             .n_parts = 1, .w = {w.w}, .bias = {b}, .prologue = QP_PROLOGUE_RMS_NORM, .norm = g,
                             .eps = 1e-6f});
    char what[96];
    snprintf(what, sizeof what, "rms_norm->linear == prologue (%s, n=%d)", qp_ggml_type_name(type), n);
    tu_check_bits(what, y1, y2, n * DIM);
    free(x), free(g), free(b), free(h), free(y1), free(y2);
    tu_weight_free(&w);
}

static void fused_qkv(int32_t type, int32_t kv_type, int32_t n, int32_t pos) {
    struct tu_weight wq, wk, wv;
    tu_weight_rand(&wq, type, NH * HD, DIM, 1.0f);
    tu_weight_rand(&wk, type, NKV * HD, DIM, 1.0f);
    tu_weight_rand(&wv, type == QP_GGML_Q8_0 ? QP_GGML_Q5_0 : QP_GGML_Q8_0, NKV * HD, DIM, 1.0f); /* mixed types */
    float *x = rnd(n * DIM, -2, 2), *g = rnd(DIM, -1, 1);
    float *bq = rnd(NH * HD, -1, 1), *bk = rnd(NKV * HD, -1, 1), *bv = rnd(NKV * HD, -1, 1);
    int64_t ctx = pos + n + 2, kvd = NKV * HD;
    size_t cb = (kv_type == QP_GGML_F16 ? 2 : 4) * (size_t)(ctx * kvd);
    struct qp_kv_ref kv1 = {tu_alloc(cb), tu_alloc(cb), kv_type, ctx, kvd, 1}, kv2 = {tu_alloc(cb), tu_alloc(cb), kv_type, ctx, kvd, 1};
    union tu_step sb;
    tu_step_chunk(&sb, pos, n);
    float *h = fl(n * DIM), *q1 = fl(n * NH * HD), *k1 = fl(n * kvd), *v1 = fl(n * kvd), *q2 = fl(n * NH * HD);
    /* unfused */
    run(&(struct qp_op_args){.op = QP_OP_RMS_NORM, .n_tok = n, .in0 = x, .out = h, .in_w = DIM, .out_w = DIM,
                             .norm = g, .eps = 1e-6f});
    run(&(struct qp_op_args){.op = QP_OP_LINEAR, .n_tok = n, .in0 = h, .out = q1, .in_w = DIM, .out_w = NH * HD,
                             .n_parts = 1, .w = {wq.w}, .bias = {bq}});
    run(&(struct qp_op_args){.op = QP_OP_LINEAR, .n_tok = n, .in0 = h, .out = k1, .in_w = DIM, .out_w = kvd,
                             .n_parts = 1, .w = {wk.w}, .bias = {bk}});
    run(&(struct qp_op_args){.op = QP_OP_LINEAR, .n_tok = n, .in0 = h, .out = v1, .in_w = DIM, .out_w = kvd,
                             .n_parts = 1, .w = {wv.w}, .bias = {bv}});
    run(&(struct qp_op_args){.op = QP_OP_ROPE, .n_tok = n, .step = &sb.s, .out = q1, .out_w = NH * HD, .n_head = NH,
                             .head_dim = HD, .rope_base = 1e6f});
    run(&(struct qp_op_args){.op = QP_OP_ROPE, .n_tok = n, .step = &sb.s, .out = k1, .out_w = kvd, .n_head = NKV,
                             .head_dim = HD, .rope_base = 1e6f});
    run(&(struct qp_op_args){.op = QP_OP_KV_WRITE, .n_tok = n, .step = &sb.s, .in0 = k1, .in1 = v1, .in_w = kvd,
                             .n_head = NH, .n_head_kv = NKV, .head_dim = HD, .kv = kv1});
    /* fused */
    run(&(struct qp_op_args){.op = QP_OP_LINEAR, .n_tok = n, .step = &sb.s, .in0 = x, .out = q2, .in_w = DIM,
                             .out_w = NH * HD, .n_parts = 3, .w = {wq.w, wk.w, wv.w}, .bias = {bq, bk, bv},
                             .prologue = QP_PROLOGUE_RMS_NORM, .norm = g, .eps = 1e-6f,
                             .epilogue = QP_EPILOGUE_ROPE_KV, .n_head = NH, .n_head_kv = NKV, .head_dim = HD,
                             .rope_base = 1e6f, .kv = kv2});
    char what[128];
    snprintf(what, sizeof what, "qkv+bias->rope->kv_write == rope_kv: q (%s, %s cache, n=%d, pos=%d)",
             qp_ggml_type_name(type), qp_ggml_type_name(kv_type), n, pos);
    tu_check_bits(what, q1, q2, n * NH * HD);
    snprintf(what, sizeof what, "  ... K cache");
    tu_check_bytes(what, kv1.k, kv2.k, cb);
    snprintf(what, sizeof what, "  ... V cache");
    tu_check_bytes(what, kv1.v, kv2.v, cb);
    free(x), free(g), free(bq), free(bk), free(bv), free(kv1.k), free(kv1.v), free(kv2.k), free(kv2.v);
    free(h), free(q1), free(k1), free(v1), free(q2);
    tu_weight_free(&wq), tu_weight_free(&wk), tu_weight_free(&wv);
}

static void fused_swiglu(int32_t type, int32_t n) {
    struct tu_weight wg, wu;
    tu_weight_rand(&wg, type, FFN, DIM, 1.0f);
    tu_weight_rand(&wu, type, FFN, DIM, 1.0f);
    float *x = rnd(n * DIM, -1, 1), *g = rnd(DIM, -1, 1);
    float *h = fl(n * DIM), *a = fl(n * FFN), *u = fl(n * FFN), *y1 = fl(n * FFN), *y2 = fl(n * FFN);
    run(&(struct qp_op_args){.op = QP_OP_RMS_NORM, .n_tok = n, .in0 = x, .out = h, .in_w = DIM, .out_w = DIM,
                             .norm = g, .eps = 1e-6f});
    run(&(struct qp_op_args){.op = QP_OP_LINEAR, .n_tok = n, .in0 = h, .out = a, .in_w = DIM, .out_w = FFN,
                             .n_parts = 1, .w = {wg.w}});
    run(&(struct qp_op_args){.op = QP_OP_LINEAR, .n_tok = n, .in0 = h, .out = u, .in_w = DIM, .out_w = FFN,
                             .n_parts = 1, .w = {wu.w}});
    run(&(struct qp_op_args){.op = QP_OP_SWIGLU, .n_tok = n, .in0 = a, .in1 = u, .out = y1, .in_w = FFN, .out_w = FFN});
    run(&(struct qp_op_args){.op = QP_OP_LINEAR, .n_tok = n, .in0 = x, .out = y2, .in_w = DIM, .out_w = FFN,
                             .n_parts = 2, .w = {wg.w, wu.w}, .prologue = QP_PROLOGUE_RMS_NORM, .norm = g,
                             .eps = 1e-6f, .epilogue = QP_EPILOGUE_SWIGLU});
    char what[96];
    snprintf(what, sizeof what, "norm->gate,up->swiglu == swiglu epilogue (%s, n=%d)", qp_ggml_type_name(type), n);
    tu_check_bits(what, y1, y2, n * FFN);
    free(x), free(g), free(h), free(a), free(u), free(y1), free(y2);
    tu_weight_free(&wg), tu_weight_free(&wu);
}

/* ffn_down (columns 4864) is Q4_K or Q6_K in the real file: the residual form is tested with those. */
static void fused_residual(int32_t type, int32_t n) {
    struct tu_weight w;
    tu_weight_rand(&w, type, DIM, FFN, 1.0f);
    float *x = rnd(n * FFN, -1, 1), *res = rnd(n * DIM, -4, 4), *b = rnd(DIM, -1, 1);
    float *y = fl(n * DIM), *o1 = fl(n * DIM), *o2 = fl(n * DIM), *o3 = fl(n * DIM);
    run(&(struct qp_op_args){.op = QP_OP_LINEAR, .n_tok = n, .in0 = x, .out = y, .in_w = FFN, .out_w = DIM,
                             .n_parts = 1, .w = {w.w}, .bias = {b}});
    run(&(struct qp_op_args){.op = QP_OP_ADD, .n_tok = n, .in0 = y, .in1 = res, .out = o1, .in_w = DIM, .out_w = DIM});
    run(&(struct qp_op_args){.op = QP_OP_LINEAR, .n_tok = n, .in0 = x, .in1 = res, .out = o2, .in_w = FFN,
                             .out_w = DIM, .n_parts = 1, .w = {w.w}, .bias = {b}, .epilogue = QP_EPILOGUE_RESIDUAL});
    memcpy(o3, res, sizeof(float) * (size_t)(n * DIM));
    run(&(struct qp_op_args){.op = QP_OP_LINEAR, .n_tok = n, .in0 = x, .in1 = o3, .out = o3, .in_w = FFN,
                             .out_w = DIM, .n_parts = 1, .w = {w.w}, .bias = {b}, .epilogue = QP_EPILOGUE_RESIDUAL});
    char what[96];
    snprintf(what, sizeof what, "linear->add == residual epilogue (%s, n=%d)", qp_ggml_type_name(type), n);
    tu_check_bits(what, o1, o2, n * DIM);
    snprintf(what, sizeof what, "  ... in place (in1 == out)");
    tu_check_bits(what, o1, o3, n * DIM);
    free(x), free(res), free(b), free(y), free(o1), free(o2), free(o3);
    tu_weight_free(&w);
}

static void fused_argmax(int32_t type, int32_t n) {
    struct tu_weight w;
    tu_weight_rand(&w, type, VOCAB, DIM, 1.0f);
    float *x = rnd(n * DIM, -2, 2), *g = rnd(DIM, -1, 1);
    float *h = fl(n * DIM), *l1 = fl(n * VOCAB), *l2 = fl(n * VOCAB);
    union tu_step s1, s2;
    tu_step_chunk(&s1, 3, n);
    tu_step_chunk(&s2, 3, n);
    run(&(struct qp_op_args){.op = QP_OP_RMS_NORM, .n_tok = n, .in0 = x, .out = h, .in_w = DIM, .out_w = DIM,
                             .norm = g, .eps = 1e-6f});
    run(&(struct qp_op_args){.op = QP_OP_LINEAR, .n_tok = n, .in0 = h, .out = l1, .in_w = DIM, .out_w = VOCAB,
                             .n_parts = 1, .w = {w.w}});
    run(&(struct qp_op_args){.op = QP_OP_ARGMAX, .n_tok = n, .step = &s1.s, .in0 = l1, .in_w = VOCAB});
    run(&(struct qp_op_args){.op = QP_OP_LINEAR, .n_tok = n, .step = &s2.s, .in0 = x, .out = l2, .in_w = DIM,
                             .out_w = VOCAB, .n_parts = 1, .w = {w.w}, .prologue = QP_PROLOGUE_RMS_NORM, .norm = g,
                             .eps = 1e-6f, .epilogue = QP_EPILOGUE_ARGMAX});
    char what[96];
    snprintf(what, sizeof what, "norm->lm head->argmax == argmax epilogue (%s, n=%d): logits", qp_ggml_type_name(type),
             n);
    tu_check_bits(what, l1, l2, n * VOCAB);
    bool same = true;
    for (int t = 0; t < n; t++) same = same && s1.s.rows[t].next == s2.s.rows[t].next && s1.s.rows[t].next >= 0;
    tu_expect(same, "  ... every row's next token equal (last row %d == %d)", (int)s1.s.rows[n - 1].next,
              (int)s2.s.rows[n - 1].next);
    free(x), free(g), free(h), free(l1), free(l2);
    tu_weight_free(&w);
}

int main(void) {
    tu_seed("test_ops_fused");
    const int32_t ns[] = {1, 7, 40};
    for (int ti = 0; ti < N_TYPES; ti++)
        for (int ni = 0; ni < 3; ni++) {
            int32_t t = weight_types[ti], n = ns[ni];
            fused_norm_linear(t, n);
            fused_qkv(t, QP_GGML_F16, n, ni == 0 ? 0 : 5);
            fused_qkv(t, QP_GGML_F32, n, 11);
            fused_swiglu(t, n);
            fused_residual(t, n);
            fused_residual(ti % 2 ? QP_GGML_Q6_K : QP_GGML_Q4_K, n);
            fused_argmax(t, n);
        }
    return tu_finish("test_ops_fused");
}
