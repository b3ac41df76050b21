/* rescmp.c -- are two query results the same (see rescmp.h).
 *
 * Both results are read into arrays of rows over one array of cells each
 * (every cell classified once: NULL, a decimal number, or text), sorted
 * unless the comparison is ordered, then compared pairwise; the first
 * difference is described with its values for the message.
 */
#include "util/rescmp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

/* ---- ORDER BY at the top level ---------------------------------------------------- */

static int word_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '$';
}

/* s starts with the lowercase keyword w, as a whole word, in any case. */
static int word_at(const char *s, const char *w)
{
	size_t n = strlen(w);
	for (size_t i = 0; i < n; i++)
		if ((s[i] | 0x20) != w[i])
			return 0;
	return !word_char(s[n]);
}

int rescmp_sql_orders(const char *sql)
{
	int depth = 0;
	for (const char *p = sql; *p; p++) {
		char c = *p;
		if (c == '\'' || c == '"' || c == '`' || c == '[') {
			char close = c == '[' ? ']' : c;
			for (p++; *p && !(*p == close && p[1] != close); p++)
				if (*p == close)
					p++; /* a doubled quote inside */
			if (!*p)
				return 0;
		} else if (c == '-' && p[1] == '-') {
			while (*p && *p != '\n')
				p++;
			if (!*p)
				return 0;
		} else if (c == '/' && p[1] == '*') {
			const char *end = strstr(p + 2, "*/");
			if (!end)
				return 0;
			p = end + 1;
		} else if (c == '(') {
			depth++;
		} else if (c == ')') {
			depth--;
		} else if (depth == 0 && (p == sql || !word_char(p[-1])) && word_at(p, "order")) {
			const char *q = p + 5;
			while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
				q++;
			if (word_at(q, "by"))
				return 1;
		}
	}
	return 0;
}

/* ---- cells and rows -------------------------------------------------------------- */

enum cell_kind { CELL_NULL, CELL_NUM, CELL_TEXT };

struct cell {
	int kind;         /* enum cell_kind */
	double num;       /* CELL_NUM */
	const char *text; /* borrowed from the result; NULL for CELL_NULL */
};

struct row {
	struct cell *c; /* points into the result's cell array */
	int ncols;
	int64_t index; /* the row's position in its result */
};

/* A decimal number and nothing else: [+-] digits [. digits] [e [+-] digits]. */
static int read_number(const char *s, double *out)
{
	const char *p = s;
	int digits = 0;
	if (*p == '+' || *p == '-')
		p++;
	while (*p >= '0' && *p <= '9')
		p++, digits++;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			digits++;
	if (!digits)
		return 0;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!(*p >= '0' && *p <= '9'))
			return 0;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p)
		return 0;
	*out = strtod(s, NULL);
	return isfinite(*out);
}

static int cell_order(const struct cell *a, const struct cell *b)
{
	if (a->kind != b->kind)
		return a->kind < b->kind ? -1 : 1;
	if (a->kind == CELL_NUM)
		return a->num < b->num ? -1 : a->num > b->num;
	if (a->kind == CELL_TEXT)
		return strcmp(a->text, b->text);
	return 0;
}

static int row_order(const void *x, const void *y)
{
	const struct row *a = x, *b = y;
	for (int i = 0; i < a->ncols; i++) {
		int c = cell_order(&a->c[i], &b->c[i]);
		if (c)
			return c;
	}
	return 0;
}

static int cell_equal(const struct cell *a, const struct cell *b)
{
	if (a->kind != b->kind)
		return 0;
	if (a->kind == CELL_NUM) {
		double d = fabs(a->num - b->num);
		return d <= RESCMP_ABS_TOL || d <= RESCMP_REL_TOL * fmax(fabs(a->num), fabs(b->num));
	}
	return a->kind == CELL_NULL || !strcmp(a->text, b->text);
}

/* Reads a result into rows over one cell array; NULL without memory. */
static struct row *rows_of(const struct rescmp_result *res, struct cell **cells_out)
{
	int ncols = res->ncols;
	int64_t nrows = res->nrows;
	*cells_out = NULL;
	struct row *rows = xcalloc(nrows ? (size_t)nrows : 1, sizeof *rows);
	struct cell *cells = xcalloc(nrows && ncols ? (size_t)nrows * (size_t)ncols : 1, sizeof *cells);
	if (!rows || !cells) {
		free(rows);
		free(cells);
		return NULL;
	}
	for (int64_t r = 0; r < nrows; r++) {
		rows[r].c = cells + r * ncols;
		rows[r].ncols = ncols;
		rows[r].index = r;
		for (int c = 0; c < ncols; c++) {
			struct cell *cell = &rows[r].c[c];
			cell->text = res->cell(res->obj, r, c);
			cell->kind = !cell->text ? CELL_NULL : read_number(cell->text, &cell->num) ? CELL_NUM : CELL_TEXT;
		}
	}
	*cells_out = cells;
	return rows;
}

static void describe_cell(char *out, size_t n, const struct cell *c)
{
	if (c->kind == CELL_NULL)
		snprintf(out, n, "NULL");
	else
		snprintf(out, n, "%s%.60s%s", c->kind == CELL_TEXT ? "'" : "", c->text, c->kind == CELL_TEXT ? "'" : "");
}

int rescmp_match(const struct rescmp_result *gold, const struct rescmp_result *pred, int ordered, char *why, size_t whylen)
{
	char spare[8];
	if (!why)
		why = spare, whylen = sizeof spare;
	int gc = gold->ncols, pc = pred->ncols;
	long long gr = (long long)gold->nrows, pr = (long long)pred->nrows;
	if (gc != pc) {
		snprintf(why, whylen, "the prediction has %d column%s where the gold result has %d", pc, pc == 1 ? "" : "s", gc);
		return 0;
	}
	if (gr != pr) {
		snprintf(why, whylen, "the prediction has %lld row%s where the gold result has %lld", pr, pr == 1 ? "" : "s", gr);
		return 0;
	}
	struct cell *gcells = NULL, *pcells = NULL;
	struct row *grows = rows_of(gold, &gcells);
	struct row *prows = rows_of(pred, &pcells);
	int rc = -1;
	if (!grows || !prows)
		goto done;
	if (!ordered) {
		qsort(grows, (size_t)gr, sizeof *grows, row_order);
		qsort(prows, (size_t)pr, sizeof *prows, row_order);
	}
	rc = 1;
	for (long long r = 0; rc == 1 && r < gr; r++) {
		for (int c = 0; c < gc; c++) {
			if (cell_equal(&grows[r].c[c], &prows[r].c[c]))
				continue;
			char g[80], p[80];
			describe_cell(g, sizeof g, &grows[r].c[c]);
			describe_cell(p, sizeof p, &prows[r].c[c]);
			if (ordered)
				snprintf(why, whylen,
				         "row %lld column %d holds the value %s where the gold result has the value %s", r + 1,
				         c + 1, p, g);
			else
				snprintf(why, whylen,
				         "the rows differ (as multisets): column %d holds the value %s in the prediction "
				         "where the gold result has the value %s",
				         c + 1, p, g);
			rc = 0;
			break;
		}
	}
done:
	free(grows);
	free(prows);
	free(gcells);
	free(pcells);
	return rc;
}
