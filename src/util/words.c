/* words.c -- lexical words (see words.h). */
#include "util/words.h"

#include <ctype.h>
#include <string.h>

int words_is_stop(const char *w)
{
	static const char *const stop[] = {"a",    "about", "all",   "also", "an",    "and",    "any",    "are",   "as",
	                                   "at",   "be",    "by",    "can",  "did",   "do",     "does",   "each",  "every",
	                                   "find", "for",   "from",  "get",  "give",  "had",    "has",    "have",  "how",
	                                   "i",    "in",    "into",  "is",   "it",    "its",    "list",   "many",  "me",
	                                   "much", "of",    "on",    "or",   "our",   "please", "return", "show",  "than",
	                                   "that", "the",   "their", "them", "there", "these",  "they",   "this",  "those",
	                                   "to",   "us",    "was",   "we",   "were",  "what",   "when",   "where", "which",
	                                   "who",  "whom",  "whose", "why",  "with",  "you",    "your"};
	size_t lo = 0, hi = sizeof stop / sizeof stop[0]; /* sorted: a binary search, not 70 strcmp per word */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(w, stop[mid]);
		if (!c)
			return 1;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return 0;
}

static void stem(char *w)
{
	size_t n = strlen(w);
	while (n && w[n - 1] == '\'')
		w[--n] = '\0';
	if (n > 2 && w[n - 2] == '\'' && w[n - 1] == 's')
		w[n -= 2] = '\0';
	if (n > 4 && !strcmp(w + n - 3, "ies")) {
		strcpy(w + n - 3, "y");
	} else if (n > 4 && (!strcmp(w + n - 4, "sses") || !strcmp(w + n - 4, "ches") || !strcmp(w + n - 4, "shes") ||
	                     !strcmp(w + n - 3, "xes"))) {
		w[n - 2] = '\0';
	} else if (n > 3 && w[n - 1] == 's' && w[n - 2] != 's' && w[n - 2] != 'u' && w[n - 2] != 'i') {
		w[n - 1] = '\0';
	}
}

void words_split(struct words *ws, const char *s, int flags)
{
	const unsigned char *p = (const unsigned char *)s;
	int drop_stop = flags & WORDS_DROP_STOP, letters = flags & WORDS_LETTERS;
	while (p && *p && ws->n < WORDS_MAX) {
		while (*p && (letters ? !isalpha(*p) : !isalnum(*p)) && *p < 0x80)
			p++;
		if (!*p)
			break;
		char *w = ws->w[ws->n];
		size_t n = 0;
		int digits = isdigit(*p) != 0, prev_lower = 0;
		while (*p && (digits ? isdigit(*p) : (isalpha(*p) || *p >= 0x80 || *p == '\''))) {
			if (n && prev_lower && isupper(*p))
				break; /* camelCase boundary */
			if (n + 1 < WORD_MAX)
				w[n++] = (char)tolower(*p);
			prev_lower = islower(*p);
			p++;
		}
		w[n] = '\0';
		if (!digits)
			stem(w);
		if (w[0] && !((drop_stop || letters) && !digits && !w[1]) && !(drop_stop && words_is_stop(w)))
			ws->n++;
	}
}

int words_has(const struct words *ws, const char *w)
{
	for (int i = 0; i < ws->n; i++)
		if (!strcmp(ws->w[i], w))
			return 1;
	return 0;
}
