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
#include "cli/jsonl.h"

enum verdict {
	V_PENDING,   /* not run (interrupted) */
	V_CORRECT,   /* the predicted result equals the gold result */
	V_WRONG,     /* it ran and differs */
	V_SQL_ERROR, /* the predicted SQL failed to run */
	V_REJECTED,  /* the read-only gate refused the predicted SQL */
	V_MODEL,     /* no SQL: a model call failed or the intent was not a data question */
	V_GOLD,      /* the gold SQL does not run: excluded from EX */
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
	int verdict;          /* enum verdict */
	char *pred;           /* owned or NULL: the predicted SQL */
	char *error;          /* owned or NULL: why it is not correct */
	int truncated;        /* a result hit the row cap: compared as cut */
	long long elapsed_ms; /* the whole question */
	long long tokens;     /* prompt + completion tokens of every model call */
	int calls;            /* model calls */
	double cost_usd;      /* what its model calls cost */
};

struct dataset {
	char kind[8]; /* "spider" or "bird" */
	char *file;   /* owned: the question file */
	char *dbdir;  /* owned: the databases directory */
	struct eq *q; /* owned array */
	int n;
	int total; /* questions in the file, before --only-db and --limit */
};

/* Loads the questions from DIR or FILE (kind "spider", "bird" or NULL to
 * detect), keeping those of only_db (when set) and at most limit (when
 * >= 0).  dbdir overrides where the databases are.  Returns EXIT_OK, or
 * EXIT_USAGE after printing one line naming the file and the fix. */
int dataset_load(struct dataset *d, const char *path, const char *kind, const char *only_db, long limit, const char *dbdir);
void dataset_release(struct dataset *d);

/* What each database's engine gets beyond the command line (eval_context.c):
 * a copy of --examples without the examples of the questions the run asks
 * on that database, and --notes with {db_id} filled in. */
struct eval_context {
	char dir[4096];    /* the private temporary directory, "" if none */
	int nfiles;        /* copies written: dir/<k>.jsonl */
	struct strmap dbs; /* db_id -> k */
	long left_out;     /* example lines left out, all copies together */
};

/* 1 when sql has an ORDER BY outside any parentheses (after a compound
 * SELECT it orders the whole result), skipping strings, quoted names and
 * comments. */
int sql_orders_result(const char *sql);

/* Prepares the copies for the questions of d.  Returns EXIT_OK, or
 * EXIT_USAGE / EXIT_FAIL after printing why. */
int eval_context_open(struct eval_context *cx, const struct dataset *d, const struct cli_opts *o);
/* The command line for db_id's engine: o with its examples copy and its
 * notes; strings in buf.  0, or -1 when buf is too small. */
int eval_context_opts(const struct eval_context *cx, const struct cli_opts *o, const char *db_id, struct cli_opts *out, char *buf,
                      size_t buflen);
/* Removes the copies; safe to call twice. */
void eval_context_close(struct eval_context *cx);

/* --resume (eval_resume.c): takes the outcomes --out at path already holds
 * into d (kept[i] = 1 for each question it settles; model failures are
 * left to be asked again), cutting a torn last line.  *nkept counts them.
 * A missing file is an empty one.  Returns EXIT_OK, or EXIT_USAGE /
 * EXIT_FAIL after one line (a file not ours, a line not ours, I/O). */
int eval_resume_load(struct dataset *d, const char *path, unsigned char *kept, int *nkept);
/* Rewrites the --out file at path in dataset order, the last line of an
 * index winning.  Returns 0 or an errno value. */
int eval_resume_sort(const char *path);

/* Compares two answers' results with util's rescmp_match (see
 * util/rescmp.h: multisets of rows, or sequences when ordered; numbers
 * within a tolerance).  Returns 1 when they match; else 0 with the first
 * difference in why.  Returns -1 without memory. */
int results_match(const convbi_answer *gold, const convbi_answer *pred, int ordered, char *why, size_t whylen);

#endif
