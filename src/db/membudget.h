/* membudget.h -- per-query memory accounting for SQLite.
 *
 * sqlite3_hard_heap_limit64() bounds the whole process; a query needs a
 * bound of its own.  membudget wraps SQLite's allocator (installed with
 * SQLITE_CONFIG_MALLOC by a constructor, before anything can initialise
 * SQLite) and charges every allocation made by a thread that has entered a
 * budget to that budget; the block remembers its budget, so a free from
 * any thread, any time later, credits the right one.  An allocation that
 * would take the budget over its limit fails (SQLite reports SQLITE_NOMEM)
 * and marks the budget exceeded, which exec turns into ETOOBIG.
 *
 * A budget lives until its owner frees it and the last block charged to it
 * is freed (a reference count), so a page kept in a cache after the query
 * never points at freed memory.  Allocations of threads that entered no
 * budget are not counted (the engine's base: schema, caches of other
 * statements).
 *
 * Every budget also draws on one process-wide total: an allocation fails
 * when what all budgets hold together would pass max(the process limit,
 * the budget's own limit), so statements running at once on many
 * connections (serve's concurrent questions, batch's workers) cannot add
 * up past it, while one statement always gets its own budget.  The
 * budget then says which of the two limits refused it.
 *
 * When the host initialised SQLite before this library was loaded, the
 * wrapper is not in place: membudget_active() says 0 and budgets count
 * nothing (exec then still has its other limits).
 */
#ifndef CONVBI_DB_MEMBUDGET_H
#define CONVBI_DB_MEMBUDGET_H

#include <stdint.h>

#include "db/meter.h"

struct membudget;

/* 1 when SQLite runs on the accounting allocator. */
int membudget_active(void);

/* A budget of limit bytes (<= 0 = unlimited, counting only).  Returns
 * NULL when out of memory. */
struct membudget *membudget_new(int64_t limit);

/* Drops the owner's reference; the budget is freed with its last block.
 * Accepts NULL. */
void membudget_free(struct membudget *b);

/* Makes b (may be NULL) the calling thread's budget; returns the previous
 * one, to be given back to membudget_leave. */
struct membudget *membudget_enter(struct membudget *b);
void membudget_leave(struct membudget *previous);

/* From deadline_ms on (clock_mono_ms(); 0 = never), allocations of at
 * least MEMBUDGET_LATE_BYTES charged to b fail: every SQL function that
 * builds a large value allocates it, so a run of such calls in straight-
 * line code -- where SQLite checks for no interrupt -- stops at the
 * deadline too.  Small allocations go on, so the statement can unwind. */
#define MEMBUDGET_LATE_BYTES (16 * 1024)
void membudget_set_deadline(struct membudget *b, int64_t deadline_ms);

/* The budget's meter (borrowed from b): bytes charged now, the peak and
 * the limit (meter_reset sets it and starts a new peak), and whether an
 * allocation was refused since the last reset: 1 by the budget's own
 * limit, 2 by the process-wide one. */
struct meter *membudget_meter(struct membudget *b);

/* The process-wide limit (<= 0 = none, the start) and what all budgets
 * hold now. */
void membudget_set_process_limit(int64_t limit);
int64_t membudget_process_limit(void);
int64_t membudget_process_used(void);

#endif
