/* ro.h -- opening a SQLite file read-only, hardened, with a clear error.
 *
 * Both connections of the db module come from here: exec's (which runs
 * model-written SQL behind the gate) and schema's (which only runs our own
 * introspection queries).  ro_open opens `file:PATH?mode=ro` as a URI,
 * read-only and without a mutex, turns off extension loading, triggers,
 * writable_schema, the FTS3 tokenizer and untrusted schema functions,
 * turns on defensive mode and `PRAGMA query_only`, and reads the header so
 * that a missing, unreadable or non-database file fails here with one line
 * naming the file and the fix, not later in the middle of a question.
 */
#ifndef CONVBI_DB_RO_H
#define CONVBI_DB_RO_H

#include <sqlite3.h>

#include "util/buf.h"
#include "util/err.h"

/* Appends the read-only URI for path to out: "file:" then the path with
 * every byte outside [A-Za-z0-9-._~/] percent-encoded (so '?', '#', '%'
 * and spaces cannot change the URI's meaning), then "?mode=ro".  Absolute
 * paths get an empty authority ("file:///abs").  Returns CONVBI_OK or the
 * buffer's error (out may then hold part of the URI). */
int ro_uri(struct buf *out, const char *path);

/* Opens path read-only and hardened (see above).  Returns CONVBI_OK and
 * *out (caller closes with sqlite3_close_v2), or CONVBI_EDB with a
 * one-line message ("database `x.db` does not exist; check the path"),
 * CONVBI_EINVAL for an empty path, CONVBI_ENOMEM; *out is NULL on
 * failure. */
int ro_open(sqlite3 **out, const char *path, struct err *err);

/* ro_open through the VFS registered as vfs (NULL = the default). */
int ro_open_vfs(sqlite3 **out, const char *path, const char *vfs, struct err *err);

/* The one message for a database another process holds or is changing
 * (SQLITE_BUSY, SQLITE_LOCKED, SQLITE_SCHEMA anywhere in the db module):
 * CONVBI_EDB, "database `PATH` is locked or being changed by another
 * process; try again when it is done".  Returns CONVBI_EDB. */
int ro_busy_error(struct err *err, const char *path);

/* 1 when a SQLite result code (primary or extended) is one of those. */
int ro_is_busy(int src);

/* The message for a failure to read the schema at open: a schema that
 * uses a function SQLite will not run on an untrusted database ("unsafe
 * use of json_patch()") is named as such, not as corruption; a busy
 * database gets ro_busy_error.  Returns the code set in err. */
int ro_schema_error(struct err *err, const char *path, int src, const char *msg);

/* Busy timeout of every connection: a writer elsewhere holding the file
 * makes readers wait this long before SQLITE_BUSY. */
#define RO_BUSY_TIMEOUT_MS 250

#endif
