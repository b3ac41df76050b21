/* schema_render.c -- the schema as prompt text under a byte budget (see
 * schema.h for the format).
 *
 * Each table is rendered three ways up front: full (DDL, row count and
 * sample values), bare (DDL and row count) and brief (its name and its
 * columns' names only).  Then, cheapest loss first:
 *   1. everything full, if it fits;
 *   2. else every table bare, upgraded to full in priority order while
 *      the budget allows;
 *   3. else tables kept bare in priority order while they fit (keeping
 *      room for the omitted-tables line), then upgraded as in 2;
 *   4. but when not even half of the bare lines would fit (a schema of
 *      hundreds of tables), bare only within BARE_SHARE of the room and
 *      brief beyond it, in priority order; then upgraded as in 2; then,
 *      with room left, brief ones made bare.  The first tables keep their
 *      detail while about twice as many as bare lines would allow at least
 *      name their columns -- where a lexical score is weakest ("stores"
 *      for a table named shop), breadth is what finds the table.
 * Kept tables are written in their original order.  Priority: the tables
 * relevant to the question (by score), then those on foreign-key paths
 * between two relevant tables, then direct foreign-key neighbours of a
 * relevant table, then tables two joins from one (a fact table behind a
 * bridge: cars_data behind car_names), then the rest, each group by score
 * then original order.
 *
 * Relevance: question words (lower-cased, stop words dropped, plurals
 * stemmed: "countries" -> "country", "boxes" -> "box", "singers" ->
 * "singer") against identifier words (names split at '_', spaces, digits
 * and camelCase).  A word naming the table counts TABLE_HIT divided by the
 * number of words in the table's name (so "template" names Templates more
 * than Ref_Template_Types), one naming a column COLUMN_HIT divided by the
 * number of tables having such a column (so "name" or "id" weigh little),
 * one found in a sample value SAMPLE_HIT.  A prefix match of at least four
 * letters counts half.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "convbi/convbi.h"
#include "db/schema.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/strmap.h"
#include "util/words.h"

#define TABLE_HIT 8.0
#define COLUMN_HIT 3.0
#define SAMPLE_HIT 1.0
#define VALUE_HIT 4.0      /* a stored value the question names (times its match score) */
#define RELEVANT_MIN 1.0   /* score that makes a table "relevant" */
#define OMITTED_RESERVE 40 /* room always kept for "-- N more tables omitted" */
#define TIER_REST 4        /* assign_tiers: tables the question gives no reason to show */
#define BARE_SHARE 60      /* percent of the room bare tables may fill when not half of them fit */
#define PATH_ENDS_MAX 64   /* most relevant tables whose FK paths between them rank next */
#define BRIEF_NOTE " -- names only"

/* ---- words ------------------------------------------------------------------ */

/* 2 = same word, 1 = one is a prefix (>= 4 letters) of the other, 0 = no. */
static int word_match(const char *a, const char *b)
{
	if (!strcmp(a, b))
		return 2;
	size_t la = strlen(a), lb = strlen(b), m = la < lb ? la : lb;
	return m >= 4 && !strncmp(a, b, m) ? 1 : 0;
}

static int best_match(const char *q, const struct words *ws)
{
	int best = 0;
	for (int i = 0; i < ws->n && best < 2; i++) {
		int m = word_match(q, ws->w[i]);
		if (m > best)
			best = m;
	}
	return best;
}

/* ---- scoring ---------------------------------------------------------------- */

static int score_tables(const struct schema *s, const char *question, double *score)
{
	struct words q = {.n = 0};
	if (question)
		words_split(&q, question, WORDS_LETTERS | WORDS_DROP_STOP);
	for (int i = 0; i < q.n; i++) {
		double col_df = 0;
		int *col_hit = xcalloc(s->ntables + 1, sizeof *col_hit);
		if (!col_hit)
			return CONVBI_ENOMEM;
		for (size_t t = 0; t < s->ntables; t++) {
			const struct schema_table *tb = &s->tables[t];
			struct words name = {.n = 0};
			words_split(&name, tb->name, WORDS_LETTERS);
			int m = best_match(q.w[i], &name);
			if (m) /* "template" names Templates more than Ref_Template_Types */
				score[t] += TABLE_HIT * m / 2 / (name.n ? name.n : 1);
			int sample_hit = 0;
			for (int c = 0; c < tb->ncols; c++) {
				struct words cw = {.n = 0};
				words_split(&cw, tb->cols[c].name, WORDS_LETTERS);
				int cm = best_match(q.w[i], &cw);
				if (cm > col_hit[t])
					col_hit[t] = cm;
				for (int k = 0; k < tb->cols[c].nsamples && !sample_hit; k++) {
					struct words sw = {.n = 0};
					words_split(&sw, tb->cols[c].samples[k], WORDS_LETTERS);
					sample_hit = best_match(q.w[i], &sw) == 2;
				}
			}
			if (col_hit[t])
				col_df++;
			if (sample_hit)
				score[t] += SAMPLE_HIT;
		}
		for (size_t t = 0; t < s->ntables; t++)
			if (col_hit[t])
				score[t] += COLUMN_HIT * col_hit[t] / 2 / col_df;
		free(col_hit);
	}
	return CONVBI_OK;
}

/* ---- foreign-key graph --------------------------------------------------------- */

/* The foreign keys as an undirected graph in adjacency lists (each list in
 * ascending table order, so a breadth-first search finds the same shortest
 * paths whatever the schema's size): table t's neighbours are
 * to[first[t] .. first[t + 1] - 1]. */
struct fk_graph {
	size_t *first; /* n + 1 offsets into to[] */
	size_t *to;
};

static void lower_ascii(char *p)
{
	for (; *p; p++)
		*p = (char)tolower((unsigned char)*p);
}

/* Each FK edge (a, b) with a != b, calling add(a, b) and add(b, a) as
 * edge(g, a, b).  Names match as SQLite's do (ASCII case-insensitive);
 * a name given to two tables means the first.  Returns ENOMEM or OK. */
static int each_fk_edge(const struct schema *s, void (*edge)(struct fk_graph *, size_t, size_t), struct fk_graph *g)
{
	struct strmap names = STRMAP_INIT;
	struct buf key = BUF_INIT;
	int rc = CONVBI_OK;
	for (size_t t = 0; t < s->ntables && !rc; t++) {
		buf_reset(&key);
		rc = buf_puts(&key, s->tables[t].name) ? CONVBI_ENOMEM : CONVBI_OK;
		if (!rc) {
			lower_ascii(key.data);
			rc = strmap_put(&names, buf_str(&key), (int)t, NULL) < 0 ? CONVBI_ENOMEM : CONVBI_OK;
		}
	}
	for (size_t a = 0; a < s->ntables && !rc; a++)
		for (int f = 0; f < s->tables[a].nfks && !rc; f++) {
			int b;
			buf_reset(&key);
			if (buf_puts(&key, s->tables[a].fks[f].table)) {
				rc = CONVBI_ENOMEM;
				break;
			}
			lower_ascii(key.data);
			if (strmap_get(&names, buf_str(&key), &b) && (size_t)b != a)
				edge(g, a, (size_t)b);
		}
	strmap_release(&names);
	buf_release(&key);
	return rc;
}

static void count_edge(struct fk_graph *g, size_t a, size_t b)
{
	g->first[a + 1]++;
	g->first[b + 1]++;
}

static void place_edge(struct fk_graph *g, size_t a, size_t b)
{
	/* first[] holds each list's next free place while placing */
	g->to[g->first[a]++] = b;
	g->to[g->first[b]++] = a;
}

static int by_size_t(const void *x, const void *y)
{
	size_t a = *(const size_t *)x, b = *(const size_t *)y;
	return (a > b) - (a < b);
}

static int fk_graph_build(struct fk_graph *g, const struct schema *s)
{
	size_t n = s->ntables;
	g->to = NULL;
	g->first = xcalloc(n + 2, sizeof *g->first);
	if (!g->first)
		return CONVBI_ENOMEM;
	int rc = each_fk_edge(s, count_edge, g);
	for (size_t t = 0; t < n && !rc; t++)
		g->first[t + 1] += g->first[t];
	if (!rc && !(g->to = xcalloc(g->first[n] + 1, sizeof *g->to)))
		rc = CONVBI_ENOMEM;
	if (!rc)
		rc = each_fk_edge(s, place_edge, g);
	if (rc)
		return rc;
	for (size_t t = n; t > 0; t--) /* back from "next free" to "first" */
		g->first[t] = g->first[t - 1];
	g->first[0] = 0;
	for (size_t t = 0; t < n; t++)
		qsort(g->to + g->first[t], g->first[t + 1] - g->first[t], sizeof *g->to, by_size_t);
	return CONVBI_OK;
}

static void fk_graph_release(struct fk_graph *g)
{
	free(g->first);
	free(g->to);
}

/* Breadth-first from a: prev[v] is v's predecessor on a shortest path
 * from a (prev[a] = a), -1 where v cannot be reached. */
static void shortest_paths_from(const struct fk_graph *g, size_t n, size_t a, long *prev, size_t *queue)
{
	size_t head = 0, tail = 0;
	for (size_t i = 0; i < n; i++)
		prev[i] = -1;
	prev[a] = (long)a;
	queue[tail++] = a;
	while (head < tail) {
		size_t u = queue[head++];
		for (size_t k = g->first[u]; k < g->first[u + 1]; k++)
			if (prev[g->to[k]] < 0) {
				prev[g->to[k]] = (long)u;
				queue[tail++] = g->to[k];
			}
	}
}

/* 1 when table a is joined by a foreign key to a table of tier t. */
static int next_to(const struct fk_graph *g, const int *tier, size_t a, int t)
{
	for (size_t k = g->first[a]; k < g->first[a + 1]; k++)
		if (tier[g->to[k]] == t)
			return 1;
	return 0;
}

struct ranked {
	size_t index;
	double score;
};

/* Best score first, then table order. */
static int by_relevance(const void *x, const void *y)
{
	const struct ranked *a = x, *b = y;
	if (a->score != b->score)
		return a->score < b->score ? 1 : -1;
	return (a->index > b->index) - (a->index < b->index);
}

/* Fills tier[]: 0 relevant, 1 on a shortest FK path between two of the
 * PATH_ENDS_MAX most relevant tables, 2 next to a relevant table, 3 next
 * to one of those, 4 the rest.  Linear in the schema's tables and keys
 * times PATH_ENDS_MAX (a question matching every table of thousands does
 * not make it quadratic).  Returns CONVBI_OK or ENOMEM. */
static int assign_tiers(const struct schema *s, const double *score, int *tier)
{
	size_t n = s->ntables, nrel = 0;
	struct fk_graph g = {NULL, NULL};
	long *prev = xcalloc(n + 1, sizeof *prev);
	size_t *queue = xcalloc(n + 1, sizeof *queue);
	struct ranked *rel = xcalloc(n + 1, sizeof *rel);
	int rc = prev && queue && rel ? fk_graph_build(&g, s) : CONVBI_ENOMEM;
	if (rc)
		goto done;
	for (size_t a = 0; a < n; a++) {
		tier[a] = score[a] >= RELEVANT_MIN ? 0 : TIER_REST;
		if (!tier[a])
			rel[nrel++] = (struct ranked){a, score[a]};
	}
	qsort(rel, nrel, sizeof *rel, by_relevance);
	if (nrel > PATH_ENDS_MAX)
		nrel = PATH_ENDS_MAX;
	for (size_t i = 0; i < nrel; i++) /* pairs (a < b) in table order */
		rel[i].score = 0;
	qsort(rel, nrel, sizeof *rel, by_relevance);
	for (size_t i = 0; i + 1 < nrel; i++) {
		size_t a = rel[i].index;
		shortest_paths_from(&g, n, a, prev, queue);
		for (size_t j = i + 1; j < nrel; j++) {
			if (prev[rel[j].index] < 0)
				continue;
			for (size_t v = (size_t)prev[rel[j].index]; v != a; v = (size_t)prev[v])
				if (tier[v] > 1)
					tier[v] = 1;
		}
	}
	for (size_t a = 0; a < n; a++)
		if (tier[a] == TIER_REST && next_to(&g, tier, a, 0))
			tier[a] = 2;
	for (size_t a = 0; a < n; a++)
		if (tier[a] == TIER_REST && next_to(&g, tier, a, 2))
			tier[a] = 3;
done:
	fk_graph_release(&g);
	free(prev);
	free(queue);
	free(rel);
	return rc;
}

/* ---- grounded values ---------------------------------------------------------- */

int ground_add(struct ground *g, const char *table, const char *column, const char *value, double score)
{
	if (g->n == g->cap) {
		int cap = g->cap ? g->cap * 2 : 8;
		struct ground_value *p = xrealloc(g->v, (size_t)cap * sizeof *p);
		if (!p)
			return CONVBI_ENOMEM;
		g->v = p;
		g->cap = cap;
	}
	struct ground_value *v = &g->v[g->n];
	v->table = xstrdup(table);
	v->column = xstrdup(column);
	v->value = xstrdup(value);
	v->score = score;
	if (!v->table || !v->column || !v->value) {
		free(v->table);
		free(v->column);
		free(v->value);
		return CONVBI_ENOMEM;
	}
	g->n++;
	return CONVBI_OK;
}

void ground_release(struct ground *g)
{
	if (!g)
		return;
	for (int i = 0; i < g->n; i++) {
		free(g->v[i].table);
		free(g->v[i].column);
		free(g->v[i].value);
	}
	free(g->v);
	g->v = NULL;
	g->n = g->cap = 0;
}

/* ---- one table's text ---------------------------------------------------------- */

/* Appends the byte at *p, or a space for a line break, a control
 * character (C0, DEL, C1 including U+0085, U+2028, U+2029) or an
 * invisible format character (the bidi controls U+061C, U+200E, U+200F,
 * U+202A..U+202E, U+2066..U+2069; U+200B, U+2060..U+2064, U+FEFF),
 * advancing *p past it: a name or value from the database is data, and
 * must never start a line of the prompt (an injected ```sql block on its
 * own line, say) nor reorder what a terminal shows after it. */
static int flat_char(struct buf *b, const char **p)
{
	const unsigned char *u = (const unsigned char *)*p;
	size_t skip = 0;
	if (*u < 0x20 || *u == 0x7f)
		skip = 1;
	else if ((u[0] == 0xC2 && u[1] >= 0x80 && u[1] <= 0x9F) || (u[0] == 0xD8 && u[1] == 0x9C))
		skip = 2;
	else if (u[0] == 0xE2 && u[1] == 0x80 && (u[2] == 0x8B || u[2] == 0x8E || u[2] == 0x8F || (u[2] >= 0xA8 && u[2] <= 0xAE)))
		skip = 3;
	else if (u[0] == 0xE2 && u[1] == 0x81 && ((u[2] >= 0xA0 && u[2] <= 0xA4) || (u[2] >= 0xA6 && u[2] <= 0xA9)))
		skip = 3;
	else if (u[0] == 0xEF && u[1] == 0xBB && u[2] == 0xBF)
		skip = 3;
	if (skip) {
		*p += skip;
		return buf_putc(b, ' ');
	}
	return buf_putc(b, *(*p)++);
}

/* s with flat_char applied (a range, already quoted where it needs it). */
static int flat(struct buf *b, const char *s)
{
	int rc = CONVBI_OK;
	while (*s && !rc)
		rc = flat_char(b, &s);
	return rc;
}

static int ident(struct buf *b, const char *name)
{
	int plain = (isalpha((unsigned char)name[0]) || name[0] == '_') && !sqlite3_keyword_check(name, (int)strlen(name));
	/* upper case is quoted: PostgreSQL folds unquoted names to lower case */
	for (const char *p = name; plain && *p; p++)
		plain = islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_';
	if (plain)
		return buf_puts(b, name);
	int rc = buf_putc(b, '"');
	for (const char *p = name; *p && !rc;)
		rc = *p == '"' ? (p++, buf_puts(b, "\"\"")) : flat_char(b, &p);
	return rc ? rc : buf_putc(b, '"');
}

static int literal(struct buf *b, const char *v)
{
	int rc = buf_putc(b, '\'');
	for (const char *p = v; *p && !rc;)
		rc = *p == '\'' ? (p++, buf_puts(b, "''")) : flat_char(b, &p);
	return rc ? rc : buf_putc(b, '\'');
}

/* A declared type as written when it is plain ("VARCHAR(20)", "NUMERIC(10,
 * 2)", "UNSIGNED BIG INT"), else as a quoted literal -- SQLite accepts a
 * string as a type name, and anything else in a type is data. */
static int decltype_text(struct buf *b, const char *type)
{
	int plain = 1;
	for (const char *p = type; plain && *p; p++)
		plain = isalnum((unsigned char)*p) || strchr(" _(),.+-", *p) != NULL;
	return plain ? buf_puts(b, type) : literal(b, type);
}

int schema_table_list(struct buf *out, const struct schema *s)
{
	int rc = CONVBI_OK;
	for (size_t i = 0; i < s->ntables && !rc; i++) {
		rc = i ? buf_puts(out, ", ") : CONVBI_OK;
		if (!rc)
			rc = ident(out, s->tables[i].name);
	}
	return rc;
}

static int npk(const struct schema_table *t)
{
	int n = 0;
	for (int c = 0; c < t->ncols; c++)
		n += t->cols[c].pk > 0;
	return n;
}

static int fk_size(const struct schema_table *t, int id)
{
	int n = 0;
	for (int f = 0; f < t->nfks; f++)
		n += t->fks[f].id == id;
	return n;
}

/* 1 when g holds value v for (table, column). */
static int grounded(const struct ground *g, const char *table, const char *column, const char *v)
{
	for (int i = 0; g && i < g->n; i++)
		if (!sqlite3_stricmp(g->v[i].table, table) && !sqlite3_stricmp(g->v[i].column, column) &&
		    !strcmp(g->v[i].value, v))
			return 1;
	return 0;
}

/* The separator before a column's tail: lead for the first tail of a
 * table (" -- " when nothing has opened the line's comment yet, "; " after
 * a row count), else "; ".  Clears *first. */
static const char *separator(const char *lead, int *first)
{
	const char *sep = *first ? lead : "; ";
	*first = 0;
	return sep;
}

/* Appends the k-th (0-based) value of the column's tail: the first one
 * opens it with the separator and the column's name. */
static int value(struct buf *b, const char *lead, const struct schema_column *col, const char *v, int k, int *first)
{
	int rc = k ? buf_putc(b, ',') : buf_puts(b, separator(lead, first));
	if (!rc && !k)
		rc = ident(b, col->name);
	if (!rc && !k)
		rc = buf_puts(b, ": ");
	return rc ? rc : literal(b, v);
}

/* The column's tail: matched values (always), then samples and range (when
 * `samples`).  *first says whether a separator is still owed, lead which
 * (see separator()). */
static int render_values(struct buf *b, const struct schema_table *t, const struct schema_column *col, const struct ground *g,
                         int samples, const char *lead, int *first)
{
	int rc = CONVBI_OK, k = 0;
	for (int i = 0; g && i < g->n && !rc; i++) {
		if (sqlite3_stricmp(g->v[i].table, t->name) || sqlite3_stricmp(g->v[i].column, col->name))
			continue;
		rc = value(b, lead, col, g->v[i].value, k++, first);
	}
	for (int i = 0; samples && i < col->nsamples && !rc; i++) {
		if (grounded(g, t->name, col->name, col->samples[i]))
			continue;
		rc = value(b, lead, col, col->samples[i], k++, first);
	}
	if (samples && col->range && !rc) {
		rc = buf_puts(b, k ? " " : separator(lead, first));
		if (!rc && k)
			rc = buf_putc(b, '(') || flat(b, col->range) || buf_putc(b, ')') ? CONVBI_ENOMEM : CONVBI_OK;
		else if (!rc) /* the name as the samples write it: quoted where it needs it, never raw */
			rc = ident(b, col->name);
		if (!rc && !k)
			rc = buf_puts(b, ": ") || flat(b, col->range) ? CONVBI_ENOMEM : CONVBI_OK;
	}
	return rc;
}

static int render_table(struct buf *b, const struct schema_table *t, int samples, const struct ground *g);

/* schema.name, each part quoted as ident() does; SQLite tables have no
 * schema. */
static int qualified(struct buf *b, const char *schema, const char *name)
{
	int rc = CONVBI_OK;
	if (schema && *schema) {
		rc = ident(b, schema);
		if (!rc)
			rc = buf_putc(b, '.');
	}
	return rc ? rc : ident(b, name);
}

/* A comment (PostgreSQL's COMMENT ON) on the line: line breaks become
 * spaces and a comment terminator cannot close the surrounding comment,
 * so the schema stays one line per table whatever the comment holds. */
static int comment(struct buf *b, const char *open, const char *text, const char *close)
{
	int rc = buf_puts(b, open);
	for (const char *p = text; *p && !rc; p++) {
		if (*p == '\n' || *p == '\r' || *p == '\t')
			rc = buf_putc(b, ' ');
		else if (p[0] == '*' && p[1] == '/')
			rc = buf_puts(b, "* /"), p++;
		else
			rc = buf_putc(b, *p);
	}
	return rc ? rc : buf_puts(b, close);
}

int schema_render_table(struct buf *b, const struct schema_table *t, int samples)
{
	return render_table(b, t, samples, NULL);
}

static int render_table(struct buf *b, const struct schema_table *t, int samples, const struct ground *g)
{
	int rc = buf_puts(b, t->is_view ? "CREATE VIEW " : "CREATE TABLE ");
	if (!rc)
		rc = qualified(b, t->schema, t->name);
	if (!rc)
		rc = buf_puts(b, " (");
	int single_pk = npk(t) == 1;
	for (int c = 0; c < t->ncols && !rc; c++) {
		const struct schema_column *col = &t->cols[c];
		rc = c ? buf_puts(b, ", ") : CONVBI_OK;
		if (!rc)
			rc = ident(b, col->name);
		if (!rc && col->type[0])
			rc = buf_putc(b, ' ');
		if (!rc && col->type[0])
			rc = decltype_text(b, col->type);
		if (!rc && col->comment)
			rc = comment(b, " /* ", col->comment, " */");
		if (!rc && single_pk && col->pk)
			rc = buf_puts(b, " PRIMARY KEY");
		if (!rc && col->generated)
			rc = buf_puts(b, " GENERATED");
		for (int f = 0; f < t->nfks && !rc; f++) {
			const struct schema_fk *fk = &t->fks[f];
			if (fk_size(t, fk->id) != 1 || sqlite3_stricmp(fk->from, col->name))
				continue;
			rc = buf_puts(b, " REFERENCES ");
			if (!rc)
				rc = qualified(b, fk->schema, fk->table);
			if (!rc && fk->to) {
				rc = buf_putc(b, '(');
				if (!rc)
					rc = ident(b, fk->to);
				if (!rc)
					rc = buf_putc(b, ')');
			}
			break;
		}
	}
	if (!rc && npk(t) > 1) {
		rc = buf_puts(b, ", PRIMARY KEY (");
		for (int k = 1, first = 1; k <= t->ncols && !rc; k++)
			for (int c = 0; c < t->ncols && !rc; c++)
				if (t->cols[c].pk == k) {
					rc = first ? CONVBI_OK : buf_puts(b, ", ");
					first = 0;
					if (!rc)
						rc = ident(b, t->cols[c].name);
				}
		if (!rc)
			rc = buf_putc(b, ')');
	}
	for (int f = 0; f < t->nfks && !rc; f++) {
		int id = t->fks[f].id;
		if (fk_size(t, id) < 2 || (f > 0 && t->fks[f - 1].id == id))
			continue;
		int n = fk_size(t, id);
		rc = buf_puts(b, ", FOREIGN KEY (");
		for (int k = 0; k < n && !rc; k++) {
			rc = k ? buf_puts(b, ", ") : CONVBI_OK;
			if (!rc)
				rc = ident(b, t->fks[f + k].from);
		}
		if (!rc)
			rc = buf_puts(b, ") REFERENCES ");
		if (!rc)
			rc = qualified(b, t->fks[f].schema, t->fks[f].table);
		if (!rc && t->fks[f].to) {
			rc = buf_putc(b, '(');
			for (int k = 0; k < n && !rc; k++) {
				rc = k ? buf_puts(b, ", ") : CONVBI_OK;
				if (!rc)
					rc = ident(b, t->fks[f + k].to ? t->fks[f + k].to : "?");
			}
			if (!rc)
				rc = buf_putc(b, ')');
		}
	}
	if (!rc)
		rc = buf_puts(b, ");");
	if (!rc && t->is_view)
		rc = buf_puts(b, " -- view");
	else if (!rc && t->rows >= 0)
		rc = buf_printf(b,
		                t->rows_estimated ? " -- ~%lld rows (estimate)"
		                : t->rows_cut     ? " -- ~%lld+ rows"
		                                  : " -- %lld rows",
		                (long long)t->rows);
	if (!rc && t->comment)
		rc = comment(b, t->is_view || t->rows >= 0 ? "; " : " -- ", t->comment, "");
	int first = !t->comment;
	const char *lead = t->rows >= 0 || t->is_view ? "; " : " -- ";
	for (int c = 0; c < t->ncols && !rc; c++)
		rc = render_values(b, t, &t->cols[c], g, samples, lead, &first);
	return rc ? rc : buf_putc(b, '\n');
}

/* The brief form: the table's and its columns' names (and the values the
 * question names, which are why a table is worth a line at all), for
 * tables that do not fit with their types and keys. */
static int render_brief(struct buf *b, const struct schema_table *t, const struct ground *g)
{
	int rc = buf_puts(b, t->is_view ? "CREATE VIEW " : "CREATE TABLE ");
	if (!rc)
		rc = qualified(b, t->schema, t->name);
	if (!rc)
		rc = buf_puts(b, " (");
	for (int c = 0; c < t->ncols && !rc; c++) {
		rc = c ? buf_puts(b, ", ") : CONVBI_OK;
		if (!rc)
			rc = ident(b, t->cols[c].name);
	}
	if (!rc)
		rc = buf_puts(b, ");" BRIEF_NOTE);
	int first = 1;
	for (int c = 0; c < t->ncols && !rc; c++)
		rc = render_values(b, t, &t->cols[c], g, 0, "; ", &first);
	return rc ? rc : buf_putc(b, '\n');
}

/* ---- choosing what fits ------------------------------------------------------------- */

struct entry {
	size_t index; /* in s->tables */
	int tier;
	double score;
	size_t brief, bare, full;   /* bytes of the three renderings */
	int kept, samples, briefly; /* briefly: kept in the brief form */
};

static int by_priority(const void *pa, const void *pb)
{
	const struct entry *a = pa, *b = pb;
	if (a->tier != b->tier)
		return a->tier - b->tier;
	if (a->score != b->score)
		return a->score > b->score ? -1 : 1;
	return a->index < b->index ? -1 : a->index > b->index;
}

static int by_index(const void *pa, const void *pb)
{
	const struct entry *a = pa, *b = pb;
	return a->index < b->index ? -1 : a->index > b->index;
}

static int omitted_line(struct buf *b, const struct schema *s, const struct entry *e, size_t n, size_t room)
{
	size_t omitted = 0;
	for (size_t i = 0; i < n; i++)
		omitted += !e[i].kept;
	if (!omitted)
		return CONVBI_OK;
	struct buf line = BUF_INIT;
	int rc = buf_puts(&line, "-- omitted as less relevant:");
	size_t listed = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		if (e[i].kept)
			continue;
		size_t before = line.len;
		rc = buf_puts(&line, listed ? ", " : " ");
		if (!rc)
			rc = ident(&line, s->tables[e[i].index].name);
		if (!rc && line.len + 32 > room && listed + 1 < omitted) {
			line.len = before; /* keep room to say how many are left */
			line.data[before] = '\0';
			break;
		}
		listed++;
	}
	if (!rc && listed < omitted)
		rc = buf_printf(&line, listed ? " and %zu more tables" : " %zu tables", omitted - listed);
	if (!rc)
		rc = buf_putc(&line, '\n');
	if (!rc && line.len <= room)
		rc = buf_add(b, line.data, line.len);
	buf_release(&line);
	return rc;
}

int schema_render(struct buf *out, const struct schema *s, const char *question, size_t budget_bytes)
{
	return schema_render_grounded(out, s, question, NULL, budget_bytes);
}

int schema_render_grounded(struct buf *out, const struct schema *s, const char *question, const struct ground *g,
                           size_t budget_bytes)
{
	size_t n = s->ntables, used = 0;
	struct entry *e = xcalloc(n + 1, sizeof *e);
	double *score = xcalloc(n + 1, sizeof *score);
	int *tier = xcalloc(n + 1, sizeof *tier);
	struct buf tmp = BUF_INIT, acc = BUF_INIT;
	int rc = CONVBI_OK;

	if (!e || !score || !tier) {
		rc = CONVBI_ENOMEM;
		goto done;
	}
	rc = score_tables(s, question, score);
	for (size_t t = 0; g && t < n && !rc; t++) { /* the table's best match counts once */
		double best = 0;
		for (int i = 0; i < g->n; i++)
			if (g->v[i].score > best && !sqlite3_stricmp(g->v[i].table, s->tables[t].name))
				best = g->v[i].score;
		score[t] += VALUE_HIT * best;
	}
	if (!rc)
		rc = assign_tiers(s, score, tier);
	for (size_t i = 0; i < n && !rc; i++) {
		e[i].index = i;
		e[i].tier = tier[i];
		e[i].score = score[i];
		buf_reset(&tmp);
		rc = render_table(&tmp, &s->tables[i], 0, g);
		e[i].bare = tmp.len;
		buf_reset(&tmp);
		if (!rc)
			rc = render_table(&tmp, &s->tables[i], 1, g);
		e[i].full = tmp.len;
		buf_reset(&tmp);
		if (!rc)
			rc = render_brief(&tmp, &s->tables[i], g);
		e[i].brief = tmp.len;
	}
	if (rc)
		goto done;

	size_t all_full = 0, all_bare = 0;
	for (size_t i = 0; i < n; i++)
		all_full += e[i].full, all_bare += e[i].bare;
	qsort(e, n, sizeof *e, by_priority);
	if (all_full <= budget_bytes) {
		for (size_t i = 0; i < n; i++)
			e[i].kept = e[i].samples = 1;
	} else {
		size_t room = all_bare <= budget_bytes         ? budget_bytes
		              : budget_bytes > OMITTED_RESERVE ? budget_bytes - OMITTED_RESERVE
		                                               : 0;
		/* fewer than half the bare lines fit: bare within BARE_SHARE of
		 * the room, brief beyond it */
		int wide = all_bare / 2 > room;
		size_t bare_room = wide ? room / 100 * BARE_SHARE : room;
		for (size_t i = 0; i < n; i++) {
			e[i].briefly = wide && used + e[i].bare > bare_room;
			size_t need = e[i].briefly ? e[i].brief : e[i].bare;
			if (used + need <= room) {
				e[i].kept = 1;
				used += need;
			}
		}
		for (size_t i = 0; i < n; i++)
			if (e[i].kept && !e[i].briefly && used - e[i].bare + e[i].full <= room) {
				e[i].samples = 1;
				used += e[i].full - e[i].bare;
			}
		for (size_t i = 0; i < n; i++) /* room left: the types and keys of the rest */
			if (e[i].kept && e[i].briefly && used - e[i].brief + e[i].bare <= room) {
				e[i].briefly = 0;
				used += e[i].bare - e[i].brief;
			}
	}
	qsort(e, n, sizeof *e, by_index);

	for (size_t i = 0; i < n && !rc; i++)
		if (e[i].kept)
			rc = e[i].briefly ? render_brief(&acc, &s->tables[e[i].index], g)
			                  : render_table(&acc, &s->tables[e[i].index], e[i].samples, g);
	if (!rc && acc.len <= budget_bytes)
		rc = omitted_line(&acc, s, e, n, budget_bytes - acc.len);
	if (!rc)
		rc = buf_add(out, buf_str(&acc), acc.len);
done:
	free(e);
	free(score);
	free(tier);
	buf_release(&tmp);
	buf_release(&acc);
	return rc;
}
