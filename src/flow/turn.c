/* turn.c -- the per-question state: lifecycle and JSON view (see turn.h). */
#include "flow/turn.h"

#include <stdlib.h>
#include <string.h>

#include "convbi/convbi.h"
#include "db/table.h"
#include "flow/flow.h"
#include "util/limits.h"

static const char *const intent_names[] = {"", "data_question", "follow_up", "chitchat", "out_of_scope"};

void turn_init(struct turn *t)
{
	memset(t, 0, sizeof *t);
	buf_init(&t->answer, ANSWER_TEXT_MAX_BYTES);
	t->chosen = -1;
	t->vote_first = -1;
	for (int i = 0; i < TURN_MAX_CANDIDATES; i++)
		t->cand[i].group = -1;
}

void turn_release(struct turn *t)
{
	if (!t)
		return;
	free(t->question);
	free(t->hint);
	free(t->standalone);
	for (int i = 0; i < t->ncand; i++) {
		free(t->cand[i].sql);
		free(t->cand[i].error);
		table_free(t->cand[i].result);
	}
	table_free(t->result);
	buf_release(&t->answer);
	memset(t, 0, sizeof *t);
}

const char *turn_intent_name(int intent)
{
	return intent >= 0 && intent <= INTENT_OUT_OF_SCOPE ? intent_names[intent] : "";
}

const char *turn_sql(const struct turn *t)
{
	if (t->chosen >= 0 && t->chosen < t->ncand)
		return t->result ? t->cand[t->chosen].sql : NULL;
	for (int i = t->ncand - 1; i >= 0; i--)
		if (!t->cand[i].error && t->cand[i].status == CONVBI_OK && t->result)
			return t->cand[i].sql;
	return NULL;
}

int64_t turn_tokens(const struct turn *t)
{
	int64_t n = 0;
	for (int s = 0; s < STAGE_COUNT; s++)
		n += t->stage[s].prompt_tokens + t->stage[s].completion_tokens;
	return n;
}

double turn_cost_usd(const struct turn *t)
{
	double c = 0;
	for (int s = 0; s < STAGE_COUNT; s++)
		c += t->stage[s].cost_usd;
	return c;
}

static int str_or_null(struct buf *out, const char *s)
{
	return s ? buf_json_str(out, s, strlen(s)) : buf_puts(out, "null");
}

/* A name of ours (no character JSON escapes) in quotes. */
static int quoted(struct buf *out, const char *s)
{
	int rc = buf_putc(out, '"');
	if (!rc)
		rc = buf_puts(out, s);
	return rc ? rc : buf_putc(out, '"');
}

/* key (its punctuation included) then v: the answer JSON is written once
 * per question, and printf cost more than the rest of it together. */
static int int_member(struct buf *out, const char *key, long long v)
{
	int rc = buf_puts(out, key);
	return rc ? rc : buf_put_int(out, v);
}

/* One note per column whose first nr rows hold an infinite or NaN value,
 * which JSON cannot write: those cells are null in "rows", and the note
 * says what they were ("column `big`: inf, -inf written as null"). */
static int nonfinite_notes(struct buf *out, const struct table *res, int64_t nr, int first)
{
	int rc = CONVBI_OK;
	static const char *const kinds[] = {"inf", "-inf", "nan"};
	for (int c = 0; !rc && res && c < res->ncols; c++) {
		int seen[3] = {0, 0, 0}, any = 0;
		for (int64_t r = 0; r < nr; r++) {
			const char *v = table_cell(res, r, c);
			if (table_cell_type(res, r, c) == TABLE_REAL && table_nonfinite(v))
				for (int k = 0; k < 3; k++)
					any |= seen[k] |= !strcmp(v, kinds[k]);
		}
		if (!any)
			continue;
		struct buf note = BUF_INIT;
		rc = buf_printf(&note, "column `%s`:", res->cols[c].name);
		for (int k = 0, n = 0; !rc && k < 3; k++)
			if (seen[k])
				rc = buf_printf(&note, "%s %s", n++ ? "," : "", kinds[k]);
		if (!rc)
			rc = buf_puts(&note, " written as null (JSON has no infinity or NaN)");
		if (!rc && !first)
			rc = buf_putc(out, ',');
		if (!rc)
			rc = buf_json_str(out, note.data, note.len);
		buf_release(&note);
		first = 0;
	}
	return rc;
}

/* The note of a cut result: table_cut_sentence as a JSON string. */
static int cut_note(struct buf *out, const struct table *res)
{
	if (!res || !res->truncated)
		return CONVBI_OK;
	struct buf note = BUF_INIT;
	int rc = table_cut_sentence(&note, res);
	if (!rc)
		rc = buf_json_str(out, note.data, note.len);
	buf_release(&note);
	return rc;
}

/* `],"total_rows":N,"total_rows_exact":B,"truncated_by":W` closing the
 * notes: how many rows the query returned in all (a lower bound when the
 * count stopped) and which cap cut them; null, false, null without a
 * result. */
static int total_members(struct buf *out, const struct table *res)
{
	int exact = 0;
	int64_t total = table_total(res, &exact);
	int rc = buf_puts(out, "],\"total_rows\":");
	if (!rc)
		rc = res ? buf_put_int(out, (long long)total) : buf_puts(out, "null");
	if (!rc)
		rc = buf_puts(out, res && exact ? ",\"total_rows_exact\":true" : ",\"total_rows_exact\":false");
	if (!rc)
		rc = buf_puts(out, ",\"truncated_by\":");
	if (!rc)
		rc = buf_puts(out, !res || !res->truncated       ? "null"
		                   : res->cut == TABLE_CUT_BYTES ? "\"result_size_cap\""
		                                                 : "\"row_cap\"");
	return rc;
}

int turn_json(struct buf *out, const struct turn *t, int64_t max_rows)
{
	int rc = buf_puts(out, "{\"question\":");
	if (!rc)
		rc = str_or_null(out, t->question);
	if (!rc)
		rc = buf_puts(out, ",\"standalone_question\":");
	if (!rc)
		rc = str_or_null(out, t->standalone);
	if (!rc)
		rc = buf_puts(out, ",\"intent\":");
	if (!rc)
		rc = t->intent ? quoted(out, turn_intent_name(t->intent)) : buf_puts(out, "null");
	if (!rc)
		rc = buf_puts(out, ",\"sql\":");
	if (!rc)
		rc = str_or_null(out, turn_sql(t));
	if (!rc)
		rc = buf_puts(out, ",\"columns\":[");
	const struct table *res = t->result;
	for (int c = 0; !rc && res && c < res->ncols; c++) {
		if (c)
			rc = buf_putc(out, ',');
		if (!rc)
			rc = str_or_null(out, res->cols[c].name);
	}
	if (!rc)
		rc = buf_puts(out, "],\"rows\":[");
	int64_t nr = res ? res->nrows : 0;
	if (max_rows >= 0 && nr > max_rows)
		nr = max_rows;
	for (int64_t r = 0; !rc && r < nr; r++) {
		rc = buf_puts(out, r ? ",[" : "[");
		for (int c = 0; !rc && c < res->ncols; c++) {
			if (c)
				rc = buf_putc(out, ',');
			const char *v = table_cell(res, r, c);
			int ty = table_cell_type(res, r, c);
			if (!rc)
				rc = !v || (ty == TABLE_REAL && table_nonfinite(v)) ? buf_puts(out, "null")
				     : ty == TABLE_INT || ty == TABLE_REAL          ? buf_puts(out, v)
				                                                    : buf_json_str(out, v, strlen(v));
		}
		if (!rc)
			rc = buf_putc(out, ']');
	}
	if (!rc)
		rc = buf_puts(out, "],\"row_count\":");
	if (!rc)
		rc = buf_put_int(out, (long long)(res ? res->nrows : 0));
	if (!rc)
		rc = buf_puts(out, (res && (res->truncated || nr < res->nrows)) ? ",\"truncated\":true,\"notes\":["
		                                                                : ",\"truncated\":false,\"notes\":[");
	if (!rc)
		rc = cut_note(out, res);
	if (!rc)
		rc = nonfinite_notes(out, res, nr, !(res && res->truncated));
	if (!rc)
		rc = total_members(out, res);
	if (!rc)
		rc = buf_puts(out, ",\"answer\":");
	if (!rc)
		rc = t->status && !t->answer.len ? buf_puts(out, "null") : buf_json_str(out, buf_str(&t->answer), t->answer.len);
	if (!rc)
		rc = buf_puts(out, ",\"error\":");
	const char *emsg = t->err.msg[0] ? t->err.msg : convbi_errstr(t->status); /* never "" */
	if (!rc)
		rc = t->status ? buf_json_str(out, emsg, strlen(emsg)) : buf_puts(out, "null");
	if (!rc)
		rc = buf_puts(out, ",\"error_class\":");
	if (!rc)
		rc = t->status ? quoted(out, convbi_errname(t->status)) : buf_puts(out, "null");
	if (!rc)
		rc = buf_puts(out, ",\"failed_stage\":");
	if (!rc)
		rc = str_or_null(out, t->fail_stage[0] ? t->fail_stage : NULL);
	if (!rc)
		rc = buf_puts(out, ",\"repairs\":");
	if (!rc)
		rc = buf_put_int(out, t->repairs);
	if (!rc)
		rc = buf_puts(out, ",\"candidates\":[");
	for (int i = 0; !rc && i < t->ncand; i++) {
		rc = buf_puts(out, i ? ",{\"sql\":" : "{\"sql\":");
		if (!rc)
			rc = str_or_null(out, t->cand[i].sql);
		if (!rc)
			rc = buf_puts(out, ",\"error\":");
		if (!rc)
			rc = str_or_null(out, t->cand[i].error);
		if (!rc && t->vote_first >= 0 && i >= t->vote_first)
			rc = t->cand[i].group >= 0 ? buf_printf(out, ",\"group\":%d", t->cand[i].group)
			                           : buf_puts(out, ",\"group\":null");
		if (!rc)
			rc = buf_putc(out, '}');
	}
	if (!rc)
		rc = buf_putc(out, ']');
	if (!rc && t->vote_first >= 0) { /* which group won, and by how many */
		int won = t->chosen >= 0 ? t->cand[t->chosen].group : -1, votes = 0;
		for (int i = t->vote_first; i < t->ncand; i++)
			votes += won >= 0 && t->cand[i].group == won;
		rc = buf_printf(out, ",\"vote\":{\"first\":%d,\"candidates\":%d,\"groups\":%d,\"winner\":", t->vote_first,
		                t->ncand - t->vote_first, t->vote_groups);
		if (!rc)
			rc = won >= 0 ? buf_printf(out, "%d,\"votes\":%d}", t->chosen, votes)
			              : buf_puts(out, "null,\"votes\":0}");
	}
	int64_t pt = 0, ct = 0, cached = 0, resv = 0;
	for (int s = 0; s < STAGE_COUNT; s++) {
		pt += t->stage[s].prompt_tokens;
		ct += t->stage[s].completion_tokens;
		cached += t->stage[s].cached_tokens;
		resv += t->stage[s].reserved_tokens;
	}
	if (!rc)
		rc = int_member(out, ",\"usage\":{\"prompt_tokens\":", pt);
	if (!rc)
		rc = int_member(out, ",\"completion_tokens\":", ct);
	if (!rc)
		rc = int_member(out, ",\"total_tokens\":", pt + ct);
	if (!rc)
		rc = int_member(out, ",\"cached_tokens\":", cached);
	if (!rc)
		rc = int_member(out, ",\"reserved_tokens\":", resv);
	if (!rc)
		rc = buf_puts(out, "},\"cost_usd\":");
	if (!rc)
		rc = buf_put_fixed(out, turn_cost_usd(t), 6);
	if (!rc)
		rc = buf_puts(out, ",\"stages\":{");
	int first = 1;
	for (int s = 0; !rc && s < STAGE_COUNT; s++) {
		const struct stage_stats *st = &t->stage[s];
		if (!st->ms && !st->calls)
			continue;
		rc = buf_puts(out, first ? "\"" : ",\"");
		if (!rc)
			rc = buf_puts(out, flow_stage_name(s));
		if (!rc)
			rc = int_member(out, "\":{\"ms\":", st->ms);
		if (!rc)
			rc = int_member(out, ",\"calls\":", st->calls);
		if (!rc)
			rc = int_member(out, ",\"prompt_tokens\":", st->prompt_tokens);
		if (!rc)
			rc = int_member(out, ",\"completion_tokens\":", st->completion_tokens);
		if (!rc)
			rc = buf_puts(out, ",\"cost_usd\":");
		if (!rc)
			rc = buf_put_fixed(out, st->cost_usd, 6);
		if (!rc)
			rc = buf_puts(out, ",\"endpoint\":");
		if (!rc)
			rc = str_or_null(out, st->endpoint[0] ? st->endpoint : NULL);
		if (!rc)
			rc = buf_putc(out, '}');
		first = 0;
	}
	if (!rc)
		rc = buf_puts(out, "},\"attempts\":[");
	for (int i = 0; !rc && i < t->nattempts; i++) {
		const struct llm_attempt *a = &t->attempts[i].a;
		rc = buf_puts(out, i ? ",{\"stage\":\"" : "{\"stage\":\"");
		if (!rc)
			rc = buf_puts(out, flow_stage_name(t->attempts[i].stage));
		if (!rc)
			rc = buf_puts(out, "\",\"endpoint\":");
		if (!rc)
			rc = buf_json_str(out, a->endpoint, strlen(a->endpoint));
		if (!rc)
			rc = int_member(out, ",\"status\":", a->status);
		if (!rc)
			rc = buf_puts(out, ",\"class\":");
		if (!rc)
			rc = quoted(out, llm_class_name(a->cls));
		if (!rc)
			rc = buf_puts(out, ",\"error\":");
		if (!rc)
			rc = buf_json_str(out, a->error, strlen(a->error));
		if (!rc)
			rc = int_member(out, ",\"wait_ms\":", a->wait_ms);
		if (!rc)
			rc = buf_puts(out, ",\"retry_after_source\":");
		if (!rc)
			rc = str_or_null(out, a->retry_from);
		if (!rc)
			rc = llm_attempt_provenance_json(out, a);
		if (!rc)
			rc = int_member(out, ",\"elapsed_ms\":", a->elapsed_ms);
		if (!rc)
			rc = buf_puts(out, ",\"cost_usd\":");
		if (!rc)
			rc = buf_put_fixed(out, a->cost_usd, 6);
		if (!rc)
			rc = buf_putc(out, '}');
	}
	if (!rc)
		rc = int_member(out, "],\"elapsed_ms\":", t->elapsed_ms);
	if (!rc)
		rc = int_member(out, ",\"cpu_us\":", t->cpu_ns / 1000);
	if (!rc)
		rc = buf_putc(out, '}');
	return rc;
}
