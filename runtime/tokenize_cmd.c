/* tokenize_cmd.c — what `qrun --tokenize TEXT` and `qrun --detokenize IDS` print.
 *
 * Owns: the two inspection commands' parsing and output formats (qp_tokenizer.h). Does not
 * own: argument handling or finding the model file (runtime/main.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qp_tokenizer.h"

/* Prints bytes with backslash, control bytes and non-UTF-8-safe bytes escaped; valid UTF-8
 * characters above ASCII are printed as they are. */
static void print_escaped(FILE *out, const char *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\\') fputs("\\\\", out);
        else if (c == '\n') fputs("\\n", out);
        else if (c == '\t') fputs("\\t", out);
        else if (c == '\r') fputs("\\r", out);
        else if (c >= 0x20 && c < 0x7F) fputc(c, out);
        else if (c >= 0x80) {
            size_t k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
            if (k <= n - i && qp_utf8_validate(p + i, k, NULL)) {
                fwrite(p + i, 1, k, out);
                i += k;
                continue;
            }
            fprintf(out, "\\x%02X", c);
        } else fprintf(out, "\\x%02X", c);
        i++;
    }
}

enum qp_status qp_tokenize_cmd(struct qp_tokenizer *t, const char *text, bool parse_special,
                               bool verbose, FILE *out, struct qp_error *err) {
    int32_t *ids;
    size_t n;
    enum qp_status st = qp_tokenizer_encode(t, text, strlen(text), parse_special, &ids, &n, err);
    if (st) return st;
    for (size_t i = 0; i < n; i++) fprintf(out, "%s%d", i ? " " : "", (int)ids[i]);
    fputc('\n', out);
    if (verbose) {
        for (size_t i = 0; i < n; i++) {
            size_t k;
            const char *p = qp_tokenizer_token_bytes(t, ids[i], &k);
            fprintf(out, "%d\t", (int)ids[i]);
            print_escaped(out, p, k);
            fputc('\n', out);
        }
    }
    free(ids);
    return QP_OK;
}

enum qp_status qp_detokenize_cmd(const struct qp_tokenizer *t, const char *s, FILE *out,
                                 struct qp_error *err) {
    size_t cap = 64, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return qp_error_set(err, QP_ERR_NOMEM, "--detokenize: out of memory");
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n' || *p == '[' || *p == ']') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || (*end && !strchr(" ,\t\n[]", *end))) {
            free(ids);
            return qp_error_set(err, QP_ERR_INVALID,
                                "--detokenize: '%.20s' at offset %zu is not a token id (decimal integers separated by spaces or commas)",
                                p, (size_t)(p - s));
        }
        if (v < 0 || v >= qp_tokenizer_n_vocab(t)) {
            free(ids);
            return qp_error_set(err, QP_ERR_RANGE, "--detokenize: id %lld is outside the vocabulary [0, %d)",
                                v, (int)qp_tokenizer_n_vocab(t));
        }
        if (n == cap) {
            int32_t *nid = realloc(ids, 2 * cap * sizeof *ids);
            if (!nid) {
                free(ids);
                return qp_error_set(err, QP_ERR_NOMEM, "--detokenize: out of memory");
            }
            ids = nid;
            cap *= 2;
        }
        ids[n++] = (int32_t)v;
        p = end;
    }
    char *text;
    size_t len;
    enum qp_status st = qp_tokenizer_decode(t, ids, n, QP_DETOK_DEFAULT, &text, &len, err);
    free(ids);
    if (st) return st;
    fwrite(text, 1, len, out);
    fputc('\n', out);
    free(text);
    return QP_OK;
}
