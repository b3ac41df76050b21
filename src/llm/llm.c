/* llm.c -- the one door to the model (see llm.h).
 *
 * One call = a loop of attempts within one deadline:
 *   pick (pool) -> send (http) -> classify -> report (pool) -> decide.
 * Within a call, an endpoint that was silent (timeout, stall), refused our
 * key or deployment, is excluded for good ("hard"); one that failed
 * otherwise (5xx, reset, cut stream) is excluded until every other
 * endpoint was tried ("soft"), after which a short exponential backoff
 * precedes another round.  Rate-limited endpoints are not excluded here:
 * the pool's shared cooldown keeps every process away from them until the
 * retry time passes.  An endpoint held back by its pacing alone hands us
 * its next slot (pool_pick_ahead): we sleep until it starts and go, unless
 * the endpoint went cooling meanwhile.  When the pool says everything is
 * cooling or out of budget, we sleep until the earliest endpoint frees up
 * (with jitter), if that is within the deadline; otherwise the call fails
 * at once with ERATELIMIT, saying until when and what the deadline is.  A rate limit never spends
 * the retry budget: max_attempts bounds the attempts that failed
 * otherwise, and 429s and waits are bounded by the deadline alone.
 */
#include "llm/llm.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "convbi/convbi.h"
#include "http/http.h"
#include "http/ratelimit.h"
#include "http/sse.h"
#include "llm/backoff.h"
#include "llm/budget.h"
#include "llm/pool.h"
#include "llm/state.h"
#include "llm/token.h"
#include "util/alloc.h"
#include "util/clock.h"

#define LLM_ERROR_BODY_MAX (64u << 10) /* error bodies kept for their reason */
#define LLM_SSE_EVENT_MAX (1u << 20)   /* one SSE event */
#define LLM_HEADER_LINE_MAX 1024
#define LLM_BUDGET_POLL_MS 50 /* a wait for holds of calls in flight asks the budget again after 50-100 ms */

struct llm {
	struct llm_config cfg;    /* owned */
	struct http_client *http; /* owned */
	struct pool *pool;        /* owned */
	char **urls;              /* owned; per endpoint */
	char **auth;              /* owned; per endpoint auth header line (secret); "" with a token */
	char **spill;             /* owned; per endpoint "x-ms-spillover-deployment: D" line, or NULL */
	struct token_src **srcs;  /* owned; one per distinct Entra ID identity */
	size_t nsrcs;
	struct token_src **tok; /* owned array of borrowed srcs: per endpoint, NULL = its key */
	pthread_mutex_t last_lock;
	int *last_cls;              /* owned; per endpoint, class of its last attempt here */
	_Atomic int64_t *est_scale; /* owned; per endpoint, budget_scale_next's calibration of cost estimates */
	char (*last_err)[200];      /* owned; per endpoint, its last error text */
};

static const char *const class_names[] = {
        "ok",      "rate_limited", "server_error",   "timeout",        "transport",   "stream_error",
        "auth",    "not_found",    "content_filter", "context_length", "bad_request", "protocol",
        "too_big", "canceled",     "deadline",       "out_of_memory",  "budget"};

const char *llm_class_name(int cls)
{
	return cls >= 0 && cls <= LLM_BUDGET ? class_names[cls] : "?";
}

const struct llm_config *llm_config_of(const struct llm *l)
{
	return &l->cfg;
}

void llm_close(struct llm *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->cfg.n; i++) {
		if (l->urls)
			free(l->urls[i]);
		if (l->auth && l->auth[i]) {
			memset(l->auth[i], 0, strlen(l->auth[i]));
			free(l->auth[i]);
		}
	}
	for (size_t i = 0; l->spill && i < l->cfg.n; i++)
		free(l->spill[i]);
	free(l->spill);
	free(l->urls);
	free(l->auth);
	for (size_t i = 0; i < l->nsrcs; i++)
		token_src_close(l->srcs[i]);
	free(l->srcs);
	free(l->tok);
	free(l->last_cls);
	free((void *)l->est_scale);
	free(l->last_err);
	pthread_mutex_destroy(&l->last_lock);
	pool_leave(l->pool, clock_wall_ms());
	pool_close(l->pool);
	http_client_free(l->http);
	config_release(&l->cfg);
	free(l);
}

/* Where the Entra ID token cache files go: beside the shared state file
 * (the configured state.path, else the default one); NULL in *out for
 * state kept in this process only (backend "memory"). */
static int token_cache_dir(char **out, const struct state_cfg *s, const struct state_shape *shape)
{
	char def[4096];
	*out = NULL;
	if (s->backend && !strcmp(s->backend, "memory"))
		return CONVBI_OK;
	const char *path = s->path;
	if (!path) {
		if (state_default_path(def, sizeof def, shape))
			return CONVBI_OK;
		path = def;
	}
	const char *slash = strrchr(path, '/');
	*out = slash ? xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : xstrdup(".");
	return *out ? CONVBI_OK : CONVBI_ENOMEM;
}

/* One token source per distinct identity, shared by its endpoints; their
 * identity strings go to tok_ident (owned by the caller). */
static int open_tokens(struct llm *l, const struct state_shape *shape, char **tok_ident, struct err *err)
{
	char *dir = NULL;
	struct buf b = BUF_INIT;
	int rc = CONVBI_OK, have_dir = 0;
	for (size_t i = 0; i < l->cfg.n && !rc; i++) {
		const struct auth_cfg *a = &l->cfg.eps[i].auth;
		if (a->type == AUTH_API_KEY)
			continue;
		if (!have_dir && (rc = token_cache_dir(&dir, &l->cfg.state, shape)))
			break;
		have_dir = 1;
		buf_reset(&b);
		if ((rc = token_identity(&b, a)) || !(tok_ident[i] = xstrdup(b.data))) {
			rc = CONVBI_ENOMEM;
			break;
		}
		for (size_t j = 0; j < i && !l->tok[i]; j++)
			if (tok_ident[j] && !strcmp(tok_ident[j], tok_ident[i]))
				l->tok[i] = l->tok[j];
		if (l->tok[i])
			continue;
		if ((rc = token_src_open(&l->srcs[l->nsrcs], a, dir, l->http, &l->cfg.retry, err)))
			break;
		l->tok[i] = l->srcs[l->nsrcs++];
	}
	free(dir);
	buf_release(&b);
	if (rc == CONVBI_ENOMEM)
		err_code(err, rc);
	return rc;
}

int llm_open(struct llm **out, struct llm_config *cfg, struct err *err)
{
	int rc;
	struct pool_ep_cfg *peps = NULL;
	struct buf b = BUF_INIT;
	struct llm *l = xcalloc(1, sizeof *l);
	*out = NULL;
	if (!l) {
		config_release(cfg);
		return err_code(err, CONVBI_ENOMEM);
	}
	l->cfg = *cfg;
	memset(cfg, 0, sizeof *cfg);
	pthread_mutex_init(&l->last_lock, NULL);
	size_t n = l->cfg.n;
	l->last_cls = xcalloc(n, sizeof *l->last_cls);
	l->est_scale = xcalloc(n, sizeof *l->est_scale);
	for (size_t i = 0; l->est_scale && i < n; i++)
		atomic_init(&l->est_scale[i], BUDGET_SCALE_ONE);
	l->last_err = xcalloc(n, sizeof *l->last_err);
	l->urls = xcalloc(n, sizeof *l->urls);
	l->auth = xcalloc(n, sizeof *l->auth);
	l->spill = xcalloc(n, sizeof *l->spill);
	l->srcs = xcalloc(n, sizeof *l->srcs);
	l->tok = xcalloc(n, sizeof *l->tok);
	peps = xcalloc(n, sizeof *peps);
	char **ident = xcalloc(n, sizeof *ident);
	char **tok_ident = xcalloc(n, sizeof *tok_ident);
	if (!l->urls || !l->auth || !peps || !ident || !tok_ident || !l->last_cls || !l->est_scale || !l->last_err || !l->srcs ||
	    !l->tok || !l->spill) {
		rc = err_code(err, CONVBI_ENOMEM);
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		const struct ep_cfg *e = &l->cfg.eps[i];
		buf_reset(&b);
		if ((rc = aoai_url(&b, e)) || !(l->urls[i] = xstrdup(b.data)))
			goto nomem;
		buf_reset(&b);
		if ((rc = aoai_auth_header(&b, e)) || !(l->auth[i] = xstrdup(buf_str(&b))))
			goto nomem;
		buf_reset(&b);
		if (e->spillover_deployment && e->kind != EP_OPENAI &&
		    (buf_printf(&b, "x-ms-spillover-deployment: %s", e->spillover_deployment) ||
		     !(l->spill[i] = xstrdup(b.data))))
			goto nomem;
		buf_reset(&b);
		if (buf_printf(&b, "%s|%s|%s", e->url, e->deployment ? e->deployment : "", e->model ? e->model : "") ||
		    !(ident[i] = xstrdup(b.data)))
			goto nomem;
		peps[i] = (struct pool_ep_cfg){e->name, ident[i], e->priority, e->weight, e->rpm, e->tpm};
	}
	if ((rc = http_client_new(&l->http, err)))
		goto done;
	struct state_shape shape;
	struct state *st = NULL;
	if ((rc = pool_shape(&shape, peps, n, err)) || (rc = state_open(&st, &l->cfg.state, &shape, err)) ||
	    (rc = pool_open_state(&l->pool, peps, n, st, err)) || (rc = open_tokens(l, &shape, tok_ident, err)))
		goto done;
	for (size_t i = 0; i < n; i++) {
		const char *k = l->tok[i] ? tok_ident[i] : l->auth[i]; /* a token rotates: its identity is the "key" */
		pool_set_key(l->pool, (int)i, k, strlen(k));
	}
	*out = l;
	l = NULL;
	rc = CONVBI_OK;
	goto done;
nomem:
	rc = err_code(err, CONVBI_ENOMEM);
done:
	if (b.data)
		memset(b.data, 0, b.len);
	buf_release(&b);
	if (ident)
		for (size_t i = 0; i < n; i++)
			free(ident[i]);
	free(ident);
	if (tok_ident)
		for (size_t i = 0; i < n; i++)
			free(tok_ident[i]);
	free(tok_ident);
	free(peps);
	llm_close(l);
	return rc;
}

void llm_reply_release(struct llm_reply *r)
{
	if (!r)
		return;
	free(r->content);
	r->content = NULL;
	for (int i = 0; i < r->nextra; i++)
		free(r->extra[i]);
	r->nextra = 0;
}

/* ---- one attempt --------------------------------------------------------- */

struct attempt_ctx {
	const struct llm_request *req;
	struct rl_info rl;
	struct sse_parser sse;
	struct aoai_reply reply;
	struct buf body;  /* non-stream body or error body */
	struct err proto; /* why our callback aborted */
	int proto_cls;    /* class for that abort */
	int is_sse;       /* response is text/event-stream */
	int streamed;     /* deltas were given to on_delta */
	int delta_cancel; /* on_delta asked to cancel */
	long status;      /* final HTTP status, once known */
	int64_t now_wall;
	struct llm_attempt *at; /* where the provenance headers go */
};

/* Copies a header value into a provenance field: printable ASCII only, so
 * that a terminal or a log line shows it as it is. */
static void keep_header(char *dst, size_t cap, const char *value, size_t vlen)
{
	size_t n = 0;
	for (size_t i = 0; i < vlen && n + 1 < cap; i++)
		dst[n++] = value[i] >= 0x20 && value[i] < 0x7f ? value[i] : '?';
	dst[n] = '\0';
}

static void on_header(void *payload, const char *name, size_t nlen, const char *value, size_t vlen)
{
	struct attempt_ctx *a = payload;
	static const struct {
		const char *name;
		size_t off, cap;
	} prov[] = {
	        {"x-ms-deployment-name", offsetof(struct llm_attempt, deployment), sizeof a->at->deployment},
	        {"x-ms-spillover-from-deployment", offsetof(struct llm_attempt, spillover_from), sizeof a->at->spillover_from},
	        {"x-ms-spillover-error", offsetof(struct llm_attempt, spillover_error), sizeof a->at->spillover_error},
	        {"x-ms-region", offsetof(struct llm_attempt, region), sizeof a->at->region},
	        {"apim-request-id", offsetof(struct llm_attempt, request_id), sizeof a->at->request_id},
	};
	if (nlen == 12 && !strncasecmp(name, "content-type", 12))
		a->is_sse = vlen >= 17 && !strncasecmp(value, "text/event-stream", 17);
	for (size_t i = 0; i < sizeof prov / sizeof prov[0]; i++)
		if (nlen == strlen(prov[i].name) && !strncasecmp(name, prov[i].name, nlen))
			keep_header((char *)a->at + prov[i].off, prov[i].cap, value, vlen);
	rl_feed_header(&a->rl, name, nlen, value, vlen, a->now_wall);
}

static int on_event(const char *event, const char *data, size_t len, void *payload)
{
	struct attempt_ctx *a = payload;
	const char *delta;
	size_t dlen;
	if (event && *event && !strcmp(event, "error")) {
		err_set(&a->proto, CONVBI_EPROTOCOL, "the stream carried an error event");
		a->proto_cls = LLM_STREAM_ERROR;
		return 1;
	}
	int rc = aoai_parse_chunk(&a->reply, data, len, &delta, &dlen, &a->proto);
	if (rc) {
		a->proto_cls = rc == CONVBI_ETOOBIG ? LLM_TOO_BIG : rc == CONVBI_ENOMEM ? LLM_NOMEM : LLM_STREAM_ERROR;
		if (rc == CONVBI_EPROTOCOL)
			err_prefix(&a->proto, "malformed stream chunk: ");
		return 1;
	}
	if (dlen && a->req->on_delta) {
		a->streamed = 1;
		if (a->req->on_delta(a->req->payload, delta, dlen)) {
			a->delta_cancel = 1;
			return 1;
		}
	}
	return 0;
}

static int on_body(void *payload, long status, const char *data, size_t n)
{
	struct attempt_ctx *a = payload;
	a->status = status;
	if (a->status == 200 && a->is_sse) {
		int rc = sse_feed(&a->sse, data, n, on_event, a);
		if (rc && !a->proto_cls && !a->delta_cancel) {
			/* The parser itself failed (not our callback). */
			a->proto_cls = rc == CONVBI_ENOMEM ? LLM_NOMEM : LLM_STREAM_ERROR;
			err_set(&a->proto, rc, rc == CONVBI_ENOMEM ? "out of memory" : "a stream event exceeds %u bytes",
			        LLM_SSE_EVENT_MAX);
		}
		return rc ? 1 : 0;
	}
	int rc = buf_add(&a->body, data, n);
	if (rc == CONVBI_ETOOBIG && a->status != 200)
		return 0; /* keep the head of a huge error body */
	if (rc) {
		err_set(&a->proto, rc, rc == CONVBI_ETOOBIG ? "the model's reply is larger than %zu bytes" : "out of memory",
		        AOAI_MAX_REPLY_BYTES);
		a->proto_cls = rc == CONVBI_ETOOBIG ? LLM_TOO_BIG : LLM_NOMEM;
		return 1;
	}
	return 0;
}

static int on_cancel(void *payload)
{
	struct attempt_ctx *a = payload;
	return a->req->cancel && a->req->cancel(a->req->payload);
}

static int classify_status(long status, const struct aoai_error *ae)
{
	if (status == 429)
		return LLM_RATE_LIMITED;
	if (status == 408 || status == 409 || status >= 500)
		return LLM_SERVER_ERROR;
	if (status == 401 || status == 403)
		return LLM_AUTH;
	if (status == 404)
		return LLM_NOT_FOUND;
	if (!strcmp(ae->code, "content_filter") || strstr(ae->message, "content management policy"))
		return LLM_CONTENT_FILTER;
	if (aoai_is_context_length(ae))
		return LLM_CONTEXT_LENGTH;
	return LLM_BAD_REQUEST;
}

static int classify_fail(int fail)
{
	switch (fail) {
	case HTTP_FAIL_CONNECT_TIMEOUT:
	case HTTP_FAIL_FIRST_BYTE_TIMEOUT:
	case HTTP_FAIL_IDLE_TIMEOUT: return LLM_TIMEOUT;
	case HTTP_FAIL_DEADLINE: return LLM_DEADLINE;
	case HTTP_FAIL_CANCELED: return LLM_CANCELED;
	case HTTP_FAIL_PARTIAL: return LLM_STREAM_ERROR;
	default: return LLM_TRANSPORT;
	}
}

static int pool_class_of(int cls)
{
	switch (cls) {
	case LLM_OK: return POOL_OK;
	case LLM_RATE_LIMITED: return POOL_RATE_LIMITED;
	case LLM_SERVER_ERROR:
	case LLM_PROTOCOL: return POOL_SERVER;
	case LLM_TIMEOUT:
	case LLM_TRANSPORT:
	case LLM_STREAM_ERROR: return POOL_TRANSPORT;
	case LLM_AUTH:
	case LLM_NOT_FOUND: return POOL_BROKEN;
	default: return POOL_CLIENT;
	}
}

/* Sends one attempt to endpoint ep and fills the attempt record, the pool
 * outcome and, on success, the reply. */
/* scheme://host[:port] of an endpoint's URL, for messages about reaching
 * it: user info, path and query are left out (they may hold secrets). */
static void url_origin(char *out, size_t n, const char *url)
{
	const char *p = strstr(url ? url : "", "://");
	const char *host = p ? p + 3 : url ? url : "";
	const char *at = host + strcspn(host, "/?#");
	const char *user = memchr(host, '@', (size_t)(at - host));
	if (user)
		host = user + 1;
	snprintf(out, n, "%.*s%.*s", p ? (int)(p + 3 - url) : 0, url ? url : "", (int)(at - host), host);
}

static int run_attempt(struct llm *l, int ep, const struct llm_request *req, const char *body, size_t body_len,
                       int64_t deadline_mono, const char *auth, struct llm_attempt *at, struct pool_outcome *po,
                       struct aoai_reply *reply_out)
{
	const struct ep_cfg *e = &l->cfg.eps[ep];
	struct attempt_ctx a;
	memset(&a, 0, sizeof a);
	memset(at, 0, sizeof *at);
	a.at = at;
	a.req = req;
	a.now_wall = clock_wall_ms();
	rl_init(&a.rl);
	sse_init(&a.sse, LLM_SSE_EVENT_MAX);
	aoai_reply_init(&a.reply);
	buf_init(&a.body, AOAI_MAX_REPLY_BYTES);
	err_clear(&a.proto);

	const char *headers[4];
	size_t nh = 0;
	headers[nh++] = "Content-Type: application/json";
	if (l->spill[ep])
		headers[nh++] = l->spill[ep];
	if (auth && auth[0])
		headers[nh++] = auth;
	if (req->stream)
		headers[nh++] = "Accept: text/event-stream";
	struct http_result res;
	struct http_call call = {.url = l->urls[ep],
	                         .headers = headers,
	                         .nheaders = nh,
	                         .body = body,
	                         .body_len = body_len,
	                         .connect_timeout_ms = l->cfg.retry.connect_timeout_ms,
	                         .first_byte_timeout_ms = l->cfg.retry.first_byte_timeout_ms,
	                         .idle_timeout_ms = l->cfg.retry.idle_timeout_ms,
	                         .deadline_mono_ms = deadline_mono,
	                         .on_header = on_header,
	                         .on_body = on_body,
	                         .cancel = on_cancel,
	                         .payload = &a};
	int hrc = http_post(l->http, &call, &res);
	int cls = LLM_OK;
	struct aoai_error ae;
	memset(&ae, 0, sizeof ae);
	snprintf(at->endpoint, sizeof at->endpoint, "%s", e->name);
	at->status = res.status;
	at->elapsed_ms = res.total_ms;
	at->error[0] = '\0';
	at->retry_from = NULL;
	at->wait_ms = 0;
	if (hrc == CONVBI_ENOMEM) {
		cls = LLM_NOMEM;
		snprintf(at->error, sizeof at->error, "out of memory");
	} else if (res.fail == HTTP_FAIL_ABORTED && a.delta_cancel) {
		cls = LLM_CANCELED;
		snprintf(at->error, sizeof at->error, "canceled by the caller");
	} else if (res.fail == HTTP_FAIL_ABORTED) {
		cls = a.proto_cls ? a.proto_cls : LLM_PROTOCOL;
		snprintf(at->error, sizeof at->error, "%s", a.proto.msg[0] ? a.proto.msg : "the reply could not be read");
	} else if (res.fail) {
		cls = classify_fail(res.fail);
		if (cls == LLM_STREAM_ERROR)
			snprintf(at->error, sizeof at->error, "the %s was cut before its end (%s)", a.is_sse ? "stream" : "reply",
			         res.detail);
		else if (res.fail == HTTP_FAIL_FIRST_BYTE_TIMEOUT)
			snprintf(at->error, sizeof at->error, "no response within %d ms", l->cfg.retry.first_byte_timeout_ms);
		else if (res.fail == HTTP_FAIL_IDLE_TIMEOUT)
			snprintf(at->error, sizeof at->error, "the %s stalled for %d ms", a.is_sse ? "stream" : "reply",
			         l->cfg.retry.idle_timeout_ms);
		else if (res.fail == HTTP_FAIL_CONNECT || res.fail == HTTP_FAIL_CONNECT_TIMEOUT || res.fail == HTTP_FAIL_TLS) {
			char where[120];
			url_origin(where, sizeof where, l->cfg.eps[ep].url);
			snprintf(at->error, sizeof at->error, "%s%s%s (%s)", http_fail_name(res.fail), res.detail[0] ? ": " : "",
			         res.detail, where);
		} else
			snprintf(at->error, sizeof at->error, "%s%s%s", http_fail_name(res.fail), res.detail[0] ? ": " : "",
			         res.detail);
	} else if (res.status != 200) {
		aoai_parse_error(&ae, buf_str(&a.body), a.body.len);
		cls = classify_status(res.status, &ae);
		if (atol(ae.code) == res.status)
			ae.code[0] = '\0'; /* "HTTP 429 429: ..." says nothing more */
		snprintf(at->error, sizeof at->error, "HTTP %ld%s%s%s%s", res.status, ae.code[0] ? " " : "", ae.code,
		         ae.message[0] ? ": " : "", ae.message);
	} else if (a.is_sse) {
		int partial = 0;
		sse_finish(&a.sse, &partial);
		if (partial && !a.reply.done) {
			cls = LLM_STREAM_ERROR;
			snprintf(at->error, sizeof at->error, "the stream ended in the middle of an event");
		} else if (!a.reply.done && !a.reply.finish_reason[0]) {
			cls = LLM_STREAM_ERROR;
			snprintf(at->error, sizeof at->error, "the stream ended without a finish reason or [DONE]");
		}
	} else {
		struct err perr = ERR_INIT;
		int prc = aoai_parse_reply(&a.reply, buf_str(&a.body), a.body.len, &perr);
		if (prc) {
			cls = prc == CONVBI_ETOOBIG ? LLM_TOO_BIG : prc == CONVBI_ENOMEM ? LLM_NOMEM : LLM_PROTOCOL;
			snprintf(at->error, sizeof at->error, "%s", perr.msg);
		}
	}
	if (cls == LLM_OK && !strcmp(a.reply.finish_reason, "content_filter")) {
		cls = LLM_CONTENT_FILTER;
		snprintf(at->error, sizeof at->error, "the service's content filter stopped the reply");
	}
	at->cls = cls;

	enum rl_source src = RL_SOURCE_NONE;
	int64_t retry = rl_retry_after_ms(&a.rl, buf_str(&a.body), a.body.len, &src);
	if (cls == LLM_RATE_LIMITED && retry >= 0) {
		at->wait_ms = retry < STATE_WAIT_MAX_MS ? retry : STATE_WAIT_MAX_MS; /* as pool_report keeps it */
		at->retry_from = rl_source_name(src);
		if (retry > STATE_WAIT_MAX_MS) { /* said even when the service's text fills the line */
			char note[120];
			int k = snprintf(note, sizeof note,
			                 "; the service asks for a wait of %.1f days%s: out for %d days, the longest convbi "
			                 "keeps, then asked again",
			                 (double)retry / 86400000.0, retry >= RL_MAX_WAIT_MS ? " or more" : "",
			                 (int)(STATE_WAIT_MAX_MS / 86400000));
			size_t n = strlen(at->error), room = sizeof at->error - 1 - (size_t)k;
			snprintf(at->error + (n < room ? n : room), sizeof at->error - (n < room ? n : room), "%s", note);
		}
	}
	memset(po, 0, sizeof *po);
	po->cls = pool_class_of(cls);
	po->retry_after_ms = cls == LLM_RATE_LIMITED ? retry : -1;
	po->remaining_requests = a.rl.remaining_requests;
	po->remaining_tokens = a.rl.remaining_tokens;
	po->reset_requests_ms = a.rl.reset_requests_ms;
	po->reset_tokens_ms = a.rl.reset_tokens_ms;
	po->limit_requests = a.rl.limit_requests;
	po->limit_tokens = a.rl.limit_tokens;
	po->tokens_bound = cls == LLM_RATE_LIMITED && (strstr(at->error, "token rate limit") || a.rl.remaining_tokens == 0);
	po->auth = cls == LLM_AUTH;
	po->latency_ms = cls == LLM_OK ? (int64_t)res.total_ms : -1;
	po->tokens = a.reply.prompt_tokens >= 0
	                     ? a.reply.prompt_tokens + (a.reply.completion_tokens > 0 ? a.reply.completion_tokens : 0)
	                     : 0;

	if (cls == LLM_OK) {
		*reply_out = a.reply; /* moves the content buffer */
		aoai_reply_init(&a.reply);
	}
	if (a.streamed && cls != LLM_OK)
		at->status = at->status ? at->status : 200;
	int streamed = a.streamed;
	aoai_reply_release(&a.reply);
	buf_release(&a.body);
	sse_release(&a.sse);
	return streamed;
}

/* Zeroes a buffer that held a secret and frees it. */
static void wipe(struct buf *b)
{
	if (b->data)
		memset(b->data, 0, b->cap);
	buf_release(b);
}

/* Runs one attempt on endpoint ep with its credentials: its key, or a
 * token of its Entra ID identity.  A 401 to a token rejects that token and
 * tries once more with a fresh one at once (the refused attempt goes into
 * out's attempts and to on_retry).  When no token can be had, nothing is
 * sent: *no_send = 1 and at says why.  *refused counts the attempts
 * recorded here.  Returns what run_attempt returns. */
static int attempt_on(struct llm *l, int ep, const struct llm_request *req, const char *body, size_t len, int64_t deadline,
                      struct llm_attempt *at, struct pool_outcome *po, struct aoai_reply *reply, struct llm_reply *out,
                      int *no_send, int *refused)
{
	*no_send = 0;
	*refused = 0;
	if (!l->tok[ep])
		return run_attempt(l, ep, req, body, len, deadline, l->auth[ep], at, po, reply);
	for (int pass = 0;; pass++) {
		struct buf hdr = BUF_INIT;
		struct err terr = ERR_INIT;
		uint64_t fp = 0;
		int64_t t0 = clock_mono_ms();
		int rc = token_get(l->tok[ep], deadline, &hdr, &fp, &terr);
		if (rc) {
			wipe(&hdr);
			memset(at, 0, sizeof *at);
			memset(po, 0, sizeof *po);
			snprintf(at->endpoint, sizeof at->endpoint, "%s", l->cfg.eps[ep].name);
			at->cls = rc == CONVBI_ETIMEOUT ? LLM_DEADLINE : rc == CONVBI_ENOMEM ? LLM_NOMEM : LLM_AUTH;
			snprintf(at->error, sizeof at->error, "%s", terr.msg);
			at->elapsed_ms = clock_mono_ms() - t0;
			*no_send = 1;
			return 0;
		}
		int streamed = run_attempt(l, ep, req, body, len, deadline, hdr.data, at, po, reply);
		wipe(&hdr);
		if (pass > 0 || at->cls != LLM_AUTH || at->status != 401 || streamed)
			return streamed;
		token_reject(l->tok[ep], fp);
		(*refused)++;
		if (out->nattempts < LLM_MAX_ATTEMPTS_RECORDED)
			out->attempts[out->nattempts++] = *at;
		if (req->on_retry) /* the same endpoint, with a fresh token */
			req->on_retry(req->payload, at, 0, l->cfg.eps[ep].name);
	}
}

/* ---- the call loop ------------------------------------------------------- */

static void remember_outcome(struct llm *l, int ep, const struct llm_attempt *at)
{
	pthread_mutex_lock(&l->last_lock);
	l->last_cls[ep] = at->cls;
	snprintf(l->last_err[ep], sizeof l->last_err[ep], "%s", at->error);
	pthread_mutex_unlock(&l->last_lock);
}

/* Room kept in an auth message for err_set's prefix ("the model call
 * failed after N attempts (auth): "). */
#define BROKEN_PREFIX_ROOM 64

/* The fix for endpoint i's refused key, named in every auth message: the
 * endpoint, its URL and the reset command.  why (the service's text) is
 * cut short rather than the fix, so that the message still fits
 * ERR_MSG_MAX behind err_set's prefix. */
static void broken_hint(struct llm *l, size_t i, int every, char *msg, size_t cap, const char *why)
{
	const struct ep_cfg *e = &l->cfg.eps[i];
	char fix[ERR_MSG_MAX], url[256];
	secret_url_shown(url, sizeof url, e->url); /* never a password or a query's key */
	int n = e->auth.type != AUTH_API_KEY
	                ? snprintf(
	                          fix, sizeof fix,
	                          "; endpoint `%s` (%s): give its Entra ID identity (%s%s%s) the role \"Cognitive "
	                          "Services OpenAI User\" on the resource, check the deployment, then run `convbi endpoints --reset %s`",
	                          e->name, url, config_auth_name(e->auth.type), e->auth.client_id ? ", client id " : "",
	                          e->auth.client_id ? e->auth.client_id : "", e->name)
	        : every && l->cfg.n > 1
	                ? snprintf(fix, sizeof fix,
	                           "; endpoint `%s` (%s) and the others: check the keys, deployments and URLs in the "
	                           "configuration, then clear the shared cooldowns with `convbi endpoints --reset`",
	                           e->name, url)
	                : snprintf(fix, sizeof fix,
	                           "; endpoint `%s` (%s): check its key, deployment and URL in the configuration, "
	                           "then clear the shared cooldown with `convbi endpoints --reset %s`",
	                           e->name, url, e->name);
	size_t room = cap < ERR_MSG_MAX ? cap : ERR_MSG_MAX;
	int keep = (int)room - BROKEN_PREFIX_ROOM - n, len = (int)strlen(why);
	while (len > 0 && (why[len - 1] == '.' || why[len - 1] == ' '))
		len--; /* the service's sentence ends where ours goes on */
	keep = keep > 40 ? keep : 40;
	snprintf(msg, cap, "%.*s%s", len < keep ? len : keep, why, fix);
}

/* When a call ends without an answer because no endpoint is usable, the
 * reason may lie in other calls' attempts: if every endpoint's last
 * outcome in this process was a refused key or a missing deployment, say
 * so (EAUTH) instead of "cooling down".  Returns 1 and fills msg then. */
static int all_broken(struct llm *l, char *msg, size_t cap)
{
	char why[400];
	int broken = 1;
	pthread_mutex_lock(&l->last_lock);
	for (size_t i = 0; i < l->cfg.n && broken; i++)
		broken = l->last_cls[i] == LLM_AUTH || l->last_cls[i] == LLM_NOT_FOUND;
	if (broken)
		snprintf(why, sizeof why, "every endpoint rejects its key or deployment (%s)", l->last_err[0]);
	pthread_mutex_unlock(&l->last_lock);
	if (broken) {
		broken_hint(l, 0, 1, msg, cap, why);
		return 1;
	}
	/* Another process may have found them broken: the shared state says
	 * why each endpoint cools (and for which key). */
	int64_t now = clock_wall_ms(), soonest = INT64_MAX;
	size_t first = 0;
	for (size_t i = 0; i < l->cfg.n; i++) {
		struct pool_live lv;
		memset(&lv, 0, sizeof lv);
		pool_live_get(l->pool, (int)i, now, &lv);
		if (lv.cool_until_ms <= now || lv.cool_class != POOL_BROKEN || lv.key_fp_other)
			return 0;
		if (lv.cool_until_ms < soonest) {
			soonest = lv.cool_until_ms;
			first = i;
		}
	}
	snprintf(why, sizeof why,
	         "every endpoint refused its key or deployment (HTTP 401, 403 or 404) in a recent call "
	         "and is out for %lld s more",
	         (long long)((soonest - now) / 1000));
	broken_hint(l, first, 1, msg, cap, why);
	return 1;
}

/* When a call ends without an answer and every endpoint is out for a
 * reason other than a rate limit -- some refused their key or deployment
 * (BROKEN), the rest are down (breaker open, or cooling after a 5xx) --
 * "rate limited" would send the operator chasing quotas: say what each
 * endpoint is out for, with the fix of the first broken one.  Returns the
 * class to report (LLM_AUTH when one is broken, else LLM_TRANSPORT) and
 * fills msg, or 0 (msg untouched) when an endpoint is rate limited, paced
 * or usable, or none is broken. */
static int out_not_rate_limited(struct llm *l, char *msg, size_t cap)
{
	char why[ERR_MSG_MAX] = "";
	size_t n = 0, first_broken = l->cfg.n;
	int64_t now = clock_wall_ms();
	for (size_t i = 0; i < l->cfg.n; i++) {
		struct pool_live lv;
		memset(&lv, 0, sizeof lv);
		pool_live_get(l->pool, (int)i, now, &lv);
		int broken = lv.cool_until_ms > now && lv.cool_class == POOL_BROKEN && !lv.key_fp_other;
		int down = (lv.breaker == POOL_BREAKER_OPEN && lv.breaker_until_ms > now) ||
		           (lv.cool_until_ms > now && lv.cool_class == POOL_SERVER);
		if (!broken && !down)
			return 0; /* rate limited, paced or free: not this case */
		char last[sizeof l->last_err[0]];
		pthread_mutex_lock(&l->last_lock);
		memcpy(last, l->last_err[i], sizeof last);
		pthread_mutex_unlock(&l->last_lock);
		if (broken && first_broken == l->cfg.n)
			first_broken = i;
		int64_t until = broken                                   ? lv.cool_until_ms
		                : lv.breaker_until_ms > lv.cool_until_ms ? lv.breaker_until_ms
		                                                         : lv.cool_until_ms;
		int w = snprintf(why + n, sizeof why - n, "%s`%s` %s (%.60s%s), out for %lld s more", n ? "; " : "",
		                 l->cfg.eps[i].name, broken ? "refused its key or deployment" : "is down",
		                 last[0]  ? last
		                 : broken ? "HTTP 401, 403 or 404"
		                          : "failing",
		                 strlen(last) > 60 ? "..." : "", (long long)((until - now + 999) / 1000));
		if (w < 0 || (size_t)w >= sizeof why - n)
			break;
		n += (size_t)w;
	}
	if (first_broken == l->cfg.n)
		return 0;
	char text[ERR_MSG_MAX];
	snprintf(text, sizeof text, "every endpoint is out, none for a rate limit: %s", why);
	broken_hint(l, first_broken, 0, msg, cap, text);
	return LLM_AUTH;
}

/* "21:03:04.123 UTC" for a wall-clock time in ms, with its date in front
 * ("2026-12-08 21:03:04.123 UTC") when that is not today's (UTC) at now_ms:
 * a daily quota's reset is tomorrow. */
static void wall_str(char *out, size_t cap, int64_t wall_ms, int64_t now_ms)
{
	time_t t = (time_t)(wall_ms / 1000), now = (time_t)(now_ms / 1000);
	struct tm tm, today;
	gmtime_r(&t, &tm);
	gmtime_r(&now, &today);
	char date[16] = "";
	if (tm.tm_year != today.tm_year || tm.tm_yday != today.tm_yday)
		snprintf(date, sizeof date, "%04d-%02d-%02d ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
	snprintf(out, cap, "%s%02d:%02d:%02d.%03d UTC", date, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(wall_ms % 1000));
}

/* ERATELIMIT's message: until when, and the deadline it would miss --
 * before the wait ends, or too soon after it for an attempt
 * (LLM_ATTEMPT_MIN_MS). */
static void rate_limited_msg(char *out, size_t cap, int64_t wait_ms, int64_t deadline_left_ms)
{
	char until[48], deadline[48];
	int64_t now = clock_wall_ms();
	wall_str(until, sizeof until, now + wait_ms, now);
	wall_str(deadline, sizeof deadline, now + deadline_left_ms, now);
	snprintf(out, cap,
	         "every endpoint is rate limited until %s (%lld ms from now); the call's deadline is %s "
	         "(%lld ms from now)%s",
	         until, (long long)wait_ms, deadline, (long long)(deadline_left_ms > 0 ? deadline_left_ms : 0),
	         wait_ms < deadline_left_ms && wait_ms + LLM_ATTEMPT_MIN_MS > deadline_left_ms
	                 ? ", too soon after it for an attempt"
	                 : "");
}

/* The wait for an endpoint, when there is time for it: wait_ms with the
 * jitter that spreads the waiters (backoff_cooling_wait_ms), shortened so
 * that it ends at least LLM_ATTEMPT_MIN_MS before the deadline (never below
 * wait_ms itself); -1 when the endpoint frees up too late for an attempt
 * (the caller fails at once). */
static int64_t wait_within(int64_t wait_ms, int64_t deadline_left_ms)
{
	if (wait_ms + LLM_ATTEMPT_MIN_MS > deadline_left_ms)
		return -1;
	int64_t w = backoff_cooling_wait_ms(wait_ms, backoff_random());
	return w + LLM_ATTEMPT_MIN_MS > deadline_left_ms ? deadline_left_ms - LLM_ATTEMPT_MIN_MS : w;
}

static int is_retryable(int cls)
{
	switch (cls) {
	case LLM_RATE_LIMITED:
	case LLM_SERVER_ERROR:
	case LLM_TIMEOUT:
	case LLM_TRANSPORT:
	case LLM_STREAM_ERROR:
	case LLM_AUTH:
	case LLM_NOT_FOUND:
	case LLM_PROTOCOL: return 1;
	default: return 0;
	}
}

static int status_of_class(int cls)
{
	switch (cls) {
	case LLM_OK: return CONVBI_OK;
	case LLM_RATE_LIMITED: return CONVBI_ERATELIMIT;
	case LLM_CONTENT_FILTER: return CONVBI_EFILTERED;
	case LLM_CONTEXT_LENGTH: return CONVBI_ECONTEXT;
	case LLM_BAD_REQUEST: return CONVBI_EBADREQUEST;
	case LLM_AUTH:
	case LLM_NOT_FOUND: return CONVBI_EAUTH;
	case LLM_TOO_BIG: return CONVBI_ETOOBIG;
	case LLM_CANCELED: return CONVBI_ECANCELED;
	case LLM_DEADLINE: return CONVBI_ETIMEOUT;
	case LLM_NOMEM: return CONVBI_ENOMEM;
	case LLM_BUDGET: return CONVBI_EBUDGET;
	default: return CONVBI_ELLM;
	}
}

/* A context-length refusal from endpoint ep: the call may go on only to an
 * endpoint whose configured context_window is larger than ep's window (its
 * configured one, else the limit the refusal names) and, when the refusal
 * says how many tokens were asked for, no smaller than that -- never to
 * another of the same window.  Returns 1 and excludes every other endpoint
 * in *hard when there is one; 0 (last_err says why) when there is none.
 * Records the numbers in out for a caller that can shorten its prompt. */
static int context_failover(struct llm *l, int ep, const struct llm_attempt *at, struct llm_reply *out, uint64_t *hard,
                            char *last_err, size_t cap)
{
	int64_t limit = 0, used = 0;
	aoai_context_numbers(at->error, &limit, &used);
	int64_t window = l->cfg.eps[ep].context_window > 0 ? l->cfg.eps[ep].context_window : limit;
	out->context_limit = window;
	out->context_used = used;
	uint64_t larger = 0;
	for (size_t j = 0; window > 0 && j < l->cfg.n; j++) {
		int64_t w = l->cfg.eps[j].context_window;
		if (w > window && (used <= 0 || w >= used) && !(*hard & (1ull << j)))
			larger |= 1ull << j;
	}
	if (!larger) {
		size_t n = strlen(last_err);
		if (window > 0)
			snprintf(last_err + n, cap - n, "; no other endpoint has a context_window above %lld tokens%s",
			         (long long)window, used > 0 ? " that holds the request" : "");
		else
			snprintf(last_err + n, cap - n,
			         "; set `context_window` on the endpoints to let a larger one take such requests");
		return 0;
	}
	*hard |= ~larger;
	return 1;
}

/* Sleeps ms in short slices so a cancel is seen quickly; 1 if canceled. */
int llm_retry_text(char *out, size_t size, const struct llm_attempt *a, int restarted_stream, const char *next)
{
	int n = next ? snprintf(out, size, "%s%s; retrying on %s", restarted_stream ? "stream restarted: " : "", a->error, next)
	             : snprintf(out, size, "%s%s; waiting for an endpoint", restarted_stream ? "stream restarted: " : "",
	                        a->error);
	return n < 0 ? 0 : n > (int)size - 1 ? (int)size - 1 : n;
}

/* A failed attempt the caller hears of once the next step is known. */
struct pending_retry {
	int set;
	struct llm_attempt at;
	int streamed;
};

static void tell_retry(const struct llm_request *req, struct pending_retry *p, const char *next)
{
	if (p->set && req->on_retry)
		req->on_retry(req->payload, &p->at, p->streamed, next);
	p->set = 0;
}

static int sleep_checking(const struct llm_request *req, int64_t ms)
{
	int64_t end = clock_mono_ms() + ms;
	for (;;) {
		if (req->cancel && req->cancel(req->payload))
			return 1;
		int64_t left = end - clock_mono_ms();
		if (left <= 0)
			return 0;
		clock_sleep_ms(left < 25 ? left : 25);
	}
}

/* The request's prompt tokens, estimated as a quarter of its characters. */
static int64_t estimate_prompt_tokens(const struct llm_request *req)
{
	size_t chars = 0;
	for (size_t i = 0; i < req->n; i++)
		chars += req->msgs[i].content ? strlen(req->msgs[i].content) : 0;
	return (int64_t)((chars + 3) / 4);
}

/* Holds the call's estimated cost on ep's budgets; *raw gets the estimate
 * before calibration.  Returns BUDGET_OK, or the scope that refused with
 * its message in msg and *held_only 1 when only the holds of calls in
 * flight were in the way (budget_held_only: worth waiting for). */
static int budget_claim(struct llm *l, int ep, const struct llm_request *req, int64_t prompt_est, struct budget_hold *hold,
                        int64_t *raw, int *held_only, char *msg, size_t cap)
{
	*held_only = 0;
	struct budget_refusal why;
	int64_t now = clock_wall_ms();
	const struct budget_cfg *set = &l->cfg.budget, *own = &l->cfg.eps[ep].budget;
	int capped = set->daily_uusd || set->monthly_uusd   ? BUDGET_SET
	             : own->daily_uusd || own->monthly_uusd ? BUDGET_ENDPOINT
	                                                    : BUDGET_OK;
	const char *who = capped == BUDGET_SET ? "the configuration's" : "endpoint `";
	const char *name = capped == BUDGET_SET ? "" : l->cfg.eps[ep].name, *of = capped == BUDGET_SET ? "" : "`'s";
	const char *unshared = state_unshared(pool_state(l->pool));
	char away[ERR_MSG_MAX];
	if (capped != BUDGET_OK && !l->cfg.state.local_budgets && unshared) {
		/* a budget kept in this process's memory alone is a whole budget per process (attack6 F5) */
		snprintf(msg, cap,
		         "%s%s%s budget is shared through the endpoint state, which this process cannot use (%s); "
		         "give state.path a file this user can write, or set state.local_budgets to true to let "
		         "each process spend that budget on its own",
		         who, name, of, unshared);
		return capped;
	}
	int fleet = capped != BUDGET_OK && !l->cfg.state.local_budgets;
	if (fleet && state_away(pool_state(l->pool), away, sizeof away))
		goto away;
	int choices = req->choices > 1 ? req->choices : 1; /* each choice is billed its completion */
	int64_t completion = (req->max_tokens > 0 ? req->max_tokens : BUDGET_DEFAULT_COMPLETION) * (int64_t)choices;
	*raw = budget_estimate_uusd(&l->cfg.eps[ep].price, prompt_est, completion);
	int64_t need = *raw * atomic_load_explicit(&l->est_scale[ep], memory_order_relaxed) / BUDGET_SCALE_ONE;
	int scope = budget_reserve(hold, &why, pool_state(l->pool), &l->cfg, ep, now, need);
	if (scope != BUDGET_OK) {
		*held_only = budget_held_only(&why);
		budget_refusal_msg(msg, cap, &why, l->cfg.eps[ep].name, now);
	}
	if (scope == BUDGET_OK && fleet && state_away(pool_state(l->pool), away, sizeof away)) {
		/* Redis failed during the reservation itself (a spending key of the
		 * wrong type, a drop): it was made in the local fallback */
		budget_settle(pool_state(l->pool), hold, 0);
		goto away;
	}
	return scope;
away:
	/* the fleet's spending is in Redis: the local fallback would start this host's from nothing */
	snprintf(msg, cap,
	         "%s%s%s budget is shared through Redis, and %s; start Redis or fix state.url "
	         "($CONVBI_REDIS_URL), or set state.local_budgets to true to let each host spend that "
	         "budget from its local state while Redis is away",
	         who, name, of, away);
	return capped;
}

/* Waits a moment for the holds of calls in flight to settle when only they
 * keep a budget from covering this call (attack8 N5): LLM_BUDGET_POLL_MS
 * and a jitter, the next pick asks the shared state again.  Returns 0 to
 * go round again, 1 when there is no time left for an attempt after the
 * wait (the call fails with the budget's message), 2 when canceled. */
static int budget_wait(const struct llm_request *req, int64_t deadline)
{
	int64_t left = deadline - clock_mono_ms() - LLM_ATTEMPT_MIN_MS;
	if (left <= 0)
		return 1;
	int64_t w = LLM_BUDGET_POLL_MS + (int64_t)(backoff_random() % LLM_BUDGET_POLL_MS);
	return sleep_checking(req, w < left ? w : left) ? 2 : 0;
}

int llm_chat(struct llm *l, const struct llm_request *req, struct llm_reply *out, struct err *err)
{
	memset(out, 0, sizeof *out);
	int64_t start = clock_mono_ms();
	int64_t deadline = start + (req->deadline_ms > 0 ? req->deadline_ms : l->cfg.retry.deadline_ms);
	struct buf body = BUF_INIT;
	struct chat_req creq = {req->msgs, req->n, req->max_tokens, req->temperature, req->stream, req->choices};
	uint64_t hard = 0, soft = 0;
	int rc = CONVBI_OK, attempts = 0, failed = 0, rounds = 0, last_cls = LLM_OK;
	int64_t prompt_est = estimate_prompt_tokens(req);
	int64_t est = prompt_est + (int64_t)(req->choices > 1 ? req->choices : 1) * (req->max_tokens > 0 ? req->max_tokens : 256);
	uint64_t over = 0;               /* endpoints skipped in this call: over their budget */
	uint64_t over_held = 0;          /* ... of them, only while calls in flight hold it (budget_wait) */
	char over_err[ERR_MSG_MAX] = ""; /* why the first of them was */
	char last_err[ERR_MSG_MAX] = "";
	int last_ep = -1;    /* endpoint of the last attempt made */
	int64_t woke_by = 0; /* mono ms the last wait for an endpoint was to end by; 0 = none */

	struct pending_retry pend = {.set = 0};
	while (failed < l->cfg.retry.max_attempts) {
		if (req->cancel && req->cancel(req->payload)) {
			last_cls = LLM_CANCELED;
			snprintf(last_err, sizeof last_err, "canceled by the caller");
			break;
		}
		int64_t now = clock_mono_ms();
		if (now >= deadline) {
			char prev[sizeof last_err];
			memcpy(prev, last_err, sizeof prev);
			if (last_cls == LLM_RATE_LIMITED && woke_by > 0 && woke_by < deadline)
				/* the wait was to end in time for an attempt: say what happened */
				snprintf(last_err, sizeof last_err,
				         "the wait for a rate-limited endpoint was to end %lld ms before the call's %d ms "
				         "deadline, but the process woke %lld ms late (a busy machine); last: %s",
				         (long long)(deadline - woke_by), (int)(deadline - start), (long long)(now - woke_by),
				         prev);
			else if (last_cls == LLM_RATE_LIMITED && strncmp(last_err, "every endpoint is rate limited", 30))
				snprintf(last_err, sizeof last_err,
				         "every endpoint was rate limited until the call's %d ms "
				         "deadline passed; last: %s",
				         (int)(deadline - start), prev);
			if (last_cls == LLM_RATE_LIMITED)
				break;
			last_cls = LLM_DEADLINE;
			snprintf(last_err, sizeof last_err, "the %d ms deadline passed%s%s", (int)(deadline - start),
			         prev[0] ? "; last error: " : "", prev);
			break;
		}
		struct pool_pick pick;
		int64_t wall = clock_wall_ms();
		/* no slot this call cannot use is reserved: it would push every later caller's out (attack8 N1) */
		int prc = pool_pick_ahead(l->pool, wall, hard | soft | over, est, wall + (deadline - now) - LLM_ATTEMPT_MIN_MS,
		                          &pick);
		if (prc == CONVBI_ENOENDPOINT && soft) {
			/* Every endpoint failed once in this call: back off, go round again. */
			soft = 0;
			int64_t d = backoff_delay_ms(rounds++, 100, 2000, backoff_random());
			if (now + d >= deadline)
				d = deadline - now;
			tell_retry(req, &pend, NULL);
			if (sleep_checking(req, d)) {
				last_cls = LLM_CANCELED;
				break;
			}
			continue;
		}
		if (prc == CONVBI_ENOENDPOINT && over_held) {
			/* endpoints out only while calls in flight hold their budgets: wait for those */
			int waited = budget_wait(req, deadline);
			if (waited == 2) {
				last_cls = LLM_CANCELED;
				snprintf(last_err, sizeof last_err, "canceled by the caller");
				break;
			}
			if (!waited) {
				over &= ~over_held;
				over_held = 0;
				continue;
			}
		}
		if (prc == CONVBI_ENOENDPOINT) {
			if (over && (!attempts || !(hard & ~over))) {
				last_cls = LLM_BUDGET;
				snprintf(last_err, sizeof last_err, "every endpoint left is over its budget; first: %s",
				         over_err);
			} else if (!last_err[0])
				snprintf(last_err, sizeof last_err, "no endpoint is usable");
			break;
		}
		if (pick.ep < 0) {
			int64_t w = wait_within(pick.wait_ms, deadline - now);
			if (w < 0) {
				last_cls = LLM_RATE_LIMITED;
				rate_limited_msg(last_err, sizeof last_err, pick.wait_ms, deadline - now);
				break;
			}
			woke_by = now + w;
			if (last_cls == LLM_OK || last_cls == LLM_RATE_LIMITED) {
				last_cls = LLM_RATE_LIMITED; /* if the deadline now passes, this is why */
				rate_limited_msg(last_err, sizeof last_err, pick.wait_ms, deadline - now);
			}
			tell_retry(req, &pend, NULL);
			if (sleep_checking(req, w)) {
				last_cls = LLM_CANCELED;
				break;
			}
			continue;
		}
		if (pick.at_ms > clock_wall_ms()) { /* a reserved slot: sleep until it starts */
			int64_t w = pick.at_ms - clock_wall_ms();
			if (now + w + LLM_ATTEMPT_MIN_MS > deadline) {
				pool_abandon(l->pool, &pick);
				last_cls = LLM_RATE_LIMITED;
				rate_limited_msg(last_err, sizeof last_err, w, deadline - now);
				break;
			}
			if (sleep_checking(req, w)) {
				pool_abandon(l->pool, &pick);
				last_cls = LLM_CANCELED;
				break;
			}
			if (!pool_confirm(l->pool, &pick, clock_wall_ms())) { /* it went cooling meanwhile */
				pool_abandon(l->pool, &pick);
				continue;
			}
		}
		if (!body.len && (rc = aoai_body(&body, &l->cfg.eps[pick.ep], &creq))) {
			last_cls = LLM_NOMEM;
			snprintf(last_err, sizeof last_err, "out of memory building the request");
			break;
		}
		/* Bodies differ only by model for azure-v1/openai: rebuild when needed. */
		if (l->cfg.eps[pick.ep].kind != EP_AZURE) {
			buf_reset(&body);
			if ((rc = aoai_body(&body, &l->cfg.eps[pick.ep], &creq))) {
				last_cls = LLM_NOMEM;
				snprintf(last_err, sizeof last_err, "out of memory building the request");
				break;
			}
		}
		struct budget_hold hold;
		char why[ERR_MSG_MAX];
		int64_t raw_est = 0;
		int held_only = 0;
		int scope = budget_claim(l, pick.ep, req, prompt_est, &hold, &raw_est, &held_only, why, sizeof why);
		if (scope != BUDGET_OK) {
			pool_abandon(l->pool, &pick);
			if (scope == BUDGET_SET) { /* the whole purse is empty (or held): no other endpoint helps */
				last_cls = LLM_BUDGET;
				snprintf(last_err, sizeof last_err, "%s", why);
				int waited = held_only ? budget_wait(req, deadline) : 1;
				if (waited == 2) {
					last_cls = LLM_CANCELED;
					snprintf(last_err, sizeof last_err, "canceled by the caller");
				}
				if (waited)
					break;
				continue;
			}
			if (!over)
				snprintf(over_err, sizeof over_err, "%s", why);
			over |= 1ull << pick.ep;
			over_held |= held_only ? 1ull << pick.ep : 0;
			continue;
		}
		struct llm_attempt at;
		struct pool_outcome po;
		struct aoai_reply reply;
		aoai_reply_init(&reply);
		tell_retry(req, &pend, l->cfg.eps[pick.ep].name);
		int no_send = 0, refused = 0;
		int streamed =
		        attempt_on(l, pick.ep, req, body.data, body.len, deadline, &at, &po, &reply, out, &no_send, &refused);
		attempts += refused;
		const struct price_cfg *price = &l->cfg.eps[pick.ep].price;
		at.cost_usd = at.cls == LLM_OK
		                      ? budget_cost_usd(price, reply.prompt_tokens, reply.cached_tokens, reply.completion_tokens)
		                      : 0;
		budget_settle(pool_state(l->pool), &hold, budget_uusd(at.cost_usd));
		if (at.cls == LLM_OK)
			atomic_store_explicit(&l->est_scale[pick.ep],
			                      budget_scale_next(atomic_load_explicit(&l->est_scale[pick.ep],
			                                                             memory_order_relaxed),
			                                        raw_est, budget_uusd(at.cost_usd)),
			                      memory_order_relaxed);
		po.est_tokens = pick.est_tokens; /* as the endpoint charges it */
		if (at.cls != LLM_CANCELED && at.cls != LLM_DEADLINE && !no_send)
			remember_outcome(l, pick.ep, &at);
		po.probe = pick.probe;
		if (at.cls != LLM_CANCELED && !no_send)
			pool_report(l->pool, pick.ep, clock_wall_ms(), &po);
		else
			pool_abandon(l->pool, &pick);
		attempts++;
		woke_by = 0;
		failed += at.cls != LLM_RATE_LIMITED; /* a rate limit is waited out, not counted */
		if (out->nattempts < LLM_MAX_ATTEMPTS_RECORDED)
			out->attempts[out->nattempts++] = at;
		last_cls = at.cls;
		last_ep = no_send ? -1 : pick.ep; /* no token, nothing sent: no key or role to blame */
		snprintf(last_err, sizeof last_err, "endpoint `%s`: %s", at.endpoint, at.error);
		if (at.cls == LLM_OK) {
			out->content = buf_take(&reply.content);
			for (int i = 0; i < reply.nextra && i < LLM_MAX_CHOICES - 1; i++) { /* moved */
				out->extra[out->nextra++] = reply.extra[i];
				reply.extra[i] = NULL;
			}
			aoai_reply_release(&reply);
			if (!out->content) {
				last_cls = LLM_NOMEM;
				snprintf(last_err, sizeof last_err, "out of memory");
				break;
			}
			snprintf(out->endpoint, sizeof out->endpoint, "%s", at.endpoint);
			snprintf(out->model, sizeof out->model, "%s",
			         reply.model[0] ? reply.model
			                        : (l->cfg.eps[pick.ep].deployment ? l->cfg.eps[pick.ep].deployment : ""));
			out->prompt_tokens = reply.prompt_tokens;
			out->completion_tokens = reply.completion_tokens;
			out->cached_tokens = reply.cached_tokens;
			out->cost_usd = at.cost_usd;
			out->reserved = price->reserved;
			break;
		}
		aoai_reply_release(&reply);
		if (at.cls == LLM_CONTEXT_LENGTH) {
			if (!context_failover(l, pick.ep, &at, out, &hard, last_err, sizeof last_err))
				break;
			if (req->on_retry && failed < l->cfg.retry.max_attempts)
				pend = (struct pending_retry){.set = 1, .at = at, .streamed = streamed};
			continue;
		}
		if (!is_retryable(at.cls))
			break;
		if (at.cls == LLM_TIMEOUT || at.cls == LLM_AUTH || at.cls == LLM_NOT_FOUND ||
		    (at.cls == LLM_STREAM_ERROR && strstr(at.error, "stalled")))
			hard |= 1ull << pick.ep;
		else if (at.cls != LLM_RATE_LIMITED)
			soft |= 1ull << pick.ep;
		if (req->on_retry && failed < l->cfg.retry.max_attempts)
			pend = (struct pending_retry){.set = 1, .at = at, .streamed = streamed};
	}
	if (last_cls == LLM_DEADLINE && out->nattempts > 1 && out->attempts[out->nattempts - 1].cls == LLM_DEADLINE) {
		/* the call's deadline cut its last attempt: when every attempt
		 * before it was rate limited, rate limits are why the call failed */
		size_t i = 0;
		while (i + 1 < out->nattempts && out->attempts[i].cls == LLM_RATE_LIMITED)
			i++;
		if (i + 1 == out->nattempts) {
			char prev[sizeof last_err];
			memcpy(prev, last_err, sizeof prev);
			last_cls = LLM_RATE_LIMITED;
			snprintf(last_err, sizeof last_err,
			         "every endpoint was rate limited until the call's %d ms "
			         "deadline passed; last: %s",
			         (int)(deadline - start), prev);
		}
	}
	int out_cls;
	if ((last_cls == LLM_RATE_LIMITED || last_cls == LLM_OK || last_cls == LLM_DEADLINE) &&
	    all_broken(l, last_err, sizeof last_err))
		last_cls = LLM_AUTH;
	else if ((last_cls == LLM_RATE_LIMITED || last_cls == LLM_TRANSPORT || last_cls == LLM_SERVER_ERROR ||
	          last_cls == LLM_TIMEOUT) &&
	         (out_cls = out_not_rate_limited(l, last_err, sizeof last_err)))
		last_cls = out_cls;
	else if ((last_cls == LLM_AUTH || last_cls == LLM_NOT_FOUND) && last_ep >= 0) {
		char why[sizeof l->last_err[0]];
		pthread_mutex_lock(&l->last_lock);
		memcpy(why, l->last_err[last_ep], sizeof why);
		pthread_mutex_unlock(&l->last_lock);
		broken_hint(l, (size_t)last_ep, 0, last_err, sizeof last_err, why);
	}
	out->elapsed_ms = clock_mono_ms() - start;
	out->cls = last_cls;
	buf_release(&body);
	rc = status_of_class(last_cls);
	if (rc == CONVBI_OK && !out->content)
		rc = CONVBI_ELLM;
	if (rc == CONVBI_EAUTH) {
		/* EAUTH only when no endpoint answered otherwise. */
		for (size_t i = 0; i < out->nattempts; i++)
			if (out->attempts[i].cls != LLM_AUTH && out->attempts[i].cls != LLM_NOT_FOUND)
				rc = CONVBI_ELLM;
	}
	if (rc == CONVBI_EBUDGET && !attempts)
		err_set(err, rc, "no model call was made: %s", last_err);
	else if (rc)
		err_set(err, rc, "the model call failed after %d attempt%s (%s): %s", attempts, attempts == 1 ? "" : "s",
		        llm_class_name(last_cls), last_err[0] ? last_err : convbi_errstr(rc));
	return rc;
}

/* ---- JSON views ---------------------------------------------------------- */

int llm_attempt_provenance_json(struct buf *out, const struct llm_attempt *a)
{
	const struct {
		const char *key, *value;
	} f[] = {
	        {"deployment_name", a->deployment},      {"spillover_from_deployment", a->spillover_from},
	        {"spillover_error", a->spillover_error}, {"region", a->region},
	        {"apim_request_id", a->request_id},
	};
	int rc = CONVBI_OK;
	for (size_t i = 0; !rc && i < sizeof f / sizeof f[0]; i++)
		if (f[i].value[0] && !(rc = buf_puts(out, ",\"")) && !(rc = buf_puts(out, f[i].key)) &&
		    !(rc = buf_puts(out, "\":")))
			rc = buf_json_str(out, f[i].value, strlen(f[i].value));
	return rc;
}

int llm_attempts_json(struct buf *out, const struct llm_attempt *a, size_t n)
{
	int rc = buf_putc(out, '[');
	for (size_t i = 0; !rc && i < n; i++) {
		rc = buf_printf(out, "%s{\"endpoint\":", i ? "," : "");
		if (!rc)
			rc = buf_json_str(out, a[i].endpoint, strlen(a[i].endpoint));
		if (!rc)
			rc = buf_printf(out, ",\"status\":%ld,\"class\":\"%s\",\"error\":", a[i].status,
			                llm_class_name(a[i].cls));
		if (!rc)
			rc = buf_json_str(out, a[i].error, strlen(a[i].error));
		if (!rc)
			rc = buf_printf(out, ",\"wait_ms\":%lld,\"retry_after_source\":", (long long)a[i].wait_ms);
		if (!rc)
			rc = a[i].retry_from ? buf_json_str(out, a[i].retry_from, strlen(a[i].retry_from))
			                     : buf_puts(out, "null");
		if (!rc)
			rc = llm_attempt_provenance_json(out, &a[i]);
		if (!rc)
			rc = buf_printf(out, ",\"elapsed_ms\":%lld,\"cost_usd\":%.6f}", (long long)a[i].elapsed_ms,
			                a[i].cost_usd);
	}
	if (!rc)
		rc = buf_putc(out, ']');
	return rc;
}

int llm_reply_json(struct buf *out, const struct llm_reply *r, int status, const char *errmsg)
{
	const char *content = r->content ? r->content : "";
	int rc = buf_puts(out, "{\"content\":");
	if (!rc)
		rc = status ? buf_puts(out, "null") : buf_json_str(out, content, strlen(content));
	if (!rc)
		rc = buf_puts(out, ",\"endpoint\":");
	if (!rc)
		rc = r->endpoint[0] ? buf_json_str(out, r->endpoint, strlen(r->endpoint)) : buf_puts(out, "null");
	if (!rc)
		rc = buf_puts(out, ",\"model\":");
	if (!rc)
		rc = r->model[0] ? buf_json_str(out, r->model, strlen(r->model)) : buf_puts(out, "null");
	long long pt = r->prompt_tokens > 0 ? r->prompt_tokens : 0, ct = r->completion_tokens > 0 ? r->completion_tokens : 0;
	if (!rc)
		rc = buf_printf(out,
		                ",\"usage\":{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld,"
		                "\"cached_tokens\":%lld},\"cost_usd\":%.6f,\"reserved\":%s,\"attempts\":",
		                pt, ct, pt + ct, (long long)r->cached_tokens, r->cost_usd, r->reserved ? "true" : "false");
	if (!rc)
		rc = llm_attempts_json(out, r->attempts, r->nattempts);
	if (!rc)
		rc = buf_printf(out, ",\"elapsed_ms\":%lld", (long long)r->elapsed_ms);
	if (!rc && status) {
		rc = buf_printf(out, ",\"status\":\"%s\",\"error_class\":\"%s\",\"error\":", convbi_errname(status),
		                llm_class_name(r->cls));
		if (!rc)
			rc = buf_json_str(out, errmsg ? errmsg : "", errmsg ? strlen(errmsg) : 0);
	}
	if (!rc)
		rc = buf_putc(out, '}');
	return rc;
}

/* "budget":{"daily":USD|null,"monthly":USD|null}|null,"spent_today_usd":X,"spent_month_usd":Y
 * for the endpoint ep, or the whole set (STATE_SET_SLOT). */
static int spend_json(struct llm *l, unsigned ep, const struct budget_cfg *b, int64_t now, struct buf *out)
{
	struct state *st = pool_state(l->pool);
	int rc = buf_puts(out, "\"budget\":");
	if (!rc && !b->daily_uusd && !b->monthly_uusd)
		rc = buf_puts(out, "null");
	else if (!rc) {
		rc = buf_puts(out, "{\"daily\":");
		if (!rc)
			rc = b->daily_uusd ? buf_printf(out, "%.6f", b->daily_uusd / 1e6) : buf_puts(out, "null");
		if (!rc)
			rc = buf_puts(out, ",\"monthly\":");
		if (!rc)
			rc = b->monthly_uusd ? buf_printf(out, "%.6f}", b->monthly_uusd / 1e6) : buf_puts(out, "null}");
	}
	int64_t day = st->ops->spend_get(st, ep, STATE_SPEND_DAY, state_period(STATE_SPEND_DAY, now));
	int64_t month = st->ops->spend_get(st, ep, STATE_SPEND_MONTH, state_period(STATE_SPEND_MONTH, now));
	if (!rc)
		rc = buf_printf(out, ",\"spent_today_usd\":%.6f,\"spent_month_usd\":%.6f", day / 1e6, month / 1e6);
	return rc;
}

int llm_spend_json(struct llm *l, struct buf *out)
{
	int rc = buf_putc(out, '{');
	if (!rc)
		rc = spend_json(l, STATE_SET_SLOT, &l->cfg.budget, clock_wall_ms(), out);
	if (!rc)
		rc = buf_putc(out, '}');
	return rc;
}

/* One endpoint's configuration and live state as a JSON object. */
static int endpoint_json(struct llm *l, size_t i, int64_t now, struct buf *out)
{
	const struct ep_cfg *e = &l->cfg.eps[i];
	struct pool_live lv;
	memset(&lv, 0, sizeof lv);
	pool_live_get(l->pool, (int)i, now, &lv);
	int rc = buf_puts(out, "{\"name\":");
	if (!rc)
		rc = buf_json_str(out, e->name, strlen(e->name));
	if (!rc)
		rc = buf_printf(out, ",\"kind\":\"%s\",\"auth\":\"%s\",\"url\":", config_kind_name(e->kind),
		                config_auth_name(e->auth.type));
	char url[2048];
	secret_url_shown(url, sizeof url, e->url); /* never a password or a query's key */
	if (!rc)
		rc = buf_json_str(out, url, strlen(url));
	if (!rc)
		rc = buf_puts(out, ",\"deployment\":");
	if (!rc)
		rc = e->deployment ? buf_json_str(out, e->deployment, strlen(e->deployment)) : buf_puts(out, "null");
	int64_t cool = lv.cool_until_ms > now && !lv.key_fp_other ? lv.cool_until_ms - now : 0;
	if (!rc)
		rc = buf_printf(out, ",\"state_backend\":\"%s\"", pool_backend_status(l->pool));
	if (!rc)
		rc = buf_printf(
		        out,
		        ",\"tier\":%d,\"weight\":%d,\"rpm\":%d,\"tpm\":%d,\"cooling_ms\":%lld,\"cooling_until_ms\":%lld,"
		        "\"cooling_reason\":\"%s\",\"breaker\":\"%s\",\"remaining_requests\":%lld,\"remaining_tokens\":%lld,"
		        "\"window_requests\":%lld,\"window_tokens\":%lld,"
		        "\"learned_rpm\":%lld,\"learned_rpm_from\":\"%s\",\"learned_tpm\":%lld,\"learned_tpm_from\":\"%s\","
		        "\"calls\":%llu,\"ok\":%llu,\"rate_limited\":%llu,\"failures\":%llu",
		        e->priority, e->weight, e->rpm, e->tpm, (long long)cool, (long long)(cool ? lv.cool_until_ms : 0),
		        !cool                          ? "none"
		        : lv.cool_class == POOL_BROKEN ? "auth"
		        : lv.cool_class == POOL_SERVER ? "server"
		                                       : "rate_limit",
		        pool_breaker_name(lv.breaker), (long long)lv.remaining_requests, (long long)lv.remaining_tokens,
		        (long long)lv.window_requests, (long long)lv.window_tokens, (long long)lv.learned_rpm,
		        pool_learn_from_name(lv.learned_rpm_from), (long long)lv.learned_tpm,
		        pool_learn_from_name(lv.learned_tpm_from), (unsigned long long)lv.calls, (unsigned long long)lv.ok,
		        (unsigned long long)lv.rate_limited, (unsigned long long)lv.failures);
	if (!rc) /* tokens charged per estimated token, null until measured */
		rc = lv.token_charge > 0 ? buf_printf(out, ",\"token_charge\":%.3f", lv.token_charge)
		                         : buf_puts(out, ",\"token_charge\":null");
	if (!rc && e->price.set)
		rc = buf_printf(out, ",\"price\":{\"input\":%g,\"cached_input\":%g,\"output\":%g}", e->price.input,
		                e->price.cached_input, e->price.output);
	else if (!rc)
		rc = buf_puts(out, ",\"price\":null");
	if (!rc)
		rc = buf_printf(out, ",\"reserved\":%s,", e->price.reserved ? "true" : "false");
	if (!rc)
		rc = spend_json(l, (unsigned)i, &e->budget, now, out);
	if (!rc)
		rc = buf_putc(out, '}');
	return rc;
}

int llm_endpoints_json(struct llm *l, struct buf *out)
{
	int64_t now = clock_wall_ms();
	int rc = buf_putc(out, '[');
	for (size_t i = 0; !rc && i < l->cfg.n; i++) {
		if (i)
			rc = buf_putc(out, ',');
		if (!rc)
			rc = endpoint_json(l, i, now, out);
	}
	if (!rc)
		rc = buf_putc(out, ']');
	return rc;
}

/* Whether the state in use is the one the configuration names: not the
 * in-process fallback of an unusable file, nor the local file standing in
 * for an unreachable Redis.  A reset of a stand-in clears nothing anyone
 * else sees. */
static int state_reached(const struct llm *l)
{
	const char *b = l->cfg.state.backend;
	const char *now = pool_backend_status(l->pool);
	if (b && !strcmp(b, "memory"))
		return 1;
	return !strcmp(now, "file") || !strcmp(now, "redis");
}

int llm_endpoints_reset(struct llm *l, const char *name, struct buf *out, struct err *err)
{
	int64_t now = clock_wall_ms();
	size_t found = 0;
	struct pool_live probe; /* a round trip: a Redis that stopped answering is found out here */
	pool_live_get(l->pool, 0, now, &probe);
	if (!state_reached(l))
		return err_set(err, CONVBI_ESTATE,
		               "the shared endpoint state is not reachable (in use: %s; the warning above says why); "
		               "nothing was cleared: fix that and run the reset again",
		               pool_backend_status(l->pool));
	int rc = buf_putc(out, '[');
	for (size_t i = 0; !rc && i < l->cfg.n; i++) {
		if (name && strcmp(name, l->cfg.eps[i].name))
			continue;
		if (found++)
			rc = buf_putc(out, ',');
		if (!rc)
			rc = endpoint_json(l, i, now, out);
		pool_reset_endpoint(l->pool, (int)i);
	}
	if (!rc)
		rc = buf_putc(out, ']');
	if (rc)
		return err_code(err, rc);
	if (found && !state_reached(l)) /* lost on the way */
		return err_set(err, CONVBI_ESTATE,
		               "the shared endpoint state became unreachable during the reset (in use: %s); it may be "
		               "cleared only in part: run the reset again once it is back",
		               pool_backend_status(l->pool));
	if (!found) {
		struct buf names = BUF_INIT;
		for (size_t i = 0; i < l->cfg.n && !rc; i++)
			rc = buf_printf(&names, "%s`%s`", i ? ", " : "", l->cfg.eps[i].name);
		rc = err_set(err, CONVBI_EINVAL, "no endpoint is named `%s`; the configured ones are %s", name,
		             rc ? "?" : buf_str(&names));
		buf_release(&names);
		return rc;
	}
	return CONVBI_OK;
}
