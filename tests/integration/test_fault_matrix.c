/* test_fault_matrix.c -- every fault of the fake server, placed on one
 * endpoint, on all but one, and on all three; streaming and not; each cell
 * hammered by 16 concurrent callers through the public API
 * (convbi_engine_chat).  Expected: every call answered whenever a healthy
 * endpoint exists -- rate-limit faults included, with no excuse for
 * ERATELIMIT (a rate limit never fails a call that still has time); a
 * clean, specific error when none does; always inside the
 * deadline; never a truncated success; content filter and context length
 * never retried. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "convbi/convbi.h"
#include "fake.h"
#include "testutil.h"

#define CALLERS 16
#define CALLS_EACH 2
#define DEADLINE_MS 4000
#define REPLY "The complete answer, long enough to arrive in several stream chunks, ends here."

enum place { ONE, ALL_BUT_ONE, ALL };
static const char *const place_names[] = {"one", "all-but-one", "all"};

struct fault {
	const char *name;
	const char *json;
	int final_on_all;  /* expected status when every endpoint has it */
	int never_retried; /* content filter, context length */
};

static const struct fault faults[] = {
        {"429 retry-after", "{\"kind\":\"rate_limit\",\"retry_after_s\":20}", CONVBI_ERATELIMIT, 0},
        {"429 bare", "{\"kind\":\"rate_limit_bare\"}", CONVBI_ERATELIMIT, 0},
        {"500 once", "{\"kind\":\"http500\",\"count\":1}", CONVBI_OK, 0},
        {"503 always", "{\"kind\":\"http503\"}", CONVBI_ELLM, 0},
        {"reset", "{\"kind\":\"reset\"}", CONVBI_ELLM, 0},
        {"no response", "{\"kind\":\"hang\"}", CONVBI_ELLM, 0},
        {"slow first token", "{\"kind\":\"slow_first_token\",\"delay_ms\":3000}", CONVBI_ELLM, 0},
        {"stream cut", "{\"kind\":\"stream_cut\",\"after_chunks\":3}", CONVBI_ELLM, 0},
        {"stream stall", "{\"kind\":\"stream_stall\",\"after_chunks\":3}", CONVBI_ELLM, 0},
        {"malformed chunk", "{\"kind\":\"malformed_chunk\",\"after_chunks\":2}", CONVBI_ELLM, 0},
        {"missing [DONE]", "{\"kind\":\"no_done\"}", CONVBI_OK, 0},
        {"context length", "{\"kind\":\"context_length\"}", CONVBI_ECONTEXT, 1},
        {"content filter", "{\"kind\":\"content_filter\"}", CONVBI_EFILTERED, 1},
        {"401", "{\"kind\":\"http401\"}", CONVBI_EAUTH, 0},
        {"404", "{\"kind\":\"http404\"}", CONVBI_EAUTH, 0},
        {"daily quota", "{\"kind\":\"daily_quota\"}", CONVBI_ERATELIMIT, 0},
        {"flapping", "{\"kind\":\"flap\",\"down_ms\":800}", -1, 0}, /* -1: OK or a clean error */
};

struct cell {
	convbi_engine *e;
	const struct fault *f;
	int place, stream;
	int ok, failed, bad;
	char why[300];
	pthread_mutex_t lock;
};

static void record_bad(struct cell *c, const char *fmt, ...)
{
	pthread_mutex_lock(&c->lock);
	if (!c->bad) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->why, sizeof c->why, fmt, ap);
		va_end(ap);
	}
	c->bad++;
	pthread_mutex_unlock(&c->lock);
}

/* 1 when an attempt saw the service not answer in time: on a loaded machine
 * the fake server can be too slow to send even its 429 before a timeout, and
 * then the deadline, not the rate limit, is what the call met (a call whose
 * every attempt was answered 429 must still be ERATELIMIT). */
static int timed_out(const cJSON *attempts)
{
	const cJSON *a;
	cJSON_ArrayForEach(a, attempts)
	{
		const cJSON *cls = cJSON_GetObjectItem(a, "class");
		if (cJSON_IsString(cls) && (!strcmp(cls->valuestring, "timeout") || !strcmp(cls->valuestring, "deadline")))
			return 1;
	}
	return 0;
}

static void *caller(void *p)
{
	struct cell *c = p;
	for (int i = 0; i < CALLS_EACH; i++) {
		char *js = NULL;
		int64_t t0 = tu_now_ms();
		int rc = convbi_engine_chat(c->e, NULL, "tell me", c->stream, NULL, NULL, &js);
		int64_t dt = tu_now_ms() - t0;
		if (dt > DEADLINE_MS + 700)
			record_bad(c, "a call took %lld ms, past the %d ms deadline", (long long)dt, DEADLINE_MS);
		cJSON *root = js ? cJSON_Parse(js) : NULL;
		const cJSON *content = cJSON_GetObjectItem(root, "content");
		const cJSON *attempts = cJSON_GetObjectItem(root, "attempts");
		if (!root) {
			record_bad(c, "no JSON result (rc %s)", convbi_errname(rc));
		} else if (rc == CONVBI_OK) {
			if (!cJSON_IsString(content) || strcmp(content->valuestring, REPLY))
				record_bad(c, "a truncated or wrong success: %.80s",
				           cJSON_IsString(content) ? content->valuestring : "(none)");
			pthread_mutex_lock(&c->lock);
			c->ok++;
			pthread_mutex_unlock(&c->lock);
		} else {
			if (c->place != ALL && !c->f->never_retried)
				record_bad(c, "failed (%s) although a healthy endpoint exists: %s", convbi_errname(rc),
				           cJSON_GetObjectItem(root, "error") ? cJSON_GetObjectItem(root, "error")->valuestring
				                                              : "");
			if (c->f->never_retried && cJSON_GetArraySize(attempts) != 1)
				record_bad(c, "%s was retried (%d attempts)", c->f->name, cJSON_GetArraySize(attempts));
			if (c->place == ALL && c->f->final_on_all >= 0 && rc != c->f->final_on_all &&
			    !(c->f->final_on_all == CONVBI_ERATELIMIT && rc == CONVBI_ETIMEOUT && timed_out(attempts)))
				record_bad(c, "on all endpoints: %s, wanted %s (%.160s)", convbi_errname(rc),
				           convbi_errname(c->f->final_on_all),
				           cJSON_IsString(cJSON_GetObjectItem(root, "error"))
				                   ? cJSON_GetObjectItem(root, "error")->valuestring
				                   : "");
			const cJSON *err = cJSON_GetObjectItem(root, "error");
			if (!cJSON_IsString(err) || !*err->valuestring || strchr(err->valuestring, '\n'))
				record_bad(c, "the error is not one clear line");
			pthread_mutex_lock(&c->lock);
			c->failed++;
			pthread_mutex_unlock(&c->lock);
		}
		if (js && (strstr(js, "k-matrix-")))
			record_bad(c, "a key leaked into the result");
		cJSON_Delete(root);
		convbi_free(js);
	}
	return NULL;
}

static void run_cell(const struct fault *f, int place, int stream, int *cells, int *calls)
{
	char faults_of[3][256];
	for (int i = 0; i < 3; i++) {
		int has = place == ALL || (place == ONE && i == 0) || (place == ALL_BUT_ONE && i != 2);
		snprintf(faults_of[i], sizeof faults_of[i], has ? "[%s]" : "[]", f->json);
	}
	char scen[4096];
	snprintf(scen, sizeof scen,
	         "{\"endpoints\":[{\"name\":\"a\",\"api_key\":\"k-matrix-a-123\",\"deployment\":\"gpt-4o\",\"faults\":%s},"
	         "{\"name\":\"b\",\"api_key\":\"k-matrix-b-456\",\"deployment\":\"gpt-4o\",\"faults\":%s},"
	         "{\"name\":\"c\",\"api_key\":\"k-matrix-c-789\",\"deployment\":\"gpt-4o\",\"faults\":%s}],"
	         "\"default_reply\":\"" REPLY "\"}",
	         faults_of[0], faults_of[1], faults_of[2]);
	struct fake fk;
	assert_int_equal(fake_start(&fk, scen), 0);
	char cfg[1024], extra[256];
	snprintf(cfg, sizeof cfg, "%s/config.json", fk.dir);
	snprintf(extra, sizeof extra,
	         "{\"retry\":{\"max_attempts\":6,\"deadline_ms\":%d,\"connect_timeout_ms\":300,"
	         "\"first_byte_timeout_ms\":500,\"idle_timeout_ms\":400}}",
	         DEADLINE_MS);
	assert_int_equal(fake_write_config(&fk, cfg, extra), 0);
	convbi_options o = CONVBI_OPTIONS_INIT;
	o.config_path = cfg;
	o.prompts_dir = SOURCE_DIR "/prompts";
	struct cell c;
	memset(&c, 0, sizeof c);
	pthread_mutex_init(&c.lock, NULL);
	c.f = f;
	c.place = place;
	c.stream = stream;
	if (convbi_engine_open(&c.e, &o))
		fail_msg("open: %s", convbi_engine_errmsg(c.e));
	pthread_t th[CALLERS];
	for (int i = 0; i < CALLERS; i++)
		pthread_create(&th[i], NULL, caller, &c);
	for (int i = 0; i < CALLERS; i++)
		pthread_join(th[i], NULL);
	convbi_engine_close(c.e);
	char *log = fake_log(&fk);
	if (log && (strstr(log, "k-matrix-a-123") || strstr(log, "<mismatch>")))
		c.bad++, snprintf(c.why, sizeof c.why, "the server saw a wrong or logged key");
	free(log);
	fake_stop(&fk);
	printf("# %-18s on %-11s %-9s: %2d answered, %2d failed cleanly%s%s\n", f->name, place_names[place],
	       stream ? "streaming" : "plain", c.ok, c.failed, c.bad ? " -- BAD: " : "", c.bad ? c.why : "");
	if (c.bad)
		fail_msg("%s on %s (%s): %s", f->name, place_names[place], stream ? "stream" : "plain", c.why);
	if (place != ALL && !f->never_retried && c.ok != CALLERS * CALLS_EACH)
		fail_msg("%s on %s: only %d of %d answered", f->name, place_names[place], c.ok, CALLERS * CALLS_EACH);
	(*cells)++;
	*calls += c.ok + c.failed;
	pthread_mutex_destroy(&c.lock);
}

static void every_fault_everywhere_is_survived_or_reported_cleanly(void **state)
{
	int cells = 0, calls = 0;
	for (size_t f = 0; f < sizeof faults / sizeof faults[0]; f++)
		for (int place = ONE; place <= ALL; place++)
			for (int stream = 0; stream <= 1; stream++)
				run_cell(&faults[f], place, stream, &cells, &calls);
	printf("# fault matrix: %d cells, %d calls from %d concurrent callers each\n", cells, calls, CALLERS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(every_fault_everywhere_is_survived_or_reported_cleanly),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
