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
 * Memory: INPUT's text is kept and its strings live in it (batch.h,
 * BREF_SPILL): a text line's question is ended in place, a JSON line's
 * values are decoded over the line's own bytes.  An item is 8 bytes (16
 * more for JSON lines: id, session, next item of its conversation, db
 * index); a conversation is a chain of items, not an array; a text
 * INPUT's ids are its line numbers, found by bisection; JSON lines' ids,
 * their sessions (while reading) and their databases are tables of
 * 32-bit item indexes keyed by the text the item points to.
 *
 * The resume scan reads the previous output back a chunk at a time (it
 * may be far larger than INPUT; one record at most is held): every
 * complete line (a JSON object with an "id", or a CSV record whose first
 * field is the id) that records an answer counts as done; a line that
 * records a failure ("error" not null, a non-empty error field) does
 * not, so the question is asked again.  Lines are only ever written
 * whole, so the one damage a crash can leave is a torn last line; it is
 * cut off (ftruncate) so that the next line does not glue onto it.
 * Damage anywhere else was not made by us and is reported instead of
 * guessed at.
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

#define SESSION_KEY_MAX 1024               /* bytes of a session's text */
#define SPILL_MAX ((size_t)BREF_SPILL - 1) /* bytes of binput.spill: a ref holds the offset */

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

/* ---- strings and the index --------------------------------------------------------- */

static const char *bstr(const struct binput *in, uint32_t ref)
{
	return ref & BREF_SPILL ? in->spill.data + (ref & ~BREF_SPILL) : in->text + ref;
}

/* The id text of item i: its `id`, else its line number written into tmp. */
static const char *id_text(const struct binput *in, int i, char tmp[16], int *num)
{
	const struct bitem_json *x = in->json ? &in->json[i] : NULL;
	if (x && x->id) {
		*num = x->id_num;
		return bstr(in, x->id);
	}
	snprintf(tmp, 16, "%d", (int)in->items[i].line);
	*num = 1;
	return tmp;
}

/* The key an index derives from its value v (tmp: room for a number). */
typedef const char *bindex_key(const struct binput *in, uint32_t v, char tmp[16]);

static const char *id_key(const struct binput *in, uint32_t v, char tmp[16])
{
	int num;
	return id_text(in, (int)v, tmp, &num);
}

static const char *session_key(const struct binput *in, uint32_t v, char tmp[16])
{
	(void)tmp;
	return bstr(in, in->json[v].session);
}

static const char *db_key(const struct binput *in, uint32_t v, char tmp[16])
{
	(void)tmp;
	return bstr(in, in->dbs[v]);
}

/* The slot of key: the one holding it, or the empty one where it goes.
 * The table has a free slot (bindex_grow keeps it at most 3/4 full). */
static uint32_t *bindex_slot(const struct binput *in, const struct bindex *x, bindex_key *key_of, const char *key)
{
	char tmp[16];
	size_t i = (size_t)strmap_hash(key) & (x->cap - 1);
	while (x->slot[i] && strcmp(key_of(in, x->slot[i] - 1, tmp), key))
		i = (i + 1) & (x->cap - 1);
	return &x->slot[i];
}

/* Makes room for one more entry; 0, or -1 without memory. */
static int bindex_grow(const struct binput *in, struct bindex *x, bindex_key *key_of)
{
	if ((x->n + 1) * 4 <= x->cap * 3)
		return 0;
	struct bindex y = {NULL, x->cap ? x->cap * 2 : 1024, x->n};
	if (!(y.slot = calloc(y.cap, sizeof *y.slot)))
		return -1;
	char tmp[16];
	for (size_t i = 0; i < x->cap; i++)
		if (x->slot[i])
			*bindex_slot(in, &y, key_of, key_of(in, x->slot[i] - 1, tmp)) = x->slot[i];
	free(x->slot);
	*x = y;
	return 0;
}

static void bindex_release(struct bindex *x)
{
	free(x->slot);
	memset(x, 0, sizeof *x);
}

/* ---- reading INPUT ------------------------------------------------------------------ */

/* Where a JSON line's decoded values go: the line's own bytes and the one
 * after them (its '\n', or the text's final NUL). */
struct room {
	char *p, *end;
};

/* Keeps s (and its NUL) in the line when it fits, else in the spill;
 * *ref names it.  0, or -1 without memory. */
static int keep_str(struct binput *in, struct room *r, const char *s, uint32_t *ref)
{
	size_t n = strlen(s) + 1;
	if (n <= (size_t)(r->end - r->p)) {
		memcpy(r->p, s, n); /* s is cJSON's copy: the line's text is no longer read */
		*ref = (uint32_t)(r->p - in->text);
		r->p += n;
		return 0;
	}
	size_t at = in->spill.len;
	if (at + n > SPILL_MAX || buf_add(&in->spill, s, n))
		return -1;
	*ref = BREF_SPILL | (uint32_t)at;
	return 0;
}

/* The index in in->dbs of the database path at ref, added when new; -1
 * without memory. */
static int db_index(struct binput *in, uint32_t ref)
{
	if (bindex_grow(in, &in->db_index, db_key))
		return -1;
	uint32_t *slot = bindex_slot(in, &in->db_index, db_key, bstr(in, ref));
	if (*slot)
		return (int)*slot - 1;
	if (in->ndbs + 1 >= in->capdbs) {
		int cap = in->capdbs ? in->capdbs * 2 : 16;
		uint32_t *v = realloc(in->dbs, (size_t)cap * sizeof *v);
		if (!v)
			return -1;
		in->dbs = v;
		in->capdbs = cap;
	}
	in->dbs[++in->ndbs] = ref;
	*slot = (uint32_t)in->ndbs + 1;
	in->db_index.n++;
	return in->ndbs;
}

/* Fills item i from one JSON line (line, len bytes; the byte after it is
 * writable), decoding its values into the line; 0, or -1 after printing
 * the problem. */
static int parse_json_line(struct binput *in, int i, char *line, size_t len)
{
	struct bitem *it = &in->items[i];
	struct bitem_json *x = &in->json[i];
	struct room r = {line, line + len + 1};
	const char *end = NULL;
	char *id = NULL, *session = NULL;
	int id_num = 0, session_num = 0, rc = -1;
	cJSON *o = cJSON_ParseWithLengthOpts(line, len, &end, 0);
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
	const cJSON *idv = cJSON_GetObjectItemCaseSensitive(o, "id");
	if (idv && !cJSON_IsNull(idv)) {
		if (!(id = json_key_text(idv, &id_num)) || !id[0]) {
			cli_error("%s:%d: `id` must be a non-empty string or a number", in->path, it->line);
			goto done;
		}
	}
	const cJSON *db = cJSON_GetObjectItemCaseSensitive(o, "db");
	if (db && !cJSON_IsNull(db) && (!cJSON_IsString(db) || !db->valuestring[0])) {
		cli_error("%s:%d: `db` must be the path of a SQLite file", in->path, it->line);
		goto done;
	}
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "session");
	if (s && !cJSON_IsNull(s)) {
		if (!(session = json_key_text(s, &session_num)) || !session[0] || strlen(session) > SESSION_KEY_MAX) {
			cli_error("%s:%d: `session` must be a non-empty string (at most %d bytes) or a number", in->path,
			          it->line, SESSION_KEY_MAX);
			goto done;
		}
	}
	/* the question first: it always fits, so no other value is at offset 0 */
	uint32_t dbref = 0;
	int d = 0;
	if (keep_str(in, &r, q->valuestring, &it->question) || (id && keep_str(in, &r, id, &x->id)) ||
	    (session && keep_str(in, &r, session, &x->session)) ||
	    (cJSON_IsString(db) && (keep_str(in, &r, db->valuestring, &dbref) || (d = db_index(in, dbref)) < 0))) {
		oom();
		goto done;
	}
	x->db = (uint32_t)d;
	x->id_num = id_num ? 1u : 0u;
	x->session_num = session_num ? 1u : 0u;
	rc = 0;
done:
	free(id);
	free(session);
	cJSON_Delete(o);
	return rc;
}

/* Room for one more item; 0, or -1 without memory. */
static int items_grow(struct binput *in)
{
	if (in->n < in->cap)
		return 0;
	int cap = in->cap ? in->cap * 2 : 256;
	struct bitem *v = realloc(in->items, (size_t)cap * sizeof *v);
	if (!v)
		return -1;
	in->items = v;
	if (in->jsonl) {
		struct bitem_json *j = realloc(in->json, (size_t)cap * sizeof *j);
		if (!j)
			return -1;
		in->json = j;
	}
	in->cap = cap;
	return 0;
}

/* Checks item in->n (filled) and takes it: its id is new, and a session's
 * later line keeps the database of its first.  A session's items form a
 * ring while reading (the last one's next is the first, `sessions` maps
 * the session to its last item); binput_load opens the rings at the end. */
static int add_item(struct binput *in, struct bindex *sessions)
{
	int i = in->n;
	struct bitem_json *x = in->json ? &in->json[i] : NULL;
	if (x) {
		char tmp[16];
		int num;
		const char *id = id_text(in, i, tmp, &num);
		if (bindex_grow(in, &in->ids, id_key))
			return oom();
		uint32_t *slot = bindex_slot(in, &in->ids, id_key, id);
		if (*slot) {
			cli_error("%s:%d: id `%s` is already used on line %d; give every line its own id", in->path,
			          (int)in->items[i].line, id, (int)in->items[*slot - 1].line);
			return EXIT_USAGE;
		}
		x->next = 0;
		x->head = 1;
		if (x->session) {
			const char *s = bstr(in, x->session);
			if (bindex_grow(in, sessions, session_key))
				return oom();
			uint32_t *tail = bindex_slot(in, sessions, session_key, s);
			if (*tail) {
				uint32_t last = *tail - 1, first = in->json[last].next;
				if (in->json[first].db != x->db) {
					const char *a = binput_db_path(in, (int)in->json[first].db);
					cli_error(
					        "%s:%d: session `%s` uses database `%s` since line %d; a session keeps one "
					        "database",
					        in->path, (int)in->items[i].line, s, a ? a : "(--db)",
					        (int)in->items[first].line);
					return EXIT_USAGE;
				}
				x->next = first;
				x->head = 0;
				in->json[last].next = (uint32_t)i;
			} else {
				x->next = (uint32_t)i;
				sessions->n++;
			}
			*tail = (uint32_t)i + 1;
		}
		*slot = (uint32_t)i + 1; /* last: bindex_slot above read the table without item i */
		in->ids.n++;
	}
	in->n++;
	return EXIT_OK;
}

int binput_load(struct binput *in, const char *path, long limit)
{
	size_t len = 0;
	struct bindex sessions = {NULL, 0, 0};
	int rc = EXIT_USAGE, lineno = 0;

	memset(in, 0, sizeof *in);
	in->path = path;
	mode_t mode = 0;
	long long_line = 0;
	int e = regfile_read_lines(path, INPUT_FILE_MAX_BYTES, INPUT_LINE_MAX_BYTES, &in->text, &len, &mode, &long_line);
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
	char *p = in->text, *end = in->text + len; /* *end is the text's NUL */
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
		char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char *line = p;
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
		if (items_grow(in)) {
			rc = oom();
			goto done;
		}
		struct bitem *it = &in->items[in->n];
		memset(it, 0, sizeof *it);
		it->line = (uint32_t)lineno;
		if (in->jsonl) {
			memset(&in->json[in->n], 0, sizeof in->json[in->n]);
			if (parse_json_line(in, in->n, line, n))
				goto done;
		} else {
			while (*line == ' ' || *line == '\t')
				line++, n--;
			while (n && (line[n - 1] == ' ' || line[n - 1] == '\t'))
				n--;
			line[n] = '\0'; /* over the line's end, its '\r' or '\n', or a blank */
			it->question = (uint32_t)(line - in->text);
		}
		if ((rc = add_item(in, &sessions)) != EXIT_OK)
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
	for (size_t i = 0; i < sessions.cap; i++) /* open the rings: a conversation ends at its last item */
		if (sessions.slot[i])
			in->json[sessions.slot[i] - 1].next = 0;
	rc = EXIT_OK;
done:
	bindex_release(&sessions);
	return rc;
}

void binput_release(struct binput *in)
{
	free(in->text);
	buf_release(&in->spill);
	free(in->items);
	free(in->json);
	bindex_release(&in->ids);
	free(in->dbs);
	bindex_release(&in->db_index);
	memset(in, 0, sizeof *in);
}

void binput_view(const struct binput *in, int i, struct bview *out)
{
	const struct bitem_json *x = in->json ? &in->json[i] : NULL;
	out->question = bstr(in, in->items[i].question);
	out->line = (int)in->items[i].line;
	out->id = id_text(in, i, out->idbuf, &out->id_num);
	out->session = x && x->session ? bstr(in, x->session) : NULL;
	out->session_num = x ? x->session_num : 0;
	out->db = binput_db_path(in, binput_db_of(in, i));
}

int binput_head(const struct binput *in, int i)
{
	return !in->json || in->json[i].head;
}

int binput_next(const struct binput *in, int i)
{
	return in->json && in->json[i].next ? (int)in->json[i].next : -1;
}

int binput_db_of(const struct binput *in, int i)
{
	return in->json ? (int)in->json[i].db : 0;
}

const char *binput_db_path(const struct binput *in, int d)
{
	return d ? bstr(in, in->dbs[d]) : NULL;
}

/* The item whose id is text, or -1.  A text INPUT's ids are its line
 * numbers: found by bisection, without an index. */
static int find_id(const struct binput *in, const char *id)
{
	if (in->json) {
		if (!in->ids.cap)
			return -1;
		uint32_t v = *bindex_slot(in, &in->ids, id_key, id);
		return (int)v - 1;
	}
	long line = 0;
	for (const char *s = id; *s; s++) {
		if (*s < '0' || *s > '9' || (s == id && *s == '0') || s - id >= 10)
			return -1;
		line = line * 10 + (*s - '0');
	}
	int lo = 0, hi = in->n - 1;
	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;
		long l = (long)in->items[mid].line;
		if (l == line)
			return mid;
		if (l < line)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
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
	int i = find_id(in, id);
	if (i < 0)
		return EXIT_OK;
	struct bview it;
	binput_view(in, i, &it);
	if (question && strcmp(question, it.question)) {
		cli_error(
		        "%s:%d answers `%.60s` as id %s, but id %s of INPUT is `%.60s`: this output was written from "
		        "other questions; give another --out (or resume with the INPUT it was written from)",
		        out_path, lineno, question, id, id, it.question);
		return EXIT_USAGE;
	}
	if (db != ANY_DB && (db ? !it.db || strcmp(db, it.db) : it.db != NULL)) {
		cli_error(
		        "%s:%d answers id %s from %s%s%s, but INPUT now asks it of %s%s%s: this output was written for "
		        "another database; give another --out (or resume with the INPUT it was written from)",
		        out_path, lineno, id, db ? "`" : "", db ? db : "--db's database", db ? "`" : "", it.db ? "`" : "",
		        it.db ? it.db : "--db's database", it.db ? "`" : "");
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

/* 1 when the file's first len bytes could start our output: the CSV
 * header or a JSON line whose first key is "id" -- the way record()
 * writes every line.  An empty file is ours to fill. */
static int starts_ours(const char *text, size_t len, int csv)
{
	const char *want = csv ? "id,question," : "{\"id\":";
	size_t n = strlen(want);
	return !memcmp(text, want, len < n ? len : n);
}

/* 1 when text is valid UTF-8 without NUL, as every line we write. */
static int text_ours(const char *text, size_t len)
{
	size_t bad;
	return !memchr(text, '\0', len) && utf8_valid(text, len, &bad);
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
	if (n > 0 && len > 0 && (nl || len < sizeof head) && text_ours(head, len) && starts_ours(head, len, csv))
		return EXIT_OK; /* an earlier run's results: written over, as asked */
	cli_error(
	        "--out %s exists and is not a %s result file of `convbi batch`; convbi would overwrite it: give "
	        "another --out (or --resume to continue a file convbi wrote)",
	        out_path, csv ? "CSV" : "JSONL");
	return EXIT_USAGE;
}

/* The previous output, read a chunk at a time: buf[start, end) holds the
 * bytes not yet scanned, buf[0] being at file offset base.  A record must
 * fit in RESUME_RECORD_MAX bytes (a result line holds at most 1 MB of
 * rows), so the scan holds that at most, never the whole file. */
#define RESUME_CHUNK ((size_t)1 << 20)
#define RESUME_RECORD_MAX ((size_t)64 << 20)

struct reader {
	int fd;
	char *buf; /* owned, NUL-terminated at end */
	size_t cap, start, end;
	uint64_t base; /* file offset of buf[0] */
	int eof;       /* the last read found the end */
};

/* Reads more: moves the unscanned bytes to the front and fills the rest,
 * growing the buffer when one record holds most of it.  Returns 0, -1
 * when a record would pass RESUME_RECORD_MAX, or an errno value. */
static int reader_fill(struct reader *r)
{
	size_t have = r->end - r->start;
	if (r->start) {
		memmove(r->buf, r->buf + r->start, have);
		r->base += r->start;
		r->start = 0;
		r->end = have;
	}
	if (r->cap - r->end < RESUME_CHUNK / 2) {
		if (r->cap >= RESUME_RECORD_MAX)
			return -1;
		size_t cap = r->cap ? r->cap * 2 : RESUME_CHUNK;
		char *b = realloc(r->buf, cap + 1);
		if (!b)
			return ENOMEM;
		r->buf = b;
		r->cap = cap;
	}
	ssize_t n;
	while ((n = read(r->fd, r->buf + r->end, r->cap - r->end)) < 0 && errno == EINTR)
		;
	if (n < 0)
		return errno;
	r->eof = n == 0;
	r->end += (size_t)n;
	r->buf[r->end] = '\0';
	return 0;
}

static int not_our_line(const char *out_path, int lineno)
{
	cli_error("%s:%d: not a result line of `convbi batch`; remove the line or write to another --out", out_path, lineno);
	return EXIT_USAGE;
}

int resume_scan(struct binput *in, const char *out_path, int csv, int *empty)
{
	struct reader r = {-1, NULL, 0, 0, 0, 0, 0};
	mode_t mode = 0;
	int rc = EXIT_OK, lineno = 0, ours = 1;
	*empty = 1;
	int e = regfile_open(out_path, &r.fd, &mode);
	if (e == ENOENT)
		return EXIT_OK; /* nothing to resume */
	if (!e)
		e = reader_fill(&r);
	if (e) {
		cli_error("cannot read the output `%s` to resume: %s", out_path, regfile_strerror(e, mode));
		rc = EXIT_FAIL;
		goto done;
	}
	ours = starts_ours(r.buf, r.end, csv);
	while (ours && (r.start < r.end || !r.eof)) {
		size_t start = r.start, pos = r.start;
		char *id = NULL, *question = NULL, *db = NULL;
		int whole;      /* 1 complete, 0 torn (the data ends inside it), -1 malformed */
		int failed = 0; /* the line records a failure: ask it again */
		int nf = 0;
		if (csv) {
			whole = csv_record(r.buf, r.end, &pos, &id, &question, CSV_ERROR_FIELD, &failed, &nf);
		} else {
			const char *nl = memchr(r.buf + start, '\n', r.end - start);
			whole = nl != NULL;
			pos = nl ? (size_t)(nl - r.buf) + 1 : r.end;
		}
		if (whole == 0 && !r.eof) { /* the record goes on past what was read */
			if ((e = reader_fill(&r)) > 0) {
				cli_error("cannot read the output `%s` to resume: %s", out_path, strerror(e));
				rc = EXIT_FAIL;
				goto done;
			}
			if (e < 0) {
				rc = not_our_line(out_path, lineno + 1); /* longer than any line of ours */
				goto done;
			}
			continue;
		}
		/* valid UTF-8 without NUL, the torn tail too: else never cut or append to it (a database, a config ...) */
		if (!text_ours(r.buf + start, (whole == 1 ? pos : r.end) - start)) {
			free(id), free(question);
			ours = 0;
			break;
		}
		lineno++;
		if (whole == 0) /* torn: cut off below */
			break;
		r.start = pos;
		if (whole == 1 && csv && lineno == 1 && !strcmp(id, "id")) {
			free(id), free(question);
			continue; /* the header */
		}
		if (whole == 1 && csv && nf != CSV_FIELDS && nf != CSV_FIELDS_OLD)
			whole = -1;
		if (!csv) {
			if (is_blank(r.buf + start, pos - start - 1))
				continue;
			if (!(id = jsonl_id(r.buf + start, pos - start - 1, &failed, &question, &db)))
				whole = -1;
		}
		if (whole == 1)
			rc = take_answered(in, id, question, csv ? ANY_DB : db, failed, out_path, lineno);
		else /* a whole line we did not write, even the last one: never cut */
			rc = not_our_line(out_path, lineno);
		free(id), free(question), free(db);
		if (rc)
			goto done;
	}
	if (!ours) {
		cli_error(
		        "`%s` is not a %s result file of `convbi batch`; --resume only continues a file convbi wrote: "
		        "give another --out",
		        out_path, csv ? "CSV" : "JSONL");
		rc = EXIT_USAGE;
		goto done;
	}
	uint64_t keep = r.base + r.start, size = r.base + r.end;
	if (keep < size && (rc = outfile_cut_torn(out_path, (size_t)keep, (size_t)size)))
		goto done;
	*empty = keep == 0;
done:
	if (r.fd >= 0)
		close(r.fd);
	free(r.buf);
	return rc;
}
