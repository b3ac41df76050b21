/* clock.c -- clock_gettime wrappers and CLOCK_MONOTONIC condition
 * variables (see clock.h). */
#include "util/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int clock_date_check(const char *s, const char *name, char *why, size_t cap)
{
	static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	static const char *const months[] = {"January", "February", "March",     "April",   "May",      "June",
	                                     "July",    "August",   "September", "October", "November", "December"};
	int shaped = strlen(s) == 10;
	for (int i = 0; i < 10 && shaped; i++)
		shaped = i == 4 || i == 7 ? s[i] == '-' : s[i] >= '0' && s[i] <= '9';
	if (!shaped) {
		snprintf(why, cap, "%s is `%.40s`; give a date as YYYY-MM-DD", name, s);
		return -1;
	}
	int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (y < 1) /* years run 0001..9999: there is no year 0 */
		snprintf(why, cap, "%s is `%s`, which is no real date (there is no year 0); give a date as YYYY-MM-DD", name, s);
	else if (m < 1 || m > 12)
		snprintf(why, cap, "%s is `%s`, which is no real date (there is no month %d); give a date as YYYY-MM-DD", name, s,
		         m);
	else if (d < 1 || d > days[m - 1] || (m == 2 && d == 29 && !leap))
		snprintf(why, cap, "%s is `%s`, which is no real date (%s %.4s has no day %d); give a date as YYYY-MM-DD", name,
		         s, months[m - 1], s, d);
	else
		return 0;
	return -1;
}
