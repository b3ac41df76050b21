/* test_redis.c -- the "redis" state backend against real redis-server processes.
 *
 * Every test starts its own redis-server on a free loopback port (bind
 * 127.0.0.1:0, read the port, close, start the server on it) with no
 * persistence, and kills it at the end, also when an assertion fails (the
 * per-test teardown kills every server still registered).  A missing
 * redis-server FAILS the test with a message saying so: nothing here is
 * skipped.  Processes are real (fork), the kill is a real SIGKILL, a hung
 * server is a real SIGSTOP.  Warnings go through log_set_sink and are
 * counted: a fallback must say so exactly once.
 *
 * The differential test is the backbone: one random sequence of operations
 * runs on the memory backend and on the redis backend (in each of its
 * modes), and every answer and every snapshot must be identical.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "convbi/convbi.h"
#include "fake.h"
#include "llm/config.h"
#include "llm/llm.h"
#include "llm/pool.h"
#include "llm/state.h"
#include "llm/state_redis.h"
#include "testutil.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"

#define T0 ((int64_t)1700000000000)
#define TIMEOUT_MS 200       /* the bound where a test is about timeouts */
#define CALM_TIMEOUT_MS 2000 /* elsewhere: a loaded CI box must not fall back */

static const struct pool_ep_cfg W123[] = {
        {"a", "https://a/dep", 0, 1, 0, 0},
        {"b", "https://b/dep", 0, 2, 0, 0},
        {"c", "https://c/dep", 0, 3, 0, 0},
};

static char dir[512]; /* this run's scratch directory */

/* ---- warnings ---------------------------------------------------------------- */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static int warnings, infos;
static char warning_text[16384]; /* every warning, one per line */

static void sink(int level, const char *line, void *payload)
{
	pthread_mutex_lock(&log_mu);
	if (level >= LOG_WARN) {
		warnings++;
		size_t n = strlen(warning_text);
		snprintf(warning_text + n, sizeof warning_text - n, "%s\n", line);
	} else if (level == LOG_INFO) {
		infos++;
	}
	pthread_mutex_unlock(&log_mu);
}

static void log_reset(void)
{
	pthread_mutex_lock(&log_mu);
	warnings = infos = 0;
	warning_text[0] = '\0';
	pthread_mutex_unlock(&log_mu);
}

static int warnings_now(void)
{
	pthread_mutex_lock(&log_mu);
	int n = warnings;
	pthread_mutex_unlock(&log_mu);
	return n;
}

/* ---- children ----------------------------------------------------------------------
 * A forked child reports through a pipe, never through its exit status:
 * under valgrind (CI sets CONVBI_VALGRIND) a child's status is replaced
 * by --error-exitcode when its leak check finds a leak.  A child closes
 * what it opened and any pool or state it inherited and no longer sees
 * on its stack (valgrind counts those as definitely lost at _exit); what
 * the parent's frames still hold is only "still reachable". */

struct child_msg {
	int status;   /* 0 = all good; else what went wrong */
	int count[3]; /* picks per endpoint, when the child counts */
};

static _Noreturn void child_done(int fd, int status, const int *count)
{
	struct child_msg m = {status, {0, 0, 0}};
	if (count)
		memcpy(m.count, count, sizeof m.count);
	ssize_t n = write(fd, &m, sizeof m);
	(void)n;
	_exit(0);
}

/* The child's message (status -1 when it died without one); reaps it. */
static struct child_msg child_wait(pid_t pid, int fd)
{
	struct child_msg m;
	if (read(fd, &m, sizeof m) != (ssize_t)sizeof m)
		m.status = -1;
	waitpid(pid, NULL, 0);
	return m;
}

/* Under valgrind everything runs slower: time limits get this factor. */
static int64_t slack(int64_t ms)
{
	return getenv("CONVBI_VALGRIND") ? ms * 10 : ms;
}

/* ---- redis-server ---------------------------------------------------------------- */

#define MAX_SERVERS 8

struct rsrv {
	pid_t pid; /* 0 when not running */
	int port;
	char pass[64]; /* requirepass, "" = none */
	char dir[600]; /* its directory: redis.log */
};

/* Servers alive, by pid (never by pointer: a failed test's struct rsrv
 * lives on a stack frame that is gone when the teardown runs). */
static pid_t running[MAX_SERVERS];

static const char *redis_server_bin(void)
{
	static const char *const where[] = {"/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"};
	const char *env = getenv("REDIS_SERVER");
	if (env && *env)
		return access(env, X_OK) == 0 ? env : NULL;
	for (size_t i = 0; i < sizeof where / sizeof *where; i++)
		if (access(where[i], X_OK) == 0)
			return where[i];
	return NULL;
}

/* A plain hiredis connection (authenticated, on db), or NULL. */
static redisContext *admin_db(const struct rsrv *s, int db)
{
	struct timeval tv = {1, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
	if (!c || c->err) {
		redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	redisReply *rep;
	if (s->pass[0]) {
		rep = redisCommand(c, "AUTH %s", s->pass);
		int ok = rep && rep->type == REDIS_REPLY_STATUS;
		freeReplyObject(rep);
		if (!ok) {
			redisFree(c);
			return NULL;
		}
	}
	rep = redisCommand(c, "SELECT %d", db);
	int ok = rep && rep->type == REDIS_REPLY_STATUS;
	freeReplyObject(rep);
	if (!ok) {
		redisFree(c);
		return NULL;
	}
	return c;
}

static redisContext *admin(const struct rsrv *s)
{
	return admin_db(s, 0);
}

static int srv_ping(const struct rsrv *s)
{
	redisContext *c = admin(s);
	if (!c)
		return 0;
	redisReply *rep = redisCommand(c, "PING");
	int ok = rep && rep->type == REDIS_REPLY_STATUS && !strcmp(rep->str, "PONG");
	freeReplyObject(rep);
	redisFree(c);
	return ok;
}

static void pid_track(pid_t pid, int alive)
{
	for (int i = 0; i < MAX_SERVERS; i++)
		if (alive ? running[i] == 0 : running[i] == pid) {
			running[i] = alive ? pid : 0;
			return;
		}
}

static void pid_kill(pid_t pid)
{
	if (pid <= 1)
		return;
	kill(pid, SIGCONT);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	pid_track(pid, 0);
}

/* Starts redis-server on port; 0 when it answers PING, -1 when it exited
 * (port taken, say), failing the test on anything else. */
static int srv_try(struct rsrv *s, int port)
{
	const char *bin = redis_server_bin();
	if (!bin)
		fail_msg(
		        "redis-server not found ($REDIS_SERVER, /usr/bin, /usr/local/bin): install it "
		        "(Debian: apt-get install redis-server); these tests need a real server and "
		        "never skip");
	char ports[16], log[700];
	snprintf(ports, sizeof ports, "%d", port);
	snprintf(log, sizeof log, "%s/redis.log", s->dir);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* dies with the test, even one killed by a crash */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() == 1)
			_exit(126);
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		const char *argv[20] = {bin,  "--port",      ports, "--bind", "127.0.0.1", "--save",     "",       "--appendonly",
		                        "no", "--daemonize", "no",  "--dir",  s->dir,      "--loglevel", "warning"};
		int n = 15;
		if (s->pass[0]) {
			argv[n++] = "--requirepass";
			argv[n++] = s->pass;
		}
		argv[n] = NULL;
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	s->pid = pid;
	s->port = port;
	pid_track(pid, 1);
	for (int i = 0; i < 250; i++) { /* 5 s */
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			pid_track(pid, 0);
			s->pid = 0;
			return -1;
		}
		if (srv_ping(s))
			return 0;
		usleep(20000);
	}
	fail_msg("redis-server on port %d did not answer within 5 s; see %s", port, log);
	return -1;
}

static void srv_start_pass(struct rsrv *s, const char *pass)
{
	memset(s, 0, sizeof *s);
	snprintf(s->pass, sizeof s->pass, "%s", pass ? pass : "");
	snprintf(s->dir, sizeof s->dir, "%s/redis-XXXXXX", dir);
	assert_non_null(mkdtemp(s->dir));
	for (int tries = 0; tries < 5; tries++) {
		int port = tu_free_port();
		assert_true(port > 0);
		if (srv_try(s, port) == 0)
			return;
	}
	fail_msg("redis-server would not start; see %s/redis.log", s->dir);
}

static void srv_start(struct rsrv *s)
{
	srv_start_pass(s, NULL);
}

/* Starts it again on the port it had (after a kill). */
static void srv_restart(struct rsrv *s)
{
	for (int tries = 0; tries < 50; tries++) {
		if (srv_try(s, s->port) == 0)
			return;
		usleep(100000); /* the old socket may linger a moment */
	}
	fail_msg("redis-server would not restart on port %d", s->port);
}

static void srv_kill(struct rsrv *s)
{
	pid_kill(s->pid);
	s->pid = 0;
}

static void srv_stop(struct rsrv *s)
{
	srv_kill(s);
}

/* An integer reply of a command, or LLONG_MIN; a string reply is parsed. */
static long long cmd_int(redisContext *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *rep = redisvCommand(c, fmt, ap);
	va_end(ap);
	long long v = -999999999;
	if (rep && rep->type == REDIS_REPLY_INTEGER)
		v = rep->integer;
	else if (rep && rep->type == REDIS_REPLY_STRING)
		v = strtoll(rep->str, NULL, 10);
	else if (rep && rep->type == REDIS_REPLY_NIL)
		v = -1000000000;
	freeReplyObject(rep);
	return v;
}

#define NIL_REPLY (-1000000000LL)

/* ---- fixtures -------------------------------------------------------------------- */

static int setup_group(void **state)
{
	snprintf(dir, sizeof dir, "%s/test_redis.XXXXXX", SCRATCH_DIR);
	mkdir(SCRATCH_DIR, 0700);
	if (!mkdtemp(dir))
		return -1;
	log_set_sink(sink, NULL, LOG_INFO);
	return 0;
}

static int teardown_group(void **state)
{
	log_set_sink(NULL, NULL, LOG_WARN);
	return getenv("KEEP_SCRATCH") ? 0 : tu_rmtree(dir);
}

static int setup(void **state)
{
	log_reset();
	return 0;
}

/* Kills what a failed test left running. */
static int teardown(void **state)
{
	for (int i = 0; i < MAX_SERVERS; i++)
		pid_kill(running[i]);
	unsetenv("CONVBI_REDIS_URL");
	return 0;
}

static void url_of(char *out, size_t cap, const struct rsrv *s, const char *cred, int db)
{
	snprintf(out, cap, "redis://%s127.0.0.1:%d/%d", cred ? cred : "", s->port, db);
}

static void local_path(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s.state", dir, name);
}

static struct state_shape shape_of(const struct pool_ep_cfg *eps, size_t n)
{
	struct state_shape sh;
	struct err e = ERR_INIT;
	assert_int_equal(pool_shape(&sh, eps, n, &e), CONVBI_OK);
	return sh;
}

struct rs_open {
	const char *prefix;
	const char *cred; /* "user:pass@" or ":pass@", NULL = none */
	int db;
	int cache_ms;
	int ttl_ms;
	unsigned flags;
	const char *local; /* fallback file name in dir */
	int timeout_ms;    /* 0 = CALM_TIMEOUT_MS */
};

static struct state *open_state(const struct rsrv *s, const struct rs_open *w, const struct state_shape *sh)
{
	char url[256], path[700];
	struct state *st = NULL;
	struct err e = ERR_INIT;
	url_of(url, sizeof url, s, w->cred, w->db);
	local_path(path, sizeof path, w->local ? w->local : "local");
	struct state_redis_opts o = STATE_REDIS_OPTS_INIT;
	o.url = url;
	o.prefix = w->prefix;
	o.timeout_ms = w->timeout_ms ? w->timeout_ms : CALM_TIMEOUT_MS;
	o.cache_ms = w->cache_ms;
	o.ttl_ms = w->ttl_ms;
	o.flags = w->flags;
	o.local_path = path;
	int rc = state_open_redis(&st, &o, sh, &e);
	if (rc)
		fail_msg("state_open_redis: %s", e.msg);
	return st;
}

/* A pool over W123 on a redis state; *st_out borrows the state. */
static struct pool *open_pool(const struct rsrv *s, const struct rs_open *w, struct state **st_out)
{
	struct state_shape sh = shape_of(W123, 3);
	struct state *st = open_state(s, w, &sh);
	struct pool *p = NULL;
	struct err e = ERR_INIT;
	assert_int_equal(pool_open_state(&p, W123, 3, st, &e), CONVBI_OK);
	if (st_out)
		*st_out = st;
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

/* ---- the contract: identical to the memory backend ------------------------------ */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dULL;
}

static int64_t rnd_in(int64_t lo, int64_t hi)
{
	return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

static void snap_equal(const struct state_snap *a, const struct state_snap *b, int step, unsigned ep)
{
	for (int f = 0; f < STATE_NFIELDS; f++)
		if (a->f[f] != b->f[f])
			fail_msg("step %d: slot %u field %d: memory %lld, redis %lld", step, ep, f, (long long)a->f[f],
			         (long long)b->f[f]);
	for (int w = 0; w < STATE_NWINDOWS; w++)
		if (a->win[w] != b->win[w])
			fail_msg("step %d: slot %u window %d: memory %lld, redis %lld", step, ep, w, (long long)a->win[w],
			         (long long)b->win[w]);
}

/* Runs the same seeded sequence on memory and on st; every answer must
 * match.  Returns the number of operations. */
static int differential(struct state *st, uint64_t seed, int steps)
{
	static const struct pool_ep_cfg five[] = {
	        {"p", "https://p/d", 0, 1, 0, 0}, {"q", "https://q/d", 0, 2, 0, 0}, {"r", "https://r/d", 1, 1, 0, 0},
	        {"s", "https://s/d", 1, 3, 0, 0}, {"t", "https://t/d", 2, 1, 0, 0},
	};
	struct state_shape sh = shape_of(five, 5);
	struct state *mem = NULL;
	struct err e = ERR_INIT;
	assert_int_equal(state_open_memory(&mem, &sh, &e), CONVBI_OK);
	const struct state_ops *m = mem->ops, *r = st->ops;
	int64_t now = T0 + 3;
	rng = seed;
	for (int i = 0; i < steps; i++) {
		unsigned ep = (unsigned)rnd_in(0, 4);
		int field = (int)rnd_in(0, STATE_NFIELDS - 1);
		int64_t dt = rnd_in(0, 10) == 0 ? -rnd_in(0, 25000) : rnd_in(0, 4000);
		now += dt;
		switch (rnd_in(0, 13)) {
		case 11:
		case 12: { /* spending: periods around one day, the set or a slot */
			unsigned who = rnd_in(0, 5) == 5 ? STATE_SET_SLOT : ep;
			int which = (int)rnd_in(0, 1);
			uint32_t period = (uint32_t)(20790 + rnd_in(0, 3));
			int64_t amount = rnd_in(0, 4) == 0 ? -rnd_in(1, 900) : rnd_in(1, 3000);
			int64_t limit = rnd_in(0, 1) ? 0 : rnd_in(1000, 20000);
			int64_t a1 = -1, a2 = -2;
			assert_int_equal(m->spend_add(mem, who, which, period, amount, limit, &a1),
			                 r->spend_add(st, who, which, period, amount, limit, &a2));
			assert_int_equal(a1, a2);
			uint32_t q = (uint32_t)(20790 + rnd_in(0, 3));
			assert_int_equal(m->spend_get(mem, who, which, q), r->spend_get(st, who, which, q));
			if (rnd_in(0, 20) == 0) { /* a clear keeps what was spent */
				m->clear(mem, ep);
				r->clear(st, ep);
			}
			break;
		}
		case 0: {
			unsigned tier = (unsigned)rnd_in(0, 2);
			assert_int_equal(m->counter_next(mem, tier), r->counter_next(st, tier));
			break;
		}
		case 1:
		case 2: { /* a pick's run of loads: every slot, one now */
			int windows = (int)rnd_in(0, 1);
			for (unsigned k = 0; k < 5; k++) {
				struct state_snap a, b;
				m->load(mem, k, now, windows, &a);
				r->load(st, k, now, windows, &b);
				snap_equal(&a, &b, i, k);
			}
			break;
		}
		case 3: {
			struct state_snap a, b;
			m->load(mem, ep, now, 1, &a);
			r->load(st, ep, now, 1, &b);
			snap_equal(&a, &b, i, ep);
			break;
		}
		case 4: assert_int_equal(m->get(mem, ep, field), r->get(st, ep, field)); break;
		case 5: {
			int64_t d = rnd_in(-3, 5);
			if (rnd_in(0, 1)) {
				assert_int_equal(m->add(mem, ep, field, d), r->add(st, ep, field, d));
			} else { /* the pipelined add */
				m->bump(mem, ep, field, d);
				r->bump(st, ep, field, d);
			}
			break;
		}
		case 6: {
			int64_t v = rnd_in(0, 2) ? now + rnd_in(-5000, 60000) : rnd_in(-1, 3);
			m->store(mem, ep, field, v);
			r->store(st, ep, field, v);
			break;
		}
		case 7: {
			int64_t cur = m->get(mem, ep, field);
			int64_t expect = rnd_in(0, 1) ? cur : cur + rnd_in(1, 3);
			int64_t desired = now + rnd_in(0, 30000);
			assert_int_equal(m->cas(mem, ep, field, expect, desired), r->cas(st, ep, field, expect, desired));
			break;
		}
		case 8: {
			int64_t v = now + rnd_in(-10000, 60000);
			assert_int_equal(m->max(mem, ep, field, v), r->max(st, ep, field, v));
			break;
		}
		case 9:
		case 10: {
			int win = (int)rnd_in(0, 1);
			int64_t amount = rnd_in(0, 6) == 0 ? -rnd_in(1, 80) : rnd_in(1, 400);
			int64_t limit = rnd_in(0, 1) ? 0 : rnd_in(50, 2500);
			assert_int_equal(m->window_add(mem, ep, win, now, amount, limit),
			                 r->window_add(st, ep, win, now, amount, limit));
			break;
		}
		default:
			if (rnd_in(0, 40) == 0) {
				m->reset(mem);
				r->reset(st);
			}
			break;
		}
	}
	/* and a last full comparison */
	for (unsigned k = 0; k < 5; k++) {
		struct state_snap a, b;
		m->load(mem, k, now, 1, &a);
		r->load(st, k, now, 1, &b);
		snap_equal(&a, &b, steps, k);
	}
	state_close(mem);
	return steps;
}

static void redis_backend_answers_exactly_like_the_memory_backend_in_every_mode(void **state)
{
	static const struct pool_ep_cfg five[] = {
	        {"p", "https://p/d", 0, 1, 0, 0}, {"q", "https://q/d", 0, 2, 0, 0}, {"r", "https://r/d", 1, 1, 0, 0},
	        {"s", "https://s/d", 1, 3, 0, 0}, {"t", "https://t/d", 2, 1, 0, 0},
	};
	static const struct {
		const char *prefix;
		int cache_ms;
		unsigned flags;
	} modes[] = {
	        {"diff-default:", 0, 0},
	        {"diff-naive:", 0, STATE_REDIS_NO_BATCH | STATE_REDIS_NO_PIPELINE},
	        {"diff-cache:", 1 << 30, 0}, /* one writer: the write-through copy must stay exact */
	};
	struct rsrv s;
	srv_start(&s);
	struct state_shape sh = shape_of(five, 5);
	for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
		struct rs_open w = {.prefix = modes[i].prefix, .cache_ms = modes[i].cache_ms, .flags = modes[i].flags};
		struct state *st = open_state(&s, &w, &sh);
		assert_string_equal(state_describe(st), "redis");
		differential(st, 0x1234567ULL + i, 2500);
		struct state_redis_stats k;
		state_redis_stats(st, &k);
		assert_int_equal(k.fallbacks, 0);
		assert_int_equal(k.local_ops, 0);
		if (modes[i].flags)
			assert_int_equal(k.pipelined, 0);
		else
			assert_true(k.pipelined > 0 && k.snapshot_loads > 0);
		state_close(st);
	}
	/* the random stores write values no pool writes (a negative count, a
	 * rate of 1.7e12): both backends clear such a slot at its next load,
	 * alike, and say so; nothing else may be warned about */
	pthread_mutex_lock(&log_mu);
	for (const char *l = warning_text; *l; l = strchr(l, '\n') + 1)
		if (strncmp(l, "endpoint state ", 15) || !strstr(l, "held an impossible value") || !strchr(l, '\n'))
			fail_msg("unexpected warning: %.200s", l);
	pthread_mutex_unlock(&log_mu);
	srv_stop(&s);
}

static void a_pick_costs_two_round_trips_and_its_batch_of_loads_ends_with_the_pick(void **state)
{
	struct rsrv s;
	srv_start(&s);
	struct state *st;
	struct rs_open w = {.prefix = "rt:"};
	struct pool *p = open_pool(&s, &w, &st);
	struct state_redis_stats a, b;
	for (int i = 0; i < 6; i++)
		pick(p, T0); /* warm: every endpoint has been picked, its measurement started */
	state_redis_stats(st, &a);
	assert_true(pick(p, T0 + 1) >= 0);
	state_redis_stats(st, &b);
	/* HGETALL + the tier counter; the rpm/tpm-less window charge is pipelined */
	assert_int_equal(b.round_trips - a.round_trips, 2);
	assert_int_equal(b.snapshot_loads - a.snapshot_loads, 2);
	/* same thread, same now_ms, but a write in between: the next load reads again */
	report(p, 2, T0 + 1, POOL_RATE_LIMITED, 60000);
	for (int i = 0; i < 12; i++)
		assert_int_not_equal(pick(p, T0 + 1), 2);
	/* a pick that loads a and b only; another host cools c; then a pick of
	 * c alone at the same instant: c's load would continue the batch
	 * (higher slot, same thread, same now_ms), but the first pick's counter
	 * and claim ended it, so c is read afresh */
	struct rs_open wq = {.prefix = "rt:", .local = "rt-other"};
	struct pool *q = open_pool(&s, &wq, NULL);
	struct pool_pick k;
	assert_int_equal(pool_pick(p, T0 + 2, 1u << 2, 0, &k), CONVBI_OK);
	assert_true(k.ep == 0 || k.ep == 1);
	report(q, 2, T0 + 2, POOL_RATE_LIMITED, 90000);
	assert_int_equal(pool_pick(p, T0 + 2, 3u, 0, &k), CONVBI_OK);
	assert_int_equal(k.ep, -1);
	assert_int_equal(k.wait_ms, 90000);
	pool_close(q);
	pool_close(p);
	srv_stop(&s);
}

/* ---- several processes, one Redis ------------------------------------------------ */

static void processes_sharing_redis_keep_exact_global_round_robin(void **state)
{
	enum { PROCS = 4, PICKS = 90 };
	struct rsrv s;
	srv_start(&s);
	int go[2], res[PROCS][2];
	assert_int_equal(pipe(go), 0);
	pid_t kids[PROCS];
	for (int k = 0; k < PROCS; k++) {
		assert_int_equal(pipe(res[k]), 0);
		kids[k] = fork();
		assert_true(kids[k] >= 0);
		if (kids[k] == 0) { /* no cmocka in here: a message on the pipe */
			int out = res[k][1];
			close(go[1]);
			close(res[k][0]);
			char name[32], url[128], path[700];
			snprintf(name, sizeof name, "rr-local-%d", k);
			local_path(path, sizeof path, name);
			url_of(url, sizeof url, &s, NULL, 0);
			struct state_shape sh;
			struct state *st = NULL;
			struct pool *p = NULL;
			struct err e = ERR_INIT;
			struct state_redis_opts o = STATE_REDIS_OPTS_INIT;
			o.url = url;
			o.prefix = "rr:";
			o.local_path = path;
			o.timeout_ms = CALM_TIMEOUT_MS;
			if (pool_shape(&sh, W123, 3, &e) || state_open_redis(&st, &o, &sh, &e) ||
			    pool_open_state(&p, W123, 3, st, &e))
				child_done(out, 2, NULL);
			char c;
			if (read(go[0], &c, 1) != 0) /* EOF = everyone go */
				child_done(out, 2, NULL);
			int count[3] = {0, 0, 0};
			for (int i = 0; i < PICKS; i++) {
				int64_t now = clock_wall_ms();
				int ep = pick(p, now);
				if (ep < 0)
					child_done(out, 3, NULL);
				count[ep]++;
				report(p, ep, now, POOL_OK, -1);
			}
			struct state_redis_stats k2;
			state_redis_stats(st, &k2);
			pool_close(p);
			child_done(out, k2.local_ops == 0 && k2.fallbacks == 0 ? 0 : 4, count);
		}
		close(res[k][1]);
	}
	close(go[0]);
	usleep(200000);
	close(go[1]);
	int total[3] = {0, 0, 0};
	for (int k = 0; k < PROCS; k++) {
		struct child_msg m = child_wait(kids[k], res[k][0]);
		close(res[k][0]);
		if (m.status)
			fail_msg(
			        "child %d says %d (-1: died, 2: setup, 3: no endpoint, 4: used its local "
			        "state)",
			        k, m.status);
		for (int i = 0; i < 3; i++)
			total[i] += m.count[i];
	}
	/* 360 picks over weights 1:2:3 = 60 whole cycles */
	assert_int_equal(total[0], PROCS * PICKS / 6);
	assert_int_equal(total[1], 2 * PROCS * PICKS / 6);
	assert_int_equal(total[2], 3 * PROCS * PICKS / 6);
	/* the counter lives in Redis, and no child's local state saw a pick */
	redisContext *c = admin(&s);
	assert_non_null(c);
	struct state_shape sh = shape_of(W123, 3);
	assert_int_equal(cmd_int(c, "HGET rr:state1:%016llx t0", (unsigned long long)sh.set_hash), PROCS * PICKS);
	redisFree(c);
	for (int k = 0; k < PROCS; k++) {
		char name[32], path[700];
		struct state *loc = NULL;
		struct err e = ERR_INIT;
		snprintf(name, sizeof name, "rr-local-%d", k);
		local_path(path, sizeof path, name);
		assert_int_equal(state_open_file(&loc, path, &sh, &e), CONVBI_OK);
		assert_int_equal(loc->ops->counter_next(loc, 0), 0);
		state_close(loc);
	}
	assert_int_equal(warnings_now(), 0);
	srv_stop(&s);
}

struct worker {
	struct pool *p;
	int count[3];
	int bad;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < 150; i++) {
		int64_t now = clock_wall_ms();
		int ep = pick(w->p, now);
		if (ep < 0) {
			w->bad++;
			continue;
		}
		w->count[ep]++;
		report(w->p, ep, now, POOL_OK, -1);
	}
	return NULL;
}

static void threads_share_one_pool_and_connection_and_keep_exact_round_robin(void **state)
{
	enum { THREADS = 4 };
	struct rsrv s;
	srv_start(&s);
	struct state *st;
	struct rs_open w = {.prefix = "thr:", .local = "thr-local"};
	struct pool *p = open_pool(&s, &w, &st);
	struct worker wk[THREADS];
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++) {
		memset(&wk[i], 0, sizeof wk[i]);
		wk[i].p = p;
		assert_int_equal(pthread_create(&t[i], NULL, worker_run, &wk[i]), 0);
	}
	int total[3] = {0, 0, 0};
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(wk[i].bad, 0);
		for (int k = 0; k < 3; k++)
			total[k] += wk[i].count[k];
	}
	assert_int_equal(total[0], 100); /* 600 picks = 100 cycles of 1:2:3 */
	assert_int_equal(total[1], 200);
	assert_int_equal(total[2], 300);
	struct state_redis_stats k;
	state_redis_stats(st, &k);
	assert_int_equal(k.local_ops, 0);
	assert_int_equal(k.fallbacks, 0);
	struct pool_live lv;
	assert_int_equal(pool_live_get(p, 2, clock_wall_ms(), &lv), CONVBI_OK);
	assert_int_equal(lv.ok, 300);
	pool_close(p);
	srv_stop(&s);
}

/* A cooldown no convbi sets, planted in Redis, is cleared where it lives
 * at the first look -- never used, never carried into the local file and
 * merged back after a FLUSHALL; a key of the wrong type is named, with
 * the fix, in the fallback warning. */
static void impossible_values_in_redis_are_cleared_and_a_wrong_key_is_named(void **state)
{
	struct rsrv s;
	srv_start(&s);
	struct rs_open w = {.prefix = "bogus:", .local = "bogus-local"};
	struct state *st = NULL;
	struct pool *p = open_pool(&s, &w, &st);
	int64_t now = clock_wall_ms();
	assert_true(pick(p, now) >= 0);
	const char *key = state_redis_key(st);
	redisContext *c = admin(&s);
	cmd_int(c, "HSET %s 0.cool_until 99999999999999999 0.calls -5", key);
	log_reset();
	for (int i = 0; i < 6; i++)
		assert_true(pick(p, now + 1 + i) >= 0);
	struct pool_live lv;
	assert_int_equal(pool_live_get(p, 0, now + 10, &lv), CONVBI_OK);
	assert_true(lv.cool_until_ms < now + 10);
	assert_int_equal(warnings_now(), 1);
	assert_non_null(strstr(warning_text, "impossible value"));
	assert_non_null(strstr(warning_text, key));
	assert_non_null(strstr(warning_text, "endpoint a (https://a/dep) held")); /* by name and URL */
	assert_int_equal(cmd_int(c, "HEXISTS %s 0.cool_until", key), 0);          /* cleared in Redis itself */
	struct state_snap f;
	struct state *local = NULL;
	struct err e = ERR_INIT;
	char path[700];
	local_path(path, sizeof path, "bogus-local");
	struct state_shape sh = shape_of(W123, 3);
	assert_int_equal(state_open_file(&local, path, &sh, &e), CONVBI_OK);
	local->ops->load(local, 0, now + 10, 0, &f);
	assert_true(f.f[STATE_COOL_UNTIL] < now + STATE_AHEAD_MAX_MS); /* nothing to merge back */
	state_close(local);

	cmd_int(c, "DEL %s", key); /* a key of the wrong type */
	cmd_int(c, "SET %s garbage", key);
	log_reset();
	assert_true(pick(p, now + 20) >= 0);
	assert_int_equal(warnings_now(), 1);
	assert_non_null(strstr(warning_text, "WRONGTYPE"));
	assert_non_null(strstr(warning_text, key));
	assert_non_null(strstr(warning_text, "redis-cli DEL"));
	redisFree(c);
	pool_close(p);
	srv_stop(&s);
}

/* A foreign value in the spending hash or the secret is named as such:
 * blaming the state hash sent the operator to delete the fleet's state,
 * and the warning came back unchanged (attack9 F4). */
static void a_foreign_spend_or_secret_key_is_named_never_the_state_key(void **state)
{
	struct rsrv s;
	srv_start(&s);
	struct rs_open w = {.prefix = "alien:", .local = "alien-local"};
	struct state *st = NULL;
	struct pool *p = open_pool(&s, &w, &st);
	assert_true(pick(p, T0) >= 0);
	char key[256], spend[256], secret[256];
	snprintf(key, sizeof key, "%s", state_redis_key(st));
	const char *hash = strstr(key, "state1:");
	assert_non_null(hash);
	snprintf(spend, sizeof spend, "alien:spend1:%s", hash + 7);
	snprintf(secret, sizeof secret, "alien:secret1:%s", hash + 7);
	redisContext *c = admin(&s);
	assert_non_null(c);
	uint32_t day = state_period(STATE_SPEND_DAY, clock_wall_ms());
	int64_t after = 0;
	assert_int_equal(st->ops->spend_add(st, STATE_SET_SLOT, STATE_SPEND_DAY, day, 100, 0, &after), 1);
	assert_int_equal(cmd_int(c, "DEL %s", spend), 1);
	cmd_int(c, "SET %s string", spend); /* the spending hash now holds a string */
	log_reset();
	st->ops->spend_add(st, STATE_SET_SLOT, STATE_SPEND_DAY, day, 100, 0, &after);
	assert_int_equal(warnings_now(), 1);
	assert_non_null(strstr(warning_text, "WRONGTYPE"));
	char fix[300];
	snprintf(fix, sizeof fix, "redis-cli DEL %s,", spend);
	assert_non_null(strstr(warning_text, fix));
	assert_null(strstr(warning_text, key)); /* the state hash is fine: never blamed */
	assert_int_equal(cmd_int(c, "EXISTS %s", key), 1);
	pool_close(p);

	/* the secret: a string that is not 64 hex digits, then a hash */
	cmd_int(c, "DEL %s", spend);
	const char *const bad[] = {"SET %s not-hex", "HSET %s f v"};
	for (int i = 0; i < 2; i++) {
		cmd_int(c, "DEL %s", secret);
		cmd_int(c, bad[i], secret);
		log_reset();
		p = open_pool(&s, &w, &st);
		assert_int_equal(warnings_now(), 1);
		assert_non_null(strstr(warning_text, i ? "WRONGTYPE" : "not 64 hex digits"));
		snprintf(fix, sizeof fix, "redis-cli DEL %s,", secret);
		assert_non_null(strstr(warning_text, fix));
		assert_null(strstr(warning_text, key));
		pool_close(p);
	}
	cmd_int(c, "DEL %s", secret); /* the fix: the next process sets a new one and uses Redis */
	log_reset();
	p = open_pool(&s, &w, &st);
	assert_true(pick(p, T0 + 1) >= 0);
	assert_int_equal(warnings_now(), 0);
	assert_string_equal(state_describe(st), "redis");
	redisFree(c);
	pool_close(p);
	srv_stop(&s);
}

static void a_cooldown_or_breaker_set_by_one_process_is_seen_by_another_at_once(void **state)
{
	struct rsrv s;
	srv_start(&s);
	struct rs_open w = {.prefix = "cool:", .local = "cool-parent"};
	struct pool *p = open_pool(&s, &w, NULL);
	int64_t now = clock_wall_ms();
	assert_true(pick(p, now) >= 0); /* the parent has looked once */
	int res[2];
	assert_int_equal(pipe(res), 0);
	pid_t kid = fork();
	assert_true(kid >= 0);
	if (kid == 0) {
		close(res[0]);
		char url[128], path[700];
		url_of(url, sizeof url, &s, NULL, 0);
		local_path(path, sizeof path, "cool-child");
		struct state_shape sh;
		struct state *st = NULL;
		struct pool *q = NULL;
		struct err e = ERR_INIT;
		struct state_redis_opts o = STATE_REDIS_OPTS_INIT;
		o.url = url;
		o.prefix = "cool:";
		o.local_path = path;
		o.timeout_ms = CALM_TIMEOUT_MS;
		if (pool_shape(&sh, W123, 3, &e) || state_open_redis(&st, &o, &sh, &e) || pool_open_state(&q, W123, 3, st, &e))
			child_done(res[1], 2, NULL);
		report(q, 2, now, POOL_RATE_LIMITED, 60000); /* c: 429, retry in 60 s */
		for (int i = 0; i < POOL_BREAKER_THRESHOLD; i++)
			report(q, 1, now, POOL_TRANSPORT, -1); /* b: breaker opens */
		int local = 0;
		struct state_redis_stats k;
		state_redis_stats(st, &k);
		local = k.local_ops != 0;
		pool_close(q);
		pool_close(p); /* the parent's, inherited: its connection is only closed here, never used */
		child_done(res[1], local ? 4 : 0, NULL);
	}
	close(res[1]);
	struct child_msg m = child_wait(kid, res[0]);
	close(res[0]);
	assert_int_equal(m.status, 0);
	for (int i = 0; i < 30; i++) {
		int ep = pick(p, now + 1);
		assert_int_equal(ep, 0);
		report(p, ep, now + 1, POOL_OK, -1);
	}
	struct pool_live lv;
	assert_int_equal(pool_live_get(p, 2, now + 1, &lv), CONVBI_OK);
	assert_int_equal(lv.cool_until_ms, now + 60000);
	assert_int_equal(lv.rate_limited, 1);
	assert_int_equal(pool_live_get(p, 1, now + 1, &lv), CONVBI_OK);
	assert_int_equal(lv.breaker, POOL_BREAKER_OPEN);
	assert_int_equal(lv.failures, POOL_BREAKER_THRESHOLD);
	pool_close(p);
	srv_stop(&s);
}

static void with_cache_ms_own_writes_show_at_once_and_others_within_the_interval(void **state)
{
	struct rsrv s;
	srv_start(&s);
	struct state *sa;
	struct rs_open wa = {.prefix = "cache:", .cache_ms = 500, .local = "cache-a"};
	struct rs_open wb = {.prefix = "cache:", .local = "cache-b"};
	struct pool *a = open_pool(&s, &wa, &sa);
	struct pool *b = open_pool(&s, &wb, NULL);
	struct pool_live lv;
	assert_true(pick(a, T0) >= 0); /* a holds a snapshot taken at T0 */
	report(b, 2, T0, POOL_RATE_LIMITED, 60000);
	/* a's copy is younger than 500 ms: it does not know yet (the trade-off) */
	assert_int_equal(pool_live_get(a, 2, T0 + 100, &lv), CONVBI_OK);
	assert_int_equal(lv.cool_until_ms, 0);
	/* but its own report shows at once */
	report(a, 1, T0 + 100, POOL_RATE_LIMITED, 30000);
	assert_int_equal(pool_live_get(a, 1, T0 + 101, &lv), CONVBI_OK);
	assert_int_equal(lv.cool_until_ms, T0 + 100 + 30000);
	/* at 500 ms the copy is too old and is read again */
	assert_int_equal(pool_live_get(a, 2, T0 + 500, &lv), CONVBI_OK);
	assert_int_equal(lv.cool_until_ms, T0 + 60000);
	for (int i = 0; i < 10; i++)
		assert_int_equal(pick(a, T0 + 500 + i), 0);
	struct state_redis_stats k;
	state_redis_stats(sa, &k);
	assert_true(k.snapshot_loads > 10);
	pool_close(a);
	pool_close(b);
	srv_stop(&s);
}

/* ---- Redis going away --------------------------------------------------------------- */

static void redis_killed_mid_run_never_fails_a_pick_warns_once_and_resumes_after_restart(void **state)
{
	struct rsrv s;
	srv_start(&s);
	struct state *st;
	struct rs_open w = {.prefix = "kill:", .local = "kill-local", .timeout_ms = TIMEOUT_MS};
	struct pool *p = open_pool(&s, &w, &st);
	for (int i = 0; i < 12; i++) {
		int64_t now = clock_wall_ms();
		int ep = pick(p, now);
		assert_true(ep >= 0);
		report(p, ep, now, POOL_OK, -1);
	}
	assert_string_equal(state_describe(st), "redis");
	assert_int_equal(warnings_now(), 0);
	/* another host cools b; our next pick sees it, so the fallback must too */
	struct rs_open wq = {.prefix = "kill:", .local = "kill-other"};
	struct pool *q = open_pool(&s, &wq, NULL);
	int64_t b_until = clock_wall_ms() + 120000;
	report(q, 1, b_until - 120000, POOL_RATE_LIMITED, 120000);
	pool_close(q);
	int64_t now0 = clock_wall_ms();
	int ep0 = pick(p, now0);
	assert_true(ep0 == 0 || ep0 == 2);
	report(p, ep0, now0, POOL_OK, -1);

	srv_kill(&s);
	struct state_redis_stats before, after;
	state_redis_stats(st, &before);
	int64_t start = clock_mono_ms(), worst = 0, cool_until = 0;
	int picks = 0;
	while (clock_mono_ms() - start < 2500) {
		int64_t t = clock_mono_ms(), now = clock_wall_ms();
		int ep = pick(p, now);
		int64_t took = clock_mono_ms() - t;
		worst = took > worst ? took : worst;
		assert_true(ep == 0 || (ep == 2 && picks <= 5)); /* b: carried over; c: cooled below */
		if (picks == 5) {                                /* learned while Redis is away: must reach it later */
			report(p, 2, now, POOL_RATE_LIMITED, 120000);
			cool_until = now + 120000;
		} else {
			report(p, ep, now, POOL_OK, -1);
		}
		picks++;
		usleep(2000);
	}
	state_redis_stats(st, &after);
	assert_true(picks > (getenv("CONVBI_VALGRIND") ? 20 : 100));
	assert_true(worst <= TIMEOUT_MS + slack(150));
	assert_int_equal(warnings_now(), 1);
	assert_non_null(strstr(warning_text, "Redis at 127.0.0.1:"));
	assert_string_equal(state_describe(st), "file (redis unreachable)");
	/* lazily, with a backoff: never more than one attempt a second */
	assert_true(after.connects - before.connects <= 3);
	assert_true(after.local_ops > (uint64_t)picks);

	srv_restart(&s);
	int64_t t0 = clock_mono_ms();
	while (strcmp(state_describe(st), "redis") && clock_mono_ms() - t0 < 6000) {
		int64_t now = clock_wall_ms();
		int ep = pick(p, now);
		assert_true(ep >= 0);
		report(p, ep, now, POOL_OK, -1);
		usleep(20000);
	}
	assert_string_equal(state_describe(st), "redis");
	for (int i = 0; i < 6; i++) {
		int64_t now = clock_wall_ms();
		int ep = pick(p, now);
		assert_int_equal(ep, 0); /* b and c still cool: the local cooldowns were merged */
		report(p, ep, now, POOL_OK, -1);
	}
	redisContext *c = admin(&s);
	assert_non_null(c);
	const char *key = state_redis_key(st);
	assert_true(cmd_int(c, "HGET %s t0", key) >= 6);
	assert_int_equal(cmd_int(c, "HGET %s 1.cool_until", key), b_until);
	assert_int_equal(cmd_int(c, "HGET %s 2.cool_until", key), cool_until);
	redisFree(c);
	assert_int_equal(warnings_now(), 1); /* the comeback is an info, not a warning */
	assert_true(infos >= 1);
	pool_close(p);
	srv_stop(&s);
}

static void a_hung_redis_costs_one_timeout_then_picks_go_local_without_waiting(void **state)
{
	struct rsrv s;
	srv_start(&s);
	struct state *st;
	struct rs_open w = {.prefix = "hung:", .local = "hung-local", .timeout_ms = TIMEOUT_MS};
	struct pool *p = open_pool(&s, &w, &st);
	assert_true(pick(p, clock_wall_ms()) >= 0);
	kill(s.pid, SIGSTOP);
	int64_t t = clock_mono_ms();
	assert_true(pick(p, clock_wall_ms()) >= 0);
	int64_t first = clock_mono_ms() - t;
	assert_true(first >= TIMEOUT_MS - 20 && first <= TIMEOUT_MS + slack(150));
	assert_string_equal(state_describe(st), "file (redis unreachable)");
	t = clock_mono_ms();
	for (int i = 0; i < 50; i++)
		assert_true(pick(p, clock_wall_ms()) >= 0);
	assert_true(clock_mono_ms() - t < slack(100)); /* no waiting: the backoff is not due */
	assert_int_equal(warnings_now(), 1);
	assert_non_null(strstr(warning_text, "no reply within 200 ms"));
	kill(s.pid, SIGCONT);
	usleep(1100 * 1000);
	assert_true(pick(p, clock_wall_ms()) >= 0);
	assert_string_equal(state_describe(st), "redis");
	pool_close(p);
	srv_stop(&s);
}

static void a_server_gone_between_pipelined_writes_raises_no_sigpipe(void **state)
{
	struct rsrv s;
	srv_start(&s);
	struct state_shape sh = shape_of(W123, 3);
	struct rs_open w = {.prefix = "pipe:", .local = "pipe-local"};
	struct state *st = open_state(&s, &w, &sh);
	st->ops->store(st, 0, STATE_LAST_FAIL, 1); /* pipelined, reply unread */
	srv_kill(&s);
	for (int i = 0; i < 4; i++) { /* the first write draws a RST, the next ones EPIPE */
		usleep(30000);
		st->ops->store(st, 0, STATE_LAST_FAIL, 2 + i);
	}
	/* still alive (SIGPIPE is at its default, fatal disposition here) */
	assert_string_equal(state_describe(st), "file (redis unreachable)");
	assert_int_equal(st->ops->get(st, 0, STATE_LAST_FAIL), 5);
	assert_int_equal(warnings_now(), 1);
	sigset_t pend;
	sigpending(&pend);
	assert_false(sigismember(&pend, SIGPIPE));
	state_close(st);
	srv_stop(&s);
}

static void an_unreachable_redis_at_open_is_a_warning_not_an_error(void **state)
{
	int port = tu_free_port();
	char url[128], path[700];
	snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
	local_path(path, sizeof path, "nobody-local");
	struct state_shape sh = shape_of(W123, 3);
	struct state *st = NULL;
	struct pool *p = NULL;
	struct err e = ERR_INIT;
	struct state_redis_opts o = STATE_REDIS_OPTS_INIT;
	o.url = url;
	o.local_path = path;
	int64_t t = clock_mono_ms();
	assert_int_equal(state_open_redis(&st, &o, &sh, &e), CONVBI_OK);
	assert_true(clock_mono_ms() - t < STATE_REDIS_TIMEOUT_MS + slack(100));
	assert_int_equal(pool_open_state(&p, W123, 3, st, &e), CONVBI_OK);
	assert_string_equal(state_describe(st), "file (redis unreachable)");
	assert_int_equal(warnings_now(), 1);
	assert_non_null(strstr(warning_text, "cannot use Redis"));
	for (int i = 0; i < 20; i++)
		assert_true(pick(p, T0 + i) >= 0);
	assert_int_equal(warnings_now(), 1);
	/* a URL that does not parse is a configuration error */
	struct state *bad = NULL;
	o.url = "redis://:topsecret@h:99999/0";
	assert_int_equal(state_open_redis(&bad, &o, &sh, &e), CONVBI_ECONFIG);
	assert_null(bad);
	assert_null(strstr(e.msg, "topsecret"));
	pool_close(p);
}

static void opening_under_failing_allocations_returns_enomem_and_leaks_nothing(void **state)
{
	struct rsrv s;
	srv_start_pass(&s, "enomem-pass"); /* so the password's copy is on the way too */
	struct state_shape sh = shape_of(W123, 3);
	char url[128], path[700];
	url_of(url, sizeof url, &s, ":enomem-pass@", 0);
	local_path(path, sizeof path, "enomem-local");
	struct state_redis_opts o = STATE_REDIS_OPTS_INIT;
	o.url = url;
	o.prefix = "enomem:";
	o.local_path = path;
	o.timeout_ms = CALM_TIMEOUT_MS;
	int failed = 0, n;
	for (n = 1; n < 200; n++) {
		struct state *st = (struct state *)&n; /* must be reset to NULL on failure */
		struct err e = ERR_INIT;
		alloc_fail_at(n, 1);
		int rc = state_open_redis(&st, &o, &sh, &e);
		long used = alloc_fail_at(0, 0);
		if (rc == CONVBI_ENOMEM) {
			assert_null(st);
			failed++;
			continue;
		}
		assert_int_equal(rc, CONVBI_OK);
		assert_string_equal(state_describe(st), "redis");
		st->ops->counter_next(st, 0);
		state_close(st);
		if (used < n) /* every allocation succeeded: done */
			break;
	}
	assert_true(failed >= 5);
	assert_true(n < 200);
	srv_stop(&s);
}

/* ---- auth, databases, prefixes, expiry, the script cache --------------------------- */

static void auth_by_password_and_by_acl_user_and_a_wrong_password_falls_back_quietly(void **state)
{
	struct rsrv s;
	srv_start_pass(&s, "s3cret@pa:ss");
	struct state_shape sh = shape_of(W123, 3);
	struct rs_open w = {.prefix = "auth:", .cred = ":s3cret%40pa%3Ass@"};
	struct state *st = open_state(&s, &w, &sh);
	assert_string_equal(state_describe(st), "redis");
	st->ops->counter_next(st, 0);
	state_close(st);

	redisContext *c = admin(&s);
	assert_non_null(c);
	redisReply *rep = redisCommand(c, "ACL SETUSER fleet on >fleet-pass-42 ~auth:* +@all");
	assert_true(rep && rep->type == REDIS_REPLY_STATUS);
	freeReplyObject(rep);
	struct rs_open wu = {.prefix = "auth:", .cred = "fleet:fleet-pass-42@", .db = 3};
	st = open_state(&s, &wu, &sh);
	assert_string_equal(state_describe(st), "redis");
	assert_int_equal(st->ops->counter_next(st, 0), 0); /* db 3 is not db 0 */
	assert_int_equal(st->ops->counter_next(st, 0), 1);
	redisContext *c3 = admin_db(&s, 3);
	assert_non_null(c3);
	assert_int_equal(cmd_int(c3, "HGET %s t0", state_redis_key(st)), 2);
	assert_int_equal(cmd_int(c, "HGET %s t0", state_redis_key(st)), 1);
	redisFree(c3);
	state_close(st);
	assert_int_equal(warnings_now(), 0);

	struct rs_open wrong = {.prefix = "auth:", .cred = "fleet:not-the-fleet-pass@"};
	st = open_state(&s, &wrong, &sh);
	assert_string_equal(state_describe(st), "file (redis unreachable)");
	assert_int_equal(warnings_now(), 1);
	assert_non_null(strstr(warning_text, "authentication failed"));
	assert_null(strstr(warning_text, "not-the-fleet-pass"));
	state_close(st);

	struct rs_open none = {.prefix = "auth:"};
	st = open_state(&s, &none, &sh);
	assert_string_equal(state_describe(st), "file (redis unreachable)");
	assert_non_null(strstr(warning_text, "NOAUTH"));
	state_close(st);
	redisFree(c);
	srv_stop(&s);
}

static void two_prefixes_on_one_server_do_not_interfere(void **state)
{
	struct rsrv s;
	srv_start(&s);
	struct rs_open wa = {.prefix = "team-a:", .local = "pfx-a"};
	struct rs_open wb = {.prefix = "team-b:", .local = "pfx-b"};
	struct state *sa, *sb;
	struct pool *a = open_pool(&s, &wa, &sa);
	struct pool *b = open_pool(&s, &wb, &sb);
	assert_string_not_equal(state_redis_key(sa), state_redis_key(sb));
	int first_a = pick(a, T0), first_b;
	for (int i = 0; i < 5; i++)
		pick(a, T0);
	first_b = pick(b, T0);
	assert_int_equal(first_a, first_b); /* b's counter did not move with a's */
	report(a, 2, T0, POOL_RATE_LIMITED, 60000);
	struct pool_live lv;
	assert_int_equal(pool_live_get(b, 2, T0 + 1, &lv), CONVBI_OK);
	assert_int_equal(lv.cool_until_ms, 0);
	assert_int_equal(pool_live_get(a, 2, T0 + 1, &lv), CONVBI_OK);
	assert_int_equal(lv.cool_until_ms, T0 + 60000);
	pool_reset_state(b); /* b's reset leaves a alone */
	assert_int_equal(pool_live_get(a, 2, T0 + 2, &lv), CONVBI_OK);
	assert_int_equal(lv.cool_until_ms, T0 + 60000);
	pool_close(a);
	pool_close(b);
	srv_stop(&s);
}

static int64_t learned_of(struct pool *p, int ep, int64_t now)
{
	struct pool_live lv;
	assert_int_equal(pool_live_get(p, ep, now, &lv), CONVBI_OK);
	return lv.learned_rpm;
}

/* attack8 F8 for Redis: a FLUSHALL, or the keys expiring, under running
 * processes.  A process that notices its hash gone (its birth mark gone or
 * another's) puts back what it saw learned -- where another learned more
 * meanwhile, it lowers it, never raises it -- and a spending counter gone
 * starts from what it last saw there, never from 0.  Likewise the local
 * state a process falls back to when Redis goes. */
static void a_flushed_redis_gets_back_the_rates_and_spending_its_processes_knew(void **state)
{
	struct rsrv s;
	srv_start(&s);
	struct rs_open w = {.prefix = "flush:", .local = "flush"};
	struct state *sa, *sb;
	struct pool *a = open_pool(&s, &w, &sa);
	sa->ops->store(sa, 0, STATE_LEARN_RPM, 600);
	sa->ops->store(sa, 0, STATE_LEARN_FROM, POOL_LEARN_429);
	sa->ops->store(sa, 1, STATE_LEARN_RPM, 30);
	uint32_t day = state_period(STATE_SPEND_DAY, clock_wall_ms());
	int64_t after = 0;
	assert_int_equal(sa->ops->spend_add(sa, STATE_SET_SLOT, STATE_SPEND_DAY, day, 5000, 20000, &after), 1);
	assert_true(pick(a, T0) >= 0); /* a sees them */

	redisContext *c = admin(&s);
	assert_non_null(c);
	freeReplyObject(redisCommand(c, "FLUSHALL"));
	struct pool *b = open_pool(&s, &w, &sb); /* a newcomer finds nothing */
	assert_true(pick(b, T0 + 10) >= 0);
	assert_int_equal(learned_of(b, 0, T0 + 10), 0);
	sb->ops->store(sb, 0, STATE_LEARN_RPM, 1200); /* what its burst taught it */

	assert_true(pick(a, T0 + 20) >= 0); /* a notices, and puts back what it knew */
	assert_int_equal(learned_of(b, 0, T0 + 30), 600);
	assert_int_equal(learned_of(b, 1, T0 + 30), 30);
	assert_int_equal(sb->ops->get(sb, 0, STATE_LEARN_FROM), POOL_LEARN_429);
	/* the spending: a's next charge counts from what it saw, and b sees it */
	assert_int_equal(sa->ops->spend_add(sa, STATE_SET_SLOT, STATE_SPEND_DAY, day, 100, 20000, &after), 1);
	assert_int_equal(after, 5100);
	assert_int_equal(sb->ops->spend_get(sb, STATE_SET_SLOT, STATE_SPEND_DAY, day), 5100);

	/* the hash expiring (deleted) while a sleeps for its call: a puts it back as it goes */
	assert_true(cmd_int(c, "DEL %s", state_redis_key(sa)) == 1);
	pool_leave(a, T0 + 40);
	char field[32];
	snprintf(field, sizeof field, "0.learn_rpm");
	assert_int_equal(cmd_int(c, "HGET %s %s", state_redis_key(sa), field), 600);
	redisFree(c);
	pool_close(b);

	/* Redis gone: the local fallback, which never saw them, gets the rates too */
	srv_kill(&s);
	log_reset();
	assert_true(pick(a, T0 + 50) >= 0);
	assert_int_equal(warnings_now(), 1); /* the fallback's */
	assert_int_equal(sa->under->ops->get(sa->under, 0, STATE_LEARN_RPM), 600);
	assert_int_equal(learned_of(a, 1, T0 + 60), 30);
	pool_close(a);
	srv_stop(&s);
}

/* Every string and hash value under prefix, concatenated (a dump of what
 * Redis holds for it). */
static char *dump_prefix(redisContext *c, const char *prefix)
{
	size_t cap = 1 << 16, len = 0;
	char *out = calloc(1, cap);
	assert_non_null(out);
	redisReply *keys = redisCommand(c, "KEYS %s*", prefix);
	assert_true(keys && keys->type == REDIS_REPLY_ARRAY);
	for (size_t i = 0; i < keys->elements; i++) {
		const char *k = keys->element[i]->str;
		redisReply *t = redisCommand(c, "TYPE %s", k);
		int hash = t && t->type == REDIS_REPLY_STATUS && !strcmp(t->str, "hash");
		freeReplyObject(t);
		redisReply *v = hash ? redisCommand(c, "HGETALL %s", k) : redisCommand(c, "GET %s", k);
		assert_non_null(v);
		for (size_t j = 0; j < (v->type == REDIS_REPLY_ARRAY ? v->elements : 1); j++) {
			const redisReply *x = v->type == REDIS_REPLY_ARRAY ? v->element[j] : v;
			if (x->type == REDIS_REPLY_STRING && len + x->len + 2 < cap) {
				memcpy(out + len, x->str, x->len);
				len += x->len;
				out[len++] = '\n';
			}
		}
		freeReplyObject(v);
	}
	freeReplyObject(keys);
	return out;
}

static void the_key_fingerprint_secret_lives_in_redis_and_no_key_does(void **state)
{
	struct rsrv s;
	srv_start(&s);
	struct rs_open w1 = {.prefix = "fp:", .local = "fp-1"}, w2 = {.prefix = "fp:", .local = "fp-2"};
	struct rs_open other = {.prefix = "fp-other:", .local = "fp-3"};
	struct state *st1, *st2, *st3;
	struct pool *a = open_pool(&s, &w1, &st1), *b = open_pool(&s, &w2, &st2), *c3 = open_pool(&s, &other, &st3);
	const char *key = "k-redis-fp-4e1b7a";
	pool_set_key(a, 1, key, strlen(key));
	pool_set_key(b, 1, key, strlen(key));
	pool_set_key(c3, 1, key, strlen(key));
	uint64_t fp = pool_key_fp(a, 1);
	assert_true(fp != 0 && pool_key_fp(b, 1) == fp); /* one Redis state: one secret, one fingerprint */
	assert_true(pool_key_fp(c3, 1) != fp);           /* another prefix: another secret */
	unsigned char s1[STATE_SECRET_LEN], s2[STATE_SECRET_LEN];
	st1->ops->secret(st1, s1);
	st2->ops->secret(st2, s2);
	assert_memory_equal(s1, s2, sizeof s1);

	struct pool_outcome o = pool_outcome_of(POOL_BROKEN);
	o.auth = 1;
	pool_report(a, 1, T0, &o);
	struct pool_live lv;
	assert_int_equal(pool_live_get(b, 1, T0 + 1, &lv), CONVBI_OK);
	assert_false(lv.key_fp_other); /* the same key: held back */
	pool_set_key(b, 1, "k-redis-fp-fixed", 16);
	assert_int_equal(pool_live_get(b, 1, T0 + 1, &lv), CONVBI_OK);
	assert_true(lv.key_fp_other); /* a fixed key: free to go */

	redisContext *c = admin(&s);
	assert_non_null(c);
	char sk[256];
	const char *hash = strstr(state_redis_key(st1), "state1:");
	assert_non_null(hash);
	snprintf(sk, sizeof sk, "fp:secret1:%s", hash + 7);
	redisReply *r = redisCommand(c, "GET %s", sk);
	assert_true(r && r->type == REDIS_REPLY_STRING && r->len == 2 * STATE_SECRET_LEN);
	freeReplyObject(r);
	assert_true(cmd_int(c, "PTTL %s", sk) > 0);
	pool_reset_state(a); /* a reset forgets what was learned, not the secret */
	assert_int_equal(cmd_int(c, "EXISTS %s", sk), 1);
	pool_report(a, 1, T0 + 2, &o);
	char *all = dump_prefix(c, "fp:");
	assert_false(tu_contains(all, "k-redis-fp"));
	free(all);
	redisFree(c);
	pool_close(a);
	pool_close(b);
	pool_close(c3);
	srv_stop(&s);
}

static void keys_carry_a_ttl_so_a_stopped_fleet_leaves_nothing_behind(void **state)
{
	struct rsrv s;
	srv_start(&s);
	struct state_shape sh = shape_of(W123, 3);
	struct rs_open w = {.prefix = "ttl:"};
	struct state *st = open_state(&s, &w, &sh);
	st->ops->store(st, 1, STATE_COOL_UNTIL, T0);
	st->ops->get(st, 1, STATE_COOL_UNTIL); /* reads behind the pipelined store */
	redisContext *c = admin(&s);
	assert_non_null(c);
	long long pttl = cmd_int(c, "PTTL %s", state_redis_key(st));
	assert_true(pttl > STATE_REDIS_TTL_MS - 60000 && pttl <= STATE_REDIS_TTL_MS);
	state_close(st);

	struct rs_open shortl = {.prefix = "ttl-short:", .ttl_ms = 300};
	st = open_state(&s, &shortl, &sh);
	assert_int_equal(st->ops->counter_next(st, 0), 0);
	pttl = cmd_int(c, "PTTL %s", state_redis_key(st));
	assert_true(pttl > 0 && pttl <= 300);
	usleep(450 * 1000);
	assert_int_equal(cmd_int(c, "EXISTS %s", state_redis_key(st)), 0);
	assert_int_equal(st->ops->counter_next(st, 0), 0); /* fresh again */
	assert_int_equal(st->ops->get(st, 0, STATE_REM_REQ), -1);
	state_close(st);
	redisFree(c);
	srv_stop(&s);
}

static void a_flushed_script_cache_is_answered_with_eval_without_falling_back(void **state)
{
	struct rsrv s;
	srv_start(&s);
	struct state_shape sh = shape_of(W123, 3);
	struct rs_open w = {.prefix = "flush:"};
	struct state *st = open_state(&s, &w, &sh);
	redisContext *c = admin(&s);
	assert_non_null(c);
	redisReply *rep = redisCommand(c, "SCRIPT FLUSH");
	freeReplyObject(rep);
	st->ops->store(st, 0, STATE_OPEN_UNTIL, 77); /* pipelined: NOSCRIPT comes back later */
	st->ops->store(st, 1, STATE_OPEN_UNTIL, 78);
	assert_int_equal(st->ops->add(st, 2, STATE_CALLS, 5), 0);
	assert_int_equal(st->ops->get(st, 0, STATE_OPEN_UNTIL), 77);
	assert_int_equal(st->ops->get(st, 1, STATE_OPEN_UNTIL), 78);
	assert_int_equal(st->ops->get(st, 2, STATE_CALLS), 5);
	rep = redisCommand(c, "SCRIPT FLUSH");
	freeReplyObject(rep);
	assert_int_equal(st->ops->max(st, 0, STATE_COOL_UNTIL, T0), T0);
	struct state_redis_stats k;
	state_redis_stats(st, &k);
	assert_true(k.evals >= 3);
	assert_int_equal(k.fallbacks, 0);
	assert_string_equal(state_describe(st), "redis");
	assert_int_equal(warnings_now(), 0);
	state_close(st);
	redisFree(c);
	srv_stop(&s);
}

static void a_forked_child_opens_its_own_connection(void **state)
{
	struct rsrv s;
	srv_start(&s);
	struct state_shape sh = shape_of(W123, 3);
	struct rs_open w = {.prefix = "fork:"};
	struct state *st = open_state(&s, &w, &sh);
	assert_int_equal(st->ops->counter_next(st, 0), 0);
	int res[2];
	assert_int_equal(pipe(res), 0);
	pid_t kid = fork();
	assert_true(kid >= 0);
	if (kid == 0) {
		close(res[0]);
		int ok = 1;
		for (int i = 0; i < 50; i++)
			ok &= st->ops->counter_next(st, 0) > 0;
		struct state_redis_stats k;
		state_redis_stats(st, &k);
		ok = ok && k.local_ops == 0 && k.connects == 2;
		state_close(st); /* the child's copy, with the connection it opened */
		child_done(res[1], ok ? 0 : 1, NULL);
	}
	close(res[1]);
	for (int i = 0; i < 50; i++)
		assert_true(st->ops->counter_next(st, 0) > 0);
	struct child_msg m = child_wait(kid, res[0]);
	close(res[0]);
	assert_int_equal(m.status, 0);
	assert_int_equal(st->ops->counter_next(st, 0), 101);
	state_close(st);
	srv_stop(&s);
}

/* ---- through the LLM door --------------------------------------------------------------- */

static const char scenario3[] =
        "{\"endpoints\": ["
        "{\"name\":\"east\",\"api_key\":\"k-east-5c2a9e71d3\",\"deployment\":\"gpt-4o\"},"
        "{\"name\":\"west\",\"api_key\":\"k-west-0b8d3f6a2e\",\"deployment\":\"gpt-4o\"},"
        "{\"name\":\"north\",\"api_key\":\"k-north-7e4c1a9b5f\",\"deployment\":\"gpt-4o\"}],"
        "\"default_reply\": \"OK\"}";

static struct llm *llm_on(const struct fake *f, const char *extra)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/config.json", f->dir);
	assert_int_equal(fake_write_config(f, path, extra), 0);
	struct llm_config cfg;
	struct llm *l = NULL;
	struct err e = ERR_INIT;
	if (config_load(&cfg, path, &e))
		fail_msg("config: %s", e.msg);
	if (llm_open(&l, &cfg, &e))
		fail_msg("llm_open: %s", e.msg);
	return l;
}

static int ask(struct llm *l)
{
	struct chat_msg m = {"user", "hello"};
	struct llm_request req = {.msgs = &m, .n = 1, .temperature = -1};
	struct llm_reply rep;
	struct err e = ERR_INIT;
	int rc = llm_chat(l, &req, &rep, &e);
	llm_reply_release(&rep);
	return rc;
}

/* The one key under prefix on s (there must be exactly one), into out. */
static void only_key(char *out, size_t cap, const struct rsrv *s, const char *prefix)
{
	redisContext *c = admin(s);
	assert_non_null(c);
	redisReply *rep = redisCommand(c, "KEYS %s*", prefix);
	assert_true(rep && rep->type == REDIS_REPLY_ARRAY);
	if (rep->elements != 1)
		fail_msg("%zu keys under %s, expected one", rep->elements, prefix);
	snprintf(out, cap, "%s", rep->element[0]->str);
	freeReplyObject(rep);
	redisFree(c);
}

static long long hget(const struct rsrv *s, const char *key, const char *field)
{
	redisContext *c = admin(s);
	assert_non_null(c);
	long long v = cmd_int(c, "HGET %s %s", key, field);
	redisFree(c);
	return v;
}

/* An llm on f's endpoints whose state is Redis s under prefix. */
static struct llm *llm_on_redis(const struct fake *f, const struct rsrv *s, const char *prefix)
{
	char extra[512];
	snprintf(extra, sizeof extra,
	         "{\"state\": {\"backend\": \"redis\", \"url\": \"redis://127.0.0.1:%d/0\", "
	         "\"prefix\": \"%s\", \"timeout_ms\": %d}}",
	         s->port, prefix, TIMEOUT_MS);
	return llm_on(f, extra);
}

static void llm_calls_go_through_redis_never_fail_when_it_dies_and_resume_after_restart(void **state)
{
	struct rsrv s;
	srv_start(&s);
	struct fake f;
	assert_int_equal(fake_start(&f, scenario3), 0);
	char key[256];
	struct llm *l = llm_on_redis(&f, &s, "llm:");
	for (int i = 0; i < 9; i++)
		assert_int_equal(ask(l), CONVBI_OK);
	only_key(key, sizeof key, &s, "llm:state1:");
	assert_int_equal(hget(&s, key, "t0"), 9);
	assert_int_equal(hget(&s, key, "0.ok") + hget(&s, key, "1.ok") + hget(&s, key, "2.ok"), 9);

	srv_kill(&s);
	for (int i = 0; i < 20; i++)
		assert_int_equal(ask(l), CONVBI_OK);
	assert_int_equal(warnings_now(), 1);

	srv_restart(&s);
	usleep(1100 * 1000);
	int64_t t0 = clock_mono_ms();
	int calls = 0;
	long long n = NIL_REPLY;
	while (clock_mono_ms() - t0 < 8000) {
		assert_int_equal(ask(l), CONVBI_OK);
		calls++;
		redisContext *c = admin(&s);
		assert_non_null(c);
		n = cmd_int(c, "HGET %s t0", key);
		redisFree(c);
		if (n >= 3)
			break;
		usleep(50000);
	}
	assert_true(n >= 3); /* the restarted server carries the state again */
	assert_int_equal(warnings_now(), 1);
	assert_int_equal(fake_stat(&f, "east", "requests") + fake_stat(&f, "west", "requests") +
	                         fake_stat(&f, "north", "requests"),
	                 29 + calls);
	llm_close(l);
	fake_stop(&f);
	srv_stop(&s);
}

/* Each call: a 5-character prompt (2 tokens) with max_tokens 1 and the
 * reply "OK" (1 token), at 1,000 USD per million tokens: 3,000 micro-USD,
 * exactly its estimate. */
static const char scenario_priced[] =
        "{\"endpoints\": ["
        "{\"name\":\"east\",\"api_key\":\"k-east-5c2a9e71d3\",\"deployment\":\"gpt-4o\",\"latency_ms\":5,"
        "\"price\":{\"input\":1000,\"cached_input\":1000,\"output\":1000},"
        "\"client\":{\"price\":{\"input\":1000,\"output\":1000}}},"
        "{\"name\":\"west\",\"api_key\":\"k-west-0b8d3f6a2e\",\"deployment\":\"gpt-4o\",\"latency_ms\":5,"
        "\"price\":{\"input\":1000,\"cached_input\":1000,\"output\":1000},"
        "\"client\":{\"price\":{\"input\":1000,\"output\":1000}}}],"
        "\"default_reply\": \"OK\"}";

static void processes_sharing_redis_spend_one_budget_kept_in_its_own_hash(void **state)
{
	struct rsrv s;
	srv_start(&s);
	struct fake f;
	assert_int_equal(fake_start(&f, scenario_priced), 0);
	char extra[512];
	snprintf(extra, sizeof extra,
	         "{\"budget\": {\"daily\": 0.3}, \"state\": {\"backend\": \"redis\", \"url\": \"redis://127.0.0.1:%d/0\", "
	         "\"prefix\": \"spend:\", \"timeout_ms\": %d}}",
	         s.port, TIMEOUT_MS);
	char path[1024]; /* written once here: the children only read it */
	snprintf(path, sizeof path, "%s/spend.json", f.dir);
	assert_int_equal(fake_write_config(&f, path, extra), 0);
	enum { KIDS = 4 };
	pid_t pid[KIDS];
	int fds[KIDS];
	for (int k = 0; k < KIDS; k++) {
		int p[2];
		assert_int_equal(pipe(p), 0);
		pid[k] = fork();
		assert_true(pid[k] >= 0);
		if (pid[k] == 0) {
			close(p[0]);
			struct llm_config cfg;
			struct llm *l = NULL;
			struct err ce = ERR_INIT;
			if (config_load(&cfg, path, &ce) || llm_open(&l, &cfg, &ce))
				child_done(p[1], 2, NULL);
			int count[3] = {0, 0, 0}, rc;
			struct chat_msg m = {"user", "hello"};
			struct llm_request req = {.msgs = &m, .n = 1, .max_tokens = 1, .temperature = -1};
			do {
				struct llm_reply rep;
				struct err e = ERR_INIT;
				rc = llm_chat(l, &req, &rep, &e);
				llm_reply_release(&rep);
				count[rc == CONVBI_OK ? 0 : rc == CONVBI_EBUDGET ? 1 : 2]++;
			} while (rc == CONVBI_OK && count[0] < 1000);
			llm_close(l);
			child_done(p[1], 0, count);
		}
		close(p[1]);
		fds[k] = p[0];
	}
	int ok = 0;
	for (int k = 0; k < KIDS; k++) {
		struct child_msg msg = child_wait(pid[k], fds[k]);
		close(fds[k]);
		assert_int_equal(msg.status, 0);
		assert_int_equal(msg.count[1], 1); /* each ended on the budget */
		assert_int_equal(msg.count[2], 0);
		ok += msg.count[0];
	}
	assert_int_equal(ok, 100); /* $0.30 / $0.003, not a call more or less */
	double billed = fake_stat_num(&f, "east", "cost_usd") + fake_stat_num(&f, "west", "cost_usd");
	assert_true(billed > 0.299999 && billed < 0.300001);
	/* the spending lives in its own hash, with a TTL longer than a month */
	char key[256];
	only_key(key, sizeof key, &s, "spend:spend1:");
	redisContext *c = admin(&s);
	assert_non_null(c);
	redisReply *rep = redisCommand(c, "HGET %s set.day", key);
	assert_true(rep && rep->type == REDIS_REPLY_STRING);
	char want[64];
	snprintf(want, sizeof want, "%u:300000", state_period(STATE_SPEND_DAY, clock_wall_ms()));
	assert_string_equal(rep->str, want);
	freeReplyObject(rep);
	long long pttl = cmd_int(c, "PTTL %s", key);
	assert_true(pttl > STATE_REDIS_SPEND_TTL_MS - 60000 && pttl <= STATE_REDIS_SPEND_TTL_MS);
	redisFree(c);
	fake_stop(&f);
	srv_stop(&s);
}

/* A budget with Redis away: the fleet's spending is in Redis, and the local
 * fallback would start this host's from nothing -- a whole budget more.  So
 * a call is refused with one line naming Redis and the fix, unless
 * state.local_budgets accepts the local count; with Redis back, calls go. */
/* A call of scenario_priced's: 3,000 micro-USD. */
static int ask_priced(struct llm *l, struct err *e)
{
	struct chat_msg m = {"user", "hello"};
	struct llm_request req = {.msgs = &m, .n = 1, .max_tokens = 1, .temperature = -1};
	struct llm_reply rep;
	*e = (struct err)ERR_INIT;
	int rc = llm_chat(l, &req, &rep, e);
	llm_reply_release(&rep);
	return rc;
}

#define AWAY_CONFIG                                                                    \
	"{\"budget\": {\"daily\": 0.3}, \"state\": {\"backend\": \"redis\", \"url\": " \
	"\"redis://127.0.0.1:%d/0\", \"prefix\": \"away:\", \"timeout_ms\": %d, \"path\": \"%s\"%s}}"

static void a_budget_is_never_spent_from_the_local_fallback_while_redis_is_away(void **state)
{
	struct rsrv s;
	srv_start(&s);
	struct fake f;
	assert_int_equal(fake_start(&f, scenario_priced), 0);
	char extra[1024], local[600];
	local_path(local, sizeof local, "away.state");
	snprintf(extra, sizeof extra, AWAY_CONFIG, s.port, TIMEOUT_MS, local, "");
	struct llm *l = llm_on(&f, extra);
	struct err e = ERR_INIT;
	assert_int_equal(ask_priced(l, &e), CONVBI_OK);

	srv_kill(&s);
	assert_int_equal(ask_priced(l, &e), CONVBI_EBUDGET);
	print_message("%s\n", e.msg);
	char want[160];
	snprintf(want, sizeof want,
	         "the configuration's budget is shared through Redis, and Redis at 127.0.0.1:%d/0 cannot be reached (", s.port);
	assert_non_null(strstr(e.msg, "no model call was made: "));
	assert_non_null(strstr(e.msg, want));
	assert_non_null(strstr(e.msg, "set state.local_budgets to true"));
	assert_null(strchr(e.msg, '\n'));
	assert_int_equal(fake_stat(&f, "east", "requests") + fake_stat(&f, "west", "requests"), 1);
	llm_close(l);
	l = llm_on(&f, extra); /* a process that starts while Redis is away: the same */
	assert_int_equal(ask_priced(l, &e), CONVBI_EBUDGET);
	llm_close(l);

	/* accepted: each host counts in its local file meanwhile */
	char extra_lb[1024];
	snprintf(extra_lb, sizeof extra_lb, AWAY_CONFIG, s.port, TIMEOUT_MS, local, ", \"local_budgets\": true");
	struct llm *lb = llm_on(&f, extra_lb);
	assert_int_equal(ask_priced(lb, &e), CONVBI_OK);
	llm_close(lb);

	srv_restart(&s);
	l = llm_on(&f, extra);
	assert_int_equal(ask_priced(l, &e), CONVBI_OK);
	llm_close(l);
	assert_int_equal(fake_stat(&f, "east", "requests") + fake_stat(&f, "west", "requests"), 3);

	/* Redis up, but the spending hash holds something convbi did not write:
	 * the reservation itself fails over to the local fallback, and the call
	 * is refused all the same, never spent from there (attack9 F4's budget) */
	char spend[256];
	only_key(spend, sizeof spend, &s, "away:spend1:");
	redisContext *c = admin(&s);
	assert_non_null(c);
	cmd_int(c, "DEL %s", spend);
	cmd_int(c, "SET %s string", spend);
	l = llm_on(&f, extra);
	assert_int_equal(ask_priced(l, &e), CONVBI_EBUDGET);
	print_message("%s\n", e.msg);
	assert_non_null(strstr(e.msg, "budget is shared through Redis"));
	assert_int_equal(fake_stat(&f, "east", "requests") + fake_stat(&f, "west", "requests"), 3);
	llm_close(l);
	redisFree(c);
	fake_stop(&f);
	srv_stop(&s);
}

/* The calls counted in key over W123's three slots (an absent field is 0). */
static long long calls_in(const struct rsrv *s, const char *key)
{
	long long n = 0;
	for (int ep = 0; ep < 3; ep++) {
		char field[32];
		snprintf(field, sizeof field, "%d.calls", ep);
		long long v = hget(s, key, field);
		n += v > 0 ? v : 0;
	}
	return n;
}

/* `endpoints --reset` while Redis does not answer clears nothing and says
 * so: the local stand-in is nobody else's state.  With Redis back it clears. */
static void a_reset_that_cannot_reach_redis_clears_nothing_and_says_so(void **state)
{
	struct rsrv s;
	srv_start(&s);
	struct fake f;
	assert_int_equal(fake_start(&f, scenario3), 0);
	char key[256];
	struct llm *l = llm_on_redis(&f, &s, "rst:");
	assert_int_equal(ask(l), CONVBI_OK);
	only_key(key, sizeof key, &s, "rst:state1:");
	assert_int_equal(calls_in(&s, key), 1);
	kill(s.pid, SIGSTOP);
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	assert_int_equal(llm_endpoints_reset(l, NULL, &b, &e), CONVBI_ESTATE);
	assert_non_null(strstr(e.msg, "nothing was cleared"));
	buf_release(&b);
	kill(s.pid, SIGCONT);
	assert_int_equal(calls_in(&s, key), 1);
	llm_close(l);
	l = llm_on_redis(&f, &s, "rst:"); /* Redis answers: the reset reaches it */
	e = (struct err)ERR_INIT;
	assert_int_equal(llm_endpoints_reset(l, NULL, &b, &e), CONVBI_OK);
	buf_release(&b);
	assert_int_equal(calls_in(&s, key), 0);
	llm_close(l);
	fake_stop(&f);
	srv_stop(&s);
}

static void convbi_redis_url_in_the_environment_switches_llm_to_redis(void **state)
{
	struct rsrv s;
	srv_start(&s);
	struct fake f;
	assert_int_equal(fake_start(&f, scenario3), 0);
	char url[128], key[256];
	url_of(url, sizeof url, &s, NULL, 5);
	setenv("CONVBI_REDIS_URL", url, 1);
	struct llm *l = llm_on(&f, "{\"state\": {\"prefix\": \"env:\"}}");
	assert_int_equal(ask(l), CONVBI_OK);
	assert_int_equal(ask(l), CONVBI_OK);
	llm_close(l);
	unsetenv("CONVBI_REDIS_URL");
	redisContext *c = admin_db(&s, 5);
	assert_non_null(c);
	redisReply *rep = redisCommand(c, "KEYS env:state1:*");
	assert_true(rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 1);
	snprintf(key, sizeof key, "%s", rep->element[0]->str);
	freeReplyObject(rep);
	assert_int_equal(cmd_int(c, "HGET %s t0", key), 2);
	redisFree(c);
	/* and a bad URL there is a configuration error naming the variable */
	setenv("CONVBI_REDIS_URL", "redis://:leaky-secret@h:0/0", 1);
	char path[1024];
	snprintf(path, sizeof path, "%s/config.json", f.dir);
	struct llm_config cfg;
	struct err e = ERR_INIT;
	assert_int_equal(config_load(&cfg, path, &e), CONVBI_OK);
	assert_int_equal(llm_open(&l, &cfg, &e), CONVBI_ECONFIG);
	assert_non_null(strstr(e.msg, "CONVBI_REDIS_URL"));
	assert_null(strstr(e.msg, "leaky-secret"));
	unsetenv("CONVBI_REDIS_URL");
	fake_stop(&f);
	srv_stop(&s);
}

int main(void)
{
	signal(SIGPIPE, SIG_DFL); /* the backend must cope without help */
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(redis_backend_answers_exactly_like_the_memory_backend_in_every_mode, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(a_pick_costs_two_round_trips_and_its_batch_of_loads_ends_with_the_pick, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(processes_sharing_redis_keep_exact_global_round_robin, setup, teardown),
	        cmocka_unit_test_setup_teardown(threads_share_one_pool_and_connection_and_keep_exact_round_robin, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(impossible_values_in_redis_are_cleared_and_a_wrong_key_is_named, setup, teardown),
	        cmocka_unit_test_setup_teardown(a_foreign_spend_or_secret_key_is_named_never_the_state_key, setup, teardown),
	        cmocka_unit_test_setup_teardown(a_cooldown_or_breaker_set_by_one_process_is_seen_by_another_at_once, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(with_cache_ms_own_writes_show_at_once_and_others_within_the_interval, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(redis_killed_mid_run_never_fails_a_pick_warns_once_and_resumes_after_restart,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(a_hung_redis_costs_one_timeout_then_picks_go_local_without_waiting, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(a_server_gone_between_pipelined_writes_raises_no_sigpipe, setup, teardown),
	        cmocka_unit_test_setup_teardown(an_unreachable_redis_at_open_is_a_warning_not_an_error, setup, teardown),
	        cmocka_unit_test_setup_teardown(opening_under_failing_allocations_returns_enomem_and_leaks_nothing, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(auth_by_password_and_by_acl_user_and_a_wrong_password_falls_back_quietly, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(two_prefixes_on_one_server_do_not_interfere, setup, teardown),
	        cmocka_unit_test_setup_teardown(the_key_fingerprint_secret_lives_in_redis_and_no_key_does, setup, teardown),
	        cmocka_unit_test_setup_teardown(keys_carry_a_ttl_so_a_stopped_fleet_leaves_nothing_behind, setup, teardown),
	        cmocka_unit_test_setup_teardown(a_flushed_script_cache_is_answered_with_eval_without_falling_back, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(a_forked_child_opens_its_own_connection, setup, teardown),
	        cmocka_unit_test_setup_teardown(llm_calls_go_through_redis_never_fail_when_it_dies_and_resume_after_restart,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(a_reset_that_cannot_reach_redis_clears_nothing_and_says_so, setup, teardown),
	        cmocka_unit_test_setup_teardown(convbi_redis_url_in_the_environment_switches_llm_to_redis, setup, teardown),
	        cmocka_unit_test_setup_teardown(processes_sharing_redis_spend_one_budget_kept_in_its_own_hash, setup, teardown),
	        cmocka_unit_test_setup_teardown(a_budget_is_never_spent_from_the_local_fallback_while_redis_is_away, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(a_flushed_redis_gets_back_the_rates_and_spending_its_processes_knew, setup,
	                                        teardown),
	};
	return cmocka_run_group_tests(tests, setup_group, teardown_group);
}
