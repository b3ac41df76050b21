/* test_vindex.c -- the value index (src/db/vindex.c) and what it adds to the
 * schema text: matched values ahead of samples, ranges, the cache's
 * location and invalidation, and that the user's database is never
 * written. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>
#include <sqlite3.h>

#include "convbi/convbi.h"
#include "db/schema.h"
#include "db/vindex.h"
#include "testutil.h"

struct fx {
	char *dir;
	char db[1024];
};

static void make_db(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* Stations: more than five names, so "Kursk-1" is no generic sample. */
static const char stations_sql[] =
        "CREATE TABLE region (id INTEGER PRIMARY KEY, name TEXT, country TEXT);"
        "INSERT INTO region VALUES (1, 'Alpha', 'Norway'), (2, 'Beta', 'Norway'), (3, 'Gamma', 'Sweden'),"
        " (4, 'Delta', 'Finland'), (5, 'Epsilon', 'Denmark'), (6, 'Zeta', 'Iceland'), (7, 'Eta', 'Japan'),"
        " (8, 'Theta', 'United States');"
        "CREATE TABLE station (id INTEGER PRIMARY KEY, region_id INTEGER REFERENCES region(id), name TEXT,"
        " code TEXT, opened DATE, power REAL, notes TEXT);"
        "INSERT INTO station VALUES (1, 1, 'Alta', 'A1', '1971-03-01', 120.5, NULL), (2, 1, 'Bodo', 'B2', '1980-06-30', 80, NULL),"
        " (3, 2, 'Cora', 'C3', '1999-01-01', 10, NULL), (4, 2, 'Dora', 'D4', '2001-12-31', 55, NULL),"
        " (5, 3, 'Edda', 'E5', '2010-05-05', 70, NULL), (6, 3, 'Fjord', 'F6', '2012-01-01', 90, NULL),"
        " (7, 4, 'Kursk-1', 'K7', '2015-07-07', 1000, NULL), (8, 4, 'Volvo Works', 'V8', '2020-02-02', 2.25, NULL);";

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	f->dir = tu_mkdtemp("vindex");
	char cache[1100];
	snprintf(cache, sizeof cache, "%s/cache", f->dir);
	setenv("XDG_CACHE_HOME", cache, 1);
	snprintf(f->db, sizeof f->db, "%s/stations.db", f->dir);
	make_db(f->db, stations_sql);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	tu_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static void open_both(struct fx *f, struct schema **s, struct vindex **v)
{
	struct err err = ERR_INIT;
	assert_int_equal(schema_load(s, f->db, &err), CONVBI_OK);
	assert_int_equal(vindex_open(v, f->db, *s, 1, NULL, NULL, &err), CONVBI_OK);
}

static int grounded_has(const struct ground *g, const char *column, const char *value)
{
	for (int i = 0; i < g->n; i++)
		if (!strcmp(g->v[i].column, column) && !strcmp(g->v[i].value, value))
			return 1;
	return 0;
}

static void index_lives_in_the_cache_dir_and_never_writes_the_database(void **state)
{
	struct fx *f = *state;
	uint64_t before = tu_file_checksum(f->db);
	struct stat st0, st1;
	assert_int_equal(stat(f->db, &st0), 0);
	struct schema *s = NULL;
	struct vindex *v = NULL;
	open_both(f, &s, &v);
	const struct vindex_info *i = vindex_info(v);
	char expect[1200];
	snprintf(expect, sizeof expect, "%s/cache/convbi/stations.db-", f->dir);
	assert_memory_equal(i->path, expect, strlen(expect));
	assert_true(i->built);
	assert_int_equal(access(i->path, R_OK), 0);
	/* name, region.name, region.country, code: keys and the all-NULL notes are not indexed */
	assert_int_equal(i->columns, 4);
	assert_int_equal(tu_file_checksum(f->db), before);
	assert_int_equal(stat(f->db, &st1), 0);
	assert_int_equal(st0.st_mtim.tv_sec, st1.st_mtim.tv_sec);
	assert_int_equal(st0.st_mtim.tv_nsec, st1.st_mtim.tv_nsec);
	vindex_close(v);
	schema_free(s);
}

static void a_fresh_index_is_reused_and_a_changed_database_rebuilds_it(void **state)
{
	struct fx *f = *state;
	struct schema *s = NULL;
	struct vindex *v = NULL;
	struct err err = ERR_INIT;
	open_both(f, &s, &v);
	vindex_close(v);
	assert_int_equal(vindex_open(&v, f->db, s, 0, NULL, NULL, &err), CONVBI_OK);
	assert_false(vindex_info(v)->built);
	vindex_close(v);
	schema_free(s);
	make_db(f->db, "CREATE TABLE extra (label TEXT); INSERT INTO extra VALUES ('Quokka');");
	assert_int_equal(schema_load(&s, f->db, &err), CONVBI_OK);
	assert_int_equal(vindex_open(&v, f->db, s, 0, NULL, NULL, &err), CONVBI_EIO);
	assert_non_null(strstr(err.msg, "convbi index --db"));
	assert_null(v);
	assert_int_equal(vindex_open(&v, f->db, s, 1, NULL, NULL, &err), CONVBI_OK);
	assert_true(vindex_info(v)->built);
	struct ground g = GROUND_INIT;
	assert_int_equal(vindex_match(v, s, "how many quokka labels", &g, &err), CONVBI_OK);
	assert_true(grounded_has(&g, "label", "Quokka"));
	ground_release(&g);
	vindex_close(v);
	schema_free(s);
}

static void question_spans_find_values_exactly_by_containment_and_fuzzily(void **state)
{
	struct fx *f = *state;
	struct schema *s = NULL;
	struct vindex *v = NULL;
	struct err err = ERR_INIT;
	open_both(f, &s, &v);
	struct ground g = GROUND_INIT;
	assert_int_equal(vindex_match(v, s, "which stations are in japan or the united states", &g, &err), CONVBI_OK);
	assert_true(grounded_has(&g, "country", "Japan"));         /* case-insensitive */
	assert_true(grounded_has(&g, "country", "United States")); /* a two-word span */
	ground_release(&g);
	assert_int_equal(vindex_match(v, s, "power of Kursk", &g, &err), CONVBI_OK);
	assert_true(grounded_has(&g, "name", "Kursk-1")); /* the stored value contains the span */
	ground_release(&g);
	assert_int_equal(vindex_match(v, s, "stations of the volvo works", &g, &err), CONVBI_OK);
	assert_true(grounded_has(&g, "name", "Volvo Works"));
	ground_release(&g);
	assert_int_equal(vindex_match(v, s, "stations in Finnland", &g, &err), CONVBI_OK);
	assert_true(grounded_has(&g, "country", "Finland")); /* a typo */
	ground_release(&g);
	/* a word naming the schema ("region", "name") fishes for nothing */
	assert_int_equal(vindex_match(v, s, "region name", &g, &err), CONVBI_OK);
	assert_int_equal(g.n, 0);
	ground_release(&g);
	vindex_close(v);
	schema_free(s);
}

/* The rows of every lookup are remembered: asking again, from several
 * threads at once, finds the same values in the same order. */
struct again {
	struct vindex *v;
	struct schema *s;
	const char *q;
	int same;
	struct ground first;
};

static void *ask_again(void *p)
{
	struct again *a = p;
	struct err err = ERR_INIT;
	a->same = 1;
	for (int k = 0; k < 50; k++) {
		struct ground g = GROUND_INIT;
		a->same &= vindex_match(a->v, a->s, a->q, &g, &err) == CONVBI_OK && g.n == a->first.n;
		for (int i = 0; a->same && i < g.n; i++)
			a->same &= !strcmp(g.v[i].table, a->first.v[i].table) && !strcmp(g.v[i].column, a->first.v[i].column) &&
			           !strcmp(g.v[i].value, a->first.v[i].value) && g.v[i].score == a->first.v[i].score;
		ground_release(&g);
	}
	return NULL;
}

static void a_question_asked_again_finds_the_same_values_from_any_thread(void **state)
{
	struct fx *f = *state;
	struct schema *s = NULL;
	struct vindex *v = NULL;
	struct err err = ERR_INIT;
	open_both(f, &s, &v);
	static const char *const qs[] = {"stations in Finnland or japan near the volvo works", "power of Kursk"};
	for (size_t k = 0; k < 2; k++) {
		struct again a[4];
		pthread_t t[4];
		struct ground first = GROUND_INIT;
		assert_int_equal(vindex_match(v, s, qs[k], &first, &err), CONVBI_OK);
		assert_true(first.n > 0);
		for (int i = 0; i < 4; i++) {
			a[i] = (struct again){v, s, qs[k], 0, first};
			assert_int_equal(pthread_create(&t[i], NULL, ask_again, &a[i]), 0);
		}
		for (int i = 0; i < 4; i++) {
			pthread_join(t[i], NULL);
			assert_true(a[i].same);
		}
		ground_release(&first);
	}
	vindex_close(v);
	schema_free(s);
}

static void schema_text_names_matched_values_ahead_of_samples_and_ranges(void **state)
{
	struct fx *f = *state;
	struct schema *s = NULL;
	struct vindex *v = NULL;
	struct err err = ERR_INIT;
	open_both(f, &s, &v);
	struct buf plain = BUF_INIT, grounded = BUF_INIT;
	struct ground g = GROUND_INIT;
	const char *q = "what is the power of Kursk-1";
	assert_int_equal(schema_render(&plain, s, q, 24000), CONVBI_OK);
	assert_null(strstr(buf_str(&plain), "Kursk-1")); /* not among the first five samples */
	assert_int_equal(vindex_match(v, s, q, &g, &err), CONVBI_OK);
	assert_int_equal(schema_render_grounded(&grounded, s, q, &g, 24000), CONVBI_OK);
	assert_non_null(strstr(buf_str(&grounded), "name: 'Kursk-1','Alta'"));
	/* ranges: numeric and date-like columns, not keys */
	assert_non_null(strstr(buf_str(&grounded), "power: 2.25..1000.0"));
	assert_non_null(strstr(buf_str(&grounded), "opened: '1971-03-01'..'2020-02-02'"));
	assert_null(strstr(buf_str(&grounded), "region_id: 1..4"));
	/* a budget too small for samples keeps the matched value */
	buf_release(&grounded);
	assert_int_equal(schema_render_grounded(&grounded, s, q, &g, 300), CONVBI_OK);
	assert_non_null(strstr(buf_str(&grounded), "'Kursk-1'"));
	assert_null(strstr(buf_str(&grounded), "'Alta'"));
	assert_true(grounded.len <= 300);
	ground_release(&g);
	buf_release(&plain);
	buf_release(&grounded);
	vindex_close(v);
	schema_free(s);
}

/* A big table (rowids spread over 2,000,000: the sampling threshold is a
 * span, not a count, so 10,000 rows make it) read three ways: `status` is
 * saturated in the sample, `kind` has an index and one rare value, and
 * `mixed` holds one value only once among the sampled rows, so it is
 * scanned. */
static void big_columns_are_read_through_an_index_or_a_saturated_sample(void **state)
{
	struct fx *f = *state;
	char path[1100];
	snprintf(path, sizeof path, "%s/big.db", f->dir);
	make_db(path,
	        "CREATE TABLE big (id INTEGER PRIMARY KEY, status TEXT, kind TEXT, mixed TEXT);"
	        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 10000)"
	        " INSERT INTO big SELECT i * 200, CASE i % 3 WHEN 0 THEN 'paid' WHEN 1 THEN 'shipped' ELSE 'returned' END,"
	        " CASE WHEN i = 6789 THEN 'k-rare' ELSE 'k-' || (i % 50) END,"
	        " CASE WHEN i = 11 THEN 'once' ELSE 'common' END FROM c;"
	        "INSERT INTO big VALUES (1, 'paid', x'00ff', 'common');"
	        "CREATE INDEX big_kind ON big(kind);");
	struct schema *s = NULL;
	struct vindex *v = NULL;
	struct err err = ERR_INIT;
	struct ground g = GROUND_INIT;
	assert_int_equal(schema_load(&s, path, &err), CONVBI_OK);
	assert_int_equal(vindex_open(&v, path, s, 1, NULL, NULL, &err), CONVBI_OK);
	const struct vindex_info *i = vindex_info(v);
	assert_int_equal(i->seeked, 1);  /* kind */
	assert_int_equal(i->sampled, 1); /* status; mixed has a value seen once */
	assert_false(i->partial);
	/* 3 statuses, 51 kinds (the BLOB is no text), 2 of mixed */
	assert_int_equal(i->values, 3 + 51 + 2);
	assert_int_equal(vindex_match(v, s, "orders of kind k-rare that were returned, once", &g, &err), CONVBI_OK);
	assert_true(grounded_has(&g, "kind", "k-rare"));
	assert_true(grounded_has(&g, "status", "returned"));
	assert_true(grounded_has(&g, "mixed", "once"));
	ground_release(&g);
	vindex_close(v);
	schema_free(s);
}

static void an_unwritable_cache_is_a_clear_error(void **state)
{
	struct fx *f = *state;
	struct schema *s = NULL;
	struct vindex *v = NULL;
	struct err err = ERR_INIT;
	char blocker[1100];
	snprintf(blocker, sizeof blocker, "%s/blocker", f->dir);
	assert_int_equal(tu_write_file(blocker, "not a directory"), 0);
	setenv("XDG_CACHE_HOME", blocker, 1);
	assert_int_equal(schema_load(&s, f->db, &err), CONVBI_OK);
	int rc = vindex_open(&v, f->db, s, 1, NULL, NULL, &err);
	assert_int_equal(rc, CONVBI_EIO);
	assert_non_null(strstr(err.msg, "XDG_CACHE_HOME"));
	assert_null(v);
	schema_free(s);
}

/* F16: a FIFO, a symbolic link or a file others can write at the cache
 * path is never opened (a FIFO would block the open forever) and a new
 * index takes its place. */
static void odd_files_at_the_cache_path_are_never_opened_and_are_replaced(void **state)
{
	struct fx *f = *state;
	struct schema *s = NULL;
	struct vindex *v = NULL;
	struct err err = ERR_INIT;
	open_both(f, &s, &v);
	char path[1200], target[1200];
	snprintf(path, sizeof path, "%s", vindex_info(v)->path);
	vindex_close(v);
	snprintf(target, sizeof target, "%s/elsewhere", f->dir);
	assert_int_equal(tu_write_file(target, "not an index"), 0);
	uint64_t target_sum = tu_file_checksum(target);
	for (int kind = 0; kind < 3; kind++) {
		assert_int_equal(unlink(path), 0);
		if (kind == 0)
			assert_int_equal(mkfifo(path, 0600), 0);
		else if (kind == 1)
			assert_int_equal(symlink(target, path), 0);
		else
			assert_int_equal(tu_copy_file(target, path) == 0 && chmod(path, 0666) == 0, 1);
		alarm(60); /* a blocked open ends the test here */
		assert_int_equal(vindex_open(&v, f->db, s, 1, NULL, NULL, &err), CONVBI_OK);
		alarm(0);
		assert_true(vindex_info(v)->built);
		vindex_close(v);
		struct stat st;
		assert_int_equal(lstat(path, &st), 0);
		assert_true(S_ISREG(st.st_mode));
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	assert_int_equal(tu_file_checksum(target), target_sum);
	schema_free(s);
}

/* F17: a cache folder others can write, or of another user, is not
 * trusted: no index, and the message names the fix. */
static void a_cache_folder_others_control_is_refused(void **state)
{
	struct fx *f = *state;
	struct schema *s = NULL;
	struct vindex *v = NULL;
	struct err err = ERR_INIT;
	open_both(f, &s, &v);
	char dir[1200];
	snprintf(dir, sizeof dir, "%s/cache/convbi", f->dir);
	struct stat st;
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	vindex_close(v);
	assert_int_equal(chmod(dir, 0777), 0);
	assert_int_equal(vindex_open(&v, f->db, s, 1, NULL, NULL, &err), CONVBI_EIO);
	assert_null(v);
	assert_non_null(strstr(err.msg, "can be written by other users"));
	assert_non_null(strstr(err.msg, "chmod 700"));
	assert_int_equal(chmod(dir, 0700), 0);
	if (geteuid() == 0) { /* only root can give a folder away */
		assert_int_equal(chown(dir, 65534, 65534), 0);
		assert_int_equal(vindex_open(&v, f->db, s, 1, NULL, NULL, &err), CONVBI_EIO);
		assert_null(v);
		assert_non_null(strstr(err.msg, "belongs to another user"));
		assert_non_null(strstr(err.msg, "XDG_CACHE_HOME"));
		assert_int_equal(chown(dir, 0, 0), 0);
	}
	assert_int_equal(vindex_open(&v, f->db, s, 1, NULL, NULL, &err), CONVBI_OK);
	vindex_close(v);
	schema_free(s);
}

/* F12: the folder that could not be made, and why, not the leaf's ENOENT. */
static void a_cache_folder_that_cannot_be_made_names_the_cause(void **state)
{
	struct fx *f = *state;
	struct schema *s = NULL;
	struct vindex *v = NULL;
	struct err err = ERR_INIT;
	char blocker[1100], xdg[1200];
	snprintf(blocker, sizeof blocker, "%s/blocker", f->dir);
	assert_int_equal(tu_write_file(blocker, "not a directory"), 0);
	snprintf(xdg, sizeof xdg, "%s/deeper", blocker);
	setenv("XDG_CACHE_HOME", xdg, 1);
	assert_int_equal(schema_load(&s, f->db, &err), CONVBI_OK);
	assert_int_equal(vindex_open(&v, f->db, s, 1, NULL, NULL, &err), CONVBI_EIO);
	assert_non_null(strstr(err.msg, "/blocker/deeper`: Not a directory"));
	assert_null(v);
	schema_free(s);
}

/* F7: a change that leaves the database's size and mtime alone -- a
 * same-size update with the mtime put back, or a WAL writer that stays
 * connected -- still makes the index stale. */
static void a_change_without_a_new_size_or_mtime_makes_the_index_stale(void **state)
{
	struct fx *f = *state;
	struct schema *s = NULL;
	struct vindex *v = NULL;
	struct err err = ERR_INIT;
	open_both(f, &s, &v);
	vindex_close(v);
	struct stat st0, st1;
	assert_int_equal(stat(f->db, &st0), 0);
	make_db(f->db, "UPDATE region SET country = 'Nerway' WHERE country = 'Norway'");
	struct timespec times[2] = {st0.st_atim, st0.st_mtim};
	assert_int_equal(utimensat(AT_FDCWD, f->db, times, 0), 0);
	assert_int_equal(stat(f->db, &st1), 0);
	assert_int_equal(st0.st_size, st1.st_size);
	assert_int_equal(vindex_open(&v, f->db, s, 0, NULL, NULL, &err), CONVBI_EIO);

	sqlite3 *w = NULL; /* a writer that stays connected: the row stays in -wal */
	assert_int_equal(sqlite3_open(f->db, &w), SQLITE_OK);
	assert_int_equal(sqlite3_exec(w, "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(vindex_open(&v, f->db, s, 1, NULL, NULL, &err), CONVBI_OK);
	vindex_close(v);
	assert_int_equal(stat(f->db, &st0), 0);
	assert_int_equal(sqlite3_exec(w, "INSERT INTO region VALUES (9, 'Iota', 'Walrusia')", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(stat(f->db, &st1), 0);
	assert_int_equal(st0.st_size, st1.st_size);
	assert_int_equal(vindex_open(&v, f->db, s, 0, NULL, NULL, &err), CONVBI_EIO);
	assert_int_equal(vindex_open(&v, f->db, s, 1, NULL, NULL, &err), CONVBI_OK);
	struct ground g = GROUND_INIT;
	assert_int_equal(vindex_match(v, s, "stations in walrusia", &g, &err), CONVBI_OK);
	assert_true(grounded_has(&g, "country", "Walrusia"));
	ground_release(&g);
	vindex_close(v);
	sqlite3_close(w);
	schema_free(s);
}

/* F14: a text cell far over the value cap is never loaded: the build's
 * memory does not grow with the biggest cell, and the column's short
 * values are still indexed. */
static void a_huge_cell_is_never_loaded(void **state)
{
	struct fx *f = *state;
	char path[1100];
	snprintf(path, sizeof path, "%s/huge.db", f->dir);
	make_db(path,
	        "CREATE TABLE h (id INTEGER PRIMARY KEY, t TEXT);"
	        "INSERT INTO h VALUES (1, replace(hex(zeroblob(16000000)), '0', 'Z'));"
	        "WITH RECURSIVE c(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM c WHERE i < 3000)"
	        " INSERT INTO h SELECT i, 'v' || (i % 37) FROM c;"
	        "INSERT INTO h VALUES (3001, replace(hex(zeroblob(1000000)), '0', 'Y'));");
	struct schema *s = NULL;
	struct vindex *v = NULL;
	struct err err = ERR_INIT;
	assert_int_equal(schema_load(&s, path, &err), CONVBI_OK);
	sqlite3_int64 used = 0, peak = 0;
	sqlite3_status64(SQLITE_STATUS_MEMORY_USED, &used, &peak, 1);
	assert_int_equal(vindex_open(&v, path, s, 1, NULL, NULL, &err), CONVBI_OK);
	sqlite3_status64(SQLITE_STATUS_MEMORY_USED, &used, &peak, 0);
	assert_int_equal(vindex_info(v)->values, 37);
	assert_true(peak < (sqlite3_int64)12 << 20); /* the 32 MB cell, loaded, would pass it at once */
	vindex_close(v);
	schema_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(index_lives_in_the_cache_dir_and_never_writes_the_database, setup, teardown),
	        cmocka_unit_test_setup_teardown(a_fresh_index_is_reused_and_a_changed_database_rebuilds_it, setup, teardown),
	        cmocka_unit_test_setup_teardown(question_spans_find_values_exactly_by_containment_and_fuzzily, setup, teardown),
	        cmocka_unit_test_setup_teardown(a_question_asked_again_finds_the_same_values_from_any_thread, setup, teardown),
	        cmocka_unit_test_setup_teardown(schema_text_names_matched_values_ahead_of_samples_and_ranges, setup, teardown),
	        cmocka_unit_test_setup_teardown(big_columns_are_read_through_an_index_or_a_saturated_sample, setup, teardown),
	        cmocka_unit_test_setup_teardown(an_unwritable_cache_is_a_clear_error, setup, teardown),
	        cmocka_unit_test_setup_teardown(odd_files_at_the_cache_path_are_never_opened_and_are_replaced, setup, teardown),
	        cmocka_unit_test_setup_teardown(a_cache_folder_others_control_is_refused, setup, teardown),
	        cmocka_unit_test_setup_teardown(a_cache_folder_that_cannot_be_made_names_the_cause, setup, teardown),
	        cmocka_unit_test_setup_teardown(a_change_without_a_new_size_or_mtime_makes_the_index_stale, setup, teardown),
	        cmocka_unit_test_setup_teardown(a_huge_cell_is_never_loaded, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
