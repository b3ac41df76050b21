/* testutil.h -- small helpers shared by convbi's tests and benchmarks:
 * scratch directories, whole-file reads and writes, file checksums, running
 * a child process with captured output, and substring checks.
 *
 * Everything is plain POSIX and independent of the library under test.
 * Strings returned by these functions are malloc'd and owned by the caller
 * (free them); NULL means failure and errno says why.
 */
#ifndef CONVBI_TESTS_TESTUTIL_H
#define CONVBI_TESTS_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Creates a fresh directory SCRATCH_DIR/<tag>-XXXXXX (creating SCRATCH_DIR
 * if needed) and returns its path, or NULL. */
char *tu_mkdtemp(const char *tag);

/* dir/name in a malloc'd string, or NULL when out of memory. */
char *tu_path(const char *dir, const char *name);

/* Removes path and everything under it (like rm -rf); 0, or -1 when some
 * entry could not be removed.  A missing path is success. */
int tu_rmtree(const char *path);

/* Writes text to path, replacing it; 0 or -1. */
int tu_write_file(const char *path, const char *text);

/* Reads the whole file into a NUL-terminated string; *len (if len is not
 * NULL) gets the byte count.  NULL when the file cannot be read. */
char *tu_read_file(const char *path, size_t *len);

/* The 64-bit FNV-1a hash of the file's bytes (offset basis
 * 0xcbf29ce484222325, prime 0x100000001b3); 0 when it cannot be read. */
uint64_t tu_file_checksum(const char *path);
/* Copies a file byte for byte; returns 0 or -1. */
int tu_copy_file(const char *from, const char *to);

/* Runs argv[0] (searched in PATH when it has no '/') with argv, feeding it
 * stdin_text (NULL: empty stdin) and capturing stdout and stderr into *out
 * and *err (either may be NULL to discard; on return they are malloc'd,
 * possibly empty strings).  Returns the exit status, 128+N if killed by
 * signal N, 127 if it could not be executed, or -1 when it ran past
 * timeout_ms (> 0) and was killed (what it printed is still returned) or
 * could not be started at all (no pipes, no fork). */
int tu_run(const char *const argv[], const char *stdin_text, char **out, char **err, int timeout_ms);

/* 1 when needle occurs in hay; 0 otherwise or when either is NULL. */
int tu_contains(const char *hay, const char *needle);

/* Monotonic milliseconds, for measuring durations in tests. */
int64_t tu_now_ms(void);
/* A TCP port on 127.0.0.1 free a moment ago (bound and released), or -1. */
int tu_free_port(void);

#endif
