/* test_limits.c -- the SQL gate's time, memory and disk bounds hold against
 * hostile SQL, measured from outside the code that enforces them.
 *
 * Every statement runs in a child process forked from a connection opened
 * once (struct exec on the "heavy" fixture: the concerts tables plus
 * sqlgen.h's expensive tables and 3,000 chained views).  The child times
 * exec_run and reads its threads' run-queue delay; the parent samples the
 * child's temporary files (SQLITE_TMPDIR is a directory of this test) and
 * takes its peak resident set from wait4 (measure.h).  Each statement must
 *   time    return within its deadline + LATE_MS, not counting the time
 *           the kernel kept its threads waiting for a CPU after the
 *           deadline (the suite shares two cores with everything else);
 *           a statement that fails after waiting for a CPU for a quarter
 *           of its deadline or more (a refusal can then meet the
 *           deadline first) runs again, up to STARVED_RERUNS times: a
 *           real failure fails every run;
 *   memory  peak RSS - RSS before the run <= its memory budget + MEM_SLACK;
 *   disk    temporary files <= its disk budget + TEMP_SLACK;
 * and fail, when it fails, with one line.  The statements: every case of
 * tests/data/hostile_sql.txt (its expectation checked too; instrumented,
 * the `limit` cases, test_guard running the refusals there), the issue's
 * representative cases at the default budgets, and statements from the
 * generator (sqlgen.h) for CONVBI_HOSTILE_SECONDS (default 4) from a seed
 * printed first (CONVBI_HOSTILE_SEED=N repeats a run).
 *
 * Why a fork per statement: peak RSS is only meaningful per process, and
 * memory freed by one statement but kept by malloc would hide the next
 * one's.  Forking after exec_open is safe here because the parent never
 * uses the connection while a child runs, holds no lock when it forks (no
 * statement is open) and the file is only read; the child exits with
 * _exit and never closes what the parent still uses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "convbi/convbi.h"
#include "corpus.h"
#include "db/exec.h"
#include "db/guard.h"
#include "measure.h"
#include "sqlgen.h"
#include "testutil.h"

#define CONCERTS_DB TEST_DATA_DIR "/concerts.db" /* built from tests/data/concerts.sql */
#define CORPUS SOURCE_DIR "/tests/data/hostile_sql.txt"

/* The corpus and the generator run under tight budgets so that every
 * bound is reached within a fraction of a second. */
#define TIGHT_TIMEOUT_MS 300
#define TIGHT_MEM_MAX ((int64_t)64 << 20)
#define TIGHT_TEMP_MAX ((int64_t)64 << 20)

#define LATE_MS 100                   /* past the deadline, at most */
#define MEM_SLACK ((int64_t)16 << 20) /* RSS beyond SQLite's budget: the copied result (capped), malloc's slack */
#define TEMP_SLACK ((int64_t)1 << 20) /* file system rounding */
#define HOSTILE_SECONDS 4             /* of generated statements, by default */
#define SLOW_TIMEOUT_MS 3000          /* the longest deadline when instrumented */
#define STARVED_RERUNS 2              /* runs again of a statement that failed while starved of CPU */

static struct env {
	char *dir;      /* scratch directory, removed at the end */
	char *tmp;      /* SQLITE_TMPDIR of the children */
	char *heavy;    /* the fixture database */
	struct exec *x; /* opened once on heavy; children inherit it */
	int slow;       /* 1 = instrumented (the sanitizers; .ci/run keeps this test from valgrind) */
} env;

/* What the child reports through its pipe. */
struct outcome {
	int rc;
	int truncated, cells_cut;
	int64_t elapsed_ms;      /* exec_run, call to return */
	int64_t wait_ms;         /* run-queue delay of the child's threads after the deadline */
	int64_t starved_ms;      /* run-queue delay of the child's threads during the whole run */
	int64_t rss_before_kb;   /* VmRSS just before exec_run */
	struct exec_usage usage; /* what the limits counted themselves */
	char msg[512];
};

struct measured {
	struct outcome o;
	struct tu_usage u;
};

/* ---- fixtures ------------------------------------------------------------- */

static int group_setup(void **state)
{
	(void)state;
	env.slow = getenv("CONVBI_VALGRIND") != NULL;
	env.heavy = tu_path(env.dir, "heavy.sqlite");
	if (!env.heavy || tu_copy_file(CONCERTS_DB, env.heavy))
		return -1;
	sqlite3 *db = NULL;
	int rc = sqlite3_open(env.heavy, &db);
	if (rc == SQLITE_OK)
		rc = sqlgen_fixture(db);
	if (rc != SQLITE_OK)
		fprintf(stderr, "building the fixture: %s\n", sqlite3_errmsg(db));
	sqlite3_close(db);
	if (rc != SQLITE_OK)
		return -1;
	struct err e = ERR_INIT;
	if (exec_open(&env.x, env.heavy, &e)) {
		fprintf(stderr, "exec_open: %s\n", e.msg);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	exec_close(env.x);
	free(env.heavy);
	return 0;
}

/* ---- one measured run ----------------------------------------------------- */

static void child(int fd, const char *sql, size_t len, const struct exec_limits *lim)
{
	struct outcome o;
	memset(&o, 0, sizeof o);
	struct err e = ERR_INIT;
	struct table *t = NULL;
	o.rss_before_kb = tu_rss_kb();
	int64_t w0 = tu_wait_ms(0);
	int64_t t0 = tu_now_ms();
	if (lim->timeout_ms > 0 && tu_deadline_start(lim->timeout_ms))
		_exit(2);
	if (memchr(sql, '\0', len))
		o.rc = guard_check_len(env.x, sql, len, &e); /* exec_run takes C strings */
	else
		o.rc = exec_run(env.x, sql, lim, NULL, NULL, &t, &e);
	o.elapsed_ms = tu_now_ms() - t0;
	o.wait_ms = lim->timeout_ms > 0 ? tu_deadline_wait_ms() : 0;
	int64_t w1 = tu_wait_ms(0);
	o.starved_ms = w0 >= 0 && w1 > w0 ? w1 - w0 : 0;
	exec_last_usage(env.x, &o.usage);
	o.truncated = t && t->truncated;
	o.cells_cut = t && t->cells_cut > 0;
	table_free(t); /* valgrind checks for leaks in the child too */
	snprintf(o.msg, sizeof o.msg, "%s", e.msg);
	ssize_t w = write(fd, &o, sizeof o);
	_exit(w == (ssize_t)sizeof o ? 0 : 1);
}

/* Runs sql in a child and measures it; fails the test if the child could
 * not run or report. */
static void run_measured(const char *sql, size_t len, const struct exec_limits *lim, struct measured *m)
{
	int p[2];
	memset(m, 0, sizeof *m);
	assert_int_equal(pipe(p), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		child(p[1], sql, len, lim);
	}
	close(p[1]);
	/* a runaway child is killed long after any bound could hold */
	int kill_ms = (lim->timeout_ms > 0 ? lim->timeout_ms : 60000) + (env.slow ? 120000 : 30000);
	assert_int_equal(tu_watch(pid, env.tmp, kill_ms, &m->u), 0);
	ssize_t r = read(p[0], &m->o, sizeof m->o);
	close(p[0]);
	/* a non-zero status is also valgrind's or a sanitizer's verdict on the child */
	if (r != (ssize_t)sizeof m->o || m->u.status != 0)
		fail_msg("the child running `%.200s` failed (status %d, %" PRId64 " ms)", sql, m->u.status, m->u.wall_ms);
}

/* 1 when the child waited for a CPU for a quarter of its deadline or
 * more: a failure then may be the machine's, and the statement runs
 * again. */
static int starved(const struct exec_limits *lim, const struct measured *m)
{
	return lim->timeout_ms > 0 && m->o.starved_ms * 4 >= lim->timeout_ms;
}

/* NULL when m is within lim's bounds, else what was exceeded. */
static const char *over_bounds(const struct exec_limits *lim, const struct measured *m, char *why, size_t whylen)
{
	int64_t mem = lim->mem_max ? lim->mem_max : EXEC_MEM_MAX_DEFAULT;
	int64_t temp = lim->temp_max ? lim->temp_max : EXEC_TEMP_MAX_DEFAULT;
	int64_t late = env.slow ? 10 * LATE_MS : LATE_MS;
	/* instrumented allocators keep freed blocks (quarantine) and shadow memory */
	int64_t mem_allowed = env.slow ? 3 * mem + ((int64_t)256 << 20) : mem + MEM_SLACK;
	int64_t wait = m->o.wait_ms > 0 ? m->o.wait_ms : 0;
	int64_t rss = (m->u.rss_peak_kb - m->o.rss_before_kb) * 1024;
	if (lim->timeout_ms > 0 && m->o.elapsed_ms - wait > lim->timeout_ms + late)
		snprintf(why, whylen,
		         "took %" PRId64 " ms (%" PRId64 " ms of it waiting for a CPU after the deadline), over %d + %" PRId64
		         " ms",
		         m->o.elapsed_ms, wait, lim->timeout_ms, late);
	else if (rss > mem_allowed)
		snprintf(why, whylen, "peak RSS grew by %" PRId64 " MB, over %" PRId64 " MB", rss >> 20, mem_allowed >> 20);
	else if (m->u.temp_peak > temp + TEMP_SLACK)
		snprintf(why, whylen, "temporary files reached %" PRId64 " MB, over %" PRId64 " MB", m->u.temp_peak >> 20,
		         temp >> 20);
	else if (m->o.rc && (!m->o.msg[0] || strchr(m->o.msg, '\n')))
		snprintf(why, whylen, "failed without a one-line message");
	else
		return NULL;
	return why;
}

static void print_measured(const char *name, const struct measured *m)
{
	print_message("%-44.44s %-10s %5" PRId64 " ms (wait %3" PRId64 ") rss +%4" PRId64 " MB  temp %4" PRId64
	              " MB  [counted: %" PRId64 " MB, %" PRId64 " MB]\n",
	              name, convbi_errname(m->o.rc), m->o.elapsed_ms, m->o.wait_ms, (m->u.rss_peak_kb - m->o.rss_before_kb) >> 10,
	              m->u.temp_peak >> 20, m->o.usage.mem_peak >> 20, m->o.usage.temp_peak >> 20);
}

static struct exec_limits tight_limits(void)
{
	struct exec_limits lim = {TIGHT_TIMEOUT_MS, 100, 1000, 64 * 1024, TIGHT_MEM_MAX, TIGHT_TEMP_MAX, 0};
	return lim;
}

/* ---- the corpus ----------------------------------------------------------- */

/* NULL when the outcome is what the corpus expects. */
static int as_expected(const struct corpus_case *c, const struct outcome *o)
{
	if (!strcmp(c->kind, "reject"))
		return o->rc == CONVBI_EREJECTED;
	if (!strcmp(c->kind, "limit"))
		return o->rc == CONVBI_ETIMEOUT || o->rc == CONVBI_ETOOBIG ||
		       (o->rc == CONVBI_OK && (o->truncated || o->cells_cut));
	return o->rc != CONVBI_OK;
}

static void hostile_corpus_stays_within_time_memory_and_disk(void **state)
{
	(void)state;
	char err[256];
	struct corpus_case *cases = NULL;
	long n = corpus_load(CORPUS, &cases, err, sizeof err);
	if (n < 0)
		fail_msg("%s", err);
	struct exec_limits lim = tight_limits();
	int failures = 0, heavy = 0;
	for (long i = 0; i < n; i++) {
		/* instrumented, only what runs: test_guard runs the refusals there */
		if (env.slow && strcmp(cases[i].kind, "limit"))
			continue;
		size_t len = 0;
		char *sql = corpus_expand(cases[i].sql, env.tmp, &len);
		assert_non_null(sql);
		struct measured m;
		char name[64], why[256];
		const char *bad = NULL;
		snprintf(name, sizeof name, "line %d: %s", cases[i].line, cases[i].sql);
		for (int run = 0; run <= STARVED_RERUNS; run++) {
			if (bad)
				print_message("%s: %s after %" PRId64 " ms waiting for a CPU; again\n", name, bad,
				              m.o.starved_ms);
			run_measured(sql, len, &lim, &m);
			bad = over_bounds(&lim, &m, why, sizeof why);
			if (!bad && !as_expected(&cases[i], &m.o))
				bad = "not the expected outcome";
			if (!bad || !starved(&lim, &m))
				break;
		}
		free(sql);
		heavy += cases[i].fixture[0] != '\0';
		if (strcmp(cases[i].kind, "reject"))
			print_measured(name, &m);
		if (bad) {
			print_error("line %d (%s): %.300s -> %s \"%s\": %s\n", cases[i].line, cases[i].kind, cases[i].sql,
			            convbi_errname(m.o.rc), m.o.msg, bad);
			failures++;
		}
	}
	corpus_free(cases, n);
	assert_true(heavy >= 10); /* the issue's cases are there */
	assert_int_equal(failures, 0);
}

/* ---- the issue's cases at the default budgets ------------------------------ */

static const struct default_case {
	const char *name;
	const char *sql;
	int timeout_ms;
	int code; /* expected */
} default_cases[] = {
        {"1000 columns of zeroblob(1 MB), 256 MB budget", "SELECT {{999*zeroblob(1048576), }}zeroblob(1048576)", 5000,
         CONVBI_ETOOBIG},
        {"60 json_group_array over 16 MB, 256 MB budget",
         "SELECT {{59*length(json_group_array(t || 'x')), }}length(json_group_array(t)) FROM rows", 5000, CONVBI_ETOOBIG},
        {"sort of 300,000 4 KB keys, 512 MB disk budget",
         "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 300000) "
         "SELECT x FROM c ORDER BY hex(zeroblob(2000)) || x DESC",
         60000, CONVBI_ETOOBIG}, /* about 1 s; the deadline only has to come after the budget */
        {"json_patch of two 100,000-key objects",
         "SELECT length(json_patch(a.j, b.j)) FROM js AS a, js AS b WHERE a.id = 1 AND b.id = 2", 1000, CONVBI_ETOOBIG},
        {"a VIRTUAL generated column costly per row", "SELECT count(*) FROM g AS a, g AS b WHERE a.b = b.b", 1000,
         CONVBI_ETIMEOUT},
};

static void issue_cases_stay_within_the_default_budgets(void **state)
{
	(void)state;
	int failures = 0;
	for (size_t i = 0; i < sizeof default_cases / sizeof default_cases[0]; i++) {
		const struct default_case *c = &default_cases[i];
		struct exec_limits lim = EXEC_LIMITS_INIT;
		lim.timeout_ms = c->timeout_ms;
		/* instrumented, filling 512 MB takes minutes: a deadline ends it
		 * first, and the bounds are checked all the same */
		if (env.slow && lim.timeout_ms > SLOW_TIMEOUT_MS)
			lim.timeout_ms = SLOW_TIMEOUT_MS;
		size_t len = 0;
		char *sql = corpus_expand(c->sql, env.tmp, &len);
		assert_non_null(sql);
		struct measured m;
		char why[256];
		const char *bad = NULL;
		for (int run = 0; run <= STARVED_RERUNS; run++) {
			if (bad)
				print_message("%s: %s after %" PRId64 " ms waiting for a CPU; again\n", c->name, bad,
				              m.o.starved_ms);
			run_measured(sql, len, &lim, &m);
			bad = over_bounds(&lim, &m, why, sizeof why);
			if (!bad && m.o.rc != c->code && !(env.slow && m.o.rc == CONVBI_ETIMEOUT))
				bad = "not the expected outcome";
			if (!bad || !starved(&lim, &m))
				break;
		}
		free(sql);
		print_measured(c->name, &m);
		if (bad) {
			print_error("%s -> %s \"%s\": %s\n", c->name, convbi_errname(m.o.rc), m.o.msg, bad);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
}

/* ---- generated variations --------------------------------------------------- */

static void generated_statements_stay_within_their_bounds(void **state)
{
	(void)state;
	const char *s = getenv("CONVBI_HOSTILE_SECONDS");
	const char *seed_env = getenv("CONVBI_HOSTILE_SEED");
	int seconds = s ? atoi(s) : HOSTILE_SECONDS;
	uint64_t seed = seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	print_message("generated statements for %d s from CONVBI_HOSTILE_SEED=%" PRIu64 "\n", seconds, seed);
	struct sqlgen g;
	sqlgen_seed(&g, seed);
	struct exec_limits lim = tight_limits();
	static char sql[SQLGEN_SQL_MAX];
	int64_t end = tu_now_ms() + (int64_t)seconds * 1000;
	int runs = 0, failures = 0, counts[64] = {0};
	while (runs == 0 || tu_now_ms() < end) {
		sqlgen_select(&g, sql);
		struct measured m;
		char why[256];
		const char *bad = NULL;
		for (int run = 0; run <= STARVED_RERUNS; run++) {
			if (bad)
				print_message("statement %d: %s after %" PRId64 " ms waiting for a CPU; again\n", runs + 1, bad,
				              m.o.starved_ms);
			run_measured(sql, strlen(sql), &lim, &m);
			bad = over_bounds(&lim, &m, why, sizeof why);
			/* a bound that was hit is ETOOBIG/ETIMEOUT, never ENOMEM or a database error */
			if (!bad && (m.o.rc == CONVBI_ENOMEM || m.o.rc == CONVBI_EDB))
				bad = "a bound surfaced as the wrong error";
			if (!bad || !starved(&lim, &m))
				break;
		}
		runs++;
		counts[m.o.rc & 63]++;
		if (bad) {
			print_error("statement %d of seed %" PRIu64 ": %.2000s -> %s \"%s\": %s\n", runs, seed, sql,
			            convbi_errname(m.o.rc), m.o.msg, bad);
			failures++;
		}
	}
	print_message("%d statements: %d ok, %d rejected, %d SQL errors, %d too big, %d timed out\n", runs, counts[CONVBI_OK],
	              counts[CONVBI_EREJECTED], counts[CONVBI_ESQL], counts[CONVBI_ETOOBIG], counts[CONVBI_ETIMEOUT]);
	assert_int_equal(failures, 0);
}

int main(void)
{
	/* before SQLite initialises: it reads SQLITE_TMPDIR once */
	env.dir = tu_mkdtemp("db-limits");
	if (!env.dir)
		return 1;
	env.tmp = tu_path(env.dir, "tmp");
	if (!env.tmp || mkdir(env.tmp, 0700) || setenv("SQLITE_TMPDIR", env.tmp, 1))
		return 1;
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(hostile_corpus_stays_within_time_memory_and_disk),
	        cmocka_unit_test(issue_cases_stay_within_the_default_budgets),
	        cmocka_unit_test(generated_statements_stay_within_their_bounds),
	};
	int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
	tu_rmtree(env.dir);
	free(env.dir);
	free(env.tmp);
	return rc;
}
