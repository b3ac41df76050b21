/* benchutil.c -- shared benchmark helpers (see benchutil.h). */
#include "benchutil.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
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

#ifndef SCRATCH_DIR
#define SCRATCH_DIR "/tmp"
#endif

int bench_scratch_dir(char *dir, size_t cap, const char *name)
{
	mkdir(SCRATCH_DIR, 0700);
	snprintf(dir, cap, "%s/%s.XXXXXX", SCRATCH_DIR, name);
	if (!mkdtemp(dir)) {
		perror(dir);
		return -1;
	}
	return 0;
}

/* ---- a redis-server of our own -------------------------------------------- */

void bench_redis_stop(struct bench_redis *r)
{
	if (r->pid > 0) {
		kill(r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0);
		r->pid = 0;
	}
}

static int redis_answers(int port)
{
	char cmd[64];
	snprintf(cmd, sizeof cmd, "%d", port);
	const char *argv[] = {"redis-cli", "-p", cmd, "PING", NULL};
	char *out = NULL;
	int rc = tu_run(argv, NULL, &out, NULL, 2000);
	int ok = rc == 0 && out && !strncmp(out, "PONG", 4);
	free(out);
	return ok;
}

int bench_redis_start(struct bench_redis *r, const char *dir)
{
	const char *bin = getenv("REDIS_SERVER");
	if (!bin || !*bin)
		bin = "/usr/bin/redis-server";
	if (access(bin, X_OK) != 0) {
		fprintf(stderr, "bench: %s not found; install redis-server\n", bin);
		return -1;
	}
	for (int tries = 0; tries < 5; tries++) {
		char port[16], log[600];
		r->port = tu_free_port();
		snprintf(port, sizeof port, "%d", r->port);
		snprintf(log, sizeof log, "%s/redis.log", dir);
		r->pid = fork();
		if (r->pid == 0) {
			if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() == 1)
				_exit(126);
			int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
			}
			execl(bin, bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir,
			      "--loglevel", "warning", (char *)NULL);
			_exit(127);
		}
		for (int i = 0; i < 100; i++) {
			if (waitpid(r->pid, NULL, WNOHANG) == r->pid)
				break;
			if (redis_answers(r->port))
				return 0;
			usleep(20000);
		}
		bench_redis_stop(r);
	}
	fprintf(stderr, "bench: redis-server would not start; see %s/redis.log\n", dir);
	return -1;
}
