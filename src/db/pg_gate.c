/* pg_gate.c -- the PostgreSQL gate's first layer: PostgreSQL's own parser
 * (libpg-query) says what the statement is, before the server sees it.
 *
 * pg_query_parse gives the raw parse tree as JSON; we read it with cJSON
 * and walk every node.  Accepted: exactly one statement, a SelectStmt
 * (plain, set operation, VALUES, or WITH ... SELECT), with
 *   - no INTO (SELECT INTO creates a table) and no locking clause
 *     (FOR UPDATE / SHARE take row locks, which need a writable
 *     transaction and block writers);
 *   - no data-modifying statement anywhere in the tree (a WITH holding
 *     INSERT / UPDATE / DELETE / MERGE);
 *   - every function call -- in expressions, in FROM (RangeFunction),
 *     ROWS FROM, anywhere -- on an allow-list of read-only built-ins,
 *     unqualified or qualified by pg_catalog only.  Admin and file
 *     functions, dblink*, lo_*, pg_read_*, pg_ls_*, pg_sleep*, set_config,
 *     query_to_xml*, nextval/setval and user-defined functions are refused,
 *     the named families with a reason of their own.
 *   - no relation of a system schema: a name qualified by pg_catalog,
 *     information_schema or any other pg_* schema, or an unqualified
 *     name starting with pg_ (PostgreSQL searches pg_catalog first, so
 *     pg_shadow, pg_settings, pg_stat_activity... resolve there; a user's
 *     own table called pg_x is reached as public.pg_x);
 *   - no CURRENT_USER / SESSION_USER / USER / CURRENT_ROLE /
 *     CURRENT_CATALOG / CURRENT_SCHEMA: the model gets the schema text
 *     and never needs the server's introspection;
 * COPY, SET, transaction control, DO, CALL, EXPLAIN and every other
 * statement kind are refused by kind.  A second statement ("SELECT 1;
 * COMMIT") is refused here; the extended protocol below would refuse it
 * again.  Functions that could build unbounded values in one call
 * (repeat, lpad, rpad, format) are left off the list: the server bounds
 * time, but not memory inside one call.
 *
 * What this layer cannot see -- a view or an operator that calls
 * something else -- is left to the layers below: the read-only
 * transaction, default_transaction_read_only, the deadline, the role.
 */
#include "db/pg_gate.h"

#include <pg_query.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convbi/convbi.h"
#include "db/exec.h"
#include "util/jsonx.h"

#define PG_GATE_DEPTH_MAX 400 /* nesting of the parse tree we walk */

/* Read-only built-ins a report query needs, sorted for bsearch. */
static const char *const allowed[] = {
        "abs",
        "acos",
        "age",
        "array_agg",
        "array_append",
        "array_cat",
        "array_length",
        "array_lower",
        "array_position",
        "array_positions",
        "array_remove",
        "array_replace",
        "array_to_string",
        "array_upper",
        "ascii",
        "asin",
        "atan",
        "atan2",
        "avg",
        "bit_and",
        "bit_length",
        "bit_or",
        "bool_and",
        "bool_or",
        "btrim",
        "cardinality",
        "cbrt",
        "ceil",
        "ceiling",
        "char_length",
        "character_length",
        "chr",
        "clock_timestamp",
        "coalesce",
        "concat",
        "concat_ws",
        "corr",
        "cos",
        "count",
        "covar_pop",
        "covar_samp",
        "cume_dist",
        "date",
        "date_bin",
        "date_part",
        "date_trunc",
        "degrees",
        "dense_rank",
        "div",
        "every",
        "exp",
        "extract",
        "first_value",
        "floor",
        "gcd",
        "generate_series",
        "greatest",
        "initcap",
        "isfinite",
        "json_agg",
        "json_array_elements",
        "json_array_elements_text",
        "json_array_length",
        "json_build_array",
        "json_build_object",
        "json_each",
        "json_each_text",
        "json_extract_path",
        "json_extract_path_text",
        "json_object_agg",
        "json_object_keys",
        "json_typeof",
        "jsonb_agg",
        "jsonb_array_elements",
        "jsonb_array_elements_text",
        "jsonb_array_length",
        "jsonb_build_array",
        "jsonb_build_object",
        "jsonb_each",
        "jsonb_each_text",
        "jsonb_extract_path",
        "jsonb_extract_path_text",
        "jsonb_object_agg",
        "jsonb_object_keys",
        "jsonb_typeof",
        "justify_days",
        "justify_hours",
        "justify_interval",
        "lag",
        "last_value",
        "lcm",
        "lead",
        "least",
        "left",
        "length",
        "like_escape",
        "ln",
        "log",
        "log10",
        "lower",
        "ltrim",
        "make_date",
        "make_interval",
        "make_time",
        "make_timestamp",
        "make_timestamptz",
        "max",
        "md5",
        "min",
        "mod",
        "mode",
        "now",
        "nth_value",
        "ntile",
        "nullif",
        "num_nonnulls",
        "num_nulls",
        "octet_length",
        "overlay",
        "percent_rank",
        "percentile_cont",
        "percentile_disc",
        "pi",
        "position",
        "pow",
        "power",
        "radians",
        "random",
        "rank",
        "regexp_match",
        "regexp_matches",
        "regexp_replace",
        "regexp_split_to_array",
        "regexp_split_to_table",
        "regr_count",
        "regr_intercept",
        "regr_r2",
        "regr_slope",
        "replace",
        "reverse",
        "right",
        "round",
        "row_number",
        "row_to_json",
        "rtrim",
        "sign",
        "similar_to_escape",
        "sin",
        "split_part",
        "sqrt",
        "starts_with",
        "statement_timestamp",
        "stddev",
        "stddev_pop",
        "stddev_samp",
        "string_agg",
        "string_to_array",
        "strpos",
        "substr",
        "substring",
        "sum",
        "tan",
        "timezone",
        "to_char",
        "to_date",
        "to_hex",
        "to_json",
        "to_jsonb",
        "to_number",
        "to_timestamp",
        "transaction_timestamp",
        "translate",
        "trim",
        "trunc",
        "unnest",
        "upper",
        "var_pop",
        "var_samp",
        "variance",
        "width_bucket",
};

/* Families refused with a reason of their own (the allow-list refuses
 * them anyway; the reason helps the model not to try again). */
static const struct {
	const char *prefix;
	const char *why;
} denied[] = {
        {"dblink", "opens its own connection, outside the read-only transaction"},
        {"lo_", "reads or writes large objects and server files"},
        {"pg_read_", "reads files on the database server"},
        {"pg_ls_", "lists files on the database server"},
        {"pg_sleep", "only waits"},
        {"set_config", "changes session settings (the role, the search path)"},
        {"query_to_xml", "runs SQL given as a string"},
        {"table_to_xml", "reads a table named by a string"},
        {"cursor_to_xml", "reads from a cursor"},
        {"pg_terminate_backend", "stops other sessions"},
        {"pg_cancel_backend", "stops other sessions"},
        {"pg_reload_conf", "reloads the server configuration"},
        {"pg_stat_file", "reads server file metadata"},
        {"current_setting", "reads server settings"},
        {"nextval", "changes a sequence"},
        {"setval", "changes a sequence"},
        {"pg_advisory", "takes locks"},
        {"pg_try_advisory", "takes locks"},
        {"pg_", "reads the server's catalogs, settings or files"},
        {"version", "reads the server's version"},
        {"inet_", "reads the server's or the client's address"},
        {"current_", "reads the server's session state"},
        {"has_", "reads the server's privileges"},
};

/* The statement kinds a model may produce other than SELECT, named. */
static const struct {
	const char *node;
	const char *what;
} kinds[] = {
        {"InsertStmt", "an INSERT"},
        {"UpdateStmt", "an UPDATE"},
        {"DeleteStmt", "a DELETE"},
        {"MergeStmt", "a MERGE"},
        {"CopyStmt", "a COPY"},
        {"TransactionStmt", "transaction control"},
        {"VariableSetStmt", "a SET"},
        {"VariableShowStmt", "a SHOW"},
        {"ExplainStmt", "an EXPLAIN"},
        {"DoStmt", "a DO block"},
        {"CallStmt", "a CALL"},
        {"CreateTableAsStmt", "CREATE TABLE AS"},
        {"CreateStmt", "a CREATE TABLE"},
        {"DropStmt", "a DROP"},
        {"TruncateStmt", "a TRUNCATE"},
        {"LockStmt", "a LOCK"},
        {"GrantStmt", "a GRANT"},
        {"GrantRoleStmt", "a GRANT"},
        {"PrepareStmt", "a PREPARE"},
        {"ExecuteStmt", "an EXECUTE"},
        {"ListenStmt", "a LISTEN"},
        {"NotifyStmt", "a NOTIFY"},
        {"VacuumStmt", "a VACUUM"},
        {"AlterTableStmt", "an ALTER TABLE"},
        {"DeclareCursorStmt", "a DECLARE CURSOR"},
        {"FetchStmt", "a FETCH"},
        {"ClosePortalStmt", "a CLOSE"},
        {"CheckPointStmt", "a CHECKPOINT"},
        {"DiscardStmt", "a DISCARD"},
        {"LoadStmt", "a LOAD"},
        {"RefreshMatViewStmt", "a REFRESH MATERIALIZED VIEW"},
        {"CreateFunctionStmt", "a CREATE FUNCTION"},
        {"ViewStmt", "a CREATE VIEW"},
        {"IndexStmt", "a CREATE INDEX"},
};

static int cmp_name(const void *a, const void *b)
{
	return strcmp(a, *(const char *const *)b);
}

static int is_allowed(const char *name)
{
	return bsearch(name, allowed, sizeof allowed / sizeof allowed[0], sizeof allowed[0], cmp_name) != NULL;
}

static const char *kind_name(const char *node)
{
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (!strcmp(kinds[i].node, node))
			return kinds[i].what;
	return NULL;
}

/* "pg_read_file" from a FuncCall's funcname list [String{sval}...]. */
static int check_func(const cJSON *call, struct err *err)
{
	const cJSON *names = cJSON_GetObjectItemCaseSensitive(call, "funcname");
	int n = cJSON_GetArraySize(names);
	const char *parts[3] = {NULL, NULL, NULL};
	for (int i = 0; i < n && i < 3; i++) {
		const cJSON *str = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(names, i), "String");
		const cJSON *sval = cJSON_GetObjectItemCaseSensitive(str, "sval");
		parts[i] = cJSON_IsString(sval) ? sval->valuestring : NULL;
	}
	if (n < 1 || n > 2 || !parts[0] || (n == 2 && !parts[1]))
		return err_set(
		        err, CONVBI_EREJECTED,
		        "a function call names a database or an unusual schema; call built-in functions by their plain name");
	const char *name = parts[n - 1];
	for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++)
		if (!strncmp(name, denied[i].prefix, strlen(denied[i].prefix)))
			return err_set(err, CONVBI_EREJECTED, "the SQL calls `%.64s`, which %s; only read-only SELECT is allowed",
			               name, denied[i].why);
	if (n == 2 && strcmp(parts[0], "pg_catalog"))
		return err_set(err, CONVBI_EREJECTED,
		               "the SQL calls `%.64s.%.64s`; only built-in functions are allowed, called by their plain name",
		               parts[0], name);
	if (!is_allowed(name))
		return err_set(err, CONVBI_EREJECTED,
		               "the SQL calls `%.64s`, which is not on the allow-list of read-only functions; use standard "
		               "aggregate, string, date and math functions",
		               name);
	return CONVBI_OK;
}

/* The one message for every system-catalog / server-introspection read. */
static int refuse_system(struct err *err, const char *what)
{
	return err_set(err, CONVBI_EREJECTED,
	               "the SQL reads %.140s, which belongs to the server's catalogs or settings; query only the "
	               "database's own tables listed in the schema",
	               what);
}

/* A RangeVar {catalogname, schemaname, relname}: refused when it names a
 * system schema or, unqualified, a pg_* relation. */
static int check_relation(const cJSON *rv, struct err *err)
{
	const char *schema = jsonx_str(rv, "schemaname");
	const char *rel = jsonx_str(rv, "relname");
	if (!rel)
		rel = "";
	char what[160];
	if (schema && (!strncmp(schema, "pg_", 3) || !strcmp(schema, "information_schema"))) {
		snprintf(what, sizeof what, "`%.64s.%.64s`", schema, rel);
		return refuse_system(err, what);
	}
	if (!schema && !strncmp(rel, "pg_", 3)) {
		snprintf(what, sizeof what, "`%.64s`", rel);
		return refuse_system(err, what);
	}
	return CONVBI_OK;
}

/* SQLValueFunction {op}: the date/time ones are fine, the session ones are
 * server introspection. */
static int check_value_function(const cJSON *f, struct err *err)
{
	static const char *const refused[][2] = {
	        {"SVFOP_CURRENT_ROLE", "CURRENT_ROLE"},
	        {"SVFOP_CURRENT_USER", "CURRENT_USER"},
	        {"SVFOP_USER", "USER"},
	        {"SVFOP_SESSION_USER", "SESSION_USER"},
	        {"SVFOP_CURRENT_CATALOG", "CURRENT_CATALOG"},
	        {"SVFOP_CURRENT_SCHEMA", "CURRENT_SCHEMA"},
	};
	const char *op = jsonx_str(f, "op");
	if (!op)
		return CONVBI_OK;
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
		if (!strcmp(op, refused[i][0]))
			return refuse_system(err, refused[i][1]);
	return CONVBI_OK;
}

/* Walks every node below v.  Object keys name node types and fields. */
static int walk(const cJSON *v, int depth, int catalog_ok, struct err *err)
{
	if (depth > PG_GATE_DEPTH_MAX)
		return err_set(err, CONVBI_ETOOBIG, "the SQL is nested more than %d levels deep; simplify it", PG_GATE_DEPTH_MAX);
	if (cJSON_IsArray(v)) {
		for (const cJSON *c = v->child; c; c = c->next) {
			int rc = walk(c, depth + 1, catalog_ok, err);
			if (rc)
				return rc;
		}
		return CONVBI_OK;
	}
	if (!cJSON_IsObject(v))
		return CONVBI_OK;
	for (const cJSON *c = v->child; c; c = c->next) {
		const char *key = c->string;
		if (!strcmp(key, "intoClause"))
			return err_set(err, CONVBI_EREJECTED, "SELECT INTO creates a table; only a plain SELECT is allowed");
		if (!strcmp(key, "lockingClause"))
			return err_set(
			        err, CONVBI_EREJECTED,
			        "FOR UPDATE / FOR SHARE locks rows; remove the locking clause, only a plain SELECT is allowed");
		if (!strcmp(key, "SelectStmt") || !strcmp(key, "FuncCall") || !strcmp(key, "RangeFunction")) {
			/* fall through to the walk: nested queries and calls */
		} else if (kind_name(key)) {
			return err_set(err, CONVBI_EREJECTED,
			               "the SQL contains %s (in a WITH or subquery); only SELECT is allowed", kind_name(key));
		}
		if (!strcmp(key, "FuncCall")) {
			int rc = check_func(c, err);
			if (rc)
				return rc;
		}
		if (!strcmp(key, "RangeVar") && !catalog_ok) {
			int rc = check_relation(c, err);
			if (rc)
				return rc;
		}
		if (!strcmp(key, "SQLValueFunction")) {
			int rc = check_value_function(c, err);
			if (rc)
				return rc;
		}
		int rc = walk(c, depth + 1, catalog_ok, err);
		if (rc)
			return rc;
	}
	return CONVBI_OK;
}

int pg_gate_check(const char *sql, size_t len, int catalog_ok, struct err *err)
{
	if (len > EXEC_SQL_MAX)
		return err_set(err, CONVBI_ETOOBIG, "the SQL is %zu bytes; the limit is %d", len, EXEC_SQL_MAX);
	if (memchr(sql, '\0', len) || strlen(sql) != len)
		return err_set(err, CONVBI_EREJECTED, "the SQL contains a NUL byte; send plain text");
	PgQueryParseResult res = pg_query_parse(sql);
	cJSON *root = NULL;
	int rc = CONVBI_OK;
	if (res.error) {
		rc = err_set(err, CONVBI_ESQL, "%s at character %d", res.error->message, res.error->cursorpos);
		goto done;
	}
	root = cJSON_Parse(res.parse_tree);
	if (!root) {
		rc = err_set(err, CONVBI_ETOOBIG, "the SQL's parse tree is too deep or too large to check; simplify the query");
		goto done;
	}
	const cJSON *stmts = cJSON_GetObjectItemCaseSensitive(root, "stmts");
	int n = cJSON_GetArraySize(stmts);
	if (n == 0) {
		rc = err_set(err, CONVBI_EREJECTED, "the SQL holds no statement; write one SELECT");
		goto done;
	}
	if (n > 1) {
		rc = err_set(err, CONVBI_EREJECTED, "the SQL has %d statements; only one SELECT is allowed", n);
		goto done;
	}
	const cJSON *stmt = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(stmts, 0), "stmt");
	const cJSON *node = stmt ? stmt->child : NULL;
	if (!node || strcmp(node->string, "SelectStmt")) {
		const char *what = node ? kind_name(node->string) : NULL;
		if (what)
			rc = err_set(err, CONVBI_EREJECTED, "the SQL is %s; only SELECT (or WITH ... SELECT) is allowed", what);
		else
			rc = err_set(err, CONVBI_EREJECTED,
			             "the SQL is a %.40s statement; only SELECT (or WITH ... SELECT) is allowed",
			             node ? node->string : "empty");
		goto done;
	}
	rc = walk(node, 0, catalog_ok, err);
done:
	cJSON_Delete(root);
	pg_query_free_parse_result(res);
	return rc;
}
