/* rawhttp.c -- the wire-level test client declared in rawhttp.h.
 *
 * rawhttp_read accumulates raw bytes and, after every recv, advances a
 * small parser over the new ones (a multi-MiB stream stays linear): skip 1xx
 * replies, split the head, then frame the body by Transfer-Encoding:
 * chunked, by Content-Length, or else by EOF.  A reset is
 * told apart from an EOF by recv's ECONNRESET.
 */
#include "rawhttp.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

int rawhttp_dial(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	if (fd < 0)
		return -1;
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((unsigned short)port);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

int rawhttp_send_n(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int rawhttp_send(int fd, const char *text)
{
	return rawhttp_send_n(fd, text, strlen(text));
}

char *rawhttp_request(const char *method, const char *path, const char *headers, const char *body)
{
	char *s = NULL;
	if (asprintf(&s,
	             "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Type: application/json\r\n"
	             "Content-Length: %zu\r\n\r\n%s",
	             method, path, headers, strlen(body), body) < 0)
		return NULL;
	return s;
}

int rawhttp_header(const struct rawhttp_resp *r, const char *name, char *out, size_t n)
{
	size_t nl = strlen(name);
	for (const char *l = r->head ? strstr(r->head, "\r\n") : NULL; l; l = strstr(l + 2, "\r\n")) {
		const char *s = l + 2;
		if (strncasecmp(s, name, nl) == 0 && s[nl] == ':') {
			s += nl + 1;
			while (*s == ' ')
				s++;
			snprintf(out, n, "%.*s", (int)strcspn(s, "\r\n"), s);
			return 1;
		}
	}
	return 0;
}

/* Parsing state of one read: raw bytes, and how far the body got. */
struct reader {
	char *raw; /* everything received */
	size_t len, cap;
	size_t body_off; /* where the body starts in raw; 0 = head not seen */
	enum { BY_EOF, BY_LENGTH, BY_CHUNKS } framing;
	size_t length;   /* BY_LENGTH: Content-Length */
	size_t next;     /* BY_CHUNKS: offset of the next chunk's size line */
	size_t body_cap; /* bytes allocated for r->body */
};

static int body_add(struct reader *rd, struct rawhttp_resp *r, const char *p, size_t n)
{
	if (r->body_len + n + 1 > rd->body_cap) {
		size_t cap = rd->body_cap ? rd->body_cap : 4096;
		while (cap < r->body_len + n + 1)
			cap *= 2;
		char *b = realloc(r->body, cap);
		if (!b)
			return -1;
		r->body = b;
		rd->body_cap = cap;
	}
	memcpy(r->body + r->body_len, p, n);
	r->body_len += n;
	r->body[r->body_len] = '\0';
	return 0;
}

/* Parses the head once it is whole (skipping 1xx replies); 1 when done. */
static int parse_head(struct reader *rd, struct rawhttp_resp *r)
{
	size_t off = 0;
	while (rd->len - off > 12 && strncmp(rd->raw + off, "HTTP/1.1 1", 10) == 0) {
		const char *e = strstr(rd->raw + off, "\r\n\r\n");
		if (!e)
			return 0;
		r->got_continue = 1;
		off = (size_t)(e - rd->raw) + 4;
	}
	const char *e = memmem(rd->raw + off, rd->len - off, "\r\n\r\n", 4);
	if (!e)
		return 0;
	r->head = strndup(rd->raw + off, (size_t)(e - rd->raw) - off);
	if (!r->head || body_add(rd, r, "", 0))
		return 0;
	sscanf(r->head, "HTTP/1.%*d %d", &r->status);
	rd->body_off = rd->next = (size_t)(e - rd->raw) + 4;
	char v[64];
	if (rawhttp_header(r, "transfer-encoding", v, sizeof v) && strcasestr(v, "chunked")) {
		rd->framing = BY_CHUNKS;
	} else if (rawhttp_header(r, "content-length", v, sizeof v)) {
		rd->framing = BY_LENGTH;
		rd->length = strtoul(v, NULL, 10);
	}
	return 1;
}

/* Moves newly received bytes into r; returns 1 when the body is complete
 * by its framing. */
static int advance(struct reader *rd, struct rawhttp_resp *r)
{
	if (!rd->body_off && !parse_head(rd, r))
		return 0;
	if (rd->framing == BY_CHUNKS) {
		for (;;) {
			const char *b = rd->raw + rd->next;
			size_t avail = rd->len - rd->next;
			const char *crlf = memmem(b, avail, "\r\n", 2);
			if (!crlf)
				return 0;
			size_t size = strtoul(b, NULL, 16), start = (size_t)(crlf - b) + 2;
			if (start + size + 2 > avail)
				return 0;
			if (size == 0)
				return r->complete = 1;
			if (body_add(rd, r, b + start, size))
				return 0;
			rd->next += start + size + 2;
		}
	}
	size_t have = rd->len - rd->body_off - r->body_len;
	if (rd->framing == BY_LENGTH && r->body_len + have > rd->length)
		have = rd->length - r->body_len;
	if (body_add(rd, r, rd->raw + rd->body_off + r->body_len, have))
		return 0;
	return rd->framing == BY_LENGTH && (r->complete = r->body_len >= rd->length);
}

void rawhttp_read(int fd, int timeout_ms, struct rawhttp_resp *r)
{
	struct reader rd;
	char buf[65536];
	int64_t start = tu_now_ms();
	memset(&rd, 0, sizeof rd);
	memset(r, 0, sizeof *r);
	r->status = -1;
	r->first_byte_ms = -1;
	for (;;) {
		int64_t left = start + timeout_ms - tu_now_ms();
		if (left <= 0) {
			r->timed_out = 1;
			break;
		}
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r->reset = n < 0 && errno == ECONNRESET;
			r->eof = n == 0;
			break;
		}
		if (r->first_byte_ms < 0)
			r->first_byte_ms = tu_now_ms() - start;
		if (rd.len + (size_t)n + 1 > rd.cap) {
			size_t cap = rd.cap ? rd.cap * 2 : 65536;
			while (cap < rd.len + (size_t)n + 1)
				cap *= 2;
			char *more = realloc(rd.raw, cap);
			if (!more)
				break;
			rd.raw = more;
			rd.cap = cap;
		}
		memcpy(rd.raw + rd.len, buf, (size_t)n);
		rd.len += (size_t)n;
		rd.raw[rd.len] = '\0';
		if (advance(&rd, r))
			break;
	}
	r->total_ms = tu_now_ms() - start;
	free(rd.raw);
}

void rawhttp_resp_release(struct rawhttp_resp *r)
{
	if (!r)
		return;
	free(r->head);
	free(r->body);
	memset(r, 0, sizeof *r);
	r->status = -1;
}

int rawhttp_sse(const struct rawhttp_resp *r, char ***events)
{
	const char *p = r->body ? r->body : "";
	int n = 0, cap = 16;
	char **ev = malloc((size_t)cap * sizeof *ev);
	*events = NULL;
	if (!ev)
		return -1;
	for (const char *end; (end = strstr(p, "\n\n")) != NULL; p = end + 2) {
		if (strncmp(p, "data: ", 6) != 0) {
			rawhttp_sse_free(ev, n);
			return -1;
		}
		if (n == cap) {
			char **more = realloc(ev, (size_t)cap * 2 * sizeof *ev);
			if (!more) {
				rawhttp_sse_free(ev, n);
				return -1;
			}
			ev = more;
			cap *= 2;
		}
		ev[n++] = strndup(p + 6, (size_t)(end - p) - 6);
	}
	*events = ev;
	return n;
}

void rawhttp_sse_free(char **events, int n)
{
	if (!events)
		return;
	for (int i = 0; i < n; i++)
		free(events[i]);
	free(events);
}
