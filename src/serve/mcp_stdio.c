/* mcp_stdio.c -- `convbi mcp`: MCP over stdio.  One JSON-RPC message per
 * line on stdin, one reply per line on stdout (nothing else is ever
 * written there), logs on stderr.  Messages are handled in order; a line
 * longer than MCP_LINE_MAX_BYTES is answered with a parse error and
 * skipped.  EOF on stdin ends the server.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"

#define MCP_LINE_MAX_BYTES (1u << 20)

/* Reads one line (without its newline) into a buffer of cap bytes; returns
 * its length, -1 at EOF, -2 when it was longer than the cap (the rest of
 * the line is consumed). */
static long read_line(FILE *in, char *buf, size_t cap)
{
	size_t n = 0;
	int c, over = 0;
	while ((c = getc(in)) != EOF && c != '\n') {
		if (n + 1 < cap)
			buf[n++] = (char)c;
		else
			over = 1;
	}
	if (c == EOF && n == 0 && !over)
		return -1;
	buf[n] = '\0';
	return over ? -2 : (long)n;
}

int mcp_main(int argc, char **argv)
{
	struct serve_config c;
	int rc = serve_parse_args(&c, argc, argv, 1);
	if (rc)
		return rc;
	signal(SIGPIPE, SIG_IGN);
	struct server *s = calloc(1, sizeof *s);
	char *line = malloc(MCP_LINE_MAX_BYTES);
	rc = !s || !line ? SERVE_EXIT_FAIL : server_setup(s, &c);
	if (rc) {
		if (s)
			server_teardown(s);
		free(s);
		free(line);
		return rc;
	}
	s->sessions = sessions_new(c.max_sessions, c.session_idle_s);
	s->metrics = metrics_new();
	s->mcp = mcp_new(s);
	rc = s->sessions && s->metrics && s->mcp ? SERVE_EXIT_OK : SERVE_EXIT_FAIL;
	if (!rc)
		fprintf(stderr, "convbi mcp: ready on stdio (%d database%s)\n", s->ndbs, s->ndbs == 1 ? "" : "s");
	for (long n; !rc && (n = read_line(stdin, line, MCP_LINE_MAX_BYTES)) != -1;) {
		char *reply = NULL;
		int fresh;
		if (n == -2) {
			reply =
			        strdup("{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,"
			               "\"message\":\"Parse error: the message is longer than 1 MiB\"}}");
		} else {
			size_t k = strspn(line, " \t\r");
			if (!line[k])
				continue;
			mcp_handle(s->mcp, -1, line, (size_t)n, NULL, NULL, &reply, &fresh);
		}
		if (reply) {
			fputs(reply, stdout);
			fputc('\n', stdout);
			fflush(stdout);
			free(reply);
		}
		sessions_expire(s->sessions);
	}
	mcp_free(s->mcp);
	sessions_free(s->sessions);
	metrics_free(s->metrics);
	server_teardown(s);
	free(s);
	free(line);
	return rc;
}
