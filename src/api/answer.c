/* answer.c -- convbi_answer accessors: a read-only view of one turn. */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/chart.h"
#include "db/table.h"

#define OK_ANSWER(a) ((a) && (a)->magic == ANSWER_MAGIC)

CONVBI_API void convbi_answer_free(convbi_answer *a)
{
	if (!OK_ANSWER(a))
		return;
	a->magic = DEAD_MAGIC;
	turn_release(&a->turn);
	free(a);
}

CONVBI_API int convbi_answer_status(const convbi_answer *a)
{
	return OK_ANSWER(a) ? a->turn.status : CONVBI_EMISUSE;
}

CONVBI_API const char *convbi_answer_errmsg(const convbi_answer *a)
{
	if (!OK_ANSWER(a))
		return convbi_errstr(CONVBI_EMISUSE);
	if (!a->turn.status)
		return "";
	return a->turn.err.msg[0] ? a->turn.err.msg : convbi_errstr(a->turn.status); /* never empty */
}

CONVBI_API const char *convbi_answer_intent(const convbi_answer *a)
{
	return OK_ANSWER(a) ? turn_intent_name(a->turn.intent) : "";
}

CONVBI_API const char *convbi_answer_question(const convbi_answer *a)
{
	if (!OK_ANSWER(a))
		return "";
	return a->turn.standalone ? a->turn.standalone : a->turn.question ? a->turn.question : "";
}

CONVBI_API const char *convbi_answer_text(const convbi_answer *a)
{
	return OK_ANSWER(a) ? buf_str(&a->turn.answer) : "";
}

CONVBI_API const char *convbi_answer_sql(const convbi_answer *a)
{
	const char *s = OK_ANSWER(a) ? turn_sql(&a->turn) : NULL;
	return s ? s : "";
}

CONVBI_API int convbi_answer_column_count(const convbi_answer *a)
{
	return OK_ANSWER(a) && a->turn.result ? a->turn.result->ncols : 0;
}

CONVBI_API const char *convbi_answer_column_name(const convbi_answer *a, int col)
{
	if (!OK_ANSWER(a) || !a->turn.result || col < 0 || col >= a->turn.result->ncols)
		return NULL;
	return a->turn.result->cols[col].name;
}

CONVBI_API int64_t convbi_answer_row_count(const convbi_answer *a)
{
	return OK_ANSWER(a) && a->turn.result ? a->turn.result->nrows : 0;
}

CONVBI_API const char *convbi_answer_cell(const convbi_answer *a, int64_t row, int col)
{
	return OK_ANSWER(a) && a->turn.result ? table_cell(a->turn.result, row, col) : NULL;
}

CONVBI_API int convbi_answer_truncated(const convbi_answer *a)
{
	return OK_ANSWER(a) && a->turn.result ? a->turn.result->truncated : 0;
}

CONVBI_API int64_t convbi_answer_total_rows(const convbi_answer *a, int *exact)
{
	const struct table *t = OK_ANSWER(a) ? a->turn.result : NULL;
	return table_total(t, exact);
}

CONVBI_API int64_t convbi_answer_tokens(const convbi_answer *a)
{
	return OK_ANSWER(a) ? turn_tokens(&a->turn) : 0;
}

CONVBI_API double convbi_answer_cost_usd(const convbi_answer *a)
{
	return OK_ANSWER(a) ? turn_cost_usd(&a->turn) : 0;
}

CONVBI_API int64_t convbi_answer_elapsed_ms(const convbi_answer *a)
{
	return OK_ANSWER(a) ? a->turn.elapsed_ms : 0;
}

CONVBI_API int convbi_answer_json(const convbi_answer *a, char **json_out)
{
	if (!OK_ANSWER(a) || !json_out)
		return CONVBI_EMISUSE;
	struct buf b;
	buf_init(&b, BUF_UNBOUNDED);
	int rc = buf_reserve(&b, 4096); /* one allocation for a typical answer, not seven growing ones */
	if (!rc)
		rc = turn_json(&b, &a->turn, -1);
	if (!rc && b.len && b.data[b.len - 1] == '}') {
		b.len--; /* the chart goes in as the object's last member */
		rc = buf_puts(&b, ",\"chart\":");
		if (!rc)
			rc = chart_put(&b, a->turn.result);
		if (!rc)
			rc = buf_putc(&b, '}');
	}
	if (rc) {
		buf_release(&b);
		*json_out = NULL;
		return CONVBI_ENOMEM;
	}
	*json_out = buf_take(&b);
	return *json_out ? CONVBI_OK : CONVBI_ENOMEM;
}

CONVBI_API int convbi_answer_stage(const convbi_answer *a, int i, const char **name, int64_t *ms)
{
	if (!OK_ANSWER(a))
		return CONVBI_EMISUSE;
	for (int s = 0, k = 0; s < STAGE_COUNT; s++) {
		const struct stage_stats *st = &a->turn.stage[s];
		if (!st->ms && !st->calls)
			continue; /* did not run: left out, as in the answer JSON */
		if (k++ < i)
			continue;
		if (name)
			*name = flow_stage_name(s);
		if (ms)
			*ms = st->ms;
		return CONVBI_OK;
	}
	return CONVBI_EINVAL;
}

CONVBI_API int convbi_answer_attempt(const convbi_answer *a, int i, const char **endpoint, const char **outcome, int64_t *ms)
{
	if (!OK_ANSWER(a))
		return CONVBI_EMISUSE;
	if (i < 0 || i >= a->turn.nattempts)
		return CONVBI_EINVAL;
	const struct llm_attempt *at = &a->turn.attempts[i].a;
	if (endpoint)
		*endpoint = at->endpoint;
	if (outcome)
		*outcome = llm_class_name(at->cls);
	if (ms)
		*ms = at->elapsed_ms;
	return CONVBI_OK;
}

static const struct {
	const char *name;
	enum table_mode mode;
} modes[] = {
        {"table", TABLE_ALIGNED}, {"csv", TABLE_CSV}, {"json", TABLE_JSON}, {"markdown", TABLE_MARKDOWN}, {"line", TABLE_LINE}};

/* The rows of a as v says into *text_out; shared by both formatters. */
static int format_rows(const convbi_answer *a, const char *mode, const struct table_view *v, char **text_out)
{
	struct table_view view = *v;
	int m = -1;
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
		if (!strcmp(mode, modes[i].name))
			m = (int)modes[i].mode;
	if (m < 0)
		return CONVBI_EINVAL;
	view.mode = (enum table_mode)m;
	struct buf b;
	buf_init(&b, BUF_UNBOUNDED);
	if (a->turn.result) {
		int rc = table_render_view(&b, a->turn.result, &view);
		if (rc) {
			buf_release(&b);
			return rc;
		}
	}
	*text_out = buf_take(&b);
	return *text_out ? CONVBI_OK : CONVBI_ENOMEM;
}

CONVBI_API int convbi_answer_chart_json(const convbi_answer *a, char **json_out)
{
	if (json_out)
		*json_out = NULL;
	if (!OK_ANSWER(a) || !json_out)
		return CONVBI_EMISUSE;
	return chart_build(json_out, a->turn.result);
}

CONVBI_API int convbi_answer_format(const convbi_answer *a, const char *mode, int64_t max_rows, char **text_out)
{
	if (!OK_ANSWER(a) || !text_out || !mode)
		return CONVBI_EMISUSE;
	*text_out = NULL;
	if (!strcmp(mode, "line"))
		return CONVBI_EINVAL; /* the published modes stay as they were */
	struct table_view v = {TABLE_ALIGNED, max_rows, 0, TABLE_FIT_NONE, 0, 0, 1};
	return format_rows(a, mode, &v, text_out);
}

CONVBI_API int convbi_answer_format_view(const convbi_answer *a, const convbi_view *view, char **text_out)
{
	if (!OK_ANSWER(a) || !text_out || !view || !view->mode)
		return CONVBI_EMISUSE;
	*text_out = NULL;
	if (view->version != CONVBI_VIEW_VERSION || view->width < 0)
		return CONVBI_EINVAL;
	struct table_view v = {TABLE_ALIGNED,
	                       view->max_rows,
	                       (size_t)view->width,
	                       view->fit == CONVBI_FIT_CUT        ? TABLE_FIT_CUT
	                       : view->fit == CONVBI_FIT_VERTICAL ? TABLE_FIT_VERTICAL
	                                                          : TABLE_FIT_NONE,
	                       view->color,
	                       view->align_decimals,
	                       view->footer};
	return format_rows(a, view->mode, &v, text_out);
}
