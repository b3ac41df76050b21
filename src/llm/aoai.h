/* aoai.h -- the Azure OpenAI / OpenAI chat-completions wire format.
 *
 * The external contract relied on:
 *  - azure:    POST {url}/openai/deployments/{deployment}/chat/completions
 *              ?api-version={v}, header `api-key: KEY`.
 *  - azure-v1: POST {url}/openai/v1/chat/completions, `api-key: KEY`,
 *              body `model` = deployment.
 *  - openai:   POST {url}/chat/completions, `Authorization: Bearer KEY`,
 *              body `model` = configured model.
 *  - Request: {"messages":[{"role","content"}], "max_tokens",
 *    "temperature", "n" (only when more than one), "stream",
 *    "stream_options":{"include_usage":true}}.
 *  - Reply: {"model", "choices":[{"index", "message":{"content"},
 *    "finish_reason"}] (one choice per `n`, in any order: sorted by index;
 *    an endpoint that ignores `n` sends one),
 *    "usage":{"prompt_tokens","completion_tokens","total_tokens",
 *    "prompt_tokens_details":{"cached_tokens"}}} (cached: Azure's prompt cache).
 *  - Stream: SSE events whose data is a chat.completion.chunk
 *    ({"choices":[{"delta":{"content"}, "finish_reason"}], "usage"}) or
 *    "[DONE]"; Azure's first chunk may have empty `choices`.
 *  - Errors: {"error":{"code","message", "innererror"?}} with the status.
 * Pure: bytes in, values out.
 */
#ifndef CONVBI_LLM_AOAI_H
#define CONVBI_LLM_AOAI_H

#include <stdint.h>

#include "llm/config.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/limits.h"

#define AOAI_MAX_CHOICES 16 /* choices read from one reply */

struct chat_msg {
	const char *role; /* "system", "user", "assistant" */
	const char *content;
};

struct chat_req {
	const struct chat_msg *msgs;
	size_t n;
	int max_tokens;     /* 0 = not sent */
	double temperature; /* < 0 = not sent */
	int stream;
	int choices; /* `n`; sent only when > 1 */
};

struct aoai_reply {
	struct buf content;                /* owned; the assistant text (the first choice) */
	char *extra[AOAI_MAX_CHOICES - 1]; /* owned: the other choices' texts, by index */
	int nextra;
	char model[96];
	char finish_reason[32];
	int64_t prompt_tokens, completion_tokens; /* -1 = not reported */
	int64_t cached_tokens;                    /* of prompt_tokens, served from the prompt cache; 0 if not reported */
	int done;                                 /* stream: [DONE] seen */
};

struct aoai_error {
	char code[64];     /* error.code, "" if none */
	char message[400]; /* error.message, one line, "" if none */
};

int aoai_url(struct buf *out, const struct ep_cfg *ep);
/* The auth header line; empty when the endpoint has no key. */
int aoai_auth_header(struct buf *out, const struct ep_cfg *ep);
int aoai_body(struct buf *out, const struct ep_cfg *ep, const struct chat_req *req);

void aoai_reply_init(struct aoai_reply *r);
void aoai_reply_release(struct aoai_reply *r);
/* Parses a whole non-streamed reply; CONVBI_EPROTOCOL when malformed. */
int aoai_parse_reply(struct aoai_reply *out, const char *body, size_t len, struct err *err);
/* Applies one SSE data payload; *delta and *dlen point at the new text inside
 * out->content (dlen 0 if none).  CONVBI_EPROTOCOL when malformed. */
int aoai_parse_chunk(struct aoai_reply *out, const char *data, size_t len, const char **delta, size_t *dlen, struct err *err);
/* The numbers in a context-length refusal, 0 when absent.  Azure's two
 * wordings: "This model's maximum context length is N tokens. However,
 * your messages resulted in M tokens." and "... However, you requested M
 * tokens (P in the messages, C in the completion)."; and the newer "Input
 * tokens exceed the configured limit of N tokens. Your messages resulted
 * in M tokens."  limit = N, used = M. */
void aoai_context_numbers(const char *message, int64_t *limit, int64_t *used);
/* 1 when an error's code or message says the prompt is longer than the
 * model's context. */
int aoai_is_context_length(const struct aoai_error *e);
/* Best effort: fills code/message from an error body. */
void aoai_parse_error(struct aoai_error *out, const char *body, size_t len);

#endif
