/* routes.h -- one HTTP request of `convbi serve`, the route handlers and
 * the front door (private to src/serve/: door.c accepts, server.c checks,
 * routes.c answers). */
#ifndef CONVBI_SERVE_ROUTES_H
#define CONVBI_SERVE_ROUTES_H

#include <microhttpd.h>

#include "serve/serve.h"

struct request {
	struct MHD_Connection *conn;
	int64_t start_ms;
	const char *route; /* the route's template, for logs and metrics */
	char method[16];
	char *body; /* owned, NUL-terminated */
	size_t len;
	int too_big, refused;
	int token; /* index into server.tokens, -1 = none */
	int status;
	int fd; /* the client's socket, to notice it leaving */
	char origin[256];
	int origin_ok;
	const char *allow; /* for 405: the methods the path takes */
	int keep;          /* the connection stays open after the answer (else `Connection: close`) */
};

enum MHD_Result respond(struct request *req, int status, const char *type, const char *body, size_t len, const char *retry_after);
enum MHD_Result respond_json(struct request *req, int status, const char *json);
/* respond_json handing json (malloc'd) to libmicrohttpd: no copy; freed
 * with the response. */
enum MHD_Result respond_json_owned(struct request *req, int status, char *json);
/* The one error shape: {"error":{"code":CODE,"message":MESSAGE}}; 503s
 * carry Retry-After. */
enum MHD_Result respond_error(struct request *req, int status, const char *code, const char *message);
/* 0 once the peer has closed the connection. */
int client_alive(int fd);
/* Request header `name` without leading and trailing blanks (RFC 9110
 * 5.5: SP and HTAB around a field value are no part of it; libmicrohttpd
 * drops only the leading ones): the value itself when it ends in none,
 * else a trimmed copy in buf (cap bytes; a value too long for it is
 * returned as sent).  NULL when the request has no such header. */
const char *serve_header(struct MHD_Connection *c, const char *name, char *buf, size_t cap);

/* ---- the front door (door.c) ---------------------------------------------- */
/* A door on the listening socket lfd (taken on success), sized by
 * s->cfg.max_connections (fewer when descriptors do not allow it).  NULL
 * when out of memory or descriptors. */
struct door *door_new(struct server *s, int lfd);
/* How many connections it keeps at most: libmicrohttpd's limit must be above. */
int door_limit(const struct door *dr);
/* Starts accepting for d (started with MHD_USE_NO_LISTEN_SOCKET and
 * door_notify); 0, or -1 when the thread does not start. */
int door_start(struct door *dr, struct MHD_Daemon *d);
/* Stops accepting: the thread ends, the listening socket and the
 * connections still waiting for a head are closed. */
void door_stop(struct door *dr);
/* Frees it, after MHD_stop_daemon (it takes NULL). */
void door_free(struct door *dr);
/* Writes status with the JSON error shape on fd, with Connection: close
 * (the caller closes or shuts it down).  The unread request is read away
 * first, so the close sends FIN, not a reset that could destroy the
 * answer. */
void door_write_error(int fd, int status, const char *code, const char *message);
/* libmicrohttpd's MHD_OPTION_NOTIFY_CONNECTION callback (cls = the door). */
void door_notify(void *cls, struct MHD_Connection *c, void **socket_context, enum MHD_ConnectionNotificationCode toe);
/* A request on c is being answered (no deadline). */
void door_request_begin(struct door *dr, struct MHD_Connection *c);
/* A request on c was answered: the next must be complete within the
 * request timeout.  With keep_alive (libmicrohttpd keeps the connection)
 * it waits, on c's thread, for the next request head and checks it as the
 * first one was (door.c), refusing it in the JSON shape when it fails. */
void door_request_end(struct door *dr, struct MHD_Connection *c, int keep_alive);
/* 0 when libmicrohttpd may hold bytes of c's requests the door did not
 * look at (pipelined, or after a chunked body): the answer must close the
 * connection. */
int door_request_tracked(struct door *dr, struct MHD_Connection *c);
/* Connections whose request is being answered now. */
int door_busy_connections(struct door *dr);

int routes_setup(struct server *s);
void routes_teardown(struct server *s);
enum MHD_Result routes_dispatch(struct server *s, struct request *req, const char *method, const char *url);

#endif
