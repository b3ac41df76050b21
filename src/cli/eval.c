/* eval.c -- `convbi eval`: execution accuracy (EX) on Spider or BIRD.
 *
 *   convbi eval [--config F] [--dataset spider|bird] [-j N] [--limit N]
 *               [--only-db ID] [--out F] [--resume] [--max-cost USD]
 *               [--db DIR] [--examples F] [--notes F] [--candidates N] DIR|FILE
 *
 * For every question (eval_data.c reads the files): a fresh session on the
 * engine of its database (one engine per database file, opened once before
 * the workers start and shared by them), the gold SQL run first through
 * the same read-only gate as the model's (convbi_session_run_sql), then the
 * question asked (BIRD's evidence as the hint), then the two results
 * compared (eval_compare.c).  Verdicts:
 *   correct        the predicted result equals the gold one
 *   wrong_result   it ran and differs
 *   sql_error      the predicted SQL failed to run (after the repairs)
 *   rejected       the read-only gate refused it (after the repairs)
 *   model_failure  no SQL: a model call failed, or the intent agent did not
 *                  see a data question
 *   gold_failure   the gold SQL does not run (or its database cannot be
 *                  opened): excluded from EX and listed; the model is not
 *                  asked
 * A question whose repairs ran out (EREPAIR) is classified by running its
 * last candidate again through the gate: EREJECTED -> rejected, another
 * error -> sql_error, no error (the model reviewer sent it back) ->
 * model_failure.
 *
 * EX = correct / (questions run - gold failures), overall, per database
 * and per difficulty, printed on stdout with the tokens per question
 * beside it (mean; median and p95 overall) and model calls per question,
 * what the model was given (examples, notes, candidates: eval_context.c),
 * the count of every verdict, the gold failures, tokens and calls per
 * endpoint.  --out F gets one JSON line per question in dataset order,
 * for diffing two runs:
 *   {"index", "id"?, "db_id", "question", "evidence"?, "gold_sql",
 *    "pred_sql", "verdict", "difficulty", "error", "truncated", "tokens",
 *    "calls", "elapsed_ms", "cost_usd", "db_path"?}  (db_path: a database
 *    file's absolute path, where `examples import` gates the SQL)
 * --max-cost USD stops taking questions once those answered have cost USD
 * (the ones in flight finish); --resume continues from --out
 * (eval_resume.c). 
 * The row cap is raised to EVAL_ROW_CAP unless --row-cap is given, so that
 * results are compared whole; a result still cut says "truncated": true.
 *
 * -v prints every verdict other than correct on stderr as it comes.
 *
 * Exit: 0 when the run completed (whatever the EX), 1 when the run itself
 * failed (the output cannot be written, no memory, no thread) or stopped
 * at --max-cost, 2 usage,
 * 130 interrupted (the report covers the questions that finished).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/batch.h"
#include "cli/eval.h"
#include "cli/term.h"
#include "cli/userfile.h"
#include "util/rescmp.h"

#define EVAL_ROW_CAP 100000 /* rows kept per result unless --row-cap */
#define EVAL_LIST_MAX 100   /* gold failures listed in the report */

const char *const verdict_names[V_COUNT] = {"pending",  "correct",       "wrong_result", "sql_error",
                                            "rejected", "model_failure", "gold_failure"};

struct eval {
	struct cli_opts *o;
	struct dataset d;
	struct eval_context cx;
	struct engines engines;
	char **db_errors; /* owned: per question, why its database cannot be opened, or NULL */
	struct outfile out;
	int have_out;
	struct workers w;    /* w.mu guards everything below */
	int written;         /* questions [0, written) are settled in --out */
	int werr;            /* errno of the first failed --out write */
	unsigned char *done; /* owned: per question, finished */
	unsigned char *kept; /* owned: per question, settled by --out before this run (--resume) */
	struct runstats st;
	struct progress pg;
};

/* ---- one question ------------------------------------------------------------------ */

static char *dup_or_null(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

static void set_error(struct eq *q, int verdict, const char *msg)
{
	q->verdict = verdict;
	free(q->error);
	q->error = dup_or_null(msg);
}

/* The SQL of the last candidate the model wrote (caller frees), from the
 * answer JSON, and its status when the JSON names it ("error_class" of
 * the candidate; -1 when absent). */
static char *last_candidate(const convbi_answer *a, int *status)
{
	char *json = NULL, *sql = NULL;
	*status = -1;
	if (convbi_answer_json(a, &json) != CONVBI_OK)
		return NULL;
	cJSON *root = cJSON_Parse(json);
	const cJSON *cands = cJSON_GetObjectItemCaseSensitive(root, "candidates");
	const cJSON *last = cJSON_GetArrayItem(cands, cJSON_GetArraySize(cands) - 1);
	sql = dup_or_null(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(last, "sql")));
	const cJSON *cls = cJSON_GetObjectItemCaseSensitive(last, "error_class");
	if (cJSON_IsString(cls))
		for (int code = 1; code < RUNSTATS_MAX_STATUS && *status < 0; code++)
			if (!strcmp(cls->valuestring, convbi_errname(code)))
				*status = code;
	cJSON_Delete(root);
	convbi_free(json);
	return sql;
}

/* Sets the verdict of a question whose answer holds no result.  When the
 * repairs ran out, the last candidate decides: by its own class when the
 * answer JSON gives one, else by running it again through the gate
 * (which cannot tell a reply without SQL, whose text became the
 * candidate, from a syntax error: both come out sql_error). */
static void classify_failure(convbi_session *s, struct eq *q, const convbi_answer *a)
{
	int status = convbi_answer_status(a), cls;
	const char *msg = convbi_answer_errmsg(a);
	free(q->pred);
	q->pred = last_candidate(a, &cls);
	if (status == CONVBI_OK) {
		char why[160];
		snprintf(why, sizeof why, "the intent agent classified the question as `%s` and wrote no SQL",
		         convbi_answer_intent(a));
		set_error(q, V_MODEL, why);
		return;
	}
	if (status != CONVBI_EREPAIR) {
		set_error(q, status == CONVBI_EREJECTED ? V_REJECTED : status == CONVBI_ESQL ? V_SQL_ERROR : V_MODEL, msg);
		return;
	}
	if (q->pred && cls < 0) {
		convbi_answer *again = NULL;
		cls = convbi_session_run_sql(s, q->pred, &again);
		convbi_answer_free(again);
	}
	/* cls 0: it runs, so the model reviewer sent it back; EPROTOCOL: no SQL */
	set_error(q, cls == CONVBI_EREJECTED ? V_REJECTED : cls > 0 && cls != CONVBI_EPROTOCOL ? V_SQL_ERROR : V_MODEL, msg);
}

/* Runs question q; returns its answer status for the statistics (the
 * answer JSON, when there is one, in *json_out for the caller to free). */
static int run_one(struct eval *ev, struct eq *q, int qi, char **json_out)
{
	convbi_session *s = NULL;
	convbi_answer *gold = NULL, *a = NULL;
	int status = CONVBI_OK;
	int64_t t0 = bulk_now_ms();
	*json_out = NULL;
	if (!q->engine) {
		set_error(q, V_GOLD, ev->db_errors[qi]);
		goto done;
	}
	if (convbi_session_new(&s, q->engine)) {
		set_error(q, V_GOLD, convbi_session_errmsg(s));
		goto done;
	}
	int rc = convbi_session_run_sql(s, q->gold, &gold);
	if (rc) {
		char why[600];
		snprintf(why, sizeof why, "the gold SQL fails: %s", gold ? convbi_answer_errmsg(gold) : convbi_errstr(rc));
		set_error(q, V_GOLD, why);
		goto done;
	}
	status = convbi_session_ask(s, q->question, q->evidence, bulk_event, NULL, &a);
	if (status == CONVBI_ECANCELED && bulk_interrupts() >= 2) {
		q->verdict = V_PENDING;
		if (a)
			convbi_answer_json(a, json_out); /* not settled, but the calls it made count */
		goto done;
	}
	if (!a) {
		set_error(q, V_MODEL, convbi_errstr(status));
		goto done;
	}
	convbi_answer_json(a, json_out);
	q->cost_usd = convbi_answer_cost_usd(a);
	const char *sql = convbi_answer_sql(a);
	if (!sql || !*sql) {
		classify_failure(s, q, a);
		goto done;
	}
	q->pred = strdup(sql);
	q->truncated = convbi_answer_truncated(gold) || convbi_answer_truncated(a);
	char why[400] = "";
	int same = results_match(gold, a, rescmp_sql_orders(q->gold), why, sizeof why);
	if (same < 0)
		set_error(q, V_MODEL, "out of memory comparing the results");
	else
		set_error(q, same ? V_CORRECT : V_WRONG, same ? NULL : why);
done:
	q->elapsed_ms = bulk_now_ms() - t0;
	convbi_answer_free(a);
	convbi_answer_free(gold);
	convbi_session_free(s);
	return status;
}

/* ---- the --out lines --------------------------------------------------------------- */

static char *question_line(const struct eq *q)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;
	if (!o)
		return NULL;
	cJSON_AddNumberToObject(o, "index", q->index);
	if (q->id)
		cJSON_AddItemToObject(o, "id", q->id_num ? cJSON_CreateRaw(q->id) : cJSON_CreateString(q->id));
	cJSON_AddStringToObject(o, "db_id", q->db_id);
	cJSON_AddStringToObject(o, "question", q->question);
	if (q->evidence)
		cJSON_AddStringToObject(o, "evidence", q->evidence);
	cJSON_AddStringToObject(o, "gold_sql", q->gold);
	if (q->pred)
		cJSON_AddStringToObject(o, "pred_sql", q->pred);
	else
		cJSON_AddNullToObject(o, "pred_sql");
	cJSON_AddStringToObject(o, "verdict", verdict_names[q->verdict]);
	cJSON_AddStringToObject(o, "difficulty", q->difficulty);
	if (q->error)
		cJSON_AddStringToObject(o, "error", q->error);
	else
		cJSON_AddNullToObject(o, "error");
	cJSON_AddBoolToObject(o, "truncated", q->truncated);
	cJSON_AddNumberToObject(o, "tokens", (double)q->tokens);
	cJSON_AddNumberToObject(o, "calls", q->calls);
	cJSON_AddNumberToObject(o, "elapsed_ms", (double)q->elapsed_ms);
	cJSON_AddNumberToObject(o, "cost_usd", q->cost_usd);
	char abs[PATH_MAX];
	if (realpath(q->db_path, abs)) /* a file; never a PostgreSQL URI, which may hold a password */
		cJSON_AddStringToObject(o, "db_path", abs);
	text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

/* Writes the finished questions from the cursor on, in dataset order,
 * stopping at the first unfinished one unless all is set.  Caller holds
 * ev->w.mu. */
static void flush_lines(struct eval *ev, int all)
{
	for (; ev->written < ev->d.n; ev->written++) {
		int i = ev->written;
		if (!ev->done[i] || ev->d.q[i].verdict == V_PENDING) {
			if (!all)
				return;
			continue;
		}
		if (!ev->have_out || ev->werr || ev->kept[i])
			continue;
		char *line = question_line(&ev->d.q[i]);
		struct buf t = BUF_INIT;
		if (line) {
			buf_puts(&t, line);
			buf_add(&t, "\n", 1);
		}
		int e = !line || t.err ? ENOMEM : outfile_write(&ev->out, t.data, t.len);
		if (e)
			ev->werr = e;
		buf_release(&t);
		cJSON_free(line);
	}
}

/* ---- workers ------------------------------------------------------------------------- */

/* A worker's task: one question. */
static void run_task(void *ctx, int i)
{
	struct eval *ev = ctx;
	struct eq *q = &ev->d.q[i];
	char *json = NULL;
	if (ev->kept[i]) /* settled by --out before this run */
		return;
	int status = run_one(ev, q, i, &json);
	cJSON *ans = json ? cJSON_Parse(json) : NULL;
	convbi_free(json);
	const cJSON *st;
	q->tokens = (long long)cJSON_GetNumberValue(
	        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ans, "usage"), "total_tokens"));
	if (q->tokens < 0)
		q->tokens = 0; /* NaN when absent */
	cJSON_ArrayForEach(st, cJSON_GetObjectItemCaseSensitive(ans, "stages")) q->calls +=
	        (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(st, "calls"));
	pthread_mutex_lock(&ev->w.mu);
	ev->done[i] = 1;
	if (q->verdict != V_PENDING)
		runstats_add(&ev->st, status, ans);
	else
		runstats_add_spend(&ev->st, ans);
	if (ev->o->verbose && q->verdict != V_PENDING && q->verdict != V_CORRECT) {
		progress_end(&ev->pg);
		term_printf(stderr, "convbi: eval: #%d %s: %s: %s\n", q->index, q->db_id, verdict_names[q->verdict],
		            q->error ? q->error : "");
	}
	flush_lines(ev, 0);
	workers_notify(&ev->w);
	pthread_mutex_unlock(&ev->w.mu);
	cJSON_Delete(ans);
}

/* Under w.mu: no new question once --out cannot be written or the run has
 * cost --max-cost. */
static int output_failed(void *ctx)
{
	struct eval *ev = ctx;
	return ev->werr != 0 || runstats_over_cost(&ev->st, ev->o->max_cost);
}

/* Under w.mu, every 100 ms and at the end: progress, then the last lines. */
static void tick(void *ctx, int final)
{
	struct eval *ev = ctx;
	if (!final) {
		progress_show(&ev->pg, &ev->st, 0);
		return;
	}
	progress_end(&ev->pg);
	flush_lines(ev, 1);
}

/* ---- the report --------------------------------------------------------------------- */

struct tally {
	const char *name; /* borrowed: a db_id or a difficulty */
	long run, correct, gold;
	long long tokens; /* of the questions asked (gold failures are not) */
};

static struct tally *tally_of(struct tally *t, int *n, const char *name)
{
	for (int i = 0; i < *n; i++)
		if (!strcmp(t[i].name, name))
			return &t[i];
	struct tally *e = &t[(*n)++];
	memset(e, 0, sizeof *e);
	e->name = name;
	return e;
}

static void tally_add(struct tally *t, const struct eq *q)
{
	t->run++;
	t->correct += q->verdict == V_CORRECT;
	t->gold += q->verdict == V_GOLD;
	t->tokens += q->tokens;
}

static void print_ex(const char *label, const struct tally *t)
{
	long n = t->run - t->gold;
	char ex[16] = "-", tok[24] = "-";
	if (n) {
		snprintf(ex, sizeof ex, "%.2f%%", 100.0 * (double)t->correct / (double)n);
		snprintf(tok, sizeof tok, "%.0f", (double)t->tokens / (double)n);
	}
	printf("  %-30s %5ld %7ld %8s %9s", label, n, t->correct, ex, tok);
	if (t->gold)
		printf("  (%ld excluded)", t->gold);
	putchar('\n');
}

static const char *const hardness_order[] = {"easy", "medium", "hard", "extra", "simple", "moderate", "challenging"};

static int hardness_rank(const char *name)
{
	for (size_t i = 0; i < sizeof hardness_order / sizeof hardness_order[0]; i++)
		if (!strcmp(name, hardness_order[i]))
			return (int)i;
	return 100;
}

static int by_hardness(const void *x, const void *y)
{
	const struct tally *a = x, *b = y;
	int ra = hardness_rank(a->name), rb = hardness_rank(b->name);
	return ra != rb ? ra - rb : strcmp(a->name, b->name);
}

static int by_count(const void *x, const void *y)
{
	long long a = *(const long long *)x, b = *(const long long *)y;
	return a < b ? -1 : a > b;
}

static int by_name(const void *x, const void *y)
{
	return strcmp(((const struct tally *)x)->name, ((const struct tally *)y)->name);
}

static int report(struct eval *ev, int jobs)
{
	const struct dataset *d = &ev->d;
	struct tally all = {"all", 0, 0, 0, 0};
	struct tally *dbs = calloc((size_t)d->n, sizeof *dbs), *hard = calloc((size_t)d->n, sizeof *hard);
	long counts[V_COUNT] = {0};
	int ndbs = 0, nhard = 0;
	if (!dbs || !hard) {
		free(dbs);
		free(hard);
		cli_error("out of memory");
		return EXIT_FAIL;
	}
	for (int i = 0; i < d->n; i++) {
		const struct eq *q = &d->q[i];
		counts[q->verdict]++;
		if (q->verdict == V_PENDING)
			continue;
		tally_add(&all, q);
		tally_add(tally_of(dbs, &ndbs, q->db_id), q);
		tally_add(tally_of(hard, &nhard, q->difficulty), q);
	}
	qsort(dbs, (size_t)ndbs, sizeof *dbs, by_name);
	qsort(hard, (size_t)nhard, sizeof *hard, by_hardness);
	double secs = (double)(bulk_now_ms() - ev->st.start_ms) / 1000.0;
	long runnable = all.run - all.gold;
	printf("convbi eval: %s %s: %ld of %d questions run (%d in the file), -j %d, %.1f s\n", d->kind, d->file, all.run, d->n,
	       d->total, jobs, secs);
	const struct cli_opts *o = ev->o;
	printf("context: %s%s%s, notes %s, candidates %d", o->examples ? "examples " : "no examples",
	       o->examples ? o->examples : "", o->examples ? " (this run's own questions left out)" : "",
	       !o->notes    ? "beside each database if any"
	       : !*o->notes ? "off"
	                    : o->notes,
	       o->candidates > 0 ? o->candidates : 1);
	if (o->examples)
		printf("; %ld example line%s left out", ev->cx.left_out, ev->cx.left_out == 1 ? "" : "s");
	putchar('\n');
	long long *tok = calloc((size_t)d->n + 1, sizeof *tok), calls = 0;
	long ntok = 0;
	for (int i = 0; tok && i < d->n; i++)
		if (d->q[i].verdict != V_PENDING && d->q[i].verdict != V_GOLD) {
			tok[ntok++] = d->q[i].tokens;
			calls += d->q[i].calls;
		}
	if (tok && ntok)
		qsort(tok, (size_t)ntok, sizeof *tok, by_count);
	if (runnable)
		printf("EX %.2f%% (%ld/%ld runnable; %ld gold failures excluded); tokens per question %.0f (median %lld, p95 %lld), "
		       "model calls per question %.2f\n",
		       100.0 * (double)all.correct / (double)runnable, all.correct, runnable, all.gold,
		       (double)all.tokens / (double)runnable, ntok ? tok[(ntok - 1) / 2] : 0LL,
		       ntok ? tok[(long)((double)(ntok - 1) * 0.95 + 0.5)] : 0LL, (double)calls / (double)runnable);
	else
		printf("EX - (no runnable question; %ld gold failures excluded)\n", all.gold);
	free(tok);
	printf("\noutcomes:");
	for (int v = V_CORRECT; v < V_COUNT; v++)
		printf(" %s %ld%s", verdict_names[v], counts[v], v + 1 < V_COUNT ? "," : "");
	if (counts[V_PENDING])
		printf(", not run %ld", counts[V_PENDING]);
	printf("\n\n  %-30s %5s %7s %8s %9s\n", "difficulty", "n", "correct", "EX", "tokens/q");
	for (int i = 0; i < nhard; i++)
		print_ex(hard[i].name, &hard[i]);
	printf("\n  %-30s %5s %7s %8s %9s\n", "database", "n", "correct", "EX", "tokens/q");
	for (int i = 0; i < ndbs; i++)
		print_ex(dbs[i].name, &dbs[i]);
	if (counts[V_GOLD]) {
		printf("\ngold failures (excluded from EX):\n");
		int listed = 0;
		for (int i = 0; i < d->n && listed < EVAL_LIST_MAX; i++)
			if (d->q[i].verdict == V_GOLD)
				printf("  #%d %s: %s\n", d->q[i].index, d->q[i].db_id, d->q[i].error ? d->q[i].error : "?"),
				        listed++;
		if (counts[V_GOLD] > listed)
			printf("  ... and %ld more%s\n", counts[V_GOLD] - listed, ev->have_out ? " (see --out)" : "");
	}
	putchar('\n');
	runstats_print_usage(&ev->st, "", stdout);
	if (runstats_over_cost(&ev->st, ev->o->max_cost) && counts[V_PENDING])
		runstats_print_stopped(&ev->st, ev->o->max_cost, counts[V_PENDING], "", stdout);
	fflush(stdout);
	free(dbs);
	free(hard);
	return EXIT_OK;
}

/* ---- the command ------------------------------------------------------------------------ */

/* Opens the engine of every database; one that cannot be opened (a missing
 * file) makes its questions gold failures, a configuration problem stops
 * the run. */
static int open_engines(struct eval *ev)
{
	struct strmap failed = STRMAP_INIT;
	char msg[600];
	int rc = EXIT_OK;
	if (!(ev->db_errors = calloc((size_t)ev->d.n, sizeof *ev->db_errors)))
		return cli_error("out of memory"), EXIT_FAIL;
	for (int i = 0; i < ev->d.n; i++) {
		struct eq *q = &ev->d.q[i];
		int k;
		if (strmap_get(&failed, q->db_path, &k)) {
			ev->db_errors[i] = strdup(ev->db_errors[k]);
			continue;
		}
		struct cli_opts per;
		char paths[2 * 4096 + 600];
		if (eval_context_opts(&ev->cx, ev->o, q->db_id, &per, paths, sizeof paths)) {
			cli_error("the notes path for `%s` is too long", q->db_id);
			rc = EXIT_USAGE;
			break;
		}
		int e = engines_get(&ev->engines, &per, q->db_path, &q->engine, msg, sizeof msg);
		if (e == CONVBI_EDB || e == CONVBI_EIO) {
			ev->db_errors[i] = strdup(msg);
			if (strmap_put(&failed, q->db_path, i, NULL) < 0)
				e = CONVBI_ENOMEM;
			else
				continue;
		}
		if (e) {
			cli_error("%s", msg);
			rc = e == CONVBI_ENOMEM ? EXIT_FAIL : EXIT_USAGE;
			break;
		}
	}
	strmap_release(&failed);
	return rc;
}

static int run(struct eval *ev)
{
	int jobs = ev->o->jobs > 0 ? ev->o->jobs : 1;
	if (jobs > ev->d.n)
		jobs = ev->d.n;
	if (!ev->done && !(ev->done = calloc((size_t)ev->d.n, 1)))
		return cli_error("out of memory"), EXIT_FAIL;
	progress_init(&ev->pg, "eval");
	int pending = 0;
	for (int i = 0; i < ev->d.n; i++)
		pending += !ev->kept[i];
	runstats_init(&ev->st, pending);
	ev->w.ntasks = ev->d.n;
	ev->w.ctx = ev;
	ev->w.run = run_task;
	ev->w.stopping = output_failed;
	ev->w.tick = tick;
	ev->w.pg = &ev->pg;
	if (!workers_run(&ev->w, jobs))
		return cli_error("cannot start a worker thread"), EXIT_FAIL;
	int rc = report(ev, jobs);
	if (!ev->werr && ev->have_out && ev->o->resume)
		ev->werr = eval_resume_sort(ev->o->out);
	if (ev->werr) {
		cli_error("cannot write --out %s: %s", ev->o->out, strerror(ev->werr));
		return EXIT_FAIL;
	}
	if (!rc && runstats_over_cost(&ev->st, ev->o->max_cost))
		for (int i = 0; i < ev->d.n; i++)
			if (ev->d.q[i].verdict == V_PENDING)
				return EXIT_FAIL;
	return rc ? rc : bulk_interrupts() ? EXIT_INTERRUPTED : EXIT_OK;
}

int cmd_eval(struct cli_opts *o)
{
	struct eval ev;
	memset(&ev, 0, sizeof ev);
	struct engines none = ENGINES_INIT;
	ev.engines = none;
	ev.o = o;
	workers_init(&ev.w);
	if (o->row_cap < 0)
		o->row_cap = EVAL_ROW_CAP;
	int rc = dataset_load(&ev.d, o->args[0], o->dataset, o->only_db, o->limit, o->db);
	if (rc)
		goto done;
	struct userfile_input q = {ev.d.file, "the question file"};
	if (o->out && (rc = userfile_check("--out", o->out, o, NULL, &q, 1)))
		goto done;
	if (o->resume && !o->out) {
		cli_error("--resume needs --out FILE: the output of the run to resume");
		rc = EXIT_USAGE;
		goto done;
	}
	if (!(ev.done = calloc((size_t)ev.d.n + 1, 1)) || !(ev.kept = calloc((size_t)ev.d.n + 1, 1))) {
		cli_error("out of memory");
		rc = EXIT_FAIL;
		goto done;
	}
	if (o->resume) {
		int nkept = 0;
		if ((rc = eval_resume_load(&ev.d, o->out, ev.kept, &nkept)))
			goto done;
		memcpy(ev.done, ev.kept, (size_t)ev.d.n);
		if (nkept)
			fprintf(stderr, "convbi: eval: %d of %d questions already in %s; asking the rest\n", nkept, ev.d.n,
			        o->out);
	}
	if ((rc = eval_context_open(&ev.cx, &ev.d, o)))
		goto done;
	rc = open_engines(&ev);
	eval_context_close(&ev.cx); /* the engines have read their copies */
	if (rc)
		goto done;
	if (o->out) {
		int e = outfile_open(&ev.out, o->out, !o->resume);
		if (e) {
			cli_error("cannot open --out `%s`: %s", o->out, strerror(e));
			rc = EXIT_USAGE;
			goto done;
		}
		ev.out.sync = 0; /* rewritten by every run: no need to sync each line */
		ev.have_out = 1;
	}
	rc = run(&ev);
done:
	if (ev.have_out)
		outfile_close(&ev.out);
	if (ev.db_errors)
		for (int i = 0; i < ev.d.n; i++)
			free(ev.db_errors[i]);
	free(ev.db_errors);
	free(ev.done);
	eval_context_close(&ev.cx);
	free(ev.kept);
	engines_close(&ev.engines);
	dataset_release(&ev.d);
	workers_release(&ev.w);
	return rc;
}
