/* test_rescmp.c -- the one comparison of results (src/util/rescmp.c) that
 * `convbi eval` scores with and `--candidates` votes with: numbers within
 * a tolerance, rows as multisets unless ordered, NULLs, column counts, and
 * which ORDER BY orders a result. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/rescmp.h"

/* A result of up to 4 x 3 cells, NULL = SQL NULL. */
struct grid {
	int ncols;
	int64_t nrows;
	const char *c[4][3];
};

static const char *grid_cell(const void *obj, int64_t row, int col)
{
	return ((const struct grid *)obj)->c[row][col];
}

static int cmp(const struct grid *a, const struct grid *b, int ordered, char *why)
{
	struct rescmp_result x = {a->ncols, a->nrows, grid_cell, a}, y = {b->ncols, b->nrows, grid_cell, b};
	return rescmp_match(&x, &y, ordered, why, 200);
}

static void numbers_match_within_the_tolerance_whatever_their_spelling(void **state)
{
	(void)state;
	char why[200];
	struct grid a = {2, 1, {{"1", "0.3"}}}, b = {2, 1, {{"1.0", "0.30000000000000004"}}}, c = {2, 1, {{"1e0", "0.3001"}}};
	assert_int_equal(cmp(&a, &b, 0, why), 1);
	assert_int_equal(cmp(&a, &c, 0, why), 0);
	assert_non_null(strstr(why, "0.3001"));
	struct grid t = {1, 1, {{"0x10"}}}, u = {1, 1, {{"16"}}};
	assert_int_equal(cmp(&t, &u, 0, why), 0); /* hex is text */
}

static void rows_are_a_multiset_unless_the_result_is_ordered(void **state)
{
	(void)state;
	char why[200];
	struct grid a = {1, 3, {{"x"}, {"y"}, {NULL}}}, b = {1, 3, {{NULL}, {"y"}, {"x"}}};
	assert_int_equal(cmp(&a, &b, 0, why), 1);
	assert_int_equal(cmp(&a, &b, 1, why), 0);
	assert_non_null(strstr(why, "row 1"));
	struct grid dup = {1, 3, {{"x"}, {"x"}, {"y"}}}, once = {1, 3, {{"x"}, {"y"}, {"y"}}};
	assert_int_equal(cmp(&dup, &once, 0, why), 0); /* duplicates count */
}

static void shapes_must_agree(void **state)
{
	(void)state;
	char why[200];
	struct grid a = {2, 1, {{"1", "a"}}}, b = {1, 1, {{"1"}}}, c = {2, 2, {{"1", "a"}, {"1", "a"}}};
	assert_int_equal(cmp(&a, &b, 0, why), 0);
	assert_non_null(strstr(why, "1 column where the gold result has 2"));
	assert_int_equal(cmp(&a, &c, 0, NULL), 0); /* why may be NULL */
	struct grid swapped = {2, 1, {{"a", "1"}}};
	assert_int_equal(cmp(&a, &swapped, 0, why), 0);
}

static void only_a_top_level_order_by_orders_the_result(void **state)
{
	(void)state;
	assert_true(rescmp_sql_orders("SELECT a FROM t ORDER BY a"));
	assert_true(rescmp_sql_orders("SELECT a FROM t UNION SELECT b FROM u order\n by 1"));
	assert_false(rescmp_sql_orders("SELECT a FROM (SELECT a FROM t ORDER BY a)"));
	assert_false(rescmp_sql_orders("SELECT 'ORDER BY' FROM t -- ORDER BY a"));
	assert_false(rescmp_sql_orders("SELECT \"order by\" FROM t /* ORDER BY */"));
	assert_false(rescmp_sql_orders("SELECT a AS border FROM t"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(numbers_match_within_the_tolerance_whatever_their_spelling),
	        cmocka_unit_test(rows_are_a_multiset_unless_the_result_is_ordered),
	        cmocka_unit_test(shapes_must_agree),
	        cmocka_unit_test(only_a_top_level_order_by_orders_the_result),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
