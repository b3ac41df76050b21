/* mcp_stdio.c -- `convbi mcp`: MCP over stdio.  One JSON-RPC message per
 * line on stdin, one reply per line on stdout (nothing else is ever
 * written there; replies are written whole under a lock), logs on stderr.
 * tools/call of ask or run_sql runs on a worker thread (at most MCP_CALLS_MAX at once; the
 * reader waits for one to end beyond that), so ping, tools/list and
 * notifications/cancelled are answered while an ask runs; the others are
 * handled in order on the reader.  notifications/cancelled interrupts the
 * call of its requestId.  A line longer than MCP_LINE_MAX_BYTES is
 * answered with a parse error and skipped.  EOF on stdin ends the server
 * once the running calls are answered (canceled at once when stdout's
 * reader is gone).
 *
 * Signals: SIGTERM and SIGINT (Ctrl-C) cancel every running call at once;
 * each is answered (the canceled tool result, ECANCELED) within
 * MCP_CANCEL_WAIT_MS, then the process exits -- 0 after SIGTERM when every
 * call was answered (1 when one was not), 130 after SIGINT (attack5 F11).
 * A thread of its own waits for them (sigwait); every other thread has
 * them blocked.
 */
#include <cjson/cJSON.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/serve.h"

#define MCP_LINE_MAX_BYTES (1u << 20)
#define MCP_CALLS_MAX 16        /* tools/call running at once on worker threads */
#define MCP_CANCEL_WAIT_MS 5000 /* on SIGTERM/SIGINT: how long canceled calls get to answer */

/* A tools/call on its worker thread. */
struct call {
	struct stdio_mcp *io;
	char *text; /* the message */
	size_t len;
	char *id; /* its id as JSON text, for notifications/cancelled */
	struct mcp_cancel cancel;
	struct call *next;
};

struct stdio_mcp {
	struct server *s;
	pthread_mutex_t lock; /* calls, ncalls, and stdout */
	pthread_cond_t ended;
	struct call *calls;
	int ncalls;
	int stopping; /* a signal came: calls are canceled as they start */
};

static void write_reply(struct stdio_mcp *io, char *reply)
{
	if (!reply)
		return;
	pthread_mutex_lock(&io->lock);
	fputs(reply, stdout);
	fputc('\n', stdout);
	fflush(stdout);
	pthread_mutex_unlock(&io->lock);
	free(reply);
}

static void call_free(struct call *c)
{
	mcp_cancel_destroy(&c->cancel);
	free(c->text);
	free(c->id);
	free(c);
}

static void *call_run(void *payload)
{
	struct call *c = payload;
	struct stdio_mcp *io = c->io;
	char *reply = NULL;
	int fresh;
	mcp_handle(io->s->mcp, -1, c->text, c->len, NULL, NULL, &c->cancel, &reply, &fresh);
	write_reply(io, reply);
	pthread_mutex_lock(&io->lock);
	for (struct call **p = &io->calls; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	io->ncalls--;
	pthread_cond_broadcast(&io->ended);
	pthread_mutex_unlock(&io->lock);
	call_free(c);
	return NULL;
}

/* Starts a tools/call on a worker; 0, or -1 when no thread could start
 * (the caller handles it in order). */
static int call_start(struct stdio_mcp *io, const char *text, size_t len, const cJSON *id)
{
	struct call *c = calloc(1, sizeof *c);
	char *t = c ? malloc(len + 1) : NULL;
	char *idt = t ? cJSON_PrintUnformatted(id) : NULL;
	if (!idt) {
		free(t);
		free(c);
		return -1;
	}
	memcpy(t, text, len);
	t[len] = '\0';
	*c = (struct call){.io = io, .text = t, .len = len, .id = idt};
	mcp_cancel_init(&c->cancel);
	pthread_mutex_lock(&io->lock);
	while (io->ncalls >= MCP_CALLS_MAX)
		pthread_cond_wait(&io->ended, &io->lock);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_t th;
	if (io->stopping)
		mcp_cancel_fire(&c->cancel); /* answered at once, as canceled */
	c->next = io->calls;
	io->calls = c;
	io->ncalls++;
	int rc = pthread_create(&th, &attr, call_run, c);
	pthread_attr_destroy(&attr);
	if (rc) {
		io->calls = c->next;
		io->ncalls--;
	}
	pthread_mutex_unlock(&io->lock);
	if (rc)
		call_free(c);
	return rc ? -1 : 0;
}

/* Interrupts the running call whose id is `id` (JSON text); NULL = all. */
static void calls_cancel(struct stdio_mcp *io, const char *id)
{
	pthread_mutex_lock(&io->lock);
	for (struct call *c = io->calls; c; c = c->next)
		if (!id || !strcmp(c->id, id))
			mcp_cancel_fire(&c->cancel);
	pthread_mutex_unlock(&io->lock);
}

/* EOF: the calls still running finish and are answered, unless nobody
 * reads stdout any more (its reader closed the pipe): then they are
 * canceled at once. */
static void wait_calls(struct stdio_mcp *io)
{
	pthread_mutex_lock(&io->lock);
	while (io->ncalls > 0) {
		struct pollfd p = {.fd = fileno(stdout), .events = 0};
		if (poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP))) {
			for (struct call *c = io->calls; c; c = c->next)
				mcp_cancel_fire(&c->cancel);
		}
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 100 * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&io->ended, &io->lock, &until);
	}
	pthread_mutex_unlock(&io->lock);
}

/* Waits for SIGTERM or SIGINT (blocked in every thread), cancels the
 * running calls, waits for their answers, then ends the process. */
static void *signal_run(void *payload)
{
	struct stdio_mcp *io = payload;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	int sig = 0;
	while (sigwait(&set, &sig) || (sig != SIGTERM && sig != SIGINT))
		;
	pthread_mutex_lock(&io->lock);
	io->stopping = 1;
	int n = io->ncalls;
	for (struct call *c = io->calls; c; c = c->next)
		mcp_cancel_fire(&c->cancel);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += MCP_CANCEL_WAIT_MS / 1000;
	while (io->ncalls > 0 && pthread_cond_timedwait(&io->ended, &io->lock, &until) == 0)
		;
	fflush(stdout); /* under the lock: no reply is half written */
	fprintf(stderr, "convbi mcp: %s: %d call(s) in flight canceled and answered%s; exiting\n",
	        sig == SIGINT ? "interrupted" : "terminated", n - (io->ncalls < n ? io->ncalls : n),
	        io->ncalls ? ", the others did not stop in time" : "");
	_exit(sig == SIGINT ? SERVE_EXIT_INTERRUPTED : io->ncalls ? SERVE_EXIT_FAIL : SERVE_EXIT_OK);
	return NULL;
}

/* 1 for the tools that may run long (ask, run_sql); the others are
 * answered in order. */
static int slow_tool(const cJSON *msg)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(msg, "params"), "name");
	return cJSON_IsString(name) && (!strcmp(name->valuestring, "ask") || !strcmp(name->valuestring, "run_sql"));
}

/* Handles one message: 1 when it was taken off the reader (a tools/call on
 * a worker, or notifications/cancelled), 0 when the caller handles it. */
static int dispatch(struct stdio_mcp *io, const char *text, size_t len)
{
	cJSON *msg = cJSON_ParseWithLength(text, len);
	const cJSON *method = cJSON_GetObjectItemCaseSensitive(msg, "method");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
	int taken = 0;
	char why[300], field[64];
	if (cJSON_IsString(method) && !strcmp(method->valuestring, "notifications/cancelled") && !id) {
		const cJSON *params = cJSON_GetObjectItemCaseSensitive(msg, "params");
		const cJSON *rid = cJSON_GetObjectItemCaseSensitive(params, "requestId");
		char *t = cJSON_IsString(rid) || cJSON_IsNumber(rid) ? cJSON_PrintUnformatted(rid) : NULL;
		if (t)
			calls_cancel(io, t);
		free(t);
		taken = 1; /* a notification: no reply */
	} else if (cJSON_IsString(method) && !strcmp(method->valuestring, "tools/call") &&
	           (cJSON_IsString(id) || cJSON_IsNumber(id)) && slow_tool(msg) &&
	           !input_check_json(text, len, why, sizeof why, field, sizeof field, NULL,
	                             0)) { /* a bad one is answered in order */
		taken = !call_start(io, text, len, id);
	}
	cJSON_Delete(msg);
	return taken;
}

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
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread: signal_run takes them */
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
	s->conversations = sessions_new(c.max_conversations, c.session_idle_s);
	if (s->conversations)
		sessions_set_lru(s->conversations);
	s->metrics = metrics_new();
	s->mcp = mcp_new(s);
	struct stdio_mcp io = {.s = s, .lock = PTHREAD_MUTEX_INITIALIZER, .ended = PTHREAD_COND_INITIALIZER};
	rc = s->conversations && s->metrics && s->mcp ? SERVE_EXIT_OK : SERVE_EXIT_FAIL;
	pthread_t sig_thread;
	if (!rc && pthread_create(&sig_thread, NULL, signal_run, &io))
		rc = SERVE_EXIT_FAIL;
	else if (!rc)
		pthread_detach(sig_thread);
	if (!rc)
		fprintf(stderr, "convbi mcp: ready on stdio (%d database%s)\n", s->ndbs, s->ndbs == 1 ? "" : "s");
	if (!rc && s->no_model)
		fprintf(stderr,
		        "convbi mcp: warning: no model endpoint is configured (give --config FILE, $CONVBI_CONFIG or the "
		        "AZURE_OPENAI_ENDPOINT_0... variables): ask fails with ENOENDPOINT; run_sql, schema and "
		        "list_databases work\n");
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
			if (!dispatch(&io, line, (size_t)n))
				mcp_handle(s->mcp, -1, line, (size_t)n, NULL, NULL, NULL, &reply, &fresh);
		}
		write_reply(&io, reply);
		sessions_expire(s->conversations);
	}
	wait_calls(&io);
	mcp_free(s->mcp);
	sessions_free(s->conversations);
	metrics_free(s->metrics);
	server_teardown(s);
	free(s);
	free(line);
	return rc;
}
