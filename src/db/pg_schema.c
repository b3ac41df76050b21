/* pg_schema.c -- reading a PostgreSQL database's schema from pg_catalog.
 *
 * Four set-based queries, joined by oid, whatever the number of tables
 * (a catalog of 10,000 tables costs four round trips, not 10,000):
 *   tables   pg_class (tables, partitioned tables, views, materialized
 *            views, foreign tables; partitions are left out -- their parent
 *            stands for them), the table comment from pg_description and
 *            the planner's row estimate pg_class.reltuples (-1, never
 *            analysed, renders no count);
 *   columns  pg_attribute with format_type() and the column comments;
 *   keys     pg_constraint's primary and foreign keys, unnested pairwise
 *            (conkey, confkey) so composite keys keep their order;
 *   values   pg_stats.most_common_vals of text columns, as the sample values
 *            SQLite's introspection reads from the data; and of numeric and
 *            date-like columns (a date type, or text whose statistics hold
 *            dates), with histogram_bounds, the range the
 *            statistics saw ("~min..max": ANALYZE's sample, as of its last
 *            run -- the text says it is an estimate).
 * A table the statistics say nothing of (never analysed) and of at most
 * PG_RANGE_SCAN_BYTES on disk (pg_relation_size) gets its exact min..max
 * from one scan, under PG_RANGE_QUERY_MS each and PG_RANGE_TOTAL_MS for
 * all; a bigger one gets no range rather than a guess, and a scan that
 * fails or times out stops the scans, never the introspection.
 * Only what the role can read appears: tables with SELECT on some column
 * (has_any_column_privilege), columns with SELECT (has_column_privilege),
 * and pg_stats, which filters by privilege itself.  The schemas are those
 * of the session's search path (current_schemas(false), which leaves out
 * schemas without USAGE) -- the server's default, or --schemas, which
 * pg.c made the search path.  A schema named in --schemas that is missing
 * or unreadable is an error naming it.
 *
 * The catalog queries run in a read-only transaction with their own
 * statement_timeout (PG_INTROSPECT_TIMEOUT_MS), rolled back after.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "convbi/convbi.h"
#include "db/pg_impl.h"
#include "db/text.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/clock.h"

#define PG_RANGE_NUMBER_CHARS 48 /* characters of a number bound, shown whole; longer: no range */

/* The schemas in search-path order, with their position. */
#define NS_CTE                                                                                            \
	"WITH ns AS (SELECT n.oid, n.nspname, o.ord FROM unnest(current_schemas(false)) WITH ORDINALITY " \
	"AS o(name, ord) JOIN pg_namespace n ON n.nspname = o.name), "                                    \
	"rel AS (SELECT c.oid, c.relname, c.relkind, c.reltuples, ns.nspname, ns.ord FROM pg_class c "    \
	"JOIN ns ON c.relnamespace = ns.oid WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') "                \
	"AND NOT c.relispartition AND has_any_column_privilege(c.oid, 'SELECT')) "

static const char tables_sql[] = NS_CTE
        "SELECT rel.oid, rel.nspname, rel.relname, rel.relkind IN ('v', 'm'), rel.reltuples::float8, d.description, "
        "CASE WHEN rel.relkind IN ('r', 'm') THEN pg_relation_size(rel.oid) ELSE -1 END "
        "FROM rel LEFT JOIN pg_description d ON d.objoid = rel.oid AND d.classoid = 'pg_class'::regclass "
        "AND d.objsubid = 0 ORDER BY rel.ord, rel.relname";

static const char columns_sql[] = NS_CTE
        "SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, d.description "
        "FROM rel JOIN pg_attribute a ON a.attrelid = rel.oid "
        "LEFT JOIN pg_description d ON d.objoid = a.attrelid AND d.classoid = 'pg_class'::regclass "
        "AND d.objsubid = a.attnum "
        "WHERE a.attnum > 0 AND NOT a.attisdropped AND has_column_privilege(a.attrelid, a.attnum, 'SELECT') "
        "ORDER BY a.attrelid, a.attnum";

static const char keys_sql[] = NS_CTE
        "SELECT con.conrelid, con.contype, con.oid, sa.attname, fn.nspname, fc.relname, fa.attname "
        "FROM rel JOIN pg_constraint con ON con.conrelid = rel.oid "
        "CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(src, dst, ord) "
        "JOIN pg_attribute sa ON sa.attrelid = con.conrelid AND sa.attnum = k.src "
        "LEFT JOIN pg_class fc ON fc.oid = con.confrelid "
        "LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace "
        "LEFT JOIN pg_attribute fa ON fa.attrelid = con.confrelid AND fa.attnum = k.dst "
        "WHERE con.contype IN ('p', 'f') ORDER BY con.conrelid, con.contype, con.oid, k.ord";

static const char values_sql[] = NS_CTE
        "SELECT rel.oid, s.attname, s.most_common_vals::text, s.histogram_bounds::text FROM rel "
        "JOIN pg_stats s ON s.schemaname = rel.nspname AND s.tablename = rel.relname "
        "WHERE s.most_common_vals IS NOT NULL OR s.histogram_bounds IS NOT NULL";

struct by_oid {
	unsigned oid;
	size_t index; /* in schema->tables */
};

struct loader {
	struct pg *p;
	struct schema *s;
	struct by_oid *oids; /* owned, sorted by oid */
	int64_t *bytes;      /* owned: per table, its size on disk, -1 = not a stored table */
};

static int cmp_oid(const void *a, const void *b)
{
	unsigned x = ((const struct by_oid *)a)->oid, y = ((const struct by_oid *)b)->oid;
	return x < y ? -1 : x > y;
}

static struct schema_table *table_of(struct loader *l, const char *oid_text)
{
	struct by_oid key = {(unsigned)strtoul(oid_text, NULL, 10), 0};
	struct by_oid *hit = bsearch(&key, l->oids, l->s->ntables, sizeof key, cmp_oid);
	return hit ? &l->s->tables[hit->index] : NULL;
}

static struct schema_column *column_of(struct schema_table *t, const char *name)
{
	for (int c = 0; c < t->ncols; c++)
		if (!strcmp(t->cols[c].name, name))
			return &t->cols[c];
	return NULL;
}

/* A copy of v (or NULL for SQL NULL) with invalid UTF-8 repaired. */
static char *text_copy(const PGresult *res, int row, int col, int *oom)
{
	if (PQgetisnull(res, row, col))
		return NULL;
	struct buf b;
	buf_init(&b, BUF_UNBOUNDED);
	if (text_add_utf8(&b, PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col)) || !buf_str(&b)) {
		*oom = 1;
		buf_release(&b);
		return NULL;
	}
	char *s = buf_take(&b);
	if (!s)
		*oom = 1;
	return s;
}

static int load_tables(struct loader *l, struct err *err)
{
	PGresult *res = NULL;
	int rc = pg_exec_ours(l->p, tables_sql, 0, NULL, PGRES_TUPLES_OK, "reading the tables", &res, err);
	if (rc)
		return rc;
	int n = PQntuples(res), oom = 0;
	l->s->tables = xcalloc((size_t)n + 1, sizeof *l->s->tables);
	l->oids = xcalloc((size_t)n + 1, sizeof *l->oids);
	l->bytes = xcalloc((size_t)n + 1, sizeof *l->bytes);
	if (!l->s->tables || !l->oids || !l->bytes)
		oom = 1;
	for (int i = 0; i < n && !oom; i++) {
		struct schema_table *t = &l->s->tables[i];
		l->s->ntables = (size_t)i + 1;
		l->oids[i] = (struct by_oid){(unsigned)strtoul(PQgetvalue(res, i, 0), NULL, 10), (size_t)i};
		t->schema = text_copy(res, i, 1, &oom);
		t->name = text_copy(res, i, 2, &oom);
		t->is_view = PQgetvalue(res, i, 3)[0] == 't';
		double est = strtod(PQgetvalue(res, i, 4), NULL);
		t->rows = t->is_view || est < 0 ? -1 : (int64_t)est;
		t->rows_estimated = t->rows >= 0;
		t->comment = text_copy(res, i, 5, &oom);
		l->bytes[i] = strtoll(PQgetvalue(res, i, 6), NULL, 10);
		if (!t->schema || !t->name)
			oom = 1;
	}
	PQclear(res);
	if (oom)
		return err_set(err, CONVBI_ENOMEM, "out of memory reading the schema");
	qsort(l->oids, l->s->ntables, sizeof *l->oids, cmp_oid);
	return CONVBI_OK;
}

static int load_columns(struct loader *l, struct err *err)
{
	PGresult *res = NULL;
	int rc = pg_exec_ours(l->p, columns_sql, 0, NULL, PGRES_TUPLES_OK, "reading the columns", &res, err);
	if (rc)
		return rc;
	int n = PQntuples(res), oom = 0;
	/* rows come grouped by table: count each group, then fill it */
	for (int i = 0; i < n && !oom;) {
		struct schema_table *t = table_of(l, PQgetvalue(res, i, 0));
		int j = i;
		while (j < n && !strcmp(PQgetvalue(res, j, 0), PQgetvalue(res, i, 0)))
			j++;
		if (t && !t->cols) {
			t->cols = xcalloc((size_t)(j - i), sizeof *t->cols);
			if (!t->cols)
				oom = 1;
			for (int k = i; k < j && !oom; k++) {
				struct schema_column *c = &t->cols[t->ncols++];
				c->name = text_copy(res, k, 1, &oom);
				c->type = text_copy(res, k, 2, &oom);
				c->notnull = PQgetvalue(res, k, 3)[0] == 't';
				c->comment = text_copy(res, k, 4, &oom);
				if (!c->name || !c->type)
					oom = 1;
			}
		}
		i = j;
	}
	PQclear(res);
	return oom ? err_set(err, CONVBI_ENOMEM, "out of memory reading the schema") : CONVBI_OK;
}

static int load_keys(struct loader *l, struct err *err)
{
	PGresult *res = NULL;
	int rc = pg_exec_ours(l->p, keys_sql, 0, NULL, PGRES_TUPLES_OK, "reading the keys", &res, err);
	if (rc)
		return rc;
	int n = PQntuples(res), oom = 0;
	for (int i = 0; i < n && !oom; i++) {
		struct schema_table *t = table_of(l, PQgetvalue(res, i, 0));
		struct schema_column *col = t ? column_of(t, PQgetvalue(res, i, 3)) : NULL;
		if (!col)
			continue; /* a key on a column the role cannot read */
		if (PQgetvalue(res, i, 1)[0] == 'p') {
			int pos = 1;
			for (int c = 0; c < t->ncols; c++)
				pos += t->cols[c].pk > 0;
			col->pk = pos;
			continue;
		}
		struct schema_fk *fks = xrealloc(t->fks, (size_t)(t->nfks + 1) * sizeof *fks);
		if (!fks) {
			oom = 1;
			break;
		}
		t->fks = fks;
		struct schema_fk *fk = &t->fks[t->nfks++];
		memset(fk, 0, sizeof *fk);
		fk->id = (int)strtol(PQgetvalue(res, i, 2), NULL, 10);
		fk->from = text_copy(res, i, 3, &oom);
		fk->schema = text_copy(res, i, 4, &oom);
		fk->table = text_copy(res, i, 5, &oom);
		fk->to = text_copy(res, i, 6, &oom);
		if (!fk->from || !fk->table)
			oom = 1;
	}
	PQclear(res);
	return oom ? err_set(err, CONVBI_ENOMEM, "out of memory reading the schema") : CONVBI_OK;
}

static int is_text_type(const char *type)
{
	return !strcmp(type, "text") || !strncmp(type, "character", 9) || !strcmp(type, "citext") || !strcmp(type, "name");
}

/* Reads the element of an array literal ({a,"b c",NULL}) at *p into v
 * and moves *p past it; *null says it was NULL.  Returns CONVBI_OK, ENOMEM,
 * or -1 at the end of the array. */
static int array_next(const char **p, struct buf *v, int *null)
{
	const char *s = *p;
	int rc = CONVBI_OK;
	if (!*s || *s == '}')
		return -1;
	buf_reset(v);
	*null = 0;
	if (*s == '"') {
		for (s++; *s && *s != '"' && !rc; s++) {
			if (*s == '\\' && s[1])
				s++;
			rc = buf_putc(v, *s);
		}
		if (*s == '"')
			s++;
	} else {
		const char *start = s;
		while (*s && *s != ',' && *s != '}')
			s++;
		rc = buf_add(v, start, (size_t)(s - start));
		*null = s - start == 4 && !strncmp(start, "NULL", 4);
	}
	if (*s == ',')
		s++;
	*p = s;
	return rc;
}

/* Reads up to SCHEMA_SAMPLES elements of an array literal {a,"b c",NULL}
 * into col's samples, each cut to SCHEMA_SAMPLE_CHARS characters. */
static int add_samples(struct schema_column *col, const char *lit)
{
	if (*lit != '{')
		return CONVBI_OK;
	col->samples = xcalloc(SCHEMA_SAMPLES, sizeof *col->samples);
	if (!col->samples)
		return CONVBI_ENOMEM;
	const char *p = lit + 1;
	struct buf v;
	buf_init(&v, BUF_UNBOUNDED);
	int rc = CONVBI_OK, null = 0;
	while (col->nsamples < SCHEMA_SAMPLES && !rc) {
		rc = array_next(&p, &v, &null);
		if (rc < 0) {
			rc = CONVBI_OK;
			break;
		}
		if (rc || null)
			continue;
		size_t keep = text_prefix_chars(v.data ? v.data : "", v.len, SCHEMA_SAMPLE_CHARS);
		struct buf s;
		buf_init(&s, BUF_UNBOUNDED);
		rc = text_add_utf8(&s, v.data ? v.data : "", keep);
		if (!rc && keep < v.len)
			rc = buf_puts(&s, "…");
		if (!rc && !buf_str(&s))
			rc = CONVBI_ENOMEM;
		if (!rc)
			col->samples[col->nsamples++] = buf_take(&s);
		else
			buf_release(&s);
	}
	buf_release(&v);
	return rc;
}

/* ---- ranges ------------------------------------------------------------------------ */

enum range_kind { RANGE_NONE, RANGE_NUMBER, RANGE_DATE };

/* Numbers and dates get a range, as in SQLite; keys and views do not. */
static enum range_kind range_kind_of(const struct schema_table *t, const struct schema_column *c)
{
	static const char *const numbers[] = {"smallint", "integer", "bigint", "numeric", "real", "double precision"};
	if (t->is_view || schema_column_is_key(t, c))
		return RANGE_NONE;
	for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++)
		if (!strncmp(c->type, numbers[i], strlen(numbers[i])))
			return RANGE_NUMBER;
	return !strcmp(c->type, "date") || !strncmp(c->type, "timestamp", 9) ? RANGE_DATE : RANGE_NONE;
}

/* 1 for a bound worth showing: a finite number, or a date written
 * YYYY-MM-DD... (ISO, the default DateStyle; "infinity" and BC dates are
 * left out). */
static int usable_bound(enum range_kind k, const char *v)
{
	if (k == RANGE_NUMBER) {
		char *end;
		double x = strtod(v, &end);
		return *v && !*end && isfinite(x);
	}
	for (int i = 0; i < 10; i++)
		if (i == 4 || i == 7 ? v[i] != '-' : !(v[i] >= '0' && v[i] <= '9'))
			return 0;
	return !v[10] || v[10] == ' ' || v[10] == 'T';
}

/* 1 when the first element of an array literal is a date: a text column
 * holding dates (as SQLite's date-like columns, by their values). */
static int first_is_date(const char *lit)
{
	struct buf v;
	buf_init(&v, BUF_UNBOUNDED);
	const char *p = lit + 1;
	int null = 0; /* buf_str, never v.data: an empty element ("") leaves no data */
	int yes = *lit == '{' && array_next(&p, &v, &null) == CONVBI_OK && !null && usable_bound(RANGE_DATE, buf_str(&v));
	buf_release(&v);
	return yes;
}

static int bound_cmp(enum range_kind k, const char *a, const char *b)
{
	if (k == RANGE_NUMBER) {
		double x = strtod(a, NULL), y = strtod(b, NULL);
		return x < y ? -1 : x > y;
	}
	return strcmp(a, b);
}

/* 1 for an infinity or NaN: a column holding one has no finite range, and
 * showing the finite values' min..max would say no value lies outside. */
static int is_unbounded(const char *v)
{
	if (*v == '-' || *v == '+')
		v++;
	return !strcasecmp(v, "infinity") || !strcasecmp(v, "nan");
}

/* Sets col->range to "[~]min..max", dates quoted as SQLite's are, each
 * date bound cut to SCHEMA_RANGE_CHARS characters.  A number is never cut
 * (-1e30 cut to 24 digits reads as -1e22): one longer than
 * PG_RANGE_NUMBER_CHARS leaves the column without a range. */
static int set_range(struct schema_column *col, enum range_kind k, const char *lo, const char *hi, int estimate)
{
	if (k == RANGE_NUMBER && (strlen(lo) > PG_RANGE_NUMBER_CHARS || strlen(hi) > PG_RANGE_NUMBER_CHARS))
		return CONVBI_OK;
	struct buf r;
	buf_init(&r, BUF_UNBOUNDED);
	int rc = buf_puts(&r, estimate ? "~" : "");
	for (int i = 0; i < 2 && !rc; i++) {
		const char *v = i ? hi : lo;
		size_t keep = k == RANGE_DATE ? text_prefix_chars(v, strlen(v), SCHEMA_RANGE_CHARS) : strlen(v);
		rc = buf_printf(&r, k == RANGE_DATE ? "%s'%.*s'" : "%s%.*s", i ? ".." : "", (int)keep, v);
	}
	if (!rc && !buf_str(&r))
		rc = CONVBI_ENOMEM;
	if (!rc) {
		free(col->range);
		col->range = buf_take(&r);
	}
	buf_release(&r);
	return rc ? CONVBI_ENOMEM : CONVBI_OK;
}

/* The range of the values the statistics saw: the smallest and largest of
 * the most common values and the histogram's bounds (its first and last
 * are the smallest and largest of the rest). */
static int stats_range(struct schema_column *col, enum range_kind k, const char *mcv, const char *hist)
{
	struct buf v, lo, hi;
	buf_init(&v, BUF_UNBOUNDED);
	buf_init(&lo, BUF_UNBOUNDED);
	buf_init(&hi, BUF_UNBOUNDED);
	int rc = CONVBI_OK, any = 0, unbounded = 0;
	for (int a = 0; a < 2 && !rc; a++) {
		const char *p = a ? hist : mcv;
		if (*p != '{')
			continue;
		p++;
		int null = 0, step;
		while (!rc && (step = array_next(&p, &v, &null)) != -1) {
			if ((rc = step) || null)
				continue;
			if (is_unbounded(buf_str(&v)))
				unbounded = 1;
			if (!usable_bound(k, buf_str(&v)))
				continue;
			if (!any || bound_cmp(k, v.data, lo.data) < 0) {
				buf_reset(&lo);
				rc = buf_add(&lo, v.data, v.len);
			}
			if (!rc && (!any || bound_cmp(k, v.data, hi.data) > 0)) {
				buf_reset(&hi);
				rc = buf_add(&hi, v.data, v.len);
			}
			any = 1;
		}
	}
	if (!rc && any && !unbounded)
		rc = set_range(col, k, buf_str(&lo), buf_str(&hi), 1);
	buf_release(&v);
	buf_release(&lo);
	buf_release(&hi);
	return rc;
}

/* One scan for the exact min..max of a small table's columns that the
 * statistics left without a range.  Returns CONVBI_OK when it ran, 1
 * when the server refused or timed out (the scans stop), or ENOMEM. */
static int scan_table(struct loader *l, struct schema_table *t)
{
	struct buf q = BUF_INIT;
	PGresult *res = NULL;
	struct err ignored = ERR_INIT;
	int cols[64], n = 0, rc = buf_puts(&q, "SELECT ");
	for (int c = 0; c < t->ncols && n < (int)(sizeof cols / sizeof cols[0]) && !rc; c++) {
		if (t->cols[c].range || range_kind_of(t, &t->cols[c]) == RANGE_NONE)
			continue;
		char *id = PQescapeIdentifier(l->p->conn, t->cols[c].name, strlen(t->cols[c].name));
		rc = id ? buf_printf(&q, "%smin(%s)::text, max(%s)::text", n ? ", " : "", id, id) : CONVBI_ENOMEM;
		PQfreemem(id);
		cols[n++] = c;
	}
	if (rc || !n)
		goto done;
	char *sch = PQescapeIdentifier(l->p->conn, t->schema, strlen(t->schema));
	char *name = PQescapeIdentifier(l->p->conn, t->name, strlen(t->name));
	rc = sch && name ? buf_printf(&q, " FROM %s.%s", sch, name) : CONVBI_ENOMEM;
	PQfreemem(sch);
	PQfreemem(name);
	if (rc)
		goto done;
	if (pg_exec_ours(l->p, q.data, 0, NULL, PGRES_TUPLES_OK, "reading a range", &res, &ignored)) {
		rc = ignored.code == CONVBI_ENOMEM ? CONVBI_ENOMEM : 1;
		goto done;
	}
	for (int i = 0; i < n && !rc && PQntuples(res) == 1; i++) {
		struct schema_column *col = &t->cols[cols[i]];
		enum range_kind k = range_kind_of(t, col);
		const char *lo = PQgetvalue(res, 0, 2 * i), *hi = PQgetvalue(res, 0, 2 * i + 1);
		if (!PQgetisnull(res, 0, 2 * i) && usable_bound(k, lo) && usable_bound(k, hi))
			rc = set_range(col, k, lo, hi, 0);
	}
done:
	PQclear(res);
	buf_release(&q);
	return rc;
}

/* The scans, in their own read-only transaction, within PG_RANGE_TOTAL_MS. */
static int scan_ranges(struct loader *l)
{
	int64_t end = clock_mono_ms() + PG_RANGE_TOTAL_MS;
	int began = 0, rc = CONVBI_OK;
	struct err ignored = ERR_INIT;
	char timeout[64];
	snprintf(timeout, sizeof timeout, "SET LOCAL statement_timeout = %d", PG_RANGE_QUERY_MS);
	for (size_t i = 0; i < l->s->ntables && !rc && clock_mono_ms() < end; i++) {
		struct schema_table *t = &l->s->tables[i];
		if (l->bytes[i] <= 0 || l->bytes[i] > PG_RANGE_SCAN_BYTES || t->is_view)
			continue;
		if (!began) {
			began = 1;
			if (pg_exec_ours(l->p, "BEGIN READ ONLY", 0, NULL, PGRES_COMMAND_OK, "starting a read-only transaction",
			                 NULL, &ignored) ||
			    pg_exec_ours(l->p, timeout, 0, NULL, PGRES_COMMAND_OK, "setting the timeout", NULL, &ignored))
				break;
		}
		rc = scan_table(l, t);
	}
	if (began)
		PQclear(PQexec(l->p->conn, "ROLLBACK"));
	return rc == CONVBI_ENOMEM ? rc : CONVBI_OK;
}

static int load_values(struct loader *l, struct err *err)
{
	PGresult *res = NULL;
	int rc = pg_exec_ours(l->p, values_sql, 0, NULL, PGRES_TUPLES_OK, "reading the frequent values", &res, err);
	if (rc)
		return rc;
	int n = PQntuples(res);
	for (int i = 0; i < n && !rc; i++) {
		struct schema_table *t = table_of(l, PQgetvalue(res, i, 0));
		struct schema_column *col = t ? column_of(t, PQgetvalue(res, i, 1)) : NULL;
		if (col && !col->samples && is_text_type(col->type))
			rc = add_samples(col, PQgetvalue(res, i, 2));
		enum range_kind k = col ? range_kind_of(t, col) : RANGE_NONE;
		const char *mcv = PQgetvalue(res, i, 2), *hist = PQgetvalue(res, i, 3);
		if (k == RANGE_NONE && col && is_text_type(col->type) && !t->is_view && !schema_column_is_key(t, col) &&
		    (first_is_date(mcv) || first_is_date(hist)))
			k = RANGE_DATE;
		if (!rc && k != RANGE_NONE && !col->range)
			rc = stats_range(col, k, mcv, hist);
	}
	PQclear(res);
	return rc ? err_set(err, CONVBI_ENOMEM, "out of memory reading the schema") : CONVBI_OK;
}

/* Every schema named in --schemas must be on the effective search path. */
static int check_schemas(struct pg *p, struct err *err)
{
	PGresult *res = NULL;
	int rc = pg_exec_ours(p, "SELECT n FROM unnest(current_schemas(false)) AS n", 0, NULL, PGRES_TUPLES_OK,
	                      "reading the search path", &res, err);
	if (rc || !p->schemas)
		goto done;
	for (const char *s = p->schemas; *s && !rc;) {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		size_t len = strcspn(s, ",");
		size_t trimmed = len;
		while (trimmed && (s[trimmed - 1] == ' ' || s[trimmed - 1] == '\t'))
			trimmed--;
		int found = !trimmed;
		for (int i = 0; i < PQntuples(res) && !found; i++)
			found = strlen(PQgetvalue(res, i, 0)) == trimmed && !strncmp(PQgetvalue(res, i, 0), s, trimmed);
		if (!found)
			rc = err_set(err, CONVBI_EDB, "schema `%.*s` does not exist or the role cannot use it; check --schemas",
			             (int)(trimmed > 63 ? 63 : trimmed), s);
		s += len;
	}
done:
	PQclear(res);
	return rc;
}

int pg_introspect(struct pg *p, struct schema **out, struct err *err)
{
	struct loader l = {p, NULL, NULL, NULL};
	char timeout[64];
	int rc;
	*out = NULL;
	l.s = xcalloc(1, sizeof *l.s);
	if (!l.s)
		return err_set(err, CONVBI_ENOMEM, "out of memory reading the schema");
	snprintf(timeout, sizeof timeout, "SET LOCAL statement_timeout = %d", PG_INTROSPECT_TIMEOUT_MS);
	if ((rc = pg_exec_ours(p, "BEGIN READ ONLY", 0, NULL, PGRES_COMMAND_OK, "starting a read-only transaction", NULL, err)))
		goto fail;
	if (!(rc = pg_exec_ours(p, timeout, 0, NULL, PGRES_COMMAND_OK, "setting the timeout", NULL, err)) &&
	    !(rc = check_schemas(p, err)) && !(rc = load_tables(&l, err)) && !(rc = load_columns(&l, err)) &&
	    !(rc = load_keys(&l, err)))
		rc = load_values(&l, err);
	PQclear(PQexec(p->conn, "ROLLBACK"));
	if (!rc && scan_ranges(&l))
		rc = err_set(err, CONVBI_ENOMEM, "out of memory reading the schema");
	if (rc)
		goto fail;
	free(l.oids);
	free(l.bytes);
	*out = l.s;
	return CONVBI_OK;
fail:
	free(l.oids);
	free(l.bytes);
	schema_free(l.s);
	return rc;
}
