/* fuzz_gguf.c — libFuzzer target for the GGUF reader: any bytes must give QP_OK or a clean
 * error, never a crash, hang or out-of-bounds read (ASan/UBSan run with it). On success every
 * decoded value and tensor range is walked so that a bad pointer the reader handed out is
 * touched here. Both the normal and the header-only mode are exercised. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "qp_gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

static void walk(const struct qp_gguf_value *v) {
    if (v->type == QP_GGUF_STRING) {
        for (uint64_t i = 0; i < v->s.len; i++) sink += (unsigned char)v->s.ptr[i];
    } else if (v->type == QP_GGUF_ARRAY) {
        if (v->arr.elem_type == QP_GGUF_STRING) {
            for (uint64_t j = 0; j < v->arr.n; j++) {
                const struct qp_gguf_str *s = &v->arr.strs[j];
                if (s->len) sink += (unsigned char)s->ptr[0] + (unsigned char)s->ptr[s->len - 1];
            }
        } else if (v->arr.elem_type == QP_GGUF_ARRAY) {
            for (uint64_t j = 0; j < v->arr.n; j++) walk(&v->arr.vals[j]);
        } else if (v->arr.n) {
            size_t bytes = (size_t)v->arr.n * qp_gguf_vtype_size(v->arr.elem_type);
            sink += ((const uint8_t *)v->arr.raw)[0] + ((const uint8_t *)v->arr.raw)[bytes - 1];
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (unsigned mode = 0; mode < 2; mode++) {
        struct qp_gguf *g = NULL;
        struct qp_error err;
        unsigned flags = mode ? QP_GGUF_HEADER_ONLY : QP_GGUF_DEFAULT;
        if (qp_gguf_open_memory(data, size, "fuzz.gguf", flags, &g, &err) != QP_OK) {
            sink += strlen(err.msg);
            continue;
        }
        for (int64_t i = 0; i < qp_gguf_n_kv(g); i++) walk(&qp_gguf_kv(g, i)->value);
        for (int64_t i = 0; i < qp_gguf_n_tensors(g); i++) {
            const struct qp_gguf_tensor *t = qp_gguf_tensor(g, i);
            if (t->data && t->bytes) {
                sink += ((const uint8_t *)t->data)[0] + ((const uint8_t *)t->data)[t->bytes - 1];
            }
        }
        const char *s;
        int64_t x;
        if (qp_gguf_get_str(g, "general.architecture", &s, &err) == QP_OK) sink += (unsigned char)s[0];
        if (qp_gguf_get_int(g, "qwen2.block_count", 0, 1 << 20, &x, &err) == QP_OK) sink += (uint64_t)x;
        qp_gguf_close(g);
    }
    return 0;
}
