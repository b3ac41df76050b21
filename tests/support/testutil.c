/* testutil.c -- the helpers declared in testutil.h.
 *
 * tu_run is the only subtle one: it must never deadlock on a child that
 * writes a lot to both streams while we are still feeding its stdin, so one
 * poll loop services all three pipes at once.  SIGPIPE (a child that exits
 * without reading its stdin) is blocked in the calling thread for the
 * duration and any pending one is consumed, so the test process never dies
 * of it; the child gets a clean signal mask before exec.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SCRATCH_DIR
#define SCRATCH_DIR "/tmp"
#endif

int64_t tu_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int mkdir_p(const char *path)
{
	char tmp[4096];
	size_t n = strlen(path);
	if (n >= sizeof tmp)
		return -1;
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0777) && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(tmp, 0777) && errno != EEXIST ? -1 : 0;
}

char *tu_mkdtemp(const char *tag)
{
	if (mkdir_p(SCRATCH_DIR))
		return NULL;
	size_t n = strlen(SCRATCH_DIR) + strlen(tag) + 16;
	char *path = malloc(n);
	if (!path)
		return NULL;
	snprintf(path, n, "%s/%s-XXXXXX", SCRATCH_DIR, tag);
	if (!mkdtemp(path)) {
		free(path);
		return NULL;
	}
	return path;
}

char *tu_path(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

int tu_rmtree(const char *path)
{
	struct stat st;
	if (lstat(path, &st))
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlink(path);
	int rc = 0;
	DIR *d = opendir(path);
	if (!d)
		return -1;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		size_t n = strlen(path) + strlen(e->d_name) + 2;
		char *child = malloc(n);
		if (!child) {
			rc = -1;
			continue;
		}
		snprintf(child, n, "%s/%s", path, e->d_name);
		if (tu_rmtree(child))
			rc = -1;
		free(child);
	}
	closedir(d);
	if (rmdir(path))
		rc = -1;
	return rc;
}

int tu_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	size_t n = strlen(text);
	int ok = fwrite(text, 1, n, f) == n;
	if (fclose(f))
		ok = 0;
	return ok ? 0 : -1;
}

char *tu_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0, got;
	char *buf = malloc(cap);
	while (buf) {
		if (cap - n < 4096) {
			char *p = realloc(buf, cap * 2);
			if (!p) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = p;
			cap *= 2;
		}
		got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
		if (got == 0)
			break;
	}
	int bad = ferror(f);
	fclose(f);
	if (!buf || bad) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

uint64_t tu_file_checksum(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	uint64_t h = 0xcbf29ce484222325ull;
	unsigned char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		for (size_t i = 0; i < n; i++)
			h = (h ^ buf[i]) * 0x100000001b3ull;
	fclose(f);
	return h;
}

int tu_contains(const char *hay, const char *needle)
{
	return hay && needle && strstr(hay, needle) != NULL;
}

/* ---- tu_run -------------------------------------------------------------- */

struct sink {
	char *p;
	size_t len, cap;
};

static int sink_add(struct sink *s, const char *p, size_t n)
{
	if (s->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		while (cap < s->len + n + 1)
			cap *= 2;
		char *q = realloc(s->p, cap);
		if (!q)
			return -1;
		s->p = q;
		s->cap = cap;
	}
	memcpy(s->p + s->len, p, n);
	s->len += n;
	s->p[s->len] = '\0';
	return 0;
}

static char *sink_take(struct sink *s)
{
	if (!s->p)
		return strdup("");
	return s->p;
}

static void child_exec(const char *const argv[], int in[2], int out[2], int err[2])
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	dup2(in[0], 0);
	dup2(out[1], 1);
	dup2(err[1], 2);
	execvp(argv[0], (char *const *)argv);
	_exit(127);
}

int tu_run(const char *const argv[], const char *stdin_text, char **out, char **err, int timeout_ms)
{
	int in[2] = {-1, -1}, o[2] = {-1, -1}, e[2] = {-1, -1};
	struct sink so = {0}, se = {0};
	int status = -1, timed_out = 0;
	sigset_t pipe_set, old_set;

	if (out)
		*out = NULL;
	if (err)
		*err = NULL;
	if (pipe2(in, O_CLOEXEC) || pipe2(o, O_CLOEXEC) || pipe2(e, O_CLOEXEC))
		goto fail_pipes;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);

	pid_t pid = fork();
	if (pid < 0) {
		pthread_sigmask(SIG_SETMASK, &old_set, NULL);
		goto fail_pipes;
	}
	if (pid == 0)
		child_exec(argv, in, o, e);
	close(in[0]);
	close(o[1]);
	close(e[1]);
	in[0] = o[1] = e[1] = -1;

	const char *feed = stdin_text ? stdin_text : "";
	size_t feed_len = strlen(feed), fed = 0;
	if (feed_len == 0) {
		close(in[1]);
		in[1] = -1;
	} else {
		fcntl(in[1], F_SETFL, O_NONBLOCK);
	}
	int64_t deadline = timeout_ms > 0 ? tu_now_ms() + timeout_ms : -1;
	while (o[0] >= 0 || e[0] >= 0) {
		struct pollfd p[3];
		int np = 0, io = -1, ie = -1, ii = -1;
		if (o[0] >= 0)
			p[io = np++] = (struct pollfd){o[0], POLLIN, 0};
		if (e[0] >= 0)
			p[ie = np++] = (struct pollfd){e[0], POLLIN, 0};
		if (in[1] >= 0)
			p[ii = np++] = (struct pollfd){in[1], POLLOUT, 0};
		int wait = -1;
		if (deadline >= 0) {
			int64_t left = deadline - tu_now_ms();
			if (left <= 0) {
				timed_out = 1;
				break;
			}
			wait = (int)left;
		}
		if (poll(p, (nfds_t)np, wait) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		char buf[65536];
		int fds[2] = {io, ie};
		struct sink *sinks[2] = {&so, &se};
		int *ends[2] = {&o[0], &e[0]};
		for (int k = 0; k < 2; k++) {
			if (fds[k] < 0 || !(p[fds[k]].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t n = read(*ends[k], buf, sizeof buf);
			if (n > 0) {
				sink_add(sinks[k], buf, (size_t)n);
			} else if (n == 0 || errno != EINTR) {
				close(*ends[k]);
				*ends[k] = -1;
			}
		}
		if (ii >= 0 && (p[ii].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t n = write(in[1], feed + fed, feed_len - fed);
			if (n > 0)
				fed += (size_t)n;
			if ((n < 0 && errno != EAGAIN && errno != EINTR) || fed == feed_len) {
				close(in[1]);
				in[1] = -1;
			}
		}
	}
	/* the pipes are closed; the child may still run (it closed them, or a
	 * grandchild holds them): reap it within the same deadline */
	int ws = 0;
	for (;;) {
		if (timed_out)
			kill(pid, SIGKILL);
		pid_t r = waitpid(pid, &ws, timed_out ? 0 : WNOHANG);
		if (r == pid || (r < 0 && errno != EINTR))
			break;
		if (r == 0) {
			if (deadline >= 0 && tu_now_ms() >= deadline)
				timed_out = 1;
			else
				usleep(2000);
		}
	}
	if (!timed_out)
		status = WIFEXITED(ws) ? WEXITSTATUS(ws) : WIFSIGNALED(ws) ? 128 + WTERMSIG(ws) : -1;

	struct timespec zero = {0, 0};
	while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
		; /* swallow a SIGPIPE our writes raised */
	pthread_sigmask(SIG_SETMASK, &old_set, NULL);
	goto done;

fail_pipes:
	status = -1;
done:
	for (int k = 0; k < 2; k++) {
		if (in[k] >= 0)
			close(in[k]);
		if (o[k] >= 0)
			close(o[k]);
		if (e[k] >= 0)
			close(e[k]);
	}
	if (out)
		*out = sink_take(&so);
	else
		free(so.p);
	if (err)
		*err = sink_take(&se);
	else
		free(se.p);
	return status;
}

int tu_copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	int rc = in && out ? 0 : -1;
	char block[65536];
	size_t n;
	while (!rc && (n = fread(block, 1, sizeof block, in)) > 0)
		if (fwrite(block, 1, n, out) != n)
			rc = -1;
	if (in && ferror(in))
		rc = -1;
	if (in)
		fclose(in);
	if (out && fclose(out))
		rc = -1;
	return rc;
}

int tu_free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0;
	if (fd >= 0)
		close(fd);
	return ok ? ntohs(a.sin_port) : -1;
}
