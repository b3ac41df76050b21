/* sqltext.c -- SQL comments (see sqltext.h). */
#include "db/sqltext.h"

size_t sql_comment_end(const char *s, size_t len, size_t i)
{
	if (i + 1 >= len)
		return i;
	if (s[i] == '-' && s[i + 1] == '-') {
		while (i < len && s[i] != '\n')
			i++;
		return i;
	}
	if (s[i] == '/' && s[i + 1] == '*') {
		i += 2;
		while (i < len && !(s[i] == '*' && i + 1 < len && s[i + 1] == '/'))
			i++;
		return i < len ? i + 2 : len;
	}
	return i;
}
