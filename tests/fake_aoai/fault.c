/* fault.c -- fault kinds, their presets, and the per-endpoint fault queue.
 *
 * A fault list is a JSON array (the scenario's endpoint "faults", or the
 * body of POST /_fake/faults).  Each entry is parsed once into a struct
 * fault whose error reply (status, body, extra headers) is fully built at
 * parse time, so serving a fault is a copy.  Presets are status faults with
 * the real service's wording:
 *   http500 http503 http401 http404(DeploymentNotFound) context_length
 *   content_filter rate_limit rate_limit_bare daily_quota
 * and "status" is the generic one ("status" required, "code", "message",
 * "headers", "body", "retry_after_s"/"retry_after_ms" optional).  The
 * connection faults (reset, hang, slow_first_token, stream_cut, stream_stall,
 * malformed_chunk, no_done, flap) carry only their parameters; route.c and
 * wire.c act them out.
 *
 * Queue rule: the first entry whose count is not 0 applies to the next
 * request and counts down (-1 = forever, the default).  A flap entry instead
 * lives by the clock: its first hit starts a down_ms window during which
 * every request gets its 503; the first request after the window finds it
 * spent and moves on down the queue.
 */
#include "fake_aoai.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_FAULT_HEADERS 32

#define RATE_MSG                                                                                                  \
	"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version " FK_DEFAULT_API_VERSION \
	" have exceeded call rate limit of your current OpenAI S0 pricing "                                       \
	"tier. Please retry after %ld seconds. Please go here: https://aka.ms/oai/quotaincrease if "              \
	"you would like to further increase the default rate limit."

static const char BARE_RATE_MSG[] = "Rate limit is exceeded. Try again later.";
static const char DAILY_MSG[] =
        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version " FK_DEFAULT_API_VERSION
        " have exceeded the daily token quota of your current OpenAI S0 "
        "pricing tier. Please retry after 86400 seconds. Please go here: "
        "https://aka.ms/oai/quotaincrease if you would like to further increase the default quota.";
static const char CONTEXT_MSG[] =
        "This model's maximum context length is 128000 tokens. However, your messages resulted in "
        "130000 tokens. Please reduce the length of the messages.";
static const char FILTER_MSG[] =
        "The response was filtered due to the prompt triggering Azure OpenAI's content management "
        "policy. Please modify your prompt and retry. To learn more about our content filtering "
        "policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766";
static const char NOT_DEPLOYED_MSG[] =
        "The API deployment for this resource does not exist. If you created the deployment within "
        "the last 5 minutes, please wait a moment and try again.";
static const char DENIED_MSG[] =
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
        "a valid key for an active subscription and use a correct regional API endpoint for your "
        "resource.";

static const struct kind_row {
	const char *name;
	enum fault_kind kind;
	int status; /* status faults: the preset status */
} kinds[] = {
        {"status", FAULT_STATUS, 0},
        {"http500", FAULT_STATUS, 500},
        {"http503", FAULT_STATUS, 503},
        {"http401", FAULT_STATUS, 401},
        {"http404", FAULT_STATUS, 404},
        {"context_length", FAULT_STATUS, 400},
        {"content_filter", FAULT_STATUS, 400},
        {"rate_limit", FAULT_STATUS, 429},
        {"rate_limit_bare", FAULT_STATUS, 429},
        {"daily_quota", FAULT_STATUS, 429},
        {"reset", FAULT_RESET, 0},
        {"hang", FAULT_HANG, 0},
        {"slow_first_token", FAULT_SLOW_FIRST_TOKEN, 0},
        {"stream_cut", FAULT_STREAM_CUT, 0},
        {"stream_stall", FAULT_STREAM_STALL, 0},
        {"malformed_chunk", FAULT_MALFORMED_CHUNK, 0},
        {"no_done", FAULT_NO_DONE, 0},
        {"flap", FAULT_FLAP, 503},
};

static const char *const known_fields[] = {
        "kind",          "count",          "status",   "code",         "message", "body",    "headers",
        "retry_after_s", "retry_after_ms", "delay_ms", "after_chunks", "down_ms", "comment",
};

static const char *default_message(int status)
{
	switch (status) {
	case 400: return "The request is invalid.";
	case 401: return DENIED_MSG;
	case 403: return "Access to this resource is forbidden.";
	case 404: return "Resource not found";
	case 408: return "The operation was timeout.";
	case 409: return "The request conflicts with the current state of the resource. Please retry.";
	case 429: return BARE_RATE_MSG;
	case 500: return "The server had an error while processing your request. Sorry about that!";
	case 502: return "Bad gateway.";
	case 503: return "The service is temporarily unable to process your request. Please try again later.";
	case 504: return "The operation was timeout.";
	default: return "The request failed.";
	}
}

static void error_body(struct sbuf *b, const char *code, const char *message)
{
	sb_puts(b, "{\"error\":{\"code\":");
	sb_json(b, code, strlen(code));
	sb_puts(b, ",\"message\":");
	sb_json(b, message, strlen(message));
	sb_puts(b, "}}");
}

static void filter_body(struct sbuf *b, const char *message)
{
	static const char safe[] = "{\"filtered\":false,\"severity\":\"safe\"}";
	sb_puts(b, "{\"error\":{\"message\":");
	sb_json(b, message, strlen(message));
	sb_printf(b,
	          ",\"type\":null,\"param\":\"prompt\",\"code\":\"content_filter\",\"status\":400,"
	          "\"innererror\":{\"code\":\"ResponsibleAIPolicyViolation\",\"content_filter_result\":"
	          "{\"hate\":%s,\"jailbreak\":{\"filtered\":false,\"detected\":false},\"self_harm\":%s,"
	          "\"sexual\":%s,\"violence\":{\"filtered\":true,\"severity\":\"medium\"}}}}}",
	          safe, safe, safe);
}

static void context_body(struct sbuf *b, const char *message)
{
	sb_puts(b, "{\"error\":{\"message\":");
	sb_json(b, message, strlen(message));
	sb_puts(b,
	        ",\"type\":\"invalid_request_error\",\"param\":\"messages\","
	        "\"code\":\"context_length_exceeded\"}}");
}

/* ---- parsing ------------------------------------------------------------- */

struct hlist { /* header lines under construction; later names replace */
	char *name[MAX_FAULT_HEADERS];
	char *value[MAX_FAULT_HEADERS];
	int n;
};

static void hlist_set(struct hlist *h, const char *name, const char *value)
{
	for (int i = 0; i < h->n; i++) {
		if (strcasecmp(h->name[i], name) == 0) {
			free(h->value[i]);
			h->value[i] = xstrdup(value);
			return;
		}
	}
	if (h->n < MAX_FAULT_HEADERS) {
		h->name[h->n] = xstrdup(name);
		h->value[h->n] = xstrdup(value);
		h->n++;
	}
}

static char *hlist_take(struct hlist *h)
{
	struct sbuf b = SBUF_INIT;
	for (int i = 0; i < h->n; i++) {
		sb_printf(&b, "%s: %s\r\n", h->name[i], h->value[i]);
		free(h->name[i]);
		free(h->value[i]);
	}
	h->n = 0;
	return b.len ? sb_take(&b) : NULL;
}

static int bad(char *err, size_t errlen, int i, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int bad(char *err, size_t errlen, int i, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "faults[%d]: %s", i, msg);
	return -1;
}

/* Reads an optional integer field in [lo, hi]; keeps *out when absent. */
static int get_int(const cJSON *o, const char *key, int lo, int hi, int *out, char *err, size_t errlen, int i)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!v)
		return 0;
	if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi) {
		char msg[160];
		snprintf(msg, sizeof msg, "`%s` must be an integer from %d to %d", key, lo, hi);
		return bad(err, errlen, i, "%s", msg);
	}
	*out = (int)v->valuedouble;
	return 0;
}

static int get_str(const cJSON *o, const char *key, const char **out, char *err, size_t errlen, int i)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!v)
		return 0;
	if (!cJSON_IsString(v))
		return bad(err, errlen, i, "`%s` must be a string", key);
	*out = v->valuestring;
	return 0;
}

static int header_ok(const char *name, const char *value)
{
	if (!*name)
		return 0;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("!#$%&'*+-.^_`|~", *p))
			return 0;
	return strpbrk(value, "\r\n") == NULL;
}

/* Builds the reply of a status-like fault (status presets and flap). */
static int build_status(struct fault *f, const cJSON *o, const struct kind_row *k, char *err, size_t errlen, int i)
{
	const char *code = NULL, *message = NULL, *body = NULL;
	int retry_ms = -1;
	struct hlist h = {{0}, {0}, 0};
	struct sbuf b = SBUF_INIT;
	char num[32], msg[512];

	f->status = k->status;
	if (get_int(o, "status", 100, 599, &f->status, err, errlen, i) || get_str(o, "code", &code, err, errlen, i) ||
	    get_str(o, "message", &message, err, errlen, i) || get_str(o, "body", &body, err, errlen, i) ||
	    get_int(o, "retry_after_ms", 0, 1000000000, &retry_ms, err, errlen, i))
		return -1;
	if (f->status == 0)
		return bad(err, errlen, i, "%s", "a `status` fault needs `status` (100-599)");
	const cJSON *ras = cJSON_GetObjectItemCaseSensitive(o, "retry_after_s");
	if (ras) {
		if (!cJSON_IsNumber(ras) || ras->valuedouble < 0 || ras->valuedouble > 1e6)
			return bad(err, errlen, i, "%s", "`retry_after_s` must be a number of seconds");
		retry_ms = (int)llround(ras->valuedouble * 1000.0);
	}
	if (strcmp(k->name, "rate_limit") == 0 && retry_ms < 0)
		retry_ms = 20000;
	if (strcmp(k->name, "daily_quota") == 0 && retry_ms < 0)
		retry_ms = 86400000;
	if (strcmp(k->name, "rate_limit_bare") == 0)
		retry_ms = -1;
	if (retry_ms >= 0) {
		snprintf(num, sizeof num, "%ld", ((long)retry_ms + 999) / 1000);
		hlist_set(&h, "retry-after", num);
		snprintf(num, sizeof num, "%d", retry_ms);
		hlist_set(&h, "retry-after-ms", num);
	}

	const cJSON *hdrs = cJSON_GetObjectItemCaseSensitive(o, "headers");
	if (hdrs && !cJSON_IsObject(hdrs)) {
		free(hlist_take(&h));
		return bad(err, errlen, i, "%s", "`headers` must be an object of strings");
	}
	const cJSON *hv;
	cJSON_ArrayForEach(hv, hdrs)
	{
		char val[64];
		const char *s = hv->valuestring;
		if (cJSON_IsNumber(hv)) {
			snprintf(val, sizeof val, "%.15g", hv->valuedouble);
			s = val;
		} else if (!cJSON_IsString(hv)) {
			s = NULL;
		}
		if (!s || !header_ok(hv->string, s)) {
			free(hlist_take(&h));
			return bad(err, errlen, i, "header `%s` is not a valid header line", hv->string);
		}
		hlist_set(&h, hv->string, s);
	}
	f->headers = hlist_take(&h);

	if (body) {
		f->body = xstrdup(body);
		return 0;
	}
	if (strcmp(k->name, "content_filter") == 0) {
		filter_body(&b, message ? message : FILTER_MSG);
	} else if (strcmp(k->name, "context_length") == 0) {
		context_body(&b, message ? message : CONTEXT_MSG);
	} else {
		const char *dcode = NULL, *dmsg = default_message(f->status);
		snprintf(num, sizeof num, "%d", f->status);
		if (strcmp(k->name, "http404") == 0) {
			dcode = "DeploymentNotFound";
			dmsg = NOT_DEPLOYED_MSG;
		} else if (strcmp(k->name, "daily_quota") == 0) {
			dmsg = DAILY_MSG;
		} else if (f->status == 429 && retry_ms >= 0) {
			snprintf(msg, sizeof msg, RATE_MSG, ((long)retry_ms + 999) / 1000);
			dmsg = msg;
		}
		error_body(&b, code ? code : dcode ? dcode : num, message ? message : dmsg);
	}
	f->body = sb_take(&b);
	return 0;
}

static int parse_one(const cJSON *o, struct fault *f, char *err, size_t errlen, int i)
{
	if (!cJSON_IsObject(o))
		return bad(err, errlen, i, "%s", "each fault must be an object");
	const cJSON *field;
	cJSON_ArrayForEach(field, o)
	{
		int known = field->string[0] == '_';
		for (size_t j = 0; !known && j < sizeof known_fields / sizeof *known_fields; j++)
			known = strcmp(field->string, known_fields[j]) == 0;
		if (!known)
			return bad(err, errlen, i, "unknown field `%s`", field->string);
	}
	const char *kind = NULL;
	if (get_str(o, "kind", &kind, err, errlen, i))
		return -1;
	if (!kind)
		return bad(err, errlen, i, "%s", "`kind` is missing");
	const struct kind_row *k = NULL;
	for (size_t j = 0; j < sizeof kinds / sizeof *kinds; j++)
		if (strcmp(kinds[j].name, kind) == 0)
			k = &kinds[j];
	if (!k)
		return bad(err, errlen, i, "unknown kind `%s`", kind);

	f->kind = k->kind;
	f->name = xstrdup(k->name);
	f->count = -1;
	f->after_chunks = 2;
	f->delay_ms = 1000;
	f->down_ms = 1000;
	if (get_int(o, "count", -1, 1000000000, &f->count, err, errlen, i) ||
	    get_int(o, "delay_ms", 0, 3600000, &f->delay_ms, err, errlen, i) ||
	    get_int(o, "after_chunks", 0, 1000000000, &f->after_chunks, err, errlen, i) ||
	    get_int(o, "down_ms", 0, 3600000, &f->down_ms, err, errlen, i))
		return -1;
	if (k->kind == FAULT_STATUS || k->kind == FAULT_FLAP)
		return build_status(f, o, k, err, errlen, i);
	return 0;
}

int fault_parse_array(const cJSON *arr, struct fault **out, int *nout, char *err, size_t errlen)
{
	*out = NULL;
	*nout = 0;
	if (!cJSON_IsArray(arr)) {
		snprintf(err, errlen, "faults must be a JSON array of fault objects");
		return -1;
	}
	int n = cJSON_GetArraySize(arr), i = 0;
	struct fault *list = xcalloc((size_t)n, sizeof *list);
	const cJSON *o;
	cJSON_ArrayForEach(o, arr)
	{
		if (parse_one(o, &list[i], err, errlen, i)) {
			fault_list_free(list, i + 1);
			return -1;
		}
		i++;
	}
	*out = list;
	*nout = n;
	return 0;
}

int fault_parse_list(const char *json, size_t len, struct fault **out, int *nout, char *err, size_t errlen)
{
	size_t nul = json_escaped_nul(json, len);
	cJSON *arr = nul ? NULL : cJSON_ParseWithLength(json, len);
	if (nul) {
		*out = NULL;
		*nout = 0;
		snprintf(
		        err, errlen,
		        "\\u0000 at byte %zu: the fake's strings end at a NUL; in a body write the JSON escape itself (\\\\u0000)",
		        nul - 1);
		return -1;
	}
	if (!arr) {
		*out = NULL;
		*nout = 0;
		snprintf(err, errlen, "faults must be a JSON array; the body is not valid JSON");
		return -1;
	}
	int rc = fault_parse_array(arr, out, nout, err, errlen);
	cJSON_Delete(arr);
	return rc;
}

void fault_list_free(struct fault *f, int n)
{
	if (!f)
		return;
	for (int i = 0; i < n; i++) {
		free(f[i].name);
		free(f[i].body);
		free(f[i].headers);
	}
	free(f);
}

void fault_hit_release(struct fault_hit *hit)
{
	if (!hit)
		return;
	free(hit->body);
	free(hit->headers);
	hit->body = hit->headers = NULL;
}

static void hit_from(struct fault_hit *hit, const struct fault *f)
{
	hit->kind = f->kind;
	snprintf(hit->name, sizeof hit->name, "%s", f->name);
	hit->status = f->status;
	hit->body = f->body ? xstrdup(f->body) : NULL;
	hit->headers = f->headers ? xstrdup(f->headers) : NULL;
	hit->delay_ms = f->delay_ms;
	hit->after_chunks = f->after_chunks;
}

void fault_take(struct endpoint *ep, int64_t now, struct fault_hit *hit)
{
	memset(hit, 0, sizeof *hit);
	hit->kind = FAULT_NONE;
	snprintf(hit->name, sizeof hit->name, "none");
	for (int i = 0; i < ep->nfaults; i++) {
		struct fault *f = &ep->faults[i];
		if (f->count == 0)
			continue;
		if (f->kind == FAULT_FLAP) {
			if (f->flap_until_ms == 0)
				f->flap_until_ms = now + f->down_ms;
			if (now < f->flap_until_ms) {
				hit_from(hit, f);
				return;
			}
			f->count = 0; /* the endpoint is back up */
			continue;
		}
		hit_from(hit, f);
		if (f->count > 0)
			f->count--;
		return;
	}
}
