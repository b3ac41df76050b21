/* test_pool.c -- endpoint selection: tiers, weights, cooldowns, breaker, budgets.
 *
 * Pure logic first (pool_judge, the WRR cycle and walk, fallback, wait),
 * then pool_pick/pool_report end to end on in-process state
 * (pool_open_private: no files; the key fingerprint's one case on state
 * files under SCRATCH_DIR).  Time is passed in -- T0 and offsets from
 * it -- so nothing here sleeps and every case is exact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "convbi/convbi.h"
#include "llm/pool.h"
#include "llm/state.h"
#include "util/alloc.h"

#define T0 ((int64_t)1700000000000) /* a wall-clock instant on a window-bucket boundary */

static struct pool *open_pool(const struct pool_ep_cfg *eps, size_t n)
{
	struct pool *p = NULL;
	struct err e = ERR_INIT;
	assert_int_equal(pool_open_private(&p, eps, n, &e), CONVBI_OK);
	assert_non_null(p);
	return p;
}

static struct pool_pick pick_full(struct pool *p, int64_t now, uint64_t exclude, int64_t est)
{
	struct pool_pick k;
	assert_int_equal(pool_pick(p, now, exclude, est, &k), CONVBI_OK);
	if (k.ep < 0)
		assert_true(k.wait_ms > 0);
	return k;
}

static int pick(struct pool *p, int64_t now)
{
	return pick_full(p, now, 0, 0).ep;
}

static void report(struct pool *p, int ep, int64_t now, int cls, int64_t retry_after_ms)
{
	struct pool_outcome o = pool_outcome_of(cls);
	o.retry_after_ms = retry_after_ms;
	pool_report(p, ep, now, &o);
}

static struct state_snap fresh_snap(void)
{
	struct state_snap s;
	memset(&s, 0, sizeof s);
	s.f[STATE_REM_REQ] = -1;
	s.f[STATE_REM_TOK] = -1;
	return s;
}

static const struct pool_ep_cfg W123[] = {
        {"a", "https://a/dep", 0, 1, 0, 0},
        {"b", "https://b/dep", 0, 2, 0, 0},
        {"c", "https://c/dep", 0, 3, 0, 0},
};

/* ---- pure logic ---------------------------------------------------------- */

static void wrr_cycle_of_weights_1_2_3_is_smooth_and_exact(void **state)
{
	uint8_t cyc[16];
	size_t len = pool_wrr_cycle(cyc, sizeof cyc, W123, 3, 7);
	assert_int_equal(len, 6);
	const uint8_t want[6] = {2, 1, 0, 2, 1, 2};
	assert_memory_equal(cyc, want, 6);
	/* a subset, and a cap too small */
	assert_int_equal(pool_wrr_cycle(cyc, sizeof cyc, W123, 3, 1u << 1 | 1u << 2), 5);
	assert_int_equal(pool_wrr_cycle(cyc, 5, W123, 3, 7), 0);
	assert_int_equal(pool_wrr_cycle(cyc, sizeof cyc, W123, 3, 0), 0);
}

static void wrr_walk_skips_unusable_to_the_next_in_the_cycle(void **state)
{
	const uint8_t cyc[6] = {2, 1, 0, 2, 1, 2};
	assert_int_equal(pool_wrr_walk(cyc, 6, 0, 7), 2);
	assert_int_equal(pool_wrr_walk(cyc, 6, 7, 7), 1); /* 7 mod 6 = 1 */
	assert_int_equal(pool_wrr_walk(cyc, 6, 0, 1u << 0 | 1u << 1), 1);
	assert_int_equal(pool_wrr_walk(cyc, 6, 4, 1u << 0), 0); /* wraps round */
	assert_int_equal(pool_wrr_walk(cyc, 6, 3, 0), -1);
	assert_int_equal(pool_wrr_walk(cyc, 6, 3, 1u << 5), -1); /* not in this cycle */
	assert_int_equal(pool_wrr_walk(cyc, 6, UINT64_MAX, 7), cyc[UINT64_MAX % 6]);
}

static void judge_reads_each_blocker_from_a_snapshot(void **state)
{
	struct pool_ep_cfg cfg = {"x", "x", 0, 1, 10, 1000};
	struct pool_verdict v;
	struct state_snap s = fresh_snap();

	pool_judge(&v, &cfg, &s, T0, 100);
	assert_true(v.usable);
	assert_false(v.probe);
	assert_int_equal(v.ready_ms, T0);

	s.f[STATE_COOL_UNTIL] = T0 + 500;
	pool_judge(&v, &cfg, &s, T0, 100);
	assert_false(v.usable);
	assert_false(v.breaker_only);
	assert_int_equal(v.ready_ms, T0 + 500);
	pool_judge(&v, &cfg, &s, T0 + 500, 100); /* cooldown ends exactly then */
	assert_true(v.usable);

	s = fresh_snap();
	s.f[STATE_PACE_REQ] = (T0 + 1234) * 1000 + 1; /* rpm pacing: next slot just after */
	pool_judge(&v, &cfg, &s, T0 + 1234, 100);
	assert_false(v.usable);
	assert_int_equal(v.ready_ms, T0 + 1235);
	pool_judge(&v, &cfg, &s, T0 + 1235, 100);
	assert_true(v.usable);

	s = fresh_snap();
	s.f[STATE_PACE_TOK] = (T0 + 40) * 1000; /* tpm pacing */
	pool_judge(&v, &cfg, &s, T0, 40);
	assert_false(v.usable);
	assert_int_equal(v.ready_ms, T0 + 40);

	/* Server budgets apply where no client-side quota is configured ... */
	struct pool_ep_cfg open_cfg = {"x", "x", 0, 1, 0, 0};
	s = fresh_snap();
	s.f[STATE_REM_REQ] = 0;
	s.f[STATE_RESET_REQ] = T0 + 700;
	pool_judge(&v, &open_cfg, &s, T0, 0);
	assert_false(v.usable);
	assert_int_equal(v.ready_ms, T0 + 700);
	pool_judge(&v, &open_cfg, &s, T0 + 700, 0);
	assert_true(v.usable);
	/* ... and give way to the pacing where one is */
	pool_judge(&v, &cfg, &s, T0, 0);
	assert_true(v.usable);

	s = fresh_snap();
	s.f[STATE_REM_TOK] = 300;
	s.f[STATE_RESET_TOK] = T0 + 900;
	pool_judge(&v, &open_cfg, &s, T0, 200);
	assert_true(v.usable);
	pool_judge(&v, &open_cfg, &s, T0, 400);
	assert_false(v.usable);
	assert_int_equal(v.ready_ms, T0 + 900);
	pool_judge(&v, &cfg, &s, T0, 400);
	assert_true(v.usable);
}

static void judge_tells_open_half_open_and_busy_probe_apart(void **state)
{
	struct pool_ep_cfg cfg = {"x", "x", 0, 1, 0, 0};
	struct pool_verdict v;
	struct state_snap s = fresh_snap();
	s.f[STATE_OPEN_UNTIL] = T0 + 2000;
	s.f[STATE_LAST_FAIL] = T0 - 1;
	pool_judge(&v, &cfg, &s, T0, 0);
	assert_false(v.usable);
	assert_true(v.breaker_only);
	assert_int_equal(v.breaker_ms, T0 + 2000);
	assert_int_equal(v.last_fail_ms, T0 - 1);

	pool_judge(&v, &cfg, &s, T0 + 2000, 0); /* half-open, probe free */
	assert_true(v.usable);
	assert_true(v.probe);

	s.f[STATE_PROBE_UNTIL] = T0 + 3000; /* someone is probing */
	pool_judge(&v, &cfg, &s, T0 + 2500, 0);
	assert_false(v.usable);
	assert_true(v.breaker_only);
	pool_judge(&v, &cfg, &s, T0 + 3000, 0); /* ... and their claim ran out */
	assert_true(v.probe);

	s.f[STATE_COOL_UNTIL] = T0 + 9000; /* cooling too: not a fallback candidate */
	pool_judge(&v, &cfg, &s, T0, 0);
	assert_false(v.usable);
	assert_false(v.breaker_only);
	assert_int_equal(v.ready_ms, T0 + 9000);
}

static void fallback_prefers_breaker_opening_soonest_then_oldest_failure(void **state)
{
	struct pool_verdict v[4];
	memset(v, 0, sizeof v);
	v[0].breaker_ms = T0 + 3000;
	v[0].last_fail_ms = T0 - 10;
	v[1].breaker_ms = T0 + 1000;
	v[1].last_fail_ms = T0 - 5;
	v[2].breaker_ms = T0 + 1000;
	v[2].last_fail_ms = T0 - 50;
	v[3].breaker_ms = T0 + 500;
	v[3].last_fail_ms = T0;
	assert_int_equal(pool_fallback(v, 4, 0xf), 3);
	assert_int_equal(pool_fallback(v, 4, 0x7), 2);
	assert_int_equal(pool_fallback(v, 4, 0x3), 1);
	assert_int_equal(pool_fallback(v, 4, 0x1), 0);
	assert_int_equal(pool_fallback(v, 4, 0), -1);
}

static void wait_is_the_earliest_ready_endpoint_and_never_zero(void **state)
{
	struct pool_verdict v[3];
	memset(v, 0, sizeof v);
	v[0].ready_ms = T0 + 5000;
	v[1].ready_ms = T0 + 3000;
	v[2].ready_ms = T0 + 100;
	assert_int_equal(pool_wait(v, 3, 0x7, T0), 100);
	assert_int_equal(pool_wait(v, 3, 0x3, T0), 3000);
	assert_int_equal(pool_wait(v, 3, 0x1, T0), 5000);
	assert_int_equal(pool_wait(v, 3, 0x4, T0 + 100), 1);
}

/* ---- picking end to end --------------------------------------------------- */

static void weights_1_2_3_get_exactly_their_share_of_every_cycle(void **state)
{
	struct pool *p = open_pool(W123, 3);
	for (int warmup = 0; warmup < 7; warmup++) { /* any starting counter value */
		int n[3] = {0};
		for (int i = 0; i < 6 * 1000; i++) {
			int ep = pick(p, T0);
			assert_in_range(ep, 0, 2);
			n[ep]++;
			report(p, ep, T0, POOL_OK, -1);
		}
		assert_int_equal(n[0], 1000);
		assert_int_equal(n[1], 2000);
		assert_int_equal(n[2], 3000);
		pick(p, T0); /* shift the phase by one */
	}
	struct pool_live lv;
	assert_int_equal(pool_live_get(p, 2, T0, &lv), CONVBI_OK);
	assert_int_equal(lv.calls, 7 * 3000);
	assert_int_equal(lv.ok, 7 * 3000);
	pool_close(p);
}

static void first_tier_is_used_while_any_of_it_is_usable(void **state)
{
	const struct pool_ep_cfg eps[] = {
	        {"backup", "u/backup", 1, 5, 0, 0},
	        {"main1", "u/main1", 0, 1, 0, 0},
	        {"main2", "u/main2", 0, 1, 0, 0},
	        {"last", "u/last", 7, 1, 0, 0},
	};
	struct pool *p = open_pool(eps, 4);
	int n[4] = {0};
	for (int i = 0; i < 100; i++)
		n[pick(p, T0)]++;
	assert_int_equal(n[1], 50);
	assert_int_equal(n[2], 50);
	assert_int_equal(n[0] + n[3], 0);

	report(p, 1, T0, POOL_RATE_LIMITED, 10000);
	for (int i = 0; i < 10; i++)
		assert_int_equal(pick(p, T0 + 1), 2);
	report(p, 2, T0, POOL_RATE_LIMITED, 20000);
	for (int i = 0; i < 10; i++)
		assert_int_equal(pick(p, T0 + 2), 0);
	report(p, 0, T0, POOL_BROKEN, -1);
	assert_int_equal(pick(p, T0 + 3), 3);
	assert_int_equal(pick(p, T0 + 10000), 1); /* main1 back: tier 0 again */
	pool_close(p);
}

static void cooling_endpoint_is_skipped_until_retry_after_passes(void **state)
{
	struct pool *p = open_pool(W123, 3);
	report(p, 2, T0, POOL_RATE_LIMITED, 5000);
	for (int i = 0; i < 300; i++)
		assert_int_not_equal(pick(p, T0 + 4999), 2);
	int seen = 0;
	for (int i = 0; i < 6; i++)
		seen |= pick(p, T0 + 5000) == 2;
	assert_true(seen);
	struct pool_live lv;
	pool_live_get(p, 2, T0, &lv);
	assert_int_equal(lv.cool_until_ms, T0 + 5000);
	assert_int_equal(lv.rate_limited, 1);
	pool_close(p);
}

static void cooldown_only_ever_grows(void **state)
{
	struct pool *p = open_pool(W123, 3);
	struct pool_live lv;
	report(p, 0, T0, POOL_RATE_LIMITED, 10000);
	report(p, 0, T0 + 1, POOL_RATE_LIMITED, 1000);
	pool_live_get(p, 0, T0, &lv);
	assert_int_equal(lv.cool_until_ms, T0 + 10000);
	report(p, 0, T0 + 2, POOL_RATE_LIMITED, 20000);
	pool_live_get(p, 0, T0, &lv);
	assert_int_equal(lv.cool_until_ms, T0 + 20002);
	pool_close(p);
}

static void bare_429s_cool_for_one_second_doubling_to_thirty(void **state)
{
	struct pool *p = open_pool(W123, 3);
	struct pool_live lv;
	const int64_t want[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000};
	int64_t now = T0;
	for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
		report(p, 1, now, POOL_RATE_LIMITED, -1);
		pool_live_get(p, 1, now, &lv);
		assert_int_equal(lv.cool_until_ms - now, want[i]);
		now += want[i];
	}
	report(p, 1, now, POOL_OK, -1); /* a success starts the doubling over */
	report(p, 1, now, POOL_RATE_LIMITED, -1);
	pool_live_get(p, 1, now, &lv);
	assert_int_equal(lv.cool_until_ms - now, 1000);
	pool_close(p);
}

static void daily_quota_429_takes_out_that_endpoint_only(void **state)
{
	struct pool *p = open_pool(W123, 3);
	const int64_t day = (int64_t)86400 * 1000;
	report(p, 1, T0, POOL_RATE_LIMITED, day);
	int n[3] = {0};
	for (int64_t t = 0; t < 1000; t++) {
		int ep = pick(p, T0 + t * 80000); /* spread over the whole day */
		n[ep]++;
	}
	assert_int_equal(n[1], 0);
	assert_true(n[0] > 0 && n[2] > 0);
	assert_int_equal(n[0] + n[2], 1000);
	int seen = 0;
	for (int i = 0; i < 6; i++)
		seen |= pick(p, T0 + day) == 1;
	assert_true(seen);
	pool_close(p);
}

static void exclude_mask_is_honoured_and_all_excluded_is_no_endpoint(void **state)
{
	struct pool *p = open_pool(W123, 3);
	for (int i = 0; i < 60; i++) {
		int ep = pick_full(p, T0, 1u << 2, 0).ep;
		assert_true(ep == 0 || ep == 1);
	}
	for (int i = 0; i < 10; i++)
		assert_int_equal(pick_full(p, T0, 0x3 | 0xf0, 0).ep, 2); /* bits past n ignored */
	struct pool_pick k;
	assert_int_equal(pool_pick(p, T0, 0x7, 0, &k), CONVBI_ENOENDPOINT);
	assert_int_equal(k.ep, -1);
	assert_int_equal(pool_pick(p, T0, ~(uint64_t)0, 0, &k), CONVBI_ENOENDPOINT);
	pool_close(p);
}

static void everything_cooling_gives_the_wait_for_the_earliest(void **state)
{
	struct pool *p = open_pool(W123, 3);
	report(p, 0, T0, POOL_RATE_LIMITED, 7000);
	report(p, 1, T0, POOL_RATE_LIMITED, 3000);
	report(p, 2, T0, POOL_RATE_LIMITED, 86400000);
	struct pool_pick k = pick_full(p, T0 + 1000, 0, 0);
	assert_int_equal(k.ep, -1);
	assert_int_equal(k.wait_ms, 2000);
	k = pick_full(p, T0 + 1000, 1u << 1, 0); /* excluded ones don't count */
	assert_int_equal(k.wait_ms, 6000);
	assert_int_equal(pick(p, T0 + 3000), 1);
	pool_close(p);
}

static void three_failures_open_the_breaker_and_a_probe_closes_it(void **state)
{
	struct pool *p = open_pool(W123, 3);
	struct pool_live lv;
	report(p, 2, T0, POOL_SERVER, -1);
	report(p, 2, T0, POOL_TRANSPORT, -1);
	pool_live_get(p, 2, T0, &lv);
	assert_int_equal(lv.breaker, POOL_BREAKER_CLOSED);
	assert_int_equal(lv.consecutive_failures, 2);
	report(p, 2, T0 + 10, POOL_SERVER, -1);
	pool_live_get(p, 2, T0 + 10, &lv);
	assert_int_equal(lv.breaker, POOL_BREAKER_OPEN);
	assert_int_equal(lv.breaker_until_ms, T0 + 10 + POOL_BREAKER_PAUSE_MS);
	assert_string_equal(pool_breaker_name(lv.breaker), "open");
	for (int i = 0; i < 100; i++)
		assert_int_not_equal(pick(p, T0 + 2009), 2);

	/* half-open: exactly one probe, and nobody else while it runs */
	int probes = 0;
	for (int i = 0; i < 12; i++) {
		struct pool_pick k = pick_full(p, T0 + 2010, 0, 0);
		if (k.ep == 2) {
			assert_true(k.probe);
			probes++;
		} else {
			assert_false(k.probe);
		}
	}
	assert_int_equal(probes, 1);
	pool_live_get(p, 2, T0 + 2010, &lv);
	assert_int_equal(lv.breaker, POOL_BREAKER_HALF_OPEN);
	struct pool_outcome o = pool_outcome_of(POOL_OK);
	o.probe = 1;
	pool_report(p, 2, T0 + 2500, &o);
	pool_live_get(p, 2, T0 + 2500, &lv);
	assert_int_equal(lv.breaker, POOL_BREAKER_CLOSED);
	assert_int_equal(lv.consecutive_failures, 0);
	int n[3] = {0};
	for (int i = 0; i < 60; i++)
		n[pick(p, T0 + 2500)]++;
	assert_int_equal(n[2], 30);
	pool_close(p);
}

static void failed_probes_double_the_pause_up_to_thirty_seconds(void **state)
{
	struct pool *p = open_pool(W123, 1);
	struct pool_live lv;
	int64_t now = T0;
	for (int i = 0; i < POOL_BREAKER_THRESHOLD; i++)
		report(p, 0, now, POOL_TRANSPORT, -1);
	int64_t pause = POOL_BREAKER_PAUSE_MS;
	for (int round = 0; round < 8; round++) {
		pool_live_get(p, 0, now, &lv);
		assert_int_equal(lv.breaker_until_ms - now, pause);
		now += pause;
		struct pool_pick k = pick_full(p, now, 0, 0);
		assert_int_equal(k.ep, 0);
		assert_true(k.probe);
		struct pool_outcome o = pool_outcome_of(POOL_SERVER);
		o.probe = 1;
		pool_report(p, 0, now, &o);
		pause = pause * 2 > POOL_BREAKER_PAUSE_MAX_MS ? POOL_BREAKER_PAUSE_MAX_MS : pause * 2;
	}
	assert_int_equal(pause, POOL_BREAKER_PAUSE_MAX_MS);
	pool_close(p);
}

static void a_success_resets_the_failure_count(void **state)
{
	struct pool *p = open_pool(W123, 3);
	struct pool_live lv;
	for (int round = 0; round < 5; round++) {
		report(p, 0, T0, POOL_SERVER, -1);
		report(p, 0, T0, POOL_TRANSPORT, -1);
		report(p, 0, T0, POOL_OK, -1);
	}
	pool_live_get(p, 0, T0, &lv);
	assert_int_equal(lv.breaker, POOL_BREAKER_CLOSED);
	assert_int_equal(lv.failures, 10);
	assert_int_equal(lv.ok, 5);
	assert_int_equal(lv.calls, 15);
	pool_close(p);
}

static void probe_slot_frees_itself_after_the_probe_timeout(void **state)
{
	struct pool *p = open_pool(W123, 2);
	for (int i = 0; i < 3; i++)
		report(p, 0, T0, POOL_TRANSPORT, -1);
	int64_t half = T0 + POOL_BREAKER_PAUSE_MS;
	struct pool_pick k = pick_full(p, half, 1u << 1, 0); /* the prober, who then vanishes */
	assert_int_equal(k.ep, 0);
	assert_true(k.probe);
	for (int i = 0; i < 10; i++)
		assert_int_equal(pick(p, half + POOL_PROBE_TIMEOUT_MS - 1), 1);
	k = pick_full(p, half + POOL_PROBE_TIMEOUT_MS, 1u << 1, 0);
	assert_int_equal(k.ep, 0);
	assert_true(k.probe);
	pool_abandon(p, &k); /* given back at once */
	k = pick_full(p, half + POOL_PROBE_TIMEOUT_MS + 1, 1u << 1, 0);
	assert_true(k.probe);
	pool_close(p);
}

static void partial_outage_still_offers_the_breaker_opening_soonest(void **state)
{
	struct pool *p = open_pool(W123, 3);
	for (int i = 0; i < 3; i++) {
		report(p, 0, T0 + 300, POOL_SERVER, -1);
		report(p, 1, T0 + 100, POOL_SERVER, -1);
		report(p, 2, T0 + 200, POOL_TRANSPORT, -1);
	}
	for (int i = 0; i < 5; i++) {
		struct pool_pick k = pick_full(p, T0 + 400, 0, 0);
		assert_int_equal(k.ep, 1);
		assert_false(k.probe);
	}
	assert_int_equal(pick_full(p, T0 + 400, 1u << 1, 0).ep, 2);
	/* its breaker lapses into half-open and its probe is taken: the
	 * others, still open, come after the one already half-open */
	struct pool_pick k = pick_full(p, T0 + 2100, 0, 0);
	assert_int_equal(k.ep, 1);
	assert_true(k.probe);
	assert_int_equal(pick_full(p, T0 + 2150, 0, 0).ep, 1);
	/* a forced attempt that succeeds closes that breaker */
	report(p, 1, T0 + 2160, POOL_OK, -1);
	struct pool_live lv;
	pool_live_get(p, 1, T0 + 2160, &lv);
	assert_int_equal(lv.breaker, POOL_BREAKER_CLOSED);
	pool_close(p);
}

static void partial_outage_rule_waits_for_a_healthy_endpoint_that_frees_soon(void **state)
{
	struct pool *p = open_pool(W123, 2);
	for (int i = 0; i < 3; i++)
		report(p, 0, T0, POOL_SERVER, -1);
	report(p, 1, T0, POOL_RATE_LIMITED, 5000);
	/* 1 is healthy and free in 5 s: wait for it rather than call 0, which is failing */
	struct pool_pick k = pick_full(p, T0 + 10, 0, 0);
	assert_int_equal(k.ep, -1);
	assert_int_equal(k.wait_ms, 1990); /* 0's breaker half-opens first (2 s pause) */
	report(p, 1, T0 + 10, POOL_RATE_LIMITED, 60000);
	/* ... but a long cooldown (past the longest breaker pause) does not hold the call */
	assert_int_equal(pick(p, T0 + 20), 0);
	report(p, 0, T0 + 20, POOL_RATE_LIMITED, 90000);
	k = pick_full(p, T0 + 30, 0, 0); /* the rule never overrides a cooldown */
	assert_int_equal(k.ep, -1);
	assert_int_equal(k.wait_ms, 59980);
	assert_int_equal(pick(p, T0 + 60010), 1);
	pool_close(p);
}

static void rpm_paces_requests_evenly_across_the_minute(void **state)
{
	const struct pool_ep_cfg eps[] = {{"solo", "u/solo", 0, 1, 600, 0}}; /* one per 100 ms */
	struct pool *p = open_pool(eps, 1);
	assert_int_equal(pick(p, T0), 0);
	struct pool_pick k = pick_full(p, T0 + 50, 0, 0);
	assert_int_equal(k.ep, -1);
	assert_int_equal(k.wait_ms, 52); /* 100 ms x the 2 % margin, from T0 */
	assert_int_equal(pick(p, T0 + 102), 0);
	/* a late picker (within half a slot) does not lose the budget it slept through */
	assert_int_equal(pick_full(p, T0 + 203, 0, 0).ep, -1);
	assert_int_equal(pick(p, T0 + 204), 0);
	/* over a minute, at most rpm requests go */
	int n = 0;
	for (int64_t t = T0 + 1000; t < T0 + 61000; t += 10)
		n += pick_full(p, t, 0, 0).ep == 0;
	assert_true(n <= 600 && n >= 580);
	struct pool_live lv;
	pool_live_get(p, 0, T0 + 61000, &lv);
	assert_true(lv.window_requests > 500);
	pool_close(p);
}

static void tpm_paces_by_estimated_tokens(void **state)
{
	const struct pool_ep_cfg eps[] = {
	        {"small", "u/small", 0, 1, 0, 60000}, /* 1000 tokens a second */
	        {"big", "u/big", 1, 1, 0, 0},
	};
	struct pool *p = open_pool(eps, 2);
	assert_int_equal(pick_full(p, T0, 0, 600).ep, 0);
	assert_int_equal(pick_full(p, T0, 0, 600).ep, 1); /* small is busy for 612 ms: next tier */
	assert_int_equal(pick_full(p, T0 + 611, 0, 10).ep, 1);
	assert_int_equal(pick_full(p, T0 + 612, 0, 10).ep, 0);
	struct pool_live lv;
	pool_live_get(p, 0, T0 + 700, &lv);
	assert_int_equal(lv.window_tokens, 610);
	assert_int_equal(lv.window_requests, 2);
	pool_close(p);
}

static void server_budget_blocks_until_its_reset(void **state)
{
	struct pool *p = open_pool(W123, 2);
	struct pool_outcome o = pool_outcome_of(POOL_OK);
	o.remaining_requests = 0;
	o.reset_requests_ms = 1500;
	pool_report(p, 0, T0, &o);
	for (int i = 0; i < 10; i++)
		assert_int_equal(pick(p, T0 + 1499), 1);
	struct pool_live lv;
	pool_live_get(p, 0, T0, &lv);
	assert_int_equal(lv.remaining_requests, 0);
	assert_int_equal(lv.budget_reset_ms, T0 + 1500);
	pool_live_get(p, 0, T0 + 1500, &lv);
	assert_int_equal(lv.remaining_requests, -1);
	int seen = 0;
	for (int i = 0; i < 3; i++)
		seen |= pick(p, T0 + 1500) == 0;
	assert_true(seen);

	o = pool_outcome_of(POOL_OK);
	o.remaining_tokens = 300; /* no reset given: the default applies */
	pool_report(p, 1, T0 + 2000, &o);
	for (int i = 0; i < 10; i++)
		assert_int_equal(pick_full(p, T0 + 2001, 0, 500).ep, 0);
	seen = 0;
	for (int i = 0; i < 6; i++)
		seen |= pick_full(p, T0 + 2001, 0, 200).ep == 1;
	assert_true(seen);
	assert_int_not_equal(pick_full(p, T0 + 2000 + POOL_BUDGET_RESET_DEFAULT_MS, 1u << 0, 500).ep, -1);
	pool_close(p);
}

static void broken_endpoint_is_out_for_five_minutes(void **state)
{
	struct pool *p = open_pool(W123, 2);
	report(p, 1, T0, POOL_BROKEN, -1);
	for (int i = 0; i < 10; i++)
		assert_int_equal(pick(p, T0 + POOL_BROKEN_COOL_MS - 1), 0);
	struct pool_live lv;
	pool_live_get(p, 1, T0, &lv);
	assert_int_equal(lv.failures, 1);
	assert_int_equal(lv.breaker, POOL_BREAKER_CLOSED);
	assert_int_equal(lv.cool_class, POOL_BROKEN); /* why it cools, for messages */
	report(p, 0, T0, POOL_RATE_LIMITED, 5000);
	pool_live_get(p, 0, T0, &lv);
	assert_int_equal(lv.cool_class, POOL_RATE_LIMITED);
	int seen = 0;
	for (int i = 0; i < 3; i++)
		seen |= pick(p, T0 + POOL_BROKEN_COOL_MS) == 1;
	assert_true(seen);
	pool_close(p);
}

static void client_errors_and_probes_that_are_not_failures_leave_health_alone(void **state)
{
	struct pool *p = open_pool(W123, 2);
	for (int i = 0; i < 10; i++)
		report(p, 0, T0, POOL_CLIENT, -1);
	struct pool_live lv;
	pool_live_get(p, 0, T0, &lv);
	assert_int_equal(lv.calls, 10);
	assert_int_equal(lv.failures + lv.ok + lv.rate_limited, 0);
	assert_int_equal(lv.breaker, POOL_BREAKER_CLOSED);
	assert_int_equal(lv.cool_until_ms, 0);

	for (int i = 0; i < 3; i++)
		report(p, 0, T0, POOL_SERVER, -1);
	struct pool_pick k = pick_full(p, T0 + 2000, 1u << 1, 0);
	assert_true(k.probe);
	struct pool_outcome o = pool_outcome_of(POOL_CLIENT);
	o.probe = 1;
	pool_report(p, 0, T0 + 2001, &o); /* the slot is free again, still half-open */
	pool_live_get(p, 0, T0 + 2001, &lv);
	assert_int_equal(lv.breaker, POOL_BREAKER_HALF_OPEN);
	k = pick_full(p, T0 + 2002, 1u << 1, 0);
	assert_true(k.probe);
	pool_close(p);
}

static void open_checks_the_endpoints(void **state)
{
	struct pool *p = (struct pool *)&p;
	struct err e = ERR_INIT;
	assert_int_equal(pool_open_private(&p, W123, 0, &e), CONVBI_ENOENDPOINT);
	assert_null(p);
	struct pool_ep_cfg bad[2] = {W123[0], W123[1]};
	bad[1].weight = 0;
	assert_int_equal(pool_open_private(&p, bad, 2, &e), CONVBI_EINVAL);
	assert_non_null(strstr(e.msg, "`b`"));
	bad[1].weight = POOL_MAX_WEIGHT + 1;
	assert_int_equal(pool_open_private(&p, bad, 2, &e), CONVBI_EINVAL);
	bad[1].weight = 1;
	bad[1].rpm = -1;
	assert_int_equal(pool_open_private(&p, bad, 2, &e), CONVBI_EINVAL);
	struct pool_ep_cfg many[POOL_MAX_ENDPOINTS + 1];
	for (size_t i = 0; i < POOL_MAX_ENDPOINTS + 1; i++)
		many[i] = W123[0];
	assert_int_equal(pool_open_private(&p, many, POOL_MAX_ENDPOINTS + 1, &e), CONVBI_EINVAL);
	assert_null(p);
	pool_close(NULL);
}

static void open_state_adopts_the_state_and_checks_its_shape(void **state)
{
	struct state_shape shape;
	struct state *st = NULL;
	struct pool *p = NULL;
	struct err e = ERR_INIT;
	assert_int_equal(pool_shape(&shape, W123, 2, &e), CONVBI_OK);
	assert_int_equal(shape.n_slots, 2);
	assert_int_equal(shape.n_tiers, 1);
	assert_int_equal(state_open_memory(&st, &shape, &e), CONVBI_OK);
	/* three endpoints on a state shaped for two: refused, and st closed */
	assert_int_equal(pool_open_state(&p, W123, 3, st, &e), CONVBI_EINVAL);
	assert_null(p);
	struct pool_ep_cfg other[2] = {W123[0], W123[1]};
	other[1].weight = 7; /* same counts, different set */
	assert_int_equal(state_open_memory(&st, &shape, &e), CONVBI_OK);
	assert_int_equal(pool_open_state(&p, other, 2, st, &e), CONVBI_EINVAL);
	assert_int_equal(state_open_memory(&st, &shape, &e), CONVBI_OK);
	assert_int_equal(pool_open_state(&p, W123, 2, st, &e), CONVBI_OK);
	assert_int_equal(pick(p, T0), 1);
	pool_close(p);

	struct state_shape again;
	assert_int_equal(pool_shape(&again, W123, 2, &e), CONVBI_OK);
	assert_true(again.set_hash == shape.set_hash); /* deterministic */
	other[1] = W123[1];
	other[1].priority = 1;
	assert_int_equal(pool_shape(&again, other, 2, &e), CONVBI_OK);
	assert_int_equal(again.n_tiers, 2);
	assert_true(again.set_hash != shape.set_hash);
}

static void every_failed_allocation_in_open_is_enomem_and_leaks_nothing(void **state)
{
	int opened = 0;
	for (long n = 1; n < 100 && !opened; n++) {
		struct pool *p = (struct pool *)&p;
		struct err e = ERR_INIT;
		alloc_fail_at(n, 1);
		int rc = pool_open_private(&p, W123, 3, &e);
		alloc_fail_at(0, 0);
		if (rc == CONVBI_OK) {
			opened = 1;
			assert_int_equal(pick(p, T0), 2);
		} else {
			assert_int_equal(rc, CONVBI_ENOMEM);
			assert_int_equal(e.code, CONVBI_ENOMEM);
			assert_null(p);
		}
		pool_close(p);
	}
	assert_true(opened);
}

static void sixty_four_endpoints_in_many_tiers_work(void **state)
{
	struct pool_ep_cfg many[POOL_MAX_ENDPOINTS];
	char names[POOL_MAX_ENDPOINTS][8];
	for (int i = 0; i < POOL_MAX_ENDPOINTS; i++) {
		snprintf(names[i], sizeof names[i], "e%d", i);
		many[i] = (struct pool_ep_cfg){names[i], NULL, i % 4, 1 + i % 3, 0, 0};
	}
	struct pool *p = open_pool(many, POOL_MAX_ENDPOINTS);
	assert_int_equal(pool_size(p), POOL_MAX_ENDPOINTS);
	assert_string_equal(pool_name(p, 63), "e63");
	assert_null(pool_name(p, 64));
	int n[POOL_MAX_ENDPOINTS] = {0};
	int tier0_weight = 0;
	for (int i = 0; i < POOL_MAX_ENDPOINTS; i += 4)
		tier0_weight += many[i].weight;
	for (int i = 0; i < tier0_weight * 10; i++)
		n[pick(p, T0)]++;
	for (int i = 0; i < POOL_MAX_ENDPOINTS; i++)
		assert_int_equal(n[i], i % 4 == 0 ? 10 * many[i].weight : 0);
	/* everything but endpoint 63 (the last tier) excluded */
	assert_int_equal(pick_full(p, T0, ~(uint64_t)0 >> 1, 0).ep, 63);
	pool_close(p);
}

static void reset_state_forgets_what_was_learned(void **state)
{
	struct pool *p = open_pool(W123, 3);
	report(p, 0, T0, POOL_RATE_LIMITED, 60000);
	for (int i = 0; i < 3; i++)
		report(p, 1, T0, POOL_SERVER, -1);
	pool_reset_state(p);
	struct pool_live lv;
	for (int i = 0; i < 3; i++) {
		pool_live_get(p, i, T0, &lv);
		assert_int_equal(lv.cool_until_ms, 0);
		assert_int_equal(lv.breaker, POOL_BREAKER_CLOSED);
		assert_int_equal(lv.calls, 0);
		assert_int_equal(lv.remaining_requests, -1);
	}
	assert_int_equal(pick(p, T0), 2); /* counters back at the start of the cycle */
	assert_int_equal(pool_live_get(p, 3, T0, &lv), CONVBI_EINVAL);
	assert_string_equal(pool_breaker_name(POOL_BREAKER_HALF_OPEN), "half_open");
	assert_string_equal(pool_breaker_name(42), "?");
	assert_false(pool_is_shared(p));
	assert_null(pool_state_path(p));
	pool_close(p);
}

/* ---- learned quotas (no rpm/tpm configured) ---------------------------------- */

static const struct pool_ep_cfg SOLO[] = {{"solo", "u/solo", 0, 1, 0, 0}};

static struct pool_live live_of(struct pool *p, int ep, int64_t now)
{
	struct pool_live lv;
	assert_int_equal(pool_live_get(p, ep, now, &lv), CONVBI_OK);
	return lv;
}

/* A 429 as the client reports it: for requests or for tokens. */
static void report_429(struct pool *p, int ep, int64_t now, int64_t retry_after_ms, int tokens, int64_t est)
{
	struct pool_outcome o = pool_outcome_of(POOL_RATE_LIMITED);
	o.retry_after_ms = retry_after_ms;
	o.tokens_bound = tokens;
	o.est_tokens = est;
	pool_report(p, ep, now, &o);
}

static void first_cut_is_to_what_the_endpoint_admitted_up_to_the_cooldowns_end(void **state)
{
	struct pool *p = open_pool(SOLO, 1);
	/* 23 sent in 220 ms (nothing paces yet), the last 3 refused: the
	 * service admits 20 a second, and says so by its retry time */
	for (int i = 0; i < 23; i++)
		assert_int_equal(pick(p, T0 + 10 * i), 0);
	for (int i = 0; i < 20; i++)
		report(p, 0, T0 + 300, POOL_OK, -1);
	for (int i = 0; i < 3; i++) /* three processes see the same 429 */
		report_429(p, 0, T0 + 230, 770, 0, 0);
	assert_int_equal(live_of(p, 0, T0 + 999).learned_rpm, 0); /* owed, not made */
	assert_int_equal(pick_full(p, T0 + 999, 0, 0).ep, -1);
	/* the first pick after the cooldown makes the cut: 20 in 1 s -> 1200/min x 0.97 */
	assert_int_equal(pick(p, T0 + 1000), 0);
	struct pool_live lv = live_of(p, 0, T0 + 1000);
	assert_int_equal(lv.learned_rpm, 1164);
	assert_int_equal(lv.learned_rpm_from, POOL_LEARN_429);
	assert_string_equal(pool_learn_from_name(lv.learned_rpm_from), "429");
	assert_int_equal(lv.learned_tpm, 0);
	/* ... and paces at once: the next slot is 60 s / 1164 later */
	struct pool_pick k = pick_full(p, T0 + 1000, 0, 0);
	assert_int_equal(k.ep, -1);
	assert_int_equal(k.wait_ms, 52);
	/* a 429 still in the same episode cuts nothing more */
	report_429(p, 0, T0 + 1500, 100, 0, 0);
	pick_full(p, T0 + 1700, 0, 0);
	assert_int_equal(live_of(p, 0, T0 + 1700).learned_rpm, 1164);
	pool_close(p);
}

/* Callers pressing on an endpoint from t to until: every pick the pacing
 * allows (one each 5 ms at most), each answered at once.  Each change of
 * the learned rate is checked against the gentle climb -- halfway back to
 * the rate of the last cut (max) while that is more than the step, else
 * the step, which then grows by half (by one at least) up to a tenth of
 * the rate; returns the raises. */
static int press_gently(struct pool *p, int64_t t, int64_t until, int64_t *rate, int64_t *step, int64_t max)
{
	int raises = 0;
	while (t < until) {
		t += 5;
		if (pick_full(p, t, 0, 0).ep == 0)
			report(p, 0, t, POOL_OK, -1);
		int64_t now_rate = live_of(p, 0, t).learned_rpm;
		if (now_rate == *rate)
			continue;
		int64_t back = (max - *rate) / POOL_LEARN_BACK_DIV, applied = back > *step ? back : *step;
		assert_int_equal(now_rate, *rate + applied);
		int64_t next = *step * POOL_LEARN_GROW_NUM / POOL_LEARN_GROW_DEN;
		next = next > *step ? next : *step + 1;
		next = next > now_rate / 10 ? now_rate / 10 : next;
		*step = next > *step ? next : *step;
		*rate = now_rate;
		raises++;
	}
	return raises;
}

/* Presses on (as above) from *t until the learned rate moves; returns the
 * new rate, *t the time it moved. */
static int64_t press_until_raised(struct pool *p, int64_t *t)
{
	int64_t was = live_of(p, 0, *t).learned_rpm;
	for (int64_t end = *t + 10000; *t < end;) {
		*t += 5;
		if (pick_full(p, *t, 0, 0).ep == 0)
			report(p, 0, *t, POOL_OK, -1);
		int64_t now_rate = live_of(p, 0, *t).learned_rpm;
		if (now_rate != was)
			return now_rate;
	}
	return was;
}

/* A 429 at *t (a 50 ms cooldown; moved past the last one's episode, as
 * a 429 within it cuts nothing) and the pick after it; the learned rate
 * then. */
static int64_t refused_at(struct pool *p, int64_t *t, int64_t *episode_end)
{
	if (*t < *episode_end)
		*t = *episode_end;
	*episode_end = *t + 50 + POOL_LEARN_EPISODE_MS;
	report_429(p, 0, *t, 50, 0, 0);
	*t += 50;
	assert_int_equal(pick(p, *t), 0);
	return live_of(p, 0, *t).learned_rpm;
}

static void a_first_cut_is_a_floor_probed_by_doubling_steps_then_a_search_then_gently(void **state)
{
	struct pool *p = open_pool(SOLO, 1);
	for (int i = 0; i < 21; i++)
		pick(p, T0 + 10 * i);
	report_429(p, 0, T0 + 210, 790, 0, 0);
	assert_int_equal(pick(p, T0 + 1000), 0);
	assert_int_equal(live_of(p, 0, T0 + 1000).learned_rpm, 1164); /* from 1200 admitted */
	int64_t ep_end = T0 + 2000;
	/* a floor: it rises after about a second of traffic that keeps up
	 * (1164 / 60 = 19 successes) by a tenth, then by steps doubling */
	int64_t t = T0 + 1000;
	assert_int_equal(press_until_raised(p, &t), 1164 + 116);
	assert_true(t - (T0 + 1000) < 1250);
	int64_t t1 = t;
	assert_int_equal(press_until_raised(p, &t), 1280 + 232);
	assert_true(t - t1 < 1250);
	assert_int_equal(press_until_raised(p, &t), 1512 + 464);
	assert_int_equal(press_until_raised(p, &t), 1976 + 928);
	/* a 429: the last step went past the quota -- back before it, the
	 * next step a quarter of it (232, a tenth of the rate or more) */
	assert_int_equal(refused_at(p, &t, &ep_end), 1976);
	assert_int_equal(press_until_raised(p, &t), 1976 + 232);
	/* and again: back, the next step (58) under a tenth of the rate ends
	 * the search; the gentle climb -- steps of 1 % growing by half, a run
	 * of POOL_LEARN_RUN successes -- from there */
	assert_int_equal(refused_at(p, &t, &ep_end), 1976);
	int64_t rate = 1976, step = 1976 / POOL_LEARN_STEP_DIV;
	assert_true(press_gently(p, t, t + 6000, &rate, &step, 1976) >= 3 && rate > 1976);
	/* a 429 now, the traffic at the rate: POOL_LEARN_CUT of the rate */
	t += 6000;
	assert_int_equal(refused_at(p, &t, &ep_end), (int64_t)((double)rate * POOL_LEARN_CUT));
	pool_close(p);
}

/* A 429 while the traffic stayed under half the learned rate (a burst,
 * or an endpoint given little of the traffic) halves the rate -- not to
 * the traffic's rate -- and probes it. */
static void a_429_under_sparse_traffic_halves_the_rate_and_probes_it(void **state)
{
	struct pool *p = open_pool(SOLO, 1);
	for (int i = 0; i < 21; i++)
		pick(p, T0 + 10 * i);
	report_429(p, 0, T0 + 210, 790, 0, 0);
	assert_int_equal(pick(p, T0 + 1000), 0);
	int64_t t = T0 + 1000, ep_end = T0 + 2000;
	assert_int_equal(press_until_raised(p, &t), 1280);
	assert_int_equal(refused_at(p, &t, &ep_end), 1164); /* back before the step: gently from there */
	/* 4 s of 2 calls a second (120/min, a tenth of the rate), then a 429 */
	for (int i = 0; i < 8; i++) {
		t += 500;
		assert_int_equal(pick(p, t), 0);
		report(p, 0, t, POOL_OK, -1);
	}
	int64_t half = (int64_t)((double)(int64_t)(1164 * POOL_LEARN_SPARSE) * POOL_LEARN_CUT);
	assert_int_equal(refused_at(p, &t, &ep_end), half);
	assert_int_equal(press_until_raised(p, &t), half + half / POOL_LEARN_PROBE_DIV);
	pool_close(p);
}

static void a_token_429_cuts_the_learned_tpm_by_the_estimated_tokens_admitted(void **state)
{
	struct pool *p = open_pool(SOLO, 1);
	for (int i = 0; i < 10; i++)
		assert_int_equal(pick_full(p, T0 + 20 * i, 0, 1000).ep, 0);
	report_429(p, 0, T0 + 200, 1800, 1, 1000); /* 9 x 1000 tokens admitted in 2 s */
	assert_int_equal(pick_full(p, T0 + 2000, 0, 1000).ep, 0);
	struct pool_live lv = live_of(p, 0, T0 + 2000);
	assert_int_equal(lv.learned_tpm, 261900); /* 270,000 a minute x 0.97 */
	assert_int_equal(lv.learned_tpm_from, POOL_LEARN_429);
	assert_int_equal(lv.learned_rpm, 0);
	/* paced by tokens: 1000 tokens take 60 s x 1000 / 261900 = 229.1 ms */
	struct pool_pick k = pick_full(p, T0 + 2000, 0, 1000);
	assert_int_equal(k.ep, -1);
	assert_int_equal(k.wait_ms, 230);
	assert_int_equal(pick_full(p, T0 + 2230, 0, 1000).ep, 0);
	pool_close(p);
}

/* A success telling the service's token budget: limit and remaining. */
static void report_budget(struct pool *p, int64_t now, int64_t limit, int64_t remaining)
{
	struct pool_outcome o = pool_outcome_of(POOL_OK);
	o.limit_tokens = limit;
	o.remaining_tokens = remaining;
	pool_report(p, 0, now, &o);
}

/* The token charge (pool.h): what the service holds of its minute over the
 * minute's raw estimates, approached by halves going down, taken at once
 * going up; a request is then counted at estimate x 1.25 x the charge,
 * never above its estimate; a 429 episode measures nothing. */
static void the_token_estimate_follows_the_charge_the_service_reports(void **state)
{
	struct pool *p = open_pool(SOLO, 1);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pick_full(p, T0 + i, 0, 100).est_tokens, 100); /* nothing measured: as estimated */
	report_budget(p, T0 + 10, 6000000, 6000000 - 40);                       /* 40 of 400 estimated: 0.1 */
	assert_true(live_of(p, 0, T0 + 10).token_charge > 0.549 && live_of(p, 0, T0 + 10).token_charge < 0.551);
	report_budget(p, T0 + 11, 6000000, 6000000 - 40);
	report_budget(p, T0 + 12, 6000000, 6000000 - 40);
	double c = live_of(p, 0, T0 + 12).token_charge; /* 1 -> 0.55 -> 0.325 -> 0.2125 */
	assert_true(c > 0.212 && c < 0.213);
	struct pool_pick k = pick_full(p, T0 + 13, 0, 100);
	assert_int_equal(k.est_tokens, 27);                          /* ceil(100 x 1.25 x 0.2125) */
	assert_int_equal(pick_full(p, T0 + 14, 0, 0).est_tokens, 0); /* no estimate: none made up */
	report_budget(p, T0 + 15, 6000000, 6000000 - 600);           /* 600 of 500 estimated: up at once, to 1 at the most */
	assert_true(live_of(p, 0, T0 + 15).token_charge == 1.0);
	assert_int_equal(pick_full(p, T0 + 16, 0, 100).est_tokens, 100);
	report_429(p, 0, T0 + 17, 1000, 1, 100); /* an episode: its refused requests are in the window */
	report_budget(p, T0 + 18, 6000000, 6000000 - 10);
	assert_true(live_of(p, 0, T0 + 18).token_charge == 1.0);
	pool_close(p);
	/* too few requests in the minute to say: nothing measured */
	p = open_pool(SOLO, 1);
	for (int i = 0; i < POOL_CHARGE_MIN_REQ - 1; i++)
		pick_full(p, T0 + i, 0, 100);
	report_budget(p, T0 + 10, 6000000, 6000000 - 10);
	assert_true(live_of(p, 0, T0 + 10).token_charge == 0);
	pool_close(p);
}

static struct pool_pick ahead(struct pool *p, int64_t now)
{
	struct pool_pick k;
	assert_int_equal(pool_pick_ahead(p, now, 0, 0, INT64_MAX, &k), CONVBI_OK);
	return k;
}

/* SOLO learns 1164/min (a slot of 51.5 ms) as in the cases above. */
static struct pool *solo_learned(void)
{
	struct pool *p = open_pool(SOLO, 1);
	for (int i = 0; i < 21; i++)
		pick(p, T0 + 10 * i);
	report_429(p, 0, T0 + 210, 790, 0, 0);
	assert_int_equal(pick(p, T0 + 1000), 0);
	assert_int_equal(live_of(p, 0, T0 + 1000).learned_rpm, 1164);
	return p;
}

static const struct pool_ep_cfg RPM6[] = {{"six", "u/six", 0, 1, 6, 0}}; /* told: one request per 10 s */

/* attack8 N1: a caller whose deadline ends before the next slot took it
 * anyway, so each refused call pushed the next caller's slot 10 s further
 * out (a lone call then failed for 78 minutes).  Now nothing is reserved
 * past latest_ms. */
static void a_slot_past_the_callers_deadline_is_not_reserved(void **state)
{
	(void)state;
	struct pool *p = open_pool(RPM6, 1);
	struct pool_pick k;
	assert_int_equal(pool_pick_ahead(p, T0, 0, 0, T0 + 8000, &k), CONVBI_OK);
	assert_int_equal(k.ep, 0);
	assert_true(k.at_ms <= T0);   /* the first slot is now */
	for (int i = 0; i < 5; i++) { /* five callers whose deadline ends before the next slot */
		assert_int_equal(pool_pick_ahead(p, T0 + 1, 0, 0, T0 + 8000, &k), CONVBI_OK);
		assert_int_equal(k.ep, -1);
		assert_true(k.wait_ms > 8000 && k.wait_ms <= 10500); /* a slot is 10 s and pacing's margin */
	}
	/* they took nothing: a caller that can wait gets the very next slot */
	assert_int_equal(pool_pick_ahead(p, T0 + 1, 0, 0, INT64_MAX, &k), CONVBI_OK);
	assert_int_equal(k.ep, 0);
	assert_true(k.at_ms >= T0 + 9990 && k.at_ms <= T0 + 10500);
	/* attack8 N2: callers that give up waiting (Ctrl-C) give their slots
	 * back, the last first, so the next caller is not queued behind them */
	struct pool_pick w1, w2;
	assert_int_equal(pool_pick_ahead(p, T0 + 2, 0, 0, INT64_MAX, &w1), CONVBI_OK);
	assert_int_equal(pool_pick_ahead(p, T0 + 2, 0, 0, INT64_MAX, &w2), CONVBI_OK);
	assert_true(w1.at_ms > k.at_ms && w2.at_ms > w1.at_ms); /* 20 s and 30 s out */
	pool_abandon(p, &w2);
	pool_abandon(p, &w1);
	pool_abandon(p, &k);
	struct pool_pick n;
	assert_int_equal(pool_pick_ahead(p, T0 + 3, 0, 0, INT64_MAX, &n), CONVBI_OK);
	assert_int_equal(n.ep, 0);
	assert_true(n.at_ms >= T0 + 9990 && n.at_ms <= T0 + 10500); /* the first free slot again, not 40 s out */
	pool_abandon(p, &n);
	pool_close(p);
}

static void paced_callers_reserve_the_next_slots_instead_of_polling(void **state)
{
	struct pool *p = solo_learned();
	assert_int_equal(pick_full(p, T0 + 1001, 0, 0).ep, -1); /* pool_pick: wait */
	int64_t prev = T0 + 1000;
	for (int i = 0; i < 5; i++) { /* five callers at one instant: five slots, 51.5 ms apart */
		struct pool_pick k = ahead(p, T0 + 1001);
		assert_int_equal(k.ep, 0);
		assert_true(k.at_ms - prev >= 51 && k.at_ms - prev <= 52);
		assert_true(pool_confirm(p, &k, k.at_ms));
		prev = k.at_ms;
	}
	/* a caller woken 30 ms late moves the slots not handed out yet by as
	 * much: the next reservation starts 30 ms later than it would have */
	struct pool_pick a = ahead(p, T0 + 1001), b = ahead(p, T0 + 1001);
	assert_true(pool_confirm(p, &a, a.at_ms + 30));
	struct pool_pick c = ahead(p, T0 + 1001);
	assert_true(c.at_ms - b.at_ms >= 51 + 30 && c.at_ms - b.at_ms <= 52 + 30);
	assert_true(pool_confirm(p, &b, b.at_ms) && pool_confirm(p, &c, c.at_ms));
	/* a cooldown voids what was reserved before it, even once it is over */
	struct pool_pick late = ahead(p, T0 + 1001);
	report(p, 0, T0 + 1010, POOL_RATE_LIMITED, 100);
	assert_false(pool_confirm(p, &late, late.at_ms));
	pool_abandon(p, &late);
	/* and the queue starts over from the cooldown's end */
	struct pool_pick k = ahead(p, T0 + 1020);
	assert_int_equal(k.ep, -1); /* cooling: nothing to reserve */
	k = ahead(p, T0 + 1110);
	assert_int_equal(k.ep, 0);
	assert_true(k.at_ms >= T0 + 1110 && k.at_ms <= T0 + 1162);
	assert_true(pool_confirm(p, &k, k.at_ms));
	pool_close(p);
}

static void ok_in(struct pool *p, int ep, int64_t now, int64_t latency_ms)
{
	struct pool_outcome o = pool_outcome_of(POOL_OK);
	o.latency_ms = latency_ms;
	pool_report(p, ep, now, &o);
}

static void quick_endpoints_go_first_and_a_slow_one_takes_what_they_cannot_soon(void **state)
{
	static const struct pool_ep_cfg PAIR[] = {{"quick", "u/quick", 0, 1, 600, 0}, {"slow", "u/slow", 0, 1, 0, 0}};
	struct pool *p = open_pool(PAIR, 2);
	ok_in(p, 0, T0, 150);
	ok_in(p, 1, T0, 750); /* 5x slower */
	assert_int_equal(live_of(p, 1, T0).latency_ms, 750);
	/* round-robin would alternate; the quick one takes every call it can */
	struct pool_pick k = ahead(p, T0 + 1);
	assert_int_equal(k.ep, 0);
	assert_int_equal(k.at_ms, T0 + 1);
	/* paced at 600/min (102 ms a slot, with the margin): its next slot is
	 * near, worth a short wait */
	k = ahead(p, T0 + 2);
	assert_int_equal(k.ep, 0);
	assert_true(k.at_ms > T0 + 2 && k.at_ms <= T0 + 1 + 103);
	/* the one after is not: the slow one, free now, takes the call */
	k = ahead(p, T0 + 3);
	assert_int_equal(k.ep, 1);
	assert_int_equal(k.at_ms, T0 + 3);
	/* pool_pick never reserves: the slow one, free now */
	assert_int_equal(pick(p, T0 + 4), 1);
	/* a latency not refreshed for POOL_LAT_STALE_MS is unknown: the slow
	 * one gets its turn again and is measured anew */
	int64_t later = T0 + POOL_LAT_STALE_MS + 1000;
	ok_in(p, 0, later, 150);
	int slow = 0;
	for (int i = 0; i < 4; i++)
		slow += pick(p, later + 1000 * i) == 1;
	assert_true(slow >= 1);
	pool_close(p);
}

static void callers_waiting_for_a_cooldown_go_one_paced_slot_at_a_time(void **state)
{
	struct pool *p = open_pool(SOLO, 1);
	for (int i = 0; i < 21; i++)
		pick(p, T0 + 10 * i);
	report_429(p, 0, T0 + 210, 790, 0, 0);
	assert_int_equal(pick(p, T0 + 1000), 0); /* learned 1164/min: a slot is 51.5 ms */
	report_429(p, 0, T0 + 3000, 2000, 0, 0); /* another episode, cooling till +5000 */
	int64_t rate = live_of(p, 0, T0 + 5000).learned_rpm;
	/* everyone waiting wakes at the cooldown's end: one goes, then one a slot */
	int went = 0;
	for (int i = 0; i < 16; i++)
		went += pick_full(p, T0 + 5000, 0, 0).ep == 0;
	assert_int_equal(went, 1);
	rate = live_of(p, 0, T0 + 5000).learned_rpm;
	int64_t slot = 60000 / rate;
	went = 0;
	for (int64_t t = T0 + 5001; t <= T0 + 5000 + 10 * slot; t++)
		went += pick_full(p, t, 0, 0).ep == 0;
	assert_true(went >= 9 && went <= 11);
	pool_close(p);
}

static void configured_rates_are_never_learned_or_changed(void **state)
{
	const struct pool_ep_cfg eps[] = {{"fixed", "u/fixed", 0, 1, 600, 60000}};
	struct pool *p = open_pool(eps, 1);
	for (int i = 0; i < 5; i++)
		pick_full(p, T0 + 200 * i, 0, 100);
	report_429(p, 0, T0 + 1000, 100, 0, 100);
	report_429(p, 0, T0 + 1000, 100, 1, 100);
	struct pool_outcome o = pool_outcome_of(POOL_OK);
	o.limit_tokens = 5000;
	o.limit_requests = 5;
	o.reset_requests_ms = 1000;
	pool_report(p, 0, T0 + 1100, &o);
	pick_full(p, T0 + 1200, 0, 100);
	struct pool_live lv = live_of(p, 0, T0 + 1200);
	assert_int_equal(lv.learned_rpm, 0);
	assert_int_equal(lv.learned_tpm, 0);
	assert_int_equal(lv.learned_rpm_from, POOL_LEARN_NONE);
	/* still paced by the configuration: 100 ms a request */
	assert_int_equal(pick_full(p, T0 + 2000, 0, 1).ep, 0);
	assert_int_equal(pick_full(p, T0 + 2050, 0, 1).ep, -1);
	pool_close(p);
}

static void rate_limit_headers_seed_the_learned_rates(void **state)
{
	struct pool *p = open_pool(W123, 3);
	struct pool_outcome o = pool_outcome_of(POOL_OK);
	/* Azure's form: a token limit per minute, a request limit over an
	 * unsaid window (not a per-minute figure: ignored) */
	o.limit_tokens = 90000;
	o.limit_requests = 5;
	pool_report(p, 0, T0, &o);
	struct pool_live lv = live_of(p, 0, T0);
	assert_int_equal(lv.learned_tpm, 90000);
	assert_int_equal(lv.learned_tpm_from, POOL_LEARN_HEADER);
	assert_string_equal(pool_learn_from_name(lv.learned_tpm_from), "header");
	assert_int_equal(lv.learned_rpm, 0);
	/* OpenAI's: a request limit with its reset time is per minute */
	o = pool_outcome_of(POOL_OK);
	o.limit_requests = 600;
	o.remaining_requests = 599;
	o.reset_requests_ms = 100;
	pool_report(p, 1, T0, &o);
	assert_int_equal(live_of(p, 1, T0).learned_rpm, 600);
	/* no limit, but a remaining count with its reset: a bucket of L a
	 * minute with 50 left is full in 30 s when L = 100 */
	o = pool_outcome_of(POOL_OK);
	o.remaining_requests = 50;
	o.reset_requests_ms = 30000;
	o.remaining_tokens = 1000;
	o.reset_tokens_ms = 40000;
	pool_report(p, 2, T0, &o);
	lv = live_of(p, 2, T0);
	assert_int_equal(lv.learned_rpm, 100);
	assert_int_equal(lv.learned_tpm, 3000);
	assert_int_equal(lv.learned_rpm_from, POOL_LEARN_HEADER);
	/* a rate learned from 429s is lowered by an announcement, never raised */
	for (int i = 0; i < 21; i++)
		pick_full(p, T0 + 10 * i, 3u << 1, 0);
	report_429(p, 0, T0 + 210, 790, 0, 0);
	pick_full(p, T0 + 1000, 3u << 1, 0);
	assert_int_equal(live_of(p, 0, T0 + 1000).learned_rpm, 1164);
	o = pool_outcome_of(POOL_OK);
	o.limit_requests = 6000;
	o.reset_requests_ms = 100;
	pool_report(p, 0, T0 + 1001, &o);
	assert_int_equal(live_of(p, 0, T0 + 1001).learned_rpm, 1164);
	o.limit_requests = 900;
	pool_report(p, 0, T0 + 1002, &o);
	assert_int_equal(live_of(p, 0, T0 + 1002).learned_rpm, 900);
	pool_close(p);
}

static void a_spent_budget_holds_back_only_an_endpoint_whose_rate_429s_did_not_teach(void **state)
{
	struct pool *p = open_pool(W123, 2);
	for (int i = 0; i < 21; i++)
		pick_full(p, T0 + 10 * i, 1u << 1, 0);
	report_429(p, 0, T0 + 210, 790, 0, 0);
	pick_full(p, T0 + 1000, 1u << 1, 0);
	assert_int_equal(live_of(p, 0, T0 + 1000).learned_rpm, 1164);
	struct pool_outcome o = pool_outcome_of(POOL_OK);
	o.remaining_requests = 0; /* no reset time: the default applies */
	pool_report(p, 0, T0 + 2000, &o);
	pool_report(p, 1, T0 + 2000, &o);
	/* a (learned) goes by its pacing; b (nothing learned) waits for the budget */
	assert_int_equal(pick_full(p, T0 + 2001, 1u << 1, 0).ep, 0);
	struct pool_pick k = pick_full(p, T0 + 2001, 1u << 0, 0);
	assert_int_equal(k.ep, -1);
	assert_int_equal(k.wait_ms, POOL_BUDGET_RESET_DEFAULT_MS - 1);
	pool_close(p);
}

static void an_auth_cooldown_holds_back_only_the_key_it_was_for(void **state)
{
	struct pool *p = open_pool(SOLO, 1);
	pool_set_key(p, 0, "k-right", 7);
	uint64_t right = pool_key_fp(p, 0);
	pool_set_key(p, 0, "k-wrong", 7);
	uint64_t wrong = pool_key_fp(p, 0);
	assert_true(wrong != right && wrong != 0 && right != 0);
	assert_true(pool_key_fp(p, 0) == wrong); /* the same key, the same fingerprint */
	struct pool_outcome o = pool_outcome_of(POOL_BROKEN);
	o.auth = 1;
	pool_report(p, 0, T0, &o);
	struct pool_pick k = pick_full(p, T0 + 1000, 0, 0);
	assert_int_equal(k.ep, -1);
	assert_int_equal(k.wait_ms, POOL_BROKEN_COOL_MS - 1000);
	assert_false(live_of(p, 0, T0 + 1000).key_fp_other);
	/* the fixed key (another process's, as far as the state can tell) goes */
	pool_set_key(p, 0, "k-right", 7);
	assert_true(live_of(p, 0, T0 + 1000).key_fp_other);
	assert_int_equal(pick(p, T0 + 1000), 0);
	report(p, 0, T0 + 1100, POOL_OK, -1); /* and its success ends the cooldown for all */
	pool_set_key(p, 0, "k-wrong", 7);
	assert_int_equal(live_of(p, 0, T0 + 1100).cool_until_ms, 0);
	/* a missing deployment (404) holds back every key */
	pool_report(p, 0, T0 + 2000,
	            &(struct pool_outcome){.cls = POOL_BROKEN,
	                                   .retry_after_ms = -1,
	                                   .remaining_requests = -1,
	                                   .remaining_tokens = -1,
	                                   .reset_requests_ms = -1,
	                                   .reset_tokens_ms = -1,
	                                   .limit_requests = -1,
	                                   .limit_tokens = -1});
	pool_set_key(p, 0, "k-right", 7);
	assert_int_equal(pick_full(p, T0 + 2001, 0, 0).ep, -1);
	pool_close(p);
}

/* The fingerprint as pool.h defines it, made here from the parts. */
static uint64_t expected_fp(struct pool *p, const char *identity, const char *key)
{
	unsigned char secret[STATE_SECRET_LEN], id[SHA256_DIGEST_LENGTH], mac[EVP_MAX_MD_SIZE], in[256];
	unsigned len = 0;
	size_t n = strlen(identity) + 1;
	memcpy(in, identity, n);
	memcpy(in + n, key, strlen(key));
	SHA256(in, n + strlen(key), id);
	pool_state(p)->ops->secret(pool_state(p), secret);
	assert_non_null(HMAC(EVP_sha256(), secret, (int)sizeof secret, id, sizeof id, mac, &len));
	uint64_t fp = 0;
	for (int i = 0; i < 8; i++)
		fp = fp << 8 | mac[i];
	return fp & ~((uint64_t)1 << 63);
}

static int file_holds(const char *path, const void *needle, size_t n)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	static unsigned char buf[1 << 16];
	size_t got = fread(buf, 1, sizeof buf, f);
	fclose(f);
	return got >= n && memmem(buf, got, needle, n) != NULL;
}

static void the_key_fingerprint_is_an_hmac_keyed_by_the_state_secret_and_no_key_reaches_the_file(void **state)
{
	char a[512], b[512];
	snprintf(a, sizeof a, "%s/pool-fp-%ld-a.state", SCRATCH_DIR, (long)getpid());
	snprintf(b, sizeof b, "%s/pool-fp-%ld-b.state", SCRATCH_DIR, (long)getpid());
	unlink(a);
	unlink(b);
	struct pool *p1 = NULL, *p2 = NULL, *q = NULL;
	struct err e = ERR_INIT;
	assert_int_equal(pool_open(&p1, SOLO, 1, a, &e), CONVBI_OK);
	assert_int_equal(pool_open(&p2, SOLO, 1, a, &e), CONVBI_OK); /* another process, as far as the state knows */
	assert_int_equal(pool_open(&q, SOLO, 1, b, &e), CONVBI_OK);  /* another state */
	assert_int_equal(pool_key_fp(p1, 0), 0);                     /* no key yet */
	pool_set_key(p1, 0, "k-fp-secret-1", 13);
	pool_set_key(p2, 0, "k-fp-secret-1", 13);
	pool_set_key(q, 0, "k-fp-secret-1", 13);
	uint64_t fp = pool_key_fp(p1, 0);
	assert_true(fp == expected_fp(p1, "u/solo", "k-fp-secret-1")); /* HMAC-SHA256 under the state's secret */
	assert_true(pool_key_fp(p2, 0) == fp);                         /* one state: one fingerprint */
	assert_true(pool_key_fp(q, 0) != fp);                          /* another state's secret: another one */
	pool_set_key(p2, 0, "k-fp-secret-2", 13);
	assert_true(pool_key_fp(p2, 0) != fp); /* another key */
	unsigned char s1[STATE_SECRET_LEN], s2[STATE_SECRET_LEN], zero[STATE_SECRET_LEN] = {0};
	pool_state(p1)->ops->secret(pool_state(p1), s1);
	pool_state(q)->ops->secret(pool_state(q), s2);
	assert_true(memcmp(s1, s2, sizeof s1) != 0 && memcmp(s1, zero, sizeof s1) != 0);

	/* an auth refusal keeps the fingerprint, never the key */
	struct pool_outcome o = pool_outcome_of(POOL_BROKEN);
	o.auth = 1;
	pool_report(p1, 0, T0, &o);
	assert_true(live_of(p2, 0, T0 + 1).key_fp_other); /* p2's key differs now */
	assert_false(live_of(p1, 0, T0 + 1).key_fp_other);
	assert_false(file_holds(a, "k-fp-secret", 11));
	unsigned char id[SHA256_DIGEST_LENGTH];
	char in[32];
	memcpy(in, "u/solo\0k-fp-secret-1", 20);
	SHA256((unsigned char *)in, 20, id);
	assert_false(file_holds(a, id, sizeof id)); /* nor its plain digest */
	/* whatever a fingerprint field holds (an older convbi's hash, noise),
	 * it only ever means "another key" */
	pool_state(p1)->ops->store(pool_state(p1), 0, STATE_KEY_FP, 0x0123456789abcdefLL);
	assert_true(live_of(p1, 0, T0 + 2).key_fp_other);
	assert_int_equal(pick(p1, T0 + 2), 0);
	pool_close(p1);
	pool_close(p2);
	pool_close(q);
	unlink(a);
	unlink(b);
}

static void reset_endpoint_clears_that_endpoint_alone(void **state)
{
	struct pool *p = open_pool(W123, 2);
	for (int i = 0; i < 21; i++)
		pick_full(p, T0 + 10 * i, 1u << 1, 0);
	report_429(p, 0, T0 + 210, 790, 0, 0);
	pick_full(p, T0 + 1000, 1u << 1, 0);
	report_429(p, 0, T0 + 3000, 60000, 0, 0);
	report(p, 1, T0 + 3000, POOL_BROKEN, -1);
	assert_int_equal(pool_reset_endpoint(p, 0), CONVBI_OK);
	struct pool_live a = live_of(p, 0, T0 + 3001), b = live_of(p, 1, T0 + 3001);
	assert_int_equal(a.cool_until_ms, 0);
	assert_int_equal(a.learned_rpm, 0);
	assert_int_equal(a.learned_rpm_from, POOL_LEARN_NONE);
	assert_int_equal(a.calls, 0);
	assert_int_equal(b.cool_class, POOL_BROKEN);
	assert_true(b.cool_until_ms > T0 + 3001);
	assert_int_equal(pick(p, T0 + 3001), 0);
	assert_int_equal(pool_reset_endpoint(p, 2), CONVBI_EINVAL);
	assert_int_equal(pool_reset_endpoint(p, -1), CONVBI_EINVAL);
	pool_close(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(wrr_cycle_of_weights_1_2_3_is_smooth_and_exact),
	        cmocka_unit_test(wrr_walk_skips_unusable_to_the_next_in_the_cycle),
	        cmocka_unit_test(judge_reads_each_blocker_from_a_snapshot),
	        cmocka_unit_test(judge_tells_open_half_open_and_busy_probe_apart),
	        cmocka_unit_test(fallback_prefers_breaker_opening_soonest_then_oldest_failure),
	        cmocka_unit_test(wait_is_the_earliest_ready_endpoint_and_never_zero),
	        cmocka_unit_test(weights_1_2_3_get_exactly_their_share_of_every_cycle),
	        cmocka_unit_test(first_tier_is_used_while_any_of_it_is_usable),
	        cmocka_unit_test(cooling_endpoint_is_skipped_until_retry_after_passes),
	        cmocka_unit_test(cooldown_only_ever_grows),
	        cmocka_unit_test(bare_429s_cool_for_one_second_doubling_to_thirty),
	        cmocka_unit_test(daily_quota_429_takes_out_that_endpoint_only),
	        cmocka_unit_test(exclude_mask_is_honoured_and_all_excluded_is_no_endpoint),
	        cmocka_unit_test(everything_cooling_gives_the_wait_for_the_earliest),
	        cmocka_unit_test(three_failures_open_the_breaker_and_a_probe_closes_it),
	        cmocka_unit_test(failed_probes_double_the_pause_up_to_thirty_seconds),
	        cmocka_unit_test(a_success_resets_the_failure_count),
	        cmocka_unit_test(probe_slot_frees_itself_after_the_probe_timeout),
	        cmocka_unit_test(partial_outage_still_offers_the_breaker_opening_soonest),
	        cmocka_unit_test(partial_outage_rule_waits_for_a_healthy_endpoint_that_frees_soon),
	        cmocka_unit_test(rpm_paces_requests_evenly_across_the_minute),
	        cmocka_unit_test(tpm_paces_by_estimated_tokens),
	        cmocka_unit_test(server_budget_blocks_until_its_reset),
	        cmocka_unit_test(broken_endpoint_is_out_for_five_minutes),
	        cmocka_unit_test(client_errors_and_probes_that_are_not_failures_leave_health_alone),
	        cmocka_unit_test(open_checks_the_endpoints),
	        cmocka_unit_test(open_state_adopts_the_state_and_checks_its_shape),
	        cmocka_unit_test(every_failed_allocation_in_open_is_enomem_and_leaks_nothing),
	        cmocka_unit_test(sixty_four_endpoints_in_many_tiers_work),
	        cmocka_unit_test(reset_state_forgets_what_was_learned),
	        cmocka_unit_test(first_cut_is_to_what_the_endpoint_admitted_up_to_the_cooldowns_end),
	        cmocka_unit_test(a_first_cut_is_a_floor_probed_by_doubling_steps_then_a_search_then_gently),
	        cmocka_unit_test(a_429_under_sparse_traffic_halves_the_rate_and_probes_it),
	        cmocka_unit_test(a_token_429_cuts_the_learned_tpm_by_the_estimated_tokens_admitted),
	        cmocka_unit_test(the_token_estimate_follows_the_charge_the_service_reports),
	        cmocka_unit_test(callers_waiting_for_a_cooldown_go_one_paced_slot_at_a_time),
	        cmocka_unit_test(configured_rates_are_never_learned_or_changed),
	        cmocka_unit_test(rate_limit_headers_seed_the_learned_rates),
	        cmocka_unit_test(a_spent_budget_holds_back_only_an_endpoint_whose_rate_429s_did_not_teach),
	        cmocka_unit_test(paced_callers_reserve_the_next_slots_instead_of_polling),
	        cmocka_unit_test(a_slot_past_the_callers_deadline_is_not_reserved),
	        cmocka_unit_test(quick_endpoints_go_first_and_a_slow_one_takes_what_they_cannot_soon),
	        cmocka_unit_test(an_auth_cooldown_holds_back_only_the_key_it_was_for),
	        cmocka_unit_test(the_key_fingerprint_is_an_hmac_keyed_by_the_state_secret_and_no_key_reaches_the_file),
	        cmocka_unit_test(reset_endpoint_clears_that_endpoint_alone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
