/* state_redis_url.c -- parses redis:// URLs for the redis state backend (see
 * state_redis_url.h).  Pure: a string in, a struct out; no sockets, no
 * environment.  Messages never repeat the URL, which may hold a password. */
#include "llm/state_redis_url.h"

#include <string.h>
#include <strings.h>

#include "convbi/convbi.h"

static int hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes s[0..n) into out; -1 for a bad escape, a NUL or no room. */
static int pct_decode(char *out, size_t cap, const char *s, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (c == '%') {
			if (i + 2 >= n)
				return -1;
			int a = hex_digit((unsigned char)s[i + 1]), b = hex_digit((unsigned char)s[i + 2]);
			if (a < 0 || b < 0)
				return -1;
			c = a * 16 + b;
			i += 2;
		}
		if (c == 0 || o + 1 >= cap)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

/* Parses decimal s[0..n) in [lo, hi]; -1 if it is not that. */
static long parse_range(const char *s, size_t n, long lo, long hi)
{
	long v = 0;
	if (n == 0 || n > 9)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v < lo || v > hi ? -1 : v;
}

#define URL_FORM "redis://[[user]:password@]host[:port][/db]"

int state_redis_url_parse(struct state_redis_url *out, const char *url, struct err *err)
{
	memset(out, 0, sizeof *out);
	out->port = STATE_REDIS_PORT;
	if (!url || !*url)
		return err_set(err, CONVBI_ECONFIG, "the Redis URL is empty; write " URL_FORM);
	if (!strncasecmp(url, "rediss://", 9))
		return err_set(err, CONVBI_ECONFIG,
		               "TLS Redis URLs (rediss://) are not supported; use redis:// (through a "
		               "TLS tunnel if needed)");
	if (strncasecmp(url, "redis://", 8))
		return err_set(err, CONVBI_ECONFIG, "the Redis URL does not start with redis://; write " URL_FORM);
	const char *p = url + 8;
	const char *end = p + strcspn(p, "/?#"); /* end of the authority */
	const char *at = NULL;
	for (const char *q = p; q < end; q++)
		if (*q == '@')
			at = q;
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		if (!colon)
			return err_set(err, CONVBI_ECONFIG,
			               "the Redis URL names a user without a password; write "
			               "user:password@ or :password@");
		if (pct_decode(out->user, sizeof out->user, p, (size_t)(colon - p)) ||
		    pct_decode(out->pass, sizeof out->pass, colon + 1, (size_t)(at - colon - 1)))
			goto bad_cred;
		if (!out->pass[0])
			return err_set(err, CONVBI_ECONFIG, "the Redis URL has an empty password; drop the '@' part or give one");
		p = at + 1;
	}
	const char *host = p, *host_end;
	if (*p == '[') {
		const char *close = memchr(p, ']', (size_t)(end - p));
		if (!close)
			goto bad_host;
		host = p + 1;
		host_end = close;
		p = close + 1;
	} else {
		for (host_end = p; host_end < end && *host_end != ':'; host_end++)
			;
		p = host_end;
	}
	if (host_end == host || (size_t)(host_end - host) >= sizeof out->host)
		goto bad_host;
	memcpy(out->host, host, (size_t)(host_end - host));
	if (p < end) {
		long port = *p == ':' ? parse_range(p + 1, (size_t)(end - p - 1), 1, 65535) : -1;
		if (port < 0)
			return err_set(err, CONVBI_ECONFIG, "the Redis URL has a bad port; use a number from 1 to 65535");
		out->port = (int)port;
	}
	if (*end == '/' && end[1]) {
		long db = parse_range(end + 1, strcspn(end + 1, "?#"), 0, 99999);
		if (db < 0)
			return err_set(err, CONVBI_ECONFIG, "the Redis URL's path is not a database number; write .../0");
		out->db = (int)db;
		end = end + 1 + strcspn(end + 1, "?#");
	} else if (*end == '/') {
		end++;
	}
	if (*end)
		return err_set(err, CONVBI_ECONFIG,
		               "the Redis URL has options after '?' or '#', which are not supported; "
		               "write " URL_FORM);
	return CONVBI_OK;
bad_cred:
	memset(out, 0, sizeof *out);
	return err_set(err, CONVBI_ECONFIG, "the Redis URL's user or password is badly percent-encoded or too long");
bad_host:
	memset(out->pass, 0, sizeof out->pass);
	return err_set(err, CONVBI_ECONFIG, "the Redis URL has no usable host; write " URL_FORM);
}
