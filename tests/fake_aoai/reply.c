/* reply.c -- what the fake answers: reading a chat request and choosing
 * the reply text from the scenario's rules.
 *
 * The text the rules search is every message's content joined with "\n"
 * (a content may be a string or an array of {"type":"text","text":...}
 * parts, whose texts are concatenated).  Rules are tried in order; the
 * first whose regex matches decides:
 *   reply "text $1"    the template with $0..$9 replaced by capture groups
 *                      (an unset group is empty; '$' before anything but a
 *                      digit is a plain '$')
 *   reply {"echo":1}   the last user message
 *   map_file           the map's value for capture group 1 (exact key), else
 *                      the rule's "default" template, else default_reply
 *   sequence           the rule's next template; the last one repeats
 * "reply_bytes": N then repeats the chosen text (or a filler sentence) and
 * cuts it to exactly N bytes, never inside a UTF-8 sequence (spaces pad).
 * No match: the scenario's default_reply, verbatim.
 */
#include "fake_aoai.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char JSON_PARSE_MSG[] =
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
        "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
        "sent was not valid JSON.)";
static const char FILLER[] = "The quick brown fox jumps over the lazy dog. ";

/* ---- the request ----------------------------------------------------------- */

/* The text of one message's content (a string, or the concatenated texts
 * of a parts array); NULL when it has none (e.g. a tool call).  Caller frees. */
static char *content_text(const cJSON *content)
{
	if (cJSON_IsString(content))
		return xstrdup(content->valuestring);
	if (!cJSON_IsArray(content))
		return NULL;
	struct sbuf b = SBUF_INIT;
	const cJSON *part;
	cJSON_ArrayForEach(part, content)
	{
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
		if (cJSON_IsString(t))
			sb_puts(&b, t->valuestring);
	}
	return sb_take(&b);
}

int chat_parse(struct chat *ch, const char *body, size_t len, char *err, size_t errlen)
{
	struct sbuf prompt = SBUF_INIT;
	cJSON *root = NULL;
	int rc = -1, first = 1;

	memset(ch, 0, sizeof *ch);
	ch->max_tokens = -1;
	ch->n = 1;
	ch->last_user = xstrdup("");
	root = len ? cJSON_ParseWithLength(body, len) : NULL;
	if (!cJSON_IsObject(root)) {
		snprintf(err, errlen, "%s", JSON_PARSE_MSG);
		goto done;
	}
	ch->stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "stream"));
	const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
	ch->include_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
	const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "max_completion_tokens");
	if (!cJSON_IsNumber(mt))
		mt = cJSON_GetObjectItemCaseSensitive(root, "max_tokens");
	if (cJSON_IsNumber(mt) && mt->valuedouble >= 0 && mt->valuedouble < 1e9)
		ch->max_tokens = (long)mt->valuedouble;
	const cJSON *nc = cJSON_GetObjectItemCaseSensitive(root, "n");
	if (nc && (!cJSON_IsNumber(nc) || nc->valuedouble < 1 || nc->valuedouble > FK_MAX_CHOICES ||
	           nc->valuedouble != (double)(int)nc->valuedouble)) {
		snprintf(err, errlen, "Invalid 'n': an integer from 1 to %d is expected", FK_MAX_CHOICES);
		goto done;
	}
	if (nc)
		ch->n = (int)nc->valuedouble;
	const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
	if (cJSON_IsString(model))
		ch->model = xstrdup(model->valuestring);

	const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
	if (!cJSON_IsArray(msgs)) {
		snprintf(err, errlen, "'messages' is a required property");
		goto done;
	}
	if (cJSON_GetArraySize(msgs) == 0) {
		snprintf(err, errlen, "[] is too short - 'messages'");
		goto done;
	}
	const cJSON *m;
	cJSON_ArrayForEach(m, msgs)
	{
		if (!cJSON_IsObject(m)) {
			snprintf(err, errlen, "each of 'messages' must be an object");
			goto done;
		}
		char *text = content_text(cJSON_GetObjectItemCaseSensitive(m, "content"));
		if (!text)
			continue;
		if (!first)
			sb_add(&prompt, "\n", 1);
		first = 0;
		size_t n = strlen(text);
		sb_add(&prompt, text, n);
		ch->content_chars += n;
		const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
		if (cJSON_IsString(role) && strcmp(role->valuestring, "user") == 0) {
			free(ch->last_user);
			ch->last_user = text;
		} else {
			free(text);
		}
	}
	rc = 0;
done:
	cJSON_Delete(root);
	ch->prompt_len = prompt.len;
	ch->prompt = sb_take(&prompt);
	return rc;
}

void chat_release(struct chat *ch)
{
	if (!ch)
		return;
	free(ch->prompt);
	free(ch->last_user);
	free(ch->model);
	memset(ch, 0, sizeof *ch);
}

/* ---- rules ------------------------------------------------------------------ */

struct groups {
	const char *subject;
	const PCRE2_SIZE *ov; /* ovector: pairs of offsets */
	int n;                /* pairs set by the match */
};

static void group(const struct groups *g, int i, const char **s, size_t *len)
{
	*s = "";
	*len = 0;
	if (i < g->n && g->ov[2 * i] != PCRE2_UNSET) {
		*s = g->subject + g->ov[2 * i];
		*len = g->ov[2 * i + 1] - g->ov[2 * i];
	}
}

static char *expand(const char *tmpl, const struct groups *g)
{
	struct sbuf b = SBUF_INIT;
	const char *p = tmpl;
	for (;;) {
		const char *d = strchr(p, '$');
		if (!d) {
			sb_puts(&b, p);
			break;
		}
		sb_add(&b, p, (size_t)(d - p));
		if (d[1] >= '0' && d[1] <= '9') {
			const char *s;
			size_t len;
			group(g, d[1] - '0', &s, &len);
			sb_add(&b, s, len);
			p = d + 2;
		} else {
			sb_add(&b, "$", 1);
			p = d + 1;
		}
	}
	return sb_take(&b);
}

static int mapent_find(const void *key, const void *ent)
{
	return strcmp(key, ((const struct mapent *)ent)->key);
}

static char *rule_reply(struct scenario *sc, struct rule *r, const struct chat *ch, const struct groups *g)
{
	switch (r->kind) {
	case REPLY_TEXT: return expand(r->text, g);
	case REPLY_ECHO: return xstrdup(ch->last_user);
	case REPLY_FILL: return xstrdup("");
	case REPLY_MAP: {
		const char *s;
		size_t len;
		group(g, 1, &s, &len);
		char *key = xstrndup(s, len);
		const struct mapent *e = bsearch(key, r->map, r->nmap, sizeof *r->map, mapent_find);
		free(key);
		if (e)
			return xstrdup(e->val);
		return r->map_default ? expand(r->map_default, g) : xstrdup(sc->default_reply);
	}
	case REPLY_SEQUENCE: {
		pthread_mutex_lock(&sc->mu);
		int i = r->seq_next < r->nseq ? r->seq_next : r->nseq - 1;
		if (r->seq_next < r->nseq)
			r->seq_next++;
		pthread_mutex_unlock(&sc->mu);
		return expand(r->seq[i], g);
	}
	}
	return xstrdup(sc->default_reply);
}

/* Repeats text (or the filler) to exactly n bytes.  The cut never lands
 * inside a UTF-8 sequence: the tail is padded with spaces instead, so the
 * JSON encoder never has to replace a broken sequence (which would change
 * the size the test asked for). */
static char *fill_to(const char *text, long n)
{
	const char *unit = *text ? text : FILLER;
	size_t ulen = strlen(unit), len = (size_t)n;
	char *out = xmalloc(len + 1);
	for (size_t i = 0; i < len; i += ulen)
		memcpy(out + i, unit, len - i < ulen ? len - i : ulen);
	size_t cut = len;
	while (cut > 0 && ((unsigned char)out[cut - 1] & 0x80)) {
		size_t start = cut - 1;
		while (start > 0 && ((unsigned char)out[start] & 0xC0) == 0x80)
			start--;
		if (utf8_seq_len((const unsigned char *)out + start, cut - start) == (int)(cut - start))
			break; /* the last sequence is whole */
		cut = start;
	}
	memset(out + cut, ' ', len - cut);
	out[len] = '\0';
	return out;
}

char *reply_pick(struct scenario *sc, const struct chat *ch)
{
	for (int i = 0; i < sc->nrules; i++) {
		struct rule *r = &sc->rules[i];
		pcre2_match_data *md = pcre2_match_data_create_from_pattern(r->re, NULL);
		if (!md)
			continue;
		int rc = pcre2_match(r->re, (PCRE2_SPTR)ch->prompt, ch->prompt_len, 0, 0, md, NULL);
		if (rc <= 0) { /* no match, or a match error such as a hit limit */
			pcre2_match_data_free(md);
			continue;
		}
		struct groups g = {ch->prompt, pcre2_get_ovector_pointer(md), rc};
		char *text = rule_reply(sc, r, ch, &g);
		pcre2_match_data_free(md);
		if (r->reply_bytes > 0) {
			char *filled = fill_to(text, r->reply_bytes);
			free(text);
			text = filled;
		}
		return text;
	}
	return xstrdup(sc->default_reply);
}
