/* convbi.h -- the public C API of convbi, a text-to-SQL workflow engine.
 *
 * Ask a question in plain language about a SQLite database; convbi
 * classifies the intent, writes one read-only SELECT, checks it through a
 * layered gate, runs it with time and row limits, and answers in words,
 * remembering the conversation so that follow-ups work.  Every model call
 * goes through one client that rotates across Azure OpenAI (or
 * OpenAI-compatible) endpoints, retries and fails over.
 *
 * Objects (all opaque):
 *   convbi_engine   configuration, endpoint pool, prompts, schema cache.
 *                   Thread-safe once open: many sessions may share one.
 *   convbi_session  one conversation (its history and its read-only
 *                   database connection).  One thread at a time.
 *   convbi_answer   the immutable outcome of one question, read through
 *                   accessors, freed by the caller.
 *
 * Conventions: functions return a CONVBI_* status (0 = success); the
 * detailed one-line message is on the handle (convbi_engine_errmsg,
 * convbi_session_errmsg, convbi_answer_errmsg).  Strings returned by
 * accessors are borrowed from their handle; strings returned through a
 * `char **out` are owned by the caller and freed with convbi_free().
 * Every *_free/_close accepts NULL.  The library never prints and never
 * exits; it never reveals an API key in any message, event or result.
 */
#ifndef CONVBI_CONVBI_H
#define CONVBI_CONVBI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CONVBI_BUILDING)
#define CONVBI_API __attribute__((visibility("default")))
#else
#define CONVBI_API
#endif

#define CONVBI_VERSION_STRING "0.1.0"

/* ---- status codes (stable numbers) ------------------------------------ */
#define CONVBI_STATUS_MAP(X)                                                 \
	X(OK, 0, "success")                                                  \
	X(EINVAL, 1, "invalid argument")                                     \
	X(ENOMEM, 2, "out of memory")                                        \
	X(EMISUSE, 3, "library misuse (NULL, closed or foreign handle)")     \
	X(ECONFIG, 4, "invalid configuration")                               \
	X(ENOENDPOINT, 5, "no model endpoint is configured")                 \
	X(ETOOBIG, 6, "input or output exceeds a size limit")                \
	X(EIO, 7, "file input/output error")                                 \
	X(ELLM, 8, "the model call failed on every endpoint")                \
	X(ERATELIMIT, 9, "every endpoint is rate-limited past the deadline") \
	X(ETIMEOUT, 10, "the deadline passed")                               \
	X(EFILTERED, 11, "the service's content filter refused the request") \
	X(ECONTEXT, 12, "the prompt exceeds the model's context length")     \
	X(EBADREQUEST, 13, "the service rejected the request as invalid")    \
	X(EAUTH, 14, "every endpoint rejected its key or deployment")        \
	X(EREJECTED, 15, "the SQL was rejected by the read-only gate")       \
	X(ESQL, 16, "the SQL failed to run")                                 \
	X(EDB, 17, "the database cannot be opened or read")                  \
	X(ECANCELED, 18, "canceled")                                         \
	X(EPROTOCOL, 19, "malformed reply from the service or the model")    \
	X(ETEMPLATE, 20, "invalid prompt template")                          \
	X(EREPAIR, 21, "no valid SQL after the allowed repair attempts")     \
	X(ESTATE, 22, "shared endpoint state is unavailable")                \
	X(EBUDGET, 23, "a spending budget is used up")

typedef enum {
#define CONVBI_X_(name, num, text) CONVBI_##name = num,
	CONVBI_STATUS_MAP(CONVBI_X_)
#undef CONVBI_X_
} convbi_status;

/* The static text for a status code ("unknown status" for others). */
CONVBI_API const char *convbi_errstr(int code);
/* The symbolic name of a status code, e.g. "EREJECTED" ("?" for others). */
CONVBI_API const char *convbi_errname(int code);
/* Frees a string or buffer the library handed to the caller. */
CONVBI_API void convbi_free(void *p);
CONVBI_API const char *convbi_version(void);

/* Where the library's warnings go (a rebuilt state file, a fallback from
 * Redis to local state, ...): fn receives one line without a newline,
 * never containing a key.  Level 1 info, 2 warning, 3 error; lines below
 * min_level are dropped.  Process-wide; the default drops everything.
 * fn may be called from any thread, one call at a time. */
typedef void (*convbi_log_fn)(int level, const char *line, void *payload);
CONVBI_API void convbi_set_log(convbi_log_fn fn, void *payload, int min_level);

typedef struct convbi_engine convbi_engine;
typedef struct convbi_session convbi_session;
typedef struct convbi_answer convbi_answer;

/* ---- events ------------------------------------------------------------ */
typedef enum {
	CONVBI_EVENT_STAGE = 1,   /* a workflow stage starts; stage = its name */
	CONVBI_EVENT_TOKEN = 2,   /* a streamed text delta of the answer */
	CONVBI_EVENT_SQL = 3,     /* SQL about to run; text = the SQL */
	CONVBI_EVENT_RETRY = 4,   /* a model attempt failed and the client retries
	                            or fails over; text = what happened */
	CONVBI_EVENT_PROGRESS = 5 /* still working: sent about every
	                            CONVBI_PROGRESS_MS while a model call or the
	                            SQL runs; text = "" .  Lets the callback
	                            cancel within that time and show progress */
} convbi_event_kind;

/* How often PROGRESS events come while the work is silent (ms). */
#define CONVBI_PROGRESS_MS 100

typedef struct {
	int kind;             /* a convbi_event_kind */
	const char *stage;    /* current stage name ("intent", "sql", ...) */
	const char *text;     /* event text (borrowed, valid during the call) */
	size_t len;           /* bytes in text */
	const char *endpoint; /* endpoint name for RETRY events, else NULL */
	int restarted;        /* RETRY: 1 when the failed attempt had streamed
	                         TOKEN events -- that text is void: the answer
	                         starts over from its first token; else 0 */
} convbi_event;

/* Called from the thread that asked; a non-zero return cancels the
 * question (the ask returns CONVBI_ECANCELED): an HTTP transfer in flight
 * is aborted at once and the canceled attempt is not held against its
 * endpoint.  Callbacks ignore kinds they do not know. */
typedef int (*convbi_event_fn)(const convbi_event *ev, void *payload);

/* ---- engine ------------------------------------------------------------ */
#define CONVBI_OPTIONS_VERSION \
	4 /* 1: up to question_timeout_ms, 2: up to value_index, 3: up to db_schemas
                                     (all still accepted) */

typedef struct {
	unsigned int version;    /* CONVBI_OPTIONS_VERSION */
	const char *db_path;     /* SQLite file, postgres:// or postgresql://
	                             URI, or libpq "key=value" string; NULL =
	                             model-only engine */
	const char *config_path; /* JSON config; NULL = $CONVBI_CONFIG, then
	                             AZURE_OPENAI_*_<i> variables */
	const char *prompts_dir; /* NULL = $CONVBI_PROMPTS, then the built-in
	                             directory */
	int max_repairs;         /* SQL repair attempts, default 3 */
	int row_cap;             /* rows kept per result, default 1000 */
	int sql_timeout_ms;      /* per statement, default 5000 */
	int history_tokens;      /* conversation memory budget, default 1500 */
	int schema_tokens;       /* schema text budget, default 6000 */
	int model_review;        /* 1 = add the model-side SQL review */
	int stream;              /* 1 = stream the answer as TOKEN events */
	int question_timeout_ms; /* whole question, model calls included,
	                             default 120000 */
	/* version 2: grounding */
	const char *today;         /* "YYYY-MM-DD" the prompts call today
	                             ({{today}}); NULL = the local date */
	const char *notes_path;    /* business notes (Markdown, sections per
	                             topic); NULL = DB.notes.md beside the
	                             database when it exists; "" = none */
	const char *examples_path; /* verified examples, JSONL {"question",
	                             "sql", "db"}: the three most like the
	                             question (and its first draft) go into
	                             the SQL prompt; NULL = none */
	int candidates;            /* SQL candidates voted on by their results,
	                             1..16, default 1: N completions at
	                             temperature 0.7, each run through the gate;
	                             the largest group of equal results answers
	                             (the answer JSON's "vote") */
	int value_index;           /* 1 = name the stored values a question
	                             mentions in the schema text (value index
	                             cached under $XDG_CACHE_HOME/convbi),
	                             0 = off; default 1 */
	/* version 3 */
	const char *db_schemas; /* PostgreSQL schemas to use, "a,b"; NULL =
	                             the server's search path */
	/* version 4: the budgets of one SQL statement */
	int sql_memory_mb; /* memory beyond what its connection held
	                             before it (SQLite); PostgreSQL's work_mem
	                             is derived from it; default 256 */
	int sql_temp_mb;   /* its temporary files (sorts, grouping);
	                             PostgreSQL's temp_file_limit; default 512 */
} convbi_options;

#define CONVBI_SQL_BUDGET_MAX_MB 1048576 /* the largest sql_memory_mb and sql_temp_mb (1 TB) */

#define CONVBI_OPTIONS_INIT                                                                                                      \
	{                                                                                                                        \
		CONVBI_OPTIONS_VERSION, NULL, NULL, NULL, 3, 1000, 5000, 1500, 6000, 0, 1, 120000, NULL, NULL, NULL, 1, 1, NULL, \
		        256, 512                                                                                                 \
	}

/* Opens an engine.  *out is set even on failure (unless ENOMEM) so that
 * convbi_engine_errmsg() can say what went wrong; close it either way. */
CONVBI_API int convbi_engine_open(convbi_engine **out, const convbi_options *opts);
CONVBI_API void convbi_engine_close(convbi_engine *engine);
CONVBI_API const char *convbi_engine_errmsg(const convbi_engine *engine);
/* The engine's database for display: the SQLite path, or the PostgreSQL
 * target as postgresql://user@host:port/dbname -- never its password.
 * "" without a database.  Borrowed from the engine. */
CONVBI_API const char *convbi_engine_database(const convbi_engine *engine);

/* Sends one chat completion through the rotating client.  On success and
 * on model failure alike, *json_out (caller frees) is a JSON object with
 * content, endpoint, model, usage, attempts and elapsed_ms (plus error and
 * error_class on failure).  cb receives TOKEN events when stream != 0. */
CONVBI_API int convbi_engine_chat(convbi_engine *engine, const char *system, const char *prompt, int stream, convbi_event_fn cb,
                                  void *payload, char **json_out);
/* The configured endpoints and their live shared state as a JSON array
 * (caller frees).  Never contains keys. */
CONVBI_API int convbi_engine_endpoints(convbi_engine *engine, char **json_out);
/* The whole configuration's budget and what every process sharing its
 * state spent today and this month (UTC), as a JSON object (caller frees):
 * {"budget": {"daily", "monthly"} | null, "spent_today_usd",
 * "spent_month_usd"}.  Each endpoint's own are in convbi_engine_endpoints. */
CONVBI_API int convbi_engine_spend(convbi_engine *engine, char **json_out);
/* Clears the shared state of the endpoint called name (NULL: of every
 * endpoint) for every process sharing it: cooldowns, breaker, server
 * budgets, learned rates, statistics (never what it spent).  *json_out (caller frees) is an array of
 * what each endpoint held before, as convbi_engine_endpoints shows it.
 * CONVBI_EINVAL for an unknown name (the message lists the names). */
CONVBI_API int convbi_engine_endpoints_reset(convbi_engine *engine, const char *name, char **json_out);
/* The schema text exactly as the SQL agent is given it (caller frees). */
CONVBI_API int convbi_engine_schema(convbi_engine *engine, const char *question, char **text_out);
/* What the SQL agent is given for question beside the question (caller
 * frees): the schema text as convbi_engine_schema gives it, then, under
 * `-- ` headings, today's date (the today option, else the local date),
 * the business-notes sections the question gets and the verified examples
 * its first SQL call is shown.  Runs no model. */
CONVBI_API int convbi_engine_context(convbi_engine *engine, const char *question, char **text_out);
/* Progress of a value-index build: after each column read. */
typedef void (*convbi_index_progress_fn)(const char *table, const char *column, size_t columns_done, size_t columns,
                                         int64_t values, void *payload);
/* Builds the value index of the engine's database now (as the first
 * question would), or reuses it when it is fresh and rebuild == 0; fn (may
 * be NULL) hears progress.  *json_out (caller frees) describes it:
 * {"path", "values", "columns", "sampled" (columns read from a sample
 * of a big table), "seeked" (columns read through an index on them),
 * "build_ms", "partial", "built"}; a SQLite file or a PostgreSQL
 * database.  The
 * database itself is only read.  Not to be called while sessions of this
 * engine are asking.  Errors: CONVBI_EDB (no database), EIO (the cache
 * directory is not writable; the message names it), ENOMEM. */
CONVBI_API int convbi_engine_index(convbi_engine *engine, int rebuild, convbi_index_progress_fn fn, void *payload,
                                   char **json_out);
/* The database's tables and views as a JSON array of {"name", "view",
 * "rows" (-1 = not counted), "columns": [{"name", "type"}]} (caller
 * frees); CONVBI_EDB without a database. */
CONVBI_API int convbi_engine_tables(convbi_engine *engine, char **json_out);
/* The workflow graph, format "mermaid" or "dot" (caller frees). */
CONVBI_API int convbi_workflow_graph(const char *format, char **text_out);

/* ---- session ----------------------------------------------------------- */
CONVBI_API int convbi_session_new(convbi_session **out, convbi_engine *engine);
CONVBI_API void convbi_session_free(convbi_session *session);
/* Forgets the conversation history. */
CONVBI_API void convbi_session_reset(convbi_session *session);
/* The history as JSON (caller frees). */
CONVBI_API int convbi_session_history(convbi_session *session, char **json_out);
CONVBI_API const char *convbi_session_errmsg(const convbi_session *session);

/* Answers one question.  hint (may be NULL) is extra evidence for the SQL
 * agent (BIRD's "evidence").  *out receives an answer whenever memory
 * allows, also on failure: its status and errmsg say what failed, and the
 * return value equals convbi_answer_status(*out). */
CONVBI_API int convbi_session_ask(convbi_session *session, const char *question, const char *hint, convbi_event_fn cb,
                                  void *payload, convbi_answer **out);

/* What one question may set apart from its engine's options (serve's
 * questions route takes them per request). */
#define CONVBI_ASK_OPTIONS_VERSION 1
typedef struct {
	unsigned int version; /* CONVBI_ASK_OPTIONS_VERSION */
	const char *today;    /* "YYYY-MM-DD" the prompts call today; NULL =
	                         the engine's (convbi_options.today) */
	int candidates;       /* SQL candidates voted on, 1..16; 0 = the
	                         engine's (convbi_options.candidates) */
} convbi_ask_options;
#define CONVBI_ASK_OPTIONS_INIT                     \
	{                                           \
		CONVBI_ASK_OPTIONS_VERSION, NULL, 0 \
	}

/* convbi_session_ask with per-question options (NULL = none).  An invalid
 * today or candidates fails the question with CONVBI_EINVAL, its message
 * naming the value; a struct of another version, CONVBI_EMISUSE. */
CONVBI_API int convbi_session_ask_with(convbi_session *session, const char *question, const char *hint,
                                       const convbi_ask_options *opts, convbi_event_fn cb, void *payload, convbi_answer **out);

/* Runs SQL written by the caller through the same read-only gate and
 * limits as model-written SQL (no model call, no history).  *out receives
 * an answer with the rows, or with the gate's or SQLite's message, and
 * the time the run took (convbi_answer_elapsed_ms).  An interrupt
 * (convbi_session_interrupt) stops it with CONVBI_ECANCELED. */
CONVBI_API int convbi_session_run_sql(convbi_session *session, const char *sql, convbi_answer **out);

/* Asks the model to explain sql in plain words (prompts/explain.txt, with
 * the schema around it); nothing runs and the history is unchanged.
 * *text_out (caller frees) receives the explanation; on failure the
 * message is on the session.  cb receives PROGRESS and RETRY events and
 * may cancel (CONVBI_ECANCELED). */
CONVBI_API int convbi_session_explain_sql(convbi_session *session, const char *sql, convbi_event_fn cb, void *payload,
                                          char **text_out);

/* ---- answer ------------------------------------------------------------ */
CONVBI_API void convbi_answer_free(convbi_answer *answer);
CONVBI_API int convbi_answer_status(const convbi_answer *answer);
CONVBI_API const char *convbi_answer_errmsg(const convbi_answer *answer);
/* "data_question", "follow_up", "chitchat" or "out_of_scope" ("" if none). */
CONVBI_API const char *convbi_answer_intent(const convbi_answer *answer);
/* The standalone (rewritten) question. */
CONVBI_API const char *convbi_answer_question(const convbi_answer *answer);
CONVBI_API const char *convbi_answer_text(const convbi_answer *answer);
/* The SQL that ran ("" if none). */
CONVBI_API const char *convbi_answer_sql(const convbi_answer *answer);
CONVBI_API int convbi_answer_column_count(const convbi_answer *answer);
CONVBI_API const char *convbi_answer_column_name(const convbi_answer *answer, int col);
CONVBI_API int64_t convbi_answer_row_count(const convbi_answer *answer);
/* Cell text, NULL for SQL NULL or out of range. */
CONVBI_API const char *convbi_answer_cell(const convbi_answer *answer, int64_t row, int col);
/* 1 when a cap cut the result: the row cap or the result size cap. */
CONVBI_API int convbi_answer_truncated(const convbi_answer *answer);
/* The rows the query returned in all: convbi_answer_row_count when the
 * result is whole; when a cap cut it, the rows counted past the cap (the
 * count is bounded in time, within the query's own limits; the query is
 * never run twice).  *exact (may be NULL) is 1 for a full count, 0 when
 * the count stopped and the total is a lower bound ("at least").  0 when
 * no query ran. */
CONVBI_API int64_t convbi_answer_total_rows(const convbi_answer *answer, int *exact);
CONVBI_API int64_t convbi_answer_tokens(const convbi_answer *answer);
/* What the question's model calls cost in US dollars, by each answering
 * endpoint's configured price (0 for reserved or unpriced endpoints). */
CONVBI_API double convbi_answer_cost_usd(const convbi_answer *answer);
CONVBI_API int64_t convbi_answer_elapsed_ms(const convbi_answer *answer);
/* The rows rendered as text: mode "table" (aligned box), "csv", "json"
 * (array of objects) or "markdown"; at most max_rows rows (< 0 = all).
 * Caller frees; CONVBI_EINVAL for an unknown mode. */
CONVBI_API int convbi_answer_format(const convbi_answer *answer, const char *mode, int64_t max_rows, char **text_out);
/* How convbi_answer_format_view shows rows on a screen. */
#define CONVBI_VIEW_VERSION 1
enum { CONVBI_FIT_NONE = 0, CONVBI_FIT_VERTICAL = 1, CONVBI_FIT_CUT = 2 };
typedef struct {
	unsigned int version; /* CONVBI_VIEW_VERSION */
	const char *mode;     /* "table", "csv", "json", "markdown" or "line"
	                          (one "column = value" line per cell, a blank
	                          line between rows) */
	int64_t max_rows;     /* rows shown; < 0 = all */
	int width;            /* display columns available; 0 = no limit */
	int fit;              /* a table wider than width: CONVBI_FIT_VERTICAL
	                          shows it as "line", CONVBI_FIT_CUT shows the
	                          columns that fit and a "…" column */
	int color;            /* ANSI styles: bold header, dim NULL */
	int align_decimals;   /* numbers lined up on the decimal point */
	int footer;           /* table and line: the "(N rows)" line */
} convbi_view;
#define CONVBI_VIEW_INIT                                                      \
	{                                                                     \
		CONVBI_VIEW_VERSION, "table", -1, 0, CONVBI_FIT_NONE, 0, 1, 1 \
	}
/* The rows rendered as view says (see convbi_view); caller frees.
 * CONVBI_EINVAL for an unknown mode or version. */
CONVBI_API int convbi_answer_format_view(const convbi_answer *answer, const convbi_view *view, char **text_out);
/* The whole answer as one JSON object (question, intent, sql, columns,
 * rows, row_count, truncated, notes, total_rows, total_rows_exact,
 * truncated_by, answer, error, error_class, usage, stages, attempts,
 * elapsed_ms, chart); caller frees.  A cut result has a note saying by
 * which cap and the total. */
CONVBI_API int convbi_answer_json(const convbi_answer *answer, char **json_out);
/* The answer's accounting one item at a time, as "stages" and "attempts"
 * in that JSON, for metrics without serialising the answer.  Stage i (from
 * 0, of the stages that ran, in flow order): its name ("intent", "sql",
 * ...) and wall time in ms.  Model attempt i: the endpoint's name, its
 * outcome ("class" in the JSON: "ok", "rate_limited", ...) and its time in
 * ms.  Out-params may be NULL; strings are borrowed from the answer.
 * CONVBI_OK, or CONVBI_EINVAL past the last one. */
CONVBI_API int convbi_answer_stage(const convbi_answer *answer, int i, const char **name, int64_t *ms);
CONVBI_API int convbi_answer_attempt(const convbi_answer *answer, int i, const char **endpoint, const char **outcome,
                                     int64_t *ms);

/* ---- charts and cancellation (convbi serve) ----------------------------- */
/* The answer's chart: a Vega-Lite v5 spec (compact JSON, caller frees)
 * chosen deterministically from the result's column types -- a date/time
 * column and a number: line; a category and a number: bar (horizontal
 * when labels are long), or arc for 2..6 distinct non-negative parts; two
 * numbers: point; a further category: color -- and built from a whitelist
 * (inline data.values; never url, transform, params or expr).  *json_out
 * is NULL (and the return CONVBI_OK) when the result suits no chart.  The
 * answer JSON (convbi_answer_json) carries the same spec as "chart". */
CONVBI_API int convbi_answer_chart_json(const convbi_answer *answer, char **json_out);

/* Asks the question (or run_sql) running on session, from another thread,
 * to stop, as sqlite3_interrupt does: it returns CONVBI_ECANCELED at its next
 * check (a model call is abandoned within the client's poll interval).
 * Safe to call at any time from any thread while the session is alive; an
 * interrupt that arrives when no question runs is forgotten by the next
 * ask.  Returns CONVBI_OK, or CONVBI_EMISUSE for a bad handle. */
CONVBI_API int convbi_session_interrupt(convbi_session *session);

/* Closes the session's database connection until its next question or
 * SQL run, which reopens it (a few milliseconds); the conversation is
 * kept.  For servers holding many idle conversations: an idle session then
 * costs its history, not a connection.  Not while a question runs on it
 * (one thread at a time, as for every session call).  Returns CONVBI_OK,
 * or CONVBI_EMISUSE for a bad handle. */
CONVBI_API int convbi_session_idle(convbi_session *session);

#ifdef __cplusplus
}
#endif
#endif
