/* config.c -- `convbi serve` / `convbi mcp` options, the databases (one
 * engine each), the tokens file and the constant-time token check.
 *
 * The tokens file has one token per line, optionally followed by the
 * names of the databases it may use (a tenant); no names = every
 * database.  `#` starts a comment.  A token is 16 to 255 printable ASCII
 * characters without spaces.  Tokens are never printed: messages name the
 * line number.
 */
#include <errno.h>
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/datadir.h"
#include "serve/serve.h"
#include "util/limits.h"
#include "util/regfile.h"

#define TOKEN_MIN_BYTES 16

enum {
	OPT_LISTEN = 256,
	OPT_DB,
	OPT_CONFIG,
	OPT_TOKENS,
	OPT_PROMPTS,
	OPT_REVIEW,
	OPT_MAX_REPAIRS,
	OPT_ROW_CAP,
	OPT_SQL_TIMEOUT,
	OPT_MAX_QUESTIONS,
	OPT_MAX_SESSIONS,
	OPT_SESSION_IDLE,
	OPT_QUESTION_TIMEOUT,
	OPT_ALLOW_HOST,
	OPT_ALLOW_ORIGIN,
	OPT_WEB,
	OPT_HELP,
	OPT_SQL_MEMORY,
	OPT_SQL_TEMP,
	OPT_MAX_CONNECTIONS,
	OPT_MAX_CONNECTIONS_PER_IP,
	OPT_REQUEST_TIMEOUT,
	OPT_TODAY,
	OPT_NOTES,
	OPT_EXAMPLES,
	OPT_CANDIDATES,
	OPT_MAX_CONVERSATIONS
};

static const struct option long_opts[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"db", required_argument, NULL, OPT_DB},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"tokens", required_argument, NULL, OPT_TOKENS},
        {"prompts", required_argument, NULL, OPT_PROMPTS},
        {"review", no_argument, NULL, OPT_REVIEW},
        {"max-repairs", required_argument, NULL, OPT_MAX_REPAIRS},
        {"row-cap", required_argument, NULL, OPT_ROW_CAP},
        {"sql-timeout-ms", required_argument, NULL, OPT_SQL_TIMEOUT},
        {"sql-memory-mb", required_argument, NULL, OPT_SQL_MEMORY},
        {"sql-temp-mb", required_argument, NULL, OPT_SQL_TEMP},
        {"max-questions", required_argument, NULL, OPT_MAX_QUESTIONS},
        {"max-sessions", required_argument, NULL, OPT_MAX_SESSIONS},
        {"session-idle-s", required_argument, NULL, OPT_SESSION_IDLE},
        {"question-timeout-ms", required_argument, NULL, OPT_QUESTION_TIMEOUT},
        {"allow-host", required_argument, NULL, OPT_ALLOW_HOST},
        {"allow-origin", required_argument, NULL, OPT_ALLOW_ORIGIN},
        {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
        {"max-connections-per-ip", required_argument, NULL, OPT_MAX_CONNECTIONS_PER_IP},
        {"request-timeout-s", required_argument, NULL, OPT_REQUEST_TIMEOUT},
        {"web", required_argument, NULL, OPT_WEB},
        {"today", required_argument, NULL, OPT_TODAY},
        {"notes", required_argument, NULL, OPT_NOTES},
        {"examples", required_argument, NULL, OPT_EXAMPLES},
        {"candidates", required_argument, NULL, OPT_CANDIDATES},
        {"max-conversations", required_argument, NULL, OPT_MAX_CONVERSATIONS},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
};

/* Flags `convbi mcp` does not take (they are about the HTTP server). */
static const int http_only[] = {
        OPT_LISTEN,       OPT_TOKENS, OPT_MAX_QUESTIONS,   OPT_MAX_SESSIONS,           OPT_SESSION_IDLE,   OPT_ALLOW_HOST,
        OPT_ALLOW_ORIGIN, OPT_WEB,    OPT_MAX_CONNECTIONS, OPT_MAX_CONNECTIONS_PER_IP, OPT_REQUEST_TIMEOUT};

static const char serve_usage[] =
        "usage: convbi serve [--listen HOST:PORT] [--db [NAME=]FILE]... [--config F] [--tokens FILE]\n"
        "                    [--prompts DIR] [--review] [--max-repairs N] [--row-cap N] [--sql-timeout-ms N]\n"
        "                    [--sql-memory-mb N] [--sql-temp-mb N] [--today YYYY-MM-DD] [--notes F] [--examples F]\n"
        "                    [--candidates N]\n"
        "                    [--max-questions N] [--max-sessions N] [--max-conversations N] [--session-idle-s N]\n"
        "                    [--question-timeout-ms N]\n"
        "                    [--allow-host HOST[:PORT]]... [--allow-origin ORIGIN]...\n"
        "                    [--max-connections N] [--max-connections-per-ip N] [--request-timeout-s N]\n"
        "       convbi mcp [--db [NAME=]FILE]... [--config F] [--prompts DIR] [--max-conversations N] [engine options]\n";

static int whole(const char *flag, const char *v, long min, long max, int *out)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (!*v || *end || errno || n < min || n > max) {
		fprintf(stderr, "convbi: %s takes a whole number from %ld to %ld, not `%s`\n", flag, min, max, v);
		return -1;
	}
	*out = (int)n;
	return 0;
}

/* 1 when [p, end) is a port: 1 to 65535 in digits. */
static int is_port(const char *p, const char *end)
{
	long port = 0;
	if (p == end || end - p > 5)
		return 0;
	for (; p < end; p++) {
		if (*p < '0' || *p > '9')
			return 0;
		port = port * 10 + (*p - '0');
	}
	return port >= 1 && port <= 65535;
}

/* 0 when v is a HOST, HOST:PORT or [V6]:PORT (origin 0: for --allow-host)
 * or an origin as a browser sends it, http:// or https:// and such a host,
 * nothing after (origin 1: --allow-origin); else prints one line naming
 * the problem and returns -1.  `null` and `*` are refused: a sandboxed
 * frame or a file: page, which any site can open, sends `Origin: null`,
 * and neither option takes patterns. */
static int check_allowed(const char *v, int origin)
{
	const char *flag = origin ? "--allow-origin" : "--allow-host";
	if (origin && !strcmp(v, "null")) {
		fprintf(stderr,
		        "convbi: --allow-origin null would let every web site call the API (any site can open a sandboxed "
		        "frame or a file: page, which send `Origin: null`); serve the dashboard from an http(s) origin and "
		        "allow that one\n");
		return -1;
	}
	if (strchr(v, '*')) {
		fprintf(stderr, "convbi: %s `%s`: patterns are not taken; give each %s, e.g. %s\n", flag, v,
		        origin ? "origin as scheme://host[:port]" : "host name",
		        origin ? "https://bi.example.com" : "bi.example.com");
		return -1;
	}
	size_t scheme = !origin ? 0 : !strncasecmp(v, "http://", 7) ? 7 : !strncasecmp(v, "https://", 8) ? 8 : 0;
	const char *h = v + scheme, *end = h + strlen(h);
	const char *host_end = h[0] == '[' ? strchr(h, ']') : h + strcspn(h, ":");
	int ok = (!origin || scheme) && host_end && host_end > h + (h[0] == '[') && !strpbrk(h, "/@?#\\ \t") &&
	         (h[0] != '[' || ++host_end) && (*host_end == '\0' || (*host_end == ':' && is_port(host_end + 1, end)));
	if (!ok) {
		fprintf(stderr, "convbi: %s `%s` is not %s; give %s, e.g. %s\n", flag, v, origin ? "an origin" : "a host name",
		        origin ? "scheme://host[:port] as a browser sends it (http or https, no path)" : "HOST or HOST:PORT",
		        origin ? "https://bi.example.com" : "bi.example.com");
		return -1;
	}
	return 0;
}

int serve_parse_args(struct serve_config *c, int argc, char **argv, int mcp)
{
	memset(c, 0, sizeof *c);
	c->listen = "127.0.0.1:8765";
	c->max_repairs = c->row_cap = c->sql_timeout_ms = c->sql_memory_mb = c->sql_temp_mb = c->candidates = -1;
	c->max_questions = 16;
	c->max_sessions = 10000;
	c->max_conversations = 1000;
	c->session_idle_s = 900;
	c->question_timeout_ms = 120000;
	c->max_connections = SERVE_CONNECTIONS_DEFAULT;
	c->max_connections_per_ip = SERVE_CONNECTIONS_PER_IP_DEFAULT;
	c->request_timeout_s = SERVE_REQUEST_TIMEOUT_S_DEFAULT;
	const char *cmd = mcp ? "mcp" : "serve";
	int opt, bad = 0;
	optind = 1;
	opterr = 0;
	while (!bad && (opt = getopt_long(argc, argv, "+", long_opts, NULL)) != -1) {
		for (size_t i = 0; mcp && i < sizeof http_only / sizeof http_only[0]; i++)
			if (opt == http_only[i]) {
				fprintf(stderr,
				        "convbi: `convbi mcp` does not take %s (it speaks over stdin/stdout); use `convbi serve` for HTTP\n",
				        argv[optind - 1]);
				return SERVE_EXIT_USAGE;
			}
		const char *flag = "the option";
		for (size_t i = 0; long_opts[i].name; i++)
			if (long_opts[i].val == opt)
				flag = long_opts[i].name;
		if (optarg && optarg[0] == '-' &&
		    (isalpha((unsigned char)optarg[1]) || (optarg[1] == '-' && isalpha((unsigned char)optarg[2])))) {
			/* `--tokens --listen ...`: the value was forgotten */
			fprintf(stderr,
			        "convbi: --%s takes a value, not the option `%s`: give the value right after it (for a file of "
			        "that name, write ./%s)\n",
			        flag, optarg, optarg);
			return SERVE_EXIT_USAGE;
		}
		if (optarg && !*optarg && opt != OPT_NOTES && opt != OPT_EXAMPLES) { /* '' turns these off */
			fprintf(stderr, "convbi: --%s takes a value, not an empty one\n", flag);
			return SERVE_EXIT_USAGE;
		}
		switch (opt) {
		case OPT_LISTEN: c->listen = optarg; break;
		case OPT_DB:
			if (c->ndb_specs == SERVE_DBS_MAX) {
				fprintf(stderr, "convbi: at most %d --db options\n", SERVE_DBS_MAX);
				return SERVE_EXIT_USAGE;
			}
			c->db_specs[c->ndb_specs++] = optarg;
			break;
		case OPT_CONFIG: c->config_path = optarg; break;
		case OPT_TOKENS: c->tokens_path = optarg; break;
		case OPT_PROMPTS: c->prompts_dir = optarg; break;
		case OPT_WEB: c->web_dir = optarg; break;
		case OPT_TODAY: c->today = optarg; break; /* checked by the engine */
		case OPT_NOTES: c->notes = optarg; break;
		case OPT_EXAMPLES: c->examples = optarg; break;
		case OPT_CANDIDATES: bad = whole("--candidates", optarg, 1, SERVE_CANDIDATES_MAX, &c->candidates); break;
		case OPT_REVIEW: c->review = 1; break;
		case OPT_MAX_REPAIRS: bad = whole("--max-repairs", optarg, 0, 10, &c->max_repairs); break;
		case OPT_ROW_CAP: bad = whole("--row-cap", optarg, 1, 10000000, &c->row_cap); break;
		case OPT_SQL_TIMEOUT: bad = whole("--sql-timeout-ms", optarg, 1, 3600000, &c->sql_timeout_ms); break;
		case OPT_SQL_MEMORY:
			bad = whole("--sql-memory-mb", optarg, 1, CONVBI_SQL_BUDGET_MAX_MB, &c->sql_memory_mb);
			break;
		case OPT_SQL_TEMP: bad = whole("--sql-temp-mb", optarg, 1, CONVBI_SQL_BUDGET_MAX_MB, &c->sql_temp_mb); break;
		case OPT_MAX_QUESTIONS: bad = whole("--max-questions", optarg, 1, 4096, &c->max_questions); break;
		case OPT_MAX_SESSIONS: bad = whole("--max-sessions", optarg, 1, 1000000, &c->max_sessions); break;
		case OPT_MAX_CONVERSATIONS: bad = whole("--max-conversations", optarg, 1, 1000000, &c->max_conversations); break;
		case OPT_SESSION_IDLE: bad = whole("--session-idle-s", optarg, 1, 604800, &c->session_idle_s); break;
		case OPT_QUESTION_TIMEOUT:
			bad = whole("--question-timeout-ms", optarg, 1, 3600000, &c->question_timeout_ms);
			break;
		case OPT_MAX_CONNECTIONS: bad = whole("--max-connections", optarg, 1, 100000, &c->max_connections); break;
		case OPT_MAX_CONNECTIONS_PER_IP:
			bad = whole("--max-connections-per-ip", optarg, 1, 100000, &c->max_connections_per_ip);
			break;
		case OPT_REQUEST_TIMEOUT: bad = whole("--request-timeout-s", optarg, 1, 3600, &c->request_timeout_s); break;
		case OPT_ALLOW_HOST:
		case OPT_ALLOW_ORIGIN: {
			int host = opt == OPT_ALLOW_HOST;
			int *n = host ? &c->nallow_hosts : &c->nallow_origins;
			if (*n == SERVE_ALLOW_MAX) {
				fprintf(stderr, "convbi: at most %d %s options\n", SERVE_ALLOW_MAX,
				        host ? "--allow-host" : "--allow-origin");
				return SERVE_EXIT_USAGE;
			}
			if (check_allowed(optarg, !host))
				return SERVE_EXIT_USAGE;
			(host ? c->allow_hosts : c->allow_origins)[(*n)++] = optarg;
			break;
		}
		case OPT_HELP: fputs(serve_usage, stdout); exit(SERVE_EXIT_OK);
		default:
			fprintf(stderr, "convbi: unknown or incomplete option `%s` for `convbi %s`\n%s", argv[optind - 1], cmd,
			        serve_usage);
			return SERVE_EXIT_USAGE;
		}
	}
	if (bad)
		return SERVE_EXIT_USAGE;
	if (optind < argc) {
		fprintf(stderr, "convbi: `convbi %s` takes no arguments (got `%s`)\n%s", cmd, argv[optind], serve_usage);
		return SERVE_EXIT_USAGE;
	}
	return 0;
}

/* ---- databases ------------------------------------------------------------ */

static int valid_name(const char *s, size_t n)
{
	if (n == 0 || n >= SERVE_NAME_MAX_BYTES)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '_' || s[i] == '-'))
			return 0;
	return 1;
}

static int is_uri(const char *s)
{
	return !strncmp(s, "postgres://", 11) || !strncmp(s, "postgresql://", 13);
}

/* A libpq "key=value key=value" string: its first word is a pair and so
 * is a later one (a single pair needs NAME=). */
static int is_keyvalue(const char *s)
{
	int pairs = 0;
	for (const char *w = s + strspn(s, " \t"); *w; w += strspn(w, " \t")) {
		size_t len = strcspn(w, " \t");
		if (memchr(w, '=', len))
			pairs++;
		else if (!pairs)
			return 0;
		w += len;
	}
	return pairs >= 2;
}

/* The name an unnamed target gets: a file's base name without its
 * extension, a URI's database (the path before any '?'), a key=value
 * string's dbname. */
static void default_name(const char *target, const char **name, size_t *n)
{
	if (is_keyvalue(target)) {
		const char *k = strstr(target, "dbname=");
		while (k && k != target && k[-1] != ' ' && k[-1] != '\t')
			k = strstr(k + 1, "dbname=");
		*name = k ? k + 7 : "";
		*n = k ? strcspn(*name, " \t") : 0;
		return;
	}
	size_t len = is_uri(target) ? strcspn(target, "?") : strlen(target);
	const char *slash = NULL;
	for (const char *p = target; p < target + len; p++)
		if (*p == '/')
			slash = p;
	*name = slash ? slash + 1 : target;
	const char *dot = is_uri(target) ? NULL : memchr(*name, '.', len - (size_t)(*name - target));
	*n = dot ? (size_t)(dot - *name) : len - (size_t)(*name - target);
}

/* "NAME=TARGET" or "TARGET": a SQLite file, a postgres:// or
 * postgresql:// URI, or a libpq key=value string (unnamed, it is the
 * whole spec: "host=h dbname=d" is not the database "host").  A target
 * may hold a password: messages name the database, never echo it. */
static int parse_db(struct serve_db *d, const char *spec)
{
	const char *eq = strchr(spec, '=');
	const char *name = spec, *path = spec;
	size_t n = eq ? (size_t)(eq - spec) : 0;
	int named = eq && !is_uri(spec) && valid_name(spec, n);
	if (named && is_keyvalue(spec) && !is_keyvalue(eq + 1) && !is_uri(eq + 1))
		named = 0; /* "host=h dbname=d": the first pair, not a name */
	int pg = is_uri(spec) || is_keyvalue(spec) || (named && (is_uri(eq + 1) || is_keyvalue(eq + 1)));
	if (named)
		path = eq + 1;
	else
		default_name(spec, &name, &n);
	if (!valid_name(name, n)) {
		if (pg && !named) /* never echo a target: it may hold a password */
			fprintf(stderr,
			        "convbi: --db: the PostgreSQL target's database name is not 1-%d letters, digits, "
			        "'_' or '-'; write --db NAME=TARGET\n",
			        SERVE_NAME_MAX_BYTES - 1);
		else
			fprintf(stderr,
			        "convbi: --db `%.*s`: the name must be 1-%d letters, digits, '_' or '-'; write --db NAME=%s\n",
			        (int)(named ? n : strlen(spec)), spec, SERVE_NAME_MAX_BYTES - 1, pg ? "TARGET" : "FILE");
		return SERVE_EXIT_USAGE;
	}
	memcpy(d->name, name, n);
	d->name[n] = '\0';
	if (!*path) {
		fprintf(stderr, "convbi: --db `%s=` names no database; write --db NAME=FILE or NAME=postgresql://...\n", d->name);
		return SERVE_EXIT_USAGE;
	}
	d->path = strdup(path);
	return d->path ? SERVE_EXIT_OK : SERVE_EXIT_FAIL;
}

/* The exit code for a status, as the CLI's table has it: what the user
 * configured wrong is a usage error (2), the rest a failure (1). */
static int exit_code_of(int status)
{
	switch (status) {
	case CONVBI_OK: return SERVE_EXIT_OK;
	case CONVBI_EINVAL:
	case CONVBI_EMISUSE:
	case CONVBI_ECONFIG:
	case CONVBI_ENOENDPOINT:
	case CONVBI_ETEMPLATE:
	case CONVBI_EDB: return SERVE_EXIT_USAGE;
	default: return SERVE_EXIT_FAIL;
	}
}

static int open_engine(struct serve_db *d, const struct serve_config *c)
{
	convbi_options o = CONVBI_OPTIONS_INIT;
	o.db_path = d->path;
	o.config_path = c->config_path;
	o.prompts_dir = c->prompts_dir;
	o.model_review = c->review;
	o.stream = 1;
	o.question_timeout_ms = c->question_timeout_ms;
	o.today = c->today;
	o.notes_path = c->notes; /* NULL: DB.notes.md beside this database */
	o.examples_path = c->examples;
	if (c->candidates > 0)
		o.candidates = c->candidates;
	if (c->max_repairs >= 0)
		o.max_repairs = c->max_repairs;
	if (c->row_cap > 0)
		o.row_cap = c->row_cap;
	if (c->sql_timeout_ms > 0)
		o.sql_timeout_ms = c->sql_timeout_ms;
	if (c->sql_memory_mb > 0)
		o.sql_memory_mb = c->sql_memory_mb;
	if (c->sql_temp_mb > 0)
		o.sql_temp_mb = c->sql_temp_mb;
	int rc = convbi_engine_open(&d->engine, &o);
	if (rc) {
		/* the message names the file or the server, never a password; only
		 * a database's own failure is put on the database (a bad --config,
		 * --notes or --today is no database's) */
		const char *why = d->engine ? convbi_engine_errmsg(d->engine) : convbi_errstr(rc);
		if (rc == CONVBI_EDB)
			fprintf(stderr, "convbi: database `%s`: %s\n", d->name, why);
		else
			fprintf(stderr, "convbi: %s\n", why);
		return exit_code_of(rc);
	}
	return 0;
}

/* ---- tokens ---------------------------------------------------------------- */

static int load_tokens(struct server *s, const char *path)
{
	int fd;
	mode_t mode = 0;
	int e = regfile_open(path, &fd, &mode); /* a FIFO or device is refused, never waited on */
	FILE *f = e ? NULL : fdopen(fd, "r");
	if (!f) {
		if (!e)
			close(fd);
		fprintf(stderr, "convbi: cannot read the tokens file %s: %s; give a regular file with one token per line\n", path,
		        regfile_strerror(e ? e : errno, mode));
		return SERVE_EXIT_USAGE;
	}
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
		fprintf(stderr, "convbi: warning: the tokens file %s is readable by other users; chmod 600 it\n", path);
	if (fstat(fileno(f), &st) == 0 && (!S_ISREG(st.st_mode) || st.st_size > (off_t)TOKENS_FILE_MAX_BYTES)) {
		fprintf(stderr, "convbi: the tokens file %s is not a regular file of at most %zu bytes\n", path,
		        TOKENS_FILE_MAX_BYTES);
		fclose(f);
		return SERVE_EXIT_USAGE;
	}
	s->tokens = calloc(SERVE_TOKENS_MAX, sizeof *s->tokens);
	char line[4096];
	int lineno = 0, rc = s->tokens ? 0 : -1, oom = !s->tokens;
	int lines[SERVE_TOKENS_MAX]; /* the line of each token, for a repeated one */
	while (!rc && fgets(line, sizeof line, f)) {
		lineno++;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *save = NULL, *tok = strtok_r(line, " \t\r\n", &save);
		if (!tok)
			continue;
		size_t n = strlen(tok);
		int printable = 1;
		for (size_t i = 0; i < n; i++)
			printable &= tok[i] > 0x20 && tok[i] < 0x7f;
		if (n < TOKEN_MIN_BYTES || n >= SERVE_TOKEN_MAX_BYTES || !printable) {
			fprintf(stderr, "convbi: %s line %d: a token must be %d to %d printable characters without spaces\n",
			        path, lineno, TOKEN_MIN_BYTES, SERVE_TOKEN_MAX_BYTES - 1);
			rc = -1;
			break;
		}
		if (s->ntokens == SERVE_TOKENS_MAX) {
			fprintf(stderr, "convbi: %s: more than %d tokens\n", path, SERVE_TOKENS_MAX);
			rc = -1;
			break;
		}
		for (int i = 0; i < s->ntokens; i++)
			if (s->tokens[i].len == n && !memcmp(s->tokens[i].secret, tok, n)) {
				fprintf(stderr,
				        "convbi: %s line %d repeats the token of line %d; give each token once, its databases on "
				        "its one line\n",
				        path, lineno, lines[i]);
				rc = -1;
				break;
			}
		if (rc)
			break;
		lines[s->ntokens] = lineno;
		struct serve_token *t = &s->tokens[s->ntokens++];
		memcpy(t->secret, tok, n + 1);
		t->len = n;
		for (char *name; !rc && (name = strtok_r(NULL, " \t\r\n,", &save));) {
			if (!server_db(s, name)) {
				fprintf(stderr,
				        "convbi: %s line %d: no database is named `%s`; add --db %s=FILE or fix the line\n", path,
				        lineno, name, name);
				rc = -1;
				break;
			}
			size_t old = t->dbs ? strlen(t->dbs) : 0;
			char *dbs = realloc(t->dbs, old + strlen(name) + 3);
			if (!dbs) {
				rc = -1;
				oom = 1;
				break;
			}
			if (!old)
				strcpy(dbs, " ");
			strcat(strcat(dbs, name), " ");
			t->dbs = dbs;
		}
	}
	fclose(f);
	if (!rc && !s->ntokens) {
		fprintf(stderr, "convbi: the tokens file %s holds no token; add one per line\n", path);
		rc = -1;
	}
	return !rc ? SERVE_EXIT_OK : oom ? SERVE_EXIT_FAIL : SERVE_EXIT_USAGE;
}

/* Equal in time that depends only on the stored token's length. */
static int same_secret(const char *stored, size_t stored_len, const char *given, size_t given_len)
{
	unsigned char diff = (unsigned char)(stored_len != given_len);
	for (size_t i = 0; i < stored_len; i++)
		diff |= (unsigned char)(stored[i] ^ (i < given_len ? given[i] : 0));
	return diff == 0;
}

int server_token_find(const struct server *s, const char *presented)
{
	size_t n = strnlen(presented, SERVE_TOKEN_MAX_BYTES);
	int found = -1;
	for (int i = 0; i < s->ntokens; i++) /* no early exit: every token is compared */
		if (same_secret(s->tokens[i].secret, s->tokens[i].len, presented, n) && found < 0)
			found = i;
	return found;
}

int server_token_allows(const struct server *s, int tok, const struct serve_db *db)
{
	if (tok < 0)
		return s->ntokens == 0;
	const char *dbs = s->tokens[tok].dbs;
	if (!dbs)
		return 1;
	char needle[SERVE_NAME_MAX_BYTES + 3];
	snprintf(needle, sizeof needle, " %s ", db->name);
	return strstr(dbs, needle) != NULL;
}

struct serve_db *server_db(struct server *s, const char *name)
{
	if (!name || !*name)
		return s->ndbs ? &s->dbs[0] : NULL;
	for (int i = 0; i < s->ndbs; i++)
		if (!strcmp(s->dbs[i].name, name))
			return &s->dbs[i];
	return NULL;
}

struct serve_db *server_db_for(struct server *s, int tok, const char *name)
{
	if (name && *name)
		return server_db(s, name);
	for (int i = 0; i < s->ndbs; i++)
		if (server_token_allows(s, tok, &s->dbs[i]))
			return &s->dbs[i];
	return server_db(s, NULL);
}

int server_setup(struct server *s, const struct serve_config *c)
{
	s->cfg = *c;
	pthread_mutex_init(&s->runs_lock, NULL);
	const char *sample = datadir_path(DATADIR_SAMPLE_DB);
	int n = c->ndb_specs ? c->ndb_specs : 1;
	for (int i = 0; i < n; i++) {
		struct serve_db *d = &s->dbs[s->ndbs];
		int rc = parse_db(d, c->ndb_specs ? c->db_specs[i] : sample);
		if (rc)
			return rc;
		if (server_db(s, d->name)) {
			fprintf(stderr, "convbi: two databases are named `%s`; write --db NAME=FILE with distinct names\n",
			        d->name);
			free(d->path);
			d->path = NULL;
			return SERVE_EXIT_USAGE;
		}
		s->ndbs++;
		if ((rc = open_engine(d, c)))
			return rc;
	}
	char *eps = NULL; /* is there a model to ask? (one config: every engine's is the same) */
	s->no_model = s->ndbs && convbi_engine_endpoints(s->dbs[0].engine, &eps) == CONVBI_ENOENDPOINT;
	convbi_free(eps);
	return c->tokens_path ? load_tokens(s, c->tokens_path) : SERVE_EXIT_OK;
}

void server_teardown(struct server *s)
{
	for (int i = 0; i < s->ndbs; i++) {
		convbi_engine_close(s->dbs[i].engine);
		free(s->dbs[i].path);
	}
	s->ndbs = 0;
	for (int i = 0; i < s->ntokens; i++) {
		free(s->tokens[i].dbs);
		explicit_bzero(s->tokens[i].secret, sizeof s->tokens[i].secret);
	}
	free(s->tokens);
	s->tokens = NULL;
	s->ntokens = 0;
}
