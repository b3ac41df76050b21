/* text.c -- UTF-8 repair, cutting and display width (see text.h).
 *
 * Decoding is util/utf8's strict decoder.  The width table is a short list of ranges, not
 * a full Unicode database: enough for Latin, Greek, Cyrillic, CJK, Hangul
 * and common emoji to line up in an aligned table.
 */
#include "db/text.h"

#include "convbi/convbi.h"
#include "util/utf8.h"

static const char REPLACEMENT[] = "\xEF\xBF\xBD"; /* U+FFFD */

int text_add_utf8(struct buf *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t old = out->len, i = 0, run = 0;
	int rc = CONVBI_OK;

	while (i < len && !rc) {
		uint32_t cp;
		size_t n = p[i] ? utf8_decode(p + i, len - i, &cp) : 0;
		if (n) {
			i += n;
			run += n;
			continue;
		}
		/* flush the valid run before the bad byte, then replace it */
		rc = buf_add(out, s + i - run, run);
		if (!rc)
			rc = buf_add(out, REPLACEMENT, 3);
		run = 0;
		i++;
	}
	if (!rc)
		rc = buf_add(out, s + i - run, run);
	if (rc) {
		out->len = old;
		if (out->data)
			out->data[old] = '\0';
	}
	return rc;
}

int text_is_utf8(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = p[i] ? utf8_decode(p + i, len - i, &cp) : 0;
		if (!n)
			return 0;
		i += n;
	}
	return 1;
}

size_t text_cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	size_t n = max;
	/* step back over continuation bytes to the start of a character */
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

size_t text_prefix_chars(const char *s, size_t len, size_t chars)
{
	size_t i = 0;
	while (i < len && chars > 0) {
		i++;
		while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
			i++;
		chars--;
	}
	return i;
}

struct range {
	uint32_t lo, hi;
};

static const struct range zero_width[] = {
        {0x0300, 0x036F}, {0x0483, 0x0489}, {0x0591, 0x05BD}, {0x0610, 0x061A}, {0x064B, 0x065F}, {0x0E31, 0x0E31},
        {0x0E34, 0x0E3A}, {0x0E47, 0x0E4E}, {0x1AB0, 0x1AFF}, {0x1DC0, 0x1DFF}, {0x200B, 0x200F}, {0x2028, 0x202E},
        {0x2060, 0x2064}, {0x20D0, 0x20FF}, {0xFE00, 0xFE0F}, {0xFE20, 0xFE2F}, {0xFEFF, 0xFEFF}, {0xE0100, 0xE01EF},
};

static const struct range wide[] = {
        {0x1100, 0x115F}, {0x2E80, 0x303E},   {0x3041, 0x33FF},   {0x3400, 0x4DBF},   {0x4E00, 0x9FFF},
        {0xA000, 0xA4CF}, {0xAC00, 0xD7A3},   {0xF900, 0xFAFF},   {0xFE30, 0xFE4F},   {0xFF00, 0xFF60},
        {0xFFE0, 0xFFE6}, {0x1F300, 0x1F64F}, {0x1F900, 0x1F9FF}, {0x20000, 0x2FFFD}, {0x30000, 0x3FFFD},
};

static int in_ranges(uint32_t cp, const struct range *r, size_t n)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (cp < r[mid].lo)
			hi = mid;
		else if (cp > r[mid].hi)
			lo = mid + 1;
		else
			return 1;
	}
	return 0;
}

int text_cp_width(uint32_t cp)
{
	if (cp < 0x300)
		return 1;
	if (in_ranges(cp, zero_width, sizeof zero_width / sizeof zero_width[0]))
		return 0;
	if (in_ranges(cp, wide, sizeof wide / sizeof wide[0]))
		return 2;
	return 1;
}

size_t text_width(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t w = 0;
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = utf8_decode(p + i, len - i, &cp);
		if (!n) { /* not expected for repaired text: count the byte */
			w++;
			i++;
			continue;
		}
		w += (size_t)text_cp_width(cp);
		i += n;
	}
	return w;
}
