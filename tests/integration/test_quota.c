/* test_quota.c -- quotas nobody declared, keys that get fixed (issue 11),
 * through the public API against the fake Azure OpenAI server.
 *
 * The endpoints here have real quotas in the fake (requests per sliding
 * second) and none in convbi's configuration, so everything convbi knows
 * about them it learns from 429s and shares through the state file:
 *   - 32 callers in 4 processes (8 threads each, one engine per process,
 *     one state file) lose no call;
 *   - the learned request rate of an endpoint ends within 10 % of its
 *     true quota;
 *   - a request without max_tokens, against a token quota the service
 *     announces, is paced by what the service charges it, not by its
 *     estimate (attack3 F2);
 *   - a key refused once (an auth cooldown in the shared state) does not
 *     keep a fixed key out: the first call after the fix is answered; the
 *     refusal names the endpoint, its URL and `convbi endpoints --reset`,
 *     which clears it and says what it cleared.
 * Each test takes a few seconds; the bounds on counts are the contracts,
 * the figures printed with '#' are for the reader. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "convbi/convbi.h"
#include "fake.h"
#include "testutil.h"

#define KEY_A "k-quota-a-5d1e9f"
#define KEY_B "k-quota-b-8c2a4b"
#define KEY_C "k-quota-c-3f7e0d"

/* Opens an engine on the config at path; fails the test if it cannot. */
static convbi_engine *engine_on(const char *path)
{
	convbi_options o = CONVBI_OPTIONS_INIT;
	o.config_path = path;
	o.prompts_dir = SOURCE_DIR "/prompts";
	convbi_engine *e = NULL;
	if (convbi_engine_open(&e, &o))
		fail_msg("open: %s", convbi_engine_errmsg(e));
	return e;
}

/* The config for the fake: no rpm/tpm anywhere, the fake's default state
 * file, a deadline long enough for any wait the quotas impose. */
static void write_config(const struct fake *f, char *path, size_t cap, const char *name, const char *extra)
{
	snprintf(path, cap, "%s/%s", f->dir, name);
	assert_int_equal(fake_write_config(f, path, extra ? extra : "{\"retry\":{\"deadline_ms\":60000,\"max_attempts\":6}}"), 0);
}

/* One endpoint's field in a convbi_engine_endpoints array (-1 if absent). */
static double endpoint_num(const char *json, const char *name, const char *field)
{
	cJSON *arr = cJSON_Parse(json);
	double v = -1;
	const cJSON *it;
	cJSON_ArrayForEach(it, arr)
	{
		const cJSON *n = cJSON_GetObjectItem(it, "name"), *f = cJSON_GetObjectItem(it, field);
		if (cJSON_IsString(n) && !strcmp(n->valuestring, name) && cJSON_IsNumber(f))
			v = f->valuedouble;
	}
	cJSON_Delete(arr);
	return v;
}

/* ---- 32 callers, 4 processes ---------------------------------------------- */

#define PROCS 4
#define THREADS 8
#define CALLS_EACH 5

struct tally {
	atomic_int ok, failed;
	char why[256]; /* the first failure's message */
	atomic_flag why_taken;
};

struct proc {
	convbi_engine *e;
	struct tally *t; /* shared with the parent (MAP_SHARED) */
};

static void *hammer(void *arg)
{
	struct proc *p = arg;
	for (int i = 0; i < CALLS_EACH; i++) {
		char *js = NULL;
		int rc = convbi_engine_chat(p->e, NULL, "how many orders", 0, NULL, NULL, &js);
		if (rc == CONVBI_OK) {
			atomic_fetch_add(&p->t->ok, 1);
		} else {
			atomic_fetch_add(&p->t->failed, 1);
			if (!atomic_flag_test_and_set(&p->t->why_taken))
				snprintf(p->t->why, sizeof p->t->why, "%s: %s", convbi_errname(rc), convbi_engine_errmsg(p->e));
		}
		convbi_free(js);
	}
	return NULL;
}

static void thirty_two_callers_in_four_processes_lose_no_call_to_undeclared_quotas(void **state)
{
	(void)state;
	struct fake f;
	assert_int_equal(
	        fake_start(&f,
	                   "{\"endpoints\":["
	                   "{\"name\":\"a\",\"api_key\":\"" KEY_A "\",\"deployment\":\"gpt-4o\",\"rps\":10,\"latency_ms\":40},"
	                   "{\"name\":\"b\",\"api_key\":\"" KEY_B "\",\"deployment\":\"gpt-4o\",\"rps\":10,\"latency_ms\":40},"
	                   "{\"name\":\"c\",\"api_key\":\"" KEY_C "\",\"deployment\":\"gpt-4o\",\"rps\":10,\"latency_ms\":40}],"
	                   "\"default_reply\":\"OK\"}"),
	        0);
	char cfg[1024];
	write_config(&f, cfg, sizeof cfg, "config.json", NULL);
	struct tally *t = mmap(NULL, sizeof *t, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(t != MAP_FAILED);
	memset(t, 0, sizeof *t);
	int64_t t0 = tu_now_ms();
	pid_t kids[PROCS];
	for (int k = 0; k < PROCS; k++) {
		kids[k] = fork();
		assert_true(kids[k] >= 0);
		if (kids[k] == 0) {
			struct proc p = {NULL, t};
			convbi_options o = CONVBI_OPTIONS_INIT;
			o.config_path = cfg;
			o.prompts_dir = SOURCE_DIR "/prompts";
			if (convbi_engine_open(&p.e, &o))
				_exit(3);
			pthread_t th[THREADS];
			for (int i = 0; i < THREADS; i++)
				pthread_create(&th[i], NULL, hammer, &p);
			for (int i = 0; i < THREADS; i++)
				pthread_join(th[i], NULL);
			convbi_engine_close(p.e);
			_exit(0);
		}
	}
	for (int k = 0; k < PROCS; k++) {
		int st = 0;
		assert_int_equal(waitpid(kids[k], &st, 0), kids[k]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	int64_t ms = tu_now_ms() - t0;
	long http = 0, r429 = 0;
	const char *names[] = {"a", "b", "c"};
	for (int i = 0; i < 3; i++) {
		http += fake_stat(&f, names[i], "requests");
		r429 += fake_stat(&f, names[i], "rate_limited");
	}
	int ok = atomic_load(&t->ok), failed = atomic_load(&t->failed);
	printf("# %d calls in %lld ms (%.2f of the 30/s bound), %ld HTTP requests, %.2f 429s per success\n", ok + failed,
	       (long long)ms, ok * 1000.0 / (double)ms / 30.0, http, ok ? (double)r429 / ok : 0.0);
	if (failed)
		fail_msg("%d of %d calls failed; the first: %s", failed, ok + failed, t->why);
	assert_int_equal(ok, PROCS * THREADS * CALLS_EACH);
	/* Every call was answered; rate limits were learned, not hammered:
	 * the old client sent 1.8-2.5 429s per success here. */
	assert_true(r429 < ok);
	munmap(t, sizeof *t);
	fake_stop(&f);
}

/* ---- convergence ---------------------------------------------------------- */

#define TRUE_RPS 20
#define LEARN_THREADS 8
#define LEARN_MS 5000

struct learner {
	convbi_engine *e;
	int64_t until_ms;
	atomic_int ok, failed;
};

static void *keep_calling(void *arg)
{
	struct learner *l = arg;
	while (tu_now_ms() < l->until_ms) {
		char *js = NULL;
		int rc = convbi_engine_chat(l->e, NULL, "ping", 0, NULL, NULL, &js);
		atomic_fetch_add(rc == CONVBI_OK ? &l->ok : &l->failed, 1);
		convbi_free(js);
	}
	return NULL;
}

/* Starts the fake on scen, then threads callers of "ping" for ms on one
 * engine of its config (l: the engine and the tallies).  Returns the
 * endpoints JSON at the end (caller frees). */
#define MAX_CALLERS 16
static char *call_for(struct fake *f, const char *scen, int64_t ms, int threads, struct learner *l)
{
	assert_true(threads <= MAX_CALLERS);
	assert_int_equal(fake_start(f, scen), 0);
	char cfg[1024];
	write_config(f, cfg, sizeof cfg, "config.json", NULL);
	l->e = engine_on(cfg);
	l->until_ms = tu_now_ms() + ms;
	pthread_t th[MAX_CALLERS];
	for (int i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, keep_calling, l);
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	char *js = NULL;
	assert_int_equal(convbi_engine_endpoints(l->e, &js), CONVBI_OK);
	return js;
}

/* One endpoint admitting TRUE_RPS requests a second, answering in 10 ms. */
static void solo_scenario(char *scen, size_t cap)
{
	snprintf(scen, cap,
	         "{\"endpoints\":[{\"name\":\"solo\",\"api_key\":\"" KEY_A
	         "\",\"deployment\":\"gpt-4o\",\"rps\":%d,"
	         "\"latency_ms\":10}],\"default_reply\":\"OK\"}",
	         TRUE_RPS);
}

static void learned_rate_converges_within_ten_percent_of_the_true_quota(void **state)
{
	(void)state;
	char scen[512];
	solo_scenario(scen, sizeof scen);
	struct fake f;
	struct learner l = {NULL, 0, 0, 0};
	char *js = call_for(&f, scen, LEARN_MS, LEARN_THREADS, &l);
	double learned = endpoint_num(js, "solo", "learned_rpm"), truth = TRUE_RPS * 60.0;
	cJSON *arr = cJSON_Parse(js);
	const cJSON *from = cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "learned_rpm_from");
	long r429 = fake_stat(&f, "solo", "rate_limited");
	printf("# learned %.0f rpm (from %s) for a true %.0f rpm; %d calls answered, %ld 429s\n", learned,
	       cJSON_IsString(from) ? from->valuestring : "?", truth, atomic_load(&l.ok), r429);
	assert_true(cJSON_IsString(from) && !strcmp(from->valuestring, "429"));
	cJSON_Delete(arr);
	convbi_free(js);
	assert_int_equal(atomic_load(&l.failed), 0);
	if (learned < 0.9 * truth || learned > 1.1 * truth)
		fail_msg("learned %.0f rpm; the true quota is %.0f rpm (wanted within 10 %%)", learned, truth);
	convbi_engine_close(l.e);
	fake_stop(&f);
}

/* ---- the token charge (attack3 F2) ---------------------------------------- */

#define CHARGE_TPM 12000 /* the fake's tokens per sliding minute */
#define CHARGE_MS 6000   /* how long the callers call */
#define CHARGE_THREADS 4
#define CHARGE_RAW_EST 257  /* "ping" (1) + the 256 a request without max_tokens is assumed to use */
#define CHARGE_FAKE_COST 17 /* what the fake charges it: 1 + its default 16 */

/* A request without max_tokens against a tpm the service announces: the
 * service charges 17 tokens a call, convbi's estimate is 257.  Paced by
 * the estimate, 4 callers would get about CHARGE_THREADS + CHARGE_MS /
 * (257 x 60 s / 12000) = 9 calls in 6 s; following what the service
 * charges (its x-ratelimit-remaining-tokens) they get several times
 * that, without a single 429. */
static void the_token_estimate_follows_what_the_service_charges(void **state)
{
	(void)state;
	char scen[512];
	snprintf(scen, sizeof scen,
	         "{\"endpoints\":[{\"name\":\"tok\",\"api_key\":\"" KEY_A
	         "\",\"deployment\":\"gpt-4o\",\"tpm\":%d,\"latency_ms\":10}],\"default_reply\":\"OK\"}",
	         CHARGE_TPM);
	struct fake f;
	struct learner l = {NULL, 0, 0, 0};
	char *js = call_for(&f, scen, CHARGE_MS, CHARGE_THREADS, &l);
	double charge = endpoint_num(js, "tok", "token_charge"), tpm = endpoint_num(js, "tok", "learned_tpm");
	long r429 = fake_stat(&f, "tok", "rate_limited");
	int ok = atomic_load(&l.ok);
	double by_estimate = CHARGE_THREADS + (double)CHARGE_MS / (CHARGE_RAW_EST * 60000.0 / CHARGE_TPM);
	printf("# %d calls answered in %d ms (the raw estimate allows ~%.0f), %ld 429s; learned tpm %.0f, token "
	       "charge %.3f (true %.3f)\n",
	       ok, CHARGE_MS, by_estimate, r429, tpm, charge, (double)CHARGE_FAKE_COST / CHARGE_RAW_EST);
	convbi_free(js);
	assert_int_equal(atomic_load(&l.failed), 0);
	assert_int_equal(r429, 0);
	assert_true(tpm == CHARGE_TPM);
	if (charge < 0.5 * CHARGE_FAKE_COST / CHARGE_RAW_EST || charge > 4.0 * CHARGE_FAKE_COST / CHARGE_RAW_EST)
		fail_msg("token charge %.3f; the service charges %.3f of the estimate", charge,
		         (double)CHARGE_FAKE_COST / CHARGE_RAW_EST);
	if (ok < 3 * by_estimate)
		fail_msg("%d calls answered; paced by the raw estimate ~%.0f, wanted at least 3x that", ok, by_estimate);
	convbi_engine_close(l.e);
	fake_stop(&f);
}

/* A first measurement that spans more than the service's window (one call,
 * a second of nothing, then callers pressing on) admits a window's worth
 * over twice its length: the first cut lands near half the true quota
 * (at most (1 + TRUE_RPS) per 2 s, whatever the load).  That is a floor,
 * not the quota (attack3 F1: several endpoints sharing the load each
 * learned 40-60 % of theirs and climbed ~1 % per 10 s): the rate is
 * probed upwards and is within 10 % of the quota within PROBE_MS. */
#define PROBE_MS 15000

static void a_first_cut_from_a_long_measurement_climbs_to_the_true_quota_in_seconds(void **state)
{
	(void)state;
	char scen[512];
	solo_scenario(scen, sizeof scen);
	struct fake f;
	assert_int_equal(fake_start(&f, scen), 0);
	char cfg[1024];
	write_config(&f, cfg, sizeof cfg, "config.json", NULL);
	convbi_engine *e = engine_on(cfg);
	char *js = NULL;
	assert_int_equal(convbi_engine_chat(e, NULL, "ping", 0, NULL, NULL, &js), CONVBI_OK);
	convbi_free(js);
	usleep(1000 * 1000);
	int64_t t0 = tu_now_ms();
	struct learner l = {e, t0 + PROBE_MS, 0, 0};
	pthread_t th[LEARN_THREADS];
	for (int i = 0; i < LEARN_THREADS; i++)
		pthread_create(&th[i], NULL, keep_calling, &l);
	double truth = TRUE_RPS * 60.0, first = 0, learned = 0;
	int64_t within_ms = -1;
	while (tu_now_ms() < l.until_ms) {
		usleep(50 * 1000);
		assert_int_equal(convbi_engine_endpoints(e, &js), CONVBI_OK);
		learned = endpoint_num(js, "solo", "learned_rpm");
		convbi_free(js);
		if (first == 0 && learned > 0)
			first = learned;
		if (first > 0 && within_ms < 0 && learned >= 0.9 * truth && learned <= 1.1 * truth) {
			within_ms = tu_now_ms() - t0;
			l.until_ms = tu_now_ms(); /* the callers stop */
		}
	}
	for (int i = 0; i < LEARN_THREADS; i++)
		pthread_join(th[i], NULL);
	printf("# first cut %.0f rpm for a true %.0f rpm; within 10 %% after %lld ms (%.0f rpm); %d calls answered, %ld 429s\n",
	       first, truth, (long long)within_ms, learned, atomic_load(&l.ok), fake_stat(&f, "solo", "rate_limited"));
	assert_int_equal(atomic_load(&l.failed), 0);
	if (first <= 0 || first > 0.6 * truth)
		fail_msg("the first cut was %.0f rpm: the setup meant it at most ~%.0f", first, 0.55 * truth);
	if (within_ms < 0)
		fail_msg("learned %.0f rpm after %d ms from a first cut of %.0f; the true quota is %.0f rpm (wanted within 10 %%)",
		         learned, PROBE_MS, first, truth);
	convbi_engine_close(e);
	fake_stop(&f);
}

/* ---- keys ----------------------------------------------------------------- */

/* convbi_engine_chat's outcome: its status, and the error text (copied). */
static int chat_once(convbi_engine *e, char *errtext, size_t cap)
{
	char *js = NULL;
	int rc = convbi_engine_chat(e, NULL, "ping", 0, NULL, NULL, &js);
	cJSON *root = js ? cJSON_Parse(js) : NULL;
	const cJSON *err = cJSON_GetObjectItem(root, "error");
	snprintf(errtext, cap, "%s", cJSON_IsString(err) ? err->valuestring : "");
	cJSON_Delete(root);
	convbi_free(js);
	return rc;
}

/* Rewrites the config at path with every key replaced by a wrong one of
 * the same length (the fake answers a wrong key with a 401). */
static void with_wrong_keys(const char *path)
{
	char *text = tu_read_file(path, NULL);
	assert_non_null(text);
	const char *keys[] = {KEY_A, KEY_B};
	for (size_t i = 0; i < 2; i++) {
		char *at = strstr(text, keys[i]);
		assert_non_null(at);
		memcpy(at, "k-wrong-", 8);
	}
	assert_int_equal(tu_write_file(path, text), 0);
	free(text);
}

/* Two endpoints that answer "OK", each with its own key. */
#define EAST_WEST_SCENARIO                        \
	"{\"endpoints\":["                        \
	"{\"name\":\"east\",\"api_key\":\"" KEY_A \
	"\",\"deployment\":\"gpt-4o\"},"          \
	"{\"name\":\"west\",\"api_key\":\"" KEY_B \
	"\",\"deployment\":\"gpt-4o\"}],"         \
	"\"default_reply\":\"OK\"}"

/* One endpoint refusing its key, the other down (attack9 F3): the call
 * names the refusal and its fix, never "every endpoint is rate limited"
 * (no 429 was ever sent), in the process that saw it and in the next. */
static void a_refused_key_beside_a_down_endpoint_is_named_not_rate_limited(void **state)
{
	(void)state;
	struct fake f;
	assert_int_equal(fake_start(&f, EAST_WEST_SCENARIO), 0);
	char cfg[1024], west[64], msg[1024];
	write_config(&f, cfg, sizeof cfg, "mixed.json", NULL);
	char *text = tu_read_file(cfg, NULL);
	assert_non_null(text);
	char *at = strstr(text, KEY_A);
	assert_non_null(at);
	memcpy(at, "k-wrong-", 8); /* east: 401 */
	snprintf(west, sizeof west, "http://127.0.0.1:%d\"", fake_port(&f, "west"));
	assert_non_null(at = strstr(text, west));
	memcpy(at, "http://127.0.0.1:1\"", strlen("http://127.0.0.1:1\""));
	memset(at + strlen("http://127.0.0.1:1\""), ' ', strlen(west) - strlen("http://127.0.0.1:1\"")); /* west: down */
	assert_int_equal(tu_write_file(cfg, text), 0);
	free(text);
	for (int round = 0; round < 2; round++) {
		convbi_engine *e = engine_on(cfg);
		int rc = chat_once(e, msg, sizeof msg);
		printf("# call %d: %s\n", round + 1, msg);
		assert_int_not_equal(rc, CONVBI_OK);
		assert_int_not_equal(rc, CONVBI_ERATELIMIT);
		assert_false(tu_contains(msg, "rate limited until"));
		assert_true(tu_contains(msg, "`east` refused its key or deployment"));
		assert_true(tu_contains(msg, "`west` is down"));
		assert_true(tu_contains(msg, "convbi endpoints --reset east"));
		convbi_engine_close(e);
	}
	fake_stop(&f);
}

static void a_fixed_key_works_on_the_first_call_after_the_fix(void **state)
{
	(void)state;
	struct fake f;
	assert_int_equal(fake_start(&f, EAST_WEST_SCENARIO), 0);
	char good[1024], bad[1024], url[64], msg[1024];
	write_config(&f, good, sizeof good, "good.json", NULL);
	write_config(&f, bad, sizeof bad, "bad.json", NULL);
	with_wrong_keys(bad);
	snprintf(url, sizeof url, "http://127.0.0.1:%d", fake_port(&f, "east"));

	/* A wrong key: refused, and the message says where and how to clear it. */
	convbi_engine *e = engine_on(bad);
	assert_int_equal(chat_once(e, msg, sizeof msg), CONVBI_EAUTH);
	printf("# first refusal: %s\n", msg);
	assert_true(tu_contains(msg, "endpoint `"));
	assert_true(tu_contains(msg, "http://127.0.0.1:"));
	assert_true(tu_contains(msg, "convbi endpoints --reset"));
	convbi_engine_close(e);

	/* Another process with the same wrong key: out at once, told the same. */
	e = engine_on(bad);
	long before = fake_stat(&f, "east", "requests") + fake_stat(&f, "west", "requests");
	assert_int_equal(chat_once(e, msg, sizeof msg), CONVBI_EAUTH);
	assert_int_equal(fake_stat(&f, "east", "requests") + fake_stat(&f, "west", "requests"), before);
	printf("# the same key again: %s\n", msg);
	assert_true(tu_contains(msg, url) && tu_contains(msg, "convbi endpoints --reset"));
	convbi_engine_close(e);

	/* The key fixed: the very first call is answered, by either endpoint. */
	e = engine_on(good);
	assert_int_equal(chat_once(e, msg, sizeof msg), CONVBI_OK);
	convbi_engine_close(e);

	/* --reset clears a cooldown and says what it held. */
	e = engine_on(bad);
	assert_int_equal(chat_once(e, msg, sizeof msg), CONVBI_EAUTH);
	char *js = NULL;
	assert_int_equal(convbi_engine_endpoints_reset(e, "nowhere", &js), CONVBI_EINVAL);
	assert_null(js);
	assert_true(tu_contains(convbi_engine_errmsg(e), "`east`, `west`"));
	assert_int_equal(convbi_engine_endpoints_reset(e, "west", &js), CONVBI_OK);
	assert_true(tu_contains(js, "\"name\":\"west\"") && !tu_contains(js, "\"name\":\"east\""));
	assert_true(tu_contains(js, "\"cooling_reason\":\"auth\""));
	convbi_free(js);
	assert_int_equal(convbi_engine_endpoints(e, &js), CONVBI_OK);
	assert_true(endpoint_num(js, "west", "cooling_ms") == 0 && endpoint_num(js, "west", "calls") == 0);
	assert_true(endpoint_num(js, "east", "cooling_ms") > 0);
	assert_false(tu_contains(js, "k-wrong") || tu_contains(js, KEY_A) || tu_contains(js, KEY_B));
	convbi_free(js);
	convbi_engine_close(e);
	fake_stop(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(thirty_two_callers_in_four_processes_lose_no_call_to_undeclared_quotas),
	        cmocka_unit_test(learned_rate_converges_within_ten_percent_of_the_true_quota),
	        cmocka_unit_test(a_first_cut_from_a_long_measurement_climbs_to_the_true_quota_in_seconds),
	        cmocka_unit_test(a_fixed_key_works_on_the_first_call_after_the_fix),
	        cmocka_unit_test(a_refused_key_beside_a_down_endpoint_is_named_not_rate_limited),
	        cmocka_unit_test(the_token_estimate_follows_what_the_service_charges),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
