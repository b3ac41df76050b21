/* cmd_examples.c -- `convbi examples add|import`: verified examples, by hand.
 *
 *   convbi examples add --examples F [--db DB] QUESTION SQL
 *   convbi examples import --examples F RESULT.jsonl
 *
 * An examples file holds one {"question", "sql", "db"} per line; the SQL
 * writer is shown the most similar ones (src/prompt/examples.c).  Nothing
 * is ever added automatically -- answers a person did not check would
 * teach the model their mistakes -- so these are the only ways in, with
 * the REPL's `.save`:
 *   add     runs the SQL through the database's read-only gate first
 *           (convbi_session_run_sql): SQL that does not run is refused;
 *   import  takes the `correct` lines of a `convbi eval --out` file (their
 *           predicted SQL returned the gold result) and nothing else, and
 *           runs each one's SQL through the gate as add does, on the
 *           database its db_id names: --db's (or the sample's) when the
 *           names agree, else the line's db_path (written by eval); a line
 *           whose SQL is refused, whose database is not at hand or whose
 *           db_id is no plain name is skipped with one line and counted (an
 *           edited result file must not turn a DELETE into an example).
 * Both append whole lines (one write each, O_APPEND), skip an example the
 * file already has (the same question on the same database), and check
 * first that the file as it stands loads (an engine opened with it).
 * "db" is the database's name: the file name without its extension
 * (concert_singer.sqlite -> concert_singer, Spider's db_id), or a
 * PostgreSQL database's name.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/jsonl.h"
#include "util/regfile.h"

char *cli_example_key(const char *db, const char *question)
{
	struct buf b = BUF_INIT;
	buf_printf(&b, "%s\n%s", db ? db : "", question ? question : "");
	if (b.err) {
		buf_release(&b);
		return NULL;
	}
	return buf_take(&b);
}

int cli_examples_check(const char *path, const struct cli_opts *o)
{
	convbi_options opts = CONVBI_OPTIONS_INIT; /* no database, no endpoint: only the file is read */
	opts.prompts_dir = o->prompts;
	opts.examples_path = path;
	convbi_engine *eng = NULL;
	int rc = convbi_engine_open(&eng, &opts);
	if (rc)
		cli_error("%s", eng ? convbi_engine_errmsg(eng) : convbi_errstr(rc));
	convbi_engine_close(eng);
	return rc ? -1 : 0;
}

/* The examples in path, as keys; a missing file is empty.  Checks the file
 * the way the engine will read it.  0, or -1 after printing why. */
static int existing_examples(const char *path, const struct cli_opts *o, struct strmap *keys, int *ends_in_newline)
{
	char *text = NULL;
	size_t len = 0;
	*ends_in_newline = 1;
	mode_t mode = 0;
	int e = regfile_read(path, EXAMPLES_MAX_BYTES, &text, &len, &mode);
	if (e == ENOENT)
		return 0;
	if (e) {
		cli_error("cannot read the examples file `%s`: %s; check --examples", path, regfile_strerror(e, mode));
		return -1;
	}
	int rc = 0;
	if (cli_examples_check(path, o)) {
		free(text);
		return -1;
	}
	*ends_in_newline = !len || text[len - 1] == '\n';
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		cJSON *j = cJSON_Parse(line);
		char *key = j ? cli_example_key(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "db")),
		                                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "question")))
		              : NULL;
		if (key && strmap_put(keys, key, 1, NULL) < 0)
			rc = -1;
		free(key);
		cJSON_Delete(j);
	}
	free(text);
	if (rc)
		cli_error("out of memory reading `%s`", path);
	return rc ? -1 : 0;
}

/* One example as a JSON line (caller frees), NULL without memory. */
static char *example_line(const char *question, const char *sql, const char *db)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;
	if (o && cJSON_AddStringToObject(o, "question", question) && cJSON_AddStringToObject(o, "sql", sql) &&
	    cJSON_AddStringToObject(o, "db", db ? db : ""))
		text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

/* Appends lines (whole, one write) to path, after a newline when the file
 * does not end in one.  0, or -1 after printing why. */
static int append_lines(const char *path, const char *lines, size_t len, int ends_in_newline)
{
	struct outfile f;
	int e = outfile_open(&f, path, 0);
	if (!e) {
		if (!ends_in_newline)
			e = outfile_write(&f, "\n", 1);
		if (!e)
			e = outfile_write(&f, lines, len);
		outfile_close(&f);
	}
	if (e)
		cli_error("cannot write the examples file `%s`: %s", path, strerror(e));
	return e ? -1 : 0;
}

char *cli_db_name(const char *db)
{
	const char *s = db ? db : "";
	size_t end = strcspn(s, "?#");
	size_t start = end;
	while (start && s[start - 1] != '/')
		start--;
	if (start == end && !strncmp(s, "postgres", 8)) /* postgresql://host: the server's default database */
		return strdup("postgres");
	const char *dot = memchr(s + start, '.', end - start);
	if (dot && dot > s + start)
		end = (size_t)(dot - s);
	return strndup(s + start, end - start);
}

int cli_examples_append(const char *path, const char *question, const char *sql, const char *db, const struct cli_opts *o)
{
	struct strmap keys = STRMAP_INIT;
	int nl = 1, rc = existing_examples(path, o, &keys, &nl);
	char *key = rc ? NULL : cli_example_key(db, question);
	if (!rc && !key) {
		cli_error("out of memory");
		rc = -1;
	}
	int seen;
	if (!rc && strmap_get(&keys, key, &seen)) {
		rc = 1;
	} else if (!rc) {
		char *line = example_line(question, sql, db);
		struct buf b = BUF_INIT;
		buf_puts(&b, line ? line : "");
		buf_add(&b, "\n", 1);
		rc = !line || b.err ? (cli_error("out of memory"), -1) : append_lines(path, b.data, b.len, nl);
		buf_release(&b);
		cJSON_free(line);
	}
	free(key);
	strmap_release(&keys);
	return rc;
}

/* examples add QUESTION SQL: the SQL must run through the gate first. */
static int examples_add(struct cli_opts *o, const char *question, const char *sql)
{
	convbi_engine *e = NULL;
	convbi_session *s = NULL;
	convbi_answer *a = NULL;
	char *db = NULL;
	struct cli_opts plain = *o;
	plain.examples = NULL; /* the file is checked on its own below */
	int rc = cli_open_engine(&e, &plain);
	if (rc)
		return rc;
	if (convbi_session_new(&s, e)) {
		cli_error("%s", convbi_session_errmsg(s));
		rc = EXIT_USAGE;
		goto done;
	}
	int st = convbi_session_run_sql(s, sql, &a);
	if (st) {
		cli_error("the SQL does not pass on %s: %s; only SQL that runs is kept", convbi_engine_database(e),
		          a ? convbi_answer_errmsg(a) : convbi_errstr(st));
		rc = st == CONVBI_ENOMEM ? EXIT_FAIL : EXIT_USAGE;
		goto done;
	}
	if (!(db = cli_db_name(convbi_engine_database(e)))) {
		cli_error("out of memory");
		rc = EXIT_FAIL;
		goto done;
	}
	int added = cli_examples_append(o->examples, question, sql, db, o);
	if (added < 0)
		rc = EXIT_USAGE;
	else
		printf(added ? "%s already has this question on %s; nothing added\n"
		             : "added to %s (%s; the SQL ran and returned %lld row%s)\n",
		       o->examples, db, (long long)convbi_answer_row_count(a), convbi_answer_row_count(a) == 1 ? "" : "s");
done:
	free(db);
	convbi_answer_free(a);
	convbi_session_free(s);
	convbi_engine_close(e);
	return rc;
}

/* 1 when db_id is a plain database name: no path, nothing hidden. */
static int plain_db_name(const char *db)
{
	if (!*db || *db == '.' || strlen(db) > 255)
		return 0;
	for (const unsigned char *p = (const unsigned char *)db; *p; p++)
		if (*p < 0x20 || *p == 0x7f || *p == '/' || *p == '\\')
			return 0;
	return 1;
}

/* The gate for one database at a time: an engine without examples or a
 * value index, and a session on it, reopened when the database changes. */
struct gate {
	char *path; /* owned: the database the engine has open */
	convbi_engine *e;
	convbi_session *s;
};

static void gate_close(struct gate *g)
{
	convbi_session_free(g->s);
	convbi_engine_close(g->e);
	free(g->path);
	*g = (struct gate){NULL, NULL, NULL};
}

/* Runs sql on the database at db through the gate: 0 when it runs, 1
 * when refused, -1 when the database cannot be opened (why says why). */
static int gate_check(struct gate *g, const struct cli_opts *o, const char *db, const char *sql, char *why, size_t n)
{
	if (!g->path || strcmp(g->path, db)) {
		gate_close(g);
		convbi_options opts;
		cli_engine_options(&opts, o);
		opts.db_path = db;
		opts.examples_path = NULL;
		opts.value_index = 0;
		g->path = strdup(db);
		int rc = g->path ? convbi_engine_open(&g->e, &opts) : CONVBI_ENOMEM;
		if (!rc)
			rc = convbi_session_new(&g->s, g->e);
		if (rc) {
			snprintf(why, n, "%s",
			         g->s   ? convbi_session_errmsg(g->s)
			         : g->e ? convbi_engine_errmsg(g->e)
			                : convbi_errstr(rc));
			gate_close(g);
			return -1;
		}
	}
	convbi_answer *a = NULL;
	int st = convbi_session_run_sql(g->s, sql, &a);
	if (st)
		snprintf(why, n, "the SQL does not pass on %s: %s", db, a ? convbi_answer_errmsg(a) : convbi_errstr(st));
	convbi_answer_free(a);
	return st ? 1 : 0;
}

/* examples import RESULT.jsonl: the `correct` lines of an eval run. */
static int examples_import(struct cli_opts *o, const char *results)
{
	char *text = NULL;
	size_t len = 0;
	mode_t mode = 0;
	int e = regfile_read(results, INPUT_FILE_MAX_BYTES, &text, &len, &mode);
	if (e) {
		cli_error("cannot read `%s`: %s; give the --out file of a `convbi eval` run", results, regfile_strerror(e, mode));
		return EXIT_USAGE;
	}
	struct strmap keys = STRMAP_INIT;
	struct buf out = BUF_INIT;
	struct gate g = {NULL, NULL, NULL};
	const char *own_db = o->db ? o->db : cli_default_db();
	char *own_name = cli_db_name(own_db), why[512];
	long lines = 0, correct = 0, added = 0, known = 0, refused = 0;
	int nl = 1, rc = existing_examples(o->examples, o, &keys, &nl) ? EXIT_USAGE : EXIT_OK;
	if (!rc && !own_name) {
		cli_error("out of memory");
		rc = EXIT_FAIL;
	}
	for (char *line = text, *next; !rc && line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (!line[strspn(line, " \t\r")])
			continue;
		lines++;
		cJSON *j = cJSON_Parse(line);
		const char *verdict = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "verdict"));
		const char *q = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "question"));
		const char *sql = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "pred_sql"));
		const char *db = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "db_id"));
		if (!verdict || !q || !db) {
			cli_error(
			        "%s:%ld: not a `convbi eval --out` line (no verdict, question or db_id); give an eval result file",
			        results, lines);
			rc = EXIT_USAGE;
		} else if (!strcmp(verdict, "correct") && sql && *sql) {
			correct++;
			const char *path = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "db_path"));
			char *path_name = path ? cli_db_name(path) : NULL;
			int gated = -2;
			if (!plain_db_name(db))
				snprintf(why, sizeof why, "db_id `%s` is not a database name", db);
			else if (!strcmp(db, own_name))
				gated = gate_check(&g, o, own_db, sql, why, sizeof why);
			else if (path_name && !strcmp(path_name, db))
				gated = gate_check(&g, o, path, sql, why, sizeof why);
			else
				snprintf(why, sizeof why,
				         "its SQL cannot be checked: no database named `%s` at hand; pass that database with --db",
				         db);
			free(path_name);
			if (gated) {
				refused++;
				cli_error("%s:%ld: skipped: %s", results, lines, why);
			} else {
				char *key = cli_example_key(db, q), *ex = example_line(q, sql, db);
				int put = key ? strmap_put(&keys, key, 1, NULL) : -1;
				if (put == 0 && ex) {
					buf_puts(&out, ex);
					buf_add(&out, "\n", 1);
					added++;
				} else if (put == 1) {
					known++;
				}
				if (put < 0 || !ex || out.err) {
					cli_error("out of memory");
					rc = EXIT_FAIL;
				}
				free(key);
				cJSON_free(ex);
			}
		}
		cJSON_Delete(j);
	}
	if (!rc && added && append_lines(o->examples, out.data, out.len, nl))
		rc = EXIT_USAGE;
	if (!rc)
		printf("imported %ld example%s into %s (%ld correct of %ld results; %ld already there%s)\n", added,
		       added == 1 ? "" : "s", o->examples, correct, lines, known,
		       refused ? (snprintf(why, sizeof why, "; %ld skipped, see above", refused), why) : "");
	gate_close(&g);
	free(own_name);
	buf_release(&out);
	strmap_release(&keys);
	free(text);
	return rc;
}

int cmd_examples(struct cli_opts *o)
{
	const char *sub = o->args[0];
	int add = !strcmp(sub, "add"), import = !strcmp(sub, "import");
	if ((!add && !import) || (add && o->nargs != 3) || (import && o->nargs != 2)) {
		cli_error(
		        "usage: convbi examples add --examples F [--db DB] QUESTION SQL, or convbi examples import "
		        "--examples F RESULT.jsonl");
		return EXIT_USAGE;
	}
	if (!o->examples || !*o->examples) {
		cli_error("give the examples file to write with --examples F (JSON lines; created when missing)");
		return EXIT_USAGE;
	}
	if (add && (!*o->args[1] || !*o->args[2])) {
		cli_error("the question and the SQL must not be empty");
		return EXIT_USAGE;
	}
	return add ? examples_add(o, o->args[1], o->args[2]) : examples_import(o, o->args[1]);
}
