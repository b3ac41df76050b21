/* watchdog.c -- the deadline thread of one connection (see watchdog.h).
 *
 * The thread waits with pthread_cond_timedwait on CLOCK_MONOTONIC (the
 * condition variable is created with that clock, so wall-clock jumps move
 * nothing).  State is three fields under one mutex: the deadline (0 =
 * disarmed), whether it fired, and whether the thread must quit.
 */
#include "db/watchdog.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "util/alloc.h"
#include "util/clock.h"

struct watchdog {
	sqlite3 *db; /* borrowed */
	pthread_mutex_t lock;
	pthread_cond_t wake; /* on CLOCK_MONOTONIC */
	pthread_t thread;
	int started;         /* 1 = thread runs; join it in watchdog_free */
	int quit;            /* 1 = the thread must return */
	int64_t deadline_ms; /* clock_mono_ms() to interrupt at; 0 = disarmed */
	int fired;           /* 1 = interrupted for the current arming */
};

static void *watch(void *p)
{
	struct watchdog *w = p;
	pthread_mutex_lock(&w->lock);
	while (!w->quit) {
		if (!w->deadline_ms || w->fired) {
			pthread_cond_wait(&w->wake, &w->lock);
			continue;
		}
		int64_t now = clock_mono_ms();
		if (now >= w->deadline_ms) {
			sqlite3_interrupt(w->db);
			w->fired = 1;
			continue;
		}
		clock_cond_wait_until(&w->wake, &w->lock, w->deadline_ms);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

struct watchdog *watchdog_new(sqlite3 *db)
{
	struct watchdog *w = xcalloc(1, sizeof *w);
	if (!w)
		return NULL;
	if (clock_cond_init(&w->wake)) {
		free(w);
		return NULL;
	}
	pthread_mutex_init(&w->lock, NULL);
	w->db = db;
	return w;
}

void watchdog_free(struct watchdog *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->quit = 1;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	if (w->started)
		pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

int watchdog_arm(struct watchdog *w, int64_t deadline_ms)
{
	int rc = 0;
	pthread_mutex_lock(&w->lock);
	if (!w->started) {
		if (pthread_create(&w->thread, NULL, watch, w) == 0)
			w->started = 1;
		else
			rc = -1;
	}
	w->deadline_ms = deadline_ms;
	w->fired = 0;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	return rc;
}

int watchdog_disarm(struct watchdog *w)
{
	pthread_mutex_lock(&w->lock);
	int fired = w->fired;
	w->deadline_ms = 0;
	w->fired = 0;
	pthread_mutex_unlock(&w->lock);
	return fired;
}
