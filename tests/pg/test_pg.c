/* test_pg.c -- the PostgreSQL backend against a real server.
 *
 * Needs the "pg" CTest fixture (tests/pg/fixture.sh): a throw-away cluster
 * on loopback with the shop database, whose connection facts are in
 * SCRATCH_DIR/pg/env.  The hostile corpus (tests/data/hostile_pg.txt) runs
 * as the cluster's superuser, so every refusal is the gate's own, not the
 * role's; afterwards a checksum of every table and the pg_stat_database
 * write counters must be unchanged and the attack directory empty.
 * Timed-out, cancelled and capped queries must leave no backend running.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convbi/convbi.h"
#include "db/db.h"
#include "testutil.h"
#include "util/buf.h"

#define ENV_FILE SCRATCH_DIR "/pg/env"

static struct {
	char port[16];
	char super_uri[512];
	char ro_uri[512];
	char *attack; /* a directory nothing may write into */
	int slow;     /* instrumented run: scale time bounds */
} env;

static void read_env(void)
{
	FILE *f = fopen(ENV_FILE, "r");
	if (!f)
		fail_msg("%s is missing: run the suite with ctest (the pg fixture starts the cluster)", ENV_FILE);
	char line[1024];
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = '\0';
		char *eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq = '\0';
		if (!strcmp(line, "PGPORT"))
			snprintf(env.port, sizeof env.port, "%s", eq + 1);
		else if (!strcmp(line, "PG_SUPER_URI"))
			snprintf(env.super_uri, sizeof env.super_uri, "%s", eq + 1);
		else if (!strcmp(line, "PG_RO_URI"))
			snprintf(env.ro_uri, sizeof env.ro_uri, "%s", eq + 1);
	}
	fclose(f);
}

static int group_setup(void **state)
{
	read_env();
	env.attack = tu_mkdtemp("pg-attack");
	chmod(env.attack, 0777); /* the server runs as another user: let it try */
	env.slow = getenv("CONVBI_VALGRIND") != NULL;
	unsetenv("PGPASSWORD");
	return env.attack ? 0 : -1;
}

static int group_teardown(void **state)
{
	tu_rmtree(env.attack);
	free(env.attack);
	return 0;
}

static PGconn *admin(void)
{
	PGconn *c = PQconnectdb(env.super_uri);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("admin connection: %s", PQerrorMessage(c));
	return c;
}

static char *scalar(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	char *v = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

/* md5 of every row of every user table, and the list of tables. */
static char *checksum_all(PGconn *c)
{
	struct buf out = BUF_INIT;
	PGresult *r = PQexec(c,
	                     "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
	                     "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1");
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	for (int i = 0; i < PQntuples(r); i++) {
		char sql[512];
		snprintf(sql, sizeof sql, "SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM %s t",
		         PQgetvalue(r, i, 0));
		char *sum = scalar(c, sql);
		buf_printf(&out, "%s=%s\n", PQgetvalue(r, i, 0), sum);
		free(sum);
	}
	PQclear(r);
	return buf_take(&out);
}

static char *write_counters(PGconn *c)
{
	PQclear(PQexec(c, "SELECT pg_stat_clear_snapshot()"));
	/* the user's tables only: pg_stat_database also counts the catalog rows
	 * autovacuum's ANALYZE updates (pg_class, pg_statistic) whenever it
	 * likes, which made this check flaky */
	return scalar(c,
	              "SELECT concat_ws(' ', coalesce(sum(n_tup_ins), 0), coalesce(sum(n_tup_upd), 0), "
	              "coalesce(sum(n_tup_del), 0)) FROM pg_stat_user_tables");
}

/* Waits until no convbi backend is running a query (or, with gone, until
 * none is connected at all); fails after a generous bound. */
static void wait_backends(PGconn *c, int gone)
{
	const char *sql = gone ? "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'convbi'"
	                       : "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'convbi' "
	                         "AND state NOT IN ('idle')";
	int64_t until = tu_now_ms() + (env.slow ? 30000 : 10000);
	for (;;) {
		char *n = scalar(c, sql);
		int zero = !strcmp(n, "0");
		free(n);
		if (zero)
			return;
		if (tu_now_ms() > until)
			fail_msg("a convbi backend is still %s", gone ? "connected" : "running a query");
		usleep(20000);
	}
}

static struct exec_limits limits(int timeout_ms, int64_t row_cap, size_t cell_max, size_t result_max)
{
	struct exec_limits lim = EXEC_LIMITS_INIT;
	lim.timeout_ms = timeout_ms;
	lim.row_cap = row_cap;
	lim.cell_max = cell_max;
	lim.result_max = result_max;
	return lim;
}

static struct db *open_db(const char *uri, const char *schemas)
{
	struct db *d = NULL;
	struct err e = ERR_INIT;
	struct db_options o = {schemas};
	if (db_open(&d, uri, &o, &e))
		fail_msg("db_open: %s", e.msg);
	return d;
}

/* ---- the hostile corpus -------------------------------------------------------- */

static char *unescape(const char *s)
{
	struct buf b = BUF_INIT;
	for (; *s; s++) {
		if (*s == '\\' && s[1] == 'n')
			buf_putc(&b, '\n'), s++;
		else if (*s == '\\' && s[1] == 't')
			buf_putc(&b, '\t'), s++;
		else if (*s == '\\' && s[1] == '\\')
			buf_putc(&b, '\\'), s++;
		else if (!strncmp(s, "@DIR@", 5))
			buf_puts(&b, env.attack), s += 4;
		else
			buf_putc(&b, *s);
	}
	buf_putc(&b, '\0');
	return buf_take(&b);
}

static void hostile_corpus_as_superuser_changes_nothing(void **state)
{
	PGconn *c = admin();
	char *sum_before = checksum_all(c), *counters_before = write_counters(c);
	char *text = tu_read_file(SOURCE_DIR "/tests/data/hostile_pg.txt", NULL);
	assert_non_null(text);
	struct db *d = open_db(env.super_uri, NULL);
	struct exec_limits lim = limits(env.slow ? 3000 : 1000, 1000, 4096, 1 << 20);
	int n = 0, failures = 0;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		if (line[0] == '#' || !strchr(line, '\t'))
			continue;
		char *tab = strchr(line, '\t');
		*tab = '\0';
		char *sql = unescape(tab + 1);
		struct err ce = ERR_INIT, re = ERR_INIT;
		struct table *t = NULL;
		int64_t t0 = tu_now_ms();
		int crc = db_check(d, sql, &ce);
		int rrc = db_run(d, sql, &lim, NULL, NULL, &t, &re);
		int ok;
		if (!strcmp(line, "reject"))
			ok = (crc == CONVBI_EREJECTED || crc == CONVBI_ESQL) && (rrc == CONVBI_EREJECTED || rrc == CONVBI_ESQL) &&
			     ce.msg[0] && !strchr(ce.msg, '\n');
		else if (!strcmp(line, "limit"))
			ok = rrc == CONVBI_ETIMEOUT || rrc == CONVBI_ETOOBIG || (rrc == CONVBI_OK && t->truncated);
		else
			ok = rrc != CONVBI_OK;
		if (!ok) {
			print_error("%s: %s -> check %s \"%s\", run %s \"%s\"\n", line, sql, convbi_errname(crc), ce.msg,
			            convbi_errname(rrc), re.msg);
			failures++;
		}
		if (tu_now_ms() - t0 > 3000)
			print_message("slow case (%lld ms): %s\n", (long long)(tu_now_ms() - t0), sql);
		table_free(t);
		free(sql);
		n++;
	}
	db_close(d);
	wait_backends(c, 1); /* a backend reports its statistics when it exits */
	char *sum_after = checksum_all(c), *counters_after = write_counters(c);
	assert_true(n >= 100);
	assert_int_equal(failures, 0);
	assert_string_equal(sum_before, sum_after);
	assert_string_equal(counters_before, counters_after);
	char *files[] = {"x", "customers.csv", "pwned"};
	for (size_t i = 0; i < 3; i++) {
		char p[1024];
		snprintf(p, sizeof p, "%s/%s", env.attack, files[i]);
		assert_int_not_equal(access(p, F_OK), 0);
	}
	free(sum_before), free(sum_after), free(counters_before), free(counters_after), free(text);
	PQfinish(c);
}

/* ---- limits, cancel, deadline ----------------------------------------------------- */

static void a_timed_out_query_stops_and_leaves_no_backend_running(void **state)
{
	PGconn *c = admin();
	struct db *d = open_db(env.super_uri, NULL);
	struct exec_limits lim = limits(300, 1000, 4096, 1 << 20);
	struct table *t = NULL;
	struct err e = ERR_INIT;
	int64_t t0 = tu_now_ms();
	assert_int_equal(db_run(d, "SELECT count(*) FROM generate_series(1, 100000000000) g", &lim, NULL, NULL, &t, &e),
	                 CONVBI_ETIMEOUT);
	assert_true(tu_now_ms() - t0 < (env.slow ? 20000 : 5000));
	assert_non_null(strstr(e.msg, "300 ms"));
	wait_backends(c, 0);
	/* the connection is still good */
	assert_int_equal(db_run(d, "SELECT 1 AS one", &lim, NULL, NULL, &t, &e), CONVBI_OK);
	assert_string_equal(table_cell(t, 0, 0), "1");
	table_free(t);
	db_close(d);
	PQfinish(c);
}

static void *cancel_later(void *p)
{
	usleep(300000);
	db_cancel(p);
	return NULL;
}

static void db_cancel_from_another_thread_stops_the_query_and_leaves_no_backend(void **state)
{
	PGconn *c = admin();
	struct db *d = open_db(env.super_uri, NULL);
	struct exec_limits lim = limits(60000, 1000, 4096, 1 << 20);
	struct table *t = NULL;
	struct err e = ERR_INIT;
	pthread_t th;
	pthread_create(&th, NULL, cancel_later, d);
	int64_t t0 = tu_now_ms();
	assert_int_equal(db_run(d, "SELECT count(*) FROM generate_series(1, 100000000000) g", &lim, NULL, NULL, &t, &e),
	                 CONVBI_ECANCELED);
	pthread_join(th, NULL);
	assert_true(tu_now_ms() - t0 < (env.slow ? 20000 : 5000));
	wait_backends(c, 0);
	assert_int_equal(db_run(d, "SELECT 2", &lim, NULL, NULL, &t, &e), CONVBI_OK);
	table_free(t);
	db_close(d);
	PQfinish(c);
}

static int64_t cancel_at_ms;
static int cancel_after(void *p)
{
	return tu_now_ms() >= cancel_at_ms;
}

static void the_cancel_callback_stops_the_query(void **state)
{
	PGconn *c = admin();
	struct db *d = open_db(env.super_uri, NULL);
	struct exec_limits lim = limits(60000, 1000, 4096, 1 << 20);
	struct table *t = NULL;
	struct err e = ERR_INIT;
	cancel_at_ms = tu_now_ms() + 200;
	assert_int_equal(db_run(d, "SELECT count(*) FROM generate_series(1, 100000000000) g", &lim, cancel_after, NULL, &t, &e),
	                 CONVBI_ECANCELED);
	wait_backends(c, 0);
	db_close(d);
	PQfinish(c);
}

static void the_row_cap_keeps_cap_rows_and_cancels_the_rest(void **state)
{
	PGconn *c = admin();
	struct db *d = open_db(env.super_uri, NULL);
	struct exec_limits lim = limits(60000, 10, 4096, 1 << 20);
	struct table *t = NULL;
	struct err e = ERR_INIT;
	int64_t t0 = tu_now_ms();
	assert_int_equal(db_run(d, "SELECT generate_series(1, 1000000000) AS g", &lim, NULL, NULL, &t, &e), CONVBI_OK);
	assert_true(tu_now_ms() - t0 < (env.slow ? 20000 : 5000));
	assert_int_equal(t->nrows, 10);
	assert_true(t->truncated);
	assert_int_equal(t->cut, TABLE_CUT_ROWS);
	assert_string_equal(table_cell(t, 9, 0), "10");
	table_free(t);
	wait_backends(c, 0);
	/* the byte cap, as for SQLite: the row that overflows is dropped */
	lim = limits(60000, 100000, 4096, 1000);
	assert_int_equal(db_run(d, "SELECT md5(g::text) AS h FROM generate_series(1, 100000) g", &lim, NULL, NULL, &t, &e),
	                 CONVBI_OK);
	assert_true(t->truncated);
	assert_int_equal(t->cut, TABLE_CUT_BYTES);
	assert_true(t->bytes <= 1000);
	table_free(t);
	/* cells are cut to cell_max */
	lim = limits(60000, 10, 8, 1 << 20);
	assert_int_equal(db_run(d, "SELECT md5('x') AS h", &lim, NULL, NULL, &t, &e), CONVBI_OK);
	assert_true(strlen(table_cell(t, 0, 0)) <= 8 + 3);
	table_free(t);
	wait_backends(c, 0);
	db_close(d);
	PQfinish(c);
}

/* ---- memory and temporary files ------------------------------------------------------ */

/* Sorting 10,000 md5 strings for count(DISTINCT) fits in the server's
 * default work_mem (4 MB) but not in 64 kB, where it spills ~500 kB to a
 * temporary file. */
#define SPILL_SQL "SELECT count(DISTINCT h) AS n FROM (SELECT md5(g::text) AS h FROM generate_series(1, 10000) g) s"

static int run_spill(struct db *d, int64_t mem_max, int64_t temp_max, struct err *e)
{
	struct exec_limits lim = limits(60000, 10, 4096, 1 << 20);
	lim.mem_max = mem_max;
	lim.temp_max = temp_max;
	struct table *t = NULL;
	int rc = db_run(d, SPILL_SQL, &lim, NULL, NULL, &t, e);
	if (!rc)
		assert_string_equal(table_cell(t, 0, 0), "10000");
	table_free(t);
	return rc;
}

static void mem_max_sets_work_mem_and_temp_max_stops_a_spill_with_etoobig(void **state)
{
	PGconn *c = admin();
	struct db *d = open_db(env.super_uri, NULL);
	struct err e = ERR_INIT;
	/* defaults: the sort stays in memory */
	assert_int_equal(run_spill(d, 0, 256 << 10, &e), CONVBI_OK);
	/* mem_max 1 MiB: work_mem 64 kB, the sort spills past temp_max */
	int64_t t0 = tu_now_ms();
	assert_int_equal(run_spill(d, 1 << 20, 256 << 10, &e), CONVBI_ETOOBIG);
	assert_true(tu_now_ms() - t0 < (env.slow ? 20000 : 5000));
	assert_non_null(strstr(e.msg, "temp_file_limit (256kB)"));
	assert_null(strchr(e.msg, '\n'));
	/* the same spill within a larger temp_max, or with no bound, runs */
	assert_int_equal(run_spill(d, 1 << 20, 64 << 20, &e), CONVBI_OK);
	assert_int_equal(run_spill(d, 1 << 20, -1, &e), CONVBI_OK);
	/* the settings end with each run's transaction: the defaults hold again */
	assert_int_equal(run_spill(d, 0, 256 << 10, &e), CONVBI_OK);
	wait_backends(c, 0);
	db_close(d);
	PQfinish(c);
}

/* temp_file_limit is a superuser setting: a role sets it when granted
 * SET ON PARAMETER (PostgreSQL 15), else the role's own setting applies. */
static void a_role_bounds_temporary_files_when_granted_else_by_its_own_setting(void **state)
{
	PGconn *c = admin();
	struct err e = ERR_INIT;
	setenv("PGPASSWORD", "reader-secret", 1);
	struct db *d = open_db(env.ro_uri, NULL);
	/* not granted, server limit -1: the run works, unbounded by temp_max */
	assert_int_equal(run_spill(d, 1 << 20, 256 << 10, &e), CONVBI_OK);
	db_close(d);

	PQclear(PQexec(c, "GRANT SET ON PARAMETER temp_file_limit TO reader"));
	d = open_db(env.ro_uri, NULL);
	assert_int_equal(run_spill(d, 1 << 20, 256 << 10, &e), CONVBI_ETOOBIG);
	assert_non_null(strstr(e.msg, "temp_file_limit (256kB)"));
	db_close(d);

	/* a lower bound the administrator set for the role wins, granted or not */
	PQclear(PQexec(c, "ALTER ROLE reader SET temp_file_limit = '128kB'"));
	for (int granted = 1; granted >= 0; granted--) {
		if (!granted)
			PQclear(PQexec(c, "REVOKE SET ON PARAMETER temp_file_limit FROM reader"));
		d = open_db(env.ro_uri, NULL);
		assert_int_equal(run_spill(d, 1 << 20, 256 << 10, &e), CONVBI_ETOOBIG);
		assert_non_null(strstr(e.msg, "temp_file_limit (128kB)"));
		db_close(d);
	}
	wait_backends(c, 1);
	PQfinish(c);
}

/* A view runs functions the gate never sees in the query text: whatever
 * they leave on the session (an advisory lock, a session-level setting)
 * must not outlive the run. */
static void what_a_view_leaves_on_the_session_is_discarded_after_each_run(void **state)
{
	(void)state;
	PGconn *c = admin();
	PQclear(PQexec(c, "CREATE OR REPLACE VIEW public.convbi_lock_view AS SELECT pg_advisory_lock(4242)::text AS l"));
	PQclear(PQexec(c,
	               "CREATE OR REPLACE VIEW public.convbi_path_view AS "
	               "SELECT set_config('search_path', 'pg_catalog', false) AS p"));
	PQclear(PQexec(c, "GRANT SELECT ON public.convbi_lock_view, public.convbi_path_view TO reader"));
	setenv("PGPASSWORD", "reader-secret", 1);
	struct db *d = open_db(env.ro_uri, NULL);
	struct exec_limits lim = limits(5000, 1000, 4096, 1 << 20);
	struct err e = ERR_INIT;
	struct table *t = NULL;
	assert_int_equal(db_run(d, "SELECT * FROM convbi_lock_view", &lim, NULL, NULL, &t, &e), CONVBI_OK);
	table_free(t);
	char *locks = scalar(c, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242");
	assert_string_equal(locks, "0"); /* another session can take it: no lock-based denial of service */
	free(locks);
	assert_int_equal(db_run(d, "SELECT * FROM convbi_path_view", &lim, NULL, NULL, &t, &e), CONVBI_OK);
	table_free(t);
	/* the search path is ours again: unqualified names still find the user's tables */
	assert_int_equal(db_run(d, "SELECT count(*) FROM customers", &lim, NULL, NULL, &t, &e), CONVBI_OK);
	table_free(t);
	db_close(d);
	wait_backends(c, 1);
	PQclear(PQexec(c, "DROP VIEW public.convbi_lock_view, public.convbi_path_view"));
	PQfinish(c);
}

/* Leaves the role as the fixture made it, also when the test failed. */
static int reader_restore(void **state)
{
	PGconn *c = admin();
	PQclear(PQexec(c, "REVOKE SET ON PARAMETER temp_file_limit FROM reader"));
	PQclear(PQexec(c, "ALTER ROLE reader RESET temp_file_limit"));
	PQfinish(c);
	unsetenv("PGPASSWORD");
	return 0;
}

/* ---- messages -------------------------------------------------------------------- */

static void errors_carry_postgresqls_message_and_position(void **state)
{
	struct db *d = open_db(env.super_uri, NULL);
	struct err e = ERR_INIT;
	assert_int_equal(db_check(d, "SELECT nme FROM customers", &e), CONVBI_ESQL);
	assert_non_null(strstr(e.msg, "column \"nme\" does not exist"));
	assert_non_null(strstr(e.msg, "at character 8"));
	assert_int_equal(db_check(d, "SELECT * FORM customers", &e), CONVBI_ESQL);
	assert_non_null(strstr(e.msg, "syntax error"));
	assert_non_null(strstr(e.msg, "at character"));
	assert_int_equal(db_check(d, "SELECT * FROM customers; DELETE FROM customers", &e), CONVBI_EREJECTED);
	assert_non_null(strstr(e.msg, "2 statements"));
	assert_int_equal(db_check(d, "SELECT * FROM pg_read_file('/etc/passwd') f", &e), CONVBI_EREJECTED);
	assert_non_null(strstr(e.msg, "pg_read_file"));
	assert_int_equal(db_check(d, "SELECT count(*), lower(name) FROM customers GROUP BY 2", &e), CONVBI_OK);
	assert_int_equal(strncmp(db_dialect(d), "PostgreSQL 15.", 14), 0);
	assert_int_equal(db_kind(d), DB_POSTGRES);
	db_close(d);
}

static void passwords_come_from_pgpassword_or_pgpass_and_are_never_printed(void **state)
{
	struct db *d = NULL;
	struct err e = ERR_INIT;
	d = open_db(env.super_uri, NULL);
	assert_null(strstr(db_describe(d), "owner-secret"));
	assert_non_null(strstr(db_describe(d), "owner@127.0.0.1"));
	db_close(d);

	assert_int_equal(db_open(&d, env.ro_uri, NULL, &e), CONVBI_EDB);
	assert_non_null(strstr(e.msg, "needs a password"));
	setenv("PGPASSWORD", "reader-secret", 1);
	d = open_db(env.ro_uri, NULL);
	db_close(d);
	unsetenv("PGPASSWORD");

	char *dir = tu_mkdtemp("pgpass"), path[1024], line[256];
	snprintf(path, sizeof path, "%s/pgpass", dir);
	snprintf(line, sizeof line, "127.0.0.1:%s:shop:reader:reader-secret\n", env.port);
	assert_int_equal(tu_write_file(path, line), 0);
	chmod(path, 0600);
	setenv("PGPASSFILE", path, 1);
	d = open_db(env.ro_uri, NULL);
	db_close(d);
	unsetenv("PGPASSFILE");
	tu_rmtree(dir);
	free(dir);

	char wrong[600];
	snprintf(wrong, sizeof wrong, "postgresql://reader:Wr0ng-Pa55@127.0.0.1:%s/shop", env.port);
	assert_int_equal(db_open(&d, wrong, NULL, &e), CONVBI_EDB);
	assert_null(strstr(e.msg, "Wr0ng-Pa55"));
	assert_non_null(strstr(e.msg, "cannot connect to database `shop` (password authentication failed)"));
	assert_null(strstr(e.msg, "reader")); /* no user, host or port: the message may reach a client */
	assert_null(strstr(e.msg, "127.0.0.1"));
	assert_null(strstr(e.msg, env.port));
	char kv[600];
	snprintf(kv, sizeof kv, "host=127.0.0.1 port=%s dbname=shop user=reader password=Wr0ng-Pa55", env.port);
	assert_int_equal(db_target_kind(kv), DB_POSTGRES);
	assert_int_equal(db_open(&d, kv, NULL, &e), CONVBI_EDB);
	assert_null(strstr(e.msg, "Wr0ng-Pa55"));
	assert_int_equal(db_open(&d, "postgresql://a:Wr0ng-Pa55@[broken", NULL, &e), CONVBI_EINVAL);
	assert_null(strstr(e.msg, "Wr0ng-Pa55"));
}

/* ---- introspection ------------------------------------------------------------------ */

static char *render(struct db *d)
{
	struct schema *s = NULL;
	struct err e = ERR_INIT;
	if (db_introspect(d, &s, &e))
		fail_msg("db_introspect: %s", e.msg);
	struct buf b = BUF_INIT;
	assert_int_equal(schema_render(&b, s, NULL, 1 << 20), CONVBI_OK);
	schema_free(s);
	return buf_take(&b);
}

static void introspection_reads_schemas_keys_comments_and_values_quoted(void **state)
{
	struct db *d = open_db(env.super_uri, "Sales, public");
	char *text = render(d);
	db_close(d);
	assert_non_null(strstr(text,
	                       "CREATE TABLE \"Sales\".\"Orders\" (\"OrderId\" integer PRIMARY KEY, \"Customer\" bigint "
	                       "REFERENCES public.customers(id), \"Total Amount\" numeric(10,2), note text);"));
	assert_non_null(strstr(text, "CREATE VIEW \"Sales\".\"BigOrders\""));
	assert_non_null(strstr(text, "People and companies who bought at least once"));
	assert_non_null(strstr(text, "segment text /* consumer, business or wholesale */"));
	assert_non_null(strstr(text, "rows (estimate)"));
	assert_non_null(strstr(text, "'gift'"));
	assert_non_null(strstr(text,
	                       "CREATE TABLE public.orders (id bigint PRIMARY KEY, customer_id bigint REFERENCES "
	                       "public.customers(id)"));
	/* the search path order: Sales first */
	assert_true(strstr(text, "\"Sales\".\"Orders\"") < strstr(text, "public.customers"));
	assert_null(strstr(text, "hidden."));
	free(text);

	/* the default is the search path; a role sees only what it can read */
	setenv("PGPASSWORD", "reader-secret", 1);
	d = open_db(env.ro_uri, NULL);
	text = render(d);
	db_close(d);
	assert_non_null(strstr(text, "public.customers"));
	assert_null(strstr(text, "secrets"));
	assert_null(strstr(text, "Sales"));
	free(text);
	struct err e = ERR_INIT;
	struct db_options o = {"hidden"};
	d = open_db(env.ro_uri, NULL);
	db_close(d);
	assert_int_equal(db_open(&d, env.ro_uri, &o, &e), CONVBI_OK);
	struct schema *s = NULL;
	assert_int_equal(db_introspect(d, &s, &e), CONVBI_EDB);
	assert_non_null(strstr(e.msg, "schema `hidden`"));
	db_close(d);
	unsetenv("PGPASSWORD");
}

/* Ranges: from the statistics when the table was analysed (marked "~"),
 * from one bounded scan when it was not and is small, none when it is
 * large and unanalysed; keys get none. */
static void ranges_come_from_statistics_or_a_bounded_scan(void **state)
{
	PGconn *c = admin();
	PGresult *r = PQexec(
	        c,
	        "DROP SCHEMA IF EXISTS ranges CASCADE; CREATE SCHEMA ranges;"
	        "CREATE TABLE ranges.analysed (id int PRIMARY KEY, n int, d date, amount numeric(8,2), at timestamp,"
	        "  day text, word text)"
	        "  WITH (autovacuum_enabled = false);"
	        "INSERT INTO ranges.analysed SELECT g, g * 3, date '2024-01-01' + g, g / 4.0,"
	        "  timestamp '2020-05-01 10:00' + g * interval '1 hour', (date '2019-12-31' + g)::text, CASE WHEN g % 3 = 0 THEN '' ELSE 'w' || g END"
	        "  FROM generate_series(1, 2000) g;"
	        "ANALYZE ranges.analysed;"
	        "CREATE TABLE ranges.fresh (id int PRIMARY KEY, n int, d date, label text)"
	        "  WITH (autovacuum_enabled = false);"
	        "INSERT INTO ranges.fresh SELECT g, 100 - g, date '2023-03-01' + g, 'x' FROM generate_series(1, 50) g;"
	        "CREATE TABLE ranges.large (id int PRIMARY KEY, n int, pad text) WITH (autovacuum_enabled = false);"
	        "INSERT INTO ranges.large SELECT g, g, repeat('p', 100) FROM generate_series(1, 60000) g;"
	        "CREATE TABLE ranges.nums (v numeric, w numeric, z numeric, d date) WITH (autovacuum_enabled = false);"
	        "INSERT INTO ranges.nums VALUES (-1e30, 123456789012345678901234567890.123456, 1e60, '2024-02-29'),"
	        "  (7, 0.000000000000000000000000012345, 1, '-infinity'), (8, 1, 2, 'infinity');"
	        "CREATE TABLE ranges.nums_an WITH (autovacuum_enabled = false) AS SELECT * FROM ranges.nums;"
	        "ANALYZE ranges.nums_an;");
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		fail_msg("setup: %s", PQresultErrorMessage(r));
	PQclear(r);
	char *size = scalar(c, "SELECT pg_relation_size('ranges.large') > 4 * 1024 * 1024");
	assert_string_equal(size, "t"); /* over PG_RANGE_SCAN_BYTES */
	free(size);
	struct db *d = open_db(env.super_uri, "ranges");
	char *text = render(d);
	db_close(d);
	/* analysed: the statistics' range, said to be an estimate */
	assert_non_null(strstr(text, "n: ~3..6000"));
	assert_non_null(strstr(text, "d: ~'2024-01-02'..'2029-06-23'"));
	assert_non_null(strstr(text, "amount: ~0.25..500.00"));
	assert_non_null(strstr(text, "at: ~'2020-05-01 11:00:00'..'2020-07-23 18:00:00'"));
	assert_non_null(strstr(text, "day: ~'2020-01-01'..'2025-06-22'")); /* text holding dates */
	assert_null(strstr(text, "word: ~"));                              /* text that does not */
	/* never analysed and small: the exact range, from the rows */
	assert_non_null(strstr(text, "n: 50..99"));
	assert_non_null(strstr(text, "d: '2023-03-02'..'2023-04-20'"));
	/* never analysed and large: no range rather than a guess */
	const char *large = strstr(text, "CREATE TABLE ranges.large");
	assert_non_null(large);
	const char *after = strstr(large + 1, "CREATE TABLE"), *dots = strstr(large, "..");
	assert_true(!dots || (after && dots > after));
	/* a key has none */
	assert_null(strstr(text, "id: "));
	/* long numbers whole, never cut (attack4 F13), from the rows and from
	 * the statistics; over PG_RANGE_NUMBER_CHARS no range; a date column
	 * holding infinities has none rather than one finite day */
	const char *nums = strstr(text, "CREATE TABLE ranges.nums ");
	const char *nums_an = strstr(text, "CREATE TABLE ranges.nums_an ");
	assert_non_null(nums);
	assert_non_null(nums_an);
	for (int i = 0; i < 2; i++) {
		const char *from = i ? nums_an : nums, *tilde = i ? "~" : "";
		const char *end = strstr(from + 1, "CREATE TABLE");
		char want[200];
		char *part = end ? strndup(from, (size_t)(end - from)) : strdup(from);
		snprintf(want, sizeof want, "v: %s-1000000000000000000000000000000..8", tilde);
		if (!strstr(part, want))
			fail_msg("missing [%s] in: %s", want, part);
		snprintf(want, sizeof want, "w: %s0.000000000000000000000000012345..123456789012345678901234567890.123456",
		         tilde);
		if (!strstr(part, want))
			fail_msg("missing [%s] in: %s", want, part);
		assert_null(strstr(part, "z: "));
		assert_null(strstr(part, "d: "));
		free(part);
	}
	free(text);
	PQclear(PQexec(c, "DROP SCHEMA ranges CASCADE"));
	PQfinish(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(hostile_corpus_as_superuser_changes_nothing),
	        cmocka_unit_test(a_timed_out_query_stops_and_leaves_no_backend_running),
	        cmocka_unit_test(db_cancel_from_another_thread_stops_the_query_and_leaves_no_backend),
	        cmocka_unit_test(the_cancel_callback_stops_the_query),
	        cmocka_unit_test(the_row_cap_keeps_cap_rows_and_cancels_the_rest),
	        cmocka_unit_test(mem_max_sets_work_mem_and_temp_max_stops_a_spill_with_etoobig),
	        cmocka_unit_test_teardown(a_role_bounds_temporary_files_when_granted_else_by_its_own_setting, reader_restore),
	        cmocka_unit_test_teardown(what_a_view_leaves_on_the_session_is_discarded_after_each_run, reader_restore),
	        cmocka_unit_test(errors_carry_postgresqls_message_and_position),
	        cmocka_unit_test(passwords_come_from_pgpassword_or_pgpass_and_are_never_printed),
	        cmocka_unit_test(introspection_reads_schemas_keys_comments_and_values_quoted),
	        cmocka_unit_test(ranges_come_from_statistics_or_a_bounded_scan),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
