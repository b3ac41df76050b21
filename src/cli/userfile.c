/* userfile.c -- the files of the user's a command never writes over, and
 * result files written aside then renamed (see userfile.h).
 *
 * The checks run before any output is opened.  Inputs are compared by
 * device and inode (stat follows symbolic links), the prompts folder by
 * the device and inode of the output's folder.  Only an existing path can
 * be anything of the user's: a new file is always fine.
 */
#include "util/datadir.h"
#include "cli/userfile.h"

#include "util/regfile.h"
#include "util/utf8.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SQLITE_MAGIC "SQLite format 3" /* the first 16 bytes of every SQLite 3 database, NUL included */
#define STATE_MAGIC_BYTES "CVBISTAT"   /* the first 8 bytes of a convbi endpoint state file (llm/state.h) */
#define CONFIG_MAX_BYTES (1 << 20)     /* a configuration read for its state.path */

/* 1 when path names the file st describes. */
static int same_file(const struct stat *st, const char *path)
{
	struct stat o;
	return path && *path && stat(path, &o) == 0 && o.st_dev == st->st_dev && o.st_ino == st->st_ino;
}

/* 1 when the folder holding path is the folder dir. */
static int in_folder(const char *path, const char *dir)
{
	struct stat d, p;
	if (!dir || !*dir || stat(dir, &d) != 0 || !S_ISDIR(d.st_mode))
		return 0;
	char *copy = strdup(path);
	if (!copy)
		return 0;
	char *slash = strrchr(copy, '/');
	const char *folder = !slash ? "." : slash == copy ? "/" : (*slash = '\0', copy);
	int same = stat(folder, &p) == 0 && p.st_dev == d.st_dev && p.st_ino == d.st_ino;
	free(copy);
	return same;
}

/* 1 when the regular file path starts with the n bytes magic. */
static int starts_with(const char *path, const char *magic, size_t n)
{
	char head[16];
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return 0;
	ssize_t got = read(fd, head, n);
	close(fd);
	return got == (ssize_t)n && !memcmp(head, magic, n);
}

static int is_sqlite(const char *path)
{
	return starts_with(path, SQLITE_MAGIC, sizeof SQLITE_MAGIC);
}

/* 1 when path and other name the same place: the same file name in the
 * same folder, whether or not the file exists yet. */
static int same_place(const char *path, const char *other)
{
	if (!other || !*other)
		return 0;
	const char *a = strrchr(path, '/'), *b = strrchr(other, '/');
	if (strcmp(a ? a + 1 : path, b ? b + 1 : other))
		return 0;
	char *folder = strdup(other);
	if (!folder)
		return 0;
	char *slash = strrchr(folder, '/');
	const char *dir = !slash ? "." : slash == folder ? "/" : (*slash = '\0', folder);
	int same = in_folder(path, dir);
	free(folder);
	return same;
}

/* The state.path of the configuration file config (owned), else NULL. */
static char *configured_state_path(const char *config)
{
	char *text = NULL;
	size_t len = 0;
	mode_t mode = 0;
	if (!config || !*config || regfile_read(config, CONFIG_MAX_BYTES, &text, &len, &mode))
		return NULL;
	cJSON *root = cJSON_ParseWithLength(text, len);
	free(text);
	const cJSON *state = cJSON_GetObjectItemCaseSensitive(root, "state");
	const cJSON *path = cJSON_GetObjectItemCaseSensitive(state, "path");
	char *out = cJSON_IsString(path) && *path->valuestring ? strdup(path->valuestring) : NULL;
	cJSON_Delete(root);
	return out;
}

/* What path is among the files that exist, or will, beside the run's
 * inputs and that no output may take even before they exist: the endpoint
 * state file the configuration names (the month's spending lives there)
 * and the database's journal, WAL and shared-memory files (junk there is a
 * "hot journal" SQLite would roll into the database); else NULL. */
static const char *place_what(const char *path, const struct cli_opts *o, const char *db)
{
	if (!db)
		db = o->db ? o->db : cli_default_db();
	static const char *const sidecars[] = {"-journal", "-wal", "-shm"};
	size_t n = strlen(db);
	char *side = malloc(n + 16);
	const char *what = NULL;
	for (size_t i = 0; side && !what && i < sizeof sidecars / sizeof sidecars[0]; i++) {
		snprintf(side, n + 16, "%s%s", db, sidecars[i]);
		if (same_place(path, side))
			what = "the database's journal, WAL or shared-memory file";
	}
	free(side);
	if (what)
		return what;
	size_t pn = strlen(path);
	for (size_t i = 0; i < sizeof sidecars / sizeof sidecars[0]; i++) { /* any database's, not only the run's */
		size_t k = strlen(sidecars[i]);
		char *base = pn > k && !strcmp(path + pn - k, sidecars[i]) ? strndup(path, pn - k) : NULL;
		int of_db = base && is_sqlite(base);
		free(base);
		if (of_db)
			return "the journal, WAL or shared-memory file of a SQLite database";
	}
	char *state = configured_state_path(o->config ? o->config : getenv("CONVBI_CONFIG"));
	if (state && same_place(path, state))
		what = "the endpoint state file (state.path; it keeps the budgets' spending)";
	free(state);
	return what;
}

/* 1 when st is one of the notes files the engine reads for db: --notes,
 * else DB.notes.md beside the database (shop.db -> shop.notes.md, then
 * shop.db.notes.md). */
static int is_notes(const struct stat *st, const struct cli_opts *o, const char *db)
{
	if (o->notes)
		return same_file(st, o->notes);
	size_t n = strlen(db), cap = n + sizeof ".notes.md";
	char *p = malloc(cap);
	if (!p)
		return 0;
	const char *slash = strrchr(db, '/'), *dot = strrchr(db, '.');
	int stem = dot && (!slash || dot > slash + 1) ? (int)(dot - db) : (int)n;
	snprintf(p, cap, "%.*s.notes.md", stem, db);
	int hit = same_file(st, p);
	snprintf(p, cap, "%s.notes.md", db);
	hit |= same_file(st, p);
	free(p);
	return hit;
}

/* What the existing file st at path is among the run's inputs, else NULL.
 * The history file counts unless history is 0 (the check of the history
 * file itself). */
static const char *input_what(const struct stat *st, const char *path, const struct cli_opts *o, const char *db,
                              const struct userfile_input *more, int n, int history)
{
	if (!db)
		db = o->db ? o->db : cli_default_db();
	if (same_file(st, db))
		return o->db ? "the database (--db)" : "the database";
	const char *config = o->config ? o->config : getenv("CONVBI_CONFIG");
	if (same_file(st, config))
		return "the endpoint configuration";
	for (int i = 0; i < n; i++)
		if (same_file(st, more[i].path))
			return more[i].what;
	if (is_notes(st, o, db))
		return o->notes ? "the business notes (--notes)" : "the business notes";
	if (same_file(st, o->examples))
		return "the examples file (--examples)";
	const char *home = getenv("HOME");
	char hist[4096];
	snprintf(hist, sizeof hist, "%s/.convbi_history", home ? home : "");
	if (history && (same_file(st, o->history_file) || (home && *home && same_file(st, hist))))
		return "the REPL's history file";
	const char *prompts[] = {o->prompts, getenv("CONVBI_PROMPTS"), datadir_path(DATADIR_PROMPTS)};
	for (size_t i = 0; i < sizeof prompts / sizeof prompts[0]; i++)
		if (in_folder(path, prompts[i]))
			return "a file in the prompts folder";
	return NULL;
}

const char *userfile_what(const char *path, const struct cli_opts *o, const char *db, const struct userfile_input *more, int n)
{
	struct stat st;
	if (!path)
		return NULL;
	const char *place = place_what(path, o, db);
	if (place)
		return place;
	if (stat(path, &st) != 0)
		return NULL; /* any other new file cannot be anything of the user's */
	if (S_ISDIR(st.st_mode))
		return "a directory";
	if (S_ISBLK(st.st_mode))
		return "a block device";
	if (S_ISSOCK(st.st_mode))
		return "a socket";
	const char *what = input_what(&st, path, o, db, more, n, 1);
	if (!what && S_ISREG(st.st_mode) && is_sqlite(path))
		what = "a SQLite database";
	if (!what && S_ISREG(st.st_mode) && starts_with(path, STATE_MAGIC_BYTES, sizeof STATE_MAGIC_BYTES - 1))
		what = "a convbi endpoint state file";
	return what;
}

const char *userfile_history_what(const char *path, const struct cli_opts *o, const char *db)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return NULL; /* a new file: libedit creates it, private (0600) */
	if (!S_ISREG(st.st_mode))
		return regfile_kind(st.st_mode);
	const char *what = input_what(&st, path, o, db, NULL, 0, 0);
	if (what)
		return what;
	if (is_sqlite(path))
		return "a SQLite database";
	char *text = NULL;
	size_t len = 0;
	mode_t mode = 0;
	int e = regfile_read(path, CLI_HISTORY_MAX_BYTES, &text, &len, &mode);
	if (e == EFBIG)
		what = "larger than a history file is (" CLI_HISTORY_MAX_TEXT ")";
	else if (e == REGFILE_NOT_REGULAR)
		what = regfile_kind(mode);
	else if (!e && memchr(text, '\0', len))
		what = "a binary file (it holds NUL bytes)";
	else if (!e && !utf8_valid(text, len, NULL))
		what = "not a text file (it is not UTF-8)";
	free(text);
	return what; /* unreadable (EACCES...): libedit's read fails quietly, as for a new file */
}

int userfile_check(const char *flag, const char *path, const struct cli_opts *o, const char *db,
                   const struct userfile_input *more, int n)
{
	const char *what = userfile_what(path, o, db, more, n);
	if (!what)
		return EXIT_OK;
	cli_error("%s %s is %s; convbi would overwrite it: write the results to another file", flag, path, what);
	return EXIT_USAGE;
}

/* ---- a result file written aside -------------------------------------------- */

/* Creates PATH.tmp<pid>.<n> exclusively (never through a link), with
 * mode as open(2) applies the umask; its name goes to tmp.  umask(2) is
 * never called: batch writes rows files from several threads. */
static int open_aside(char *tmp, size_t cap, const char *path, mode_t mode)
{
	static unsigned counter;
	for (int tries = 0; tries < 100; tries++) {
		unsigned n = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
		snprintf(tmp, cap, "%s.tmp%ld.%u", path, (long)getpid(), n);
		int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	return -1;
}

int resfile_open(struct resfile *r, const char *path)
{
	struct stat st, lst;
	int e = 0, fd = -1;
	memset(r, 0, sizeof *r);
	int exists = stat(path, &st) == 0;
	if (exists && !S_ISREG(st.st_mode)) {
		/* a FIFO or a character device: nothing there to keep */
		if (!(r->f = fopen(path, "w")) || !(r->path = strdup(path)))
			goto fail;
		r->committed = 1;
		return 0;
	}
	/* through a symbolic link: the file it names is replaced, the link stays */
	if (exists && lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode))
		r->path = realpath(path, NULL);
	if (!r->path && !(r->path = strdup(path)))
		goto fail;
	size_t len = strlen(r->path) + 32;
	if (!(r->tmp = malloc(len)))
		goto fail;
	if ((fd = open_aside(r->tmp, len, r->path, exists ? st.st_mode & 07777 : 0666)) < 0) {
		free(r->tmp);
		r->tmp = NULL; /* nothing was created */
		goto fail;
	}
	/* an existing file keeps its mode exactly (open applied the umask) */
	if ((exists && fchmod(fd, st.st_mode & 07777) != 0) || !(r->f = fdopen(fd, "w")))
		goto fail;
	return 0;
fail:
	e = errno ? errno : ENOMEM;
	if (fd >= 0 && !r->f)
		close(fd);
	resfile_close(r);
	return e;
}

int resfile_commit(struct resfile *r)
{
	if (!r->f)
		return EBADF;
	if (fflush(r->f) != 0 || ferror(r->f))
		return errno ? errno : EIO;
	if (r->committed)
		return 0;
	if (rename(r->tmp, r->path) != 0)
		return errno;
	free(r->tmp);
	r->tmp = NULL;
	r->committed = 1;
	return 0;
}

int resfile_close(struct resfile *r)
{
	int e = 0;
	if (r->f && fclose(r->f) != 0)
		e = errno;
	if (r->tmp)
		unlink(r->tmp);
	free(r->tmp);
	free(r->path);
	memset(r, 0, sizeof *r);
	return e;
}

int resfile_write_whole(const char *path, const char *data, size_t len)
{
	struct resfile r;
	int e = resfile_open(&r, path);
	if (e)
		return e;
	if (fwrite(data, 1, len, r.f) != len)
		e = errno ? errno : EIO;
	if (!e)
		e = resfile_commit(&r);
	int ce = resfile_close(&r);
	return e ? e : ce;
}
