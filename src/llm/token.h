/* token.h -- Microsoft Entra ID access tokens for Azure endpoints.
 *
 * An endpoint whose "auth" type is managed_identity, workload_identity or
 * client_secret sends `Authorization: Bearer TOKEN` instead of its key.
 * A struct token_src is one identity (type, token endpoint, client id,
 * tenant, scope); the endpoints that use the same identity share it, and
 * so do the processes of the host, through a private cache file (0600,
 * beside the shared state file, under an flock'd lock file):
 *   - a token is used until about five minutes before it expires
 *     (TOKEN_REFRESH_MARGIN_MS, or a twelfth of its lifetime when that is
 *     shorter, so short-lived tokens are not refreshed all the time);
 *   - then one caller refreshes it: one thread of the process, and of the
 *     processes one, under the lock -- the others go on with the old
 *     token while it is still valid, or wait for the new one, which they
 *     read from the cache file instead of fetching their own;
 *   - after a 401, token_reject() marks that token bad: the next caller
 *     fetches another (once: a caller that finds the cache already holds a
 *     newer token uses it).
 * One fetch per expiry for the whole host, whatever the number of
 * processes and threads.  Tokens are secrets: registered for redaction
 * while in use, zeroed when dropped, never in a message.
 *
 * The wire (token_wire.c, pure: values in, bytes out):
 *   managed_identity  GET {token_url or IMDS}?api-version=2018-02-01
 *                     &resource=R[&client_id=C], header `Metadata: true`;
 *                     or, with $IDENTITY_ENDPOINT and $IDENTITY_HEADER,
 *                     GET {token_url or IDENTITY_ENDPOINT}?api-version=
 *                     2019-08-01&resource=R[&client_id=C], header
 *                     `X-IDENTITY-HEADER: H`;
 *   workload_identity POST {token_url or AUTHORITY/TENANT/oauth2/v2.0/token}
 *                     form grant_type=client_credentials, client_id, scope,
 *                     client_assertion_type=urn:ietf:params:oauth:
 *                     client-assertion-type:jwt-bearer, client_assertion=
 *                     (the federated token file, read at every exchange);
 *   client_secret     the same POST with client_secret= instead;
 * R is the scope without its trailing ".default".  A reply is JSON with
 * access_token, token_type "Bearer" (when present), and expires_in
 * (seconds; a number, or a string as IMDS writes it) or else expires_on
 * (Unix seconds, number or string, as App Service writes it).  An error
 * is {"error": CODE, "error_description": TEXT}.
 */
#ifndef CONVBI_LLM_TOKEN_H
#define CONVBI_LLM_TOKEN_H

#include <stdint.h>

#include "http/http.h"
#include "llm/config.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/limits.h"

#define TOKEN_REFRESH_MARGIN_MS 300000 /* refresh this long before expiry... */
#define TOKEN_REFRESH_FRACTION 12      /* ...or 1/12 of the lifetime, when shorter */
#define TOKEN_FETCH_TRIES 3            /* per refresh, on 429, 5xx, 404, 410, transport */
#define TOKEN_FAIL_HOLD_MS 1000        /* a failed refresh is not retried sooner */
#define TOKEN_IMDS_URL "http://169.254.169.254/metadata/identity/oauth2/token"

/* ---- the wire (token_wire.c) -------------------------------------------- */

/* One token request, as token_request builds it. */
struct token_req {
	struct buf url;    /* owned */
	struct buf header; /* owned; one extra header line, "" if none (may hold a secret) */
	struct buf body;   /* owned; form body, "" for GET (may hold a secret) */
	int get;           /* 1 = GET, 0 = POST form */
};

void token_req_init(struct token_req *r);
/* Zeroes the secrets, frees. */
void token_req_release(struct token_req *r);
/* Builds the request for identity a.  fed_token is the federated token
 * (workload_identity), NULL otherwise.  CONVBI_OK or CONVBI_ENOMEM. */
int token_request(struct token_req *out, const struct auth_cfg *a, const char *fed_token);
/* Where a's token comes from, for messages: the token URL without its
 * query ("http://169.254.169.254/metadata/identity/oauth2/token").
 * Appends to out. */
int token_endpoint_name(struct buf *out, const struct auth_cfg *a);
/* The identity as a string (type, endpoint, client, tenant, scope):
 * endpoints whose strings are equal share one token. */
int token_identity(struct buf *out, const struct auth_cfg *a);

/* A token parsed from a reply. */
struct token_val {
	char *token;         /* owned; zero it before freeing (token_val_release does) */
	int64_t expires_ms;  /* Unix ms */
	int64_t lifetime_ms; /* from issue to expiry, as far as we know */
};

void token_val_release(struct token_val *v);
/* Parses a 200 reply received at now_ms.  CONVBI_EAUTH with a one-line
 * message (never the token) when it is not a usable token. */
int token_parse_reply(struct token_val *out, const char *body, size_t len, int64_t now_ms, struct err *err);
/* A non-200 reply as one line: "HTTP 401 invalid_client: AADSTS7000215:
 * ..." (error_description cut to fit). */
void token_error_text(char *out, size_t cap, long status, const char *body, size_t len);
/* When to refresh a token: TOKEN_REFRESH_MARGIN_MS before it expires, or
 * lifetime / TOKEN_REFRESH_FRACTION when that is shorter. */
int64_t token_refresh_at(int64_t expires_ms, int64_t lifetime_ms);

/* ---- the cache (token.c) ----------------------------------------------- */

struct token_src;

/* Opens the source for identity a (borrowed: it must outlive the source).
 * cache_dir: the directory of the shared cache file, NULL = this process
 * only.  http is borrowed and must outlive the source.  Timeouts for the
 * token service come from retry.  CONVBI_OK or CONVBI_ENOMEM. */
int token_src_open(struct token_src **out, const struct auth_cfg *a, const char *cache_dir, struct http_client *http,
                   const struct retry_cfg *retry, struct err *err);
void token_src_close(struct token_src *t);
/* Appends "Authorization: Bearer TOKEN" to header (a secret: zero it
 * after use) and sets *fp to the token's fingerprint (for token_reject).
 * Fetches or reads the cache only when needed (see the top).  Waits no
 * later than deadline_mono.  CONVBI_OK; CONVBI_EAUTH (the message says
 * what the token service answered, or why it could not be reached);
 * CONVBI_ETIMEOUT when the deadline passed; CONVBI_ENOMEM. */
int token_get(struct token_src *t, int64_t deadline_mono, struct buf *header, uint64_t *fp, struct err *err);
/* The service refused the token with fingerprint fp (a 401): the next
 * token_get fetches a new one unless one newer than it is already known. */
void token_reject(struct token_src *t, uint64_t fp);
/* How many requests this process sent to the token service (tokens read
 * from the cache file are not counted); for tests and benchmarks. */
long token_src_fetches(const struct token_src *t);
/* The cache file (borrowed), NULL when the token is kept in-process only. */
const char *token_src_cache_path(const struct token_src *t);

#endif
