/* batch_input.c -- reading `convbi batch` INPUT and, for --resume, the
 * output of an earlier run.
 *
 * INPUT is JSON lines when its name ends in .jsonl/.ndjson, or when it
 * does not end in .txt and its first non-blank character is '{';
 * otherwise every non-blank line is one question (trimmed) whose id is its
 * 1-based line number.  A JSON line is an object
 *   {"question": "...", "id": string|number (default: the line number),
 *    "db": "path" (default: --db), "session": string|number}
 * (other fields are ignored).  Lines that share a session form one
 * conversation, answered in input order; a line without one is a
 * conversation of its own.  Ids must be unique and a conversation keeps one
 * database.  Any problem stops the run before it starts, with one line
 * naming INPUT:LINE and the fix.
 *
 * The resume scan reads the previous output back: every complete line (a
 * JSON object with an "id", or a CSV record whose first field is the id)
 * that records an answer counts as done; a line that records a failure
 * ("error" not null, a non-empty error field) does not, so the question
 * is asked again.  Lines are only ever written whole, so the one damage a
 * crash can leave is a torn last line; it is cut off (ftruncate) so that
 * the next line does not glue onto it.  Damage anywhere else was not made
 * by us and is reported instead of guessed at.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/batch.h"
#include "util/regfile.h"
#include "util/utf8.h"

#define SESSION_KEY_MAX 1024 /* bytes of a session's text */

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && !strcmp(s + n - m, suffix);
}

static int is_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\f' && s[i] != '\v')
			return 0;
	return 1;
}

static int oom(void)
{
	cli_error("out of memory reading the input");
	return EXIT_FAIL;
}

/* Returns the conversation for a session text (NULL: a new one). */
static struct bconv *conv_for(struct binput *in, struct strmap *sessions, const char *session, int *first_item)
{
	int idx;
	*first_item = -1;
	if (session && strmap_get(sessions, session, &idx)) {
		*first_item = in->convs[idx].items[0];
		return &in->convs[idx];
	}
	if (in->nconvs == in->capconvs) {
		int cap = in->capconvs ? in->capconvs * 2 : 64;
		struct bconv *v = realloc(in->convs, (size_t)cap * sizeof *v);
		if (!v)
			return NULL;
		in->convs = v;
		in->capconvs = cap;
	}
	struct bconv *c = &in->convs[in->nconvs];
	memset(c, 0, sizeof *c);
	if (session && strmap_put(sessions, session, in->nconvs, NULL) < 0)
		return NULL;
	in->nconvs++;
	return c;
}

static int conv_add(struct bconv *c, int item)
{
	if (c->n == c->cap) {
		int cap = c->cap ? c->cap * 2 : 4;
		int *v = realloc(c->items, (size_t)cap * sizeof *v);
		if (!v)
			return -1;
		c->items = v;
		c->cap = cap;
	}
	c->items[c->n++] = item;
	return 0;
}

/* Fills it from one JSON line; 0, or -1 after printing the problem. */
static int parse_json_line(struct binput *in, struct bitem *it, const char *line, size_t len)
{
	const char *end = NULL;
	cJSON *o = cJSON_ParseWithLengthOpts(line, len, &end, 0);
	int rc = -1;
	if (!cJSON_IsObject(o)) {
		cli_error("%s:%d: not a JSON object; write one {\"question\": \"...\"} object per line", in->path, it->line);
		goto done;
	}
	if (!is_blank(end, len - (size_t)(end - line))) {
		cli_error("%s:%d: text after the JSON object; write exactly one object per line", in->path, it->line);
		goto done;
	}
	const cJSON *q = cJSON_GetObjectItemCaseSensitive(o, "question");
	if (!cJSON_IsString(q) || is_blank(q->valuestring, strlen(q->valuestring))) {
		cli_error("%s:%d: `question` is missing, empty or not a string; add \"question\": \"...\"", in->path, it->line);
		goto done;
	}
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
	if (id && !cJSON_IsNull(id)) {
		if (!(it->id = json_key_text(id, &it->id_num)) || !it->id[0]) {
			cli_error("%s:%d: `id` must be a non-empty string or a number", in->path, it->line);
			goto done;
		}
	}
	const cJSON *db = cJSON_GetObjectItemCaseSensitive(o, "db");
	if (db && !cJSON_IsNull(db)) {
		if (!cJSON_IsString(db) || !db->valuestring[0]) {
			cli_error("%s:%d: `db` must be the path of a SQLite file", in->path, it->line);
			goto done;
		}
		if (!(it->db = strdup(db->valuestring))) {
			oom();
			goto done;
		}
	}
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "session");
	if (s && !cJSON_IsNull(s)) {
		if (!(it->session = json_key_text(s, &it->session_num)) || !it->session[0] ||
		    strlen(it->session) > SESSION_KEY_MAX) {
			cli_error("%s:%d: `session` must be a non-empty string (at most %d bytes) or a number", in->path,
			          it->line, SESSION_KEY_MAX);
			goto done;
		}
	}
	if (!(it->question = strdup(q->valuestring))) {
		oom();
		goto done;
	}
	rc = 0;
done:
	cJSON_Delete(o);
	return rc;
}

static int add_item(struct binput *in, struct strmap *sessions, struct bitem *it)
{
	char num[32];
	if (!it->id) {
		snprintf(num, sizeof num, "%d", it->line);
		it->id_num = 1;
		if (!(it->id = strdup(num)))
			return oom();
	}
	int prev;
	int rc = strmap_put(&in->ids, it->id, in->n, &prev);
	if (rc < 0)
		return oom();
	if (rc == 1) {
		cli_error("%s:%d: id `%s` is already used on line %d; give every line its own id", in->path, it->line, it->id,
		          in->items[prev].line);
		return EXIT_USAGE;
	}
	int first;
	struct bconv *c = conv_for(in, sessions, it->session, &first);
	if (!c)
		return oom();
	if (first >= 0) {
		const char *a = in->items[first].db, *b = it->db;
		if ((a || b) && (!a || !b || strcmp(a, b))) {
			cli_error("%s:%d: session `%s` uses database `%s` since line %d; a session keeps one database", in->path,
			          it->line, it->session, a ? a : "(--db)", in->items[first].line);
			return EXIT_USAGE;
		}
	}
	if (in->n == in->cap) {
		int cap = in->cap ? in->cap * 2 : 256;
		struct bitem *v = realloc(in->items, (size_t)cap * sizeof *v);
		if (!v)
			return oom();
		in->items = v;
		in->cap = cap;
	}
	if (conv_add(c, in->n))
		return oom();
	in->items[in->n++] = *it;
	memset(it, 0, sizeof *it);
	return EXIT_OK;
}

static void item_release(struct bitem *it)
{
	free(it->id);
	free(it->question);
	free(it->session);
	free(it->db);
	memset(it, 0, sizeof *it);
}

int binput_load(struct binput *in, const char *path, long limit)
{
	char *text = NULL;
	size_t len = 0;
	struct strmap sessions = STRMAP_INIT;
	int rc = EXIT_USAGE, lineno = 0;
	struct bitem it;

	memset(in, 0, sizeof *in);
	memset(&it, 0, sizeof it);
	in->path = path;
	mode_t mode = 0;
	long long_line = 0;
	int e = regfile_read_lines(path, INPUT_FILE_MAX_BYTES, INPUT_LINE_MAX_BYTES, &text, &len, &mode, &long_line);
	if (e == REGFILE_LONG_LINE) {
		cli_error(
		        "%s:%ld: the line is longer than %zu bytes; put one question per line (a question is at most %zu "
		        "bytes)",
		        path, long_line, INPUT_LINE_MAX_BYTES, QUESTION_MAX_BYTES);
		goto done;
	}
	if (e) {
		cli_error("cannot read INPUT `%s`: %s; give a text file with one question per line, or JSON lines", path,
		          e == EFBIG ? "larger than 1 GiB" : regfile_strerror(e, mode));
		goto done;
	}
	const char *p = text, *end = text + len;
	if (len >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3))
		p += 3; /* a UTF-8 byte order mark */
	in->jsonl = ends_with(path, ".jsonl") || ends_with(path, ".ndjson");
	for (const char *q = p; !in->jsonl && !ends_with(path, ".txt") && q < end; q++) {
		if (*q == '{')
			in->jsonl = 1;
		if (*q != ' ' && *q != '\t' && *q != '\r' && *q != '\n')
			break;
	}
	while (p < end && (limit < 0 || in->n < limit)) {
		if (!(lineno & 1023) && bulk_interrupts()) { /* a big INPUT takes a while: Ctrl-C stops it at once */
			cli_error("interrupted while reading INPUT (line %d); nothing was asked", lineno);
			rc = EXIT_INTERRUPTED;
			goto done;
		}
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		const char *line = p;
		p = nl ? nl + 1 : end;
		lineno++;
		if (n && line[n - 1] == '\r')
			n--;
		if (is_blank(line, n))
			continue;
		size_t bad;
		if (!utf8_valid(line, n, &bad)) {
			cli_error("%s:%d: byte %zu is not valid UTF-8; save the file as UTF-8", path, lineno, bad + 1);
			goto done;
		}
		if (memchr(line, '\0', n)) {
			cli_error("%s:%d: the line holds a NUL byte; remove it", path, lineno);
			goto done;
		}
		it.line = lineno;
		if (in->jsonl) {
			if (parse_json_line(in, &it, line, n))
				goto done;
		} else {
			while (*line == ' ' || *line == '\t')
				line++, n--;
			while (n && (line[n - 1] == ' ' || line[n - 1] == '\t'))
				n--;
			if (!(it.question = strndup(line, n))) {
				rc = oom();
				goto done;
			}
		}
		if ((rc = add_item(in, &sessions, &it)) != EXIT_OK)
			goto done;
		rc = EXIT_USAGE;
	}
	if (in->n == 0 && limit == 0) {
		cli_error("--limit 0 selects no question of INPUT; give --limit 1 or more, or leave it out");
		goto done;
	}
	if (in->n == 0) {
		cli_error("INPUT `%s` holds no question; write one question per line (or JSON lines)", path);
		goto done;
	}
	rc = EXIT_OK;
done:
	item_release(&it);
	strmap_release(&sessions);
	free(text);
	return rc;
}

void binput_release(struct binput *in)
{
	for (int i = 0; i < in->n; i++)
		item_release(&in->items[i]);
	free(in->items);
	for (int i = 0; i < in->nconvs; i++)
		free(in->convs[i].items);
	free(in->convs);
	strmap_release(&in->ids);
	memset(in, 0, sizeof *in);
}

/* ---- --resume ------------------------------------------------------------------------ */

/* A result line of the output for id, which recorded question (NULL: not
 * known) asked of db (NULL: --db; ANY_DB: not recorded, as in CSV): the
 * INPUT's question of that id must be the same one, asked of the same
 * database -- an output written from another question file (or from this
 * one before a line was inserted, shifting the ids, or before its db
 * changed) answers other questions -- else EXIT_USAGE with one line.  A
 * line that is no failure marks the id done. */
static const char ANY_DB[] = "";

static int take_answered(struct binput *in, const char *id, const char *question, const char *db, int failed,
                         const char *out_path, int lineno)
{
	int i;
	if (!strmap_get(&in->ids, id, &i))
		return EXIT_OK;
	const struct bitem *it = &in->items[i];
	if (question && strcmp(question, it->question)) {
		cli_error(
		        "%s:%d answers `%.60s` as id %s, but id %s of INPUT is `%.60s`: this output was written from "
		        "other questions; give another --out (or resume with the INPUT it was written from)",
		        out_path, lineno, question, id, id, it->question);
		return EXIT_USAGE;
	}
	if (db != ANY_DB && (db ? !it->db || strcmp(db, it->db) : it->db != NULL)) {
		cli_error(
		        "%s:%d answers id %s from %s%s%s, but INPUT now asks it of %s%s%s: this output was written for "
		        "another database; give another --out (or resume with the INPUT it was written from)",
		        out_path, lineno, id, db ? "`" : "", db ? db : "--db's database", db ? "`" : "", it->db ? "`" : "",
		        it->db ? it->db : "--db's database", it->db ? "`" : "");
		return EXIT_USAGE;
	}
	if (!failed)
		in->items[i].done = 1;
	return EXIT_OK;
}

/* One JSON result line: its id text, or NULL when it is not one of ours
 * (every line batch writes has an "error", and an "answer" unless the
 * error is set); *failed says the line records a failure (its "error" is
 * not null); *question gets its question and *db its "db" (owned), NULL
 * when it has none. */
static char *jsonl_id(const char *line, size_t n, int *failed, char **question, char **db)
{
	cJSON *o = cJSON_ParseWithLength(line, n);
	int num;
	char *id = cJSON_IsObject(o) ? json_key_text(cJSON_GetObjectItemCaseSensitive(o, "id"), &num) : NULL;
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(o, "error");
	const cJSON *answer = cJSON_GetObjectItemCaseSensitive(o, "answer");
	*failed = err && !cJSON_IsNull(err);
	if (!(cJSON_IsNull(err) && answer) && !cJSON_IsString(err))
		free(id), id = NULL; /* no outcome recorded: not a line of ours */
	const cJSON *q = cJSON_GetObjectItemCaseSensitive(o, "question");
	*question = cJSON_IsString(q) ? strdup(q->valuestring) : NULL;
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "db");
	*db = cJSON_IsString(d) ? strdup(d->valuestring) : NULL;
	cJSON_Delete(o);
	return id;
}

/* One CSV record starting at s[*pos]: its first field in *first (caller
 * frees), whether field number `nonempty` (1-based) holds text in *set,
 * and its field count.  Returns 1 for a complete record (ending in
 * a line break outside quotes; *pos moves past it), 0 when the data ends
 * first (a torn record), -1 when it is malformed (a quote followed by
 * something other than a comma or a line break). */
static int csv_record(const char *s, size_t len, size_t *pos, char **first, char **second, int nonempty, int *set, int *nfields)
{
	struct buf f = BUF_INIT;
	size_t i = *pos;
	int rc = 0;
	*first = NULL;
	*second = NULL;
	*nfields = 0;
	*set = 0;
	for (;;) {
		buf_reset(&f);
		buf_add(&f, "", 0);
		if (i < len && s[i] == '"') {
			for (i++;; i++) {
				if (i >= len)
					goto done;
				if (s[i] != '"')
					buf_add(&f, s + i, 1);
				else if (i + 1 < len && s[i + 1] == '"')
					buf_add(&f, "\"", 1), i++;
				else
					break;
			}
			i++;
		} else {
			size_t j = i;
			while (j < len && s[j] != ',' && s[j] != '\r' && s[j] != '\n')
				j++;
			buf_add(&f, s + i, j - i);
			i = j;
		}
		if (++*nfields == nonempty)
			*set = f.len > 0;
		if ((*nfields == 1 && !(*first = strdup(buf_str(&f)))) || (*nfields == 2 && !(*second = strdup(buf_str(&f))))) {
			rc = -1;
			goto done;
		}
		if (i >= len)
			goto done;
		if (s[i] == ',') {
			i++;
			continue;
		}
		if (s[i] == '\n' || (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')) {
			i += s[i] == '\r' ? 2 : 1;
			rc = 1;
		} else {
			rc = i + 1 < len || s[i] != '\r' ? -1 : 0;
		}
		break;
	}
done:
	buf_release(&f);
	if (rc == 1) {
		*pos = i;
	} else {
		free(*first), *first = NULL;
		free(*second), *second = NULL;
	}
	return rc;
}

#define CSV_FIELDS 9      /* ...,elapsed_ms,cost_usd */
#define CSV_FIELDS_OLD 8  /* a file written before cost_usd */
#define CSV_ERROR_FIELD 6 /* id,question,intent,sql,answer,error,... */

/* 1 when text could be (a prefix of) our output: valid UTF-8 without NUL,
 * starting with the CSV header or a JSON line whose first key is "id" --
 * the way record() writes every line.  An empty file is ours to fill. */
static int looks_like_ours(const char *text, size_t len, int csv)
{
	static const char header[] = "id,question,";
	static const char first[] = "{\"id\":";
	size_t bad;
	if (memchr(text, '\0', len) || !utf8_valid(text, len, &bad))
		return 0;
	const char *want = csv ? header : first;
	size_t n = strlen(want);
	return len == 0 || !memcmp(text, want, len < n ? len : n);
}

int out_check_fresh(const char *out_path, int csv)
{
	struct stat st;
	if (stat(out_path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0)
		return EXIT_OK; /* new, empty, or a FIFO or device: nothing there to keep */
	char head[4096];
	ssize_t n = -1;
	int fd = open(out_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd >= 0) {
		n = read(fd, head, sizeof head);
		close(fd);
	}
	/* only the first line counts: the prefix read may end inside a character */
	const char *nl = n > 0 ? memchr(head, '\n', (size_t)n) : NULL;
	size_t len = n > 0 ? (nl ? (size_t)(nl - head) : (size_t)n) : 0;
	if (n > 0 && len > 0 && (nl || len < sizeof head) && looks_like_ours(head, len, csv))
		return EXIT_OK; /* an earlier run's results: written over, as asked */
	cli_error(
	        "--out %s exists and is not a %s result file of `convbi batch`; convbi would overwrite it: give "
	        "another --out (or --resume to continue a file convbi wrote)",
	        out_path, csv ? "CSV" : "JSONL");
	return EXIT_USAGE;
}

int resume_scan(struct binput *in, const char *out_path, int csv, int *empty)
{
	char *text = NULL;
	size_t len = 0, pos = 0;
	int rc = EXIT_OK, lineno = 0;
	*empty = 1;
	if ((rc = bulk_resume_read(out_path, "the output", &text, &len)) || !text)
		return rc;
	if (!looks_like_ours(text, len, csv)) {
		/* never cut or append to a file convbi did not write (a database, a config ...) */
		cli_error(
		        "`%s` is not a %s result file of `convbi batch`; --resume only continues a file convbi wrote: "
		        "give another --out",
		        out_path, csv ? "CSV" : "JSONL");
		free(text);
		return EXIT_USAGE;
	}
	while (pos < len) {
		size_t start = pos;
		char *id = NULL, *question = NULL, *db = NULL;
		int whole;      /* 1 complete, 0 torn (the data ends inside it), -1 malformed */
		int failed = 0; /* the line records a failure: ask it again */
		lineno++;
		if (csv) {
			int nf;
			whole = csv_record(text, len, &pos, &id, &question, CSV_ERROR_FIELD, &failed, &nf);
			if (whole == 1 && lineno == 1 && !strcmp(id, "id")) {
				free(id);
				free(question);
				continue; /* the header */
			}
			if (whole == 1 && nf != CSV_FIELDS && nf != CSV_FIELDS_OLD)
				whole = -1;
		} else {
			const char *nl = memchr(text + pos, '\n', len - pos);
			whole = nl != NULL;
			if (nl) {
				pos = (size_t)(nl - text) + 1;
				if (is_blank(text + start, pos - start - 1))
					continue;
				if (!(id = jsonl_id(text + start, pos - start - 1, &failed, &question, &db)))
					whole = -1;
			}
		}
		if (whole == 1) {
			rc = take_answered(in, id, question, csv ? ANY_DB : db, failed, out_path, lineno);
			free(id);
			free(question);
			free(db);
			if (rc)
				goto done;
			continue;
		}
		free(id);
		free(question);
		free(db);
		if (whole < 0) { /* a whole line we did not write, even the last one: never cut */
			cli_error("%s:%d: not a result line of `convbi batch`; remove the line or write to another --out",
			          out_path, lineno);
			rc = EXIT_USAGE;
			goto done;
		}
		pos = start; /* torn: cut it off */
		break;
	}
	if (pos < len && (rc = outfile_cut_torn(out_path, pos, len)))
		goto done;
	*empty = pos == 0;
done:
	free(text);
	return rc;
}
