/* agent_sql.c -- the SQL generation agent.
 *
 * Renders the schema (cut to the budget around the question's tables), the
 * conversation, the optional evidence and, on a repair, the previous SQL
 * with the exact error that sent it back; expects one SELECT in the
 * database's dialect ({{dialect}}: SQLite or PostgreSQL, with the version),
 * ideally in a ```sql fence (bare SQL and {"sql": ...} are tolerated).
 * A reply with no SQL in it becomes a candidate whose error says so, and
 * goes through the same bounded repair loop as a rejected query.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/schema.h"
#include "db/vindex.h"
#include "prompt/notes.h"
#include "flow/extract.h"
#include "flow/agent.h"
#include "prompt/tmpl.h"
#include "util/alloc.h"
#include "util/limits.h"

int flow_schema_text(struct flow_run *r, struct buf *out)
{
	struct ground g = GROUND_INIT;
	struct err err = ERR_INIT;
	const char *q = r->turn->standalone;
	int rc = r->env->vindex && q ? vindex_match(r->env->vindex, r->env->schema, q, &g, &err) : CONVBI_OK;
	if (rc == CONVBI_OK || rc == CONVBI_EDB) /* an unreadable index only costs the grounding */
		rc = schema_render_grounded(out, r->env->schema, q, &g, r->env->schema_budget);
	ground_release(&g);
	return rc;
}

/* The notes sections the question needs ({{notes}}), "" without notes. */
static int notes_text(struct flow_run *r, struct buf *out)
{
	const struct schema *s = r->env->schema;
	if (!r->env->notes || !s)
		return CONVBI_OK;
	const char **names = xcalloc(s->ntables + 1, sizeof *names);
	if (!names)
		return CONVBI_ENOMEM;
	for (size_t i = 0; i < s->ntables; i++)
		names[i] = s->tables[i].name;
	int rc = notes_select(out, r->env->notes, r->turn->standalone, names, s->ntables, NOTES_BUDGET_BYTES);
	free(names);
	return rc;
}

int agent_sql(struct flow_run *r)
{
	struct turn *t = r->turn;
	const struct candidate *prev = t->ncand ? &t->cand[t->ncand - 1] : NULL;
	struct buf schema, hist, reply, sql, notes;
	buf_init(&notes, NOTES_BUDGET_BYTES + 1024);
	buf_init(&schema, SCHEMA_TEXT_MAX_BYTES);
	buf_init(&hist, HISTORY_TEXT_MAX_BYTES);
	buf_init(&reply, MODEL_REPLY_MAX_BYTES);
	buf_init(&sql, SQL_TEXT_MAX_BYTES);
	struct err err = ERR_INIT;
	int next = FLOW_FAIL;
	if (flow_schema_text(r, &schema) || history_render(&hist, r->history) || notes_text(r, &notes)) {
		err_set(&err, CONVBI_ENOMEM, "out of memory rendering the schema, history or notes");
		next = flow_fail(r, &err);
		goto done;
	}
	struct tmpl_slot slots[] = {
		{"schema", buf_str(&schema), 0},
		{"history", buf_str(&hist), 0},
		{"hint", t->hint, 4000},
		{"question", t->standalone, 8000},
		{"previous_sql", prev && prev->error ? prev->sql : NULL, 8000},
		{"error", prev && prev->error ? prev->error : NULL, 2000},
		{"today", r->env->today, 16},
		{"dialect", r->env->dialect, 200},
		{"notes", buf_str(&notes), 0},
	};
	if (agent_call(r, STAGE_SQL, "sql", slots, sizeof slots / sizeof slots[0], 0, 1000, &reply))
		goto done;
	int rc = extract_sql(&sql, reply.data, reply.len, &err);
	struct candidate *c = &t->cand[t->ncand++];
	c->sql = xstrdup(rc ? reply.data : sql.data);
	if (!c->sql) {
		t->ncand--;
		err_set(&err, CONVBI_ENOMEM, "out of memory");
		next = flow_fail(r, &err);
		goto done;
	}
	if (rc) {
		next = flow_repair_or_fail(r, rc, err.msg);
		goto done;
	}
	next = STAGE_VALIDATE;
done:
	buf_release(&notes);
	buf_release(&schema);
	buf_release(&hist);
	buf_release(&reply);
	buf_release(&sql);
	return next;
}
