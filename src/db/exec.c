/* exec.c -- the read-only connection and the gated, bounded run (see exec.h).
 *
 * exec_open: ro_open (read-only, hardened), sqlite3_limit()s, the capped
 * functions of capped.h, a warm-up of the schema's virtual tables and of the
 * JSON table-valued functions, then guard_init, which installs the
 * authorizer -- last, because from then on every statement on the
 * connection is judged by it.  The warm-up exists because a virtual
 * table's first use runs sqlite3_declare_vtab, whose internal CREATE TABLE
 * the authorizer would see (and refuse) as a write to sqlite_schema; once
 * connected, a virtual table is reused for the connection's life.
 *
 * The connection is opened on its own tempvfs (the temporary-file budget)
 * and gets a membudget and a watchdog; all three live as long as it.
 *
 * exec_run: enter the memory budget, arm the watchdog, then guard_prepare
 * and sqlite3_step under a progress handler that polls the cancel callback
 * and the deadline every EXEC_PROGRESS_OPS instructions (the authorizer
 * checks both during prepare).  Rows are copied as they come; the row cap
 * stops the copy at cap+1 rows, the byte cap drops the row that
 * overflowed; either way the rest are then only counted (count_rest).  Whatever SQLite reports when a bound stopped it (INTERRUPT,
 * NOMEM, FULL), the bound that was hit decides the error: cancel, then
 * deadline, then memory, then disk.
 */
#include "db/exec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convbi/convbi.h"
#include "db/capped.h"
#include "db/exec_impl.h"
#include "db/guard.h"
#include "db/membudget.h"
#include "db/ro.h"
#include "db/tempvfs.h"
#include "db/watchdog.h"
#include "util/alloc.h"
#include "util/clock.h"

/* ---- open / close -------------------------------------------------------------- */

static void set_limits(sqlite3 *db)
{
	static const struct {
		int id, value;
	} lim[] = {
	        {SQLITE_LIMIT_LENGTH, EXEC_VALUE_MAX},
	        {SQLITE_LIMIT_SQL_LENGTH, EXEC_SQL_MAX},
	        {SQLITE_LIMIT_EXPR_DEPTH, EXEC_EXPR_DEPTH_MAX},
	        {SQLITE_LIMIT_COMPOUND_SELECT, EXEC_COMPOUND_MAX},
	        {SQLITE_LIMIT_VDBE_OP, EXEC_VDBE_OP_MAX},
	        {SQLITE_LIMIT_FUNCTION_ARG, EXEC_FUNCTION_ARGS_MAX},
	        {SQLITE_LIMIT_ATTACHED, 0},
	        {SQLITE_LIMIT_LIKE_PATTERN_LENGTH, EXEC_LIKE_PATTERN_MAX},
	        {SQLITE_LIMIT_VARIABLE_NUMBER, EXEC_VARIABLES_MAX},
	        {SQLITE_LIMIT_TRIGGER_DEPTH, 1},
	        {SQLITE_LIMIT_WORKER_THREADS, 0}, /* sorter work stays on the thread the budgets watch */
	};
	for (size_t i = 0; i < sizeof lim / sizeof lim[0]; i++)
		sqlite3_limit(db, lim[i].id, lim[i].value);
}

/* Connects every virtual table of the schema (FTS, R-Tree) once, before
 * the authorizer is installed: a connection's first use of a virtual
 * table declares its columns through an internal CREATE TABLE that the
 * authorizer would refuse.  Failures are left for the query to report. */
static void warm_virtual_tables(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db,
	                       "SELECT name FROM sqlite_schema WHERE type = 'table' AND "
	                       "sql LIKE 'CREATE VIRTUAL TABLE%'",
	                       -1, &st, NULL) != SQLITE_OK)
		return;
	while (sqlite3_step(st) == SQLITE_ROW) {
		char *q = sqlite3_mprintf("SELECT * FROM \"%w\" LIMIT 0", (const char *)sqlite3_column_text(st, 0));
		sqlite3_stmt *probe = NULL;
		if (q)
			sqlite3_prepare_v2(db, q, -1, &probe, NULL);
		sqlite3_finalize(probe);
		sqlite3_free(q);
	}
	sqlite3_finalize(st);
}

int exec_open(struct exec **out, const char *path, struct err *err)
{
	struct exec *x = NULL;
	int rc;

	*out = NULL;
	x = xcalloc(1, sizeof *x);
	if (!x)
		return err_set(err, CONVBI_ENOMEM, "out of memory opening a database");
	rc = tempvfs_new(&x->temp, EXEC_TEMP_MAX_DEFAULT, err);
	if (rc)
		goto fail;
	membudget_set_process_limit(EXEC_PROCESS_MEM_MAX);
	x->mem = membudget_new(0);
	if (!x->mem) {
		rc = err_set(err, CONVBI_ENOMEM, "out of memory opening database `%s`", path);
		goto fail;
	}
	rc = ro_open_vfs(&x->db, path, tempvfs_name(x->temp), err);
	if (rc)
		goto fail;
	x->watchdog = watchdog_new(x->db);
	if (!x->watchdog) {
		rc = err_set(err, CONVBI_ENOMEM, "out of memory opening database `%s`", path);
		goto fail;
	}
	x->path = xstrdup(path);
	if (!x->path) {
		rc = err_set(err, CONVBI_ENOMEM, "out of memory opening database `%s`", path);
		goto fail;
	}
	set_limits(x->db);
	rc = capped_install(x->db, EXEC_VALUE_MAX, &x->deadline_ms, err);
	if (rc)
		goto fail;
	warm_virtual_tables(x->db);
	if (sqlite3_exec(x->db, "SELECT 1 FROM json_each('[]'), json_tree('[]')", NULL, NULL, NULL) != SQLITE_OK) {
		rc = err_set(err, CONVBI_EDB, "database `%s` cannot be prepared for queries (%s); check the SQLite build", path,
		             sqlite3_errmsg(x->db));
		goto fail;
	}
	rc = guard_init(x, err);
	if (rc)
		goto fail;
	*out = x;
	return CONVBI_OK;
fail:
	exec_close(x);
	return rc;
}

void exec_close(struct exec *x)
{
	if (!x)
		return;
	guard_release(x);
	watchdog_free(x->watchdog);
	sqlite3_close_v2(x->db);
	tempvfs_free(x->temp);
	membudget_free(x->mem);
	free(x->path);
	free(x);
}

const char *exec_path(const struct exec *x)
{
	return x->path;
}

sqlite3 *exec_sqlite(struct exec *x)
{
	return x->db;
}

void exec_last_usage(const struct exec *x, struct exec_usage *out)
{
	*out = x->usage;
}

/* ---- run ------------------------------------------------------------------------ */

/* Called by SQLite every EXEC_PROGRESS_OPS instructions; non-zero stops
 * the statement with SQLITE_INTERRUPT. */
static int progress(void *p)
{
	struct exec *x = p;
	if (x->cancel && x->cancel(x->cancel_payload)) {
		x->stopped = CONVBI_ECANCELED;
		return 1;
	}
	if (x->deadline_ms && clock_mono_ms() >= x->deadline_ms) {
		x->stopped = CONVBI_ETIMEOUT;
		return 1;
	}
	return 0;
}

/* After a cap (rows or bytes): steps through the rows left, copying
 * nothing, so that the answer can say "1000 of 12345"; at most
 * EXEC_COUNT_MS and never past the statement's own deadline, within the
 * same memory and temporary-storage budgets (the statement is the same:
 * nothing runs twice).  Sets t->total_rows to the rows seen, with
 * total_partial when it ran out of time or failed: a lower bound.  The
 * kept rows stand either way. */
static void count_rest(struct exec *x, sqlite3_stmt *st, struct table *t, int64_t seen)
{
	int64_t until = clock_mono_ms() + EXEC_COUNT_MS;
	if (!x->deadline_ms || until < x->deadline_ms)
		x->deadline_ms = until;
	int src;
	while ((src = sqlite3_step(st)) == SQLITE_ROW)
		seen++;
	x->stopped = 0;
	t->total_rows = seen;
	t->total_partial = src != SQLITE_DONE;
}

static int stop_error(struct exec *x, struct err *err)
{
	if (x->stopped == CONVBI_ECANCELED)
		return err_set(err, CONVBI_ECANCELED, "the query was canceled");
	return err_set(err, CONVBI_ETIMEOUT,
	               "the query ran longer than %d ms; filter earlier, aggregate, avoid cross joins or add a LIMIT",
	               x->timeout_ms);
}

static int64_t mb_of(int64_t bytes)
{
	return (bytes + (1 << 20) - 1) >> 20;
}

/* The error of a run that failed with rc: a bound that was hit explains it
 * better than what SQLite made of it (INTERRUPT, NOMEM, FULL, a refusal
 * from the authorizer at the deadline).  late: the deadline had passed
 * when the run ended (whoever noticed it: the watchdog, a capped function,
 * the memory budget refusing a large allocation). */
static int bound_error(struct exec *x, int rc, int late, struct err *err)
{
	if (x->stopped)
		return stop_error(x, err);
	if (late && rc != CONVBI_EREJECTED) {
		x->stopped = CONVBI_ETIMEOUT;
		return stop_error(x, err);
	}
	if (meter_exceeded(membudget_meter(x->mem)) == 2)
		return err_set(err, CONVBI_ETOOBIG,
		               "the queries running at once need more than %lld MB of memory together; try again when "
		               "fewer run, or select less",
		               (long long)mb_of(membudget_process_limit()));
	if (meter_exceeded(membudget_meter(x->mem)))
		return err_set(err, CONVBI_ETOOBIG,
		               "the query needs more than %lld MB of memory; select fewer or shorter columns, aggregate "
		               "less text or add a LIMIT",
		               (long long)mb_of(x->mem_limit));
	if (meter_exceeded(tempvfs_meter(x->temp)))
		return err_set(err, CONVBI_ETOOBIG,
		               "the query needs more than %lld MB of temporary storage for sorting and grouping; filter "
		               "earlier or sort fewer rows",
		               (long long)mb_of(x->temp_limit));
	return rc;
}

/* A REAL's text: the shortest of %.15g, %.16g and %.17g that reads back
 * as the same double -- SQLite's own text stops at 15 digits, so 0.1+0.2
 * showed as 0.3 and 2^53 as 9007199254740990.0, values a client could not
 * filter on again -- with ".0" when it looks whole, as SQLite writes a
 * REAL.  Returns its length in out (at least EXEC_REAL_TEXT_BYTES). */
#define EXEC_REAL_TEXT_BYTES 32
static size_t real_text(char *out, double d)
{
	int n = 0;
	for (int digits = 15; digits <= 17; digits++)
		if ((n = snprintf(out, EXEC_REAL_TEXT_BYTES, "%.*g", digits, d)) > 0 && strtod(out, NULL) == d)
			break;
	if (n > 0 && n < EXEC_REAL_TEXT_BYTES - 2 && !strpbrk(out, ".e"))
		memcpy(out + n, ".0", 3), n += 2;
	return n > 0 ? (size_t)n : 0;
}

static int copy_row(struct table *t, sqlite3_stmt *st, size_t cell_max)
{
	int rc = table_add_row(t);
	int64_t row = t->nrows - 1;
	for (int c = 0; c < t->ncols && !rc; c++) {
		int type = sqlite3_column_type(st, c);
		int ty = type == SQLITE_INTEGER ? TABLE_INT
		         : type == SQLITE_FLOAT ? TABLE_REAL
		         : type == SQLITE_TEXT  ? TABLE_TEXT
		         : type == SQLITE_BLOB  ? TABLE_BLOB
		                                : TABLE_NULL;
		const void *data = NULL;
		char real[EXEC_REAL_TEXT_BYTES];
		double d = ty == TABLE_REAL ? sqlite3_column_double(st, c) : 0;
		size_t len = 0;
		/* integers as SQLite prints them, reals so that they read back the
		 * same; a long BLOB is shown by its size alone: never materialise
		 * it (a zeroblob(N) would take N bytes) */
		if (ty == TABLE_REAL && isfinite(d) && (len = real_text(real, d)))
			data = real;
		else if (ty == TABLE_BLOB)
			data = sqlite3_column_bytes(st, c) > TABLE_BLOB_HEX_MAX ? "" : sqlite3_column_blob(st, c);
		else if (ty != TABLE_NULL)
			data = sqlite3_column_text(st, c);
		if (data != real)
			len = ty == TABLE_NULL ? 0 : (size_t)sqlite3_column_bytes(st, c);
		if (ty != TABLE_NULL && !data && len)
			return CONVBI_ENOMEM; /* a conversion failed */
		/* only a prefix is needed when the cell will be cut anyway */
		if (ty == TABLE_TEXT && cell_max && len > cell_max + 1)
			len = cell_max + 1;
		rc = table_set_cell(t, row, c, ty, data, len, cell_max);
	}
	return rc;
}

/* Starts the bounds of one run: deadline, watchdog, memory and disk. */
static void begin_run(struct exec *x, const struct exec_limits *lim, int (*cancel)(void *), void *payload)
{
	x->stopped = 0;
	x->cancel = cancel;
	x->cancel_payload = payload;
	x->timeout_ms = lim->timeout_ms;
	x->started_ms = clock_mono_ms();
	x->deadline_ms = lim->timeout_ms > 0 ? x->started_ms + lim->timeout_ms : 0;
	x->mem_base = meter_used(membudget_meter(x->mem));
	x->mem_limit = lim->mem_max == 0 ? EXEC_MEM_MAX_DEFAULT : lim->mem_max;
	x->temp_limit = lim->temp_max == 0 ? EXEC_TEMP_MAX_DEFAULT : lim->temp_max;
	meter_reset(membudget_meter(x->mem), x->mem_limit > 0 ? x->mem_base + x->mem_limit : 0);
	membudget_set_deadline(x->mem, x->deadline_ms);
	meter_reset(tempvfs_meter(x->temp), x->temp_limit > 0 ? x->temp_limit : 0);
	if (x->deadline_ms)
		watchdog_arm(x->watchdog, x->deadline_ms);
	sqlite3_progress_handler(x->db, EXEC_PROGRESS_OPS, progress, x);
}

/* Ends them; returns 1 when the watchdog interrupted the run. */
static int end_run(struct exec *x)
{
	int fired = x->deadline_ms ? watchdog_disarm(x->watchdog) : 0;
	membudget_set_deadline(x->mem, 0);
	sqlite3_progress_handler(x->db, 0, NULL, NULL);
	x->usage.elapsed_ms = clock_mono_ms() - x->started_ms;
	x->usage.mem_peak = meter_peak(membudget_meter(x->mem)) - x->mem_base;
	x->usage.temp_peak = meter_peak(tempvfs_meter(x->temp));
	x->usage.mem_counted = membudget_active();
	x->cancel = NULL;
	x->cancel_payload = NULL;
	x->deadline_ms = 0;
	return fired;
}

int exec_run(struct exec *x, const char *sql, const struct exec_limits *lim, int (*cancel)(void *), void *cancel_payload,
             struct table **out, struct err *err)
{
	static const struct exec_limits defaults = EXEC_LIMITS_INIT;
	sqlite3_stmt *st = NULL;
	struct table *t = NULL;
	int rc;

	*out = NULL;
	if (!lim)
		lim = &defaults;
	if (cancel && cancel(cancel_payload))
		return err_set(err, CONVBI_ECANCELED, "the query was canceled");

	struct membudget *outer = membudget_enter(x->mem);
	begin_run(x, lim, cancel, cancel_payload);
	rc = guard_prepare(x, sql, strlen(sql), &st, err);
	if (rc)
		goto done;
	int ncols = sqlite3_column_count(st);
	rc = table_new(&t, ncols);
	for (int c = 0; c < ncols && !rc; c++)
		rc = table_set_column(t, c, sqlite3_column_name(st, c), sqlite3_column_decltype(st, c));
	if (rc) {
		err_set(err, rc, "out of memory reading the result");
		goto done;
	}

	for (;;) {
		x->deny[0] = '\0';
		x->deny_weak = 0;
		int src = sqlite3_step(st);
		if (src == SQLITE_DONE)
			break;
		if (src != SQLITE_ROW) {
			rc = guard_sqlite_error(x, src, sql, strlen(sql), -1, err);
			goto done;
		}
		if (lim->row_cap > 0 && t->nrows >= lim->row_cap) {
			t->truncated = 1;
			t->cut = TABLE_CUT_ROWS;
			count_rest(x, st, t, t->nrows + 1);
			break;
		}
		rc = copy_row(t, st, lim->cell_max);
		if (rc) {
			err_set(err, rc, "out of memory reading the result");
			goto done;
		}
		if (lim->result_max && t->bytes > lim->result_max) {
			table_pop_row(t);
			t->truncated = 1;
			t->cut = TABLE_CUT_BYTES;
			count_rest(x, st, t, t->nrows + 1);
			break;
		}
	}
	*out = t;
	t = NULL;
	rc = CONVBI_OK;
done:
	sqlite3_finalize(st);
	table_free(t);
	int late = x->deadline_ms && clock_mono_ms() >= x->deadline_ms;
	late |= end_run(x); /* end_run clears the deadline */
	membudget_leave(outer);
	if (rc)
		rc = bound_error(x, rc, late, err);
	x->stopped = 0; /* the authorizer refuses everything while it is set */
	return rc;
}
