/* measure.c -- runs a command and reports what it used, for the shell
 * tests: wall time, peak resident memory, peak temporary disk and the
 * time its threads waited for a CPU (tests/support/measure.h).
 *
 * usage: measure TEMP_DIR REPORT -- COMMAND [ARG...]
 * The command runs with SQLITE_TMPDIR=TEMP_DIR (SQLite's temporary files
 * go there, and only open files under it count as temporary disk) and its
 * own stdin, stdout and stderr.  REPORT gets one line,
 *   wall_ms=N rss_kb=N temp_bytes=N wait_ms=N status=N
 * and measure exits with the command's status (128+N for signal N).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "measure.h"

int main(int argc, char **argv)
{
	if (argc < 5 || strcmp(argv[3], "--")) {
		fprintf(stderr, "usage: measure TEMP_DIR REPORT -- COMMAND [ARG...]\n");
		return 2;
	}
	if (setenv("SQLITE_TMPDIR", argv[1], 1))
		return 2;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return 2;
	if (pid == 0) {
		execvp(argv[4], argv + 4);
		perror(argv[4]);
		_exit(127);
	}
	struct tu_usage u;
	if (tu_watch(pid, argv[1], 0, &u))
		return 2;
	FILE *f = fopen(argv[2], "w");
	if (!f)
		return 2;
	fprintf(f, "wall_ms=%lld rss_kb=%lld temp_bytes=%lld wait_ms=%lld status=%d\n", (long long)u.wall_ms,
	        (long long)u.rss_peak_kb, (long long)u.temp_peak, (long long)u.wait_ms, u.status);
	fclose(f);
	return u.status;
}
