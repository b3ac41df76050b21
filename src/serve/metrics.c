/* metrics.c -- what `GET /metrics` reports, in the Prometheus text format.
 *
 * Counters and histograms live in one small table of labelled series
 * (linear search: there are a few dozen), fed by every request and by
 * every finished question's answer JSON (its outcome, its stages' times,
 * its model attempts: endpoint, class, latency).  Endpoint gauges and the
 * host-wide counters (calls, 429s, failures, cooldowns, the learned
 * remaining-requests/-tokens rates, the breaker) come from the live
 * endpoint state at scrape time.
 */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"

#define METRICS_SERIES_MAX 512
#define METRICS_NAME_BYTES 64
#define METRICS_LABELS_BYTES 192

static const double bucket_le[METRICS_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

struct series {
	uint64_t hash; /* of name and labels: compared before the strings */
	char name[METRICS_NAME_BYTES];
	char labels[METRICS_LABELS_BYTES]; /* `a="x",b="y"` */
	int histogram;
	double value;
	struct histogram h;
};

struct metrics {
	pthread_mutex_t lock;
	struct series *s;
	int n;
};

static const struct {
	const char *name, *type, *help;
} families[] = {
        {"convbi_http_requests_total", "counter", "HTTP requests by route and status"},
        {"convbi_http_request_duration_seconds", "histogram", "HTTP request latency by route"},
        {"convbi_questions_total", "counter", "questions answered, by outcome (ok or the error class)"},
        {"convbi_question_duration_seconds", "histogram", "whole-question latency"},
        {"convbi_stage_duration_seconds", "histogram", "workflow stage latency by stage"},
        {"convbi_endpoint_attempts_total", "counter", "model attempts made by this server, by endpoint and class"},
        {"convbi_endpoint_attempt_duration_seconds", "histogram", "model attempt latency by endpoint"},
};

struct metrics *metrics_new(void)
{
	struct metrics *m = calloc(1, sizeof *m);
	if (!m || !(m->s = calloc(METRICS_SERIES_MAX, sizeof *m->s))) {
		free(m);
		return NULL;
	}
	pthread_mutex_init(&m->lock, NULL);
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->lock);
	free(m->s);
	free(m);
}

/* A label value as the text format wants it: \\, \" and \n escaped. */
static void label_value(char *out, size_t cap, const char *v)
{
	size_t k = 0;
	for (; *v && k + 3 < cap; v++) {
		if (*v == '\\' || *v == '"' || *v == '\n') {
			out[k++] = '\\';
			out[k++] = *v == '\n' ? 'n' : *v;
		} else {
			out[k++] = *v;
		}
	}
	out[k] = '\0';
}

/* FNV-1a over name, NUL, labels: a series' key, compared before the
 * strings (a question feeds a dozen series whose names share the prefix
 * `convbi_`).  Computed before the lock is taken. */
static uint64_t series_hash(const char *name, const char *labels)
{
	uint64_t h = 1469598103934665603ull;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	h *= 1099511628211ull;
	for (const unsigned char *p = (const unsigned char *)labels; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	return h;
}

/* The series of hash h (series_hash of name and labels), created on first
 * use; NULL when the table is full. */
static struct series *series_of(struct metrics *m, uint64_t h, const char *name, const char *labels, int histogram)
{
	for (int i = 0; i < m->n; i++)
		if (m->s[i].hash == h && !strcmp(m->s[i].name, name) && !strcmp(m->s[i].labels, labels))
			return &m->s[i];
	if (m->n == METRICS_SERIES_MAX)
		return NULL;
	struct series *s = &m->s[m->n++];
	s->hash = h;
	snprintf(s->name, sizeof s->name, "%s", name);
	snprintf(s->labels, sizeof s->labels, "%s", labels);
	s->histogram = histogram;
	return s;
}

static void observe(struct metrics *m, uint64_t h, const char *name, const char *labels, double v)
{
	struct series *s = series_of(m, h, name, labels, 1);
	if (!s)
		return;
	int b = 0;
	while (b < METRICS_BUCKETS && v > bucket_le[b])
		b++;
	s->h.counts[b]++;
	s->h.sum += v;
	s->h.n++;
}

static void count(struct metrics *m, uint64_t h, const char *name, const char *labels, double by)
{
	struct series *s = series_of(m, h, name, labels, 0);
	if (s)
		s->value += by;
}

/* Appends s to out[0..*k), cut at cap (NUL included). */
static void append(char *out, size_t cap, size_t *k, const char *s)
{
	size_t n = strlen(s);
	if (*k + n >= cap)
		n = cap - 1 - *k;
	memcpy(out + *k, s, n);
	*k += n;
	out[*k] = '\0';
}

/* `k1="v1"` and, when k2, `,k2="v2"`, the values escaped (label_value);
 * cut at cap.  Written by hand: a question feeds a dozen series, and
 * snprintf cost more than the rest of metrics_answer. */
static void labels_of(char *out, size_t cap, const char *k1, const char *v1, const char *k2, const char *v2)
{
	char v[96];
	size_t k = 0;
	out[0] = '\0';
	label_value(v, sizeof v, v1);
	append(out, cap, &k, k1);
	append(out, cap, &k, "=\"");
	append(out, cap, &k, v);
	append(out, cap, &k, "\"");
	if (!k2)
		return;
	label_value(v, sizeof v, v2);
	append(out, cap, &k, ",");
	append(out, cap, &k, k2);
	append(out, cap, &k, "=\"");
	append(out, cap, &k, v);
	append(out, cap, &k, "\"");
}

/* One series update, its labels written before the lock is taken. */
struct update {
	const char *name;
	char labels[METRICS_LABELS_BYTES];
	int histogram;
	double v;
};

#define METRICS_UPDATES_MAX 24 /* applied under one lock; more wait for the next */

static void apply(struct metrics *m, const struct update *u, int n)
{
	uint64_t h[METRICS_UPDATES_MAX];
	for (int i = 0; i < n; i++)
		h[i] = series_hash(u[i].name, u[i].labels);
	pthread_mutex_lock(&m->lock);
	for (int i = 0; i < n; i++)
		if (u[i].histogram)
			observe(m, h[i], u[i].name, u[i].labels, u[i].v);
		else
			count(m, h[i], u[i].name, u[i].labels, u[i].v);
	pthread_mutex_unlock(&m->lock);
}

void metrics_request(struct metrics *m, const char *route, int status, double seconds)
{
	struct update u[2] = {{"convbi_http_requests_total", "", 0, 1}, {"convbi_http_request_duration_seconds", "", 1, seconds}};
	char st[16];
	int k = (int)sizeof st - 1;
	st[k] = '\0';
	unsigned x = status < 0 ? 0u : (unsigned)status;
	do {
		st[--k] = (char)('0' + x % 10);
		x /= 10;
	} while (x && k);
	labels_of(u[0].labels, sizeof u[0].labels, "route", route, "status", st + k);
	labels_of(u[1].labels, sizeof u[1].labels, "route", route, NULL, NULL);
	apply(m, u, 2);
}

void metrics_answer(struct metrics *m, const convbi_answer *a, int status)
{
	struct update u[METRICS_UPDATES_MAX];
	const char *name, *cls;
	int64_t ms;
	int n = 0;
	u[n] = (struct update){"convbi_questions_total", "", 0, 1};
	labels_of(u[n++].labels, sizeof u[0].labels, "outcome", status ? convbi_errname(status) : "ok", NULL, NULL);
	if (a)
		u[n++] = (struct update){"convbi_question_duration_seconds", "", 1, (double)convbi_answer_elapsed_ms(a) / 1000};
	for (int i = 0; a && convbi_answer_stage(a, i, &name, &ms) == CONVBI_OK; i++) {
		if (n == METRICS_UPDATES_MAX) {
			apply(m, u, n);
			n = 0;
		}
		u[n] = (struct update){"convbi_stage_duration_seconds", "", 1, (double)ms / 1000};
		labels_of(u[n++].labels, sizeof u[0].labels, "stage", name, NULL, NULL);
	}
	for (int i = 0; a && convbi_answer_attempt(a, i, &name, &cls, &ms) == CONVBI_OK; i++) {
		if (n + 2 > METRICS_UPDATES_MAX) {
			apply(m, u, n);
			n = 0;
		}
		u[n] = (struct update){"convbi_endpoint_attempts_total", "", 0, 1};
		labels_of(u[n++].labels, sizeof u[0].labels, "endpoint", name, "class", cls);
		u[n] = (struct update){"convbi_endpoint_attempt_duration_seconds", "", 1, (double)ms / 1000};
		labels_of(u[n++].labels, sizeof u[0].labels, "endpoint", name, NULL, NULL);
	}
	apply(m, u, n);
}

/* ---- rendering -------------------------------------------------------------- */

struct text {
	char *data;
	size_t len, cap;
	int failed;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
	for (int tries = 0; !t->failed && tries < 2; tries++) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(t->data ? t->data + t->len : NULL, t->data ? t->cap - t->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->failed = 1;
			return;
		}
		if (t->data && t->len + (size_t)n < t->cap) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = (t->cap ? t->cap * 2 : 8192) + (size_t)n;
		char *d = realloc(t->data, cap);
		if (!d) {
			t->failed = 1;
			return;
		}
		t->data = d;
		t->cap = cap;
	}
}

static void render_series(struct text *t, const struct series *s)
{
	const char *open = s->labels[0] ? "{" : "", *close = s->labels[0] ? "}" : "";
	if (!s->histogram) {
		put(t, "%s%s%s%s %.17g\n", s->name, open, s->labels, close, s->value);
		return;
	}
	const char *sep = s->labels[0] ? "," : "";
	uint64_t cum = 0;
	for (int b = 0; b < METRICS_BUCKETS; b++) {
		cum += s->h.counts[b];
		put(t, "%s_bucket{%s%sle=\"%g\"} %llu\n", s->name, s->labels, sep, bucket_le[b], (unsigned long long)cum);
	}
	cum += s->h.counts[METRICS_BUCKETS];
	put(t, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", s->name, s->labels, sep, (unsigned long long)cum);
	put(t, "%s_sum%s%s%s %.17g\n%s_count%s%s%s %llu\n", s->name, open, s->labels, close, s->h.sum, s->name, open, s->labels,
	    close, (unsigned long long)s->h.n);
}

/* One gauge or counter family per field of the live endpoint state. */
static void render_endpoints(struct text *t, const char *endpoints_json)
{
	static const struct {
		const char *field, *name, *type, *help;
	} fields[] = {
	        {"calls", "convbi_endpoint_calls_total", "counter", "calls to the endpoint from every process on the host"},
	        {"rate_limited", "convbi_endpoint_429_total", "counter", "429 replies from the endpoint (host-wide)"},
	        {"failures", "convbi_endpoint_failures_total", "counter", "failed calls to the endpoint (host-wide)"},
	        {"cooling_ms", "convbi_endpoint_cooldown_seconds", "gauge",
	         "seconds until the endpoint may be called again (0 = usable)"},
	        {"remaining_requests", "convbi_endpoint_remaining_requests", "gauge",
	         "requests left in the window, learned from x-ratelimit headers (-1 = unknown)"},
	        {"remaining_tokens", "convbi_endpoint_remaining_tokens", "gauge",
	         "tokens left in the window, learned from x-ratelimit headers (-1 = unknown)"},
	        {"window_requests", "convbi_endpoint_window_requests", "gauge", "requests sent in the current pacing window"},
	        {"window_tokens", "convbi_endpoint_window_tokens", "gauge", "tokens sent in the current pacing window"},
	};
	cJSON *eps = endpoints_json ? cJSON_Parse(endpoints_json) : NULL;
	if (!cJSON_IsArray(eps)) {
		cJSON_Delete(eps);
		return;
	}
	for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
		put(t, "# HELP %s %s\n# TYPE %s %s\n", fields[f].name, fields[f].help, fields[f].name, fields[f].type);
		const cJSON *ep;
		cJSON_ArrayForEach(ep, eps)
		{
			const cJSON *name = cJSON_GetObjectItemCaseSensitive(ep, "name");
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(ep, fields[f].field);
			if (!cJSON_IsString(name) || !cJSON_IsNumber(v))
				continue;
			char n[96];
			label_value(n, sizeof n, name->valuestring);
			double x = !strcmp(fields[f].field, "cooling_ms") ? v->valuedouble / 1000 : v->valuedouble;
			put(t, "%s{endpoint=\"%s\"} %.17g\n", fields[f].name, n, x);
		}
	}
	put(t,
	    "# HELP convbi_endpoint_breaker_open 1 when the endpoint's circuit breaker is open\n"
	    "# TYPE convbi_endpoint_breaker_open gauge\n");
	const cJSON *ep;
	cJSON_ArrayForEach(ep, eps)
	{
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(ep, "name");
		const cJSON *br = cJSON_GetObjectItemCaseSensitive(ep, "breaker");
		if (!cJSON_IsString(name))
			continue;
		char n[96];
		label_value(n, sizeof n, name->valuestring);
		put(t, "convbi_endpoint_breaker_open{endpoint=\"%s\"} %d\n", n,
		    cJSON_IsString(br) && !strcmp(br->valuestring, "open"));
	}
	cJSON_Delete(eps);
}

char *metrics_render(struct metrics *m, const char *endpoints_json, int questions_running, int sessions_open,
                     int conversations_open)
{
	struct text t = {NULL, 0, 0, 0};
	put(&t,
	    "# HELP convbi_questions_running questions being answered now\n# TYPE convbi_questions_running gauge\n"
	    "convbi_questions_running %d\n",
	    questions_running);
	put(&t, "# HELP convbi_sessions_open open sessions\n# TYPE convbi_sessions_open gauge\nconvbi_sessions_open %d\n",
	    sessions_open);
	put(&t,
	    "# HELP convbi_mcp_conversations_open open MCP conversations\n# TYPE convbi_mcp_conversations_open gauge\n"
	    "convbi_mcp_conversations_open %d\n",
	    conversations_open);
	pthread_mutex_lock(&m->lock);
	for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
		put(&t, "# HELP %s %s\n# TYPE %s %s\n", families[f].name, families[f].help, families[f].name, families[f].type);
		for (int i = 0; i < m->n; i++)
			if (!strcmp(m->s[i].name, families[f].name))
				render_series(&t, &m->s[i]);
	}
	pthread_mutex_unlock(&m->lock);
	render_endpoints(&t, endpoints_json);
	if (t.failed) {
		free(t.data);
		return NULL;
	}
	return t.data;
}
