/* vindex_sqlite.h -- the value index's reads from a SQLite database,
 * private to src/db (vindex.c builds the cache from them; the ways are
 * described atop vindex_sqlite.c).  The database is only read, on the
 * read-only connection the caller opened.
 */
#ifndef CONVBI_DB_VINDEX_SQLITE_H
#define CONVBI_DB_VINDEX_SQLITE_H

#include <sqlite3.h>
#include <stdint.h>

#include "db/vindex.h"

enum vindex_way { VINDEX_BY_INDEX = 1, VINDEX_BY_SAMPLE, VINDEX_BY_SCAN };

/* Hands each distinct text value of column c of table t of at most
 * VINDEX_VALUE_MAX_CHARS characters (at most VINDEX_PER_COLUMN of them) to
 * each, reading until deadline_ms (clock_mono_ms); a read cut by the
 * deadline keeps what it gave and sets *partial; *way says how the values
 * were read.  A table that cannot be read gives nothing.  Returns CONVBI_OK, ENOMEM or each's code. */
int vindex_sqlite_column(sqlite3 *db, const struct schema_table *t, const struct schema_column *c, int64_t deadline_ms,
                         vindex_value_fn each, void *payload, int *partial, enum vindex_way *way);

#endif
