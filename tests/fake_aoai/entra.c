/* entra.c -- the fake Microsoft Entra ID token service, and the check of the tokens it issued.
 *
 * Configured by the scenario's "entra" object (scenario.c reads it with
 * entra_load); without one, the token paths answer 404.  Served on every
 * endpoint's port, like the control API:
 *   GET  /metadata/identity/oauth2/token?api-version=2018-02-01&resource=R
 *        [&client_id=C]  (instance metadata service): needs `Metadata:
 *        true` (400 otherwise); answers {"access_token", "refresh_token":
 *        "", "expires_in": "S", "expires_on": "U", "not_before", "resource",
 *        "token_type": "Bearer"} -- numbers as strings, as IMDS writes them;
 *   GET  /msi/token?api-version=2019-08-01&resource=R[&client_id=C] (App
 *        Service, Container Apps): needs `X-IDENTITY-HEADER` equal to
 *        identity_header (401 otherwise); answers {"access_token",
 *        "expires_on": "U", "resource", "token_type", "client_id"} -- no
 *        expires_in, as App Service does;
 *   POST /{tenant}/oauth2/v2.0/token, form: grant_type=client_credentials,
 *        client_id, scope, and client_secret or client_assertion_type=
 *        urn:ietf:params:oauth:client-assertion-type:jwt-bearer with
 *        client_assertion (the federated token); answers {"token_type":
 *        "Bearer", "expires_in": S, "ext_expires_in": S, "access_token"}
 *        with numbers; errors as {"error", "error_description" (AADSTS...),
 *        "error_codes"}.
 * R must be the scope without ".default" (IMDS) and scope the configured
 * one; a client_id, when sent, must be the configured one.  Every issued
 * token is remembered (a ring of FK_MAX_TOKENS) with its expiry; a model
 * request's `Authorization: Bearer T` is valid while T is remembered, not
 * expired and not revoked (POST /_fake/revoke_tokens revokes all issued so
 * far).  Counters: token requests and tokens issued (GET /_fake/stats).
 * The request log never shows a secret: the identity header, the client
 * secret and the assertion are replaced before logging (entra_redact_*).
 */
#include "fake_aoai.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define V2_SUFFIX "/oauth2/v2.0/token"
#define IMDS_PATH "/metadata/identity/oauth2/token"
#define APPSVC_PATH "/msi/token"
#define JWT_BEARER "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

static const char *const entra_fields[] = {"tenant_id", "client_id",  "client_secret", "federated_token", "identity_header",
                                           "scope",     "lifetime_s", "latency_ms",    "comment"};

static int efail(char *msg, size_t mlen, const char *what)
{
	snprintf(msg, mlen, "entra: %s", what);
	return -1;
}

static int opt_str(const cJSON *o, const char *key, char **out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!v)
		return 0;
	if (!cJSON_IsString(v) || !v->valuestring[0])
		return -1;
	*out = xstrdup(v->valuestring);
	return 0;
}

int entra_load(const cJSON *o, struct entra_cfg *e, char *msg, size_t mlen)
{
	memset(e, 0, sizeof *e);
	e->lifetime_s = 3600;
	if (!o)
		return 0;
	if (!cJSON_IsObject(o))
		return efail(msg, mlen, "must be an object");
	const cJSON *f;
	cJSON_ArrayForEach(f, o)
	{
		int ok = f->string[0] == '_';
		for (size_t i = 0; !ok && i < sizeof entra_fields / sizeof *entra_fields; i++)
			ok = strcmp(f->string, entra_fields[i]) == 0;
		if (!ok) {
			snprintf(msg, mlen, "entra: unknown field `%s`", f->string);
			return -1;
		}
	}
	if (opt_str(o, "tenant_id", &e->tenant_id) || opt_str(o, "client_id", &e->client_id) ||
	    opt_str(o, "client_secret", &e->client_secret) || opt_str(o, "federated_token", &e->federated_token) ||
	    opt_str(o, "identity_header", &e->identity_header) || opt_str(o, "scope", &e->scope))
		return efail(
		        msg, mlen,
		        "tenant_id, client_id, client_secret, federated_token, identity_header and scope are non-empty strings");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "lifetime_s");
	if (v && (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 86400 * 2))
		return efail(msg, mlen, "`lifetime_s` must be 1 to 172800 seconds");
	if (v)
		e->lifetime_s = (long)v->valuedouble;
	v = cJSON_GetObjectItemCaseSensitive(o, "latency_ms");
	if (v && (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 600000))
		return efail(msg, mlen, "`latency_ms` must be 0 to 600000");
	if (v)
		e->latency_ms = (int)v->valuedouble;
	if (!e->scope)
		e->scope = xstrdup("https://cognitiveservices.azure.com/.default");
	e->on = 1;
	return 0;
}

void entra_release(struct entra_cfg *e)
{
	free(e->tenant_id);
	free(e->client_id);
	free(e->client_secret);
	free(e->federated_token);
	free(e->identity_header);
	free(e->scope);
	memset(e, 0, sizeof *e);
}

void entra_init(struct tokens *t)
{
	memset(t, 0, sizeof *t);
	pthread_mutex_init(&t->mu, NULL);
}

/* ---- issuing and checking ---------------------------------------------------- */

static void issue(struct conn *c, char out[FK_TOKEN_LEN + 1], int64_t *exp_ms)
{
	struct tokens *t = &c->srv->tokens;
	long lifetime = c->srv->sc.entra.lifetime_s;
	pthread_mutex_lock(&t->mu);
	snprintf(out, FK_TOKEN_LEN + 1, "eyJ0eXAiOiJKV1QifQ.fk%08lx%016llx%016llx", ++t->issued,
	         (unsigned long long)rng_next(&c->rng), (unsigned long long)rng_next(&c->rng));
	*exp_ms = wall_ms() + lifetime * 1000;
	struct issued *slot = &t->ring[t->next];
	memcpy(slot->tok, out, FK_TOKEN_LEN + 1);
	slot->exp_ms = *exp_ms;
	slot->revoked = 0;
	t->next = (t->next + 1) % FK_MAX_TOKENS;
	if (t->n < FK_MAX_TOKENS)
		t->n++;
	pthread_mutex_unlock(&t->mu);
}

int entra_token_state(struct server *s, const char *tok)
{
	struct tokens *t = &s->tokens;
	int state = TOKEN_UNKNOWN;
	int64_t now = wall_ms();
	pthread_mutex_lock(&t->mu);
	for (int i = 0; i < t->n && state == TOKEN_UNKNOWN; i++)
		if (strcmp(t->ring[i].tok, tok) == 0)
			state = t->ring[i].revoked ? TOKEN_REVOKED : t->ring[i].exp_ms <= now ? TOKEN_EXPIRED : TOKEN_VALID;
	pthread_mutex_unlock(&t->mu);
	return state;
}

void entra_revoke(struct server *s)
{
	pthread_mutex_lock(&s->tokens.mu);
	for (int i = 0; i < s->tokens.n; i++)
		s->tokens.ring[i].revoked = 1;
	pthread_mutex_unlock(&s->tokens.mu);
}

void entra_counts(struct server *s, long *requests, long *issued)
{
	pthread_mutex_lock(&s->tokens.mu);
	*requests = s->tokens.requests;
	*issued = s->tokens.issued;
	pthread_mutex_unlock(&s->tokens.mu);
}

/* ---- the token paths ----------------------------------------------------------- */

int entra_is_token_path(const char *path)
{
	size_t n = strlen(path), s = strlen(V2_SUFFIX);
	return strcmp(path, IMDS_PATH) == 0 || strcmp(path, APPSVC_PATH) == 0 ||
	       (n > s + 1 && path[0] == '/' && strcmp(path + n - s, V2_SUFFIX) == 0);
}

/* Percent-decodes s[0..n) into out ('+' is a space, as in forms). */
static void pct_decode(char *out, size_t cap, const char *s, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 1 < cap; i++) {
		if (s[i] == '%' && i + 2 < n && isxdigit((unsigned char)s[i + 1]) && isxdigit((unsigned char)s[i + 2])) {
			char hex[3] = {s[i + 1], s[i + 2], 0};
			out[o++] = (char)strtol(hex, NULL, 16);
			i += 2;
		} else {
			out[o++] = s[i] == '+' ? ' ' : s[i];
		}
	}
	out[o] = '\0';
}

/* A form or query field, decoded; 0 when absent. */
static int field(const char *form, const char *name, char *out, size_t cap)
{
	size_t nlen = strlen(name);
	for (const char *p = form; p && *p;) {
		const char *amp = strchr(p, '&');
		size_t plen = amp ? (size_t)(amp - p) : strlen(p);
		if (plen > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
			pct_decode(out, cap, p + nlen + 1, plen - nlen - 1);
			return 1;
		}
		p = amp ? amp + 1 : NULL;
	}
	return 0;
}

static void oauth_error(struct sbuf *b, const char *error, long code, const char *desc)
{
	sb_puts(b, "{\"error\":");
	sb_json(b, error, strlen(error));
	sb_printf(b, ",\"error_description\":\"AADSTS%ld: ", code);
	sb_add(b, desc, strlen(desc)); /* plain ASCII text, no quotes */
	sb_printf(b, "\",\"error_codes\":[%ld],\"timestamp\":\"2026-12-07 00:00:00Z\"}", code);
}

static void mi_error(struct sbuf *b, const char *error, const char *desc)
{
	sb_puts(b, "{\"error\":");
	sb_json(b, error, strlen(error));
	sb_puts(b, ",\"error_description\":");
	sb_json(b, desc, strlen(desc));
	sb_puts(b, "}");
}

/* The resource a v1-style request must name: the scope without ".default". */
static int resource_ok(const struct entra_cfg *e, const char *res)
{
	size_t n = strlen(e->scope), d = strlen(".default");
	if (n >= d && strcmp(e->scope + n - d, ".default") == 0)
		n -= d;
	return strlen(res) == n && strncmp(res, e->scope, n) == 0;
}

int entra_serve(struct conn *c, struct request *rq)
{
	const struct entra_cfg *e = &c->srv->sc.entra;
	struct sbuf b = SBUF_INIT;
	char v1[512], v2[512], tok[FK_TOKEN_LEN + 1];
	int64_t exp_ms = 0;
	int status = 200;
	int get = strcmp(rq->method, "GET") == 0, post = strcmp(rq->method, "POST") == 0;

	pthread_mutex_lock(&c->srv->tokens.mu);
	c->srv->tokens.requests++;
	pthread_mutex_unlock(&c->srv->tokens.mu);
	if (e->latency_ms > 0 && http_wait(c, e->latency_ms) != 0) {
		reqlog_write(c->srv, c->ep, rq, 0, "none", 0);
		http_close(c);
		return 0;
	}
	if (!e->on) {
		status = 404;
		mi_error(&b, "not_found", "this fake has no \"entra\" in its scenario");
	} else if (strcmp(rq->path, IMDS_PATH) == 0 || strcmp(rq->path, APPSVC_PATH) == 0) {
		int imds = strcmp(rq->path, IMDS_PATH) == 0;
		const char *meta = request_header(rq, "metadata"), *idh = request_header(rq, "x-identity-header");
		char ver[64] = "";
		request_query(rq, "api-version", ver, sizeof ver);
		if (!get) {
			status = 405;
			mi_error(&b, "invalid_request", "use GET");
		} else if (imds && (!meta || strcmp(meta, "true") != 0)) {
			status = 400;
			mi_error(&b, "invalid_request", "Required metadata header not specified");
		} else if (!imds && (!e->identity_header || !idh || strcmp(idh, e->identity_header) != 0)) {
			status = 401;
			mi_error(&b, "unauthorized", "X-IDENTITY-HEADER is missing or wrong");
		} else if (strcmp(ver, imds ? "2018-02-01" : "2019-08-01") != 0) {
			status = 400;
			mi_error(&b, "invalid_request", "unsupported api-version");
		} else if (!request_query(rq, "resource", v1, sizeof v1) ||
		           (pct_decode(v2, sizeof v2, v1, strlen(v1)), !resource_ok(e, v2))) {
			status = 400;
			mi_error(&b, "invalid_resource", "the resource is missing or not the configured one");
		} else if (request_query(rq, "client_id", v1, sizeof v1) && (!e->client_id || strcmp(v1, e->client_id) != 0)) {
			status = 400;
			mi_error(&b, "invalid_request", "Identity not found");
		} else {
			issue(c, tok, &exp_ms);
			long long on = exp_ms / 1000;
			sb_printf(&b, "{\"access_token\":\"%s\",", tok);
			if (imds)
				sb_printf(
				        &b,
				        "\"refresh_token\":\"\",\"expires_in\":\"%ld\",\"expires_on\":\"%lld\",\"not_before\":\"%lld\",",
				        e->lifetime_s, on, on - e->lifetime_s);
			else
				sb_printf(&b, "\"expires_on\":\"%lld\",\"client_id\":\"%s\",", on,
				          e->client_id ? e->client_id : "system");
			sb_puts(&b, "\"resource\":");
			sb_json(&b, v2, strlen(v2));
			sb_puts(&b, ",\"token_type\":\"Bearer\"}");
		}
	} else {
		size_t plen = strlen(rq->path), slen = strlen(V2_SUFFIX);
		char tenant[128];
		snprintf(tenant, sizeof tenant, "%.*s", (int)(plen - slen - 1), rq->path + 1);
		const char *form = rq->body ? rq->body : "";
		if (!post) {
			status = 405;
			oauth_error(&b, "invalid_request", 900561, "The endpoint only accepts POST requests.");
		} else if (!e->tenant_id || strcmp(tenant, e->tenant_id) != 0) {
			status = 400;
			oauth_error(&b, "invalid_request", 90002, "Tenant not found.");
		} else if (!field(form, "grant_type", v1, sizeof v1) || strcmp(v1, "client_credentials") != 0) {
			status = 400;
			oauth_error(&b, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.");
		} else if (!field(form, "client_id", v1, sizeof v1) || !e->client_id || strcmp(v1, e->client_id) != 0) {
			status = 400;
			oauth_error(&b, "unauthorized_client", 700016, "Application was not found in the directory.");
		} else if (!field(form, "scope", v1, sizeof v1) || strcmp(v1, e->scope) != 0) {
			status = 400;
			oauth_error(&b, "invalid_scope", 1002012, "The provided value for scope is not valid.");
		} else if (field(form, "client_secret", v1, sizeof v1)) {
			if (!e->client_secret || strcmp(v1, e->client_secret) != 0) {
				status = 401;
				oauth_error(&b, "invalid_client", 7000215, "Invalid client secret provided.");
			}
		} else if (field(form, "client_assertion_type", v1, sizeof v1) && strcmp(v1, JWT_BEARER) == 0 &&
		           field(form, "client_assertion", v2, sizeof v2)) {
			if (!e->federated_token || strcmp(v2, e->federated_token) != 0) {
				status = 400;
				oauth_error(&b, "invalid_client", 700213,
				            "No matching federated identity record found for presented assertion.");
			}
		} else {
			status = 400;
			oauth_error(&b, "invalid_client", 7000216,
			            "'client_assertion', 'client_secret' or 'request' is required.");
		}
		if (status == 200) {
			issue(c, tok, &exp_ms);
			sb_printf(&b,
			          "{\"token_type\":\"Bearer\",\"expires_in\":%ld,\"ext_expires_in\":%ld,\"access_token\":\"%s\"}",
			          e->lifetime_s, e->lifetime_s, tok);
		}
	}
	reqlog_write(c->srv, c->ep, rq, status, "none", 0);
	int keep = http_reply(c, rq, status, NULL, b.p, b.len) == 0 && rq->keep_alive;
	memset(b.p, 0, b.len);
	sb_release(&b);
	return keep;
}

/* ---- what the log may show ------------------------------------------------------- */

const char *entra_redact_header(struct server *s, const char *name, const char *value)
{
	if (strcmp(name, "x-identity-header") == 0)
		return s->sc.entra.identity_header && strcmp(value, s->sc.entra.identity_header) == 0 ? "<match>" : "<mismatch>";
	if (strcmp(name, "authorization") == 0 && strncasecmp(value, "Bearer ", 7) == 0) {
		const char *k = value + 7;
		while (*k == ' ')
			k++;
		switch (entra_token_state(s, k)) {
		case TOKEN_VALID: return "<token>";
		case TOKEN_EXPIRED: return "<expired token>";
		case TOKEN_REVOKED: return "<revoked token>";
		default: return NULL;
		}
	}
	return NULL;
}

char *entra_redact_body(const char *body)
{
	static const char *const secret_fields[] = {"client_secret=", "client_assertion="};
	struct sbuf out = SBUF_INIT;
	const char *p = body;
	while (*p) {
		const char *amp = strchr(p, '&');
		size_t plen = amp ? (size_t)(amp - p) : strlen(p);
		int hidden = 0;
		for (size_t i = 0; i < 2 && !hidden; i++) {
			size_t fl = strlen(secret_fields[i]);
			if (plen >= fl && strncmp(p, secret_fields[i], fl) == 0) {
				sb_add(&out, p, fl);
				sb_puts(&out, "<redacted>");
				hidden = 1;
			}
		}
		if (!hidden)
			sb_add(&out, p, plen);
		if (!amp)
			break;
		sb_puts(&out, "&");
		p = amp + 1;
	}
	return sb_take(&out);
}
