/* sqltext.h -- lexical pieces of SQL text written once: where a comment
 * ends (the gate, guard.c, and the view weigher, views.c), and quoted
 * identifiers for the queries that schema.c and vindex.c build.
 */
#ifndef CONVBI_DB_SQLTEXT_H
#define CONVBI_DB_SQLTEXT_H

#include <stddef.h>

#include "util/buf.h"

/* When s[i..len) starts a comment (-- to the end of the line, or a block
 * comment; an unterminated one runs to len), the index just past it;
 * else i. */
size_t sql_comment_end(const char *s, size_t len, size_t i);

/* Appends name as a double-quoted SQL identifier ("" for a quote inside).
 * Returns CONVBI_OK or the buffer's error. */
int sql_quote_ident(struct buf *b, const char *name);

/* Appends `(SELECT "column" AS v FROM "table")`: a column's values as v,
 * for a query to filter.  Returns CONVBI_OK or the buffer's error. */
int sql_column_values(struct buf *b, const char *table, const char *column);

/* Appends `SELECT rowid FROM "table" WHERE typeof("column") = 'text'`:
 * the rows whose column holds text, found without reading any cell
 * (typeof() of a stored column does not load it).  Returns CONVBI_OK or
 * the buffer's error. */
int sql_text_rowids(struct buf *b, const char *table, const char *column);

#endif
