/* print.h -- printing answers and rows for the CLI (ask, the REPL).
 *
 * One struct print_state per command run says where each part of an
 * answer goes: the streamed or printed sentence, the SQL line, the rows
 * (stdout, the pager, or a file from --out, .output or .once), and the
 * work shown on stderr (a follow-up's rewrite, rejected SQL with its
 * error, retries and fail-overs, the trace with -v).  In "rows only"
 * modes (CSV and JSON, and `ask --format`) stdout carries the rows alone:
 * the sentence and the SQL go to stderr.
 */
#ifndef CONVBI_CLI_PRINT_H
#define CONVBI_CLI_PRINT_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "cli/term.h"
#include "cli/userfile.h"
#include "convbi/convbi.h"

enum print_mode { PRINT_TABLE, PRINT_CSV, PRINT_JSON, PRINT_MARKDOWN, PRINT_LINE };

/* What .confirm's question got: run it, skip it, or edit it first. */
enum confirm_reply { CONFIRM_RUN, CONFIRM_SKIP, CONFIRM_EDIT };

struct print_state {
	int mode;                    /* enum print_mode */
	int rows_only;               /* --format given: the sentence goes to stderr */
	int answer_out;              /* --answer: the sentence on stdout too */
	int show_sql;                /* print the SQL before it runs */
	int stream;                  /* print answer tokens as they arrive */
	int streamed;                /* tokens were printed for the current answer */
	int verbose;                 /* -v: stages with times, the trace after */
	int show_work;               /* the REPL: rewrite, rejected SQL, retries */
	int64_t maxrows;             /* rows shown; < 0 = all */
	int pager;                   /* long results through $PAGER on a terminal */
	int fit;                     /* CONVBI_FIT_* for a table wider than the screen */
	int confirm;                 /* ask "run this? [Y/n/e]" before model SQL runs */
	int confirm_reply;           /* enum confirm_reply of the last question */
	char *edit_sql;              /* owned: the SQL to edit after CONFIRM_EDIT */
	FILE *out;                   /* borrowed from res: rows go here (--out, .output, .once); NULL = stdout */
	char *out_path;              /* owned: its name as given */
	struct resfile res;          /* owned: the file out writes, renamed over out_path on the first rows */
	const struct cli_opts *opts; /* borrowed: the inputs an output may not be (userfile.h) */
	const char *db;              /* borrowed: the database the command opened */
	int once;                    /* close out after the next rows */
	int write_failures;          /* results that could not be written to out (said on stderr) */
	int64_t start_ms;            /* the question started (monotonic) */
	struct term_text text;       /* the streamed sentence, made safe piece by piece */
	struct term term;
	struct spinner spin;
};

void print_init(struct print_state *ps);
void print_release(struct print_state *ps);

extern volatile sig_atomic_t cli_interrupted;
/* Sets cli_interrupted on SIGINT. */
void cli_catch_sigint(void);
/* Installs handler for SIGINT with sigaction (no flags, nothing blocked). */
void cli_on_sigint(void (*handler)(int sig));
/* Event callback; payload is a struct print_state.  Cancels on Ctrl-C. */
int print_event(const convbi_event *ev, void *payload);
/* Resets the per-question state before an ask. */
void print_begin(struct print_state *ps);
/* Prints a finished answer: the sentence, the work, the rows. */
void print_answer(const convbi_answer *a, struct print_state *ps);
/* Prints what a failed answer shows (the work, then the error line). */
void print_failure(const convbi_answer *a, int rc, struct print_state *ps);
/* Prints the answer's rows as ps says (destination, pager, fitting). */
void print_rows(const convbi_answer *a, struct print_state *ps);
/* The stream the sentence goes to. */
FILE *print_sentence_stream(const struct print_state *ps);
/* -1 for an unknown name; NULL means table. */
int print_mode_of(const char *name);
const char *print_mode_name(int mode);
/* Sends rows to path from now on (once: for the next result only); NULL
 * path: back to stdout.  path is refused when it is one of the run's
 * inputs (ps->opts, ps->db; userfile.h), and the previous output is then
 * kept; an existing file is replaced only when the first rows were
 * written whole (print_commit).  flag names the request in messages
 * ("--out", ".output").  Returns 0 or prints why and -1. */
int print_redirect(struct print_state *ps, const char *flag, const char *path, int once);
/* What was written to ps->out is whole: the first time, it replaces the
 * file at out_path.  Returns 0, or -1 after printing why (the file is
 * then left as it was). */
int print_commit(struct print_state *ps);
/* The work an answer shows (follow-up rewrite, each rejected or failed
 * SQL with its error, each failed attempt) as lines on f. */
void print_work(const convbi_answer *a, FILE *f, int full);
/* Appends an attempt's provenance (JSON members deployment_name,
 * spillover_from_deployment, spillover_error, region, apim_request_id) as
 * " [deployment D, spilled over from P after HTTP 429, region R,
 * apim-request-id X]"; nothing when it has none. */
struct cJSON;
void print_provenance(FILE *f, const struct cJSON *at);
/* -v: one line per element of the JSON's "attempts" array: "convbi:
 * attempt: [STAGE ]ENDPOINT HTTP STATUS CLASS, MS ms" and its provenance. */
void print_attempts_json(FILE *f, const char *json);

#endif
