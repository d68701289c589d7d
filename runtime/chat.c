/* chat.c — ChatML turn rendering (qp_chat.h). Owns the system message, the template's default
 * system message and one growing text buffer for the last rendered turn (allocation per turn,
 * never per token). qp_chat_render renders a whole conversation at once (a server's request).
 */
#include "qp_chat.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct qp_chat {
    char *system;         /* the system message to render, NULL for none */
    char *default_system; /* found in the template, NULL when none */
    char *buf;            /* the last rendered turn */
    size_t cap;
    int turns;
};

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

/* Finds a string literal "<|im_start|>system\n<text><|im_end|>" in the template (the \n as
 * the two characters a Jinja literal holds, or a real newline) whose text is a constant, not
 * an expression ("' + messages[0]..."). Returns a copy or NULL. */
static char *find_default_system(const char *t) {
    static const char *const heads[] = {"<|im_start|>system\\n", "<|im_start|>system\n"};
    for (int h = 0; h < 2; h++) {
        size_t hl = strlen(heads[h]);
        for (const char *p = strstr(t, heads[h]); p; p = strstr(p + 1, heads[h])) {
            const char *text = p + hl;
            const char *end = strstr(text, "<|im_end|>");
            if (!end || end == text) continue;
            bool constant = true;
            for (const char *q = text; q < end && constant; q++)
                constant = *q != '\'' && *q != '"' && *q != '{' && *q != '}' && *q != '\\';
            if (constant) return dup_n(text, (size_t)(end - text));
        }
    }
    return NULL;
}

enum qp_status qp_chat_init(const char *tmpl, const char *system, struct qp_chat **out,
                            struct qp_error *err) {
    *out = NULL;
    if (!tmpl || !*tmpl)
        return qp_error_set(err, QP_ERR_UNSUPPORTED,
                            "the model has no tokenizer.chat_template: chat needs ChatML "
                            "(<|im_start|>role ... <|im_end|>), as Qwen2/Qwen2.5 instruct models use");
    if (!strstr(tmpl, "<|im_start|>")) {
        char head[61];
        size_t n = strcspn(tmpl, "\n");
        if (n > 60) n = 60;
        memcpy(head, tmpl, n);
        head[n] = 0;
        return qp_error_set(err, QP_ERR_UNSUPPORTED,
                            "chat template not supported (it begins \"%s\"): qrun supports ChatML "
                            "(<|im_start|>role\\n...<|im_end|>), the format of Qwen2/Qwen2.5 "
                            "instruct models; use -p without --chat for plain completion",
                            head);
    }
    struct qp_chat *c = calloc(1, sizeof *c);
    if (!c) return qp_error_set(err, QP_ERR_NOMEM, "chat: out of memory");
    c->default_system = find_default_system(tmpl);
    const char *sys = system ? system : c->default_system;
    if (sys) {
        c->system = dup_n(sys, strlen(sys));
        if (!c->system) {
            qp_chat_free(c);
            return qp_error_set(err, QP_ERR_NOMEM, "chat: out of memory");
        }
    }
    *out = c;
    return QP_OK;
}

void qp_chat_free(struct qp_chat *c) {
    if (!c) return;
    free(c->system);
    free(c->default_system);
    free(c->buf);
    free(c);
}

const char *qp_chat_default_system(const struct qp_chat *c) { return c->default_system; }

int qp_chat_turns(const struct qp_chat *c) { return c->turns; }

static bool append(struct qp_chat *c, size_t *len, const char *s) {
    size_t n = strlen(s);
    if (*len + n + 1 > c->cap) {
        size_t cap = (*len + n + 1) * 2;
        char *b = realloc(c->buf, cap);
        if (!b) return false;
        c->buf = b;
        c->cap = cap;
    }
    memcpy(c->buf + *len, s, n + 1);
    *len += n;
    return true;
}

const char *qp_chat_next_turn(struct qp_chat *c, const char *user, struct qp_error *err) {
    size_t len = 0;
    bool ok = append(c, &len, "");
    if (c->turns == 0) {
        if (c->system)
            ok = ok && append(c, &len, "<|im_start|>system\n") && append(c, &len, c->system) &&
                 append(c, &len, "<|im_end|>\n");
    } else {
        ok = ok && append(c, &len, "<|im_end|>\n");
    }
    ok = ok && append(c, &len, "<|im_start|>user\n") && append(c, &len, user) &&
         append(c, &len, "<|im_end|>\n<|im_start|>assistant\n");
    if (!ok) {
        qp_error_set(err, QP_ERR_NOMEM, "chat: out of memory rendering a turn");
        return NULL;
    }
    c->turns++;
    return c->buf;
}

enum qp_status qp_chat_render(const char *tmpl, const struct qp_chat_msg *m, int n, char **out,
                              struct qp_error *err) {
    *out = NULL;
    struct qp_chat *c;
    enum qp_status s = qp_chat_init(tmpl, NULL, &c, err);
    if (s != QP_OK) return s;
    size_t len = 0;
    bool ok = append(c, &len, "");
    if (ok && c->default_system && (n == 0 || strcmp(m[0].role, "system") != 0))
        ok = append(c, &len, "<|im_start|>system\n") && append(c, &len, c->default_system) &&
             append(c, &len, "<|im_end|>\n");
    for (int i = 0; ok && i < n; i++) {
        if (strcmp(m[i].role, "system") != 0 && strcmp(m[i].role, "user") != 0 &&
            strcmp(m[i].role, "assistant") != 0) {
            qp_chat_free(c);
            return qp_error_set(err, QP_ERR_INVALID,
                                "message %d: role '%.40s' is not system, user or assistant", i,
                                m[i].role);
        }
        ok = append(c, &len, "<|im_start|>") && append(c, &len, m[i].role) &&
             append(c, &len, "\n") && append(c, &len, m[i].content) &&
             append(c, &len, "<|im_end|>\n");
    }
    ok = ok && append(c, &len, "<|im_start|>assistant\n");
    if (!ok) {
        qp_chat_free(c);
        return qp_error_set(err, QP_ERR_NOMEM, "chat: out of memory rendering a conversation");
    }
    *out = c->buf; /* the rendered text outlives the chat */
    c->buf = NULL;
    qp_chat_free(c);
    return QP_OK;
}
