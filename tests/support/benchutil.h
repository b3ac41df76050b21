/* benchutil.h -- what the benchmarks share: percentiles over samples, the
 * "one pick + one report" call whose cost bench_routing and bench_redis
 * measure on different state backends, and the Spider dev questions with
 * a zero-latency fake model that answers each with its gold SQL
 * (bench_engine, bench_pg). */
#ifndef CONVBI_TESTS_BENCHUTIL_H
#define CONVBI_TESTS_BENCHUTIL_H

#include <stddef.h>

#include "fake.h"

struct pool;

/* Sorts n doubles ascending, in place. */
void bench_sort(double *v, int n);
/* The p-th percentile (0..100, nearest rank) of sorted[0..n); NAN if n <= 0. */
double bench_pct(const double *sorted, int n, double p);
/* One pick and a successful report with typical budget headers; returns
 * the endpoint, -1 if none could be picked. */
int bench_pick_report(struct pool *p);

/* Makes a fresh directory SCRATCH_DIR/<name>.XXXXXX into dir.  Returns 0,
 * or -1 after perror. */
int bench_scratch_dir(char *dir, size_t cap, const char *name);

/* A redis-server of our own on a free loopback port (bench_redis,
 * bench_budget): no persistence, files in dir, killed with its parent. */
struct bench_redis {
	int pid; /* 0 when not running */
	int port;
};
/* Starts $REDIS_SERVER (default /usr/bin/redis-server) and waits until it
 * answers PING.  Returns 0, or -1 after one line on stderr. */
int bench_redis_start(struct bench_redis *r, const char *dir);
/* Kills and reaps it; harmless when not running. */
void bench_redis_stop(struct bench_redis *r);

/* One Spider dev question: its database id, text and gold SQL. */
struct bench_question {
	const char *db;
	const char *question;
	const char *gold;
};

/* The Spider dev questions (SPIDER_DIR/dev.json, gold SQL from
 * dev_gold.sql in the same order) and a zero-latency fake model that
 * answers each:
 *   intent prompt -> {"intent":"data_question"}
 *   SQL prompt    -> the gold SQL of the prompt's "Question: <q>" line
 *                    (a map file), or SELECT 'no gold ...' for none
 *   answer prompt -> a short sentence. */
struct bench_oracle {
	struct bench_question *qs; /* owned: the questions, in dev.json order */
	int n;
	struct fake fake;
	char *dir;         /* owned: a scratch directory (map, scenario, config) */
	char config[1024]; /* a convbi config pointing at the fake */
	int collisions;    /* questions asked twice with different gold SQL */
};

/* Reads the first limit (< 0 = all) questions and starts the oracle on
 * them.  dev.json's cJSON tree takes ~15 MB: a child process parses it, so
 * that a benchmark's peak RSS stays the engine's.  Returns 0, or -1 (said
 * on stderr; nothing is left running). */
int bench_oracle_start(struct bench_oracle *o, int limit);

/* Stops the fake, removes the directory (kept with KEEP_SCRATCH) and
 * frees the questions. */
void bench_oracle_stop(struct bench_oracle *o);

#endif
