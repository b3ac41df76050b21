/* quota.c -- per-endpoint rate limits as exact sliding windows.
 *
 * Azure evaluates a deployment's RPM over short windows (1 s or 10 s) and
 * its TPM per minute; the fake offers all of them, each off when 0:
 *   rps   requests per sliding 1-s window
 *   rp10s requests per sliding 10-s window
 *   rpm   requests per sliding 60-s window
 *   tpm   estimated tokens per sliding 60-s window -- or, with the
 *         scenario's tpm_span_ms, tpm x span / 60 s per sliding span (so a
 *         short benchmark can be bound by tokens, not by a minute's burst)
 * A request window keeps a ring with the times of its last `limit` admitted
 * requests: a request fits when fewer than `limit` of them are younger than
 * the window, and when it does not, the oldest says to the millisecond when
 * a slot frees (retry-after-ms).  The token window keeps a queue of (time,
 * tokens).  A request is admitted only if it fits every window at once, and
 * only an admitted request is charged (Azure does not charge a 429).
 *
 * A request window's limit may change while it runs (quota_set: a quota
 * raised or cut, as an operator does): the ring keeps its youngest admits
 * that fit the new limit, so a cut binds at once and a raise frees slots.
 *
 * Pure bookkeeping: times come from the caller (monotonic ms) and callers
 * hold the endpoint's mutex.
 */
#include "fake_aoai.h"

#include <stdlib.h>
#include <string.h>

static const int64_t req_span_ms[3] = {1000, 10000, 60000};

void quota_init(struct quota *q, int rps, int rp10s, int rpm, long tpm, int64_t tpm_span_ms)
{
	const int limits[3] = {rps, rp10s, rpm};
	memset(q, 0, sizeof *q);
	for (int i = 0; i < 3; i++) {
		q->req[i].limit = limits[i];
		q->req[i].span_ms = req_span_ms[i];
		if (limits[i] > 0)
			q->req[i].t = xcalloc((size_t)limits[i], sizeof(int64_t));
	}
	q->tok.per_minute = tpm;
	q->tok.span_ms = tpm_span_ms;
	q->tok.limit = tpm > 0 ? (long)((double)tpm * (double)tpm_span_ms / 60000.0) : 0;
	if (tpm > 0 && q->tok.limit < 1)
		q->tok.limit = 1;
}

void quota_release(struct quota *q)
{
	for (int i = 0; i < 3; i++)
		free(q->req[i].t);
	free(q->tok.e);
	memset(q, 0, sizeof *q);
}

/* Moves window w to limit, keeping its youngest admits (as many as fit). */
static void rwin_set(struct rwin *w, int limit)
{
	int64_t *t = limit > 0 ? xcalloc((size_t)limit, sizeof(int64_t)) : NULL;
	int keep = w->n < limit ? w->n : limit;
	for (int i = 0; i < keep; i++)
		t[i] = w->t[(w->head + w->n - keep + i) % w->limit];
	free(w->t);
	w->t = t;
	w->limit = limit;
	w->head = 0;
	w->n = keep;
}

void quota_set(struct quota *q, int rps, int rp10s, int rpm)
{
	const int limits[3] = {rps, rp10s, rpm};
	for (int i = 0; i < 3; i++)
		if (limits[i] >= 0 && limits[i] != q->req[i].limit)
			rwin_set(&q->req[i], limits[i]);
}

void quota_reset(struct quota *q)
{
	for (int i = 0; i < 3; i++)
		q->req[i].head = q->req[i].n = 0;
	q->tok.head = q->tok.n = 0;
	q->tok.sum = 0;
}

static void rwin_expire(struct rwin *w, int64_t now)
{
	while (w->n > 0 && w->t[w->head] <= now - w->span_ms) {
		w->head = (w->head + 1) % w->limit;
		w->n--;
	}
}

static void twin_expire(struct twin *w, int64_t now)
{
	while (w->head < w->n && w->e[w->head].t <= now - w->span_ms) {
		w->sum -= w->e[w->head].tokens;
		w->head++;
	}
	if (w->head == w->n)
		w->head = w->n = 0;
}

/* When the token window would admit `tokens` more: walk from the oldest
 * entry until enough tokens have expired.  A request bigger than the whole
 * limit never fits; it is told to come back after a full window, which is
 * what a client can act on. */
static int64_t twin_retry_ms(const struct twin *w, int64_t now, long tokens)
{
	if (tokens > w->limit)
		return w->span_ms;
	long excess = w->sum + tokens - w->limit, freed = 0;
	for (size_t i = w->head; i < w->n; i++) {
		freed += w->e[i].tokens;
		if (freed >= excess)
			return w->e[i].t + w->span_ms - now;
	}
	return w->span_ms;
}

static void twin_push(struct twin *w, int64_t now, long tokens)
{
	if (w->n == w->cap) {
		if (w->head > 0) {
			memmove(w->e, w->e + w->head, (w->n - w->head) * sizeof *w->e);
			w->n -= w->head;
			w->head = 0;
		} else {
			w->cap = w->cap ? w->cap * 2 : 64;
			w->e = xrealloc(w->e, w->cap * sizeof *w->e);
		}
	}
	w->e[w->n].t = now;
	w->e[w->n].tokens = tokens;
	w->n++;
	w->sum += tokens;
}

void quota_take(struct quota *q, int64_t now, long tokens, struct quota_verdict *v)
{
	memset(v, 0, sizeof *v);
	v->ok = 1;
	v->rem_req = v->lim_req = v->rem_tok = v->lim_tok = -1;

	for (int i = 0; i < 3; i++) {
		struct rwin *w = &q->req[i];
		if (w->limit <= 0)
			continue;
		rwin_expire(w, now);
		if (w->n >= w->limit) {
			int64_t wait = w->t[w->head] + w->span_ms - now;
			if (v->ok || wait > v->retry_ms)
				v->retry_ms = wait;
			v->ok = 0;
		}
	}
	struct twin *tw = &q->tok;
	if (tw->limit > 0) {
		twin_expire(tw, now);
		if (tw->sum + tokens > tw->limit) {
			int64_t wait = twin_retry_ms(tw, now, tokens);
			if (v->ok || wait > v->retry_ms) {
				v->retry_ms = wait;
				v->tokens = 1;
			}
			v->ok = 0;
		}
	}
	if (v->retry_ms < 1 && !v->ok)
		v->retry_ms = 1;

	if (v->ok) {
		for (int i = 0; i < 3; i++) {
			struct rwin *w = &q->req[i];
			if (w->limit > 0)
				w->t[(w->head + w->n++) % w->limit] = now;
		}
		if (tw->limit > 0)
			twin_push(tw, now, tokens);
	}

	/* report the tightest request window, as a client would want to know */
	for (int i = 0; i < 3; i++) {
		const struct rwin *w = &q->req[i];
		if (w->limit <= 0)
			continue;
		long rem = (long)w->limit - w->n;
		if (v->rem_req < 0 || rem < v->rem_req) {
			v->rem_req = rem;
			v->lim_req = w->limit;
		}
	}
	if (tw->limit > 0) {
		v->lim_tok = tw->per_minute;
		v->rem_tok = tw->limit - tw->sum > 0 ? tw->limit - tw->sum : 0;
	}
}
