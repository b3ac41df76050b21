/* state_redis_url.h -- the redis:// URL of the redis state backend.
 *
 * Pure parsing, split from the backend so that it can be tested
 * exhaustively without a server. */
#ifndef CONVBI_LLM_STATE_REDIS_URL_H
#define CONVBI_LLM_STATE_REDIS_URL_H

#include "util/err.h"

#define STATE_REDIS_PORT 6379

/* A parsed redis:// URL. */
#define STATE_REDIS_HOST_MAX 256
#define STATE_REDIS_CRED_MAX 256
struct state_redis_url {
	char host[STATE_REDIS_HOST_MAX]; /* name or address, IPv6 without brackets */
	int port;                        /* default STATE_REDIS_PORT */
	int db;                          /* default 0 */
	char user[STATE_REDIS_CRED_MAX]; /* "" = the default user */
	char pass[STATE_REDIS_CRED_MAX]; /* "" = no AUTH; percent-decoded */
};
/* Parses redis://[[user]:password@]host[:port][/db] (user and password
 * percent-encoded, host may be [IPv6]).  Returns CONVBI_OK or
 * CONVBI_ECONFIG with a message that names the problem but never repeats
 * the URL (it may hold a password).  Zero out->pass after use. */
int state_redis_url_parse(struct state_redis_url *out, const char *url, struct err *err);

#endif
