/* extract.h -- tolerant parsing of what a model wrote back.
 *
 * Models wrap answers in Markdown fences, prose, JSON or all three.  These
 * functions dig out the part an agent needs -- the SQL, a JSON object, a
 * classification label -- and leave judging it to others: extract_sql does
 * not validate statements (a reply with two statements passes through, so
 * that the SQL gate can say so).  Pure: bytes in, bytes out.
 *
 * Every input is capped at EXTRACT_MAX_INPUT bytes; replies with NUL bytes
 * are refused (they are never SQL or JSON, and would be cut short by any C
 * string API downstream).  Patterns are PCRE2, compiled once per process
 * on first use (thread-safe; a failed compile is retried on the next call).
 */
#ifndef CONVBI_FLOW_EXTRACT_H
#define CONVBI_FLOW_EXTRACT_H

#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"

/* The largest model reply these functions read, bytes. */
#define EXTRACT_MAX_INPUT ((size_t)4 << 20)
/* How many '{' one call tries as the start of a JSON object. */
#define EXTRACT_MAX_JSON_TRIES 64

/* Appends the SQL found in the reply text[0..len) to out, taken from the
 * first of:
 *   1. the first ```sql fence (also sqlite, postgresql, mysql, ...);
 *   2. the first ``` fence whose content starts like SQL (SELECT, WITH ...
 *      AS (, VALUES (, after comments);
 *   3. the "sql" string field of the first JSON object having one (bare
 *      or in a ```json fence);
 *   4. bare text from the first SELECT/WITH/VALUES at a line start or after
 *      "SQL:"/"Query:", up to the end, a closing fence, or a blank line (or
 *      a line ending in ';') followed by prose.
 * A leading "sql" line, leading whitespace and trailing ';' and whitespace
 * are stripped.  Returns CONVBI_OK; CONVBI_EPROTOCOL when the reply has no
 * SQL or holds a NUL byte; CONVBI_ETOOBIG over EXTRACT_MAX_INPUT or out's
 * cap; CONVBI_EINVAL for NULL text with a non-zero len; CONVBI_ENOMEM.  On
 * failure out is released and err says why. */
int extract_sql(struct buf *out, const char *text, size_t len, struct err *err);

/* Appends the first JSON object in text[0..len) to out: the first '{' that
 * begins a balanced object (braces inside strings and escapes are not
 * counted) which parses as JSON.  A ```json fence is searched first, then
 * the whole text.  Returns CONVBI_OK, CONVBI_EPROTOCOL if there is none (or
 * the text holds a NUL byte), CONVBI_ETOOBIG, CONVBI_EINVAL (NULL text with
 * a non-zero len), CONVBI_ENOMEM; on failure out is released. */
int extract_json_object(struct buf *out, const char *text, size_t len);

/* The index in labels[0..n) of the label that occurs first in text as a
 * whole word, compared case-insensitively (ASCII), where '_' and bytes
 * >= 0x80 count as word characters.  When two labels start at the same
 * place the longer wins.  NULL or empty labels are skipped; only the first
 * EXTRACT_MAX_INPUT bytes are searched.  -1 if none occurs. */
int extract_label(const char *text, size_t len, const char *const *labels, size_t n);

#endif
