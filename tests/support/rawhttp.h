/* rawhttp.h -- a deliberately dumb HTTP/1.1 client for wire-level tests.
 *
 * It records what a real client would observe and nothing more: the status,
 * the headers, the body (de-chunked, whole chunks only), whether the body
 * ended as its framing says, an EOF, a connection reset, silence until a
 * timeout, and when the first byte arrived.  It never retries, never
 * follows anything, and never hides a broken reply, so tests can assert on
 * faults (a reset, a hang, a cut stream) exactly as they appear on the wire.
 * Independent of the library under test.
 */
#ifndef CONVBI_TESTS_RAWHTTP_H
#define CONVBI_TESTS_RAWHTTP_H

#include <stddef.h>
#include <stdint.h>

struct rawhttp_resp {
	int status;       /* -1 without a status line */
	int got_continue; /* a 1xx interim reply came first */
	char *head;       /* owned: status line and headers, NULL if none */
	char *body;       /* owned: de-chunked body so far, NUL-terminated */
	size_t body_len;
	int complete;          /* Content-Length reached or last chunk seen */
	int eof;               /* the server closed */
	int reset;             /* the server reset the connection */
	int timed_out;         /* nothing ended the read before the timeout */
	int64_t first_byte_ms; /* from the start of the read; -1: no byte came */
	int64_t total_ms;      /* the read's duration */
};

/* A TCP connection to 127.0.0.1:port (TCP_NODELAY); -1 on failure. */
int rawhttp_dial(int port);

/* Sends all of text; 0, or -1 when the connection failed. */
int rawhttp_send(int fd, const char *text);
/* The same for n bytes that need not be a string. */
int rawhttp_send_n(int fd, const char *p, size_t n);

/* "METHOD path HTTP/1.1" with Host, the given header lines (each ending in
 * "\r\n", or ""), Content-Type: application/json and Content-Length, then
 * body.  Caller frees; NULL only on ENOMEM. */
char *rawhttp_request(const char *method, const char *path, const char *headers, const char *body);

/* Reads one response (after any 1xx) until it is complete, the peer closes
 * or resets, or timeout_ms passes.  Always fills r; release it. */
void rawhttp_read(int fd, int timeout_ms, struct rawhttp_resp *r);
void rawhttp_resp_release(struct rawhttp_resp *r);

/* Copies header `name` (case-insensitive) into out; 1 if present. */
int rawhttp_header(const struct rawhttp_resp *r, const char *name, char *out, size_t n);

/* Splits an SSE body into its events' "data: " payloads (only complete
 * events, those ending in "\n\n").  Returns the count and a malloc'd array
 * of malloc'd strings in *events (free with rawhttp_sse_free), or -1 when an
 * event does not start with "data: ". */
int rawhttp_sse(const struct rawhttp_resp *r, char ***events);
void rawhttp_sse_free(char **events, int n);

#endif
