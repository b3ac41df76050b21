/* notes.h -- business notes: the sections of a Markdown file a question needs.
 *
 * A notes file (`--notes FILE`, else DB.notes.md beside the database) says
 * what words mean in one database: what "revenue", an "active customer" or
 * a "return rate" are.  It is split into sections at its headings (`#`,
 * `##`, ...; text before the first heading is a section too).  A section
 * scores by the question's words found in it (a word of its heading counts
 * twice) and by the tables it names that the question names too; the
 * sections that score go into the SQL prompt's {{notes}}, best first while
 * they fit the budget, in file order.  Pure: bytes in, bytes out.
 */
#ifndef CONVBI_PROMPT_NOTES_H
#define CONVBI_PROMPT_NOTES_H

#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/limits.h"

#define NOTES_MAX_SECTIONS 256

/* Reads the notes file at path into *out (caller frees): at most
 * NOTES_MAX_BYTES of UTF-8.  Errors: CONVBI_EINVAL (missing or not
 * UTF-8: the message names the file and the fix), EIO (a read error),
 * ETOOBIG, ENOMEM. */
int notes_load(char **out, const char *path, struct err *err);

/* Appends to out the sections of notes relevant to question, at most
 * budget bytes; tables (n names) are the database's tables.  Appends
 * nothing when no section is relevant.  Returns CONVBI_OK, ENOMEM or
 * ETOOBIG from out. */
int notes_select(struct buf *out, const char *notes, const char *question, const char *const *tables, size_t ntables,
                 size_t budget);

#endif
