/* notes.c -- business notes: loading and choosing sections (see notes.h). */
#include "prompt/notes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "convbi/convbi.h"
#include "util/alloc.h"
#include "util/regfile.h"
#include "util/utf8.h"
#include "util/words.h"

static int isalnum_ascii(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int notes_load(char **out, const char *path, struct err *err)
{
	*out = NULL;
	char *text = NULL;
	size_t len = 0;
	mode_t mode = 0;
	int e = regfile_read(path, NOTES_MAX_BYTES, &text, &len, &mode);
	if (e == EFBIG)
		return err_set(err, CONVBI_EINVAL, "notes file `%s` is over %zu bytes; keep the notes shorter", path,
		               NOTES_MAX_BYTES);
	if (e == ENOMEM)
		return err_code(err, CONVBI_ENOMEM);
	if (e)
		return err_set(err, CONVBI_EINVAL, "notes file `%s` cannot be read (%s); check the path given to --notes", path,
		               regfile_strerror(e, mode));
	if (memchr(text, '\0', len) || !utf8_valid(text, len, NULL)) {
		free(text);
		return err_set(err, CONVBI_EINVAL, "notes file `%s` is not UTF-8 text; save it as UTF-8", path);
	}
	*out = text;
	return CONVBI_OK;
}

struct section {
	size_t off, len; /* in the notes text */
	double score;
	int kept;
};

/* 1 when the section text names table as a whole word. */
static int names_table(const char *s, size_t len, const char *table)
{
	size_t n = strlen(table);
	for (size_t i = 0; n && i + n <= len; i++) {
		if (strncasecmp(s + i, table, n))
			continue;
		int l = i == 0 || !(isalnum_ascii(s[i - 1]) || s[i - 1] == '_');
		int r = i + n == len || !(isalnum_ascii(s[i + n]) || s[i + n] == '_');
		if (l && r)
			return 1;
	}
	return 0;
}

static double score_section(const char *s, size_t len, const struct words *q, const char *const *tables, size_t nt)
{
	char *text = xmalloc(len + 1);
	if (!text)
		return 0;
	memcpy(text, s, len);
	text[len] = '\0';
	char *eol = strchr(text, '\n');
	struct words head = {.n = 0}, body = {.n = 0};
	if (text[0] == '#') {
		if (eol)
			*eol = '\0';
		words_split(&head, text, 1);
		if (eol)
			*eol = '\n';
	}
	words_split(&body, text, 1);
	double score = 0;
	for (int i = 0; i < q->n; i++) {
		if (words_has(&head, q->w[i]))
			score += 2;
		else if (words_has(&body, q->w[i]))
			score += 1;
	}
	for (size_t t = 0; t < nt && score > 0; t++) { /* a table both name: the section is about it */
		struct words tw = {.n = 0};
		words_split(&tw, tables[t], 1);
		int asked = 0;
		for (int i = 0; i < tw.n && !asked; i++)
			asked = words_has(q, tw.w[i]);
		if (asked && names_table(s, len, tables[t]))
			score += 1;
	}
	free(text);
	return score;
}

int notes_select(struct buf *out, const char *notes, const char *question, const char *const *tables, size_t ntables,
                 size_t budget)
{
	struct section sec[NOTES_MAX_SECTIONS];
	int n = 0;
	size_t len = strlen(notes);
	for (size_t i = 0; i < len && n < NOTES_MAX_SECTIONS;) {
		size_t j = i + 1; /* the next line that starts with '#' ends this section */
		while (j < len && !(notes[j - 1] == '\n' && notes[j] == '#'))
			j++;
		if (j > len)
			j = len;
		sec[n++] = (struct section){i, j - i, 0, 0};
		i = j;
	}
	struct words q = {.n = 0};
	words_split(&q, question ? question : "", 1);
	for (int i = 0; i < n; i++)
		sec[i].score = score_section(notes + sec[i].off, sec[i].len, &q, tables, ntables);
	size_t used = 0;
	for (;;) { /* best first while it fits */
		int best = -1;
		for (int i = 0; i < n; i++)
			if (!sec[i].kept && sec[i].score > 0 && (best < 0 || sec[i].score > sec[best].score))
				best = i;
		if (best < 0)
			break;
		sec[best].kept = used + sec[best].len + 1 <= budget ? 1 : -1;
		if (sec[best].kept > 0)
			used += sec[best].len + 1;
	}
	int rc = CONVBI_OK;
	for (int i = 0; i < n && !rc; i++) {
		if (sec[i].kept <= 0)
			continue;
		const char *s = notes + sec[i].off;
		size_t l = sec[i].len;
		while (l && (s[l - 1] == '\n' || s[l - 1] == ' '))
			l--;
		rc = buf_add(out, s, l);
		if (!rc)
			rc = buf_putc(out, '\n');
	}
	return rc;
}
