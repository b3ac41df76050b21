/* test_chart.c -- the chart an answer gets (src/api/chart.c): the mark and
 * encodings chosen for every result shape, the whitelist (only mark,
 * encoding, data.values, $schema and our own title and description; never
 * url/transform/params/expr), the rows a chart carries (bounded in number
 * and bytes, a cut result's chart titled "First N of M rows"),
 * field names escaped for Vega-Lite, NULL and non-finite cells, results
 * that get no chart, and every failed allocation ending in ENOMEM.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/chart.h"
#include "convbi/convbi.h"
#include "db/table.h"
#include "util/alloc.h"

/* A table from "name:T" column specs (T = i, r, t for INTEGER, REAL,
 * TEXT) and rows of cells ("" = NULL), row-major. */
static struct table *make(int ncols, const char *const *cols, int nrows, const char *const *cells)
{
	struct table *t = NULL;
	assert_int_equal(table_new(&t, ncols), CONVBI_OK);
	int types[8];
	for (int c = 0; c < ncols; c++) {
		char name[64];
		const char *colon = strchr(cols[c], ':');
		snprintf(name, sizeof name, "%.*s", (int)(colon - cols[c]), cols[c]);
		types[c] = colon[1] == 'i' ? TABLE_INT : colon[1] == 'r' ? TABLE_REAL : TABLE_TEXT;
		assert_int_equal(table_set_column(t, c, name, NULL), CONVBI_OK);
	}
	for (int r = 0; r < nrows; r++) {
		assert_int_equal(table_add_row(t), CONVBI_OK);
		for (int c = 0; c < ncols; c++) {
			const char *v = cells[r * ncols + c];
			if (*v)
				assert_int_equal(table_set_cell(t, r, c, types[c], v, strlen(v), 0), CONVBI_OK);
		}
	}
	return t;
}

/* The spec as a tree (NULL when no chart); checks the whitelist. */
static cJSON *chart_of(struct table *t)
{
	char *json = NULL;
	assert_int_equal(chart_build(&json, t), CONVBI_OK);
	table_free(t);
	if (!json)
		return NULL;
	cJSON *spec = cJSON_Parse(json);
	free(json);
	assert_non_null(spec);
	const cJSON *k;
	cJSON_ArrayForEach(k, spec)
	{
		assert_true(!strcmp(k->string, "$schema") || !strcmp(k->string, "data") || !strcmp(k->string, "mark") ||
		            !strcmp(k->string, "encoding") || !strcmp(k->string, "title") || !strcmp(k->string, "description"));
		if (!strcmp(k->string, "title") || !strcmp(k->string, "description"))
			assert_true(cJSON_IsString(k)); /* plain text, never a signal or an expression */
	}
	assert_string_equal(cJSON_GetObjectItem(spec, "$schema")->valuestring, "https://vega.github.io/schema/vega-lite/v5.json");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(spec, "data")), 1);
	assert_true(cJSON_IsArray(cJSON_GetObjectItem(cJSON_GetObjectItem(spec, "data"), "values")));
	char *text = cJSON_PrintUnformatted(spec);
	for (const char *bad = "url\0transform\0params\0expr\0"; *bad; bad += strlen(bad) + 1) {
		char key[32];
		snprintf(key, sizeof key, "\"%s\":", bad);
		assert_null(strstr(text, key));
	}
	free(text);
	return spec;
}

static const char *mark(const cJSON *spec)
{
	return cJSON_GetObjectItem(cJSON_GetObjectItem(spec, "mark"), "type")->valuestring;
}

static const char *enc(const cJSON *spec, const char *channel, const char *key)
{
	const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(spec, "encoding"), channel), key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void category_and_number_is_a_bar(void **state)
{
	static const char *const cols[] = {"country:t", "n:i"};
	static const char *const cells[] = {"US", "44", "GB", "28", "FR", "20", "DE", "19", "CA", "18", "AU", "16", "JP", "13"};
	cJSON *s = chart_of(make(2, cols, 7, cells));
	assert_string_equal(mark(s), "bar");
	assert_string_equal(enc(s, "x", "field"), "country");
	assert_string_equal(enc(s, "x", "type"), "nominal");
	assert_string_equal(enc(s, "y", "field"), "n");
	assert_null(enc(s, "y", "aggregate")); /* distinct categories: nothing to sum */
	cJSON_Delete(s);
}

static void long_labels_make_the_bar_horizontal(void **state)
{
	static const char *const cols[] = {"product:t", "price:r"};
	static const char *const cells[] = {
	        "a rather long product name 1", "1.5", "b", "2", "c", "3", "d", "4", "e", "5", "f", "6", "g", "7"};
	cJSON *s = chart_of(make(2, cols, 7, cells));
	assert_string_equal(mark(s), "bar");
	assert_string_equal(enc(s, "y", "field"), "product");
	assert_string_equal(enc(s, "x", "type"), "quantitative");
	cJSON_Delete(s);
}

static void repeated_categories_are_summed(void **state)
{
	static const char *const cols[] = {"c:t", "v:i"};
	static const char *const cells[] = {"a", "1", "b", "2", "a", "3", "b", "4", "c", "5", "c", "6", "d", "7"};
	cJSON *s = chart_of(make(2, cols, 7, cells));
	assert_string_equal(enc(s, "y", "aggregate"), "sum");
	cJSON_Delete(s);
}

static void few_non_negative_parts_are_an_arc(void **state)
{
	static const char *const cols[] = {"status:t", "n:i"};
	static const char *const cells[] = {"open", "3", "closed", "5", "lost", "0"};
	cJSON *s = chart_of(make(2, cols, 3, cells));
	assert_string_equal(mark(s), "arc");
	assert_string_equal(enc(s, "theta", "field"), "n");
	assert_string_equal(enc(s, "color", "field"), "status");
	cJSON_Delete(s);
	static const char *const neg[] = {"open", "3", "closed", "-5"};
	s = chart_of(make(2, cols, 2, neg));
	assert_string_equal(mark(s), "bar"); /* a negative part is no whole */
	cJSON_Delete(s);
}

static void time_and_number_is_a_line_with_its_time_unit(void **state)
{
	static const char *const cols[] = {"month:t", "revenue:r"};
	static const char *const months[] = {"2024-01", "10.5", "2024-02", "", "2024-03", "12"};
	cJSON *s = chart_of(make(2, cols, 3, months));
	assert_string_equal(mark(s), "line");
	assert_string_equal(enc(s, "x", "type"), "temporal");
	assert_string_equal(enc(s, "x", "timeUnit"), "yearmonth");
	cJSON_Delete(s);
	static const char *const mixed[] = {"2024-01-05", "1", "2024", "2"}; /* the coarsest value decides */
	s = chart_of(make(2, cols, 2, mixed));
	assert_string_equal(enc(s, "x", "timeUnit"), "year");
	cJSON_Delete(s);
	static const char *const stamps[] = {"2024-01-05 10:00:00", "1", "2024-01-05T11:30", "2"};
	s = chart_of(make(2, cols, 2, stamps));
	assert_null(enc(s, "x", "timeUnit"));
	cJSON_Delete(s);
}

static void a_further_category_is_color(void **state)
{
	static const char *const cols[] = {"month:t", "country:t", "n:i"};
	static const char *const cells[] = {"2024-01", "US", "1", "2024-01", "GB", "2", "2024-02", "US", "3"};
	cJSON *s = chart_of(make(3, cols, 3, cells));
	assert_string_equal(mark(s), "line");
	assert_string_equal(enc(s, "color", "field"), "country");
	cJSON_Delete(s);
	static const char *const cols2[] = {"country:t", "status:t", "n:i"};
	static const char *const cells2[] = {"US", "open", "1", "US", "lost", "2", "GB", "open", "3"};
	s = chart_of(make(3, cols2, 3, cells2));
	assert_string_equal(mark(s), "bar");
	assert_string_equal(enc(s, "xOffset", "field"), "status");
	assert_string_equal(enc(s, "color", "field"), "status");
	cJSON_Delete(s);
}

static void two_numbers_are_points(void **state)
{
	static const char *const cols[] = {"price:r", "cost:r", "kind:t"};
	static const char *const cells[] = {"1.5", "1", "a", "2.5", "2", "b"};
	cJSON *s = chart_of(make(3, cols, 2, cells));
	assert_string_equal(mark(s), "point");
	assert_string_equal(enc(s, "x", "field"), "price");
	assert_string_equal(enc(s, "y", "field"), "cost");
	assert_string_equal(enc(s, "color", "field"), "kind");
	cJSON_Delete(s);
}

static void field_names_are_escaped_and_values_keep_their_types(void **state)
{
	static const char *const cols[] = {"a.b[0]:t", "x\\y:r"};
	static const char *const cells[] = {"p", "inf", "q", "", "r", "2.5", "s", "1", "t", "1", "u", "1", "v", "1"};
	cJSON *s = chart_of(make(2, cols, 7, cells));
	assert_string_equal(enc(s, "x", "field"), "a\\.b\\[0\\]");
	assert_string_equal(enc(s, "y", "field"), "x\\\\y");
	const cJSON *values = cJSON_GetObjectItem(cJSON_GetObjectItem(s, "data"), "values");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(values, 0), "x\\y"))); /* inf is no JSON number */
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(values, 1), "x\\y")));
	assert_true(cJSON_GetObjectItem(cJSON_GetArrayItem(values, 2), "x\\y")->valuedouble == 2.5);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(values, 0), "a.b[0]")->valuestring, "p");
	cJSON_Delete(s);
}

static void other_shapes_get_no_chart(void **state)
{
	static const char *const one[] = {"n:i"};
	static const char *const one_cells[] = {"1"};
	assert_null(chart_of(make(1, one, 1, one_cells)));
	static const char *const text[] = {"a:t", "b:t"};
	static const char *const text_cells[] = {"x", "y"};
	assert_null(chart_of(make(2, text, 1, text_cells)));
	static const char *const num[] = {"a:t", "n:i"};
	assert_null(chart_of(make(2, num, 0, NULL))); /* no rows */
	static const char *const four[] = {"a:t", "b:t", "c:t", "n:i"};
	static const char *const four_cells[] = {"x", "y", "z", "1"};
	assert_null(chart_of(make(4, four, 1, four_cells)));
	static const char *const dup[] = {"n:t", "n:i"};
	static const char *const dup_cells[] = {"x", "1"};
	assert_null(chart_of(make(2, dup, 1, dup_cells))); /* a field must name one column */
	static const char *const nums[] = {"a:i", "b:i", "c:i"};
	static const char *const nums_cells[] = {"1", "2", "3"};
	assert_null(chart_of(make(3, nums, 1, nums_cells)));
	char *json = (char *)"x";
	assert_int_equal(chart_build(&json, NULL), CONVBI_OK);
	assert_null(json);
}

static const char *text_of(const cJSON *spec, const char *key)
{
	const cJSON *v = cJSON_GetObjectItem(spec, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int values_of(const cJSON *spec)
{
	return cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(spec, "data"), "values"));
}

/* A table of n rows "label<i>" (padded with x to label_bytes), i. */
static struct table *numbered(int n, size_t label_bytes)
{
	struct table *t = NULL;
	assert_int_equal(table_new(&t, 2), CONVBI_OK);
	assert_int_equal(table_set_column(t, 0, "label", NULL), CONVBI_OK);
	assert_int_equal(table_set_column(t, 1, "n", NULL), CONVBI_OK);
	char *label = malloc(label_bytes + 32);
	assert_non_null(label);
	for (int r = 0; r < n; r++) {
		int len = snprintf(label, label_bytes + 32, "label%d", r);
		while ((size_t)len < label_bytes)
			label[len++] = 'x';
		char num[32];
		int nl = snprintf(num, sizeof num, "%d", r);
		assert_int_equal(table_add_row(t), CONVBI_OK);
		assert_int_equal(table_set_cell(t, r, 0, TABLE_TEXT, label, (size_t)len, 0), CONVBI_OK);
		assert_int_equal(table_set_cell(t, r, 1, TABLE_INT, num, (size_t)nl, 0), CONVBI_OK);
	}
	free(label);
	return t;
}

/* attack9 F7: the chart repeated every row of a result at the row cap or
 * the 1 MB size cap, doubling the answer, and never said the rows were
 * only the first ones. */
static void a_cut_result_charts_its_first_rows_and_says_of_how_many(void **state)
{
	struct table *t = numbered(CHART_MAX_ROWS, 4);
	t->truncated = 1;
	t->cut = TABLE_CUT_ROWS;
	t->total_rows = 2000;
	cJSON *s = chart_of(t);
	assert_string_equal(mark(s), "bar");
	assert_int_equal(values_of(s), CHART_MAX_ROWS);
	assert_string_equal(text_of(s, "title"), "First 1000 of 2000 rows");
	assert_string_equal(text_of(s, "description"),
	                    "Only the first 1000 rows are charted; the query returned 2000 rows; "
	                    "the first 1000 are kept, cut by the row cap.");
	cJSON_Delete(s);

	t = numbered(CHART_MAX_ROWS, 4); /* counting stopped: a lower bound */
	t->truncated = 1;
	t->cut = TABLE_CUT_ROWS;
	t->total_rows = 123456;
	t->total_partial = 1;
	s = chart_of(t);
	assert_string_equal(text_of(s, "title"), "First 1000 of at least 123456 rows");
	cJSON_Delete(s);

	t = numbered(10, 4); /* not counted at all: at least one more row */
	t->truncated = 1;
	t->cut = TABLE_CUT_BYTES;
	s = chart_of(t);
	assert_string_equal(text_of(s, "title"), "First 10 of at least 11 rows");
	assert_non_null(strstr(text_of(s, "description"), "cut by the result size cap"));
	cJSON_Delete(s);
}

static void a_chart_carries_a_bounded_number_of_rows_and_bytes(void **state)
{
	cJSON *s = chart_of(numbered(CHART_MAX_ROWS + 500, 4)); /* a whole result past the bound */
	assert_int_equal(values_of(s), CHART_MAX_ROWS);
	assert_string_equal(text_of(s, "title"), "First 1000 of 1500 rows");
	assert_non_null(strstr(text_of(s, "description"), "a chart holds at most 1000 rows and 64 KB of values"));
	cJSON_Delete(s);

	struct table *t = numbered(261, 4000); /* the 1 MB cap's worth of 4 KB labels */
	t->truncated = 1;
	t->cut = TABLE_CUT_BYTES;
	t->total_rows = 5000;
	char *json = NULL;
	assert_int_equal(chart_build(&json, t), CONVBI_OK);
	assert_true(strlen(json) < CHART_MAX_BYTES + 4096); /* not the result again */
	free(json);
	s = chart_of(t);
	int n = values_of(s);
	assert_int_equal(n, CHART_MAX_BYTES / (4000 + 3)); /* the rows whose cells fit in 64 KB */
	char title[64];
	snprintf(title, sizeof title, "First %d of 5000 rows", n);
	assert_string_equal(text_of(s, "title"), title);
	cJSON_Delete(s);

	s = chart_of(numbered(CHART_MAX_ROWS, 4)); /* whole and within bounds: as before, no title */
	assert_int_equal(values_of(s), CHART_MAX_ROWS);
	assert_null(cJSON_GetObjectItem(s, "title"));
	assert_null(cJSON_GetObjectItem(s, "description"));
	cJSON_Delete(s);
}

static void parts_of_a_cut_result_are_no_arc(void **state)
{
	static const char *const cols[] = {"status:t", "n:i"};
	static const char *const cells[] = {"open", "3", "closed", "5", "lost", "0"};
	struct table *t = make(2, cols, 3, cells);
	t->truncated = 1;
	t->cut = TABLE_CUT_ROWS;
	t->total_rows = 9;
	cJSON *s = chart_of(t);
	assert_string_equal(mark(s), "bar"); /* parts of a whole need the whole */
	assert_string_equal(text_of(s, "title"), "First 3 of 9 rows");
	cJSON_Delete(s);
}

static void every_failed_allocation_ends_in_enomem(void **state)
{
	static const char *const cols[] = {"c:t", "n:i"};
	static const char *const cells[] = {"a", "1", "b", "2", "c", "3", "d", "4", "e", "5", "f", "6", "g", "7"};
	struct table *t = make(2, cols, 7, cells);
	int enomem = 0;
	cJSON_Hooks hooks = {xmalloc, free};
	cJSON_InitHooks(&hooks);
	for (long n = 1; n < 400; n++) {
		char *json = NULL;
		alloc_fail_at(n, 0);
		int rc = chart_build(&json, t);
		alloc_fail_at(0, 0);
		if (rc == CONVBI_OK) {
			assert_non_null(json);
			free(json);
			break;
		}
		assert_int_equal(rc, CONVBI_ENOMEM);
		assert_null(json);
		enomem++;
	}
	cJSON_InitHooks(NULL);
	assert_true(enomem >= 1); /* the spec is written into one buffer, reserved at once */
	table_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(category_and_number_is_a_bar),
	        cmocka_unit_test(long_labels_make_the_bar_horizontal),
	        cmocka_unit_test(repeated_categories_are_summed),
	        cmocka_unit_test(few_non_negative_parts_are_an_arc),
	        cmocka_unit_test(time_and_number_is_a_line_with_its_time_unit),
	        cmocka_unit_test(a_further_category_is_color),
	        cmocka_unit_test(two_numbers_are_points),
	        cmocka_unit_test(field_names_are_escaped_and_values_keep_their_types),
	        cmocka_unit_test(other_shapes_get_no_chart),
	        cmocka_unit_test(a_cut_result_charts_its_first_rows_and_says_of_how_many),
	        cmocka_unit_test(a_chart_carries_a_bounded_number_of_rows_and_bytes),
	        cmocka_unit_test(parts_of_a_cut_result_are_no_arc),
	        cmocka_unit_test(every_failed_allocation_ends_in_enomem),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
