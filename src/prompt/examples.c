/* examples.c -- verified examples: loading, choosing, rendering (see examples.h).
 *
 * Both similarities are Jaccard indexes over sets of 64-bit feature hashes
 * (FNV-1a of a token for a unigram, of two or three for an n-gram), kept
 * sorted so that one merge counts the intersection.  An example's features
 * are computed once, when it is added; a query's once per choice.
 *
 * The SQL reader here is a tokenizer, not a parser: strings ('..'), quoted
 * names ("..", `..`, [..]), numbers, words, operators, comments.  A word is
 * a keyword (a fixed list), a function (a word before "("), or a name.  It
 * only has to tell names and literals from structure, the same way for an
 * example and a draft.
 */
#include "prompt/examples.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "convbi/convbi.h"
#include "util/alloc.h"
#include "util/jsonx.h"
#include "util/regfile.h"
#include "util/utf8.h"
#include "util/words.h"

#define SKELETON_TOKENS_MAX 512 /* skeleton tokens kept of one SQL */
#define SKELETON_MAX_BYTES 8192 /* of one rendered skeleton */
#define MASK "#"                /* a run of masked question words */

/* ---- hashes and feature sets ------------------------------------------------- */

static uint64_t fnv(const char *s, size_t n, uint64_t h)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

#define FNV_BASIS 0xcbf29ce484222325ull

static uint64_t hash_str(const char *s)
{
	return fnv(s, strlen(s), FNV_BASIS);
}

static uint64_t hash_pair(uint64_t a, uint64_t b)
{
	return fnv((const char *)&b, sizeof b, fnv((const char *)&a, sizeof a, FNV_BASIS ^ 0x9e3779b97f4a7c15ull));
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
	return a < b ? -1 : a > b;
}

/* Sorts and de-duplicates f[0..n); returns the new count. */
static int set_of(uint64_t *f, int n)
{
	if (n > 1)
		qsort(f, (size_t)n, sizeof *f, cmp_u64);
	int k = 0;
	for (int i = 0; i < n; i++)
		if (!k || f[k - 1] != f[i])
			f[k++] = f[i];
	return k;
}

/* Unigrams (of tokens other than skip), bigrams and trigrams of a token
 * sequence, as a sorted set in a new array (*out, caller frees).
 * (Trigrams add four points to the skeleton match of context_recall's
 * example check; weighting by inverse document frequency added nothing.)
 * CONVBI_OK or ENOMEM. */
static int features(const uint64_t *tok, int n, uint64_t skip, uint64_t **out, int *nout)
{
	*out = NULL;
	*nout = 0;
	uint64_t *f = xmalloc(((size_t)n * 3 + 1) * sizeof *f);
	if (!f)
		return CONVBI_ENOMEM;
	int k = 0;
	for (int i = 0; i < n; i++) {
		if (tok[i] != skip)
			f[k++] = tok[i];
		if (i + 1 < n)
			f[k++] = hash_pair(tok[i], tok[i + 1]);
		if (i + 2 < n)
			f[k++] = hash_pair(hash_pair(tok[i], tok[i + 1]), tok[i + 2]);
	}
	*out = f;
	*nout = set_of(f, k);
	return CONVBI_OK;
}

static double jaccard(const uint64_t *a, int na, const uint64_t *b, int nb)
{
	if (!na && !nb)
		return 0;
	int i = 0, j = 0, both = 0;
	while (i < na && j < nb) {
		if (a[i] == b[j])
			both++, i++, j++;
		else if (a[i] < b[j])
			i++;
		else
			j++;
	}
	return (double)both / (double)(na + nb - both);
}

/* ---- the SQL tokenizer ------------------------------------------------------- */

enum tok_kind { TK_END, TK_WORD, TK_QNAME, TK_STRING, TK_NUMBER, TK_PUNCT };

struct tok {
	int kind;      /* enum tok_kind */
	const char *s; /* the token, quotes included */
	size_t len;
};

static int word_start(unsigned char c)
{
	return isalpha(c) || c == '_' || c >= 0x80;
}

static int word_char(unsigned char c)
{
	return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

/* Reads the token at p into t; returns where the next one starts. */
static const char *next_tok(const char *p, struct tok *t)
{
	for (;;) {
		while (*p && isspace((unsigned char)*p))
			p++;
		if (p[0] == '-' && p[1] == '-') {
			while (*p && *p != '\n')
				p++;
		} else if (p[0] == '/' && p[1] == '*') {
			const char *e = strstr(p + 2, "*/");
			p = e ? e + 2 : p + strlen(p);
		} else {
			break;
		}
	}
	t->s = p;
	unsigned char c = (unsigned char)*p;
	if (!c) {
		t->kind = TK_END;
		t->len = 0;
		return p;
	}
	if (c == '\'' || c == '"' || c == '`' || c == '[') {
		char close = c == '[' ? ']' : (char)c;
		const char *q = p + 1;
		while (*q && !(*q == close && q[1] != close))
			q += *q == close ? 2 : 1; /* a doubled quote inside */
		t->kind = c == '\'' ? TK_STRING : TK_QNAME;
		t->len = (size_t)(q - p) + (*q ? 1 : 0);
		return p + t->len;
	}
	if (isdigit(c) || (c == '.' && isdigit((unsigned char)p[1]))) {
		const char *q = p;
		while (isalnum((unsigned char)*q) || *q == '.' ||
		       ((*q == '+' || *q == '-') && (q[-1] == 'e' || q[-1] == 'E') && isdigit((unsigned char)*p)))
			q++;
		t->kind = TK_NUMBER;
		t->len = (size_t)(q - p);
		return q;
	}
	if (word_start(c)) {
		const char *q = p;
		while (word_char((unsigned char)*q))
			q++;
		t->kind = TK_WORD;
		t->len = (size_t)(q - p);
		return q;
	}
	static const char *const two[] = {"<=", ">=", "<>", "!=", "==", "||", "<<", ">>"};
	t->kind = TK_PUNCT;
	t->len = 1;
	for (size_t i = 0; i < sizeof two / sizeof two[0]; i++)
		if (p[0] == two[i][0] && p[1] == two[i][1])
			t->len = 2;
	return p + t->len;
}

static int cmp_kw(const void *key, const void *elem)
{
	return strcmp(key, *(const char *const *)elem);
}

/* 1 when the lower-case word w is a keyword of the skeleton. */
static int is_keyword(const char *w)
{
	static const char *const kw[] = {/* sorted */
	                                 "all",       "and",       "as",     "asc",          "between",      "by",
	                                 "case",      "collate",   "cross",  "current_date", "current_time", "current_timestamp",
	                                 "desc",      "distinct",  "else",   "end",          "escape",       "except",
	                                 "exists",    "false",     "filter", "first",        "from",         "full",
	                                 "glob",      "group",     "having", "in",           "inner",        "intersect",
	                                 "is",        "isnull",    "join",   "last",         "left",         "like",
	                                 "limit",     "natural",   "not",    "notnull",      "null",         "nulls",
	                                 "offset",    "on",        "or",     "order",        "outer",        "over",
	                                 "partition", "recursive", "regexp", "right",        "rows",         "select",
	                                 "then",      "true",      "union",  "using",        "values",       "when",
	                                 "where",     "window",    "with"};
	return bsearch(w, kw, sizeof kw / sizeof kw[0], sizeof kw[0], cmp_kw) != NULL;
}

/* The token's text lower-cased into out (cut to cap - 1 bytes). */
static void lower(char *out, size_t cap, const struct tok *t)
{
	size_t n = t->len < cap - 1 ? t->len : cap - 1;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)t->s[i]);
	out[n] = '\0';
}

/* Walks sql and calls emit(kind, text, payload) for every skeleton token
 * (text "_" for a name or literal run) and name(text, len, payload) for
 * every name and literal seen (quotes stripped), either may be NULL.
 * Returns the first non-zero return of a callback. */
static int skeleton_walk(const char *sql, int (*emit)(const char *text, void *payload),
                         int (*name)(const char *s, size_t len, void *payload), void *payload)
{
	struct tok t, nx;
	const char *p = next_tok(sql, &t);
	int prev_blank = 0, alias = 0, rc = 0;
	for (; t.kind != TK_END && !rc; t = nx) {
		p = next_tok(p, &nx);
		char w[64];
		lower(w, sizeof w, &t);
		int is_name = t.kind == TK_QNAME || t.kind == TK_STRING || t.kind == TK_NUMBER ||
		              (t.kind == TK_WORD && !is_keyword(w) && !(nx.kind == TK_PUNCT && nx.s[0] == '('));
		if (t.kind == TK_WORD && !strcmp(w, "as")) {
			alias = 1; /* "AS name" is dropped: aliases vary, structure does not */
			continue;
		}
		if (alias && (t.kind == TK_WORD || t.kind == TK_QNAME) && is_name) {
			alias = 0;
			continue;
		}
		alias = 0;
		if (t.kind == TK_PUNCT && t.len == 1 && (t.s[0] == ';' || (t.s[0] == '.' && prev_blank)))
			continue; /* a final ';' says nothing; "T1.name" is one name */
		if (is_name) {
			if (name && t.kind != TK_NUMBER)
				rc = t.kind == TK_WORD ? name(t.s, t.len, payload)
				                       : name(t.s + 1, t.len >= 2 ? t.len - 2 : 0, payload);
			if (!rc && !prev_blank && emit)
				rc = emit("_", payload);
			prev_blank = 1;
		} else {
			if (emit)
				rc = emit(w, payload);
			prev_blank = 0;
		}
	}
	return rc;
}

struct skel_text {
	struct buf *out;
	int n;
};

static int emit_text(const char *text, void *payload)
{
	struct skel_text *s = payload;
	int rc = s->n++ ? buf_putc(s->out, ' ') : CONVBI_OK;
	return rc ? rc : buf_puts(s->out, text);
}

int examples_skeleton(struct buf *out, const char *sql)
{
	struct skel_text s = {out, 0};
	return skeleton_walk(sql ? sql : "", emit_text, NULL, &s);
}

struct skel_hashes {
	uint64_t tok[SKELETON_TOKENS_MAX];
	int n;
	uint64_t whole;
};

static int emit_hash(const char *text, void *payload)
{
	struct skel_hashes *s = payload;
	if (s->n < SKELETON_TOKENS_MAX)
		s->tok[s->n++] = hash_str(text);
	s->whole = fnv(text, strlen(text) + 1, s->whole);
	return 0;
}

/* The skeleton's features (*f, caller frees) and whole hash. */
static int skeleton_features(const char *sql, uint64_t **f, int *nf, uint64_t *whole)
{
	struct skel_hashes *s = xmalloc(sizeof *s);
	if (!s)
		return CONVBI_ENOMEM;
	s->n = 0;
	s->whole = FNV_BASIS;
	skeleton_walk(sql, emit_hash, NULL, s);
	*whole = s->whole;
	int rc = features(s->tok, s->n, 0, f, nf);
	free(s);
	return rc;
}

/* ---- masked questions ----------------------------------------------------------- */

/* A growable sorted set of word hashes: the domain words to mask. */
struct wordset {
	uint64_t *h;
	size_t n, cap;
	int oom;
};

static void wordset_add_words(struct wordset *ws, const char *s, size_t len)
{
	char tmp[256];
	if (len >= sizeof tmp)
		len = sizeof tmp - 1;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	struct words w = {.n = 0};
	words_split(&w, tmp, 0);
	for (int i = 0; i < w.n; i++) {
		if (ws->n == ws->cap) {
			size_t cap = ws->cap ? ws->cap * 2 : 64;
			uint64_t *h = xrealloc(ws->h, cap * sizeof *h);
			if (!h) {
				ws->oom = 1;
				return;
			}
			ws->h = h;
			ws->cap = cap;
		}
		ws->h[ws->n++] = hash_str(w.w[i]);
	}
}

static int add_name(const char *s, size_t len, void *payload)
{
	wordset_add_words(payload, s, len);
	return 0;
}

static void wordset_seal(struct wordset *ws)
{
	ws->n = (size_t)set_of(ws->h, (int)ws->n);
}

static int wordset_has(const struct wordset *ws, uint64_t h)
{
	return ws->n && bsearch(&h, ws->h, ws->n, sizeof h, cmp_u64) != NULL;
}

/* Words that carry a question's structure, never masked even when a
 * column is called so ("count", "average", "year" stay maskable only when
 * not listed here). */
static int structural(const char *w)
{
	static const char *const list[] = {/* sorted */
	                                   "above",     "after",    "ascending", "average",    "avg",     "before",
	                                   "below",     "between",  "biggest",   "both",       "count",   "descending",
	                                   "different", "distinct", "earliest",  "either",     "except",  "fewer",
	                                   "first",     "greater",  "greatest",  "highest",    "larger",  "largest",
	                                   "last",      "latest",   "least",     "less",       "longest", "lowest",
	                                   "max",       "maximum",  "min",       "minimum",    "more",    "most",
	                                   "never",     "no",       "none",      "not",        "number",  "oldest",
	                                   "only",      "order",    "over",      "percentage", "ratio",   "shortest",
	                                   "smallest",  "sort",     "sorted",    "sum",        "top",     "total",
	                                   "under",     "unique",   "without",   "youngest"};
	return words_is_stop(w) || bsearch(w, list, sizeof list / sizeof list[0], sizeof list[0], cmp_kw);
}

/* The masked question's features: words of the domain (and numbers)
 * become one "#" per run. */
static int question_features(const char *question, const struct wordset *domain, uint64_t **f, int *nf)
{
	struct words w = {.n = 0};
	words_split(&w, question ? question : "", 0);
	uint64_t tok[WORDS_MAX], mask = hash_str(MASK);
	int n = 0;
	for (int i = 0; i < w.n; i++) {
		uint64_t h = hash_str(w.w[i]);
		int masked = isdigit((unsigned char)w.w[i][0]) || (!structural(w.w[i]) && wordset_has(domain, h));
		if (masked && n && tok[n - 1] == mask)
			continue;
		tok[n++] = masked ? mask : h;
	}
	return features(tok, n, mask, f, nf);
}

/* ---- the set -------------------------------------------------------------------- */

int examples_new(struct examples **out)
{
	*out = xcalloc(1, sizeof **out);
	return *out ? CONVBI_OK : CONVBI_ENOMEM;
}

static void example_release(struct example *e)
{
	free(e->question);
	free(e->sql);
	free(e->db);
	free(e->qf);
	free(e->sf);
}

void examples_free(struct examples *ex)
{
	if (!ex)
		return;
	for (size_t i = 0; i < ex->n; i++)
		example_release(&ex->v[i]);
	free(ex->v);
	free(ex);
}

int examples_add(struct examples *ex, const char *question, const char *sql, const char *db)
{
	if (ex->n >= EXAMPLES_MAX)
		return CONVBI_ETOOBIG;
	if (ex->n == ex->cap) {
		size_t cap = ex->cap ? ex->cap * 2 : 16;
		struct example *v = xrealloc(ex->v, cap * sizeof *v);
		if (!v)
			return CONVBI_ENOMEM;
		ex->v = v;
		ex->cap = cap;
	}
	struct example e = {0};
	struct wordset own = {0};
	int rc = CONVBI_OK;
	if (!(e.question = xstrdup(question)) || !(e.sql = xstrdup(sql)) || !(e.db = xstrdup(db ? db : "")))
		rc = CONVBI_ENOMEM;
	if (!rc) {
		skeleton_walk(sql, NULL, add_name, &own);
		wordset_seal(&own);
		rc = own.oom ? CONVBI_ENOMEM : question_features(question, &own, &e.qf, &e.nqf);
	}
	if (!rc)
		rc = skeleton_features(sql, &e.sf, &e.nsf, &e.skel);
	free(own.h);
	if (rc) {
		example_release(&e);
		return rc;
	}
	ex->v[ex->n++] = e;
	return CONVBI_OK;
}

/* ---- the file ------------------------------------------------------------------- */

/* The string field key of a line's object: NULL with *bad set when it is
 * present but not a string, or (required) missing or empty. */
static const char *text_field(const cJSON *o, const char *key, int required, const char **bad)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!v && !required)
		return NULL;
	if (!cJSON_IsString(v) || (required && !*v->valuestring)) {
		if (!*bad)
			*bad = key;
		return NULL;
	}
	return v->valuestring;
}

static int load_line(struct examples *ex, const char *path, long line, const char *s, size_t len, struct err *err)
{
	const char *why = NULL, *bad = NULL;
	size_t at = 0;
	cJSON *o = jsonx_parse_strict(s, len, &why, &at);
	int rc = CONVBI_OK;
	if (!o) {
		rc = err_set(err, CONVBI_EINVAL, "%s:%ld: the line %s (at byte %zu); write one JSON object per line", path, line,
		             why, at + 1);
		goto done;
	}
	if (!cJSON_IsObject(o)) {
		rc = err_set(err, CONVBI_EINVAL, "%s:%ld: the line is not a JSON object; write {\"question\", \"sql\", \"db\"}",
		             path, line);
		goto done;
	}
	const char *q = text_field(o, "question", 1, &bad), *sql = text_field(o, "sql", 1, &bad);
	const char *db = text_field(o, "db", 0, &bad);
	if (bad) {
		rc = err_set(err, CONVBI_EINVAL,
		             "%s:%ld: `%s` is missing or not a non-empty string; give each example "
		             "{\"question\", \"sql\", \"db\"}",
		             path, line, bad);
		goto done;
	}
	if (strlen(q) > EXAMPLES_TEXT_MAX_BYTES || strlen(sql) > EXAMPLES_TEXT_MAX_BYTES) {
		rc = err_set(err, CONVBI_EINVAL, "%s:%ld: the %s is over %zu bytes; keep examples short", path, line,
		             strlen(q) > EXAMPLES_TEXT_MAX_BYTES ? "question" : "SQL", EXAMPLES_TEXT_MAX_BYTES);
		goto done;
	}
	rc = examples_add(ex, q, sql, db);
	if (rc == CONVBI_ETOOBIG)
		err_set(err, rc, "%s:%ld: more than %d examples; keep the file to the verified ones that matter", path, line,
		        EXAMPLES_MAX);
	else if (rc)
		err_code(err, rc);
done:
	cJSON_Delete(o);
	return rc;
}

int examples_load(struct examples **out, const char *path, struct err *err)
{
	*out = NULL;
	char *text = NULL;
	size_t len = 0;
	mode_t mode = 0;
	int e = regfile_read(path, EXAMPLES_MAX_BYTES, &text, &len, &mode);
	if (e == EFBIG)
		return err_set(err, CONVBI_ETOOBIG,
		               "examples file `%s` is over %zu bytes; keep the verified examples that matter", path,
		               EXAMPLES_MAX_BYTES);
	if (e == ENOMEM)
		return err_code(err, CONVBI_ENOMEM);
	if (e)
		return err_set(err, CONVBI_EINVAL, "examples file `%s` cannot be read (%s); check the path given to --examples",
		               path, regfile_strerror(e, mode));
	size_t badat = 0;
	if (!utf8_valid(text, len, &badat)) {
		free(text);
		return err_set(err, CONVBI_EINVAL, "examples file `%s` is not UTF-8 (byte %zu); save it as UTF-8", path,
		               badat + 1);
	}
	struct examples *ex = NULL;
	int rc = examples_new(&ex);
	if (rc)
		err_code(err, rc);
	long line = 0;
	for (size_t i = 0; !rc && i < len; line++) {
		const char *eol = memchr(text + i, '\n', len - i);
		size_t n = eol ? (size_t)(eol - (text + i)) : len - i;
		size_t k = 0;
		while (k < n && isspace((unsigned char)text[i + k]))
			k++;
		if (k < n)
			rc = load_line(ex, path, line + 1, text + i, n, err);
		i += n + 1;
	}
	free(text);
	if (rc) {
		examples_free(ex);
		return rc;
	}
	*out = ex;
	return CONVBI_OK;
}

/* ---- choosing and rendering --------------------------------------------------------- */

int examples_choose(const struct examples *ex, const struct examples_query *q, int k, size_t *picked, int *npicked)
{
	*npicked = 0;
	if (!ex || !ex->n || k <= 0)
		return CONVBI_OK;
	struct wordset domain = {0};
	uint64_t *qf = NULL, *sf = NULL, whole = 0;
	int nqf = 0, nsf = 0, rc = CONVBI_OK;
	double *score = xmalloc(ex->n * sizeof *score);
	if (!score)
		return CONVBI_ENOMEM;
	for (size_t i = 0; i < q->ndomain && !domain.oom; i++)
		if (q->domain[i])
			wordset_add_words(&domain, q->domain[i], strlen(q->domain[i]));
	wordset_seal(&domain);
	rc = domain.oom ? CONVBI_ENOMEM : question_features(q->question, &domain, &qf, &nqf);
	if (!rc && q->draft)
		rc = skeleton_features(q->draft, &sf, &nsf, &whole);
	for (size_t i = 0; !rc && i < ex->n; i++) {
		const struct example *e = &ex->v[i];
		score[i] = q->exclude_db && !strcmp(e->db, q->exclude_db)
		                   ? -1
		                   : jaccard(qf, nqf, e->qf, e->nqf) + (q->draft ? jaccard(sf, nsf, e->sf, e->nsf) : 0);
	}
	while (!rc && *npicked < k) {
		size_t best = ex->n;
		for (size_t i = 0; i < ex->n; i++) {
			if (score[i] < 0 || (best < ex->n && score[i] <= score[best]))
				continue;
			int dup = 0;
			for (int j = 0; j < *npicked && !dup; j++)
				dup = picked[j] == i || (!strcmp(ex->v[picked[j]].question, ex->v[i].question) &&
				                         !strcmp(ex->v[picked[j]].sql, ex->v[i].sql));
			if (!dup)
				best = i;
		}
		if (best == ex->n)
			break;
		picked[(*npicked)++] = best;
		score[best] = -1;
	}
	free(domain.h);
	free(qf);
	free(sf);
	free(score);
	return rc;
}

int examples_render(struct buf *out, const struct examples *ex, const size_t *picked, int n, size_t budget)
{
	size_t start = out->len;
	int rc = CONVBI_OK, kept = 0;
	for (int i = 0; i < n && !rc; i++) {
		const struct example *e = &ex->v[picked[i]];
		size_t before = out->len;
		rc = buf_printf(out, "%sQuestion: %s\nSQL: %s\n", kept ? "\n" : "", e->question, e->sql);
		if (!rc && out->len - start > budget) { /* half an example would mislead: leave it out */
			out->len = before;
			if (out->data)
				out->data[before] = '\0';
			continue;
		}
		kept++;
	}
	return rc;
}
