/* repl.h -- what the REPL's files share (repl.c: the loop, questions and
 * SQL in hand; repl_dot.c: the dot-commands).  Private to the CLI. */
#ifndef CONVBI_CLI_REPL_H
#define CONVBI_CLI_REPL_H

#include "cli/cli.h"
#include "cli/print.h"

struct repl {
	convbi_engine *engine;
	convbi_session *session;
	struct print_state ps;
	convbi_answer *last;         /* owned: the last answer (for .why, .edit, .explain) */
	const char *db;              /* the database path shown in the banner */
	const struct cli_opts *opts; /* the command line (--examples for .save) */
	int interactive;             /* stdin is a terminal */
	int failures;                /* questions or queries that failed */
	int chart;                   /* .chart on: draw the answer's chart after its rows */
	int quit;
};

/* Runs a dot-command line (".mode csv"). */
void repl_dot(struct repl *r, char *line);
/* Runs SQL written by the user through the gate and limits, no model. */
void repl_run_sql(struct repl *r, const char *sql);
/* Opens sql in $VISUAL/$EDITOR and runs what was saved. */
void repl_edit_and_run(struct repl *r, const char *sql);
/* The words Tab completes: dot-commands, tables and columns. */
void repl_set_completion(struct repl *r);

#endif
