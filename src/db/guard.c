/* guard.c -- the SQL gate (see guard.h for the layers and the contract).
 *
 * Chapters: the lexical scanner (comments, whitespace, the first keyword,
 * the tail), the PCRE2 first filter (messages and dialect hints only), the
 * authorizer with its function allow-list, SQLite error mapping, and the
 * gate itself (guard_prepare).
 *
 * The scanner knows SQLite's comment rules: "--" runs to the end of the
 * line, "/ *" to the matching "* /" or to the end of the input.  It never
 * looks inside string literals because it is only applied where SQLite
 * says a statement begins (the start) or ended (pzTail).
 *
 * Trap: the authorizer stays installed for the connection's life, so it
 * also judges statements SQLite re-prepares during sqlite3_step and the
 * nested statements VACUUM runs; guard_init must therefore come after
 * every statement exec_open runs for itself.
 */
#include "db/guard.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convbi/convbi.h"
#include "db/exec.h"
#include "db/exec_impl.h"
#include "db/ro.h"
#include "db/sqltext.h"
#include "db/views.h"
#include "util/alloc.h"
#include "util/clock.h"

/* ---- scanner ---------------------------------------------------------------- */

/* The index of the first byte at or after i that is not whitespace, a
 * comment or (when `semis`) a semicolon. */
static size_t skip_ignorable(const char *s, size_t len, size_t i, int semis)
{
	while (i < len) {
		char c = s[i];
		size_t end;
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || (semis && c == ';'))
			i++;
		else if ((end = sql_comment_end(s, len, i)) != i)
			i = end;
		else
			break;
	}
	return i;
}

/* The length of the keyword-like word at s[i..len). */
static size_t word_len(const char *s, size_t len, size_t i)
{
	size_t n = 0;
	while (i + n < len) {
		char c = s[i + n];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || (n && c >= '0' && c <= '9')))
			break;
		n++;
	}
	return n;
}

static int word_is(const char *w, size_t n, const char *kw)
{
	return strlen(kw) == n && sqlite3_strnicmp(w, kw, (int)n) == 0;
}

/* ---- the PCRE2 first filter ------------------------------------------------ */

/* Patterns run over the whole text before SQLite sees it.  A match never
 * decides anything: a STMT message is used only when a real layer refuses
 * and the authorizer gave no better reason; a HINT is appended only to a
 * compile error. */
enum { F_STMT, F_HINT };

#define LEAD "\\A(?:\\s|--[^\\n]*+|/\\*(?:[^*]|\\*(?!/))*+(?:\\*/)?|;)*+"

static const struct filter {
	int kind;
	const char *re;
	const char *msg;
} filters[] = {
        {F_STMT, LEAD "(?:INSERT|REPLACE|UPSERT)\\b", "the SQL is an INSERT statement; only SELECT is allowed"},
        {F_STMT, LEAD "UPDATE\\b", "the SQL is an UPDATE statement; only SELECT is allowed"},
        {F_STMT, LEAD "DELETE\\b", "the SQL is a DELETE statement; only SELECT is allowed"},
        {F_STMT, LEAD "CREATE\\s+(?:TEMP|TEMPORARY)\\s+(?:TABLE|VIEW)\\b",
         "the SQL creates a temporary table or view (CREATE TEMP); use a WITH clause instead, only SELECT is allowed"},
        {F_STMT, LEAD "CREATE\\b", "the SQL is a CREATE statement and changes the schema; only SELECT is allowed"},
        {F_STMT, LEAD "DROP\\b", "the SQL is a DROP statement and changes the schema; only SELECT is allowed"},
        {F_STMT, LEAD "ALTER\\b", "the SQL is an ALTER statement and changes the schema; only SELECT is allowed"},
        {F_STMT, LEAD "PRAGMA\\b", "PRAGMA statements are not allowed; the schema is already given, so send one SELECT"},
        {F_STMT, LEAD "(?:ATTACH|DETACH)\\b", "ATTACH and DETACH are not allowed; only the connected database can be read"},
        {F_STMT, LEAD "(?:BEGIN|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE)\\b",
         "transaction statements (BEGIN, COMMIT, SAVEPOINT, ...) are not allowed; send one SELECT"},
        {F_STMT, LEAD "(?:VACUUM|REINDEX|ANALYZE)\\b",
         "maintenance statements (VACUUM, REINDEX, ANALYZE) are not allowed; send one SELECT"},
        {F_STMT, LEAD "EXPLAIN\\b", "EXPLAIN is not allowed; send the SELECT itself"},
        {F_STMT, "\\bload_extension\\s*\\(", "function load_extension() is not allowed"},
        {F_STMT, "\\b(?:pragma_\\w+|dbstat|sqlite_stmt|sqlite_dbpage)\\b",
         "table-valued functions pragma_*, dbstat and sqlite_stmt are not allowed; query the database's own tables"},
        {F_HINT, "\\bSELECT\\s+(?:DISTINCT\\s+)?TOP\\b", "SQLite has no TOP; put LIMIT n at the end"},
        {F_HINT, "\\bILIKE\\b", "SQLite has no ILIKE; LIKE already ignores ASCII case"},
        {F_HINT, "\\b(?:NOW|GETDATE|CURDATE|SYSDATE|SYSDATETIME)\\s*\\(",
         "SQLite has no NOW(); use datetime('now') or date('now')"},
        {F_HINT, "\\b(?:DATEDIFF|DATE_DIFF|DATEADD|DATE_ADD|DATE_SUB|DATE_TRUNC|DATEPART|DATE_PART)\\s*\\(",
         "SQLite has no DATEDIFF/DATEADD; use julianday(a) - julianday(b) or date(x, '+N days')"},
        {F_HINT, "\\bEXTRACT\\s*\\(", "SQLite has no EXTRACT; use strftime('%Y', x) and friends"},
        {F_HINT, "\\b(?:YEAR|MONTH|DAY)\\s*\\(", "SQLite has no YEAR()/MONTH()/DAY(); use strftime('%Y', x), '%m', '%d'"},
        {F_HINT, "::\\s*[A-Za-z]", "SQLite has no :: casts; use CAST(x AS type)"},
        {F_HINT, "\\bINTERVAL\\s+'?\\d", "SQLite has no INTERVAL; use date(x, '+N days')"},
        {F_HINT, "\\b(?:STRING_AGG|LISTAGG|ARRAY_AGG)\\s*\\(", "use group_concat(x, ',') to join values"},
        {F_HINT, "\\bFETCH\\s+(?:FIRST|NEXT)\\b", "SQLite has no FETCH FIRST; use LIMIT n"},
        {F_HINT, "\\bCONCAT\\s*\\(", "this SQLite has no CONCAT(); join strings with a || b"},
        {F_HINT, "\\b(?:ISNULL|NVL)\\s*\\(", "use ifnull(x, y) or coalesce(x, y)"},
        {F_HINT, "\\bLEN\\s*\\(", "SQLite has no LEN(); use length(x)"},
        {F_HINT, "\\bCHARINDEX\\s*\\(", "SQLite has no CHARINDEX(); use instr(haystack, needle)"},
        {F_HINT, "\\b(?:LEFT|RIGHT)\\s*\\(\\s*[^\\s(]", "SQLite has no LEFT()/RIGHT(); use substr(x, 1, n) or substr(x, -n)"},
};

#define NFILTERS (sizeof filters / sizeof filters[0])
static_assert(sizeof filters / sizeof filters[0] <= EXEC_FILTER_SLOTS, "EXEC_FILTER_SLOTS is too small");

/* The message of the first filter of `kind` matching sql, or NULL. */
static const char *filter_match(struct exec *x, int kind, const char *sql, size_t len)
{
	const char *hit = NULL;
	pcre2_match_data *md = NULL;
	pcre2_match_context *mc = pcre2_match_context_create(NULL);
	if (!mc)
		return NULL;
	pcre2_set_match_limit(mc, 100000); /* a message is not worth more */
	for (size_t i = 0; i < NFILTERS && !hit; i++) {
		if (filters[i].kind != kind || !x->filter[i])
			continue;
		if (!md)
			md = pcre2_match_data_create_from_pattern(x->filter[i], NULL);
		if (!md)
			break;
		if (pcre2_match(x->filter[i], (PCRE2_SPTR)sql, len, 0, 0, md, mc) >= 0)
			hit = filters[i].msg;
	}
	pcre2_match_data_free(md);
	pcre2_match_context_free(mc);
	return hit;
}

/* ---- the authorizer ---------------------------------------------------------- */

/* Functions a statement may call: SQLite's core scalar, aggregate and
 * window functions, date/time, math, JSON and full-text ranking.  Left out
 * on purpose: load_extension, fts3_tokenizer, readfile/writefile/edit (CLI
 * only), sqlite_compileoption_*, sqlite_source_id, sqlite_offset,
 * changes/total_changes/last_insert_rowid, and anything unknown.
 * randomblob and zeroblob are allowed because exec caps their size. */
static const char *const allowed_functions[] = {
        /* core scalar */
        "abs",
        "char",
        "coalesce",
        "concat",
        "concat_ws",
        "format",
        "glob",
        "hex",
        "ifnull",
        "iif",
        "instr",
        "length",
        "like",
        "likelihood",
        "likely",
        "lower",
        "ltrim",
        "max",
        "min",
        "nullif",
        "octet_length",
        "printf",
        "quote",
        "random",
        "randomblob",
        "replace",
        "round",
        "rtrim",
        "sign",
        "soundex",
        "sqlite_version",
        "substr",
        "substring",
        "trim",
        "typeof",
        "unhex",
        "unicode",
        "unlikely",
        "upper",
        "zeroblob",
        /* aggregate */
        "avg",
        "count",
        "group_concat",
        "string_agg",
        "sum",
        "total",
        /* window */
        "row_number",
        "rank",
        "dense_rank",
        "percent_rank",
        "cume_dist",
        "ntile",
        "lag",
        "lead",
        "first_value",
        "last_value",
        "nth_value",
        /* date and time */
        "date",
        "time",
        "datetime",
        "julianday",
        "unixepoch",
        "strftime",
        "timediff",
        "current_date",
        "current_time",
        "current_timestamp",
        /* math */
        "acos",
        "acosh",
        "asin",
        "asinh",
        "atan",
        "atan2",
        "atanh",
        "ceil",
        "ceiling",
        "cos",
        "cosh",
        "degrees",
        "exp",
        "floor",
        "ln",
        "log",
        "log10",
        "log2",
        "mod",
        "pi",
        "pow",
        "power",
        "radians",
        "sin",
        "sinh",
        "sqrt",
        "tan",
        "tanh",
        "trunc",
        /* JSON */
        "json",
        "json_array",
        "json_array_length",
        "json_extract",
        "json_insert",
        "json_object",
        "json_patch",
        "json_remove",
        "json_replace",
        "json_set",
        "json_type",
        "json_valid",
        "json_quote",
        "json_group_array",
        "json_group_object",
        "json_error_position",
        "->",
        "->>",
        /* full-text search over FTS tables the database already has */
        "match",
        "highlight",
        "snippet",
        "bm25",
        "offsets",
        "matchinfo",
};

static int function_allowed(const char *name)
{
	if (!name)
		return 0;
	for (size_t i = 0; i < sizeof allowed_functions / sizeof allowed_functions[0]; i++)
		if (sqlite3_stricmp(name, allowed_functions[i]) == 0)
			return 1;
	return 0;
}

/* Eponymous virtual tables that expose internals: reading them is refused
 * unless the database has a real object of that name.  pragma_* too. */
static const char *const internal_tables[] = {"dbstat", "sqlite_stmt", "sqlite_dbpage", "sqlite_dbdata", "sqlite_dbptr"};

static int cmp_name(const void *a, const void *b)
{
	return sqlite3_stricmp(*(char *const *)a, *(char *const *)b);
}

static int is_object(const struct exec *x, const char *name)
{
	return x->nobjects && bsearch(&name, x->objects, x->nobjects, sizeof *x->objects, cmp_name);
}

static int read_allowed(const struct exec *x, const char *table)
{
	if (!table || is_object(x, table))
		return 1;
	if (sqlite3_strnicmp(table, "pragma_", 7) == 0)
		return 0;
	for (size_t i = 0; i < sizeof internal_tables / sizeof internal_tables[0]; i++)
		if (sqlite3_stricmp(table, internal_tables[i]) == 0)
			return 0;
	return 1;
}

/* Records the first refusal of a prepare and says no. */
static int deny(struct exec *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int deny(struct exec *x, const char *fmt, ...)
{
	if (!x->deny[0] || x->deny_weak) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(x->deny, sizeof x->deny, fmt, ap);
		va_end(ap);
		x->deny_weak = 0;
	}
	return SQLITE_DENY;
}

static int is_schema_table(const char *name)
{
	return name && (!sqlite3_stricmp(name, "sqlite_master") || !sqlite3_stricmp(name, "sqlite_schema") ||
	                !sqlite3_stricmp(name, "sqlite_temp_master") || !sqlite3_stricmp(name, "sqlite_temp_schema"));
}

/* A write to the schema table: DDL makes SQLite check those before the
 * CREATE/DROP itself, so the refusal is kept only until a clearer one. */
static int deny_schema_write(struct exec *x, const char *verb, const char *table)
{
	int first = !x->deny[0];
	deny(x, "the SQL writes to table `%s` (%s); only SELECT is allowed", table, verb);
	x->deny_weak = first;
	return SQLITE_DENY;
}

#define ONLY "; only SELECT is allowed"
#define S(v) ((v) ? (v) : "?")

/* The authorizer is called all through prepare, where the progress
 * handler is not: it is where prepare sees the deadline and the cancel
 * callback.  exec_run reports the stop; the refusal text is never shown. */
static int out_of_time(struct exec *x)
{
	if (x->stopped)
		return 1;
	if (x->cancel && x->cancel(x->cancel_payload))
		x->stopped = CONVBI_ECANCELED;
	else if (x->deadline_ms && clock_mono_ms() >= x->deadline_ms)
		x->stopped = CONVBI_ETIMEOUT;
	return x->stopped != 0;
}

static int authorize(void *p, int op, const char *a, const char *b, const char *c, const char *d)
{
	struct exec *x = p;
	(void)c, (void)d;
	if (out_of_time(x))
		return SQLITE_DENY;
	switch (op) {
	case SQLITE_SELECT:
	case SQLITE_RECURSIVE: return SQLITE_OK;
	case SQLITE_READ:
		if (read_allowed(x, a))
			return SQLITE_OK;
		return deny(x,
		            "table-valued function or internal table `%s` is not allowed; query the database's own "
		            "tables",
		            S(a));
	case SQLITE_FUNCTION:
		if (function_allowed(b))
			return SQLITE_OK;
		return deny(x, "function %s() is not allowed; use SQLite's core, date, math, window or JSON functions", S(b));
	case SQLITE_INSERT:
	case SQLITE_UPDATE:
	case SQLITE_DELETE: {
		const char *verb = op == SQLITE_INSERT ? "INSERT" : op == SQLITE_UPDATE ? "UPDATE" : "DELETE";
		if (is_schema_table(a))
			return deny_schema_write(x, verb, a);
		return deny(x, "the SQL writes to table `%s` (%s)" ONLY, S(a), verb);
	}
	case SQLITE_CREATE_INDEX:
	case SQLITE_CREATE_TEMP_INDEX: return deny(x, "the SQL creates index `%s` on `%s` (CREATE INDEX)" ONLY, S(a), S(b));
	case SQLITE_CREATE_TABLE: return deny(x, "the SQL creates table `%s` (CREATE TABLE)" ONLY, S(a));
	case SQLITE_CREATE_TEMP_TABLE:
		return deny(x, "the SQL creates table `%s` (CREATE TEMP TABLE); use a WITH clause instead", S(a));
	case SQLITE_CREATE_TRIGGER:
	case SQLITE_CREATE_TEMP_TRIGGER: return deny(x, "the SQL creates trigger `%s` on `%s` (CREATE TRIGGER)" ONLY, S(a), S(b));
	case SQLITE_CREATE_VIEW:
	case SQLITE_CREATE_TEMP_VIEW: return deny(x, "the SQL creates view `%s` (CREATE VIEW); use a WITH clause instead", S(a));
	case SQLITE_CREATE_VTABLE:
		return deny(x, "the SQL creates virtual table `%s` using %s (CREATE VIRTUAL TABLE)" ONLY, S(a), S(b));
	case SQLITE_DROP_INDEX:
	case SQLITE_DROP_TEMP_INDEX: return deny(x, "the SQL drops index `%s` on `%s` (DROP INDEX)" ONLY, S(a), S(b));
	case SQLITE_DROP_TABLE:
	case SQLITE_DROP_TEMP_TABLE: return deny(x, "the SQL drops table `%s` (DROP TABLE)" ONLY, S(a));
	case SQLITE_DROP_TRIGGER:
	case SQLITE_DROP_TEMP_TRIGGER: return deny(x, "the SQL drops trigger `%s` on `%s` (DROP TRIGGER)" ONLY, S(a), S(b));
	case SQLITE_DROP_VIEW:
	case SQLITE_DROP_TEMP_VIEW: return deny(x, "the SQL drops view `%s` (DROP VIEW)" ONLY, S(a));
	case SQLITE_DROP_VTABLE: return deny(x, "the SQL drops virtual table `%s` (DROP TABLE)" ONLY, S(a));
	case SQLITE_ALTER_TABLE: return deny(x, "the SQL alters table `%s` (ALTER TABLE)" ONLY, S(b));
	case SQLITE_PRAGMA:
		/* FTS5 reads PRAGMA data_version in its own statements; the
		 * statement checks keep PRAGMA out of model SQL regardless */
		if (a && !b && !sqlite3_stricmp(a, "data_version"))
			return SQLITE_OK;
		return deny(x, "PRAGMA %s is not allowed; the schema is already given, so send one SELECT", S(a));
	case SQLITE_TRANSACTION:
		return deny(x, "transaction control (%s) is not allowed; send one SELECT without BEGIN/COMMIT", S(a));
	case SQLITE_SAVEPOINT:
		return deny(x, "savepoints (%s `%s`) are not allowed; send one SELECT without transactions", S(a), S(b));
	case SQLITE_ATTACH:
		return deny(x,
		            "the SQL attaches database file '%s' (ATTACH or VACUUM INTO); only the connected database "
		            "can be read",
		            S(a));
	case SQLITE_DETACH:
		return deny(x, "the SQL detaches database `%s` (DETACH); only the connected database can be read", S(a));
	case SQLITE_REINDEX: return deny(x, "the SQL rebuilds index `%s` (REINDEX)" ONLY, S(a));
	case SQLITE_ANALYZE: return deny(x, "the SQL runs ANALYZE on `%s`" ONLY, S(a));
	default: return deny(x, "the SQL performs an operation that is not a read (action %d)" ONLY, op);
	}
}

/* ---- SQLite errors ------------------------------------------------------------ */

/* Messages SQLite gives when a statement exceeds one of exec's limits. */
static int is_limit_message(const char *m)
{
	static const char *const phrases[] = {"too large", "too many", "too big", "too complex", "stack overflow", "too deep"};
	for (size_t i = 0; i < sizeof phrases / sizeof phrases[0]; i++)
		if (strstr(m, phrases[i]))
			return 1;
	return 0;
}

/* "unknown function: f()" or "no such function: f" about a function the
 * SQL does not name: the schema's (a generated column, a view) -- its
 * offset is in the schema's text, not the SQL's.  Returns "f()" in a
 * static buffer, or NULL. */
static const char *schema_function(const char *m, const char *sql, size_t len)
{
	static _Thread_local char name[80];
	const char *p = NULL;
	if (!strncmp(m, "unknown function: ", 18))
		p = m + 18;
	else if (!strncmp(m, "no such function: ", 18))
		p = m + 18;
	if (!p || !sql)
		return NULL;
	size_t n = strcspn(p, "( ");
	if (!n || n >= sizeof name - 3)
		return NULL;
	for (size_t i = 0; i + n <= len; i++)
		if (!sqlite3_strnicmp(sql + i, p, (int)n))
			return NULL; /* the SQL names it: an ordinary error */
	snprintf(name, sizeof name, "%.*s()", (int)n, p);
	return name;
}

int guard_sqlite_error(struct exec *x, int src, const char *sql, size_t len, int offset_base, struct err *err)
{
	const char *m = sqlite3_errmsg(x->db);
	int primary = src & 0xff;

	/* a virtual table's first use under the authorizer fails in its
	 * constructor (see exec.c); name the table, not the internal write */
	if (!strncmp(m, "vtable constructor failed: ", 27))
		return err_set(err, CONVBI_EREJECTED,
		               "table-valued function or virtual table `%s` is not allowed; query the database's own tables",
		               m + 27);
	if (x->deny[0])
		return err_set(err, CONVBI_EREJECTED, "%s", x->deny);
	switch (primary) {
	case SQLITE_AUTH:
		return err_set(err, CONVBI_EREJECTED, "the SQL uses something that is not allowed (%s); send one plain SELECT",
		               m);
	case SQLITE_NOMEM: return err_set(err, CONVBI_ENOMEM, "out of memory running the SQL");
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_SCHEMA: return ro_busy_error(err, x->path);
	case SQLITE_IOERR:
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_CANTOPEN: return err_set(err, CONVBI_EDB, "database `%s` cannot be read (%s); check the file", x->path, m);
	case SQLITE_READONLY: return err_set(err, CONVBI_EREJECTED, "the SQL tried to write (%s)" ONLY, m);
	case SQLITE_TOOBIG:
		/* a capped function's own message already names the limit and the fix */
		if (strcmp(m, "string or blob too big"))
			return err_set(err, CONVBI_ETOOBIG, "%s", m);
		return err_set(err, CONVBI_ETOOBIG,
		               "the SQL reads or makes a value over the %d MB limit; select less data (a stored value that "
		               "large cannot be read)",
		               EXEC_VALUE_MAX >> 20);
	}
	const char *fn = schema_function(m, sql, len);
	if (fn)
		return err_set(err, CONVBI_ESQL,
		               "the database's schema uses %s (in a generated column, view or trigger), which this SQLite "
		               "does not have; select columns that do not need it",
		               fn);
	if (is_limit_message(m))
		return err_set(err, CONVBI_ETOOBIG, "the SQL exceeds a complexity limit (%s); simplify the query", m);

	int off = sqlite3_error_offset(x->db);
	const char *hint = sql ? filter_match(x, F_HINT, sql, len) : NULL;
	char where[48] = "";
	if (off >= 0 && offset_base >= 0)
		snprintf(where, sizeof where, " at offset %d", off + offset_base);
	return err_set(err, CONVBI_ESQL, "%s%s%s%s", m, where, hint ? "; hint: " : "", hint ? hint : "");
}

/* ---- setup ------------------------------------------------------------------- */

int guard_init(struct exec *x, struct err *err)
{
	sqlite3_stmt *st = NULL;
	size_t cap = 0;
	int src;

	for (size_t i = 0; i < NFILTERS; i++) {
		int code;
		PCRE2_SIZE at;
		x->filter[i] = pcre2_compile((PCRE2_SPTR)filters[i].re, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS | PCRE2_DOTALL,
		                             &code, &at, NULL);
		if (!x->filter[i])
			return err_set(err, CONVBI_ENOMEM, "the SQL gate's filter %zu does not compile (PCRE2 error %d)", i,
			               code);
	}

	src = sqlite3_prepare_v2(x->db, "SELECT name FROM sqlite_schema WHERE name IS NOT NULL", -1, &st, NULL);
	while (src == SQLITE_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
		if (x->nobjects == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			char **p = xrealloc(x->objects, ncap * sizeof *p);
			if (!p) {
				src = SQLITE_NOMEM;
				break;
			}
			x->objects = p;
			cap = ncap;
		}
		char *name = xstrdup((const char *)sqlite3_column_text(st, 0));
		if (!name) {
			src = SQLITE_NOMEM;
			break;
		}
		x->objects[x->nobjects++] = name;
		src = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (src == SQLITE_NOMEM)
		return err_set(err, CONVBI_ENOMEM, "out of memory reading the schema of `%s`", x->path);
	if (src != SQLITE_DONE)
		return ro_schema_error(err, x->path, src, sqlite3_errmsg(x->db));
	if (x->nobjects)
		qsort(x->objects, x->nobjects, sizeof *x->objects, cmp_name);

	src = views_load(&x->views, x->db);
	if (src != SQLITE_OK)
		return src == SQLITE_NOMEM ? err_set(err, CONVBI_ENOMEM, "out of memory reading the views of `%s`", x->path)
		                           : err_set(err, CONVBI_EDB, "database `%s` cannot be read (%s); check the file",
		                                     x->path, sqlite3_errmsg(x->db));

	sqlite3_set_authorizer(x->db, authorize, x);
	return CONVBI_OK;
}

void guard_release(struct exec *x)
{
	for (size_t i = 0; i < EXEC_FILTER_SLOTS; i++) {
		pcre2_code_free(x->filter[i]);
		x->filter[i] = NULL;
	}
	for (size_t i = 0; i < x->nobjects; i++)
		free(x->objects[i]);
	free(x->objects);
	x->objects = NULL;
	x->nobjects = 0;
	views_free(x->views);
	x->views = NULL;
}

/* ---- the gate ------------------------------------------------------------------ */

/* A refusal: the authorizer's reason, else the first filter's statement
 * message, else the layer's own.  A weak reason (an internal write to
 * sqlite_master, checked by DDL before the DDL itself) yields to the
 * filter's "changes the schema". */
static int refuse(struct exec *x, const char *sql, size_t len, struct err *err, const char *fallback)
{
	if (x->deny[0] && !x->deny_weak)
		return err_set(err, CONVBI_EREJECTED, "%s", x->deny);
	const char *m = filter_match(x, F_STMT, sql, len);
	return err_set(err, CONVBI_EREJECTED, "%s", m ? m : x->deny[0] ? x->deny : fallback);
}

int guard_prepare(struct exec *x, const char *sql, size_t len, sqlite3_stmt **out, struct err *err)
{
	sqlite3_stmt *st = NULL;
	const char *tail = NULL;
	int rc;

	*out = NULL;
	x->deny[0] = '\0';
	x->deny_weak = 0;
	if (len > EXEC_SQL_MAX)
		return err_set(err, CONVBI_ETOOBIG, "the SQL is %zu bytes, over the %d-byte limit; write a shorter query", len,
		               EXEC_SQL_MAX);
	const char *nul = memchr(sql, '\0', len);
	if (nul)
		return err_set(err, CONVBI_EREJECTED, "the SQL contains a NUL byte at offset %zu; send plain text",
		               (size_t)(nul - sql));

	/* a UTF-8 byte-order mark is not SQL; SQLite would call it a bad token */
	size_t bom = len >= 3 && !memcmp(sql, "\xEF\xBB\xBF", 3) ? 3 : 0;
	size_t start = skip_ignorable(sql, len, bom, 1);
	if (start == len)
		return err_set(err, CONVBI_EREJECTED, "the SQL is empty; send exactly one SELECT statement");
	size_t wlen = word_len(sql, len, start);
	const char *w = sql + start;
	int is_select = word_is(w, wlen, "SELECT") || word_is(w, wlen, "WITH") || word_is(w, wlen, "VALUES");

	/* SQLite expands views while preparing, out of the deadline's reach:
	 * weigh them first */
	const char *heaviest = NULL;
	int64_t heavy = 0;
	int64_t refs = views_sql_weight(x->views, sql, len, &heaviest, &heavy);
	if (refs < 0)
		return err_set(err, CONVBI_ENOMEM, "out of memory weighing the SQL");
	if (refs > EXEC_VIEW_REFS_MAX && heavy && heaviest)
		return err_set(err, CONVBI_ETOOBIG,
		               "the SQL expands to over %d table references through views (`%s` alone nests %lld); query "
		               "the tables under the views",
		               EXEC_VIEW_REFS_MAX, heaviest, (long long)heavy);
	if (refs > EXEC_VIEW_REFS_MAX && heavy)
		return err_set(err, CONVBI_ETOOBIG,
		               "the SQL expands to over %d table references through its WITH clauses (one alone nests %lld); "
		               "name each step fewer times, or aggregate earlier",
		               EXEC_VIEW_REFS_MAX, (long long)heavy);

	int src = sqlite3_prepare_v2(x->db, sql + start, (int)(len - start), &st, &tail);
	if (src != SQLITE_OK) {
		/* a refusal by the authorizer or a write-like first word is a
		 * rejection; anything else is SQLite's own error (a typo) */
		const char *kind = !is_select || x->deny_weak ? filter_match(x, F_STMT, sql, len) : NULL;
		rc = kind && (!x->deny[0] || x->deny_weak) ? err_set(err, CONVBI_EREJECTED, "%s", kind)
		                                           : guard_sqlite_error(x, src, sql, len, (int)start, err);
		goto fail;
	}
	if (!st) { /* unreachable after skip_ignorable, but SQLite has the last word */
		rc = err_set(err, CONVBI_EREJECTED, "the SQL is empty; send exactly one SELECT statement");
		goto fail;
	}
	size_t used = (size_t)(tail - sql);
	size_t rest = skip_ignorable(sql, len, used, 1);
	if (rest < len) {
		rc = err_set(err, CONVBI_EREJECTED,
		             "the SQL has more than one statement (another starts at offset %zu); send exactly one SELECT", rest);
		goto fail;
	}
	if (!is_select) {
		char first[40];
		snprintf(first, sizeof first, "%.*s", (int)(wlen ? (wlen < 30 ? wlen : 30) : 1), w);
		char fallback[160];
		snprintf(fallback, sizeof fallback, "the SQL starts with `%s`; send exactly one SELECT (or WITH ... SELECT)",
		         first);
		rc = refuse(x, sql, len, err, fallback);
		goto fail;
	}
	if (sqlite3_stmt_isexplain(st)) {
		rc = refuse(x, sql, len, err, "EXPLAIN is not allowed; send the SELECT itself");
		goto fail;
	}
	if (!sqlite3_stmt_readonly(st)) {
		rc = refuse(x, sql, len, err, "the SQL is not read-only; only SELECT is allowed");
		goto fail;
	}
	if (sqlite3_bind_parameter_count(st) > 0) {
		const char *name = sqlite3_bind_parameter_name(st, 1);
		rc = err_set(err, CONVBI_EREJECTED, "the SQL has a parameter (%s); write the values into the SQL",
		             name ? name : "?");
		goto fail;
	}
	if (sqlite3_column_count(st) == 0) {
		rc = refuse(x, sql, len, err, "the SQL returns no columns; send a SELECT");
		goto fail;
	}
	if (sqlite3_column_count(st) > EXEC_RESULT_COLUMNS_MAX) {
		rc = err_set(err, CONVBI_ETOOBIG, "the SQL returns %d columns, over the limit of %d; select fewer columns",
		             sqlite3_column_count(st), EXEC_RESULT_COLUMNS_MAX);
		goto fail;
	}
	*out = st;
	return CONVBI_OK;
fail:
	sqlite3_finalize(st);
	return rc;
}

int guard_check_len(struct exec *x, const char *sql, size_t len, struct err *err)
{
	sqlite3_stmt *st = NULL;
	x->stopped = 0; /* a check is outside any run: no deadline, no cancel */
	int rc = guard_prepare(x, sql, len, &st, err);
	sqlite3_finalize(st);
	return rc;
}

int guard_check(struct exec *x, const char *sql, struct err *err)
{
	return guard_check_len(x, sql, strlen(sql), err);
}
