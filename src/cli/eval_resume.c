/* eval_resume.c -- `convbi eval --resume`: continue a run from its --out.
 *
 * A run stopped part-way (Ctrl-C, --max-cost, a crash) leaves in --out one
 * line per finished question (eval.c's question_line).  eval_resume_load
 * reads them back: each complete line whose "index" names a question of
 * this selection gives that question its verdict, SQL, error, time,
 * tokens, calls and cost, so the report covers it and the run does not ask it again --
 * except a model_failure, which is asked again (as batch --resume asks its
 * failures again: the cause may have been a spent budget or an outage).  A
 * torn last line (a crash in the middle of a write) is cut off.  A file
 * that does not start as ours is refused: --resume never appends to a
 * file convbi did not write.
 *
 * New lines are appended in dataset order among themselves; at the end
 * eval_resume_sort rewrites the file in dataset order (the last line of an
 * index wins), written aside and renamed, so that two runs still diff line
 * by line.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/batch.h"
#include "cli/eval.h"
#include "cli/jsonl.h"
#include "util/regfile.h"

static const char eval_line_start[] = "{\"index\":";

/* The question of dataset position index (q[].index ascends), or -1. */
static int question_at(const struct dataset *d, long index)
{
	int lo = 0, hi = d->n - 1;
	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;
		if (d->q[mid].index == index)
			return mid;
		if (d->q[mid].index < index)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

static char *str_dup(const cJSON *o, const char *key)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
	return s && *s ? strdup(s) : NULL;
}

/* Takes one line's outcome into its question; 0 when the line is not one
 * of ours. */
static int take_line(struct dataset *d, unsigned char *kept, const char *line, size_t len)
{
	cJSON *o = cJSON_ParseWithLength(line, len);
	const cJSON *index = cJSON_GetObjectItemCaseSensitive(o, "index");
	const char *verdict = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "verdict"));
	int v = -1;
	for (int k = V_CORRECT; verdict && k < V_COUNT; k++)
		if (!strcmp(verdict, verdict_names[k]))
			v = k;
	if (!cJSON_IsNumber(index) || v < 0) {
		cJSON_Delete(o);
		return 0;
	}
	int i = question_at(d, (long)index->valuedouble);
	if (i >= 0 && v != V_MODEL) {
		struct eq *q = &d->q[i];
		q->verdict = v;
		free(q->pred);
		free(q->error);
		q->pred = str_dup(o, "pred_sql");
		q->error = str_dup(o, "error");
		q->truncated = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "truncated"));
		const cJSON *ms = cJSON_GetObjectItemCaseSensitive(o, "elapsed_ms");
		const cJSON *cost = cJSON_GetObjectItemCaseSensitive(o, "cost_usd");
		q->elapsed_ms = cJSON_IsNumber(ms) ? (long long)ms->valuedouble : 0;
		q->cost_usd = cJSON_IsNumber(cost) ? cost->valuedouble : 0;
		const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(o, "tokens");
		const cJSON *calls = cJSON_GetObjectItemCaseSensitive(o, "calls");
		q->tokens = cJSON_IsNumber(tokens) ? (long long)tokens->valuedouble : 0;
		q->calls = cJSON_IsNumber(calls) ? (int)calls->valuedouble : 0;
		kept[i] = 1;
	}
	cJSON_Delete(o);
	return 1;
}

int eval_resume_load(struct dataset *d, const char *path, unsigned char *kept, int *nkept)
{
	char *text = NULL;
	size_t len = 0, pos = 0;
	int lineno = 0;
	*nkept = 0;
	int rc = bulk_resume_read(path, "--out", &text, &len);
	if (rc || !text)
		return rc;
	size_t n = strlen(eval_line_start);
	if (len && (memchr(text, '\0', len) || memcmp(text, eval_line_start, len < n ? len : n))) {
		cli_error(
		        "`%s` is not a result file of `convbi eval`; --resume only continues a file convbi wrote: give another --out",
		        path);
		free(text);
		return EXIT_USAGE;
	}
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		lineno++;
		if (!nl)
			break; /* torn: cut below */
		size_t start = pos;
		pos = (size_t)(nl - text) + 1;
		if (!take_line(d, kept, text + start, pos - start - 1)) {
			cli_error("%s:%d: not a result line of `convbi eval`; remove the line or write to another --out", path,
			          lineno);
			free(text);
			return EXIT_USAGE;
		}
	}
	if (pos < len && outfile_cut_torn(path, pos, len)) {
		free(text);
		return EXIT_FAIL;
	}
	for (int i = 0; i < d->n; i++)
		*nkept += kept[i];
	free(text);
	return EXIT_OK;
}

struct line {
	long index;
	size_t at, len; /* into the file's text, newline included */
	int order;      /* position in the file: the later of two lines wins */
};

static int by_index(const void *x, const void *y)
{
	const struct line *a = x, *b = y;
	if (a->index != b->index)
		return a->index < b->index ? -1 : 1;
	return a->order - b->order;
}

int eval_resume_sort(const char *path)
{
	char *text = NULL;
	size_t len = 0, nlines = 0;
	mode_t mode = 0;
	int e = regfile_read(path, INPUT_FILE_MAX_BYTES, &text, &len, &mode);
	if (e)
		return e;
	for (size_t i = 0; i < len; i++)
		nlines += text[i] == '\n';
	struct line *v = calloc(nlines ? nlines : 1, sizeof *v);
	char tmp[4200];
	FILE *f = NULL;
	if (!v) {
		free(text);
		return ENOMEM;
	}
	size_t k = 0;
	for (size_t pos = 0; pos < len && k < nlines;) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		cJSON *o = cJSON_ParseWithLength(text + pos, (size_t)(nl - text) - pos);
		const cJSON *index = cJSON_GetObjectItemCaseSensitive(o, "index");
		v[k] = (struct line){cJSON_IsNumber(index) ? (long)index->valuedouble : -1, pos, (size_t)(nl - text) + 1 - pos,
		                     (int)k};
		cJSON_Delete(o);
		k++;
		pos = (size_t)(nl - text) + 1;
	}
	qsort(v, k, sizeof *v, by_index);
	snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
	e = (f = fopen(tmp, "w")) ? 0 : errno;
	for (size_t i = 0; !e && i < k; i++)
		if ((i + 1 == k || v[i + 1].index != v[i].index) && fwrite(text + v[i].at, 1, v[i].len, f) != v[i].len)
			e = errno ? errno : EIO;
	if (f && fclose(f) && !e)
		e = errno;
	if (!e && rename(tmp, path))
		e = errno;
	if (e && f)
		unlink(tmp);
	free(v);
	free(text);
	return e;
}
