/* question.c -- one question of `convbi serve`, on its own worker thread.
 *
 * The worker opens the session's conversation on first use, asks, and
 * turns every event into SSE text (`event: stage|retry|sql|token`, data a
 * JSON object) queued for the connection thread, which copies it out as
 * the client reads.  At the end come `rows` (when the answer has rows)
 * and one terminal event: `done` with the answer JSON (the same as
 * `convbi ask --json`, chart included) or `error` with the error shape
 * {"error":{"code","message"}} and the answer.  question_cancel (the
 * client went away, or the server drains) interrupts the ask.
 *
 * The question holds its session's question slot (sessions_begin) and a
 * concurrent-question slot (server_slot_take) from question_start until
 * its work ends -- the answer is queued, not when the client has read it:
 * a client that stops reading holds its connection (until the door cuts
 * the stalled writer) but no question slot (attack5 F1).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/serve.h"
#include "util/clock.h"

#define QUESTION_QUEUE_MAX_BYTES (8u << 20) /* unread SSE text kept per question */

struct question {
	struct server *s;
	struct serve_session *ss; /* borrowed (the caller holds a ref) */
	char *text;               /* owned */
	int sse;
	pthread_t thread;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char *out; /* owned: queued SSE bytes */
	size_t out_len, out_cap, out_pos;
	int overflow;
	int done;
	atomic_int canceled;
	atomic_int session_closed; /* canceled because its session was closed (DELETE) */
	atomic_int conv_ready;     /* the session's conversation is open */
	char *hint;                /* owned, may be NULL */
	char today[16];            /* per-request today, "" = the engine's */
	convbi_ask_options ao;     /* per-request options; ao.today points into today */
	int status;
	char *answer_json; /* owned */
};

/* Appends bytes to the SSE queue; past the cap the stream is cut (the
 * client reads too slowly) and the question canceled. */
static void enqueue(struct question *q, const char *data, size_t n)
{
	pthread_mutex_lock(&q->lock);
	if (q->out_pos == q->out_len)
		q->out_pos = q->out_len = 0;
	if (q->out_len + n > QUESTION_QUEUE_MAX_BYTES) {
		q->overflow = 1;
		atomic_store(&q->canceled, 1);
	} else {
		if (q->out_len + n > q->out_cap) {
			size_t cap = q->out_cap ? q->out_cap : 4096;
			while (cap < q->out_len + n)
				cap *= 2;
			char *d = realloc(q->out, cap);
			if (d) {
				q->out = d;
				q->out_cap = cap;
			}
		}
		if (q->out_len + n <= q->out_cap) {
			memcpy(q->out + q->out_len, data, n);
			q->out_len += n;
		}
	}
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

/* `event: NAME\ndata: JSON\n\n` (JSON is compact: no newlines). */
static void emit(struct question *q, const char *event, const char *json)
{
	if (!q->sse || !json)
		return;
	size_t n = strlen(event) + strlen(json) + 20;
	char *line = malloc(n);
	if (!line)
		return;
	int len = snprintf(line, n, "event: %s\ndata: %s\n\n", event, json);
	enqueue(q, line, (size_t)len);
	free(line);
}

static void emit_object(struct question *q, const char *event, cJSON *o)
{
	char *json = o ? cJSON_PrintUnformatted(o) : NULL;
	emit(q, event, json);
	free(json);
	cJSON_Delete(o);
}

static int on_event(const convbi_event *ev, void *payload)
{
	struct question *q = payload;
	if (!q->sse)
		return atomic_load(&q->canceled);
	cJSON *o = cJSON_CreateObject();
	const char *name = NULL;
	char *text = strndup(ev->text ? ev->text : "", ev->len);
	if (o && text) {
		switch (ev->kind) {
		case CONVBI_EVENT_STAGE:
			name = "stage";
			cJSON_AddStringToObject(o, "stage", text);
			break;
		case CONVBI_EVENT_TOKEN:
			name = "token";
			cJSON_AddStringToObject(o, "text", text);
			break;
		case CONVBI_EVENT_SQL:
			name = "sql";
			cJSON_AddStringToObject(o, "sql", text);
			break;
		case CONVBI_EVENT_RETRY:
			name = "retry";
			char shown[1024]; /* an endpoint it could not reach is named, not its URL */
			cJSON_AddStringToObject(o, "message", serve_client_url_free(text, shown, sizeof shown));
			if (ev->endpoint)
				cJSON_AddStringToObject(o, "endpoint", ev->endpoint);
			cJSON_AddBoolToObject(o, "restarted", ev->restarted); /* true: drop the tokens so far */
			break;
		}
		if (name && ev->stage && ev->kind != CONVBI_EVENT_STAGE)
			cJSON_AddStringToObject(o, "stage", ev->stage);
	}
	free(text);
	if (name)
		emit_object(q, name, o);
	else
		cJSON_Delete(o);
	return atomic_load(&q->canceled);
}

/* The `rows` event: columns, rows, row_count, truncated, total_rows,
 * total_rows_exact and truncated_by of the answer. */
static void emit_rows(struct question *q, const cJSON *answer)
{
	const cJSON *cols = cJSON_GetObjectItemCaseSensitive(answer, "columns");
	if (!cJSON_GetArraySize(cols))
		return;
	cJSON *o = cJSON_CreateObject();
	static const char *const keys[] = {"columns",          "rows",        "row_count", "truncated", "total_rows",
	                                   "total_rows_exact", "truncated_by"};
	for (size_t i = 0; o && i < sizeof keys / sizeof keys[0]; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(answer, keys[i]);
		if (v)
			cJSON_AddItemToObject(o, keys[i], cJSON_Duplicate(v, 1));
	}
	emit_object(q, "rows", o);
}

char *serve_json_error(const char *code, const char *message)
{
	cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
	if (e) {
		cJSON_AddStringToObject(e, "code", code);
		cJSON_AddStringToObject(e, "message", message);
	}
	char *s = e ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	return s;
}

int question_open(struct serve_session *ss, char **err_json)
{
	if (ss->conv)
		return CONVBI_OK;
	int rc = convbi_session_new(&ss->conv, ss->db->engine);
	if (rc) {
		const char *why = ss->conv ? convbi_session_errmsg(ss->conv) : convbi_errstr(rc);
		server_db_failed(ss->db, rc, why);
		*err_json = serve_json_error(convbi_errname(rc), why);
		convbi_session_free(ss->conv);
		ss->conv = NULL;
	}
	return rc;
}

int question_run_sync(struct server *s, struct serve_session *ss, const char *text, const char *hint,
                      const convbi_ask_options *ao, convbi_event_fn cb, void *payload, char **json_out)
{
	*json_out = NULL;
	int rc = question_open(ss, json_out);
	if (rc)
		return rc;
	convbi_answer *a = NULL;
	struct serve_run run;
	server_run_begin(s, &run, ss->conv);
	rc = convbi_session_ask_with(ss->conv, text, hint, ao, cb, payload, &a);
	server_run_end(s, &run);
	if (a)
		serve_answer_json(a, rc, json_out);
	if (!*json_out)
		rc = rc ? rc : CONVBI_ENOMEM;
	metrics_answer(s->metrics, a, rc);
	convbi_answer_free(a);
	return rc;
}

/* The work has ended: the answer is queued.  Gives the session and the
 * question slot back; done is set first, under the lock, so that
 * question_cancel never interrupts a later question of the session. */
static void finish(struct question *q, int rc)
{
	pthread_mutex_lock(&q->lock);
	q->status = rc;
	q->done = 1;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	int tok = q->ss->token; /* the session is its token's */
	sessions_end(q->s->sessions, q->ss);
	server_slot_give(q->s, tok);
}

static void *worker(void *payload)
{
	struct question *q = payload;
	char *err_json = NULL;
	int rc = question_open(q->ss, &err_json);
	convbi_answer *a = NULL;
	if (!rc) {
		atomic_store(&q->conv_ready, 1);
		struct serve_run run;
		server_run_begin(q->s, &run, q->ss->conv);
		rc = convbi_session_ask_with(q->ss->conv, q->text, q->hint, &q->ao, on_event, q, &a);
		server_run_end(q->s, &run);
		if (a)
			serve_answer_json(a, rc, &q->answer_json);
		if (!q->answer_json)
			rc = rc ? rc : CONVBI_ENOMEM;
		metrics_answer(q->s->metrics, a, rc);
	}
	cJSON *answer = q->answer_json ? cJSON_Parse(q->answer_json) : NULL;
	if (q->sse) {
		emit_rows(q, answer);
		if (!rc) {
			emit(q, "done", q->answer_json);
		} else {
			cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
			const char *msg = rc == CONVBI_ECANCELED && atomic_load(&q->session_closed) ? QUESTION_CLOSED_MESSAGE
			                  : a ? serve_client_errmsg(rc, convbi_answer_errmsg(a))
			                      : convbi_errstr(rc);
			if (err_json) {
				cJSON *parsed = cJSON_Parse(err_json);
				cJSON_Delete(o);
				o = parsed;
			} else if (e) {
				cJSON_AddStringToObject(e, "code", convbi_errname(rc));
				cJSON_AddStringToObject(e, "message", msg);
				if (rc == CONVBI_ERATELIMIT) /* as a REST answer's Retry-After */
					cJSON_AddNumberToObject(e, "retry_after_s", serve_rate_limit_retry_s(q->ss->db->engine));
				if (answer)
					cJSON_AddItemToObject(o, "answer", cJSON_Duplicate(answer, 1));
			}
			emit_object(q, "error", o);
		}
	}
	cJSON_Delete(answer);
	if (err_json && !q->answer_json)
		q->answer_json = err_json;
	else
		free(err_json);
	convbi_answer_free(a);
	finish(q, rc);
	return NULL;
}

/* sessions_watch's hook: the session was closed while answering. */
static void session_closed(void *payload)
{
	struct question *q = payload;
	atomic_store(&q->session_closed, 1);
	question_cancel(q);
}

struct question *question_start(struct server *s, struct serve_session *ss, const char *text, const char *hint,
                                const convbi_ask_options *ao, int sse)
{
	struct question *q = calloc(1, sizeof *q);
	if (!q || !(q->text = strdup(text)) || (hint && !(q->hint = strdup(hint)))) {
		if (q)
			free(q->text);
		free(q);
		return NULL;
	}
	q->ao = ao ? *ao : (convbi_ask_options)CONVBI_ASK_OPTIONS_INIT;
	if (ao && ao->today) /* a longer one is not a date: cut, it still fails as one */
		q->ao.today = strncpy(q->today, ao->today, sizeof q->today - 1);
	q->s = s;
	q->ss = ss;
	q->sse = sse;
	pthread_mutex_init(&q->lock, NULL);
	clock_cond_init(&q->cond);
	sessions_watch(s->sessions, ss, session_closed, q);
	if (pthread_create(&q->thread, NULL, worker, q)) {
		q->answer_json = serve_json_error("ENOMEM", "cannot start a worker thread; try again");
		finish(q, CONVBI_ENOMEM);
	} else {
		q->started = 1;
	}
	return q;
}

long question_read(struct question *q, char *out, size_t max, int wait_ms)
{
	pthread_mutex_lock(&q->lock);
	if (q->out_pos == q->out_len && !q->done)
		clock_cond_wait_ms(&q->cond, &q->lock, wait_ms);
	long n = 0;
	if (q->out_pos < q->out_len && !q->overflow) {
		size_t k = q->out_len - q->out_pos < max ? q->out_len - q->out_pos : max;
		memcpy(out, q->out + q->out_pos, k);
		q->out_pos += k;
		n = (long)k;
	} else if (q->done || q->overflow) {
		n = -1;
	}
	pthread_mutex_unlock(&q->lock);
	return n;
}

void question_cancel(struct question *q)
{
	atomic_store(&q->canceled, 1);
	/* the conversation exists once the worker asked; it is not freed while
	 * the session is busy (until done), and interrupting is an atomic store */
	pthread_mutex_lock(&q->lock);
	if (!q->done && atomic_load(&q->conv_ready))
		convbi_session_interrupt(q->ss->conv);
	pthread_mutex_unlock(&q->lock);
}

const char *question_answer_json(const struct question *q)
{
	return q->answer_json;
}

int question_status(const struct question *q)
{
	return q->status;
}

void question_free(struct question *q)
{
	if (!q)
		return;
	if (q->started)
		pthread_join(q->thread, NULL);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	free(q->text);
	free(q->hint);
	free(q->out);
	free(q->answer_json);
	free(q);
}
