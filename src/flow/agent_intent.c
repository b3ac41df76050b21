/* agent_intent.c -- the intent agent and the no-SQL reply stage.
 *
 * Asks the model to classify the message as data_question, follow_up,
 * chitchat or out_of_scope and, for follow-ups, to rewrite it as a
 * standalone question.  Expected output: one JSON object
 * {"intent", "standalone_question", "reply"}; tolerated: the JSON inside a
 * fence or prose, or a bare label word.  A reply that cannot be read at
 * all falls back to data_question (the SQL gate stays the safety net, and
 * a wrong guess costs one model call, not a refusal of a fair question).
 * A follow_up with no history is a data_question.
 */
#include <stdlib.h>
#include <string.h>

#include "flow/extract.h"
#include "flow/agent.h"
#include "prompt/tmpl.h"
#include "util/alloc.h"
#include "util/jsonx.h"
#include "util/limits.h"

static const char *const intent_labels[] = {"data_question", "follow_up", "chitchat", "out_of_scope"};
static const int intent_ids[] = {INTENT_DATA, INTENT_FOLLOW_UP, INTENT_CHITCHAT, INTENT_OUT_OF_SCOPE};

static int label_to_intent(const char *s)
{
	for (size_t i = 0; i < 4; i++)
		if (!strcmp(s, intent_labels[i]))
			return intent_ids[i];
	return INTENT_NONE;
}

/* Reads the model's reply into intent, standalone question and reply. */
static int parse_intent(struct flow_run *r, const char *text, size_t len)
{
	struct turn *t = r->turn;
	struct buf js;
	buf_init(&js, MODEL_REPLY_MAX_BYTES);
	int intent = INTENT_NONE;
	if (extract_json_object(&js, text, len) == CONVBI_OK) {
		cJSON *root = jsonx_parse(js.data, js.len);
		const char *label = jsonx_str(root, "intent");
		if (label)
			intent = label_to_intent(label);
		const char *sq = jsonx_str(root, "standalone_question");
		if (sq && *sq && !t->standalone)
			t->standalone = xstrdup(sq);
		const char *reply = jsonx_str(root, "reply");
		if (reply && *reply) {
			buf_reset(&r->reply);
			buf_puts(&r->reply, reply);
		}
		cJSON_Delete(root);
	}
	buf_release(&js);
	if (intent == INTENT_NONE) {
		int i = extract_label(text, len, intent_labels, 4);
		intent = i >= 0 ? intent_ids[i] : INTENT_DATA;
	}
	return intent;
}

int agent_intent(struct flow_run *r)
{
	struct turn *t = r->turn;
	struct buf hist, reply;
	buf_init(&hist, HISTORY_TEXT_MAX_BYTES);
	buf_init(&reply, MODEL_REPLY_MAX_BYTES);
	struct err err = ERR_INIT;
	int next = FLOW_FAIL;
	if (history_render(&hist, r->history)) {
		err_set(&err, CONVBI_ENOMEM, "out of memory rendering the history");
		next = flow_fail(r, &err);
		goto done;
	}
	struct tmpl_slot slots[] = {
	        {"tables", r->env->table_list, 4000},
	        {"history", buf_str(&hist), 0},
	        {"question", t->question, 8000},
	        {"today", r->env->today, 16},
	};
	if (agent_call(r, STAGE_INTENT, "intent", slots, 4, 0, 400, &reply))
		goto done; /* agent_call failed the turn */
	t->intent = parse_intent(r, reply.data, reply.len);
	if (t->intent == INTENT_FOLLOW_UP && r->history->n == 0)
		t->intent = INTENT_DATA;
	if (t->intent == INTENT_DATA && t->standalone && r->history->n == 0) {
		/* A fresh question needs no rewrite: keep the user's own words. */
		free(t->standalone);
		t->standalone = NULL;
	}
	if (!t->standalone && !(t->standalone = xstrdup(t->question))) {
		err_set(&err, CONVBI_ENOMEM, "out of memory");
		next = flow_fail(r, &err);
		goto done;
	}
	next = t->intent == INTENT_DATA || t->intent == INTENT_FOLLOW_UP ? STAGE_SQL : STAGE_REPLY;
done:
	buf_release(&hist);
	buf_release(&reply);
	return next;
}

int agent_reply(struct flow_run *r)
{
	struct turn *t = r->turn;
	const char *text = r->reply.len ? r->reply.data : NULL;
	struct err err = ERR_INIT;
	int rc = CONVBI_OK;
	buf_reset(&t->answer);
	if (text) {
		rc = buf_puts(&t->answer, text);
	} else {
		const char *name = t->intent == INTENT_CHITCHAT ? "help" : "refuse";
		struct tmpl_slot slot = {"question", t->question, 2000};
		rc = tmpl_render(&t->answer, tmpl_text(r->env->prompts, name), &slot, 1, &err);
		while (t->answer.len && t->answer.data[t->answer.len - 1] == '\n')
			t->answer.data[--t->answer.len] = '\0';
	}
	if (rc) {
		err_set(&err, rc, "cannot write the reply: %s", convbi_errstr(rc));
		return flow_fail(r, &err);
	}
	if (r->env->stream && flow_emit(r, CONVBI_EVENT_TOKEN, t->answer.data, t->answer.len, NULL)) {
		err_set(&err, CONVBI_ECANCELED, "the question was canceled");
		return flow_fail(r, &err);
	}
	return FLOW_DONE;
}
