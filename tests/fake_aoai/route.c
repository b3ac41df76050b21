/* route.c -- one connection, end to end: read a request, decide, answer,
 * log, repeat while keep-alive holds.
 *
 * Order of decisions for a model request (anything not under /_fake/):
 *   1. the body is parsed (not yet judged), so faults know if it streams;
 *   2. the endpoint's fault queue is drawn: reset, hang, status presets and
 *      flap answer right here, before any check (they play the network or
 *      the service failing); slow_first_token waits and falls through;
 *   3. the path picks the API kind and its checks, like the real service:
 *        POST /openai/deployments/{dep}/chat/completions?api-version=V
 *             kind azure: no api-version 404 "Resource not found", api-key
 *             header must match (401), {dep} must be the deployment (404
 *             DeploymentNotFound);
 *        POST /openai/v1/chat/completions   kind azure-v1: api-key or
 *             "Authorization: Bearer KEY"; body "model" must be the
 *             deployment (404 DeploymentNotFound);
 *        POST /v1/chat/completions          kind openai: Bearer only, any
 *             model, OpenAI-shaped 401;
 *      anything else is 404 "Resource not found", another method 405;
 *   4. a body that is not a chat request is 400 (OpenAI-style error);
 *   5. quotas: refused → 429 with Azure's body, retry-after (whole seconds,
 *      rounded up), retry-after-ms (exact), x-ratelimit-* headers -- or,
 *      with "ratelimit_headers": false, retry-after alone (and no
 *      x-ratelimit-* on a success either);
 *   6. the rules pick the text, the latency is slept, wire.c sends it.
 *   Azure kinds also take `Authorization: Bearer T` with a token the fake
 *   token service issued (entra.c); an endpoint with "local_auth": false
 *   refuses keys (401 AuthenticationTypeDisabled), as a resource with
 *   disableLocalAuth does.  Every Azure reply carries x-ms-region when the
 *   endpoint has a region, and a success x-ms-deployment-name.  A request
 *   longer than the endpoint's context_window is a 400 in Azure's words
 *   (context_length_exceeded; "your messages resulted in N tokens", or
 *   "you requested N tokens (P in the messages, C in the completion)" when
 *   max_tokens is set).  Spillover: a request with x-ms-spillover-deployment
 *   naming one of the endpoint's spillover_deployments that would get a
 *   429 (quota or fault), a 500 or 503 (fault) or the context-length 400
 *   is served instead, with x-ms-deployment-name: <that deployment>,
 *   x-ms-spillover-from-deployment: <the endpoint's>, x-ms-spillover-error:
 *   <the status it would have had>.
 * The token paths (entra.c) are served on every port before anything else.
 * Control API (no auth) on every port, acting on that port's endpoint:
 *   POST /_fake/faults (JSON array: replaces the queue), GET /_fake/stats
 *   (also the server-wide token_requests and tokens_issued),
 *   POST /_fake/reset (stats, quota windows and all rules' sequences),
 *   POST /_fake/quota ({"rps"?, "rp10s"?, "rpm"?}: the request quotas
 *   from now on, 0 = off; the windows keep their youngest admits),
 *   POST /_fake/revoke_tokens (every token issued so far gets 401).
 * Every request is logged once, when its status is decided and before the
 * body goes out, so a test sees the line even while a stream stalls.
 */
#include "fake_aoai.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum api_kind { API_NONE, API_AZURE, API_AZURE_V1, API_OPENAI };

#define DEPLOYMENTS_PREFIX "/openai/deployments/"
#define CHAT_SUFFIX "/chat/completions"
#define LATENCY_CAP_MS 600000

static const char DENIED_MSG[] =
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
        "a valid key for an active subscription and use a correct regional API endpoint for your "
        "resource.";
static const char NOT_DEPLOYED_MSG[] =
        "The API deployment for this resource does not exist. If you created the deployment within "
        "the last 5 minutes, please wait a moment and try again.";
static const char TOKEN_MSG[] =
        "Unauthorized. Access token is missing, invalid, audience is incorrect "
        "(https://cognitiveservices.azure.com), or have expired.";
static const char KEY_DISABLED_MSG[] = "Key based authentication is disabled for this resource.";
static const char OPENAI_KEY_MSG[] =
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.";

static void azure_error(struct sbuf *b, const char *code, const char *msg)
{
	sb_puts(b, "{\"error\":{\"code\":");
	sb_json(b, code, strlen(code));
	sb_puts(b, ",\"message\":");
	sb_json(b, msg, strlen(msg));
	sb_puts(b, "}}");
}

static void openai_error(struct sbuf *b, const char *msg, const char *type, const char *code)
{
	sb_puts(b, "{\"error\":{\"message\":");
	sb_json(b, msg, strlen(msg));
	sb_puts(b, ",\"type\":");
	sb_json(b, type, strlen(type));
	sb_puts(b, ",\"param\":null,\"code\":");
	if (code)
		sb_json(b, code, strlen(code));
	else
		sb_puts(b, "null");
	sb_puts(b, "}}");
}

static void count_status(struct endpoint *ep, int status)
{
	if (status != 200 && status != 429)
		return;
	pthread_mutex_lock(&ep->mu);
	if (status == 200)
		ep->stats.ok++;
	else
		ep->stats.rate_limited++;
	pthread_mutex_unlock(&ep->mu);
}

/* Adds a success's usage and its cost at the endpoint's price to the stats:
 * what the real service would bill. */
static void bill(struct endpoint *ep, const struct answer *a)
{
	pthread_mutex_lock(&ep->mu);
	ep->stats.prompt_tokens += a->prompt_tokens;
	ep->stats.cached_tokens += a->cached_tokens;
	ep->stats.completion_tokens += a->completion_tokens;
	ep->stats.cost_usd += ((double)(a->prompt_tokens - a->cached_tokens) * ep->price[0] +
	                       (double)a->cached_tokens * ep->price[1] + (double)a->completion_tokens * ep->price[2]) /
	                      1e6;
	pthread_mutex_unlock(&ep->mu);
}

/* Logs, counts and sends one complete reply; returns 1 to keep the
 * connection. */
static int finish(struct conn *c, const struct request *rq, int status, const char *headers, const struct sbuf *body,
                  const char *fault, int stream)
{
	count_status(c->ep, status);
	reqlog_write(c->srv, c->ep, rq, status, fault, stream);
	return http_reply(c, rq, status, headers, body->p ? body->p : "", body->len) == 0 && rq->keep_alive;
}

/* ---- control API ----------------------------------------------------------- */

static int control(struct conn *c, struct request *rq)
{
	struct endpoint *ep = c->ep;
	struct sbuf b = SBUF_INIT;
	int status = 200;
	int post = strcmp(rq->method, "POST") == 0;

	if (post && strcmp(rq->path, "/_fake/faults") == 0) {
		struct fault *list, *old;
		int n, nold;
		char err[400];
		if (fault_parse_list(rq->body, rq->body_len, &list, &n, err, sizeof err)) {
			status = 400;
			azure_error(&b, "BadFaults", err);
		} else {
			pthread_mutex_lock(&ep->mu);
			old = ep->faults;
			nold = ep->nfaults;
			ep->faults = list;
			ep->nfaults = n;
			pthread_mutex_unlock(&ep->mu);
			fault_list_free(old, nold);
			sb_printf(&b, "{\"ok\":true,\"faults\":%d}", n);
		}
	} else if (strcmp(rq->method, "GET") == 0 && strcmp(rq->path, "/_fake/stats") == 0) {
		pthread_mutex_lock(&ep->mu);
		struct stats st = ep->stats;
		pthread_mutex_unlock(&ep->mu);
		long treq, tiss;
		entra_counts(c->srv, &treq, &tiss);
		sb_printf(&b,
		          "{\"requests\":%ld,\"ok\":%ld,\"rate_limited\":%ld,\"faulted\":%ld,\"prompt_tokens\":%ld,"
		          "\"cached_tokens\":%ld,\"completion_tokens\":%ld,\"cost_usd\":%.9f,"
		          "\"token_requests\":%ld,\"tokens_issued\":%ld}",
		          st.requests, st.ok, st.rate_limited, st.faulted, st.prompt_tokens, st.cached_tokens,
		          st.completion_tokens, st.cost_usd, treq, tiss);
	} else if (post && strcmp(rq->path, "/_fake/revoke_tokens") == 0) {
		entra_revoke(c->srv);
		sb_puts(&b, "{\"ok\":true}");
	} else if (post && strcmp(rq->path, "/_fake/quota") == 0) {
		long lim[3] = {-1, -1, -1};
		static const char *const keys[3] = {"rps", "rp10s", "rpm"};
		cJSON *j = cJSON_ParseWithLength(rq->body, rq->body_len);
		int bad = !cJSON_IsObject(j);
		for (int i = 0; i < 3 && !bad; i++) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
			if (v && (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 10000000))
				bad = 1;
			else if (v)
				lim[i] = (long)v->valuedouble;
		}
		cJSON_Delete(j);
		if (bad) {
			status = 400;
			azure_error(&b, "BadQuota",
			            "Send {\"rps\", \"rp10s\", \"rpm\"}: each optional, 0 to 10000000 (0 = off).");
		} else {
			pthread_mutex_lock(&ep->mu);
			quota_set(&ep->quota, (int)lim[0], (int)lim[1], (int)lim[2]);
			pthread_mutex_unlock(&ep->mu);
			sb_puts(&b, "{\"ok\":true}");
		}
	} else if (post && strcmp(rq->path, "/_fake/reset") == 0) {
		pthread_mutex_lock(&ep->mu);
		memset(&ep->stats, 0, sizeof ep->stats);
		quota_reset(&ep->quota);
		pthread_mutex_unlock(&ep->mu);
		scenario_reset_sequences(&c->srv->sc);
		sb_puts(&b, "{\"ok\":true}");
	} else {
		status = 404;
		azure_error(&b, "404",
		            "Unknown control request; use POST /_fake/faults, "
		            "GET /_fake/stats, POST /_fake/quota, POST /_fake/reset or POST /_fake/revoke_tokens.");
	}
	reqlog_write(c->srv, ep, rq, status, "none", 0);
	int keep = http_reply(c, rq, status, NULL, b.p, b.len) == 0 && rq->keep_alive;
	sb_release(&b);
	return keep;
}

/* ---- model requests --------------------------------------------------------- */

/* Which API a path belongs to; for kind azure, *dep and *dep_len name the
 * deployment segment. */
static enum api_kind api_of(const char *path, const char **dep, size_t *dep_len)
{
	size_t plen = strlen(path), pre = strlen(DEPLOYMENTS_PREFIX), suf = strlen(CHAT_SUFFIX);
	if (strcmp(path, "/openai/v1/chat/completions") == 0)
		return API_AZURE_V1;
	if (strcmp(path, "/v1/chat/completions") == 0)
		return API_OPENAI;
	if (plen > pre + suf && strncmp(path, DEPLOYMENTS_PREFIX, pre) == 0 && strcmp(path + plen - suf, CHAT_SUFFIX) == 0) {
		*dep = path + pre;
		*dep_len = plen - pre - suf;
		if (memchr(*dep, '/', *dep_len) == NULL)
			return API_AZURE;
	}
	return API_NONE;
}

static int apikey_ok(const struct request *rq, const struct endpoint *ep)
{
	const char *k = request_header(rq, "api-key");
	return k && strcmp(k, ep->api_key) == 0;
}

static int bearer_ok(const struct request *rq, const struct endpoint *ep)
{
	const char *v = request_header(rq, "authorization");
	if (!v || strncasecmp(v, "Bearer ", 7) != 0)
		return 0;
	v += 7;
	while (*v == ' ')
		v++;
	return strcmp(v, ep->api_key) == 0;
}

/* The bearer token of a request, or NULL. */
static const char *bearer_of(const struct request *rq)
{
	const char *v = request_header(rq, "authorization");
	if (!v || strncasecmp(v, "Bearer ", 7) != 0)
		return NULL;
	v += 7;
	while (*v == ' ')
		v++;
	return v;
}

/* Azure's authentication: a token the fake issued, else the key (when
 * local auth is on).  Returns 0, or 401 with the body written. */
static int azure_auth(struct conn *c, const struct request *rq, const struct endpoint *ep, enum api_kind kind, struct sbuf *b)
{
	const char *tok = bearer_of(rq);
	if (tok && entra_token_state(c->srv, tok) == TOKEN_VALID)
		return 0;
	if (tok && !(kind == API_AZURE_V1 && ep->local_auth && bearer_ok(rq, ep))) {
		azure_error(b, "401", TOKEN_MSG);
		return 401;
	}
	if (!tok && request_header(rq, "api-key") && !ep->local_auth) {
		azure_error(b, "AuthenticationTypeDisabled", KEY_DISABLED_MSG);
		return 401;
	}
	if (tok || apikey_ok(rq, ep))
		return 0;
	azure_error(b, "401", ep->local_auth ? DENIED_MSG : TOKEN_MSG);
	return 401;
}

/* The deployment a request may spill over to: its x-ms-spillover-deployment
 * when the endpoint lists it, else NULL. */
static const char *spill_target(const struct request *rq, const struct endpoint *ep)
{
	const char *d = request_header(rq, "x-ms-spillover-deployment");
	for (int i = 0; d && i < ep->nspill; i++)
		if (strcmp(d, ep->spill[i]) == 0)
			return ep->spill[i];
	return NULL;
}

/* Azure's context-length 400 in its two wordings. */
static void context_error(struct sbuf *b, const struct endpoint *ep, const struct chat *ch)
{
	char msg[400];
	long prompt = tokens_of(ch->content_chars);
	if (ch->max_tokens < 0)
		snprintf(msg, sizeof msg,
		         "This model's maximum context length is %ld tokens. However, your messages resulted in %ld "
		         "tokens. Please reduce the length of the messages.",
		         ep->context_window, prompt);
	else
		snprintf(msg, sizeof msg,
		         "This model's maximum context length is %ld tokens. However, you requested %ld tokens (%ld "
		         "in the messages, %ld in the completion). Please reduce the length of the messages or completion.",
		         ep->context_window, prompt + ch->max_tokens, prompt, ch->max_tokens);
	openai_error(b, msg, "invalid_request_error", "context_length_exceeded");
}

/* A latency draw: constant, or lognormal through (median, p95). */
static int latency_draw(struct conn *c, const struct endpoint *ep)
{
	if (ep->lat_median_ms <= 0)
		return 0;
	if (ep->lat_p95_ms <= ep->lat_median_ms)
		return ep->lat_median_ms;
	double sigma = log((double)ep->lat_p95_ms / ep->lat_median_ms) / 1.6448536269514722;
	double u1 = rng_unit(&c->rng), u2 = rng_unit(&c->rng);
	if (u1 < 1e-12)
		u1 = 1e-12;
	double z = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
	double ms = ep->lat_median_ms * exp(sigma * z);
	return ms > LATENCY_CAP_MS ? LATENCY_CAP_MS : (int)lround(ms);
}

static void ratelimit_headers(struct sbuf *h, const struct endpoint *ep, const struct quota_verdict *v)
{
	if (!ep->rl_headers)
		return;
	if (v->lim_req >= 0)
		sb_printf(h, "x-ratelimit-limit-requests: %ld\r\nx-ratelimit-remaining-requests: %ld\r\n", v->lim_req,
		          v->rem_req);
	if (v->lim_tok >= 0)
		sb_printf(h, "x-ratelimit-limit-tokens: %ld\r\nx-ratelimit-remaining-tokens: %ld\r\n", v->lim_tok, v->rem_tok);
}

static int rate_limited(struct conn *c, const struct request *rq, const struct quota_verdict *v, const char *apiver,
                        const struct fault_hit *hit, int stream, const char *extra)
{
	struct sbuf h = SBUF_INIT, b = SBUF_INIT;
	if (extra)
		sb_puts(&h, extra);
	char msg[512];
	long secs = (long)((v->retry_ms + 999) / 1000);
	if (c->ep->rl_headers)
		sb_printf(&h, "retry-after: %ld\r\nretry-after-ms: %lld\r\n", secs, (long long)v->retry_ms);
	else
		sb_printf(&h, "retry-after: %ld\r\n", secs);
	ratelimit_headers(&h, c->ep, v);
	snprintf(msg, sizeof msg,
	         "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version %s "
	         "have exceeded %s rate limit of your current OpenAI S0 pricing tier. Please retry "
	         "after %ld seconds. Please go here: https://aka.ms/oai/quotaincrease if you would "
	         "like to further increase the default rate limit.",
	         apiver, v->tokens ? "token" : "call", secs);
	azure_error(&b, "429", msg);
	int keep = finish(c, rq, 429, h.p, &b, hit->name, stream);
	sb_release(&h);
	sb_release(&b);
	return keep;
}

/* Steps 3-6 of the file comment: checks, quota, reply.  forced: the status
 * a fault gave this request, deferred because it may spill over (0 =
 * none). */
static int serve(struct conn *c, const struct request *rq, const struct chat *ch, const char *perr, const struct fault_hit *hit,
                 int forced)
{
	struct endpoint *ep = c->ep;
	struct sbuf b = SBUF_INIT, h = SBUF_INIT;
	char apiver[64] = FK_DEFAULT_API_VERSION;
	const char *dep = NULL;
	size_t dep_len = 0;
	char *text = NULL, **extra = NULL;
	int status = 0, keep = 0, nextra = 0;

	enum api_kind kind = api_of(rq->path, &dep, &dep_len);
	if (kind != API_NONE && kind != API_OPENAI && ep->region)
		sb_printf(&h, "x-ms-region: %s\r\n", ep->region);
	if (kind == API_NONE) {
		status = 404;
		azure_error(&b, "404", "Resource not found");
	} else if (strcmp(rq->method, "POST") != 0) {
		status = 405;
		azure_error(&b, "405", "The method is not allowed for this resource; use POST.");
		sb_puts(&h, "Allow: POST\r\n");
	} else if (kind == API_AZURE) {
		if (!request_query(rq, "api-version", apiver, sizeof apiver) || !apiver[0]) {
			status = 404;
			azure_error(&b, "404", "Resource not found");
		} else if ((status = azure_auth(c, rq, ep, kind, &b))) {
			/* 401, body written */
		} else if (dep_len != strlen(ep->deployment) || strncmp(dep, ep->deployment, dep_len) != 0) {
			status = 404;
			azure_error(&b, "DeploymentNotFound", NOT_DEPLOYED_MSG);
		}
	} else if (kind == API_AZURE_V1) {
		if ((status = azure_auth(c, rq, ep, kind, &b))) {
			/* 401, body written */
		} else if (!perr && (!ch->model || strcmp(ch->model, ep->deployment) != 0)) {
			status = 404;
			azure_error(&b, "DeploymentNotFound", NOT_DEPLOYED_MSG);
		}
	} else if (!bearer_ok(rq, ep)) {
		status = 401;
		openai_error(&b, OPENAI_KEY_MSG, "invalid_request_error", "invalid_api_key");
	}
	if (!status && !perr && ch->n > 1 && ep->n_mode == N_REJECT) {
		status = 400;
		openai_error(&b, "Only one completion choice is allowed", "invalid_request_error", NULL);
	}
	if (!status && perr) {
		status = 400;
		openai_error(&b, perr, "invalid_request_error", NULL);
	}
	if (status) {
		keep = finish(c, rq, status, h.p, &b, hit->name, ch->stream);
		goto done;
	}

	long estimate = tokens_of(ch->content_chars) + (ch->max_tokens >= 0 ? ch->max_tokens : 16);
	const char *spill = kind == API_OPENAI ? NULL : spill_target(rq, ep);
	int primary = forced; /* the status the endpoint's own deployment gives, 0 = it serves */
	if (!primary && ep->context_window > 0 &&
	    tokens_of(ch->content_chars) + (ch->max_tokens > 0 ? ch->max_tokens : 0) > ep->context_window)
		primary = 400;
	struct quota_verdict v;
	memset(&v, 0, sizeof v);
	if (!primary) {
		pthread_mutex_lock(&ep->mu);
		quota_take(&ep->quota, mono_ms(), estimate, &v);
		pthread_mutex_unlock(&ep->mu);
		if (!v.ok)
			primary = 429;
	}
	if (primary && spill) {
		sb_printf(&h, "x-ms-deployment-name: %s\r\nx-ms-spillover-from-deployment: %s\r\nx-ms-spillover-error: %d\r\n",
		          spill, ep->deployment, primary);
	} else if (primary == 400) {
		context_error(&b, ep, ch);
		keep = finish(c, rq, 400, h.p, &b, hit->name, ch->stream);
		goto done;
	} else if (primary == 429) {
		keep = rate_limited(c, rq, &v, apiver, hit, ch->stream, h.p);
		goto done;
	} else {
		ratelimit_headers(&h, ep, &v);
		if (kind != API_OPENAI)
			sb_printf(&h, "x-ms-deployment-name: %s\r\n", ep->deployment);
	}

	text = reply_pick(&c->srv->sc, ch);
	nextra = ch->stream || ep->n_mode != N_CHOICES ? 0 : ch->n - 1;
	extra = nextra ? xcalloc((size_t)nextra, sizeof *extra) : NULL;
	size_t extra_len = 0;
	for (int i = 0; i < nextra; i++) { /* each choice draws its own reply: a sequence advances */
		extra[i] = reply_pick(&c->srv->sc, ch);
		extra_len += strlen(extra[i]);
	}
	int wait = latency_draw(c, ep);
	if (wait > 0 && http_wait(c, wait) != 0) {
		reqlog_write(c->srv, ep, rq, 0, hit->name, ch->stream); /* the client left */
		http_close(c);
		goto done;
	}
	size_t len = strlen(text);
	struct answer a = {
	        .text = text,
	        .len = len,
	        .extra = extra,
	        .nextra = nextra,
	        .model = kind == API_OPENAI && ch->model ? ch->model : ep->model,
	        .azure = kind != API_OPENAI,
	        .include_usage = ch->include_usage,
	        .prompt_tokens = ep->token_chars == 4
	                                 ? tokens_of(ch->content_chars)
	                                 : (long)((ch->content_chars + (size_t)ep->token_chars - 1) / (size_t)ep->token_chars),
	        .completion_tokens = tokens_of(len + extra_len),
	        .chunk_ms = ep->chunk_ms,
	        .headers = h.p,
	};
	a.cached_tokens = ep->cached_tokens < a.prompt_tokens ? ep->cached_tokens : a.prompt_tokens;
	bill(ep, &a);
	count_status(ep, 200);
	reqlog_write(c->srv, ep, rq, 200, hit->name, ch->stream);
	keep = ch->stream ? wire_stream(c, rq, &a, hit) : wire_json(c, rq, &a, hit);
done:
	free(text);
	for (int i = 0; i < nextra; i++)
		free(extra[i]);
	free(extra);
	sb_release(&b);
	sb_release(&h);
	return keep;
}

static int handle(struct conn *c, struct request *rq)
{
	struct endpoint *ep = c->ep;
	struct chat ch;
	struct fault_hit hit;
	char perr[512];
	int keep = 0;

	if (strncmp(rq->path, "/_fake/", 7) == 0)
		return control(c, rq);
	if (entra_is_token_path(rq->path))
		return entra_serve(c, rq);

	int bad_body = chat_parse(&ch, rq->body, rq->body_len, perr, sizeof perr) != 0;
	pthread_mutex_lock(&ep->mu);
	ep->stats.requests++;
	fault_take(ep, mono_ms(), &hit);
	if (hit.kind != FAULT_NONE)
		ep->stats.faulted++;
	pthread_mutex_unlock(&ep->mu);

	switch (hit.kind) {
	case FAULT_RESET:
		reqlog_write(c->srv, ep, rq, 0, hit.name, ch.stream);
		http_reset(c);
		goto done;
	case FAULT_HANG:
		reqlog_write(c->srv, ep, rq, 0, hit.name, ch.stream);
		http_wait(c, -1);
		http_close(c);
		goto done;
	case FAULT_STATUS:
	case FAULT_FLAP: {
		const char *d = NULL;
		size_t dl = 0;
		enum api_kind kind = api_of(rq->path, &d, &dl);
		if ((hit.status == 429 || hit.status == 500 || hit.status == 503) && kind != API_NONE && kind != API_OPENAI &&
		    spill_target(rq, ep)) {
			keep = serve(c, rq, &ch, bad_body ? perr : NULL, &hit, hit.status);
			goto done;
		}
		struct sbuf b = SBUF_INIT;
		sb_puts(&b, hit.body ? hit.body : "");
		keep = finish(c, rq, hit.status, hit.headers, &b, hit.name, ch.stream);
		sb_release(&b);
		goto done;
	}
	case FAULT_SLOW_FIRST_TOKEN:
		if (http_wait(c, hit.delay_ms) != 0) {
			reqlog_write(c->srv, ep, rq, 0, hit.name, ch.stream);
			http_close(c);
			goto done;
		}
		break;
	default: break;
	}
	keep = serve(c, rq, &ch, bad_body ? perr : NULL, &hit, 0);
done:
	fault_hit_release(&hit);
	chat_release(&ch);
	return keep;
}

/* The reply to a request that could not be read whole; the connection is
 * closed after it. */
static void malformed(struct conn *c, struct request *rq, int status)
{
	struct sbuf b = SBUF_INIT;
	const char *msg = "The request is not valid HTTP/1.1.";
	if (status == 411)
		msg = "Send the body with Content-Length; chunked request bodies are not accepted.";
	else if (status == 413)
		msg = "The request body is larger than 8 MiB.";
	else if (status == 431)
		msg = "The request line and headers are larger than 64 KiB.";
	char code[16];
	snprintf(code, sizeof code, "%d", status);
	azure_error(&b, code, msg);
	rq->keep_alive = 0;
	reqlog_write(c->srv, c->ep, rq, status, "none", 0);
	http_reply(c, rq, status, NULL, b.p, b.len);
	sb_release(&b);
}

void *route_connection(void *arg)
{
	struct conn *c = arg;
	for (;;) {
		struct request rq;
		int rc = http_read_request(c, &rq);
		int keep = 0;
		if (rc == 0)
			keep = handle(c, &rq);
		else if (rc != HTTP_GONE)
			malformed(c, &rq, rc);
		request_release(&rq);
		if (!keep || c->fd < 0)
			break;
	}
	http_close(c);
	free(c->in);
	sb_release(&c->out);
	free(c);
	return NULL;
}
