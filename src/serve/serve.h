/* serve.h -- `convbi serve` (HTTP/SSE API, MCP over Streamable HTTP, the
 * page) and `convbi mcp` (MCP over stdio): a client of the public API.
 *
 * The module includes only include/convbi/convbi.h, libmicrohttpd and
 * cJSON.  One struct server holds what every request shares: the
 * databases (one engine each), the tokens, the session table, the metrics
 * and the limits.  Files:
 *   config.c    options, databases, the tokens file, constant-time compare
 *   sessions.c  the session table (ids, idle expiry, cap; LRU for MCP
 *               conversations)
 *   metrics.c   counters and histograms, the Prometheus text
 *   question.c  one question on a worker thread: events queued for SSE,
 *               a client that goes away interrupts it
 *   server.c    the daemon: security checks, dispatch, errors, drain
 *               and Ctrl-C
 *   door.c      the front door: accepts, waits for complete request
 *               heads, connection caps and deadlines
 *   routes.c    the REST routes
 *   input.c     checks on request JSON text (NUL, UTF-8, depth)
 *   mcp.c       MCP JSON-RPC (2025-11-25 and 2026-07-28) and its tools
 *   mcp_stdio.c `convbi mcp`
 */
#ifndef CONVBI_SERVE_SERVE_H
#define CONVBI_SERVE_SERVE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "convbi/convbi.h"

/* ---- limits ------------------------------------------------------------- */
#define SERVE_BODY_MAX_BYTES (256u << 10)    /* a request body */
#define SERVE_QUESTION_MAX_BYTES (16u << 10) /* one question */
#define SERVE_SQL_MAX_BYTES (64u << 10)      /* SQL sent to /v1/sql */
#define SERVE_HEADERS_MAX_BYTES (16u << 10)  /* request target + headers (431 beyond) */
#define SERVE_JSON_DEPTH_MAX 64              /* nested objects/arrays in a request body */
#define SERVE_CONN_MEMORY_BYTES (64u << 10)  /* libmicrohttpd's per-connection pool */
#define SERVE_TOKEN_MAX_BYTES 256
#define SERVE_TOKENS_MAX 1024
#define SERVE_DBS_MAX 64
#define SERVE_NAME_MAX_BYTES 64
#define SERVE_ALLOW_MAX 16
#define SERVE_CANDIDATES_MAX 16              /* --candidates and a question's "candidates" */
#define SERVE_CONNECTIONS_DEFAULT 4096       /* --max-connections */
#define SERVE_CONNECTIONS_PER_IP_DEFAULT 256 /* --max-connections-per-ip */
#define SERVE_REQUEST_TIMEOUT_S_DEFAULT 10   /* --request-timeout-s */
#define SERVE_LOG_LINE_BYTES 1024            /* one log line; longer ones are cut */
#define SERVE_CONN_IDLE_MS 2000              /* a conversation unused this long gives back its database connection */

/* A request without a Host header (400, HTTP/1.0 too: the Host allow-list). */
#define SERVE_NO_HOST_MESSAGE \
	"the request has no Host header; send `Host: NAME[:PORT]` naming this server (HTTP/1.0 requests too)"

/* Exit codes, as the CLI's. */
#define SERVE_EXIT_OK 0
#define SERVE_EXIT_FAIL 1
#define SERVE_EXIT_USAGE 2
#define SERVE_EXIT_INTERRUPTED 130

/* ---- configuration ------------------------------------------------------ */
struct serve_db {
	char name[SERVE_NAME_MAX_BYTES];
	char *path;            /* owned */
	convbi_engine *engine; /* owned */
};

struct serve_token {
	char secret[SERVE_TOKEN_MAX_BYTES];
	size_t len;
	char *dbs;          /* owned: " a b " (space-delimited names), NULL = every database */
	atomic_int running; /* its questions and SQL runs now (server_slot_take) */
};

struct serve_config {
	const char *listen; /* HOST:PORT */
	const char *tokens_path;
	const char *config_path;
	const char *prompts_dir;
	int review, max_repairs, row_cap, sql_timeout_ms;
	int sql_memory_mb, sql_temp_mb; /* one statement's budgets, -1 = default */
	int max_questions;              /* concurrent questions */
	int max_questions_per_token;    /* with two tokens or more: max_questions / tokens, at least 1; 0 = none */
	int max_sessions;
	int max_sessions_per_token; /* with two tokens or more: max_sessions / tokens, at least 1 */
	int max_conversations;      /* MCP conversations kept (least recently used closed beyond) */
	int max_conversations_per_token;
	int session_idle_s;
	int question_timeout_ms;
	int max_connections; /* open at once, waiting ones included */
	int max_connections_per_ip;
	int request_timeout_s; /* to deliver a request (head and body) */
	const char *allow_hosts[SERVE_ALLOW_MAX];
	int nallow_hosts;
	const char *allow_origins[SERVE_ALLOW_MAX];
	int nallow_origins;
	const char *db_specs[SERVE_DBS_MAX];
	int ndb_specs;
	const char *web_dir;  /* the page and its assets */
	const char *today;    /* --today YYYY-MM-DD, NULL = the local date */
	const char *notes;    /* --notes F, NULL = DB.notes.md beside each database */
	const char *examples; /* --examples F, NULL = none */
	int candidates;       /* --candidates N, -1 = the default */
};

/* Parses argv (after the command name) into c.  Returns 0, or prints one
 * line and returns SERVE_EXIT_USAGE; `mcp` = 1 refuses serve-only flags. */
int serve_parse_args(struct serve_config *c, int argc, char **argv, int mcp);

/* ---- metrics ------------------------------------------------------------ */
#define METRICS_BUCKETS 12
struct histogram {
	uint64_t counts[METRICS_BUCKETS + 1]; /* per bucket, last = +Inf */
	double sum;
	uint64_t n;
};

struct metrics;
struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);
/* Counts an HTTP request (route template, status) and its latency. */
void metrics_request(struct metrics *m, const char *route, int status, double seconds);
/* Counts a finished question (a may be NULL): outcome, stage latencies,
 * per-endpoint attempts and latencies, read through the answer's
 * accessors (never by serialising and parsing it back). */
void metrics_answer(struct metrics *m, const convbi_answer *a, int status);
/* The Prometheus text exposition (caller frees); endpoints_json is the
 * live endpoint state (convbi_engine_endpoints) or NULL. */
char *metrics_render(struct metrics *m, const char *endpoints_json, int questions_running, int sessions_open,
                     int conversations_open);

/* ---- the shared server state -------------------------------------------- */
struct session_table;
struct door;

/* A question or SQL run in progress, listed so that Ctrl-C can interrupt
 * it (the caller's storage, linked while it runs). */
struct serve_run {
	convbi_session *conv; /* borrowed */
	struct serve_run *next, *prev;
};

struct server {
	struct serve_config cfg;
	struct serve_db dbs[SERVE_DBS_MAX];
	int ndbs;
	struct serve_token *tokens; /* owned; NULL = no auth (loopback only) */
	int ntokens;
	struct session_table *sessions;      /* REST sessions */
	struct session_table *conversations; /* MCP ask's conversations (LRU, --max-conversations) */
	struct metrics *metrics;
	atomic_int questions_running;
	atomic_int draining;
	atomic_int canceling; /* Ctrl-C: every run is interrupted */
	pthread_mutex_t runs_lock;
	struct serve_run *runs; /* in progress */
	struct door *door;      /* owned */
	char web_dir[4096];     /* the page and its assets */
	struct mcp *mcp;        /* owned */
	char host[256];         /* what --listen bound */
	int port;
	int loopback;
	int no_model; /* no model endpoint is configured: questions get 503, /healthz too */
};

/* Opens the databases' engines (one per --db; the bundled sample when
 * none) and reads the tokens file.  Returns SERVE_EXIT_OK, or prints one
 * line and returns the exit code: SERVE_EXIT_USAGE for what the options or
 * files got wrong (a bad --db, two databases of one name, a database or
 * config that does not open, a bad tokens file), SERVE_EXIT_FAIL else. */
int server_setup(struct server *s, const struct serve_config *c);
void server_teardown(struct server *s);
/* The token index matching `presented` (constant time over all tokens),
 * or -1. */
int server_token_find(const struct server *s, const char *presented);
/* 1 when token index tok (-1 = no auth configured) may use database db. */
int server_token_allows(const struct server *s, int tok, const struct serve_db *db);
/* The database by name; NULL name = the first one.  NULL when unknown. */
struct serve_db *server_db(struct server *s, const char *name);
/* The same for token index tok: NULL name = the first database the token
 * may use (never one of another tenant's). */
struct serve_db *server_db_for(struct server *s, int tok, const char *name);
/* Lists r as running on conv until server_run_end; interrupted at once
 * when the server is canceling (Ctrl-C). */
void server_run_begin(struct server *s, struct serve_run *r, convbi_session *conv);
void server_run_end(struct server *s, struct serve_run *r);
/* Logs, for the operator, a database failure (CONVBI_EDB: it cannot be
 * reached) with the database's target (host, port, user; never a
 * password), which the client's message leaves out.  Other codes: nothing. */
void server_db_failed(const struct serve_db *db, int rc, const char *message);
/* The message a client (a tenant) may see for a question that failed with
 * rc: a budget (EBUDGET) or credentials (EAUTH) failure's text describes
 * the whole configuration -- its budget and spend, an endpoint's URL --
 * which is the operator's: the client gets a sentence without it.  Other
 * messages are returned as they are (borrowed), but for the URLs in them
 * (serve_client_url_free: then in a buffer of the thread's, good until its
 * next call) -- SQL errors (ESQL, EREJECTED, EREPAIR) as they are. */
const char *serve_client_errmsg(int rc, const char *message);
/* text without URLs (a model endpoint's, a token or state server's: the
 * operator's; an endpoint is named by its configured name): text itself
 * when it holds none, else buf (cap bytes) with each left out. */
const char *serve_client_url_free(const char *text, char *buf, size_t cap);
/* Retry-After for a question that failed with ERATELIMIT on engine e: the
 * seconds until the first of its endpoints stops cooling down (rounded
 * up; 1 when none is cooling, at most SERVE_RETRY_AFTER_MAX_S) -- a daily
 * quota's 429 is a day, not a second. */
#define SERVE_RETRY_AFTER_MAX_S 86400
int serve_rate_limit_retry_s(convbi_engine *e);
/* convbi_answer_json for a client: the answer's `error` is
 * serve_client_errmsg's, and the log gets the full message.  Returns
 * convbi_answer_json's code; *json_out is the caller's. */
int serve_answer_json(const convbi_answer *a, int rc, char **json_out);
/* Takes a concurrent-question slot (a question or a SQL run) for token
 * index tok (-1 = no auth): SERVE_SLOT_OK, or why not -- the server is
 * draining, --max-questions run, or (two tokens or more) the token runs its
 * share, max_questions_per_token.  Only atomics: no lock, no system call.
 * server_slot_give returns it (same tok). */
enum { SERVE_SLOT_OK, SERVE_SLOT_DRAINING, SERVE_SLOT_BUSY, SERVE_SLOT_TOKEN_FULL };
int server_slot_take(struct server *s, int tok);
void server_slot_give(struct server *s, int tok);

/* ---- sessions ----------------------------------------------------------- */
#define SESSION_ID_BYTES 32 /* hex characters */

struct serve_session {
	char id[SESSION_ID_BYTES + 1];
	struct serve_db *db;
	int token;            /* who created it (-1 without auth) */
	convbi_session *conv; /* owned; opened at the first question */
	int64_t last_used_ms;
	int busy;                 /* a question is running on it */
	int awake;                /* conv holds a database connection */
	int refs;                 /* borrowed by running requests */
	int closing;              /* closed while busy: unknown to requests, unlinked when the question ends */
	int closed;               /* out of the table: freed by the last borrower */
	void (*on_close)(void *); /* while busy: cancels the question (sessions_watch) */
	void *on_close_arg;
};

struct session_table *sessions_new(int max, int idle_s);
void sessions_free(struct session_table *t);
/* A full table closes its least recently used session that no request
 * holds to make room (the MCP conversations): sessions_create fails only
 * when every one is in use. */
void sessions_set_lru(struct session_table *t);
/* Each token (>= 0) may hold at most cap sessions (0 = no cap). */
void sessions_set_token_cap(struct session_table *t, int cap);
/* Creates a session; CONVBI_OK, or CONVBI_ETOOBIG when the cap is reached
 * after expiring idle sessions (*token_full: 1 when it is the token's
 * cap; *retry_s, when not NULL: seconds until the idle session that
 * expires first does -- of the token's when it is the token's cap -- or 0
 * when every one is answering).  *out is borrowed (release it). */
int sessions_create(struct session_table *t, struct serve_db *db, int token, struct serve_session **out, int *token_full,
                    int *retry_s);
/* Looks up and borrows a session of `token`; NULL when unknown, expired or
 * another token's. */
struct serve_session *sessions_get(struct session_table *t, const char *id, int token);
void sessions_release(struct session_table *t, struct serve_session *ss);
/* Closes the session; it is freed when the last borrower releases it.  A
 * session answering a question has it canceled (sessions_watch) and
 * stays counted, unknown to requests, until the question ends
 * (sessions_end).  Returns 0, or -1 when unknown. */
int sessions_close(struct session_table *t, const char *id, int token);
/* Takes the session's question slot (busy); 0, or -1 when taken. */
int sessions_begin(struct session_table *t, struct serve_session *ss);
/* While the session is busy: on_close(arg) cancels its question when the
 * session is closed (at once when it already was).  It runs under the
 * table's lock: it may only flag and interrupt.  sessions_end forgets it. */
void sessions_watch(struct session_table *t, struct serve_session *ss, void (*on_close)(void *), void *arg);
void sessions_end(struct session_table *t, struct serve_session *ss);
int sessions_count(struct session_table *t);
/* Expires idle sessions; closes the database connections of conversations
 * unused for SERVE_CONN_IDLE_MS.  Returns how many connections it closed. */
int sessions_expire(struct session_table *t);

/* ---- questions ---------------------------------------------------------- */
/* The error message of a question canceled because its session was closed. */
#define QUESTION_CLOSED_MESSAGE "the session was closed (DELETE) while answering this question; the question was canceled"

/* What a question sends back as it runs (for SSE): events in order. */
struct question;
typedef int (*question_alive_fn)(void *payload);

/* Starts answering `question` on ss's conversation on a worker thread,
 * with the request's options ao (may be NULL; copied); closing the session
 * cancels it (sessions_watch).  The caller holds
 * ss's question slot (sessions_begin) and a concurrent-question slot
 * (server_slot_take): the question takes them over and gives them back
 * when its work ends, before its client has read the answer.  Returns
 * NULL when out of memory (the slots stay the caller's).  Events are
 * queued as SSE text. */
struct question *question_start(struct server *s, struct serve_session *ss, const char *question, const char *hint,
                                const convbi_ask_options *ao, int sse);
/* Copies up to max queued SSE bytes into out, waiting at most wait_ms for
 * some; returns bytes copied, 0 when nothing yet, -1 at the end. */
long question_read(struct question *q, char *out, size_t max, int wait_ms);
/* Interrupts it (the client went away). */
void question_cancel(struct question *q);
/* The finished answer JSON (borrowed) and status. */
const char *question_answer_json(const struct question *q);
int question_status(const struct question *q);
/* Joins the worker and frees everything. */
void question_free(struct question *q);

/* Opens ss's conversation (a convbi_session) if it has none; on failure
 * *err_json gets the error shape (caller frees).  The caller holds the
 * session's question slot (sessions_begin). */
int question_open(struct serve_session *ss, char **err_json);
/* Runs a question to its end on the calling thread (the JSON answer of
 * POST .../questions): opens ss's conversation when needed; *json_out is
 * the answer JSON, or the error shape when the conversation could not be
 * opened (caller frees).  Returns the answer's status. */
int question_run_sync(struct server *s, struct serve_session *ss, const char *question, const char *hint,
                      const convbi_ask_options *ao, convbi_event_fn cb, void *payload, char **json_out);

/* ---- MCP ---------------------------------------------------------------- */
struct mcp;
/* Cancels one MCP call from outside: a client that left POST /mcp, or
 * notifications/cancelled on stdio.  The call publishes the conversation
 * it runs on; mcp_cancel_fire interrupts it (at once, or as it starts). */
struct mcp_cancel {
	pthread_mutex_t lock;
	convbi_session *conv; /* borrowed, while the call runs on it */
	int canceled;
};
void mcp_cancel_init(struct mcp_cancel *c);
void mcp_cancel_destroy(struct mcp_cancel *c);
void mcp_cancel_fire(struct mcp_cancel *c);
struct mcp *mcp_new(struct server *s);
void mcp_free(struct mcp *m);
/* Handles one JSON-RPC message (text, len) from a caller holding token
 * index tok.  *reply_out is the response text (caller frees) or NULL for
 * a notification.  header_version is the HTTP MCP-Protocol-Version header
 * (NULL on stdio).  Returns an HTTP status for the Streamable HTTP
 * transport (200, 202 for notifications, 400 for a bad message).  cancel
 * (NULL = none) lets the caller stop a running ask or run_sql. */
int mcp_handle(struct mcp *m, int tok, const char *text, size_t len, const char *header_version, const char *header_method,
               struct mcp_cancel *cancel, char **reply_out, int *new_session);

/* ---- request input -------------------------------------------------------- */
/* Checks JSON text (len bytes) before it is parsed: no NUL byte, raw or as
 * \u0000 in a string; strings valid UTF-8; nesting at most
 * SERVE_JSON_DEPTH_MAX.  Returns 0, or -1 with one line in msg (cap bytes)
 * naming the problem and the field, and in field the innermost key around
 * the bad string ("" when none); path (NULL = not wanted) gets the keys
 * from the top down to it joined with dots ("params.arguments.today"). */
int input_check_json(const char *text, size_t len, char *msg, size_t cap, char *field, size_t field_cap, char *path,
                     size_t path_cap);

/* Parses JSON text (after input_check_json) into *out (caller deletes):
 * INPUT_OK; INPUT_NOT_JSON when cJSON does not take it; INPUT_REFUSED for
 * what cJSON would take but a strict reader does not -- anything but
 * whitespace after the value, a key twice in one object -- with one line
 * in msg naming it. */
enum { INPUT_OK, INPUT_NOT_JSON, INPUT_REFUSED };
struct cJSON;
int input_parse_json(const char *text, size_t len, struct cJSON **out, char *msg, size_t cap);

/* Why a field's value v is not of the JSON type it must have -- "string",
 * or "integer" from lo to hi (lo > hi: any whole number) -- in why (cap
 * bytes), NULL when it is.  null is a value of no type: an optional field
 * is left out for its default (the message says so when optional).  The
 * one type rule of REST bodies and MCP arguments (mcp.c checks each
 * argument against its inputSchema with it). */
const char *input_field_problem(const char *key, const struct cJSON *v, const char *type, double lo, double hi, int optional,
                                char *why, size_t cap);

/* A question's fields: REST's questions body and MCP ask's arguments
 * alike, borrowed from the object read. */
struct input_question {
	const char *question;
	const char *hint;  /* NULL = none */
	const char *today; /* NULL = the server's; else a real date */
	int candidates;    /* 0 = the server's; else 1..SERVE_CANDIDATES_MAX */
};

/* Reads a question's fields (question, hint, today, candidates) from o
 * into *out, each checked by one rule for both transports: its type
 * (input_field_problem), a question given, question and hint at most
 * SERVE_QUESTION_MAX_BYTES, today a real date (clock_date_check).  Other
 * keys are the caller's.  Returns 0, or 400 (413 for a length) with one
 * line in why. */
int input_question(const struct cJSON *o, struct input_question *out, char *why, size_t cap);

/* What a malformed chunked request body gets (400), from the front door
 * or, past what it looks at, from the server's answer in its place. */
#define SERVE_BAD_CHUNKS_MESSAGE                                                                                      \
	"the chunked body is malformed (a chunk size that is not 1 to 15 hex digits, or a chunk not ended by CRLF); " \
	"send valid chunked encoding or a Content-Length"

/* What REST's /v1/sql and MCP's run_sql say to no SQL, and to too much. */
#define SERVE_NO_SQL_MESSAGE "\"sql\" is needed: one SELECT statement"
#define SERVE_SQL_TOO_LONG_MESSAGE "the SQL is longer than 65536 bytes; shorten it"

/* What a question (and /healthz) says when no model endpoint is configured:
 * what is missing, and the operator's fix -- to a REST client, and to an
 * MCP client (serve's /mcp and convbi mcp) -- never the command line's
 * wording for a user who can pass flags. */
#define SERVE_NO_MODEL_MESSAGE                                                                                          \
	"this server has no model endpoint configured, so it cannot answer questions; its operator must start it with " \
	"--config FILE naming the model endpoints (or $CONVBI_CONFIG); /v1/sql and /v1/schema work without one"
#define SERVE_MCP_NO_MODEL_MESSAGE                                                                                 \
	"this MCP server has no model endpoint configured, so ask cannot answer questions; its operator must add " \
	"--config FILE naming the model endpoints to the command that starts it (convbi mcp, or convbi serve for " \
	"/mcp) or set $CONVBI_CONFIG; run_sql, schema and list_databases work without one"

/* ---- entry points --------------------------------------------------------- */
int serve_main(int argc, char **argv);
int mcp_main(int argc, char **argv);

/* Small helpers (server.c). */
void serve_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A request's access line: gathered, written within DOOR_TICK_MS (the
 * door calls serve_log_flush), before any serve_log line and at exit. */
void serve_log_access(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void serve_log_flush(void);
int64_t serve_now_ms(void);
/* Appends JSON string text of s to a growable heap string; NULL on OOM. */
char *serve_json_error(const char *code, const char *message);

#endif
