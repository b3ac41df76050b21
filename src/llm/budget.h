/* budget.h -- what a model call costs, and the budgets every process shares.
 *
 * A call's cost comes from its endpoint's price (config.h) and the usage
 * the service reports: prompt tokens not served from the prompt cache at
 * the input price, cached ones at cached_input, completion tokens at
 * output, all per million.  Reserved (PTU) and unpriced endpoints cost 0.
 *
 * Budgets are caps on the spending counters of the shared state (state.h:
 * per endpoint and for the whole set, per UTC day and month, micro-USD),
 * so every process of the host -- or of the fleet, through Redis -- spends
 * from one purse.  A call reserves its estimated cost on every capped
 * counter before it is sent (budget_reserve: each reservation is one
 * atomic check-and-add, so no two processes can both take the last
 * dollar), and settles after (budget_settle: the reservation is replaced
 * by the actual cost).  Spending can therefore pass a cap only by what the
 * calls in flight cost beyond their estimates.  Uncapped counters of a
 * priced endpoint are charged at settlement only, for `convbi endpoints`.
 */
#ifndef CONVBI_LLM_BUDGET_H
#define CONVBI_LLM_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#include "llm/config.h"
#include "llm/state.h"

/* Completion tokens a call without max_tokens is assumed to need when its
 * cost is estimated. */
#define BUDGET_DEFAULT_COMPLETION 1024

/* Micro-USD from USD, rounded to the nearest. */
int64_t budget_uusd(double usd);
/* A call's cost in USD at price p: 0 for a reserved or unpriced endpoint.
 * Negative or unknown (-1) counts are taken as 0; cached is capped at
 * prompt. */
double budget_cost_usd(const struct price_cfg *p, int64_t prompt, int64_t cached, int64_t completion);
/* The most a call is expected to cost, in micro-USD rounded up: every
 * prompt token at the input price and completion_tokens (0: the default
 * above) at the output price. */
int64_t budget_estimate_uusd(const struct price_cfg *p, int64_t prompt_tokens, int64_t completion_tokens);

/* Calibration: estimates count a prompt token per 4 characters, which
 * undercounts some text (other scripts, code).  A process keeps, per
 * endpoint, the ratio of actual cost to estimate it has seen, in
 * thousandths (BUDGET_SCALE_ONE = 1.0, never below): it jumps to a higher
 * ratio at once and decays towards lower ones by 1/8 per call, and every
 * estimate is multiplied by it.  Returns the new scale after a call whose
 * estimate was est_uusd and actual cost actual_uusd (both > 0, else the
 * scale unchanged). */
#define BUDGET_SCALE_ONE 1000
#define BUDGET_SCALE_MAX 100000 /* a 100x undercount is as far as it follows */
int64_t budget_scale_next(int64_t scale, int64_t est_uusd, int64_t actual_uusd);

enum budget_scope { BUDGET_OK, BUDGET_SET, BUDGET_ENDPOINT };

/* One call's claim on the counters, from budget_reserve to budget_settle. */
struct budget_hold {
	int ep;                             /* endpoint; -1 = nothing to settle */
	int counted;                        /* a priced endpoint: its cost is counted */
	uint32_t period[STATE_NSPENDS];     /* the day and month reserved in */
	int64_t reserved[2][STATE_NSPENDS]; /* micro-USD held: [0] the set, [1] the endpoint */
};

/* Why a reservation was refused. */
struct budget_refusal {
	int scope;          /* BUDGET_SET or BUDGET_ENDPOINT */
	int which;          /* STATE_SPEND_DAY or STATE_SPEND_MONTH */
	int64_t limit_uusd; /* the cap */
	int64_t spent_uusd; /* spent (and held by calls in flight) in the period */
	int64_t held_uusd;  /* ... of which held by calls in flight */
	int64_t need_uusd;  /* what the call would hold */
	int64_t resets_ms;  /* wall clock: when the period ends */
};

/* Reserves amount_uusd (the call's estimate) for a call on endpoint ep at
 * now_ms on every capped counter: the configuration's, then the
 * endpoint's, and counts it held there until settled.  Returns BUDGET_OK
 * with *out to settle later, or the scope of the first cap it would pass,
 * with *why filled and nothing held (budget_held_only tells whether only
 * holds of calls in flight were in the way). */
int budget_reserve(struct budget_hold *out, struct budget_refusal *why, struct state *st, const struct llm_config *cfg, int ep,
                   int64_t now_ms, int64_t amount_uusd);
/* 1 when the refusal r would not have happened without the holds of
 * calls in flight: what is spent plus this call's need fits the cap, so
 * the call can be covered once they settle (the caller may wait for
 * that); 0 when it truly cannot be covered this period. */
int budget_held_only(const struct budget_refusal *r);
/* Replaces the hold by the call's actual cost (0 when it failed or never
 * ran) on every counter of the set and the endpoint.  A hold with ep < 0
 * is a no-op. */
void budget_settle(struct state *st, const struct budget_hold *h, int64_t actual_uusd);
/* One line naming the budget and the fix, e.g. "the configuration's daily
 * budget of $20.00 cannot cover this call ($19.9961 of it used or held by
 * calls in flight this day, UTC, and this call needs up to $0.0125); it
 * resets at 00:00 UTC (in 3 h 12 min): raise budget.daily or wait" ("is
 * spent" once nothing is left); for a refusal budget_held_only, that the
 * holds of calls in flight were in the way until the call's deadline.
 * ep_name names the endpoint for BUDGET_ENDPOINT. */
void budget_refusal_msg(char *out, size_t cap, const struct budget_refusal *r, const char *ep_name, int64_t now_ms);
/* "$12.34" for a money amount in micro-USD: cents, or more digits below a
 * dollar so that small amounts stay visible. */
void budget_usd_str(char *out, size_t cap, int64_t uusd);

#endif
