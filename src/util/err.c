/* err.c -- struct err helpers (see err.h).
 *
 * Messages are forced onto one line: any CR/LF from a foreign message (an
 * HTTP body, a SQLite error) becomes a space.
 */
#include "util/err.h"

#include <stdio.h>
#include <string.h>

#include "convbi/convbi.h"

static void one_line(char *s)
{
	for (; *s; s++)
		if (*s == '\n' || *s == '\r' || *s == '\t')
			*s = ' ';
}

void err_clear(struct err *e)
{
	if (!e)
		return;
	e->code = CONVBI_OK;
	e->msg[0] = '\0';
}

int err_vset(struct err *e, int code, const char *fmt, va_list ap)
{
	if (!e)
		return code;
	e->code = code;
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	one_line(e->msg);
	return code;
}

int err_set(struct err *e, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	err_vset(e, code, fmt, ap);
	va_end(ap);
	return code;
}

int err_prefix(struct err *e, const char *fmt, ...)
{
	if (!e)
		return CONVBI_OK;
	char head[ERR_MSG_MAX], old[ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(head, sizeof head, fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof old);
	snprintf(e->msg, sizeof e->msg, "%s%s", head, old);
	one_line(e->msg);
	return e->code;
}

int err_code(struct err *e, int code)
{
	if (!e)
		return code;
	if (e->code == code && e->msg[0])
		return code;
	return err_set(e, code, "%s", convbi_errstr(code));
}
