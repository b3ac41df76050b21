/* test_state.c -- the shared state file: creation, validation, fallback, many processes.
 *
 * Real files in a fresh directory under SCRATCH_DIR, real processes
 * (fork) and threads, real SIGKILL.  Warnings are captured through
 * log_set_sink and counted: every rebuild or fallback must say so exactly
 * once, and a healthy reopen must say nothing.  Times are wall clock
 * where processes must agree, fixed values where a test steps time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "convbi/convbi.h"
#include "llm/config.h"
#include "llm/pool.h"
#include "llm/state.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/log.h"

#ifndef SCRATCH_DIR
#define SCRATCH_DIR "/tmp"
#endif

#define T0 ((int64_t)1700000000000)

static const struct pool_ep_cfg W123[] = {
        {"a", "https://a/dep", 0, 1, 0, 0},
        {"b", "https://b/dep", 0, 2, 0, 0},
        {"c", "https://c/dep", 0, 3, 0, 0},
};

static char dir[512]; /* this run's scratch directory */
static int warnings;  /* log_warn lines since warn_reset */
static char last_warning[1024];

static void sink(int level, const char *line, void *payload)
{
	if (level >= LOG_WARN) {
		warnings++;
		snprintf(last_warning, sizeof last_warning, "%s", line);
	}
}

static void warn_reset(void)
{
	warnings = 0;
	last_warning[0] = '\0';
}

static int setup(void **state)
{
	snprintf(dir, sizeof dir, "%s/test_state.XXXXXX", SCRATCH_DIR);
	mkdir(SCRATCH_DIR, 0700);
	if (!mkdtemp(dir))
		return -1;
	log_set_sink(sink, NULL, LOG_WARN);
	return 0;
}

static int teardown(void **state)
{
	log_set_sink(NULL, NULL, LOG_WARN);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void path_of(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", dir, name);
}

static struct pool *open_at(const char *path, const struct pool_ep_cfg *eps, size_t n)
{
	struct pool *p = NULL;
	struct err e = ERR_INIT;
	assert_int_equal(pool_open(&p, eps, n, path, &e), CONVBI_OK);
	assert_non_null(p);
	return p;
}

static int pick(struct pool *p, int64_t now)
{
	struct pool_pick k;
	if (pool_pick(p, now, 0, 0, &k) != CONVBI_OK)
		return -2;
	return k.ep;
}

static void report(struct pool *p, int ep, int64_t now, int cls, int64_t retry_after_ms)
{
	struct pool_outcome o = pool_outcome_of(cls);
	o.retry_after_ms = retry_after_ms;
	pool_report(p, ep, now, &o);
}

static size_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

static size_t layout_bytes(unsigned slots, unsigned tiers)
{
	return sizeof(struct state_header) + tiers * sizeof(struct state_counter) + slots * sizeof(struct state_slot) +
	       sizeof(struct state_spend_line);
}

static void write_bytes(const char *path, const void *p, size_t n)
{
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

/* ---- one process --------------------------------------------------------- */

static void creates_the_file_and_a_reopen_sees_the_same_state(void **state)
{
	char path[600];
	path_of(path, sizeof path, "reopen.state");
	warn_reset();
	struct pool *a = open_at(path, W123, 3);
	assert_int_equal(warnings, 0);
	assert_true(pool_is_shared(a));
	assert_string_equal(pool_state_path(a), path);
	assert_int_equal(file_size(path), layout_bytes(3, 1));
	assert_int_equal(file_size(path) % 64, 0);

	assert_int_equal(pick(a, T0), 2); /* counter 0: position 0 of c,b,a,c,b,c */
	report(a, 1, T0, POOL_RATE_LIMITED, 60000);
	report(a, 0, T0, POOL_OK, -1);

	struct pool *b = open_at(path, W123, 3);
	assert_int_equal(warnings, 0);
	struct pool_live lv;
	pool_live_get(b, 1, T0, &lv);
	assert_int_equal(lv.cool_until_ms, T0 + 60000);
	assert_int_equal(lv.rate_limited, 1);
	pool_live_get(b, 0, T0, &lv);
	assert_int_equal(lv.ok, 1);
	assert_int_equal(pick(b, T0), 0); /* counter 1 -> b, cooling -> skipped to a */
	pool_close(a);
	pool_close(b);

	b = open_at(path, W123, 3); /* the file outlives its openers */
	pool_live_get(b, 1, T0, &lv);
	assert_int_equal(lv.cool_until_ms, T0 + 60000);
	assert_int_equal(warnings, 0);
	pool_close(b);
}

static void default_path_follows_runtime_dir_and_the_endpoint_set(void **state)
{
	char *old_xdg = getenv("XDG_RUNTIME_DIR") ? strdup(getenv("XDG_RUNTIME_DIR")) : NULL;
	char *old_tmp = getenv("TMPDIR") ? strdup(getenv("TMPDIR")) : NULL;
	setenv("XDG_RUNTIME_DIR", dir, 1);
	warn_reset();
	struct pool *a = open_at(NULL, W123, 3);
	struct pool *b = open_at(NULL, W123, 2);
	assert_int_equal(warnings, 0);
	assert_true(pool_is_shared(a));
	assert_memory_equal(pool_state_path(a), dir, strlen(dir));
	assert_non_null(strstr(pool_state_path(a), "/convbi-"));
	assert_string_not_equal(pool_state_path(a), pool_state_path(b));
	pool_close(a);
	pool_close(b);

	unsetenv("XDG_RUNTIME_DIR");
	setenv("TMPDIR", dir, 1);
	a = open_at(NULL, W123, 3);
	char want[600];
	snprintf(want, sizeof want, "%s/convbi-%lu-", dir, (unsigned long)geteuid());
	assert_memory_equal(pool_state_path(a), want, strlen(want));
	pool_close(a);

	if (old_xdg)
		setenv("XDG_RUNTIME_DIR", old_xdg, 1);
	if (old_tmp)
		setenv("TMPDIR", old_tmp, 1);
	else
		unsetenv("TMPDIR");
	free(old_xdg);
	free(old_tmp);
}

/* A valid file for W123, read back into memory. */
static void *valid_image(const char *path, size_t *n)
{
	struct pool *p = open_at(path, W123, 3);
	pool_close(p);
	*n = file_size(path);
	void *img = malloc(*n);
	assert_non_null(img);
	int fd = open(path, O_RDONLY);
	assert_int_equal(read(fd, img, *n), (ssize_t)*n);
	close(fd);
	unlink(path);
	return img;
}

/* The first five are files of ours (rebuilt), the rest are not (left
 * alone): BAD_VERSION is a newer convbi's, BAD_OLDER an older one's, an
 * empty file is how a user clears one (`: > FILE`), BAD_SHORT one cut
 * inside its header. */
enum bad_kind {
	BAD_TRUNCATED,
	BAD_CHECKSUM,
	BAD_OLDER,
	BAD_EMPTY,
	BAD_SHORT,
	BAD_FOREIGN,
	BAD_VERSION,
	BAD_GARBAGE,
	BAD_SYMLINK,
	BAD_FIFO,
	BAD_NKINDS
};
#define BAD_FIRST_FOREIGN BAD_FOREIGN

static void make_bad(const char *path, int kind)
{
	size_t n;
	char *img = valid_image(path, &n);
	struct state_header *h = (struct state_header *)img;
	switch (kind) {
	case BAD_FOREIGN: write_bytes(path, "{\"counter\": 7}\n", 15); break;
	case BAD_EMPTY: write_bytes(path, "", 0); break;
	case BAD_TRUNCATED: write_bytes(path, img, n / 2); break;
	case BAD_SHORT: write_bytes(path, img, 100); break;
	case BAD_OLDER:
		h->version = STATE_VERSION - 1;
		h->checksum = state_hash(STATE_HASH_INIT, h, offsetof(struct state_header, checksum));
		write_bytes(path, img, n);
		break;
	case BAD_FIFO: assert_int_equal(mkfifo(path, 0600), 0); break;
	case BAD_VERSION:
		h->version = STATE_VERSION + 98;
		h->checksum = state_hash(STATE_HASH_INIT, h, offsetof(struct state_header, checksum));
		write_bytes(path, img, n);
		break;
	case BAD_GARBAGE:
		srand(7);
		for (size_t i = 0; i < n; i++)
			img[i] = (char)rand();
		write_bytes(path, img, n);
		break;
	case BAD_CHECKSUM:
		h->set_hash ^= 1; /* one bit flipped, checksum left as was */
		write_bytes(path, img, n);
		break;
	case BAD_SYMLINK: {
		char target[700];
		snprintf(target, sizeof target, "%s.target", path);
		write_bytes(target, "precious", 8);
		assert_int_equal(symlink(target, path), 0);
		break;
	}
	}
	free(img);
}

static const char *const bad_names[BAD_NKINDS] = {"truncated", "checksum", "older",   "empty",   "short",
                                                  "foreign",   "version",  "garbage", "symlink", "fifo"};

static void bad_files_of_ours_are_rebuilt_with_one_warning(void **state)
{
	for (int kind = 0; kind < BAD_FIRST_FOREIGN; kind++) {
		char path[600];
		path_of(path, sizeof path, bad_names[kind]);
		make_bad(path, kind);
		warn_reset();
		struct pool *p = open_at(path, W123, 3);
		if (warnings != 1)
			fail_msg("%s: %d warnings", bad_names[kind], warnings);
		assert_non_null(strstr(last_warning, "rebuilt"));
		assert_non_null(strstr(last_warning, path));
		assert_true(pool_is_shared(p));
		struct stat st;
		assert_int_equal(lstat(path, &st), 0);
		assert_true(S_ISREG(st.st_mode));
		assert_int_equal((size_t)st.st_size, layout_bytes(3, 1));
		assert_int_equal(pick(p, T0), 2);
		report(p, 0, T0, POOL_BROKEN, -1);

		warn_reset();
		struct pool *q = open_at(path, W123, 3); /* rebuilt once, healthy since */
		assert_int_equal(warnings, 0);
		struct pool_live lv;
		pool_live_get(q, 0, T0, &lv);
		assert_int_equal(lv.failures, 1);
		pool_close(q);
		pool_close(p);
	}
}

/* The bytes of path (a link's own target path for a link), for before/after. */
static size_t snapshot(const char *path, char *out, size_t cap, mode_t *mode)
{
	struct stat st;
	assert_int_equal(lstat(path, &st), 0);
	*mode = st.st_mode;
	if (S_ISLNK(st.st_mode))
		return (size_t)readlink(path, out, cap);
	if (!S_ISREG(st.st_mode))
		return 0;
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	ssize_t n = read(fd, out, cap);
	close(fd);
	return n < 0 ? 0 : (size_t)n;
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "opening the state hung on a non-regular file\n";
	(void)!write(2, msg, sizeof msg - 1);
	_exit(1);
}

/* A file convbi did not write -- the user's database named by mistake,
 * another program's data, a newer convbi's state, a link,
 * a FIFO -- is never replaced: a configured path is a clear error, the
 * default path falls back to in-process state with the same words. */
static void a_file_that_is_not_ours_is_never_touched(void **state)
{
	signal(SIGALRM, on_alarm);
	alarm(20);
	for (int kind = BAD_FIRST_FOREIGN; kind < BAD_NKINDS; kind++) {
		char path[600];
		path_of(path, sizeof path, bad_names[kind]);
		make_bad(path, kind);
		static char before[1 << 16], after[1 << 16];
		mode_t m0, m1;
		size_t n0 = snapshot(path, before, sizeof before, &m0);

		struct pool *p = (struct pool *)&p;
		struct err e = ERR_INIT;
		warn_reset();
		int rc = pool_open(&p, W123, 3, path, &e);
		if (rc != CONVBI_ECONFIG || !strstr(e.msg, path) || !strstr(e.msg, "never overwrites a file it did not write") ||
		    !strstr(e.msg, "state.path"))
			fail_msg("%s: rc %d, %s", bad_names[kind], rc, e.msg);
		assert_null(p);
		assert_int_equal(warnings, 0);

		struct state_shape shape;
		assert_int_equal(pool_shape(&shape, W123, 3, &e), CONVBI_OK);
		struct state *st = NULL;
		assert_int_equal(state_open_file(&st, path, &shape, &e), CONVBI_ECONFIG);
		assert_null(st);

		size_t n1 = snapshot(path, after, sizeof after, &m1);
		if (m0 != m1 || n0 != n1 || memcmp(before, after, n0))
			fail_msg("%s: the file was changed", bad_names[kind]);
	}
	/* a device is never even opened (as root, /dev/null used to be replaced) */
	struct pool *p = (struct pool *)&p;
	struct err e = ERR_INIT;
	assert_int_equal(pool_open(&p, W123, 3, "/dev/null", &e), CONVBI_ECONFIG);
	assert_non_null(strstr(e.msg, "/dev/null is a character device"));
	struct stat st;
	assert_int_equal(stat("/dev/null", &st), 0);
	assert_true(S_ISCHR(st.st_mode));
	alarm(0);

	char target[700];
	path_of(target, sizeof target, "symlink.target");
	char buf[16] = {0};
	int fd = open(target, O_RDONLY);
	assert_int_equal(read(fd, buf, sizeof buf), 8);
	close(fd);
	assert_string_equal(buf, "precious"); /* never followed */
}

/* ---- a file changed under its users ---------------------------------------- */

/* `: > FILE` while processes have the file mapped: the next touch of the
 * mapping would be a SIGBUS.  No process dies; the next operation
 * rebuilds the file with one warning and every process shares it again. */
static void a_file_emptied_under_a_running_process_is_rebuilt_not_a_crash(void **state)
{
	char path[600];
	path_of(path, sizeof path, "emptied.state");
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		warn_reset();
		struct pool *p = open_at(path, W123, 3);
		report(p, 1, T0, POOL_RATE_LIMITED, 60000);
		assert_int_equal(truncate(path, 0), 0);
		int got = pick(p, T0); /* touches the lost pages */
		struct pool_live lv;
		pool_live_get(p, 1, T0, &lv);
		if (warnings != 1 || !strstr(last_warning, "truncated or replaced while in use; rebuilt it"))
			_exit(10);
		if (got < 0 || file_size(path) != layout_bytes(3, 1))
			_exit(11);
		report(p, 2, T0, POOL_RATE_LIMITED, 30000); /* lands in the rebuilt file */
		struct pool *q = open_at(path, W123, 3);
		pool_live_get(q, 2, T0, &lv);
		if (lv.cool_until_ms != T0 + 30000 || warnings != 1)
			_exit(12);
		pool_close(q);
		pool_close(p);
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fail_msg("child: %s %d", WIFEXITED(status) ? "exit" : "signal",
		         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

/* A file lost under a process whose path then cannot be used (a
 * directory stands there now): the process goes on in its own memory,
 * says so once, and no longer calls its state shared. */
static void a_lost_file_that_cannot_be_reopened_leaves_in_process_state(void **state)
{
	char path[600];
	path_of(path, sizeof path, "lost.state");
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		warn_reset();
		struct pool *p = open_at(path, W123, 3);
		assert_int_equal(truncate(path, 0), 0);
		assert_int_equal(unlink(path), 0);
		assert_int_equal(mkdir(path, 0700), 0);
		if (pick(p, T0) < 0 || warnings != 1 || !strstr(last_warning, "cannot be used again"))
			_exit(10);
		report(p, 1, T0, POOL_RATE_LIMITED, 60000);
		struct pool_live lv;
		pool_live_get(p, 1, T0, &lv);
		if (lv.cool_until_ms != T0 + 60000 || pool_is_shared(p) || warnings != 1 ||
		    strcmp(pool_backend_status(p), "memory (state file lost)"))
			_exit(11);
		pool_close(p);
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fail_msg("child: %s %d", WIFEXITED(status) ? "exit" : "signal",
		         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	rmdir(path);
}

/* A truncation that leaves the pages in use mapped (and so raises no
 * SIGBUS), or another process's rebuild, is seen by the next load a
 * second later: the process moves to the file at the path. */
static void a_file_cut_or_replaced_under_a_process_is_followed_within_a_second(void **state)
{
	char path[600];
	path_of(path, sizeof path, "cut.state");
	warn_reset();
	struct pool *p = open_at(path, W123, 3);
	struct pool_live lv;
	pool_live_get(p, 0, T0, &lv);
	assert_int_equal(truncate(path, 100), 0);
	struct pool *q = open_at(path, W123, 3); /* rebuilds it: a file of ours, cut */
	assert_int_equal(warnings, 1);
	report(q, 0, T0, POOL_RATE_LIMITED, 60000);
	assert_int_equal(pick(p, T0 + 1500), 2);
	pool_live_get(p, 0, T0 + 1500, &lv);
	assert_int_equal(lv.cool_until_ms, T0 + 60000); /* p sees q's file now */
	assert_int_equal(warnings, 2);
	assert_non_null(strstr(last_warning, "reopened it"));
	pool_close(q);
	pool_close(p);
}

/* The keyed file of set (eps, n) beside path (state.c, open step 4). */
static void keyed_of(char *out, size_t cap, const char *path, const struct pool_ep_cfg *eps, size_t n)
{
	struct state_shape shape;
	struct err e = ERR_INIT;
	assert_int_equal(pool_shape(&shape, eps, n, &e), CONVBI_OK);
	snprintf(out, cap, "%s.%016llx", path, (unsigned long long)shape.set_hash);
}

/* Two configurations on one state.path (attack3 F5): each keeps its own
 * state -- cooldowns, learned rates, spending -- however they alternate
 * or overlap, with no warning; the first set's file stays at the path,
 * untouched, and the second's is keyed beside it. */
static void two_configurations_on_one_path_keep_their_own_state(void **state)
{
	char path[600], keyed[700];
	path_of(path, sizeof path, "shared.state");
	keyed_of(keyed, sizeof keyed, path, W123, 1);
	int64_t now = clock_wall_ms();
	uint32_t month = state_period(STATE_SPEND_MONTH, now);
	warn_reset();
	struct pool *yb = open_at(path, W123, 3);
	struct state *st = pool_state(yb);
	report(yb, 1, now, POOL_RATE_LIMITED, 60000);
	assert_true(st->ops->spend_add(st, STATE_SET_SLOT, STATE_SPEND_MONTH, month, 600000, 0, NULL));
	st->ops->store(st, 2, STATE_LEARN_RPM, 286);
	struct stat first;
	assert_int_equal(stat(path, &first), 0);
	struct pool *live = yb; /* stays open throughout: a process of the first set */
	for (int round = 0; round < 3; round++) {
		struct pool *x = open_at(path, W123, 1);
		assert_string_equal(state_path(pool_state(x)), keyed);
		struct state *xs = pool_state(x);
		if (round == 0) {
			report(x, 0, now, POOL_RATE_LIMITED, 30000);
			assert_true(xs->ops->spend_add(xs, STATE_SET_SLOT, STATE_SPEND_MONTH, month, 1000, 0, NULL));
		}
		struct pool_live lv;
		pool_live_get(x, 0, now + 1, &lv);
		assert_int_equal(lv.cool_until_ms, now + 30000); /* x's own, kept */
		assert_int_equal(xs->ops->spend_get(xs, STATE_SET_SLOT, STATE_SPEND_MONTH, month), 1000);
		pool_close(x);

		struct pool *y = open_at(path, W123, 3);
		struct state *ys = pool_state(y);
		assert_string_equal(state_path(ys), path);
		pool_live_get(y, 1, now + 1, &lv);
		assert_int_equal(lv.cool_until_ms, now + 60000);
		pool_live_get(y, 0, now + 1, &lv);
		assert_true(lv.cool_until_ms <= now + 1); /* x's cooldown is not the first set's */
		assert_int_equal(ys->ops->get(ys, 2, STATE_LEARN_RPM), 286);
		assert_int_equal(ys->ops->spend_get(ys, STATE_SET_SLOT, STATE_SPEND_MONTH, month), 600000);
		pool_close(y);
		pool_live_get(live, 1, now + 1500 * (round + 1), &lv); /* the path watch of a running process */
		assert_int_equal(lv.cool_until_ms, now + 60000);
	}
	struct stat last;
	assert_int_equal(stat(path, &last), 0);
	assert_true(first.st_ino == last.st_ino); /* never rebuilt */
	assert_int_equal(warnings, 0);
	pool_close(live);
}

/* Temp files a killed build left beside the path (<path>.<pid>.<n>.tmp):
 * an open removes those of a process that is gone once they are a minute
 * old, and nothing else -- not a live process's, not a fresh one, not
 * another name. */
static void stale_temp_files_of_dead_processes_are_removed(void **state)
{
	char path[600], dead_old[700], dead_new[700], live_old[700], other[700];
	path_of(path, sizeof path, "tmpclean.state");
	pid_t child = fork();
	if (child == 0)
		_exit(0);
	assert_true(child > 0);
	assert_int_equal(waitpid(child, NULL, 0), child); /* its pid now names no process */
	snprintf(dead_old, sizeof dead_old, "%s.%ld.0.tmp", path, (long)child);
	snprintf(dead_new, sizeof dead_new, "%s.%ld.1.tmp", path, (long)child);
	snprintf(live_old, sizeof live_old, "%s.%ld.0.tmp", path, (long)getppid());
	snprintf(other, sizeof other, "%s.%ld.0.tmp.keep", path, (long)child);
	const char *all[] = {dead_old, dead_new, live_old, other};
	struct timespec old[2] = {{clock_wall_ms() / 1000 - 3600, 0}, {clock_wall_ms() / 1000 - 3600, 0}};
	for (int i = 0; i < 4; i++) {
		write_bytes(all[i], "x", 1);
		if (i != 1)
			assert_int_equal(utimensat(AT_FDCWD, all[i], old, 0), 0);
	}
	struct pool *p = open_at(path, W123, 3);
	pool_close(p);
	struct stat st;
	assert_int_equal(lstat(dead_old, &st), -1);
	assert_int_equal(errno, ENOENT);
	for (int i = 1; i < 4; i++)
		assert_int_equal(lstat(all[i], &st), 0);
	for (int i = 1; i < 4; i++)
		unlink(all[i]);
}

/* Slots whose words hold bytes no convbi writes (0x7f..., 0x80...) are
 * cleared with one warning: no cooldown for ages, no absurd spending. */
static void impossible_slot_values_are_cleared_with_one_warning(void **state)
{
	static const unsigned char fills[] = {0x7f, 0x80, 0xff};
	for (size_t k = 0; k < sizeof fills; k++) {
		char path[600];
		path_of(path, sizeof path, "filled.state");
		unlink(path);
		struct pool *p = open_at(path, W123, 3);
		pool_close(p);
		size_t slots = sizeof(struct state_header) + sizeof(struct state_counter);
		unsigned char junk[sizeof(struct state_slot)];
		memset(junk, fills[k], sizeof junk);
		int fd = open(path, O_WRONLY);
		assert_int_equal(pwrite(fd, junk, sizeof junk, (off_t)slots), (ssize_t)sizeof junk);
		close(fd);

		warn_reset();
		int64_t now = clock_wall_ms();
		p = open_at(path, W123, 3);
		struct pool_live lv;
		pool_live_get(p, 0, now, &lv);
		assert_int_equal(warnings, 1);
		assert_non_null(strstr(last_warning, "impossible value"));
		assert_non_null(strstr(last_warning, "endpoint a (https://a/dep)")); /* named, not "endpoint 1" */
		assert_true(lv.cool_until_ms <= now);
		assert_int_equal(lv.learned_rpm, 0);
		assert_int_equal(lv.calls, 0);
		struct state *st = pool_state(p);
		for (int w = 0; w < STATE_NSPENDS; w++)
			assert_int_equal(st->ops->spend_get(st, 0, w, state_period(w, now)), 0);
		assert_true(st->ops->window_add(st, 0, STATE_WIN_REQ, now, 1, 10)); /* no phantom bucket */
		for (int i = 0; i < 6; i++)
			assert_true(pick(p, now) >= 0);
		assert_int_equal(warnings, 1);
		pool_close(p);
	}
}

/* A state file every user can write is refused, naming the fix. */
static void a_state_file_writable_by_others_is_refused_naming_chmod(void **state)
{
	char path[600];
	path_of(path, sizeof path, "open.state");
	struct pool *p = open_at(path, W123, 3);
	pool_close(p);
	assert_int_equal(chmod(path, 0666), 0);
	struct err e = ERR_INIT;
	p = (struct pool *)&p;
	assert_int_equal(pool_open(&p, W123, 3, path, &e), CONVBI_ECONFIG);
	assert_null(p);
	assert_non_null(strstr(e.msg, "writable by every user"));
	assert_non_null(strstr(e.msg, "chmod o-w"));
	assert_int_equal(chmod(path, 0600), 0);
	p = open_at(path, W123, 3);
	pool_close(p);
}

/* At the default path (nobody chose it) the same refusal falls back to
 * in-process state with one warning, so a stray file cannot stop convbi. */
static void a_foreign_file_at_the_default_path_falls_back_with_one_warning(void **state)
{
	struct state_shape shape;
	struct err e = ERR_INIT;
	assert_int_equal(pool_shape(&shape, W123, 3, &e), CONVBI_OK);
	char *old_xdg = getenv("XDG_RUNTIME_DIR") ? strdup(getenv("XDG_RUNTIME_DIR")) : NULL;
	setenv("XDG_RUNTIME_DIR", dir, 1);
	char path[4096];
	assert_int_equal(state_default_path(path, sizeof path, &shape), CONVBI_OK);
	write_bytes(path, "not ours", 8);
	warn_reset();
	struct pool *p = open_at(NULL, W123, 3);
	assert_int_equal(warnings, 1);
	assert_non_null(strstr(last_warning, "never overwrites"));
	assert_non_null(strstr(last_warning, "in-process"));
	assert_false(pool_is_shared(p));
	pool_close(p);
	char buf[16] = {0};
	int fd = open(path, O_RDONLY);
	assert_int_equal(read(fd, buf, sizeof buf), 8);
	close(fd);
	assert_string_equal(buf, "not ours");
	unlink(path);
	if (old_xdg)
		setenv("XDG_RUNTIME_DIR", old_xdg, 1);
	else
		unsetenv("XDG_RUNTIME_DIR");
	free(old_xdg);
}

static void unusable_location_falls_back_to_in_process_state(void **state)
{
	char file[600], path[700];
	path_of(file, sizeof file, "plain_file");
	write_bytes(file, "x", 1);
	snprintf(path, sizeof path, "%s/under_a_file.state", file);
	const char *paths[] = {path, "/proc/convbi-test.state", "/nonexistent-dir/x.state"};
	for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
		warn_reset();
		struct pool *p = open_at(paths[i], W123, 3);
		assert_int_equal(warnings, 1);
		assert_non_null(strstr(last_warning, "in-process"));
		assert_non_null(strstr(last_warning, paths[i]));
		assert_false(pool_is_shared(p));
		assert_null(pool_state_path(p));
		int n[3] = {0};
		for (int k = 0; k < 60; k++) {
			int ep = pick(p, T0);
			assert_in_range(ep, 0, 2);
			n[ep]++;
		}
		assert_int_equal(n[0], 10);
		assert_int_equal(n[2], 30);
		pool_close(p);
	}
	struct state_shape shape = {3, 1, 42};
	struct state *st = (struct state *)&st;
	struct err e = ERR_INIT;
	assert_int_equal(state_open_file(&st, path, &shape, &e), CONVBI_ESTATE);
	assert_null(st);
	assert_non_null(strstr(e.msg, path));
}

static void failed_allocations_opening_a_file_are_enomem_and_leak_nothing(void **state)
{
	char path[600];
	path_of(path, sizeof path, "enomem.state");
	int opened = 0;
	for (long n = 1; n < 100 && !opened; n++) {
		struct pool *p = (struct pool *)&p;
		struct err e = ERR_INIT;
		warn_reset();
		alloc_fail_at(n, 1);
		int rc = pool_open(&p, W123, 3, path, &e);
		alloc_fail_at(0, 0);
		assert_int_equal(warnings, 0); /* no fallback on ENOMEM: the error goes up */
		if (rc == CONVBI_OK) {
			opened = 1;
			assert_true(pool_is_shared(p));
		} else {
			assert_int_equal(rc, CONVBI_ENOMEM);
			assert_null(p);
		}
		pool_close(p);
	}
	assert_true(opened);
}

static void windows_count_a_sliding_minute_and_refuse_past_the_limit(void **state)
{
	struct state_shape shape = {2, 1, 1};
	struct state *st = NULL;
	struct err e = ERR_INIT;
	assert_int_equal(state_open_memory(&st, &shape, &e), CONVBI_OK);
	const struct state_ops *ops = st->ops;
	struct state_snap s;
	for (int i = 0; i < 7; i++) /* one charge of 10 in each of seven buckets */
		assert_true(ops->window_add(st, 0, STATE_WIN_TOK, T0 + i * 10000, 10, 0));
	ops->load(st, 0, T0 + 60000, 1, &s);
	assert_int_equal(s.win[STATE_WIN_TOK], 70); /* the oldest still whole at its start */
	ops->load(st, 0, T0 + 65000, 1, &s);
	assert_int_equal(s.win[STATE_WIN_TOK], 65);
	ops->load(st, 0, T0 + 69999, 1, &s);
	assert_int_equal(s.win[STATE_WIN_TOK], 61); /* rounded up */
	ops->load(st, 0, T0 + 70000, 1, &s);
	assert_int_equal(s.win[STATE_WIN_TOK], 60);
	ops->load(st, 0, T0 + 120000, 1, &s);
	assert_int_equal(s.win[STATE_WIN_TOK], 10); /* only the last charge, fading */
	ops->load(st, 0, T0 + 125000, 1, &s);
	assert_int_equal(s.win[STATE_WIN_TOK], 5);
	ops->load(st, 0, T0 + 200000, 1, &s);
	assert_int_equal(s.win[STATE_WIN_TOK], 0);
	ops->load(st, 1, T0, 1, &s);
	assert_int_equal(s.win[STATE_WIN_TOK], 0); /* slots are separate */

	assert_true(ops->window_add(st, 1, STATE_WIN_REQ, T0, 2, 3));
	assert_true(ops->window_add(st, 1, STATE_WIN_REQ, T0 + 1, 1, 3));
	assert_false(ops->window_add(st, 1, STATE_WIN_REQ, T0 + 2, 1, 3));
	assert_true(ops->window_add(st, 1, STATE_WIN_REQ, T0 + 3, -1, 3)); /* give one back */
	assert_true(ops->window_add(st, 1, STATE_WIN_REQ, T0 + 4, 1, 3));
	assert_false(ops->window_add(st, 1, STATE_WIN_REQ, T0 + 10000, 1, 3)); /* next bucket */
	assert_true(ops->window_add(st, 1, STATE_WIN_TOK, T0, 500, 100));      /* empty: oversized ok */
	assert_false(ops->window_add(st, 1, STATE_WIN_TOK, T0, 1, 100));

	assert_int_equal(ops->counter_next(st, 0), 0);
	assert_int_equal(ops->counter_next(st, 0), 1);
	assert_int_equal(ops->max(st, 0, STATE_COOL_UNTIL, 50), 50);
	assert_int_equal(ops->max(st, 0, STATE_COOL_UNTIL, 20), 50);
	assert_false(ops->cas(st, 0, STATE_PROBE_UNTIL, 1, 9));
	assert_true(ops->cas(st, 0, STATE_PROBE_UNTIL, 0, 9));
	assert_int_equal(ops->get(st, 0, STATE_PROBE_UNTIL), 9);
	assert_int_equal(ops->get(st, 0, STATE_REM_REQ), -1);
	assert_int_equal(ops->add(st, 0, STATE_CALLS, 5), 0);
	assert_int_equal(ops->add(st, 0, STATE_CALLS, 1), 5);
	assert_false(state_is_shared(st));
	assert_string_equal(ops->name, "memory");
	state_close(st);
	state_close(NULL);
}

static void spending_counts_per_period_refuses_past_the_limit_and_survives_a_clear(void **state)
{
	struct state_shape shape = {2, 1, 1};
	struct state *st = NULL;
	struct err e = ERR_INIT;
	assert_int_equal(state_open_memory(&st, &shape, &e), CONVBI_OK);
	const struct state_ops *ops = st->ops;
	uint32_t d = state_period(STATE_SPEND_DAY, T0), m = state_period(STATE_SPEND_MONTH, T0);
	int64_t after = -1;
	assert_true(ops->spend_add(st, 0, STATE_SPEND_DAY, d, 600, 1000, &after));
	assert_int_equal(after, 600);
	assert_false(ops->spend_add(st, 0, STATE_SPEND_DAY, d, 401, 1000, &after)); /* 1001 > 1000 */
	assert_int_equal(after, 600);
	assert_true(ops->spend_add(st, 0, STATE_SPEND_DAY, d, 400, 1000, &after)); /* exactly the limit */
	assert_true(ops->spend_add(st, 0, STATE_SPEND_DAY, d, -150, 0, &after));   /* a settlement gives back */
	assert_int_equal(after, 850);
	assert_int_equal(ops->spend_get(st, 0, STATE_SPEND_DAY, d), 850);
	assert_int_equal(ops->spend_get(st, 1, STATE_SPEND_DAY, d), 0);              /* slots are separate */
	assert_int_equal(ops->spend_get(st, STATE_SET_SLOT, STATE_SPEND_DAY, d), 0); /* and so is the set */
	assert_true(ops->spend_add(st, STATE_SET_SLOT, STATE_SPEND_MONTH, m, 7, 0, NULL));
	assert_int_equal(ops->spend_get(st, STATE_SET_SLOT, STATE_SPEND_MONTH, m), 7);
	/* the next day starts over; the day before reads as nothing spent */
	assert_int_equal(ops->spend_get(st, 0, STATE_SPEND_DAY, d + 1), 0);
	assert_true(ops->spend_add(st, 0, STATE_SPEND_DAY, d + 1, 999, 1000, &after));
	assert_int_equal(after, 999);
	/* a late settlement of the day before never lowers the new day, and a
	 * late charge is counted in it */
	assert_true(ops->spend_add(st, 0, STATE_SPEND_DAY, d, -500, 0, &after));
	assert_int_equal(ops->spend_get(st, 0, STATE_SPEND_DAY, d + 1), 999);
	assert_true(ops->spend_add(st, 0, STATE_SPEND_DAY, d, 5, 0, &after));
	assert_int_equal(ops->spend_get(st, 0, STATE_SPEND_DAY, d + 1), 1004);
	/* never below 0, never above the 48-bit cap */
	assert_true(ops->spend_add(st, 1, STATE_SPEND_DAY, d, -5, 0, &after));
	assert_int_equal(after, 0);
	assert_true(ops->spend_add(st, 1, STATE_SPEND_DAY, d, STATE_SPEND_MAX, 0, &after));
	assert_true(ops->spend_add(st, 1, STATE_SPEND_DAY, d, 10, 0, &after));
	assert_int_equal(after, STATE_SPEND_MAX);
	/* clearing an endpoint forgets what it learned, not what it spent */
	ops->store(st, 0, STATE_COOL_UNTIL, 5);
	ops->clear(st, 0);
	assert_int_equal(ops->get(st, 0, STATE_COOL_UNTIL), 0);
	assert_int_equal(ops->spend_get(st, 0, STATE_SPEND_DAY, d + 1), 1004);
	ops->reset(st); /* a reset is everything */
	assert_int_equal(ops->spend_get(st, 0, STATE_SPEND_DAY, d + 1), 0);
	assert_int_equal(ops->spend_get(st, STATE_SET_SLOT, STATE_SPEND_MONTH, m), 0);
	state_close(st);
}

static void periods_are_utc_calendar_days_and_months(void **state)
{
	/* 2026-12-07T00:00:00Z = 1796601600 s; 2026-12-01 = 1796083200 s */
	const int64_t dec7 = INT64_C(1796601600000), dec1 = INT64_C(1796083200000), jan1 = INT64_C(1798761600000);
	assert_int_equal(state_period(STATE_SPEND_DAY, dec7), 20794);
	assert_int_equal(state_period(STATE_SPEND_DAY, dec7 - 1), 20793);
	assert_int_equal(state_period(STATE_SPEND_MONTH, dec7), (2026 - 1970) * 12 + 11);
	assert_int_equal(state_period(STATE_SPEND_MONTH, dec1 - 1), (2026 - 1970) * 12 + 10);
	assert_int_equal(state_period(STATE_SPEND_MONTH, jan1), (2027 - 1970) * 12);
	assert_int_equal(state_period_start_ms(STATE_SPEND_DAY, 20794), dec7);
	assert_int_equal(state_period_start_ms(STATE_SPEND_MONTH, (2026 - 1970) * 12 + 11), dec1);
	assert_int_equal(state_period_start_ms(STATE_SPEND_MONTH, (2027 - 1970) * 12), jan1);
	assert_int_equal(state_period_start_ms(STATE_SPEND_MONTH, (2024 - 1970) * 12 + 2),
	                 INT64_C(1709251200000));                                                              /* 2024-03-01 */
	assert_int_equal(state_period(STATE_SPEND_MONTH, INT64_C(1709251200000) - 1), (2024 - 1970) * 12 + 1); /* Feb 29 */
	for (int64_t t = 0; t < INT64_C(4102444800000); t += INT64_C(86400000) * 13 + 3600000) {               /* to 2100 */
		uint32_t p = state_period(STATE_SPEND_MONTH, t);
		assert_true(state_period_start_ms(STATE_SPEND_MONTH, p) <= t &&
		            t < state_period_start_ms(STATE_SPEND_MONTH, p + 1));
	}
}

/* ---- many processes ----------------------------------------------------- */

#define PROCS 8
#define THREADS 4
#define PICKS 4800 /* per thread; PROCS*THREADS*PICKS is a multiple of 6 */

struct worker {
	struct pool *p;
	int64_t n[3];
	int bad;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < PICKS; i++) {
		int ep = pick(w->p, clock_wall_ms());
		if (ep < 0 || ep > 2) {
			w->bad++;
			continue;
		}
		w->n[ep]++;
		report(w->p, ep, clock_wall_ms(), POOL_OK, -1);
	}
	return NULL;
}

/* A child: opens its own pool on path, runs THREADS workers, writes the
 * per-endpoint totals (and a bad count) to fd, exits. */
static void child_picks(const char *path, int fd, int go)
{
	char c;
	if (read(go, &c, 1) < 0) /* wait for the start: EOF when the parent closes */
		_exit(3);
	struct pool *p = NULL;
	struct err e = ERR_INIT;
	if (pool_open(&p, W123, 3, path, &e) || !pool_is_shared(p))
		_exit(2);
	struct worker w[THREADS];
	pthread_t t[THREADS];
	memset(w, 0, sizeof w);
	for (int i = 0; i < THREADS; i++) {
		w[i].p = p;
		if (pthread_create(&t[i], NULL, worker_run, &w[i]))
			_exit(4);
	}
	int64_t sum[4] = {0};
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		for (int k = 0; k < 3; k++)
			sum[k] += w[i].n[k];
		sum[3] += w[i].bad;
	}
	pool_close(p);
	_exit(write(fd, sum, sizeof sum) == (ssize_t)sizeof sum ? 0 : 5);
}

static int wait_ok(pid_t pid)
{
	int status;
	if (waitpid(pid, &status, 0) != pid)
		return 0;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Forks PROCS children running fn(path, result fd, start fd) at once and
 * adds up the nwords int64 each writes into total; every child must exit 0. */
static void run_children(const char *path, void (*fn)(const char *, int, int), int64_t *total, size_t nwords)
{
	int res[2], go[2];
	assert_int_equal(pipe(res), 0);
	assert_int_equal(pipe(go), 0);
	pid_t pid[PROCS];
	for (int i = 0; i < PROCS; i++) {
		pid[i] = fork();
		assert_true(pid[i] >= 0);
		if (pid[i] == 0) {
			close(res[0]);
			close(go[1]);
			fn(path, res[1], go[0]);
		}
	}
	close(res[1]);
	close(go[0]);
	close(go[1]); /* start */
	memset(total, 0, nwords * sizeof *total);
	for (int i = 0; i < PROCS; i++) {
		int64_t sum[4];
		assert_true(nwords <= 4);
		assert_int_equal(read(res[0], sum, nwords * sizeof *sum), (ssize_t)(nwords * sizeof *sum));
		for (size_t k = 0; k < nwords; k++)
			total[k] += sum[k];
	}
	close(res[0]);
	for (int i = 0; i < PROCS; i++)
		assert_true(wait_ok(pid[i]));
}

static void eight_processes_of_four_threads_share_the_cycle_exactly(void **state)
{
	char path[600];
	path_of(path, sizeof path, "multi.state");
	unlink(path); /* the children race to create it */
	int64_t total[4];
	run_children(path, child_picks, total, 4);
	const int64_t cycles = (int64_t)PROCS * THREADS * PICKS / 6;
	assert_int_equal(total[3], 0);
	assert_int_equal(total[0], cycles * 1);
	assert_int_equal(total[1], cycles * 2);
	assert_int_equal(total[2], cycles * 3);

	warn_reset();
	struct pool *p = open_at(path, W123, 3);
	assert_int_equal(warnings, 0); /* one file, created once, never damaged */
	for (int ep = 0; ep < 3; ep++) {
		struct pool_live lv;
		pool_live_get(p, ep, clock_wall_ms(), &lv);
		assert_int_equal(lv.calls, (uint64_t)cycles * (ep + 1));
		assert_int_equal(lv.ok, (uint64_t)cycles * (ep + 1));
	}
	pool_close(p);
}

/* Each child reserves 7 micro-USD at a time against a limit of 10,000 on
 * the set and on endpoint 1, gives back 2 of each reservation (a call that
 * cost less than its estimate), until refused; it reports what it kept. */
static void child_spends(const char *path, int fd, int go)
{
	char c;
	if (read(go, &c, 1) < 0)
		_exit(3);
	struct state_shape shape;
	struct state *st = NULL;
	struct err e = ERR_INIT;
	if (pool_shape(&shape, W123, 3, &e) || state_open_file(&st, path, &shape, &e))
		_exit(2);
	uint32_t d = state_period(STATE_SPEND_DAY, clock_wall_ms());
	int64_t kept = 0;
	for (;;) {
		if (!st->ops->spend_add(st, STATE_SET_SLOT, STATE_SPEND_DAY, d, 7, 10000, NULL))
			break;
		if (!st->ops->spend_add(st, 1, STATE_SPEND_DAY, d, 7, 10000, NULL)) {
			st->ops->spend_add(st, STATE_SET_SLOT, STATE_SPEND_DAY, d, -7, 0, NULL);
			break;
		}
		st->ops->spend_add(st, STATE_SET_SLOT, STATE_SPEND_DAY, d, -2, 0, NULL);
		st->ops->spend_add(st, 1, STATE_SPEND_DAY, d, -2, 0, NULL);
		kept += 5;
	}
	state_close(st);
	_exit(write(fd, &kept, sizeof kept) == (ssize_t)sizeof kept ? 0 : 5);
}

static void eight_processes_reserving_against_one_budget_never_pass_it(void **state)
{
	char path[600];
	path_of(path, sizeof path, "spend.state");
	unlink(path);
	int64_t total;
	run_children(path, child_spends, &total, 1);
	struct state_shape shape;
	struct state *st = NULL;
	struct err e = ERR_INIT;
	assert_int_equal(pool_shape(&shape, W123, 3, &e), CONVBI_OK);
	assert_int_equal(state_open_file(&st, path, &shape, &e), CONVBI_OK);
	uint32_t d = state_period(STATE_SPEND_DAY, clock_wall_ms());
	int64_t set = st->ops->spend_get(st, STATE_SET_SLOT, STATE_SPEND_DAY, d);
	/* every kept charge is counted, none is lost, and the limit holds: a
	 * reservation fails only once fewer than 7 are left, counting the 2 of
	 * each other process's reservation not yet given back */
	assert_int_equal(set, total);
	assert_int_equal(st->ops->spend_get(st, 1, STATE_SPEND_DAY, d), total);
	assert_true(total <= 10000 && total > 10000 - 7 - 2 * PROCS);
	state_close(st);
}

static void a_cooldown_set_in_one_process_is_seen_at_once_by_another(void **state)
{
	char path[600];
	path_of(path, sizeof path, "cool.state");
	struct pool *p = open_at(path, W123, 3);
	int ready[2], done[2];
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(done), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		pool_close(p); /* the parent's, inherited: unused here */
		struct pool *q = NULL;
		struct err e = ERR_INIT;
		char c = 0;
		if (pool_open(&q, W123, 3, path, &e))
			_exit(2);
		if (write(ready[1], "r", 1) != 1 || read(done[0], &c, 1) != 1)
			_exit(3);
		struct pool_live lv;
		pool_live_get(q, 2, T0, &lv);
		if (lv.cool_until_ms != T0 + 30000 || lv.rate_limited != 1)
			_exit(4);
		for (int i = 0; i < 100; i++)
			if (pick(q, T0 + 1) == 2)
				_exit(5);
		report(q, 0, T0, POOL_BROKEN, -1); /* and back the other way */
		if (write(ready[1], "d", 1) != 1)
			_exit(6);
		pool_close(q);
		_exit(0);
	}
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);
	report(p, 2, T0, POOL_RATE_LIMITED, 30000);
	assert_int_equal(write(done[1], "g", 1), 1);
	assert_int_equal(read(ready[0], &c, 1), 1);
	struct pool_live lv;
	pool_live_get(p, 0, T0, &lv);
	assert_int_equal(lv.cool_until_ms, T0 + POOL_BROKEN_COOL_MS);
	assert_true(wait_ok(pid));
	for (int i = 0; i < 12; i++)
		assert_int_equal(pick(p, T0 + 2), 1);
	pool_close(p);
}

static void exactly_one_process_wins_the_half_open_probe(void **state)
{
	char path[600];
	const struct pool_ep_cfg solo[] = {{"solo", "u/solo", 0, 1, 0, 0}};
	path_of(path, sizeof path, "probe.state");
	struct pool *p = open_at(path, solo, 1);
	for (int i = 0; i < POOL_BREAKER_THRESHOLD; i++)
		report(p, 0, T0, POOL_TRANSPORT, -1);
	const int64_t half = T0 + POOL_BREAKER_PAUSE_MS;
	int go[2];
	assert_int_equal(pipe(go), 0);
	pid_t pid[PROCS];
	for (int i = 0; i < PROCS; i++) {
		pid[i] = fork();
		assert_true(pid[i] >= 0);
		if (pid[i] == 0) {
			pool_close(p); /* the parent's, inherited: unused here */
			struct pool *q = NULL;
			struct err e = ERR_INIT;
			char c;
			close(go[1]);
			if (pool_open(&q, solo, 1, path, &e))
				_exit(2);
			if (read(go[0], &c, 1) != 0)
				_exit(3);
			struct pool_pick k;
			if (pool_pick(q, half, 0, 0, &k) || k.ep != 0)
				_exit(4); /* the losers are still offered it: partial outage */
			_exit(k.probe ? 10 : 0);
		}
	}
	close(go[0]);
	close(go[1]);
	int probes = 0;
	for (int i = 0; i < PROCS; i++) {
		int status;
		assert_int_equal(waitpid(pid[i], &status, 0), pid[i]);
		assert_true(WIFEXITED(status));
		int code = WEXITSTATUS(status);
		assert_true(code == 0 || code == 10);
		probes += code == 10;
	}
	assert_int_equal(probes, 1);
	pool_close(p);
}

static void a_killed_prober_frees_its_slot_after_the_probe_timeout(void **state)
{
	char path[600];
	path_of(path, sizeof path, "prober.state");
	struct pool *p = open_at(path, W123, 2);
	for (int i = 0; i < POOL_BREAKER_THRESHOLD; i++)
		report(p, 0, T0, POOL_SERVER, -1);
	const int64_t half = T0 + POOL_BREAKER_PAUSE_MS;
	int ready[2];
	assert_int_equal(pipe(ready), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		pool_close(p); /* the parent's, inherited: unused here */
		struct pool *q = NULL;
		struct err e = ERR_INIT;
		struct pool_pick k;
		if (pool_open(&q, W123, 2, path, &e) || pool_pick(q, half, 1u << 1, 0, &k) || k.ep != 0 || !k.probe)
			_exit(2);
		if (write(ready[1], "p", 1) != 1)
			_exit(3);
		for (;;)
			pause(); /* probing for ever, until killed */
	}
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(kill(pid, SIGKILL), 0);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));

	struct pool_live lv;
	pool_live_get(p, 0, half + 1, &lv);
	assert_int_equal(lv.breaker, POOL_BREAKER_HALF_OPEN);
	for (int i = 0; i < 10; i++) /* its probe slot is still taken ... */
		assert_int_equal(pick(p, half + POOL_PROBE_TIMEOUT_MS - 1), 1);
	struct pool_pick k;
	assert_int_equal(pool_pick(p, half + POOL_PROBE_TIMEOUT_MS, 1u << 1, 0, &k), CONVBI_OK);
	assert_int_equal(k.ep, 0); /* ... until the timeout */
	assert_true(k.probe);
	struct pool_outcome o = pool_outcome_of(POOL_OK);
	o.probe = 1;
	pool_report(p, 0, half + POOL_PROBE_TIMEOUT_MS + 5, &o);
	pool_live_get(p, 0, half + POOL_PROBE_TIMEOUT_MS + 5, &lv);
	assert_int_equal(lv.breaker, POOL_BREAKER_CLOSED);
	pool_close(p);
}

static void processes_killed_mid_loop_leave_the_file_consistent(void **state)
{
	char path[600];
	path_of(path, sizeof path, "killed.state");
	struct pool *p = open_at(path, W123, 3);
	const int kills = 12;
	srand(11);
	for (int round = 0; round < kills; round++) {
		int ready[2];
		assert_int_equal(pipe(ready), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			pool_close(p); /* the parent's, inherited: unused here */
			struct pool *q = NULL;
			struct err e = ERR_INIT;
			if (pool_open(&q, W123, 3, path, &e))
				_exit(2);
			if (write(ready[1], "r", 1) != 1)
				_exit(3);
			for (uint64_t i = 0;; i++) {
				int64_t now = clock_wall_ms();
				struct pool_pick k;
				if (pool_pick(q, now, 0, 100, &k) == CONVBI_OK && k.ep >= 0)
					report(q, k.ep, now, POOL_OK, -1);
			}
		}
		char c;
		assert_int_equal(read(ready[0], &c, 1), 1);
		close(ready[0]);
		close(ready[1]);
		clock_sleep_ms(1 + rand() % 15);
		assert_int_equal(kill(pid, SIGKILL), 0);
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
	}

	warn_reset();
	struct pool *q = open_at(path, W123, 3); /* the header is intact */
	assert_int_equal(warnings, 0);
	uint64_t calls = 0, ok = 0;
	for (int ep = 0; ep < 3; ep++) {
		struct pool_live lv;
		pool_live_get(q, ep, clock_wall_ms(), &lv);
		assert_int_equal(lv.breaker, POOL_BREAKER_CLOSED);
		assert_int_equal(lv.cool_until_ms, 0);
		assert_int_equal(lv.failures + lv.rate_limited, 0);
		calls += lv.calls;
		ok += lv.ok;
	}
	/* each kill can fall between "calls += 1" and "ok += 1", no more */
	assert_true(calls > 0);
	assert_true(ok <= calls && calls <= ok + (uint64_t)kills);

	/* and the cycle is still exact from wherever the counter stands */
	int n[3] = {0};
	for (int i = 0; i < 600; i++) {
		int ep = pick(q, clock_wall_ms());
		assert_in_range(ep, 0, 2);
		n[ep]++;
	}
	assert_int_equal(n[0], 100);
	assert_int_equal(n[1], 200);
	assert_int_equal(n[2], 300);
	pool_close(q);
	pool_close(p);
}

/* state_open: the one factory picks the backend from the configuration. */
static void the_factory_opens_the_backend_the_configuration_names(void **state)
{
	struct state_shape shape;
	struct state *st = NULL;
	struct err e = ERR_INIT;
	char path[600], rpath[600];
	unsetenv("CONVBI_REDIS_URL");
	assert_int_equal(pool_shape(&shape, W123, 3, &e), CONVBI_OK);
	path_of(path, sizeof path, "factory.state");
	path_of(rpath, sizeof rpath, "factory-redis.state");

	struct state_cfg file = {.path = path};
	assert_int_equal(state_open(&st, &file, &shape, &e), CONVBI_OK);
	assert_string_equal(state_describe(st), "file");
	assert_string_equal(state_path(st), path);
	state_close(st);

	struct state_cfg memory = {.backend = "memory", .path = path};
	assert_int_equal(state_open(&st, &memory, &shape, &e), CONVBI_OK);
	assert_string_equal(state_describe(st), "memory");
	assert_false(state_is_shared(st));
	state_close(st);

	warn_reset();
	struct state_cfg redis = {.backend = "redis", .url = "redis://127.0.0.1:1/0", .path = rpath, .redis_timeout_ms = 200};
	assert_int_equal(state_open(&st, &redis, &shape, &e), CONVBI_OK);
	assert_string_equal(state_describe(st), "file (redis unreachable)");
	assert_int_equal(warnings, 1);
	state_close(st);

	struct state_cfg bad = {.backend = "redis", .url = "http://127.0.0.1:1/0"};
	assert_int_equal(state_open(&st, &bad, &shape, &e), CONVBI_ECONFIG);
	assert_null(st);
	assert_non_null(strstr(e.msg, "state.url"));
	assert_string_equal(state_describe(NULL), "none");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(creates_the_file_and_a_reopen_sees_the_same_state),
	        cmocka_unit_test(default_path_follows_runtime_dir_and_the_endpoint_set),
	        cmocka_unit_test(bad_files_of_ours_are_rebuilt_with_one_warning),
	        cmocka_unit_test(a_file_that_is_not_ours_is_never_touched),
	        cmocka_unit_test(a_file_emptied_under_a_running_process_is_rebuilt_not_a_crash),
	        cmocka_unit_test(a_file_cut_or_replaced_under_a_process_is_followed_within_a_second),
	        cmocka_unit_test(a_lost_file_that_cannot_be_reopened_leaves_in_process_state),
	        cmocka_unit_test(two_configurations_on_one_path_keep_their_own_state),
	        cmocka_unit_test(stale_temp_files_of_dead_processes_are_removed),
	        cmocka_unit_test(impossible_slot_values_are_cleared_with_one_warning),
	        cmocka_unit_test(a_state_file_writable_by_others_is_refused_naming_chmod),
	        cmocka_unit_test(a_foreign_file_at_the_default_path_falls_back_with_one_warning),
	        cmocka_unit_test(unusable_location_falls_back_to_in_process_state),
	        cmocka_unit_test(failed_allocations_opening_a_file_are_enomem_and_leak_nothing),
	        cmocka_unit_test(windows_count_a_sliding_minute_and_refuse_past_the_limit),
	        cmocka_unit_test(spending_counts_per_period_refuses_past_the_limit_and_survives_a_clear),
	        cmocka_unit_test(periods_are_utc_calendar_days_and_months),
	        cmocka_unit_test(eight_processes_of_four_threads_share_the_cycle_exactly),
	        cmocka_unit_test(eight_processes_reserving_against_one_budget_never_pass_it),
	        cmocka_unit_test(a_cooldown_set_in_one_process_is_seen_at_once_by_another),
	        cmocka_unit_test(exactly_one_process_wins_the_half_open_probe),
	        cmocka_unit_test(a_killed_prober_frees_its_slot_after_the_probe_timeout),
	        cmocka_unit_test(processes_killed_mid_loop_leave_the_file_consistent),
	        cmocka_unit_test(the_factory_opens_the_backend_the_configuration_names),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
