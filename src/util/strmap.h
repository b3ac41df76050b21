/* strmap.h -- a string -> int hash map (FNV-1a, open addressing, linear
 * probing, grown at half full).  Keys are copied; nothing is ever removed:
 * the bulk commands use it to tell seen ids and sessions apart.
 */
#ifndef CONVBI_UTIL_STRMAP_H
#define CONVBI_UTIL_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct strmap_ent {
	char *key; /* owned; NULL = empty slot */
	int val;
};

struct strmap {
	struct strmap_ent *e; /* owned, open addressing, cap a power of two */
	size_t cap, n;
};

#define STRMAP_INIT        \
	{                  \
		NULL, 0, 0 \
	}

/* Inserts key -> val.  Returns 0 when inserted, 1 when key was present
 * (its value stays, *old receives it when old != NULL), -1 out of memory. */
int strmap_put(struct strmap *m, const char *key, int val, int *old);
/* 1 and *val when present, else 0. */
int strmap_get(const struct strmap *m, const char *key, int *val);
void strmap_release(struct strmap *m);

/* The 64-bit FNV-1a hash of s (also for tables of other values). */
uint64_t strmap_hash(const char *s);

#endif
