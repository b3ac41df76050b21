/* limits.h -- every byte limit of convbi's inputs and working buffers, in
 * one place.
 *
 * A buffer of one kind has one cap wherever it is made (buf_init takes one
 * of these names, or BUF_UNBOUNDED for output whose size its inputs
 * already bound); a file of one kind is read up to one limit.  Protocol
 * limits private to one parser (an SSE line, a Redis reply) stay beside
 * that parser.
 */
#ifndef CONVBI_UTIL_LIMITS_H
#define CONVBI_UTIL_LIMITS_H

#include <stddef.h>

/* ---- what a user hands in ------------------------------------------------ */
#define QUESTION_MAX_BYTES ((size_t)64 << 10)   /* one question */
#define HINT_MAX_BYTES ((size_t)16 << 10)       /* a caller's hint beside it */
#define CONFIG_MAX_FILE_BYTES ((size_t)1 << 20) /* the endpoints config file */
#define TMPL_MAX_BYTES ((size_t)64 << 10)       /* one prompt template file */
#define NOTES_MAX_BYTES ((size_t)256 << 10)     /* a business notes file */
#define EXAMPLES_MAX_BYTES ((size_t)16 << 20)   /* a verified examples file (JSON lines) */
#define EXAMPLES_TEXT_MAX_BYTES ((size_t)8192)  /* one example's question or SQL */
#define INPUT_FILE_MAX_BYTES ((size_t)1 << 30)  /* a batch/eval input or a result file read back */
#define INPUT_LINE_MAX_BYTES ((size_t)1 << 20)  /* one line of batch INPUT (a question and its JSON) */
#define TOKENS_FILE_MAX_BYTES ((size_t)1 << 20) /* serve's bearer tokens file */

/* ---- what the model sends back ------------------------------------------- */
#define AOAI_MAX_REPLY_BYTES ((size_t)8 << 20)  /* one HTTP reply body; larger fails */
#define MODEL_REPLY_MAX_BYTES ((size_t)1 << 20) /* one reply's text (and JSON in it) in a stage */

/* ---- what the Entra ID token service sends back (llm/token*.c) ----------- */
#define TOKEN_MAX_BYTES ((size_t)16 << 10)          /* one access token; larger is refused */
#define TOKEN_REPLY_MAX_BYTES ((size_t)64 << 10)    /* the token service's reply */
#define TOKEN_FED_FILE_MAX_BYTES ((size_t)64 << 10) /* the federated token file (workload identity) */

/* ---- what the workflow builds --------------------------------------------- */
#define PROMPT_MAX_BYTES ((size_t)1 << 20)       /* one rendered prompt */
#define SCHEMA_TEXT_MAX_BYTES ((size_t)4 << 20)  /* the schema text before its budget cut */
#define HISTORY_TEXT_MAX_BYTES ((size_t)1 << 20) /* the conversation as prompt text */
#define SQL_TEXT_MAX_BYTES ((size_t)1 << 20)     /* SQL taken from a reply (the gate's own cap is lower) */
#define ANSWER_TEXT_MAX_BYTES ((size_t)1 << 20)  /* the answer in words */
#define ANSWER_ROWS_MAX_BYTES ((size_t)16 << 10) /* rows shown to the answer writer */
#define EXPLAIN_SQL_MAX_BYTES ((size_t)8000)     /* SQL given to the explainer */
#define NOTES_BUDGET_BYTES ((size_t)3000)        /* business notes in one prompt */
#define EXAMPLES_BUDGET_BYTES ((size_t)4000)     /* verified examples in one prompt */
#define TABLE_LIST_MAX_BYTES ((size_t)64 << 10)  /* the intent prompt's table list */
#define REASON_MAX_BYTES ((size_t)4096)          /* a reviewer's one-line reason */
#define SUMMARY_MAX_BYTES ((size_t)400)          /* one turn's summary kept in the history */
#define DB_DESCRIBE_MAX_BYTES ((size_t)1024)     /* a database's name in messages */

#endif
