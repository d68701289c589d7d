/* test_quant.c — dequantization, dot products, random blocks, fp16/bf16 and the PRNG.
 *
 * 1. Known answers: tests/data/quant/<type>.bin (made by scripts/make-quant-vectors.py with
 *    the `gguf` package) dequantized bit for bit (memcmp of the fp32 results).
 * 2. Planted faults: a 1-ulp change in an expected value and a flipped sign bit in a block
 *    must both be reported by the same comparison.
 * 3. qp_quant_dot_row vs a double-precision sum of dequant(row)·x (tolerance in check_dot).
 * 4. qp_quant_random_row: deterministic, finite, mean ~0 and RMS ~scale.
 * 5. fp16 / bf16 conversions over all 65536 inputs against math in double; rounding at every
 *    midpoint; inf, NaN, subnormals. 6. splitmix64 against its published first outputs.
 */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qp_ggml.h"
#include "qp_quant.h"
#include "qp_rng.h"

static int g_fail;

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            g_fail++;                                                                          \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                        \
            printf(__VA_ARGS__);                                                               \
            printf("\n");                                                                      \
        }                                                                                      \
    } while (0)

static const int32_t k_types[] = {
    QP_GGML_F32,  QP_GGML_F16,  QP_GGML_BF16, QP_GGML_Q4_0, QP_GGML_Q4_1, QP_GGML_Q5_0, QP_GGML_Q5_1,
    QP_GGML_Q8_0, QP_GGML_Q2_K, QP_GGML_Q3_K, QP_GGML_Q4_K, QP_GGML_Q5_K, QP_GGML_Q6_K,
};
#define N_TYPES ((int)(sizeof k_types / sizeof k_types[0]))

static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Number of elements where got and want differ bitwise; prints the first few. */
static int64_t compare_bits(const char *what, const float *got, const float *want, int64_t n, bool quiet) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (f2u(got[i]) == f2u(want[i])) continue;
        if (!quiet && bad < 5)
            printf("  %s[%" PRId64 "]: got %.9g (0x%08x), want %.9g (0x%08x)\n", what, i, (double)got[i],
                   f2u(got[i]), (double)want[i], f2u(want[i]));
        bad++;
    }
    return bad;
}

/* ------------------------------------------------------------------ known answers */

struct ka {
    int32_t type;
    uint32_t n_blocks, n_elems;
    uint8_t *blocks; /* [n_blocks * block_bytes] */
    float *expected; /* [n_elems] */
};

static bool ka_load(int32_t type, struct ka *k) {
    char path[1024], lname[16];
    const char *name = qp_ggml_type_name(type);
    size_t i = 0;
    for (; name[i] && i + 1 < sizeof lname; i++) lname[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
    lname[i] = 0;
    snprintf(path, sizeof path, "%s/quant/%s.bin", QP_TEST_DATA, lname);
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("FAIL: cannot open %s\n", path);
        g_fail++;
        return false;
    }
    uint8_t hdr[16];
    bool ok = fread(hdr, 1, 16, f) == 16 && memcmp(hdr, "QPKA", 4) == 0;
    uint32_t v[3] = {0};
    for (int j = 0; ok && j < 3; j++)
        v[j] = (uint32_t)hdr[4 + 4 * j] | (uint32_t)hdr[5 + 4 * j] << 8 | (uint32_t)hdr[6 + 4 * j] << 16 |
               (uint32_t)hdr[7 + 4 * j] << 24;
    const struct qp_ggml_type_info *ti = qp_ggml_type_info(type);
    ok = ok && (int32_t)v[0] == type && v[1] > 0 && v[1] < 4096 && v[2] == v[1] * ti->block_elems;
    if (ok) {
        k->type = type;
        k->n_blocks = v[1];
        k->n_elems = v[2];
        k->blocks = malloc((size_t)v[1] * ti->block_bytes);
        k->expected = malloc((size_t)v[2] * 4);
        ok = k->blocks && k->expected && fread(k->blocks, ti->block_bytes, v[1], f) == v[1] &&
             fread(k->expected, 4, v[2], f) == v[2] && fgetc(f) == EOF;
    }
    fclose(f);
    if (!ok) {
        printf("FAIL: %s: bad header or size for %s\n", path, name);
        g_fail++;
    }
    return ok;
}

static void ka_free(struct ka *k) {
    free(k->blocks);
    free(k->expected);
}

static void test_known_answers(void) {
    for (int t = 0; t < N_TYPES; t++) {
        struct ka k;
        if (!ka_load(k_types[t], &k)) continue;
        float *got = malloc((size_t)k.n_elems * 4);
        qp_quant_dequant_row(k.type, k.blocks, got, k.n_elems);
        const int64_t bad = compare_bits(qp_ggml_type_name(k.type), got, k.expected, k.n_elems, false);
        CHECK(bad == 0, "%s: %" PRId64 " of %u elements differ from the gguf package", qp_ggml_type_name(k.type), bad,
              k.n_elems);
        printf("known answers %-5s %4u elements: %s\n", qp_ggml_type_name(k.type), k.n_elems, bad ? "MISMATCH" : "bit-exact");
        free(got);
        ka_free(&k);
    }
}

/* The comparison above must notice a 1-ulp error and a corrupted block. */
static void test_planted_faults(void) {
    struct ka k;
    if (!ka_load(QP_GGML_Q4_K, &k)) return;
    float *got = malloc((size_t)k.n_elems * 4);
    qp_quant_dequant_row(k.type, k.blocks, got, k.n_elems);
    k.expected[77] = nextafterf(k.expected[77], INFINITY);
    const int64_t bad = compare_bits("planted", got, k.expected, k.n_elems, true);
    CHECK(bad == 1, "planted 1-ulp error in the expected Q4_K values: comparison found %" PRId64 " mismatches, want 1", bad);
    free(got);
    ka_free(&k);

    if (!ka_load(QP_GGML_Q8_0, &k)) return;
    got = malloc((size_t)k.n_elems * 4);
    int flipped = -1; /* a block with a nonzero value, whose d sign bit we flip */
    for (uint32_t b = 0; b < k.n_blocks && flipped < 0; b++)
        for (int j = 0; j < 32; j++)
            if (k.expected[b * 32 + j] != 0.0f) {
                flipped = (int)b;
                break;
            }
    CHECK(flipped >= 0, "Q8_0 known answers are all zero");
    if (flipped >= 0) {
        k.blocks[flipped * 34 + 1] ^= 0x80; /* sign bit of the block's fp16 d */
        qp_quant_dequant_row(k.type, k.blocks, got, k.n_elems);
        const int64_t bad2 = compare_bits("planted", got, k.expected, k.n_elems, true);
        CHECK(bad2 > 0, "flipping the sign of d in Q8_0 block %d went unnoticed", flipped);
    }
    printf("planted faults: detected\n");
    free(got);
    ka_free(&k);
}

/* ---------------------------------------------------------------------- dot products */

/* Random bytes with every fp16 field set to a finite value, in the spirit of the known-answer
 * generator: exercises the full scale/min ranges that qp_quant_random_row keeps narrow. */
static void random_bytes_row(int32_t type, uint64_t *rs, uint8_t *dst, int64_t n) {
    const struct qp_ggml_type_info *ti = qp_ggml_type_info(type);
    size_t bytes;
    QP_ASSERT(qp_ggml_row_bytes(type, n, &bytes));
    if (ti->block_elems == 1) { /* scalar types: random values, not random bits (no NaN/inf) */
        qp_quant_random_row(type, rs, 1.0f, dst, n);
        return;
    }
    for (size_t i = 0; i < bytes; i++) dst[i] = (uint8_t)(qp_rng_next(rs) >> 56);
    int offs[2] = {-1, -1};
    switch (type) {
    case QP_GGML_Q4_0: case QP_GGML_Q5_0: case QP_GGML_Q8_0: offs[0] = 0; break;
    case QP_GGML_Q4_1: case QP_GGML_Q5_1: case QP_GGML_Q4_K: case QP_GGML_Q5_K: offs[0] = 0; offs[1] = 2; break;
    case QP_GGML_Q2_K: offs[0] = 80; offs[1] = 82; break;
    case QP_GGML_Q3_K: offs[0] = 108; break;
    case QP_GGML_Q6_K: offs[0] = 208; break;
    default: QP_ASSERT(!"type");
    }
    for (int64_t b = 0; b < n / ti->block_elems; b++)
        for (int j = 0; j < 2; j++) {
            if (offs[j] < 0) continue;
            const float v = (qp_rng_uniform(rs) * 2.0f - 1.0f) * 0.01f;
            const uint16_t h = qp_fp32_to_fp16(v);
            dst[b * ti->block_bytes + offs[j]] = (uint8_t)(h & 0xFF);
            dst[b * ti->block_bytes + offs[j] + 1] = (uint8_t)(h >> 8);
        }
}

/* Tolerance: |dot - exact| <= 1e-5 * sum_i |w_i x_i|. The kernels accumulate in 8 fp32 lanes:
 * per lane at most n/8 + 3 roundings (dense rows, 611 at n = 4864) or one per (sub-)block plus
 * ~8 (quantized rows, <= 320), each of relative size 2^-24, so the worst-case bound is ~4e-5 of
 * the sum of absolute terms; rounding errors of random sign grow like sqrt(depth) instead, and
 * the measured worst ratio is printed (below 1e-7 here). 1e-5 still catches an error of one
 * typical block: a block of 32 contributes ~sqrt(32) S/n >= 1e-3 S for n <= 4864. */
#define DOT_RTOL 1e-5

static double g_worst_ratio[QP_GGML_TYPE_COUNT];

static void check_dot(int32_t type, const uint8_t *row, const float *x, int64_t n, const char *kind) {
    float *w = malloc((size_t)n * 4);
    qp_quant_dequant_row(type, row, w, n);
    double ref = 0, abs_sum = 0;
    for (int64_t i = 0; i < n; i++) {
        ref += (double)w[i] * (double)x[i];
        abs_sum += fabs((double)w[i] * (double)x[i]);
    }
    const float got = qp_quant_dot_row(type, row, x, n);
    const double err = fabs((double)got - ref);
    const double ratio = abs_sum > 0 ? err / abs_sum : err;
    if (ratio > g_worst_ratio[type]) g_worst_ratio[type] = ratio;
    CHECK(isfinite(got) && err <= DOT_RTOL * abs_sum, "dot %s n=%" PRId64 " (%s row): got %.9g, double %.9g, err %.3g > %.1g * %.3g",
          qp_ggml_type_name(type), n, kind, (double)got, ref, err, DOT_RTOL, abs_sum);
    free(w);
}

static void test_dot(void) {
    uint64_t rs = 42;
    const int64_t lens32[] = {32, 224, 896, 4864, 32 * 27};
    const int64_t lens256[] = {256, 768, 4864, 256 * 7};
    const int64_t lens1[] = {1, 7, 33, 896, 4864};
    for (int t = 0; t < N_TYPES; t++) {
        const int32_t type = k_types[t];
        const struct qp_ggml_type_info *ti = qp_ggml_type_info(type);
        const int64_t *lens = ti->block_elems == 1 ? lens1 : ti->block_elems == 32 ? lens32 : lens256;
        const int nl = ti->block_elems == 256 ? 4 : 5;
        for (int li = 0; li < nl; li++) {
            const int64_t n = lens[li];
            size_t bytes;
            QP_ASSERT(qp_ggml_row_bytes(type, n, &bytes));
            uint8_t *row = malloc(bytes + 1);
            float *x = malloc((size_t)n * 4);
            for (int rep = 0; rep < 3; rep++) {
                for (int64_t i = 0; i < n; i++) x[i] = qp_rng_uniform(&rs) * 2.0f - 1.0f;
                qp_quant_random_row(type, &rs, 0.02f, row, n);
                check_dot(type, row, x, n, "qp_quant_random_row");
                random_bytes_row(type, &rs, row, n);
                check_dot(type, row, x, n, "random bytes");
            }
            if (type == QP_GGML_F32) { /* unaligned row: the memcpy path */
                uint8_t *un = malloc(bytes + 1);
                memcpy(un + 1, row, bytes);
                const float a = qp_quant_dot_row(type, row, x, n), b = qp_quant_dot_row(type, un + 1, x, n);
                CHECK(f2u(a) == f2u(b), "F32 dot of an unaligned row differs: %.9g vs %.9g", (double)b, (double)a);
                free(un);
            }
            free(row);
            free(x);
        }
        printf("dot %-5s worst |err| / sum|w x| = %.2e (tolerance %.0e)\n", qp_ggml_type_name(type),
               g_worst_ratio[type], DOT_RTOL);
    }
    /* planted: a row with one block zeroed (its d set to 0) must fail against the original's
     * exact dot; the block chosen is the one contributing most, so the fault is not tiny. */
    {
        const int64_t n = 4864, nb = n / 32;
        uint8_t *row = malloc((size_t)nb * 22);
        float *x = malloc(n * 4), *w = malloc(n * 4);
        for (int64_t i = 0; i < n; i++) x[i] = qp_rng_uniform(&rs) * 2.0f - 1.0f;
        qp_quant_random_row(QP_GGML_Q5_0, &rs, 0.02f, row, n);
        qp_quant_dequant_row(QP_GGML_Q5_0, row, w, n);
        double ref = 0, abs_sum = 0, best = -1;
        int64_t worst_block = 0;
        for (int64_t b = 0; b < nb; b++) {
            double part = 0;
            for (int64_t i = 32 * b; i < 32 * b + 32; i++) {
                part += (double)w[i] * x[i];
                abs_sum += fabs((double)w[i] * x[i]);
            }
            ref += part;
            if (fabs(part) > best) {
                best = fabs(part);
                worst_block = b;
            }
        }
        row[worst_block * 22] = row[worst_block * 22 + 1] = 0;
        const double wrong = qp_quant_dot_row(QP_GGML_Q5_0, row, x, n);
        CHECK(fabs(wrong - ref) > DOT_RTOL * abs_sum, "planted: a dot with block %" PRId64 " zeroed passes the tolerance: %g vs %g",
              worst_block, wrong, ref);
        printf("planted dot fault: error %.3g, tolerance %.3g: detected\n", fabs(wrong - ref), DOT_RTOL * abs_sum);
        free(row);
        free(x);
        free(w);
    }
}

/* ------------------------------------------------------------------ random rows */

static void test_random_rows(void) {
    const int64_t n = 4864 * 4;
    const float scale = 0.02f;
    for (int t = 0; t < N_TYPES; t++) {
        const int32_t type = k_types[t];
        size_t bytes;
        QP_ASSERT(qp_ggml_row_bytes(type, n, &bytes));
        uint8_t *a = malloc(bytes), *b = malloc(bytes);
        float *w = malloc((size_t)n * 4);
        uint64_t s1 = 7, s2 = 7, s3 = 8;
        qp_quant_random_row(type, &s1, scale, a, n);
        qp_quant_random_row(type, &s2, scale, b, n);
        CHECK(memcmp(a, b, bytes) == 0 && s1 == s2, "%s: same seed, different bytes", qp_ggml_type_name(type));
        qp_quant_random_row(type, &s3, scale, b, n);
        CHECK(memcmp(a, b, bytes) != 0, "%s: different seeds, same bytes", qp_ggml_type_name(type));
        qp_quant_dequant_row(type, a, w, n);
        double sum = 0, sq = 0;
        int64_t nonfinite = 0;
        for (int64_t i = 0; i < n; i++) {
            if (!isfinite(w[i])) nonfinite++;
            sum += w[i];
            sq += (double)w[i] * w[i];
        }
        const double mean = sum / n, rms = sqrt(sq / n);
        /* With ~2e4 samples the sampling error of the RMS is ~1%; the recipes' moments are exact
         * up to fp16 rounding of d (< 0.5%), so 5% is a generous bound. Mean: ~rms/sqrt(n). */
        CHECK(nonfinite == 0, "%s: %" PRId64 " non-finite values", qp_ggml_type_name(type), nonfinite);
        CHECK(fabs(rms / scale - 1.0) < 0.05, "%s: rms %.5g, want %.5g within 5%%", qp_ggml_type_name(type), rms, (double)scale);
        CHECK(fabs(mean) < 0.05 * scale, "%s: mean %.3g, want |mean| < %.3g", qp_ggml_type_name(type), mean, 0.05 * scale);
        printf("random %-5s rms/scale %.4f mean/scale %+.4f\n", qp_ggml_type_name(type), rms / scale, mean / scale);
        free(a);
        free(b);
        free(w);
    }
}

/* --------------------------------------------------------------------- fp16 / bf16 */

/* binary16 h as a double, from its definition. */
static double half_value(uint16_t h) {
    const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31) v = m ? NAN : INFINITY;
    else if (e == 0) v = ldexp(m, -24);
    else v = ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

static void test_fp16(void) {
    int bad_value = 0, bad_trip = 0, bad_round = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = qp_fp16_to_fp32((uint16_t)h);
        const double want = half_value((uint16_t)h);
        if (isnan(want)) {
            if (!isnan(f) || ((f2u(f) >> 13) & 0x3FF) != (h & 0x3FF) || (f2u(f) >> 31) != (h >> 15)) bad_value++;
            if (!isnan(qp_fp16_to_fp32(qp_fp32_to_fp16(f)))) bad_trip++;
            continue;
        }
        if ((double)f != want || !signbit(f) != !signbit(want)) bad_value++;
        if (qp_fp32_to_fp16(f) != h) bad_trip++;
    }
    CHECK(bad_value == 0, "fp16 -> fp32: %d of 65536 values wrong", bad_value);
    CHECK(bad_trip == 0, "fp16 -> fp32 -> fp16: %d of 65536 values do not round-trip", bad_trip);
    /* Midpoints between consecutive positive halves (0x7BFF's upper neighbour is 65536 = inf):
     * ties go to the even code, and one float ulp either side goes to the nearer one. */
    for (uint32_t h = 0; h < 0x7C00; h++) {
        const double a = half_value((uint16_t)h), b = (h == 0x7BFF) ? 65536.0 : half_value((uint16_t)(h + 1));
        const float mid = (float)((a + b) / 2); /* exact: 12 significant bits */
        const uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        for (int sgn = 0; sgn < 2; sgn++) {
            const float m = sgn ? -mid : mid;
            const uint16_t sb = sgn ? 0x8000 : 0;
            if (qp_fp32_to_fp16(m) != (uint16_t)(even | sb)) bad_round++;
            if (qp_fp32_to_fp16(nextafterf(m, sgn ? -INFINITY : INFINITY)) != (uint16_t)((h + 1) | sb)) bad_round++;
            if (qp_fp32_to_fp16(nextafterf(m, 0.0f)) != (uint16_t)(h | sb)) bad_round++;
        }
    }
    CHECK(bad_round == 0, "fp32 -> fp16 rounding: %d midpoint cases wrong", bad_round);
    CHECK(qp_fp32_to_fp16(65504.0f) == 0x7BFF && qp_fp32_to_fp16(65519.99f) == 0x7BFF, "largest half");
    CHECK(qp_fp32_to_fp16(65520.0f) == 0x7C00 && qp_fp32_to_fp16(1e6f) == 0x7C00 && qp_fp32_to_fp16(-1e30f) == 0xFC00,
          "overflow must give inf");
    CHECK(qp_fp32_to_fp16(INFINITY) == 0x7C00 && qp_fp32_to_fp16(-INFINITY) == 0xFC00, "inf");
    const uint16_t hn = qp_fp32_to_fp16(NAN);
    CHECK((hn & 0x7C00) == 0x7C00 && (hn & 0x3FF) != 0, "NaN -> fp16 gives 0x%04x, not a NaN", hn);
    CHECK(qp_fp32_to_fp16(u2f(0x7F800001u)) & 0x3FF, "signalling NaN with a low payload must stay NaN");
    CHECK(qp_fp32_to_fp16(ldexpf(1, -24)) == 0x0001 && qp_fp32_to_fp16(ldexpf(1, -25)) == 0x0000 &&
              qp_fp32_to_fp16(nextafterf(ldexpf(1, -25), 1)) == 0x0001 && qp_fp32_to_fp16(-ldexpf(1, -26)) == 0x8000 &&
              qp_fp32_to_fp16(FLT_MIN) == 0x0000 && qp_fp32_to_fp16(ldexpf(1, -14)) == 0x0400,
          "fp16 subnormal boundaries");
    CHECK(qp_fp32_to_fp16(-0.0f) == 0x8000, "-0");
    printf("fp16: 65536 values exact, round trip, %d midpoints, specials checked\n", 0x7C00);

    int bad_bf = 0, bad_bfr = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = qp_bf16_to_fp32((uint16_t)h);
        if (f2u(f) != h << 16) bad_bf++;
        if (!isnan(f) && qp_fp32_to_bf16(f) != h) bad_bfr++;
        if (isnan(f) && !isnan(qp_bf16_to_fp32(qp_fp32_to_bf16(f)))) bad_bfr++;
        if ((h & 0x7F80) != 0x7F80 && (h & 0x7FFF) != 0x7F7F) { /* midpoint to the next code */
            const float mid = u2f((h << 16) | 0x8000u);
            const uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
            if (qp_fp32_to_bf16(mid) != even) bad_bfr++;
            if (qp_fp32_to_bf16(u2f((h << 16) | 0x8001u)) != (uint16_t)(h + 1)) bad_bfr++;
            if (qp_fp32_to_bf16(u2f((h << 16) | 0x7FFFu)) != (uint16_t)h) bad_bfr++;
        }
    }
    CHECK(bad_bf == 0, "bf16 -> fp32: %d wrong", bad_bf);
    CHECK(bad_bfr == 0, "fp32 -> bf16 rounding / round trip: %d wrong", bad_bfr);
    CHECK(isnan(qp_bf16_to_fp32(qp_fp32_to_bf16(u2f(0x7F800001u)))), "bf16 must keep a low-payload NaN a NaN");
    CHECK(qp_fp32_to_bf16(u2f(0x7F7FFFFFu)) == 0x7F80, "FLT_MAX rounds to bf16 inf");
    printf("bf16: 65536 values, round trip, midpoints checked\n");
}

/* --------------------------------------------------------------------------- rng */

static void test_rng(void) {
    /* splitmix64 seeded with 0: first outputs of the reference implementation (Vigna, splitmix64.c). */
    uint64_t s = 0;
    const uint64_t want[3] = {0xE220A8397B1DCDAFull, 0x6E789E6AA1B965F4ull, 0x06C45D188009454Full};
    for (int i = 0; i < 3; i++) {
        const uint64_t v = qp_rng_next(&s);
        CHECK(v == want[i], "splitmix64 output %d: 0x%016" PRIx64 ", want 0x%016" PRIx64, i, v, want[i]);
    }
    double sum = 0;
    float lo = 1, hi = 0;
    s = 123;
    for (int i = 0; i < 100000; i++) {
        const float u = qp_rng_uniform(&s);
        sum += u;
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
    }
    CHECK(lo >= 0 && hi < 1 && fabs(sum / 100000 - 0.5) < 0.005, "uniform: min %g max %g mean %g", (double)lo, (double)hi,
          sum / 100000);
    int counts[7] = {0};
    for (int i = 0; i < 70000; i++) counts[qp_rng_below(&s, 7)]++;
    for (int i = 0; i < 7; i++) CHECK(counts[i] > 9400 && counts[i] < 10600, "below(7): bucket %d has %d of 70000", i, counts[i]);
}

static void test_supported(void) {
    for (int t = 0; t < N_TYPES; t++) CHECK(qp_quant_supported(k_types[t]), "%s not supported", qp_ggml_type_name(k_types[t]));
    for (int32_t t = -1; t <= QP_GGML_TYPE_COUNT; t++) {
        const struct qp_ggml_type_info *ti = qp_ggml_type_info(t);
        const bool table = ti && ti->supported;
        CHECK(qp_quant_supported(t) == table, "type %d (%s): quant.c says %d, the type table says %d", t, qp_ggml_type_name(t),
              qp_quant_supported(t), table);
    }
}

int main(void) {
    test_rng();
    test_fp16();
    test_supported();
    test_known_answers();
    test_planted_faults();
    test_dot();
    test_random_rows();
    if (g_fail) {
        printf("%d check(s) failed\n", g_fail);
        return 1;
    }
    printf("all quant checks passed\n");
    return 0;
}
