/* guard.h -- the SQL gate: is this exactly one read-only SELECT?
 *
 * Layers, each able to refuse on its own; SQLite does the real work:
 *   1. size (EXEC_SQL_MAX) and NUL bytes;
 *   2. a PCRE2 first filter that only chooses clearer messages (the
 *      statement kind, common non-SQLite dialect) -- never a verdict;
 *   3. sqlite3_prepare_v2 under the authorizer: SQLITE_SELECT, SQLITE_READ
 *      (except pragma_* and internal virtual tables), SQLITE_RECURSIVE and
 *      SQLITE_FUNCTION for an allow-list of core scalar, aggregate, window,
 *      date/time, math, JSON and full-text functions; everything else --
 *      writes, DDL, temp objects, ATTACH/DETACH, PRAGMA, transactions,
 *      savepoints, ANALYZE, REINDEX, other functions -- is denied;
 *   4. the tail after the statement may hold only whitespace, comments and
 *      semicolons (a second statement is refused);
 *   5. the first keyword is SELECT, WITH or VALUES; not EXPLAIN
 *      (sqlite3_stmt_isexplain); sqlite3_stmt_readonly(); no parameters;
 *      at least one result column.
 * Below the gate, the connection is read-only twice over (mode=ro and
 * PRAGMA query_only; see exec.h).
 *
 * Every refusal is CONVBI_EREJECTED with one reason the model can act on
 * ("the SQL writes to table `orders` (DELETE); only SELECT is allowed").
 * SQL that is a SELECT but does not compile is CONVBI_ESQL with SQLite's
 * message and offset ("near \"FORM\": syntax error at offset 17"), plus a
 * hint when the text looks like another dialect (TOP, ILIKE, NOW(), ...);
 * a statement over a complexity limit (expression depth, compound terms,
 * function arguments, LIKE pattern length) is CONVBI_ETOOBIG.
 */
#ifndef CONVBI_DB_GUARD_H
#define CONVBI_DB_GUARD_H

#include <sqlite3.h>
#include <stddef.h>

#include "util/err.h"

struct exec;

/* Checks sql through the gate without running it.  Returns CONVBI_OK when
 * it is exactly one read-only SELECT that compiles on x's database, or
 * EREJECTED / ESQL / ETOOBIG / ENOMEM with the message in err. */
int guard_check(struct exec *x, const char *sql, struct err *err);

/* Same for len bytes of sql, which may hold NUL bytes (refused) and need
 * not be NUL-terminated. */
int guard_check_len(struct exec *x, const char *sql, size_t len, struct err *err);

/* ---- for exec.c ---------------------------------------------------------- */

/* The gate as guard_check_len, handing back the prepared statement
 * (*out, finalized by the caller) instead of finalizing it.  *out is NULL
 * on failure. */
int guard_prepare(struct exec *x, const char *sql, size_t len, sqlite3_stmt **out, struct err *err);

/* Compiles the PCRE2 filters, snapshots the names in sqlite_schema and
 * installs the authorizer on x->db.  Called once by exec_open after every
 * statement of its own has run.  Returns CONVBI_OK or ENOMEM / EDB. */
int guard_init(struct exec *x, struct err *err);

/* Frees what guard_init allocated (the caller closes the connection). */
void guard_release(struct exec *x);

/* Maps a failed SQLite call on x->db to a code and message: an authorizer
 * refusal to EREJECTED, a complexity or size limit to ETOOBIG, NOMEM to
 * ENOMEM, locking and I/O to EDB, the rest to ESQL.  offset_base is added
 * to sqlite3_error_offset() (-1 = do not show an offset); sql (may be
 * NULL) is searched for dialect hints. */
int guard_sqlite_error(struct exec *x, int src, const char *sql, size_t len, int offset_base, struct err *err);

#endif
