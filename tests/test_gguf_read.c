/* test_gguf_read.c — the GGUF reader on valid files built byte by byte (tests/gguf_bytes.h):
 * every metadata value type read back exactly (nested arrays included), v2 and v3, default and
 * custom alignment, tensor infos and data pointers, the header hash, the header-only flag, the
 * typed getters, and qp_gguf_open on real files (mmap) including a missing one.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf_bytes.h"
#include "qp_ggml.h"
#include "qp_gguf.h"

#include "check.h"

/* Stop the test when a precondition of the following checks fails (e.g. open failed). */
#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: required check failed: %s\n", __FILE__, __LINE__, #c);         \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static bool str_eq(const struct qp_gguf_str *s, const char *lit, size_t len) {
    return s->len == len && memcmp(s->ptr, lit, len) == 0;
}

static const struct qp_gguf_value *val(const struct qp_gguf *g, const char *key) {
    const struct qp_gguf_kv *kv = qp_gguf_find(g, key);
    if (!kv) {
        fprintf(stderr, "key '%s' not found\n", key);
        exit(1);
    }
    return &kv->value;
}

static enum qp_status open_mem(const struct gb *b, unsigned flags, struct qp_gguf **g,
                               struct qp_error *err) {
    return qp_gguf_open_memory(b->p, b->n, "mem.gguf", flags, g, err);
}

/* ---- every metadata value type ------------------------------------------------------------ */

#define N_META_KV 31

static void build_meta(struct gb *b) {
    gb_header(b, 3, 0, N_META_KV);
    gb_key(b, "s.u8", 0), gb_u8(b, 200);
    gb_key(b, "s.i8", 1), gb_u8(b, (uint8_t)(int8_t)-100);
    gb_key(b, "s.u16", 2), gb_u16(b, 60000);
    gb_key(b, "s.i16", 3), gb_u16(b, (uint16_t)(int16_t)-30000);
    gb_kv_u32(b, "s.u32", 4000000000u);
    gb_kv_i32(b, "s.i32", -2000000000);
    gb_kv_f32(b, "s.f32", 0.15625f);
    gb_kv_bool(b, "s.true", 1);
    gb_kv_bool(b, "s.false", 0);
    gb_kv_str(b, "s.str", "h\xc3\xa9llo\n");
    gb_kv_str(b, "s.empty", "");
    gb_key(b, "s.nul", 8), gb_strn(b, "a\0b", 3);
    gb_key(b, "s.u64", 10), gb_u64(b, (1ull << 63) + 5);
    gb_key(b, "s.i64", 11), gb_i64(b, INT64_MIN);
    gb_key(b, "s.f64", 12), gb_f64(b, 1e300);
    /* Arrays of every fixed-size type. */
    gb_kv_arr(b, "a.u8", 0, 3), gb_u8(b, 0), gb_u8(b, 128), gb_u8(b, 255);
    gb_kv_arr(b, "a.i8", 1, 2), gb_u8(b, 0x80), gb_u8(b, 0x7f);
    gb_kv_arr(b, "a.u16", 2, 2), gb_u16(b, 1), gb_u16(b, 65535);
    gb_kv_arr(b, "a.i16", 3, 2), gb_u16(b, 0x8000), gb_u16(b, 7);
    gb_kv_arr(b, "a.u32", 4, 2), gb_u32(b, 0xffffffffu), gb_u32(b, 3);
    gb_kv_arr(b, "a.i32", 5, 3), gb_i32(b, 1), gb_i32(b, -2), gb_i32(b, INT32_MIN);
    gb_kv_arr(b, "a.f32", 6, 2), gb_f32(b, -1.5f), gb_f32(b, 1e-6f);
    gb_kv_arr(b, "a.bool", 7, 3), gb_u8(b, 1), gb_u8(b, 0), gb_u8(b, 1);
    gb_kv_arr(b, "a.u64", 10, 1), gb_u64(b, UINT64_MAX);
    gb_kv_arr(b, "a.i64", 11, 2), gb_i64(b, INT64_MIN), gb_i64(b, INT64_MAX);
    gb_kv_arr(b, "a.f64", 12, 2), gb_f64(b, -0.0), gb_f64(b, 3.141592653589793);
    gb_kv_arr(b, "a.str", 8, 3), gb_str(b, "a"), gb_str(b, ""), gb_str(b, "hello world");
    gb_kv_arr(b, "a.empty", 4, 0);
    /* Array of arrays of strings: [["a", "bc"], [], ["d"]]. */
    gb_kv_arr(b, "n.strs", 9, 3);
    gb_i32(b, 8), gb_u64(b, 2), gb_str(b, "a"), gb_str(b, "bc");
    gb_i32(b, 8), gb_u64(b, 0);
    gb_i32(b, 8), gb_u64(b, 1), gb_str(b, "d");
    /* Arrays of arrays of arrays of i32: [[[1, 2], [3]], [[-4]]]. */
    gb_kv_arr(b, "n.deep", 9, 2);
    gb_i32(b, 9), gb_u64(b, 2);
    gb_i32(b, 5), gb_u64(b, 2), gb_i32(b, 1), gb_i32(b, 2);
    gb_i32(b, 5), gb_u64(b, 1), gb_i32(b, 3);
    gb_i32(b, 9), gb_u64(b, 1);
    gb_i32(b, 5), gb_u64(b, 1), gb_i32(b, -4);
    /* An array of arrays of different element types: [u8[2], string[1], f64[1]]. */
    gb_kv_arr(b, "n.mixed", 9, 3);
    gb_i32(b, 0), gb_u64(b, 2), gb_u8(b, 9), gb_u8(b, 8);
    gb_i32(b, 8), gb_u64(b, 1), gb_str(b, "x");
    gb_i32(b, 12), gb_u64(b, 1), gb_f64(b, 0.25);
}

static void test_meta_types(void) {
    struct gb b = {0};
    build_meta(&b);
    struct qp_gguf *g = NULL;
    struct qp_error err = {{0}};
    enum qp_status st = open_mem(&b, 0, &g, &err);
    if (st != QP_OK) fprintf(stderr, "open: %s\n", err.msg);
    REQUIRE(st == QP_OK && g);
    CHECK(qp_gguf_n_kv(g) == N_META_KV);
    CHECK(qp_gguf_n_tensors(g) == 0);
    CHECK(qp_gguf_version(g) == 3);
    CHECK(qp_gguf_alignment(g) == 32);     /* the default */
    CHECK(qp_gguf_header_bytes(g) == b.n); /* the header is the whole file */
    CHECK(qp_gguf_file_size(g) == b.n);
    CHECK(qp_gguf_bytes(g) == b.p); /* zero-copy */
    CHECK(strcmp(qp_gguf_kv(g, 0)->key, "s.u8") == 0);
    CHECK(strcmp(qp_gguf_kv(g, N_META_KV - 1)->key, "n.mixed") == 0);
    CHECK(qp_gguf_kv(g, -1) == NULL && qp_gguf_kv(g, N_META_KV) == NULL);
    CHECK(qp_gguf_find(g, "absent") == NULL);
    CHECK(qp_gguf_find(g, "s.u") == NULL); /* no prefix matches */

    const struct qp_gguf_value *v;
    v = val(g, "s.u8");
    CHECK(v->type == QP_GGUF_U8 && v->u == 200);
    v = val(g, "s.i8");
    CHECK(v->type == QP_GGUF_I8 && v->i == -100);
    v = val(g, "s.u16");
    CHECK(v->type == QP_GGUF_U16 && v->u == 60000);
    v = val(g, "s.i16");
    CHECK(v->type == QP_GGUF_I16 && v->i == -30000);
    v = val(g, "s.u32");
    CHECK(v->type == QP_GGUF_U32 && v->u == 4000000000u);
    v = val(g, "s.i32");
    CHECK(v->type == QP_GGUF_I32 && v->i == -2000000000);
    v = val(g, "s.f32");
    CHECK(v->type == QP_GGUF_F32 && v->f == 0.15625);
    v = val(g, "s.true");
    CHECK(v->type == QP_GGUF_BOOL && v->b == true);
    v = val(g, "s.false");
    CHECK(v->type == QP_GGUF_BOOL && v->b == false);
    v = val(g, "s.str");
    CHECK(v->type == QP_GGUF_STRING && str_eq(&v->s, "h\xc3\xa9llo\n", 7));
    v = val(g, "s.empty");
    CHECK(v->type == QP_GGUF_STRING && v->s.len == 0);
    v = val(g, "s.nul");
    CHECK(v->type == QP_GGUF_STRING && str_eq(&v->s, "a\0b", 3));
    v = val(g, "s.u64");
    CHECK(v->type == QP_GGUF_U64 && v->u == (1ull << 63) + 5);
    v = val(g, "s.i64");
    CHECK(v->type == QP_GGUF_I64 && v->i == INT64_MIN);
    v = val(g, "s.f64");
    CHECK(v->type == QP_GGUF_F64 && v->f == 1e300);

    v = val(g, "a.u8");
    CHECK(v->type == QP_GGUF_ARRAY && v->arr.elem_type == QP_GGUF_U8 && v->arr.n == 3);
    CHECK(qp_gguf_arr_int(v, 0) == 0 && qp_gguf_arr_int(v, 1) == 128 &&
          qp_gguf_arr_int(v, 2) == 255);
    v = val(g, "a.i8");
    CHECK(v->arr.elem_type == QP_GGUF_I8 && v->arr.n == 2);
    CHECK(qp_gguf_arr_int(v, 0) == -128 && qp_gguf_arr_int(v, 1) == 127);
    v = val(g, "a.u16");
    CHECK(v->arr.elem_type == QP_GGUF_U16 && qp_gguf_arr_int(v, 1) == 65535);
    v = val(g, "a.i16");
    CHECK(v->arr.elem_type == QP_GGUF_I16 && qp_gguf_arr_int(v, 0) == -32768 &&
          qp_gguf_arr_int(v, 1) == 7);
    v = val(g, "a.u32");
    CHECK(v->arr.elem_type == QP_GGUF_U32 && qp_gguf_arr_int(v, 0) == 0xffffffffll);
    v = val(g, "a.i32");
    CHECK(v->arr.elem_type == QP_GGUF_I32 && v->arr.n == 3 && qp_gguf_arr_int(v, 1) == -2 &&
          qp_gguf_arr_int(v, 2) == INT32_MIN);
    v = val(g, "a.f32");
    CHECK(v->arr.elem_type == QP_GGUF_F32 && qp_gguf_arr_float(v, 0) == -1.5 &&
          qp_gguf_arr_float(v, 1) == (double)1e-6f);
    v = val(g, "a.bool");
    CHECK(v->arr.elem_type == QP_GGUF_BOOL && v->arr.n == 3);
    CHECK(memcmp(v->arr.raw, "\1\0\1", 3) == 0);
    v = val(g, "a.u64");
    CHECK(v->arr.elem_type == QP_GGUF_U64 && (uint64_t)qp_gguf_arr_int(v, 0) == UINT64_MAX);
    v = val(g, "a.i64");
    CHECK(qp_gguf_arr_int(v, 0) == INT64_MIN && qp_gguf_arr_int(v, 1) == INT64_MAX);
    v = val(g, "a.f64");
    CHECK(v->arr.elem_type == QP_GGUF_F64 && qp_gguf_arr_float(v, 0) == 0.0 &&
          signbit(qp_gguf_arr_float(v, 0)) && qp_gguf_arr_float(v, 1) == 3.141592653589793);
    v = val(g, "a.str");
    CHECK(v->arr.elem_type == QP_GGUF_STRING && v->arr.n == 3 && v->arr.strs);
    CHECK(str_eq(&v->arr.strs[0], "a", 1) && v->arr.strs[1].len == 0 &&
          str_eq(&v->arr.strs[2], "hello world", 11));
    v = val(g, "a.empty");
    CHECK(v->type == QP_GGUF_ARRAY && v->arr.elem_type == QP_GGUF_U32 && v->arr.n == 0);

    v = val(g, "n.strs");
    REQUIRE(v->arr.elem_type == QP_GGUF_ARRAY && v->arr.n == 3 && v->arr.vals);
    const struct qp_gguf_value *e = v->arr.vals;
    CHECK(e[0].type == QP_GGUF_ARRAY && e[0].arr.elem_type == QP_GGUF_STRING && e[0].arr.n == 2);
    CHECK(str_eq(&e[0].arr.strs[0], "a", 1) && str_eq(&e[0].arr.strs[1], "bc", 2));
    CHECK(e[1].arr.elem_type == QP_GGUF_STRING && e[1].arr.n == 0);
    CHECK(e[2].arr.n == 1 && str_eq(&e[2].arr.strs[0], "d", 1));

    v = val(g, "n.deep");
    REQUIRE(v->arr.elem_type == QP_GGUF_ARRAY && v->arr.n == 2);
    const struct qp_gguf_value *d0 = &v->arr.vals[0], *d1 = &v->arr.vals[1];
    REQUIRE(d0->arr.elem_type == QP_GGUF_ARRAY && d0->arr.n == 2 && d1->arr.n == 1);
    CHECK(d0->arr.vals[0].arr.elem_type == QP_GGUF_I32 && d0->arr.vals[0].arr.n == 2);
    CHECK(qp_gguf_arr_int(&d0->arr.vals[0], 0) == 1 && qp_gguf_arr_int(&d0->arr.vals[0], 1) == 2);
    CHECK(d0->arr.vals[1].arr.n == 1 && qp_gguf_arr_int(&d0->arr.vals[1], 0) == 3);
    CHECK(d1->arr.vals[0].arr.n == 1 && qp_gguf_arr_int(&d1->arr.vals[0], 0) == -4);

    v = val(g, "n.mixed");
    REQUIRE(v->arr.elem_type == QP_GGUF_ARRAY && v->arr.n == 3);
    e = v->arr.vals;
    CHECK(e[0].arr.elem_type == QP_GGUF_U8 && e[0].arr.n == 2 && qp_gguf_arr_int(&e[0], 1) == 8);
    CHECK(e[1].arr.elem_type == QP_GGUF_STRING && str_eq(&e[1].arr.strs[0], "x", 1));
    CHECK(e[2].arr.elem_type == QP_GGUF_F64 && qp_gguf_arr_float(&e[2], 0) == 0.25);
    qp_gguf_close(g);
    gb_free(&b);
}

/* ---- typed getters ------------------------------------------------------------------------ */

static void expect_fail(enum qp_status got, enum qp_status want, const struct qp_error *err,
                        const char *sub, int line) {
    if (got != want || !strstr(err->msg, sub) || strncmp(err->msg, "mem.gguf: ", 10) != 0) {
        fprintf(stderr, "%s:%d: expected status %s and a message with '%s', got %s: '%s'\n",
                __FILE__, line, qp_status_str(want), sub, qp_status_str(got), err->msg);
        failures++;
    }
}
#define EXPECT_FAIL(call, want, sub) expect_fail((call), (want), &err, (sub), __LINE__)

static void test_getters(void) {
    struct gb b = {0};
    build_meta(&b);
    struct qp_gguf *g = NULL;
    struct qp_error err = {{0}};
    REQUIRE(open_mem(&b, 0, &g, &err) == QP_OK);
    int64_t i = 0;
    CHECK(qp_gguf_get_int(g, "s.u8", 0, 255, &i, &err) == QP_OK && i == 200);
    CHECK(qp_gguf_get_int(g, "s.i8", -128, 0, &i, &err) == QP_OK && i == -100);
    CHECK(qp_gguf_get_int(g, "s.u32", 0, INT64_MAX, &i, &err) == QP_OK && i == 4000000000ll);
    CHECK(qp_gguf_get_int(g, "s.i64", INT64_MIN, 0, &i, &err) == QP_OK && i == INT64_MIN);
    i = 12345;
    EXPECT_FAIL(qp_gguf_get_int(g, "s.u8", 0, 199, &i, &err), QP_ERR_FORMAT,
                "'s.u8' = 200 is outside [0, 199]");
    CHECK(i == 12345); /* untouched on failure */
    EXPECT_FAIL(qp_gguf_get_int(g, "s.i32", 0, 10, &i, &err), QP_ERR_FORMAT,
                "'s.i32' = -2000000000 is outside [0, 10]");
    EXPECT_FAIL(qp_gguf_get_int(g, "s.u64", 0, INT64_MAX, &i, &err), QP_ERR_FORMAT,
                "'s.u64' = 9223372036854775813 is outside");
    EXPECT_FAIL(qp_gguf_get_int(g, "s.str", 0, 10, &i, &err), QP_ERR_FORMAT,
                "'s.str' has type string; an integer was expected");
    EXPECT_FAIL(qp_gguf_get_int(g, "no.such", 0, 10, &i, &err), QP_ERR_INVALID,
                "metadata key 'no.such' is missing");

    double f = 0;
    CHECK(qp_gguf_get_float(g, "s.f32", &f, &err) == QP_OK && f == 0.15625);
    CHECK(qp_gguf_get_float(g, "s.f64", &f, &err) == QP_OK && f == 1e300);
    EXPECT_FAIL(qp_gguf_get_float(g, "s.u32", &f, &err), QP_ERR_FORMAT,
                "'s.u32' has type u32; a float was expected");
    EXPECT_FAIL(qp_gguf_get_float(g, "none", &f, &err), QP_ERR_INVALID, "'none' is missing");

    bool bo = false;
    CHECK(qp_gguf_get_bool(g, "s.true", &bo, &err) == QP_OK && bo);
    CHECK(qp_gguf_get_bool(g, "s.false", &bo, &err) == QP_OK && !bo);
    EXPECT_FAIL(qp_gguf_get_bool(g, "s.u8", &bo, &err), QP_ERR_FORMAT,
                "'s.u8' has type u8; bool was expected");

    const char *s = NULL;
    CHECK(qp_gguf_get_str(g, "s.str", &s, &err) == QP_OK && s && strcmp(s, "h\xc3\xa9llo\n") == 0);
    CHECK(qp_gguf_get_str(g, "s.empty", &s, &err) == QP_OK && s && s[0] == '\0');
    EXPECT_FAIL(qp_gguf_get_str(g, "s.nul", &s, &err), QP_ERR_FORMAT,
                "'s.nul' contains a NUL byte");
    EXPECT_FAIL(qp_gguf_get_str(g, "a.str", &s, &err), QP_ERR_FORMAT,
                "'a.str' has type array; string was expected");

    const struct qp_gguf_value *a = NULL;
    CHECK(qp_gguf_get_array(g, "a.str", QP_GGUF_STRING, &a, &err) == QP_OK && a && a->arr.n == 3);
    CHECK(qp_gguf_get_array(g, "a.i32", QP_GGUF_I32, &a, &err) == QP_OK && a->arr.n == 3);
    CHECK(qp_gguf_get_array(g, "n.strs", QP_GGUF_ARRAY, &a, &err) == QP_OK && a->arr.n == 3);
    EXPECT_FAIL(qp_gguf_get_array(g, "a.i32", QP_GGUF_F32, &a, &err), QP_ERR_FORMAT,
                "'a.i32' has type array of i32; an array of f32 was expected");
    EXPECT_FAIL(qp_gguf_get_array(g, "s.u8", QP_GGUF_U8, &a, &err), QP_ERR_FORMAT,
                "'s.u8' has type u8; an array of u8 was expected");
    EXPECT_FAIL(qp_gguf_get_array(g, "gone", QP_GGUF_U8, &a, &err), QP_ERR_INVALID,
                "'gone' is missing");

    CHECK(qp_gguf_vtype_size(QP_GGUF_U16) == 2 && qp_gguf_vtype_size(QP_GGUF_F64) == 8 &&
          qp_gguf_vtype_size(QP_GGUF_BOOL) == 1 && qp_gguf_vtype_size(QP_GGUF_STRING) == 0 &&
          qp_gguf_vtype_size(QP_GGUF_ARRAY) == 0 && qp_gguf_vtype_size(13) == 0 &&
          qp_gguf_vtype_size(-1) == 0);
    CHECK(strcmp(qp_gguf_vtype_name(QP_GGUF_F64), "f64") == 0);
    CHECK(strcmp(qp_gguf_vtype_name(13), "unknown") == 0);
    CHECK(strcmp(qp_gguf_vtype_name(-1), "unknown") == 0);
    qp_gguf_close(g);
    gb_free(&b);
}

/* ---- tensors, versions, alignment --------------------------------------------------------- */

struct tspec {
    const char *name;
    uint32_t n_dims;
    int64_t ne[4];
    int32_t type;
    size_t bytes; /* computed by hand from the block table in docs/reference-facts.md */
};

static const struct tspec tspecs[] = {
    {"blk.0.attn_q.weight", 2, {64, 3}, QP_GGML_Q8_0, 3 * 2 * 34},
    {"blk.0.attn_q.bias", 1, {5}, QP_GGML_F32, 5 * 4},
    {"ffn_down.weight", 2, {256, 2}, QP_GGML_Q4_K, 2 * 144},
    {"four.dims", 4, {2, 3, 4, 5}, QP_GGML_F16, 120 * 2},
    {"q6k", 1, {512}, QP_GGML_Q6_K, 2 * 210},
};
#define N_T (sizeof tspecs / sizeof tspecs[0])

/* A file with the tensors above at llama.cpp-style offsets (running sum rounded up to the
 * alignment); align_kv = 0 leaves general.alignment out (default 32). The last tensor's data
 * ends exactly at the end of the file. Returns the offsets in offs. */
static void build_tensors(struct gb *b, uint32_t version, uint32_t align_kv, uint64_t *offs) {
    size_t align = align_kv ? align_kv : 32;
    gb_header(b, version, (int64_t)N_T, align_kv ? 2 : 1);
    gb_kv_str(b, "general.architecture", "test");
    if (align_kv) gb_kv_u32(b, "general.alignment", align_kv);
    uint64_t off = 0;
    for (size_t i = 0; i < N_T; i++) {
        offs[i] = off;
        gb_tensor(b, tspecs[i].name, tspecs[i].n_dims, tspecs[i].ne, tspecs[i].type, off);
        off += tspecs[i].bytes;
        off = (off + align - 1) / align * align;
    }
    gb_pad(b, align);
    size_t data0 = b->n;
    for (size_t i = 0; i < N_T; i++) {
        while (b->n < data0 + offs[i]) gb_u8(b, 0);
        gb_fill(b, tspecs[i].bytes, (unsigned)i + 1);
    }
}

static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static void check_tensors(const struct qp_gguf *g, const struct gb *b, const uint64_t *offs,
                          bool with_data) {
    REQUIRE(qp_gguf_n_tensors(g) == (int64_t)N_T);
    size_t data0 = qp_gguf_data_offset(g);
    CHECK(data0 % qp_gguf_alignment(g) == 0);
    CHECK(data0 >= qp_gguf_header_bytes(g) &&
          data0 - qp_gguf_header_bytes(g) < qp_gguf_alignment(g));
    for (size_t i = 0; i < N_T; i++) {
        const struct qp_gguf_tensor *t = qp_gguf_tensor(g, (int64_t)i);
        const struct tspec *s = &tspecs[i];
        REQUIRE(t);
        CHECK(strcmp(t->name, s->name) == 0);
        CHECK(qp_gguf_find_tensor(g, s->name) == t);
        CHECK(t->n_dims == s->n_dims && t->type == s->type && t->offset == offs[i]);
        int64_t n = 1;
        for (uint32_t d = 0; d < 4; d++) {
            int64_t want = d < s->n_dims ? s->ne[d] : 1;
            CHECK(t->ne[d] == want);
            n *= want;
        }
        CHECK(t->n_elems == n);
        CHECK(t->bytes == s->bytes);
        if (with_data) {
            struct gb ref = {0};
            gb_fill(&ref, s->bytes, (unsigned)i + 1);
            CHECK(t->data == b->p + data0 + offs[i]);
            CHECK(t->data && memcmp(t->data, ref.p, s->bytes) == 0);
            gb_free(&ref);
        } else {
            CHECK(t->data == NULL);
        }
    }
    CHECK(qp_gguf_tensor(g, -1) == NULL && qp_gguf_tensor(g, (int64_t)N_T) == NULL);
    CHECK(qp_gguf_find_tensor(g, "blk.0.attn_q") == NULL);
}

static void test_tensors(void) {
    uint32_t versions[] = {2, 3};
    uint32_t aligns[] = {0, 1, 64, 256};
    uint64_t hashes[8];
    int nh = 0;
    for (int vi = 0; vi < 2; vi++) {
        for (int ai = 0; ai < 4; ai++) {
            struct gb b = {0};
            uint64_t offs[N_T];
            build_tensors(&b, versions[vi], aligns[ai], offs);
            struct qp_gguf *g = NULL;
            struct qp_error err = {{0}};
            enum qp_status st = open_mem(&b, 0, &g, &err);
            if (st != QP_OK)
                fprintf(stderr, "v%u align %u: %s\n", versions[vi], aligns[ai], err.msg);
            REQUIRE(st == QP_OK);
            CHECK(qp_gguf_version(g) == versions[vi]);
            CHECK(qp_gguf_alignment(g) == (aligns[ai] ? aligns[ai] : 32));
            CHECK(qp_gguf_file_size(g) == b.n);
            check_tensors(g, &b, offs, true);
            CHECK(qp_gguf_header_hash(g) == fnv1a(b.p, qp_gguf_header_bytes(g)));
            hashes[nh++] = qp_gguf_header_hash(g);
            qp_gguf_close(g);

            /* The same bytes with the header-only flag: tensor infos, no data pointers. */
            REQUIRE(open_mem(&b, QP_GGUF_HEADER_ONLY, &g, &err) == QP_OK);
            check_tensors(g, &b, offs, false);
            size_t hb = qp_gguf_header_bytes(g), d0 = qp_gguf_data_offset(g);
            uint64_t h = qp_gguf_header_hash(g);
            qp_gguf_close(g);

            /* Cut right after the tensor table: a carried header. Header-only accepts it with
             * the same hash; the default mode refuses it as truncated. */
            struct gb cut = {0};
            gb_raw(&cut, b.p, hb);
            REQUIRE(open_mem(&cut, QP_GGUF_HEADER_ONLY, &g, &err) == QP_OK);
            check_tensors(g, &cut, offs, false);
            CHECK(qp_gguf_header_hash(g) == h);
            qp_gguf_close(g);
            st = open_mem(&cut, 0, &g, &err);
            if (d0 == hb) {
                /* The header ends aligned (always so with alignment 1): the blob starts at the
                 * end of the cut file, so the first tensor's data lies outside it. */
                CHECK(st == QP_ERR_FORMAT && strstr(err.msg, "extends past the end"));
            } else {
                CHECK(st == QP_ERR_FORMAT && strstr(err.msg, "truncated"));
            }
            CHECK(g == NULL);
            gb_free(&cut);
            gb_free(&b);
        }
    }
    /* The hash identifies the header: the version and alignment change it. */
    for (int x = 0; x < nh; x++)
        for (int y = x + 1; y < nh; y++) CHECK(hashes[x] != hashes[y]);
}

/* ---- files on disk ------------------------------------------------------------------------ */

static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    REQUIRE(fwrite(p, 1, n, f) == n);
    REQUIRE(fclose(f) == 0);
}

static void test_files(void) {
    char dir[] = "/tmp/qp_test_gguf_read_XXXXXX";
    REQUIRE(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    struct gb b = {0};
    uint64_t offs[N_T];
    build_tensors(&b, 3, 64, offs);
    write_file(path, b.p, b.n);

    struct qp_gguf *g = NULL;
    struct qp_error err = {{0}};
    enum qp_status st = qp_gguf_open(path, 0, &g, &err);
    if (st != QP_OK) fprintf(stderr, "open %s: %s\n", path, err.msg);
    REQUIRE(st == QP_OK);
    CHECK(strcmp(qp_gguf_path(g), path) == 0);
    CHECK(qp_gguf_file_size(g) == b.n);
    CHECK(memcmp(qp_gguf_bytes(g), b.p, b.n) == 0);
    CHECK(qp_gguf_header_hash(g) == fnv1a(b.p, qp_gguf_header_bytes(g)));
    for (size_t i = 0; i < N_T; i++) {
        const struct qp_gguf_tensor *t = qp_gguf_tensor(g, (int64_t)i);
        CHECK(t->data == (const uint8_t *)qp_gguf_bytes(g) + qp_gguf_data_offset(g) + offs[i]);
    }
    qp_gguf_close(g);

    /* Missing file: an I/O error naming the path. */
    char missing[300];
    snprintf(missing, sizeof missing, "%s/no-such-model.gguf", dir);
    st = qp_gguf_open(missing, 0, &g, &err);
    CHECK(st == QP_ERR_IO && g == NULL);
    CHECK(strstr(err.msg, missing) && strstr(err.msg, "cannot open"));
    CHECK(strstr(err.msg, "No such file"));

    /* A directory is not a model. */
    st = qp_gguf_open(dir, 0, &g, &err);
    CHECK(st == QP_ERR_IO && strstr(err.msg, dir) && strstr(err.msg, "not a regular file"));

    /* An empty file: truncated at the magic. */
    char empty[300];
    snprintf(empty, sizeof empty, "%s/empty.gguf", dir);
    write_file(empty, "", 0);
    st = qp_gguf_open(empty, 0, &g, &err);
    CHECK(st == QP_ERR_FORMAT && strstr(err.msg, empty) && strstr(err.msg, "truncated") &&
          strstr(err.msg, "magic"));

    CHECK(remove(empty) == 0 && remove(path) == 0 && rmdir(dir) == 0);
    gb_free(&b);
    qp_gguf_close(NULL); /* allowed */
}

int main(void) {
    test_meta_types();
    test_getters();
    test_tensors();
    test_files();
    if (failures) {
        fprintf(stderr, "test_gguf_read: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_gguf_read: all checks passed\n");
    return 0;
}
