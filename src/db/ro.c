/* ro.c -- the hardened read-only SQLite connection (see ro.h).
 *
 * Order matters: the file is checked with stat() first only to phrase the
 * message (SQLite says "unable to open database file" for every cause);
 * the open itself is the authority.  SQLite opens lazily, so a text file
 * "opens" fine and fails on the first read: the probe query below forces
 * that read while we can still name the file.
 */
#include "db/ro.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convbi/convbi.h"

int ro_uri(struct buf *out, const char *path)
{
	static const char hex[] = "0123456789ABCDEF";
	int rc = buf_puts(out, path[0] == '/' ? "file://" : "file:");
	for (const unsigned char *p = (const unsigned char *)path; *p && !rc; p++) {
		unsigned char c = *p;
		int plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		            c == '_' || c == '~' || c == '/';
		if (plain) {
			rc = buf_putc(out, (char)c);
		} else {
			char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
			rc = buf_add(out, esc, 3);
		}
	}
	return rc ? rc : buf_puts(out, "?mode=ro");
}

/* Phrases why path cannot be opened, from what the file system says. */
static int explain_path(const char *path, struct err *err)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		if (errno == ENOENT)
			return err_set(err, CONVBI_EDB, "database `%s` does not exist; check the path", path);
		return err_set(err, CONVBI_EDB, "database `%s` cannot be opened (%s); check the path and its permissions", path,
		               strerror(errno));
	}
	if (S_ISDIR(st.st_mode))
		return err_set(err, CONVBI_EDB, "database `%s` is a directory; give the path of a SQLite file", path);
	if (!S_ISREG(st.st_mode))
		return err_set(err, CONVBI_EDB, "database `%s` is not a regular file; give the path of a SQLite file", path);
	if (access(path, R_OK) != 0)
		return err_set(err, CONVBI_EDB, "database `%s` cannot be read (%s); make it readable", path, strerror(errno));
	return CONVBI_OK;
}

static int harden(sqlite3 *db)
{
	static const int off[] = {SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, SQLITE_DBCONFIG_ENABLE_TRIGGER,
	                          SQLITE_DBCONFIG_WRITABLE_SCHEMA, SQLITE_DBCONFIG_TRUSTED_SCHEMA,
	                          SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER};
	int got;
	for (size_t i = 0; i < sizeof off / sizeof off[0]; i++)
		if (sqlite3_db_config(db, off[i], 0, &got) != SQLITE_OK || got != 0)
			return SQLITE_ERROR;
	if (sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, &got) != SQLITE_OK || got != 1)
		return SQLITE_ERROR;
	sqlite3_busy_timeout(db, RO_BUSY_TIMEOUT_MS);
	return sqlite3_exec(db, "PRAGMA query_only=1", NULL, NULL, NULL);
}

/* Whether path+suffix exists, and its size. */
static int side_file(const char *path, const char *suffix, off_t *size)
{
	char name[4200];
	struct stat st;
	*size = 0;
	if ((size_t)snprintf(name, sizeof name, "%s%s", path, suffix) >= sizeof name)
		return 1; /* cannot say: assume it exists, open as usual */
	if (lstat(name, &st) != 0)
		return 0;
	*size = st.st_size;
	return 1;
}

/* A WAL-mode database (header bytes 18 and 19 are 2) makes even a
 * read-only connection create path-wal and path-shm beside it, in the
 * user's folder.  Both present: another connection has it open, nothing
 * new appears, open as usual.  No WAL content (no -wal, or an empty one):
 * the file holds everything, so it is opened immutable=1 -- no locks, no
 * side files; the trade-off is that a writer starting while the session
 * lives is not seen.  A -wal with content but no -shm (a crash) cannot be
 * read without creating -shm: refused with the fix. */
static int wal_side_files(const char *path, int *immutable, struct err *err)
{
	unsigned char hdr[20];
	*immutable = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return CONVBI_OK; /* the open below phrases it */
	ssize_t n = pread(fd, hdr, sizeof hdr, 0);
	close(fd);
	if (n != (ssize_t)sizeof hdr || memcmp(hdr, "SQLite format 3", 16) || hdr[18] != 2 || hdr[19] != 2)
		return CONVBI_OK;
	off_t wal_size, shm_size;
	int wal = side_file(path, "-wal", &wal_size), shm = side_file(path, "-shm", &shm_size);
	if (wal && shm)
		return CONVBI_OK;
	if (!wal || wal_size == 0) {
		*immutable = 1;
		return CONVBI_OK;
	}
	return err_set(err, CONVBI_EDB,
	               "database `%s` is in WAL mode and `%s-wal` holds changes but `%s-shm` is missing; "
	               "convbi never creates files beside your database: checkpoint it first "
	               "(sqlite3 '%s' 'PRAGMA wal_checkpoint(TRUNCATE)')",
	               path, path, path, path);
}

int ro_open(sqlite3 **out, const char *path, struct err *err)
{
	return ro_open_vfs(out, path, NULL, err);
}

int ro_open_vfs(sqlite3 **out, const char *path, const char *vfs, struct err *err)
{
	struct buf uri = BUF_INIT;
	sqlite3 *db = NULL;
	int rc;

	*out = NULL;
	if (!path || !*path)
		return err_set(err, CONVBI_EINVAL, "no database path was given; pass the path of a SQLite file");
	rc = explain_path(path, err);
	if (rc)
		return rc;
	int immutable = 0;
	if ((rc = wal_side_files(path, &immutable, err)))
		return rc;
	if (ro_uri(&uri, path) || (immutable && buf_puts(&uri, "&immutable=1"))) {
		buf_release(&uri);
		return err_set(err, CONVBI_ENOMEM, "out of memory opening database `%s`", path);
	}

	int src = sqlite3_open_v2(uri.data, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, vfs);
	buf_release(&uri);
	if (src == SQLITE_NOMEM || !db) {
		rc = err_set(err, CONVBI_ENOMEM, "out of memory opening database `%s`", path);
		goto fail;
	}
	if (src != SQLITE_OK) {
		rc = err_set(err, CONVBI_EDB, "database `%s` cannot be opened (%s); check the path and its permissions", path,
		             sqlite3_errmsg(db));
		goto fail;
	}
	sqlite3_extended_result_codes(db, 1);
	if (harden(db) != SQLITE_OK) {
		rc = err_set(err, CONVBI_EDB, "database `%s` cannot be made read-only (%s); check the SQLite build", path,
		             sqlite3_errmsg(db));
		goto fail;
	}
	/* the probe: reads the header and the schema */
	src = sqlite3_exec(db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
	if (src != SQLITE_OK) {
		rc = ro_schema_error(err, path, src, sqlite3_errmsg(db));
		goto fail;
	}
	*out = db;
	return CONVBI_OK;
fail:
	sqlite3_close_v2(db);
	return rc;
}

int ro_is_busy(int src)
{
	int primary = src & 0xff;
	return primary == SQLITE_BUSY || primary == SQLITE_LOCKED || primary == SQLITE_SCHEMA;
}

int ro_busy_error(struct err *err, const char *path)
{
	return err_set(err, CONVBI_EDB,
	               "database `%s` is locked or being changed by another process; try again when it "
	               "is done",
	               path);
}

int ro_schema_error(struct err *err, const char *path, int src, const char *msg)
{
	int primary = src & 0xff;
	const char *unsafe = msg ? strstr(msg, "unsafe use of ") : NULL;
	if (unsafe) {
		/* "malformed database schema (TABLE) - unsafe use of FN()" */
		const char *fn = unsafe + 14;
		const char *open = strchr(msg, '('), *close = open ? strchr(open, ')') : NULL;
		int tlen = open && close && close < unsafe ? (int)(close - open - 1) : 0;
		return err_set(err, CONVBI_EDB,
		               "database `%s` uses %s in its schema%s%.*s%s (a generated column, index, view or trigger), "
		               "which convbi does not run on a database it does not trust; query a copy without it",
		               path, fn, tlen ? " (in `" : "", tlen, tlen ? open + 1 : "", tlen ? "`)" : "");
	}
	if (ro_is_busy(src))
		return ro_busy_error(err, path);
	if (primary == SQLITE_NOTADB)
		return err_set(err, CONVBI_EDB, "`%s` is not a SQLite database (%s); give the path of a SQLite 3 file", path,
		               msg);
	if (primary == SQLITE_CORRUPT)
		return err_set(err, CONVBI_EDB, "database `%s` is corrupt (%s); restore it from a backup", path, msg);
	if (primary == SQLITE_NOMEM)
		return err_set(err, CONVBI_ENOMEM, "out of memory reading database `%s`", path);
	return err_set(err, CONVBI_EDB, "database `%s` cannot be read (%s); check the file", path, msg);
}
