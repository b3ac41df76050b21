/* eval_compare.c -- are two query results the same?  (execution accuracy)
 *
 * EX counts a prediction correct when its result equals the gold result.
 * Here "equal" means, after reading every cell through the public
 * accessors (convbi_answer_cell: text, NULL for SQL NULL):
 *   - the same number of columns (their names do not matter; their order
 *     does -- a prediction with the right columns in another order is
 *     wrong, as in BIRD's evaluation);
 *   - the same rows as a multiset: both sides are sorted with one total
 *     order (NULL < numbers by value < texts bytewise) and then compared
 *     pairwise, unless the gold SQL orders its result (sql_orders_result),
 *     in which case the rows are compared in the order they came;
 *   - cells equal when both are NULL, both read fully as decimal numbers
 *     (sign, digits, point, exponent; no hex, inf or nan) and agree within
 *     a relative tolerance of EVAL_REL_TOL -- "1", "1.0" and "1e0" are one
 *     value, as are 0.1+0.2 and 0.3 -- or the texts are identical.
 * Sorting uses exact values and equality the tolerance, so two values
 * closer than the tolerance that sort differently could be misaligned;
 * that needs two distinct rows within 1e-6 of each other and is accepted.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/eval.h"

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

int sql_orders_result(const char *sql)
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
	int kind;          /* enum cell_kind */
	double num;        /* CELL_NUM */
	const char *text;  /* borrowed from the answer; NULL for CELL_NULL */
};

struct row {
	struct cell *c;    /* points into the result's cell array */
	int ncols;
	long long index;   /* the row's position in its result */
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
		return d <= EVAL_ABS_TOL || d <= EVAL_REL_TOL * fmax(fabs(a->num), fabs(b->num));
	}
	return a->kind == CELL_NULL || !strcmp(a->text, b->text);
}

/* Reads a result into rows over one cell array; NULL without memory. */
static struct row *rows_of(const convbi_answer *a, int ncols, long long nrows, struct cell **cells_out)
{
	*cells_out = NULL;
	struct row *rows = calloc(nrows ? (size_t)nrows : 1, sizeof *rows);
	struct cell *cells = calloc(nrows && ncols ? (size_t)nrows * (size_t)ncols : 1, sizeof *cells);
	if (!rows || !cells) {
		free(rows);
		free(cells);
		return NULL;
	}
	for (long long r = 0; r < nrows; r++) {
		rows[r].c = cells + r * ncols;
		rows[r].ncols = ncols;
		rows[r].index = r;
		for (int c = 0; c < ncols; c++) {
			struct cell *cell = &rows[r].c[c];
			cell->text = convbi_answer_cell(a, r, c);
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

int results_match(const convbi_answer *gold, const convbi_answer *pred, int ordered, char *why, size_t whylen)
{
	int gc = convbi_answer_column_count(gold), pc = convbi_answer_column_count(pred);
	long long gr = convbi_answer_row_count(gold), pr = convbi_answer_row_count(pred);
	if (gc != pc) {
		snprintf(why, whylen, "the prediction has %d column%s where the gold result has %d", pc, pc == 1 ? "" : "s", gc);
		return 0;
	}
	if (gr != pr) {
		snprintf(why, whylen, "the prediction has %lld row%s where the gold result has %lld", pr, pr == 1 ? "" : "s", gr);
		return 0;
	}
	struct cell *gcells = NULL, *pcells = NULL;
	struct row *grows = rows_of(gold, gc, gr, &gcells);
	struct row *prows = rows_of(pred, pc, pr, &pcells);
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
				snprintf(why, whylen, "row %lld column %d holds the value %s where the gold result has the value %s", r + 1,
				         c + 1, p, g);
			else
				snprintf(why, whylen, "the rows differ (as multisets): column %d holds the value %s in the prediction "
				         "where the gold result has the value %s", c + 1, p, g);
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
