/* flow.h -- the workflow: a table-driven state machine over one turn.
 *
 *   intent --data/follow_up--> sql --> validate --ok--> execute --ok--> answer
 *      |                        ^         |                 |
 *      +--chitchat/out_of_scope-+-> reply  +--rejected (repairs left)--+
 *                               +------------ error (repairs left) ----+
 *
 * Each stage is one row of a table {id, name, step function, edges}; a step
 * returns the next stage (or FLOW_DONE / FLOW_FAIL).  `convbi graph` prints
 * the same table as Mermaid or Graphviz dot, so the picture cannot drift
 * from the code.  Agents (agent_*.c) share one shape: render a template
 * from prompts/, call the llm door, parse tolerantly, write into the turn.
 */
#ifndef CONVBI_FLOW_FLOW_H
#define CONVBI_FLOW_FLOW_H

#include <stdint.h>

#include "convbi/convbi.h"
#include "db/exec.h"
#include "flow/history.h"
#include "flow/turn.h"

struct llm;
struct tmpl_set;
struct schema;

#define FLOW_DONE (-1)
#define FLOW_FAIL (-2)

/* What the flow runs with; everything borrowed from the engine/session. */
struct flow_env {
	struct llm *llm;
	const struct tmpl_set *prompts;
	const struct schema *schema;
	const char *table_list;      /* "customers, orders, ..." for the intent agent */
	struct exec *exec;           /* the session's read-only connection */
	struct exec_limits limits;
	int max_repairs;
	size_t schema_budget;        /* bytes of schema text */
	int model_review;
	int stream;
	int64_t deadline_ms;         /* whole question */
};

/* One question in flight. */
struct flow_run {
	const struct flow_env *env;
	struct turn *turn;
	const struct history *history;
	convbi_event_fn cb;
	void *payload;
	int canceled;
	int stage;                   /* the running stage */
	int64_t deadline_mono;
	const char *intent_reply;    /* borrowed from run-local storage */
	struct buf reply;            /* intent agent's reply text, if any */
};

/* Runs the workflow for t (question already set).  Returns t->status. */
int flow_run(const struct flow_env *env, const struct history *h, struct turn *t, convbi_event_fn cb, void *payload);
/* The workflow graph, "mermaid" or "dot". */
int flow_graph(struct buf *out, const char *format);

/* ---- shared by the agents ------------------------------------------------ */
#include "prompt/tmpl.h"
/* Renders template `name`, calls the model, records usage, time and
 * attempts for `stage` in the turn.  reply receives the content. */
int agent_call(struct flow_run *r, int stage, const char *name, const struct tmpl_slot *slots, size_t n,
               int stream, int max_tokens, struct buf *reply);
/* Emits an event; returns non-zero (and marks the run canceled) when the
 * callback asks to cancel. */
int flow_emit(struct flow_run *r, int kind, const char *text, size_t len, const char *endpoint);
/* Fails the turn with code and message from err; returns FLOW_FAIL. */
int flow_fail(struct flow_run *r, const struct err *err);

int agent_intent(struct flow_run *r);
int agent_reply(struct flow_run *r);
int agent_sql(struct flow_run *r);
int agent_validate(struct flow_run *r);
int agent_execute(struct flow_run *r);
int agent_answer(struct flow_run *r);

/* The template names and their slots (for tmpl_set_load). */
extern const struct tmpl_spec flow_templates[];
extern const size_t flow_ntemplates;

#endif
