/* secret.c -- secret storage and the redaction registry (see secret.h).
 *
 * The registry is a small fixed table of copies of the keys (at most
 * SECRET_REGISTRY_MAX; keys shorter than 4 bytes are not registered since
 * they would match ordinary text).  A key once loaded stays redacted for
 * the life of the process; only rotating secrets (Entra ID tokens) are
 * taken out again, by secret_forget, once they are replaced.  Entries are
 * counted: a value registered twice (two engines holding the same token)
 * stays until both forget it.
 */
#include "util/secret.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "convbi/convbi.h"
#include "util/alloc.h"

#define SECRET_REGISTRY_MAX 256

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static char *reg_keys[SECRET_REGISTRY_MAX]; /* owned copies */
static int reg_refs[SECRET_REGISTRY_MAX];   /* secret_set calls not yet forgotten */
static int reg_n;

static void registry_add(const char *value)
{
	if (strlen(value) < 4)
		return;
	pthread_mutex_lock(&reg_lock);
	for (int i = 0; i < reg_n; i++)
		if (!strcmp(reg_keys[i], value)) {
			reg_refs[i]++;
			goto out;
		}
	if (reg_n < SECRET_REGISTRY_MAX) {
		char *copy = strdup(value);
		if (copy) {
			reg_refs[reg_n] = 1;
			reg_keys[reg_n++] = copy;
		}
	}
out:
	pthread_mutex_unlock(&reg_lock);
}

int secret_set(struct secret *s, const char *value)
{
	secret_release(s);
	if (!value)
		return CONVBI_OK;
	s->value_ = xstrdup(value);
	if (!s->value_)
		return CONVBI_ENOMEM;
	registry_add(value);
	return CONVBI_OK;
}

void secret_release(struct secret *s)
{
	if (!s || !s->value_)
		return;
	volatile char *p = s->value_;
	while (*p)
		*p++ = '\0';
	free(s->value_);
	s->value_ = NULL;
}

const char *secret_value(const struct secret *s)
{
	return s->value_ ? s->value_ : "";
}

int secret_is_set(const struct secret *s)
{
	return s->value_ && s->value_[0];
}

void secret_forget(const char *value)
{
	if (!value)
		return;
	pthread_mutex_lock(&reg_lock);
	for (int i = 0; i < reg_n; i++)
		if (!strcmp(reg_keys[i], value)) {
			if (--reg_refs[i] > 0)
				break;
			memset(reg_keys[i], 0, strlen(reg_keys[i]));
			free(reg_keys[i]);
			reg_n--;
			reg_keys[i] = reg_keys[reg_n];
			reg_refs[i] = reg_refs[reg_n];
			break;
		}
	pthread_mutex_unlock(&reg_lock);
}

void secret_redact(char *text)
{
	if (!text)
		return;
	pthread_mutex_lock(&reg_lock);
	for (int i = 0; i < reg_n; i++) {
		size_t klen = strlen(reg_keys[i]);
		char *hit;
		while ((hit = strstr(text, reg_keys[i])) != NULL)
			memset(hit, '*', klen);
	}
	pthread_mutex_unlock(&reg_lock);
}

/* ---- URLs as they may be shown -------------------------------------------- */

/* Appends n bytes of s to out[*len..cap - 1), always NUL-terminated. */
static void put_cut(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
	size_t room = cap - 1 - *len;
	if (n > room)
		n = room;
	memcpy(out + *len, s, n);
	*len += n;
	out[*len] = '\0';
}

void secret_url_shown(char *out, size_t cap, const char *url)
{
	size_t len = 0;
	if (!cap)
		return;
	out[0] = '\0';
	if (!url)
		return;
	const char *p = strstr(url, "://");
	p = p ? p + 3 : url;
	put_cut(out, cap, &len, url, (size_t)(p - url));
	size_t host = strcspn(p, "/?#");
	const char *at = NULL;
	for (const char *q = p; q < p + host; q++)
		if (*q == '@')
			at = q; /* the last '@': a password may hold one */
	if (at) {
		put_cut(out, cap, &len, "***", 3);
		p = at;
		host = strcspn(p, "/?#");
	}
	size_t path = host + strcspn(p + host, "?#");
	put_cut(out, cap, &len, p, path);
	p += path;
	if (*p == '?') {
		p++;
		put_cut(out, cap, &len, "?", 1);
		for (int first = 1; *p && *p != '#'; first = 0) {
			size_t n = strcspn(p, "&#"), name = strcspn(p, "=&#");
			if (!first)
				put_cut(out, cap, &len, "&", 1);
			if (name < n && name == 11 && !strncasecmp(p, "api-version", 11))
				put_cut(out, cap, &len, p, n);
			else if (name < n) {
				put_cut(out, cap, &len, p, name + 1);
				put_cut(out, cap, &len, "***", 3);
			} else
				put_cut(out, cap, &len, "***", 3);
			p += n;
			if (*p == '&')
				p++;
		}
	}
	if (*p == '#')
		put_cut(out, cap, &len, "#***", 4);
}
