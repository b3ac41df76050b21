/* print.h -- printing answers and rows for the CLI (ask, REPL, batch). */
#ifndef CONVBI_CLI_PRINT_H
#define CONVBI_CLI_PRINT_H

#include <signal.h>
#include <stdio.h>

#include "convbi/convbi.h"

enum print_mode { PRINT_TABLE, PRINT_CSV, PRINT_JSON, PRINT_MARKDOWN };

struct print_state {
	int mode;       /* enum print_mode */
	int show_sql;   /* print the SQL before it runs */
	int stream;     /* print answer tokens as they arrive */
	int streamed;   /* tokens were printed for the current answer */
	int verbose;    /* stages and retries on stderr */
};

extern volatile sig_atomic_t cli_interrupted;
void cli_catch_sigint(void);
/* Event callback; payload is a struct print_state.  Cancels on Ctrl-C. */
int print_event(const convbi_event *ev, void *payload);
void print_answer(const convbi_answer *a, struct print_state *ps);
/* Prints the answer's rows in mode. */
void print_rows(const convbi_answer *a, int mode, FILE *f);
/* -1 for an unknown name. */
int print_mode_of(const char *name);

#endif
