/* session.c -- convbi_session: one conversation over its own connection.
 *
 * A session opens its own read-only connection (through the SQL gate) so
 * that sessions of one engine can run on different threads.  Asking runs
 * the workflow on a fresh turn; a successful data answer is added to the
 * history (standalone question, SQL, a short result summary, the answer)
 * so that follow-ups can use it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "db/schema.h"
#include "db/table.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/limits.h"
#include "util/utf8.h"

CONVBI_API int convbi_session_new(convbi_session **out, convbi_engine *e)
{
	if (!out)
		return CONVBI_EMISUSE;
	*out = NULL;
	if (!e || e->magic != ENGINE_MAGIC)
		return CONVBI_EMISUSE;
	convbi_session *s = xcalloc(1, sizeof *s);
	if (!s)
		return CONVBI_ENOMEM;
	s->magic = SESSION_MAGIC;
	s->engine = e;
	history_init(&s->history, (size_t)e->opts.history_tokens);
	*out = s;
	if (!e->db_path)
		return err_set(&s->err, CONVBI_EDB, "the engine has no database; open it with db_path set");
	return db_open(&s->db, e->db_path, &e->db_opts, &s->err);
}

/* Reopens the connection convbi_session_idle closed; CONVBI_OK when the
 * session has one (or never had one: the caller reports that). */
static int wake(convbi_session *s)
{
	if (s->db || !s->idle)
		return CONVBI_OK;
	int rc = db_open(&s->db, s->engine->db_path, &s->engine->db_opts, &s->err);
	if (!rc)
		s->idle = 0;
	return rc;
}

CONVBI_API int convbi_session_idle(convbi_session *s)
{
	if (!s || s->magic != SESSION_MAGIC)
		return CONVBI_EMISUSE;
	if (s->db) {
		db_close(s->db);
		s->db = NULL;
		s->idle = 1;
	}
	return CONVBI_OK;
}

CONVBI_API void convbi_session_free(convbi_session *s)
{
	if (!s || s->magic != SESSION_MAGIC)
		return;
	s->magic = DEAD_MAGIC;
	db_close(s->db);
	history_release(&s->history);
	free(s);
}

CONVBI_API void convbi_session_reset(convbi_session *s)
{
	if (!s || s->magic != SESSION_MAGIC)
		return;
	history_release(&s->history);
	err_clear(&s->err);
}

CONVBI_API const char *convbi_session_errmsg(const convbi_session *s)
{
	if (!s || s->magic != SESSION_MAGIC)
		return convbi_errstr(CONVBI_EMISUSE);
	return s->err.code ? s->err.msg : "";
}

CONVBI_API int convbi_session_history(convbi_session *s, char **json_out)
{
	if (!s || s->magic != SESSION_MAGIC || !json_out)
		return CONVBI_EMISUSE;
	struct buf b;
	buf_init(&b, BUF_UNBOUNDED);
	if (history_json(&b, &s->history)) {
		buf_release(&b);
		*json_out = NULL;
		return CONVBI_ENOMEM;
	}
	*json_out = buf_take(&b);
	return *json_out ? CONVBI_OK : CONVBI_ENOMEM;
}

/* Checks the question: size, NUL-free (it is a C string), valid UTF-8 is
 * repaired by the caller's choice -- we reject it with a clear message. */
static int check_text(struct err *err, const char *what, const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	if (n > max)
		return err_set(err, CONVBI_ETOOBIG, "the %s is longer than %zu bytes; shorten it", what, max);
	size_t bad;
	if (!utf8_valid(s, n, &bad))
		return err_set(err, CONVBI_EINVAL, "the %s is not valid UTF-8 (byte %zu); send UTF-8 text", what, bad);
	size_t k = 0;
	while (k < n && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n' || s[k] == '\r'))
		k++;
	if (k == n)
		return err_set(err, CONVBI_EINVAL, "the %s is empty; ask something", what);
	return CONVBI_OK;
}

static void remember(convbi_session *s, const struct turn *t)
{
	const char *sql = turn_sql(t);
	struct buf summary;
	buf_init(&summary, SUMMARY_MAX_BYTES + 64);
	if (t->result)
		table_summary(&summary, t->result, SUMMARY_MAX_BYTES);
	history_add(&s->history, t->standalone ? t->standalone : t->question, sql, summary.len ? summary.data : NULL,
	            t->answer.len ? t->answer.data : NULL);
	buf_release(&summary);
}

static void limits_of(struct exec_limits *lim, const convbi_engine *e)
{
	*lim = (struct exec_limits)EXEC_LIMITS_INIT;
	lim->timeout_ms = e->opts.sql_timeout_ms;
	lim->row_cap = e->opts.row_cap;
	lim->mem_max = (int64_t)e->opts.sql_memory_mb << 20;
	lim->temp_max = (int64_t)e->opts.sql_temp_mb << 20;
}

/* A fresh answer (its turn initialised), or NULL out of memory. */
static convbi_answer *answer_new(void)
{
	convbi_answer *a = xcalloc(1, sizeof *a);
	if (a) {
		a->magic = ANSWER_MAGIC;
		turn_init(&a->turn);
	}
	return a;
}

/* db_run's cancel check: convbi_session_interrupt stops run_sql too. */
static int sql_interrupted(void *payload)
{
	convbi_session *s = payload;
	return atomic_load(&s->interrupted);
}

CONVBI_API int convbi_session_run_sql(convbi_session *s, const char *sql, convbi_answer **out)
{
	if (out)
		*out = NULL;
	if (!s || s->magic != SESSION_MAGIC || !sql || !out)
		return CONVBI_EMISUSE;
	atomic_store(&s->interrupted, 0);
	int64_t start = clock_mono_ms(), cpu0 = clock_thread_cpu_ns(); /* the statement runs on this thread */
	convbi_answer *a = answer_new();
	if (!a)
		return CONVBI_ENOMEM;
	struct turn *t = &a->turn;
	*out = a;
	int rc = wake(s);
	if (rc)
		err_set(&t->err, rc, "%s", s->err.msg);
	else if (!s->db)
		rc = err_set(&t->err, CONVBI_EDB, "%s", s->err.msg[0] ? s->err.msg : "the session has no database connection");
	else if (!(t->question = xstrdup(sql)) || !(t->cand[0].sql = xstrdup(sql)))
		rc = err_code(&t->err, CONVBI_ENOMEM);
	if (!rc) {
		struct exec_limits lim;
		limits_of(&lim, s->engine);
		t->ncand = 1;
		rc = db_run(s->db, sql, &lim, sql_interrupted, s, &t->result, &t->err);
		if (rc) {
			t->cand[0].error = xstrdup(t->err.msg);
			t->cand[0].status = rc;
		}
	}
	t->status = rc;
	t->elapsed_ms = clock_mono_ms() - start;
	t->cpu_ns = clock_thread_cpu_ns() - cpu0;
	return rc;
}

/* What every flow run of the session sees: the engine's model, prompts
 * and schema, the session's connection and interrupt flag, the time and
 * schema budgets; the rest zero, for the caller to set. */
static struct flow_env session_env(convbi_session *s)
{
	const convbi_engine *e = s->engine;
	return (struct flow_env){
	        .llm = e->llm,
	        .prompts = e->prompts,
	        .schema = e->schema,
	        .table_list = e->table_list,
	        .db = s->db,
	        .dialect = e->dialect,
	        .schema_budget = (size_t)e->opts.schema_tokens * 4,
	        .deadline_ms = e->opts.question_timeout_ms,
	        .interrupt = &s->interrupted,
	};
}

CONVBI_API int convbi_session_explain_sql(convbi_session *s, const char *sql, convbi_event_fn cb, void *payload, char **text_out)
{
	if (text_out)
		*text_out = NULL;
	if (!s || s->magic != SESSION_MAGIC || !sql || !text_out)
		return CONVBI_EMISUSE;
	convbi_engine *e = s->engine;
	int rc = check_text(&s->err, "SQL", sql, QUESTION_MAX_BYTES);
	if (rc)
		return rc;
	if (!e->llm) {
		s->err = e->llm_err;
		return e->llm_err.code ? e->llm_err.code : CONVBI_ENOENDPOINT;
	}
	struct flow_env env = session_env(s);
	struct turn t;
	struct buf text;
	turn_init(&t);
	rc = flow_explain(&env, sql, &t, cb, payload, &text);
	if (rc == CONVBI_OK && !(*text_out = buf_take(&text)))
		rc = err_code(&s->err, CONVBI_ENOMEM);
	else if (rc)
		s->err = t.err;
	buf_release(&text);
	turn_release(&t);
	return rc;
}

CONVBI_API int convbi_session_ask(convbi_session *s, const char *question, const char *hint, convbi_event_fn cb, void *payload,
                                  convbi_answer **out)
{
	return convbi_session_ask_with(s, question, hint, NULL, cb, payload, out);
}

CONVBI_API int convbi_session_ask_with(convbi_session *s, const char *question, const char *hint, const convbi_ask_options *ao,
                                       convbi_event_fn cb, void *payload, convbi_answer **out)
{
	if (out)
		*out = NULL;
	if (!s || s->magic != SESSION_MAGIC || !question || !out)
		return CONVBI_EMISUSE;
	if (ao && (ao->version < 1 || ao->version > CONVBI_ASK_OPTIONS_VERSION))
		return CONVBI_EMISUSE;
	convbi_engine *e = s->engine;
	atomic_store(&s->interrupted, 0);
	convbi_answer *a = answer_new();
	if (!a)
		return CONVBI_ENOMEM;
	struct turn *t = &a->turn;
	*out = a;
	int rc = check_text(&t->err, "question", question, QUESTION_MAX_BYTES);
	if (!rc && hint)
		rc = check_text(&t->err, "hint", hint, HINT_MAX_BYTES);
	if (rc == CONVBI_EINVAL && hint && !*hint)
		rc = CONVBI_OK; /* an empty hint is no hint */
	if (!rc && ao && ao->today)
		rc = api_date_error(&t->err, ao->today);
	if (!rc && ao && ao->candidates && (ao->candidates < 1 || ao->candidates > ENGINE_MAX_CANDIDATES))
		rc = err_set(&t->err, CONVBI_EINVAL, "candidates is %d; use 1 to %d", ao->candidates, ENGINE_MAX_CANDIDATES);
	if (!rc && (!(t->question = xstrdup(question)) || (hint && *hint && !(t->hint = xstrdup(hint)))))
		rc = err_code(&t->err, CONVBI_ENOMEM);
	if (!rc && (rc = wake(s)))
		err_set(&t->err, rc, "%s", s->err.msg);
	if (!rc && !s->db)
		rc = err_set(&t->err, s->err.code ? s->err.code : CONVBI_EDB, "%s",
		             s->err.msg[0] ? s->err.msg : "the session has no database connection");
	if (!rc && e->schema && !schema_table_count(e->schema))
		rc = err_set(&t->err, CONVBI_EDB,
		             "the database `%s` has no tables or views to ask about; give --db a database with data", e->db_path);
	if (!rc && !e->llm) {
		t->err = e->llm_err;
		rc = e->llm_err.code ? e->llm_err.code : CONVBI_ENOENDPOINT;
	}
	if (rc) {
		t->status = rc;
		t->err.code = rc;
		s->err = t->err;
		return rc;
	}
	char today[16];
	const char *given = ao && ao->today ? ao->today : e->today;
	if (given) {
		snprintf(today, sizeof today, "%s", given);
	} else { /* the local date, read per question: a session may live past midnight */
		time_t now = time(NULL);
		struct tm tm;
		localtime_r(&now, &tm);
		strftime(today, sizeof today, "%Y-%m-%d", &tm);
	}
	struct flow_env env = session_env(s);
	env.max_repairs = e->opts.max_repairs;
	env.model_review = e->opts.model_review;
	env.stream = e->opts.stream;
	env.vindex = e->vindex;
	env.today = today;
	env.notes = e->notes;
	env.examples = e->examples;
	env.candidates = ao && ao->candidates ? ao->candidates : e->opts.candidates;
	limits_of(&env.limits, e);
	rc = flow_run(&env, &s->history, t, cb, payload);
	if (rc == CONVBI_OK)
		remember(s, t);
	else
		s->err = t->err;
	return rc;
}

CONVBI_API int convbi_session_interrupt(convbi_session *s)
{
	if (!s || s->magic != SESSION_MAGIC)
		return CONVBI_EMISUSE;
	atomic_store(&s->interrupted, 1);
	return CONVBI_OK;
}
