/* watchdog.h -- a thread that interrupts a connection at its deadline.
 *
 * SQLite's progress handler runs between virtual-machine instructions;
 * one instruction (a function call over a large value, a sort step, the
 * whole of a prepare) can outlast it.  A watchdog is one thread per
 * connection that sleeps on a condition variable until the armed deadline
 * and then calls sqlite3_interrupt(), which SQLite honours inside prepare
 * and between instructions wherever it checks.  Arming and disarming take
 * the watchdog's mutex, and sqlite3_interrupt() is called with it held,
 * so once watchdog_disarm() returns no interrupt of that arming can still
 * land on a later statement.  The thread starts on the first arming and
 * stops in watchdog_free().
 */
#ifndef CONVBI_DB_WATCHDOG_H
#define CONVBI_DB_WATCHDOG_H

#include <sqlite3.h>
#include <stdint.h>

struct watchdog;

/* Creates a disarmed watchdog for db (borrowed; it must outlive the
 * watchdog).  Returns NULL when out of memory. */
struct watchdog *watchdog_new(sqlite3 *db);

/* Stops and joins the thread, frees w; accepts NULL. */
void watchdog_free(struct watchdog *w);

/* Interrupts db once clock_mono_ms() reaches deadline_ms, unless disarmed
 * first.  Returns 0, or -1 when the thread cannot be started (the caller
 * then relies on the progress handler alone). */
int watchdog_arm(struct watchdog *w, int64_t deadline_ms);

/* Cancels the arming.  Returns 1 when the watchdog had already
 * interrupted db for it, else 0. */
int watchdog_disarm(struct watchdog *w);

#endif
