/* repl_dot.c -- the REPL's dot-commands, one row each of `dot_commands`
 * {name, args, help, handler}; `.help` and Tab completion are generated
 * from the table.  Tables of JSON the library hands over (.history,
 * .endpoints, .tables) are printed as aligned text.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/lineedit.h"
#include "cli/repl.h"

struct dot_command {
	const char *name;
	const char *args;
	const char *help;
	void (*run)(struct repl *r, const char *arg);
};

static void dot_help(struct repl *r, const char *arg);

/* A dot-command's error: one line; unlike a failed question it does not
 * change the piped REPL's exit status. */
static void failed(struct repl *r, const char *msg)
{
	(void)r;
	cli_error("%s", msg);
}

/* "on" -> 1, "off" -> 0, else -1 after saying so. */
static int on_off(struct repl *r, const char *cmd, const char *arg)
{
	if (!strcmp(arg, "on"))
		return 1;
	if (!strcmp(arg, "off"))
		return 0;
	cli_error("%s takes on or off", cmd);
	return -1;
}

static void dot_schema(struct repl *r, const char *arg)
{
	char *text = NULL;
	if (convbi_engine_schema(r->engine, *arg ? arg : NULL, &text) == CONVBI_OK)
		term_put(stdout, text, strlen(text));
	else
		failed(r, convbi_engine_errmsg(r->engine));
	convbi_free(text);
}

static void dot_sql(struct repl *r, const char *arg)
{
	if (!*arg)
		printf("SQL is %s before it runs (.sql on|off; .sql QUERY runs a query)\n",
		       r->ps.show_sql ? "shown" : "not shown");
	else if (!strcmp(arg, "on") || !strcmp(arg, "off"))
		r->ps.show_sql = !strcmp(arg, "on");
	else
		repl_run_sql(r, arg);
}

static void dot_chart(struct repl *r, const char *arg)
{
	int v = *arg ? on_off(r, ".chart", arg) : -1;
	if (!*arg)
		printf("charts are %s (.chart on|off)\n", r->chart ? "on" : "off");
	else if (v >= 0)
		r->chart = v;
}

static void dot_mode(struct repl *r, const char *arg)
{
	if (!*arg) {
		printf("%s\n", print_mode_name(r->ps.mode));
		return;
	}
	int m = print_mode_of(arg);
	if (m < 0)
		failed(r, ".mode takes table, csv, json, markdown or line");
	else
		r->ps.mode = m;
}

static void dot_reset(struct repl *r, const char *arg)
{
	convbi_session_reset(r->session);
	printf("The conversation was forgotten.\n");
}

/* Prints s cut to at most max characters ("…" when cut), padded to max
 * when pad; newlines and tabs become spaces, other control characters
 * are made visible (term_put). */
static void put_cut(const char *s, int max, int pad)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	int total = 0, chars = 0;
	for (const unsigned char *q = p; *q; q++)
		total += (*q & 0xC0) != 0x80;
	int keep = total > max ? max - 1 : total;
	while (*p && chars < keep) {
		size_t n = 1;
		while (p[n] && (p[n] & 0xC0) == 0x80)
			n++; /* one character: its lead byte and what continues it */
		if (*p == '\n' || *p == '\t' || *p == '\r')
			fputc(' ', stdout);
		else
			term_put(stdout, (const char *)p, n);
		p += n;
		chars++;
	}
	if (total > max) {
		fputs("…", stdout);
		chars++;
	}
	while (pad && chars++ < max)
		fputc(' ', stdout);
}

static const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void dot_history(struct repl *r, const char *arg)
{
	char *json = NULL;
	if (convbi_session_history(r->session, &json) != CONVBI_OK) {
		failed(r, convbi_session_errmsg(r->session));
		return;
	}
	cJSON *arr = cJSON_Parse(json);
	convbi_free(json);
	if (!cJSON_GetArraySize(arr))
		printf("The conversation is empty.\n");
	else
		printf("%-3s %-34s %-40s %s\n", "#", "QUESTION", "SQL", "ANSWER");
	int i = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, arr)
	{
		printf("%-3d ", ++i);
		put_cut(jstr(e, "question"), 34, 1);
		fputc(' ', stdout);
		put_cut(jstr(e, "sql") ? jstr(e, "sql") : "-", 40, 1);
		fputc(' ', stdout);
		put_cut(jstr(e, "answer") ? jstr(e, "answer") : "-", 60, 0);
		fputc('\n', stdout);
	}
	cJSON_Delete(arr);
}

static void dot_endpoints(struct repl *r, const char *arg)
{
	char *json = NULL;
	if (convbi_engine_endpoints(r->engine, &json) == CONVBI_OK)
		print_endpoints(json, stdout);
	else
		failed(r, convbi_engine_errmsg(r->engine));
	convbi_free(json);
}

static void dot_tables(struct repl *r, const char *arg)
{
	char *json = NULL;
	if (convbi_engine_tables(r->engine, &json) != CONVBI_OK) {
		failed(r, convbi_engine_errmsg(r->engine));
		return;
	}
	cJSON *arr = cJSON_Parse(json);
	convbi_free(json);
	const cJSON *t;
	int w = 4;
	cJSON_ArrayForEach(t, arr)
	{
		int n = (int)strlen(jstr(t, "name") ? jstr(t, "name") : "");
		if (n > w)
			w = n;
	}
	printf("%-*s %10s  %s\n", w, "NAME", "ROWS", "COLUMNS");
	cJSON_ArrayForEach(t, arr)
	{
		const cJSON *rows = cJSON_GetObjectItemCaseSensitive(t, "rows"), *c;
		char count[32] = "view";
		if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "view")))
			snprintf(count, sizeof count, "%.0f", rows && rows->valuedouble >= 0 ? rows->valuedouble : 0);
		term_printf(stdout, "%-*s %10s  ", w, jstr(t, "name"), count);
		int first = 1;
		cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(t, "columns"))
		{
			term_printf(stdout, "%s%s", first ? "" : ", ", jstr(c, "name"));
			first = 0;
		}
		fputc('\n', stdout);
	}
	cJSON_Delete(arr);
}

static void dot_output(struct repl *r, const char *arg)
{
	print_redirect(&r->ps, ".output", *arg ? arg : NULL, 0);
}

static void dot_once(struct repl *r, const char *arg)
{
	if (!*arg)
		failed(r, ".once takes a file name: the next result's rows go there");
	else
		print_redirect(&r->ps, ".once", arg, 1);
}

static void dot_pager(struct repl *r, const char *arg)
{
	int v = *arg ? on_off(r, ".pager", arg) : -1;
	if (!*arg)
		printf("the pager is %s (.pager on|off; $PAGER, default less -FRX)\n", r->ps.pager ? "on" : "off");
	else if (v >= 0)
		r->ps.pager = v;
}

static void dot_maxrows(struct repl *r, const char *arg)
{
	char *end;
	long n = strtol(arg, &end, 10);
	if (!*arg)
		printf("%lld\n", (long long)(r->ps.maxrows < 0 ? 0 : r->ps.maxrows));
	else if (*end || n < 0)
		failed(r, ".maxrows takes a number of rows (0 = all)");
	else
		r->ps.maxrows = n == 0 ? -1 : n;
}

static void dot_fit(struct repl *r, const char *arg)
{
	static const char *const names[] = {"off", "auto", "cut"};
	for (int i = 0; i < 3; i++)
		if (!strcmp(arg, names[i])) {
			r->ps.fit = i;
			return;
		}
	if (*arg)
		failed(r, ".fit takes auto (a table wider than the screen is shown as .mode line), cut or off");
	else
		printf("%s\n", names[r->ps.fit]);
}

static void dot_confirm(struct repl *r, const char *arg)
{
	int v = *arg ? on_off(r, ".confirm", arg) : -1;
	if (!*arg)
		printf("confirm is %s\n", r->ps.confirm ? "on" : "off");
	else if (v >= 0)
		r->ps.confirm = v;
}

/* The last SQL: the one that ran, else the last candidate (NULL if none). */
static const char *last_sql(struct repl *r)
{
	if (!r->last)
		return NULL;
	const char *sql = convbi_answer_sql(r->last);
	return sql && *sql ? sql : NULL;
}

static void dot_edit(struct repl *r, const char *arg)
{
	const char *sql = *arg ? arg : last_sql(r);
	if (!sql) {
		failed(r, "there is no SQL to edit yet; ask a question first, or give the SQL: .edit SELECT ...");
		return;
	}
	char *copy = strdup(sql);
	if (copy)
		repl_edit_and_run(r, copy);
	free(copy);
}

static void dot_why(struct repl *r, const char *arg)
{
	if (!r->last)
		failed(r, "nothing was asked yet; .why shows the last question's trace");
	else
		print_work(r->last, stdout, 1);
}

static void dot_explain(struct repl *r, const char *arg)
{
	const char *sql = *arg ? arg : last_sql(r);
	if (!sql) {
		failed(r, "there is no SQL to explain yet; ask a question first, or give the SQL: .explain SELECT ...");
		return;
	}
	char *text = NULL;
	print_begin(&r->ps);
	int rc = convbi_session_explain_sql(r->session, sql, print_event, &r->ps, &text);
	spinner_clear(&r->ps.spin);
	if (rc == CONVBI_OK)
		term_printf(stdout, "%s\n", text);
	else
		failed(r, rc == CONVBI_ECANCELED ? "canceled" : convbi_session_errmsg(r->session));
	convbi_free(text);
}

/* .save [FILE]: the last question (as it stands alone) and its SQL, to
 * the examples file.  Only an answered question is saved: the person at
 * the REPL has seen its rows. */
static void dot_save(struct repl *r, const char *arg)
{
	const char *path = *arg ? arg : r->opts->examples;
	if (!path || !*path) {
		failed(r, "give the examples file: .save FILE, or start the REPL with --examples FILE");
		return;
	}
	const char *intent = r->last ? convbi_answer_intent(r->last) : "";
	if (!r->last || !last_sql(r) || convbi_answer_status(r->last) || !intent || !*intent) {
		failed(r, "there is no answered question to save yet; ask one, check its rows, then .save");
		return;
	}
	char *json = NULL, *db = NULL;
	cJSON *root = NULL;
	if (convbi_answer_json(r->last, &json) == CONVBI_OK)
		root = cJSON_Parse(json);
	const char *q = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "standalone_question"));
	if (!q || !*q)
		q = convbi_answer_question(r->last);
	if (!(db = cli_db_name(convbi_engine_database(r->engine))))
		failed(r, "out of memory");
	int rc = db ? cli_examples_append(path, q, last_sql(r), db, r->opts) : -1;
	if (rc >= 0)
		term_printf(stdout, rc ? "%s already has this question\n" : "saved to %s: %s\n", path, q);
	free(db);
	cJSON_Delete(root);
	convbi_free(json);
}

static void dot_quit(struct repl *r, const char *arg)
{
	r->quit = 1;
}

static const struct dot_command dot_commands[] = {
        {".help", "", "show this help", dot_help},
        {".tables", "", "list the tables, their row counts and columns", dot_tables},
        {".schema", "[QUESTION]", "show the schema the SQL agent is given", dot_schema},
        {".sql", "on|off|QUERY", "show the SQL before it runs; or run QUERY (no model)", dot_sql},
        {".edit", "[SQL]", "edit the last SQL in $VISUAL/$EDITOR, then run it", dot_edit},
        {".explain", "[SQL]", "the model explains the last SQL in plain words", dot_explain},
        {".why", "", "the last question's trace: stages, SQL tried, attempts, tokens, time", dot_why},
        {".save", "[FILE]", "keep the last question and its SQL as a verified example (--examples file)", dot_save},
        {".confirm", "on|off", "ask \"run this? [Y/n/e]\" before the model's SQL runs", dot_confirm},
        {".mode", "[table|csv|json|markdown|line]", "how rows are printed (no argument: show it)", dot_mode},
        {".chart", "on|off", "draw the answer's chart in the terminal", dot_chart},
        {".output", "[FILE]", "rows go to FILE from now on; no FILE: back to the screen", dot_output},
        {".once", "FILE", "the next result's rows go to FILE", dot_once},
        {".pager", "on|off", "long results through $PAGER (default less -FRX)", dot_pager},
        {".maxrows", "N", "show at most N rows (0 = all)", dot_maxrows},
        {".fit", "auto|cut|off", "a table wider than the screen: vertical, cut, or as is", dot_fit},
        {".reset", "", "forget the conversation", dot_reset},
        {".history", "", "show the conversation memory", dot_history},
        {".endpoints", "", "show endpoints and their live state", dot_endpoints},
        {".quit", "", "leave (also .exit, Ctrl-D)", dot_quit},
        {".exit", "", NULL, dot_quit},
};
#define NDOT (sizeof dot_commands / sizeof dot_commands[0])

static void dot_help(struct repl *r, const char *arg)
{
	printf("Ask a question in plain words, type SQL (SELECT/WITH runs as is), or use a command:\n");
	for (size_t i = 0; i < NDOT; i++)
		if (dot_commands[i].help)
			printf("  %-10s %-32s %s\n", dot_commands[i].name, dot_commands[i].args, dot_commands[i].help);
	printf("Ctrl-C cancels the running question; Tab completes commands, tables and columns.\n");
}

void repl_dot(struct repl *r, char *line)
{
	char *arg = line + strcspn(line, " \t");
	if (*arg)
		*arg++ = '\0';
	arg += strspn(arg, " \t");
	for (size_t i = 0; i < NDOT; i++)
		if (!strcmp(line, dot_commands[i].name)) {
			dot_commands[i].run(r, arg);
			return;
		}
	cli_error("unknown command `%s`; type .help", line);
}

void repl_set_completion(struct repl *r)
{
	const char **words = calloc(NDOT + 1, sizeof *words);
	int n = 0;
	char *json = NULL;
	cJSON *arr = NULL;
	if (convbi_engine_tables(r->engine, &json) == CONVBI_OK)
		arr = cJSON_Parse(json);
	convbi_free(json);
	int cap = (int)NDOT;
	const cJSON *t, *c;
	cJSON_ArrayForEach(t, arr)
	{
		cap++;
		cap += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(t, "columns"));
	}
	const char **more = words ? realloc(words, (size_t)cap * sizeof *words) : NULL;
	if (!more) {
		free(words);
		cJSON_Delete(arr);
		return;
	}
	words = more;
	for (size_t i = 0; i < NDOT; i++)
		words[n++] = dot_commands[i].name;
	cJSON_ArrayForEach(t, arr)
	{
		words[n++] = jstr(t, "name");
		cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(t, "columns")) words[n++] = jstr(c, "name");
	}
	/* drop repeats (a column name shared by several tables) */
	int k = 0;
	for (int i = 0; i < n; i++) {
		int dup = !words[i];
		for (int j = 0; j < k && !dup; j++)
			dup = !strcmp(words[j], words[i]);
		if (!dup)
			words[k++] = words[i];
	}
	lineedit_set_words(words, k);
	free(words);
	cJSON_Delete(arr);
}
