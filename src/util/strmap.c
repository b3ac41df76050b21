/* strmap.c -- a string -> int hash map, open addressing (see strmap.h). */
#include "util/strmap.h"

#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

uint64_t strmap_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static struct strmap_ent *strmap_slot(struct strmap_ent *e, size_t cap, const char *key)
{
	size_t i = (size_t)strmap_hash(key) & (cap - 1);
	while (e[i].key && strcmp(e[i].key, key))
		i = (i + 1) & (cap - 1);
	return &e[i];
}

int strmap_put(struct strmap *m, const char *key, int val, int *old)
{
	if ((m->n + 1) * 2 > m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		struct strmap_ent *e = xcalloc(cap, sizeof *e);
		if (!e)
			return -1;
		for (size_t i = 0; i < m->cap; i++)
			if (m->e[i].key)
				*strmap_slot(e, cap, m->e[i].key) = m->e[i];
		free(m->e);
		m->e = e;
		m->cap = cap;
	}
	struct strmap_ent *s = strmap_slot(m->e, m->cap, key);
	if (s->key) {
		if (old)
			*old = s->val;
		return 1;
	}
	if (!(s->key = xstrdup(key)))
		return -1;
	s->val = val;
	m->n++;
	return 0;
}

int strmap_get(const struct strmap *m, const char *key, int *val)
{
	if (!m->cap)
		return 0;
	const struct strmap_ent *s = strmap_slot(m->e, m->cap, key);
	if (!s->key)
		return 0;
	*val = s->val;
	return 1;
}

void strmap_release(struct strmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->e[i].key);
	free(m->e);
	m->e = NULL;
	m->cap = m->n = 0;
}
