/* fuzz_limits.c -- random SQL through the gate stays within its time,
 * memory and disk bounds.
 *
 * An input whose first byte is odd is raw SQL (the rest of the bytes);
 * otherwise its bytes are the choices of the hostile statement generator
 * (tests/support/sqlgen.h), so that the fuzzer explores combinations of
 * expensive functions, sizes and clauses instead of mostly syntax errors.
 * Every statement runs under a FUZZ_TIMEOUT_MS deadline and FUZZ_MEM_MAX /
 * FUZZ_TEMP_MAX budgets on the sqlgen fixture database, and is measured as
 * in tests/unit/test_limits.c, from the process (measure.h):
 *   time    exec_run returns within the deadline + LATE_MS, not counting
 *           the run-queue delay after the deadline;
 *   memory  the peak resident set (VmHWM, reset before each run) grows by
 *           at most the budget + the allowance of an instrumented build
 *           (ASan's quarantine and shadow memory);
 *   disk    the temporary files sampled from /proc/self/fd stay within
 *           the budget;
 * and a failure has a one-line message.  A bound exceeded aborts (the
 * fuzzer keeps the input).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "convbi/convbi.h"
#include "db/exec.h"
#include "db/guard.h"
#include "db/table.h"
#include "measure.h"
#include "sqlgen.h"

#define FUZZ_TIMEOUT_MS 200
#define FUZZ_MEM_MAX ((int64_t)32 << 20)
#define FUZZ_TEMP_MAX ((int64_t)32 << 20)
#define LATE_MS 300                        /* past the deadline: 100 ms, x3 for ASan + coverage */
#define MEM_ALLOWANCE ((int64_t)256 << 20) /* ASan keeps freed memory (quarantine) and shadow */
#define TEMP_SLACK ((int64_t)1 << 20)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char tmp_dir[256];
static struct exec *x;
static char sql[SQLGEN_SQL_MAX];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	char dir[] = "/tmp/convbi-fuzz-limits.XXXXXX";
	if (!mkdtemp(dir))
		abort();
	snprintf(tmp_dir, sizeof tmp_dir, "%s/tmp", dir);
	if (mkdir(tmp_dir, 0700) || setenv("SQLITE_TMPDIR", tmp_dir, 1))
		abort();
	char db_path[300];
	snprintf(db_path, sizeof db_path, "%s/heavy.db", dir);
	sqlite3 *db = NULL;
	if (sqlite3_open(db_path, &db) != SQLITE_OK || sqlgen_fixture(db) != SQLITE_OK)
		abort();
	sqlite3_close(db);
	struct err err = ERR_INIT;
	if (exec_open(&x, db_path, &err))
		abort();
	return 0;
}

/* One line naming the bound and the statement, then abort: the fuzzer
 * keeps the input. */
static void exceeded(const char *what, long long value, long long bound, const char *msg)
{
	fprintf(stderr, "bound exceeded: %s = %lld, over %lld (%s)\nSQL: %.4000s\n", what, value, bound, msg, sql);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > SQLGEN_SQL_MAX - 1)
		return 0;
	if (size && (data[0] & 1)) {
		memcpy(sql, data + 1, size - 1);
		sql[size - 1] = '\0';
	} else {
		struct sqlgen g;
		sqlgen_bytes(&g, data, size);
		sqlgen_select(&g, sql);
	}
	struct exec_limits lim = {FUZZ_TIMEOUT_MS, 100, 1000, 64 * 1024, FUZZ_MEM_MAX, FUZZ_TEMP_MAX, 0};
	struct table *t = NULL;
	struct err err = ERR_INIT;

	if (tu_rss_peak_reset() || tu_sampler_start(tmp_dir) || tu_deadline_start(FUZZ_TIMEOUT_MS))
		abort();
	int64_t rss0 = tu_rss_kb(), t0 = tu_mono_ms();
	int rc = exec_run(x, sql, &lim, NULL, NULL, &t, &err);
	int64_t elapsed = tu_mono_ms() - t0;
	int64_t wait = tu_deadline_wait_ms();
	int64_t temp = tu_sampler_stop();
	int64_t rss = (tu_rss_peak_kb() - rss0) * 1024;
	table_free(t);

	if (elapsed - wait > FUZZ_TIMEOUT_MS + LATE_MS)
		exceeded("milliseconds past the start, less the CPU wait after the deadline", elapsed - wait,
		         FUZZ_TIMEOUT_MS + LATE_MS, err.msg);
	if (rss > FUZZ_MEM_MAX + MEM_ALLOWANCE)
		exceeded("bytes of peak RSS growth", rss, FUZZ_MEM_MAX + MEM_ALLOWANCE, err.msg);
	if (temp > FUZZ_TEMP_MAX + TEMP_SLACK)
		exceeded("bytes of temporary files", temp, FUZZ_TEMP_MAX + TEMP_SLACK, err.msg);
	if (rc && (!err.msg[0] || strchr(err.msg, '\n')))
		exceeded("lines in the message", err.msg[0] ? 2 : 0, 1, err.msg);
	if (rc == CONVBI_ENOMEM || rc == CONVBI_EDB)
		exceeded("a bound surfaced as ENOMEM or EDB", rc, 0, err.msg);
	return 0;
}
