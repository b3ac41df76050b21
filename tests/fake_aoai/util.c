/* util.c -- small helpers of the fake server: allocation that aborts, a
 * growable string (struct sbuf), JSON string escaping, the two clocks and a
 * per-connection random generator.
 *
 * Nothing here knows about HTTP or Azure.  Allocation failure prints one
 * line and aborts: the fake is a test tool and a half-served request would
 * only blur what the test sees.
 */
#include "fake_aoai.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void oom(void)
{
	fputs("fake_aoai: out of memory\n", stderr);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom();
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom();
	return q;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* ---- sbuf ---------------------------------------------------------------- */

void sb_reserve(struct sbuf *b, size_t extra)
{
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	b->p = xrealloc(b->p, cap);
	b->cap = cap;
}

void sb_add(struct sbuf *b, const void *p, size_t n)
{
	sb_reserve(b, n);
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void sb_puts(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	sb_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

int utf8_seq_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	int len;
	unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the 2nd byte */
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		if (c == 0xE0)
			lo = 0xA0; /* overlong */
		if (c == 0xED)
			hi = 0x9F; /* surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		if (c == 0xF0)
			lo = 0x90;
		if (c == 0xF4)
			hi = 0x8F;
	} else {
		return 0;
	}
	if ((size_t)len > n || s[1] < lo || s[1] > hi)
		return 0;
	for (int i = 2; i < len; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	return len;
}

size_t json_escaped_nul(const char *s, size_t n)
{
	for (size_t i = 0; i + 6 <= n; i++)
		if (s[i] == '\\') {
			if ((s[i + 1] == 'u' || s[i + 1] == 'U') && !memcmp(s + i + 2, "0000", 4))
				return i + 1;
			i++; /* the escaped character: an escaped backslash is no escape start */
		}
	return 0;
}

void sb_json(struct sbuf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s;
	sb_reserve(b, n + 2);
	b->p[b->len++] = '"';
	size_t i = 0;
	while (i < n) {
		/* copy the longest run that needs no escaping in one go */
		size_t j = i;
		while (j < n && u[j] >= 0x20 && u[j] < 0x80 && u[j] != '"' && u[j] != '\\')
			j++;
		if (j > i) {
			sb_add(b, s + i, j - i);
			i = j;
			continue;
		}
		unsigned char c = u[i];
		char esc[8];
		switch (c) {
		case '"':
			sb_add(b, "\\\"", 2);
			i++;
			continue;
		case '\\':
			sb_add(b, "\\\\", 2);
			i++;
			continue;
		case '\n':
			sb_add(b, "\\n", 2);
			i++;
			continue;
		case '\r':
			sb_add(b, "\\r", 2);
			i++;
			continue;
		case '\t':
			sb_add(b, "\\t", 2);
			i++;
			continue;
		default: break;
		}
		if (c < 0x20) {
			esc[0] = '\\', esc[1] = 'u', esc[2] = '0', esc[3] = '0';
			esc[4] = hex[c >> 4], esc[5] = hex[c & 15];
			sb_add(b, esc, 6);
			i++;
			continue;
		}
		int len = utf8_seq_len(u + i, n - i);
		if (len == 0) {
			sb_add(b, "\\ufffd", 6);
			i++;
		} else {
			sb_add(b, s + i, (size_t)len);
			i += (size_t)len;
		}
	}
	sb_add(b, "\"", 1);
}

void sb_reset(struct sbuf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
}

char *sb_take(struct sbuf *b)
{
	char *p = b->p ? b->p : xstrdup("");
	b->p = NULL;
	b->len = b->cap = 0;
	return p;
}

void sb_release(struct sbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* ---- clocks and randomness ---------------------------------------------- */

int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t rng_seed(void)
{
	static atomic_uint_fast64_t counter;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t s = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec;
	s ^= (atomic_fetch_add(&counter, 1) + 1) * 0x9E3779B97F4A7C15ull;
	return s ? s : 1; /* xorshift must not start at 0 */
}

uint64_t rng_next(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1Dull;
}

double rng_unit(uint64_t *state)
{
	return (double)(rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

void make_uuid(char out[37], uint64_t *rng)
{
	static const char hex[] = "0123456789abcdef";
	uint64_t a = rng_next(rng), b = rng_next(rng);
	int k = 0;
	for (int i = 0; i < 32; i++) {
		if (i == 8 || i == 12 || i == 16 || i == 20)
			out[k++] = '-';
		uint64_t w = i < 16 ? a : b;
		unsigned nib = (unsigned)(w >> ((i % 16) * 4)) & 15;
		if (i == 12)
			nib = 4; /* version 4 */
		if (i == 16)
			nib = 8 | (nib & 3); /* variant 10xx */
		out[k++] = hex[nib];
	}
	out[k] = '\0';
}

long tokens_of(size_t n)
{
	return (long)((n + 3) / 4);
}
