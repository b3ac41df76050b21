/* test_llm.c -- the LLM client against the fake Azure OpenAI server: one
 * test per behaviour and per fault (issue: the rotating, retrying,
 * rate-limit-aware client).  Each test starts its own fake server with
 * three endpoints (east, west, north) and a fresh shared state file. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "convbi/convbi.h"
#include "fake.h"
#include "llm/config.h"
#include "llm/llm.h"
#include "testutil.h"
#include "util/clock.h"

#define KEY_EAST "k-east-7f3a9c1e5b"
#define KEY_WEST "k-west-2d8b4f6a0c"
#define KEY_NORTH "k-north-9e1c3a5b7d"

static char scenario[4096];

static const char *scenario_with(const char *east_faults, const char *west_faults, const char *north_faults)
{
	snprintf(scenario, sizeof scenario,
	         "{\"endpoints\": ["
	         "{\"name\":\"east\",\"api_key\":\"" KEY_EAST
	         "\",\"deployment\":\"gpt-4o\",\"model\":\"gpt-4o-2024-08-06\",\"faults\":%s},"
	         "{\"name\":\"west\",\"api_key\":\"" KEY_WEST
	         "\",\"deployment\":\"gpt-4o\",\"model\":\"gpt-4o-2024-08-06\",\"faults\":%s},"
	         "{\"name\":\"north\",\"api_key\":\"" KEY_NORTH
	         "\",\"deployment\":\"gpt-4o\",\"model\":\"gpt-4o-2024-08-06\",\"faults\":%s}],"
	         "\"rules\": [{\"match\": \"say (\\\\w+)\", \"reply\": \"You said $1, and this reply is long enough to be streamed in several chunks.\"}],"
	         "\"default_reply\": \"OK\"}",
	         east_faults ? east_faults : "[]", west_faults ? west_faults : "[]", north_faults ? north_faults : "[]");
	return scenario;
}

struct env {
	struct fake f;
	struct llm *l;
};

static void start(struct env *e, const char *scen, const char *extra)
{
	memset(e, 0, sizeof *e);
	assert_int_equal(fake_start(&e->f, scen), 0);
	char path[1024];
	snprintf(path, sizeof path, "%s/config.json", e->f.dir);
	assert_int_equal(fake_write_config(&e->f, path, extra), 0);
	struct llm_config cfg;
	struct err err = ERR_INIT;
	int rc = config_load(&cfg, path, &err);
	if (rc)
		fail_msg("config: %s", err.msg);
	rc = llm_open(&e->l, &cfg, &err);
	if (rc)
		fail_msg("llm_open: %s", err.msg);
}

static void stop(struct env *e)
{
	llm_close(e->l);
	fake_stop(&e->f);
}

struct collect {
	struct buf text;
	int retries;
	int restarts;
};

static int on_delta(void *payload, const char *text, size_t len)
{
	struct collect *c = payload;
	buf_add(&c->text, text, len);
	return 0;
}

static void on_retry(void *payload, const struct llm_attempt *a, int restarted, const char *next)
{
	(void)next;
	struct collect *c = payload;
	c->retries++;
	if (restarted) {
		c->restarts++;
		buf_reset(&c->text);
	}
}

static int chat(struct env *e, int stream, const char *prompt, struct llm_reply *rep, struct err *err, struct collect *c)
{
	struct chat_msg m = {"user", prompt};
	struct llm_request req = {.msgs = &m,
	                          .n = 1,
	                          .temperature = -1,
	                          .stream = stream,
	                          .on_delta = c ? on_delta : NULL,
	                          .on_retry = c ? on_retry : NULL,
	                          .payload = c};
	return llm_chat(e->l, &req, rep, err);
}

static int count_to(const struct llm_reply *r, const char *ep)
{
	int n = 0;
	for (size_t i = 0; i < r->nattempts; i++)
		n += !strcmp(r->attempts[i].endpoint, ep);
	return n;
}

/* ---- the happy paths ------------------------------------------------------ */

static void a_completion_returns_content_endpoint_model_usage_and_one_attempt(void **state)
{
	struct env e;
	start(&e, scenario_with(NULL, NULL, NULL), NULL);
	struct llm_reply rep;
	struct err err = ERR_INIT;
	assert_int_equal(chat(&e, 0, "please say hello", &rep, &err, NULL), CONVBI_OK);
	assert_non_null(strstr(rep.content, "You said hello"));
	assert_string_equal(rep.model, "gpt-4o-2024-08-06");
	assert_true(rep.prompt_tokens > 0 && rep.completion_tokens > 0);
	assert_int_equal(rep.nattempts, 1);
	assert_int_equal(rep.attempts[0].cls, LLM_OK);
	assert_int_equal(rep.attempts[0].status, 200);
	assert_string_equal(rep.endpoint, rep.attempts[0].endpoint);
	struct buf js = BUF_INIT;
	assert_int_equal(llm_reply_json(&js, &rep, 0, NULL), CONVBI_OK);
	assert_non_null(strstr(js.data, "\"attempts\":[{\"endpoint\":"));
	buf_release(&js);
	llm_reply_release(&rep);
	stop(&e);
}

static void streaming_delivers_deltas_that_add_up_to_the_content(void **state)
{
	struct env e;
	start(&e, scenario_with(NULL, NULL, NULL), NULL);
	struct llm_reply rep;
	struct err err = ERR_INIT;
	struct collect c = {BUF_INIT, 0, 0};
	assert_int_equal(chat(&e, 1, "say streamed", &rep, &err, &c), CONVBI_OK);
	assert_string_equal(buf_str(&c.text), rep.content);
	assert_non_null(strstr(rep.content, "You said streamed"));
	assert_true(rep.completion_tokens > 0);
	buf_release(&c.text);
	llm_reply_release(&rep);
	stop(&e);
}

static void all_three_kinds_speak_their_own_paths_and_auth(void **state)
{
	struct env e;
	memset(&e, 0, sizeof e);
	const char *scen =
	        "{\"endpoints\": ["
	        "{\"name\":\"a\",\"api_key\":\"k-aaaaaaaa1\",\"deployment\":\"d1\"},"
	        "{\"name\":\"b\",\"api_key\":\"k-bbbbbbbb2\",\"deployment\":\"d2\",\"client\":{\"kind\":\"azure-v1\"}},"
	        "{\"name\":\"c\",\"api_key\":\"k-cccccccc3\",\"deployment\":\"d3\",\"client\":{\"kind\":\"openai\",\"model\":\"m3\"}}],"
	        "\"default_reply\": \"hi\"}";
	assert_int_equal(fake_start(&e.f, scen), 0);
	char path[1024], url[128];
	snprintf(path, sizeof path, "%s/config.json", e.f.dir);
	snprintf(url, sizeof url, "{\"endpoints\":null}");
	assert_int_equal(fake_write_config(&e.f, path, NULL), 0);
	/* The openai kind's URL is the base that ends in /v1. */
	char *text = tu_read_file(path, NULL);
	char needle[64], repl[64];
	snprintf(needle, sizeof needle, "127.0.0.1:%d\"", fake_port(&e.f, "c"));
	snprintf(repl, sizeof repl, "127.0.0.1:%d/v1\"", fake_port(&e.f, "c"));
	char *hit = strstr(text, needle);
	assert_non_null(hit);
	struct buf nb = BUF_INIT;
	buf_add(&nb, text, (size_t)(hit - text));
	buf_puts(&nb, repl);
	buf_puts(&nb, hit + strlen(needle));
	tu_write_file(path, nb.data);
	buf_release(&nb);
	free(text);
	struct llm_config cfg;
	struct err err = ERR_INIT;
	assert_int_equal(config_load(&cfg, path, &err), CONVBI_OK);
	assert_int_equal(llm_open(&e.l, &cfg, &err), CONVBI_OK);
	for (int i = 0; i < 3; i++) {
		struct llm_reply rep;
		if (chat(&e, i == 2, "x", &rep, &err, NULL))
			fail_msg("%s", err.msg);
		llm_reply_release(&rep);
	}
	assert_int_equal(fake_stat(&e.f, "a", "ok"), 1);
	assert_int_equal(fake_stat(&e.f, "b", "ok"), 1);
	assert_int_equal(fake_stat(&e.f, "c", "ok"), 1);
	assert_true(fake_log_count(&e.f, "/openai/deployments/d1/chat/completions?api-version=") == 1);
	assert_true(fake_log_count(&e.f, "/openai/v1/chat/completions") == 1);
	assert_true(fake_log_count(&e.f, "\"/v1/chat/completions") == 1);
	assert_int_equal(fake_log_count(&e.f, "<mismatch>"), 0);
	stop(&e);
}

/* ---- rate limits ----------------------------------------------------------- */

static void a_429_with_retry_after_keeps_every_process_away_for_that_long(void **state)
{
	struct env e;
	start(&e, scenario_with("[{\"kind\":\"rate_limit\",\"retry_after_s\":20,\"count\":1}]", NULL, NULL), NULL);
	struct err err = ERR_INIT;
	int saw = 0;
	int64_t t0 = clock_mono_ms();
	for (int i = 0; i < 9; i++) {
		struct llm_reply rep;
		assert_int_equal(chat(&e, 0, "x", &rep, &err, NULL), CONVBI_OK);
		for (size_t k = 0; k < rep.nattempts; k++)
			if (rep.attempts[k].cls == LLM_RATE_LIMITED) {
				saw++;
				assert_string_equal(rep.attempts[k].endpoint, "east");
				assert_int_equal(rep.attempts[k].wait_ms, 20000);
				assert_string_equal(rep.attempts[k].retry_from, "retry-after-ms");
			}
		llm_reply_release(&rep);
	}
	assert_int_equal(saw, 1);
	assert_true(clock_mono_ms() - t0 < 3000); /* failed over at once, no sleeping */
	assert_int_equal(fake_stat(&e.f, "east", "requests"), 1);
	/* Another process sharing the state file sends nothing to east either. */
	pid_t pid = fork();
	if (pid == 0) {
		struct llm_config cfg;
		char path[1024];
		snprintf(path, sizeof path, "%s/config.json", e.f.dir);
		struct llm *l2 = NULL;
		if (config_load(&cfg, path, &err) || llm_open(&l2, &cfg, &err))
			_exit(3);
		for (int i = 0; i < 6; i++) {
			struct chat_msg m = {"user", "x"};
			struct llm_request req = {.msgs = &m, .n = 1, .temperature = -1};
			struct llm_reply rep;
			if (llm_chat(l2, &req, &rep, &err))
				_exit(4);
			if (!strcmp(rep.endpoint, "east"))
				_exit(5);
			llm_reply_release(&rep);
		}
		llm_close(l2);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(fake_stat(&e.f, "east", "requests"), 1);
	char *js = NULL;
	struct buf b = BUF_INIT;
	llm_endpoints_json(e.l, &b);
	assert_non_null(strstr(b.data, "\"name\":\"east\""));
	assert_null(strstr(b.data, KEY_EAST));
	buf_release(&b);
	free(js);
	stop(&e);
}

static void when_every_endpoint_cools_the_call_sleeps_until_the_earliest_is_free(void **state)
{
	struct env e;
	const char *f = "[{\"kind\":\"rate_limit\",\"retry_after_s\":1,\"count\":1}]";
	start(&e, scenario_with(f, f, f), NULL);
	struct err err = ERR_INIT;
	struct llm_reply rep;
	int64_t t0 = clock_mono_ms();
	assert_int_equal(chat(&e, 0, "x", &rep, &err, NULL), CONVBI_OK);
	int64_t dt = clock_mono_ms() - t0;
	assert_int_equal(rep.nattempts, 4);
	assert_true(dt >= 900 && dt < 2500);
	llm_reply_release(&rep);
	stop(&e);
}

static void cooling_past_the_deadline_fails_at_once_with_eratelimit(void **state)
{
	struct env e;
	const char *f = "[{\"kind\":\"rate_limit\",\"retry_after_s\":30}]";
	start(&e, scenario_with(f, f, f), "{\"retry\":{\"deadline_ms\":5000}}");
	struct err err = ERR_INIT;
	struct llm_reply rep;
	int64_t t0 = clock_mono_ms();
	assert_int_equal(chat(&e, 0, "x", &rep, &err, NULL), CONVBI_ERATELIMIT);
	assert_true(clock_mono_ms() - t0 < 1500);
	assert_non_null(strstr(err.msg, "every endpoint is rate limited until"));
	assert_non_null(strstr(err.msg, "the call's deadline is"));
	assert_int_equal(rep.nattempts, 3);
	llm_reply_release(&rep);
	stop(&e);
}

static void a_bare_429_still_fails_over(void **state)
{
	struct env e;
	start(&e, scenario_with("[{\"kind\":\"rate_limit_bare\",\"count\":1}]", NULL, NULL), NULL);
	struct err err = ERR_INIT;
	for (int i = 0; i < 3; i++) {
		struct llm_reply rep;
		assert_int_equal(chat(&e, 0, "x", &rep, &err, NULL), CONVBI_OK);
		llm_reply_release(&rep);
	}
	assert_int_equal(fake_stat(&e.f, "east", "rate_limited"), 1);
	stop(&e);
}

static void a_daily_quota_takes_out_only_that_endpoint(void **state)
{
	struct env e;
	start(&e, scenario_with("[{\"kind\":\"daily_quota\"}]", NULL, NULL), NULL);
	struct err err = ERR_INIT;
	for (int i = 0; i < 10; i++) {
		struct llm_reply rep;
		assert_int_equal(chat(&e, 0, "x", &rep, &err, NULL), CONVBI_OK);
		assert_string_not_equal(rep.endpoint, "east");
		llm_reply_release(&rep);
	}
	assert_int_equal(fake_stat(&e.f, "east", "requests"), 1);
	struct buf b = BUF_INIT;
	llm_endpoints_json(e.l, &b);
	assert_non_null(strstr(b.data, "\"cooling_ms\":8639"));
	buf_release(&b);
	stop(&e);
}

/* ---- server and transport faults ------------------------------------------ */

struct fault_case {
	const char *fault;
	int stream;
	int cls; /* class of the failed attempt */
};

static void every_fault_on_one_endpoint_is_survived_by_failing_over(void **state)
{
	static const struct fault_case cases[] = {
	        {"{\"kind\":\"http500\",\"count\":1}", 0, LLM_SERVER_ERROR},
	        {"{\"kind\":\"http503\"}", 0, LLM_SERVER_ERROR},
	        {"{\"kind\":\"status\",\"status\":408}", 0, LLM_SERVER_ERROR},
	        {"{\"kind\":\"reset\"}", 0, LLM_TRANSPORT},
	        {"{\"kind\":\"hang\"}", 0, LLM_TIMEOUT},
	        {"{\"kind\":\"slow_first_token\",\"delay_ms\":3000}", 1, LLM_TIMEOUT},
	        {"{\"kind\":\"stream_cut\",\"after_chunks\":3}", 1, LLM_STREAM_ERROR},
	        {"{\"kind\":\"stream_stall\",\"after_chunks\":3}", 1, LLM_TIMEOUT},
	        {"{\"kind\":\"malformed_chunk\",\"after_chunks\":2}", 1, LLM_STREAM_ERROR},
	        {"{\"kind\":\"http401\"}", 0, LLM_AUTH},
	        {"{\"kind\":\"http404\"}", 0, LLM_NOT_FOUND},
	        {"{\"kind\":\"stream_cut\",\"after_chunks\":1}", 0, LLM_STREAM_ERROR},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char f[256];
		snprintf(f, sizeof f, "[%s]", cases[i].fault);
		struct env e;
		start(&e, scenario_with(f, NULL, NULL), NULL);
		struct err err = ERR_INIT;
		int failed_on_east = 0;
		for (int k = 0; k < 3; k++) {
			struct llm_reply rep;
			struct collect c = {BUF_INIT, 0, 0};
			int rc = chat(&e, cases[i].stream, "say fault", &rep, &err, &c);
			if (rc)
				fail_msg("case %zu (%s): %s", i, cases[i].fault, err.msg);
			assert_non_null(strstr(rep.content, "You said fault"));
			if (cases[i].stream)
				assert_string_equal(buf_str(&c.text), rep.content); /* never a truncated success */
			for (size_t a = 0; a < rep.nattempts; a++)
				if (rep.attempts[a].cls != LLM_OK) {
					if (strcmp(rep.attempts[a].endpoint, "east") || rep.attempts[a].cls != cases[i].cls)
						fail_msg("case %zu (%s): attempt on %s class %s", i, cases[i].fault,
						         rep.attempts[a].endpoint, llm_class_name(rep.attempts[a].cls));
					failed_on_east++;
				}
			assert_true(count_to(&rep, "east") <= 1); /* never twice in one call */
			buf_release(&c.text);
			llm_reply_release(&rep);
		}
		if (failed_on_east < 1)
			fail_msg("case %zu: the fault was never hit", i);
		assert_int_equal(fake_log_count(&e.f, KEY_EAST), 0);
		stop(&e);
	}
}

static void a_missing_done_after_a_clean_end_is_a_success(void **state)
{
	struct env e;
	start(&e, scenario_with("[{\"kind\":\"no_done\"}]", "[{\"kind\":\"no_done\"}]", "[{\"kind\":\"no_done\"}]"), NULL);
	struct err err = ERR_INIT;
	struct llm_reply rep;
	struct collect c = {BUF_INIT, 0, 0};
	assert_int_equal(chat(&e, 1, "say done", &rep, &err, &c), CONVBI_OK);
	assert_int_equal(rep.nattempts, 1);
	assert_string_equal(buf_str(&c.text), rep.content);
	buf_release(&c.text);
	llm_reply_release(&rep);
	stop(&e);
}

static void content_filter_and_context_length_are_never_retried(void **state)
{
	static const struct {
		const char *kind;
		int rc;
		const char *reason;
	} cases[] = {
	        {"content_filter", CONVBI_EFILTERED, "content_filter"},
	        {"context_length", CONVBI_ECONTEXT, "maximum context length"},
	        {"status\",\"status\":400,\"code\":\"invalid_value", CONVBI_EBADREQUEST, "invalid_value"},
	};
	for (size_t i = 0; i < 3; i++) {
		char f[200];
		snprintf(f, sizeof f, "[{\"kind\":\"%s\"}]", cases[i].kind);
		struct env e;
		start(&e, scenario_with(f, f, f), NULL);
		struct err err = ERR_INIT;
		struct llm_reply rep;
		assert_int_equal(chat(&e, 0, "x", &rep, &err, NULL), cases[i].rc);
		assert_int_equal(rep.nattempts, 1);
		if (!strstr(err.msg, cases[i].reason))
			fail_msg("case %zu: %s", i, err.msg);
		llm_reply_release(&rep);
		stop(&e);
	}
}

static void with_every_endpoint_down_the_error_is_clean_and_inside_the_deadline(void **state)
{
	const char *f = "[{\"kind\":\"http503\"}]";
	struct env e;
	start(&e, scenario_with(f, f, f), "{\"retry\":{\"deadline_ms\":3000,\"max_attempts\":6}}");
	struct err err = ERR_INIT;
	struct llm_reply rep;
	int64_t t0 = clock_mono_ms();
	int rc = chat(&e, 0, "x", &rep, &err, NULL);
	assert_int_equal(rc, CONVBI_ELLM);
	assert_true(clock_mono_ms() - t0 < 3500);
	assert_non_null(strstr(err.msg, "503"));
	assert_null(strstr(err.msg, KEY_EAST));
	llm_reply_release(&rep);
	/* Hung everywhere: bounded by the deadline too. */
	stop(&e);
	f = "[{\"kind\":\"hang\"}]";
	start(&e, scenario_with(f, f, f), "{\"retry\":{\"deadline_ms\":2500,\"first_byte_timeout_ms\":500}}");
	t0 = clock_mono_ms();
	rc = chat(&e, 1, "x", &rep, &err, NULL);
	assert_int_not_equal(rc, CONVBI_OK);
	assert_true(clock_mono_ms() - t0 < 3000);
	assert_int_equal(rep.nattempts, 3); /* each silent endpoint tried once */
	llm_reply_release(&rep);
	stop(&e);
}

static void a_flapping_endpoint_is_served_around_and_returned_to(void **state)
{
	struct env e;
	start(&e, scenario_with("[{\"kind\":\"flap\",\"down_ms\":1500}]", NULL, NULL), NULL);
	struct err err = ERR_INIT;
	int64_t t0 = clock_mono_ms();
	while (clock_mono_ms() - t0 < 6000) {
		struct llm_reply rep;
		assert_int_equal(chat(&e, 0, "x", &rep, &err, NULL), CONVBI_OK);
		llm_reply_release(&rep);
		clock_sleep_ms(50);
	}
	assert_true(fake_stat(&e.f, "east", "ok") > 0); /* returned after recovery */
	stop(&e);
}

/* ---- concurrency ------------------------------------------------------------ */

struct thread_arg {
	struct env *e;
	int failures;
	int stream;
};

static void *hammer(void *p)
{
	struct thread_arg *a = p;
	for (int i = 0; i < 10; i++) {
		struct llm_reply rep;
		struct err err = ERR_INIT;
		if (chat(a->e, a->stream, "say thread", &rep, &err, NULL) || !strstr(rep.content, "You said thread"))
			a->failures++;
		llm_reply_release(&rep);
	}
	return NULL;
}

static void sixteen_threads_share_one_client_through_faults(void **state)
{
	struct env e;
	start(&e,
	      scenario_with("[{\"kind\":\"http500\",\"count\":5},{\"kind\":\"reset\",\"count\":5}]",
	                    "[{\"kind\":\"stream_cut\",\"count\":5}]",
	                    "[{\"kind\":\"rate_limit\",\"retry_after_s\":1,\"count\":3}]"),
	      NULL);
	pthread_t th[16];
	struct thread_arg args[16];
	for (int i = 0; i < 16; i++) {
		args[i] = (struct thread_arg){&e, 0, i % 2};
		pthread_create(&th[i], NULL, hammer, &args[i]);
	}
	int failures = 0;
	for (int i = 0; i < 16; i++) {
		pthread_join(th[i], NULL);
		failures += args[i].failures;
	}
	assert_int_equal(failures, 0);
	stop(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(a_completion_returns_content_endpoint_model_usage_and_one_attempt),
	        cmocka_unit_test(streaming_delivers_deltas_that_add_up_to_the_content),
	        cmocka_unit_test(all_three_kinds_speak_their_own_paths_and_auth),
	        cmocka_unit_test(a_429_with_retry_after_keeps_every_process_away_for_that_long),
	        cmocka_unit_test(when_every_endpoint_cools_the_call_sleeps_until_the_earliest_is_free),
	        cmocka_unit_test(cooling_past_the_deadline_fails_at_once_with_eratelimit),
	        cmocka_unit_test(a_bare_429_still_fails_over),
	        cmocka_unit_test(a_daily_quota_takes_out_only_that_endpoint),
	        cmocka_unit_test(every_fault_on_one_endpoint_is_survived_by_failing_over),
	        cmocka_unit_test(a_missing_done_after_a_clean_end_is_a_success),
	        cmocka_unit_test(content_filter_and_context_length_are_never_retried),
	        cmocka_unit_test(with_every_endpoint_down_the_error_is_clean_and_inside_the_deadline),
	        cmocka_unit_test(a_flapping_endpoint_is_served_around_and_returned_to),
	        cmocka_unit_test(sixteen_threads_share_one_client_through_faults),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
