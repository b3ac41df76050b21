/* sqltext.c -- SQL comments and quoted identifiers (see sqltext.h). */
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

int sql_quote_ident(struct buf *b, const char *name)
{
	int rc = buf_putc(b, '"');
	for (const char *p = name; *p && !rc; p++)
		rc = *p == '"' ? buf_puts(b, "\"\"") : buf_putc(b, *p);
	return rc ? rc : buf_putc(b, '"');
}

int sql_column_values(struct buf *b, const char *table, const char *column)
{
	int rc = buf_puts(b, "(SELECT ");
	if (!rc)
		rc = sql_quote_ident(b, column);
	if (!rc)
		rc = buf_puts(b, " AS v FROM ");
	if (!rc)
		rc = sql_quote_ident(b, table);
	return rc ? rc : buf_putc(b, ')');
}

int sql_text_rowids(struct buf *b, const char *table, const char *column)
{
	int rc = buf_puts(b, "SELECT rowid FROM ");
	if (!rc)
		rc = sql_quote_ident(b, table);
	if (!rc)
		rc = buf_puts(b, " WHERE typeof(");
	if (!rc)
		rc = sql_quote_ident(b, column);
	return rc ? rc : buf_puts(b, ") = 'text'");
}
