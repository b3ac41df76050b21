/* regfile.c -- opening and reading regular files only (see regfile.h).
 *
 * The trap this file exists for: open(2) on a FIFO without O_NONBLOCK
 * blocks until a writer appears, and read(2) on a character device may
 * never end.  Opening with O_NONBLOCK and checking fstat before the first
 * read avoids both; O_NONBLOCK has no effect on regular files.
 */
#include "util/regfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/alloc.h"

const char *regfile_kind(mode_t mode)
{
	if (S_ISFIFO(mode))
		return "a FIFO (named pipe)";
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISSOCK(mode))
		return "a socket";
	return "not a regular file";
}

const char *regfile_strerror(int e, mode_t mode)
{
	static _Thread_local char why[64];
	if (e == REGFILE_NOT_REGULAR) {
		snprintf(why, sizeof why, "%s, not a regular file", regfile_kind(mode));
		return why;
	}
	if (e == EFBIG)
		return "larger than the limit";
	return strerror(e);
}

int regfile_open(const char *path, int *fd_out, mode_t *mode_out)
{
	struct stat st;
	*fd_out = -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		/* a socket cannot be opened at all: still name it */
		if (e == ENXIO && stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
			if (mode_out)
				*mode_out = st.st_mode;
			return REGFILE_NOT_REGULAR;
		}
		return e;
	}
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return e;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		if (mode_out)
			*mode_out = st.st_mode;
		return REGFILE_NOT_REGULAR;
	}
	*fd_out = fd;
	return 0;
}

/* Reads fd to its end into *out (NUL-terminated), at most max bytes, the
 * buffer first sized for size bytes.  With line_max > 0 the bytes are
 * read in READ_CHUNK pieces and scanned as they come: the first line
 * longer than line_max stops the read (REGFILE_LONG_LINE, its number in
 * *long_line), so no more than line_max + READ_CHUNK bytes of it are read. */
#define READ_CHUNK ((size_t)64 << 10)
static int read_fd(int fd, size_t size, size_t max, size_t line_max, char **out, size_t *len, long *long_line)
{
	int rc = 0;
	/* room for what fstat gave, plus one byte to see a file growing; a
	 * line-limited read starts small: it may stop early */
	size_t cap = line_max && size + 2 > READ_CHUNK ? READ_CHUNK : size + 2, got = 0;
	size_t line_len = 0;
	long line = 1;
	char *data = xmalloc(cap);
	while (data && !rc) {
		if (got + 1 >= cap) {
			size_t next = cap > max / 2 ? max + 2 : cap * 2;
			char *p = next > cap ? xrealloc(data, next) : NULL;
			if (!p) {
				rc = next > cap ? ENOMEM : EFBIG;
				break;
			}
			data = p;
			cap = next;
		}
		size_t want = cap - 1 - got;
		if (line_max && want > READ_CHUNK)
			want = READ_CHUNK;
		ssize_t n = read(fd, data + got, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = errno;
		} else if (n == 0) {
			break;
		} else {
			for (size_t i = got; line_max && i < got + (size_t)n && !rc; i++) {
				if (data[i] == '\n') {
					line++;
					line_len = 0;
				} else if (++line_len > line_max) {
					*long_line = line;
					rc = REGFILE_LONG_LINE;
				}
			}
			if ((got += (size_t)n) > max && !rc)
				rc = EFBIG; /* it grew past the limit while we read */
		}
	}
	if (!data)
		rc = ENOMEM;
	if (rc) {
		free(data);
		return rc;
	}
	data[got] = '\0';
	*out = data;
	*len = got;
	return 0;
}

int regfile_read_lines(const char *path, size_t max, size_t line_max, char **out, size_t *len, mode_t *mode_out, long *long_line)
{
	int fd;
	struct stat st;
	*out = NULL;
	*len = 0;
	int rc = regfile_open(path, &fd, mode_out);
	if (rc)
		return rc;
	if (fstat(fd, &st) != 0) {
		rc = errno;
		close(fd);
		return rc;
	}
	if ((uint64_t)st.st_size > max) { /* refused before reading a byte */
		close(fd);
		return EFBIG;
	}
	rc = read_fd(fd, (size_t)st.st_size, max, line_max, out, len, long_line);
	close(fd);
	return rc;
}

int regfile_read(const char *path, size_t max, char **out, size_t *len, mode_t *mode_out)
{
	return regfile_read_lines(path, max, 0, out, len, mode_out, NULL);
}
