/* batch.h -- what the bulk commands (`convbi batch`, `convbi eval`) share:
 * Ctrl-C handling, the cache of engines (one per database file), the run
 * statistics gathered from each answer's JSON, and the progress display.
 *
 * Threads: the statistics and the progress belong to the caller's mutex;
 * the engine cache is filled by the main thread before workers start and
 * only read afterwards (engines themselves are thread-safe).  The Ctrl-C
 * counter is a sig_atomic_t any thread may read.
 */
#ifndef CONVBI_CLI_BATCH_H
#define CONVBI_CLI_BATCH_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "cli/cli.h"
#include "cli/jsonl.h"

struct cJSON;

/* ---- Ctrl-C ----------------------------------------------------------------- */

/* Counts SIGINTs (the third one restores the default action, so a stuck
 * run can still be killed from the keyboard) and ignores SIGPIPE. */
void bulk_catch_sigint(void);
int bulk_interrupts(void);
/* Reads the output file that --resume continues into *text (malloc'd;
 * NULL when the file does not exist yet: nothing to resume) and *len.
 * EXIT_OK, or EXIT_FAIL after saying why, the file called `named` ("the
 * output", "--out") in the message. */
int bulk_resume_read(const char *path, const char *named, char **text, size_t *len);
/* Event callback for convbi_session_ask: cancels the question once Ctrl-C
 * has come twice.  payload is unused. */
int bulk_event(const convbi_event *ev, void *payload);
/* Blocks SIGINT in the calling thread (workers), so that only the main
 * thread runs the handler. */
void bulk_block_sigint(int block);

/* ---- engines, one per database ---------------------------------------------- */

struct engine_ent {
	char *key;        /* owned: realpath of the database, or the path as given */
	convbi_engine *e; /* owned */
};

struct engines {
	struct strmap idx;    /* key -> index in v */
	struct engine_ent *v; /* owned array */
	int n, cap;
	int checked;     /* the endpoint configuration was checked */
	char *last_path; /* owned: the path text of the last lookup, which ... */
	int last;        /* ... found v[last] (most callers ask for one file again and again) */
};

#define ENGINES_INIT                                 \
	{                                            \
		STRMAP_INIT, NULL, 0, 0, 0, NULL, -1 \
	}

/* The engine for database path, opened (with the command line's options)
 * on first use; every later call with the same file returns the same
 * engine.  Main thread only.  Returns CONVBI_OK and *out (borrowed from c),
 * or the library status with one line in msg (no endpoint configured is an
 * error here: a bulk run would fail every question). */
int engines_get(struct engines *c, const struct cli_opts *o, const char *path, convbi_engine **out, char *msg, size_t msglen);
void engines_close(struct engines *c);

/* ---- statistics --------------------------------------------------------------- */

#define RUNSTATS_MAX_ENDPOINTS 32
#define RUNSTATS_MAX_STATUS 64

struct ep_stats {
	char name[64];
	int64_t attempts;     /* HTTP calls made to it */
	int64_t rate_limited; /* of which answered 429 (class rate_limited) */
	double cost_usd;      /* what its answers cost */
};

struct runstats {
	int64_t total;                          /* questions this run will try */
	int64_t done;                           /* finished (written) */
	int64_t failed;                         /* finished with a non-OK status */
	int64_t by_status[RUNSTATS_MAX_STATUS]; /* failed questions per CONVBI_* status */
	int64_t rate_limited;                   /* attempts whose class was rate_limited */
	int64_t prompt_tokens, completion_tokens;
	int64_t reserved_tokens; /* of them, served by reserved (PTU) endpoints */
	double cost_usd;         /* what the finished questions cost */
	struct ep_stats ep[RUNSTATS_MAX_ENDPOINTS];
	int nep;
	int64_t start_ms; /* monotonic */
};

void runstats_init(struct runstats *s, int64_t total);
/* 1 once the finished questions have cost max_cost (> 0) or more: the run
 * takes no new question.  Caller holds the lock that guards s. */
int runstats_over_cost(const struct runstats *s, double max_cost);
/* The summary's line for a run stopped by --max-cost: what it cost, how
 * many questions were not asked, and how to continue. */
void runstats_print_stopped(const struct runstats *s, double max_cost, int64_t not_run, const char *prefix, FILE *f);
/* Adds one finished question: its status and the attempts and usage of
 * its answer JSON (which may be NULL). */
void runstats_add(struct runstats *s, int status, const struct cJSON *answer);
/* Adds only what an answer spent (attempts, tokens, cost): a question
 * canceled part-way made calls though it is not finished. */
void runstats_add_spend(struct runstats *s, const struct cJSON *answer);
/* {"east": {"attempts": 2, "rate_limited": 1, "cost_usd": 0.0012}, ...} for one answer JSON;
 * NULL without memory.  Caller deletes. */
struct cJSON *attempts_per_endpoint(const struct cJSON *answer);
/* The CONVBI_* status named by an answer's "error_class" ("ESQL" -> 16),
 * CONVBI_OK when it is null or absent. */
int status_of_answer(const struct cJSON *answer);
/* Prints "<prefix>tokens ...", "<prefix>cost ..." and "<prefix>calls per
 * endpoint ..." (with each one's cost) lines. */
void runstats_print_usage(const struct runstats *s, const char *prefix, FILE *f);
/* "ESQL 3, ERATELIMIT 1" into b ("" when nothing failed). */
void runstats_failures(const struct runstats *s, struct buf *b);

/* ---- progress ------------------------------------------------------------------ */

struct progress {
	int tty;          /* stderr is a terminal: redraw one bar */
	int drawn;        /* a bar is on screen */
	int64_t last_ms;  /* when it was last shown */
	const char *what; /* "batch", "eval" */
};

void progress_init(struct progress *p, const char *what);
/* Shows the state: a redrawn bar on a terminal (at most every 200 ms), a
 * plain line every 2 s otherwise; force shows it now.  Caller holds the
 * lock that guards s. */
void progress_show(struct progress *p, const struct runstats *s, int force);
/* Ends the bar line so that the next message starts clean. */
void progress_end(struct progress *p);

int64_t bulk_now_ms(void);

/* ---- the worker supervisor --------------------------------------------------- */

/* N worker threads take tasks 0..ntasks-1 in order and run each without
 * the lock; the calling thread supervises: it wakes every 100 ms or when
 * a task finishes, says what the first and second Ctrl-C do, and calls
 * tick (progress).  No new task starts after Ctrl-C or once stopping()
 * says so.  mu also guards the caller's shared state (results, stats). */
struct workers {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* a task finished or a worker left */
	int ntasks;
	int next;                           /* the next task to take */
	int running;                        /* workers still running */
	void *ctx;                          /* the caller's, passed to the hooks */
	void (*run)(void *ctx, int task);   /* on a worker, mu not held */
	int (*stopping)(void *ctx);         /* under mu; may be NULL */
	void (*tick)(void *ctx, int final); /* under mu; final once at the end */
	struct progress *pg;                /* ended before the Ctrl-C messages */
};

void workers_init(struct workers *w);
void workers_release(struct workers *w);
/* Runs the tasks on at most jobs threads and returns when every worker
 * has left; returns the number of threads started (0: none could be). */
int workers_run(struct workers *w, int jobs);
/* Wakes the supervisor; call with mu held after recording a result. */
void workers_notify(struct workers *w);

/* ---- batch input (batch_input.c) ------------------------------------------------ */

/* INPUT's strings live in INPUT's own text, which binput keeps: a
 * question of a text INPUT is its trimmed line ended in place; the values
 * of a JSON line are decoded into the line's own bytes (a decoded string
 * is always shorter than its JSON).  A string is named by a 32-bit ref:
 * its offset in binput.text, or with BREF_SPILL set in binput.spill (a
 * number id reformatted longer than its line holds).  Per question that
 * is 8 bytes, plus 16 for JSON lines and an id index of 4-8 bytes: a big
 * INPUT costs about its own size once more at most. */
#define BREF_SPILL 0x80000000u

struct bitem {
	uint32_t question;  /* ref */
	uint32_t line : 31; /* 1-based line of INPUT */
	uint32_t done : 1;  /* already in the output (--resume) */
};

struct bitem_json {               /* what a JSON line may add; index 0 also means "none" */
	uint32_t id;              /* ref, 0: the line number */
	uint32_t session;         /* ref, 0: a conversation of its own */
	uint32_t next;            /* the conversation's next item, 0: none (item 0 starts one) */
	uint32_t db : 29;         /* index in binput.dbs, 0: --db */
	uint32_t id_num : 1;      /* write the id as a JSON number */
	uint32_t session_num : 1; /* write the session as a JSON number */
	uint32_t head : 1;        /* starts its conversation */
};

/* An open-addressing table of item (or db) indexes, keyed by a string
 * that the table's user derives from the index. */
struct bindex {
	uint32_t *slot; /* owned: index + 1, 0 empty; cap a power of two */
	size_t cap, n;
};

struct binput {
	const char *path;        /* borrowed: INPUT */
	int jsonl;               /* INPUT is JSON lines (else one question a line) */
	char *text;              /* owned: INPUT's bytes, the strings ended in place */
	struct buf spill;        /* strings that did not fit in their line */
	struct bitem *items;     /* owned array, input order */
	struct bitem_json *json; /* owned array beside items, JSON lines only */
	int n, cap;
	struct bindex ids; /* JSON lines: id -> item */
	uint32_t *dbs;     /* owned: the distinct `db` refs, dbs[1..ndbs] */
	int ndbs, capdbs;
	struct bindex db_index; /* db text -> index in dbs */
};

/* One question, read: pointers into binput (valid while it lives) or idbuf. */
struct bview {
	const char *id;
	int id_num;
	const char *question;
	const char *session; /* NULL: a conversation of its own */
	int session_num;
	const char *db; /* NULL: --db */
	int line;
	char idbuf[16]; /* the line number as id text */
};

void binput_view(const struct binput *in, int i, struct bview *out);
/* 1 when item i starts a conversation; binput_next gives the item after
 * i in its conversation, -1 after the last. */
int binput_head(const struct binput *in, int i);
int binput_next(const struct binput *in, int i);
/* The db index of item i (0: --db) and the path of db index d. */
int binput_db_of(const struct binput *in, int i);
const char *binput_db_path(const struct binput *in, int d);

/* Before a run that is no --resume: an existing, non-empty OUT must be an
 * earlier run's results (its first line as batch writes it), else
 * EXIT_USAGE with one line -- a file of the user's is never emptied. */
int out_check_fresh(const char *out_path, int csv);

/* Reads INPUT (at most limit questions when limit >= 0), checks every
 * line and groups the lines into conversations.  Returns EXIT_OK, or
 * EXIT_USAGE after printing one line that names INPUT:LINE and the fix. */
int binput_load(struct binput *in, const char *path, long limit);
void binput_release(struct binput *in);
/* --resume: reads the existing output at out_path (jsonl or csv), marks
 * the items it holds an answer for as done (a line that records a failure
 * does not count: the question is asked again and its new line appended
 * after the old one), and cuts off a torn last line (one
 * without its newline, or that does not parse) so that appending starts
 * on a clean line.  *empty says the file is now empty or absent.  Returns
 * EXIT_OK, EXIT_USAGE (a damaged line before the last one: named, with the
 * fix) or EXIT_FAIL (the file cannot be read or cut). */
int resume_scan(struct binput *in, const char *out_path, int csv, int *empty);

#endif
