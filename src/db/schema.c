/* schema.c -- loading a database's schema (see schema.h); rendering is in
 * schema_render.c.
 *
 * Everything is read through SQLite itself: sqlite_schema for the list of
 * objects, the pragma_table_info and pragma_foreign_key_list table-valued
 * functions (bound by parameter, never by string pasting), and plain
 * SELECTs for counts and samples, with identifiers double-quoted.  A
 * progress handler stops any of our queries at its deadline; a stopped
 * count keeps what it had counted, a stopped sample keeps the values found.
 * A broken view (one naming a missing table) is kept with no columns
 * rather than failing the load.
 */
#include "db/schema.h"

#include <stdlib.h>
#include <string.h>

#include "convbi/convbi.h"
#include "db/exec.h"
#include "db/ro.h"
#include "db/sqltext.h"
#include "db/text.h"
#include "db/views.h"
#include "util/alloc.h"
#include "util/clock.h"

/* The counting/sampling budgets count the loading thread's CPU time, so
 * that a loaded machine (the thread waiting for a core) reads the same
 * counts, samples and ranges -- the same schema text, the same prompt -- as
 * a quiet one; a read waiting on a slow disk spends no CPU, so each budget
 * also ends after SCHEMA_WALL_FACTOR times its length in wall time. */
#define SCHEMA_WALL_FACTOR 4

struct loader {
	sqlite3 *db;
	struct views *views;      /* owned: view weights */
	int64_t deadline_ms;      /* for the query being run, in CPU time */
	int64_t end_ms;           /* end of the whole counting/sampling budget, in CPU time */
	int64_t wall_deadline_ms; /* the same two in wall (monotonic) time */
	int64_t wall_end_ms;
};

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static int64_t work_ms(void)
{
	return clock_thread_cpu_ns() / 1000000;
}

/* 1 when the whole budget is spent. */
static int loader_spent(const struct loader *l)
{
	return work_ms() >= l->end_ms || clock_mono_ms() >= l->wall_end_ms;
}

/* The next query may take budget_ms (within what is left of the whole). */
static void loader_allow(struct loader *l, int64_t budget_ms)
{
	l->deadline_ms = min64(work_ms() + budget_ms, l->end_ms);
	l->wall_deadline_ms = min64(clock_mono_ms() + budget_ms * SCHEMA_WALL_FACTOR, l->wall_end_ms);
}

static int on_progress(void *p)
{
	struct loader *l = p;
	return work_ms() >= l->deadline_ms || clock_mono_ms() >= l->wall_deadline_ms;
}

/* A repaired, owned copy of SQLite text (NULL in, "" out), or NULL on ENOMEM. */
static char *dup_text(const unsigned char *s, size_t len)
{
	struct buf b = BUF_INIT;
	if (text_add_utf8(&b, s ? (const char *)s : "", s ? len : 0))
		return NULL;
	return buf_take(&b);
}

static char *col_dup(sqlite3_stmt *st, int c)
{
	return dup_text(sqlite3_column_text(st, c), (size_t)sqlite3_column_bytes(st, c));
}

static void free_table(struct schema_table *t)
{
	for (int c = 0; c < t->ncols; c++) {
		free(t->cols[c].name);
		free(t->cols[c].type);
		for (int i = 0; i < t->cols[c].nsamples; i++)
			free(t->cols[c].samples[i]);
		free(t->cols[c].samples);
		free(t->cols[c].range);
		free(t->cols[c].comment);
	}
	for (int f = 0; f < t->nfks; f++) {
		free(t->fks[f].from);
		free(t->fks[f].table);
		free(t->fks[f].to);
		free(t->fks[f].schema);
	}
	free(t->cols);
	free(t->fks);
	free(t->name);
	free(t->schema);
	free(t->comment);
}

void schema_free(struct schema *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->ntables; i++)
		free_table(&s->tables[i]);
	free(s->tables);
	free(s);
}

size_t schema_table_count(const struct schema *s)
{
	return s ? s->ntables : 0;
}

const struct schema_table *schema_find(const struct schema *s, const char *name)
{
	for (size_t i = 0; s && name && i < s->ntables; i++)
		if (sqlite3_stricmp(s->tables[i].name, name) == 0)
			return &s->tables[i];
	return NULL;
}

/* ---- columns and keys -------------------------------------------------------- */

/* Runs sql, with ?1 bound to `name` when there is one, and hands each row
 * to `row` until it returns non-zero.  Returns that code, CONVBI_ENOMEM
 * when SQLite ran out of memory, else CONVBI_OK; *src gets SQLite's last
 * code (SQLITE_DONE when every row was read), for the caller to judge. */
static int each_row(struct loader *l, const char *sql, const char *name, int (*row)(void *payload, sqlite3_stmt *st),
                    void *payload, int *src)
{
	sqlite3_stmt *st = NULL;
	int rc = CONVBI_OK;

	*src = sqlite3_prepare_v2(l->db, sql, -1, &st, NULL);
	if (*src == SQLITE_OK && name)
		*src = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	while (!rc && *src == SQLITE_OK && (*src = sqlite3_step(st)) == SQLITE_ROW) {
		rc = row(payload, st);
		*src = SQLITE_OK;
	}
	if (!rc && (*src & 0xff) == SQLITE_NOMEM)
		rc = CONVBI_ENOMEM;
	sqlite3_finalize(st);
	return rc;
}

static int column_row(void *payload, sqlite3_stmt *st)
{
	struct schema_table *t = payload;
	struct schema_column *cols = xgrow(t->cols, (size_t)t->ncols, sizeof *cols, 8);
	if (!cols)
		return CONVBI_ENOMEM;
	t->cols = cols;
	struct schema_column *c = &cols[t->ncols++];
	memset(c, 0, sizeof *c);
	c->name = col_dup(st, 0);
	c->type = col_dup(st, 1);
	c->notnull = sqlite3_column_int(st, 2);
	c->pk = sqlite3_column_int(st, 3);
	c->generated = sqlite3_column_int(st, 4);
	return c->name && c->type ? CONVBI_OK : CONVBI_ENOMEM;
}

static int load_columns(struct loader *l, struct schema_table *t)
{
	int src;
	if (t->is_view && views_weight(l->views, t->name) > EXEC_VIEW_REFS_MAX)
		return CONVBI_OK; /* expanding it is what takes long; the gate refuses it too */
	/* table_xinfo, not table_info: generated columns are columns too;
	 * hidden = 1 are a virtual table's hidden columns.  Any failure
	 * but ENOMEM (a broken view) leaves the columns read so far. */
	return each_row(l,
	                "SELECT name, type, \"notnull\", pk, hidden IN (2, 3) FROM "
	                "pragma_table_xinfo(?1) WHERE hidden <> 1",
	                t->name, column_row, t, &src);
}

static int fk_row(void *payload, sqlite3_stmt *st)
{
	struct schema_table *t = payload;
	struct schema_fk *fks = xgrow(t->fks, (size_t)t->nfks, sizeof *fks, 4);
	if (!fks)
		return CONVBI_ENOMEM;
	t->fks = fks;
	struct schema_fk *f = &fks[t->nfks++];
	memset(f, 0, sizeof *f);
	f->id = sqlite3_column_int(st, 0);
	f->table = col_dup(st, 1);
	f->from = col_dup(st, 2);
	f->to = sqlite3_column_type(st, 3) == SQLITE_NULL ? NULL : col_dup(st, 3);
	if (!f->table || !f->from || (sqlite3_column_type(st, 3) != SQLITE_NULL && !f->to))
		return CONVBI_ENOMEM;
	return CONVBI_OK;
}

static int load_fks(struct loader *l, struct schema_table *t)
{
	int src;
	return each_row(l,
	                "SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1) "
	                "ORDER BY id, seq",
	                t->name, fk_row, t, &src);
}

/* ---- counts and samples -------------------------------------------------------- */

static int count_rows(struct loader *l, struct schema_table *t)
{
	struct buf q = BUF_INIT;
	sqlite3_stmt *st = NULL;
	int rc;

	t->rows = -1;
	if (loader_spent(l))
		return CONVBI_OK;
	rc = buf_puts(&q, "SELECT 1 FROM ");
	if (!rc)
		rc = sql_quote_ident(&q, t->name);
	if (rc)
		goto done;
	loader_allow(l, SCHEMA_COUNT_MS);
	if (sqlite3_prepare_v2(l->db, q.data, -1, &st, NULL) != SQLITE_OK)
		goto done;
	int64_t n = 0;
	int src;
	while ((src = sqlite3_step(st)) == SQLITE_ROW && n < SCHEMA_COUNT_CAP)
		n++;
	t->rows = n;
	t->rows_cut = src != SQLITE_DONE;
	if ((src & 0xff) == SQLITE_NOMEM)
		rc = CONVBI_ENOMEM;
done:
	sqlite3_finalize(st);
	buf_release(&q);
	return rc;
}

static int has_any(const char *type, const char *const *marks, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcasestr(type, marks[i]))
			return 1;
	return 0;
}

int schema_type_is_text(const char *type)
{
	static const char *const marks[] = {"CHAR", "CLOB", "TEXT"};
	return !*type || has_any(type, marks, 3);
}

/* Stores one sample value, cut to SCHEMA_SAMPLE_CHARS characters. */
static int add_sample(struct schema_column *c, const unsigned char *s, size_t len)
{
	struct buf b = BUF_INIT;
	int rc = text_add_utf8(&b, (const char *)s, len);
	if (!rc) {
		size_t keep = text_prefix_chars(b.data ? b.data : "", b.len, SCHEMA_SAMPLE_CHARS);
		if (keep < b.len) {
			b.len = keep;
			b.data[keep] = '\0';
			rc = buf_puts(&b, "\xE2\x80\xA6");
		}
	}
	char *v = rc ? NULL : buf_take(&b);
	buf_release(&b);
	if (!v)
		return CONVBI_ENOMEM;
	if (!c->samples) {
		c->samples = xcalloc(SCHEMA_SAMPLES, sizeof *c->samples);
		if (!c->samples) {
			free(v);
			return CONVBI_ENOMEM;
		}
	}
	c->samples[c->nsamples++] = v;
	return CONVBI_OK;
}

/* Bytes read of a cell: enough for SCHEMA_SAMPLE_CHARS + 1 characters. */
#define SAMPLE_PREFIX_BYTES ((SCHEMA_SAMPLE_CHARS + 1) * 4)

static int have_sample(const struct schema_column *c, const char *v, size_t len)
{
	for (int i = 0; i < c->nsamples; i++)
		if (strlen(c->samples[i]) == len && !memcmp(c->samples[i], v, len))
			return 1;
	return 0;
}

/* Stores a prefix read from a cell unless it is empty or already kept. */
static int add_prefix(struct schema_column *c, const unsigned char *p, size_t len, size_t cell_len)
{
	struct buf b = BUF_INIT;
	size_t keep = text_prefix_chars((const char *)p, len, SCHEMA_SAMPLE_CHARS + 1);
	(void)cell_len;
	if (!len)
		return CONVBI_OK;
	/* the candidate as add_sample would store it, to find duplicates */
	int rc = text_add_utf8(&b, (const char *)p, keep);
	if (rc)
		return rc;
	size_t cut = text_prefix_chars(b.data, b.len, SCHEMA_SAMPLE_CHARS);
	int dup = 0;
	if (cut == b.len) {
		dup = have_sample(c, b.data, b.len);
	} else {
		b.len = cut;
		b.data[cut] = '\0';
		if (buf_puts(&b, "\xE2\x80\xA6") == 0)
			dup = have_sample(c, b.data, b.len);
	}
	buf_release(&b);
	return dup ? CONVBI_OK : add_sample(c, p, keep);
}

/* Samples a rowid table's column by reading a prefix of each text cell
 * with incremental BLOB I/O.  Returns CONVBI_OK (also when the table has
 * no rowid: *done is then 0 and the caller uses SQL), or ENOMEM. */
static int sample_by_prefix(struct loader *l, struct schema_table *t, struct schema_column *c, int *done)
{
	struct buf q = BUF_INIT;
	sqlite3_stmt *st = NULL;
	sqlite3_blob *blob = NULL;
	unsigned char prefix[SAMPLE_PREFIX_BYTES];
	int rc = CONVBI_OK;

	*done = 0;
	rc = sql_text_rowids(&q, t->name, c->name);
	if (!rc)
		rc = buf_printf(&q, " LIMIT %d", SCHEMA_SAMPLE_ROWS);
	if (rc)
		goto out;
	if (sqlite3_prepare_v2(l->db, q.data, -1, &st, NULL) != SQLITE_OK)
		goto out;
	*done = 1;
	while (!rc && c->nsamples < SCHEMA_SAMPLES && sqlite3_step(st) == SQLITE_ROW) {
		sqlite3_int64 rowid = sqlite3_column_int64(st, 0);
		int src = blob ? sqlite3_blob_reopen(blob, rowid)
		               : sqlite3_blob_open(l->db, "main", t->name, c->name, rowid, 0, &blob);
		if (src != SQLITE_OK) {
			*done = blob != NULL; /* the first open failing: no rowid access, use SQL */
			break;
		}
		int n = sqlite3_blob_bytes(blob);
		int want = n < (int)sizeof prefix ? n : (int)sizeof prefix;
		if (want > 0 && sqlite3_blob_read(blob, prefix, want, 0) == SQLITE_OK)
			rc = add_prefix(c, prefix, (size_t)want, (size_t)n);
	}
out:
	sqlite3_blob_close(blob);
	sqlite3_finalize(st);
	buf_release(&q);
	return rc;
}

static int sample_column(struct loader *l, struct schema_table *t, struct schema_column *c)
{
	struct buf q = BUF_INIT;
	sqlite3_stmt *st = NULL;
	int rc = CONVBI_OK;

	if (loader_spent(l) || !schema_type_is_text(c->type) || c->generated)
		return CONVBI_OK; /* a generated value is computed: reading it runs the schema's expression */
	loader_allow(l, SCHEMA_SAMPLE_MS);
	int done = 0;
	rc = sample_by_prefix(l, t, c, &done);
	if (rc || done)
		return rc;
	/* one character more than kept, to know whether a value was cut */
	rc = buf_printf(&q, "SELECT DISTINCT substr(v, 1, %d) FROM ", SCHEMA_SAMPLE_CHARS + 1);
	if (!rc)
		rc = sql_column_values(&q, t->name, c->name);
	if (!rc)
		rc = buf_printf(&q, " WHERE typeof(v) = 'text' AND v <> '' LIMIT %d", SCHEMA_SAMPLES);
	if (rc)
		goto done;
	loader_allow(l, SCHEMA_SAMPLE_MS);
	if (sqlite3_prepare_v2(l->db, q.data, -1, &st, NULL) != SQLITE_OK)
		goto done;
	while (!rc && c->nsamples < SCHEMA_SAMPLES && sqlite3_step(st) == SQLITE_ROW)
		rc = add_sample(c, sqlite3_column_text(st, 0), (size_t)sqlite3_column_bytes(st, 0));
done:
	sqlite3_finalize(st);
	buf_release(&q);
	return rc;
}

/* ---- ranges ---------------------------------------------------------------------- */

int schema_column_is_key(const struct schema_table *t, const struct schema_column *c)
{
	int npk = 0;
	for (int i = 0; i < t->ncols; i++)
		npk += t->cols[i].pk > 0;
	if (c->pk && npk == 1 && strcasestr(c->type, "INT"))
		return 1; /* a rowid-like key; a text key ("JPN") or a composite one is data too */
	for (int f = 0; f < t->nfks; f++)
		if (!sqlite3_stricmp(t->fks[f].from, c->name))
			return 1;
	size_t n = strlen(c->name);
	return !sqlite3_stricmp(c->name, "id") ||
	       (n > 2 && !sqlite3_stricmp(c->name + n - 2, "id") && (c->name[n - 3] == '_' || c->name[n - 2] == 'I'));
}

/* 1 for "YYYY-MM-DD..." text. */
static int datelike(const char *v)
{
	for (int i = 0; i < 10; i++)
		if (i == 4 || i == 7 ? v[i] != '-' : !(v[i] >= '0' && v[i] <= '9'))
			return 0;
	return 1;
}

/* Reads min..max of a numeric column (numbers only) or a date-like one
 * (dates as quoted text); no range when the scan does not finish in time. */
static int range_column(struct loader *l, struct schema_table *t, struct schema_column *c)
{
	static const char *const numeric[] = {"INT", "REAL", "FLOA", "DOUB", "NUM", "DEC"};
	static const char *const dated[] = {"DATE", "TIME", "YEAR"};
	struct buf q = BUF_INIT, r = BUF_INIT;
	sqlite3_stmt *st = NULL;
	int rc = CONVBI_OK;

	int is_date = has_any(c->type, dated, 3) || (c->nsamples && datelike(c->samples[0]));
	int is_num = !is_date && has_any(c->type, numeric, 6);
	if (loader_spent(l) || schema_column_is_key(t, c) || (!is_date && !is_num))
		return CONVBI_OK;
	/* a date range spans the values that are dates (text a date() reads
	 * from its first ten characters), never 'not a date' or a number among
	 * them; a column declared DATE/TIME/YEAR without such text (a year, an
	 * epoch) spans its integers */
	static const char *const where[] = {
	        " WHERE typeof(v) = 'text' AND v GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*' AND "
	        "date(substr(v, 1, 10)) IS NOT NULL",
	        " WHERE typeof(v) = 'integer'", " WHERE typeof(v) IN ('integer', 'real')"};
	loader_allow(l, SCHEMA_RANGE_MS);
	int from = is_date ? 0 : 2, to = is_num ? 3 : has_any(c->type, dated, 3) ? 2 : 1;
	for (int w = from; w < to; w++) {
		buf_reset(&q);
		sqlite3_finalize(st);
		st = NULL;
		if ((rc = buf_puts(&q, "SELECT min(v), max(v) FROM ")) || (rc = sql_column_values(&q, t->name, c->name)) ||
		    (rc = buf_puts(&q, where[w])))
			goto done;
		if (sqlite3_prepare_v2(l->db, q.data, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
		    sqlite3_column_type(st, 0) != SQLITE_NULL)
			break;
		sqlite3_finalize(st);
		st = NULL;
	}
	if (!st)
		goto done;
	for (int i = 0; i < 2 && !rc; i++) {
		const unsigned char *v = sqlite3_column_text(st, i);
		if (!v) {
			rc = CONVBI_ENOMEM;
			break;
		}
		size_t len = (size_t)sqlite3_column_bytes(st, i);
		size_t keep = text_prefix_chars((const char *)v, len, SCHEMA_RANGE_CHARS);
		int quoted = sqlite3_column_type(st, i) == SQLITE_TEXT;
		rc = buf_puts(&r, i ? ".." : "");
		if (!rc && quoted)
			rc = buf_putc(&r, '\'');
		for (size_t k = 0; k < keep && !rc; k++)
			rc = v[k] == '\'' ? buf_puts(&r, "''") : v[k] < 0x20 ? buf_putc(&r, ' ') : buf_putc(&r, (char)v[k]);
		if (!rc && quoted)
			rc = buf_putc(&r, '\'');
	}
	if (!rc && !text_is_utf8(r.data, r.len))
		goto done;
	if (!rc && !(c->range = buf_take(&r)))
		rc = CONVBI_ENOMEM;
done:
	sqlite3_finalize(st);
	buf_release(&q);
	buf_release(&r);
	return rc;
}

/* ---- the object list ------------------------------------------------------------ */

/* Names of virtual tables' shadow tables: `<vtab>_<suffix>`. */
static int is_shadow(const struct schema *s, const char *name)
{
	static const char *const suffixes[] = {"content", "segments", "segdir", "docsize", "stat",  "data",
	                                       "idx",     "config",   "node",   "rowid",   "parent"};
	const char *us = strrchr(name, '_');
	if (!us)
		return 0;
	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		if (sqlite3_stricmp(us + 1, suffixes[i]) != 0)
			continue;
		for (size_t t = 0; t < s->ntables; t++) {
			size_t n = strlen(s->tables[t].name);
			if (s->tables[t].rows == -2 && n == (size_t)(us - name) &&
			    sqlite3_strnicmp(s->tables[t].name, name, (int)n) == 0)
				return 1;
		}
	}
	return 0;
}

static int object_row(void *payload, sqlite3_stmt *st)
{
	struct schema *s = payload;
	const char *name = (const char *)sqlite3_column_text(st, 0);
	if (!name || is_shadow(s, name))
		return CONVBI_OK;
	struct schema_table *tables = xgrow(s->tables, s->ntables, sizeof *tables, 16);
	if (!tables)
		return CONVBI_ENOMEM;
	s->tables = tables;
	struct schema_table *t = &tables[s->ntables++];
	memset(t, 0, sizeof *t);
	t->name = col_dup(st, 0);
	t->is_view = sqlite3_stricmp((const char *)sqlite3_column_text(st, 1), "view") == 0;
	t->rows = sqlite3_column_int(st, 2) ? -2 : -1;
	return t->name ? CONVBI_OK : CONVBI_ENOMEM;
}

static int load_objects(struct loader *l, struct schema *s)
{
	int src;
	/* virtual tables first (marked rows = -2 while loading) so their
	 * shadow tables, created after them, can be recognised */
	int rc = each_row(l,
	                  "SELECT name, type, sql LIKE 'CREATE VIRTUAL TABLE%' FROM sqlite_schema "
	                  "WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
	                  "ORDER BY rowid",
	                  NULL, object_row, s, &src);
	return rc || src == SQLITE_DONE ? rc : CONVBI_EDB;
}

int schema_load(struct schema **out, const char *db_path, struct err *err)
{
	struct loader l = {NULL, NULL, 0, 0, 0, 0};
	struct schema *s = NULL;
	int rc;

	*out = NULL;
	rc = ro_open(&l.db, db_path, err);
	if (rc)
		return rc;
	sqlite3_limit(l.db, SQLITE_LIMIT_LENGTH, SCHEMA_VALUE_MAX);
	int vsrc = views_load(&l.views, l.db);
	if (vsrc != SQLITE_OK) {
		rc = vsrc == SQLITE_NOMEM ? CONVBI_ENOMEM : CONVBI_EDB;
		goto fail;
	}
	s = xcalloc(1, sizeof *s);
	if (!s) {
		rc = CONVBI_ENOMEM;
		goto fail;
	}
	rc = load_objects(&l, s);
	for (size_t i = 0; i < s->ntables && !rc; i++) {
		rc = load_columns(&l, &s->tables[i]);
		if (!rc)
			rc = load_fks(&l, &s->tables[i]);
	}
	if (rc)
		goto fail;

	l.end_ms = work_ms() + SCHEMA_LOAD_MS;
	l.wall_end_ms = clock_mono_ms() + SCHEMA_LOAD_MS * SCHEMA_WALL_FACTOR;
	l.deadline_ms = l.end_ms;
	l.wall_deadline_ms = l.wall_end_ms;
	sqlite3_progress_handler(l.db, 1000, on_progress, &l);
	for (size_t i = 0; i < s->ntables && !rc; i++) {
		struct schema_table *t = &s->tables[i];
		t->rows = -1;
		if (t->is_view)
			continue;
		rc = count_rows(&l, t);
		for (int c = 0; c < t->ncols && !rc; c++)
			rc = sample_column(&l, t, &t->cols[c]);
		for (int c = 0; c < t->ncols && !rc; c++)
			rc = range_column(&l, t, &t->cols[c]);
	}
	if (rc)
		goto fail;
	sqlite3_close_v2(l.db);
	views_free(l.views);
	*out = s;
	return CONVBI_OK;
fail:
	if (rc == CONVBI_ENOMEM)
		err_set(err, rc, "out of memory reading the schema of `%s`", db_path);
	else
		rc = ro_schema_error(err, db_path, sqlite3_extended_errcode(l.db), sqlite3_errmsg(l.db));
	sqlite3_close_v2(l.db);
	views_free(l.views);
	schema_free(s);
	return rc;
}
