/* fuzz_extract.c -- libFuzzer target for extract_sql, extract_json_object
 * and extract_label.
 *
 * Oracles: extract_sql either fails with EPROTOCOL (message set, buffer
 * released) or yields SQL that is non-empty, NUL-free and tidied (no
 * leading or trailing blanks, no trailing ';'); extract_json_object yields
 * a substring of the input that cJSON parses as an object; extract_label
 * returns -1 or an index of a label that really occurs in the text.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "convbi/convbi.h"
#include "flow/extract.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

static int has_nocase(const char *s, size_t n, const char *lab)
{
	size_t l = strlen(lab);
	for (size_t i = 0; i + l <= n; i++) {
		size_t k = 0;
		while (k < l && (s[i + k] | 0x20) == (lab[k] | 0x20))
			k++;
		if (k == l)
			return 1;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const labels[] = {"data_question", "follow_up", "chitchat", "sql"};
	const char *text = (const char *)data;
	int has_nul = size && memchr(text, '\0', size) != NULL;

	struct buf out = BUF_INIT;
	struct err err = ERR_INIT;
	int rc = extract_sql(&out, text, size, &err);
	if (rc == CONVBI_OK) {
		if (has_nul || !out.len || strlen(out.data) != out.len || blank(out.data[0]) || blank(out.data[out.len - 1]) ||
		    out.data[out.len - 1] == ';')
			abort();
	} else if (rc != CONVBI_EPROTOCOL || !err.msg[0] || out.data) {
		abort();
	}
	buf_release(&out);

	rc = extract_json_object(&out, text, size);
	if (rc == CONVBI_OK) {
		cJSON *doc = cJSON_ParseWithLength(out.data, out.len);
		int ok = cJSON_IsObject(doc) && out.data[0] == '{' && out.data[out.len - 1] == '}' &&
		         memmem(text, size, out.data, out.len) != NULL;
		cJSON_Delete(doc);
		if (!ok)
			abort();
	} else if (rc != CONVBI_EPROTOCOL || out.data) {
		abort();
	}
	buf_release(&out);

	int k = extract_label(text, size, labels, 4);
	if (k < -1 || k >= 4 || (k >= 0 && !has_nocase(text, size, labels[k])))
		abort();
	return 0;
}
