/* qp_read_file.h — a whole file into memory: what qrun's -f prompt and --perplexity's text read. */
#pragma once
#include <stddef.h>

#include "qp_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reads the regular file at path into a malloc'd NUL-terminated buffer (*out; *len bytes without
 * the NUL). Errors name the path: QP_ERR_IO (cannot open, not a regular file, read error),
 * QP_ERR_NOMEM; *out is then NULL. */
enum qp_status qp_read_file(const char *path, char **out, size_t *len, struct qp_error *err);

#ifdef __cplusplus
}
#endif
