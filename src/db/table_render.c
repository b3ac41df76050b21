/* table_render.c -- a struct table as aligned text, CSV, JSON or Markdown,
 * and its compact summary for conversation history (see table.h).
 *
 * ALIGNED and MARKDOWN share one layout pass: every visible cell is turned
 * into its display form (control characters, C1 included, and bytes that
 * are not UTF-8 escaped as \n, \t, \xHH; cut
 * to TABLE_COLUMN_WIDTH_MAX display columns with "…") and measured with
 * text_width, then written padded.  Numeric columns (every non-NULL cell
 * an INTEGER or REAL) are right-aligned, headers centred as sqlite3 does.
 * All output is built in a scratch buffer capped at the caller's remaining
 * room and appended in one piece, so a failure leaves `out` unchanged.
 */
#include <stdlib.h>
#include <string.h>

#include "convbi/convbi.h"
#include "db/table.h"
#include "db/text.h"
#include "util/alloc.h"
#include "util/utf8.h"

static const char ELLIPSIS[] = "\xE2\x80\xA6";

#define SGR_BOLD "\033[1m"
#define SGR_DIM "\033[2m"
#define SGR_OFF "\033[0m"

/* ---- display form -------------------------------------------------------- */

/* The next display unit of s at byte i: an escape (written to esc, elen
 * bytes) or one character; sets its byte length *n and width *cw. */
static void next_unit(const unsigned char *p, size_t i, size_t len, int pipe, char esc[5], size_t *elen, size_t *n, size_t *cw)
{
	static const char hex[] = "0123456789abcdef";
	uint32_t cp;
	*elen = 0;
	*n = 1;
	if (p[i] < 0x20 || p[i] == 0x7f) {
		esc[0] = '\\';
		if (p[i] == '\n')
			esc[1] = 'n', *elen = 2;
		else if (p[i] == '\r')
			esc[1] = 'r', *elen = 2;
		else if (p[i] == '\t')
			esc[1] = 't', *elen = 2;
		else
			esc[1] = 'x', esc[2] = hex[p[i] >> 4], esc[3] = hex[p[i] & 15], *elen = 4;
		*cw = *elen;
	} else if (pipe && p[i] == '|') {
		esc[0] = '\\', esc[1] = '|', *elen = 2, *cw = 2;
	} else {
		*n = utf8_decode(p + i, len - i, &cp);
		if (!*n || (cp >= 0x80 && cp < 0xA0)) {
			/* a byte that is not UTF-8, or a C1 control (0x9b is CSI to a
			 * terminal): shown as \xHH, as the CLI shows them in text */
			unsigned v = *n ? cp : p[i];
			*n = *n ? *n : 1;
			esc[0] = '\\', esc[1] = 'x', esc[2] = hex[v >> 4], esc[3] = hex[v & 15], *elen = 4;
			*cw = 4;
		} else {
			*cw = (size_t)text_cp_width(cp);
		}
	}
}

/* Appends the display form of s to b: control characters (C0, DEL, C1)
 * and bytes that are not UTF-8 escaped as \n, \r, \t or \xHH, '|' escaped when `pipe`, and cut with "…" so that it is
 * at most max_width columns wide (0 = no cut).  *width gets the width
 * written. */
static int display_add(struct buf *b, const char *s, size_t max_width, int pipe, size_t *width)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s), total = 0, w = 0, elen, n, cw;
	char esc[5];
	int rc = CONVBI_OK;

	for (size_t i = 0; i < len; i += n) { /* pass 1: the full width */
		next_unit(p, i, len, pipe, esc, &elen, &n, &cw);
		total += cw;
	}
	int cut = max_width && total > max_width;
	for (size_t i = 0; i < len && !rc; i += n) {
		next_unit(p, i, len, pipe, esc, &elen, &n, &cw);
		if (cut && w + cw > max_width - 1)
			break;
		rc = elen ? buf_add(b, esc, elen) : buf_add(b, s + i, n);
		w += cw;
	}
	if (!rc && cut) {
		rc = buf_add(b, ELLIPSIS, 3);
		w++;
	}
	*width = w;
	return rc;
}

/* The width display_add would give s, through *w. */
static int display_width(const char *s, int pipe, size_t *w)
{
	struct buf scratch = BUF_INIT;
	int rc = display_add(&scratch, s, TABLE_COLUMN_WIDTH_MAX, pipe, w);
	buf_release(&scratch);
	return rc;
}

static int pad(struct buf *b, size_t n)
{
	int rc = CONVBI_OK;
	while (n-- && !rc)
		rc = buf_putc(b, ' ');
	return rc;
}

static int repeat(struct buf *b, char c, size_t n)
{
	int rc = CONVBI_OK;
	while (n-- && !rc)
		rc = buf_putc(b, c);
	return rc;
}

static int is_numeric_column(const struct table *t, int col)
{
	int seen = 0;
	for (int64_t r = 0; r < t->nrows; r++) {
		int ty = table_cell_type(t, r, col);
		if (ty == TABLE_NULL)
			continue;
		if (ty != TABLE_INT && ty != TABLE_REAL)
			return 0;
		seen = 1;
	}
	return seen;
}

/* One padded cell: align 'l', 'r' or 'c'; sgr (may be NULL) styles the
 * text but not the padding, and counts for no width. */
static int put_cell(struct buf *b, const char *s, size_t width, char align, int pipe, const char *sgr)
{
	struct buf cell = BUF_INIT;
	size_t w = 0;
	int rc = display_add(&cell, s, TABLE_COLUMN_WIDTH_MAX, pipe, &w);
	size_t gap = width > w ? width - w : 0;
	size_t left = align == 'r' ? gap : align == 'c' ? gap / 2 : 0;
	if (!rc)
		rc = pad(b, left);
	if (!rc && sgr)
		rc = buf_puts(b, sgr);
	if (!rc)
		rc = buf_add(b, buf_str(&cell), cell.len);
	if (!rc && sgr)
		rc = buf_puts(b, SGR_OFF);
	if (!rc)
		rc = pad(b, gap - left);
	buf_release(&cell);
	return rc;
}

/* ---- ALIGNED and MARKDOWN ----------------------------------------------- */

static const char *cap_name(const struct table *t)
{
	return t->cut == TABLE_CUT_BYTES ? "result size cap" : "row cap";
}

int table_cut_sentence(struct buf *out, const struct table *t)
{
	if (!t || !t->truncated)
		return CONVBI_OK;
	int exact;
	int64_t total = table_total(t, &exact);
	return buf_printf(out, "the query returned %s%lld rows; the first %lld are kept, cut by the %s", exact ? "" : "at least ",
	                  (long long)total, (long long)t->nrows, cap_name(t));
}

static int footer(struct buf *b, const struct table *t, int64_t shown, int hidden_cols)
{
	int rc;
	if (shown < t->nrows)
		rc = buf_printf(b, "(showing %lld of %lld rows", (long long)shown, (long long)t->nrows);
	else
		rc = buf_printf(b, "(%lld row%s", (long long)t->nrows, t->nrows == 1 ? "" : "s");
	if (!rc && t->truncated && t->total_rows > t->nrows)
		rc = buf_printf(b, "; the query returned %s%lld, cut by the %s", t->total_partial ? "at least " : "",
		                (long long)t->total_rows, cap_name(t));
	else if (!rc && t->truncated)
		rc = buf_puts(b, t->cut == TABLE_CUT_BYTES ? "; more were left out by the result size cap"
		                                           : "; more were left out by the row cap");
	if (!rc && hidden_cols)
		rc = buf_printf(b, "; %d more column%s not shown", hidden_cols, hidden_cols == 1 ? "" : "s");
	return rc ? rc : buf_puts(b, ")\n");
}

/* Bytes from the decimal point to the end of a plain decimal number ("12.50"
 * -> 3), 0 for integers and for exponents, inf and nan. */
static size_t frac_len(const char *s)
{
	if (!s || strpbrk(s, "eEnN"))
		return 0;
	const char *dot = strchr(s, '.');
	return dot ? strlen(dot) : 0;
}

/* One layout of a grid: the widths and alignment of the columns shown. */
struct grid {
	const struct table *t;
	const struct table_view *v;
	int64_t shown;
	int markdown;
	int ncols;     /* columns shown; with a cut, a "…" column follows */
	size_t *width; /* owned: display columns per column */
	size_t *frac;  /* owned: the widest fraction of a numeric column */
	char *align;   /* owned: 'l' or 'r' */
};

/* A cell's text as shown: "NULL", or a number padded on the right so
 * that its decimal point lines up with the column's (tmp holds it). */
static int cell_text(const struct grid *g, int64_t r, int c, struct buf *tmp, const char **out)
{
	const char *s = table_cell(g->t, r, c);
	*out = s ? s : "NULL";
	if (!s || !g->frac[c])
		return CONVBI_OK;
	buf_reset(tmp);
	int rc = buf_puts(tmp, s);
	if (!rc)
		rc = pad(tmp, g->frac[c] - frac_len(s));
	if (!rc)
		*out = buf_str(tmp);
	return rc;
}

static int grid_layout(struct grid *g)
{
	const struct table *t = g->t;
	struct buf tmp = BUF_INIT;
	int rc = CONVBI_OK;
	g->width = xcalloc((size_t)t->ncols + 1, sizeof *g->width);
	g->frac = xcalloc((size_t)t->ncols + 1, sizeof *g->frac);
	g->align = xcalloc((size_t)t->ncols + 1, 1);
	if (!g->width || !g->frac || !g->align)
		return CONVBI_ENOMEM;
	g->ncols = t->ncols;
	for (int c = 0; c < t->ncols && !rc; c++) {
		g->align[c] = is_numeric_column(t, c) ? 'r' : 'l';
		for (int64_t r = 0; g->v->decimals && g->align[c] == 'r' && r < g->shown; r++) {
			size_t f = frac_len(table_cell(t, r, c));
			if (f > g->frac[c])
				g->frac[c] = f;
		}
		rc = display_width(t->cols[c].name, g->markdown, &g->width[c]);
		for (int64_t r = 0; r < g->shown && !rc; r++) {
			const char *s;
			size_t w = 0;
			rc = cell_text(g, r, c, &tmp, &s);
			if (!rc)
				rc = display_width(s, g->markdown, &w);
			if (w > g->width[c])
				g->width[c] = w;
		}
		if (g->markdown && g->width[c] < 3)
			g->width[c] = 3; /* "---" is the shortest separator */
	}
	buf_release(&tmp);
	return rc;
}

/* Display columns of the grid's lines when the first n columns show. */
static size_t grid_width(const struct grid *g, int n)
{
	size_t w = 1;
	for (int c = 0; c < n; c++)
		w += g->width[c] + 3;
	return w;
}

/* FIT_CUT: keep the columns that fit beside a "…" column (at least one). */
static void grid_cut(struct grid *g)
{
	while (g->ncols > 1 && grid_width(g, g->ncols) + 4 > g->v->width)
		g->ncols--;
}

/* A border or separator line. */
static int grid_rule(struct buf *b, const struct grid *g, int cut)
{
	int rc = CONVBI_OK;
	for (int c = 0; c < g->ncols + cut && !rc; c++) {
		size_t w = c < g->ncols ? g->width[c] : 1;
		if (g->markdown) {
			rc = buf_putc(b, '|');
			if (!rc)
				rc = repeat(b, '-', w + 1);
			if (!rc)
				rc = buf_putc(b, c < g->ncols && g->align[c] == 'r' ? ':' : '-');
		} else {
			rc = buf_putc(b, '+');
			if (!rc)
				rc = repeat(b, '-', w + 2);
		}
	}
	return rc ? rc : buf_puts(b, g->markdown ? "|\n" : "+\n");
}

/* One line of cells: row r, or the header when r < 0. */
static int grid_line(struct buf *b, const struct grid *g, int64_t r, int cut, struct buf *tmp)
{
	int rc = CONVBI_OK;
	const char *bold = g->v->color ? SGR_BOLD : NULL, *dim = g->v->color ? SGR_DIM : NULL;
	for (int c = 0; c < g->ncols && !rc; c++) {
		const char *s = g->t->cols[c].name;
		rc = buf_puts(b, "| ");
		if (!rc && r >= 0)
			rc = cell_text(g, r, c, tmp, &s);
		if (!rc)
			rc = put_cell(b, s, g->width[c], r < 0 ? 'c' : g->align[c], g->markdown,
			              r < 0                    ? bold
			              : table_cell(g->t, r, c) ? NULL
			                                       : dim);
		if (!rc)
			rc = buf_putc(b, ' ');
	}
	if (!rc && cut)
		rc = buf_puts(b,
		              "| "
		              "\xE2\x80\xA6"
		              " ");
	return rc ? rc : buf_puts(b, "|\n");
}

static int render_grid(struct buf *b, const struct table *t, const struct table_view *v, int64_t shown)
{
	struct grid g = {t, v, shown, v->mode == TABLE_MARKDOWN, 0, NULL, NULL, NULL};
	struct buf tmp = BUF_INIT;
	int rc = grid_layout(&g), cut = 0;
	if (rc)
		goto done;
	if (v->width && v->fit == TABLE_FIT_CUT && grid_width(&g, g.ncols) > v->width) {
		grid_cut(&g);
		cut = g.ncols < t->ncols;
	}
	if (!t->ncols) {
		rc = g.markdown ? CONVBI_OK : buf_puts(b, "(no columns)\n");
		goto done;
	}
	if (!g.markdown)
		rc = grid_rule(b, &g, cut);
	if (!rc)
		rc = grid_line(b, &g, -1, cut, &tmp);
	if (!rc)
		rc = grid_rule(b, &g, cut);
	for (int64_t r = 0; r < shown && !rc; r++)
		rc = grid_line(b, &g, r, cut, &tmp);
	if (!rc && !g.markdown && shown > 0)
		rc = grid_rule(b, &g, cut);
	if (!rc && !g.markdown && v->footer)
		rc = footer(b, t, shown, t->ncols - g.ncols);
done:
	buf_release(&tmp);
	free(g.width);
	free(g.frac);
	free(g.align);
	return rc;
}

/* ---- LINE ------------------------------------------------------------------ */

static int render_line(struct buf *b, const struct table *t, const struct table_view *v, int64_t shown)
{
	size_t nw = 0, w;
	int rc = CONVBI_OK;
	for (int c = 0; c < t->ncols && !rc; c++) {
		rc = display_width(t->cols[c].name, 0, &w);
		if (w > nw)
			nw = w;
	}
	size_t vmax = !v->width ? 0 : v->width > nw + 4 ? v->width - nw - 3 : 1;
	for (int64_t r = 0; r < shown && !rc; r++) {
		if (r)
			rc = buf_putc(b, '\n');
		for (int c = 0; c < t->ncols && !rc; c++) {
			const char *s = table_cell(t, r, c);
			rc = put_cell(b, t->cols[c].name, nw, 'r', 0, v->color ? SGR_BOLD : NULL);
			if (!rc)
				rc = buf_puts(b, " = ");
			if (!rc && !s)
				rc = buf_puts(b, v->color ? SGR_DIM "NULL" SGR_OFF : "NULL");
			else if (!rc)
				rc = display_add(b, s, vmax, 0, &w);
			if (!rc)
				rc = buf_putc(b, '\n');
		}
	}
	if (!rc && v->footer)
		rc = buf_puts(b, shown ? "\n" : "");
	if (!rc && v->footer)
		rc = footer(b, t, shown, 0);
	return rc;
}

/* ---- CSV ------------------------------------------------------------------ */

static int render_csv(struct buf *b, const struct table *t, int64_t shown)
{
	int rc = CONVBI_OK;
	for (int c = 0; c < t->ncols && !rc; c++) {
		rc = c ? buf_putc(b, ',') : CONVBI_OK;
		if (!rc)
			rc = buf_csv_field(b, t->cols[c].name);
	}
	if (!rc)
		rc = buf_puts(b, "\r\n");
	for (int64_t r = 0; r < shown && !rc; r++) {
		for (int c = 0; c < t->ncols && !rc; c++) {
			rc = c ? buf_putc(b, ',') : CONVBI_OK;
			if (!rc)
				rc = buf_csv_field(b, table_cell(t, r, c));
		}
		if (!rc)
			rc = buf_puts(b, "\r\n");
	}
	return rc;
}

/* ---- JSON ----------------------------------------------------------------- */

int table_json_number(const char *s)
{
	const char *p = s;
	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (*p >= '0' && *p <= '9')
			p++;
	else
		return 0;
	if (*p == '.') {
		p++;
		if (!(*p >= '0' && *p <= '9'))
			return 0;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!(*p >= '0' && *p <= '9'))
			return 0;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return *p == '\0';
}

/* Object keys: column names, a repeated name suffixed ":2", ":3", ... */
static int json_keys(char ***out, const struct table *t)
{
	char **keys = xcalloc((size_t)t->ncols + 1, sizeof *keys);
	if (!keys)
		return CONVBI_ENOMEM;
	for (int c = 0; c < t->ncols; c++) {
		int dup = 1;
		for (int k = 0; k < c; k++)
			if (!strcmp(t->cols[k].name, t->cols[c].name))
				dup++;
		struct buf b = BUF_INIT;
		int rc = dup > 1 ? buf_printf(&b, "%s:%d", t->cols[c].name, dup) : buf_puts(&b, t->cols[c].name);
		keys[c] = rc ? NULL : buf_take(&b);
		buf_release(&b);
		if (!keys[c]) {
			for (int k = 0; k < c; k++)
				free(keys[k]);
			free(keys);
			return CONVBI_ENOMEM;
		}
	}
	*out = keys;
	return CONVBI_OK;
}

static int render_json(struct buf *b, const struct table *t, int64_t shown)
{
	char **keys = NULL;
	int rc = json_keys(&keys, t);
	if (rc)
		return rc;
	rc = buf_putc(b, '[');
	for (int64_t r = 0; r < shown && !rc; r++) {
		rc = buf_puts(b, r ? ",\n{" : "{");
		for (int c = 0; c < t->ncols && !rc; c++) {
			const char *s = table_cell(t, r, c);
			int ty = table_cell_type(t, r, c);
			if (c)
				rc = buf_putc(b, ',');
			if (!rc)
				rc = buf_json_str(b, keys[c], strlen(keys[c]));
			if (!rc)
				rc = buf_putc(b, ':');
			if (rc)
				break;
			if (!s || (ty == TABLE_REAL && table_nonfinite(s)))
				rc = buf_puts(b, "null"); /* JSON has no infinity or NaN */
			else if ((ty == TABLE_INT || ty == TABLE_REAL) && table_json_number(s))
				rc = buf_puts(b, s);
			else
				rc = buf_json_str(b, s, strlen(s));
		}
		if (!rc)
			rc = buf_putc(b, '}');
	}
	if (!rc)
		rc = buf_puts(b, "]\n");
	for (int c = 0; c < t->ncols; c++)
		free(keys[c]);
	free(keys);
	return rc;
}

/* ---- entry points ---------------------------------------------------------- */

int table_render_view(struct buf *out, const struct table *t, const struct table_view *view)
{
	struct table_view v = *view;
	int64_t shown = v.max_rows < 0 || v.max_rows > t->nrows ? t->nrows : v.max_rows;
	struct buf b;
	int rc;

	/* build aside, capped at what out can still take */
	if (out->max && out->len >= out->max)
		return CONVBI_ETOOBIG;
	buf_init(&b, out->max ? out->max - out->len : 0);
	switch (v.mode) {
	case TABLE_ALIGNED:
		rc = render_grid(&b, t, &v, shown);
		if (!rc && v.width && v.fit == TABLE_FIT_VERTICAL) {
			/* wider than the screen: the first line is the top border */
			size_t first = strcspn(buf_str(&b), "\n");
			if (text_width(buf_str(&b), first) > v.width) {
				buf_reset(&b);
				rc = render_line(&b, t, &v, shown);
			}
		}
		break;
	case TABLE_MARKDOWN: rc = render_grid(&b, t, &v, shown); break;
	case TABLE_LINE: rc = render_line(&b, t, &v, shown); break;
	case TABLE_CSV: rc = render_csv(&b, t, shown); break;
	case TABLE_JSON: rc = render_json(&b, t, shown); break;
	default: rc = CONVBI_EINVAL;
	}
	if (!rc)
		rc = buf_add(out, buf_str(&b), b.len);
	buf_release(&b);
	return rc;
}

int table_render(struct buf *out, const struct table *t, enum table_mode mode, int64_t max_rows)
{
	struct table_view v = {mode, max_rows, 0, TABLE_FIT_NONE, 0, 0, 1};
	return table_render_view(out, t, &v);
}

/* Appends one summary cell: NULL shown as NULL, cut to a few characters. */
static int summary_cell(struct buf *b, const char *s)
{
	size_t w;
	if (!s)
		return buf_puts(b, "NULL");
	size_t len = strlen(s);
	size_t keep = text_prefix_chars(s, len, TABLE_SUMMARY_CELL_CHARS);
	char *copy = xstrndup(s, keep);
	if (!copy)
		return CONVBI_ENOMEM;
	int rc = display_add(b, copy, 0, 0, &w);
	if (!rc && keep < len)
		rc = buf_add(b, ELLIPSIS, 3);
	free(copy);
	return rc;
}

int table_summary(struct buf *out, const struct table *t, size_t max_bytes)
{
	struct buf cols = BUF_INIT, rows = BUF_INIT, line = BUF_INIT, acc = BUF_INIT;
	int64_t shown = 0;
	int rc;

	rc = buf_puts(&cols, "columns: ");
	for (int c = 0; c < t->ncols && !rc; c++) {
		if (c)
			rc = buf_puts(&cols, ", ");
		if (!rc)
			rc = summary_cell(&cols, t->cols[c].name);
	}
	if (!rc)
		rc = buf_putc(&cols, '\n');
	if (!rc)
		rc = buf_printf(&rows, "rows: %lld%s\n", (long long)t->nrows,
		                !t->truncated               ? ""
		                : t->cut == TABLE_CUT_BYTES ? " (truncated by the result size cap)"
		                                            : " (truncated by the row cap)");
	if (rc)
		goto done;

	/* the row count always fits first; the column list is cut to fit */
	if (rows.len > max_bytes)
		goto flush;
	if (cols.len + rows.len <= max_bytes) {
		rc = buf_add(&acc, cols.data, cols.len);
	} else if (max_bytes - rows.len > 14) {
		size_t keep = text_cut(cols.data, cols.len, max_bytes - rows.len - 4);
		rc = buf_add(&acc, cols.data, keep);
		if (!rc)
			rc = buf_add(&acc, "\xE2\x80\xA6\n", 4);
	}
	if (!rc)
		rc = buf_add(&acc, rows.data, rows.len);

	/* then rows while they fit, keeping room for the "more rows" line */
	for (int64_t r = 0; r < t->nrows && r < TABLE_SUMMARY_ROWS && !rc; r++) {
		buf_reset(&line);
		for (int c = 0; c < t->ncols && !rc; c++) {
			if (c)
				rc = buf_puts(&line, " | ");
			if (!rc)
				rc = summary_cell(&line, table_cell(t, r, c));
		}
		if (!rc)
			rc = buf_putc(&line, '\n');
		size_t reserve = r + 1 < t->nrows ? 40 : 0;
		if (rc || acc.len + line.len + reserve > max_bytes)
			break;
		rc = buf_add(&acc, line.data, line.len);
		shown++;
	}
	if (!rc && shown < t->nrows) {
		buf_reset(&line);
		rc = buf_printf(&line, "(%lld more row%s not shown)\n", (long long)(t->nrows - shown),
		                t->nrows - shown == 1 ? "" : "s");
		if (!rc && acc.len + line.len <= max_bytes)
			rc = buf_add(&acc, line.data, line.len);
	}
flush:
	if (!rc)
		rc = buf_add(out, buf_str(&acc), acc.len);
done:
	buf_release(&cols);
	buf_release(&rows);
	buf_release(&line);
	buf_release(&acc);
	return rc;
}
