/* log.c -- the redacting log sink (see log.h). */
#include "util/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "util/secret.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static log_sink_fn log_sink; /* NULL = drop */
static void *log_payload;
static int log_min = LOG_WARN;

void log_set_sink(log_sink_fn fn, void *payload, int min_level)
{
	pthread_mutex_lock(&log_lock);
	log_sink = fn;
	log_payload = payload;
	log_min = min_level;
	pthread_mutex_unlock(&log_lock);
}

void log_msg(int level, const char *fmt, ...)
{
	char line[1024];
	pthread_mutex_lock(&log_lock);
	if (!log_sink || level < log_min) {
		pthread_mutex_unlock(&log_lock);
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	secret_redact(line);
	log_sink(level, line, log_payload);
	pthread_mutex_unlock(&log_lock);
}
