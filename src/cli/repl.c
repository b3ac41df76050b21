/* repl.c -- the interactive loop: questions, SQL in hand, and dot-commands
 * (repl_dot.c).
 *
 * Each line is a dot-command, SQL (a line whose first word is SELECT or
 * WITH runs through the same read-only gate and limits as the model's SQL,
 * with no model call), or a question for the session.  Ctrl-C while a
 * question runs cancels it at once (the library aborts the HTTP transfer
 * in flight), not the REPL; at the prompt it drops the line being typed.
 * The work is shown on stderr as it happens: retries and fail-overs, then
 * a follow-up's rewritten question and each rejected or failed SQL with
 * its error.  When stdin is not a terminal, lines are read plainly and no
 * prompt is printed, so the REPL can be driven by piping; it then exits 1
 * when a question or a query failed (a mistyped dot-command does not).
 */
#include "cli/repl.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/chart_term.h"
#include "cli/lineedit.h"
#include "cli/userfile.h"

static void keep_last(struct repl *r, convbi_answer *a)
{
	convbi_answer_free(r->last);
	r->last = a;
}

/* SQL in hand has no event callback to say "cancel" through: while it
 * runs, a watcher passes a Ctrl-C on to the session (the statement stops
 * at its next progress check). */
struct sql_watch {
	convbi_session *session;
	atomic_int done;
};

static void *watch_sigint(void *arg)
{
	struct sql_watch *w = arg;
	struct timespec tick = {0, 20 * 1000 * 1000};
	while (!atomic_load(&w->done)) {
		if (cli_interrupted) {
			convbi_session_interrupt(w->session);
			break;
		}
		nanosleep(&tick, NULL);
	}
	return NULL;
}

void repl_run_sql(struct repl *r, const char *sql)
{
	convbi_answer *a = NULL;
	print_begin(&r->ps);
	cli_interrupted = 0;
	struct sql_watch w = {r->session, 0};
	pthread_t watcher;
	int watching = pthread_create(&watcher, NULL, watch_sigint, &w) == 0;
	int rc = convbi_session_run_sql(r->session, sql, &a);
	atomic_store(&w.done, 1);
	if (watching)
		pthread_join(watcher, NULL);
	if (rc == CONVBI_OK) {
		print_rows(a, &r->ps);
	} else if (rc == CONVBI_ECANCELED) {
		cli_error("canceled"); /* Ctrl-C is the user's choice, not a failure */
	} else {
		cli_error("%s", a ? convbi_answer_errmsg(a) : convbi_errstr(rc));
		r->failures++;
	}
	cli_interrupted = 0;
	if (r->ps.once) /* .once is for this result, even one that failed */
		print_redirect(&r->ps, NULL, NULL, 0);
	keep_last(r, a);
}

/* Runs the editor on path through the shell, as git does with $EDITOR. */
static int run_editor(const char *path)
{
	const char *ed = getenv("VISUAL");
	if (!ed || !*ed)
		ed = getenv("EDITOR");
	if (!ed || !*ed)
		ed = "vi";
	size_t n = strlen(ed) + strlen(path) + 8;
	char *cmd = malloc(n);
	if (!cmd)
		return -1;
	snprintf(cmd, n, "%s '%s'", ed, path);
	int st = system(cmd);
	free(cmd);
	return st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) ? -1 : 0;
}

void repl_edit_and_run(struct repl *r, const char *sql)
{
	const char *tmp = getenv("TMPDIR");
	char path[4096];
	snprintf(path, sizeof path, "%s/convbi-edit-XXXXXX.sql", tmp && *tmp ? tmp : "/tmp");
	int fd = mkstemps(path, 4);
	if (fd < 0) {
		cli_error("cannot create a file to edit: %s; set TMPDIR to a folder you can write", strerror(errno));
		r->failures++;
		return;
	}
	FILE *f = fdopen(fd, "w+");
	fprintf(f, "%s\n", sql);
	fclose(f);
	if (run_editor(path)) {
		cli_error("the editor failed or was left with an error; nothing was run (set $VISUAL or $EDITOR)");
		unlink(path);
		r->failures++;
		return;
	}
	f = fopen(path, "r");
	char *text = NULL;
	size_t cap = 0;
	ssize_t len = f ? getdelim(&text, &cap, '\0', f) : -1;
	if (f)
		fclose(f);
	unlink(path);
	while (len > 0 && strchr(" \t\r\n;", text[len - 1]))
		text[--len] = '\0';
	if (len <= 0) {
		printf("The file was left empty; nothing was run.\n");
	} else {
		term_printf(stdout, "SQL: %s\n", text);
		repl_run_sql(r, text);
	}
	free(text);
}

static void ask(struct repl *r, const char *question)
{
	convbi_answer *a = NULL;
	cli_interrupted = 0;
	print_begin(&r->ps);
	int rc = convbi_session_ask(r->session, question, NULL, print_event, &r->ps, &a);
	if (rc == CONVBI_OK) {
		print_answer(a, &r->ps);
		if (r->chart)
			chart_term_print(stdout, a, chart_term_utf8());
	} else {
		print_failure(a, rc, &r->ps);
	}
	if (rc && r->ps.confirm_reply == CONFIRM_SKIP) {
		printf("Not run.\n");
	} else if (rc && r->ps.confirm_reply == CONFIRM_EDIT) {
		char *sql = r->ps.edit_sql;
		r->ps.edit_sql = NULL;
		keep_last(r, a);
		a = NULL;
		repl_edit_and_run(r, sql);
		free(sql);
	} else if (rc && rc != CONVBI_ECANCELED) {
		r->failures++; /* Ctrl-C is the user's choice, not a failure */
	}
	if (a)
		keep_last(r, a);
	if (r->ps.once) /* .once is for this question's result, even without rows */
		print_redirect(&r->ps, NULL, NULL, 0);
	cli_interrupted = 0;
}

/* 1 when line's first word is SELECT or WITH (any case). */
static int is_sql(const char *line)
{
	size_t n = strcspn(line, " \t\n(");
	return (n == 6 && !strncasecmp(line, "select", 6)) || (n == 4 && !strncasecmp(line, "with", 4));
}

/* An --examples file that does not exist yet is where .save will start
 * one: the engine opens without examples. */
static int open_session(struct repl *r, const struct cli_opts *o)
{
	struct cli_opts eo = *o;
	if (eo.examples && *eo.examples && access(eo.examples, F_OK) != 0 && errno == ENOENT)
		eo.examples = NULL;
	int rc = cli_open_engine(&r->engine, &eo);
	if (rc)
		return rc;
	rc = convbi_session_new(&r->session, r->engine);
	if (rc) {
		cli_error("%s", convbi_session_errmsg(r->session));
		return cli_exit_code(rc);
	}
	return EXIT_OK;
}

int cmd_repl(struct cli_opts *o)
{
	struct repl r;
	memset(&r, 0, sizeof r);
	print_init(&r.ps);
	r.interactive = isatty(0);
	r.db = o->db ? o->db : cli_default_db();
	r.opts = o;
	r.ps.opts = o;
	r.ps.db = r.db;
	r.ps.mode = print_mode_of(o->mode);
	r.ps.show_sql = 1;
	r.ps.show_work = 1;
	r.ps.stream = o->stream != 0;
	r.ps.verbose = o->verbose;
	if (r.ps.mode < 0) {
		cli_error("--mode takes table, csv, json, markdown or line");
		r.ps.mode = PRINT_TABLE;
	}
	/* the history file is checked first: nothing of the user's is written over */
	const char *bad = o->history_file && *o->history_file ? userfile_history_what(o->history_file, o, r.db) : NULL;
	if (bad) {
		cli_error(
		        "--history-file %s is %s, not a history file; convbi would overwrite it: give a new file or "
		        "convbi's own history file (--history-file '' keeps none)",
		        o->history_file, bad);
		print_release(&r.ps);
		return EXIT_USAGE;
	}
	int rc = open_session(&r, o);
	if (rc) {
		convbi_session_free(r.session);
		convbi_engine_close(r.engine);
		print_release(&r.ps);
		return rc;
	}
	char *endpoints = NULL;
	if (convbi_engine_endpoints(r.engine, &endpoints) != CONVBI_OK)
		cli_error("%s", convbi_engine_errmsg(r.engine));
	convbi_free(endpoints);
	cli_catch_sigint();
	char hist[4096];
	const char *home = getenv("HOME");
	const char *hf = o->history_file;
	if (!hf && home && r.interactive) {
		snprintf(hist, sizeof hist, "%s/.convbi_history", home);
		hf = hist;
		if ((bad = userfile_history_what(hf, o, r.db))) {
			cli_error(
			        "warning: %s is %s, not a history file; the line history is not kept (move it away, or give "
			        "--history-file)",
			        hf, bad);
			hf = NULL;
		}
	}
	struct line_source *ls = lineedit_open(r.interactive, hf);
	if (r.interactive) {
		repl_set_completion(&r);
		printf("convbi %s on %s. Ask a question, type SQL, or .help\n", convbi_version(),
		       convbi_engine_database(r.engine));
	}
	while (!r.quit && ls) {
		char *line = ls->read(ls, r.interactive ? "convbi> " : "");
		if (!line && cli_interrupted && r.interactive) {
			/* Ctrl-C at the prompt drops the line being typed, as a shell does */
			cli_interrupted = 0;
			fputc('\n', stdout);
			continue;
		}
		if (!line) {
			if (r.interactive)
				fputc('\n', stdout); /* Ctrl-D: the shell's prompt starts on its own line */
			break;
		}
		char *p = line + strspn(line, " \t");
		size_t n = strlen(p);
		while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			p[--n] = '\0';
		if (*p) {
			ls->remember(ls, p);
			if (*p == '.')
				repl_dot(&r, p);
			else if (is_sql(p))
				repl_run_sql(&r, p);
			else
				ask(&r, p);
		}
		free(line);
		cli_interrupted = 0;
	}
	if (ls)
		ls->close(ls);
	lineedit_set_words(NULL, 0);
	convbi_answer_free(r.last);
	convbi_session_free(r.session);
	convbi_engine_close(r.engine);
	print_release(&r.ps);
	return !r.interactive && (r.failures || r.ps.write_failures) ? EXIT_FAIL : EXIT_OK;
}
