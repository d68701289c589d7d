/* qp_status.h — the status codes every library function of the project returns, and the
 * error record that carries the details (file, what, where, expected vs found).
 *
 * Contract: a function that fails fills a caller-provided struct qp_error (when non-NULL)
 * with one human-readable line and returns a non-QP_OK status; it never aborts or prints.
 */
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum qp_status {
    QP_OK = 0,
    QP_ERR_IO,          /* open/read/write/mmap failed (errno in the message) */
    QP_ERR_FORMAT,      /* the file's bytes break the format (GGUF, plan YAML) */
    QP_ERR_UNSUPPORTED, /* valid, but not something this project runs (type, architecture) */
    QP_ERR_INVALID,     /* an argument or a plan is inconsistent */
    QP_ERR_NOMEM,       /* host allocation failed */
    QP_ERR_RANGE,       /* a value is out of its allowed range (context full, id out of range) */
    QP_ERR_DEVICE,      /* a CUDA / cuBLAS call failed */
    QP_ERR_INTERRUPTED, /* stopped by the user (SIGINT) */
};

/* One-word name of a status ("ok", "io", "format", ...). Never NULL. */
const char *qp_status_str(enum qp_status s);

#define QP_ERROR_MSG_MAX 512

/* Details of the last failure: one line, e.g.
 * "model.gguf: tensor 'blk.3.attn_q.weight' (#41): data [1200, 1400) extends past end of file (1300 bytes)". */
struct qp_error {
    char msg[QP_ERROR_MSG_MAX];
};

/* Formats into err->msg (printf-style) when err is non-NULL and returns s. */
enum qp_status qp_error_set(struct qp_error *err, enum qp_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Internal invariant check, always on (not an assert: NDEBUG does not remove it). Only for
 * states that no input can cause; bad input gets a status and a message instead. */
#define QP_ASSERT(cond)                                                                        \
    do {                                                                                       \
        if (!(cond)) qp_assert_fail(#cond, __FILE__, __LINE__);                                \
    } while (0)
void qp_assert_fail(const char *cond, const char *file, int line)
#if defined(__GNUC__)
    __attribute__((noreturn))
#endif
    ;

#ifdef __cplusplus
}
#endif
