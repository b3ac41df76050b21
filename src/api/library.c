/* library.c -- the small global functions of the public API that belong
 * to no handle: convbi_free, convbi_version and convbi_set_log.  (The
 * status table, convbi_errstr and convbi_errname, lives in
 * src/util/status.c, below every module that names a code.) */
#include <stdlib.h>

#include "convbi/convbi.h"
#include "util/log.h"

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
