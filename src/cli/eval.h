/* eval.h -- `convbi eval`: the dataset (eval_data.c), the comparison of
 * results (eval_compare.c) and the run (eval.c).
 *
 * One struct eq per question, read from Spider's or BIRD's own files; the
 * run fills its outcome.  Everything a question owns is freed with the
 * dataset.
 */
#ifndef CONVBI_CLI_EVAL_H
#define CONVBI_CLI_EVAL_H

#include <stddef.h>

#include "cli/cli.h"

enum verdict {
	V_PENDING,      /* not run (interrupted) */
	V_CORRECT,      /* the predicted result equals the gold result */
	V_WRONG,        /* it ran and differs */
	V_SQL_ERROR,    /* the predicted SQL failed to run */
	V_REJECTED,     /* the read-only gate refused the predicted SQL */
	V_MODEL,        /* no SQL: a model call failed or the intent was not a data question */
	V_GOLD,         /* the gold SQL does not run: excluded from EX */
	V_COUNT
};

extern const char *const verdict_names[V_COUNT];

struct eq {
	int index;             /* 0-based position in the question file */
	char *id;              /* owned or NULL: the dataset's own id (BIRD question_id) */
	int id_num;            /* the id is a number */
	char *db_id;           /* owned */
	char *question;        /* owned */
	char *evidence;        /* owned or NULL: BIRD's evidence, passed as the hint */
	char *gold;            /* owned: the gold SQL */
	char *difficulty;      /* owned: easy|medium|hard|extra, BIRD's own, or "unknown" */
	char *db_path;         /* owned: <databases>/<db_id>/<db_id>.sqlite */
	convbi_engine *engine; /* borrowed from the engine cache; NULL if it cannot open */
	/* the outcome */
	int verdict;           /* enum verdict */
	char *pred;            /* owned or NULL: the predicted SQL */
	char *error;           /* owned or NULL: why it is not correct */
	int truncated;         /* a result hit the row cap: compared as cut */
	long long elapsed_ms;  /* the whole question */
};

struct dataset {
	char kind[8];          /* "spider" or "bird" */
	char *file;            /* owned: the question file */
	char *dbdir;           /* owned: the databases directory */
	struct eq *q;          /* owned array */
	int n;
	int total;             /* questions in the file, before --only-db and --limit */
};

/* Loads the questions from DIR or FILE (kind "spider", "bird" or NULL to
 * detect), keeping those of only_db (when set) and at most limit (when
 * >= 0).  dbdir overrides where the databases are.  Returns EXIT_OK, or
 * EXIT_USAGE after printing one line naming the file and the fix. */
int dataset_load(struct dataset *d, const char *path, const char *kind, const char *only_db, long limit,
                 const char *dbdir);
void dataset_release(struct dataset *d);

/* 1 when sql has an ORDER BY outside any parentheses (after a compound
 * SELECT it orders the whole result), skipping strings, quoted names and
 * comments. */
int sql_orders_result(const char *sql);

/* Compares two results as multisets of rows (as sequences when ordered):
 * same column count, and cells equal when both are NULL, or both read as
 * decimal numbers within EVAL_REL_TOL relative (EVAL_ABS_TOL absolute near
 * zero) -- so "1" equals "1.0" -- or the texts are identical.  Returns 1
 * when they match; else 0 with the first difference in why.  Returns -1
 * without memory. */
#define EVAL_REL_TOL 1e-6
#define EVAL_ABS_TOL 1e-9
int results_match(const convbi_answer *gold, const convbi_answer *pred, int ordered, char *why, size_t whylen);

#endif
