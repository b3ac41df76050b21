/* benchutil.c -- shared benchmark helpers (see benchutil.h). */
#include "benchutil.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fake.h"
#include "testutil.h"

#include "convbi/convbi.h"
#include "llm/pool.h"
#include "util/clock.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

void bench_sort(double *v, int n)
{
	if (n > 1)
		qsort(v, (size_t)n, sizeof *v, cmp_double);
}

double bench_pct(const double *sorted, int n, double p)
{
	if (n <= 0)
		return NAN;
	int i = (int)ceil(p / 100.0 * n) - 1;
	return sorted[i < 0 ? 0 : i >= n ? n - 1 : i];
}

int bench_pick_report(struct pool *p)
{
	struct pool_pick k;
	if (pool_pick(p, clock_wall_ms(), 0, 800, &k) != CONVBI_OK || k.ep < 0)
		return -1;
	struct pool_outcome o = pool_outcome_of(POOL_OK);
	o.remaining_requests = 900;
	o.remaining_tokens = 90000;
	o.reset_requests_ms = 6000;
	o.reset_tokens_ms = 6000;
	o.tokens = 750;
	o.probe = k.probe;
	pool_report(p, k.ep, clock_wall_ms(), &o);
	return k.ep;
}

/* ---- Spider questions and the oracle model ------------------------------------ */

/* The child of read_questions: parses dev.json and writes compact records
 * (fields split by 0x1f, records by 0x1e) to fd. */
static void questions_child(int limit, int fd)
{
	char *devtext = tu_read_file(SPIDER_DIR "/dev.json", NULL);
	char *goldtext = tu_read_file(SPIDER_DIR "/dev_gold.sql", NULL);
	if (!devtext || !goldtext) {
		fprintf(stderr, "cannot read %s/dev.json or dev_gold.sql\n", SPIDER_DIR);
		_exit(1);
	}
	cJSON *dev = cJSON_Parse(devtext);
	int n = cJSON_GetArraySize(dev);
	if (limit >= 0 && limit < n)
		n = limit;
	FILE *w = fdopen(fd, "w");
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

/* Reads the questions into *out (one block: free it); the count, or -1. */
static int read_questions(int limit, struct bench_question **out)
{
	int fd[2];
	*out = NULL;
	if (pipe(fd))
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		close(fd[0]);
		questions_child(limit, fd[1]);
	}
	close(fd[1]);
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	ssize_t r;
	while (buf && (r = read(fd[0], buf + len, cap - len - 1)) > 0) {
		len += (size_t)r;
		if (cap - len < 4096)
			buf = realloc(buf, cap *= 2);
	}
	close(fd[0]);
	int status;
	waitpid(pid, &status, 0);
	if (!buf || !WIFEXITED(status) || WEXITSTATUS(status)) {
		free(buf);
		return -1;
	}
	buf[len] = 0;
	int n = 0;
	for (size_t i = 0; i < len; i++)
		n += buf[i] == '\x1e';
	/* one block: the records, then the text they point into */
	struct bench_question *qs = malloc(sizeof *qs * (size_t)(n + 1) + len + 1);
	if (!qs) {
		free(buf);
		return -1;
	}
	char *p = memcpy((char *)(qs + n + 1), buf, len + 1);
	free(buf);
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

int bench_oracle_start(struct bench_oracle *o, int limit)
{
	memset(o, 0, sizeof *o);
	if ((o->n = read_questions(limit, &o->qs)) < 0) {
		o->n = 0;
		return -1;
	}
	const struct bench_question *qs = o->qs;
	int n = o->n;
	if (!(o->dir = tu_mkdtemp("bench-oracle"))) {
		fprintf(stderr, "cannot make a scratch directory under %s\n", SCRATCH_DIR);
		return -1;
	}
	cJSON *map = cJSON_CreateObject();
	for (int i = 0; i < n; i++) {
		size_t len = strlen(qs[i].gold) + 16;
		char *v = malloc(len);
		snprintf(v, len, "```sql\n%s\n```", qs[i].gold);
		const cJSON *have = cJSON_GetObjectItemCaseSensitive(map, qs[i].question);
		if (have)
			o->collisions += strcmp(have->valuestring, v) != 0;
		else
			cJSON_AddStringToObject(map, qs[i].question, v);
		free(v);
	}
	char path[1024], scenario[1024];
	snprintf(path, sizeof path, "%s/map.json", o->dir);
	char *maptext = cJSON_PrintUnformatted(map);
	cJSON_Delete(map);
	int rc = maptext ? tu_write_file(path, maptext) : -1;
	free(maptext);
	snprintf(scenario, sizeof scenario, "%s/scenario.json", o->dir);
	if (!rc)
		rc = tu_write_file(
		        scenario,
		        "{\"endpoints\":[{\"name\":\"local\",\"api_key\":\"k-local-5c2e8a1f\",\"deployment\":\"gpt-4o\","
		        "\"latency_ms\":0}],"
		        "\"rules\":["
		        "{\"match\":\"You are the intent classifier\",\"reply\":\"{\\\"intent\\\":\\\"data_question\\\"}\"},"
		        "{\"match\":\"(?s)You are the SQL writer.*\\\\nQuestion: ([^\\\\n]*)\",\"map_file\":\"map.json\","
		        "\"default\":\"```sql\\nSELECT 'no gold for this question'\\n```\"},"
		        "{\"match\":\"You are the answer writer\",\"reply\":\"Here is what the data says.\"}],"
		        "\"default_reply\":\"OK\"}");
	snprintf(o->config, sizeof o->config, "%s/config.json", o->dir);
	if (rc)
		fprintf(stderr, "cannot write %s\n", path);
	else if (!fake_start_file(&o->fake, scenario) && !fake_write_config(&o->fake, o->config, NULL))
		return 0;
	bench_oracle_stop(o);
	return -1;
}

void bench_oracle_stop(struct bench_oracle *o)
{
	fake_stop(&o->fake);
	if (o->dir && !getenv("KEEP_SCRATCH"))
		tu_rmtree(o->dir);
	free(o->dir);
	o->dir = NULL;
	free(o->qs);
	o->qs = NULL;
	o->n = 0;
}
