/* agent_validate.c -- the validation, execution and vote stages.
 *
 * Validation is the hard SQL gate (db_check: the backend's read-only
 * connection, one statement, authorizer allow-list, limits) and, when the
 * engine enables it, a model-side review that may send the SQL back with a
 * reason.  Execution runs the accepted SQL through the same gate with the
 * time limit, row cap and cancellation.  Any rejection or error goes back
 * to the SQL agent with its exact message, within the repair budget.
 *
 * The vote (`--candidates N`) takes the candidates of one SQL stage, runs
 * each through the same gate and limits, groups those that ran by equal
 * results (util/rescmp, the comparison `convbi eval` makes: rows as a
 * multiset, in order when both SQLs order them) and answers with the first
 * candidate of the largest group, a tie going to the group seen first.
 * The model review is not asked about a vote's candidates: the vote is the
 * check.  When none ran, the last one's error goes back to the SQL agent as
 * any failure does.  Candidates whose SQL is the same text (leading and
 * trailing blanks and semicolons aside) run once: a repeat takes the first
 * one's outcome -- its group, or its error -- without a run of its own (16
 * equal candidates had cost 16 runs of the query).
 */
#include <string.h>

#include "db/db.h"
#include "db/table.h"
#include "db/schema.h"
#include "flow/extract.h"
#include "flow/agent.h"
#include "prompt/tmpl.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/jsonx.h"
#include "util/limits.h"
#include "util/rescmp.h"

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
	struct tmpl_slot slots[] = {{"schema", buf_str(&schema), 0},
	                            {"question", t->standalone, 8000},
	                            {"sql", sql, 0},
	                            {"dialect", r->env->dialect, 200}};
	if (agent_call(r, STAGE_VALIDATE, "review", slots, 4, 0, 200, &reply))
		goto done;
	revise = 0;
	if (extract_json_object(&js, reply.data, reply.len) == CONVBI_OK) {
		cJSON *root = jsonx_parse(js.data, js.len);
		const char *verdict = jsonx_str(root, "verdict");
		if (verdict && !strcmp(verdict, "revise")) {
			const char *reason = jsonx_str(root, "reason");
			buf_printf(why, "the reviewer says: %s",
			           reason && *reason ? reason : "the query does not answer the question");
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
		int next = revise < 0 ? FLOW_FAIL
		           : revise   ? flow_repair_or_fail(r, CONVBI_EREJECTED, buf_str(&why))
		                      : STAGE_EXECUTE;
		buf_release(&why);
		return next;
	}
	return STAGE_EXECUTE;
}

static int exec_cancel(void *payload)
{
	return flow_poll(payload);
}

/* The engine's limits with the time cut to what is left of the question's
 * deadline, so that N candidates (or a repair late in the question) never
 * run past it; at least 1 ms, the flow fails the turn at its next step. */
static struct exec_limits run_limits(const struct flow_run *r)
{
	struct exec_limits lim = r->env->limits;
	int64_t left = r->deadline_mono - clock_mono_ms();
	if (left < 1)
		left = 1;
	if (lim.timeout_ms <= 0 || left < lim.timeout_ms)
		lim.timeout_ms = (int)left;
	return lim;
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
	struct exec_limits lim = run_limits(r);
	int rc = db_run(r->env->db, c->sql, &lim, exec_cancel, r, &t->result, &err);
	if (rc == CONVBI_EREJECTED || rc == CONVBI_ESQL || rc == CONVBI_ETIMEOUT)
		return flow_repair_or_fail(r, rc, err.msg);
	if (rc)
		return flow_fail(r, &err);
	c->status = CONVBI_OK;
	t->chosen = t->ncand - 1;
	return STAGE_ANSWER;
}

/* ---- the vote ------------------------------------------------------------------- */

static const char *table_cell_of(const void *obj, int64_t row, int col)
{
	return table_cell(obj, row, col);
}

/* 1 when two candidates' results are the same (util/rescmp: the
 * comparison `convbi eval` makes), in order when both SQLs order them;
 * -1 without memory. */
static int same_result(const struct candidate *a, const struct candidate *b)
{
	struct rescmp_result x = {a->result->ncols, a->result->nrows, table_cell_of, a->result};
	struct rescmp_result y = {b->result->ncols, b->result->nrows, table_cell_of, b->result};
	return rescmp_match(&x, &y, rescmp_sql_orders(a->sql) && rescmp_sql_orders(b->sql), NULL, 0);
}

/* Checks and runs candidate c; CONVBI_OK when it ran (c->result), its
 * gate or database error recorded on it, or another failure to stop on. */
static int run_candidate(struct flow_run *r, struct candidate *c, struct err *err)
{
	int rc = db_check(r->env->db, c->sql, err);
	if (!rc && flow_emit(r, CONVBI_EVENT_SQL, c->sql, strlen(c->sql), NULL))
		return err_set(err, CONVBI_ECANCELED, "the question was canceled");
	struct exec_limits lim = run_limits(r);
	if (!rc)
		rc = db_run(r->env->db, c->sql, &lim, exec_cancel, r, &c->result, err);
	if (rc == CONVBI_EREJECTED || rc == CONVBI_ESQL || rc == CONVBI_ETIMEOUT) {
		c->status = rc;
		if (!(c->error = xstrdup(err->msg)))
			return err_set(err, CONVBI_ENOMEM, "out of memory");
		return CONVBI_OK;
	}
	c->status = rc;
	return rc;
}

/* Length of sql without trailing blanks and semicolons; *start skips the
 * leading blanks. */
static size_t sql_core(const char *sql, const char **start)
{
	while (*sql == ' ' || *sql == '\t' || *sql == '\n' || *sql == '\r')
		sql++;
	size_t n = strlen(sql);
	while (n && strchr(" \t\n\r;", sql[n - 1]))
		n--;
	*start = sql;
	return n;
}

/* The earlier candidate of this vote with the same SQL as candidate i
 * among those whose SQL was tried (tried[j] = 1), or NULL. */
static const struct candidate *same_sql_before(const struct turn *t, const char *tried, int i)
{
	const char *a, *b;
	size_t na = sql_core(t->cand[i].sql, &a);
	for (int j = t->vote_first; j < i; j++) {
		const struct candidate *p = &t->cand[j];
		if (!tried[j])
			continue; /* a reply without SQL */
		size_t nb = sql_core(p->sql, &b);
		if (na == nb && !memcmp(a, b, na))
			return p;
	}
	return NULL;
}

int agent_vote(struct flow_run *r)
{
	struct turn *t = r->turn;
	struct err err = ERR_INIT;
	int rep[TURN_MAX_CANDIDATES], size[TURN_MAX_CANDIDATES], ngroups = 0;
	char tried[TURN_MAX_CANDIDATES] = {0}; /* 1 = its SQL went to the gate */
	for (int i = t->vote_first; i < t->ncand; i++) {
		struct candidate *c = &t->cand[i];
		c->group = -1;
		if (c->error)
			continue; /* the reply held no SQL */
		const struct candidate *twin = same_sql_before(t, tried, i);
		tried[i] = 1;
		if (twin) { /* ran (or was refused) already: the same outcome, no second run */
			c->status = twin->status;
			if (twin->error && !(c->error = xstrdup(twin->error))) {
				err_set(&err, CONVBI_ENOMEM, "out of memory");
				return flow_fail(r, &err);
			}
			if (!twin->error && twin->group >= 0)
				c->group = twin->group, size[twin->group]++;
			continue;
		}
		if (run_candidate(r, c, &err))
			return flow_fail(r, &err);
		if (c->error)
			continue;
		for (int g = 0; g < ngroups && c->group < 0; g++) {
			int same = same_result(&t->cand[rep[g]], c);
			if (same < 0) {
				err_set(&err, CONVBI_ENOMEM, "out of memory comparing the candidates' results");
				return flow_fail(r, &err);
			}
			if (same)
				c->group = g, size[g]++;
		}
		if (c->group < 0) {
			rep[ngroups] = i;
			size[ngroups] = 1;
			c->group = ngroups++;
		}
	}
	t->vote_groups = ngroups;
	if (!ngroups) {
		const struct candidate *last = &t->cand[t->ncand - 1];
		return flow_repair_or_fail(r, last->status ? last->status : CONVBI_ESQL,
		                           last->error ? last->error : "no candidate ran");
	}
	int won = 0;
	for (int g = 1; g < ngroups; g++)
		if (size[g] > size[won])
			won = g; /* a tie goes to the group seen first */
	t->chosen = rep[won];
	table_free(t->result);
	t->result = t->cand[t->chosen].result;
	t->cand[t->chosen].result = NULL;
	for (int i = t->vote_first; i < t->ncand; i++) { /* only the answer's rows are kept */
		table_free(t->cand[i].result);
		t->cand[i].result = NULL;
	}
	return STAGE_ANSWER;
}
