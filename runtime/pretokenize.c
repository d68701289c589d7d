/* pretokenize.c — the pre-tokenizers, one regex per `tokenizer.ggml.pre` value.
 *
 * Owns: the table of known pre-tokenizers (name ▸ regex) and their PCRE2 compilation (UTF and
 * UCP, so \p{L}, \p{N} and \s use real Unicode properties; JIT when the library has it) and the
 * piece iterator. Does not own: special-token splitting or BPE (tokenizer.c).
 *
 * Adding a vocabulary: add a row to `table` with llama.cpp's name for it and the regex from
 * its tokenizer.json (a Split pre-tokenizer with behavior "isolated"); add known-answer
 * vectors made by scripts/make-tokenizer-vectors.py.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "pretokenize.h"

#include <pcre2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Qwen2's split (its tokenizer.json; reference-facts.md): contractions, letter runs with one
 * optional leading non-letter non-digit (not CR/LF), single digits, punctuation runs with an
 * optional leading space and trailing newlines, newline runs with leading whitespace,
 * whitespace not followed by a non-space (so "a   b" leaves the last space to " b"), and the
 * rest of a whitespace run. */
static const char qwen2_pattern[] =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
    "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+"
    "|\\p{N}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+"
    "|\\s+(?!\\S)"
    "|\\s+";

struct pretok_def {
    const char *name;    /* tokenizer.ggml.pre value */
    const char *pattern; /* PCRE2 syntax */
};

/* llama.cpp maps both of these to its QWEN2 pre-tokenizer. */
static const struct pretok_def table[] = {
    {"qwen2", qwen2_pattern},
    {"deepseek-r1-qwen", qwen2_pattern},
};

struct qp_pretok {
    const struct pretok_def *def;
    pcre2_code *code;
    pcre2_match_data *md; /* one match's offsets; reused across calls */
};

enum qp_status qp_pretok_new(const char *name, const char *path, struct qp_pretok **out,
                             struct qp_error *err) {
    *out = NULL;
    const struct pretok_def *def = NULL;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (!strcmp(table[i].name, name)) def = &table[i];
    }
    if (!def) {
        char known[256] = "";
        for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
            size_t k = strlen(known);
            snprintf(known + k, sizeof known - k, "%s%s", i ? ", " : "", table[i].name);
        }
        return qp_error_set(err, QP_ERR_UNSUPPORTED,
                            "%s: tokenizer.ggml.pre '%s' is not a known pre-tokenizer (known: %s)",
                            path, name, known);
    }
    struct qp_pretok *p = calloc(1, sizeof *p);
    if (!p) return qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", path);
    p->def = def;
    int ec;
    PCRE2_SIZE eo;
    p->code = pcre2_compile((PCRE2_SPTR)def->pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                            &ec, &eo, NULL);
    if (!p->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        qp_pretok_free(p);
        return qp_error_set(err, QP_ERR_UNSUPPORTED,
                            "%s: pre-tokenizer '%s': PCRE2 cannot compile its regex at offset %zu: %s",
                            path, name, (size_t)eo, (const char *)msg);
    }
    /* JIT is an optimisation: where the library lacks it (or the platform forbids executable
     * memory), pcre2_match interprets the same pattern with the same results. */
    (void)pcre2_jit_compile(p->code, PCRE2_JIT_COMPLETE);
    p->md = pcre2_match_data_create_from_pattern(p->code, NULL);
    if (!p->md) {
        qp_pretok_free(p);
        return qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", path);
    }
    *out = p;
    return QP_OK;
}

void qp_pretok_free(struct qp_pretok *p) {
    if (!p) return;
    pcre2_match_data_free(p->md);
    pcre2_code_free(p->code);
    free(p);
}

const char *qp_pretok_name(const struct qp_pretok *p) { return p->def->name; }

/* Length of the UTF-8 character whose lead byte is c (text is valid UTF-8). */
static size_t utf8_len(unsigned char c) {
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

int qp_pretok_next(struct qp_pretok *p, const char *text, size_t len, size_t *pos,
                   size_t *start, size_t *end, struct qp_error *err) {
    if (*pos >= len) return 0;
    int rc = pcre2_match(p->code, (PCRE2_SPTR)text, len, *pos, PCRE2_NO_UTF_CHECK, p->md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH) { /* the rest is one gap piece */
        *start = *pos;
        *end = *pos = len;
        return 1;
    }
    if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        qp_error_set(err, QP_ERR_INVALID, "pre-tokenizer '%s': regex match failed at byte %zu: %s",
                     p->def->name, *pos, (const char *)msg);
        return -1;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(p->md);
    size_t ms = ov[0], me = ov[1];
    if (ms > *pos) { /* unmatched text before the match: its own piece */
        *start = *pos;
        *end = *pos = ms;
        return 1;
    }
    if (me <= ms) { /* an empty match (no row's regex allows one): take one character */
        me = ms + utf8_len((unsigned char)text[ms]);
        if (me > len) me = len;
    }
    *start = ms;
    *end = *pos = me;
    return 1;
}
