/* term.h -- what the CLI knows about the terminal, and the two things it
 * draws there: the spinner line and the pager.
 *
 * Facts are read once (term_probe): whether stdout and stderr are
 * terminals, whether colours are allowed (stdout a terminal and NO_COLOR
 * unset or empty, https://no-color.org), and the window size (re-read on
 * every term_size call, so a resized window is followed).
 *
 * The spinner is one line on stderr, redrawn in place while a question is
 * slow ("⠹ sql 2.4 s"); it appears only on a terminal, only after
 * SPINNER_DELAY_MS, and is erased before anything else is printed.
 *
 * The pager: text longer than the screen goes through $PAGER (default
 * `less -FRX`) when stdout is a terminal; the pager's exit or a closed
 * pipe never ends the CLI (SIGPIPE is ignored while it runs).
 *
 * Text the CLI did not write itself -- the model's answer, reply, SQL and
 * explanation, names and values from the database, error messages that
 * quote them -- is printed through term_put/term_printf, the one
 * sanitizer: C0 control characters other than newline, tab and CR LF, DEL and
 * the C1 controls (U+0080..U+009F) are written visibly (\r, \x1b,
 * \x9b), as is every byte that is not UTF-8 (\xHH), so that no escape sequence
 * from a model or a database reaches the terminal.  Table cells are
 * escaped the same way by the library's renderer.
 */
#ifndef CONVBI_CLI_TERM_H
#define CONVBI_CLI_TERM_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SPINNER_DELAY_MS 300 /* quiet calls show no spinner at all */
#define SPINNER_FRAME_MS 100 /* redraws at most this often */

struct term {
	int out_tty;   /* stdout is a terminal */
	int err_tty;   /* stderr is a terminal */
	int color;     /* ANSI styles allowed on stdout */
	int err_color; /* ANSI styles allowed on stderr */
};

void term_probe(struct term *t);
/* The window's columns and rows (80 x 24 when unknown; $COLUMNS and
 * $LINES win when set). */
void term_size(int *cols, int *rows);

struct spinner {
	int on;           /* stderr is a terminal */
	int drawn;        /* a spinner line is on screen */
	int64_t start_ms; /* the question started (monotonic) */
	int64_t last_ms;  /* last drawn */
	int frame;
	char stage[32]; /* the stage running */
};

void spinner_start(struct spinner *s, int on);
void spinner_stage(struct spinner *s, const char *stage);
/* Redraws when due. */
void spinner_tick(struct spinner *s);
/* Erases the line (before any other output). */
void spinner_clear(struct spinner *s);

/* Writes text to stdout, through the pager when `page` is set, stdout is
 * a terminal and the text has more lines than the screen. */
void term_page(const char *text, size_t len, int page);

/* ---- text from the model or the database ------------------------------------ */

/* Writes len bytes of s to f with control characters made visible (see
 * above). */
void term_put(FILE *f, const char *s, size_t len);
/* printf through term_put; the format's own newlines and tabs stay. */
void term_printf(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void term_vprintf(FILE *f, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* A text that arrives in pieces (streamed tokens): a UTF-8 character cut
 * at the end of one piece is held until the next. */
struct term_text {
	unsigned char held[4]; /* the start of a cut character */
	size_t nheld;
};
void term_text_put(struct term_text *t, FILE *f, const char *s, size_t len);
/* Writes what is held (as \xHH: the character never ended). */
void term_text_end(struct term_text *t, FILE *f);

/* Counts the lines of text. */
size_t term_lines(const char *text, size_t len);

#endif
