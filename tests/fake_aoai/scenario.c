/* scenario.c -- loads and checks a scenario file into a struct scenario.
 *
 * A scenario is one JSON object:
 *   {"endpoints": [{"name", "api_key", "deployment", "model"?, "rps"?, "rp10s"?,
 *                   "rpm"?, "tpm"?, "tpm_span_ms"?, "latency_ms"? (ms or {"median","p95"}),
 *                   "chunk_ms"?, "cached_tokens"?, "token_chars"? (prompt
 *                   characters per reported token, default 4), "price"? ({"input",
 *                   "cached_input", "output"} USD per million tokens: billed
 *                   into the stats), "faults"?, "client"? (read by the harness),
 *                   "n"? ("choices" default, "ignore", "reject": how a request's
 *                   n > 1 is served),
 *                   "local_auth"? (false: keys refused, Entra ID tokens only),
 *                   "ratelimit_headers"? (false: no x-ratelimit-* on any reply,
 *                   and a 429 says `retry-after` in whole seconds alone, as
 *                   a plain API Management 429 does),
 *                   "region"? (x-ms-region), "spillover_deployments"? [names
 *                   that take spillover], "context_window"? (tokens)}],
 *    "rules": [{"match": regex, one of "reply" (string or {"echo": true}) |
 *               "map_file" (+ "default") | "sequence", "reply_bytes"?}],
 *    "default_reply": "OK", "entra"? (the token service, see entra.c)}
 * Everything is checked here, once, so that serving never meets a surprise:
 * unknown fields are refused (a typo like "rmp" would otherwise silently
 * disable a quota; fields starting with '_' and "comment" are free notes),
 * regexes are compiled, map files are read and sorted for binary search.
 * Errors come back as one line naming the place and the fix; main prints it
 * and exits 2.  After loading, the scenario is read-only except for the
 * sequence counters (scenario.mu) and each endpoint's mutable part
 * (endpoint.mu).
 */
#include "fake_aoai.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const endpoint_fields[] = {
        "name",
        "api_key",
        "deployment",
        "model",
        "rps",
        "rp10s",
        "rpm",
        "tpm",
        "tpm_span_ms",
        "latency_ms",
        "chunk_ms",
        "cached_tokens",
        "token_chars",
        "price",
        "faults",
        "client",
        "comment",
        "n",
        "local_auth",
        "ratelimit_headers",
        "region",
        "spillover_deployments",
        "context_window",
};
static const char *const rule_fields[] = {
        "match", "reply", "map_file", "default", "sequence", "reply_bytes", "comment",
};
static const char *const top_fields[] = {"endpoints", "rules", "default_reply", "comment", "entra"};

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* Reads a whole file (at most FK_MAX_FILE bytes) into a NUL-terminated
 * string the caller frees; NULL with errno set on failure. */
static char *read_all(const char *path, size_t *len_out)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct sbuf b = SBUF_INIT;
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (b.len + n > FK_MAX_FILE) {
			fclose(f);
			sb_release(&b);
			errno = EFBIG;
			return NULL;
		}
		sb_add(&b, chunk, n);
	}
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		sb_release(&b);
		errno = EIO;
		return NULL;
	}
	*len_out = b.len;
	return sb_take(&b);
}

static const char *unknown_field(const cJSON *o, const char *const *known, size_t n)
{
	const cJSON *f;
	cJSON_ArrayForEach(f, o)
	{
		int ok = f->string[0] == '_';
		for (size_t i = 0; !ok && i < n; i++)
			ok = strcmp(f->string, known[i]) == 0;
		if (!ok)
			return f->string;
	}
	return NULL;
}

/* Copies a required or optional string field; 0 ok, -1 wrong type or
 * missing when required. */
static int str_field(const cJSON *o, const char *key, int required, char **out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!v)
		return required ? -1 : 0;
	if (!cJSON_IsString(v) || (required && !v->valuestring[0]))
		return -1;
	*out = xstrdup(v->valuestring);
	return 0;
}

static int int_field(const cJSON *o, const char *key, long max, long *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!v)
		return 0;
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > (double)max || v->valuedouble != floor(v->valuedouble))
		return -1;
	*out = (long)v->valuedouble;
	return 0;
}

static int name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._-", *s))
			return 0;
	return 1;
}

/* ---- endpoints ----------------------------------------------------------- */

static int load_latency(const cJSON *o, struct endpoint *e, char *msg, size_t mlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "latency_ms");
	long median = 0, p95 = -1;
	if (!v)
		return 0;
	if (cJSON_IsNumber(v)) {
		if (int_field(o, "latency_ms", 3600000, &median))
			return fail(msg, mlen, "`latency_ms` must be milliseconds or {\"median\", \"p95\"}");
	} else if (cJSON_IsObject(v)) {
		if (!cJSON_GetObjectItemCaseSensitive(v, "median") || int_field(v, "median", 3600000, &median) ||
		    int_field(v, "p95", 3600000, &p95))
			return fail(msg, mlen, "`latency_ms` needs `median` (and optionally `p95`) in ms");
	} else {
		return fail(msg, mlen, "`latency_ms` must be milliseconds or {\"median\", \"p95\"}");
	}
	e->lat_median_ms = (int)median;
	e->lat_p95_ms = p95 < 0 ? (int)median : (int)p95;
	if (e->lat_p95_ms < e->lat_median_ms)
		return fail(msg, mlen, "`latency_ms.p95` must not be below `median`");
	return 0;
}

static int load_endpoint(const cJSON *o, struct endpoint *e, char *msg, size_t mlen)
{
	long rps = 0, rp10s = 0, rpm = 0, tpm = 0, tpm_span = 60000, chunk = 0;
	const char *bad;

	pthread_mutex_init(&e->mu, NULL);
	e->listen_fd = -1;
	if (!cJSON_IsObject(o))
		return fail(msg, mlen, "must be an object");
	if ((bad = unknown_field(o, endpoint_fields, sizeof endpoint_fields / sizeof *endpoint_fields)))
		return fail(msg, mlen, "unknown field `%s`", bad);
	if (str_field(o, "name", 1, &e->name) || !name_ok(e->name))
		return fail(msg, mlen, "`name` must be 1-63 characters of [A-Za-z0-9._-]");
	if (str_field(o, "api_key", 1, &e->api_key))
		return fail(msg, mlen, "`api_key` is missing; add the key clients must send");
	if (str_field(o, "deployment", 1, &e->deployment))
		return fail(msg, mlen, "`deployment` is missing; add the deployment name");
	if (str_field(o, "model", 0, &e->model))
		return fail(msg, mlen, "`model` must be a string");
	if (!e->model)
		e->model = xstrdup(e->deployment);
	if (int_field(o, "rps", 1000000, &rps) || int_field(o, "rp10s", 10000000, &rp10s) ||
	    int_field(o, "rpm", 10000000, &rpm) || int_field(o, "tpm", 1000000000L, &tpm))
		return fail(msg, mlen, "quotas (`rps`, `rp10s`, `rpm`, `tpm`) must be non-negative integers (0 = off)");
	if (int_field(o, "tpm_span_ms", 60000, &tpm_span) || tpm_span < 1000)
		return fail(msg, mlen, "`tpm_span_ms` must be 1000 to 60000 (the window the tpm is evaluated over)");
	if (int_field(o, "chunk_ms", 600000, &chunk))
		return fail(msg, mlen, "`chunk_ms` must be a non-negative integer (ms)");
	if (load_latency(o, e, msg, mlen))
		return -1;
	if (int_field(o, "cached_tokens", 1000000000L, &e->cached_tokens))
		return fail(msg, mlen, "`cached_tokens` must be a non-negative integer (prompt tokens reported as cached)");
	long tchars = 4;
	if (int_field(o, "token_chars", 100, &tchars) || tchars < 1)
		return fail(msg, mlen, "`token_chars` must be 1-100 (prompt characters per reported token)");
	e->token_chars = (int)tchars;
	const cJSON *price = cJSON_GetObjectItemCaseSensitive(o, "price");
	if (price) {
		static const char *const keys[3] = {"input", "cached_input", "output"};
		for (int i = 0; i < 3; i++) {
			const cJSON *v = cJSON_IsObject(price) ? cJSON_GetObjectItemCaseSensitive(price, keys[i]) : NULL;
			if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0))
				return fail(
				        msg, mlen,
				        "`price` must be {\"input\", \"cached_input\", \"output\"}, each USD per million tokens >= 0");
			e->price[i] = v->valuedouble;
		}
	}
	const cJSON *nm = cJSON_GetObjectItemCaseSensitive(o, "n");
	if (nm) {
		const char *v = cJSON_GetStringValue(nm);
		if (!v || (strcmp(v, "choices") && strcmp(v, "ignore") && strcmp(v, "reject")))
			return fail(msg, mlen, "`n` must be \"choices\", \"ignore\" or \"reject\"");
		e->n_mode = !strcmp(v, "ignore") ? N_IGNORE : !strcmp(v, "reject") ? N_REJECT : N_CHOICES;
	}
	const cJSON *la = cJSON_GetObjectItemCaseSensitive(o, "local_auth");
	if (la && !cJSON_IsBool(la))
		return fail(msg, mlen, "`local_auth` must be true or false");
	e->local_auth = !la || cJSON_IsTrue(la);
	const cJSON *rh = cJSON_GetObjectItemCaseSensitive(o, "ratelimit_headers");
	if (rh && !cJSON_IsBool(rh))
		return fail(msg, mlen, "`ratelimit_headers` must be true or false");
	e->rl_headers = !rh || cJSON_IsTrue(rh);
	if (str_field(o, "region", 0, &e->region))
		return fail(msg, mlen, "`region` must be a string");
	if (int_field(o, "context_window", 100000000L, &e->context_window))
		return fail(msg, mlen, "`context_window` must be a non-negative integer (tokens; 0 = no limit)");
	const cJSON *sp = cJSON_GetObjectItemCaseSensitive(o, "spillover_deployments"), *d;
	if (sp && (!cJSON_IsArray(sp) || cJSON_GetArraySize(sp) > FK_MAX_SPILLOVER))
		return fail(msg, mlen, "`spillover_deployments` must be an array of at most %d names", FK_MAX_SPILLOVER);
	cJSON_ArrayForEach(d, sp)
	{
		if (!cJSON_IsString(d) || !d->valuestring[0])
			return fail(msg, mlen, "`spillover_deployments` must hold deployment names");
		e->spill[e->nspill++] = xstrdup(d->valuestring);
	}
	const cJSON *client = cJSON_GetObjectItemCaseSensitive(o, "client");
	if (client && !cJSON_IsObject(client))
		return fail(msg, mlen, "`client` must be an object (config overrides for the harness)");
	e->rps = (int)rps;
	e->rp10s = (int)rp10s;
	e->rpm = (int)rpm;
	e->tpm = tpm;
	e->chunk_ms = (int)chunk;
	quota_init(&e->quota, e->rps, e->rp10s, e->rpm, e->tpm, tpm_span);
	const cJSON *faults = cJSON_GetObjectItemCaseSensitive(o, "faults");
	if (faults) {
		char ferr[300];
		if (fault_parse_array(faults, &e->faults, &e->nfaults, ferr, sizeof ferr))
			return fail(msg, mlen, "%s", ferr);
	}
	return 0;
}

/* ---- rules --------------------------------------------------------------- */

static int mapent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct mapent *)a)->key, ((const struct mapent *)b)->key);
}

static int load_map(struct rule *r, const char *dir, const char *file, char *msg, size_t mlen)
{
	char *path = NULL, *text = NULL;
	cJSON *root = NULL;
	size_t len = 0;
	int rc = -1;

	if (file[0] == '/') {
		path = xstrdup(file);
	} else {
		struct sbuf b = SBUF_INIT;
		sb_printf(&b, "%s/%s", dir, file);
		path = sb_take(&b);
	}
	text = read_all(path, &len);
	if (!text) {
		fail(msg, mlen, "cannot read map_file %s: %s", path, strerror(errno));
		goto done;
	}
	size_t nul = json_escaped_nul(text, len);
	if (nul) {
		fail(msg, mlen,
		     "map_file %s: \\u0000 at byte %zu: the fake's strings end at a NUL; send one with a status fault's body",
		     path, nul - 1);
		goto done;
	}
	root = cJSON_ParseWithLength(text, len);
	if (!cJSON_IsObject(root)) {
		fail(msg, mlen, "map_file %s must hold one JSON object of strings", path);
		goto done;
	}
	r->nmap = (size_t)cJSON_GetArraySize(root);
	r->map = xcalloc(r->nmap, sizeof *r->map);
	size_t i = 0;
	const cJSON *v;
	cJSON_ArrayForEach(v, root)
	{
		if (!cJSON_IsString(v)) {
			r->nmap = i;
			fail(msg, mlen, "map_file %s: the value of `%s` is not a string", path, v->string);
			goto done;
		}
		r->map[i].key = xstrdup(v->string);
		r->map[i].val = xstrdup(v->valuestring);
		i++;
	}
	qsort(r->map, r->nmap, sizeof *r->map, mapent_cmp);
	rc = 0;
done:
	cJSON_Delete(root);
	free(text);
	free(path);
	return rc;
}

static int load_rule(const cJSON *o, struct rule *r, const char *dir, char *msg, size_t mlen)
{
	const char *bad;
	long bytes = 0;

	if (!cJSON_IsObject(o))
		return fail(msg, mlen, "must be an object");
	if ((bad = unknown_field(o, rule_fields, sizeof rule_fields / sizeof *rule_fields)))
		return fail(msg, mlen, "unknown field `%s`", bad);
	if (str_field(o, "match", 1, &r->match))
		return fail(msg, mlen, "`match` must be a non-empty PCRE2 regex");
	int ecode;
	PCRE2_SIZE eoff;
	r->re = pcre2_compile((PCRE2_SPTR)r->match, PCRE2_ZERO_TERMINATED, 0, &ecode, &eoff, NULL);
	if (!r->re) {
		PCRE2_UCHAR text[160];
		pcre2_get_error_message(ecode, text, sizeof text);
		return fail(msg, mlen, "`match` does not compile at offset %zu: %s", (size_t)eoff, (const char *)text);
	}
	if (int_field(o, "reply_bytes", FK_MAX_REPLY_BYTES, &bytes))
		return fail(msg, mlen, "`reply_bytes` must be a non-negative integer");
	r->reply_bytes = bytes;

	const cJSON *reply = cJSON_GetObjectItemCaseSensitive(o, "reply");
	const cJSON *map = cJSON_GetObjectItemCaseSensitive(o, "map_file");
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(o, "sequence");
	if (!!reply + !!map + !!seq > 1)
		return fail(msg, mlen, "give only one of `reply`, `map_file`, `sequence`");
	if (cJSON_GetObjectItemCaseSensitive(o, "default") && !map)
		return fail(msg, mlen, "`default` only goes with `map_file`");
	if (reply) {
		const cJSON *echo = cJSON_GetObjectItemCaseSensitive(reply, "echo");
		if (cJSON_IsString(reply)) {
			r->kind = REPLY_TEXT;
			r->text = xstrdup(reply->valuestring);
		} else if (cJSON_IsObject(reply) && cJSON_IsTrue(echo) && cJSON_GetArraySize(reply) == 1) {
			r->kind = REPLY_ECHO;
		} else {
			return fail(msg, mlen, "`reply` must be a string or {\"echo\": true}");
		}
	} else if (map) {
		if (!cJSON_IsString(map) || !map->valuestring[0])
			return fail(msg, mlen, "`map_file` must be a path (relative to the scenario)");
		if (str_field(o, "default", 0, &r->map_default))
			return fail(msg, mlen, "`default` must be a string");
		r->kind = REPLY_MAP;
		if (load_map(r, dir, map->valuestring, msg, mlen))
			return -1;
	} else if (seq) {
		if (!cJSON_IsArray(seq) || cJSON_GetArraySize(seq) == 0)
			return fail(msg, mlen, "`sequence` must be a non-empty array of strings");
		r->kind = REPLY_SEQUENCE;
		r->seq = xcalloc((size_t)cJSON_GetArraySize(seq), sizeof *r->seq);
		const cJSON *s;
		cJSON_ArrayForEach(s, seq)
		{
			if (!cJSON_IsString(s))
				return fail(msg, mlen, "`sequence[%d]` is not a string", r->nseq);
			r->seq[r->nseq++] = xstrdup(s->valuestring);
		}
	} else if (bytes > 0) {
		r->kind = REPLY_FILL;
	} else {
		return fail(msg, mlen, "add one of `reply`, `map_file`, `sequence` or `reply_bytes`");
	}
	return 0;
}

static void rule_release(struct rule *r)
{
	free(r->match);
	pcre2_code_free(r->re);
	free(r->text);
	for (size_t i = 0; i < r->nmap; i++) {
		free(r->map[i].key);
		free(r->map[i].val);
	}
	free(r->map);
	free(r->map_default);
	for (int i = 0; i < r->nseq; i++)
		free(r->seq[i]);
	free(r->seq);
}

/* ---- the file ------------------------------------------------------------ */

static int load_root(struct scenario *sc, const cJSON *root, char *msg, size_t mlen)
{
	char sub[400];
	const char *bad;

	if (!cJSON_IsObject(root))
		return fail(msg, mlen, "the scenario must be a JSON object");
	if ((bad = unknown_field(root, top_fields, sizeof top_fields / sizeof *top_fields)))
		return fail(msg, mlen, "unknown top-level field `%s`", bad);
	const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "endpoints");
	int n = cJSON_GetArraySize(eps);
	if (!cJSON_IsArray(eps) || n == 0)
		return fail(msg, mlen, "`endpoints` must be a non-empty array");
	if (n > FK_MAX_ENDPOINTS)
		return fail(msg, mlen, "at most %d endpoints are supported", FK_MAX_ENDPOINTS);
	sc->ep = xcalloc((size_t)n, sizeof *sc->ep);
	const cJSON *o;
	cJSON_ArrayForEach(o, eps)
	{
		int i = sc->nep++;
		if (load_endpoint(o, &sc->ep[i], sub, sizeof sub))
			return fail(msg, mlen, "endpoints[%d]: %s", i, sub);
		for (int j = 0; j < i; j++)
			if (strcmp(sc->ep[j].name, sc->ep[i].name) == 0)
				return fail(msg, mlen, "endpoints[%d]: the name `%s` is already used", i, sc->ep[i].name);
	}

	const cJSON *rules = cJSON_GetObjectItemCaseSensitive(root, "rules");
	if (rules && !cJSON_IsArray(rules))
		return fail(msg, mlen, "`rules` must be an array");
	sc->rules = xcalloc((size_t)cJSON_GetArraySize(rules), sizeof *sc->rules);
	cJSON_ArrayForEach(o, rules)
	{
		int i = sc->nrules++;
		if (load_rule(o, &sc->rules[i], sc->dir, sub, sizeof sub))
			return fail(msg, mlen, "rules[%d]: %s", i, sub);
	}

	const cJSON *def = cJSON_GetObjectItemCaseSensitive(root, "default_reply");
	if (def && !cJSON_IsString(def))
		return fail(msg, mlen, "`default_reply` must be a string");
	sc->default_reply = xstrdup(def ? def->valuestring : "OK");
	if (entra_load(cJSON_GetObjectItemCaseSensitive(root, "entra"), &sc->entra, msg, mlen))
		return -1;
	return 0;
}

int scenario_load(struct scenario *sc, const char *path, char *err, size_t errlen)
{
	char msg[512];
	size_t len = 0;
	int rc = -1;
	cJSON *root = NULL;

	memset(sc, 0, sizeof *sc);
	pthread_mutex_init(&sc->mu, NULL);
	const char *slash = strrchr(path, '/');
	sc->dir = slash ? xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : xstrdup(".");
	char *text = read_all(path, &len);
	if (!text) {
		fail(err, errlen, "scenario %s: cannot read it: %s", path, strerror(errno));
		goto done;
	}
	size_t nul = json_escaped_nul(text, len);
	if (nul) {
		fail(err, errlen,
		     "scenario %s: \\u0000 at byte %zu: the fake's strings end at a NUL; send one with a status fault's body "
		     "(\\\\u0000 there is the JSON escape itself)",
		     path, nul - 1);
		goto done;
	}
	const char *end = NULL;
	root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (!root) {
		fail(err, errlen, "scenario %s: not valid JSON near byte %zu", path, end ? (size_t)(end - text) : (size_t)0);
		goto done;
	}
	if (load_root(sc, root, msg, sizeof msg)) {
		fail(err, errlen, "scenario %s: %s", path, msg);
		goto done;
	}
	rc = 0;
done:
	cJSON_Delete(root);
	free(text);
	if (rc)
		scenario_release(sc);
	return rc;
}

void scenario_release(struct scenario *sc)
{
	if (!sc)
		return;
	for (int i = 0; i < sc->nep; i++) {
		struct endpoint *e = &sc->ep[i];
		free(e->name);
		free(e->api_key);
		free(e->region);
		for (int k = 0; k < e->nspill; k++)
			free(e->spill[k]);
		free(e->deployment);
		free(e->model);
		fault_list_free(e->faults, e->nfaults);
		quota_release(&e->quota);
		pthread_mutex_destroy(&e->mu);
	}
	free(sc->ep);
	for (int i = 0; i < sc->nrules; i++)
		rule_release(&sc->rules[i]);
	free(sc->rules);
	free(sc->default_reply);
	entra_release(&sc->entra);
	free(sc->dir);
	pthread_mutex_destroy(&sc->mu);
	memset(sc, 0, sizeof *sc);
}

void scenario_reset_sequences(struct scenario *sc)
{
	pthread_mutex_lock(&sc->mu);
	for (int i = 0; i < sc->nrules; i++)
		sc->rules[i].seq_next = 0;
	pthread_mutex_unlock(&sc->mu);
}
