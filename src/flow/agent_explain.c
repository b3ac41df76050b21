/* agent_explain.c -- the explain agent: a query in plain words.
 *
 * Not a stage of the workflow: the REPL's `.explain` (through
 * convbi_session_explain_sql) asks it about the last SQL.  The model sees
 * the schema, cut around the SQL text, and the SQL; nothing runs.  The
 * model call is accounted on the turn's answer stage.
 */
#include <string.h>

#include "db/schema.h"
#include "flow/agent.h"
#include "util/limits.h"

int flow_explain(const struct flow_env *env, const char *sql, struct turn *t, convbi_event_fn cb, void *payload, struct buf *out)
{
	struct flow_run r;
	flow_run_start(&r, env, NULL, t, cb, payload);
	r.stage = STAGE_ANSWER;
	struct buf schema;
	buf_init(&schema, SCHEMA_TEXT_MAX_BYTES);
	if (env->schema)
		schema_render(&schema, env->schema, sql, env->schema_budget);
	struct tmpl_slot slots[] = {{"schema", buf_str(&schema), 0}, {"sql", sql, EXPLAIN_SQL_MAX_BYTES}};
	buf_init(out, MODEL_REPLY_MAX_BYTES);
	if (agent_call(&r, STAGE_ANSWER, "explain", slots, 2, 0, 600, out) == CONVBI_OK)
		t->status = CONVBI_OK;
	buf_release(&schema);
	buf_release(&r.reply);
	return t->status;
}
