/* bench_budget.c -- how far 8 processes overshoot a shared budget when it runs out.
 *
 * The fake Azure server (tests/fake_aoai) bills every success at its own
 * copy of the prices (input 2.50, output 10.00 USD per million tokens): its
 * stats are the witness, not our counters.  PROCS processes of THREADS
 * threads each call llm_chat in a loop (a 2,000-character prompt,
 * max_tokens 50, a 200-character reply; latency lognormal, median 30 ms,
 * p95 90 ms) until the call fails with CONVBI_EBUDGET, against a
 * configuration budget of BUDGET_USD a day.  State:
 *   shared file   one state file for every process (one host);
 *   shared redis  one Redis, each process with its own local file (a fleet);
 *   separate      each process its own state file: what a budget kept in
 *                 one process does when N processes run (the baseline).
 * Twice: "estimates hold" (the fake counts a token per 4 prompt characters,
 * as the client's estimate does, so every reservation covers its call) and
 * "estimates low" (the fake counts a token per 2 characters: every call
 * costs 1.7x what was reserved for it, as a prompt in a language the
 * 4-characters estimate undercounts would).
 *
 * Overshoot = billed - budget (0 when under).  The target: at most what the
 * calls already in flight cost, PROCS x THREADS calls at the measured cost
 * per call.  Printed side by side: billed over the budget, and the
 * overshoot over that bound.  --quick uses a $0.10 budget, which runs out
 * within the first round of calls, before any process has calibrated its
 * estimates (budget.h): the worst case for "estimates low".
 *
 * Usage: bench_budget [--out FILE] [--quick]
 * Needs redis-server and the fake server (FAKE_AOAI_BIN).  Writes the JSON
 * to --out (default bench_budget.json).  Never part of pass/fail.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "benchutil.h"
#include "convbi/convbi.h"
#include "fake.h"
#include "llm/config.h"
#include "llm/llm.h"
#include "spend.h"
#include "testutil.h"
#include "util/clock.h"

#define PROCS 8
#define THREADS 4
#define PROMPT_CHARS 2000
#define MAX_TOKENS 50
#define CALLS_CAP 20000 /* per process: a runaway stops here */

static char dir[512];
static struct bench_redis redis;
static double budget_usd = 0.5;
static char prompt[PROMPT_CHARS + 1];

enum mode { M_FILE, M_REDIS, M_SEPARATE, NMODES };
static const char *const mode_name[NMODES] = {"shared file", "shared redis", "separate (per process)"};

struct run {
	long calls;       /* succeeded */
	long refused;     /* threads that ended on EBUDGET */
	long other;       /* other failures */
	double billed;    /* by the fake */
	double per_call;  /* billed / calls */
	double overshoot; /* billed - budget, >= 0 */
	double bound;     /* PROCS * THREADS * per_call */
	double secs;
};

static void redis_stop(void)
{
	bench_redis_stop(&redis);
}

static const char *scenario(int token_chars)
{
	static char s[2048];
	const char *price = "{\"input\":2.5,\"cached_input\":1.25,\"output\":10}";
	snprintf(s, sizeof s,
	         "{\"endpoints\":["
	         "{\"name\":\"east\",\"api_key\":\"k-east-1234\",\"deployment\":\"d\",\"latency_ms\":{\"median\":30,\"p95\":90},"
	         "\"token_chars\":%d,\"price\":%s,\"client\":{\"price\":%s}},"
	         "{\"name\":\"west\",\"api_key\":\"k-west-1234\",\"deployment\":\"d\",\"latency_ms\":{\"median\":30,\"p95\":90},"
	         "\"token_chars\":%d,\"price\":%s,\"client\":{\"price\":%s}}],"
	         "\"default_reply\":\"%0200d\"}",
	         token_chars, price, price, token_chars, price, price, 7);
	return s;
}

/* The config of process k in mode m for run tag. */
static void config_path(char *out, size_t cap, const struct fake *f, enum mode m, const char *tag, int k)
{
	char extra[1024];
	snprintf(out, cap, "%s/%s-%d.json", dir, tag, k);
	if (m == M_REDIS)
		snprintf(
		        extra, sizeof extra,
		        "{\"budget\":{\"daily\":%g},\"retry\":{\"deadline_ms\":30000},\"state\":{\"backend\":\"redis\","
		        "\"url\":\"redis://127.0.0.1:%d/0\",\"prefix\":\"%s:\",\"timeout_ms\":1000,\"path\":\"%s/%s-local-%d.state\"}}",
		        budget_usd, redis.port, tag, dir, tag, k);
	else
		snprintf(extra, sizeof extra,
		         "{\"budget\":{\"daily\":%g},\"retry\":{\"deadline_ms\":30000},\"state\":{\"path\":\"%s/%s-%d.state\"}}",
		         budget_usd, dir, tag, m == M_SEPARATE ? k : 0);
	if (fake_write_config(f, out, extra))
		exit(1);
}

static struct run run_mode(struct fake *f, enum mode m, const char *tag)
{
	struct run r;
	memset(&r, 0, sizeof r);
	char cfg[PROCS][700];
	for (int k = 0; k < PROCS; k++)
		config_path(cfg[k], sizeof cfg[k], f, m, tag, k);
	fake_control(f, "east", "POST", "/_fake/reset", NULL, NULL);
	fake_control(f, "west", "POST", "/_fake/reset", NULL, NULL);
	const char *configs[PROCS];
	for (int k = 0; k < PROCS; k++)
		configs[k] = cfg[k];
	struct spend_total t;
	int64_t t0 = clock_mono_ms();
	if (spend_processes(configs, PROCS, PROCS, THREADS, prompt, MAX_TOKENS, CALLS_CAP / THREADS, &t))
		exit(1);
	r.calls = t.ok;
	r.refused = t.refused;
	r.other = t.other;
	r.secs = (double)(clock_mono_ms() - t0) / 1000.0;
	r.billed = fake_stat_num(f, "east", "cost_usd") + fake_stat_num(f, "west", "cost_usd");
	r.per_call = r.calls ? r.billed / (double)r.calls : 0;
	r.overshoot = r.billed > budget_usd ? r.billed - budget_usd : 0;
	r.bound = PROCS * THREADS * r.per_call;
	return r;
}

static cJSON *run_json(const char *regime, const char *mode, const struct run *r)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "estimates", regime);
	cJSON_AddStringToObject(o, "state", mode);
	cJSON_AddNumberToObject(o, "budget_usd", budget_usd);
	cJSON_AddNumberToObject(o, "calls", (double)r->calls);
	cJSON_AddNumberToObject(o, "threads_stopped_by_ebudget", (double)r->refused);
	cJSON_AddNumberToObject(o, "other_failures", (double)r->other);
	cJSON_AddNumberToObject(o, "billed_usd", r->billed);
	cJSON_AddNumberToObject(o, "cost_per_call_usd", r->per_call);
	cJSON_AddNumberToObject(o, "overshoot_usd", r->overshoot);
	cJSON_AddNumberToObject(o, "in_flight_bound_usd", r->bound);
	cJSON_AddNumberToObject(o, "seconds", r->secs);
	return o;
}

int main(int argc, char **argv)
{
	const char *out = "bench_budget.json";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--out") && i + 1 < argc)
			out = argv[++i];
		else if (!strcmp(argv[i], "--quick"))
			budget_usd = 0.1;
		else {
			fprintf(stderr, "usage: bench_budget [--out FILE] [--quick]\n");
			return 2;
		}
	}
	memset(prompt, 'w', PROMPT_CHARS);
	if (bench_scratch_dir(dir, sizeof dir, "bench_budget") || bench_redis_start(&redis, dir))
		return 1;
	atexit(redis_stop);
	cJSON *root = cJSON_CreateObject(), *runs = cJSON_AddArrayToObject(root, "runs");
	cJSON_AddNumberToObject(root, "processes", PROCS);
	cJSON_AddNumberToObject(root, "threads_per_process", THREADS);
	static const struct {
		const char *name;
		int token_chars;
	} regimes[] = {{"estimates hold", 4}, {"estimates low (prompt tokens 2x the estimate)", 2}};
	printf("%d processes x %d threads until the configuration's daily budget of $%.2f runs out "
	       "(billed by the fake server)\n\n",
	       PROCS, THREADS, budget_usd);
	printf("| estimates | state | calls | billed | billed / budget | overshoot | calls in flight cost (%d x per call) | "
	       "overshoot / in flight |\n|---|---|---:|---:|---:|---:|---:|---:|\n",
	       PROCS * THREADS);
	for (size_t g = 0; g < sizeof regimes / sizeof regimes[0]; g++) {
		struct fake f;
		if (fake_start(&f, scenario(regimes[g].token_chars)))
			return 1;
		struct run r[NMODES];
		for (int m = 0; m < NMODES; m++) {
			char tag[32];
			snprintf(tag, sizeof tag, "g%zu-m%d", g, m);
			r[m] = run_mode(&f, (enum mode)m, tag);
			cJSON_AddItemToArray(runs, run_json(regimes[g].name, mode_name[m], &r[m]));
		}
		for (int m = 0; m < NMODES; m++) {
			printf("| %s | %s | %ld | $%.4f | %.2f | $%.4f | $%.4f | %.2f |\n", regimes[g].name, mode_name[m],
			       r[m].calls, r[m].billed, r[m].billed / budget_usd, r[m].overshoot, r[m].bound,
			       r[m].bound > 0 ? r[m].overshoot / r[m].bound : 0);
			if (r[m].other)
				printf("  (%ld calls failed otherwise)\n", r[m].other);
		}
		fake_stop(&f);
	}
	char *text = cJSON_Print(root);
	if (text && tu_write_file(out, text) == 0)
		printf("\nwrote %s\n", out);
	cJSON_free(text);
	cJSON_Delete(root);
	if (!getenv("KEEP_SCRATCH"))
		tu_rmtree(dir);
	return 0;
}
