/* test_big_input.c -- big and bad input through the public API: a schema
 * of thousands of tables, a result of millions of rows, a model reply of
 * many megabytes, NUL bytes in a model reply, a huge question.  Each gets
 * a clear error or a bounded result, never a crash or an unbounded wait. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <cmocka.h>

#include "convbi/convbi.h"
#include "fake.h"
#include "testutil.h"

static convbi_engine *open_engine(const char *db, const char *cfg, int row_cap)
{
	convbi_options o = CONVBI_OPTIONS_INIT;
	o.db_path = db;
	o.config_path = cfg;
	o.prompts_dir = SOURCE_DIR "/prompts";
	if (row_cap)
		o.row_cap = row_cap;
	convbi_engine *e = NULL;
	if (convbi_engine_open(&e, &o))
		fail_msg("open: %s", convbi_engine_errmsg(e));
	return e;
}

static void a_schema_of_thousands_of_tables_is_cut_to_the_budget(void **state)
{
	char *dir = tu_mkdtemp("bigschema");
	char db[1024];
	snprintf(db, sizeof db, "%s/wide.db", dir);
	sqlite3 *h;
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	sqlite3_exec(h, "BEGIN", NULL, NULL, NULL);
	for (int i = 0; i < 3000; i++) {
		char sql[256];
		snprintf(sql, sizeof sql,
		         "CREATE TABLE t%04d (id INTEGER PRIMARY KEY, name TEXT, amount REAL, t%04d_ref INTEGER)", i, i);
		assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
	}
	sqlite3_exec(h, "CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL); COMMIT", NULL, NULL, NULL);
	sqlite3_close(h);
	int64_t t0 = tu_now_ms();
	convbi_engine *e = open_engine(db, NULL, 0);
	char *text = NULL;
	assert_int_equal(convbi_engine_schema(e, "what is the total of all invoices?", &text), CONVBI_OK);
	assert_true(strlen(text) <= 6000 * 4 + 512); /* the default schema budget */
	assert_non_null(strstr(text, "invoices"));   /* the relevant table is kept */
	convbi_free(text);
	convbi_engine_close(e);
	assert_true(tu_now_ms() - t0 < 20000);
	tu_rmtree(dir);
	free(dir);
}

static void a_result_of_millions_of_rows_is_capped(void **state)
{
	convbi_engine *e = open_engine(SAMPLE_DB, NULL, 500);
	convbi_session *s = NULL;
	assert_int_equal(convbi_session_new(&s, e), CONVBI_OK);
	convbi_answer *a = NULL;
	int64_t t0 = tu_now_ms();
	int rc = convbi_session_run_sql(
	        s, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 5000000) SELECT x FROM c", &a);
	assert_int_equal(rc, CONVBI_OK);
	assert_int_equal(convbi_answer_row_count(a), 500);
	assert_true(convbi_answer_truncated(a));
	int exact = -1;
	int64_t total = convbi_answer_total_rows(a, &exact); /* counted within a second, or "at least" */
	assert_true(exact ? total == 5000000 : total > 500 && total < 5000000);
	assert_true(tu_now_ms() - t0 < 5000);
	convbi_answer_free(a);
	/* an endless one is stopped by the time limit */
	rc = convbi_session_run_sql(s, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
	                            &a);
	assert_int_equal(rc, CONVBI_ETIMEOUT);
	assert_non_null(strstr(convbi_answer_errmsg(a), "ms"));
	convbi_answer_free(a);
	convbi_session_free(s);
	convbi_engine_close(e);
}

static void the_memory_and_disk_budgets_are_the_options(void **state)
{
	(void)state;
	convbi_options o = CONVBI_OPTIONS_INIT;
	o.db_path = SAMPLE_DB;
	o.prompts_dir = SOURCE_DIR "/prompts";
	o.sql_memory_mb = 8;
	o.sql_temp_mb = 1;
	convbi_engine *e = NULL;
	assert_int_equal(convbi_engine_open(&e, &o), CONVBI_OK);
	convbi_session *s = NULL;
	assert_int_equal(convbi_session_new(&s, e), CONVBI_OK);
	convbi_answer *a = NULL;
	/* ten columns of 1 MB: fine within the default 256 MB, not within 8 */
	static const char wide[] =
	        "SELECT hex(zeroblob(500000)) AS a, hex(zeroblob(500001)) AS b, "
	        "hex(zeroblob(500002)) AS c, hex(zeroblob(500003)) AS d, hex(zeroblob(500004)) AS e, "
	        "hex(zeroblob(500005)) AS f, hex(zeroblob(500006)) AS g, hex(zeroblob(500007)) AS h, "
	        "hex(zeroblob(500008)) AS i, hex(zeroblob(500009)) AS j";
	int rc = convbi_session_run_sql(s, wide, &a);
	assert_int_equal(rc, CONVBI_ETOOBIG);
	assert_non_null(strstr(convbi_answer_errmsg(a), "the query needs more than 8 MB of memory"));
	convbi_answer_free(a);
	rc = convbi_session_run_sql(s,
	                            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100000) "
	                            "SELECT x FROM c ORDER BY hex(zeroblob(100)) || x DESC",
	                            &a);
	assert_int_equal(rc, CONVBI_ETOOBIG);
	assert_non_null(strstr(convbi_answer_errmsg(a), "more than 1 MB of temporary storage"));
	convbi_answer_free(a);
	convbi_session_free(s);
	convbi_engine_close(e);

	/* out of range: one line naming both */
	o.sql_memory_mb = 0;
	assert_int_equal(convbi_engine_open(&e, &o), CONVBI_EINVAL);
	assert_non_null(strstr(convbi_engine_errmsg(e), "sql_memory_mb is 0 and sql_temp_mb 1; each must be 1 to 1048576"));
	convbi_engine_close(e);
	/* a version 3 caller's struct ends before them: the defaults apply */
	o.version = 3;
	assert_int_equal(convbi_engine_open(&e, &o), CONVBI_OK);
	assert_int_equal(convbi_session_new(&s, e), CONVBI_OK);
	rc = convbi_session_run_sql(s, wide, &a);
	assert_int_equal(rc, CONVBI_OK);
	assert_true(convbi_answer_row_count(a) == 1);
	convbi_answer_free(a);
	convbi_session_free(s);
	convbi_engine_close(e);
}

static void huge_and_nul_laden_model_replies_fail_cleanly(void **state)
{
	struct fake f;
	assert_int_equal(
	        fake_start(
	                &f,
	                "{\"endpoints\":[{\"name\":\"east\",\"api_key\":\"k-big-east-1234\",\"deployment\":\"gpt-4o\"}],"
	                "\"rules\":[{\"match\":\"You are the intent classifier\",\"reply\":\"{\\\"intent\\\":\\\"data_question\\\"}\"},"
	                "{\"match\":\"You are the SQL writer[\\\\s\\\\S]*Question: huge\",\"reply\":\"SELECT \",\"reply_bytes\":9437184}],"
	                "\"default_reply\":\"fine\"}"),
	        0);
	char cfg[1024];
	snprintf(cfg, sizeof cfg, "%s/config.json", f.dir);
	assert_int_equal(fake_write_config(&f, cfg, NULL), 0);
	uint64_t sum = tu_file_checksum(SAMPLE_DB);
	convbi_engine *e = open_engine(SAMPLE_DB, cfg, 0);
	convbi_session *s = NULL;
	assert_int_equal(convbi_session_new(&s, e), CONVBI_OK);
	convbi_answer *a = NULL;
	int rc = convbi_session_ask(s, "huge reply please", NULL, NULL, NULL, &a);
	assert_int_equal(rc, CONVBI_ETOOBIG);
	assert_non_null(strstr(convbi_answer_errmsg(a), "larger than"));
	convbi_answer_free(a);
	convbi_session_free(s);
	convbi_engine_close(e);
	assert_true(tu_file_checksum(SAMPLE_DB) == sum);
	fake_stop(&f);

	/* A reply whose JSON carries an escaped NUL (which would cut the text
	 * where it stands) is refused as malformed, never run in part. */
	assert_int_equal(
	        fake_start(
	                &f,
	                "{\"endpoints\":[{\"name\":\"east\",\"api_key\":\"k-nul-east-1234\",\"deployment\":\"gpt-4o\","
	                "\"faults\":[{\"kind\":\"status\",\"status\":200,\"count\":1,\"body\":\"{\\\"choices\\\":[{\\\"message\\\":{\\\"content\\\":\\\"data_question\\\"}}]}\"},"
	                "{\"kind\":\"status\",\"status\":200,\"body\":\"{\\\"choices\\\":[{\\\"message\\\":{\\\"content\\\":\\\"SELECT 1\\\\u0000; DROP TABLE customers\\\"}}]}\"}]}],"
	                "\"default_reply\":\"fine\"}"),
	        0);
	snprintf(cfg, sizeof cfg, "%s/config.json", f.dir);
	assert_int_equal(fake_write_config(&f, cfg, "{\"retry\":{\"max_attempts\":2}}"), 0);
	e = open_engine(SAMPLE_DB, cfg, 0);
	assert_int_equal(convbi_session_new(&s, e), CONVBI_OK);
	rc = convbi_session_ask(s, "nul bytes please", NULL, NULL, NULL, &a);
	assert_int_equal(rc, CONVBI_ELLM);
	assert_non_null(strstr(convbi_answer_errmsg(a), "NUL"));
	convbi_answer_free(a);
	convbi_session_free(s);
	convbi_engine_close(e);
	assert_true(tu_file_checksum(SAMPLE_DB) == sum);
	fake_stop(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(a_schema_of_thousands_of_tables_is_cut_to_the_budget),
	        cmocka_unit_test(a_result_of_millions_of_rows_is_capped),
	        cmocka_unit_test(the_memory_and_disk_budgets_are_the_options),
	        cmocka_unit_test(huge_and_nul_laden_model_replies_fail_cleanly),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
