/* bench_pg.c -- PostgreSQL beside SQLite: what the engine adds per
 * question over the query's own time, and introspecting 10,000 tables.
 *
 * It starts its own throw-away cluster (tests/pg/fixture.sh, as the pg
 * tests do: initdb in SCRATCH_DIR, a free loopback port) with the Spider
 * dev databases converted into it, and stops it at the end.
 *
 * Engine overhead.  The Spider dev questions (SPIDER_DIR/dev.json) are
 * asked through the public API against a zero-latency fake model that
 * answers each with its gold SQL (benchutil's oracle), on two engines per
 * database: the SQLite file and its PostgreSQL copy.  Per question, and on
 * each engine in turn (alternating which goes first):
 *   query alone  the gold SQL run straight through the driver, all rows
 *                read: sqlite3_prepare_v2/step on a read-only connection,
 *                PQexec on a connection of its own -- the second of two
 *                runs, so both see a warm cache;
 *   ask          convbi_session_ask's wall time and the asking thread's
 *                CPU time (one session per database, reset between
 *                questions: the connection stays open, as in a REPL or a
 *                serve session; no value index, which only SQLite has).
 * "Added" is ask minus query alone: the three model calls over loopback
 * HTTP, prompts, parsing, the gate, the engine's own round trips (for
 * PostgreSQL: the server-side check, BEGIN with the limits, ROLLBACK) and
 * copying the rows.  Only questions whose gold SQL runs on both engines and
 * whose ask succeeds on both count.
 *
 * Introspection.  The same generated schema -- N tables (default 10,000) of
 * six columns, a primary key, a foreign key to the previous table, a
 * comment on each table (PostgreSQL) and a few rows in every tenth table,
 * analysed -- in a PostgreSQL database and in a SQLite file; the time of
 * db_open + db_introspect, the median of three, and of convbi_engine_open
 * (introspection plus everything else an engine opens, no value index).
 *
 * Usage: bench_pg [--limit N] [--tables N] [--out FILE]
 * Targets (issue 15): the engine adds < 2 ms per question over the query on
 * PostgreSQL; introspecting 10,000 tables takes < 2 s.
 */
#include <libpq-fe.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"
#include "convbi/convbi.h"
#include "db/db.h"

#define FIXTURE SOURCE_DIR "/tests/pg/fixture.sh"
#define INTROSPECT_RUNS 3
#define BATCH_TABLES 500 /* tables created per transaction (lock table size) */

static char cluster_dir[512];
static char uri_base[512];

static double now_s(clockid_t clock)
{
	struct timespec t;
	clock_gettime(clock, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void stop_cluster(void)
{
	if (!cluster_dir[0])
		return;
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "bash '%s' cleanup '%s'", FIXTURE, cluster_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_pg: could not stop the cluster in %s\n", cluster_dir);
	cluster_dir[0] = '\0';
}

static void on_signal(int sig)
{
	stop_cluster();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Starts the cluster with the shop and Spider databases; reads the URI base. */
static int start_cluster(void)
{
	snprintf(cluster_dir, sizeof cluster_dir, "%s/bench-pg", SCRATCH_DIR);
	atexit(stop_cluster);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	char cmd[1600];
	snprintf(cmd, sizeof cmd, "bash '%s' setup '%s' '%s' '%s' >&2", FIXTURE, cluster_dir, SAMPLE_DB, SPIDER_DIR);
	if (system(cmd) != 0) {
		fprintf(stderr, "bench_pg: the cluster did not start (%s)\n", cmd);
		return -1;
	}
	char path[600], line[600];
	snprintf(path, sizeof path, "%s/env", cluster_dir);
	FILE *f = fopen(path, "r");
	while (f && fgets(line, sizeof line, f))
		if (!strncmp(line, "PG_URI_BASE=", 12))
			snprintf(uri_base, sizeof uri_base, "%.*s", (int)strcspn(line + 12, "\n"), line + 12);
	if (f)
		fclose(f);
	return uri_base[0] ? 0 : -1;
}

static PGconn *pg_connect(const char *db)
{
	char uri[700];
	snprintf(uri, sizeof uri, "%s/%s", uri_base, db);
	PGconn *c = PQconnectdb(uri);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "bench_pg: %s: %s", db, PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	return c;
}

static int pg_exec_ok(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok)
		fprintf(stderr, "bench_pg: %.80s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	return ok ? 0 : -1;
}

/* ---- the query alone ---------------------------------------------------------- */

/* Seconds of the second of two runs, all rows read; < 0 when it fails. */
static double raw_sqlite(sqlite3 *db, const char *sql)
{
	double t = -1;
	for (int run = 0; run < 2; run++) {
		double t0 = now_s(CLOCK_MONOTONIC);
		sqlite3_stmt *st = NULL;
		if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
			return -1;
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			for (int c = 0; c < sqlite3_column_count(st); c++)
				(void)sqlite3_column_text(st, c);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return -1;
		t = now_s(CLOCK_MONOTONIC) - t0;
	}
	return t;
}

static double raw_pg(PGconn *c, const char *sql)
{
	double t = -1;
	for (int run = 0; run < 2; run++) {
		double t0 = now_s(CLOCK_MONOTONIC);
		PGresult *r = PQexec(c, sql);
		int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
		PQclear(r);
		if (!ok)
			return -1;
		t = now_s(CLOCK_MONOTONIC) - t0;
	}
	return t;
}

/* ---- engine overhead ---------------------------------------------------------- */

enum { SQ, PG, NENGINES };
static const char *const engine_name[NENGINES] = {"SQLite", "PostgreSQL"};

struct samples {
	double *raw, *ask, *added, *cpu; /* ms, one per counted question */
	int n;
};

static void samples_init(struct samples *s, int cap)
{
	s->raw = calloc((size_t)cap, sizeof(double));
	s->ask = calloc((size_t)cap, sizeof(double));
	s->added = calloc((size_t)cap, sizeof(double));
	s->cpu = calloc((size_t)cap, sizeof(double));
	s->n = 0;
}

static void samples_free(struct samples *s)
{
	free(s->raw), free(s->ask), free(s->added), free(s->cpu);
}

static int ask_timed(convbi_session *s, const char *q, double *wall, double *cpu)
{
	convbi_answer *a = NULL;
	double w0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_THREAD_CPUTIME_ID);
	int rc = convbi_session_ask(s, q, NULL, NULL, NULL, &a);
	*cpu = now_s(CLOCK_THREAD_CPUTIME_ID) - c0;
	*wall = now_s(CLOCK_MONOTONIC) - w0;
	convbi_answer_free(a);
	convbi_session_reset(s);
	return rc;
}

struct overhead {
	int asked, raw_failed[NENGINES], ask_failed[NENGINES];
};

/* Asks db's questions on both engines; appends to sm. */
static void bench_db(const char *cfg, const char *db, const struct bench_question *qs, int nq, char *done,
                     struct samples sm[NENGINES], struct overhead *ov)
{
	char path[1024], uri[700];
	snprintf(path, sizeof path, SPIDER_DIR "/database/%s/%s.sqlite", db, db);
	snprintf(uri, sizeof uri, "%s/%s", uri_base, db);
	const char *target[NENGINES] = {path, uri};
	convbi_engine *eng[NENGINES] = {NULL, NULL};
	convbi_session *ses[NENGINES] = {NULL, NULL};
	sqlite3 *lite = NULL;
	PGconn *pg = pg_connect(db);
	sqlite3_open_v2(path, &lite, SQLITE_OPEN_READONLY, NULL);
	int ok = pg && lite;
	for (int e = 0; e < NENGINES && ok; e++) {
		convbi_options o = CONVBI_OPTIONS_INIT;
		o.db_path = target[e];
		o.config_path = cfg;
		o.prompts_dir = SOURCE_DIR "/prompts";
		o.value_index = 0; /* SQLite only: both engines do the same work */
		if (convbi_engine_open(&eng[e], &o) || convbi_session_new(&ses[e], eng[e])) {
			fprintf(stderr, "bench_pg: %s on %s: %s\n", db, engine_name[e],
			        ses[e] ? convbi_session_errmsg(ses[e]) : convbi_engine_errmsg(eng[e]));
			ok = 0;
		}
	}
	for (int j = 0; j < nq; j++) {
		if (done[j] || strcmp(qs[j].db, db))
			continue;
		done[j] = 1;
		if (!ok)
			continue;
		ov->asked++;
		double raw[NENGINES], wall[NENGINES], cpu[NENGINES];
		int good = 1;
		for (int k = 0; k < NENGINES; k++) {
			int e = (j + k) % NENGINES; /* alternate which engine goes first */
			raw[e] = e == SQ ? raw_sqlite(lite, qs[j].gold) : raw_pg(pg, qs[j].gold);
			if (raw[e] < 0) {
				ov->raw_failed[e]++;
				good = 0;
				continue;
			}
			if (ask_timed(ses[e], qs[j].question, &wall[e], &cpu[e])) {
				ov->ask_failed[e]++;
				good = 0;
			}
		}
		for (int e = 0; e < NENGINES && good; e++) {
			struct samples *s = &sm[e];
			s->raw[s->n] = 1e3 * raw[e];
			s->ask[s->n] = 1e3 * wall[e];
			s->added[s->n] = 1e3 * (wall[e] - raw[e]);
			s->cpu[s->n] = 1e3 * cpu[e];
			s->n++;
		}
	}
	for (int e = 0; e < NENGINES; e++) {
		convbi_session_free(ses[e]);
		convbi_engine_close(eng[e]);
	}
	sqlite3_close(lite);
	PQfinish(pg);
}

/* ---- introspection ------------------------------------------------------------ */

/* The generated schema in PostgreSQL database `wide`. */
static int make_wide_pg(int ntables)
{
	PGconn *c = pg_connect("postgres");
	if (!c || pg_exec_ok(c, "CREATE DATABASE wide")) {
		PQfinish(c);
		return -1;
	}
	PQfinish(c);
	if (!(c = pg_connect("wide")))
		return -1;
	char sql[2048];
	/* one procedure-style DO block per batch: 10,000 tables in one
	 * transaction would need more locks than the lock table holds */
	int rc = 0;
	for (int from = 1; from <= ntables && !rc; from += BATCH_TABLES) {
		int to = from + BATCH_TABLES - 1 < ntables ? from + BATCH_TABLES - 1 : ntables;
		snprintf(sql, sizeof sql,
		         "DO $$ BEGIN FOR i IN %d..%d LOOP "
		         "EXECUTE format('CREATE TABLE t%%s (id integer PRIMARY KEY, name text NOT NULL, amount numeric(12,2), "
		         "created date, status text, parent_id integer%%s)', i, "
		         "CASE WHEN i > 1 THEN format(' REFERENCES t%%s(id)', i - 1) ELSE '' END); "
		         "EXECUTE format('COMMENT ON TABLE t%%s IS %%L', i, 'generated table number ' || i); "
		         "IF i %% 10 = 0 THEN EXECUTE format('INSERT INTO t%%s SELECT g, ''name '' || g, g * 1.5, "
		         "date ''2024-01-01'' + g, CASE WHEN g %%%% 2 = 0 THEN ''open'' ELSE ''closed'' END, NULL "
		         "FROM generate_series(1, 20) g', i); END IF; "
		         "END LOOP; END $$",
		         from, to);
		rc = pg_exec_ok(c, sql);
	}
	if (!rc)
		rc = pg_exec_ok(c, "ANALYZE");
	PQfinish(c);
	return rc;
}

static int make_wide_sqlite(const char *path, int ntables)
{
	sqlite3 *db = NULL;
	unlink(path);
	if (sqlite3_open(path, &db) != SQLITE_OK)
		return -1;
	int rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	char sql[1024];
	for (int i = 1; i <= ntables && rc == SQLITE_OK; i++) {
		char ref[64] = "";
		if (i > 1)
			snprintf(ref, sizeof ref, " REFERENCES t%d(id)", i - 1);
		snprintf(sql, sizeof sql,
		         "CREATE TABLE t%d (id integer PRIMARY KEY, name text NOT NULL, amount numeric(12,2), created date, "
		         "status text, parent_id integer%s)",
		         i, ref);
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
		if (rc == SQLITE_OK && i % 10 == 0) {
			snprintf(sql, sizeof sql,
			         "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 20) "
			         "INSERT INTO t%d SELECT n, 'name ' || n, n * 1.5, date('2024-01-01', '+' || n || ' days'), "
			         "CASE WHEN n %% 2 = 0 THEN 'open' ELSE 'closed' END, NULL FROM g",
			         i);
			rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
		}
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT; ANALYZE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		fprintf(stderr, "bench_pg: %s: %s\n", path, sqlite3_errmsg(db));
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

struct introspection {
	double introspect_ms; /* db_open + db_introspect, median */
	double engine_ms;     /* convbi_engine_open, median */
	int tables;
};

static int time_introspection(const char *target, const char *cfg, struct introspection *out)
{
	double t[INTROSPECT_RUNS], te[INTROSPECT_RUNS];
	for (int r = 0; r < INTROSPECT_RUNS; r++) {
		struct db *d = NULL;
		struct schema *s = NULL;
		struct err e = ERR_INIT;
		double t0 = now_s(CLOCK_MONOTONIC);
		int rc = db_open(&d, target, NULL, &e);
		if (!rc)
			rc = db_introspect(d, &s, &e);
		t[r] = 1e3 * (now_s(CLOCK_MONOTONIC) - t0);
		out->tables = s ? s->ntables : 0;
		schema_free(s);
		db_close(d);
		if (rc) {
			fprintf(stderr, "bench_pg: introspecting %s: %s\n", target, e.msg);
			return -1;
		}
		convbi_options o = CONVBI_OPTIONS_INIT;
		o.db_path = target;
		o.value_index = 0;
		o.config_path = cfg;
		convbi_engine *eng = NULL;
		t0 = now_s(CLOCK_MONOTONIC);
		rc = convbi_engine_open(&eng, &o);
		te[r] = 1e3 * (now_s(CLOCK_MONOTONIC) - t0);
		if (rc)
			fprintf(stderr, "bench_pg: engine on %s: %s\n", target, convbi_engine_errmsg(eng));
		convbi_engine_close(eng);
	}
	bench_sort(t, INTROSPECT_RUNS);
	bench_sort(te, INTROSPECT_RUNS);
	out->introspect_ms = bench_pct(t, INTROSPECT_RUNS, 50);
	out->engine_ms = bench_pct(te, INTROSPECT_RUNS, 50);
	return 0;
}

/* ---- main --------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	int limit = -1, ntables = 10000;
	const char *out = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--limit") && i + 1 < argc)
			limit = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--tables") && i + 1 < argc)
			ntables = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--out") && i + 1 < argc)
			out = argv[++i];
		else {
			fprintf(stderr, "usage: %s [--limit N] [--tables N] [--out FILE]\n", argv[0]);
			return 2;
		}
	}
	setenv("XDG_CACHE_HOME", SCRATCH_DIR "/cache", 1); /* the SQLite value index's cache */
	struct bench_oracle oracle;
	if (bench_oracle_start(&oracle, limit))
		return 1;
	const struct bench_question *qs = oracle.qs;
	int nq = oracle.n;
	fprintf(stderr, "bench_pg: starting a PostgreSQL cluster and loading the Spider databases...\n");
	if (start_cluster()) {
		bench_oracle_stop(&oracle);
		return 1;
	}

	struct samples sm[NENGINES];
	struct overhead ov = {0};
	for (int e = 0; e < NENGINES; e++)
		samples_init(&sm[e], nq ? nq : 1);
	char *done = calloc((size_t)nq + 1, 1);
	for (int i = 0; i < nq; i++)
		if (!done[i])
			bench_db(oracle.config, qs[i].db, qs, nq, done, sm, &ov);
	free(done);

	fprintf(stderr, "bench_pg: generating %d tables in PostgreSQL and in SQLite...\n", ntables);
	char wide_path[700], wide_uri[700];
	snprintf(wide_path, sizeof wide_path, "%s/wide.db", oracle.dir);
	snprintf(wide_uri, sizeof wide_uri, "%s/wide", uri_base);
	struct introspection in[NENGINES] = {{0}};
	double gen0 = now_s(CLOCK_MONOTONIC);
	int wide_ok = !make_wide_pg(ntables) && !make_wide_sqlite(wide_path, ntables);
	double gen_s = now_s(CLOCK_MONOTONIC) - gen0;
	if (wide_ok)
		wide_ok = !time_introspection(wide_path, oracle.config, &in[SQ]) &&
		          !time_introspection(wide_uri, oracle.config, &in[PG]);
	stop_cluster();

	/* ---- the table ---- */
	double med[NENGINES][4], p95[NENGINES][4];
	for (int e = 0; e < NENGINES; e++) {
		double *v[4] = {sm[e].ask, sm[e].raw, sm[e].added, sm[e].cpu};
		for (int k = 0; k < 4; k++) {
			bench_sort(v[k], sm[e].n);
			med[e][k] = bench_pct(v[k], sm[e].n, 50);
			p95[e][k] = bench_pct(v[k], sm[e].n, 95);
		}
	}
	static const char *const rows[4] = {"ask, wall", "query alone (driver)", "added (ask - query)", "asking thread CPU"};
	printf("bench_pg: %d Spider dev questions, %d asked on both engines, %d counted (gold SQL runs on both, both asks OK)\n",
	       nq, ov.asked, sm[PG].n);
	printf("  gold SQL failing: SQLite %d, PostgreSQL %d; asks failing: SQLite %d, PostgreSQL %d\n", ov.raw_failed[SQ],
	       ov.raw_failed[PG], ov.ask_failed[SQ], ov.ask_failed[PG]);
	printf("\n%-24s %12s %12s %12s %12s %12s\n", "per question (ms)", "SQLite p50", "PG p50", "SQLite p95", "PG p95",
	       "PG - SQLite");
	for (int k = 0; k < 4; k++)
		printf("%-24s %12.3f %12.3f %12.3f %12.3f %+12.3f\n", rows[k], med[SQ][k], med[PG][k], p95[SQ][k], p95[PG][k],
		       med[PG][k] - med[SQ][k]);
	if (sm[PG].n)
		printf("target: PostgreSQL adds < 2 ms over the query: %s (%.3f ms median, %.3f ms p95)\n",
		       med[PG][2] < 2 ? "met" : "NOT met", med[PG][2], p95[PG][2]);
	if (wide_ok) {
		printf("\nintrospection of %d generated tables (built in %.0f s), median of %d\n", ntables, gen_s,
		       INTROSPECT_RUNS);
		printf("%-24s %12s %12s %12s\n", "", "SQLite", "PostgreSQL", "PG / SQLite");
		printf("%-24s %10.0f ms %10.0f ms %11.2fx\n", "db_open + introspect", in[SQ].introspect_ms, in[PG].introspect_ms,
		       in[PG].introspect_ms / in[SQ].introspect_ms);
		printf("%-24s %10.0f ms %10.0f ms %11.2fx\n", "convbi_engine_open", in[SQ].engine_ms, in[PG].engine_ms,
		       in[PG].engine_ms / in[SQ].engine_ms);
		printf("%-24s %13d %12d\n", "tables read", in[SQ].tables, in[PG].tables);
		printf("target: introspecting 10,000 tables < 2 s on PostgreSQL: %s\n",
		       in[PG].introspect_ms < 2000 && ntables >= 10000 ? "met"
		       : ntables < 10000                               ? "(fewer tables asked)"
		                                                       : "NOT met");
	} else {
		printf("\nintrospection: the generated schema could not be built or read (see above)\n");
	}
	if (out) {
		FILE *js = fopen(out, "w");
		if (js) {
			fprintf(js, "{\"questions\":%d,\"counted\":%d", nq, sm[PG].n);
			for (int e = 0; e < NENGINES; e++)
				fprintf(js,
				        ",\"%s\":{\"ask_ms_p50\":%.4f,\"query_ms_p50\":%.4f,\"added_ms_p50\":%.4f,\"added_ms_p95\":%.4f,"
				        "\"cpu_ms_p50\":%.4f,\"introspect_ms\":%.1f,\"engine_open_ms\":%.1f,\"tables\":%d}",
				        e == SQ ? "sqlite" : "postgresql", med[e][0], med[e][1], med[e][2], p95[e][2], med[e][3],
				        in[e].introspect_ms, in[e].engine_ms, in[e].tables);
			fprintf(js, ",\"generated_tables\":%d}\n", ntables);
			fclose(js);
			printf("JSON: %s\n", out);
		}
	}
	for (int e = 0; e < NENGINES; e++)
		samples_free(&sm[e]);
	bench_oracle_stop(&oracle);
	return 0;
}
