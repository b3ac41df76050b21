/* routes.h -- one HTTP request of `convbi serve` and the route handlers
 * (private to src/serve/: server.c accepts and checks, routes.c answers). */
#ifndef CONVBI_SERVE_ROUTES_H
#define CONVBI_SERVE_ROUTES_H

#include <microhttpd.h>

#include "serve/serve.h"

struct request {
	struct MHD_Connection *conn;
	int64_t start_ms;
	const char *route;         /* the route's template, for logs and metrics */
	char method[16];
	char *body;                /* owned, NUL-terminated */
	size_t len;
	int too_big, refused;
	int token;                 /* index into server.tokens, -1 = none */
	int status;
	int fd;                    /* the client's socket, to notice it leaving */
	char origin[256];
	int origin_ok;
	const char *allow;         /* for 405: the methods the path takes */
};

enum MHD_Result respond(struct request *req, int status, const char *type, const char *body, size_t len,
                        const char *retry_after);
enum MHD_Result respond_json(struct request *req, int status, const char *json);
/* The one error shape: {"error":{"code":CODE,"message":MESSAGE}}; 503s
 * carry Retry-After. */
enum MHD_Result respond_error(struct request *req, int status, const char *code, const char *message);
/* 0 once the peer has closed the connection. */
int client_alive(int fd);

int routes_setup(struct server *s);
void routes_teardown(struct server *s);
enum MHD_Result routes_dispatch(struct server *s, struct request *req, const char *method, const char *url);

#endif
