/* err.h -- an error code plus its one-line message, carried between modules.
 *
 * Internal functions return a public CONVBI_* code and, when they fail, fill
 * a struct err with a one-line message that names the problem and the fix.
 * The message is a fixed array (no allocation), so err_set works even when
 * memory is exhausted.  Messages never contain secrets: callers pass
 * endpoint names, never keys.
 */
#ifndef CONVBI_UTIL_ERR_H
#define CONVBI_UTIL_ERR_H

#include <stdarg.h>

#define ERR_MSG_MAX 512

struct err {
	int code;              /* CONVBI_OK or a CONVBI_E* code */
	char msg[ERR_MSG_MAX]; /* one line, "" when code is CONVBI_OK */
};

#define ERR_INIT          \
	{                 \
		0,        \
		{         \
			0 \
		}         \
	}

void err_clear(struct err *e);
/* Sets code and a printf-style message; returns code so that callers can
 * `return err_set(err, CONVBI_EINVAL, "...");`.  e may be NULL. */
int err_set(struct err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int err_vset(struct err *e, int code, const char *fmt, va_list ap);
/* Prefixes the existing message with context ("endpoint `east`: ..."). */
int err_prefix(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sets e from code alone, with convbi_errstr(code) as the message, unless e
 * already carries that code with a message. */
int err_code(struct err *e, int code);

#endif
