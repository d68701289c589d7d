/* qp_atomic_file.h — writing a file so that it appears whole or not at all: the bytes go to a
 * temporary file beside the target (same file system, so rename is atomic), which is synced and
 * renamed over the target only when everything was written. Any failure removes the temporary
 * file and leaves a file already at the target as it was (a full disk never leaves half a plan
 * or half a model). The file gets mode 0666 less the umask, as an ordinary created file would.
 *
 * Usage: qp_atomic_file_open(&f, path) ; qp_atomic_file_write(&f, ...)... ;
 * qp_atomic_file_commit(&f)  — or qp_atomic_file_abort(&f) to give up. After a failed write or
 * commit the file is already cleaned up; abort is then a no-op.
 */
#pragma once
#include <stddef.h>

#include "qp_status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct qp_atomic_file {
    const char *path; /* the target (borrowed: must outlive the writes) */
    char *tmp;        /* "<path>.tmp.XXXXXX", owned; NULL once cleaned up */
    int fd;           /* -1 once closed */
};

/* Creates the temporary file. Errors: QP_ERR_IO naming the path (folder missing, not
 * writable), QP_ERR_NOMEM. */
enum qp_status qp_atomic_file_open(struct qp_atomic_file *f, const char *path, struct qp_error *err);

/* Appends n bytes (retries short writes and EINTR). On failure cleans up. */
enum qp_status qp_atomic_file_write(struct qp_atomic_file *f, const void *data, size_t n,
                                    struct qp_error *err);

/* fsync, close, rename into place. On failure cleans up. */
enum qp_status qp_atomic_file_commit(struct qp_atomic_file *f, struct qp_error *err);

/* Closes and removes the temporary file, if any. */
void qp_atomic_file_abort(struct qp_atomic_file *f);

#ifdef __cplusplus
}
#endif
