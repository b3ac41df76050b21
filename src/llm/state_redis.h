/* state_redis.h -- the "redis" state backend: one endpoint state for a fleet of hosts.
 *
 * The file backend (state.h) shares what the pool learns -- cooldowns,
 * breakers, budgets, round-robin counters -- among the processes of one
 * host.  This backend shares it among every host that points at the same
 * Redis server, key prefix and endpoint set, behind the same struct
 * state_ops, so the pool's logic does not change.  Each write operation is
 * one server-side Lua script call (EVALSHA, falling back to EVAL after
 * NOSCRIPT); the whole endpoint set is one Redis hash whose TTL every
 * write refreshes, so the state of a fleet that stopped expires.
 *
 * Redis being down, slow or restarted never fails or blocks a model call
 * for long: every connect and command is bounded by timeout_ms, and the
 * first failure switches the backend to a local state (the file backend at
 * local_path, else in-process memory) with one log_warn; it tries to
 * reconnect lazily, at most once a second, and resumes in Redis when that
 * works.  state_describe (state.h) says which is in use.
 */
#ifndef CONVBI_LLM_STATE_REDIS_H
#define CONVBI_LLM_STATE_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "llm/config.h"
#include "llm/state.h"
#include "llm/state_redis_url.h"
#include "util/err.h"

#define STATE_REDIS_TIMEOUT_MS 250                     /* default bound on a connect or command */
#define STATE_REDIS_TTL_MS (3600 * 1000)               /* default: a set unused this long expires */
#define STATE_REDIS_PREFIX "convbi:"                   /* default key prefix */
#define STATE_REDIS_SPEND_TTL_MS (40LL * 86400 * 1000) /* spending unused this long expires (> a month) */

/* Tuning switches, for benchmarks and tests; 0 is the production setting. */
#define STATE_REDIS_NO_BATCH 0x1    /* every load is its own round trip */
#define STATE_REDIS_NO_PIPELINE 0x2 /* every write waits for its reply */

struct state_redis_opts {
	const char *url;        /* redis://[[user]:password@]host[:port][/db]; NULL =
	                            $CONVBI_REDIS_URL, else redis://127.0.0.1:6379/0 */
	const char *prefix;     /* key prefix; NULL = STATE_REDIS_PREFIX */
	int timeout_ms;         /* bounds every connect and command; <= 0 = default */
	int cache_ms;           /* serve loads from a snapshot this young (caller's
	                            clock); 0 = never: every pick reads Redis */
	const char *local_path; /* fallback state file; NULL = state_default_path */
	int ttl_ms;             /* expiry refreshed by every write; <= 0 = default */
	unsigned flags;         /* STATE_REDIS_*; 0 */
};
#define STATE_REDIS_OPTS_INIT                \
	{                                    \
		NULL, NULL, 0, 0, NULL, 0, 0 \
	}

/* Opens the redis backend for shape.  Opens the local fallback state first
 * (as state_open does, with its warnings), then connects: an unreachable,
 * refusing or misconfigured server is not an error -- the state starts in
 * fallback with one log_warn and keeps trying.  Returns CONVBI_OK;
 * CONVBI_ECONFIG for a URL that does not parse (the message never shows
 * the password); CONVBI_EINVAL for a bad shape; CONVBI_ENOMEM.  Release
 * with state_close.  Not fork-safe in the usual sense: a child that
 * inherits the state drops the parent's connection and opens its own. */
int state_open_redis(struct state **out, const struct state_redis_opts *o, const struct state_shape *shape, struct err *err);

/* 1 when the configuration asks for the redis backend: state.backend is
 * "redis", or $CONVBI_REDIS_URL is set and not empty (state_open uses it). */
int state_redis_wanted(const struct state_cfg *cfg);
/* state_open_redis with options from the configuration: url from
 * $CONVBI_REDIS_URL when set (so a password can stay out of files), else
 * state.url; prefix, timeout_ms, cache_ms from state; the fallback file at
 * state.path.  What state_open calls for the redis backend. */
int state_redis_open_cfg(struct state **out, const struct state_cfg *cfg, const struct state_shape *shape, struct err *err);

/* 1 when st is a redis-backend state (serving from Redis or not). */
int state_is_redis(const struct state *st);

/* Counters since open, for tests and benchmarks. */
struct state_redis_stats {
	uint64_t round_trips;    /* synchronous exchanges with the server */
	uint64_t commands;       /* commands sent, pipelined ones included */
	uint64_t pipelined;      /* writes sent without waiting for the reply */
	uint64_t snapshot_loads; /* loads answered from a snapshot already held */
	uint64_t evals;          /* EVALs after a NOSCRIPT */
	uint64_t connects;       /* connection attempts, the first included */
	uint64_t connect_failures;
	uint64_t fallbacks; /* switches from Redis to the local state */
	uint64_t local_ops; /* operations served by the local state */
};
/* Copies the counters; zeros for a state of another backend. */
void state_redis_stats(const struct state *st, struct state_redis_stats *out);
/* The Redis key holding st's state (borrowed), or NULL for other backends. */
const char *state_redis_key(const struct state *st);
/* When st is a redis-backend state serving from its local fallback now,
 * writes why into out ("Redis at 127.0.0.1:6379/0 cannot be reached
 * (Connection refused)") and returns out; else NULL. */
const char *state_redis_away(const struct state *st, char *out, size_t cap);

#endif
