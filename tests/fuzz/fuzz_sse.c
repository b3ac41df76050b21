/* fuzz_sse.c -- libFuzzer target for the SSE parser.
 *
 * Input: byte 0 picks the event cap (1..255, or 0 = the default), byte 1
 * seeds the chunk sizes, the rest is the stream.  Oracle (differential):
 * the stream fed whole and fed in pseudo-random chunks must give the same
 * return code, the same events (compared by hash and count) and the same
 * partial flag; every delivered event must respect the cap and carry a
 * NUL-terminated data buffer.  Any difference aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
	uint64_t hash; /* FNV-1a over every event */
	size_t count;
	size_t max_data; /* the cap the parser was given */
};

static void mix(struct seen *s, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		s->hash ^= b[i];
		s->hash *= 1099511628211ull;
	}
}

static int on_event(const char *event, const char *d, size_t len, void *payload)
{
	struct seen *s = payload;
	if (d[len] != '\0' || (s->max_data && len > s->max_data) || !event[0])
		abort();
	mix(s, event, strlen(event) + 1);
	mix(s, &len, sizeof len);
	mix(s, d, len);
	s->count++;
	return 0;
}

static int run(const char *p, size_t n, size_t cap, unsigned seed, struct seen *s, int *partial)
{
	struct sse_parser parser;
	sse_init(&parser, cap);
	s->hash = 1469598103934665603ull;
	s->count = 0;
	s->max_data = parser.max_event_bytes;
	int rc = 0;
	size_t off = 0;
	while (off < n && !rc) {
		size_t chunk = n - off;
		if (seed) {
			seed = seed * 1103515245u + 12345u;
			chunk = 1 + (seed >> 16) % 7;
			if (chunk > n - off)
				chunk = n - off;
		}
		rc = sse_feed(&parser, p + off, chunk, on_event, s);
		off += chunk;
	}
	if (sse_finish(&parser, partial) != rc)
		abort();
	sse_release(&parser);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t cap = data[0];
	unsigned seed = data[1] | 1u;
	const char *p = (const char *)data + 2;
	size_t n = size - 2;
	struct seen whole, split;
	int pw = -1, ps = -1;
	int rw = run(p, n, cap, 0, &whole, &pw);
	int rs = run(p, n, cap, seed, &split, &ps);
	if (rw != rs || whole.hash != split.hash || whole.count != split.count)
		abort();
	if (!rw && pw != ps)
		abort();
	return 0;
}
