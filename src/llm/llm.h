/* llm.h -- the one door to the model: every chat completion goes here.
 *
 * llm_chat picks an endpoint from the shared pool (priority tiers, shared
 * weighted round-robin, skipping cooling, circuit-open and out-of-budget
 * endpoints), sends the request, classifies the outcome, reports it to the
 * pool (cooldowns from rate-limit headers, breaker, budgets) and on a
 * retryable failure fails over to another endpoint at once.  It sleeps only
 * when every endpoint is cooling, and only until the earliest is free, all
 * within one deadline per call.  Content-filter, context-length and other
 * 400 replies are never retried.  A streamed answer that is cut, stalls or
 * carries a malformed chunk fails that attempt (never a truncated
 * success); the caller's on_delta sees a reset (on_retry with
 * restarted_stream = 1) before the next attempt streams from scratch.
 * Thread-safe: one struct llm serves many threads.
 */
#ifndef CONVBI_LLM_LLM_H
#define CONVBI_LLM_LLM_H

#include <stdint.h>

#include "llm/aoai.h"
#include "llm/config.h"
#include "util/buf.h"
#include "util/err.h"

#define LLM_MAX_ATTEMPTS_RECORDED 32
#define LLM_MAX_CHOICES AOAI_MAX_CHOICES /* completions one request may ask for */
/* The least of a call's deadline an attempt needs, in ms: a call waits for
 * an endpoint to free up (a cooldown, a paced slot) only when this much of
 * its deadline is left after the wait; otherwise it fails at once with
 * ERATELIMIT, saying so. */
#define LLM_ATTEMPT_MIN_MS 100

/* The class of one attempt's outcome (stable strings in results). */
enum llm_class {
	LLM_OK,
	LLM_RATE_LIMITED, /* 429 */
	LLM_SERVER_ERROR, /* 5xx, 408, 409 */
	LLM_TIMEOUT,      /* connect, first byte, idle */
	LLM_TRANSPORT,    /* refused, reset, TLS */
	LLM_STREAM_ERROR, /* cut, stalled, malformed chunk */
	LLM_AUTH,         /* 401, 403 */
	LLM_NOT_FOUND,    /* 404, DeploymentNotFound */
	LLM_CONTENT_FILTER,
	LLM_CONTEXT_LENGTH,
	LLM_BAD_REQUEST, /* other 4xx */
	LLM_PROTOCOL,    /* malformed reply */
	LLM_TOO_BIG,     /* reply over the size cap */
	LLM_CANCELED,
	LLM_DEADLINE,
	LLM_NOMEM, /* out of memory on our side */
	LLM_BUDGET /* a spending budget refused the call (no request sent) */
};

struct llm_attempt {
	char endpoint[64];
	long status;            /* HTTP status, 0 = none */
	int cls;                /* enum llm_class */
	char error[200];        /* short description, "" on success */
	int64_t wait_ms;        /* cooldown set / time waited before it */
	const char *retry_from; /* header the retry time came from, or NULL */
	int64_t elapsed_ms;
	double cost_usd; /* what it cost by the endpoint's price (0 unless it succeeded) */
	/* Provenance from Azure's reply headers, "" when not sent: */
	char deployment[64];      /* x-ms-deployment-name: the deployment that served it */
	char spillover_from[64];  /* x-ms-spillover-from-deployment: the one that spilled it */
	char spillover_error[16]; /* x-ms-spillover-error: the status that made it spill */
	char region[48];          /* x-ms-region */
	char request_id[64];      /* apim-request-id: what Azure support asks for */
};

struct llm_request {
	const struct chat_msg *msgs;
	size_t n;
	int max_tokens;     /* 0 = model default */
	double temperature; /* < 0 = model default */
	int stream;
	int choices;     /* completions wanted (OpenAI's `n`; not with
	                              stream); 0 or 1 = one.  An endpoint may
	                              return fewer: see llm_reply.nextra */
	int deadline_ms; /* 0 = the config's retry.deadline_ms */
	/* Streamed text deltas; non-zero return cancels. */
	int (*on_delta)(void *payload, const char *text, size_t len);
	/* Told about each failed attempt once the client knows what comes
	 * next: next = the endpoint the next attempt goes to, or NULL when it
	 * first waits (every endpoint cooling or paced). */
	void (*on_retry)(void *payload, const struct llm_attempt *a, int restarted_stream, const char *next);
	int (*cancel)(void *payload);
	void *payload;
};

/* The one line a retry event carries: "[stream restarted: ]ERROR;
 * retrying on NEXT" (or "; waiting for an endpoint" when next is NULL).
 * Returns its length (cut to size - 1). */
int llm_retry_text(char *out, size_t size, const struct llm_attempt *a, int restarted_stream, const char *next);

struct llm_reply {
	char *content;                    /* owned; the first choice */
	char *extra[LLM_MAX_CHOICES - 1]; /* owned: the other choices, in order */
	int nextra;
	char endpoint[64]; /* who answered ("" on failure) */
	char model[96];
	int64_t prompt_tokens, completion_tokens;
	int64_t cached_tokens; /* of prompt_tokens, from the prompt cache */
	double cost_usd;       /* by the answering endpoint's price; 0 if reserved or unpriced */
	int reserved;          /* answered by a reserved (PTU) endpoint */
	struct llm_attempt attempts[LLM_MAX_ATTEMPTS_RECORDED];
	size_t nattempts;
	int64_t elapsed_ms;
	int cls;               /* class of the final outcome */
	int64_t context_limit; /* context-length refusal: the window refused (tokens), 0 = not known */
	int64_t context_used;  /* ... and the tokens the request took by the service's count, 0 = not said */
};

struct llm;

int llm_open(struct llm **out, struct llm_config *cfg, struct err *err); /* takes cfg */
void llm_close(struct llm *l);
/* One chat completion.  out is filled also on failure (attempts). */
int llm_chat(struct llm *l, const struct llm_request *req, struct llm_reply *out, struct err *err);
void llm_reply_release(struct llm_reply *r);
const char *llm_class_name(int cls);
/* Appends the reply as JSON: content, endpoint, model, usage (with
 * cached_tokens), cost_usd, reserved, attempts, elapsed_ms (and error,
 * error_class when status != OK). */
int llm_reply_json(struct buf *out, const struct llm_reply *r, int status, const char *errmsg);
int llm_attempts_json(struct buf *out, const struct llm_attempt *a, size_t n);
/* Appends the attempt's provenance as JSON members, each only when the
 * service sent it: ,"deployment_name", ,"spillover_from_deployment",
 * ,"spillover_error", ,"region", ,"apim_request_id" (all strings). */
int llm_attempt_provenance_json(struct buf *out, const struct llm_attempt *a);
/* The endpoints and their live state as a JSON array; with each one's
 * price, reserved, budget and what it spent today and this month (UTC). */
int llm_endpoints_json(struct llm *l, struct buf *out);
/* The whole configuration's budget and spending, every process's:
 * {"budget":{"daily","monthly"}|null,"spent_today_usd","spent_month_usd"}. */
int llm_spend_json(struct llm *l, struct buf *out);
/* Clears the shared state (cooldowns, breaker, budgets, learned rates,
 * statistics) of the endpoint called name, or of every endpoint for NULL,
 * for every process sharing it; appends to out a JSON array of what each
 * held before.  Returns CONVBI_OK, CONVBI_EINVAL for an unknown name (the
 * message lists the names), CONVBI_ENOMEM. */
int llm_endpoints_reset(struct llm *l, const char *name, struct buf *out, struct err *err);
const struct llm_config *llm_config_of(const struct llm *l);

#endif
