/* engine.c -- convbi_engine: open, close, chat, endpoints, schema, graph.
 *
 * Opening resolves the prompts directory (option, $CONVBI_PROMPTS, the
 * source tree's prompts/ when run from a build tree, the installed copy),
 * loads and checks every template, loads the endpoint configuration and
 * the shared pool, and introspects the database once (the schema cache).
 * No endpoint configured is not an open failure: the engine still serves
 * the schema, and every model call returns CONVBI_ENOENDPOINT with the
 * message saying what to set.  A bad configuration is a failure.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/datadir.h"
#include "api/api.h"
#include "db/db.h"
#include "db/schema.h"
#include "db/vindex.h"
#include "prompt/examples.h"
#include "prompt/notes.h"
#include "llm/config.h"
#include "llm/llm.h"
#include "prompt/tmpl.h"
#include "util/alloc.h"
#include "util/limits.h"
#include "util/log.h"
#include "util/clock.h"

static void engine_fail(convbi_engine *e, const struct err *err)
{
	pthread_mutex_lock(&e->err_lock);
	e->err = *err;
	pthread_mutex_unlock(&e->err_lock);
}

static const char *resolve_prompts(const char *opt)
{
	if (opt && *opt)
		return opt;
	const char *env = getenv("CONVBI_PROMPTS");
	if (env && *env)
		return env;
	return datadir_path(DATADIR_PROMPTS);
}

int api_date_error(struct err *err, const char *s)
{
	char why[200];
	return clock_date_check(s, "today", why, sizeof why) ? err_set(err, CONVBI_EINVAL, "%s", why) : CONVBI_OK;
}

/* Loads the business notes: notes_path, else DB.notes.md beside the
 * database (shop.db -> shop.notes.md, else shop.db.notes.md) when it
 * exists; "" means none. */
static int load_notes(convbi_engine *e, struct err *err)
{
	const char *given = e->opts.notes_path;
	if (given)
		return *given ? notes_load(&e->notes, given, err) : CONVBI_OK;
	if (!e->db_path)
		return CONVBI_OK;
	struct buf p = BUF_INIT;
	const char *slash = strrchr(e->db_path, '/'), *dot = strrchr(e->db_path, '.');
	size_t stem = dot && (!slash || dot > slash + 1) ? (size_t)(dot - e->db_path) : strlen(e->db_path);
	int rc = buf_add(&p, e->db_path, stem);
	if (!rc)
		rc = buf_puts(&p, ".notes.md");
	if (!rc && access(p.data, F_OK) != 0) {
		buf_reset(&p);
		rc = buf_printf(&p, "%s.notes.md", e->db_path);
	}
	if (!rc && access(p.data, F_OK) == 0)
		rc = notes_load(&e->notes, p.data, err);
	else if (rc)
		rc = err_code(err, CONVBI_ENOMEM);
	buf_release(&p);
	return rc;
}

/* "customers, orders, ..." for the intent agent. */
static char *table_list_of(const struct schema *s)
{
	struct buf b;
	buf_init(&b, TABLE_LIST_MAX_BYTES);
	schema_table_list(&b, s); /* names quoted: they are data, not prompt text */
	return buf_take(&b);
}

/* Introspects the database once (the schema cache) and notes its
 * dialect; sessions open connections of their own. */
static int load_schema(convbi_engine *e, struct err *err)
{
	struct db *d = NULL;
	int rc = db_open(&d, e->db_path, &e->db_opts, err);
	if (!rc)
		rc = db_introspect(d, &e->schema, err);
	if (!rc && (!(e->dialect = xstrdup(db_dialect(d))) || !(e->db_describe = xstrdup(db_describe(d)))))
		rc = err_code(err, CONVBI_ENOMEM);
	db_close(d);
	return rc;
}

CONVBI_API int convbi_engine_open(convbi_engine **out, const convbi_options *opts)
{
	if (!out)
		return CONVBI_EMISUSE;
	*out = NULL;
	convbi_engine *e = xcalloc(1, sizeof *e);
	if (!e)
		return CONVBI_ENOMEM;
	e->magic = ENGINE_MAGIC;
	pthread_mutex_init(&e->err_lock, NULL);
	*out = e;
	struct err err = ERR_INIT;
	int rc;
	if (!opts || opts->version < 1 || opts->version > CONVBI_OPTIONS_VERSION) {
		rc = err_set(&err, CONVBI_EMISUSE,
		             "the options struct is missing or of another version; initialise it with CONVBI_OPTIONS_INIT");
		goto fail;
	}
	e->opts = (convbi_options)CONVBI_OPTIONS_INIT;
	/* an older caller's struct ends before the later fields */
	memcpy(&e->opts, opts,
	       opts->version == 1   ? offsetof(convbi_options, today)
	       : opts->version == 2 ? offsetof(convbi_options, db_schemas)
	       : opts->version == 3 ? offsetof(convbi_options, sql_memory_mb)
	                            : sizeof *opts);
	e->opts.version = CONVBI_OPTIONS_VERSION;
	if (e->opts.today && (rc = api_date_error(&err, e->opts.today)))
		goto fail;
	if (e->opts.candidates < 1 || e->opts.candidates > ENGINE_MAX_CANDIDATES) {
		rc = err_set(&err, CONVBI_EINVAL, "candidates is %d; use 1 to %d", e->opts.candidates, ENGINE_MAX_CANDIDATES);
		goto fail;
	}
	if (e->opts.today && !(e->today = xstrdup(e->opts.today))) {
		rc = err_code(&err, CONVBI_ENOMEM);
		goto fail;
	}
	e->opts.today = e->today;
	if (e->opts.max_repairs < 0 || e->opts.max_repairs > 10) {
		rc = err_set(&err, CONVBI_EINVAL, "max_repairs is %d; use 0 to 10", e->opts.max_repairs);
		goto fail;
	}
	if (e->opts.row_cap <= 0 || e->opts.sql_timeout_ms <= 0 || e->opts.schema_tokens <= 0 || e->opts.history_tokens < 0 ||
	    e->opts.question_timeout_ms <= 0) {
		rc = err_set(&err, CONVBI_EINVAL,
		             "row_cap, sql_timeout_ms, schema_tokens and question_timeout_ms must be positive");
		goto fail;
	}
	if (e->opts.sql_memory_mb < 1 || e->opts.sql_memory_mb > CONVBI_SQL_BUDGET_MAX_MB || e->opts.sql_temp_mb < 1 ||
	    e->opts.sql_temp_mb > CONVBI_SQL_BUDGET_MAX_MB) {
		rc = err_set(&err, CONVBI_EINVAL, "sql_memory_mb is %d and sql_temp_mb %d; each must be 1 to %d",
		             e->opts.sql_memory_mb, e->opts.sql_temp_mb, CONVBI_SQL_BUDGET_MAX_MB);
		goto fail;
	}
	e->prompts_dir = xstrdup(resolve_prompts(opts->prompts_dir));
	if (!e->prompts_dir || (e->opts.db_path && !(e->db_path = xstrdup(e->opts.db_path))) ||
	    (e->opts.db_schemas && !(e->db_schemas = xstrdup(e->opts.db_schemas)))) {
		rc = err_code(&err, CONVBI_ENOMEM);
		goto fail;
	}
	e->opts.db_path = e->db_path;
	e->opts.prompts_dir = e->prompts_dir;
	e->opts.db_schemas = e->db_schemas;
	e->db_opts.schemas = e->db_schemas;
	e->opts.config_path = NULL;
	if ((rc = flow_prompts_load(&e->prompts, e->prompts_dir, &err)))
		goto fail;
	struct llm_config cfg;
	rc = config_load(&cfg, opts->config_path, &e->llm_err);
	if (rc == CONVBI_ENOENDPOINT) {
		rc = CONVBI_OK;
	} else if (rc) {
		err = e->llm_err;
		goto fail;
	} else if ((rc = llm_open(&e->llm, &cfg, &err))) {
		goto fail;
	}
	struct stat st;
	if (e->db_path && stat(e->db_path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0) {
		/* SQLite would take it as a new, empty database */
		rc = err_set(&err, CONVBI_EDB, "`%s` is empty (0 bytes), not a SQLite database; give --db a database file",
		             e->db_path);
		goto fail;
	}
	if ((rc = load_notes(e, &err)))
		goto fail;
	if (e->opts.examples_path && *e->opts.examples_path && (rc = examples_load(&e->examples, e->opts.examples_path, &err)))
		goto fail;
	e->opts.examples_path = NULL; /* the caller's string is not kept */
	if (e->db_path) {
		if ((rc = load_schema(e, &err)))
			goto fail;
		if (!(e->table_list = table_list_of(e->schema))) {
			rc = err_code(&err, CONVBI_ENOMEM);
			goto fail;
		}
		/* vindex's messages name a PostgreSQL database without its password */
		if (e->opts.value_index) {
			struct err verr = ERR_INIT;
			int vrc = vindex_open_target(&e->vindex, e->db_path, &e->db_opts, e->schema, 1, NULL, NULL, &verr);
			if (vrc == CONVBI_ENOMEM) {
				rc = err_code(&err, vrc);
				goto fail;
			}
			if (vrc) /* answers still work, only without value grounding */
				log_msg(2, "no value index: %s", verr.msg);
		}
	}
	return CONVBI_OK;
fail:
	engine_fail(e, &err);
	return rc;
}

CONVBI_API void convbi_engine_close(convbi_engine *e)
{
	if (!e || e->magic != ENGINE_MAGIC)
		return;
	e->magic = DEAD_MAGIC;
	llm_close(e->llm);
	tmpl_set_free(e->prompts);
	schema_free(e->schema);
	vindex_close(e->vindex);
	free(e->table_list);
	free(e->today);
	free(e->notes);
	examples_free(e->examples);
	free(e->db_path);
	free(e->db_schemas);
	free(e->dialect);
	free(e->db_describe);
	free(e->prompts_dir);
	pthread_mutex_destroy(&e->err_lock);
	free(e);
}

CONVBI_API const char *convbi_engine_errmsg(const convbi_engine *e)
{
	if (!e || e->magic != ENGINE_MAGIC)
		return convbi_errstr(CONVBI_EMISUSE);
	return e->err.code ? e->err.msg : "";
}

CONVBI_API const char *convbi_engine_database(const convbi_engine *e)
{
	if (!e || e->magic != ENGINE_MAGIC || !e->db_describe)
		return "";
	return e->db_describe;
}

/* Fails with ENOENDPOINT (and its message) when no endpoint is set. */
static int need_llm(convbi_engine *e)
{
	if (e->llm)
		return CONVBI_OK;
	engine_fail(e, &e->llm_err);
	return e->llm_err.code ? e->llm_err.code : CONVBI_ENOENDPOINT;
}

/* CONVBI_OK, or EDB with the message on the engine when it was opened
 * without a database. */
static int need_schema(convbi_engine *e)
{
	if (e->schema)
		return CONVBI_OK;
	struct err err;
	engine_fail(e, (err_set(&err, CONVBI_EDB, "the engine has no database; open it with db_path set"), &err));
	return CONVBI_EDB;
}

/* The prologue of an engine call handing back text in *out: clears
 * *out, fails with EMISUSE for a bad handle, no out or !args_ok, then
 * with what need (need_llm or need_schema) says. */
static int engine_enter(convbi_engine *e, int args_ok, char **out, int (*need)(convbi_engine *))
{
	if (out)
		*out = NULL;
	if (!e || e->magic != ENGINE_MAGIC || !out || !args_ok)
		return CONVBI_EMISUSE;
	return need(e);
}

/* Hands b's text to *out unless filling it failed; releases b either
 * way.  CONVBI_OK, or ENOMEM when filling or handing over failed. */
static int hand_over(struct buf *b, int failed, char **out)
{
	if (!failed)
		*out = buf_take(b);
	buf_release(b);
	return !failed && *out ? CONVBI_OK : CONVBI_ENOMEM;
}

struct chat_cb {
	convbi_event_fn cb;
	void *payload;
	int canceled;
	int64_t last_event_ms; /* monotonic: when cb was last called */
};

static int chat_delta(void *payload, const char *text, size_t len)
{
	struct chat_cb *c = payload;
	convbi_event ev = {CONVBI_EVENT_TOKEN, "chat", text, len, NULL, 0};
	c->last_event_ms = clock_mono_ms();
	if (c->cb && c->cb(&ev, c->payload))
		c->canceled = 1;
	return c->canceled;
}

static void chat_retry(void *payload, const struct llm_attempt *a, int restarted, const char *next)
{
	struct chat_cb *c = payload;
	char text[400];
	int n = llm_retry_text(text, sizeof text, a, restarted, next);
	convbi_event ev = {CONVBI_EVENT_RETRY, "chat", text, (size_t)n, a->endpoint, restarted};
	c->last_event_ms = clock_mono_ms();
	if (c->cb && c->cb(&ev, c->payload))
		c->canceled = 1;
}

/* Polled by the transfer every few ms: a PROGRESS event when the caller
 * has heard nothing for CONVBI_PROGRESS_MS lets it cancel promptly. */
static int chat_cancel(void *payload)
{
	struct chat_cb *c = payload;
	int64_t now = clock_mono_ms();
	if (c->cb && !c->canceled && now - c->last_event_ms >= CONVBI_PROGRESS_MS) {
		convbi_event ev = {CONVBI_EVENT_PROGRESS, "chat", "", 0, NULL, 0};
		c->last_event_ms = now;
		if (c->cb(&ev, c->payload))
			c->canceled = 1;
	}
	return c->canceled;
}

CONVBI_API int convbi_engine_chat(convbi_engine *e, const char *system, const char *prompt, int stream, convbi_event_fn cb,
                                  void *payload, char **json_out)
{
	int rc = engine_enter(e, prompt != NULL, json_out, need_llm);
	if (rc)
		return rc;
	struct chat_msg msgs[2];
	size_t n = 0;
	if (system && *system)
		msgs[n++] = (struct chat_msg){"system", system};
	msgs[n++] = (struct chat_msg){"user", prompt};
	struct chat_cb c = {cb, payload, 0, clock_mono_ms()};
	struct llm_request req = {.msgs = msgs,
	                          .n = n,
	                          .temperature = -1,
	                          .stream = stream,
	                          .on_delta = chat_delta,
	                          .on_retry = chat_retry,
	                          .cancel = chat_cancel,
	                          .payload = &c};
	struct llm_reply rep;
	struct err err = ERR_INIT;
	rc = llm_chat(e->llm, &req, &rep, &err);
	if (rc)
		engine_fail(e, &err);
	struct buf b;
	buf_init(&b, BUF_UNBOUNDED);
	int jrc = llm_reply_json(&b, &rep, rc, err.msg);
	llm_reply_release(&rep);
	jrc = hand_over(&b, jrc, json_out);
	return jrc ? jrc : rc;
}

/* A JSON view of the model client (fn), handed to the caller. */
static int llm_view(convbi_engine *e, int (*fn)(struct llm *, struct buf *), char **json_out)
{
	int rc = engine_enter(e, 1, json_out, need_llm);
	if (rc)
		return rc;
	struct buf b;
	buf_init(&b, BUF_UNBOUNDED);
	return hand_over(&b, fn(e->llm, &b), json_out);
}

CONVBI_API int convbi_engine_endpoints(convbi_engine *e, char **json_out)
{
	return llm_view(e, llm_endpoints_json, json_out);
}

CONVBI_API int convbi_engine_spend(convbi_engine *e, char **json_out)
{
	return llm_view(e, llm_spend_json, json_out);
}

CONVBI_API int convbi_engine_endpoints_reset(convbi_engine *e, const char *name, char **json_out)
{
	int rc = engine_enter(e, 1, json_out, need_llm);
	if (rc)
		return rc;
	struct buf b;
	struct err err = ERR_INIT;
	buf_init(&b, BUF_UNBOUNDED);
	if ((rc = llm_endpoints_reset(e->llm, name, &b, &err))) {
		buf_release(&b);
		engine_fail(e, &err);
		return rc;
	}
	return hand_over(&b, 0, json_out);
}

CONVBI_API int convbi_engine_schema(convbi_engine *e, const char *question, char **text_out)
{
	int rc = engine_enter(e, 1, text_out, need_schema);
	if (rc)
		return rc;
	struct buf b;
	struct ground g = GROUND_INIT;
	struct err err = ERR_INIT;
	buf_init(&b, BUF_UNBOUNDED);
	rc = e->vindex && question ? vindex_match(e->vindex, e->schema, question, &g, &err) : CONVBI_OK;
	if (rc == CONVBI_EDB)
		log_msg(2, "%s", err.msg); /* the schema text without grounding is still right */
	rc = rc == CONVBI_ENOMEM ? rc : schema_render_grounded(&b, e->schema, question, &g, (size_t)e->opts.schema_tokens * 4);
	ground_release(&g);
	return hand_over(&b, rc, text_out);
}

CONVBI_API int convbi_engine_context(convbi_engine *e, const char *question, char **text_out)
{
	int rc = engine_enter(e, 1, text_out, need_schema);
	if (rc)
		return rc;
	char today[16];
	if (e->today) {
		snprintf(today, sizeof today, "%s", e->today);
	} else {
		time_t now = time(NULL);
		struct tm tm;
		localtime_r(&now, &tm);
		strftime(today, sizeof today, "%Y-%m-%d", &tm);
	}
	struct flow_env env = {.schema = e->schema,
	                       .dialect = e->dialect,
	                       .schema_budget = (size_t)e->opts.schema_tokens * 4,
	                       .vindex = e->vindex,
	                       .today = today,
	                       .notes = e->notes,
	                       .examples = e->examples};
	struct buf b;
	buf_init(&b, BUF_UNBOUNDED);
	rc = flow_context_text(&env, question ? question : "", &b);
	return hand_over(&b, rc, text_out);
}

struct index_cb {
	convbi_index_progress_fn fn;
	void *payload;
};

static void index_progress(const struct vindex_progress *p, void *payload)
{
	struct index_cb *c = payload;
	c->fn(p->table, p->column, p->columns_done, p->columns, p->values, c->payload);
}

CONVBI_API int convbi_engine_index(convbi_engine *e, int rebuild, convbi_index_progress_fn fn, void *payload, char **json_out)
{
	int rc = engine_enter(e, 1, json_out, need_schema);
	if (rc)
		return rc;
	struct err err = ERR_INIT;
	struct index_cb c = {fn, payload};
	struct vindex *v = NULL;
	rc = vindex_open_target(&v, e->db_path, &e->db_opts, e->schema, rebuild ? 2 : 1, fn ? index_progress : NULL, &c, &err);
	if (rc) {
		engine_fail(e, &err);
		return rc;
	}
	vindex_close(e->vindex);
	e->vindex = v;
	const struct vindex_info *i = vindex_info(v);
	struct buf b;
	buf_init(&b, BUF_UNBOUNDED);
	rc = buf_puts(&b, "{\"path\":");
	if (!rc)
		rc = buf_json_str(&b, i->path, strlen(i->path));
	if (!rc)
		rc = buf_printf(&b,
		                ",\"values\":%lld,\"columns\":%lld,\"sampled\":%lld,\"seeked\":%lld,\"build_ms\":%lld,"
		                "\"partial\":%s,\"built\":%s}",
		                (long long)i->values, (long long)i->columns, (long long)i->sampled, (long long)i->seeked,
		                (long long)i->build_ms, i->partial ? "true" : "false", i->built ? "true" : "false");
	return hand_over(&b, rc, json_out);
}

static int tables_json(struct buf *b, const struct schema *s)
{
	int rc = buf_putc(b, '[');
	for (size_t i = 0; !rc && i < s->ntables; i++) {
		const struct schema_table *t = &s->tables[i];
		rc = buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
		if (!rc)
			rc = buf_json_str(b, t->name, strlen(t->name));
		if (!rc)
			rc = buf_printf(b, ",\"view\":%s,\"rows\":%lld,\"columns\":[", t->is_view ? "true" : "false",
			                (long long)(t->is_view ? -1 : t->rows));
		for (int c = 0; !rc && c < t->ncols; c++) {
			rc = buf_puts(b, c ? ",{\"name\":" : "{\"name\":");
			if (!rc)
				rc = buf_json_str(b, t->cols[c].name, strlen(t->cols[c].name));
			if (!rc)
				rc = buf_puts(b, ",\"type\":");
			if (!rc)
				rc = buf_json_str(b, t->cols[c].type, strlen(t->cols[c].type));
			if (!rc)
				rc = buf_putc(b, '}');
		}
		if (!rc)
			rc = buf_puts(b, "]}");
	}
	return rc ? rc : buf_putc(b, ']');
}

CONVBI_API int convbi_engine_tables(convbi_engine *e, char **json_out)
{
	int rc = engine_enter(e, 1, json_out, need_schema);
	if (rc)
		return rc;
	struct buf b;
	buf_init(&b, BUF_UNBOUNDED);
	return hand_over(&b, tables_json(&b, e->schema), json_out);
}

CONVBI_API int convbi_workflow_graph(const char *format, char **text_out)
{
	if (!text_out)
		return CONVBI_EMISUSE;
	*text_out = NULL;
	struct buf b;
	buf_init(&b, BUF_UNBOUNDED);
	int rc = flow_graph(&b, format);
	if (rc) {
		buf_release(&b);
		return rc;
	}
	return hand_over(&b, 0, text_out);
}
