/* pg.c -- the PostgreSQL backend of struct db: connect, check, run with
 * limits, cancel, close (libpq).
 *
 * The gate, in layers, each able to stop a write on its own:
 *   1. pg_gate.c parses the SQL with PostgreSQL's own parser: one SELECT,
 *      no INTO, no locking clause, no data-modifying CTE, every function
 *      on an allow-list;
 *   2. the connection starts with `-c default_transaction_read_only=on`
 *      (and, with --schemas, `-c search_path=...`) in libpq's `options`,
 *      checked with SHOW after connecting and set again when a pooler
 *      dropped it;
 *   3. each run is `BEGIN READ ONLY` with SET LOCAL statement_timeout,
 *      lock_timeout and idle_in_transaction_session_timeout, work_mem and
 *      temp_file_limit from the run's memory and disk limits (see begin),
 *      then the statement alone through the extended protocol
 *      (PQsendQueryParams, which refuses a second statement), then
 *      ROLLBACK -- whatever happened;
 *   4. rows are read in single-row mode: at the row cap or the byte cap
 *      the rest is cancelled (PQcancel), and so is a run past its deadline
 *      or whose cancel callback fires; a query that ignores the cancel for
 *      PG_CANCEL_WAIT_MS loses its connection (the next run reconnects).
 * db_check runs layer 1 and then asks the server to parse and analyse the
 * statement without running it (an unnamed PQprepare), so unknown tables
 * and columns are reported at validation, as SQLite's prepare does.
 *
 * Passwords: libpq reads them from the target, PGPASSWORD or ~/.pgpass;
 * convbi never stores or prints one.  db_describe rebuilds the target
 * from PQconninfoParse without the password.  A failed connection names
 * only the database (its dbname) and libpq's reason without the host,
 * port or user it quotes: the message may reach an API client of `convbi
 * serve`, which logs the target (db_describe) for its operator instead.
 *
 * Server messages become ESQL with the position ("... at character 17
 * near `FORM x`") so the repair loop can point the model at it;
 * statement_timeout and our own cancel at the deadline become ETIMEOUT,
 * a read-only violation EREJECTED, program limits ETOOBIG, a lost
 * connection EDB.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convbi/convbi.h"
#include "db/pg_gate.h"
#include "db/pg_impl.h"
#include "db/text.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/limits.h"

#define PG_OPTIONS_MAX 8192 /* bytes of the libpq options string we build */

/* ---- open --------------------------------------------------------------------- */

/* Appends s to the libpq `options` value: spaces and backslashes are
 * escaped with a backslash there. */
static int options_add(struct buf *b, const char *s)
{
	int rc = CONVBI_OK;
	for (; *s && !rc; s++)
		rc = (*s == ' ' || *s == '\\') ? buf_printf(b, "\\%c", *s) : buf_putc(b, *s);
	return rc;
}

/* "a, b" -> "\"a\",\"b\"" (a search_path value) after checking each name. */
static int search_path_of(struct buf *out, const char *list, struct err *err)
{
	int n = 0;
	const char *p = list;
	while (*p) {
		while (*p == ' ' || *p == '\t')
			p++;
		const char *start = p;
		while (*p && *p != ',')
			p++;
		const char *end = p;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (end == start)
			return err_set(err, CONVBI_EINVAL, "--schemas `%.200s` has an empty name; list schemas as a,b", list);
		if (end - start > 63)
			return err_set(err, CONVBI_EINVAL, "schema name `%.*s` is longer than 63 bytes; check --schemas",
			               (int)(end - start) > 80 ? 80 : (int)(end - start), start);
		if ((end - start >= 3 && !strncmp(start, "pg_", 3)) ||
		    (end - start == 18 && !strncmp(start, "information_schema", 18)))
			return err_set(err, CONVBI_EINVAL,
			               "--schemas names the system schema `%.*s`; list only schemas holding your own tables",
			               (int)(end - start), start);
		if (++n > DB_SCHEMAS_MAX)
			return err_set(err, CONVBI_EINVAL, "--schemas names more than %d schemas; name fewer", DB_SCHEMAS_MAX);
		if (buf_printf(out, "%s\"", n > 1 ? "," : ""))
			return err_set(err, CONVBI_ENOMEM, "out of memory");
		for (const char *q = start; q < end; q++)
			if (*q == '"' ? buf_puts(out, "\"\"") : buf_putc(out, *q))
				return err_set(err, CONVBI_ENOMEM, "out of memory");
		if (buf_putc(out, '"'))
			return err_set(err, CONVBI_ENOMEM, "out of memory");
		if (*p == ',')
			p++;
	}
	if (!n)
		return err_set(err, CONVBI_EINVAL, "--schemas is empty; list schemas as a,b or leave it out");
	return CONVBI_OK;
}

/* postgresql://user@host:port/dbname -- never the password. */
static char *describe_of(PQconninfoOption *opts)
{
	const char *user = NULL, *host = NULL, *hostaddr = NULL, *port = NULL, *dbname = NULL;
	for (PQconninfoOption *o = opts; o && o->keyword; o++) {
		if (!o->val || !*o->val)
			continue;
		if (!strcmp(o->keyword, "user"))
			user = o->val;
		else if (!strcmp(o->keyword, "host"))
			host = o->val;
		else if (!strcmp(o->keyword, "hostaddr"))
			hostaddr = o->val;
		else if (!strcmp(o->keyword, "port"))
			port = o->val;
		else if (!strcmp(o->keyword, "dbname"))
			dbname = o->val;
	}
	struct buf b;
	buf_init(&b, DB_DESCRIBE_MAX_BYTES);
	buf_printf(&b, "postgresql://%s%s%s%s%s/%s", user ? user : "", user ? "@" : "",
	           host       ? host
	           : hostaddr ? hostaddr
	                      : "",
	           port ? ":" : "", port ? port : "", dbname ? dbname : "");
	return buf_take(&b);
}

static const char *conninfo_value(PQconninfoOption *opts, const char *key)
{
	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if (!strcmp(o->keyword, key))
			return o->val && *o->val ? o->val : NULL;
	return NULL;
}

/* libpq's message, first line only, without the "FATAL:  " decoration. */
static void first_line(char *dst, size_t cap, const char *msg)
{
	if (!msg)
		msg = "";
	if (!strncmp(msg, "FATAL:  ", 8))
		msg += 8;
	size_t n = strcspn(msg, "\n");
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, msg, n);
	dst[n] = '\0';
}

/* libpq's reason a connection failed, for a message a client may read:
 * its first line without the "connection to server at "HOST", port N
 * failed: " (or "on socket ...") lead, the FATAL decoration, or a quoted
 * name (a host, a user, a database) -- "password authentication failed",
 * "Connection refused", "database does not exist". */
static void reason_of(char *dst, size_t cap, const char *msg)
{
	char line[300];
	first_line(line, sizeof line, msg);
	const char *r = line, *failed = strstr(line, " failed: ");
	if (!strncmp(line, "connection to server ", 21) && failed)
		r = failed + 9;
	if (!strncmp(r, "FATAL:  ", 8))
		r += 8;
	size_t n = 0;
	for (; *r && n + 1 < cap; r++) {
		if (*r == '"') { /* a quoted name: left out, with the blank before it */
			const char *close = strchr(r + 1, '"');
			if (close) {
				while (n && dst[n - 1] == ' ')
					n--;
				r = close;
				continue;
			}
		}
		dst[n++] = *r;
	}
	dst[n] = '\0';
	static const char for_user[] = " for user"; /* "... failed for user" once the name is gone */
	size_t k = sizeof for_user - 1;
	if (n >= k && !strcmp(dst + n - k, for_user))
		dst[n - k] = '\0';
	if (!dst[0])
		snprintf(dst, cap, "no reason given");
}

static int connect_conn(struct pg *p, const char *describe, struct err *err)
{
	/* later keywords override the target's; connect_timeout comes first
	 * so that the target's own wins */
	const char *keys[] = {"connect_timeout", "dbname", "options", "fallback_application_name", "client_encoding", NULL};
	const char *vals[] = {PG_CONNECT_TIMEOUT_TEXT, p->conninfo, p->options, "convbi", "UTF8", NULL};
	p->conn = PQconnectdbParams(keys, vals, 1);
	if (!p->conn)
		return err_set(err, CONVBI_ENOMEM, "out of memory connecting to `%s`", describe);
	if (PQstatus(p->conn) != CONNECTION_OK) {
		char why[300];
		reason_of(why, sizeof why, PQerrorMessage(p->conn));
		const char *name = PQdb(p->conn) && *PQdb(p->conn) ? PQdb(p->conn) : "?";
		if (PQconnectionNeedsPassword(p->conn))
			return err_set(err, CONVBI_EDB,
			               "database `%.63s` needs a password; set PGPASSWORD, add it to ~/.pgpass or to the URI",
			               name);
		return err_set(err, CONVBI_EDB,
		               "cannot connect to database `%.63s` (%s); check that PostgreSQL runs and the target's host, "
		               "port, user and password",
		               name, why);
	}
	p->cancel = PQgetCancel(p->conn);
	if (!p->cancel)
		return err_set(err, CONVBI_ENOMEM, "out of memory connecting to `%s`", describe);
	return CONVBI_OK;
}

int pg_exec_ours(struct pg *p, const char *sql, int nparams, const char *const *params, ExecStatusType want, const char *what,
                 PGresult **out, struct err *err)
{
	if (out)
		*out = NULL;
	PGresult *res = PQexecParams(p->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	if (!res)
		return err_set(err, CONVBI_ENOMEM, "out of memory %s", what);
	if (PQresultStatus(res) != want) {
		char why[300];
		first_line(why, sizeof why, PQresultErrorMessage(res));
		if (!why[0])
			first_line(why, sizeof why, PQerrorMessage(p->conn));
		PQclear(res);
		return err_set(err, CONVBI_EDB, "%s failed: %s", what, why);
	}
	if (out)
		*out = res;
	else
		PQclear(res);
	return CONVBI_OK;
}

/* The startup options can be dropped by a connection pooler: check, and
 * set them again on the session when they were.  The same round trip
 * reads what begin() needs for the memory and disk limits: the session's
 * work_mem (in kB) and whether the role may set temp_file_limit -- a
 * superuser-only setting that PostgreSQL 15 lets an administrator grant
 * (GRANT SET ON PARAMETER). */
static int check_session(struct pg *p, const char *search_path, struct err *err)
{
	PGresult *res = NULL;
	const char *sql =
	        PQserverVersion(p->conn) >= 150000
	                ? "SELECT current_setting('default_transaction_read_only'), "
	                  "(SELECT setting FROM pg_settings WHERE name = 'work_mem'), "
	                  "current_setting('is_superuser') = 'on' OR has_parameter_privilege('temp_file_limit', 'SET'), "
	                  "(SELECT setting FROM pg_settings WHERE name = 'temp_file_limit')"
	                : "SELECT current_setting('default_transaction_read_only'), "
	                  "(SELECT setting FROM pg_settings WHERE name = 'work_mem'), current_setting('is_superuser') = 'on', "
	                  "(SELECT setting FROM pg_settings WHERE name = 'temp_file_limit')";
	int rc = pg_exec_ours(p, sql, 0, NULL, PGRES_TUPLES_OK, "reading the session's settings", &res, err);
	if (rc)
		return rc;
	int ro = PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 0), "on");
	p->work_mem_kb = PQntuples(res) == 1 ? strtol(PQgetvalue(res, 0, 1), NULL, 10) : 0;
	p->temp_limit_settable = PQntuples(res) == 1 && !strcmp(PQgetvalue(res, 0, 2), "t");
	p->temp_limit_kb = PQntuples(res) == 1 ? strtol(PQgetvalue(res, 0, 3), NULL, 10) : -1;
	PQclear(res);
	if (!ro && (rc = pg_exec_ours(p, "SET SESSION default_transaction_read_only = on", 0, NULL, PGRES_COMMAND_OK,
	                              "making the session read-only", NULL, err)))
		return rc;
	if (search_path) {
		const char *params[] = {search_path};
		rc = pg_exec_ours(p, "SELECT set_config('search_path', $1, false)", 1, params, PGRES_TUPLES_OK,
		                  "setting the search path", NULL, err);
	}
	/* what a run's DISCARD ALL undoes of ours, to do again after it */
	free(p->restore_sql);
	p->restore_sql = NULL;
	if (!rc && (!ro || search_path)) {
		char *lit = search_path ? PQescapeLiteral(p->conn, search_path, strlen(search_path)) : NULL;
		struct buf b;
		buf_init(&b, PG_OPTIONS_MAX);
		if (!ro)
			buf_puts(&b, "SET SESSION default_transaction_read_only = on;");
		if (lit)
			buf_printf(&b, "SELECT set_config('search_path', %s, false);", lit);
		PQfreemem(lit);
		if (b.err || (search_path && !lit) || !(p->restore_sql = buf_take(&b)))
			rc = err_set(err, CONVBI_ENOMEM, "out of memory");
		buf_release(&b);
	}
	return rc;
}

static int pg_check(struct db *d, const char *sql, struct err *err);
static int pg_run(struct db *d, const char *sql, const struct exec_limits *lim, int (*cancel)(void *), void *cancel_payload,
                  struct table **out, struct err *err);
static void pg_interrupt(struct db *d);
static void pg_close(struct db *d);
static int pg_introspect_db(struct db *d, struct schema **out, struct err *err)
{
	return pg_introspect(d->impl, out, err);
}

static const struct db_ops pg_ops = {
        .kind = DB_POSTGRES,
        .introspect = pg_introspect_db,
        .check = pg_check,
        .run = pg_run,
        .interrupt = pg_interrupt,
        .close = pg_close,
};

int db_pg_open(struct db *d, const char *target, const struct db_options *opt, struct err *err)
{
	struct pg *p = NULL;
	struct buf opts, path;
	char *parse_err = NULL;
	int rc;
	buf_init(&opts, PG_OPTIONS_MAX);
	buf_init(&path, PG_OPTIONS_MAX);
	PQconninfoOption *parsed = PQconninfoParse(target, &parse_err);
	if (!parsed) {
		PQfreemem(parse_err); /* it may quote the target, password included */
		rc = err_set(err, CONVBI_EINVAL,
		             "the database target is not a valid PostgreSQL URI or key=value string; use "
		             "postgresql://user@host:port/dbname or \"host=... dbname=...\"");
		goto done;
	}
	d->describe = describe_of(parsed);
	p = xcalloc(1, sizeof *p);
	if (!d->describe || !p) {
		free(p);
		rc = err_set(err, CONVBI_ENOMEM, "out of memory opening a database");
		goto done;
	}
	atomic_init(&p->running, 0);
	d->ops = &pg_ops;
	d->impl = p;
	if (opt->schemas && *opt->schemas && (rc = search_path_of(&path, opt->schemas, err)))
		goto done;
	const char *user_opts = conninfo_value(parsed, "options");
	rc = buf_printf(&opts, "%s%s-c default_transaction_read_only=on", user_opts ? user_opts : "", user_opts ? " " : "");
	if (!rc && path.len) {
		rc = buf_puts(&opts, " -c search_path=");
		if (!rc)
			rc = options_add(&opts, buf_str(&path));
	}
	if (rc) {
		rc = err_set(err, rc, "the connection options are too long; shorten --schemas");
		goto done;
	}
	p->conninfo = xstrdup(target);
	p->options = xstrdup(buf_str(&opts));
	p->schemas = path.len ? xstrdup(opt->schemas) : NULL;
	if (!p->conninfo || !p->options || (path.len && !p->schemas)) {
		rc = err_set(err, CONVBI_ENOMEM, "out of memory opening a database");
		goto done;
	}
	if ((rc = connect_conn(p, d->describe, err)) || (rc = check_session(p, path.len ? buf_str(&path) : NULL, err)))
		goto done;
	const char *version = PQparameterStatus(p->conn, "server_version");
	char dialect[96];
	snprintf(dialect, sizeof dialect, "PostgreSQL %.*s", (int)strcspn(version ? version : "?", " "), version ? version : "?");
	if (!(d->dialect = xstrdup(dialect)))
		rc = err_set(err, CONVBI_ENOMEM, "out of memory opening a database");
done:
	PQconninfoFree(parsed);
	buf_release(&opts);
	buf_release(&path);
	return rc;
}

static void pg_close(struct db *d)
{
	struct pg *p = d->impl;
	if (!p)
		return;
	PQfreeCancel(p->cancel);
	PQfinish(p->conn);
	free(p->conninfo);
	free(p->options);
	free(p->schemas);
	free(p->restore_sql);
	free(p);
	d->impl = NULL;
}

/* After a lost connection or an abandoned query: connect again. */
static int reconnect(struct db *d, struct err *err)
{
	struct pg *p = d->impl;
	PQfreeCancel(p->cancel);
	p->cancel = NULL;
	PQfinish(p->conn);
	p->conn = NULL;
	struct buf path;
	buf_init(&path, PG_OPTIONS_MAX);
	int rc = p->schemas ? search_path_of(&path, p->schemas, err) : CONVBI_OK;
	if (!rc)
		rc = connect_conn(p, d->describe, err);
	if (!rc)
		rc = check_session(p, path.len ? buf_str(&path) : NULL, err);
	buf_release(&path);
	return rc;
}

static void pg_interrupt(struct db *d)
{
	struct pg *p = d->impl;
	char errbuf[256];
	if (p && p->cancel && atomic_load(&p->running))
		PQcancel(p->cancel, errbuf, sizeof errbuf);
}

/* ---- errors -------------------------------------------------------------------- */

/* Maps a failed result of model SQL to a code and one line with the
 * server's message, its position and a few characters from there. */
static int map_error(const PGresult *res, const char *sql, int stopped, int timeout_ms, struct err *err)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
	const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	if (!state)
		state = "";
	if (!msg)
		msg = "unknown error";
	if (stopped == CONVBI_ECANCELED)
		return err_set(err, CONVBI_ECANCELED, "the query was canceled");
	if (stopped == CONVBI_ETIMEOUT || !strcmp(state, "57014") || !strcmp(state, "55P03"))
		return err_set(err, CONVBI_ETIMEOUT,
		               "the query ran longer than %d ms; filter earlier, aggregate, avoid cross joins or add a LIMIT",
		               timeout_ms);
	if (!strcmp(state, "25006"))
		return err_set(err, CONVBI_EREJECTED, "%s; only SELECT is allowed", msg);
	if (!strncmp(state, "54", 2) || !strncmp(state, "53", 2))
		return err_set(err, CONVBI_ETOOBIG, "%s; select less data or simplify the query", msg);
	if (!strncmp(state, "08", 2))
		return err_set(err, CONVBI_EDB, "the database connection failed: %s", msg);
	if (pos) {
		long chars = strtol(pos, NULL, 10);
		size_t len = strlen(sql), at = text_prefix_chars(sql, len, chars > 0 ? (size_t)chars - 1 : 0);
		size_t near = strcspn(sql + at, "\n");
		near = text_cut(sql + at, near, 24);
		return err_set(err, CONVBI_ESQL, "%s at character %ld near `%.*s`%s%s", msg, chars, (int)near, sql + at,
		               hint ? "; hint: " : "", hint ? hint : "");
	}
	return err_set(err, CONVBI_ESQL, "%s%s%s", msg, hint ? "; hint: " : "", hint ? hint : "");
}

/* ---- check ---------------------------------------------------------------------- */

static int pg_check(struct db *d, const char *sql, struct err *err)
{
	struct pg *p = d->impl;
	int rc = pg_gate_check(sql, strlen(sql), 0, err);
	if (rc)
		return rc;
	if (PQstatus(p->conn) != CONNECTION_OK && (rc = reconnect(d, err)))
		return rc;
	/* parse and analyse on the server, without planning or running */
	PGresult *res = PQprepare(p->conn, "", sql, 0, NULL);
	if (!res)
		return err_set(err, CONVBI_ENOMEM, "out of memory checking the SQL");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = map_error(res, sql, 0, 0, err);
	PQclear(res);
	return rc;
}

/* ---- run ------------------------------------------------------------------------ */

static const char *type_name(Oid oid)
{
	switch (oid) {
	case 16: return "boolean";
	case 20: return "bigint";
	case 21: return "smallint";
	case 23: return "integer";
	case 25: return "text";
	case 700: return "real";
	case 701: return "double precision";
	case 1043: return "varchar";
	case 1082: return "date";
	case 1114: return "timestamp";
	case 1184: return "timestamptz";
	case 1700: return "numeric";
	default: return NULL;
	}
}

static int cell_type(Oid oid)
{
	switch (oid) {
	case 20:
	case 21:
	case 23: return TABLE_INT;
	case 700:
	case 701:
	case 1700: return TABLE_REAL;
	default: return TABLE_TEXT;
	}
}

static int start_table(struct table **out, const PGresult *res)
{
	int ncols = PQnfields(res);
	int rc = table_new(out, ncols);
	for (int c = 0; c < ncols && !rc; c++)
		rc = table_set_column(*out, c, PQfname(res, c), type_name(PQftype(res, c)));
	return rc;
}

static int copy_row(struct table *t, const PGresult *res, size_t cell_max)
{
	int rc = table_add_row(t);
	int64_t row = t->nrows - 1;
	for (int c = 0; c < t->ncols && !rc; c++) {
		if (PQgetisnull(res, 0, c)) {
			rc = table_set_cell(t, row, c, TABLE_NULL, NULL, 0, cell_max);
			continue;
		}
		const char *v = PQgetvalue(res, 0, c);
		size_t len = (size_t)PQgetlength(res, 0, c);
		if (PQftype(res, c) == 16) { /* boolean: t / f */
			v = v[0] == 't' ? "true" : "false";
			len = strlen(v);
		}
		rc = table_set_cell(t, row, c, cell_type(PQftype(res, c)), v, len, cell_max);
	}
	return rc;
}

/* BEGIN READ ONLY with this run's limits, in one round trip:
 *   time    statement_timeout and lock_timeout at the deadline, and
 *           idle_in_transaction_session_timeout in case we vanish;
 *   memory  work_mem -- what each sort, hash or materialising step may
 *           hold before it spills to temporary files -- at mem_max split
 *           over PG_WORK_MEM_SHARES steps, never above the session's own
 *           setting, with hash_mem_multiplier 1 so hashes keep to it too;
 *   disk    temp_file_limit at temp_max, never above the session's own,
 *           when the role may set it (see check_session); otherwise the
 *           server's or the role's own temp_file_limit applies, and the
 *           deadline.
 * PostgreSQL has no cap on a whole query's memory: work_mem bounds each
 * step, a value is at most 1 GB, and the deadline bounds the rest. */
static int begin(struct pg *p, const struct exec_limits *lim, struct err *err)
{
	char sql[512];
	int t = lim->timeout_ms > 0 ? lim->timeout_ms : 0;
	int n = snprintf(sql, sizeof sql,
	                 "BEGIN READ ONLY; SET LOCAL statement_timeout = %d; SET LOCAL lock_timeout = %d; "
	                 "SET LOCAL idle_in_transaction_session_timeout = %d",
	                 t, t, t ? 2 * t + 5000 : 60000);
	int64_t mem = lim->mem_max ? lim->mem_max : EXEC_MEM_MAX_DEFAULT;
	if (mem > 0) {
		int64_t kb = mem / PG_WORK_MEM_SHARES / 1024;
		if (p->work_mem_kb > 0 && kb > p->work_mem_kb)
			kb = p->work_mem_kb;
		if (kb < PG_WORK_MEM_MIN_KB)
			kb = PG_WORK_MEM_MIN_KB;
		n += snprintf(sql + n, sizeof sql - (size_t)n, "; SET LOCAL work_mem = %lld", (long long)kb);
		if (PQserverVersion(p->conn) >= 130000)
			n += snprintf(sql + n, sizeof sql - (size_t)n, "; SET LOCAL hash_mem_multiplier = 1");
	}
	int64_t temp = lim->temp_max ? lim->temp_max : EXEC_TEMP_MAX_DEFAULT;
	if (temp > 0 && p->temp_limit_settable) {
		int64_t kb = temp / 1024 > 0 ? temp / 1024 : 1;
		if (p->temp_limit_kb >= 0 && kb > p->temp_limit_kb)
			kb = p->temp_limit_kb; /* never above the role's or the server's own */
		if (kb > INT32_MAX)
			kb = INT32_MAX;
		snprintf(sql + n, sizeof sql - (size_t)n, "; SET LOCAL temp_file_limit = %lld", (long long)kb);
	}
	PGresult *res = PQexec(p->conn, sql);
	int ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
	char why[300];
	first_line(why, sizeof why, res ? PQresultErrorMessage(res) : PQerrorMessage(p->conn));
	PQclear(res);
	return ok ? CONVBI_OK : err_set(err, CONVBI_EDB, "starting a read-only transaction failed: %s", why);
}

struct run {
	struct pg *p;
	const struct exec_limits *lim;
	struct table *t;
	int (*cancel)(void *); /* db.c's wrapper: the caller's callback or db_cancel */
	void *cancel_payload;
	int stopped;         /* 0, CONVBI_ETIMEOUT or ECANCELED: we cancelled the query */
	int cut;             /* a cap was reached: the rest was cancelled */
	int64_t cancel_at;   /* clock_mono_ms() of our first PQcancel, 0 = none */
	int64_t cancel_last; /* clock_mono_ms() of the latest one */
	int failed;          /* an error result was recorded in err */
	int rc;
};

/* Asks the server to cancel, and asks again every PG_CANCEL_RETRY_MS
 * while the query goes on: a backend drops a cancel that arrives before it
 * has read the query (it is "reading a command"), so one request can be
 * lost when the query was sent a moment before. */
static void send_cancel(struct run *r)
{
	char errbuf[256];
	int64_t now = clock_mono_ms();
	if (!r->cancel_at)
		r->cancel_at = now;
	else if (now - r->cancel_last < PG_CANCEL_RETRY_MS)
		return;
	r->cancel_last = now;
	PQcancel(r->p->cancel, errbuf, sizeof errbuf);
}

/* One result from the server: a row, the end, or an error. */
static void take_result(struct run *r, PGresult *res, const char *sql, struct err *err)
{
	ExecStatusType st = PQresultStatus(res);
	if (r->failed || ((r->cut || r->stopped) && st != PGRES_FATAL_ERROR))
		return; /* draining after a cap or an error */
	if (st == PGRES_SINGLE_TUPLE || st == PGRES_TUPLES_OK) {
		if (!r->t && start_table(&r->t, res)) {
			r->rc = err_set(err, CONVBI_ENOMEM, "out of memory reading the result");
			r->failed = 1;
			send_cancel(r);
			return;
		}
		if (st == PGRES_TUPLES_OK)
			return;
		if (r->lim->row_cap > 0 && r->t->nrows >= r->lim->row_cap) {
			r->t->truncated = 1;
			r->t->cut = TABLE_CUT_ROWS;
			r->cut = 1;
			send_cancel(r);
			return;
		}
		if (copy_row(r->t, res, r->lim->cell_max)) {
			r->rc = err_set(err, CONVBI_ENOMEM, "out of memory reading the result");
			r->failed = 1;
			send_cancel(r);
			return;
		}
		if (r->lim->result_max && r->t->bytes > r->lim->result_max) {
			table_pop_row(r->t);
			r->t->truncated = 1;
			r->t->cut = TABLE_CUT_BYTES;
			r->cut = 1;
			send_cancel(r);
		}
		return;
	}
	if (r->cut &&
	    !strcmp(PQresultErrorField(res, PG_DIAG_SQLSTATE) ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : "", "57014"))
		return; /* our own cancel after a cap: the rows kept are the answer */
	if (!r->stopped && r->cancel && r->cancel(r->cancel_payload))
		r->stopped = CONVBI_ECANCELED; /* db_cancel's PQcancel landed before our loop saw its flag */
	r->rc = map_error(res, sql, r->stopped, r->lim->timeout_ms, err);
	r->failed = 1;
}

static int pg_run(struct db *d, const char *sql, const struct exec_limits *lim, int (*cancel)(void *), void *cancel_payload,
                  struct table **out, struct err *err)
{
	static const struct exec_limits defaults = EXEC_LIMITS_INIT;
	struct pg *p = d->impl;
	struct run r = {.p = p, .lim = lim ? lim : &defaults, .cancel = cancel, .cancel_payload = cancel_payload};
	int rc;
	*out = NULL;
	if (cancel && cancel(cancel_payload))
		return err_set(err, CONVBI_ECANCELED, "the query was canceled");
	if ((rc = pg_gate_check(sql, strlen(sql), r.lim->catalog_ok, err)))
		return rc;
	if (PQstatus(p->conn) != CONNECTION_OK && (rc = reconnect(d, err)))
		return rc;
	if ((rc = begin(p, r.lim, err)) && PQstatus(p->conn) != CONNECTION_OK) {
		/* the server closed an idle connection: once more on a new one */
		if (!(rc = reconnect(d, err)))
			rc = begin(p, r.lim, err);
	}
	if (rc)
		return rc;
	int64_t deadline = r.lim->timeout_ms > 0 ? clock_mono_ms() + r.lim->timeout_ms : 0;
	atomic_store(&p->running, 1);
	if (!PQsendQueryParams(p->conn, sql, 0, NULL, NULL, NULL, NULL, 0) || !PQsetSingleRowMode(p->conn)) {
		char why[300];
		first_line(why, sizeof why, PQerrorMessage(p->conn));
		r.rc = err_set(err, CONVBI_EDB, "sending the query failed: %s", why);
		r.failed = 1;
		goto finish;
	}
	for (;;) {
		if (!PQconsumeInput(p->conn)) {
			char why[300];
			first_line(why, sizeof why, PQerrorMessage(p->conn));
			r.rc = err_set(err, CONVBI_EDB, "the database connection failed: %s", why);
			r.failed = 1;
			goto finish;
		}
		int done = 0;
		while (!PQisBusy(p->conn)) {
			PGresult *res = PQgetResult(p->conn);
			if (!res) {
				done = 1;
				break;
			}
			take_result(&r, res, sql, err);
			PQclear(res);
		}
		if (done)
			break;
		int64_t now = clock_mono_ms();
		if (!r.stopped && !r.cut && !r.failed) {
			if (cancel && cancel(cancel_payload))
				r.stopped = CONVBI_ECANCELED;
			else if (deadline && now >= deadline)
				r.stopped = CONVBI_ETIMEOUT;
			if (r.stopped)
				send_cancel(&r);
		}
		if (r.cancel_at)
			send_cancel(&r);
		if (r.cancel_at && now - r.cancel_at > PG_CANCEL_WAIT_MS) {
			/* the server ignores the cancel: drop the connection */
			PQfinish(p->conn);
			p->conn = NULL;
			PQfreeCancel(p->cancel);
			p->cancel = NULL;
			if (!r.failed)
				r.rc = r.stopped ? map_error(NULL, sql, r.stopped, r.lim->timeout_ms, err) : CONVBI_OK;
			r.failed = r.rc != CONVBI_OK;
			break;
		}
		int wait = PG_POLL_MS;
		if (deadline && !r.stopped && deadline - now < wait)
			wait = deadline - now > 0 ? (int)(deadline - now) : 0;
		struct pollfd pfd = {PQsocket(p->conn), POLLIN, 0};
		poll(&pfd, 1, wait);
	}
finish:
	atomic_store(&p->running, 0);
	if (p->conn) {
		/* drain anything left, then end the transaction whatever happened */
		PGresult *res;
		while ((res = PQgetResult(p->conn)))
			PQclear(res);
		res = PQexec(p->conn, "ROLLBACK");
		PQclear(res);
		/* Views run functions the gate never saw in the query text: what
		 * they left on the session outlives ROLLBACK (an advisory lock,
		 * set_config(..., false), SET ROLE through set_config).  DISCARD
		 * ALL drops it all; our own settings are made again. */
		res = PQexec(p->conn, "DISCARD ALL");
		PQclear(res);
		if (p->restore_sql) {
			res = PQexec(p->conn, p->restore_sql);
			PQclear(res);
		}
	}
	if (r.stopped && !r.failed) { /* it ended as we stopped it: the rows are incomplete */
		r.rc = map_error(NULL, sql, r.stopped, r.lim->timeout_ms, err);
		r.failed = 1;
	}
	if (r.failed) {
		table_free(r.t);
		return r.rc;
	}
	if (!r.t && (rc = table_new(&r.t, 0)))
		return err_set(err, rc, "out of memory reading the result");
	*out = r.t;
	return CONVBI_OK;
}
