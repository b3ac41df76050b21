/* pool.c -- endpoint choice over the shared state (see pool.h for the rules).
 *
 * Owns: the copied endpoint configuration, the tiers (endpoints grouped by
 * priority, in ascending order) and each tier's smooth WRR cycle, all
 * immutable after pool_open; and the struct state it adopted.  Everything
 * that changes lives in the state, so any number of threads and processes
 * may pick and report at once.
 *
 * The shared protocols, each a handful of single-word atomic operations
 * (never a lock), chosen so that a process killed between two of them
 * leaves a state every other process can still work with:
 *   round-robin  fetch_add on the tier's counter, one per pick (only on
 *                the tier actually used), so positions are never reused;
 *   cooldown     atomic max on COOL_UNTIL: a shorter retry time never
 *                shortens a longer one set by someone else;
 *   breaker      FAIL_STREAK counts; the failure that finds it at the
 *                threshold CASes OPEN_UNTIL from 0 (closed) to now+pause,
 *                so one opener wins; OPEN_UNTIL <= now means half-open, and
 *                the single probe is a CAS of PROBE_UNTIL from a past value
 *                to now+POOL_PROBE_TIMEOUT_MS -- a prober that dies only
 *                holds the slot until then.  A failed probe stores the new
 *                OPEN_UNTIL before it frees the slot;
 *   pacing       rpm and tpm are enforced as a GCRA (a leaky bucket with no
 *                burst): PACE_REQ/PACE_TOK hold the theoretical arrival
 *                time in microseconds; a pick claims the next slot by a CAS
 *                that advances it by 60 s/rpm (or tokens x 60 s/tpm), times
 *                POOL_PACE_MARGIN.  Azure evaluates RPM/TPM over 1 s or
 *                10 s windows, so a minute's budget sent in a burst is
 *                answered with 429s; evenly spaced calls are not;
 *   windows      the sliding-minute sums, kept for `convbi endpoints`.
 * What is not atomic across fields (a budget and its reset time, the
 * statistics among themselves) is advisory and documented as such.
 */
#include "llm/pool.h"

#include <assert.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convbi/convbi.h"
#include "util/alloc.h"
#include "util/secret.h"

#define POOL_SEEN_FIELDS 5 /* learned figures remembered per endpoint (seen_fields) */
#define POOL_OWED_FIELDS 5 /* a cut owed: pend, episode end, measured since, admitted, their tokens */

struct pool_tier {
	uint64_t members; /* endpoints in this tier */
	size_t off, len;  /* the tier's WRR cycle: cycle[off .. off+len) */
};

struct pool {
	struct state *st;                           /* owned */
	size_t n;                                   /* endpoints */
	struct pool_ep_cfg eps[POOL_MAX_ENDPOINTS]; /* name, identity owned (copies) */
	unsigned ntiers;
	struct pool_tier tiers[POOL_MAX_ENDPOINTS];                     /* by ascending priority */
	uint8_t *cycle;                                                 /* owned: every tier's cycle */
	unsigned char key_id[POOL_MAX_ENDPOINTS][SHA256_DIGEST_LENGTH]; /* SHA-256 of identity and key: never shared */
	unsigned char has_key[POOL_MAX_ENDPOINTS];                      /* key_id set */
	char *labels[POOL_MAX_ENDPOINTS]; /* owned: "endpoint NAME (URL)", the state's messages name slots by them */
	/* What this process last saw learned (learned_seen), put back when the state is renewed */
	_Atomic int64_t seen[POOL_MAX_ENDPOINTS][POOL_SEEN_FIELDS];      /* by seen_fields[]; 0 = nothing seen */
	_Atomic int64_t seen_cool[POOL_MAX_ENDPOINTS];                   /* ms: the latest rate-limit cooldown seen */
	_Atomic int64_t seen_owed[POOL_MAX_ENDPOINTS][POOL_OWED_FIELDS]; /* the cut owed last seen (learned_seen) */
	_Atomic uint32_t seen_renewed;                                   /* st->renewed when last put back */
};

/* The learned figures a renewed state gets back (learned_seen). */
static const int seen_fields[POOL_SEEN_FIELDS] = {STATE_LEARN_RPM, STATE_LEARN_TPM, STATE_LEARN_FROM, STATE_LEARN_STEP,
                                                  STATE_LEARN_MAX};

/* Endpoint sets travel as 64-bit masks, bit i = endpoint i. */
static uint64_t bit(int i)
{
	return (uint64_t)1 << i;
}

static uint64_t all_of(size_t n)
{
	return n >= 64 ? ~(uint64_t)0 : bit((int)n) - 1;
}

/* ---- pure decision logic ------------------------------------------------ */

static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

static int learned_from(int64_t packed, int tokens)
{
	return (int)((packed >> (tokens ? 8 : 0)) & 0xff);
}

/* The rates that pace an endpoint: configured, else learned (0 = none). */
static int64_t rate_rpm(const struct pool_ep_cfg *c, const int64_t *f)
{
	return c->rpm > 0 ? c->rpm : f[STATE_LEARN_RPM];
}

static int64_t rate_tpm(const struct pool_ep_cfg *c, const int64_t *f)
{
	return c->tpm > 0 ? c->tpm : f[STATE_LEARN_TPM];
}

/* A request's estimate est as endpoint f charges it (pool.h, the token
 * charge): est x POOL_CHARGE_MARGIN x the measured charge, at least 1 and
 * never above est. */
static int64_t charged_est(const int64_t *f, int64_t est)
{
	int64_t r = f[STATE_TOK_CHARGE];
	if (est <= 0 || r <= 0)
		return est;
	double k = (double)r * POOL_CHARGE_MARGIN / STATE_CHARGE_ONE;
	if (k >= 1.0)
		return est;
	int64_t v = (int64_t)((double)est * k + 0.999);
	return v < 1 ? 1 : v;
}

/* An auth cooldown set for another key than ours: a fixed key need not
 * wait for it. */
static int foreign_key_cooldown(uint64_t key_fp, const int64_t *f)
{
	return f[STATE_COOL_CLASS] == POOL_BROKEN && f[STATE_KEY_FP] != 0 && key_fp != 0 && (uint64_t)f[STATE_KEY_FP] != key_fp;
}

/* Two questions, kept apart on purpose: when do the blockers the caller
 * must respect (cooldown, windows, server budgets) let go -- ready_ms --
 * and is the breaker in the way.  The partial-outage rule may override
 * the second, never the first. */
static void judge(struct pool_verdict *out, const struct pool_ep_cfg *cfg, uint64_t key_fp, const struct state_snap *s,
                  int64_t now_ms, int64_t est_tokens)
{
	const int64_t *f = s->f;
	int64_t ready = now_ms, paced = now_ms;
	if (f[STATE_COOL_UNTIL] > now_ms && !foreign_key_cooldown(key_fp, f))
		ready = max64(ready, f[STATE_COOL_UNTIL]);
	if (rate_rpm(cfg, f) > 0 && f[STATE_PACE_REQ] > now_ms * 1000)
		paced = max64(paced, (f[STATE_PACE_REQ] + 999) / 1000);
	if (rate_tpm(cfg, f) > 0 && f[STATE_PACE_TOK] > now_ms * 1000)
		paced = max64(paced, (f[STATE_PACE_TOK] + 999) / 1000);
	/* A server budget read off a reply is stale by the reply's latency and
	 * usually comes without a reset time; where the user configured the
	 * quota, or 429s taught one, the pacing above is the better authority
	 * (a 429 still cools, and corrects a learned rate). */
	int by429 = learned_from(f[STATE_LEARN_FROM], 0) == POOL_LEARN_429;
	int tby429 = learned_from(f[STATE_LEARN_FROM], 1) == POOL_LEARN_429;
	if (cfg->rpm == 0 && !by429 && f[STATE_REM_REQ] == 0 && now_ms < f[STATE_RESET_REQ])
		ready = max64(ready, f[STATE_RESET_REQ]);
	if (cfg->tpm == 0 && !tby429 && f[STATE_REM_TOK] >= 0 && f[STATE_REM_TOK] < (est_tokens > 0 ? est_tokens : 1) &&
	    now_ms < f[STATE_RESET_TOK])
		ready = max64(ready, f[STATE_RESET_TOK]);

	int64_t open_until = f[STATE_OPEN_UNTIL];
	int breaker_blocked = 0, probe = 0;
	if (open_until > now_ms)
		breaker_blocked = 1; /* open */
	else if (open_until != 0 && f[STATE_PROBE_UNTIL] > now_ms)
		breaker_blocked = 1; /* half-open, someone is probing */
	else if (open_until != 0)
		probe = 1; /* half-open, the probe is ours to take */

	out->paced_only = ready <= now_ms && paced > now_ms && !breaker_blocked && !probe;
	out->paced_ms = paced;
	ready = max64(ready, paced);
	int free_of_rest = ready <= now_ms;
	out->usable = free_of_rest && !breaker_blocked;
	out->probe = out->usable && probe;
	out->breaker_only = free_of_rest && breaker_blocked;
	out->ready_ms = ready;
	out->breaker_ms = breaker_blocked ? open_until : 0;
	out->last_fail_ms = f[STATE_LAST_FAIL];
}

void pool_judge(struct pool_verdict *out, const struct pool_ep_cfg *cfg, const struct state_snap *s, int64_t now_ms,
                int64_t est_tokens)
{
	judge(out, cfg, 0, s, now_ms, est_tokens);
}

size_t pool_wrr_cycle(uint8_t *out, size_t cap, const struct pool_ep_cfg *eps, size_t n, uint64_t members)
{
	int64_t cur[POOL_MAX_ENDPOINTS] = {0};
	int64_t total = 0;
	for (size_t i = 0; i < n && i < POOL_MAX_ENDPOINTS; i++)
		if (members & bit((int)i))
			total += eps[i].weight;
	if (total <= 0 || (size_t)total > cap)
		return 0;
	/* nginx's smooth WRR: everyone gains its weight, the richest is
	 * chosen and pays the total; over `total` rounds each endpoint is
	 * chosen exactly weight times, interleaved as evenly as possible. */
	for (int64_t r = 0; r < total; r++) {
		int best = -1;
		for (size_t i = 0; i < n && i < POOL_MAX_ENDPOINTS; i++) {
			if (!(members & bit((int)i)))
				continue;
			cur[i] += eps[i].weight;
			if (best < 0 || cur[i] > cur[best])
				best = (int)i;
		}
		cur[best] -= total;
		out[r] = (uint8_t)best;
	}
	return (size_t)total;
}

int pool_wrr_walk(const uint8_t *cycle, size_t len, uint64_t c, uint64_t usable)
{
	if (!len || !usable)
		return -1;
	size_t pos = (size_t)(c % len);
	for (size_t k = 0; k < len; k++) {
		int ep = cycle[pos];
		if (usable & bit(ep))
			return ep;
		if (++pos == len)
			pos = 0;
	}
	return -1;
}

int pool_fallback(const struct pool_verdict *v, size_t n, uint64_t candidates)
{
	int best = -1;
	for (size_t i = 0; i < n && i < POOL_MAX_ENDPOINTS; i++) {
		if (!(candidates & bit((int)i)))
			continue;
		if (best < 0 || v[i].breaker_ms < v[best].breaker_ms ||
		    (v[i].breaker_ms == v[best].breaker_ms && v[i].last_fail_ms < v[best].last_fail_ms))
			best = (int)i;
	}
	return best;
}

int64_t pool_wait(const struct pool_verdict *v, size_t n, uint64_t mask, int64_t now_ms)
{
	int64_t first = INT64_MAX;
	for (size_t i = 0; i < n && i < POOL_MAX_ENDPOINTS; i++) {
		if (!(mask & bit((int)i)))
			continue;
		int64_t t = v[i].ready_ms;
		if (v[i].breaker_only) /* open: until it half-opens; probing: a little while */
			t = max64(t, v[i].breaker_ms > now_ms ? v[i].breaker_ms : now_ms + 50);
		if (t < first)
			first = t;
	}
	if (first == INT64_MAX || first - now_ms < 1)
		return 1;
	return first - now_ms;
}

/* ---- opening ------------------------------------------------------------ */

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

/* The distinct priorities of eps in ascending order; returns how many. */
static unsigned tier_priorities(int *prio, const struct pool_ep_cfg *eps, size_t n)
{
	int sorted[POOL_MAX_ENDPOINTS];
	for (size_t i = 0; i < n; i++)
		sorted[i] = eps[i].priority;
	qsort(sorted, n, sizeof *sorted, cmp_int);
	unsigned t = 0;
	for (size_t i = 0; i < n; i++)
		if (t == 0 || sorted[i] != prio[t - 1])
			prio[t++] = sorted[i];
	return t;
}

static int check_eps(const struct pool_ep_cfg *eps, size_t n, struct err *err)
{
	if (n == 0)
		return err_set(err, CONVBI_ENOENDPOINT, "no endpoints to pick from; configure one");
	if (n > POOL_MAX_ENDPOINTS)
		return err_set(err, CONVBI_EINVAL, "%zu endpoints configured; at most %d are supported", n, POOL_MAX_ENDPOINTS);
	assert(eps);
	for (size_t i = 0; i < n; i++) {
		const struct pool_ep_cfg *e = &eps[i];
		const char *name = e->name ? e->name : "?";
		if (!e->name && !e->identity)
			return err_set(err, CONVBI_EINVAL, "endpoint %zu has no name; give it one", i);
		if (e->weight < 1 || e->weight > POOL_MAX_WEIGHT)
			return err_set(err, CONVBI_EINVAL, "endpoint `%s` has weight %d; use 1 to %d", name, e->weight,
			               POOL_MAX_WEIGHT);
		if (e->rpm < 0 || e->tpm < 0)
			return err_set(err, CONVBI_EINVAL, "endpoint `%s` has a negative rpm or tpm; use 0 for no limit", name);
	}
	return CONVBI_OK;
}

int pool_shape(struct state_shape *out, const struct pool_ep_cfg *eps, size_t n, struct err *err)
{
	int prio[POOL_MAX_ENDPOINTS];
	int rc = check_eps(eps, n, err);
	if (rc)
		return rc;
	uint64_t h = state_hash(STATE_HASH_INIT, "convbi-pool", 11);
	uint32_t version = STATE_VERSION, count = (uint32_t)n;
	h = state_hash(h, &version, sizeof version);
	h = state_hash(h, &count, sizeof count);
	for (size_t i = 0; i < n; i++) {
		const char *id = eps[i].identity ? eps[i].identity : eps[i].name;
		int32_t pw[2] = {eps[i].priority, eps[i].weight};
		h = state_hash(h, id, strlen(id) + 1);
		h = state_hash(h, pw, sizeof pw);
	}
	out->n_slots = (uint32_t)n;
	out->n_tiers = tier_priorities(prio, eps, n);
	out->set_hash = h;
	return CONVBI_OK;
}

/* "endpoint NAME (URL)" for c, the URL shown without its secrets (an
 * identity is "url|deployment|model"); "endpoint NAME" when it has none.
 * NULL when out of memory. */
static char *ep_label(const struct pool_ep_cfg *c)
{
	char url[512] = "", raw[512];
	size_t n = strcspn(c->identity, "|");
	if (strcmp(c->identity, c->name) && n > 0 && n < sizeof raw) {
		memcpy(raw, c->identity, n);
		raw[n] = 0;
		secret_url_shown(url, sizeof url, raw);
	}
	size_t cap = strlen(c->name) + strlen(url) + 16;
	char *out = xmalloc(cap);
	if (out)
		snprintf(out, cap, url[0] ? "endpoint %s (%s)" : "endpoint %s", c->name, url);
	return out;
}

/* Builds everything but the state: copies, tiers, cycles. */
static int pool_build(struct pool **out, const struct pool_ep_cfg *eps, size_t n, struct err *err)
{
	int prio[POOL_MAX_ENDPOINTS];
	*out = NULL;
	int rc = check_eps(eps, n, err);
	if (rc)
		return rc;
	struct pool *p = xcalloc(1, sizeof *p);
	if (!p)
		return err_set(err, CONVBI_ENOMEM, "out of memory opening the endpoint pool");
	p->n = n;
	size_t total = 0;
	for (size_t i = 0; i < n; i++) {
		p->eps[i] = eps[i];
		p->eps[i].name = xstrdup(eps[i].name ? eps[i].name : eps[i].identity);
		p->eps[i].identity = xstrdup(eps[i].identity ? eps[i].identity : eps[i].name);
		total += (size_t)eps[i].weight;
		if (!p->eps[i].name || !p->eps[i].identity || !(p->labels[i] = ep_label(&p->eps[i])))
			goto nomem;
	}
	p->cycle = xmalloc(total);
	if (!p->cycle)
		goto nomem;
	p->ntiers = tier_priorities(prio, eps, n);
	size_t off = 0;
	for (unsigned t = 0; t < p->ntiers; t++) {
		uint64_t members = 0;
		for (size_t i = 0; i < n; i++)
			if (eps[i].priority == prio[t])
				members |= bit((int)i);
		p->tiers[t].members = members;
		p->tiers[t].off = off;
		p->tiers[t].len = pool_wrr_cycle(p->cycle + off, total - off, eps, n, members);
		off += p->tiers[t].len;
	}
	*out = p;
	return CONVBI_OK;
nomem:
	pool_close(p);
	return err_set(err, CONVBI_ENOMEM, "out of memory opening the endpoint pool");
}

int pool_open_state(struct pool **out, const struct pool_ep_cfg *eps, size_t n, struct state *st, struct err *err)
{
	struct state_shape shape;
	*out = NULL;
	int rc = pool_shape(&shape, eps, n, err);
	if (!rc && (!st || st->shape.n_slots != shape.n_slots || st->shape.n_tiers != shape.n_tiers ||
	            st->shape.set_hash != shape.set_hash))
		rc = err_set(err, CONVBI_EINVAL, "the endpoint state was opened for another endpoint set");
	if (!rc)
		rc = pool_build(out, eps, n, err);
	if (rc) {
		state_close(st);
		return rc;
	}
	(*out)->st = st;
	state_set_labels(st, (const char *const *)(*out)->labels);
	return CONVBI_OK;
}

int pool_open(struct pool **out, const struct pool_ep_cfg *eps, size_t n, const char *state_path, struct err *err)
{
	struct state_shape shape;
	struct state *st = NULL;
	*out = NULL;
	int rc = pool_shape(&shape, eps, n, err);
	if (!rc)
		rc = state_open_path(&st, state_path, &shape, err);
	return rc ? rc : pool_open_state(out, eps, n, st, err);
}

int pool_open_private(struct pool **out, const struct pool_ep_cfg *eps, size_t n, struct err *err)
{
	struct state_shape shape;
	struct state *st = NULL;
	*out = NULL;
	int rc = pool_shape(&shape, eps, n, err);
	if (!rc)
		rc = state_open_memory(&st, &shape, err);
	return rc ? rc : pool_open_state(out, eps, n, st, err);
}

void pool_close(struct pool *p)
{
	if (!p)
		return;
	state_close(p->st);
	for (size_t i = 0; i < p->n; i++) {
		free(p->labels[i]);
		free((char *)p->eps[i].name);
		free((char *)p->eps[i].identity);
	}
	free(p->cycle);
	free(p);
}

int pool_is_shared(const struct pool *p)
{
	return p && state_is_shared(p->st);
}
const char *pool_backend_status(const struct pool *p)
{
	return p ? state_describe(p->st) : "none";
}
struct state *pool_state(struct pool *p)
{
	return p->st;
}

const char *pool_state_path(const struct pool *p)
{
	return p ? state_path(p->st) : NULL;
}
size_t pool_size(const struct pool *p)
{
	return p ? p->n : 0;
}

const char *pool_name(const struct pool *p, int ep)
{
	return (p && ep >= 0 && (size_t)ep < p->n) ? p->eps[ep].name : NULL;
}

void pool_reset_state(struct pool *p)
{
	if (p)
		p->st->ops->reset(p->st);
}

void pool_set_key(struct pool *p, int ep, const char *key, size_t key_len)
{
	if (!p || ep < 0 || (size_t)ep >= p->n || !key)
		return;
	/* identity, a NUL, the key: no two (identity, key) pairs give one input */
	const char *id = p->eps[ep].identity;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned len = 0;
	int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) && EVP_DigestUpdate(ctx, id, strlen(id) + 1) &&
	         EVP_DigestUpdate(ctx, key, key_len) && EVP_DigestFinal_ex(ctx, p->key_id[ep], &len) &&
	         len == SHA256_DIGEST_LENGTH;
	EVP_MD_CTX_free(ctx);
	p->has_key[ep] = (unsigned char)ok;
}

uint64_t pool_key_fp(struct pool *p, int ep)
{
	unsigned char secret[STATE_SECRET_LEN], mac[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	if (!p || ep < 0 || (size_t)ep >= p->n || !p->has_key[ep])
		return 0;
	p->st->ops->secret(p->st, secret);
	int ok = HMAC(EVP_sha256(), secret, (int)sizeof secret, p->key_id[ep], SHA256_DIGEST_LENGTH, mac, &len) != NULL &&
	         len >= 8;
	memset(secret, 0, sizeof secret);
	if (!ok)
		return 0; /* no fingerprint: the cooldown then holds back every key, as it did before fingerprints */
	uint64_t fp = 0;
	for (int i = 0; i < 8; i++)
		fp = fp << 8 | mac[i];
	fp &= ~((uint64_t)1 << 63); /* the state word is signed: keep it positive */
	return fp ? fp : 1;
}

/* Our key's fingerprint, made only when the snapshot holds an auth
 * cooldown that names a key (the MAC costs a microsecond, and on Redis
 * asking for the secret ends a batch of loads). */
static uint64_t key_fp_if_asked(struct pool *p, int ep, const int64_t *f)
{
	return f[STATE_COOL_CLASS] == POOL_BROKEN && f[STATE_KEY_FP] != 0 ? pool_key_fp(p, ep) : 0;
}

int pool_reset_endpoint(struct pool *p, int ep)
{
	if (!p || ep < 0 || (size_t)ep >= p->n)
		return CONVBI_EINVAL;
	p->st->ops->clear(p->st, (unsigned)ep);
	return CONVBI_OK;
}

/* ---- learning the quota ---------------------------------------------------
 * For an endpoint without a configured rpm (tpm), STATE_LEARN_RPM (TPM)
 * holds what every process has learned, and paces exactly as a configured
 * figure would.  Each update is a few single-word operations; the two
 * that must happen once per event are CASes: LEARN_UNTIL (one cut per
 * cooldown episode, however many processes see its 429s) and LEARN_RUN
 * (one raise per run of successes). */

static void set_from(struct state *st, unsigned ep, int tokens, int from)
{
	int shift = tokens ? 8 : 0;
	for (int i = 0; i < 8; i++) {
		int64_t old = st->ops->get(st, ep, STATE_LEARN_FROM);
		int64_t v = (old & ~((int64_t)0xff << shift)) | (int64_t)from << shift;
		if (old == v || st->ops->cas(st, ep, STATE_LEARN_FROM, old, v))
			return;
	}
}

/* STATE_LEARN_STEP packs the rpm step in bits 0-31 and the tpm step in
 * 32-62 (kept under 2^31, so the word stays non-negative), and
 * STATE_LEARN_MAX the rates the last cuts were made from, alike; the bit
 * work is unsigned, where shifts are defined. */
#define STEP_MAX ((int64_t)0x7fffffff)

static void set_half(struct state *st, unsigned ep, int field, int tokens, int64_t step)
{
	int shift = tokens ? 32 : 0;
	uint64_t mask = (uint64_t)0xffffffffu << shift;
	step = step < 0 ? 0 : step > STEP_MAX ? STEP_MAX : step;
	for (int i = 0; i < 8; i++) {
		int64_t old = st->ops->get(st, ep, field);
		int64_t v = (int64_t)(((uint64_t)old & ~mask) | (uint64_t)step << shift);
		if (old == v || st->ops->cas(st, ep, field, old, v))
			return;
	}
}

static int64_t step_of(int64_t packed, int tokens)
{
	return (int64_t)(((uint64_t)packed >> (tokens ? 32 : 0)) & 0xffffffffu);
}

/* A per-minute budget implied by x-ratelimit-remaining-* and its
 * x-ratelimit-reset-*, for a service that sends them without the limit:
 * a bucket of L per minute refilling evenly is full again after
 * T = (L - R) * 60 s / L, so L = R * 60 s / (60 s - T).  -1 when the pair
 * does not say (no reset, or one a minute or longer away). */
static int64_t implied_limit(int64_t remaining, int64_t reset_ms)
{
	if (remaining < 1 || reset_ms < 0 || reset_ms >= 60000)
		return -1;
	double limit = (double)remaining * 60000.0 / (double)(60000 - reset_ms);
	return limit < (double)STATE_RATE_MAX ? (int64_t)limit : STATE_RATE_MAX;
}

/* The budgets the service announces: x-ratelimit-limit-tokens is a
 * per-minute figure (Azure and OpenAI alike) and seeds the learned tpm;
 * x-ratelimit-limit-requests is per minute only when sent with
 * x-ratelimit-reset-requests (OpenAI's form; Azure counts requests over
 * 1 or 10 s windows and says not which), and then seeds the learned rpm.
 * Without a limit, a remaining count with its reset time seeds a rate
 * nothing else has (implied_limit).  A rate already cut by a 429 is only
 * ever lowered to an announcement, never to an implied figure. */
static void learn_from_headers(struct pool *p, unsigned e, const struct pool_outcome *o)
{
	struct state *st = p->st;
	const struct pool_ep_cfg *c = &p->eps[e];
	int64_t from = st->ops->get(st, e, STATE_LEARN_FROM);
	for (int tokens = 0; tokens < 2; tokens++) {
		int64_t limit = tokens ? o->limit_tokens : (o->reset_requests_ms > 0 ? o->limit_requests : -1);
		int field = tokens ? STATE_LEARN_TPM : STATE_LEARN_RPM, was = learned_from(from, tokens);
		if ((tokens ? c->tpm : c->rpm) > 0)
			continue;
		int64_t cur = st->ops->get(st, e, field);
		if (limit <= 0) {
			limit = tokens ? implied_limit(o->remaining_tokens, o->reset_tokens_ms)
			               : implied_limit(o->remaining_requests, o->reset_requests_ms);
			if (limit > 0 && (was == POOL_LEARN_NONE || cur == 0)) {
				st->ops->store(st, e, field, limit);
				set_from(st, e, tokens, POOL_LEARN_HEADER);
			}
		} else if (was == POOL_LEARN_429) {
			if (cur > limit)
				st->ops->store(st, e, field, limit);
		} else if (cur != limit) {
			st->ops->store(st, e, field, limit);
			set_from(st, e, tokens, POOL_LEARN_HEADER);
		}
	}
}

/* The rate (per minute) the endpoint admitted from the measurement's
 * start to until_ms -- requests, or their estimated tokens (what Azure
 * counts against a TPM) -- or -1 when that span is too short or too thin
 * to say.  "Admitted" counts at the send (STATE_ADM: +1 at a pick, -1 at
 * a refusal), so a request on its way counts from the instant it went,
 * as it does at the service.  A cut measures up to the end of the
 * cooldown the 429 asked for: the service's window has admitted what it
 * admits until then, so a burst at the start of a window is not taken for
 * the rate (a window of L per W admits L in an instant, then nothing until
 * W has passed). */
static double admitted_rate(struct state *st, unsigned e, int64_t until_ms, int tokens)
{
	int64_t since = st->ops->get(st, e, STATE_MEAS_SINCE);
	int64_t n = st->ops->get(st, e, STATE_ADM) - st->ops->get(st, e, STATE_MEAS_ADM);
	if (since <= 0 || until_ms - since < POOL_LEARN_MEASURE_MIN_MS || n < 2)
		return -1;
	if (tokens)
		n = st->ops->get(st, e, STATE_ADM_TOK) - st->ops->get(st, e, STATE_MEAS_TOK);
	return (double)n * 60000.0 / (double)(until_ms - since);
}

/* Restarts the admitted-rate measurement from since_ms: for a cut, the
 * end of its cooldown (the endpoint admits nothing before it, and
 * counting that time would understate what it admits). */
static void measure_restart(struct state *st, unsigned e, int64_t since_ms)
{
	st->ops->store(st, e, STATE_MEAS_SINCE, since_ms);
	st->ops->store(st, e, STATE_MEAS_ADM, st->ops->get(st, e, STATE_ADM));
	st->ops->store(st, e, STATE_MEAS_TOK, st->ops->get(st, e, STATE_ADM_TOK));
}

/* 1 when endpoint c learns anything (a rate is not configured). */
static int learns(const struct pool_ep_cfg *c)
{
	return c->rpm == 0 || c->tpm == 0;
}

/* A request sent to a learning endpoint counts as admitted until refused;
 * the first one starts the measurement (one more round trip, once, for a
 * remote state). */
static void count_sent(struct pool *p, unsigned e, const struct state_snap *s, int64_t now_ms, int64_t est)
{
	struct state *st = p->st;
	if (!learns(&p->eps[e]))
		return;
	if (s->f[STATE_MEAS_SINCE] == 0 && st->ops->cas(st, e, STATE_MEAS_SINCE, 0, now_ms)) {
		st->ops->store(st, e, STATE_MEAS_ADM, s->f[STATE_ADM]); /* nothing counted before it */
		st->ops->store(st, e, STATE_MEAS_TOK, s->f[STATE_ADM_TOK]);
	}
	st->ops->bump(st, e, STATE_ADM, 1);
	if (est > 0)
		st->ops->bump(st, e, STATE_ADM_TOK, est);
}

/* A refused request (429, failure) was not admitted after all. */
static void count_refused(struct pool *p, unsigned e, int64_t est)
{
	struct state *st = p->st;
	if (!learns(&p->eps[e]))
		return;
	st->ops->bump(st, e, STATE_ADM, -1);
	if (est > 0)
		st->ops->bump(st, e, STATE_ADM_TOK, -est);
}

/* The first 429 of an episode (one per cooldown, however many processes
 * see its 429s) owes a cut, made when the cooldown ends (learn_settle):
 * by then every request sent before it has been answered or is on its
 * way to an answer that counts. */
static void learn_owe(struct pool *p, unsigned e, int64_t now_ms, int64_t cool_until, int tokens)
{
	struct state *st = p->st;
	const struct pool_ep_cfg *c = &p->eps[e];
	if ((tokens ? c->tpm : c->rpm) > 0)
		return;
	int64_t until = st->ops->get(st, e, STATE_LEARN_UNTIL);
	if (now_ms < until)
		return;
	if (!st->ops->cas(st, e, STATE_LEARN_UNTIL, until, max64(cool_until, now_ms) + POOL_LEARN_EPISODE_MS))
		return; /* another process owes it already */
	st->ops->store(st, e, STATE_LEARN_PEND, max64(cool_until, now_ms) << 1 | tokens);
}

/* The successes a run of raises takes: about a second of traffic at the
 * request rate rpm while the rate is probed, about three otherwise --
 * POOL_LEARN_RUN at 600 a minute and more -- and at least
 * POOL_LEARN_RUN_PROBE.  A run counts up to POOL_LEARN_RUN from this much
 * less (its head start). */
static int64_t run_head(int64_t rpm, int probe)
{
	if (rpm <= 0)
		return 0; /* no request rate known: the usual run */
	int64_t n = rpm / (probe ? 60 : 20);
	n = n < POOL_LEARN_RUN_PROBE ? POOL_LEARN_RUN_PROBE : n > POOL_LEARN_RUN ? POOL_LEARN_RUN : n;
	return POOL_LEARN_RUN - n;
}

/* The request rate that times an endpoint's runs: configured or learned. */
static int64_t run_rpm(struct state *st, unsigned e, const struct pool_ep_cfg *c)
{
	return c->rpm > 0 ? c->rpm : st->ops->get(st, e, STATE_LEARN_RPM);
}

/* 1 when a learned rate is probed, not nudged: its last cut was not from
 * the rate itself, and says so by leaving no rate in STATE_LEARN_MAX
 * (maxes, as that word holds it) for "back" to climb to. */
static int probing(int64_t maxes, int tokens)
{
	return step_of(maxes, tokens) == 0;
}

/* The cut owed (pend, as STATE_LEARN_PEND holds it), made once by the
 * first picker after the cooldown (pool.h tells the rules): a floor to
 * probe from when the traffic never tested the rate, back before the
 * last probe's step when a probe went past the quota, else POOL_LEARN_CUT
 * of the rate. */
static void learn_settle(struct pool *p, unsigned e, int64_t pend)
{
	struct state *st = p->st;
	const struct pool_ep_cfg *c = &p->eps[e];
	if (!st->ops->cas(st, e, STATE_LEARN_PEND, pend, 0))
		return; /* another picker settled it */
	int64_t horizon = pend >> 1;
	int tokens = (int)(pend & 1);
	int field = tokens ? STATE_LEARN_TPM : STATE_LEARN_RPM;
	int64_t cur = st->ops->get(st, e, field);
	double admitted = admitted_rate(st, e, horizon, tokens);
	if (admitted <= 0 && cur <= 0)
		return;
	int reached = cur > 0 && (admitted <= 0 || admitted >= POOL_LEARN_REACHED * (double)cur);
	int64_t was_step = step_of(st->ops->get(st, e, STATE_LEARN_STEP), tokens);
	int64_t base, next, step;
	int probe;
	if (!reached) { /* a floor: the traffic's rate (first cut), or half the rate */
		base = (int64_t)(cur > 0 ? POOL_LEARN_SPARSE * (double)cur : admitted);
		next = (int64_t)((double)base * POOL_LEARN_CUT);
		step = next / POOL_LEARN_PROBE_DIV;
		probe = 1;
	} else if (probing(st->ops->get(st, e, STATE_LEARN_MAX), tokens)) {
		/* a probe went past the quota: back to the rate before its step
		 * (half the one stored for the next), the next step a quarter of it */
		int64_t last = was_step / 2 < cur ? was_step / 2 : cur / 2;
		base = next = cur - last;
		step = last / 4;
		probe = step >= next / POOL_LEARN_PROBE_DIV && step > 0;
		if (!probe)
			step = next / POOL_LEARN_STEP_DIV;
	} else {
		base = cur;
		next = (int64_t)((double)base * POOL_LEARN_CUT);
		step = next / POOL_LEARN_STEP_DIV;
		probe = 0;
	}
	next = next < 1 ? 1 : next;
	st->ops->store(st, e, field, next);
	set_half(st, e, STATE_LEARN_STEP, tokens, step > 0 ? step : 1);
	set_half(st, e, STATE_LEARN_MAX, tokens, probe ? 0 : base);
	set_from(st, e, tokens, POOL_LEARN_429);
	st->ops->store(st, e, STATE_LEARN_RUN, run_head(run_rpm(st, e, c), probe));
	measure_restart(st, e, horizon);
}

/* A success: every run of them (run_head), a rate learned from 429s that
 * the traffic is actually pressing against goes up by its step -- unless
 * a cut is owed.  Gently (the traffic admitted at least
 * POOL_LEARN_PRESSING of the rate since the last cut): halfway back to
 * the rate of the last cut while that is more than the step, else the
 * step, which grows by half (by one at least) up to a tenth of the rate.
 * Probing (the same, measured since the last raise, the measurement
 * restarting at each): by the step, which then doubles.  A
 * measurement gone stale (no traffic for a while) starts over. */
static void learn_raise(struct pool *p, unsigned e, int64_t now_ms)
{
	struct state *st = p->st;
	const struct pool_ep_cfg *c = &p->eps[e];
	int64_t since = st->ops->get(st, e, STATE_MEAS_SINCE);
	if (since > 0 && now_ms - since > POOL_LEARN_MEASURE_STALE_MS) {
		if (st->ops->cas(st, e, STATE_MEAS_SINCE, since, now_ms)) {
			st->ops->store(st, e, STATE_MEAS_ADM, st->ops->get(st, e, STATE_ADM));
			st->ops->store(st, e, STATE_MEAS_TOK, st->ops->get(st, e, STATE_ADM_TOK));
		}
		return;
	}
	int64_t from = st->ops->get(st, e, STATE_LEARN_FROM);
	int rpm429 = c->rpm == 0 && learned_from(from, 0) == POOL_LEARN_429;
	int tpm429 = c->tpm == 0 && learned_from(from, 1) == POOL_LEARN_429;
	if (!rpm429 && !tpm429)
		return;
	int64_t run = st->ops->add(st, e, STATE_LEARN_RUN, 1) + 1;
	if (run < POOL_LEARN_RUN || !st->ops->cas(st, e, STATE_LEARN_RUN, run, 0))
		return;
	int64_t steps = st->ops->get(st, e, STATE_LEARN_STEP), maxes = st->ops->get(st, e, STATE_LEARN_MAX);
	int probed = 0, raised = 0;
	for (int tokens = 0; tokens < 2 && st->ops->get(st, e, STATE_LEARN_PEND) == 0; tokens++) {
		int field = tokens ? STATE_LEARN_TPM : STATE_LEARN_RPM;
		if (!(tokens ? tpm429 : rpm429))
			continue;
		int64_t cur = st->ops->get(st, e, field), was = step_of(steps, tokens) > 0 ? step_of(steps, tokens) : 1;
		int probe = probing(maxes, tokens);
		probed |= probe;
		double admitted = admitted_rate(st, e, now_ms, tokens);
		if (admitted < POOL_LEARN_PRESSING * (double)cur)
			continue;
		int64_t step = was, next = was;
		if (probe) {
			next = was * 2;
		} else {
			int64_t below = step_of(maxes, tokens) - cur; /* under the rate of the last cut: back there fast */
			if (below / POOL_LEARN_BACK_DIV > step)
				step = below / POOL_LEARN_BACK_DIV;
			next = was * POOL_LEARN_GROW_NUM / POOL_LEARN_GROW_DEN;
			next = next > was ? next : was + 1;
			next = next > (cur + step) / 10 ? (cur + step) / 10 : next;
		}
		if (step > STATE_RATE_MAX - cur) /* never past what the state holds */
			step = STATE_RATE_MAX - cur;
		if (!st->ops->cas(st, e, field, cur, cur + step))
			continue; /* a cut or another raise came between: what was read is stale */
		raised = 1;
		if (next > was)
			set_half(st, e, STATE_LEARN_STEP, tokens, next);
	}
	if (probed && raised)
		measure_restart(st, e, now_ms);
	st->ops->add(st, e, STATE_LEARN_RUN, run_head(run_rpm(st, e, c), probed));
}

/* ---- the token charge (pool.h) ------------------------------------------ */

/* A success whose reply said the service's token budget (limit L,
 * remaining R): the charge per estimated token, (L - R) / the endpoint's
 * sliding minute of raw estimates, into the moving average.  Read, blend,
 * store: two reports racing lose one sample, which an average can afford. */
static void charge_note(struct pool *p, unsigned e, int64_t now_ms, const struct pool_outcome *o)
{
	struct state *st = p->st;
	if (o->limit_tokens <= 0 || o->remaining_tokens < 0 || o->remaining_tokens > o->limit_tokens ||
	    now_ms < st->ops->get(st, e, STATE_LEARN_UNTIL))
		return;
	struct state_snap s;
	st->ops->load(st, e, now_ms, 1, &s);
	if (s.win[STATE_WIN_REQ] < POOL_CHARGE_MIN_REQ || s.win[STATE_WIN_TOK] <= 0)
		return;
	double target = (double)(o->limit_tokens - o->remaining_tokens) / (double)s.win[STATE_WIN_TOK];
	if (target > 1.0)
		target = 1.0;
	if (target < 1.0 / POOL_CHARGE_FLOOR_DIV)
		target = 1.0 / POOL_CHARGE_FLOOR_DIV;
	double old = s.f[STATE_TOK_CHARGE] > 0 ? (double)s.f[STATE_TOK_CHARGE] / STATE_CHARGE_ONE : 1.0;
	double v = target >= old ? target : old + (target - old) / POOL_CHARGE_WEIGHT; /* up at once, down by steps */
	int64_t next = (int64_t)(v * STATE_CHARGE_ONE + 0.5);
	next = next < 1 ? 1 : next > STATE_CHARGE_ONE ? STATE_CHARGE_ONE : next;
	if (next != s.f[STATE_TOK_CHARGE])
		st->ops->store(st, e, STATE_TOK_CHARGE, next);
}

/* ---- latency ------------------------------------------------------------ */

/* The moving average latency (us) of a snapshot at now_ms; 0 = unknown
 * (never measured, or not lately). */
static int64_t latency_us(const int64_t *f, int64_t now_ms)
{
	return f[STATE_LAT_AT] > 0 && now_ms - f[STATE_LAT_AT] <= POOL_LAT_STALE_MS ? f[STATE_LAT_EWMA] : 0;
}

/* The endpoints of set that are not slow: within POOL_LAT_SLOW of the
 * quickest known latency among them, or of unknown latency. */
static uint64_t quick_of(const struct pool *p, const struct state_snap *s, uint64_t set, int64_t now_ms)
{
	int64_t best = INT64_MAX;
	for (size_t i = 0; i < p->n; i++) {
		int64_t l = (set & bit((int)i)) ? latency_us(s[i].f, now_ms) : 0;
		if (l > 0 && l < best)
			best = l;
	}
	if (best == INT64_MAX)
		return set;
	uint64_t quick = 0;
	for (size_t i = 0; i < p->n; i++) {
		int64_t l = (set & bit((int)i)) ? latency_us(s[i].f, now_ms) : -1;
		if (l == 0 || (l > 0 && (double)l <= POOL_LAT_SLOW * (double)best))
			quick |= bit((int)i);
	}
	return quick;
}

/* A success's latency into the moving average.  Read, blend, store: two
 * reports racing lose one sample, which an average can afford. */
static void latency_note(struct state *st, unsigned e, int64_t now_ms, int64_t latency_ms)
{
	int64_t us = latency_ms * 1000, old = st->ops->get(st, e, STATE_LAT_EWMA);
	int64_t at = st->ops->get(st, e, STATE_LAT_AT);
	int64_t v = old > 0 && at > 0 && now_ms - at <= POOL_LAT_STALE_MS ? old + (us - old) / POOL_LAT_WEIGHT : us;
	st->ops->store(st, e, STATE_LAT_EWMA, v > 0 ? v : 1);
	st->ops->store(st, e, STATE_LAT_AT, now_ms);
}

/* ---- a renewed state (attack6 F8) ---------------------------------------------
 * A state file rebuilt, created again or replaced under running processes
 * (state.h, renewed) starts with nothing learned: its callers would go
 * unpaced, burst, and have the burst's rate taken for the quota -- 5-25x
 * over it.  So each process remembers the learned figures it last loaded
 * (nonzero ones only: a zero may be a slot half rebuilt) and, when it finds
 * the state renewed, puts them back into every slot that has learned
 * nothing since (a CAS from 0 per field: the first process to do it wins,
 * and whatever was learned meanwhile stays), with the rate-limit
 * cooldowns it saw and the cut it saw owed (a first cut is owed for a
 * whole cooldown -- a minute, for a per-minute quota -- and made from what
 * the endpoint admitted since the measurement began: made from the
 * rebuilt file's few seconds instead, it takes a burst for the rate).  An operator's reset does not
 * renew the state: what it clears stays cleared. */

static void cool(struct state *st, unsigned ep, int64_t until, int cls);

/* Remembers the learned figures of the snapshot of ep, and its rate-limit
 * cooldown (the service's window: the callers it holds back would go at
 * once into a rebuilt file). */
static void learned_seen(struct pool *p, int ep, const struct state_snap *s)
{
	for (int k = 0; k < POOL_SEEN_FIELDS; k++) {
		int64_t v = s->f[seen_fields[k]];
		if (v > 0 && atomic_load_explicit(&p->seen[ep][k], memory_order_relaxed) != v)
			atomic_store_explicit(&p->seen[ep][k], v, memory_order_relaxed);
	}
	int64_t until = s->f[STATE_COOL_UNTIL];
	if (s->f[STATE_COOL_CLASS] == POOL_RATE_LIMITED && until > atomic_load_explicit(&p->seen_cool[ep], memory_order_relaxed))
		atomic_store_explicit(&p->seen_cool[ep], until, memory_order_relaxed);
	/* a cut owed, with what it is to be measured by (0: none owed) */
	const int64_t owed[POOL_OWED_FIELDS] = {s->f[STATE_LEARN_PEND], s->f[STATE_LEARN_UNTIL], s->f[STATE_MEAS_SINCE],
	                                        s->f[STATE_ADM] - s->f[STATE_MEAS_ADM],
	                                        s->f[STATE_ADM_TOK] - s->f[STATE_MEAS_TOK]};
	for (int k = 0; k < POOL_OWED_FIELDS; k++)
		if (atomic_load_explicit(&p->seen_owed[ep][k], memory_order_relaxed) != owed[k])
			atomic_store_explicit(&p->seen_owed[ep][k], owed[k], memory_order_relaxed);
}

/* Puts back into ep the cut owed that we saw (learned_seen), unless the
 * slot owes one already: the measurement it is to be made from starts
 * where it started, with what was admitted since then counted in. */
static void owed_restore(struct pool *p, unsigned ep, int64_t now_ms)
{
	struct state *st = p->st;
	int64_t owed[POOL_OWED_FIELDS];
	for (int k = 0; k < POOL_OWED_FIELDS; k++)
		owed[k] = atomic_load_explicit(&p->seen_owed[ep][k], memory_order_relaxed);
	/* one whose cooldown ended long ago was settled in the old file, or is stale */
	if (owed[0] == 0 || owed[2] <= 0 || (owed[0] >> 1) < now_ms - POOL_LEARN_MEASURE_STALE_MS ||
	    !st->ops->cas(st, ep, STATE_LEARN_PEND, 0, owed[0]))
		return;
	st->ops->max(st, ep, STATE_LEARN_UNTIL, owed[1]);
	int64_t since = st->ops->get(st, ep, STATE_MEAS_SINCE);
	if (since == 0 || since > owed[2]) {
		if (since == 0) { /* nothing counted in this slot before it */
			st->ops->store(st, ep, STATE_MEAS_ADM, st->ops->get(st, ep, STATE_ADM));
			st->ops->store(st, ep, STATE_MEAS_TOK, st->ops->get(st, ep, STATE_ADM_TOK));
		}
		st->ops->store(st, ep, STATE_MEAS_SINCE, owed[2]);
		st->ops->add(st, ep, STATE_MEAS_ADM, -owed[3]);
		st->ops->add(st, ep, STATE_MEAS_TOK, -owed[4]);
	}
}

/* Puts back into ep's field a rate we saw learned: the first process to
 * look seeds it; a rate there already (seeded, or learned in the renewed
 * state from a burst) is only ever lowered to ours -- never above what any
 * process that saw it knew. */
static void rate_restore(struct state *st, unsigned ep, int field, int64_t v)
{
	for (int tries = 0; tries < 8; tries++) {
		int64_t cur = st->ops->get(st, ep, field);
		if ((cur > 0 && cur <= v) || st->ops->cas(st, ep, field, cur, v))
			return;
	}
}

/* When the state was renewed since we last looked, puts back what we saw
 * learned; returns 1 when it did (snapshots taken before are stale). */
static int learned_restore(struct pool *p, int64_t now_ms)
{
	uint32_t was = atomic_load(&p->seen_renewed), now = atomic_load(&p->st->renewed);
	if (was == now || !atomic_compare_exchange_strong(&p->seen_renewed, &was, now))
		return 0;
	for (size_t i = 0; i < p->n; i++)
		for (int k = 0; k < POOL_SEEN_FIELDS; k++) {
			int64_t v = atomic_load_explicit(&p->seen[i][k], memory_order_relaxed);
			if (v > 0 && (seen_fields[k] == STATE_LEARN_RPM || seen_fields[k] == STATE_LEARN_TPM))
				rate_restore(p->st, (unsigned)i, seen_fields[k], v);
			else if (v > 0)
				p->st->ops->cas(p->st, (unsigned)i, seen_fields[k], 0, v);
		}
	for (size_t i = 0; i < p->n; i++) {
		int64_t until = atomic_load_explicit(&p->seen_cool[i], memory_order_relaxed);
		if (until > now_ms)
			cool(p->st, (unsigned)i, until, POOL_RATE_LIMITED); /* raises only */
		owed_restore(p, (unsigned)i, now_ms);
	}
	return 1;
}

void pool_leave(struct pool *p, int64_t now_ms)
{
	int saw = 0;
	for (size_t i = 0; p && i < p->n; i++)
		saw |= atomic_load_explicit(&p->seen[i][0], memory_order_relaxed) > 0 ||
		       atomic_load_explicit(&p->seen[i][1], memory_order_relaxed) > 0;
	if (!saw)
		return;
	struct state_snap s;
	state_recheck(p->st);
	p->st->ops->load(p->st, 0, now_ms, 0, &s); /* reopens a file lost since the last look */
	learned_restore(p, now_ms);
}

/* ---- picking ------------------------------------------------------------ */

/* Microseconds that `amount` requests or tokens occupy under a per-minute
 * budget: with the safety margin for a configured or announced budget,
 * without it for one learned by AIMD (which already sits under the
 * quota). */
static int64_t pace_us(int64_t amount, int64_t per_minute, int learned)
{
	return (int64_t)((double)amount * 60e6 / (double)per_minute * (learned ? 1.0 : POOL_PACE_MARGIN));
}

/* Claims the next paced slot of a field, one starting no later than
 * limit_us (now, or a slot ahead: a reservation); *at_us is raised to the
 * slot's start.  The new time starts from the old one when it is recent
 * (within half a slot) or ahead, so a waiter's wake-up latency is not lost
 * from the budget, and from now otherwise.  A reservation retries a CAS
 * lost to another claimer (the next slot may still be within the limit). */
static int pace_claim(struct state *st, unsigned ep, int field, int64_t now_ms, int64_t slot_us, int64_t limit_us, int64_t *at_us,
                      int64_t taken[2])
{
	int64_t now_us = now_ms * 1000;
	for (int tries = 0; tries < (limit_us > now_us ? POOL_AHEAD_TRIES : 1); tries++) {
		int64_t old = st->ops->get(st, ep, field);
		int64_t start = old >= now_us - slot_us / 2 ? old : now_us;
		if (start > limit_us)
			return 0;
		if (st->ops->cas(st, ep, field, old, start + slot_us)) {
			*at_us = max64(*at_us, start);
			taken[0] = old;
			taken[1] = start + slot_us;
			return 1;
		}
	}
	return 0;
}

/* Gives back a slot pace_claim took, while it is still the last one. */
static void pace_unclaim(struct state *st, unsigned ep, int field, const int64_t taken[2])
{
	st->ops->cas(st, ep, field, taken[1], taken[0]);
}

/* The microseconds one request of est tokens occupies ep's pacing: the
 * longer of its rpm and tpm slots (0 when it is not paced). */
static int64_t slot_us_of(const struct pool *p, int ep, const struct state_snap *s, int64_t est)
{
	const struct pool_ep_cfg *c = &p->eps[ep];
	int64_t rpm = rate_rpm(c, s->f), tpm = rate_tpm(c, s->f), slot = 0;
	int by429 = c->rpm == 0 && learned_from(s->f[STATE_LEARN_FROM], 0) == POOL_LEARN_429;
	int tby429 = c->tpm == 0 && learned_from(s->f[STATE_LEARN_FROM], 1) == POOL_LEARN_429;
	if (rpm > 0)
		slot = pace_us(1, rpm, by429);
	if (tpm > 0)
		slot = max64(slot, pace_us(est > 0 ? est : 1, tpm, tby429));
	return slot;
}

/* Takes what ep needs for this attempt: the probe slot (CAS from the value
 * judged free) and the window charges.  Returns 1 if all were won; on a
 * lost race gives back what it took and returns 0 (a window was full) or
 * -1 (another picker took the probe: ep is now half-open and busy). */
static int claim(struct pool *p, int ep, const struct pool_verdict *v, const struct state_snap *s, int64_t now_ms, int64_t raw,
                 int64_t est, int64_t limit_ms, int64_t *at_ms, int64_t taken[2][2])
{
	struct state *st = p->st;
	const struct state_ops *ops = st->ops;
	const struct pool_ep_cfg *c = &p->eps[ep];
	int64_t probe_until = now_ms + POOL_PROBE_TIMEOUT_MS;
	if (v->probe && !ops->cas(st, (unsigned)ep, STATE_PROBE_UNTIL, s->f[STATE_PROBE_UNTIL], probe_until))
		return -1;
	int64_t rpm = rate_rpm(c, s->f), tpm = rate_tpm(c, s->f), at_us = now_ms * 1000;
	int by429 = c->rpm == 0 && learned_from(s->f[STATE_LEARN_FROM], 0) == POOL_LEARN_429;
	int tby429 = c->tpm == 0 && learned_from(s->f[STATE_LEARN_FROM], 1) == POOL_LEARN_429;
	int64_t limit_us = limit_ms > INT64_MAX / 1000 ? INT64_MAX : limit_ms * 1000;
	int64_t *req_taken = taken[0], *tok_taken = taken[1];
	req_taken[0] = req_taken[1] = tok_taken[0] = tok_taken[1] = 0; /* 0, 0: nothing taken */
	if (rpm > 0 && !pace_claim(st, (unsigned)ep, STATE_PACE_REQ, now_ms, pace_us(1, rpm, by429), limit_us, &at_us, req_taken))
		goto refused;
	if (tpm > 0 && !pace_claim(st, (unsigned)ep, STATE_PACE_TOK, now_ms, pace_us(est > 0 ? est : 1, tpm, tby429), limit_us,
	                           &at_us, tok_taken)) {
		if (rpm > 0) /* the rpm slot goes back unless another claimer took the next one meanwhile */
			pace_unclaim(st, (unsigned)ep, STATE_PACE_REQ, req_taken);
		goto refused;
	}
	*at_ms = max64(now_ms, (at_us + 999) / 1000);
	ops->window_add(st, (unsigned)ep, STATE_WIN_REQ, now_ms, 1, 0);
	if (raw > 0) /* the raw estimate: the token charge is measured against it */
		ops->window_add(st, (unsigned)ep, STATE_WIN_TOK, now_ms, raw, 0);
	if (*at_ms <= now_ms) /* a reservation counts when it is confirmed, at its send */
		count_sent(p, (unsigned)ep, s, now_ms, est);
	return 1;
refused:
	if (v->probe)
		ops->cas(st, (unsigned)ep, STATE_PROBE_UNTIL, probe_until, 0);
	return 0;
}

/* Walks tier t's cycle from counter value c over the endpoints in mask,
 * claiming each in turn until one is won (1: *out filled) or none is left
 * (0).  A lost claim drops the endpoint from *usable (and a lost probe
 * makes it a fallback candidate like any busy one). */
static int take_now(struct pool *p, unsigned t, uint64_t c, uint64_t mask, struct pool_verdict *v, const struct state_snap *s,
                    int64_t now_ms, int64_t raw, const int64_t *est, uint64_t *usable, uint64_t *breaker_only,
                    struct pool_pick *out)
{
	const struct pool_tier *tier = &p->tiers[t];
	int ep;
	while ((ep = pool_wrr_walk(p->cycle + tier->off, tier->len, c, mask & *usable)) >= 0) {
		int64_t at = now_ms;
		int won = claim(p, ep, &v[ep], &s[ep], now_ms, raw, est[ep], now_ms, &at, out->pace_taken);
		if (won > 0) {
			out->ep = ep;
			out->est_tokens = est[ep];
			out->probe = v[ep].probe;
			out->at_ms = now_ms;
			out->counted = 1;
			return 1;
		}
		*usable &= ~bit(ep);
		if (won < 0) {
			v[ep].breaker_only = 1;
			v[ep].breaker_ms = s[ep].f[STATE_OPEN_UNTIL];
			*breaker_only |= bit(ep);
		}
	}
	return 0;
}

/* Reserves the earliest paced slot among the endpoints in mask (held back
 * by their pacing alone), trying them in the order their slots come; with
 * slots > 0, only a slot starting within that many of the endpoint's own
 * slots from now.  1 with *out filled (at_ms: the slot's start), else 0. */
static int reserve(struct pool *p, const struct pool_verdict *v, const struct state_snap *s, uint64_t mask, int64_t now_ms,
                   int64_t raw, const int64_t *est, int slots, int64_t latest_ms, struct pool_pick *out)
{
	while (mask) {
		int ep = -1;
		for (size_t i = 0; i < p->n; i++)
			if ((mask & bit((int)i)) && (ep < 0 || v[i].paced_ms < v[ep].paced_ms))
				ep = (int)i;
		mask &= ~bit(ep);
		int64_t limit = slots > 0 ? now_ms + slots * slot_us_of(p, ep, &s[ep], est[ep]) / 1000 : INT64_MAX;
		if (limit > latest_ms)
			limit = latest_ms;
		int64_t at = now_ms;
		if (claim(p, ep, &v[ep], &s[ep], now_ms, raw, est[ep], limit, &at, out->pace_taken) > 0) {
			out->ep = ep;
			out->est_tokens = est[ep];
			out->at_ms = at;
			out->counted = at <= now_ms;
			return 1;
		}
	}
	return 0;
}

static int pick_impl(struct pool *p, int64_t now_ms, uint64_t exclude, int64_t est_tokens, int ahead, int64_t latest_ms,
                     struct pool_pick *out)
{
	struct pool_verdict v[POOL_MAX_ENDPOINTS];
	struct state_snap s[POOL_MAX_ENDPOINTS];
	int64_t est[POOL_MAX_ENDPOINTS]; /* est_tokens as each endpoint charges it */
	assert(p && out);
	out->ep = -1;
	out->wait_ms = 0;
	out->probe = 0;
	out->at_ms = 0;
	out->made_ms = now_ms;
	out->counted = 0;
	out->est_tokens = est_tokens;
	memset(out->pace_taken, 0, sizeof out->pace_taken);
	uint64_t live = all_of(p->n) & ~exclude;
	if (!live)
		return CONVBI_ENOENDPOINT;

	uint64_t usable = 0, breaker_only = 0, paced = 0;
	for (size_t i = 0; i < p->n; i++) {
		if (!(live & bit((int)i)))
			continue;
		const struct pool_ep_cfg *c = &p->eps[i];
		p->st->ops->load(p->st, (unsigned)i, now_ms, c->rpm > 0 || c->tpm > 0, &s[i]);
		if (learned_restore(p, now_ms)) /* the state was renewed under this load: look again */
			p->st->ops->load(p->st, (unsigned)i, now_ms, c->rpm > 0 || c->tpm > 0, &s[i]);
		int64_t pend = s[i].f[STATE_LEARN_PEND];
		if (pend != 0 && (pend >> 1) <= now_ms) { /* a cooldown ended: its cut is due */
			learn_settle(p, (unsigned)i, pend);
			p->st->ops->load(p->st, (unsigned)i, now_ms, c->rpm > 0 || c->tpm > 0, &s[i]);
		}
		learned_seen(p, (int)i, &s[i]);
		est[i] = charged_est(s[i].f, est_tokens);
		judge(&v[i], c, key_fp_if_asked(p, (int)i, s[i].f), &s[i], now_ms, est[i]);
		usable |= v[i].usable ? bit((int)i) : 0;
		breaker_only |= v[i].breaker_only ? bit((int)i) : 0;
		paced |= ahead && v[i].paced_only ? bit((int)i) : 0;
	}

	/* Each tier in turn: its quick endpoints free now (the tier's counter
	 * walks them), then -- reserving -- a quick one's slot a few slots
	 * ahead, then its slow endpoints free now.  A lost claim drops that
	 * endpoint and goes on, so this runs at most a few claims per
	 * endpoint. */
	for (unsigned t = 0; t < p->ntiers; t++) {
		uint64_t mine = (usable | paced) & p->tiers[t].members;
		if (!mine)
			continue;
		uint64_t quick = quick_of(p, s, mine, now_ms), c = 0;
		int counted = 0;
		if (usable & mine & quick) {
			c = p->st->ops->counter_next(p->st, t);
			counted = 1;
			if (take_now(p, t, c, mine & quick, v, s, now_ms, est_tokens, est, &usable, &breaker_only, out))
				return CONVBI_OK;
		}
		if (reserve(p, v, s, paced & mine & quick, now_ms, est_tokens, est, POOL_AHEAD_SLOTS, latest_ms, out))
			return CONVBI_OK;
		if (usable & mine) {
			if (!counted)
				c = p->st->ops->counter_next(p->st, t);
			if (take_now(p, t, c, mine, v, s, now_ms, est_tokens, est, &usable, &breaker_only, out))
				return CONVBI_OK;
		}
	}
	/* Reserving, nothing free nor near: the slot that comes first, in the
	 * first tier that has one. */
	for (unsigned t = 0; t < p->ntiers; t++)
		if (reserve(p, v, s, paced & p->tiers[t].members, now_ms, est_tokens, est, 0, latest_ms, out))
			return CONVBI_OK;

	/* The partial-outage rule: offer a breaker-blocked endpoint only when
	 * no other endpoint frees up soon by itself (a rate-limited or paced
	 * one is healthy: waiting for it beats calling a failing one). */
	int64_t soonest = INT64_MAX;
	for (size_t i = 0; i < p->n; i++)
		if ((live & bit((int)i)) && !v[i].breaker_only && v[i].ready_ms > now_ms && v[i].ready_ms < soonest)
			soonest = v[i].ready_ms;
	int ep = soonest - now_ms > POOL_BREAKER_PAUSE_MAX_MS ? pool_fallback(v, p->n, breaker_only) : -1;
	if (ep >= 0) {
		p->st->ops->window_add(p->st, (unsigned)ep, STATE_WIN_REQ, now_ms, 1, 0);
		if (est_tokens > 0)
			p->st->ops->window_add(p->st, (unsigned)ep, STATE_WIN_TOK, now_ms, est_tokens, 0);
		count_sent(p, (unsigned)ep, &s[ep], now_ms, est[ep]);
		out->ep = ep;
		out->est_tokens = est[ep];
		out->at_ms = now_ms;
		out->counted = 1;
		return CONVBI_OK;
	}
	out->wait_ms = pool_wait(v, p->n, live, now_ms);
	return CONVBI_OK;
}

int pool_pick(struct pool *p, int64_t now_ms, uint64_t exclude, int64_t est_tokens, struct pool_pick *out)
{
	return pick_impl(p, now_ms, exclude, est_tokens, 0, INT64_MAX, out);
}

int pool_pick_ahead(struct pool *p, int64_t now_ms, uint64_t exclude, int64_t est_tokens, int64_t latest_ms,
                    struct pool_pick *out)
{
	return pick_impl(p, now_ms, exclude, est_tokens, 1, latest_ms, out);
}

int pool_confirm(struct pool *p, struct pool_pick *pick, int64_t now_ms)
{
	struct state_snap s;
	if (!p || !pick || pick->ep < 0 || (size_t)pick->ep >= p->n)
		return 0;
	p->st->ops->load(p->st, (unsigned)pick->ep, now_ms, 0, &s);
	if (learned_restore(p, now_ms))
		p->st->ops->load(p->st, (unsigned)pick->ep, now_ms, 0, &s);
	learned_seen(p, pick->ep, &s);
	const int64_t *f = s.f;
	/* a cooldown set after the reservation was made voids it, even one
	 * already over: a 429 says the slots queued before it were too close */
	if (f[STATE_COOL_UNTIL] > pick->made_ms && !foreign_key_cooldown(key_fp_if_asked(p, pick->ep, f), f))
		return 0;
	if (f[STATE_OPEN_UNTIL] != 0 && !pick->probe)
		return 0;
	/* Woken late: the slots not handed out yet move by the lateness, so
	 * the late send does not crowd the ones after it into one of the
	 * service's windows (the cost, the lateness, is ours to bear). */
	int64_t late_us = (now_ms - pick->at_ms) * 1000;
	if (pick->at_ms > pick->made_ms && late_us > POOL_LATE_MS * 1000)
		for (int k = 0; k < 2; k++) {
			int field = k ? STATE_PACE_TOK : STATE_PACE_REQ;
			if (f[field] > now_ms * 1000)
				p->st->ops->add(p->st, (unsigned)pick->ep, field, late_us);
		}
	if (!pick->counted) {
		count_sent(p, (unsigned)pick->ep, &s, now_ms, pick->est_tokens);
		pick->counted = 1;
	}
	return 1;
}

/* ---- reporting ---------------------------------------------------------- */

static int64_t breaker_pause(int64_t level)
{
	int64_t pause = POOL_BREAKER_PAUSE_MS;
	for (int64_t i = 0; i < level && pause < POOL_BREAKER_PAUSE_MAX_MS; i++)
		pause *= 2;
	return pause < POOL_BREAKER_PAUSE_MAX_MS ? pause : POOL_BREAKER_PAUSE_MAX_MS;
}

/* Stores v only if the field differs: reports are frequent and every
 * write invalidates the line that every pick in every process reads. */
static void store_if(struct state *st, unsigned ep, int field, int64_t v)
{
	if (st->ops->get(st, ep, field) != v)
		st->ops->store(st, ep, field, v);
}

/* Raises the cooldown and notes why (advisory: the class and the
 * deadline are two words, and the class is only used for messages). */
static void cool(struct state *st, unsigned ep, int64_t until, int cls)
{
	if (st->ops->get(st, ep, STATE_COOL_UNTIL) < until) {
		st->ops->max(st, ep, STATE_COOL_UNTIL, until);
		store_if(st, ep, STATE_COOL_CLASS, cls);
	}
}

static void report_failure(struct pool *p, unsigned ep, int64_t now_ms, int probe)
{
	struct state *st = p->st;
	const struct state_ops *ops = st->ops;
	ops->add(st, ep, STATE_FAILURES, 1);
	ops->store(st, ep, STATE_LAST_FAIL, now_ms);
	int64_t streak = ops->add(st, ep, STATE_FAIL_STREAK, 1) + 1;
	if (probe) {
		int64_t level = ops->add(st, ep, STATE_PAUSE_LEVEL, 1) + 1;
		ops->store(st, ep, STATE_OPEN_UNTIL, now_ms + breaker_pause(level));
		ops->store(st, ep, STATE_PROBE_UNTIL, 0);
	} else if (streak >= POOL_BREAKER_THRESHOLD && ops->get(st, ep, STATE_OPEN_UNTIL) == 0) {
		int64_t level = ops->get(st, ep, STATE_PAUSE_LEVEL);
		ops->cas(st, ep, STATE_OPEN_UNTIL, 0, now_ms + breaker_pause(level));
	}
}

/* What a service said, within what the state holds (state.h,
 * STATE_WAIT_MAX_MS and STATE_RATE_MAX): a wait of days longer, or a limit
 * past any real one, is kept at the bound, never stored for the state's
 * check to clear (and the endpoint to be called again at once). */
static struct pool_outcome outcome_within_bounds(const struct pool_outcome *in)
{
	struct pool_outcome o = *in;
	int64_t *waits[] = {&o.retry_after_ms, &o.reset_requests_ms, &o.reset_tokens_ms};
	int64_t *counts[] = {&o.remaining_requests, &o.remaining_tokens, &o.limit_requests, &o.limit_tokens};
	for (size_t i = 0; i < sizeof waits / sizeof *waits; i++)
		if (*waits[i] > STATE_WAIT_MAX_MS)
			*waits[i] = STATE_WAIT_MAX_MS;
	for (size_t i = 0; i < sizeof counts / sizeof *counts; i++)
		if (*counts[i] > STATE_RATE_MAX)
			*counts[i] = STATE_RATE_MAX;
	return o;
}

void pool_report(struct pool *p, int ep, int64_t now_ms, const struct pool_outcome *reported)
{
	if (!p || !reported || ep < 0 || (size_t)ep >= p->n)
		return;
	struct pool_outcome within = outcome_within_bounds(reported);
	const struct pool_outcome *o = &within;
	struct state *st = p->st;
	const struct state_ops *ops = st->ops;
	unsigned e = (unsigned)ep;
	ops->add(st, e, STATE_CALLS, 1);
	if (o->tokens > 0)
		ops->add(st, e, STATE_TOKENS, o->tokens);
	switch (o->cls) {
	case POOL_OK:
		ops->add(st, e, STATE_OK, 1);
		store_if(st, e, STATE_FAIL_STREAK, 0);
		store_if(st, e, STATE_COOL_STREAK, 0);
		if (ops->get(st, e, STATE_OPEN_UNTIL) != 0) {
			ops->store(st, e, STATE_PAUSE_LEVEL, 0);
			ops->store(st, e, STATE_OPEN_UNTIL, 0);
		}
		/* The key works: an auth cooldown (another key's) is over. */
		if (ops->get(st, e, STATE_COOL_CLASS) == POOL_BROKEN && ops->get(st, e, STATE_KEY_FP) != 0 &&
		    ops->get(st, e, STATE_COOL_UNTIL) > now_ms) {
			ops->store(st, e, STATE_COOL_UNTIL, 0);
			ops->store(st, e, STATE_KEY_FP, 0);
		}
		if (o->latency_ms > 0)
			latency_note(st, e, now_ms, o->latency_ms);
		learn_raise(p, e, now_ms);
		charge_note(p, e, now_ms, o);
		break;
	case POOL_RATE_LIMITED: {
		ops->add(st, e, STATE_RATE_LIMITED, 1);
		int64_t until;
		if (o->retry_after_ms >= 0) {
			until = now_ms + o->retry_after_ms;
		} else {
			int64_t n = ops->add(st, e, STATE_COOL_STREAK, 1);
			int64_t d = POOL_COOL_DEFAULT_MS;
			for (int64_t i = 0; i < n && d < POOL_COOL_MAX_MS; i++)
				d *= 2;
			until = now_ms + (d < POOL_COOL_MAX_MS ? d : POOL_COOL_MAX_MS);
		}
		cool(st, e, until, POOL_RATE_LIMITED);
		learn_owe(p, e, now_ms, until, o->tokens_bound);
		/* When the cooldown ends, the paced callers go one slot at a
		 * time from its end, not all at once; slots reserved beyond it
		 * were spaced too close (pool_confirm voids them) and start
		 * over from there. */
		ops->store(st, e, STATE_PACE_REQ, until * 1000);
		ops->store(st, e, STATE_PACE_TOK, until * 1000);
		break;
	}
	case POOL_SERVER:
	case POOL_TRANSPORT:
		report_failure(p, e, now_ms, o->probe);
		if (o->retry_after_ms >= 0)
			cool(st, e, now_ms + o->retry_after_ms, POOL_SERVER);
		break;
	case POOL_BROKEN:
		ops->add(st, e, STATE_FAILURES, 1);
		/* An auth cooldown names the key it is for (a keyed fingerprint,
		 * never the key): a process whose key differs ignores it. */
		store_if(st, e, STATE_KEY_FP, o->auth ? (int64_t)pool_key_fp(p, ep) : 0);
		cool(st, e, now_ms + POOL_BROKEN_COOL_MS, POOL_BROKEN);
		if (ops->get(st, e, STATE_COOL_CLASS) != POOL_BROKEN)
			ops->store(st, e, STATE_COOL_CLASS, POOL_BROKEN);
		break;
	default: /* POOL_CLIENT and unknown classes: nothing about health */ break;
	}
	if (o->cls != POOL_OK && o->cls != POOL_CLIENT)
		count_refused(p, e, o->est_tokens);
	/* A probe that did not fail the breaker (OK, 429, broken, client)
	 * gives the slot back; report_failure already did for the others. */
	if (o->probe && o->cls != POOL_SERVER && o->cls != POOL_TRANSPORT)
		ops->store(st, e, STATE_PROBE_UNTIL, 0);
	/* Reset time first, then the count: a reader in between sees the old
	 * count with the new deadline, never a zero with a stale deadline. */
	if (o->remaining_requests >= 0) {
		int64_t r = o->reset_requests_ms >= 0 ? o->reset_requests_ms : POOL_BUDGET_RESET_DEFAULT_MS;
		ops->store(st, e, STATE_RESET_REQ, now_ms + r);
		store_if(st, e, STATE_REM_REQ, o->remaining_requests);
	}
	if (o->remaining_tokens >= 0) {
		int64_t r = o->reset_tokens_ms >= 0 ? o->reset_tokens_ms : POOL_BUDGET_RESET_DEFAULT_MS;
		ops->store(st, e, STATE_RESET_TOK, now_ms + r);
		store_if(st, e, STATE_REM_TOK, o->remaining_tokens);
	}
	if (o->limit_requests > 0 || o->limit_tokens > 0 || (o->remaining_requests > 0 && o->reset_requests_ms >= 0) ||
	    (o->remaining_tokens > 0 && o->reset_tokens_ms >= 0))
		learn_from_headers(p, e, o);
	learned_restore(p, now_ms); /* a caller that reports and leaves still puts back what it saw */
}

void pool_abandon(struct pool *p, const struct pool_pick *pick)
{
	if (!p || !pick || pick->ep < 0 || (size_t)pick->ep >= p->n)
		return;
	if (pick->probe)
		p->st->ops->store(p->st, (unsigned)pick->ep, STATE_PROBE_UNTIL, 0);
	if (pick->counted) /* never sent: not admitted */
		count_refused(p, (unsigned)pick->ep, pick->est_tokens);
	else if (pick->at_ms > pick->made_ms) { /* a reservation given up (Ctrl-C, a cooldown): its slots go back */
		for (int f = 1; f >= 0; f--)    /* while each is still the last one: nobody reserved after it */
			if (pick->pace_taken[f][1])
				pace_unclaim(p->st, (unsigned)pick->ep, f ? STATE_PACE_TOK : STATE_PACE_REQ, pick->pace_taken[f]);
	}
}

struct pool_outcome pool_outcome_of(int cls)
{
	struct pool_outcome o = {cls, -1, -1, -1, -1, -1, 0, 0, -1, -1, 0, 0, 0, -1};
	return o;
}

/* ---- live state ----------------------------------------------------------- */

int pool_live_get(struct pool *p, int ep, int64_t now_ms, struct pool_live *out)
{
	struct state_snap s;
	if (!p || !out || ep < 0 || (size_t)ep >= p->n)
		return CONVBI_EINVAL;
	p->st->ops->load(p->st, (unsigned)ep, now_ms, 1, &s);
	const int64_t *f = s.f;
	memset(out, 0, sizeof *out);
	out->cool_until_ms = f[STATE_COOL_UNTIL];
	out->breaker_until_ms = f[STATE_OPEN_UNTIL];
	out->breaker = f[STATE_OPEN_UNTIL] == 0       ? POOL_BREAKER_CLOSED
	               : f[STATE_OPEN_UNTIL] > now_ms ? POOL_BREAKER_OPEN
	                                              : POOL_BREAKER_HALF_OPEN;
	out->consecutive_failures = (int)f[STATE_FAIL_STREAK];
	int req = f[STATE_REM_REQ] >= 0 && now_ms < f[STATE_RESET_REQ];
	int tok = f[STATE_REM_TOK] >= 0 && now_ms < f[STATE_RESET_TOK];
	out->remaining_requests = req ? f[STATE_REM_REQ] : -1;
	out->remaining_tokens = tok ? f[STATE_REM_TOK] : -1;
	out->budget_reset_ms = -1;
	if (req)
		out->budget_reset_ms = f[STATE_RESET_REQ];
	if (tok && f[STATE_RESET_TOK] > out->budget_reset_ms)
		out->budget_reset_ms = f[STATE_RESET_TOK];
	out->cool_class = (int)s.f[STATE_COOL_CLASS];
	out->window_requests = s.win[STATE_WIN_REQ];
	out->window_tokens = s.win[STATE_WIN_TOK];
	out->calls = (uint64_t)f[STATE_CALLS];
	out->ok = (uint64_t)f[STATE_OK];
	out->rate_limited = (uint64_t)f[STATE_RATE_LIMITED];
	out->failures = (uint64_t)f[STATE_FAILURES];
	out->tokens = (uint64_t)f[STATE_TOKENS];
	const struct pool_ep_cfg *c = &p->eps[ep];
	out->key_fp_other = f[STATE_COOL_UNTIL] > now_ms && foreign_key_cooldown(key_fp_if_asked(p, ep, f), f);
	out->learned_rpm = c->rpm > 0 ? 0 : f[STATE_LEARN_RPM];
	out->learned_tpm = c->tpm > 0 ? 0 : f[STATE_LEARN_TPM];
	out->learned_rpm_from = out->learned_rpm ? learned_from(f[STATE_LEARN_FROM], 0) : POOL_LEARN_NONE;
	out->learned_tpm_from = out->learned_tpm ? learned_from(f[STATE_LEARN_FROM], 1) : POOL_LEARN_NONE;
	out->latency_ms = latency_us(f, now_ms) / 1000;
	out->token_charge = f[STATE_TOK_CHARGE] > 0 ? (double)f[STATE_TOK_CHARGE] / STATE_CHARGE_ONE : 0;
	return CONVBI_OK;
}

const char *pool_learn_from_name(int from)
{
	switch (from) {
	case POOL_LEARN_NONE: return "none";
	case POOL_LEARN_HEADER: return "header";
	case POOL_LEARN_429: return "429";
	}
	return "?";
}

const char *pool_breaker_name(int breaker)
{
	switch (breaker) {
	case POOL_BREAKER_CLOSED: return "closed";
	case POOL_BREAKER_OPEN: return "open";
	case POOL_BREAKER_HALF_OPEN: return "half_open";
	}
	return "?";
}
