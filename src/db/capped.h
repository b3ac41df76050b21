/* capped.h -- SQL functions that could run for long inside one step,
 * replaced by capped versions on the exec connection.
 *
 * exec's deadline is checked between virtual-machine instructions; a single
 * function call cannot be interrupted.  A few built-ins do work out of
 * proportion to their result: instr(), replace() and the two-argument
 * trim()/ltrim()/rtrim() compare naively (16 MB x 1 MB arguments take
 * hours), LIKE and GLOB backtrack (a 16 MB value against a 900-byte
 * pattern took 37 s), json_patch() merges objects key by key (two
 * 100,000-key objects ran for minutes), printf()/format() loop once per
 * unit of a field width or precision (printf('%.*c', 1e9, 'x') takes
 * seconds), and randomblob()/zeroblob() fill memory (randomblob costs
 * about 10 ms per MB).  Their capped versions refuse arguments over a
 * named limit with SQLITE_TOOBIG and an explicit message, and otherwise
 * give exactly the built-in's result: LIKE and GLOB through SQLite's own
 * sqlite3_strlike()/sqlite3_strglob(), the others by handing the call,
 * unchanged, to the built-in on a private in-memory connection.
 *
 * Every capped function also checks the deadline when it is called, so a
 * run of calls in straight-line code (which has no instruction boundary
 * where SQLite checks for an interrupt) stops at the deadline too.
 */
#ifndef CONVBI_DB_CAPPED_H
#define CONVBI_DB_CAPPED_H

#include <sqlite3.h>

#include "util/err.h"

#include <stdint.h>

#define CAPPED_BLOB_MAX (1024 * 1024)     /* bytes from zeroblob() */
#define CAPPED_RANDOMBLOB_MAX (64 * 1024) /* bytes from randomblob() */
#define CAPPED_PRINTF_FIELD_MAX 100000    /* printf() field width or precision */
#define CAPPED_WORK_MAX \
	20000000.0 /* len(a) * len(b) for instr, replace, trim, and
                                              len(patch) * (len(target) + len(patch)) for
                                              json_patch; about 20 ms at worst */
/* LIKE/GLOB: bytes of the value times (1 + the longest run of the pattern
 * between two `%`/`*` + the number of `%`/`*`), the backtracking's bound. */
#define CAPPED_MATCH_WORK_MAX 20000000.0

/* Registers the capped functions on db; the private connection they use
 * is owned by db and closed with it.  value_max is db's
 * SQLITE_LIMIT_LENGTH, applied to the private connection too.  deadline_ms
 * (borrowed, must outlive db) is read on every call: once
 * clock_mono_ms() reaches a non-zero *deadline_ms, calls fail with
 * SQLITE_INTERRUPT.  Returns CONVBI_OK, or ENOMEM / EDB with a message. */
int capped_install(sqlite3 *db, int value_max, const int64_t *deadline_ms, struct err *err);

#endif
