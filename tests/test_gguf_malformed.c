/* test_gguf_malformed.c — the GGUF reader refuses malformed files cleanly.
 *
 * 1. A table of malformed files, each built byte by byte (tests/gguf_bytes.h) with exactly one
 *    defect, each asserting its status, that the message starts with the file's name, and its
 *    own specific message substring (with the byte position where the reader reports one).
 * 2. A valid file with every kind of section, cut at every byte offset: each cut must fail with
 *    a format error naming the file (and, with the header-only flag, every cut at or past the
 *    end of the tensor table must succeed).
 * 3. Every header byte of that file overwritten with 0x00, 0x7f, 0x80 and 0xff: each variant
 *    either opens (and then every tensor's data lies inside the buffer) or fails with a
 *    message naming the file. Never a crash. Each input is copied into a buffer of exactly its
 *    size, so a sanitizer build (-DQP_SANITIZE=ON) catches any read past the end.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_bytes.h"
#include "qp_ggml.h"
#include "qp_gguf.h"

#define WANT_MAX 200

/* Each builder writes one malformed file into b and the expected message substring into
 * want (positions computed while building). */
typedef void (*build_fn)(struct gb *b, char *want);

/* A v3 file starting with n_kv keys of which the first is general.architecture. */
static void head(struct gb *b, int64_t n_tensors, int64_t n_kv) {
    gb_header(b, 3, n_tensors, n_kv);
    gb_kv_str(b, "general.architecture", "test");
}

/* A file with one valid key and the given tensors (all at their given offsets), padded to 32
 * and followed by data_bytes of data. */
static void with_tensor(struct gb *b, const char *name, uint32_t n_dims, const int64_t *ne,
                        int32_t type, uint64_t offset, size_t data_bytes) {
    head(b, 1, 1);
    gb_tensor(b, name, n_dims, ne, type, offset);
    gb_pad(b, 32);
    gb_fill(b, data_bytes, 1);
}

#define W(...) snprintf(want, WANT_MAX, __VA_ARGS__)

static void bad_magic(struct gb *b, char *want) {
    gb_raw(b, "GGUX", 4), gb_u32(b, 3), gb_i64(b, 0), gb_i64(b, 0);
    W("not a GGUF file (magic is not 'GGUF')");
}
static void version_1(struct gb *b, char *want) {
    gb_header(b, 1, 0, 0);
    W("GGUF version 1 is not supported");
}
static void version_4(struct gb *b, char *want) {
    gb_header(b, 4, 0, 0);
    W("GGUF version 4 is not supported");
}
static void huge_n_kv(struct gb *b, char *want) {
    gb_header(b, 3, 0, INT64_MAX);
    W("metadata count 9223372036854775807 at byte 16 is impossible");
}
static void negative_n_kv(struct gb *b, char *want) {
    gb_header(b, 3, 0, -1);
    W("metadata count -1 at byte 16 is impossible");
}
static void huge_n_tensors(struct gb *b, char *want) {
    gb_header(b, 3, 1ll << 40, 0);
    W("tensor count 1099511627776 at byte 8 is impossible");
}
static void huge_key_length(struct gb *b, char *want) {
    gb_header(b, 3, 0, 1);
    gb_u64(b, UINT64_MAX), gb_raw(b, "key.and.some.more", 16);
    W("a metadata key at byte 24 has length 18446744073709551615 but only 16 bytes remain");
}
static void huge_string_value(struct gb *b, char *want) {
    gb_header(b, 3, 0, 1);
    gb_key(b, "s", 8);
    size_t at = b->n;
    gb_u64(b, 1ull << 40), gb_raw(b, "abc", 3);
    W("a string value at byte %zu has length 1099511627776", at);
}
static void bad_value_type(struct gb *b, char *want) {
    head(b, 0, 2);
    gb_str(b, "k");
    size_t at = b->n;
    gb_i32(b, 13), gb_u32(b, 0);
    W("key 'k': value type 13 at byte %zu is not a GGUF value type", at);
}
static void negative_value_type(struct gb *b, char *want) {
    head(b, 0, 2);
    gb_str(b, "k");
    size_t at = b->n;
    gb_i32(b, -1), gb_u32(b, 0);
    W("key 'k': value type -1 at byte %zu", at);
}
static void bad_array_elem_type(struct gb *b, char *want) {
    head(b, 0, 2);
    gb_key(b, "arr", 9);
    size_t at = b->n;
    gb_i32(b, 42), gb_u64(b, 1), gb_u32(b, 0);
    W("key 'arr': array element type 42 at byte %zu is not a GGUF value type", at);
}
static void array_count_overflow(struct gb *b, char *want) {
    head(b, 0, 2);
    gb_key(b, "arr", 9);
    gb_i32(b, 4);
    size_t at = b->n;
    gb_u64(b, 1ull << 62), gb_u32(b, 1), gb_u32(b, 2); /* 2^62 * 4 bytes wraps to 0 */
    W("key 'arr': array of 4611686018427387904 u32 at byte %zu cannot fit", at);
}
static void string_array_count_huge(struct gb *b, char *want) {
    head(b, 0, 2);
    gb_kv_arr(b, "tokenizer.ggml.tokens", 8, UINT64_MAX);
    gb_str(b, "a");
    W("key 'tokenizer.ggml.tokens': array of 18446744073709551615 string");
}
static void string_in_array_too_long(struct gb *b, char *want) {
    head(b, 0, 2);
    gb_kv_arr(b, "strs", 8, 2);
    gb_str(b, "ok");
    size_t at = b->n;
    gb_u64(b, 100), gb_raw(b, "short", 5), gb_u64(b, 0);
    W("an array string at byte %zu has length 100", at);
}
static void arrays_too_deep(struct gb *b, char *want) {
    head(b, 0, 2);
    gb_key(b, "deep", 9);
    for (int d = 0; d < 12; d++) gb_i32(b, 9), gb_u64(b, 1);
    gb_i32(b, 4), gb_u64(b, 0);
    W("key 'deep': arrays nested deeper than 8");
}
static void nested_array_bad_count(struct gb *b, char *want) {
    head(b, 0, 2);
    gb_kv_arr(b, "nest", 9, 2);
    gb_i32(b, 0), gb_u64(b, 1), gb_u8(b, 5);
    gb_i32(b, 0);
    size_t at = b->n;
    gb_u64(b, 1000), gb_u8(b, 1);
    W("key 'nest': array of 1000 u8 at byte %zu cannot fit in the 1 bytes left", at);
}
static void bool_value_2(struct gb *b, char *want) {
    head(b, 0, 2);
    gb_key(b, "flag", 7);
    size_t at = b->n;
    gb_u8(b, 2);
    W("key 'flag': bool value 2 at byte %zu is neither 0 nor 1", at);
}
static void bool_array_element(struct gb *b, char *want) {
    head(b, 0, 2);
    gb_kv_arr(b, "flags", 7, 3);
    size_t at = b->n;
    gb_u8(b, 0), gb_u8(b, 7), gb_u8(b, 1);
    W("key 'flags': bool array element 1 at byte %zu is neither 0 nor 1", at + 1);
}
static void duplicate_key(struct gb *b, char *want) {
    head(b, 0, 3);
    gb_kv_u32(b, "a.b", 1);
    size_t at = b->n;
    gb_kv_u32(b, "a.b", 2);
    W("duplicate metadata key 'a.b' at byte %zu", at);
}
static void empty_key(struct gb *b, char *want) {
    head(b, 0, 2);
    size_t at = b->n;
    gb_kv_u32(b, "", 1);
    W("metadata key #1 at byte %zu is empty", at);
}
static void key_with_nul(struct gb *b, char *want) {
    head(b, 0, 2);
    size_t at = b->n;
    gb_strn(b, "a\0b", 3), gb_i32(b, 4), gb_u32(b, 1);
    W("metadata key #1 at byte %zu contains a NUL byte", at);
}
static void alignment_u64(struct gb *b, char *want) {
    head(b, 0, 2);
    gb_key(b, "general.alignment", 10), gb_u64(b, 32);
    W("general.alignment has type u64; it must be u32");
}
static void alignment_string(struct gb *b, char *want) {
    head(b, 0, 2);
    gb_kv_str(b, "general.alignment", "32");
    W("general.alignment has type string; it must be u32");
}
static void alignment_zero(struct gb *b, char *want) {
    head(b, 0, 2);
    gb_kv_u32(b, "general.alignment", 0);
    W("general.alignment is 0");
}
static void alignment_48(struct gb *b, char *want) {
    head(b, 0, 2);
    gb_kv_u32(b, "general.alignment", 48);
    W("general.alignment 48 is not a power of two");
}
static void tensor_type_unassigned(struct gb *b, char *want) {
    head(b, 1, 1);
    gb_str(b, "w"), gb_u32(b, 1), gb_i64(b, 32);
    size_t at = b->n;
    gb_i32(b, 4), gb_u64(b, 0); /* ids 4 and 5 were Q4_2/Q4_3, removed from GGML */
    W("tensor 'w': type id 4 at byte %zu is not a GGML type", at);
}
static void tensor_type_too_big(struct gb *b, char *want) {
    head(b, 1, 1);
    gb_str(b, "w"), gb_u32(b, 1), gb_i64(b, 32);
    size_t at = b->n;
    gb_i32(b, 40), gb_u64(b, 0);
    W("tensor 'w': type id 40 at byte %zu", at);
}
static void tensor_type_negative(struct gb *b, char *want) {
    head(b, 1, 1);
    gb_str(b, "w"), gb_u32(b, 1), gb_i64(b, 32);
    gb_i32(b, -2), gb_u64(b, 0);
    W("tensor 'w': type id -2 at byte");
}
static void n_dims_0(struct gb *b, char *want) {
    head(b, 1, 1);
    gb_str(b, "w");
    size_t at = b->n;
    gb_u32(b, 0), gb_i32(b, 0), gb_u64(b, 0);
    W("tensor 'w': 0 dimensions at byte %zu (must be 1..4)", at);
}
static void n_dims_5(struct gb *b, char *want) {
    head(b, 1, 1);
    gb_str(b, "w");
    size_t at = b->n;
    gb_u32(b, 5);
    for (int d = 0; d < 5; d++) gb_i64(b, 1);
    gb_i32(b, 0), gb_u64(b, 0);
    W("tensor 'w': 5 dimensions at byte %zu (must be 1..4)", at);
}
static void zero_dim(struct gb *b, char *want) {
    head(b, 1, 1);
    gb_str(b, "w"), gb_u32(b, 2), gb_i64(b, 32);
    size_t at = b->n;
    gb_i64(b, 0), gb_i32(b, 0), gb_u64(b, 0);
    W("tensor 'w': dimension 1 is 0 at byte %zu (must be >= 1)", at);
}
static void negative_dim(struct gb *b, char *want) {
    head(b, 1, 1);
    gb_str(b, "w"), gb_u32(b, 1);
    size_t at = b->n;
    gb_i64(b, -5), gb_i32(b, 0), gb_u64(b, 0);
    W("tensor 'w': dimension 0 is -5 at byte %zu", at);
}
static void dim_product_overflow(struct gb *b, char *want) {
    head(b, 1, 1);
    gb_tensor(b, "w", 3, (int64_t[]){1ll << 32, 1ll << 20, 1ll << 12}, QP_GGML_F32, 0);
    W("tensor 'w': the product of its dimensions overflows");
}
static void byte_size_overflow(struct gb *b, char *want) {
    /* 2^62 elements fit int64, but 2^62 * 4 bytes do not fit 64 bits. */
    head(b, 1, 1);
    gb_tensor(b, "w", 2, (int64_t[]){1ll << 31, 1ll << 31}, QP_GGML_F32, 0);
    W("tensor 'w': its size in bytes overflows");
}
static void ne0_not_block_multiple(struct gb *b, char *want) {
    with_tensor(b, "w", 2, (int64_t[]){33, 2}, QP_GGML_Q8_0, 0, 128);
    W("tensor 'w': row length 33 is not a multiple of Q8_0's block of 32");
}
static void ne0_not_k_block_multiple(struct gb *b, char *want) {
    with_tensor(b, "blk.0.ffn_down.weight", 2, (int64_t[]){896, 2}, QP_GGML_Q4_K, 0, 1024);
    W("row length 896 is not a multiple of Q4_K's block of 256");
}
static void duplicate_tensor(struct gb *b, char *want) {
    head(b, 2, 1);
    gb_tensor(b, "w", 1, (int64_t[]){8}, QP_GGML_F32, 0);
    size_t at = b->n;
    gb_tensor(b, "w", 1, (int64_t[]){8}, QP_GGML_F32, 32);
    gb_pad(b, 32), gb_fill(b, 64, 1);
    W("duplicate tensor name 'w' at byte %zu", at);
}
static void empty_tensor_name(struct gb *b, char *want) {
    head(b, 1, 1);
    size_t at = b->n;
    gb_tensor(b, "", 1, (int64_t[]){8}, QP_GGML_F32, 0);
    gb_pad(b, 32), gb_fill(b, 32, 1);
    W("tensor #0 at byte %zu: name of 0 bytes (must be 1..63 bytes, no NUL)", at);
}
static void tensor_name_64(struct gb *b, char *want) {
    char name[65];
    memset(name, 'n', 64);
    name[64] = '\0';
    head(b, 1, 1);
    size_t at = b->n;
    gb_tensor(b, name, 1, (int64_t[]){8}, QP_GGML_F32, 0);
    gb_pad(b, 32), gb_fill(b, 32, 1);
    W("tensor #0 at byte %zu: name of 64 bytes", at);
}
static void tensor_name_huge(struct gb *b, char *want) {
    head(b, 1, 1);
    size_t at = b->n;
    gb_u64(b, 1ull << 50), gb_fill(b, 40, 1);
    W("a tensor name at byte %zu has length 1125899906842624", at);
}
static void misaligned_offset(struct gb *b, char *want) {
    head(b, 2, 1);
    gb_tensor(b, "a", 1, (int64_t[]){4}, QP_GGML_F32, 0);
    gb_str(b, "b"), gb_u32(b, 1), gb_i64(b, 4), gb_i32(b, QP_GGML_F32);
    size_t at = b->n;
    gb_u64(b, 16);
    gb_pad(b, 32), gb_fill(b, 64, 1);
    W("tensor 'b': offset 16 at byte %zu is not a multiple of the alignment 32", at);
}
static void misaligned_custom(struct gb *b, char *want) {
    head(b, 1, 2);
    gb_kv_u32(b, "general.alignment", 64);
    gb_str(b, "a"), gb_u32(b, 1), gb_i64(b, 4), gb_i32(b, QP_GGML_F32);
    size_t at = b->n;
    gb_u64(b, 32);
    gb_pad(b, 64), gb_fill(b, 128, 1);
    W("tensor 'a': offset 32 at byte %zu is not a multiple of the alignment 64", at);
}
static void data_out_of_file(struct gb *b, char *want) {
    with_tensor(b, "blk.0.attn_q.weight", 2, (int64_t[]){64, 4}, QP_GGML_Q8_0, 0, 200);
    W("tensor 'blk.0.attn_q.weight': data [0, +272) extends past the end of the data blob "
      "(200 bytes)");
}
static void data_offset_out_of_file(struct gb *b, char *want) {
    with_tensor(b, "w", 1, (int64_t[]){8}, QP_GGML_F32, 1024, 64);
    W("tensor 'w': data [1024, +32) extends past the end of the data blob (64 bytes)");
}
static void offset_overflow(struct gb *b, char *want) {
    /* offset + bytes wraps around 2^64 to a small number. */
    with_tensor(b, "w", 1, (int64_t[]){16}, QP_GGML_F32, UINT64_MAX - 31, 64);
    W("tensor 'w': data [18446744073709551584, +64) extends past the end");
}
static void overlapping(struct gb *b, char *want) {
    head(b, 2, 1);
    gb_tensor(b, "first", 1, (int64_t[]){16}, QP_GGML_F32, 0);  /* [0, 64) */
    gb_tensor(b, "second", 1, (int64_t[]){8}, QP_GGML_F32, 32); /* [32, 64) */
    gb_pad(b, 32), gb_fill(b, 64, 1);
    W("tensors 'first' [0, +64) and 'second' [32, +32) overlap");
}
static void overlapping_unsorted(struct gb *b, char *want) {
    /* Listed out of offset order; the overlap is between the first and the third. */
    head(b, 3, 1);
    gb_tensor(b, "c", 1, (int64_t[]){8}, QP_GGML_F32, 64);
    gb_tensor(b, "a", 1, (int64_t[]){8}, QP_GGML_F32, 0);
    gb_tensor(b, "b", 1, (int64_t[]){32}, QP_GGML_F32, 0 + 32); /* [32, 160) covers c */
    gb_pad(b, 32), gb_fill(b, 192, 1);
    W("tensors 'b' [32, +128) and 'c' [64, +32) overlap");
}
static void blob_past_end(struct gb *b, char *want) {
    head(b, 1, 1);
    gb_tensor(b, "w", 1, (int64_t[]){8}, QP_GGML_F32, 0);
    size_t hb = b->n;
    /* The file ends inside the padding before the data blob. */
    size_t data0 = (hb + 31) / 32 * 32; /* 128 > hb = 101: the file is cut inside the padding */
    W("truncated: the data blob would start at byte %zu, past the end (%zu bytes)", data0, hb);
}
static void truncated_dims(struct gb *b, char *want) {
    head(b, 1, 1);
    gb_str(b, "w"), gb_u32(b, 2), gb_i64(b, 32);
    size_t at = b->n;
    gb_u32(b, 7);
    W("truncated: a tensor dimension needs 8 bytes at byte %zu but the file has 4 left", at);
}
static void truncated_value(struct gb *b, char *want) {
    head(b, 0, 2);
    gb_key(b, "x", 12);
    size_t at = b->n;
    gb_u32(b, 0);
    W("truncated: a metadata value needs 8 bytes at byte %zu but the file has 4 left", at);
}

struct mcase {
    const char *name;
    build_fn build;
    enum qp_status status;
};

static const struct mcase cases[] = {
    {"bad_magic", bad_magic, QP_ERR_FORMAT},
    {"version_1", version_1, QP_ERR_UNSUPPORTED},
    {"version_4", version_4, QP_ERR_UNSUPPORTED},
    {"huge_n_kv", huge_n_kv, QP_ERR_FORMAT},
    {"negative_n_kv", negative_n_kv, QP_ERR_FORMAT},
    {"huge_n_tensors", huge_n_tensors, QP_ERR_FORMAT},
    {"huge_key_length", huge_key_length, QP_ERR_FORMAT},
    {"huge_string_value", huge_string_value, QP_ERR_FORMAT},
    {"bad_value_type", bad_value_type, QP_ERR_FORMAT},
    {"negative_value_type", negative_value_type, QP_ERR_FORMAT},
    {"bad_array_elem_type", bad_array_elem_type, QP_ERR_FORMAT},
    {"array_count_overflow", array_count_overflow, QP_ERR_FORMAT},
    {"string_array_count_huge", string_array_count_huge, QP_ERR_FORMAT},
    {"string_in_array_too_long", string_in_array_too_long, QP_ERR_FORMAT},
    {"arrays_too_deep", arrays_too_deep, QP_ERR_FORMAT},
    {"nested_array_bad_count", nested_array_bad_count, QP_ERR_FORMAT},
    {"bool_value_2", bool_value_2, QP_ERR_FORMAT},
    {"bool_array_element", bool_array_element, QP_ERR_FORMAT},
    {"duplicate_key", duplicate_key, QP_ERR_FORMAT},
    {"empty_key", empty_key, QP_ERR_FORMAT},
    {"key_with_nul", key_with_nul, QP_ERR_FORMAT},
    {"alignment_u64", alignment_u64, QP_ERR_FORMAT},
    {"alignment_string", alignment_string, QP_ERR_FORMAT},
    {"alignment_zero", alignment_zero, QP_ERR_FORMAT},
    {"alignment_48", alignment_48, QP_ERR_FORMAT},
    {"tensor_type_unassigned", tensor_type_unassigned, QP_ERR_FORMAT},
    {"tensor_type_too_big", tensor_type_too_big, QP_ERR_FORMAT},
    {"tensor_type_negative", tensor_type_negative, QP_ERR_FORMAT},
    {"n_dims_0", n_dims_0, QP_ERR_FORMAT},
    {"n_dims_5", n_dims_5, QP_ERR_FORMAT},
    {"zero_dim", zero_dim, QP_ERR_FORMAT},
    {"negative_dim", negative_dim, QP_ERR_FORMAT},
    {"dim_product_overflow", dim_product_overflow, QP_ERR_FORMAT},
    {"byte_size_overflow", byte_size_overflow, QP_ERR_FORMAT},
    {"ne0_not_block_multiple", ne0_not_block_multiple, QP_ERR_FORMAT},
    {"ne0_not_k_block_multiple", ne0_not_k_block_multiple, QP_ERR_FORMAT},
    {"duplicate_tensor", duplicate_tensor, QP_ERR_FORMAT},
    {"empty_tensor_name", empty_tensor_name, QP_ERR_FORMAT},
    {"tensor_name_64", tensor_name_64, QP_ERR_FORMAT},
    {"tensor_name_huge", tensor_name_huge, QP_ERR_FORMAT},
    {"misaligned_offset", misaligned_offset, QP_ERR_FORMAT},
    {"misaligned_custom", misaligned_custom, QP_ERR_FORMAT},
    {"data_out_of_file", data_out_of_file, QP_ERR_FORMAT},
    {"data_offset_out_of_file", data_offset_out_of_file, QP_ERR_FORMAT},
    {"offset_overflow", offset_overflow, QP_ERR_FORMAT},
    {"overlapping", overlapping, QP_ERR_FORMAT},
    {"overlapping_unsorted", overlapping_unsorted, QP_ERR_FORMAT},
    {"blob_past_end", blob_past_end, QP_ERR_FORMAT},
    {"truncated_dims", truncated_dims, QP_ERR_FORMAT},
    {"truncated_value", truncated_value, QP_ERR_FORMAT},
};
#define N_CASES (sizeof cases / sizeof cases[0])

/* Opens a copy of [p, p+n) in a buffer of exactly n bytes (so a sanitizer sees overreads). */
static enum qp_status open_exact(const uint8_t *p, size_t n, const char *name, unsigned flags,
                                 struct qp_gguf **g, struct qp_error *err, uint8_t **copy) {
    *copy = malloc(n ? n : 1);
    if (!*copy) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    if (n) memcpy(*copy, p, n);
    return qp_gguf_open_memory(*copy, n, name, flags, g, err);
}

static int run_cases(void) {
    int bad = 0;
    char wants[N_CASES][WANT_MAX];
    for (size_t i = 0; i < N_CASES; i++) {
        const struct mcase *c = &cases[i];
        struct gb b = {0};
        char *want = wants[i];
        want[0] = '\0';
        c->build(&b, want);
        char name[96], prefix[100];
        snprintf(name, sizeof name, "%s.gguf", c->name);
        snprintf(prefix, sizeof prefix, "%s: ", name);
        struct qp_gguf *g = (struct qp_gguf *)&b; /* must be reset to NULL on failure */
        struct qp_error err = {{0}};
        uint8_t *copy;
        enum qp_status st = open_exact(b.p, b.n, name, 0, &g, &err, &copy);
        bool ok = st == c->status && g == NULL && strncmp(err.msg, prefix, strlen(prefix)) == 0 &&
                  want[0] && strstr(err.msg, want) != NULL;
        if (!ok) {
            fprintf(stderr, "case %s: expected %s with '%s'\n  got %s: '%s'%s\n", c->name,
                    qp_status_str(c->status), want, qp_status_str(st), err.msg,
                    g == NULL ? "" : " (and *out not NULL)");
            bad++;
            if (st == QP_OK) qp_gguf_close(g);
        } else {
            printf("ok  %-26s %s\n", c->name, err.msg);
        }
        free(copy);
        gb_free(&b);
    }
    /* Each case has its own message: no expected substring appears in another case's. */
    for (size_t i = 0; i < N_CASES; i++)
        for (size_t j = 0; j < N_CASES; j++)
            if (i != j && strstr(wants[j], wants[i])) {
                fprintf(stderr, "cases %s and %s expect the same message '%s'\n", cases[i].name,
                        cases[j].name, wants[i]);
                bad++;
            }
    if (N_CASES < 25) {
        fprintf(stderr, "only %zu malformed cases (at least 25 wanted)\n", N_CASES);
        bad++;
    }
    return bad;
}

/* A valid file with every section kind: scalar, string, string-array, nested-array and
 * alignment keys; tensors of several types; the last tensor ends at the end of the file. */
static void build_full(struct gb *b) {
    gb_header(b, 3, 3, 6);
    gb_kv_str(b, "general.architecture", "qwen2");
    gb_kv_u32(b, "general.alignment", 64);
    gb_kv_u32(b, "qwen2.block_count", 1);
    gb_kv_f32(b, "qwen2.rope.freq_base", 1e6f);
    gb_kv_arr(b, "tokenizer.ggml.tokens", 8, 3), gb_str(b, "a"), gb_str(b, ""), gb_str(b, "<|x|>");
    gb_kv_arr(b, "nested", 9, 2);
    gb_i32(b, 5), gb_u64(b, 2), gb_i32(b, 1), gb_i32(b, 2);
    gb_i32(b, 8), gb_u64(b, 1), gb_str(b, "z");
    gb_tensor(b, "token_embd.weight", 2, (int64_t[]){32, 3}, QP_GGML_Q5_0, 0);     /* 66 */
    gb_tensor(b, "output_norm.weight", 1, (int64_t[]){32}, QP_GGML_F32, 128);      /* 128 */
    gb_tensor(b, "blk.0.ffn_down.weight", 1, (int64_t[]){256}, QP_GGML_Q6_K, 256); /* 210 */
    gb_pad(b, 64);
    size_t d0 = b->n;
    gb_fill(b, 466, 3);
    if (b->n != d0 + 256 + 210) {
        fprintf(stderr, "build_full: layout arithmetic is wrong\n");
        exit(1);
    }
}

static int run_truncations(void) {
    struct gb b = {0};
    build_full(&b);
    int bad = 0;
    struct qp_gguf *g = NULL;
    struct qp_error err = {{0}};
    uint8_t *copy;
    if (open_exact(b.p, b.n, "full.gguf", 0, &g, &err, &copy) != QP_OK) {
        fprintf(stderr, "the full file must open: %s\n", err.msg);
        exit(1);
    }
    size_t hb = qp_gguf_header_bytes(g);
    qp_gguf_close(g);
    free(copy);

    int kinds[5] = {0}; /* truncated / remain / fit / impossible / past the end */
    for (size_t cut = 0; cut < b.n; cut++) {
        err.msg[0] = '\0';
        g = (struct qp_gguf *)&b;
        enum qp_status st = open_exact(b.p, cut, "cut.gguf", 0, &g, &err, &copy);
        if (st != QP_ERR_FORMAT || g != NULL || strncmp(err.msg, "cut.gguf: ", 10) != 0) {
            fprintf(stderr, "cut at %zu of %zu: expected a format error, got %s: '%s'\n", cut, b.n,
                    qp_status_str(st), err.msg);
            bad++;
            if (st == QP_OK) qp_gguf_close(g);
        } else if (strstr(err.msg, "truncated")) {
            kinds[0]++;
        } else if (strstr(err.msg, "bytes remain")) {
            kinds[1]++;
        } else if (strstr(err.msg, "cannot fit")) {
            kinds[2]++;
        } else if (strstr(err.msg, "impossible")) {
            kinds[3]++;
        } else if (strstr(err.msg, "extends past the end")) {
            kinds[4]++;
        } else {
            fprintf(stderr, "cut at %zu: the message does not say the file is short: '%s'\n", cut,
                    err.msg);
            bad++;
        }
        free(copy);

        /* Header-only: any cut that keeps the whole tensor table opens. */
        g = NULL;
        st = open_exact(b.p, cut, "cut.gguf", QP_GGUF_HEADER_ONLY, &g, &err, &copy);
        if ((cut >= hb) != (st == QP_OK)) {
            fprintf(stderr, "header-only cut at %zu (header %zu bytes): got %s: '%s'\n", cut, hb,
                    qp_status_str(st), st ? err.msg : "");
            bad++;
        }
        qp_gguf_close(g);
        free(copy);
    }
    printf("truncations: %zu cuts of a %zu-byte file (header %zu): %d truncated, %d string past "
           "end, %d array past end, %d impossible count, %d data past end\n",
           b.n, b.n, hb, kinds[0], kinds[1], kinds[2], kinds[3], kinds[4]);
    gb_free(&b);
    return bad;
}

/* Overwrites every header byte with a few values; the reader must never crash, and when it
 * accepts the variant, every tensor's data must lie inside the buffer. */
static int run_corruptions(void) {
    struct gb b = {0};
    build_full(&b);
    int bad = 0, accepted = 0, refused = 0;
    const uint8_t vals[] = {0x00, 0x7f, 0x80, 0xff};
    size_t hb = 0;
    {
        struct qp_gguf *g = NULL;
        struct qp_error err = {{0}};
        if (qp_gguf_open_memory(b.p, b.n, "full.gguf", 0, &g, &err) != QP_OK) exit(1);
        hb = qp_gguf_header_bytes(g);
        qp_gguf_close(g);
    }
    for (size_t pos = 0; pos < hb; pos++) {
        for (size_t k = 0; k < sizeof vals; k++) {
            if (b.p[pos] == vals[k]) continue;
            uint8_t *copy = malloc(b.n);
            if (!copy) exit(1);
            memcpy(copy, b.p, b.n);
            copy[pos] = vals[k];
            struct qp_gguf *g = NULL;
            struct qp_error err = {{0}};
            enum qp_status st = qp_gguf_open_memory(copy, b.n, "bent.gguf", 0, &g, &err);
            if (st == QP_OK) {
                accepted++;
                for (int64_t i = 0; i < qp_gguf_n_tensors(g); i++) {
                    const struct qp_gguf_tensor *t = qp_gguf_tensor(g, i);
                    const uint8_t *d = t->data;
                    if (d < copy || d > copy + b.n || t->bytes > (size_t)(copy + b.n - d)) {
                        fprintf(stderr, "byte %zu = 0x%02x: tensor '%s' data outside the file\n",
                                pos, vals[k], t->name);
                        bad++;
                    }
                }
                qp_gguf_close(g);
            } else if (strncmp(err.msg, "bent.gguf: ", 11) != 0 || g != NULL) {
                fprintf(stderr, "byte %zu = 0x%02x: bad failure: '%s'\n", pos, vals[k], err.msg);
                bad++;
            } else {
                refused++;
            }
            free(copy);
        }
    }
    printf("corruptions: %d variants of %zu header bytes accepted (values, names), %d refused\n",
           accepted, hb, refused);
    if (refused == 0) {
        fprintf(stderr, "no corrupted variant was refused: the check is not working\n");
        bad++;
    }
    gb_free(&b);
    return bad;
}

int main(void) {
    int bad = run_cases();
    bad += run_truncations();
    bad += run_corruptions();
    if (bad) {
        fprintf(stderr, "test_gguf_malformed: %d failure(s)\n", bad);
        return 1;
    }
    printf("test_gguf_malformed: %zu malformed cases, truncations and corruptions all clean\n",
           N_CASES);
    return 0;
}
