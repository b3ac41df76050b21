/* tempvfs.h -- a VFS shim that bounds a connection's temporary files.
 *
 * Sorters, temporary b-trees (DISTINCT, GROUP BY, IN (subquery), recursive
 * UNION, windows) and statement journals spill into temporary files that
 * SQLite opens through the connection's VFS and deletes on close.  A
 * tempvfs is a VFS registered under a unique name that passes every call
 * to the default VFS, except that it counts the bytes written to
 * temporary files (opened without a name, or flagged TEMP_DB,
 * TEMP_JOURNAL, TRANSIENT_DB or SUBJOURNAL): a write that would take the
 * total held by the connection's temporary files past the limit fails
 * with SQLITE_FULL and marks the shim exceeded, which exec turns into
 * ETOOBIG.  Files that are not temporary (the database, its journal or
 * WAL) pass through unchanged.
 */
#ifndef CONVBI_DB_TEMPVFS_H
#define CONVBI_DB_TEMPVFS_H

#include <stdint.h>

#include "db/meter.h"
#include "util/err.h"

struct tempvfs;

/* Registers a new shim over the default VFS with a limit of limit bytes
 * (<= 0 = unlimited, counting only).  Returns CONVBI_OK and *out, or
 * ENOMEM / EDB with a message; *out is NULL on failure. */
int tempvfs_new(struct tempvfs **out, int64_t limit, struct err *err);

/* Unregisters and frees the shim; every connection opened on it must be
 * closed first.  Accepts NULL. */
void tempvfs_free(struct tempvfs *t);

/* The name to pass to sqlite3_open_v2, borrowed from t. */
const char *tempvfs_name(const struct tempvfs *t);

/* The shim's meter (borrowed from t): bytes held by open temporary
 * files now, the peak and the limit (meter_reset sets it and starts a new
 * peak), and whether a write was refused since the last reset. */
struct meter *tempvfs_meter(struct tempvfs *t);

#endif
