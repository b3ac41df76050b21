/* sqlgen.h -- hostile SELECTs made from a stream of choices: random
 * combinations of SQLite's expensive functions (json_patch, GLOB/LIKE,
 * replace, printf, group_concat, json builders, zeroblob/randomblob, ...),
 * value sizes from 0 to 1e9 bytes, and the clauses that sort, group or
 * spill (ORDER BY, GROUP BY, DISTINCT, windows, IN (subquery), recursive
 * CTEs, cross joins), over the tables of a fixture database made to be
 * expensive: a 16 MB cell, 16 MB of rows, two 100,000-key JSON objects, a
 * VIRTUAL generated column with a costly expression, a 32 MB BLOB and a
 * chain of 3,000 views.
 *
 * The choices come either from a seeded PRNG (the hostile test runs
 * generated statements for a bounded time and prints the seed of any
 * failure) or from bytes (the libFuzzer target, which thereby explores the
 * grammar instead of random bytes); past the last byte every choice is 0,
 * so any input makes a statement.  The same choices always make the same
 * SQL.  No dependency on CMocka: the fuzz targets compile it too.
 */
#ifndef CONVBI_TESTS_SQLGEN_H
#define CONVBI_TESTS_SQLGEN_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#define SQLGEN_SQL_MAX 65536 /* bytes of one statement, NUL included */
#define SQLGEN_VIEWS 3000    /* length of the fixture's view chain */

struct sqlgen {
	const uint8_t *bytes; /* choices, or NULL: the PRNG */
	size_t len, pos;
	uint64_t state; /* xorshift64* state */
};

/* Choices from a PRNG seeded with seed (any value). */
void sqlgen_seed(struct sqlgen *g, uint64_t seed);

/* Choices from bytes (borrowed; must outlive g's use). */
void sqlgen_bytes(struct sqlgen *g, const uint8_t *bytes, size_t len);

/* Writes one SELECT into out (SQLGEN_SQL_MAX bytes), NUL-terminated. */
void sqlgen_select(struct sqlgen *g, char out[SQLGEN_SQL_MAX]);

/* Creates the fixture's tables and views in db (a fresh, writable
 * database).  Returns SQLITE_OK or SQLite's error code. */
int sqlgen_fixture(sqlite3 *db);

#endif
