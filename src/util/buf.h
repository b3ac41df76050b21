/* buf.h -- a bounded, growable byte buffer (git's strbuf, with a cap).
 *
 * A struct buf owns its bytes; `data` is always NUL-terminated when non-NULL
 * so it can be read as a C string.  Every buffer has a `max` (0 = no cap):
 * appends that would exceed it fail with CONVBI_ETOOBIG and leave the buffer
 * as it was, so a model or network reply can never grow without bound.
 * On allocation failure an append returns CONVBI_ENOMEM and the buffer is
 * left unchanged (still valid, still owned by the caller).
 */
#ifndef CONVBI_UTIL_BUF_H
#define CONVBI_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data; /* owned; NUL-terminated when non-NULL */
	size_t len; /* bytes used, not counting the NUL */
	size_t cap; /* bytes allocated */
	size_t max; /* cap on len, 0 = unbounded */
	int err;    /* the first failed append's code, kept until reset or release:
	              * builders that append freely check it once at the end */
};

#define BUF_INIT                 \
	{                        \
		NULL, 0, 0, 0, 0 \
	}
#define BUF_UNBOUNDED 0 /* buf_init max: output its inputs already bound (limits.h names the caps) */

void buf_init(struct buf *b, size_t max);
void buf_release(struct buf *b); /* frees, back to BUF_INIT (keeps max) */
void buf_reset(struct buf *b);   /* len = 0 and err = 0, keeps the allocation */
int buf_reserve(struct buf *b, size_t extra);
int buf_add(struct buf *b, const void *data, size_t len);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Appends v in decimal, as printf's %lld writes it, without printf. */
int buf_put_int(struct buf *b, long long v);
/* Appends v with `decimals` (0..9) digits after the point, as printf's
 * "%.*f" writes it, printf's cost only for values near a rounding tie. */
int buf_put_fixed(struct buf *b, double v, int decimals);
/* Appends s as one RFC 4180 field: NULL is an empty field, "" is a quoted
 * empty string (told apart from NULL); quoted, quotes doubled, when it
 * holds a comma, a quote, CR or LF or starts or ends with a space. */
int buf_csv_field(struct buf *b, const char *s);
/* Appends s as a JSON string literal, quotes included. */
int buf_json_str(struct buf *b, const char *s, size_t len);
/* Hands the bytes to the caller (who frees them) and resets the buffer.
 * Returns an empty malloc'd string for an empty buffer; NULL only on ENOMEM. */
char *buf_take(struct buf *b);
/* A view of the contents as a string: "" when empty, never NULL. */
const char *buf_str(const struct buf *b);

#endif
