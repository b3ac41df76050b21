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
 */
#ifndef CONVBI_CLI_TERM_H
#define CONVBI_CLI_TERM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SPINNER_DELAY_MS 300   /* quiet calls show no spinner at all */
#define SPINNER_FRAME_MS 100   /* redraws at most this often */

struct term {
	int out_tty;    /* stdout is a terminal */
	int err_tty;    /* stderr is a terminal */
	int color;      /* ANSI styles allowed on stdout */
	int err_color;  /* ANSI styles allowed on stderr */
};

void term_probe(struct term *t);
/* The window's columns and rows (80 x 24 when unknown; $COLUMNS and
 * $LINES win when set). */
void term_size(int *cols, int *rows);

struct spinner {
	int on;              /* stderr is a terminal */
	int drawn;           /* a spinner line is on screen */
	int64_t start_ms;    /* the question started (monotonic) */
	int64_t last_ms;     /* last drawn */
	int frame;
	char stage[32];      /* the stage running */
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

/* Counts the lines of text. */
size_t term_lines(const char *text, size_t len);

#endif
