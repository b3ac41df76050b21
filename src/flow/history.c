/* history.c -- conversation memory within a budget (see history.h). */
#include "flow/history.h"

#include <stdlib.h>
#include <string.h>

#include "convbi/convbi.h"
#include "util/alloc.h"

void history_init(struct history *h, size_t budget_tokens)
{
	memset(h, 0, sizeof *h);
	h->budget_tokens = budget_tokens;
}

static void entry_free(struct history_entry *e)
{
	free(e->question);
	free(e->sql);
	free(e->result);
	free(e->answer);
	memset(e, 0, sizeof *e);
}

void history_release(struct history *h)
{
	for (int i = 0; i < h->n; i++)
		entry_free(&h->e[i]);
	h->n = 0;
}

/* A copy cut to HISTORY_PART_MAX bytes on a UTF-8 boundary. */
static int copy_part(char **dst, const char *src)
{
	if (!src || !*src)
		return CONVBI_OK;
	size_t n = strlen(src);
	if (n > HISTORY_PART_MAX) {
		n = HISTORY_PART_MAX;
		while (n && ((unsigned char)src[n] & 0xC0) == 0x80)
			n--;
	}
	*dst = xstrndup(src, n);
	return *dst ? CONVBI_OK : CONVBI_ENOMEM;
}

static size_t entry_bytes(const struct history_entry *e)
{
	return 32 + (e->question ? strlen(e->question) : 0) + (e->sql ? strlen(e->sql) : 0) +
	       (e->result ? strlen(e->result) : 0) + (e->answer ? strlen(e->answer) : 0);
}

static void drop_oldest(struct history *h)
{
	entry_free(&h->e[0]);
	memmove(&h->e[0], &h->e[1], (size_t)(h->n - 1) * sizeof h->e[0]);
	h->n--;
	memset(&h->e[h->n], 0, sizeof h->e[0]);
}

int history_add(struct history *h, const char *question, const char *sql, const char *result, const char *answer)
{
	struct history_entry e;
	memset(&e, 0, sizeof e);
	if (copy_part(&e.question, question) || copy_part(&e.sql, sql) || copy_part(&e.result, result) ||
	    copy_part(&e.answer, answer)) {
		entry_free(&e);
		return CONVBI_ENOMEM;
	}
	if (h->n == HISTORY_MAX_ENTRIES)
		drop_oldest(h);
	h->e[h->n++] = e;
	size_t total = 0;
	for (int i = 0; i < h->n; i++)
		total += entry_bytes(&h->e[i]);
	while (h->n > 1 && total / 4 > h->budget_tokens) {
		total -= entry_bytes(&h->e[0]);
		drop_oldest(h);
	}
	return CONVBI_OK;
}

int history_render(struct buf *out, const struct history *h)
{
	int rc = CONVBI_OK;
	for (int i = 0; !rc && i < h->n; i++) {
		const struct history_entry *e = &h->e[i];
		rc = buf_printf(out, "Q%d: %s\n", i + 1, e->question ? e->question : "");
		if (!rc && e->sql)
			rc = buf_printf(out, "SQL%d: %s\n", i + 1, e->sql);
		if (!rc && e->result)
			rc = buf_printf(out, "Result%d: %s\n", i + 1, e->result);
		if (!rc && e->answer)
			rc = buf_printf(out, "A%d: %s\n", i + 1, e->answer);
	}
	return rc;
}

static int json_field(struct buf *out, const char *name, const char *v, int first)
{
	int rc = buf_printf(out, "%s\"%s\":", first ? "" : ",", name);
	if (!rc)
		rc = v ? buf_json_str(out, v, strlen(v)) : buf_puts(out, "null");
	return rc;
}

int history_json(struct buf *out, const struct history *h)
{
	int rc = buf_putc(out, '[');
	for (int i = 0; !rc && i < h->n; i++) {
		const struct history_entry *e = &h->e[i];
		rc = buf_puts(out, i ? ",{" : "{");
		if (!rc)
			rc = json_field(out, "question", e->question, 1);
		if (!rc)
			rc = json_field(out, "sql", e->sql, 0);
		if (!rc)
			rc = json_field(out, "result", e->result, 0);
		if (!rc)
			rc = json_field(out, "answer", e->answer, 0);
		if (!rc)
			rc = buf_putc(out, '}');
	}
	if (!rc)
		rc = buf_putc(out, ']');
	return rc;
}
