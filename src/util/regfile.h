/* regfile.h -- opening and reading a path that must be a regular file.
 *
 * Every file convbi reads as a whole (the config, prompt templates) goes
 * through here so that a FIFO, a device, a socket or a directory named by
 * mistake is refused with one clear line instead of hanging on open() or
 * read(), and so that a reader stops at its byte limit without reading
 * further: the size is checked with fstat before any byte is read, and
 * the read itself never takes more than limit + 1 bytes (a file growing
 * under us is caught too).
 */
#ifndef CONVBI_UTIL_REGFILE_H
#define CONVBI_UTIL_REGFILE_H

#include <stddef.h>
#include <sys/types.h>

/* Returned instead of an errno value when the path exists but is not a
 * regular file (negative, so it never collides with an errno). */
#define REGFILE_NOT_REGULAR (-1)
/* Returned by regfile_read_lines when a line is longer than its limit. */
#define REGFILE_LONG_LINE (-2)

/* Opens path read-only (O_CLOEXEC, O_NONBLOCK so that a FIFO never blocks
 * the open) and checks that it is a regular file.  Returns 0 and *fd_out,
 * an errno value from open/fstat, or REGFILE_NOT_REGULAR (*mode_out then
 * says what it is; mode_out may be NULL). */
int regfile_open(const char *path, int *fd_out, mode_t *mode_out);

/* Reads the regular file path whole into a NUL-terminated buffer the
 * caller frees (*out, *len).  Returns 0; an errno value; EFBIG when it is
 * larger than max bytes (nothing beyond max + 1 bytes is ever read); or
 * REGFILE_NOT_REGULAR with *mode_out set (mode_out may be NULL). */
int regfile_read(const char *path, size_t max, char **out, size_t *len, mode_t *mode_out);

/* As regfile_read, for a file of lines: the bytes are scanned as they are
 * read, and the first line longer than line_max bytes stops the read with
 * REGFILE_LONG_LINE and its 1-based number in *long_line; nothing more
 * than line_max + 64 KiB of that line is read, however long it is. */
int regfile_read_lines(const char *path, size_t max, size_t line_max, char **out, size_t *len, mode_t *mode_out, long *long_line);

/* What a non-regular file is, for messages: "a FIFO (named pipe)",
 * "a directory", "a character device", "a block device", "a socket",
 * "not a regular file". */
const char *regfile_kind(mode_t mode);

/* A short reason for a regfile_open/regfile_read failure e, for messages:
 * "a FIFO (named pipe), not a regular file" (regfile_kind(mode)) for
 * REGFILE_NOT_REGULAR, "larger than the limit" for EFBIG, else strerror(e).
 * The text lives until the calling thread's next call. */
const char *regfile_strerror(int e, mode_t mode);

#endif
