/* db_impl.h -- the inside of struct db and the backend vtable, private to
 * src/db.
 *
 * db.c owns struct db (target parsing, dispatch, the cancel flag); each
 * backend fills one struct db_ops and keeps its own state behind `impl`.
 * A backend's run must stop when db_stop_requested() turns true or the
 * caller's cancel callback says so; db_cancel also calls the backend's
 * interrupt (from any thread) so that a query blocked inside the engine
 * stops at once.
 */
#ifndef CONVBI_DB_DB_IMPL_H
#define CONVBI_DB_DB_IMPL_H

#include <stdatomic.h>

#include "db/db.h"

struct db_ops {
	enum db_kind kind;
	int (*introspect)(struct db *d, struct schema **out, struct err *err);
	int (*check)(struct db *d, const char *sql, struct err *err);
	/* cancel is db.c's wrapper: the caller's callback or db_cancel */
	int (*run)(struct db *d, const char *sql, const struct exec_limits *lim, int (*cancel)(void *), void *cancel_payload,
	           struct table **out, struct err *err);
	void (*interrupt)(struct db *d); /* thread-safe; may be NULL */
	void (*close)(struct db *d);     /* frees impl, not d */
};

struct db {
	const struct db_ops *ops;
	void *impl;                 /* owned by the backend */
	char *describe;             /* owned: path or URI without password */
	char *dialect;              /* owned: "SQLite 3.40.1", "PostgreSQL 15.18" */
	atomic_int stop;            /* set by db_cancel, cleared when a run ends */
	int (*user_cancel)(void *); /* the running db_run's callback */
	void *user_payload;
};

/* The backends' openers: fill d->ops, d->impl, d->describe, d->dialect. */
int db_sqlite_open(struct db *d, const char *path, struct err *err);
int db_pg_open(struct db *d, const char *conninfo, const struct db_options *opt, struct err *err);

#endif
