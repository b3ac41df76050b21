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

/* Test hook: the n-th allocation from now (1-based) fails, and every one
 * after it when `sticky`; n = 0 turns the hook off.  Returns how many
 * allocations were counted since the last call. */
long alloc_fail_at(long n, int sticky);

#endif
