/* gguf.c — the hardened GGUF reader behind include/qp_gguf.h.
 *
 * Owns: parsing a GGUF v2/v3 image (mmapped file or caller bytes) into decoded metadata and a
 * tensor table, and every bounds check that parsing needs. Does not own: what the metadata
 * means (the compiler's lowerings and the tokenizer read it) or dequantization.
 *
 * Invariants after a successful open: every string, array and tensor-data range lies inside the
 * image; every count was checked against the bytes left before anything was allocated for it
 * (so a 10^18 count in a 100-byte file fails fast instead of allocating); nesting of arrays is
 * bounded (QP_GGUF_MAX_DEPTH) so a hostile file cannot exhaust the stack.
 */
#define _POSIX_C_SOURCE 200809L
#include "qp_gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qp_ggml.h"

#define QP_GGUF_MAGIC "GGUF"
#define QP_GGUF_DEFAULT_ALIGNMENT 32
#define QP_GGUF_MAX_DEPTH 8        /* arrays of arrays nested deeper than this are refused */
#define QP_GGUF_MAX_NAME 64        /* tensor names must be shorter (llama.cpp's limit) */
#define QP_GGUF_MAX_DIMS 4

/* All allocations of one reader come from a chain of blocks freed together at close. */
struct pool_block {
    struct pool_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

struct qp_gguf {
    char *path;               /* file path or memory name, for messages */
    const uint8_t *base;      /* [size] the image */
    size_t size;
    void *map;                /* mmap base when we mapped the file, else NULL */
    uint32_t version;
    size_t alignment;
    size_t header_bytes;
    size_t data_offset;
    uint64_t header_hash;
    int64_t n_kv;
    struct qp_gguf_kv *kvs;         /* [n_kv] */
    int64_t n_tensors;
    struct qp_gguf_tensor *tensors; /* [n_tensors] */
    struct pool_block *pool;
};

/* ---- pool ---------------------------------------------------------------------------------- */

static void *pool_alloc(struct qp_gguf *g, size_t bytes) {
    bytes = (bytes + 15) & ~(size_t)15;
    struct pool_block *b = g->pool;
    if (!b || b->cap - b->used < bytes) {
        size_t cap = bytes > (1u << 20) ? bytes : (1u << 20);
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = g->pool;
        b->used = 0;
        b->cap = cap;
        g->pool = b;
    }
    void *p = b->data + b->used;
    b->used += bytes;
    return p;
}

/* ---- cursor -------------------------------------------------------------------------------- */

struct cursor {
    struct qp_gguf *g;
    size_t pos;
    struct qp_error *err;
};

static size_t left(const struct cursor *c) { return c->g->size - c->pos; }

static enum qp_status truncated(struct cursor *c, const char *what, size_t need) {
    return qp_error_set(c->err, QP_ERR_FORMAT,
                        "%s: truncated: %s needs %zu bytes at byte %zu but the file has %zu left",
                        c->g->path, what, need, c->pos, left(c));
}

static enum qp_status rd(struct cursor *c, void *dst, size_t n, const char *what) {
    if (left(c) < n) return truncated(c, what, n);
    memcpy(dst, c->g->base + c->pos, n); /* little-endian host assumed (x86-64, arm64) */
    c->pos += n;
    return QP_OK;
}

static enum qp_status rd_str(struct cursor *c, struct qp_gguf_str *s, const char *what,
                             const char *key) {
    uint64_t len = 0;
    size_t at = c->pos;
    enum qp_status st = rd(c, &len, 8, what);
    if (st) return st;
    if (len > left(c)) {
        return qp_error_set(c->err, QP_ERR_FORMAT,
                            "%s: %s%s%s%s at byte %zu has length %llu but only %zu bytes remain",
                            c->g->path, key ? "key '" : "", key ? key : "", key ? "': " : "",
                            what, at, (unsigned long long)len, left(c));
    }
    s->ptr = (const char *)c->g->base + c->pos;
    s->len = len;
    c->pos += (size_t)len;
    return QP_OK;
}

static char *pool_strdup(struct qp_gguf *g, const struct qp_gguf_str *s) {
    char *p = pool_alloc(g, (size_t)s->len + 1);
    if (!p) return NULL;
    memcpy(p, s->ptr, (size_t)s->len);
    p[s->len] = '\0';
    return p;
}

/* ---- values -------------------------------------------------------------------------------- */

const char *qp_gguf_vtype_name(int32_t t) {
    static const char *names[QP_GGUF_VTYPE_COUNT] = {"u8",   "i8",     "u16",   "i16", "u32",
                                                     "i32",  "f32",    "bool",  "string",
                                                     "array", "u64",   "i64",   "f64"};
    return (t >= 0 && t < QP_GGUF_VTYPE_COUNT) ? names[t] : "unknown";
}

size_t qp_gguf_vtype_size(int32_t t) {
    switch (t) {
    case QP_GGUF_U8: case QP_GGUF_I8: case QP_GGUF_BOOL: return 1;
    case QP_GGUF_U16: case QP_GGUF_I16: return 2;
    case QP_GGUF_U32: case QP_GGUF_I32: case QP_GGUF_F32: return 4;
    case QP_GGUF_U64: case QP_GGUF_I64: case QP_GGUF_F64: return 8;
    default: return 0;
    }
}

static enum qp_status rd_value(struct cursor *c, int32_t type, struct qp_gguf_value *v,
                               const char *key, int depth);

static enum qp_status rd_scalar(struct cursor *c, int32_t type, struct qp_gguf_value *v,
                                const char *key) {
    unsigned char b[8];
    size_t at = c->pos;
    size_t n = qp_gguf_vtype_size(type);
    enum qp_status st = rd(c, b, n, "a metadata value");
    if (st) return st;
    v->type = (enum qp_gguf_vtype)type;
    switch (type) {
    case QP_GGUF_U8: v->u = b[0]; break;
    case QP_GGUF_I8: v->i = (int8_t)b[0]; break;
    case QP_GGUF_U16: { uint16_t x; memcpy(&x, b, 2); v->u = x; break; }
    case QP_GGUF_I16: { int16_t x; memcpy(&x, b, 2); v->i = x; break; }
    case QP_GGUF_U32: { uint32_t x; memcpy(&x, b, 4); v->u = x; break; }
    case QP_GGUF_I32: { int32_t x; memcpy(&x, b, 4); v->i = x; break; }
    case QP_GGUF_F32: { float x; memcpy(&x, b, 4); v->f = x; break; }
    case QP_GGUF_U64: { uint64_t x; memcpy(&x, b, 8); v->u = x; break; }
    case QP_GGUF_I64: { int64_t x; memcpy(&x, b, 8); v->i = x; break; }
    case QP_GGUF_F64: { double x; memcpy(&x, b, 8); v->f = x; break; }
    case QP_GGUF_BOOL:
        if (b[0] > 1) {
            return qp_error_set(c->err, QP_ERR_FORMAT,
                                "%s: key '%s': bool value %u at byte %zu is neither 0 nor 1",
                                c->g->path, key, b[0], at);
        }
        v->b = b[0] != 0;
        break;
    default: QP_ASSERT(0);
    }
    return QP_OK;
}

static enum qp_status rd_array(struct cursor *c, struct qp_gguf_value *v, const char *key,
                               int depth) {
    int32_t et = 0; /* rd fills both or fails; initialised for gcc's -O3 flow analysis */
    uint64_t n = 0;
    size_t at = c->pos;
    enum qp_status st = rd(c, &et, 4, "an array element type");
    if (st) return st;
    if (et < 0 || et >= QP_GGUF_VTYPE_COUNT) {
        return qp_error_set(c->err, QP_ERR_FORMAT,
                            "%s: key '%s': array element type %d at byte %zu is not a GGUF value type",
                            c->g->path, key, et, at);
    }
    if (et == QP_GGUF_ARRAY && depth + 1 >= QP_GGUF_MAX_DEPTH) {
        return qp_error_set(c->err, QP_ERR_FORMAT,
                            "%s: key '%s': arrays nested deeper than %d at byte %zu",
                            c->g->path, key, QP_GGUF_MAX_DEPTH, at);
    }
    at = c->pos;
    if ((st = rd(c, &n, 8, "an array length"))) return st;
    /* The smallest encoding of one element bounds how many can fit in what is left. */
    size_t min_elem = qp_gguf_vtype_size(et);
    if (et == QP_GGUF_STRING) min_elem = 8;
    if (et == QP_GGUF_ARRAY) min_elem = 12;
    if (n > left(c) / min_elem) {
        return qp_error_set(c->err, QP_ERR_FORMAT,
                            "%s: key '%s': array of %llu %s at byte %zu cannot fit in the %zu bytes left",
                            c->g->path, key, (unsigned long long)n, qp_gguf_vtype_name(et), at,
                            left(c));
    }
    v->type = QP_GGUF_ARRAY;
    v->arr.elem_type = (enum qp_gguf_vtype)et;
    v->arr.n = n;
    v->arr.raw = NULL;
    v->arr.strs = NULL;
    v->arr.vals = NULL;
    if (et == QP_GGUF_STRING) {
        struct qp_gguf_str *s = pool_alloc(c->g, (size_t)n * sizeof *s + 1);
        if (!s) return qp_error_set(c->err, QP_ERR_NOMEM, "%s: out of memory", c->g->path);
        for (uint64_t j = 0; j < n; j++) {
            if ((st = rd_str(c, &s[j], "an array string", key))) return st;
        }
        v->arr.strs = s;
    } else if (et == QP_GGUF_ARRAY) {
        struct qp_gguf_value *vals = pool_alloc(c->g, (size_t)n * sizeof *vals + 1);
        if (!vals) return qp_error_set(c->err, QP_ERR_NOMEM, "%s: out of memory", c->g->path);
        for (uint64_t j = 0; j < n; j++) {
            if ((st = rd_value(c, QP_GGUF_ARRAY, &vals[j], key, depth + 1))) return st;
        }
        v->arr.vals = vals;
    } else {
        v->arr.raw = c->g->base + c->pos;
        if (et == QP_GGUF_BOOL) {
            for (uint64_t j = 0; j < n; j++) {
                if (c->g->base[c->pos + j] > 1) {
                    return qp_error_set(c->err, QP_ERR_FORMAT,
                                        "%s: key '%s': bool array element %llu at byte %zu is neither 0 nor 1",
                                        c->g->path, key, (unsigned long long)j, c->pos + (size_t)j);
                }
            }
        }
        c->pos += (size_t)n * min_elem;
    }
    return QP_OK;
}

static enum qp_status rd_value(struct cursor *c, int32_t type, struct qp_gguf_value *v,
                               const char *key, int depth) {
    if (type == QP_GGUF_STRING) {
        v->type = QP_GGUF_STRING;
        return rd_str(c, &v->s, "a string value", key);
    }
    if (type == QP_GGUF_ARRAY) return rd_array(c, v, key, depth);
    return rd_scalar(c, type, v, key);
}

/* ---- open ---------------------------------------------------------------------------------- */

static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static int cmp_offset(const void *a, const void *b) {
    const struct qp_gguf_tensor *x = *(const struct qp_gguf_tensor *const *)a;
    const struct qp_gguf_tensor *y = *(const struct qp_gguf_tensor *const *)b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

static enum qp_status parse(struct qp_gguf *g, unsigned flags, struct qp_error *err) {
    struct cursor c = {g, 0, err};
    enum qp_status st;
    char magic[4];
    if ((st = rd(&c, magic, 4, "the magic"))) return st;
    if (memcmp(magic, QP_GGUF_MAGIC, 4) != 0) {
        return qp_error_set(err, QP_ERR_FORMAT, "%s: not a GGUF file (magic is not 'GGUF')", g->path);
    }
    if ((st = rd(&c, &g->version, 4, "the version"))) return st;
    if (g->version != 2 && g->version != 3) {
        return qp_error_set(err, QP_ERR_UNSUPPORTED,
                            "%s: GGUF version %u is not supported (versions 2 and 3 are)", g->path,
                            g->version);
    }
    int64_t n_tensors = 0, n_kv = 0;
    if ((st = rd(&c, &n_tensors, 8, "the tensor count"))) return st;
    if ((st = rd(&c, &n_kv, 8, "the metadata count"))) return st;
    /* A key-value pair takes at least 8+1 (key) + 4 (type) + 1 bytes; a tensor info at least
     * 8+1 (name) + 4 + 8 + 4 + 8 bytes. */
    if (n_kv < 0 || (uint64_t)n_kv > left(&c) / 14) {
        return qp_error_set(err, QP_ERR_FORMAT,
                            "%s: metadata count %lld at byte 16 is impossible for a file of %zu bytes",
                            g->path, (long long)n_kv, g->size);
    }
    if (n_tensors < 0 || (uint64_t)n_tensors > left(&c) / 33) {
        return qp_error_set(err, QP_ERR_FORMAT,
                            "%s: tensor count %lld at byte 8 is impossible for a file of %zu bytes",
                            g->path, (long long)n_tensors, g->size);
    }
    g->n_kv = n_kv;
    g->n_tensors = n_tensors;
    g->kvs = pool_alloc(g, (size_t)n_kv * sizeof *g->kvs + 1);
    g->tensors = pool_alloc(g, (size_t)n_tensors * sizeof *g->tensors + 1);
    if (!g->kvs || !g->tensors) return qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", g->path);

    g->alignment = QP_GGUF_DEFAULT_ALIGNMENT;
    for (int64_t i = 0; i < n_kv; i++) {
        struct qp_gguf_str key;
        size_t at = c.pos;
        if ((st = rd_str(&c, &key, "a metadata key", NULL))) return st;
        if (key.len == 0) {
            return qp_error_set(err, QP_ERR_FORMAT, "%s: metadata key #%lld at byte %zu is empty",
                                g->path, (long long)i, at);
        }
        if (memchr(key.ptr, '\0', (size_t)key.len)) {
            return qp_error_set(err, QP_ERR_FORMAT,
                                "%s: metadata key #%lld at byte %zu contains a NUL byte", g->path,
                                (long long)i, at);
        }
        char *k = pool_strdup(g, &key);
        if (!k) return qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", g->path);
        for (int64_t j = 0; j < i; j++) {
            if (strcmp(g->kvs[j].key, k) == 0) {
                return qp_error_set(err, QP_ERR_FORMAT, "%s: duplicate metadata key '%s' at byte %zu",
                                    g->path, k, at);
            }
        }
        int32_t type = 0; /* rd fills it or fails (see rd_array) */
        at = c.pos;
        if ((st = rd(&c, &type, 4, "a value type"))) return st;
        if (type < 0 || type >= QP_GGUF_VTYPE_COUNT) {
            return qp_error_set(err, QP_ERR_FORMAT,
                                "%s: key '%s': value type %d at byte %zu is not a GGUF value type",
                                g->path, k, type, at);
        }
        g->kvs[i].key = k;
        if ((st = rd_value(&c, type, &g->kvs[i].value, k, 0))) return st;
        if (strcmp(k, "general.alignment") == 0) {
            const struct qp_gguf_value *v = &g->kvs[i].value;
            if (v->type != QP_GGUF_U32) {
                return qp_error_set(err, QP_ERR_FORMAT,
                                    "%s: general.alignment has type %s; it must be u32", g->path,
                                    qp_gguf_vtype_name(v->type));
            }
            if (v->u == 0) {
                return qp_error_set(err, QP_ERR_FORMAT, "%s: general.alignment is 0", g->path);
            }
            if ((v->u & (v->u - 1)) != 0) {
                return qp_error_set(err, QP_ERR_FORMAT,
                                    "%s: general.alignment %llu is not a power of two", g->path,
                                    (unsigned long long)v->u);
            }
            g->alignment = (size_t)v->u;
        }
    }

    for (int64_t i = 0; i < n_tensors; i++) {
        struct qp_gguf_tensor *t = &g->tensors[i];
        struct qp_gguf_str name;
        size_t at = c.pos;
        if ((st = rd_str(&c, &name, "a tensor name", NULL))) return st;
        if (name.len == 0 || name.len >= QP_GGUF_MAX_NAME || memchr(name.ptr, '\0', (size_t)name.len)) {
            return qp_error_set(err, QP_ERR_FORMAT,
                                "%s: tensor #%lld at byte %zu: name of %llu bytes (must be 1..%d bytes, no NUL)",
                                g->path, (long long)i, at, (unsigned long long)name.len,
                                QP_GGUF_MAX_NAME - 1);
        }
        if (!(t->name = pool_strdup(g, &name))) {
            return qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", g->path);
        }
        for (int64_t j = 0; j < i; j++) {
            if (strcmp(g->tensors[j].name, t->name) == 0) {
                return qp_error_set(err, QP_ERR_FORMAT, "%s: duplicate tensor name '%s' at byte %zu",
                                    g->path, t->name, at);
            }
        }
        at = c.pos;
        if ((st = rd(&c, &t->n_dims, 4, "a tensor's dimension count"))) return st;
        if (t->n_dims < 1 || t->n_dims > QP_GGUF_MAX_DIMS) {
            return qp_error_set(err, QP_ERR_FORMAT,
                                "%s: tensor '%s': %u dimensions at byte %zu (must be 1..%d)", g->path,
                                t->name, t->n_dims, at, QP_GGUF_MAX_DIMS);
        }
        int64_t n_elems = 1;
        for (uint32_t d = 0; d < QP_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            at = c.pos;
            if ((st = rd(&c, &t->ne[d], 8, "a tensor dimension"))) return st;
            if (t->ne[d] < 1) {
                return qp_error_set(err, QP_ERR_FORMAT,
                                    "%s: tensor '%s': dimension %u is %lld at byte %zu (must be >= 1)",
                                    g->path, t->name, d, (long long)t->ne[d], at);
            }
            if (__builtin_mul_overflow(n_elems, t->ne[d], &n_elems)) {
                return qp_error_set(err, QP_ERR_FORMAT,
                                    "%s: tensor '%s': the product of its dimensions overflows",
                                    g->path, t->name);
            }
        }
        t->n_elems = n_elems;
        at = c.pos;
        if ((st = rd(&c, &t->type, 4, "a tensor type"))) return st;
        const struct qp_ggml_type_info *ti = qp_ggml_type_info(t->type);
        if (!ti) {
            return qp_error_set(err, QP_ERR_FORMAT,
                                "%s: tensor '%s': type id %d at byte %zu is not a GGML type", g->path,
                                t->name, t->type, at);
        }
        size_t row_bytes, bytes;
        if (t->ne[0] % ti->block_elems != 0) {
            return qp_error_set(err, QP_ERR_FORMAT,
                                "%s: tensor '%s': row length %lld is not a multiple of %s's block of %u",
                                g->path, t->name, (long long)t->ne[0], ti->name, ti->block_elems);
        }
        if (!qp_ggml_row_bytes(t->type, t->ne[0], &row_bytes) ||
            !qp_mul_size(row_bytes, (size_t)(n_elems / t->ne[0]), &bytes)) {
            return qp_error_set(err, QP_ERR_FORMAT, "%s: tensor '%s': its size in bytes overflows",
                                g->path, t->name);
        }
        t->bytes = bytes;
        at = c.pos;
        if ((st = rd(&c, &t->offset, 8, "a tensor offset"))) return st;
        if (t->offset % g->alignment != 0) {
            return qp_error_set(err, QP_ERR_FORMAT,
                                "%s: tensor '%s': offset %llu at byte %zu is not a multiple of the alignment %zu",
                                g->path, t->name, (unsigned long long)t->offset, at, g->alignment);
        }
    }

    g->header_bytes = c.pos;
    g->header_hash = fnv1a(g->base, g->header_bytes);
    size_t pad = (g->alignment - g->header_bytes % g->alignment) % g->alignment;
    if (!qp_add_size(g->header_bytes, pad, &g->data_offset)) {
        return qp_error_set(err, QP_ERR_FORMAT, "%s: data offset overflows", g->path);
    }
    if (flags & QP_GGUF_HEADER_ONLY) {
        for (int64_t i = 0; i < n_tensors; i++) g->tensors[i].data = NULL;
        return QP_OK;
    }
    if (n_tensors > 0 && g->data_offset > g->size) {
        return qp_error_set(err, QP_ERR_FORMAT,
                            "%s: truncated: the data blob would start at byte %zu, past the end (%zu bytes)",
                            g->path, g->data_offset, g->size);
    }
    size_t blob = g->size - (g->data_offset < g->size ? g->data_offset : g->size);
    for (int64_t i = 0; i < n_tensors; i++) {
        struct qp_gguf_tensor *t = &g->tensors[i];
        size_t end;
        if (t->offset > blob || !qp_add_size((size_t)t->offset, t->bytes, &end) || end > blob) {
            return qp_error_set(err, QP_ERR_FORMAT,
                                "%s: tensor '%s': data [%llu, +%zu) extends past the end of the data blob (%zu bytes)",
                                g->path, t->name, (unsigned long long)t->offset, t->bytes, blob);
        }
        t->data = g->base + g->data_offset + t->offset;
    }
    /* No two tensors' data may overlap. */
    if (n_tensors > 1) {
        const struct qp_gguf_tensor **order = malloc((size_t)n_tensors * sizeof *order);
        if (!order) return qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", g->path);
        for (int64_t i = 0; i < n_tensors; i++) order[i] = &g->tensors[i];
        qsort(order, (size_t)n_tensors, sizeof *order, cmp_offset);
        for (int64_t i = 1; i < n_tensors; i++) {
            const struct qp_gguf_tensor *a = order[i - 1], *b = order[i];
            if (a->offset + a->bytes > b->offset) {
                qp_error_set(err, QP_ERR_FORMAT,
                             "%s: tensors '%s' [%llu, +%zu) and '%s' [%llu, +%zu) overlap", g->path,
                             a->name, (unsigned long long)a->offset, a->bytes, b->name,
                             (unsigned long long)b->offset, b->bytes);
                free(order);
                return QP_ERR_FORMAT;
            }
        }
        free(order);
    }
    return QP_OK;
}

static enum qp_status open_common(struct qp_gguf *g, unsigned flags, struct qp_gguf **out,
                                  struct qp_error *err) {
    enum qp_status st = parse(g, flags, err);
    if (st) {
        qp_gguf_close(g);
        return st;
    }
    *out = g;
    return QP_OK;
}

enum qp_status qp_gguf_open_memory(const void *data, size_t size, const char *name,
                                   unsigned flags, struct qp_gguf **out, struct qp_error *err) {
    *out = NULL;
    struct qp_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(name ? name : "<memory>"))) {
        free(g);
        return qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", name ? name : "<memory>");
    }
    g->base = data;
    g->size = size;
    return open_common(g, flags, out, err);
}

enum qp_status qp_gguf_open(const char *path, unsigned flags, struct qp_gguf **out,
                            struct qp_error *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return qp_error_set(err, QP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return qp_error_set(err, QP_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return qp_error_set(err, QP_ERR_IO, "%s: not a regular file", path);
    }
    struct qp_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(path))) {
        free(g);
        close(fd);
        return qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", path);
    }
    g->size = (size_t)sb.st_size;
    if (g->size > 0) {
        void *m = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            free(g->path);
            free(g);
            return qp_error_set(err, QP_ERR_IO, "%s: cannot mmap: %s", path, strerror(e));
        }
        g->map = m;
        g->base = m;
    } else {
        g->base = (const uint8_t *)"";
    }
    close(fd);
    return open_common(g, flags, out, err);
}

void qp_gguf_close(struct qp_gguf *g) {
    if (!g) return;
    if (g->map) munmap(g->map, g->size);
    while (g->pool) {
        struct pool_block *n = g->pool->next;
        free(g->pool);
        g->pool = n;
    }
    free(g->path);
    free(g);
}

/* ---- accessors ----------------------------------------------------------------------------- */

const char *qp_gguf_path(const struct qp_gguf *g) { return g->path; }
uint32_t qp_gguf_version(const struct qp_gguf *g) { return g->version; }
size_t qp_gguf_file_size(const struct qp_gguf *g) { return g->size; }
size_t qp_gguf_alignment(const struct qp_gguf *g) { return g->alignment; }
size_t qp_gguf_header_bytes(const struct qp_gguf *g) { return g->header_bytes; }
size_t qp_gguf_data_offset(const struct qp_gguf *g) { return g->data_offset; }
const void *qp_gguf_bytes(const struct qp_gguf *g) { return g->base; }
uint64_t qp_gguf_header_hash(const struct qp_gguf *g) { return g->header_hash; }
int64_t qp_gguf_n_kv(const struct qp_gguf *g) { return g->n_kv; }
int64_t qp_gguf_n_tensors(const struct qp_gguf *g) { return g->n_tensors; }

const struct qp_gguf_kv *qp_gguf_kv(const struct qp_gguf *g, int64_t i) {
    return (i >= 0 && i < g->n_kv) ? &g->kvs[i] : NULL;
}

const struct qp_gguf_kv *qp_gguf_find(const struct qp_gguf *g, const char *key) {
    for (int64_t i = 0; i < g->n_kv; i++) {
        if (strcmp(g->kvs[i].key, key) == 0) return &g->kvs[i];
    }
    return NULL;
}

const struct qp_gguf_tensor *qp_gguf_tensor(const struct qp_gguf *g, int64_t i) {
    return (i >= 0 && i < g->n_tensors) ? &g->tensors[i] : NULL;
}

const struct qp_gguf_tensor *qp_gguf_find_tensor(const struct qp_gguf *g, const char *name) {
    for (int64_t i = 0; i < g->n_tensors; i++) {
        if (strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    }
    return NULL;
}

static enum qp_status need(const struct qp_gguf *g, const char *key, const struct qp_gguf_kv **kv,
                           struct qp_error *err) {
    *kv = qp_gguf_find(g, key);
    if (!*kv) return qp_error_set(err, QP_ERR_INVALID, "%s: metadata key '%s' is missing", g->path, key);
    return QP_OK;
}

static bool is_int_type(int32_t t) {
    return t == QP_GGUF_U8 || t == QP_GGUF_I8 || t == QP_GGUF_U16 || t == QP_GGUF_I16 ||
           t == QP_GGUF_U32 || t == QP_GGUF_I32 || t == QP_GGUF_U64 || t == QP_GGUF_I64;
}
static bool is_signed_type(int32_t t) {
    return t == QP_GGUF_I8 || t == QP_GGUF_I16 || t == QP_GGUF_I32 || t == QP_GGUF_I64;
}

enum qp_status qp_gguf_get_int(const struct qp_gguf *g, const char *key, int64_t lo, int64_t hi,
                               int64_t *out, struct qp_error *err) {
    const struct qp_gguf_kv *kv;
    enum qp_status st = need(g, key, &kv, err);
    if (st) return st;
    int32_t t = kv->value.type;
    if (!is_int_type(t)) {
        return qp_error_set(err, QP_ERR_FORMAT, "%s: metadata '%s' has type %s; an integer was expected",
                            g->path, key, qp_gguf_vtype_name(t));
    }
    bool ok;
    int64_t v;
    if (is_signed_type(t)) {
        v = kv->value.i;
        ok = v >= lo && v <= hi;
    } else {
        ok = kv->value.u <= (uint64_t)INT64_MAX && (int64_t)kv->value.u >= lo &&
             (int64_t)kv->value.u <= hi;
        v = (int64_t)kv->value.u;
    }
    if (!ok) {
        return qp_error_set(err, QP_ERR_FORMAT, "%s: metadata '%s' = %s%llu is outside [%lld, %lld]",
                            g->path, key, is_signed_type(t) && kv->value.i < 0 ? "-" : "",
                            is_signed_type(t) && kv->value.i < 0
                                ? (unsigned long long)(-(kv->value.i + 1)) + 1
                                : (unsigned long long)kv->value.u,
                            (long long)lo, (long long)hi);
    }
    *out = v;
    return QP_OK;
}

enum qp_status qp_gguf_get_float(const struct qp_gguf *g, const char *key, double *out,
                                 struct qp_error *err) {
    const struct qp_gguf_kv *kv;
    enum qp_status st = need(g, key, &kv, err);
    if (st) return st;
    if (kv->value.type != QP_GGUF_F32 && kv->value.type != QP_GGUF_F64) {
        return qp_error_set(err, QP_ERR_FORMAT, "%s: metadata '%s' has type %s; a float was expected",
                            g->path, key, qp_gguf_vtype_name(kv->value.type));
    }
    *out = kv->value.f;
    return QP_OK;
}

enum qp_status qp_gguf_get_bool(const struct qp_gguf *g, const char *key, bool *out,
                                struct qp_error *err) {
    const struct qp_gguf_kv *kv;
    enum qp_status st = need(g, key, &kv, err);
    if (st) return st;
    if (kv->value.type != QP_GGUF_BOOL) {
        return qp_error_set(err, QP_ERR_FORMAT, "%s: metadata '%s' has type %s; bool was expected",
                            g->path, key, qp_gguf_vtype_name(kv->value.type));
    }
    *out = kv->value.b;
    return QP_OK;
}

enum qp_status qp_gguf_get_str(const struct qp_gguf *g, const char *key, const char **out,
                               struct qp_error *err) {
    const struct qp_gguf_kv *kv;
    enum qp_status st = need(g, key, &kv, err);
    if (st) return st;
    if (kv->value.type != QP_GGUF_STRING) {
        return qp_error_set(err, QP_ERR_FORMAT, "%s: metadata '%s' has type %s; string was expected",
                            g->path, key, qp_gguf_vtype_name(kv->value.type));
    }
    if (memchr(kv->value.s.ptr, '\0', (size_t)kv->value.s.len)) {
        return qp_error_set(err, QP_ERR_FORMAT, "%s: metadata '%s' contains a NUL byte", g->path, key);
    }
    char *copy = pool_alloc((struct qp_gguf *)g, (size_t)kv->value.s.len + 1);
    if (!copy) return qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", g->path);
    memcpy(copy, kv->value.s.ptr, (size_t)kv->value.s.len);
    copy[kv->value.s.len] = '\0';
    *out = copy;
    return QP_OK;
}

enum qp_status qp_gguf_get_array(const struct qp_gguf *g, const char *key,
                                 enum qp_gguf_vtype elem_type, const struct qp_gguf_value **out,
                                 struct qp_error *err) {
    const struct qp_gguf_kv *kv;
    enum qp_status st = need(g, key, &kv, err);
    if (st) return st;
    if (kv->value.type != QP_GGUF_ARRAY || kv->value.arr.elem_type != elem_type) {
        return qp_error_set(err, QP_ERR_FORMAT,
                            "%s: metadata '%s' has type %s%s%s; an array of %s was expected", g->path,
                            key, qp_gguf_vtype_name(kv->value.type),
                            kv->value.type == QP_GGUF_ARRAY ? " of " : "",
                            kv->value.type == QP_GGUF_ARRAY ? qp_gguf_vtype_name(kv->value.arr.elem_type) : "",
                            qp_gguf_vtype_name(elem_type));
    }
    *out = &kv->value;
    return QP_OK;
}

int64_t qp_gguf_arr_int(const struct qp_gguf_value *arr, uint64_t j) {
    const uint8_t *p = (const uint8_t *)arr->arr.raw + j * qp_gguf_vtype_size(arr->arr.elem_type);
    switch (arr->arr.elem_type) {
    case QP_GGUF_U8: return p[0];
    case QP_GGUF_I8: return (int8_t)p[0];
    case QP_GGUF_BOOL: return p[0];
    case QP_GGUF_U16: { uint16_t x; memcpy(&x, p, 2); return x; }
    case QP_GGUF_I16: { int16_t x; memcpy(&x, p, 2); return x; }
    case QP_GGUF_U32: { uint32_t x; memcpy(&x, p, 4); return x; }
    case QP_GGUF_I32: { int32_t x; memcpy(&x, p, 4); return x; }
    case QP_GGUF_U64: { uint64_t x; memcpy(&x, p, 8); return (int64_t)x; }
    case QP_GGUF_I64: { int64_t x; memcpy(&x, p, 8); return x; }
    default: QP_ASSERT(0 && "qp_gguf_arr_int on a non-integer array");
    }
    return 0;
}

double qp_gguf_arr_float(const struct qp_gguf_value *arr, uint64_t j) {
    const uint8_t *p = (const uint8_t *)arr->arr.raw + j * qp_gguf_vtype_size(arr->arr.elem_type);
    if (arr->arr.elem_type == QP_GGUF_F32) {
        float x;
        memcpy(&x, p, 4);
        return x;
    }
    QP_ASSERT(arr->arr.elem_type == QP_GGUF_F64);
    double x;
    memcpy(&x, p, 8);
    return x;
}
