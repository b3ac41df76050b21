/* vindex_sqlite.c -- what the value index reads from a SQLite database
 * (see vindex_sqlite.h): one text column's distinct short values, by the
 * cheapest of three ways.
 *
 *   index   when an index starts with the column (the planner SEARCHes it
 *           for `c > ? ORDER BY c LIMIT 1`), one seek per distinct value:
 *           exact, and as cheap for 7 million rows as for 700;
 *   sample  a big rowid table (a rowid span over VINDEX_SAMPLE_MIN_SPAN):
 *           VINDEX_SAMPLE_WINDOWS windows of VINDEX_SAMPLE_ROWS rowids
 *           spread evenly from the first row to the last, grouped by value
 *           with counts.  When every value seen was seen at least twice
 *           (Good-Turing: the chance that the next row holds a value not
 *           yet seen is about the share of values seen once, here none)
 *           the column is saturated -- a status, a channel, a city -- and
 *           the sample's values are its values; otherwise it is scanned;
 *   scan    SELECT DISTINCT over the whole column, as far as its deadline.
 * Memory stays bounded: the group and the DISTINCT keep their b-trees in
 * SQLite's page cache and temporary files, and at most VINDEX_PER_COLUMN
 * values reach the caller.  No cell is loaded whole: the connection's
 * length limit is VINDEX_CELL_MAX_BYTES while a column is read, so a
 * statement meeting a bigger text cell fails (SQLITE_TOOBIG) before
 * reading it -- length() of text would otherwise load a 600 MB cell to
 * count its characters.  The scan then finds those cells' rowids by
 * incremental BLOB I/O (which reads a cell's size, not the cell) and runs
 * again without them; it hands its values over only once it has run
 * through, so nothing is handed over twice.  A value a sample misses is one the sample's
 * 262,144 rows never held, rare by construction; an index on the column
 * (or `convbi index` on a copy with one) makes it exact.
 */
#include "db/vindex_sqlite.h"

#include <string.h>

#include "convbi/convbi.h"
#include "db/sqltext.h"
#include "util/clock.h"

#define VINDEX_SAMPLE_WINDOWS 64
#define VINDEX_SAMPLE_ROWS 4096
#define VINDEX_SAMPLE_MIN_SPAN ((int64_t)4 * VINDEX_SAMPLE_WINDOWS * VINDEX_SAMPLE_ROWS)
#define VINDEX_SAMPLE_MIN_VALUES 1000   /* text values a saturated sample holds at least */
#define VINDEX_CELL_MAX_BYTES (1 << 20) /* a bigger cell is never loaded */
#define VINDEX_HUGE_MAX 64              /* cells over it a scan goes around */

static int past_deadline(void *p)
{
	return clock_mono_ms() >= *(const int64_t *)p;
}

/* Characters of UTF-8 text s (len bytes). */
static size_t utf8_chars(const char *s, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += ((unsigned char)s[i] & 0xC0) != 0x80;
	return n;
}

/* `SELECT "c" FROM "t"` plus tail. */
static int column_query(struct buf *q, const char *head, const struct schema_table *t, const struct schema_column *c,
                        const char *mid, const char *tail)
{
	int rc = buf_puts(q, head);
	if (!rc)
		rc = sql_quote_ident(q, c->name);
	if (!rc)
		rc = buf_puts(q, mid);
	if (!rc)
		rc = sql_quote_ident(q, t->name);
	return rc ? rc : buf_puts(q, tail);
}

/* 1 when the planner answers st by searching an index. */
static int searches_index(sqlite3 *db, const char *sql)
{
	struct buf q = BUF_INIT;
	sqlite3_stmt *st = NULL;
	int search = 0, other = 0;
	if (!buf_puts(&q, "EXPLAIN QUERY PLAN ") && !buf_puts(&q, sql) &&
	    sqlite3_prepare_v2(db, q.data, -1, &st, NULL) == SQLITE_OK)
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *d = (const char *)sqlite3_column_text(st, 3);
			if (d && !strncmp(d, "SEARCH ", 7) && strstr(d, " INDEX "))
				search = 1;
			else
				other = 1;
		}
	sqlite3_finalize(st);
	buf_release(&q);
	return search && !other;
}

/* One seek per distinct text value, through an index on the column.
 * *used = 0 when no index serves the column. */
static int by_index(sqlite3 *db, const struct schema_table *t, const struct schema_column *c, vindex_value_fn each, void *payload,
                    int *used, int *cut)
{
	struct buf q = BUF_INIT, last = BUF_INIT;
	sqlite3_stmt *st = NULL;
	int rc = column_query(&q, "SELECT ", t, c, " AS v FROM ", " WHERE v > ?1 ORDER BY v LIMIT 1");
	*used = 0;
	if (rc || !searches_index(db, q.data) || sqlite3_prepare_v2(db, q.data, -1, &st, NULL) != SQLITE_OK)
		goto done;
	*used = 1;
	rc = buf_add(&last, "", 1);
	for (int n = 0; !rc && n < VINDEX_PER_COLUMN;) {
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, last.data, (int)last.len - 1, SQLITE_STATIC);
		int src = sqlite3_step(st);
		if (src != SQLITE_ROW) {
			*cut = src != SQLITE_DONE;
			break;
		}
		if (sqlite3_column_type(st, 0) != SQLITE_TEXT)
			break; /* BLOBs sort after text: no text is left */
		const char *v = (const char *)sqlite3_column_text(st, 0);
		size_t len = (size_t)sqlite3_column_bytes(st, 0);
		if (!v)
			break;
		if (utf8_chars(v, len) <= VINDEX_VALUE_MAX_CHARS) {
			rc = each(v, len, payload);
			n++;
		}
		buf_reset(&last);
		if (!rc)
			rc = buf_add(&last, v, len);
		if (!rc)
			rc = buf_putc(&last, '\0');
	}
done:
	sqlite3_finalize(st);
	buf_release(&q);
	buf_release(&last);
	return rc;
}

/* The rowid span of t, or 0 when it has none (a WITHOUT ROWID table, a
 * column named _rowid_, an empty table). */
static int64_t rowid_span(sqlite3 *db, const struct schema_table *t, int64_t *first)
{
	for (int i = 0; i < t->ncols; i++)
		if (!sqlite3_stricmp(t->cols[i].name, "_rowid_"))
			return 0;
	struct buf q = BUF_INIT;
	sqlite3_stmt *st = NULL;
	int64_t span = 0;
	/* two subqueries: min and max together in one would scan the table */
	if (!buf_puts(&q, "SELECT (SELECT min(_rowid_) FROM ") && !sql_quote_ident(&q, t->name) &&
	    !buf_puts(&q, "), (SELECT max(_rowid_) FROM ") && !sql_quote_ident(&q, t->name) && !buf_putc(&q, ')') &&
	    sqlite3_prepare_v2(db, q.data, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_type(st, 0) == SQLITE_INTEGER) {
		*first = sqlite3_column_int64(st, 0);
		span = sqlite3_column_int64(st, 1) - *first + 1;
	}
	sqlite3_finalize(st);
	buf_release(&q);
	return span;
}

/* Keeps v, column 0 of st's row, in vals (NUL-separated, at most
 * VINDEX_PER_COLUMN short values); a value holding a NUL is skipped. */
static int keep_value(struct buf *vals, sqlite3_stmt *st, const char *v)
{
	size_t len = (size_t)sqlite3_column_bytes(st, 0);
	return v && strlen(v) == len ? buf_add(vals, v, len + 1) : CONVBI_OK;
}

/* Hands each value kept in vals to each, in order. */
static int emit_values(const struct buf *vals, vindex_value_fn each, void *payload)
{
	int rc = CONVBI_OK;
	for (size_t off = 0; !rc && off < vals->len; off += strlen(vals->data + off) + 1)
		rc = each(vals->data + off, strlen(vals->data + off), payload);
	return rc;
}

/* The sampled values of a saturated column.  *used = 0 when the table is
 * small or the sample is not saturated (nothing was handed to each). */
static int by_sample(sqlite3 *db, const struct schema_table *t, const struct schema_column *c, vindex_value_fn each,
                     void *payload, int *used)
{
	struct buf q = BUF_INIT, vals = BUF_INIT;
	sqlite3_stmt *st = NULL;
	int64_t first = 0, span = rowid_span(db, t, &first);
	int rc = CONVBI_OK;
	*used = 0;
	if (span <= VINDEX_SAMPLE_MIN_SPAN)
		return CONVBI_OK;
	rc = column_query(&q,
	                  "WITH RECURSIVE w(lo) AS (SELECT ?1 UNION ALL SELECT lo + ?2 FROM w WHERE lo + ?2 < ?3) "
	                  "SELECT v, count(*) FROM w JOIN (SELECT ",
	                  t, c, " AS v, _rowid_ AS r FROM ", "") ||
	     buf_printf(&q,
	                ") ON r >= lo AND r < lo + %d WHERE typeof(v) = 'text' AND length(v) BETWEEN 1 AND %d "
	                "GROUP BY v LIMIT %d",
	                VINDEX_SAMPLE_ROWS, VINDEX_VALUE_MAX_CHARS, VINDEX_PER_COLUMN + 1);
	if (rc || sqlite3_prepare_v2(db, q.data, -1, &st, NULL) != SQLITE_OK)
		goto done;
	sqlite3_bind_int64(st, 1, first);
	sqlite3_bind_int64(st, 2, span / VINDEX_SAMPLE_WINDOWS);
	sqlite3_bind_int64(st, 3, first + span);
	int64_t values = 0, seen = 0;
	int src;
	while (!rc && (src = sqlite3_step(st)) == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(st, 0);
		int64_t n = sqlite3_column_int64(st, 1);
		if (n < 2 || ++values > VINDEX_PER_COLUMN)
			goto done; /* a value seen once: more are unseen */
		seen += n;
		rc = keep_value(&vals, st, v);
	}
	if (rc || src != SQLITE_DONE || seen < VINDEX_SAMPLE_MIN_VALUES)
		goto done;
	*used = 1;
	if (!rc)
		rc = emit_values(&vals, each, payload);
done:
	sqlite3_finalize(st);
	buf_release(&q);
	buf_release(&vals);
	return rc;
}

/* The rowids of t whose c is text over VINDEX_CELL_MAX_BYTES, as
 * ",r1,r2..." into list: each cell's size read by incremental BLOB I/O,
 * never the cell.  CONVBI_OK, EIO when they cannot be listed (no rowid,
 * more than VINDEX_HUGE_MAX, past the deadline) or ENOMEM. */
static int huge_rows(sqlite3 *db, const struct schema_table *t, const struct schema_column *c, int64_t deadline_ms,
                     struct buf *list)
{
	struct buf q = BUF_INIT;
	sqlite3_stmt *st = NULL;
	sqlite3_blob *blob = NULL;
	int n = 0, src, rc = sql_text_rowids(&q, t->name, c->name);
	if (rc)
		goto done;
	rc = CONVBI_EIO;
	if (sqlite3_prepare_v2(db, q.data, -1, &st, NULL) != SQLITE_OK)
		goto done;
	for (int64_t i = 0; (src = sqlite3_step(st)) == SQLITE_ROW; i++) {
		sqlite3_int64 r = sqlite3_column_int64(st, 0);
		if ((blob ? sqlite3_blob_reopen(blob, r) : sqlite3_blob_open(db, "main", t->name, c->name, r, 0, &blob)) !=
		            SQLITE_OK ||
		    ((i & 1023) == 0 && clock_mono_ms() >= deadline_ms))
			goto done;
		if (sqlite3_blob_bytes(blob) > VINDEX_CELL_MAX_BYTES) {
			if (++n > VINDEX_HUGE_MAX)
				goto done;
			if (buf_printf(list, ",%lld", (long long)r)) {
				rc = CONVBI_ENOMEM;
				goto done;
			}
		}
	}
	rc = src == SQLITE_DONE && n ? CONVBI_OK : CONVBI_EIO;
done:
	sqlite3_blob_close(blob);
	sqlite3_finalize(st);
	buf_release(&q);
	return rc;
}

/* SELECT DISTINCT over the whole column, as far as the deadline, around
 * the rowids in `without` (",r1,r2..." or ""). *toobig = 1 when it met a
 * cell over the length limit (nothing is handed over then). */
static int scan_once(sqlite3 *db, const struct schema_table *t, const struct schema_column *c, const char *without,
                     vindex_value_fn each, void *payload, int *cut, int *toobig)
{
	struct buf q = BUF_INIT, vals = BUF_INIT;
	sqlite3_stmt *st = NULL;
	int rc = *without ? column_query(&q, "SELECT DISTINCT v FROM (SELECT ", t, c, " AS v, _rowid_ AS r FROM ", ")")
	                  : buf_puts(&q, "SELECT DISTINCT v FROM ");
	if (!rc && !*without)
		rc = sql_column_values(&q, t->name, c->name);
	if (!rc)
		rc = buf_printf(&q, " WHERE %s%s%stypeof(v) = 'text' AND length(v) BETWEEN 1 AND %d LIMIT %d",
		                *without ? "r NOT IN (" : "", *without ? without + 1 : "", *without ? ") AND " : "",
		                VINDEX_VALUE_MAX_CHARS, VINDEX_PER_COLUMN); /* the rowids first: the cells are not read */
	*toobig = 0;
	if (rc || sqlite3_prepare_v2(db, q.data, -1, &st, NULL) != SQLITE_OK)
		goto done; /* a broken table: nothing to index */
	int src;
	while (!rc && (src = sqlite3_step(st)) == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(st, 0);
		rc = keep_value(&vals, st, v);
	}
	if (!rc && src == SQLITE_TOOBIG) {
		*toobig = 1;
		goto done;
	}
	if (!rc && src != SQLITE_DONE && src != SQLITE_ROW)
		*cut = 1;
	if (!rc)
		rc = emit_values(&vals, each, payload);
done:
	sqlite3_finalize(st);
	buf_release(&q);
	buf_release(&vals);
	return rc;
}

/* SELECT DISTINCT over the whole column, as far as the deadline; around
 * cells too big to read (see the top). */
static int by_scan(sqlite3 *db, const struct schema_table *t, const struct schema_column *c, int64_t deadline_ms,
                   vindex_value_fn each, void *payload, int *cut)
{
	struct buf without = BUF_INIT;
	int toobig = 0, rc = scan_once(db, t, c, "", each, payload, cut, &toobig);
	if (!rc && toobig) {
		rc = huge_rows(db, t, c, deadline_ms, &without);
		if (rc == CONVBI_EIO) /* cannot go around them: the column is left out */
			*cut = 1;
		else if (!rc)
			rc = scan_once(db, t, c, without.data, each, payload, cut, &toobig);
		*cut |= toobig;
		rc = rc == CONVBI_EIO ? CONVBI_OK : rc;
	}
	buf_release(&without);
	return rc;
}

int vindex_sqlite_column(sqlite3 *db, const struct schema_table *t, const struct schema_column *c, int64_t deadline_ms,
                         vindex_value_fn each, void *payload, int *partial, enum vindex_way *way)
{
	int used = 0, cut = 0;
	int limit = sqlite3_limit(db, SQLITE_LIMIT_LENGTH, VINDEX_CELL_MAX_BYTES);
	sqlite3_progress_handler(db, 1000, past_deadline, &deadline_ms);
	int rc = by_index(db, t, c, each, payload, &used, &cut);
	*way = VINDEX_BY_INDEX;
	if (!rc && !used) {
		rc = by_sample(db, t, c, each, payload, &used);
		*way = VINDEX_BY_SAMPLE;
	}
	if (!rc && !used) {
		rc = by_scan(db, t, c, deadline_ms, each, payload, &cut);
		*way = VINDEX_BY_SCAN;
	}
	sqlite3_progress_handler(db, 0, NULL, NULL);
	sqlite3_limit(db, SQLITE_LIMIT_LENGTH, limit);
	*partial |= cut && clock_mono_ms() >= deadline_ms;
	return rc;
}
