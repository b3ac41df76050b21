/* budget.c -- call costs and shared budgets (see budget.h).
 *
 * The counters and their atomic check-and-add are the state's
 * (state_ops.spend_add); this file decides which counters a call holds,
 * undoes a partial reservation when a later cap refuses, and says which
 * budget refused in words.  Order of reservation: the set's day, the set's
 * month, the endpoint's day, the endpoint's month -- so a refusal by the
 * configuration's budget, which fails the call, is found before an
 * endpoint's, which only skips the endpoint.
 */
#include "llm/budget.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int64_t nonneg(int64_t v)
{
	return v > 0 ? v : 0;
}

int64_t budget_uusd(double usd)
{
	return usd > 0 ? (int64_t)llround(usd * 1e6) : 0;
}

double budget_cost_usd(const struct price_cfg *p, int64_t prompt, int64_t cached, int64_t completion)
{
	if (!p->set || p->reserved)
		return 0;
	prompt = nonneg(prompt);
	cached = nonneg(cached) < prompt ? nonneg(cached) : prompt;
	return ((double)(prompt - cached) * p->input + (double)cached * p->cached_input +
	        (double)nonneg(completion) * p->output) /
	       1e6;
}

int64_t budget_estimate_uusd(const struct price_cfg *p, int64_t prompt_tokens, int64_t completion_tokens)
{
	if (!p->set || p->reserved)
		return 0;
	if (completion_tokens <= 0)
		completion_tokens = BUDGET_DEFAULT_COMPLETION;
	/* USD per million tokens is micro-USD per token */
	return (int64_t)ceil((double)nonneg(prompt_tokens) * p->input + (double)completion_tokens * p->output);
}

int64_t budget_scale_next(int64_t scale, int64_t est_uusd, int64_t actual_uusd)
{
	if (est_uusd <= 0 || actual_uusd <= 0)
		return scale;
	int64_t r = actual_uusd * BUDGET_SCALE_ONE / est_uusd;
	r = r < BUDGET_SCALE_ONE ? BUDGET_SCALE_ONE : r > BUDGET_SCALE_MAX ? BUDGET_SCALE_MAX : r;
	return r >= scale ? r : (scale * 7 + r) / 8;
}

static const struct budget_cfg *cap_of(const struct llm_config *cfg, int scope, int ep)
{
	return scope == 0 ? &cfg->budget : &cfg->eps[ep].budget;
}

static int64_t limit_of(const struct budget_cfg *b, int which)
{
	return which == STATE_SPEND_DAY ? b->daily_uusd : b->monthly_uusd;
}

static unsigned slot_of(int scope, int ep)
{
	return scope == 0 ? STATE_SET_SLOT : (unsigned)ep;
}

int budget_reserve(struct budget_hold *out, struct budget_refusal *why, struct state *st, const struct llm_config *cfg, int ep,
                   int64_t now_ms, int64_t amount_uusd)
{
	memset(out, 0, sizeof *out);
	out->ep = ep;
	out->counted = cfg->eps[ep].price.set && !cfg->eps[ep].price.reserved;
	for (int w = 0; w < STATE_NSPENDS; w++)
		out->period[w] = state_period(w, now_ms);
	if (!out->counted || amount_uusd <= 0)
		return BUDGET_OK;
	for (int scope = 0; scope < 2; scope++)
		for (int w = 0; w < STATE_NSPENDS; w++) {
			int64_t limit = limit_of(cap_of(cfg, scope, ep), w), spent = 0;
			if (!limit)
				continue;
			unsigned slot = slot_of(scope, ep);
			/* held before spent, and given back after: a reader may take too
			 * much of a counter for held (and wait), never too little */
			st->ops->spend_add(st, slot, STATE_HELD + w, out->period[w], amount_uusd, 0, NULL);
			if (st->ops->spend_add(st, slot, w, out->period[w], amount_uusd, limit, &spent)) {
				out->reserved[scope][w] = amount_uusd;
				continue;
			}
			st->ops->spend_add(st, slot, STATE_HELD + w, out->period[w], -amount_uusd, 0, NULL);
			budget_settle(st, out, 0); /* gives back what this call held so far */
			out->ep = -1;
			int64_t held = st->ops->spend_get(st, slot, STATE_HELD + w, out->period[w]);
			*why = (struct budget_refusal){scope == 0 ? BUDGET_SET : BUDGET_ENDPOINT,
			                               w,
			                               limit,
			                               spent,
			                               held < spent ? held : spent,
			                               amount_uusd,
			                               state_period_start_ms(w, out->period[w] + 1)};
			return why->scope;
		}
	return BUDGET_OK;
}

int budget_held_only(const struct budget_refusal *r)
{
	return r->held_uusd > 0 && r->spent_uusd - r->held_uusd + r->need_uusd <= r->limit_uusd;
}

void budget_settle(struct state *st, const struct budget_hold *h, int64_t actual_uusd)
{
	if (h->ep < 0)
		return;
	for (int scope = 0; scope < 2; scope++)
		for (int w = 0; w < STATE_NSPENDS; w++) {
			int64_t held = h->reserved[scope][w];
			int64_t delta = h->counted ? actual_uusd - held : -held;
			if (delta)
				st->ops->spend_add(st, slot_of(scope, h->ep), w, h->period[w], delta, 0, NULL);
			if (held) /* after the spending (see budget_reserve) */
				st->ops->spend_add(st, slot_of(scope, h->ep), STATE_HELD + w, h->period[w], -held, 0, NULL);
		}
}

void budget_usd_str(char *out, size_t cap, int64_t uusd)
{
	double usd = (double)uusd / 1e6;
	if (uusd >= 1000000 || uusd == 0 || uusd % 10000 == 0)
		snprintf(out, cap, "$%.2f", usd);
	else
		snprintf(out, cap, "$%.4f", usd);
}

void budget_refusal_msg(char *out, size_t cap, const struct budget_refusal *r, const char *ep_name, int64_t now_ms)
{
	char limit[32], spent[32], need[32], who[120];
	budget_usd_str(limit, sizeof limit, r->limit_uusd);
	budget_usd_str(spent, sizeof spent, r->spent_uusd);
	budget_usd_str(need, sizeof need, r->need_uusd);
	int day = r->which == STATE_SPEND_DAY;
	if (r->scope == BUDGET_SET)
		snprintf(who, sizeof who, "the configuration's");
	else
		snprintf(who, sizeof who, "endpoint `%s`'s", ep_name ? ep_name : "?");
	int64_t left_min = (r->resets_ms - now_ms + 59999) / 60000;
	if (left_min < 0)
		left_min = 0;
	char when[64];
	if (day)
		snprintf(when, sizeof when, "at 00:00 UTC (in %lld h %lld min)", (long long)(left_min / 60),
		         (long long)(left_min % 60));
	else
		snprintf(when, sizeof when, "on the 1st at 00:00 UTC (in %lld d %lld h)", (long long)(left_min / 1440),
		         (long long)(left_min % 1440 / 60));
	if (budget_held_only(r)) {
		char held[32];
		budget_usd_str(held, sizeof held, r->held_uusd);
		budget_usd_str(spent, sizeof spent, r->spent_uusd - r->held_uusd);
		snprintf(out, cap,
		         "%s %s budget of %s could not cover this call before its deadline: calls in flight held %s "
		         "of it (%s is spent this %s, UTC, and this call needs up to %s) and did not settle in time; "
		         "retry, give the call a longer deadline (retry.deadline_ms) or raise %sbudget.%s",
		         who, day ? "daily" : "monthly", limit, held, spent, day ? "day" : "month", need,
		         r->scope == BUDGET_SET ? "" : "the endpoint's ", day ? "daily" : "monthly");
		return;
	}
	snprintf(out, cap,
	         "%s %s budget of %s %s (%s of it used or held by calls in flight this %s, UTC, "
	         "and this call needs up to %s); it resets %s: raise %sbudget.%s or wait",
	         who, day ? "daily" : "monthly", limit, r->spent_uusd >= r->limit_uusd ? "is spent" : "cannot cover this call",
	         spent, day ? "day" : "month", need, when, r->scope == BUDGET_SET ? "" : "the endpoint's ",
	         day ? "daily" : "monthly");
}
