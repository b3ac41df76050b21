/* http.c -- HTTP/1.1 on one accepted socket: reading requests, writing
 * replies, chunked framing, and the waits and closes faults are made of.
 *
 * Requests: a request line and headers up to FK_MAX_HEAD bytes (431 beyond,
 * FK_MAX_HEADERS lines at most), header names lowercased, obsolete line
 * folding refused (400).  Bodies only by Content-Length, up to FK_MAX_BODY
 * (413 beyond); any Transfer-Encoding gets 411, as Azure's front door
 * answers a chunked upload.  "Expect: 100-continue" gets "HTTP/1.1 100
 * Continue" before the body is read.  Bytes after one request stay in the
 * connection's buffer for the next (pipelining works).  Keep-alive follows
 * HTTP/1.1 rules: on unless "Connection: close" (HTTP/1.0: only with
 * "Connection: keep-alive").
 *
 * Replies are queued into conn.out and sent by http_flush, so a status line,
 * headers and a small body leave in one write.  Every reply carries
 * apim-request-id and x-request-id, like the real service.  Nothing here
 * decides what to answer; route.c and wire.c do.
 */
#include "fake_aoai.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define DRAIN_MS 500 /* how long a close waits for the peer's FIN */

static const char *reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Payload Too Large";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Status";
	}
}

/* ---- reading ----------------------------------------------------------- */

/* Receives more bytes; returns the count, 0 on EOF, -1 on error. */
static long fill(struct conn *c, size_t want)
{
	if (c->in_cap - c->in_len < want + 1) {
		size_t cap = c->in_cap ? c->in_cap : 16384;
		while (cap - c->in_len < want + 1)
			cap *= 2;
		c->in = xrealloc(c->in, cap);
		c->in_cap = cap;
	}
	for (;;) {
		ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n > 0)
			c->in_len += (size_t)n;
		return (long)n;
	}
}

static void consume(struct conn *c, size_t n)
{
	memmove(c->in, c->in + n, c->in_len - n);
	c->in_len -= n;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

static int token_char(int ch)
{
	return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Parses the header block in rq->head (CRLF lines, no final blank line).
 * Returns 0 or an HTTP status for a malformed request. */
static int parse_head(struct request *rq)
{
	char *line = rq->head, *next;
	char *eol = strstr(line, "\r\n");
	next = eol ? eol + 2 : line + strlen(line);
	if (eol)
		*eol = '\0';

	char *sp1 = strchr(line, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || sp1 == line)
		return 400;
	*sp1 = *sp2 = '\0';
	rq->method = line;
	rq->target = sp1 + 1;
	const char *version = sp2 + 1;
	int minor;
	if (strcmp(version, "HTTP/1.1") == 0)
		minor = 1;
	else if (strcmp(version, "HTTP/1.0") == 0)
		minor = 0;
	else
		return 400;
	char *q = strchr(rq->target, '?');
	rq->path = q ? xstrndup(rq->target, (size_t)(q - rq->target)) : xstrdup(rq->target);
	rq->query = xstrdup(q ? q + 1 : "");

	while (*next) {
		line = next;
		eol = strstr(line, "\r\n");
		next = eol ? eol + 2 : line + strlen(line);
		if (eol)
			*eol = '\0';
		if (line[0] == ' ' || line[0] == '\t')
			return 400; /* obsolete line folding */
		char *colon = strchr(line, ':');
		if (!colon || colon == line)
			return 400;
		*colon = '\0';
		for (char *p = line; *p; p++) {
			if (!token_char((unsigned char)*p))
				return 400;
			*p = (char)tolower((unsigned char)*p);
		}
		if (rq->nh == FK_MAX_HEADERS)
			return 431;
		rq->h[rq->nh].name = line;
		rq->h[rq->nh].value = trim(colon + 1);
		rq->nh++;
	}

	const char *conn = request_header(rq, "connection");
	if (minor == 1)
		rq->keep_alive = !(conn && strcasestr(conn, "close"));
	else
		rq->keep_alive = conn && strcasestr(conn, "keep-alive");
	return 0;
}

int http_read_request(struct conn *c, struct request *rq)
{
	memset(rq, 0, sizeof *rq);
	size_t scanned = 0;
	char *end;
	for (;;) {
		size_t skip = 0; /* CRLFs between requests are allowed and ignored */
		while (skip < c->in_len && (c->in[skip] == '\r' || c->in[skip] == '\n'))
			skip++;
		if (skip) {
			consume(c, skip);
			scanned = 0;
		}
		end = c->in_len >= 4 ? memmem(c->in + scanned, c->in_len - scanned, "\r\n\r\n", 4) : NULL;
		if (end)
			break;
		if (c->in_len > FK_MAX_HEAD)
			return 431;
		scanned = c->in_len > 3 ? c->in_len - 3 : 0;
		if (fill(c, 4096) <= 0)
			return HTTP_GONE;
	}
	size_t hlen = (size_t)(end - c->in);
	if (hlen > FK_MAX_HEAD)
		return 431;
	rq->head = xstrndup(c->in, hlen);
	consume(c, hlen + 4);
	rq->t_ms = wall_ms();
	int status = parse_head(rq);
	if (status)
		return status;

	if (request_header(rq, "transfer-encoding"))
		return 411;
	size_t cl = 0;
	const char *lenh = request_header(rq, "content-length");
	if (lenh) {
		if (!*lenh)
			return 400;
		for (const char *p = lenh; *p; p++) {
			if (!isdigit((unsigned char)*p))
				return 400;
			if (cl > FK_MAX_BODY)
				return 413;
			cl = cl * 10 + (size_t)(*p - '0');
		}
		if (cl > FK_MAX_BODY)
			return 413;
	}
	const char *expect = request_header(rq, "expect");
	if (expect && strcasecmp(expect, "100-continue") == 0 && cl > c->in_len) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		if (send(c->fd, cont, sizeof cont - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof cont - 1))
			return HTTP_GONE;
	}
	while (c->in_len < cl)
		if (fill(c, cl - c->in_len) <= 0)
			return HTTP_GONE;
	rq->body = xstrndup(c->in, cl);
	rq->body_len = cl;
	consume(c, cl);
	rq->t_ms = wall_ms();
	return 0;
}

void request_release(struct request *rq)
{
	if (!rq)
		return;
	free(rq->head);
	free(rq->path);
	free(rq->query);
	free(rq->body);
	memset(rq, 0, sizeof *rq);
}

const char *request_header(const struct request *rq, const char *lname)
{
	for (int i = 0; i < rq->nh; i++)
		if (strcmp(rq->h[i].name, lname) == 0)
			return rq->h[i].value;
	return NULL;
}

int request_query(const struct request *rq, const char *name, char *out, size_t outlen)
{
	size_t nlen = strlen(name);
	const char *p = rq->query;
	while (p && *p) {
		const char *amp = strchr(p, '&');
		size_t plen = amp ? (size_t)(amp - p) : strlen(p);
		if (plen > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
			size_t vlen = plen - nlen - 1;
			if (vlen >= outlen)
				vlen = outlen - 1;
			memcpy(out, p + nlen + 1, vlen);
			out[vlen] = '\0';
			return 1;
		}
		p = amp ? amp + 1 : NULL;
	}
	return 0;
}

/* ---- writing ----------------------------------------------------------- */

void http_head(struct conn *c, const struct request *rq, int status, const char *ctype, long long content_length,
               const char *extra)
{
	char id1[37], id2[37];
	make_uuid(id1, &c->rng);
	make_uuid(id2, &c->rng);
	sb_printf(&c->out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n", status, reason(status), ctype);
	if (content_length >= 0)
		sb_printf(&c->out, "Content-Length: %lld\r\n", content_length);
	else
		sb_puts(&c->out, "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n");
	sb_printf(&c->out, "Connection: %s\r\napim-request-id: %s\r\nx-request-id: %s\r\n",
	          rq && rq->keep_alive ? "keep-alive" : "close", id1, id2);
	if (extra)
		sb_puts(&c->out, extra);
	sb_puts(&c->out, "\r\n");
}

int http_reply(struct conn *c, const struct request *rq, int status, const char *extra, const char *body, size_t len)
{
	http_head(c, rq, status, "application/json", (long long)len, extra);
	sb_add(&c->out, body, len);
	return http_flush(c);
}

void http_queue(struct conn *c, const void *p, size_t n)
{
	sb_add(&c->out, p, n);
}

void http_chunk(struct conn *c, const void *p, size_t n)
{
	if (n == 0)
		return; /* a zero-size chunk would end the body */
	sb_printf(&c->out, "%zx\r\n", n);
	sb_add(&c->out, p, n);
	sb_add(&c->out, "\r\n", 2);
}

int http_flush(struct conn *c)
{
	size_t off = 0;
	while (off < c->out.len) {
		ssize_t n = send(c->fd, c->out.p + off, c->out.len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			sb_reset(&c->out);
			return HTTP_GONE;
		}
		off += (size_t)n;
	}
	sb_reset(&c->out);
	return 0;
}

int http_wait(struct conn *c, int ms)
{
	int64_t end = ms < 0 ? -1 : mono_ms() + ms;
	for (;;) {
		int left = -1;
		if (end >= 0) {
			int64_t d = end - mono_ms();
			if (d <= 0)
				return 0;
			left = d > 60000 ? 60000 : (int)d;
		}
		/* POLLRDHUP only: pipelined request bytes must not end the wait */
		struct pollfd p = {c->fd, POLLRDHUP, 0};
		int r = poll(&p, 1, left);
		if (r < 0 && errno != EINTR)
			return HTTP_GONE;
		if (r > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
			return HTTP_GONE;
	}
}

void http_close(struct conn *c)
{
	if (c->fd < 0)
		return;
	/* Send our FIN, then let the peer's bytes drain until its FIN: closing
	 * with unread input would turn the close into a RST that can destroy
	 * the reply we just sent (a 413 sent before the body arrived, say). */
	shutdown(c->fd, SHUT_WR);
	int64_t end = mono_ms() + DRAIN_MS;
	char sink[4096];
	for (;;) {
		int64_t left = end - mono_ms();
		if (left <= 0)
			break;
		struct pollfd p = {c->fd, POLLIN, 0};
		if (poll(&p, 1, (int)left) <= 0)
			break;
		ssize_t n = recv(c->fd, sink, sizeof sink, 0);
		if (n <= 0)
			break;
	}
	close(c->fd);
	c->fd = -1;
}

void http_reset(struct conn *c)
{
	if (c->fd < 0)
		return;
	struct linger lg = {1, 0};
	setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	close(c->fd);
	c->fd = -1;
}
