/* http.h -- one HTTP request (POST, or GET) through libcurl, with the timeouts we need.
 *
 * libcurl's own timeouts are coarse (whole seconds for low-speed checks),
 * so each transfer runs on a curl multi handle in a poll loop of at most
 * HTTP_POLL_MS per turn that enforces, to the millisecond: connect
 * timeout, first-byte timeout (request start -> first response byte),
 * idle gap between bytes, the call's absolute deadline, and cancellation.
 * Handles are kept in a free-list so connections are reused (keep-alive)
 * across calls; a transfer that failed closes its connection so that a
 * broken or hung socket is never reused.  DNS and TLS sessions are shared.
 *
 * Foreign errors are mapped here: CURLcode -> enum http_fail plus a short
 * detail text in plain words, not libcurl's (never containing headers,
 * hence never a key).
 */
#ifndef CONVBI_HTTP_HTTP_H
#define CONVBI_HTTP_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define HTTP_POLL_MS 20

enum http_fail {
	HTTP_FAIL_NONE,
	HTTP_FAIL_CONNECT, /* refused, unreachable, DNS */
	HTTP_FAIL_RESET,   /* connection reset or closed before a reply */
	HTTP_FAIL_TLS,
	HTTP_FAIL_CONNECT_TIMEOUT,
	HTTP_FAIL_FIRST_BYTE_TIMEOUT,
	HTTP_FAIL_IDLE_TIMEOUT,
	HTTP_FAIL_DEADLINE,
	HTTP_FAIL_PARTIAL, /* body cut before its end */
	HTTP_FAIL_ABORTED, /* a callback asked to stop */
	HTTP_FAIL_CANCELED,
	HTTP_FAIL_OTHER
};

struct http_call {
	const char *method; /* "POST" (NULL means POST) or "GET" (body ignored) */
	const char *url;
	const char *const *headers; /* "Name: value" lines */
	size_t nheaders;
	const char *body;
	size_t body_len;
	int connect_timeout_ms;
	int first_byte_timeout_ms;
	int idle_timeout_ms;
	int64_t deadline_mono_ms; /* absolute, clock_mono_ms() */
	/* Each header line of the final response (not 1xx), split. */
	void (*on_header)(void *payload, const char *name, size_t nlen, const char *value, size_t vlen);
	/* Body bytes as they arrive, with the final status; non-zero aborts
	 * with HTTP_FAIL_ABORTED. */
	int (*on_body)(void *payload, long status, const char *data, size_t n);
	/* Polled every turn; non-zero cancels with HTTP_FAIL_CANCELED. */
	int (*cancel)(void *payload);
	void *payload;
};

struct http_result {
	long status;      /* HTTP status, 0 if none received */
	int fail;         /* enum http_fail */
	char detail[160]; /* what a transport failure was, in plain words */
	int64_t first_byte_ms;
	int64_t total_ms;
};

struct http_client;

int http_client_new(struct http_client **out, struct err *err);
void http_client_free(struct http_client *c);
/* Performs one request (a POST unless call->method says GET); returns CONVBI_OK when a response (any status) came
 * back whole, else CONVBI_ELLM with res->fail set (CONVBI_ENOMEM if
 * memory ran out). */
int http_post(struct http_client *c, const struct http_call *call, struct http_result *res);
const char *http_fail_name(int fail);

#endif
