/* db_sqlite.c -- the SQLite backend of struct db: a thin wrapper.
 *
 * Everything SQLite-specific lives where it always has: exec.c (the
 * hardened read-only connection and the bounded run), guard.c (the gate),
 * schema.c (introspection on its own read-only connection).  This file
 * only adapts them to db_impl.h's vtable.  db_cancel needs no interrupt
 * here: exec's progress handler polls db.c's cancel wrapper every
 * EXEC_PROGRESS_OPS instructions.
 */
#include <stdio.h>
#include <stdlib.h>

#include "convbi/convbi.h"
#include "db/db_impl.h"
#include "db/exec.h"
#include "db/guard.h"
#include "db/schema.h"
#include "util/alloc.h"

static int sqlite_introspect(struct db *d, struct schema **out, struct err *err)
{
	return schema_load(out, exec_path(d->impl), err);
}

static int sqlite_check(struct db *d, const char *sql, struct err *err)
{
	return guard_check(d->impl, sql, err);
}

static int sqlite_run(struct db *d, const char *sql, const struct exec_limits *lim, int (*cancel)(void *), void *cancel_payload,
                      struct table **out, struct err *err)
{
	return exec_run(d->impl, sql, lim, cancel, cancel_payload, out, err);
}

static void sqlite_close(struct db *d)
{
	exec_close(d->impl);
	d->impl = NULL;
}

static const struct db_ops sqlite_ops = {
        .kind = DB_SQLITE,
        .introspect = sqlite_introspect,
        .check = sqlite_check,
        .run = sqlite_run,
        .interrupt = NULL,
        .close = sqlite_close,
};

int db_sqlite_open(struct db *d, const char *path, struct err *err)
{
	struct exec *x = NULL;
	int rc = exec_open(&x, path, err);
	if (rc)
		return rc;
	d->ops = &sqlite_ops;
	d->impl = x;
	char version[64];
	snprintf(version, sizeof version, "SQLite %s", sqlite3_libversion());
	d->dialect = xstrdup(version);
	d->describe = xstrdup(path);
	if (!d->dialect || !d->describe)
		return err_set(err, CONVBI_ENOMEM, "out of memory opening database `%s`", path);
	return CONVBI_OK;
}
