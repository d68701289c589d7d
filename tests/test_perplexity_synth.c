/* test_perplexity_synth.c — `qrun --perplexity / --kl-divergence` on synthetic models made and
 * compiled at test time (CPU backend; no real model needed: CI):
 *   - the perplexity qrun_perplexity reports over a short text equals the one computed here,
 *     independently: the text's tokens cut into chunks, each chunk run through the oracle
 *     (tests/reference, f32 steps and the double-precision pass) from an empty context, and
 *     -log p of the second half's next tokens summed here; a planted off-by-one scoring must
 *     fail the same comparison;
 *   - a base file written by qrun --perplexity and read back by --kl-divergence on the same plan
 *     gives KLD ~0 and the same top token everywhere; one written from the oracle's
 *     double-precision logits measures the plan's divergence from it;
 *   - the qrun command: its printed PPL equals the library's; bad base files (another format,
 *     truncated, another vocabulary, another chunk length) and bad command lines are refused
 *     with a message and exit 1 or 2, never a crash.
 * Tolerance: qrun keeps K and V in f16 where the oracle keeps f32 (test_runtime_synth.c: logits
 * within 2e-3 of their scale); measured below, the PPLs then agree to ~1e-4 relative (9.8e-5); 1e-3 is
 * kept, far below what scoring the wrong positions does (planted: > 10%).
 */
#include "runtime_common.h"

#include <sys/wait.h>

#include "qp_kld.h"
#include "qp_tokenizer.h"
#include "qrun_perplexity.h"

#define QRUN QP_BUILD_DIR "/runtime/qrun"
#define PPL_TOL 1e-3
#define N_CTX 32
#define N_CHUNKS 8

static const char TEXT[] =
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the "
    "age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the "
    "season of Light, it was the season of Darkness, it was the spring of hope, it was the winter "
    "of despair, we had everything before us, we had nothing before us, we were all going direct "
    "to Heaven, we were all going direct the other way.\n";

/* Perplexity by the method, here: -log p of token p+1 from the logits after p, p = first..n-2,
 * every chunk from an empty context. shift = 1 is the method; 2 is the planted fault. */
static double oracle_ppl(struct qp_ref *r, const int32_t *toks, int32_t n_chunk, int shift,
                         int32_t *n_scored) {
    const int32_t nv = qp_ref_config(r)->n_vocab, first = N_CTX / 2;
    float *lg = malloc((size_t)nv * sizeof(float));
    double sum = 0.0;
    int32_t count = 0;
    struct qp_error e = {{0}};
    for (int32_t c = 0; c < n_chunk; c++) {
        const int32_t *ids = toks + c * N_CTX;
        for (int32_t p = 0; p <= N_CTX - 2; p++) {
            CHECK(qp_ref_forward(r, ids[p], p, lg, &e) == QP_OK, "oracle: %s", e.msg);
            if (p < first || p + shift >= N_CTX) continue;
            double mx = lg[0], s = 0.0;
            for (int32_t i = 1; i < nv; i++) mx = lg[i] > mx ? lg[i] : mx;
            for (int32_t i = 0; i < nv; i++) s += exp((double)lg[i] - mx);
            sum += mx + log(s) - lg[ids[p + shift]];
            count++;
        }
    }
    free(lg);
    *n_scored = count;
    return exp(sum / count);
}

struct row64 {
    const int32_t *ids;
    int32_t nv;
    double sum;
    int32_t count;
    struct qp_kld_writer *w; /* the oracle's base file, when non-NULL */
    float *narrow;
};

static int take64(void *user, int32_t pos, const double *lg) {
    struct row64 *x = user;
    double mx = lg[0], s = 0.0;
    for (int32_t i = 1; i < x->nv; i++) mx = lg[i] > mx ? lg[i] : mx;
    for (int32_t i = 0; i < x->nv; i++) s += exp(lg[i] - mx);
    x->sum += mx + log(s) - lg[x->ids[pos + 1]];
    x->count++;
    if (x->w) {
        struct qp_error e = {{0}};
        for (int32_t i = 0; i < x->nv; i++) x->narrow[i] = (float)lg[i];
        CHECK(qp_kld_writer_row(x->w, x->narrow, &e) == QP_OK, "oracle base: %s", e.msg);
    }
    return 0;
}

/* The double-precision pass over the same chunks; writes base when non-NULL. */
static double oracle_ppl64(struct qp_ref *r, const int32_t *toks, int32_t n_chunk, const char *base) {
    struct qp_error e = {{0}};
    struct row64 x = {.nv = qp_ref_config(r)->n_vocab};
    x.narrow = malloc((size_t)x.nv * sizeof(float));
    if (base)
        CHECK(qp_kld_writer_open(base, N_CTX, x.nv, n_chunk, toks, &x.w, &e) == QP_OK, "%s", e.msg);
    for (int32_t c = 0; c < n_chunk; c++) {
        x.ids = toks + c * N_CTX;
        CHECK(qp_ref_seq64(r, x.ids, N_CTX - 1, N_CTX / 2, 2, QP_REF_EXACT, take64, &x, &e) == QP_OK, "%s", e.msg);
    }
    if (x.w) CHECK(qp_kld_writer_commit(x.w, &e) == QP_OK, "%s", e.msg);
    free(x.narrow);
    return exp(x.sum / x.count);
}

/* Runs a shell command; returns its exit status (-1 when it did not exit normally). Its stdout
 * and stderr land in out_path. */
static int run(const char *out_path, const char *fmt, ...) {
    char cmd[4096], full[4700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "%s > '%s' 2>&1", cmd, out_path);
    printf("$ %s\n", cmd);
    fflush(stdout);
    int st = system(full);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp_text(const char *p) {
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* The command exits with want and prints a line containing msg (and does not crash). */
static void cli_refuses(const char *what, int want, const char *msg, const char *fmt, const char *a,
                        const char *b, const char *c) {
    char out[700];
    snprintf(out, sizeof out, "%s/cli.txt", tmpdir);
    int rc = run(out, fmt, a, b, c);
    const char *txt = slurp_text(out);
    CHECK(rc == want && txt && strstr(txt, msg), "%s: exit %d (want %d), output:\n%s", what, rc, want,
          txt ? txt : "(none)");
    if (rc == want && txt && strstr(txt, msg)) printf("  -> exit %d: %s", rc, strstr(txt, "qrun:") ? strstr(txt, "qrun:") : txt);
}

int main(void) {
    (void)logits_err; /* runtime_common.h helpers this test does not need */
    (void)argmax_f;
    (void)collect_cb;
    if (access(QPLAN, X_OK) != 0 || access(QRUN, X_OK) != 0) {
        printf("FAIL: %s or %s not built\n", QPLAN, QRUN);
        return 1;
    }
    tmp_init("qrun-ppl");
    char m[600], p[600], m2[600], p2[600], txt[600], base[600], obase[600], vbase[600], bad[600],
        shorttxt[600];
    snprintf(m, sizeof m, "%s/tiny.gguf", tmpdir);
    snprintf(p, sizeof p, "%s/tiny.yaml", tmpdir);
    snprintf(m2, sizeof m2, "%s/other.gguf", tmpdir);
    snprintf(p2, sizeof p2, "%s/other.yaml", tmpdir);
    snprintf(txt, sizeof txt, "%s/text.txt", tmpdir);
    snprintf(base, sizeof base, "%s/qrun.kld", tmpdir);
    snprintf(obase, sizeof obase, "%s/oracle.kld", tmpdir);
    snprintf(vbase, sizeof vbase, "%s/other-vocab.kld", tmpdir);
    snprintf(bad, sizeof bad, "%s/bad.kld", tmpdir);
    snprintf(shorttxt, sizeof shorttxt, "%s/short.txt", tmpdir);
    /* the default model's mix of types; chunk 16 so a chunk's first half is two prefills */
    sh("%s synth --arch qwen2 --n-layer 2 --n-embd 256 --n-head 4 --n-head-kv 2 --n-ff 512 "
       "--n-vocab 320 --seed 21 --types 'attn_q=q5_0,attn_k=q5_0,attn_v=q8_0,attn_output=q5_0,"
       "ffn_gate=q4_k,ffn_up=q4_0,ffn_down=q6_k,token_embd=q8_0,output=tied' -o %s", QPLAN, m);
    sh("%s compile %s -o %s --ctx 64 --chunk 16", QPLAN, m, p);
    sh("%s synth --arch qwen2 --n-layer 1 --n-embd 64 --n-head 2 --n-head-kv 1 --n-ff 128 "
       "--n-vocab 300 --seed 22 -o %s", QPLAN, m2);
    sh("%s compile %s -o %s --ctx 64 --chunk 16", QPLAN, m2, p2);
    FILE *f = fopen(txt, "wb");
    fputs(TEXT, f);
    fclose(f);
    f = fopen(shorttxt, "wb");
    fputs("It was the best of times.\n", f);
    fclose(f);

    /* qrun's value */
    struct qrun *q = open_plan(p, m, N_CTX);
    struct qrun_ppl_options o = qrun_ppl_options_default();
    o.n_ctx = N_CTX;
    o.n_chunks = N_CHUNKS;
    o.kld_base = base;
    struct qrun_ppl_result res;
    struct qp_error e = {{0}};
    FILE *sink = tmpfile();
    CHECK(qrun_perplexity(q, TEXT, strlen(TEXT), &o, sink, &res, &e) == QP_OK, "perplexity: %s", e.msg);
    CHECK(res.n_chunk == N_CHUNKS && res.n_scored == N_CHUNKS * (N_CTX - 1 - N_CTX / 2),
          "%d chunks, %lld scored", res.n_chunk, (long long)res.n_scored);

    /* the same, independently: tokens, chunks, oracle, sums */
    int32_t *toks = NULL;
    size_t n = 0;
    CHECK(qp_tokenizer_encode(qrun_tokenizer(q), TEXT, strlen(TEXT), false, &toks, &n, &e) == QP_OK, "%s", e.msg);
    CHECK(res.n_text_tokens == (int64_t)n && (int64_t)n >= N_CHUNKS * N_CTX, "text: %zu tokens here, %lld in qrun",
          n, (long long)res.n_text_tokens);
    struct qp_gguf *g = NULL;
    struct qp_ref *r = NULL;
    if (qp_gguf_open(m, 0, &g, &e) != QP_OK || qp_ref_open(g, N_CTX, &r, &e) != QP_OK) {
        printf("FAIL: oracle: %s\n", e.msg);
        return 1;
    }
    int32_t scored = 0;
    const double ref = oracle_ppl(r, toks, N_CHUNKS, 1, &scored);
    const double ref64 = oracle_ppl64(r, toks, N_CHUNKS, obase);
    const double planted = oracle_ppl(r, toks, N_CHUNKS, 2, &scored);
    const double rel = fabs(res.ppl - ref) / ref, rel64 = fabs(ref64 - ref) / ref;
    printf("PPL over %d chunks of %d (%lld scored): qrun %.6f, oracle f32 %.6f (rel %.2g), oracle "
           "f64 %.6f (rel %.2g), planted off-by-one %.4f\n", N_CHUNKS, N_CTX, (long long)res.n_scored,
           res.ppl, ref, rel, ref64, rel64, planted);
    CHECK(rel <= PPL_TOL, "qrun's PPL %.6f vs the oracle's %.6f: rel %.3g", res.ppl, ref, rel);
    CHECK(rel64 <= 1e-4, "oracle f32 vs f64: rel %.3g", rel64);
    CHECK(fabs(planted - ref) / ref > 10 * PPL_TOL, "planted: scoring the wrong token passes (%.6f vs %.6f)",
          planted, ref);
    CHECK(res.ppl_err > 0.0, "no error estimate");

    /* its own base: KLD ~0, same top everywhere, the same PPL on both sides */
    struct qrun_ppl_options k = qrun_ppl_options_default();
    k.kld = true;
    k.kld_base = base;
    struct qrun_ppl_result kr;
    CHECK(qrun_perplexity(q, NULL, 0, &k, sink, &kr, &e) == QP_OK, "kld vs itself: %s", e.msg);
    printf("vs its own base: mean KLD %.3g, same top %.4f, PPL %.6f\n", kr.kld_mean, kr.same_top, kr.ppl);
    CHECK(fabs(kr.kld_mean) < 1e-4 && kr.same_top == 1.0 && fabs(kr.ppl - res.ppl) < 1e-9 * res.ppl,
          "vs its own base: KLD %.3g, same top %.4f, PPL %.6f vs %.6f", kr.kld_mean, kr.same_top,
          kr.ppl, res.ppl);
    /* the oracle's base (double precision): what the plan's f16 KV cache and f32 sums cost */
    k.kld_base = obase;
    CHECK(qrun_perplexity(q, NULL, 0, &k, sink, &kr, &e) == QP_OK, "kld vs oracle: %s", e.msg);
    printf("vs the oracle's double-precision base: mean KLD %.3g, same top %.4f\n", kr.kld_mean, kr.same_top);
    CHECK(kr.kld_mean < 1e-4 && kr.same_top > 0.95, "vs the oracle: KLD %.3g, same top %.4f",
          kr.kld_mean, kr.same_top);
    k.n_ctx = 16;
    enum qp_status s = qrun_perplexity(q, NULL, 0, &k, sink, &kr, &e);
    CHECK(s == QP_ERR_INVALID && strstr(e.msg, "chunks of 32"), "another -c: %d '%s'", s, e.msg);
    fclose(sink);
    qrun_close(q);

    /* the command line */
    char out[700];
    snprintf(out, sizeof out, "%s/cli.txt", tmpdir);
    int rc = run(out, "%s %s -m %s --device cpu --perplexity -f %s -c %d --chunks %d", QRUN, p, m, txt,
                 N_CTX, N_CHUNKS);
    const char *o_txt = slurp_text(out);
    const char *fin = o_txt ? strstr(o_txt, "Final estimate: PPL = ") : NULL;
    double cli = fin ? strtod(fin + strlen("Final estimate: PPL = "), NULL) : 0.0;
    CHECK(rc == 0 && fin && fabs(cli - res.ppl) < 1e-4 && strstr(o_txt, "[1]") && strstr(o_txt, "[8]"),
          "qrun --perplexity: exit %d, PPL %.4f (library %.4f), output:\n%s", rc, cli, res.ppl, o_txt ? o_txt : "");
    rc = run(out, "%s %s -m %s --device cpu --kl-divergence --kl-divergence-base %s", QRUN, p, m, obase);
    o_txt = slurp_text(out);
    CHECK(rc == 0 && o_txt && strstr(o_txt, "Mean    KLD:") && strstr(o_txt, "Same top p:"),
          "qrun --kl-divergence: exit %d, output:\n%s", rc, o_txt ? o_txt : "");

    /* a base of another vocabulary */
    struct qrun *q2 = open_plan(p2, m2, N_CTX);
    struct qrun_ppl_options w = qrun_ppl_options_default();
    w.n_ctx = N_CTX;
    w.n_chunks = 2;
    w.kld_base = vbase;
    sink = tmpfile();
    CHECK(qrun_perplexity(q2, TEXT, strlen(TEXT), &w, sink, NULL, &e) == QP_OK, "other model: %s", e.msg);
    fclose(sink);
    qrun_close(q2);

    printf("refusals:\n");
    const char *kl = "%s --device cpu --kl-divergence --kl-divergence-base %s %s";
    char plan_m[1300];
    snprintf(plan_m, sizeof plan_m, "%s %s -m %s", QRUN, p, m);
    cli_refuses("another vocabulary", 1, "another vocabulary", kl, plan_m, vbase, "");
    cli_refuses("another chunk length", 1, "chunks of 32 tokens", kl, plan_m, base, "-c 16");
    cli_refuses("a GGUF as base", 1, "not a KL-divergence base file", kl, plan_m, m, "");
    size_t bn = 0;
    {
        FILE *bf = fopen(base, "rb");
        fseek(bf, 0, SEEK_END);
        bn = (size_t)ftell(bf);
        fclose(bf);
    }
    char cut[1400];
    snprintf(cut, sizeof cut, "head -c %zu %s > %s", bn - 1000, base, bad);
    CHECK(system(cut) == 0, "%s", cut);
    cli_refuses("a truncated base", 1, "truncated", kl, plan_m, bad, "");
    snprintf(cut, sizeof cut, "head -c 12 %s > %s", base, bad);
    CHECK(system(cut) == 0, "%s", cut);
    cli_refuses("a base cut inside its header", 1, "the header needs 20 bytes", kl, plan_m, bad, "");
    cli_refuses("a missing base", 1, "cannot open", kl, plan_m, "/nonexistent/base.kld", "");
    cli_refuses("a text too short", 1, "needs at least 64", "%s --device cpu --perplexity -f %s -c 32%s",
                plan_m, shorttxt, "");
    cli_refuses("-c past the plan", 1, "larger than the plan's KV cache", "%s --device cpu --perplexity -f %s -c %s",
                plan_m, txt, "128");
    cli_refuses("--kl-divergence without a base", 2, "needs --kl-divergence-base", "%s --kl-divergence%s%s",
                plan_m, "", "");
    cli_refuses("--perplexity without -f", 2, "needs the text", "%s --perplexity%s%s", plan_m, "", "");
    cli_refuses("--chunks 0", 2, "expected an integer", "%s --perplexity -f %s --chunks 0%s", plan_m, txt, "");
    cli_refuses("--kl-divergence-base alone", 2, "goes with --perplexity", "%s -p hi --kl-divergence-base %s%s",
                plan_m, base, "");
    cli_refuses("an unwritable base", 1, "cannot create a temporary file",
                "%s --device cpu --perplexity -f %s -c 32 --kl-divergence-base %s", plan_m, txt,
                "/nonexistent/out.kld");

    free(toks);
    qp_ref_free(r);
    qp_gguf_close(g);
    tmp_cleanup();
    printf("%s: %d failure(s)\n", failures ? "FAIL" : "ok", failures);
    return failures ? 1 : 0;
}
