/* ask.c -- `convbi ask`: one question, printed as print.c says.
 *
 *   convbi ask [--format table|csv|json|markdown|line] [--answer] [--out F]
 *              [--json] QUESTION...
 *
 * Without --format: the SQL, the answer sentence (streamed on a terminal)
 * and the rows as a table.  With --format, stdout carries the rows only
 * (so `> f.csv` is a CSV file); the sentence goes to stderr, or to stdout
 * before the rows with --answer.  --out F writes the rows to F instead.
 * --json prints the whole answer as one JSON object (to F with --out).
 * QUESTION `-` is read from stdin.  Ctrl-C cancels the question at once
 * (exit 130).
 *
 * --out F is never one of the run's inputs (userfile.h: checked before
 * anything is opened), and an existing F is replaced only once the rows
 * (or the JSON) were written whole: a question that fails, or an answer
 * without rows, leaves F as it was.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/print.h"

int cmd_ask(struct cli_opts *o)
{
	struct print_state ps;
	print_init(&ps);
	if (o->format) {
		ps.mode = print_mode_of(o->format);
		ps.rows_only = 1;
		if (ps.mode < 0) {
			cli_error("--format is `%s`; use table, csv, json, markdown or line", o->format);
			return EXIT_USAGE;
		}
	}
	ps.answer_out = o->answer;
	ps.verbose = o->verbose;
	ps.show_sql = !o->json;
	ps.stream = !o->json && (o->stream == 1 || (o->stream == -1 && isatty(fileno(print_sentence_stream(&ps)))));
	ps.opts = o;
	ps.db = o->db ? o->db : cli_default_db();
	if (o->out && print_redirect(&ps, "--out", o->out, 0)) {
		print_release(&ps);
		return EXIT_USAGE;
	}
	convbi_engine *e = NULL;
	int rc = cli_open_engine(&e, o);
	if (rc) {
		print_release(&ps);
		return rc;
	}
	convbi_session *s = NULL;
	rc = convbi_session_new(&s, e);
	if (rc) {
		cli_error("%s", convbi_session_errmsg(s));
		convbi_session_free(s);
		convbi_engine_close(e);
		print_release(&ps);
		return cli_exit_code(rc);
	}
	cli_catch_sigint();
	convbi_answer *a = NULL;
	print_begin(&ps);
	rc = convbi_session_ask(s, o->question, NULL, print_event, &ps, &a);
	if (o->json) {
		/* with --out F, F holds an answer's JSON; a failure leaves it as it was */
		char *json = NULL;
		int jrc = a ? convbi_answer_json(a, &json) : rc;
		if (rc) {
			if (!jrc && !o->out)
				printf("%s\n", json);
			cli_error("%s", a ? convbi_answer_errmsg(a) : convbi_errstr(rc));
		} else if (jrc) {
			cli_error("%s", convbi_errstr(jrc));
			rc = jrc;
		} else if (!o->out) {
			printf("%s\n", json);
		} else if (fprintf(ps.out, "%s\n", json) < 0 || print_commit(&ps)) {
			rc = CONVBI_EIO;
		}
		convbi_free(json);
	} else if (rc == CONVBI_OK) {
		print_answer(a, &ps);
		if (ps.write_failures)
			rc = CONVBI_EIO; /* print_commit said why */
		else if (o->out && !ps.res.committed) {
			if (convbi_answer_column_count(a) == 0)
				fprintf(stderr, "convbi: the answer has no rows; %s was left as it was\n", o->out);
			else
				rc = CONVBI_EIO; /* print_rows said why */
		}
	} else {
		print_failure(a, rc, &ps);
	}
	convbi_answer_free(a);
	convbi_session_free(s);
	convbi_engine_close(e);
	int written = ps.write_failures;
	print_release(&ps); /* closes --out: a failure there is a failure too */
	if (!rc && ps.write_failures > written)
		rc = CONVBI_EIO;
	return cli_exit_code(rc);
}
