/* jsonl.c -- text buffer, string map, files and whole-line output for the
 * bulk commands (see jsonl.h).
 *
 * The map is open addressing with linear probing, kept at most half full,
 * hashed with FNV-1a; it never deletes.  The output file relies on two
 * kernel guarantees: writes on an O_APPEND descriptor go to the current
 * end of file, and a write(2) that returns has handed its bytes to the
 * page cache, where they survive the process being killed.  fdatasync
 * after each line extends that to the machine crashing, at a cost that is
 * small next to a model call.
 */
#include "cli/jsonl.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- text buffer --------------------------------------------------------- */

static int tb_grow(struct tbuf *b, size_t extra)
{
	if (b->oom)
		return -1;
	if (b->len + extra + 1 <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + extra + 1) {
		if (cap > SIZE_MAX / 2) {
			b->oom = 1;
			return -1;
		}
		cap *= 2;
	}
	char *p = realloc(b->p, cap);
	if (!p) {
		b->oom = 1;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

void tb_add(struct tbuf *b, const void *p, size_t n)
{
	if (tb_grow(b, n))
		return;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void tb_puts(struct tbuf *b, const char *s)
{
	tb_add(b, s, strlen(s));
}

void tb_printf(struct tbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || tb_grow(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void tb_csv(struct tbuf *b, const char *s)
{
	if (!s)
		return;
	size_t n = strlen(s);
	if (!strpbrk(s, ",\"\r\n") && (n == 0 || (s[0] != ' ' && s[n - 1] != ' '))) {
		tb_add(b, s, n);
		return;
	}
	tb_add(b, "\"", 1);
	for (const char *q; (q = strchr(s, '"')); s = q + 1) {
		tb_add(b, s, (size_t)(q - s) + 1);
		tb_add(b, "\"", 1);
	}
	tb_puts(b, s);
	tb_add(b, "\"", 1);
}

void tb_reset(struct tbuf *b)
{
	b->len = 0;
	b->oom = 0;
	if (b->p)
		b->p[0] = '\0';
}

void tb_release(struct tbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->oom = 0;
}

const char *tb_str(const struct tbuf *b)
{
	return b->p ? b->p : "";
}

/* ---- string -> int map ---------------------------------------------------- */

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static struct strmap_ent *strmap_slot(struct strmap_ent *e, size_t cap, const char *key)
{
	size_t i = (size_t)fnv1a(key) & (cap - 1);
	while (e[i].key && strcmp(e[i].key, key))
		i = (i + 1) & (cap - 1);
	return &e[i];
}

int strmap_put(struct strmap *m, const char *key, int val, int *old)
{
	if ((m->n + 1) * 2 > m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		struct strmap_ent *e = calloc(cap, sizeof *e);
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
	if (!(s->key = strdup(key)))
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

/* ---- files and text ------------------------------------------------------- */

char *json_key_text(const cJSON *v, int *is_num)
{
	char tmp[64];
	*is_num = 0;
	if (cJSON_IsString(v))
		return strdup(v->valuestring);
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
		return NULL;
	*is_num = 1;
	double d = v->valuedouble;
	if (d == floor(d) && fabs(d) < 9007199254740992.0)
		snprintf(tmp, sizeof tmp, "%lld", (long long)d);
	else
		snprintf(tmp, sizeof tmp, "%.17g", d);
	return strdup(tmp);
}

/* ---- the output file ------------------------------------------------------- */

int outfile_open(struct outfile *f, const char *path, int truncate)
{
	memset(f, 0, sizeof *f);
	f->fd = -1;
	pthread_mutex_init(&f->mu, NULL);
	if (!path) {
		f->fd = STDOUT_FILENO;
	} else {
		f->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0644);
		if (f->fd < 0)
			return errno;
		f->own = 1;
	}
	struct stat st;
	f->sync = fstat(f->fd, &st) == 0 && S_ISREG(st.st_mode);
	return 0;
}

int outfile_write(struct outfile *f, const char *text, size_t len)
{
	pthread_mutex_lock(&f->mu);
	int rc = f->err;
	for (size_t off = 0; !rc && off < len;) {
		ssize_t n = write(f->fd, text + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			rc = n < 0 ? errno : EIO;
		else
			off += (size_t)n;
	}
	if (!rc && f->sync && fdatasync(f->fd) && errno != EINVAL)
		rc = errno;
	if (rc)
		f->err = rc;
	pthread_mutex_unlock(&f->mu);
	return rc;
}

void outfile_close(struct outfile *f)
{
	if (f->own && f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	pthread_mutex_destroy(&f->mu);
}
