/* db.h -- one database, whichever engine holds it: open, introspect,
 * check, run with limits, cancel, close.
 *
 * The flow, the API and the CLI see only this.  A target names the
 * database: a file path (SQLite), a `postgres://` / `postgresql://` URI or
 * a libpq `key=value` string (PostgreSQL).  Behind struct db sits one
 * backend (db_impl.h's vtable): db_sqlite.c wraps exec/guard/schema as
 * they are; pg.c, pg_gate.c and pg_schema.c speak libpq and libpg-query.
 *
 * Every backend gives the same guarantees: model-written SQL is checked by
 * a layered read-only gate (db_check) before db_run executes it under a
 * deadline, a row cap and byte caps (struct exec_limits), and a running
 * query stops on the cancel callback, on db_cancel from another thread or
 * at the deadline.  Errors are the public CONVBI_* codes with one line:
 * EREJECTED (the gate refused), ESQL (the engine's own message, with the
 * position), ETOOBIG, ETIMEOUT, ECANCELED, EDB (cannot connect or read).
 * Passwords never appear in any message or description.
 *
 * One thread at a time per struct db, except db_cancel.
 */
#ifndef CONVBI_DB_DB_H
#define CONVBI_DB_DB_H

#include <stddef.h>

#include "db/exec.h"
#include "db/schema.h"
#include "db/table.h"
#include "util/err.h"

enum db_kind {
	DB_SQLITE = 0,
	DB_POSTGRES = 1,
};

#define DB_SCHEMAS_MAX 64  /* schemas named in db_options.schemas */
#define DB_TARGET_MAX 4096 /* bytes of a target (path, URI, key=value) */

struct db_options {
	const char *schemas; /* PostgreSQL: "a,b" -- the schemas introspected and the
	                         search_path queries run with; NULL or "" = the server's
	                         search path.  SQLite ignores it. */
};

struct db;

/* Which backend target names: DB_POSTGRES for a postgres:// or
 * postgresql:// URI, or for a libpq key=value string ("host=... dbname=...")
 * that is not an existing file; DB_SQLITE otherwise. */
enum db_kind db_target_kind(const char *target);

/* Opens target (see above) for gated, read-only queries.  opt may be NULL.
 * Returns CONVBI_OK and *out (close with db_close), or EDB with one line
 * naming the database (never its password) and the fix, EINVAL for an
 * empty or malformed target or a bad schema list, ENOMEM; *out is NULL on
 * failure. */
int db_open(struct db **out, const char *target, const struct db_options *opt, struct err *err);

/* Closes the connection and frees d; accepts NULL. */
void db_close(struct db *d);

/* Reads what the database holds (tables, views, columns, keys, comments,
 * row counts or estimates, sample values) into *out (free with
 * schema_free).  Returns CONVBI_OK, EDB, ENOMEM. */
int db_introspect(struct db *d, struct schema **out, struct err *err);

/* Checks sql through the backend's gate without running it.  Returns
 * CONVBI_OK when it is exactly one read-only SELECT the database accepts,
 * or EREJECTED / ESQL / ETOOBIG / ENOMEM / EDB with the message in err. */
int db_check(struct db *d, const char *sql, struct err *err);

/* Checks sql through the gate and runs it within lim (NULL = defaults).
 * cancel (may be NULL) is polled while the statement runs; a non-zero
 * return stops it.  On success *out holds the rows (free with
 * table_free), marked truncated when a cap left rows out; on failure *out
 * is NULL and the code says why (see above). */
int db_run(struct db *d, const char *sql, const struct exec_limits *lim, int (*cancel)(void *), void *cancel_payload,
           struct table **out, struct err *err);

/* Stops the query d is running now (ECANCELED); safe from any thread and
 * from a signal handler's thread; a no-op when nothing runs. */
void db_cancel(struct db *d);

/* The backend kind. */
enum db_kind db_kind(const struct db *d);

/* The dialect and version for prompts, e.g. "SQLite 3.40.1" or
 * "PostgreSQL 15.18", borrowed from d. */
const char *db_dialect(const struct db *d);

/* The database for messages: the path, or the URI rebuilt without its
 * password ("postgresql://ro@127.0.0.1:5432/shop"), borrowed from d. */
const char *db_describe(const struct db *d);

#endif
