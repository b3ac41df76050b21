/* views.c -- weighing views before SQLite expands them (see views.h).
 *
 * The objects are kept sorted by name for bsearch.  Each view's SQL is
 * scanned once for the objects it names (with repeats); weights are then
 * computed in topological order (Kahn's algorithm over "names" edges), so
 * a chain of 100,000 views costs linear time and no recursion.  Views
 * left over are on a cycle (SQLite calls them "circularly defined") and
 * weigh VIEWS_WEIGHT_CAP.
 */
#include "db/views.h"

#include <stdlib.h>
#include <string.h>

#include "db/sqltext.h"
#include "util/alloc.h"

struct object {
	char *name;     /* owned */
	char *sql;      /* owned; NULL for tables */
	int64_t weight; /* 1 for tables; views: 1 + the weights they name */
	size_t *refs;   /* owned: indices of the objects the view names, with repeats */
	size_t nrefs;
	size_t pending; /* refs to views not weighed yet */
};

struct views {
	struct object *obj; /* owned, sorted by name */
	size_t n;
};

static int cmp_obj(const void *a, const void *b)
{
	return sqlite3_stricmp(((const struct object *)a)->name, ((const struct object *)b)->name);
}

static struct object *find(const struct views *v, const char *name, size_t len)
{
	size_t lo = 0, hi = v->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const char *m = v->obj[mid].name;
		int c = sqlite3_strnicmp(m, name, (int)len);
		if (c == 0 && m[len])
			c = 1;
		if (c == 0)
			return &v->obj[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int64_t add_sat(int64_t a, int64_t b)
{
	return a >= VIEWS_WEIGHT_CAP - b ? VIEWS_WEIGHT_CAP : a + b;
}

/* Called for every identifier of a scanned text, and with len 0 and name
 * "(" or ")" for every parenthesis outside strings and comments; returns
 * non-zero to stop. */
typedef int (*ident_fn)(void *payload, const char *name, size_t len);

static int is_ident_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '$' || c >= 0x80;
}

/* Calls fn on every identifier of s[0..len): strings and comments are
 * skipped, quoted identifiers unquoted (into a bounded scratch copy;
 * longer ones cannot name an object we would weigh heavily and are
 * skipped). */
static int scan(const char *s, size_t len, ident_fn fn, void *payload)
{
	char name[256];
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)s[i];
		size_t end = sql_comment_end(s, len, i);
		if (end != i) {
			i = end;
		} else if (c == '\'') {
			for (i++; i < len; i++) {
				if (s[i] != '\'')
					continue;
				if (i + 1 < len && s[i + 1] == '\'')
					i++;
				else
					break;
			}
			i++;
		} else if (c == '"' || c == '`' || c == '[') {
			char close = c == '[' ? ']' : (char)c;
			size_t n = 0;
			for (i++; i < len; i++) {
				if (s[i] == close) {
					if (close != ']' && i + 1 < len && s[i + 1] == close)
						i++;
					else
						break;
				}
				if (n < sizeof name)
					name[n++] = s[i];
			}
			i++;
			if (n < sizeof name && fn(payload, name, n))
				return 1;
		} else if (is_ident_char(c)) {
			size_t start = i;
			while (i < len && is_ident_char((unsigned char)s[i]))
				i++;
			if (!(c >= '0' && c <= '9') && i - start < sizeof name && fn(payload, s + start, i - start))
				return 1;
		} else {
			if ((c == '(' || c == ')') && fn(payload, c == '(' ? "(" : ")", 0))
				return 1;
			i++;
		}
	}
	return 0;
}

struct collect {
	struct views *v;
	struct object *o;
	size_t cap;
	int nomem;
};

static int collect_ref(void *payload, const char *name, size_t len)
{
	struct collect *c = payload;
	if (!len)
		return 0; /* a parenthesis */
	struct object *hit = find(c->v, name, len);
	if (!hit || hit == c->o) /* CREATE VIEW names the view itself */
		return 0;
	if (c->o->nrefs == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 8;
		size_t *p = xrealloc(c->o->refs, ncap * sizeof *p);
		if (!p) {
			c->nomem = 1;
			return 1;
		}
		c->o->refs = p;
		c->cap = ncap;
	}
	c->o->refs[c->o->nrefs++] = (size_t)(hit - c->v->obj);
	return 0;
}

/* Weighs every view in topological order.  Returns SQLITE_OK or NOMEM. */
static int weigh_all(struct views *v)
{
	size_t nedges = 0;
	for (size_t i = 0; i < v->n; i++) {
		struct object *o = &v->obj[i];
		o->weight = o->sql ? 0 : 1;
		if (!o->sql)
			continue;
		struct collect c = {v, o, 0, 0};
		scan(o->sql, strlen(o->sql), collect_ref, &c);
		if (c.nomem)
			return SQLITE_NOMEM;
		for (size_t r = 0; r < o->nrefs; r++)
			if (v->obj[o->refs[r]].sql) {
				o->pending++;
				nedges++;
			}
	}
	/* dependents of each view, as one array indexed by start[] */
	size_t *start = xcalloc(v->n + 1, sizeof *start);
	size_t *dep = xcalloc(nedges ? nedges : 1, sizeof *dep);
	size_t *queue = xcalloc(v->n ? v->n : 1, sizeof *queue);
	size_t *fill = xcalloc(v->n ? v->n : 1, sizeof *fill);
	int rc = SQLITE_NOMEM;
	if (!start || !dep || !queue || !fill)
		goto done;
	for (size_t i = 0; i < v->n; i++)
		for (size_t r = 0; r < v->obj[i].nrefs; r++)
			if (v->obj[v->obj[i].refs[r]].sql)
				start[v->obj[i].refs[r] + 1]++;
	for (size_t i = 0; i < v->n; i++)
		start[i + 1] += start[i];
	for (size_t i = 0; i < v->n; i++)
		for (size_t r = 0; r < v->obj[i].nrefs; r++) {
			size_t to = v->obj[i].refs[r];
			if (v->obj[to].sql)
				dep[start[to] + fill[to]++] = i;
		}
	size_t head = 0, tail = 0;
	for (size_t i = 0; i < v->n; i++)
		if (v->obj[i].sql && !v->obj[i].pending)
			queue[tail++] = i;
	while (head < tail) {
		struct object *o = &v->obj[queue[head++]];
		int64_t w = 1;
		for (size_t r = 0; r < o->nrefs; r++)
			w = add_sat(w, v->obj[o->refs[r]].weight);
		o->weight = w;
		size_t self = (size_t)(o - v->obj);
		for (size_t d = start[self]; d < start[self + 1]; d++)
			if (--v->obj[dep[d]].pending == 0)
				queue[tail++] = dep[d];
	}
	for (size_t i = 0; i < v->n; i++)
		if (v->obj[i].sql && !v->obj[i].weight)
			v->obj[i].weight = VIEWS_WEIGHT_CAP; /* on a cycle */
	rc = SQLITE_OK;
done:
	free(start);
	free(dep);
	free(queue);
	free(fill);
	return rc;
}

int views_load(struct views **out, sqlite3 *db)
{
	struct views *v = NULL;
	sqlite3_stmt *st = NULL;
	size_t cap = 0;
	int src;

	*out = NULL;
	v = xcalloc(1, sizeof *v);
	if (!v)
		return SQLITE_NOMEM;
	src = sqlite3_prepare_v2(db,
	                         "SELECT name, CASE type WHEN 'view' THEN sql END FROM sqlite_schema "
	                         "WHERE type IN ('table', 'view') AND name IS NOT NULL",
	                         -1, &st, NULL);
	while (src == SQLITE_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
		if (v->n == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			struct object *p = xrealloc(v->obj, ncap * sizeof *p);
			if (!p) {
				src = SQLITE_NOMEM;
				break;
			}
			v->obj = p;
			cap = ncap;
		}
		struct object *o = &v->obj[v->n];
		memset(o, 0, sizeof *o);
		o->name = xstrdup((const char *)sqlite3_column_text(st, 0));
		const char *sql = (const char *)sqlite3_column_text(st, 1);
		o->sql = sql ? xstrdup(sql) : NULL;
		if (!o->name || (sql && !o->sql)) {
			free(o->name);
			free(o->sql);
			src = SQLITE_NOMEM;
			break;
		}
		v->n++;
		src = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (src != SQLITE_DONE) {
		views_free(v);
		return src == SQLITE_OK ? SQLITE_ERROR : src;
	}
	if (v->n)
		qsort(v->obj, v->n, sizeof *v->obj, cmp_obj);
	if (weigh_all(v) != SQLITE_OK) {
		views_free(v);
		return SQLITE_NOMEM;
	}
	*out = v;
	return SQLITE_OK;
}

void views_free(struct views *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n; i++) {
		free(v->obj[i].name);
		free(v->obj[i].sql);
		free(v->obj[i].refs);
	}
	free(v->obj);
	free(v);
}

int64_t views_weight(const struct views *v, const char *name)
{
	if (!v || !name)
		return 0;
	const struct object *o = find(v, name, strlen(name));
	return !o ? 0 : o->sql ? o->weight : 1;
}

/* ---- a statement's weight, its common table expressions included ---------- */

/* One token of a statement: an identifier (len > 0) or a parenthesis. */
struct token {
	char name[64]; /* longer identifiers are cut: they name nothing we weigh */
	size_t len;    /* 0 for a parenthesis */
	char paren;    /* '(' or ')' */
};

struct tokens {
	struct token *t;
	size_t n, cap;
	int nomem;
};

static int add_token(void *payload, const char *name, size_t len)
{
	struct tokens *ts = payload;
	if (ts->n == ts->cap) {
		size_t ncap = ts->cap ? ts->cap * 2 : 64;
		struct token *p = xrealloc(ts->t, ncap * sizeof *p);
		if (!p) {
			ts->nomem = 1;
			return 1;
		}
		ts->t = p;
		ts->cap = ncap;
	}
	struct token *t = &ts->t[ts->n++];
	t->len = len < sizeof t->name ? len : sizeof t->name - 1;
	t->paren = len ? 0 : name[0];
	memcpy(t->name, name, t->len);
	t->name[t->len] = '\0';
	return 0;
}

static int is_word(const struct token *t, const char *w)
{
	return t->len && !sqlite3_stricmp(t->name, w);
}

/* The index of the parenthesis closing the one at open (n when none). */
static size_t closing(const struct tokens *ts, size_t open)
{
	int depth = 0;
	for (size_t i = open; i < ts->n; i++) {
		depth += ts->t[i].paren == '(' ? 1 : ts->t[i].paren == ')' ? -1 : 0;
		if (!depth)
			return i;
	}
	return ts->n;
}

/* A common table expression: `name [(columns)] AS [[NOT] MATERIALIZED] (body)`. */
struct cte {
	size_t name;        /* token index of its name */
	size_t open, close; /* its body's parentheses */
	int64_t weight;
};

/* When a CTE's definition starts at token i, fills *c and returns 1. */
static int cte_at(const struct tokens *ts, size_t i, struct cte *c)
{
	if (!ts->t[i].len || is_word(&ts->t[i], "AS"))
		return 0;
	size_t j = i + 1;
	if (j < ts->n && ts->t[j].paren == '(')
		j = closing(ts, j) + 1;
	if (j >= ts->n || !is_word(&ts->t[j], "AS"))
		return 0;
	j++;
	if (j < ts->n && is_word(&ts->t[j], "NOT"))
		j++;
	if (j < ts->n && is_word(&ts->t[j], "MATERIALIZED"))
		j++;
	if (j >= ts->n || ts->t[j].paren != '(')
		return 0;
	c->name = i;
	c->open = j;
	c->close = closing(ts, j);
	c->weight = 1;
	return 1;
}

/* The weight a name stands for at token `at`: the latest CTE of that name
 * defined before it (not the one whose body holds it: a recursive
 * reference), else a view's or table's. */
static int64_t name_weight(const struct views *v, const struct tokens *ts, const struct cte *ctes, size_t nctes, size_t at,
                           const char **what)
{
	const struct token *t = &ts->t[at];
	for (size_t k = nctes; k-- > 0;) {
		const struct cte *c = &ctes[k];
		if (c->name < at && !(at > c->open && at < c->close) && !sqlite3_stricmp(ts->t[c->name].name, t->name)) {
			*what = ts->t[c->name].name;
			return c->weight;
		}
	}
	const struct object *o = v ? find(v, t->name, t->len) : NULL;
	*what = o && o->sql ? o->name : NULL;
	return !o ? 0 : o->sql ? o->weight : 1;
}

int64_t views_sql_weight(const struct views *v, const char *sql, size_t len, const char **heaviest, int64_t *heaviest_weight)
{
	struct tokens ts = {NULL, 0, 0, 0};
	struct cte *ctes = NULL;
	size_t nctes = 0;
	int64_t sum = 0, top = 0;
	const char *top_name = NULL;
	scan(sql, len, add_token, &ts);
	if (ts.nomem || !(ctes = xcalloc(ts.n ? ts.n : 1, sizeof *ctes))) {
		sum = -1;
		goto done;
	}
	for (size_t i = 0; i < ts.n; i++)
		if (cte_at(&ts, i, &ctes[nctes]))
			nctes++;
	/* in text order: a CTE names only those defined before it */
	for (size_t k = 0; k < nctes; k++) {
		struct cte *c = &ctes[k];
		for (size_t i = c->open + 1; i < c->close; i++) {
			if (!ts.t[i].len)
				continue;
			const char *what;
			c->weight = add_sat(c->weight, name_weight(v, &ts, ctes, k, i, &what));
		}
	}
	/* the statement: every name outside the CTEs' bodies and definitions */
	for (size_t i = 0; i < ts.n; i++) {
		int inside = 0;
		for (size_t k = 0; k < nctes && !inside; k++)
			inside = i == ctes[k].name || (i > ctes[k].open && i < ctes[k].close);
		if (inside || !ts.t[i].len)
			continue;
		const char *what;
		int64_t w = name_weight(v, &ts, ctes, nctes, i, &what);
		sum = add_sat(sum, w);
		if (what && w > top) {
			top = w;
			top_name = what;
		}
	}
done:
	if (heaviest) {
		const struct object *o = top_name && v ? find(v, top_name, strlen(top_name)) : NULL;
		*heaviest = o && o->sql ? o->name : NULL; /* a CTE's name dies with the tokens */
	}
	if (heaviest_weight)
		*heaviest_weight = top;
	free(ctes);
	free(ts.t);
	return sum;
}
