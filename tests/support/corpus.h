/* corpus.h -- reading tests/data/hostile_sql.txt, the hostile SQL corpus
 * (its format is described at the top of that file).
 *
 * Shared by test_guard (nothing changes in the database) and test_limits
 * (every case within its time, memory and disk bounds).  No CMocka:
 * errors come back as a message.
 */
#ifndef CONVBI_TESTS_CORPUS_H
#define CONVBI_TESTS_CORPUS_H

#include <stddef.h>

struct corpus_case {
	int line;         /* 1-based line in the file */
	char kind[8];     /* "reject", "limit" or "fail" */
	char fixture[16]; /* "" = any database with the concerts tables; else the
	                      fixture the case needs ("heavy": see test_limits.c) */
	char *sql;        /* as written, owned */
};

/* Loads every case of the corpus at path.  Returns the number of cases
 * and *out (free with corpus_free), or -1 with a message in err. */
long corpus_load(const char *path, struct corpus_case **out, char *err, size_t errlen);
void corpus_free(struct corpus_case *cases, long n);

/* Expands the notation of one case: \n \t \0 \\, {{N*text}} (text repeated
 * N times; a `#` in it becomes the repetition's number, 1 to N), @DIR@
 * (dir).  Returns a malloc'd buffer (NUL-terminated; it
 * may hold NUL bytes, *len counts them), or NULL on a malformed {{...}} or
 * out of memory. */
char *corpus_expand(const char *sql, const char *dir, size_t *len);

#endif
