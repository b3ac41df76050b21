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
 * Usage: bench_engine [--limit N] [--out FILE]
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

#ifndef SPIDER_DIR
#error "SPIDER_DIR must be defined"
#endif
#ifndef SOURCE_DIR
#error "SOURCE_DIR must be defined"
#endif
#ifndef SCRATCH_DIR
#define SCRATCH_DIR "/tmp"
#endif

static char *slurp(const char *path)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return NULL;
	fseek(fp, 0, SEEK_END);
	long n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	char *p = malloc(n + 1);
	if (p && fread(p, 1, n, fp) != (size_t)n) {
		free(p);
		p = NULL;
	}
	if (p)
		p[n] = 0;
	fclose(fp);
	return p;
}

static int write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");
	if (!fp)
		return -1;
	fputs(text, fp);
	return fclose(fp);
}

static double ts_s(const struct timespec *t)
{
	return t->tv_sec + t->tv_nsec / 1e9;
}


struct q {
	const char *question;
	const char *db;
	char *gold;
};

/* Reads the questions, their databases and gold SQL.  dev.json is 3.6 MB
 * whose cJSON tree takes ~15 MB; parsing it here would put the bench's own
 * data into the peak RSS we report for the engine, so a child process
 * parses it and sends back compact records (fields split by 0x1f, records
 * by 0x1e).  Returns the count, -1 on error. */
static int load_questions(int limit, struct q **out)
{
	int fd[2];
	if (pipe(fd))
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		close(fd[0]);
		char *devtext = slurp(SPIDER_DIR "/dev.json");
		char *goldtext = slurp(SPIDER_DIR "/dev_gold.sql");
		if (!devtext || !goldtext) {
			fprintf(stderr, "cannot read %s/dev.json or dev_gold.sql\n", SPIDER_DIR);
			_exit(1);
		}
		cJSON *dev = cJSON_Parse(devtext);
		int n = cJSON_GetArraySize(dev);
		if (limit >= 0 && limit < n)
			n = limit;
		FILE *w = fdopen(fd[1], "w");
		char *line = goldtext;
		for (int i = 0; i < n; i++) {
			cJSON *e = cJSON_GetArrayItem(dev, i);
			const char *db = cJSON_GetObjectItem(e, "db_id")->valuestring;
			if (!line || !*line) {
				fprintf(stderr, "dev_gold.sql has fewer lines than dev.json\n");
				_exit(1);
			}
			char *nl = strchr(line, '\n');
			if (nl)
				*nl = 0;
			char *tab = strrchr(line, '\t');
			if (tab)
				*tab = 0;
			if (tab && strcmp(tab + 1, db))
				fprintf(stderr, "warning: gold line %d is for %s, question for %s\n", i + 1, tab + 1, db);
			fprintf(w, "%s\x1f%s\x1f%s\x1e", db, cJSON_GetObjectItem(e, "question")->valuestring, line);
			line = nl ? nl + 1 : NULL;
		}
		fclose(w);
		_exit(0);
	}
	close(fd[1]);
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	ssize_t r;
	while ((r = read(fd[0], buf + len, cap - len - 1)) > 0) {
		len += (size_t)r;
		if (cap - len < 4096)
			buf = realloc(buf, cap *= 2);
	}
	close(fd[0]);
	int status;
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return -1;
	buf[len] = 0;
	int n = 0;
	for (size_t i = 0; i < len; i++)
		n += buf[i] == '\x1e';
	struct q *qs = calloc(n ? n : 1, sizeof *qs);
	char *p = buf;
	for (int i = 0; i < n; i++) {
		qs[i].db = p;
		p = strchr(p, '\x1f');
		*p++ = 0;
		qs[i].question = p;
		p = strchr(p, '\x1f');
		*p++ = 0;
		qs[i].gold = p;
		p = strchr(p, '\x1e');
		*p++ = 0;
	}
	*out = qs;
	return n;
}

int main(int argc, char **argv)
{
	int limit = -1;
	const char *out = "bench_engine.json";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--limit") && i + 1 < argc)
			limit = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--out") && i + 1 < argc)
			out = argv[++i];
		else {
			fprintf(stderr, "usage: %s [--limit N] [--out FILE]\n", argv[0]);
			return 2;
		}
	}
	struct q *qs = NULL;
	int nq = load_questions(limit, &qs);
	if (nq < 0)
		return 1;

	/* The map file and scenario, in our own scratch dir. */
	char dir[512];
	snprintf(dir, sizeof dir, "%s/bench-engine-XXXXXX", SCRATCH_DIR);
	mkdir(SCRATCH_DIR, 0755);
	if (!mkdtemp(dir)) {
		perror(dir);
		return 1;
	}
	cJSON *map = cJSON_CreateObject();
	int collisions = 0;
	for (int i = 0; i < nq; i++) {
		size_t n = strlen(qs[i].gold) + 16;
		char *v = malloc(n);
		snprintf(v, n, "```sql\n%s\n```", qs[i].gold);
		const cJSON *have = cJSON_GetObjectItemCaseSensitive(map, qs[i].question);
		if (have)
			collisions += strcmp(have->valuestring, v) != 0;
		else
			cJSON_AddStringToObject(map, qs[i].question, v);
		free(v);
	}
	char path[1024], scen_path[1024], cfg_path[1024];
	snprintf(path, sizeof path, "%s/map.json", dir);
	char *maptext = cJSON_PrintUnformatted(map);
	write_file(path, maptext);
	free(maptext);
	cJSON_Delete(map);
	snprintf(scen_path, sizeof scen_path, "%s/scenario.json", dir);
	write_file(scen_path,
	           "{\"endpoints\":[{\"name\":\"local\",\"api_key\":\"k-local-5c2e8a1f\",\"deployment\":\"gpt-4o\","
	           "\"latency_ms\":0}],"
	           "\"rules\":["
	           "{\"match\":\"You are the intent classifier\",\"reply\":\"{\\\"intent\\\":\\\"data_question\\\"}\"},"
	           "{\"match\":\"(?s)You are the SQL writer.*\\\\nQuestion: ([^\\\\n]*)\",\"map_file\":\"map.json\","
	           "\"default\":\"```sql\\nSELECT 'no gold for this question'\\n```\"},"
	           "{\"match\":\"You are the answer writer\",\"reply\":\"Here is what the data says.\"}],"
	           "\"default_reply\":\"OK\"}");
	struct fake f;
	if (fake_start_file(&f, scen_path))
		return 1;
	snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
	if (fake_write_config(&f, cfg_path, NULL)) {
		fake_stop(&f);
		return 1;
	}

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
		o.config_path = cfg_path;
		o.prompts_dir = SOURCE_DIR "/prompts";
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
	long fake_requests = fake_stat(&f, "local", "requests");
	fake_stop(&f);
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
	printf("bench_engine: %d Spider dev questions (%d asked), zero-latency fake server\n", nq, nrun);
	printf("  answered OK %d, failed %d, engine open failures %d; SQL = gold %d; map misses %d; question map collisions %d; fake requests %ld\n",
	       nok, nrun - nok, nengine_fail, nsql_match, nmap_miss, collisions, fake_requests);
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
	cJSON_AddNumberToObject(root, "map_collisions", collisions);
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
	if (write_file(out, text) == 0)
		printf("JSON: %s\n", out);
	else
		perror(out);
	free(text);
	cJSON_Delete(root);
	char cmd[1200];
	if (!getenv("KEEP_SCRATCH")) {
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	return 0;
}
