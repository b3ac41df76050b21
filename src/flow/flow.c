/* flow.c -- the workflow table, its runner and its graph (see flow.h).
 *
 * The runner loops `stage = table[stage].step(run)` until FLOW_DONE or
 * FLOW_FAIL, emitting a STAGE event as each stage starts and timing it.
 * A hard cap on steps (FLOW_MAX_STEPS) guards against a table bug ever
 * looping forever.  agent_call is the one place agents reach the model.
 */
#include "flow/agent.h"

#include <stdio.h>
#include <string.h>

#include "llm/llm.h"
#include "prompt/tmpl.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/limits.h"

#define FLOW_MAX_STEPS 64

struct edge {
	int to; /* stage id, FLOW_DONE or FLOW_FAIL */
	const char *label;
};

#define STAGE_MAX_TEMPLATES 2
#define STAGE_MAX_EDGES 5

/* A template and the slots it may use: the contract with prompts/ (see
 * prompts/README.md).  SLOTS(...) lists them and counts them. */
#define SLOTS(...) (const char *const[]){__VA_ARGS__}, sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *)

struct stage_row {
	int id;
	const char *name;
	int (*step)(struct flow_run *r);
	struct tmpl_spec templates[STAGE_MAX_TEMPLATES]; /* the prompts it renders; name NULL ends */
	struct edge edges[STAGE_MAX_EDGES];              /* for the graph; terminated by label NULL */
};

static const struct stage_row stages[STAGE_COUNT] = {
        {STAGE_INTENT,
         "intent",
         agent_intent,
         {{"intent", SLOTS("tables", "history", "question", "today")}},
         {{STAGE_SQL, "data_question / follow_up"}, {STAGE_REPLY, "chitchat / out_of_scope"}, {0, NULL}}},
        {STAGE_SQL,
         "sql",
         agent_sql,
         {{"sql",
           SLOTS("schema", "history", "hint", "question", "previous_sql", "error", "today", "notes", "dialect", "examples")}},
         {{STAGE_VALIDATE, "candidate"},
          {STAGE_VOTE, "candidates"},
          {STAGE_SQL, "prompt too long: less schema, once"},
          {FLOW_FAIL, "model failure"},
          {0, NULL}}},
        {STAGE_VALIDATE,
         "validate",
         agent_validate,
         {{"review", SLOTS("schema", "question", "sql", "dialect")}},
         {{STAGE_EXECUTE, "accepted"}, {STAGE_SQL, "rejected, repairs left"}, {FLOW_FAIL, "repairs exhausted"}, {0, NULL}}},
        {STAGE_EXECUTE,
         "execute",
         agent_execute,
         {{NULL, NULL, 0}},
         {{STAGE_ANSWER, "rows"}, {STAGE_SQL, "error, repairs left"}, {FLOW_FAIL, "repairs exhausted"}, {0, NULL}}},
        {STAGE_VOTE,
         "vote",
         agent_vote,
         {{NULL, NULL, 0}},
         {{STAGE_ANSWER, "a result won"}, {STAGE_SQL, "none ran, repairs left"}, {FLOW_FAIL, "repairs exhausted"}, {0, NULL}}},
        {STAGE_ANSWER,
         "answer",
         agent_answer,
         {{"answer", SLOTS("question", "sql", "rows", "row_count", "truncated", "notes")},
          {"explain", SLOTS("schema", "sql")}}, /* .explain (agent_explain.c), accounted here */
         {{FLOW_DONE, "answered"}, {0, NULL}}},
        {STAGE_REPLY,
         "reply",
         agent_reply,
         {{"refuse", SLOTS("question")}, {"help", SLOTS("question")}},
         {{FLOW_DONE, "replied"}, {0, NULL}}},
};

const char *flow_stage_name(int stage)
{
	return stage >= 0 && stage < STAGE_COUNT ? stages[stage].name : "?";
}

int flow_prompts_load(struct tmpl_set **out, const char *dir, struct err *err)
{
	struct tmpl_spec specs[STAGE_COUNT * STAGE_MAX_TEMPLATES];
	size_t n = 0;
	for (int s = 0; s < STAGE_COUNT; s++)
		for (int i = 0; i < STAGE_MAX_TEMPLATES && stages[s].templates[i].name; i++)
			specs[n++] = stages[s].templates[i];
	return tmpl_set_load(out, dir, specs, n, err);
}

static int emit_event(struct flow_run *r, int kind, const char *text, size_t len, const char *endpoint, int restarted)
{
	if (r->env->interrupt && atomic_load(r->env->interrupt))
		r->canceled = 1;
	if (!r->cb || r->canceled)
		return r->canceled;
	convbi_event ev = {kind, flow_stage_name(r->stage), text ? text : "", text ? len : 0, endpoint, restarted};
	r->last_event_ms = clock_mono_ms();
	if (r->cb(&ev, r->payload))
		r->canceled = 1;
	return r->canceled;
}

int flow_emit(struct flow_run *r, int kind, const char *text, size_t len, const char *endpoint)
{
	return emit_event(r, kind, text, len, endpoint, 0);
}

int flow_poll(struct flow_run *r)
{
	if (r->cb && !r->canceled && clock_mono_ms() - r->last_event_ms >= CONVBI_PROGRESS_MS)
		flow_emit(r, CONVBI_EVENT_PROGRESS, "", 0, NULL);
	return r->canceled;
}

int flow_fail(struct flow_run *r, const struct err *err)
{
	struct turn *t = r->turn;
	t->status = err->code ? err->code : CONVBI_ELLM;
	t->err = *err;
	snprintf(t->fail_stage, sizeof t->fail_stage, "%s", flow_stage_name(r->stage));
	return FLOW_FAIL;
}

void flow_unfail(struct flow_run *r)
{
	struct turn *t = r->turn;
	t->status = CONVBI_OK;
	err_clear(&t->err);
	t->fail_stage[0] = '\0';
}

int flow_repair_or_fail(struct flow_run *r, int code, const char *why)
{
	struct turn *t = r->turn;
	struct candidate *c = t->ncand ? &t->cand[t->ncand - 1] : NULL;
	if (c && !c->error) {
		c->error = xstrdup(why);
		c->status = code;
	}
	if (t->repairs < r->env->max_repairs && t->ncand < TURN_MAX_CANDIDATES) {
		t->repairs++;
		return STAGE_SQL;
	}
	struct err e;
	err_set(&e, CONVBI_EREPAIR, "no valid SQL after %d repair attempt%s; last error: %s", t->repairs,
	        t->repairs == 1 ? "" : "s", why);
	return flow_fail(r, &e);
}

void flow_run_start(struct flow_run *r, const struct flow_env *env, const struct history *h, struct turn *t, convbi_event_fn cb,
                    void *payload)
{
	memset(r, 0, sizeof *r);
	r->env = env;
	r->turn = t;
	r->history = h;
	r->cb = cb;
	r->payload = payload;
	buf_init(&r->reply, MODEL_REPLY_MAX_BYTES);
	r->schema_budget = env->schema_budget;
	r->deadline_mono = clock_mono_ms() + (env->deadline_ms > 0 ? env->deadline_ms : FLOW_DEADLINE_MS);
}

int flow_run(const struct flow_env *env, const struct history *h, struct turn *t, convbi_event_fn cb, void *payload)
{
	struct flow_run r;
	int64_t start = clock_mono_ms(), cpu0 = clock_thread_cpu_ns();
	flow_run_start(&r, env, h, t, cb, payload);
	int stage = STAGE_INTENT;
	for (int steps = 0; stage >= 0; steps++) {
		if (steps == FLOW_MAX_STEPS) {
			struct err e;
			err_set(&e, CONVBI_EREPAIR, "the workflow took more than %d steps; this is a bug, please report it",
			        FLOW_MAX_STEPS);
			stage = flow_fail(&r, &e);
			break;
		}
		r.stage = stage;
		if (flow_emit(&r, CONVBI_EVENT_STAGE, stages[stage].name, strlen(stages[stage].name), NULL) || r.canceled) {
			struct err e;
			err_set(&e, CONVBI_ECANCELED, "the question was canceled");
			stage = flow_fail(&r, &e);
			break;
		}
		if (clock_mono_ms() >= r.deadline_mono) {
			struct err e;
			err_set(&e, CONVBI_ETIMEOUT,
			        "the question's %lld ms deadline passed before the %s stage; raise the deadline or simplify the question",
			        (long long)(r.deadline_mono - start), stages[stage].name);
			stage = flow_fail(&r, &e);
			break;
		}
		int64_t t0 = clock_mono_ms();
		int next = stages[stage].step(&r);
		t->stage[stage].ms += clock_mono_ms() - t0;
		stage = next;
	}
	if (stage == FLOW_DONE)
		t->status = CONVBI_OK;
	t->elapsed_ms = clock_mono_ms() - start;
	t->cpu_ns = clock_thread_cpu_ns() - cpu0;
	buf_release(&r.reply);
	ground_release(&r.ground);
	return t->status;
}

/* ---- agent_call: the one way an agent reaches the model ------------------ */

static int run_cancel(void *payload)
{
	struct flow_run *r = payload;
	if (r->env->interrupt && atomic_load(r->env->interrupt))
		r->canceled = 1;
	return flow_poll(r) || clock_mono_ms() >= r->deadline_mono;
}

static int run_delta(void *payload, const char *text, size_t len)
{
	struct flow_run *r = payload;
	return flow_emit(r, CONVBI_EVENT_TOKEN, text, len, NULL);
}

static void run_retry(void *payload, const struct llm_attempt *a, int restarted_stream, const char *next)
{
	struct flow_run *r = payload;
	char text[400];
	int n = llm_retry_text(text, sizeof text, a, restarted_stream, next);
	emit_event(r, CONVBI_EVENT_RETRY, text, (size_t)n, a->endpoint, restarted_stream);
}

int agent_call(struct flow_run *r, int stage, const char *name, const struct tmpl_slot *slots, size_t n, int stream,
               int max_tokens, struct buf *reply)
{
	struct agent_call_opts o = {stream, max_tokens, 0, 1, 0};
	int got = 0;
	return agent_call_ex(r, stage, name, slots, n, &o, reply, &got);
}

int agent_call_ex(struct flow_run *r, int stage, const char *name, const struct tmpl_slot *slots, size_t n,
                  const struct agent_call_opts *o, struct buf *replies, int *nreplies)
{
	struct turn *t = r->turn;
	struct buf prompt;
	struct err err = ERR_INIT;
	*nreplies = 0;
	buf_init(&prompt, PROMPT_MAX_BYTES);
	const char *text = tmpl_text(r->env->prompts, name);
	if (!text) {
		err_set(&err, CONVBI_ETEMPLATE, "the prompt template `%s` is not loaded; check the prompts directory", name);
		return flow_fail(r, &err), CONVBI_ETEMPLATE;
	}
	int rc = tmpl_render(&prompt, text, slots, n, &err);
	if (rc) {
		if (rc == CONVBI_ETOOBIG)
			err_set(&err, rc, "the %s prompt exceeds %zu bytes; shorten the question or the history", name,
			        prompt.max);
		flow_fail(r, &err);
		buf_release(&prompt);
		return rc;
	}
	struct chat_msg msg = {"user", buf_str(&prompt)};
	int64_t left = r->deadline_mono - clock_mono_ms();
	struct llm_request req = {.msgs = &msg,
	                          .n = 1,
	                          .max_tokens = o->max_tokens,
	                          .temperature = o->temperature,
	                          .stream = o->stream,
	                          .choices = o->choices,
	                          .deadline_ms = left > 0 ? (int)(left < 3600000 ? left : 3600000) : 1,
	                          .on_delta = o->stream ? run_delta : NULL,
	                          .on_retry = run_retry,
	                          .cancel = run_cancel,
	                          .payload = r};
	const struct llm_config *cfg = llm_config_of(r->env->llm);
	if (cfg->retry.deadline_ms < req.deadline_ms)
		req.deadline_ms = cfg->retry.deadline_ms;
	struct llm_reply rep;
	rc = llm_chat(r->env->llm, &req, &rep, &err);
	struct stage_stats *st = &t->stage[stage];
	st->calls++;
	if (rep.prompt_tokens > 0)
		st->prompt_tokens += rep.prompt_tokens;
	if (rep.completion_tokens > 0)
		st->completion_tokens += rep.completion_tokens;
	st->cached_tokens += rep.cached_tokens;
	st->cost_usd += rep.cost_usd;
	if (rep.reserved && rc == CONVBI_OK)
		st->reserved_tokens +=
		        (rep.prompt_tokens > 0 ? rep.prompt_tokens : 0) + (rep.completion_tokens > 0 ? rep.completion_tokens : 0);
	if (rep.nattempts)
		snprintf(st->endpoint, sizeof st->endpoint, "%s", rep.attempts[rep.nattempts - 1].endpoint);
	for (size_t i = 0; i < rep.nattempts && t->nattempts < TURN_MAX_ATTEMPTS; i++) {
		t->attempts[t->nattempts].stage = stage;
		t->attempts[t->nattempts++].a = rep.attempts[i];
	}
	int want = o->choices > 1 ? o->choices : 1;
	for (int i = 0; rc == CONVBI_OK && i < want && i <= rep.nextra; i++) {
		buf_reset(&replies[i]);
		rc = buf_puts(&replies[i], i ? rep.extra[i - 1] : rep.content);
		if (rc)
			err_set(&err, rc, "the model's %s reply is larger than %zu bytes", name, replies[i].max);
		else
			(*nreplies)++;
	}
	if (rc && o->soft_bad_request && rep.cls == LLM_BAD_REQUEST && !r->canceled) {
		llm_reply_release(&rep);
		buf_release(&prompt);
		return CONVBI_EINVAL;
	}
	if (rc == CONVBI_ECONTEXT) {
		r->context_limit = rep.context_limit;
		r->context_used = rep.context_used;
	}
	if (rc) {
		if (r->canceled && rc != CONVBI_ETOOBIG)
			err_set(&err, CONVBI_ECANCELED, "the question was canceled");
		else if (rc == CONVBI_ECANCELED)
			err_set(&err, CONVBI_ETIMEOUT, "the question's deadline passed during the %s stage",
			        flow_stage_name(stage));
		flow_fail(r, &err);
	}
	llm_reply_release(&rep);
	buf_release(&prompt);
	return rc;
}

/* ---- the graph, printed from the same table ------------------------------ */

static const char *node_name(int id)
{
	return id == FLOW_DONE ? "done" : id == FLOW_FAIL ? "fail" : stages[id].name;
}

int flow_graph(struct buf *out, const char *format)
{
	int dot = format && !strcmp(format, "dot");
	if (format && !dot && strcmp(format, "mermaid"))
		return CONVBI_EINVAL;
	int rc = buf_puts(
	        out,
	        dot ? "digraph convbi {\n  rankdir=LR;\n  start [shape=point];\n  done [shape=doublecircle];\n  fail [shape=octagon];\n  start -> intent;\n"
	            : "flowchart LR\n  start((start)) --> intent\n");
	for (int s = 0; !rc && s < STAGE_COUNT; s++)
		for (const struct edge *e = stages[s].edges; !rc && e->label; e++)
			rc = dot ? buf_printf(out, "  %s -> %s [label=\"%s\"];\n", stages[s].name, node_name(e->to), e->label)
			         : buf_printf(out, "  %s -->|%s| %s\n", stages[s].name, e->label, node_name(e->to));
	if (!rc && dot)
		rc = buf_puts(out, "}\n");
	return rc;
}
