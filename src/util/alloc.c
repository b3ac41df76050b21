/* alloc.c -- allocation wrappers with the torture-test failure hook.
 *
 * The counter is a process-wide atomic: the hook is meant for
 * single-threaded torture tests, but stays data-race free if threads run.
 */
#include "util/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_long alloc_count;  /* allocations since alloc_fail_at() */
static atomic_long alloc_fail_n; /* fail when count reaches this; 0 = off */
static atomic_int alloc_sticky;  /* keep failing after the first failure */

static int should_fail(void)
{
	long n = atomic_load_explicit(&alloc_fail_n, memory_order_relaxed);
	if (!n)
		return 0;
	long c = atomic_fetch_add(&alloc_count, 1) + 1;
	return c == n || (c > n && atomic_load(&alloc_sticky));
}

long alloc_fail_at(long n, int sticky)
{
	long seen = atomic_exchange(&alloc_count, 0);
	atomic_store(&alloc_sticky, sticky);
	atomic_store(&alloc_fail_n, n);
	return seen;
}

void *xmalloc(size_t n)
{
	return should_fail() ? NULL : malloc(n ? n : 1);
}

void *xcalloc(size_t n, size_t size)
{
	return should_fail() ? NULL : calloc(n ? n : 1, size ? size : 1);
}

void *xrealloc(void *p, size_t n)
{
	return should_fail() ? NULL : realloc(p, n ? n : 1);
}

void *xgrow(void *p, size_t n, size_t size, size_t first)
{
	if (n && (n < first || (n & (n - 1))))
		return p; /* below its capacity: n is not yet a power of two >= first */
	size_t cap = n ? n * 2 : first;
	if (cap < n || cap > (size_t)-1 / size)
		return NULL;
	return xrealloc(p, cap * size);
}

char *xstrdup(const char *s)
{
	return s ? xstrndup(s, strlen(s)) : NULL;
}

char *xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = xmalloc(len + 1);
	if (!p)
		return NULL;
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}
