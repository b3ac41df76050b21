/* test_pg_spider.c -- Spider's gold queries on the PostgreSQL copies
 * (labels spider and pg).
 *
 * The "pg_spider" fixture loads every Spider dev database into a
 * throw-away cluster (tests/pg/sqlite2pg.sh, at test time).  Every gold
 * query runs through db_run on the SQLite file and on the PostgreSQL copy,
 * as the cluster's superuser.  A gold query PostgreSQL refuses (SQLite
 * dialect: GROUP BY leniency, double-quoted strings, ...) is counted, not
 * failed: it is not valid PostgreSQL.  Every query both accept must give
 * the same rows (as a multiset: Spider's execution match ignores order;
 * numbers compared to 6 significant digits, since avg() is numeric in
 * PostgreSQL and a double in SQLite), except where the two engines define
 * the result differently, which the test counts apart: LIKE is
 * case-sensitive in PostgreSQL and not in SQLite, and under ORDER BY ...
 * LIMIT the engines may keep different rows among ties, and NULLs sort
 * last in PostgreSQL but first in SQLite.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convbi/convbi.h"
#include "db/db.h"
#include "testutil.h"
#include "util/buf.h"

#define ENV_FILE SCRATCH_DIR "/pg-spider/env"
#define MAX_DBS 64

static char uri_base[512];

static void read_env(void)
{
	FILE *f = fopen(ENV_FILE, "r");
	if (!f)
		fail_msg("%s is missing: run with ctest (the pg_spider fixture loads the databases)", ENV_FILE);
	char line[1024];
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!strncmp(line, "PG_URI_BASE=", 12))
			snprintf(uri_base, sizeof uri_base, "%s", line + 12);
	}
	fclose(f);
}

struct pair {
	char id[128];
	struct db *lite, *pg;
};

static struct pair pairs[MAX_DBS];
static int npairs;

static struct pair *pair_of(const char *id)
{
	for (int i = 0; i < npairs; i++)
		if (!strcmp(pairs[i].id, id))
			return &pairs[i];
	assert_true(npairs < MAX_DBS);
	struct pair *p = &pairs[npairs++];
	snprintf(p->id, sizeof p->id, "%s", id);
	char path[1024], uri[1024];
	snprintf(path, sizeof path, "%s/database/%s/%s.sqlite", SPIDER_DIR, id, id);
	snprintf(uri, sizeof uri, "%s/%s", uri_base, id);
	struct err e = ERR_INIT;
	if (db_open(&p->lite, path, NULL, &e))
		p->lite = NULL;
	if (db_open(&p->pg, uri, NULL, &e))
		p->pg = NULL;
	return p;
}

/* One cell as comparable text: numbers to 6 significant digits. */
static void norm_cell(struct buf *b, const char *v)
{
	if (!v) {
		buf_puts(b, "<null>");
		return;
	}
	char *end;
	double d = strtod(v, &end);
	if (*v && end != v && !*end && !isspace((unsigned char)*v))
		buf_printf(b, "%.6g", d == 0 ? 0.0 : d);
	else
		buf_puts(b, v);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The rows as sorted, normalised lines joined by newlines. */
static char *rows_of(const struct table *t)
{
	char **lines = calloc((size_t)t->nrows + 1, sizeof *lines);
	for (int64_t r = 0; r < t->nrows; r++) {
		struct buf b = BUF_INIT;
		for (int c = 0; c < t->ncols; c++) {
			if (c)
				buf_putc(&b, '\x1f');
			norm_cell(&b, table_cell_type(t, r, c) == TABLE_NULL ? NULL : table_cell(t, r, c));
		}
		buf_putc(&b, '\0');
		lines[r] = buf_take(&b);
	}
	qsort(lines, (size_t)t->nrows, sizeof *lines, cmp_str);
	struct buf out = BUF_INIT;
	for (int64_t r = 0; r < t->nrows; r++) {
		buf_printf(&out, "%s\n", lines[r]);
		free(lines[r]);
	}
	free(lines);
	buf_putc(&out, '\0');
	return buf_take(&out);
}

static int contains_ci(const char *hay, const char *needle)
{
	return strcasestr(hay, needle) != NULL;
}

static void gold_queries_valid_in_postgresql_match_sqlite(void **state)
{
	read_env();
	char *text = tu_read_file(SPIDER_DIR "/dev_gold.sql", NULL);
	assert_non_null(text);
	struct exec_limits lim = EXEC_LIMITS_INIT;
	lim.row_cap = 100000;
	lim.result_max = 64 << 20;
	lim.cell_max = 0;
	lim.timeout_ms = 30000;
	int total = 0, no_db = 0, pg_refused = 0, gate_refused = 0, same = 0, explained = 0, differ = 0;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char *tab = strrchr(line, '\t');
		if (!tab)
			continue;
		*tab = '\0';
		line[strcspn(line, "\r")] = '\0';
		char *id = tab + 1;
		id[strcspn(id, "\r")] = '\0';
		total++;
		struct pair *p = pair_of(id);
		if (!p->lite || !p->pg) {
			no_db++; /* wta_1 ships without its database */
			continue;
		}
		struct table *a = NULL, *b = NULL;
		struct err ea = ERR_INIT, eb = ERR_INIT;
		if (db_run(p->lite, line, &lim, NULL, NULL, &a, &ea)) {
			no_db++; /* the gold query does not run on SQLite either */
			continue;
		}
		int rc = db_run(p->pg, line, &lim, NULL, NULL, &b, &eb);
		if (rc == CONVBI_EREJECTED) { /* the gate must accept every plain SELECT */
			gate_refused++;
			print_error("the gate refused %s: %s\n  %s\n", id, line, eb.msg);
			table_free(a);
			continue;
		}
		if (rc) {
			pg_refused++;
			if (getenv("PG_SPIDER_VERBOSE"))
				print_message("refused %s: %s\n", eb.msg, line);
			table_free(a);
			continue;
		}
		char *ra = rows_of(a), *rb = rows_of(b);
		if (!strcmp(ra, rb)) {
			same++;
		} else if (contains_ci(line, " like ") || (contains_ci(line, "order by") && contains_ci(line, "limit"))) {
			explained++;
		} else {
			differ++;
			print_error("%s: %s\n  sqlite: %.200s\n  postgresql: %.200s\n", id, line, ra, rb);
		}
		free(ra);
		free(rb);
		table_free(a);
		table_free(b);
	}
	print_message(
	        "%d gold queries: %d valid PostgreSQL, %d the same rows, %d differ where the engines define the "
	        "result differently (LIKE's case; ties and NULLs under ORDER BY ... LIMIT), %d refused by PostgreSQL, %d without a "
	        "database\n",
	        total, same + explained + differ, same, explained, pg_refused, no_db);
	for (int i = 0; i < npairs; i++) {
		db_close(pairs[i].lite);
		db_close(pairs[i].pg);
	}
	free(text);
	assert_int_equal(gate_refused, 0);
	assert_int_equal(differ, 0);
	/* most of Spider's gold SQL is portable (71 % when this was written) */
	assert_true(same + explained >= (total - no_db) * 2 / 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(gold_queries_valid_in_postgresql_match_sqlite),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
