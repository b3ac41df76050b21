/* token.c -- the Entra ID token cache: one per identity, shared by threads and processes (see token.h).
 *
 * In the process: a mutex guards the token in use, its expiry and a
 * `refreshing` flag; one thread refreshes while the others either go on
 * with the old token (still valid) or wait on a condition variable (no
 * valid token).  Across processes: a cache file and a lock file in the
 * cache directory,
 *   <dir>/convbi-token-<uid>-<16 hex of the identity>.tok    the token
 *   <dir>/convbi-token-<uid>-<16 hex of the identity>.lock   flock'd
 * A refresher takes the lock (without waiting, when it still has a valid
 * token: if another process holds it, that one is refreshing), reads the
 * file, and uses the token there if it is not due for refresh and not the
 * one just refused; only otherwise does it fetch, then write the file
 * (a temp file renamed over it, so a reader sees the old token or the new
 * one, never half of one) and unlock.  A process killed while holding the
 * lock releases it with its descriptor.
 *
 * Both files are private: created 0600 without following links, and used
 * only if they are regular files of this user that nobody else can read
 * or write; anything else at those paths (another user's file, a link) is
 * left alone and the identity's token is then kept in-process, with one
 * warning.  The file holds "convbi-token 1\n<expires_ms> <lifetime_ms>\n
 * <token>\n".  Times are wall-clock Unix ms, as every process must agree.
 *
 * A failed refresh is held for TOKEN_FAIL_HOLD_MS: callers in that window
 * get its error rather than each asking the token service again (the
 * instance metadata service throttles); while the old token is still
 * valid they keep using it instead.
 */
#include "llm/token.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "convbi/convbi.h"
#include "llm/state.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/regfile.h"
#include "util/secret.h"

#define TOKEN_FILE_MAGIC "convbi-token 1\n"
#define TOKEN_FILE_MAX_BYTES (TOKEN_MAX_BYTES + 256)
#define TOKEN_LOCK_POLL_MS 5
#define REFRESH_SKIPPED 1 /* refresh_shared: another process is refreshing */

struct token_src {
	const struct auth_cfg *a; /* borrowed from the llm's config */
	struct http_client *http; /* borrowed */
	struct retry_cfg retry;
	char *path;              /* owned; the cache file, NULL = in-process only */
	char *lock_path;         /* owned */
	char *where;             /* owned; the token endpoint, for messages */
	pthread_mutex_t mu;      /* guards everything below */
	pthread_cond_t cv;       /* signalled when a refresh ends; CLOCK_MONOTONIC */
	int refreshing;          /* a thread of this process is refreshing */
	struct secret cur;       /* the token in use, "" = none */
	struct secret prev;      /* the one before (may still be on the wire) */
	uint64_t cur_fp;         /* fingerprint of cur, 0 = none */
	int64_t expires_ms;      /* Unix ms */
	int64_t refresh_ms;      /* Unix ms: refresh from then on */
	uint64_t rejected_fp;    /* the last token a service refused (401) */
	int64_t fail_until_mono; /* a failed refresh is held until then */
	struct err fail;         /* ... with this message */
	int file_warned;         /* the cache file problem was logged */
	atomic_long fetches;     /* tokens fetched from the service */
};

static uint64_t fp_of(const char *tok)
{
	uint64_t h = state_hash(STATE_HASH_INIT, tok, strlen(tok));
	return h ? h : 1;
}

/* The last moment a token may still be sent while another caller is
 * refreshing it: a fifth of the refresh margin before it expires. */
static int64_t usable_until(const struct token_src *t)
{
	return t->expires_ms - (t->expires_ms - t->refresh_ms) / 5;
}

static int have_token(const struct token_src *t)
{
	return t->cur_fp && t->cur_fp != t->rejected_fp;
}

/* ---- the cache files ----------------------------------------------------- */

static void warn_file(struct token_src *t, const char *what, int e)
{
	if (t->file_warned)
		return;
	t->file_warned = 1;
	log_warn("the Entra ID token cache %s %s%s%s; this process keeps its token to itself", t->path, what, e ? ": " : "",
	         e ? strerror(e) : "");
}

/* A descriptor of ours is usable only as a regular file of this user that
 * nobody else can read or write. */
static int private_file(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() && !(st.st_mode & 077);
}

static int open_lock(struct token_src *t)
{
	int fd = open(t->lock_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
	if (fd < 0) {
		warn_file(t, "lock cannot be opened", errno);
		return -1;
	}
	if (!private_file(fd)) {
		close(fd);
		warn_file(t, "lock is not a private file of this user (mode 0600)", 0);
		return -1;
	}
	return fd;
}

/* Takes the lock: at once or not at all when wait is 0, else polling
 * until deadline_mono.  0, EWOULDBLOCK, or ETIMEDOUT. */
static int take_lock(int fd, int wait, int64_t deadline_mono)
{
	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return errno;
		if (!wait)
			return EWOULDBLOCK;
		if (clock_mono_ms() >= deadline_mono)
			return ETIMEDOUT;
		clock_sleep_ms(TOKEN_LOCK_POLL_MS);
	}
}

/* Reads the cache file into v; 0 if it holds a well-formed token. */
static int read_file(struct token_src *t, struct token_val *v)
{
	memset(v, 0, sizeof *v);
	int fd = open(t->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno != ENOENT)
			warn_file(t, "cannot be read", errno);
		return -1;
	}
	char data[TOKEN_FILE_MAX_BYTES + 1];
	ssize_t n = -1;
	if (private_file(fd))
		n = read(fd, data, sizeof data - 1);
	else
		warn_file(t, "is not a private file of this user (mode 0600)", 0);
	close(fd);
	if (n <= 0 || n >= (ssize_t)sizeof data - 1)
		return -1;
	data[n] = '\0';
	long long expires = 0, lifetime = 0;
	int used = 0;
	size_t ml = strlen(TOKEN_FILE_MAGIC);
	int rc = -1;
	if (!strncmp(data, TOKEN_FILE_MAGIC, ml) && sscanf(data + ml, "%lld %lld\n%n", &expires, &lifetime, &used) == 2 &&
	    used > 0) {
		char *tok = data + ml + used, *end = strchr(tok, '\n');
		if (end && end > tok && lifetime > 0) {
			*end = '\0';
			if (strlen(tok) <= TOKEN_MAX_BYTES && (v->token = xstrdup(tok))) {
				v->expires_ms = expires;
				v->lifetime_ms = lifetime;
				rc = 0;
			}
		}
	}
	memset(data, 0, sizeof data);
	return rc;
}

static void write_file(struct token_src *t, const struct token_val *v)
{
	static atomic_uint seq;
	char tmp[4200];
	snprintf(tmp, sizeof tmp, "%s.%ld.%u.tmp", t->path, (long)getpid(), atomic_fetch_add(&seq, 1));
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		warn_file(t, "cannot be written", errno);
		return;
	}
	struct buf b = BUF_INIT;
	int ok = !buf_printf(&b, "%s%lld %lld\n%s\n", TOKEN_FILE_MAGIC, (long long)v->expires_ms, (long long)v->lifetime_ms,
	                     v->token);
	ok = ok && write(fd, b.data, b.len) == (ssize_t)b.len;
	if (b.data)
		memset(b.data, 0, b.cap);
	buf_release(&b);
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, t->path)) {
		warn_file(t, "cannot be written", errno);
		unlink(tmp);
	}
}

/* ---- the token service ------------------------------------------------- */

struct fetch_ctx {
	struct buf body;
};

static int on_body(void *payload, long status, const char *data, size_t n)
{
	struct fetch_ctx *c = payload;
	int rc = buf_add(&c->body, data, n);
	return rc == CONVBI_ETOOBIG ? 0 : rc; /* keep the head of a huge reply */
}

/* Worth another try: the service is busy, starting or briefly away. */
static int retryable(long status, int fail)
{
	return fail || status == 429 || status == 404 || status == 410 || status >= 500;
}

/* Reads the federated token (workload identity): the file is rotated by
 * the platform, so it is read at every exchange. */
static int read_federated(const struct auth_cfg *a, char **out, struct err *err)
{
	size_t len = 0;
	int e = regfile_read(a->token_file, TOKEN_FED_FILE_MAX_BYTES, out, &len, NULL);
	if (e == ENOMEM)
		return err_code(err, CONVBI_ENOMEM);
	if (e)
		return err_set(err, CONVBI_EAUTH, "cannot read the federated token file %s ($AZURE_FEDERATED_TOKEN_FILE): %s",
		               a->token_file,
		               e == REGFILE_NOT_REGULAR ? "not a regular file"
		               : e == EFBIG             ? "too large"
		                                        : strerror(e));
	while (len && ((*out)[len - 1] == '\n' || (*out)[len - 1] == '\r' || (*out)[len - 1] == ' '))
		(*out)[--len] = '\0';
	if (!len) {
		free(*out);
		*out = NULL;
		return err_set(err, CONVBI_EAUTH, "the federated token file %s ($AZURE_FEDERATED_TOKEN_FILE) is empty",
		               a->token_file);
	}
	return CONVBI_OK;
}

/* Asks the token service, with TOKEN_FETCH_TRIES tries, for a new token. */
static int fetch(struct token_src *t, int64_t deadline_mono, struct token_val *out, struct err *err)
{
	struct token_req req;
	struct fetch_ctx c;
	char *fed = NULL;
	int rc;
	token_req_init(&req);
	buf_init(&c.body, TOKEN_REPLY_MAX_BYTES);
	if (t->a->type == AUTH_WORKLOAD_IDENTITY && (rc = read_federated(t->a, &fed, err)))
		goto done;
	if ((rc = token_request(&req, t->a, fed))) {
		err_code(err, rc);
		goto done;
	}
	rc = CONVBI_EAUTH;
	for (int i = 0; i < TOKEN_FETCH_TRIES; i++) {
		const char *headers[2] = {req.header.data, "Accept: application/json"};
		struct http_call call = {.method = req.get ? "GET" : "POST",
		                         .url = req.url.data,
		                         .headers = headers,
		                         .nheaders = 2,
		                         .body = req.body.data,
		                         .body_len = req.body.len,
		                         .connect_timeout_ms = t->retry.connect_timeout_ms,
		                         .first_byte_timeout_ms = t->retry.first_byte_timeout_ms,
		                         .idle_timeout_ms = t->retry.idle_timeout_ms,
		                         .deadline_mono_ms = deadline_mono,
		                         .on_body = on_body,
		                         .payload = &c};
		struct http_result res;
		buf_reset(&c.body);
		int hrc = http_post(t->http, &call, &res);
		if (hrc == CONVBI_ENOMEM) {
			rc = err_code(err, CONVBI_ENOMEM);
			break;
		}
		atomic_fetch_add(&t->fetches, 1);
		if (!res.fail && res.status == 200) {
			rc = token_parse_reply(out, buf_str(&c.body), c.body.len, clock_wall_ms(), err);
			break;
		}
		char why[300];
		if (res.fail)
			snprintf(why, sizeof why, "%s%s%s", http_fail_name(res.fail), res.detail[0] ? ": " : "", res.detail);
		else
			token_error_text(why, sizeof why, res.status, buf_str(&c.body), c.body.len);
		rc = err_set(err, res.fail == HTTP_FAIL_DEADLINE ? CONVBI_ETIMEOUT : CONVBI_EAUTH, "%s", why);
		int64_t delay = 250LL << (2 * i);
		if (!retryable(res.status, res.fail) || res.fail == HTTP_FAIL_DEADLINE || i + 1 == TOKEN_FETCH_TRIES ||
		    clock_mono_ms() + delay >= deadline_mono)
			break;
		clock_sleep_ms(delay);
	}
	if (rc && rc != CONVBI_ENOMEM)
		err_prefix(err, "no Entra ID token (%s) from %s: ", config_auth_name(t->a->type), t->where);
done:
	if (fed) {
		memset(fed, 0, strlen(fed));
		free(fed);
	}
	buf_release(&c.body);
	token_req_release(&req);
	return rc;
}

/* One process's refresh: the cache file under the lock, else the service.
 * may_skip: the caller still has a valid token, so a lock held by another
 * process (which is refreshing) means REFRESH_SKIPPED rather than a wait.
 * On CONVBI_OK *out holds the new token. */
static int refresh_shared(struct token_src *t, int may_skip, uint64_t cur_fp, uint64_t rejected, int64_t deadline_mono,
                          struct token_val *out, struct err *err)
{
	int fd = t->path ? open_lock(t) : -1;
	if (fd < 0)
		return fetch(t, deadline_mono, out, err);
	int e = take_lock(fd, !may_skip, deadline_mono);
	if (e) {
		close(fd);
		if (e == EWOULDBLOCK)
			return REFRESH_SKIPPED;
		if (e == ETIMEDOUT)
			return err_set(err, CONVBI_ETIMEOUT,
			               "the deadline passed while another process fetched the Entra ID token from %s", t->where);
		warn_file(t, "lock cannot be taken", e);
		return fetch(t, deadline_mono, out, err);
	}
	int rc;
	struct token_val v;
	int64_t now = clock_wall_ms();
	if (read_file(t, &v) == 0) {
		uint64_t fp = fp_of(v.token);
		if (now < token_refresh_at(v.expires_ms, v.lifetime_ms) && fp != rejected && fp != cur_fp) {
			*out = v;
			rc = CONVBI_OK;
			goto unlock;
		}
		token_val_release(&v);
	}
	rc = fetch(t, deadline_mono, out, err);
	if (rc == CONVBI_OK)
		write_file(t, out);
unlock:
	flock(fd, LOCK_UN);
	close(fd);
	return rc;
}

/* Makes v the token in use (caller holds mu); v is consumed. */
static int adopt(struct token_src *t, struct token_val *v)
{
	if (secret_is_set(&t->prev)) {
		secret_forget(secret_value(&t->prev));
		secret_release(&t->prev);
	}
	t->prev = t->cur;
	memset(&t->cur, 0, sizeof t->cur);
	int rc = secret_set(&t->cur, v->token);
	if (rc == CONVBI_OK) {
		t->cur_fp = fp_of(v->token);
		t->expires_ms = v->expires_ms;
		t->refresh_ms = token_refresh_at(v->expires_ms, v->lifetime_ms);
	} else {
		t->cur_fp = 0;
	}
	token_val_release(v);
	return rc;
}

/* ---- the interface ---------------------------------------------------- */

int token_get(struct token_src *t, int64_t deadline_mono, struct buf *header, uint64_t *fp, struct err *err)
{
	int rc = CONVBI_OK;
	pthread_mutex_lock(&t->mu);
	for (;;) {
		int64_t now = clock_wall_ms();
		if (have_token(t) &&
		    (now < t->refresh_ms || (now < usable_until(t) && (t->refreshing || clock_mono_ms() < t->fail_until_mono))))
			break;
		if (t->refreshing) {
			if (clock_cond_wait_until(&t->cv, &t->mu, deadline_mono) == ETIMEDOUT &&
			    clock_mono_ms() >= deadline_mono) {
				rc = err_set(err, CONVBI_ETIMEOUT,
				             "the deadline passed while waiting for the Entra ID token from %s", t->where);
				goto out;
			}
			continue;
		}
		if (clock_mono_ms() < t->fail_until_mono) {
			rc = err_set(err, t->fail.code, "%s", t->fail.msg);
			goto out;
		}
		int may_skip = have_token(t) && now < usable_until(t);
		uint64_t cur_fp = t->cur_fp, rejected = t->rejected_fp;
		t->refreshing = 1;
		pthread_mutex_unlock(&t->mu);
		struct token_val v;
		struct err ferr = ERR_INIT;
		memset(&v, 0, sizeof v);
		int frc = refresh_shared(t, may_skip, cur_fp, rejected, deadline_mono, &v, &ferr);
		pthread_mutex_lock(&t->mu);
		t->refreshing = 0;
		pthread_cond_broadcast(&t->cv);
		if (frc == CONVBI_OK) {
			if ((rc = adopt(t, &v))) {
				err_code(err, rc);
				goto out;
			}
			t->fail_until_mono = 0;
			continue;
		}
		if (frc == REFRESH_SKIPPED)
			break; /* another process is refreshing; ours is still valid */
		if (frc == CONVBI_ENOMEM) {
			rc = err_code(err, frc);
			goto out;
		}
		if (frc != CONVBI_ETIMEOUT) {
			t->fail = ferr;
			t->fail_until_mono = clock_mono_ms() + TOKEN_FAIL_HOLD_MS;
		}
		if (have_token(t) && clock_wall_ms() < usable_until(t)) {
			log_warn("%s; the current token is used until it expires", ferr.msg);
			break;
		}
		rc = err_set(err, ferr.code, "%s", ferr.msg);
		goto out;
	}
	*fp = t->cur_fp;
	rc = buf_printf(header, "Authorization: Bearer %s", secret_value(&t->cur));
	if (rc)
		err_code(err, rc);
out:
	pthread_mutex_unlock(&t->mu);
	return rc;
}

void token_reject(struct token_src *t, uint64_t fp)
{
	pthread_mutex_lock(&t->mu);
	if (fp && fp == t->cur_fp)
		t->rejected_fp = fp;
	pthread_mutex_unlock(&t->mu);
}

long token_src_fetches(const struct token_src *t)
{
	return atomic_load(&((struct token_src *)t)->fetches);
}

const char *token_src_cache_path(const struct token_src *t)
{
	return t->path;
}

int token_src_open(struct token_src **out, const struct auth_cfg *a, const char *cache_dir, struct http_client *http,
                   const struct retry_cfg *retry, struct err *err)
{
	struct buf id = BUF_INIT, where = BUF_INIT;
	struct token_src *t = xcalloc(1, sizeof *t);
	*out = NULL;
	if (!t)
		return err_code(err, CONVBI_ENOMEM);
	t->a = a;
	t->http = http;
	t->retry = *retry;
	pthread_mutex_init(&t->mu, NULL);
	clock_cond_init(&t->cv);
	atomic_init(&t->fetches, 0);
	int rc = token_identity(&id, a);
	if (!rc)
		rc = token_endpoint_name(&where, a);
	if (!rc && !(t->where = buf_take(&where)))
		rc = CONVBI_ENOMEM;
	if (!rc && cache_dir) {
		uint64_t h = state_hash(STATE_HASH_INIT, id.data, id.len);
		struct buf p = BUF_INIT;
		if (buf_printf(&p, "%s/convbi-token-%ld-%016llx.tok", cache_dir, (long)geteuid(), (unsigned long long)h) ||
		    !(t->path = xstrdup(p.data)))
			rc = CONVBI_ENOMEM;
		p.len -= 4; /* the same name ending in .lock */
		if (!rc && (buf_puts(&p, ".lock") || !(t->lock_path = xstrdup(p.data))))
			rc = CONVBI_ENOMEM;
		buf_release(&p);
	}
	buf_release(&id);
	buf_release(&where);
	if (rc) {
		token_src_close(t);
		return err_code(err, rc);
	}
	*out = t;
	return CONVBI_OK;
}

void token_src_close(struct token_src *t)
{
	if (!t)
		return;
	if (secret_is_set(&t->prev))
		secret_forget(secret_value(&t->prev));
	if (secret_is_set(&t->cur))
		secret_forget(secret_value(&t->cur));
	secret_release(&t->prev);
	secret_release(&t->cur);
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->mu);
	free(t->path);
	free(t->lock_path);
	free(t->where);
	free(t);
}
