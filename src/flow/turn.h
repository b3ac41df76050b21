/* turn.h -- everything one question needs and produces, released as one.
 *
 * A struct turn is the per-question state the workflow stages read and
 * write: the question and its standalone rewrite, the intent, every SQL
 * candidate with the error that sent it back, the result table, the
 * answer, and per stage the tokens, time and endpoint of its model calls,
 * plus every model attempt.  The public convbi_answer wraps a finished
 * turn.  Stage ids index the per-stage arrays.
 */
#ifndef CONVBI_FLOW_TURN_H
#define CONVBI_FLOW_TURN_H

#include <stdint.h>

#include "llm/llm.h"
#include "util/buf.h"
#include "util/err.h"

struct table;

enum stage_id { STAGE_INTENT, STAGE_SQL, STAGE_VALIDATE, STAGE_EXECUTE, STAGE_VOTE, STAGE_ANSWER, STAGE_REPLY, STAGE_COUNT };

#define TURN_MAX_CANDIDATES 32 /* a vote of 16 plus every repair (at most 10) */
#define TURN_MAX_ATTEMPTS 64

enum intent_id { INTENT_NONE, INTENT_DATA, INTENT_FOLLOW_UP, INTENT_CHITCHAT, INTENT_OUT_OF_SCOPE };

struct candidate {
	char *sql;            /* owned */
	char *error;          /* owned; why it was sent back, NULL if it ran */
	int status;           /* CONVBI_EREJECTED, CONVBI_ESQL, ... or OK */
	int group;            /* a vote: its result's group (0 = the first result
	                  seen), -1 when it did not run or there was no vote */
	struct table *result; /* owned; only while a vote compares results */
};

struct stage_stats {
	int64_t prompt_tokens, completion_tokens;
	int64_t cached_tokens;   /* of prompt_tokens, from the prompt cache */
	int64_t reserved_tokens; /* tokens served by reserved (PTU) endpoints */
	double cost_usd;         /* by the answering endpoints' prices */
	int64_t ms;              /* wall time spent in the stage */
	int calls;               /* model calls */
	char endpoint[64];       /* endpoint of its last model call */
};

struct turn_attempt {
	int stage; /* enum stage_id */
	struct llm_attempt a;
};

struct turn {
	char *question;   /* owned; as asked */
	char *hint;       /* owned; evidence, may be NULL */
	char *standalone; /* owned; rewritten question */
	int intent;       /* enum intent_id */
	struct candidate cand[TURN_MAX_CANDIDATES];
	int ncand;
	int repairs;          /* times the flow went back to SQL */
	int chosen;           /* the candidate whose result is the answer, -1 = none yet */
	int vote_first;       /* a vote: its first candidate, -1 = no vote */
	int vote_groups;      /* a vote: distinct results among those that ran */
	struct table *result; /* owned */
	struct buf answer;    /* the answer text */
	struct stage_stats stage[STAGE_COUNT];
	struct turn_attempt attempts[TURN_MAX_ATTEMPTS];
	int nattempts;
	int64_t elapsed_ms;
	int64_t cpu_ns;      /* thread CPU time spent on the question */
	int status;          /* CONVBI_OK or the failure */
	struct err err;      /* message for status */
	char fail_stage[16]; /* stage that failed, "" if none */
};

void turn_init(struct turn *t);
void turn_release(struct turn *t);
const char *turn_intent_name(int intent);
/* The SQL whose result is the answer (the chosen candidate, else the
 * last candidate without error), or NULL. */
const char *turn_sql(const struct turn *t);
int64_t turn_tokens(const struct turn *t);
/* What the turn's model calls cost, USD, by the endpoints' prices. */
double turn_cost_usd(const struct turn *t);
/* Appends the turn as the answer JSON object (see convbi_answer_json). */
int turn_json(struct buf *out, const struct turn *t, int64_t max_rows);

#endif
