/* main.c -- the fake Azure OpenAI server's command line and lifecycle.
 *
 *   fake_aoai --scenario FILE --port-file FILE [--log FILE]
 *
 * Loads the scenario (a problem: one line on stderr, exit 2), binds one
 * listening socket per endpoint on 127.0.0.1 port 0 (the kernel picks),
 * then writes the port file atomically (FILE.tmp, then rename) with one
 * "NAME PORT\n" line per endpoint in scenario order: once the file exists,
 * every port accepts.  One acceptor thread per endpoint; one detached thread
 * per connection (route.c), with TCP_NODELAY so SSE events leave at once.
 *
 * Signals: SIGTERM/SIGINT/SIGHUP are blocked in every thread and taken by
 * main with sigwait, so no handler ever runs inside a connection thread.
 * On one, main seals the log (flushed, locked, so no line is half written)
 * and _exits 0; the kernel closes every socket, which is exactly what a
 * hung or stalled client should see when the server goes away.  SIGPIPE is
 * ignored (sends use MSG_NOSIGNAL anyway).
 */
#include "fake_aoai.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONN_STACK_BYTES (512u << 10)

static struct server srv;

static void usage(void)
{
	fputs("usage: fake_aoai --scenario FILE --port-file FILE [--log FILE]\n", stderr);
	exit(2);
}

static int listen_on(struct endpoint *e)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof sa;
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = 0;
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 1024) || getsockname(fd, (struct sockaddr *)&sa, &len)) {
		close(fd);
		return -1;
	}
	e->listen_fd = fd;
	e->port = ntohs(sa.sin_port);
	return 0;
}

static int write_port_file(const char *path)
{
	struct sbuf tmp = SBUF_INIT;
	sb_printf(&tmp, "%s.tmp", path);
	FILE *f = fopen(tmp.p, "w");
	int rc = -1;
	if (f) {
		for (int i = 0; i < srv.sc.nep; i++)
			fprintf(f, "%s %d\n", srv.sc.ep[i].name, srv.sc.ep[i].port);
		rc = fclose(f) == 0 ? rename(tmp.p, path) : -1;
	}
	sb_release(&tmp);
	return rc;
}

/* Accepts forever.  Transient failures (a peer that gave up in the queue,
 * running out of descriptors) must not end the endpoint, so they back off
 * briefly and go on. */
static void *acceptor(void *arg)
{
	struct endpoint *e = arg;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, CONN_STACK_BYTES);
	for (;;) {
		int fd = accept4(e->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EINTR && errno != ECONNABORTED)
				usleep(10000);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		struct conn *c = xcalloc(1, sizeof *c);
		c->fd = fd;
		c->srv = &srv;
		c->ep = e;
		c->rng = rng_seed();
		pthread_t t;
		if (pthread_create(&t, &attr, route_connection, c) != 0) {
			close(fd);
			free(c);
			usleep(10000);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *scenario = NULL, *port_file = NULL, *log_path = NULL;
	char err[1024];

	for (int i = 1; i < argc; i++) {
		const char **slot = NULL;
		if (strcmp(argv[i], "--scenario") == 0)
			slot = &scenario;
		else if (strcmp(argv[i], "--port-file") == 0)
			slot = &port_file;
		else if (strcmp(argv[i], "--log") == 0)
			slot = &log_path;
		if (!slot || i + 1 >= argc)
			usage();
		*slot = argv[++i];
	}
	if (!scenario || !port_file)
		usage();

	if (scenario_load(&srv.sc, scenario, err, sizeof err)) {
		fprintf(stderr, "fake_aoai: %s\n", err);
		return 2;
	}
	entra_init(&srv.tokens);
	if (reqlog_open(&srv, log_path)) {
		fprintf(stderr, "fake_aoai: cannot open the log %s: %s\n", log_path, strerror(errno));
		return 2;
	}

	/* A shell's background job inherits SIGINT ignored, and POSIX leaves it
	 * unspecified whether a blocked, ignored signal stays pending for
	 * sigwait (Linux keeps it; others may drop it).  Default dispositions
	 * first, then block, then sigwait. */
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);

	for (int i = 0; i < srv.sc.nep; i++) {
		if (listen_on(&srv.sc.ep[i])) {
			fprintf(stderr, "fake_aoai: cannot listen on 127.0.0.1 for endpoint %s: %s\n", srv.sc.ep[i].name,
			        strerror(errno));
			return 2;
		}
	}
	for (int i = 0; i < srv.sc.nep; i++) {
		if (pthread_create(&srv.sc.ep[i].acceptor, NULL, acceptor, &srv.sc.ep[i]) != 0) {
			fprintf(stderr, "fake_aoai: cannot start a thread: %s\n", strerror(errno));
			return 2;
		}
	}
	if (write_port_file(port_file)) {
		fprintf(stderr, "fake_aoai: cannot write the port file %s: %s\n", port_file, strerror(errno));
		return 2;
	}

	int sig = 0;
	while (sigwait(&stop, &sig) != 0)
		;
	reqlog_seal(&srv);
	_exit(0);
}
