/* repl.c -- the interactive loop: questions, and dot-commands from a table.
 *
 * Each line is either a dot-command (one row of `dot_commands`; `.help` is
 * generated from the table) or a question for the session.  Ctrl-C while
 * a question runs cancels that question (the event callback returns
 * non-zero), not the REPL; at the prompt it drops the line being typed.  When stdin is not
 * a terminal, lines are read plainly and no prompt is printed, so the REPL
 * can be tested by piping.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/chart_term.h"
#include "cli/cli.h"
#include "cli/lineedit.h"
#include "cli/print.h"

struct repl {
	convbi_engine *engine;
	convbi_session *session;
	struct print_state ps;
	int chart;  /* .chart on: draw the answer's chart after its rows */
	int quit;
};

struct dot_command {
	const char *name;
	const char *args;
	const char *help;
	void (*run)(struct repl *r, const char *arg);
};

static void dot_help(struct repl *r, const char *arg);

static void dot_schema(struct repl *r, const char *arg)
{
	char *text = NULL;
	if (convbi_engine_schema(r->engine, arg && *arg ? arg : NULL, &text) == CONVBI_OK)
		fputs(text, stdout);
	else
		cli_error("%s", convbi_engine_errmsg(r->engine));
	convbi_free(text);
}

static void dot_sql(struct repl *r, const char *arg)
{
	if (!strcmp(arg, "on"))
		r->ps.show_sql = 1;
	else if (!strcmp(arg, "off"))
		r->ps.show_sql = 0;
	else
		cli_error(".sql takes on or off");
}

static void dot_chart(struct repl *r, const char *arg)
{
	if (!strcmp(arg, "on"))
		r->chart = 1;
	else if (!strcmp(arg, "off"))
		r->chart = 0;
	else
		cli_error(".chart takes on or off");
}

static void dot_mode(struct repl *r, const char *arg)
{
	int m = print_mode_of(arg);
	if (m < 0)
		cli_error(".mode takes table, csv, json or markdown");
	else
		r->ps.mode = m;
}

static void dot_reset(struct repl *r, const char *arg)
{
	convbi_session_reset(r->session);
	printf("The conversation was forgotten.\n");
}

static void dot_history(struct repl *r, const char *arg)
{
	char *json = NULL;
	if (convbi_session_history(r->session, &json) == CONVBI_OK)
		printf("%s\n", json);
	convbi_free(json);
}

static void dot_endpoints(struct repl *r, const char *arg)
{
	char *json = NULL;
	if (convbi_engine_endpoints(r->engine, &json) == CONVBI_OK)
		printf("%s\n", json);
	else
		cli_error("%s", convbi_engine_errmsg(r->engine));
	convbi_free(json);
}

static void dot_quit(struct repl *r, const char *arg)
{
	r->quit = 1;
}

static const struct dot_command dot_commands[] = {
	{".help", "", "show this help", dot_help},
	{".schema", "[QUESTION]", "show the schema the SQL agent is given", dot_schema},
	{".sql", "on|off", "show the SQL before it runs", dot_sql},
	{".mode", "table|csv|json|markdown", "how rows are printed", dot_mode},
	{".chart", "on|off", "draw the answer's chart in the terminal", dot_chart},
	{".reset", "", "forget the conversation", dot_reset},
	{".history", "", "show the conversation memory", dot_history},
	{".endpoints", "", "show endpoints and their live state", dot_endpoints},
	{".quit", "", "leave (also .exit, Ctrl-D)", dot_quit},
	{".exit", "", NULL, dot_quit},
};

static void dot_help(struct repl *r, const char *arg)
{
	printf("Ask a question in plain words, or use a command:\n");
	for (size_t i = 0; i < sizeof dot_commands / sizeof dot_commands[0]; i++)
		if (dot_commands[i].help)
			printf("  %-10s %-26s %s\n", dot_commands[i].name, dot_commands[i].args, dot_commands[i].help);
}

static void run_dot(struct repl *r, char *line)
{
	char *arg = line + strcspn(line, " \t");
	if (*arg)
		*arg++ = '\0';
	arg += strspn(arg, " \t");
	for (size_t i = 0; i < sizeof dot_commands / sizeof dot_commands[0]; i++)
		if (!strcmp(line, dot_commands[i].name)) {
			dot_commands[i].run(r, arg);
			return;
		}
	cli_error("unknown command `%s`; type .help", line);
}

static void ask(struct repl *r, const char *question)
{
	convbi_answer *a = NULL;
	cli_interrupted = 0;
	int rc = convbi_session_ask(r->session, question, NULL, print_event, &r->ps, &a);
	if (rc == CONVBI_OK) {
		print_answer(a, &r->ps);
		if (r->chart)
			chart_term_print(stdout, a, chart_term_utf8());
	} else {
		if (r->ps.streamed)
			fputc('\n', stdout);
		r->ps.streamed = 0;
		fflush(stdout);
		if (rc == CONVBI_ECANCELED)
			cli_error("canceled");
		else
			cli_error("%s", a ? convbi_answer_errmsg(a) : convbi_errstr(rc));
	}
	convbi_answer_free(a);
	cli_interrupted = 0;
}

int cmd_repl(struct cli_opts *o)
{
	struct repl r;
	memset(&r, 0, sizeof r);
	int rc = cli_open_engine(&r.engine, o);
	if (rc)
		return rc;
	rc = convbi_session_new(&r.session, r.engine);
	if (rc) {
		cli_error("%s", convbi_session_errmsg(r.session));
		convbi_session_free(r.session);
		convbi_engine_close(r.engine);
		return cli_exit_code(rc);
	}
	int interactive = isatty(0);
	r.ps = (struct print_state){print_mode_of(o->mode), 1, o->stream != 0, 0, o->verbose};
	if (r.ps.mode < 0) {
		cli_error("--mode takes table, csv, json or markdown");
		r.ps.mode = 0;
	}
	char *endpoints = NULL;
	if (convbi_engine_endpoints(r.engine, &endpoints) != CONVBI_OK)
		cli_error("%s", convbi_engine_errmsg(r.engine));
	convbi_free(endpoints);
	cli_catch_sigint();
	char hist[4096];
	const char *home = getenv("HOME");
	const char *hf = o->history_file;
	if (!hf && home && interactive) {
		snprintf(hist, sizeof hist, "%s/.convbi_history", home);
		hf = hist;
	}
	struct line_source *ls = lineedit_open(interactive, hf);
	if (interactive)
		printf("convbi %s on %s. Ask a question, or .help\n", convbi_version(), convbi_engine_database(r.engine));
	char *line;
	while (!r.quit && ls) {
		line = ls->read(ls, interactive ? "convbi> " : "");
		if (!line && cli_interrupted && interactive) {
			/* Ctrl-C at the prompt drops the line being typed, as a shell does */
			cli_interrupted = 0;
			fputc('\n', stdout);
			continue;
		}
		if (!line)
			break;
		char *p = line + strspn(line, " \t");
		size_t n = strlen(p);
		while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			p[--n] = '\0';
		if (*p) {
			ls->remember(ls, p);
			if (*p == '.')
				run_dot(&r, p);
			else
				ask(&r, p);
		}
		free(line);
		cli_interrupted = 0;
	}
	if (ls)
		ls->close(ls);
	convbi_session_free(r.session);
	convbi_engine_close(r.engine);
	return EXIT_OK;
}
