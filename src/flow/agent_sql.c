/* agent_sql.c -- the SQL generation agent.
 *
 * Renders the schema (cut to the budget around the question's tables,
 * naming the stored values the question mentions), the business notes the
 * question needs, verified examples, the conversation, the optional
 * evidence and, on a repair, the previous SQL with the exact error that
 * sent it back; expects one SELECT in the database's dialect ({{dialect}}:
 * SQLite or PostgreSQL, with the version), ideally in a ```sql fence (bare
 * SQL and {"sql": ...} are tolerated).  A reply with no SQL in it becomes
 * a candidate whose error says so, and goes through the same bounded
 * repair loop as a rejected query.
 *
 * Examples ({{examples}}, when the engine has an examples file) are chosen
 * as DAIL-SQL does: a first call with the examples most like the question
 * writes a draft; the examples are then chosen again by the question and
 * the draft's SQL skeleton, and only when that changes them is the SQL
 * asked again.  Repairs keep the final examples.
 *
 * Candidates (env->candidates > 1): the first attempt asks for N SQL
 * candidates at FLOW_CANDIDATE_TEMPERATURE -- one request with `n` = N;
 * when the endpoint sends fewer (it ignores `n`) or refuses `n` as a bad
 * request, one request each for the rest -- and hands them to the vote
 * stage.  A repair is always one candidate.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/schema.h"
#include "db/vindex.h"
#include "flow/agent.h"
#include "flow/extract.h"
#include "prompt/examples.h"
#include "prompt/notes.h"
#include "prompt/tmpl.h"
#include "util/alloc.h"
#include "util/limits.h"

#define SQL_SHRUNK_SCHEMA_MIN_BYTES 256 /* less schema than this is not worth a second try */
#define SQL_SHRINK_SLACK_BYTES 256      /* cut this much more than the reported overflow */

int flow_schema_text(struct flow_run *r, struct buf *out)
{
	const char *q = r->turn->standalone;
	if (!r->grounded && r->env->vindex && q) {
		struct err err = ERR_INIT;
		int rc = vindex_match(r->env->vindex, r->env->schema, q, &r->ground, &err);
		r->ground_rc = rc == CONVBI_ENOMEM ? rc : CONVBI_OK; /* an unreadable index only costs the grounding */
	}
	r->grounded = 1;
	if (r->ground_rc)
		return r->ground_rc;
	return schema_render_grounded(out, r->env->schema, q, &r->ground, r->schema_budget);
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

/* Chooses the examples for the question (and the draft, when there is
 * one) into r->examples.  The words masked in the question are the
 * database's table and column names and the values it names. */
static int choose_examples(struct flow_run *r, const char *draft)
{
	const struct schema *s = r->env->schema;
	size_t n = (size_t)r->ground.n;
	for (size_t i = 0; s && i < s->ntables; i++)
		n += 1 + (size_t)s->tables[i].ncols;
	const char **domain = xcalloc(n + 1, sizeof *domain);
	if (!domain)
		return CONVBI_ENOMEM;
	size_t k = 0;
	for (size_t i = 0; s && i < s->ntables; i++) {
		domain[k++] = s->tables[i].name;
		for (int c = 0; c < s->tables[i].ncols; c++)
			domain[k++] = s->tables[i].cols[c].name;
	}
	for (int i = 0; i < r->ground.n; i++)
		domain[k++] = r->ground.v[i].value;
	struct examples_query q = {r->turn->standalone, domain, k, draft, NULL};
	int rc = examples_choose(r->env->examples, &q, EXAMPLES_K, r->examples, &r->nexamples);
	free(domain);
	return rc;
}

/* Appends a part of flow_context_text: a blank line, `-- title` and body
 * (on the heading's line when it has no line breaks). */
static int context_part(struct buf *out, const char *title, const char *body)
{
	int rc = buf_puts(out, out->len && out->data[out->len - 1] != '\n' ? "\n\n-- " : "\n-- ");
	if (!rc)
		rc = buf_printf(out, "%s%s%s", title, strchr(body, '\n') ? ":\n" : ": ", body);
	return rc || (out->len && out->data[out->len - 1] == '\n') ? rc : buf_putc(out, '\n');
}

int flow_context_text(const struct flow_env *env, const char *question, struct buf *out)
{
	struct turn t;
	struct flow_run r;
	struct buf notes = BUF_INIT, ex = BUF_INIT;
	turn_init(&t);
	t.standalone = (char *)question; /* borrowed: taken back before turn_release */
	flow_run_start(&r, env, NULL, &t, NULL, NULL);
	int rc = flow_schema_text(&r, out);
	if (!rc && env->today)
		rc = context_part(out, "today", env->today);
	if (!rc)
		rc = notes_text(&r, &notes);
	if (!rc && notes.len)
		rc = context_part(out, "business notes the question gets", notes.data);
	if (!rc && env->examples)
		rc = choose_examples(&r, NULL);
	if (!rc && env->examples)
		rc = examples_render(&ex, env->examples, r.examples, r.nexamples, EXAMPLES_BUDGET_BYTES);
	if (!rc && ex.len)
		rc = context_part(out, "verified examples the first SQL call gets (its draft may change them)", ex.data);
	t.standalone = NULL;
	turn_release(&t);
	ground_release(&r.ground);
	buf_release(&r.reply);
	buf_release(&notes);
	buf_release(&ex);
	return rc;
}

/* Everything the sql template is rendered with, for one attempt. */
struct sql_prompt {
	struct buf schema, hist, notes, examples;
	struct tmpl_slot slots[10];
};

static void prompt_init(struct sql_prompt *p)
{
	buf_init(&p->schema, SCHEMA_TEXT_MAX_BYTES);
	buf_init(&p->hist, HISTORY_TEXT_MAX_BYTES);
	buf_init(&p->notes, NOTES_BUDGET_BYTES + 1024);
	buf_init(&p->examples, EXAMPLES_BUDGET_BYTES + 1024);
}

static void prompt_release(struct sql_prompt *p)
{
	buf_release(&p->schema);
	buf_release(&p->hist);
	buf_release(&p->notes);
	buf_release(&p->examples);
}

/* Renders the parts of the prompt; prev is the candidate being repaired
 * (or NULL).  CONVBI_OK or ENOMEM/ETOOBIG. */
static int prompt_render(struct flow_run *r, struct sql_prompt *p, const struct candidate *prev)
{
	struct turn *t = r->turn;
	int rc = flow_schema_text(r, &p->schema);
	if (!rc)
		rc = history_render(&p->hist, r->history);
	if (!rc)
		rc = notes_text(r, &p->notes);
	struct tmpl_slot slots[] = {
	        {"schema", buf_str(&p->schema), 0},
	        {"history", buf_str(&p->hist), 0},
	        {"hint", t->hint, 4000},
	        {"question", t->standalone, 8000},
	        {"previous_sql", prev ? prev->sql : NULL, 8000},
	        {"error", prev ? prev->error : NULL, 2000},
	        {"today", r->env->today, 16},
	        {"dialect", r->env->dialect, 200},
	        {"notes", buf_str(&p->notes), 0},
	        {"examples", NULL, 0},
	};
	memcpy(p->slots, slots, sizeof slots);
	return rc;
}

/* (Re)renders {{examples}} from r->examples. */
static int prompt_examples(struct flow_run *r, struct sql_prompt *p)
{
	buf_reset(&p->examples);
	int rc = examples_render(&p->examples, r->env->examples, r->examples, r->nexamples, EXAMPLES_BUDGET_BYTES);
	p->slots[9].value = buf_str(&p->examples);
	return rc;
}

/* Adds a candidate from one reply: its SQL, or the reply itself with the
 * error that no SQL was found.  Returns CONVBI_OK (*why set to the
 * extraction's message when there was no SQL) or ENOMEM. */
static int add_candidate(struct flow_run *r, const struct buf *reply, struct err *why)
{
	struct turn *t = r->turn;
	struct buf sql;
	buf_init(&sql, SQL_TEXT_MAX_BYTES);
	int rc = extract_sql(&sql, reply->data, reply->len, why);
	if (rc == CONVBI_ENOMEM) { /* not the reply's fault: no candidate may go unheard for it */
		buf_release(&sql);
		return rc;
	}
	struct candidate *c = &t->cand[t->ncand];
	c->sql = xstrdup(rc ? buf_str(reply) : buf_str(&sql));
	c->group = -1;
	if (c->sql && rc && !(c->error = xstrdup(why->msg))) {
		free(c->sql);
		c->sql = NULL;
	}
	c->status = rc;
	buf_release(&sql);
	if (!c->sql)
		return CONVBI_ENOMEM;
	t->ncand++;
	return CONVBI_OK;
}

/* The first attempt with examples: a draft with the examples most like
 * the question, then the examples chosen again with the draft's skeleton.
 * *use_draft says whether the draft's reply (in reply) stands as the
 * answer's single candidate (the examples did not change).  Returns
 * CONVBI_OK, or a failure the turn already records. */
static int draft_examples(struct flow_run *r, struct sql_prompt *p, struct buf *reply, int *use_draft)
{
	struct err err = ERR_INIT;
	*use_draft = 0;
	int rc = choose_examples(r, NULL);
	if (!rc)
		rc = prompt_examples(r, p);
	if (rc) {
		err_set(&err, rc, "out of memory choosing the examples");
		return flow_fail(r, &err), rc;
	}
	if (agent_call(r, STAGE_SQL, "sql", p->slots, sizeof p->slots / sizeof p->slots[0], 0, FLOW_SQL_MAX_TOKENS, reply))
		return r->turn->status ? r->turn->status : CONVBI_ELLM;
	struct buf draft;
	buf_init(&draft, SQL_TEXT_MAX_BYTES);
	*use_draft = 1; /* a draft without SQL goes to the repair loop as it is */
	if (extract_sql(&draft, reply->data, reply->len, &err) == CONVBI_OK) {
		size_t before[EXAMPLES_K];
		int nbefore = r->nexamples;
		memcpy(before, r->examples, sizeof before);
		rc = choose_examples(r, buf_str(&draft));
		*use_draft = !rc && nbefore == r->nexamples && !memcmp(before, r->examples, (size_t)nbefore * sizeof *before);
		if (!rc && !*use_draft)
			rc = prompt_examples(r, p);
	}
	buf_release(&draft);
	if (rc) {
		err_set(&err, rc, "out of memory choosing the examples");
		flow_fail(r, &err);
	}
	return rc;
}

/* Asks for want candidates into replies[0..*got): one request with `n`,
 * then single requests for what it did not bring.  Returns CONVBI_OK or a
 * failure the turn already records. */
static int ask_candidates(struct flow_run *r, const struct sql_prompt *p, int want, struct buf *replies, int *got)
{
	struct agent_call_opts o = {0, FLOW_SQL_MAX_TOKENS, FLOW_CANDIDATE_TEMPERATURE, want, 1};
	size_t n = sizeof p->slots / sizeof p->slots[0];
	int rc = agent_call_ex(r, STAGE_SQL, "sql", p->slots, n, &o, replies, got);
	if (rc && (rc != CONVBI_EINVAL || r->turn->status))
		return rc; /* only a refused `n` goes on, one request at a time */
	o.choices = 1;
	o.soft_bad_request = 0;
	while (*got < want) {
		int one = 0;
		if ((rc = agent_call_ex(r, STAGE_SQL, "sql", p->slots, n, &o, &replies[*got], &one)))
			return rc;
		*got += one;
	}
	return CONVBI_OK;
}

/* The schema budget for one more try after the SQL prompt was refused as
 * longer than every endpoint's context (schema_len bytes of schema were
 * in it): cut by the overflow the service reported (used - limit tokens,
 * at 4 bytes a token, plus a quarter for safety), else halved.  0 when
 * what is left would be too little to be worth asking with. */
static size_t shrunk_budget(size_t schema_len, int64_t limit, int64_t used)
{
	size_t target = schema_len / 2;
	if (limit > 0 && used > limit) {
		size_t cut = (size_t)(used - limit) * 5 + SQL_SHRINK_SLACK_BYTES;
		target = cut < schema_len ? schema_len - cut : 0;
	}
	return target >= SQL_SHRUNK_SCHEMA_MIN_BYTES ? target : 0;
}

/* A context-length refusal in the SQL stage: once per question, cut the
 * schema text and run the stage again (the model calls so far stay on
 * the record).  Returns STAGE_SQL, or FLOW_FAIL (the turn failed already;
 * its message now says the schema could not be cut further). */
static int shrink_and_retry(struct flow_run *r, size_t schema_len)
{
	struct turn *t = r->turn;
	size_t budget = r->schema_shrunk ? 0 : shrunk_budget(schema_len, r->context_limit, r->context_used);
	if (!budget) {
		if (!r->schema_shrunk)
			err_prefix(&t->err,
			           "the SQL prompt is too long even without most of the schema (%zu bytes of it): ", schema_len);
		return FLOW_FAIL;
	}
	r->schema_shrunk = 1;
	r->schema_budget = budget;
	flow_unfail(r);
	char text[200];
	int n = snprintf(text, sizeof text,
	                 "the prompt is longer than the model's context; trying once more with the schema cut "
	                 "from %zu to %zu bytes",
	                 schema_len, budget);
	flow_emit(r, CONVBI_EVENT_RETRY, text, (size_t)(n < (int)sizeof text ? n : (int)sizeof text - 1), NULL);
	return STAGE_SQL;
}

int agent_sql(struct flow_run *r)
{
	struct turn *t = r->turn;
	const struct candidate *prev = t->ncand ? &t->cand[t->ncand - 1] : NULL;
	int first = !t->ncand, want = first ? r->env->candidates : 1, got = 0, next = FLOW_FAIL;
	if (want < 1)
		want = 1;
	if (t->ncand + want > TURN_MAX_CANDIDATES)
		want = TURN_MAX_CANDIDATES - t->ncand;
	struct sql_prompt p;
	struct buf replies[TURN_MAX_CANDIDATES];
	struct err err = ERR_INIT;
	prompt_init(&p);
	for (int i = 0; i < want; i++)
		buf_init(&replies[i], MODEL_REPLY_MAX_BYTES);
	if (prompt_render(r, &p, prev && prev->error ? prev : NULL)) {
		err_set(&err, CONVBI_ENOMEM, "out of memory rendering the schema, history or notes");
		next = flow_fail(r, &err);
		goto done;
	}
	int use_draft = 0;
	if (r->env->examples && !r->examples_chosen) {
		r->examples_chosen = 1;
		if (draft_examples(r, &p, &replies[0], &use_draft))
			goto done;
	} else if (r->env->examples && prompt_examples(r, &p)) {
		err_set(&err, CONVBI_ENOMEM, "out of memory rendering the examples");
		next = flow_fail(r, &err);
		goto done;
	}
	if (use_draft && want == 1) {
		got = 1;
	} else if (want > 1) {
		if (ask_candidates(r, &p, want, replies, &got))
			goto done;
	} else if (agent_call(r, STAGE_SQL, "sql", p.slots, sizeof p.slots / sizeof p.slots[0], 0, FLOW_SQL_MAX_TOKENS,
	                      &replies[0])) {
		goto done;
	} else {
		got = 1;
	}
	int from = t->ncand;
	for (int i = 0; i < got; i++) {
		if (add_candidate(r, &replies[i], &err)) {
			err_set(&err, CONVBI_ENOMEM, "out of memory");
			next = flow_fail(r, &err);
			goto done;
		}
	}
	if (got > 1) {
		t->vote_first = from;
		next = STAGE_VOTE;
	} else if (t->cand[from].error) {
		next = flow_repair_or_fail(r, t->cand[from].status, t->cand[from].error);
	} else {
		next = STAGE_VALIDATE;
	}
done:
	if (next == FLOW_FAIL && t->status == CONVBI_ECONTEXT)
		next = shrink_and_retry(r, p.schema.len);
	prompt_release(&p);
	for (int i = 0; i < want; i++)
		buf_release(&replies[i]);
	return next;
}
