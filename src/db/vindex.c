/* vindex.c -- the value index (see vindex.h): the cache file, its build and
 * question-to-value matching.
 *
 * The cache file is named after the database's absolute path
 * (`<base>-<fnv64 hex>.vindex`) and holds
 *   meta(k PRIMARY KEY, v)       format, path, size, mtime_ns, cookie,
 *                                changes, values, columns, build_ms, partial
 *   vals(id, value, norm, tbl, col) one row per distinct value per column,
 *                                norm = lower(value), indexed
 *   v                            FTS5 over vals.value, tokenize 'trigram'
 *                                (external content: no second copy)
 * A build writes `<cache>.tmp.<pid>` with journalling off and renames it
 * over the cache when complete.  Readers open the cache read-only with a
 * serialized (FULLMUTEX) connection, so one vindex serves many threads.
 * Since a cache file is never written in place (a rebuild renames a new
 * file over it; an open reader keeps the old one), readers open it
 * immutable=1: no file lock, no hot-journal check and no change check per
 * query -- they were most of a question's matching cost.  The three
 * matching statements are prepared once per concurrent matcher and kept
 * in a small free list (`sets`), not prepared again for every question,
 * and the rows each lookup gave are remembered (`lookups`, at most
 * LOOKUP_CACHE_BYTES; all forgotten when full): the spans of a
 * conversation's questions, and the common words of a database's
 * questions, come back again and again.
 *
 * The cache holds the user's data and goes into the SQL writer's prompt,
 * so it is trusted only when it is the user's own: the folder must belong
 * to this user and be writable by nobody else (else no index, with a
 * message naming the fix), and the file must be a regular file of the
 * user's that nobody else can write.  Anything else at the file's path (a
 * FIFO, a device, a symbolic link, another user's file) is never opened --
 * a FIFO would block the open forever -- and is replaced by a new build,
 * with one warning.  The folder is created 0700, the files 0600.
 */
#include "db/vindex.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "convbi/convbi.h"
#include "db/ro.h"
#include "db/sqltext.h"
#include "db/text.h"
#include "db/vindex_pg.h"
#include "db/vindex_sqlite.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/words.h"

/* One matcher's prepared statements (on vindex.db), reused question after
 * question; a statement is used by one thread at a time. */
struct stmts {
	sqlite3_stmt *exact, *contains, *fuzzy; /* owned */
	struct stmts *next;                     /* the free list */
};

#define LOOKUP_CACHE_BYTES (512u << 10) /* remembered lookups per index, all told */
#define LOOKUP_BUCKETS 1024

/* One remembered lookup: the rows a matching statement gave for the text
 * bound to it. */
struct lookup {
	struct lookup *next; /* in its bucket */
	int kind;            /* LOOK_* */
	size_t keylen, rowslen;
	char bytes[]; /* the key, then the rows (see fetch) */
};

struct vindex {
	sqlite3 *db; /* owned, read-only, immutable, serialized */
	struct vindex_info info;
	pthread_mutex_t lock;                   /* sets, lookups, lookup_bytes */
	struct stmts *sets;                     /* owned: prepared sets not in use */
	struct lookup *lookups[LOOKUP_BUCKETS]; /* owned */
	size_t lookup_bytes;
};

/* The database's identity: the cache is valid only for the same one.
 * SQLite: the absolute path, the file's size and mtime, the schema
 * cookie and changes_of().  PostgreSQL: the target without its password and the schema
 * list (path), the statistics' change counter (size), the build's wall
 * time (mtime_ns), a fingerprint of the introspected schema (cookie) and
 * the live rows (rows). */
struct vkey {
	char path[PATH_MAX];
	int64_t size, mtime_ns, cookie, rows;
	int pg;          /* 1 = a PostgreSQL database */
	int64_t changes; /* SQLite: what size and mtime miss (changes_of) */
};

/* ---- where the cache lives ------------------------------------------------------ */

static int cache_dir(struct buf *out, struct err *err)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	if (xdg && xdg[0] == '/')
		return buf_printf(out, "%s/convbi", xdg);
	if (home && *home)
		return buf_printf(out, "%s/.cache/convbi", home);
	return err_set(err, CONVBI_EIO, "no cache directory for the value index; set XDG_CACHE_HOME or HOME");
}

static uint64_t fnv64(uint64_t h, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	return h;
}

#define FNV_SEED 1469598103934665603ull

/* `<cache dir>/<prefix><readable part of label>-<fnv64 of key>.vindex` */
static int cache_file(struct buf *out, const char *prefix, const char *label, const char *key, struct err *err)
{
	uint64_t h = fnv64(FNV_SEED, key);
	const char *base = strrchr(label, '/') ? strrchr(label, '/') + 1 : label;
	int rc = cache_dir(out, err);
	if (!rc)
		rc = buf_printf(out, "/%s", prefix);
	for (int i = 0; base[i] && i < 48 && !rc; i++) /* a readable name, file-safe */
		rc = buf_putc(out, (base[i] >= 'a' && base[i] <= 'z') || (base[i] >= 'A' && base[i] <= 'Z') ||
		                                   (base[i] >= '0' && base[i] <= '9') || base[i] == '.' || base[i] == '_'
		                           ? base[i]
		                           : '_');
	return rc ? rc : buf_printf(out, "-%016llx.vindex", (unsigned long long)h);
}

int vindex_cache_path(struct buf *out, const char *db_path, struct err *err)
{
	char abs[PATH_MAX];
	if (!realpath(db_path, abs))
		return err_set(err, CONVBI_EDB, "database `%s` cannot be found (%s); check the path", db_path, strerror(errno));
	return cache_file(out, "", abs, abs, err);
}

/* The key of a PostgreSQL database: its description (never the password)
 * and the schema list; the introspected schema's fingerprint; the
 * statistics' counters. */
static int read_pg_key(struct vkey *k, struct db *d, const struct db_options *opt, const struct schema *s, struct err *err)
{
	const char *schemas = opt && opt->schemas ? opt->schemas : "";
	if (snprintf(k->path, sizeof k->path, "%s%s%s", db_describe(d), *schemas ? " schemas=" : "", schemas) >=
	    (int)sizeof k->path)
		return err_set(err, CONVBI_EINVAL, "the database target is too long for the value index; shorten it");
	uint64_t h = FNV_SEED;
	for (size_t i = 0; i < s->ntables; i++) {
		const struct schema_table *t = &s->tables[i];
		h = fnv64(fnv64(fnv64(h, t->schema ? t->schema : ""), "."), t->name);
		h = fnv64(h, t->is_view ? "\nV" : "\nT");
		for (int c = 0; c < t->ncols; c++)
			h = fnv64(fnv64(fnv64(fnv64(h, "\t"), t->cols[c].name), " "), t->cols[c].type);
	}
	k->cookie = (int64_t)(h >> 2); /* never negative: -1 is "missing" in meta */
	k->mtime_ns = clock_wall_ms() * 1000000;
	k->pg = 1;
	return vindex_pg_changes(d, s, &k->size, &k->rows, err);
}
/* A fingerprint of what changes in a SQLite database when its size and
 * mtime need not: the header's file change counter (bytes 24..27, bumped
 * by every committed transaction in rollback mode) and, in WAL mode, the
 * -wal file's presence, size and mtime and its header (checkpoint
 * sequence and salts, new after every reset) -- a writer that stays
 * connected leaves the database file alone until a checkpoint. */
static int64_t changes_of(const char *path)
{
	char wal[PATH_MAX + 8];
	unsigned char hdr[32];
	uint64_t h = FNV_SEED;
	struct stat st;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = pread(fd, hdr, 4, 24);
		for (ssize_t i = 0; i < n; i++)
			h = (h ^ hdr[i]) * 1099511628211ull;
		close(fd);
	}
	snprintf(wal, sizeof wal, "%s-wal", path);
	if (lstat(wal, &st) == 0 && S_ISREG(st.st_mode)) {
		int64_t parts[] = {1, (int64_t)st.st_size, (int64_t)st.st_mtim.tv_sec, st.st_mtim.tv_nsec};
		for (size_t i = 0; i < sizeof parts; i++)
			h = (h ^ ((const unsigned char *)parts)[i]) * 1099511628211ull;
		fd = open(wal, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t n = pread(fd, hdr, sizeof hdr, 0);
			for (ssize_t i = 0; i < n; i++)
				h = (h ^ hdr[i]) * 1099511628211ull;
			close(fd);
		}
	}
	return (int64_t)(h >> 2); /* never negative: -1 is "missing" in meta */
}

static int read_key(struct vkey *k, const char *db_path, struct err *err)
{
	struct stat st;
	sqlite3 *db = NULL;
	if (!realpath(db_path, k->path) || stat(k->path, &st) != 0)
		return err_set(err, CONVBI_EDB, "database `%s` cannot be found (%s); check the path", db_path, strerror(errno));
	k->size = (int64_t)st.st_size;
	k->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	k->changes = changes_of(k->path);
	int rc = ro_open(&db, db_path, err);
	if (rc)
		return rc;
	sqlite3_stmt *q = NULL;
	k->cookie = -1;
	if (sqlite3_prepare_v2(db, "PRAGMA schema_version", -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
		k->cookie = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	sqlite3_close_v2(db);
	return k->cookie < 0 ? err_set(err, CONVBI_EDB, "database `%s` has no readable schema; check the file", db_path)
	                     : CONVBI_OK;
}

/* ---- reading an existing cache ---------------------------------------------------- */

static int64_t meta_int(sqlite3 *db, const char *k)
{
	sqlite3_stmt *q = NULL;
	int64_t v = -1;
	if (sqlite3_prepare_v2(db, "SELECT v FROM meta WHERE k = ?1", -1, &q, NULL) == SQLITE_OK &&
	    sqlite3_bind_text(q, 1, k, -1, SQLITE_STATIC) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
		v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return v;
}

/* 1 when the cache at path was built for key k by this format; on
 * PostgreSQL also not older than VINDEX_PG_MAX_AGE_S and with at most a
 * tenth of its rows changed since (see vindex.h). */
static int cache_fresh(sqlite3 *db, const struct vkey *k)
{
	if (k->pg) {
		int64_t built = meta_int(db, "mtime_ns"), then = meta_int(db, "size"), rows = meta_int(db, "rows");
		if (built < 0 || k->mtime_ns - built > (int64_t)VINDEX_PG_MAX_AGE_S * 1000000000 || k->mtime_ns < built)
			return 0;
		if (then < 0 || k->size < then || k->size - then > (rows > 0 ? rows : 0) / 10)
			return 0;
	}
	sqlite3_stmt *q = NULL;
	int same_path = 0;
	if (sqlite3_prepare_v2(db, "SELECT v FROM meta WHERE k = 'path'", -1, &q, NULL) == SQLITE_OK &&
	    sqlite3_step(q) == SQLITE_ROW && sqlite3_column_text(q, 0))
		same_path = !strcmp((const char *)sqlite3_column_text(q, 0), k->path);
	sqlite3_finalize(q);
	if (!same_path || meta_int(db, "format") != VINDEX_FORMAT || meta_int(db, "cookie") != k->cookie)
		return 0;
	return k->pg || (meta_int(db, "size") == k->size && meta_int(db, "mtime_ns") == k->mtime_ns &&
	                 meta_int(db, "changes") == k->changes);
}

/* ---- whose cache it is ------------------------------------------------------------- */

/* CONVBI_OK when dir is missing (a build creates it) or is a folder of
 * this user's that no other user can write; else EIO naming the fix. */
static int dir_trusted(const char *dir, struct err *err)
{
	struct stat st;
	if (stat(dir, &st) != 0)
		return errno == ENOENT || errno == ENOTDIR
		               ? CONVBI_OK
		               : err_set(err, CONVBI_EIO,
		                         "cannot read the cache folder `%s` (%s); set XDG_CACHE_HOME to a folder of your own",
		                         dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return err_set(err, CONVBI_EIO,
		               "the cache folder `%s` is not a folder; set XDG_CACHE_HOME to a folder of your own", dir);
	if (st.st_uid != geteuid())
		return err_set(err, CONVBI_EIO,
		               "the cache folder `%s` belongs to another user (uid %ld), so the value index in it is not trusted; "
		               "set XDG_CACHE_HOME to a folder of your own",
		               dir, (long)st.st_uid);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return err_set(err, CONVBI_EIO,
		               "the cache folder `%s` can be written by other users (mode %03o), so the value index in it is not "
		               "trusted; run `chmod 700 %s` or set XDG_CACHE_HOME to a private folder",
		               dir, (unsigned)(st.st_mode & 0777), dir);
	return CONVBI_OK;
}

enum { CACHE_MISSING, CACHE_OURS, CACHE_FOREIGN };

/* What is at the cache path: nothing, a regular file of this user's that
 * no other can write, or something else (why says what).  Only a regular
 * file is opened, without following a link and without blocking, and
 * checked again on the open descriptor. */
static int cache_state(const char *path, char *why, size_t whylen)
{
	struct stat st;
	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			return CACHE_MISSING;
		snprintf(why, whylen, "unreadable (%s)", strerror(errno));
		return CACHE_FOREIGN;
	}
	if (S_ISREG(st.st_mode)) {
		int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) != 0) {
			snprintf(why, whylen, "unreadable (%s)", strerror(errno));
			if (fd >= 0)
				close(fd);
			return CACHE_FOREIGN;
		}
		close(fd);
	}
	const char *what = S_ISLNK(st.st_mode)                          ? "a symbolic link"
	                   : S_ISFIFO(st.st_mode)                       ? "a FIFO"
	                   : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
	                   : S_ISSOCK(st.st_mode)                       ? "a socket"
	                   : S_ISDIR(st.st_mode)                        ? "a folder"
	                   : !S_ISREG(st.st_mode)                       ? "not a regular file"
	                                                                : NULL;
	if (what)
		snprintf(why, whylen, "%s", what);
	else if (st.st_uid != geteuid())
		snprintf(why, whylen, "owned by another user (uid %ld)", (long)st.st_uid);
	else if (st.st_mode & (S_IWGRP | S_IWOTH))
		snprintf(why, whylen, "writable by other users (mode %03o)", (unsigned)(st.st_mode & 0777));
	else
		return CACHE_OURS;
	return CACHE_FOREIGN;
}

/* Opens the cache at path read-only and immutable (see the top). */
static int open_cache(sqlite3 **out, const char *path)
{
	*out = NULL;
	if (access(path, R_OK) != 0)
		return SQLITE_CANTOPEN;
	struct buf uri = BUF_INIT;
	if (ro_uri(&uri, path) || buf_puts(&uri, "&immutable=1")) {
		buf_release(&uri);
		return SQLITE_NOMEM;
	}
	int src = sqlite3_open_v2(uri.data, out, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_FULLMUTEX, NULL);
	buf_release(&uri);
	if (src == SQLITE_OK)
		sqlite3_busy_timeout(*out, RO_BUSY_TIMEOUT_MS);
	return src;
}

/* ---- building ------------------------------------------------------------------ */

struct builder {
	sqlite3 *src, *dst;
	struct db *pg; /* borrowed: the PostgreSQL source, or NULL */
	const struct schema_table *t;
	const struct schema_column *c;
	sqlite3_stmt *ins_val, *ins_fts;
	int64_t end_ms, next_id;
	struct vindex_info *info;
};

/* 1 when the column holds free text: most of its samples were cut. */
static int free_text(const struct schema_column *c)
{
	int cut = 0;
	for (int i = 0; i < c->nsamples; i++)
		cut += strstr(c->samples[i], "\xE2\x80\xA6") != NULL;
	return c->nsamples && cut * 2 >= c->nsamples;
}

static int indexable(const struct schema_table *t, const struct schema_column *c)
{
	return !t->is_view && !schema_column_is_key(t, c) && !free_text(c) && schema_type_is_text(c->type);
}

/* Adds one value of column b->c of table b->t to the index. */
static int add_value(const char *v, size_t len, void *payload)
{
	struct builder *b = payload;
	if (!text_is_utf8(v, len) || len > INT_MAX)
		return CONVBI_OK;
	int64_t id = ++b->next_id;
	sqlite3_reset(b->ins_val);
	sqlite3_bind_int64(b->ins_val, 1, id);
	sqlite3_bind_text(b->ins_val, 2, v, (int)len, SQLITE_TRANSIENT);
	sqlite3_bind_text(b->ins_val, 3, b->t->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(b->ins_val, 4, b->c->name, -1, SQLITE_STATIC);
	sqlite3_reset(b->ins_fts);
	sqlite3_bind_int64(b->ins_fts, 1, id);
	sqlite3_bind_text(b->ins_fts, 2, v, (int)len, SQLITE_TRANSIENT);
	if (sqlite3_step(b->ins_val) != SQLITE_DONE || sqlite3_step(b->ins_fts) != SQLITE_DONE)
		return CONVBI_EIO;
	b->info->values++;
	return CONVBI_OK;
}

/* The PostgreSQL counterpart of index_column (see vindex_pg.h). */
static int index_pg_column(struct builder *b, const struct schema_table *t, const struct schema_column *c, struct err *err)
{
	int64_t before = b->info->values, now = clock_mono_ms();
	int64_t left = b->end_ms - now;
	if (left <= 0)
		return CONVBI_OK;
	b->t = t;
	b->c = c;
	int sampled = 0;
	int rc = vindex_pg_column(b->pg, t, c, (int)(left < VINDEX_COLUMN_MS ? left : VINDEX_COLUMN_MS), add_value, b,
	                          &b->info->partial, &sampled, err);
	b->info->sampled += !rc && sampled;
	if (!rc && b->info->values > before)
		b->info->columns++;
	return rc;
}

/* Copies one column's distinct short text values into the index (see
 * vindex_sqlite.h). */
static int index_column(struct builder *b, const struct schema_table *t, const struct schema_column *c)
{
	int64_t before = b->info->values, now = clock_mono_ms();
	b->t = t;
	b->c = c;
	enum vindex_way way;
	int rc = vindex_sqlite_column(b->src, t, c, now + VINDEX_COLUMN_MS < b->end_ms ? now + VINDEX_COLUMN_MS : b->end_ms,
	                              add_value, b, &b->info->partial, &way);
	b->info->seeked += !rc && way == VINDEX_BY_INDEX;
	b->info->sampled += !rc && way == VINDEX_BY_SAMPLE;
	if (!rc && b->info->values > before)
		b->info->columns++;
	return rc;
}

static int write_meta(sqlite3 *db, const struct vkey *k, const struct vindex_info *info)
{
	sqlite3_stmt *q = NULL;
	if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta(k, v) VALUES (?1, ?2)", -1, &q, NULL) != SQLITE_OK)
		return CONVBI_EIO;
	const char *names[] = {"format", "size",    "mtime_ns", "cookie",  "rows",
	                       "values", "columns", "build_ms", "partial", "changes"};
	int64_t vals[] = {VINDEX_FORMAT, k->size,       k->mtime_ns,    k->cookie,     k->rows,
	                  info->values,  info->columns, info->build_ms, info->partial, k->changes};
	int ok = 1;
	for (size_t i = 0; i < sizeof names / sizeof names[0] && ok; i++) {
		sqlite3_reset(q);
		sqlite3_bind_text(q, 1, names[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 2, vals[i]);
		ok = sqlite3_step(q) == SQLITE_DONE;
	}
	sqlite3_reset(q);
	sqlite3_bind_text(q, 1, "path", -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, k->path, -1, SQLITE_STATIC);
	ok = ok && sqlite3_step(q) == SQLITE_DONE;
	sqlite3_finalize(q);
	return ok ? CONVBI_OK : CONVBI_EIO;
}

static const char create_sql[] =
        "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
        "CREATE TABLE meta(k TEXT PRIMARY KEY, v);"
        "CREATE TABLE vals(id INTEGER PRIMARY KEY, value TEXT NOT NULL, tbl TEXT NOT NULL, col TEXT NOT NULL);"
        "CREATE VIRTUAL TABLE v USING fts5(value, content='vals', content_rowid='id', tokenize='trigram');"
        "BEGIN;";

/* Removes `<path>.tmp.<pid>` files left by builds whose process is gone
 * (killed, or interrupted with Ctrl-C): one build's leftovers must not
 * pile up in the user's cache. */
static void sweep_stale(const char *path)
{
	struct buf pat = BUF_INIT;
	glob_t g;
	if (buf_printf(&pat, "%s.tmp.*", path) || glob(pat.data, GLOB_NOSORT, NULL, &g) != 0) {
		buf_release(&pat);
		return;
	}
	for (size_t i = 0; i < g.gl_pathc; i++) {
		const char *pid = strrchr(g.gl_pathv[i], '.') + 1;
		char *end;
		long n = strtol(pid, &end, 10);
		if (*end || n <= 0 || n == (long)getpid())
			continue;
		if (kill((pid_t)n, 0) != 0 && errno == ESRCH)
			unlink(g.gl_pathv[i]);
	}
	globfree(&g);
	buf_release(&pat);
}

/* Builds the cache for key k at path (through a temporary file). */
static int build(const char *path, const char *db_path, struct db *pg, const struct vkey *k, const struct schema *s,
                 vindex_progress_fn progress, void *payload, struct vindex_info *info, struct err *err)
{
	struct buf tmp = BUF_INIT, dir = BUF_INIT;
	struct builder b = {NULL, NULL, pg, NULL, NULL, NULL, NULL, 0, 0, info};
	int64_t start = clock_mono_ms();
	int rc = cache_dir(&dir, err);
	if (rc)
		goto done;
	int first_errno = 0; /* the first folder that could not be made says why */
	char *failed = NULL;
	for (char *p = dir.data + 1;; p++) { /* mkdir -p, private: the values are the user's data */
		if (*p && *p != '/')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(dir.data, 0700) != 0 && errno != EEXIST && !first_errno) {
			first_errno = errno;
			failed = xstrdup(dir.data);
		}
		*p = c;
		if (!c)
			break;
	}
	struct stat st;
	int serr = stat(dir.data, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
	if (serr) {
		int e = first_errno ? first_errno : serr;
		if (failed && strcmp(failed, dir.data))
			rc = err_set(err, CONVBI_EIO,
			             "cannot create the cache directory `%s` (`%s`: %s); set XDG_CACHE_HOME to a writable one",
			             dir.data, failed, strerror(e));
		else
			rc = err_set(err, CONVBI_EIO,
			             "cannot create the cache directory `%s` (%s); set XDG_CACHE_HOME to a writable one",
			             dir.data, strerror(e));
		free(failed);
		goto done;
	}
	free(failed);
	if ((rc = dir_trusted(dir.data, err)))
		goto done;
	sweep_stale(path);
	if ((rc = buf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid())))
		goto done;
	unlink(tmp.data);
	int fd = open(tmp.data, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600); /* private from the start */
	if (fd < 0) {
		rc = err_set(err, CONVBI_EIO,
		             "cannot write the value index `%s` (%s); set XDG_CACHE_HOME to a writable directory", tmp.data,
		             strerror(errno));
		goto done;
	}
	close(fd);
	if (!pg && (rc = ro_open(&b.src, db_path, err)))
		goto done;
	char pragma[64];
	snprintf(pragma, sizeof pragma, "PRAGMA cache_size=-%d", VINDEX_CACHE_KIB);
	if (b.src) {
		sqlite3_exec(b.src, pragma, NULL, NULL, NULL);
		sqlite3_exec(b.src, "PRAGMA temp_store=FILE", NULL, NULL, NULL);
	}
	if (sqlite3_open_v2(tmp.data, &b.dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK ||
	    sqlite3_exec(b.dst, create_sql, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(b.dst, "INSERT INTO vals(id, value, tbl, col) VALUES (?1, ?2, ?3, ?4)", -1, &b.ins_val, NULL) !=
	            SQLITE_OK ||
	    sqlite3_prepare_v2(b.dst, "INSERT INTO v(rowid, value) VALUES (?1, ?2)", -1, &b.ins_fts, NULL) != SQLITE_OK) {
		rc = err_set(err, CONVBI_EIO,
		             "cannot write the value index `%s` (%s); set XDG_CACHE_HOME to a writable directory", tmp.data,
		             b.dst ? sqlite3_errmsg(b.dst) : "out of memory");
		goto done;
	}
	size_t ncols = 0, done_cols = 0;
	for (size_t i = 0; i < s->ntables; i++)
		for (int c = 0; c < s->tables[i].ncols; c++)
			ncols += indexable(&s->tables[i], &s->tables[i].cols[c]);
	b.end_ms = start + VINDEX_BUILD_MS;
	for (size_t i = 0; i < s->ntables && !rc; i++) {
		const struct schema_table *t = &s->tables[i];
		for (int c = 0; c < t->ncols && !rc; c++) {
			if (!indexable(t, &t->cols[c]))
				continue;
			if (clock_mono_ms() >= b.end_ms) {
				info->partial = 1;
				break;
			}
			rc = pg ? index_pg_column(&b, t, &t->cols[c], err) : index_column(&b, t, &t->cols[c]);
			done_cols++;
			if (progress) {
				struct vindex_progress p = {t->name, t->cols[c].name, done_cols,
				                            ncols,   info->values,    clock_mono_ms() - start};
				progress(&p, payload);
			}
		}
	}
	if (!rc) {
		sqlite3_exec(b.dst, "CREATE INDEX vals_norm ON vals(lower(value))", NULL, NULL, NULL);
		info->build_ms = clock_mono_ms() - start;
		rc = write_meta(b.dst, k, info);
	}
	if (!rc && sqlite3_exec(b.dst, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = CONVBI_EIO;
	if (rc == CONVBI_EIO)
		err_set(err, rc, "cannot write the value index `%s` (%s); free some space or set XDG_CACHE_HOME elsewhere",
		        tmp.data, sqlite3_errmsg(b.dst));
	sqlite3_finalize(b.ins_val);
	sqlite3_finalize(b.ins_fts);
	b.ins_val = b.ins_fts = NULL;
	if (sqlite3_close(b.dst) != SQLITE_OK && !rc)
		rc = err_set(err, CONVBI_EIO, "cannot close the value index `%s`; check the cache directory", tmp.data);
	b.dst = NULL;
	if (!rc && rename(tmp.data, path) != 0)
		rc = err_set(err, CONVBI_EIO, "cannot move the value index into `%s` (%s); check the cache directory", path,
		             strerror(errno));
	if (!rc)
		info->built = 1;
done:
	sqlite3_finalize(b.ins_val);
	sqlite3_finalize(b.ins_fts);
	sqlite3_close(b.dst);
	sqlite3_close_v2(b.src);
	if (tmp.data)
		unlink(tmp.data);
	buf_release(&tmp);
	buf_release(&dir);
	return rc;
}

/* ---- open / close ------------------------------------------------------------------ */

int vindex_open(struct vindex **out, const char *db_path, const struct schema *s, int want_build, vindex_progress_fn progress,
                void *payload, struct err *err)
{
	return vindex_open_target(out, db_path, NULL, s, want_build, progress, payload, err);
}

int vindex_open_target(struct vindex **out, const char *target, const struct db_options *opt, const struct schema *s,
                       int want_build, vindex_progress_fn progress, void *payload, struct err *err)
{
	struct buf path = BUF_INIT;
	struct vkey k = {{0}, 0, 0, 0, 0, 0, 0};
	struct vindex *v = NULL;
	struct db *pg = NULL;
	const char *db_path = target, *name = target; /* name: for messages, never a password */
	int rc;

	*out = NULL;
	if (db_target_kind(target) == DB_POSTGRES) {
		if ((rc = db_open(&pg, target, opt, err)) || (rc = read_pg_key(&k, pg, opt, s, err)) ||
		    (rc = cache_file(&path, "pg-", db_describe(pg), k.path, err)))
			goto done;
		name = db_describe(pg);
	} else if ((rc = vindex_cache_path(&path, db_path, err)) || (rc = read_key(&k, db_path, err))) {
		goto done;
	}
	v = xcalloc(1, sizeof *v);
	if (!v) {
		rc = CONVBI_ENOMEM;
		goto done;
	}
	pthread_mutex_init(&v->lock, NULL);
	snprintf(v->info.path, sizeof v->info.path, "%s", path.data);
	char *slash = strrchr(path.data, '/'), why[128];
	*slash = '\0';
	rc = dir_trusted(path.data, err);
	*slash = '/';
	if (rc)
		goto done;
	int state = cache_state(path.data, why, sizeof why);
	if (state == CACHE_FOREIGN)
		log_warn("the value index `%s` is %s, so convbi does not read it%s", path.data, why,
		         want_build ? " and builds a new one in its place" : "");
	if (want_build < 2 && state == CACHE_OURS && open_cache(&v->db, path.data) == SQLITE_OK && cache_fresh(v->db, &k)) {
		v->info.values = meta_int(v->db, "values");
		v->info.columns = meta_int(v->db, "columns");
		v->info.partial = meta_int(v->db, "partial") > 0;
		goto done;
	}
	sqlite3_close(v->db);
	v->db = NULL;
	if (!want_build) {
		rc = err_set(err, CONVBI_EIO, "the value index of `%s` is missing or stale; build it with `convbi index --db %s`",
		             name, pg ? "URI" : name);
		goto done;
	}
	if ((rc = build(path.data, db_path, pg, &k, s, progress, payload, &v->info, err)))
		goto done;
	if (open_cache(&v->db, path.data) != SQLITE_OK)
		rc = err_set(err, CONVBI_EIO, "cannot open the value index `%s`; check the cache directory", path.data);
done:
	buf_release(&path);
	db_close(pg);
	if (rc) {
		vindex_close(v);
		return rc;
	}
	*out = v;
	return CONVBI_OK;
}

static void stmts_free(struct stmts *st)
{
	if (!st)
		return;
	sqlite3_finalize(st->exact);
	sqlite3_finalize(st->contains);
	sqlite3_finalize(st->fuzzy);
	free(st);
}

/* Forgets every remembered lookup (lock held). */
static void lookups_forget(struct vindex *v)
{
	for (int i = 0; i < LOOKUP_BUCKETS; i++)
		while (v->lookups[i]) {
			struct lookup *l = v->lookups[i];
			v->lookups[i] = l->next;
			free(l);
		}
	v->lookup_bytes = 0;
}

void vindex_close(struct vindex *v)
{
	if (!v)
		return;
	lookups_forget(v);
	while (v->sets) {
		struct stmts *st = v->sets;
		v->sets = st->next;
		stmts_free(st);
	}
	pthread_mutex_destroy(&v->lock);
	sqlite3_close(v->db);
	free(v);
}

const struct vindex_info *vindex_info(const struct vindex *v)
{
	return &v->info;
}

/* ---- matching a question ---------------------------------------------------------- */

#define SPANS_MAX 256    /* question spans looked up */
#define FOUND_MAX 512    /* candidate values considered per question */
#define CONTAIN_LIMIT 32 /* containment hits read per span */
#define FUZZY_LIMIT 64   /* fuzzy candidates read per word */
#define FUZZY_WORDS 4    /* words looked up fuzzily per question */

struct span {
	size_t off, len; /* in the question */
	int words;
	int found;  /* 1 = an exact or containment match */
	int absent; /* no stored value contains the span's text at all */
};

struct found {
	char *table, *column, *value; /* owned */
	double score;
	int words;
};

struct matcher {
	struct vindex *v;
	const char *q;
	struct found f[FOUND_MAX];
	int n;
	struct buf rows; /* the current lookup's rows (fetch) */
};

static int word_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

/* Splits q into spans of 1..VINDEX_SPAN_WORDS words (a word: letters,
 * digits and non-ASCII, joined by one of -'.&/ between word bytes) and
 * the text between matching quotes. */
static int make_spans(const char *q, struct span *sp)
{
	size_t woff[64], wend[64];
	int nw = 0, n = 0;
	const unsigned char *u = (const unsigned char *)q;
	for (size_t i = 0; u[i] && nw < 64;) {
		if (!word_byte(u[i])) {
			i++;
			continue;
		}
		size_t j = i;
		while (word_byte(u[j]) || (strchr("-'.&/", u[j]) && u[j] && j > i && word_byte(u[j + 1])))
			j++;
		woff[nw] = i;
		wend[nw++] = j;
		i = j;
	}
	for (int a = 0; a < nw; a++)
		for (int w = 1; w <= VINDEX_SPAN_WORDS && a + w <= nw && n < SPANS_MAX; w++) {
			size_t off = woff[a], len = wend[a + w - 1] - off;
			if (w == 1) {
				char low[32];
				if (len < 2 && !(u[off] >= '0' && u[off] <= '9'))
					continue; /* a lone letter names nothing */
				if (len < sizeof low) {
					for (size_t k = 0; k < len; k++)
						low[k] = (char)(u[off + k] >= 'A' && u[off + k] <= 'Z' ? u[off + k] + 32
						                                                       : u[off + k]);
					low[len] = '\0';
					if (words_is_stop(low))
						continue;
				}
			}
			sp[n++] = (struct span){off, len, w, 0, 0};
		}
	for (const char *p = q; *p && n < SPANS_MAX; p++) {
		if (*p != '"' && *p != '\'')
			continue;
		if ((*p == '\'') && p > q && word_byte((unsigned char)p[-1]))
			continue; /* an apostrophe, not a quote */
		const char *end = strchr(p + 1, *p);
		if (end && end > p + 1 && end - p <= VINDEX_VALUE_MAX_CHARS * 4) {
			sp[n++] = (struct span){(size_t)(p + 1 - q), (size_t)(end - p - 1), VINDEX_SPAN_WORDS + 1, 0, 0};
			p = end;
		}
	}
	return n;
}

/* ---- lookups, remembered ---------------------------------------------------------- */

enum { LOOK_EXACT, LOOK_CONTAINS, LOOK_FUZZY };

/* One row of a lookup: a stored value and where it is. */
struct row {
	int complete; /* value, table and column all present */
	const char *value, *table, *column;
};

/* The rows statement st (of kind LOOK_*) gives for the text key, into out
 * (the caller's): per row a flag byte (1 = complete) and the
 * NUL-terminated value, table and column.  From the remembered lookups
 * when there, else run and remembered (a failed run is not). */
static int fetch(struct vindex *v, sqlite3_stmt *st, int kind, const char *key, size_t keylen, struct buf *out)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)kind; /* FNV-1a */
	for (size_t i = 0; i < keylen; i++)
		h = (h ^ (unsigned char)key[i]) * 1099511628211ull;
	struct lookup **bucket = &v->lookups[h % LOOKUP_BUCKETS];
	buf_reset(out);
	pthread_mutex_lock(&v->lock);
	for (struct lookup *l = *bucket; l; l = l->next)
		if (l->kind == kind && l->keylen == keylen && !memcmp(l->bytes, key, keylen)) {
			int rc = buf_add(out, l->bytes + keylen, l->rowslen);
			pthread_mutex_unlock(&v->lock);
			return rc;
		}
	pthread_mutex_unlock(&v->lock);
	int rc = CONVBI_OK, src;
	sqlite3_reset(st);
	sqlite3_bind_text(st, 1, key, (int)keylen, SQLITE_STATIC);
	while (!rc && (src = sqlite3_step(st)) == SQLITE_ROW) {
		const char *c[3];
		for (int k = 0; k < 3; k++)
			c[k] = (const char *)sqlite3_column_text(st, k);
		rc = buf_putc(out, (char)(c[0] && c[1] && c[2]));
		for (int k = 0; k < 3 && !rc; k++)
			rc = buf_add(out, c[k] ? c[k] : "", (c[k] ? strlen(c[k]) : 0) + 1);
	}
	sqlite3_reset(st);
	if (rc || src != SQLITE_DONE)
		return rc;
	size_t need = sizeof(struct lookup) + keylen + out->len;
	struct lookup *l = need <= LOOKUP_CACHE_BYTES ? xmalloc(need) : NULL;
	if (!l)
		return CONVBI_OK; /* not remembered, still answered */
	*l = (struct lookup){NULL, kind, keylen, out->len};
	memcpy(l->bytes, key, keylen);
	if (out->len)
		memcpy(l->bytes + keylen, out->data, out->len);
	pthread_mutex_lock(&v->lock);
	if (v->lookup_bytes + need > LOOKUP_CACHE_BYTES)
		lookups_forget(v);
	l->next = *bucket;
	*bucket = l;
	v->lookup_bytes += need;
	pthread_mutex_unlock(&v->lock);
	return CONVBI_OK;
}

/* The row at *pos of fetch's output; 0 past the last. */
static int next_row(const struct buf *b, size_t *pos, struct row *r)
{
	if (*pos >= b->len)
		return 0;
	const char *p = b->data + *pos;
	r->complete = *p++;
	r->value = p;
	p += strlen(p) + 1;
	r->table = p;
	p += strlen(p) + 1;
	r->column = p;
	p += strlen(p) + 1;
	*pos = (size_t)(p - b->data);
	return 1;
}

static int add_found(struct matcher *m, const struct row *r, double score, int words)
{
	const char *t = r->table, *c = r->column, *v = r->value;
	if (!r->complete)
		return CONVBI_OK;
	for (int i = 0; i < m->n; i++)
		if (!strcmp(m->f[i].value, v) && !strcmp(m->f[i].column, c) && !strcmp(m->f[i].table, t)) {
			if (score > m->f[i].score || (score == m->f[i].score && words > m->f[i].words)) {
				m->f[i].score = score;
				m->f[i].words = words;
			}
			return CONVBI_OK;
		}
	if (m->n == FOUND_MAX)
		return CONVBI_OK;
	struct found *f = &m->f[m->n];
	f->table = xstrdup(t);
	f->column = xstrdup(c);
	f->value = xstrdup(v);
	if (!f->table || !f->column || !f->value) {
		free(f->table);
		free(f->column);
		free(f->value);
		return CONVBI_ENOMEM;
	}
	f->score = score;
	f->words = words;
	m->n++;
	return CONVBI_OK;
}

/* Exact, case-insensitive (ASCII, as SQLite's lower()). */
static int match_exact(struct matcher *m, sqlite3_stmt *st, const char *text, size_t len, double score, int words, int *hit)
{
	int rc = fetch(m->v, st, LOOK_EXACT, text, len, &m->rows);
	struct row r;
	for (size_t pos = 0; !rc && next_row(&m->rows, &pos, &r);) {
		rc = add_found(m, &r, score, words);
		*hit = 1;
	}
	return rc;
}

/* The stored value contains the span, at word boundaries. */
static int match_contains(struct matcher *m, sqlite3_stmt *st, const char *text, size_t len, int words, int *hit, int *absent)
{
	struct buf phrase = BUF_INIT;
	int rc = buf_putc(&phrase, '"');
	for (size_t i = 0; i < len && !rc; i++)
		rc = text[i] == '"' ? buf_puts(&phrase, "\"\"") : buf_putc(&phrase, text[i]);
	if (!rc)
		rc = buf_putc(&phrase, '"');
	if (!rc)
		rc = fetch(m->v, st, LOOK_CONTAINS, phrase.data, phrase.len, &m->rows);
	if (rc)
		goto done;
	*absent = 1;
	struct row r;
	for (size_t pos = 0; !rc && next_row(&m->rows, &pos, &r);) {
		*absent = 0;
		const char *v = r.value;
		size_t vlen = strlen(v);
		for (const char *p = v; *p && !rc; p++) {
			if (sqlite3_strnicmp(p, text, (int)len) != 0)
				continue;
			int left = p == v || !word_byte((unsigned char)p[-1]);
			int right = !word_byte((unsigned char)p[len]);
			if (left && right) {
				rc = add_found(m, &r, 0.5 + 0.4 * (double)len / (double)vlen, words);
				*hit = 1;
				break;
			}
		}
	}
done:
	buf_release(&phrase);
	return rc;
}

/* Trigrams of a lower-cased ASCII-ish word, for overlap. */
static int trigrams(const char *s, size_t len, char (*out)[4], int max)
{
	int n = 0;
	for (size_t i = 0; i + 3 <= len && n < max; i++) {
		for (int k = 0; k < 3; k++)
			out[n][k] = (char)(s[i + k] >= 'A' && s[i + k] <= 'Z' ? s[i + k] + 32 : s[i + k]);
		out[n][3] = '\0';
		int dup = 0;
		for (int j = 0; j < n && !dup; j++)
			dup = !strcmp(out[j], out[n]);
		n += !dup;
	}
	return n;
}

static double overlap(const char *a, size_t alen, const char *b, size_t blen)
{
	char ta[64][4], tb[64][4];
	int na = trigrams(a, alen, ta, 64), nb = trigrams(b, blen, tb, 64), common = 0;
	for (int i = 0; i < na; i++)
		for (int j = 0; j < nb; j++)
			if (!strcmp(ta[i], tb[j])) {
				common++;
				break;
			}
	return na + nb - common ? (double)common / (double)(na + nb - common) : 0;
}

/* A word near a stored value (a typo, another inflection). */
static int match_fuzzy(struct matcher *m, sqlite3_stmt *st, const char *text, size_t len)
{
	char tg[64][4];
	int n = trigrams(text, len, tg, 64), rc = CONVBI_OK;
	struct buf q = BUF_INIT;
	for (int i = 0; i < n && !rc; i++) {
		int plain = 1;
		for (int k = 0; k < 3; k++)
			plain &= word_byte((unsigned char)tg[i][k]) && tg[i][k] != '"';
		if (plain)
			rc = buf_printf(&q, "%s\"%s\"", q.len ? " OR " : "", tg[i]);
	}
	if (rc || !q.len || (rc = fetch(m->v, st, LOOK_FUZZY, q.data, q.len, &m->rows)))
		goto done;
	struct row r;
	for (size_t pos = 0; !rc && next_row(&m->rows, &pos, &r);) {
		double o = overlap(text, len, r.value, strlen(r.value));
		if (o >= VINDEX_FUZZY_MIN)
			rc = add_found(m, &r, 0.4 * o, 1);
	}
done:
	buf_release(&q);
	return rc;
}

/* 1 when the word (len bytes) names a table or column of s, so that a
 * question's "countries" does not fish for 'Baltic Countries'. */
static int schema_word(const struct schema *s, const char *w, size_t len)
{
	if (len && (w[len - 1] == 's' || w[len - 1] == 'S') && len > 3)
		len--;
	for (size_t t = 0; s && t < s->ntables; t++)
		for (int c = -1; c < s->tables[t].ncols; c++) {
			const char *name = c < 0 ? s->tables[t].name : s->tables[t].cols[c].name;
			for (const char *p = name; *p;) {
				const char *e = p + 1;
				while (*e && *e != '_' && *e != ' ' && !(e[-1] >= 'a' && e[-1] <= 'z' && *e >= 'A' && *e <= 'Z'))
					e++;
				size_t n = (size_t)(e - p);
				if ((n == len || (n == len + 1 && (p[len] == 's' || p[len] == 'S'))) &&
				    !sqlite3_strnicmp(p, w, (int)len))
					return 1;
				p = *e ? e + (*e == '_' || *e == ' ') : e;
			}
		}
	return 0;
}

/* Best first; the order is total, so the result does not depend on the
 * order the candidates were found in. */
static int by_score(const void *pa, const void *pb)
{
	const struct found *a = pa, *b = pb;
	if (a->score != b->score)
		return a->score > b->score ? -1 : 1;
	if (a->words != b->words)
		return b->words - a->words;
	int c = strcmp(a->table, b->table);
	if (!c)
		c = strcmp(a->column, b->column);
	return c ? c : strcmp(a->value, b->value);
}

/* 1 when span i lies inside a span known to be contained in no stored
 * value: the trigram index found no value holding that text, so none
 * holds a text around it either. */
static int inside_absent(const struct span *sp, int n, int i)
{
	for (int j = 0; j < n; j++)
		if (j != i && sp[j].absent && sp[j].off >= sp[i].off && sp[j].off + sp[j].len <= sp[i].off + sp[i].len)
			return 1;
	return 0;
}

/* A free prepared set, or a new one; NULL with err set on failure. */
static struct stmts *stmts_take(struct vindex *v, struct err *err)
{
	pthread_mutex_lock(&v->lock);
	struct stmts *st = v->sets;
	if (st)
		v->sets = st->next;
	pthread_mutex_unlock(&v->lock);
	if (st)
		return st;
	if (!(st = xcalloc(1, sizeof *st))) {
		err_code(err, CONVBI_ENOMEM);
		return NULL;
	}
	if (sqlite3_prepare_v2(v->db, "SELECT value, tbl, col FROM vals WHERE lower(value) = lower(?1) LIMIT 16", -1, &st->exact,
	                       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(v->db,
	                       "SELECT vals.value, tbl, col FROM v JOIN vals ON vals.id = v.rowid WHERE v MATCH ?1 "
	                       "LIMIT 32",
	                       -1, &st->contains, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(v->db,
	                       "SELECT vals.value, tbl, col FROM v JOIN vals ON vals.id = v.rowid WHERE v MATCH ?1 "
	                       "ORDER BY rank LIMIT 64",
	                       -1, &st->fuzzy, NULL) != SQLITE_OK) {
		err_set(err, CONVBI_EDB, "the value index `%s` cannot be read (%s); rebuild it with `convbi index`", v->info.path,
		        sqlite3_errmsg(v->db));
		stmts_free(st);
		return NULL;
	}
	return st;
}

/* Gives a set back, reset and without bindings (the bound text was the
 * caller's). */
static void stmts_give(struct vindex *v, struct stmts *st)
{
	if (!st)
		return;
	sqlite3_reset(st->exact);
	sqlite3_reset(st->contains);
	sqlite3_reset(st->fuzzy);
	sqlite3_clear_bindings(st->exact);
	sqlite3_clear_bindings(st->contains);
	sqlite3_clear_bindings(st->fuzzy);
	pthread_mutex_lock(&v->lock);
	st->next = v->sets;
	v->sets = st;
	pthread_mutex_unlock(&v->lock);
}

int vindex_match(struct vindex *v, const struct schema *s, const char *question, struct ground *out, struct err *err)
{
	struct span sp[SPANS_MAX];
	struct matcher *m = xcalloc(1, sizeof *m);
	struct stmts *st = NULL;
	int rc = CONVBI_OK;
	if (!m)
		return CONVBI_ENOMEM;
	m->v = v;
	m->q = question;
	if (!(st = stmts_take(v, err))) {
		rc = err->code ? err->code : CONVBI_EDB;
		goto done;
	}
	sqlite3_stmt *exact = st->exact, *contains = st->contains, *fuzzy = st->fuzzy;
	int n = make_spans(question, sp);
	for (int i = 0; i < n && !rc; i++) { /* exact first, and the singular of a plural word */
		const char *text = question + sp[i].off;
		size_t len = sp[i].len;
		double bonus = 0.01 * sp[i].words;
		rc = match_exact(m, exact, text, len, 0.95 + bonus, sp[i].words, &sp[i].found);
		if (!rc && !sp[i].found && len > 3 && (text[len - 1] == 's' || text[len - 1] == 'S'))
			rc = match_exact(m, exact, text, len - 1, 0.9 + bonus, sp[i].words, &sp[i].found);
	}
	for (int i = 0; i < n; i++) /* schema words are matched exactly or not at all */
		if (sp[i].words == 1 && schema_word(s, question + sp[i].off, sp[i].len))
			sp[i].found = -1;
	/* shorter spans first: a longer one around a span no value contains
	 * is not looked up (one index query per span was most of the cost) */
	for (int w = 1; w <= 3 && !rc; w++)
		for (int i = 0; i < n && !rc; i++)
			if (sp[i].words == w && !sp[i].found && sp[i].len >= 4 && !inside_absent(sp, n, i))
				rc = match_contains(m, contains, question + sp[i].off, sp[i].len, sp[i].words, &sp[i].found,
				                    &sp[i].absent);
	for (int i = 0, tries = 0; i < n && !rc && tries < FUZZY_WORDS; i++)
		if (!sp[i].found && sp[i].len >= 5 && sp[i].words == 1) {
			int near = 0; /* a word inside a longer span that matched needs no fuzz */
			for (int j = 0; j < n && !near; j++)
				near = sp[j].found > 0 && sp[j].off <= sp[i].off &&
				       sp[j].off + sp[j].len >= sp[i].off + sp[i].len;
			if (!near) {
				tries++;
				rc = match_fuzzy(m, fuzzy, question + sp[i].off, sp[i].len);
			}
		}
	qsort(m->f, (size_t)m->n, sizeof m->f[0], by_score);
	for (int i = 0; i < m->n && !rc && out->n < VINDEX_MATCH_MAX; i++) {
		int same = 0;
		for (int j = 0; j < out->n; j++)
			same += !strcmp(out->v[j].table, m->f[i].table) && !strcmp(out->v[j].column, m->f[i].column);
		if (same < VINDEX_MATCH_PER_COLUMN)
			rc = ground_add(out, m->f[i].table, m->f[i].column, m->f[i].value, m->f[i].score);
	}
done:
	stmts_give(v, st);
	for (int i = 0; i < m->n; i++) {
		free(m->f[i].table);
		free(m->f[i].column);
		free(m->f[i].value);
	}
	buf_release(&m->rows);
	free(m);
	return rc;
}
