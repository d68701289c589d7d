/* status.c — qp_status_str, qp_error_set and the always-on internal assertion. */
#include "qp_status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

const char *qp_status_str(enum qp_status s) {
    switch (s) {
    case QP_OK: return "ok";
    case QP_ERR_IO: return "io";
    case QP_ERR_FORMAT: return "format";
    case QP_ERR_UNSUPPORTED: return "unsupported";
    case QP_ERR_INVALID: return "invalid";
    case QP_ERR_NOMEM: return "out of memory";
    case QP_ERR_RANGE: return "range";
    case QP_ERR_DEVICE: return "device";
    case QP_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown";
}

enum qp_status qp_error_set(struct qp_error *err, enum qp_status s, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return s;
}

void qp_assert_fail(const char *cond, const char *file, int line) {
    fprintf(stderr, "internal error: %s:%d: assertion failed: %s\n", file, line, cond);
    abort();
}
