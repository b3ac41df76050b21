/* pg_gate.h -- the parse layer of the PostgreSQL gate (see pg_gate.c).
 *
 * Pure: no connection, no server.  The layers after it (the extended
 * protocol, BEGIN READ ONLY, default_transaction_read_only, timeouts,
 * cancellation) live in pg.c.
 */
#ifndef CONVBI_DB_PG_GATE_H
#define CONVBI_DB_PG_GATE_H

#include <stddef.h>

#include "util/err.h"

/* Checks len bytes of sql (NUL-terminated at len) with PostgreSQL's
 * parser: exactly one SELECT / WITH ... SELECT, no INTO, no locking
 * clause, no data-modifying CTE, every function on the allow-list, no
 * relation of pg_catalog, information_schema or another system schema
 * (catalog_ok = 1 lets one of our own statistics reads through: never for
 * model or caller SQL).
 * Returns CONVBI_OK, EREJECTED (the message names what to change), ESQL
 * (a syntax error, with PostgreSQL's message and the character
 * position), ETOOBIG (over EXEC_SQL_MAX or nested too deep). */
int pg_gate_check(const char *sql, size_t len, int catalog_ok, struct err *err);

#endif
