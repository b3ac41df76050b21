/* term.c -- terminal facts, the spinner line and the pager (see term.h). */
#include "cli/term.h"

#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "util/utf8.h"

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

/* ---- text from the model or the database ------------------------------------ */

/* The length a UTF-8 lead byte announces (0: not a lead byte). */
static size_t utf8_len(unsigned char c)
{
	return c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
}

/* Writes s[0..len) made safe; returns how many bytes at the end were not
 * written because they start a character cut there (only when hold). */
static size_t put_safe(FILE *f, const unsigned char *s, size_t len, int hold)
{
	size_t i = 0, start = 0; /* s[start..i) is plain text not yet written */
	while (i < len) {
		unsigned char c = s[i];
		if (c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7F) || (c == '\r' && i + 1 < len && s[i + 1] == '\n')) {
			i++;
			continue;
		}
		uint32_t cp = 0;
		size_t n = c >= 0x80 ? utf8_decode(s + i, len - i, &cp) : 0;
		if (n && cp >= 0xA0) {
			i += n;
			continue;
		}
		fwrite(s + start, 1, i - start, f);
		if (!n && hold && utf8_len(c) > len - i) {
			size_t k = i + 1;
			while (k < len && (s[k] & 0xC0) == 0x80)
				k++;
			if (k == len)
				return len - i; /* a character cut at the end: the next piece ends it */
		}
		if (c == '\r')
			fputs("\\r", f);
		else
			fprintf(f, "\\x%02x", n ? (unsigned)cp : c); /* C0, DEL, a C1 control, a stray byte */
		i += n ? n : 1;
		start = i;
	}
	fwrite(s + start, 1, i - start, f);
	return 0;
}

void term_put(FILE *f, const char *s, size_t len)
{
	put_safe(f, (const unsigned char *)s, len, 0);
}

void term_vprintf(FILE *f, const char *fmt, va_list ap)
{
	char small[512], *text = small;
	va_list again;
	va_copy(again, ap);
	int n = vsnprintf(small, sizeof small, fmt, ap);
	if (n >= 0 && (size_t)n >= sizeof small && (text = malloc((size_t)n + 1)))
		vsnprintf(text, (size_t)n + 1, fmt, again);
	va_end(again);
	if (n < 0)
		return;
	if (!text) {
		text = small; /* no memory: the first part is still said */
		n = (int)strlen(small);
	}
	term_put(f, text, (size_t)n);
	if (text != small)
		free(text);
}

void term_printf(FILE *f, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	term_vprintf(f, fmt, ap);
	va_end(ap);
}

void term_text_put(struct term_text *t, FILE *f, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned char *joined = NULL;
	if (t->nheld && (joined = malloc(t->nheld + len))) { /* the held start, then this piece */
		memcpy(joined, t->held, t->nheld);
		memcpy(joined + t->nheld, s, len);
		p = joined;
		len += t->nheld;
	} else if (t->nheld) {
		put_safe(f, t->held, t->nheld, 0); /* no memory: shown as bytes */
	}
	t->nheld = 0;
	size_t rest = put_safe(f, p, len, 1);
	memcpy(t->held, p + len - rest, rest);
	t->nheld = rest;
	free(joined);
}

void term_text_end(struct term_text *t, FILE *f)
{
	put_safe(f, t->held, t->nheld, 0);
	t->nheld = 0;
}
