/* test_extract.c -- digging SQL, JSON and labels out of model replies.
 *
 * The rows are replies of the kinds GPT-style models really produce:
 * fenced SQL with prose around it, fences with other or no languages, JSON
 * answers (fenced or bare), bare SQL after "SQL:", cut-off replies, and
 * prose that mentions SQL words without being SQL.  Every row is one CMocka
 * test.  The fixed tests cover the caps, NUL bytes, buffer release on
 * failure, thread-safe first use, and allocation failure.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "convbi/convbi.h"
#include "flow/extract.h"
#include "util/alloc.h"

/* ---- SQL ---------------------------------------------------------------------- */

struct sql_case {
	const char *name;
	const char *reply;
	const char *sql; /* expected, or NULL for CONVBI_EPROTOCOL */
};

static const struct sql_case sqls[] = {
        {"a sql fence alone gives its content", "```sql\nSELECT name FROM customers;\n```", "SELECT name FROM customers"},
        {"a sql fence inside prose gives its content",
         "Sure! Here is the query:\n\n```sql\nSELECT c.name, SUM(o.total) AS spent\nFROM customers "
         "c\nJOIN orders o ON o.customer_id = c.id\nGROUP BY c.name\nORDER BY spent DESC\nLIMIT "
         "5;\n```\n\nThis lists the five customers who spent the most.",
         "SELECT c.name, SUM(o.total) AS spent\nFROM customers c\nJOIN orders o ON o.customer_id = "
         "c.id\nGROUP BY c.name\nORDER BY spent DESC\nLIMIT 5"},
        {"an uppercase sql fence counts", "```SQL\nselect 1\n```", "select 1"},
        {"a sqlite fence counts as sql", "```sqlite\nSELECT date('now');\n```", "SELECT date('now')"},
        {"the first of two sql fences wins", "First try:\n```sql\nSELECT a FROM t\n```\nOr:\n```sql\nSELECT b FROM t\n```",
         "SELECT a FROM t"},
        {"a sql fence beats an earlier plain fence with sql",
         "```\nSELECT 'plain' FROM t\n```\n```sql\nSELECT 'tagged' FROM t\n```", "SELECT 'tagged' FROM t"},
        {"a sql fence is taken even when it does not look like sql", "```sql\nDELETE FROM t\n```", "DELETE FROM t"},
        {"a plain fence with sql is taken", "Query:\n```\nSELECT COUNT(*) FROM orders\n```\nDone.",
         "SELECT COUNT(*) FROM orders"},
        {"a plain fence with a leftover sql line is cleaned", "```\nsql\nSELECT id FROM t;\n```", "SELECT id FROM t"},
        {"a python fence is skipped for a later sql fence", "```python\nprint('SELECT 1')\n```\n\n```sql\nSELECT 2\n```",
         "SELECT 2"},
        {"a plain fence with comments before the sql is taken",
         "```\n-- top customers\n/* by revenue */\nSELECT name FROM customers\n```",
         "-- top customers\n/* by revenue */\nSELECT name FROM customers"},
        {"a fence with a cte is taken",
         "```\nWITH recent AS (\n  SELECT * FROM orders WHERE date > '2024-01-01'\n)\nSELECT "
         "COUNT(*) FROM recent;\n```",
         "WITH recent AS (\n  SELECT * FROM orders WHERE date > '2024-01-01'\n)\nSELECT COUNT(*) "
         "FROM recent"},
        {"a fence opened mid line is found", "Sure! ```sql\nSELECT 1\n```", "SELECT 1"},
        {"a fence with crlf line endings works", "```sql\r\nSELECT 1;\r\n```\r\n", "SELECT 1"},
        {"an unclosed fence from a cut off reply runs to the end", "```sql\nSELECT a, b FROM t WHERE a >",
         "SELECT a, b FROM t WHERE a >"},
        {"a fence closed on the same line as the sql", "```sql\nSELECT 1;```", "SELECT 1"},
        {"an empty sql fence is skipped", "```sql\n```\nSELECT 9", "SELECT 9"},
        {"a json fence with a sql field gives the field",
         "```json\n{\"sql\": \"SELECT name FROM t WHERE id = 1\", \"explanation\": \"one row\"}\n```",
         "SELECT name FROM t WHERE id = 1"},
        {"a bare json object with a sql field gives the field",
         "{\"thoughts\": \"count rows\", \"sql\": \"SELECT COUNT(*) FROM t;\"}", "SELECT COUNT(*) FROM t"},
        {"json escapes in the sql field are decoded", "{\"sql\": \"SELECT \\\"name\\\"\\nFROM t\\tWHERE x = '{'\"}",
         "SELECT \"name\"\nFROM t\tWHERE x = '{'"},
        {"a json object without sql is passed over for a later one", "{\"intent\": \"data_question\"}\n{\"sql\": \"SELECT 3\"}",
         "SELECT 3"},
        {"an empty json sql field is not sql", "{\"sql\": \"\"}", NULL},
        {"a non string json sql field is not sql", "{\"sql\": 42}", NULL},
        {"bare sql is taken whole", "SELECT * FROM products WHERE price > 10", "SELECT * FROM products WHERE price > 10"},
        {"bare lowercase sql is taken", "select id, name from users order by name", "select id, name from users order by name"},
        {"bare sql after sql colon on the same line", "SQL: SELECT COUNT(*) FROM orders;", "SELECT COUNT(*) FROM orders"},
        {"bare sql after query colon on the next line", "Query:\nSELECT name\nFROM t\n\nThis returns all names.",
         "SELECT name\nFROM t"},
        {"bare sql after a label in the middle of a line", "Here is the SQL: SELECT max(price) FROM products",
         "SELECT max(price) FROM products"},
        {"bare sql after a bold label", "**SQL:** SELECT 1", "SELECT 1"},
        {"bare sql stops at a blank line followed by prose", "SELECT a\nFROM t\nWHERE b = 1\n\nExplanation: this filters rows.",
         "SELECT a\nFROM t\nWHERE b = 1"},
        {"bare sql continues across a blank line followed by a clause", "SELECT a\nFROM t\n\nWHERE b = 1\n\nThat is all.",
         "SELECT a\nFROM t\n\nWHERE b = 1"},
        {"bare sql continues across a blank line followed by indentation", "WITH x AS (\n  SELECT 1 AS v\n)\n\n  SELECT v FROM x",
         "WITH x AS (\n  SELECT 1 AS v\n)"
         "\n\n  SELECT v FROM x"},
        {"bare sql stops at prose after a semicolon", "SELECT COUNT(*) FROM t;\nThis counts the rows.", "SELECT COUNT(*) FROM t"},
        {"bare sql followed by prose on the next line drops the prose", "SELECT name FROM t\nThis lists every name.",
         "SELECT name FROM t"},
        {"bare sql followed by a prose paragraph without a blank line drops it",
         "SELECT a\nFROM t\nWHERE b > 2\nThis keeps rows where b exceeds two. Done.", "SELECT a\nFROM t\nWHERE b > 2"},
        {"bare sql stops at a closing fence", "SELECT 1\n```\nmore", "SELECT 1"},
        {"two statements pass through for the gate to judge", "SELECT 1; DROP TABLE users;", "SELECT 1; DROP TABLE users"},
        {"two statements on two lines pass through", "SELECT 1;\nSELECT 2;", "SELECT 1;\nSELECT 2"},
        {"bare values are sql", "VALUES (1), (2)", "VALUES (1), (2)"},
        {"a bare cte is sql", "WITH t(a) AS (SELECT 1) SELECT a FROM t", "WITH t(a) AS (SELECT 1) SELECT a FROM t"},
        {"prose starting with with is not sql", "With the schema given, I cannot tell.", NULL},
        {"prose starting with with is skipped for later sql", "With the given schema:\nSELECT COUNT(*) FROM t",
         "SELECT COUNT(*) FROM t"},
        {"a prose sentence starting with select is not sql", "Select the right table first.", NULL},
        {"a prose sentence ending in a colon is not sql", "Select one of these:\n- a\n- b", NULL},
        {"select in the middle of prose is not sql", "You could use a SELECT statement to answer that.", NULL},
        {"a refusal has no sql", "I'm sorry, but I can't help with that question.", NULL},
        {"an empty reply has no sql", "", NULL},
        {"whitespace only has no sql", " \n\t\r\n", NULL},
        {"a lone semicolon has no sql", "```sql\n;\n```", NULL},
        {"trailing semicolons and whitespace are stripped", "SELECT 1 ;; \n\t", "SELECT 1"},
        {"leading whitespace inside a fence is stripped", "```sql\n\n   SELECT 1\n```", "SELECT 1"},
        {"sql inside a blockquote is found", "> SELECT name FROM t", "SELECT name FROM t"},
        {"utf8 in sql survives", "```sql\nSELECT '\xC3\xA9t\xC3\xA9' AS saison\n```", "SELECT '\xC3\xA9t\xC3\xA9' AS saison"},
        {"selected is not select", "Selected rows:\nnone", NULL},
};

static void sql_is_extracted_as_expected(void **state)
{
	const struct sql_case *c = *state;
	struct buf out = BUF_INIT;
	struct err err = ERR_INIT;
	int rc = extract_sql(&out, c->reply, strlen(c->reply), &err);
	if (c->sql) {
		if (rc)
			fail_msg("rc %d: %s", rc, err.msg);
		assert_string_equal(buf_str(&out), c->sql);
	} else {
		if (rc != CONVBI_EPROTOCOL)
			fail_msg("rc %d, extracted \"%s\"", rc, buf_str(&out));
		assert_null(out.data);
		assert_string_equal(err.msg,
		                    "the model's reply contains no SQL; it must hold one "
		                    "SELECT, in a ```sql block or a JSON \"sql\" field");
	}
	buf_release(&out);
}

/* ---- JSON ------------------------------------------------------------------------ */

static const struct sql_case jsons[] = {
        {"a bare object is found", "{\"intent\": \"chitchat\"}", "{\"intent\": \"chitchat\"}"},
        {"an object inside prose is found", "The classification is {\"intent\": \"data_question\", \"confidence\": 0.9}. Thanks!",
         "{\"intent\": \"data_question\", \"confidence\": 0.9}"},
        {"a nested object is found whole", "x {\"a\": {\"b\": [1, {\"c\": null}]}, \"d\": true} y",
         "{\"a\": {\"b\": [1, {\"c\": null}]}, \"d\": true}"},
        {"braces inside strings are not counted", "{\"s\": \"}{ \\\"}\\\" {\"} tail }", "{\"s\": \"}{ \\\"}\\\" {\"}"},
        {"a json fence wins over an earlier example",
         "Answer in the form {\"intent\": \"...\"}:\n```json\n{\"intent\": \"follow_up\"}\n```", "{\"intent\": \"follow_up\"}"},
        {"a fenced object with crlf is found", "```json\r\n{\"a\": 1}\r\n```", "{\"a\": 1}"},
        {"a brace group that is not json is skipped", "{maybe} then {\"ok\": 1}", "{\"ok\": 1}"},
        {"an unbalanced start is skipped for an inner object", "{\"outer\": {\"inner\": 2}", "{\"inner\": 2}"},
        {"an array alone is not an object", "[1, 2, 3]", NULL},
        {"a truncated object is not found", "{\"intent\": \"data_q", NULL},
        {"prose without braces has no object", "no json here", NULL},
        {"an empty reply has no object", "", NULL},
};

static void json_object_is_extracted_as_expected(void **state)
{
	const struct sql_case *c = *state;
	struct buf out = BUF_INIT;
	int rc = extract_json_object(&out, c->reply, strlen(c->reply));
	if (c->sql) {
		assert_int_equal(rc, CONVBI_OK);
		assert_string_equal(buf_str(&out), c->sql);
	} else {
		assert_int_equal(rc, CONVBI_EPROTOCOL);
		assert_null(out.data);
	}
	buf_release(&out);
}

/* ---- labels ---------------------------------------------------------------------- */

struct label_case {
	const char *name;
	const char *reply;
	int want;
};

static const char *const intents[] = {"data_question", "follow_up", "chitchat", "out_of_scope"};

static const struct label_case labels[] = {
        {"a bare label is found", "data_question", 0},
        {"a label is found case insensitively", "Intent: FOLLOW_UP", 1},
        {"a label before punctuation is found", "chitchat.", 2},
        {"a label inside a sentence is found", "The intent is out_of_scope here.", 3},
        {"a label inside json is found", "{\"intent\": \"follow_up\"}", 1},
        {"a label inside backticks is found", "`chitchat`", 2},
        {"the earliest label in the text wins", "I think chitchat, not data_question", 2},
        {"a longer word is not the label", "data_questions", -1},
        {"a prefixed word is not the label", "xdata_question", -1},
        {"underscore joins words", "follow_up_data_question", -1},
        {"a non ascii letter joins words", "chitchat\xC3\xA9", -1},
        {"a hyphenated spelling is not the label", "follow-up", -1},
        {"no label gives minus one", "I am not sure.", -1},
        {"an empty reply gives minus one", "", -1},
};

static void label_is_found_as_expected(void **state)
{
	const struct label_case *c = *state;
	assert_int_equal(extract_label(c->reply, strlen(c->reply), intents, 4), c->want);
}

/* ---- fixed tests --------------------------------------------------------------------- */

static void a_nul_byte_is_a_protocol_error(void **state)
{
	static const char reply[] = "```sql\nSELECT 1\0\n```";
	struct buf out = BUF_INIT;
	struct err err = ERR_INIT;
	assert_int_equal(extract_sql(&out, reply, sizeof reply - 1, &err), CONVBI_EPROTOCOL);
	assert_string_equal(err.msg,
	                    "the model's reply contains a NUL byte at offset 15; it is not "
	                    "text");
	assert_int_equal(extract_json_object(&out, "{\"a\":\"\0\"}", 9), CONVBI_EPROTOCOL);
	assert_null(out.data);
}

static void a_reply_over_the_input_cap_is_too_big(void **state)
{
	size_t n = EXTRACT_MAX_INPUT + 1;
	char *big = malloc(n);
	assert_non_null(big);
	memset(big, '\n', n);
	memcpy(big, "SELECT 1", 8);
	memcpy(big + n - 8, "chitchat", 8);
	struct buf out = BUF_INIT;
	struct err err = ERR_INIT;
	int rc_sql = extract_sql(&out, big, n, &err);
	int rc_json = extract_json_object(&out, big, n);
	int at_cap = extract_sql(&out, big, n - 1, &err);
	int label = extract_label(big, n, intents, 4); /* past the cap: unseen */
	free(big);
	assert_int_equal(rc_sql, CONVBI_ETOOBIG);
	assert_int_equal(rc_json, CONVBI_ETOOBIG);
	assert_int_equal(at_cap, CONVBI_OK);
	assert_string_equal(buf_str(&out), "SELECT 1");
	assert_int_equal(label, -1);
	buf_release(&out);
}

static void the_output_cap_is_honoured_and_releases(void **state)
{
	struct buf out;
	struct err err = ERR_INIT;
	buf_init(&out, 4);
	assert_int_equal(extract_sql(&out, "SELECT 1", 8, &err), CONVBI_ETOOBIG);
	assert_null(out.data);
	assert_string_equal(err.msg, "the SQL exceeds its 4-byte cap");
	buf_init(&out, 8);
	assert_int_equal(extract_sql(&out, "SELECT 1", 8, &err), CONVBI_OK);
	assert_string_equal(out.data, "SELECT 1");
	buf_release(&out);
}

static void lengths_are_honoured_without_a_nul(void **state)
{
	struct buf out = BUF_INIT;
	struct err err = ERR_INIT;
	assert_int_equal(extract_sql(&out, "SELECT 1 garbage", 8, &err), CONVBI_OK);
	assert_string_equal(out.data, "SELECT 1");
	buf_release(&out);
	assert_int_equal(extract_label("chitchat", 4, intents, 4), -1);
}

static void null_text_is_empty_only_when_its_length_is_zero(void **state)
{
	struct buf out = BUF_INIT;
	struct err err = ERR_INIT;
	assert_int_equal(extract_sql(&out, NULL, 0, &err), CONVBI_EPROTOCOL);
	assert_int_equal(extract_sql(&out, NULL, 5, &err), CONVBI_EINVAL);
	assert_int_equal(extract_json_object(&out, NULL, 0), CONVBI_EPROTOCOL);
	assert_int_equal(extract_json_object(&out, NULL, 5), CONVBI_EINVAL);
	assert_null(out.data);
}

static void labels_skip_null_and_empty_entries_and_prefer_the_longer(void **state)
{
	static const char *const odd[] = {NULL, "", "data", "data question"};
	assert_int_equal(extract_label("data question", 13, odd, 4), 3);
	assert_int_equal(extract_label("data", 4, odd, 4), 2);
	assert_int_equal(extract_label("data", 4, NULL, 4), -1);
	assert_int_equal(extract_label(NULL, 0, odd, 4), -1);
}

static void json_brace_tries_are_capped(void **state)
{
	char reply[1024] = "";
	for (int k = 0; k < 10; k++)
		strcat(reply, "{x} ");
	strcat(reply, "{\"ok\": 1}");
	struct buf out = BUF_INIT;
	assert_int_equal(extract_json_object(&out, reply, strlen(reply)), CONVBI_OK);
	buf_release(&out);
	reply[0] = '\0';
	for (int k = 0; k < EXTRACT_MAX_JSON_TRIES; k++)
		strcat(reply, "{x}");
	strcat(reply, "{\"ok\": 1}");
	assert_int_equal(extract_json_object(&out, reply, strlen(reply)), CONVBI_EPROTOCOL);
}

/* Fills a reply of n bytes by repeating pat, then ends it with tail. */
static char *repeat(const char *pat, size_t n, const char *tail)
{
	size_t pl = strlen(pat), tl = strlen(tail);
	char *s = malloc(n + 1);
	assert_non_null(s);
	for (size_t i = 0; i < n - tl; i++)
		s[i] = pat[i % pl];
	memcpy(s + n - tl, tail, tl);
	s[n] = '\0';
	return s;
}

static void hostile_megabyte_replies_finish_in_linear_time(void **state)
{
	static const struct {
		const char *pat, *tail;
	} cases[] = {
	        {"sql: select ", "."},        /* one line of candidates */
	        {"SELECT 1\n", "."},          /* one long statement ending like prose */
	        {"select x.\n", ""},          /* every line a rejected sentence */
	        {"with x (", ""},             /* unclosed column lists */
	        {"{", ""},                    /* unbalanced braces */
	        {"{\"", ""},                  /* unbalanced strings */
	        {"```\n", ""},                /* fences everywhere */
	        {"a ```\n", ""},              /* mid-line fences, no line-start closer */
	        {"```sql\n;\n```\n", ""},     /* empty sql fences */
	        {"\n\n", "SELECT 1"},         /* blank lines */
	        {"SELECT 1\n\n \n", "done."}, /* blank lines inside a statement */
	};
	size_t n = (size_t)1 << 20; /* quadratic work here would take hours */
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		char *s = repeat(cases[k].pat, n, cases[k].tail);
		struct buf out = BUF_INIT;
		struct err err = ERR_INIT;
		clock_t t0 = clock();
		int rc = extract_sql(&out, s, n, &err);
		buf_release(&out);
		int rc2 = extract_json_object(&out, s, n);
		buf_release(&out);
		int lab = extract_label(s, n, intents, 4);
		double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
		free(s);
		assert_true(rc == CONVBI_OK || rc == CONVBI_EPROTOCOL);
		assert_true(rc2 == CONVBI_OK || rc2 == CONVBI_EPROTOCOL);
		assert_int_equal(lab, -1);
		if (secs > 60)
			fail_msg("pattern %zu took %.1f s", k, secs);
	}
}

static void *extract_in_thread(void *arg)
{
	const char *reply = "Here:\n```sql\nSELECT 42\n```";
	for (int k = 0; k < 200; k++) {
		struct buf out = BUF_INIT;
		struct err err = ERR_INIT;
		if (extract_sql(&out, reply, strlen(reply), &err) || strcmp(out.data, "SELECT 42"))
			*(int *)arg = 1;
		buf_release(&out);
	}
	return NULL;
}

static void first_use_from_many_threads_is_safe(void **state)
{
	pthread_t t[8];
	int bad[8] = {0};
	for (int k = 0; k < 8; k++)
		assert_int_equal(pthread_create(&t[k], NULL, extract_in_thread, &bad[k]), 0);
	for (int k = 0; k < 8; k++) {
		pthread_join(t[k], NULL);
		assert_int_equal(bad[k], 0);
	}
}

static void allocation_failure_is_reported_at_every_point(void **state)
{
	const char *reply = "Sure:\n```json\n{\"sql\": \"SELECT a FROM t\"}\n```";
	for (long k = 1;; k++) {
		struct buf out = BUF_INIT;
		struct err err = ERR_INIT;
		alloc_fail_at(k, 0);
		int rc = extract_sql(&out, reply, strlen(reply), &err);
		long used = alloc_fail_at(0, 0);
		if (rc == CONVBI_OK) {
			assert_true(used < k);
			assert_string_equal(out.data, "SELECT a FROM t");
			buf_release(&out);
			break;
		}
		assert_int_equal(rc, CONVBI_ENOMEM);
		assert_null(out.data);
		assert_true(k < 100);
	}
}

#define ROWS(arr, fn)                                                \
	for (size_t i = 0; i < sizeof arr / sizeof arr[0]; i++)      \
		tests[k++] = (struct CMUnitTest)                     \
		{                                                    \
			arr[i].name, fn, NULL, NULL, (void *)&arr[i] \
		}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
	        cmocka_unit_test(first_use_from_many_threads_is_safe),
	        cmocka_unit_test(a_nul_byte_is_a_protocol_error),
	        cmocka_unit_test(a_reply_over_the_input_cap_is_too_big),
	        cmocka_unit_test(the_output_cap_is_honoured_and_releases),
	        cmocka_unit_test(lengths_are_honoured_without_a_nul),
	        cmocka_unit_test(labels_skip_null_and_empty_entries_and_prefer_the_longer),
	        cmocka_unit_test(null_text_is_empty_only_when_its_length_is_zero),
	        cmocka_unit_test(json_brace_tries_are_capped),
	        cmocka_unit_test(hostile_megabyte_replies_finish_in_linear_time),
	        cmocka_unit_test(allocation_failure_is_reported_at_every_point),
	};
	static struct CMUnitTest tests[sizeof sqls / sizeof sqls[0] + sizeof jsons / sizeof jsons[0] +
	                               sizeof labels / sizeof labels[0] + sizeof fixed / sizeof fixed[0]];
	size_t k = 0;
	/* the thread test must be the process's first use of the patterns */
	tests[k++] = fixed[0];
	ROWS(sqls, sql_is_extracted_as_expected);
	ROWS(jsons, json_object_is_extracted_as_expected);
	ROWS(labels, label_is_found_as_expected);
	for (size_t i = 1; i < sizeof fixed / sizeof fixed[0]; i++)
		tests[k++] = fixed[i];
	return _cmocka_run_group_tests("extract", tests, k, NULL, NULL);
}
