/* agent.h -- what the workflow's stages share; private to src/flow/.
 *
 * struct flow_run is one question in flight.  Every stage is a step
 * function (agent_*) that reads and writes the run's turn and returns the
 * next stage id, FLOW_DONE or FLOW_FAIL.  Agents reach the model only
 * through agent_call, tell the caller what happens only through flow_emit,
 * and end a turn only through flow_fail or flow_repair_or_fail, so the
 * accounting (tokens, time, attempts, the failing stage) has one home.
 * Nothing outside src/flow/ includes this header.
 */
#ifndef CONVBI_FLOW_AGENT_H
#define CONVBI_FLOW_AGENT_H

#include "db/schema.h"
#include "flow/flow.h"
#include "prompt/examples.h"
#include "prompt/tmpl.h"

#define FLOW_CANDIDATE_TEMPERATURE 0.7 /* sampling for a vote's candidates */
#define FLOW_SQL_MAX_TOKENS 1000       /* of one SQL reply */
#define FLOW_DEADLINE_MS 120000        /* a question's deadline when the engine sets none */

/* One question in flight. */
struct flow_run {
	const struct flow_env *env;
	struct turn *turn;
	const struct history *history;
	convbi_event_fn cb;
	void *payload;
	int canceled;
	int64_t last_event_ms; /* monotonic: when the callback was last called */
	int stage;             /* the running stage */
	int64_t deadline_mono;
	const char *intent_reply;    /* borrowed from run-local storage */
	struct buf reply;            /* intent agent's reply text, if any */
	struct ground ground;        /* the value-index matches of the question */
	int grounded;                /* ground looked up (once per question) */
	int ground_rc;               /* and how that went: OK or ENOMEM */
	size_t examples[EXAMPLES_K]; /* the verified examples shown, best first */
	int nexamples;
	int examples_chosen;   /* 1 once chosen for good (after the draft) */
	size_t schema_budget;  /* bytes of schema text: env's, less after a context-length refusal */
	int schema_shrunk;     /* the SQL stage already retried with less schema */
	int64_t context_limit; /* the last context-length refusal: window and tokens asked (0 = not said) */
	int64_t context_used;
};

/* Starts a run of env on turn t (history h may be NULL): everything
 * zeroed, the deadline set from env (FLOW_DEADLINE_MS when it has none). */
void flow_run_start(struct flow_run *r, const struct flow_env *env, const struct history *h, struct turn *t, convbi_event_fn cb,
                    void *payload);

/* How agent_call_ex calls the model. */
struct agent_call_opts {
	int stream;     /* stream TOKEN events */
	int max_tokens; /* per choice */
	double temperature;
	int choices;          /* completions wanted (1 = one) */
	int soft_bad_request; /* a 400 the endpoint sends (say, for `n`)
	                                returns CONVBI_EINVAL without failing the turn */
};

/* Renders template `name`, calls the model, records usage, time and
 * attempts for `stage` in the turn.  reply receives the content.  On
 * failure the turn is already failed (flow_fail) and the code returned. */
int agent_call(struct flow_run *r, int stage, const char *name, const struct tmpl_slot *slots, size_t n, int stream,
               int max_tokens, struct buf *reply);
/* agent_call with o's settings; replies[0..*nreplies) receive the choices
 * the endpoint sent (at most o->choices; replies holds that many bufs). */
int agent_call_ex(struct flow_run *r, int stage, const char *name, const struct tmpl_slot *slots, size_t n,
                  const struct agent_call_opts *o, struct buf *replies, int *nreplies);
/* Emits an event; returns non-zero (and marks the run canceled) when the
 * callback asks to cancel. */
int flow_emit(struct flow_run *r, int kind, const char *text, size_t len, const char *endpoint);
/* Called while waiting on the model or the SQL: sends a PROGRESS event
 * when the callback has heard nothing for CONVBI_PROGRESS_MS, so that it
 * can cancel promptly.  Returns non-zero when the run is canceled. */
int flow_poll(struct flow_run *r);
/* Fails the turn with code and message from err; returns FLOW_FAIL. */
int flow_fail(struct flow_run *r, const struct err *err);
/* Takes back a flow_fail the running stage recovers from (the model
 * calls and their attempts stay recorded). */
void flow_unfail(struct flow_run *r);
/* Records why the last candidate failed and decides: back to the SQL stage
 * while repairs are left (returns STAGE_SQL), else fails the turn with
 * CONVBI_EREPAIR (returns FLOW_FAIL). */
int flow_repair_or_fail(struct flow_run *r, int code, const char *why);

/* Appends the schema text for the run's question: rendered within the
 * budget, grounded by the value index when there is one.  Returns
 * CONVBI_OK or ENOMEM/ETOOBIG. */
int flow_schema_text(struct flow_run *r, struct buf *out);

/* The step functions, one per row of the stage table (flow.c). */
int agent_intent(struct flow_run *r);
int agent_reply(struct flow_run *r);
int agent_sql(struct flow_run *r);
int agent_validate(struct flow_run *r);
int agent_execute(struct flow_run *r);
int agent_vote(struct flow_run *r);
int agent_answer(struct flow_run *r);

#endif
