/* eval_context.c -- what `convbi eval` gives each database's engine beyond
 * the command line: its examples and its notes.
 *
 * --examples F: an example that is one of this run's questions would hand
 * the model the answer, so each database's engine gets a copy of F without
 * the examples of the questions the run asks on that database (same db and
 * same question text); the rest -- other databases' examples, and this
 * database's other questions -- stay.  The copies live in a private
 * temporary directory removed once the engines have read them.  F itself
 * is first checked as the engine reads it, so that its messages name F and
 * its lines.
 * --notes F: one notes file for every database; with `{db_id}` in it, each
 * database's own (a database whose file is missing gets none).  Without
 * --notes each engine reads DB.notes.md beside its database if present.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/eval.h"
#include "cli/jsonl.h"
#include "util/regfile.h"

/* The copy of the examples for db_id: every line of text except the
 * examples of asked questions on db_id.  0, or -1 after printing why. */
static int write_copy(struct eval_context *cx, const char *text, const struct strmap *asked, const char *db_id, const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		cli_error("cannot write a temporary file `%s`: %s", path, strerror(errno));
		return -1;
	}
	const char *line = text;
	while (*line) {
		const char *eol = strchr(line, '\n');
		size_t n = eol ? (size_t)(eol - line) : strlen(line);
		cJSON *j = cJSON_ParseWithLength(line, n);
		const char *db = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "db"));
		const char *q = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "question"));
		char *key = db && q && !strcmp(db, db_id) ? cli_example_key(db, q) : NULL;
		int v, drop = key && strmap_get(asked, key, &v);
		if (drop)
			cx->left_out++;
		else
			fprintf(f, "%.*s\n", (int)n, line);
		free(key);
		cJSON_Delete(j);
		line += n + (eol ? 1 : 0);
	}
	if (fclose(f)) {
		cli_error("cannot write a temporary file `%s`: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int eval_context_open(struct eval_context *cx, const struct dataset *d, const struct cli_opts *o)
{
	memset(cx, 0, sizeof *cx);
	if (!o->examples)
		return EXIT_OK;
	if (cli_examples_check(o->examples, o))
		return EXIT_USAGE;
	char *text = NULL;
	size_t len = 0;
	mode_t mode = 0;
	int e = regfile_read(o->examples, EXAMPLES_MAX_BYTES, &text, &len, &mode);
	if (e) {
		cli_error("cannot read the examples file `%s`: %s", o->examples, regfile_strerror(e, mode));
		return EXIT_USAGE;
	}
	struct strmap asked = STRMAP_INIT, dbs = STRMAP_INIT;
	int rc = EXIT_OK;
	const char *tmp = getenv("TMPDIR");
	snprintf(cx->dir, sizeof cx->dir, "%s/convbi-eval-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(cx->dir)) {
		cli_error("cannot make a temporary directory `%s`: %s; set TMPDIR", cx->dir, strerror(errno));
		cx->dir[0] = '\0';
		rc = EXIT_FAIL;
	}
	for (int i = 0; !rc && i < d->n; i++) {
		char *key = cli_example_key(d->q[i].db_id, d->q[i].question);
		if (!key || strmap_put(&asked, key, 1, NULL) < 0 || strmap_put(&dbs, d->q[i].db_id, 1, NULL) < 0) {
			cli_error("out of memory");
			rc = EXIT_FAIL;
		}
		free(key);
	}
	for (size_t i = 0; !rc && i < dbs.cap; i++) {
		if (!dbs.e[i].key)
			continue;
		char path[sizeof cx->dir + 300];
		snprintf(path, sizeof path, "%s/%d.jsonl", cx->dir, cx->nfiles);
		dbs.e[i].val = cx->nfiles;
		if (write_copy(cx, text, &asked, dbs.e[i].key, path))
			rc = EXIT_FAIL;
		else
			cx->nfiles++;
	}
	if (!rc) {
		cx->dbs = dbs;
		dbs = (struct strmap)STRMAP_INIT;
	}
	strmap_release(&dbs);
	strmap_release(&asked);
	free(text);
	return rc;
}

int eval_context_opts(const struct eval_context *cx, const struct cli_opts *o, const char *db_id, struct cli_opts *out, char *buf,
                      size_t buflen)
{
	*out = *o;
	int k;
	size_t half = buflen / 2;
	if (o->examples && strmap_get(&cx->dbs, db_id, &k)) {
		int n = snprintf(buf, half, "%s/%d.jsonl", cx->dir, k);
		if (n < 0 || (size_t)n >= half)
			return -1;
		out->examples = buf;
	}
	buf += half;
	buflen -= half;
	const char *slot = o->notes ? strstr(o->notes, "{db_id}") : NULL;
	if (slot) {
		int n = snprintf(buf, buflen, "%.*s%s%s", (int)(slot - o->notes), o->notes, db_id, slot + 7);
		if (n < 0 || (size_t)n >= buflen)
			return -1;
		out->notes = access(buf, F_OK) == 0 ? buf : ""; /* no file: no notes for this database */
	}
	return 0;
}

void eval_context_close(struct eval_context *cx)
{
	for (int i = 0; cx->dir[0] && i < cx->nfiles; i++) {
		char path[sizeof cx->dir + 300];
		snprintf(path, sizeof path, "%s/%d.jsonl", cx->dir, i);
		unlink(path);
	}
	if (cx->dir[0])
		rmdir(cx->dir);
	cx->dir[0] = '\0';
	cx->nfiles = 0;
	strmap_release(&cx->dbs);
}
