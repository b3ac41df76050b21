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
 * from the code.  A row also names the stage's prompt templates and the
 * slots each may use, so adding a stage is one row in flow.c and one
 * agent_*.c file.  Agents share one shape, declared in the private
 * flow/agent.h: render a template from prompts/, call the llm door, parse
 * tolerantly, write into the turn.
 */
#ifndef CONVBI_FLOW_FLOW_H
#define CONVBI_FLOW_FLOW_H

#include <stdatomic.h>
#include <stdint.h>

#include "convbi/convbi.h"
#include "db/db.h"
#include "flow/history.h"
#include "flow/turn.h"

struct llm;
struct tmpl_set;
struct schema;
struct vindex;
struct examples;

#define FLOW_DONE (-1)
#define FLOW_FAIL (-2)

/* What the flow runs with; everything borrowed from the engine/session. */
struct flow_env {
	struct llm *llm;
	const struct tmpl_set *prompts;
	const struct schema *schema;
	const char *table_list; /* "customers, orders, ..." for the intent agent */
	const char *dialect;    /* "SQLite 3.40.1", "PostgreSQL 15.18" for the prompts */
	struct db *db;          /* the session's read-only connection */
	struct exec_limits limits;
	int max_repairs;
	size_t schema_budget; /* bytes of schema text */
	int model_review;
	int stream;
	int64_t deadline_ms;             /* whole question */
	const atomic_int *interrupt;     /* non-zero = stop (another thread sets it); may be NULL */
	struct vindex *vindex;           /* value index, or NULL (no grounding) */
	const char *today;               /* "YYYY-MM-DD" for {{today}} */
	const char *notes;               /* business notes text, or NULL */
	const struct examples *examples; /* verified examples, or NULL */
	int candidates;                  /* SQL candidates voted on by their results; 1 = no vote */
};

/* Appends what the SQL writer's prompt gets for question beside the
 * question itself: the schema text (grounded as flow_run grounds it), then
 * under `-- ` headings today's date (env->today), the business-notes
 * sections and the verified examples the first SQL call is shown; a part
 * env has nothing for is left out.  Runs no model.  CONVBI_OK or ENOMEM. */
int flow_context_text(const struct flow_env *env, const char *question, struct buf *out);

/* Runs the workflow for t (question already set).  Returns t->status. */
int flow_run(const struct flow_env *env, const struct history *h, struct turn *t, convbi_event_fn cb, void *payload);
/* Asks the model to explain sql in plain words (prompts/explain.txt);
 * runs nothing.  t (initialised by the caller) receives the attempts,
 * usage and, on failure, the error; out the text.  Returns t->status. */
int flow_explain(const struct flow_env *env, const char *sql, struct turn *t, convbi_event_fn cb, void *payload, struct buf *out);
/* The workflow graph, "mermaid" or "dot". */
int flow_graph(struct buf *out, const char *format);

/* The name of a stage ("intent", "sql", ...), "?" for an unknown id. */
const char *flow_stage_name(int stage);

/* Loads the prompt templates every stage of the table names, with the slots
 * each may use, from dir (see prompts/README.md).  *out is owned by the
 * caller (tmpl_set_free). */
int flow_prompts_load(struct tmpl_set **out, const char *dir, struct err *err);

#endif
