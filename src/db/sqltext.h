/* sqltext.h -- lexical pieces of SQL text that the gate (guard.c) and the
 * view weigher (views.c) both need, written once: where a comment ends.
 */
#ifndef CONVBI_DB_SQLTEXT_H
#define CONVBI_DB_SQLTEXT_H

#include <stddef.h>

/* When s[i..len) starts a comment (-- to the end of the line, or a block
 * comment; an unterminated one runs to len), the index just past it;
 * else i. */
size_t sql_comment_end(const char *s, size_t len, size_t i);

#endif
