/* gguf_write.c — the GGUF writer behind include/qp_gguf_write.h.
 *
 * Owns: serialising metadata and the tensor table into a byte buffer, computing aligned
 * tensor offsets, and streaming tensor data to a temp file that is renamed into place only
 * when everything was written and synced. The header is built in memory (it is small: the
 * vocabulary arrays of a Qwen model are ~6 MB); tensor data never is, beyond one tensor.
 */
#define _POSIX_C_SOURCE 200809L
#include "qp_gguf_write.h"

#include <stdlib.h>
#include <string.h>

#include "qp_atomic_file.h"
#include "qp_ggml.h"

struct buf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
};

static void put(struct buf *b, const void *src, size_t n) {
    if (b->oom || n == 0) return; /* n == 0: src may be NULL (no tensors), memcpy forbids it */
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}
static void put_u32(struct buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(struct buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(struct buf *b, const char *s, uint64_t len) {
    put_u64(b, len);
    put(b, s, (size_t)len);
}

struct tensor {
    int64_t ne[4];
    uint32_t n_dims;
    int32_t type;
    uint64_t offset;
    size_t bytes;
};

struct qp_gguf_writer {
    uint32_t version;
    uint64_t n_kv;
    struct buf kv;        /* serialised key-value pairs */
    struct buf ti;        /* serialised tensor infos */
    struct tensor *tensors;
    int64_t n_tensors, cap_tensors;
    size_t alignment;
    uint64_t next_offset; /* running, aligned data offset */
};

struct qp_gguf_writer *qp_gguf_writer_new(uint32_t version) {
    struct qp_gguf_writer *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->version = version;
    w->alignment = 32;
    return w;
}

void qp_gguf_writer_free(struct qp_gguf_writer *w) {
    if (!w) return;
    free(w->kv.p);
    free(w->ti.p);
    free(w->tensors);
    free(w);
}

static void put_value(struct buf *b, const struct qp_gguf_value *v, bool with_type) {
    if (with_type) put_u32(b, (uint32_t)v->type);
    switch (v->type) {
    case QP_GGUF_U8: case QP_GGUF_U16: case QP_GGUF_U32: case QP_GGUF_U64:
        put(b, &v->u, qp_gguf_vtype_size(v->type)); /* little-endian: low bytes first */
        break;
    case QP_GGUF_I8: case QP_GGUF_I16: case QP_GGUF_I32: case QP_GGUF_I64:
        put(b, &v->i, qp_gguf_vtype_size(v->type));
        break;
    case QP_GGUF_F32: { float f = (float)v->f; put(b, &f, 4); break; }
    case QP_GGUF_F64: put(b, &v->f, 8); break;
    case QP_GGUF_BOOL: { uint8_t x = v->b ? 1 : 0; put(b, &x, 1); break; }
    case QP_GGUF_STRING: put_str(b, v->s.ptr, v->s.len); break;
    case QP_GGUF_ARRAY:
        put_u32(b, (uint32_t)v->arr.elem_type);
        put_u64(b, v->arr.n);
        if (v->arr.elem_type == QP_GGUF_STRING) {
            for (uint64_t j = 0; j < v->arr.n; j++) put_str(b, v->arr.strs[j].ptr, v->arr.strs[j].len);
        } else if (v->arr.elem_type == QP_GGUF_ARRAY) {
            for (uint64_t j = 0; j < v->arr.n; j++) put_value(b, &v->arr.vals[j], false);
        } else {
            put(b, v->arr.raw, (size_t)v->arr.n * qp_gguf_vtype_size(v->arr.elem_type));
        }
        break;
    default: QP_ASSERT(0 && "unknown GGUF value type");
    }
}

bool qp_gguf_writer_add(struct qp_gguf_writer *w, const char *key, const struct qp_gguf_value *v) {
    put_str(&w->kv, key, strlen(key));
    put_value(&w->kv, v, true);
    w->n_kv++;
    if (strcmp(key, "general.alignment") == 0 && v->type == QP_GGUF_U32 && v->u != 0 &&
        (v->u & (v->u - 1)) == 0 && w->n_tensors == 0) {
        w->alignment = (size_t)v->u;
    }
    return !w->kv.oom;
}

bool qp_gguf_writer_add_u32(struct qp_gguf_writer *w, const char *key, uint32_t v) {
    struct qp_gguf_value x = {.type = QP_GGUF_U32, .u = v};
    return qp_gguf_writer_add(w, key, &x);
}
bool qp_gguf_writer_add_i32(struct qp_gguf_writer *w, const char *key, int32_t v) {
    struct qp_gguf_value x = {.type = QP_GGUF_I32, .i = v};
    return qp_gguf_writer_add(w, key, &x);
}
bool qp_gguf_writer_add_u64(struct qp_gguf_writer *w, const char *key, uint64_t v) {
    struct qp_gguf_value x = {.type = QP_GGUF_U64, .u = v};
    return qp_gguf_writer_add(w, key, &x);
}
bool qp_gguf_writer_add_f32(struct qp_gguf_writer *w, const char *key, float v) {
    struct qp_gguf_value x = {.type = QP_GGUF_F32, .f = v};
    return qp_gguf_writer_add(w, key, &x);
}
bool qp_gguf_writer_add_bool(struct qp_gguf_writer *w, const char *key, bool v) {
    struct qp_gguf_value x = {.type = QP_GGUF_BOOL, .b = v};
    return qp_gguf_writer_add(w, key, &x);
}
bool qp_gguf_writer_add_str(struct qp_gguf_writer *w, const char *key, const char *v) {
    struct qp_gguf_value x = {.type = QP_GGUF_STRING, .s = {v, strlen(v)}};
    return qp_gguf_writer_add(w, key, &x);
}
bool qp_gguf_writer_add_array(struct qp_gguf_writer *w, const char *key,
                              enum qp_gguf_vtype elem_type, uint64_t n, const void *data) {
    QP_ASSERT(qp_gguf_vtype_size(elem_type) > 0);
    struct qp_gguf_value x = {.type = QP_GGUF_ARRAY};
    x.arr.elem_type = elem_type;
    x.arr.n = n;
    x.arr.raw = data;
    return qp_gguf_writer_add(w, key, &x);
}
bool qp_gguf_writer_add_str_array(struct qp_gguf_writer *w, const char *key, uint64_t n,
                                  const char *const *strs) {
    put_str(&w->kv, key, strlen(key));
    put_u32(&w->kv, QP_GGUF_ARRAY);
    put_u32(&w->kv, QP_GGUF_STRING);
    put_u64(&w->kv, n);
    for (uint64_t j = 0; j < n; j++) put_str(&w->kv, strs[j], strlen(strs[j]));
    w->n_kv++;
    return !w->kv.oom;
}

bool qp_gguf_writer_add_tensor(struct qp_gguf_writer *w, const char *name, uint32_t n_dims,
                               const int64_t *ne, int32_t type) {
    if (n_dims < 1 || n_dims > 4) return false;
    struct tensor t = {{1, 1, 1, 1}, n_dims, type, 0, 0};
    size_t rows = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] < 1) return false;
        t.ne[d] = ne[d];
        if (d > 0 && !qp_mul_size(rows, (size_t)ne[d], &rows)) return false;
    }
    size_t row_bytes;
    if (!qp_ggml_row_bytes(type, ne[0], &row_bytes) || !qp_mul_size(row_bytes, rows, &t.bytes)) {
        return false;
    }
    if (w->n_tensors == w->cap_tensors) {
        int64_t cap = w->cap_tensors ? w->cap_tensors * 2 : 64;
        struct tensor *p = realloc(w->tensors, (size_t)cap * sizeof *p);
        if (!p) return false;
        w->tensors = p;
        w->cap_tensors = cap;
    }
    t.offset = w->next_offset;
    uint64_t end = t.offset + t.bytes;
    w->next_offset = (end + w->alignment - 1) / w->alignment * w->alignment;
    w->tensors[w->n_tensors++] = t;
    put_str(&w->ti, name, strlen(name));
    put_u32(&w->ti, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) put_u64(&w->ti, (uint64_t)ne[d]);
    put_u32(&w->ti, (uint32_t)type);
    put_u64(&w->ti, t.offset);
    return !w->ti.oom;
}

int64_t qp_gguf_writer_n_tensors(const struct qp_gguf_writer *w) { return w->n_tensors; }

size_t qp_gguf_writer_tensor_bytes(const struct qp_gguf_writer *w, int64_t i) {
    QP_ASSERT(i >= 0 && i < w->n_tensors);
    return w->tensors[i].bytes;
}

enum qp_status qp_gguf_writer_header(struct qp_gguf_writer *w, bool header_only, void **out,
                                     size_t *out_len, struct qp_error *err) {
    struct buf b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, w->version);
    put_u64(&b, (uint64_t)w->n_tensors);
    put_u64(&b, w->n_kv);
    put(&b, w->kv.p, w->kv.len);
    put(&b, w->ti.p, w->ti.len);
    if (!header_only) {
        static const uint8_t zeros[256];
        size_t pad = (w->alignment - b.len % w->alignment) % w->alignment;
        while (pad > 0) {
            size_t n = pad < sizeof zeros ? pad : sizeof zeros;
            put(&b, zeros, n);
            pad -= n;
        }
    }
    if (b.oom || w->kv.oom || w->ti.oom) {
        free(b.p);
        return qp_error_set(err, QP_ERR_NOMEM, "gguf writer: out of memory");
    }
    *out = b.p;
    *out_len = b.len;
    return QP_OK;
}

enum qp_status qp_gguf_writer_write_path(struct qp_gguf_writer *w, const char *path,
                                         qp_gguf_fill_fn fill, void *ctx, bool header_only,
                                         struct qp_error *err) {
    void *hdr = NULL;
    size_t hdr_len = 0;
    enum qp_status st = qp_gguf_writer_header(w, header_only, &hdr, &hdr_len, err);
    if (st) return st;
    struct qp_atomic_file f;
    void *data = NULL;
    size_t data_cap = 0;
    static const uint8_t zeros[256];
    if ((st = qp_atomic_file_open(&f, path, err)) != QP_OK) goto done;
    if ((st = qp_atomic_file_write(&f, hdr, hdr_len, err)) != QP_OK) goto done;
    if (!header_only) {
        uint64_t written = 0;
        for (int64_t i = 0; i < w->n_tensors; i++) {
            const struct tensor *t = &w->tensors[i];
            while (written < t->offset) {
                size_t n = t->offset - written < sizeof zeros ? (size_t)(t->offset - written) : sizeof zeros;
                if ((st = qp_atomic_file_write(&f, zeros, n, err)) != QP_OK) goto done;
                written += n;
            }
            if (t->bytes > data_cap) {
                void *p = realloc(data, t->bytes);
                if (!p) {
                    st = qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory for tensor #%lld (%zu bytes)",
                                      path, (long long)i, t->bytes);
                    qp_atomic_file_abort(&f);
                    goto done;
                }
                data = p;
                data_cap = t->bytes;
            }
            if (!fill(ctx, i, data, t->bytes, err)) {
                st = QP_ERR_INVALID;
                qp_atomic_file_abort(&f);
                goto done;
            }
            if ((st = qp_atomic_file_write(&f, data, t->bytes, err)) != QP_OK) goto done;
            written += t->bytes;
        }
    }
    st = qp_atomic_file_commit(&f, err);
done:
    free(data);
    free(hdr);
    return st;
}
