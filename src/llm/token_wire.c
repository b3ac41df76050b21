/* token_wire.c -- token requests and replies of the Entra ID sources (see token.h).
 *
 * Pure: builds the URL, the extra header and the form body of a token
 * request from an identity, and reads a reply into a token and its
 * expiry.  The trap in the replies: IMDS writes expires_in and expires_on
 * as strings ("3599"), the v2.0 endpoint writes expires_in as a number,
 * App Service writes only expires_on (a string of Unix seconds); all are
 * accepted, expires_in first since it does not depend on our clock
 * agreeing with the service's.
 */
#include "llm/token.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "convbi/convbi.h"
#include "util/alloc.h"
#include "util/jsonx.h"

#define IMDS_API_VERSION "2018-02-01"
#define APP_SERVICE_API_VERSION "2019-08-01"
#define JWT_BEARER "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define MAX_EXPIRES_S (400LL * 24 * 3600) /* a lifetime beyond this is a bad reply */

void token_req_init(struct token_req *r)
{
	buf_init(&r->url, BUF_UNBOUNDED); /* built from the configuration's bounded values */
	buf_init(&r->header, BUF_UNBOUNDED);
	buf_init(&r->body, BUF_UNBOUNDED);
	r->get = 0;
}

static void wipe(struct buf *b)
{
	if (b->data)
		memset(b->data, 0, b->cap);
	buf_release(b);
}

void token_req_release(struct token_req *r)
{
	buf_release(&r->url);
	wipe(&r->header);
	wipe(&r->body);
}

/* Percent-encodes s (all but the unreserved characters of RFC 3986). */
static int put_enc(struct buf *out, const char *s)
{
	int rc = CONVBI_OK;
	for (const unsigned char *p = (const unsigned char *)s; !rc && *p; p++)
		rc = isalnum(*p) || strchr("-._~", *p) ? buf_putc(out, (char)*p) : buf_printf(out, "%%%02X", *p);
	return rc;
}

/* The resource of a v1-style request: the scope without ".default". */
static int put_resource(struct buf *out, const char *scope)
{
	size_t n = strlen(scope), d = strlen(".default");
	char res[1024];
	if (n >= d && !strcmp(scope + n - d, ".default"))
		n -= d;
	snprintf(res, sizeof res, "%.*s", (int)(n < sizeof res ? n : sizeof res - 1), scope);
	return put_enc(out, res);
}

static int uses_app_service(const struct auth_cfg *a)
{
	return a->type == AUTH_MANAGED_IDENTITY && a->identity_endpoint;
}

/* The token URL without a query: token_url, or the type's default. */
static int put_base(struct buf *out, const struct auth_cfg *a)
{
	if (a->token_url)
		return buf_puts(out, a->token_url);
	if (a->type == AUTH_MANAGED_IDENTITY)
		return buf_puts(out, uses_app_service(a) ? a->identity_endpoint : TOKEN_IMDS_URL);
	const char *auth = a->authority ? a->authority : AUTH_DEFAULT_AUTHORITY;
	size_t n = strlen(auth);
	while (n && auth[n - 1] == '/')
		n--;
	return buf_printf(out, "%.*s/%s/oauth2/v2.0/token", (int)n, auth, a->tenant_id ? a->tenant_id : "");
}

int token_endpoint_name(struct buf *out, const struct auth_cfg *a)
{
	size_t start = out->len;
	int rc = put_base(out, a);
	if (!rc) {
		char *q = strchr(out->data + start, '?');
		if (q) {
			out->len = (size_t)(q - out->data);
			*q = '\0';
		}
	}
	return rc;
}

int token_identity(struct buf *out, const struct auth_cfg *a)
{
	int rc = buf_printf(out, "%s|", config_auth_name(a->type));
	if (!rc)
		rc = put_base(out, a);
	if (!rc)
		rc = buf_printf(out, "|%s|%s|%s", a->client_id ? a->client_id : "", a->tenant_id ? a->tenant_id : "",
		                a->scope ? a->scope : "");
	return rc;
}

int token_request(struct token_req *out, const struct auth_cfg *a, const char *fed_token)
{
	const char *scope = a->scope ? a->scope : AUTH_DEFAULT_SCOPE;
	int rc = put_base(&out->url, a);
	if (rc)
		return rc;
	if (a->type == AUTH_MANAGED_IDENTITY) {
		out->get = 1;
		rc = buf_printf(&out->url, "%capi-version=%s&resource=", strchr(out->url.data, '?') ? '&' : '?',
		                uses_app_service(a) ? APP_SERVICE_API_VERSION : IMDS_API_VERSION);
		if (!rc)
			rc = put_resource(&out->url, scope);
		if (!rc && a->client_id && !(rc = buf_puts(&out->url, "&client_id=")))
			rc = put_enc(&out->url, a->client_id);
		if (!rc)
			rc = uses_app_service(a)
			             ? buf_printf(&out->header, "X-IDENTITY-HEADER: %s", secret_value(&a->identity_header))
			             : buf_puts(&out->header, "Metadata: true");
		return rc;
	}
	out->get = 0;
	rc = buf_puts(&out->header, "Content-Type: application/x-www-form-urlencoded");
	if (!rc)
		rc = buf_puts(&out->body, "grant_type=client_credentials&client_id=");
	if (!rc)
		rc = put_enc(&out->body, a->client_id ? a->client_id : "");
	if (!rc)
		rc = buf_puts(&out->body, "&scope=");
	if (!rc)
		rc = put_enc(&out->body, scope);
	if (a->type == AUTH_WORKLOAD_IDENTITY) {
		if (!rc)
			rc = buf_puts(&out->body, "&client_assertion_type=");
		if (!rc)
			rc = put_enc(&out->body, JWT_BEARER);
		if (!rc)
			rc = buf_puts(&out->body, "&client_assertion=");
		if (!rc)
			rc = put_enc(&out->body, fed_token ? fed_token : "");
	} else {
		if (!rc)
			rc = buf_puts(&out->body, "&client_secret=");
		if (!rc)
			rc = put_enc(&out->body, secret_value(&a->client_secret));
	}
	return rc;
}

/* ---- replies ----------------------------------------------------------- */

void token_val_release(struct token_val *v)
{
	if (!v)
		return;
	if (v->token) {
		memset(v->token, 0, strlen(v->token));
		free(v->token);
	}
	memset(v, 0, sizeof *v);
}

/* A whole number of seconds, written as a JSON number or a string of
 * digits; -1 when absent or anything else. */
static long long seconds_of(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (cJSON_IsNumber(v))
		return v->valuedouble >= 0 && v->valuedouble < 9e15 ? (long long)v->valuedouble : -1;
	if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > 15)
		return -1;
	for (const char *p = v->valuestring; *p; p++)
		if (!isdigit((unsigned char)*p))
			return -1;
	return atoll(v->valuestring);
}

int token_parse_reply(struct token_val *out, const char *body, size_t len, int64_t now_ms, struct err *err)
{
	int rc = CONVBI_OK;
	memset(out, 0, sizeof *out);
	cJSON *root = jsonx_parse(body, len);
	if (!cJSON_IsObject(root)) {
		rc = err_set(err, CONVBI_EAUTH, "the token service's reply is not a JSON object");
		goto done;
	}
	const char *tok = jsonx_str(root, "access_token");
	const char *type = jsonx_str(root, "token_type");
	if (!tok || !*tok) {
		rc = err_set(err, CONVBI_EAUTH, "the token service's reply has no access_token");
		goto done;
	}
	if (strlen(tok) > TOKEN_MAX_BYTES) {
		rc = err_set(err, CONVBI_EAUTH, "the token service's access_token is larger than %zu bytes", TOKEN_MAX_BYTES);
		goto done;
	}
	for (const unsigned char *p = (const unsigned char *)tok; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f) {
			rc = err_set(err, CONVBI_EAUTH,
			             "the token service's access_token holds a character a header cannot carry");
			goto done;
		}
	if (type && strcasecmp(type, "Bearer")) {
		rc = err_set(err, CONVBI_EAUTH, "the token service issued a token of type `%.40s`; only Bearer tokens are used",
		             type);
		goto done;
	}
	long long in = seconds_of(root, "expires_in"), on = seconds_of(root, "expires_on");
	if (in >= 0 && in <= MAX_EXPIRES_S) {
		out->expires_ms = now_ms + in * 1000;
		out->lifetime_ms = in * 1000;
	} else if (on > 0 && on * 1000 > now_ms && on * 1000 - now_ms <= MAX_EXPIRES_S * 1000) {
		out->expires_ms = on * 1000;
		out->lifetime_ms = on * 1000 - now_ms;
	} else if (on > 0 && on * 1000 <= now_ms) {
		rc = err_set(err, CONVBI_EAUTH,
		             "the token service issued a token that has already expired (expires_on %lld); check this "
		             "host's clock",
		             on);
		goto done;
	} else {
		rc = err_set(err, CONVBI_EAUTH, "the token service's reply has no usable expires_in or expires_on");
		goto done;
	}
	if (out->lifetime_ms <= 0) {
		rc = err_set(err, CONVBI_EAUTH, "the token service issued a token that expires at once (expires_in 0)");
		goto done;
	}
	if (!(out->token = xstrdup(tok)))
		rc = err_code(err, CONVBI_ENOMEM);
done:
	if (root) {
		cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "access_token");
		if (cJSON_IsString(t))
			memset(t->valuestring, 0, strlen(t->valuestring));
	}
	cJSON_Delete(root);
	if (rc)
		token_val_release(out);
	return rc;
}

/* Copies text into out as one line of printable characters. */
static void one_line(char *out, size_t cap, const char *text)
{
	size_t n = 0;
	for (const char *p = text; *p && n + 1 < cap; p++)
		out[n++] = (unsigned char)*p < 0x20 ? ' ' : *p;
	out[n] = '\0';
}

void token_error_text(char *out, size_t cap, long status, const char *body, size_t len)
{
	char desc[240] = "", code[64] = "";
	cJSON *root = jsonx_parse(body, len);
	if (cJSON_IsObject(root)) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
		if (cJSON_IsString(e))
			one_line(code, sizeof code, e->valuestring);
		else if (cJSON_IsObject(e)) { /* some proxies answer in the Azure OpenAI shape */
			if (jsonx_str(e, "code"))
				one_line(code, sizeof code, jsonx_str(e, "code"));
			if (jsonx_str(e, "message"))
				one_line(desc, sizeof desc, jsonx_str(e, "message"));
		}
		if (jsonx_str(root, "error_description"))
			one_line(desc, sizeof desc, jsonx_str(root, "error_description"));
	}
	cJSON_Delete(root);
	snprintf(out, cap, "HTTP %ld%s%s%s%s", status, code[0] ? " " : "", code, desc[0] ? ": " : "", desc);
}

int64_t token_refresh_at(int64_t expires_ms, int64_t lifetime_ms)
{
	int64_t margin = lifetime_ms / TOKEN_REFRESH_FRACTION;
	if (margin > TOKEN_REFRESH_MARGIN_MS || margin <= 0)
		margin = margin <= 0 ? 0 : TOKEN_REFRESH_MARGIN_MS;
	return expires_ms - margin;
}
