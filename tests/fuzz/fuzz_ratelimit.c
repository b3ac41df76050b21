/* fuzz_ratelimit.c -- libFuzzer target for rate-limit header parsing.
 *
 * Input: the first 8 bytes are the wall clock, the rest is read as header
 * lines "name: value" (split at LF) and also passed whole as the body and
 * straight to the duration and date parsers.  Oracles: every wait is -1 or
 * within [0, RL_MAX_WAIT_MS]; the source is NONE exactly when the wait is
 * -1; counts are -1 or within [0, RL_MAX_COUNT]; a parsed HTTP-date,
 * printed again as an IMF-fixdate, parses to the same instant.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/ratelimit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_wait(int64_t v)
{
	if (v != -1 && (v < 0 || v > RL_MAX_WAIT_MS))
		abort();
}

static void check_count(int64_t v)
{
	if (v != -1 && (v < 0 || v > RL_MAX_COUNT))
		abort();
}

static void round_trip(int64_t ms)
{
	if (ms < 0)
		return;
	if (ms % 1000)
		abort(); /* dates have whole seconds */
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char text[64];
	if (!gmtime_r(&t, &tm))
		abort();
	size_t n = strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!n || rl_parse_http_date_ms(text, n) != ms)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 8)
		return 0;
	int64_t now = 0;
	memcpy(&now, data, 8);
	const char *p = (const char *)data + 8;
	size_t n = size - 8;

	check_wait(rl_parse_duration_ms(p, n));
	round_trip(rl_parse_http_date_ms(p, n));

	struct rl_info r;
	rl_init(&r);
	for (size_t line = 0; line < n;) {
		const char *nl = memchr(p + line, '\n', n - line);
		size_t end = nl ? (size_t)(nl - p) : n;
		const char *colon = memchr(p + line, ':', end - line);
		if (colon) {
			size_t c = (size_t)(colon - p);
			rl_feed_header(&r, p + line, c - line, p + c + 1, end - c - 1, now);
		}
		line = end + 1;
	}
	check_wait(r.retry_after_ms);
	check_wait(r.x_ms_retry_after_ms);
	check_wait(r.retry_after);
	check_wait(r.reset_requests_ms);
	check_wait(r.reset_tokens_ms);
	check_count(r.remaining_requests);
	check_count(r.remaining_tokens);
	check_count(r.limit_requests);
	check_count(r.limit_tokens);
	enum rl_source src;
	int64_t wait = rl_retry_after_ms(&r, p, n, &src);
	check_wait(wait);
	if ((wait == -1) != (src == RL_SOURCE_NONE) || !rl_source_name(src)[0])
		abort();
	return 0;
}
