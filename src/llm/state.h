/* state.h -- the endpoint pool's shared state: one interface, swappable backends.
 *
 * Everything the pool remembers between calls -- cooldowns, breakers,
 * budgets, the round-robin counters, statistics -- lives behind struct
 * state, a first-field vtable (struct state_ops) of small atomic
 * operations on numbered fields of numbered endpoint slots.  The pool's
 * logic (pool.c) only ever calls these operations, so another backend (a
 * Redis server, say) is one more state_*.c file and never a change there.
 *
 * Backends today (state.c):
 *   "file"    a small versioned memory-mapped file shared by every process
 *             and thread of the host that uses the same endpoint set;
 *   "memory"  the same layout and code on an anonymous mapping: this
 *             process only (the fallback when no file can be used, and
 *             what the unit tests use).
 *
 * Contract of every backend:
 *   - each operation is atomic on its own field, and lock-free: a process
 *     killed at any instruction never leaves another process blocked or a
 *     field half-written (fields are independent 64-bit words; there is no
 *     multi-field transaction, so readers tolerate a mix of old and new
 *     fields -- the pool is written for that);
 *   - a fresh slot reads: every field 0 except the server budgets
 *     (STATE_REM_REQ, STATE_REM_TOK), which read -1 (unknown);
 *   - time is Unix wall-clock milliseconds passed in by the caller, so a
 *     deadline means the same in every process; backends never read a
 *     clock themselves.
 *
 * Ownership: state_open* hand back a state the caller releases with
 * state_close (NULL is fine).  The file backend never deletes its file:
 * other processes may be using it.
 */
#ifndef CONVBI_LLM_STATE_H
#define CONVBI_LLM_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* Bump whenever the file layout below changes: an older file is rebuilt
 * (a newer one, another convbi's, is left alone). */
#define STATE_VERSION 7
#define STATE_MAX_SLOTS 64
#define STATE_MAX_TIERS 64

/* The client-side sliding minute window: a ring of buckets of
 * STATE_WINDOW_BUCKET_MS.  The sum counts the current bucket, the
 * STATE_WINDOW_FULL before it, and the bucket before those weighted by the
 * part of it still inside the last 60 s -- a sliding minute under the
 * assumption that calls spread evenly within a 10 s bucket. */
#define STATE_WINDOW_BUCKET_MS 10000
#define STATE_WINDOW_FULL 5
#define STATE_WINDOW_RING 8

/* The fields of one endpoint slot.  Units in the comments. */
enum state_field {
	STATE_COOL_UNTIL,   /* ms: no calls before this (rate limit, broken) */
	STATE_COOL_STREAK,  /* bare 429s in a row (grows the default cooldown) */
	STATE_OPEN_UNTIL,   /* ms: breaker; 0 = closed, > now = open, else half-open */
	STATE_PROBE_UNTIL,  /* ms: half-open probe claimed until then; 0 = free */
	STATE_FAIL_STREAK,  /* consecutive server/transport failures */
	STATE_PAUSE_LEVEL,  /* re-opens in a row (doubles the breaker pause) */
	STATE_LAST_FAIL,    /* ms: last server/transport failure, 0 = never */
	STATE_REM_REQ,      /* server-reported remaining requests, -1 = unknown */
	STATE_REM_TOK,      /* server-reported remaining tokens, -1 = unknown */
	STATE_RESET_REQ,    /* ms: when STATE_REM_REQ stops applying */
	STATE_RESET_TOK,    /* ms: when STATE_REM_TOK stops applying */
	STATE_CALLS,        /* attempts reported */
	STATE_OK,           /* ... that succeeded */
	STATE_RATE_LIMITED, /* ... that were 429s */
	STATE_FAILURES,     /* ... that failed (server, transport, broken) */
	STATE_TOKENS,       /* tokens reported used */
	STATE_PACE_REQ,     /* us: rpm pacing, no request before this */
	STATE_PACE_TOK,     /* us: tpm pacing, no request before this */
	STATE_COOL_CLASS,   /* pool class that set the latest cooldown (429 or broken) */
	STATE_KEY_FP,       /* keyed fingerprint of the key an auth cooldown is for, 0 = any */
	STATE_LEARN_RPM,    /* learned requests per minute, 0 = nothing learned */
	STATE_LEARN_TPM,    /* learned tokens per minute, 0 = nothing learned */
	STATE_LEARN_FROM,   /* where they came from: rpm source | tpm source << 8 */
	STATE_LEARN_STEP,   /* additive increase: rpm step | tpm step << 32 */
	STATE_LEARN_UNTIL,  /* ms: a 429 before this is of the episode already cut */
	STATE_LEARN_RUN,    /* paced successes since the last increase */
	STATE_MEAS_SINCE,   /* ms: start of the admitted-rate measurement, 0 = none */
	STATE_MEAS_ADM,     /* STATE_ADM at that start */
	STATE_ADM,          /* requests sent and not refused (+1 at a pick, -1 at a refusal) */
	STATE_ADM_TOK,      /* their estimated tokens (prompt + max_tokens), likewise */
	STATE_MEAS_TOK,     /* STATE_ADM_TOK at the measurement's start */
	STATE_LEARN_PEND,   /* a cut owed: (ms << 1 | tokens), measured to ms (a cooldown's end); 0 = none */
	STATE_LEARN_MAX,    /* the rates the last cuts were made from: rpm | tpm << 32 */
	STATE_LAT_EWMA,     /* us: moving average of the successful attempts' latency, 0 = none */
	STATE_LAT_AT,       /* ms: when STATE_LAT_EWMA last moved */
	STATE_TOK_CHARGE,   /* tokens the service charges per estimated token, x STATE_CHARGE_ONE: a moving
	                       average (pool.c, charge_note); 0 = not measured (1) */
	STATE_NFIELDS
};

#define STATE_CHARGE_ONE 65536 /* STATE_TOK_CHARGE's 1.0 */

/* The two sliding windows of a slot. */
enum state_window { STATE_WIN_REQ, STATE_WIN_TOK, STATE_NWINDOWS };

/* Spending (llm/budget.h): what each endpoint, and the whole set, has spent in
 * the current UTC calendar day and month, in micro-USD (1e-6 USD).  Each
 * of these counters carries its period, so it starts over by itself when
 * the day or month changes, and it survives an endpoint's clear (an
 * operator's reset forgets what was learned, not what was spent). */
enum state_spend { STATE_SPEND_DAY, STATE_SPEND_MONTH, STATE_NSPENDS };
/* Beside each spend counter, the part of it held by calls in flight (their
 * estimates, budget_reserve to budget_settle), counted alike: so a refusal
 * can tell a budget spent from one only held (a caller then waits for the
 * holds to settle instead of failing).  Pass STATE_HELD + STATE_SPEND_DAY
 * (or _MONTH) as `which` to the spend ops.  A state made before these
 * existed reads 0 held: refusals are then taken as spent, as they were. */
#define STATE_HELD STATE_NSPENDS
#define STATE_NSPEND_WORDS (2 * STATE_NSPENDS)
#define STATE_SET_SLOT 0xffffffffu               /* ep of the spend ops meaning the whole endpoint set */
#define STATE_SPEND_MAX ((INT64_C(1) << 48) - 1) /* micro-USD one period can hold (~$281M) */

/* The period of a spend counter at now_ms (Unix ms, UTC): days since
 * 1970-01-01 for STATE_SPEND_DAY, months since January 1970 for
 * STATE_SPEND_MONTH. */
uint32_t state_period(int which, int64_t now_ms);
/* Unix ms at which period (of which) begins: the next period's start is
 * when a budget resets. */
int64_t state_period_start_ms(int which, uint32_t period);

/* A point-in-time copy of one slot.  Fields are loaded one by one, so two
 * fields may come from either side of a concurrent update. */
struct state_snap {
	int64_t f[STATE_NFIELDS];    /* indexed by enum state_field */
	int64_t win[STATE_NWINDOWS]; /* sliding-minute sums; 0 unless asked for */
};

/* What a state is laid out for.  Processes share a state only when the
 * whole shape matches (the file backend checks it on open). */
struct state_shape {
	uint32_t n_slots;  /* endpoints, 1..STATE_MAX_SLOTS */
	uint32_t n_tiers;  /* round-robin counters, 1..STATE_MAX_TIERS */
	uint64_t set_hash; /* hash of the endpoint set (identities, tiers, weights) */
};

struct state;

/* The operations.  ep is a slot index < n_slots, tier < n_tiers, field an
 * enum state_field, win an enum state_window; the backend asserts them. */
struct state_ops {
	const char *name; /* "file", "memory", ... */
	/* What backs st now, for `convbi endpoints` (static text): the name,
	 * or for a backend with a fallback which one serves ("redis", "file
	 * (redis unreachable)").  Thread-safe. */
	const char *(*describe)(const struct state *st);
	/* Returns the tier's shared counter and advances it by one. */
	uint64_t (*counter_next)(struct state *st, unsigned tier);
	/* Copies the slot into out; the window sums at now_ms only when
	 * windows != 0 (they cost a few more loads). */
	void (*load)(struct state *st, unsigned ep, int64_t now_ms, int windows, struct state_snap *out);
	/* Adds delta to a field; returns the value before. */
	int64_t (*get)(struct state *st, unsigned ep, int field);
	int64_t (*add)(struct state *st, unsigned ep, int field, int64_t delta);
	/* Adds delta to a field without asking for the value: a backend may
	 * send it without waiting (Redis pipelines it).  Atomic all the same. */
	void (*bump)(struct state *st, unsigned ep, int field, int64_t delta);
	void (*store)(struct state *st, unsigned ep, int field, int64_t v);
	/* Sets the field to desired if it holds expect; returns 1 if it did. */
	int (*cas)(struct state *st, unsigned ep, int field, int64_t expect, int64_t desired);
	/* Raises the field to v if it is lower; returns the value after. */
	int64_t (*max)(struct state *st, unsigned ep, int field, int64_t v);
	/* Charges amount (may be negative, to undo) to a window at now_ms.
	 * With limit > 0 the charge is refused, returning 0, when it would
	 * take the sliding sum over limit -- except that a charge into an
	 * empty window is always accepted, so one request larger than the
	 * whole budget can still go.  Returns 1 when charged. */
	int (*window_add)(struct state *st, unsigned ep, int win, int64_t now_ms, int64_t amount, int64_t limit);
	/* Copies the state's secret into out: STATE_SECRET_LEN random bytes
	 * made with the state and kept for its life, the same for every
	 * process that shares it.  It keys the key fingerprints (pool.h);
	 * it is never shown.  (Redis: the secret of the backend serving now,
	 * Redis's or the local fallback's.) */
	void (*secret)(struct state *st, unsigned char *out);
	/* Puts every slot and counter back to fresh. Not atomic as a whole:
	 * meant for tests and for an operator's "reset". */
	void (*reset)(struct state *st);
	/* Puts one slot back to fresh (an operator's `endpoints --reset NAME`);
	 * not atomic as a whole either. */
	void (*clear)(struct state *st, unsigned ep);
	/* Adds amount micro-USD (negative: gives back) to what ep -- or the
	 * whole set, ep = STATE_SET_SLOT -- spent in period of which (enum
	 * state_spend, or STATE_HELD + it for the part held), atomically: a counter holding an older period starts
	 * over at 0; one holding a newer period (another process's clock ran
	 * ahead, or a call that began before midnight settles after it) takes
	 * positive amounts and ignores negative ones, so a period's spending is
	 * never lowered by an earlier one's.  With limit > 0 a positive amount
	 * that would take the counter over limit is refused.  The counter stays
	 * within 0..STATE_SPEND_MAX.  *after (may be NULL) receives the
	 * counter's amount afterwards (or as it stands, when refused).  Returns
	 * 1 when applied, 0 when refused. */
	int (*spend_add)(struct state *st, unsigned ep, int which, uint32_t period, int64_t amount, int64_t limit,
	                 int64_t *after);
	/* What ep (or STATE_SET_SLOT) spent in period (0 when the counter holds
	 * an older one). */
	int64_t (*spend_get)(struct state *st, unsigned ep, int which, uint32_t period);
	void (*close)(struct state *st);
};

/* Every backend's struct begins with this. */
struct state {
	const struct state_ops *ops;
	struct state_shape shape;  /* what it was opened for */
	const char *const *labels; /* per slot, "endpoint NAME (URL)" for messages; NULL = by number (borrowed) */
	struct state *under;       /* a backend's own fallback state, labelled alike; NULL = none */
	_Atomic uint32_t renewed;  /* bumped after the backend put a new store in place of one lost in use (a file
	                              rebuilt, created again or reopened, or this process's memory): what was learned
	                              there is gone, and whoever remembers it may put it back (pool.c) */
};

/* Names st's slots in its messages (state_set_labels' labels[ep], e.g.
 * "endpoint a (https://x.openai.azure.com/)": never a key): borrowed, they
 * must outlive st.  NULL goes back to "endpoint N". */
void state_set_labels(struct state *st, const char *const *labels);

struct state_cfg; /* llm/config.h */

/* The state factory: opens the backend the configuration names for shape.
 *   redis   state.backend "redis", or $CONVBI_REDIS_URL set (state_redis.h);
 *   file    otherwise, at state.path or state_default_path, falling back
 *           to memory with one log_warn when the file cannot be used.
 * cfg NULL means all defaults.  Returns CONVBI_OK, CONVBI_ECONFIG (a bad
 * Redis URL), CONVBI_EINVAL (a bad shape) or CONVBI_ENOMEM. */
int state_open(struct state **out, const struct state_cfg *cfg, const struct state_shape *shape, struct err *err);
/* Opens the file backend at path, or (path NULL) at state_default_path.
 * A missing file is created; one of ours that is damaged, truncated, empty,
 * of an older version or of another endpoint set (that spent nothing this month) is
 * rebuilt with one log_warn; anything else at the path (another program's
 * file, a link, a FIFO, a device, a newer convbi's file, a file every user
 * can write, another endpoint set's spending of the month) is never touched: CONVBI_ECONFIG when the
 * path was given, a fallback as below for the default path.  A location
 * that cannot be used falls back to the memory backend with one log_warn.
 * Returns CONVBI_OK (check state_is_shared for which), CONVBI_ENOMEM,
 * CONVBI_ECONFIG, or CONVBI_EINVAL for a bad shape. */
int state_open_path(struct state **out, const char *path, const struct state_shape *shape, struct err *err);
/* Opens the file backend only: CONVBI_ESTATE (message says why) where
 * state_open_path would fall back.  Still rebuilds a bad file of ours with
 * a warning; refuses any other file as state_open_path does. */
int state_open_file(struct state **out, const char *path, const struct state_shape *shape, struct err *err);
/* Opens the memory backend: this process only (shared with children it
 * forks afterwards, as it is a shared anonymous mapping). */
int state_open_memory(struct state **out, const struct state_shape *shape, struct err *err);
void state_close(struct state *st);

/* Bounds on what shared state may hold (any backend).  The state is
 * shared with every process of the user, and a file or a Redis key can be
 * damaged or written by others, so every slot a load returns is checked
 * first: a deadline (cooldown, breaker, budget reset, probe) more than
 * STATE_AHEAD_MAX_MS past now, a time stamp from that far in the future,
 * a learned rate outside 0..STATE_RATE_MAX, a negative count: that slot
 * is cleared (as an operator's reset NAME would) with one warning.
 *
 * What a service asks for is clamped to the same bounds where it is read
 * (pool_report), so the check never fires on convbi's own writes: a wait
 * (retry-after and the like, a budget's reset) keeps an endpoint out for
 * at most STATE_WAIT_MAX_MS -- a daily quota's day fits; a service asking
 * for days more (a monthly quota, a suspended deployment) is asked again
 * after two -- and a rate or limit is at most STATE_RATE_MAX.  The check
 * allows an hour more than the longest wait: the learning episode and the
 * pacing that follow a cooldown's end, and the clocks of hosts sharing a
 * Redis state. */
#define STATE_WAIT_MAX_MS (INT64_C(2) * 86400000)
#define STATE_AHEAD_MAX_MS (STATE_WAIT_MAX_MS + INT64_C(3600000))
#define STATE_RATE_MAX INT64_C(10000000000) /* requests or tokens per minute */
/* Why the slot s (loaded at now_ms) cannot be real, or NULL when it can. */
const char *state_snap_problem(const struct state_snap *s, int64_t now_ms);
/* Logs that slot ep of st (at where) held why and was cleared, naming the
 * endpoint by its label (state_set_labels): a warning the first time for
 * each slot of *warned (a state's own bitmask), log_info after. */
void state_damage_warn(const struct state *st, _Atomic uint64_t *warned, const char *where, unsigned ep, const char *why);

/* Makes st's next load compare its path with the file it has mapped,
 * however recent the last look (the file backend looks at most once a
 * second); nothing for other backends. */
void state_recheck(struct state *st);

/* What backs st now (st->ops->describe); "none" for NULL. */
const char *state_describe(const struct state *st);
/* 1 for the file backend (shared across processes), 0 otherwise. */
int state_is_shared(const struct state *st);
/* Why st is this process's own memory standing in for a state file that
 * cannot be used -- at open (state_open_path's fallback) or since the
 * file was lost in use -- naming the file and the reason (borrowed from
 * st); NULL when st is what was asked for (a usable file, Redis, the
 * memory backend chosen).  What is kept to be shared, budgets above all,
 * is then this process's alone. */
const char *state_unshared(const struct state *st);
/* Why st, a state shared by a fleet (Redis), serves from this host's own
 * fallback now (written into out, returned), or NULL when it serves as
 * asked or is not such a state: what is kept to be shared, budgets above
 * all, is then this host's alone -- and what the fleet spent is not in it. */
const char *state_away(const struct state *st, char *out, size_t cap);
/* The file's path (borrowed from st), or NULL when not file-backed. */
const char *state_path(const struct state *st);

/* Writes the default path for a shape into out (cap bytes):
 * $XDG_RUNTIME_DIR/convbi-<hash>.state when that is an absolute directory
 * path, else $TMPDIR (or /tmp)/convbi-<uid>-<hash>.state, where <hash> is
 * 16 hex digits of the set hash.  Returns CONVBI_ETOOBIG if it won't fit. */
int state_default_path(char *out, size_t cap, const struct state_shape *shape);

/* Bytes of a state's secret (state_ops.secret). */
#define STATE_SECRET_LEN 32
/* Fills out with n random bytes from the system's CSPRNG.  Returns 0, or
 * -1 when none could be had. */
int state_random(unsigned char *out, size_t n);

/* FNV-1a, 64-bit: continues hash h over n bytes (start with STATE_HASH_INIT). */
#define STATE_HASH_INIT 0xcbf29ce484222325ULL
uint64_t state_hash(uint64_t h, const void *p, size_t n);

/* ---- the file layout (for state_*.c only) ------------------------------
 *
 *   offset 0                  struct state_header (128 bytes, immutable)
 *   128                       n_tiers counters, one 64-byte line each
 *   128 + 64*n_tiers          n_slots struct state_slot (512 bytes each)
 *   ... + 512*n_slots         struct state_spend_line: the whole set's spending
 *
 * Every line is 64-byte aligned (mmap gives a page-aligned base).  The
 * header is written once, into a private temp file, before the file is
 * linked or renamed into place, so no process ever sees a half-built
 * file; after that only the 64-bit atomics below change. */
#define STATE_MAGIC 0x5441545349425643ULL /* "CVBISTAT" little-endian */
#define STATE_LINE 64

struct state_header {
	uint64_t magic;       /* STATE_MAGIC */
	uint32_t version;     /* STATE_VERSION */
	uint32_t header_size; /* sizeof(struct state_header) */
	uint64_t file_size;   /* bytes of the whole layout */
	uint64_t set_hash;    /* state_shape.set_hash */
	uint32_t n_slots;
	uint32_t n_tiers;
	uint32_t slot_size;                     /* sizeof(struct state_slot) */
	uint32_t bucket_ms;                     /* STATE_WINDOW_BUCKET_MS */
	int64_t created_ms;                     /* wall clock at creation, informational */
	unsigned char secret[STATE_SECRET_LEN]; /* random at creation: keys the key fingerprints */
	unsigned char reserved[32];             /* zero */
	uint64_t checksum;                      /* state_hash of every byte above */
};

/* One endpoint.  word[] holds the fields (state.c maps each enum
 * state_field to a word): line 0 (words 0-7) is read by every pick and
 * written on failures; line 1 (8-15) takes the budget headers of every
 * reply; line 2 (16-23) the statistics and the admitted counts; line 3
 * (24-31) the learned rates; line 4 (32-39) the latency, what the
 * learning remembers of its cuts and the token charge; lines 5-6 the windows; line 7 the
 * spending.  A window
 * bucket packs (epoch << 32 | count), epoch = the bucket's start time /
 * STATE_WINDOW_BUCKET_MS, mod 2^32.  A spend word packs (period << 48 |
 * micro-USD), period mod 2^16 (179 years of days). */
#define STATE_SLOT_WORDS 40
struct state_spend_line {
	_Alignas(STATE_LINE) _Atomic uint64_t spend[STATE_NSPEND_WORDS]; /* spent and held, then held */
};
struct state_slot {
	_Alignas(STATE_LINE) _Atomic int64_t word[STATE_SLOT_WORDS];
	_Alignas(STATE_LINE) _Atomic uint64_t win[STATE_NWINDOWS][STATE_WINDOW_RING];
	struct state_spend_line spent;
};

struct state_counter {
	_Alignas(STATE_LINE) _Atomic uint64_t value;
};

#endif
