/* status.c -- the status-code table behind convbi_errstr/convbi_errname.
 *
 * It lives at the bottom (util) so that every module can name a code
 * without calling upward, as libuv keeps uv_strerror below its platform
 * layers.  The table is generated from CONVBI_STATUS_MAP in the public
 * header, so the numbers, names and texts cannot drift apart; both
 * functions are exported from the library as part of the public API.
 */
#include "convbi/convbi.h"

CONVBI_API const char *convbi_errstr(int code)
{
	switch (code) {
#define CONVBI_X_(name, num, text) \
	case num: return text;
		CONVBI_STATUS_MAP(CONVBI_X_)
#undef CONVBI_X_
	}
	return "unknown status";
}

CONVBI_API const char *convbi_errname(int code)
{
	switch (code) {
#define CONVBI_X_(name, num, text) \
	case num: return #name;
		CONVBI_STATUS_MAP(CONVBI_X_)
#undef CONVBI_X_
	}
	return "?";
}
