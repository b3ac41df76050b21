/* vindex_pg.c -- what the value index reads from a PostgreSQL database
 * (see vindex_pg.h): each text column's distinct short values, and the
 * statistics counters that say when the cache is stale.
 *
 * Everything goes through db.h's db_run: the gate, the read-only
 * transaction, the statement deadline, the row and byte caps.  A column's
 * values come from one bounded scan,
 *   SELECT DISTINCT v FROM (SELECT "c"::text AS v FROM "s"."t" LIMIT N) ...
 * which reads at most VINDEX_PG_SCAN_ROWS rows of the table (all of a
 * table up to that size) under VINDEX_COLUMN_MS.  A table the planner
 * says is bigger, and a scan that ran out of time, also get the column's
 * most common values from pg_stats (ANALYZE's sample of the whole table:
 * the values a question most likely names), which costs no scan at all.
 */
#include "db/vindex_pg.h"

#include <stdlib.h>
#include <string.h>

#include "convbi/convbi.h"
#include "db/sqltext.h"
#include "db/table.h"

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
	struct exec_limits lim = {timeout_ms, VINDEX_PER_COLUMN, VINDEX_VALUE_MAX_CHARS * 4 + 4, VINDEX_PG_RESULT_BYTES, 0, 0};
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
                     vindex_value_fn each, void *payload, int *partial, struct err *err)
{
	struct buf q = BUF_INIT;
	struct err serr = ERR_INIT; /* a column that cannot be read gives nothing */
	int ran = CONVBI_OK;
	const char *sch = t->schema ? t->schema : "public";
	int rc = buf_puts(&q, "SELECT DISTINCT v FROM (SELECT ");
	if (!rc)
		rc = sql_quote_ident(&q, c->name);
	if (!rc)
		rc = buf_puts(&q, "::text AS v FROM ");
	if (!rc)
		rc = sql_quote_ident(&q, sch);
	if (!rc)
		rc = buf_putc(&q, '.');
	if (!rc)
		rc = sql_quote_ident(&q, t->name);
	if (!rc)
		rc = buf_printf(&q, " LIMIT %d) s WHERE length(v) BETWEEN 1 AND %d LIMIT %d", VINDEX_PG_SCAN_ROWS,
		                VINDEX_VALUE_MAX_CHARS, VINDEX_PER_COLUMN);
	if (rc)
		goto done;
	if ((rc = run_each(d, q.data, timeout_ms, each, payload, &ran, &serr)) || ran == CONVBI_ENOMEM)
		goto done;
	if (!ran && t->rows <= VINDEX_PG_SCAN_ROWS)
		goto done; /* the scan read the whole table */
	*partial |= ran == CONVBI_ETIMEOUT;
	buf_reset(&q);
	rc = buf_puts(&q, "SELECT v FROM unnest((SELECT most_common_vals::text::text[] FROM pg_stats WHERE schemaname = ");
	if (!rc)
		rc = quote_literal(&q, sch);
	if (!rc)
		rc = buf_puts(&q, " AND tablename = ");
	if (!rc)
		rc = quote_literal(&q, t->name);
	if (!rc)
		rc = buf_puts(&q, " AND attname = ");
	if (!rc)
		rc = quote_literal(&q, c->name);
	if (!rc)
		rc = buf_printf(&q, " LIMIT 1)) AS u(v) WHERE length(v) BETWEEN 1 AND %d", VINDEX_VALUE_MAX_CHARS);
	if (rc)
		goto done;
	rc = run_each(d, q.data, timeout_ms, each, payload, &ran, &serr);
done:
	buf_release(&q);
	if (!rc && ran == CONVBI_ENOMEM)
		rc = err_code(err, CONVBI_ENOMEM);
	return rc;
}

int vindex_pg_changes(struct db *d, const struct schema *s, int64_t *changes, int64_t *rows, struct err *err)
{
	struct buf q = BUF_INIT;
	struct exec_limits lim = {VINDEX_COLUMN_MS, 1, 64, 256, 0, 0};
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
