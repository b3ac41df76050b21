/* test_quota_edge.c -- the edges of rate limits and shared quotas (issue 11,
 * attack6), through the LLM client against the fake Azure OpenAI server:
 *   - a call whose endpoint frees up too close to its deadline for an
 *     attempt fails at once, and says so; one with time for an attempt
 *     waits and makes it (F9);
 *   - a service asking for a wait of days (a retry-after of 3 days, a date
 *     years ahead) or announcing an impossible limit has the endpoint out
 *     for the longest wait the state keeps, never a value the state's own
 *     check then clears, calling the endpoint again at once (F10);
 *   - with a budget configured, a process whose state file cannot be used
 *     spends nothing (unless state.local_budgets allows a budget of its
 *     own) and says which file and what to do; without one it goes on
 *     in its own memory (F5);
 * Each test starts its own fake server and state file and takes a few
 * seconds at most. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "convbi/convbi.h"
#include "fake.h"
#include "llm/config.h"
#include "llm/llm.h"
#include "llm/state.h"
#include "testutil.h"
#include "util/clock.h"
#include "util/log.h"

struct env {
	struct fake f;
	struct llm *l;
};

/* A client on the fake's config written to f->dir/name with extra merged
 * over it; fails the test when it cannot open. */
static struct llm *client_on(const struct fake *f, const char *name, const char *extra)
{
	char path[1024];
	struct llm_config cfg;
	struct llm *l = NULL;
	struct err err = ERR_INIT;
	snprintf(path, sizeof path, "%s/%s", f->dir, name);
	assert_int_equal(fake_write_config(f, path, extra), 0);
	if (config_load(&cfg, path, &err) || llm_open(&l, &cfg, &err))
		fail_msg("%s: %s", path, err.msg);
	return l;
}

/* Starts the fake on scen and a client on its config (extra merged over). */
static void start(struct env *e, const char *scen, const char *extra)
{
	memset(e, 0, sizeof *e);
	assert_int_equal(fake_start(&e->f, scen), 0);
	e->l = client_on(&e->f, "config.json", extra);
}

static void stop(struct env *e)
{
	llm_close(e->l);
	fake_stop(&e->f);
}

/* One call with its own deadline (0 = the configured one). */
static int chat(struct env *e, int64_t deadline_ms, struct llm_reply *rep, struct err *err)
{
	struct chat_msg m = {"user", "hi"};
	struct llm_request req = {.msgs = &m, .n = 1, .temperature = -1, .deadline_ms = deadline_ms};
	return llm_chat(e->l, &req, rep, err);
}

/* An endpoint's numeric field in llm_endpoints_json (-1 if absent). */
static long long endpoint_field(struct env *e, const char *name, const char *field)
{
	struct buf b = BUF_INIT;
	assert_int_equal(llm_endpoints_json(e->l, &b), CONVBI_OK);
	char key[96];
	snprintf(key, sizeof key, "\"name\":\"%s\"", name);
	const char *at = strstr(b.data, key);
	long long v = -1;
	if (at) {
		snprintf(key, sizeof key, "\"%s\":", field);
		const char *f = strstr(at, key);
		if (f)
			v = strtoll(f + strlen(key), NULL, 10);
	}
	buf_release(&b);
	return v;
}

/* ---- F9: a wait that ends too close to the deadline ------------------------ */

static void a_call_fails_at_once_when_its_endpoint_frees_too_close_to_the_deadline(void **state)
{
	(void)state;
	struct env e;
	/* x: out for 30 s; y: out for 2 s once, then answers */
	start(&e,
	      "{\"endpoints\":["
	      "{\"name\":\"x\",\"api_key\":\"k-edge-x-1\",\"deployment\":\"gpt-4o\","
	      "\"faults\":[{\"kind\":\"rate_limit\",\"retry_after_s\":30}]},"
	      "{\"name\":\"y\",\"api_key\":\"k-edge-y-1\",\"deployment\":\"gpt-4o\","
	      "\"faults\":[{\"kind\":\"rate_limit\",\"retry_after_ms\":2000,\"count\":1}]}],"
	      "\"default_reply\":\"OK\"}",
	      NULL);
	struct err err = ERR_INIT;
	struct llm_reply rep;
	/* both cool: a short call cannot wait for either */
	assert_int_equal(chat(&e, 300, &rep, &err), CONVBI_ERATELIMIT);
	assert_int_equal(rep.nattempts, 2);
	llm_reply_release(&rep);

	/* y frees 16 ms before this call's deadline: no time for an attempt,
	 * so the call says so at once rather than sleeping through it */
	long long cool = endpoint_field(&e, "y", "cooling_ms");
	assert_true(cool > 1000);
	int64_t t0 = clock_mono_ms();
	err_clear(&err);
	assert_int_equal(chat(&e, cool + 16, &rep, &err), CONVBI_ERATELIMIT);
	int64_t dt = clock_mono_ms() - t0;
	print_message("# freed %lld ms before the deadline: failed in %lld ms: %s\n", 16LL, (long long)dt, err.msg);
	assert_true(dt < cool / 2);
	assert_int_equal(rep.nattempts, 0);
	assert_non_null(strstr(err.msg, "too soon after it for an attempt"));
	llm_reply_release(&rep);

	/* with time for an attempt after the wait, the call waits and makes it */
	cool = endpoint_field(&e, "y", "cooling_ms");
	t0 = clock_mono_ms();
	err_clear(&err);
	assert_int_equal(chat(&e, cool + 400, &rep, &err), CONVBI_OK);
	dt = clock_mono_ms() - t0;
	print_message("# freed 400 ms before the deadline: answered by %s in %lld ms\n", rep.endpoint, (long long)dt);
	assert_string_equal(rep.endpoint, "y");
	assert_true(dt >= cool - 50);
	llm_reply_release(&rep);
	stop(&e);
}

/* ---- F10: a service asking for days --------------------------------------- */

struct seen {
	int impossible; /* warnings of an "impossible value" in the state */
	char first[300];
};

static void keep_warning(int level, const char *line, void *payload)
{
	struct seen *s = payload;
	(void)level;
	if (strstr(line, "impossible value") && !s->impossible++)
		snprintf(s->first, sizeof s->first, "%s", line);
}

static void a_wait_of_days_keeps_the_endpoint_out_for_the_longest_wait_the_state_keeps(void **state)
{
	(void)state;
	struct env e;
	struct seen seen = {0};
	log_set_sink(keep_warning, &seen, LOG_INFO);
	start(&e,
	      "{\"endpoints\":["
	      "{\"name\":\"h1\",\"api_key\":\"k-edge-h1\",\"deployment\":\"gpt-4o\",\"faults\":[{\"kind\":\"status\","
	      "\"status\":429,\"message\":\"Too many\",\"headers\":{\"retry-after\":\"999999999\"},\"count\":1}]},"
	      "{\"name\":\"h2\",\"api_key\":\"k-edge-h2\",\"deployment\":\"gpt-4o\",\"faults\":[{\"kind\":\"status\","
	      "\"status\":429,\"message\":\"Too many\",\"headers\":{\"retry-after\":\"259200\"},\"count\":1}]},"
	      "{\"name\":\"h3\",\"api_key\":\"k-edge-h3\",\"deployment\":\"gpt-4o\",\"faults\":[{\"kind\":\"status\","
	      "\"status\":429,\"message\":\"Too many\",\"headers\":{\"retry-after\":\"Wed, 21 Oct 2099 07:28:00 GMT\"},"
	      "\"count\":1}]},"
	      "{\"name\":\"h4\",\"api_key\":\"k-edge-h4\",\"deployment\":\"gpt-4o\",\"faults\":[{\"kind\":\"status\","
	      "\"status\":429,\"message\":\"Too many\",\"headers\":{\"x-ratelimit-reset-requests\":\"1h30m\","
	      "\"x-ratelimit-limit-requests\":\"1000000000000\",\"x-ratelimit-remaining-requests\":\"0\"},\"count\":1}]},"
	      "{\"name\":\"ok\",\"api_key\":\"k-edge-ok\",\"deployment\":\"gpt-4o\",\"client\":{\"priority\":1}}],"
	      "\"default_reply\":\"OK\"}",
	      NULL);
	struct err err = ERR_INIT;
	int asked = 0;
	for (int i = 0; i < 6; i++) {
		struct llm_reply rep;
		err_clear(&err);
		assert_int_equal(chat(&e, 0, &rep, &err), CONVBI_OK);
		assert_string_equal(rep.endpoint, "ok");
		for (size_t k = 0; k < rep.nattempts; k++)
			if (strstr(rep.attempts[k].error, "the service asks for a wait of")) {
				print_message("# %s: %s\n", rep.attempts[k].endpoint, rep.attempts[k].error);
				assert_int_equal(rep.attempts[k].wait_ms, STATE_WAIT_MAX_MS);
				asked++;
			}
		llm_reply_release(&rep);
	}
	log_set_sink(NULL, NULL, LOG_WARN);
	if (seen.impossible)
		fail_msg("the state's check cleared what the client wrote: %s", seen.first);
	assert_int_equal(asked, 3); /* h1, h2, h3; h4's 1h30m is kept as it is */
	const char *out[] = {"h1", "h2", "h3", "h4"};
	for (int i = 0; i < 4; i++) {
		long long cool = endpoint_field(&e, out[i], "cooling_ms");
		print_message("# %s: %ld request(s), cooling %lld ms\n", out[i], fake_stat(&e.f, out[i], "requests"), cool);
		assert_int_equal(fake_stat(&e.f, out[i], "requests"), 1); /* never called again */
		assert_true(cool > (i < 3 ? STATE_WAIT_MAX_MS - 60000 : 5400000 - 60000));
		assert_true(cool <= (i < 3 ? STATE_WAIT_MAX_MS : 5400000));
	}
	assert_int_equal(endpoint_field(&e, "h4", "learned_rpm"), STATE_RATE_MAX);
	stop(&e);
}

/* ---- F5: a budget and a state file that cannot be used --------------------- */

/* A call on a fresh client for the fake's config with extra merged over. */
static int call_with(struct fake *f, const char *extra, struct err *err)
{
	struct llm *l = client_on(f, "config-f5.json", extra);
	struct chat_msg m = {"user", "hi"};
	struct llm_request req = {.msgs = &m, .n = 1, .temperature = -1, .max_tokens = 16};
	struct llm_reply rep;
	err_clear(err);
	int rc = llm_chat(l, &req, &rep, err);
	llm_reply_release(&rep);
	llm_close(l);
	return rc;
}

static void a_budget_is_not_spent_per_process_when_the_state_file_cannot_be_used(void **state)
{
	(void)state;
	struct fake f;
	assert_int_equal(fake_start(&f,
	                            "{\"endpoints\":[{\"name\":\"a\",\"api_key\":\"k-edge-a-5\",\"deployment\":\"d\","
	                            "\"client\":{\"price\":{\"input\":2.5,\"output\":10}}}],"
	                            "\"default_reply\":\"OK\"}"),
	                 0);
	/* the state's folder is a regular file: no process can open the state */
	char blocker[1024], extra[3072];
	snprintf(blocker, sizeof blocker, "%s/not-a-folder", f.dir);
	FILE *fp = fopen(blocker, "w");
	assert_non_null(fp);
	fclose(fp);
	struct err err = ERR_INIT;
	log_set_sink(NULL, NULL, LOG_ERROR); /* the fallback's warning is expected */

	/* the configuration's budget: refused, nothing sent, the file and the fix named */
	snprintf(extra, sizeof extra, "{\"budget\":{\"daily\":5},\"state\":{\"path\":\"%s/s.state\"}}", blocker);
	assert_int_equal(call_with(&f, extra, &err), CONVBI_EBUDGET);
	print_message("# %s\n", err.msg);
	assert_non_null(strstr(err.msg, "no model call was made"));
	assert_non_null(strstr(err.msg, blocker));
	assert_non_null(strstr(err.msg, "state.local_budgets"));
	/* an endpoint's budget alike */
	snprintf(extra, sizeof extra,
	         "{\"endpoints\":[{\"name\":\"a\",\"kind\":\"azure\",\"url\":\"http://127.0.0.1:%d\",\"deployment\":\"d\","
	         "\"api_key\":\"k-edge-a-5\",\"price\":{\"input\":2.5,\"output\":10},\"budget\":{\"monthly\":5}}],"
	         "\"state\":{\"path\":\"%s/s.state\"}}",
	         fake_port(&f, "a"), blocker);
	assert_int_equal(call_with(&f, extra, &err), CONVBI_EBUDGET);
	assert_non_null(strstr(err.msg, "endpoint `a`'s budget"));
	assert_int_equal(fake_stat(&f, "a", "requests"), 0);

	/* opted in: a budget of its own */
	snprintf(extra, sizeof extra, "{\"budget\":{\"daily\":5},\"state\":{\"path\":\"%s/s.state\",\"local_budgets\":true}}",
	         blocker);
	assert_int_equal(call_with(&f, extra, &err), CONVBI_OK);
	/* no budget: in-process state, as before */
	snprintf(extra, sizeof extra, "{\"state\":{\"path\":\"%s/s.state\"}}", blocker);
	assert_int_equal(call_with(&f, extra, &err), CONVBI_OK);
	assert_int_equal(fake_stat(&f, "a", "requests"), 2);
	log_set_sink(NULL, NULL, LOG_WARN);
	fake_stop(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(a_call_fails_at_once_when_its_endpoint_frees_too_close_to_the_deadline),
	        cmocka_unit_test(a_wait_of_days_keeps_the_endpoint_out_for_the_longest_wait_the_state_keeps),
	        cmocka_unit_test(a_budget_is_not_spent_per_process_when_the_state_file_cannot_be_used),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
