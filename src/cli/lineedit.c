/* lineedit.c -- libedit and plain-stdin line sources (see lineedit.h).
 *
 * libedit's readline-compatible API is used: readline(), add_history(),
 * read_history()/write_history() on the history file.  The history file
 * is written after each line so a crash loses nothing.
 */
#include "cli/lineedit.h"

#include <editline/readline.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct edit_source {
	struct line_source base;
	char *history_file;  /* owned, may be NULL */
};

static char *edit_read(struct line_source *ls, const char *prompt)
{
	(void)ls;
	return readline(prompt);
}

static void edit_remember(struct line_source *ls, const char *line)
{
	struct edit_source *es = (struct edit_source *)ls;
	add_history(line);
	if (es->history_file)
		write_history(es->history_file);
}

static void edit_close(struct line_source *ls)
{
	struct edit_source *es = (struct edit_source *)ls;
	free(es->history_file);
	free(es);
}

static char *plain_read(struct line_source *ls, const char *prompt)
{
	(void)ls;
	(void)prompt;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, stdin);
	if (n < 0) {
		free(line);
		return NULL;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

static void plain_remember(struct line_source *ls, const char *line)
{
	(void)ls;
	(void)line;
}

static void plain_close(struct line_source *ls)
{
	free(ls);
}

struct line_source *lineedit_open(int interactive, const char *history_file)
{
	if (!interactive) {
		struct line_source *ls = calloc(1, sizeof *ls);
		if (ls)
			*ls = (struct line_source){plain_read, plain_remember, plain_close};
		return ls;
	}
	struct edit_source *es = calloc(1, sizeof *es);
	if (!es)
		return NULL;
	es->base = (struct line_source){edit_read, edit_remember, edit_close};
	if (history_file && (es->history_file = strdup(history_file)))
		read_history(es->history_file);
	return &es->base;
}
