/* state_redis.c -- the "redis" state backend (see state_redis.h).
 *
 * Owns: one hiredis connection (blocking, with send/receive timeouts),
 * the local fallback state, a snapshot of the whole endpoint set, and the
 * queue of pipelined writes not yet answered.  One mutex guards all of it;
 * the connection is used by one thread at a time.
 *
 * Data: the endpoint set lives in one Redis hash, KEY = <prefix>state1:<16
 * hex digits of the set hash> ("state1" is this encoding's version; the
 * set hash covers the endpoints and STATE_VERSION).  Hash fields:
 *   t<tier>               round-robin counter of a tier
 *   <ep>.<field name>     an endpoint field (field_name[] below), absent =
 *                         fresh: 0, or -1 for rem_req and rem_tok
 *   <ep>.wreq<i> .wtok<i> window bucket i of 8, "<epoch>:<count>", the
 *                         same ring as the file backend (state.h)
 *   born                  the hash's birth mark, set by the first fetch
 *                         that finds none (born_check)
 * The secret that keys the key fingerprints (state_ops.secret) lives in
 * SECRET = <prefix>secret1:<16 hex digits>, 64 hex digits: set once by
 * the first process that connects (SET NX), its TTL renewed at every
 * connect (STATE_REDIS_SPEND_TTL_MS), never cleared by a reset.
 * Spending lives apart, in SPEND = <prefix>spend1:<16 hex digits>, whose
 * TTL (STATE_REDIS_SPEND_TTL_MS, 40 days) outlives a month's budget and
 * which an endpoint's clear leaves alone.  Fields "<ep>.day", "<ep>.month",
 * "set.day", "set.month", each "<period>:<micro-USD>", and beside each the
 * part held by calls in flight ("<ep>.held_day", ..., state.h STATE_HELD).
 * Numbers travel as decimal strings; the scripts compare them as Lua
 * doubles, exact below 2^53: every counter and timestamp the pool keeps,
 * pacing's microsecond times included (2^53 us is the year 2255).
 *
 * The external contract relied on (Redis >= 2.6 semantics, tested on 7.0):
 *   EVALSHA sha 2 KEY SPEND op ttl_ms field default a b c -- the script
 *     below; every write runs in it, atomically, and ends with PEXPIRE of
 *     the key it wrote;
 *   SCRIPT LOAD at connect; a NOSCRIPT error (script cache flushed, a
 *     promoted replica) is answered by sending the same call as EVAL;
 *   HGETALL KEY (snapshot), HGET KEY field (get), DEL KEY (reset);
 *   AUTH [user] password, SELECT db, SET SECRET hex NX PX ttl, PEXPIRE
 *   SECRET ttl and GET SECRET at connect.
 *
 * Round trips, measured (tests/bench/bench_redis.c) and minimised without
 * touching the pool:
 *   - a pick loads every live endpoint in ascending order with one now_ms
 *     and nothing in between: the first load fetches the whole hash
 *     (HGETALL) and the rest of that run of loads is served from it, as if
 *     they had been made at that instant (the pool already tolerates loads
 *     from either side of a concurrent update).  Any other operation ends
 *     the run.  With cache_ms > 0 the snapshot also serves later loads
 *     while younger than cache_ms by the caller's clock; our own writes are
 *     applied to it as they go, other hosts' writes are seen late by up to
 *     cache_ms (the documented trade-off).
 *   - writes whose result is known in advance (store; window_add without a
 *     limit, which always charges) are pipelined: sent at once, their
 *     replies read in front of the next synchronous call.  Ordering on the
 *     one connection is kept, so our own later reads see them.
 * A pick is then two round trips (snapshot, counter), plus a get and a cas
 * for each paced budget (rpm, tpm) the endpoint has; a report is one per
 * add/get/cas the pool makes (8 for a success with budget headers).
 *
 * Failure: any I/O error, timeout or error reply drops the connection and
 * switches every operation to the local state (rs_down) with one log_warn
 * (at most one a minute; later ones are log_info).  The cooldowns of the
 * last snapshot are carried into the local state so the fallback does not
 * start blind, and the state counts as renewed (state.h), so the pool puts
 * back the learned rates it saw.  A connection attempt is made lazily by the next operation,
 * at most once a second (then every 2 s, 4 s; the backoff starts over only
 * once a connection has served RS_STABLE_MS, so a server that accepts and
 * then fails every time is not hammered), with the mutex released so
 * other threads keep going on the local state; connect plus handshake fit
 * in one timeout_ms.  On success the local cooldowns are merged into
 * Redis (max) and Redis serves again.  What Redis held and the local state
 * did not see is not reconciled beyond that.  A restarted, flushed or
 * expired hash comes back without the birth mark a process saw there
 * (born_check): the state is renewed for it, as a file created again is,
 * and the pool puts back what it knew; a spending counter found gone
 * starts from what this process last saw in it (rs_spend_add).
 *
 * Traps: hiredis writes with write(2), so a peer that went away raises
 * SIGPIPE; every section that touches the socket blocks SIGPIPE in the
 * calling thread and swallows one it raised (rs_begin/rs_end).  Hostnames
 * are resolved by getaddrinfo, which no timeout bounds; use an address
 * where that matters.  A process forked while another thread holds the
 * mutex inherits it held (as with any mutex); fork before opening.
 */
#include "llm/state_redis.h"

#include <assert.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "convbi/convbi.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/secret.h"
#include "llm/state_redis_url.h"

#define RS_RETRY_MIN_MS 1000   /* first reconnect attempt after a failure */
#define RS_RETRY_MAX_MS 4000   /* backoff cap between attempts */
#define RS_WARN_EVERY_MS 60000 /* at most one fallback warning per minute */
#define RS_STABLE_MS 10000     /* a connection this old resets the backoff */
#define RS_PIPELINE_MAX 16     /* unanswered pipelined writes before a drain */
#define RS_ARGS 8              /* script arguments of a pipelined write */
#define RS_ARG_LEN 48          /* bytes of one such argument, NUL included */
#define RS_FIELD_LEN 32        /* a hash field name */
#define RS_NUM_LEN 24          /* an int64 in decimal */
#define RS_MAX_ARGV (8 + 2 * STATE_MAX_SLOTS)
#define RS_WHY_LEN 512

/* ---- the script ---------------------------------------------------------
 * One script, one op per call.  ARGV: op, ttl_ms, field, default, a, b, c.
 *   next   HINCRBY field 1, returns the value before
 *   add    a = delta; an absent field starts from default; value before
 *   store  a = value
 *   cas    a = expect, b = desired; 1 if stored
 *   max    a = value; returns the value after
 *   wadd   field = bucket prefix ("3.wreq"), a = now_ms, b = amount,
 *          c = limit; the file backend's shm_window_add, returning
 *          {charged, epoch, count} of the current bucket
 *   merge  ARGV[3..] = field, value pairs, each raised to value (max)
 *   spend  in SPEND: field = "<ep>.day" ..., a = period, b = micro-USD,
 *          c = limit, d = floor; the file backend's shm_spend_add, returning
 *          {applied, amount after}; TTL ARGV[2] on SPEND.  A field absent
 *          (flushed, expired) starts from the floor: what this process
 *          last saw it hold in that period (rs_spend_add)
 *   born   HSETNX field a: the hash's birth mark (born_check)
 *   sget   in SPEND: a = period; the amount of that period (0 if older) */
static const char rs_script[] =
        "local k, ks, op = KEYS[1], KEYS[2], ARGV[1]\n"
        "local function num(f, d)\n"
        "  local v = redis.call('HGET', k, f)\n"
        "  if v then return tonumber(v) end\n"
        "  return d\n"
        "end\n"
        "local r\n"
        "if op == 'next' then\n"
        "  r = redis.call('HINCRBY', k, ARGV[3], 1) - 1\n"
        "elseif op == 'add' then\n"
        "  if ARGV[4] ~= '0' and redis.call('HEXISTS', k, ARGV[3]) == 0 then\n"
        "    redis.call('HSET', k, ARGV[3], ARGV[4])\n"
        "  end\n"
        "  r = redis.call('HINCRBY', k, ARGV[3], ARGV[5]) - tonumber(ARGV[5])\n"
        "elseif op == 'store' then\n"
        "  redis.call('HSET', k, ARGV[3], ARGV[5])\n"
        "  r = 0\n"
        "elseif op == 'cas' then\n"
        "  r = 0\n"
        "  if num(ARGV[3], tonumber(ARGV[4])) == tonumber(ARGV[5]) then\n"
        "    redis.call('HSET', k, ARGV[3], ARGV[6])\n"
        "    r = 1\n"
        "  end\n"
        "elseif op == 'max' then\n"
        "  r = num(ARGV[3], tonumber(ARGV[4]))\n"
        "  if r < tonumber(ARGV[5]) then\n"
        "    redis.call('HSET', k, ARGV[3], ARGV[5])\n"
        "    r = tonumber(ARGV[5])\n"
        "  end\n"
        "elseif op == 'wadd' then\n"
        "  local B, FULL, RING = 10000, 5, 8\n"
        "  local now, amount, limit = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])\n"
        "  if now < 0 then now = 0 end\n"
        "  local e = math.floor(now / B)\n"
        "  local function bucket(i)\n"
        "    local v = redis.call('HGET', k, ARGV[3] .. i)\n"
        "    if not v then return -1, 0 end\n"
        "    local be, bc = string.match(v, '^(%d+):(%d+)$')\n"
        "    if not be then return -1, 0 end\n"
        "    return tonumber(be), tonumber(bc)\n"
        "  end\n"
        "  local others = 0\n"
        "  if limit > 0 then\n"
        "    local into = now % B\n"
        "    for j = 1, FULL + 1 do\n"
        "      local be, bc = bucket((e - j) % RING)\n"
        "      if be == e - j then\n"
        "        if j == FULL + 1 then bc = math.floor((bc * (B - into) + B - 1) / B) end\n"
        "        others = others + bc\n"
        "      end\n"
        "    end\n"
        "  end\n"
        "  local idx = e % RING\n"
        "  local epoch, cur = bucket(idx)\n"
        "  local ahead = epoch > e\n"
        "  if epoch ~= e and not ahead then cur = 0 end\n"
        "  if not ahead then epoch = e end\n"
        "  if limit > 0 and amount > 0 and others + cur > 0 and others + cur + amount > limit then\n"
        "    return {0, epoch, cur}\n"
        "  end\n"
        "  local n = cur + amount\n"
        "  if n < 0 then n = 0 elseif n > 4294967295 then n = 4294967295 end\n"
        "  redis.call('HSET', k, ARGV[3] .. idx, string.format('%d:%d', epoch, n))\n"
        "  r = {1, epoch, n}\n"
        "elseif op == 'spend' or op == 'sget' then\n"
        "  local p = tonumber(ARGV[5])\n"
        "  local sp, cur = -1, 0\n"
        "  local v = redis.call('HGET', ks, ARGV[3])\n"
        "  if v then\n"
        "    local a, b = string.match(v, '^(%d+):(%d+)$')\n"
        "    if a then sp, cur = tonumber(a), tonumber(b) end\n"
        "  end\n"
        "  if op == 'sget' then\n"
        "    if sp < p then return 0 end\n"
        "    return cur\n"
        "  end\n"
        "  local amount, limit = tonumber(ARGV[6]), tonumber(ARGV[7])\n"
        "  if cur == 0 or sp < p then sp, cur = p, 0\n"
        "  elseif sp > p and amount < 0 then return {1, cur} end\n"
        "  if not v and tonumber(ARGV[8]) > 0 then sp, cur = p, tonumber(ARGV[8]) end\n"
        "  if limit > 0 and amount > 0 and cur + amount > limit then return {0, cur} end\n"
        "  local n = cur + amount\n"
        "  if n < 0 then n = 0 elseif n > 281474976710655 then n = 281474976710655 end\n"
        "  redis.call('HSET', ks, ARGV[3], string.format('%d:%d', sp, n))\n"
        "  redis.call('PEXPIRE', ks, ARGV[2])\n"
        "  return {1, n}\n"
        "elseif op == 'born' then\n"
        "  r = redis.call('HSETNX', k, ARGV[3], ARGV[5])\n"
        "elseif op == 'merge' then\n"
        "  for i = 3, #ARGV - 1, 2 do\n"
        "    if num(ARGV[i], 0) < tonumber(ARGV[i + 1]) then\n"
        "      redis.call('HSET', k, ARGV[i], ARGV[i + 1])\n"
        "    end\n"
        "  end\n"
        "  r = 0\n"
        "else\n"
        "  return redis.error_reply('convbi state: unknown op ' .. tostring(op))\n"
        "end\n"
        "redis.call('PEXPIRE', k, ARGV[2])\n"
        "return r\n";

/* Hash field names of enum state_field: readable in redis-cli. */
static const char *const field_name[STATE_NFIELDS] = {
        [STATE_COOL_UNTIL] = "cool_until",
        [STATE_COOL_STREAK] = "cool_streak",
        [STATE_OPEN_UNTIL] = "open_until",
        [STATE_PROBE_UNTIL] = "probe_until",
        [STATE_FAIL_STREAK] = "fail_streak",
        [STATE_PAUSE_LEVEL] = "pause_level",
        [STATE_LAST_FAIL] = "last_fail",
        [STATE_REM_REQ] = "rem_req",
        [STATE_REM_TOK] = "rem_tok",
        [STATE_RESET_REQ] = "reset_req",
        [STATE_RESET_TOK] = "reset_tok",
        [STATE_CALLS] = "calls",
        [STATE_OK] = "ok",
        [STATE_RATE_LIMITED] = "rate_limited",
        [STATE_FAILURES] = "failures",
        [STATE_TOKENS] = "tokens",
        [STATE_PACE_REQ] = "pace_req",
        [STATE_PACE_TOK] = "pace_tok",
        [STATE_COOL_CLASS] = "cool_class",
        [STATE_KEY_FP] = "key_fp",
        [STATE_LEARN_RPM] = "learn_rpm",
        [STATE_LEARN_TPM] = "learn_tpm",
        [STATE_LEARN_FROM] = "learn_from",
        [STATE_LEARN_STEP] = "learn_step",
        [STATE_LEARN_UNTIL] = "learn_until",
        [STATE_LEARN_RUN] = "learn_run",
        [STATE_MEAS_SINCE] = "meas_since",
        [STATE_MEAS_ADM] = "meas_adm",
        [STATE_ADM] = "adm",
        [STATE_ADM_TOK] = "adm_tok",
        [STATE_MEAS_TOK] = "meas_tok",
        [STATE_LEARN_PEND] = "learn_pend",
        [STATE_LEARN_MAX] = "learn_max",
        [STATE_LAT_EWMA] = "lat_ewma",
        [STATE_LAT_AT] = "lat_at",
        [STATE_TOK_CHARGE] = "tok_charge",
};
_Static_assert(STATE_NFIELDS == 36, "a state field was added: name it in field_name[]");
static const char *const window_name[STATE_NWINDOWS] = {"wreq", "wtok"};

struct rs_bucket {
	int64_t epoch; /* bucket start / STATE_WINDOW_BUCKET_MS; -1 = empty */
	int64_t count;
};

/* A pipelined write, kept until its reply is read (replayed as EVAL after
 * a NOSCRIPT). */
struct rs_pending {
	int argc;
	char arg[RS_ARGS][RS_ARG_LEN];
};

/* Every slot as one HGETALL saw it, plus our own writes since. */
struct rs_snap {
	int have;              /* the arrays hold a copy */
	int64_t taken_ms;      /* the caller's now_ms at the fetch */
	int batch;             /* loads of higher slots at taken_ms may use it */
	int last_ep;           /* the highest slot served in this batch */
	pthread_t thread;      /* who fetched it (batches are per thread) */
	int64_t born;          /* the hash's birth mark ("born"), 0 = none */
	int64_t *f;            /* owned: n_slots * STATE_NFIELDS */
	struct rs_bucket *win; /* owned: n_slots * STATE_NWINDOWS * STATE_WINDOW_RING */
};

struct state_redis {
	struct state base;   /* first: the vtable */
	struct state *local; /* owned: the fallback (file, else memory) */
	char *host;          /* owned */
	int port, db;
	char *user;         /* owned; NULL = default user */
	struct secret pass; /* unset = no AUTH */
	char *key;          /* owned: the hash */
	char *spend_key;    /* owned: the spending hash */
	char *secret_key;   /* owned: the secret's string */
	char *where;        /* owned: "host:port/db" for messages */
	int timeout_ms, cache_ms;
	unsigned flags;
	char ttl_arg[RS_NUM_LEN];       /* ttl_ms in decimal */
	char spend_ttl_arg[RS_NUM_LEN]; /* STATE_REDIS_SPEND_TTL_MS in decimal */
	_Atomic int up;                 /* 1 while Redis serves: state_describe */
	_Atomic uint64_t local_ops;

	pthread_mutex_t mu;                     /* guards everything below */
	redisContext *c;                        /* NULL while down */
	pid_t pid;                              /* the process c belongs to */
	char sha[48];                           /* of rs_script, from SCRIPT LOAD */
	unsigned char secret[STATE_SECRET_LEN]; /* SECRET, read at the connect of c */
	int connecting;                         /* a thread is connecting with mu released */
	int64_t next_try_ms;                    /* monotonic: no attempt before */
	int64_t retry_ms;                       /* the next backoff step */
	int64_t connected_ms;                   /* monotonic: when c was made */
	int64_t last_warn_ms;                   /* monotonic; INT64_MIN = never warned */
	char why[RS_WHY_LEN];                   /* the last failure, for the open warning */
	struct rs_pending pend[RS_PIPELINE_MAX];
	int npend;
	struct rs_snap snap;
	int64_t born; /* the hash's birth mark we last saw, 0 = none yet (born_check) */
	struct {
		uint32_t period;
		int64_t amount;
	} spent_seen[STATE_MAX_SLOTS + 1][STATE_NSPENDS]; /* what each spend counter (the set's last) held at our
	                                                     last look: its floor when the spending is flushed */
	struct state_redis_stats stats;
	_Atomic uint64_t damaged; /* slots warned about (state_damage_warn) */
};

static const struct state_ops redis_ops;

static struct state_redis *rs_of(struct state *st)
{
	return (struct state_redis *)st;
}

static int64_t fresh_value(int field)
{
	return (field == STATE_REM_REQ || field == STATE_REM_TOK) ? -1 : 0;
}

static void slot_field(char *out, unsigned ep, int field)
{
	snprintf(out, RS_FIELD_LEN, "%u.%s", ep, field_name[field]);
}

static void num(char *out, int64_t v)
{
	snprintf(out, RS_NUM_LEN, "%lld", (long long)v);
}

static struct timeval ms_tv(int64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	return tv;
}

/* ---- the snapshot ---------------------------------------------------------- */

static int64_t *snap_f(struct state_redis *r, unsigned ep)
{
	return r->snap.f + (size_t)ep * STATE_NFIELDS;
}

static struct rs_bucket *snap_ring(struct state_redis *r, unsigned ep, int win)
{
	return r->snap.win + ((size_t)ep * STATE_NWINDOWS + (size_t)win) * STATE_WINDOW_RING;
}

static void snap_clear(struct state_redis *r)
{
	r->snap.have = 0;
	r->snap.batch = 0;
}

/* Reads "<ep>.<name>" and its value into the snapshot; other fields
 * (counters, names from a later version) are skipped. */
static void snap_take_field(struct state_redis *r, const char *name, const char *val)
{
	char *end;
	unsigned long ep = strtoul(name, &end, 10);
	if (end == name || *end != '.' || ep >= r->base.shape.n_slots)
		return;
	const char *f = end + 1;
	for (int w = 0; w < STATE_NWINDOWS; w++) {
		size_t n = strlen(window_name[w]);
		if (!strncmp(f, window_name[w], n) && f[n] >= '0' && f[n] < '0' + STATE_WINDOW_RING && !f[n + 1]) {
			long long e, c;
			if (sscanf(val, "%lld:%lld", &e, &c) == 2)
				snap_ring(r, (unsigned)ep, w)[f[n] - '0'] = (struct rs_bucket){e, c};
			return;
		}
	}
	for (int k = 0; k < STATE_NFIELDS; k++)
		if (!strcmp(f, field_name[k])) {
			snap_f(r, (unsigned)ep)[k] = strtoll(val, NULL, 10);
			return;
		}
}

static int snap_parse(struct state_redis *r, const redisReply *rep)
{
	uint32_t n = r->base.shape.n_slots;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements % 2)
		return -1;
	for (uint32_t ep = 0; ep < n; ep++) {
		for (int k = 0; k < STATE_NFIELDS; k++)
			snap_f(r, ep)[k] = fresh_value(k);
		for (int w = 0; w < STATE_NWINDOWS; w++)
			for (int i = 0; i < STATE_WINDOW_RING; i++)
				snap_ring(r, ep, w)[i] = (struct rs_bucket){-1, 0};
	}
	r->snap.born = 0;
	for (size_t i = 0; i < rep->elements; i += 2) {
		const redisReply *k = rep->element[i], *v = rep->element[i + 1];
		if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			return -1;
		if (!strcmp(k->str, "born"))
			r->snap.born = strtoll(v->str, NULL, 10);
		else
			snap_take_field(r, k->str, v->str);
	}
	return 0;
}

/* The file backend's window_sum (skip_current = 0) over a snapshot ring. */
static int64_t snap_window_sum(const struct rs_bucket *ring, int64_t now_ms)
{
	int64_t t = now_ms < 0 ? 0 : now_ms;
	int64_t e = t / STATE_WINDOW_BUCKET_MS, into = t % STATE_WINDOW_BUCKET_MS, sum = 0;
	for (int64_t k = 0; k <= STATE_WINDOW_FULL + 1 && k <= e; k++) {
		const struct rs_bucket *b = &ring[(e - k) % STATE_WINDOW_RING];
		if (b->epoch != e - k)
			continue;
		int64_t c = b->count;
		if (k == STATE_WINDOW_FULL + 1)
			c = (c * (STATE_WINDOW_BUCKET_MS - into) + STATE_WINDOW_BUCKET_MS - 1) / STATE_WINDOW_BUCKET_MS;
		sum += c;
	}
	return sum;
}

/* An accepted charge, applied to our copy the way the script applied it. */
static void snap_charge(struct state_redis *r, unsigned ep, int win, int64_t now_ms, int64_t amount)
{
	int64_t e = (now_ms < 0 ? 0 : now_ms) / STATE_WINDOW_BUCKET_MS;
	struct rs_bucket *b = &snap_ring(r, ep, win)[e % STATE_WINDOW_RING];
	int ahead = b->epoch > e;
	int64_t cur = (b->epoch == e || ahead) ? b->count : 0;
	int64_t n = cur + amount;
	b->epoch = ahead ? b->epoch : e;
	b->count = n < 0 ? 0 : n > UINT32_MAX ? UINT32_MAX : n;
}

/* May load(ep, now_ms) be answered from the snapshot?  Either it is young
 * enough for the cache, or it continues this thread's run of loads. */
static int snap_serves(struct state_redis *r, unsigned ep, int64_t now_ms)
{
	const struct rs_snap *s = &r->snap;
	if (!s->have)
		return 0;
	if (r->cache_ms > 0 && now_ms >= s->taken_ms && now_ms - s->taken_ms < r->cache_ms)
		return 1;
	return s->batch && now_ms == s->taken_ms && (int)ep > s->last_ep && pthread_equal(s->thread, pthread_self());
}

/* ---- the connection -------------------------------------------------------- */

/* Blocks SIGPIPE in this thread for a section that writes to the socket. */
static void sigpipe_block(sigset_t *old)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &s, old);
}

/* Swallows a SIGPIPE the section raised (unless it was blocked before, when
 * it is not ours to take), then restores the mask. */
static void sigpipe_restore(const sigset_t *old)
{
	sigset_t pend, s;
	if (!sigismember(old, SIGPIPE) && sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE)) {
		struct timespec zero = {0, 0};
		sigemptyset(&s);
		sigaddset(&s, SIGPIPE);
		while (sigtimedwait(&s, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

static void io_why(char *out, size_t cap, const redisContext *c, int saved_errno, int timeout_ms)
{
	if (c->err == REDIS_ERR_IO && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK))
		snprintf(out, cap, "no reply within %d ms", timeout_ms);
	else if (c->err == REDIS_ERR_EOF)
		snprintf(out, cap, "the server closed the connection");
	else
		snprintf(out, cap, "%s", c->errstr[0] ? c->errstr : "I/O error");
}

/* Reads 2 * STATE_SECRET_LEN hex digits into out; 0, or -1 if they are not. */
static int secret_unhex(unsigned char *out, const redisReply *rep)
{
	if (!rep || rep->type != REDIS_REPLY_STRING || rep->len != 2 * STATE_SECRET_LEN)
		return -1;
	for (int i = 0; i < STATE_SECRET_LEN; i++) {
		unsigned v = 0;
		for (int k = 0; k < 2; k++) {
			char ch = rep->str[2 * i + k];
			int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
			if (d < 0)
				return -1;
			v = v << 4 | (unsigned)d;
		}
		out[i] = (unsigned char)v;
	}
	return 0;
}

/* Connects and does the handshake (AUTH, SELECT, SCRIPT LOAD, the secret:
 * ours offered with SET NX, then whichever won read back; pipelined)
 * within one timeout_ms.  Reads only what never changes after open, so it
 * runs with the mutex released.  Returns the context, or NULL with why. */
static redisContext *rs_connect(const struct state_redis *r, char *sha, unsigned char *secret, char *why)
{
	unsigned char mine[STATE_SECRET_LEN];
	char hex[2 * STATE_SECRET_LEN + 1];
	if (state_random(mine, sizeof mine)) {
		snprintf(why, RS_WHY_LEN, "cannot draw a secret: %s", strerror(errno));
		return NULL;
	}
	for (int i = 0; i < STATE_SECRET_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", mine[i]);
	int64_t start = clock_mono_ms();
	redisContext *c = redisConnectWithTimeout(r->host, r->port, ms_tv(r->timeout_ms));
	if (!c) {
		snprintf(why, RS_WHY_LEN, "out of memory");
		return NULL;
	}
	if (c->err) {
		snprintf(why, RS_WHY_LEN, "cannot connect: %s", c->errstr);
		goto fail;
	}
	int64_t left = r->timeout_ms - (clock_mono_ms() - start);
	redisSetTimeout(c, ms_tv(left < 1 ? 1 : left));
	redisEnableKeepAlive(c);
	const char *what[6];
	int n = 0, nload;
	char dbs[RS_NUM_LEN];
	if (secret_is_set(&r->pass)) {
		const char *argv[3] = {"AUTH", r->user ? r->user : secret_value(&r->pass), secret_value(&r->pass)};
		redisAppendCommandArgv(c, r->user ? 3 : 2, argv, NULL);
		what[n++] = "authentication failed";
	}
	if (r->db) {
		num(dbs, r->db);
		const char *argv[2] = {"SELECT", dbs};
		redisAppendCommandArgv(c, 2, argv, NULL);
		what[n++] = "cannot select the database";
	}
	const char *load[3] = {"SCRIPT", "LOAD", rs_script};
	redisAppendCommandArgv(c, 3, load, NULL);
	nload = n;
	what[n++] = "cannot load the state script";
	const char *offer[6] = {"SET", r->secret_key, hex, "NX", "PX", r->spend_ttl_arg};
	redisAppendCommandArgv(c, 6, offer, NULL);
	what[n++] = "cannot set the state's secret";
	const char *renew[3] = {"PEXPIRE", r->secret_key, r->spend_ttl_arg};
	redisAppendCommandArgv(c, 3, renew, NULL);
	what[n++] = "cannot renew the state's secret";
	const char *read[2] = {"GET", r->secret_key};
	redisAppendCommandArgv(c, 2, read, NULL);
	what[n++] = "cannot read the state's secret";
	for (int i = 0; i < n; i++) {
		redisReply *rep = NULL;
		if (redisGetReply(c, (void **)&rep) != REDIS_OK || !rep) {
			io_why(why, RS_WHY_LEN, c, errno, r->timeout_ms);
			goto fail;
		}
		int bad = rep->type == REDIS_REPLY_ERROR;
		if (bad)
			snprintf(why, RS_WHY_LEN, "%s: %s", what[i], rep->str);
		else if (i == nload && (rep->type != REDIS_REPLY_STRING || rep->len >= 48)) {
			snprintf(why, RS_WHY_LEN, "%s: unexpected reply", what[i]);
			bad = 1;
		} else if (i == nload)
			memcpy(sha, rep->str, rep->len + 1);
		else if (i == n - 1 && secret_unhex(secret, rep)) {
			snprintf(why, RS_WHY_LEN, "%s: not %d hex digits", what[i], 2 * STATE_SECRET_LEN);
			bad = 1;
		}
		freeReplyObject(rep);
		if (bad && i > nload) { /* the secret's key holds what convbi did not write */
			size_t len = strlen(why);
			snprintf(why + len, RS_WHY_LEN - len,
			         " -- the key %s holds what convbi did not write: delete it (redis-cli DEL %s, on %s) "
			         "and convbi sets a new secret",
			         r->secret_key, r->secret_key, r->where);
		}
		if (bad)
			goto fail;
	}
	redisSetTimeout(c, ms_tv(r->timeout_ms));
	return c;
fail:
	redisFree(c);
	return NULL;
}

/* The cooldowns we last saw in Redis go to the local state, so that the
 * fallback starts knowing them. */
static void carry_to_local(struct state_redis *r)
{
	if (!r->snap.have)
		return;
	for (uint32_t ep = 0; ep < r->base.shape.n_slots; ep++) {
		int64_t until = snap_f(r, ep)[STATE_COOL_UNTIL];
		if (until > 0 && until - r->snap.taken_ms <= STATE_AHEAD_MAX_MS) /* never damage (state.h) */
			r->local->ops->max(r->local, ep, STATE_COOL_UNTIL, until);
	}
}

static const char *local_name(const struct state_redis *r)
{
	const char *p = state_path(r->local);
	return p ? p : "in this process only";
}

/* Gives up on the connection: every operation goes local until a
 * reconnect.  Called with mu held. */
static void rs_down(struct state_redis *r, const char *why)
{
	carry_to_local(r);
	atomic_fetch_add(&r->base.renewed, 1); /* the local state knows no learned rates: the pool puts back its own */
	redisFree(r->c);
	r->c = NULL;
	r->npend = 0;
	snap_clear(r);
	atomic_store(&r->up, 0);
	r->stats.fallbacks++;
	int64_t now = clock_mono_ms();
	if (now - r->connected_ms >= RS_STABLE_MS) /* a flapping server keeps its backoff */
		r->retry_ms = RS_RETRY_MIN_MS;
	r->next_try_ms = now + r->retry_ms;
	r->retry_ms = r->retry_ms * 2 > RS_RETRY_MAX_MS ? RS_RETRY_MAX_MS : r->retry_ms * 2;
	snprintf(r->why, sizeof r->why, "%s", why);
	int warn = r->last_warn_ms == INT64_MIN || now - r->last_warn_ms >= RS_WARN_EVERY_MS;
	if (warn)
		r->last_warn_ms = now;
	log_msg(warn ? LOG_WARN : LOG_INFO,
	        "endpoint state: Redis at %s failed (%s); using the local state (%s) until it "
	        "answers again",
	        r->where, why, local_name(r));
}

static int rs_append(struct state_redis *r, int script, int eval, int argc, const char *const *args)
{
	const char *argv[RS_MAX_ARGV];
	size_t len[RS_MAX_ARGV];
	int n = 0;
	assert(argc + 5 <= RS_MAX_ARGV);
	if (script) {
		argv[n++] = eval ? "EVAL" : "EVALSHA";
		argv[n++] = eval ? rs_script : r->sha;
		argv[n++] = "2";
		argv[n++] = r->key;
		argv[n++] = r->spend_key;
	}
	for (int i = 0; i < argc; i++)
		argv[n++] = args[i];
	for (int i = 0; i < n; i++)
		len[i] = strlen(argv[i]);
	r->stats.commands++;
	r->stats.evals += eval ? 1 : 0;
	return redisAppendCommandArgv(r->c, n, argv, len) == REDIS_OK ? 0 : -1;
}

static int is_noscript(const redisReply *rep)
{
	return rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "NOSCRIPT", 8);
}

/* Reads one reply; on an I/O failure goes down and returns NULL. */
static redisReply *rs_read(struct state_redis *r)
{
	redisReply *rep = NULL;
	if (redisGetReply(r->c, (void **)&rep) != REDIS_OK || !rep) {
		char why[RS_WHY_LEN];
		io_why(why, sizeof why, r->c, errno, r->timeout_ms);
		freeReplyObject(rep);
		rs_down(r, why);
		return NULL;
	}
	return rep;
}

/* Sends one command as EVAL and waits: the answer to a NOSCRIPT. */
static redisReply *rs_eval(struct state_redis *r, int argc, const char *const *args)
{
	if (rs_append(r, 1, 1, argc, args)) {
		rs_down(r, "out of memory");
		return NULL;
	}
	r->stats.round_trips++;
	return rs_read(r);
}

/* Points out[] at the arguments of pipelined write i; returns their count. */
static int pend_args(const struct state_redis *r, int i, const char **out)
{
	for (int j = 0; j < r->pend[i].argc; j++)
		out[j] = r->pend[i].arg[j];
	return r->pend[i].argc;
}

/* The key a command touches, so that an error reply names the right one:
 * a script call's spend and sget ops work in SPEND and every other op in
 * KEY; a plain command (HGETALL, HGET) names its key in argv[1].  The
 * trap: blaming KEY for a foreign SPEND sends the operator to delete the
 * fleet's state, which mends nothing (attack9 F4). */
static const char *cmd_key(const struct state_redis *r, int script, int argc, const char *const *args)
{
	if (!script)
		return argc > 1 ? args[1] : r->key;
	if (argc > 0 && (!strcmp(args[0], "spend") || !strcmp(args[0], "sget")))
		return r->spend_key;
	return r->key;
}

/* What an error reply means for the user: the script never raises one for
 * what convbi wrote, so the key holds something else (a WRONGTYPE, a
 * field that is not a number); a reconnect will not mend that. */
static void error_why(const struct state_redis *r, const char *key, char *out, size_t cap, const redisReply *rep)
{
	snprintf(out, cap,
	         "error reply: %s -- the key %s holds what convbi did not write: delete it (redis-cli DEL %s, on "
	         "%s) and convbi starts it afresh",
	         rep->str, key, key, r->where);
}

/* The synchronous path: sends the command (a script call when script,
 * else argv as given; argc = 0 sends nothing and only drains) behind the
 * pipelined writes, reads their replies and its own, replays NOSCRIPTs as
 * EVAL in order.  Returns 1 with *out (caller frees; may be NULL when
 * argc = 0), or 0 after rs_down.  An error reply is a failure too: the
 * script never raises one for well-formed input. */
static int rs_sync(struct state_redis *r, int script, int argc, const char *const *args, redisReply **out)
{
	int noscript[RS_PIPELINE_MAX + 1];
	int npend = r->npend, total = npend + (argc > 0);
	redisReply *mine = NULL;
	if (out)
		*out = NULL;
	if (argc > 0 && rs_append(r, script, 0, argc, args)) {
		rs_down(r, "out of memory");
		return 0;
	}
	if (total == 0)
		return 1;
	r->stats.round_trips++;
	for (int i = 0; i < total; i++) {
		redisReply *rep = rs_read(r);
		if (!rep)
			goto fail;
		noscript[i] = is_noscript(rep);
		if (rep->type == REDIS_REPLY_ERROR && !noscript[i]) {
			char why[RS_WHY_LEN];
			const char *pargs[RS_ARGS];
			const char *key =
			        i < npend ? cmd_key(r, 1, pend_args(r, i, pargs), pargs) : cmd_key(r, script, argc, args);
			error_why(r, key, why, sizeof why, rep);
			freeReplyObject(rep);
			rs_down(r, why);
			goto fail;
		}
		if (i == npend && !noscript[i])
			mine = rep;
		else
			freeReplyObject(rep);
	}
	r->npend = 0;
	for (int i = 0; i < total; i++) {
		if (!noscript[i])
			continue;
		const char *pargs[RS_ARGS];
		const char *const *a = args;
		int n = argc;
		if (i < npend) {
			n = pend_args(r, i, pargs);
			a = pargs;
		}
		redisReply *rep = rs_eval(r, n, a);
		if (!rep)
			goto fail;
		if (rep->type == REDIS_REPLY_ERROR) {
			char why[RS_WHY_LEN];
			error_why(r, cmd_key(r, 1, n, a), why, sizeof why, rep);
			freeReplyObject(rep);
			rs_down(r, why);
			goto fail;
		}
		if (i == npend)
			mine = rep;
		else
			freeReplyObject(rep);
	}
	if (out)
		*out = mine;
	else
		freeReplyObject(mine);
	return 1;
fail:
	freeReplyObject(mine);
	return 0;
}

/* A write whose result is known: pipelined (sent now, reply read later),
 * or synchronous under STATE_REDIS_NO_PIPELINE.  Returns 1, or 0 after
 * rs_down. */
static int rs_async(struct state_redis *r, int argc, const char *const *args)
{
	if (r->flags & STATE_REDIS_NO_PIPELINE)
		return rs_sync(r, 1, argc, args, NULL);
	if (r->npend == RS_PIPELINE_MAX && !rs_sync(r, 1, 0, NULL, NULL))
		return 0;
	assert(argc <= RS_ARGS);
	struct rs_pending *p = &r->pend[r->npend];
	p->argc = argc;
	for (int i = 0; i < argc; i++) {
		assert(strlen(args[i]) < RS_ARG_LEN);
		snprintf(p->arg[i], RS_ARG_LEN, "%s", args[i]);
	}
	if (rs_append(r, 1, 0, argc, args)) {
		rs_down(r, "out of memory");
		return 0;
	}
	int done = 0;
	while (!done)
		if (redisBufferWrite(r->c, &done) != REDIS_OK) {
			char why[RS_WHY_LEN];
			io_why(why, sizeof why, r->c, errno, r->timeout_ms);
			rs_down(r, why);
			return 0;
		}
	r->npend++;
	r->stats.pipelined++;
	return 1;
}

/* Raises Redis's cooldowns to the local ones learned while it was away. */
static void rs_merge_local(struct state_redis *r)
{
	char fields[STATE_MAX_SLOTS][RS_FIELD_LEN], vals[STATE_MAX_SLOTS][RS_NUM_LEN];
	const char *args[2 + 2 * STATE_MAX_SLOTS] = {"merge", r->ttl_arg};
	int n = 2;
	for (uint32_t ep = 0; ep < r->base.shape.n_slots; ep++) {
		int64_t until = r->local->ops->get(r->local, ep, STATE_COOL_UNTIL);
		if (until <= 0 || until - clock_wall_ms() > STATE_AHEAD_MAX_MS) /* never damage (state.h) */
			continue;
		slot_field(fields[ep], ep, STATE_COOL_UNTIL);
		num(vals[ep], until);
		args[n++] = fields[ep];
		args[n++] = vals[ep];
	}
	if (n > 2)
		rs_sync(r, 1, n, args, NULL);
}

struct rs_guard {
	sigset_t old; /* the signal mask to restore */
};

/* Enters a Redis section: returns 1 with mu held and a live connection,
 * or 0 (nothing held) when the operation must go to the local state.  A
 * due reconnect is made here, with mu released meanwhile.  Any operation
 * but a load ends the snapshot's batch. */
static int rs_begin(struct state_redis *r, struct rs_guard *g, int is_load)
{
	sigpipe_block(&g->old);
	pthread_mutex_lock(&r->mu);
	if (r->c && r->pid != getpid()) { /* inherited across fork: not ours to use */
		redisFree(r->c);
		r->c = NULL;
		r->npend = 0;
		snap_clear(r);
		r->next_try_ms = 0;
	}
	if (!is_load)
		r->snap.batch = 0;
	if (r->c)
		return 1;
	int64_t now = clock_mono_ms();
	if (r->connecting || now < r->next_try_ms)
		goto local;
	r->connecting = 1;
	pthread_mutex_unlock(&r->mu);
	char sha[48] = "", why[RS_WHY_LEN] = "";
	unsigned char secret[STATE_SECRET_LEN];
	redisContext *c = rs_connect(r, sha, secret, why);
	pthread_mutex_lock(&r->mu);
	r->connecting = 0;
	r->stats.connects++;
	if (!c) {
		r->stats.connect_failures++;
		snprintf(r->why, sizeof r->why, "%s", why);
		r->next_try_ms = clock_mono_ms() + r->retry_ms;
		r->retry_ms = r->retry_ms * 2 > RS_RETRY_MAX_MS ? RS_RETRY_MAX_MS : r->retry_ms * 2;
		goto local;
	}
	r->c = c;
	r->pid = getpid();
	r->connected_ms = clock_mono_ms();
	memcpy(r->sha, sha, sizeof r->sha);
	memcpy(r->secret, secret, sizeof r->secret);
	snap_clear(r);
	rs_merge_local(r);
	if (!r->c)
		goto local;
	if (!atomic_exchange(&r->up, 1) && r->stats.connects > 1)
		log_info("endpoint state: Redis at %s answers again; sharing state through it", r->where);
	return 1;
local:
	pthread_mutex_unlock(&r->mu);
	sigpipe_restore(&g->old);
	atomic_fetch_add(&r->local_ops, 1);
	return 0;
}

static void rs_end(struct state_redis *r, struct rs_guard *g)
{
	int down = !r->c;
	pthread_mutex_unlock(&r->mu);
	sigpipe_restore(&g->old);
	if (down)
		atomic_fetch_add(&r->local_ops, 1);
}

/* A script call with an integer answer; 1 with *v, else 0 (gone down). */
static int rs_script_int(struct state_redis *r, int64_t *v, int argc, const char *const *args)
{
	redisReply *rep = NULL;
	if (!rs_sync(r, 1, argc, args, &rep))
		return 0;
	if (rep && rep->type == REDIS_REPLY_INTEGER) {
		*v = rep->integer;
		freeReplyObject(rep);
		return 1;
	}
	freeReplyObject(rep);
	rs_down(r, "unexpected reply to the state script");
	return 0;
}

/* ---- the operations ---------------------------------------------------------
 * Each one: a Redis section when the connection is there, else (or when it
 * fails under us) the same operation on the local state. */

static uint64_t rs_counter_next(struct state *st, unsigned tier)
{
	struct state_redis *r = rs_of(st);
	struct rs_guard g;
	assert(tier < st->shape.n_tiers);
	if (rs_begin(r, &g, 0)) {
		char f[RS_FIELD_LEN];
		int64_t v = 0;
		snprintf(f, sizeof f, "t%u", tier);
		const char *args[] = {"next", r->ttl_arg, f, "0"};
		int ok = rs_script_int(r, &v, 4, args);
		rs_end(r, &g);
		if (ok)
			return (uint64_t)v;
	}
	return r->local->ops->counter_next(r->local, tier);
}

/* The hash's birth mark, after a fetch: a hash flushed, expired or
 * deleted under running processes comes back without the mark we saw (or
 * with another one), and starts with nothing learned -- renewed, as a
 * file created again is (state.h), so the pool puts back what it knew
 * (attack8 F8).  A hash without a mark gets one (HSETNX: the first
 * process wins; a loser adopts the winner's at its next fetch). */
static void born_check(struct state_redis *r, int64_t now_ms)
{
	int64_t b = r->snap.born;
	if (b != 0 && b == r->born)
		return;
	if (r->born != 0)
		atomic_fetch_add(&r->base.renewed, 1);
	r->born = b;
	if (b != 0)
		return;
	unsigned char rnd[2] = {0, 0};
	state_random(rnd, sizeof rnd);
	int64_t mark = (now_ms > 0 ? now_ms : 1) * 1000 + (rnd[0] << 8 | rnd[1]) % 1000, set = 0;
	char m[RS_NUM_LEN];
	num(m, mark);
	const char *args[] = {"born", r->ttl_arg, "born", "0", m};
	if (rs_script_int(r, &set, 5, args) && set)
		r->born = mark;
}

static int rs_fetch(struct state_redis *r, int64_t now_ms)
{
	const char *args[] = {"HGETALL", r->key};
	redisReply *rep = NULL;
	if (!rs_sync(r, 0, 2, args, &rep))
		return 0;
	int bad = !rep || snap_parse(r, rep) != 0;
	freeReplyObject(rep);
	if (bad) {
		rs_down(r, "unexpected reply to HGETALL");
		return 0;
	}
	r->snap.have = 1;
	r->snap.taken_ms = now_ms;
	r->snap.batch = !(r->flags & STATE_REDIS_NO_BATCH);
	r->snap.last_ep = -1;
	r->snap.thread = pthread_self();
	born_check(r, now_ms);
	return 1;
}

static void rs_clear(struct state *st, unsigned ep);

static void rs_load(struct state *st, unsigned ep, int64_t now_ms, int windows, struct state_snap *out)
{
	struct state_redis *r = rs_of(st);
	struct rs_guard g;
	assert(ep < st->shape.n_slots);
	if (rs_begin(r, &g, 1)) {
		int held = snap_serves(r, ep, now_ms);
		if (held || rs_fetch(r, now_ms)) {
			r->stats.snapshot_loads += held ? 1 : 0;
			memcpy(out->f, snap_f(r, ep), sizeof out->f);
			for (int w = 0; w < STATE_NWINDOWS; w++)
				out->win[w] = windows ? snap_window_sum(snap_ring(r, ep, w), now_ms) : 0;
			if ((int)ep > r->snap.last_ep)
				r->snap.last_ep = (int)ep;
			rs_end(r, &g);
			const char *bad = state_snap_problem(out, now_ms);
			if (bad) { /* never used, never carried into the local state: cleared where it lives */
				char where[600];
				snprintf(where, sizeof where, "in Redis key %s", r->key);
				state_damage_warn(st, &r->damaged, where, ep, bad);
				rs_clear(st, ep);
				for (int f = 0; f < STATE_NFIELDS; f++)
					out->f[f] = fresh_value(f);
				for (int w = 0; w < STATE_NWINDOWS; w++)
					out->win[w] = 0;
			}
			return;
		}
		rs_end(r, &g);
	}
	r->local->ops->load(r->local, ep, now_ms, windows, out);
}

static int64_t rs_get(struct state *st, unsigned ep, int field)
{
	struct state_redis *r = rs_of(st);
	struct rs_guard g;
	assert(ep < st->shape.n_slots && field >= 0 && field < STATE_NFIELDS);
	if (rs_begin(r, &g, 0)) {
		char f[RS_FIELD_LEN];
		slot_field(f, ep, field);
		const char *args[] = {"HGET", r->key, f};
		redisReply *rep = NULL;
		int ok = rs_sync(r, 0, 3, args, &rep);
		int64_t v = fresh_value(field);
		if (ok && rep && rep->type == REDIS_REPLY_STRING)
			v = strtoll(rep->str, NULL, 10);
		else if (ok && (!rep || rep->type != REDIS_REPLY_NIL)) {
			rs_down(r, "unexpected reply to HGET");
			ok = 0;
		}
		freeReplyObject(rep);
		rs_end(r, &g);
		if (ok)
			return v;
	}
	return r->local->ops->get(r->local, ep, field);
}

/* Sends one field operation of the script for slot ep: op, the field's
 * fresh value, then nargs (0-2) numbers.  With result it waits for the
 * integer answer; without, the write is pipelined.  1 when Redis took it,
 * 0 when it has gone down (the caller then uses the local state). */
static int rs_field_op(struct state_redis *r, const char *op, unsigned ep, int field, int nargs, int64_t a, int64_t b,
                       int64_t *result)
{
	char f[RS_FIELD_LEN], d[RS_NUM_LEN], x[RS_NUM_LEN], y[RS_NUM_LEN];
	slot_field(f, ep, field);
	num(d, fresh_value(field));
	num(x, a);
	num(y, b);
	const char *args[] = {op, r->ttl_arg, f, d, x, y};
	return result ? rs_script_int(r, result, 4 + nargs, args) : rs_async(r, 4 + nargs, args);
}

/* What a field operation's answer makes of our snapshot of the field. */
enum rs_snap_how { SNAP_ANSWER_PLUS_V, SNAP_PLUS_V, SNAP_V, SNAP_ANSWER };

/* One single-argument field operation on Redis (op with v), the snapshot
 * updated as `how` says.  With answer it waits for the integer answer;
 * without, the write is pipelined.  1 when Redis took it, 0 when the
 * caller must apply the operation to the local state instead. */
static int rs_field(struct state *st, const char *op, unsigned ep, int field, int64_t v, int64_t *answer, enum rs_snap_how how)
{
	struct state_redis *r = rs_of(st);
	struct rs_guard g;
	assert(ep < st->shape.n_slots && field >= 0 && field < STATE_NFIELDS);
	if (!rs_begin(r, &g, 0))
		return 0;
	int ok = rs_field_op(r, op, ep, field, 1, v, 0, answer);
	if (ok && r->snap.have) {
		int64_t *f = &snap_f(r, ep)[field];
		*f = how == SNAP_ANSWER_PLUS_V ? *answer + v : how == SNAP_PLUS_V ? *f + v : how == SNAP_V ? v : *answer;
	}
	rs_end(r, &g);
	return ok;
}

static int64_t rs_add(struct state *st, unsigned ep, int field, int64_t delta)
{
	int64_t before = 0;
	if (rs_field(st, "add", ep, field, delta, &before, SNAP_ANSWER_PLUS_V))
		return before;
	return rs_of(st)->local->ops->add(rs_of(st)->local, ep, field, delta);
}

/* An add whose result nobody waits for: pipelined, as a store is. */
static void rs_bump(struct state *st, unsigned ep, int field, int64_t delta)
{
	if (!rs_field(st, "add", ep, field, delta, NULL, SNAP_PLUS_V))
		rs_of(st)->local->ops->bump(rs_of(st)->local, ep, field, delta);
}

static void rs_store(struct state *st, unsigned ep, int field, int64_t v)
{
	if (!rs_field(st, "store", ep, field, v, NULL, SNAP_V))
		rs_of(st)->local->ops->store(rs_of(st)->local, ep, field, v);
}

static int rs_cas(struct state *st, unsigned ep, int field, int64_t expect, int64_t desired)
{
	struct state_redis *r = rs_of(st);
	struct rs_guard g;
	int64_t won = 0;
	assert(ep < st->shape.n_slots && field >= 0 && field < STATE_NFIELDS);
	if (rs_begin(r, &g, 0)) {
		int ok = rs_field_op(r, "cas", ep, field, 2, expect, desired, &won);
		if (ok && won && r->snap.have)
			snap_f(r, ep)[field] = desired;
		else if (ok)
			snap_clear(r); /* our copy was wrong about this field */
		rs_end(r, &g);
		if (ok)
			return won != 0;
	}
	return r->local->ops->cas(r->local, ep, field, expect, desired);
}

static int64_t rs_max(struct state *st, unsigned ep, int field, int64_t v)
{
	int64_t after = 0;
	if (rs_field(st, "max", ep, field, v, &after, SNAP_ANSWER))
		return after;
	return rs_of(st)->local->ops->max(rs_of(st)->local, ep, field, v);
}

/* Without a limit the charge always goes through, so it is pipelined;
 * with one, the answer decides the pick and is waited for. */
static int rs_window_add(struct state *st, unsigned ep, int win, int64_t now_ms, int64_t amount, int64_t limit)
{
	struct state_redis *r = rs_of(st);
	struct rs_guard g;
	assert(ep < st->shape.n_slots && win >= 0 && win < STATE_NWINDOWS);
	if (rs_begin(r, &g, 0)) {
		char f[RS_FIELD_LEN], t[RS_NUM_LEN], a[RS_NUM_LEN], l[RS_NUM_LEN];
		snprintf(f, sizeof f, "%u.%s", ep, window_name[win]);
		num(t, now_ms);
		num(a, amount);
		num(l, limit);
		const char *args[] = {"wadd", r->ttl_arg, f, "0", t, a, l};
		int ok, charged = 1;
		if (limit <= 0) {
			ok = rs_async(r, 7, args);
		} else {
			redisReply *rep = NULL;
			ok = rs_sync(r, 1, 7, args, &rep);
			if (ok && (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
			           rep->element[0]->type != REDIS_REPLY_INTEGER)) {
				rs_down(r, "unexpected reply to the state script");
				ok = 0;
			}
			if (ok)
				charged = rep->element[0]->integer != 0;
			freeReplyObject(rep);
		}
		if (ok && charged && r->snap.have)
			snap_charge(r, ep, win, now_ms, amount);
		rs_end(r, &g);
		if (ok)
			return charged;
	}
	return r->local->ops->window_add(r->local, ep, win, now_ms, amount, limit);
}

/* Forgets Redis's copy and the local one: after a reset, a later fallback
 * must not bring old cooldowns back. */
static void rs_reset(struct state *st)
{
	struct state_redis *r = rs_of(st);
	struct rs_guard g;
	if (rs_begin(r, &g, 0)) {
		const char *args[] = {"DEL", r->key, r->spend_key};
		rs_sync(r, 0, 3, args, NULL);
		snap_clear(r);
		r->born = 0; /* our own reset renews nothing for us (others take it for a flush) */
		memset(r->spent_seen, 0, sizeof r->spent_seen);
		rs_end(r, &g);
	}
	r->local->ops->reset(r->local);
}

/* Deletes the slot's fields in Redis and clears the local copy too. */
static void rs_clear(struct state *st, unsigned ep)
{
	struct state_redis *r = rs_of(st);
	struct rs_guard g;
	assert(ep < st->shape.n_slots);
	if (rs_begin(r, &g, 0)) {
		enum { NAMES = STATE_NFIELDS + STATE_NWINDOWS * STATE_WINDOW_RING };
		char names[NAMES][RS_FIELD_LEN];
		const char *args[2 + NAMES] = {"HDEL", r->key};
		int n = 0;
		for (int f = 0; f < STATE_NFIELDS; f++, n++)
			slot_field(names[n], ep, f);
		for (int w = 0; w < STATE_NWINDOWS; w++)
			for (int i = 0; i < STATE_WINDOW_RING; i++, n++)
				snprintf(names[n], RS_FIELD_LEN, "%u.%s%d", ep, window_name[w], i);
		for (int i = 0; i < n; i++)
			args[2 + i] = names[i];
		rs_sync(r, 0, 2 + n, args, NULL);
		snap_clear(r);
		rs_end(r, &g);
	}
	r->local->ops->clear(r->local, ep);
}

static void spend_field(char *out, unsigned ep, int which)
{
	static const char *const name[STATE_NSPEND_WORDS] = {"day", "month", "held_day", "held_month"};
	if (ep == STATE_SET_SLOT)
		snprintf(out, RS_FIELD_LEN, "set.%s", name[which]);
	else
		snprintf(out, RS_FIELD_LEN, "%u.%s", ep, name[which]);
}

/* Always synchronous: a refusal decides the call, and a settlement is
 * rare enough (one per model call) not to need the pipeline. */
static int rs_spend_add(struct state *st, unsigned ep, int which, uint32_t period, int64_t amount, int64_t limit, int64_t *after)
{
	struct state_redis *r = rs_of(st);
	struct rs_guard g;
	assert(which >= 0 && which < STATE_NSPEND_WORDS && (ep == STATE_SET_SLOT || ep < st->shape.n_slots));
	if (rs_begin(r, &g, 0)) {
		char f[RS_FIELD_LEN], p[RS_NUM_LEN], a[RS_NUM_LEN], l[RS_NUM_LEN], fl[RS_NUM_LEN];
		spend_field(f, ep, which);
		num(p, period);
		num(a, amount);
		num(l, limit);
		/* spent (and held) as we last saw it: a flushed counter starts from there, never from 0 */
		unsigned slot = ep == STATE_SET_SLOT ? st->shape.n_slots : ep;
		int spent = which < STATE_NSPENDS;
		num(fl, spent && r->spent_seen[slot][which].period == period ? r->spent_seen[slot][which].amount : 0);
		const char *args[] = {"spend", r->spend_ttl_arg, f, "0", p, a, l, fl};
		redisReply *rep = NULL;
		int ok = rs_sync(r, 1, 8, args, &rep), applied = 1;
		if (ok && (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
		           rep->element[0]->type != REDIS_REPLY_INTEGER || rep->element[1]->type != REDIS_REPLY_INTEGER)) {
			rs_down(r, "unexpected reply to the state script");
			ok = 0;
		}
		if (ok) {
			applied = rep->element[0]->integer != 0;
			if (after)
				*after = rep->element[1]->integer;
			if (spent) {
				r->spent_seen[slot][which].period = period;
				r->spent_seen[slot][which].amount = rep->element[1]->integer;
			}
		}
		freeReplyObject(rep);
		rs_end(r, &g);
		if (ok)
			return applied;
	}
	return r->local->ops->spend_add(r->local, ep, which, period, amount, limit, after);
}

static int64_t rs_spend_get(struct state *st, unsigned ep, int which, uint32_t period)
{
	struct state_redis *r = rs_of(st);
	struct rs_guard g;
	assert(which >= 0 && which < STATE_NSPEND_WORDS && (ep == STATE_SET_SLOT || ep < st->shape.n_slots));
	if (rs_begin(r, &g, 0)) {
		char f[RS_FIELD_LEN], p[RS_NUM_LEN];
		spend_field(f, ep, which);
		num(p, period);
		const char *args[] = {"sget", r->spend_ttl_arg, f, "0", p};
		int64_t v = 0;
		int ok = rs_script_int(r, &v, 5, args);
		rs_end(r, &g);
		if (ok)
			return v;
	}
	return r->local->ops->spend_get(r->local, ep, which, period);
}

/* Frees r's own memory: what both closing and a failed open release. */
static void rs_free(struct state_redis *r)
{
	secret_release(&r->pass);
	free(r->host);
	free(r->user);
	free(r->key);
	free(r->spend_key);
	free(r->secret_key);
	free(r->where);
	free(r->snap.f);
	free(r->snap.win);
	free(r);
}

static void rs_close(struct state *st)
{
	struct state_redis *r = rs_of(st);
	if (r->c && r->pid == getpid() && r->npend > 0) { /* let the last writes land */
		sigset_t old;
		sigpipe_block(&old);
		rs_sync(r, 1, 0, NULL, NULL);
		sigpipe_restore(&old);
	}
	if (r->c)
		redisFree(r->c);
	state_close(r->local);
	pthread_mutex_destroy(&r->mu);
	rs_free(r);
}

static const char *rs_describe(const struct state *st);

/* Redis's secret while Redis serves (connecting if it is time to), else
 * the local state's: the fingerprints compared are then all the local
 * state's too. */
static void rs_secret(struct state *st, unsigned char *out)
{
	struct state_redis *r = rs_of(st);
	struct rs_guard g;
	if (rs_begin(r, &g, 0)) {
		memcpy(out, r->secret, STATE_SECRET_LEN);
		rs_end(r, &g);
		return;
	}
	r->local->ops->secret(r->local, out);
}

static const struct state_ops redis_ops = {
        "redis", rs_describe,   rs_counter_next, rs_load,  rs_get,   rs_add,       rs_bump,      rs_store, rs_cas,
        rs_max,  rs_window_add, rs_secret,       rs_reset, rs_clear, rs_spend_add, rs_spend_get, rs_close,
};

/* ---- opening ------------------------------------------------------------ */

int state_open_redis(struct state **out, const struct state_redis_opts *o, const struct state_shape *shape, struct err *err)
{
	struct state_redis_url u;
	struct state_redis *r = NULL;
	struct state *local = NULL;
	assert(out && o && shape);
	*out = NULL;
	const char *url = o->url;
	if (!url)
		url = getenv("CONVBI_REDIS_URL");
	if (!url || !*url)
		url = "redis://127.0.0.1:6379/0";
	int rc = state_redis_url_parse(&u, url, err);
	if (rc)
		return rc;
	if ((rc = state_open_path(&local, o->local_path, shape, err)))
		goto done;
	r = xcalloc(1, sizeof *r);
	const char *prefix = o->prefix ? o->prefix : STATE_REDIS_PREFIX;
	size_t keylen = strlen(prefix) + 32, wherelen = strlen(u.host) + 32;
	if (!r || !(r->host = xstrdup(u.host)) || !(r->key = xmalloc(keylen)) || !(r->spend_key = xmalloc(keylen)) ||
	    !(r->secret_key = xmalloc(keylen)) || !(r->where = xmalloc(wherelen)) ||
	    (u.user[0] && !(r->user = xstrdup(u.user))) || (u.pass[0] && secret_set(&r->pass, u.pass)) ||
	    !(r->snap.f = xcalloc((size_t)shape->n_slots * STATE_NFIELDS, sizeof *r->snap.f)) ||
	    !(r->snap.win = xcalloc((size_t)shape->n_slots * STATE_NWINDOWS * STATE_WINDOW_RING, sizeof *r->snap.win))) {
		rc = err_set(err, CONVBI_ENOMEM, "out of memory opening the Redis endpoint state");
		goto done;
	}
	r->base.ops = &redis_ops;
	r->base.shape = *shape;
	r->local = local;
	r->base.under = local;
	local = NULL;
	r->port = u.port;
	r->db = u.db;
	snprintf(r->key, keylen, "%sstate1:%016llx", prefix, (unsigned long long)shape->set_hash);
	snprintf(r->spend_key, keylen, "%sspend1:%016llx", prefix, (unsigned long long)shape->set_hash);
	snprintf(r->secret_key, keylen, "%ssecret1:%016llx", prefix, (unsigned long long)shape->set_hash);
	snprintf(r->where, wherelen, strchr(u.host, ':') ? "[%s]:%d/%d" : "%s:%d/%d", u.host, u.port, u.db);
	r->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : STATE_REDIS_TIMEOUT_MS;
	r->cache_ms = o->cache_ms > 0 ? o->cache_ms : 0;
	r->flags = o->flags;
	num(r->ttl_arg, o->ttl_ms > 0 ? o->ttl_ms : STATE_REDIS_TTL_MS);
	num(r->spend_ttl_arg, STATE_REDIS_SPEND_TTL_MS);
	r->retry_ms = RS_RETRY_MIN_MS;
	r->last_warn_ms = INT64_MIN;
	r->pid = getpid();
	pthread_mutex_init(&r->mu, NULL);

	struct rs_guard g;
	if (rs_begin(r, &g, 0)) {
		rs_end(r, &g);
	} else if (!r->stats.fallbacks) { /* rs_down has not said so already */
		r->last_warn_ms = clock_mono_ms();
		log_warn(
		        "endpoint state: cannot use Redis at %s (%s); using the local state (%s) "
		        "until it answers",
		        r->where, r->why, local_name(r));
	}
	*out = &r->base;
	r = NULL;
done:
	memset(&u, 0, sizeof u);
	if (r)
		rs_free(r);
	state_close(local);
	return rc;
}

int state_redis_wanted(const struct state_cfg *cfg)
{
	const char *env = getenv("CONVBI_REDIS_URL");
	if (cfg && cfg->backend) /* an explicit backend wins over the environment */
		return !strcmp(cfg->backend, "redis");
	return env && *env;
}

int state_redis_open_cfg(struct state **out, const struct state_cfg *cfg, const struct state_shape *shape, struct err *err)
{
	struct state_redis_opts o = STATE_REDIS_OPTS_INIT;
	const char *env = getenv("CONVBI_REDIS_URL");
	o.url = (env && *env) ? env : cfg->url;
	o.prefix = cfg->prefix;
	o.timeout_ms = cfg->redis_timeout_ms;
	o.cache_ms = cfg->cache_ms;
	o.local_path = cfg->path;
	int rc = state_open_redis(out, &o, shape, err);
	if (rc == CONVBI_ECONFIG)
		err_prefix(err, "%s", (env && *env) ? "$CONVBI_REDIS_URL: " : "state.url: ");
	return rc;
}

/* ---- describing ---------------------------------------------------------- */

int state_is_redis(const struct state *st)
{
	return st && st->ops == &redis_ops;
}

static const char *rs_describe(const struct state *st)
{
	const struct state_redis *r = (const struct state_redis *)st;
	if (atomic_load(&r->up))
		return "redis";
	return state_is_shared(r->local) ? "file (redis unreachable)" : "memory (redis unreachable)";
}

void state_redis_stats(const struct state *st, struct state_redis_stats *out)
{
	memset(out, 0, sizeof *out);
	if (!state_is_redis(st))
		return;
	struct state_redis *r = (struct state_redis *)st;
	pthread_mutex_lock(&r->mu);
	*out = r->stats;
	pthread_mutex_unlock(&r->mu);
	out->local_ops = atomic_load(&r->local_ops);
}

const char *state_redis_away(const struct state *st, char *out, size_t cap)
{
	if (!state_is_redis(st) || atomic_load(&((const struct state_redis *)st)->up))
		return NULL;
	struct state_redis *r = (struct state_redis *)st;
	pthread_mutex_lock(&r->mu);
	snprintf(out, cap, "Redis at %s cannot be reached (%s)", r->where, r->why[0] ? r->why : "not connected");
	pthread_mutex_unlock(&r->mu);
	return out;
}

const char *state_redis_key(const struct state *st)
{
	return state_is_redis(st) ? ((const struct state_redis *)st)->key : NULL;
}
