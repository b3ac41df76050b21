/* rescmp.h -- are two query results the same?  One comparison for all.
 *
 * `convbi eval` counts a prediction correct when its result equals the
 * gold one, and `--candidates N` groups the candidates whose results are
 * equal: both use this, so "the same result" means one thing.  Equal is:
 *   - the same number of columns (names do not matter; order does);
 *   - the same rows as a multiset (both sides sorted with one total order:
 *     NULL < numbers by value < texts bytewise), or in the order they came
 *     when the comparison is ordered;
 *   - cells equal when both are NULL, both read fully as decimal numbers
 *     (sign, digits, point, exponent; no hex, inf or nan) within a relative
 *     tolerance of RESCMP_REL_TOL (RESCMP_ABS_TOL near zero) -- "1", "1.0"
 *     and "1e0" are one value, as are 0.1+0.2 and 0.3 -- or identical texts.
 * Sorting uses exact values and equality the tolerance, so two distinct
 * rows within 1e-6 of each other could be misaligned; that is accepted.
 * Results are read through an accessor, so the tool (over the public
 * answer) and the library (over its own tables) share the code.  Pure.
 */
#ifndef CONVBI_UTIL_RESCMP_H
#define CONVBI_UTIL_RESCMP_H

#include <stddef.h>
#include <stdint.h>

#define RESCMP_REL_TOL 1e-6
#define RESCMP_ABS_TOL 1e-9

/* A result to compare: its shape and a cell reader (text, NULL for SQL
 * NULL), borrowed for the call. */
struct rescmp_result {
	int ncols;
	int64_t nrows;
	const char *(*cell)(const void *obj, int64_t row, int col);
	const void *obj;
};

/* Compares a (the reference: "the gold result" in messages) with b.
 * Returns 1 when they match; 0 with the first difference in why (may be
 * NULL); -1 without memory. */
int rescmp_match(const struct rescmp_result *a, const struct rescmp_result *b, int ordered, char *why, size_t whylen);

/* 1 when sql has an ORDER BY outside any parentheses (after a compound
 * SELECT it orders the whole result), skipping strings, quoted names and
 * comments: its result's order is part of the answer. */
int rescmp_sql_orders(const char *sql);

#endif
