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
 *      set, a wrong size) -> flock(LOCK_EX) it (the only lock, held for
 *      the few microseconds of a rebuild, and only among rebuilders),
 *      check the path still names it, build a temp file and rename() it
 *      over, warn once.  A racing rebuilder finds the path renamed and
 *      starts over.
 *   4. Anything else is never touched: a symbolic link, a FIFO, a device
 *      or a directory (never even opened), a file of another user, an
 *      empty file, one without our magic, or one of a newer version.  The
 *      open fails with a message that says so (CONVBI_ECONFIG when the
 *      path was configured, CONVBI_ESTATE for the default path, where
 *      state_open falls back to in-process state).
 * A file is therefore never seen half-built: its header is written before
 * it has a name.  Temp files of a process killed mid-build are left
 * behind (named <path>.<pid>.<n>.tmp) but never used.
 *
 * Not handled: a process truncating the file under us (another user's
 * tool) would raise SIGBUS in the mapping; convbi itself never truncates a
 * named state file.
 */
#include "llm/state.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
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

#define STATE_OPEN_TRIES 8 /* races lost in a row before giving up */
#define STATE_REFUSED (-1) /* open_once: the path holds a file that is not ours */

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
        [STATE_LEARN_MAX] = 32,   [STATE_LAT_EWMA] = 33,     [STATE_LAT_AT] = 34,
};

struct state_shm {
	struct state base;  /* first: the vtable */
	unsigned char *map; /* the mapping (owned), map_size bytes */
	size_t map_size;
	struct state_counter *counters; /* into map: n_tiers */
	struct state_slot *slots;       /* into map: n_slots */
	struct state_spend_line *set;   /* into map: the whole set's spending */
	char *path;                     /* owned; NULL for "memory" */
};

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

/* ---- the operations ------------------------------------------------------
 * Loads are acquire and writes release/acq_rel: cheap on x86 and ARM, and
 * they keep the pool's two-word protocols readable in order (the breaker
 * stores open_until before it frees the probe slot). */

static struct state_shm *shm_of(struct state *st)
{
	return (struct state_shm *)st;
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

static void shm_load(struct state *st, unsigned ep, int64_t now_ms, int windows, struct state_snap *out)
{
	assert(ep < st->shape.n_slots);
	struct state_slot *s = &shm_of(st)->slots[ep];
	for (int f = 0; f < STATE_NFIELDS; f++)
		out->f[f] = atomic_load_explicit(&s->word[field_word[f]], memory_order_acquire);
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
		int ahead = (int32_t)(epoch - e) > 0;
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
	assert(which >= 0 && which < STATE_NSPENDS && (ep == STATE_SET_SLOT || ep < st->shape.n_slots));
	struct state_shm *m = shm_of(st);
	return ep == STATE_SET_SLOT ? &m->set->spend[which] : &m->slots[ep].spent.spend[which];
}

/* > 0 when the word's period is newer than period, < 0 when older. */
static int spend_age(uint64_t w, uint32_t period)
{
	return (int16_t)(uint16_t)((uint16_t)(w >> 48) - (uint16_t)period);
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
		for (int k = 0; k < STATE_NSPENDS; k++)
			atomic_store_explicit(&m->slots[i].spent.spend[k], 0, memory_order_relaxed);
	}
	for (int k = 0; k < STATE_NSPENDS; k++)
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
	struct state_shm *m = shm_of(st);
	if (m->map)
		munmap(m->map, m->map_size);
	free(m->path);
	free(m);
}

static const char *shm_describe(const struct state *st)
{
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
	memset(&h, 0, sizeof h);
	ssize_t got = pread(fd, &h, sizeof h, 0);
	if (got != (ssize_t)sizeof h || h.magic != STATE_MAGIC)
		return (st->st_size == 0) ? "empty, not a convbi state file" : "not a convbi state file";
	if (h.version == 0 || h.version > STATE_VERSION)
		return "of a newer convbi (another state version)";
	*ours = 1;
	return header_problem(&h, st->st_size, s);
}

static int map_fd(struct state_shm *m, int fd, size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -1;
	m->map = p;
	m->map_size = size;
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

static void unmap(struct state_shm *m)
{
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
 * what it is), or an errno for a location that cannot be used (*what names
 * the step). */
static int open_once(struct state_shm *m, const char *path, const struct state_shape *s, const char **what)
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
		return STATE_REFUSED;
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
	close(fd); /* releases the lock */
	if (!e)
		log_warn("endpoint state file %s was %s; rebuilt it", path, why);
	return e;
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
	const char *what = "open";
	int e = EAGAIN;
	for (int i = 0; i < STATE_OPEN_TRIES && e == EAGAIN; i++)
		e = open_once(m, path, shape, &what);
	if (e == STATE_REFUSED) {
		shm_close(&m->base);
		return err_set(err, configured ? CONVBI_ECONFIG : CONVBI_ESTATE,
		               "endpoint state file %s is %s; convbi never overwrites a file it did not write: "
		               "set state.path to a new file name",
		               path, what);
	}
	if (e) {
		shm_close(&m->base);
		if (e == EAGAIN)
			return err_set(err, CONVBI_ESTATE, "endpoint state file %s keeps changing under us", path);
		return err_set(err, CONVBI_ESTATE, "cannot %s endpoint state file %s: %s", what, path, strerror(e));
	}
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
	return state_open_memory(out, shape, err);
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

int state_is_shared(const struct state *st)
{
	return st && st->ops == &file_ops;
}

const char *state_path(const struct state *st)
{
	return state_is_shared(st) ? ((const struct state_shm *)st)->path : NULL;
}
