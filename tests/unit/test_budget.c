/* test_budget.c -- call costs, reservations and their messages (llm/budget.c)
 * on the in-process state: the arithmetic, which counters a call holds,
 * that a refusal gives back what the call held so far, and the words. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "convbi/convbi.h"
#include "llm/budget.h"
#include "llm/config.h"
#include "llm/state.h"

/* 2026-12-07 10:00:00 UTC */
#define NOW INT64_C(1796637600000)

static const struct price_cfg GPT4O = {1, 0, 2.5, 1.25, 10};

static void costs_follow_the_price_and_the_cached_tokens(void **state)
{
	/* 1000 prompt tokens, 400 cached, 200 completion */
	double c = budget_cost_usd(&GPT4O, 1000, 400, 200);
	assert_true(c > 0.003999999 && c < 0.004000001); /* 600*2.5 + 400*1.25 + 200*10 = 4000 micro-USD */
	assert_int_equal(budget_uusd(c), 4000);
	assert_true(budget_cost_usd(&GPT4O, 10, 50, -1) * 1e6 > 12.4999 && budget_cost_usd(&GPT4O, 10, 50, -1) * 1e6 < 12.5001);
	struct price_cfg ptu = {0, 1, 0, 0, 0}, none = {0, 0, 0, 0, 0};
	assert_true(budget_cost_usd(&ptu, 1000, 0, 1000) == 0);
	assert_true(budget_cost_usd(&none, 1000, 0, 1000) == 0);
	/* the estimate: every prompt token at the input price, rounded up */
	assert_int_equal(budget_estimate_uusd(&GPT4O, 101, 20), 453); /* 252.5 + 200 */
	assert_int_equal(budget_estimate_uusd(&GPT4O, 0, 0), BUDGET_DEFAULT_COMPLETION * 10);
	assert_int_equal(budget_estimate_uusd(&ptu, 100, 100), 0);
	char s[32];
	budget_usd_str(s, sizeof s, 20000000);
	assert_string_equal(s, "$20.00");
	budget_usd_str(s, sizeof s, 12345);
	assert_string_equal(s, "$0.0123");
	budget_usd_str(s, sizeof s, 50000);
	assert_string_equal(s, "$0.05");
}

struct fixture {
	struct llm_config cfg;
	struct ep_cfg eps[2];
	struct state *st;
};

static int setup(void **state)
{
	static struct fixture f;
	memset(&f, 0, sizeof f);
	f.eps[0].name = "east";
	f.eps[0].price = GPT4O;
	f.eps[1].name = "west";
	f.eps[1].price = GPT4O;
	f.cfg.eps = f.eps;
	f.cfg.n = 2;
	struct state_shape shape = {2, 1, 7};
	struct err e = ERR_INIT;
	assert_int_equal(state_open_memory(&f.st, &shape, &e), CONVBI_OK);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	state_close(f->st);
	return 0;
}

static int64_t spent(struct fixture *f, unsigned ep, int which)
{
	return f->st->ops->spend_get(f->st, ep, which, state_period(which, NOW));
}

static void a_call_holds_its_estimate_and_settles_to_its_cost_everywhere(void **state)
{
	struct fixture *f = *state;
	f->cfg.budget.daily_uusd = 10000;
	f->eps[0].budget.monthly_uusd = 5000;
	struct budget_hold h;
	struct budget_refusal why;
	assert_int_equal(budget_reserve(&h, &why, f->st, &f->cfg, 0, NOW, 450), BUDGET_OK);
	assert_int_equal(spent(f, STATE_SET_SLOT, STATE_SPEND_DAY), 450); /* capped: held */
	assert_int_equal(spent(f, STATE_SET_SLOT, STATE_SPEND_MONTH), 0); /* uncapped: not yet */
	assert_int_equal(spent(f, 0, STATE_SPEND_MONTH), 450);
	assert_int_equal(spent(f, 0, STATE_SPEND_DAY), 0);
	budget_settle(f->st, &h, 370);
	for (int w = 0; w < STATE_NSPENDS; w++) {
		assert_int_equal(spent(f, STATE_SET_SLOT, w), 370); /* every counter of the set and the endpoint */
		assert_int_equal(spent(f, 0, w), 370);
		assert_int_equal(spent(f, 1, w), 0);
	}
	/* a failed call gives everything back */
	assert_int_equal(budget_reserve(&h, &why, f->st, &f->cfg, 0, NOW, 450), BUDGET_OK);
	budget_settle(f->st, &h, 0);
	assert_int_equal(spent(f, STATE_SET_SLOT, STATE_SPEND_DAY), 370);
	assert_int_equal(spent(f, 0, STATE_SPEND_MONTH), 370);
}

static void a_refusal_names_its_budget_and_holds_nothing(void **state)
{
	struct fixture *f = *state;
	f->cfg.budget.daily_uusd = 10000;
	f->eps[0].budget.monthly_uusd = 1000;
	struct budget_hold h;
	struct budget_refusal why;
	/* the endpoint's monthly cap refuses after the set's day took it: given back */
	assert_int_equal(budget_reserve(&h, &why, f->st, &f->cfg, 0, NOW, 1200), BUDGET_ENDPOINT);
	assert_int_equal(why.which, STATE_SPEND_MONTH);
	assert_int_equal(why.limit_uusd, 1000);
	assert_int_equal(why.need_uusd, 1200);
	assert_int_equal(spent(f, STATE_SET_SLOT, STATE_SPEND_DAY), 0);
	assert_int_equal(spent(f, 0, STATE_SPEND_MONTH), 0);
	char msg[400];
	budget_refusal_msg(msg, sizeof msg, &why, "east", NOW);
	assert_non_null(strstr(msg, "endpoint `east`'s monthly budget of $0.0010 cannot cover this call ($0.00 of it"));
	assert_non_null(strstr(msg, "this call needs up to $0.0012"));
	assert_non_null(strstr(msg, "it resets on the 1st at 00:00 UTC (in 24 d 14 h)"));
	assert_non_null(strstr(msg, "raise the endpoint's budget.monthly or wait"));
	/* the configuration's cap is looked at first, and is spent */
	budget_settle(f->st, &(struct budget_hold){1, 1, {state_period(0, NOW), state_period(1, NOW)}, {{0}}}, 10000);
	assert_int_equal(budget_reserve(&h, &why, f->st, &f->cfg, 1, NOW, 1), BUDGET_SET);
	budget_refusal_msg(msg, sizeof msg, &why, "west", NOW);
	assert_non_null(strstr(msg, "the configuration's daily budget of $0.01 is spent ($0.01 of it used or held"));
	assert_non_null(strstr(msg, "it resets at 00:00 UTC (in 14 h 0 min): raise budget.daily or wait"));
	/* a reserved endpoint costs nothing and is never refused */
	f->eps[1].price = (struct price_cfg){0, 1, 0, 0, 0};
	assert_int_equal(budget_reserve(&h, &why, f->st, &f->cfg, 1, NOW, 0), BUDGET_OK);
	budget_settle(f->st, &h, 0);
	assert_int_equal(spent(f, 1, STATE_SPEND_DAY), 10000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(costs_follow_the_price_and_the_cached_tokens),
	        cmocka_unit_test_setup_teardown(a_call_holds_its_estimate_and_settles_to_its_cost_everywhere, setup, teardown),
	        cmocka_unit_test_setup_teardown(a_refusal_names_its_budget_and_holds_nothing, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
