/* reqlog.c -- the request log: one JSON object per line, flushed per line.
 *
 *   {"t_ms":<Unix ms when the request was read>, "endpoint":"east",
 *    "method":"POST", "path":"<target as sent, query included>",
 *    "headers":{<lowercased name>: <value>, ...}, "body":"<as sent>",
 *    "status":200, "fault":"none", "stream":false}
 * Repeated headers are joined with ", ".  The values of api-key and
 * authorization are never written: they become "<match>" when they carry the
 * endpoint's key (authorization: "Bearer <key>") and "<mismatch>" otherwise,
 * so a test can grep the whole log for a key and expect no hit.  The token
 * service's secrets are hidden too: a Bearer token it issued becomes
 * "<token>" ("<expired token>", "<revoked token>"), x-identity-header
 * "<match>"/"<mismatch>", and the client_secret and client_assertion of a
 * token request body "<redacted>" (entra.c).  Everything
 * else is logged verbatim (a key leaked into a URL or body shows up).
 * "status" is 0 when no reply was sent (reset, hang).  Control API requests
 * (/_fake/...) are logged too.  The line is built off-lock and written under
 * server.log_mu, so lines never interleave.
 */
#include "fake_aoai.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int reqlog_open(struct server *s, const char *path)
{
	pthread_mutex_init(&s->log_mu, NULL);
	s->log = NULL;
	if (!path)
		return 0;
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	s->log = f;
	return 0;
}

static const char *redact(struct server *s, const struct endpoint *ep, const char *name, const char *value)
{
	const char *t = entra_redact_header(s, name, value);
	if (t)
		return t;
	if (strcmp(name, "api-key") == 0)
		return strcmp(value, ep->api_key) == 0 ? "<match>" : "<mismatch>";
	if (strcmp(name, "authorization") == 0) {
		if (strncasecmp(value, "Bearer ", 7) != 0)
			return "<mismatch>";
		const char *k = value + 7;
		while (*k == ' ')
			k++;
		return strcmp(k, ep->api_key) == 0 ? "<match>" : "<mismatch>";
	}
	return NULL;
}

void reqlog_write(struct server *s, const struct endpoint *ep, const struct request *rq, int status, const char *fault,
                  int stream)
{
	if (!s->log)
		return;
	struct sbuf b = SBUF_INIT;
	const char *method = rq->method ? rq->method : "";
	const char *target = rq->target ? rq->target : "";
	sb_printf(&b, "{\"t_ms\":%lld,\"endpoint\":", (long long)(rq->t_ms ? rq->t_ms : wall_ms()));
	sb_json(&b, ep->name, strlen(ep->name));
	sb_puts(&b, ",\"method\":");
	sb_json(&b, method, strlen(method));
	sb_puts(&b, ",\"path\":");
	sb_json(&b, target, strlen(target));
	sb_puts(&b, ",\"headers\":{");
	int first = 1;
	for (int i = 0; i < rq->nh; i++) {
		const char *name = rq->h[i].name;
		int seen = 0;
		for (int j = 0; j < i && !seen; j++)
			seen = strcmp(rq->h[j].name, name) == 0;
		if (seen)
			continue; /* already written, joined with its repeats */
		struct sbuf v = SBUF_INIT;
		for (int j = i; j < rq->nh; j++) {
			if (strcmp(rq->h[j].name, name) != 0)
				continue;
			if (v.len)
				sb_puts(&v, ", ");
			const char *r = redact(s, ep, name, rq->h[j].value);
			sb_puts(&v, r ? r : rq->h[j].value);
		}
		if (!first)
			sb_puts(&b, ",");
		first = 0;
		sb_json(&b, name, strlen(name));
		sb_puts(&b, ":");
		sb_json(&b, v.p ? v.p : "", v.len);
		sb_release(&v);
	}
	sb_puts(&b, "},\"body\":");
	if (rq->path && entra_is_token_path(rq->path) && rq->body) {
		char *safe = entra_redact_body(rq->body);
		sb_json(&b, safe, strlen(safe));
		free(safe);
	} else {
		sb_json(&b, rq->body ? rq->body : "", rq->body_len);
	}
	sb_printf(&b, ",\"status\":%d,\"fault\":", status);
	sb_json(&b, fault, strlen(fault));
	sb_printf(&b, ",\"stream\":%s}\n", stream ? "true" : "false");

	pthread_mutex_lock(&s->log_mu);
	fwrite(b.p, 1, b.len, s->log);
	fflush(s->log);
	pthread_mutex_unlock(&s->log_mu);
	sb_release(&b);
}

void reqlog_seal(struct server *s)
{
	pthread_mutex_lock(&s->log_mu);
	if (s->log)
		fflush(s->log);
	/* the mutex stays locked: the process is about to _exit */
}
