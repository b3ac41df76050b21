/* vindex_pg.h -- the value index's reads from a PostgreSQL database,
 * private to src/db (vindex.c builds the cache from them).  Every query
 * goes through db_run (gate, read-only transaction, deadline, caps); the
 * database is never written.
 */
#ifndef CONVBI_DB_VINDEX_PG_H
#define CONVBI_DB_VINDEX_PG_H

#include <stdint.h>

#include "db/db.h"
#include "db/vindex.h"

#define VINDEX_PG_SCAN_ROWS 200000         /* rows one column's DISTINCT reads at most (sorting them: ~0.3 s) */
#define VINDEX_PG_RESULT_BYTES (16u << 20) /* bytes of one column's values */

/* Reads column c of table t: its distinct short text values from one
 * bounded statement (timeout_ms): the whole column of a table of at most
 * VINDEX_PG_SCAN_ROWS rows, else pg_stats' most common values and a
 * TABLESAMPLE of about that many rows; the most common values alone when
 * that fails (*partial set when it ran out of time; *sampled set when the
 * sample was read).  A
 * column that cannot be read gives nothing.  Returns CONVBI_OK, ENOMEM,
 * or each's code. */
int vindex_pg_column(struct db *d, const struct schema_table *t, const struct schema_column *c, int timeout_ms,
                     vindex_value_fn each, void *payload, int *partial, int *sampled, struct err *err);

/* The rows inserted, updated and deleted in the user tables of the
 * schemas s holds since the statistics were last reset (*changes), and
 * their live rows (*rows), from pg_stat_user_tables.  Returns CONVBI_OK,
 * EDB or ENOMEM. */
int vindex_pg_changes(struct db *d, const struct schema *s, int64_t *changes, int64_t *rows, struct err *err);

#endif
