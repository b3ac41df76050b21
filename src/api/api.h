/* api.h -- the handles behind the public API (private to src/api/).
 *
 * Every handle starts with a magic number so that entry points can return
 * CONVBI_EMISUSE for a NULL, closed or foreign pointer instead of
 * crashing.  The engine owns what is shared and read-only after open
 * (configuration, the llm client, prompts, the schema cache); a session
 * owns its conversation and its own read-only database connection; an
 * answer owns one finished turn.
 */
#ifndef CONVBI_API_API_H
#define CONVBI_API_API_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "convbi/convbi.h"
#include "db/db.h"
#include "flow/flow.h"
#include "flow/history.h"
#include "flow/turn.h"
#include "util/err.h"

#define ENGINE_MAGIC 0x43425645u /* "CBVE" */
#define SESSION_MAGIC 0x43425653u
#define ANSWER_MAGIC 0x43425641u
#define DEAD_MAGIC 0xDEADBEEFu
#define ENGINE_MAX_CANDIDATES 16 /* SQL candidates per question */

struct convbi_engine {
	uint32_t magic;
	struct err err; /* last error on this handle */
	pthread_mutex_t err_lock;
	convbi_options opts;       /* copy; strings below */
	char *db_path;             /* owned: file path, postgresql:// URI or key=value */
	char *db_schemas;          /* owned: PostgreSQL schemas "a,b", or NULL */
	struct db_options db_opts; /* points into the strings above */
	char *dialect;             /* owned: db_dialect() of the database, or NULL */
	char *db_describe;         /* owned: db_describe(), without a password */
	char *prompts_dir;         /* owned, resolved */
	struct llm *llm;           /* owned; NULL when no endpoint is configured */
	struct err llm_err;        /* why llm is NULL */
	struct tmpl_set *prompts;  /* owned */
	struct schema *schema;     /* owned; NULL without a database */
	char *table_list;          /* owned */
	struct vindex *vindex;     /* owned; NULL when off or not buildable */
	char *today;               /* owned copy of opts.today, or NULL */
	char *notes;               /* owned business notes text, or NULL */
	struct examples *examples; /* owned verified examples, or NULL */
};

/* CONVBI_OK when s is a real date written YYYY-MM-DD (clock_date_check's
 * rule, years 0001..9999); else sets err (EINVAL) to why s is no valid
 * today and returns EINVAL. */
int api_date_error(struct err *err, const char *s);

struct convbi_session {
	uint32_t magic;
	struct err err;
	convbi_engine *engine; /* borrowed */
	struct db *db;         /* owned connection */
	struct history history;
	atomic_int interrupted; /* set by convbi_session_interrupt */
	int idle;               /* convbi_session_idle closed db; the next question reopens it */
};

struct convbi_answer {
	uint32_t magic;
	struct turn turn;
};

#endif
