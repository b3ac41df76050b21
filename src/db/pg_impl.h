/* pg_impl.h -- the PostgreSQL backend's state, private to src/db.
 *
 * pg.c owns the connection (open, run, cancel, close); pg_schema.c reads
 * the catalog over the same connection.  Nothing outside src/db includes
 * this file.
 */
#ifndef CONVBI_DB_PG_IMPL_H
#define CONVBI_DB_PG_IMPL_H

#include <libpq-fe.h>
#include <stdatomic.h>

#include "db/db_impl.h"

#define PG_CONNECT_TIMEOUT_TEXT "10"   /* seconds of connect_timeout when the target sets none */
#define PG_POLL_MS 50                  /* how often a waiting run checks cancel and deadline */
#define PG_CANCEL_RETRY_MS 200         /* a cancel request is repeated this often until the query ends */
#define PG_CANCEL_WAIT_MS 5000         /* time for a cancelled query to end before the connection is dropped */
#define PG_INTROSPECT_TIMEOUT_MS 30000 /* statement_timeout of catalog queries */
#define PG_RANGE_SCAN_BYTES (4 << 20)  /* a table without statistics scanned for min..max up to this size */
#define PG_RANGE_QUERY_MS 200          /* statement_timeout of one table's min..max scan */
#define PG_RANGE_TOTAL_MS 500          /* time for all of them at introspection */
#define PG_WORK_MEM_SHARES 16          /* a run's mem_max is split over this many sort/hash steps */
#define PG_WORK_MEM_MIN_KB 64          /* PostgreSQL's smallest work_mem */

struct pg {
	PGconn *conn;            /* owned */
	PGcancel *cancel;        /* owned; PQcancel on it is thread-safe */
	atomic_int running;      /* 1 while a model query is on the wire */
	char *schemas;           /* owned: the configured schema list "a,b", or NULL */
	char *conninfo;          /* owned: the target, for reconnecting */
	char *options;           /* owned: the libpq `options` we connect with */
	long work_mem_kb;        /* the session's work_mem (server, role or database setting) */
	long temp_limit_kb;      /* the session's temp_file_limit, -1 = none */
	int temp_limit_settable; /* 1 when the role may SET temp_file_limit (a superuser, or
	                                GRANT SET ON PARAMETER temp_file_limit, PostgreSQL 15+) */
	char *restore_sql;       /* owned: after DISCARD ALL, our session settings again (or NULL) */
};

/* Introspects the catalog of p's database (pg_schema.c). */
int pg_introspect(struct pg *p, struct schema **out, struct err *err);

/* Runs one statement of ours (not model SQL) and checks that it ended
 * with `want`; returns CONVBI_OK or EDB with the server's message, prefixed
 * with `what`.  *out (may be NULL) receives the result (PQclear it). */
int pg_exec_ours(struct pg *p, const char *sql, int nparams, const char *const *params, ExecStatusType want, const char *what,
                 PGresult **out, struct err *err);

#endif
