/* wire.c -- how a successful reply goes on the wire, and the stream faults
 * that break it on purpose.
 *
 * Non-stream: one chat.completion object with Content-Length (one choice
 * per `n`, index 0..n-1, each drawn from the rules on its own):
 *   {"choices":[{"content_filter_results":{..}, "finish_reason":"stop",
 *     "index":0, "logprobs":null, "message":{"content":..., "refusal":null,
 *     "role":"assistant"}}], "created":..., "id":"chatcmpl-...",
 *    "model":..., "object":"chat.completion", "prompt_filter_results":[..],
 *    "system_fingerprint":"fp_...", "usage":{...}}
 * Stream: text/event-stream, chunked, one SSE event per HTTP chunk, each
 * "data: <json>\n\n", in Azure's order:
 *   1. {"choices":[], "prompt_filter_results":[...], id/model/object ""}
 *      (Azure kinds only; api.openai.com sends no such event)
 *   2. a chunk whose delta is {"role":"assistant","content":""}
 *   3. content deltas of 4-16 bytes (never splitting a UTF-8 sequence)
 *   4. a chunk with delta {} and finish_reason "stop"
 *   5. with stream_options.include_usage: "choices":[] and "usage" (the
 *      earlier chunks then carry "usage":null, as the real service does)
 *   6. "data: [DONE]"
 * Events are generated one at a time, so a reply_bytes of many MiB costs no
 * memory.  With chunk_ms 0 they are coalesced into ~16 KiB writes; with a
 * gap, each is flushed before the pause.
 *
 * Stream faults count events sent ("after_chunks", all events count):
 * stream_cut closes (FIN, no terminating chunk), stream_stall goes silent
 * with the socket open, malformed_chunk inserts a broken event and goes on,
 * no_done ends with the terminating chunk but no [DONE].  On a non-stream
 * request: cut and stall send the headers and half the body first,
 * malformed sends a truncated JSON body, no_done is a normal reply.
 */
#include "fake_aoai.h"

#include <stdlib.h>
#include <string.h>

#define COALESCE_BYTES 16384
#define SAFE "{\"filtered\":false,\"severity\":\"safe\"}"
#define CFR_SAFE "{\"hate\":" SAFE ",\"self_harm\":" SAFE ",\"sexual\":" SAFE ",\"violence\":" SAFE "}"
#define BROKEN_EVENT "data: {\"choices\":[{\"delta\":{\"content\":\n\n"

struct ids {
	char id[48];       /* chatcmpl-... */
	char fp[16];       /* system_fingerprint */
	long long created; /* Unix seconds */
};

static void ids_make(struct conn *c, struct ids *x)
{
	static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	static const char hex[] = "0123456789abcdef";
	memcpy(x->id, "chatcmpl-", 9);
	for (int i = 0; i < 29; i++)
		x->id[9 + i] = alnum[rng_next(&c->rng) % (sizeof alnum - 1)];
	x->id[38] = '\0';
	memcpy(x->fp, "fp_", 3);
	for (int i = 0; i < 10; i++)
		x->fp[3 + i] = hex[rng_next(&c->rng) & 15];
	x->fp[13] = '\0';
	x->created = (long long)(wall_ms() / 1000);
}

static void usage_json(struct sbuf *b, const struct answer *a)
{
	sb_printf(b,
	          "{\"completion_tokens\":%ld,\"completion_tokens_details\":{\"reasoning_tokens\":0},"
	          "\"prompt_tokens\":%ld,\"prompt_tokens_details\":{\"cached_tokens\":%ld},\"total_tokens\":%ld}",
	          a->completion_tokens, a->prompt_tokens, a->cached_tokens, a->prompt_tokens + a->completion_tokens);
}

static void choice_json(struct sbuf *b, const struct answer *a, int index, const char *text, size_t len)
{
	sb_puts(b, index ? ",{" : "{");
	if (a->azure)
		sb_puts(b, "\"content_filter_results\":" CFR_SAFE ",");
	sb_printf(b, "\"finish_reason\":\"stop\",\"index\":%d,\"logprobs\":null,\"message\":{\"content\":", index);
	sb_json(b, text, len);
	sb_puts(b, ",\"refusal\":null,\"role\":\"assistant\"}}");
}

static void completion_json(struct sbuf *b, const struct answer *a, const struct ids *x)
{
	sb_puts(b, "{\"choices\":[");
	choice_json(b, a, 0, a->text, a->len);
	for (int i = 0; i < a->nextra; i++)
		choice_json(b, a, i + 1, a->extra[i], strlen(a->extra[i]));
	sb_printf(b, "],\"created\":%lld,\"id\":\"%s\",\"model\":", x->created, x->id);
	sb_json(b, a->model, strlen(a->model));
	sb_puts(b, ",\"object\":\"chat.completion\",");
	if (a->azure)
		sb_puts(b, "\"prompt_filter_results\":[{\"prompt_index\":0,\"content_filter_results\":" CFR_SAFE "}],");
	sb_printf(b, "\"system_fingerprint\":\"%s\",\"usage\":", x->fp);
	usage_json(b, a);
	sb_puts(b, "}");
}

int wire_json(struct conn *c, const struct request *rq, const struct answer *a, const struct fault_hit *hit)
{
	struct ids x;
	struct sbuf body = SBUF_INIT;
	int keep = 0;

	ids_make(c, &x);
	if (hit->kind == FAULT_MALFORMED_CHUNK) {
		sb_printf(&body, "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%lld,\"model\":", x.id, x.created);
		sb_json(&body, a->model, strlen(a->model));
		sb_puts(&body, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
		keep = http_reply(c, rq, 200, a->headers, body.p, body.len) == 0 && rq->keep_alive;
		goto done;
	}
	completion_json(&body, a, &x);
	if (hit->kind == FAULT_STREAM_CUT || hit->kind == FAULT_STREAM_STALL) {
		http_head(c, rq, 200, "application/json", (long long)body.len, a->headers);
		http_queue(c, body.p, body.len / 2);
		if (http_flush(c) == 0 && hit->kind == FAULT_STREAM_STALL)
			http_wait(c, -1);
		http_close(c);
		goto done;
	}
	keep = http_reply(c, rq, 200, a->headers, body.p, body.len) == 0 && rq->keep_alive;
done:
	sb_release(&body);
	return keep;
}

/* ---- the event stream ------------------------------------------------------ */

enum ev_stage { EV_FILTER, EV_ROLE, EV_CONTENT, EV_FINISH, EV_USAGE, EV_DONE, EV_END };

struct evgen {
	const struct answer *a;
	const struct ids *x;
	uint64_t *rng;
	enum ev_stage stage;
	size_t pos; /* next content byte */
};

static void chunk_open(struct sbuf *ev)
{
	sb_puts(ev, "data: {\"choices\":[");
}

static void chunk_close(struct sbuf *ev, const struct evgen *g, int with_usage)
{
	sb_printf(ev, "],\"created\":%lld,\"id\":\"%s\",\"model\":", g->x->created, g->x->id);
	sb_json(ev, g->a->model, strlen(g->a->model));
	sb_printf(ev, ",\"object\":\"chat.completion.chunk\",\"system_fingerprint\":\"%s\"", g->x->fp);
	if (with_usage) {
		sb_puts(ev, ",\"usage\":");
		usage_json(ev, g->a);
	} else if (g->a->include_usage) {
		sb_puts(ev, ",\"usage\":null");
	}
	sb_puts(ev, "}\n\n");
}

/* Writes the next event into ev; returns 0 when the stream is complete.
 * *is_done tells the caller this one is "data: [DONE]". */
static int ev_next(struct evgen *g, struct sbuf *ev, int *is_done)
{
	const struct answer *a = g->a;
	sb_reset(ev);
	*is_done = 0;
	for (;;) {
		switch (g->stage) {
		case EV_FILTER:
			g->stage = EV_ROLE;
			if (!a->azure)
				continue;
			sb_puts(ev,
			        "data: {\"choices\":[],\"created\":0,\"id\":\"\",\"model\":\"\",\"object\":\"\","
			        "\"prompt_filter_results\":[{\"prompt_index\":0,\"content_filter_results\":" CFR_SAFE "}]}\n\n");
			return 1;
		case EV_ROLE:
			g->stage = EV_CONTENT;
			chunk_open(ev);
			if (a->azure)
				sb_puts(ev, "{\"content_filter_results\":{},");
			else
				sb_puts(ev, "{");
			sb_puts(ev,
			        "\"delta\":{\"content\":\"\",\"refusal\":null,\"role\":\"assistant\"},"
			        "\"finish_reason\":null,\"index\":0,\"logprobs\":null}");
			chunk_close(ev, g, 0);
			return 1;
		case EV_CONTENT: {
			if (g->pos >= a->len) {
				g->stage = EV_FINISH;
				continue;
			}
			size_t n = 4 + (size_t)(rng_next(g->rng) % 13);
			if (n > a->len - g->pos)
				n = a->len - g->pos;
			while (g->pos + n < a->len && ((unsigned char)a->text[g->pos + n] & 0xC0) == 0x80)
				n++; /* never end a piece inside a UTF-8 sequence */
			chunk_open(ev);
			sb_puts(ev, a->azure ? "{\"content_filter_results\":" CFR_SAFE "," : "{");
			sb_puts(ev, "\"delta\":{\"content\":");
			sb_json(ev, a->text + g->pos, n);
			sb_puts(ev, "},\"finish_reason\":null,\"index\":0,\"logprobs\":null}");
			chunk_close(ev, g, 0);
			g->pos += n;
			return 1;
		}
		case EV_FINISH:
			g->stage = EV_USAGE;
			chunk_open(ev);
			sb_puts(ev, a->azure ? "{\"content_filter_results\":{}," : "{");
			sb_puts(ev, "\"delta\":{},\"finish_reason\":\"stop\",\"index\":0,\"logprobs\":null}");
			chunk_close(ev, g, 0);
			return 1;
		case EV_USAGE:
			g->stage = EV_DONE;
			if (!a->include_usage)
				continue;
			chunk_open(ev);
			chunk_close(ev, g, 1);
			return 1;
		case EV_DONE:
			g->stage = EV_END;
			sb_puts(ev, "data: [DONE]\n\n");
			*is_done = 1;
			return 1;
		case EV_END: return 0;
		}
	}
}

/* Acts out a cut or stall once `after_chunks` events are out.  Returns 1
 * when it ended the reply (the connection is then closed). */
static int break_stream(struct conn *c, enum fault_kind kind)
{
	if (kind != FAULT_STREAM_CUT && kind != FAULT_STREAM_STALL)
		return 0;
	if (http_flush(c) == 0 && kind == FAULT_STREAM_STALL)
		http_wait(c, -1);
	http_close(c);
	return 1;
}

int wire_stream(struct conn *c, const struct request *rq, const struct answer *a, const struct fault_hit *hit)
{
	struct ids x;
	struct sbuf ev = SBUF_INIT;
	int sent = 0, broken = 0, is_done = 0, keep = 0;

	ids_make(c, &x);
	struct evgen g = {a, &x, &c->rng, EV_FILTER, 0};
	http_head(c, rq, 200, "text/event-stream", -1, a->headers);
	while (ev_next(&g, &ev, &is_done)) {
		if (is_done && hit->kind == FAULT_NO_DONE)
			break;
		if (sent == hit->after_chunks) {
			if (break_stream(c, hit->kind))
				goto done;
			if (hit->kind == FAULT_MALFORMED_CHUNK && !broken) {
				http_chunk(c, BROKEN_EVENT, sizeof BROKEN_EVENT - 1);
				broken = 1;
			}
		}
		if (sent > 0 && a->chunk_ms > 0 && http_wait(c, a->chunk_ms) != 0)
			goto gone;
		http_chunk(c, ev.p, ev.len);
		sent++;
		if ((a->chunk_ms > 0 || c->out.len >= COALESCE_BYTES) && http_flush(c) != 0)
			goto gone;
	}
	/* a fault placed at or past the end still happens, before the end */
	if (sent <= hit->after_chunks && break_stream(c, hit->kind))
		goto done;
	if (hit->kind == FAULT_MALFORMED_CHUNK && !broken)
		http_chunk(c, BROKEN_EVENT, sizeof BROKEN_EVENT - 1);
	http_queue(c, "0\r\n\r\n", 5);
	keep = http_flush(c) == 0 && rq->keep_alive;
	goto done;
gone:
	http_close(c);
done:
	sb_release(&ev);
	return keep;
}
