/* alloc.h -- the library's allocation functions, with a failure hook.
 *
 * Every allocation inside libconvbi goes through xmalloc/xcalloc/xrealloc/
 * xstrdup so that the torture tests can make the Nth allocation fail
 * (alloc_fail_at) and check that each core path returns CONVBI_ENOMEM
 * cleanly and leaks nothing.  Outside those tests the hook is off and these
 * are plain malloc & co.  Memory they return is freed with free().
 */
#ifndef CONVBI_UTIL_ALLOC_H
#define CONVBI_UTIL_ALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Room for element n (0-based) of the array p of `size`-byte elements, an
 * array grown by doubling from `first` elements (a power of two) as it
 * fills, so that its capacity follows from n alone: returns p when it
 * has room, else p reallocated, or NULL when that fails (p is then
 * unchanged and still the caller's). */
void *xgrow(void *p, size_t n, size_t size, size_t first);

/* Test hook: the n-th allocation from now (1-based) fails, and every one
 * after it when `sticky`; n = 0 turns the hook off.  Returns how many
 * allocations were counted since the last call. */
long alloc_fail_at(long n, int sticky);

#endif
