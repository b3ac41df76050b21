/* chart.c -- the chart of an answer: a Vega-Lite v5 spec chosen from the
 * result's column types and written from a whitelist.
 *
 * The model never writes a chart.  Each column is classified once
 * (number: every non-NULL cell is an INTEGER or REAL; time: every non-NULL
 * cell is an ISO date "YYYY", "YYYY-MM", "YYYY-MM-DD" or a date and time;
 * category: anything else), then the first rule that fits picks the chart:
 *
 *   a time and a number (and maybe a category)  line, color = the category
 *   a category and a number, 2..6 distinct non-negative parts, nothing else
 *                                               arc (theta, color)
 *   a category and a number (and maybe a second category)
 *                                               bar, horizontal when a label
 *                                               is longer than 16 characters;
 *                                               color + xOffset = the second
 *   two numbers (and maybe a category)          point, color = the category
 *   anything else                               no chart
 *
 * The spec holds only what the whitelist allows: `mark` bar/line/area/arc/
 * point; encodings x, y, color, theta, xOffset with `field` naming a result
 * column, `type`, and `timeUnit` / `aggregate` from fixed lists; the rows
 * inline as `data.values`; `title` and `description` only in our own
 * words and numbers (never a cell's text or a column's name).  Never
 * `url`, `transform`, `params` or `expr`.
 *
 * Bounds: the chart takes the first rows of the result, at most
 * CHART_MAX_ROWS of them holding at most CHART_MAX_BYTES of cell text
 * (chart_rows); the kinds and the choice see only those rows.  When they
 * are fewer than the query returned (a cap cut the result, or the chart's
 * own bounds did), the title says "First N of M rows" (M "at least" when
 * the count stopped: table_total), the description why, and no arc is
 * drawn (parts of a whole need the whole).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/chart.h"
#include "convbi/convbi.h"
#include "util/buf.h"

enum kind { KIND_NONE, KIND_NUMBER, KIND_TIME, KIND_CATEGORY };

/* How precise a time column is: what the timeUnit says. */
static const char *const time_units[] = {NULL, "year", "yearmonth", "yearmonthdate", NULL};

/* The only aggregates a spec may carry. */
static const char *const aggregates[] = {"sum", NULL};

#define CHART_LABEL_LONG_CHARS 16
#define CHART_ARC_MAX_PARTS 6
#define CHART_FIELD_MAX_BYTES 256

static int digits(const char *s, int n)
{
	for (int i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* 1 year, 2 year-month, 3 date, 4 date and time; 0 when s is not one. */
static int time_precision(const char *s)
{
	size_t n = strlen(s);
	if (n < 4 || !digits(s, 4))
		return 0;
	if (n == 4)
		return 1;
	if (s[4] != '-' || n < 7 || !digits(s + 5, 2))
		return 0;
	if (n == 7)
		return 2;
	if (s[7] != '-' || n < 10 || !digits(s + 8, 2))
		return 0;
	if (n == 10)
		return 3;
	if ((s[10] != ' ' && s[10] != 'T') || n < 16 || !digits(s + 11, 2) || s[13] != ':' || !digits(s + 14, 2))
		return 0;
	for (size_t i = 16; i < n; i++)
		if (!strchr("0123456789:.Z+-", s[i]))
			return 0;
	return 4;
}

struct column_info {
	enum kind kind;
	int precision;    /* time columns: the coarsest-needed timeUnit index */
	size_t longest;   /* categories: the longest label in characters */
	int64_t distinct; /* categories: distinct values (bounded count) */
	int negative;     /* numbers: a value below 0 */
};

static size_t utf8_chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

static int64_t distinct_values(const struct table *t, int col, int64_t stop_at)
{
	int64_t distinct = 0;
	for (int64_t r = 0; r < t->nrows && distinct < stop_at; r++) {
		const char *v = table_cell(t, r, col);
		int seen = 0;
		for (int64_t q = 0; q < r && !seen; q++) {
			const char *w = table_cell(t, q, col);
			seen = (!v && !w) || (v && w && !strcmp(v, w));
		}
		distinct += !seen;
	}
	return distinct;
}

static void classify(struct column_info *ci, const struct table *t, int col)
{
	memset(ci, 0, sizeof *ci);
	int type = table_column_type(t, col);
	if (type == TABLE_INT || type == TABLE_REAL) {
		ci->kind = KIND_NUMBER;
		for (int64_t r = 0; r < t->nrows; r++) {
			const char *v = table_cell(t, r, col);
			if (v && strtod(v, NULL) < 0)
				ci->negative = 1;
		}
		return;
	}
	if (type != TABLE_TEXT)
		return; /* all NULL, BLOBs or mixed: not chartable */
	int precision = 0, seen = 0;
	for (int64_t r = 0; r < t->nrows; r++) {
		const char *v = table_cell(t, r, col);
		if (!v)
			continue;
		int p = time_precision(v);
		if (!p) {
			seen = 0;
			break;
		}
		if (!seen || p < precision)
			precision = p; /* the coarsest value decides the time unit */
		seen = 1;
	}
	if (seen) {
		ci->kind = KIND_TIME;
		ci->precision = precision;
		return;
	}
	ci->kind = KIND_CATEGORY;
	for (int64_t r = 0; r < t->nrows; r++) {
		const char *v = table_cell(t, r, col);
		size_t n = v ? utf8_chars(v) : 0;
		if (n > ci->longest)
			ci->longest = n;
	}
	ci->distinct = distinct_values(t, col, t->nrows);
}

/* A result column name as a Vega-Lite field: '.', '[', ']' and '\' would
 * mean nested access, so they are escaped with a backslash. */
static int field_name(char *out, size_t cap, const char *name)
{
	size_t k = 0;
	for (const char *p = name; *p; p++) {
		int esc = *p == '.' || *p == '[' || *p == ']' || *p == '\\';
		if (k + (size_t)esc + 2 > cap)
			return -1;
		if (esc)
			out[k++] = '\\';
		out[k++] = *p;
	}
	out[k] = '\0';
	return 0;
}

/* `"name":` (after a comma unless it is the first) then the channel
 * {"field","type","timeUnit"?,"aggregate"?,"sort"?,"title"}. */
static int put_channel(struct buf *b, int *n, const char *name, const struct table *t, int col, const char *type,
                       const char *time_unit, const char *aggregate)
{
	char field[CHART_FIELD_MAX_BYTES];
	if (field_name(field, sizeof field, t->cols[col].name))
		return CONVBI_EINVAL; /* chart_build made sure it fits */
	int rc = buf_printf(b, "%s\"%s\":{\"field\":", (*n)++ ? "," : "", name);
	if (!rc)
		rc = buf_json_str(b, field, strlen(field));
	if (!rc)
		rc = buf_printf(b, ",\"type\":\"%s\"", type);
	if (!rc && time_unit)
		rc = buf_printf(b, ",\"timeUnit\":\"%s\"", time_unit);
	if (!rc && aggregate)
		rc = buf_printf(b, ",\"aggregate\":\"%s\"", aggregate);
	if (!rc && !strcmp(type, "nominal"))
		rc = buf_puts(b, ",\"sort\":null"); /* keep the SQL's order */
	if (!rc)
		rc = buf_puts(b, ",\"title\":");
	if (!rc)
		rc = buf_json_str(b, t->cols[col].name, strlen(t->cols[col].name));
	if (!rc)
		rc = buf_putc(b, '}');
	return rc;
}

/* A number cell: its text when that is a JSON number, else the value
 * strtod reads; null when it is not finite (JSON has no inf or NaN). */
static int put_number(struct buf *b, const char *v)
{
	double d = strtod(v, NULL);
	if (!isfinite(d))
		return buf_puts(b, "null");
	return table_json_number(v) ? buf_puts(b, v) : buf_printf(b, "%.17g", d);
}

/* "values":[{COLUMN: cell, ...}, ...]: the rows inline. */
static int put_values(struct buf *b, const struct table *t)
{
	int rc = buf_puts(b, "\"values\":[");
	for (int64_t r = 0; !rc && r < t->nrows; r++) {
		rc = buf_puts(b, r ? ",{" : "{");
		for (int c = 0; !rc && c < t->ncols; c++) {
			const char *v = table_cell(t, r, c);
			int ty = table_cell_type(t, r, c);
			if (c)
				rc = buf_putc(b, ',');
			if (!rc)
				rc = buf_json_str(b, t->cols[c].name, strlen(t->cols[c].name));
			if (!rc)
				rc = buf_putc(b, ':');
			if (!rc)
				rc = !v                                    ? buf_puts(b, "null")
				     : ty == TABLE_INT || ty == TABLE_REAL ? put_number(b, v)
				                                           : buf_json_str(b, v, strlen(v));
		}
		if (!rc)
			rc = buf_putc(b, '}');
	}
	if (!rc)
		rc = buf_putc(b, ']');
	return rc;
}

struct pick {
	const char *mark;               /* NULL = no chart */
	int x, y, color, theta, offset; /* column indexes, -1 = unused */
	const char *x_type, *y_type;
	const char *time_unit, *aggregate;
};

/* Columns of each kind, in result order. */
struct kinds {
	int n[4];
	int first[4][3];
};

static void choose(struct pick *p, const struct table *t, const struct column_info *ci, const struct kinds *k, int whole)
{
	*p = (struct pick){NULL, -1, -1, -1, -1, -1, NULL, NULL, NULL, NULL};
	int nn = k->n[KIND_NUMBER], nt = k->n[KIND_TIME], nc = k->n[KIND_CATEGORY];
	if (nn < 1 || nn + nt + nc != t->ncols)
		return;
	if (nt == 1 && nn == 1 && nc <= 1) {
		int tc = k->first[KIND_TIME][0];
		*p = (struct pick){"line", tc,         k->first[KIND_NUMBER][0], nc ? k->first[KIND_CATEGORY][0] : -1, -1,
		                   -1,     "temporal", "quantitative",           time_units[ci[tc].precision],         NULL};
		return;
	}
	if (nt == 0 && nn == 1 && nc == 1) {
		int cc = k->first[KIND_CATEGORY][0], nc0 = k->first[KIND_NUMBER][0];
		if (whole && t->nrows >= 2 && t->nrows <= CHART_ARC_MAX_PARTS && ci[cc].distinct == t->nrows &&
		    !ci[nc0].negative) {
			*p = (struct pick){"arc", -1, -1, cc, nc0, -1, NULL, NULL, NULL, NULL};
			return;
		}
		const char *agg = ci[cc].distinct < t->nrows ? aggregates[0] : NULL;
		if (ci[cc].longest > CHART_LABEL_LONG_CHARS)
			*p = (struct pick){"bar", nc0, cc, -1, -1, -1, "quantitative", "nominal", NULL, agg};
		else
			*p = (struct pick){"bar", cc, nc0, -1, -1, -1, "nominal", "quantitative", NULL, agg};
		return;
	}
	if (nt == 0 && nn == 1 && nc == 2) {
		int c1 = k->first[KIND_CATEGORY][0], c2 = k->first[KIND_CATEGORY][1], n0 = k->first[KIND_NUMBER][0];
		*p = (struct pick){"bar", c1, n0, c2, -1, c2, "nominal", "quantitative", NULL, NULL};
		return;
	}
	if (nt == 0 && nn == 2 && nc <= 1)
		*p = (struct pick){"point",
		                   k->first[KIND_NUMBER][0],
		                   k->first[KIND_NUMBER][1],
		                   nc ? k->first[KIND_CATEGORY][0] : -1,
		                   -1,
		                   -1,
		                   "quantitative",
		                   "quantitative",
		                   NULL,
		                   NULL};
}

/* `"title":...,"description":...,` for a chart of fewer rows (t, the
 * chart's) than the query returned (whole, the result): how many of how
 * many, and why. */
static int put_partial(struct buf *b, const struct table *t, const struct table *whole)
{
	int exact;
	int64_t total = table_total(whole, &exact);
	struct buf text = BUF_INIT;
	int rc = buf_printf(&text, "First %lld of %s%lld rows", (long long)t->nrows, exact ? "" : "at least ", (long long)total);
	if (!rc)
		rc = buf_puts(b, "\"title\":");
	if (!rc)
		rc = buf_json_str(b, text.data, text.len);
	buf_reset(&text);
	if (!rc)
		rc = buf_printf(&text, "Only the first %lld rows are charted", (long long)t->nrows);
	if (!rc && t->nrows < whole->nrows)
		rc = buf_printf(&text, " (a chart holds at most %d rows and %d KB of values)", CHART_MAX_ROWS,
		                CHART_MAX_BYTES >> 10);
	if (!rc && whole->truncated)
		rc = buf_puts(&text, "; ");
	if (!rc)
		rc = table_cut_sentence(&text, whole);
	if (!rc)
		rc = buf_puts(&text, ".");
	if (!rc)
		rc = buf_puts(b, ",\"description\":");
	if (!rc)
		rc = buf_json_str(b, text.data, text.len);
	if (!rc)
		rc = buf_putc(b, ',');
	buf_release(&text);
	return rc;
}

/* The spec, written as compact JSON straight into b (a cJSON tree and its
 * printing cost several times more, and serve writes one per answer).
 * t holds the chart's rows, whole the result they were taken from. */
static int build(struct buf *b, const struct table *t, const struct table *whole, const struct pick *p)
{
	int rc = buf_puts(b, "{\"$schema\":\"https://vega.github.io/schema/vega-lite/v5.json\",");
	if (!rc && t->nrows < table_total(whole, NULL))
		rc = put_partial(b, t, whole);
	if (!rc)
		rc = buf_puts(b, "\"data\":{");
	if (!rc)
		rc = put_values(b, t);
	if (!rc)
		rc = buf_printf(b, "},\"mark\":{\"type\":\"%s\",\"tooltip\":true%s},\"encoding\":{", p->mark,
		                !strcmp(p->mark, "line") ? ",\"point\":true" : "");
	int n = 0;
	if (!rc && p->theta >= 0)
		rc = put_channel(b, &n, "theta", t, p->theta, "quantitative", NULL, NULL);
	if (!rc && p->x >= 0)
		rc = put_channel(b, &n, "x", t, p->x, p->x_type, !strcmp(p->x_type, "temporal") ? p->time_unit : NULL,
		                 !strcmp(p->x_type, "quantitative") && p->y_type && !strcmp(p->y_type, "nominal") ? p->aggregate
		                                                                                                  : NULL);
	if (!rc && p->y >= 0)
		rc = put_channel(b, &n, "y", t, p->y, p->y_type, NULL,
		                 !strcmp(p->y_type, "quantitative") && !strcmp(p->x_type, "nominal") ? p->aggregate : NULL);
	if (!rc && p->color >= 0)
		rc = put_channel(b, &n, "color", t, p->color, "nominal", NULL, NULL);
	if (!rc && p->offset >= 0)
		rc = put_channel(b, &n, "xOffset", t, p->offset, "nominal", NULL, NULL);
	if (!rc)
		rc = buf_puts(b, "}}");
	return rc;
}

/* How many of t's first rows a chart carries: at most CHART_MAX_ROWS,
 * holding at most CHART_MAX_BYTES of cell text together. */
static int64_t chart_rows(const struct table *t)
{
	size_t bytes = 0;
	int64_t n = 0;
	for (; n < t->nrows && n < CHART_MAX_ROWS; n++) {
		for (int c = 0; c < t->ncols; c++) {
			const char *v = table_cell(t, n, c);
			bytes += v ? strlen(v) : 0;
		}
		if (bytes > CHART_MAX_BYTES)
			break;
	}
	return n;
}

/* The chart's pick for t, the rows it charts (*rows: t's first rows, the
 * same cells, borrowed); p->mark NULL when the shape suits none. */
static void pick_of(struct pick *p, struct table *rows, const struct table *t)
{
	p->mark = NULL;
	if (!t || t->ncols < 2 || t->ncols > 3)
		return;
	*rows = *t; /* a view: the cells are row-major, so the first rows are a prefix */
	rows->nrows = chart_rows(t);
	if (rows->nrows < 1)
		return;
	for (int c = 0; c < t->ncols; c++)
		for (int d = 0; d < c; d++)
			if (!strcmp(t->cols[c].name, t->cols[d].name) || !t->cols[c].name[0])
				return; /* a field must name one column */
	char field[CHART_FIELD_MAX_BYTES];
	for (int c = 0; c < t->ncols; c++)
		if (field_name(field, sizeof field, t->cols[c].name))
			return; /* a name too long for a field */
	struct column_info ci[3];
	struct kinds k;
	memset(&k, 0, sizeof k);
	for (int c = 0; c < t->ncols; c++) {
		classify(&ci[c], rows, c);
		k.first[ci[c].kind][k.n[ci[c].kind]++] = c;
	}
	choose(p, rows, ci, &k, rows->nrows == table_total(t, NULL));
}

int chart_put(struct buf *out, const struct table *t)
{
	struct pick p;
	struct table rows;
	pick_of(&p, &rows, t);
	if (!p.mark)
		return buf_puts(out, "null");
	size_t old = out->len;
	/* room for the rows at once: the spec is mostly them */
	int rc = buf_reserve(out, 1024 + (size_t)rows.nrows * (size_t)rows.ncols * 32);
	if (!rc)
		rc = build(out, &rows, t, &p);
	if (rc) {
		out->len = old;
		if (out->data)
			out->data[old] = '\0';
	}
	return rc;
}

int chart_build(char **out, const struct table *t)
{
	*out = NULL;
	struct buf b;
	buf_init(&b, BUF_UNBOUNDED);
	int rc = chart_put(&b, t);
	if (rc || !strcmp(buf_str(&b), "null")) { /* out of memory, or no chart */
		buf_release(&b);
		return rc ? CONVBI_ENOMEM : CONVBI_OK;
	}
	*out = buf_take(&b);
	return *out ? CONVBI_OK : CONVBI_ENOMEM;
}
