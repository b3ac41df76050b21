/* words.h -- lexical words of a text, for relevance without a model.
 *
 * A word is a run of letters (ASCII letters and any non-ASCII byte) or of
 * digits, lower-cased, with plural and possessive endings taken off
 * ("countries" -> "country", "boxes" -> "box", "singer's" -> "singer").
 * Identifiers split at '_' and camelCase.  Used by the business notes and
 * the example selector to compare a question with sections and examples.
 */
#ifndef CONVBI_UTIL_WORDS_H
#define CONVBI_UTIL_WORDS_H

#include <stddef.h>

#define WORDS_MAX 128 /* words kept of one text */
#define WORD_MAX 32   /* bytes kept of one word */

struct words {
	char w[WORDS_MAX][WORD_MAX];
	int n;
};

#define WORDS_DROP_STOP 1 /* leave out stop words ("the", "of", "how", ...) and one-letter words */
#define WORDS_LETTERS 2   /* runs of digits separate words and are not words; words of one letter are dropped */

/* Appends the words of s to ws (until WORDS_MAX); flags are WORDS_* bits. */
void words_split(struct words *ws, const char *s, int flags);

/* 1 when the lower-case word w is a stop word. */
int words_is_stop(const char *w);

/* 1 when ws holds w. */
int words_has(const struct words *ws, const char *w);

#endif
