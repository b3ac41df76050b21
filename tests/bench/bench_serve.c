/* bench_serve.c -- what `convbi serve` adds over the library, side by side.
 *
 * Against one zero-latency fake Azure OpenAI server (intent -> data
 * question, SQL -> a fixed GROUP BY, answer -> a sentence), for 1, 16 and 64
 * concurrent clients, each with its own conversation:
 *   library  N threads call convbi_session_ask on one engine in this process
 *   serve    N threads POST /v1/sessions/{id}/questions (JSON answer) over
 *            keep-alive HTTP to a `convbi serve` child process, with a
 *            minimal client (rawhttp: the request built once, poll + recv;
 *            --client raw, the default) or libcurl's easy interface
 *            (--client curl), which costs the client about twice the CPU.
 * Each client's conversation, connection and session are set up and warmed
 * by one question outside the timing.  The two then take turns for
 * --rounds rounds (default 10, alternating which goes first), each round
 * asking every client its share of the questions, so that load from
 * outside the benchmark -- this is a shared machine -- falls on both alike.
 * Per-question wall latencies give p50/p99; "added" is serve's minus the
 * library's at the same percentile.  "added CPU/q" is the serve process's
 * CPU per question minus the library run's; "client CPU/q" is the HTTP
 * client's own (this process during the serve turns), which competes for
 * the same two cores.  Questions per second through serve "with the model
 * cost excluded" is questions / (serve wall time - library wall time): the
 * rate the HTTP layer alone would sustain on these cores.
 * Then sessions: the serve process's RSS (VmRSS) before and after opening
 * 10,000 idle sessions gives the bytes per idle session, and the 10,001st
 * must be a 503 with Retry-After (the cap is --max-sessions 10000).
 *
 * Usage: bench_serve [--questions N] [--clients N] [--client raw|curl]
 *                    [--rounds N] [--no-sessions] [--out FILE]
 * (N questions per client, default 40; --clients runs one level only;
 * BENCH_SERVE_BIN=PATH runs another build's convbi, for before/after.)
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
#include "rawhttp.h"

#define MAX_CLIENTS 64
#define SESSIONS 10000
#define ASKED_SESSIONS 200
#define ROUNDS 10 /* library and serve take turns this many times: load from outside hits both alike */
#define QUESTION "customers per country?"
#define QUESTION_JSON "{\"question\":\"customers per country?\"}"

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

struct body {
	char *data;
	size_t len;
};

/* What one client keeps across rounds: its conversation (library) or its
 * keep-alive connection and session (serve), set up -- and warmed by one
 * question -- outside the timing. */
struct client {
	convbi_session *s; /* library */
	CURL *curl;        /* serve over libcurl */
	struct body b;
	char url[160];
	int fd;      /* serve over rawhttp */
	char *req;   /* owned: the question's request text */
	int redials; /* the server closed the connection (`Connection: close`) and it was dialled again */
	int ready, broken;
};

struct run {
	int clients, per_client; /* questions per client, all rounds together */
	int round_n, done;       /* this round's questions per client; those before it */
	double *lat;             /* clients * per_client, ms */
	int failures;
	int redials; /* serve closed a client's connection after an answer */
	pthread_mutex_t lock;
	struct client cl[MAX_CLIENTS];
	convbi_engine *engine; /* library */
	int port;              /* serve */
};

struct worker {
	struct run *r;
	int index;
};

static void count_failures(struct run *r, int n)
{
	pthread_mutex_lock(&r->lock);
	r->failures += n;
	pthread_mutex_unlock(&r->lock);
}

static void *lib_worker(void *p)
{
	struct worker *w = p;
	struct run *r = w->r;
	struct client *c = &r->cl[w->index];
	if (!c->ready && !c->broken) {
		convbi_answer *a = NULL;
		c->broken = convbi_session_new(&c->s, r->engine) || convbi_session_ask(c->s, QUESTION, NULL, NULL, NULL, &a);
		convbi_answer_free(a);
		c->ready = 1;
	}
	int bad = c->broken ? r->round_n : 0;
	for (int i = 0; !c->broken && i < r->round_n; i++) {
		convbi_answer *a = NULL;
		double t0 = now_ms();
		int rc = convbi_session_ask(c->s, QUESTION, NULL, NULL, NULL, &a);
		r->lat[w->index * r->per_client + r->done + i] = now_ms() - t0;
		convbi_answer_free(a); /* the conversation goes on, as on serve's sessions */
		bad += rc != CONVBI_OK;
	}
	count_failures(r, bad);
	return NULL;
}

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

/* Serve through libcurl's easy interface, as a BI application might. */
static void *serve_worker(void *p)
{
	struct worker *w = p;
	struct run *r = w->r;
	struct client *c = &r->cl[w->index];
	if (!c->ready && !c->broken) {
		char url[160], id[33];
		snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/sessions", r->port);
		c->curl = curl_easy_init();
		c->broken = !c->curl || post(c->curl, url, "{}", &c->b) != 201 || session_of(c->b.data, id);
		if (!c->broken) {
			snprintf(c->url, sizeof c->url, "http://127.0.0.1:%d/v1/sessions/%s/questions", r->port, id);
			c->broken = post(c->curl, c->url, QUESTION_JSON, &c->b) != 200;
		}
		c->ready = 1;
	}
	int bad = c->broken ? r->round_n : 0;
	for (int i = 0; !c->broken && i < r->round_n; i++) {
		double t0 = now_ms();
		long code = post(c->curl, c->url, QUESTION_JSON, &c->b);
		r->lat[w->index * r->per_client + r->done + i] = now_ms() - t0;
		bad += code != 200;
	}
	count_failures(r, bad);
	return NULL;
}

/* Serve through rawhttp (tests/support): one keep-alive socket, the
 * request text built once, poll + recv -- a client that costs next to
 * nothing, so that what is measured is the server.  Like any HTTP client
 * it dials again after an answer that closes the connection
 * (`Connection: close`; libmicrohttpd 0.9.75 sends it now and then),
 * counting it: without that, every later question of that client failed
 * at once and made serve look faster than the library. */
static int raw_exchange(struct client *c, int port, const char *req, int want)
{
	struct rawhttp_resp resp = {0};
	char conn[32] = "";
	int ok = c->fd >= 0 && !rawhttp_send(c->fd, req);
	if (ok)
		rawhttp_read(c->fd, 30000, &resp);
	ok = ok && resp.status == want && resp.complete;
	if (!ok || (rawhttp_header(&resp, "connection", conn, sizeof conn) && strcasestr(conn, "close"))) {
		if (c->fd >= 0)
			close(c->fd);
		c->fd = rawhttp_dial(port);
		c->redials++;
	}
	rawhttp_resp_release(&resp);
	return ok;
}

static void *raw_worker(void *p)
{
	struct worker *w = p;
	struct run *r = w->r;
	struct client *c = &r->cl[w->index];
	if (!c->ready && !c->broken) {
		char path[96], id[33];
		char *req = rawhttp_request("POST", "/v1/sessions", "", "{}");
		struct rawhttp_resp resp = {0};
		c->fd = rawhttp_dial(r->port);
		c->broken = c->fd < 0 || !req || rawhttp_send(c->fd, req);
		if (!c->broken)
			rawhttp_read(c->fd, 30000, &resp);
		c->broken = c->broken || resp.status != 201 || session_of(resp.body, id);
		rawhttp_resp_release(&resp);
		free(req);
		if (!c->broken) {
			snprintf(path, sizeof path, "/v1/sessions/%s/questions", id);
			c->req = rawhttp_request("POST", path, "", QUESTION_JSON);
			c->broken = !c->req || !raw_exchange(c, r->port, c->req, 200);
		}
		c->ready = 1;
	}
	int bad = c->broken ? r->round_n : 0;
	for (int i = 0; !c->broken && i < r->round_n; i++) {
		double t0 = now_ms();
		int ok = raw_exchange(c, r->port, c->req, 200);
		r->lat[w->index * r->per_client + r->done + i] = now_ms() - t0;
		bad += !ok;
	}
	count_failures(r, bad);
	return NULL;
}

static void clients_release(struct run *r)
{
	for (int i = 0; i < MAX_CLIENTS; i++) {
		struct client *c = &r->cl[i];
		convbi_session_free(c->s);
		if (c->curl)
			curl_easy_cleanup(c->curl);
		free(c->b.data);
		if (c->ready && c->fd >= 0)
			close(c->fd);
		r->redials += c->redials;
		free(c->req);
		*c = (struct client){.fd = -1};
	}
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
		pthread_setname_np(t[i], fn == lib_worker ? "bench-library" : "bench-http"); /* for perf sched */
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

/* CPU seconds (user + system) between two getrusage() readings. */
static double rusage_s(const struct rusage *a, const struct rusage *b)
{
	return (b->ru_utime.tv_sec - a->ru_utime.tv_sec) + (b->ru_stime.tv_sec - a->ru_stime.tv_sec) +
	       ((b->ru_utime.tv_usec - a->ru_utime.tv_usec) + (b->ru_stime.tv_usec - a->ru_stime.tv_usec)) / 1e6;
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
		const char *bin = getenv("BENCH_SERVE_BIN"); /* another build's convbi, for before/after */
		execl(bin && *bin ? bin : CONVBI_BIN, "convbi", "serve", "--listen", "127.0.0.1:0", "--config", config, "--db",
		      "shop=" SAMPLE_DB, "--max-questions", "128", "--max-sessions", "10000", (char *)NULL);
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
	int per_client = 40, only_clients = 0, sessions = 1, rounds = ROUNDS;
	void *(*client)(void *) = raw_worker;
	const char *out = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--questions") && i + 1 < argc)
			per_client = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--out") && i + 1 < argc)
			out = argv[++i];
		else if (!strcmp(argv[i], "--clients") && i + 1 < argc)
			only_clients = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--no-sessions"))
			sessions = 0;
		else if (!strcmp(argv[i], "--client") && i + 1 < argc && !strcmp(argv[i + 1], "raw") && ++i)
			client = raw_worker;
		else if (!strcmp(argv[i], "--client") && i + 1 < argc && !strcmp(argv[i + 1], "curl") && ++i)
			client = serve_worker;
		else {
			fprintf(stderr,
			        "usage: %s [--questions N] [--clients N] [--client raw|curl] [--rounds N] [--no-sessions] [--out FILE]\n",
			        argv[0]);
			return 2;
		}
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
	static const int all_levels[] = {1, 16, 64};
	const int *levels = only_clients ? &only_clients : all_levels;
	size_t nlevels = only_clients ? 1 : sizeof all_levels / sizeof all_levels[0];
	if (rounds < 1 || rounds > per_client) {
		fprintf(stderr, "--rounds takes 1 to --questions (%d)\n", per_client);
		return 2;
	}
	if (only_clients < 0 || only_clients > MAX_CLIENTS) {
		fprintf(stderr, "--clients takes 1 to %d\n", MAX_CLIENTS);
		return 2;
	}
	FILE *js = out ? fopen(out, "w") : NULL;
	if (js)
		fprintf(js, "{\"questions_per_client\":%d,\"levels\":[", per_client);
	printf("%8s %10s %10s %10s %10s %10s %10s %12s %14s %12s %12s\n", "clients", "lib p50", "lib p99", "serve p50",
	       "serve p99", "added p50", "added p99", "serve q/s", "q/s ex-model", "added CPU/q", "client CPU/q");
	for (size_t l = 0; l < nlevels; l++) {
		int n = levels[l] * per_client;
		struct run lib = base, srv = base;
		lib.clients = srv.clients = levels[l];
		lib.per_client = srv.per_client = per_client;
		lib.lat = calloc((size_t)n, sizeof(double));
		srv.lat = calloc((size_t)n, sizeof(double));
		srv.port = port;
		clients_release(&lib);
		clients_release(&srv);
		run_clients(&lib, lib_worker); /* set up and warm: sessions, connections, caches */
		run_clients(&srv, client);
		lib.failures = srv.failures = 0;
		/* the two take turns, in alternating order, so that load from
		 * outside this benchmark falls on both alike */
		double lib_ms = 0, srv_ms = 0, lib_cpu = 0, srv_cpu = 0, client_cpu = 0;
		for (int k = 0; k < rounds; k++) {
			int q = per_client / rounds + (k < per_client % rounds);
			for (int turn = 0; turn < 2; turn++) {
				struct rusage u0, u1;
				getrusage(RUSAGE_SELF, &u0);
				if ((turn == 0) == (k % 2 == 0)) {
					lib.round_n = q;
					lib_ms += run_clients(&lib, lib_worker);
					getrusage(RUSAGE_SELF, &u1);
					lib_cpu += rusage_s(&u0, &u1);
					lib.done += q;
				} else {
					double c0 = cpu_s(serve);
					srv.round_n = q;
					srv_ms += run_clients(&srv, client);
					getrusage(RUSAGE_SELF, &u1);
					srv_cpu += cpu_s(serve) - c0;
					client_cpu += rusage_s(&u0, &u1); /* the HTTP client's own work */
					srv.done += q;
				}
			}
		}
		clients_release(&lib);
		clients_release(&srv);
		double client_cpu_ms = 1000 * client_cpu / n;
		double added_cpu_ms = (srv_cpu - lib_cpu) * 1000 / n;
		bench_sort(lib.lat, n);
		bench_sort(srv.lat, n);
		double lp50 = bench_pct(lib.lat, n, 50), lp99 = bench_pct(lib.lat, n, 99);
		double sp50 = bench_pct(srv.lat, n, 50), sp99 = bench_pct(srv.lat, n, 99);
		double qps = n / (srv_ms / 1000), ex = srv_ms > lib_ms ? n / ((srv_ms - lib_ms) / 1000) : INFINITY;
		char failed[160] = "";
		if (lib.failures || srv.failures)
			snprintf(failed, sizeof failed, "  (failures! library %d, serve %d)", lib.failures, srv.failures);
		if (srv.redials)
			snprintf(failed + strlen(failed), sizeof failed - strlen(failed), "  (serve closed %d connections)",
			         srv.redials);
		printf("%8d %8.2fms %8.2fms %8.2fms %8.2fms %8.2fms %8.2fms %12.0f %14.0f %10.3fms %10.3fms%s\n", levels[l], lp50,
		       lp99, sp50, sp99, sp50 - lp50, sp99 - lp99, qps, ex, added_cpu_ms, client_cpu_ms, failed);
		if (js)
			fprintf(js,
			        "%s{\"clients\":%d,\"library_p50_ms\":%.3f,\"library_p99_ms\":%.3f,\"serve_p50_ms\":%.3f,"
			        "\"serve_p99_ms\":%.3f,\"added_p50_ms\":%.3f,\"added_p99_ms\":%.3f,\"serve_qps\":%.1f,"
			        "\"serve_qps_model_excluded\":%.1f,\"added_cpu_ms_per_question\":%.3f,\"client_cpu_ms_per_question\":%.3f,"
			        "\"failures\":%d,\"serve_closed_connections\":%d}",
			        l ? "," : "", levels[l], lp50, lp99, sp50, sp99, sp50 - lp50, sp99 - lp99, qps,
			        isfinite(ex) ? ex : -1, added_cpu_ms, client_cpu_ms, lib.failures + srv.failures, srv.redials);
		free(lib.lat);
		free(srv.lat);
	}
	if (!sessions) {
		if (js) {
			fprintf(js, "]}\n");
			fclose(js);
		}
		goto stop;
	}
	/* idle sessions that have asked once: they hold a conversation */
	CURL *c = curl_easy_init();
	struct body b = {NULL, 0};
	char url[128], qurl[160], id[33];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/sessions", port);
	sleep(4); /* the benchmark's conversations go idle: a clean baseline */
	long asked_before = rss_kib(serve);
	int asked = 0;
	for (int i = 0; i < ASKED_SESSIONS; i++) {
		if (post(c, url, "{}", &b) != 201 || session_of(b.data, id))
			continue;
		snprintf(qurl, sizeof qurl, "http://127.0.0.1:%d/v1/sessions/%s/questions", port, id);
		asked += post(c, qurl, "{\"question\":\"customers per country?\"}", &b) == 200;
	}
	sleep(4); /* the server closes the connections of conversations idle for 2 s */
	long asked_after = rss_kib(serve);
	double per_asked = asked ? (asked_after - asked_before) * 1024.0 / asked : NAN;
	printf("sessions that asked once, now idle: %d, RSS %ld -> %ld KiB, %.0f bytes each\n", asked, asked_before, asked_after,
	       per_asked);
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
	       "past the cap: HTTP %ld\n",
	       open, SESSIONS, before, after, per, over);
	if (js) {
		fprintf(js,
		        "],\"asked_sessions\":%d,\"bytes_per_asked_idle_session\":%.0f,\"sessions_opened\":%d,\"rss_before_kib\":%ld,\"rss_after_kib\":%ld,\"bytes_per_idle_session\":%.0f,"
		        "\"past_cap_status\":%ld,\"sessions_open_at_cap\":%ld}\n",
		        asked, per_asked, open, before, after, per, over, open_now);
		fclose(js);
	}
	free(b.data);
	curl_easy_cleanup(c);
stop:
	kill(serve, SIGTERM);
	waitpid(serve, NULL, 0);
	convbi_engine_close(base.engine);
	fake_stop(&f);
	curl_global_cleanup();
	return 0;
}
