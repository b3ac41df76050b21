/* table.h -- a query result held in memory, and its renderings.
 *
 * A struct table is what exec_run hands back: column names and declared
 * types, then rows of cells stored as text (SQL NULL is a NULL pointer),
 * each with the storage class SQLite reported for it.  Every cell is valid
 * UTF-8 without NUL bytes: invalid bytes become U+FFFD, BLOBs become
 * X'hex' (up to TABLE_BLOB_HEX_MAX bytes) or "<blob N bytes>", and text
 * longer than the caller's cell cap is cut on a character boundary and
 * ends in "…".  Numbers keep SQLite's own text form, except that an
 * infinite or NaN REAL is always "inf", "-inf" or "nan" (SQLite says
 * "Inf"), which JSON renderings write as null (table_nonfinite).
 *
 * The builder functions (table_new .. table_pop_row) are for exec.c and
 * for tests; everyone else reads a finished table, which is immutable and
 * may be read from several threads.  Rendering (table_render.c) never
 * exceeds the output buffer's own cap: it fails with CONVBI_ETOOBIG.
 */
#ifndef CONVBI_DB_TABLE_H
#define CONVBI_DB_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Storage class of a cell, as sqlite3_column_type reports it. */
enum table_type { TABLE_NULL = 0, TABLE_INT, TABLE_REAL, TABLE_TEXT, TABLE_BLOB };

/* Why rows are missing from a truncated table. */
enum table_cut {
	TABLE_CUT_NONE = 0,
	TABLE_CUT_ROWS, /* the row cap was reached */
	TABLE_CUT_BYTES /* the total result byte cap was reached */
};

enum table_mode { TABLE_ALIGNED, TABLE_CSV, TABLE_JSON, TABLE_MARKDOWN, TABLE_LINE };

/* What to do with an ALIGNED table wider than table_view.width. */
enum table_fit { TABLE_FIT_NONE = 0, TABLE_FIT_VERTICAL, TABLE_FIT_CUT };

/* How table_render_view shows a table on a screen. */
struct table_view {
	enum table_mode mode; /* LINE: one "name = value" line per cell,
	                          a blank line between rows (sqlite3's .mode line) */
	int64_t max_rows;     /* < 0 = all */
	size_t width;         /* display columns available; 0 = no limit */
	int fit;              /* enum table_fit, for ALIGNED wider than width */
	int color;            /* ANSI styles: bold header, dim NULL */
	int decimals;         /* numbers lined up on the decimal point */
	int footer;           /* ALIGNED and LINE: the "(N rows)" line */
};

/* BLOBs up to this many bytes are shown as X'..' hex, longer ones as
 * "<blob N bytes>". */
#define TABLE_BLOB_HEX_MAX 16
/* An ALIGNED or MARKDOWN column is never wider than this (display
 * columns); longer cells are cut and end in "…". */
#define TABLE_COLUMN_WIDTH_MAX 60

struct table_column {
	char *name;     /* owned, valid UTF-8 */
	char *decltype; /* owned, "" for expressions */
};

struct table {
	int ncols;
	struct table_column *cols; /* ncols entries, owned */
	int64_t nrows;
	char **cells;         /* nrows * ncols, row-major, owned; NULL = SQL NULL */
	unsigned char *types; /* nrows * ncols enum table_type, owned */
	int64_t alloc_rows;   /* rows allocated in cells/types */
	size_t bytes;         /* total bytes of all cell texts */
	int truncated;        /* 1 = rows were left out; see cut */
	int cut;              /* enum table_cut */
	int64_t total_rows;   /* truncated: the rows the query returned, counted
	                         past the cap (the row cut by the byte cap
	                         included); -1 = not counted */
	int total_partial;    /* counting stopped early (its time bound, an
	                         error): total_rows is a lower bound */
	int64_t cells_cut;    /* cells shortened to the cell cap */
};

/* Creates an empty table with ncols columns (named "" until set).
 * Returns CONVBI_OK and *out (caller frees with table_free), or
 * CONVBI_ENOMEM / CONVBI_EINVAL (ncols < 0) with *out = NULL. */
int table_new(struct table **out, int ncols);

/* Sets a column's name and declared type (decltype may be NULL); both are
 * copied and repaired to valid UTF-8.  Returns CONVBI_OK or ENOMEM. */
int table_set_column(struct table *t, int col, const char *name, const char *decltype);

/* Appends a row of NULL cells.  Returns CONVBI_OK or ENOMEM. */
int table_add_row(struct table *t);

/* Stores one cell of an existing row.  type is an enum table_type; data
 * and len are the value as SQLite gives it (the text form for numbers, the
 * raw bytes for TEXT and BLOB; ignored for NULL).  Text longer than
 * cell_max bytes (0 = no cap) is cut and counted in cells_cut.  Replaces
 * any previous value.  Returns CONVBI_OK or ENOMEM. */
int table_set_cell(struct table *t, int64_t row, int col, int type, const void *data, size_t len, size_t cell_max);

/* 1 when a REAL cell's text is "inf", "-inf" or "nan": JSON has no such
 * number, so JSON renderings write null (and the answer JSON a note). */
int table_nonfinite(const char *cell);
/* 1 when cell is a number as JSON writes one (SQLite's text for an INTEGER
 * or a finite REAL is; "Inf" and "-Inf" are not). */
int table_json_number(const char *cell);

/* The rows the query returned in all: nrows when t is whole; when rows
 * were cut, the count made past the cap, or nrows + 1 (a cap stopped at a
 * further row) when none was made.  *exact (may be NULL) is 1 for a full
 * count, 0 for a lower bound ("at least").  0 for NULL. */
int64_t table_total(const struct table *t, int *exact);

/* Appends one sentence saying that rows were cut, by which cap, and the
 * total ("the query returned 2000 rows; the first 1000 are kept, cut by
 * the row cap"; "at least 5437" when counting stopped); nothing when t is
 * whole.  The same words in every JSON answer.  Returns CONVBI_OK or an
 * error of out. */
int table_cut_sentence(struct buf *out, const struct table *t);

/* Removes the last row (used when it overflowed a byte cap). */
void table_pop_row(struct table *t);

/* Frees the table and everything in it; accepts NULL. */
void table_free(struct table *t);

/* The text of a cell, borrowed from t; NULL for SQL NULL or when row/col
 * is out of range. */
const char *table_cell(const struct table *t, int64_t row, int col);

/* The storage class of a cell (TABLE_NULL when out of range). */
int table_cell_type(const struct table *t, int64_t row, int col);

/* The storage class shared by every non-NULL cell of a column, TABLE_NULL
 * when the column holds only NULLs, -1 when the cells are mixed. */
int table_column_type(const struct table *t, int col);

/* Appends the table to out in the given mode, showing at most max_rows
 * rows (< 0 = all).  ALIGNED is a boxed table like sqlite3's ".mode
 * table" (numbers right-aligned, NULL shown as NULL, control characters
 * escaped, wide characters counted twice) followed by a line saying how
 * many rows were not shown or were cut by a cap; CSV is RFC 4180 (CRLF,
 * header row, NULL as an empty field); JSON is an array of objects keyed
 * by column name (a repeated name gets a suffix ":2", ":3", ...; numbers
 * stay numbers, NULL is null); MARKDOWN is a GitHub pipe table.  CSV, JSON
 * and MARKDOWN carry no footer.  Returns CONVBI_OK, CONVBI_ENOMEM or
 * CONVBI_ETOOBIG when out's cap is reached (out then keeps what it held
 * before the call), CONVBI_EINVAL for an unknown mode. */
int table_render(struct buf *out, const struct table *t, enum table_mode mode, int64_t max_rows);

/* Appends the table to out as view says: the modes of table_render, plus
 * LINE; numbers lined up on their decimal point when view->decimals;
 * when an ALIGNED table is wider than view->width, it is shown as LINE
 * (FIT_VERTICAL, like psql's \x auto) or only the columns that fit are
 * shown, followed by a "…" column (FIT_CUT); LINE values are cut to the
 * width with "…".  Errors as table_render. */
int table_render_view(struct buf *out, const struct table *t, const struct table_view *view);

/* Appends a compact description for conversation history: the columns,
 * the row count (and whether it was capped), then as many of the first
 * rows (at most TABLE_SUMMARY_ROWS, cells shortened) as fit, never adding
 * more than max_bytes bytes to out.  Returns CONVBI_OK or CONVBI_ENOMEM /
 * CONVBI_ETOOBIG from out (out then keeps what it held). */
int table_summary(struct buf *out, const struct table *t, size_t max_bytes);

#define TABLE_SUMMARY_ROWS 5
#define TABLE_SUMMARY_CELL_CHARS 40

#endif
