/* bench_serve.c -- what `convbi serve` adds over the library, side by side.
 *
 * Against one zero-latency fake Azure OpenAI server (intent -> data
 * question, SQL -> a fixed GROUP BY, answer -> a sentence), for 1, 16 and 64
 * concurrent clients, each with its own conversation:
 *   library  N threads call convbi_session_ask on one engine in this process
 *   serve    N threads POST /v1/sessions/{id}/questions (JSON answer) over
 *            keep-alive HTTP (libcurl) to a `convbi serve` child process
 * Each runs the same number of questions per client; per-question wall
 * latencies give p50/p99, and the added latency is serve's minus the
 * library's at the same percentile.  Questions per second through serve
 * "with the model cost excluded" is questions / (serve wall time - library
 * wall time): the rate the HTTP layer alone would sustain on these cores.
 * Then sessions: the serve process's RSS (VmRSS) before and after opening
 * 10,000 idle sessions gives the bytes per idle session, and the 10,001st
 * must be a 503 with Retry-After (the cap is --max-sessions 10000).
 *
 * Usage: bench_serve [--questions N] [--out FILE]   (N per client, default 40)
 */
#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"
#include "convbi/convbi.h"
#include "fake.h"

#define MAX_CLIENTS 64
#define SESSIONS 10000
#define ASKED_SESSIONS 200

static const char scenario[] =
	"{\"endpoints\":[{\"name\":\"zero\",\"api_key\":\"k-bench-serve-0a1b2c\",\"deployment\":\"gpt-4o\"}],"
	"\"rules\":[{\"match\":\"You are the intent classifier\",\"reply\":\"{\\\"intent\\\":\\\"data_question\\\"}\"},"
	"{\"match\":\"You are the SQL writer\",\"reply\":\"```sql\\nSELECT country_code, count(*) AS n FROM customers GROUP BY 1 ORDER BY 2 DESC LIMIT 8\\n```\"},"
	"{\"match\":\"You are the answer writer\",\"reply\":\"Most customers are in the United States.\"}],"
	"\"default_reply\":\"OK\"}";

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

struct run {
	int clients, per_client;
	double *lat;      /* clients * per_client */
	int failures;
	pthread_mutex_t lock;
	/* library */
	convbi_engine *engine;
	/* serve */
	int port;
};

struct worker {
	struct run *r;
	int index;
};

static void *lib_worker(void *p)
{
	struct worker *w = p;
	struct run *r = w->r;
	convbi_session *s = NULL;
	if (convbi_session_new(&s, r->engine)) {
		pthread_mutex_lock(&r->lock);
		r->failures += r->per_client;
		pthread_mutex_unlock(&r->lock);
		convbi_session_free(s);
		return NULL;
	}
	for (int i = 0; i < r->per_client; i++) {
		convbi_answer *a = NULL;
		double t0 = now_ms();
		int rc = convbi_session_ask(s, "customers per country?", NULL, NULL, NULL, &a);
		r->lat[w->index * r->per_client + i] = now_ms() - t0;
		convbi_answer_free(a);  /* the conversation goes on, as on serve's sessions */
		if (rc) {
			pthread_mutex_lock(&r->lock);
			r->failures++;
			pthread_mutex_unlock(&r->lock);
		}
	}
	convbi_session_free(s);
	return NULL;
}

struct body {
	char *data;
	size_t len;
};

static size_t collect(char *p, size_t size, size_t n, void *payload)
{
	struct body *b = payload;
	char *d = realloc(b->data, b->len + size * n + 1);
	if (!d)
		return 0;
	memcpy(d + b->len, p, size * n);
	b->len += size * n;
	d[b->len] = '\0';
	b->data = d;
	return size * n;
}

/* One POST on a reused handle; returns the HTTP status (0 on failure). */
static long post(CURL *c, const char *url, const char *json, struct body *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
	long code = 0;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	return code;
}

static int session_of(const char *json, char *id)
{
	const char *p = json ? strstr(json, "\"session\":\"") : NULL;
	if (!p || strlen(p + 11) < 32)
		return -1;
	memcpy(id, p + 11, 32);
	id[32] = '\0';
	return 0;
}

static void *serve_worker(void *p)
{
	struct worker *w = p;
	struct run *r = w->r;
	CURL *c = curl_easy_init();
	struct body b = {NULL, 0};
	char url[160], id[33];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/sessions", r->port);
	int bad = 0;
	if (!c || post(c, url, "{}", &b) != 201 || session_of(b.data, id)) {
		bad = r->per_client;
	} else {
		snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/sessions/%s/questions", r->port, id);
		for (int i = 0; i < r->per_client; i++) {
			double t0 = now_ms();
			long code = post(c, url, "{\"question\":\"customers per country?\"}", &b);
			r->lat[w->index * r->per_client + i] = now_ms() - t0;
			bad += code != 200;
		}
	}
	pthread_mutex_lock(&r->lock);
	r->failures += bad;
	pthread_mutex_unlock(&r->lock);
	free(b.data);
	curl_easy_cleanup(c);
	return NULL;
}

/* Runs clients threads of fn; returns the wall time in ms. */
static double run_clients(struct run *r, void *(*fn)(void *))
{
	pthread_t t[MAX_CLIENTS];
	struct worker w[MAX_CLIENTS];
	double t0 = now_ms();
	for (int i = 0; i < r->clients; i++) {
		w[i] = (struct worker){r, i};
		pthread_create(&t[i], NULL, fn, &w[i]);
	}
	for (int i = 0; i < r->clients; i++)
		pthread_join(t[i], NULL);
	return now_ms() - t0;
}

/* CPU seconds (user + system) a process has used. */
static double cpu_s(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	unsigned long ut = 0, st = 0;
	/* after ") " come: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
	if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
		return (double)(ut + st) / sysconf(_SC_CLK_TCK);
	return NAN;
}

static long rss_kib(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	long kib = -1;
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, "VmRSS:", 6))
			kib = strtol(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return kib;
}

static pid_t start_serve(const char *config, int *port)
{
	char log[512];
	snprintf(log, sizeof log, "%s/bench_serve.%d.log", SCRATCH_DIR, (int)getpid());
	pid_t pid = fork();
	if (pid == 0) {
		if (!freopen(log, "w", stderr))
			_exit(127);
		execl(CONVBI_BIN, "convbi", "serve", "--listen", "127.0.0.1:0", "--config", config, "--db", "shop=" SAMPLE_DB,
		      "--max-questions", "128", "--max-sessions", "10000", (char *)NULL);
		_exit(127);
	}
	*port = 0;
	for (int i = 0; i < 400 && !*port; i++) {
		usleep(25000);
		FILE *f = fopen(log, "r");
		char line[512];
		while (f && fgets(line, sizeof line, f)) {
			char *p = strstr(line, "listening on http://127.0.0.1:");
			if (p)
				*port = atoi(p + strlen("listening on http://127.0.0.1:"));
		}
		if (f)
			fclose(f);
	}
	unlink(log);
	return pid;
}

int main(int argc, char **argv)
{
	int per_client = 40;
	const char *out = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--questions") && i + 1 < argc)
			per_client = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--out") && i + 1 < argc)
			out = argv[++i];
	}
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct fake f;
	char config[512];
	if (fake_start(&f, scenario))
		return 1;
	snprintf(config, sizeof config, "%s/config.json", f.dir);
	if (fake_write_config(&f, config, NULL))
		return 1;
	convbi_options o = CONVBI_OPTIONS_INIT;
	o.db_path = SAMPLE_DB;
	o.config_path = config;
	o.stream = 1;
	struct run base = {0};
	pthread_mutex_init(&base.lock, NULL);
	if (convbi_engine_open(&base.engine, &o)) {
		fprintf(stderr, "engine: %s\n", convbi_engine_errmsg(base.engine));
		return 1;
	}
	int port;
	pid_t serve = start_serve(config, &port);
	if (!port) {
		fprintf(stderr, "convbi serve did not start\n");
		return 1;
	}
	static const int levels[] = {1, 16, 64};
	FILE *js = out ? fopen(out, "w") : NULL;
	if (js)
		fprintf(js, "{\"questions_per_client\":%d,\"levels\":[", per_client);
	printf("%8s %10s %10s %10s %10s %10s %10s %12s %14s %12s\n", "clients", "lib p50", "lib p99", "serve p50", "serve p99",
	       "added p50", "added p99", "serve q/s", "q/s ex-model", "added CPU/q");
	for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++) {
		int n = levels[l] * per_client;
		struct run lib = base, srv = base;
		lib.clients = srv.clients = levels[l];
		lib.per_client = srv.per_client = per_client;
		lib.lat = calloc((size_t)n, sizeof(double));
		srv.lat = calloc((size_t)n, sizeof(double));
		lib.failures = srv.failures = 0;
		srv.port = port;
		run_clients(&srv, serve_worker);  /* warm-up: connections, page cache */
		srv.failures = 0;
		struct rusage u0, u1;
		getrusage(RUSAGE_SELF, &u0);
		double lib_ms = run_clients(&lib, lib_worker);
		getrusage(RUSAGE_SELF, &u1);
		double lib_cpu = (u1.ru_utime.tv_sec - u0.ru_utime.tv_sec) + (u1.ru_stime.tv_sec - u0.ru_stime.tv_sec) +
		                 ((u1.ru_utime.tv_usec - u0.ru_utime.tv_usec) + (u1.ru_stime.tv_usec - u0.ru_stime.tv_usec)) / 1e6;
		double c0 = cpu_s(serve);
		double srv_ms = run_clients(&srv, serve_worker);
		double srv_cpu = cpu_s(serve) - c0;
		double added_cpu_ms = (srv_cpu - lib_cpu) * 1000 / n;
		bench_sort(lib.lat, n);
		bench_sort(srv.lat, n);
		double lp50 = bench_pct(lib.lat, n, 50), lp99 = bench_pct(lib.lat, n, 99);
		double sp50 = bench_pct(srv.lat, n, 50), sp99 = bench_pct(srv.lat, n, 99);
		double qps = n / (srv_ms / 1000), ex = srv_ms > lib_ms ? n / ((srv_ms - lib_ms) / 1000) : INFINITY;
		printf("%8d %8.2fms %8.2fms %8.2fms %8.2fms %8.2fms %8.2fms %12.0f %14.0f %10.3fms%s\n", levels[l], lp50, lp99, sp50, sp99,
		       sp50 - lp50, sp99 - lp99, qps, ex, added_cpu_ms, lib.failures || srv.failures ? "  (failures!)" : "");
		if (js)
			fprintf(js, "%s{\"clients\":%d,\"library_p50_ms\":%.3f,\"library_p99_ms\":%.3f,\"serve_p50_ms\":%.3f,"
			            "\"serve_p99_ms\":%.3f,\"added_p50_ms\":%.3f,\"added_p99_ms\":%.3f,\"serve_qps\":%.1f,"
			            "\"serve_qps_model_excluded\":%.1f,\"added_cpu_ms_per_question\":%.3f,\"failures\":%d}",
			        l ? "," : "", levels[l], lp50, lp99, sp50, sp99, sp50 - lp50, sp99 - lp99, qps, isfinite(ex) ? ex : -1,
			        added_cpu_ms, lib.failures + srv.failures);
		free(lib.lat);
		free(srv.lat);
	}
	/* idle sessions that have asked once: they hold a conversation */
	CURL *c = curl_easy_init();
	struct body b = {NULL, 0};
	char url[128], qurl[160], id[33];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/sessions", port);
	sleep(4);  /* the benchmark's conversations go idle: a clean baseline */
	long asked_before = rss_kib(serve);
	int asked = 0;
	for (int i = 0; i < ASKED_SESSIONS; i++) {
		if (post(c, url, "{}", &b) != 201 || session_of(b.data, id))
			continue;
		snprintf(qurl, sizeof qurl, "http://127.0.0.1:%d/v1/sessions/%s/questions", port, id);
		asked += post(c, qurl, "{\"question\":\"customers per country?\"}", &b) == 200;
	}
	sleep(4);  /* the server closes the connections of conversations idle for 2 s */
	long asked_after = rss_kib(serve);
	double per_asked = asked ? (asked_after - asked_before) * 1024.0 / asked : NAN;
	printf("sessions that asked once, now idle: %d, RSS %ld -> %ld KiB, %.0f bytes each\n", asked, asked_before, asked_after, per_asked);
	/* idle sessions: RSS per session, then the cap */
	int open = 0;
	long before = rss_kib(serve);
	for (int i = 0; i < SESSIONS; i++)
		open += post(c, url, "{}", &b) == 201;
	long after = rss_kib(serve);
	/* the benchmark's own 64 + 3 sessions count too: the cap is reached earlier */
	long over = post(c, url, "{}", &b);
	double per = open ? (after - before) * 1024.0 / open : NAN;
	char murl[128];
	snprintf(murl, sizeof murl, "http://127.0.0.1:%d/metrics", port);
	long over_status = over;
	curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(c, CURLOPT_URL, murl);
	free(b.data);
	b.data = NULL;
	b.len = 0;
	long open_now = -1;
	if (curl_easy_perform(c) == CURLE_OK && b.data && strstr(b.data, "\nconvbi_sessions_open "))
		open_now = strtol(strstr(b.data, "\nconvbi_sessions_open ") + 22, NULL, 10);
	printf("sessions open when the cap answered %ld: %ld\n", over_status, open_now);
	printf("sessions: %d of %d opened (the cap counts the benchmark's earlier ones), RSS %ld -> %ld KiB, %.0f bytes per idle session; "
	       "past the cap: HTTP %ld\n", open, SESSIONS, before, after, per, over);
	if (js) {
		fprintf(js, "],\"asked_sessions\":%d,\"bytes_per_asked_idle_session\":%.0f,\"sessions_opened\":%d,\"rss_before_kib\":%ld,\"rss_after_kib\":%ld,\"bytes_per_idle_session\":%.0f,"
		            "\"past_cap_status\":%ld,\"sessions_open_at_cap\":%ld}\n", asked, per_asked, open, before, after, per, over, open_now);
		fclose(js);
	}
	free(b.data);
	curl_easy_cleanup(c);
	kill(serve, SIGTERM);
	waitpid(serve, NULL, 0);
	convbi_engine_close(base.engine);
	fake_stop(&f);
	curl_global_cleanup();
	return 0;
}
