/* fuzz_tmpl.c -- libFuzzer target for template checking and rendering.
 *
 * Input: byte 0 picks slot caps, the rest is the template text.  Oracles:
 * tmpl_check and tmpl_render agree -- a text that passes the check renders
 * without error, and a render error is always ETEMPLATE with a message;
 * the output of a checked (hence valid UTF-8) template rendered from valid
 * UTF-8 values is valid UTF-8 again, whatever the caps cut.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "convbi/convbi.h"
#include "prompt/tmpl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Strict UTF-8 (RFC 3629): 1 if s[0..n) is valid. */
static int valid_utf8(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned c = s[i];
		size_t need = c < 0x80                 ? 1
		              : c >= 0xC2 && c <= 0xDF ? 2
		              : c >= 0xE0 && c <= 0xEF ? 3
		              : c >= 0xF0 && c <= 0xF4 ? 4
		                                       : 0;
		if (!need || i + need > n)
			return 0;
		unsigned lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
		unsigned hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
		if (need > 1 && (s[i + 1] < lo || s[i + 1] > hi))
			return 0;
		for (size_t k = 2; k < need; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xBF)
				return 0;
		i += need;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const allowed[] = {"schema", "question", "hint", "a", "b"};
	if (size < 1 || size > TMPL_MAX_BYTES)
		return 0;
	unsigned caps = data[0];
	const char *text = (const char *)data + 1;
	size_t n = size - 1;

	struct err err = ERR_INIT;
	int named = tmpl_check(text, n, allowed, 5, &err);
	if (named && (named != CONVBI_ETEMPLATE || !err.msg[0]))
		abort();
	int any = tmpl_check(text, n, NULL, 0, &err);
	if (!named && any)
		abort(); /* a narrower list cannot pass what "any name" fails */

	char *copy = malloc(n + 1);
	if (!copy)
		return 0;
	memcpy(copy, text, n);
	copy[n] = '\0';
	struct tmpl_slot slots[] = {
	        {"schema", "CREATE TABLE t(a, b)", caps & 1 ? 7 : 0},
	        {"question", "caf\xC3\xA9 \xF0\x9F\x98\x80 {{a}}", (caps >> 1) & 7},
	        {"hint", caps & 16 ? "" : "x", 0},
	        {"a", "\xE2\x82\xAC\xE2\x82\xAC", (caps >> 5) & 3},
	};
	struct buf out;
	buf_init(&out, 1 << 20);
	struct err rerr = ERR_INIT;
	int rc = tmpl_render(&out, copy, slots, 4, &rerr);
	if (!any) {
		/* checked text has no NUL, so the render sees all of it */
		if (rc || !valid_utf8((const unsigned char *)buf_str(&out), out.len))
			abort();
	} else if (rc && ((rc != CONVBI_ETEMPLATE && rc != CONVBI_ETOOBIG) || !rerr.msg[0] || out.data)) {
		abort();
	}
	buf_release(&out);
	free(copy);
	return 0;
}
