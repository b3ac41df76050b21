/* context_recall.c -- how much of what the gold SQL needs the SQL writer is shown.
 *
 * For every Spider dev question whose database has data, renders the
 * schema text at the default budget (6000 tokens) twice, side by side:
 *   before  samples only (no ranges, no value index) -- the text as it was;
 *   after   ranges and the values the question names (value index);
 * and reports, for each:
 *   table recall   gold tables whose CREATE line is in the text;
 *   column recall  gold (table, column) pairs whose column is on that line;
 *   value recall   gold string literals (LIKE's % stripped) present in the
 *                  text, case-insensitively;
 *   prompt tokens  of the SQL writer's whole first prompt (prompts/sql.txt
 *                  rendered with the text and the question), estimated as
 *                  bytes / 4 as the schema budget is; median and p95.
 * The gold tables and columns come from SQLite itself: the gold SQL is
 * prepared with an authorizer recording every SQLITE_READ.
 *
 * --merged FILE repeats it on one database merging many Spider databases
 * (tables renamed <db_id>__<table>; build it with
 * tests/bench/make_merged_spider.py), and times a full index build of it.
 *
 * Example selection (src/prompt/examples.c, as the SQL agent chooses): for
 * each question, with the questions of the other databases as the pool
 * (leave one database out), how often the first chosen example, and any of
 * the three, has the gold SQL's skeleton -- chosen by the masked question
 * alone, by the masked question and the skeleton of a perfect draft (the
 * gold SQL itself: an upper bound for the draft step), and at random
 * (seeded, same pool).  Also the prompt tokens with the three examples.
 *
 * Usage: context_recall [--spider DIR] [--merged FILE] [--limit N] [--out FILE] [--misses]
 * (--misses lists every table, column and value an "after" text lacks.)
 * Targets (printed, never an exit status): value recall >= 97 % (Spider dev),
 * >= 90 % (merged), table and column recall 100 %, median prompt tokens
 * +15 % at most, merged index build < 2 s.
 */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sqlite3.h>

#include "convbi/convbi.h"
#include "db/schema.h"
#include "db/vindex.h"
#include "flow/flow.h"
#include "prompt/examples.h"
#include "prompt/tmpl.h"
#include "util/clock.h"
#include "benchutil.h"

#define BUDGET_BYTES (6000 * 4)
#define MAX_ITEMS 64

struct gold {
	char tables[MAX_ITEMS][128];
	int ntables;
	char cols[MAX_ITEMS][2][128];
	int ncols;
	char lits[MAX_ITEMS][256];
	int nlits;
};

struct tally {
	long tables, tables_hit, cols, cols_hit, lits, lits_hit;
	double *tokens;
	int n;
};

static int on_auth(void *p, int op, const char *a, const char *b, const char *db, const char *trig)
{
	(void)db, (void)trig;
	struct gold *g = p;
	if (op != SQLITE_READ || !a || !strncmp(a, "sqlite_", 7))
		return SQLITE_OK;
	int seen = 0;
	for (int i = 0; i < g->ntables && !seen; i++)
		seen = !strcasecmp(g->tables[i], a);
	if (!seen && g->ntables < MAX_ITEMS)
		snprintf(g->tables[g->ntables++], 128, "%s", a);
	if (b && *b) {
		seen = 0;
		for (int i = 0; i < g->ncols && !seen; i++)
			seen = !strcasecmp(g->cols[i][0], a) && !strcasecmp(g->cols[i][1], b);
		if (!seen && g->ncols < MAX_ITEMS) {
			snprintf(g->cols[g->ncols][0], 128, "%s", a);
			snprintf(g->cols[g->ncols++][1], 128, "%s", b);
		}
	}
	return SQLITE_OK;
}

/* 1 when name is a table or column of db (a double-quoted identifier). */
static int is_ident(sqlite3 *db, const char *name)
{
	sqlite3_stmt *st = NULL;
	int hit = 0;
	if (sqlite3_prepare_v2(db,
	                       "SELECT 1 FROM sqlite_schema s, pragma_table_info(s.name) c WHERE s.type = 'table' "
	                       "AND (c.name = ?1 COLLATE NOCASE OR s.name = ?1 COLLATE NOCASE) LIMIT 1",
	                       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		hit = sqlite3_step(st) == SQLITE_ROW;
	}
	sqlite3_finalize(st);
	return hit;
}

/* String literals of the gold SQL: '...' always, "..." when not a name. */
static void literals(sqlite3 *db, const char *sql, struct gold *g)
{
	for (const char *p = sql; *p; p++) {
		if (*p != '\'' && *p != '"')
			continue;
		char q = *p, v[256];
		size_t n = 0;
		for (p++; *p && !(*p == q && p[1] != q); p++) {
			if (*p == q)
				p++;
			if (n + 1 < sizeof v)
				v[n++] = *p;
		}
		v[n] = '\0';
		if (!*p)
			break;
		char *s = v;
		while (*s == '%')
			s++;
		for (size_t k = strlen(s); k && s[k - 1] == '%'; k--)
			s[k - 1] = '\0';
		if (!*s || (q == '"' && is_ident(db, s)) || g->nlits == MAX_ITEMS)
			continue;
		snprintf(g->lits[g->nlits++], 256, "%s", s);
	}
}

static int gold_of(const char *db_path, const char *sql, struct gold *g)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	memset(g, 0, sizeof *g);
	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return -1;
	}
	sqlite3_set_authorizer(db, on_auth, g);
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK ? 0 : -1;
	sqlite3_finalize(st);
	sqlite3_set_authorizer(db, NULL, NULL);
	if (!rc)
		literals(db, sql, g);
	sqlite3_close(db);
	return rc;
}

/* The text's line for table (prefix + name), or NULL. */
static const char *table_line(const char *text, const char *prefix, const char *table, char *line, size_t cap)
{
	char name[300];
	snprintf(name, sizeof name, "%s%s", prefix, table);
	for (const char *p = text; p && *p;) {
		const char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		const char *n = !strncmp(p, "CREATE TABLE ", 13) ? p + 13 : !strncmp(p, "CREATE VIEW ", 12) ? p + 12 : NULL;
		if (n) {
			int quoted = *n == '"';
			size_t nl = strlen(name);
			if (!strncasecmp(n + quoted, name, nl) && (n[quoted + nl] == (quoted ? '"' : ' '))) {
				snprintf(line, cap, "%.*s", (int)len, p);
				return line;
			}
		}
		p = e ? e + 1 : NULL;
	}
	return NULL;
}

static int has_word(const char *line, const char *w)
{
	size_t n = strlen(w);
	for (const char *p = line; (p = strcasestr(p, w)); p++) {
		int l = p == line || !(isalnum((unsigned char)p[-1]) || p[-1] == '_');
		int r = !(isalnum((unsigned char)p[n]) || p[n] == '_');
		if (l && r)
			return 1;
	}
	return 0;
}

static int show_misses; /* --misses: each miss of an "after" text on stderr */

static void score(struct tally *t, const struct gold *g, const char *text, const char *prefix, const char *question)
{
	static char line[1 << 16];
	int say = show_misses && question;
	for (int i = 0; i < g->ntables; i++) {
		int hit = table_line(text, prefix, g->tables[i], line, sizeof line) != NULL;
		t->tables++;
		t->tables_hit += hit;
		if (!hit && say)
			fprintf(stderr, "miss table %s%s: %s\n", prefix, g->tables[i], question);
	}
	for (int i = 0; i < g->ncols; i++) {
		int hit = table_line(text, prefix, g->cols[i][0], line, sizeof line) && has_word(line, g->cols[i][1]);
		t->cols++;
		t->cols_hit += hit;
		if (!hit && say)
			fprintf(stderr, "miss column %s%s.%s: %s\n", prefix, g->cols[i][0], g->cols[i][1], question);
	}
	for (int i = 0; i < g->nlits; i++) {
		int hit = strcasestr(text, g->lits[i]) != NULL;
		t->lits++;
		t->lits_hit += hit;
		if (!hit && say)
			fprintf(stderr, "miss value '%s' (%s): %s\n", g->lits[i], prefix, question);
	}
}

static double prompt_tokens(const struct tmpl_set *prompts, const char *schema, const char *question, const char *examples)
{
	struct buf b = BUF_INIT;
	struct err err = ERR_INIT;
	struct tmpl_slot slots[] = {{"schema", schema, 0},
	                            {"question", question, 8000},
	                            {"today", "2026-01-01", 16},
	                            {"examples", examples, 0}};
	tmpl_render(&b, tmpl_text(prompts, "sql"), slots, 4, &err);
	double tokens = (double)b.len / 4.0;
	buf_release(&b);
	return tokens;
}

/* One database's schema and index, loaded once per db_id. */
struct dbctx {
	char id[128];
	struct schema *s;
	struct vindex *v;
	char **ranges; /* every column's range, to switch them off for "before" */
	int nranges;
};

static void ranges_swap(struct dbctx *d, int on)
{
	int k = 0;
	for (size_t t = 0; t < d->s->ntables; t++)
		for (int c = 0; c < d->s->tables[t].ncols; c++, k++) {
			if (!on) {
				d->ranges[k] = d->s->tables[t].cols[c].range;
				d->s->tables[t].cols[c].range = NULL;
			} else {
				d->s->tables[t].cols[c].range = d->ranges[k];
			}
		}
}

static int dbctx_open(struct dbctx *d, const char *id, const char *path)
{
	struct err err = ERR_INIT;
	snprintf(d->id, sizeof d->id, "%s", id);
	if (schema_load(&d->s, path, &err) || vindex_open(&d->v, path, d->s, 1, NULL, NULL, &err)) {
		fprintf(stderr, "context_recall: %s: %s\n", path, err.msg);
		return -1;
	}
	int n = 0;
	for (size_t t = 0; t < d->s->ntables; t++)
		n += d->s->tables[t].ncols;
	d->ranges = calloc((size_t)n + 1, sizeof *d->ranges);
	d->nranges = n;
	return 0;
}

static void dbctx_close(struct dbctx *d)
{
	schema_free(d->s);
	vindex_close(d->v);
	free(d->ranges);
	memset(d, 0, sizeof *d);
}

static void report(const char *label, const struct tally *t, cJSON *out)
{
	bench_sort(t->tokens, t->n);
	double tr = 100.0 * t->tables_hit / (t->tables ? t->tables : 1), cr = 100.0 * t->cols_hit / (t->cols ? t->cols : 1),
	       vr = 100.0 * t->lits_hit / (t->lits ? t->lits : 1);
	double med = bench_pct(t->tokens, t->n, 50), p95 = bench_pct(t->tokens, t->n, 95);
	printf("| %-22s | %6.1f %% | %6.1f %% | %6.1f %% (%ld/%ld) | %6.0f / %6.0f |\n", label, tr, cr, vr, t->lits_hit, t->lits,
	       med, p95);
	cJSON *o = cJSON_AddObjectToObject(out, label);
	cJSON_AddNumberToObject(o, "table_recall", tr);
	cJSON_AddNumberToObject(o, "column_recall", cr);
	cJSON_AddNumberToObject(o, "value_recall", vr);
	cJSON_AddNumberToObject(o, "literals", (double)t->lits);
	cJSON_AddNumberToObject(o, "tokens_median", med);
	cJSON_AddNumberToObject(o, "tokens_p95", p95);
}

struct question {
	char *db_id, *text, *sql;
};

/* ---- example selection ------------------------------------------------------------ */

struct pick_tally {
	long n, top1, any3;
};

static void skeleton_of(struct buf *b, const char *sql)
{
	buf_reset(b);
	examples_skeleton(b, sql);
}

/* Scores the picks against the gold skeleton. */
static void pick_score(struct pick_tally *t, const struct examples *ex, const size_t *picked, int n, const char *gold)
{
	struct buf g = BUF_INIT, e = BUF_INIT;
	skeleton_of(&g, gold);
	int any = 0;
	for (int i = 0; i < n; i++) {
		skeleton_of(&e, ex->v[picked[i]].sql);
		int same = !strcmp(buf_str(&g), buf_str(&e));
		if (same && i == 0)
			t->top1++;
		any |= same;
	}
	t->any3 += any;
	t->n++;
	buf_release(&g);
	buf_release(&e);
}

/* The masked words of the question: the database's names and the values
 * the value index finds for it, as the SQL agent has them. */
static const char **domain_of(const struct dbctx *d, const struct ground *gr, size_t *n)
{
	size_t cap = (size_t)gr->n + 1;
	for (size_t t = 0; t < d->s->ntables; t++)
		cap += 1 + (size_t)d->s->tables[t].ncols;
	const char **dom = calloc(cap, sizeof *dom);
	size_t k = 0;
	for (size_t t = 0; t < d->s->ntables; t++) {
		dom[k++] = d->s->tables[t].name;
		for (int c = 0; c < d->s->tables[t].ncols; c++)
			dom[k++] = d->s->tables[t].cols[c].name;
	}
	for (int i = 0; i < gr->n; i++)
		dom[k++] = gr->v[i].value;
	*n = k;
	return dom;
}

static unsigned int pick_seed = 12; /* the random picks are the same every run */

static void pick_report(const char *label, const struct pick_tally *t, cJSON *out)
{
	double top1 = 100.0 * (double)t->top1 / (double)(t->n ? t->n : 1),
	       any3 = 100.0 * (double)t->any3 / (double)(t->n ? t->n : 1);
	printf("| %-44s | %6.1f %% | %6.1f %% |\n", label, top1, any3);
	cJSON *o = cJSON_AddObjectToObject(out, label);
	cJSON_AddNumberToObject(o, "first_same_skeleton", top1);
	cJSON_AddNumberToObject(o, "any_of_3_same_skeleton", any3);
	cJSON_AddNumberToObject(o, "questions", (double)t->n);
}

static int load_questions(const char *spider, struct question **out)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/dev.json", spider);
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *data = malloc((size_t)len + 1);
	size_t got = fread(data, 1, (size_t)len, f);
	fclose(f);
	data[got] = '\0';
	cJSON *root = cJSON_Parse(data);
	free(data);
	int n = cJSON_GetArraySize(root), k = 0;
	*out = calloc((size_t)n + 1, sizeof **out);
	for (int i = 0; i < n; i++) {
		cJSON *q = cJSON_GetArrayItem(root, i);
		(*out)[k].db_id = strdup(cJSON_GetStringValue(cJSON_GetObjectItem(q, "db_id")));
		(*out)[k].text = strdup(cJSON_GetStringValue(cJSON_GetObjectItem(q, "question")));
		(*out)[k].sql = strdup(cJSON_GetStringValue(cJSON_GetObjectItem(q, "query")));
		k++;
	}
	cJSON_Delete(root);
	return k;
}

/* Renders the before/after texts of one question into the tallies. */
static void measure(struct dbctx *d, const struct tmpl_set *prompts, const struct question *q, const struct gold *g,
                    const char *prefix, struct tally *before, struct tally *after)
{
	struct buf b = BUF_INIT;
	struct ground gr = GROUND_INIT;
	struct err err = ERR_INIT;
	ranges_swap(d, 0);
	schema_render(&b, d->s, q->text, BUDGET_BYTES);
	ranges_swap(d, 1);
	score(before, g, buf_str(&b), prefix, NULL);
	before->tokens[before->n++] = prompt_tokens(prompts, buf_str(&b), q->text, NULL);
	buf_release(&b);
	vindex_match(d->v, d->s, q->text, &gr, &err);
	schema_render_grounded(&b, d->s, q->text, &gr, BUDGET_BYTES);
	score(after, g, buf_str(&b), prefix, q->text);
	after->tokens[after->n++] = prompt_tokens(prompts, buf_str(&b), q->text, NULL);
	ground_release(&gr);
	buf_release(&b);
}

int main(int argc, char **argv)
{
	const char *spider = SPIDER_DIR, *merged = NULL, *out_path = "context_recall.json";
	long limit = -1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--spider") && i + 1 < argc)
			spider = argv[++i];
		else if (!strcmp(argv[i], "--merged") && i + 1 < argc)
			merged = argv[++i];
		else if (!strcmp(argv[i], "--limit") && i + 1 < argc)
			limit = atol(argv[++i]);
		else if (!strcmp(argv[i], "--out") && i + 1 < argc)
			out_path = argv[++i];
		else if (!strcmp(argv[i], "--misses"))
			show_misses = 1;
		else {
			fprintf(stderr,
			        "usage: context_recall [--spider DIR] [--merged FILE] [--limit N] [--out FILE] [--misses]\n");
			return 2;
		}
	}
	struct question *qs = NULL;
	int nq = load_questions(spider, &qs);
	if (nq <= 0) {
		fprintf(stderr, "context_recall: cannot read %s/dev.json\n", spider);
		return 1;
	}
	if (limit >= 0 && limit < nq)
		nq = (int)limit;
	struct tmpl_set *prompts = NULL;
	struct err err = ERR_INIT;
	if (flow_prompts_load(&prompts, SOURCE_DIR "/prompts", &err)) {
		fprintf(stderr, "context_recall: %s\n", err.msg);
		return 1;
	}
	cJSON *json = cJSON_CreateObject();
	struct tally sb = {0}, sa = {0}, mb = {0}, ma = {0};
	sb.tokens = calloc((size_t)nq, sizeof(double));
	sa.tokens = calloc((size_t)nq, sizeof(double));
	mb.tokens = calloc((size_t)nq, sizeof(double));
	ma.tokens = calloc((size_t)nq, sizeof(double));
	struct dbctx cur = {0}, big = {0};
	struct examples *pool = NULL;
	struct pick_tally p_random = {0}, p_question = {0}, p_draft = {0};
	struct tally sx = {0};
	sx.tokens = calloc((size_t)nq, sizeof(double));
	examples_new(&pool);
	for (int i = 0; i < nq; i++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/database/%s/%s.sqlite", spider, qs[i].db_id, qs[i].db_id);
		if (access(path, R_OK) == 0)
			examples_add(pool, qs[i].text, qs[i].sql, qs[i].db_id);
	}
	if (merged) {
		/* a fresh build, timed: the figure is the build, not a cache hit */
		struct schema *s = NULL;
		struct vindex *v = NULL;
		int64_t t0 = clock_mono_ms();
		if (schema_load(&s, merged, &err)) {
			fprintf(stderr, "context_recall: %s\n", err.msg);
			return 1;
		}
		int64_t t1 = clock_mono_ms();
		if (vindex_open(&v, merged, s, 2, NULL, NULL, &err)) {
			fprintf(stderr, "context_recall: %s\n", err.msg);
			return 1;
		}
		int64_t t2 = clock_mono_ms();
		printf("merged database: %zu tables; schema load %lld ms; index build %lld ms (%lld values, %lld columns)%s\n",
		       schema_table_count(s), (long long)(t1 - t0), (long long)(t2 - t1), (long long)vindex_info(v)->values,
		       (long long)vindex_info(v)->columns, t2 - t1 < 2000 ? "  PASS (< 2 s)" : "  FAIL (>= 2 s)");
		cJSON_AddNumberToObject(json, "merged_tables", (double)schema_table_count(s));
		cJSON_AddNumberToObject(json, "merged_index_build_ms", (double)(t2 - t1));
		vindex_close(v);
		schema_free(s);
		if (dbctx_open(&big, "merged", merged))
			return 1;
	}
	int used = 0;
	for (int i = 0; i < nq; i++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/database/%s/%s.sqlite", spider, qs[i].db_id, qs[i].db_id);
		if (access(path, R_OK) != 0)
			continue; /* wta_1 ships without data */
		struct gold g;
		if (gold_of(path, qs[i].sql, &g))
			continue;
		if (strcmp(cur.id, qs[i].db_id)) {
			dbctx_close(&cur);
			if (dbctx_open(&cur, qs[i].db_id, path))
				return 1;
		}
		used++;
		measure(&cur, prompts, &qs[i], &g, "", &sb, &sa);
		{ /* example selection, leaving this database out */
			struct ground gr = GROUND_INIT;
			struct buf text = BUF_INIT, exs = BUF_INIT;
			vindex_match(cur.v, cur.s, qs[i].text, &gr, &err);
			size_t nd = 0, picked[EXAMPLES_K];
			const char **dom = domain_of(&cur, &gr, &nd);
			int n = 0;
			struct examples_query q = {qs[i].text, dom, nd, NULL, qs[i].db_id};
			examples_choose(pool, &q, EXAMPLES_K, picked, &n);
			pick_score(&p_question, pool, picked, n, qs[i].sql);
			schema_render_grounded(&text, cur.s, qs[i].text, &gr, BUDGET_BYTES);
			examples_render(&exs, pool, picked, n, EXAMPLES_BUDGET_BYTES);
			sx.tokens[sx.n++] = prompt_tokens(prompts, buf_str(&text), qs[i].text, buf_str(&exs));
			q.draft = qs[i].sql;
			examples_choose(pool, &q, EXAMPLES_K, picked, &n);
			pick_score(&p_draft, pool, picked, n, qs[i].sql);
			n = 0;
			while (n < EXAMPLES_K) {
				size_t k = (size_t)rand_r(&pick_seed) % pool->n;
				if (strcmp(pool->v[k].db, qs[i].db_id))
					picked[n++] = k;
			}
			pick_score(&p_random, pool, picked, n, qs[i].sql);
			free(dom);
			buf_release(&text);
			buf_release(&exs);
			ground_release(&gr);
		}
		if (merged) {
			char prefix[160];
			snprintf(prefix, sizeof prefix, "%s__", qs[i].db_id);
			measure(&big, prompts, &qs[i], &g, prefix, &mb, &ma);
		}
	}
	printf("\n%d questions (gold SQL prepared on its database), schema budget 6000 tokens\n\n", used);
	printf("| %-22s | tables   | columns  | values                | tokens median / p95 |\n", "schema text");
	printf("|---|---|---|---|---|\n");
	report("spider dev, before", &sb, json);
	report("spider dev, after", &sa, json);
	if (merged) {
		report("merged, before", &mb, json);
		report("merged, after", &ma, json);
	}
	double gs = bench_pct(sa.tokens, sa.n, 50) / bench_pct(sb.tokens, sb.n, 50) - 1;
	printf("\nmedian prompt tokens, spider dev: %+.1f %% %s\n", 100 * gs, gs <= 0.15 ? "PASS (<= +15 %)" : "FAIL (> +15 %)");
	if (merged) {
		double gm = bench_pct(ma.tokens, ma.n, 50) / bench_pct(mb.tokens, mb.n, 50) - 1;
		printf("median prompt tokens, merged:     %+.1f %% %s\n", 100 * gm,
		       gm <= 0.15 ? "PASS (<= +15 %)" : "FAIL (> +15 %)");
	}
	bench_sort(sx.tokens, sx.n);
	printf("\nprompt tokens with the schema text after and 3 examples: median %.0f / p95 %.0f\n",
	       bench_pct(sx.tokens, sx.n, 50), bench_pct(sx.tokens, sx.n, 95));
	cJSON_AddNumberToObject(json, "tokens_with_examples_median", bench_pct(sx.tokens, sx.n, 50));
	cJSON_AddNumberToObject(json, "tokens_with_examples_p95", bench_pct(sx.tokens, sx.n, 95));
	printf("\nexample selection, %ld questions, pool: the dev questions of the other databases (%zu in all)\n\n", p_random.n,
	       pool->n);
	printf("| %-44s | first    | any of 3 |\n|---|---|---|\n", "same SQL skeleton as the gold");
	cJSON *pj = cJSON_AddObjectToObject(json, "example_selection");
	pick_report("random (seeded)", &p_random, pj);
	pick_report("masked question", &p_question, pj);
	pick_report("masked question + skeleton of a perfect draft", &p_draft, pj);
	examples_free(pool);
	dbctx_close(&cur);
	dbctx_close(&big);
	tmpl_set_free(prompts);
	FILE *f = fopen(out_path, "w");
	if (f) {
		char *s = cJSON_Print(json);
		fputs(s, f);
		fclose(f);
		free(s);
	}
	cJSON_Delete(json);
	return 0;
}
