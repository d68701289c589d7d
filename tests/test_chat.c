/* test_chat.c — ChatML rendering on exact strings: the Qwen2.5 template's default system
 * message (the real template, tests/data/chat/, extracted from the default model), --system,
 * an empty system message, multi-turn rendering of only the new turn, a ChatML template with
 * no default, and a clear error for a template that is not ChatML; a whole conversation at once
 * (qp_chat_render) with and without a system message, and an unknown role.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qp_chat.h"

#include "check.h"
#define CHECK_STR(got, want)                                                                   \
    do {                                                                                       \
        const char *g_ = (got), *w_ = (want);                                                  \
        if (!g_ || strcmp(g_, w_) != 0) {                                                      \
            failures++;                                                                        \
            printf("FAIL %s:%d:\n  got  [%s]\n  want [%s]\n", __FILE__, __LINE__,              \
                   g_ ? g_ : "(null)", w_);                                                    \
        }                                                                                      \
    } while (0)

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("cannot open %s\n", path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (!s || fread(s, 1, (size_t)n, f) != (size_t)n) exit(1);
    s[n] = 0;
    fclose(f);
    return s;
}

int main(void) {
    char *qwen = slurp(QP_TEST_DATA "/chat/qwen2.5-coder-instruct.jinja");
    struct qp_error e = {{0}};
    struct qp_chat *c = NULL;

    CHECK(qp_chat_init(qwen, NULL, &c, &e) == 0, "init: %s", e.msg);
    CHECK_STR(qp_chat_default_system(c),
              "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
    CHECK_STR(qp_chat_next_turn(c, "Hi!", &e),
              "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
              "assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n");
    CHECK_STR(qp_chat_next_turn(c, "And now?\nTwo lines.", &e),
              "<|im_end|>\n<|im_start|>user\nAnd now?\nTwo lines.<|im_end|>\n"
              "<|im_start|>assistant\n");
    CHECK(qp_chat_turns(c) == 2, "turns %d", qp_chat_turns(c));
    qp_chat_free(c);

    CHECK(qp_chat_init(qwen, "Be brief.", &c, &e) == 0, "init: %s", e.msg);
    CHECK_STR(qp_chat_next_turn(c, "x", &e),
              "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nx<|im_end|>\n"
              "<|im_start|>assistant\n");
    qp_chat_free(c);

    CHECK(qp_chat_init(qwen, "", &c, &e) == 0, "init: %s", e.msg);
    CHECK_STR(qp_chat_next_turn(c, "x", &e),
              "<|im_start|>system\n<|im_end|>\n<|im_start|>user\nx<|im_end|>\n"
              "<|im_start|>assistant\n");
    qp_chat_free(c);

    /* a plain ChatML template without a default system message */
    const char *plain = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' "
                        "+ message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}";
    CHECK(qp_chat_init(plain, NULL, &c, &e) == 0, "init: %s", e.msg);
    CHECK(qp_chat_default_system(c) == NULL, "plain ChatML has no default system message");
    CHECK_STR(qp_chat_next_turn(c, "q", &e),
              "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n");
    qp_chat_free(c);

    /* Qwen2's older template: default "You are a helpful assistant." */
    const char *qwen2 = "{% for message in messages %}{% if loop.first and messages[0]['role'] != "
                        "'system' %}{{ '<|im_start|>system\\nYou are a helpful "
                        "assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] "
                        "+ '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}";
    CHECK(qp_chat_init(qwen2, NULL, &c, &e) == 0, "init: %s", e.msg);
    CHECK_STR(qp_chat_default_system(c), "You are a helpful assistant.");
    qp_chat_free(c);

    /* not ChatML: a Llama-3 template */
    const char *llama3 = "{% set loop_messages = messages %}{% for message in loop_messages %}"
                         "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>' }}";
    c = NULL;
    CHECK(qp_chat_init(llama3, NULL, &c, &e) == QP_ERR_UNSUPPORTED && c == NULL,
          "a Llama-3 template must be refused");
    CHECK(strstr(e.msg, "ChatML") && strstr(e.msg, "not supported"), "message: %s", e.msg);
    printf("llama-3 template: %s\n", e.msg);
    CHECK(qp_chat_init(NULL, NULL, &c, &e) == QP_ERR_UNSUPPORTED, "no template must be refused");
    printf("no template: %s\n", e.msg);

    /* a whole conversation (qp_chat_render, the server's requests): the default system message
     * only when the conversation has none; an unknown role refused with its index */
    char *r = NULL;
    const struct qp_chat_msg conv[3] = {{"user", "Hi!"}, {"assistant", "Hello."}, {"user", "More"}};
    CHECK(qp_chat_render(qwen, conv, 3, &r, &e) == QP_OK, "render: %s", e.msg);
    CHECK_STR(r, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
                 "assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n"
                 "Hello.<|im_end|>\n<|im_start|>user\nMore<|im_end|>\n<|im_start|>assistant\n");
    free(r);
    const struct qp_chat_msg sys[2] = {{"system", "S"}, {"user", "u"}};
    CHECK(qp_chat_render(qwen, sys, 2, &r, &e) == QP_OK, "render: %s", e.msg);
    CHECK_STR(r, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nu<|im_end|>\n"
                 "<|im_start|>assistant\n");
    free(r);
    const struct qp_chat_msg bad[2] = {{"user", "u"}, {"wizard", "w"}};
    r = NULL;
    CHECK(qp_chat_render(qwen, bad, 2, &r, &e) == QP_ERR_INVALID && !r && strstr(e.msg, "message 1"),
          "an unknown role: %s", e.msg);
    CHECK(qp_chat_render(llama3, conv, 1, &r, &e) == QP_ERR_UNSUPPORTED, "render with a Llama-3 template");

    free(qwen);
    if (failures) printf("%d failure(s)\n", failures);
    else printf("chat: all checks passed\n");
    return failures ? 1 : 0;
}
