/* tokenizer.c — the byte-level BPE tokenizer built from a GGUF vocabulary.
 *
 * Owns: loading and validating tokenizer.ggml.* (tokens, token types, merges, special ids),
 * the GPT-2 byte <-> unicode mapping, the token-text hash, the merge-rank hash, the special-
 * token matcher, BPE and its word cache, and the token queries. Does not own: the regex split
 * (pretokenize.c) or detokenization (detokenize.c).
 *
 * Invariants after load: every byte b has a token byte_token[b] (the one-character byte-level
 * string for b); every merge (left, right) names two tokens and its concatenation is a token
 * (result); so BPE on ids is exactly BPE on byte-level strings, and every piece encodes.
 * Token strings are unique in the lookup table (the first id wins for a duplicate string, as
 * llama.cpp does); a merge pair listed twice keeps its first (lowest) rank.
 */
#define _POSIX_C_SOURCE 200809L
#include "qp_tokenizer.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "pretokenize.h"

/* Cache: words up to this many bytes; cleared when it holds this many entries (a 1 MB text of
 * mixed scripts has ~60k distinct words; the cache pays for itself well before that). */
#define CACHE_MAX_WORD 64
#define CACHE_SLOTS (1u << 17)
#define CACHE_MAX_ENTRIES (1u << 16)

struct merge_slot {
    uint64_t key;   /* (uint64)left << 32 | right; UINT64_MAX = empty */
    int32_t rank;   /* index in tokenizer.ggml.merges */
    int32_t result; /* id of left+right */
};

struct cache_slot {
    uint64_t hash;    /* 0 = empty (hashes are forced odd) */
    uint32_t key_off; /* into cache_keys */
    uint32_t key_len;
    uint32_t ids_off; /* into cache_ids */
    uint32_t n_ids;
};

struct heap_item {
    int32_t rank;
    int32_t pos; /* index of the left symbol */
};

struct qp_tokenizer {
    int32_t n_vocab;
    uint8_t *type;      /* [n_vocab] enum qp_token_type */
    uint8_t *eog;       /* [n_vocab] 1 = end of generation */
    uint64_t *text_off; /* [n_vocab + 1] into text: the vocabulary strings */
    char *text;
    uint64_t *bytes_off; /* [n_vocab + 1] into bytes: what each token stands for */
    char *bytes;

    int32_t *tok_hash; /* [tok_mask + 1] token ids by hash of their text; -1 = empty */
    uint64_t tok_mask;

    struct merge_slot *merge; /* [merge_mask + 1] */
    uint64_t merge_mask;

    int32_t byte_token[256];  /* id of the token for byte b */
    uint16_t byte_to_cp[256]; /* GPT-2 mapping byte ▸ code point */
    int16_t cp_to_byte[324];  /* inverse for code points < 324; -1 = none */

    /* Special tokens (control and user-defined, non-empty), sorted by first byte then longest
     * first; special_first[c]..special_first[c+1] are those starting with byte c. */
    int32_t *special;
    size_t n_special;
    uint32_t special_first[257];

    int32_t bos, eos, pad;
    bool add_bos;
    struct qp_pretok *pre;

    /* word cache (see CACHE_*) */
    struct cache_slot *cache;
    size_t cache_n;
    char *cache_keys;
    size_t cache_keys_len, cache_keys_cap;
    int32_t *cache_ids;
    size_t cache_ids_len, cache_ids_cap;

    /* BPE scratch, grown as needed */
    int32_t *sym_id, *sym_prev, *sym_next;
    struct heap_item *heap;
    size_t scratch_cap; /* symbols; the heap holds 3x */
};

/* ---------- hashing ---------- */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x) { /* splitmix64 finaliser */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t pow2_at_least(uint64_t n) {
    uint64_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

static int32_t find_len(const struct qp_tokenizer *t, const char *s, size_t n) {
    for (uint64_t i = hash_bytes(s, n) & t->tok_mask;; i = (i + 1) & t->tok_mask) {
        int32_t id = t->tok_hash[i];
        if (id < 0) return -1;
        size_t l = (size_t)(t->text_off[id + 1] - t->text_off[id]);
        if (l == n && !memcmp(t->text + t->text_off[id], s, n)) return id;
    }
}

static const struct merge_slot *merge_find(const struct qp_tokenizer *t, int32_t a, int32_t b) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    for (uint64_t i = hash_u64(key) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        const struct merge_slot *s = &t->merge[i];
        if (s->key == key) return s;
        if (s->key == UINT64_MAX) return NULL;
    }
}

/* ---------- GPT-2 byte mapping ---------- */

static void build_byte_map(struct qp_tokenizer *t) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        bool self = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        t->byte_to_cp[b] = (uint16_t)(self ? b : 256 + n++);
    }
    for (int c = 0; c < 324; c++) t->cp_to_byte[c] = -1;
    for (int b = 0; b < 256; b++) t->cp_to_byte[t->byte_to_cp[b]] = (int16_t)b;
}

/* UTF-8 of a code point < 0x800 into out; returns its length. */
static size_t put_cp(char *out, unsigned cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* ---------- loading ---------- */

static const char *const eog_texts[] = {
    "<|im_end|>",  "<|endoftext|>", "<|eot_id|>",  "<|end_of_text|>", "<|eom_id|>", "<|end|>",
    "<end_of_turn>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",  "<EOT>",
};

struct special_key {
    unsigned char first;
    uint64_t len;
    int32_t id;
};

/* By first byte, then longest first (so the first match is the longest), then id. */
static int cmp_special(const void *a, const void *b) {
    const struct special_key *x = a, *y = b;
    if (x->first != y->first) return x->first < y->first ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* An optional token-id key: absent ▸ -1; present ▸ must be an integer in [0, n). */
static enum qp_status get_id(const struct qp_gguf *g, const char *key, int32_t n, int32_t *out,
                             struct qp_error *err) {
    *out = -1;
    if (!qp_gguf_find(g, key)) return QP_OK;
    int64_t v;
    enum qp_status st = qp_gguf_get_int(g, key, 0, (int64_t)n - 1, &v, err);
    if (st) {
        const char *m = err ? err->msg : "";
        char copy[QP_ERROR_MSG_MAX];
        snprintf(copy, sizeof copy, "%s", m);
        return qp_error_set(err, QP_ERR_FORMAT, "%s (token ids must be in [0, %" PRId32 "))", copy, n);
    }
    *out = (int32_t)v;
    return QP_OK;
}

/* tokenizer.ggml.model must be gpt2 (byte-level BPE); tokenizer.ggml.pre picks the split. */
static enum qp_status load_model_kind(struct qp_tokenizer *t, const struct qp_gguf *g,
                                      struct qp_error *err) {
    const char *path = qp_gguf_path(g);
    const char *model, *pre;
    enum qp_status st;
    if ((st = qp_gguf_get_str(g, "tokenizer.ggml.model", &model, err))) return st;
    if (strcmp(model, "gpt2")) {
        return qp_error_set(err, QP_ERR_UNSUPPORTED,
                            "%s: tokenizer.ggml.model is '%s'; only 'gpt2' (byte-level BPE) is supported",
                            path, model);
    }
    if ((st = qp_gguf_get_str(g, "tokenizer.ggml.pre", &pre, err))) return st;
    return qp_pretok_new(pre, path, &t->pre, err);
}

/* The vocabulary's arrays, checked for type and size: tokens, token types (optional: NULL when
 * absent) and merges. */
struct vocab_arrays {
    const struct qp_gguf_value *toks, *types, *merges;
};

static enum qp_status find_vocab_arrays(const struct qp_gguf *g, struct vocab_arrays *va,
                                        struct qp_error *err) {
    const char *path = qp_gguf_path(g);
    enum qp_status st;
    va->types = NULL;
    if ((st = qp_gguf_get_array(g, "tokenizer.ggml.tokens", QP_GGUF_STRING, &va->toks, err))) return st;
    if (va->toks->arr.n == 0 || va->toks->arr.n > INT32_MAX / 2) {
        return qp_error_set(err, QP_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %" PRIu64
                            " entries; 1 to %d expected", path, va->toks->arr.n, INT32_MAX / 2);
    }
    int32_t n = (int32_t)va->toks->arr.n;
    const struct qp_gguf_kv *tkv = qp_gguf_find(g, "tokenizer.ggml.token_type");
    if (tkv) {
        const struct qp_gguf_value *v = &tkv->value;
        bool is_int = v->type == QP_GGUF_ARRAY &&
                      (v->arr.elem_type == QP_GGUF_I32 || v->arr.elem_type == QP_GGUF_U32 ||
                       v->arr.elem_type == QP_GGUF_I8 || v->arr.elem_type == QP_GGUF_U8 ||
                       v->arr.elem_type == QP_GGUF_I16 || v->arr.elem_type == QP_GGUF_U16 ||
                       v->arr.elem_type == QP_GGUF_I64 || v->arr.elem_type == QP_GGUF_U64);
        if (!is_int) {
            return qp_error_set(err, QP_ERR_FORMAT,
                                "%s: tokenizer.ggml.token_type has type %s%s%s; an array of integers (i32) was expected",
                                path, qp_gguf_vtype_name(v->type), v->type == QP_GGUF_ARRAY ? " of " : "",
                                v->type == QP_GGUF_ARRAY ? qp_gguf_vtype_name(v->arr.elem_type) : "");
        }
        if (v->arr.n != (uint64_t)n) {
            return qp_error_set(err, QP_ERR_FORMAT,
                                "%s: tokenizer.ggml.token_type has %" PRIu64 " entries but tokenizer.ggml.tokens has %" PRId32,
                                path, v->arr.n, n);
        }
        va->types = v;
    }
    if ((st = qp_gguf_get_array(g, "tokenizer.ggml.merges", QP_GGUF_STRING, &va->merges, err))) {
        if (!qp_gguf_find(g, "tokenizer.ggml.merges")) {
            return qp_error_set(err, QP_ERR_FORMAT,
                                "%s: tokenizer.ggml.merges is missing: a gpt2 (BPE) vocabulary needs its merges",
                                path);
        }
        return st;
    }
    if (va->merges->arr.n > INT32_MAX / 2) {
        return qp_error_set(err, QP_ERR_FORMAT, "%s: tokenizer.ggml.merges has %" PRIu64 " entries (too many)",
                            path, va->merges->arr.n);
    }
    return QP_OK;
}

/* Token texts, types, and the text ▸ id table (the first id wins for a duplicate text). */
static enum qp_status load_tokens(struct qp_tokenizer *t, const struct vocab_arrays *va,
                                  const char *path, struct qp_error *err) {
    const struct qp_gguf_value *toks = va->toks, *types = va->types;
    int32_t n = (int32_t)toks->arr.n;
    t->n_vocab = n;
    t->type = malloc((size_t)n);
    t->eog = calloc((size_t)n, 1);
    t->text_off = malloc(((size_t)n + 1) * sizeof *t->text_off);
    uint64_t total = 0;
    for (int32_t i = 0; i < n; i++) total += toks->arr.strs[i].len; /* each < file size */
    t->text = malloc(total ? (size_t)total : 1);
    t->tok_mask = pow2_at_least(2 * (uint64_t)n) - 1;
    t->tok_hash = malloc((size_t)(t->tok_mask + 1) * sizeof *t->tok_hash);
    if (!t->type || !t->eog || !t->text_off || !t->text || !t->tok_hash) {
        return qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory for the vocabulary", path);
    }
    memset(t->tok_hash, 0xff, (size_t)(t->tok_mask + 1) * sizeof *t->tok_hash);
    uint64_t off = 0;
    for (int32_t i = 0; i < n; i++) {
        const struct qp_gguf_str *s = &toks->arr.strs[i];
        int64_t ty = types ? qp_gguf_arr_int(types, (uint64_t)i) : QP_TOKEN_NORMAL;
        if (ty < 0 || ty > QP_TOKEN_BYTE) {
            return qp_error_set(err, QP_ERR_FORMAT,
                                "%s: tokenizer.ggml.token_type[%" PRId32 "] = %" PRId64 " is not a token type (0..6)",
                                path, i, ty);
        }
        t->type[i] = (uint8_t)ty;
        t->text_off[i] = off;
        memcpy(t->text + off, s->ptr, (size_t)s->len);
        off += s->len;
        uint64_t h = hash_bytes(s->ptr, (size_t)s->len) & t->tok_mask;
        bool dup = false;
        for (;; h = (h + 1) & t->tok_mask) {
            int32_t id = t->tok_hash[h];
            if (id < 0) break;
            if (t->text_off[id + 1] - t->text_off[id] == s->len && /* id < i: both set */
                !memcmp(t->text + t->text_off[id], s->ptr, (size_t)s->len)) {
                dup = true; /* first id wins */
                break;
            }
        }
        if (!dup) t->tok_hash[h] = i;
        t->text_off[i + 1] = off;
    }
    t->text_off[n] = off;
    return QP_OK;
}

/* What each token stands for: normal tokens decoded from byte-level text, <0xNN> byte tokens
 * to their byte, control and user-defined tokens as written. */
static enum qp_status decode_token_bytes(struct qp_tokenizer *t, const char *path,
                                         struct qp_error *err) {
    int32_t n = t->n_vocab;
    uint64_t total = t->text_off[n];
    build_byte_map(t);
    t->bytes_off = malloc(((size_t)n + 1) * sizeof *t->bytes_off);
    t->bytes = malloc(total ? (size_t)total : 1); /* decoding never lengthens */
    if (!t->bytes_off || !t->bytes) return qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", path);
    uint64_t bo = 0;
    for (int32_t i = 0; i < n; i++) {
        const unsigned char *s = (const unsigned char *)t->text + t->text_off[i];
        size_t len = (size_t)(t->text_off[i + 1] - t->text_off[i]);
        t->bytes_off[i] = bo;
        int ty = t->type[i];
        if (ty == QP_TOKEN_UNUSED) continue;
        if (ty == QP_TOKEN_CONTROL || ty == QP_TOKEN_USER_DEFINED || ty == QP_TOKEN_UNKNOWN) {
            memcpy(t->bytes + bo, s, len);
            bo += len;
            continue;
        }
        if (len == 0) {
            return qp_error_set(err, QP_ERR_FORMAT, "%s: tokenizer.ggml.tokens[%" PRId32 "] is empty", path, i);
        }
        if (ty == QP_TOKEN_BYTE && len == 6 && !memcmp(s, "<0x", 3) && s[5] == '>') {
            unsigned v;
            if (sscanf((const char *)s + 3, "%2x", &v) == 1) {
                t->bytes[bo++] = (char)v;
                continue;
            }
        }
        for (size_t j = 0; j < len;) {
            unsigned cp;
            size_t k;
            if (s[j] < 0x80) cp = s[j], k = 1;
            else if ((s[j] & 0xE0) == 0xC0 && j + 1 < len && (s[j + 1] & 0xC0) == 0x80)
                cp = (unsigned)(s[j] & 0x1F) << 6 | (s[j + 1] & 0x3F), k = 2;
            else cp = 0xFFFF, k = 1;
            if (cp >= 324 || t->cp_to_byte[cp] < 0) {
                return qp_error_set(err, QP_ERR_FORMAT,
                                    "%s: tokenizer.ggml.tokens[%" PRId32 "] (a normal token) is not GPT-2 byte-level text: byte %zu is not a mapped character",
                                    path, i, j);
            }
            t->bytes[bo++] = (char)t->cp_to_byte[cp];
            j += k;
        }
    }
    t->bytes_off[n] = bo;
    return QP_OK;
}

/* Every byte needs its token (byte_token[b]): BPE starts from them. */
static enum qp_status find_byte_tokens(struct qp_tokenizer *t, const char *path, struct qp_error *err) {
    for (int b = 0; b < 256; b++) {
        char u[2];
        size_t l = put_cp(u, t->byte_to_cp[b]);
        int32_t id = find_len(t, u, l);
        if (id < 0) {
            return qp_error_set(err, QP_ERR_FORMAT,
                                "%s: tokenizer.ggml.tokens has no token for byte 0x%02X (byte-level U+%04X): not a complete byte-level vocabulary",
                                path, b, t->byte_to_cp[b]);
        }
        t->byte_token[b] = id;
    }
    return QP_OK;
}

/* Merges ▸ (left id, right id) ▸ (rank, result id); a repeated pair keeps its first rank. */
static enum qp_status load_merges(struct qp_tokenizer *t, const struct qp_gguf_value *merges,
                                  const char *path, struct qp_error *err) {
    uint64_t nm = merges->arr.n;
    t->merge_mask = pow2_at_least(2 * nm + 1) - 1;
    t->merge = malloc((size_t)(t->merge_mask + 1) * sizeof *t->merge);
    if (!t->merge) return qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory for the merges", path);
    for (uint64_t i = 0; i <= t->merge_mask; i++) t->merge[i].key = UINT64_MAX;
    char *cat = NULL;
    size_t cat_cap = 0;
    for (uint64_t r = 0; r < nm; r++) {
        const struct qp_gguf_str *s = &merges->arr.strs[r];
        const char *sp = memchr(s->ptr, ' ', (size_t)s->len);
        int shown = s->len > 80 ? 80 : (int)s->len;
        if (!sp || sp == s->ptr || sp + 1 == s->ptr + s->len || memchr(sp + 1, ' ', (size_t)(s->ptr + s->len - sp - 1))) {
            free(cat);
            return qp_error_set(err, QP_ERR_FORMAT,
                                "%s: tokenizer.ggml.merges[%" PRIu64 "] '%.*s' is not two tokens separated by one space",
                                path, r, shown, s->ptr);
        }
        size_t la = (size_t)(sp - s->ptr), lb = (size_t)(s->len - la - 1);
        int32_t a = find_len(t, s->ptr, la), b = find_len(t, sp + 1, lb);
        if (a < 0 || b < 0) {
            free(cat);
            return qp_error_set(err, QP_ERR_FORMAT,
                                "%s: tokenizer.ggml.merges[%" PRIu64 "] '%.*s' names '%.*s', which is not a token",
                                path, r, shown, s->ptr, a < 0 ? (int)la : (int)lb, a < 0 ? s->ptr : sp + 1);
        }
        if (la + lb > cat_cap) {
            cat_cap = 2 * (la + lb);
            char *c2 = realloc(cat, cat_cap);
            if (!c2) {
                free(cat);
                return qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", path);
            }
            cat = c2;
        }
        memcpy(cat, s->ptr, la);
        memcpy(cat + la, sp + 1, lb);
        int32_t res = find_len(t, cat, la + lb);
        if (res < 0) {
            free(cat);
            return qp_error_set(err, QP_ERR_FORMAT,
                                "%s: tokenizer.ggml.merges[%" PRIu64 "] '%.*s': the merged text is not a token",
                                path, r, shown, s->ptr);
        }
        uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
        uint64_t h = hash_u64(key) & t->merge_mask;
        while (t->merge[h].key != UINT64_MAX && t->merge[h].key != key) h = (h + 1) & t->merge_mask;
        if (t->merge[h].key == UINT64_MAX) {
            t->merge[h].key = key;
            t->merge[h].rank = (int32_t)r;
            t->merge[h].result = res;
        }
    }
    free(cat);
    return QP_OK;
}

/* bos, eos, pad and eot ids (each optional) and add_bos. */
static enum qp_status load_special_ids(struct qp_tokenizer *t, const struct qp_gguf *g, int32_t *eot,
                                       struct qp_error *err) {
    int32_t n = t->n_vocab;
    enum qp_status st;
    if ((st = get_id(g, "tokenizer.ggml.bos_token_id", n, &t->bos, err))) return st;
    if ((st = get_id(g, "tokenizer.ggml.eos_token_id", n, &t->eos, err))) return st;
    if ((st = get_id(g, "tokenizer.ggml.padding_token_id", n, &t->pad, err))) return st;
    if ((st = get_id(g, "tokenizer.ggml.eot_token_id", n, eot, err))) return st;
    if (qp_gguf_find(g, "tokenizer.ggml.add_bos_token")) {
        if ((st = qp_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos, err))) return st;
    }
    return QP_OK;
}

/* The end-of-generation flags (eos, eot and the control tokens of eog_texts) and the special-
 * token matcher (special, special_first). */
static enum qp_status build_special_tokens(struct qp_tokenizer *t, int32_t eot, const char *path,
                                           struct qp_error *err) {
    int32_t n = t->n_vocab;
    if (t->eos >= 0) t->eog[t->eos] = 1;
    if (eot >= 0) t->eog[eot] = 1;
    size_t ns = 0;
    for (int32_t i = 0; i < n; i++) {
        int ty = t->type[i];
        size_t len = (size_t)(t->text_off[i + 1] - t->text_off[i]);
        if ((ty == QP_TOKEN_CONTROL || ty == QP_TOKEN_USER_DEFINED) && len > 0) ns++;
        if (ty == QP_TOKEN_CONTROL) {
            for (size_t e = 0; e < sizeof eog_texts / sizeof eog_texts[0]; e++) {
                if (strlen(eog_texts[e]) == len && !memcmp(eog_texts[e], t->text + t->text_off[i], len)) {
                    t->eog[i] = 1;
                }
            }
        }
    }
    t->special = malloc((ns ? ns : 1) * sizeof *t->special);
    struct special_key *keys = malloc((ns ? ns : 1) * sizeof *keys);
    if (!t->special || !keys) {
        free(keys);
        return qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", path);
    }
    for (int32_t i = 0; i < n; i++) {
        int ty = t->type[i];
        uint64_t len = t->text_off[i + 1] - t->text_off[i];
        if ((ty == QP_TOKEN_CONTROL || ty == QP_TOKEN_USER_DEFINED) && len > 0) {
            keys[t->n_special++] = (struct special_key){(unsigned char)t->text[t->text_off[i]], len, i};
        }
    }
    qsort(keys, t->n_special, sizeof *keys, cmp_special);
    for (size_t j = 0; j < t->n_special; j++) t->special[j] = keys[j].id;
    free(keys);
    size_t k = 0;
    for (unsigned c = 0; c < 257; c++) {
        while (k < t->n_special && (unsigned char)t->text[t->text_off[t->special[k]]] < c) k++;
        t->special_first[c] = (uint32_t)k;
    }
    return QP_OK;
}

/* Builds t from tokenizer.ggml.* in the order the invariants need: tokens before the byte map
 * and merges (which look tokens up), ids before the end-of-generation flags. */
static enum qp_status load(struct qp_tokenizer *t, const struct qp_gguf *g, struct qp_error *err) {
    const char *path = qp_gguf_path(g);
    struct vocab_arrays va;
    int32_t eot = -1;
    enum qp_status st;
    if ((st = load_model_kind(t, g, err))) return st;
    if ((st = find_vocab_arrays(g, &va, err))) return st;
    if ((st = load_tokens(t, &va, path, err))) return st;
    if ((st = decode_token_bytes(t, path, err))) return st;
    if ((st = find_byte_tokens(t, path, err))) return st;
    if ((st = load_merges(t, va.merges, path, err))) return st;
    if ((st = load_special_ids(t, g, &eot, err))) return st;
    if ((st = build_special_tokens(t, eot, path, err))) return st;
    t->cache = calloc(CACHE_SLOTS, sizeof *t->cache);
    if (!t->cache) return qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", path);
    return QP_OK;
}

enum qp_status qp_tokenizer_load(const struct qp_gguf *g, struct qp_tokenizer **out,
                                 struct qp_error *err) {
    *out = NULL;
    struct qp_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return qp_error_set(err, QP_ERR_NOMEM, "%s: out of memory", qp_gguf_path(g));
    t->bos = t->eos = t->pad = -1;
    enum qp_status st = load(t, g, err);
    if (st) {
        qp_tokenizer_free(t);
        return st;
    }
    *out = t;
    return QP_OK;
}

enum qp_status qp_tokenizer_load_file(const char *path, struct qp_tokenizer **out,
                                      struct qp_error *err) {
    *out = NULL;
    struct qp_gguf *g;
    enum qp_status st = qp_gguf_open(path, QP_GGUF_HEADER_ONLY, &g, err);
    if (st) return st;
    st = qp_tokenizer_load(g, out, err);
    qp_gguf_close(g);
    return st;
}

void qp_tokenizer_free(struct qp_tokenizer *t) {
    if (!t) return;
    free(t->type);
    free(t->eog);
    free(t->text_off);
    free(t->text);
    free(t->bytes_off);
    free(t->bytes);
    free(t->tok_hash);
    free(t->merge);
    free(t->special);
    qp_pretok_free(t->pre);
    free(t->cache);
    free(t->cache_keys);
    free(t->cache_ids);
    free(t->sym_id);
    free(t->sym_prev);
    free(t->sym_next);
    free(t->heap);
    free(t);
}

/* ---------- encoding ---------- */

struct idvec {
    int32_t *v;
    size_t n, cap;
};

static bool idvec_reserve(struct idvec *o, size_t extra) {
    if (o->n + extra <= o->cap) return true;
    size_t cap = o->cap ? o->cap : 256;
    while (cap < o->n + extra) cap *= 2;
    int32_t *v = realloc(o->v, cap * sizeof *v);
    if (!v) return false;
    o->v = v;
    o->cap = cap;
    return true;
}

static bool heap_less(struct heap_item a, struct heap_item b) {
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static void heap_push(struct heap_item *h, size_t *n, struct heap_item x) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(x, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static struct heap_item heap_pop(struct heap_item *h, size_t *n) {
    struct heap_item top = h[0], x = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && heap_less(h[c + 1], h[c])) c++;
        if (!heap_less(h[c], x)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = x;
    return top;
}

static bool scratch_reserve(struct qp_tokenizer *t, size_t n) {
    if (n <= t->scratch_cap) return true;
    size_t cap = t->scratch_cap ? t->scratch_cap : 256;
    while (cap < n) cap *= 2;
    int32_t *a = realloc(t->sym_id, cap * sizeof *a);
    if (a) t->sym_id = a;
    int32_t *b = realloc(t->sym_prev, cap * sizeof *b);
    if (b) t->sym_prev = b;
    int32_t *c = realloc(t->sym_next, cap * sizeof *c);
    if (c) t->sym_next = c;
    struct heap_item *h = realloc(t->heap, 3 * cap * sizeof *h);
    if (h) t->heap = h;
    if (!a || !b || !c || !h) return false;
    t->scratch_cap = cap;
    return true;
}

static void push_pair(struct qp_tokenizer *t, size_t *hn, int32_t left) {
    if (left < 0) return;
    int32_t right = t->sym_next[left];
    if (right < 0) return;
    const struct merge_slot *m = merge_find(t, t->sym_id[left], t->sym_id[right]);
    if (m) heap_push(t->heap, hn, (struct heap_item){m->rank, left});
}

/* BPE over one piece's bytes; appends the ids to o. */
static bool bpe(struct qp_tokenizer *t, const unsigned char *s, size_t n, struct idvec *o) {
    if (n == 0) return true;
    if (n > INT32_MAX / 4 || !scratch_reserve(t, n)) return false;
    int32_t *id = t->sym_id, *prev = t->sym_prev, *next = t->sym_next;
    for (size_t i = 0; i < n; i++) {
        id[i] = t->byte_token[s[i]];
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    size_t hn = 0;
    for (size_t i = 0; i + 1 < n; i++) push_pair(t, &hn, (int32_t)i);
    while (hn) {
        struct heap_item it = heap_pop(t->heap, &hn);
        int32_t l = it.pos, r = next[l];
        if (id[l] < 0 || r < 0) continue; /* left symbol merged away, or now last */
        const struct merge_slot *m = merge_find(t, id[l], id[r]);
        if (!m || m->rank != it.rank) continue; /* stale: a rank names exactly one pair */
        id[l] = m->result;
        id[r] = -1;
        next[l] = next[r];
        if (next[r] >= 0) prev[next[r]] = l;
        push_pair(t, &hn, prev[l]);
        push_pair(t, &hn, l);
    }
    size_t count = 0;
    for (int32_t i = 0; i >= 0; i = next[i]) count++;
    if (!idvec_reserve(o, count)) return false;
    for (int32_t i = 0; i >= 0; i = next[i]) o->v[o->n++] = id[i];
    return true;
}

static void cache_clear(struct qp_tokenizer *t) {
    memset(t->cache, 0, CACHE_SLOTS * sizeof *t->cache);
    t->cache_n = 0;
    t->cache_keys_len = 0;
    t->cache_ids_len = 0;
}

/* Encodes one pre-tokenizer piece through the cache. */
static bool encode_piece(struct qp_tokenizer *t, const char *s, size_t n, struct idvec *o) {
    if (n > CACHE_MAX_WORD) return bpe(t, (const unsigned char *)s, n, o);
    uint64_t h = hash_bytes(s, n) | 1;
    uint32_t i = (uint32_t)h & (CACHE_SLOTS - 1);
    for (;; i = (i + 1) & (CACHE_SLOTS - 1)) {
        struct cache_slot *c = &t->cache[i];
        if (c->hash == 0) break;
        if (c->hash == h && c->key_len == n && !memcmp(t->cache_keys + c->key_off, s, n)) {
            if (!idvec_reserve(o, c->n_ids)) return false;
            memcpy(o->v + o->n, t->cache_ids + c->ids_off, c->n_ids * sizeof *o->v);
            o->n += c->n_ids;
            return true;
        }
    }
    size_t before = o->n;
    if (!bpe(t, (const unsigned char *)s, n, o)) return false;
    size_t k = o->n - before;
    if (t->cache_n >= CACHE_MAX_ENTRIES) {
        cache_clear(t);
        i = (uint32_t)h & (CACHE_SLOTS - 1);
    }
    if (t->cache_keys_len + n > t->cache_keys_cap) {
        size_t cap = t->cache_keys_cap ? 2 * t->cache_keys_cap : 1 << 16;
        char *p = realloc(t->cache_keys, cap);
        if (!p) return true; /* the cache is an optimisation: skip it */
        t->cache_keys = p;
        t->cache_keys_cap = cap;
    }
    if (t->cache_ids_len + k > t->cache_ids_cap) {
        size_t cap = t->cache_ids_cap ? 2 * t->cache_ids_cap : 1 << 16;
        int32_t *p = realloc(t->cache_ids, cap * sizeof *p);
        if (!p) return true;
        t->cache_ids = p;
        t->cache_ids_cap = cap;
    }
    struct cache_slot *c = &t->cache[i];
    c->hash = h;
    c->key_off = (uint32_t)t->cache_keys_len;
    c->key_len = (uint32_t)n;
    c->ids_off = (uint32_t)t->cache_ids_len;
    c->n_ids = (uint32_t)k;
    memcpy(t->cache_keys + t->cache_keys_len, s, n);
    t->cache_keys_len += n;
    memcpy(t->cache_ids + t->cache_ids_len, o->v + before, k * sizeof *o->v);
    t->cache_ids_len += k;
    t->cache_n++;
    return true;
}

/* Regex split and BPE over text[b..e), which holds no special token. */
static enum qp_status encode_plain(struct qp_tokenizer *t, const char *text, size_t b, size_t e,
                                   struct idvec *o, struct qp_error *err) {
    size_t pos = b, ps, pe;
    int r;
    /* The regex sees only this segment (as HF and llama.cpp split around special tokens
     * first): pass its end as the subject length so lookaheads stop there. */
    while ((r = qp_pretok_next(t->pre, text, e, &pos, &ps, &pe, err)) > 0) {
        if (!encode_piece(t, text + ps, pe - ps, o)) {
            return qp_error_set(err, QP_ERR_NOMEM, "tokenizer: out of memory");
        }
    }
    return r < 0 ? QP_ERR_INVALID : QP_OK;
}

/* Longest special token (allowed in this mode) that starts at text[i]; -1 if none. */
static int32_t special_at(const struct qp_tokenizer *t, const char *text, size_t len, size_t i,
                          bool parse_special) {
    unsigned char c = (unsigned char)text[i];
    for (uint32_t k = t->special_first[c]; k < t->special_first[c + 1]; k++) {
        int32_t id = t->special[k];
        if (!parse_special && t->type[id] == QP_TOKEN_CONTROL) continue;
        size_t l = (size_t)(t->text_off[id + 1] - t->text_off[id]);
        if (l <= len - i && !memcmp(text + i, t->text + t->text_off[id], l)) return id;
    }
    return -1;
}

enum qp_status qp_tokenizer_encode(struct qp_tokenizer *t, const char *text, size_t len,
                                   bool parse_special, int32_t **ids, size_t *n,
                                   struct qp_error *err) {
    *ids = NULL;
    *n = 0;
    size_t bad;
    if (!qp_utf8_validate(text, len, &bad)) {
        return qp_error_set(err, QP_ERR_INVALID, "tokenizer: text is not valid UTF-8 at byte %zu (of %zu)",
                            bad, len);
    }
    struct idvec o = {0};
    if (!idvec_reserve(&o, len / 3 + 16)) return qp_error_set(err, QP_ERR_NOMEM, "tokenizer: out of memory");
    size_t seg = 0;
    enum qp_status st = QP_OK;
    if (t->n_special) {
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)text[i];
            if (t->special_first[c] == t->special_first[c + 1]) continue;
            int32_t id = special_at(t, text, len, i, parse_special);
            if (id < 0) continue;
            if ((st = encode_plain(t, text, seg, i, &o, err))) break;
            if (!idvec_reserve(&o, 1)) {
                st = qp_error_set(err, QP_ERR_NOMEM, "tokenizer: out of memory");
                break;
            }
            o.v[o.n++] = id;
            i += (size_t)(t->text_off[id + 1] - t->text_off[id]) - 1;
            seg = i + 1;
        }
    }
    if (!st) st = encode_plain(t, text, seg, len, &o, err);
    if (st) {
        free(o.v);
        return st;
    }
    if (o.n == 0) {
        free(o.v);
        o.v = NULL;
    }
    *ids = o.v;
    *n = o.n;
    return QP_OK;
}

/* ---------- queries ---------- */

int32_t qp_tokenizer_n_vocab(const struct qp_tokenizer *t) { return t->n_vocab; }
const char *qp_tokenizer_pre(const struct qp_tokenizer *t) { return qp_pretok_name(t->pre); }

const char *qp_tokenizer_token_bytes(const struct qp_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) {
        *len = 0;
        return NULL;
    }
    *len = (size_t)(t->bytes_off[id + 1] - t->bytes_off[id]);
    return t->bytes + t->bytes_off[id];
}

const char *qp_tokenizer_token_text(const struct qp_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) {
        *len = 0;
        return NULL;
    }
    *len = (size_t)(t->text_off[id + 1] - t->text_off[id]);
    return t->text + t->text_off[id];
}

enum qp_token_type qp_tokenizer_token_type(const struct qp_tokenizer *t, int32_t id) {
    return id < 0 || id >= t->n_vocab ? QP_TOKEN_UNDEFINED : (enum qp_token_type)t->type[id];
}

bool qp_tokenizer_is_special(const struct qp_tokenizer *t, int32_t id) {
    enum qp_token_type ty = qp_tokenizer_token_type(t, id);
    return ty == QP_TOKEN_CONTROL || ty == QP_TOKEN_USER_DEFINED;
}

bool qp_tokenizer_is_eog(const struct qp_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && t->eog[id];
}

int32_t qp_tokenizer_find(const struct qp_tokenizer *t, const char *text) {
    return find_len(t, text, strlen(text));
}

int32_t qp_tokenizer_bos(const struct qp_tokenizer *t) { return t->bos; }
int32_t qp_tokenizer_eos(const struct qp_tokenizer *t) { return t->eos; }
int32_t qp_tokenizer_pad(const struct qp_tokenizer *t) { return t->pad; }
bool qp_tokenizer_add_bos(const struct qp_tokenizer *t) { return t->add_bos; }
