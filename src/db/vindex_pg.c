/* vindex_pg.c -- what the value index reads from a PostgreSQL database
 * (see vindex_pg.h): each text column's distinct short values, and the
 * statistics counters that say when the cache is stale.
 *
 * Everything goes through db.h's db_run: the gate, the read-only
 * transaction, the statement deadline, the row and byte caps.  A column's
 * values come from one bounded statement under VINDEX_COLUMN_MS:
 *   SELECT DISTINCT v FROM (SELECT "c"::text AS v FROM "s"."t" LIMIT N) ...
 * for a table of at most N = VINDEX_PG_SCAN_ROWS rows (the planner's
 * estimate), the whole of it; for a bigger one, the column's most common
 * values from pg_stats (ANALYZE's sample of the whole table: the values a
 * question most likely names) together with the rows of
 * `TABLESAMPLE SYSTEM (p)`, pages picked at random over the whole table
 * to hold about N rows, deduplicated by the server.  When that statement
 * fails or runs out of time, the most common values alone, which cost no
 * scan at all.
 */
#include "db/vindex_pg.h"

#include <stdlib.h>
#include <string.h>

#include "convbi/convbi.h"
#include "db/sqltext.h"
#include "db/table.h"

/* A column's most common values as rows v (schema, table and column as
 * string literals). */
#define MCV_SQL                                                                                                      \
	"SELECT unnest(most_common_vals::text::text[]) AS v FROM pg_stats WHERE schemaname = %s AND tablename = %s " \
	"AND attname = %s"

/* Appends s as a SQL string literal ('' for a quote inside). */
static int quote_literal(struct buf *b, const char *s)
{
	int rc = buf_putc(b, '\'');
	for (; *s && !rc; s++)
		rc = *s == '\'' ? buf_puts(b, "''") : buf_putc(b, *s);
	return rc ? rc : buf_putc(b, '\'');
}

/* Runs one of our statements (its outcome in *ran, the message in err)
 * and hands every non-empty first cell to each; returns each's code. */
static int run_each(struct db *d, const char *sql, int timeout_ms, vindex_value_fn each, void *payload, int *ran, struct err *err)
{
	struct exec_limits lim = {timeout_ms, VINDEX_PER_COLUMN, VINDEX_VALUE_MAX_CHARS * 4 + 4, VINDEX_PG_RESULT_BYTES, 0, 0, 1};
	struct table *t = NULL;
	int rc = CONVBI_OK;
	*ran = db_run(d, sql, &lim, NULL, NULL, &t, err);
	for (int64_t r = 0; t && !rc && r < t->nrows; r++) {
		const char *v = table_cell(t, r, 0);
		if (v && *v)
			rc = each(v, strlen(v), payload);
	}
	table_free(t);
	return rc;
}

int vindex_pg_column(struct db *d, const struct schema_table *t, const struct schema_column *c, int timeout_ms,
                     vindex_value_fn each, void *payload, int *partial, int *sampled, struct err *err)
{
	struct buf q = BUF_INIT, id_c = BUF_INIT, id_t = BUF_INIT, lit_s = BUF_INIT, lit_t = BUF_INIT, lit_c = BUF_INIT;
	struct err serr = ERR_INIT; /* a column that cannot be read gives nothing */
	int ran = CONVBI_OK;
	const char *sch = t->schema ? t->schema : "public";
	/* the pieces quoted first: "c", "s"."t", and 's', 't', 'c' for pg_stats */
	int rc = sql_quote_ident(&id_c, c->name);
	rc = rc ? rc : sql_quote_ident(&id_t, sch);
	rc = rc ? rc : buf_putc(&id_t, '.');
	rc = rc ? rc : sql_quote_ident(&id_t, t->name);
	rc = rc ? rc : quote_literal(&lit_s, sch);
	rc = rc ? rc : quote_literal(&lit_t, t->name);
	rc = rc ? rc : quote_literal(&lit_c, c->name);
	if (rc)
		goto done;
	/* a big table: its frequent values, and the rows of a sample of its
	 * pages (TABLESAMPLE SYSTEM reads only those) spread over all of it */
	if (t->rows > VINDEX_PG_SCAN_ROWS)
		rc = buf_printf(&q,
		                "SELECT DISTINCT v FROM ((" MCV_SQL
		                ") UNION ALL (SELECT %s::text AS v FROM %s "
		                "TABLESAMPLE SYSTEM (%.6f) LIMIT %d)) u WHERE length(v) BETWEEN 1 AND %d LIMIT %d",
		                lit_s.data, lit_t.data, lit_c.data, id_c.data, id_t.data,
		                100.0 * VINDEX_PG_SCAN_ROWS / (double)t->rows, VINDEX_PG_SCAN_ROWS, VINDEX_VALUE_MAX_CHARS,
		                VINDEX_PER_COLUMN);
	else
		rc = buf_printf(&q,
		                "SELECT DISTINCT v FROM (SELECT %s::text AS v FROM %s LIMIT %d) u "
		                "WHERE length(v) BETWEEN 1 AND %d LIMIT %d",
		                id_c.data, id_t.data, VINDEX_PG_SCAN_ROWS, VINDEX_VALUE_MAX_CHARS, VINDEX_PER_COLUMN);
	*sampled = 0;
	if (rc || (rc = run_each(d, q.data, timeout_ms, each, payload, &ran, &serr)) || ran == CONVBI_ENOMEM)
		goto done;
	*sampled = !ran && t->rows > VINDEX_PG_SCAN_ROWS;
	if (!ran)
		goto done;
	/* the read failed or ran out of time: the frequent values alone */
	*partial |= ran == CONVBI_ETIMEOUT;
	buf_reset(&q);
	rc = buf_printf(&q, "SELECT DISTINCT v FROM (" MCV_SQL ") u WHERE length(v) BETWEEN 1 AND %d", lit_s.data, lit_t.data,
	                lit_c.data, VINDEX_VALUE_MAX_CHARS);
	if (!rc)
		rc = run_each(d, q.data, timeout_ms, each, payload, &ran, &serr);
done:
	buf_release(&q);
	buf_release(&id_c);
	buf_release(&id_t);
	buf_release(&lit_s);
	buf_release(&lit_t);
	buf_release(&lit_c);
	if (!rc && ran == CONVBI_ENOMEM)
		rc = err_code(err, CONVBI_ENOMEM);
	return rc;
}

int vindex_pg_changes(struct db *d, const struct schema *s, int64_t *changes, int64_t *rows, struct err *err)
{
	struct buf q = BUF_INIT;
	struct exec_limits lim = {VINDEX_COLUMN_MS, 1, 64, 256, 0, 0, 1};
	struct table *t = NULL;
	int rc = buf_puts(&q,
	                  "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint, "
	                  "coalesce(sum(n_live_tup), 0)::bigint FROM pg_stat_user_tables WHERE schemaname IN (''");
	for (size_t i = 0; i < s->ntables && !rc; i++) { /* the schemas introspected (the gate refuses current_schemas) */
		int seen = !s->tables[i].schema;
		for (size_t j = 0; j < i && !seen; j++)
			seen = s->tables[j].schema && !strcmp(s->tables[j].schema, s->tables[i].schema);
		if (!seen && !(rc = buf_puts(&q, ", ")))
			rc = quote_literal(&q, s->tables[i].schema);
	}
	if (!rc)
		rc = buf_putc(&q, ')');
	if (!rc)
		rc = db_run(d, q.data, &lim, NULL, NULL, &t, err);
	buf_release(&q);
	if (rc)
		return rc;
	const char *a = t->nrows ? table_cell(t, 0, 0) : NULL, *b = t->nrows ? table_cell(t, 0, 1) : NULL;
	*changes = a ? strtoll(a, NULL, 10) : -1;
	*rows = b ? strtoll(b, NULL, 10) : -1;
	table_free(t);
	return a && b ? CONVBI_OK
	              : err_set(err, CONVBI_EDB, "the database's statistics cannot be read; check pg_stat_user_tables");
}
