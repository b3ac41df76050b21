/* test_ratelimit.c -- rate-limit headers, durations, HTTP-dates, hints.
 *
 * Table-driven: every row of every table is its own CMocka test, named by
 * the row.  The precedence test is generated: for each of the 32 subsets of
 * the five headers (each with a distinct wait), with and without a hint in
 * the body, the answer must come from the first source present in the
 * documented order.  Dates are checked against values computed
 * independently (Python's calendar.timegm).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/ratelimit.h"

#define CAP RL_MAX_WAIT_MS
#define NOW ((int64_t)1445412480000) /* Wed, 21 Oct 2015 07:28:00 GMT */

/* ---- durations ---------------------------------------------------------------- */

struct duration_case {
	const char *name;
	const char *text;
	int64_t ms;
};

static const struct duration_case durations[] = {
        {"a bare integer duration is seconds", "20", 20000},
        {"a bare fraction duration is seconds", "1.5", 1500},
        {"a duration of zero is zero", "0", 0},
        {"a duration in seconds", "1s", 1000},
        {"a duration in minutes and seconds", "6m0s", 360000},
        {"a duration in hours minutes and fractional seconds", "1h2m3.5s", 3723500},
        {"a duration in milliseconds", "250ms", 250},
        {"a fractional second duration", "0.5s", 500},
        {"a duration with a leading dot", ".5s", 500},
        {"a duration with a trailing dot", "5.s", 5000},
        {"a duration in microseconds rounds up", "1500us", 2},
        {"a duration with the micro sign", "1\xC2\xB5s", 1},
        {"a duration with the greek mu", "2000\xCE\xBCs", 2},
        {"a duration in nanoseconds rounds up", "1ns", 1},
        {"exactly one millisecond of nanoseconds", "1000000ns", 1},
        {"one nanosecond over a millisecond rounds up", "1000001ns", 2},
        {"a tiny fraction of a millisecond rounds up", "0.0001ms", 1},
        {"digits past nine decimals are ignored", "1.0000000001s", 1000},
        {"repeated units add up", "1h1h", 7200000},
        {"fractional minutes", "1.5m", 90000},
        {"surrounding whitespace and crlf are ignored", " \t2s \r\n", 2000},
        {"a duration over seven days is capped", "200h", CAP},
        {"a huge duration is capped without overflow", "99999999999999999999999999s", CAP},
        {"huge parts added are capped without overflow", "9999999h9999999h9999999h", CAP},
        {"an empty duration is rejected", "", -1},
        {"a blank duration is rejected", "  \r\n", -1},
        {"a negative duration is rejected", "-1s", -1},
        {"a plus sign is rejected", "+1s", -1},
        {"an unknown unit is rejected", "1d", -1},
        {"a unit without a number is rejected", "s", -1},
        {"a missing last unit is rejected", "1m30", -1},
        {"two dots are rejected", "1.2.3s", -1},
        {"words are rejected", "soon", -1},
        {"a space between number and unit is rejected", "1 s", -1},
        {"units are case sensitive", "1S", -1},
        {"a trailing garbage byte is rejected", "1s!", -1},
        {"a lone dot is rejected", ".", -1},
};

static void duration_parses_as_expected(void **state)
{
	const struct duration_case *c = *state;
	assert_int_equal(rl_parse_duration_ms(c->text, strlen(c->text)), c->ms);
}

/* ---- HTTP-dates ------------------------------------------------------------------ */

static const struct duration_case dates[] = {
        {"an imf fixdate parses", "Sun, 06 Nov 1994 08:49:37 GMT", 784111777000},
        {"an rfc 850 date parses", "Sunday, 06-Nov-94 08:49:37 GMT", 784111777000},
        {"an asctime date parses", "Sun Nov  6 08:49:37 1994", 784111777000},
        {"an asctime date with a two digit day parses", "Wed Oct 21 07:28:00 2015", 1445412480000},
        {"date names are case insensitive", "sun, 06 NOV 1994 08:49:37 gmt", 784111777000},
        {"a date with surrounding whitespace parses", "  Sun, 06 Nov 1994 08:49:37 GMT\r\n", 784111777000},
        {"utc is accepted for gmt", "Sun, 06 Nov 1994 08:49:37 UTC", 784111777000},
        {"the epoch is zero", "Thu, 01 Jan 1970 00:00:00 GMT", 0},
        {"a leap day in 2024 parses", "Thu, 29 Feb 2024 00:00:00 GMT", 1709164800000},
        {"a leap day in 2000 parses", "Tue, 29 Feb 2000 12:00:00 GMT", 951825600000},
        {"the last second of 9999 parses", "Fri, 31 Dec 9999 23:59:59 GMT", 253402300799000},
        {"a leap second rolls into the next minute", "Sat, 31 Dec 2016 23:59:60 GMT", 1483228800000},
        {"an rfc 850 year below 70 is in the 2000s", "Monday, 01-Jan-35 00:00:00 GMT", 2051222400000},
        {"an rfc 850 year of 69 is 2069", "Tuesday, 31-Dec-69 23:59:59 GMT", 3155759999000},
        {"an rfc 850 date with a four digit year parses", "Sunday, 06-Nov-1994 08:49:37 GMT", 784111777000},
        {"an rfc 850 year of 70 is 1970", "Thursday, 01-Jan-70 00:00:00 GMT", 0},
        {"a date before 1970 is rejected", "Wed, 31 Dec 1969 23:59:59 GMT", -1},
        {"the 29th of february in 2100 is rejected", "Mon, 29 Feb 2100 00:00:00 GMT", -1},
        {"the 30th of february is rejected", "Fri, 30 Feb 2024 00:00:00 GMT", -1},
        {"the 31st of april is rejected", "Thu, 31 Apr 2024 00:00:00 GMT", -1},
        {"day zero is rejected", "Sun, 00 Nov 1994 08:49:37 GMT", -1},
        {"hour 24 is rejected", "Sun, 06 Nov 1994 24:00:00 GMT", -1},
        {"minute 60 is rejected", "Sun, 06 Nov 1994 08:60:00 GMT", -1},
        {"second 61 is rejected", "Sun, 06 Nov 1994 08:49:61 GMT", -1},
        {"a missing zone is rejected", "Sun, 06 Nov 1994 08:49:37", -1},
        {"another zone is rejected", "Sun, 06 Nov 1994 08:49:37 PST", -1},
        {"an unknown day name is rejected", "Xyz, 06 Nov 1994 08:49:37 GMT", -1},
        {"an unknown month is rejected", "Sun, 06 Foo 1994 08:49:37 GMT", -1},
        {"a two digit imf year is rejected", "Sun, 06 Nov 94 08:49:37 GMT", -1},
        {"a three digit rfc 850 year is rejected", "Sunday, 06-Nov-994 08:49:37 GMT", -1},
        {"a five digit year is rejected", "Sun, 06 Nov 19940 08:49:37 GMT", -1},
        {"a one digit hour is rejected", "Sun, 06 Nov 1994 8:49:37 GMT", -1},
        {"trailing garbage after a date is rejected", "Sun, 06 Nov 1994 08:49:37 GMT x", -1},
        {"an imf date without the comma is rejected", "Sun 06 Nov 1994 08:49:37 GMT", -1},
        {"an asctime date without a year is rejected", "Sun Nov  6 08:49:37", -1},
        {"an empty date is rejected", "", -1},
        {"a number is not a date", "120", -1},
        {"an iso 8601 date is rejected", "2015-10-21T07:28:00Z", -1},
};

static void http_date_parses_as_expected(void **state)
{
	const struct duration_case *c = *state;
	assert_int_equal(rl_parse_http_date_ms(c->text, strlen(c->text)), c->ms);
}

/* ---- single headers ---------------------------------------------------------------- */

struct header_case {
	const char *name;
	const char *header;
	const char *value;
	int64_t wait; /* rl_retry_after_ms with no body */
	enum rl_source source;
};

static const struct header_case headers[] = {
        {"retry-after-ms gives milliseconds", "retry-after-ms", "1500", 1500, RL_SOURCE_RETRY_AFTER_MS},
        {"retry-after-ms with a fraction rounds up", "retry-after-ms", "10.2", 11, RL_SOURCE_RETRY_AFTER_MS},
        {"header names are case insensitive", "Retry-After-Ms", "7", 7, RL_SOURCE_RETRY_AFTER_MS},
        {"header names may carry whitespace", " RETRY-AFTER-MS\t", "8", 8, RL_SOURCE_RETRY_AFTER_MS},
        {"values may carry whitespace and crlf", "retry-after-ms", "  250 \r\n", 250, RL_SOURCE_RETRY_AFTER_MS},
        {"a huge retry-after-ms is capped", "retry-after-ms", "18446744073709551616", CAP, RL_SOURCE_RETRY_AFTER_MS},
        {"a negative retry-after-ms is ignored", "retry-after-ms", "-5", -1, RL_SOURCE_NONE},
        {"a garbage retry-after-ms is ignored", "retry-after-ms", "soon", -1, RL_SOURCE_NONE},
        {"an empty retry-after-ms is ignored", "retry-after-ms", "", -1, RL_SOURCE_NONE},
        {"x-ms-retry-after-ms gives milliseconds", "x-ms-retry-after-ms", "3000", 3000, RL_SOURCE_X_MS_RETRY_AFTER_MS},
        {"retry-after delta seconds become milliseconds", "retry-after", "120", 120000, RL_SOURCE_RETRY_AFTER},
        {"retry-after with fractional seconds", "retry-after", "1.5", 1500, RL_SOURCE_RETRY_AFTER},
        {"retry-after of zero means now", "Retry-After", "0", 0, RL_SOURCE_RETRY_AFTER},
        {"retry-after as a future imf date counts from now", "retry-after", "Wed, 21 Oct 2015 07:28:30 GMT", 30000,
         RL_SOURCE_RETRY_AFTER},
        {"retry-after as a future rfc 850 date counts from now", "retry-after", "Wednesday, 21-Oct-15 07:29:00 GMT", 60000,
         RL_SOURCE_RETRY_AFTER},
        {"retry-after as a future asctime date counts from now", "retry-after", "Wed Oct 21 07:28:05 2015", 5000,
         RL_SOURCE_RETRY_AFTER},
        {"retry-after as a past date means now", "retry-after", "Sun, 06 Nov 1994 08:49:37 GMT", 0, RL_SOURCE_RETRY_AFTER},
        {"retry-after as a far future date is capped", "retry-after", "Fri, 31 Dec 9999 23:59:59 GMT", CAP,
         RL_SOURCE_RETRY_AFTER},
        {"retry-after as a negative number is ignored", "retry-after", "-1", -1, RL_SOURCE_NONE},
        {"retry-after as garbage is ignored", "retry-after", "tomorrow", -1, RL_SOURCE_NONE},
        {"retry-after with a unit is ignored", "retry-after", "20s", -1, RL_SOURCE_NONE},
        {"x-ratelimit-reset-requests as bare seconds", "x-ratelimit-reset-requests", "20", 20000, RL_SOURCE_RESET_REQUESTS},
        {"x-ratelimit-reset-requests as a go duration", "x-ratelimit-reset-requests", "6m0s", 360000, RL_SOURCE_RESET_REQUESTS},
        {"x-ratelimit-reset-tokens in milliseconds", "x-ratelimit-reset-tokens", "250ms", 250, RL_SOURCE_RESET_TOKENS},
        {"x-ratelimit-reset-tokens in hours", "X-RateLimit-Reset-Tokens", "1h2m3.5s", 3723500, RL_SOURCE_RESET_TOKENS},
        {"a garbage reset is ignored", "x-ratelimit-reset-tokens", "later", -1, RL_SOURCE_NONE},
        {"an unrelated header is ignored", "x-request-id", "120", -1, RL_SOURCE_NONE},
        {"a header name that only starts alike is ignored", "retry-after-msx", "5", -1, RL_SOURCE_NONE},
};

static void header_gives_the_expected_wait(void **state)
{
	const struct header_case *c = *state;
	struct rl_info r;
	enum rl_source src = (enum rl_source)99;
	rl_init(&r);
	rl_feed_header(&r, c->header, strlen(c->header), c->value, strlen(c->value), NOW);
	assert_int_equal(rl_retry_after_ms(&r, NULL, 0, &src), c->wait);
	assert_int_equal(src, c->source);
}

/* ---- hints in the body ---------------------------------------------------------------- */

static const struct duration_case hints[] = {
        {"an azure rate limit message gives its seconds",
         "{\"error\":{\"code\":\"429\",\"message\":\"Requests to the ChatCompletions_Create Operation "
         "under Azure OpenAI API version 2024-02-01 have exceeded token rate limit of your current "
         "OpenAI S0 pricing tier. Please retry after 7 seconds. Please go here: "
         "https://aka.ms/oai/quotaincrease if you would like to further increase the default rate "
         "limit.\"}}",
         7000},
        {"retry after one second", "Please retry after 1 second.", 1000},
        {"the hint is case insensitive", "RETRY AFTER 2 SECONDS", 2000},
        {"retry after a fraction of a second", "retry after 0.5 seconds", 500},
        {"retry after minutes", "Please retry after 2 minutes.", 120000},
        {"an openai message gives compact seconds",
         "Rate limit reached for gpt-4 in organization org-x on tokens per min (TPM): Limit 10000, "
         "Used 9800, Requested 500. Please try again in 1.8s. Visit https://platform.openai.com",
         1800},
        {"try again in whole seconds", "Please try again in 20s.", 20000},
        {"try again in spelled out seconds", "try again in 1.5 seconds", 1500},
        {"try again in milliseconds", "Please try again in 6ms.", 6},
        {"try again in minutes and seconds", "Please try again in 1m30s.", 90000},
        {"try again in an hour", "try again in 1 hour", 3600000},
        {"retry again in is understood", "Please retry again in 3 seconds", 3000},
        {"a huge hint is capped", "try again in 99999999999999 seconds", CAP},
        {"the first usable hint wins", "retry after a while. try again in 3s, or retry after 9s", 3000},
        {"a hint without a unit is ignored", "retry after 5", -1},
        {"a hint with words is ignored", "retry after a short while", -1},
        {"a negative hint is ignored", "retry after -5 seconds", -1},
        {"a body without a hint gives nothing", "{\"error\":{\"message\":\"Too many requests\"}}", -1},
        {"an empty body gives nothing", "", -1},
};

static void body_hint_gives_the_expected_wait(void **state)
{
	const struct duration_case *c = *state;
	struct rl_info r;
	enum rl_source src = (enum rl_source)99;
	rl_init(&r);
	assert_int_equal(rl_retry_after_ms(&r, c->text, strlen(c->text), &src), c->ms);
	assert_int_equal(src, c->ms >= 0 ? RL_SOURCE_MESSAGE : RL_SOURCE_NONE);
}

/* ---- fixed tests ------------------------------------------------------------------------- */

static void the_first_source_present_wins_for_every_subset(void **state)
{
	static const char *const names[5] = {"retry-after-ms", "x-ms-retry-after-ms", "retry-after", "x-ratelimit-reset-requests",
	                                     "x-ratelimit-reset-tokens"};
	static const char *const values[5] = {"1001", "2002", "3", "4s", "5s"};
	static const int64_t waits[5] = {1001, 2002, 3000, 4000, 5000};
	static const enum rl_source sources[5] = {RL_SOURCE_RETRY_AFTER_MS, RL_SOURCE_X_MS_RETRY_AFTER_MS, RL_SOURCE_RETRY_AFTER,
	                                          RL_SOURCE_RESET_REQUESTS, RL_SOURCE_RESET_TOKENS};
	const char *body = "Please retry after 6 seconds.";
	for (int with_body = 0; with_body < 2; with_body++) {
		for (unsigned mask = 0; mask < 32; mask++) {
			struct rl_info r;
			rl_init(&r);
			/* feed in reverse so that arrival order cannot be what decides */
			for (int k = 4; k >= 0; k--)
				if (mask & (1u << k))
					rl_feed_header(&r, names[k], strlen(names[k]), values[k], strlen(values[k]), NOW);
			enum rl_source src;
			int64_t got = rl_retry_after_ms(&r, with_body ? body : NULL, with_body ? strlen(body) : 0, &src);
			int64_t want = -1;
			enum rl_source want_src = RL_SOURCE_NONE;
			for (int k = 0; k < 5; k++) {
				if (mask & (1u << k)) {
					want = waits[k];
					want_src = sources[k];
					break;
				}
			}
			if (want < 0 && with_body) {
				want = 6000;
				want_src = RL_SOURCE_MESSAGE;
			}
			if (got != want || src != want_src)
				fail_msg("mask %u body %d: got %lld from %s", mask, with_body, (long long)got,
				         rl_source_name(src));
		}
	}
}

static void counts_are_kept_and_saturate(void **state)
{
	struct rl_info r;
	rl_init(&r);
	assert_int_equal(r.remaining_requests, -1);
	assert_int_equal(r.remaining_tokens, -1);
	assert_int_equal(r.limit_requests, -1);
	assert_int_equal(r.limit_tokens, -1);
	rl_feed_header(&r, "x-ratelimit-remaining-requests", 30, " 42\r\n", 5, NOW);
	rl_feed_header(&r, "X-RateLimit-Remaining-Tokens", 28, "0", 1, NOW);
	rl_feed_header(&r, "x-ratelimit-limit-requests", 26, "60", 2, NOW);
	rl_feed_header(&r, "x-ratelimit-limit-tokens", 24, "99999999999999999999999", 23, NOW);
	assert_int_equal(r.remaining_requests, 42);
	assert_int_equal(r.remaining_tokens, 0);
	assert_int_equal(r.limit_requests, 60);
	assert_int_equal(r.limit_tokens, RL_MAX_COUNT);
	/* garbage leaves the field as it was; a valid repeat overrides */
	rl_feed_header(&r, "x-ratelimit-remaining-requests", 30, "many", 4, NOW);
	assert_int_equal(r.remaining_requests, 42);
	rl_feed_header(&r, "x-ratelimit-remaining-requests", 30, "-3", 2, NOW);
	assert_int_equal(r.remaining_requests, 42);
	rl_feed_header(&r, "x-ratelimit-remaining-requests", 30, "41", 2, NOW);
	assert_int_equal(r.remaining_requests, 41);
	/* counts are not waits */
	assert_int_equal(rl_retry_after_ms(&r, NULL, 0, NULL), -1);
}

static void a_repeated_header_overrides_and_garbage_keeps_the_old_value(void **state)
{
	struct rl_info r;
	rl_init(&r);
	rl_feed_header(&r, "retry-after", 11, "10", 2, NOW);
	rl_feed_header(&r, "retry-after", 11, "bogus", 5, NOW);
	assert_int_equal(rl_retry_after_ms(&r, NULL, 0, NULL), 10000);
	rl_feed_header(&r, "retry-after", 11, "2", 1, NOW);
	assert_int_equal(rl_retry_after_ms(&r, NULL, 0, NULL), 2000);
}

static void a_date_needs_a_known_clock(void **state)
{
	struct rl_info r;
	const char *v = "Wed, 21 Oct 2015 07:28:30 GMT";
	rl_init(&r);
	rl_feed_header(&r, "retry-after", 11, v, strlen(v), -1);
	assert_int_equal(rl_retry_after_ms(&r, NULL, 0, NULL), -1);
}

static void headers_beat_the_body_hint(void **state)
{
	struct rl_info r;
	enum rl_source src;
	const char *body = "try again in 9s";
	rl_init(&r);
	rl_feed_header(&r, "x-ratelimit-reset-tokens", 24, "1s", 2, NOW);
	assert_int_equal(rl_retry_after_ms(&r, body, strlen(body), &src), 1000);
	assert_int_equal(src, RL_SOURCE_RESET_TOKENS);
}

static void a_hint_past_the_scan_limit_is_not_seen(void **state)
{
	size_t n = RL_MAX_BODY_SCAN + 64;
	char *body = malloc(n);
	assert_non_null(body);
	memset(body, ' ', n);
	const char *hint = "retry after 5 seconds.";
	struct rl_info r;
	rl_init(&r);
	/* the phrase ends just inside the limit, its number just outside */
	memcpy(body + RL_MAX_BODY_SCAN - 11, hint, strlen(hint));
	int64_t got = rl_retry_after_ms(&r, body, n, NULL);
	memcpy(body + RL_MAX_BODY_SCAN - 40, hint, strlen(hint));
	int64_t got2 = rl_retry_after_ms(&r, body, n, NULL);
	free(body);
	assert_int_equal(got, -1);
	assert_int_equal(got2, 5000);
}

static void source_names_are_the_header_names(void **state)
{
	assert_string_equal(rl_source_name(RL_SOURCE_NONE), "none");
	assert_string_equal(rl_source_name(RL_SOURCE_RETRY_AFTER_MS), "retry-after-ms");
	assert_string_equal(rl_source_name(RL_SOURCE_X_MS_RETRY_AFTER_MS), "x-ms-retry-after-ms");
	assert_string_equal(rl_source_name(RL_SOURCE_RETRY_AFTER), "retry-after");
	assert_string_equal(rl_source_name(RL_SOURCE_RESET_REQUESTS), "x-ratelimit-reset-requests");
	assert_string_equal(rl_source_name(RL_SOURCE_RESET_TOKENS), "x-ratelimit-reset-tokens");
	assert_string_equal(rl_source_name(RL_SOURCE_MESSAGE), "message");
	assert_string_equal(rl_source_name((enum rl_source)99), "none");
}

static void null_inputs_are_harmless(void **state)
{
	struct rl_info r;
	rl_init(&r);
	rl_feed_header(&r, NULL, 0, "5", 1, NOW);
	rl_feed_header(&r, "retry-after", 11, NULL, 0, NOW);
	assert_int_equal(rl_retry_after_ms(&r, NULL, 100, NULL), -1);
	assert_int_equal(rl_parse_duration_ms(NULL, 3), -1);
	assert_int_equal(rl_parse_http_date_ms(NULL, 3), -1);
	/* lengths are honoured: no NUL needed, bytes past n unread */
	assert_int_equal(rl_parse_duration_ms("12s-garbage", 3), 12000);
	assert_int_equal(rl_parse_http_date_ms("Thu, 01 Jan 1970 00:00:00 GMTX", 29), 0);
}

#define ROWS(arr, fn)                                                \
	for (size_t i = 0; i < sizeof arr / sizeof arr[0]; i++)      \
		tests[k++] = (struct CMUnitTest)                     \
		{                                                    \
			arr[i].name, fn, NULL, NULL, (void *)&arr[i] \
		}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
	        cmocka_unit_test(the_first_source_present_wins_for_every_subset),
	        cmocka_unit_test(counts_are_kept_and_saturate),
	        cmocka_unit_test(a_repeated_header_overrides_and_garbage_keeps_the_old_value),
	        cmocka_unit_test(a_date_needs_a_known_clock),
	        cmocka_unit_test(headers_beat_the_body_hint),
	        cmocka_unit_test(a_hint_past_the_scan_limit_is_not_seen),
	        cmocka_unit_test(source_names_are_the_header_names),
	        cmocka_unit_test(null_inputs_are_harmless),
	};
	static struct CMUnitTest tests[sizeof durations / sizeof durations[0] + sizeof dates / sizeof dates[0] +
	                               sizeof headers / sizeof headers[0] + sizeof hints / sizeof hints[0] +
	                               sizeof fixed / sizeof fixed[0]];
	size_t k = 0;
	ROWS(durations, duration_parses_as_expected);
	ROWS(dates, http_date_parses_as_expected);
	ROWS(headers, header_gives_the_expected_wait);
	ROWS(hints, body_hint_gives_the_expected_wait);
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
		tests[k++] = fixed[i];
	return _cmocka_run_group_tests("ratelimit", tests, k, NULL, NULL);
}
