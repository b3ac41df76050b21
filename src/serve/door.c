/* door.c -- the front door of `convbi serve`: it accepts every connection
 * itself and hands libmicrohttpd only those that have sent a complete,
 * sane request head, so that a slow or hostile client costs an epoll
 * entry instead of a connection thread, and every refusal has the JSON
 * error shape.
 *
 * One thread waits (epoll) on the listening socket and on the connections
 * whose request head has not arrived yet ("waiting" slots).  It looks at a
 * waiting connection's bytes with MSG_PEEK -- nothing is consumed, so
 * libmicrohttpd later reads the request from the start -- and:
 *   - refuses beyond --max-connections (503) or --max-connections-per-ip
 *     from one address (503), before reading anything;
 *   - answers 408 when the head is not complete within
 *     --request-timeout-s of connecting (slowloris), or when it arrives
 *     in so many small pieces that looking at it costs more than
 *     DOOR_PEEK_BUDGET_BYTES;
 *   - answers 414 when the request line, 431 when the head, exceeds
 *     SERVE_HEADERS_MAX_BYTES, and 400/413 for a Content-Length that is
 *     not a number or is over SERVE_BODY_MAX_BYTES (libmicrohttpd would
 *     answer those in HTML, and 0.9.75 sends its status line twice), 400
 *     for a NUL byte in the head, no Host header, a blank before a
 *     header's colon, a Content-Length or Transfer-Encoding ending in a
 *     blank, or a second Host, Origin or Authorization, 501 for
 *     a Transfer-Encoding other than chunked;
 *   - answers 400 for a request line that is not `METHOD TARGET
 *     HTTP/1.x` (HTTP/0.9, garbage) and 505 for another version (the
 *     HTTP/2 preface) as soon as the line is complete, and 400 for a
 *     malformed chunked body: a chunked body is waited for with its head
 *     while both fit in the peek buffer (not behind Expect: 100-continue,
 *     whose client waits for the server) -- libmicrohttpd would answer
 *     those in HTML, or not at all (past that, server.c answers its
 *     refusal of the body in the JSON shape in its place: door_write_error);
 *   - hands the rest to libmicrohttpd (MHD_add_connection).
 * Handed connections stay in their slot ("handed"), holding a dup() of the
 * socket: a request whose body, or a keep-alive connection whose next
 * request, is not complete within --request-timeout-s is shut down
 * through it (the dup keeps the descriptor ours, so a number libmicrohttpd
 * closed and the process reused is never touched).  libmicrohttpd's
 * connection notifications free the slot.  While the server answers a
 * request (door_request_begin .. door_request_end) the only deadline is
 * the client's: an answer whose bytes wait in the socket's send queue
 * while the client acknowledges none of them for --request-timeout-s (it
 * stopped reading) is shut down the same way -- a streamed answer would
 * otherwise hold its connection thread for as long as the client keeps
 * the socket open (attack5 F1).  The door looks every DOOR_WRITE_CHECK_MS.
 *
 * The later requests of a keep-alive connection get the same checks: when
 * a request has been answered, libmicrohttpd's connection thread calls
 * door_request_end before it reads again, and there (the guard) the next
 * head is waited for and looked at with MSG_PEEK as above -- 408 when it
 * is not complete by the deadline (a connection that sent nothing is just
 * closed), 414/431/400/413 with the JSON shape -- before libmicrohttpd
 * reads a byte of it.  The thread waits so only DOOR_KEEP_THREAD_MS: a
 * client that sends its next request at once (a benchmark, a page loading
 * its assets) keeps its thread and costs nothing more; one that does not
 * is given back to the door (park): the door's own dup of the socket goes
 * back into the epoll as a "waiting" slot (`kept`), and libmicrohttpd's
 * descriptor is swapped (dup2) for a socket whose peer is gone, so its
 * thread reads an end, closes its connection and exits without the client
 * noticing.  An idle or trickling keep-alive connection then costs an epoll
 * entry, as a first head does; its next head is handed over as a new
 * connection (a new thread).  A kept connection that sends nothing by its
 * deadline is closed without a 408.  The guard needs libmicrohttpd to hold no bytes of
 * the next request already: the slot counts the bytes of the requests it
 * let in (`expect`: heads plus Content-Length) and compares them with what
 * the socket delivered minus what is still unread (TCP_INFO, SIOCINQ).
 * When it cannot know -- a pipelined request already read, a chunked body
 * -- the connection is marked `untracked` and its next answer carries
 * `Connection: close`: the client comes back through the door.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sockios.h>
#include <linux/tcp.h> /* tcpi_bytes_received (glibc's netinet/tcp.h lacks it) */
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "serve/routes.h"

#define DOOR_PEEK_BUDGET_BYTES (16 * SERVE_HEADERS_MAX_BYTES) /* looked at per head, over all peeks */
#define DOOR_TICK_MS 100                                      /* deadline resolution */
#define DOOR_EVENTS 64
#define DOOR_FDS_SPARE 256           /* descriptors kept for databases, the model, logs */
#define DOOR_DRAIN_BYTES (64u << 10) /* unread input read away before a refusal's close */
#define DOOR_KEEP_THREAD_MS 250      /* a kept connection's thread waits this long for the next head */
#define DOOR_WRITE_CHECK_MS 500      /* how often an answer's progress is looked at */
#define EV_LISTEN UINT32_MAX
#define EV_WAKE (UINT32_MAX - 1)

enum { SLOT_FREE, SLOT_WAITING, SLOT_HANDED };

struct slot {
	int state;
	int fd;                      /* WAITING: the socket; HANDED: our dup() of it */
	int mhd_fd;                  /* HANDED: the descriptor libmicrohttpd holds */
	int started;                 /* HANDED: libmicrohttpd announced it */
	int busy;                    /* HANDED: a request is being answered */
	int reaped;                  /* HANDED: shut down for its deadline */
	int guarding;                /* HANDED: its thread waits for the next head (door_request_end) */
	int untracked;               /* HANDED: libmicrohttpd may hold bytes of a request not looked at */
	int kept;                    /* WAITING: given back by a keep-alive connection (park): silence is no 408 */
	struct MHD_Connection *conn; /* HANDED: libmicrohttpd's connection, once announced */
	uint64_t expect;             /* HANDED: bytes of the requests let in (heads, bodies) */
	uint64_t acked;              /* HANDED, busy: the answer's bytes the client had acknowledged */
	int64_t stalled_ms;          /* HANDED, busy: since when it acknowledged none of them, 0 = it takes them */
	int64_t write_check_ms;      /* HANDED, busy: the next look at that */
	int64_t since_ms;            /* connected (WAITING) */
	int64_t deadline_ms;         /* the request must be complete by then */
	size_t peeked;               /* WAITING: bytes looked at so far */
	unsigned char ip[16];        /* the peer's address, for the per-address cap */
	struct sockaddr_storage addr;
	socklen_t addrlen;
};

struct door {
	struct server *s;
	struct MHD_Daemon *d;
	int lfd, ep, wake;
	int dead;                    /* a socket whose peer is gone: park() puts it under libmicrohttpd's descriptor */
	int64_t accept_paused_until; /* out of descriptors: accept later */
	pthread_t thread;
	int started;
	atomic_int stop;
	pthread_mutex_t lock; /* slots, used */
	struct slot *slots;   /* owned: max_connections of them */
	int nslots, used;
	char head[SERVE_HEADERS_MAX_BYTES + 1]; /* the door thread's peek buffer */
};

/* ---- slots --------------------------------------------------------------------- */

static void peer_ip(const struct sockaddr_storage *a, unsigned char ip[16])
{
	memset(ip, 0, 16);
	if (a->ss_family == AF_INET)
		memcpy(ip, &((const struct sockaddr_in *)a)->sin_addr, 4);
	else if (a->ss_family == AF_INET6)
		memcpy(ip, &((const struct sockaddr_in6 *)a)->sin6_addr, 16);
}

/* Frees slot i (lock held); closes its descriptor. */
static void slot_free(struct door *dr, struct slot *sl)
{
	if (sl->fd >= 0)
		close(sl->fd);
	memset(sl, 0, sizeof *sl);
	sl->state = SLOT_FREE;
	sl->fd = sl->mhd_fd = -1;
	dr->used--;
}

/* ---- refusals --------------------------------------------------------------------- */

void door_write_error(int fd, int status, const char *code, const char *message)
{
	char *json = serve_json_error(code, message);
	char head[400], date[64] = "";
	const char *reason = MHD_get_reason_phrase_for((unsigned)status);
	time_t now = time(NULL);
	struct tm tm;
	if (gmtime_r(&now, &tm))
		strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	int n = snprintf(head, sizeof head,
	                 "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
	                 "Connection: close\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
	                 "Referrer-Policy: no-referrer\r\n%s\r\n",
	                 status, reason && *reason ? reason : "Error", date, json ? strlen(json) : 0,
	                 status == 503 ? "Retry-After: 1\r\n" : "");
	char sink[4096];
	for (size_t got = 0; got < DOOR_DRAIN_BYTES;) {
		ssize_t k = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	if (send(fd, head, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT | (json ? MSG_MORE : 0)) == n && json)
		send(fd, json, strlen(json), MSG_NOSIGNAL | MSG_DONTWAIT);
	free(json);
}

/* door_write_error, counted and logged as a refusal of the connection. */
static void answer(struct door *dr, int fd, int64_t since_ms, int status, const char *code, const char *message)
{
	door_write_error(fd, status, code, message);
	double seconds = (double)(serve_now_ms() - since_ms) / 1000;
	metrics_request(dr->s->metrics, "(connection)", status, seconds);
	serve_log("(connection) %d %.1f ms %s", status, seconds * 1000, code);
}

/* answer, then closes a connection libmicrohttpd never saw. */
static void refuse(struct door *dr, int fd, int64_t since_ms, int status, const char *code, const char *message)
{
	answer(dr, fd, since_ms, status, code, message);
	shutdown(fd, SHUT_WR);
	close(fd);
}

static void timeout_message(struct door *dr, char *msg, size_t cap)
{
	snprintf(msg, cap, "the request did not arrive within %d s; send the request line and headers at once",
	         dr->s->cfg.request_timeout_s);
}

static void refuse_timeout(struct door *dr, int fd, int64_t since_ms)
{
	char msg[160];
	timeout_message(dr, msg, sizeof msg);
	refuse(dr, fd, since_ms, 408, "request_timeout", msg);
}

/* ---- the request head --------------------------------------------------------------- */

/* The length of the head in b[0..n) (through its empty line), or 0. */
static size_t head_length(const char *b, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++) {
		if (b[i] != '\n')
			continue;
		if (b[i + 1] == '\n')
			return i + 2;
		if (b[i + 1] == '\r' && i + 2 < n && b[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* 1 when the header line [line, eol) is named `name` (lower case, with
 * its colon). */
static int header_is(const char *line, const char *eol, const char *name)
{
	size_t k = strlen(name);
	return (size_t)(eol - line) >= k && !strncasecmp(line, name, k);
}

/* The value of header line [line, eol) after its k-byte name, without
 * surrounding blanks: [*v, *ve). */
static void header_value(const char *line, const char *eol, size_t k, const char **v, const char **ve)
{
	*v = line + k;
	*ve = eol;
	while (*v < *ve && (**v == ' ' || **v == '\t'))
		(*v)++;
	while (*ve > *v && ((*ve)[-1] == '\r' || (*ve)[-1] == ' ' || (*ve)[-1] == '\t'))
		(*ve)--;
}

/* 1 when a blank ends header line [line, eol): libmicrohttpd takes no
 * Content-Length or Transfer-Encoding with one (an HTML 400, a body it
 * waits for), so the door refuses those itself. */
static int trailing_blank(const char *eol)
{
	if (eol[-1] == '\r')
		eol--;
	return eol[-1] == ' ' || eol[-1] == '\t';
}

static int refuse_head(char *msg, size_t cap, const char **code, const char *text)
{
	snprintf(msg, cap, "%s", text);
	*code = "bad_request";
	return 400;
}

/* Checks the headers of a complete head: no NUL byte (400 naming the
 * header); no blank between a header's name and its colon (400, RFC 9112
 * 5.1: `Host : x` is no Host header to libmicrohttpd, another to a proxy);
 * one Host, Origin and Authorization (400: none is no request for this
 * server, HTTP/1.0 included -- the Host allow-list; a proxy that reads the
 * other one of two would judge another request); a Transfer-Encoding
 * other than chunked is 501; Content-Length a number (judged by its value,
 * leading zeros aside), the same in every copy, at most
 * SERVE_BODY_MAX_BYTES (413).  Returns 0 with *body the body's length (-1
 * when a Transfer-Encoding makes it unknown here), or the status to refuse
 * with (message in msg). */
static int check_head(const char *b, size_t n, char *msg, size_t cap, const char **code, long long *body)
{
	const char *end = b + n, *line = memchr(b, '\n', n);
	long long seen = -1;
	int coded = 0;
	static const char *const once[] = {"host:", "origin:", "authorization:"};
	int count[3] = {0, 0, 0};
	if (line && memchr(b, '\0', (size_t)(line - b)))
		return refuse_head(msg, cap, code, "the request line holds a NUL byte; remove it");
	while (line && ++line < end) {
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		if (!eol)
			break;
		const char *v, *ve;
		const char *colon = memchr(line, ':', (size_t)(eol - line));
		int nul = memchr(line, '\0', (size_t)(eol - line)) != NULL;
		int blank = !nul && colon && colon > line && (colon[-1] == ' ' || colon[-1] == '\t') && line[0] != ' ' &&
		            line[0] != '\t'; /* not a folded line's */
		if (nul || blank) {
			size_t k = colon ? (size_t)(colon - line) : 0;
			while (blank && k > 0 && (line[k - 1] == ' ' || line[k - 1] == '\t'))
				k--;
			char name[48];
			for (size_t i = 0; i < k && i < sizeof name - 1; i++)
				name[i] = line[i] > ' ' && line[i] < 127 ? line[i] : '?';
			name[k < sizeof name - 1 ? k : sizeof name - 1] = '\0';
			snprintf(msg, cap,
			         nul ? "the `%s` header holds a NUL byte; remove it"
			             : "the `%s` header has a blank between its name and its colon; remove it (RFC 9112 5.1)",
			         k ? name : "?");
			*code = "bad_request";
			return 400;
		}
		for (int i = 0; i < 3; i++)
			if (header_is(line, eol, once[i]) && ++count[i] > 1) {
				snprintf(msg, cap, "the request has more than one %s header; send one",
				         i == 0   ? "Host"
				         : i == 1 ? "Origin"
				                  : "Authorization");
				*code = "bad_request";
				return 400;
			}
		static const char te[] = "transfer-encoding:";
		if ((header_is(line, eol, te) || header_is(line, eol, "content-length:")) && trailing_blank(eol)) {
			snprintf(msg, cap, "the `%s` header ends in a blank; send its value without one",
			         header_is(line, eol, te) ? "Transfer-Encoding" : "Content-Length");
			*code = "bad_request";
			return 400;
		}
		if (header_is(line, eol, te)) {
			coded = 1;
			header_value(line, eol, sizeof te - 1, &v, &ve);
			if (ve - v != 7 || strncasecmp(v, "chunked", 7)) {
				snprintf(msg, cap,
				         "only Transfer-Encoding: chunked is supported; send chunked or a Content-Length");
				*code = "not_implemented";
				return 501;
			}
		}
		static const char name[] = "content-length:";
		if (header_is(line, eol, name)) {
			header_value(line, eol, sizeof name - 1, &v, &ve);
			long long len = 0;
			int digits = 0;
			for (const char *p = v; p < ve; p++) {
				if (*p < '0' || *p > '9') {
					digits = -1;
					break;
				}
				if (digits == 0 && *p == '0' && p + 1 < ve) /* a leading zero: judged by the value */
					continue;
				if (++digits <= 18)
					len = len * 10 + (*p - '0');
				else
					len = LLONG_MAX; /* over any limit */
			}
			if (digits <= 0 || (seen >= 0 && seen != len))
				return refuse_head(msg, cap, code,
				                   digits <= 0
				                           ? "the Content-Length header is not a number of bytes; send one "
				                             "Content-Length with the body's size in bytes"
				                           : "two Content-Length headers differ; send one Content-Length with the "
				                             "body's size in bytes");
			if (len > (long long)SERVE_BODY_MAX_BYTES) {
				snprintf(msg, cap, "the request body is larger than %u bytes; send less", SERVE_BODY_MAX_BYTES);
				*code = "too_large";
				return 413;
			}
			seen = len;
		}
		line = eol;
	}
	if (!count[0])
		return refuse_head(msg, cap, code, SERVE_NO_HOST_MESSAGE);
	*body = coded ? -1 : seen > 0 ? seen : 0;
	return 0;
}

/* Checks the request line at the start of b[0..n) once it is complete:
 * `METHOD SP TARGET SP HTTP/1.x` (empty lines before it are skipped, as
 * libmicrohttpd does).  Returns 0 (sane, or not complete yet), 400 for a
 * line of another shape (an HTTP/0.9 request, garbage), 505 for a version
 * other than HTTP/1.0 and 1.1 (the HTTP/2 preface): libmicrohttpd would
 * answer those in HTML, or not at all. */
static int check_request_line(const char *b, size_t n, char *msg, size_t cap, const char **code)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~";
	size_t i = 0;
	while (i < n && (b[i] == '\r' || b[i] == '\n'))
		i++;
	const char *p = b + i, *eol = memchr(p, '\n', n - i);
	if (!eol)
		return 0;
	if (eol > p && eol[-1] == '\r')
		eol--;
	const char *m = p;
	while (p < eol && (isalnum((unsigned char)*p) || (*p && strchr(tchar, *p))))
		p++;
	int sane = p > m && p < eol && *p++ == ' ';
	const char *t = p;
	while (sane && p < eol && (unsigned char)*p > ' ' && *p != 0x7f)
		p++;
	sane = sane && p > t && p < eol && *p++ == ' ';
	if (sane && eol - p == 8 && !memcmp(p, "HTTP/", 5) && isdigit((unsigned char)p[5]) && p[6] == '.' &&
	    isdigit((unsigned char)p[7])) {
		if (p[5] == '1' && (p[7] == '0' || p[7] == '1'))
			return 0;
		snprintf(msg, cap, "%.8s is not supported; send HTTP/1.1", p);
		*code = "http_version_not_supported";
		return 505;
	}
	return refuse_head(msg, cap, code, "the request line is not `METHOD TARGET HTTP/1.1`; send an HTTP/1.1 request");
}

/* Walks the chunked body at the start of b[0..n) as libmicrohttpd reads
 * it (a chunk size of 1 to 15 hex digits, an optional `;extension`, the
 * line end; the data and its line end; after the last chunk, trailer lines
 * up to an empty one).  Returns its length when it is all here, 0 when
 * more is to come, -1 when it is malformed. */
static long long chunked_length(const char *b, size_t n)
{
	size_t i = 0;
	for (;;) {
		unsigned long long size = 0;
		size_t digits = 0;
		for (; i < n && isxdigit((unsigned char)b[i]); i++, digits++)
			size = size * 16 + (unsigned)(isdigit((unsigned char)b[i]) ? b[i] - '0' : (b[i] | 0x20) - 'a' + 10);
		if (digits >= 16 || (i < n && !digits))
			return -1;
		const char *eol = memchr(b + i, '\n', n - i);
		if (!eol)
			return 0;
		size_t end = (size_t)(eol - b) - (eol > b + i && eol[-1] == '\r');
		if (end > i && b[i] != ';')
			return -1;
		i = (size_t)(eol - b) + 1;
		if (!size)
			break;
		if (n - i < size + 1 || (b[i + size] == '\r' && n - i < size + 2))
			return 0;
		i += (size_t)size;
		if (b[i] == '\r')
			i++;
		if (b[i++] != '\n')
			return -1;
	}
	for (;;) { /* trailers */
		const char *eol = memchr(b + i, '\n', n - i);
		if (!eol)
			return 0;
		size_t start = i;
		i = (size_t)(eol - b) + 1;
		if (i - start <= 2 && (i - start == 1 || b[start] == '\r'))
			return (long long)i;
	}
}

/* 1 when the head b[0..hl) has `Expect: 100-continue`: its client waits
 * for an interim answer before it sends the body. */
static int expects_continue(const char *b, size_t hl)
{
	static const char name[] = "expect:";
	for (const char *line = b, *end = b + hl, *eol; (eol = memchr(line, '\n', (size_t)(end - line))); line = eol + 1) {
		const char *v, *ve;
		if (!header_is(line, eol, name))
			continue;
		header_value(line, eol, sizeof name - 1, &v, &ve);
		if (ve - v == 12 && !strncasecmp(v, "100-continue", 12))
			return 1;
	}
	return 0;
}

/* Looks at a peeked head b[0..n) (*hl: its length, 0 when incomplete;
 * cap: how many bytes the peek could see): returns 0, or the status to
 * refuse with (message in msg, code).  A chunked body is waited for as
 * part of the head (*hl set to 0 until it is all here) while it fits in
 * the peek and no `Expect: 100-continue` holds it back, so a malformed one
 * gets the JSON 400 rather than libmicrohttpd's HTML. */
static int judge_head(const char *b, size_t n, size_t cap, size_t *hl, char *msg, size_t msg_cap, const char **code,
                      long long *body)
{
	int status = check_request_line(b, n, msg, msg_cap, code);
	if (status)
		return status;
	if (!*hl && n > SERVE_HEADERS_MAX_BYTES) {
		int line_too_long = !memchr(b, '\n', n);
		snprintf(msg, cap, "the %s exceeds %u bytes; %s", line_too_long ? "request target" : "request head",
		         SERVE_HEADERS_MAX_BYTES, line_too_long ? "send a shorter URL" : "send fewer or shorter headers");
		*code = line_too_long ? "uri_too_long" : "headers_too_large";
		return line_too_long ? 414 : 431;
	}
	if (!*hl || (status = check_head(b, *hl, msg, msg_cap, code, body)) || *body >= 0)
		return status;
	long long chunks = chunked_length(b + *hl, n - *hl);
	if (chunks < 0)
		return refuse_head(msg, msg_cap, code, SERVE_BAD_CHUNKS_MESSAGE);
	if (!chunks && n < cap && !expects_continue(b, *hl))
		*hl = 0; /* the rest of the body is on its way */
	return 0;
}

/* Hands a waiting connection, whose first request is body bytes after
 * a head of hl bytes, to libmicrohttpd (lock held). */
static void hand_over(struct door *dr, struct slot *sl, size_t hl, long long body)
{
	epoll_ctl(dr->ep, EPOLL_CTL_DEL, sl->fd, NULL);
	int fd = sl->fd, mine = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (mine < 0) {
		refuse(dr, fd, sl->since_ms, 503, "too_many_connections", "the server is out of file descriptors; retry later");
		sl->fd = -1;
		slot_free(dr, sl);
		return;
	}
	sl->state = SLOT_HANDED;
	sl->kept = 0;
	sl->fd = mine;
	sl->mhd_fd = fd;
	sl->deadline_ms = sl->since_ms + (int64_t)dr->s->cfg.request_timeout_s * 1000; /* the body too */
	sl->expect += hl + (uint64_t)(body > 0 ? body : 0); /* a kept one's count goes on: TCP_INFO's does */
	sl->untracked = body < 0;
	struct sockaddr_storage addr = sl->addr;
	socklen_t addrlen = sl->addrlen;
	/* libmicrohttpd announces the connection (door_notify) from this call
	 * or from its thread; either takes the lock, so let it go */
	pthread_mutex_unlock(&dr->lock);
	enum MHD_Result ok = MHD_add_connection(dr->d, fd, (const struct sockaddr *)&addr, addrlen);
	pthread_mutex_lock(&dr->lock);
	if (ok != MHD_YES && sl->state == SLOT_HANDED && sl->fd == mine && !sl->started)
		slot_free(dr, sl); /* it closed fd; ours goes too */
}

/* Looks at what a waiting connection has sent (lock held). */
static void look(struct door *dr, struct slot *sl)
{
	ssize_t n = recv(sl->fd, dr->head, sizeof dr->head, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
		epoll_ctl(dr->ep, EPOLL_CTL_DEL, sl->fd, NULL);
		slot_free(dr, sl); /* the client left */
		return;
	}
	if (n < 0)
		return;
	sl->peeked += (size_t)n;
	size_t hl = head_length(dr->head, (size_t)n);
	char msg[200];
	const char *code = NULL;
	long long body = 0;
	int status = judge_head(dr->head, (size_t)n, sizeof dr->head, &hl, msg, sizeof msg, &code, &body);
	if (!status && !hl && sl->peeked > DOOR_PEEK_BUDGET_BYTES) {
		epoll_ctl(dr->ep, EPOLL_CTL_DEL, sl->fd, NULL);
		refuse_timeout(dr, sl->fd, sl->since_ms);
		sl->fd = -1;
		slot_free(dr, sl);
		return;
	}
	if (status) {
		epoll_ctl(dr->ep, EPOLL_CTL_DEL, sl->fd, NULL);
		refuse(dr, sl->fd, sl->since_ms, status, code, msg);
		sl->fd = -1;
		slot_free(dr, sl);
	} else if (hl) {
		hand_over(dr, sl, hl, body);
	}
}

/* ---- accepting ---------------------------------------------------------------------- */

static void accept_all(struct door *dr)
{
	for (;;) {
		struct sockaddr_storage addr;
		socklen_t addrlen = sizeof addr;
		int fd = accept4(dr->lfd, (struct sockaddr *)&addr, &addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* nothing to answer with: let the backlog wait a moment */
				dr->accept_paused_until = serve_now_ms() + 100;
				struct epoll_event ev = {0, {.u32 = EV_LISTEN}};
				epoll_ctl(dr->ep, EPOLL_CTL_MOD, dr->lfd, &ev);
			}
			return;
		}
		int64_t now = serve_now_ms();
		unsigned char ip[16];
		peer_ip(&addr, ip);
		pthread_mutex_lock(&dr->lock);
		int from_ip = 0;
		struct slot *sl = NULL;
		for (int i = 0; i < dr->nslots; i++) {
			if (dr->slots[i].state == SLOT_FREE) {
				if (!sl)
					sl = &dr->slots[i];
			} else if (!memcmp(dr->slots[i].ip, ip, 16)) {
				from_ip++;
			}
		}
		char msg[200];
		if (!sl || from_ip >= dr->s->cfg.max_connections_per_ip) {
			pthread_mutex_unlock(&dr->lock);
			if (!sl)
				snprintf(msg, sizeof msg, "%d connections are open, the most this server keeps; retry later",
				         dr->nslots);
			else
				snprintf(
				        msg, sizeof msg,
				        "%d connections from your address are open, the most it may have; close some or retry later",
				        from_ip);
			refuse(dr, fd, now, 503, "too_many_connections", msg);
			continue;
		}
		*sl = (struct slot){
		        .state = SLOT_WAITING, .fd = fd, .mhd_fd = -1, .since_ms = now, .addr = addr, .addrlen = addrlen};
		sl->deadline_ms = now + (int64_t)dr->s->cfg.request_timeout_s * 1000;
		memcpy(sl->ip, ip, 16);
		dr->used++;
		struct epoll_event ev = {EPOLLIN | EPOLLRDHUP | EPOLLET, {.u32 = (uint32_t)(sl - dr->slots)}};
		if (epoll_ctl(dr->ep, EPOLL_CTL_ADD, fd, &ev))
			slot_free(dr, sl);
		else
			look(dr, sl); /* the head may be here already */
		pthread_mutex_unlock(&dr->lock);
	}
}

/* 1 when sl is being answered and its client has acknowledged none of
 * the bytes waiting in the send queue for limit_ms (SIOCOUTQ: bytes sent
 * or not yet, unacknowledged; tcpi_bytes_acked moves as the client takes
 * them). */
static int write_stalled(struct slot *sl, int64_t now, int64_t limit_ms)
{
	if (now < sl->write_check_ms)
		return 0;
	sl->write_check_ms = now + DOOR_WRITE_CHECK_MS;
	int queued = 0;
	struct tcp_info ti;
	socklen_t len = sizeof ti;
	if (ioctl(sl->fd, SIOCOUTQ, &queued) || queued <= 0 || getsockopt(sl->fd, IPPROTO_TCP, TCP_INFO, &ti, &len)) {
		sl->stalled_ms = 0;
		return 0;
	}
	if (!sl->stalled_ms || ti.tcpi_bytes_acked != sl->acked) {
		sl->acked = ti.tcpi_bytes_acked;
		sl->stalled_ms = now;
		return 0;
	}
	return now - sl->stalled_ms >= limit_ms;
}

/* Deadlines: a waiting head gets 408; a handed connection past its
 * deadline and not being answered, or being answered to a client that
 * stopped reading, is shut down. */
static void reap(struct door *dr)
{
	int64_t now = serve_now_ms();
	pthread_mutex_lock(&dr->lock);
	for (int i = 0; i < dr->nslots; i++) {
		struct slot *sl = &dr->slots[i];
		if (sl->state == SLOT_WAITING && now >= sl->deadline_ms) {
			epoll_ctl(dr->ep, EPOLL_CTL_DEL, sl->fd, NULL);
			if (sl->kept && !sl->peeked) { /* an idle keep-alive connection: just closed */
				shutdown(sl->fd, SHUT_RDWR);
			} else {
				refuse_timeout(dr, sl->fd, sl->since_ms);
				sl->fd = -1;
			}
			slot_free(dr, sl);
		} else if (sl->state == SLOT_HANDED && sl->started && !sl->busy && !sl->guarding && !sl->reaped &&
		           now >= sl->deadline_ms) {
			sl->reaped = 1;
			shutdown(sl->fd, SHUT_RDWR);
		} else if (sl->state == SLOT_HANDED && sl->busy && !sl->reaped &&
		           write_stalled(sl, now, (int64_t)dr->s->cfg.request_timeout_s * 1000)) {
			sl->reaped = 1;
			shutdown(sl->fd, SHUT_RDWR);
			serve_log("a client took none of its answer for %d s (--request-timeout-s): connection closed",
			          dr->s->cfg.request_timeout_s);
		}
	}
	pthread_mutex_unlock(&dr->lock);
	if (dr->accept_paused_until && now >= dr->accept_paused_until) {
		dr->accept_paused_until = 0;
		struct epoll_event ev = {EPOLLIN, {.u32 = EV_LISTEN}};
		epoll_ctl(dr->ep, EPOLL_CTL_MOD, dr->lfd, &ev);
	}
}

static void *door_run(void *payload)
{
	struct door *dr = payload;
	struct epoll_event evs[DOOR_EVENTS];
	int64_t next_reap = serve_now_ms() + DOOR_TICK_MS;
	while (!atomic_load(&dr->stop)) {
		int n = epoll_wait(dr->ep, evs, DOOR_EVENTS, DOOR_TICK_MS);
		for (int i = 0; i < n; i++) {
			uint32_t k = evs[i].data.u32;
			if (k == EV_LISTEN) {
				accept_all(dr);
			} else if (k == EV_WAKE) {
				uint64_t v;
				if (read(dr->wake, &v, sizeof v) < 0)
					continue;
			} else if (k < (uint32_t)dr->nslots) {
				pthread_mutex_lock(&dr->lock);
				if (dr->slots[k].state == SLOT_WAITING)
					look(dr, &dr->slots[k]);
				pthread_mutex_unlock(&dr->lock);
			}
		}
		if (serve_now_ms() >= next_reap) {
			reap(dr);
			serve_log_flush(); /* the access lines of the last tick */
			next_reap = serve_now_ms() + DOOR_TICK_MS;
		}
	}
	return NULL;
}

/* ---- the descriptor budget ------------------------------------------------------------ */

/* Raises the soft descriptor limit toward what max connections need (two
 * each: libmicrohttpd's and our dup); lowers max when the hard limit is
 * too low, saying so. */
static int fit_descriptors(int max)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return max;
	rlim_t want = (rlim_t)max * 2 + DOOR_FDS_SPARE;
	if (rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < want) {
		int fit = rl.rlim_cur > 2 * DOOR_FDS_SPARE ? (int)((rl.rlim_cur - DOOR_FDS_SPARE) / 2) : DOOR_FDS_SPARE / 2;
		serve_log(
		        "warning: %d connections need %llu file descriptors and the limit is %llu; serving at most %d (raise ulimit -n)",
		        max, (unsigned long long)want, (unsigned long long)rl.rlim_cur, fit);
		return fit;
	}
	return max;
}

/* ---- the door's API ------------------------------------------------------------------- */

struct door *door_new(struct server *s, int lfd)
{
	struct door *dr = calloc(1, sizeof *dr);
	if (!dr)
		return NULL;
	dr->s = s;
	dr->lfd = lfd;
	dr->ep = dr->wake = dr->dead = -1;
	pthread_mutex_init(&dr->lock, NULL);
	int pair[2];
	if (!socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair)) {
		dr->dead = pair[0];
		close(pair[1]); /* its reads now end at once */
	}
	dr->nslots = fit_descriptors(s->cfg.max_connections);
	dr->slots = calloc((size_t)dr->nslots, sizeof *dr->slots);
	dr->ep = epoll_create1(EPOLL_CLOEXEC);
	dr->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct epoll_event lev = {EPOLLIN, {.u32 = EV_LISTEN}}, wev = {EPOLLIN, {.u32 = EV_WAKE}};
	if (!dr->slots || dr->ep < 0 || dr->wake < 0 || dr->dead < 0 || epoll_ctl(dr->ep, EPOLL_CTL_ADD, lfd, &lev) ||
	    epoll_ctl(dr->ep, EPOLL_CTL_ADD, dr->wake, &wev)) {
		dr->lfd = -1; /* the caller still owns it */
		door_free(dr);
		return NULL;
	}
	for (int i = 0; i < dr->nslots; i++)
		dr->slots[i].fd = dr->slots[i].mhd_fd = -1;
	fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
	return dr;
}

int door_limit(const struct door *dr)
{
	return dr->nslots;
}

int door_start(struct door *dr, struct MHD_Daemon *d)
{
	dr->d = d;
	if (pthread_create(&dr->thread, NULL, door_run, dr))
		return -1;
	dr->started = 1;
	return 0;
}

void door_stop(struct door *dr)
{
	if (!dr)
		return;
	if (dr->started) {
		atomic_store(&dr->stop, 1);
		uint64_t one = 1;
		if (write(dr->wake, &one, sizeof one) < 0)
			serve_log("cannot wake the door thread: %s", strerror(errno));
		pthread_join(dr->thread, NULL);
		dr->started = 0;
	}
	if (dr->lfd >= 0)
		close(dr->lfd);
	dr->lfd = -1;
	pthread_mutex_lock(&dr->lock);
	for (int i = 0; i < dr->nslots; i++) {
		if (dr->slots[i].state == SLOT_WAITING)
			slot_free(dr, &dr->slots[i]);
		else if (dr->slots[i].state == SLOT_HANDED && dr->slots[i].guarding)
			shutdown(dr->slots[i].fd, SHUT_RDWR); /* wakes its guard */
	}
	pthread_mutex_unlock(&dr->lock);
}

void door_free(struct door *dr)
{
	if (!dr)
		return;
	door_stop(dr);
	for (int i = 0; dr->slots && i < dr->nslots; i++)
		if (dr->slots[i].state != SLOT_FREE)
			slot_free(dr, &dr->slots[i]);
	if (dr->ep >= 0)
		close(dr->ep);
	if (dr->wake >= 0)
		close(dr->wake);
	if (dr->dead >= 0)
		close(dr->dead);
	pthread_mutex_destroy(&dr->lock);
	free(dr->slots);
	free(dr);
}

void door_notify(void *cls, struct MHD_Connection *c, void **socket_context, enum MHD_ConnectionNotificationCode toe)
{
	struct door *dr = cls;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		int fd = ci ? ci->connect_fd : -1;
		pthread_mutex_lock(&dr->lock);
		for (int i = 0; fd >= 0 && i < dr->nslots; i++) {
			struct slot *sl = &dr->slots[i];
			if (sl->state == SLOT_HANDED && !sl->started && sl->mhd_fd == fd) {
				sl->started = 1;
				sl->conn = c;
				*socket_context = sl;
				break;
			}
		}
		pthread_mutex_unlock(&dr->lock);
	} else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
		struct slot *sl = *socket_context;
		pthread_mutex_lock(&dr->lock);
		if (sl->conn == c) /* else it was parked: the slot is the door's again */
			slot_free(dr, sl);
		pthread_mutex_unlock(&dr->lock);
		*socket_context = NULL;
	}
}

/* The slot of a connection libmicrohttpd runs (NULL when the door did not
 * hand it over).  The callers check under the lock that it is still c's:
 * a parked connection's slot is the door's (or another connection's). */
static struct slot *slot_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

void door_request_begin(struct door *dr, struct MHD_Connection *c)
{
	struct slot *sl = slot_of(c);
	if (!sl)
		return;
	pthread_mutex_lock(&dr->lock);
	if (sl->conn == c) {
		sl->busy = 1;
		sl->stalled_ms = sl->write_check_ms = 0;
	}
	pthread_mutex_unlock(&dr->lock);
}

int door_request_tracked(struct door *dr, struct MHD_Connection *c)
{
	struct slot *sl = slot_of(c);
	if (!sl)
		return 1; /* not one of ours: nothing to guard */
	pthread_mutex_lock(&dr->lock);
	int tracked = sl->conn != c || !sl->untracked;
	pthread_mutex_unlock(&dr->lock);
	return tracked;
}

/* 1 when libmicrohttpd has read more of fd than the expect bytes of the
 * requests let in (it holds a pipelined request), 0 when exactly those,
 * -1 when the socket cannot tell; *unread is the socket's unread count.
 * Consumed = received (TCP_INFO) - unread (SIOCINQ), read at two instants:
 * the client sends its next request as soon as it has the answer.  With
 * the unread count read first, bytes arriving in between can only make
 * consumed look larger (only this thread reads the socket), and
 * libmicrohttpd has read at least the expect bytes of the requests it
 * answered: so an equal count is exact, and the common case costs two
 * system calls.  Otherwise the unread count is read again after TCP_INFO
 * (bytes arriving between the readings made them disagree: the
 * connection was then answered with `Connection: close`, now and then in
 * a benchmark run); equal counts mean nothing arrived in between. */
static int bytes_held(int fd, uint64_t expect, int *unread)
{
	for (int tries = 0; tries < 4; tries++) {
		struct tcp_info ti;
		socklen_t len = sizeof ti;
		int before = 0, after = 0;
		if (ioctl(fd, SIOCINQ, &before) || before < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ||
		    len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received)
			return -1;
		*unread = before;
		if (ti.tcpi_bytes_received - (uint64_t)before == expect)
			return 0;
		if (ioctl(fd, SIOCINQ, &after))
			return -1;
		if (before != after)
			continue; /* bytes came in meanwhile: look again */
		uint64_t consumed = ti.tcpi_bytes_received - (uint64_t)after;
		return consumed > expect ? 1 : consumed == expect ? 0 : -1;
	}
	return -1;
}

/* Refuses the head waited for on a handed connection: the answer, then
 * both directions shut, so that libmicrohttpd's next read ends it. */
static void guard_refuse(struct door *dr, int fd, int64_t since_ms, int status, const char *code, const char *message)
{
	answer(dr, fd, since_ms, status, code, message);
	shutdown(fd, SHUT_RDWR);
}

/* Gives kept connection c back to the door while it waits for its next
 * head (see the top): the slot's dup goes into the epoll as a waiting
 * slot, and libmicrohttpd's descriptor becomes dr->dead, so its thread
 * reads an end and closes c -- not the client's socket.  Returns 0, or -1
 * when it stays on this thread (the server stops, epoll refused). */
static int park(struct door *dr, struct slot *sl, struct MHD_Connection *c, int64_t since, int64_t deadline_ms, size_t peeked)
{
	int rc = -1;
	pthread_mutex_lock(&dr->lock);
	struct epoll_event ev = {EPOLLIN | EPOLLRDHUP | EPOLLET, {.u32 = (uint32_t)(sl - dr->slots)}};
	if (!atomic_load(&dr->stop) && sl->conn == c && dup2(dr->dead, sl->mhd_fd) >= 0) {
		if (epoll_ctl(dr->ep, EPOLL_CTL_ADD, sl->fd, &ev)) {
			dup2(sl->fd, sl->mhd_fd); /* libmicrohttpd's socket again: it waits here */
		} else {
			sl->state = SLOT_WAITING;
			sl->kept = 1;
			sl->conn = NULL; /* c's closing notification is no longer this slot's */
			sl->mhd_fd = -1;
			sl->started = sl->busy = sl->reaped = sl->guarding = sl->untracked = 0;
			/* expect stays: the socket's byte count (TCP_INFO) runs on over the
			 * requests of its next hand-over (it was reset, and the first
			 * answer after a park then said Connection: close) */
			sl->since_ms = since;
			sl->deadline_ms = deadline_ms;
			sl->peeked = peeked;
			rc = 0;
		}
	}
	pthread_mutex_unlock(&dr->lock);
	return rc;
}

/* Waits on the connection's own thread for its next request head, until
 * deadline_ms, and checks it as look() does the first (see the top); past
 * DOOR_KEEP_THREAD_MS the connection is parked in the door instead.
 * ready: bytes of it are in the socket already (no poll before the first
 * look).  Returns 1 when parked (sl is no longer c's), else 0 once libmicrohttpd
 * may read: the head is sane, the client left, or the connection was
 * refused and shut down. */
static int guard(struct door *dr, struct slot *sl, struct MHD_Connection *c, int fd, int64_t deadline_ms, int ready)
{
	char head[SERVE_HEADERS_MAX_BYTES + 1];
	int64_t since = serve_now_ms(), park_at = since + DOOR_KEEP_THREAD_MS;
	size_t peeked = 0;
	int lowat = 1, parked = 0;
	for (;;) {
		int64_t now = serve_now_ms(), until = park_at < deadline_ms ? park_at : deadline_ms;
		struct pollfd p = {fd, POLLIN | POLLRDHUP, 0};
		int r = ready ? 1 : now < until ? poll(&p, 1, (int)(until - now)) : 0;
		ready = 0; /* bytes were there already: the first look needs no poll */
		if (r < 0 && errno == EINTR)
			continue;
		if (atomic_load(&dr->stop) || r < 0)
			break;
		ssize_t n = recv(fd, head, sizeof head, MSG_PEEK | MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			break;                                /* the client left: libmicrohttpd sees it */
		if (r == 0 && serve_now_ms() < deadline_ms) { /* DOOR_KEEP_THREAD_MS: to the door */
			if (lowat != 1) {
				lowat = 1;
				setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat);
			}
			if (!park(dr, sl, c, since, deadline_ms, peeked)) {
				parked = 1;
				break;
			}
			park_at = INT64_MAX; /* it stays: the deadline as before */
			continue;
		}
		if (r == 0) { /* the deadline */
			char msg[160];
			timeout_message(dr, msg, sizeof msg);
			if (n > 0)
				guard_refuse(dr, fd, since, 408, "request_timeout", msg);
			else
				shutdown(fd, SHUT_RDWR); /* an idle keep-alive connection */
			break;
		}
		if (n < 0)
			continue;
		peeked += (size_t)n;
		size_t hl = head_length(head, (size_t)n);
		char msg[200];
		const char *code = NULL;
		long long body = 0;
		int status = judge_head(head, (size_t)n, sizeof head, &hl, msg, sizeof msg, &code, &body);
		if (status) {
			guard_refuse(dr, fd, since, status, code, msg);
			break;
		}
		if (hl) {
			pthread_mutex_lock(&dr->lock);
			sl->expect += hl + (uint64_t)(body > 0 ? body : 0);
			sl->untracked |= body < 0;
			pthread_mutex_unlock(&dr->lock);
			break;
		}
		if (peeked > DOOR_PEEK_BUDGET_BYTES) {
			char msg2[160];
			timeout_message(dr, msg2, sizeof msg2);
			guard_refuse(dr, fd, since, 408, "request_timeout", msg2);
			break;
		}
		/* part of a head: poll again once more than these n bytes are here */
		lowat = (int)n + 1;
		setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat);
	}
	if (lowat != 1) {
		lowat = 1;
		setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat);
	}
	return parked;
}

void door_request_end(struct door *dr, struct MHD_Connection *c, int keep_alive)
{
	struct slot *sl = slot_of(c);
	if (!sl)
		return;
	pthread_mutex_lock(&dr->lock);
	if (sl->conn != c) { /* parked: c is closing */
		pthread_mutex_unlock(&dr->lock);
		return;
	}
	sl->busy = 0;
	sl->deadline_ms = serve_now_ms() + (int64_t)dr->s->cfg.request_timeout_s * 1000;
	int check = keep_alive && !sl->untracked && !sl->reaped && !atomic_load(&dr->stop), fd = sl->fd;
	uint64_t expect = sl->expect;
	int64_t deadline = sl->deadline_ms;
	pthread_mutex_unlock(&dr->lock);
	/* the socket is looked at without the lock: every connection's thread
	 * takes it, and its system calls made them queue (fd stays open: the
	 * slot is freed only when this connection closes, on this thread) */
	int unread = 0, held = check ? bytes_held(fd, expect, &unread) : -1;
	pthread_mutex_lock(&dr->lock);
	if (check) {
		sl->untracked = held != 0; /* a request it holds goes unchecked: its answer closes */
		sl->guarding = held == 0 && !atomic_load(&dr->stop);
	}
	int guarding = sl->guarding;
	pthread_mutex_unlock(&dr->lock);
	if (!guarding || guard(dr, sl, c, fd, deadline, unread > 0))
		return;
	pthread_mutex_lock(&dr->lock);
	sl->guarding = 0;
	pthread_mutex_unlock(&dr->lock);
}

int door_busy_connections(struct door *dr)
{
	int n = 0;
	pthread_mutex_lock(&dr->lock);
	for (int i = 0; i < dr->nslots; i++)
		n += dr->slots[i].state == SLOT_HANDED && dr->slots[i].busy;
	pthread_mutex_unlock(&dr->lock);
	return n;
}
