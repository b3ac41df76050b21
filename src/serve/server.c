/* server.c -- the `convbi serve` daemon on libmicrohttpd: binding, the
 * security checks every request passes, body limits, dispatch, the one
 * error shape, the access log, and draining on SIGTERM.
 *
 * Security by default:
 *   - the listening address is loopback unless --tokens is given (a
 *     non-loopback --listen without it is refused);
 *   - with --tokens every route but /healthz, the page and its assets
 *     needs `Authorization: Bearer TOKEN`, compared in constant time;
 *   - Host must name this server (loopback names, the --listen host, or
 *     --allow-host) and a browser's Origin must match one of those or
 *     --allow-origin: a DNS-rebinding page cannot reach it;
 *   - request line + headers, body, question and SQL have size limits;
 *   - concurrent questions and open sessions are capped (503 + Retry-After);
 *   - connections are capped, in all and per address, and must deliver a
 *     request within --request-timeout-s (door.c);
 *   - nothing logged or returned contains a key or a token.
 * The door accepts and hands libmicrohttpd complete request heads; a
 * connection then gets a thread (MHD_USE_THREAD_PER_CONNECTION) so that a
 * streamed answer may block waiting for its question's next event.
 *
 * Signals: SIGTERM drains -- every new request gets 503 `draining`
 * (/healthz too, so a balancer takes the server out), the running
 * questions finish, then it exits 0; Ctrl-C (SIGINT), also during a
 * drain, interrupts every running question and SQL at once and exits 130.
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "serve/routes.h"

/* The log.  Every line is whole in one write(2) on descriptor 2 (the
 * kernel keeps a write of a line whole: a regular file's position lock, a
 * pipe's PIPE_BUF).  Access lines (serve_log_access, one per request) are
 * gathered in log_buf and written together -- when it is full, at least
 * every DOOR_TICK_MS (the door thread calls serve_log_flush), before any
 * other line (in order), and at exit: a write(2) to the log file per
 * request was about 5 % of what serve adds to a question.  The lock
 * covers a copy into the buffer; a write under it happens once per
 * LOG_BUF_BYTES of access lines, or for a line of another kind. */
#define LOG_BUF_BYTES 4096 /* PIPE_BUF: a write of it to a pipe stays whole */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[LOG_BUF_BYTES];
static size_t log_len;

static void log_write(const char *text, size_t len)
{
	for (size_t off = 0; off < len;) {
		ssize_t k = write(STDERR_FILENO, text + off, len - off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break; /* nowhere to log: the server goes on */
		off += (size_t)k;
	}
}

/* Formats "convbi serve: " fmt "\n" into line; returns its length. */
static size_t log_format(char line[SERVE_LOG_LINE_BYTES], const char *fmt, va_list ap)
{
	static const char prefix[] = "convbi serve: ";
	memcpy(line, prefix, sizeof prefix - 1);
	int n = vsnprintf(line + sizeof prefix - 1, SERVE_LOG_LINE_BYTES - sizeof prefix, fmt, ap);
	size_t len = sizeof prefix - 1 +
	             (n < 0                                              ? 0
	              : (size_t)n < SERVE_LOG_LINE_BYTES - sizeof prefix ? (size_t)n
	                                                                 : SERVE_LOG_LINE_BYTES - sizeof prefix - 1);
	line[len++] = '\n';
	return len;
}

/* Writes the gathered access lines (log_lock held). */
static void log_flush_locked(void)
{
	if (log_len)
		log_write(log_buf, log_len);
	log_len = 0;
}

void serve_log_flush(void)
{
	pthread_mutex_lock(&log_lock);
	log_flush_locked();
	pthread_mutex_unlock(&log_lock);
}

/* One line into the log: an access line is gathered with the others
 * (written per 4 KiB or door tick), any other line flushes them and is
 * written at once, so the order holds. */
static void log_line(int access, const char *fmt, va_list ap)
{
	char line[SERVE_LOG_LINE_BYTES];
	size_t len = log_format(line, fmt, ap);
	pthread_mutex_lock(&log_lock);
	if (!access || log_len + len > sizeof log_buf)
		log_flush_locked();
	if (access) {
		memcpy(log_buf + log_len, line, len);
		log_len += len;
	} else {
		log_write(line, len);
	}
	pthread_mutex_unlock(&log_lock);
}

void serve_log(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_line(0, fmt, ap);
	va_end(ap);
}

void serve_log_access(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_line(1, fmt, ap);
	va_end(ap);
}

int64_t serve_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- responses ------------------------------------------------------------ */

static void common_headers(struct MHD_Response *r)
{
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
}

static void cors_headers(struct request *req, struct MHD_Response *r)
{
	if (req->origin_ok && req->origin[0]) {
		MHD_add_response_header(r, "Access-Control-Allow-Origin", req->origin);
		MHD_add_response_header(r, "Vary", "Origin");
	}
}

/* Queues response r (the caller's reference is dropped) with the headers
 * every answer carries. */
static enum MHD_Result queue(struct request *req, int status, struct MHD_Response *r, const char *type, const char *retry_after)
{
	if (!r)
		return MHD_NO;
	common_headers(r);
	cors_headers(req, r);
	if (type)
		MHD_add_response_header(r, "Content-Type", type);
	if (retry_after)
		MHD_add_response_header(r, "Retry-After", retry_after);
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"convbi\"");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED && req->allow)
		MHD_add_response_header(r, "Allow", req->allow);
	if (!req->keep)
		MHD_add_response_header(r, "Connection", "close");
	req->status = status;
	enum MHD_Result rc = MHD_queue_response(req->conn, (unsigned)status, r);
	MHD_destroy_response(r);
	return rc;
}

enum MHD_Result respond(struct request *req, int status, const char *type, const char *body, size_t len, const char *retry_after)
{
	return queue(req, status, MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY), type, retry_after);
}

enum MHD_Result respond_json_owned(struct request *req, int status, char *json)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(json), json, MHD_RESPMEM_MUST_FREE);
	if (!r)
		free(json);
	return queue(req, status, r, "application/json", NULL);
}

enum MHD_Result respond_json(struct request *req, int status, const char *json)
{
	if (!json)
		return respond_error(req, 500, "ENOMEM", "out of memory; try again");
	return respond(req, status, "application/json", json, strlen(json), NULL);
}

enum MHD_Result respond_error(struct request *req, int status, const char *code, const char *message)
{
	char *json = serve_json_error(code, message);
	if (!json)
		return MHD_NO;
	const char *retry = status == MHD_HTTP_SERVICE_UNAVAILABLE ? "1" : NULL;
	enum MHD_Result rc = respond(req, status, "application/json", json, strlen(json), retry);
	free(json);
	return rc;
}

/* ---- the client's connection ------------------------------------------------ */

int client_alive(int fd)
{
	if (fd < 0)
		return 1;
	struct pollfd p = {fd, POLLIN | POLLRDHUP, 0};
	if (poll(&p, 1, 0) <= 0)
		return 1;
	if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
		return 0;
	char c;
	return !(p.revents & POLLIN) || recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) != 0;
}

/* ---- security checks -------------------------------------------------------- */

/* The length of HOST[:PORT] h without a port of 80, http's default:
 * `name:80` is `name`. */
static size_t without_port_80(const char *h)
{
	size_t n = strlen(h);
	return n > 3 && !strcmp(h + n - 3, ":80") && (h[0] != '[' || h[n - 4] == ']') ? n - 3 : n;
}

/* Host names compare case-insensitively (RFC 3986 3.2.2, RFC 9110 4.2.3:
 * clients other than browsers may send BI.EXAMPLE.COM); in a Host header
 * (header 1) a port of 80 is as none -- an Origin's port is always written
 * by origin_allowed, and must be ours. */
static int host_matches(const char *allowed, const char *host, int port, int header)
{
	size_t n = strlen(allowed), an = header ? without_port_80(allowed) : n,
	       hn = header ? without_port_80(host) : strlen(host);
	if (an == hn && !strncasecmp(allowed, host, an))
		return 1;
	/* an allowed name without a port matches it on our port */
	char ours[16];
	int k = snprintf(ours, sizeof ours, ":%d", port);
	return !strchr(allowed + (allowed[0] == '[' ? n - 1 : 0), ':') && hn == n + (size_t)k && !strncasecmp(allowed, host, n) &&
	       !strcmp(host + n, ours);
}

static int host_allowed(const struct server *s, const char *host, int header)
{
	static const char *const loopback[] = {"localhost", "127.0.0.1", "[::1]"};
	for (size_t i = 0; i < sizeof loopback / sizeof loopback[0]; i++)
		if (host_matches(loopback[i], host, s->port, header))
			return 1;
	if (host_matches(s->host, host, s->port, header))
		return 1;
	for (int i = 0; i < s->cfg.nallow_hosts; i++)
		if (host_matches(s->cfg.allow_hosts[i], host, s->port, header))
			return 1;
	return 0;
}

/* The length of origin o without its scheme's default port (http 80,
 * https 443): `http://x.com:80` is `http://x.com`. */
static size_t origin_length(const char *o)
{
	size_t n = strlen(o);
	if (n > 10 && !strncasecmp(o, "http://", 7) && !strcmp(o + n - 3, ":80"))
		return n - 3;
	if (n > 12 && !strncasecmp(o, "https://", 8) && !strcmp(o + n - 4, ":443"))
		return n - 4;
	return n;
}

/* A browser's Origin ("scheme://host[:port]") is allowed when it equals an
 * --allow-origin (a default port written or not), or when it is this server's own origin: http (the only
 * scheme it serves), and a host and port -- the port written, else 80 --
 * that name it as a Host header would.  A page at http://localhost (port
 * 80) or https://localhost:8765 is another origin than the server on
 * http://localhost:8765, and is refused. */
static int origin_allowed(const struct server *s, const char *origin)
{
	size_t on = origin_length(origin);
	for (int i = 0; i < s->cfg.nallow_origins; i++) /* scheme and host are case-insensitive */
		if (origin_length(s->cfg.allow_origins[i]) == on && !strncasecmp(s->cfg.allow_origins[i], origin, on))
			return 1;
	if (strncasecmp(origin, "http://", 7))
		return 0;
	const char *h = origin + 7;
	const char *end = h[0] == '[' ? strchr(h, ']') : h;
	if (!end)
		return 0;
	const char *colon = strchr(end, ':');
	size_t hn = colon ? (size_t)(colon - h) : strlen(h);
	long port = 80;
	if (colon) {
		char *after;
		port = strtol(colon + 1, &after, 10);
		if (!isdigit((unsigned char)colon[1]) || *after || port < 1 || port > 65535)
			return 0;
	}
	if (!hn || hn > 255 || memchr(h, '/', hn) || memchr(h, '@', hn))
		return 0;
	char host[300];
	snprintf(host, sizeof host, "%.*s:%ld", (int)hn, h, port);
	return host_allowed(s, host, 0);
}

const char *serve_header(struct MHD_Connection *c, const char *name, char *buf, size_t cap)
{
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
	if (!v)
		return NULL;
	v += strspn(v, " \t");
	size_t n = strlen(v);
	if (!n || (v[n - 1] != ' ' && v[n - 1] != '\t'))
		return v;
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	if (n >= cap)
		return v;
	memcpy(buf, v, n);
	buf[n] = '\0';
	return buf;
}

/* Routes reachable without a token: they hold no data, and the page must
 * load before it can ask for a token.  (/v1/openapi.json is an API route
 * as the others: it needs the token, as the README says.) */
static int public_route(const char *method, const char *url)
{
	return !strcmp(url, "/healthz") || (!strcmp(method, "GET") && (!strcmp(url, "/") || !strncmp(url, "/assets/", 8)));
}

static enum MHD_Result add_header_size(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	*(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4;
	return MHD_YES;
}

/* Header size, Host, Origin, token, declared body size.  Queues the
 * refusal and returns non-zero when the request may not go on.  (The
 * door checks a connection's first request head before libmicrohttpd
 * parses it; these checks cover the later ones of a keep-alive
 * connection too.) */
static int refuse(struct server *s, struct request *req, const char *method, const char *url)
{
	size_t header_bytes = strlen(url);
	MHD_get_connection_values(req->conn, MHD_HEADER_KIND | MHD_GET_ARGUMENT_KIND, add_header_size, &header_bytes);
	if (header_bytes > SERVE_HEADERS_MAX_BYTES) {
		char msg[128];
		snprintf(msg, sizeof msg, "the request target and headers exceed %u bytes; send fewer or shorter headers",
		         SERVE_HEADERS_MAX_BYTES);
		respond_error(req, 431, "headers_too_large", msg);
		return 1;
	}
	char value[SERVE_TOKEN_MAX_BYTES + 16]; /* a Host, Origin or Authorization to trim (longer ones pass no check) */
	const char *host = serve_header(req->conn, "Host", value, sizeof value);
	if (!host) { /* the door refuses it first, unless pipelined */
		respond_error(req, 400, "bad_request", SERVE_NO_HOST_MESSAGE);
		return 1;
	}
	if (!host_allowed(s, host, 1)) {
		respond_error(
		        req, 403, "forbidden_host",
		        "the Host header does not name this server; start it with --allow-host NAME for the name clients use");
		return 1;
	}
	const char *origin = serve_header(req->conn, "Origin", value, sizeof value);
	if (origin) {
		if (!origin_allowed(s, origin)) {
			respond_error(req, 403, "forbidden_origin",
			              "requests from this Origin are not allowed; start the server with --allow-origin ORIGIN");
			return 1;
		}
		snprintf(req->origin, sizeof req->origin, "%s", origin);
		req->origin_ok = 1;
	}
	const char *cl = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Content-Length");
	if (cl && strtoull(cl, NULL, 10) > SERVE_BODY_MAX_BYTES) {
		char msg[128];
		snprintf(msg, sizeof msg, "the request body is larger than %u bytes; send less", SERVE_BODY_MAX_BYTES);
		respond_error(req, 413, "too_large", msg);
		return 1;
	}
	req->token = -1;
	/* a browser sends a CORS preflight without credentials (Fetch): one from
	 * an allowed Origin is answered without a token -- routes_dispatch's
	 * fixed 204 names no data -- and the request it clears is judged then */
	int preflight = req->origin_ok && !strcmp(method, "OPTIONS") &&
	                MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Access-Control-Request-Method");
	if (!s->ntokens || public_route(method, url) || preflight)
		return 0;
	const char *auth = serve_header(req->conn, "Authorization", value, sizeof value);
	if (auth && !strncasecmp(auth, "Bearer ", 7))
		req->token = server_token_find(s, auth + 7);
	if (req->token < 0) {
		respond_error(req, 401, "unauthorized",
		              "send `Authorization: Bearer TOKEN` with a token from the server's --tokens file");
		return 1;
	}
	return 0;
}

/* URL unescaping that notices %00: it would cut the path or an argument
 * short ("/v1/sessions/ID%00x" naming session ID).  Runs on the
 * connection's thread just before its access handler, which reads and
 * clears the flag. */
static _Thread_local int target_nul;

/* The request this connection's thread reads the body of, from its
 * first call of on_request to on_completed (libmicrohttpd runs a thread
 * per connection): NULL while it reads a head. */
static _Thread_local struct request *thread_request;
/* 1 once its refusal of the body was answered in its place: its failing
 * to send its own answer then is no news for the log. */
static _Thread_local int answered_in_place;

static size_t unescape(void *cls, struct MHD_Connection *c, char *text)
{
	size_t n = MHD_http_unescape(text);
	if (strlen(text) != n)
		target_nul = 1;
	return n;
}

/* ---- the access handler ------------------------------------------------------- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct server *s = cls;
	struct request *req = *con_cls;
	if (!req) {
		if (!(req = calloc(1, sizeof *req)))
			return MHD_NO;
		*con_cls = req;
		req->conn = conn;
		req->start_ms = serve_now_ms();
		req->route = "other";
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		req->fd = ci ? ci->connect_fd : -1;
		snprintf(req->method, sizeof req->method, "%s", method);
		thread_request = req;
		/* the door checks each next request of a kept connection; one it
		 * could not see (HTTP/1.0 keep-alive, a pipelined one) closes */
		const char *connection = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Connection");
		int keep = !strcmp(version, MHD_HTTP_VERSION_1_1) && !(connection && strcasestr(connection, "close")) &&
		           door_request_tracked(s->door, conn);
		/* a refusal queued now, before any body is read, makes libmicrohttpd
		 * close the connection after it: it says so (keep 0), and the door
		 * does not wait for a next request (the client would see no end) */
		if (target_nul) {
			target_nul = 0;
			respond_error(req, 400, "bad_request", "the request target holds %00 (a NUL byte); remove it");
			req->refused = 1;
		} else if (refuse(s, req, method, url)) {
			req->refused = 1;
		} else {
			req->keep = keep;
		}
		return MHD_YES;
	}
	if (*upload_size) {
		if (!req->refused && !req->too_big) {
			if (req->len + *upload_size > SERVE_BODY_MAX_BYTES) {
				req->too_big = 1;
			} else {
				char *b = realloc(req->body, req->len + *upload_size + 1);
				if (!b)
					return MHD_NO;
				memcpy(b + req->len, upload, *upload_size);
				req->body = b;
				req->len += *upload_size;
				b[req->len] = '\0';
			}
		}
		*upload_size = 0;
		return MHD_YES;
	}
	door_request_begin(s->door, conn);
	if (req->refused)
		return MHD_YES;
	if (atomic_load(&s->draining) && strcmp(url, "/healthz")) {
		req->route = "(draining)";
		return respond_error(req, 503, "draining", "the server is shutting down; retry against another instance");
	}
	if (req->too_big) {
		char msg[128];
		snprintf(msg, sizeof msg, "the request body is larger than %u bytes; send less", SERVE_BODY_MAX_BYTES);
		return respond_error(req, 413, "too_large", msg);
	}
	return routes_dispatch(s, req, method, url);
}

/* The request's metrics and log line, then the door waits here, on the
 * connection's thread, for the next request of a kept connection. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode why)
{
	struct server *s = cls;
	struct request *req = *con_cls;
	int keep = req && req->keep && why == MHD_REQUEST_TERMINATED_COMPLETED_OK;
	thread_request = NULL;
	answered_in_place = 0;
	if (req) {
		double seconds = (double)(serve_now_ms() - req->start_ms) / 1000;
		metrics_request(s->metrics, req->route, req->status, seconds);
		serve_log_access("%s %s %d %.1f ms%s", req->method, req->route, req->status, seconds * 1000,
		                 why == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed early)");
		free(req->body);
		free(req);
		*con_cls = NULL;
	}
	door_request_end(s->door, conn, keep);
}

/* libmicrohttpd's own messages.  Those that repeat what the access line of
 * the request says -- a client that left mid-answer ends the stream with an
 * error, which libmicrohttpd reports twice -- are dropped; the rest are
 * logged in serve's line format, tagged, on one line, with any token cut
 * out (its messages quote no headers today; this keeps it so); its refusal
 * of a malformed request becomes a "(connection)" line as the door's. */
/* libmicrohttpd refuses a request's body itself -- its chunk framing past
 * what the front door looked at (16 KiB with the head, or behind Expect:
 * 100-continue), a chunk size over its limit, trailers -- and says so
 * (line) just before it queues its HTML answer, on the connection's
 * thread.  The request gets our answer in the JSON shape instead, and the
 * connection is shut for writing: libmicrohttpd's answer goes nowhere and
 * it closes the connection. */
static void answer_body_refusal(struct request *req, int status, const char *line)
{
	char msg[128];
	snprintf(msg, sizeof msg, "the request body is larger than %u bytes; send less", SERVE_BODY_MAX_BYTES);
	if (status == 413) /* a chunk size over libmicrohttpd's limit */
		door_write_error(req->fd, 413, "too_large", msg);
	else if (status == 400 && strstr(line, "chunk"))
		door_write_error(req->fd, 400, "bad_request", SERVE_BAD_CHUNKS_MESSAGE);
	else
		door_write_error(req->fd, status, status == 431 ? "headers_too_large" : "bad_request",
		                 "the request is malformed after its head (its chunked body or trailers); send valid HTTP/1.1");
	shutdown(req->fd, SHUT_WR);
	req->status = status;
	thread_request = NULL;
	answered_in_place = 1;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	static const char *const repeats[] = {"Closing connection (application error generating response)",
	                                      "Application reported internal error, closing connection", NULL};
	const struct server *s = cls;
	char line[512];
	vsnprintf(line, sizeof line, fmt, ap);
	line[strcspn(line, "\r\n")] = '\0';
	for (int i = 0; repeats[i]; i++)
		if (!strncmp(line, repeats[i], strlen(repeats[i])))
			return;
	if (answered_in_place && !strncmp(line, "Failed to send the response", 27))
		return;
	static const char refused[] = "Error processing request (HTTP response code is ";
	if (!strncmp(line, refused, sizeof refused - 1)) { /* it answers a malformed request itself, in HTML */
		int status = atoi(line + sizeof refused - 1);
		if (thread_request && thread_request->fd >= 0) { /* the JSON shape instead */
			answer_body_refusal(thread_request, status, line);
			return;
		}
		metrics_request(s->metrics, "(connection)", status, 0);
		serve_log("(connection) %d libmicrohttpd: a malformed request; closing the connection", status);
		return;
	}
	for (int i = 0; i < s->ntokens; i++)
		for (char *t; s->tokens[i].len && (t = memmem(line, strlen(line), s->tokens[i].secret, s->tokens[i].len));)
			memset(t, '*', s->tokens[i].len);
	serve_log("libmicrohttpd: %s", line);
}

/* ---- binding ------------------------------------------------------------------- */

/* "HOST:PORT", "[V6]:PORT".  Binds and listens; returns the socket, or
 * after printing one line -2 for a usage error, -1 when binding fails. */
static int bind_listen(struct server *s, const char *spec)
{
	const char *colon = strrchr(spec, ':');
	if (!colon || colon == spec || !colon[1]) {
		fprintf(stderr, "convbi: --listen `%s` is not HOST:PORT (e.g. 127.0.0.1:8765)\n", spec);
		return -2;
	}
	char host[256];
	size_t hn = (size_t)(colon - spec);
	if (hn >= sizeof host) {
		fprintf(stderr, "convbi: --listen: the host name is too long\n");
		return -2;
	}
	if (spec[0] != '[' && memchr(spec, ':', hn)) { /* ::1:8765 -- which colon ends the address? */
		fprintf(stderr, "convbi: --listen `%s`: write an IPv6 address in brackets, e.g. [%.*s]:%s\n", spec, (int)hn, spec,
		        colon + 1);
		return -2;
	}
	memcpy(host, spec, hn);
	host[hn] = '\0';
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || port < 0 || port > 65535) {
		fprintf(stderr, "convbi: --listen `%s`: the port must be 0 to 65535\n", spec);
		return -2;
	}
	char bare[256];
	snprintf(bare, sizeof bare, "%s", host);
	if (bare[0] == '[' && hn > 2) {
		memmove(bare, bare + 1, hn - 2);
		bare[hn - 2] = '\0';
	}
	struct addrinfo hints = {0}, *ai = NULL;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	int gai = getaddrinfo(bare, colon + 1, &hints, &ai);
	if (gai) {
		fprintf(stderr, "convbi: --listen `%s`: %s\n", spec, gai_strerror(gai));
		return -2;
	}
	int loopback = 1;
	for (struct addrinfo *p = ai; p; p = p->ai_next) {
		if (p->ai_family == AF_INET)
			loopback &= (ntohl(((struct sockaddr_in *)p->ai_addr)->sin_addr.s_addr) >> 24) == 127;
		else if (p->ai_family == AF_INET6)
			loopback &= IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)p->ai_addr)->sin6_addr);
		else
			loopback = 0;
	}
	if (!loopback && !s->cfg.tokens_path) {
		freeaddrinfo(ai);
		fprintf(stderr,
		        "convbi: refusing to listen on %s without --tokens: anyone who can reach it could ask questions; "
		        "give --tokens FILE or listen on 127.0.0.1\n",
		        spec);
		return -2;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, SOMAXCONN)) {
		fprintf(stderr, "convbi: cannot listen on %s: %s\n", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	s->port =
	        ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port : ((struct sockaddr_in6 *)&ss)->sin6_port);
	snprintf(s->host, sizeof s->host, "%s", host);
	s->loopback = loopback;
	return fd;
}

/* ---- running questions (for Ctrl-C) ------------------------------------------------ */

void server_run_begin(struct server *s, struct serve_run *r, convbi_session *conv)
{
	r->conv = conv;
	r->prev = NULL;
	pthread_mutex_lock(&s->runs_lock);
	r->next = s->runs;
	if (s->runs)
		s->runs->prev = r;
	s->runs = r;
	if (atomic_load(&s->canceling) && conv)
		convbi_session_interrupt(conv);
	pthread_mutex_unlock(&s->runs_lock);
}

void server_run_end(struct server *s, struct serve_run *r)
{
	pthread_mutex_lock(&s->runs_lock);
	if (r->prev)
		r->prev->next = r->next;
	else if (s->runs == r)
		s->runs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->next = r->prev = NULL;
	pthread_mutex_unlock(&s->runs_lock);
}

void server_db_failed(const struct serve_db *db, int rc, const char *message)
{
	if (rc == CONVBI_EDB)
		serve_log("database `%s` at %s: %s", db->name, convbi_engine_database(db->engine), message);
}

/* Writes text to out (cap bytes) with every URL (`scheme://...`, as the
 * model client names an endpoint it could not reach, a token or state
 * server) left out: a URL in parentheses goes with them, another becomes
 * URL_HIDDEN.  Returns 1 when one was there. */
#define URL_HIDDEN "(a URL: see the server's log)"
static int without_urls(const char *text, char *out, size_t cap)
{
	size_t k = 0;
	int found = 0;
	for (const char *p = text; *p && k + 1 < cap;) {
		const char *sep = strstr(p, "://"), *start = sep;
		while (start && start > p && (isalnum((unsigned char)start[-1]) || strchr("+.-", start[-1])))
			start--;
		if (!sep || start == sep || !isalpha((unsigned char)*start)) {
			size_t n = sep ? (size_t)(sep + 3 - p) : strlen(p);
			n = n < cap - 1 - k ? n : cap - 1 - k;
			memcpy(out + k, p, n);
			k += n;
			p += n;
			continue;
		}
		const char *end = sep + 3 + strcspn(sep + 3, " \t\n\"'<>()[]{},;`");
		size_t n = (size_t)(start - p);
		int paren = start > p && start[-1] == '(' && *end == ')';
		if (paren) { /* " (URL)" goes whole */
			n--;
			while (n && p[n - 1] == ' ')
				n--;
			end++;
		}
		n = n < cap - 1 - k ? n : cap - 1 - k;
		memcpy(out + k, p, n);
		k += n;
		if (!paren) {
			int w = snprintf(out + k, cap - k, "%s", URL_HIDDEN);
			k += w > 0 && (size_t)w < cap - k ? (size_t)w : cap - 1 - k;
		}
		p = end;
		found = 1;
	}
	out[k < cap ? k : cap - 1] = '\0';
	return found;
}

const char *serve_client_url_free(const char *text, char *buf, size_t cap)
{
	return text && strstr(text, "://") && without_urls(text, buf, cap) ? buf : text;
}

const char *serve_client_errmsg(int rc, const char *message)
{
	switch (rc) {
	case CONVBI_EBUDGET:
		return "the server's model budget cannot cover this question now; retry later (the server's log says which "
		       "budget and when it resets)";
	case CONVBI_EAUTH:
		return "the server's model endpoint refused its credentials; the server's operator must fix its "
		       "configuration (the server's log names the endpoint)";
	case CONVBI_ENOENDPOINT: return SERVE_NO_MODEL_MESSAGE; /* not the library's words for a command-line user */
	case CONVBI_ESQL:                                       /* the SQL's own text: not the operator's */
	case CONVBI_EREJECTED:
	case CONVBI_EREPAIR: return message;
	default: { /* an endpoint is named by its name only */
		static _Thread_local char shown[2048];
		return serve_client_url_free(message, shown, sizeof shown);
	}
	}
}

int serve_rate_limit_retry_s(convbi_engine *e)
{
	char *json = NULL;
	long long least = -1;
	if (e && !convbi_engine_endpoints(e, &json) && json) {
		cJSON *eps = cJSON_Parse(json), *ep;
		cJSON_ArrayForEach(ep, eps)
		{
			const cJSON *ms = cJSON_GetObjectItemCaseSensitive(ep, "cooling_ms");
			long long v = cJSON_IsNumber(ms) && ms->valuedouble > 0 ? (long long)ms->valuedouble : 0;
			if (least < 0 || v < least)
				least = v;
		}
		cJSON_Delete(eps);
	}
	free(json);
	long long sec = least > 0 ? (least + 999) / 1000 : 1;
	return sec > SERVE_RETRY_AFTER_MAX_S ? SERVE_RETRY_AFTER_MAX_S : (int)sec;
}

int serve_answer_json(const convbi_answer *a, int rc, char **json_out)
{
	int r = convbi_answer_json(a, json_out);
	const char *full = convbi_answer_errmsg(a), *shown = serve_client_errmsg(rc, full), *outcome;
	/* a failed attempt's error may name a URL too (before a good one as well) */
	int failed = 0;
	for (int i = 0; !failed && !convbi_answer_attempt(a, i, NULL, &outcome, NULL); i++)
		failed = strcmp(outcome, "ok") != 0;
	if (r || !*json_out || (shown == full && !(failed && strstr(*json_out, "://"))))
		return r;
	cJSON *o = cJSON_Parse(*json_out), *e = shown == full ? NULL : cJSON_CreateString(shown), *at;
	int changed = 0;
	if (shown != full) {
		serve_log("question failed (%s): %s", convbi_errname(rc), full);
		if (o && e && cJSON_ReplaceItemInObjectCaseSensitive(o, "error", e))
			changed = 1;
		else
			cJSON_Delete(e); /* not attached */
	}
	cJSON_ArrayForEach(at, cJSON_GetObjectItemCaseSensitive(o, "attempts"))
	{
		const cJSON *err = cJSON_GetObjectItemCaseSensitive(at, "error");
		char buf[1024];
		const char *msg = cJSON_IsString(err) ? err->valuestring : NULL,
		           *clean = serve_client_url_free(msg, buf, sizeof buf);
		if (clean != msg && cJSON_ReplaceItemInObjectCaseSensitive(at, "error", cJSON_CreateString(clean)))
			changed = 1;
	}
	char *text = NULL;
	if (!changed) {
		cJSON_Delete(o);
		return r;
	}
	text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	free(*json_out);
	*json_out = text;
	return text ? CONVBI_OK : CONVBI_ENOMEM;
}

int server_slot_take(struct server *s, int tok)
{
	if (atomic_load(&s->draining))
		return SERVE_SLOT_DRAINING;
	int share = tok >= 0 ? s->cfg.max_questions_per_token : 0;
	if (share && atomic_fetch_add(&s->tokens[tok].running, 1) >= share) {
		atomic_fetch_sub(&s->tokens[tok].running, 1);
		return SERVE_SLOT_TOKEN_FULL;
	}
	if (atomic_fetch_add(&s->questions_running, 1) >= s->cfg.max_questions) {
		atomic_fetch_sub(&s->questions_running, 1);
		if (share)
			atomic_fetch_sub(&s->tokens[tok].running, 1);
		return SERVE_SLOT_BUSY;
	}
	return SERVE_SLOT_OK;
}

void server_slot_give(struct server *s, int tok)
{
	atomic_fetch_sub(&s->questions_running, 1);
	if (tok >= 0 && s->cfg.max_questions_per_token)
		atomic_fetch_sub(&s->tokens[tok].running, 1);
}

/* Interrupts every run; returns how many there are.  Called again and
 * again while they end: an ask or run_sql forgets an interrupt that
 * arrived just before it began. */
static int interrupt_runs(struct server *s)
{
	int n = 0;
	pthread_mutex_lock(&s->runs_lock);
	for (struct serve_run *r = s->runs; r; r = r->next, n++)
		if (r->conv)
			convbi_session_interrupt(r->conv);
	pthread_mutex_unlock(&s->runs_lock);
	return n;
}

/* ---- the main loop ---------------------------------------------------------------- */

#define SIGNAL_POLL_MS 20
#define CANCEL_WAIT_MS 5000  /* Ctrl-C: how long interrupted runs get to end */
#define ANSWERS_WAIT_MS 1000 /* then how long their answers get to be sent */

/* Waits up to ms for a signal of set; returns it, or 0. */
static int wait_signal(const sigset_t *set, int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	int sig = sigtimedwait(set, NULL, &ts);
	return sig > 0 ? sig : 0;
}

/* SIGTERM: new requests get 503 `draining` while the questions in flight
 * finish (at most the question timeout and a little).  Returns SIGINT
 * when Ctrl-C comes meanwhile, else 0. */
static int drain(struct server *s, const sigset_t *set)
{
	atomic_store(&s->draining, 1);
	int running = atomic_load(&s->questions_running);
	serve_log("draining: %d question(s) in flight; new requests get 503 (Ctrl-C cancels them)", running);
	int64_t until = serve_now_ms() + s->cfg.question_timeout_ms + 5000;
	while (atomic_load(&s->questions_running) > 0 && serve_now_ms() < until)
		if (wait_signal(set, SIGNAL_POLL_MS) == SIGINT)
			return SIGINT;
	serve_log("drained; stopping");
	return 0;
}

/* Ctrl-C: every running question and SQL is interrupted (its client gets
 * the ECANCELED answer); returns 0 once they ended, -1 when some did not
 * within CANCEL_WAIT_MS. */
static int cancel_all(struct server *s)
{
	atomic_store(&s->draining, 1);
	atomic_store(&s->canceling, 1);
	int n = interrupt_runs(s);
	serve_log("interrupted: canceling %d running question(s) and SQL", n);
	int64_t until = serve_now_ms() + CANCEL_WAIT_MS;
	while ((n = interrupt_runs(s)) > 0 && serve_now_ms() < until) {
		struct timespec ts = {0, SIGNAL_POLL_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
	if (n > 0)
		serve_log("%d run(s) did not stop within %d ms; exiting without waiting for them", n, CANCEL_WAIT_MS);
	return n > 0 ? -1 : 0;
}

int serve_main(int argc, char **argv)
{
	struct server *s = calloc(1, sizeof *s);
	struct serve_config c;
	int rc = s ? serve_parse_args(&c, argc, argv, 0) : SERVE_EXIT_FAIL;
	if (rc) {
		free(s);
		return rc;
	}
	s->cfg = c;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread inherits it; the main thread waits */
	signal(SIGPIPE, SIG_IGN);
	int lfd = bind_listen(s, c.listen);
	rc = lfd == -2 ? SERVE_EXIT_USAGE : lfd < 0 ? SERVE_EXIT_FAIL : server_setup(s, &c);
	if (!rc && routes_setup(s))
		rc = SERVE_EXIT_FAIL;
	if (rc) {
		if (lfd >= 0)
			close(lfd);
		server_teardown(s);
		routes_teardown(s);
		free(s);
		return rc;
	}
	s->sessions = sessions_new(c.max_sessions, c.session_idle_s);
	if (s->sessions && s->ntokens >= 2) { /* one tenant may not take every session, nor every question slot */
		s->cfg.max_sessions_per_token = c.max_sessions / s->ntokens > 0 ? c.max_sessions / s->ntokens : 1;
		sessions_set_token_cap(s->sessions, s->cfg.max_sessions_per_token);
		s->cfg.max_conversations_per_token = c.max_conversations / s->ntokens > 0 ? c.max_conversations / s->ntokens : 1;
		s->cfg.max_questions_per_token = c.max_questions / s->ntokens > 0 ? c.max_questions / s->ntokens : 1;
	}
	s->conversations = sessions_new(c.max_conversations, c.session_idle_s);
	if (s->conversations) {
		sessions_set_lru(s->conversations);
		sessions_set_token_cap(s->conversations, s->cfg.max_conversations_per_token);
	}
	s->metrics = metrics_new();
	struct MHD_Daemon *d = NULL;
	if (s->sessions && s->conversations && s->metrics && (s->door = door_new(s, lfd)))
		lfd = -1; /* the door's now */
	if (s->door)
		d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC |
		                             MHD_USE_ERROR_LOG | MHD_USE_POLL | MHD_USE_NO_LISTEN_SOCKET,
		                     0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
		                     MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, door_notify,
		                     s->door, MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
		                     (size_t)SERVE_CONN_MEMORY_BYTES, MHD_OPTION_CONNECTION_LIMIT,
		                     (unsigned)door_limit(s->door) + 16, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
		                     MHD_OPTION_END);
	if (!d || door_start(s->door, d)) {
		fprintf(stderr, "convbi: cannot start the HTTP server on %s\n", c.listen);
		if (lfd >= 0)
			close(lfd);
		if (d)
			MHD_stop_daemon(d);
		rc = SERVE_EXIT_FAIL;
		goto done;
	}
	serve_log("listening on http://%s:%d (%d database%s, %s)", s->host, s->port, s->ndbs, s->ndbs == 1 ? "" : "s",
	          s->ntokens ? "bearer tokens required" : "loopback only, no tokens");
	if (s->no_model)
		serve_log(
		        "warning: no model endpoint is configured (give --config FILE, $CONVBI_CONFIG or the "
		        "AZURE_OPENAI_ENDPOINT_0... variables): questions and MCP ask fail with ENOENDPOINT and /healthz "
		        "answers 503 no_model; /v1/sql and /v1/schema work");
	int sig = 0;
	while (!(sig = wait_signal(&set, 1000)) || (sig != SIGTERM && sig != SIGINT))
		if (sessions_expire(s->sessions) + sessions_expire(s->conversations) > 0)
			malloc_trim(0); /* give the closed connections' memory back to the system */
	if (sig == SIGTERM)
		sig = drain(s, &set);
	if (sig == SIGINT && cancel_all(s)) {
		serve_log_flush();
		fflush(stderr);
		_exit(SERVE_EXIT_INTERRUPTED); /* a run that would not stop holds an engine: no teardown */
	}
	/* the answers of the last questions (503 ECANCELED after Ctrl-C) go out
	 * before libmicrohttpd shuts the connections */
	for (int64_t until = serve_now_ms() + ANSWERS_WAIT_MS; door_busy_connections(s->door) > 0 && serve_now_ms() < until;) {
		struct timespec ts = {0, SIGNAL_POLL_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
	door_stop(s->door);
	MHD_stop_daemon(d);
	rc = sig == SIGINT ? SERVE_EXIT_INTERRUPTED : SERVE_EXIT_OK;
done:
	door_free(s->door);
	sessions_free(s->sessions);
	sessions_free(s->conversations);
	metrics_free(s->metrics);
	routes_teardown(s);
	server_teardown(s);
	free(s);
	serve_log_flush();
	return rc;
}
