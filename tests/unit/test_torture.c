/* test_torture.c -- allocation-failure torture over the core paths (as
 * curl's OOM torture): for each path, count its allocations, then run it
 * again once per allocation with exactly that one failing.  Every run must
 * end in CONVBI_ENOMEM (or CONVBI_OK where the path can do without the
 * failed allocation), never crash, and leak nothing (checked by the
 * ASan/LeakSanitizer and valgrind runs of this same program in CI). */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "convbi/convbi.h"
#include "fake.h"
#include "flow/extract.h"
#include "flow/flow.h"
#include "flow/history.h"
#include "llm/aoai.h"
#include "llm/config.h"
#include "prompt/examples.h"
#include "prompt/tmpl.h"
#include "testutil.h"
#include "util/alloc.h"

typedef int (*path_fn)(void *ctx);

#define EXAMPLES_TEXT                                                                                             \
	"{\"question\":\"How many stores are there?\",\"sql\":\"SELECT count(*) FROM stores\",\"db\":\"shop\"}\n" \
	"{\"question\":\"List the names of all singers\",\"sql\":\"SELECT name FROM singer AS s\",\"db\":\"c\"}\n"

struct tally {
	long runs, nomem, ok;
};

static struct tally torture(const char *name, path_fn fn, void *ctx)
{
	struct tally t = {0, 0, 0};
	alloc_fail_at(LONG_MAX, 0); /* count only */
	int rc = fn(ctx);
	long total = alloc_fail_at(0, 0);
	if (rc != CONVBI_OK)
		fail_msg("%s: the path fails without any injected failure: %s", name, convbi_errname(rc));
	for (long n = 1; n <= total; n++) {
		alloc_fail_at(n, 0);
		rc = fn(ctx);
		alloc_fail_at(0, 0);
		t.runs++;
		if (rc == CONVBI_ENOMEM)
			t.nomem++;
		else if (rc == CONVBI_OK)
			t.ok++;
		else
			fail_msg("%s: allocation %ld of %ld failed and the path returned %s, not ENOMEM", name, n, total,
			         convbi_errname(rc));
	}
	printf("# %s: %ld allocations, %ld runs: %ld ENOMEM, %ld absorbed\n", name, total, t.runs, t.nomem, t.ok);
	return t;
}

static int path_config(void *ctx)
{
	const char *text =
	        "{\"endpoints\":[{\"name\":\"east\",\"url\":\"https://e\",\"deployment\":\"d\",\"api_key\":\"k-torture-1\"},"
	        "{\"name\":\"west\",\"kind\":\"openai\",\"url\":\"http://w/v1\",\"model\":\"m\"}],"
	        "\"retry\":{\"max_attempts\":3},\"state\":{\"path\":\"/tmp/x\"}}";
	struct llm_config c;
	struct err err = ERR_INIT;
	int rc = config_parse(&c, text, strlen(text), "t", &err);
	if (!rc)
		config_release(&c);
	return rc;
}

static int path_templates(void *ctx)
{
	struct tmpl_set *set = NULL;
	struct err err = ERR_INIT;
	int rc = flow_prompts_load(&set, SOURCE_DIR "/prompts", &err);
	if (rc)
		return rc;
	struct buf out;
	buf_init(&out, 0);
	struct tmpl_slot slots[] = {{"schema", "CREATE TABLE t(a)", 0},
	                            {"question", "how many?", 0},
	                            {"error", "no such column", 0},
	                            {"previous_sql", "SELECT b FROM t", 0},
	                            {"history", "Q1: x", 0}};
	rc = tmpl_render(&out, tmpl_text(set, "sql"), slots, 5, &err);
	buf_release(&out);
	tmpl_set_free(set);
	return rc;
}

static int path_extract(void *ctx)
{
	static const char reply[] =
	        "Here you go:\n```sql\nSELECT name FROM customers WHERE country = 'FR';\n```\nThis lists them.";
	struct buf out;
	buf_init(&out, 0);
	struct err err = ERR_INIT;
	int rc = extract_sql(&out, reply, sizeof reply - 1, &err);
	if (!rc) {
		const char *j = "x {\"a\": [1, {\"b\": \"}\"}]} y";
		rc = extract_json_object(&out, j, strlen(j));
	}
	buf_release(&out);
	return rc;
}

static int path_history(void *ctx)
{
	struct history h;
	history_init(&h, 50);
	int rc = CONVBI_OK;
	for (int i = 0; i < 6 && !rc; i++)
		rc = history_add(&h, "How many customers per country?", "SELECT country, count(*) FROM c GROUP BY 1",
		                 "columns: country, n\nrows: 17", "There are 17 countries.");
	struct buf out;
	buf_init(&out, 0);
	if (!rc)
		rc = history_render(&out, &h);
	if (!rc)
		rc = history_json(&out, &h);
	buf_release(&out);
	history_release(&h);
	return rc;
}

static int path_wire(void *ctx)
{
	struct ep_cfg e;
	memset(&e, 0, sizeof e);
	e.name = "east";
	e.url = "https://e";
	e.deployment = "d";
	e.api_version = "2024-10-21";
	struct chat_msg m = {"user", "hello \"world\""};
	struct chat_req req = {&m, 1, 50, 0, 0, 0};
	struct buf b;
	buf_init(&b, 0);
	int rc = aoai_body(&b, &e, &req);
	if (!rc)
		rc = aoai_url(&b, &e);
	buf_release(&b);
	const char *body = "{\"model\":\"m\",\"choices\":[{\"message\":{\"content\":\"SELECT 1\"},\"finish_reason\":\"stop\"}]}";
	struct aoai_reply r;
	struct err err = ERR_INIT;
	aoai_reply_init(&r);
	if (!rc)
		rc = aoai_parse_reply(&r, body, strlen(body), &err);
	aoai_reply_release(&r);
	return rc;
}

/* Verified examples: load a file, choose with a draft, render. */
static int path_examples(void *ctx)
{
	struct examples *ex = NULL;
	struct err err = ERR_INIT;
	struct buf b = BUF_INIT;
	static const char *const domain[] = {"singer", "age", "name"};
	int rc = examples_load(&ex, ctx, &err);
	size_t picked[EXAMPLES_K];
	int n = 0;
	struct examples_query q = {"How many singers are older than 30?", domain, 3, "SELECT count(*) FROM singer WHERE age > 30",
	                           NULL};
	if (!rc)
		rc = examples_choose(ex, &q, EXAMPLES_K, picked, &n);
	if (!rc)
		rc = examples_render(&b, ex, picked, n, EXAMPLES_BUDGET_BYTES);
	if (!rc)
		rc = examples_skeleton(&b, q.draft);
	buf_release(&b);
	examples_free(ex);
	return rc;
}

struct api_ctx {
	char config[1024];
	char examples[1024];
	const struct fake *fake; /* for the vote's path: its sequences restart each run */
	convbi_engine *engine;   /* the vote's path: opened once (path_api tortures the open) */
};

/* The whole public path: open an engine, a session, ask, read the JSON. */
static int path_api(void *ctx)
{
	struct api_ctx *c = ctx;
	convbi_options o = CONVBI_OPTIONS_INIT;
	o.db_path = SAMPLE_DB;
	o.config_path = c->config;
	o.prompts_dir = SOURCE_DIR "/prompts";
	o.examples_path = c->examples;
	convbi_engine *e = NULL;
	convbi_session *s = NULL;
	convbi_answer *a = NULL;
	char *js = NULL;
	int rc = convbi_engine_open(&e, &o);
	if (!rc)
		rc = convbi_session_new(&s, e);
	if (!rc)
		rc = convbi_session_ask(s, "How many customers?", NULL, NULL, NULL, &a);
	if (!rc)
		rc = convbi_answer_json(a, &js);
	if (!rc && !strstr(js, "\"rows\":[[200]]")) {
		printf("# unexpected answer: %.600s\n", js);
		rc = CONVBI_EPROTOCOL;
	}
	convbi_free(js);
	convbi_answer_free(a);
	convbi_session_free(s);
	convbi_engine_close(e);
	return rc;
}

/* Three candidates in one request (two equal results and one other), each
 * through the gate and run, grouped and voted on; the answer JSON lists
 * them.  The fake's sequence restarts first, so every run sees the same
 * three candidates (the reset allocates nothing of ours). */
static int path_vote(void *ctx)
{
	struct api_ctx *c = ctx;
	if (fake_control(c->fake, "east", "POST", "/_fake/reset", "{}", NULL) != 200)
		return CONVBI_EPROTOCOL;
	convbi_session *s = NULL;
	convbi_answer *a = NULL;
	char *js = NULL;
	int rc = convbi_session_new(&s, c->engine);
	if (!rc)
		rc = convbi_session_ask(s, "vote: how many customers?", NULL, NULL, NULL, &a);
	if (!rc)
		rc = convbi_answer_json(a, &js);
	if (!rc && (!strstr(js, "\"rows\":[[200]]") || !strstr(js, "\"groups\":2") || !strstr(js, "\"votes\":2"))) {
		printf("# unexpected answer: %.900s\n", js);
		rc = CONVBI_EPROTOCOL;
	}
	convbi_free(js);
	convbi_answer_free(a);
	convbi_session_free(s);
	return rc;
}

static void pure_paths_return_enomem_at_every_failing_allocation(void **state)
{
	torture("config_parse", path_config, NULL);
	torture("templates load+render", path_templates, NULL);
	torture("extract", path_extract, NULL);
	torture("history", path_history, NULL);
	torture("aoai wire", path_wire, NULL);
	char *dir = tu_mkdtemp("torture-examples");
	char path[1100];
	snprintf(path, sizeof path, "%s/ex.jsonl", dir);
	assert_int_equal(tu_write_file(path, EXAMPLES_TEXT), 0);
	torture("examples load+choose+render", path_examples, path);
	tu_rmtree(dir);
	free(dir);
}

static void the_public_ask_path_returns_enomem_at_every_failing_allocation(void **state)
{
	struct fake f;
	assert_int_equal(
	        fake_start(
	                &f,
	                "{\"endpoints\":[{\"name\":\"east\",\"api_key\":\"k-torture-east\",\"deployment\":\"gpt-4o\"}],"
	                "\"rules\":[{\"match\":\"You are the intent classifier\",\"reply\":\"{\\\"intent\\\":\\\"data_question\\\"}\"},"
	                "{\"match\":\"You are the SQL writer\",\"reply\":\"```sql\\nSELECT count(*) FROM customers\\n```\"}],"
	                "\"default_reply\":\"There are 200 customers.\"}"),
	        0);
	struct api_ctx c;
	snprintf(c.config, sizeof c.config, "%s/config.json", f.dir);
	snprintf(c.examples, sizeof c.examples, "%s/examples.jsonl", f.dir); /* the SQL prompt's {{examples}} too */
	assert_int_equal(tu_write_file(c.examples, EXAMPLES_TEXT), 0);
	assert_int_equal(fake_write_config(&f, c.config, "{\"retry\":{\"max_attempts\":2,\"deadline_ms\":5000}}"), 0);
	struct tally t = torture("engine open + ask + answer json", path_api, &c);
	assert_true(t.nomem > 0);
	fake_stop(&f);
}

static void the_vote_path_returns_enomem_at_every_failing_allocation(void **state)
{
	struct fake f;
	assert_int_equal(
	        fake_start(
	                &f,
	                "{\"endpoints\":[{\"name\":\"east\",\"api_key\":\"k-torture-vote\",\"deployment\":\"gpt-4o\"}],"
	                "\"rules\":[{\"match\":\"You are the intent classifier\",\"reply\":\"{\\\"intent\\\":\\\"data_question\\\"}\"},"
	                "{\"match\":\"You are the SQL writer\",\"sequence\":[\"```sql\\nSELECT count(*) AS n FROM customers\\n```\","
	                "\"```sql\\nSELECT 7 AS n\\n```\",\"```sql\\nSELECT 200 AS n\\n```\"]}],"
	                "\"default_reply\":\"There are 200 customers.\"}"),
	        0);
	struct api_ctx c = {.fake = &f};
	snprintf(c.config, sizeof c.config, "%s/config.json", f.dir);
	assert_int_equal(fake_write_config(&f, c.config, "{\"retry\":{\"max_attempts\":2,\"deadline_ms\":5000}}"), 0);
	convbi_options o = CONVBI_OPTIONS_INIT;
	o.db_path = SAMPLE_DB;
	o.config_path = c.config;
	o.prompts_dir = SOURCE_DIR "/prompts";
	o.candidates = 3;
	o.value_index = 0;
	assert_int_equal(convbi_engine_open(&c.engine, &o), CONVBI_OK);
	struct tally t = torture("session + ask with 3 candidates + vote + answer json", path_vote, &c);
	assert_true(t.nomem > 0);
	convbi_engine_close(c.engine);
	fake_stop(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(pure_paths_return_enomem_at_every_failing_allocation),
	        cmocka_unit_test(the_public_ask_path_returns_enomem_at_every_failing_allocation),
	        cmocka_unit_test(the_vote_path_returns_enomem_at_every_failing_allocation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
