/* eval_data.c -- reading Spider and BIRD as they are distributed.
 *
 * Spider (https://yale-lily.github.io/spider): DIR holds dev.json (an array
 * of {"db_id", "question", "query", "sql": parsed}), dev_gold.sql (one
 * "SQL<TAB>db_id" line per question, aligned with dev.json) and
 * database/<db_id>/<db_id>.sqlite.  The gold SQL is the <stem>_gold.sql line
 * when that file sits next to the question file (its db_id must match, line
 * by line), else the entry's "query".
 * BIRD (https://bird-bench.github.io): the question file (DIR/dev.json) is
 * an array of {"question_id", "db_id", "question", "evidence", "SQL",
 * "difficulty"}; databases are in DIR/dev_databases/<db_id>/<db_id>.sqlite
 * (or DIR/database/...).  The evidence becomes the hint of the question.
 * Without --dataset the kind is read off the first entry: "SQL" or
 * "evidence" means BIRD, "query" Spider.  --db DIR overrides the
 * databases directory for either.
 *
 * Difficulty: BIRD gives it.  Spider's dev.json does not, but it carries
 * each gold query parsed by Spider's own process_sql.py ("sql"), and the
 * official hardness is a pure function of that tree; spider_hardness below
 * is evaluation.py's eval_hardness (count_component1, count_component2,
 * count_others) transcribed, quirks included (count_agg over "having"
 * counts its "and"/"or" connectors, over "where" its negated conditions).
 * An entry without "sql" is "unknown".  With the official file this gives
 * easy 248, medium 446, hard 174, extra 166.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/eval.h"
#include "cli/jsonl.h"
#include "util/regfile.h"

/* ---- Spider's hardness ------------------------------------------------------------- */

#define WHERE_OP_LIKE 9 /* WHERE_OPS.index('like') */

static int len_of(const cJSON *a)
{
	return cJSON_IsArray(a) ? cJSON_GetArraySize(a) : 0;
}

static const cJSON *at(const cJSON *a, int i)
{
	return cJSON_IsArray(a) ? cJSON_GetArrayItem(a, i) : NULL;
}

static const cJSON *get(const cJSON *o, const char *k)
{
	return cJSON_GetObjectItemCaseSensitive(o, k);
}

/* Python's `unit[0] != AGG_OPS.index('none')` for a unit that is a list
 * (its first element is an agg id or a not_op flag) or a string (its
 * first character, never 0). */
static int has_agg(const cJSON *unit)
{
	if (cJSON_IsString(unit))
		return 1;
	const cJSON *v = at(unit, 0);
	return cJSON_IsTrue(v) || (cJSON_IsNumber(v) && v->valuedouble != 0);
}

/* count_agg over list[start::step] */
static int count_agg(const cJSON *list, int start, int step)
{
	int n = 0;
	for (int i = start; i < len_of(list); i += step)
		n += has_agg(at(list, i));
	return n;
}

static int is_null(const cJSON *v)
{
	return !v || cJSON_IsNull(v);
}

static int component1(const cJSON *sql)
{
	const cJSON *from = get(sql, "from"), *where = get(sql, "where"), *having = get(sql, "having");
	const cJSON *conds[3] = {get(from, "conds"), where, having};
	int count = (len_of(where) > 0) + (len_of(get(sql, "groupBy")) > 0) + (len_of(get(sql, "orderBy")) > 0) +
	            !is_null(get(sql, "limit"));
	int units = len_of(get(from, "table_units"));
	if (units > 0)
		count += units - 1;
	for (int k = 0; k < 3; k++) {
		for (int i = 1; i < len_of(conds[k]); i += 2) {
			const cJSON *t = at(conds[k], i);
			count += cJSON_IsString(t) && !strcmp(t->valuestring, "or");
		}
		for (int i = 0; i < len_of(conds[k]); i += 2) {
			const cJSON *op = at(at(conds[k], i), 1);
			count += cJSON_IsNumber(op) && op->valuedouble == WHERE_OP_LIKE;
		}
	}
	return count;
}

static int component2(const cJSON *sql)
{
	const cJSON *conds[3] = {get(get(sql, "from"), "conds"), get(sql, "where"), get(sql, "having")};
	int count = 0;
	for (int k = 0; k < 3; k++)
		for (int i = 0; i < len_of(conds[k]); i += 2) {
			const cJSON *unit = at(conds[k], i);
			count += cJSON_IsObject(at(unit, 3)) + cJSON_IsObject(at(unit, 4));
		}
	static const char *const sets[] = {"intersect", "except", "union"};
	for (int k = 0; k < 3; k++)
		count += cJSON_IsObject(get(sql, sets[k]));
	return count;
}

static int others(const cJSON *sql)
{
	const cJSON *sel = at(get(sql, "select"), 1), *where = get(sql, "where"), *group = get(sql, "groupBy");
	const cJSON *order = get(sql, "orderBy");
	int agg = count_agg(sel, 0, 1) + count_agg(where, 0, 2) + count_agg(group, 0, 1) + count_agg(get(sql, "having"), 0, 1);
	if (len_of(order) > 0) {
		const cJSON *units = at(order, 1);
		for (int i = 0; i < len_of(units); i++)
			for (int k = 1; k <= 2; k++) {
				const cJSON *col = at(at(units, i), k);
				if (len_of(col) > 0)
					agg += has_agg(col);
			}
	}
	return (agg > 1) + (len_of(sel) > 1) + (len_of(where) > 1) + (len_of(group) > 1);
}

static const char *spider_hardness(const cJSON *sql)
{
	if (!cJSON_IsObject(sql))
		return "unknown";
	int c1 = component1(sql), c2 = component2(sql), o = others(sql);
	if (c1 <= 1 && o == 0 && c2 == 0)
		return "easy";
	if ((o <= 2 && c1 <= 1 && c2 == 0) || (c1 <= 2 && o < 2 && c2 == 0))
		return "medium";
	if ((o > 2 && c1 <= 2 && c2 == 0) || (c1 > 2 && c1 <= 3 && o <= 2 && c2 == 0) || (c1 <= 1 && o == 0 && c2 <= 1))
		return "hard";
	return "extra";
}

/* ---- files ----------------------------------------------------------------------------- */

static int is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *path_join(const char *a, const char *b)
{
	struct buf t = BUF_INIT;
	buf_printf(&t, "%s/%s", a, b);
	if (t.err)
		buf_release(&t);
	return t.data;
}

static char *str_dup_of(const cJSON *o, const char *key)
{
	const cJSON *v = get(o, key);
	return cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
}

/* The gold file's lines "SQL<TAB>db_id" (empty lines skipped, as Spider's
 * evaluation does); text is cut in place.  Returns the count or -1. */
static int gold_lines(char *text, char ***sql, char ***db)
{
	int n = 0, cap = 0;
	*sql = *db = NULL;
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		size_t len = strlen(line);
		while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
			line[--len] = '\0';
		if (!len)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			char **a = realloc(*sql, (size_t)cap * sizeof *a);
			if (!a)
				return -1;
			*sql = a;
			if (!(a = realloc(*db, (size_t)cap * sizeof *a)))
				return -1;
			*db = a;
		}
		char *tab = strrchr(line, '\t');
		(*sql)[n] = line;
		(*db)[n] = tab ? (*tab = '\0', tab + 1) : "";
		n++;
	}
	return n;
}

static char *database_path(const char *dbdir, const char *db_id)
{
	struct buf t = BUF_INIT;
	const char *slot = strstr(dbdir, "{db_id}");
	if (slot) /* a PostgreSQL URI template: postgresql://.../{db_id} */
		buf_printf(&t, "%.*s%s%s", (int)(slot - dbdir), dbdir, db_id, slot + 7);
	else
		buf_printf(&t, "%s/%s/%s.sqlite", dbdir, db_id, db_id);
	if (t.err)
		buf_release(&t);
	return t.data;
}

int dataset_load(struct dataset *d, const char *path, const char *kind, const char *only_db, long limit, const char *dbdir)
{
	char *text = NULL, *gold_text = NULL, *gold_path = NULL, *dir = NULL, **gsql = NULL, **gdb = NULL;
	cJSON *root = NULL;
	size_t len;
	int rc = EXIT_USAGE, ngold = -1;

	memset(d, 0, sizeof *d);
	if (kind && strcmp(kind, "spider") && strcmp(kind, "bird")) { /* said before any file is looked at */
		cli_error("--dataset takes spider or bird, not `%s`", kind);
		return EXIT_USAGE;
	}
	d->file = is_dir(path) ? path_join(path, "dev.json") : strdup(path);
	char *copy = d->file ? strdup(d->file) : NULL;
	dir = copy ? strdup(dirname(copy)) : NULL;
	free(copy);
	if (!d->file || !dir) {
		cli_error("out of memory");
		goto done;
	}
	mode_t mode = 0;
	int e = regfile_read(d->file, INPUT_FILE_MAX_BYTES, &text, &len, &mode);
	if (e) {
		cli_error(
		        "cannot read the question file `%s`: %s; give a Spider or BIRD directory (with dev.json) or the "
		        "question file itself",
		        d->file, regfile_strerror(e, mode));
		goto done;
	}
	root = cJSON_ParseWithLength(text, len);
	if (!cJSON_IsArray(root) || !cJSON_IsObject(at(root, 0))) {
		cli_error("`%s` is not a JSON array of question objects (Spider's dev.json or BIRD's dev.json)", d->file);
		goto done;
	}
	const cJSON *first = at(root, 0);
	if (!kind)
		kind = get(first, "SQL") || get(first, "evidence") ? "bird" : get(first, "query") ? "spider" : NULL;
	if (!kind || (strcmp(kind, "spider") && strcmp(kind, "bird"))) {
		cli_error(kind ? "--dataset takes spider or bird, not `%s`"
		               : "cannot tell whether `%s` is Spider or BIRD (no \"query\", \"SQL\" or \"evidence\"); add "
		                 "--dataset spider|bird",
		          kind ? kind : d->file);
		goto done;
	}
	snprintf(d->kind, sizeof d->kind, "%s", kind);
	int bird = !strcmp(kind, "bird");
	if (dbdir)
		d->dbdir = strdup(dbdir);
	else if (bird && (d->dbdir = path_join(dir, "dev_databases")) && !is_dir(d->dbdir))
		free(d->dbdir), d->dbdir = path_join(dir, "database");
	else if (!bird)
		d->dbdir = path_join(dir, "database");
	if (!bird) {
		/* dev.json -> dev_gold.sql */
		const char *base = strrchr(d->file, '/');
		base = base ? base + 1 : d->file;
		size_t stem = strlen(base) > 5 && !strcmp(base + strlen(base) - 5, ".json") ? strlen(base) - 5 : strlen(base);
		struct buf t = BUF_INIT;
		buf_printf(&t, "%s/%.*s_gold.sql", dir, (int)stem, base);
		gold_path = t.data;
		if (gold_path && regfile_read(gold_path, INPUT_FILE_MAX_BYTES, &gold_text, &len, NULL) == 0 &&
		    (ngold = gold_lines(gold_text, &gsql, &gdb)) != cJSON_GetArraySize(root)) {
			cli_error("`%s` has %d lines for %d questions in `%s`; the files are not aligned", gold_path, ngold,
			          cJSON_GetArraySize(root), d->file);
			goto done;
		}
	}
	d->total = cJSON_GetArraySize(root);
	d->q = calloc((size_t)d->total, sizeof *d->q);
	if (!d->q || !d->dbdir) {
		cli_error("out of memory");
		goto done;
	}
	int i = -1;
	const cJSON *o;
	cJSON_ArrayForEach(o, root)
	{
		i++;
		const cJSON *db_id = get(o, "db_id"), *question = get(o, "question");
		const char *gold_key = bird ? "SQL" : "query";
		if (!cJSON_IsString(db_id) || !cJSON_IsString(question) || (ngold < 0 && !cJSON_IsString(get(o, gold_key)))) {
			cli_error("%s: question %d (0-based) lacks a string `db_id`, `question` or `%s`; fix the file", d->file,
			          i, gold_key);
			goto done;
		}
		if (ngold >= 0 && strcmp(gdb[i], db_id->valuestring)) {
			cli_error("%s: line %d is for database `%s` but question %d of %s is for `%s`; the files are not aligned",
			          gold_path, i + 1, gdb[i], i, d->file, db_id->valuestring);
			goto done;
		}
		if (only_db && strcmp(only_db, db_id->valuestring))
			continue;
		if (limit >= 0 && d->n >= limit)
			continue;
		struct eq *q = &d->q[d->n++];
		q->index = i;
		q->id = bird && get(o, "question_id") ? json_key_text(get(o, "question_id"), &q->id_num) : NULL;
		q->db_id = strdup(db_id->valuestring);
		q->question = strdup(question->valuestring);
		q->evidence = bird ? str_dup_of(o, "evidence") : NULL;
		q->gold = ngold >= 0 ? strdup(gsql[i]) : str_dup_of(o, gold_key);
		q->difficulty = bird ? str_dup_of(o, "difficulty") : strdup(spider_hardness(get(o, "sql")));
		if (!q->difficulty)
			q->difficulty = strdup("unknown");
		q->db_path = database_path(d->dbdir, db_id->valuestring);
		if (!q->db_id || !q->question || !q->gold || !q->difficulty || !q->db_path) {
			cli_error("out of memory");
			goto done;
		}
	}
	if (d->n == 0) {
		if (only_db)
			cli_error("no question of `%s` is for database `%s`; check --only-db (e.g. `%s`)", d->file, only_db,
			          cJSON_GetStringValue(get(first, "db_id")));
		else
			cli_error("no question to evaluate (--limit 0?)");
		goto done;
	}
	rc = EXIT_OK;
done:
	cJSON_Delete(root);
	free(text);
	free(gold_text);
	free(gold_path);
	free(gsql);
	free(gdb);
	free(dir);
	if (rc)
		dataset_release(d);
	return rc;
}

void dataset_release(struct dataset *d)
{
	for (int i = 0; i < d->n; i++) {
		struct eq *q = &d->q[i];
		free(q->id);
		free(q->db_id);
		free(q->question);
		free(q->evidence);
		free(q->gold);
		free(q->difficulty);
		free(q->db_path);
		free(q->pred);
		free(q->error);
	}
	free(d->q);
	free(d->file);
	free(d->dbdir);
	memset(d, 0, sizeof *d);
}
