/* tmpl.h -- prompt templates: load prompts/<name>.txt, check, render slots.
 *
 * A template is UTF-8 text with three kinds of tag:
 *   {{slot}}               the slot's value (names are [a-z0-9_]+)
 *   {{#slot}} ... {{/slot}} a section, kept only when the slot's value is
 *                          non-empty; sections nest, but not inside one of
 *                          the same name
 *   {{{{                   a literal "{{"
 * Any other "{{" is an error, so a typo never reaches the model.  A section
 * tag alone on its line (only blanks around it) takes the whole line with
 * it, so that optional paragraphs leave no blank lines behind.
 *
 * tmpl_set_load reads and checks every template once, at engine open;
 * rendering is then pure and cannot meet an unknown tag.  Errors are
 * CONVBI_ETEMPLATE with a one-line message naming the file, the line and
 * the fix.  This module reads files only in tmpl_set_load.
 */
#ifndef CONVBI_PROMPT_TMPL_H
#define CONVBI_PROMPT_TMPL_H

#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/limits.h"

/* A template file may hold at most this many bytes. */
/* Longest slot name, bytes. */
#define TMPL_MAX_NAME 64
/* Deepest section nesting. */
#define TMPL_MAX_DEPTH 16
/* Appended to a value cut at its slot's max_bytes. */
#define TMPL_TRUNCATED_MARK "\n\xE2\x80\xA6[truncated]"

/* One template to load: prompts/<name>.txt, whose tags may only name the
 * listed slots. */
struct tmpl_spec {
	const char *name;         /* [a-z0-9_]+, also the file's base name */
	const char *const *slots; /* allowed slot names */
	size_t nslots;
};

/* One value to render.  A slot the template uses but the caller leaves out
 * renders empty. */
struct tmpl_slot {
	const char *name;  /* slot name */
	const char *value; /* NUL-terminated UTF-8; NULL renders empty */
	size_t max_bytes;  /* 0 = no cap; longer values are cut on a UTF-8
	                       boundary and TMPL_TRUNCATED_MARK appended */
};

struct tmpl_set;

/* Loads <dir>/<name>.txt for each of the n specs and checks each with
 * tmpl_check against its slot list.  On success *out (caller frees with
 * tmpl_set_free) holds copies of all texts.  Errors: CONVBI_ETEMPLATE for a
 * missing or unreadable file (the message names the path), a file over
 * TMPL_MAX_BYTES, invalid UTF-8 or a bad tag (the message is
 * "<path>:<line>: <problem>; <fix>"); CONVBI_EINVAL for a spec name that is
 * not [a-z0-9_]+; CONVBI_ENOMEM.  On failure *out is NULL. */
int tmpl_set_load(struct tmpl_set **out, const char *dir, const struct tmpl_spec *specs, size_t n, struct err *err);

/* Frees a set and its texts.  Accepts NULL. */
void tmpl_set_free(struct tmpl_set *s);

/* The text of template `name`, or NULL if the set has none of that name.
 * Borrowed from s. */
const char *tmpl_text(const struct tmpl_set *s, const char *name);

/* Appends text with its tags expanded from the n slots to out.  Returns
 * CONVBI_OK; CONVBI_ETEMPLATE for a malformed tag or an unbalanced section
 * (the message gives the template line); CONVBI_ETOOBIG if out's cap is
 * reached; CONVBI_ENOMEM.  On failure out is released (buf_release). */
int tmpl_render(struct buf *out, const char *text, const struct tmpl_slot *slots, size_t n, struct err *err);

/* Checks len bytes of template text: size at most TMPL_MAX_BYTES, valid
 * UTF-8 without NUL bytes, well-formed tags, balanced sections, and every
 * slot named in `allowed` (allowed == NULL accepts any well-formed name).
 * Returns CONVBI_OK or CONVBI_ETEMPLATE with "line <n>: <problem>; <fix>". */
int tmpl_check(const char *text, size_t len, const char *const *allowed, size_t nallowed, struct err *err);

#endif
