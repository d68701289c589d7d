/* serve_json.c — the server's JSON (serve.h), through jansson: request bodies of
 * /v1/chat/completions and /v1/completions into struct serve_params, checked field by field
 * (a wrong type or value is a 400 that names the field), and the answers, stream chunks, errors
 * and model list in OpenAI's shapes. Does no I/O and knows nothing of HTTP.
 *
 * Fields: model (any; one model is served), messages / prompt, stream, stream_options.include_usage,
 * temperature, top_p, top_k, min_p, repeat_penalty (llama.cpp's), max_tokens,
 * max_completion_tokens, stop, seed, n (1), logprobs, top_logprobs, frequency_penalty and
 * presence_penalty (-2..2, over the sampler's window as llama.cpp applies them), ignore_eos
 * (llama-server's: benchmarks of a fixed length), user (ignored). Refused with a 400 naming the field: tools, functions,
 * response_format other than text, logit_bias, echo, suffix, best_of > 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qp_chat.h"
#include "qp_tokenizer.h"
#include "serve.h"

void serve_params_free(struct serve_params *p) {
    free(p->prompt);
    free(p->prompt_ids);
    for (int i = 0; i < p->n_stop; i++) free(p->stop[i]);
    memset(p, 0, sizeof *p);
}

/* The parse's failure: message and field. */
struct perr {
    char *msg, *param;
    size_t msgsz, paramsz;
};

/* e with the failing field set (NULL: none), for fail. */
static struct perr *at(struct perr *e, const char *param) {
    snprintf(e->param, e->paramsz, "%s", param ? param : "");
    return e;
}

static int fail(struct perr *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, e->msgsz, fmt, ap);
    va_end(ap);
    return 400;
}

/* A number field (absent or null: *out unchanged) within [lo, hi]. */
static int get_number(json_t *o, const char *key, double lo, double hi, double *out, bool *given, struct perr *e) {
    json_t *v = json_object_get(o, key);
    if (given) *given = false;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) return fail(at(e, key), "'%s' must be a number", key);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi)) return fail(at(e, key), "'%s' is %g; expected a number in [%g, %g]", key, x, lo, hi);
    *out = x;
    if (given) *given = true;
    return 0;
}

static int get_int(json_t *o, const char *key, long long lo, long long hi, long long *out, bool *given,
                   struct perr *e) {
    json_t *v = json_object_get(o, key);
    if (given) *given = false;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v)) return fail(at(e, key), "'%s' must be an integer", key);
    long long x = json_integer_value(v);
    if (x < lo || x > hi) return fail(at(e, key), "'%s' is %lld; expected an integer in [%lld, %lld]", key, x, lo, hi);
    *out = x;
    if (given) *given = true;
    return 0;
}

static int get_bool(json_t *o, const char *key, bool *out, struct perr *e) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return fail(at(e, key), "'%s' must be true or false", key);
    *out = json_is_true(v);
    return 0;
}

/* A message's content: a string, or a list of {"type": "text", "text": ...} parts joined. */
static int content_text(json_t *c, int i, char **out, struct perr *e) {
    char param[64];
    snprintf(param, sizeof param, "messages[%d].content", i);
    if (!c || json_is_null(c)) {
        *out = strdup("");
        return *out ? 0 : fail(at(e, param), "out of memory");
    }
    if (json_is_string(c)) {
        *out = strdup(json_string_value(c));
        return *out ? 0 : fail(at(e, param), "out of memory");
    }
    if (!json_is_array(c)) return fail(at(e, param), "'%s' must be a string or a list of text parts", param);
    size_t total = 1, k;
    json_t *part;
    json_array_foreach(c, k, part) {
        json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
        if (!json_is_object(part) || !json_is_string(type) || strcmp(json_string_value(type), "text") != 0 ||
            !json_is_string(text))
            return fail(at(e, param), "'%s[%zu]' must be {\"type\": \"text\", \"text\": ...} (only text is supported)",
                        param, k);
        total += json_string_length(text);
    }
    char *s = malloc(total);
    if (!s) return fail(at(e, param), "out of memory");
    size_t len = 0;
    json_array_foreach(c, k, part) {
        json_t *text = json_object_get(part, "text");
        memcpy(s + len, json_string_value(text), json_string_length(text));
        len += json_string_length(text);
    }
    s[len] = 0;
    *out = s;
    return 0;
}

static int parse_messages(json_t *root, const char *tmpl, struct serve_params *p, struct perr *e) {
    json_t *msgs = json_object_get(root, "messages");
    if (!msgs) return fail(at(e, "messages"), "'messages' is missing");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return fail(at(e, "messages"), "'messages' must be a non-empty list of {\"role\", \"content\"}");
    size_t n = json_array_size(msgs);
    if (n > 4096) return fail(at(e, "messages"), "'messages' has %zu entries; at most 4096", n);
    struct qp_chat_msg *m = calloc(n, sizeof *m);
    char **content = calloc(n, sizeof *content);
    int rc = m && content ? 0 : fail(at(e, "messages"), "out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *msg = json_array_get(msgs, i);
        char param[64];
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!json_is_object(msg)) {
            rc = fail(at(e, param), "'%s' must be an object {\"role\", \"content\"}", param);
            break;
        }
        json_t *role = json_object_get(msg, "role");
        snprintf(param, sizeof param, "messages[%zu].role", i);
        if (!json_is_string(role)) {
            rc = fail(at(e, param), "'%s' must be a string: system, user or assistant", param);
            break;
        }
        const char *r = json_string_value(role);
        if (strcmp(r, "developer") == 0) r = "system"; /* OpenAI's newer name for it */
        if (strcmp(r, "system") != 0 && strcmp(r, "user") != 0 && strcmp(r, "assistant") != 0) {
            rc = fail(at(e, param), "'%s' is '%.40s'; expected system, user or assistant", param, r);
            break;
        }
        m[i].role = r;
        rc = content_text(json_object_get(msg, "content"), (int)i, &content[i], e);
        m[i].content = content[i];
    }
    if (rc == 0) {
        struct qp_error qe = {{0}};
        enum qp_status st = qp_chat_render(tmpl, m, (int)n, &p->prompt, &qe);
        if (st != QP_OK) rc = fail(at(e, "messages"), "%s", qe.msg);
    }
    for (size_t i = 0; content && i < n; i++) free(content[i]);
    free(content);
    free(m);
    return rc;
}

/* A completion's prompt: a string, a list of one string, token ids, or a list of one list of ids. */
static int parse_prompt(json_t *root, struct serve_params *p, struct perr *e) {
    json_t *v = json_object_get(root, "prompt");
    if (!v) return fail(at(e, "prompt"), "'prompt' is missing");
    if (json_is_array(v) && json_array_size(v) == 1 &&
        (json_is_string(json_array_get(v, 0)) || json_is_array(json_array_get(v, 0))))
        v = json_array_get(v, 0);
    if (json_is_string(v)) {
        p->prompt = strdup(json_string_value(v));
        return p->prompt ? 0 : fail(at(e, "prompt"), "out of memory");
    }
    if (json_is_array(v) && json_array_size(v) > 0) {
        size_t n = json_array_size(v), i;
        json_t *t;
        if (!(p->prompt_ids = malloc(n * sizeof *p->prompt_ids))) return fail(at(e, "prompt"), "out of memory");
        json_array_foreach(v, i, t) {
            if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) > INT32_MAX)
                return fail(at(e, "prompt"), "'prompt' must be a string or a list of token ids (one prompt: n = 1)");
            p->prompt_ids[i] = (int32_t)json_integer_value(t);
        }
        p->n_prompt_ids = n;
        return 0;
    }
    return fail(at(e, "prompt"), "'prompt' must be a string or a list of token ids (one prompt)");
}

static int parse_stop(json_t *root, struct serve_params *p, struct perr *e) {
    json_t *v = json_object_get(root, "stop");
    if (!v || json_is_null(v)) return 0;
    if (json_is_string(v)) {
        if (json_string_length(v) == 0) return 0;
        p->stop[0] = strdup(json_string_value(v));
        if (!p->stop[0]) return fail(at(e, "stop"), "out of memory");
        p->n_stop = 1;
        return 0;
    }
    if (!json_is_array(v)) return fail(at(e, "stop"), "'stop' must be a string or a list of strings");
    if (json_array_size(v) > SERVE_MAX_STOP)
        return fail(at(e, "stop"), "'stop' has %zu strings; at most %d", json_array_size(v), SERVE_MAX_STOP);
    size_t i;
    json_t *s;
    json_array_foreach(v, i, s) {
        if (!json_is_string(s)) return fail(at(e, "stop"), "'stop[%zu]' must be a string", i);
        if (json_string_length(s) == 0) continue;
        if (!(p->stop[p->n_stop] = strdup(json_string_value(s)))) return fail(at(e, "stop"), "out of memory");
        p->n_stop++;
    }
    return 0;
}

static uint64_t request_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    static unsigned counter;
    return ((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40)) +
           0x9e3779b97f4a7c15ull * __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
}

static int parse_fields(enum serve_kind kind, json_t *root, const char *tmpl, struct serve_params *p, struct perr *e) {
    int rc;
    static const char *const refused[] = {"tools", "functions", "tool_choice", "function_call"};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        json_t *v = json_object_get(root, refused[i]);
        if (v && !json_is_null(v) && !(json_is_array(v) && json_array_size(v) == 0) &&
            !(json_is_string(v) && strcmp(json_string_value(v), "none") == 0))
            return fail(at(e, refused[i]), "'%s' is not supported (no tool calling)", refused[i]);
    }
    json_t *rf = json_object_get(root, "response_format");
    if (rf && !json_is_null(rf)) {
        json_t *type = json_object_get(rf, "type");
        if (!json_is_object(rf) || !json_is_string(type) || strcmp(json_string_value(type), "text") != 0)
            return fail(at(e, "response_format"), "'response_format' supports only {\"type\": \"text\"}");
    }
    json_t *lb = json_object_get(root, "logit_bias");
    if (lb && !json_is_null(lb) && !(json_is_object(lb) && json_object_size(lb) == 0))
        return fail(at(e, "logit_bias"), "'logit_bias' is not supported");
    json_t *model = json_object_get(root, "model");
    if (model && !json_is_null(model) && !json_is_string(model)) return fail(at(e, "model"), "'model' must be a string");
    if ((rc = get_bool(root, "stream", &p->stream, e))) return rc;
    if ((rc = get_bool(root, "ignore_eos", &p->ignore_eos, e))) return rc;
    json_t *so = json_object_get(root, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so)) return fail(at(e, "stream_options"), "'stream_options' must be an object");
        if ((rc = get_bool(so, "include_usage", &p->include_usage, e))) return rc;
    }
    double x;
    bool given;
    if ((rc = get_number(root, "temperature", 0, 2, &x, &given, e))) return rc;
    if (given) p->sampling.temp = (float)x;
    if ((rc = get_number(root, "top_p", 0, 1, &x, &given, e))) return rc;
    if (given) {
        if (x <= 0) return fail(at(e, "top_p"), "'top_p' is 0; expected a number in (0, 1]");
        p->sampling.top_p = (float)x;
    }
    if ((rc = get_number(root, "min_p", 0, 1, &x, &given, e))) return rc;
    if (given) p->sampling.min_p = (float)x;
    if ((rc = get_number(root, "repeat_penalty", 0.01, 100, &x, &given, e))) return rc;
    if (given) p->sampling.repeat_penalty = (float)x;
    if ((rc = get_number(root, "frequency_penalty", -2, 2, &x, &given, e))) return rc;
    if (given) p->sampling.freq_penalty = (float)x;
    if ((rc = get_number(root, "presence_penalty", -2, 2, &x, &given, e))) return rc;
    if (given) p->sampling.presence_penalty = (float)x;
    long long k;
    if ((rc = get_int(root, "top_k", 0, INT32_MAX, &k, &given, e))) return rc;
    if (given) p->sampling.top_k = (int32_t)k;
    if ((rc = get_int(root, "seed", INT64_MIN, INT64_MAX, &k, &given, e))) return rc;
    p->sampling.seed = given ? (uint64_t)k : request_seed();
    p->max_tokens = -1;
    const char *mt = kind == SERVE_CHAT && json_object_get(root, "max_completion_tokens") ? "max_completion_tokens"
                                                                                          : "max_tokens";
    if ((rc = get_int(root, mt, 0, INT32_MAX, &k, &given, e))) return rc;
    if (given) p->max_tokens = k;
    if ((rc = get_int(root, "n", 1, INT32_MAX, &k, &given, e))) return rc;
    if (given && k != 1) return fail(at(e, "n"), "'n' is %lld; only n = 1 is supported", k);
    if ((rc = get_int(root, "best_of", 1, INT32_MAX, &k, &given, e))) return rc;
    if (given && k != 1) return fail(at(e, "best_of"), "'best_of' is %lld; only 1 is supported", k);
    if (kind == SERVE_CHAT) {
        if ((rc = get_bool(root, "logprobs", &p->logprobs, e))) return rc;
        if ((rc = get_int(root, "top_logprobs", 0, SERVE_MAX_TOP_LOGPROBS, &k, &given, e))) return rc;
        if (given) {
            if (!p->logprobs) return fail(at(e, "top_logprobs"), "'top_logprobs' needs 'logprobs': true");
            p->top_logprobs = (int)k;
        }
    } else {
        if ((rc = get_int(root, "logprobs", 0, 5, &k, &given, e))) return rc;
        if (given) {
            p->logprobs = true;
            p->top_logprobs = (int)k;
        }
        bool echo = false;
        if ((rc = get_bool(root, "echo", &echo, e))) return rc;
        if (echo) return fail(at(e, "echo"), "'echo' is not supported");
        json_t *suffix = json_object_get(root, "suffix");
        if (suffix && !json_is_null(suffix)) return fail(at(e, "suffix"), "'suffix' is not supported");
    }
    if ((rc = parse_stop(root, p, e))) return rc;
    return kind == SERVE_CHAT ? parse_messages(root, tmpl, p, e) : parse_prompt(root, p, e);
}

int serve_json_parse(enum serve_kind kind, const char *body, size_t len, const char *tmpl,
                     const struct qp_sampler_params *defaults, struct serve_params *p, char *msg, size_t msgsz,
                     char *param, size_t paramsz) {
    struct perr e = {msg, param, msgsz, paramsz};
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->sampling = *defaults;
    json_error_t je;
    json_t *root = json_loadb(body, len, 0, &je);
    if (!root) return fail(at(&e, NULL), "malformed JSON: %s (line %d, column %d)", je.text, je.line, je.column);
    int rc = json_is_object(root) ? parse_fields(kind, root, tmpl, p, &e)
                                  : fail(at(&e, NULL), "the body must be a JSON object");
    json_decref(root);
    if (rc) serve_params_free(p);
    return rc;
}

/* Dumps and frees j (NULL when j is NULL or out of memory). */
static char *dump(json_t *j) {
    if (!j) return NULL;
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

char *serve_json_error(const char *message, const char *type, const char *param) {
    return dump(json_pack("{s:{s:s, s:s, s:s?, s:n}}", "error", "message", message, "type", type, "param",
                          param && *param ? param : NULL, "code"));
}

/* A token's text as valid UTF-8 (a token may hold part of a character: U+FFFD stands in). */
static json_t *token_string(const struct qp_tokenizer *t, int32_t id, json_t **bytes) {
    size_t n;
    const char *b = qp_tokenizer_token_bytes(t, id, &n);
    if (!b) n = 0;
    char buf[256];
    size_t len = 0, at = 0;
    *bytes = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(*bytes, json_integer((unsigned char)b[i]));
    while (at < n && len + 4 < sizeof buf) {
        size_t bad;
        if (qp_utf8_validate(b + at, n - at, &bad)) bad = n - at;
        size_t take = bad < sizeof buf - 4 - len ? bad : sizeof buf - 4 - len;
        memcpy(buf + len, b + at, take);
        len += take;
        at += take;
        if (take == bad && at < n) {
            memcpy(buf + len, "\xEF\xBF\xBD", 3);
            len += 3;
            at++;
        }
    }
    return json_stringn(buf, len);
}

/* Chat logprobs {"content": [...]} of entries [from, to). */
static json_t *chat_logprobs(const struct serve_req *r, const struct qp_tokenizer *t, size_t from, size_t to) {
    json_t *content = json_array();
    for (size_t i = from; i < to; i++) {
        const struct serve_logprob *lp = &r->lp[i];
        json_t *bytes, *top = json_array();
        json_t *tok = token_string(t, lp->token, &bytes);
        for (int k = 0; k < lp->n_top && k < r->p.top_logprobs; k++) {
            json_t *tb, *ts = token_string(t, lp->top_tok[k], &tb);
            json_array_append_new(top, json_pack("{s:o, s:f, s:o}", "token", ts, "logprob", (double)lp->top_lp[k],
                                                 "bytes", tb));
        }
        json_array_append_new(content, json_pack("{s:o, s:f, s:o, s:o}", "token", tok, "logprob", (double)lp->logprob,
                                                 "bytes", bytes, "top_logprobs", top));
    }
    return json_pack("{s:o}", "content", content);
}

/* Completion logprobs {"tokens", "token_logprobs", "top_logprobs", "text_offset"} of [from, to);
 * offset: the text bytes before entry `from`. */
static json_t *completion_logprobs(const struct serve_req *r, const struct qp_tokenizer *t, size_t from, size_t to) {
    json_t *tokens = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
    size_t off = 0;
    for (size_t i = 0; i < to; i++) {
        const struct serve_logprob *lp = &r->lp[i];
        size_t n;
        qp_tokenizer_token_bytes(t, lp->token, &n);
        if (i >= from) {
            json_t *bytes;
            json_array_append_new(tokens, token_string(t, lp->token, &bytes));
            json_decref(bytes);
            json_array_append_new(lps, json_real(lp->logprob));
            json_t *top = json_object();
            for (int k = 0; k < lp->n_top && k < r->p.top_logprobs; k++) {
                json_t *tb, *ts = token_string(t, lp->top_tok[k], &tb);
                json_decref(tb);
                json_object_set_new(top, json_string_value(ts), json_real(lp->top_lp[k]));
                json_decref(ts);
            }
            json_array_append_new(tops, top);
            json_array_append_new(offs, json_integer((json_int_t)off));
        }
        off += n;
    }
    return json_pack("{s:o, s:o, s:o, s:o}", "tokens", tokens, "token_logprobs", lps, "top_logprobs", tops,
                     "text_offset", offs);
}

static json_t *usage(const struct serve_req *r) {
    return json_pack("{s:I, s:I, s:I, s:{s:I}}", "prompt_tokens", (json_int_t)r->n_ids, "completion_tokens",
                     (json_int_t)r->n_gen, "total_tokens", (json_int_t)(r->n_ids + (size_t)r->n_gen),
                     "prompt_tokens_details", "cached_tokens", (json_int_t)r->n_reused);
}

char *serve_json_answer(const struct serve_req *r, const struct qp_tokenizer *t, const char *id, long long created,
                        const char *model) {
    json_t *text = json_stringn(r->text ? r->text : "", r->text_len);
    json_t *lp = r->p.logprobs ? (r->p.kind == SERVE_CHAT ? chat_logprobs(r, t, 0, r->n_lp)
                                                          : completion_logprobs(r, t, 0, r->n_lp))
                               : json_null();
    json_t *choice = r->p.kind == SERVE_CHAT
                         ? json_pack("{s:i, s:{s:s, s:o}, s:o, s:s}", "index", 0, "message", "role", "assistant",
                                     "content", text, "logprobs", lp, "finish_reason", r->finish)
                         : json_pack("{s:o, s:i, s:o, s:s}", "text", text, "index", 0, "logprobs", lp,
                                     "finish_reason", r->finish);
    return dump(json_pack("{s:s, s:s, s:I, s:s, s:[o], s:o}", "id", id, "object",
                          r->p.kind == SERVE_CHAT ? "chat.completion" : "text_completion", "created",
                          (json_int_t)created, "model", model, "choices", choice, "usage", usage(r)));
}

char *serve_json_chunk(const struct serve_req *r, const struct qp_tokenizer *t, const char *id, long long created,
                       const char *model, size_t text_off, size_t lp_off, bool first, const char *finish) {
    json_t *text = json_stringn(r->text ? r->text + text_off : "", r->text_len - text_off);
    json_t *lp = r->p.logprobs && r->n_lp > lp_off
                     ? (r->p.kind == SERVE_CHAT ? chat_logprobs(r, t, lp_off, r->n_lp)
                                                : completion_logprobs(r, t, lp_off, r->n_lp))
                     : json_null();
    json_t *fin = finish ? json_string(finish) : json_null();
    json_t *choice;
    if (r->p.kind == SERVE_CHAT) {
        json_t *delta = json_pack("{s:o}", "content", text);
        if (first) json_object_set_new(delta, "role", json_string("assistant"));
        choice = json_pack("{s:i, s:o, s:o, s:o}", "index", 0, "delta", delta, "logprobs", lp, "finish_reason", fin);
    } else {
        choice = json_pack("{s:o, s:i, s:o, s:o}", "text", text, "index", 0, "logprobs", lp, "finish_reason", fin);
    }
    json_t *j = json_pack("{s:s, s:s, s:I, s:s, s:[o]}", "id", id, "object",
                          r->p.kind == SERVE_CHAT ? "chat.completion.chunk" : "text_completion", "created",
                          (json_int_t)created, "model", model, "choices", choice);
    if (j && finish) json_object_set_new(j, "usage", usage(r));
    return dump(j);
}

char *serve_json_models(const char *model, long long created) {
    return dump(json_pack("{s:s, s:[{s:s, s:s, s:I, s:s}]}", "object", "list", "data", "id", model, "object", "model",
                          "created", (json_int_t)created, "owned_by", "qrun"));
}
