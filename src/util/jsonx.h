/* jsonx.h -- typed getters over cJSON, for reading config and replies.
 *
 * cJSON trees never leave the function that parsed them (STYLE.md): these
 * helpers read a field with a type check and a default, so callers copy
 * values into their own structs and delete the tree.
 */
#ifndef CONVBI_UTIL_JSONX_H
#define CONVBI_UTIL_JSONX_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

/* The string field `key` of obj, or NULL if missing or not a string. */
const char *jsonx_str(const cJSON *obj, const char *key);
/* The number field `key`, or def if missing; *bad set to 1 if present but
 * not a number (bad may be NULL). */
int64_t jsonx_int(const cJSON *obj, const char *key, int64_t def, int *bad);
double jsonx_num(const cJSON *obj, const char *key, double def, int *bad);
int jsonx_bool(const cJSON *obj, const char *key, int def, int *bad);
/* Parses exactly len bytes (no NUL needed). Returns NULL on error. */
cJSON *jsonx_parse(const char *text, size_t len);
/* Parses text[0..len) as exactly one JSON value, strictly: a raw NUL byte
 * or a \u0000 escape (either would silently cut the string it is in) and
 * anything but whitespace after the value are refused.  Returns the tree
 * (caller deletes) or NULL with *why (a phrase such as "is not valid
 * JSON", to follow the source's name) and *at, the byte offset of the
 * problem. */
cJSON *jsonx_parse_strict(const char *text, size_t len, const char **why, size_t *at);
/* The 1-based line and column (in characters) of byte offset at. */
void jsonx_line_col(const char *text, size_t at, int *line, int *col);

#endif
