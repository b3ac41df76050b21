/* sse.c -- the incremental Server-Sent Events parser (see sse.h).
 *
 * How it works: bytes are scanned for CR or LF.  A line that ends inside
 * the chunk it started in is processed straight from the caller's bytes;
 * only a line that spans chunks is gathered in `line`.  A CR ends its line
 * at once and sets `after_cr`, so an LF arriving first in the next chunk is
 * swallowed as the second half of CRLF -- that is what makes every split
 * point equivalent.  A leading BOM is matched byte by byte for the same
 * reason; if the stream turns out not to start with one, the matched
 * prefix is replayed as ordinary content.
 *
 * Invariants: `data` holds the joined data lines each followed by LF, so a
 * pending event with data always has len >= 1; the trailing LF is removed
 * only in dispatch().  Caps are enforced by the buffers' own `max`
 * (buf_add fails with CONVBI_ETOOBIG and changes nothing), plus one
 * explicit check for a line processed in place.
 */
#include "http/sse.h"

#include <string.h>

#include "convbi/convbi.h"

#define BOM_LEN 3u
static const unsigned char bom[BOM_LEN] = {0xEF, 0xBB, 0xBF};

/* Largest `retry` we store; longer digit strings saturate here. */
#define SSE_RETRY_MAX_MS ((int64_t)1 << 53)

void sse_init(struct sse_parser *p, size_t max_event_bytes)
{
	if (!max_event_bytes)
		max_event_bytes = SSE_DEFAULT_MAX_EVENT_BYTES;
	if (max_event_bytes > SIZE_MAX / 4)
		max_event_bytes = SIZE_MAX / 4;
	p->max_event_bytes = max_event_bytes;
	p->max_line_bytes = max_event_bytes + SSE_LINE_SLACK;
	/* +1: the LF that follows every data line until dispatch drops it */
	buf_init(&p->data, max_event_bytes + 1);
	buf_init(&p->line, p->max_line_bytes);
	buf_init(&p->event, p->max_line_bytes);
	buf_init(&p->last_id, p->max_line_bytes);
	p->retry_ms = -1;
	p->failed = 0;
	p->after_cr = 0;
	p->pending = 0;
	p->bom_seen = 0;
}

void sse_release(struct sse_parser *p)
{
	if (!p)
		return;
	buf_release(&p->line);
	buf_release(&p->data);
	buf_release(&p->event);
	buf_release(&p->last_id);
	sse_init(p, p->max_event_bytes);
}

/* Ends the pending event.  The buffers are reset before the callback's
 * code is returned, so a stopped parser holds no half event. */
static int dispatch(struct sse_parser *p, sse_event_fn fn, void *payload)
{
	int rc = CONVBI_OK;
	p->pending = 0;
	if (p->data.len) {
		p->data.len--; /* the LF after the last data line */
		p->data.data[p->data.len] = '\0';
		const char *type = p->event.len ? p->event.data : "message";
		if (fn)
			rc = fn(type, p->data.data, p->data.len, payload);
	}
	buf_reset(&p->data);
	buf_reset(&p->event);
	return rc;
}

static int field_is(const char *name, size_t nlen, const char *want)
{
	return strlen(want) == nlen && memcmp(name, want, nlen) == 0;
}

/* Applies one complete line (without its terminator).  Field names are
 * compared byte for byte: the spec makes them case-sensitive. */
static int process_line(struct sse_parser *p, const char *s, size_t len, sse_event_fn fn, void *payload)
{
	if (len == 0)
		return dispatch(p, fn, payload);
	if (s[0] == ':')
		return CONVBI_OK;
	const char *colon = memchr(s, ':', len);
	size_t nlen = colon ? (size_t)(colon - s) : len;
	const char *value = colon ? colon + 1 : s + len;
	size_t vlen = len - (size_t)(value - s);
	if (vlen && value[0] == ' ') {
		value++;
		vlen--;
	}
	p->pending = 1;
	int rc = CONVBI_OK;
	if (field_is(s, nlen, "data")) {
		rc = buf_reserve(&p->data, vlen + 1);
		if (!rc) {
			buf_add(&p->data, value, vlen);
			buf_putc(&p->data, '\n');
		}
	} else if (field_is(s, nlen, "event")) {
		/* the type reaches the callback as a C string: one holding a
		 * NUL would arrive cut short, so it is ignored like such an id */
		if (!memchr(value, '\0', vlen)) {
			buf_reset(&p->event);
			rc = buf_add(&p->event, value, vlen);
		}
	} else if (field_is(s, nlen, "id")) {
		if (!memchr(value, '\0', vlen)) {
			buf_reset(&p->last_id);
			rc = buf_add(&p->last_id, value, vlen);
		}
	} else if (field_is(s, nlen, "retry")) {
		int64_t ms = 0;
		size_t i = 0;
		for (; i < vlen && value[i] >= '0' && value[i] <= '9'; i++)
			if (ms < SSE_RETRY_MAX_MS)
				ms = ms * 10 + (value[i] - '0');
		if (vlen && i == vlen)
			p->retry_ms = ms < SSE_RETRY_MAX_MS ? ms : SSE_RETRY_MAX_MS;
	}
	return rc;
}

/* Scans bytes that are past the BOM check. */
static int consume(struct sse_parser *p, const char *bytes, size_t n, sse_event_fn fn, void *payload)
{
	size_t i = 0;
	while (i < n) {
		if (p->after_cr) {
			p->after_cr = 0;
			if (bytes[i] == '\n') {
				i++;
				continue;
			}
		}
		size_t j = i;
		while (j < n && bytes[j] != '\n' && bytes[j] != '\r')
			j++;
		if (j == n)
			return buf_add(&p->line, bytes + i, n - i);
		int rc;
		if (p->line.len == 0) {
			if (j - i > p->max_line_bytes)
				return CONVBI_ETOOBIG;
			rc = process_line(p, bytes + i, j - i, fn, payload);
		} else {
			rc = buf_add(&p->line, bytes + i, j - i);
			if (rc)
				return rc;
			rc = process_line(p, p->line.data, p->line.len, fn, payload);
			buf_reset(&p->line);
		}
		if (bytes[j] == '\r')
			p->after_cr = 1;
		i = j + 1;
		if (rc)
			return rc;
	}
	return CONVBI_OK;
}

int sse_feed(struct sse_parser *p, const char *bytes, size_t n, sse_event_fn fn, void *payload)
{
	if (p->failed)
		return p->failed;
	if (!p->max_line_bytes)
		p->max_line_bytes = 1;
	p->line.max = p->max_line_bytes; /* the caller may have lowered it */
	size_t i = 0;
	int rc = CONVBI_OK;
	while (p->bom_seen < BOM_LEN && i < n) {
		if ((unsigned char)bytes[i] == bom[p->bom_seen]) {
			p->bom_seen++;
			i++;
			continue;
		}
		unsigned matched = p->bom_seen;
		p->bom_seen = BOM_LEN;
		if (matched)
			rc = consume(p, (const char *)bom, matched, fn, payload);
	}
	if (!rc && i < n)
		rc = consume(p, bytes + i, n - i, fn, payload);
	if (rc)
		p->failed = rc;
	return rc;
}

int sse_finish(struct sse_parser *p, int *partial_out)
{
	int partial = p->line.len > 0 || p->pending || (p->bom_seen > 0 && p->bom_seen < BOM_LEN);
	if (partial_out)
		*partial_out = partial;
	int rc = p->failed;
	buf_reset(&p->line);
	buf_reset(&p->data);
	buf_reset(&p->event);
	p->failed = 0;
	p->after_cr = 0;
	p->pending = 0;
	p->bom_seen = 0;
	return rc;
}

const char *sse_last_id(const struct sse_parser *p)
{
	return buf_str(&p->last_id);
}

int64_t sse_retry_ms(const struct sse_parser *p)
{
	return p->retry_ms;
}
