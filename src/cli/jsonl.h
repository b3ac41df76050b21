/* jsonl.h -- small helpers shared by `convbi batch` and `convbi eval`.
 *
 * What the bulk commands need and the public API does not give:
 * reading a whole file with a size cap, UTF-8 checking, RFC 4180 fields,
 * the canonical text of a JSON id, and an output file (struct outfile)
 * whose every line is written whole with one write(2) under a mutex on an
 * O_APPEND descriptor and synced, so that a crash loses at most the lines
 * not yet handed to the kernel and never leaves two lines interleaved.
 *
 * Text is built in util's struct buf (its sticky err lets a builder append
 * freely and check once at the end); these helpers return -1 or NULL on
 * allocation failure.
 */
#ifndef CONVBI_CLI_JSONL_H
#define CONVBI_CLI_JSONL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "util/buf.h"
#include "util/limits.h"
#include "util/strmap.h"

/* ---- files and text ------------------------------------------------------- */

/* The canonical text of a JSON id or session value: a string's value, an
 * integral number without a fraction ("12"), another number as %.17g.
 * *is_num says which.  NULL for other types or no memory; caller frees. */
struct cJSON;
char *json_key_text(const struct cJSON *v, int *is_num);

/* --resume: cuts the file at path to its first keep bytes (a torn last
 * line of size - keep bytes) and says so on stderr.  Returns EXIT_OK, or
 * EXIT_FAIL after one line. */
int outfile_cut_torn(const char *path, size_t keep, size_t size);

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
