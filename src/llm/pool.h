/* pool.h -- endpoint choice: which endpoint takes the next model attempt.
 *
 * The pool knows the configured endpoints and, through struct state
 * (state.h), what every process of the host has learned about them.  The
 * LLM client asks pool_pick for an endpoint before each attempt and tells
 * pool_report how the attempt went; nothing else.
 *
 * Selection (pool_pick): the first priority tier (lowest number) with a
 * usable endpoint; within it, smooth weighted round-robin driven by one
 * shared counter per tier: counter value c means position c mod W of the
 * tier's smooth WRR cycle (W = sum of the tier's weights), so with every
 * endpoint healthy, any W consecutive picks -- from any number of threads
 * and processes -- give each endpoint exactly its weight.  An unusable
 * endpoint at that position is skipped for the next usable one in the
 * cycle.  Quick ones first: while an endpoint of the tier answers (its
 * successes' moving average latency) more than POOL_LAT_SLOW times
 * slower than another usable one, the walk skips it, and takes it only
 * when none of the quick ones is usable now -- so a caller never waits
 * while an endpoint has a free slot, and never spends a slow endpoint's
 * latency while a quick one could take the call at once.  A latency not
 * refreshed for POOL_LAT_STALE_MS is unknown, and unknown is quick: the
 * endpoint gets a call and is measured again.
 *
 * Usable = not excluded by the caller, not cooling (rate limit, broken
 * key/deployment -- an auth cooldown only for the key it was set for),
 * breaker closed (or half-open with the probe slot won), its paced slot
 * come (a configured rpm/tpm, else a learned one), and, unless 429s
 * taught its rate, not out of the budget the server last reported.  When nothing is usable but some endpoint is
 * blocked by its breaker alone, that endpoint is offered anyway (the one
 * whose breaker opened first, then the one that failed longest ago): a
 * partial outage never becomes a total one.  Cooldowns and budgets are
 * never overridden: the caller is told how long to wait.
 *
 * Times are Unix wall-clock milliseconds passed in (clock_wall_ms), so a
 * deadline means the same in every process and tests never sleep.  A
 * struct pool is immutable after open; every call is thread-safe.
 */
#ifndef CONVBI_LLM_POOL_H
#define CONVBI_LLM_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "llm/state.h"
#include "util/err.h"

#define POOL_MAX_ENDPOINTS 64
#define POOL_MAX_WEIGHT 1000

/* Tunables (milliseconds unless said otherwise). */
#define POOL_COOL_DEFAULT_MS 1000  /* a 429 without a retry time ... */
#define POOL_COOL_MAX_MS 30000     /* ... doubling per bare 429 up to this */
#define POOL_BROKEN_COOL_MS 300000 /* 401/403/404: out for 5 minutes */
#define POOL_BREAKER_THRESHOLD 3   /* consecutive failures that open it */
#define POOL_BREAKER_PAUSE_MS 2000 /* open this long, doubling per failed probe */
#define POOL_BREAKER_PAUSE_MAX_MS 30000
#define POOL_PROBE_TIMEOUT_MS 30000 /* a probe not reported by then is presumed dead */
#define POOL_PACE_MARGIN 1.02       /* rpm/tpm pacing runs 2 % under the budget */
#define POOL_BUDGET_RESET_DEFAULT_MS \
	250 /* a server budget without a reset time: look again soon (a 429 then says exactly when) */

/* Learned quotas (endpoints without a configured rpm/tpm): AIMD, as TCP.
 * The first 429 of a cooldown episode (one per episode, however many
 * processes see its 429s) owes a cut, made by the first pick after the
 * cooldown.  When the endpoint admitted at least POOL_LEARN_REACHED of the
 * learned rate since the last cut, the rate goes to POOL_LEARN_CUT of
 * itself.  (A quota over short windows refuses a burst even when the
 * traffic averaged well under the learned rate.)  Otherwise the traffic
 * never tested the rate, and what the cut finds is a floor, not the
 * quota: the first cut goes to POOL_LEARN_CUT of the rate the endpoint
 * admitted (counted at the send, measured up to the cooldown's end over
 * at least POOL_LEARN_MEASURE_MIN_MS: one window's burst over a longer
 * span, or an endpoint's share of the traffic), a later one halves the
 * rate (POOL_LEARN_SPARSE).  A floor is probed, as TCP's slow start
 * does: after each run of about a second of its traffic that kept up
 * with it (admitted at least POOL_LEARN_PRESSING of it) the rate rises
 * by a step, 1/POOL_LEARN_PROBE_DIV of it first and doubling each time;
 * a 429 then means the last step went past the quota: back to the rate
 * before it, the next step a quarter of the last, and so on until
 * the step is under 1/POOL_LEARN_PROBE_DIV of the rate.  From there, and
 * after every cut from the rate itself, the rate climbs gently: after a
 * run of about three seconds of traffic (POOL_LEARN_RUN successes at 600
 * a minute and more, at least POOL_LEARN_RUN_PROBE) that presses against
 * it (admitted at least POOL_LEARN_PRESSING of it), by a step of
 * 1/POOL_LEARN_STEP_DIV of the rate at the cut first, each later step
 * POOL_LEARN_GROW_NUM / POOL_LEARN_GROW_DEN of the one before (by one at
 * least, up to a tenth of the rate) until the next cut -- or, while under
 * the rate the last cut was made from, by 1/POOL_LEARN_BACK_DIV of the
 * distance to it when that is more.  So the rate goes back quickly to
 * where the service last refused, probes gently past it, and faster the
 * longer nothing refuses (TCP CUBIC's shape); a rate cut far too deep, by
 * a burst or a first measurement that caught the traffic still ramping
 * up, is back near the quota in seconds, not minutes (attack3 F1).
 * Tokens count as Azure counts them: the request's estimate (prompt +
 * max_tokens). */
#define POOL_LEARN_CUT 0.97
#define POOL_LEARN_REACHED 0.5
#define POOL_LEARN_PRESSING 0.8
#define POOL_LEARN_RUN 30
#define POOL_LEARN_STEP_DIV 100
#define POOL_LEARN_SPARSE 0.5
#define POOL_LEARN_PROBE_DIV 10
#define POOL_LEARN_RUN_PROBE 3
#define POOL_LEARN_BACK_DIV 2
#define POOL_LEARN_GROW_NUM 3
#define POOL_LEARN_GROW_DEN 2
#define POOL_LEARN_MEASURE_MIN_MS 500
#define POOL_LEARN_EPISODE_MS 1000        /* 429s this long after a cooldown still belong to it */
#define POOL_LEARN_MEASURE_STALE_MS 30000 /* an older measurement restarts */

/* The token charge (attack3 F2): what the service charges a request
 * against its tokens per minute can be far below the estimate (prompt +
 * max_tokens, or an assumed 256 when the request sets none, which a
 * service may not reserve).  A success whose reply carries
 * x-ratelimit-limit-tokens L and -remaining-tokens R says the service
 * holds L - R tokens of its minute; over the endpoint's sliding minute of
 * raw estimates W (STATE_WIN_TOK, every process's), (L - R) / W is the
 * charge per estimated token.  It is measured only over at least
 * POOL_CHARGE_MIN_REQ requests and outside a 429 episode (whose refused
 * requests W still holds), kept within [1/POOL_CHARGE_FLOOR_DIV, 1]; a
 * higher charge is taken at once (the safe side), a lower one approached
 * by 1/POOL_CHARGE_WEIGHT of the distance per reply.  Pacing, the
 * admitted counts and so a learned tpm's cuts then count each request at
 * its estimate x POOL_CHARGE_MARGIN x that charge, never above the
 * estimate itself: an endpoint that charges 17 tokens for a request
 * estimated at 257 is paced by 17 x the margin, not by 257.  The figures
 * are the service's own count, so the correction brings the pacing up to
 * the service's limit (less the margin), not past it; a 429 still cuts a
 * learned rate as before.  (Not above 1: a service whose remaining count
 * is of a shorter window than its announced minute would read as a higher
 * charge; 429s correct an estimate that is too low.) */
#define POOL_CHARGE_MIN_REQ 4
#define POOL_CHARGE_FLOOR_DIV 64
#define POOL_CHARGE_WEIGHT 2
#define POOL_CHARGE_MARGIN 1.25

/* Latency (quick endpoints first, see the top): a moving average of the
 * successes' latency, each new one weighing 1/POOL_LAT_WEIGHT. */
#define POOL_LAT_SLOW 2.0       /* this many times the quickest usable one's: slow */
#define POOL_LAT_WEIGHT 8       /* the average's memory, in successes */
#define POOL_LAT_STALE_MS 10000 /* an average not moved for this long is unknown */

/* Reservations (pool_pick_ahead). */
#define POOL_AHEAD_SLOTS 1 /* a quick endpoint's queue worth joining, in its slots */
#define POOL_AHEAD_TRIES 4 /* CASes lost to other reservers before trying elsewhere */
#define POOL_LATE_MS 5     /* a reserved send later than this moves the slots not yet handed out */

/* Where a learned rate came from. */
enum pool_learn_from { POOL_LEARN_NONE, POOL_LEARN_HEADER, POOL_LEARN_429 };

enum pool_breaker { POOL_BREAKER_CLOSED, POOL_BREAKER_OPEN, POOL_BREAKER_HALF_OPEN };

struct pool_ep_cfg {
	const char *name;     /* shown in messages (copied) */
	const char *identity; /* url + deployment: keys the endpoint set (copied); NULL = name */
	int priority;         /* tier, 0 = first */
	int weight;           /* 1..POOL_MAX_WEIGHT */
	int rpm;              /* client-side requests per minute, 0 = none: learned */
	int tpm;              /* client-side tokens per minute, 0 = none: learned */
};

struct pool;

/* Opens the pool over n endpoints (1..POOL_MAX_ENDPOINTS).  state_path
 * names the shared state file; NULL = state_default_path (derived from
 * the uid and the endpoint set, so two different configs never share).
 * A missing file is created; a damaged or old file of ours is rebuilt
 * with a log_warn; a file that is not ours is never touched (see
 * state_open: CONVBI_ECONFIG for a configured path); a location that
 * cannot be used falls back to in-process state with a log_warn
 * (pool_is_shared then says 0).  Returns CONVBI_OK, CONVBI_ENOENDPOINT for
 * n = 0, CONVBI_EINVAL for a bad endpoint (message names it),
 * CONVBI_ECONFIG, CONVBI_ENOMEM.  On failure *out is NULL. */
int pool_open(struct pool **out, const struct pool_ep_cfg *eps, size_t n, const char *state_path, struct err *err);
/* As pool_open, on in-process state only (tests; one-shot tools). */
int pool_open_private(struct pool **out, const struct pool_ep_cfg *eps, size_t n, struct err *err);
/* As pool_open, on a state the caller opened for pool_shape(eps, n) --
 * another backend, say.  The pool adopts st: pool_close closes it, and so
 * does a failing pool_open_state. */
int pool_open_state(struct pool **out, const struct pool_ep_cfg *eps, size_t n, struct state *st, struct err *err);
/* The state shape (slots, tiers, set hash) of an endpoint set; checks the
 * endpoints as pool_open does. */
int pool_shape(struct state_shape *out, const struct pool_ep_cfg *eps, size_t n, struct err *err);
/* Before a process goes: when the state file was removed or replaced
 * since its last look (a look is at most once a second, and a call may
 * sleep seconds for its paced slot), or the Redis hash flushed, reopens
 * it and puts back what this process saw learned, so a state created
 * again by processes that started after the loss is paced by what the
 * running ones knew (attack8 F8).  One load; nothing for a process that
 * saw nothing learned. */
void pool_leave(struct pool *p, int64_t now_ms);
void pool_close(struct pool *p);

/* 1 when the state is shared with other processes (file-backed). */
int pool_is_shared(const struct pool *p);
/* Where the state lives: "file", "memory", "redis" or
 * "file (redis unreachable)" (borrowed, static). */
const char *pool_backend_status(const struct pool *p);
/* The shared state the pool works on (borrowed from p): for the modules
 * that keep more per endpoint than the pool does (budget.c's spending). */
struct state *pool_state(struct pool *p);
/* The shared state file (borrowed from p), or NULL for in-process state. */
const char *pool_state_path(const struct pool *p);
size_t pool_size(const struct pool *p);
/* Endpoint ep's name (borrowed from p), or NULL if out of range. */
const char *pool_name(const struct pool *p, int ep);
/* Forgets everything learned (cooldowns, breakers, budgets, windows,
 * statistics, counters) for every process sharing the state. */
void pool_reset_state(struct pool *p);
/* The same for endpoint ep alone (cooldowns, breaker, budgets, learned
 * rates, statistics).  Returns CONVBI_OK or CONVBI_EINVAL (out of range). */
int pool_reset_endpoint(struct pool *p, int ep);
/* Tells the pool the key (key_len bytes) this process uses for endpoint
 * ep; call right after opening, before any pick.  The key is not kept:
 * only a SHA-256 of the endpoint's identity and the key stays, in this
 * process's memory, never in the shared state. */
void pool_set_key(struct pool *p, int ep, const char *key, size_t key_len);
/* Our key's fingerprint for endpoint ep, as the shared state keeps it
 * with an auth cooldown so that a process holding another key ignores
 * that cooldown: the first 63 bits of HMAC-SHA256, keyed by the state's
 * secret (state_ops.secret: random, made with the state), of that
 * SHA-256; never 0.  0 when no key was set for ep or the MAC could not be
 * made (a cooldown then holds back every key).  Processes on one state
 * agree on it; two states, or the same key at two endpoints, do not. */
uint64_t pool_key_fp(struct pool *p, int ep);

struct pool_pick {
	int ep;                   /* endpoint index, -1 if none is usable now */
	int64_t wait_ms;          /* ep == -1: ms until the earliest may be usable (> 0) */
	int probe;                /* 1 = this attempt is the breaker's half-open probe */
	int64_t at_ms;            /* ep >= 0: send not before this (wall ms; > now: a reserved slot) */
	int64_t made_ms;          /* the pick's now_ms */
	int counted;              /* counted as sent (a reservation: once confirmed) */
	int64_t est_tokens;       /* ep >= 0: the request's estimate as ep charges it (the token charge); else the estimate */
	int64_t pace_taken[2][2]; /* the request and token pacing fields before and after this pick's claim (0, 0: none) */
};

/* Picks an endpoint for the next attempt.  exclude: bit i set = don't use
 * endpoint i in this call (failed or silent already).  est_tokens: the
 * request's estimated tokens (prompt + max_tokens), charged to the tpm
 * window now, as Azure does; 0 if unknown.  Returns CONVBI_OK with
 * ep >= 0; CONVBI_OK with ep = -1 and wait_ms > 0 when everything not
 * excluded is cooling or out of budget (sleep min(wait, deadline), with
 * jitter, then pick again); CONVBI_ENOENDPOINT when every endpoint is
 * excluded.  A pick with probe = 1 holds the endpoint's probe slot until
 * its pool_report (or POOL_PROBE_TIMEOUT_MS). */
int pool_pick(struct pool *p, int64_t now_ms, uint64_t exclude, int64_t est_tokens, struct pool_pick *out);
/* As pool_pick, but an endpoint held back by its pacing alone (no
 * cooldown, budget or breaker in the way) is not waited for: its next
 * slot is reserved for this call, and at_ms says when it starts.  So a
 * caller never polls, and never waits while a slot is free elsewhere:
 *   1. a quick endpoint free now (see the top);
 *   2. a quick endpoint's slot starting within POOL_AHEAD_SLOTS of its
 *      own slots (a short queue keeps it busy, a longer one is better
 *      spent elsewhere);
 *   3. a slow endpoint free now;
 * each tier in turn, then 4. the first slot to come, in the first tier
 * that has one.  ep = -1 (wait_ms) only when cooldowns, budgets or
 * breakers hold back every endpoint.  With at_ms > now, sleep until then,
 * then pool_confirm before sending (pool_abandon when not sending).
 * latest_ms: the latest start the caller can use (its deadline less an
 * attempt's least time): a slot starting later is not reserved -- nothing
 * is taken, and ep = -1 with wait_ms until the next slot -- so a call that
 * cannot use it does not push every later caller's slot out. */
int pool_pick_ahead(struct pool *p, int64_t now_ms, uint64_t exclude, int64_t est_tokens, int64_t latest_ms,
                    struct pool_pick *out);
/* Whether a reserved slot may still be used at now_ms: 0 when its
 * endpoint was rate limited since the pick (a cooldown set after it, over
 * or not: the slots queued then were spaced too close) or its breaker
 * opened (pool_abandon it and pick again), 1 otherwise -- and then the
 * request counts as sent (what the learning measures), as a pick free now
 * does at once, and a caller woken more than POOL_LATE_MS after its slot
 * moves the slots not yet handed out by its lateness. */
int pool_confirm(struct pool *p, struct pool_pick *pick, int64_t now_ms);

enum pool_class {
	POOL_OK,
	POOL_RATE_LIMITED, /* 429 */
	POOL_SERVER,       /* 5xx, 408, 409 */
	POOL_TRANSPORT,    /* refused, reset, TLS, timeout */
	POOL_BROKEN,       /* 401/403/404 */
	POOL_CLIENT        /* other 400s: says nothing about health */
};

struct pool_outcome {
	int cls;                    /* enum pool_class */
	int64_t retry_after_ms;     /* relative; -1 = none given */
	int64_t remaining_requests; /* server-reported; -1 = unknown */
	int64_t remaining_tokens;   /* server-reported; -1 = unknown */
	int64_t reset_requests_ms;  /* relative: until remaining_requests refills; -1 = unknown */
	int64_t reset_tokens_ms;    /* relative: until remaining_tokens refills; -1 = unknown */
	int64_t tokens;             /* used, or estimated; statistics only */
	int probe;                  /* echo of pool_pick.probe */
	int64_t limit_requests;     /* x-ratelimit-limit-requests; -1 = unknown */
	int64_t limit_tokens;       /* x-ratelimit-limit-tokens (per minute); -1 = unknown */
	int tokens_bound;           /* a 429 for tokens, not requests */
	int auth;                   /* BROKEN for the key (401/403), not the deployment */
	int64_t est_tokens;         /* the request's estimate (prompt + max_tokens), 0 = unknown */
	int64_t latency_ms;         /* a success's duration, send to last byte; <= 0 = unknown */
};

/* Records how an attempt on ep went (ep out of range: ignored).
 *   OK            resets the failure count, closes the breaker, frees the probe,
 *                 moves the latency average (latency_ms > 0);
 *   RATE_LIMITED  cools the endpoint for retry_after_ms (atomic max with any
 *                 cooldown already set), or without one for 1 s doubling
 *                 per bare 429 in a row up to 30 s;
 *   SERVER        like TRANSPORT, plus a cooldown when retry_after_ms >= 0;
 *   TRANSPORT     counts a failure; the POOL_BREAKER_THRESHOLD-th in a row
 *                 opens the breaker for 2 s; a failed probe re-opens it
 *                 for twice the last pause (<= 30 s);
 *   BROKEN        cools it for POOL_BROKEN_COOL_MS (auth: for this key only);
 *   CLIENT        statistics only.
 * Any class with remaining_* >= 0 updates the server budget.  For an
 * endpoint without a configured rpm/tpm, a 429 (the first of its episode)
 * owes a cut of the learned rate and a run of successes raises it (see
 * POOL_LEARN_*); x-ratelimit-limit-tokens seeds the learned tpm,
 * x-ratelimit-limit-requests sent with x-ratelimit-reset-requests (the
 * per-minute form) the learned rpm, and without a limit a remaining count
 * with its reset time seeds a rate nothing else has.  A 429 also moves the
 * endpoint's pacing to the cooldown's end, so the callers waiting for it,
 * in every process, go one paced slot at a time (slots reserved beyond
 * that end are void: pool_confirm).  A wait past STATE_WAIT_MAX_MS (a
 * cooldown, a budget's reset) and a count past STATE_RATE_MAX are taken at
 * those bounds (state.h). */
void pool_report(struct pool *p, int ep, int64_t now_ms, const struct pool_outcome *o);

/* The attempt picked was canceled or never made: gives back its probe
 * slot at once (rather than after POOL_PROBE_TIMEOUT_MS) and takes it
 * off what the endpoint admitted (the learning's count); records nothing
 * else.  A pacing slot taken is not given back. */
void pool_abandon(struct pool *p, const struct pool_pick *pick);

/* An outcome with nothing known: cls as given, every number -1, tokens 0,
 * latency unknown. */
struct pool_outcome pool_outcome_of(int cls);

struct pool_live {
	int64_t cool_until_ms;    /* no calls before this */
	int cool_class;           /* why: POOL_RATE_LIMITED, POOL_BROKEN or POOL_SERVER */
	int breaker;              /* POOL_BREAKER_* */
	int64_t breaker_until_ms; /* open until then (0 when closed) */
	int consecutive_failures;
	int64_t remaining_requests; /* server budget in force, -1 = unknown */
	int64_t remaining_tokens;
	int64_t budget_reset_ms; /* when the budgets in force refill, -1 = none */
	int64_t window_requests; /* in the client-side minute window */
	int64_t window_tokens;
	uint64_t calls, ok, rate_limited, failures;
	uint64_t tokens;     /* tokens reported */
	int key_fp_other;    /* an auth cooldown that is for another key than ours */
	int64_t learned_rpm; /* 0 = nothing learned (or configured) */
	int64_t learned_tpm;
	int learned_rpm_from; /* enum pool_learn_from */
	int learned_tpm_from;
	int64_t latency_ms;  /* the successes' moving average latency, 0 = none lately */
	double token_charge; /* tokens charged per estimated token (the token charge), 0 = not measured */
};
/* "none", "header", "429" ("?" for others); static. */
const char *pool_learn_from_name(int from);

/* Fills out with endpoint ep's live shared state at now_ms.  Returns
 * CONVBI_OK or CONVBI_EINVAL for an ep out of range. */
int pool_live_get(struct pool *p, int ep, int64_t now_ms, struct pool_live *out);
/* "closed", "open", "half_open" ("?" for others); static. */
const char *pool_breaker_name(int breaker);

/* ---- the pure decision logic (exposed for tests) -------------------------
 * pool_pick = load snapshots -> pool_judge each -> first tier with a usable
 * endpoint -> its counter -> pool_wrr_walk -> claim (probe slot, windows);
 * else pool_fallback, else pool_wait.  These take values and return
 * values: no state, no clock. */

struct pool_verdict {
	int usable;           /* may take the attempt now */
	int probe;            /* usable as the half-open probe only */
	int breaker_only;     /* blocked by its breaker alone: partial-outage candidate */
	int64_t ready_ms;     /* when cooldown, pacing and budgets stop blocking (now if none) */
	int64_t paced_ms;     /* when pacing alone stops blocking (now if none) */
	int paced_only;       /* blocked by its pacing alone: a slot may be reserved */
	int64_t breaker_ms;   /* breaker-blocked: when it opened / opens (fallback order) */
	int64_t last_fail_ms; /* fallback tie-break: older first */
};

/* Judges one endpoint from a snapshot at now_ms for a request of
 * est_tokens: the configured rpm/tpm pace it, else the learned ones. */
void pool_judge(struct pool_verdict *out, const struct pool_ep_cfg *cfg, const struct state_snap *s, int64_t now_ms,
                int64_t est_tokens);
/* Writes the smooth weighted round-robin cycle over the endpoints in
 * members (bit i = eps[i]) into out: endpoint indices, sum of their
 * weights long (ties go to the lower index).  Returns the length, or 0 if
 * it exceeds cap or members is empty. */
size_t pool_wrr_cycle(uint8_t *out, size_t cap, const struct pool_ep_cfg *eps, size_t n, uint64_t members);
/* The endpoint for counter value c: the first in usable at or after
 * position c mod len of the cycle; -1 when none of usable is in it. */
int pool_wrr_walk(const uint8_t *cycle, size_t len, uint64_t c, uint64_t usable);
/* Of the endpoints in candidates, the one to offer despite its breaker:
 * the earliest breaker_ms, then the oldest last_fail_ms, then the lowest
 * index.  -1 if candidates is empty. */
int pool_fallback(const struct pool_verdict *v, size_t n, uint64_t candidates);
/* How long until the first endpoint in mask may be usable: min ready_ms
 * minus now, at least 1. */
int64_t pool_wait(const struct pool_verdict *v, size_t n, uint64_t mask, int64_t now_ms);

#endif
