/* term.c -- terminal facts, the spinner line and the pager (see term.h). */
#include "cli/term.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void term_probe(struct term *t)
{
	const char *nc = getenv("NO_COLOR");
	int color_ok = !(nc && *nc);
	const char *tt = getenv("TERM");
	if (tt && !strcmp(tt, "dumb"))
		color_ok = 0;
	t->out_tty = isatty(1);
	t->err_tty = isatty(2);
	t->color = t->out_tty && color_ok;
	t->err_color = t->err_tty && color_ok;
}

static int env_int(const char *name)
{
	const char *v = getenv(name);
	int n = v ? atoi(v) : 0;
	return n > 0 && n < 100000 ? n : 0;
}

void term_size(int *cols, int *rows)
{
	struct winsize ws;
	*cols = 80;
	*rows = 24;
	if (ioctl(1, TIOCGWINSZ, &ws) == 0 || ioctl(2, TIOCGWINSZ, &ws) == 0) {
		if (ws.ws_col > 0)
			*cols = ws.ws_col;
		if (ws.ws_row > 0)
			*rows = ws.ws_row;
	}
	if (env_int("COLUMNS"))
		*cols = env_int("COLUMNS");
	if (env_int("LINES"))
		*rows = env_int("LINES");
}

/* ---- spinner -------------------------------------------------------------- */

static const char *const frames[] = {"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"};

void spinner_start(struct spinner *s, int on)
{
	memset(s, 0, sizeof *s);
	s->on = on;
	s->start_ms = mono_ms();
}

void spinner_stage(struct spinner *s, const char *stage)
{
	snprintf(s->stage, sizeof s->stage, "%s", stage ? stage : "");
	spinner_tick(s);
}

void spinner_tick(struct spinner *s)
{
	if (!s->on)
		return;
	int64_t now = mono_ms();
	if (now - s->start_ms < SPINNER_DELAY_MS || now - s->last_ms < SPINNER_FRAME_MS)
		return;
	s->last_ms = now;
	s->frame = (s->frame + 1) % (int)(sizeof frames / sizeof frames[0]);
	fprintf(stderr, "\r\033[K%s %s %.1f s  (Ctrl-C cancels)", frames[s->frame], s->stage,
	        (double)(now - s->start_ms) / 1000.0);
	fflush(stderr);
	s->drawn = 1;
}

void spinner_clear(struct spinner *s)
{
	if (!s->drawn)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
	s->drawn = 0;
}

/* ---- pager ------------------------------------------------------------------ */

size_t term_lines(const char *text, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += text[i] == '\n';
	return n + (len && text[len - 1] != '\n');
}

void term_page(const char *text, size_t len, int page)
{
	int cols, rows;
	term_size(&cols, &rows);
	const char *pager = getenv("PAGER");
	if (!pager || !*pager)
		pager = "less -FRX";
	if (!page || !isatty(1) || term_lines(text, len) < (size_t)rows) {
		fwrite(text, 1, len, stdout);
		fflush(stdout);
		return;
	}
	fflush(stdout);
	struct sigaction ign, old;
	memset(&ign, 0, sizeof ign);
	ign.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &ign, &old);
	FILE *p = popen(pager, "w");
	if (!p) {
		fwrite(text, 1, len, stdout);
	} else {
		fwrite(text, 1, len, p);
		pclose(p);
	}
	sigaction(SIGPIPE, &old, NULL);
	fflush(stdout);
}
