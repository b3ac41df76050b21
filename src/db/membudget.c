/* membudget.c -- the accounting allocator under SQLite (see membudget.h).
 *
 * Every block carries a 16-byte header in front of what SQLite sees: the
 * budget it is charged to (NULL = none) and its size.  xSize answers from
 * the header; xRoundup and the real allocation are the default methods',
 * captured with SQLITE_CONFIG_GETMALLOC before ours replace them.
 *
 * Counters are C11 atomics: blocks are freed by whichever thread SQLite
 * frees them on.  The limit check and the charge are one compare-and-swap
 * loop, so two threads sharing a budget cannot both slip under it.
 */
#include "db/membudget.h"

#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "util/clock.h"

struct membudget {
	struct meter m;              /* bytes charged; exceeded: 1 by its limit, 2 by the process's */
	atomic_long refs;            /* 1 for the owner + one per charged block */
	_Atomic int64_t deadline_ms; /* large allocations fail from then on; 0 = never */
};

struct header {
	struct membudget *b; /* charged budget or NULL */
	int64_t size;        /* bytes SQLite asked for */
};

#define HDR ((int)sizeof(struct header)) /* 16: keeps the 8-byte alignment SQLite needs */

static sqlite3_mem_methods real;      /* the default allocator */
static _Atomic int64_t process_used;  /* bytes charged to all budgets */
static _Atomic int64_t process_limit; /* <= 0 = none */
static atomic_int active;             /* our xInit ran */
static _Thread_local struct membudget *current;

static struct header *head_of(void *p)
{
	return (struct header *)((char *)p - HDR);
}

static void budget_unref(struct membudget *b)
{
	if (atomic_fetch_sub(&b->refs, 1) == 1)
		free(b);
}

/* Takes n bytes from the process-wide total, within max(its limit, lim). */
static int charge_process(struct membudget *b, int64_t n, int64_t lim)
{
	int64_t plim = atomic_load(&process_limit);
	if (plim > 0 && lim > plim)
		plim = lim;
	int64_t used = atomic_load(&process_used);
	do {
		if (plim > 0 && n > 0 && used + n > plim) {
			atomic_store(&b->m.exceeded, 2);
			return 0;
		}
	} while (!atomic_compare_exchange_weak(&process_used, &used, used + n));
	return 1;
}

/* Charges n bytes to b unless that passes its limit, the process's or
 * its deadline. */
static int charge(struct membudget *b, int64_t n)
{
	if (n >= MEMBUDGET_LATE_BYTES) {
		int64_t d = atomic_load(&b->deadline_ms);
		if (d && clock_mono_ms() >= d)
			return 0;
	}
	int64_t after;
	if (!meter_take(&b->m, n, &after))
		return 0;
	if (!charge_process(b, n, meter_limit(&b->m))) {
		meter_give(&b->m, n);
		return 0;
	}
	meter_raise_peak(&b->m, after);
	return 1;
}

static void uncharge(struct membudget *b, int64_t n)
{
	meter_give(&b->m, n);
	atomic_fetch_sub(&process_used, n);
}

static void *mb_malloc(int n)
{
	struct membudget *b = current;
	if (b && !charge(b, n))
		return NULL;
	char *p = real.xMalloc(n + HDR);
	if (!p) {
		if (b)
			uncharge(b, n);
		return NULL;
	}
	struct header *h = (struct header *)p;
	h->b = b;
	h->size = n;
	if (b)
		atomic_fetch_add(&b->refs, 1);
	return p + HDR;
}

static void mb_free(void *p)
{
	if (!p)
		return;
	struct header *h = head_of(p);
	struct membudget *b = h->b;
	int64_t size = h->size;
	real.xFree(h);
	if (b) {
		uncharge(b, size);
		budget_unref(b);
	}
}

static void *mb_realloc(void *p, int n)
{
	if (!p)
		return mb_malloc(n);
	struct header *h = head_of(p);
	struct membudget *b = h->b;
	int64_t old = h->size;
	if (b && n > old && !charge(b, n - old))
		return NULL;
	struct header *nh = real.xRealloc(h, n + HDR);
	if (!nh) {
		if (b && n > old)
			uncharge(b, n - old);
		return NULL;
	}
	nh->size = n;
	if (b && n < old)
		uncharge(b, old - n);
	return (char *)nh + HDR;
}

static int mb_size(void *p)
{
	return p ? (int)head_of(p)->size : 0;
}

static int mb_roundup(int n)
{
	return real.xRoundup(n);
}

static int mb_init(void *app)
{
	(void)app;
	int rc = real.xInit(real.pAppData);
	if (rc == SQLITE_OK)
		atomic_store(&active, 1);
	return rc;
}

static void mb_shutdown(void *app)
{
	(void)app;
	atomic_store(&active, 0);
	real.xShutdown(real.pAppData);
}

/* Runs before main() (and before a host's code when loaded as a shared
 * library): SQLITE_CONFIG_MALLOC is refused once SQLite is initialised.
 * A host that later configures its own allocator simply replaces ours. */
__attribute__((constructor)) static void membudget_install(void)
{
	static const sqlite3_mem_methods ours = {mb_malloc, mb_free, mb_realloc, mb_size, mb_roundup, mb_init, mb_shutdown, NULL};
	if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real) != SQLITE_OK || !real.xMalloc)
		return;
	sqlite3_config(SQLITE_CONFIG_MALLOC, &ours);
}

int membudget_active(void)
{
	return atomic_load(&active);
}

struct membudget *membudget_new(int64_t limit)
{
	struct membudget *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	meter_init(&b->m, limit);
	atomic_init(&b->refs, 1);
	atomic_init(&b->deadline_ms, 0);
	return b;
}

void membudget_free(struct membudget *b)
{
	if (b)
		budget_unref(b);
}

struct membudget *membudget_enter(struct membudget *b)
{
	struct membudget *prev = current;
	current = b;
	return prev;
}

void membudget_leave(struct membudget *previous)
{
	current = previous;
}

void membudget_set_deadline(struct membudget *b, int64_t deadline_ms)
{
	atomic_store(&b->deadline_ms, deadline_ms);
}

struct meter *membudget_meter(struct membudget *b)
{
	return &b->m;
}

void membudget_set_process_limit(int64_t limit)
{
	atomic_store(&process_limit, limit);
}

int64_t membudget_process_limit(void)
{
	return atomic_load(&process_limit);
}

int64_t membudget_process_used(void)
{
	return atomic_load(&process_used);
}
