/* input.c -- the checks a request's JSON text passes before cJSON sees it.
 *
 * cJSON turns "\u0000" into a NUL byte that ends the C string (so
 * {"sql":"SELECT 1\u0000; DELETE ..."} would run "SELECT 1"), stops at a
 * raw NUL, and keeps bytes that are not UTF-8 as they are (and then prints
 * them back into a response that is no longer valid JSON).  One lexical
 * pass over the text refuses all three, and objects or arrays nested
 * deeper than SERVE_JSON_DEPTH_MAX, and a leading byte order mark (RFC
 * 8259 8.1), with one line naming the field: the
 * innermost object key around the bad string ("sql", "question", "id").
 * Syntax is left to cJSON; input_parse_json then refuses what cJSON
 * lets through: text after the value, and a key twice in one object
 * (cJSON would use the first, a proxy checking the last sees another
 * request).
 * The fields' rules -- types, null, a question's options -- are here too,
 * one statement of them for REST and MCP (input_field_problem,
 * input_question).
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"
#include "util/clock.h"
#include "util/utf8.h"

#define FIELD_SHOWN_BYTES 40 /* of a field name in a message */

struct scope {
	int object;      /* 1 = {, 0 = [ */
	const char *key; /* the current key (into the text), NULL = none yet */
	size_t key_len;
};

/* The innermost key around a string at this scope ("" = none: a bare
 * value, or the string is itself a key). */
static void field_of(const struct scope *sc, int depth, int is_key, char *field, size_t cap)
{
	field[0] = '\0';
	for (int d = depth; !is_key && d >= 1; d--)
		if (sc[d].key) {
			int shown = sc[d].key_len > FIELD_SHOWN_BYTES ? FIELD_SHOWN_BYTES : (int)sc[d].key_len;
			snprintf(field, cap, "%.*s", shown, sc[d].key);
			return;
		}
}

/* The keys from the top down to a string at this scope, joined with dots
 * ("params.arguments.today"; an array adds nothing): where it is. */
static void path_of(const struct scope *sc, int depth, char *path, size_t cap)
{
	size_t n = 0;
	path[0] = '\0';
	for (int d = 1; d <= depth && n < cap; d++)
		if (sc[d].key) {
			int shown = sc[d].key_len > FIELD_SHOWN_BYTES ? FIELD_SHOWN_BYTES : (int)sc[d].key_len;
			int k = snprintf(path + n, cap - n, "%s%.*s", n ? "." : "", shown, sc[d].key);
			n += k > 0 ? (size_t)k : 0;
		}
}

/* Scans the string starting after its opening quote at text[*i]; leaves
 * *i on the closing quote (or at len when it is unterminated).  Returns 0,
 * 1 for an escaped NUL, 2 for bytes that are not UTF-8. */
static int scan_string(const char *text, size_t len, size_t *i)
{
	int problem = 0;
	size_t j = *i;
	while (j < len && text[j] != '"') {
		unsigned char c = (unsigned char)text[j];
		if (c == '\\') {
			if (j + 5 < len && text[j + 1] == 'u' && !memcmp(text + j + 2, "0000", 4) && !problem)
				problem = 1;
			j += j + 1 < len ? 2 : 1;
		} else if (c >= 0x80) {
			size_t k = utf8_decode((const unsigned char *)text + j, len - j, NULL);
			if (!k) {
				if (!problem)
					problem = 2;
				k = 1;
			}
			j += k;
		} else {
			j++;
		}
	}
	*i = j;
	return problem;
}

int input_check_json(const char *text, size_t len, char *msg, size_t cap, char *field, size_t field_cap, char *path,
                     size_t path_cap)
{
	struct scope sc[SERVE_JSON_DEPTH_MAX + 1] = {{0}};
	int depth = 0;
	char name[FIELD_SHOWN_BYTES + 16];
	field[0] = '\0';
	if (path)
		path[0] = '\0';
	if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) {
		snprintf(msg, cap,
		         "the request starts with a byte order mark (BOM, bytes EF BB BF), which JSON text must not "
		         "(RFC 8259 8.1); send the JSON without it");
		return -1;
	}
	const char *nul = memchr(text, '\0', len);
	if (nul) {
		snprintf(msg, cap, "the request holds a NUL byte (at byte %zu); send JSON text without one",
		         (size_t)(nul - text));
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		if (c == '{' || c == '[') {
			if (depth == SERVE_JSON_DEPTH_MAX) {
				snprintf(msg, cap,
				         "the request nests objects or arrays deeper than %d levels; send a flatter document",
				         SERVE_JSON_DEPTH_MAX);
				return -1;
			}
			depth++;
			sc[depth] = (struct scope){c == '{', NULL, 0};
		} else if (c == '}' || c == ']') {
			if (depth > 0)
				depth--;
		} else if (c == '"') {
			size_t start = ++i;
			int problem = scan_string(text, len, &i);
			size_t k = i + 1;
			while (k < len && (text[k] == ' ' || text[k] == '\t' || text[k] == '\n' || text[k] == '\r'))
				k++;
			int is_key = depth > 0 && sc[depth].object && k < len && text[k] == ':';
			if (problem) {
				field_of(sc, depth, is_key, field, field_cap);
				if (path && !is_key)
					path_of(sc, depth, path, path_cap);
				if (is_key)
					snprintf(name, sizeof name, "a field name");
				else if (field[0])
					snprintf(name, sizeof name, "`%s`", field);
				else
					snprintf(name, sizeof name, "a string");
				if (problem == 1)
					snprintf(msg, cap, "%s holds a NUL character (\\u0000); remove it", name);
				else
					snprintf(msg, cap, "%s is not valid UTF-8; send UTF-8 text", name);
				return -1;
			}
			if (is_key) {
				sc[depth].key = text + start;
				sc[depth].key_len = i - start;
			}
		} else if ((unsigned char)c >= 0x80) { /* outside a string: cJSON refuses it, but not as UTF-8 */
			size_t k = utf8_decode((const unsigned char *)text + i, len - i, NULL);
			if (!k) {
				snprintf(msg, cap, "the request is not valid UTF-8 (byte %zu); send UTF-8 JSON", i);
				return -1;
			}
			i += k - 1;
		}
	}
	return 0;
}

/* ---- parsing ----------------------------------------------------------------- */

static int key_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A key repeated in an object anywhere under o (sorted per object: a
 * body of 256 KiB holds few enough keys); NULL when none.  -1 in *oom when
 * out of memory. */
static const char *repeated_key(const cJSON *o, int *oom)
{
	if (!cJSON_IsObject(o) && !cJSON_IsArray(o))
		return NULL;
	const cJSON *c;
	size_t n = 0;
	cJSON_ArrayForEach(c, o) n++;
	const char *found = NULL;
	if (cJSON_IsObject(o) && n > 1) {
		const char **keys = malloc(n * sizeof *keys);
		if (!keys) {
			*oom = 1;
			return NULL;
		}
		size_t k = 0;
		cJSON_ArrayForEach(c, o) keys[k++] = c->string;
		qsort(keys, n, sizeof *keys, key_cmp);
		for (size_t i = 1; i < n && !found; i++)
			if (!strcmp(keys[i - 1], keys[i]))
				found = keys[i];
		free(keys);
	}
	cJSON_ArrayForEach(c, o)
	{
		if (found || *oom)
			break;
		found = repeated_key(c, oom);
	}
	return found;
}

int input_parse_json(const char *text, size_t len, cJSON **out, char *msg, size_t cap)
{
	const char *end = NULL;
	*out = NULL;
	msg[0] = '\0';
	cJSON *o = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (!o) {
		snprintf(msg, cap, "not valid JSON");
		return INPUT_NOT_JSON;
	}
	size_t at = end ? (size_t)(end - text) : len;
	while (at < len && (text[at] == ' ' || text[at] == '\t' || text[at] == '\n' || text[at] == '\r'))
		at++;
	if (at < len) {
		snprintf(msg, cap, "there is more after the JSON value (at byte %zu); send one JSON value and nothing else", at);
		cJSON_Delete(o);
		return INPUT_REFUSED;
	}
	int oom = 0;
	const char *dup = repeated_key(o, &oom);
	if (dup || oom) {
		size_t n = strlen(dup ? dup : ""), shown = n > 0 && n <= FIELD_SHOWN_BYTES;
		for (size_t i = 0; shown && i < n; i++)
			shown = dup[i] >= 0x20 && dup[i] < 0x7f && dup[i] != '`';
		if (oom)
			snprintf(msg, cap, "out of memory; try again");
		else if (shown)
			snprintf(msg, cap, "the field `%s` appears twice in one object; send each field once", dup);
		else
			snprintf(msg, cap, "a field name appears twice in one object; send each field once");
		cJSON_Delete(o);
		return INPUT_REFUSED;
	}
	*out = o;
	return INPUT_OK;
}

/* ---- fields ------------------------------------------------------------------ */

/* How a JSON value is called in a message. */
static const char *kind_of(const cJSON *v)
{
	return cJSON_IsString(v)   ? "a string"
	       : cJSON_IsNumber(v) ? "a number"
	       : cJSON_IsBool(v)   ? "true or false"
	       : cJSON_IsNull(v)   ? "null"
	       : cJSON_IsArray(v)  ? "an array"
	                           : "an object";
}

const char *input_field_problem(const char *key, const cJSON *v, const char *type, double lo, double hi, int optional, char *why,
                                size_t cap)
{
	const char *leave = cJSON_IsNull(v) && optional ? "; leave it out for the default" : "";
	if (!strcmp(type, "string") && !cJSON_IsString(v)) {
		snprintf(why, cap, "\"%s\" must be a string, not %s%s", key, kind_of(v), leave);
		return why;
	}
	if (!strcmp(type, "integer")) {
		double n = cJSON_IsNumber(v) ? v->valuedouble : 0;
		int whole =
		        cJSON_IsNumber(v) && n >= -1e15 && n <= 1e15 && n == (double)(long long)n; /* range first: no UB cast */
		if (!whole || (lo <= hi && (n < lo || n > hi))) {
			char what[40];
			if (cJSON_IsNumber(v))
				snprintf(what, sizeof what, "%.15g", n);
			else
				snprintf(what, sizeof what, "%s", kind_of(v));
			if (lo <= hi)
				snprintf(why, cap, "\"%s\" must be a whole number from %.0f to %.0f, not %s%s", key, lo, hi, what,
				         leave);
			else
				snprintf(why, cap, "\"%s\" must be a whole number, not %s%s", key, what, leave);
			return why;
		}
	}
	return NULL;
}

int input_question(const cJSON *o, struct input_question *out, char *why, size_t cap)
{
	static const char *const strings[] = {"question", "hint", "today"};
	const char **into[] = {&out->question, &out->hint, &out->today};
	*out = (struct input_question){0};
	for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, strings[i]);
		if (v && input_field_problem(strings[i], v, "string", 1, 0, i > 0, why, cap))
			return 400;
		*into[i] = v ? v->valuestring : NULL;
	}
	const cJSON *cand = cJSON_GetObjectItemCaseSensitive(o, "candidates");
	if (cand && input_field_problem("candidates", cand, "integer", 1, SERVE_CANDIDATES_MAX, 1, why, cap))
		return 400;
	out->candidates = cand ? (int)cand->valuedouble : 0;
	if (!out->question || !*out->question) {
		snprintf(why, cap, "\"question\" is needed: the question to answer");
		return 400;
	}
	if (strlen(out->question) > SERVE_QUESTION_MAX_BYTES || (out->hint && strlen(out->hint) > SERVE_QUESTION_MAX_BYTES)) {
		snprintf(why, cap, "the question or hint is longer than %u bytes; shorten it", SERVE_QUESTION_MAX_BYTES);
		return 413;
	}
	if (out->today && clock_date_check(out->today, "today", why, cap))
		return 400;
	return 0;
}
