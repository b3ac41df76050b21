/* test_table.c -- struct table and its renderings (src/db/table.c,
 * table_render.c, text.c).
 *
 * Golden cases: one table with numbers, text, NULL, an empty string, a
 * BLOB, "-Inf" (stored as "-inf", JSON null), a quote, a comma, a newline, a pipe and wide characters is
 * rendered in every mode and compared byte for byte; then the edges -- no
 * rows, a truncated result, very long cells, control characters, repeated
 * column names, a capped output buffer, invalid UTF-8 given to the
 * builder, and the summary's byte budget.  Every allocation of building
 * and rendering is also made to fail in turn: each must end in
 * CONVBI_ENOMEM with the output untouched (leaks show under ASan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convbi/convbi.h"
#include "db/table.h"
#include "db/text.h"
#include "util/alloc.h"
#include "util/buf.h"

static void set(struct table *t, int64_t r, int c, int type, const char *s)
{
	assert_int_equal(table_set_cell(t, r, c, type, s, s ? strlen(s) : 0, 0), CONVBI_OK);
}

/* id INTEGER | name TEXT | price REAL | note (no type), three rows. */
static struct table *sample(void)
{
	struct table *t = NULL;
	assert_int_equal(table_new(&t, 4), CONVBI_OK);
	assert_int_equal(table_set_column(t, 0, "id", "INTEGER"), CONVBI_OK);
	assert_int_equal(table_set_column(t, 1, "name", "TEXT"), CONVBI_OK);
	assert_int_equal(table_set_column(t, 2, "price", "REAL"), CONVBI_OK);
	assert_int_equal(table_set_column(t, 3, "note", NULL), CONVBI_OK);
	for (int r = 0; r < 3; r++)
		assert_int_equal(table_add_row(t), CONVBI_OK);
	set(t, 0, 0, TABLE_INT, "1");
	set(t, 0, 1, TABLE_TEXT, "Alice");
	set(t, 0, 2, TABLE_REAL, "2.5");
	set(t, 0, 3, TABLE_TEXT, "a, \"quoted\"\nline");
	set(t, 1, 0, TABLE_INT, "22");
	set(t, 1, 1, TABLE_TEXT, "B\xC3\xB6rk \xE6\x97\xA5\xE6\x9C\xAC"); /* Börk 日本: width 9 */
	set(t, 1, 2, TABLE_NULL, NULL);
	set(t, 1, 3, TABLE_TEXT, "x|y");
	set(t, 2, 0, TABLE_INT, "333");
	set(t, 2, 1, TABLE_TEXT, "");
	set(t, 2, 2, TABLE_REAL, "-Inf");
	assert_int_equal(table_set_cell(t, 2, 3, TABLE_BLOB, "\x01\x02\xff", 3, 0), CONVBI_OK);
	return t;
}

static const char golden_aligned[] =
        "+-----+-----------+-------+-------------------+\n"
        "| id  |   name    | price |       note        |\n"
        "+-----+-----------+-------+-------------------+\n"
        "|   1 | Alice     |   2.5 | a, \"quoted\"\\nline |\n"
        "|  22 | B\xC3\xB6rk \xE6\x97\xA5\xE6\x9C\xAC |  NULL | x|y               |\n"
        "| 333 |           |  -inf | X'0102ff'         |\n"
        "+-----+-----------+-------+-------------------+\n"
        "(3 rows)\n";

static const char golden_csv[] =
        "id,name,price,note\r\n"
        "1,Alice,2.5,\"a, \"\"quoted\"\"\nline\"\r\n"
        "22,B\xC3\xB6rk \xE6\x97\xA5\xE6\x9C\xAC,,x|y\r\n"
        "333,\"\",-inf,X'0102ff'\r\n";

static const char golden_json[] =
        "[{\"id\":1,\"name\":\"Alice\",\"price\":2.5,\"note\":\"a, \\\"quoted\\\"\\nline\"},\n"
        "{\"id\":22,\"name\":\"B\xC3\xB6rk \xE6\x97\xA5\xE6\x9C\xAC\",\"price\":null,\"note\":\"x|y\"},\n"
        "{\"id\":333,\"name\":\"\",\"price\":null,\"note\":\"X'0102ff'\"}]\n";

static const char golden_markdown[] =
        "| id  |   name    | price |       note        |\n"
        "|----:|-----------|------:|-------------------|\n"
        "|   1 | Alice     |   2.5 | a, \"quoted\"\\nline |\n"
        "|  22 | B\xC3\xB6rk \xE6\x97\xA5\xE6\x9C\xAC |  NULL | x\\|y              |\n"
        "| 333 |           |  -inf | X'0102ff'         |\n";

static void each_mode_renders_the_sample_table_exactly(void **state)
{
	(void)state;
	static const struct {
		enum table_mode mode;
		const char *want;
	} cases[] = {{TABLE_ALIGNED, golden_aligned},
	             {TABLE_CSV, golden_csv},
	             {TABLE_JSON, golden_json},
	             {TABLE_MARKDOWN, golden_markdown}};
	struct table *t = sample();
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct buf b = BUF_INIT;
		assert_int_equal(table_render(&b, t, cases[i].mode, -1), CONVBI_OK);
		if (strcmp(buf_str(&b), cases[i].want))
			fail_msg("mode %d:\n%s\nwant:\n%s", cases[i].mode, buf_str(&b), cases[i].want);
		buf_release(&b);
	}
	table_free(t);
}

static void aligned_mode_says_how_many_rows_it_left_out(void **state)
{
	(void)state;
	struct table *t = sample();
	struct buf b = BUF_INIT;
	assert_int_equal(table_render(&b, t, TABLE_ALIGNED, 1), CONVBI_OK);
	assert_string_equal(buf_str(&b),
	                    "+----+-------+-------+-------------------+\n"
	                    "| id | name  | price |       note        |\n"
	                    "+----+-------+-------+-------------------+\n"
	                    "|  1 | Alice |   2.5 | a, \"quoted\"\\nline |\n"
	                    "+----+-------+-------+-------------------+\n"
	                    "(showing 1 of 3 rows)\n");
	t->truncated = 1;
	t->cut = TABLE_CUT_ROWS;
	buf_reset(&b);
	assert_int_equal(table_render(&b, t, TABLE_ALIGNED, 0), CONVBI_OK);
	assert_string_equal(buf_str(&b),
	                    "+----+------+-------+------+\n"
	                    "| id | name | price | note |\n"
	                    "+----+------+-------+------+\n"
	                    "(showing 0 of 3 rows; more were left out by the row cap)\n");
	t->cut = TABLE_CUT_BYTES;
	buf_reset(&b);
	assert_int_equal(table_render(&b, t, TABLE_ALIGNED, -1), CONVBI_OK);
	assert_non_null(strstr(buf_str(&b), "(3 rows; more were left out by the result size cap)\n"));
	buf_release(&b);
	table_free(t);
}

static void the_row_cap_footer_gives_the_total_once_it_is_known(void **state)
{
	(void)state;
	struct table *t = sample();
	t->truncated = 1;
	t->cut = TABLE_CUT_ROWS;
	t->total_rows = 12345;
	struct buf b = BUF_INIT;
	assert_int_equal(table_render(&b, t, TABLE_ALIGNED, -1), CONVBI_OK);
	assert_non_null(strstr(buf_str(&b), "(3 rows; the query returned 12345, cut by the row cap)\n"));
	buf_release(&b);
	table_free(t);
}

/* A table of one numeric column v (1.5, 10.25, 3) and a text column z
 * (NULL, 'x', 'y'). */
static struct table *decimals(void)
{
	struct table *t = NULL;
	assert_int_equal(table_new(&t, 2), CONVBI_OK);
	table_set_column(t, 0, "v", NULL);
	table_set_column(t, 1, "z", NULL);
	static const struct {
		int ty;
		const char *v;
		const char *z;
	} rows[] = {{TABLE_REAL, "1.5", NULL}, {TABLE_REAL, "10.25", "x"}, {TABLE_INT, "3", "y"}};
	for (int r = 0; r < 3; r++) {
		table_add_row(t);
		table_set_cell(t, r, 0, rows[r].ty, rows[r].v, strlen(rows[r].v), 0);
		if (rows[r].z)
			table_set_cell(t, r, 1, TABLE_TEXT, rows[r].z, 1, 0);
	}
	return t;
}

static void the_view_lines_numbers_up_on_the_decimal_point(void **state)
{
	(void)state;
	struct table *t = decimals();
	struct table_view v = {TABLE_ALIGNED, -1, 0, TABLE_FIT_NONE, 0, 1, 1};
	struct buf b = BUF_INIT;
	assert_int_equal(table_render_view(&b, t, &v), CONVBI_OK);
	assert_string_equal(buf_str(&b),
	                    "+-------+------+\n"
	                    "|   v   |  z   |\n"
	                    "+-------+------+\n"
	                    "|  1.5  | NULL |\n"
	                    "| 10.25 | x    |\n"
	                    "|  3    | y    |\n"
	                    "+-------+------+\n"
	                    "(3 rows)\n");
	buf_release(&b);
	table_free(t);
}

static void the_view_styles_null_and_headers_only_with_color(void **state)
{
	(void)state;
	struct table *t = decimals();
	struct table_view v = {TABLE_ALIGNED, -1, 0, TABLE_FIT_NONE, 1, 0, 1};
	struct buf b = BUF_INIT;
	assert_int_equal(table_render_view(&b, t, &v), CONVBI_OK);
	assert_non_null(strstr(buf_str(&b), "| \033[2mNULL\033[0m |"));
	assert_non_null(strstr(buf_str(&b), "\033[1mv\033[0m"));
	v.color = 0;
	buf_reset(&b);
	assert_int_equal(table_render_view(&b, t, &v), CONVBI_OK);
	assert_null(strchr(buf_str(&b), '\033'));
	buf_release(&b);
	table_free(t);
}

static void line_mode_shows_one_column_per_line(void **state)
{
	(void)state;
	struct table *t = decimals();
	struct table_view v = {TABLE_LINE, 2, 0, TABLE_FIT_NONE, 0, 0, 0};
	struct buf b = BUF_INIT;
	assert_int_equal(table_render_view(&b, t, &v), CONVBI_OK);
	assert_string_equal(buf_str(&b), "v = 1.5\nz = NULL\n\nv = 10.25\nz = x\n");
	buf_release(&b);
	table_free(t);
}

static void a_table_wider_than_the_screen_turns_vertical_or_is_cut(void **state)
{
	(void)state;
	struct table *t = sample();
	struct table_view v = {TABLE_ALIGNED, -1, 30, TABLE_FIT_VERTICAL, 0, 0, 1};
	struct buf b = BUF_INIT;
	assert_int_equal(table_render_view(&b, t, &v), CONVBI_OK);
	assert_non_null(strstr(buf_str(&b), "   id = 1\n name = Alice\n"));
	v.fit = TABLE_FIT_CUT;
	buf_reset(&b);
	assert_int_equal(table_render_view(&b, t, &v), CONVBI_OK);
	const char *out = buf_str(&b);
	assert_non_null(strstr(out, "| \xE2\x80\xA6 |"));
	assert_non_null(strstr(out, "not shown)"));
	for (const char *line = out; *line; line = strchr(line, '\n') + 1)
		if (*line == '+' || *line == '|')
			assert_true(text_width(line, strcspn(line, "\n")) <= 30);
	v.width = 0; /* no limit: the whole table */
	buf_reset(&b);
	assert_int_equal(table_render_view(&b, t, &v), CONVBI_OK);
	assert_null(strstr(buf_str(&b), "\xE2\x80\xA6 |"));
	buf_release(&b);
	table_free(t);
}

static void an_empty_result_still_shows_its_columns(void **state)
{
	(void)state;
	struct table *t = NULL;
	assert_int_equal(table_new(&t, 2), CONVBI_OK);
	assert_int_equal(table_set_column(t, 0, "a", "INT"), CONVBI_OK);
	assert_int_equal(table_set_column(t, 1, "b", NULL), CONVBI_OK);
	static const struct {
		enum table_mode mode;
		const char *want;
	} cases[] = {
	        {TABLE_ALIGNED, "+---+---+\n| a | b |\n+---+---+\n(0 rows)\n"},
	        {TABLE_CSV, "a,b\r\n"},
	        {TABLE_JSON, "[]\n"},
	        {TABLE_MARKDOWN, "|  a  |  b  |\n|-----|-----|\n"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct buf b = BUF_INIT;
		assert_int_equal(table_render(&b, t, cases[i].mode, -1), CONVBI_OK);
		assert_string_equal(buf_str(&b), cases[i].want);
		buf_release(&b);
	}
	table_free(t);
}

static void long_cells_and_control_characters_stay_on_one_readable_line(void **state)
{
	(void)state;
	struct table *t = NULL;
	char long_text[200];
	memset(long_text, 'w', sizeof long_text - 1);
	long_text[sizeof long_text - 1] = '\0';
	assert_int_equal(table_new(&t, 2), CONVBI_OK);
	assert_int_equal(table_set_column(t, 0, "long", NULL), CONVBI_OK);
	assert_int_equal(table_set_column(t, 1, "ctl", NULL), CONVBI_OK);
	assert_int_equal(table_add_row(t), CONVBI_OK);
	set(t, 0, 0, TABLE_TEXT, long_text);
	set(t, 0, 1, TABLE_TEXT, "tab\there\x1b[31m");
	struct buf b = BUF_INIT;
	assert_int_equal(table_render(&b, t, TABLE_ALIGNED, -1), CONVBI_OK);
	/* 59 'w' then "…": exactly TABLE_COLUMN_WIDTH_MAX columns */
	char row[256];
	snprintf(row, sizeof row, "| %.*s\xE2\x80\xA6 | tab\\there\\x1b[31m |\n", TABLE_COLUMN_WIDTH_MAX - 1, long_text);
	assert_non_null(strstr(buf_str(&b), row));
	for (const char *p = buf_str(&b); *p; p++)
		assert_true(*p == '\n' || (unsigned char)*p >= 0x20);
	/* the cell itself is untouched */
	assert_string_equal(table_cell(t, 0, 0), long_text);
	buf_release(&b);
	table_free(t);
}

/* SQLite's "Inf"/"-Inf" become "inf"/"-inf" in every rendering, and null
 * in JSON, which has no infinity: the JSON stays valid. */
static void infinite_reals_are_inf_in_text_and_null_in_json(void **state)
{
	(void)state;
	struct table *t = NULL;
	assert_int_equal(table_new(&t, 4), CONVBI_OK);
	static const char *const names[] = {"big", "small", "nan", "text"};
	for (int c = 0; c < 4; c++)
		assert_int_equal(table_set_column(t, c, names[c], NULL), CONVBI_OK);
	assert_int_equal(table_add_row(t), CONVBI_OK);
	set(t, 0, 0, TABLE_REAL, "Inf");
	set(t, 0, 1, TABLE_REAL, "-Inf");
	set(t, 0, 2, TABLE_REAL, "NaN");
	set(t, 0, 3, TABLE_TEXT, "Inf");
	assert_string_equal(table_cell(t, 0, 0), "inf");
	assert_string_equal(table_cell(t, 0, 1), "-inf");
	assert_string_equal(table_cell(t, 0, 2), "nan");
	assert_string_equal(table_cell(t, 0, 3), "Inf"); /* text is text */
	assert_true(table_nonfinite(table_cell(t, 0, 0)) && !table_nonfinite("1e308"));
	struct buf b = BUF_INIT;
	assert_int_equal(table_render(&b, t, TABLE_JSON, -1), CONVBI_OK);
	assert_string_equal(buf_str(&b), "[{\"big\":null,\"small\":null,\"nan\":null,\"text\":\"Inf\"}]\n");
	buf_reset(&b);
	assert_int_equal(table_render(&b, t, TABLE_CSV, -1), CONVBI_OK);
	assert_string_equal(buf_str(&b), "big,small,nan,text\r\ninf,-inf,nan,Inf\r\n");
	buf_reset(&b);
	assert_int_equal(table_render(&b, t, TABLE_ALIGNED, -1), CONVBI_OK);
	if (!strstr(buf_str(&b), "| inf |  -inf | nan | Inf  |"))
		fail_msg("%s", buf_str(&b));
	buf_release(&b);
	table_free(t);
}

static void repeated_column_names_get_distinct_json_keys(void **state)
{
	(void)state;
	struct table *t = NULL;
	assert_int_equal(table_new(&t, 3), CONVBI_OK);
	for (int c = 0; c < 3; c++)
		assert_int_equal(table_set_column(t, c, "id", NULL), CONVBI_OK);
	assert_int_equal(table_add_row(t), CONVBI_OK);
	set(t, 0, 0, TABLE_INT, "1");
	set(t, 0, 1, TABLE_REAL, "1.0e+20");
	set(t, 0, 2, TABLE_TEXT, "3");
	struct buf b = BUF_INIT;
	assert_int_equal(table_render(&b, t, TABLE_JSON, -1), CONVBI_OK);
	assert_string_equal(buf_str(&b), "[{\"id\":1,\"id:2\":1.0e+20,\"id:3\":\"3\"}]\n");
	buf_release(&b);
	table_free(t);
}

static void a_capped_buffer_refuses_the_whole_rendering_and_keeps_its_contents(void **state)
{
	(void)state;
	struct table *t = sample();
	for (int mode = TABLE_ALIGNED; mode <= TABLE_MARKDOWN; mode++) {
		struct buf b;
		buf_init(&b, 64);
		assert_int_equal(buf_puts(&b, "before|"), CONVBI_OK);
		assert_int_equal(table_render(&b, t, (enum table_mode)mode, -1), CONVBI_ETOOBIG);
		assert_string_equal(buf_str(&b), "before|");
		buf_release(&b);
	}
	struct buf b = BUF_INIT;
	assert_int_equal(table_render(&b, t, (enum table_mode)42, -1), CONVBI_EINVAL);
	buf_release(&b);
	table_free(t);
}

static void the_builder_repairs_utf8_and_cuts_to_the_cell_cap(void **state)
{
	(void)state;
	struct table *t = NULL;
	assert_int_equal(table_new(&t, 1), CONVBI_OK);
	assert_int_equal(table_set_column(t, 0,
	                                  "bad\xff"
	                                  "name",
	                                  NULL),
	                 CONVBI_OK);
	assert_string_equal(t->cols[0].name, "bad\xEF\xBF\xBDname");
	assert_int_equal(table_add_row(t), CONVBI_OK);
	static const struct {
		const char *in;
		size_t len, cap;
		const char *out;
	} cases[] = {
	        {"ok", 2, 0, "ok"},
	        {"\xC3\x28", 2, 0, "\xEF\xBF\xBD("},                            /* bad continuation byte */
	        {"\xED\xA0\x80", 3, 0, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* a surrogate */
	        {"\xC0\xAF", 2, 0, "\xEF\xBF\xBD\xEF\xBF\xBD"},                 /* overlong '/' */
	        {"a\0b", 3, 0,
	         "a\xEF\xBF\xBD"
	         "b"},                                            /* NUL inside */
	        {"\xF0\x9F\x98\x80!", 5, 0, "\xF0\x9F\x98\x80!"}, /* a valid emoji */
	        {"abcdefghij", 10, 8, "abcde\xE2\x80\xA6"},
	        {"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", 9, 7, "\xE6\x97\xA5\xE2\x80\xA6"},
	        {"abcdef", 6, 2, "ab"},
	};
	int64_t cut = 0;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(table_set_cell(t, 0, 0, TABLE_TEXT, cases[i].in, cases[i].len, cases[i].cap), CONVBI_OK);
		assert_string_equal(table_cell(t, 0, 0), cases[i].out);
		assert_true(text_is_utf8(table_cell(t, 0, 0), strlen(table_cell(t, 0, 0))));
		cut += cases[i].cap && cases[i].len > cases[i].cap;
		assert_int_equal(t->cells_cut, cut);
		assert_int_equal(t->bytes, strlen(cases[i].out));
	}
	assert_int_equal(table_set_cell(t, 0, 0, TABLE_BLOB, "0123456789abcdefX", 17, 0), CONVBI_OK);
	assert_string_equal(table_cell(t, 0, 0), "<blob 17 bytes>");
	assert_int_equal(table_column_type(t, 0), TABLE_BLOB);
	table_pop_row(t);
	assert_int_equal(t->nrows, 0);
	assert_int_equal(t->bytes, 0);
	assert_null(table_cell(t, 0, 0));
	table_free(t);
	table_free(NULL);
}

static void column_types_are_shared_mixed_or_null(void **state)
{
	(void)state;
	struct table *t = sample();
	assert_int_equal(table_column_type(t, 0), TABLE_INT);
	assert_int_equal(table_column_type(t, 1), TABLE_TEXT);
	assert_int_equal(table_column_type(t, 2), TABLE_REAL);
	assert_int_equal(table_column_type(t, 3), -1);
	set(t, 0, 0, TABLE_NULL, NULL);
	set(t, 1, 0, TABLE_NULL, NULL);
	set(t, 2, 0, TABLE_NULL, NULL);
	assert_int_equal(table_column_type(t, 0), TABLE_NULL);
	table_free(t);
}

static void the_summary_fits_its_budget_and_keeps_the_row_count(void **state)
{
	(void)state;
	struct table *t = sample();
	struct buf b = BUF_INIT;
	assert_int_equal(table_summary(&b, t, 1000), CONVBI_OK);
	assert_string_equal(buf_str(&b),
	                    "columns: id, name, price, note\n"
	                    "rows: 3\n"
	                    "1 | Alice | 2.5 | a, \"quoted\"\\nline\n"
	                    "22 | B\xC3\xB6rk \xE6\x97\xA5\xE6\x9C\xAC | NULL | x|y\n"
	                    "333 |  | -inf | X'0102ff'\n");
	for (size_t budget = 0; budget < 200; budget += 7) {
		buf_reset(&b);
		assert_int_equal(table_summary(&b, t, budget), CONVBI_OK);
		assert_true(b.len <= budget);
		assert_true(text_is_utf8(buf_str(&b), b.len));
		if (budget >= 40)
			assert_non_null(strstr(buf_str(&b), "rows: 3\n"));
	}
	buf_reset(&b);
	assert_int_equal(table_summary(&b, t, 80), CONVBI_OK);
	assert_string_equal(buf_str(&b), "columns: id, name, price, note\nrows: 3\n(3 more rows not shown)\n");

	/* many long rows: only TABLE_SUMMARY_ROWS, cells shortened */
	struct table *big = NULL;
	assert_int_equal(table_new(&big, 1), CONVBI_OK);
	assert_int_equal(table_set_column(big, 0, "text", NULL), CONVBI_OK);
	for (int r = 0; r < 20; r++) {
		assert_int_equal(table_add_row(big), CONVBI_OK);
		set(big, r, 0, TABLE_TEXT, "0123456789012345678901234567890123456789-and-more");
	}
	big->truncated = 1;
	big->cut = TABLE_CUT_ROWS;
	buf_reset(&b);
	assert_int_equal(table_summary(&b, big, 4096), CONVBI_OK);
	assert_non_null(strstr(buf_str(&b), "rows: 20 (truncated by the row cap)\n"));
	assert_non_null(strstr(buf_str(&b), "\n0123456789012345678901234567890123456789\xE2\x80\xA6\n"));
	assert_non_null(strstr(buf_str(&b), "(15 more rows not shown)\n"));
	assert_null(strstr(buf_str(&b), "-and-more"));
	buf_release(&b);
	table_free(big);
	table_free(t);
}

static void display_widths_count_wide_and_combining_characters(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		size_t width;
	} cases[] = {
	        {"abc", 3},
	        {"\xC3\xA9t\xC3\xA9", 3},        /* été, precomposed */
	        {"e\xCC\x81", 1},                /* e + combining acute */
	        {"\xE6\x97\xA5\xE6\x9C\xAC", 4}, /* 日本 */
	        {"\xED\x95\x9C\xEA\xB5\xAD", 4}, /* 한국 */
	        {"\xF0\x9F\x98\x80", 2},         /* 😀 */
	        {"\xEF\xBC\xA1", 2},             /* fullwidth A */
	        {"a\xE2\x80\x8B"
	         "b",
	         2}, /* zero-width space */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		assert_int_equal(text_width(cases[i].s, strlen(cases[i].s)), cases[i].width);
}

/* The sample table again, returning the first failure instead of
 * asserting (for the allocation torture). */
static int build_sample(struct table **out)
{
	static const struct {
		int type;
		const char *text;
	} cells[] = {{TABLE_INT, "1"},  {TABLE_TEXT, "Alice"},       {TABLE_REAL, "2.5"}, {TABLE_TEXT, "a\nb"},
	             {TABLE_INT, "22"}, {TABLE_TEXT, "B\xC3\xB6rk"}, {TABLE_NULL, NULL},  {TABLE_BLOB, "\x01\x02"}};
	struct table *t = NULL;
	int rc = table_new(&t, 4);
	for (int c = 0; c < 4 && !rc; c++)
		rc = table_set_column(t, c, c ? "col" : "id", "TEXT");
	for (int r = 0; r < 2 && !rc; r++) {
		rc = table_add_row(t);
		for (int c = 0; c < 4 && !rc; c++) {
			const char *s = cells[r * 4 + c].text;
			rc = table_set_cell(t, r, c, cells[r * 4 + c].type, s, s ? strlen(s) : 0, 3);
		}
	}
	if (rc) {
		table_free(t);
		t = NULL;
	}
	*out = t;
	return rc;
}

static void every_failed_allocation_ends_in_enomem_with_the_output_untouched(void **state)
{
	(void)state;
	/* building */
	for (long n = 1;; n++) {
		struct table *t = NULL;
		alloc_fail_at(n, 0);
		int rc = build_sample(&t);
		long seen = alloc_fail_at(0, 0);
		table_free(t);
		if (seen < n) {
			assert_int_equal(rc, CONVBI_OK);
			break;
		}
		assert_int_equal(rc, CONVBI_ENOMEM);
		assert_null(t);
	}
	/* rendering and summarising: mode -1 is table_summary */
	struct table *t = NULL;
	assert_int_equal(build_sample(&t), CONVBI_OK);
	for (int mode = -1; mode <= TABLE_MARKDOWN; mode++) {
		for (long n = 1;; n++) {
			struct buf b = BUF_INIT;
			assert_int_equal(buf_puts(&b, "kept|"), CONVBI_OK);
			alloc_fail_at(n, 0);
			int rc = mode < 0 ? table_summary(&b, t, 4096) : table_render(&b, t, (enum table_mode)mode, -1);
			long seen = alloc_fail_at(0, 0);
			if (seen < n) {
				assert_int_equal(rc, CONVBI_OK);
				assert_true(n > 1); /* at least one allocation was made to fail */
				buf_release(&b);
				break;
			}
			if (rc != CONVBI_ENOMEM)
				fail_msg("mode %d, allocation %ld failed: got %s", mode, n, convbi_errname(rc));
			assert_string_equal(buf_str(&b), "kept|");
			buf_release(&b);
		}
	}
	table_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(each_mode_renders_the_sample_table_exactly),
	        cmocka_unit_test(aligned_mode_says_how_many_rows_it_left_out),
	        cmocka_unit_test(an_empty_result_still_shows_its_columns),
	        cmocka_unit_test(long_cells_and_control_characters_stay_on_one_readable_line),
	        cmocka_unit_test(repeated_column_names_get_distinct_json_keys),
	        cmocka_unit_test(infinite_reals_are_inf_in_text_and_null_in_json),
	        cmocka_unit_test(a_capped_buffer_refuses_the_whole_rendering_and_keeps_its_contents),
	        cmocka_unit_test(the_row_cap_footer_gives_the_total_once_it_is_known),
	        cmocka_unit_test(the_view_lines_numbers_up_on_the_decimal_point),
	        cmocka_unit_test(the_view_styles_null_and_headers_only_with_color),
	        cmocka_unit_test(line_mode_shows_one_column_per_line),
	        cmocka_unit_test(a_table_wider_than_the_screen_turns_vertical_or_is_cut),
	        cmocka_unit_test(the_builder_repairs_utf8_and_cuts_to_the_cell_cap),
	        cmocka_unit_test(column_types_are_shared_mixed_or_null),
	        cmocka_unit_test(the_summary_fits_its_budget_and_keeps_the_row_count),
	        cmocka_unit_test(display_widths_count_wide_and_combining_characters),
	        cmocka_unit_test(every_failed_allocation_ends_in_enomem_with_the_output_untouched),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
