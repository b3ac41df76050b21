/* jsonl.c -- text buffer, string map, files and whole-line output for the
 * bulk commands (see jsonl.h).
 *
 * The map is open addressing with linear probing, kept at most half full,
 * hashed with FNV-1a; it never deletes.  The output file relies on two
 * kernel guarantees: writes on an O_APPEND descriptor go to the current
 * end of file, and a write(2) that returns has handed its bytes to the
 * page cache, where they survive the process being killed.  fdatasync
 * after each line extends that to the machine crashing, at a cost that is
 * small next to a model call.
 */
#include "cli/jsonl.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

/* ---- files and text ------------------------------------------------------- */

char *json_key_text(const cJSON *v, int *is_num)
{
	char tmp[64];
	*is_num = 0;
	if (cJSON_IsString(v))
		return strdup(v->valuestring);
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
		return NULL;
	*is_num = 1;
	double d = v->valuedouble;
	if (d == floor(d) && fabs(d) < 9007199254740992.0)
		snprintf(tmp, sizeof tmp, "%lld", (long long)d);
	else
		snprintf(tmp, sizeof tmp, "%.17g", d);
	return strdup(tmp);
}

/* ---- the output file ------------------------------------------------------- */

int outfile_cut_torn(const char *path, size_t keep, size_t size)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)keep)) {
		cli_error("cannot cut the torn last line off `%s`: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return EXIT_FAIL;
	}
	close(fd);
	fprintf(stderr, "convbi: dropped a torn last line (%zu bytes) from %s\n", size - keep, path);
	return EXIT_OK;
}

int outfile_open(struct outfile *f, const char *path, int truncate)
{
	memset(f, 0, sizeof *f);
	f->fd = -1;
	pthread_mutex_init(&f->mu, NULL);
	if (!path) {
		f->fd = STDOUT_FILENO;
	} else {
		f->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0644);
		if (f->fd < 0)
			return errno;
		f->own = 1;
	}
	struct stat st;
	f->sync = fstat(f->fd, &st) == 0 && S_ISREG(st.st_mode);
	return 0;
}

int outfile_write(struct outfile *f, const char *text, size_t len)
{
	pthread_mutex_lock(&f->mu);
	int rc = f->err;
	for (size_t off = 0; !rc && off < len;) {
		ssize_t n = write(f->fd, text + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			rc = n < 0 ? errno : EIO;
		else
			off += (size_t)n;
	}
	if (!rc && f->sync && fdatasync(f->fd) && errno != EINVAL)
		rc = errno;
	if (rc)
		f->err = rc;
	pthread_mutex_unlock(&f->mu);
	return rc;
}

void outfile_close(struct outfile *f)
{
	if (f->own && f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	pthread_mutex_destroy(&f->mu);
}
