/* clock.c -- clock_gettime wrappers (see clock.h). */
#include "util/clock.h"

#include <time.h>

static int64_t ns_of(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t clock_wall_ms(void)
{
	return ns_of(CLOCK_REALTIME) / 1000000;
}
int64_t clock_mono_ms(void)
{
	return ns_of(CLOCK_MONOTONIC) / 1000000;
}
int64_t clock_mono_ns(void)
{
	return ns_of(CLOCK_MONOTONIC);
}
int64_t clock_thread_cpu_ns(void)
{
	return ns_of(CLOCK_THREAD_CPUTIME_ID);
}

void clock_sleep_ms(int64_t ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}
