/* print.c -- how the CLI prints one answer (see print.h): the event
 * callback (spinner, streamed sentence, SQL line, retries as they happen,
 * .confirm's question), the sentence, the work the model did, and the
 * rows through the library's view renderer (screen width, decimal points,
 * styled NULL, colours only on a terminal) to stdout, the pager or a
 * file. */
#include "cli/print.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

volatile sig_atomic_t cli_interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	cli_interrupted = 1;
}

void cli_on_sigint(void (*handler)(int sig))
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
}

void cli_catch_sigint(void)
{
	cli_on_sigint(on_sigint);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void print_init(struct print_state *ps)
{
	memset(ps, 0, sizeof *ps);
	ps->maxrows = -1;
	ps->pager = 1;
	ps->fit = CONVBI_FIT_VERTICAL;
	term_probe(&ps->term);
}

static void output_end(struct print_state *ps);

void print_release(struct print_state *ps)
{
	output_end(ps);
	free(ps->edit_sql);
	ps->edit_sql = NULL;
}

static const char *const mode_names[] = {"table", "csv", "json", "markdown", "line"};

int print_mode_of(const char *name)
{
	for (int i = 0; i < (int)(sizeof mode_names / sizeof mode_names[0]); i++)
		if (!strcmp(name ? name : "table", mode_names[i]))
			return i;
	return -1;
}

const char *print_mode_name(int mode)
{
	return mode >= 0 && mode <= PRINT_LINE ? mode_names[mode] : "table";
}

/* CSV and JSON carry rows only, as does any mode --format chose. */
static int rows_only(const struct print_state *ps)
{
	return ps->rows_only || ps->mode == PRINT_CSV || ps->mode == PRINT_JSON;
}

FILE *print_sentence_stream(const struct print_state *ps)
{
	return rows_only(ps) && !ps->answer_out && !ps->out ? stderr : stdout;
}

/* Back to stdout: what was never committed is removed (the file at
 * out_path stays as it was). */
static void output_end(struct print_state *ps)
{
	int e = ps->res.f ? resfile_close(&ps->res) : 0;
	if (e) {
		cli_error("writing `%s` failed: %s", ps->out_path, strerror(e));
		ps->write_failures++;
	}
	ps->out = NULL;
	free(ps->out_path);
	ps->out_path = NULL;
	ps->once = 0;
}

int print_redirect(struct print_state *ps, const char *flag, const char *path, int once)
{
	if (path && ps->opts && userfile_check(flag, path, ps->opts, ps->db, NULL, 0))
		return -1;
	output_end(ps);
	if (!path)
		return 0;
	int e = resfile_open(&ps->res, path);
	if (!e && !(ps->out_path = strdup(path)))
		e = ENOMEM;
	if (e) {
		cli_error("cannot write `%s`: %s; choose a file in a folder you can write", path, strerror(e));
		output_end(ps);
		return -1;
	}
	ps->out = ps->res.f;
	ps->once = once;
	return 0;
}

int print_commit(struct print_state *ps)
{
	int was = ps->res.committed, e = ps->out ? resfile_commit(&ps->res) : 0;
	if (!e)
		return 0;
	ps->write_failures++;
	cli_error(was ? "writing `%s` failed: %s" : "writing `%s` failed: %s; the file was left as it was", ps->out_path,
	          strerror(e));
	return -1;
}

/* ---- events ----------------------------------------------------------------- */

/* .confirm: asks on the terminal whether the model's SQL may run. */
static int confirm_sql(struct print_state *ps, const char *sql, size_t len)
{
	term_printf(stderr, "SQL: %.*s\nrun this? [Y/n/e] ", (int)len, sql);
	fflush(stderr);
	char line[64];
	if (!fgets(line, sizeof line, stdin) || cli_interrupted) {
		ps->confirm_reply = CONFIRM_SKIP;
		return 1;
	}
	char c = line[strspn(line, " \t")];
	if (c == 'n' || c == 'N') {
		ps->confirm_reply = CONFIRM_SKIP;
		return 1;
	}
	if (c == 'e' || c == 'E') {
		ps->confirm_reply = CONFIRM_EDIT;
		free(ps->edit_sql);
		ps->edit_sql = strndup(sql, len);
		return 1;
	}
	return 0;
}

int print_event(const convbi_event *ev, void *payload)
{
	struct print_state *ps = payload;
	if (cli_interrupted) {
		spinner_clear(&ps->spin);
		return 1;
	}
	FILE *sentence = print_sentence_stream(ps);
	switch (ev->kind) {
	case CONVBI_EVENT_PROGRESS:
		if (!ps->streamed)
			spinner_tick(&ps->spin);
		break;
	case CONVBI_EVENT_STAGE:
		if (!ps->streamed)
			spinner_stage(&ps->spin, ev->stage);
		if (ps->verbose) {
			spinner_clear(&ps->spin);
			fprintf(stderr, "convbi: [%.2f s] stage %s\n", (double)(now_ms() - ps->start_ms) / 1000.0, ev->stage);
		}
		break;
	case CONVBI_EVENT_SQL:
		spinner_clear(&ps->spin);
		if (ps->confirm)
			return confirm_sql(ps, ev->text, ev->len);
		if (ps->show_sql)
			term_printf(rows_only(ps) ? stderr : stdout, "SQL: %.*s\n", (int)ev->len, ev->text);
		break;
	case CONVBI_EVENT_TOKEN:
		spinner_clear(&ps->spin);
		if (ps->stream) {
			term_text_put(&ps->text, sentence, ev->text, ev->len);
			ps->streamed = 1;
		}
		break;
	case CONVBI_EVENT_RETRY:
		spinner_clear(&ps->spin);
		if (ps->streamed && ev->restarted) {
			term_text_end(&ps->text, sentence);
			fputs("\n[the answer is being restarted on another endpoint]\n", sentence);
			ps->streamed = 0;
		}
		if (ps->verbose || ps->show_work || ps->term.err_tty)
			term_printf(stderr, "convbi: %s: %.*s\n", ev->endpoint ? ev->endpoint : "?", (int)ev->len, ev->text);
		break;
	}
	fflush(stdout);
	fflush(stderr);
	return 0;
}

void print_begin(struct print_state *ps)
{
	ps->streamed = 0;
	ps->confirm_reply = CONFIRM_RUN;
	ps->start_ms = now_ms();
	spinner_start(&ps->spin, ps->term.err_tty);
}

/* ---- the work ------------------------------------------------------------------ */

static const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* SQL on one line: runs of white space become one space. */
static void put_flat(FILE *f, const char *s)
{
	while (*s) {
		size_t word = strcspn(s, " \n\t\r");
		term_put(f, s, word);
		s += word;
		size_t space = strspn(s, " \n\t\r");
		if (space && s[space])
			fputc(' ', f);
		s += space;
	}
}

void print_work(const convbi_answer *a, FILE *f, int full)
{
	char *json = NULL;
	if (!a || convbi_answer_json(a, &json) != CONVBI_OK)
		return;
	cJSON *root = cJSON_Parse(json);
	convbi_free(json);
	if (!root)
		return;
	const char *q = jstr(root, "question"), *sq = jstr(root, "standalone_question"), *intent = jstr(root, "intent");
	if (full)
		term_printf(f, "question: %s\nintent:   %s\n", q ? q : "", intent ? intent : "-");
	if (sq && q && strcmp(sq, q) && (full || (intent && !strcmp(intent, "follow_up"))))
		term_printf(f, "%s%s\n", full ? "as:       " : "convbi: follow-up understood as: ", sq);
	const cJSON *c;
	int i = 0;
	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "candidates"))
	{
		const char *sql = jstr(c, "sql"), *err = jstr(c, "error");
		i++;
		if (!full && !err)
			continue;
		term_printf(f, full ? "SQL %d:    " : "convbi: SQL %d failed: ", i);
		put_flat(f, sql ? sql : "");
		const cJSON *g = cJSON_GetObjectItemCaseSensitive(c, "group");
		term_printf(f, "\n%s%s", full ? "          " : "        ", err ? err : "ran");
		if (cJSON_IsNumber(g))
			term_printf(f, ", result %d", g->valueint + 1);
		fputc('\n', f);
	}
	const cJSON *vote = cJSON_GetObjectItemCaseSensitive(root, "vote");
	if (full && vote) {
		const cJSON *w = cJSON_GetObjectItemCaseSensitive(vote, "winner");
		term_printf(f, "vote:     %.0f candidates, %.0f distinct result%s", jnum(vote, "candidates"),
		            jnum(vote, "groups"), jnum(vote, "groups") == 1 ? "" : "s");
		if (cJSON_IsNumber(w))
			term_printf(f, "; SQL %d answers with %.0f vote%s", w->valueint + 1, jnum(vote, "votes"),
			            jnum(vote, "votes") == 1 ? "" : "s");
		fputc('\n', f);
	}
	const cJSON *at;
	cJSON_ArrayForEach(at, cJSON_GetObjectItemCaseSensitive(root, "attempts"))
	{
		const char *cls = jstr(at, "class"), *ep = jstr(at, "endpoint"), *err = jstr(at, "error");
		int okay = cls && !strcmp(cls, "ok");
		if (!full)
			continue; /* failed attempts were shown as they happened */
		term_printf(f, "attempt:  %-8s %-12s %s%s%.0f ms%s%s", jstr(at, "stage") ? jstr(at, "stage") : "?", ep ? ep : "?",
		            okay  ? ""
		            : cls ? cls
		                  : "?",
		            okay ? "" : ", ", jnum(at, "elapsed_ms"), !okay && err ? ": " : "", !okay && err ? err : "");
		print_provenance(f, at);
		fputc('\n', f);
	}
	if (full) {
		const cJSON *st;
		cJSON_ArrayForEach(st, cJSON_GetObjectItemCaseSensitive(root, "stages"))
		{
			const char *ep = jstr(st, "endpoint");
			term_printf(f, "stage:    %-8s %6.0f ms  %d call%s  %5.0f + %.0f tokens%s%s\n", st->string,
			            jnum(st, "ms"), (int)jnum(st, "calls"), jnum(st, "calls") == 1 ? "" : "s",
			            jnum(st, "prompt_tokens"), jnum(st, "completion_tokens"), ep ? "  " : "", ep ? ep : "");
		}
		const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "usage");
		term_printf(f, "total:    %.0f ms, %.0f tokens (%.0f prompt + %.0f completion), $%.6f, %d repair%s\n",
		            jnum(root, "elapsed_ms"), jnum(u, "total_tokens"), jnum(u, "prompt_tokens"),
		            jnum(u, "completion_tokens"), jnum(root, "cost_usd"), (int)jnum(root, "repairs"),
		            jnum(root, "repairs") == 1 ? "" : "s");
		const char *err = jstr(root, "error");
		if (err)
			term_printf(f, "error:    %s\n", err);
	}
	cJSON_Delete(root);
}

void print_provenance(FILE *f, const cJSON *at)
{
	const char *dep = jstr(at, "deployment_name"), *from = jstr(at, "spillover_from_deployment");
	const char *why = jstr(at, "spillover_error"), *region = jstr(at, "region"), *id = jstr(at, "apim_request_id");
	const char *sep = " [";
	if (dep) {
		term_printf(f, "%sdeployment %s", sep, dep);
		sep = ", ";
	}
	if (from) {
		term_printf(f, "%sspilled over from %s%s%s", sep, from, why ? " after HTTP " : "", why ? why : "");
		sep = ", ";
	}
	if (region) {
		term_printf(f, "%sregion %s", sep, region);
		sep = ", ";
	}
	if (id) {
		term_printf(f, "%sapim-request-id %s", sep, id);
		sep = ", ";
	}
	if (sep[0] == ',')
		fputc(']', f);
}

/* ---- rows ------------------------------------------------------------------------ */

void print_rows(const convbi_answer *a, struct print_state *ps)
{
	FILE *dest = ps->out ? ps->out : stdout;
	int screen = !ps->out && ps->term.out_tty;
	int cols = 0, lines = 0;
	if (screen)
		term_size(&cols, &lines);
	convbi_view v = CONVBI_VIEW_INIT;
	v.mode = print_mode_name(ps->mode);
	v.max_rows = ps->maxrows;
	v.width = screen ? cols : 0;
	v.fit = ps->fit;
	v.color = screen && ps->term.color;
	v.align_decimals = 1;
	char *text = NULL;
	int rc = convbi_answer_format_view(a, &v, &text);
	if (rc) {
		cli_error("the rows cannot be shown: %s", convbi_errstr(rc));
	} else {
		size_t n = strlen(text);
		char *safe = NULL;
		size_t safelen = 0;
		FILE *m;
		if (screen && (ps->mode == PRINT_CSV || ps->mode == PRINT_JSON) && (m = open_memstream(&safe, &safelen))) {
			/* raw data on a terminal: made safe (the other modes escape cells themselves) */
			term_put(m, text, n);
			if (fclose(m) == 0) {
				convbi_free(text);
				text = NULL;
				n = safelen;
			}
		}
		if (screen)
			term_page(text ? text : safe, n, ps->pager);
		else
			fwrite(text, 1, n, dest);
		if (n && (text ? text : safe)[n - 1] != '\n')
			fputc('\n', dest);
		if (ps->maxrows >= 0 && convbi_answer_row_count(a) > ps->maxrows && ps->mode != PRINT_TABLE &&
		    ps->mode != PRINT_LINE)
			fprintf(stderr, "convbi: showing %lld of %lld rows (.maxrows)\n", (long long)ps->maxrows,
			        (long long)convbi_answer_row_count(a));
		int exact = 0;
		int64_t total = convbi_answer_total_rows(a, &exact);
		if (convbi_answer_truncated(a) && ps->mode != PRINT_TABLE && ps->mode != PRINT_LINE)
			fprintf(stderr,
			        "convbi: %lld rows kept of %s%lld the query returned; a cap left out the rest (--row-cap, "
			        "or the 1 MB result size cap: select fewer or shorter columns)\n",
			        (long long)convbi_answer_row_count(a), exact ? "" : "at least ", (long long)total);
		free(safe);
	}
	convbi_free(text);
	fflush(dest);
	if (!rc)
		print_commit(ps);
	if (ps->once)
		output_end(ps);
}

void print_attempts_json(FILE *f, const char *json)
{
	cJSON *root = cJSON_Parse(json);
	const cJSON *at;
	cJSON_ArrayForEach(at, cJSON_GetObjectItemCaseSensitive(root, "attempts"))
	{
		const char *stage = jstr(at, "stage"), *ep = jstr(at, "endpoint"), *cls = jstr(at, "class");
		fprintf(f, "convbi: attempt: %s%s%s HTTP %.0f %s, %.0f ms", stage ? stage : "", stage ? " " : "", ep ? ep : "?",
		        jnum(at, "status"), cls ? cls : "?", jnum(at, "elapsed_ms"));
		print_provenance(f, at);
		fputc('\n', f);
	}
	cJSON_Delete(root);
}

/* -v: the answer's model attempts (print_attempts_json). */
static void print_attempts(const convbi_answer *a, FILE *f)
{
	char *json = NULL;
	if (a && convbi_answer_json(a, &json) == CONVBI_OK)
		print_attempts_json(f, json);
	convbi_free(json);
}

void print_answer(const convbi_answer *a, struct print_state *ps)
{
	spinner_clear(&ps->spin);
	FILE *sentence = print_sentence_stream(ps);
	term_text_end(&ps->text, sentence);
	if (ps->streamed)
		fputc('\n', sentence);
	else if (convbi_answer_text(a)[0])
		term_printf(sentence, "%s\n", convbi_answer_text(a));
	ps->streamed = 0;
	fflush(sentence);
	if (ps->show_work || ps->verbose)
		print_work(a, stderr, 0);
	if (ps->verbose)
		print_attempts(a, stderr);
	if (ps->verbose)
		fprintf(stderr, "convbi: answered in %lld ms with %lld tokens for $%.6f\n",
		        (long long)convbi_answer_elapsed_ms(a), (long long)convbi_answer_tokens(a), convbi_answer_cost_usd(a));
	if (convbi_answer_column_count(a) > 0)
		print_rows(a, ps);
	fflush(stdout);
}

void print_failure(const convbi_answer *a, int rc, struct print_state *ps)
{
	spinner_clear(&ps->spin);
	term_text_end(&ps->text, print_sentence_stream(ps));
	if (ps->streamed)
		fputc('\n', print_sentence_stream(ps));
	ps->streamed = 0;
	fflush(stdout);
	if (rc == CONVBI_ECANCELED && ps->confirm_reply != CONFIRM_RUN)
		return; /* the user declined or edits it: no error */
	if ((ps->show_work || ps->verbose) && rc != CONVBI_ECANCELED)
		print_work(a, stderr, 0);
	if (ps->verbose && rc != CONVBI_ECANCELED)
		print_attempts(a, stderr);
	if (rc == CONVBI_ECANCELED)
		cli_error("canceled");
	else
		cli_error("%s", a ? convbi_answer_errmsg(a) : convbi_errstr(rc));
}
