/* state.c -- the "file" and "memory" state backends: one layout, one set of ops.
 *
 * Both backends are a struct state_shm over a mapping laid out as state.h
 * describes (header, tier counters, endpoint slots).  "file" maps a file
 * shared by every process of the host that opens the same endpoint set;
 * "memory" maps anonymous memory.  The operations are the same code for
 * both: C11 atomics on 64-bit words, lock-free, so a process killed at any
 * instruction leaves every word either before or after its update and no
 * other process ever waits on it.
 *
 * Opening a file (state_open_file), crash-safe by construction:
 *   1. lstat(path), then open(path, O_NOFOLLOW | O_NONBLOCK) and check it:
 *      a regular file of ours, of the exact size, whose immutable header
 *      (magic, version, layout sizes, endpoint-set hash, checksum)
 *      matches.  Valid -> map it, done.
 *   2. Missing -> build a complete file under a temp name in the same
 *      directory and link() it into place: link fails with EEXIST if a
 *      racing process got there first, and then we use theirs (step 1).
 *   3. Ours but unusable (our magic and a version we know -- this one or
 *      an older one -- with a bad checksum, another layout or endpoint
 *      set, a wrong size; or empty, which is how a user clears one) ->
 *      flock(LOCK_EX) it (the only lock, held for
 *      the few microseconds of a rebuild, and only among rebuilders),
 *      check the path still names it, build a temp file and rename() it
 *      over, warn once.  A racing rebuilder finds the path renamed and
 *      starts over.
 *   4. A valid file of another endpoint set (another configuration
 *      sharing the path) is left whole: this set's state lives beside it,
 *      at <path>.<16 hex digits of the set hash> (opened by steps 1-5), as
 *      Redis keys each set's hash by the set hash -- so configurations
 *      that alternate on one path never wipe each other's cooldowns,
 *      learned rates or spending.
 *   5. Anything else is never touched: a symbolic link, a FIFO, a device
 *      or a directory (never even opened), a file of another user or one
 *      every user can write, one without our magic, one of a newer
 *      version, or (at the keyed path, so only by a hash collision) one of
 *      another endpoint set that holds spending of this month.  The
 *      open fails with a message that says so (CONVBI_ECONFIG when the
 *      path was configured, CONVBI_ESTATE for the default path, where
 *      state_open falls back to in-process state).
 * A file is therefore never seen half-built: its header is written before
 * it has a name.  Temp files (<path>.<pid>.<n>.tmp) of a process killed
 * mid-build are never used, and each open removes those of ours whose
 * process is gone and that are older than STATE_TMP_STALE_S (clean_stale).
 *
 * A file changed under a process that has it mapped (truncated with
 * `: > FILE` or `truncate`, removed, replaced) must not crash it: touching
 * a page past the new end of a file raises SIGBUS.  The guard (below,
 * "the SIGBUS guard") catches a SIGBUS inside one of our mappings, maps
 * anonymous memory over that mapping so the access completes, and flags
 * the state lost; the next operation reopens the path (rebuilding the
 * file with one warning) and maps it over the same addresses with
 * MAP_FIXED, so other threads never see the range unmapped.  A change
 * that raises no SIGBUS (a truncation that keeps the pages we use, a
 * replacement) is found by comparing the path with the mapped file at
 * most once a second, in loads.  When the path cannot be reopened the
 * process goes on in its own memory, with one warning.
 */
#include "llm/state.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "convbi/convbi.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/regfile.h"

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "shared state needs lock-free 64-bit atomics");
_Static_assert(sizeof(struct state_header) == 2 * STATE_LINE, "the header is two lines");
_Static_assert(sizeof(struct state_slot) == 8 * STATE_LINE, "a slot is eight lines");
_Static_assert(sizeof(struct state_spend_line) == STATE_LINE, "the set's spending is one line");
_Static_assert(sizeof(struct state_counter) == STATE_LINE, "a counter is one line");

#define STATE_OPEN_TRIES 8    /* races lost in a row before giving up */
#define STATE_REFUSED (-1)    /* open_once: the path holds a file that is not ours */
#define STATE_OTHER_SET (-2)  /* ... one of ours holding another endpoint set's spending */
#define STATE_OPEN_ALL (-3)   /* ... one every user can write */
#define STATE_OTHER_KEPT (-4) /* ... a valid one of another endpoint set, left whole (open_keyed) */
#define STATE_TMP_STALE_S 60  /* a temp file this old whose process is gone is a leftover */

/* Where each field lives in state_slot.word[]: line 0 for what picks
 * read, line 1 for the budgets, line 2 for the statistics. */
static const unsigned char field_word[STATE_NFIELDS] = {
        [STATE_COOL_UNTIL] = 0,   [STATE_COOL_STREAK] = 1,   [STATE_OPEN_UNTIL] = 2,  [STATE_PROBE_UNTIL] = 3,
        [STATE_FAIL_STREAK] = 4,  [STATE_PAUSE_LEVEL] = 5,   [STATE_LAST_FAIL] = 6,   [STATE_REM_REQ] = 8,
        [STATE_REM_TOK] = 9,      [STATE_RESET_REQ] = 10,    [STATE_RESET_TOK] = 11,  [STATE_CALLS] = 16,
        [STATE_OK] = 17,          [STATE_RATE_LIMITED] = 18, [STATE_FAILURES] = 19,   [STATE_TOKENS] = 20,
        [STATE_PACE_REQ] = 7,     [STATE_PACE_TOK] = 12,     [STATE_COOL_CLASS] = 13, [STATE_KEY_FP] = 14,
        [STATE_LEARN_RPM] = 24,   [STATE_LEARN_TPM] = 25,    [STATE_LEARN_FROM] = 26, [STATE_LEARN_STEP] = 27,
        [STATE_LEARN_UNTIL] = 28, [STATE_LEARN_RUN] = 29,    [STATE_MEAS_SINCE] = 30, [STATE_MEAS_ADM] = 31,
        [STATE_ADM] = 21,         [STATE_ADM_TOK] = 22,      [STATE_MEAS_TOK] = 23,   [STATE_LEARN_PEND] = 15,
        [STATE_LEARN_MAX] = 32,   [STATE_LAT_EWMA] = 33,     [STATE_LAT_AT] = 34,     [STATE_TOK_CHARGE] = 35,
};

struct state_shm {
	struct state base;  /* first: the vtable */
	unsigned char *map; /* the mapping (owned), map_size bytes */
	size_t map_size;
	struct state_counter *counters; /* into map: n_tiers */
	struct state_slot *slots;       /* into map: n_slots */
	struct state_spend_line *set;   /* into map: the whole set's spending */
	char *path;                     /* owned; NULL for "memory": the file in use (keyed: open_keyed) */
	char *path_was;                 /* owned: the path before a reopen moved to the keyed one, or NULL */
	/* The file backend's watch over its file (see the top). */
	unsigned char *fixed_at;    /* map_fd maps here (MAP_FIXED) when set: a reopen */
	dev_t dev;                  /* the mapped file */
	ino_t ino;                  /* ... */
	_Atomic int lost;           /* raised by the SIGBUS guard or a changed path */
	_Atomic int recovering;     /* one thread reopens */
	_Atomic int gone;           /* reopening failed: this process's memory for good */
	_Atomic int64_t seen_ms;    /* when a load last compared the path (caller's clock) */
	int guard;                  /* index in guards[], -1 = none */
	_Atomic uint64_t damaged;   /* slots warned about (state_damage_warn) */
	char unshared[ERR_MSG_MAX]; /* why this is the memory that stands in for a file that cannot be used
	                               (written before it serves, or before gone is raised); "" = none */
};

static void shm_recover(struct state_shm *m);

uint64_t state_hash(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static size_t layout_size(const struct state_shape *s)
{
	return sizeof(struct state_header) + (size_t)s->n_tiers * sizeof(struct state_counter) +
	       (size_t)s->n_slots * sizeof(struct state_slot) + sizeof(struct state_spend_line);
}

static int shape_check(const struct state_shape *s, struct err *err)
{
	if (!s || s->n_slots < 1 || s->n_slots > STATE_MAX_SLOTS || s->n_tiers < 1 || s->n_tiers > STATE_MAX_TIERS ||
	    s->n_tiers > s->n_slots)
		return err_set(err, CONVBI_EINVAL, "endpoint state needs 1-%d endpoints in 1-%d tiers", STATE_MAX_SLOTS,
		               STATE_MAX_TIERS);
	return CONVBI_OK;
}

/* ---- the SIGBUS guard ---------------------------------------------------
 * A process-wide table of the file mappings in use and one SIGBUS
 * handler, installed with the first file mapping and chained to whatever
 * handler was there before (a sanitizer's, say).  A fault at an address
 * of ours is repaired by mapping private anonymous memory over the whole
 * mapping -- mmap is a plain system call, safe in a handler -- so the
 * faulting access is retried there and succeeds; any other fault goes to
 * the previous handler, or kills the process as it would have. */
#define STATE_GUARDS 64 /* file states open at once in a process */

struct state_guard {
	_Atomic(uintptr_t) lo; /* the mapping's first byte, 0 = free */
	_Atomic(size_t) len;
	_Atomic(int *) lost; /* the state's flag */
};
static struct state_guard guards[STATE_GUARDS];
static struct sigaction guard_prev;
static atomic_int guard_installed; /* 0 no, 1 installing, 2 yes */

static void guard_handler(int sig, siginfo_t *si, void *ctx)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	for (int i = 0; i < STATE_GUARDS; i++) {
		uintptr_t lo = atomic_load(&guards[i].lo);
		size_t len = atomic_load(&guards[i].len);
		int *lost = (int *)atomic_load(&guards[i].lost);
		if (!lo || a < lo || a - lo >= len)
			continue;
		if (mmap((void *)lo, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
			break;
		if (lost)
			atomic_fetch_add((_Atomic int *)lost, 1);
		return;
	}
	if (guard_prev.sa_flags & SA_SIGINFO) {
		guard_prev.sa_sigaction(sig, si, ctx);
	} else if (guard_prev.sa_handler != SIG_DFL && guard_prev.sa_handler != SIG_IGN) {
		guard_prev.sa_handler(sig);
	} else { /* as if we had never been here: the access faults again, and kills */
		struct sigaction dfl;
		memset(&dfl, 0, sizeof dfl);
		dfl.sa_handler = SIG_DFL;
		sigaction(SIGBUS, &dfl, NULL);
	}
}

static void guard_install(void)
{
	int expect = 0;
	if (!atomic_compare_exchange_strong(&guard_installed, &expect, 1))
		return;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = guard_handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &guard_prev);
	atomic_store(&guard_installed, 2);
}

/* Puts m's mapping under the guard (no-op when the table is full: the
 * load-time path check still finds a change, only a SIGBUS is not caught). */
static void guard_add(struct state_shm *m)
{
	guard_install();
	for (int i = 0; i < STATE_GUARDS; i++) {
		uintptr_t expect = 0;
		if (atomic_compare_exchange_strong(&guards[i].lo, &expect, (uintptr_t)1)) {
			atomic_store(&guards[i].lost, (int *)&m->lost);
			atomic_store(&guards[i].len, m->map_size);
			atomic_store(&guards[i].lo, (uintptr_t)m->map);
			m->guard = i;
			return;
		}
	}
}

static void guard_remove(struct state_shm *m)
{
	if (m->guard < 0)
		return;
	atomic_store(&guards[m->guard].len, 0);
	atomic_store(&guards[m->guard].lost, NULL);
	atomic_store(&guards[m->guard].lo, 0);
	m->guard = -1;
}

/* ---- the operations ------------------------------------------------------
 * Loads are acquire and writes release/acq_rel: cheap on x86 and ARM, and
 * they keep the pool's two-word protocols readable in order (the breaker
 * stores open_until before it frees the probe slot). */

/* The state behind st, reopened first when its file was lost. */
static struct state_shm *shm_of(struct state *st)
{
	struct state_shm *m = (struct state_shm *)st;
	if (atomic_load_explicit(&m->lost, memory_order_relaxed))
		shm_recover(m);
	return m;
}

static _Atomic int64_t *word_of(struct state *st, unsigned ep, int field)
{
	assert(ep < st->shape.n_slots && field >= 0 && field < STATE_NFIELDS);
	return &shm_of(st)->slots[ep].word[field_word[field]];
}

static uint64_t shm_counter_next(struct state *st, unsigned tier)
{
	assert(tier < st->shape.n_tiers);
	return atomic_fetch_add_explicit(&shm_of(st)->counters[tier].value, 1, memory_order_relaxed);
}

static uint32_t bucket_epoch(int64_t now_ms)
{
	return (uint32_t)((uint64_t)(now_ms < 0 ? 0 : now_ms) / STATE_WINDOW_BUCKET_MS);
}

static uint32_t bucket_count(uint64_t w)
{
	return (uint32_t)w;
}
static uint32_t bucket_of(uint64_t w)
{
	return (uint32_t)(w >> 32);
}
static uint64_t bucket_pack(uint32_t epoch, uint32_t count)
{
	return (uint64_t)epoch << 32 | count;
}

/* The sliding sum of one window at now_ms, leaving out the current bucket
 * when skip_current (window_add adds that one itself, under its CAS).  The
 * oldest bucket counts for the share of it still inside the minute,
 * rounded up so the window errs on the side of the budget. */
static int64_t window_sum(_Atomic uint64_t *ring, int64_t now_ms, int skip_current)
{
	uint32_t e = bucket_epoch(now_ms);
	int64_t into = (now_ms < 0 ? 0 : now_ms) % STATE_WINDOW_BUCKET_MS;
	int64_t sum = 0;
	for (uint32_t k = skip_current ? 1 : 0; k <= STATE_WINDOW_FULL + 1; k++) {
		uint64_t w = atomic_load_explicit(&ring[(e - k) % STATE_WINDOW_RING], memory_order_acquire);
		if (bucket_of(w) != e - k)
			continue;
		int64_t c = bucket_count(w);
		if (k == STATE_WINDOW_FULL + 1)
			c = (c * (STATE_WINDOW_BUCKET_MS - into) + STATE_WINDOW_BUCKET_MS - 1) / STATE_WINDOW_BUCKET_MS;
		sum += c;
	}
	return sum;
}

static void slot_fresh(struct state_slot *s);
static const char *file_problem(int fd, const struct state_shape *s, struct stat *st, int *ours);

/* Whether the path still names the file we mapped, looked at no more
 * than once a second of the caller's clock; a change flags the state lost. */
static void shm_watch(struct state_shm *m, int64_t now_ms)
{
	int64_t seen = atomic_load_explicit(&m->seen_ms, memory_order_relaxed);
	if (!m->path || atomic_load(&m->gone) || (now_ms >= seen && now_ms - seen < 1000))
		return;
	if (!atomic_compare_exchange_strong(&m->seen_ms, &seen, now_ms))
		return;
	struct stat st;
	if (lstat(m->path, &st) == 0 && st.st_dev == m->dev && st.st_ino == m->ino && (size_t)st.st_size == m->map_size)
		return;
	/* Another endpoint set's file there now (another configuration on the
	 * path rebuilt it): following it would rebuild it back and wipe the
	 * other's state every second.  Ours stays whole; keep it. */
	int fd = open(m->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	int ours = 0;
	const char *why = fd >= 0 ? file_problem(fd, &m->base.shape, &st, &ours) : NULL;
	if (fd >= 0)
		close(fd);
	if (fd >= 0 && ours && why && !strcmp(why, "for another endpoint set"))
		return;
	atomic_fetch_add(&m->lost, 1);
}

static void shm_load(struct state *st, unsigned ep, int64_t now_ms, int windows, struct state_snap *out)
{
	assert(ep < st->shape.n_slots);
	shm_watch((struct state_shm *)st, now_ms);
	struct state_shm *m = shm_of(st);
	struct state_slot *s = &m->slots[ep];
	for (int f = 0; f < STATE_NFIELDS; f++)
		out->f[f] = atomic_load_explicit(&s->word[field_word[f]], memory_order_acquire);
	const char *bad = state_snap_problem(out, now_ms);
	if (bad) {
		state_damage_warn(st, &m->damaged, m->path ? m->path : "in-process", ep, bad);
		slot_fresh(s);
		for (int f = 0; f < STATE_NFIELDS; f++)
			out->f[f] = atomic_load_explicit(&s->word[field_word[f]], memory_order_acquire);
	}
	for (int w = 0; w < STATE_NWINDOWS; w++)
		out->win[w] = windows ? window_sum(s->win[w], now_ms, 0) : 0;
}

static int64_t shm_get(struct state *st, unsigned ep, int field)
{
	return atomic_load_explicit(word_of(st, ep, field), memory_order_acquire);
}

static int64_t shm_add(struct state *st, unsigned ep, int field, int64_t delta)
{
	return atomic_fetch_add_explicit(word_of(st, ep, field), delta, memory_order_acq_rel);
}

static void shm_bump(struct state *st, unsigned ep, int field, int64_t delta)
{
	atomic_fetch_add_explicit(word_of(st, ep, field), delta, memory_order_acq_rel);
}

static void shm_store(struct state *st, unsigned ep, int field, int64_t v)
{
	atomic_store_explicit(word_of(st, ep, field), v, memory_order_release);
}

static int shm_cas(struct state *st, unsigned ep, int field, int64_t expect, int64_t desired)
{
	return atomic_compare_exchange_strong_explicit(word_of(st, ep, field), &expect, desired, memory_order_acq_rel,
	                                               memory_order_acquire);
}

static int64_t shm_max(struct state *st, unsigned ep, int field, int64_t v)
{
	_Atomic int64_t *w = word_of(st, ep, field);
	int64_t cur = atomic_load_explicit(w, memory_order_acquire);
	while (cur < v)
		if (atomic_compare_exchange_weak_explicit(w, &cur, v, memory_order_acq_rel, memory_order_acquire))
			return v;
	return cur;
}

/* The trap: a bucket may carry an epoch *ahead* of ours when another
 * process's clock runs a little fast; we add to it rather than reset it,
 * so skew never erases another process's charges. */
static int shm_window_add(struct state *st, unsigned ep, int win, int64_t now_ms, int64_t amount, int64_t limit)
{
	assert(ep < st->shape.n_slots && win >= 0 && win < STATE_NWINDOWS);
	_Atomic uint64_t *ring = shm_of(st)->slots[ep].win[win];
	uint32_t e = bucket_epoch(now_ms);
	_Atomic uint64_t *b = &ring[e % STATE_WINDOW_RING];
	int64_t others = limit > 0 ? window_sum(ring, now_ms, 1) : 0;
	uint64_t w = atomic_load_explicit(b, memory_order_acquire);
	for (;;) {
		uint32_t epoch = bucket_of(w);
		int32_t d = (int32_t)(epoch - e); /* a bucket further ahead is damage, not skew */
		int ahead = d > 0 && d < STATE_WINDOW_RING;
		int64_t cur = (epoch == e || ahead) ? bucket_count(w) : 0;
		if (!ahead)
			epoch = e;
		if (limit > 0 && amount > 0 && others + cur > 0 && others + cur + amount > limit)
			return 0;
		int64_t next = cur + amount;
		next = next < 0 ? 0 : next > UINT32_MAX ? UINT32_MAX : next;
		if (atomic_compare_exchange_weak_explicit(b, &w, bucket_pack(epoch, (uint32_t)next), memory_order_acq_rel,
		                                          memory_order_acquire))
			return 1;
	}
}

/* ---- spending ------------------------------------------------------------
 * A spend word packs (period mod 2^16) << 48 | micro-USD.  Periods compare
 * modulo 2^16 (a difference read as a signed 16-bit number), and a word
 * holding 0 micro-USD belongs to nobody: it is taken over by any period,
 * which also covers the fresh word 0 far from period 0. */

static _Atomic uint64_t *spend_word(struct state *st, unsigned ep, int which)
{
	assert(which >= 0 && which < STATE_NSPEND_WORDS && (ep == STATE_SET_SLOT || ep < st->shape.n_slots));
	struct state_shm *m = shm_of(st);
	return ep == STATE_SET_SLOT ? &m->set->spend[which] : &m->slots[ep].spent.spend[which];
}

/* > 0 when the word's period is newer than period, < 0 when older.  A
 * period more than STATE_SPEND_AHEAD ahead is no clock's skew but damage:
 * it counts as older, so the word is taken over (its amount never read). */
#define STATE_SPEND_AHEAD 7
static int spend_age(uint64_t w, uint32_t period)
{
	int d = (int16_t)(uint16_t)((uint16_t)(w >> 48) - (uint16_t)period);
	return d > STATE_SPEND_AHEAD ? -1 : d;
}

static int shm_spend_add(struct state *st, unsigned ep, int which, uint32_t period, int64_t amount, int64_t limit, int64_t *after)
{
	_Atomic uint64_t *w = spend_word(st, ep, which);
	uint64_t old = atomic_load_explicit(w, memory_order_acquire);
	int64_t dummy;
	if (!after)
		after = &dummy;
	for (;;) {
		int64_t cur = (int64_t)(old & STATE_SPEND_MAX);
		uint64_t p = old >> 48;
		int age = spend_age(old, period);
		if (cur == 0 || age < 0) {
			cur = 0;
			p = (uint16_t)period;
		} else if (age > 0 && amount < 0) {
			*after = cur;
			return 1;
		}
		if (limit > 0 && amount > 0 && cur + amount > limit) {
			*after = cur;
			return 0;
		}
		int64_t next = cur + amount;
		next = next < 0 ? 0 : next > STATE_SPEND_MAX ? STATE_SPEND_MAX : next;
		if (atomic_compare_exchange_weak_explicit(w, &old, p << 48 | (uint64_t)next, memory_order_acq_rel,
		                                          memory_order_acquire)) {
			*after = next;
			return 1;
		}
	}
}

static int64_t shm_spend_get(struct state *st, unsigned ep, int which, uint32_t period)
{
	uint64_t w = atomic_load_explicit(spend_word(st, ep, which), memory_order_acquire);
	return spend_age(w, period) < 0 ? 0 : (int64_t)(w & STATE_SPEND_MAX);
}

/* Days since 1970-01-01 of a civil date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

uint32_t state_period(int which, int64_t now_ms)
{
	int64_t days = (now_ms < 0 ? 0 : now_ms) / 86400000;
	if (which == STATE_SPEND_DAY)
		return (uint32_t)days;
	/* civil_from_days, year and month only */
	int64_t z = days + 719468;
	int64_t era = z / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned m = mp < 10 ? mp + 3 : mp - 9;
	int64_t y = (int64_t)yoe + era * 400 + (m <= 2);
	return (uint32_t)((y - 1970) * 12 + (m - 1));
}

int64_t state_period_start_ms(int which, uint32_t period)
{
	if (which == STATE_SPEND_DAY)
		return (int64_t)period * 86400000;
	return days_from_civil(1970 + period / 12, period % 12 + 1, 1) * 86400000;
}

/* Forgets a slot's learned state; its spending stays (see state.h). */
static void slot_fresh(struct state_slot *s)
{
	for (int i = 0; i < STATE_SLOT_WORDS; i++)
		atomic_store_explicit(&s->word[i], 0, memory_order_relaxed);
	atomic_store_explicit(&s->word[field_word[STATE_REM_REQ]], -1, memory_order_relaxed);
	atomic_store_explicit(&s->word[field_word[STATE_REM_TOK]], -1, memory_order_relaxed);
	for (int w = 0; w < STATE_NWINDOWS; w++)
		for (int i = 0; i < STATE_WINDOW_RING; i++)
			atomic_store_explicit(&s->win[w][i], 0, memory_order_relaxed);
}

static void shm_reset(struct state *st)
{
	struct state_shm *m = shm_of(st);
	for (uint32_t t = 0; t < st->shape.n_tiers; t++)
		atomic_store_explicit(&m->counters[t].value, 0, memory_order_relaxed);
	for (uint32_t i = 0; i < st->shape.n_slots; i++) {
		slot_fresh(&m->slots[i]);
		for (int k = 0; k < STATE_NSPEND_WORDS; k++)
			atomic_store_explicit(&m->slots[i].spent.spend[k], 0, memory_order_relaxed);
	}
	for (int k = 0; k < STATE_NSPEND_WORDS; k++)
		atomic_store_explicit(&m->set->spend[k], 0, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
}

static void shm_clear(struct state *st, unsigned ep)
{
	assert(ep < st->shape.n_slots);
	slot_fresh(&shm_of(st)->slots[ep]);
	atomic_thread_fence(memory_order_seq_cst);
}

static void shm_close(struct state *st)
{
	struct state_shm *m = (struct state_shm *)st;
	guard_remove(m);
	if (m->map)
		munmap(m->map, m->map_size);
	free(m->path);
	free(m->path_was);
	free(m);
}

static const char *shm_describe(const struct state *st)
{
	if (atomic_load(&((const struct state_shm *)st)->gone))
		return "memory (state file lost)";
	return st->ops->name;
}

/* The header is immutable once the file has a name: no atomics needed. */
static void shm_secret(struct state *st, unsigned char *out)
{
	memcpy(out, ((const struct state_header *)shm_of(st)->map)->secret, STATE_SECRET_LEN);
}

static const struct state_ops file_ops = {
        "file",  shm_describe,   shm_counter_next, shm_load,  shm_get,   shm_add,       shm_bump,      shm_store, shm_cas,
        shm_max, shm_window_add, shm_secret,       shm_reset, shm_clear, shm_spend_add, shm_spend_get, shm_close,
};

static const struct state_ops memory_ops = {
        "memory", shm_describe,   shm_counter_next, shm_load,  shm_get,   shm_add,       shm_bump,      shm_store, shm_cas,
        shm_max,  shm_window_add, shm_secret,       shm_reset, shm_clear, shm_spend_add, shm_spend_get, shm_close,
};

/* ---- building and checking a layout ----------------------------------- */

int state_random(unsigned char *out, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = getrandom(out + got, n - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* Returns 0, or -1 when no secret could be drawn. */
static int header_fill(struct state_header *h, const struct state_shape *s)
{
	memset(h, 0, sizeof *h);
	if (state_random(h->secret, sizeof h->secret))
		return -1;
	h->magic = STATE_MAGIC;
	h->version = STATE_VERSION;
	h->header_size = sizeof *h;
	h->file_size = layout_size(s);
	h->set_hash = s->set_hash;
	h->n_slots = s->n_slots;
	h->n_tiers = s->n_tiers;
	h->slot_size = sizeof(struct state_slot);
	h->bucket_ms = STATE_WINDOW_BUCKET_MS;
	h->created_ms = clock_wall_ms();
	h->checksum = state_hash(STATE_HASH_INIT, h, offsetof(struct state_header, checksum));
	return 0;
}

/* Points m at the parts of its mapping; with fresh, writes the header and
 * fresh slots too (only ever on memory no other process can see yet).
 * Returns 0, or -1 when the fresh header's secret could not be drawn. */
static int layout_attach(struct state_shm *m, const struct state_shape *s, int fresh)
{
	m->counters = (struct state_counter *)(m->map + sizeof(struct state_header));
	m->slots = (struct state_slot *)(m->map + sizeof(struct state_header) + s->n_tiers * sizeof(struct state_counter));
	m->set = (struct state_spend_line *)(m->slots + s->n_slots);
	m->base.shape = *s;
	if (!fresh)
		return 0;
	if (header_fill((struct state_header *)m->map, s))
		return -1;
	shm_reset(&m->base);
	return 0;
}

/* Why the header h (of a file of size bytes) does not fit shape s, or
 * NULL when it does. */
static const char *header_problem(const struct state_header *h, off_t size, const struct state_shape *s)
{
	if ((size_t)size < sizeof *h || h->magic != STATE_MAGIC)
		return "not a convbi state file";
	if (h->version != STATE_VERSION)
		return "of another version";
	if (h->checksum != state_hash(STATE_HASH_INIT, h, offsetof(struct state_header, checksum)))
		return "damaged (bad header checksum)";
	if (h->header_size != sizeof *h || h->slot_size != sizeof(struct state_slot) || h->bucket_ms != STATE_WINDOW_BUCKET_MS)
		return "of another layout";
	if (h->set_hash != s->set_hash || h->n_slots != s->n_slots || h->n_tiers != s->n_tiers)
		return "for another endpoint set";
	if (h->file_size != layout_size(s) || (uint64_t)size != h->file_size)
		return "truncated or resized";
	return NULL;
}

/* Checks an open file; returns NULL when usable, else the reason.  *ours
 * says whether the file is one convbi wrote (so rebuilding it destroys
 * nothing of anyone's): our magic and a version not newer than ours. */
static const char *file_problem(int fd, const struct state_shape *s, struct stat *st, int *ours)
{
	struct state_header h;
	*ours = 0;
	if (fstat(fd, st) != 0)
		return "unreadable";
	if (!S_ISREG(st->st_mode))
		return regfile_kind(st->st_mode);
	if (st->st_uid != geteuid())
		return "owned by another user";
	if (st->st_mode & S_IWOTH)
		return "writable by every user";
	if (st->st_size == 0) { /* `: > FILE`, a user's way to clear it: nothing of anyone's to lose */
		*ours = 1;
		return "empty";
	}
	memset(&h, 0, sizeof h);
	ssize_t got = pread(fd, &h, sizeof h, 0);
	if (got < (ssize_t)sizeof h.magic || h.magic != STATE_MAGIC)
		return "not a convbi state file";
	if (got >= (ssize_t)offsetof(struct state_header, header_size) && (h.version == 0 || h.version > STATE_VERSION))
		return "of a newer convbi (another state version)";
	*ours = 1;
	if (got != (ssize_t)sizeof h)
		return "truncated";
	return header_problem(&h, st->st_size, s);
}

/* Whether the file of another endpoint set at fd holds spending of this
 * month, its own or an endpoint's: a budget's record, which a rebuild
 * would zero (and so hand the budget out again).  Another configuration
 * sharing the path, most likely: it is refused rather than wiped (see
 * open_once).  Cooldowns and learned rates are rebuilt over, as before. */
static int other_set_spent(int fd, const struct stat *st)
{
	struct state_header h;
	if (pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h || h.n_slots < 1 || h.n_slots > STATE_MAX_SLOTS || h.n_tiers < 1 ||
	    h.n_tiers > STATE_MAX_TIERS || h.slot_size != sizeof(struct state_slot) || h.header_size != sizeof h)
		return 0;
	struct state_shape them = {h.n_slots, h.n_tiers, h.set_hash};
	if ((uint64_t)st->st_size != layout_size(&them) || h.file_size != layout_size(&them))
		return 0;
	uint32_t month = state_period(STATE_SPEND_MONTH, clock_wall_ms());
	off_t slots = (off_t)(sizeof h + h.n_tiers * sizeof(struct state_counter));
	for (uint32_t i = 0; i <= h.n_slots; i++) { /* every slot's line, then the set's */
		struct state_spend_line line;
		off_t at = i < h.n_slots ? slots + (off_t)i * (off_t)sizeof(struct state_slot) +
		                                   (off_t)offsetof(struct state_slot, spent)
		                         : slots + (off_t)h.n_slots * (off_t)sizeof(struct state_slot);
		if (pread(fd, &line, sizeof line, at) != (ssize_t)sizeof line)
			return 0;
		uint64_t w = line.spend[STATE_SPEND_MONTH];
		if ((w & STATE_SPEND_MAX) && spend_age(w, month) >= 0)
			return 1;
	}
	return 0;
}

/* Maps fd into m: at m->fixed_at over what is there when set (a reopen),
 * else anywhere.  Returns 0 or -1 (errno set). */
static int map_fd(struct state_shm *m, int fd, size_t size)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return -1;
	void *p = mmap(m->fixed_at, size, PROT_READ | PROT_WRITE, MAP_SHARED | (m->fixed_at ? MAP_FIXED : 0), fd, 0);
	if (p == MAP_FAILED)
		return -1;
	m->map = p;
	m->map_size = size;
	m->dev = st.st_dev;
	m->ino = st.st_ino;
	return 0;
}

/* Creates a complete state file under a temp name next to path and maps
 * it into m.  On success *tmp_out holds the temp name (caller links or
 * renames, then unlinks).  Returns 0 or an errno. */
static int build_temp(struct state_shm *m, const char *path, const struct state_shape *s, char *tmp_out, size_t cap)
{
	static atomic_uint seq;
	size_t size = layout_size(s);
	int n = snprintf(tmp_out, cap, "%s.%ld.%u.tmp", path, (long)getpid(), atomic_fetch_add(&seq, 1));
	if (n < 0 || (size_t)n >= cap)
		return ENAMETOOLONG;
	int fd = open(tmp_out, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return errno;
	int e = 0;
	if (ftruncate(fd, (off_t)size) != 0 || map_fd(m, fd, size) != 0)
		e = errno;
	close(fd);
	if (e) {
		unlink(tmp_out);
		return e;
	}
	if (layout_attach(m, s, 1)) {
		unlink(tmp_out);
		return EIO;
	}
	return 0;
}

/* Undoes map_fd; a reopen's fixed range gets anonymous memory instead,
 * never a hole another thread could fall into. */
static void unmap(struct state_shm *m)
{
	if (m->map && m->fixed_at) {
		mmap(m->fixed_at, m->map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		return;
	}
	if (m->map)
		munmap(m->map, m->map_size);
	m->map = NULL;
	m->map_size = 0;
}

static int same_file(const char *path, const struct stat *st)
{
	struct stat now;
	return lstat(path, &now) == 0 && now.st_dev == st->st_dev && now.st_ino == st->st_ino;
}

/* One pass of the open protocol (see the top of the file).  Returns 0 when
 * m is mapped, EAGAIN when a race was lost and the caller should retry,
 * STATE_REFUSED when the path holds a file that is not ours (*what says
 * what it is), STATE_OTHER_KEPT (keep_other only) for a valid file of
 * another endpoint set, or an errno for a location that cannot be used
 * (*what names the step). */
static int open_once(struct state_shm *m, const char *path, const struct state_shape *s, int keep_other, const char **what)
{
	char tmp[4096];
	struct stat st;
	if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		/* never opened: opening a device or a FIFO can block or act */
		*what = S_ISLNK(st.st_mode) ? "a symbolic link" : regfile_kind(st.st_mode);
		return STATE_REFUSED;
	}
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0 && errno == ENOENT) {
		*what = "create";
		int e = build_temp(m, path, s, tmp, sizeof tmp);
		if (e)
			return e;
		e = link(tmp, path) == 0 ? 0 : errno;
		unlink(tmp);
		if (e == 0)
			return 0;
		unmap(m);
		return e == EEXIST ? EAGAIN : e;
	}
	if (fd < 0) {
		*what = "open";
		if (errno == ELOOP) { /* it became a link after our lstat */
			*what = "a symbolic link";
			return STATE_REFUSED;
		}
		return errno;
	}
	int ours;
	const char *why = file_problem(fd, s, &st, &ours);
	if (!why) {
		*what = "map";
		int e = map_fd(m, fd, layout_size(s)) == 0 ? 0 : errno;
		close(fd);
		if (!e)
			layout_attach(m, s, 0);
		return e;
	}
	if (!ours) {
		close(fd);
		*what = why;
		return !strcmp(why, "writable by every user") ? STATE_OPEN_ALL : STATE_REFUSED;
	}
	if (!strcmp(why, "for another endpoint set") && keep_other) {
		close(fd);
		return STATE_OTHER_KEPT;
	}
	if (!strcmp(why, "for another endpoint set") && other_set_spent(fd, &st)) {
		close(fd);
		return STATE_OTHER_SET;
	}
	*what = "lock";
	if (flock(fd, LOCK_EX) != 0) {
		int e = errno;
		close(fd);
		return e;
	}
	if (!same_file(path, &st)) { /* a racing rebuilder replaced it */
		close(fd);
		return EAGAIN;
	}
	*what = "rebuild";
	int e = build_temp(m, path, s, tmp, sizeof tmp);
	if (!e && rename(tmp, path) != 0) {
		e = errno;
		unlink(tmp);
		unmap(m);
	}
	close(fd);              /* releases the lock */
	if (!e && !m->fixed_at) /* a reopen says it in one line of its own */
		log_warn("endpoint state file %s was %s; rebuilt it", path, why);
	return e;
}

/* The keyed path of shape s beside path: <path>.<16 hex digits>.  Returns
 * 0, or -1 when it does not fit in cap. */
static int keyed_path(char *out, size_t cap, const char *path, const struct state_shape *s)
{
	int n = snprintf(out, cap, "%s.%016llx", path, (unsigned long long)s->set_hash);
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* open_once at path, retrying lost races; where path holds another
 * endpoint set's valid file, at its keyed path instead (the top, step 4).
 * *used gets the path opened (path, or keyed, cap bytes). */
static int open_keyed(struct state_shm *m, const char *path, const struct state_shape *s, const char **what, char *used,
                      size_t cap)
{
	int e = EAGAIN;
	snprintf(used, cap, "%s", path);
	for (int i = 0; i < STATE_OPEN_TRIES && e == EAGAIN; i++) {
		m->map = NULL;
		e = open_once(m, path, s, 1, what);
	}
	if (e != STATE_OTHER_KEPT)
		return e;
	if (keyed_path(used, cap, path, s)) {
		*what = "name";
		return ENAMETOOLONG;
	}
	e = EAGAIN;
	for (int i = 0; i < STATE_OPEN_TRIES && e == EAGAIN; i++) {
		m->map = NULL;
		e = open_once(m, used, s, 0, what);
	}
	return e;
}

/* Whether name is base.<pid>.<n>.tmp (build_temp's form); *pid gets pid. */
static int tmp_of(const char *name, const char *base, long *pid)
{
	size_t bl = strlen(base);
	if (strncmp(name, base, bl) || name[bl] != '.')
		return 0;
	const char *p = name + bl + 1, *q = p;
	while (*q >= '0' && *q <= '9')
		q++;
	if (q == p || q - p > 10 || *q != '.')
		return 0;
	*pid = strtol(p, NULL, 10);
	p = ++q;
	while (*q >= '0' && *q <= '9')
		q++;
	return q > p && !strcmp(q, ".tmp") && *pid > 0;
}

/* Removes the temp files a killed build left beside path: ours (this
 * user's regular files, never a link), named as build_temp names them,
 * older than STATE_TMP_STALE_S, whose process is gone.  A live process's
 * temp file is never touched (a build takes microseconds, so the age is
 * a second guard, against a pid seen from another pid namespace). */
static void clean_stale(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	int n = slash ? snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path) : snprintf(dir, sizeof dir, ".");
	if (n < 0 || (size_t)n >= sizeof dir || !*base)
		return;
	if (!dir[0])
		snprintf(dir, sizeof dir, "/");
	DIR *d = opendir(dir);
	if (!d)
		return;
	time_t now = time(NULL);
	long pid;
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat st;
		if (!tmp_of(de->d_name, base, &pid) || pid == (long)getpid() || pid > INT32_MAX)
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
		    st.st_uid != geteuid() || now - st.st_mtime < STATE_TMP_STALE_S)
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			log_info("endpoint state: removed %s/%s, left by a process that is gone", dir, de->d_name);
	}
	closedir(d);
}

/* ---- opening ------------------------------------------------------------ */

int state_default_path(char *out, size_t cap, const struct state_shape *shape)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	struct stat st;
	int n;
	if (xdg && xdg[0] == '/' && stat(xdg, &st) == 0 && S_ISDIR(st.st_mode)) {
		n = snprintf(out, cap, "%s/convbi-%016llx.state", xdg, (unsigned long long)shape->set_hash);
	} else {
		const char *tmp = getenv("TMPDIR");
		if (!tmp || tmp[0] != '/')
			tmp = "/tmp";
		n = snprintf(out, cap, "%s/convbi-%lu-%016llx.state", tmp, (unsigned long)geteuid(),
		             (unsigned long long)shape->set_hash);
	}
	return (n < 0 || (size_t)n >= cap) ? CONVBI_ETOOBIG : CONVBI_OK;
}

int state_open_file(struct state **out, const char *path, const struct state_shape *shape, struct err *err)
{
	char def[4096];
	*out = NULL;
	int rc = shape_check(shape, err);
	if (rc)
		return rc;
	int configured = path != NULL;
	if (!path) {
		if (state_default_path(def, sizeof def, shape))
			return err_set(err, CONVBI_ESTATE, "the default state path is too long; set one");
		path = def;
	}
	struct state_shm *m = xcalloc(1, sizeof *m);
	char *copy = xstrdup(path);
	if (!m || !copy) {
		free(m);
		free(copy);
		return err_set(err, CONVBI_ENOMEM, "out of memory opening the endpoint state");
	}
	m->base.ops = &file_ops;
	m->path = copy;
	m->guard = -1;
	const char *what = "open";
	char used[4096];
	int e = open_keyed(m, path, shape, &what, used, sizeof used);
	if (strcmp(used, path)) { /* another endpoint set's file is at path: ours is keyed beside it */
		free(m->path);
		m->path = xstrdup(used);
		if (!m->path) {
			shm_close(&m->base);
			return err_set(err, CONVBI_ENOMEM, "out of memory opening the endpoint state");
		}
		path = used;
	}
	int code = configured ? CONVBI_ECONFIG : CONVBI_ESTATE;
	if (e == STATE_REFUSED || e == STATE_OTHER_SET || e == STATE_OPEN_ALL)
		shm_close(&m->base);
	if (e == STATE_REFUSED)
		return err_set(err, code,
		               "endpoint state file %s is %s; convbi never overwrites a file it did not write: "
		               "set state.path to a new file name",
		               path, what);
	if (e == STATE_OTHER_SET)
		return err_set(err, code,
		               "endpoint state file %s holds this month's spending of another endpoint set, most "
		               "likely another configuration's; convbi will not wipe a budget's record: give each "
		               "configuration its own state.path (or delete the file if that configuration is gone)",
		               path);
	if (e == STATE_OPEN_ALL)
		return err_set(err, code,
		               "endpoint state file %s is writable by every user, so anyone could stop or steer your "
		               "model calls through it: chmod o-w %s",
		               path, path);
	if (e) {
		shm_close(&m->base);
		if (e == EAGAIN)
			return err_set(err, CONVBI_ESTATE, "endpoint state file %s keeps changing under us", path);
		return err_set(err, CONVBI_ESTATE, "cannot %s endpoint state file %s: %s", what, path, strerror(e));
	}
	clean_stale(path);
	guard_add(m);
	*out = &m->base;
	return CONVBI_OK;
}

int state_open_memory(struct state **out, const struct state_shape *shape, struct err *err)
{
	*out = NULL;
	int rc = shape_check(shape, err);
	if (rc)
		return rc;
	struct state_shm *m = xcalloc(1, sizeof *m);
	if (!m)
		return err_set(err, CONVBI_ENOMEM, "out of memory opening the endpoint state");
	size_t size = layout_size(shape);
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		free(m);
		return err_set(err, CONVBI_ENOMEM, "cannot map %zu bytes of endpoint state: %s", size, strerror(errno));
	}
	m->base.ops = &memory_ops;
	m->guard = -1;
	m->map = p;
	m->map_size = size;
	if (layout_attach(m, shape, 1)) {
		munmap(p, size);
		free(m);
		return err_set(err, CONVBI_ESTATE, "cannot draw the endpoint state's secret: %s", strerror(errno));
	}
	*out = &m->base;
	return CONVBI_OK;
}

int state_open_path(struct state **out, const char *path, const struct state_shape *shape, struct err *err)
{
	struct err why = ERR_INIT;
	int rc = state_open_file(out, path, shape, &why);
	if (rc != CONVBI_ESTATE) {
		if (rc && err)
			*err = why;
		return rc;
	}
	log_warn("%s; using in-process endpoint state (not shared with other processes)", why.msg);
	rc = state_open_memory(out, shape, err);
	if (!rc)
		snprintf(((struct state_shm *)*out)->unshared, sizeof((struct state_shm *)*out)->unshared, "%s", why.msg);
	return rc;
}

void state_close(struct state *st)
{
	if (st)
		st->ops->close(st);
}

const char *state_describe(const struct state *st)
{
	return st ? st->ops->describe(st) : "none";
}

void state_recheck(struct state *st)
{
	if (st && st->ops == &file_ops)
		atomic_store(&((struct state_shm *)st)->seen_ms, 0);
}

int state_is_shared(const struct state *st)
{
	return st && st->ops == &file_ops && !atomic_load(&((const struct state_shm *)st)->gone);
}

const char *state_unshared(const struct state *st)
{
	if (!st || (st->ops != &memory_ops && st->ops != &file_ops))
		return NULL;
	const struct state_shm *m = (const struct state_shm *)st;
	if (st->ops == &file_ops && !atomic_load(&m->gone))
		return NULL;
	return m->unshared[0] ? m->unshared : NULL;
}

const char *state_path(const struct state *st)
{
	return state_is_shared(st) ? ((const struct state_shm *)st)->path : NULL;
}

/* ---- a file lost under us ----------------------------------------------- */

/* Reopens m's path over its own addresses after the SIGBUS guard or the
 * path watch flagged the file lost (see the top).  One thread does it;
 * the others go on meanwhile on what is mapped (anonymous memory after a
 * SIGBUS).  When the path cannot be used any more, the state stays in
 * this process's memory for good, made fresh. */
static void shm_recover(struct state_shm *m)
{
	int lost = atomic_load(&m->lost);
	if (!lost || atomic_exchange(&m->recovering, 1))
		return;
	if (atomic_load(&m->gone)) {
		atomic_store(&m->lost, 0);
		atomic_store(&m->recovering, 0);
		return;
	}
	struct state_shm t;
	memset(&t, 0, sizeof t);
	t.base.ops = m->base.ops;
	t.fixed_at = m->map;
	t.guard = -1;
	const char *what = "open";
	char used[4096];
	int e = open_keyed(&t, m->path, &m->base.shape, &what, used, sizeof used);
	if (e == 0 && t.map == m->map && strcmp(used, m->path) && !m->path_was) {
		/* another endpoint set took the path meanwhile: on to our keyed one
		 * (the old name stays allocated: other threads may be reading it) */
		char *moved = xstrdup(used);
		if (moved) {
			m->path_was = m->path;
			m->path = moved;
		}
	}
	if (e == 0 && t.map == m->map) {
		m->dev = t.dev;
		m->ino = t.ino;
		log_warn("endpoint state file %s was truncated or replaced while in use; %s", m->path,
		         !strcmp(what, "rebuild")  ? "rebuilt it"
		         : !strcmp(what, "create") ? "created it again"
		                                   : "reopened it");
	} else {
		/* nothing of the file left mapped: fresh memory of our own */
		mmap(m->map, m->map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		layout_attach(m, &m->base.shape, 1);
		snprintf(m->unshared, sizeof m->unshared,
		         "endpoint state file %s was truncated or replaced while in use and cannot be used again (%s)", m->path,
		         e == STATE_REFUSED || e == STATE_OTHER_SET || e == STATE_OPEN_ALL ? what : strerror(e));
		atomic_store(&m->gone, 1);
		log_warn("%s; using in-process endpoint state (not shared with other processes)", m->unshared);
	}
	atomic_fetch_add(&m->base.renewed, 1); /* after the new store is in place */
	atomic_fetch_sub(&m->lost, lost);
	atomic_store(&m->recovering, 0);
}

/* ---- values no process of ours writes ----------------------------------- */

const char *state_snap_problem(const struct state_snap *s, int64_t now_ms)
{
	static const int deadlines[] = {STATE_COOL_UNTIL,  STATE_OPEN_UNTIL, STATE_PROBE_UNTIL, STATE_RESET_REQ, STATE_RESET_TOK,
	                                STATE_LEARN_UNTIL, STATE_LAST_FAIL,  STATE_MEAS_SINCE,  STATE_LAT_AT};
	static const int counts[] = {STATE_COOL_STREAK,  STATE_FAIL_STREAK, STATE_PAUSE_LEVEL, STATE_CALLS,    STATE_OK,
	                             STATE_RATE_LIMITED, STATE_FAILURES,    STATE_TOKENS,      STATE_LAT_EWMA, STATE_COOL_CLASS};
	const int64_t *f = s->f;
	int64_t ahead = now_ms > INT64_MAX - STATE_AHEAD_MAX_MS ? INT64_MAX : now_ms + STATE_AHEAD_MAX_MS;
	for (size_t i = 0; i < sizeof deadlines / sizeof *deadlines; i++)
		if (f[deadlines[i]] < 0 || f[deadlines[i]] > ahead)
			return "cooldown, breaker or budget time beyond any convbi sets";
	if (f[STATE_PACE_REQ] < 0 || f[STATE_PACE_TOK] < 0 || f[STATE_PACE_REQ] / 1000 > ahead ||
	    f[STATE_PACE_TOK] / 1000 > ahead || f[STATE_LEARN_PEND] < 0 || (f[STATE_LEARN_PEND] >> 1) > ahead)
		return "pacing time beyond any convbi sets";
	for (size_t i = 0; i < sizeof counts / sizeof *counts; i++)
		if (f[counts[i]] < 0)
			return "negative count";
	if (f[STATE_LEARN_RPM] < 0 || f[STATE_LEARN_RPM] > STATE_RATE_MAX || f[STATE_LEARN_TPM] < 0 ||
	    f[STATE_LEARN_TPM] > STATE_RATE_MAX || f[STATE_LEARN_FROM] < 0 || f[STATE_LEARN_FROM] > 0xffff)
		return "learned rate out of range";
	if (f[STATE_REM_REQ] < -1 || f[STATE_REM_TOK] < -1)
		return "server budget out of range";
	if (f[STATE_TOK_CHARGE] < 0 || f[STATE_TOK_CHARGE] > STATE_CHARGE_ONE)
		return "token charge out of range";
	return NULL;
}

void state_set_labels(struct state *st, const char *const *labels)
{
	for (; st; st = st->under)
		st->labels = labels;
}

void state_damage_warn(const struct state *st, _Atomic uint64_t *warned, const char *where, unsigned ep, const char *why)
{
	uint64_t bit = UINT64_C(1) << (ep % 64);
	int first = !(atomic_fetch_or(warned, bit) & bit);
	char num[32];
	const char *label = st && st->labels && st->labels[ep] ? st->labels[ep] : NULL;
	if (!label) {
		snprintf(num, sizeof num, "endpoint %u", ep + 1);
		label = num;
	}
	log_msg(first ? LOG_WARN : LOG_INFO, "endpoint state %s: %s held an impossible value (%s); cleared it", where, label,
	        why);
}
