/* status.c -- the status-code table behind convbi_errstr/convbi_errname,
 * and the small global helpers of the public API (convbi_free,
 * convbi_version).  The table is generated from CONVBI_STATUS_MAP so the
 * numbers, names and texts cannot drift apart. */
#include <stdlib.h>

#include "convbi/convbi.h"
#include "util/log.h"

CONVBI_API const char *convbi_errstr(int code)
{
	switch (code) {
#define CONVBI_X_(name, num, text) case num: return text;
		CONVBI_STATUS_MAP(CONVBI_X_)
#undef CONVBI_X_
	}
	return "unknown status";
}

CONVBI_API const char *convbi_errname(int code)
{
	switch (code) {
#define CONVBI_X_(name, num, text) case num: return #name;
		CONVBI_STATUS_MAP(CONVBI_X_)
#undef CONVBI_X_
	}
	return "?";
}

CONVBI_API void convbi_free(void *p)
{
	free(p);
}

CONVBI_API const char *convbi_version(void)
{
	return CONVBI_VERSION_STRING;
}

CONVBI_API void convbi_set_log(convbi_log_fn fn, void *payload, int min_level)
{
	log_set_sink(fn, payload, min_level);
}
