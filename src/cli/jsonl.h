/* jsonl.h -- small helpers shared by `convbi batch` and `convbi eval`.
 *
 * What the bulk commands need and the public API does not give: a growable
 * text buffer (struct tbuf), a string -> int hash map (struct strmap),
 * reading a whole file with a size cap, UTF-8 checking, RFC 4180 fields,
 * the canonical text of a JSON id, and an output file (struct outfile)
 * whose every line is written whole with one write(2) under a mutex on an
 * O_APPEND descriptor and synced, so that a crash loses at most the lines
 * not yet handed to the kernel and never leaves two lines interleaved.
 *
 * Allocation failure in a tbuf is sticky (b->oom) so that builders can
 * append freely and check once at the end; the other helpers return -1 or
 * NULL.
 */
#ifndef CONVBI_CLI_JSONL_H
#define CONVBI_CLI_JSONL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "util/limits.h"


/* ---- text buffer --------------------------------------------------------- */

struct tbuf {
	char *p;    /* owned; NUL-terminated when non-NULL */
	size_t len; /* bytes used */
	size_t cap; /* bytes allocated */
	int oom;    /* an append failed: the content is incomplete */
};

#define TBUF_INIT {NULL, 0, 0, 0}

void tb_add(struct tbuf *b, const void *p, size_t n);
void tb_puts(struct tbuf *b, const char *s);
void tb_printf(struct tbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as one RFC 4180 field: quoted (quotes doubled) when it holds a
 * comma, a quote, CR or LF, or starts/ends with a space; NULL is empty. */
void tb_csv(struct tbuf *b, const char *s);
void tb_reset(struct tbuf *b);
void tb_release(struct tbuf *b);
/* The text, owned by b ("" when empty). */
const char *tb_str(const struct tbuf *b);

/* ---- string -> int map ---------------------------------------------------- */

struct strmap_ent {
	char *key; /* owned; NULL = empty slot */
	int val;
};

struct strmap {
	struct strmap_ent *e; /* owned, open addressing, cap a power of two */
	size_t cap, n;
};

#define STRMAP_INIT {NULL, 0, 0}

/* Inserts key -> val.  Returns 0 when inserted, 1 when key was present
 * (its value stays, *old receives it when old != NULL), -1 out of memory. */
int strmap_put(struct strmap *m, const char *key, int val, int *old);
/* 1 and *val when present, else 0. */
int strmap_get(const struct strmap *m, const char *key, int *val);
void strmap_release(struct strmap *m);

/* ---- files and text ------------------------------------------------------- */

/* The canonical text of a JSON id or session value: a string's value, an
 * integral number without a fraction ("12"), another number as %.17g.
 * *is_num says which.  NULL for other types or no memory; caller frees. */
struct cJSON;
char *json_key_text(const struct cJSON *v, int *is_num);

/* ---- the output file ------------------------------------------------------- */

struct outfile {
	int fd;             /* owned unless it is stdout */
	int own;            /* fd is ours to close */
	int sync;           /* a regular file: fdatasync after each line */
	int err;            /* errno of the first failed write, 0 if none */
	pthread_mutex_t mu; /* one line at a time */
};

/* Opens path for appending (created 0644; emptied first when truncate),
 * or stdout when path is NULL.  Returns 0 or an errno value. */
int outfile_open(struct outfile *f, const char *path, int truncate);
/* Writes len bytes (whole lines) at the end with one write(2) loop under
 * the mutex, then syncs a regular file.  Returns 0 or the errno; after a
 * failure every later write fails with the same errno. */
int outfile_write(struct outfile *f, const char *text, size_t len);
void outfile_close(struct outfile *f);

#endif
