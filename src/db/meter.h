/* meter.h -- a byte count held against a limit, with its peak: what the
 * SQL memory budget (membudget.c) and the temporary-file VFS (tempvfs.c)
 * each keep for a connection.
 *
 * The counters are C11 atomics: SQLite may free a block or shrink a file
 * on any thread.  A take that would pass the limit is refused and marks
 * the meter exceeded; the peak moves only when the caller says the bytes
 * were kept (meter_raise_peak), so a take undone at once leaves no peak.
 * Header-only: the memory budget takes on every SQLite allocation.
 */
#ifndef CONVBI_DB_METER_H
#define CONVBI_DB_METER_H

#include <stdatomic.h>
#include <stdint.h>

struct meter {
	_Atomic int64_t used;  /* bytes held now */
	_Atomic int64_t peak;  /* highest `used` since the last reset */
	_Atomic int64_t limit; /* bytes; <= 0 = unlimited */
	atomic_int exceeded;   /* non-zero: a take was refused since the last reset (what it means is the owner's) */
};

static inline void meter_init(struct meter *m, int64_t limit)
{
	atomic_init(&m->used, 0);
	atomic_init(&m->peak, 0);
	atomic_init(&m->limit, limit);
	atomic_init(&m->exceeded, 0);
}

/* Takes n bytes unless that passes the limit (a take of n <= 0 always
 * passes): 1 and *after = the bytes held with them, or 0 with the meter
 * marked exceeded (1). */
static inline int meter_take(struct meter *m, int64_t n, int64_t *after)
{
	int64_t lim = atomic_load(&m->limit);
	int64_t used = atomic_load(&m->used);
	do {
		if (lim > 0 && n > 0 && used + n > lim) {
			atomic_store(&m->exceeded, 1);
			return 0;
		}
	} while (!atomic_compare_exchange_weak(&m->used, &used, used + n));
	*after = used + n;
	return 1;
}

static inline void meter_give(struct meter *m, int64_t n)
{
	atomic_fetch_sub(&m->used, n);
}

/* Makes the peak at least v (the bytes held after a kept take). */
static inline void meter_raise_peak(struct meter *m, int64_t v)
{
	int64_t peak = atomic_load(&m->peak);
	while (v > peak && !atomic_compare_exchange_weak(&m->peak, &peak, v))
		;
}

/* Sets the limit (<= 0 = unlimited), clears the exceeded mark and starts
 * a new peak at the bytes held now. */
static inline void meter_reset(struct meter *m, int64_t limit)
{
	atomic_store(&m->limit, limit);
	atomic_store(&m->exceeded, 0);
	atomic_store(&m->peak, atomic_load(&m->used));
}

static inline int64_t meter_used(const struct meter *m)
{
	return atomic_load(&m->used);
}

static inline int64_t meter_peak(const struct meter *m)
{
	return atomic_load(&m->peak);
}

static inline int64_t meter_limit(const struct meter *m)
{
	return atomic_load(&m->limit);
}

static inline int meter_exceeded(const struct meter *m)
{
	return atomic_load(&m->exceeded);
}

#endif
