/* main.c -- `convbi`: the command table, option parsing and dispatch.
 *
 * The command is the first word that is not an option (or an option's
 * value), so options go before or after it and after the question:
 * `convbi --config F ask how many orders? -v` works.  Options are then
 * parsed with getopt_long over the union of every command's flags; each
 * command row lists the flags it accepts so that a flag given to the
 * wrong command is a usage error naming the fix.  The words of a question
 * are joined with spaces; `-` reads it from stdin.  `convbi COMMAND
 * --help` (or `convbi help COMMAND`) shows one command's usage.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/term.h"
#include "serve/serve.h"

struct command {
	const char *name;
	const char *usage;
	const char *help;
	int (*run)(struct cli_opts *o);
	const char *flags;      /* accepted long flags, space-separated */
	int min_args, max_args; /* max_args < 0: any number of words, joined as one question */
};

static const struct command commands[] = {
        {"repl", "[--db F] [--config F] [--prompts DIR] [--review]", "ask questions interactively (the default)", cmd_repl,
         "db schemas config prompts review max-repairs row-cap sql-timeout-ms sql-memory-mb sql-temp-mb history-file no-stream stream mode verbose today notes examples candidates",
         0, 0},
        {"ask", "[--db F] [--config F] [--format table|csv|json|markdown|line] [--answer] [--out F] [--json] QUESTION|-",
         "answer one question", cmd_ask,
         "db schemas config prompts review max-repairs row-cap sql-timeout-ms sql-memory-mb sql-temp-mb json no-stream stream verbose format answer out today notes examples candidates",
         1, -1},
        {"batch", "[--db F] [--config F] [-j N] [--format jsonl|csv] [--rows DIR] [--out F] [--resume] [--max-cost USD] INPUT",
         "answer a file of questions in parallel", cmd_batch,
         "db schemas config prompts review max-repairs row-cap sql-timeout-ms sql-memory-mb sql-temp-mb jobs format out resume limit verbose rows today notes examples candidates max-cost",
         1, 1},
        {"eval",
         "[--config F] [--dataset spider|bird] [-j N] [--limit N] [--only-db ID] [--out F] [--resume] [--max-cost USD] DIR|FILE",
         "execution accuracy on a Spider or BIRD set", cmd_eval,
         "config prompts review max-repairs row-cap sql-timeout-ms sql-memory-mb sql-temp-mb jobs out limit only-db dataset verbose db schemas today notes examples candidates resume max-cost",
         1, 1},
        {"llm", "[--config F] [--stream] [--json] [--system TEXT] PROMPT|-", "send one chat request through the client", cmd_llm,
         "config stream json system verbose", 1, -1},
        {"endpoints", "[--config F] [--json] [--reset [NAME]]",
         "list endpoints and their live shared state; --reset clears it (of NAME, or of all)", cmd_endpoints, "config json reset",
         0, 1},
        {"schema", "[--db F] [--today D] [--notes F] [--examples F] [QUESTION]", "show exactly what the SQL agent is given",
         cmd_schema, "db schemas config prompts today notes examples", 0, -1},
        {"index", "[--db F] [--rebuild] [--json]", "build the value index of a database ahead of time", cmd_index,
         "db schemas config prompts rebuild json", 0, 0},
        {"examples", "add --examples F [--db F] QUESTION SQL | import --examples F RESULT.jsonl",
         "add verified question/SQL examples: SQL that passes the gate, or an eval run's correct answers", cmd_examples,
         "db schemas config prompts examples", 2, 3},
        {"graph", "[--format mermaid|dot]", "print the workflow graph", cmd_graph, "format", 0, 0},
        {"serve", "[--listen HOST:PORT] [--db [NAME=]FILE]... [--config F] [--tokens FILE] [--help]",
         "HTTP/SSE API, MCP over HTTP and the page", NULL, "", 0, 0},
        {"mcp", "[--db [NAME=]FILE]... [--config F] [--help]", "MCP server on stdin/stdout", NULL, "", 0, 0},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

enum {
	OPT_CONFIG = 256,
	OPT_DB,
	OPT_PROMPTS,
	OPT_SYSTEM,
	OPT_FORMAT,
	OPT_OUT,
	OPT_ONLY_DB,
	OPT_DATASET,
	OPT_JSON,
	OPT_STREAM,
	OPT_NO_STREAM,
	OPT_RESUME,
	OPT_LIMIT,
	OPT_MAX_REPAIRS,
	OPT_ROW_CAP,
	OPT_SQL_TIMEOUT,
	OPT_REVIEW,
	OPT_MODE,
	OPT_HISTORY_FILE,
	OPT_HELP,
	OPT_VERSION,
	OPT_TODAY,
	OPT_NOTES,
	OPT_EXAMPLES,
	OPT_CANDIDATES,
	OPT_REBUILD,
	OPT_SCHEMAS,
	OPT_ANSWER,
	OPT_ROWS,
	OPT_RESET,
	OPT_MAX_COST,
	OPT_SQL_MEMORY,
	OPT_SQL_TEMP
};

static const struct option long_opts[] = {
        {"config", required_argument, NULL, OPT_CONFIG},
        {"db", required_argument, NULL, OPT_DB},
        {"schemas", required_argument, NULL, OPT_SCHEMAS},
        {"prompts", required_argument, NULL, OPT_PROMPTS},
        {"system", required_argument, NULL, OPT_SYSTEM},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"out", required_argument, NULL, OPT_OUT},
        {"only-db", required_argument, NULL, OPT_ONLY_DB},
        {"dataset", required_argument, NULL, OPT_DATASET},
        {"json", no_argument, NULL, OPT_JSON},
        {"stream", no_argument, NULL, OPT_STREAM},
        {"no-stream", no_argument, NULL, OPT_NO_STREAM},
        {"resume", no_argument, NULL, OPT_RESUME},
        {"limit", required_argument, NULL, OPT_LIMIT},
        {"max-repairs", required_argument, NULL, OPT_MAX_REPAIRS},
        {"row-cap", required_argument, NULL, OPT_ROW_CAP},
        {"sql-timeout-ms", required_argument, NULL, OPT_SQL_TIMEOUT},
        {"review", no_argument, NULL, OPT_REVIEW},
        {"mode", required_argument, NULL, OPT_MODE},
        {"history-file", required_argument, NULL, OPT_HISTORY_FILE},
        {"jobs", required_argument, NULL, 'j'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, OPT_HELP},
        {"answer", no_argument, NULL, OPT_ANSWER},
        {"rows", required_argument, NULL, OPT_ROWS},
        {"version", no_argument, NULL, OPT_VERSION},
        {"today", required_argument, NULL, OPT_TODAY},
        {"notes", required_argument, NULL, OPT_NOTES},
        {"examples", required_argument, NULL, OPT_EXAMPLES},
        {"candidates", required_argument, NULL, OPT_CANDIDATES},
        {"rebuild", no_argument, NULL, OPT_REBUILD},
        {"reset", no_argument, NULL, OPT_RESET},
        {"max-cost", required_argument, NULL, OPT_MAX_COST},
        {"sql-memory-mb", required_argument, NULL, OPT_SQL_MEMORY},
        {"sql-temp-mb", required_argument, NULL, OPT_SQL_TEMP},
        {NULL, 0, NULL, 0},
};

/* Messages quote the model's SQL, the database's names and remote error
 * text: they go through the terminal sanitizer (term.h). */
void cli_error(const char *fmt, ...)
{
	va_list ap;
	fputs("convbi: ", stderr);
	va_start(ap, fmt);
	term_vprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* The options' help; name is the long flag the command rows list. */
static const struct {
	const char *name, *flag, *help;
} option_help[] = {
        {"config", "--config F", "endpoint configuration (JSON); else $CONVBI_CONFIG or AZURE_OPENAI_*_i"},
        {"db", "--db F",
         "the database: a SQLite file, a postgresql:// URI or a libpq \"key=value\" string (default: the bundled sample)"},
        {"schemas", "--schemas a,b", "PostgreSQL schemas to use (default: the server's search path)"},
        {"prompts", "--prompts DIR", "prompt templates to use instead of the built-in ones"},
        {"json", "--json", "machine-readable output"},
        {"stream", "--stream / --no-stream", "stream the answer as it is written (default: on a terminal)"},
        {"system", "--system TEXT", "a system message (llm)"},
        {"jobs", "-j, --jobs N", "parallel workers (batch, eval; default 4)"},
        {"format", "--format F",
         "table|csv|json|markdown|line (ask: rows only on stdout), jsonl|csv (batch), mermaid|dot (graph)"},
        {"answer", "--answer", "with ask --format: the answer sentence on stdout too (else on stderr)"},
        {"out", "--out F", "result file (ask: the rows; batch, eval)"},
        {"rows", "--rows DIR", "batch --format csv: each question's rows as DIR/<id>.csv"},
        {"resume", "--resume", "skip what --out already holds and append the rest (batch: answered ids; eval: questions)"},
        {"max-cost", "--max-cost USD", "stop taking questions once this run's have cost USD (batch, eval; resumable)"},
        {"limit", "--limit N, --only-db ID, --dataset spider|bird", "select questions (eval; --limit also batch)"},
        {"max-repairs", "--max-repairs N", "SQL repair attempts (default 3)"},
        {"row-cap", "--row-cap N", "rows kept per result (default 1000; also per batch JSONL line)"},
        {"sql-timeout-ms", "--sql-timeout-ms N", "time limit per SQL statement (default 5000)"},
        {"sql-memory-mb", "--sql-memory-mb N", "memory one SQL statement may take, in MB (default 256)"},
        {"sql-temp-mb", "--sql-temp-mb N", "temporary files of one SQL statement, in MB (default 512)"},
        {"review", "--review", "add the model-side SQL review"},
        {"mode", "--mode table|csv|json|markdown|line", "how the REPL prints rows"},
        {"history-file", "--history-file F", "the REPL's line history (default ~/.convbi_history; '' keeps none)"},
        {"verbose", "-v, --verbose", "stages with times, rewrites, rejected SQL, retries and fail-overs on stderr"},
        {"today", "--today YYYY-MM-DD", "the date the prompts call today (default: the local date)"},
        {"notes", "--notes F", "business notes, Markdown (default: DB.notes.md beside the database)"},
        {"examples", "--examples F",
         "verified question/SQL examples, JSONL {\"question\",\"sql\",\"db\"}: the most similar go into the SQL prompt"},
        {"candidates", "--candidates N", "SQL candidates voted on by their results (default 1)"},
        {"rebuild", "--rebuild", "rebuild the value index even when it is up to date (index)"},
        {"reset", "--reset [NAME]", "clear an endpoint's shared state: cooldowns, breaker, learned rates (endpoints)"},
};

static int accepts(const struct command *cmd, const char *flag);

static void usage(FILE *f, const struct command *only)
{
	if (only) {
		fprintf(f, "usage: convbi %s %s\n\n%s.\n\nOptions:\n", only->name, only->usage, only->help);
		for (size_t i = 0; i < sizeof option_help / sizeof option_help[0]; i++)
			if (accepts(only, option_help[i].name))
				fprintf(f, "  %-32s %s\n", option_help[i].flag, option_help[i].help);
		fprintf(f, "\nOptions may come before or after the command and after the question.\n");
		return;
	}
	fprintf(f, "usage: convbi [COMMAND] [OPTIONS]\n\nCommands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-10s %s\n             convbi %s %s\n", commands[i].name, commands[i].help, commands[i].name,
		        commands[i].usage);
	fprintf(f, "\nOptions:\n");
	for (size_t i = 0; i < sizeof option_help / sizeof option_help[0]; i++)
		fprintf(f, "  %-32s %s\n", option_help[i].flag, option_help[i].help);
	fprintf(f,
	        "\nWith no command, convbi opens the REPL on --db (default: the bundled sample database).\n"
	        "Options may come before or after the command; `convbi COMMAND --help` shows one command.\n"
	        "Endpoints come from --config FILE, $CONVBI_CONFIG, or AZURE_OPENAI_ENDPOINT_0,\n"
	        "AZURE_OPENAI_DEPLOYMENT_NAME_0, AZURE_OPENAI_API_KEY_0 (_1, _2 ...).\n");
}

static int parse_int(const char *flag, const char *v, long min, long max, long *out)
{
	char *end;
	long n = strtol(v, &end, 10);
	if (!*v || *end || n < min || n > max) {
		cli_error("%s takes a whole number from %ld to %ld, not `%s`", flag, min, max, v);
		return -1;
	}
	*out = n;
	return 0;
}

/* A positive amount of US dollars. */
static int parse_usd(const char *flag, const char *v, double *out)
{
	char *end;
	double d = strtod(v, &end);
	if (!*v || *end || !(d > 0) || d > 1e9) {
		cli_error("%s takes a positive amount of US dollars, e.g. 2.50, not `%s`", flag, v);
		return -1;
	}
	*out = d;
	return 0;
}

static const char *flag_name(int c)
{
	if (c == 'j')
		return "jobs";
	if (c == 'v')
		return "verbose";
	for (const struct option *o = long_opts; o->name; o++)
		if (o->val == c)
			return o->name;
	return "?";
}

static int accepts(const struct command *cmd, const char *flag)
{
	size_t n = strlen(flag);
	for (const char *p = cmd->flags; (p = strstr(p, flag)); p += n)
		if ((p == cmd->flags || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return 1;
	return 0;
}

static void log_to_stderr(int level, const char *line, void *payload)
{
	term_printf(stderr, "convbi: %s%s\n", level >= 3 ? "error: " : level == 2 ? "warning: " : "", line);
}

/* Finds the command: the first word that is neither an option nor an
 * option's value; removes it from argv.  NULL when there is none.  *unknown
 * gets the first long option before it that convbi does not know (the word
 * after it may have been meant as its value). */
static const char *take_command(int *argc, char **argv, const char **unknown)
{
	*unknown = NULL;
	for (int i = 1; i < *argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--"))
			return NULL;
		if (a[0] == '-' && a[1] == '-') {
			const char *name = a + 2;
			size_t n = strcspn(name, "=");
			int known = 0;
			for (const struct option *o = long_opts; o->name; o++)
				if (strlen(o->name) == n && !strncmp(o->name, name, n)) {
					known = 1;
					if (o->has_arg == required_argument && !name[n])
						i++;
				}
			if (!known && !*unknown)
				*unknown = a;
			continue;
		}
		if (a[0] == '-' && a[1]) {
			const char *j = strchr(a + 1, 'j');
			if (j && !j[1])
				i++; /* -j N, -vj N */
			continue;
		}
		for (size_t k = 0; k < NCOMMANDS; k++)
			if (!strcmp(a, commands[k].name) || !strcmp(a, "help")) {
				memmove(&argv[i], &argv[i + 1], (size_t)(*argc - i) * sizeof *argv);
				(*argc)--;
				return a;
			}
		return a; /* not a command: the caller names it */
	}
	return NULL;
}

/* Reads the question from stdin for `-` (caller frees); NULL after
 * printing why. */
static char *read_stdin_question(const char *cmd)
{
	size_t cap = 4096, len = 0;
	char *text = malloc(cap);
	while (text) {
		if (len + 1 == cap) {
			if (cap >= CLI_STDIN_MAX_BYTES) {
				cli_error("the %s read from stdin is larger than %d bytes; shorten it", cmd, CLI_STDIN_MAX_BYTES);
				free(text);
				return NULL;
			}
			char *more = realloc(text, cap * 2);
			if (!more)
				break;
			text = more;
			cap *= 2;
		}
		size_t n = fread(text + len, 1, cap - 1 - len, stdin);
		len += n;
		if (n == 0)
			break;
	}
	if (!text) {
		cli_error("out of memory reading stdin");
		return NULL;
	}
	text[len] = '\0';
	while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
		text[--len] = '\0';
	if (!len || memchr(text, '\0', len)) {
		cli_error(!len ? "stdin held no text; pipe the %s in, e.g. echo 'how many orders?' | convbi %s -"
		               : "the %s read from stdin holds a NUL byte; send text (convbi %s -)",
		          cmd, cmd);
		free(text);
		return NULL;
	}
	return text;
}

/* The words of the question joined with spaces (caller frees). */
static char *join_words(char **words, int n)
{
	size_t len = 1;
	for (int i = 0; i < n; i++)
		len += strlen(words[i]) + 1;
	char *s = malloc(len), *p = s;
	for (int i = 0; s && i < n; i++)
		p += sprintf(p, "%s%s", i ? " " : "", words[i]);
	if (s)
		*p = '\0';
	return s;
}

/* A value that is itself an option (`--out --json`: the file name was
 * forgotten, and a file named --json would be written), or an empty one
 * where a name is needed, is refused up front with one line: else the
 * model is paid and the SQL run before the mistake shows.  Returns c, or
 * '?' after saying why. */
static int option_value_checked(int c, const char *value)
{
	const char *flag = flag_name(c);
	if (value[0] == '-' && (isalpha((unsigned char)value[1]) || (value[1] == '-' && isalpha((unsigned char)value[2])))) {
		cli_error(
		        "--%s takes a value, not the option `%s`: give the value right after --%s (for a file of that name, "
		        "write ./%s)",
		        flag, value, flag, value);
		return '?';
	}
	if (!*value && c != OPT_HISTORY_FILE && c != OPT_NOTES && c != OPT_EXAMPLES) { /* '' turns these off */
		cli_error("--%s takes a value, not an empty one", flag);
		return '?';
	}
	return c;
}

/* Output the user never got (a full disk, a closed pipe) is a failure, even
 * of --help or --version: the exit status says so. */
static int stdout_checked(int rc)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		cli_error("writing the standard output failed: %s", strerror(errno ? errno : EIO));
		if (rc == EXIT_OK)
			rc = EXIT_FAIL;
	}
	return rc;
}

int main(int argc, char **argv)
{
	convbi_set_log(log_to_stderr, NULL, 2);
	const struct command *cmd = &commands[0];
	const char *unknown_opt = NULL;
	const char *word = take_command(&argc, argv, &unknown_opt);
	int help_for = 0;
	if (word) {
		cmd = NULL;
		for (size_t i = 0; i < NCOMMANDS; i++)
			if (!strcmp(word, commands[i].name))
				cmd = &commands[i];
		if (!strcmp(word, "help")) {
			help_for = 1;
			cmd = &commands[0];
		} else if (!cmd && unknown_opt) {
			cli_error("unknown option `%s` (before `%s`); run `convbi help` for the options", unknown_opt, word);
			return EXIT_USAGE;
		} else if (!cmd) {
			cli_error("unknown command `%s`; run `convbi help` for the list (a question goes after `ask`)", word);
			return EXIT_USAGE;
		}
		if (!cmd->run) { /* serve and mcp parse their own options (src/serve/) */
			argv[0] = (char *)cmd->name;
			return (!strcmp(cmd->name, "serve") ? serve_main : mcp_main)(argc, argv);
		}
	}
	struct cli_opts o;
	memset(&o, 0, sizeof o);
	o.stream = -1;
	o.jobs = 4;
	o.limit = -1;
	o.max_repairs = -1;
	o.row_cap = -1;
	o.sql_timeout_ms = -1;
	o.sql_memory_mb = -1;
	o.sql_temp_mb = -1;
	o.candidates = -1;
	int c;
	long n;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "j:v", long_opts, NULL)) != -1) {
		if (c == '?' || c == ':') {
			cli_error("unknown or incomplete option `%s`; run `convbi %s --help`", argv[optind - 1],
			          word && cmd ? cmd->name : "help");
			return EXIT_USAGE;
		}
		if (c == OPT_HELP) {
			usage(stdout, word && !help_for ? cmd : NULL);
			return stdout_checked(EXIT_OK);
		}
		if (c == OPT_VERSION) {
			printf("convbi %s\n", convbi_version());
			return stdout_checked(EXIT_OK);
		}
		if (help_for)
			continue;
		if (optarg && (c = option_value_checked(c, optarg)) == '?')
			return EXIT_USAGE;
		if (!accepts(cmd, flag_name(c))) {
			cli_error("`convbi %s` does not take --%s; usage: convbi %s %s", cmd->name, flag_name(c), cmd->name,
			          cmd->usage);
			return EXIT_USAGE;
		}
		switch (c) {
		case OPT_CONFIG: o.config = optarg; break;
		case OPT_DB: o.db = optarg; break;
		case OPT_SCHEMAS: o.schemas = optarg; break;
		case OPT_PROMPTS: o.prompts = optarg; break;
		case OPT_SYSTEM: o.system = optarg; break;
		case OPT_FORMAT: o.format = optarg; break;
		case OPT_OUT: o.out = optarg; break;
		case OPT_ONLY_DB: o.only_db = optarg; break;
		case OPT_DATASET: o.dataset = optarg; break;
		case OPT_MODE: o.mode = optarg; break;
		case OPT_HISTORY_FILE: o.history_file = optarg; break;
		case OPT_ROWS: o.rows_dir = optarg; break;
		case OPT_ANSWER: o.answer = 1; break;
		case OPT_JSON: o.json = 1; break;
		case OPT_RESET: o.reset = 1; break;
		case OPT_STREAM: o.stream = 1; break;
		case OPT_NO_STREAM: o.stream = 0; break;
		case OPT_RESUME: o.resume = 1; break;
		case OPT_REVIEW: o.review = 1; break;
		case OPT_TODAY: o.today = optarg; break;
		case OPT_NOTES: o.notes = optarg; break;
		case OPT_EXAMPLES: o.examples = optarg; break;
		case OPT_REBUILD: o.rebuild = 1; break;
		case OPT_CANDIDATES:
			if (parse_int("--candidates", optarg, 1, 16, &n))
				return EXIT_USAGE;
			o.candidates = (int)n;
			break;
		case 'v': o.verbose = 1; break;
		case 'j':
			if (parse_int("-j", optarg, 1, 256, &n))
				return EXIT_USAGE;
			o.jobs = (int)n;
			break;
		case OPT_LIMIT:
			if (parse_int("--limit", optarg, 0, 100000000, &n))
				return EXIT_USAGE;
			o.limit = n;
			break;
		case OPT_MAX_REPAIRS:
			if (parse_int("--max-repairs", optarg, 0, 10, &n))
				return EXIT_USAGE;
			o.max_repairs = (int)n;
			break;
		case OPT_ROW_CAP:
			if (parse_int("--row-cap", optarg, 1, 10000000, &n))
				return EXIT_USAGE;
			o.row_cap = (int)n;
			break;
		case OPT_MAX_COST:
			if (parse_usd("--max-cost", optarg, &o.max_cost))
				return EXIT_USAGE;
			break;
		case OPT_SQL_TIMEOUT:
			if (parse_int("--sql-timeout-ms", optarg, 1, 3600000, &n))
				return EXIT_USAGE;
			o.sql_timeout_ms = (int)n;
			break;
		case OPT_SQL_MEMORY:
		case OPT_SQL_TEMP:
			if (parse_int(c == OPT_SQL_MEMORY ? "--sql-memory-mb" : "--sql-temp-mb", optarg, 1,
			              CONVBI_SQL_BUDGET_MAX_MB, &n))
				return EXIT_USAGE;
			*(c == OPT_SQL_MEMORY ? &o.sql_memory_mb : &o.sql_temp_mb) = (int)n;
			break;
		}
	}
	o.args = argv + optind;
	o.nargs = argc - optind;
	if (help_for) {
		const struct command *only = NULL;
		for (size_t i = 0; o.nargs && i < NCOMMANDS; i++)
			if (!strcmp(o.args[0], commands[i].name))
				only = &commands[i];
		if (o.nargs && !only) {
			cli_error("no command %s; try convbi help", o.args[0]);
			return EXIT_USAGE;
		}
		usage(stdout, only);
		return stdout_checked(EXIT_OK);
	}
	if (o.nargs < cmd->min_args || (cmd->max_args >= 0 && o.nargs > cmd->max_args)) {
		cli_error("`convbi %s` takes %s; usage: convbi %s %s", cmd->name,
		          cmd->max_args == 0                         ? "no arguments"
		          : cmd->min_args == 1 && cmd->max_args == 1 ? "exactly one argument"
		          : cmd->min_args == 1                       ? "a question"
		          : cmd->min_args > 1                        ? "a sub-command and its arguments"
		                                                     : "at most one argument",
		          cmd->name, cmd->usage);
		return EXIT_USAGE;
	}
	char *question = NULL;
	if (cmd->max_args < 0 && o.nargs) {
		question = o.nargs == 1 && !strcmp(o.args[0], "-") ? read_stdin_question(cmd->name) : join_words(o.args, o.nargs);
		if (!question)
			return EXIT_USAGE;
		o.question = question;
	} else if (o.nargs) {
		o.question = o.args[0];
	}
	int rc = cmd->run(&o);
	free(question);
	return stdout_checked(rc);
}
