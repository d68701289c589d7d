/* cmd_inspect.c — `qplan inspect model.gguf`: the first thing a user runs on a downloaded file.
 *
 * Prints, in this order: the file section (path, version, size, alignment, header and data
 * offsets, header hash), the model (architecture, name, file type), the hyperparameters (for
 * qwen2 the keys the runtime reads, in a fixed order, then any other `<arch>.*` key; for other
 * architectures every `<arch>.*` key), a tokenizer summary, every other metadata key with a
 * short rendering, the tensor table and totals per type. The format is described in
 * docs/gguf.md; tests match its lines, so change both together.
 *
 * It only reads through the GGUF reader (include/qp_gguf.h), which has validated every bound;
 * values of an unexpected type are still printed (generically), never trusted.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "qp_ggml.h"
#include "qp_gguf.h"

#define KEY_W    40 /* width of the key column */
#define STR_SHOW 60 /* bytes of a string value shown before it is cut */
#define ARR_SHOW 4  /* elements of an array shown */
#define MIB      (1024.0 * 1024.0)

static void print_usage(FILE *f) {
    fprintf(f, "usage: qplan inspect [--header-only] model.gguf\n"
               "  Prints the file's header, architecture, hyperparameters, tokenizer summary,\n"
               "  other metadata, and its tensor table (name, type, shape, bytes) with totals.\n"
               "  --header-only  accept a file that ends after the tensor table (a model's\n"
               "                 carried header, without tensor data)\n");
}

/* ---- value rendering ---- */

/* Prints up to max bytes of s, quoted and escaped; a cut string ends with "..." and its
 * length. The cut backs off to a UTF-8 boundary so no character is split. */
static void put_str(FILE *f, const char *p, uint64_t len, uint64_t max) {
    uint64_t n = len <= max ? len : max;
    if (n < len)
        while (n > 0 && ((unsigned char)p[n] & 0xC0) == 0x80) n--;
    fputc('"', f);
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (c < 0x20 || c == 0x7f)
                fprintf(f, "\\x%02x", c);
            else
                fputc(c, f);
        }
    }
    fputc('"', f);
    if (n < len) fprintf(f, "... (%" PRIu64 " bytes)", len);
}

/* Shortest decimal that reads back as the same f32 (or f64) value. */
static void put_float(FILE *f, double v, bool is_f32) {
    char buf[40];
    /* Whole numbers below 2^53 print as integers (rope.freq_base 1000000, not 1e+06). */
    if (v > -9007199254740992.0 && v < 9007199254740992.0 && v == (double)(int64_t)v) {
        fprintf(f, "%" PRId64, (int64_t)v);
        return;
    }
    for (int prec = is_f32 ? 6 : 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        double back = strtod(buf, NULL);
        if (is_f32 ? (float)back == (float)v : back == v) break;
    }
    fputs(buf, f);
}

static bool vtype_is_int(enum qp_gguf_vtype t) {
    return t == QP_GGUF_U8 || t == QP_GGUF_I8 || t == QP_GGUF_U16 || t == QP_GGUF_I16 ||
           t == QP_GGUF_U32 || t == QP_GGUF_I32 || t == QP_GGUF_U64 || t == QP_GGUF_I64;
}

static bool vtype_is_unsigned(enum qp_gguf_vtype t) {
    return t == QP_GGUF_U8 || t == QP_GGUF_U16 || t == QP_GGUF_U32 || t == QP_GGUF_U64;
}

/* Element j of a fixed-size array, rendered. */
static void put_arr_elem(FILE *f, const struct qp_gguf_value *v, uint64_t j) {
    enum qp_gguf_vtype et = v->arr.elem_type;
    if (et == QP_GGUF_BOOL) {
        fputs(((const unsigned char *)v->arr.raw)[j] ? "true" : "false", f);
    } else if (et == QP_GGUF_F32 || et == QP_GGUF_F64) {
        put_float(f, qp_gguf_arr_float(v, j), et == QP_GGUF_F32);
    } else if (et == QP_GGUF_U64) {
        /* qp_gguf_arr_int returns int64: reinterpret, since u64 values above INT64_MAX exist. */
        fprintf(f, "%" PRIu64, (uint64_t)qp_gguf_arr_int(v, j));
    } else {
        fprintf(f, "%" PRId64, qp_gguf_arr_int(v, j));
    }
}

/* Nested arrays show their elements down to this depth; deeper ones only their type and length
 * (a hostile file could otherwise make one line of 4^8 elements). */
#define NEST_SHOW 2

static void put_value(FILE *f, const struct qp_gguf_value *v, int depth) {
    switch (v->type) {
    case QP_GGUF_U8:
    case QP_GGUF_U16:
    case QP_GGUF_U32:
    case QP_GGUF_U64: fprintf(f, "%" PRIu64, v->u); break;
    case QP_GGUF_I8:
    case QP_GGUF_I16:
    case QP_GGUF_I32:
    case QP_GGUF_I64: fprintf(f, "%" PRId64, v->i); break;
    case QP_GGUF_F32:
    case QP_GGUF_F64: put_float(f, v->f, v->type == QP_GGUF_F32); break;
    case QP_GGUF_BOOL: fputs(v->b ? "true" : "false", f); break;
    case QP_GGUF_STRING: put_str(f, v->s.ptr, v->s.len, STR_SHOW); break;
    case QP_GGUF_ARRAY: {
        enum qp_gguf_vtype et = v->arr.elem_type;
        fprintf(f, "array<%s>[%" PRIu64 "]", qp_gguf_vtype_name((int32_t)et), v->arr.n);
        uint64_t show = v->arr.n < ARR_SHOW ? v->arr.n : ARR_SHOW;
        if (depth >= NEST_SHOW) show = 0;
        if (show) fputs(" ", f);
        if (et == QP_GGUF_ARRAY) fputs("[", f);
        for (uint64_t j = 0; j < show; j++) {
            if (j) fputs(", ", f);
            if (et == QP_GGUF_STRING)
                put_str(f, v->arr.strs[j].ptr, v->arr.strs[j].len, STR_SHOW / 2);
            else if (et == QP_GGUF_ARRAY)
                put_value(f, &v->arr.vals[j], depth + 1);
            else
                put_arr_elem(f, v, j);
        }
        if (show > 0 && show < v->arr.n) fputs(", ...", f);
        if (et == QP_GGUF_ARRAY) fputs("]", f);
        break;
    }
    default: fprintf(f, "(value of unknown type %d)", (int)v->type); break;
    }
}

/* ---- lines ---- */

/* Writes a key or tensor name padded to width, control bytes as '?': names come from the file
 * and must not carry terminal escape sequences to the user's screen. */
static void put_name(FILE *f, const char *s, int width) {
    int n = 0;
    for (; *s; s++, n++) fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, f);
    for (; n < width; n++) fputc(' ', f);
}

static void put_key(FILE *f, const char *label) {
    fputs("  ", f);
    put_name(f, label, KEY_W);
    fputc(' ', f);
}

/* One "  key  value" line for a metadata key; absent keys say so. */
static void put_kv_line(const struct qp_gguf *g, const char *key, const char *label) {
    const struct qp_gguf_kv *kv = qp_gguf_find(g, key);
    put_key(stdout, label ? label : key);
    if (!kv) {
        puts("(absent)");
        return;
    }
    put_value(stdout, &kv->value, 0);
    putchar('\n');
}

/* The integer value of key, when present and of an integer type. */
static bool kv_int(const struct qp_gguf *g, const char *key, int64_t *out) {
    const struct qp_gguf_kv *kv = qp_gguf_find(g, key);
    if (!kv || !vtype_is_int(kv->value.type)) return false;
    if (vtype_is_unsigned(kv->value.type)) {
        if (kv->value.u > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)kv->value.u;
    } else {
        *out = kv->value.i;
    }
    return true;
}

/* The string value of key, when present and a string. */
static const struct qp_gguf_str *kv_str(const struct qp_gguf *g, const char *key) {
    const struct qp_gguf_kv *kv = qp_gguf_find(g, key);
    return kv && kv->value.type == QP_GGUF_STRING ? &kv->value.s : NULL;
}

static bool str_is(const struct qp_gguf_str *s, const char *lit) {
    size_t n = strlen(lit);
    return s && s->len == n && memcmp(s->ptr, lit, n) == 0;
}

/* Keys that sections before "other metadata" have shown. */
struct shown {
    const char **keys;
    size_t n, cap;
};

static void shown_add(struct shown *s, const char *key) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        const char **k = realloc(s->keys, cap * sizeof *k);
        if (!k) return; /* the key is then shown twice; harmless */
        s->keys = k;
        s->cap = cap;
    }
    s->keys[s->n++] = key;
}

static bool shown_has(const struct shown *s, const char *key) {
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->keys[i], key)) return true;
    return false;
}

/* ---- sections ---- */

static void section_file(const struct qp_gguf *g) {
    size_t size = qp_gguf_file_size(g);
    printf("file %s\n", qp_gguf_path(g));
    put_key(stdout, "version");
    printf("%" PRIu32 "\n", qp_gguf_version(g));
    put_key(stdout, "size");
    printf("%zu bytes (%.2f MiB)\n", size, (double)size / MIB);
    put_key(stdout, "alignment");
    printf("%zu\n", qp_gguf_alignment(g));
    put_key(stdout, "header");
    printf("%zu bytes (metadata and tensor table)\n", qp_gguf_header_bytes(g));
    put_key(stdout, "data offset");
    printf("%zu\n", qp_gguf_data_offset(g));
    put_key(stdout, "header hash");
    printf("%016" PRIx64 " (FNV-1a 64 of the header)\n", qp_gguf_header_hash(g));
    put_key(stdout, "metadata keys");
    printf("%" PRId64 "\n", qp_gguf_n_kv(g));
    put_key(stdout, "tensors");
    printf("%" PRId64 "\n", qp_gguf_n_tensors(g));
}

/* llama.cpp's llama_ftype names (general.file_type), for the common ones. */
static const char *file_type_name(int64_t ft) {
    switch (ft) {
    case 0: return "F32";
    case 1: return "F16";
    case 2: return "Q4_0";
    case 3: return "Q4_1";
    case 7: return "Q8_0";
    case 8: return "Q5_0";
    case 9: return "Q5_1";
    case 10: return "Q2_K";
    case 11: return "Q3_K_S";
    case 12: return "Q3_K_M";
    case 13: return "Q3_K_L";
    case 14: return "Q4_K_S";
    case 15: return "Q4_K_M";
    case 16: return "Q5_K_S";
    case 17: return "Q5_K_M";
    case 18: return "Q6_K";
    case 32: return "BF16";
    }
    return NULL;
}

static void section_model(const struct qp_gguf *g, struct shown *sh) {
    puts("\nmodel");
    put_kv_line(g, "general.architecture", "architecture");
    put_kv_line(g, "general.name", "name");
    shown_add(sh, "general.architecture");
    shown_add(sh, "general.name");
    int64_t ft;
    if (kv_int(g, "general.file_type", &ft)) {
        const char *n = file_type_name(ft);
        put_key(stdout, "file type");
        printf("%" PRId64 "%s%s%s\n", ft, n ? " (" : "", n ? n : "", n ? ")" : "");
        shown_add(sh, "general.file_type");
    }
}

/* The keys the runtime reads for qwen2 (docs/reference-facts.md), in this order. */
static const char *const qwen2_keys[] = {
    "context_length",       "embedding_length",
    "block_count",          "feed_forward_length",
    "attention.head_count", "attention.head_count_kv",
    "rope.freq_base",       "attention.layer_norm_rms_epsilon",
};

static void section_hparams(const struct qp_gguf *g, struct shown *sh) {
    const struct qp_gguf_str *arch = kv_str(g, "general.architecture");
    if (!arch) {
        puts("\nhyperparameters\n  (no general.architecture string: none shown)");
        return;
    }
    /* Keys are NUL-terminated copies; arch is not, so build "<arch>." with its length. */
    char prefix[128];
    if (arch->len + 2 > sizeof prefix || memchr(arch->ptr, '\0', arch->len)) {
        puts("\nhyperparameters\n  (architecture name too long or not text: none shown)");
        return;
    }
    memcpy(prefix, arch->ptr, arch->len);
    prefix[arch->len] = '.';
    prefix[arch->len + 1] = '\0';
    size_t plen = arch->len + 1;
    fputs("\nhyperparameters (", stdout);
    put_name(stdout, prefix, 0);
    puts("*)");
    if (str_is(arch, "qwen2")) {
        char key[192];
        for (size_t i = 0; i < sizeof qwen2_keys / sizeof qwen2_keys[0]; i++) {
            snprintf(key, sizeof key, "%s%s", prefix, qwen2_keys[i]);
            put_kv_line(g, key, NULL);
            const struct qp_gguf_kv *kv = qp_gguf_find(g, key);
            if (kv) shown_add(sh, kv->key);
        }
    }
    for (int64_t i = 0; i < qp_gguf_n_kv(g); i++) {
        const struct qp_gguf_kv *kv = qp_gguf_kv(g, i);
        if (strncmp(kv->key, prefix, plen) != 0 || shown_has(sh, kv->key)) continue;
        put_kv_line(g, kv->key, NULL);
        shown_add(sh, kv->key);
    }
    char key_e[192], key_h[192];
    snprintf(key_e, sizeof key_e, "%sembedding_length", prefix);
    snprintf(key_h, sizeof key_h, "%sattention.head_count", prefix);
    int64_t e, h;
    if (kv_int(g, key_e, &e) && kv_int(g, key_h, &h) && h > 0) {
        put_key(stdout, "head_dim (derived)");
        if (e % h == 0)
            printf("%" PRId64 "\n", e / h);
        else
            printf("(embedding_length %" PRId64 " not a multiple of head_count %" PRId64 ")\n", e,
                   h);
    }
}

/* "  label  id "token"" for a special-token id key. */
static void put_token_line(const struct qp_gguf *g, const char *key, const char *label,
                           const struct qp_gguf_value *tokens, struct shown *sh) {
    const struct qp_gguf_kv *kv = qp_gguf_find(g, key);
    if (!kv) return;
    shown_add(sh, key);
    put_key(stdout, label);
    put_value(stdout, &kv->value, 0);
    int64_t id;
    if (tokens && kv_int(g, key, &id) && id >= 0 && (uint64_t)id < tokens->arr.n) {
        putchar(' ');
        put_str(stdout, tokens->arr.strs[id].ptr, tokens->arr.strs[id].len, STR_SHOW);
    } else if (tokens) {
        fputs(" (not a token id of the vocabulary)", stdout);
    }
    putchar('\n');
}

static void section_tokenizer(const struct qp_gguf *g, struct shown *sh) {
    puts("\ntokenizer");
    if (!qp_gguf_find(g, "tokenizer.ggml.model") && !qp_gguf_find(g, "tokenizer.ggml.tokens")) {
        puts("  (none: no tokenizer.ggml.model or tokenizer.ggml.tokens key)");
        return;
    }
    put_kv_line(g, "tokenizer.ggml.model", "model");
    put_kv_line(g, "tokenizer.ggml.pre", "pre");
    shown_add(sh, "tokenizer.ggml.model");
    shown_add(sh, "tokenizer.ggml.pre");

    const struct qp_gguf_kv *tk = qp_gguf_find(g, "tokenizer.ggml.tokens");
    const struct qp_gguf_value *tokens = NULL;
    put_key(stdout, "vocab size");
    if (!tk) {
        puts("(absent: no tokenizer.ggml.tokens)");
    } else if (tk->value.type == QP_GGUF_ARRAY && tk->value.arr.elem_type == QP_GGUF_STRING) {
        tokens = &tk->value;
        printf("%" PRIu64 " tokens\n", tokens->arr.n);
        shown_add(sh, tk->key);
    } else {
        put_value(stdout, &tk->value, 0);
        puts(" (tokenizer.ggml.tokens is not an array of strings)");
        shown_add(sh, tk->key);
    }

    const struct qp_gguf_kv *mg = qp_gguf_find(g, "tokenizer.ggml.merges");
    put_key(stdout, "merges");
    if (!mg) {
        puts("(absent)");
    } else if (mg->value.type == QP_GGUF_ARRAY && mg->value.arr.elem_type == QP_GGUF_STRING) {
        printf("%" PRIu64 "\n", mg->value.arr.n);
        shown_add(sh, mg->key);
    } else {
        put_value(stdout, &mg->value, 0);
        puts(" (tokenizer.ggml.merges is not an array of strings)");
        shown_add(sh, mg->key);
    }

    put_token_line(g, "tokenizer.ggml.bos_token_id", "bos token", tokens, sh);
    put_token_line(g, "tokenizer.ggml.eos_token_id", "eos token", tokens, sh);
    put_token_line(g, "tokenizer.ggml.padding_token_id", "padding token", tokens, sh);
    if (qp_gguf_find(g, "tokenizer.ggml.add_bos_token")) {
        put_kv_line(g, "tokenizer.ggml.add_bos_token", "add_bos");
        shown_add(sh, "tokenizer.ggml.add_bos_token");
    }
    const struct qp_gguf_str *tmpl = kv_str(g, "tokenizer.chat_template");
    put_key(stdout, "chat template");
    if (tmpl) {
        printf("present, %" PRIu64 " bytes\n", tmpl->len);
        shown_add(sh, "tokenizer.chat_template");
    } else {
        puts(qp_gguf_find(g, "tokenizer.chat_template") ? "(not a string; see below)" : "absent");
    }
}

static void section_other(const struct qp_gguf *g, const struct shown *sh) {
    puts("\nother metadata");
    int64_t n = 0;
    for (int64_t i = 0; i < qp_gguf_n_kv(g); i++) {
        const struct qp_gguf_kv *kv = qp_gguf_kv(g, i);
        if (shown_has(sh, kv->key)) continue;
        put_key(stdout, kv->key);
        if (kv->value.type != QP_GGUF_ARRAY) printf("%s ", qp_gguf_vtype_name(kv->value.type));
        put_value(stdout, &kv->value, 0);
        putchar('\n');
        n++;
    }
    if (!n) puts("  (none)");
}

static void section_tensors(const struct qp_gguf *g) {
    int64_t nt = qp_gguf_n_tensors(g);
    printf("\ntensors (%" PRId64 ")\n", nt);
    if (nt == 0) {
        puts("  (none)");
        return;
    }
    int name_w = 4;
    for (int64_t i = 0; i < nt; i++) {
        size_t l = strlen(qp_gguf_tensor(g, i)->name);
        if ((int)l > name_w) name_w = (int)l;
    }
    printf("  %5s  %-*s  %-7s  %-24s  %12s  %12s\n", "#", name_w, "name", "type", "shape", "bytes",
           "offset");
    for (int64_t i = 0; i < nt; i++) {
        const struct qp_gguf_tensor *t = qp_gguf_tensor(g, i);
        char shape[96];
        int k = snprintf(shape, sizeof shape, "[");
        for (uint32_t d = 0; d < t->n_dims && d < 4; d++)
            k += snprintf(shape + k, sizeof shape - (size_t)k, "%s%" PRId64, d ? ", " : "",
                          t->ne[d]);
        snprintf(shape + k, sizeof shape - (size_t)k, "]");
        printf("  %5" PRId64 "  ", i);
        put_name(stdout, t->name, name_w);
        printf("  %-7s  %-24s  %12zu  %12" PRIu64 "\n", qp_ggml_type_name(t->type), shape, t->bytes,
               t->offset);
    }
}

static void section_totals(const struct qp_gguf *g) {
    /* Index QP_GGML_TYPE_COUNT collects ids the table does not know (the reader refuses them,
     * so it stays empty). */
    int64_t count[QP_GGML_TYPE_COUNT + 1] = {0};
    uint64_t bytes[QP_GGML_TYPE_COUNT + 1] = {0};
    int64_t nt = qp_gguf_n_tensors(g);
    uint64_t total_bytes = 0, total_elems = 0;
    for (int64_t i = 0; i < nt; i++) {
        const struct qp_gguf_tensor *t = qp_gguf_tensor(g, i);
        int ty = t->type >= 0 && t->type < QP_GGML_TYPE_COUNT ? t->type : QP_GGML_TYPE_COUNT;
        count[ty]++;
        bytes[ty] += t->bytes; /* each fits the file; the sum of disjoint ranges does too */
        total_bytes += t->bytes;
        total_elems += (uint64_t)t->n_elems;
    }
    puts("\ntotals by type");
    printf("  %-7s  %6s  %14s  %10s\n", "type", "count", "bytes", "MiB");
    for (int ty = 0; ty <= QP_GGML_TYPE_COUNT; ty++) {
        if (!count[ty]) continue;
        printf("  %-7s  %6" PRId64 "  %14" PRIu64 "  %10.2f\n",
               ty < QP_GGML_TYPE_COUNT ? qp_ggml_type_name(ty) : "unknown", count[ty], bytes[ty],
               (double)bytes[ty] / MIB);
    }
    printf("  %-7s  %6" PRId64 "  %14" PRIu64 "  %10.2f\n", "all", nt, total_bytes,
           (double)total_bytes / MIB);
    put_key(stdout, "parameters");
    printf("%" PRIu64 " (%.3f B)\n", total_elems, (double)total_elems / 1e9);
}

int qp_cmd_inspect(int argc, char **argv) {
    unsigned flags = QP_GGUF_DEFAULT;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            print_usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--header-only")) {
            flags |= QP_GGUF_HEADER_ONLY;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "qplan inspect: unknown option '%s'\n", argv[i]);
            print_usage(stderr);
            return 2;
        } else if (path) {
            fprintf(stderr, "qplan inspect: one file at a time ('%s' and '%s' given)\n", path,
                    argv[i]);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        fprintf(stderr, "qplan inspect: no model file given\n");
        print_usage(stderr);
        return 2;
    }

    struct qp_gguf *g = NULL;
    struct qp_error err = {{0}};
    enum qp_status st = qp_gguf_open(path, flags, &g, &err);
    if (st != QP_OK) {
        fprintf(stderr, "qplan inspect: %s\n", err.msg);
        return 1;
    }
    struct shown sh = {0};
    section_file(g);
    section_model(g, &sh);
    section_hparams(g, &sh);
    section_tokenizer(g, &sh);
    section_other(g, &sh);
    section_tensors(g);
    section_totals(g);
    free(sh.keys);
    qp_gguf_close(g);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "qplan inspect: writing the output failed\n");
        return 1;
    }
    return 0;
}
