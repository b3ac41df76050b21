/* test_pool_renew.c -- a state file rebuilt under running processes keeps
 * what limits their pacing (attack6 F8).
 *
 * A file removed, cut or replaced while processes use it is rebuilt (or
 * reopened) by the next of them to look; it starts with nothing learned.
 * A process that saw learned rates puts them back, so the callers stay
 * paced -- and out of an endpoint that is cooling -- instead of bursting
 * and having the burst taken for the quota; an
 * operator's reset is not a rebuild, and what it clears stays cleared.
 * Real files under SCRATCH_DIR; times stepped by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "convbi/convbi.h"
#include "llm/pool.h"
#include "llm/state.h"
#include "util/log.h"

#ifndef SCRATCH_DIR
#define SCRATCH_DIR "/tmp"
#endif

#define T0 ((int64_t)1700000000000)

static const struct pool_ep_cfg EPS[] = {
        {"a", "http://a.example|d|", 0, 1, 0, 0},
        {"b", "http://b.example|d|", 0, 1, 0, 0},
};

static void quiet(int level, const char *line, void *payload)
{
	(void)level;
	(void)line;
	(*(int *)payload)++;
}

static struct pool *open_at(const char *path)
{
	struct pool *p = NULL;
	struct err err = ERR_INIT;
	if (pool_open(&p, EPS, 2, path, &err))
		fail_msg("pool_open: %s", err.msg);
	assert_true(pool_is_shared(p));
	return p;
}

/* A pick and its success at now_ms; the endpoint picked. */
static int pick_ok(struct pool *p, int64_t now_ms)
{
	struct pool_pick pk;
	assert_int_equal(pool_pick(p, now_ms, 0, 100, &pk), CONVBI_OK);
	if (pk.ep >= 0) {
		struct pool_outcome o = pool_outcome_of(POOL_OK);
		pool_report(p, pk.ep, now_ms, &o);
	}
	return pk.ep;
}

static int64_t learned_rpm(struct pool *p, int ep, int64_t now_ms, int *from)
{
	struct pool_live lv;
	assert_int_equal(pool_live_get(p, ep, now_ms, &lv), CONVBI_OK);
	if (from)
		*from = lv.learned_rpm_from;
	return lv.learned_rpm;
}

static void a_rebuilt_state_file_gets_back_the_rates_its_processes_learned(void **state)
{
	(void)state;
	char path[600];
	int warnings = 0;
	snprintf(path, sizeof path, "%s/renew-%d.state", SCRATCH_DIR, (int)getpid());
	unlink(path);
	log_set_sink(quiet, &warnings, LOG_WARN);
	struct pool *p = open_at(path);
	struct state *st = pool_state(p);
	/* what 429s taught: a paces at 600 rpm, b at 30 (its step and last cut too) */
	st->ops->store(st, 0, STATE_LEARN_RPM, 600);
	st->ops->store(st, 1, STATE_LEARN_RPM, 30);
	for (unsigned ep = 0; ep < 2; ep++) {
		st->ops->store(st, ep, STATE_LEARN_FROM, POOL_LEARN_429);
		st->ops->store(st, ep, STATE_LEARN_STEP, 6);
		st->ops->store(st, ep, STATE_LEARN_MAX, 620);
	}
	struct pool_outcome limited = pool_outcome_of(POOL_RATE_LIMITED);
	limited.retry_after_ms = 60000; /* and b is out for the service's minute */
	pool_report(p, 1, T0, &limited);
	assert_int_equal(pick_ok(p, T0), 0); /* this process sees them */

	/* the file is removed under it: the next look (a second on) makes it again */
	assert_int_equal(unlink(path), 0);
	assert_true(pick_ok(p, T0 + 1500) >= 0);
	assert_int_equal(warnings, 1); /* "... created it again" */
	assert_int_equal(access(path, F_OK), 0);
	int from = 0;
	assert_int_equal(learned_rpm(p, 0, T0 + 1500, &from), 600);
	assert_int_equal(from, POOL_LEARN_429);
	assert_int_equal(learned_rpm(p, 1, T0 + 1500, NULL), 30);
	assert_int_equal(st->ops->get(st, 0, STATE_LEARN_STEP), 6);
	struct pool_live lv;
	assert_int_equal(pool_live_get(p, 1, T0 + 1500, &lv), CONVBI_OK);
	assert_int_equal(lv.cool_until_ms, T0 + 60000);
	assert_int_equal(lv.cool_class, POOL_RATE_LIMITED);

	/* and a process that opens the new file finds them there */
	struct pool *q = open_at(path);
	assert_int_equal(learned_rpm(q, 0, T0 + 1600, NULL), 600);

	/* what an operator's reset clears stays cleared */
	assert_int_equal(pool_reset_endpoint(q, 0), CONVBI_OK);
	assert_true(pick_ok(p, T0 + 1700) >= 0);
	assert_true(pick_ok(p, T0 + 3000) >= 0);
	assert_int_equal(learned_rpm(p, 0, T0 + 3000, NULL), 0);
	assert_int_equal(learned_rpm(p, 1, T0 + 3000, NULL), 30);
	pool_close(q);
	pool_close(p);
	log_set_sink(NULL, NULL, LOG_WARN);
	unlink(path);
}

/* The first cut is owed for the whole cooldown and measured over it: a
 * rebuild meanwhile keeps it owed, and it is made from what the endpoint
 * admitted since its measurement began, not from the rebuilt file's burst. */
static void a_cut_owed_when_the_file_is_rebuilt_is_still_made_from_its_measurement(void **state)
{
	(void)state;
	char path[600];
	int warnings = 0;
	snprintf(path, sizeof path, "%s/renew-owed-%d.state", SCRATCH_DIR, (int)getpid());
	unlink(path);
	log_set_sink(quiet, &warnings, LOG_WARN);
	struct pool *p = open_at(path);
	struct state *st = pool_state(p);
	/* 120 requests admitted by a from T0 on, then a 429 asking for the rest of the minute */
	assert_int_equal(pick_ok(p, T0), 0);
	st->ops->add(st, 0, STATE_ADM, 119);
	struct pool_outcome limited = pool_outcome_of(POOL_RATE_LIMITED);
	limited.retry_after_ms = 53000;
	pool_report(p, 0, T0 + 7000, &limited);
	assert_int_equal(pick_ok(p, T0 + 7100), 1); /* sees the cut owed */

	assert_int_equal(unlink(path), 0);
	assert_int_equal(pick_ok(p, T0 + 9000), 1); /* makes the file again */
	assert_int_equal(warnings, 1);
	/* another process bursts into the new file when the cooldown ends */
	struct pool *q = open_at(path);
	assert_true(pick_ok(q, T0 + 60000) >= 0);
	int from = 0;
	int64_t rpm = learned_rpm(q, 0, T0 + 60000, &from);
	print_message("# learned after the rebuild: %lld rpm (the endpoint admitted 120 in the minute)\n", (long long)rpm);
	assert_int_equal(from, POOL_LEARN_429);
	assert_in_range(rpm, 100, 125);
	pool_close(q);

	/* a cut seen owed long before a rebuild is not made again from it */
	pool_report(p, 0, T0 + 61000, &limited); /* owed until T0 + 114000 */
	assert_true(pick_ok(p, T0 + 61100) >= 0);
	assert_true(st->ops->get(st, 0, STATE_LEARN_PEND) != 0);
	rpm = learned_rpm(p, 0, T0 + 61100, NULL);
	assert_int_equal(unlink(path), 0);
	assert_true(pick_ok(p, T0 + 114000 + 60000) >= 0);
	assert_int_equal(warnings, 2);
	assert_int_equal(st->ops->get(st, 0, STATE_LEARN_PEND), 0);
	assert_int_equal(learned_rpm(p, 0, T0 + 174000, NULL), rpm); /* put back, and not cut again */
	pool_close(p);
	log_set_sink(NULL, NULL, LOG_WARN);
	unlink(path);
}

/* attack8 F8: the file removed under running processes and created again
 * by one that started after -- which knows nothing and takes its burst
 * for the quota -- before any running one looked.  Each running process
 * puts back what it knew when it looks or leaves (a call may sleep
 * seconds for its paced slot, then go): the first seeds the file, and a
 * rate there already is only lowered -- never above what any of them knew. */
static void a_file_created_again_by_a_newcomer_gets_what_the_running_processes_knew(void **state)
{
	(void)state;
	char path[600];
	int warnings = 0;
	snprintf(path, sizeof path, "%s/renew-new-%d.state", SCRATCH_DIR, (int)getpid());
	unlink(path);
	log_set_sink(quiet, &warnings, LOG_WARN);
	struct pool *p = open_at(path), *p2 = open_at(path);
	struct state *st = pool_state(p);
	st->ops->store(st, 0, STATE_LEARN_RPM, 600);
	st->ops->store(st, 1, STATE_LEARN_RPM, 30);
	st->ops->store(st, 0, STATE_LEARN_FROM, POOL_LEARN_429);
	st->ops->store(st, 0, STATE_LEARN_STEP, 6);
	assert_true(pick_ok(p, T0) >= 0); /* p knows 600 */
	st->ops->store(st, 0, STATE_LEARN_RPM, 500);
	assert_true(pick_ok(p2, T0 + 10) >= 0); /* p2 knows 500, after a cut */

	assert_int_equal(unlink(path), 0);
	struct pool *q = open_at(path); /* the newcomer makes a fresh file, silently */
	assert_int_equal(warnings, 0);
	assert_int_equal(learned_rpm(q, 0, T0 + 100, NULL), 0);
	struct state *qs = pool_state(q);
	qs->ops->store(qs, 0, STATE_LEARN_RPM, 1200); /* what its burst taught it */

	pool_leave(p, T0 + 200);       /* 200 ms after its last look: it looks again as it goes */
	assert_int_equal(warnings, 1); /* "... reopened it" */
	int from = 0;
	assert_int_equal(learned_rpm(q, 0, T0 + 300, &from), 600);
	assert_int_equal(from, POOL_LEARN_429);
	assert_int_equal(learned_rpm(q, 1, T0 + 300, NULL), 30);
	assert_int_equal(qs->ops->get(qs, 0, STATE_LEARN_STEP), 6);
	pool_leave(p2, T0 + 300); /* knew less: lowers it */
	assert_int_equal(learned_rpm(q, 0, T0 + 400, NULL), 500);
	assert_int_equal(learned_rpm(q, 1, T0 + 400, NULL), 30);
	pool_close(p);
	pool_close(p2);

	/* a process that leaves with nothing renewed changes nothing */
	struct pool *r = open_at(path);
	assert_true(pick_ok(r, T0 + 500) >= 0);
	qs->ops->store(qs, 0, STATE_LEARN_RPM, 540); /* learned since */
	pool_leave(r, T0 + 600);
	assert_int_equal(learned_rpm(q, 0, T0 + 700, NULL), 540);
	assert_int_equal(warnings, 2); /* p's and p2's "reopened it" */
	pool_close(r);
	pool_close(q);
	log_set_sink(NULL, NULL, LOG_WARN);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(a_rebuilt_state_file_gets_back_the_rates_its_processes_learned),
	        cmocka_unit_test(a_cut_owed_when_the_file_is_rebuilt_is_still_made_from_its_measurement),
	        cmocka_unit_test(a_file_created_again_by_a_newcomer_gets_what_the_running_processes_knew),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
