/* test_sse.c -- the SSE parser against the WHATWG framing rules.
 *
 * Every row of `streams` is a sample stream with the events it must yield
 * and whether it ends truncated.  Each row becomes one CMocka test that
 * feeds the stream whole, split at every byte (two pieces), byte by byte,
 * and split at every pair of points (three pieces): all must give the same
 * events, so a chunk boundary anywhere -- inside CRLF, inside a BOM, inside
 * a UTF-8 sequence -- cannot change what the client sees.  Events are
 * recorded as "type:data|" with \n, \r, NUL, '\' and '|' escaped.  The
 * remaining tests cover the limits, stopping, ids, retry and ENOMEM.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "convbi/convbi.h"
#include "http/sse.h"
#include "util/alloc.h"
#include "util/buf.h"

/* ---- recording events ------------------------------------------------------ */

struct rec {
	char text[4096]; /* escaped events */
	size_t used;
	int count;
	int stop_at; /* return 42 on this event (1-based), 0 = never */
};

/* Appends s escaped (escape = 1) or as is. */
static void rec_put(struct rec *r, const char *s, size_t n, int escape)
{
	for (size_t i = 0; i < n && r->used + 3 < sizeof r->text; i++) {
		char c = s[i];
		const char *esc = c == '\n'   ? "\\n"
		                  : c == '\r' ? "\\r"
		                  : c == '\0' ? "\\0"
		                  : c == '\\' ? "\\\\"
		                  : c == '|'  ? "\\|"
		                              : NULL;
		if (esc && escape) {
			memcpy(r->text + r->used, esc, 2);
			r->used += 2;
		} else {
			r->text[r->used++] = c;
		}
	}
	r->text[r->used] = '\0';
}

static int on_event(const char *event, const char *data, size_t len, void *payload)
{
	struct rec *r = payload;
	assert_int_equal(data[len], '\0');
	rec_put(r, event, strlen(event), 1);
	rec_put(r, ":", 1, 0);
	rec_put(r, data, len, 1);
	rec_put(r, "|", 1, 0);
	r->count++;
	return r->stop_at && r->count == r->stop_at ? 42 : 0;
}

/* Feeds s[0..n) cut at the sorted points cuts[0..ncuts) and finishes. */
static int feed_cut(const char *s, size_t n, const size_t *cuts, size_t ncuts, size_t max_event, struct rec *r, int *partial)
{
	struct sse_parser p;
	sse_init(&p, max_event);
	memset(r, 0, sizeof *r);
	size_t from = 0;
	int rc = CONVBI_OK;
	for (size_t k = 0; k <= ncuts && !rc; k++) {
		size_t to = k < ncuts ? cuts[k] : n;
		rc = sse_feed(&p, s + from, to - from, on_event, r);
		from = to;
	}
	int frc = sse_finish(&p, partial);
	assert_int_equal(frc, rc);
	sse_release(&p);
	return rc;
}

/* ---- the sample streams ------------------------------------------------------ */

struct stream_case {
	const char *name; /* reads as a sentence */
	const char *bytes;
	size_t len;         /* bytes in the stream (it may hold NUL) */
	const char *events; /* expected, escaped */
	int partial;        /* expected sse_finish partial flag */
};

#define S(name, bytes, events, partial)                         \
	{                                                       \
		name, bytes, sizeof(bytes) - 1, events, partial \
	}

static const struct stream_case streams[] = {
        S("a data line and a blank line dispatch one message", "data: hello\n\n", "message:hello|", 0),
        S("crlf line endings work like lf", "data: a\r\n\r\n", "message:a|", 0),
        S("crlf between data lines does not end the event", "data: a\r\ndata: b\r\n\r\n", "message:a\\nb|", 0),
        S("lone cr line endings work like lf", "data: a\r\r", "message:a|", 0),
        S("mixed line endings in one event join with lf", "data: a\rdata: b\r\ndata: c\n\n", "message:a\\nb\\nc|", 0),
        S("cr cr lf is a line then a blank line", "data: a\r\r\ndata: b\n\n", "message:a|message:b|", 0),
        S("several data lines join with lf", "data: one\ndata: two\ndata: three\n\n", "message:one\\ntwo\\nthree|", 0),
        S("event field names the event type", "event: delta\ndata: x\n\n", "delta:x|", 0),
        S("event type resets after dispatch", "event: e\ndata: 1\n\ndata: 2\n\n", "e:1|message:2|", 0),
        S("last event field wins", "event: a\nevent: b\ndata: x\n\n", "b:x|", 0),
        S("comment lines are ignored", ": keep-alive\n\n: another\ndata: x\n\n", "message:x|", 0),
        S("a comment between data lines changes nothing", "data: a\n: note\ndata: b\n\n", "message:a\\nb|", 0),
        S("a field without colon has an empty value", "data\n\n", "message:|", 0),
        S("two bare data fields give one lf", "data\ndata\n\n", "message:\\n|", 0),
        S("an empty data value dispatches empty data", "data:\n\n", "message:|", 0),
        S("only one leading space is stripped", "data:  two spaces\n\n", "message: two spaces|", 0),
        S("no space after the colon is fine", "data:x\n\n", "message:x|", 0),
        S("a tab after the colon is kept", "data:\tx\n\n", "message:\tx|", 0),
        S("colons in the value are kept", "data: a:b: c\n\n", "message:a:b: c|", 0),
        S("unknown fields are ignored", "foo: bar\ndata: x\nbaz\n\n", "message:x|", 0),
        S("field names are case sensitive", "Data: x\n\n", "", 0),
        S("a space before the colon makes another field", "data : x\n\n", "", 0),
        S("an event without data is not dispatched", "event: ping\n\n", "", 0),
        S("an event without data does not leak its type", "event: ping\n\ndata: x\n\n", "message:x|", 0),
        S("extra blank lines dispatch nothing more", "data: x\n\n\n\n\r\n\r", "message:x|", 0),
        S("a pending event at end of stream is not dispatched", "data: x\n", "", 1),
        S("an unterminated line at end of stream is partial", "data: x\n\ndata: y", "message:x|", 1),
        S("an unterminated comment is partial", ": partial comment", "", 1),
        S("a stream ending in cr is complete", "data: x\r\r", "message:x|", 0),
        S("a leading bom is skipped",
          "\xEF\xBB\xBF"
          "data: x\n\n",
          "message:x|", 0),
        S("only the first bom is skipped",
          "\xEF\xBB\xBF\xEF\xBB\xBF"
          "data: x\n\n",
          "", 0),
        S("a partial bom is content",
          "\xEF\xBB"
          "data: x\n\ndata: y\n\n",
          "message:y|", 0),
        S("a bom byte alone then a line is content", "\xEF\n\ndata: z\n\n", "message:z|", 0),
        S("a bom alone is partial", "\xEF\xBB", "", 1),
        S("a bom in the middle is data",
          "data: a\xEF\xBB\xBF"
          "b\n\n",
          "message:a\xEF\xBB\xBF"
          "b|",
          0),
        S("utf8 data survives any split", "data: h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80\n\n",
          "message:h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80|", 0),
        S("nul bytes in data are delivered", "data: a\0b\n\n", "message:a\\0b|", 0),
        S("an event type holding a nul is ignored", "event: x\ndata: 1\nevent: e\0rror\n\n", "x:1|", 0),
        S("id and retry lines are not events", "id: 1\nretry: 10\n\n", "", 0),
        S("id and retry lines make a stream partial", "id: 1\nretry: 10\n", "", 1),
        S("an azure chat completion stream gives one event per chunk",
          "data: {\"choices\":[],\"created\":0,\"id\":\"\",\"model\":\"\",\"object\":\"\","
          "\"prompt_filter_results\":[{\"prompt_index\":0}]}\n\n"
          "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"},\"index\":0}]}\n\n"
          "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"},\"index\":0}]}\n\n"
          "data: [DONE]\n\n",
          "message:{\"choices\":[],\"created\":0,\"id\":\"\",\"model\":\"\",\"object\":\"\","
          "\"prompt_filter_results\":[{\"prompt_index\":0}]}"
          "|message:{\"choices\":[{\"delta\":{\"content\":\"Hel\"},\"index\":0}]}"
          "|message:{\"choices\":[{\"delta\":{\"content\":\"lo\"},\"index\":0}]}"
          "|message:[DONE]|",
          0),
        S("an openai stream with crlf and keep alives",
          ": ping\r\n\r\ndata: {\"a\":1}\r\n\r\n"
          ": ping\r\n\r\ndata: [DONE]\r\n\r\n",
          "message:{\"a\":1}|message:[DONE]|", 0),
        S("a named event with multi line json",
          "event: error\ndata: {\ndata:  \"code\": 429\n"
          "data: }\n\n",
          "error:{\\n \"code\": 429\\n}|", 0),
        S("backslashes and pipes pass through", "data: a\\b|c\n\n", "message:a\\\\b\\|c|", 0),
        S("an empty stream is complete and silent", "", "", 0),
};

/* All the ways to cut one stream; fails naming the cut that differed. */
static void every_split_gives_the_same_events(void **state)
{
	const struct stream_case *c = *state;
	size_t n = c->len;
	struct rec r;
	int partial = -1;
	size_t cuts[2];
	assert_int_equal(feed_cut(c->bytes, n, NULL, 0, 0, &r, &partial), CONVBI_OK);
	assert_string_equal(r.text, c->events);
	assert_int_equal(partial, c->partial);
	for (size_t i = 0; i <= n; i++) {
		cuts[0] = i;
		assert_int_equal(feed_cut(c->bytes, n, cuts, 1, 0, &r, &partial), CONVBI_OK);
		if (strcmp(r.text, c->events) || partial != c->partial)
			fail_msg("split at %zu: got \"%s\" partial %d", i, r.text, partial);
	}
	for (size_t i = 0; i <= n; i++) {
		for (size_t j = i; j <= n; j++) {
			cuts[0] = i;
			cuts[1] = j;
			assert_int_equal(feed_cut(c->bytes, n, cuts, 2, 0, &r, &partial), CONVBI_OK);
			if (strcmp(r.text, c->events) || partial != c->partial)
				fail_msg("splits at %zu,%zu: got \"%s\" partial %d", i, j, r.text, partial);
		}
	}
	/* byte by byte */
	struct sse_parser p;
	sse_init(&p, 0);
	memset(&r, 0, sizeof r);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(sse_feed(&p, c->bytes + i, 1, on_event, &r), CONVBI_OK);
	assert_int_equal(sse_finish(&p, &partial), CONVBI_OK);
	assert_string_equal(r.text, c->events);
	assert_int_equal(partial, c->partial);
	sse_release(&p);
}

/* ---- limits ------------------------------------------------------------------ */

struct limit_case {
	const char *name;
	const char *bytes;
	size_t max_event;
	int rc;             /* expected from the feed, at every split */
	const char *events; /* delivered before the failure */
};

static const struct limit_case limits[] = {
        {"data exactly at the event cap is delivered", "data: 12345678\n\n", 8, CONVBI_OK, "message:12345678|"},
        {"data one byte over the event cap is too big", "data: 123456789\n\n", 8, CONVBI_ETOOBIG, ""},
        {"joined data lines count their lf against the cap", "data: 1234\ndata: 5678\n\n", 8, CONVBI_ETOOBIG, ""},
        {"joined data lines within the cap are delivered", "data: 123\ndata: 4567\n\n", 8, CONVBI_OK, "message:123\\n4567|"},
        {"events before the oversized one are delivered", "data: ok\n\ndata: 123456789\n\n", 8, CONVBI_ETOOBIG, "message:ok|"},
        {"a comment longer than the line cap is too big",
         ": 0123456789012345678901234567890123456789012345678901234567890123456789012345\n", 8, CONVBI_ETOOBIG, ""},
        {"an unterminated line longer than the line cap is too big",
         "data: 0123456789012345678901234567890123456789012345678901234567890123456789", 8, CONVBI_ETOOBIG, ""},
        {"a line exactly at the line cap is accepted",
         ": 0123456789012345678901234567890123456789012345678901234567890123456789\n\n", 8, CONVBI_OK, ""},
        {"a line one byte over the line cap is too big",
         ": 01234567890123456789012345678901234567890123456789012345678901234567890\n\n", 8, CONVBI_ETOOBIG, ""},
};

static void limit_holds_at_every_split(void **state)
{
	const struct limit_case *c = *state;
	size_t n = strlen(c->bytes);
	for (size_t i = 0; i <= n; i++) {
		struct rec r;
		int partial;
		size_t cut = i;
		int rc = feed_cut(c->bytes, n, &cut, 1, c->max_event, &r, &partial);
		if (rc != c->rc || strcmp(r.text, c->events))
			fail_msg("split at %zu: rc %d events \"%s\"", i, rc, r.text);
	}
}

/* ---- single behaviours ---------------------------------------------------------- */

static void a_failed_parser_stays_failed(void **state)
{
	struct sse_parser p;
	struct rec r = {0};
	sse_init(&p, 4);
	assert_int_equal(sse_feed(&p, "data: 12345\n\n", 13, on_event, &r), CONVBI_ETOOBIG);
	assert_int_equal(sse_feed(&p, "data: 1\n\n", 9, on_event, &r), CONVBI_ETOOBIG);
	assert_int_equal(r.count, 0);
	int partial = 0;
	assert_int_equal(sse_finish(&p, &partial), CONVBI_ETOOBIG);
	/* finish readies the parser for a new stream */
	assert_int_equal(sse_feed(&p, "data: 1\n\n", 9, on_event, &r), CONVBI_OK);
	assert_string_equal(r.text, "message:1|");
	sse_release(&p);
}

static void a_callback_return_stops_parsing_and_is_returned(void **state)
{
	struct sse_parser p;
	struct rec r = {0};
	r.stop_at = 2;
	const char *s = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
	sse_init(&p, 0);
	assert_int_equal(sse_feed(&p, s, strlen(s), on_event, &r), 42);
	assert_int_equal(r.count, 2);
	assert_int_equal(sse_feed(&p, "data: 4\n\n", 9, on_event, &r), 42);
	assert_int_equal(r.count, 2);
	sse_release(&p);
}

static void a_lowered_line_cap_is_honoured(void **state)
{
	struct sse_parser p;
	struct rec r = {0};
	sse_init(&p, 1000);
	p.max_line_bytes = 10;
	assert_int_equal(sse_feed(&p, "data: 1234", 10, on_event, &r), CONVBI_OK);
	assert_int_equal(sse_feed(&p, "5", 1, on_event, &r), CONVBI_ETOOBIG);
	sse_release(&p);
	sse_init(&p, 1000);
	p.max_line_bytes = 10;
	assert_int_equal(sse_feed(&p, "data: 12345\n", 12, on_event, &r), CONVBI_ETOOBIG);
	sse_release(&p);
}

static void the_last_event_id_persists_across_events(void **state)
{
	static const char first[] = "id: 7\ndata: a\n\n";
	static const char second[] = "data: b\n\n";
	static const char nul_id[] = "id: x\0y\ndata: c\n\n";
	struct sse_parser p;
	struct rec r = {0};
	sse_init(&p, 0);
	assert_string_equal(sse_last_id(&p), "");
	assert_int_equal(sse_feed(&p, first, sizeof first - 1, on_event, &r), CONVBI_OK);
	assert_string_equal(sse_last_id(&p), "7");
	assert_int_equal(sse_feed(&p, second, sizeof second - 1, on_event, &r), CONVBI_OK);
	assert_string_equal(sse_last_id(&p), "7");
	/* an id holding NUL is ignored */
	assert_int_equal(sse_feed(&p, nul_id, sizeof nul_id - 1, on_event, &r), CONVBI_OK);
	assert_string_equal(sse_last_id(&p), "7");
	assert_string_equal(r.text, "message:a|message:b|message:c|");
	assert_int_equal(sse_feed(&p, "id\n", 3, on_event, &r), CONVBI_OK);
	assert_string_equal(sse_last_id(&p), "");
	sse_release(&p);
}

static void retry_accepts_only_ascii_digits(void **state)
{
	static const struct {
		const char *line;
		int64_t want;
	} cases[] = {
	        {"retry: 1500\n", 1500},
	        {"retry:0\n", 0},
	        {"retry: 15x\n", -1},
	        {"retry:\n", -1},
	        {"retry: -5\n", -1},
	        {"retry: 1 \n", -1},
	        {"retry: 99999999999999999999999\n", (int64_t)1 << 53},
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		struct sse_parser p;
		sse_init(&p, 0);
		assert_int_equal(sse_feed(&p, cases[k].line, strlen(cases[k].line), on_event, NULL), CONVBI_OK);
		if (sse_retry_ms(&p) != cases[k].want)
			fail_msg("%s gave %lld", cases[k].line, (long long)sse_retry_ms(&p));
		sse_release(&p);
	}
}

static void a_null_callback_drops_events(void **state)
{
	struct sse_parser p;
	int partial = 1;
	sse_init(&p, 0);
	assert_int_equal(sse_feed(&p, "data: x\n\n", 9, NULL, NULL), CONVBI_OK);
	assert_int_equal(sse_feed(&p, NULL, 0, NULL, NULL), CONVBI_OK);
	assert_int_equal(sse_finish(&p, &partial), CONVBI_OK);
	assert_int_equal(partial, 0);
	sse_release(&p);
	sse_release(NULL);
}

static void finish_restarts_the_bom_check_and_keeps_the_id(void **state)
{
	struct sse_parser p;
	struct rec r = {0};
	sse_init(&p, 0);
	assert_int_equal(sse_feed(&p, "id: 3\ndata: a", 13, on_event, &r), CONVBI_OK);
	int partial = 0;
	assert_int_equal(sse_finish(&p, &partial), CONVBI_OK);
	assert_int_equal(partial, 1);
	assert_int_equal(sse_feed(&p,
	                          "\xEF\xBB\xBF"
	                          "data: b\n\n",
	                          12, on_event, &r),
	                 CONVBI_OK);
	assert_string_equal(r.text, "message:b|");
	assert_string_equal(sse_last_id(&p), "3");
	sse_release(&p);
}

static void allocation_failure_is_reported_at_every_point(void **state)
{
	const char *s = "event: e\nid: 1\ndata: abc\ndata: d";
	for (long k = 1;; k++) {
		struct sse_parser p;
		struct rec r = {0};
		sse_init(&p, 0);
		alloc_fail_at(k, 1);
		int rc = sse_feed(&p, s, 10, on_event, &r);
		if (!rc)
			rc = sse_feed(&p, s + 10, strlen(s) - 10, on_event, &r);
		if (!rc)
			rc = sse_feed(&p, "\n\n", 2, on_event, &r);
		long used = alloc_fail_at(0, 0);
		sse_release(&p);
		if (rc == CONVBI_OK) {
			assert_true(used < k);
			assert_string_equal(r.text, "e:abc\\nd|");
			break;
		}
		assert_int_equal(rc, CONVBI_ENOMEM);
		assert_int_equal(r.count, 0);
		assert_true(k < 50);
	}
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
	        cmocka_unit_test(a_failed_parser_stays_failed),
	        cmocka_unit_test(a_callback_return_stops_parsing_and_is_returned),
	        cmocka_unit_test(a_lowered_line_cap_is_honoured),
	        cmocka_unit_test(the_last_event_id_persists_across_events),
	        cmocka_unit_test(retry_accepts_only_ascii_digits),
	        cmocka_unit_test(a_null_callback_drops_events),
	        cmocka_unit_test(finish_restarts_the_bom_check_and_keeps_the_id),
	        cmocka_unit_test(allocation_failure_is_reported_at_every_point),
	};
	enum {
		NS = sizeof streams / sizeof streams[0],
		NL = sizeof limits / sizeof limits[0],
		NF = sizeof fixed / sizeof fixed[0]
	};
	static struct CMUnitTest tests[NS + NL + NF];
	size_t k = 0;
	for (size_t i = 0; i < NS; i++)
		tests[k++] =
		        (struct CMUnitTest){streams[i].name, every_split_gives_the_same_events, NULL, NULL, (void *)&streams[i]};
	for (size_t i = 0; i < NL; i++)
		tests[k++] = (struct CMUnitTest){limits[i].name, limit_holds_at_every_split, NULL, NULL, (void *)&limits[i]};
	for (size_t i = 0; i < NF; i++)
		tests[k++] = fixed[i];
	return _cmocka_run_group_tests("sse", tests, k, NULL, NULL);
}
