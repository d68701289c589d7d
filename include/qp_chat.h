/* qp_chat.h — renders conversation turns as the text a chat model expects, turn by turn, so
 * that a runtime keeps earlier turns in its KV cache and only tokenizes the new one.
 *
 * Supported: ChatML, the format of Qwen2 / Qwen2.5 instruct models, recognised by a
 * tokenizer.chat_template containing "<|im_start|>". Each message is
 * "<|im_start|>{role}\n{content}<|im_end|>\n"; generation starts after
 * "<|im_start|>assistant\n". The default system message is the one the template writes when
 * the conversation has none (Qwen2.5: "You are Qwen, created by Alibaba Cloud. You are a
 * helpful assistant."), found in the template text; none when the template has none.
 *
 * The text is rendered with special tokens spelled out; tokenize it with special parsing on.
 */
#pragma once
#include "qp_status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct qp_chat;

/* Creates a chat for template tmpl (the GGUF's tokenizer.chat_template; NULL or empty means
 * the model has none). system: the system message; NULL = the template's default, "" = an
 * empty system message. QP_ERR_UNSUPPORTED with a message naming the supported format when
 * tmpl is not ChatML; QP_ERR_NOMEM. */
enum qp_status qp_chat_init(const char *tmpl, const char *system, struct qp_chat **out,
                            struct qp_error *err);
void qp_chat_free(struct qp_chat *c); /* NULL is fine */

/* The template's default system message, or NULL when it has none. Owned by c. */
const char *qp_chat_default_system(const struct qp_chat *c);

/* Renders the next user turn: the first call gives the system message, the user message and
 * the assistant header; later calls first close the previous assistant reply (whose end token
 * was generated but never fed to the model) with "<|im_end|>\n", then the user message and the
 * assistant header. Returns a string owned by c, valid until the next call. NULL only when out
 * of memory (err says so). */
const char *qp_chat_next_turn(struct qp_chat *c, const char *user, struct qp_error *err);

/* Number of turns rendered so far. */
int qp_chat_turns(const struct qp_chat *c);

/* One message of a whole conversation (an OpenAI-style request). */
struct qp_chat_msg {
    const char *role;    /* "system", "user" or "assistant" */
    const char *content; /* UTF-8, NUL-terminated */
};

/* Renders a whole conversation with template tmpl as ChatML: each message as
 * "<|im_start|>role\ncontent<|im_end|>\n", the template's default system message first when the
 * conversation opens without one (as the template itself does), then "<|im_start|>assistant\n"
 * for the reply. *out is malloc'd (the caller frees). QP_ERR_UNSUPPORTED as qp_chat_init;
 * QP_ERR_INVALID for a role other than the three (the message names its index); QP_ERR_NOMEM. */
enum qp_status qp_chat_render(const char *tmpl, const struct qp_chat_msg *m, int n, char **out,
                              struct qp_error *err);

#ifdef __cplusplus
}
#endif
