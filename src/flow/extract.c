/* extract.c -- SQL, JSON and labels out of model replies (see extract.h).
 *
 * How it works: four PCRE2 patterns, compiled on first use under a mutex
 * (an atomic flag makes later calls lock-free; a failed compile leaves the
 * flag clear so the next call retries) and never freed.  All PCRE2 memory
 * goes through xmalloc by way of a general context, so the allocation
 * torture hook reaches it.  The patterns are byte-oriented (no UTF mode: a
 * reply may be invalid UTF-8) and written with possessive quantifiers; a
 * match limit bounds the work on hostile input anyway.
 *
 *   fence_open  a ``` fence opener and its info string ("sql", "json", "")
 *   sql_start   SELECT/WITH/VALUES at a line start or after "SQL:"/"Query:"
 *   sql_head    anchored: a statement that starts like SQL (after blanks
 *               and comments): SELECT, VALUES (, WITH name [(cols)] AS (
 *   sql_cont    anchored: a line that continues SQL (indented, a clause
 *               keyword, punctuation) rather than prose
 *
 * Fences: content runs from the line after the opener to the next line
 * starting with ```, else the next ``` anywhere, else the end (a reply cut
 * off by max_tokens still yields its SQL).
 */
#include "flow/extract.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <assert.h>
#include <limits.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "convbi/convbi.h"
#include "util/alloc.h"
#include "util/jsonx.h"

/* Bounds on the work one pattern match may do. */
#define EXTRACT_MATCH_LIMIT 1000000u
#define EXTRACT_DEPTH_LIMIT 10000u

/* Internal: "this step found nothing", distinct from every CONVBI_* code. */
#define NOT_FOUND (-1)

/* ---- patterns ----------------------------------------------------------- */

enum { P_FENCE_OPEN, P_SQL_START, P_SQL_HEAD, P_SQL_CONT, P_COUNT };

static const char *const pattern_src[P_COUNT] = {
        [P_FENCE_OPEN] = "(?m)(?:^[ \\t]*+|(?<=\\s))```++[ \\t]*+([A-Za-z0-9_+.#-]*+)[ \\t]*+\\r?(?:\\n|\\z)",
        [P_SQL_START] =
                "(?im)(?:^[ \\t>]*+(?:(?:sql|query)[*_]*+[ \\t]*+:[*_]*+[ \\t]*+)?"
                "|\\b(?:sql|query)[*_]*+[ \\t]*+:[*_]*+\\s*+)"
                "\\b(select|with|values)\\b",
        [P_SQL_HEAD] =
                "(?is)(?:\\s++|--[^\\n]*+|/\\*.*?\\*/)*+"
                "(?:select(?=[\\s*(]|\\z)|values\\s*+\\("
                "|with\\s++(?:recursive\\s++)?(?:\"[^\"]{1,256}+\"|`[^`]{1,256}+`|\\[[^\\]]{1,256}+\\]"
                "|\\w{1,256}+)\\s*+(?:\\([^)]{0,1024}+\\)\\s*+)?as\\s*+(?:(?:not\\s++)?materialized\\s*+)?\\()",
        [P_SQL_CONT] =
                "(?i)[ \\t(),;*'\"0-9]|--|/\\*|(?:from|where|group|order|having|limit|offset"
                "|join|left|right|inner|outer|full|cross|natural|union|intersect|except|and"
                "|or|on|using|select|with|values|as|case|when|then|else|end|not|in|exists"
                "|between|like|is|window|partition|over|desc|asc|fetch)\\b",
};

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int patterns_ready;     /* 1 once everything below is set */
static pcre2_general_context *gctx;   /* allocations through xmalloc */
static pcre2_match_context *mctx;     /* the match limits */
static pcre2_code *patterns[P_COUNT]; /* compiled once, never freed */

static void *pcre_malloc(PCRE2_SIZE n, void *data)
{
	(void)data;
	return xmalloc(n);
}

static void pcre_free(void *p, void *data)
{
	(void)data;
	free(p);
}

static void drop_patterns(void)
{
	for (int k = 0; k < P_COUNT; k++) {
		pcre2_code_free(patterns[k]);
		patterns[k] = NULL;
	}
	pcre2_match_context_free(mctx);
	mctx = NULL;
	pcre2_general_context_free(gctx);
	gctx = NULL;
}

/* Compiles the patterns once.  A syntax error in our own pattern is a
 * programmer error (the assert); at run time a failure can only mean memory
 * ran out: CONVBI_ENOMEM, and the next call tries again. */
static int patterns_init(void)
{
	if (atomic_load_explicit(&patterns_ready, memory_order_acquire))
		return CONVBI_OK;
	int rc = CONVBI_OK;
	pthread_mutex_lock(&init_lock);
	if (!atomic_load_explicit(&patterns_ready, memory_order_relaxed)) {
		pcre2_compile_context *cctx = NULL;
		gctx = pcre2_general_context_create(pcre_malloc, pcre_free, NULL);
		if (gctx)
			mctx = pcre2_match_context_create(gctx);
		if (gctx)
			cctx = pcre2_compile_context_create(gctx);
		if (!mctx || !cctx) {
			rc = CONVBI_ENOMEM;
		} else {
			pcre2_set_match_limit(mctx, EXTRACT_MATCH_LIMIT);
			pcre2_set_depth_limit(mctx, EXTRACT_DEPTH_LIMIT);
			for (int k = 0; k < P_COUNT && !rc; k++) {
				int ecode;
				PCRE2_SIZE eoff;
				patterns[k] =
				        pcre2_compile((PCRE2_SPTR)pattern_src[k], PCRE2_ZERO_TERMINATED, 0, &ecode, &eoff, cctx);
				assert(patterns[k] || ecode == PCRE2_ERROR_HEAP_FAILED);
				if (!patterns[k])
					rc = CONVBI_ENOMEM;
			}
		}
		pcre2_compile_context_free(cctx);
		if (rc)
			drop_patterns();
		else
			atomic_store_explicit(&patterns_ready, 1, memory_order_release);
	}
	pthread_mutex_unlock(&init_lock);
	return rc;
}

/* Per-call state: the reply and the match data block all patterns share. */
struct scan {
	const char *s;
	size_t n;
	pcre2_match_data *md; /* owned by the call */
	int nomem;            /* a match ran out of memory: the call fails */
	size_t no_closer;     /* no line starts with ``` at or after this */
};

static int scan_open(struct scan *sc, const char *text, size_t len)
{
	sc->s = text;
	sc->n = len;
	sc->md = NULL;
	sc->nomem = 0;
	sc->no_closer = len;
	int rc = patterns_init();
	if (rc)
		return rc;
	sc->md = pcre2_match_data_create(4, gctx);
	return sc->md ? CONVBI_OK : CONVBI_ENOMEM;
}

static void scan_close(struct scan *sc)
{
	pcre2_match_data_free(sc->md);
	sc->md = NULL;
}

/* Matches pattern k against s[from..to) (anchored if asked).  Returns 1 and
 * fills ov[0..3] (whole match, group 1; group 1 unset = PCRE2_UNSET) on a
 * match, 0 on none (including a hit match limit).  Running out of memory
 * for the backtracking frames also returns 0 but marks the scan, so that
 * the call reports CONVBI_ENOMEM instead of a wrong answer. */
static int match(struct scan *sc, int k, size_t from, size_t to, int anchored, size_t ov[4])
{
	if (sc->nomem)
		return 0;
	int r = pcre2_match(patterns[k], (PCRE2_SPTR)sc->s, to, from, anchored ? PCRE2_ANCHORED : 0, sc->md, mctx);
	if (r == PCRE2_ERROR_NOMEMORY)
		sc->nomem = 1;
	if (r <= 0)
		return 0;
	PCRE2_SIZE *v = pcre2_get_ovector_pointer(sc->md);
	ov[0] = v[0];
	ov[1] = v[1];
	ov[2] = r > 1 ? v[2] : PCRE2_UNSET;
	ov[3] = r > 1 ? v[3] : PCRE2_UNSET;
	return 1;
}

/* ---- small text helpers ------------------------------------------------- */

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static int ieq(const char *s, size_t n, const char *lit)
{
	if (strlen(lit) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (lower(s[i]) != lit[i])
			return 0;
	return 1;
}

static int is_word(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c >= 0x80;
}

/* The offset just past the line that contains pos (or n). */
static size_t next_line(const char *s, size_t n, size_t pos)
{
	const char *nl = memchr(s + pos, '\n', n - pos);
	return nl ? (size_t)(nl - s) + 1 : n;
}

static size_t skip_blanks(const char *s, size_t n, size_t pos)
{
	while (pos < n && (s[pos] == ' ' || s[pos] == '\t'))
		pos++;
	return pos;
}

/* ---- fences ---------------------------------------------------------------- */

struct fence {
	size_t info, info_len; /* the info string ("sql"), maybe empty */
	size_t body, body_end; /* the content */
	size_t next;           /* where to look for the next fence */
};

/* Finds the first fence opening at or after from. */
static int find_fence(struct scan *sc, size_t from, struct fence *f)
{
	size_t ov[4];
	if (from >= sc->n || !match(sc, P_FENCE_OPEN, from, sc->n, 0, ov))
		return 0;
	f->info = ov[2];
	f->info_len = ov[3] - ov[2];
	f->body = ov[1];
	/* the closer: a line starting with ```, else ``` anywhere, else the end;
	 * a fruitless line scan is remembered, or replies with many mid-line
	 * fences would be rescanned to the end once per fence */
	const char *s = sc->s;
	size_t n = sc->n, close = n;
	for (size_t line = f->body; line < sc->no_closer; line = next_line(s, n, line)) {
		size_t p = skip_blanks(s, n, line);
		if (p + 3 <= n && !memcmp(s + p, "```", 3)) {
			close = line;
			break;
		}
	}
	if (close == n && f->body < sc->no_closer)
		sc->no_closer = f->body;
	if (close == n) {
		const char *tick = memmem(s + f->body, n - f->body, "```", 3);
		if (tick)
			close = (size_t)(tick - s);
	}
	f->body_end = close;
	f->next = close < n ? next_line(s, n, close) : n;
	if (f->next <= ov[0])
		f->next = ov[0] + 1; /* always progress */
	return 1;
}

static int info_is_sql(const struct scan *sc, const struct fence *f)
{
	static const char *const langs[] = {"sql",   "sqlite", "sqlite3", "postgresql", "postgres", "psql",    "pgsql",
	                                    "mysql", "mssql",  "tsql",    "t-sql",      "plsql",    "ansi-sql"};
	for (size_t k = 0; k < sizeof langs / sizeof langs[0]; k++)
		if (ieq(sc->s + f->info, f->info_len, langs[k]))
			return 1;
	return 0;
}

/* ---- SQL ------------------------------------------------------------------- */

/* Trims s[*a..*b): leading blanks and semicolons and a leftover "sql"
 * line, trailing blanks and semicolons. */
static void tidy_sql(const char *s, size_t *a, size_t *b)
{
	while (*a < *b && (is_space(s[*a]) || s[*a] == ';'))
		(*a)++;
	if (*b - *a >= 3 && ieq(s + *a, 3, "sql")) {
		size_t p = *a + 3;
		while (p < *b && (s[p] == ' ' || s[p] == '\t' || s[p] == '\r'))
			p++;
		if (p == *b || s[p] == '\n')
			*a = p;
	}
	while (*a < *b && is_space(s[*a]))
		(*a)++;
	while (*b > *a && (is_space(s[*b - 1]) || s[*b - 1] == ';'))
		(*b)--;
}

/* Appends the tidied s[a..b) to out; NOT_FOUND if nothing is left. */
static int put_sql(struct buf *out, const char *s, size_t a, size_t b)
{
	tidy_sql(s, &a, &b);
	if (a == b)
		return NOT_FOUND;
	return buf_add(out, s + a, b - a);
}

/* Whether s[a..b) starts like a SQL statement. */
static int looks_like_sql(struct scan *sc, size_t a, size_t b)
{
	size_t ov[4];
	tidy_sql(sc->s, &a, &b);
	return a < b && match(sc, P_SQL_HEAD, a, b, 1, ov);
}

static int is_blank_line(const char *s, size_t n, size_t line)
{
	size_t p = line;
	while (p < n && s[p] != '\n' && is_space(s[p]))
		p++;
	return p >= n || s[p] == '\n';
}

/* Whether the line at `line` carries on a statement rather than prose. */
static int continues_sql(struct scan *sc, size_t line)
{
	size_t ov[4];
	return match(sc, P_SQL_CONT, line, sc->n, 1, ov);
}

/* Where bare SQL starting at kw ends: a closing fence line, or a blank line
 * (or a line after one ending in ';') followed by prose. */
static size_t bare_end(struct scan *sc, size_t kw)
{
	const char *s = sc->s;
	size_t n = sc->n, prev = kw;
	for (size_t line = next_line(s, n, kw); line < n; line = next_line(s, n, line)) {
		size_t p = skip_blanks(s, n, line);
		if (p + 3 <= n && !memcmp(s + p, "```", 3))
			return line;
		if (is_blank_line(s, n, line)) {
			size_t q = line;
			while (q < n && is_blank_line(s, n, q))
				q = next_line(s, n, q);
			if (q >= n || !continues_sql(sc, q))
				return line;
			line = q;
			prev = q;
			continue;
		}
		size_t e = line; /* end of the previous line, without blanks */
		while (e > prev && is_space(s[e - 1]))
			e--;
		if (e > prev && s[e - 1] == ';' && !continues_sql(sc, line))
			return line;
		prev = line;
	}
	return n;
}

/* Whether s[a..b), tidied, ends like a sentence: SQL never ends in '.',
 * ':', '?' or '!', prose ("Select one of these:") does. */
static int ends_like_prose(const char *s, size_t a, size_t b)
{
	tidy_sql(s, &a, &b);
	return b > a && strchr(".:?!", s[b - 1]) != NULL;
}

/* The start of the first line after kw's that does not continue SQL, or
 * end: the fallback for SQL followed by prose with no blank line. */
static size_t first_prose_line(struct scan *sc, size_t kw, size_t end)
{
	for (size_t line = next_line(sc->s, end, kw); line < end; line = next_line(sc->s, end, line))
		if (!continues_sql(sc, line))
			return line;
	return end;
}

/* Step 4: the first plausible bare statement.  Cost stays linear in the
 * reply: the first-line test uses a per-line cache, and a statement that
 * is scanned and rejected is skipped whole (every candidate inside it
 * would end at the same place). */
static int bare_sql(struct scan *sc, struct buf *out)
{
	const char *s = sc->s;
	size_t ov[4], from = 0, line_end = 0, line_tidy = 0, tmp;
	while (from < sc->n && match(sc, P_SQL_START, from, sc->n, 0, ov)) {
		size_t kw = ov[2];
		from = ov[1];
		if (kw >= line_end) {
			line_end = next_line(s, sc->n, kw);
			line_tidy = line_end;
			tmp = kw;
			tidy_sql(s, &tmp, &line_tidy);
		}
		if (line_tidy > kw && strchr(".:?!", s[line_tidy - 1]))
			continue; /* the keyword's line reads as a sentence */
		if (!match(sc, P_SQL_HEAD, kw, sc->n, 1, ov))
			continue;
		size_t end = bare_end(sc, kw);
		if (!ends_like_prose(s, kw, end))
			return put_sql(out, s, kw, end);
		size_t cut = first_prose_line(sc, kw, end);
		if (!ends_like_prose(s, kw, cut))
			return put_sql(out, s, kw, cut);
		if (end > from)
			from = end;
	}
	return NOT_FOUND;
}

/* Finds the first span [*a, *b) in s[from..to) that is a JSON object.
 * Each '{' tried costs one *budget; scanning stops when it is spent, which
 * bounds the work on replies full of unbalanced braces. */
static int next_json_object(const char *s, size_t from, size_t to, int *budget, size_t *a, size_t *b)
{
	for (size_t i = from; i < to; i++) {
		if (s[i] != '{')
			continue;
		if (*budget <= 0)
			return 0;
		--*budget;
		size_t depth = 0, j = i;
		int in_str = 0;
		for (; j < to; j++) {
			char c = s[j];
			if (in_str) {
				if (c == '\\')
					j++;
				else if (c == '"')
					in_str = 0;
			} else if (c == '"') {
				in_str = 1;
			} else if (c == '{') {
				depth++;
			} else if (c == '}' && --depth == 0) {
				break;
			}
		}
		if (j >= to)
			continue;
		cJSON *doc = jsonx_parse(s + i, j + 1 - i);
		int ok = cJSON_IsObject(doc);
		cJSON_Delete(doc);
		if (ok) {
			*a = i;
			*b = j + 1;
			return 1;
		}
	}
	return 0;
}

/* Step 3: the "sql" field of the first JSON object that has one. */
static int json_sql(struct scan *sc, struct buf *out)
{
	size_t from = 0, a, b;
	int budget = EXTRACT_MAX_JSON_TRIES;
	while (next_json_object(sc->s, from, sc->n, &budget, &a, &b)) {
		cJSON *doc = jsonx_parse(sc->s + a, b - a);
		const char *sql = jsonx_str(doc, "sql");
		int rc = NOT_FOUND;
		if (sql)
			rc = put_sql(out, sql, 0, strlen(sql));
		cJSON_Delete(doc);
		if (rc != NOT_FOUND)
			return rc;
		from = a + 1;
	}
	return NOT_FOUND;
}

/* Steps 1 and 2: a fence, sql-labelled (want_sql_info) or looking like SQL. */
static int fenced_sql(struct scan *sc, struct buf *out, int want_sql_info)
{
	struct fence f;
	for (size_t from = 0; find_fence(sc, from, &f); from = f.next) {
		int take = want_sql_info ? info_is_sql(sc, &f) : looks_like_sql(sc, f.body, f.body_end);
		if (take) {
			int rc = put_sql(out, sc->s, f.body, f.body_end);
			if (rc != NOT_FOUND)
				return rc;
		}
	}
	return NOT_FOUND;
}

static int check_input(const char *text, size_t len, struct err *err)
{
	if (!text && len)
		return err_set(err, CONVBI_EINVAL, "no reply text to read");
	if (len > EXTRACT_MAX_INPUT)
		return err_set(err, CONVBI_ETOOBIG, "the model's reply is %zu bytes; the limit is %zu", len, EXTRACT_MAX_INPUT);
	const char *nul = len ? memchr(text, '\0', len) : NULL;
	if (nul)
		return err_set(err, CONVBI_EPROTOCOL,
		               "the model's reply contains a NUL byte at offset "
		               "%zu; it is not text",
		               (size_t)(nul - text));
	return CONVBI_OK;
}

int extract_sql(struct buf *out, const char *text, size_t len, struct err *err)
{
	struct scan sc = {0};
	if (!text && !len)
		text = "";
	int rc = check_input(text, len, err);
	if (!rc)
		rc = scan_open(&sc, text, len);
	if (!rc) {
		rc = fenced_sql(&sc, out, 1);
		if (rc == NOT_FOUND)
			rc = fenced_sql(&sc, out, 0);
		if (rc == NOT_FOUND)
			rc = json_sql(&sc, out);
		if (rc == NOT_FOUND)
			rc = bare_sql(&sc, out);
		if (sc.nomem)
			rc = err_code(err, CONVBI_ENOMEM);
		else if (rc == NOT_FOUND)
			rc = err_set(err, CONVBI_EPROTOCOL,
			             "the model's reply contains no SQL; it must hold one SELECT, in a "
			             "```sql block or a JSON \"sql\" field");
		else if (rc == CONVBI_ETOOBIG)
			rc = err_set(err, rc, "the SQL exceeds its %zu-byte cap", out->max);
		else if (rc)
			rc = err_code(err, rc);
	} else if (rc == CONVBI_ENOMEM) {
		err_code(err, rc);
	}
	scan_close(&sc);
	if (rc)
		buf_release(out);
	return rc;
}

/* ---- JSON and labels -------------------------------------------------------- */

int extract_json_object(struct buf *out, const char *text, size_t len)
{
	struct scan sc = {0};
	if (!text && !len)
		text = "";
	size_t a = 0, b = 0;
	int found = 0, budget = EXTRACT_MAX_JSON_TRIES;
	int rc = check_input(text, len, NULL);
	if (!rc)
		rc = scan_open(&sc, text, len);
	if (!rc) {
		struct fence f;
		for (size_t from = 0; !found && find_fence(&sc, from, &f); from = f.next)
			if (ieq(text + f.info, f.info_len, "json"))
				found = next_json_object(text, f.body, f.body_end, &budget, &a, &b);
		if (!found)
			found = next_json_object(text, 0, len, &budget, &a, &b);
		rc = sc.nomem ? CONVBI_ENOMEM : found ? buf_add(out, text + a, b - a) : CONVBI_EPROTOCOL;
	}
	scan_close(&sc);
	if (rc)
		buf_release(out);
	return rc;
}

/* The first whole-word case-insensitive occurrence of lab in s, or n. */
static size_t find_word(const char *s, size_t n, const char *lab, size_t l)
{
	for (size_t i = 0; i + l <= n; i++) {
		if (i > 0 && is_word((unsigned char)s[i - 1]))
			continue;
		size_t k = 0;
		while (k < l && lower(s[i + k]) == lower(lab[k]))
			k++;
		if (k == l && (i + l == n || !is_word((unsigned char)s[i + l])))
			return i;
	}
	return n;
}

int extract_label(const char *text, size_t len, const char *const *labels, size_t n)
{
	if (!text || !labels)
		return -1;
	if (len > EXTRACT_MAX_INPUT)
		len = EXTRACT_MAX_INPUT;
	int best = -1;
	size_t best_at = len, best_len = 0;
	for (size_t k = 0; k < n && k < (size_t)INT_MAX; k++) {
		if (!labels[k] || !labels[k][0])
			continue;
		size_t l = strlen(labels[k]);
		size_t at = find_word(text, len, labels[k], l);
		if (at < len && (at < best_at || (at == best_at && l > best_len))) {
			best = (int)k;
			best_at = at;
			best_len = l;
		}
	}
	return best;
}
