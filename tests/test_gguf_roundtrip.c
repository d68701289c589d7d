/* test_gguf_roundtrip.c — the GGUF writer's output is read back exactly by the reader:
 * every scalar type, strings, string arrays, tensor infos with aligned offsets, data. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qp_ggml.h"
#include "qp_gguf.h"
#include "qp_gguf_write.h"

#define CHECK(c)                                                                               \
    do {                                                                                       \
        if (!(c)) {                                                                            \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);              \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

static bool fill(void *ctx, int64_t i, void *buf, size_t bytes, struct qp_error *err) {
    (void)ctx;
    (void)err;
    for (size_t j = 0; j < bytes; j++) ((unsigned char *)buf)[j] = (unsigned char)(i * 31 + j);
    return true;
}

int main(void) {
    struct qp_gguf_writer *w = qp_gguf_writer_new(3);
    CHECK(w);
    CHECK(qp_gguf_writer_add_str(w, "general.architecture", "qwen2"));
    CHECK(qp_gguf_writer_add_u32(w, "general.alignment", 64));
    CHECK(qp_gguf_writer_add_i32(w, "a.i32", -7));
    CHECK(qp_gguf_writer_add_u64(w, "a.u64", 1ull << 40));
    CHECK(qp_gguf_writer_add_f32(w, "a.f32", 0.5f));
    CHECK(qp_gguf_writer_add_bool(w, "a.bool", true));
    const char *strs[] = {"a", "", "hello world"};
    CHECK(qp_gguf_writer_add_str_array(w, "a.strs", 3, strs));
    int32_t ints[] = {1, -2, 3};
    CHECK(qp_gguf_writer_add_array(w, "a.ints", QP_GGUF_I32, 3, ints));
    int64_t ne0[2] = {64, 3}, ne1[1] = {5};
    CHECK(qp_gguf_writer_add_tensor(w, "t0", 2, ne0, QP_GGML_Q8_0));
    CHECK(qp_gguf_writer_add_tensor(w, "t1", 1, ne1, QP_GGML_F32));
    CHECK(!qp_gguf_writer_add_tensor(w, "bad", 1, (int64_t[]){33}, QP_GGML_Q8_0));

    char path[] = "/tmp/qp_test_gguf_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    struct qp_error err = {{0}};
    CHECK(qp_gguf_writer_write_path(w, path, fill, NULL, false, &err) == QP_OK);
    qp_gguf_writer_free(w);

    struct qp_gguf *g;
    enum qp_status st = qp_gguf_open(path, 0, &g, &err);
    if (st) fprintf(stderr, "%s\n", err.msg);
    CHECK(st == QP_OK);
    CHECK(qp_gguf_version(g) == 3);
    CHECK(qp_gguf_alignment(g) == 64);
    const char *arch;
    CHECK(qp_gguf_get_str(g, "general.architecture", &arch, &err) == QP_OK && !strcmp(arch, "qwen2"));
    int64_t v;
    CHECK(qp_gguf_get_int(g, "a.i32", -10, 10, &v, &err) == QP_OK && v == -7);
    CHECK(qp_gguf_get_int(g, "a.i32", 0, 10, &v, &err) == QP_ERR_FORMAT);
    CHECK(qp_gguf_get_int(g, "a.u64", 0, INT64_MAX, &v, &err) == QP_OK && v == 1ll << 40);
    double f;
    CHECK(qp_gguf_get_float(g, "a.f32", &f, &err) == QP_OK && f == 0.5);
    bool b;
    CHECK(qp_gguf_get_bool(g, "a.bool", &b, &err) == QP_OK && b);
    CHECK(qp_gguf_get_bool(g, "a.missing", &b, &err) == QP_ERR_INVALID);
    CHECK(strstr(err.msg, "a.missing") != NULL);
    const struct qp_gguf_value *arr;
    CHECK(qp_gguf_get_array(g, "a.strs", QP_GGUF_STRING, &arr, &err) == QP_OK && arr->arr.n == 3);
    CHECK(arr->arr.strs[2].len == 11 && !memcmp(arr->arr.strs[2].ptr, "hello world", 11));
    CHECK(qp_gguf_get_array(g, "a.ints", QP_GGUF_I32, &arr, &err) == QP_OK);
    CHECK(qp_gguf_arr_int(arr, 1) == -2);
    CHECK(qp_gguf_get_array(g, "a.ints", QP_GGUF_U32, &arr, &err) == QP_ERR_FORMAT);
    CHECK(qp_gguf_n_tensors(g) == 2);
    const struct qp_gguf_tensor *t0 = qp_gguf_find_tensor(g, "t0");
    const struct qp_gguf_tensor *t1 = qp_gguf_find_tensor(g, "t1");
    CHECK(t0 && t1 && t0->type == QP_GGML_Q8_0 && t0->ne[0] == 64 && t0->ne[1] == 3);
    CHECK(t0->bytes == 2 * 34 * 3 && t1->bytes == 20);
    CHECK(t1->offset == 256); /* 204 rounded up to 64 */
    for (size_t j = 0; j < t1->bytes; j++) CHECK(((const unsigned char *)t1->data)[j] == (unsigned char)(31 + j));
    qp_gguf_close(g);
    unlink(path);
    printf("1 passed, 0 failed\n");
    return 0;
}
