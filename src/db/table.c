/* table.c -- building and reading a struct table (see table.h).
 *
 * Cells live in one row-major array of strings plus a parallel array of
 * storage classes, grown by doubling.  Every cell is converted to safe
 * text when it is stored (table_set_cell), so readers and renderers never
 * meet invalid UTF-8, NUL bytes or raw BLOBs.  Rendering lives in
 * table_render.c.
 */
#include "db/table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convbi/convbi.h"
#include "db/text.h"
#include "util/alloc.h"

static const char ELLIPSIS[] = "\xE2\x80\xA6"; /* U+2026, 3 bytes */

int table_new(struct table **out, int ncols)
{
	*out = NULL;
	if (ncols < 0)
		return CONVBI_EINVAL;
	struct table *t = xcalloc(1, sizeof *t);
	if (!t)
		return CONVBI_ENOMEM;
	t->ncols = ncols;
	t->total_rows = -1;
	t->cols = xcalloc((size_t)ncols, sizeof *t->cols);
	if (!t->cols) {
		free(t);
		return CONVBI_ENOMEM;
	}
	for (int c = 0; c < ncols; c++) {
		t->cols[c].name = xstrdup("");
		t->cols[c].decltype = xstrdup("");
		if (!t->cols[c].name || !t->cols[c].decltype) {
			table_free(t);
			return CONVBI_ENOMEM;
		}
	}
	*out = t;
	return CONVBI_OK;
}

/* A repaired copy of s, or NULL on ENOMEM. */
static char *utf8_dup(const char *s)
{
	struct buf b = BUF_INIT;
	if (!s)
		s = "";
	if (text_add_utf8(&b, s, strlen(s)))
		return NULL;
	return buf_take(&b);
}

int table_set_column(struct table *t, int col, const char *name, const char *decltype)
{
	char *n = utf8_dup(name), *d = utf8_dup(decltype);
	if (!n || !d) {
		free(n);
		free(d);
		return CONVBI_ENOMEM;
	}
	free(t->cols[col].name);
	free(t->cols[col].decltype);
	t->cols[col].name = n;
	t->cols[col].decltype = d;
	return CONVBI_OK;
}

int table_add_row(struct table *t)
{
	size_t nc = (size_t)t->ncols;
	if (t->nrows == t->alloc_rows) {
		int64_t want = t->alloc_rows ? t->alloc_rows * 2 : 16;
		size_t cells = (size_t)want * (nc ? nc : 1);
		char **c = xrealloc(t->cells, cells * sizeof *c);
		if (!c)
			return CONVBI_ENOMEM;
		t->cells = c;
		unsigned char *ty = xrealloc(t->types, cells);
		if (!ty)
			return CONVBI_ENOMEM;
		t->types = ty;
		t->alloc_rows = want;
	}
	size_t base = (size_t)t->nrows * nc;
	for (size_t c = 0; c < nc; c++) {
		t->cells[base + c] = NULL;
		t->types[base + c] = TABLE_NULL;
	}
	t->nrows++;
	return CONVBI_OK;
}

/* Renders a BLOB as X'hex' (small) or "<blob N bytes>". */
static int blob_text(struct buf *b, const unsigned char *p, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	if (len > TABLE_BLOB_HEX_MAX)
		return buf_printf(b, "<blob %zu bytes>", len);
	int rc = buf_puts(b, "X'");
	for (size_t i = 0; !rc && i < len; i++) {
		char h[2] = {hex[p[i] >> 4], hex[p[i] & 15]};
		rc = buf_add(b, h, 2);
	}
	return rc ? rc : buf_putc(b, '\'');
}

/* SQLite writes an infinite REAL as "Inf" / "-Inf" (and never keeps a
 * NaN, but a test or a future version might): one spelling, "inf",
 * "-inf", "nan", for every rendering to recognise (table_nonfinite). */
static const char *nonfinite_spelling(const char *data, size_t len)
{
	static const struct {
		const char *sqlite, *ours;
	} forms[] = {
	        {"Inf", "inf"},  {"+Inf", "inf"}, {"-Inf", "-inf"}, {"NaN", "nan"},
	        {"-NaN", "nan"}, {"inf", "inf"},  {"-inf", "-inf"}, {"nan", "nan"},
	};
	for (size_t i = 0; data && i < sizeof forms / sizeof forms[0]; i++)
		if (len == strlen(forms[i].sqlite) && !memcmp(data, forms[i].sqlite, len))
			return forms[i].ours;
	return NULL;
}

int table_nonfinite(const char *cell)
{
	return cell && (!strcmp(cell, "inf") || !strcmp(cell, "-inf") || !strcmp(cell, "nan"));
}

int table_set_cell(struct table *t, int64_t row, int col, int type, const void *data, size_t len, size_t cell_max)
{
	size_t at = (size_t)row * (size_t)t->ncols + (size_t)col;
	struct buf b = BUF_INIT;
	char *text = NULL;
	int rc = CONVBI_OK;

	if (type != TABLE_NULL) {
		if (!data)
			len = 0;
		const char *nf = type == TABLE_REAL ? nonfinite_spelling(data, len) : NULL;
		if (nf) {
			data = nf;
			len = strlen(nf);
		}
		if (type == TABLE_BLOB)
			rc = blob_text(&b, data, len);
		else
			rc = text_add_utf8(&b, len ? data : "", len);
		if (!rc && cell_max && b.len > cell_max) {
			/* room for "…" when the cap allows it, else a bare cut */
			size_t keep = text_cut(b.data, b.len, cell_max > 3 ? cell_max - 3 : cell_max);
			b.len = keep;
			b.data[keep] = '\0';
			if (cell_max > 3)
				rc = buf_add(&b, ELLIPSIS, 3);
			t->cells_cut++;
		}
		if (!rc) {
			text = buf_take(&b);
			if (!text)
				rc = CONVBI_ENOMEM;
		}
		buf_release(&b);
		if (rc)
			return rc;
	}
	if (t->cells[at])
		t->bytes -= strlen(t->cells[at]);
	free(t->cells[at]);
	t->cells[at] = text;
	t->types[at] = (unsigned char)(text ? type : TABLE_NULL);
	if (text)
		t->bytes += strlen(text);
	return CONVBI_OK;
}

int64_t table_total(const struct table *t, int *exact)
{
	int whole = !t || !t->truncated;
	int64_t n = !t ? 0 : whole ? t->nrows : t->total_rows > t->nrows ? t->total_rows : t->nrows + 1;
	if (exact)
		*exact = whole || (t->total_rows > t->nrows && !t->total_partial);
	return n;
}

void table_pop_row(struct table *t)
{
	if (!t || t->nrows == 0)
		return;
	t->nrows--;
	size_t base = (size_t)t->nrows * (size_t)t->ncols;
	for (int c = 0; c < t->ncols; c++) {
		char *s = t->cells[base + (size_t)c];
		if (s)
			t->bytes -= strlen(s);
		free(s);
	}
}

void table_free(struct table *t)
{
	if (!t)
		return;
	size_t n = (size_t)t->nrows * (size_t)t->ncols;
	for (size_t i = 0; i < n; i++)
		free(t->cells[i]);
	for (int c = 0; c < t->ncols; c++) {
		free(t->cols[c].name);
		free(t->cols[c].decltype);
	}
	free(t->cells);
	free(t->types);
	free(t->cols);
	free(t);
}

const char *table_cell(const struct table *t, int64_t row, int col)
{
	if (!t || row < 0 || row >= t->nrows || col < 0 || col >= t->ncols)
		return NULL;
	return t->cells[(size_t)row * (size_t)t->ncols + (size_t)col];
}

int table_cell_type(const struct table *t, int64_t row, int col)
{
	if (!t || row < 0 || row >= t->nrows || col < 0 || col >= t->ncols)
		return TABLE_NULL;
	return t->types[(size_t)row * (size_t)t->ncols + (size_t)col];
}

int table_column_type(const struct table *t, int col)
{
	int seen = TABLE_NULL;
	for (int64_t r = 0; r < t->nrows; r++) {
		int ty = table_cell_type(t, r, col);
		if (ty == TABLE_NULL)
			continue;
		if (seen == TABLE_NULL)
			seen = ty;
		else if (seen != ty)
			return -1;
	}
	return seen;
}
