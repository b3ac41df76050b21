/* lineedit.h -- the REPL's line source, a first-field vtable.
 *
 * Two implementations: libedit (line editing and a history file) when
 * stdin is a terminal, and plain getline() otherwise, so the REPL can be
 * driven by piping questions into it.  Tab completes the words given to
 * lineedit_set_words (a prefix match; case-insensitive).  Tests and embedders could add more
 * without touching the REPL.
 */
#ifndef CONVBI_CLI_LINEEDIT_H
#define CONVBI_CLI_LINEEDIT_H

struct line_source {
	/* The next line without its newline (caller frees), NULL at end. */
	char *(*read)(struct line_source *ls, const char *prompt);
	void (*remember)(struct line_source *ls, const char *line);
	void (*close)(struct line_source *ls);
};

/* history_file may be NULL (no persistent history). */
struct line_source *lineedit_open(int interactive, const char *history_file);

/* Words Tab completes (dot-commands, table and column names); the list
 * is copied and replaces the previous one.  Process-wide, as libedit's
 * completion is. */
void lineedit_set_words(const char *const *words, int n);

#endif
