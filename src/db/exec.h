/* exec.h -- running model-written SQL read-only, behind the gate.
 *
 * A struct exec is one hardened read-only connection (see ro.h) with
 * tight sqlite3_limit()s, the gate's authorizer installed for its whole
 * life (see guard.h), and the built-ins that could run long inside one
 * step replaced by capped versions (see capped.h).  exec_run checks a
 * statement through the gate, then steps it and copies at most row_cap
 * rows into a struct table, each cell cut to cell_max bytes and the whole
 * to result_max bytes, within four bounds:
 *   time    one deadline over prepare and step, checked by a progress
 *           handler every EXEC_PROGRESS_OPS instructions, by the authorizer
 *           during prepare, and enforced by a watchdog thread that calls
 *           sqlite3_interrupt() at the deadline (watchdog.h);
 *   memory  SQLite memory the statement allocates beyond what the
 *           connection held before it, and what all connections hold
 *           together (membudget.h);
 *   disk    bytes held by its temporary files (tempvfs.h);
 *   size    sqlite3_limit()s below, and views weighed before they are
 *           expanded (views.h).
 * A statement over its memory or disk bound fails with ETOOBIG and a
 * message naming the bound.
 *
 * Belt and braces: the file is opened with mode=ro and SQLITE_OPEN_READONLY,
 * PRAGMA query_only is on, and the gate's layers (statement kind,
 * sqlite3_stmt_readonly, the authorizer allow-list) each refuse writes on
 * their own.  One thread at a time per struct exec.
 */
#ifndef CONVBI_DB_EXEC_H
#define CONVBI_DB_EXEC_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "db/table.h"
#include "util/err.h"

/* Limits set with sqlite3_limit() on every exec connection, and the
 * gate's own.  EXEC_VALUE_MAX also bounds the cost of one function call
 * over one value: every built-in is at most linear in its arguments once
 * the capped ones (capped.h) are in place, so no single step can run long
 * past the deadline. */
#define EXEC_SQL_MAX (100 * 1024)        /* bytes of SQL text */
#define EXEC_VALUE_MAX (2 * 1024 * 1024) /* bytes of one string/BLOB/row/aggregate */
#define EXEC_EXPR_DEPTH_MAX 250          /* expression tree depth */
#define EXEC_COMPOUND_MAX 50             /* terms of a UNION/INTERSECT/EXCEPT */
#define EXEC_FUNCTION_ARGS_MAX 64        /* arguments of one function call */
#define EXEC_LIKE_PATTERN_MAX 1000       /* bytes of a LIKE/GLOB pattern */
#define EXEC_VARIABLES_MAX 32            /* parameters (any is rejected) */
#define EXEC_VDBE_OP_MAX 500000          /* instructions in one program */
#define EXEC_RESULT_COLUMNS_MAX 1000     /* columns of one result */
#define EXEC_VIEW_REFS_MAX 200           /* table references after expanding views (views.h) */
#define EXEC_PROGRESS_OPS 100            /* instructions between deadline and cancel checks */

/* Defaults of the per-statement resource limits (struct exec_limits). */
#define EXEC_MEM_MAX_DEFAULT ((int64_t)256 << 20)  /* SQLite memory beyond the connection's base */
#define EXEC_TEMP_MAX_DEFAULT ((int64_t)512 << 20) /* bytes of temporary files */
#define EXEC_PROCESS_MEM_MAX \
	((int64_t)1 << 30) /* SQLite memory of all connections' statements
                                                       together, or one statement's own budget when larger */
#define EXEC_COUNT_MS 1000 /* counting the rows past a cap (rows or bytes), at most */

struct exec_limits {
	int timeout_ms;    /* wall time for one statement, prepare included; 0 = none */
	int64_t row_cap;   /* rows kept; more make the table truncated; 0 = no cap */
	size_t cell_max;   /* bytes kept of one cell; 0 = no cap */
	size_t result_max; /* bytes kept of all cells together; 0 = no cap */
	int64_t mem_max;   /* bytes of SQLite memory the statement may take beyond
	                       what the connection held before it; 0 = default, < 0 = none */
	int64_t temp_max;  /* bytes of temporary files (sorters, temporary b-trees);
	                       0 = default, < 0 = none */
	int catalog_ok;    /* 1 = one of our own statements that reads the server's
	                       statistics views (PostgreSQL: pg_stats, pg_stat_user_tables);
	                       never set for model or caller SQL */
};

#define EXEC_LIMITS_INIT                                                                      \
	{                                                                                     \
		5000, 1000, 4096, 1024 * 1024, EXEC_MEM_MAX_DEFAULT, EXEC_TEMP_MAX_DEFAULT, 0 \
	}

/* What the last exec_run on a connection used, measured by the limits
 * themselves (see exec_last_usage). */
struct exec_usage {
	int64_t elapsed_ms; /* prepare to finalize */
	int64_t mem_peak;   /* bytes of SQLite memory beyond the base, at the peak */
	int64_t temp_peak;  /* bytes of temporary files, at the peak */
	int mem_counted;    /* 0 = the accounting allocator is not in place */
};

struct exec;

/* Opens path read-only for running gated SQL.  Returns CONVBI_OK and *out
 * (close with exec_close), or CONVBI_EDB with one line naming the file and
 * the fix (missing, a directory, unreadable, not a database), EINVAL for
 * an empty path, ENOMEM; *out is NULL on failure. */
int exec_open(struct exec **out, const char *path, struct err *err);

/* Closes the connection and frees x; accepts NULL. */
void exec_close(struct exec *x);

/* Checks sql through the gate and runs it.  lim may be NULL (defaults);
 * cancel (may be NULL) is polled while the statement runs and a non-zero
 * return stops it.  On success returns CONVBI_OK and *out (caller frees
 * with table_free), truncated when a row or byte cap left rows out.  On
 * failure *out is NULL and the code says why: EREJECTED (the gate refused;
 * the message says what to change), ESQL (SQLite's message, with the
 * offset for syntax errors), ETOOBIG (a complexity or value-size limit),
 * ETIMEOUT ("the query ran longer than N ms; ..."), ECANCELED, EDB (the
 * file became unreadable or locked), ENOMEM. */
int exec_run(struct exec *x, const char *sql, const struct exec_limits *lim, int (*cancel)(void *), void *cancel_payload,
             struct table **out, struct err *err);

/* What the last exec_run on x used (zeros before the first). */
void exec_last_usage(const struct exec *x, struct exec_usage *out);

/* The path x was opened with, borrowed from x. */
const char *exec_path(const struct exec *x);

/* The underlying connection, borrowed from x, for tests that check the
 * layers below the gate.  Anything run on it directly bypasses the gate's
 * statement checks (the authorizer still applies). */
sqlite3 *exec_sqlite(struct exec *x);

#endif
