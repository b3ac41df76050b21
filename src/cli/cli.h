/* cli.h -- the convbi command line: shared options and command handlers.
 *
 * The CLI is a client of the public API (include/convbi/convbi.h) only.
 * Every sub-command is one row of the table in main.c {name, usage, help,
 * handler}; `convbi help` is generated from it.  The CLI owns stderr and
 * one table of exit codes:
 *   0  success
 *   1  the work failed (a model call, a question, some batch questions)
 *   2  usage or configuration error (bad flag, bad config, no endpoint)
 *   130 interrupted
 */
#ifndef CONVBI_CLI_CLI_H
#define CONVBI_CLI_CLI_H

#include <stdio.h>

#include "convbi/convbi.h"

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define EXIT_INTERRUPTED 130

/* A question or prompt read from stdin (`ask -`, `llm -`) is at most this. */
#define CLI_STDIN_MAX_BYTES (1 << 20)
/* A REPL history file larger than this is not one of convbi's. */
#define CLI_HISTORY_MAX_BYTES ((size_t)16 << 20)
#define CLI_HISTORY_MAX_TEXT "16 MB"

struct cli_opts {
	const char *config;       /* --config */
	const char *db;           /* --db */
	const char *schemas;      /* --schemas (PostgreSQL) */
	const char *prompts;      /* --prompts */
	const char *system;       /* --system */
	const char *format;       /* --format */
	const char *out;          /* --out */
	const char *only_db;      /* --only-db */
	const char *dataset;      /* --dataset spider|bird */
	const char *mode;         /* --mode table|csv|json|markdown */
	const char *history_file; /* --history-file */
	int json;                 /* --json */
	int reset;                /* --reset (endpoints) */
	int stream;               /* --stream / --no-stream: 1, 0, -1 unset */
	int jobs;                 /* -j */
	int resume;               /* --resume */
	long limit;               /* --limit, -1 none */
	int max_repairs;          /* --max-repairs, -1 default */
	int row_cap;              /* --row-cap, -1 default */
	int sql_timeout_ms;       /* --sql-timeout-ms, -1 default */
	int sql_memory_mb;        /* --sql-memory-mb, -1 default */
	int sql_temp_mb;          /* --sql-temp-mb, -1 default */
	int review;               /* --review */
	int verbose;              /* -v */
	int show_sql;             /* --sql (ask) */
	const char *today;        /* --today YYYY-MM-DD */
	const char *notes;        /* --notes FILE */
	const char *examples;     /* --examples FILE */
	int candidates;           /* --candidates N, -1 default */
	int rebuild;              /* --rebuild (index) */
	int answer;               /* --answer (ask --format) */
	const char *rows_dir;     /* --rows DIR (batch --format csv) */
	double max_cost;          /* --max-cost USD (batch, eval), 0 = none */
	const char *question;     /* the words of the question joined, or read
	                           from stdin for `-` (borrowed from main) */
	char **args;              /* positional arguments (borrowed from argv) */
	int nargs;
};

/* Prints "convbi: <msg>" on stderr (one line). */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Fills engine options from the CLI options. */
void cli_engine_options(convbi_options *o, const struct cli_opts *c);
/* Opens the engine or prints the reason; returns an exit code (0 = ok). */
int cli_open_engine(convbi_engine **out, const struct cli_opts *c);
const char *cli_default_db(void);
/* Prints the endpoints JSON (convbi_engine_endpoints) as an aligned table. */
void print_endpoints(const char *json, FILE *f);
/* Exit code for a library status. */
int cli_exit_code(int status);

int cmd_llm(struct cli_opts *o);
int cmd_endpoints(struct cli_opts *o);
int cmd_schema(struct cli_opts *o);
int cmd_graph(struct cli_opts *o);
int cmd_ask(struct cli_opts *o);
int cmd_repl(struct cli_opts *o);
int cmd_batch(struct cli_opts *o);
int cmd_eval(struct cli_opts *o);
int cmd_index(struct cli_opts *o);
int cmd_examples(struct cli_opts *o);

/* The name an example records as its "db": a file's name without its
 * extension, a PostgreSQL database's name (caller frees; NULL without
 * memory). */
char *cli_db_name(const char *db);
/* Appends {"question", "sql", "db"} to the examples file at path (created
 * when missing) unless it has this question on db already; the file must
 * load as the engine reads it.  Returns 0 added, 1 already there, -1 after
 * printing why. */
/* "db\nquestion": what makes two examples the same one (caller frees;
 * NULL without memory). */
char *cli_example_key(const char *db, const char *question);
/* 0 when the examples file at path loads as the engine reads it, else -1
 * after printing the engine's message (FILE:LINE: problem; fix). */
int cli_examples_check(const char *path, const struct cli_opts *o);
int cli_examples_append(const char *path, const char *question, const char *sql, const char *db, const struct cli_opts *o);

#endif
