/* chart.c -- the chart of an answer: a Vega-Lite v5 spec chosen from the
 * result's column types and built with cJSON from a whitelist.
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
 * inline as `data.values`.  Never `url`, `transform`, `params` or `expr`.
 */
#include <cjson/cJSON.h>
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

static cJSON *channel(const struct table *t, int col, const char *type, const char *time_unit, const char *aggregate)
{
	char field[CHART_FIELD_MAX_BYTES];
	if (field_name(field, sizeof field, t->cols[col].name))
		return NULL;
	cJSON *c = cJSON_CreateObject();
	if (!c || !cJSON_AddStringToObject(c, "field", field) || !cJSON_AddStringToObject(c, "type", type) ||
	    (time_unit && !cJSON_AddStringToObject(c, "timeUnit", time_unit)) ||
	    (aggregate && !cJSON_AddStringToObject(c, "aggregate", aggregate)) ||
	    (!strcmp(type, "nominal") && !cJSON_AddNullToObject(c, "sort")) || /* keep the SQL's order */
	    !cJSON_AddStringToObject(c, "title", t->cols[col].name)) {
		cJSON_Delete(c);
		return NULL;
	}
	return c;
}

static int add_channel(cJSON *enc, const char *name, cJSON *c)
{
	if (!c)
		return -1;
	if (!cJSON_AddItemToObject(enc, name, c)) {
		cJSON_Delete(c);
		return -1;
	}
	return 0;
}

static cJSON *values_of(const struct table *t)
{
	cJSON *values = cJSON_CreateArray();
	for (int64_t r = 0; values && r < t->nrows; r++) {
		cJSON *row = cJSON_CreateObject();
		if (!row || !cJSON_AddItemToArray(values, row)) {
			cJSON_Delete(row);
			cJSON_Delete(values);
			return NULL;
		}
		for (int c = 0; c < t->ncols; c++) {
			const char *v = table_cell(t, r, c);
			int ty = table_cell_type(t, r, c);
			double d = v && (ty == TABLE_INT || ty == TABLE_REAL) ? strtod(v, NULL) : NAN;
			cJSON *cell = !v ? cJSON_CreateNull()
			              : (ty == TABLE_INT || ty == TABLE_REAL)
			                      ? (isfinite(d) ? cJSON_CreateNumber(d) : cJSON_CreateNull())
			                      : cJSON_CreateString(v);
			if (!cell || !cJSON_AddItemToObject(row, t->cols[c].name, cell)) {
				cJSON_Delete(cell);
				cJSON_Delete(values);
				return NULL;
			}
		}
	}
	return values;
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

static void choose(struct pick *p, const struct table *t, const struct column_info *ci, const struct kinds *k)
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
		if (t->nrows >= 2 && t->nrows <= CHART_ARC_MAX_PARTS && ci[cc].distinct == t->nrows && !ci[nc0].negative) {
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

static cJSON *build(const struct table *t, const struct pick *p)
{
	cJSON *spec = cJSON_CreateObject(), *mark = NULL, *enc = NULL, *data = NULL, *values = NULL;
	if (!spec || !cJSON_AddStringToObject(spec, "$schema", "https://vega.github.io/schema/vega-lite/v5.json"))
		goto fail;
	if (!(data = cJSON_AddObjectToObject(spec, "data")) || !(values = values_of(t)))
		goto fail;
	if (!cJSON_AddItemToObject(data, "values", values)) {
		cJSON_Delete(values);
		goto fail;
	}
	if (!(mark = cJSON_AddObjectToObject(spec, "mark")) || !cJSON_AddStringToObject(mark, "type", p->mark) ||
	    !cJSON_AddTrueToObject(mark, "tooltip") || (!strcmp(p->mark, "line") && !cJSON_AddTrueToObject(mark, "point")))
		goto fail;
	if (!(enc = cJSON_AddObjectToObject(spec, "encoding")))
		goto fail;
	int rc = 0;
	if (p->theta >= 0)
		rc |= add_channel(enc, "theta", channel(t, p->theta, "quantitative", NULL, NULL));
	if (p->x >= 0)
		rc |= add_channel(enc, "x",
		                  channel(t, p->x, p->x_type, !strcmp(p->x_type, "temporal") ? p->time_unit : NULL,
		                          !strcmp(p->x_type, "quantitative") && p->y_type && !strcmp(p->y_type, "nominal")
		                                  ? p->aggregate
		                                  : NULL));
	if (p->y >= 0)
		rc |= add_channel(enc, "y",
		                  channel(t, p->y, p->y_type, NULL,
		                          !strcmp(p->y_type, "quantitative") && !strcmp(p->x_type, "nominal") ? p->aggregate
		                                                                                              : NULL));
	if (p->color >= 0)
		rc |= add_channel(enc, "color", channel(t, p->color, "nominal", NULL, NULL));
	if (p->offset >= 0)
		rc |= add_channel(enc, "xOffset", channel(t, p->offset, "nominal", NULL, NULL));
	if (rc)
		goto fail;
	return spec;
fail:
	cJSON_Delete(spec);
	return NULL;
}

int chart_build(char **out, const struct table *t)
{
	*out = NULL;
	if (!t || t->nrows < 1 || t->ncols < 2 || t->ncols > 3 || t->nrows > CHART_MAX_ROWS)
		return CONVBI_OK;
	for (int c = 0; c < t->ncols; c++)
		for (int d = 0; d < c; d++)
			if (!strcmp(t->cols[c].name, t->cols[d].name) || !t->cols[c].name[0])
				return CONVBI_OK; /* a field must name one column */
	struct column_info ci[3];
	struct kinds k;
	memset(&k, 0, sizeof k);
	for (int c = 0; c < t->ncols; c++) {
		classify(&ci[c], t, c);
		k.first[ci[c].kind][k.n[ci[c].kind]++] = c;
	}
	struct pick p;
	choose(&p, t, ci, &k);
	if (!p.mark)
		return CONVBI_OK;
	cJSON *spec = build(t, &p);
	if (!spec)
		return CONVBI_ENOMEM;
	*out = cJSON_PrintUnformatted(spec);
	cJSON_Delete(spec);
	return *out ? CONVBI_OK : CONVBI_ENOMEM;
}
