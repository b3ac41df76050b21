/* tempvfs.c -- the temporary-file byte budget (see tempvfs.h).
 *
 * A shim file is our header followed by the real file object (szOsFile is
 * ours plus the default VFS's).  Its io_methods are the real file's, one
 * for one, except xWrite and xTruncate on temporary files, which keep the
 * file's size (the highest byte written) and the shim's total, and xClose,
 * which gives the file's bytes back.  Counters are atomics although one
 * connection is used by one thread at a time: SQLite may run sorter
 * threads (exec turns them off; the shim does not rely on it).
 */
#include "db/tempvfs.h"

#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convbi/convbi.h"
#include "util/alloc.h"

struct tempvfs {
	sqlite3_vfs vfs;   /* registered; pAppData = this */
	sqlite3_vfs *real; /* the default VFS */
	char name[48];
	struct meter m; /* bytes held by open temporary files */
};

struct tfile {
	sqlite3_file base; /* base.pMethods = &t->methods or NULL */
	struct tempvfs *t;
	int temp;                   /* 1 = counted */
	int64_t size;               /* bytes counted for this file */
	sqlite3_io_methods methods; /* the real file's, with ours for the counted calls */
	sqlite3_file *real;         /* follows this struct */
};

#define TEMP_FLAGS (SQLITE_OPEN_TEMP_DB | SQLITE_OPEN_TEMP_JOURNAL | SQLITE_OPEN_TRANSIENT_DB | SQLITE_OPEN_SUBJOURNAL)

static struct tfile *tf(sqlite3_file *f)
{
	return (struct tfile *)f;
}

/* Grows the file's count to end, within the limit. */
static int grow(struct tfile *f, int64_t end)
{
	struct tempvfs *t = f->t;
	if (end <= f->size)
		return SQLITE_OK;
	int64_t more = end - f->size;
	int64_t after;
	if (!meter_take(&t->m, more, &after))
		return SQLITE_FULL;
	meter_raise_peak(&t->m, after);
	f->size = end;
	return SQLITE_OK;
}

static void shrink(struct tfile *f, int64_t end)
{
	if (end < f->size) {
		meter_give(&f->t->m, f->size - end);
		f->size = end;
	}
}

static int t_close(sqlite3_file *p)
{
	struct tfile *f = tf(p);
	shrink(f, 0);
	return f->real->pMethods->xClose(f->real);
}

static int t_write(sqlite3_file *p, const void *buf, int n, sqlite3_int64 off)
{
	struct tfile *f = tf(p);
	int rc = f->temp ? grow(f, off + n) : SQLITE_OK;
	return rc ? rc : f->real->pMethods->xWrite(f->real, buf, n, off);
}

static int t_truncate(sqlite3_file *p, sqlite3_int64 size)
{
	struct tfile *f = tf(p);
	int rc = f->real->pMethods->xTruncate(f->real, size);
	if (rc == SQLITE_OK && f->temp)
		shrink(f, size);
	return rc;
}

/* A size hint makes the real VFS extend the file without a write. */
static int t_fcntl(sqlite3_file *p, int op, void *arg)
{
	struct tfile *f = tf(p);
	if (op == SQLITE_FCNTL_SIZE_HINT && f->temp && arg) {
		int rc = grow(f, *(sqlite3_int64 *)arg);
		if (rc)
			return rc;
	}
	return f->real->pMethods->xFileControl(f->real, op, arg);
}

/* ---- pass-through methods ------------------------------------------------------ */

#define REAL(p) (tf(p)->real)
static int t_read(sqlite3_file *p, void *b, int n, sqlite3_int64 o)
{
	return REAL(p)->pMethods->xRead(REAL(p), b, n, o);
}
static int t_sync(sqlite3_file *p, int fl)
{
	return REAL(p)->pMethods->xSync(REAL(p), fl);
}
static int t_filesize(sqlite3_file *p, sqlite3_int64 *s)
{
	return REAL(p)->pMethods->xFileSize(REAL(p), s);
}
static int t_lock(sqlite3_file *p, int l)
{
	return REAL(p)->pMethods->xLock(REAL(p), l);
}
static int t_unlock(sqlite3_file *p, int l)
{
	return REAL(p)->pMethods->xUnlock(REAL(p), l);
}
static int t_check(sqlite3_file *p, int *r)
{
	return REAL(p)->pMethods->xCheckReservedLock(REAL(p), r);
}
static int t_sector(sqlite3_file *p)
{
	return REAL(p)->pMethods->xSectorSize(REAL(p));
}
static int t_devchar(sqlite3_file *p)
{
	return REAL(p)->pMethods->xDeviceCharacteristics(REAL(p));
}
static int t_shmmap(sqlite3_file *p, int pg, int sz, int ext, void volatile **pp)
{
	return REAL(p)->pMethods->xShmMap(REAL(p), pg, sz, ext, pp);
}
static int t_shmlock(sqlite3_file *p, int o, int n, int fl)
{
	return REAL(p)->pMethods->xShmLock(REAL(p), o, n, fl);
}
static void t_shmbarrier(sqlite3_file *p)
{
	REAL(p)->pMethods->xShmBarrier(REAL(p));
}
static int t_shmunmap(sqlite3_file *p, int del)
{
	return REAL(p)->pMethods->xShmUnmap(REAL(p), del);
}
static int t_fetch(sqlite3_file *p, sqlite3_int64 o, int n, void **pp)
{
	return REAL(p)->pMethods->xFetch(REAL(p), o, n, pp);
}
static int t_unfetch(sqlite3_file *p, sqlite3_int64 o, void *v)
{
	return REAL(p)->pMethods->xUnfetch(REAL(p), o, v);
}
#undef REAL

/* Our methods table mirrors the real one: a method the real file lacks
 * stays NULL, so SQLite sees the same capabilities. */
static void mirror(sqlite3_io_methods *m, const sqlite3_io_methods *r)
{
	memset(m, 0, sizeof *m);
	m->iVersion = r->iVersion;
	m->xClose = t_close;
	m->xRead = t_read;
	m->xWrite = t_write;
	m->xTruncate = t_truncate;
	m->xSync = t_sync;
	m->xFileSize = t_filesize;
	m->xLock = t_lock;
	m->xUnlock = t_unlock;
	m->xCheckReservedLock = t_check;
	m->xFileControl = t_fcntl;
	m->xSectorSize = t_sector;
	m->xDeviceCharacteristics = t_devchar;
	if (r->iVersion >= 2) {
		m->xShmMap = r->xShmMap ? t_shmmap : NULL;
		m->xShmLock = r->xShmLock ? t_shmlock : NULL;
		m->xShmBarrier = r->xShmBarrier ? t_shmbarrier : NULL;
		m->xShmUnmap = r->xShmUnmap ? t_shmunmap : NULL;
	}
	if (r->iVersion >= 3) {
		m->xFetch = r->xFetch ? t_fetch : NULL;
		m->xUnfetch = r->xUnfetch ? t_unfetch : NULL;
	}
}

/* ---- the VFS -------------------------------------------------------------------- */

static int v_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *p, int flags, int *out_flags)
{
	struct tempvfs *t = vfs->pAppData;
	struct tfile *f = tf(p);
	memset(f, 0, sizeof *f);
	f->t = t;
	f->real = (sqlite3_file *)(f + 1);
	f->temp = !name || (flags & TEMP_FLAGS);
	int rc = t->real->xOpen(t->real, name, f->real, flags, out_flags);
	if (f->real->pMethods) {
		mirror(&f->methods, f->real->pMethods);
		f->base.pMethods = &f->methods;
	}
	return rc;
}

static int v_delete(sqlite3_vfs *v, const char *n, int s)
{
	struct tempvfs *t = v->pAppData;
	return t->real->xDelete(t->real, n, s);
}
static int v_access(sqlite3_vfs *v, const char *n, int fl, int *r)
{
	struct tempvfs *t = v->pAppData;
	return t->real->xAccess(t->real, n, fl, r);
}
static int v_fullpath(sqlite3_vfs *v, const char *n, int sz, char *o)
{
	struct tempvfs *t = v->pAppData;
	return t->real->xFullPathname(t->real, n, sz, o);
}
static void *v_dlopen(sqlite3_vfs *v, const char *n)
{
	(void)v;
	(void)n;
	return NULL;
}
static void v_dlerror(sqlite3_vfs *v, int n, char *o)
{
	(void)v;
	sqlite3_snprintf(n, o, "extensions are not loaded");
}
static void (*v_dlsym(sqlite3_vfs *v, void *h, const char *s))(void)
{
	(void)v;
	(void)h;
	(void)s;
	return NULL;
}
static void v_dlclose(sqlite3_vfs *v, void *h)
{
	(void)v;
	(void)h;
}
static int v_random(sqlite3_vfs *v, int n, char *o)
{
	struct tempvfs *t = v->pAppData;
	return t->real->xRandomness(t->real, n, o);
}
static int v_sleep(sqlite3_vfs *v, int us)
{
	struct tempvfs *t = v->pAppData;
	return t->real->xSleep(t->real, us);
}
static int v_time(sqlite3_vfs *v, double *o)
{
	struct tempvfs *t = v->pAppData;
	return t->real->xCurrentTime(t->real, o);
}
static int v_lasterr(sqlite3_vfs *v, int n, char *o)
{
	struct tempvfs *t = v->pAppData;
	return t->real->xGetLastError ? t->real->xGetLastError(t->real, n, o) : 0;
}
static int v_time64(sqlite3_vfs *v, sqlite3_int64 *o)
{
	struct tempvfs *t = v->pAppData;
	return t->real->xCurrentTimeInt64(t->real, o);
}

int tempvfs_new(struct tempvfs **out, int64_t limit, struct err *err)
{
	*out = NULL;
	sqlite3_vfs *real = sqlite3_vfs_find(NULL);
	if (!real)
		return err_set(err, CONVBI_EDB, "SQLite has no default VFS; check the SQLite build");
	struct tempvfs *t = xcalloc(1, sizeof *t);
	if (!t)
		return err_set(err, CONVBI_ENOMEM, "out of memory setting up the temporary-file limit");
	t->real = real;
	snprintf(t->name, sizeof t->name, "convbi-temp-%p", (void *)t);
	meter_init(&t->m, limit);
	sqlite3_vfs *v = &t->vfs;
	v->iVersion = 2;
	v->szOsFile = (int)sizeof(struct tfile) + real->szOsFile;
	v->mxPathname = real->mxPathname;
	v->zName = t->name;
	v->pAppData = t;
	v->xOpen = v_open;
	v->xDelete = v_delete;
	v->xAccess = v_access;
	v->xFullPathname = v_fullpath;
	v->xDlOpen = v_dlopen;
	v->xDlError = v_dlerror;
	v->xDlSym = v_dlsym;
	v->xDlClose = v_dlclose;
	v->xRandomness = v_random;
	v->xSleep = v_sleep;
	v->xCurrentTime = v_time;
	v->xGetLastError = v_lasterr;
	v->xCurrentTimeInt64 = real->iVersion >= 2 && real->xCurrentTimeInt64 ? v_time64 : NULL;
	if (!v->xCurrentTimeInt64)
		v->iVersion = 1;
	int src = sqlite3_vfs_register(v, 0);
	if (src != SQLITE_OK) {
		free(t);
		return err_set(err, src == SQLITE_NOMEM ? CONVBI_ENOMEM : CONVBI_EDB,
		               "cannot register the temporary-file limit (%s)", sqlite3_errstr(src));
	}
	*out = t;
	return CONVBI_OK;
}

void tempvfs_free(struct tempvfs *t)
{
	if (!t)
		return;
	sqlite3_vfs_unregister(&t->vfs);
	free(t);
}

const char *tempvfs_name(const struct tempvfs *t)
{
	return t->name;
}

struct meter *tempvfs_meter(struct tempvfs *t)
{
	return &t->m;
}
