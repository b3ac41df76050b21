/* ratelimit.c -- rate-limit headers and retry hints (see ratelimit.h).
 *
 * How it works: every number is read by one scanner (scan_number) into an
 * integer part and nine fractional digits, then scaled to nanoseconds with
 * saturation at the 7-day cap, and finally rounded *up* to milliseconds --
 * waiting a fraction of a millisecond too long is harmless, calling too
 * early earns another 429.  No floating point, no strtod/strtoll (locale
 * and errno free), no signed overflow: integer parts saturate long before
 * they could wrap.
 *
 * HTTP-dates are parsed by a small cursor parser into a civil date, turned
 * into days since 1970 with the days-from-civil arithmetic (proleptic
 * Gregorian), without timegm or the C library's time zone state.
 *
 * The body scan looks for "retry after" / "try again in" anywhere in the
 * first RL_MAX_BODY_SCAN bytes (JSON-escaped or not: the phrases and the
 * numbers after them carry no characters JSON would escape).
 */
#include "http/ratelimit.h"

#include <string.h>

#define NS_PER_MS ((int64_t)1000000)
#define NS_PER_S ((int64_t)1000000000)
#define CAP_NS (RL_MAX_WAIT_MS * NS_PER_MS)
/* Integer parts above this saturate (any unit then exceeds the cap). */
#define INT_PART_SAT ((uint64_t)1 << 50)

/* ---- characters and small helpers ------------------------------------- */

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static void trim(const char **s, size_t *n)
{
	while (*n && is_ws((*s)[0])) {
		(*s)++;
		(*n)--;
	}
	while (*n && is_ws((*s)[*n - 1]))
		(*n)--;
}

/* Case-insensitive equality of s[0..n) and the lowercase literal lit. */
static int ieq(const char *s, size_t n, const char *lit)
{
	size_t l = strlen(lit);
	if (l != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (lower(s[i]) != lit[i])
			return 0;
	return 1;
}

/* ---- numbers and durations -------------------------------------------- */

struct number {
	uint64_t ip;    /* integer part, saturated at INT_PART_SAT */
	uint64_t frac9; /* first nine fractional digits, as billionths */
};

/* Reads [0-9]*[.[0-9]*] at s[*pos] with at least one digit.  Returns 1 and
 * advances *pos on success, 0 (with *pos unchanged) otherwise. */
static int scan_number(const char *s, size_t n, size_t *pos, struct number *out)
{
	size_t i = *pos;
	int digits = 0;
	out->ip = 0;
	out->frac9 = 0;
	for (; i < n && is_digit(s[i]); i++, digits++)
		if (out->ip < INT_PART_SAT)
			out->ip = out->ip * 10 + (uint64_t)(s[i] - '0');
	if (i < n && s[i] == '.') {
		uint64_t scale = NS_PER_S / 10;
		for (i++; i < n && is_digit(s[i]); i++, digits++) {
			out->frac9 += (uint64_t)(s[i] - '0') * scale;
			scale /= 10;
		}
	}
	if (!digits)
		return 0;
	*pos = i;
	return 1;
}

/* value * unit_ns, saturated at CAP_NS. */
static int64_t number_ns(const struct number *v, int64_t unit_ns)
{
	if (v->ip >= INT_PART_SAT || v->ip > (uint64_t)(CAP_NS / unit_ns))
		return CAP_NS;
	int64_t ns = (int64_t)v->ip * unit_ns;
	if (unit_ns >= NS_PER_S)
		ns += (int64_t)v->frac9 * (unit_ns / NS_PER_S);
	else
		ns += (int64_t)v->frac9 * unit_ns / NS_PER_S;
	return ns < CAP_NS ? ns : CAP_NS;
}

static int64_t ns_to_ms_up(int64_t ns)
{
	int64_t ms = ns / NS_PER_MS + (ns % NS_PER_MS != 0);
	return ms < RL_MAX_WAIT_MS ? ms : RL_MAX_WAIT_MS;
}

/* A whole (trimmed) string that is one non-negative number of unit_ns;
 * milliseconds rounded up, -1 if it is anything else. */
static int64_t parse_scaled(const char *s, size_t n, int64_t unit_ns)
{
	struct number v;
	size_t pos = 0;
	trim(&s, &n);
	if (!scan_number(s, n, &pos, &v) || pos != n)
		return -1;
	return ns_to_ms_up(number_ns(&v, unit_ns));
}

/* The unit at s[*pos] (letters, or the micro sign) in nanoseconds; 0 if it
 * is not one.  Units are case-sensitive as in Go's time.Duration ("m" is a
 * minute, not a month). */
static int64_t scan_unit(const char *s, size_t n, size_t *pos)
{
	static const struct {
		const char *name;
		int64_t ns;
	} units[] = {
	        {"ns", 1},         {"us", 1000},    {"\xC2\xB5s", 1000},  {"\xCE\xBCs", 1000},
	        {"ms", NS_PER_MS}, {"s", NS_PER_S}, {"m", 60 * NS_PER_S}, {"h", 3600 * NS_PER_S},
	};
	size_t i = *pos, j = i;
	while (j < n && (is_alpha(s[j]) || (unsigned char)s[j] >= 0x80))
		j++;
	for (size_t k = 0; k < sizeof units / sizeof units[0]; k++) {
		size_t l = strlen(units[k].name);
		if (l == j - i && memcmp(s + i, units[k].name, l) == 0) {
			*pos = j;
			return units[k].ns;
		}
	}
	return 0;
}

int64_t rl_parse_duration_ms(const char *s, size_t n)
{
	if (!s)
		return -1;
	trim(&s, &n);
	size_t pos = 0;
	int64_t total = 0;
	int parts = 0;
	while (pos < n) {
		struct number v;
		if (!scan_number(s, n, &pos, &v))
			return -1;
		int64_t unit;
		if (pos == n && parts == 0)
			unit = NS_PER_S; /* a bare number is seconds */
		else if (!(unit = scan_unit(s, n, &pos)))
			return -1;
		int64_t ns = number_ns(&v, unit);
		total = total > CAP_NS - ns ? CAP_NS : total + ns;
		parts++;
	}
	return parts ? ns_to_ms_up(total) : -1;
}

/* Digits only, saturating at RL_MAX_COUNT; -1 if not a count. */
static int64_t parse_count(const char *s, size_t n)
{
	trim(&s, &n);
	if (!n)
		return -1;
	int64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return -1;
		if (v < RL_MAX_COUNT)
			v = v * 10 + (s[i] - '0');
	}
	return v < RL_MAX_COUNT ? v : RL_MAX_COUNT;
}

/* ---- HTTP-dates --------------------------------------------------------- */

struct cursor {
	const char *s;
	size_t n, i;
};

static int at(const struct cursor *c, char ch)
{
	return c->i < c->n && c->s[c->i] == ch;
}

static int take(struct cursor *c, char ch)
{
	if (!at(c, ch))
		return 0;
	c->i++;
	return 1;
}

/* One or more spaces (asctime pads a one-digit day with a second space). */
static int take_spaces(struct cursor *c)
{
	size_t start = c->i;
	while (at(c, ' '))
		c->i++;
	return c->i > start;
}

/* Between min and max digits; their value in *out. */
static int take_int(struct cursor *c, int min, int max, int *out)
{
	int v = 0, k = 0;
	while (k < max && c->i < c->n && is_digit(c->s[c->i])) {
		v = v * 10 + (c->s[c->i++] - '0');
		k++;
	}
	if (k < min || (c->i < c->n && is_digit(c->s[c->i])))
		return 0;
	*out = v;
	return 1;
}

/* A run of letters: returns its start and length through the args. */
static int take_word(struct cursor *c, const char **w, size_t *wl)
{
	size_t start = c->i;
	while (c->i < c->n && is_alpha(c->s[c->i]))
		c->i++;
	*w = c->s + start;
	*wl = c->i - start;
	return *wl > 0;
}

static int is_day_name(const char *w, size_t wl)
{
	static const char *const days[] = {"mon",    "tue",     "wed",       "thu",      "fri",    "sat",      "sun",
	                                   "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"};
	for (size_t k = 0; k < sizeof days / sizeof days[0]; k++)
		if (ieq(w, wl, days[k]))
			return 1;
	return 0;
}

/* 1..12, or 0 for a word that is not a month abbreviation. */
static int month_of(const char *w, size_t wl)
{
	static const char *const months[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
	for (int k = 0; k < 12; k++)
		if (ieq(w, wl, months[k]))
			return k + 1;
	return 0;
}

static int take_month(struct cursor *c, int *mon)
{
	const char *w;
	size_t wl;
	return take_word(c, &w, &wl) && (*mon = month_of(w, wl)) != 0;
}

static int take_time(struct cursor *c, int *h, int *mi, int *sec)
{
	return take_int(c, 2, 2, h) && take(c, ':') && take_int(c, 2, 2, mi) && take(c, ':') && take_int(c, 2, 2, sec) &&
	       *h <= 23 && *mi <= 59 && *sec <= 60;
}

static int take_gmt(struct cursor *c)
{
	const char *w;
	size_t wl;
	return take_word(c, &w, &wl) && (ieq(w, wl, "gmt") || ieq(w, wl, "utc"));
}

static int is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
	static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian, y >= 1).  Counts in
 * 400-year eras of 146097 days, with years starting in March so that the
 * leap day falls at the end of the year. */
static int64_t days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	int64_t era = y / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int64_t rl_parse_http_date_ms(const char *s, size_t n)
{
	if (!s)
		return -1;
	trim(&s, &n);
	struct cursor c = {s, n, 0};
	const char *w;
	size_t wl;
	int y = 0, mon = 0, d = 0, h = 0, mi = 0, sec = 0;
	if (!take_word(&c, &w, &wl) || !is_day_name(w, wl))
		return -1;
	if (take(&c, ',')) {
		if (!take_spaces(&c) || !take_int(&c, 1, 2, &d))
			return -1;
		if (take(&c, ' ')) { /* IMF-fixdate */
			if (!take_month(&c, &mon) || !take(&c, ' ') || !take_int(&c, 4, 4, &y))
				return -1;
		} else if (take(&c, '-')) { /* RFC 850 */
			if (!take_month(&c, &mon) || !take(&c, '-'))
				return -1;
			size_t before = c.i;
			if (!take_int(&c, 2, 4, &y) || c.i - before == 3)
				return -1;
			if (c.i - before == 2)
				y += y < 70 ? 2000 : 1900;
		} else {
			return -1;
		}
		if (!take(&c, ' ') || !take_time(&c, &h, &mi, &sec) || !take(&c, ' ') || !take_gmt(&c))
			return -1;
	} else { /* asctime */
		if (!take(&c, ' ') || !take_month(&c, &mon) || !take_spaces(&c) || !take_int(&c, 1, 2, &d) || !take(&c, ' ') ||
		    !take_time(&c, &h, &mi, &sec) || !take_spaces(&c) || !take_int(&c, 4, 4, &y))
			return -1;
	}
	if (c.i != c.n || y < 1970 || y > 9999 || d < 1 || d > days_in_month(y, mon))
		return -1;
	int64_t days = days_from_civil(y, mon, d);
	return (days * 86400 + (int64_t)h * 3600 + mi * 60 + sec) * 1000;
}

/* ---- headers ------------------------------------------------------------ */

void rl_init(struct rl_info *r)
{
	r->retry_after_ms = -1;
	r->x_ms_retry_after_ms = -1;
	r->retry_after = -1;
	r->reset_requests_ms = -1;
	r->reset_tokens_ms = -1;
	r->remaining_requests = -1;
	r->remaining_tokens = -1;
	r->limit_requests = -1;
	r->limit_tokens = -1;
}

/* retry-after: delta-seconds if it starts like a number, else a date. */
static int64_t parse_retry_after(const char *v, size_t n, int64_t now_wall_ms)
{
	trim(&v, &n);
	if (n && (is_digit(v[0]) || v[0] == '.'))
		return parse_scaled(v, n, NS_PER_S);
	int64_t when = rl_parse_http_date_ms(v, n);
	if (when < 0 || now_wall_ms < 0)
		return -1;
	if (when <= now_wall_ms)
		return 0;
	int64_t wait = when - now_wall_ms;
	return wait < RL_MAX_WAIT_MS ? wait : RL_MAX_WAIT_MS;
}

static void set_if(int64_t *field, int64_t v)
{
	if (v >= 0)
		*field = v;
}

void rl_feed_header(struct rl_info *r, const char *name, size_t nlen, const char *value, size_t vlen, int64_t now_wall_ms)
{
	if (!name || !value)
		return;
	trim(&name, &nlen);
	if (ieq(name, nlen, "retry-after-ms"))
		set_if(&r->retry_after_ms, parse_scaled(value, vlen, NS_PER_MS));
	else if (ieq(name, nlen, "x-ms-retry-after-ms"))
		set_if(&r->x_ms_retry_after_ms, parse_scaled(value, vlen, NS_PER_MS));
	else if (ieq(name, nlen, "retry-after"))
		set_if(&r->retry_after, parse_retry_after(value, vlen, now_wall_ms));
	else if (ieq(name, nlen, "x-ratelimit-reset-requests"))
		set_if(&r->reset_requests_ms, rl_parse_duration_ms(value, vlen));
	else if (ieq(name, nlen, "x-ratelimit-reset-tokens"))
		set_if(&r->reset_tokens_ms, rl_parse_duration_ms(value, vlen));
	else if (ieq(name, nlen, "x-ratelimit-remaining-requests"))
		set_if(&r->remaining_requests, parse_count(value, vlen));
	else if (ieq(name, nlen, "x-ratelimit-remaining-tokens"))
		set_if(&r->remaining_tokens, parse_count(value, vlen));
	else if (ieq(name, nlen, "x-ratelimit-limit-requests"))
		set_if(&r->limit_requests, parse_count(value, vlen));
	else if (ieq(name, nlen, "x-ratelimit-limit-tokens"))
		set_if(&r->limit_tokens, parse_count(value, vlen));
}

/* ---- the message text ---------------------------------------------------- */

/* First case-insensitive occurrence of the lowercase literal lit in
 * s[from..n), or n. */
static size_t ci_find(const char *s, size_t n, size_t from, const char *lit)
{
	size_t l = strlen(lit);
	for (size_t i = from; i + l <= n; i++) {
		size_t k = 0;
		while (k < l && lower(s[i + k]) == lit[k])
			k++;
		if (k == l)
			return i;
	}
	return n;
}

/* A spelled-out unit word after a number ("seconds", "ms", "minute"). */
static int64_t unit_word_ns(const char *w, size_t wl)
{
	static const struct {
		const char *word;
		int64_t ns;
	} words[] = {
	        {"ms", NS_PER_MS},          {"msec", NS_PER_MS},         {"msecs", NS_PER_MS},
	        {"millisecond", NS_PER_MS}, {"milliseconds", NS_PER_MS}, {"s", NS_PER_S},
	        {"sec", NS_PER_S},          {"secs", NS_PER_S},          {"second", NS_PER_S},
	        {"seconds", NS_PER_S},      {"min", 60 * NS_PER_S},      {"mins", 60 * NS_PER_S},
	        {"minute", 60 * NS_PER_S},  {"minutes", 60 * NS_PER_S},  {"h", 3600 * NS_PER_S},
	        {"hr", 3600 * NS_PER_S},    {"hrs", 3600 * NS_PER_S},    {"hour", 3600 * NS_PER_S},
	        {"hours", 3600 * NS_PER_S},
	};
	for (size_t k = 0; k < sizeof words / sizeof words[0]; k++)
		if (ieq(w, wl, words[k].word))
			return words[k].ns;
	return 0;
}

/* The wait written at s[pos..): "6 seconds", "1.5 seconds", "20s",
 * "1m30s", "250ms".  -1 if what follows is not a number with a unit. */
static int64_t hint_at(const char *s, size_t n, size_t pos)
{
	while (pos < n && (s[pos] == ' ' || s[pos] == '\t'))
		pos++;
	size_t start = pos;
	struct number v;
	if (!scan_number(s, n, &pos, &v))
		return -1;
	if (pos < n && is_alpha(s[pos])) {
		/* compact form: the token up to a non-alphanumeric byte */
		size_t end = pos;
		while (end < n && (is_alpha(s[end]) || is_digit(s[end]) || s[end] == '.'))
			end++;
		while (end > pos && s[end - 1] == '.')
			end--;
		char tok[64];
		if (end - start < sizeof tok) {
			for (size_t i = start; i < end; i++)
				tok[i - start] = lower(s[i]);
			int64_t ms = rl_parse_duration_ms(tok, end - start);
			if (ms >= 0)
				return ms;
		}
	}
	while (pos < n && (s[pos] == ' ' || s[pos] == '\t'))
		pos++;
	size_t w = pos;
	while (pos < n && is_alpha(s[pos]))
		pos++;
	int64_t unit = unit_word_ns(s + w, pos - w);
	return unit ? ns_to_ms_up(number_ns(&v, unit)) : -1;
}

static int64_t message_hint(const char *body, size_t len)
{
	static const char *const phrases[] = {"retry after", "try again in"};
	if (!body)
		return -1;
	if (len > RL_MAX_BODY_SCAN)
		len = RL_MAX_BODY_SCAN;
	size_t best = len;
	int64_t best_ms = -1;
	for (size_t k = 0; k < sizeof phrases / sizeof phrases[0]; k++) {
		size_t l = strlen(phrases[k]);
		for (size_t at_ = ci_find(body, len, 0, phrases[k]); at_ < best; at_ = ci_find(body, len, at_ + 1, phrases[k])) {
			int64_t ms = hint_at(body, len, at_ + l);
			if (ms >= 0) {
				best = at_;
				best_ms = ms;
				break;
			}
		}
	}
	return best_ms;
}

int64_t rl_retry_after_ms(const struct rl_info *r, const char *body, size_t body_len, enum rl_source *source_out)
{
	const struct {
		int64_t v;
		enum rl_source src;
	} order[] = {
	        {r->retry_after_ms, RL_SOURCE_RETRY_AFTER_MS}, {r->x_ms_retry_after_ms, RL_SOURCE_X_MS_RETRY_AFTER_MS},
	        {r->retry_after, RL_SOURCE_RETRY_AFTER},       {r->reset_requests_ms, RL_SOURCE_RESET_REQUESTS},
	        {r->reset_tokens_ms, RL_SOURCE_RESET_TOKENS},
	};
	enum rl_source src = RL_SOURCE_NONE;
	int64_t ms = -1;
	for (size_t k = 0; k < sizeof order / sizeof order[0] && ms < 0; k++) {
		if (order[k].v >= 0) {
			ms = order[k].v < RL_MAX_WAIT_MS ? order[k].v : RL_MAX_WAIT_MS;
			src = order[k].src;
		}
	}
	if (ms < 0 && (ms = message_hint(body, body_len)) >= 0)
		src = RL_SOURCE_MESSAGE;
	if (source_out)
		*source_out = src;
	return ms;
}

const char *rl_source_name(enum rl_source s)
{
	switch (s) {
	case RL_SOURCE_RETRY_AFTER_MS: return "retry-after-ms";
	case RL_SOURCE_X_MS_RETRY_AFTER_MS: return "x-ms-retry-after-ms";
	case RL_SOURCE_RETRY_AFTER: return "retry-after";
	case RL_SOURCE_RESET_REQUESTS: return "x-ratelimit-reset-requests";
	case RL_SOURCE_RESET_TOKENS: return "x-ratelimit-reset-tokens";
	case RL_SOURCE_MESSAGE: return "message";
	case RL_SOURCE_NONE: break;
	}
	return "none";
}
