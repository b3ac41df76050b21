/* test_examples.c -- verified examples (src/prompt/examples.c): the SQL
 * skeleton, the masked-question and skeleton similarities that choose
 * them, leaving a database out, rendering within a budget, and every way
 * an examples file is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "convbi/convbi.h"
#include "prompt/examples.h"
#include "testutil.h"

static void skeleton_is(const char *sql, const char *want)
{
	struct buf b = BUF_INIT;
	assert_int_equal(examples_skeleton(&b, sql), CONVBI_OK);
	assert_string_equal(buf_str(&b), want);
	buf_release(&b);
}

static void skeletons_keep_structure_and_blank_names_aliases_and_literals(void **state)
{
	(void)state;
	skeleton_is(
	        "SELECT T1.name, count(*) AS n FROM singer AS T1 JOIN concert AS T2 ON T1.id = T2.singer_id "
	        "WHERE T1.age > 30 AND T2.year = '2014' GROUP BY T1.name ORDER BY n DESC LIMIT 3;",
	        "select _ , count ( * ) from _ join _ on _ = _ where _ > _ and _ = _ group by _ order by _ desc limit _");
	/* aliases written with or without AS, quoting and comments do not matter */
	skeleton_is("select \"Name\" from singer s -- the names\nwhere s.\"Age\" >= 2.5e1 /* years */",
	            "select _ from _ where _ >= _");
	skeleton_is("SELECT name FROM singer WHERE age >= 25", "select _ from _ where _ >= _");
	/* functions keep their names; a CAST's type is no name */
	skeleton_is("SELECT strftime('%Y', d), CAST(x AS INTEGER) FROM t", "select strftime ( _ , _ ) , cast ( _ ) from _");
	skeleton_is("SELECT a FROM t EXCEPT SELECT a FROM u WHERE b IN (SELECT c FROM v)",
	            "select _ from _ except select _ from _ where _ in ( select _ from _ )");
	skeleton_is("", "");
}

static struct examples *pool(void)
{
	struct examples *ex = NULL;
	assert_int_equal(examples_new(&ex), CONVBI_OK);
	assert_int_equal(examples_add(ex, "What are the names of all ships?", "SELECT name FROM ship", "ship_1"), CONVBI_OK);
	assert_int_equal(examples_add(ex, "How many singers are older than 30?", "SELECT count(*) FROM singer WHERE age > 30",
	                              "concert_singer"),
	                 CONVBI_OK);
	assert_int_equal(examples_add(ex, "Show the name of each pet and its owner.",
	                              "SELECT p.name, o.name FROM pet p JOIN owner o ON o.id = p.owner_id", "pets_1"),
	                 CONVBI_OK);
	assert_int_equal(examples_add(ex, "List every model of the cars made by a maker.",
	                              "SELECT model FROM car WHERE maker IN (SELECT id FROM maker) ORDER BY model", "car_1"),
	                 CONVBI_OK);
	return ex;
}

static const char *const department_words[] = {"department", "head", "name", "age", "born_state", "budget_in_billions"};

static void the_masked_question_finds_the_same_question_about_other_tables(void **state)
{
	(void)state;
	struct examples *ex = pool();
	struct examples_query q = {"How many heads of the departments are older than 56?", department_words, 6, NULL, NULL};
	size_t picked[EXAMPLES_K];
	int n = 0;
	assert_int_equal(examples_choose(ex, &q, EXAMPLES_K, picked, &n), CONVBI_OK);
	assert_int_equal(n, 3);
	assert_string_equal(ex->v[picked[0]].db, "concert_singer"); /* "how many # older than #" */
	examples_free(ex);
}

static void a_draft_brings_forward_the_example_with_its_skeleton(void **state)
{
	(void)state;
	struct examples *ex = pool();
	/* the question reads like the count example; the draft is a join */
	struct examples_query q = {"How many heads of the departments are older than 56?", department_words, 6,
	                           "SELECT d.name, h.name FROM department d JOIN head h ON h.id = d.head_id", NULL};
	size_t picked[EXAMPLES_K];
	int n = 0;
	assert_int_equal(examples_choose(ex, &q, 1, picked, &n), CONVBI_OK);
	assert_int_equal(n, 1);
	assert_string_equal(ex->v[picked[0]].db, "pets_1");
	examples_free(ex);
}

static void a_database_can_be_left_out_and_repeats_are_skipped(void **state)
{
	(void)state;
	struct examples *ex = pool();
	assert_int_equal(examples_add(ex, "How many singers are older than 30?", "SELECT count(*) FROM singer WHERE age > 30",
	                              "concert_singer"),
	                 CONVBI_OK);
	struct examples_query q = {"How many heads of the departments are older than 56?", department_words, 6, NULL, NULL};
	size_t picked[EXAMPLES_K];
	int n = 0;
	assert_int_equal(examples_choose(ex, &q, EXAMPLES_K, picked, &n), CONVBI_OK);
	for (int i = 1; i < n; i++) /* the copy of the best one is not shown twice */
		assert_false(!strcmp(ex->v[picked[i]].question, ex->v[picked[0]].question));
	q.exclude_db = "concert_singer";
	assert_int_equal(examples_choose(ex, &q, EXAMPLES_K, picked, &n), CONVBI_OK);
	assert_int_equal(n, 3);
	for (int i = 0; i < n; i++)
		assert_string_not_equal(ex->v[picked[i]].db, "concert_singer");
	examples_free(ex);
}

static void rendering_keeps_the_examples_that_fit_whole(void **state)
{
	(void)state;
	struct examples *ex = pool();
	size_t picked[] = {1, 0, 2};
	struct buf b = BUF_INIT;
	assert_int_equal(examples_render(&b, ex, picked, 3, 4000), CONVBI_OK);
	assert_string_equal(buf_str(&b),
	                    "Question: How many singers are older than 30?\nSQL: SELECT count(*) FROM singer WHERE age > 30\n"
	                    "\nQuestion: What are the names of all ships?\nSQL: SELECT name FROM ship\n"
	                    "\nQuestion: Show the name of each pet and its owner.\n"
	                    "SQL: SELECT p.name, o.name FROM pet p JOIN owner o ON o.id = p.owner_id\n");
	buf_reset(&b);
	assert_int_equal(examples_render(&b, ex, picked, 3, 130), CONVBI_OK);
	assert_null(strstr(buf_str(&b), "ships")); /* the second does not fit: left out whole */
	assert_non_null(strstr(buf_str(&b), "age > 30"));
	buf_reset(&b);
	assert_int_equal(examples_render(&b, ex, picked, 3, 80), CONVBI_OK);
	assert_string_equal(buf_str(&b), "Question: What are the names of all ships?\nSQL: SELECT name FROM ship\n");
	buf_release(&b);
	examples_free(ex);
}

static int load_text(const char *text, struct examples **ex, struct err *err)
{
	char *dir = tu_mkdtemp("examples");
	char path[1100];
	snprintf(path, sizeof path, "%s/ex.jsonl", dir);
	assert_int_equal(tu_write_file(path, text), 0);
	int rc = examples_load(ex, path, err);
	tu_rmtree(dir);
	free(dir);
	return rc;
}

static void a_file_loads_with_blank_lines_and_without_db(void **state)
{
	(void)state;
	struct examples *ex = NULL;
	struct err err = ERR_INIT;
	assert_int_equal(load_text("{\"question\":\"q1\",\"sql\":\"SELECT 1\",\"db\":\"a\"}\n\n  \n"
	                           "{\"question\":\"q2\",\"sql\":\"SELECT 2\",\"verdict\":\"ignored\"}",
	                           &ex, &err),
	                 CONVBI_OK);
	assert_int_equal(ex->n, 2);
	assert_string_equal(ex->v[1].db, "");
	examples_free(ex);
}

static void a_bad_file_is_refused_naming_its_line(void **state)
{
	(void)state;
	static const struct {
		const char *text, *msg;
	} bad[] = {
	        {"{\"question\":\"q\",\"sql\":\"SELECT 1\"}\nnot json\n", "ex.jsonl:2: the line is not valid JSON"},
	        {"[1, 2]\n", "ex.jsonl:1: the line is not a JSON object"},
	        {"{\"question\":\"q\"}\n", "ex.jsonl:1: `sql` is missing"},
	        {"{\"question\":\"\",\"sql\":\"SELECT 1\"}\n", "ex.jsonl:1: `question` is missing or not a non-empty string"},
	        {"{\"question\":\"q\",\"sql\":\"SELECT 1\",\"db\":7}\n", "ex.jsonl:1: `db` is missing or not"},
	        {"{\"question\":\"q\xff\",\"sql\":\"SELECT 1\"}\n", "is not UTF-8 (byte 15)"},
	        {"{\"question\":\"q\",\"sql\":\"SELECT 1\"} {}\n", "ex.jsonl:1: the line"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct examples *ex = NULL;
		struct err err = ERR_INIT;
		assert_int_equal(load_text(bad[i].text, &ex, &err), CONVBI_EINVAL);
		assert_null(ex);
		if (!strstr(err.msg, bad[i].msg))
			fail_msg("case %zu: `%s` lacks `%s`", i, err.msg, bad[i].msg);
	}
	struct examples *ex = NULL;
	struct err err = ERR_INIT;
	assert_int_equal(examples_load(&ex, "/nonexistent/ex.jsonl", &err), CONVBI_EINVAL);
	assert_non_null(strstr(err.msg, "--examples"));
	char big[EXAMPLES_TEXT_MAX_BYTES + 64];
	memset(big, 'a', sizeof big);
	int n = snprintf(big, sizeof big, "{\"question\":\"q\",\"sql\":\"");
	memset(big + n, 'x', EXAMPLES_TEXT_MAX_BYTES + 1);
	snprintf(big + n + EXAMPLES_TEXT_MAX_BYTES + 1, sizeof big - (size_t)n - EXAMPLES_TEXT_MAX_BYTES - 1, "\"}\n");
	assert_int_equal(load_text(big, &ex, &err), CONVBI_EINVAL);
	assert_non_null(strstr(err.msg, "the SQL is over"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(skeletons_keep_structure_and_blank_names_aliases_and_literals),
	        cmocka_unit_test(the_masked_question_finds_the_same_question_about_other_tables),
	        cmocka_unit_test(a_draft_brings_forward_the_example_with_its_skeleton),
	        cmocka_unit_test(a_database_can_be_left_out_and_repeats_are_skipped),
	        cmocka_unit_test(rendering_keeps_the_examples_that_fit_whole),
	        cmocka_unit_test(a_file_loads_with_blank_lines_and_without_db),
	        cmocka_unit_test(a_bad_file_is_refused_naming_its_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
