/* atomic_file.c — temp file + fsync + rename, behind include/qp_atomic_file.h. Used by the plan
 * writer and the GGUF writer, so every file the project writes has the same guarantees. */
#define _POSIX_C_SOURCE 200809L
#include "qp_atomic_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void qp_atomic_file_abort(struct qp_atomic_file *f) {
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
    if (f->tmp) unlink(f->tmp);
    free(f->tmp);
    f->tmp = NULL;
}

enum qp_status qp_atomic_file_open(struct qp_atomic_file *f, const char *path, struct qp_error *err) {
    f->path = path;
    f->fd = -1;
    size_t n = strlen(path) + sizeof ".tmp.XXXXXX";
    if (!(f->tmp = malloc(n))) return qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", path);
    snprintf(f->tmp, n, "%s.tmp.XXXXXX", path);
    f->fd = mkstemp(f->tmp);
    if (f->fd < 0) {
        enum qp_status st = qp_error_set(err, QP_ERR_IO, "%s: cannot create a temporary file %s: %s",
                                         path, f->tmp, strerror(errno));
        free(f->tmp);
        f->tmp = NULL;
        return st;
    }
    /* mkstemp makes the file 0600; what we write is an ordinary file: 0666 less the umask */
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(f->fd, 0666 & ~mask) != 0) {
        enum qp_status st = qp_error_set(err, QP_ERR_IO, "%s: chmod failed: %s", f->tmp, strerror(errno));
        qp_atomic_file_abort(f);
        return st;
    }
    return QP_OK;
}

enum qp_status qp_atomic_file_write(struct qp_atomic_file *f, const void *data, size_t n,
                                    struct qp_error *err) {
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(f->fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            enum qp_status st = qp_error_set(err, QP_ERR_IO, "%s: write failed: %s", f->tmp,
                                             w < 0 ? strerror(errno) : "no progress");
            qp_atomic_file_abort(f);
            return st;
        }
        p += w;
        n -= (size_t)w;
    }
    return QP_OK;
}

enum qp_status qp_atomic_file_commit(struct qp_atomic_file *f, struct qp_error *err) {
    enum qp_status st = QP_OK;
    if (fsync(f->fd) != 0) {
        st = qp_error_set(err, QP_ERR_IO, "%s: fsync failed: %s", f->tmp, strerror(errno));
    }
    int rc = close(f->fd);
    f->fd = -1;
    if (rc != 0 && st == QP_OK) {
        st = qp_error_set(err, QP_ERR_IO, "%s: close failed: %s", f->tmp, strerror(errno));
    }
    if (st == QP_OK && rename(f->tmp, f->path) != 0) {
        st = qp_error_set(err, QP_ERR_IO, "%s: cannot rename %s into place: %s", f->path, f->tmp,
                          strerror(errno));
    }
    if (st != QP_OK) {
        qp_atomic_file_abort(f);
        return st;
    }
    free(f->tmp);
    f->tmp = NULL;
    return QP_OK;
}
