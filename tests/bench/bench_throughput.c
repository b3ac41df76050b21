/* bench_throughput.c -- quota-bound throughput with concurrent caller
 * processes: convbi told the quotas, convbi not told (it learns them), and
 * the old practice, side by side against the fake Azure OpenAI server.
 *
 * Three endpoints, each limited to --rps requests per sliding second
 * (default 10), latency lognormal (median 150 ms, p95 400 ms).  Every run
 * starts a fresh fake server (its counters are the run's) and a fresh
 * shared state, then forks C caller processes (--callers, default
 * 8,24,64) that take request numbers from one shared counter until N
 * (--requests, default 2000) have been made.  Clients:
 *   declared    convbi, each endpoint's quota in the config ("rpm", and
 *               "tpm" in the TPM-bound scenario): one llm_open per
 *               process, all sharing the state file;
 *   undeclared  the same with no rpm/tpm anywhere: what convbi knows of
 *               the quotas it learns (429s, x-ratelimit-*) and shares;
 *   legacy      a replica of the old practice: round-robin over the
 *               endpoints via a JSON file {"counter":N} read-modify-
 *               written under flock(LOCK_EX) on every try, a fresh curl
 *               handle per try, retry only when the error text (HTTP
 *               status + body) contains "429", sleep 2^n + U(0,1) s
 *               (n = 0, 1), 3 tries in all.
 * Scenarios: healthy; one_down (an endpoint answers 503 forever);
 * one_slow (an endpoint 5x slower); tpm_bound (each endpoint's tokens per
 * minute, not its requests, are the limit: 10 requests/s of 101 estimated
 * tokens, max_tokens 100, with rps 2x that; the fake evaluates the tpm
 * over 10-s windows, as Azure evaluates requests, so that tokens bind in
 * a run shorter than minutes -- over a 60-s window the first minute's
 * budget would go in one burst and nothing would bind).  And the 429s
 * the field sends (issue 11, attack8 N3/N4): bare (healthy, but no reply
 * carries x-ratelimit-*, and a 429 says `retry-after` in whole seconds
 * alone, as a plain API Management 429 does), bare_down (the same, one
 * endpoint down), bare_minute (bare, each endpoint's quota per sliding
 * minute -- half the usual rate, so a run outlasts the first minute's
 * burst), bare_change (bare, the quota cut to half at 15 s and raised to
 * twice the first at 30 s, by the fake's /_fake/quota: the phases'
 * answers over what the callers can carry under each quota are printed
 * below the row).
 *
 * Reported per run: the quota bound (requests/s the endpoints that can
 * answer admit), answered requests/s over it for the whole run and for
 * the first 150 answers, HTTP 429s per success overall and after the
 * first 5 s (the server's counters, read at 5 s and at the end), failed
 * calls, latency percentiles, and (undeclared) the learned request rates
 * at the end over the quota then (least-most over the endpoints: within
 * 10 % is the target's "converged").  Targets (issue 11, undeclared): 0 failed;
 * >= 0.95 of the bound healthy and one_down (>= 0.90 over the first 150);
 * <= 0.05 429s per success after 5 s; one_slow >= 0.85 of the bound;
 * the bare scenarios as their headered twins, bare_change >= 0.90 of what
 * the callers can carry (8 callers cannot carry the raised quota).
 * Beside the quota bound, the achievable bound (achievable_at): what the
 * callers, closed loops, can carry given each endpoint's latency; it is
 * lower only for one_slow with 8 callers, where the 0.85 is also judged
 * against it ("target" says which is which).  The bound is the
 * steady state's: in tpm_bound the first 10-s window admits its budget at
 * once, so a client that bursts can pass it early (no throughput target
 * there, only failures and 429s).
 *
 * Usage: bench_throughput [--requests N] [--callers 8,24,64]
 *          [--clients declared,undeclared,legacy] [--undeclared]
 *          [--scenarios healthy,one_down,one_slow,tpm_bound,bare,bare_down,
 *           bare_minute,bare_change] [--rps R]
 *          [--out FILE] [--trace FILE]
 * --undeclared runs the undeclared client alone; --trace writes, for each
 * second of each run, every endpoint's answers and 429s and its learned
 * rate.
 */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"
#include "convbi/convbi.h"
#include "fake.h"
#include "llm/config.h"
#include "llm/llm.h"
#include "util/buf.h"

#define NEPS 3
#define MAX_CALLERS 256
#define FIRST_N 150    /* "the first 150 calls" */
#define SETTLE_MS 5000 /* 429s counted after this */
#define TPM_RPS 10     /* tpm_bound: requests/s each endpoint's tokens admit */
#define TPM_MAX_TOKENS 100
#define TPM_EST (1 + TPM_MAX_TOKENS) /* "ping": 1 prompt token + max_tokens, as both sides count */

static const char *const EP_NAMES[NEPS] = {"east", "west", "north"};
static const char *const EP_KEYS[NEPS] = {"k-east-7f3a9c1e5b", "k-west-2d8b4f6a0c", "k-north-9e1c3a5b7d"};

enum client { DECLARED, UNDECLARED, LEGACY, NCLIENTS };
static const char *const CLIENT_NAMES[NCLIENTS] = {"declared", "undeclared", "legacy"};

struct scen {
	const char *name;
	int down;   /* endpoint answering 503, or -1 */
	int slow;   /* endpoint 5x slower, or -1 */
	int tpm;    /* tokens, not requests, bind */
	int bare;   /* no x-ratelimit-* headers: a 429 says retry-after (whole seconds) alone */
	int minute; /* the quota is per sliding minute (rpm), not per second */
	int change; /* the quota changes mid-run (ep_rps_at) */
};

static const struct scen SCENS[] = {
        {"healthy", -1, -1, 0, 0, 0, 0},     {"one_down", 0, -1, 0, 0, 0, 0},     {"one_slow", -1, 0, 0, 0, 0, 0},
        {"tpm_bound", -1, -1, 1, 0, 0, 0},   {"bare", -1, -1, 0, 1, 0, 0},        {"bare_down", 0, -1, 0, 1, 0, 0},
        {"bare_minute", -1, -1, 0, 1, 1, 0}, {"bare_change", -1, -1, 0, 1, 0, 1},
};
#define NSCENS ((int)(sizeof SCENS / sizeof *SCENS))

static int rps = 10;
static FILE *trace; /* --trace: one line per second of each run, or NULL */

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* bare_change: the quota from CHANGE_LOW_S cut to half, from
 * CHANGE_HIGH_S raised to twice the first (a cut, then a raise past it,
 * as an operator changes a deployment's quota). */
#define CHANGE_LOW_S 15.0
#define CHANGE_HIGH_S 30.0

/* Requests/s one endpoint admits at t s into the run (its steady state:
 * bare_minute's per-minute quota admits a minute's budget in a burst). */
static double ep_rps_at(const struct scen *s, double t)
{
	if (s->tpm)
		return TPM_RPS;
	if (s->minute) /* half as much, so that a run outlasts the first minute's burst by a few windows */
		return rps / 2.0;
	if (s->change && t >= CHANGE_HIGH_S)
		return 2.0 * rps;
	if (s->change && t >= CHANGE_LOW_S)
		return rps / 2.0;
	return rps;
}

/* Requests/s the endpoints that can answer admit at t. */
static double bound_at(const struct scen *s, double t)
{
	return (NEPS - (s->down >= 0)) * ep_rps_at(s, t);
}

/* Each endpoint's latency, as the scenario gives it to the fake. */
static int lat_median_ms(const struct scen *s, int ep)
{
	return s->slow == ep ? 750 : 150;
}

static int lat_p95_ms(const struct scen *s, int ep)
{
	return s->slow == ep ? 2000 : 400;
}

/* Requests/s that `callers` closed-loop callers can carry at most at t:
 * each caller is busy for an endpoint's mean latency per call (Little's
 * law: sum over endpoints of rate x mean latency <= callers), and no
 * endpoint takes more than its quota -- the best is to fill the fastest
 * endpoints first.  The mean of the fake's lognormal through (median,
 * p95) is median x exp(sigma^2 / 2), sigma = ln(p95 / median) / 1.645.
 * The client's own time per call is left out, so this is a bound, not an
 * estimate.  Equal to bound_at when the callers are enough. */
static double achievable_at(const struct scen *s, int callers, double t)
{
	int order[NEPS], n = 0;
	double mean[NEPS];
	for (int i = 0; i < NEPS; i++) {
		double sigma = log((double)lat_p95_ms(s, i) / lat_median_ms(s, i)) / 1.6448536269514722;
		mean[i] = lat_median_ms(s, i) * exp(sigma * sigma / 2) / 1000.0;
		if (s->down != i)
			order[n++] = i;
	}
	for (int a = 1; a < n; a++) /* fastest first */
		for (int b = a; b > 0 && mean[order[b]] < mean[order[b - 1]]; b--) {
			int swap = order[b];
			order[b] = order[b - 1];
			order[b - 1] = swap;
		}
	double left = callers, total = 0, quota = ep_rps_at(s, t);
	for (int k = 0; k < n && left > 0; k++) {
		double x = left / mean[order[k]] < quota ? left / mean[order[k]] : quota;
		total += x;
		left -= x * mean[order[k]];
	}
	return total;
}

/* Requests the bound admits over [0, t] (callers = 0), or the callers can
 * carry (callers > 0): the rates above summed in 10-ms steps. */
static double admitted_by(const struct scen *s, int callers, double t)
{
	double sum = 0;
	for (double u = 0; u < t; u += 0.01) {
		double dt = t - u < 0.01 ? t - u : 0.01;
		sum += (callers > 0 ? achievable_at(s, callers, u) : bound_at(s, u)) * dt;
	}
	return sum;
}

static void scenario_json(const struct scen *s, int declared, char *out, size_t n)
{
	size_t off = (size_t)snprintf(out, n, "{\"endpoints\":[");
	for (int i = 0; i < NEPS; i++) {
		int med = lat_median_ms(s, i), p95 = lat_p95_ms(s, i);
		int ep_rps = s->tpm ? 2 * TPM_RPS : s->minute ? 0 : rps;
		long tpm = s->tpm ? (long)TPM_RPS * 60 * TPM_EST : 0;
		char client[128] = "{}";
		if (declared && s->tpm)
			snprintf(client, sizeof client, "{\"tpm\":%ld}", tpm);
		else if (declared)
			snprintf(client, sizeof client, "{\"rpm\":%d}", (int)(ep_rps_at(s, 0) * 60));
		off += (size_t)snprintf(
		        out + off, n - off,
		        "%s{\"name\":\"%s\",\"api_key\":\"%s\",\"deployment\":\"gpt-4o\",\"rps\":%d,\"rpm\":%d,"
		        "\"ratelimit_headers\":%s,\"tpm\":%ld,\"tpm_span_ms\":10000,\"latency_ms\":{\"median\":%d,\"p95\":%d},"
		        "\"faults\":%s,\"client\":%s}",
		        i ? "," : "", EP_NAMES[i], EP_KEYS[i], ep_rps, s->minute ? (int)(ep_rps_at(s, 0) * 60) : 0,
		        s->bare ? "false" : "true", tpm, med, p95, s->down == i ? "[{\"kind\":\"http503\"}]" : "[]", client);
	}
	snprintf(out + off, n - off, "],\"rules\":[],\"default_reply\":\"OK\"}");
}

/* ---- what the callers share (one MAP_SHARED mapping) ---------------------- */

struct shared {
	double t0;       /* the start (CLOCK_MONOTONIC s), set before the callers go */
	atomic_int next; /* the next request number */
	atomic_int done; /* answered or failed */
	atomic_int failed;
	char first_err[300]; /* the first failure's message */
	atomic_flag err_taken;
	/* per request, then: double lat[n]; double end[n]; char ok[n] */
};

struct run {
	const struct scen *s;
	int client, callers, nreq, max_tokens;
	struct shared *sh;
	double *lat, *end; /* seconds: per-call latency; completion time since the start */
	char *ok;
	const struct fake *f;
	char config[1024];
	char counter_path[1024];
	double t0;
};

static void note_failure(struct run *r, const char *msg)
{
	atomic_fetch_add(&r->sh->failed, 1);
	if (!atomic_flag_test_and_set(&r->sh->err_taken))
		snprintf(r->sh->first_err, sizeof r->sh->first_err, "%s", msg);
}

static void convbi_caller(struct run *r)
{
	struct llm_config cfg;
	struct llm *l = NULL;
	struct err err = ERR_INIT;
	if (config_load(&cfg, r->config, &err) || llm_open(&l, &cfg, &err)) {
		fprintf(stderr, "convbi client: %s\n", err.msg);
		_exit(3);
	}
	struct chat_msg m = {"user", "ping"};
	for (;;) {
		int i = atomic_fetch_add(&r->sh->next, 1);
		if (i >= r->nreq)
			break;
		struct llm_request req = {.msgs = &m, .n = 1, .temperature = -1, .max_tokens = r->max_tokens};
		struct llm_reply rep;
		struct err e2 = ERR_INIT;
		double t = mono_s();
		int rc = llm_chat(l, &req, &rep, &e2);
		double now = mono_s();
		r->lat[i] = now - t;
		r->end[i] = now - r->t0;
		r->ok[i] = rc == CONVBI_OK;
		if (rc != CONVBI_OK)
			note_failure(r, e2.msg);
		atomic_fetch_add(&r->sh->done, 1);
		llm_reply_release(&rep);
	}
	llm_close(l);
}

/* The old round-robin: {"counter": N} under flock, read-modify-write. */
static int legacy_pick(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT, 0644);
	if (fd < 0)
		return 0;
	flock(fd, LOCK_EX);
	char buf[256];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	long counter = 0;
	if (n > 0) {
		buf[n] = 0;
		cJSON *j = cJSON_Parse(buf);
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "counter");
		if (cJSON_IsNumber(c))
			counter = (long)c->valuedouble;
		cJSON_Delete(j);
	}
	int pick = (int)(counter % NEPS);
	char text[64];
	int len = snprintf(text, sizeof text, "{\"counter\":%ld}", counter + 1);
	if (ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0) {
		ssize_t w = write(fd, text, (size_t)len);
		(void)w;
	}
	flock(fd, LOCK_UN);
	close(fd);
	return pick;
}

struct body {
	char *p;
	size_t n;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct body *b = ud;
	size_t add = size * nmemb;
	char *np = realloc(b->p, b->n + add + 1);
	if (!np)
		return 0;
	memcpy(np + b->n, ptr, add);
	b->n += add;
	np[b->n] = 0;
	b->p = np;
	return add;
}

/* One try: returns 0 on a 200, else fills errtext. */
static int legacy_try(const struct run *r, int ep, char *errtext, size_t elen)
{
	char url[512], hdr[128], body[160];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
	         fake_port(r->f, EP_NAMES[ep]));
	snprintf(hdr, sizeof hdr, "api-key: %s", EP_KEYS[ep]);
	if (r->max_tokens > 0)
		snprintf(body, sizeof body, "{\"messages\":[{\"role\":\"user\",\"content\":\"ping\"}],\"max_tokens\":%d}",
		         r->max_tokens);
	else
		snprintf(body, sizeof body, "{\"messages\":[{\"role\":\"user\",\"content\":\"ping\"}]}");
	CURL *c = curl_easy_init();
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	h = curl_slist_append(h, hdr);
	struct body b = {NULL, 0};
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	CURLcode cc = curl_easy_perform(c);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	int rc = 0;
	if (cc != CURLE_OK) {
		snprintf(errtext, elen, "transport: %s", curl_easy_strerror(cc));
		rc = -1;
	} else if (status != 200) {
		snprintf(errtext, elen, "Error code: %ld - %.400s", status, b.p ? b.p : "");
		rc = -1;
	}
	free(b.p);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return rc;
}

static void legacy_caller(struct run *r)
{
	unsigned int seed = (unsigned int)getpid() ^ (unsigned int)time(NULL);
	for (;;) {
		int i = atomic_fetch_add(&r->sh->next, 1);
		if (i >= r->nreq)
			break;
		double t = mono_s();
		int ok = 0;
		char errtext[512] = "";
		for (int n = 0; n < 3; n++) {
			int ep = legacy_pick(r->counter_path);
			if (legacy_try(r, ep, errtext, sizeof errtext) == 0) {
				ok = 1;
				break;
			}
			if (!strstr(errtext, "429") || n == 2)
				break;
			double s = pow(2, n) + (double)rand_r(&seed) / RAND_MAX;
			struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
			nanosleep(&ts, NULL);
		}
		double now = mono_s();
		r->lat[i] = now - t;
		r->end[i] = now - r->t0;
		r->ok[i] = (char)ok;
		if (!ok)
			note_failure(r, errtext);
		atomic_fetch_add(&r->sh->done, 1);
	}
}

/* ---- one run ---------------------------------------------------------------- */

struct result {
	double bound, wall_s, of_bound, first_of_bound;
	double achievable, of_achievable; /* achievable_at: what the callers can carry */
	double phase[3];                  /* bare_change: of the achievable before the cut, while cut, raised */
	double learned_lo, learned_hi;    /* undeclared: the learned rpm at the end over the quota's, least and most; 0 = none */
	long http_requests, http_429, http_ok, r429_settled, ok_settled;
	double per_success_429, per_success_429_settled;
	int failures;
	double p50, p95, p99;
	char first_err[300];
};

static long stat_sum(const struct fake *f, const char *field)
{
	long sum = 0;
	for (int i = 0; i < NEPS; i++)
		sum += fake_stat(f, EP_NAMES[i], field);
	return sum;
}

/* --trace: what each second of a run did, per endpoint: answers and 429s
 * (the server's counts) and the learned rate (the shared state, read
 * through a client of the parent's own on the same config). */
struct tracer {
	struct llm *l; /* owned; NULL = no learned rates (legacy) */
	long ok[NEPS], r429[NEPS];
	double next_s;
};

static void trace_open(struct tracer *t, const struct run *r, const char *label)
{
	memset(t, 0, sizeof *t);
	t->next_s = 1;
	if (!trace)
		return;
	struct llm_config cfg;
	struct err err = ERR_INIT;
	if (r->client != LEGACY && (config_load(&cfg, r->config, &err) || llm_open(&t->l, &cfg, &err)))
		t->l = NULL;
	fprintf(trace, "# %s\n# t_s  per endpoint: ok/s 429/s learned_rpm\n", label);
}

static double learned_rpm_of(const char *js, int ep)
{
	double v = 0;
	cJSON *arr = cJSON_Parse(js);
	const cJSON *o = cJSON_GetArrayItem(arr, ep);
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "learned_rpm");
	if (cJSON_IsNumber(n))
		v = n->valuedouble;
	cJSON_Delete(arr);
	return v;
}

static void trace_tick(struct tracer *t, const struct fake *f, double elapsed_s)
{
	if (!trace || elapsed_s < t->next_s)
		return;
	t->next_s += 1;
	struct buf js = BUF_INIT;
	if (t->l)
		llm_endpoints_json(t->l, &js);
	fprintf(trace, "%5.0f", elapsed_s);
	for (int i = 0; i < NEPS; i++) {
		long ok = fake_stat(f, EP_NAMES[i], "ok"), r429 = fake_stat(f, EP_NAMES[i], "rate_limited");
		fprintf(trace, "  %3ld %3ld %5.0f", ok - t->ok[i], r429 - t->r429[i], js.data ? learned_rpm_of(js.data, i) : 0);
		t->ok[i] = ok;
		t->r429[i] = r429;
	}
	fputc('\n', trace);
	buf_release(&js);
}

static void trace_close(struct tracer *t)
{
	llm_close(t->l);
	if (trace)
		fflush(trace);
}

/* The learned request rates at the end of a run (the shared state, read
 * through a client of the parent's own) over the quota then, least and
 * most over the endpoints that answer. */
static void learned_at_end(const struct run *r, double quota_rpm, struct result *res)
{
	struct llm_config cfg;
	struct llm *l = NULL;
	struct err err = ERR_INIT;
	struct buf js = BUF_INIT;
	if (config_load(&cfg, r->config, &err) || llm_open(&l, &cfg, &err))
		return;
	llm_endpoints_json(l, &js);
	for (int i = 0; i < NEPS && js.data; i++) {
		if (r->s->down == i)
			continue;
		double v = learned_rpm_of(js.data, i) / quota_rpm;
		if (res->learned_lo == 0 || v < res->learned_lo)
			res->learned_lo = v;
		if (v > res->learned_hi)
			res->learned_hi = v;
	}
	buf_release(&js);
	llm_close(l);
}

static int run_one(const struct scen *s, int client, int callers, int nreq, struct result *res)
{
	char scen[4096];
	scenario_json(s, client == DECLARED, scen, sizeof scen);
	struct fake f;
	if (fake_start(&f, scen))
		return -1;
	size_t shared_size = sizeof(struct shared) + (size_t)nreq * (2 * sizeof(double) + 1);
	void *map = mmap(NULL, shared_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED) {
		fake_stop(&f);
		return -1;
	}
	memset(map, 0, shared_size);
	struct run r;
	memset(&r, 0, sizeof r);
	r.s = s;
	r.client = client;
	r.callers = callers;
	r.nreq = nreq;
	r.max_tokens = s->tpm ? TPM_MAX_TOKENS : 0;
	r.sh = map;
	r.lat = (double *)((char *)map + sizeof(struct shared));
	r.end = r.lat + nreq;
	r.ok = (char *)(r.end + nreq);
	r.f = &f;
	snprintf(r.counter_path, sizeof r.counter_path, "%s/counter.json", f.dir);
	snprintf(r.config, sizeof r.config, "%s/config.json", f.dir);
	if (client != LEGACY && fake_write_config(&f, r.config,
	                                          "{\"retry\":{\"deadline_ms\":60000,\"max_attempts\":10,"
	                                          "\"first_byte_timeout_ms\":10000}}")) {
		munmap(map, shared_size);
		fake_stop(&f);
		return -1;
	}
	int go[2];
	if (pipe(go)) {
		munmap(map, shared_size);
		fake_stop(&f);
		return -1;
	}
	pid_t kids[MAX_CALLERS];
	int nkids = 0;
	for (int k = 0; k < callers; k++) {
		pid_t pid = fork();
		if (pid == 0) {
			close(go[1]);
			char c;
			while (read(go[0], &c, 1) > 0) {
			} /* wait for the start */
			close(go[0]);
			r.t0 = r.sh->t0;
			if (client == LEGACY)
				legacy_caller(&r);
			else
				convbi_caller(&r);
			_exit(0);
		}
		if (pid > 0)
			kids[nkids++] = pid;
	}
	close(go[0]);
	struct tracer tr;
	char label[128];
	snprintf(label, sizeof label, "%s %d %s", s->name, callers, CLIENT_NAMES[client]);
	trace_open(&tr, &r, label);
	usleep(200000); /* let every caller reach its read */
	double t0 = mono_s();
	r.sh->t0 = t0;
	close(go[1]); /* go */
	int settled = 0, phase = 0;
	while (atomic_load(&r.sh->done) < nreq) {
		double el = mono_s() - t0;
		if (s->change && phase < 2 && el >= (phase ? CHANGE_HIGH_S : CHANGE_LOW_S)) {
			char q[64];
			phase++;
			snprintf(q, sizeof q, "{\"rps\":%d}", (int)ep_rps_at(s, el));
			for (int i = 0; i < NEPS; i++)
				fake_control(&f, EP_NAMES[i], "POST", "/_fake/quota", q, NULL);
		}
		for (int k = 0; k < nkids; k++)
			if (kids[k] && waitpid(kids[k], NULL, WNOHANG) == kids[k])
				kids[k] = 0;
		int alive = 0;
		for (int k = 0; k < nkids; k++)
			alive += kids[k] != 0;
		if (!alive)
			break;
		if (!settled && mono_s() - t0 >= SETTLE_MS / 1000.0) {
			res->r429_settled = stat_sum(&f, "rate_limited");
			res->ok_settled = stat_sum(&f, "ok");
			settled = 1;
		}
		trace_tick(&tr, &f, mono_s() - t0);
		usleep(20000);
	}
	double wall = mono_s() - t0;
	for (int k = 0; k < nkids; k++)
		if (kids[k])
			waitpid(kids[k], NULL, 0);
	res->http_requests = stat_sum(&f, "requests");
	res->http_429 = stat_sum(&f, "rate_limited");
	res->http_ok = stat_sum(&f, "ok");
	trace_close(&tr);
	if (client == UNDECLARED && !s->tpm)
		learned_at_end(&r, ep_rps_at(s, mono_s() - t0) * 60, res);
	if (!settled) { /* the run took under 5 s: nothing after it */
		res->r429_settled = res->http_429;
		res->ok_settled = res->http_ok;
	}
	fake_stop(&f);

	int done = atomic_load(&r.sh->done);
	res->failures = atomic_load(&r.sh->failed) + (nreq - done);
	snprintf(res->first_err, sizeof res->first_err, "%s", r.sh->first_err);
	double *lat = malloc(sizeof(double) * (size_t)nreq), *ends = malloc(sizeof(double) * (size_t)nreq);
	int n = 0, nok = 0;
	for (int i = 0; i < nreq && i < done; i++) {
		lat[n++] = r.lat[i];
		if (r.ok[i])
			ends[nok++] = r.end[i];
	}
	bench_sort(lat, n);
	bench_sort(ends, nok);
	res->p50 = bench_pct(lat, n, 50) * 1000;
	res->p95 = bench_pct(lat, n, 95) * 1000;
	res->p99 = bench_pct(lat, n, 99) * 1000;
	res->wall_s = nok ? ends[nok - 1] : wall;
	res->bound = admitted_by(s, 0, res->wall_s) / res->wall_s; /* the mean, where the quota changes */
	res->of_bound = nok / admitted_by(s, 0, res->wall_s);
	res->achievable = admitted_by(s, callers, res->wall_s) / res->wall_s;
	res->of_achievable = nok / admitted_by(s, callers, res->wall_s);
	res->first_of_bound = nok >= FIRST_N ? FIRST_N / admitted_by(s, 0, ends[FIRST_N - 1]) : 0;
	if (s->change) /* each phase's answers over what its quota admits (the achievable, the callers being few) */
		for (int k = 0; k < 3; k++) {
			double a = k == 0 ? 0 : k == 1 ? CHANGE_LOW_S : CHANGE_HIGH_S;
			double b = k == 0 ? CHANGE_LOW_S : k == 1 ? CHANGE_HIGH_S : res->wall_s;
			int in = 0;
			for (int i = 0; i < nok; i++)
				in += ends[i] >= a && ends[i] < b;
			double can = admitted_by(s, callers, b) - admitted_by(s, callers, a);
			res->phase[k] = b > a && can > 0 ? in / can : 0;
		}
	long ok_total = res->http_ok > 0 ? res->http_ok : 1;
	res->per_success_429 = (double)res->http_429 / (double)ok_total;
	long ok_after = res->http_ok - res->ok_settled;
	res->per_success_429_settled = ok_after > 0 ? (double)(res->http_429 - res->r429_settled) / (double)ok_after : 0;
	free(lat);
	free(ends);
	munmap(map, shared_size);
	return 0;
}

/* ---- targets ---------------------------------------------------------------- */

/* "PASS", "MISS" or "" (no target for this client/scenario). */
static const char *verdict(int client, const struct scen *s, const struct result *r)
{
	if (client != UNDECLARED)
		return "";
	int ok = r->failures == 0 && r->per_success_429_settled <= 0.05;
	if (!strcmp(s->name, "one_slow"))
		ok = ok && r->of_bound >= 0.85;
	else if (s->change) /* the raised quota is more than 8 callers carry: judged by what they can */
		ok = ok && r->of_achievable >= 0.90;
	else if (!s->tpm) /* tpm_bound: a window's burst at the start; no throughput target */
		ok = ok && r->of_bound >= 0.95 && r->first_of_bound >= 0.90;
	return ok ? "PASS" : "MISS";
}

/* One_slow with fewer callers than the quota needs: the same 0.85 against
 * what the callers can carry (achievable_at), beside issue 11's own
 * target against the quota bound.  "" where the two bounds agree. */
static const char *verdict_achievable(int client, const struct scen *s, const struct result *r)
{
	if (client != UNDECLARED || strcmp(s->name, "one_slow") || r->achievable >= r->bound - 1e-9)
		return "";
	return r->failures == 0 && r->of_achievable >= 0.85 ? "PASS" : "MISS";
}

static int parse_list(const char *arg, const char *const *names, int n, int *on)
{
	memset(on, 0, sizeof(int) * (size_t)n);
	char buf[256];
	snprintf(buf, sizeof buf, "%s", arg);
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int found = 0;
		for (int i = 0; i < n; i++)
			if (!strcmp(t, names[i]))
				on[i] = found = 1;
		if (!found) {
			fprintf(stderr, "bench_throughput: unknown name `%s`\n", t);
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	int nreq = 2000, ncallers = 3, callers[8] = {8, 24, 64};
	int client_on[NCLIENTS] = {1, 1, 1}, scen_on[NSCENS];
	const char *out = "bench_throughput.json";
	const char *scen_names[NSCENS];
	for (int i = 0; i < NSCENS; i++) {
		scen_names[i] = SCENS[i].name;
		scen_on[i] = 1;
	}
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--requests") && i + 1 < argc) {
			nreq = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--rps") && i + 1 < argc) {
			rps = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
			out = argv[++i];
		} else if (!strcmp(argv[i], "--trace") && i + 1 < argc) {
			if (!(trace = fopen(argv[++i], "w"))) {
				perror(argv[i]);
				return 2;
			}
		} else if (!strcmp(argv[i], "--undeclared")) {
			client_on[DECLARED] = client_on[LEGACY] = 0;
			client_on[UNDECLARED] = 1;
		} else if (!strcmp(argv[i], "--clients") && i + 1 < argc) {
			if (parse_list(argv[++i], CLIENT_NAMES, NCLIENTS, client_on))
				return 2;
		} else if (!strcmp(argv[i], "--scenarios") && i + 1 < argc) {
			if (parse_list(argv[++i], scen_names, NSCENS, scen_on))
				return 2;
		} else if (!strcmp(argv[i], "--callers") && i + 1 < argc) {
			ncallers = 0;
			char buf[128];
			snprintf(buf, sizeof buf, "%s", argv[++i]);
			for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && ncallers < 8; t = strtok_r(NULL, ",", &save))
				callers[ncallers++] = atoi(t);
		} else {
			fprintf(stderr,
			        "usage: %s [--requests N] [--callers 8,24,64] [--clients declared,undeclared,legacy] "
			        "[--undeclared] [--scenarios healthy,one_down,one_slow,tpm_bound,bare,bare_down,bare_minute,bare_change] [--rps R] [--out FILE] [--trace FILE]\n",
			        argv[0]);
			return 2;
		}
	}
	for (int c = 0; c < ncallers; c++)
		if (callers[c] < 1 || callers[c] > MAX_CALLERS) {
			fprintf(stderr, "bench_throughput: callers must be 1..%d\n", MAX_CALLERS);
			return 2;
		}
	if (nreq < FIRST_N || rps < 1) {
		fprintf(stderr, "bench_throughput: --requests must be at least %d and --rps at least 1\n", FIRST_N);
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	cJSON *root = cJSON_CreateObject();
	cJSON_AddNumberToObject(root, "requests", nreq);
	cJSON_AddNumberToObject(root, "rps_per_endpoint", rps);
	cJSON *arr = cJSON_AddArrayToObject(root, "runs");
	printf("bench_throughput: %d requests per run, callers as processes, 3 endpoints x %d rps (tpm_bound: %d rps of "
	       "%d tokens by tpm), latency median 150 ms p95 400 ms\n\n",
	       nreq, rps, TPM_RPS, TPM_EST);
	printf("%-11s %7s %-10s %6s %7s %8s %8s %6s %8s %7s %8s %6s %7s %7s %7s %-11s %s\n", "scenario", "callers", "client",
	       "bound", "wall_s", "of_bound", "first150", "achv", "of_achv", "429/ok", "429/ok5s", "fails", "p50_ms", "p95_ms",
	       "p99_ms", "learned/q", "target (of bound; of achv)");
	for (int si = 0; si < NSCENS; si++) {
		if (!scen_on[si])
			continue;
		for (int c = 0; c < ncallers; c++) {
			for (int client = 0; client < NCLIENTS; client++) {
				if (!client_on[client])
					continue;
				struct result res;
				memset(&res, 0, sizeof res);
				if (run_one(&SCENS[si], client, callers[c], nreq, &res)) {
					fprintf(stderr, "run %s/%d/%s failed to start\n", SCENS[si].name, callers[c],
					        CLIENT_NAMES[client]);
					continue;
				}
				const char *target = verdict(client, &SCENS[si], &res);
				const char *target_achv = verdict_achievable(client, &SCENS[si], &res);
				char learned[32] = "-";
				if (res.learned_hi > 0)
					snprintf(learned, sizeof learned, "%.2f-%.2f", res.learned_lo, res.learned_hi);
				printf("%-11s %7d %-10s %6.0f %7.1f %7.1f%% %7.1f%% %6.1f %7.1f%% %7.3f %8.3f %6d %7.0f %7.0f %7.0f "
				       "%-11s %s%s%s\n",
				       SCENS[si].name, callers[c], CLIENT_NAMES[client], res.bound, res.wall_s,
				       100 * res.of_bound, 100 * res.first_of_bound, res.achievable, 100 * res.of_achievable,
				       res.per_success_429, res.per_success_429_settled, res.failures, res.p50, res.p95, res.p99,
				       learned, target, *target_achv ? "; " : "", target_achv);
				if (SCENS[si].change)
					printf("          of the achievable: %.1f%% before the cut, %.1f%% cut to half at %.0f s, "
					       "%.1f%% raised to twice at %.0f s\n",
					       100 * res.phase[0], 100 * res.phase[1], CHANGE_LOW_S, 100 * res.phase[2],
					       CHANGE_HIGH_S);
				if (res.failures && res.first_err[0])
					printf("          first failure: %.200s\n", res.first_err);
				fflush(stdout);
				cJSON *o = cJSON_CreateObject();
				cJSON_AddStringToObject(o, "scenario", SCENS[si].name);
				cJSON_AddNumberToObject(o, "callers", callers[c]);
				cJSON_AddStringToObject(o, "client", CLIENT_NAMES[client]);
				const struct {
					const char *name;
					double v;
				} nums[] = {
				        {"bound_rps", res.bound},
				        {"wall_s", res.wall_s},
				        {"fraction_of_bound", res.of_bound},
				        {"fraction_of_bound_first150", res.first_of_bound},
				        {"achievable_rps", res.achievable},
				        {"fraction_of_achievable", res.of_achievable},
				        {"http_requests", (double)res.http_requests},
				        {"http_429", (double)res.http_429},
				        {"http_ok", (double)res.http_ok},
				        {"http_429_per_success", res.per_success_429},
				        {"http_429_per_success_after_5s", res.per_success_429_settled},
				        {"failures", res.failures},
				        {"p50_ms", res.p50},
				        {"p95_ms", res.p95},
				        {"p99_ms", res.p99},
				        {"learned_over_quota_min", res.learned_lo},
				        {"learned_over_quota_max", res.learned_hi},
				};
				for (size_t k = 0; k < sizeof nums / sizeof *nums; k++)
					cJSON_AddNumberToObject(o, nums[k].name, nums[k].v);
				if (SCENS[si].change)
					for (int k = 0; k < 3; k++)
						cJSON_AddNumberToObject(o, (const char *[]){"before_cut", "cut", "raised"}[k],
						                        res.phase[k]);
				if (*target)
					cJSON_AddStringToObject(o, "target", target);
				if (*target_achv)
					cJSON_AddStringToObject(o, "target_achievable", target_achv);
				cJSON_AddItemToArray(arr, o);
			}
		}
	}
	char *text = cJSON_Print(root);
	FILE *fp = fopen(out, "w");
	if (fp) {
		fputs(text, fp);
		fputc('\n', fp);
		fclose(fp);
		printf("\nJSON: %s\n", out);
	} else {
		perror(out);
	}
	free(text);
	cJSON_Delete(root);
	curl_global_cleanup();
	return 0;
}
