/* utf8.h -- the one UTF-8 decoder and validator of convbi.
 *
 * Strict RFC 3629: no overlong forms, no surrogates (U+D800..U+DFFF),
 * nothing above U+10FFFF, no lead bytes C0, C1 or F5..FF.  Every module
 * that checks or walks UTF-8 text (questions, templates, notes, database
 * text, batch input) uses these two functions, so they all agree on what
 * valid text is.
 */
#ifndef CONVBI_UTIL_UTF8_H
#define CONVBI_UTIL_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decodes one character from s (len > 0 bytes available) into *cp (cp may
 * be NULL).  Returns its length (1..4), or 0 when the bytes there are not
 * valid UTF-8 (overlong, surrogate, above U+10FFFF, bad lead or
 * continuation byte, truncated). */
size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp);

/* 1 when s[0..n) is valid UTF-8 (NUL bytes are valid characters here;
 * callers that refuse them check separately); else 0 and, when bad is not
 * NULL, *bad = the offset of the first invalid sequence. */
int utf8_valid(const char *s, size_t n, size_t *bad);

#endif
