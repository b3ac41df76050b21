/* history.h -- a conversation's memory, kept within a token budget.
 *
 * Each finished turn adds an entry (question, standalone question, SQL,
 * a short result summary, the answer).  When the rendered history would
 * exceed the budget (tokens estimated as bytes/4), the oldest entries are
 * dropped first; a single entry's parts are capped so one huge answer
 * cannot crowd out the rest.  Rendered as text for the intent and SQL
 * prompts, oldest first.
 */
#ifndef CONVBI_FLOW_HISTORY_H
#define CONVBI_FLOW_HISTORY_H

#include <stddef.h>

#include "util/buf.h"

#define HISTORY_MAX_ENTRIES 64
#define HISTORY_PART_MAX 600 /* bytes kept of each part of an entry */

struct history_entry {
	char *question; /* owned */
	char *sql;      /* owned, may be NULL */
	char *result;   /* owned, may be NULL */
	char *answer;   /* owned, may be NULL */
};

struct history {
	struct history_entry e[HISTORY_MAX_ENTRIES];
	int n;
	size_t budget_tokens;
};

void history_init(struct history *h, size_t budget_tokens);
void history_release(struct history *h);
/* Adds an entry (copies the strings; NULLs allowed) and trims to budget. */
int history_add(struct history *h, const char *question, const char *sql, const char *result, const char *answer);
int history_render(struct buf *out, const struct history *h);
int history_json(struct buf *out, const struct history *h);

#endif
