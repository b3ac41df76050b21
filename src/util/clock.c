/* clock.c -- clock_gettime wrappers and CLOCK_MONOTONIC condition
 * variables (see clock.h). */
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

int clock_cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	int rc = pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
	return rc;
}

static int wait_until_ns(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t until_ns)
{
	struct timespec ts = {(time_t)(until_ns / 1000000000), (long)(until_ns % 1000000000)};
	return pthread_cond_timedwait(cv, mu, &ts);
}

int clock_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t until_ms)
{
	return wait_until_ns(cv, mu, until_ms * 1000000);
}

int clock_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms)
{
	return wait_until_ns(cv, mu, clock_mono_ns() + ms * 1000000);
}
