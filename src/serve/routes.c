/* routes.c -- the routes of `convbi serve` (web/openapi.json documents
 * them; a test checks the two agree):
 *
 *   POST   /v1/sessions                    {"db"?} -> 201 {"session","db"}
 *   DELETE /v1/sessions/{id}               -> 204
 *   POST   /v1/sessions/{id}/questions     {"question","hint"?,"today"?,"candidates"?}: SSE with
 *          `Accept: text/event-stream`, else one JSON answer
 *   POST   /v1/sql                         {"db"?,"sql"} through the gate
 *   GET    /v1/schema?db=&question=        the schema text the SQL agent gets
 *   GET    /v1/databases, /healthz, /metrics, /v1/openapi.json
 *   POST   /mcp                            MCP over Streamable HTTP
 *   GET    /, /assets/NAME                 the page and its pinned scripts
 */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/datadir.h"
#include "serve/routes.h"
#include "util/utf8.h"

#define SSE_BLOCK_BYTES (16u << 10)
#define SSE_POLL_MS 50
#define SSE_KEEPALIVE_MS 15000

/* ---- helpers ---------------------------------------------------------------- */

/* The HTTP status for a failed question or SQL run. */
static int http_status_of(int code)
{
	switch (code) {
	case CONVBI_EINVAL:
	case CONVBI_EBADREQUEST: return 400;
	case CONVBI_ETOOBIG: return 413;
	case CONVBI_EBUDGET: return 402;
	case CONVBI_EREJECTED:
	case CONVBI_ESQL:
	case CONVBI_EREPAIR:
	case CONVBI_EFILTERED:
	case CONVBI_ECONTEXT: return 422;
	case CONVBI_ENOENDPOINT:
	case CONVBI_ERATELIMIT:
	case CONVBI_ECANCELED: return 503;
	case CONVBI_ELLM:
	case CONVBI_EAUTH:
	case CONVBI_EPROTOCOL: return 502;
	case CONVBI_ETIMEOUT: return 504;
	default: return 500;
	}
}

/* {"error":{"code","message"},"answer":ANSWER} for a failed answer; a 503
 * says when to retry: ERATELIMIT when engine's first endpoint is usable
 * again, else in a second. */
static enum MHD_Result respond_failed_answer(struct request *req, int rc, const char *message, const char *answer_json,
                                             convbi_engine *engine)
{
	cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
	cJSON_AddStringToObject(e, "code", convbi_errname(rc));
	cJSON_AddStringToObject(e, "message", message);
	cJSON *a = answer_json ? cJSON_Parse(answer_json) : NULL;
	if (a && !cJSON_HasObjectItem(a, "error_class"))
		cJSON_Delete(a), a = NULL; /* an error shape already, not an answer */
	if (a)
		cJSON_AddItemToObject(o, "answer", a);
	char *json = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	int status = http_status_of(rc);
	char retry[16];
	snprintf(retry, sizeof retry, "%d", rc == CONVBI_ERATELIMIT ? serve_rate_limit_retry_s(engine) : 1);
	enum MHD_Result r =
	        json ? respond(req, status, "application/json", json, strlen(json), status == 503 ? retry : NULL) : MHD_NO;
	free(json);
	return r;
}

/* Parses the body as a JSON object whose keys are all in `allowed`
 * (NULL-terminated).  Queues a 400 naming the problem (the message shows
 * `example`, the route's body) and returns NULL otherwise; an empty body
 * is an empty object. */
static cJSON *body_object(struct request *req, const char *const *allowed, const char *example, enum MHD_Result *res)
{
	char msg[300], field[64];
	if (req->len && input_check_json(req->body, req->len, msg, sizeof msg, field, sizeof field, NULL, 0)) {
		*res = respond_error(req, 400, "bad_request", msg);
		return NULL;
	}
	cJSON *o = NULL;
	if (!req->len)
		o = cJSON_CreateObject();
	else if (input_parse_json(req->body, req->len, &o, msg, sizeof msg) == INPUT_REFUSED) {
		char line[360];
		snprintf(line, sizeof line, "the body is refused: %s", msg);
		*res = respond_error(req, 400, "bad_request", line);
		return NULL;
	}
	if (!cJSON_IsObject(o)) {
		snprintf(msg, sizeof msg, "the body is %s; send a JSON object, e.g. %s",
		         !o                 ? "not valid JSON"
		         : cJSON_IsArray(o) ? "a JSON array"
		                            : "a JSON value but not an object",
		         example);
		cJSON_Delete(o);
		*res = respond_error(req, 400, "bad_request", msg);
		return NULL;
	}
	const cJSON *k;
	cJSON_ArrayForEach(k, o)
	{
		int ok = 0;
		for (const char *const *a = allowed; *a && !ok; a++)
			ok = k->string && !strcmp(k->string, *a);
		if (!ok) {
			snprintf(msg, sizeof msg,
			         "unknown field `%.60s`; this route takes only the fields its documentation lists",
			         k->string ? k->string : "");
			cJSON_Delete(o);
			*res = respond_error(req, 400, "bad_request", msg);
			return NULL;
		}
	}
	return o;
}

/* A string field: NULL when missing; queues a 400 when not a string
 * (null too: input_field_problem's rule, MCP's). */
static const char *string_field(struct request *req, const cJSON *o, const char *key, int optional, enum MHD_Result *res,
                                int *bad)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	char msg[128];
	if (!v)
		return NULL;
	if (input_field_problem(key, v, "string", 1, 0, optional, msg, sizeof msg)) {
		*res = respond_error(req, 400, "bad_request", msg);
		*bad = 1;
		return NULL;
	}
	return v->valuestring;
}

/* The database a request names, checked against its token.  Queues the
 * 404 and returns NULL when it may not be used: another tenant's database
 * gets the same answer as one that does not exist, so that a tenant cannot
 * tell the names of the others'. */
static struct serve_db *usable_db(struct server *s, struct request *req, const char *name, enum MHD_Result *res)
{
	struct serve_db *db = server_db_for(s, req->token, name);
	if (!db || !server_token_allows(s, req->token, db)) {
		char msg[200];
		snprintf(msg, sizeof msg, "no database is named `%.64s`; GET /v1/databases lists them", name ? name : "");
		*res = respond_error(req, 404, "unknown_database", msg);
		return NULL;
	}
	return db;
}

/* Takes a concurrent-question slot for the request's token; 0, or queues
 * a 503 and returns -1. */
static int take_slot(struct server *s, struct request *req, enum MHD_Result *res)
{
	int why = server_slot_take(s, req->token);
	if (why == SERVE_SLOT_DRAINING) {
		*res = respond_error(req, 503, "draining", "the server is shutting down; retry against another instance");
	} else if (why == SERVE_SLOT_TOKEN_FULL) {
		char msg[200];
		snprintf(msg, sizeof msg,
		         "this token runs its share of --max-questions (%d at once); retry after the Retry-After seconds",
		         s->cfg.max_questions_per_token);
		*res = respond_error(req, 503, "busy", msg);
	} else if (why) {
		*res = respond_error(req, 503, "busy", "too many questions are running; retry after the Retry-After seconds");
	}
	return why ? -1 : 0;
}

/* ---- sessions and questions ------------------------------------------------- */

/* A question answered on the connection's thread is watched: the
 * watchdog thread looks at every watched client's socket each
 * WATCH_POLL_MS and interrupts the question of one that left, even in the
 * middle of a model call; the event callback notices it too. */
#define WATCH_POLL_MS 50

struct watch {
	int fd;
	atomic_int gone;
	atomic_int closed;         /* its session was closed (DELETE) */
	convbi_session *conv;      /* set once the conversation is open */
	struct mcp_cancel *cancel; /* an MCP call's, instead of conv */
	uint64_t id;               /* set by watch_add: tells a later watch at the same address apart */
	struct watch *next;
};

static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static struct watch *watched;
static uint64_t watch_ids; /* under watch_lock */
static pthread_t watchdog;
static atomic_int watchdog_stop;
static int watchdog_started;

/* The sockets are looked at without the lock (watch_add and watch_remove
 * take it on every question's thread): the watched fds and ids are copied,
 * polled, and a verdict applies only to a watch still there under its id. */
static void *watchdog_run(void *payload)
{
	(void)payload;
	struct seen {
		struct watch *w;
		uint64_t id;
		int fd;
	} *seen = NULL;
	size_t cap = 0;
	while (!atomic_load(&watchdog_stop)) {
		size_t n = 0;
		pthread_mutex_lock(&watch_lock);
		for (struct watch *w = watched; w; w = w->next) {
			if (atomic_load(&w->gone) && !w->cancel && w->conv)
				convbi_session_interrupt(w->conv); /* again: a run that began after the first clears it */
			if (atomic_load(&w->gone))
				continue;
			if (n == cap) { /* rare: grows to the most questions ever watched at once */
				struct seen *more = realloc(seen, (cap ? 2 * cap : 64) * sizeof *seen);
				if (!more)
					break; /* the rest are looked at when memory allows */
				seen = more;
				cap = cap ? 2 * cap : 64;
			}
			seen[n++] = (struct seen){w, w->id, w->fd};
		}
		pthread_mutex_unlock(&watch_lock);
		size_t left = 0;
		for (size_t i = 0; i < n; i++)
			if (!client_alive(seen[i].fd))
				seen[left++] = seen[i];
		if (left) {
			pthread_mutex_lock(&watch_lock);
			for (struct watch *w = watched; w; w = w->next)
				for (size_t i = 0; i < left; i++)
					if (seen[i].w == w && seen[i].id == w->id && !atomic_load(&w->gone)) {
						atomic_store(&w->gone, 1);
						if (w->cancel)
							mcp_cancel_fire(w->cancel);
						else if (w->conv)
							convbi_session_interrupt(w->conv);
					}
			pthread_mutex_unlock(&watch_lock);
		}
		struct timespec ts = {0, WATCH_POLL_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
	free(seen);
	return NULL;
}

static void watch_add(struct watch *w)
{
	pthread_mutex_lock(&watch_lock);
	w->id = ++watch_ids;
	w->next = watched;
	watched = w;
	pthread_mutex_unlock(&watch_lock);
}

static void watch_remove(struct watch *w)
{
	pthread_mutex_lock(&watch_lock);
	for (struct watch **p = &watched; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			break;
		}
	pthread_mutex_unlock(&watch_lock);
}

static int watch_client(const convbi_event *ev, void *payload)
{
	struct watch *w = payload;
	return atomic_load(&w->gone) || atomic_load(&w->closed);
}

/* sessions_watch's hook: the session was closed while answering. */
static void watch_session_closed(void *payload)
{
	struct watch *w = payload;
	atomic_store(&w->closed, 1);
	if (w->conv)
		convbi_session_interrupt(w->conv);
}

/* The weight (q, in thousandths) that Accept header a gives media type
 * `type` by name -- type/subtype compared case-insensitively, whole, so
 * that text/event-streamx is not it -- or -1 when it does not name it. */
static int accept_q(const char *a, const char *type)
{
	size_t tn = strlen(type);
	for (const char *p = a; *p;) {
		p += strspn(p, " \t,");
		size_t len = strcspn(p, ",");
		const char *end = p + len, *name_end = p + strcspn(p, ";, \t");
		if (name_end > end)
			name_end = end;
		if ((size_t)(name_end - p) == tn && !strncasecmp(p, type, tn)) {
			int q = 1000;
			for (const char *m = name_end; m < end && (m = memchr(m, ';', (size_t)(end - m)));) {
				m += 1 + strspn(m + 1, " \t");
				if ((*m | 0x20) != 'q' || m[1] != '=')
					continue;
				m += 2;
				q = *m == '1' ? 1000 : 0; /* a qvalue: 0[.ddd] or 1[.000] */
				if (*m == '0' && m[1] == '.')
					for (int i = 0, scale = 100; i < 3 && m[2 + i] >= '0' && m[2 + i] <= '9';
					     i++, scale /= 10)
						q += (m[2 + i] - '0') * scale;
			}
			return q;
		}
		p = end;
	}
	return -1;
}

/* 200 with the answer JSON, or the error shape with the answer. */
static enum MHD_Result respond_answer(struct request *req, int rc, const char *json, convbi_engine *engine)
{
	if (!rc)
		return respond_json(req, 200, json);
	cJSON *a = json ? cJSON_Parse(json) : NULL;
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(a, "error");
	if (cJSON_IsObject(msg))
		msg = cJSON_GetObjectItemCaseSensitive(msg, "message");
	enum MHD_Result res =
	        respond_failed_answer(req, rc, cJSON_IsString(msg) ? msg->valuestring : convbi_errstr(rc), json, engine);
	cJSON_Delete(a);
	return res;
}

static enum MHD_Result create_session(struct server *s, struct request *req)
{
	static const char *const keys[] = {"db", NULL};
	enum MHD_Result res = MHD_YES;
	int bad = 0;
	cJSON *o = body_object(req, keys, "{\"db\": \"NAME\"} or nothing for the first database", &res);
	if (!o)
		return res;
	const char *name = string_field(req, o, "db", 1, &res, &bad);
	struct serve_db *db = bad ? NULL : usable_db(s, req, name, &res);
	struct serve_session *ss = NULL;
	int token_full = 0, retry_s = 0;
	int rc = db ? sessions_create(s->sessions, db, req->token, &ss, &token_full, &retry_s) : CONVBI_OK;
	if (db && rc == CONVBI_ETOOBIG) {
		/* Retry-After: when the idle session that expires first does; none
		 * when every one is answering (no time can be promised) */
		char msg[320], after[16];
		int k = token_full ? snprintf(msg, sizeof msg, "this token holds %d sessions, its share of --max-sessions",
		                              s->cfg.max_sessions_per_token)
		                   : snprintf(msg, sizeof msg, "%d sessions are open, the most this server keeps",
		                              s->cfg.max_sessions);
		snprintf(msg + k, sizeof msg - (size_t)k,
		         retry_s ? "; close one you hold (DELETE /v1/sessions/{id}), or retry after the Retry-After seconds, "
		                   "when the idle one that expires first does"
		                 : "; every one is answering a question: close one you hold (DELETE /v1/sessions/{id}) once "
		                   "its answer is in");
		snprintf(after, sizeof after, "%d", retry_s);
		char *json = serve_json_error("too_many_sessions", msg);
		res = json ? respond(req, 503, "application/json", json, strlen(json), retry_s ? after : NULL) : MHD_NO;
		free(json);
	} else if (db && rc) {
		res = respond_error(req, 500, convbi_errname(rc), convbi_errstr(rc));
	} else if (db) {
		char json[160];
		snprintf(json, sizeof json, "{\"session\":\"%s\",\"db\":\"%s\"}", ss->id, db->name);
		res = respond_json(req, 201, json);
		sessions_release(s->sessions, ss);
	}
	cJSON_Delete(o);
	return res;
}

struct sse {
	struct server *s;
	struct serve_session *ss;
	struct question *q;
	int fd;
	int64_t last_write_ms;
};

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sse *x = cls;
	for (;;) {
		long n = question_read(x->q, buf, max, SSE_POLL_MS);
		if (n > 0) {
			x->last_write_ms = serve_now_ms();
			return n;
		}
		if (n < 0)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (!client_alive(x->fd)) {
			question_cancel(x->q);
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		if (serve_now_ms() - x->last_write_ms > SSE_KEEPALIVE_MS) {
			static const char ping[] = ": keep-alive\n\n";
			x->last_write_ms = serve_now_ms();
			memcpy(buf, ping, sizeof ping - 1);
			return (ssize_t)(sizeof ping - 1);
		}
	}
}

static void sse_free(void *cls)
{
	struct sse *x = cls;
	question_cancel(x->q); /* a no-op when it finished */
	question_free(x->q);   /* it gave the session and the slot back as it ended */
	sessions_release(x->s->sessions, x->ss);
	free(x);
}

static enum MHD_Result ask(struct server *s, struct request *req, const char *id)
{
	static const char *const keys[] = {"question", "hint", "today", "candidates", NULL};
	enum MHD_Result res = MHD_YES;
	cJSON *o = body_object(req, keys, "{\"question\": \"...\"}", &res);
	if (!o)
		return res;
	struct input_question in;
	struct serve_session *ss = NULL;
	char why[200];
	int status = input_question(o, &in, why, sizeof why); /* up front, as MCP's: a 400 before any stream */
	if (status) {
		res = respond_error(req, status, status == 413 ? "too_large" : "bad_request", why);
		goto done;
	}
	const char *question = in.question, *hint = in.hint;
	convbi_ask_options ao = CONVBI_ASK_OPTIONS_INIT;
	ao.today = in.today;
	ao.candidates = in.candidates;
	if (s->no_model) { /* no Retry-After: retrying will not help */
		char *json = serve_json_error("ENOENDPOINT", SERVE_NO_MODEL_MESSAGE);
		res = json ? respond(req, 503, "application/json", json, strlen(json), NULL) : MHD_NO;
		free(json);
		goto done;
	}
	if (!(ss = sessions_get(s->sessions, id, req->token))) {
		res = respond_error(req, 404, "unknown_session",
		                    "no such session (it may have expired); POST /v1/sessions for a new one");
		goto done;
	}
	if (sessions_begin(s->sessions, ss)) {
		res = respond_error(req, 409, "session_busy",
		                    "this session is answering another question; wait for it or use another session");
		goto done;
	}
	if (take_slot(s, req, &res)) {
		sessions_end(s->sessions, ss);
		goto done;
	}
	const char *accept = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Accept");
	/* a stream when the client takes one (q > 0) no less than JSON */
	int sse_q = accept ? accept_q(accept, "text/event-stream") : -1;
	int sse = sse_q > 0 && sse_q >= accept_q(accept, "application/json");
	if (!sse) { /* one JSON answer: asked on this connection's thread, no hand-off */
		char *json = NULL;
		question_open(ss, &json); /* a failure is reported by question_run_sync */
		free(json);
		json = NULL;
		struct watch w = {.fd = req->fd, .conv = ss->conv};
		watch_add(&w);
		sessions_watch(s->sessions, ss, watch_session_closed, &w);
		int rc = question_run_sync(s, ss, question, hint, &ao, watch_client, &w, &json);
		watch_remove(&w);
		if (atomic_load(&w.gone))
			res = (req->status = 499, MHD_NO);
		else if (rc == CONVBI_ECANCELED && atomic_load(&w.closed))
			res = respond_failed_answer(req, rc, QUESTION_CLOSED_MESSAGE, json, NULL);
		else if (!rc && json)
			res = respond_json_owned(req, 200, json), json = NULL; /* the answer goes out as it is */
		else
			res = respond_answer(req, rc, json, ss->db->engine);
		free(json);
		server_slot_give(s, req->token);
		sessions_end(s->sessions, ss);
		goto done;
	}
	struct question *q = question_start(s, ss, question, hint, &ao, sse);
	if (!q) {
		server_slot_give(s, req->token);
		sessions_end(s->sessions, ss);
		res = respond_error(req, 500, "ENOMEM", "out of memory; try again");
		goto done;
	}
	{
		struct sse *x = calloc(1, sizeof *x);
		struct MHD_Response *r =
		        x ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, SSE_BLOCK_BYTES, sse_read, x, sse_free) : NULL;
		if (!r) {
			question_cancel(q);
			question_free(q); /* the slots go back with it */
			free(x);
			res = MHD_NO;
			goto done;
		}
		*x = (struct sse){s, ss, q, req->fd, serve_now_ms()};
		ss = NULL; /* the stream holds the reference now */
		MHD_add_response_header(r, "Content-Type", "text/event-stream");
		MHD_add_response_header(r, "Cache-Control", "no-store");
		MHD_add_response_header(r, "X-Accel-Buffering", "no");
		MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
		if (req->origin_ok && req->origin[0])
			MHD_add_response_header(r, "Access-Control-Allow-Origin", req->origin);
		if (!req->keep)
			MHD_add_response_header(r, "Connection", "close");
		req->status = 200;
		res = MHD_queue_response(req->conn, 200, r);
		MHD_destroy_response(r);
		goto done;
	}
done:
	sessions_release(s->sessions, ss);
	cJSON_Delete(o);
	return res;
}

/* ---- SQL, schema, databases ------------------------------------------------- */

static enum MHD_Result run_sql(struct server *s, struct request *req)
{
	static const char *const keys[] = {"db", "sql", NULL};
	enum MHD_Result res = MHD_YES;
	int bad = 0;
	cJSON *o = body_object(req, keys, "{\"sql\": \"SELECT ...\"}", &res);
	if (!o)
		return res;
	const char *name = string_field(req, o, "db", 1, &res, &bad);
	const char *sql = bad ? NULL : string_field(req, o, "sql", 0, &res, &bad);
	struct serve_db *db = NULL;
	if (bad)
		goto done;
	if (!sql || !*sql) {
		res = respond_error(req, 400, "bad_request", SERVE_NO_SQL_MESSAGE);
		goto done;
	}
	if (strlen(sql) > SERVE_SQL_MAX_BYTES) {
		res = respond_error(req, 413, "too_large", SERVE_SQL_TOO_LONG_MESSAGE);
		goto done;
	}
	if (!(db = usable_db(s, req, name, &res)) || take_slot(s, req, &res))
		goto done;
	convbi_session *conv = NULL;
	convbi_answer *a = NULL;
	char *json = NULL;
	struct serve_run run;
	int rc = convbi_session_new(&conv, db->engine);
	struct watch w = {.fd = req->fd, .conv = conv}; /* a client that leaves stops its statement, as on questions */
	if (!rc) {
		server_run_begin(s, &run, conv);
		watch_add(&w);
		rc = convbi_session_run_sql(conv, sql, &a);
		watch_remove(&w);
		server_run_end(s, &run);
	}
	if (a)
		serve_answer_json(a, rc, &json);
	if (atomic_load(&w.gone))
		res = (req->status = 499, MHD_NO);
	else if (!rc)
		res = respond_json(req, 200, json);
	else {
		const char *why = a      ? serve_client_errmsg(rc, convbi_answer_errmsg(a))
		                  : conv ? convbi_session_errmsg(conv)
		                         : convbi_errstr(rc);
		server_db_failed(db, rc, why);
		res = respond_failed_answer(req, rc, why, json, db->engine);
	}
	free(json);
	convbi_answer_free(a);
	convbi_session_free(conv);
	server_slot_give(s, req->token);
done:
	cJSON_Delete(o);
	return res;
}

static enum MHD_Result schema(struct server *s, struct request *req)
{
	const char *name = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "db");
	const char *question = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "question");
	enum MHD_Result res = MHD_YES;
	if ((name && !utf8_valid(name, strlen(name), NULL)) || (question && !utf8_valid(question, strlen(question), NULL)))
		return respond_error(req, 400, "bad_request",
		                     "`db` and `question` must be UTF-8 text (percent-encoded in the URL)");
	struct serve_db *db = usable_db(s, req, name, &res);
	if (!db)
		return res;
	if (question && strlen(question) > SERVE_QUESTION_MAX_BYTES)
		return respond_error(req, 413, "too_large", "the question is too long; shorten it");
	char *text = NULL;
	int rc = convbi_engine_schema(db->engine, question && *question ? question : NULL, &text);
	if (rc) {
		res = respond_error(req, http_status_of(rc), convbi_errname(rc), convbi_engine_errmsg(db->engine));
	} else {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "db", db->name);
		cJSON_AddStringToObject(o, "schema", text);
		char *json = cJSON_PrintUnformatted(o);
		res = respond_json(req, 200, json);
		free(json);
		cJSON_Delete(o);
	}
	convbi_free(text);
	return res;
}

static enum MHD_Result databases(struct server *s, struct request *req)
{
	cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "databases");
	for (int i = 0; arr && i < s->ndbs; i++) {
		if (!server_token_allows(s, req->token, &s->dbs[i]))
			continue;
		cJSON *d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "name", s->dbs[i].name);
		cJSON_AddItemToArray(arr, d);
	}
	char *json = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	enum MHD_Result res = respond_json(req, 200, json);
	free(json);
	return res;
}

/* /metrics counts the whole server -- every tenant's sessions and
 * questions -- so with --tokens it needs a token that may use every
 * database; a tenant's token gets 403. */
static enum MHD_Result metrics(struct server *s, struct request *req)
{
	for (int i = 0; i < s->ndbs; i++)
		if (!server_token_allows(s, req->token, &s->dbs[i]))
			return respond_error(
			        req, 403, "forbidden",
			        "/metrics counts every tenant's questions and sessions: it needs a token that may use "
			        "every database (a --tokens line without database names)");
	char *eps = NULL;
	if (s->ndbs)
		convbi_engine_endpoints(s->dbs[0].engine, &eps);
	char *text = metrics_render(s->metrics, eps, atomic_load(&s->questions_running), sessions_count(s->sessions),
	                            sessions_count(s->conversations));
	convbi_free(eps);
	if (!text)
		return respond_error(req, 500, "ENOMEM", "out of memory; try again");
	enum MHD_Result res = respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text), NULL);
	free(text);
	return res;
}

/* ---- MCP over Streamable HTTP -------------------------------------------------- */

static enum MHD_Result mcp_post(struct server *s, struct request *req)
{
	char vbuf[64], mbuf[64];
	const char *version = serve_header(req->conn, "MCP-Protocol-Version", vbuf, sizeof vbuf);
	const char *method = serve_header(req->conn, "Mcp-Method", mbuf, sizeof mbuf);
	char *reply = NULL;
	int new_session = 0;
	struct mcp_cancel cancel;
	mcp_cancel_init(&cancel);
	struct watch w = {.fd = req->fd, .cancel = &cancel}; /* a client that leaves cancels its ask, as on questions */
	watch_add(&w);
	int status = mcp_handle(s->mcp, req->token, req->body ? req->body : "", req->len, version, method, &cancel, &reply,
	                        &new_session);
	watch_remove(&w);
	mcp_cancel_destroy(&cancel);
	enum MHD_Result res = atomic_load(&w.gone) ? (req->status = 499, MHD_NO)
	                      : reply              ? respond(req, status, "application/json", reply, strlen(reply), NULL)
	                                           : respond(req, status, NULL, "", 0, NULL);
	free(reply);
	return res;
}

/* ---- the page and its assets ------------------------------------------------------ */

static const char *content_type(const char *name)
{
	const char *dot = strrchr(name, '.');
	if (dot && !strcmp(dot, ".html"))
		return "text/html; charset=utf-8";
	if (dot && !strcmp(dot, ".js"))
		return "text/javascript; charset=utf-8";
	if (dot && !strcmp(dot, ".css"))
		return "text/css; charset=utf-8";
	if (dot && !strcmp(dot, ".json"))
		return "application/json";
	return "text/plain; charset=utf-8";
}

static enum MHD_Result static_file(struct server *s, struct request *req, const char *rel)
{
	for (const char *p = rel; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		      *p == '_' || *p == '/' || (*p == '.' && p[1] != '.')))
			return respond_error(req, 404, "not_found", "no such file");
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", s->web_dir, rel);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		return respond_error(req, 404, "not_found", "no such file");
	}
	struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
	if (!r) {
		close(fd);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", content_type(rel));
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Cache-Control", "no-cache");
	if (strstr(rel, ".html")) {
		MHD_add_response_header(r, "Content-Security-Policy",
		                        "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
		                        "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'");
		MHD_add_response_header(r, "X-Frame-Options", "DENY");
	}
	if (!req->keep)
		MHD_add_response_header(r, "Connection", "close");
	req->status = 200;
	enum MHD_Result res = MHD_queue_response(req->conn, 200, r);
	MHD_destroy_response(r);
	return res;
}

/* ---- dispatch ------------------------------------------------------------------------ */

#define SESSIONS_PREFIX "/v1/sessions/"

enum MHD_Result routes_dispatch(struct server *s, struct request *req, const char *method, const char *url)
{
	int get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
	int del = !strcmp(method, "DELETE");
	if (!strcmp(method, "OPTIONS") && req->origin_ok) {
		req->route = "preflight";
		struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
		MHD_add_response_header(r, "Access-Control-Allow-Origin", req->origin);
		MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, DELETE");
		MHD_add_response_header(r, "Access-Control-Allow-Headers",
		                        "Authorization, Content-Type, Accept, MCP-Protocol-Version, Mcp-Method, Mcp-Session-Id");
		MHD_add_response_header(r, "Access-Control-Max-Age", "600");
		if (!req->keep)
			MHD_add_response_header(r, "Connection", "close");
		req->status = 204;
		enum MHD_Result res = MHD_queue_response(req->conn, 204, r);
		MHD_destroy_response(r);
		return res;
	}
	static const struct {
		const char *path;
		const char *allow;
	} fixed[] = {
	        {"/", "GET"},
	        {"/healthz", "GET"},
	        {"/metrics", "GET"},
	        {"/v1/openapi.json", "GET"},
	        {"/v1/databases", "GET"},
	        {"/v1/schema", "GET"},
	        {"/v1/sql", "POST"},
	        {"/v1/sessions", "POST"},
	        {"/mcp", "POST"},
	};
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		if (strcmp(url, fixed[i].path))
			continue;
		req->route = fixed[i].path;
		int ok = !strcmp(fixed[i].allow, "GET") ? get : post;
		if (!ok) {
			req->allow = fixed[i].allow;
			return respond_error(req, 405, "method_not_allowed",
			                     "this path does not take that method; see /v1/openapi.json");
		}
		switch (i) {
		case 0: return static_file(s, req, "index.html");
		case 1:
			return atomic_load(&s->draining) ? respond_json(req, 503, "{\"status\":\"draining\"}")
			       : s->no_model
			               ? respond_json(req, 503,
			                              "{\"status\":\"no_model\",\"message\":\"" SERVE_NO_MODEL_MESSAGE "\"}")
			               : respond_json(req, 200, "{\"status\":\"ok\"}");
		case 2: return metrics(s, req);
		case 3: return static_file(s, req, "openapi.json");
		case 4: return databases(s, req);
		case 5: return schema(s, req);
		case 6: return run_sql(s, req);
		case 7: return create_session(s, req);
		case 8: return mcp_post(s, req);
		}
	}
	if (!strncmp(url, "/assets/", 8)) {
		req->route = "/assets/{name}";
		if (!get) {
			req->allow = "GET";
			return respond_error(req, 405, "method_not_allowed", "assets are read with GET");
		}
		return static_file(s, req, url + 1);
	}
	if (!strncmp(url, SESSIONS_PREFIX, strlen(SESSIONS_PREFIX))) {
		const char *id = url + strlen(SESSIONS_PREFIX);
		const char *slash = strchr(id, '/');
		char sid[SESSION_ID_BYTES + 1] = "";
		size_t n = slash ? (size_t)(slash - id) : strlen(id);
		if (n <= SESSION_ID_BYTES) {
			memcpy(sid, id, n);
			sid[n] = '\0';
		}
		if (!slash) {
			req->route = "/v1/sessions/{id}";
			if (!del) {
				req->allow = "DELETE";
				return respond_error(req, 405, "method_not_allowed",
				                     "a session takes DELETE; see /v1/openapi.json");
			}
			if (sessions_close(s->sessions, sid, req->token))
				return respond_error(req, 404, "unknown_session", "no such session");
			return respond(req, 204, NULL, "", 0, NULL);
		}
		if (!strcmp(slash, "/questions")) {
			req->route = "/v1/sessions/{id}/questions";
			if (!post) {
				req->allow = "POST";
				return respond_error(req, 405, "method_not_allowed",
				                     "questions are POSTed; see /v1/openapi.json");
			}
			return ask(s, req, sid);
		}
	}
	return respond_error(req, 404, "not_found", "no such route; GET /v1/openapi.json lists them");
}

/* ---- setup ------------------------------------------------------------------------------ */

int routes_setup(struct server *s)
{
	const char *dir = s->cfg.web_dir;
	if (!dir || !*dir)
		dir = getenv("CONVBI_WEB");
	if (!dir || !*dir)
		dir = datadir_path(DATADIR_WEB);
	snprintf(s->web_dir, sizeof s->web_dir, "%s", dir);
	if (!(s->mcp = mcp_new(s))) {
		fprintf(stderr, "convbi: out of memory\n");
		return -1;
	}
	atomic_store(&watchdog_stop, 0);
	if (pthread_create(&watchdog, NULL, watchdog_run, NULL)) {
		fprintf(stderr, "convbi: cannot start a thread\n");
		return -1;
	}
	watchdog_started = 1;
	return 0;
}

void routes_teardown(struct server *s)
{
	if (watchdog_started) {
		atomic_store(&watchdog_stop, 1);
		pthread_join(watchdog, NULL);
		watchdog_started = 0;
	}
	mcp_free(s->mcp);
	s->mcp = NULL;
}
