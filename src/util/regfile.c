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

int regfile_read(const char *path, size_t max, char **out, size_t *len, mode_t *mode_out)
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
	if ((uint64_t)st.st_size > max) {  /* refused before reading a byte */
		close(fd);
		return EFBIG;
	}
	/* room for the size fstat gave, plus one byte to see a file growing */
	size_t cap = (size_t)st.st_size + 2, got = 0;
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
		ssize_t n = read(fd, data + got, cap - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = errno;
		else if (n == 0)
			break;
		else if ((got += (size_t)n) > max)
			rc = EFBIG;  /* it grew past the limit while we read */
	}
	close(fd);
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
