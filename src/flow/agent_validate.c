/* agent_validate.c -- the validation stage and the execution stage.
 *
 * Validation is the hard SQL gate (db_check: the backend's read-only
 * connection, one statement, authorizer allow-list, limits) and, when the
 * engine enables it, a model-side review that may send the SQL back with a
 * reason.  Execution runs the accepted SQL through the same gate with the
 * time limit, row cap and cancellation.  Any rejection or error goes back
 * to the SQL agent with its exact message, within the repair budget.
 */
#include <string.h>

#include "db/db.h"
#include "db/table.h"
#include "db/schema.h"
#include "flow/extract.h"
#include "flow/agent.h"
#include "prompt/tmpl.h"
#include "util/jsonx.h"
#include "util/limits.h"

/* Asks the model to review; returns 1 and fills why when it says revise. */
static int review_says_revise(struct flow_run *r, const char *sql, struct buf *why)
{
	struct turn *t = r->turn;
	struct buf schema, reply, js;
	buf_init(&schema, SCHEMA_TEXT_MAX_BYTES);
	buf_init(&reply, MODEL_REPLY_MAX_BYTES);
	buf_init(&js, MODEL_REPLY_MAX_BYTES);
	int revise = -1;
	if (flow_schema_text(r, &schema)) {
		struct err e;
		err_set(&e, CONVBI_ENOMEM, "out of memory rendering the schema");
		flow_fail(r, &e);
		goto done;
	}
	struct tmpl_slot slots[] = {{"schema", buf_str(&schema), 0}, {"question", t->standalone, 8000}, {"sql", sql, 0},
	                            {"dialect", r->env->dialect, 200}};
	if (agent_call(r, STAGE_VALIDATE, "review", slots, 4, 0, 200, &reply))
		goto done;
	revise = 0;
	if (extract_json_object(&js, reply.data, reply.len) == CONVBI_OK) {
		cJSON *root = jsonx_parse(js.data, js.len);
		const char *verdict = jsonx_str(root, "verdict");
		if (verdict && !strcmp(verdict, "revise")) {
			const char *reason = jsonx_str(root, "reason");
			buf_printf(why, "the reviewer says: %s", reason && *reason ? reason : "the query does not answer the question");
			revise = 1;
		}
		cJSON_Delete(root);
	}
done:
	buf_release(&schema);
	buf_release(&reply);
	buf_release(&js);
	return revise;
}

int agent_validate(struct flow_run *r)
{
	struct turn *t = r->turn;
	struct candidate *c = &t->cand[t->ncand - 1];
	struct err err = ERR_INIT;
	int rc = db_check(r->env->db, c->sql, &err);
	if (rc == CONVBI_EREJECTED || rc == CONVBI_ESQL)
		return flow_repair_or_fail(r, rc, err.msg);
	if (rc)
		return flow_fail(r, &err);
	if (r->env->model_review) {
		struct buf why;
		buf_init(&why, REASON_MAX_BYTES);
		int revise = review_says_revise(r, c->sql, &why);
		int next = revise < 0 ? FLOW_FAIL : revise ? flow_repair_or_fail(r, CONVBI_EREJECTED, buf_str(&why)) : STAGE_EXECUTE;
		buf_release(&why);
		return next;
	}
	return STAGE_EXECUTE;
}

static int exec_cancel(void *payload)
{
	return flow_poll(payload);
}

int agent_execute(struct flow_run *r)
{
	struct turn *t = r->turn;
	struct candidate *c = &t->cand[t->ncand - 1];
	struct err err = ERR_INIT;
	if (flow_emit(r, CONVBI_EVENT_SQL, c->sql, strlen(c->sql), NULL)) {
		err_set(&err, CONVBI_ECANCELED, "the question was canceled");
		return flow_fail(r, &err);
	}
	table_free(t->result);
	t->result = NULL;
	int rc = db_run(r->env->db, c->sql, &r->env->limits, exec_cancel, r, &t->result, &err);
	if (rc == CONVBI_EREJECTED || rc == CONVBI_ESQL || rc == CONVBI_ETIMEOUT)
		return flow_repair_or_fail(r, rc, err.msg);
	if (rc)
		return flow_fail(r, &err);
	c->status = CONVBI_OK;
	return STAGE_ANSWER;
}
