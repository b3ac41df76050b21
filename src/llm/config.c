/* config.c -- reading the endpoint configuration (see config.h).
 *
 * Validation is strict and every message is one line that names the
 * source, the endpoint and the fix: an unknown kind, a missing url or
 * deployment, a non-http(s) URL, a duplicate name, a key variable that is
 * not set.  Defaults: kind azure, api_version 2024-10-21, weight 1,
 * priority 0; retry 6 attempts, 60 s deadline, 3 s connect, 30 s first
 * byte, 15 s idle.
 *
 * Nothing is mangled on the way in: the file must be one JSON object and
 * nothing after it, with no NUL (raw or \u0000) to cut a string short;
 * every number field is a whole number inside its range (1.9 is not 1,
 * 4294967297 does not wrap to 1), and a message names the field and its
 * range; values that end up in an HTTP header or the URL (key, url,
 * deployment, api_version, model, name) hold no control character, so a
 * CR LF can never inject a header.  The file itself must be a regular
 * file of at most CONFIG_MAX_FILE_BYTES: a FIFO or a device is refused
 * before any read, and nothing past the limit is read.
 */
#include "llm/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convbi/convbi.h"
#include "util/alloc.h"
#include "util/jsonx.h"
#include "util/regfile.h"

#define DEFAULT_API_VERSION "2024-10-21"

static const char *const kind_names[] = {"azure", "azure-v1", "openai"};

const char *config_kind_name(int kind)
{
	return kind >= 0 && kind <= EP_OPENAI ? kind_names[kind] : "?";
}

static void retry_defaults(struct retry_cfg *r)
{
	r->max_attempts = 6;
	r->deadline_ms = 60000;
	r->connect_timeout_ms = 3000;
	r->first_byte_timeout_ms = 30000;
	r->idle_timeout_ms = 15000;
}

void config_release(struct llm_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		struct ep_cfg *e = &c->eps[i];
		free(e->name);
		free(e->url);
		free(e->deployment);
		free(e->model);
		free(e->api_version);
		free(e->spillover_deployment);
		secret_release(&e->key);
		config_auth_release(&e->auth);
	}
	free(c->eps);
	free(c->state.backend);
	free(c->state.path);
	free(c->state.url);
	free(c->state.prefix);
	free(c->source);
	memset(c, 0, sizeof *c);
}

static int dup_opt(char **dst, const char *src)
{
	if (!src)
		return CONVBI_OK;
	*dst = xstrdup(src);
	return *dst ? CONVBI_OK : CONVBI_ENOMEM;
}

static char *trim_url(const char *url)
{
	char *u = xstrdup(url);
	if (!u)
		return NULL;
	size_t n = strlen(u);
	while (n && (u[n - 1] == '/' || u[n - 1] == ' '))
		u[--n] = '\0';
	return u;
}

/* How a JSON value that should be a whole number looks, for messages. */
static void shown_value(char *out, size_t cap, const cJSON *v)
{
	if (cJSON_IsNumber(v))
		snprintf(out, cap, "%.15g", v->valuedouble);
	else if (cJSON_IsString(v))
		snprintf(out, cap, "\"%.40s\" (a string)", v->valuestring);
	else if (cJSON_IsBool(v))
		snprintf(out, cap, "%s (a boolean)", cJSON_IsTrue(v) ? "true" : "false");
	else
		snprintf(out, cap, "%s", cJSON_IsArray(v) ? "an array" : "an object");
}

/* Reads the field key of o into *slot when present (null counts as
 * absent): it must be a whole number from min to max.  Returns 0, or -1
 * with the offending value written to shown. */
static int whole_number(const cJSON *o, const char *key, int64_t min, int64_t max, int *slot, char *shown, size_t cap)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!v || cJSON_IsNull(v))
		return 0;
	double d = cJSON_IsNumber(v) ? v->valuedouble : 0;
	if (!cJSON_IsNumber(v) || d != d || d < (double)min || d > (double)max || d != (double)(int64_t)d) {
		shown_value(shown, cap, v);
		return -1;
	}
	*slot = (int)d;
	return 0;
}

/* The name of the first control character in s (a CR or LF would end an
 * HTTP header line and start another), or NULL when there is none. */
const char *config_control_char(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; s && *p; p++) {
		if (*p == '\r')
			return "a carriage return (CR)";
		if (*p == '\n')
			return "a line feed (LF)";
		if (*p < 0x20 || *p == 0x7f)
			return "a control character";
	}
	return NULL;
}

const char *config_unknown_field(const cJSON *o, const char *const *fields, size_t n)
{
	const cJSON *f;
	cJSON_ArrayForEach(f, o)
	{
		size_t i = 0;
		while (i < n && strcmp(f->string, fields[i]))
			i++;
		if (i == n)
			return f->string;
	}
	return NULL;
}

/* Refuses control characters in every value that reaches a header, the
 * URL or a log line.  The key is never shown, only named. */
static int check_one_line(const struct ep_cfg *e, const char *src, struct err *err)
{
	const struct {
		const char *field, *value;
	} f[] = {
	        {"name", e->name},
	        {"url", e->url},
	        {"deployment", e->deployment},
	        {"model", e->model},
	        {"api_version", e->api_version},
	        {"spillover_deployment", e->spillover_deployment},
	};
	const char *what;
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
		if ((what = config_control_char(f[i].value)))
			return err_set(
			        err, CONVBI_ECONFIG,
			        "%s: endpoint `%s` has %s in its `%s`; remove it (these values go into HTTP requests as they are)",
			        src, i == 0 ? "(unnamed)" : e->name, what, f[i].field);
	return CONVBI_OK;
}

/* Stores an API key after checking it: the key goes into an HTTP header,
 * so a CR or LF in it would inject another header.  It is never shown. */
static int set_key(struct ep_cfg *e, const char *key, const char *src, struct err *err)
{
	const char *what = config_control_char(key);
	if (what)
		return err_set(err, CONVBI_ECONFIG,
		               "%s: endpoint `%s` has %s in its API key; remove it (the key goes into an HTTP header)", src,
		               e->name, what);
	return secret_set(&e->key, key);
}

/* Checks one parsed endpoint for the fields its kind needs. */
static int check_endpoint(const struct ep_cfg *e, const char *src, struct err *err)
{
	int rc = check_one_line(e, src, err);
	if (rc)
		return rc;
	if (!e->url || !*e->url)
		return err_set(err, CONVBI_ECONFIG,
		               "%s: endpoint `%s` has no `url`; add its base URL, e.g. https://NAME.openai.azure.com", src,
		               e->name);
	if (strncmp(e->url, "http://", 7) && strncmp(e->url, "https://", 8)) {
		char url[256];
		secret_url_shown(url, sizeof url, e->url);
		return err_set(err, CONVBI_ECONFIG, "%s: endpoint `%s` has url `%s`; it must start with http:// or https://", src,
		               e->name, url);
	}
	if (e->kind != EP_OPENAI && (!e->deployment || !*e->deployment))
		return err_set(err, CONVBI_ECONFIG, "%s: endpoint `%s` (kind %s) has no `deployment`; add the deployment name",
		               src, e->name, config_kind_name(e->kind));
	if (e->kind != EP_OPENAI && e->auth.type == AUTH_API_KEY && !secret_is_set(&e->key))
		return err_set(
		        err, CONVBI_ECONFIG,
		        "%s: endpoint `%s` has no API key; set `api_key` or `api_key_env` to a variable that holds it, or an Entra ID `auth`",
		        src, e->name);
	if (e->spillover_deployment && e->kind == EP_OPENAI)
		return err_set(
		        err, CONVBI_ECONFIG,
		        "%s: endpoint `%s` (kind openai) has a `spillover_deployment`; spillover is an Azure feature, remove it",
		        src, e->name);
	return CONVBI_OK;
}

static int parse_endpoint(struct ep_cfg *e, const cJSON *o, size_t idx, const char *src, struct err *err)
{
	int rc;
	char fallback[32];
	if (!cJSON_IsObject(o))
		return err_set(err, CONVBI_ECONFIG, "%s: endpoints[%zu] is not an object; write {\"name\": ..., \"url\": ...}",
		               src, idx);
	const char *name = jsonx_str(o, "name");
	snprintf(fallback, sizeof fallback, "endpoint-%zu", idx);
	if ((rc = dup_opt(&e->name, name && *name ? name : fallback)))
		return rc;
	const char *what = config_control_char(e->name);
	if (what)
		return err_set(err, CONVBI_ECONFIG, "%s: endpoints[%zu] has %s in its `name`; remove it", src, idx, what);
	static const char *const fields[] = {
	        "name",        "kind",           "url",         "endpoint", "deployment", "model",  "spillover_deployment",
	        "api_version", "api_key",        "api_key_env", "auth",     "priority",   "weight", "rpm",
	        "tpm",         "context_window", "price",       "reserved", "budget"};
	const char *unknown = config_unknown_field(o, fields, sizeof fields / sizeof fields[0]);
	if (unknown)
		return err_set(err, CONVBI_ECONFIG,
		               "%s: endpoint `%s` has an unknown field `%.40s`; remove it or correct its name (the fields "
		               "are name, kind, url, deployment, model, spillover_deployment, api_version, api_key, "
		               "api_key_env, auth, priority, weight, rpm, tpm, context_window, price, reserved, budget)",
		               src, e->name, unknown);
	const char *kind = jsonx_str(o, "kind");
	e->kind = EP_AZURE;
	if (kind) {
		int k = -1;
		for (int i = 0; i <= EP_OPENAI; i++)
			if (!strcmp(kind, kind_names[i]))
				k = i;
		if (k < 0)
			return err_set(err, CONVBI_ECONFIG,
			               "%s: endpoint `%s` has kind `%s`; use \"azure\", \"azure-v1\" or \"openai\"", src, e->name,
			               kind);
		e->kind = k;
	}
	const char *url = jsonx_str(o, "url");
	if (!url)
		url = jsonx_str(o, "endpoint");
	if (url && !(e->url = trim_url(url)))
		return CONVBI_ENOMEM;
	if ((rc = dup_opt(&e->deployment, jsonx_str(o, "deployment"))) || (rc = dup_opt(&e->model, jsonx_str(o, "model"))))
		return rc;
	const char *spill = jsonx_str(o, "spillover_deployment");
	if (spill && !*spill)
		return err_set(err, CONVBI_ECONFIG,
		               "%s: endpoint `%s` has an empty `spillover_deployment`; name a standard deployment or remove it",
		               src, e->name);
	if ((rc = dup_opt(&e->spillover_deployment, spill)))
		return rc;
	const char *ver = jsonx_str(o, "api_version");
	if ((rc = dup_opt(&e->api_version, ver ? ver : DEFAULT_API_VERSION)))
		return rc;
	const char *key = jsonx_str(o, "api_key");
	const char *key_env = jsonx_str(o, "api_key_env");
	if (key_env) {
		const char *v = getenv(key_env);
		if (!v || !*v)
			return err_set(err, CONVBI_ECONFIG,
			               "%s: endpoint `%s` reads its key from $%s, which is not set; export it or set `api_key`",
			               src, e->name, key_env);
		key = v;
	}
	if (key && (rc = set_key(e, key, src, err)))
		return rc;
	if ((rc = config_parse_auth(e, cJSON_GetObjectItemCaseSensitive(o, "auth"), src, err)))
		return rc;
	static const struct {
		const char *key;
		size_t off;
		int min, max;
		const char *hint;
	} nums[] = {
	        {"priority", offsetof(struct ep_cfg, priority), 0, CONFIG_MAX_PRIORITY, " (0 is tried first)"},
	        {"weight", offsetof(struct ep_cfg, weight), 1, CONFIG_MAX_WEIGHT, ""},
	        {"rpm", offsetof(struct ep_cfg, rpm), 0, CONFIG_MAX_RPM, " (0 = no limit)"},
	        {"tpm", offsetof(struct ep_cfg, tpm), 0, CONFIG_MAX_TPM, " (0 = no limit)"},
	        {"context_window", offsetof(struct ep_cfg, context_window), 0, CONFIG_MAX_CONTEXT_WINDOW,
	         " (tokens; 0 = not said)"},
	};
	e->weight = 1;
	for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
		char shown[64];
		if (whole_number(o, nums[i].key, nums[i].min, nums[i].max, (int *)((char *)e + nums[i].off), shown, sizeof shown))
			return err_set(err, CONVBI_ECONFIG, "%s: endpoint `%s` has %s %s; use a whole number from %d to %d%s",
			               src, e->name, nums[i].key, shown, nums[i].min, nums[i].max, nums[i].hint);
	}
	if ((rc = config_parse_cost(e, o, src, err)))
		return rc;
	return check_endpoint(e, src, err);
}

/* A whole-number field of a config section: its key, where it goes in
 * the section's struct, and its bounds. */
struct int_field {
	const char *key;
	size_t off;
	int min, max;
};

/* Reads each of the n fields present in o into the struct at base;
 * the first out of bounds fails with "<src>: <section>.<key> is ...". */
static int parse_int_fields(void *base, const struct int_field *fields, size_t n, const cJSON *o, const char *section,
                            const char *src, struct err *err)
{
	for (size_t i = 0; i < n; i++) {
		char shown[64];
		if (whole_number(o, fields[i].key, fields[i].min, fields[i].max, (int *)((char *)base + fields[i].off), shown,
		                 sizeof shown))
			return err_set(err, CONVBI_ECONFIG, "%s: %s.%s is %s; use a whole number from %d to %d", src, section,
			               fields[i].key, shown, fields[i].min, fields[i].max);
	}
	return CONVBI_OK;
}

static int parse_retry(struct retry_cfg *r, const cJSON *o, const char *src, struct err *err)
{
	if (!o)
		return CONVBI_OK;
	if (!cJSON_IsObject(o))
		return err_set(err, CONVBI_ECONFIG, "%s: `retry` is not an object; write {\"max_attempts\": 6, ...}", src);
	static const struct int_field fields[] = {
	        {"max_attempts", offsetof(struct retry_cfg, max_attempts), 1, 100},
	        {"deadline_ms", offsetof(struct retry_cfg, deadline_ms), 100, 3600000},
	        {"connect_timeout_ms", offsetof(struct retry_cfg, connect_timeout_ms), 10, 600000},
	        {"first_byte_timeout_ms", offsetof(struct retry_cfg, first_byte_timeout_ms), 10, 3600000},
	        {"idle_timeout_ms", offsetof(struct retry_cfg, idle_timeout_ms), 10, 3600000},
	};
	return parse_int_fields(r, fields, sizeof fields / sizeof fields[0], o, "retry", src, err);
}

static int parse_state(struct state_cfg *s, const cJSON *o, const char *src, struct err *err)
{
	int rc;
	s->redis_timeout_ms = 250;
	s->cache_ms = 0;
	if (!o)
		return CONVBI_OK;
	if (!cJSON_IsObject(o))
		return err_set(err, CONVBI_ECONFIG, "%s: `state` is not an object; write {\"path\": \"/tmp/convbi-state\"}", src);
	const char *backend = jsonx_str(o, "backend");
	if (backend && strcmp(backend, "file") && strcmp(backend, "memory") && strcmp(backend, "redis"))
		return err_set(err, CONVBI_ECONFIG, "%s: state.backend is `%s`; use \"file\", \"memory\" or \"redis\"", src,
		               backend);
	int bad = 0;
	s->local_budgets = jsonx_bool(o, "local_budgets", 0, &bad);
	if (bad)
		return err_set(err, CONVBI_ECONFIG, "%s: state.local_budgets is not true or false; write true or false", src);
	if ((rc = dup_opt(&s->backend, backend)) || (rc = dup_opt(&s->path, jsonx_str(o, "path"))) ||
	    (rc = dup_opt(&s->url, jsonx_str(o, "url"))) || (rc = dup_opt(&s->prefix, jsonx_str(o, "prefix"))))
		return rc;
	static const struct int_field fields[] = {
	        {"timeout_ms", offsetof(struct state_cfg, redis_timeout_ms), 1, 600000},
	        {"cache_ms", offsetof(struct state_cfg, cache_ms), 0, 3600000},
	};
	return parse_int_fields(s, fields, sizeof fields / sizeof fields[0], o, "state", src, err);
}

int config_parse(struct llm_config *out, const char *text, size_t len, const char *source, struct err *err)
{
	int rc = CONVBI_OK;
	memset(out, 0, sizeof *out);
	retry_defaults(&out->retry);
	const char *why;
	size_t at;
	cJSON *root = jsonx_parse_strict(text, len, &why, &at);
	if (!root) {
		int line, col;
		jsonx_line_col(text, at, &line, &col);
		rc = err_set(err, CONVBI_ECONFIG, "%s %s (line %d, column %d); fix it (see README \"Configuration\")", source,
		             why, line, col);
		goto done;
	}
	if (!cJSON_IsObject(root)) {
		rc = err_set(err, CONVBI_ECONFIG, "%s: the top level must be an object with an \"endpoints\" array", source);
		goto done;
	}
	const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "endpoints");
	if (!cJSON_IsArray(eps) || cJSON_GetArraySize(eps) == 0) {
		rc = err_set(err, CONVBI_ECONFIG,
		             cJSON_IsArray(eps) ? "%s: its \"endpoints\" array is empty; add at least one endpoint"
		                                : "%s has no \"endpoints\" array; add at least one endpoint",
		             source);
		goto done;
	}
	size_t n = (size_t)cJSON_GetArraySize(eps);
	if (n > CONFIG_MAX_ENDPOINTS) {
		rc = err_set(err, CONVBI_ECONFIG, "%s has %zu endpoints; at most %d are supported", source, n,
		             CONFIG_MAX_ENDPOINTS);
		goto done;
	}
	if (!(out->eps = xcalloc(n, sizeof *out->eps))) {
		rc = err_code(err, CONVBI_ENOMEM);
		goto done;
	}
	size_t i = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, eps)
	{
		out->n = i + 1;
		if ((rc = parse_endpoint(&out->eps[i], it, i, source, err)))
			goto done;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(out->eps[j].name, out->eps[i].name)) {
				rc = err_set(err, CONVBI_ECONFIG, "%s: two endpoints are named `%s`; give each a unique name",
				             source, out->eps[i].name);
				goto done;
			}
		i++;
	}
	if ((rc = parse_retry(&out->retry, cJSON_GetObjectItemCaseSensitive(root, "retry"), source, err)) ||
	    (rc = parse_state(&out->state, cJSON_GetObjectItemCaseSensitive(root, "state"), source, err)) ||
	    (rc = config_parse_budget(out, root, source, err)))
		goto done;
	if (!(out->source = xstrdup(source)))
		rc = err_code(err, CONVBI_ENOMEM);
done:
	cJSON_Delete(root);
	if (rc) {
		if (rc == CONVBI_ENOMEM)
			err_code(err, rc);
		config_release(out);
	}
	return rc;
}

static int load_file(struct llm_config *out, const char *path, struct err *err)
{
	char src[600];
	char *text = NULL;
	size_t len = 0;
	mode_t mode = 0;
	snprintf(src, sizeof src, "config file %s", path);
	int e = regfile_read(path, CONFIG_MAX_FILE_BYTES, &text, &len, &mode);
	if (e == REGFILE_NOT_REGULAR)
		return err_set(
		        err, CONVBI_ECONFIG,
		        "config file %s is %s, not a regular file; give the path of a JSON file to --config or $CONVBI_CONFIG",
		        path, regfile_kind(mode));
	if (e == EFBIG)
		return err_set(err, CONVBI_ECONFIG, "config file %s is larger than %zu bytes; it should be a small JSON file",
		               path, CONFIG_MAX_FILE_BYTES);
	if (e == ENOMEM)
		return err_code(err, CONVBI_ENOMEM);
	if (e)
		return err_set(err, CONVBI_ECONFIG,
		               "cannot read config file %s: %s; check the path given to --config or $CONVBI_CONFIG", path,
		               strerror(e));
	int rc = config_parse(out, text, len, src, err);
	free(text);
	return rc;
}

/* The seed's variables: AZURE_OPENAI_ENDPOINT_i & co., i from 0 (or 1). */
static int load_env(struct llm_config *out, struct err *err)
{
	char name[64];
	int first = getenv("AZURE_OPENAI_ENDPOINT_0") ? 0 : 1;
	size_t n = 0;
	for (int i = first; n < CONFIG_MAX_ENDPOINTS; i++, n++) {
		snprintf(name, sizeof name, "AZURE_OPENAI_ENDPOINT_%d", i);
		if (!getenv(name))
			break;
	}
	memset(out, 0, sizeof *out);
	retry_defaults(&out->retry);
	out->state.redis_timeout_ms = 250;
	if (!n)
		return err_set(
		        err, CONVBI_ENOENDPOINT,
		        "no model endpoint is configured; pass --config FILE, set $CONVBI_CONFIG, or export AZURE_OPENAI_ENDPOINT_0, AZURE_OPENAI_DEPLOYMENT_NAME_0, AZURE_OPENAI_API_KEY_0 (and _1, _2 ...)");
	if (!(out->eps = xcalloc(n, sizeof *out->eps)) || !(out->source = xstrdup("environment"))) {
		config_release(out);
		return err_code(err, CONVBI_ENOMEM);
	}
	int rc = CONVBI_OK;
	for (size_t k = 0; k < n && !rc; k++) {
		int i = (int)k + first;
		struct ep_cfg *e = &out->eps[k];
		out->n = k + 1;
		const char *v;
		snprintf(name, sizeof name, "env-%d", i);
		e->kind = EP_AZURE;
		e->weight = 1;
		if ((rc = dup_opt(&e->name, name)))
			break;
		snprintf(name, sizeof name, "AZURE_OPENAI_ENDPOINT_%d", i);
		if (!(e->url = trim_url(getenv(name)))) {
			rc = CONVBI_ENOMEM;
			break;
		}
		snprintf(name, sizeof name, "AZURE_OPENAI_DEPLOYMENT_NAME_%d", i);
		if ((rc = dup_opt(&e->deployment, getenv(name))))
			break;
		snprintf(name, sizeof name, "AZURE_OPENAI_API_VERSION_%d", i);
		v = getenv(name);
		if ((rc = dup_opt(&e->api_version, v && *v ? v : DEFAULT_API_VERSION)))
			break;
		char src[96];
		snprintf(src, sizeof src, "environment (AZURE_OPENAI_*_%d)", i);
		snprintf(name, sizeof name, "AZURE_OPENAI_API_KEY_%d", i);
		if ((v = getenv(name)) && (rc = set_key(e, v, src, err)))
			break;
		rc = check_endpoint(e, src, err);
	}
	if (rc) {
		if (rc == CONVBI_ENOMEM)
			err_code(err, rc);
		config_release(out);
	}
	return rc;
}

int config_load(struct llm_config *out, const char *path, struct err *err)
{
	memset(out, 0, sizeof *out);
	if (path && *path)
		return load_file(out, path, err);
	const char *envp = getenv("CONVBI_CONFIG");
	if (envp && *envp)
		return load_file(out, envp, err);
	return load_env(out, err);
}
