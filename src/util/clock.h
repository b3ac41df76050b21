/* clock.h -- time sources, in milliseconds and nanoseconds.
 *
 * clock_wall_ms is Unix time (shared across processes: cooldown deadlines in
 * the shared state file use it); clock_mono_ms/ns are for measuring
 * intervals inside one process.  Pure modules never call these: they take
 * `now_ms` as an argument.
 */
#ifndef CONVBI_UTIL_CLOCK_H
#define CONVBI_UTIL_CLOCK_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

int64_t clock_wall_ms(void);
int64_t clock_mono_ms(void);
int64_t clock_mono_ns(void);
/* CPU time used by the calling thread, in nanoseconds. */
int64_t clock_thread_cpu_ns(void);
/* Sleeps up to ms milliseconds (interrupted early by a signal). */
void clock_sleep_ms(int64_t ms);

/* 0 when s is a real calendar date written YYYY-MM-DD, years 0001..9999;
 * else -1 with one line in why saying what is wrong with it, named as
 * `name` ("today is `2024-02-30`, which is no real date (February 2024
 * has no day 30); give a date as YYYY-MM-DD").  The one rule of every
 * today: the engine's option, a question's, serve's and MCP's. */
int clock_date_check(const char *s, const char *name, char *why, size_t cap);

/* Initialises cv so that its timed waits run on CLOCK_MONOTONIC, the
 * clock of clock_mono_ms (a wall-clock jump then neither cuts a wait
 * short nor stretches it).  Returns pthread_cond_init's code. */
int clock_cond_init(pthread_cond_t *cv);
/* Waits on cv (from clock_cond_init; mu held) until it is signalled or
 * clock_mono_ms() reaches until_ms, or for ms milliseconds from now.
 * Returns pthread_cond_timedwait's code (ETIMEDOUT: the time came). */
int clock_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t until_ms);
int clock_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms);

#endif
