/* chart_term.c -- the REPL's `.chart on`: the answer's chart drawn in the
 * terminal from the same spec the API chooses (convbi_answer_chart_json),
 * so the terminal and a BI page never disagree about what to draw.
 *
 *   bar, arc   one line per category: the label, a bar of eighth blocks
 *              (▏▎▍▌▋▊▉█) scaled to the largest value, the value (and the
 *              share of the whole for arc); a second category joins the label
 *   line       a sparkline (▁▂▃▄▅▆▇█) per series, with the first and last
 *              x and the range
 *   point      a 48 x 12 grid of dots
 * When the terminal is not UTF-8 (LC_ALL / LC_CTYPE / LANG) the same
 * shapes are drawn in plain ASCII ('#' bars, " .:-=+*#" levels, '*' dots).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/chart_term.h"
#include "cli/term.h"

#define BAR_WIDTH 40
#define LABEL_MAX_CHARS 24
#define GROUPS_MAX 200
#define GRID_W 48
#define GRID_H 12

int chart_term_utf8(void)
{
	static const char *const vars[] = {"LC_ALL", "LC_CTYPE", "LANG"};
	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
		const char *v = getenv(vars[i]);
		if (v && *v)
			return strcasestr(v, "utf-8") || strcasestr(v, "utf8");
	}
	return 0;
}

/* The result column a channel names (the spec escapes '.', '[', ']', '\'). */
static void channel_field(char *out, size_t cap, const cJSON *enc, const char *channel)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(enc, channel), "field");
	size_t k = 0;
	out[0] = '\0';
	if (!cJSON_IsString(f))
		return;
	for (const char *p = f->valuestring; *p && k + 1 < cap; p++) {
		if (*p == '\\' && p[1])
			p++;
		out[k++] = *p;
	}
	out[k] = '\0';
}

static const char *channel_type(const cJSON *enc, const char *channel)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(enc, channel), "type");
	return cJSON_IsString(t) ? t->valuestring : "";
}

/* A value's text: strings as they are, numbers in %g. */
static void value_text(char *out, size_t cap, const cJSON *v)
{
	if (cJSON_IsString(v))
		snprintf(out, cap, "%s", v->valuestring);
	else if (cJSON_IsNumber(v))
		snprintf(out, cap, "%g", v->valuedouble);
	else
		snprintf(out, cap, "NULL");
}

/* Prints s cut or padded to width display characters (UTF-8 aware). */
static void put_label(FILE *f, const char *s, int width)
{
	int n = 0;
	const char *p = s;
	for (; *p && n < width; n++) {
		const char *q = p + 1;
		while (*q && ((unsigned char)*q & 0xC0) == 0x80)
			q++;
		term_put(f, p, (size_t)(q - p));
		p = q;
	}
	for (; n < width; n++)
		fputc(' ', f);
}

static void put_bar(FILE *f, double frac, int utf8)
{
	static const char *const eighths[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
	if (frac < 0 || !isfinite(frac))
		frac = 0;
	int units = (int)lround(frac * BAR_WIDTH * 8), cells = units / 8;
	for (int i = 0; i < units / 8; i++)
		fputs(utf8 ? "█" : "#", f);
	if (units % 8 && (utf8 || units % 8 >= 4)) {
		fputs(utf8 ? eighths[units % 8] : "#", f);
		cells++;
	}
	for (; cells < BAR_WIDTH; cells++) /* the values line up */
		fputc(' ', f);
}

struct group {
	char label[128];
	double value;
};

/* Sums y by label (x, plus the second category when there is one). */
static int group_rows(struct group *g, const cJSON *values, const char *cat, const char *cat2, const char *num)
{
	int n = 0;
	const cJSON *row;
	cJSON_ArrayForEach(row, values)
	{
		char a[96], b[96], label[128];
		value_text(a, sizeof a, cJSON_GetObjectItemCaseSensitive(row, cat));
		if (cat2 && *cat2) {
			value_text(b, sizeof b, cJSON_GetObjectItemCaseSensitive(row, cat2));
			snprintf(label, sizeof label, "%s / %s", a, b);
		} else {
			snprintf(label, sizeof label, "%s", a);
		}
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, num);
		double x = cJSON_IsNumber(v) ? v->valuedouble : 0;
		int i = 0;
		while (i < n && strcmp(g[i].label, label))
			i++;
		if (i == n) {
			if (n == GROUPS_MAX)
				continue;
			snprintf(g[n].label, sizeof g[n].label, "%s", label);
			g[n++].value = 0;
		}
		g[i].value += x;
	}
	return n;
}

static void draw_bars(FILE *f, const cJSON *values, const cJSON *enc, int arc, int utf8)
{
	char cat[128], cat2[128], num[128];
	int horizontal = !strcmp(channel_type(enc, "y"), "nominal");
	channel_field(cat, sizeof cat, enc, arc ? "color" : horizontal ? "y" : "x");
	channel_field(num, sizeof num, enc, arc ? "theta" : horizontal ? "x" : "y");
	channel_field(cat2, sizeof cat2, enc, arc ? "" : "color");
	struct group *g = calloc(GROUPS_MAX, sizeof *g);
	if (!g)
		return;
	int n = group_rows(g, values, cat, cat2, num);
	double max = 0, total = 0;
	int width = 0;
	for (int i = 0; i < n; i++) {
		max = fmax(max, fabs(g[i].value));
		total += g[i].value;
		int w = 0;
		for (const char *p = g[i].label; *p; p++)
			w += ((unsigned char)*p & 0xC0) != 0x80;
		width = w > width ? w : width;
	}
	width = width > LABEL_MAX_CHARS ? LABEL_MAX_CHARS : width;
	for (int i = 0; i < n; i++) {
		put_label(f, g[i].label, width);
		fputs(" ", f);
		put_bar(f, max > 0 ? fabs(g[i].value) / max : 0, utf8);
		fprintf(f, " %g", g[i].value);
		if (arc && total > 0)
			fprintf(f, " (%.0f%%)", 100 * g[i].value / total);
		fputc('\n', f);
	}
	free(g);
}

/* Row r's number in column y when r belongs to the series named key
 * (column series; "" = one series); NULL otherwise. */
static const cJSON *series_value(const cJSON *r, const char *series, const char *key, const char *y)
{
	char k[96] = "";
	if (*series)
		value_text(k, sizeof k, cJSON_GetObjectItemCaseSensitive(r, series));
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, y);
	return strcmp(k, key) || !cJSON_IsNumber(v) ? NULL : v;
}

static void draw_lines(FILE *f, const cJSON *values, const cJSON *enc, int utf8)
{
	static const char *const blocks[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
	static const char ascii[] = " .:-=+*#";
	char x[128], y[128], series[128];
	channel_field(x, sizeof x, enc, "x");
	channel_field(y, sizeof y, enc, "y");
	channel_field(series, sizeof series, enc, "color");
	char done[GROUPS_MAX][96];
	int ndone = 0;
	const cJSON *row;
	cJSON_ArrayForEach(row, values)
	{
		char key[96] = "";
		if (*series)
			value_text(key, sizeof key, cJSON_GetObjectItemCaseSensitive(row, series));
		int seen = 0;
		for (int i = 0; i < ndone && !seen; i++)
			seen = !strcmp(done[i], key);
		if (seen || ndone == GROUPS_MAX)
			continue;
		snprintf(done[ndone++], sizeof done[0], "%s", key);
		double lo = INFINITY, hi = -INFINITY;
		char first[96] = "", last[96] = "";
		const cJSON *r;
		cJSON_ArrayForEach(r, values)
		{
			const cJSON *v = series_value(r, series, key, y);
			if (!v)
				continue;
			lo = fmin(lo, v->valuedouble);
			hi = fmax(hi, v->valuedouble);
		}
		if (*series)
			term_printf(f, "%s: ", key);
		cJSON_ArrayForEach(r, values)
		{
			const cJSON *v = series_value(r, series, key, y);
			if (!v)
				continue;
			int level = hi > lo ? (int)((v->valuedouble - lo) / (hi - lo) * 7.999) : 3;
			if (utf8)
				fputs(blocks[level], f);
			else
				fputc(ascii[level], f);
			value_text(*first ? last : first, sizeof first, cJSON_GetObjectItemCaseSensitive(r, x));
		}
		term_printf(f, "  %s .. %s, %g to %g\n", first, *last ? last : first, lo, hi);
	}
}

static void draw_points(FILE *f, const cJSON *values, const cJSON *enc, int utf8)
{
	char x[128], y[128];
	channel_field(x, sizeof x, enc, "x");
	channel_field(y, sizeof y, enc, "y");
	double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
	const cJSON *r;
	cJSON_ArrayForEach(r, values)
	{
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(r, x), *b = cJSON_GetObjectItemCaseSensitive(r, y);
		if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b))
			continue;
		x0 = fmin(x0, a->valuedouble), x1 = fmax(x1, a->valuedouble);
		y0 = fmin(y0, b->valuedouble), y1 = fmax(y1, b->valuedouble);
	}
	if (!isfinite(x0))
		return;
	char grid[GRID_H][GRID_W];
	memset(grid, 0, sizeof grid);
	cJSON_ArrayForEach(r, values)
	{
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(r, x), *b = cJSON_GetObjectItemCaseSensitive(r, y);
		if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b))
			continue;
		int c = x1 > x0 ? (int)((a->valuedouble - x0) / (x1 - x0) * (GRID_W - 1)) : 0;
		int l = y1 > y0 ? (int)((b->valuedouble - y0) / (y1 - y0) * (GRID_H - 1)) : 0;
		grid[GRID_H - 1 - l][c] = 1;
	}
	term_printf(f, "%s %g to %g\n", y, y0, y1);
	for (int l = 0; l < GRID_H; l++) {
		fputs(utf8 ? "│" : "|", f);
		for (int c = 0; c < GRID_W; c++)
			fputs(grid[l][c] ? (utf8 ? "•" : "*") : " ", f);
		fputc('\n', f);
	}
	fputs(utf8 ? "└" : "+", f);
	for (int c = 0; c < GRID_W; c++)
		fputs(utf8 ? "─" : "-", f);
	term_printf(f, "\n %s %g to %g\n", x, x0, x1);
}

int chart_term_print(FILE *f, const convbi_answer *a, int utf8)
{
	char *json = NULL;
	int rc = convbi_answer_chart_json(a, &json);
	if (rc || !json) {
		convbi_free(json);
		return rc;
	}
	cJSON *spec = cJSON_Parse(json);
	convbi_free(json);
	const cJSON *values = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(spec, "data"), "values");
	const cJSON *mark = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(spec, "mark"), "type");
	const cJSON *enc = cJSON_GetObjectItemCaseSensitive(spec, "encoding");
	const char *m = cJSON_IsString(mark) ? mark->valuestring : "";
	if (!strcmp(m, "bar") || !strcmp(m, "arc"))
		draw_bars(f, values, enc, !strcmp(m, "arc"), utf8);
	else if (!strcmp(m, "line") || !strcmp(m, "area"))
		draw_lines(f, values, enc, utf8);
	else if (!strcmp(m, "point"))
		draw_points(f, values, enc, utf8);
	cJSON_Delete(spec);
	return spec ? CONVBI_OK : CONVBI_ENOMEM;
}
