/* read_file.c — a whole file into memory (include/qp_read_file.h). */
#define _POSIX_C_SOURCE 200809L /* fileno */
#include "qp_read_file.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum qp_status qp_read_file(const char *path, char **out, size_t *len, struct qp_error *err) {
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return qp_error_set(err, QP_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || S_ISDIR(st.st_mode)) {
        fclose(f);
        return qp_error_set(err, QP_ERR_IO, "%s: not a regular file", path);
    }
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    while (b) {
        if (n + 1 >= cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
        }
        size_t r = fread(b + n, 1, cap - n - 1, f);
        if (r == 0) break;
        n += r;
    }
    const bool bad = ferror(f);
    fclose(f);
    if (!b) return qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", path);
    if (bad) {
        free(b);
        return qp_error_set(err, QP_ERR_IO, "%s: read error", path);
    }
    b[n] = 0;
    *out = b;
    *len = n;
    return QP_OK;
}
