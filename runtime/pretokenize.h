/* pretokenize.h — internal to libqrun: the pre-tokenizer that splits text into the pieces BPE
 * runs on, one regex per `tokenizer.ggml.pre` value (a table in pretokenize.c). */
#pragma once
#include <stddef.h>

#include "qp_status.h"

struct qp_pretok;

/* Compiles the pre-tokenizer for name (the tokenizer.ggml.pre value). QP_ERR_UNSUPPORTED
 * listing the known names when name is not in the table; err names `path` as the file. */
enum qp_status qp_pretok_new(const char *name, const char *path, struct qp_pretok **out,
                             struct qp_error *err);
void qp_pretok_free(struct qp_pretok *p); /* NULL is fine */

/* The canonical name of p's table entry. */
const char *qp_pretok_name(const struct qp_pretok *p);

/* Next piece of text[0..len) at or after *pos: sets [*start, *end), advances *pos to *end and
 * returns 1; returns 0 at the end of the text. Pieces cover the text without gaps (text the
 * regex does not match becomes its own piece, as Hugging Face's Split "isolated" does).
 * text must be valid UTF-8 (checked once by the caller: PCRE2 is told not to recheck), *pos
 * on a character boundary. Returns -1 with err filled if the regex engine fails (resource
 * limits). Uses p's match scratch: one thread per p at a time. */
int qp_pretok_next(struct qp_pretok *p, const char *text, size_t len, size_t *pos,
                   size_t *start, size_t *end, struct qp_error *err);
