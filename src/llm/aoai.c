/* aoai.c -- building requests and parsing replies (see aoai.h).
 *
 * Bodies are written by hand with buf_json_str (fast, no tree); replies
 * are parsed with cJSON and copied into struct aoai_reply at once.
 */
#include "llm/aoai.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convbi/convbi.h"
#include "util/alloc.h"
#include "util/jsonx.h"

int aoai_url(struct buf *out, const struct ep_cfg *ep)
{
	switch (ep->kind) {
	case EP_AZURE:
		return buf_printf(out, "%s/openai/deployments/%s/chat/completions?api-version=%s", ep->url, ep->deployment,
		                  ep->api_version);
	case EP_AZURE_V1: return buf_printf(out, "%s/openai/v1/chat/completions", ep->url);
	default: return buf_printf(out, "%s/chat/completions", ep->url);
	}
}

int aoai_auth_header(struct buf *out, const struct ep_cfg *ep)
{
	if (!secret_is_set(&ep->key))
		return CONVBI_OK;
	if (ep->kind == EP_OPENAI)
		return buf_printf(out, "Authorization: Bearer %s", secret_value(&ep->key));
	return buf_printf(out, "api-key: %s", secret_value(&ep->key));
}

int aoai_body(struct buf *out, const struct ep_cfg *ep, const struct chat_req *req)
{
	int rc = buf_puts(out, "{\"messages\":[");
	for (size_t i = 0; !rc && i < req->n; i++) {
		const char *c = req->msgs[i].content ? req->msgs[i].content : "";
		rc = buf_printf(out, "%s{\"role\":\"%s\",\"content\":", i ? "," : "", req->msgs[i].role);
		if (!rc)
			rc = buf_json_str(out, c, strlen(c));
		if (!rc)
			rc = buf_putc(out, '}');
	}
	if (!rc)
		rc = buf_putc(out, ']');
	const char *model = ep->kind == EP_AZURE_V1 ? ep->deployment
	                    : ep->kind == EP_OPENAI ? (ep->model ? ep->model : "default")
	                                            : NULL;
	if (!rc && model) {
		rc = buf_puts(out, ",\"model\":");
		if (!rc)
			rc = buf_json_str(out, model, strlen(model));
	}
	if (!rc && req->max_tokens > 0)
		rc = buf_printf(out, ",\"max_tokens\":%d", req->max_tokens);
	if (!rc && req->temperature >= 0)
		rc = buf_printf(out, ",\"temperature\":%.3g", req->temperature);
	if (!rc && req->choices > 1 && !req->stream)
		rc = buf_printf(out, ",\"n\":%d", req->choices < AOAI_MAX_CHOICES ? req->choices : AOAI_MAX_CHOICES);
	if (!rc && req->stream)
		rc = buf_puts(out, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
	if (!rc)
		rc = buf_putc(out, '}');
	return rc;
}

void aoai_reply_init(struct aoai_reply *r)
{
	memset(r, 0, sizeof *r);
	buf_init(&r->content, AOAI_MAX_REPLY_BYTES);
	r->prompt_tokens = r->completion_tokens = -1;
}

void aoai_reply_release(struct aoai_reply *r)
{
	buf_release(&r->content);
	for (int i = 0; i < r->nextra; i++)
		free(r->extra[i]);
	r->nextra = 0;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
	if (src)
		snprintf(dst, cap, "%s", src);
}

static void read_usage(struct aoai_reply *out, const cJSON *root)
{
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "usage");
	if (!cJSON_IsObject(u))
		return;
	out->prompt_tokens = jsonx_int(u, "prompt_tokens", out->prompt_tokens, NULL);
	out->completion_tokens = jsonx_int(u, "completion_tokens", out->completion_tokens, NULL);
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens_details");
	if (cJSON_IsObject(d)) {
		int64_t c = jsonx_int(d, "cached_tokens", 0, NULL);
		out->cached_tokens = c > 0 ? c : 0;
	}
}

/* cJSON turns "\u0000" into a NUL that would silently cut the text at
 * that point; a model reply carrying one is refused as malformed. */
static int has_escaped_nul(const char *s, size_t len)
{
	for (size_t i = 0; i + 6 <= len; i++)
		if (s[i] == '\\' && (s[i + 1] == 'u' || s[i + 1] == 'U') && !memcmp(s + i + 2, "0000", 4)) {
			size_t k = i; /* an escaped backslash before it makes it literal text */
			while (k > 0 && s[k - 1] == '\\')
				k--;
			if ((i - k) % 2 == 0)
				return 1;
		}
	return memchr(s, '\0', len) != NULL;
}

/* The first AOAI_MAX_CHOICES choices in the order of their "index"
 * (their position when it is missing); returns how many. */
static int choices_by_index(const cJSON *choices, const cJSON **out)
{
	double key[AOAI_MAX_CHOICES];
	int n = 0;
	const cJSON *c;
	cJSON_ArrayForEach(c, choices)
	{
		if (n == AOAI_MAX_CHOICES)
			break;
		const cJSON *ix = cJSON_GetObjectItemCaseSensitive(c, "index");
		double k = cJSON_IsNumber(ix) ? ix->valuedouble : (double)n;
		int at = n++;
		for (; at > 0 && key[at - 1] > k; at--) { /* insertion: a handful of choices, stable */
			key[at] = key[at - 1];
			out[at] = out[at - 1];
		}
		key[at] = k;
		out[at] = c;
	}
	return n;
}

/* The JSON object text holds, or NULL with EPROTOCOL in err: "<what>
 * contains a NUL character" or "<what> <not_object>". */
static cJSON *parse_object(const char *text, size_t len, const char *what, const char *not_object, struct err *err)
{
	if (has_escaped_nul(text, len)) {
		err_set(err, CONVBI_EPROTOCOL, "%s contains a NUL character", what);
		return NULL;
	}
	cJSON *root = jsonx_parse(text, len);
	if (!cJSON_IsObject(root)) {
		err_set(err, CONVBI_EPROTOCOL, "%s %s", what, not_object);
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

int aoai_parse_reply(struct aoai_reply *out, const char *body, size_t len, struct err *err)
{
	int rc = CONVBI_OK;
	cJSON *root = parse_object(body, len, "the reply", "is not a JSON object", err);
	if (!root)
		return CONVBI_EPROTOCOL;
	copy_str(out->model, sizeof out->model, jsonx_str(root, "model"));
	read_usage(out, root);
	const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
	const cJSON *by_index[AOAI_MAX_CHOICES];
	int nc = cJSON_IsArray(choices) ? choices_by_index(choices, by_index) : 0;
	const cJSON *c0 = nc ? by_index[0] : NULL;
	const cJSON *msg = c0 ? cJSON_GetObjectItemCaseSensitive(c0, "message") : NULL;
	if (!cJSON_IsObject(msg)) {
		rc = err_set(err, CONVBI_EPROTOCOL, "the reply has no choices[0].message");
		goto done;
	}
	copy_str(out->finish_reason, sizeof out->finish_reason, jsonx_str(c0, "finish_reason"));
	const char *content = jsonx_str(msg, "content");
	buf_reset(&out->content);
	if (content && (rc = buf_puts(&out->content, content))) {
		err_set(err, rc, rc == CONVBI_ETOOBIG ? "the model's reply is larger than %zu bytes" : "out of memory",
		        AOAI_MAX_REPLY_BYTES);
		goto done;
	}
	for (int i = 1; i < nc; i++) { /* the other choices; a filtered or empty one is left out */
		const char *text = jsonx_str(cJSON_GetObjectItemCaseSensitive(by_index[i], "message"), "content");
		const char *why = jsonx_str(by_index[i], "finish_reason");
		if (!text || (why && !strcmp(why, "content_filter")))
			continue;
		if (!(out->extra[out->nextra] = xstrdup(text))) {
			rc = err_set(err, CONVBI_ENOMEM, "out of memory");
			goto done;
		}
		out->nextra++;
	}
done:
	cJSON_Delete(root);
	return rc;
}

int aoai_parse_chunk(struct aoai_reply *out, const char *data, size_t len, const char **delta, size_t *dlen, struct err *err)
{
	*delta = NULL;
	*dlen = 0;
	while (len && (data[len - 1] == ' ' || data[len - 1] == '\r' || data[len - 1] == '\n'))
		len--;
	if (len == 6 && !memcmp(data, "[DONE]", 6)) {
		out->done = 1;
		return CONVBI_OK;
	}
	int rc = CONVBI_OK;
	cJSON *root = parse_object(data, len, "a stream chunk", "is not valid JSON", err);
	if (!root)
		return CONVBI_EPROTOCOL;
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
	if (e) {
		rc = err_set(err, CONVBI_EPROTOCOL, "the stream carried an error: %s",
		             jsonx_str(e, "message") ? jsonx_str(e, "message") : "unknown");
		goto done;
	}
	if (jsonx_str(root, "model") && *jsonx_str(root, "model"))
		copy_str(out->model, sizeof out->model, jsonx_str(root, "model"));
	read_usage(out, root);
	const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
	if (choices && !cJSON_IsArray(choices)) {
		rc = err_set(err, CONVBI_EPROTOCOL, "a stream chunk has a non-array `choices`");
		goto done;
	}
	const cJSON *c0 = cJSON_GetArrayItem(choices, 0); /* Azure: first chunk may be empty */
	if (!c0)
		goto done;
	copy_str(out->finish_reason, sizeof out->finish_reason, jsonx_str(c0, "finish_reason"));
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(c0, "delta");
	const char *text = d ? jsonx_str(d, "content") : NULL;
	if (text && *text) {
		size_t off = out->content.len;
		if ((rc = buf_puts(&out->content, text))) {
			err_set(err, rc, rc == CONVBI_ETOOBIG ? "the model's reply is larger than %zu bytes" : "out of memory",
			        AOAI_MAX_REPLY_BYTES);
			goto done;
		}
		*delta = out->content.data + off;
		*dlen = out->content.len - off;
	}
done:
	cJSON_Delete(root);
	return rc;
}

/* The whole number after the first occurrence of key in s, 0 if none. */
static int64_t number_after(const char *s, const char *key)
{
	const char *p = strstr(s, key);
	if (!p)
		return 0;
	p += strlen(key);
	int64_t v = 0;
	for (int i = 0; i < 12 && *p >= '0' && *p <= '9'; i++, p++)
		v = v * 10 + (*p - '0');
	return v;
}

void aoai_context_numbers(const char *message, int64_t *limit, int64_t *used)
{
	*limit = number_after(message, "maximum context length is ");
	if (!*limit)
		*limit = number_after(message, "configured limit of ");
	*used = number_after(message, "resulted in ");
	if (!*used)
		*used = number_after(message, "you requested ");
}

int aoai_is_context_length(const struct aoai_error *e)
{
	return !strcmp(e->code, "context_length_exceeded") || strstr(e->message, "maximum context length") ||
	       (strstr(e->message, "exceed the configured limit of") && strstr(e->message, "tokens"));
}

void aoai_parse_error(struct aoai_error *out, const char *body, size_t len)
{
	memset(out, 0, sizeof *out);
	cJSON *root = jsonx_parse(body, len);
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
	if (cJSON_IsObject(e)) {
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
		if (cJSON_IsString(code))
			copy_str(out->code, sizeof out->code, code->valuestring);
		else if (cJSON_IsNumber(code))
			snprintf(out->code, sizeof out->code, "%d", code->valueint);
		copy_str(out->message, sizeof out->message, jsonx_str(e, "message"));
		const cJSON *inner = cJSON_GetObjectItemCaseSensitive(e, "innererror");
		if (!out->code[0] && inner)
			copy_str(out->code, sizeof out->code, jsonx_str(inner, "code"));
	} else if (len) {
		size_t n = len < sizeof out->message - 1 ? len : sizeof out->message - 1;
		memcpy(out->message, body, n);
		out->message[n] = '\0';
	}
	for (char *p = out->message; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	cJSON_Delete(root);
}
