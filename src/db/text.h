/* text.h -- UTF-8 helpers for the db module: repair, cut, display width.
 *
 * SQLite hands back whatever bytes a database holds; before a cell, a
 * column name or a sample value reaches a prompt, a terminal or a JSON
 * document it passes through text_add_utf8, which replaces every invalid
 * sequence (and every NUL byte) by U+FFFD.  The other helpers assume valid
 * UTF-8, which is what text_add_utf8 produces.  Widths follow wcwidth()
 * closely enough for common text: East Asian wide and emoji ranges count
 * 2, combining marks and zero-width characters 0, everything else 1.
 */
#ifndef CONVBI_DB_TEXT_H
#define CONVBI_DB_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Appends s[0..len) to out, replacing invalid sequences and NUL bytes by
 * U+FFFD.  Returns CONVBI_OK, or the buffer's CONVBI_ENOMEM/ETOOBIG (the
 * buffer then keeps what it held before the call). */
int text_add_utf8(struct buf *out, const char *s, size_t len);

/* 1 when s[0..len) is valid UTF-8 without NUL bytes. */
int text_is_utf8(const char *s, size_t len);

/* The largest n <= max such that s[0..n) of valid UTF-8 text ends on a
 * character boundary (n = len when len <= max). */
size_t text_cut(const char *s, size_t len, size_t max);

/* The byte length of the first `chars` characters of valid UTF-8 text
 * (all of it when it has fewer). */
size_t text_prefix_chars(const char *s, size_t len, size_t chars);

/* The display width of one code point (0, 1 or 2). */
int text_cp_width(uint32_t cp);

/* The display width of valid UTF-8 text. */
size_t text_width(const char *s, size_t len);

#endif
