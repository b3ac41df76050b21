/* batch.c -- `convbi batch`: answer a file of questions in parallel.
 *
 *   convbi batch [--db F] [--config F] [-j N] [--format jsonl|csv] [--out F]
 *                [--rows DIR] [--resume] [--limit N] INPUT
 *
 * INPUT is read and checked whole first (batch_input.c), then grouped into
 * conversations; N worker threads take conversations from a shared cursor
 * and answer each one's questions in order on one convbi_session, so
 * follow-ups see their history while different conversations run in
 * parallel.  Every worker shares the engine of its conversation's database
 * (one engine per database file, opened once before the workers start);
 * engines are thread-safe, sessions stay on one thread.
 *
 * Output: each result is one line, written as soon as its question
 * finishes with one write(2) on an O_APPEND descriptor under a mutex and
 * synced (jsonl.h), so a crash loses at most the questions in flight.
 *   jsonl  the answer's JSON (convbi_answer_json) with "id" (and "session",
 *          "db" when given) in front, rows cut to --row-cap (default as in
 *          ask) with "truncated": true, and "attempts_per_endpoint"
 *   csv    id,question,intent,sql,answer,error,error_class,elapsed_ms,cost_usd
 *          (RFC 4180, CRLF, a header line when the file starts empty); the
 *          rows themselves go to one file per question with --rows DIR
 *          (DIR/<id>.csv, RFC 4180, the id escaped one to one: see
 *          rows_path), written aside and renamed; DIR is new, empty or
 *          one an earlier run wrote (marked by DIR/.convbi-rows)
 * Without --db, questions without a `db` use the bundled sample, as ask.
 * Without --out, lines go to stdout.  --out F is emptied first unless
 * --resume, which keeps it, cuts a torn last line, skips every id already
 * in it and appends the rest.  A conversation cut in the middle resumes
 * without the history of its answered turns (said on stderr): the public
 * API has no way to give a session back its history.
 *
 * Ctrl-C: the first stops taking questions (those in flight finish and
 * are written); the second cancels those in flight (a canceled question is
 * not written, so --resume asks it again); the third kills.  Exit 130.
 * Canceling acts at the library's next event (stage change, streamed
 * token, retry): the public API has no asynchronous interrupt.
 *
 * -v prints every failed question (id, class, message) on stderr as it
 * comes.
 *
 * Exit codes: 0 every question answered, 1 some failed (or the output
 * could not be written), 2 usage (INPUT, flags, database, configuration),
 * 130 interrupted.  Progress and the summary go to stderr.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/batch.h"
#include "cli/term.h"
#include "cli/userfile.h"

#define BATCH_ROW_CAP_DEFAULT 1000 /* rows kept per result line: as in ask (convbi_options.row_cap) */

struct batch {
	const struct cli_opts *o;
	struct binput in;
	int csv; /* --format csv */
	struct engines engines;
	convbi_engine **dbeng; /* owned array, borrowed engines: [d] for in's db index d (0: --db) */
	struct outfile out;
	struct workers w; /* w.mu guards everything below */
	int canceled;     /* questions canceled by the second Ctrl-C */
	int werr;         /* errno of the first failed output write */
	struct runstats st;
	struct progress pg;
};

/* No new question once Ctrl-C came, the output cannot be written or the
 * run has cost --max-cost. */
static int stopping(struct batch *b)
{
	pthread_mutex_lock(&b->w.mu);
	int stop = bulk_interrupts() > 0 || b->werr || runstats_over_cost(&b->st, b->o->max_cost);
	pthread_mutex_unlock(&b->w.mu);
	return stop;
}

/* Under w.mu: the supervisor's test (Ctrl-C it checks itself). */
static int output_failed(void *ctx)
{
	struct batch *b = ctx;
	return b->werr != 0 || runstats_over_cost(&b->st, b->o->max_cost);
}

/* ---- one result line ------------------------------------------------------------ */

/* Replaces the number cells of the kept rows by the exact text the
 * library printed: cJSON reads numbers as doubles, which would round an
 * integer beyond 2^53. */
static void exact_numbers(cJSON *rows, const convbi_answer *a)
{
	int r = 0;
	for (cJSON *row = rows ? rows->child : NULL; row; row = row->next, r++) {
		int c = 0;
		for (cJSON *cell = row->child, *next; cell; cell = next, c++) {
			next = cell->next;
			const char *text = a ? convbi_answer_cell(a, r, c) : NULL;
			cJSON *raw;
			if (cJSON_IsNumber(cell) && text && (raw = cJSON_CreateRaw(text)))
				cJSON_ReplaceItemViaPointer(row, cell, raw);
		}
	}
}

static cJSON *id_value(const char *text, int num)
{
	return num ? cJSON_CreateRaw(text) : cJSON_CreateString(text);
}

/* The result object for one question: id first, then the answer's fields.
 * Returns NULL without memory. */
static cJSON *result_object(const struct bview *it, const convbi_answer *a, cJSON *ans, int status, const char *errmsg,
                            int row_cap)
{
	cJSON *line = cJSON_CreateObject();
	if (!line)
		return NULL;
	cJSON_AddItemToObject(line, "id", id_value(it->id, it->id_num));
	if (it->session)
		cJSON_AddItemToObject(line, "session", id_value(it->session, it->session_num));
	if (it->db)
		cJSON_AddStringToObject(line, "db", it->db);
	cJSON_AddStringToObject(line, "question", it->question);
	if (!ans) {
		/* every error line says what went wrong: never an empty message */
		const char *msg = a && convbi_answer_status(a) ? convbi_answer_errmsg(a) : errmsg;
		cJSON_AddStringToObject(line, "error", msg && *msg ? msg : convbi_errstr(status ? status : CONVBI_ENOMEM));
		cJSON_AddStringToObject(line, "error_class", convbi_errname(status ? status : CONVBI_ENOMEM));
		return line;
	}
	cJSON *per_ep = attempts_per_endpoint(ans);
	while (ans->child) {
		cJSON *f = cJSON_DetachItemViaPointer(ans, ans->child);
		if (!strcmp(f->string, "question")) {
			cJSON_Delete(f); /* the input's text is already there */
			continue;
		}
		if (!strcmp(f->string, "rows")) {
			int n = cJSON_GetArraySize(f);
			for (int i = n - 1; i >= row_cap; i--)
				cJSON_DeleteItemFromArray(f, i);
			if (n > row_cap)
				cJSON_ReplaceItemInObjectCaseSensitive(ans, "truncated", cJSON_CreateTrue());
			exact_numbers(f, a);
		}
		cJSON_AddItemToObject(line, f->string, f);
	}
	if (per_ep)
		cJSON_AddItemToObject(line, "attempts_per_endpoint", per_ep);
	return line;
}

static const char *str_of(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void csv_line(struct buf *t, const struct bview *it, const cJSON *line)
{
	const cJSON *ms = cJSON_GetObjectItemCaseSensitive(line, "elapsed_ms");
	buf_csv_field(t, it->id);
	buf_add(t, ",", 1);
	buf_csv_field(t, it->question);
	static const char *const fields[] = {"intent", "sql", "answer", "error", "error_class"};
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		buf_add(t, ",", 1);
		buf_csv_field(t, str_of(line, fields[i]));
	}
	const cJSON *cost = cJSON_GetObjectItemCaseSensitive(line, "cost_usd");
	buf_printf(t, ",%lld,%.6f\r\n", cJSON_IsNumber(ms) ? (long long)ms->valuedouble : 0LL,
	           cJSON_IsNumber(cost) ? cost->valuedouble : 0.0);
}

/* The rows file of an item: DIR/<name>.csv where name is the id with
 * every byte other than a letter, a digit, '.' and '-' (and a leading
 * '.') written _XX in hex: "x/" -> x_2F, "x_2F" -> x_5F2F.  The mapping
 * is one to one, so two ids never share a file.  A name longer than
 * ROWS_NAME_MAX is cut and ends in "~L<input line>" instead ('~' is
 * always escaped otherwise); an empty id is "_". */
#define ROWS_NAME_MAX 200 /* bytes of a rows file's name before ".csv" */
static void rows_path(char *out, size_t n, const char *dir, const struct bview *it)
{
	static const char hex[] = "0123456789ABCDEF";
	char name[ROWS_NAME_MAX + 4];
	size_t k = 0;
	const unsigned char *p = (const unsigned char *)it->id;
	for (; *p && k <= ROWS_NAME_MAX; p++) {
		int keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		           (*p == '.' && k > 0);
		if (keep) {
			name[k++] = (char)*p;
		} else {
			name[k++] = '_';
			name[k++] = hex[*p >> 4];
			name[k++] = hex[*p & 15];
		}
	}
	name[k] = '\0';
	if (*p || k > ROWS_NAME_MAX)
		snprintf(out, n, "%s/%.*s~L%d.csv", dir, ROWS_NAME_MAX - 16, name, it->line);
	else
		snprintf(out, n, "%s/%s.csv", dir, k ? name : "_");
}

/* --rows DIR: the answer's rows as RFC 4180 CSV in their own file,
 * written aside and renamed so a reader never sees half a file. */
static void save_rows(struct batch *b, const struct bview *it, const convbi_answer *a)
{
	char path[4096];
	char *text = NULL;
	rows_path(path, sizeof path, b->o->rows_dir, it);
	int e = convbi_answer_format(a, "csv", -1, &text) ? ENOMEM : resfile_write_whole(path, text, strlen(text));
	convbi_free(text);
	if (e) {
		pthread_mutex_lock(&b->w.mu);
		if (!b->werr)
			b->werr = e;
		progress_end(&b->pg);
		cli_error("cannot write the rows file %s: %s", path, strerror(e));
		pthread_mutex_unlock(&b->w.mu);
	}
}

#define ROWS_MARK ".convbi-rows" /* in a --rows folder: its files are convbi's */

/* --rows DIR is a new folder, an empty one, or one an earlier run wrote
 * (it holds ROWS_MARK): the files in it are then convbi's to replace.  A
 * folder holding anything else is refused.  Returns EXIT_OK, or
 * EXIT_USAGE after one line. */
static int rows_dir_ready(const char *dir)
{
	char mark[4096];
	snprintf(mark, sizeof mark, "%s/" ROWS_MARK, dir);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		cli_error("cannot create the rows folder `%s`: %s", dir, strerror(errno));
		return EXIT_USAGE;
	}
	if (access(mark, F_OK) == 0)
		return EXIT_OK;
	DIR *d = opendir(dir);
	if (!d) {
		cli_error("cannot open the rows folder `%s`: %s", dir, strerror(errno));
		return EXIT_USAGE;
	}
	int others = 0;
	for (struct dirent *de; !others && (de = readdir(d));)
		others = strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	if (others) {
		cli_error("the rows folder `%s` holds files convbi did not write; give --rows a new or empty folder", dir);
		return EXIT_USAGE;
	}
	static const char text[] = "convbi batch --rows: the files in this folder are convbi's and a new run replaces them\n";
	int e = resfile_write_whole(mark, text, sizeof text - 1);
	if (e) {
		cli_error("cannot write in the rows folder `%s`: %s", dir, strerror(e));
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* Writes one finished question and counts it.  Without an answer (no
 * session, no memory) errmsg says what went wrong. */
static void record(struct batch *b, const struct bview *it, const convbi_answer *a, int status, const char *errmsg)
{
	char *json = NULL;
	cJSON *ans = NULL, *line = NULL;
	char *text = NULL;
	struct buf t = BUF_INIT;
	int jrc = CONVBI_OK;
	if (a && (jrc = convbi_answer_json(a, &json)) == CONVBI_OK && !(ans = cJSON_Parse(json)))
		jrc = CONVBI_ENOMEM; /* the library's JSON is always valid: only memory fails here */
	if (a && jrc && !status) {   /* an answered question we cannot write is a failure, counted */
		status = jrc;
		errmsg = "out of memory writing the result line (the question itself was answered)";
	}
	line = result_object(it, a, ans, status, errmsg, b->o->row_cap > 0 ? b->o->row_cap : BATCH_ROW_CAP_DEFAULT);
	if (b->o->rows_dir && a && status == CONVBI_OK && convbi_answer_column_count(a) > 0)
		save_rows(b, it, a);
	if (line && b->csv) {
		csv_line(&t, it, line);
	} else if (line && (text = cJSON_PrintUnformatted(line))) {
		buf_puts(&t, text);
		buf_add(&t, "\n", 1);
	}
	int werr = t.err || !t.len ? ENOMEM : outfile_write(&b->out, t.data, t.len);
	pthread_mutex_lock(&b->w.mu);
	runstats_add(&b->st, status, line);
	if (status && b->o->verbose) {
		progress_end(&b->pg);
		term_printf(stderr, "convbi: batch: id %s failed: %s: %s\n", it->id, convbi_errname(status),
		            str_of(line, "error") ? str_of(line, "error") : convbi_errstr(status));
	}
	if (werr && !b->werr)
		b->werr = werr;
	workers_notify(&b->w);
	pthread_mutex_unlock(&b->w.mu);
	buf_release(&t);
	cJSON_free(text);
	cJSON_Delete(line);
	cJSON_Delete(ans);
	convbi_free(json);
}

/* ---- workers ---------------------------------------------------------------------- */

/* Answers the conversation that item head starts, in order, on one session. */
static void run_conv(struct batch *b, int head)
{
	convbi_session *s = NULL;
	int src = convbi_session_new(&s, b->dbeng[binput_db_of(&b->in, head)]);
	for (int i = head; i >= 0 && !stopping(b); i = binput_next(&b->in, i)) {
		if (b->in.items[i].done)
			continue;
		struct bview it;
		binput_view(&b->in, i, &it);
		convbi_answer *a = NULL;
		int rc = src ? src : convbi_session_ask(s, it.question, NULL, bulk_event, NULL, &a);
		if (rc == CONVBI_ECANCELED && bulk_interrupts() >= 2) {
			/* not written (--resume asks it again), but the calls it made are counted */
			char *json = NULL;
			cJSON *spent = a && convbi_answer_json(a, &json) == CONVBI_OK ? cJSON_Parse(json) : NULL;
			pthread_mutex_lock(&b->w.mu);
			b->canceled++;
			runstats_add_spend(&b->st, spent);
			pthread_mutex_unlock(&b->w.mu);
			cJSON_Delete(spent);
			convbi_free(json);
		} else {
			/* without a session every question says why, as an answer would */
			record(b, &it, a, rc, src ? convbi_session_errmsg(s) : NULL);
		}
		convbi_answer_free(a);
	}
	convbi_session_free(s);
}

/* A worker's task: one item of INPUT, which runs its conversation when it
 * starts one (the others are run by their conversation's first). */
static void run_task(void *ctx, int task)
{
	struct batch *b = ctx;
	if (binput_head(&b->in, task))
		run_conv(b, task);
}

/* Under w.mu, every 100 ms and at the end: the progress bar. */
static void tick(void *ctx, int final)
{
	struct batch *b = ctx;
	if (!final)
		progress_show(&b->pg, &b->st, 0);
	else if (b->pg.tty && b->st.done)
		progress_show(&b->pg, &b->st, 1); /* the bar at its final state */
	if (final)
		progress_end(&b->pg);
}

/* ---- --out is never an input ------------------------------------------------- */

/* Refuses an --out that is one of the run's inputs (userfile.h): opening
 * it for output would empty it (or append lines to it) before any
 * question runs.  Returns EXIT_OK or EXIT_USAGE after one line. */
static int out_is_no_input(const struct batch *b)
{
	struct userfile_input *more = calloc((size_t)b->in.ndbs + 1, sizeof *more);
	if (!more) {
		cli_error("out of memory");
		return EXIT_FAIL;
	}
	more[0] = (struct userfile_input){b->in.path, "INPUT"};
	for (int d = 1; d <= b->in.ndbs; d++)
		more[d] = (struct userfile_input){binput_db_path(&b->in, d), "a database named by INPUT"};
	int rc = userfile_check("--out", b->o->out, b->o, NULL, more, b->in.ndbs + 1);
	free(more);
	return rc;
}

/* ---- the command -------------------------------------------------------------------- */

/* Opens one engine per database the pending questions use, in the order
 * of their first pending conversation (whose line a failure names). */
static int open_engines(struct batch *b)
{
	char msg[512];
	if (!(b->dbeng = calloc((size_t)b->in.ndbs + 1, sizeof *b->dbeng))) {
		cli_error("out of memory");
		return EXIT_FAIL;
	}
	for (int i = 0; i < b->in.n; i++) {
		if (!(i & 1023) && bulk_interrupts())
			return EXIT_INTERRUPTED; /* the caller says so */
		int d = binput_db_of(&b->in, i);
		if (b->dbeng[d] || !binput_head(&b->in, i))
			continue;
		int pending = 0;
		for (int k = i; k >= 0 && !pending; k = binput_next(&b->in, k))
			pending = !b->in.items[k].done;
		if (!pending)
			continue;
		const char *first = binput_db_path(&b->in, d);
		const char *db = first ? first : b->o->db ? b->o->db : cli_default_db();
		int rc = engines_get(&b->engines, b->o, db, &b->dbeng[d], msg, sizeof msg);
		if (rc) {
			if (first)
				cli_error("%s:%d: %s", b->in.path, (int)b->in.items[i].line, msg);
			else
				cli_error("%s", msg);
			return rc == CONVBI_ENOMEM ? EXIT_FAIL : EXIT_USAGE;
		}
	}
	return EXIT_OK;
}

static void summary(const struct batch *b, int64_t pending)
{
	const struct runstats *s = &b->st;
	struct buf f = BUF_INIT;
	runstats_failures(s, &f);
	double secs = (double)(bulk_now_ms() - s->start_ms) / 1000.0;
	fprintf(stderr, "convbi: batch: %lld of %lld questions in %.1f s (%.1f/s): %lld answered, %lld failed%s%s%s",
	        (long long)s->done, (long long)pending, secs, secs > 0 ? (double)s->done / secs : 0.0,
	        (long long)(s->done - s->failed), (long long)s->failed, f.len ? " (" : "", buf_str(&f), f.len ? ")" : "");
	if (pending > s->done)
		fprintf(stderr, ", %lld not run%s", (long long)(pending - s->done),
		        b->canceled ? " (canceled or interrupted)" : "");
	fputc('\n', stderr);
	runstats_print_usage(s, "convbi: batch: ", stderr);
	if (runstats_over_cost(s, b->o->max_cost) && pending > s->done)
		runstats_print_stopped(s, b->o->max_cost, pending - s->done, "convbi: batch: ", stderr);
	buf_release(&f);
}

static int run(struct batch *b, int64_t pending)
{
	progress_init(&b->pg, "batch");
	runstats_init(&b->st, pending);
	b->w.ntasks = b->in.n;
	b->w.ctx = b;
	b->w.run = run_task;
	b->w.stopping = output_failed;
	b->w.tick = tick;
	b->w.pg = &b->pg;
	if (!workers_run(&b->w, b->o->jobs)) {
		cli_error("cannot start a worker thread");
		return EXIT_FAIL;
	}
	summary(b, pending);
	if (b->werr) {
		cli_error("cannot write the output %s: %s", b->o->out ? b->o->out : "(stdout)", strerror(b->werr));
		return EXIT_FAIL;
	}
	if (bulk_interrupts())
		return EXIT_INTERRUPTED;
	return b->st.failed || b->st.done < pending ? EXIT_FAIL : EXIT_OK; /* stopped by --max-cost: not all done */
}

int cmd_batch(struct cli_opts *o)
{
	struct batch b;
	int rc, empty = 1;
	memset(&b, 0, sizeof b);
	b.o = o;
	b.out.fd = -1;
	struct engines none = ENGINES_INIT;
	b.engines = none;
	workers_init(&b.w);

	if (o->format && strcmp(o->format, "jsonl") && strcmp(o->format, "csv")) {
		cli_error("--format takes jsonl or csv, not `%s`", o->format);
		rc = EXIT_USAGE;
		goto done;
	}
	b.csv = o->format && !strcmp(o->format, "csv");
	if (o->resume && !o->out) {
		cli_error("--resume needs --out FILE: the output of the run to resume");
		rc = EXIT_USAGE;
		goto done;
	}
	if (b.csv && !o->rows_dir)
		fprintf(stderr,
		        "convbi: batch: the CSV has one line per question; add --rows DIR to save each question's "
		        "rows as DIR/<id>.csv\n");
	bulk_catch_sigint(); /* from the start: reading a big INPUT and opening the databases take a while */
	if ((rc = binput_load(&b.in, o->args[0], o->limit)))
		goto done;
	if (o->out && (rc = out_is_no_input(&b)))
		goto done;
	if (o->rows_dir && (rc = rows_dir_ready(o->rows_dir)))
		goto done;
	if (o->resume && (rc = resume_scan(&b.in, o->out, b.csv, &empty)))
		goto done;
	if (!o->resume && o->out && (rc = out_check_fresh(o->out, b.csv)))
		goto done;
	int64_t pending = 0;
	for (int i = 0; i < b.in.n; i++)
		pending += !b.in.items[i].done;
	if (o->resume) {
		fprintf(stderr, "convbi: batch: resuming %s: %lld of %d questions already answered, %lld to go\n", o->out,
		        (long long)(b.in.n - pending), b.in.n, (long long)pending);
		int split = 0;
		for (int i = 0; i < b.in.n; i++) {
			int done = 0, n = 0;
			for (int k = binput_head(&b.in, i) ? i : -1; k >= 0; k = binput_next(&b.in, k), n++)
				done += b.in.items[k].done;
			split += done > 0 && done < n;
		}
		if (split)
			fprintf(stderr,
			        "convbi: batch: %d conversation%s resume part-way: %s later questions run without the "
			        "earlier turns' history\n",
			        split, split == 1 ? "" : "s", split == 1 ? "its" : "their");
	}
	if ((rc = open_engines(&b)) && rc != EXIT_INTERRUPTED)
		goto done;
	if (rc || bulk_interrupts()) {
		cli_error("interrupted before any question was asked");
		rc = EXIT_INTERRUPTED;
		goto done;
	}
	int e = outfile_open(&b.out, o->out, !o->resume);
	if (e) {
		cli_error("cannot open the output `%s`: %s", o->out, strerror(e));
		rc = EXIT_USAGE;
		goto done;
	}
	if (b.csv && (!o->resume || empty)) {
		static const char header[] = "id,question,intent,sql,answer,error,error_class,elapsed_ms,cost_usd\r\n";
		if ((e = outfile_write(&b.out, header, sizeof header - 1))) {
			cli_error("cannot write the output: %s", strerror(e));
			rc = EXIT_FAIL;
			goto done;
		}
	}
	rc = pending ? run(&b, pending) : EXIT_OK;
	if (!pending)
		fprintf(stderr, "convbi: batch: nothing to do: every question is already in %s\n",
		        o->out ? o->out : "the output");
done:
	if (b.out.fd >= 0)
		outfile_close(&b.out);
	engines_close(&b.engines);
	free(b.dbeng);
	binput_release(&b.in);
	workers_release(&b.w);
	return rc;
}
