/* db.c -- struct db: choosing the backend from the target, dispatching to
 * its vtable, and cancellation shared by every backend (see db.h).
 *
 * A run's cancel callback is wrapped: the backend polls db.c's wrapper,
 * which is true when the caller's callback is, or when db_cancel set the
 * stop flag (an atomic, so another thread may set it at any moment).  The
 * flag is cleared when the run starts and when it ends, so a cancel aimed
 * at one query never stops the next.
 */
#include "db/db.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "convbi/convbi.h"
#include "db/db_impl.h"
#include "util/alloc.h"

static int has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

/* "keyword =" at the start: libpq's key=value connection string. */
static int looks_like_conninfo(const char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	const char *k = s;
	while (isalnum((unsigned char)*s) || *s == '_')
		s++;
	if (s == k)
		return 0;
	while (isspace((unsigned char)*s))
		s++;
	return *s == '=';
}

enum db_kind db_target_kind(const char *target)
{
	if (!target)
		return DB_SQLITE;
	if (has_prefix(target, "postgres://") || has_prefix(target, "postgresql://"))
		return DB_POSTGRES;
	struct stat st;
	if (stat(target, &st) == 0)
		return DB_SQLITE;
	return looks_like_conninfo(target) ? DB_POSTGRES : DB_SQLITE;
}

int db_open(struct db **out, const char *target, const struct db_options *opt, struct err *err)
{
	static const struct db_options none = {NULL};
	*out = NULL;
	if (!target || !*target)
		return err_set(err, CONVBI_EINVAL, "no database given; pass a SQLite file or a postgresql:// URI");
	if (strlen(target) > DB_TARGET_MAX)
		return err_set(err, CONVBI_EINVAL, "the database target is longer than %d bytes; shorten it", DB_TARGET_MAX);
	if (!opt)
		opt = &none;
	struct db *d = xcalloc(1, sizeof *d);
	if (!d)
		return err_set(err, CONVBI_ENOMEM, "out of memory opening a database");
	atomic_init(&d->stop, 0);
	int rc = db_target_kind(target) == DB_POSTGRES ? db_pg_open(d, target, opt, err) : db_sqlite_open(d, target, err);
	if (rc) {
		db_close(d);
		return rc;
	}
	*out = d;
	return CONVBI_OK;
}

void db_close(struct db *d)
{
	if (!d)
		return;
	if (d->ops)
		d->ops->close(d);
	free(d->describe);
	free(d->dialect);
	free(d);
}

int db_introspect(struct db *d, struct schema **out, struct err *err)
{
	return d->ops->introspect(d, out, err);
}

int db_check(struct db *d, const char *sql, struct err *err)
{
	return d->ops->check(d, sql, err);
}

/* The backends' cancel callback: the caller's, or db_cancel's flag. */
static int run_cancel(void *payload)
{
	struct db *d = payload;
	if (atomic_load(&d->stop))
		return 1;
	return d->user_cancel && d->user_cancel(d->user_payload);
}

int db_run(struct db *d, const char *sql, const struct exec_limits *lim, int (*cancel)(void *), void *cancel_payload,
           struct table **out, struct err *err)
{
	atomic_store(&d->stop, 0);
	d->user_cancel = cancel;
	d->user_payload = cancel_payload;
	int rc = d->ops->run(d, sql, lim, run_cancel, d, out, err);
	d->user_cancel = NULL;
	d->user_payload = NULL;
	atomic_store(&d->stop, 0);
	return rc;
}

void db_cancel(struct db *d)
{
	if (!d)
		return;
	atomic_store(&d->stop, 1);
	if (d->ops && d->ops->interrupt)
		d->ops->interrupt(d);
}

enum db_kind db_kind(const struct db *d)
{
	return d->ops->kind;
}

const char *db_dialect(const struct db *d)
{
	return d->dialect;
}

const char *db_describe(const struct db *d)
{
	return d->describe;
}
