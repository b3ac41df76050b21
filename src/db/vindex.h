/* vindex.h -- the value index: which stored text values a question names.
 *
 * A question says "Japan", "volvo" or "Kursk-1"; the SQL must write the
 * value exactly as stored.  The value index holds, per database, the
 * distinct short text values of its text columns (keys, long free text and
 * values over VINDEX_VALUE_MAX_CHARS left out; at most VINDEX_PER_COLUMN
 * per column) in a cache database of its own under
 * $XDG_CACHE_HOME/convbi/ (else ~/.cache/convbi/), one file per database
 * path, with an FTS5 trigram index over them.  The cache records the
 * database's path, size, mtime and schema cookie; any change rebuilds it.
 * The user's database is only ever opened read-only (ro.h); the cache is
 * written to a temporary file and renamed into place, so a reader never
 * sees half an index and a crash leaves the old one.
 *
 * A column is read the cheapest way (vindex_sqlite.c): through an index on
 * it, from a saturated sample of a big table, or by a DISTINCT scan.
 * Building is bounded: each column's read stops after VINDEX_COLUMN_MS,
 * the whole build after VINDEX_BUILD_MS (what was read so far is kept and
 * the index is marked partial), and the source connection's page cache is
 * capped at VINDEX_CACHE_KIB, so memory does not grow with the database.
 * A progress callback hears after each column.
 *
 * A PostgreSQL database gets the same index, read through db.h (the gate,
 * a read-only transaction, a statement deadline per column; see
 * vindex_pg.h) and cached in the same directory as
 * `pg-<dbname>-<fnv64>.vindex`, the hash taken over the target without its
 * password (db_describe) and the schema list.  It records a fingerprint
 * of the introspected schema (tables, columns, types), the statistics'
 * change counter (pg_stat_user_tables: rows inserted, updated and deleted)
 * and the live rows, and is rebuilt when the fingerprint changes, when
 * more than a tenth of the rows changed since the build, when the
 * counters went back (a statistics reset) or after VINDEX_PG_MAX_AGE_S.
 *
 * vindex_match splits a question into word spans (1..VINDEX_SPAN_WORDS
 * words, plus anything in quotes) and looks each up: exact and
 * case-insensitive first (also without a plural "s"), then by trigram
 * containment (the stored value contains the span, for spans of four or
 * more characters), then, for single words that found nothing, fuzzily
 * (trigram overlap of at least VINDEX_FUZZY_MIN).  The result is a small
 * ranked list of (table, column, value) for schema_render_grounded.
 */
#ifndef CONVBI_DB_VINDEX_H
#define CONVBI_DB_VINDEX_H

#include <stdint.h>

#include "db/db.h"
#include "db/schema.h"
#include "util/buf.h"
#include "util/err.h"

#define VINDEX_FORMAT 1           /* bump when the cache's layout changes */
#define VINDEX_VALUE_MAX_CHARS 64 /* longer values are not indexed */
#define VINDEX_PER_COLUMN 50000   /* distinct values kept per column */
#define VINDEX_COLUMN_MS 3000     /* time to scan one column */
#define VINDEX_BUILD_MS 60000     /* time for the whole build */
#define VINDEX_CACHE_KIB 16384    /* page cache of the source connection */
#define VINDEX_SPAN_WORDS 4       /* longest question span looked up */
#define VINDEX_MATCH_MAX 24       /* values returned per question */
#define VINDEX_MATCH_PER_COLUMN 4 /* values returned per column */
#define VINDEX_FUZZY_MIN 0.5      /* trigram overlap a fuzzy match needs */
#define VINDEX_PG_MAX_AGE_S 86400 /* a PostgreSQL index is rebuilt after this long */

struct vindex;

/* What a build has done so far, for progress reports. */
struct vindex_progress {
	const char *table;   /* the table just read */
	const char *column;  /* the column just read */
	size_t columns_done; /* columns read so far */
	size_t columns;      /* columns to read in all */
	int64_t values;      /* values indexed so far */
	int64_t elapsed_ms;
};
typedef void (*vindex_progress_fn)(const struct vindex_progress *p, void *payload);

/* Hands one value (len bytes) a source read to the index being built; a
 * non-zero return stops the column with that code. */
typedef int (*vindex_value_fn)(const char *v, size_t len, void *payload);

/* What an open index holds. */
struct vindex_info {
	char path[4096];  /* the cache file */
	int64_t values;   /* values indexed */
	int64_t columns;  /* columns indexed */
	int64_t build_ms; /* how long the build took (0 = reused) */
	int64_t seeked;   /* columns read through an index on them (SQLite) */
	int64_t sampled;  /* columns read from a sample of a big table: a saturated
	                     one (SQLite), pg_stats and TABLESAMPLE (PostgreSQL) */
	int partial;      /* 1 = a time bound cut the build */
	int built;        /* 1 = built by this open, 0 = reused */
};

/* Appends the cache file's path for the database at db_path (made
 * absolute) to out.  Returns CONVBI_OK, EIO when no cache directory can be
 * named (neither $XDG_CACHE_HOME nor $HOME is set), ENOMEM/ETOOBIG. */
int vindex_cache_path(struct buf *out, const char *db_path, struct err *err);

/* Opens the value index of db_path (whose loaded schema is s), building
 * it when it is missing or stale (path, size, mtime or schema cookie
 * changed) and `build` is non-zero (2: rebuild even when fresh); with
 * build == 0 a missing or stale index is CONVBI_EIO.  *out (free with vindex_close) is thread-safe.
 * Errors: EDB (the database cannot be read), EIO (the cache cannot be
 * written: the message names the directory and the fix), ENOMEM; *out is
 * NULL on failure.  The user's database is never written. */
int vindex_open(struct vindex **out, const char *db_path, const struct schema *s, int build, vindex_progress_fn progress,
                void *payload, struct err *err);

/* vindex_open for any target db_open takes (opt as there, may be NULL):
 * a SQLite file as above, or a PostgreSQL database (see the top), which
 * is connected to for the key and the build and closed again.  Messages
 * name a PostgreSQL database without its password.  Errors as
 * vindex_open, and EDB when the database cannot be reached. */
int vindex_open_target(struct vindex **out, const char *target, const struct db_options *opt, const struct schema *s, int build,
                       vindex_progress_fn progress, void *payload, struct err *err);

/* Closes v; accepts NULL. */
void vindex_close(struct vindex *v);

/* What v holds (borrowed from v). */
const struct vindex_info *vindex_info(const struct vindex *v);

/* Finds the stored values question names (see above; a single word naming
 * a table or column of s is only matched exactly) and appends them to
 * out, best first, at most VINDEX_MATCH_MAX and VINDEX_MATCH_PER_COLUMN per
 * column.  Returns CONVBI_OK, ENOMEM, or EDB when the cache cannot be read
 * (out then holds what was found before). */
int vindex_match(struct vindex *v, const struct schema *s, const char *question, struct ground *out, struct err *err);

#endif
