/* measure.c -- the measurements declared in measure.h, read from /proc
 * and wait4.
 *
 * The disk sample walks /proc/PID/fd, resolves each link and, for a link
 * under the directory (a deleted file's link ends in " (deleted)"),
 * fstat()s it through /proc/PID/fd/N: st_blocks counts what is allocated,
 * delayed allocation included, so a sparse or still-cached file counts
 * what it really holds.  Sampling can miss a peak shorter than
 * MEASURE_SAMPLE_US; the bounds tested are far above what one sample
 * interval can write.
 */
#include "measure.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int64_t tu_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tu_span_start(struct tu_span *s)
{
	s->wait_ms = tu_wait_ms(0);
	s->t0_ms = tu_mono_ms();
}

int64_t tu_span_wall_ms(const struct tu_span *s)
{
	return tu_mono_ms() - s->t0_ms;
}

int64_t tu_span_ms(const struct tu_span *s)
{
	int64_t wall = tu_span_wall_ms(s);
	int64_t w = s->wait_ms >= 0 ? tu_wait_ms(0) : -1;
	int64_t waited = w >= 0 ? w - s->wait_ms : 0; /* < 0 when a waiting thread has exited since */
	if (waited < 0)
		waited = 0;
	return waited < wall ? wall - waited : 0;
}

static void proc_path(char *out, size_t n, pid_t pid, const char *rest)
{
	if (pid)
		snprintf(out, n, "/proc/%d/%s", (int)pid, rest);
	else
		snprintf(out, n, "/proc/self/%s", rest);
}

int64_t tu_open_bytes(pid_t pid, const char *dir)
{
	char fds[64], canon[PATH_MAX];
	if (!dir || !realpath(dir, canon))
		return 0;
	size_t clen = strlen(canon);
	proc_path(fds, sizeof fds, pid, "fd");
	DIR *d = opendir(fds);
	if (!d)
		return 0;
	int64_t total = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char link[PATH_MAX + 80], target[PATH_MAX];
		snprintf(link, sizeof link, "%s/%s", fds, e->d_name);
		ssize_t n = readlink(link, target, sizeof target - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if ((size_t)n <= clen || strncmp(target, canon, clen) || target[clen] != '/')
			continue;
		struct stat st;
		if (stat(link, &st) == 0 && S_ISREG(st.st_mode))
			total += (int64_t)st.st_blocks * 512;
	}
	closedir(d);
	return total;
}

int64_t tu_wait_ms(pid_t pid)
{
	char tasks[64];
	proc_path(tasks, sizeof tasks, pid, "task");
	DIR *d = opendir(tasks);
	if (!d)
		return -1;
	int64_t ns = 0;
	int seen = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char path[PATH_MAX];
		snprintf(path, sizeof path, "%s/%s/schedstat", tasks, e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		unsigned long long on_cpu, waiting;
		if (fscanf(f, "%llu %llu", &on_cpu, &waiting) == 2) {
			ns += (int64_t)waiting;
			seen = 1;
		}
		fclose(f);
	}
	closedir(d);
	return seen ? ns / 1000000 : -1;
}

static int64_t status_kb(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	char line[256];
	int64_t kb = -1;
	size_t n = strlen(field);
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, field, n) && line[n] == ':') {
			kb = strtoll(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

int64_t tu_rss_kb(void)
{
	return status_kb("VmRSS");
}

int64_t tu_rss_peak_kb(void)
{
	return status_kb("VmHWM");
}

int tu_rss_peak_reset(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = write(fd, "5", 1) == 1 ? 0 : -1;
	close(fd);
	return rc;
}

int tu_watch(pid_t pid, const char *dir, int timeout_ms, struct tu_usage *out)
{
	int64_t start = tu_mono_ms();
	memset(out, 0, sizeof *out);
	out->status = -1;
	for (;;) {
		int status;
		struct rusage ru;
		pid_t got = wait4(pid, &status, WNOHANG, &ru);
		if (got == pid) {
			out->wall_ms = tu_mono_ms() - start;
			out->rss_peak_kb = ru.ru_maxrss;
			out->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
			return 0;
		}
		if (got < 0 && errno != EINTR)
			return -1;
		int64_t bytes = tu_open_bytes(pid, dir);
		if (bytes > out->temp_peak)
			out->temp_peak = bytes;
		int64_t w = tu_wait_ms(pid);
		if (w > out->wait_ms)
			out->wait_ms = w;
		if (timeout_ms > 0 && tu_mono_ms() - start > timeout_ms)
			kill(pid, SIGKILL);
		struct timespec ts = {0, MEASURE_SAMPLE_US * 1000L};
		nanosleep(&ts, NULL);
	}
}

/* ---- the in-process sampler ------------------------------------------------------ */

static struct {
	pthread_t thread;
	char dir[PATH_MAX];
	atomic_int stop;
	_Atomic int64_t peak;
} sampler;

static void *sample(void *p)
{
	(void)p;
	while (!atomic_load(&sampler.stop)) {
		int64_t bytes = tu_open_bytes(0, sampler.dir);
		if (bytes > atomic_load(&sampler.peak))
			atomic_store(&sampler.peak, bytes);
		struct timespec ts = {0, MEASURE_SAMPLE_US * 1000L};
		nanosleep(&ts, NULL);
	}
	return NULL;
}

int tu_sampler_start(const char *dir)
{
	snprintf(sampler.dir, sizeof sampler.dir, "%s", dir);
	atomic_store(&sampler.stop, 0);
	atomic_store(&sampler.peak, 0);
	return pthread_create(&sampler.thread, NULL, sample, NULL) ? -1 : 0;
}

int64_t tu_sampler_stop(void)
{
	atomic_store(&sampler.stop, 1);
	pthread_join(sampler.thread, NULL);
	/* one last look: a file still open now counts too */
	int64_t bytes = tu_open_bytes(0, sampler.dir);
	int64_t peak = atomic_load(&sampler.peak);
	return bytes > peak ? bytes : peak;
}

/* ---- the run-queue delay after a deadline -----------------------------------------
 *
 * The thread's own wake-up can come late on a busy machine, and what the
 * other threads waited between the deadline and that wake-up is already
 * in the reading it takes then; so the time it woke late counts as
 * waiting too (a thread that sleeps needs nothing but a CPU to wake). */

static struct {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake; /* on CLOCK_MONOTONIC */
	struct timespec at;  /* the deadline */
	int stop;            /* 1 = the run ended */
	int64_t wait;        /* tu_wait_ms(0) when the thread woke; -1 = not reached */
	int64_t woke_late;   /* ms between the deadline and the thread's wake-up */
} dl = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *deadline_thread(void *p)
{
	(void)p;
	pthread_mutex_lock(&dl.lock);
	while (!dl.stop)
		if (pthread_cond_timedwait(&dl.wake, &dl.lock, &dl.at) == ETIMEDOUT) {
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			dl.woke_late = (int64_t)(now.tv_sec - dl.at.tv_sec) * 1000 + (now.tv_nsec - dl.at.tv_nsec) / 1000000;
			dl.wait = tu_wait_ms(0);
			break;
		}
	pthread_mutex_unlock(&dl.lock);
	return NULL;
}

int tu_deadline_start(int64_t ms)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&dl.wake, &ca);
	pthread_condattr_destroy(&ca);
	clock_gettime(CLOCK_MONOTONIC, &dl.at);
	dl.at.tv_sec += ms / 1000;
	dl.at.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (dl.at.tv_nsec >= 1000000000L) {
		dl.at.tv_sec++;
		dl.at.tv_nsec -= 1000000000L;
	}
	dl.stop = 0;
	dl.wait = -1;
	dl.woke_late = 0;
	if (pthread_create(&dl.thread, NULL, deadline_thread, NULL)) {
		pthread_cond_destroy(&dl.wake);
		return -1;
	}
	return 0;
}

int64_t tu_deadline_wait_ms(void)
{
	pthread_mutex_lock(&dl.lock);
	dl.stop = 1;
	pthread_cond_signal(&dl.wake);
	pthread_mutex_unlock(&dl.lock);
	pthread_join(dl.thread, NULL);
	pthread_cond_destroy(&dl.wake);
	int64_t now = tu_wait_ms(0);
	if (dl.wait < 0)
		return 0;
	return (now >= dl.wait ? now - dl.wait : 0) + (dl.woke_late > 0 ? dl.woke_late : 0);
}
