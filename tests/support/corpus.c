/* corpus.c -- the hostile SQL corpus reader (see corpus.h). */
#include "corpus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "util/buf.h"

long corpus_load(const char *path, struct corpus_case **out, char *err, size_t errlen)
{
	char *text = tu_read_file(path, NULL);
	struct corpus_case *c = NULL;
	long n = 0, cap = 0;
	int line = 0;
	*out = NULL;
	if (!text) {
		snprintf(err, errlen, "%s: cannot be read", path);
		return -1;
	}
	for (char *l = text, *next; l && *l; l = next) {
		next = strchr(l, '\n');
		if (next)
			*next++ = '\0';
		line++;
		if (l[0] == '#' || !l[0])
			continue;
		char *tab = strchr(l, '\t');
		if (!tab) {
			snprintf(err, errlen, "%s:%d: a case without a tab", path, line);
			goto fail;
		}
		*tab = '\0';
		char *colon = strchr(l, ':');
		if (colon)
			*colon = '\0';
		if ((strcmp(l, "reject") && strcmp(l, "limit") && strcmp(l, "fail")) || (colon && strcmp(colon + 1, "heavy"))) {
			snprintf(err, errlen, "%s:%d: unknown expectation `%s%s%s`", path, line, l, colon ? ":" : "",
			         colon ? colon + 1 : "");
			goto fail;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			struct corpus_case *v = realloc(c, (size_t)cap * sizeof *v);
			if (!v)
				goto oom;
			c = v;
		}
		c[n].line = line;
		snprintf(c[n].kind, sizeof c[n].kind, "%s", l);
		snprintf(c[n].fixture, sizeof c[n].fixture, "%s", colon ? colon + 1 : "");
		if (!(c[n].sql = strdup(tab + 1)))
			goto oom;
		n++;
	}
	free(text);
	*out = c;
	return n;
oom:
	snprintf(err, errlen, "%s: out of memory", path);
fail:
	free(text);
	corpus_free(c, n);
	return -1;
}

void corpus_free(struct corpus_case *cases, long n)
{
	for (long i = 0; i < n; i++)
		free(cases[i].sql);
	free(cases);
}

char *corpus_expand(const char *sql, const char *dir, size_t *len)
{
	struct buf o = BUF_INIT;
	int rc = buf_add(&o, "", 0);
	for (const char *p = sql; *p && !rc;) {
		if (p[0] == '\\' && p[1]) {
			char c = p[1] == 'n' ? '\n' : p[1] == 't' ? '\t' : p[1] == '0' ? '\0' : p[1];
			rc = buf_putc(&o, c);
			p += 2;
		} else if (p[0] == '{' && p[1] == '{') {
			char *star;
			long n = strtol(p + 2, &star, 10);
			const char *end = strstr(star, "}}");
			if (*star != '*' || !end || n <= 0) {
				rc = -1;
				break;
			}
			for (long i = 1; i <= n && !rc; i++)
				for (const char *q = star + 1; q < end && !rc; q++)
					rc = *q == '#' ? buf_printf(&o, "%ld", i) : buf_putc(&o, *q);
			p = end + 2;
		} else if (!strncmp(p, "@DIR@", 5)) {
			rc = buf_puts(&o, dir);
			p += 5;
		} else {
			rc = buf_putc(&o, *p++);
		}
	}
	if (rc) {
		buf_release(&o);
		return NULL;
	}
	*len = o.len;
	return buf_take(&o);
}
