/* bench_throughput.c -- quota-bound throughput: convbi's rotating client vs
 * the old practice, against the fake Azure OpenAI server.
 *
 * Three endpoints, each limited to 20 requests/s (rps 20), latency
 * lognormal (median 150 ms, p95 400 ms).  N requests (--requests, default
 * 2000) from 32 threads, two ways, in the same run, each on a fresh fake
 * server (so the server's counters are per way):
 *   convbi  one struct llm (llm_open) shared by the 32 threads, llm_chat,
 *           each endpoint configured with its quota ("rpm": 1200, what a
 *           user copies from the Azure portal) so the client paces itself;
 *   legacy  a replica of the old practice: round-robin over the endpoints
 *           via a JSON file {"counter":N} read-modify-written under
 *           flock(LOCK_EX) on every try, a fresh curl easy handle per try
 *           (plain POST to the Azure path with the api-key header), retry
 *           only when the error text (HTTP status + body) contains "429",
 *           sleep 2^n + U(0,1) s (n = 0, 1), 3 tries in all.
 * Scenarios: healthy; one endpoint down (http503 forever); one endpoint 5x
 * slower (median 750 ms, p95 2000 ms).
 * Reported: requests/s achieved over the summed quota (60/s) and over the
 * quota of the endpoints that can answer (40/s when one is down: the bound
 * the targets are judged against), the
 * fraction of HTTP requests the server answered 429 (its own counters),
 * failures, p50/p95/p99 of the per-call latency (retries included).
 *
 * Usage: bench_throughput [--requests N] [--out FILE]
 */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "convbi/convbi.h"
#include "fake.h"
#include "benchutil.h"
#include "llm/config.h"
#include "llm/llm.h"

#define THREADS 32
#define NEPS 3
#define RPS_PER_EP 20

static const char *const EP_NAMES[NEPS] = {"east", "west", "north"};
static const char *const EP_KEYS[NEPS] = {"k-east-7f3a9c1e5b", "k-west-2d8b4f6a0c", "k-north-9e1c3a5b7d"};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}


/* ---- scenarios ------------------------------------------------------------ */

struct scen {
	const char *name;
	int down;        /* endpoint index answering 503, or -1 */
	int slow;        /* endpoint index 5x slower, or -1 */
};

static const struct scen SCENS[] = {
	{"healthy", -1, -1},
	{"one_down", 0, -1},
	{"one_slow", -1, 0},
};

static void scenario_json(const struct scen *s, char *out, size_t n)
{
	size_t off = snprintf(out, n, "{\"endpoints\":[");
	for (int i = 0; i < NEPS; i++) {
		int med = 150, p95 = 400;
		if (s->slow == i) {
			med *= 5;
			p95 *= 5;
		}
		off += snprintf(out + off, n - off,
		                "%s{\"name\":\"%s\",\"api_key\":\"%s\",\"deployment\":\"gpt-4o\",\"rps\":%d,"
		                "\"latency_ms\":{\"median\":%d,\"p95\":%d},\"faults\":%s,"
		                "\"client\":{\"rpm\":%d}}",
		                i ? "," : "", EP_NAMES[i], EP_KEYS[i], RPS_PER_EP, med, p95,
		                s->down == i ? "[{\"kind\":\"http503\"}]" : "[]", RPS_PER_EP * 60);
	}
	snprintf(out + off, n - off, "],\"rules\":[],\"default_reply\":\"OK\"}");
}

/* ---- one run -------------------------------------------------------------- */

struct run {
	int mode;               /* 0 convbi, 1 legacy */
	int nreq;
	atomic_int next;
	double *lat;            /* seconds, per request */
	char *ok;
	struct llm *l;          /* convbi */
	const struct fake *f;   /* legacy */
	char counter_path[1024];
	atomic_long legacy_sleep_ms;
};

struct result {
	double wall_s, rps, frac_quota, frac_live_quota, frac_429;
	long http_requests, http_429, http_ok, http_faulted;
	int failures;
	double p50, p95, p99;
};

static void *convbi_worker(void *arg)
{
	struct run *r = arg;
	struct chat_msg m = {"user", "ping"};
	for (;;) {
		int i = atomic_fetch_add(&r->next, 1);
		if (i >= r->nreq)
			break;
		struct llm_request req = {.msgs = &m, .n = 1, .temperature = -1, .stream = 0};
		struct llm_reply rep;
		struct err err = ERR_INIT;
		double t0 = now_s();
		int rc = llm_chat(r->l, &req, &rep, &err);
		r->lat[i] = now_s() - t0;
		r->ok[i] = rc == CONVBI_OK;
		if (rc != CONVBI_OK && i < 3)
			fprintf(stderr, "convbi failure: %s\n", err.msg);
		llm_reply_release(&rep);
	}
	return NULL;
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
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "counter", (double)(counter + 1));
	char *text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0) {
		ssize_t w = write(fd, text, strlen(text));
		(void)w;
	}
	free(text);
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

/* One try: returns 0 on a 200 with a body, else fills errtext. */
static int legacy_try(const struct run *r, int ep, char *errtext, size_t elen)
{
	char url[512], hdr[128];
	snprintf(url, sizeof url,
	         "http://127.0.0.1:%d/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
	         fake_port(r->f, EP_NAMES[ep]));
	snprintf(hdr, sizeof hdr, "api-key: %s", EP_KEYS[ep]);
	CURL *c = curl_easy_init();
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	h = curl_slist_append(h, hdr);
	struct body b = {NULL, 0};
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{\"messages\":[{\"role\":\"user\",\"content\":\"ping\"}]}");
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

static void *legacy_worker(void *arg)
{
	struct run *r = arg;
	unsigned int seed = (unsigned int)(uintptr_t)pthread_self() ^ (unsigned int)time(NULL);
	for (;;) {
		int i = atomic_fetch_add(&r->next, 1);
		if (i >= r->nreq)
			break;
		double t0 = now_s();
		int ok = 0;
		for (int n = 0; n < 3; n++) {
			int ep = legacy_pick(r->counter_path);
			char errtext[512];
			if (legacy_try(r, ep, errtext, sizeof errtext) == 0) {
				ok = 1;
				break;
			}
			if (!strstr(errtext, "429") || n == 2)
				break;
			double s = pow(2, n) + (double)rand_r(&seed) / RAND_MAX;
			atomic_fetch_add(&r->legacy_sleep_ms, (long)(s * 1000));
			struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
			nanosleep(&ts, NULL);
		}
		r->lat[i] = now_s() - t0;
		r->ok[i] = ok;
	}
	return NULL;
}

static int run_one(const struct scen *s, int mode, int nreq, struct result *res)
{
	char scen[4096];
	scenario_json(s, scen, sizeof scen);
	struct fake f;
	if (fake_start(&f, scen))
		return -1;
	struct run r;
	memset(&r, 0, sizeof r);
	r.mode = mode;
	r.nreq = nreq;
	r.lat = calloc(nreq, sizeof *r.lat);
	r.ok = calloc(nreq, 1);
	r.f = &f;
	snprintf(r.counter_path, sizeof r.counter_path, "%s/counter.json", f.dir);
	if (mode == 0) {
		char path[1024];
		snprintf(path, sizeof path, "%s/config.json", f.dir);
		struct llm_config cfg;
		struct err err = ERR_INIT;
		if (fake_write_config(&f, path, "{\"retry\":{\"deadline_ms\":60000,\"max_attempts\":10,"
		                                "\"first_byte_timeout_ms\":10000}}") ||
		    config_load(&cfg, path, &err) || llm_open(&r.l, &cfg, &err)) {
			fprintf(stderr, "convbi client: %s\n", err.msg);
			fake_stop(&f);
			return -1;
		}
	}
	pthread_t th[THREADS];
	double t0 = now_s();
	for (int i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, mode == 0 ? convbi_worker : legacy_worker, &r);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	res->wall_s = now_s() - t0;
	memset(&res->http_requests, 0, sizeof(long) * 4);
	for (int i = 0; i < NEPS; i++) {
		res->http_requests += fake_stat(&f, EP_NAMES[i], "requests");
		res->http_429 += fake_stat(&f, EP_NAMES[i], "rate_limited");
		res->http_ok += fake_stat(&f, EP_NAMES[i], "ok");
		res->http_faulted += fake_stat(&f, EP_NAMES[i], "faulted");
	}
	if (r.l)
		llm_close(r.l);
	fake_stop(&f);
	res->failures = 0;
	double *okl = malloc(sizeof(double) * nreq);
	int nok = 0;
	for (int i = 0; i < nreq; i++) {
		if (!r.ok[i])
			res->failures++;
		okl[nok++] = r.lat[i];  /* latency of every call, failed ones too */
	}
	bench_sort(okl, nok);
	res->p50 = bench_pct(okl, nok, 50) * 1000;
	res->p95 = bench_pct(okl, nok, 95) * 1000;
	res->p99 = bench_pct(okl, nok, 99) * 1000;
	int served = nreq - res->failures;
	res->rps = served / res->wall_s;
	res->frac_quota = res->rps / (NEPS * RPS_PER_EP);
	res->frac_live_quota = res->rps / ((NEPS - (s->down >= 0)) * RPS_PER_EP);
	res->frac_429 = res->http_requests ? (double)res->http_429 / res->http_requests : 0;
	free(okl);
	free(r.lat);
	free(r.ok);
	return 0;
}

int main(int argc, char **argv)
{
	int nreq = 2000;
	const char *out = "bench_throughput.json";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--requests") && i + 1 < argc)
			nreq = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--out") && i + 1 < argc)
			out = argv[++i];
		else {
			fprintf(stderr, "usage: %s [--requests N] [--out FILE]\n", argv[0]);
			return 2;
		}
	}
	if (nreq <= 0)
		nreq = 2000;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	cJSON *root = cJSON_CreateObject();
	cJSON_AddNumberToObject(root, "requests", nreq);
	cJSON_AddNumberToObject(root, "threads", THREADS);
	cJSON_AddNumberToObject(root, "quota_rps", NEPS * RPS_PER_EP);
	cJSON *arr = cJSON_AddArrayToObject(root, "runs");
	printf("bench_throughput: %d requests, %d threads, 3 endpoints x %d rps (quota %d/s), latency median 150 ms p95 400 ms\n\n",
	       nreq, THREADS, RPS_PER_EP, NEPS * RPS_PER_EP);
	printf("%-9s %-7s %7s %8s %8s %9s %7s %6s %6s %8s %8s %8s %s\n", "scenario", "client", "wall_s", "req/s",
	       "of_60/s", "of_live", "429s", "http", "fails", "p50_ms", "p95_ms", "p99_ms", "target(convbi)");
	for (size_t si = 0; si < sizeof SCENS / sizeof *SCENS; si++) {
		for (int mode = 0; mode < 2; mode++) {
			struct result res;
			memset(&res, 0, sizeof res);
			if (run_one(&SCENS[si], mode, nreq, &res)) {
				fprintf(stderr, "run %s/%d failed to start\n", SCENS[si].name, mode);
				continue;
			}
			const char *target = "";
			if (mode == 0)
				target = (res.frac_live_quota >= 0.95 && res.frac_429 <= 0.02 && res.failures == 0) ? "PASS" : "MISS";
			printf("%-9s %-7s %7.2f %8.2f %7.1f%% %8.1f%% %6.2f%% %6ld %6d %8.0f %8.0f %8.0f %s\n", SCENS[si].name,
			       mode ? "legacy" : "convbi", res.wall_s, res.rps, 100 * res.frac_quota, 100 * res.frac_live_quota,
			       100 * res.frac_429, res.http_requests, res.failures, res.p50, res.p95, res.p99, target);
			fflush(stdout);
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "scenario", SCENS[si].name);
			cJSON_AddStringToObject(o, "client", mode ? "legacy" : "convbi");
			cJSON_AddNumberToObject(o, "wall_s", res.wall_s);
			cJSON_AddNumberToObject(o, "answered_rps", res.rps);
			cJSON_AddNumberToObject(o, "fraction_of_quota", res.frac_quota);
			cJSON_AddNumberToObject(o, "fraction_of_live_quota", res.frac_live_quota);
			cJSON_AddNumberToObject(o, "fraction_429", res.frac_429);
			cJSON_AddNumberToObject(o, "http_requests", res.http_requests);
			cJSON_AddNumberToObject(o, "http_429", res.http_429);
			cJSON_AddNumberToObject(o, "http_ok", res.http_ok);
			cJSON_AddNumberToObject(o, "http_faulted", res.http_faulted);
			cJSON_AddNumberToObject(o, "failures", res.failures);
			cJSON_AddNumberToObject(o, "p50_ms", res.p50);
			cJSON_AddNumberToObject(o, "p95_ms", res.p95);
			cJSON_AddNumberToObject(o, "p99_ms", res.p99);
			if (mode == 0)
				cJSON_AddStringToObject(o, "target", target);
			cJSON_AddItemToArray(arr, o);
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
