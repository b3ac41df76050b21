/* capped.h -- SQL functions that could run for long inside one step,
 * replaced by capped versions on the exec connection.
 *
 * exec's deadline is polled between virtual-machine instructions; a single
 * function call cannot be interrupted.  A few built-ins do work out of
 * proportion to their result: instr(), replace() and the two-argument
 * trim()/ltrim()/rtrim() compare naively (16 MB x 1 MB arguments take
 * hours), printf()/format() loop once per unit of a field width or
 * precision (printf('%.*c', 1e9, 'x') takes seconds), and randomblob()/
 * zeroblob() fill memory.  Their capped versions refuse arguments over a
 * named limit with SQLITE_TOOBIG and an explicit message, and otherwise
 * hand the call, unchanged, to the built-in on a private in-memory
 * connection, so results are exactly SQLite's.
 */
#ifndef CONVBI_DB_CAPPED_H
#define CONVBI_DB_CAPPED_H

#include <sqlite3.h>

#include "util/err.h"

#define CAPPED_BLOB_MAX (1024 * 1024)      /* bytes from randomblob()/zeroblob() */
#define CAPPED_PRINTF_FIELD_MAX 100000     /* printf() field width or precision */
#define CAPPED_WORK_MAX 100000000.0        /* len(a) * len(b) for instr, replace, trim */

/* Registers the capped functions on db; the private connection they use
 * is owned by db and closed with it.  value_max is db's
 * SQLITE_LIMIT_LENGTH, applied to the private connection too.  Returns
 * CONVBI_OK, or ENOMEM / EDB with a message. */
int capped_install(sqlite3 *db, int value_max, struct err *err);

#endif
