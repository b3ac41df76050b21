/* fuzz_config.c -- the endpoint configuration parser on arbitrary bytes:
 * it must accept or refuse with CONVBI_ECONFIG and a one-line message,
 * never crash, and release everything. */
#include <stdint.h>
#include <string.h>

#include "convbi/convbi.h"
#include "llm/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct llm_config c;
	struct err err = ERR_INIT;
	int rc = config_parse(&c, (const char *)data, size, "fuzz", &err);
	if (rc == CONVBI_OK) {
		if (c.n == 0)
			__builtin_trap();
		config_release(&c);
	} else if (rc != CONVBI_ECONFIG && rc != CONVBI_ENOMEM) {
		__builtin_trap();
	} else if (strchr(err.msg, '\n')) {
		__builtin_trap();
	}
	return 0;
}
