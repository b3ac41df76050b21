/* bench_redis.c -- fleet mode: what sharing endpoint state through Redis costs and buys.
 *
 * Part 1, cost: the latency of one routing decision (pool_pick + pool_report
 * OK with the budget headers every Azure reply carries, as bench_routing
 * times it) on
 *   file          the memory-mapped state file (one host);
 *   redis naive   the redis backend with every vtable operation its own
 *                 round trip (STATE_REDIS_NO_BATCH | NO_PIPELINE): what a
 *                 plain "one script call per op" backend costs;
 *   redis         the shipped default: a pick's loads come from one
 *                 HGETALL, writes whose result is known are pipelined;
 *   redis cache   the same with state.cache_ms = 100;
 * on 3 endpoints, one process, then 4 processes at once on one state; and
 * the default and naive modes again on 16 endpoints (a pick reads them
 * all).  Every call is timed alone; the table gives median, p99, calls/s
 * and round trips per call.
 *
 * Part 2, benefit: quota-bound throughput.  The fake Azure server
 * (tests/fake_aoai) serves two endpoints limited to RPS requests per
 * sliding second each; 4 processes call llm_chat in a loop for a fixed
 * time, each process with
 *   separate      its own state file (what 4 hosts without fleet mode do);
 *   shared file   one state file (4 processes on one host);
 *   shared redis  separate local files but one Redis (4 hosts in fleet mode);
 * twice: "reactive" (no client-side limit: the clients learn from 429s and
 * retry-after) and "paced" (each endpoint configured with rpm = the quota,
 * which the pool enforces by pacing through the state).  The table gives
 * calls that succeeded, calls/s against the quota bound, the 429s the
 * server sent, and calls that failed.
 *
 * Usage: bench_redis [--out FILE] [--quick] [--no-quota]
 * Needs redis-server (started on a free loopback port, killed at exit) and
 * the fake server (FAKE_AOAI_BIN).  Writes the JSON to --out (default
 * bench_redis.json).  A bench never gates the suite: no PASS/FAIL here.
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "convbi/convbi.h"
#include "fake.h"
#include "llm/config.h"
#include "llm/llm.h"
#include "llm/pool.h"
#include "llm/state_redis.h"
#include "testutil.h"
#include "util/clock.h"
#include "benchutil.h"

#ifndef SCRATCH_DIR
#define SCRATCH_DIR "/tmp"
#endif

#define PROCS 4
#define MAX_EPS 16
#define RPS 5 /* part 2: per endpoint, per sliding second */
#define QUOTA_EPS 2

static char dir[512];            /* this run's scratch directory */
static struct bench_redis redis; /* our redis-server */
#define redis_port (redis.port)

static void redis_stop(void)
{
	bench_redis_stop(&redis);
}

/* ---- part 1: cost ----------------------------------------------------------------- */

enum mode { M_FILE, M_NAIVE, M_REDIS, M_CACHE, NMODES };
static const char *const mode_name[NMODES] = {"file", "redis naive", "redis", "redis cache 100ms"};

static struct pool_ep_cfg eps[MAX_EPS];
static char ep_names[MAX_EPS][16], ep_ids[MAX_EPS][64];

/* n endpoints, weights 1, 2, 3, 1 ...; paced: with rpm and tpm budgets so
 * large they never hold a call back, to measure what pacing costs. */
static void make_eps(int n, int paced)
{
	for (int i = 0; i < n; i++) {
		snprintf(ep_names[i], sizeof ep_names[i], "ep%d", i);
		snprintf(ep_ids[i], sizeof ep_ids[i], "https://ep%d.example/openai/deployments/gpt", i);
		eps[i] =
		        (struct pool_ep_cfg){ep_names[i], ep_ids[i], 0, 1 + i % 3, paced ? 100000000 : 0, paced ? 2000000000 : 0};
	}
}

/* Opens a pool for mode on n endpoints; *st_out borrows its state.  tag
 * keeps runs apart (file name, key prefix); local names the fallback. */
static struct pool *open_mode(enum mode m, int n, const char *tag, const char *local, struct state **st_out)
{
	struct state_shape sh;
	struct state *st = NULL;
	struct pool *p = NULL;
	struct err e = ERR_INIT;
	char path[700], url[64], prefix[64];
	snprintf(path, sizeof path, "%s/%s.state", dir, m == M_FILE ? tag : local);
	if (pool_shape(&sh, eps, (size_t)n, &e))
		goto fail;
	if (m == M_FILE) {
		if (state_open_file(&st, path, &sh, &e))
			goto fail;
	} else {
		struct state_redis_opts o = STATE_REDIS_OPTS_INIT;
		snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", redis_port);
		snprintf(prefix, sizeof prefix, "%s:", tag);
		o.url = url;
		o.prefix = prefix;
		o.local_path = path;
		o.timeout_ms = 1000;
		o.cache_ms = m == M_CACHE ? 100 : 0;
		o.flags = m == M_NAIVE ? STATE_REDIS_NO_BATCH | STATE_REDIS_NO_PIPELINE : 0;
		if (state_open_redis(&st, &o, &sh, &e))
			goto fail;
		if (strcmp(state_describe(st), "redis")) {
			fprintf(stderr, "bench_redis: Redis is not serving (%s)\n", state_describe(st));
			exit(1);
		}
	}
	if (pool_open_state(&p, eps, (size_t)n, st, &e))
		goto fail;
	*st_out = st;
	return p;
fail:
	fprintf(stderr, "bench_redis: cannot open %s state: %s\n", mode_name[m], e.msg);
	exit(1);
}

struct cost {
	int64_t median, p99; /* ns per call */
	double calls_per_s;
	double round_trips; /* per call (redis modes) */
	long samples, errors;
};

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Times n calls into lat; returns errors. */
static long timed(struct pool *p, int64_t *lat, long n)
{
	long errors = 0;
	for (long i = 0; i < n; i++) {
		int64_t t = clock_mono_ns();
		errors += bench_pick_report(p) < 0;
		lat[i] = clock_mono_ns() - t;
	}
	return errors;
}

static struct cost summarise(int64_t *lat, long n, int64_t wall_ns, long errors, double rt)
{
	struct cost c;
	qsort(lat, (size_t)n, sizeof *lat, cmp64);
	c.median = lat[n / 2];
	c.p99 = lat[n * 99 / 100];
	c.calls_per_s = (double)n * 1e9 / (double)wall_ns;
	c.round_trips = rt;
	c.samples = n;
	c.errors = errors;
	return c;
}

static struct cost cost_single(enum mode m, int neps, int paced, long n)
{
	static int run;
	char tag[64];
	struct state *st;
	snprintf(tag, sizeof tag, "cost%d", run++);
	make_eps(neps, paced);
	struct pool *p = open_mode(m, neps, tag, tag, &st);
	int64_t *lat = malloc((size_t)n * sizeof *lat);
	if (!lat)
		exit(1);
	timed(p, lat, n / 10 > 0 ? n / 10 : 1); /* warm-up */
	struct state_redis_stats a, b;
	state_redis_stats(st, &a);
	int64_t t = clock_mono_ns();
	long errors = timed(p, lat, n);
	int64_t wall = clock_mono_ns() - t;
	state_redis_stats(st, &b);
	struct cost c = summarise(lat, n, wall, errors, (double)(b.round_trips - a.round_trips) / n);
	if (b.fallbacks != a.fallbacks || b.local_ops != a.local_ops)
		fprintf(stderr, "bench_redis: %s fell back to local state during the run\n", mode_name[m]);
	free(lat);
	pool_close(p);
	return c;
}

/* PROCS processes, n calls each, released together, on one state (each
 * with its own fallback file).  Samples go to a shared mapping. */
static struct cost cost_multi(enum mode m, int neps, long n)
{
	static int run;
	char tag[64];
	snprintf(tag, sizeof tag, "multi%d", run++);
	make_eps(neps, 0);
	long total = (long)PROCS * n;
	size_t bytes = (size_t)total * sizeof(int64_t) + 2 * PROCS * sizeof(long);
	int64_t *lat = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (lat == MAP_FAILED)
		exit(1);
	long *errors = (long *)(lat + total), *rts = errors + PROCS;
	int go[2];
	if (pipe(go))
		exit(1);
	pid_t pid[PROCS];
	for (int i = 0; i < PROCS; i++) {
		pid[i] = fork();
		if (pid[i] == 0) {
			char local[80];
			struct state *st;
			close(go[1]);
			snprintf(local, sizeof local, "%s-local%d", tag, i);
			struct pool *p = open_mode(m, neps, tag, local, &st);
			timed(p, lat + (long)i * n, n / 10 > 0 ? n / 10 : 1);
			struct state_redis_stats a, b;
			state_redis_stats(st, &a);
			char c;
			if (read(go[0], &c, 1) < 0)
				_exit(1);
			errors[i] = timed(p, lat + (long)i * n, n);
			state_redis_stats(st, &b);
			rts[i] = (long)(b.round_trips - a.round_trips);
			pool_close(p);
			_exit(0);
		}
	}
	close(go[0]);
	clock_sleep_ms(300); /* every child open, warmed up and blocked */
	int64_t t = clock_mono_ns();
	close(go[1]);
	for (int i = 0; i < PROCS; i++)
		waitpid(pid[i], NULL, 0);
	int64_t wall = clock_mono_ns() - t;
	long errs = 0, rt = 0;
	for (int i = 0; i < PROCS; i++) {
		errs += errors[i];
		rt += rts[i];
	}
	struct cost c = summarise(lat, total, wall, errs, (double)rt / total);
	munmap(lat, bytes);
	return c;
}

/* ---- part 2: quota-bound throughput ------------------------------------------------ */

enum share { S_SEPARATE, S_FILE, S_REDIS, NSHARES };
static const char *const share_name[NSHARES] = {"separate state per process", "shared file (1 host)", "shared redis (fleet)"};

struct tput {
	long ok, failed;   /* calls */
	long rate_limited; /* 429s the server sent */
	long requests;     /* requests the server saw */
	double seconds;    /* wall time of the run */
	double ok_per_s;
	double bound_per_s; /* the quota */
	double mean_ms;     /* per successful call, waits included */
};

/* Writes the harness's config with every endpoint limited to rpm (the
 * pool paces it): the harness merges objects but replaces arrays, so the
 * endpoints are edited here. */
static int rewrite_rpm(const struct fake *f, const char *path, const char *extra, int rpm)
{
	if (fake_write_config(f, path, extra))
		return -1;
	char *text = tu_read_file(path, NULL);
	cJSON *root = text ? cJSON_Parse(text) : NULL;
	free(text);
	cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "endpoints"), *ep;
	if (!cJSON_IsArray(list)) {
		cJSON_Delete(root);
		return -1;
	}
	cJSON_ArrayForEach(ep, list)
	{
		cJSON_DeleteItemFromObjectCaseSensitive(ep, "rpm");
		cJSON_AddNumberToObject(ep, "rpm", rpm);
	}
	char *out = cJSON_Print(root);
	int rc = out ? tu_write_file(path, out) : -1;
	free(out);
	cJSON_Delete(root);
	return rc;
}

struct child_result {
	long ok, failed;
	int64_t ok_ms; /* summed wall time of the calls that succeeded */
};

static struct tput throughput(const struct fake *f, enum share s, int seconds, int rpm)
{
	struct tput t;
	memset(&t, 0, sizeof t);
	static int run;
	run++;
	long req0 = 0, rl0 = 0;
	for (int i = 0; i < f->nendpoints; i++) {
		req0 += fake_stat(f, f->ep[i].name, "requests");
		rl0 += fake_stat(f, f->ep[i].name, "rate_limited");
	}
	int go[2], res[2];
	if (pipe(go) || pipe(res))
		exit(1);
	pid_t pid[PROCS];
	for (int k = 0; k < PROCS; k++) {
		pid[k] = fork();
		if (pid[k] != 0)
			continue;
		close(go[1]);
		close(res[0]);
		char cfgpath[700], extra[512], state[700];
		snprintf(cfgpath, sizeof cfgpath, "%s/tput-%d-%d.json", dir, run, k);
		if (s == S_FILE)
			snprintf(state, sizeof state, "%s/tput-%d-shared.state", dir, run);
		else
			snprintf(state, sizeof state, "%s/tput-%d-%d.state", dir, run, k);
		if (s == S_REDIS)
			snprintf(extra, sizeof extra,
			         "{\"state\": {\"path\": \"%s\", \"backend\": \"redis\", "
			         "\"url\": \"redis://127.0.0.1:%d/0\", \"prefix\": \"tput%d:\"}}",
			         state, redis_port, run);
		else
			snprintf(extra, sizeof extra, "{\"state\": {\"path\": \"%s\"}}", state);
		if (rpm > 0 && rewrite_rpm(f, cfgpath, extra, rpm))
			_exit(1);
		struct llm_config cfg;
		struct llm *l = NULL;
		struct err e = ERR_INIT;
		if ((rpm <= 0 && fake_write_config(f, cfgpath, extra)) || config_load(&cfg, cfgpath, &e) ||
		    llm_open(&l, &cfg, &e)) {
			fprintf(stderr, "bench_redis: child: %s\n", e.msg);
			_exit(1);
		}
		char c;
		if (read(go[0], &c, 1) < 0)
			_exit(1);
		struct child_result r = {0, 0, 0};
		int64_t end = clock_mono_ms() + seconds * 1000L;
		struct chat_msg m = {"user", "hello"};
		struct llm_request req = {.msgs = &m, .n = 1, .temperature = -1};
		while (clock_mono_ms() < end) {
			struct llm_reply rep;
			int64_t began = clock_mono_ms();
			if (llm_chat(l, &req, &rep, &e) == CONVBI_OK) {
				r.ok++;
				r.ok_ms += clock_mono_ms() - began;
			} else {
				r.failed++;
			}
			llm_reply_release(&rep);
		}
		llm_close(l);
		if (write(res[1], &r, sizeof r) != (ssize_t)sizeof r)
			_exit(1);
		_exit(0);
	}
	close(go[0]);
	close(res[1]);
	clock_sleep_ms(300);
	int64_t t0 = clock_mono_ms();
	close(go[1]);
	for (int k = 0; k < PROCS; k++) {
		struct child_result r;
		if (read(res[0], &r, sizeof r) == (ssize_t)sizeof r) {
			t.ok += r.ok;
			t.failed += r.failed;
			t.mean_ms += (double)r.ok_ms;
		}
	}
	t.seconds = (double)(clock_mono_ms() - t0) / 1000.0;
	for (int k = 0; k < PROCS; k++)
		waitpid(pid[k], NULL, 0);
	close(res[0]);
	for (int i = 0; i < f->nendpoints; i++) {
		t.requests += fake_stat(f, f->ep[i].name, "requests");
		t.rate_limited += fake_stat(f, f->ep[i].name, "rate_limited");
	}
	t.requests -= req0;
	t.rate_limited -= rl0;
	t.ok_per_s = (double)t.ok / t.seconds;
	t.mean_ms = t.ok ? t.mean_ms / (double)t.ok : 0;
	t.bound_per_s = QUOTA_EPS * RPS;
	return t;
}

/* ---- report ---------------------------------------------------------------------------- */

static void cost_row(const char *what, const struct cost *c)
{
	printf("  %-38s %10lld %10lld %10.0f %8.1f %8ld\n", what, (long long)c->median, (long long)c->p99, c->calls_per_s,
	       c->round_trips, c->samples);
}

static cJSON *cost_json(const char *mode, const char *workers, int neps, const struct cost *c)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "mode", mode);
	cJSON_AddStringToObject(o, "workers", workers);
	cJSON_AddNumberToObject(o, "endpoints", neps);
	cJSON_AddNumberToObject(o, "median_ns", (double)c->median);
	cJSON_AddNumberToObject(o, "p99_ns", (double)c->p99);
	cJSON_AddNumberToObject(o, "calls_per_s", c->calls_per_s);
	cJSON_AddNumberToObject(o, "round_trips_per_call", c->round_trips);
	cJSON_AddNumberToObject(o, "samples", (double)c->samples);
	cJSON_AddNumberToObject(o, "errors", (double)c->errors);
	return o;
}

static void tput_row(const char *what, const struct tput *t)
{
	printf("  %-36s %6ld %8.1f %8.0f%% %8ld %8ld %8ld %8.0f\n", what, t->ok, t->ok_per_s,
	       100.0 * t->ok_per_s / t->bound_per_s, t->rate_limited, t->requests, t->failed, t->mean_ms);
}

static cJSON *tput_json(const char *what, const struct tput *t)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "state", what);
	cJSON_AddNumberToObject(o, "ok_calls", (double)t->ok);
	cJSON_AddNumberToObject(o, "failed_calls", (double)t->failed);
	cJSON_AddNumberToObject(o, "ok_per_s", t->ok_per_s);
	cJSON_AddNumberToObject(o, "quota_per_s", t->bound_per_s);
	cJSON_AddNumberToObject(o, "server_429s", (double)t->rate_limited);
	cJSON_AddNumberToObject(o, "server_requests", (double)t->requests);
	cJSON_AddNumberToObject(o, "seconds", t->seconds);
	cJSON_AddNumberToObject(o, "mean_ms_per_ok_call", t->mean_ms);
	return o;
}

int main(int argc, char **argv)
{
	const char *out = "bench_redis.json";
	int quick = 0, quota = 1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--out") && i + 1 < argc)
			out = argv[++i];
		else if (!strcmp(argv[i], "--quick"))
			quick = 1;
		else if (!strcmp(argv[i], "--no-quota"))
			quota = 0;
		else {
			fprintf(stderr, "usage: bench_redis [--out FILE] [--quick] [--no-quota]\n");
			return 2;
		}
	}
	if (bench_scratch_dir(dir, sizeof dir, "bench_redis") || bench_redis_start(&redis, dir))
		return 1;
	atexit(redis_stop);
	long q = quick ? 10 : 1;
	long n_file = 200000 / q, n_redis = 20000 / q;

	struct cost c1[NMODES], cm[NMODES], c16[NMODES], cp[NMODES];
	for (int m = 0; m < NMODES; m++)
		c1[m] = cost_single((enum mode)m, 3, 0, m == M_FILE ? n_file : n_redis);
	for (int m = 0; m < NMODES; m++)
		cm[m] = cost_multi((enum mode)m, 3, m == M_FILE ? n_file / 4 : n_redis / 4);
	int m16[] = {M_FILE, M_NAIVE, M_REDIS, M_CACHE};
	for (size_t i = 0; i < sizeof m16 / sizeof *m16; i++)
		c16[m16[i]] = cost_single((enum mode)m16[i], 16, 0, m16[i] == M_FILE ? n_file : n_redis / 2);
	for (int m = 0; m < NMODES; m++)
		cp[m] = cost_single((enum mode)m, 3, 1, m == M_FILE ? n_file : n_redis);

	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	printf("pick + report (OK, with budget headers), redis-server 127.0.0.1, %ld CPUs\n", cpus);
	printf("  %-38s %10s %10s %10s %8s %8s\n", "", "median ns", "p99 ns", "calls/s", "RT/call", "samples");
	char label[96];
	for (int m = 0; m < NMODES; m++) {
		snprintf(label, sizeof label, "%s, 3 eps, 1 proc", mode_name[m]);
		cost_row(label, &c1[m]);
	}
	for (int m = 0; m < NMODES; m++) {
		snprintf(label, sizeof label, "%s, 3 eps, %d procs", mode_name[m], PROCS);
		cost_row(label, &cm[m]);
	}
	for (size_t i = 0; i < sizeof m16 / sizeof *m16; i++) {
		snprintf(label, sizeof label, "%s, 16 eps, 1 proc", mode_name[m16[i]]);
		cost_row(label, &c16[m16[i]]);
	}
	for (int m = 0; m < NMODES; m++) {
		snprintf(label, sizeof label, "%s, 3 paced eps, 1 proc", mode_name[m]);
		cost_row(label, &cp[m]);
	}

	cJSON *root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "bench", "redis");
	cJSON_AddNumberToObject(root, "cpus", (double)cpus);
	cJSON *costs = cJSON_AddArrayToObject(root, "cost");
	for (int m = 0; m < NMODES; m++)
		cJSON_AddItemToArray(costs, cost_json(mode_name[m], "1 process", 3, &c1[m]));
	for (int m = 0; m < NMODES; m++)
		cJSON_AddItemToArray(costs, cost_json(mode_name[m], "4 processes", 3, &cm[m]));
	for (size_t i = 0; i < sizeof m16 / sizeof *m16; i++)
		cJSON_AddItemToArray(costs, cost_json(mode_name[m16[i]], "1 process", 16, &c16[m16[i]]));
	for (int m = 0; m < NMODES; m++) {
		cJSON *o = cost_json(mode_name[m], "1 process", 3, &cp[m]);
		cJSON_AddBoolToObject(o, "paced_rpm_tpm", 1);
		cJSON_AddItemToArray(costs, o);
	}

	if (quota) {
		int seconds = quick ? 4 : 12;
		char scen[1024];
		snprintf(scen, sizeof scen,
		         "{\"endpoints\": ["
		         "{\"name\":\"q1\",\"api_key\":\"k-q1-3a7f9c2e41\",\"deployment\":\"gpt\","
		         "\"rps\":%d,\"latency_ms\":20},"
		         "{\"name\":\"q2\",\"api_key\":\"k-q2-8d1b6e4f07\",\"deployment\":\"gpt\","
		         "\"rps\":%d,\"latency_ms\":20}],"
		         "\"default_reply\": \"OK\"}",
		         RPS, RPS);
		struct fake f;
		if (fake_start(&f, scen)) {
			fprintf(stderr, "bench_redis: the fake server would not start\n");
			return 1;
		}
		struct tput t[2][NSHARES];
		for (int paced = 0; paced < 2; paced++)
			for (int s = 0; s < NSHARES; s++) {
				clock_sleep_ms(1100); /* let the quota windows empty */
				t[paced][s] = throughput(&f, (enum share)s, seconds, paced ? RPS * 60 : 0);
			}
		fake_stop(&f);
		printf("\nquota-bound throughput: %d processes, %d endpoints x %d req/s (bound %d/s), "
		       "%d s each\n",
		       PROCS, QUOTA_EPS, RPS, QUOTA_EPS * RPS, seconds);
		printf("  %-36s %6s %8s %9s %8s %8s %8s %8s\n", "", "ok", "ok/s", "of bound", "429s", "requests", "failed",
		       "ms/call");
		cJSON *tp = cJSON_AddArrayToObject(root, "throughput");
		for (int paced = 0; paced < 2; paced++)
			for (int s = 0; s < NSHARES; s++) {
				snprintf(label, sizeof label, "%s, %s", paced ? "paced rpm" : "reactive", share_name[s]);
				tput_row(label, &t[paced][s]);
				cJSON_AddItemToArray(tp, tput_json(label, &t[paced][s]));
			}
	}

	char *text = cJSON_Print(root);
	FILE *fo = fopen(out, "w");
	if (!fo || !text || fprintf(fo, "%s\n", text) < 0) {
		perror(out);
		return 1;
	}
	fclose(fo);
	free(text);
	cJSON_Delete(root);
	redis_stop();
	if (!getenv("KEEP_SCRATCH"))
		tu_rmtree(dir);
	printf("wrote %s\n", out);
	return 0;
}
