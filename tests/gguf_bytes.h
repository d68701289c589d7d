/* gguf_bytes.h — a tiny byte builder for GGUF test files (header-only, tests only).
 *
 * Builds files byte by byte, independently of core/gguf_write.c, so tests can write every
 * malformed variant the writer refuses to produce. All integers are written little-endian
 * whatever the host. Allocation failure aborts: in a test that is a crash worth seeing, not an
 * input error.
 *
 *   struct gb b = {0};
 *   gb_header(&b, 3, n_tensors, n_kv);
 *   gb_kv_u32(&b, "general.alignment", 32);
 *   gb_tensor(&b, "w", 2, (int64_t[]){32, 4}, QP_GGML_Q8_0, 0);
 *   gb_pad(&b, 32);  ... data ...
 *   gb_free(&b);
 */
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gb {
    uint8_t *p; /* [n] bytes built so far, capacity cap */
    size_t n, cap;
};

static inline void gb_raw(struct gb *b, const void *src, size_t len) {
    if (b->n + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + len) cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) {
            fprintf(stderr, "gguf_bytes: out of memory\n");
            abort();
        }
        b->p = q;
        b->cap = cap;
    }
    if (len) memcpy(b->p + b->n, src, len);
    b->n += len;
}

static inline void gb_le(struct gb *b, uint64_t v, int bytes) {
    uint8_t t[8];
    for (int i = 0; i < bytes; i++) t[i] = (uint8_t)(v >> (8 * i));
    gb_raw(b, t, (size_t)bytes);
}

static inline void gb_u8(struct gb *b, uint8_t v) { gb_le(b, v, 1); }
static inline void gb_u16(struct gb *b, uint16_t v) { gb_le(b, v, 2); }
static inline void gb_u32(struct gb *b, uint32_t v) { gb_le(b, v, 4); }
static inline void gb_i32(struct gb *b, int32_t v) { gb_le(b, (uint32_t)v, 4); }
static inline void gb_u64(struct gb *b, uint64_t v) { gb_le(b, v, 8); }
static inline void gb_i64(struct gb *b, int64_t v) { gb_le(b, (uint64_t)v, 8); }
static inline void gb_f32(struct gb *b, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    gb_u32(b, u);
}
static inline void gb_f64(struct gb *b, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    gb_u64(b, u);
}

/* A GGUF string: u64 length, then the bytes (no NUL). */
static inline void gb_strn(struct gb *b, const char *s, uint64_t len) {
    gb_u64(b, len);
    gb_raw(b, s, (size_t)len);
}
static inline void gb_str(struct gb *b, const char *s) { gb_strn(b, s, strlen(s)); }

/* Magic, version, tensor count, metadata count. */
static inline void gb_header(struct gb *b, uint32_t version, int64_t n_tensors, int64_t n_kv) {
    gb_raw(b, "GGUF", 4);
    gb_u32(b, version);
    gb_i64(b, n_tensors);
    gb_i64(b, n_kv);
}

/* Key and value type; the caller appends the value. */
static inline void gb_key(struct gb *b, const char *key, int32_t vtype) {
    gb_str(b, key);
    gb_i32(b, vtype);
}
static inline void gb_kv_u32(struct gb *b, const char *key, uint32_t v) {
    gb_key(b, key, 4);
    gb_u32(b, v);
}
static inline void gb_kv_i32(struct gb *b, const char *key, int32_t v) {
    gb_key(b, key, 5);
    gb_i32(b, v);
}
static inline void gb_kv_f32(struct gb *b, const char *key, float v) {
    gb_key(b, key, 6);
    gb_f32(b, v);
}
static inline void gb_kv_bool(struct gb *b, const char *key, int v) {
    gb_key(b, key, 7);
    gb_u8(b, (uint8_t)v);
}
static inline void gb_kv_str(struct gb *b, const char *key, const char *v) {
    gb_key(b, key, 8);
    gb_str(b, v);
}
/* An array header (key, type 9, element type, count); the caller appends the elements. */
static inline void gb_kv_arr(struct gb *b, const char *key, int32_t elem_type, uint64_t n) {
    gb_key(b, key, 9);
    gb_i32(b, elem_type);
    gb_u64(b, n);
}

/* One tensor info: name, n_dims, ne[n_dims], ggml type, offset into the data blob. */
static inline void gb_tensor(struct gb *b, const char *name, uint32_t n_dims, const int64_t *ne,
                             int32_t type, uint64_t offset) {
    gb_str(b, name);
    gb_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) gb_i64(b, ne[d]);
    gb_i32(b, type);
    gb_u64(b, offset);
}

/* Zero bytes up to the next multiple of align. */
static inline void gb_pad(struct gb *b, size_t align) {
    while (b->n % align) gb_u8(b, 0);
}

/* n bytes of a fixed pattern (seeded), so data read back can be compared. */
static inline void gb_fill(struct gb *b, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) gb_u8(b, (uint8_t)(seed * 131u + i * 7u + (i >> 8)));
}

static inline void gb_free(struct gb *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}
