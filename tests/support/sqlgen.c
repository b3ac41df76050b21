/* sqlgen.c -- the hostile statement generator (see sqlgen.h).
 *
 * A statement is
 *   WITH RECURSIVE c(x) AS (counter [LIMIT n]), r(s) AS (recursive UNION),
 *     k0(v) AS (...), k1(v) AS (k0 named 1-3 times), ... (a chain of 1-40)
 *   SELECT [DISTINCT] items FROM sources [WHERE cond] [GROUP BY e [HAVING cond]]
 *   [ORDER BY e] [LIMIT n]
 * where every piece is drawn by pick().  Expressions know which columns
 * the chosen sources give (their alias, name and kind), so most statements
 * are valid SQL and reach the executor; the few that are not still test
 * the gate's refusals.  Depth is bounded, and the writer clamps at the
 * buffer's end (a clamped statement is simply a syntax error).
 */
#include "sqlgen.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define DEPTH_MAX 3   /* nesting of generated expressions */
#define SOURCES_MAX 3 /* tables in one FROM */
#define COLS_MAX 16   /* columns the sources give, at most */

enum kind { K_INT, K_TEXT, K_JSON, K_BLOB };

struct col {
	char name[24]; /* "s1.t" */
	enum kind kind;
};

struct gen {
	struct sqlgen *g;
	char *p;
	size_t len, cap;
	struct col cols[COLS_MAX];
	int ncols;
	int nsources;
	int agg_ok; /* 1 = an aggregate or window function may appear here */
	int chain;  /* CTEs k0..k<chain-1> exist */
};

/* Writes the argument of an aggregate, where no other aggregate may be. */
#define AGG_ARG(s, call)                \
	do {                            \
		int was_ = (s)->agg_ok; \
		(s)->agg_ok = 0;        \
		call;                   \
		(s)->agg_ok = was_;     \
	} while (0)

/* ---- choices ------------------------------------------------------------------- */

void sqlgen_seed(struct sqlgen *g, uint64_t seed)
{
	memset(g, 0, sizeof *g);
	g->state = seed * 0x9E3779B97F4A7C15ull + 1; /* never 0 */
}

void sqlgen_bytes(struct sqlgen *g, const uint8_t *bytes, size_t len)
{
	memset(g, 0, sizeof *g);
	g->bytes = bytes;
	g->len = len;
}

/* A choice in 0..n-1. */
static unsigned pick(struct sqlgen *g, unsigned n)
{
	if (n <= 1)
		return 0;
	if (g->bytes)
		return g->pos < g->len ? g->bytes[g->pos++] % n : 0;
	g->state ^= g->state >> 12;
	g->state ^= g->state << 25;
	g->state ^= g->state >> 27;
	return (unsigned)((g->state * 0x2545F4914F6CDD1Dull) >> 33) % n;
}

/* ---- writing ------------------------------------------------------------------- */

static void put(struct gen *s, const char *fmt, ...)
{
	if (s->len + 1 >= s->cap)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(s->p + s->len, s->cap - s->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		s->len += (size_t)n < s->cap - s->len ? (size_t)n : s->cap - s->len - 1;
}

static const long long sizes[] = {0, 1, 10, 100, 1000, 4470, 65536, 100000, 1048576, 2097152, 16777216, 1000000000};

static long long size(struct gen *s)
{
	return sizes[pick(s->g, sizeof sizes / sizeof sizes[0])];
}

/* A column of the wanted kind, or NULL. */
static const char *column(struct gen *s, enum kind k)
{
	int idx[COLS_MAX], n = 0;
	for (int i = 0; i < s->ncols; i++)
		if (s->cols[i].kind == k)
			idx[n++] = i;
	return n ? s->cols[idx[pick(s->g, (unsigned)n)]].name : NULL;
}

static void text(struct gen *s, int depth);
static void json(struct gen *s, int depth);
static void num(struct gen *s, int depth);

static void pattern(struct gen *s, int depth)
{
	static const char *const units[] = {"*a", "%a", "a", "_", "[a-z]", "%", "*", "a%b"};
	static const int counts[] = {1, 10, 100, 450, 999, 2000};
	if (pick(s->g, 4) == 0) {
		text(s, depth - 1);
		return;
	}
	const char *u = units[pick(s->g, sizeof units / sizeof units[0])];
	int n = counts[pick(s->g, sizeof counts / sizeof counts[0])];
	put(s, "'");
	for (int i = 0; i < n; i++)
		put(s, "%s", u);
	put(s, "'");
}

static void text(struct gen *s, int depth)
{
	const char *c;
	if (depth <= 0) {
		switch (pick(s->g, 5)) {
		case 0:
			if ((c = column(s, K_TEXT))) {
				put(s, "%s", c);
				return;
			}
			break;
		case 1: put(s, "hex(zeroblob(%lld))", size(s) / 2); return;
		case 2: put(s, "printf('%%.*c', %lld, 'a')", size(s)); return;
		case 3:
			if ((c = column(s, K_INT))) {
				put(s, "CAST(%s AS TEXT)", c);
				return;
			}
			break;
		}
		put(s, "'abc'");
		return;
	}
	unsigned k = pick(s->g, 24);
	if (!s->agg_ok && (k == 8 || k == 13 || k == 19))
		k = 23;
	switch (k) {
	case 0:
		put(s, "replace(");
		text(s, depth - 1);
		put(s, ", 'a', 'aa')");
		return;
	case 1:
		put(s, "replace(");
		text(s, depth - 1);
		put(s, ", ");
		text(s, depth - 1);
		put(s, ", ");
		text(s, depth - 1);
		put(s, ")");
		return;
	case 2:
		put(s, "substr(");
		text(s, depth - 1);
		put(s, ", 1, %lld)", size(s));
		return;
	case 3:
		put(s, "upper(");
		text(s, depth - 1);
		put(s, ")");
		return;
	case 4:
		put(s, "quote(");
		text(s, depth - 1);
		put(s, ")");
		return;
	case 5:
		put(s, "%s(", pick(s->g, 3) == 0 ? "trim" : pick(s->g, 2) ? "ltrim" : "rtrim");
		text(s, depth - 1);
		put(s, ", ");
		text(s, depth - 1);
		put(s, ")");
		return;
	case 6:
		text(s, depth - 1);
		put(s, " || ");
		text(s, depth - 1);
		return;
	case 7: json(s, depth - 1); return;
	case 8:
		put(s, "group_concat(");
		AGG_ARG(s, text(s, depth - 1));
		put(s, ")");
		return;
	case 9: put(s, "printf('%%*d', %lld, 1)", size(s)); return;
	case 10: put(s, "format('%%.*f', %lld, 1.5)", size(s)); return;
	case 11: put(s, "CAST(%s(%lld) AS TEXT)", pick(s->g, 2) ? "randomblob" : "zeroblob", size(s)); return;
	case 12: put(s, "hex(%s(%lld))", pick(s->g, 2) ? "randomblob" : "zeroblob", size(s)); return;
	case 13:
		put(s, "group_concat(");
		AGG_ARG(s, text(s, depth - 1));
		put(s, ") OVER (ORDER BY ");
		AGG_ARG(s, text(s, depth - 1));
		put(s, " ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)");
		return;
	case 14:
		put(s, "json_extract(");
		json(s, depth - 1);
		put(s, ", '$.k%lld')", size(s));
		return;
	case 15:
		put(s, "lower(");
		text(s, depth - 1);
		put(s, ")");
		return;
	case 16:
		put(s, "strftime(");
		text(s, depth - 1);
		put(s, ", 'now')");
		return;
	case 17:
		put(s, "char(");
		num(s, depth - 1);
		put(s, ", ");
		num(s, depth - 1);
		put(s, ")");
		return;
	case 18: put(s, "(SELECT group_concat(t) FROM rows)"); return;
	case 19:
		put(s, "max(");
		AGG_ARG(s, text(s, depth - 1));
		put(s, ")");
		return;
	case 20:
		put(s, "printf('%%s%%s', ");
		text(s, depth - 1);
		put(s, ", ");
		text(s, depth - 1);
		put(s, ")");
		return;
	case 21: put(s, "(SELECT s FROM r ORDER BY length(s) DESC LIMIT 1)"); return;
	default: text(s, 0); return;
	}
}

static void json(struct gen *s, int depth)
{
	const char *c = column(s, K_JSON);
	if (depth <= 0) {
		if (c)
			put(s, "%s", c);
		else
			put(s, "(SELECT j FROM js WHERE id = %d)", 1 + (int)pick(s->g, 2));
		return;
	}
	unsigned k = pick(s->g, 8);
	if (!s->agg_ok && (k == 2 || k == 3))
		k = 7;
	switch (k) {
	case 0:
		put(s, "json_patch(");
		json(s, depth - 1);
		put(s, ", ");
		json(s, depth - 1);
		put(s, ")");
		return;
	case 1:
		put(s, "json_object('k', ");
		text(s, depth - 1);
		put(s, ")");
		return;
	case 2:
		put(s, "json_group_array(");
		AGG_ARG(s, text(s, depth - 1));
		put(s, ")");
		return;
	case 3:
		put(s, "json_group_object('k' || ");
		AGG_ARG(s, num(s, depth - 1));
		put(s, ", ");
		AGG_ARG(s, text(s, depth - 1));
		put(s, ")");
		return;
	case 4:
		put(s, "json_set(");
		json(s, depth - 1);
		put(s, ", '$.k' || ");
		num(s, depth - 1);
		put(s, ", ");
		text(s, depth - 1);
		put(s, ")");
		return;
	case 5:
		put(s, "json_array(");
		text(s, depth - 1);
		put(s, ", ");
		json(s, depth - 1);
		put(s, ")");
		return;
	case 6:
		put(s, "json_remove(");
		json(s, depth - 1);
		put(s, ", '$.k1', '$.k2')");
		return;
	default: json(s, 0); return;
	}
}

static void num(struct gen *s, int depth)
{
	const char *c = column(s, K_INT);
	if (depth <= 0) {
		if (c && pick(s->g, 3))
			put(s, "%s", c);
		else
			put(s, "%lld", size(s));
		return;
	}
	unsigned k = pick(s->g, 10);
	if (!s->agg_ok && k >= 2 && k <= 7 && k != 4)
		k = 9;
	switch (k) {
	case 0:
		put(s, "length(");
		text(s, depth - 1);
		put(s, ")");
		return;
	case 1:
		put(s, "instr(");
		text(s, depth - 1);
		put(s, ", ");
		text(s, depth - 1);
		put(s, ")");
		return;
	case 2: put(s, "count(*)"); return;
	case 3:
		put(s, "sum(length(");
		AGG_ARG(s, text(s, depth - 1));
		put(s, "))");
		return;
	case 4:
		put(s, "json_array_length(");
		json(s, depth - 1);
		put(s, ")");
		return;
	case 5:
		put(s, "row_number() OVER (ORDER BY ");
		AGG_ARG(s, text(s, depth - 1));
		put(s, ")");
		return;
	case 6:
		put(s, "count(DISTINCT ");
		AGG_ARG(s, text(s, depth - 1));
		put(s, ")");
		return;
	case 7:
		put(s, "sum(length(");
		AGG_ARG(s, text(s, depth - 1));
		put(s, ")) OVER (PARTITION BY ");
		AGG_ARG(s, text(s, depth - 1));
		put(s, ")");
		return;
	default: num(s, 0); return;
	}
}

static void cond(struct gen *s, int depth)
{
	switch (pick(s->g, 8)) {
	case 0:
		text(s, depth);
		put(s, " GLOB ");
		pattern(s, depth);
		return;
	case 1:
		text(s, depth);
		put(s, " LIKE ");
		pattern(s, depth);
		return;
	case 2:
		put(s, "instr(");
		text(s, depth);
		put(s, ", ");
		text(s, depth);
		put(s, ") > 0");
		return;
	case 3:
		text(s, depth);
		put(s, " = ");
		text(s, depth);
		return;
	case 4:
		put(s, "length(");
		text(s, depth);
		put(s, ") > %lld", size(s));
		return;
	case 5:
		num(s, 0);
		put(s, " IN (SELECT ");
		num(s, depth);
		put(s, " FROM c)");
		return;
	case 6:
		text(s, depth);
		put(s, " IN (SELECT ");
		text(s, depth);
		put(s, " FROM rows)");
		return;
	default:
		text(s, depth);
		put(s, " LIKE ");
		pattern(s, depth);
		put(s, " ESCAPE '!'");
		return;
	}
}

/* ---- sources -------------------------------------------------------------------- */

static void add_col(struct gen *s, int alias, const char *name, enum kind k)
{
	if (s->ncols == COLS_MAX)
		return;
	snprintf(s->cols[s->ncols].name, sizeof s->cols[0].name, "s%d.%s", alias, name);
	s->cols[s->ncols++].kind = k;
}

static void source(struct gen *s)
{
	int a = s->nsources++;
	if (a)
		put(s, pick(s->g, 4) ? ", " : " JOIN ");
	switch (pick(s->g, 10)) {
	case 9:
		put(s, "k%d AS s%d", s->chain - 1, a);
		add_col(s, a, "v", K_INT);
		return;
	case 0:
		put(s, "rows AS s%d", a);
		add_col(s, a, "id", K_INT);
		add_col(s, a, "t", K_TEXT);
		return;
	case 1:
		put(s, "big AS s%d", a);
		add_col(s, a, "id", K_INT);
		add_col(s, a, "t", K_TEXT);
		return;
	case 2:
		put(s, "js AS s%d", a);
		add_col(s, a, "id", K_INT);
		add_col(s, a, "j", K_JSON);
		return;
	case 3:
		put(s, "g AS s%d", a);
		add_col(s, a, "a", K_TEXT);
		add_col(s, a, "b", K_TEXT);
		return;
	case 4:
		put(s, "cell AS s%d", a);
		add_col(s, a, "b", K_BLOB);
		return;
	case 5:
		put(s, "v%d AS s%d", SQLGEN_VIEWS - 1, a);
		add_col(s, a, "a", K_INT);
		return;
	case 6:
		put(s, "json_each((SELECT j FROM js WHERE id = 1)) AS s%d", a);
		add_col(s, a, "key", K_TEXT);
		add_col(s, a, "value", K_INT);
		return;
	case 7:
		put(s, "r AS s%d", a);
		add_col(s, a, "s", K_TEXT);
		return;
	default:
		put(s, "c AS s%d", a);
		add_col(s, a, "x", K_INT);
		return;
	}
}

static void item(struct gen *s, int depth)
{
	switch (pick(s->g, 3)) {
	case 0: text(s, depth); return;
	case 1: num(s, depth); return;
	default: json(s, depth); return;
	}
}

void sqlgen_select(struct sqlgen *g, char out[SQLGEN_SQL_MAX])
{
	struct gen s = {.g = g, .p = out, .cap = SQLGEN_SQL_MAX, .agg_ok = 1};
	out[0] = '\0';
	put(&s, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c");
	if (pick(g, 3))
		put(&s, " LIMIT %lld", size(&s));
	put(&s, "), r(s) AS (SELECT 'x' UNION SELECT ");
	put(&s, pick(g, 2) ? "s || hex(zeroblob(%lld))" : "substr(s || s, 1, %lld)", size(&s));
	put(&s, " FROM r)");
	/* a chain of CTEs, each naming the one before once or more: what
	 * SQLite expands while preparing grows with the product */
	static const int depths[] = {1, 4, 16, 40};
	s.chain = depths[pick(g, sizeof depths / sizeof depths[0])];
	int fan = 1 + (int)pick(g, 3);
	put(&s, ", k0(v) AS (SELECT x FROM c LIMIT 10)");
	for (int i = 1; i < s.chain; i++) {
		put(&s, ", k%d(v) AS (SELECT v FROM k%d", i, i - 1);
		for (int j = 1; j < fan; j++)
			put(&s, " UNION ALL SELECT v FROM k%d", i - 1);
		put(&s, ")");
	}
	put(&s, " SELECT ");

	/* the FROM clause decides which columns exist: draw it first, into
	 * a side buffer, then write the items before it */
	char from[2048];
	struct gen f = {.g = g, .p = from, .cap = sizeof from, .chain = s.chain};
	from[0] = '\0';
	int nsrc = 1 + (int)pick(g, SOURCES_MAX);
	for (int i = 0; i < nsrc; i++)
		source(&f);
	memcpy(s.cols, f.cols, sizeof s.cols);
	s.ncols = f.ncols;

	if (pick(g, 4) == 0)
		put(&s, "DISTINCT ");
	int depth = 1 + (int)pick(g, DEPTH_MAX);
	if (pick(g, 6) == 0) {
		/* a wide row: one expression repeated in many columns */
		static const int widths[] = {10, 100, 500, 999, 1001};
		int w = widths[pick(g, sizeof widths / sizeof widths[0])];
		size_t start = s.len;
		item(&s, depth);
		size_t one = s.len - start;
		char e[4096];
		if (one < sizeof e && (one + 2) * (size_t)w + 4096 < s.cap - s.len) {
			memcpy(e, s.p + start, one);
			e[one] = '\0';
			for (int i = 1; i < w; i++)
				put(&s, ", %s", e);
		}
	} else {
		int n = 1 + (int)pick(g, 4);
		for (int i = 0; i < n; i++) {
			if (i)
				put(&s, ", ");
			item(&s, depth);
		}
	}
	put(&s, " FROM %s", from);
	s.agg_ok = 0;
	if (pick(g, 2)) {
		put(&s, " WHERE ");
		cond(&s, depth);
	}
	if (pick(g, 4) == 0) {
		put(&s, " GROUP BY ");
		text(&s, depth);
		s.agg_ok = 1;
		if (pick(g, 2)) {
			put(&s, " HAVING ");
			cond(&s, depth);
		}
	}
	s.agg_ok = 1;
	if (pick(g, 3) == 0) {
		put(&s, " ORDER BY ");
		text(&s, depth);
		if (pick(g, 2))
			put(&s, " DESC");
	}
	if (pick(g, 3) == 0)
		put(&s, " LIMIT %lld", size(&s));
}

/* ---- the fixture ------------------------------------------------------------------- */

int sqlgen_fixture(sqlite3 *db)
{
	static const char *const script =
	        "BEGIN;"
	        "CREATE TABLE big(id INTEGER PRIMARY KEY, t TEXT);"
	        "INSERT INTO big VALUES (1, printf('%.*c', 16777216, 'a'));"
	        "CREATE TABLE rows(id INTEGER PRIMARY KEY, t TEXT);"
	        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 16384) "
	        "INSERT INTO rows SELECT x, printf('%.*c', 1000, char(97 + x % 26)) FROM c;"
	        "CREATE TABLE js(id INTEGER PRIMARY KEY, j TEXT);"
	        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100000) "
	        "INSERT INTO js SELECT 1, json_group_object('k' || x, x) FROM c;"
	        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100000) "
	        "INSERT INTO js SELECT 2, json_group_object('k' || x, -x) FROM c;"
	        /* each row's b costs about 50 ms of replace() at full size */
	        "CREATE TABLE g(id INTEGER PRIMARY KEY, a TEXT, b TEXT GENERATED ALWAYS AS "
	        "(replace(replace(replace(replace(a, 'a', 'aa'), 'a', 'aa'), 'a', 'aa'), 'a', 'aa')) VIRTUAL);"
	        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 500) "
	        "INSERT INTO g(id, a) SELECT x, printf('%.*c', 20000, 'a') FROM c;"
	        "CREATE TABLE cell(id INTEGER PRIMARY KEY, b BLOB);"
	        "INSERT INTO cell VALUES (1, zeroblob(33554432));"
	        "CREATE VIEW v0 AS SELECT id AS a FROM rows;";
	int rc = sqlite3_exec(db, script, NULL, NULL, NULL);
	for (int i = 1; i < SQLGEN_VIEWS && rc == SQLITE_OK; i++) {
		char q[128];
		snprintf(q, sizeof q, "CREATE VIEW v%d AS SELECT a FROM v%d", i, i - 1);
		rc = sqlite3_exec(db, q, NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	else
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}
