/* views.h -- how many table references a name expands to through views.
 *
 * SQLite expands every view a statement names, and the views they name,
 * while it prepares the statement -- outside the reach of the progress
 * handler, and (for a chain of views) in time quadratic in the chain's
 * length: 3,000 chained views took 24 s to prepare.  A views map reads
 * sqlite_schema once and gives each view a weight: the number of table
 * references it expands to (each table named counts 1, each view named
 * counts its own weight; a chain of N views weighs N+1, a view naming
 * another twice doubles).  The gate refuses a statement whose names weigh
 * more than EXEC_VIEW_REFS_MAX before SQLite expands anything, and the
 * schema loader skips the columns of such views.
 *
 * Names are found by a lexical scan of the SQL (strings and comments
 * skipped; bare, "double", [bracket] and `back` quoted identifiers), so a
 * column or alias spelt like a view counts too: the weight is an upper
 * bound, never less than what SQLite will expand.
 */
#ifndef CONVBI_DB_VIEWS_H
#define CONVBI_DB_VIEWS_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#define VIEWS_WEIGHT_CAP ((int64_t)1 << 40) /* weights saturate here */

struct views;

/* Reads the views and tables of db's main schema and weighs every view.
 * Returns SQLITE_OK and *out (free with views_free), or SQLite's error
 * code (*out NULL). */
int views_load(struct views **out, sqlite3 *db);

/* Frees v; accepts NULL. */
void views_free(struct views *v);

/* The weight of the object called name (ASCII case-insensitive): a
 * view's weight, 1 for a table, 0 for an unknown name. */
int64_t views_weight(const struct views *v, const char *name);

/* The total weight of the names in sql[0..len), its common table
 * expressions weighed like views (SQLite expands them while preparing
 * too: a WITH chain naming each step twice doubles at every step), each
 * a bound from above.  *heaviest_weight (may be NULL) receives the largest
 * weight of one view or CTE named (0 when only tables are), *heaviest (may
 * be NULL) that view's name (borrowed from v), or NULL when it is a CTE. */
int64_t views_sql_weight(const struct views *v, const char *sql, size_t len, const char **heaviest,
                         int64_t *heaviest_weight); /* -1: out of memory */

#endif
