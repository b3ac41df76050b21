/* jsonx.c -- typed cJSON getters (see jsonx.h). */
#include "util/jsonx.h"

#include <string.h>

const char *jsonx_str(const cJSON *obj, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* The member key when it is of the type `is` checks; NULL when it is
 * missing or null, and also (setting *bad) when it is of another type. */
static const cJSON *typed(const cJSON *obj, const char *key, cJSON_bool (*is)(const cJSON *), int *bad)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!it || cJSON_IsNull(it))
		return NULL;
	if (!is(it)) {
		if (bad)
			*bad = 1;
		return NULL;
	}
	return it;
}

double jsonx_num(const cJSON *obj, const char *key, double def, int *bad)
{
	const cJSON *it = typed(obj, key, cJSON_IsNumber, bad);
	return it ? it->valuedouble : def;
}

int64_t jsonx_int(const cJSON *obj, const char *key, int64_t def, int *bad)
{
	double d = jsonx_num(obj, key, (double)def, bad);
	if (d > 9e18 || d < -9e18) {
		if (bad)
			*bad = 1;
		return def;
	}
	return (int64_t)d;
}

int jsonx_bool(const cJSON *obj, const char *key, int def, int *bad)
{
	const cJSON *it = typed(obj, key, cJSON_IsBool, bad);
	return it ? cJSON_IsTrue(it) : def;
}

cJSON *jsonx_parse(const char *text, size_t len)
{
	return cJSON_ParseWithLength(text, len);
}

/* Offset of the first NUL the text would put into a string -- a raw NUL
 * byte anywhere, or a \u0000 escape inside a string -- or len if none. */
static size_t nul_offset(const char *text, size_t len)
{
	int in_string = 0;
	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		if (c == '\0')
			return i;
		if (!in_string) {
			in_string = c == '"';
			continue;
		}
		if (c == '"') {
			in_string = 0;
		} else if (c == '\\' && i + 1 < len) {
			if (text[i + 1] == 'u' && i + 5 < len && !memcmp(text + i + 2, "0000", 4))
				return i;
			i++; /* the escaped character */
		}
	}
	return len;
}

cJSON *jsonx_parse_strict(const char *text, size_t len, const char **why, size_t *at)
{
	*why = NULL;
	*at = 0;
	size_t nul = nul_offset(text, len);
	if (nul < len) {
		*why = "holds a NUL character (a zero byte or \\u0000), which would cut the value it is in";
		*at = nul;
		return NULL;
	}
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (!root) {
		*why = "is not valid JSON";
		*at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
		return NULL;
	}
	size_t i = end ? (size_t)(end - text) : len;
	while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
		i++;
	if (i < len) {
		cJSON_Delete(root);
		*why = "has text after the JSON value";
		*at = i;
		return NULL;
	}
	return root;
}

void jsonx_line_col(const char *text, size_t at, int *line, int *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < at; i++) {
		if (text[i] == '\n') {
			++*line;
			*col = 1;
		} else if (((unsigned char)text[i] & 0xC0) != 0x80) {
			++*col; /* columns count characters, not UTF-8 continuation bytes */
		}
	}
}
