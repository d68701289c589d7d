/* qp_gguf_write.h — building GGUF files: metadata, a tensor table, and tensor data streamed
 * from a caller's fill function (so a 40 GB synthetic model never sits in memory).
 *
 * Usage: w = qp_gguf_writer_new(3); add keys and tensors in file order; then
 * qp_gguf_writer_write_path(w, path, fill, ctx, ...) writes atomically (temp file in the same
 * folder, then rename: a failure leaves no file); qp_gguf_writer_free(w).
 * Tensor offsets are assigned as the running sum of earlier tensors' sizes, each rounded up to
 * the alignment (general.alignment if set before the first tensor, else 32), exactly as
 * llama.cpp writes them. Values are copied: the caller's memory need not outlive the call.
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "qp_gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

struct qp_gguf_writer;

struct qp_gguf_writer *qp_gguf_writer_new(uint32_t version); /* NULL on allocation failure */
void qp_gguf_writer_free(struct qp_gguf_writer *w);

/* Metadata. Any value type (a qp_gguf_value exactly as the reader returns them, nested arrays
 * included; arr.raw holds little-endian packed elements). Returns false on allocation failure. */
bool qp_gguf_writer_add(struct qp_gguf_writer *w, const char *key, const struct qp_gguf_value *v);
bool qp_gguf_writer_add_u32(struct qp_gguf_writer *w, const char *key, uint32_t v);
bool qp_gguf_writer_add_i32(struct qp_gguf_writer *w, const char *key, int32_t v);
bool qp_gguf_writer_add_u64(struct qp_gguf_writer *w, const char *key, uint64_t v);
bool qp_gguf_writer_add_f32(struct qp_gguf_writer *w, const char *key, float v);
bool qp_gguf_writer_add_bool(struct qp_gguf_writer *w, const char *key, bool v);
bool qp_gguf_writer_add_str(struct qp_gguf_writer *w, const char *key, const char *v);
/* Array of n fixed-size elements of elem_type packed at data. */
bool qp_gguf_writer_add_array(struct qp_gguf_writer *w, const char *key,
                              enum qp_gguf_vtype elem_type, uint64_t n, const void *data);
/* Array of n NUL-terminated strings. */
bool qp_gguf_writer_add_str_array(struct qp_gguf_writer *w, const char *key, uint64_t n,
                                  const char *const *strs);

/* A tensor of n_dims (1..4) dims ne[] (ne[0] = row length) and ggml type. Returns false when
 * the shape is invalid for the type or on allocation failure. */
bool qp_gguf_writer_add_tensor(struct qp_gguf_writer *w, const char *name, uint32_t n_dims,
                               const int64_t *ne, int32_t type);

int64_t qp_gguf_writer_n_tensors(const struct qp_gguf_writer *w);
size_t qp_gguf_writer_tensor_bytes(const struct qp_gguf_writer *w, int64_t i);

/* Fills buf[0..bytes) with tensor i's data. Returns false to abort the write (the callback
 * fills err). */
typedef bool (*qp_gguf_fill_fn)(void *ctx, int64_t i, void *buf, size_t bytes,
                                struct qp_error *err);

/* Writes the file atomically. With header_only, writes the header (metadata and tensor table)
 * and nothing after it, and fill may be NULL. */
enum qp_status qp_gguf_writer_write_path(struct qp_gguf_writer *w, const char *path,
                                         qp_gguf_fill_fn fill, void *ctx, bool header_only,
                                         struct qp_error *err);

/* The header bytes (with padding to the alignment unless header_only) in a malloc'd buffer
 * the caller frees; for in-memory tests. */
enum qp_status qp_gguf_writer_header(struct qp_gguf_writer *w, bool header_only, void **out,
                                     size_t *out_len, struct qp_error *err);

#ifdef __cplusplus
}
#endif
