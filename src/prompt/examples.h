/* examples.h -- verified question->SQL examples: loading, choosing, rendering.
 *
 * An examples file (`--examples FILE`, convbi_options.examples_path) holds
 * one JSON object per line, {"question", "sql", "db"}: questions whose SQL
 * a person verified (`convbi examples add`, the REPL's `.save`, `convbi
 * examples import` of an eval run's correct answers) -- never added
 * automatically.  For each question the SQL writer is shown the k most
 * similar ones in {{examples}}, chosen as DAIL-SQL does but lexically (no
 * embedding model):
 *   masked question  the question's words with the domain words masked
 *                    (table and column names and values: for the asked
 *                    question, the database's names and the values it
 *                    names; for an example, the names and literals of its
 *                    own SQL), so that "How many singers are older than
 *                    30?" and "How many ships are longer than 200?" read
 *                    alike: Jaccard similarity of their word 1-, 2- and
 *                    3-grams (a run of masked words is one "#" token);
 *   SQL skeleton     the SQL with names, aliases and literals replaced by
 *                    "_" ("SELECT count(*) FROM _ WHERE _ > _"), compared
 *                    with a first draft's skeleton (Jaccard of token
 *                    1-, 2- and 3-grams) when there is a draft.
 * An example scores the sum of the two similarities (the question's alone
 * without a draft); ties go to the earlier line.  "db" records which
 * database an example is about; any example may be chosen (a pattern
 * transfers across databases), except that a query may leave one
 * database's examples out.  Pure apart from examples_load.
 */
#ifndef CONVBI_PROMPT_EXAMPLES_H
#define CONVBI_PROMPT_EXAMPLES_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/limits.h" /* EXAMPLES_MAX_BYTES, EXAMPLES_TEXT_MAX_BYTES, EXAMPLES_BUDGET_BYTES */

#define EXAMPLES_MAX 100000 /* examples in one file */
#define EXAMPLES_K 3        /* examples shown per question */

struct example {
	char *question; /* owned */
	char *sql;      /* owned */
	char *db;       /* owned; "" when the line names none */
	uint64_t *qf;   /* owned: sorted features of the masked question */
	int nqf;
	uint64_t *sf; /* owned: sorted features of the SQL skeleton */
	int nsf;
	uint64_t skel; /* hash of the whole skeleton (equal skeletons, equal hashes) */
};

struct examples {
	struct example *v; /* owned array */
	size_t n, cap;
};

/* What to choose examples for. */
struct examples_query {
	const char *question;
	const char *const *domain; /* names and values to mask in the question:
	                               the database's tables and columns and the
	                               values the question names */
	size_t ndomain;
	const char *draft;      /* a first draft of the SQL, or NULL */
	const char *exclude_db; /* leave this database's examples out; NULL = none */
};

/* A new, empty set (caller frees with examples_free).  CONVBI_OK or ENOMEM. */
int examples_new(struct examples **out);
void examples_free(struct examples *ex);

/* Adds one example (copied; its features computed).  db may be NULL.
 * CONVBI_OK, ENOMEM, or ETOOBIG past EXAMPLES_MAX examples. */
int examples_add(struct examples *ex, const char *question, const char *sql, const char *db);

/* Reads an examples file (JSON lines; blank lines skipped).  *out is the
 * caller's (examples_free).  Errors, each one line "FILE:LINE: problem;
 * fix": CONVBI_EINVAL (unreadable, not UTF-8, a line that is not an object
 * with non-empty strings "question" and "sql", "db" not a string, a text
 * over EXAMPLES_TEXT_MAX_BYTES), ETOOBIG (over EXAMPLES_MAX_BYTES or
 * EXAMPLES_MAX examples), ENOMEM. */
int examples_load(struct examples **out, const char *path, struct err *err);

/* Chooses up to k examples for q, best first: picked[0..*npicked) are
 * indexes into ex->v.  An example whose question and SQL repeat a better
 * one's is skipped.  CONVBI_OK or ENOMEM. */
int examples_choose(const struct examples *ex, const struct examples_query *q, int k, size_t *picked, int *npicked);

/* Appends the picked examples as "Question: ...\nSQL: ...\n" blocks
 * separated by blank lines, in order, leaving out any that would take the
 * text past budget bytes (whole: half an example would mislead).
 * CONVBI_OK, ENOMEM, ETOOBIG. */
int examples_render(struct buf *out, const struct examples *ex, const size_t *picked, int n, size_t budget);

/* Appends the skeleton of sql: keywords and function names lower-case,
 * names and literals "_" (a qualified name, a run of names and an alias
 * are one "_"), operators and punctuation as written, one space between
 * tokens; comments and a final ';' dropped.  CONVBI_OK, ENOMEM, ETOOBIG. */
int examples_skeleton(struct buf *out, const char *sql);

#endif
