/* exec_impl.h -- the inside of struct exec, private to src/db.
 *
 * exec.c owns the connection and its lifetime; guard.c owns the
 * authorizer, the statement checks and the fields marked "guard" below.
 * Nothing outside src/db includes this file.
 */
#ifndef CONVBI_DB_EXEC_IMPL_H
#define CONVBI_DB_EXEC_IMPL_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "db/exec.h"

struct membudget;
struct tempvfs;
struct views;
struct watchdog;

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#define EXEC_REASON_MAX 256  /* bytes of an authorizer refusal reason */
#define EXEC_FILTER_SLOTS 32 /* room for guard.c's first-filter table */

struct exec {
	sqlite3 *db;    /* owned */
	char *path;     /* owned copy, for messages */
	char **objects; /* guard: owned names from sqlite_schema at open, sorted */
	size_t nobjects;
	pcre2_code *filter[EXEC_FILTER_SLOTS]; /* guard: owned, compiled first-filter patterns */
	char deny[EXEC_REASON_MAX];            /* guard: why the authorizer refused, "" = it did not */
	int deny_weak;                         /* guard: 1 = deny is about an internal sqlite_master
	                                 write, which a later, clearer refusal replaces */
	int64_t deadline_ms;                   /* clock_mono_ms() after which to stop; 0 = none */
	int timeout_ms;                        /* the limit behind deadline_ms, for messages */
	int (*cancel)(void *);                 /* polled from the progress handler; may be NULL */
	void *cancel_payload;
	int stopped;               /* CONVBI_ETIMEOUT or ECANCELED once the handler stopped a run */
	struct tempvfs *temp;      /* owned: the VFS the connection was opened on */
	struct membudget *mem;     /* owned: charged while exec_run runs */
	struct watchdog *watchdog; /* owned: interrupts db at the deadline */
	struct views *views;       /* guard: owned view weights, from guard_init */
	int64_t mem_limit;         /* bytes beyond the base, for messages */
	int64_t temp_limit;        /* bytes, for messages */
	int64_t started_ms;        /* clock_mono_ms() when the run began */
	int64_t mem_base;          /* the memory meter's use when the run began */
	struct exec_usage usage;   /* of the last run */
};

#endif
