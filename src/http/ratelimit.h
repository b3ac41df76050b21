/* ratelimit.h -- what a response says about when to call again.
 *
 * Pure: header names and values in, milliseconds out; the wall clock is a
 * parameter.  The HTTP layer feeds every response header to rl_feed_header
 * as it arrives; after the body is in, rl_retry_after_ms answers "how long
 * must this endpoint rest" from the first source present, in this order
 * (the contract with Azure OpenAI and OpenAI-compatible services):
 *
 *   1. retry-after-ms                  milliseconds
 *   2. x-ms-retry-after-ms             milliseconds
 *   3. retry-after                     delta-seconds (fraction allowed) or
 *                                      an HTTP-date (IMF-fixdate, RFC 850,
 *                                      asctime), made relative to now
 *   4. x-ratelimit-reset-requests      duration: "20", "1s", "6m0s",
 *   5. x-ratelimit-reset-tokens        "1h2m3.5s", "250ms", "0.5s"
 *   6. the body or error message:      "retry after N second(s)",
 *                                      "try again in 20s / 1.5 seconds"
 *
 * It also keeps x-ratelimit-remaining-{requests,tokens} and
 * x-ratelimit-limit-{requests,tokens} for the endpoint pool (-1 = not
 * sent).  Every wait is clamped to [0, RL_MAX_WAIT_MS]; negative numbers,
 * garbage and overflowing digit strings are rejected or saturated without
 * undefined behaviour.
 */
#ifndef CONVBI_HTTP_RATELIMIT_H
#define CONVBI_HTTP_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

/* The longest wait any source can ask for: 7 days, in milliseconds. */
#define RL_MAX_WAIT_MS ((int64_t)7 * 24 * 3600 * 1000)
/* Only this many leading bytes of a body are searched for a retry hint. */
#define RL_MAX_BODY_SCAN ((size_t)64 * 1024)
/* Counts (remaining/limit) saturate here. */
#define RL_MAX_COUNT ((int64_t)1 << 53)

enum rl_source {
	RL_SOURCE_NONE = 0,
	RL_SOURCE_RETRY_AFTER_MS,      /* retry-after-ms */
	RL_SOURCE_X_MS_RETRY_AFTER_MS, /* x-ms-retry-after-ms */
	RL_SOURCE_RETRY_AFTER,         /* retry-after */
	RL_SOURCE_RESET_REQUESTS,      /* x-ratelimit-reset-requests */
	RL_SOURCE_RESET_TOKENS,        /* x-ratelimit-reset-tokens */
	RL_SOURCE_MESSAGE              /* the body / error message text */
};

struct rl_info {
	int64_t retry_after_ms;      /* retry-after-ms, ms; -1 = absent */
	int64_t x_ms_retry_after_ms; /* x-ms-retry-after-ms, ms; -1 = absent */
	int64_t retry_after;         /* retry-after, ms from when it was fed; -1 = absent */
	int64_t reset_requests_ms;   /* x-ratelimit-reset-requests, ms; -1 = absent */
	int64_t reset_tokens_ms;     /* x-ratelimit-reset-tokens, ms; -1 = absent */
	int64_t remaining_requests;  /* x-ratelimit-remaining-requests; -1 = unknown */
	int64_t remaining_tokens;    /* x-ratelimit-remaining-tokens; -1 = unknown */
	int64_t limit_requests;      /* x-ratelimit-limit-requests; -1 = unknown */
	int64_t limit_tokens;        /* x-ratelimit-limit-tokens; -1 = unknown */
};

/* Sets every field of r (caller's storage) to -1 (absent). */
void rl_init(struct rl_info *r);

/* Records one response header if it is one of the above.  name is matched
 * case-insensitively; name and value may carry surrounding spaces, tabs,
 * CR or LF.  now_wall_ms (Unix ms) turns an HTTP-date retry-after into a
 * wait (a date in the past gives 0; a negative now_wall_ms, meaning
 * unknown, makes a date unusable).  A value that does not parse leaves
 * the field as it was; a repeated header overrides.  Other headers are
 * ignored. */
void rl_feed_header(struct rl_info *r, const char *name, size_t nlen, const char *value, size_t vlen, int64_t now_wall_ms);

/* The wait in milliseconds asked for by the first source present in the
 * order above, or -1 when none says anything.  body (may be NULL) is the
 * response body or the error message text; only its first
 * RL_MAX_BODY_SCAN bytes are searched.  *source_out (may be NULL) names the
 * source used, RL_SOURCE_NONE with -1. */
int64_t rl_retry_after_ms(const struct rl_info *r, const char *body, size_t body_len, enum rl_source *source_out);

/* The header name of s ("retry-after-ms", ...), "message" for the body,
 * "none" for RL_SOURCE_NONE or an unknown value.  Static storage. */
const char *rl_source_name(enum rl_source s);

/* Parses a duration: a bare non-negative number of seconds ("20", "0.5")
 * or a sequence of number+unit with units h, m, s, ms, us (or µs), ns
 * ("6m0s", "1h2m3.5s", "250ms"), surrounding whitespace allowed.  Returns
 * milliseconds rounded up, clamped to RL_MAX_WAIT_MS; -1 on bad input. */
int64_t rl_parse_duration_ms(const char *s, size_t n);

/* Parses an HTTP-date in any of the three forms of RFC 9110 §5.6.7:
 *   IMF-fixdate  "Sun, 06 Nov 1994 08:49:37 GMT"
 *   RFC 850      "Sunday, 06-Nov-94 08:49:37 GMT" (yy < 70 means 20yy)
 *   asctime      "Sun Nov  6 08:49:37 1994"
 * Names are matched case-insensitively; surrounding whitespace is allowed.
 * Returns Unix time in milliseconds, or -1 on bad input (including a
 * date before 1970 or after 9999). */
int64_t rl_parse_http_date_ms(const char *s, size_t n);

#endif
