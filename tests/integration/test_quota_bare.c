/* test_quota_bare.c -- quotas learned from 429s that say nothing but
 * `retry-after` in whole seconds, as a plain API Management 429 does
 * (issue 11, attack8 N3/N4), through the public API against the fake Azure
 * OpenAI server (its "ratelimit_headers": false: no x-ratelimit-* on any
 * reply, no retry-after-ms):
 *   - the learned request rate of an endpoint converges within 10 % of its
 *     true quota and stays near it (it sawed between half and 1.4 times
 *     it: each 429's second of cooldown was taken for a rate far under the
 *     quota, which was halved, then probed past the quota again), with few
 *     429s per success;
 *   - a quota raised mid-run (the fake's /_fake/quota) is followed: the
 *     learned rate is within 10 % of the new quota within seconds.
 * The callers are 16 threads of one engine (the state file is shared all
 * the same), enough to press the quotas on a loaded machine; each test
 * takes 20-50 s.  The bounds are generous for a loaded machine; the
 * figures printed with '#' are for the reader. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "convbi/convbi.h"
#include "fake.h"
#include "testutil.h"

#define KEY "k-bare-4e8a1c"
#define THREADS 16

struct callers {
	struct fake f;
	convbi_engine *e;
	pthread_t th[THREADS];
	atomic_int stop;
	atomic_int ok, failed;
};

static void *keep_calling(void *arg)
{
	struct callers *c = arg;
	while (!atomic_load(&c->stop)) {
		char *js = NULL;
		int rc = convbi_engine_chat(c->e, NULL, "ping", 0, NULL, NULL, &js);
		atomic_fetch_add(rc == CONVBI_OK ? &c->ok : &c->failed, 1);
		convbi_free(js);
	}
	return NULL;
}

/* The endpoint's learned rpm now (0 when nothing is learned). */
static double learned_rpm(convbi_engine *e)
{
	char *js = NULL;
	assert_int_equal(convbi_engine_endpoints(e, &js), CONVBI_OK);
	cJSON *arr = cJSON_Parse(js);
	const cJSON *v = cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "learned_rpm");
	double rpm = cJSON_IsNumber(v) ? v->valuedouble : 0;
	cJSON_Delete(arr);
	convbi_free(js);
	return rpm;
}

/* Starts the fake with one endpoint admitting rps requests a second and
 * sending bare 429s, an engine on it with no rpm/tpm, and THREADS callers. */
static void start(struct callers *c, int rps)
{
	char scen[512], cfg[1024];
	snprintf(scen, sizeof scen,
	         "{\"endpoints\":[{\"name\":\"bare\",\"api_key\":\"" KEY
	         "\",\"deployment\":\"gpt-4o\",\"rps\":%d,"
	         "\"ratelimit_headers\":false,\"latency_ms\":10}],\"default_reply\":\"OK\"}",
	         rps);
	assert_int_equal(fake_start(&c->f, scen), 0);
	snprintf(cfg, sizeof cfg, "%s/config.json", c->f.dir);
	assert_int_equal(fake_write_config(&c->f, cfg, "{\"retry\":{\"deadline_ms\":60000,\"max_attempts\":6}}"), 0);
	convbi_options o = CONVBI_OPTIONS_INIT;
	o.config_path = cfg;
	o.prompts_dir = SOURCE_DIR "/prompts";
	if (convbi_engine_open(&c->e, &o))
		fail_msg("open: %s", convbi_engine_errmsg(c->e));
	for (int i = 0; i < THREADS; i++)
		pthread_create(&c->th[i], NULL, keep_calling, c);
}

static void stop(struct callers *c)
{
	atomic_store(&c->stop, 1);
	for (int i = 0; i < THREADS; i++)
		pthread_join(c->th[i], NULL);
	convbi_engine_close(c->e);
	fake_stop(&c->f);
}

/* ---- convergence ---------------------------------------------------------- */

#define TRUE_RPS 5
#define SETTLE_MS 10000 /* the first 429s, the first cut and the probe past the quota */
#define WATCH_MS 10000  /* then the learned rate is watched this long */

static void bare_429s_teach_a_rate_within_ten_percent_that_stays_near_the_quota(void **state)
{
	(void)state;
	static struct callers c;
	start(&c, TRUE_RPS);
	double truth = TRUE_RPS * 60.0, lo = 1e9, hi = 0, rpm = 0;
	int64_t t0 = tu_now_ms();
	long ok_settled = 0, r429_settled = 0;
	while (tu_now_ms() - t0 < SETTLE_MS + WATCH_MS) {
		usleep(100 * 1000);
		if (tu_now_ms() - t0 < SETTLE_MS)
			continue;
		if (ok_settled == 0) {
			ok_settled = fake_stat(&c.f, "bare", "ok");
			r429_settled = fake_stat(&c.f, "bare", "rate_limited");
		}
		rpm = learned_rpm(c.e);
		lo = rpm < lo ? rpm : lo;
		hi = rpm > hi ? rpm : hi;
	}
	long ok = fake_stat(&c.f, "bare", "ok") - ok_settled, r429 = fake_stat(&c.f, "bare", "rate_limited") - r429_settled;
	stop(&c);
	double per_success = ok > 0 ? (double)r429 / (double)ok : 1;
	printf("# learned %.0f rpm at the end for a true %.0f (%.0f-%.0f over the last %d s); %ld 429s / %ld answers "
	       "(%.3f) in those seconds; %d calls answered, %d failed\n",
	       rpm, truth, lo, hi, WATCH_MS / 1000, r429, ok, per_success, atomic_load(&c.ok), atomic_load(&c.failed));
	assert_int_equal(atomic_load(&c.failed), 0);
	if (rpm < 0.9 * truth || rpm > 1.1 * truth)
		fail_msg("learned %.0f rpm at the end; the true quota is %.0f rpm (wanted within 10 %%)", rpm, truth);
	if (lo < 0.8 * truth || hi > 1.2 * truth)
		fail_msg("the learned rate went %.0f-%.0f rpm for a true %.0f after it settled (wanted within 20 %% throughout)",
		         lo, hi, truth);
	if (per_success > 0.1)
		fail_msg("%.3f 429s per success after it settled (wanted a few in a hundred)", per_success);
}

/* ---- a raised quota --------------------------------------------------------- */

#define RAISE_FROM_RPS 10
#define RAISE_TO_RPS 20
#define BEFORE_MS 8000  /* learning the first quota */
#define FOLLOW_MS 60000 /* the raised one must be learned within this */

static void a_raised_quota_is_followed_within_seconds(void **state)
{
	(void)state;
	static struct callers c;
	start(&c, RAISE_FROM_RPS);
	usleep(BEFORE_MS * 1000);
	double before = learned_rpm(c.e), truth = RAISE_TO_RPS * 60.0, rpm = 0;
	char body[64];
	snprintf(body, sizeof body, "{\"rps\":%d}", RAISE_TO_RPS);
	assert_int_equal(fake_control(&c.f, "bare", "POST", "/_fake/quota", body, NULL), 200);
	int64_t t0 = tu_now_ms(), within_ms = -1;
	while (within_ms < 0 && tu_now_ms() - t0 < FOLLOW_MS) {
		usleep(100 * 1000);
		rpm = learned_rpm(c.e);
		if (rpm >= 0.9 * truth && rpm <= 1.1 * truth)
			within_ms = tu_now_ms() - t0;
	}
	stop(&c);
	printf("# learned %.0f rpm for %d rps; raised to %d rps: %.0f rpm, within 10 %% after %lld ms; %d answered, %d "
	       "failed\n",
	       before, RAISE_FROM_RPS, RAISE_TO_RPS, rpm, (long long)within_ms, atomic_load(&c.ok), atomic_load(&c.failed));
	assert_int_equal(atomic_load(&c.failed), 0);
	if (within_ms < 0)
		fail_msg("learned %.0f rpm %d s after the quota was raised to %.0f rpm (wanted within 10 %%)", rpm,
		         FOLLOW_MS / 1000, truth);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(bare_429s_teach_a_rate_within_ten_percent_that_stays_near_the_quota),
	        cmocka_unit_test(a_raised_quota_is_followed_within_seconds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
