/* test_cuda_backend.c — the CUDA backend end to end against the CPU backend:
 *
 *   1. whole-model logits: the same token sequence (a random prompt, then 64 greedy tokens
 *      chosen by the CPU backend) is fed to the CPU backend, the CUDA backend with graph replay
 *      and the CUDA backend launching eagerly (--no-graph); the logits are compared at every
 *      position;
 *   2. graph replay == eager: a 64-token greedy generation (argmax on the device) gives exactly
 *      the same tokens with the captured graph as with eager launches, and bit-identical logits;
 *   3. a prefill long enough for the cuBLAS path (several chunks) against the CPU;
 *   4. the plan decides: the model compiled again with --kernel naming, in turn, each linear and
 *      attention kernel that can run the nodes; the backend must report exactly the named kernels
 *      for every node that ran (qrun_node_kernels), and the logits must agree with the CPU's
 *      (a shorter run of 1 and 3 per variant);
 *   5. many sequences at once (a plan with 8 slots): each sequence's logits decoded together
 *      against decoded alone, device argmax against host argmax, graph against eager
 *      (check_batch says how).
 *
 * Models: a small synthetic Qwen2 with the default model's mix of weight types, written and
 * compiled here with qplan; and, when QP_E2E_MODEL and QP_E2E_PLAN name them (scripts/
 * device-e2e.sh does, with the same-shape synthetic model of the real one), that model too.
 * `test_cuda_backend PLAN MODEL` runs checks 1-3 on that plan only (a tuned plan, say).
 * `test_cuda_backend --part model|batch|kernels` runs one part of the default run: checks 1-3
 * (and QP_E2E_MODEL's), check 5, or check 4, so that ctest can run the parts side by side
 * (tests/kemu.cmake: the emulator takes minutes for each).
 *
 * Error measure: rel = ||gpu - cpu||_2 / ||cpu||_2 over one position's logits; NaN fails.
 * Tolerances: decode and prefills of <= 8 tokens run the fp32 matvec (weights read as stored,
 * fp32 accumulation, like the CPU): the two sides differ by summation order only (~1e-6 per
 * op) and by the rare 1-ulp flip where K/V are rounded to f16 (5e-4 of one element), so
 * TOL_FP32 = 2e-3 over the whole model. Longer prefills multiply with f16 operands on cuBLAS
 * (3e-3 per linear, tests/test_gpu_ops.c), compounding over the layers: TOL_GEMM = 3e-2.
 * mmvq rounds each linear's input to 8 bits per 32 values (2e-2 per op, ~5e-3 measured): named
 * for every layer's linears it measured 2.0e-2 on the small model (the emulator), so TOL_Q8 =
 * 1e-1, five times its per-op bound as TOL_GEMM is ten times gemm's: a wrong block or type gives ~1.
 * Graph vs eager run the same kernels on the same data: TOL_GRAPH = 0 (bit-identical).
 * Without a GPU the test prints why and exits 77 (skipped).
 */
#define _POSIX_C_SOURCE 200809L
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qrun.h"

#define QPLAN QP_BUILD_DIR "/compiler/qplan"
#define N_PROMPT 8
#define N_GEN 64
#define N_LONG 40
#define TOL_FP32 2e-3
#define TOL_GEMM 3e-2
#define TOL_Q8 1e-1

#include "check.h"

static void sh(const char *cmd) {
    printf("$ %s\n", cmd);
    fflush(stdout);
    int rc = system(cmd);
    if (rc != 0) {
        printf("FAIL: command exited with %d\n", rc);
        exit(1);
    }
}

static struct qrun *open_on(const char *plan, const char *model, const char *device, bool graph) {
    struct qrun_options o = qrun_options_default();
    o.device = device;
    o.model_path = model;
    o.no_graph = !graph;
    struct qp_error e = {{0}};
    struct qrun *q = NULL;
    if (qrun_open(plan, &o, &q, &e) != QP_OK) {
        printf("FAIL: qrun_open %s on %s: %s\n", plan, device, e.msg);
        exit(1);
    }
    return q;
}

/* rel L2 error of a against b; NaN in a gives INFINITY. */
static double rel_err(const float *a, const float *b, int32_t n) {
    double d2 = 0, b2 = 0;
    for (int32_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isinf(a[i])) return INFINITY;
        double d = (double)a[i] - (double)b[i];
        d2 += d * d;
        b2 += (double)b[i] * b[i];
    }
    return b2 > 0 ? sqrt(d2 / b2) : sqrt(d2);
}

static int32_t argmax_f(const float *x, int32_t n) {
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static const float *eval(struct qrun *q, const int32_t *ids, size_t n, int64_t pos, const char *who) {
    const float *l = NULL;
    struct qp_error e = {{0}};
    if (qrun_eval(q, ids, n, pos, &l, &e) != QP_OK) {
        printf("FAIL: eval on %s at %lld: %s\n", who, (long long)pos, e.msg);
        exit(1);
    }
    return l;
}

struct tokens {
    int32_t t[N_GEN + 8];
    int n;
};
static int collect(void *user, int32_t token, const char *text, size_t len) {
    (void)text;
    (void)len;
    struct tokens *c = user;
    if (token >= 0 && c->n < N_GEN + 8) c->t[c->n++] = token;
    return 0;
}

/* Every node of every program that ran on q ran the kernel its plan names; when want is not NULL,
 * the nodes whose op is want_op ran want (the --kernel override took). Returns the nodes checked. */
static int check_ran(const char *label, struct qrun *q, const char *want_op, const char *want) {
    const int32_t n = qrun_node_kernels(q, NULL, 0);
    struct qrun_node_kernel *r = calloc((size_t)n + 1, sizeof *r);
    qrun_node_kernels(q, r, n);
    int checked = 0, named = 0;
    for (int32_t i = 0; i < n; i++) {
        if (!r[i].ran) continue;
        checked++;
        CHECK(strcmp(r[i].ran, r[i].kernel) == 0, "%s: %s node %d (%s, line %d): the plan names %s, the backend ran %s",
              label, r[i].program, r[i].node, r[i].op, r[i].line, r[i].kernel, r[i].ran);
        if (want && strcmp(r[i].op, want_op) == 0 && strcmp(r[i].kernel, want) == 0) named++;
    }
    if (want) CHECK(named > 0, "%s: no %s node ran %s", label, want_op, want);
    printf("kernels: %d nodes ran, each the kernel its plan names%s%s%s\n", checked, want ? " (" : "",
           want ? want : "", want ? " where named)" : "");
    free(r);
    return checked;
}

/* The bound on the prompt and decode steps' logits: TOL_FP32, unless a program that runs them
 * (chunks of <= N_PROMPT tokens) names the gemm kernel, whose f16 operands make it TOL_GEMM. */
static double decode_tol(struct qrun *q) {
    const int32_t n = qrun_node_kernels(q, NULL, 0);
    struct qrun_node_kernel *r = calloc((size_t)n + 1, sizeof *r);
    qrun_node_kernels(q, r, n);
    bool f16 = false;
    for (int32_t i = 0; i < n; i++)
        f16 = f16 || (strcmp(r[i].kernel, "gemm") == 0 && strcmp(r[i].program, "prefill") != 0);
    free(r);
    return f16 ? TOL_GEMM : TOL_FP32;
}

static void check_model(const char *label, const char *plan, const char *model) {
    printf("== %s (%s)\n", label, model);
    struct qrun *cpu = open_on(plan, model, "cpu", false);
    struct qrun *gr = open_on(plan, model, "cuda", true);
    struct qrun *eg = open_on(plan, model, "cuda", false);
    const double tol = decode_tol(gr);
    const int32_t nv = qrun_n_vocab(cpu);
    float *ref = malloc((size_t)nv * sizeof *ref), *lg = malloc((size_t)nv * sizeof *lg);
    int32_t ids[N_LONG];
    uint64_t r = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < N_LONG; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        ids[i] = (int32_t)(r % (uint64_t)nv);
    }
    /* 1. prompt, then 64 greedy tokens chosen by the CPU, fed to all three */
    double worst = 0, worst_graph = 0;
    int worst_pos = 0, argmax_diff = 0;
    int32_t seq[N_PROMPT + N_GEN + 1];
    memcpy(seq, ids, sizeof(int32_t) * N_PROMPT);
    for (int step = 0; step <= N_GEN; step++) {
        const int32_t *in = step == 0 ? seq : &seq[N_PROMPT + step - 1];
        size_t n = step == 0 ? N_PROMPT : 1;
        int64_t pos = step == 0 ? 0 : N_PROMPT + step - 1;
        memcpy(ref, eval(cpu, in, n, pos, "cpu"), (size_t)nv * sizeof *ref);
        memcpy(lg, eval(gr, in, n, pos, "cuda graph"), (size_t)nv * sizeof *lg);
        const float *le = eval(eg, in, n, pos, "cuda eager");
        double e = rel_err(lg, ref, nv);
        if (!(e <= worst)) {
            worst = e;
            worst_pos = (int)(pos + (int64_t)n - 1);
        }
        double eg_d = rel_err(le, lg, nv);
        if (!(eg_d <= worst_graph)) worst_graph = eg_d;
        if (argmax_f(lg, nv) != argmax_f(ref, nv)) argmax_diff++;
        if (step < N_GEN) seq[N_PROMPT + step] = argmax_f(ref, nv);
    }
    printf("logits cuda(graph) vs cpu over %d positions: worst rel %.3e at position %d (tol %.0e); "
           "argmax differs at %d positions (near-ties, not a failure)\n",
           N_GEN + 1, worst, worst_pos, tol, argmax_diff);
    CHECK(worst <= tol, "%s: cuda logits differ from cpu by rel %.3e at position %d", label, worst,
          worst_pos);
    printf("logits cuda graph vs eager: worst rel %.3e (must be 0)\n", worst_graph);
    CHECK(worst_graph == 0, "%s: graph and eager logits differ (rel %.3e)", label, worst_graph);

    /* 2. greedy generation on the device: graph tokens == eager tokens */
    struct qrun_gen_options g = qrun_gen_options_default();
    g.sampling.temp = 0;
    g.n_predict = N_GEN;
    g.greedy_on_device = true;
    struct tokens tg = {{0}, 0}, te = {{0}, 0};
    struct qrun_stats st;
    struct qp_error e = {{0}};
    CHECK(qrun_generate_tokens(gr, ids, N_PROMPT, &g, collect, &tg, &st, &e) == QP_OK, "graph generate: %s", e.msg);
    CHECK(qrun_generate_tokens(eg, ids, N_PROMPT, &g, collect, &te, &st, &e) == QP_OK, "eager generate: %s", e.msg);
    int same = tg.n == te.n;
    for (int i = 0; same && i < tg.n; i++) same = tg.t[i] == te.t[i];
    printf("greedy generation: graph %d tokens, eager %d tokens: %s\n", tg.n, te.n, same ? "identical" : "DIFFERENT");
    CHECK(same && tg.n > 0, "%s: graph replay tokens differ from eager tokens", label);

    /* 3. a long prefill (cuBLAS path, several chunks) */
    memcpy(ref, eval(cpu, ids, N_LONG, 0, "cpu"), (size_t)nv * sizeof *ref);
    double el = rel_err(eval(gr, ids, N_LONG, 0, "cuda"), ref, nv);
    printf("prefill of %d tokens: rel %.3e (tol %.0e)\n", N_LONG, el, TOL_GEMM);
    CHECK(el <= TOL_GEMM, "%s: %d-token prefill logits differ by rel %.3e", label, N_LONG, el);
    check_ran(label, gr, NULL, NULL);
    check_ran(label, eg, NULL, NULL);
    free(ref);
    free(lg);
    qrun_close(cpu);
    qrun_close(gr);
    qrun_close(eg);
}

/* One --kernel variant: compile the model with the override, run a 3-token prompt, 8 decode steps
 * and a 40-token prefill on the CPU and on CUDA (graph), compare the logits (tol: TOL_GEMM where
 * the variant puts f16 operands in the path, else TOL_FP32), and check what ran. */
static void check_variant(const char *qplan_model, const char *dir, const char *model, const char *override,
                          const char *op, const char *kernel, double tol) {
    char plan[400], cmd[2048];
    snprintf(plan, sizeof plan, "%s/%s.yaml", dir, kernel);
    snprintf(cmd, sizeof cmd, "%s compile %s -o %s --ctx 128 --chunk 16 --kernel '%s' > /dev/null", QPLAN,
             qplan_model, plan, override);
    sh(cmd);
    char label[128];
    snprintf(label, sizeof label, "--kernel %s", override);
    printf("== %s\n", label);
    struct qrun *cpu = open_on(plan, model, "cpu", false);
    struct qrun *gr = open_on(plan, model, "cuda", true);
    const int32_t nv = qrun_n_vocab(cpu);
    float *ref = malloc((size_t)nv * sizeof *ref);
    int32_t ids[N_LONG];
    for (int i = 0; i < N_LONG; i++) ids[i] = (int32_t)((i * 2654435761u) % (uint32_t)nv);
    double worst = 0;
    int32_t seq[3 + 9];
    memcpy(seq, ids, 3 * sizeof *seq);
    for (int step = 0; step <= 8; step++) {
        const int32_t *in = step == 0 ? seq : &seq[3 + step - 1];
        size_t n = step == 0 ? 3 : 1;
        int64_t pos = step == 0 ? 0 : 3 + step - 1;
        memcpy(ref, eval(cpu, in, n, pos, "cpu"), (size_t)nv * sizeof *ref);
        double e = rel_err(eval(gr, in, n, pos, "cuda graph"), ref, nv);
        if (!(e <= worst)) worst = e;
        if (step < 8) seq[3 + step] = argmax_f(ref, nv);
    }
    memcpy(ref, eval(cpu, ids, N_LONG, 0, "cpu"), (size_t)nv * sizeof *ref);
    double el = rel_err(eval(gr, ids, N_LONG, 0, "cuda graph"), ref, nv);
    if (!(el <= worst)) worst = el;
    printf("logits cuda vs cpu: worst rel %.3e (tol %.0e)\n", worst, tol);
    CHECK(worst <= tol, "%s: cuda logits differ from cpu by rel %.3e", label, worst);
    check_ran(label, gr, op, kernel);
    free(ref);
    qrun_close(cpu);
    qrun_close(gr);
}

/* 5. Many sequences (a plan with slots): sequences at depths 1..200 joining at different steps,
 * decoded together on the GPU, against each decoded alone on the GPU (host greedy, every token's
 * logits kept). Batch programs may run other kernels than the one-token decode (gemm's f16
 * operands: decode_tol says which bound applies), so the two may pick different tokens at a
 * near-tie: logits are compared up to and including the first step where the tokens differ.
 * Then the same batch with the argmax on the device must pick exactly the host's tokens, and
 * graph replay must equal eager launches bit for bit. */
/* On the CPU emulator (QP_KEMU) every kernel runs thread by thread: fewer tokens per sequence and
 * a shorter longest prompt keep the check to minutes; the shape of the test (mixed lengths, joins,
 * a chunked prompt, 6 sequences at once) is the same. */
#ifdef QP_KEMU
enum { B_SEQS = 6, B_GEN = 12 }; /* enough steps that all six decode together at one step */
#define B_LONG 40
#else
enum { B_SEQS = 6, B_GEN = 24 };
#define B_LONG 200
#endif
struct batch_rec {
    int32_t tok[B_GEN];
    float *logits; /* [B_GEN][n_vocab] */
    int n;
};

static void batch_run(struct qrun *q, const int32_t *const *prompt, const size_t *len, const int *join, int n_seqs,
                      bool device_greedy, struct batch_rec *out, int *most) {
    const int32_t nv = qrun_n_vocab(q);
    struct qrun_seq_options o = qrun_seq_options_default();
    o.sampling.temp = 0.0f;
    o.n_predict = B_GEN;
    o.greedy_on_device = device_greedy;
    o.keep_logits = !device_greedy;
    struct qrun_seq *s[B_SEQS] = {0};
    struct qp_error e = {{0}};
    *most = 0;
    for (int step = 0;; step++) {
        for (int i = 0; i < n_seqs; i++)
            if (join[i] == step &&
                (qrun_seq_open(q, &o, &s[i], &e) != QP_OK || qrun_seq_append(s[i], prompt[i], len[i], &e) != QP_OK)) {
                printf("FAIL: sequence %d: %s\n", i, e.msg);
                exit(1);
            }
        struct qrun_step_info in;
        if (qrun_step(q, &in, &e) != QP_OK) {
            printf("FAIL: step: %s\n", e.msg);
            exit(1);
        }
        if (in.n_decode > *most) *most = in.n_decode;
        for (int i = 0; i < n_seqs; i++) {
            if (!s[i]) continue;
            const int32_t *t;
            size_t n, tl;
            const char *text;
            qrun_seq_read(s[i], &t, &n, &text, &tl);
            for (size_t k = 0; k < n && out[i].n < B_GEN; k++) {
                if (o.keep_logits)
                    memcpy(out[i].logits + (size_t)out[i].n * (size_t)nv, qrun_seq_logits(s[i]), (size_t)nv * sizeof(float));
                out[i].tok[out[i].n++] = t[k];
            }
        }
        bool joined = true;
        for (int i = 0; i < n_seqs; i++) joined = joined && join[i] <= step;
        if (joined && in.n_active == 0) break;
    }
    for (int i = 0; i < n_seqs; i++) qrun_seq_close(s[i]);
}

static void check_batch(const char *label, const char *plan, const char *model) {
    printf("== %s: sequences decoded together (%s)\n", label, plan);
    struct qrun *gr = open_on(plan, model, "cuda", true), *eg = open_on(plan, model, "cuda", false);
    const int32_t nv = qrun_n_vocab(gr);
    const double tol = decode_tol(gr);
    const size_t len[B_SEQS] = {3, B_LONG, 17, 1, 40, 9};
    const int join[B_SEQS] = {0, 0, 1, 2, 3, 5};
    int32_t *prompt[B_SEQS];
    struct batch_rec alone[B_SEQS], together[B_SEQS], dev[B_SEQS], eager[B_SEQS];
    for (int i = 0; i < B_SEQS; i++) {
        prompt[i] = malloc(len[i] * sizeof(int32_t));
        for (size_t k = 0; k < len[i]; k++) prompt[i][k] = (int32_t)(((unsigned)i * 7919u + (unsigned)k * 104729u) % (unsigned)nv);
        struct batch_rec *r[4] = {&alone[i], &together[i], &dev[i], &eager[i]};
        for (int j = 0; j < 4; j++) {
            memset(r[j], 0, sizeof *r[j]);
            r[j]->logits = calloc((size_t)B_GEN * (size_t)nv, sizeof(float));
        }
    }
    int most = 0, m1;
    const int zero[1] = {0};
    for (int i = 0; i < B_SEQS; i++) {
        const int32_t *pi[1] = {prompt[i]};
        batch_run(gr, pi, &len[i], zero, 1, false, &alone[i], &m1);
    }
    batch_run(gr, (const int32_t *const *)prompt, len, join, B_SEQS, false, together, &most);
    batch_run(gr, (const int32_t *const *)prompt, len, join, B_SEQS, true, dev, &m1);
    batch_run(eg, (const int32_t *const *)prompt, len, join, B_SEQS, false, eager, &m1);
    double worst = 0, worst_eager = 0;
    int compared = 0, diverged = 0;
    for (int i = 0; i < B_SEQS; i++) {
        for (int k = 0; k < together[i].n && k < alone[i].n; k++) {
            const double e = rel_err(together[i].logits + (size_t)k * (size_t)nv, alone[i].logits + (size_t)k * (size_t)nv, nv);
            if (!(e <= worst)) worst = e;
            compared++;
            if (together[i].tok[k] != alone[i].tok[k]) {
                diverged++;
                break;
            }
        }
        const bool same_dev = dev[i].n == together[i].n &&
                              memcmp(dev[i].tok, together[i].tok, (size_t)dev[i].n * sizeof(int32_t)) == 0;
        CHECK(same_dev, "%s: sequence %d: the device's argmax picked other tokens than the host's", label, i);
        for (int k = 0; k < eager[i].n && k < together[i].n; k++) {
            const double e = rel_err(eager[i].logits + (size_t)k * (size_t)nv, together[i].logits + (size_t)k * (size_t)nv, nv);
            if (!(e <= worst_eager)) worst_eager = e;
        }
        CHECK(eager[i].n == together[i].n, "%s: sequence %d: %d tokens eager, %d replayed", label, i, eager[i].n,
              together[i].n);
    }
    printf("batch: %d tokens of %d sequences (up to %d per step) vs each alone: worst rel %.3e (tol %.0e), %d "
           "sequences took another token at a near-tie; device argmax == host argmax; graph vs eager rel %.3e\n",
           compared, B_SEQS, most, worst, tol, diverged, worst_eager);
    CHECK(worst <= tol, "%s: batched logits differ from alone by rel %.3e", label, worst);
    CHECK(worst_eager == 0, "%s: batched graph and eager logits differ (rel %.3e)", label, worst_eager);
    CHECK(most >= 5, "%s: at most %d sequences in one step: the test did not batch", label, most);
    CHECK(compared >= B_SEQS * B_GEN / 2, "%s: only %d tokens compared", label, compared);
    check_ran(label, gr, NULL, NULL);
    for (int i = 0; i < B_SEQS; i++) {
        free(prompt[i]);
        free(alone[i].logits);
        free(together[i].logits);
        free(dev[i].logits);
        free(eager[i].logits);
    }
    qrun_close(gr);
    qrun_close(eg);
}

int main(int argc, char **argv) {
    int n = 0;
    cudaError_t ce = cudaGetDeviceCount(&n);
    if (ce != cudaSuccess || n == 0) {
        printf("skip: no CUDA device (%s)\n", ce != cudaSuccess ? cudaGetErrorString(ce) : "0 devices");
        return 77;
    }
    const char *part = NULL; /* NULL: every part */
    if (argc == 3 && strcmp(argv[1], "--part") == 0) {
        part = argv[2];
        if (strcmp(part, "model") != 0 && strcmp(part, "batch") != 0 && strcmp(part, "kernels") != 0) {
            printf("FAIL: --part '%s': expected model, batch or kernels\n", part);
            return 1;
        }
    } else if (argc == 3) { /* test_cuda_backend PLAN MODEL: the whole-model checks of that plan only */
        check_model(argv[1], argv[1], argv[2]);
        printf(failures ? "%d failure(s)\n" : "cuda backend e2e: all checks passed\n", failures);
        return failures ? 1 : 0;
    }
    if (access(QPLAN, X_OK) != 0) {
        printf("FAIL: %s not built\n", QPLAN);
        return 1;
    }
    char dir[256], cmd[2048], m[300], p[300];
    snprintf(dir, sizeof dir, "%s/qp-cuda-e2e.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) {
        printf("FAIL: cannot create a temporary folder\n");
        return 1;
    }
    snprintf(m, sizeof m, "%s/mixed.gguf", dir);
    snprintf(p, sizeof p, "%s/mixed.yaml", dir);
    /* the default model's types: Q5_0 embeddings, Q8_0 LM head, Q5_0/Q8_0 attention, Q4_K/Q6_K FFN */
    snprintf(cmd, sizeof cmd,
             "%s synth --arch qwen2 --n-layer 2 --n-embd 256 --n-head 4 --n-head-kv 2 --n-ff 512 "
             "--n-vocab 320 --seed 11 --types 'attn_q=q5_0,attn_k=q5_0,attn_v=q8_0,attn_output=q5_0,"
             "ffn_gate=q4_k,ffn_up=q4_k,ffn_down=q6_k,token_embd=q5_0,output=q8_0' -o %s",
             QPLAN, m);
    sh(cmd);
    snprintf(cmd, sizeof cmd, "%s compile %s -o %s --ctx 128 --chunk 16", QPLAN, m, p);
    sh(cmd);
#define PART(name) (!part || strcmp(part, name) == 0)
    if (PART("model")) check_model("small synthetic, mixed types", p, m);
    if (PART("batch")) {
        char ps[300];
        snprintf(ps, sizeof ps, "%s/mixed-slots.yaml", dir);
        snprintf(cmd, sizeof cmd, "%s compile %s -o %s --ctx 256 --chunk 16 --slots 8", QPLAN, m, ps);
        sh(cmd);
        check_batch("small synthetic, 8 slots", ps, m);
    }
    /* the plan decides: each linear and attention kernel named in turn (blk.* names the layers'
     * linears; the LM head, with its argmax epilogue, keeps its default). With the matvecs
     * everywhere every product is f32 (TOL_FP32); where gemm runs (named, or the 40-token prefill's
     * default beside a named attention kernel) the f16 operands set the bound (TOL_GEMM). */
    if (PART("kernels")) {
        check_variant(m, dir, m, "*:linear:blk.*=mmv", "linear", "mmv", TOL_FP32);
        check_variant(m, dir, m, "*:linear:blk.*=mmv_stream", "linear", "mmv_stream", TOL_FP32);
        check_variant(m, dir, m, "*:linear:blk.*=mmv_batch", "linear", "mmv_batch", TOL_FP32);
        check_variant(m, dir, m, "*:linear:blk.*=mmvq", "linear", "mmvq", TOL_Q8);
        check_variant(m, dir, m, "*:linear=gemm", "linear", "gemm", TOL_GEMM);
        check_variant(m, dir, m, "*:attention=attn_split", "attention", "attn_split", TOL_GEMM);
        check_variant(m, dir, m, "*:attention=attn_gqa", "attention", "attn_gqa", TOL_GEMM);
        check_variant(m, dir, m, "*:attention=attn_prefill", "attention", "attn_prefill", TOL_GEMM);
    }
    const char *em = getenv("QP_E2E_MODEL"), *ep = getenv("QP_E2E_PLAN");
    if (PART("model") && em && ep && *em && *ep) check_model("QP_E2E_MODEL", ep, em);
#undef PART
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", dir);
    if (failures) printf("%d failure(s)\n", failures);
    else printf("cuda backend e2e: all checks passed\n");
    return failures ? 1 : 0;
}
