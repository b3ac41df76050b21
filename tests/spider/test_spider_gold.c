/* test_spider_gold.c -- every Spider 1.0 dev gold query passes the SQL gate
 * and runs (src/db/guard.c, exec.c) on its own database (label `spider`;
 * CONVBI_SPIDER_DIR).  The wta_1 database ships without its .sqlite file,
 * so 972 of the 1,034 gold lines have a database to run on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "convbi/convbi.h"
#include "db/exec.h"
#include "db/guard.h"
#include "testutil.h"

#define GOLD SPIDER_DIR "/dev_gold.sql"
#define GOLD_LINES 1034
#define GOLD_WITH_DATABASE 972 /* wta_1 ships without its .sqlite (README.md) */

static struct exec *open_exec(const char *path)
{
	struct exec *x = NULL;
	struct err e = ERR_INIT;
	int rc = exec_open(&x, path, &e);
	if (rc)
		fail_msg("exec_open(%s): %s", path, e.msg);
	return x;
}

/* ---- Spider gold ---------------------------------------------------------------- */

static void every_spider_gold_query_passes_the_gate_and_runs(void **state)
{
	(void)state;
	char *text = tu_read_file(GOLD, NULL);
	assert_non_null(text);
	struct {
		char id[64];
		struct exec *x;
	} open[32];
	int nopen = 0, lines = 0, available = 0, accepted = 0, runnable = 0;
	struct exec_limits lim = EXEC_LIMITS_INIT;

	for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char *tab = strrchr(l, '\t');
		assert_non_null(tab);
		*tab = '\0';
		const char *db_id = tab + 1;
		lines++;
		struct exec *x = NULL;
		for (int i = 0; i < nopen && !x; i++)
			if (!strcmp(open[i].id, db_id))
				x = open[i].x;
		if (!x) {
			char path[4096];
			snprintf(path, sizeof path, "%s/database/%s/%s.sqlite", SPIDER_DIR, db_id, db_id);
			struct stat st;
			if (stat(path, &st) != 0)
				continue;
			assert_true(nopen < 32);
			x = open_exec(path);
			snprintf(open[nopen].id, sizeof open[nopen].id, "%s", db_id);
			open[nopen++].x = x;
		}
		available++;
		struct err e = ERR_INIT;
		int rc = guard_check(x, l, &e);
		if (rc) {
			print_error("refused (%s): %s -> %s %s\n", db_id, l, convbi_errname(rc), e.msg);
			continue;
		}
		accepted++;
		struct table *t = NULL;
		rc = exec_run(x, l, &lim, NULL, NULL, &t, &e);
		if (rc)
			print_error("failed (%s): %s -> %s %s\n", db_id, l, convbi_errname(rc), e.msg);
		else
			runnable++;
		table_free(t);
	}
	for (int i = 0; i < nopen; i++)
		exec_close(open[i].x);
	free(text);
	print_message("spider gold: %d lines, %d with a database, %d accepted by the gate, %d ran\n", lines, available, accepted,
	              runnable);
	assert_int_equal(lines, GOLD_LINES);
	assert_int_equal(available, GOLD_WITH_DATABASE);
	assert_int_equal(accepted, available);
	assert_int_equal(runnable, available);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(every_spider_gold_query_passes_the_gate_and_runs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
