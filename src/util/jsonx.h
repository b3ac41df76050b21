/* jsonx.h -- typed getters over cJSON, for reading config and replies.
 *
 * cJSON trees never leave the function that parsed them (STYLE.md): these
 * helpers read a field with a type check and a default, so callers copy
 * values into their own structs and delete the tree.
 */
#ifndef CONVBI_UTIL_JSONX_H
#define CONVBI_UTIL_JSONX_H

#include <cjson/cJSON.h>
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

#endif
