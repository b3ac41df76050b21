/* sessions.c -- the session table of `convbi serve`.
 *
 * A session is one conversation: an unguessable id (128 random bits as
 * hex), the database, the token that created it (only that token may use
 * it) and, from its first question on, a convbi_session.  The table is a
 * hash of open addressing over ids, capped at --max-sessions, and with
 * two tokens or more each token at its share (so that one tenant cannot
 * take every session); a session
 * idle longer than --session-idle-s is closed when the table needs room
 * and on each sweep.  A table of MCP conversations (sessions_set_lru) is
 * never full to a new one: it closes the least recently used conversation
 * no request holds (of the token, when the token holds its share).
 * Requests borrow a session (refs) so that closing it while a question
 * runs frees it only when that question ends.  Closing a session that is
 * answering (DELETE) cancels its question through the hook the question
 * set (sessions_watch); the session is unknown to every request from then
 * on but stays in the table, counting toward the caps, until the question
 * has ended (attack5 F2).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "serve/serve.h"
#include "util/strmap.h"

struct session_table {
	pthread_mutex_t lock;
	struct serve_session **slots; /* open addressing, NULL = empty */
	size_t nslots;
	int count, max;
	int token_cap; /* sessions one token may hold, 0 = no cap */
	int lru;       /* full: close the least recently used idle session */
	int64_t idle_ms;
};

struct session_table *sessions_new(int max, int idle_s)
{
	struct session_table *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->max = max;
	t->idle_ms = (int64_t)idle_s * 1000;
	t->nslots = 64;
	while (t->nslots < (size_t)max * 2)
		t->nslots *= 2;
	t->slots = calloc(t->nslots, sizeof *t->slots);
	if (!t->slots) {
		free(t);
		return NULL;
	}
	pthread_mutex_init(&t->lock, NULL);
	return t;
}

static void session_destroy(struct serve_session *ss)
{
	convbi_session_free(ss->conv);
	free(ss);
}

void sessions_free(struct session_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nslots; i++)
		if (t->slots[i])
			session_destroy(t->slots[i]);
	free(t->slots);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static size_t find_slot(const struct session_table *t, const char *id)
{
	size_t mask = t->nslots - 1;
	for (size_t i = strmap_hash(id) & mask;; i = (i + 1) & mask)
		if (!t->slots[i] || !strcmp(t->slots[i]->id, id))
			return i;
}

/* Removes slot i keeping every probe chain intact (backward shift). */
static void remove_slot(struct session_table *t, size_t i)
{
	size_t mask = t->nslots - 1;
	t->slots[i] = NULL;
	t->count--;
	for (size_t j = (i + 1) & mask; t->slots[j]; j = (j + 1) & mask) {
		struct serve_session *ss = t->slots[j];
		t->slots[j] = NULL;
		t->slots[find_slot(t, ss->id)] = ss;
	}
}

/* Drops a session from the table; it is destroyed now or by its last
 * borrower. */
static void unlink_session(struct session_table *t, size_t i)
{
	struct serve_session *ss = t->slots[i];
	remove_slot(t, i);
	ss->closed = 1;
	if (!ss->refs)
		session_destroy(ss);
}

/* Expires idle sessions and closes the connections of conversations
 * unused for SERVE_CONN_IDLE_MS; returns how many connections it closed. */
static int expire_locked(struct session_table *t)
{
	int64_t now = serve_now_ms(), closed = 0;
	for (size_t i = 0; i < t->nslots;) {
		struct serve_session *ss = t->slots[i];
		if (ss && !ss->refs && !ss->busy && now - ss->last_used_ms > t->idle_ms) {
			unlink_session(t, i); /* a shifted entry may now sit at i: look again */
			continue;
		}
		if (ss && ss->conv && ss->awake && !ss->refs && !ss->busy && now - ss->last_used_ms > SERVE_CONN_IDLE_MS) {
			convbi_session_idle(ss->conv); /* keeps the conversation, gives back the connection */
			ss->awake = 0;
			closed++;
		}
		i++;
	}
	return (int)closed;
}

int sessions_expire(struct session_table *t)
{
	pthread_mutex_lock(&t->lock);
	int closed = expire_locked(t);
	pthread_mutex_unlock(&t->lock);
	return closed;
}

void sessions_set_token_cap(struct session_table *t, int cap)
{
	pthread_mutex_lock(&t->lock);
	t->token_cap = cap;
	pthread_mutex_unlock(&t->lock);
}

void sessions_set_lru(struct session_table *t)
{
	pthread_mutex_lock(&t->lock);
	t->lru = 1;
	pthread_mutex_unlock(&t->lock);
}

/* Closes the least recently used session that no request holds -- of
 * `token` when only_token, else of anyone.  0, or -1 when every one is in
 * use. */
static int evict_lru_locked(struct session_table *t, int token, int only_token)
{
	size_t best = t->nslots;
	for (size_t i = 0; i < t->nslots; i++) {
		const struct serve_session *ss = t->slots[i];
		if (ss && !ss->refs && !ss->busy && (!only_token || ss->token == token) &&
		    (best == t->nslots || ss->last_used_ms < t->slots[best]->last_used_ms))
			best = i;
	}
	if (best == t->nslots)
		return -1;
	unlink_session(t, best);
	return 0;
}

static int token_sessions(const struct session_table *t, int token)
{
	int n = 0;
	for (size_t i = 0; i < t->nslots; i++)
		n += t->slots[i] && t->slots[i]->token == token;
	return n;
}

/* Seconds until the first session that could make room expires (of
 * `token` when only_token): the one idle longest, ceil, at least 1; 0 when
 * every one is in use (no time can be promised). */
static int retry_locked(const struct session_table *t, int token, int only_token)
{
	int64_t now = serve_now_ms(), best = -1;
	for (size_t i = 0; i < t->nslots; i++) {
		const struct serve_session *ss = t->slots[i];
		if (ss && !ss->refs && !ss->busy && (!only_token || ss->token == token)) {
			int64_t left = t->idle_ms - (now - ss->last_used_ms);
			if (best < 0 || left < best)
				best = left;
		}
	}
	return best < 0 ? 0 : best <= 1000 ? 1 : (int)((best + 999) / 1000);
}

int sessions_create(struct session_table *t, struct serve_db *db, int token, struct serve_session **out, int *token_full,
                    int *retry_s)
{
	*out = NULL;
	*token_full = 0;
	if (retry_s)
		*retry_s = 0;
	unsigned char raw[SESSION_ID_BYTES / 2];
	if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
		return CONVBI_EIO;
	struct serve_session *ss = calloc(1, sizeof *ss);
	if (!ss)
		return CONVBI_ENOMEM;
	for (size_t i = 0; i < sizeof raw; i++)
		snprintf(ss->id + 2 * i, 3, "%02x", raw[i]);
	ss->db = db;
	ss->token = token;
	ss->last_used_ms = serve_now_ms();
	ss->refs = 1;
	pthread_mutex_lock(&t->lock);
	int capped = token >= 0 && t->token_cap > 0;
	if (t->count >= t->max || (capped && token_sessions(t, token) >= t->token_cap))
		expire_locked(t);
	*token_full = capped && token_sessions(t, token) >= t->token_cap;
	if (t->lru && *token_full && !evict_lru_locked(t, token, 1))
		*token_full = 0;
	if (t->lru && !*token_full && t->count >= t->max)
		evict_lru_locked(t, token, 0);
	if (t->count >= t->max || *token_full) {
		if (retry_s)
			*retry_s = retry_locked(t, token, *token_full);
		pthread_mutex_unlock(&t->lock);
		free(ss);
		return CONVBI_ETOOBIG;
	}
	t->slots[find_slot(t, ss->id)] = ss;
	t->count++;
	pthread_mutex_unlock(&t->lock);
	*out = ss;
	return CONVBI_OK;
}

struct serve_session *sessions_get(struct session_table *t, const char *id, int token)
{
	if (strlen(id) != SESSION_ID_BYTES)
		return NULL;
	pthread_mutex_lock(&t->lock);
	struct serve_session *ss = t->slots[find_slot(t, id)];
	if (ss && (ss->token != token || ss->closing)) {
		ss = NULL; /* another token's session does not exist for this one, nor a closed one */
	} else if (ss && !ss->busy && !ss->refs && serve_now_ms() - ss->last_used_ms > t->idle_ms) {
		unlink_session(t, find_slot(t, id)); /* expired */
		ss = NULL;
	}
	if (ss) {
		ss->refs++;
		ss->last_used_ms = serve_now_ms();
	}
	pthread_mutex_unlock(&t->lock);
	return ss;
}

void sessions_release(struct session_table *t, struct serve_session *ss)
{
	if (!ss)
		return;
	pthread_mutex_lock(&t->lock);
	ss->last_used_ms = serve_now_ms();
	int destroy = --ss->refs == 0 && ss->closed;
	pthread_mutex_unlock(&t->lock);
	if (destroy)
		session_destroy(ss);
}

int sessions_close(struct session_table *t, const char *id, int token)
{
	if (strlen(id) != SESSION_ID_BYTES)
		return -1;
	pthread_mutex_lock(&t->lock);
	size_t i = find_slot(t, id);
	int rc = -1;
	struct serve_session *ss = t->slots[i];
	if (ss && ss->token == token && !ss->closing) {
		if (ss->busy) { /* canceled; unlinked when it has ended (sessions_end) */
			ss->closing = 1;
			if (ss->on_close)
				ss->on_close(ss->on_close_arg);
		} else {
			unlink_session(t, i);
		}
		rc = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int sessions_begin(struct session_table *t, struct serve_session *ss)
{
	pthread_mutex_lock(&t->lock);
	int rc = ss->busy || ss->closing || ss->closed ? -1 : 0;
	if (!rc)
		ss->busy = ss->awake = 1; /* the question (re)opens the connection */
	pthread_mutex_unlock(&t->lock);
	return rc;
}

void sessions_watch(struct session_table *t, struct serve_session *ss, void (*on_close)(void *), void *arg)
{
	pthread_mutex_lock(&t->lock);
	ss->on_close = on_close;
	ss->on_close_arg = arg;
	if (ss->closing)
		on_close(arg);
	pthread_mutex_unlock(&t->lock);
}

void sessions_end(struct session_table *t, struct serve_session *ss)
{
	pthread_mutex_lock(&t->lock);
	ss->busy = 0;
	ss->on_close = NULL;
	ss->on_close_arg = NULL;
	ss->last_used_ms = serve_now_ms();
	if (ss->closing && !ss->closed) /* the caller holds a reference: not destroyed here */
		unlink_session(t, find_slot(t, ss->id));
	pthread_mutex_unlock(&t->lock);
}

int sessions_count(struct session_table *t)
{
	pthread_mutex_lock(&t->lock);
	int n = t->count;
	pthread_mutex_unlock(&t->lock);
	return n;
}
