/* sse.h -- an incremental Server-Sent Events parser (WHATWG HTML §9.2.6).
 *
 * Pure: bytes in, events out through a callback; no clock, socket or file.
 * Feed the body of a `text/event-stream` response in whatever pieces the
 * transport delivers -- a split may fall anywhere, including between the
 * CR and LF of a line ending or inside a UTF-8 sequence -- and the parser
 * calls back once per complete event, exactly as if the stream had arrived
 * in one piece.
 *
 * The framing it implements (the contract the HTTP layer relies on):
 *   - one leading UTF-8 BOM is skipped;
 *   - lines end in LF, CRLF or a lone CR;
 *   - a line starting with ':' is a comment and is ignored;
 *   - "name:value" sets field `name`; one space after the colon is
 *     stripped; a line without a colon is a field with an empty value;
 *   - `data` appends its value plus LF to the data buffer, `event` sets the
 *     event type (ignored if it holds a NUL byte -- a deliberate departure
 *     from the spec, since the type is handed over as a C string), `id`
 *     sets the last event id (ignored if it holds a NUL),
 *     `retry` (ASCII digits only) sets the reconnection time; other fields
 *     are ignored;
 *   - a blank line dispatches: the trailing LF of the data is removed, the
 *     type defaults to "message", an event with no data is dropped;
 *   - at end of stream a pending event is NOT dispatched.
 *
 * Limits: a line longer than `max_line_bytes`, or event data longer than
 * `max_event_bytes`, fails with CONVBI_ETOOBIG.  After any failure (a limit,
 * CONVBI_ENOMEM, or a non-zero callback return) the parser is spent: every
 * later sse_feed returns the same code without reading.
 */
#ifndef CONVBI_HTTP_SSE_H
#define CONVBI_HTTP_SSE_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Event data cap used when sse_init is given 0. */
#define SSE_DEFAULT_MAX_EVENT_BYTES ((size_t)1 << 20)
/* sse_init sets max_line_bytes to max_event_bytes plus this much, so that a
 * line carrying a full event's data ("data: " + value) still fits. */
#define SSE_LINE_SLACK 64

/* Called once per dispatched event.  `event` is the type ("message" when
 * the stream named none), `data` the joined data lines (NUL-terminated, but
 * may contain NUL bytes: trust `len`).  Both are borrowed for the duration
 * of the call.  A non-zero return stops parsing; sse_feed returns it. */
typedef int (*sse_event_fn)(const char *event, const char *data, size_t len, void *payload);

struct sse_parser {
	struct buf line;        /* the current unterminated line (owned) */
	struct buf data;        /* data buffer of the pending event (owned) */
	struct buf event;       /* event type buffer of the pending event (owned) */
	struct buf last_id;     /* last event id, kept across events (owned) */
	size_t max_event_bytes; /* cap on an event's data, bytes */
	size_t max_line_bytes;  /* cap on one line, bytes; may be lowered by
	                           the caller after sse_init */
	int64_t retry_ms;       /* last valid `retry` field, -1 = none seen */
	int failed;             /* sticky non-zero code once parsing stopped */
	int after_cr;           /* the previous byte was a CR that ended a line:
	                           a following LF belongs to it */
	int pending;            /* a field line arrived since the last dispatch */
	unsigned bom_seen;      /* bytes of a leading BOM matched so far; 3
	                           once the start of the stream is past */
};

/* Prepares p (caller's storage) for a new stream.  max_event_bytes caps an
 * event's data (0 = SSE_DEFAULT_MAX_EVENT_BYTES); max_line_bytes becomes
 * max_event_bytes + SSE_LINE_SLACK.  Allocates nothing. */
void sse_init(struct sse_parser *p, size_t max_event_bytes);

/* Frees what the parser holds and leaves it as after sse_init (with the
 * same limits).  Accepts NULL. */
void sse_release(struct sse_parser *p);

/* Parses n more bytes of the stream, calling fn(…, payload) for every
 * event completed by them.  Returns CONVBI_OK, CONVBI_ETOOBIG (a line or an
 * event over its cap), CONVBI_ENOMEM, or the callback's non-zero return.
 * On a non-zero return the parser is spent (see above).  bytes may be NULL
 * when n is 0. */
int sse_feed(struct sse_parser *p, const char *bytes, size_t n, sse_event_fn fn, void *payload);

/* Ends the stream.  *partial_out (may be NULL) is set to 1 when bytes were
 * left over: an unterminated line, or fields of an event never dispatched
 * by a blank line -- a truncated stream.  The pending event is discarded,
 * never dispatched.  Returns the parser's sticky code (CONVBI_OK normally)
 * and leaves it ready for a new stream (the last event id is kept). */
int sse_finish(struct sse_parser *p, int *partial_out);

/* The last event id seen ("" if none); borrowed from p. */
const char *sse_last_id(const struct sse_parser *p);

/* The last valid `retry` value in milliseconds, -1 if none. */
int64_t sse_retry_ms(const struct sse_parser *p);

#endif
