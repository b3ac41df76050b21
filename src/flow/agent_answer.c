/* agent_answer.c -- the answer agent: words grounded on the result rows.
 *
 * The model sees the question, the SQL and the rows (Markdown, at most
 * ANSWER_ROWS rows and ANSWER_ROWS_MAX_BYTES bytes), with the row count and
 * notes it must state: rows cut by the cap, NULLs present.  The answer is
 * streamed as TOKEN events when the engine streams.
 */
#include <stdio.h>
#include <string.h>

#include "db/table.h"
#include "flow/agent.h"
#include "prompt/tmpl.h"
#include "util/limits.h"

#define ANSWER_ROWS 50

static int has_nulls(const struct table *t)
{
	for (int64_t r = 0; r < t->nrows; r++)
		for (int c = 0; c < t->ncols; c++)
			if (!table_cell(t, r, c))
				return 1;
	return 0;
}

int agent_answer(struct flow_run *r)
{
	struct turn *t = r->turn;
	const struct table *res = t->result;
	struct buf rows;
	buf_init(&rows, ANSWER_ROWS_MAX_BYTES);
	char count[32], truncated[200] = "", notes[300] = "";
	snprintf(count, sizeof count, "%lld", (long long)res->nrows);
	if (table_render(&rows, res, TABLE_MARKDOWN, ANSWER_ROWS) == CONVBI_ETOOBIG) {
		buf_reset(&rows);
		table_render(&rows, res, TABLE_MARKDOWN, 5);
	}
	if (res->truncated) { /* the same sentence as the answer JSON's note */
		struct buf cut = BUF_INIT;
		if (!table_cut_sentence(&cut, res))
			snprintf(truncated, sizeof truncated, "%s", buf_str(&cut));
		buf_release(&cut);
	} else if (res->nrows > ANSWER_ROWS)
		snprintf(truncated, sizeof truncated, "only the first %d shown", ANSWER_ROWS);
	size_t nl = 0;
	if (res->truncated)
		nl += (size_t)snprintf(notes + nl, sizeof notes - nl,
		                       "Say that the result was cut by the %s and give the total. ",
		                       res->cut == TABLE_CUT_BYTES ? "result size cap" : "row cap");
	if (has_nulls(res) && nl < sizeof notes)
		nl += (size_t)snprintf(notes + nl, sizeof notes - nl, "Some values are NULL (unknown); say so where it matters.");
	struct tmpl_slot slots[] = {
	        {"question", t->standalone, 8000}, {"sql", turn_sql(t), 8000},  {"rows", buf_str(&rows), 0},
	        {"row_count", count, 0},           {"truncated", truncated, 0}, {"notes", notes, 0},
	};
	struct buf reply;
	buf_init(&reply, MODEL_REPLY_MAX_BYTES);
	int next = FLOW_DONE;
	if (agent_call(r, STAGE_ANSWER, "answer", slots, 6, r->env->stream, 500, &reply))
		next = FLOW_FAIL;
	else {
		buf_reset(&t->answer);
		buf_add(&t->answer, reply.data, reply.len);
	}
	buf_release(&reply);
	buf_release(&rows);
	return next;
}
