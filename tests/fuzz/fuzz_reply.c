/* fuzz_reply.c -- the model reply JSON parser, the stream-chunk parser and
 * the error-body reader on arbitrary bytes: a reply either parses (content
 * within its cap) or fails with EPROTOCOL/ETOOBIG; nothing crashes. */
#include <stdint.h>
#include <string.h>

#include "convbi/convbi.h"
#include "llm/aoai.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct aoai_reply r;
	struct err err = ERR_INIT;
	aoai_reply_init(&r);
	int rc = aoai_parse_reply(&r, text, size, &err);
	if (rc && rc != CONVBI_EPROTOCOL && rc != CONVBI_ETOOBIG && rc != CONVBI_ENOMEM)
		__builtin_trap();
	aoai_reply_release(&r);
	aoai_reply_init(&r);
	const char *d;
	size_t n;
	rc = aoai_parse_chunk(&r, text, size, &d, &n, &err);
	if (rc == CONVBI_OK && n && (d < r.content.data || d + n > r.content.data + r.content.len))
		__builtin_trap();
	aoai_reply_release(&r);
	struct aoai_error e;
	aoai_parse_error(&e, text, size);
	if (strchr(e.message, '\n'))
		__builtin_trap();
	return 0;
}
