/* test_spillover.c -- provisioned deployments that spill over, and prompts
 * longer than a deployment's context (issue 17 items 4 and 5), against the
 * fake Azure OpenAI server: the x-ms-spillover-deployment header, the
 * provenance of every attempt (deployment, spillover, region, request id),
 * the context-length fail-over that goes only to a larger window, and the
 * SQL agent's one retry with less schema when no larger window exists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "convbi/convbi.h"
#include "fake.h"
#include "llm/config.h"
#include "llm/llm.h"
#include "testutil.h"

struct env {
	struct fake f;
	struct llm *l;
};

/* Starts the fake on scen and opens the client on its config, with each
 * endpoint's "client" object of the scenario merged in. */
static void start(struct env *e, const char *scen)
{
	memset(e, 0, sizeof *e);
	assert_int_equal(fake_start(&e->f, scen), 0);
	char path[1024];
	snprintf(path, sizeof path, "%s/config.json", e->f.dir);
	assert_int_equal(fake_write_config(&e->f, path, "{\"retry\": {\"max_attempts\": 4}}"), 0);
	struct llm_config cfg;
	struct err err = ERR_INIT;
	if (config_load(&cfg, path, &err) || llm_open(&e->l, &cfg, &err))
		fail_msg("open: %s", err.msg);
}

static void stop(struct env *e)
{
	llm_close(e->l);
	fake_stop(&e->f);
}

static int chat(struct env *e, const char *prompt, int max_tokens, struct llm_reply *rep, struct err *err)
{
	struct chat_msg m = {"user", prompt};
	struct llm_request req = {.msgs = &m, .n = 1, .temperature = -1, .max_tokens = max_tokens};
	return llm_chat(e->l, &req, rep, err);
}

/* ---- spillover --------------------------------------------------------------- */

#define PTU                                                                                                                 \
	"{\"name\": \"ptu\", \"api_key\": \"k-ptu-123456\", \"deployment\": \"gpt-4o-ptu\", \"region\": \"swedencentral\"," \
	" \"spillover_deployments\": [\"gpt-4o-std\"]"

static void the_spillover_deployment_is_sent_and_each_attempt_says_who_served_it(void **state)
{
	struct env e;
	start(&e, "{\"endpoints\": [" PTU
	          ", \"rpm\": 1, \"client\": {\"spillover_deployment\": \"gpt-4o-std\"}}], \"default_reply\": \"OK\"}");
	struct llm_reply rep;
	struct err err = ERR_INIT;
	/* within the PTU's quota: served by it */
	assert_int_equal(chat(&e, "one", 0, &rep, &err), CONVBI_OK);
	assert_int_equal(rep.nattempts, 1);
	assert_string_equal(rep.attempts[0].deployment, "gpt-4o-ptu");
	assert_string_equal(rep.attempts[0].spillover_from, "");
	assert_string_equal(rep.attempts[0].region, "swedencentral");
	assert_int_equal(strlen(rep.attempts[0].request_id), 36);
	llm_reply_release(&rep);
	/* over it: the service spills the request to the standard deployment */
	assert_int_equal(chat(&e, "two", 0, &rep, &err), CONVBI_OK);
	assert_int_equal(rep.nattempts, 1);
	assert_string_equal(rep.attempts[0].deployment, "gpt-4o-std");
	assert_string_equal(rep.attempts[0].spillover_from, "gpt-4o-ptu");
	assert_string_equal(rep.attempts[0].spillover_error, "429");
	struct buf j = BUF_INIT;
	assert_int_equal(llm_reply_json(&j, &rep, CONVBI_OK, NULL), CONVBI_OK);
	assert_non_null(strstr(j.data,
	                       "\"deployment_name\":\"gpt-4o-std\",\"spillover_from_deployment\":\"gpt-4o-ptu\","
	                       "\"spillover_error\":\"429\",\"region\":\"swedencentral\",\"apim_request_id\":\""));
	buf_release(&j);
	llm_reply_release(&rep);
	assert_int_equal(fake_log_count(&e.f, "\"x-ms-spillover-deployment\":\"gpt-4o-std\""), 2);
	stop(&e);
}

static void a_server_error_spills_over_too_and_without_the_setting_nothing_is_sent(void **state)
{
	struct env e;
	start(&e,
	      "{\"endpoints\": [" PTU
	      ", \"faults\": [{\"kind\": \"http503\", \"count\": 1}], \"client\": {\"spillover_deployment\": \"gpt-4o-std\"}},"
	      "{\"name\": \"plain\", \"api_key\": \"k-plain-123456\", \"deployment\": \"gpt-4o\", \"rpm\": 1,"
	      " \"client\": {\"priority\": 1}}], \"default_reply\": \"OK\"}");
	struct llm_reply rep;
	struct err err = ERR_INIT;
	assert_int_equal(chat(&e, "one", 0, &rep, &err), CONVBI_OK);
	assert_string_equal(rep.attempts[0].endpoint, "ptu");
	assert_string_equal(rep.attempts[0].spillover_error, "503");
	assert_string_equal(rep.attempts[0].deployment, "gpt-4o-std");
	llm_reply_release(&rep);
	assert_int_equal(fake_log_count(&e.f, "x-ms-spillover-deployment"), 1);
	assert_int_equal(fake_log_count(&e.f, "\"endpoint\":\"plain\""), 0);
	stop(&e);
}

/* ---- context-length fail-over ------------------------------------------------- */

/* small and same: 100-token windows, tried first; big2: 150; big: 100000. */
static const char *windows_scenario(int configure_small)
{
	static char s[4096];
	snprintf(
	        s, sizeof s,
	        "{\"endpoints\": ["
	        "{\"name\": \"small\", \"api_key\": \"k-small-1234\", \"deployment\": \"d\", \"context_window\": 100, \"client\": {%s}},"
	        "{\"name\": \"same\", \"api_key\": \"k-same-12345\", \"deployment\": \"d\", \"context_window\": 100, \"client\": {\"context_window\": 100, \"priority\": 1}},"
	        "{\"name\": \"big2\", \"api_key\": \"k-big2-12345\", \"deployment\": \"d\", \"context_window\": 150, \"client\": {\"context_window\": 150, \"priority\": 2}},"
	        "{\"name\": \"big\", \"api_key\": \"k-big-123456\", \"deployment\": \"d\", \"client\": {\"context_window\": 100000, \"priority\": 3}}],"
	        " \"default_reply\": \"OK\"}",
	        configure_small ? "\"context_window\": 100" : "");
	return s;
}

static char *long_prompt(size_t chars)
{
	char *p = malloc(chars + 1);
	memset(p, 'w', chars);
	p[chars] = '\0';
	return p;
}

static void a_prompt_too_long_fails_over_only_to_a_larger_window_that_holds_it(void **state)
{
	for (int configured = 1; configured >= 0; configured--) { /* the small window configured, or read from the refusal */
		struct env e;
		start(&e, windows_scenario(configured));
		char *p = long_prompt(640); /* 160 tokens: too long for 100 and 150 */
		struct llm_reply rep;
		struct err err = ERR_INIT;
		assert_int_equal(chat(&e, p, 0, &rep, &err), CONVBI_OK);
		assert_int_equal(rep.nattempts, 2);
		assert_string_equal(rep.attempts[0].endpoint, "small");
		assert_int_equal(rep.attempts[0].status, 400);
		assert_string_equal(llm_class_name(rep.attempts[0].cls), "context_length");
		assert_string_equal(rep.attempts[1].endpoint, "big");
		llm_reply_release(&rep);
		assert_int_equal(fake_stat(&e.f, "same", "requests"), 0); /* the same window: never */
		assert_int_equal(fake_stat(&e.f, "big2", "requests"), 0); /* larger, yet too small for 160 */
		free(p);
		stop(&e);
	}
}

static void without_a_larger_window_the_refusal_is_final_at_once(void **state)
{
	struct env e;
	start(&e,
	      "{\"endpoints\": [{\"name\": \"a\", \"api_key\": \"k-a-1234567\", \"deployment\": \"d\", \"context_window\": 100,"
	      " \"client\": {\"context_window\": 100}},"
	      "{\"name\": \"b\", \"api_key\": \"k-b-1234567\", \"deployment\": \"d\", \"context_window\": 100,"
	      " \"client\": {\"context_window\": 100, \"priority\": 1}}], \"default_reply\": \"OK\"}");
	char *p = long_prompt(800);
	struct llm_reply rep;
	struct err err = ERR_INIT;
	assert_int_equal(chat(&e, p, 50, &rep, &err), CONVBI_ECONTEXT);
	assert_int_equal(rep.nattempts, 1);
	assert_int_equal(rep.context_limit, 100);
	assert_int_equal(rep.context_used, 250); /* "you requested 250 tokens (200 in the messages, 50 in the completion)" */
	assert_non_null(strstr(err.msg, "you requested 250 tokens"));
	assert_non_null(strstr(err.msg, "no other endpoint has a context_window above 100 tokens"));
	assert_int_equal(fake_stat(&e.f, "b", "requests"), 0);
	llm_reply_release(&rep);
	free(p);
	stop(&e);
}

/* ---- the SQL agent: less schema, once ------------------------------------------ */

#define SQLW "You are the SQL writer"

struct flow_env {
	struct fake f;
	convbi_engine *e;
	convbi_session *s;
};

static void flow_start(struct flow_env *v, int window)
{
	memset(v, 0, sizeof *v);
	char scen[2048];
	snprintf(scen, sizeof scen,
	         "{\"endpoints\":[{\"name\":\"east\",\"api_key\":\"k-ctx-east-1234\",\"deployment\":\"gpt-4o\",\"context_window\":%d}],"
	         "\"rules\":[{\"match\":\"You are the intent classifier\",\"reply\":\"{\\\"intent\\\":\\\"data_question\\\","
	         "\\\"standalone_question\\\":\\\"\\\",\\\"reply\\\":\\\"\\\"}\"},"
	         "{\"match\":\"You are the answer writer\",\"reply\":\"Here they are.\"}],"
	         "\"default_reply\":\"```sql\\nSELECT count(*) AS n FROM customers\\n```\"}",
	         window);
	assert_int_equal(fake_start(&v->f, scen), 0);
	char cfg[1024];
	snprintf(cfg, sizeof cfg, "%s/config.json", v->f.dir);
	assert_int_equal(fake_write_config(&v->f, cfg, NULL), 0);
	convbi_options o = CONVBI_OPTIONS_INIT;
	o.db_path = SAMPLE_DB;
	o.config_path = cfg;
	o.prompts_dir = SOURCE_DIR "/prompts";
	if (convbi_engine_open(&v->e, &o))
		fail_msg("open: %s", convbi_engine_errmsg(v->e));
	assert_int_equal(convbi_session_new(&v->s, v->e), CONVBI_OK);
}

static void flow_stop(struct flow_env *v)
{
	convbi_session_free(v->s);
	convbi_engine_close(v->e);
	fake_stop(&v->f);
}

/* The SQL prompts the fake received, in order: (tokens by the fake's
 * count, max_tokens asked). */
static int sql_prompts(struct fake *f, long tokens[], long maxtok[], int max)
{
	char *log = fake_log(f);
	int n = 0;
	for (char *line = strtok(log, "\n"); line && n < max; line = strtok(NULL, "\n")) {
		cJSON *o = cJSON_Parse(line), *body = NULL;
		const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "body");
		if (cJSON_IsString(b) && strstr(b->valuestring, SQLW) && (body = cJSON_Parse(b->valuestring))) {
			long chars = 0;
			const cJSON *m;
			cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(body, "messages")) chars +=
			        (long)strlen(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "content")));
			tokens[n] = (chars + 3) / 4;
			const cJSON *mt = cJSON_GetObjectItemCaseSensitive(body, "max_tokens");
			maxtok[n++] = cJSON_IsNumber(mt) ? (long)mt->valuedouble : 0;
		}
		cJSON_Delete(body);
		cJSON_Delete(o);
	}
	free(log);
	return n;
}

struct seen {
	int retries;
	char text[400];
};

static int on_event(const convbi_event *ev, void *payload)
{
	struct seen *s = payload;
	if (ev->kind == CONVBI_EVENT_RETRY && strstr(ev->text, "schema cut")) {
		s->retries++;
		snprintf(s->text, sizeof s->text, "%.*s", (int)ev->len, ev->text);
	}
	return 0;
}

static void the_sql_agent_cuts_its_schema_once_when_no_window_is_larger(void **state)
{
	/* measure the SQL prompt with no limit */
	struct flow_env v;
	flow_start(&v, 0);
	convbi_answer *a = NULL;
	assert_int_equal(convbi_session_ask(v.s, "How many customers are there?", NULL, NULL, NULL, &a), CONVBI_OK);
	convbi_answer_free(a);
	long tok[4], mt[4];
	assert_int_equal(sql_prompts(&v.f, tok, mt, 4), 1);
	flow_stop(&v);

	/* a window 100 tokens short of it: refused, then asked again with less schema */
	long window = tok[0] + mt[0] - 100;
	flow_start(&v, (int)window);
	struct seen seen = {0};
	a = NULL;
	int rc = convbi_session_ask(v.s, "How many customers are there?", NULL, on_event, &seen, &a);
	if (rc)
		fail_msg("ask: %s", convbi_session_errmsg(v.s));
	assert_string_equal(convbi_answer_sql(a), "SELECT count(*) AS n FROM customers");
	convbi_answer_free(a);
	assert_int_equal(seen.retries, 1);
	long tok2[4], mt2[4];
	assert_int_equal(sql_prompts(&v.f, tok2, mt2, 4), 2);
	assert_int_equal(tok2[0], tok[0]);
	assert_true(tok2[1] + mt2[1] <= window);    /* the second fits */
	assert_true(tok2[1] >= tok[0] - 100 - 250); /* and lost little more than it had to */
	assert_int_equal(fake_log_count(&v.f, "\"status\":400"), 1);
	flow_stop(&v);

	/* far too small for any schema cut: one refusal, one clear failure, no loop */
	flow_start(&v, (int)(tok[0] / 4));
	a = NULL;
	seen.retries = 0;
	rc = convbi_session_ask(v.s, "How many customers are there?", NULL, on_event, &seen, &a);
	assert_int_equal(rc, CONVBI_ECONTEXT);
	convbi_answer_free(a);
	assert_non_null(strstr(convbi_session_errmsg(v.s), "maximum context length"));
	assert_true(fake_log_count(&v.f, "\"status\":400") <= 2);
	flow_stop(&v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(the_spillover_deployment_is_sent_and_each_attempt_says_who_served_it),
	        cmocka_unit_test(a_server_error_spills_over_too_and_without_the_setting_nothing_is_sent),
	        cmocka_unit_test(a_prompt_too_long_fails_over_only_to_a_larger_window_that_holds_it),
	        cmocka_unit_test(without_a_larger_window_the_refusal_is_final_at_once),
	        cmocka_unit_test(the_sql_agent_cuts_its_schema_once_when_no_window_is_larger),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
