/* lineedit.c -- libedit and plain-stdin line sources (see lineedit.h).
 *
 * libedit's readline-compatible API is used: readline(), add_history(),
 * read_history()/write_history() on the history file.  The history file
 * is written after each line so a crash loses nothing.  The caller has
 * checked that the file is a history file (userfile_history_what); a file
 * of plain lines (GNU readline's format) is read line by line so that no
 * line is lost when it is written back in libedit's format.  libedit's
 * write_history() makes the file it writes private (fchmod 0600): it
 * writes a file aside, which then gets the existing file's mode and is
 * renamed over it, so a user's file is never chmod-ed or left half
 * written.
 */
#include "cli/lineedit.h"

#include <editline/readline.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define HISTORY_COOKIE "_HiStOrY_V2_" /* the first line of libedit's history files */

static char **words; /* owned: what Tab completes */
static int nwords;

void lineedit_set_words(const char *const *list, int n)
{
	for (int i = 0; i < nwords; i++)
		free(words[i]);
	free(words);
	words = NULL;
	nwords = 0;
	if (n <= 0 || !(words = calloc((size_t)n, sizeof *words)))
		return;
	for (int i = 0; i < n; i++)
		if ((words[nwords] = strdup(list[i])))
			nwords++;
}

/* libedit calls this with state 0, then 1, 2 ... until it returns NULL. */
static char *complete_word(const char *text, int state)
{
	static int next;
	if (!state)
		next = 0;
	size_t n = strlen(text);
	while (next < nwords) {
		const char *w = words[next++];
		if (!strncasecmp(w, text, n))
			return strdup(w);
	}
	return NULL;
}

static char **complete(const char *text, int start, int end)
{
	(void)start;
	(void)end;
	rl_attempted_completion_over = 1; /* never fall back to file names */
	return rl_completion_matches(text, complete_word);
}

struct edit_source {
	struct line_source base;
	char *history_file; /* owned, may be NULL */
};

static char *edit_read(struct line_source *ls, const char *prompt)
{
	(void)ls;
	return readline(prompt);
}

/* Writes the history aside and renames it over the file, which keeps its
 * mode (a new one stays private).  A failure leaves the file as it was. */
static void save_history(const char *path)
{
	struct stat st;
	int existed = stat(path, &st) == 0;
	size_t n = strlen(path) + sizeof ".tmpXXXXXX";
	char *tmp = malloc(n);
	if (!tmp)
		return;
	snprintf(tmp, n, "%s.tmpXXXXXX", path);
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		if (write_history(tmp) != 0 || (existed && chmod(tmp, st.st_mode & 07777) != 0) || rename(tmp, path) != 0)
			unlink(tmp);
	}
	free(tmp);
}

static void edit_remember(struct line_source *ls, const char *line)
{
	struct edit_source *es = (struct edit_source *)ls;
	add_history(line);
	if (es->history_file)
		save_history(es->history_file);
}

/* Reads the history file: libedit's own format, or plain lines. */
static void load_history(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len = getline(&line, &cap, f);
	if (len >= 0 && !strncmp(line, HISTORY_COOKIE, sizeof HISTORY_COOKIE - 1)) {
		read_history(path);
	} else {
		for (; len >= 0; len = getline(&line, &cap, f)) {
			while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
				line[--len] = '\0';
			if (len)
				add_history(line);
		}
	}
	free(line);
	fclose(f);
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
	rl_attempted_completion_function = complete;
	rl_basic_word_break_characters = " \t\n\"'`@$><=;|&{(,";
	/* through a symbolic link: the file it names is written, the link stays */
	if (history_file && *history_file && !(es->history_file = realpath(history_file, NULL)) && errno == ENOENT)
		es->history_file = strdup(history_file);
	if (es->history_file)
		load_history(es->history_file);
	return &es->base;
}
