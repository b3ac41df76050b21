/* buf.c -- the bounded growable buffer (see buf.h).
 *
 * Growth doubles the allocation; the cap check happens before any
 * allocation so a refused append changes nothing.
 */
#include "util/buf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convbi/convbi.h"
#include "util/alloc.h"

void buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
	b->err = 0;
}

void buf_release(struct buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->err = 0;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	b->err = 0;
	if (b->data)
		b->data[0] = '\0';
}

static int failed(struct buf *b, int rc)
{
	if (!b->err)
		b->err = rc;
	return rc;
}

int buf_reserve(struct buf *b, size_t extra)
{
	if (extra > SIZE_MAX / 2 - b->len)
		return failed(b, CONVBI_ETOOBIG);
	size_t need = b->len + extra + 1;
	if (b->max && b->len + extra > b->max)
		return failed(b, CONVBI_ETOOBIG);
	if (need <= b->cap)
		return CONVBI_OK;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	char *p = xrealloc(b->data, cap);
	if (!p)
		return failed(b, CONVBI_ENOMEM);
	if (!b->data)
		p[0] = '\0';
	b->data = p;
	b->cap = cap;
	return CONVBI_OK;
}

int buf_add(struct buf *b, const void *data, size_t len)
{
	int rc = buf_reserve(b, len);
	if (rc)
		return rc;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return CONVBI_OK;
}

int buf_puts(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

int buf_putc(struct buf *b, char c)
{
	return buf_add(b, &c, 1);
}

int buf_put_int(struct buf *b, long long v)
{
	char tmp[24], *p = tmp + sizeof tmp;
	unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	return buf_add(b, p, (size_t)(tmp + sizeof tmp - p));
}

/* The digits come from v * 10^decimals rounded, which is what printf
 * writes unless that product lies within rounding error of a tie (or is
 * too large to hold the error under 10^-6): those go to printf. */
int buf_put_fixed(struct buf *b, double v, int decimals)
{
	static const double scale[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
	if (decimals < 0 || decimals > 9)
		return failed(b, CONVBI_EINVAL);
	double x = v * scale[decimals], ax = x < 0 ? -x : x;
	unsigned long long whole = ax < 1e9 ? (unsigned long long)ax : 0;
	double frac = ax - (double)whole;
	if (!(ax < 1e9) || (frac > 0.5 - 1e-6 && frac < 0.5 + 1e-6))
		return buf_printf(b, "%.*f", decimals, v);
	unsigned long long r = whole + (frac > 0.5);
	char tmp[32], *p = tmp + sizeof tmp;
	for (int i = 0; i < decimals; i++, r /= 10)
		*--p = (char)('0' + r % 10);
	if (decimals)
		*--p = '.';
	do {
		*--p = (char)('0' + r % 10);
		r /= 10;
	} while (r);
	if (signbit(v)) /* as printf: -0.000000 for -0 and what rounds to zero from below */
		*--p = '-';
	return buf_add(b, p, (size_t)(tmp + sizeof tmp - p));
}

/* One pass when the text fits in the room already allocated (the common
 * case: the engine formats a few hundred small pieces per question), a
 * second after growing when it does not. */
int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	size_t room = b->cap > b->len ? b->cap - b->len : 0;
	va_list cp;
	va_copy(cp, ap);
	int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, cp);
	va_end(cp);
	if (n >= 0 && (size_t)n < room && !(b->max && b->len + (size_t)n > b->max)) {
		b->len += (size_t)n;
		return CONVBI_OK;
	}
	if (room)
		b->data[b->len] = '\0'; /* a refused or regrown append changes nothing yet */
	if (n < 0)
		return failed(b, CONVBI_EINVAL);
	int rc = buf_reserve(b, (size_t)n);
	if (rc)
		return rc;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return CONVBI_OK;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

/* A failed composite append leaves nothing of itself: back to len old. */
static int undo(struct buf *b, size_t old, int rc)
{
	b->len = old;
	if (b->data)
		b->data[old] = '\0';
	return rc;
}

int buf_csv_field(struct buf *b, const char *s)
{
	if (!s)
		return CONVBI_OK;
	size_t n = strlen(s);
	if (!n)
		return buf_puts(b, "\"\"");
	if (!strpbrk(s, ",\"\r\n") && s[0] != ' ' && s[n - 1] != ' ')
		return buf_add(b, s, n);
	size_t old = b->len;
	int rc = buf_putc(b, '"');
	for (const char *q; !rc && (q = strchr(s, '"')); s = q + 1)
		if (!(rc = buf_add(b, s, (size_t)(q - s) + 1)))
			rc = buf_putc(b, '"');
	if (!rc && !(rc = buf_puts(b, s)))
		rc = buf_putc(b, '"');
	return rc ? undo(b, old, rc) : CONVBI_OK;
}

int buf_json_str(struct buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t old = b->len;
	int rc = buf_putc(b, '"');
	for (size_t i = 0; !rc && i < len; i++) {
		size_t run = i; /* a run that needs no escape goes in at once, not a byte at a time */
		while (run < len && (unsigned char)s[run] >= 0x20 && s[run] != '"' && s[run] != '\\' && s[run] != 0x7f)
			run++;
		if (run > i) {
			rc = buf_add(b, s + i, run - i);
			i = run - 1;
			continue;
		}
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '"': rc = buf_add(b, "\\\"", 2); break;
		case '\\': rc = buf_add(b, "\\\\", 2); break;
		case '\n': rc = buf_add(b, "\\n", 2); break;
		case '\r': rc = buf_add(b, "\\r", 2); break;
		case '\t': rc = buf_add(b, "\\t", 2); break;
		default:
			if (c < 0x20 || c == 0x7f) {
				char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
				rc = buf_add(b, esc, 6);
			} else {
				rc = buf_putc(b, (char)c);
			}
		}
	}
	if (!rc)
		rc = buf_putc(b, '"');
	return rc ? undo(b, old, rc) : CONVBI_OK;
}

char *buf_take(struct buf *b)
{
	char *p = b->data;
	if (!p) {
		p = xmalloc(1);
		if (p)
			p[0] = '\0';
	}
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->err = 0;
	return p;
}

const char *buf_str(const struct buf *b)
{
	return b->data ? b->data : "";
}
