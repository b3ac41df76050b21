/* jsonx.c -- typed cJSON getters (see jsonx.h). */
#include "util/jsonx.h"

const char *jsonx_str(const cJSON *obj, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsString(it) ? it->valuestring : NULL;
}

double jsonx_num(const cJSON *obj, const char *key, double def, int *bad)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!it || cJSON_IsNull(it))
		return def;
	if (!cJSON_IsNumber(it)) {
		if (bad)
			*bad = 1;
		return def;
	}
	return it->valuedouble;
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
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!it || cJSON_IsNull(it))
		return def;
	if (!cJSON_IsBool(it)) {
		if (bad)
			*bad = 1;
		return def;
	}
	return cJSON_IsTrue(it);
}

cJSON *jsonx_parse(const char *text, size_t len)
{
	return cJSON_ParseWithLength(text, len);
}
