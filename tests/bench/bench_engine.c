/* bench_engine.c -- what convbi itself costs per question, model time excluded.
 *
 * Through the public API only (convbi_engine_open, convbi_session_new,
 * convbi_session_ask) over the Spider dev questions (SPIDER_DIR/dev.json,
 * gold SQL from SPIDER_DIR/dev_gold.sql, same order), against a
 * zero-latency fake Azure OpenAI server whose rules reply
 *   intent prompt  -> {"intent":"data_question"}
 *   SQL prompt     -> the gold SQL of the prompt's "Question: <q>" line, via
 *                     a map_file (question -> "```sql\n<gold>\n```")
 *   answer prompt  -> a short sentence.
 * Per question the asking thread's CPU time (CLOCK_THREAD_CPUTIME_ID around
 * convbi_session_ask) is measured: our HTTP client work, prompt and schema
 * rendering, the gate and the SQL execution -- not the fake server, which
 * is another process.  Wall time is recorded too.  One engine per database,
 * opened once outside the timing and closed before the next database; one
 * fresh session per question (outside the timing) so that no history leaks
 * between unrelated questions.  Peak RSS (getrusage ru_maxrss) at the end.
 *
 * Usage: bench_engine [--limit N] [--no-value-index] [--out FILE]
 * (--no-value-index: engines opened with value_index = 0, to see what the
 * value index costs per question.)
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "convbi/convbi.h"
#include "fake.h"
#include "benchutil.h"
#include "testutil.h"

#ifndef SPIDER_DIR
#error "SPIDER_DIR must be defined"
#endif
#ifndef SOURCE_DIR
#error "SOURCE_DIR must be defined"
#endif
#ifndef SCRATCH_DIR
#define SCRATCH_DIR "/tmp"
#endif

static double ts_s(const struct timespec *t)
{
	return t->tv_sec + t->tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	int limit = -1, value_index = 1;
	const char *out = "bench_engine.json";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--limit") && i + 1 < argc)
			limit = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--out") && i + 1 < argc)
			out = argv[++i];
		else if (!strcmp(argv[i], "--no-value-index"))
			value_index = 0;
		else {
			fprintf(stderr, "usage: %s [--limit N] [--no-value-index] [--out FILE]\n", argv[0]);
			return 2;
		}
	}
	struct bench_oracle oracle;
	if (bench_oracle_start(&oracle, limit))
		return 1;
	const struct bench_question *qs = oracle.qs;
	int nq = oracle.n;

	double *cpu = calloc(nq, sizeof *cpu), *wall = calloc(nq, sizeof *wall);
	int *status = calloc(nq, sizeof *status);
	char *done = calloc(nq, 1);
	int nok = 0, nsql_match = 0, nmap_miss = 0, nsql_diff_shown = 0, nrun = 0, nengine_fail = 0;
	int stat_count[32] = {0};
	for (int i = 0; i < nq; i++) {
		if (done[i])
			continue;
		const char *db = qs[i].db;
		char dbpath[1024];
		snprintf(dbpath, sizeof dbpath, SPIDER_DIR "/database/%s/%s.sqlite", db, db);
		convbi_options o = CONVBI_OPTIONS_INIT;
		o.db_path = dbpath;
		o.config_path = oracle.config;
		o.prompts_dir = SOURCE_DIR "/prompts";
		o.value_index = value_index;
		convbi_engine *eng = NULL;
		int rc = convbi_engine_open(&eng, &o);
		if (rc) {
			fprintf(stderr, "engine %s: %s\n", db, convbi_engine_errmsg(eng));
			convbi_engine_close(eng);
			for (int j = i; j < nq; j++)
				if (!done[j] && !strcmp(qs[j].db, db)) {
					done[j] = 1;
					nengine_fail++;
				}
			continue;
		}
		for (int j = i; j < nq; j++) {
			if (done[j] || strcmp(qs[j].db, db))
				continue;
			done[j] = 1;
			convbi_session *s = NULL;
			if (convbi_session_new(&s, eng)) {
				fprintf(stderr, "session %s failed\n", db);
				continue;
			}
			convbi_answer *a = NULL;
			struct timespec c0, c1, w0, w1;
			clock_gettime(CLOCK_MONOTONIC, &w0);
			clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
			rc = convbi_session_ask(s, qs[j].question, NULL, NULL, NULL, &a);
			clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
			clock_gettime(CLOCK_MONOTONIC, &w1);
			cpu[nrun] = ts_s(&c1) - ts_s(&c0);
			wall[nrun] = ts_s(&w1) - ts_s(&w0);
			nrun++;
			status[j] = rc;
			stat_count[rc >= 0 && rc < 32 ? rc : 31]++;
			nok += rc == CONVBI_OK;
			const char *sql = a ? convbi_answer_sql(a) : NULL;
			if (sql && strstr(sql, qs[j].gold))
				nsql_match++;
			else if (sql && strstr(sql, "no gold for this question"))
				nmap_miss++;
			else if (nsql_diff_shown++ < 3)
				fprintf(stderr, "sql differs q%d: gold [%s] got [%s]\n", j, qs[j].gold, sql ? sql : "(null)");
			if (rc && stat_count[rc >= 0 && rc < 32 ? rc : 31] <= 3)
				fprintf(stderr, "q%d [%s] %s: %s %s\n", j, db, qs[j].question, convbi_errname(rc),
				        a ? convbi_answer_errmsg(a) : "");
			convbi_answer_free(a);
			convbi_session_free(s);
		}
		convbi_engine_close(eng);
	}
	long fake_requests = fake_stat(&oracle.fake, "local", "requests");
	bench_oracle_stop(&oracle);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);

	double *cs = malloc(sizeof(double) * (nrun ? nrun : 1)), *ws = malloc(sizeof(double) * (nrun ? nrun : 1));
	memcpy(cs, cpu, sizeof(double) * nrun);
	memcpy(ws, wall, sizeof(double) * nrun);
	bench_sort(cs, nrun);
	bench_sort(ws, nrun);
	double csum = 0;
	for (int i = 0; i < nrun; i++)
		csum += cs[i];
	printf("bench_engine: %d Spider dev questions (%d asked), zero-latency fake server, value index %s\n", nq, nrun,
	       value_index ? "on" : "off");
	printf("  answered OK %d, failed %d, engine open failures %d; SQL = gold %d; map misses %d; question map collisions %d; fake requests %ld\n",
	       nok, nrun - nok, nengine_fail, nsql_match, nmap_miss, oracle.collisions, fake_requests);
	for (int k = 1; k < 32; k++)
		if (stat_count[k])
			printf("  status %-12s %d\n", convbi_errname(k), stat_count[k]);
	printf("\n%-28s %10s %10s %10s %10s %10s\n", "per question", "median", "p95", "p99", "max", "mean");
	printf("%-28s %10.3f %10.3f %10.3f %10.3f %10.3f\n", "thread CPU (ms)", 1e3 * bench_pct(cs, nrun, 50),
	       1e3 * bench_pct(cs, nrun, 95), 1e3 * bench_pct(cs, nrun, 99), nrun ? 1e3 * cs[nrun - 1] : NAN,
	       nrun ? 1e3 * csum / nrun : NAN);
	printf("%-28s %10.3f %10.3f %10.3f %10.3f\n", "wall (ms, incl. fake server)", 1e3 * bench_pct(ws, nrun, 50),
	       1e3 * bench_pct(ws, nrun, 95), 1e3 * bench_pct(ws, nrun, 99), nrun ? 1e3 * ws[nrun - 1] : NAN);
	printf("peak RSS: %.1f MiB (ru_maxrss %ld KiB)\n", ru.ru_maxrss / 1024.0, ru.ru_maxrss);

	cJSON *root = cJSON_CreateObject();
	cJSON_AddNumberToObject(root, "questions", nq);
	cJSON_AddNumberToObject(root, "asked", nrun);
	cJSON_AddNumberToObject(root, "ok", nok);
	cJSON_AddNumberToObject(root, "failed", nrun - nok);
	cJSON_AddNumberToObject(root, "engine_open_failures", nengine_fail);
	cJSON_AddNumberToObject(root, "sql_equals_gold", nsql_match);
	cJSON_AddNumberToObject(root, "map_collisions", oracle.collisions);
	cJSON_AddNumberToObject(root, "map_misses", nmap_miss);
	cJSON_AddNumberToObject(root, "fake_requests", fake_requests);
	cJSON_AddNumberToObject(root, "cpu_ms_median", 1e3 * bench_pct(cs, nrun, 50));
	cJSON_AddNumberToObject(root, "cpu_ms_p95", 1e3 * bench_pct(cs, nrun, 95));
	cJSON_AddNumberToObject(root, "cpu_ms_p99", 1e3 * bench_pct(cs, nrun, 99));
	cJSON_AddNumberToObject(root, "cpu_ms_max", nrun ? 1e3 * cs[nrun - 1] : 0);
	cJSON_AddNumberToObject(root, "cpu_ms_mean", nrun ? 1e3 * csum / nrun : 0);
	cJSON_AddNumberToObject(root, "wall_ms_median", 1e3 * bench_pct(ws, nrun, 50));
	cJSON_AddNumberToObject(root, "wall_ms_p95", 1e3 * bench_pct(ws, nrun, 95));
	cJSON_AddNumberToObject(root, "peak_rss_kib", ru.ru_maxrss);
	char *text = cJSON_Print(root);
	if (tu_write_file(out, text) == 0)
		printf("JSON: %s\n", out);
	else
		perror(out);
	free(text);
	cJSON_Delete(root);
	free(cs), free(ws), free(cpu), free(wall), free(status), free(done);
	return 0;
}
