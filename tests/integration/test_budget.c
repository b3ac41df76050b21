/* test_budget.c -- what calls cost and the budgets every process shares,
 * against the fake Azure OpenAI server, which bills each success at its
 * own copy of the prices (the witness: its stats, not our counters).
 *
 * Every call here sends a 400-character prompt (100 tokens, as both the
 * fake and the client count them) with max_tokens 20 and gets a reply of
 * 80 characters (20 tokens).  At gpt-4o prices (2.50 / 1.25 / 10.00 USD per
 * million) with 64 prompt tokens cached, one call costs 36 x 2.5 + 64 x
 * 1.25 + 20 x 10 = 370 micro-USD, and is estimated (every prompt token at
 * the input price) at 100 x 2.5 + 20 x 10 = 450 micro-USD. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "convbi/convbi.h"
#include "fake.h"
#include "llm/config.h"
#include "llm/llm.h"
#include "spend.h"
#include "testutil.h"
#include "util/clock.h"

#define COST_UUSD 370
#define EST_UUSD 450
#define PRICE "{\"input\":2.5,\"cached_input\":1.25,\"output\":10}"
#define REPLY "0123456789012345678901234567890123456789012345678901234567890123456789012345678X"

static char scenario[4096];
static char prompt[401];

/* east and west bill at PRICE with 64 cached tokens; north bills nothing.
 * client_east/west/north are each endpoint's "client" (its configuration);
 * by default east and west are priced and north is a reserved (PTU)
 * deployment in the second tier.  east answers in east_ms, the others in
 * lat_ms. */
static const char *scenario_lat(const char *client_east, const char *client_west, const char *client_north, int east_ms,
                                int lat_ms)
{
	snprintf(scenario, sizeof scenario,
	         "{\"endpoints\": ["
	         "{\"name\":\"east\",\"api_key\":\"k-east-123456\",\"deployment\":\"d\",\"cached_tokens\":64,\"price\":" PRICE
	         ",\"latency_ms\":%d,\"client\":%s},"
	         "{\"name\":\"west\",\"api_key\":\"k-west-123456\",\"deployment\":\"d\",\"cached_tokens\":64,\"price\":" PRICE
	         ",\"latency_ms\":%d,\"client\":%s},"
	         "{\"name\":\"north\",\"api_key\":\"k-north-12345\",\"deployment\":\"d\",\"latency_ms\":%d,\"client\":%s}],"
	         "\"default_reply\": \"" REPLY "\"}",
	         east_ms, client_east ? client_east : "{\"price\":" PRICE "}", lat_ms,
	         client_west ? client_west : "{\"price\":" PRICE "}", lat_ms,
	         client_north ? client_north : "{\"reserved\":true,\"priority\":1}");
	return scenario;
}

static const char *scenario_of(const char *client_east, const char *client_west, const char *client_north, int lat_ms)
{
	return scenario_lat(client_east, client_west, client_north, lat_ms, lat_ms);
}

struct env {
	struct fake f;
	char config[1024];
	struct llm *l;
};

static struct llm *open_llm(const char *config)
{
	struct llm_config cfg;
	struct err err = ERR_INIT;
	struct llm *l = NULL;
	if (config_load(&cfg, config, &err))
		fail_msg("config: %s", err.msg);
	if (llm_open(&l, &cfg, &err))
		fail_msg("llm_open: %s", err.msg);
	return l;
}

static void start(struct env *e, const char *scen, const char *extra)
{
	memset(e, 0, sizeof *e);
	memset(prompt, 'p', sizeof prompt - 1);
	assert_int_equal(fake_start(&e->f, scen), 0);
	snprintf(e->config, sizeof e->config, "%s/config.json", e->f.dir);
	assert_int_equal(fake_write_config(&e->f, e->config, extra), 0);
	e->l = open_llm(e->config);
}

static void stop(struct env *e)
{
	llm_close(e->l);
	fake_stop(&e->f);
}

/* Time bounds are generous, and ten times so under valgrind or the sanitizers. */
static int64_t slack(int64_t ms)
{
	return getenv("CONVBI_VALGRIND") ? ms * 10 : ms;
}

static int call(struct llm *l, struct llm_reply *rep, struct err *err)
{
	struct chat_msg m = {"user", prompt};
	struct llm_request req = {.msgs = &m, .n = 1, .max_tokens = 20, .temperature = -1};
	return llm_chat(l, &req, rep, err);
}

static double billed(const struct fake *f)
{
	return fake_stat_num(f, "east", "cost_usd") + fake_stat_num(f, "west", "cost_usd");
}

static long requests(const struct fake *f)
{
	return fake_stat(f, "east", "requests") + fake_stat(f, "west", "requests") + fake_stat(f, "north", "requests");
}

static void a_call_costs_its_usage_at_the_price_with_cached_tokens_at_theirs(void **state)
{
	struct env e;
	start(&e, scenario_of(NULL, NULL, NULL, 0), NULL);
	struct llm_reply rep;
	struct err err = ERR_INIT;
	assert_int_equal(call(e.l, &rep, &err), CONVBI_OK);
	assert_int_equal(rep.prompt_tokens, 100);
	assert_int_equal(rep.cached_tokens, 64);
	assert_int_equal(rep.completion_tokens, 20);
	assert_true(rep.cost_usd > 0.000369999 && rep.cost_usd < 0.000370001);
	assert_false(rep.reserved);
	double b = billed(&e.f);
	assert_true(b > 0.000369999 && b < 0.000370001); /* what the service billed */
	struct buf js = BUF_INIT;
	assert_int_equal(llm_reply_json(&js, &rep, 0, NULL), CONVBI_OK);
	assert_non_null(strstr(buf_str(&js), "\"cached_tokens\":64}"));
	assert_non_null(strstr(buf_str(&js), "\"cost_usd\":0.000370,\"reserved\":false"));
	buf_release(&js);
	llm_reply_release(&rep);
	stop(&e);
}

static void a_reserved_endpoint_costs_nothing_and_says_so(void **state)
{
	struct env e;
	start(&e,
	      scenario_of("{\"price\":" PRICE ",\"priority\":1}", "{\"price\":" PRICE ",\"priority\":1}", "{\"reserved\":true}",
	                  0),
	      NULL);
	struct llm_reply rep;
	struct err err = ERR_INIT;
	assert_int_equal(call(e.l, &rep, &err), CONVBI_OK);
	assert_string_equal(rep.endpoint, "north");
	assert_true(rep.reserved);
	assert_true(rep.cost_usd == 0);
	llm_reply_release(&rep);
	stop(&e);
}

static void an_endpoint_over_its_budget_is_skipped_and_the_others_take_the_calls(void **state)
{
	struct env e;
	/* east: $0.002 a day holds four calls of 370 and a fifth (1480 + 450
	 * <= 2000); a sixth would need 1850 + 450 > 2000.  east is the quick
	 * one (5 ms against west's 150), so routing, which prefers quick
	 * endpoints, would give it every call: only its budget sends the
	 * other 15 to west. */
	start(&e, scenario_lat("{\"price\":" PRICE ",\"budget\":{\"daily\":0.002}}", NULL, NULL, 5, 150), NULL);
	for (int i = 0; i < 20; i++) {
		struct llm_reply rep;
		struct err err = ERR_INIT;
		if (call(e.l, &rep, &err))
			fail_msg("call %d: %s", i, err.msg);
		llm_reply_release(&rep);
	}
	assert_int_equal(fake_stat(&e.f, "east", "ok"), 5);
	assert_int_equal(fake_stat(&e.f, "west", "ok"), 15);
	assert_true(fake_stat_num(&e.f, "east", "cost_usd") <= 0.002);
	stop(&e);
}

static void a_spent_configuration_budget_fails_the_call_at_once_naming_the_budget(void **state)
{
	struct env e;
	/* $0.003: seven calls (2220 + 450 <= 3000), not an eighth (2590 + 450) */
	start(&e, scenario_of(NULL, NULL, NULL, 0), "{\"budget\":{\"daily\":0.003}}");
	int ok = 0, rc = CONVBI_OK;
	struct err err = ERR_INIT;
	struct llm_reply rep;
	while (ok < 100 && (rc = call(e.l, &rep, &err)) == CONVBI_OK) {
		ok++;
		llm_reply_release(&rep);
	}
	assert_int_equal(ok, 7);
	assert_int_equal(rc, CONVBI_EBUDGET);
	assert_int_equal(rep.nattempts, 0);
	assert_true(rep.elapsed_ms < slack(1000));
	assert_non_null(strstr(err.msg, "the configuration's daily budget of $0.0030 cannot cover this call ($0.0026"));
	assert_non_null(strstr(err.msg, "raise budget.daily or wait"));
	assert_null(strchr(err.msg, '\n'));
	assert_int_equal(requests(&e.f), 7); /* nothing was sent for the refused call */
	double b = billed(&e.f);
	assert_true(b > 7 * 0.000369999 && b < 7 * 0.000370001);
	struct buf js = BUF_INIT;
	assert_int_equal(llm_reply_json(&js, &rep, rc, err.msg), CONVBI_OK);
	assert_non_null(strstr(buf_str(&js), "\"status\":\"EBUDGET\",\"error_class\":\"budget\""));
	buf_release(&js);
	llm_reply_release(&rep);
	stop(&e);
}

static void every_endpoint_over_its_budget_is_ebudget_too(void **state)
{
	struct env e;
	start(&e,
	      scenario_of("{\"price\":" PRICE ",\"budget\":{\"monthly\":0.0005}}",
	                  "{\"price\":" PRICE ",\"budget\":{\"daily\":0.0004}}",
	                  "{\"priority\":1,\"price\":" PRICE ",\"budget\":{\"daily\":0.0001}}", 0),
	      NULL);
	struct llm_reply rep;
	struct err err = ERR_INIT;
	assert_int_equal(call(e.l, &rep, &err), CONVBI_OK); /* east: 450 <= 500 */
	assert_string_equal(rep.endpoint, "east");
	llm_reply_release(&rep);
	assert_int_equal(call(e.l, &rep, &err), CONVBI_EBUDGET); /* west 450 > 400, north 450 > 100 */
	assert_non_null(strstr(err.msg, "every endpoint left is over its budget"));
	assert_non_null(strstr(err.msg, "budget of $"));
	llm_reply_release(&rep);
	assert_int_equal(requests(&e.f), 1);
	stop(&e);
}

/* ---- calls in flight ------------------------------------------------------ */

struct caller {
	struct llm *l;
	int deadline_ms; /* 0: the configuration's; > 0 also starts the call 200 ms after the others */
	pthread_barrier_t *go;
	int rc;
	int64_t took_ms;
	struct err err;
};

static void *caller_main(void *arg)
{
	struct caller *c = arg;
	struct chat_msg m = {"user", prompt};
	struct llm_request req = {.msgs = &m, .n = 1, .max_tokens = 20, .temperature = -1, .deadline_ms = c->deadline_ms};
	struct llm_reply rep;
	pthread_barrier_wait(c->go);
	if (c->deadline_ms)
		clock_sleep_ms(200);
	int64_t t0 = clock_mono_ms();
	c->rc = llm_chat(c->l, &req, &rep, &c->err);
	c->took_ms = clock_mono_ms() - t0;
	llm_reply_release(&rep);
	return NULL;
}

/* n callers at once, the i-th with deadline_ms[i] (NULL: the configuration's) */
static int callers(struct llm *l, struct caller *c, int n, const int *deadline_ms)
{
	pthread_t t[16];
	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, (unsigned)n);
	for (int i = 0; i < n; i++) {
		c[i] = (struct caller){.l = l, .deadline_ms = deadline_ms ? deadline_ms[i] : 0, .go = &go, .err = ERR_INIT};
		pthread_create(&t[i], NULL, caller_main, &c[i]);
	}
	int ok = 0;
	for (int i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		ok += c[i].rc == CONVBI_OK;
	}
	pthread_barrier_destroy(&go);
	return ok;
}

/* attack8 N5: a budget held by calls in flight, not spent, makes the next
 * caller wait for them to settle instead of failing at once.  $0.003 holds
 * six estimates of 450 at once (a seventh: 3150 > 3000) but covers seven
 * calls of 370 (2590); the eighth can never be covered (2590 + 450). */
static void callers_wait_for_holds_to_settle_and_only_a_spent_budget_refuses(void **state)
{
	struct env e;
	start(&e, scenario_of(NULL, NULL, NULL, 300), "{\"budget\":{\"daily\":0.003}}");
	struct caller c[8];
	int ok = callers(e.l, c, 8, NULL);
	int refused = 0;
	for (int i = 0; i < 8; i++)
		if (c[i].rc) {
			refused++;
			assert_int_equal(c[i].rc, CONVBI_EBUDGET);
			if (!strstr(c[i].err.msg, "cannot cover this call ($0.0026"))
				fail_msg("refused as: %s", c[i].err.msg);
		}
	print_message("8 callers at once on a budget of 7 calls (6 estimates): %d answered, %d refused\n", ok, refused);
	assert_int_equal(ok, 7);
	assert_int_equal(refused, 1);
	double b = billed(&e.f);
	assert_true(b > 7 * 0.000369999 && b < 7 * 0.000370001);
	stop(&e);
}

/* The same for endpoints' budgets: east and west ($0.00085 each) hold one
 * estimate (450; two: 900) but cover a second call after the first
 * settles (370 + 450); north's budget ($0.0001) never covers one.  Four
 * callers at once: two go, two wait for the holds rather than fail with
 * "every endpoint left is over its budget". */
static void callers_wait_for_holds_on_endpoint_budgets_too(void **state)
{
	struct env e;
	start(&e,
	      scenario_of("{\"price\":" PRICE ",\"budget\":{\"daily\":0.00085}}",
	                  "{\"price\":" PRICE ",\"budget\":{\"daily\":0.00085}}",
	                  "{\"priority\":1,\"price\":" PRICE ",\"budget\":{\"daily\":0.0001}}", 300),
	      NULL);
	struct caller c[4];
	int ok = callers(e.l, c, 4, NULL);
	for (int i = 0; i < 4; i++)
		if (c[i].rc)
			fail_msg("caller %d: %s", i, c[i].err.msg);
	assert_int_equal(ok, 4);
	assert_int_equal(fake_stat(&e.f, "east", "ok"), 2);
	assert_int_equal(fake_stat(&e.f, "west", "ok"), 2);
	assert_int_equal(requests(&e.f), 4);
	stop(&e);
}

/* Holds that do not settle before the caller's deadline: it fails then,
 * saying the calls in flight held the budget, not that it is spent. */
static void holds_that_outlast_the_deadline_fail_the_call_naming_them(void **state)
{
	struct env e;
	/* $0.0006: one estimate of 450 held, the second (900 > 600) must wait */
	start(&e, scenario_of(NULL, NULL, NULL, 1500), "{\"budget\":{\"daily\":0.0006}}");
	struct caller c[2];
	int deadlines[2] = {0, 700};
	int ok = callers(e.l, c, 2, deadlines);
	assert_int_equal(ok, 1);
	int late = 1;
	assert_int_equal(c[late].rc, CONVBI_EBUDGET);
	print_message("refused after %lld ms: %s\n", (long long)c[late].took_ms, c[late].err.msg);
	assert_true(c[late].took_ms >= 400); /* it waited for the hold, within its 700 ms */
	assert_non_null(
	        strstr(c[late].err.msg, "could not cover this call before its deadline: calls in flight held $0.0004 of it"));
	assert_non_null(strstr(c[late].err.msg, "$0.00 is spent this day"));
	assert_null(strchr(c[late].err.msg, '\n'));
	assert_int_equal(requests(&e.f), 1);
	stop(&e);
}

/* ---- many processes ------------------------------------------------------ */

#define PROCS 8
#define THREADS 2
#define SHARED_BUDGET_UUSD 20000 /* $0.02: 53 calls of 370 */

static void eight_processes_spend_one_budget_and_stop_within_it(void **state)
{
	struct env e;
	start(&e, scenario_of(NULL, NULL, NULL, 20), "{\"budget\":{\"daily\":0.02}}");
	llm_close(e.l);
	e.l = NULL;
	const char *config = e.config;
	struct spend_total t;
	assert_int_equal(spend_processes(&config, 1, PROCS, THREADS, prompt, 20, 1000, &t), 0);
	int total[3] = {(int)t.ok, (int)t.refused, (int)t.other};
	assert_int_equal(total[2], 0);
	assert_int_equal(total[1], PROCS * THREADS); /* every thread ended on the budget */
	double b = billed(&e.f);
	print_message("8 processes x %d threads: %d calls billed $%.6f of a $%.6f budget (overshoot $%.6f)\n", THREADS, total[0],
	              b, SHARED_BUDGET_UUSD / 1e6, b > SHARED_BUDGET_UUSD / 1e6 ? b - SHARED_BUDGET_UUSD / 1e6 : 0);
	assert_int_equal(fake_stat(&e.f, "east", "ok") + fake_stat(&e.f, "west", "ok"), total[0]);
	/* the estimates cover the actual costs here, so the budget holds
	 * exactly; and the last refusals came only when less than the calls in
	 * flight could still hold was left */
	assert_true(b <= SHARED_BUDGET_UUSD / 1e6 + 1e-9);
	assert_true(total[0] * COST_UUSD > SHARED_BUDGET_UUSD - PROCS * THREADS * EST_UUSD);
	/* and what every process counted is what was billed */
	struct llm *l = open_llm(e.config);
	struct buf js = BUF_INIT;
	assert_int_equal(llm_spend_json(l, &js), CONVBI_OK);
	char want[128];
	snprintf(want, sizeof want, "{\"budget\":{\"daily\":0.020000,\"monthly\":null},\"spent_today_usd\":%.6f,",
	         total[0] * COST_UUSD / 1e6);
	if (!strstr(buf_str(&js), want))
		fail_msg("%s lacks %s", buf_str(&js), want);
	buf_reset(&js);
	assert_int_equal(llm_endpoints_json(l, &js), CONVBI_OK);
	snprintf(want, sizeof want, "\"spent_today_usd\":%.6f", fake_stat(&e.f, "east", "ok") * COST_UUSD / 1e6);
	assert_non_null(strstr(buf_str(&js), want));
	buf_release(&js);
	llm_close(l);
	stop(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(a_call_costs_its_usage_at_the_price_with_cached_tokens_at_theirs),
	        cmocka_unit_test(a_reserved_endpoint_costs_nothing_and_says_so),
	        cmocka_unit_test(an_endpoint_over_its_budget_is_skipped_and_the_others_take_the_calls),
	        cmocka_unit_test(a_spent_configuration_budget_fails_the_call_at_once_naming_the_budget),
	        cmocka_unit_test(every_endpoint_over_its_budget_is_ebudget_too),
	        cmocka_unit_test(callers_wait_for_holds_to_settle_and_only_a_spent_budget_refuses),
	        cmocka_unit_test(holds_that_outlast_the_deadline_fail_the_call_naming_them),
	        cmocka_unit_test(callers_wait_for_holds_on_endpoint_budgets_too),
	        cmocka_unit_test(eight_processes_spend_one_budget_and_stop_within_it),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
