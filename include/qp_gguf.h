/* qp_gguf.h — a hardened, zero-copy GGUF reader (versions 2 and 3).
 *
 * The file is mmapped read-only; every length, count, offset, type id and dimension product
 * read from it is checked before use with overflow-safe arithmetic, so a malformed file gets
 * a QP_ERR_FORMAT status and a message naming the file, what is wrong and at which byte —
 * never a crash or an out-of-bounds read. Strings point into the mapping (not NUL-terminated;
 * keys and tensor names also have NUL-terminated copies). The reader owns everything it
 * returns; pointers stay valid until qp_gguf_close().
 *
 * Checks beyond the layout: keys unique and non-empty, tensor names unique, non-empty and
 * shorter than 64 bytes, n_dims in 1..4, every dimension >= 1, ne[0] a multiple of the
 * type's block size, general.alignment a non-zero power of two of type u32, tensor offsets
 * aligned, tensor data inside the file and not overlapping another tensor's.
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qp_status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum qp_gguf_vtype {
    QP_GGUF_U8 = 0,
    QP_GGUF_I8 = 1,
    QP_GGUF_U16 = 2,
    QP_GGUF_I16 = 3,
    QP_GGUF_U32 = 4,
    QP_GGUF_I32 = 5,
    QP_GGUF_F32 = 6,
    QP_GGUF_BOOL = 7,
    QP_GGUF_STRING = 8,
    QP_GGUF_ARRAY = 9,
    QP_GGUF_U64 = 10,
    QP_GGUF_I64 = 11,
    QP_GGUF_F64 = 12,
    QP_GGUF_VTYPE_COUNT
};

/* Name of a value type ("u32", "string", "array", ...), "unknown" otherwise. */
const char *qp_gguf_vtype_name(int32_t t);

struct qp_gguf_str {
    const char *ptr; /* into the mapping; not NUL-terminated */
    uint64_t len;
};

/* One metadata value. Scalars are decoded; arrays of fixed-size elements point at their
 * packed little-endian bytes in the file (raw), arrays of strings at a decoded list (strs),
 * arrays of arrays at a decoded list of values (vals). */
struct qp_gguf_value {
    enum qp_gguf_vtype type;
    union {
        uint64_t u;            /* U8, U16, U32, U64 */
        int64_t i;             /* I8, I16, I32, I64 */
        double f;              /* F32, F64 */
        bool b;                /* BOOL */
        struct qp_gguf_str s;  /* STRING */
        struct {
            enum qp_gguf_vtype elem_type;
            uint64_t n;
            const void *raw;                  /* fixed-size elements: n * size bytes */
            const struct qp_gguf_str *strs;   /* STRING elements: [n] */
            const struct qp_gguf_value *vals; /* ARRAY elements: [n] */
        } arr;
    };
};

struct qp_gguf_kv {
    const char *key; /* NUL-terminated copy */
    struct qp_gguf_value value;
};

struct qp_gguf_tensor {
    const char *name;     /* NUL-terminated copy */
    uint32_t n_dims;      /* 1..4 */
    int64_t ne[4];        /* ne[0] = row length (fastest varying); unused dims are 1 */
    int32_t type;         /* enum qp_ggml_type */
    uint64_t offset;      /* relative to the data blob */
    int64_t n_elems;      /* product of ne */
    size_t bytes;         /* size of the data */
    const void *data;     /* into the mapping; NULL for a header-only file */
};

enum qp_gguf_flags {
    QP_GGUF_DEFAULT = 0,
    /* Accept a file that ends after the header (metadata + tensor table, padding optional):
     * tensor data bounds are not checked and tensor data pointers are NULL. For synthetic
     * models generated from a real model's carried header. */
    QP_GGUF_HEADER_ONLY = 1,
};

struct qp_gguf;

/* Opens and validates path. On success *out owns the mapping. On failure returns a status,
 * fills err with "path: what (at byte N)" and leaves *out NULL. */
enum qp_status qp_gguf_open(const char *path, unsigned flags, struct qp_gguf **out,
                            struct qp_error *err);

/* Same, over bytes in memory (not copied: they must outlive the reader). name is used in
 * messages. For tests and fuzzing. */
enum qp_status qp_gguf_open_memory(const void *data, size_t size, const char *name,
                                   unsigned flags, struct qp_gguf **out, struct qp_error *err);

void qp_gguf_close(struct qp_gguf *g); /* NULL is fine */

const char *qp_gguf_path(const struct qp_gguf *g);
uint32_t qp_gguf_version(const struct qp_gguf *g);
size_t qp_gguf_file_size(const struct qp_gguf *g);
size_t qp_gguf_alignment(const struct qp_gguf *g);
size_t qp_gguf_header_bytes(const struct qp_gguf *g); /* end of the tensor table */
size_t qp_gguf_data_offset(const struct qp_gguf *g);  /* start of the data blob */
const void *qp_gguf_bytes(const struct qp_gguf *g);   /* the whole mapping */

/* 64-bit FNV-1a over the header bytes [0, header_bytes): the identity of a model's metadata
 * and tensor table, which plans record so that a plan refuses another file. */
uint64_t qp_gguf_header_hash(const struct qp_gguf *g);

int64_t qp_gguf_n_kv(const struct qp_gguf *g);
const struct qp_gguf_kv *qp_gguf_kv(const struct qp_gguf *g, int64_t i);
const struct qp_gguf_kv *qp_gguf_find(const struct qp_gguf *g, const char *key); /* NULL if absent */

int64_t qp_gguf_n_tensors(const struct qp_gguf *g);
const struct qp_gguf_tensor *qp_gguf_tensor(const struct qp_gguf *g, int64_t i);
const struct qp_gguf_tensor *qp_gguf_find_tensor(const struct qp_gguf *g, const char *name);

/* Typed metadata getters. QP_ERR_INVALID (absent key, not found) or QP_ERR_FORMAT (wrong type,
 * value out of range) with a message naming the file and the key.
 * get_int accepts any integer type whose value fits [lo, hi]; get_float accepts F32/F64;
 * get_str returns a NUL-terminated copy owned by the reader. */
enum qp_status qp_gguf_get_int(const struct qp_gguf *g, const char *key, int64_t lo, int64_t hi,
                               int64_t *out, struct qp_error *err);
enum qp_status qp_gguf_get_float(const struct qp_gguf *g, const char *key, double *out,
                                 struct qp_error *err);
enum qp_status qp_gguf_get_bool(const struct qp_gguf *g, const char *key, bool *out,
                                struct qp_error *err);
enum qp_status qp_gguf_get_str(const struct qp_gguf *g, const char *key, const char **out,
                               struct qp_error *err);
/* An array whose elements are all of elem_type (STRING, or a fixed-size type). */
enum qp_status qp_gguf_get_array(const struct qp_gguf *g, const char *key,
                                 enum qp_gguf_vtype elem_type, const struct qp_gguf_value **out,
                                 struct qp_error *err);

/* Size in bytes of a fixed-size value type; 0 for STRING, ARRAY and unknown ids. */
size_t qp_gguf_vtype_size(int32_t t);

/* Element j of a fixed-size integer array as int64 (any integer type); the array must hold
 * integers and j < n (checked by the caller). */
int64_t qp_gguf_arr_int(const struct qp_gguf_value *arr, uint64_t j);
/* Element j of an F32/F64 array as double. */
double qp_gguf_arr_float(const struct qp_gguf_value *arr, uint64_t j);

#ifdef __cplusplus
}
#endif
