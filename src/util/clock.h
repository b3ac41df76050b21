/* clock.h -- time sources, in milliseconds and nanoseconds.
 *
 * clock_wall_ms is Unix time (shared across processes: cooldown deadlines in
 * the shared state file use it); clock_mono_ms/ns are for measuring
 * intervals inside one process.  Pure modules never call these: they take
 * `now_ms` as an argument.
 */
#ifndef CONVBI_UTIL_CLOCK_H
#define CONVBI_UTIL_CLOCK_H

#include <stdint.h>

int64_t clock_wall_ms(void);
int64_t clock_mono_ms(void);
int64_t clock_mono_ns(void);
/* CPU time used by the calling thread, in nanoseconds. */
int64_t clock_thread_cpu_ns(void);
/* Sleeps up to ms milliseconds (interrupted early by a signal). */
void clock_sleep_ms(int64_t ms);

#endif
