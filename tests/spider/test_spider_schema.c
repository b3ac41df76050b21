/* test_spider_schema.c -- schema introspection and budgeted rendering
 * over the Spider 1.0 dev set (label `spider`; CONVBI_SPIDER_DIR).
 *
 * Every dev database loads, with exactly the tables and columns
 * tables.json lists; and for every dev question, rendering under a budget
 * far smaller than the schema keeps the tables its gold query uses
 * (measured as recall, with a floor) while staying within the budget and
 * naming what it left out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "convbi/convbi.h"
#include "db/schema.h"
#include "testutil.h"

#define DATABASES SPIDER_DIR "/database"
#define RECALL_FLOOR 0.95 /* share of gold-query tables kept when they could fit */
#define BUDGET_SHARE 0.4

static struct schema *load(const char *path)
{
	struct schema *s = NULL;
	struct err e = ERR_INIT;
	if (schema_load(&s, path, &e))
		fail_msg("schema_load(%s): %s", path, e.msg);
	return s;
}

static char *render(const struct schema *s, const char *question, size_t budget)
{
	struct buf b = BUF_INIT;
	assert_int_equal(schema_render(&b, s, question, budget), CONVBI_OK);
	assert_true(b.len <= budget);
	return buf_take(&b);
}

static cJSON *read_json(const char *path)
{
	char *text = tu_read_file(path, NULL);
	assert_non_null(text);
	cJSON *j = cJSON_Parse(text);
	free(text);
	assert_non_null(j);
	return j;
}

static const cJSON *spider_entry(const cJSON *tables, const char *db_id)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, tables)
	{
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "db_id");
		if (cJSON_IsString(id) && !strcmp(id->valuestring, db_id))
			return e;
	}
	return NULL;
}

/* ---- Spider --------------------------------------------------------------------- */

static void every_spider_database_loads_with_the_tables_and_columns_tables_json_lists(void **state)
{
	(void)state;
	cJSON *tables = read_json(SPIDER_DIR "/tables.json");
	DIR *d = opendir(DATABASES);
	assert_non_null(d);
	struct dirent *de;
	int loaded = 0;
	while ((de = readdir(d)) != NULL) {
		char path[4096];
		struct stat st;
		snprintf(path, sizeof path, "%s/%s/%s.sqlite", DATABASES, de->d_name, de->d_name);
		if (de->d_name[0] == '.' || stat(path, &st) != 0)
			continue;
		struct schema *s = load(path);
		const cJSON *entry = spider_entry(tables, de->d_name);
		assert_non_null(entry);
		const cJSON *names = cJSON_GetObjectItemCaseSensitive(entry, "table_names_original");
		const cJSON *cols = cJSON_GetObjectItemCaseSensitive(entry, "column_names_original");
		int ntables = cJSON_GetArraySize(names), listed = 0;
		for (int i = 0; i < ntables; i++) {
			const char *name = cJSON_GetArrayItem(names, i)->valuestring;
			if (!strncmp(name, "sqlite_", 7)) { /* world_1 lists sqlite_sequence: internal, left out */
				assert_null(schema_find(s, name));
				continue;
			}
			listed++;
			const struct schema_table *t = schema_find(s, name);
			if (!t)
				fail_msg("%s: table %s is missing", de->d_name, name);
			int want = 0;
			const cJSON *c;
			cJSON_ArrayForEach(c, cols) want += cJSON_GetArrayItem(c, 0)->valueint == i;
			if (t->ncols != want)
				fail_msg("%s.%s: %d columns, tables.json lists %d", de->d_name, name, t->ncols, want);
			assert_true(t->rows >= 0 && !t->rows_cut);
		}
		if ((int)schema_table_count(s) != listed)
			fail_msg("%s: %zu tables loaded, tables.json lists %d", de->d_name, schema_table_count(s), listed);
		char *text = render(s, NULL, 1 << 20);
		assert_null(strstr(text, "-- omitted"));
		free(text);
		schema_free(s);
		loaded++;
	}
	closedir(d);
	cJSON_Delete(tables);
	print_message("spider: %d databases loaded\n", loaded);
	assert_int_equal(loaded, 19);
}

/* 1 when word occurs in sql as a whole identifier (ASCII case-insensitive). */
static int uses_word(const char *sql, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = sql; (p = strcasestr(p, word)) != NULL; p++) {
		int before = p > sql && (isalnum((unsigned char)p[-1]) || p[-1] == '_');
		int after = isalnum((unsigned char)p[n]) || p[n] == '_';
		if (!before && !after)
			return 1;
	}
	return 0;
}

/* 1 when the rendered text shows table `name` as a CREATE line. */
static int shows_table(const char *text, const char *name)
{
	char a[300], b[300];
	snprintf(a, sizeof a, "CREATE TABLE %s (", name);
	snprintf(b, sizeof b, "CREATE TABLE \"%s\" (", name);
	return strcasestr(text, a) || strcasestr(text, b);
}

static void a_small_budget_keeps_the_tables_each_spider_question_needs(void **state)
{
	(void)state;
	cJSON *dev = read_json(SPIDER_DIR "/dev.json");
	struct {
		char id[64];
		struct schema *s;
		size_t full;
	} cache[32];
	int ncache = 0, questions = 0, squeezed = 0, feasible = 0;
	long needed = 0, kept = 0;
	const cJSON *q;
	cJSON_ArrayForEach(q, dev)
	{
		const char *db_id = cJSON_GetObjectItemCaseSensitive(q, "db_id")->valuestring;
		const char *question = cJSON_GetObjectItemCaseSensitive(q, "question")->valuestring;
		const char *sql = cJSON_GetObjectItemCaseSensitive(q, "query")->valuestring;
		int k = -1;
		for (int i = 0; i < ncache; i++)
			if (!strcmp(cache[i].id, db_id))
				k = i;
		if (k < 0) {
			char path[4096];
			struct stat st;
			snprintf(path, sizeof path, "%s/%s/%s.sqlite", DATABASES, db_id, db_id);
			if (stat(path, &st) != 0)
				continue;
			assert_true(ncache < 32);
			k = ncache++;
			snprintf(cache[k].id, sizeof cache[k].id, "%s", db_id);
			cache[k].s = load(path);
			char *all = render(cache[k].s, NULL, 1 << 20);
			cache[k].full = strlen(all);
			free(all);
		}
		const struct schema *s = cache[k].s;
		if (s->ntables < 3)
			continue; /* nothing to choose between */
		size_t budget = (size_t)(cache[k].full * BUDGET_SHARE);
		char *text = render(s, question, budget);
		questions++;
		if (!strstr(text, "-- omitted")) { /* everything fit: nothing to judge */
			free(text);
			continue;
		}
		squeezed++;
		/* judge only when the gold tables could fit with the omitted line */
		size_t gold_bytes = 60;
		for (size_t t = 0; t < s->ntables; t++) {
			struct buf line = BUF_INIT;
			assert_int_equal(schema_render_table(&line, &s->tables[t], 0), CONVBI_OK);
			if (uses_word(sql, s->tables[t].name))
				gold_bytes += line.len;
			buf_release(&line);
		}
		if (gold_bytes > budget) {
			free(text);
			continue;
		}
		feasible++;
		for (size_t t = 0; t < s->ntables; t++) {
			if (!uses_word(sql, s->tables[t].name))
				continue;
			needed++;
			kept += shows_table(text, s->tables[t].name);
		}
		free(text);
	}
	for (int i = 0; i < ncache; i++)
		schema_free(cache[i].s);
	cJSON_Delete(dev);
	double recall = needed ? (double)kept / needed : 0;
	print_message(
	        "schema budget: %d questions, %d rendered with tables omitted, %d of them with room for "
	        "their gold tables; there %ld of %ld gold tables kept (recall %.3f)\n",
	        questions, squeezed, feasible, kept, needed, recall);
	assert_true(squeezed > questions / 2);
	assert_true(feasible > questions / 2);
	assert_true(recall >= RECALL_FLOOR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(every_spider_database_loads_with_the_tables_and_columns_tables_json_lists),
	        cmocka_unit_test(a_small_budget_keeps_the_tables_each_spider_question_needs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
