/* ask.c -- `convbi ask` and the printing of one answer, shared with the
 * REPL: the SQL (when shown), the answer text (streamed as it arrives
 * when stdout is a terminal or streaming was asked for), then the rows in
 * the chosen mode. */
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/print.h"

volatile sig_atomic_t cli_interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	cli_interrupted = 1;
}

void cli_catch_sigint(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
}

int print_event(const convbi_event *ev, void *payload)
{
	struct print_state *ps = payload;
	if (cli_interrupted)
		return 1;
	switch (ev->kind) {
	case CONVBI_EVENT_SQL:
		if (ps->show_sql)
			fprintf(stdout, "SQL: %.*s\n", (int)ev->len, ev->text);
		break;
	case CONVBI_EVENT_TOKEN:
		if (ps->stream) {
			fwrite(ev->text, 1, ev->len, stdout);
			ps->streamed = 1;
		}
		break;
	case CONVBI_EVENT_RETRY:
		if (ps->streamed && strstr(ev->text, "stream restarted")) {
			fputs("\n[the answer is being restarted on another endpoint]\n", stdout);
			ps->streamed = 0;
		}
		if (ps->verbose)
			fprintf(stderr, "convbi: endpoint `%s`: %.*s\n", ev->endpoint ? ev->endpoint : "?", (int)ev->len, ev->text);
		break;
	case CONVBI_EVENT_STAGE:
		if (ps->verbose)
			fprintf(stderr, "convbi: stage %s\n", ev->stage);
		break;
	}
	fflush(stdout);
	return 0;
}

static const char *const mode_names[] = {"table", "csv", "json", "markdown"};

int print_mode_of(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (!strcmp(name ? name : "table", mode_names[i]))
			return i;
	return -1;
}

void print_rows(const convbi_answer *a, int mode, FILE *f)
{
	char *text = NULL;
	if (convbi_answer_format(a, mode_names[mode], -1, &text) == CONVBI_OK) {
		fputs(text, f);
		if (*text && text[strlen(text) - 1] != '\n')
			fputc('\n', f);
	}
	convbi_free(text);
}

void print_answer(const convbi_answer *a, struct print_state *ps)
{
	if (ps->streamed)
		fputc('\n', stdout);
	else if (convbi_answer_text(a)[0])
		printf("%s\n", convbi_answer_text(a));
	ps->streamed = 0;
	int ncols = convbi_answer_column_count(a);
	if (ncols > 0)
		print_rows(a, ps->mode, stdout);
	if (convbi_answer_truncated(a))
		printf("(rows were cut at the row cap of %lld)\n", (long long)convbi_answer_row_count(a));
	fflush(stdout);
}

int cmd_ask(struct cli_opts *o)
{
	convbi_engine *e = NULL;
	int rc = cli_open_engine(&e, o);
	if (rc)
		return rc;
	convbi_session *s = NULL;
	rc = convbi_session_new(&s, e);
	if (rc) {
		cli_error("%s", convbi_session_errmsg(s));
		convbi_session_free(s);
		convbi_engine_close(e);
		return cli_exit_code(rc);
	}
	cli_catch_sigint();
	struct print_state ps = {PRINT_TABLE, 1, o->stream == 1 || (o->stream == -1 && isatty(1)), 0, o->verbose};
	if (o->json)
		ps.stream = 0, ps.show_sql = 0;
	convbi_answer *a = NULL;
	rc = convbi_session_ask(s, o->args[0], NULL, print_event, &ps, &a);
	if (o->json) {
		char *json = NULL;
		if (a && convbi_answer_json(a, &json) == CONVBI_OK)
			printf("%s\n", json);
		convbi_free(json);
	} else if (rc == CONVBI_OK) {
		print_answer(a, &ps);
	}
	if (rc)
		cli_error("%s", a ? convbi_answer_errmsg(a) : convbi_errstr(rc));
	convbi_answer_free(a);
	convbi_session_free(s);
	convbi_engine_close(e);
	return rc == CONVBI_ENOENDPOINT ? EXIT_USAGE : rc == CONVBI_ECANCELED ? EXIT_INTERRUPTED : rc ? EXIT_FAIL : EXIT_OK;
}
