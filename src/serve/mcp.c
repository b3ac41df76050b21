/* mcp.c -- the Model Context Protocol server of convbi, shared by `convbi
 * mcp` (stdio) and `/mcp` on `convbi serve` (Streamable HTTP).
 *
 * It speaks revision 2025-11-25 (initialize, ping, tools/list, tools/call,
 * notifications; also accepting 2025-06-18 and 2025-03-26 clients) and
 * revision 2026-07-28, the stateless one: server/discover, and requests
 * that carry their version in params._meta["io.modelcontextprotocol/
 * protocolVersion"] get results with "resultType":"complete"; a version
 * neither knows gets UnsupportedProtocolVersionError (-32004) listing the
 * supported ones.  Every tool is read-only (annotations.readOnlyHint):
 *   ask             a question; "conversation" continues one the server
 *                   minted in an earlier result; "today" and "candidates"
 *                   as on serve's questions route
 *   run_sql         caller's SQL through the same read-only gate
 *   schema          the schema text the SQL agent is given
 *   list_databases  the databases this caller may use
 *   end_conversation  forgets a conversation
 * Conversations are kept in their own table (server.conversations, apart
 * from REST sessions): at most --max-conversations, the least recently
 * used one closed to make room, idle ones expiring after --session-idle-s.
 * Results are text (the answer, the SQL, a Markdown table) plus
 * structuredContent (question, sql, columns, rows, row_count, truncated,
 * notes, total_rows, total_rows_exact, truncated_by, answer, chart,
 * conversation); a cut result's text ends with the note giving the total.  A failed tool is a result with isError.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"

#define TEXT_OF_(x) #x
#define TEXT_OF(x) TEXT_OF_(x)        /* a number macro as a string literal, for tools_json */
#define MCP_QUESTION_MAX_TEXT "16384" /* SERVE_QUESTION_MAX_BYTES, for tools_json */
_Static_assert(SERVE_QUESTION_MAX_BYTES == 16384, "MCP_QUESTION_MAX_TEXT is SERVE_QUESTION_MAX_BYTES");
#define MCP_SQL_MAX_TEXT "65536" /* SERVE_SQL_MAX_BYTES, for tools_json */
_Static_assert(SERVE_SQL_MAX_BYTES == 65536, "MCP_SQL_MAX_TEXT is SERVE_SQL_MAX_BYTES");
#define MCP_LEGACY_VERSION "2025-11-25"
#define MCP_MODERN_VERSION "2026-07-28"
#define MCP_META_VERSION "io.modelcontextprotocol/protocolVersion"
#define MCP_TABLE_ROWS 50
#define MCP_LIST_TTL_MS \
	300000 /* tools never change while the server runs */ /* rows shown in a tool's text; all rows are in structuredContent */

/* JSON-RPC and MCP error codes. */
#define RPC_PARSE_ERROR (-32700)
#define RPC_INVALID_REQUEST (-32600)
#define RPC_METHOD_NOT_FOUND (-32601)
#define RPC_INVALID_PARAMS (-32602)
#define RPC_UNSUPPORTED_VERSION (-32004)

static const char *const legacy_versions[] = {MCP_LEGACY_VERSION, "2025-06-18", "2025-03-26", NULL};

static const char instructions[] =
        "convbi answers questions about SQL databases. Call list_databases, then ask with a question in plain language; "
        "pass the returned conversation to ask follow-ups, and end_conversation when done with it. run_sql runs your own SELECT through the same read-only gate; "
        "schema shows the tables and columns.";

struct mcp {
	struct server *s;
};

struct mcp *mcp_new(struct server *s)
{
	struct mcp *m = calloc(1, sizeof *m);
	if (m)
		m->s = s;
	return m;
}

void mcp_free(struct mcp *m)
{
	free(m);
}

/* ---- cancellation ------------------------------------------------------------- */

void mcp_cancel_init(struct mcp_cancel *c)
{
	pthread_mutex_init(&c->lock, NULL);
	c->conv = NULL;
	c->canceled = 0;
}

void mcp_cancel_destroy(struct mcp_cancel *c)
{
	pthread_mutex_destroy(&c->lock);
}

void mcp_cancel_fire(struct mcp_cancel *c)
{
	pthread_mutex_lock(&c->lock);
	c->canceled = 1;
	if (c->conv)
		convbi_session_interrupt(c->conv);
	pthread_mutex_unlock(&c->lock);
}

/* Publishes conv (NULL: the run ended); 1 when the call was canceled. */
static int cancel_attach(struct mcp_cancel *c, convbi_session *conv)
{
	if (!c)
		return 0;
	pthread_mutex_lock(&c->lock);
	c->conv = conv;
	int canceled = c->canceled;
	if (canceled && conv)
		convbi_session_interrupt(conv);
	pthread_mutex_unlock(&c->lock);
	return canceled;
}

/* The ask's event callback: nonzero stops it (an interrupt that came just
 * before the ask began is seen here). */
static int cancel_check(const convbi_event *ev, void *payload)
{
	(void)ev;
	struct mcp_cancel *c = payload;
	pthread_mutex_lock(&c->lock);
	int canceled = c->canceled;
	pthread_mutex_unlock(&c->lock);
	return canceled;
}

/* An ask's stop: its MCP call's (notifications/cancelled, its client gone,
 * a signal) or its conversation ended under it (end_conversation). */
struct ask_stop {
	struct mcp_cancel *call; /* may be NULL */
	convbi_session *conv;
	atomic_int ended;
};

static int ask_check(const convbi_event *ev, void *payload)
{
	struct ask_stop *st = payload;
	return atomic_load(&st->ended) || (st->call && cancel_check(ev, st->call));
}

/* sessions_watch's hook: the conversation was ended while answering. */
static void conversation_ended(void *payload)
{
	struct ask_stop *st = payload;
	atomic_store(&st->ended, 1);
	convbi_session_interrupt(st->conv);
}

#define ASK_ENDED_MESSAGE "the conversation was ended (end_conversation) while answering this question; the question was canceled"

/* ---- tools ------------------------------------------------------------------ */

static const char tools_json[] =
        "[{\"name\":\"ask\",\"title\":\"Ask a question about the data\","
        "\"description\":\"Answers a question in plain language about a database: writes one read-only SELECT, checks it, runs it "
        "and answers in words, with the rows, the SQL and a Vega-Lite chart when the result suits one. Pass the conversation from a "
        "previous result to ask a follow-up.\","
        "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
        "\"question\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":" MCP_QUESTION_MAX_TEXT ","
        "\"description\":\"the question to answer\"},"
        "\"hint\":{\"type\":\"string\",\"maxLength\":" MCP_QUESTION_MAX_TEXT ","
        "\"description\":\"extra evidence for the SQL writer\"},"
        "\"conversation\":{\"type\":\"string\",\"description\":\"continue this conversation (from an earlier ask result)\"},"
        "\"db\":{\"type\":\"string\",\"description\":\"database name (see list_databases); default the first\"},"
        "\"today\":{\"type\":\"string\",\"pattern\":\"^[0-9]{4}-[0-9]{2}-[0-9]{2}$\",\"description\":\"the date the "
        "question calls today (YYYY-MM-DD, a real date of years 0001..9999); default the server's\"},"
        "\"candidates\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":" TEXT_OF(SERVE_CANDIDATES_MAX) ","
        "\"description\":\"SQL candidates written and voted on by their results; default the server's\"}},"
        "\"required\":[\"question\"],\"additionalProperties\":false},"
        "\"annotations\":{\"readOnlyHint\":true,\"destructiveHint\":false,\"idempotentHint\":false,\"openWorldHint\":false}},"
        "{\"name\":\"run_sql\",\"title\":\"Run a SELECT\","
        "\"description\":\"Runs one SQL SELECT through the same read-only gate and limits as model-written SQL; returns the rows.\","
        "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
        "\"sql\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":" MCP_SQL_MAX_TEXT ",\"description\":\"one SELECT statement\"},"
        "\"db\":{\"type\":\"string\",\"description\":\"database name; default the first\"}},"
        "\"required\":[\"sql\"],\"additionalProperties\":false},"
        "\"annotations\":{\"readOnlyHint\":true,\"destructiveHint\":false,\"idempotentHint\":true,\"openWorldHint\":false}},"
        "{\"name\":\"schema\",\"title\":\"Show the schema\","
        "\"description\":\"The tables, columns and sample values of a database, as the SQL writer sees them (narrowed to a question "
        "when one is given).\","
        "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
        "\"db\":{\"type\":\"string\",\"description\":\"database name; default the first\"},"
        "\"question\":{\"type\":\"string\",\"description\":\"narrow the schema to this question\"}},"
        "\"additionalProperties\":false},"
        "\"annotations\":{\"readOnlyHint\":true,\"destructiveHint\":false,\"idempotentHint\":true,\"openWorldHint\":false}},"
        "{\"name\":\"list_databases\",\"title\":\"List the databases\","
        "\"description\":\"The databases this server answers questions about.\","
        "\"inputSchema\":{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false},"
        "\"annotations\":{\"readOnlyHint\":true,\"destructiveHint\":false,\"idempotentHint\":true,\"openWorldHint\":false}},"
        "{\"name\":\"end_conversation\",\"title\":\"End a conversation\","
        "\"description\":\"Ends a conversation an earlier ask returned, when no follow-up will come: the server forgets its "
        "history; an ask running on it is canceled. Conversations left open end on their own (idle, or the least "
        "recently used when too many are open).\","
        "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
        "\"conversation\":{\"type\":\"string\",\"description\":\"the conversation to end (from an ask result)\"}},"
        "\"required\":[\"conversation\"],\"additionalProperties\":false},"
        "\"annotations\":{\"readOnlyHint\":true,\"destructiveHint\":false,\"idempotentHint\":true,\"openWorldHint\":false}}]";

/* A tool result: text content plus structuredContent (taken). */
static cJSON *tool_result(const char *text, cJSON *structured, int is_error)
{
	cJSON *r = cJSON_CreateObject(), *content = cJSON_AddArrayToObject(r, "content"), *t = cJSON_CreateObject();
	cJSON_AddStringToObject(t, "type", "text");
	cJSON_AddStringToObject(t, "text", text);
	cJSON_AddItemToArray(content, t);
	if (structured)
		cJSON_AddItemToObject(r, "structuredContent", structured);
	cJSON_AddBoolToObject(r, "isError", is_error);
	return r;
}

static cJSON *tool_error(const char *message)
{
	cJSON *st = cJSON_CreateObject();
	cJSON_AddStringToObject(st, "error", message);
	return tool_result(message, st, 1);
}

static const char *arg_str(const cJSON *args, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static struct serve_db *tool_db(struct mcp *m, int tok, const cJSON *args, char *why, size_t cap)
{
	const char *name = arg_str(args, "db");
	struct serve_db *db = server_db_for(m->s, tok, name);
	if (!db || !server_token_allows(m->s, tok, db)) { /* another tenant's: as if it were not there */
		snprintf(why, cap, "no database is named `%.64s`; call list_databases", name ? name : "");
		return NULL;
	}
	return db;
}

/* The answer as text and structuredContent (the answer JSON's fields);
 * errmsg (may be NULL) instead of the answer's error; an ERATELIMIT
 * failure's retry_after_s says when engine's first endpoint is usable
 * again, as a REST answer's Retry-After. */
static cJSON *answer_result(convbi_answer *a, int rc, const char *errmsg, const char *conversation, convbi_engine *engine)
{
	char *json = NULL, *table = NULL;
	serve_answer_json(a, rc, &json);
	convbi_answer_format(a, "markdown", MCP_TABLE_ROWS, &table);
	cJSON *full = json ? cJSON_Parse(json) : NULL, *st = cJSON_CreateObject();
	static const char *const keys[] = {
	        "question",   "standalone_question", "sql",          "columns", "rows",  "row_count", "truncated", "notes",
	        "total_rows", "total_rows_exact",    "truncated_by", "answer",  "chart", "vote"};
	for (size_t i = 0; full && i < sizeof keys / sizeof keys[0]; i++) {
		cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(full, keys[i]);
		if (v)
			cJSON_AddItemToObject(st, keys[i], v);
	}
	if (conversation)
		cJSON_AddStringToObject(st, "conversation", conversation);
	if (rc == CONVBI_ENOENDPOINT && !errmsg)
		errmsg = SERVE_MCP_NO_MODEL_MESSAGE;
	if (rc && !errmsg)
		errmsg = serve_client_errmsg(rc, convbi_answer_errmsg(a));
	if (rc) {
		cJSON_AddStringToObject(st, "error", errmsg);
		cJSON_AddStringToObject(st, "error_class", convbi_errname(rc));
		if (rc == CONVBI_ERATELIMIT)
			cJSON_AddNumberToObject(st, "retry_after_s", serve_rate_limit_retry_s(engine));
	}
	const cJSON *cut = convbi_answer_truncated(a) ? cJSON_GetArrayItem(cJSON_GetObjectItem(st, "notes"), 0) : NULL;
	const char *cut_note = cJSON_IsString(cut) ? cut->valuestring : NULL; /* the cut and the total */
	size_t n = strlen(convbi_answer_text(a)) + strlen(convbi_answer_sql(a)) + (table ? strlen(table) : 0) +
	           (rc ? strlen(errmsg) : 0) + (cut_note ? strlen(cut_note) : 0) + 200;
	char *text = malloc(n);
	if (text) {
		int k = snprintf(text, n, "%s", rc ? errmsg : convbi_answer_text(a));
		if (*convbi_answer_sql(a))
			k += snprintf(text + k, n - (size_t)k, "\n\nSQL:\n```sql\n%s\n```", convbi_answer_sql(a));
		if (table && *table)
			k += snprintf(text + k, n - (size_t)k, "\n\n%s", table);
		if (cut_note)
			snprintf(text + k, n - (size_t)k, "\n(%s; the rows kept are in structuredContent)", cut_note);
		else if (convbi_answer_row_count(a) > MCP_TABLE_ROWS)
			snprintf(text + k, n - (size_t)k, "\n(%lld rows; all are in structuredContent)",
			         (long long)convbi_answer_row_count(a));
	}
	cJSON *r = tool_result(text ? text : "", st, rc != 0);
	free(text);
	cJSON_Delete(full);
	convbi_free(json);
	convbi_free(table);
	return r;
}

/* Takes a question slot for tok; NULL, or the tool error saying why not. */
static cJSON *take_slot(struct server *s, int tok)
{
	int why = server_slot_take(s, tok);
	if (why == SERVE_SLOT_TOKEN_FULL) {
		char msg[200];
		snprintf(msg, sizeof msg, "this token runs its share of --max-questions (%d at once); retry shortly",
		         s->cfg.max_questions_per_token);
		return tool_error(msg);
	}
	return why ? tool_error(why == SERVE_SLOT_DRAINING ? "the server is shutting down; retry against another instance"
	                                                   : "the server is busy (too many questions running); retry shortly")
	           : NULL;
}

/* An ask: on the conversation named, else on a new one -- taken only once
 * the question has a slot, and kept (its id in the result) only when the
 * question was answered, so a refused, failed or canceled ask leaves
 * nothing behind.  Conversations live in their own table, apart from
 * REST sessions; a full table closes its least recently used one.  Ending
 * the conversation while it answers cancels the ask (attack7 N1). */
static cJSON *tool_ask(struct mcp *m, int tok, const cJSON *args, struct mcp_cancel *cancel)
{
	struct session_table *convs = m->s->conversations;
	const char *conversation = arg_str(args, "conversation"), *dbname = arg_str(args, "db");
	char why[200];
	struct input_question in;
	if (input_question(args, &in, why, sizeof why))
		return tool_error(why);
	if (m->s->no_model) { /* as REST's questions: up front, before a slot or a conversation is taken */
		cJSON *r = tool_error(SERVE_MCP_NO_MODEL_MESSAGE);
		cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(r, "structuredContent"), "error_class",
		                        convbi_errname(CONVBI_ENOENDPOINT));
		return r;
	}
	convbi_ask_options ao = CONVBI_ASK_OPTIONS_INIT;
	ao.today = in.today;
	ao.candidates = in.candidates;
	struct ask_stop stop = {.call = cancel};
	struct serve_session *ss = NULL;
	struct serve_db *db = NULL;
	if (conversation) {
		if (!(ss = sessions_get(convs, conversation, tok)))
			return tool_error(
			        "no such conversation (it may have expired, been ended, or been closed as the least "
			        "recently used); ask without \"conversation\" to start one");
		if (dbname && strcmp(dbname, ss->db->name)) {
			snprintf(why, sizeof why, "the conversation is on database `%s`; leave \"db\" out to continue it",
			         ss->db->name);
			sessions_release(convs, ss);
			return tool_error(why);
		}
	} else if (!(db = tool_db(m, tok, args, why, sizeof why))) {
		return tool_error(why);
	}
	cJSON *r = take_slot(m->s, tok);
	if (r) {
		sessions_release(convs, ss);
		return r;
	}
	if (!conversation) {
		int token_full = 0, rc = sessions_create(convs, db, tok, &ss, &token_full, NULL);
		if (rc) {
			server_slot_give(m->s, tok);
			return tool_error(rc != CONVBI_ETOOBIG ? convbi_errstr(rc)
			                  : token_full
			                          ? "every conversation this token holds (its share of --max-conversations) "
			                            "is answering a question; retry shortly"
			                          : "every conversation (--max-conversations) is answering a question; retry "
			                            "shortly");
		}
	}
	if (sessions_begin(convs, ss)) {
		server_slot_give(m->s, tok);
		sessions_release(convs, ss);
		return tool_error("this conversation is answering another question; wait for it");
	}
	int rc = ss->conv ? CONVBI_OK : convbi_session_new(&ss->conv, ss->db->engine);
	if (rc) {
		const char *failed = ss->conv ? convbi_session_errmsg(ss->conv) : convbi_errstr(rc);
		server_db_failed(ss->db, rc, failed);
		r = tool_error(failed);
		convbi_session_free(ss->conv);
		ss->conv = NULL;
	} else {
		convbi_answer *a = NULL;
		struct serve_run run;
		stop.conv = ss->conv;
		sessions_watch(convs, ss, conversation_ended, &stop); /* forgotten by sessions_end */
		server_run_begin(m->s, &run, ss->conv);
		rc = cancel_attach(cancel, ss->conv)
		             ? CONVBI_ECANCELED
		             : convbi_session_ask_with(ss->conv, in.question, in.hint, &ao, ask_check, &stop, &a);
		cancel_attach(cancel, NULL);
		server_run_end(m->s, &run);
		metrics_answer(m->s->metrics, a, rc);
		const char *ended = rc == CONVBI_ECANCELED && atomic_load(&stop.ended) ? ASK_ENDED_MESSAGE : NULL;
		r = a ? answer_result(a, rc, ended, conversation || !rc ? ss->id : NULL, ss->db->engine)
		      : tool_error(ended ? ended : convbi_errstr(rc));
		convbi_answer_free(a);
	}
	server_slot_give(m->s, tok);
	sessions_end(convs, ss);
	if (!conversation && rc)
		sessions_close(convs, ss->id, tok); /* a new conversation whose first question failed: nothing to continue */
	sessions_release(convs, ss);
	return r;
}

/* Ends a conversation; an ask running on it is canceled (its caller gets
 * an isError result, ECANCELED) and it is unknown from now on. */
static cJSON *tool_end_conversation(struct mcp *m, int tok, const cJSON *args)
{
	const char *id = arg_str(args, "conversation");
	if (!id || sessions_close(m->s->conversations, id, tok))
		return tool_error("no such conversation (it may have expired or been ended already)");
	cJSON *st = cJSON_CreateObject();
	cJSON_AddStringToObject(st, "conversation", id);
	cJSON_AddBoolToObject(st, "ended", 1);
	return tool_result("The conversation is ended.", st, 0);
}

static cJSON *tool_run_sql(struct mcp *m, int tok, const cJSON *args, struct mcp_cancel *cancel)
{
	const char *sql = arg_str(args, "sql");
	char why[200];
	if (!sql || !*sql)
		return tool_error(SERVE_NO_SQL_MESSAGE);
	if (strlen(sql) > SERVE_SQL_MAX_BYTES)
		return tool_error(SERVE_SQL_TOO_LONG_MESSAGE);
	struct serve_db *db = tool_db(m, tok, args, why, sizeof why);
	if (!db)
		return tool_error(why);
	cJSON *busy = take_slot(m->s, tok);
	if (busy)
		return busy;
	convbi_session *conv = NULL;
	convbi_answer *a = NULL;
	int rc = convbi_session_new(&conv, db->engine);
	if (!rc) {
		struct serve_run run;
		server_run_begin(m->s, &run, conv);
		rc = cancel_attach(cancel, conv) ? CONVBI_ECANCELED : convbi_session_run_sql(conv, sql, &a);
		cancel_attach(cancel, NULL);
		server_run_end(m->s, &run);
	}
	const char *failed = a ? convbi_answer_errmsg(a) : conv ? convbi_session_errmsg(conv) : convbi_errstr(rc);
	server_db_failed(db, rc, failed);
	cJSON *r = a ? answer_result(a, rc, NULL, NULL, db->engine) : tool_error(failed);
	convbi_answer_free(a);
	convbi_session_free(conv);
	server_slot_give(m->s, tok);
	return r;
}

static cJSON *tool_schema(struct mcp *m, int tok, const cJSON *args)
{
	char why[200];
	struct serve_db *db = tool_db(m, tok, args, why, sizeof why);
	if (!db)
		return tool_error(why);
	const char *question = arg_str(args, "question");
	if (question && strlen(question) > SERVE_QUESTION_MAX_BYTES)
		return tool_error("the question is too long; shorten it");
	char *text = NULL;
	int rc = convbi_engine_schema(db->engine, question && *question ? question : NULL, &text);
	if (rc)
		return tool_error(convbi_engine_errmsg(db->engine));
	cJSON *st = cJSON_CreateObject();
	cJSON_AddStringToObject(st, "db", db->name);
	cJSON_AddStringToObject(st, "schema", text);
	cJSON *r = tool_result(text, st, 0);
	convbi_free(text);
	return r;
}

static cJSON *tool_list_databases(struct mcp *m, int tok)
{
	cJSON *st = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(st, "databases");
	char text[SERVE_DBS_MAX * (SERVE_NAME_MAX_BYTES + 4)] = "";
	size_t k = 0;
	for (int i = 0; i < m->s->ndbs; i++) {
		if (!server_token_allows(m->s, tok, &m->s->dbs[i]))
			continue;
		cJSON *d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "name", m->s->dbs[i].name);
		cJSON_AddItemToArray(arr, d);
		k += (size_t)snprintf(text + k, sizeof text - k, "%s%s", k ? "\n" : "", m->s->dbs[i].name);
	}
	return tool_result(k ? text : "(no database)", st, 0);
}

/* ---- JSON-RPC ------------------------------------------------------------------ */

static char *rpc_error(const cJSON *id, int code, const char *message, cJSON *data)
{
	cJSON *o = cJSON_CreateObject(), *e = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "jsonrpc", "2.0");
	cJSON_AddItemToObject(o, "id", id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull());
	cJSON_AddNumberToObject(e, "code", code);
	cJSON_AddStringToObject(e, "message", message);
	if (data)
		cJSON_AddItemToObject(e, "data", data);
	cJSON_AddItemToObject(o, "error", e);
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static char *rpc_result(const cJSON *id, cJSON *result, int modern)
{
	if (modern && !cJSON_HasObjectItem(result, "resultType"))
		cJSON_AddStringToObject(result, "resultType", "complete");
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "jsonrpc", "2.0");
	cJSON_AddItemToObject(o, "id", cJSON_Duplicate(id, 1));
	cJSON_AddItemToObject(o, "result", result);
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static int known_legacy(const char *v)
{
	for (const char *const *p = legacy_versions; v && *p; p++)
		if (!strcmp(v, *p))
			return 1;
	return 0;
}

static cJSON *supported_versions(void)
{
	cJSON *a = cJSON_CreateArray();
	cJSON_AddItemToArray(a, cJSON_CreateString(MCP_MODERN_VERSION));
	for (const char *const *p = legacy_versions; *p; p++)
		cJSON_AddItemToArray(a, cJSON_CreateString(*p));
	return a;
}

static cJSON *server_info(void)
{
	cJSON *i = cJSON_CreateObject();
	cJSON_AddStringToObject(i, "name", "convbi");
	cJSON_AddStringToObject(i, "title", "convbi text-to-SQL");
	cJSON_AddStringToObject(i, "version", convbi_version());
	return i;
}

static cJSON *capabilities(void)
{
	cJSON *c = cJSON_CreateObject(), *t = cJSON_AddObjectToObject(c, "tools");
	cJSON_AddBoolToObject(t, "listChanged", 0);
	return c;
}

/* ---- argument checks -------------------------------------------------------- */

/* An argument name as shown in a message: printable ASCII of at most 64
 * bytes, else described (it came from the caller). */
static void shown_name(const char *k, char *out, size_t cap)
{
	size_t n = strlen(k), ok = n > 0 && n <= 64;
	for (size_t i = 0; ok && i < n; i++)
		ok = k[i] >= 0x20 && k[i] < 0x7f && k[i] != '"' && k[i] != '\\';
	if (ok)
		snprintf(out, cap, "\"%s\"", k);
	else
		snprintf(out, cap, "(a name of %zu bytes)", n);
}

/* One argument against its property schema: NULL, or why not (in why):
 * input_field_problem's rule, REST's too. */
static const char *check_arg(const char *key, const cJSON *prop, const cJSON *v, int optional, char *why, size_t cap)
{
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(prop, "type");
	const cJSON *lo = cJSON_GetObjectItemCaseSensitive(prop, "minimum");
	const cJSON *hi = cJSON_GetObjectItemCaseSensitive(prop, "maximum");
	return input_field_problem(key, v, cJSON_IsString(type) ? type->valuestring : "", lo ? lo->valuedouble : 1,
	                           hi ? hi->valuedouble : 0, optional, why, cap);
}

/* Checks a tool's arguments (NULL = none) against the inputSchema it
 * declares in tools_json -- the one statement of what each tool takes, so
 * tools/list and the check cannot disagree: every key a declared property
 * (additionalProperties is false for every tool), each of its declared
 * type (and range), every required one present.  NULL, or one line naming
 * the argument (in why). */
static const char *check_args(const char *tool, const cJSON *args, char *why, size_t cap)
{
	cJSON *all = cJSON_Parse(tools_json), *t = NULL;
	const char *bad = NULL;
	char name[80];
	cJSON_ArrayForEach(t, all)
	{
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name");
		if (cJSON_IsString(n) && !strcmp(n->valuestring, tool))
			break;
	}
	const cJSON *schema = cJSON_GetObjectItemCaseSensitive(t, "inputSchema");
	const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
	const cJSON *req = cJSON_GetObjectItemCaseSensitive(schema, "required"), *v;
	if (!props) {
		bad = "out of memory; retry";
		goto done;
	}
	cJSON_ArrayForEach(v, args)
	{
		const cJSON *prop = cJSON_GetObjectItemCaseSensitive(props, v->string);
		if (!prop) {
			shown_name(v->string, name, sizeof name);
			size_t k = (size_t)snprintf(why, cap, "unknown argument %s; %s takes ", name, tool);
			const cJSON *p;
			cJSON_ArrayForEach(p, props) k += (size_t)snprintf(why + k, k < cap ? cap - k : 0, "%s%s",
			                                                   p == props->child ? "" : ", ", p->string);
			if (!props->child)
				snprintf(why + k, k < cap ? cap - k : 0, "no arguments");
			bad = why;
			goto done;
		}
		int optional = 1;
		const cJSON *r;
		cJSON_ArrayForEach(r, req) optional = optional && !(cJSON_IsString(r) && !strcmp(r->valuestring, v->string));
		if ((bad = check_arg(v->string, prop, v, optional, why, cap)))
			goto done;
	}
	cJSON_ArrayForEach(v, req)
	{
		if (cJSON_IsString(v) && !cJSON_GetObjectItemCaseSensitive(args, v->valuestring)) {
			const cJSON *d = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(props, v->valuestring),
			                                                  "description");
			snprintf(why, cap, "\"%s\" is needed: %s", v->valuestring, cJSON_IsString(d) ? d->valuestring : "");
			bad = why;
			goto done;
		}
	}
done:
	cJSON_Delete(all);
	return bad;
}

/* Runs the tool params names; *unknown = 1 (and NULL) when there is no
 * such tool.  bad_args: what input_check_json found wrong in the
 * arguments (a NUL, text not UTF-8), NULL when nothing: like any other bad
 * argument it is a tool result with isError (MCP 2025-11-25, SEP-1303:
 * input validation errors are tool execution errors), never run. */
static cJSON *call_tool(struct mcp *m, int tok, const cJSON *params, const char *bad_args, struct mcp_cancel *cancel,
                        int *unknown)
{
	static const char *const tools[] = {"ask", "run_sql", "schema", "list_databases", "end_conversation", NULL};
	const char *name = arg_str(params, "name");
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(params, "arguments");
	*unknown = 1;
	for (int i = 0; name && tools[i]; i++)
		*unknown &= strcmp(name, tools[i]) != 0;
	if (*unknown || !name)
		return NULL;
	if (args && !cJSON_IsObject(args))
		return tool_error("\"arguments\" must be an object");
	if (bad_args)
		return tool_error(bad_args);
	char why[400];
	const char *bad = check_args(name, args, why, sizeof why);
	if (bad)
		return tool_error(bad);
	if (!strcmp(name, "ask"))
		return tool_ask(m, tok, args, cancel);
	if (!strcmp(name, "run_sql"))
		return tool_run_sql(m, tok, args, cancel);
	if (!strcmp(name, "schema"))
		return tool_schema(m, tok, args);
	if (!strcmp(name, "end_conversation"))
		return tool_end_conversation(m, tok, args);
	return tool_list_databases(m, tok);
}

int mcp_handle(struct mcp *m, int tok, const char *text, size_t len, const char *header_version, const char *header_method,
               struct mcp_cancel *cancel, char **reply_out, int *new_session)
{
	*reply_out = NULL;
	*new_session = 0;
	char why[300], field[64], path[200];
	int bad_input = input_check_json(text, len, why, sizeof why, field, sizeof field, path, sizeof path);
	cJSON *msg = NULL;
	char strict[200] = "";
	int parsed = bad_input && !field[0] ? INPUT_NOT_JSON : input_parse_json(text, len, &msg, strict, sizeof strict);
	if (parsed != INPUT_OK) {
		char line[360];
		snprintf(line, sizeof line, "Parse error: %s",
		         bad_input                 ? why
		         : parsed == INPUT_REFUSED ? strict
		                                   : "the message is not JSON");
		*reply_out = rpc_error(NULL, RPC_PARSE_ERROR, line, NULL);
		cJSON_Delete(msg);
		return 400;
	}
	int status = 200;
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
	const cJSON *method = cJSON_GetObjectItemCaseSensitive(msg, "method");
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(msg, "params");
	const cJSON *jsonrpc = cJSON_GetObjectItemCaseSensitive(msg, "jsonrpc");
	const char *invalid = !cJSON_IsObject(msg)
	                              ? (cJSON_IsArray(msg) ? "batches are not part of MCP 2025-11-25; send one object"
	                                                    : "send one JSON-RPC 2.0 object")
	                      : !cJSON_IsString(jsonrpc) || strcmp(jsonrpc->valuestring, "2.0") ? "\"jsonrpc\" must be \"2.0\""
	                      : method && !cJSON_IsString(method)                               ? "\"method\" must be a string"
	                      : id && !cJSON_IsString(id) && !cJSON_IsNumber(id) ? "\"id\" must be a string or a number"
	                                                                         : NULL;
	if (invalid) {
		char line[200];
		snprintf(line, sizeof line, "Invalid Request: %s", invalid);
		int id_ok = cJSON_IsObject(msg) && (cJSON_IsString(id) || cJSON_IsNumber(id));
		*reply_out = rpc_error(id_ok ? id : NULL, RPC_INVALID_REQUEST, line, NULL);
		status = 400;
		goto done;
	}
	/* a NUL or bytes that are not UTF-8 in a string: never echoed, never
	 * run; in a tool's arguments, a tool error as other bad arguments */
	const char *bad_args = NULL;
	if (bad_input && cJSON_IsString(method) && !strcmp(method->valuestring, "tools/call") &&
	    !strncmp(path, "params.arguments.", 17) && id) {
		bad_args = why;
		bad_input = 0;
	}
	if (bad_input) {
		int envelope = !strcmp(field, "id") || !strcmp(field, "method") || !strcmp(field, "jsonrpc");
		char line[360];
		snprintf(line, sizeof line, "%s: %s", envelope ? "Invalid Request" : "Invalid params", why);
		*reply_out = rpc_error(strcmp(field, "id") ? id : NULL, envelope ? RPC_INVALID_REQUEST : RPC_INVALID_PARAMS, line,
		                       NULL);
		status = 400;
		goto done;
	}
	if (!method || !id) { /* a notification, or a response to us: acknowledged */
		status = 202;
		goto done;
	}
	const char *name = method->valuestring;
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(params, "_meta");
	const cJSON *mv = cJSON_GetObjectItemCaseSensitive(meta, MCP_META_VERSION);
	const char *version = cJSON_IsString(mv) ? mv->valuestring : NULL;
	int modern = version && !strcmp(version, MCP_MODERN_VERSION);
	if (version && !modern && !known_legacy(version)) {
		cJSON *data = cJSON_CreateObject();
		cJSON_AddItemToObject(data, "supported", supported_versions());
		cJSON_AddStringToObject(data, "requested", version);
		*reply_out = rpc_error(id, RPC_UNSUPPORTED_VERSION, "Unsupported protocol version", data);
		status = 400;
		goto done;
	}
	if (header_version && version && strcmp(header_version, version)) {
		*reply_out =
		        rpc_error(id, RPC_INVALID_REQUEST, "the MCP-Protocol-Version header differs from params._meta", NULL);
		status = 400;
		goto done;
	}
	if (header_version && !version && strcmp(name, "initialize") && !known_legacy(header_version) &&
	    strcmp(header_version, MCP_MODERN_VERSION)) {
		cJSON *data = cJSON_CreateObject();
		cJSON_AddItemToObject(data, "supported", supported_versions());
		cJSON_AddStringToObject(data, "requested", header_version);
		*reply_out = rpc_error(id, RPC_UNSUPPORTED_VERSION, "Unsupported protocol version", data);
		status = 400;
		goto done;
	}
	if (header_method && strcmp(header_method, name)) {
		*reply_out = rpc_error(id, RPC_INVALID_REQUEST, "the Mcp-Method header differs from the body's method", NULL);
		status = 400;
		goto done;
	}
	cJSON *result = NULL;
	if (!strcmp(name, "initialize")) {
		const char *want = arg_str(params, "protocolVersion");
		result = cJSON_CreateObject();
		cJSON_AddStringToObject(result, "protocolVersion", known_legacy(want) ? want : MCP_LEGACY_VERSION);
		cJSON_AddItemToObject(result, "capabilities", capabilities());
		cJSON_AddItemToObject(result, "serverInfo", server_info());
		cJSON_AddStringToObject(result, "instructions", instructions);
		*new_session = 1;
	} else if (!strcmp(name, "server/discover")) {
		result = cJSON_CreateObject();
		cJSON_AddItemToObject(result, "supportedVersions", supported_versions());
		cJSON_AddItemToObject(result, "capabilities", capabilities());
		cJSON_AddItemToObject(result, "serverInfo", server_info());
		cJSON_AddStringToObject(result, "instructions", instructions);
		cJSON_AddNumberToObject(result, "ttlMs", MCP_LIST_TTL_MS);
		cJSON_AddStringToObject(result, "cacheScope", "public");
		modern = 1; /* only modern clients call it; its result has resultType */
	} else if (!strcmp(name, "ping")) {
		result = cJSON_CreateObject();
	} else if (!strcmp(name, "tools/list")) {
		result = cJSON_CreateObject();
		cJSON_AddItemToObject(result, "tools", cJSON_Parse(tools_json));
		if (modern) { /* 2026-07-28 list results are cacheable: both hints are required */
			cJSON_AddNumberToObject(result, "ttlMs", MCP_LIST_TTL_MS);
			cJSON_AddStringToObject(result, "cacheScope", "public");
		}
	} else if (!strcmp(name, "tools/call")) {
		int unknown = 0;
		result = call_tool(m, tok, params, bad_args, cancel, &unknown);
		if (unknown) {
			*reply_out = rpc_error(id, RPC_INVALID_PARAMS, "Unknown tool: call tools/list for the names", NULL);
			goto done;
		}
	} else {
		*reply_out = rpc_error(id, RPC_METHOD_NOT_FOUND, "Method not found", NULL);
		status = modern ? 404 : 200;
		goto done;
	}
	*reply_out = result ? rpc_result(id, result, modern) : rpc_error(id, -32603, "Internal error: out of memory", NULL);
done:
	cJSON_Delete(msg);
	return status;
}
