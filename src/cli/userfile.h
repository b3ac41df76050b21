/* userfile.h -- the files of the user's a command never writes over, and
 * the one way the CLI writes a result file.
 *
 * Every output path (ask/batch/eval --out, the REPL's .output and .once)
 * is first checked with userfile_check(): an existing file that is one of
 * the run's inputs -- the database, the endpoint configuration, a prompt
 * template, the business notes, the examples file, the REPL's history
 * file, INPUT or a database a batch line names -- is refused, compared by
 * device and inode so that links, symbolic links and "./x" versus "x" are
 * caught alike.  A directory, a block device and any existing SQLite
 * database are refused too: rows never go over a database, ours or not.
 *
 * struct resfile then writes the result aside (PATH.tmp<pid>.<n>, created
 * exclusively beside PATH) and renames it over PATH only once the first
 * result was written whole (resfile_commit), so a question that fails, a
 * full disk or a Ctrl-C leaves an existing PATH byte for byte as it was.
 * After the commit later results are appended to the same file (the
 * REPL's .output).  A path that exists and is not a regular file (a FIFO,
 * /dev/null, /dev/stdout) is written in place: there is nothing to lose.
 */
#ifndef CONVBI_CLI_USERFILE_H
#define CONVBI_CLI_USERFILE_H

#include <stdio.h>
#include <sys/types.h>

#include "cli/cli.h"

/* One more file the run reads, with what to call it in the message. */
struct userfile_input {
	const char *path; /* borrowed; NULL entries are skipped */
	const char *what; /* "INPUT", "a database named by INPUT" */
};

/* NULL when path may be written, else what it is ("the database (--db)",
 * "the endpoint configuration", "a SQLite database", ...).  db is the
 * database the run opens (NULL: o->db or the default); more lists other
 * inputs (n entries, may be NULL). */
const char *userfile_what(const char *path, const struct cli_opts *o, const char *db, const struct userfile_input *more, int n);

/* userfile_what, said as one line: "FLAG PATH is WHAT; convbi would
 * overwrite it: write the results to another file".  Returns EXIT_OK or
 * EXIT_USAGE after printing that line. */
int userfile_check(const char *flag, const char *path, const struct cli_opts *o, const char *db,
                   const struct userfile_input *more, int n);

/* NULL when path may be the REPL's history file: it does not exist, or
 * it is a regular text file (libedit's "_HiStOrY_V2_" format or plain
 * lines: UTF-8, no NUL byte, at most CLI_HISTORY_MAX_BYTES) that is none
 * of the run's inputs.  Else what it is ("a SQLite database", "a FIFO
 * (named pipe)", "the endpoint configuration", ...). */
const char *userfile_history_what(const char *path, const struct cli_opts *o, const char *db);

/* ---- a result file written aside -------------------------------------------- */

struct resfile {
	char *path;    /* owned: where the result goes (a symbolic link resolved) */
	char *tmp;     /* owned: the file written aside; NULL once renamed or in place */
	FILE *f;       /* owned: the open file */
	int committed; /* path holds what was written (renamed, or written in place) */
};

/* Opens the file written aside for path (keeping an existing file's
 * mode); nothing at path changes yet.  Returns 0, or an errno value (the
 * caller names the path). */
int resfile_open(struct resfile *r, const char *path);
/* Flushes what was written and, the first time, renames it over path.
 * Returns 0 or an errno value (the file is then left as it was). */
int resfile_commit(struct resfile *r);
/* Closes the file; what was never committed is removed, so path is left
 * as it was.  Returns 0 or the errno of a failed close.  Accepts a
 * zeroed struct. */
int resfile_close(struct resfile *r);

/* Writes len bytes to path whole or not at all (aside, then renamed).
 * Returns 0 or an errno value. */
int resfile_write_whole(const char *path, const char *data, size_t len);

#endif
