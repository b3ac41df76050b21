/* tmpl.c -- prompt template loading, checking and rendering (see tmpl.h).
 *
 * How it works: one walker serves both tmpl_check and tmpl_render.  It
 * copies text up to the next "{{", parses the tag there, and keeps a stack
 * of open sections; while inside a section whose slot is empty it still
 * parses (so that errors are found either way) but emits nothing.  Check
 * mode has no output and validates names against the allowed list; render
 * mode looks values up in the slots.  Because load runs the same walker,
 * a loaded template renders without ETEMPLATE whatever the values.
 *
 * Standalone section tags: when "{{#x}}" or "{{/x}}" is the only thing on
 * its line apart from spaces and tabs, the text before it is cut back to
 * the line start and the walker resumes after the line ending, so the tag
 * line disappears from the output.
 *
 * Only tmpl_set_load touches the file system.
 */
#include "prompt/tmpl.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "convbi/convbi.h"
#include "util/alloc.h"
#include "util/regfile.h"
#include "util/utf8.h"

struct tmpl_item {
	char *name; /* owned */
	char *text; /* owned, NUL-terminated */
};

struct tmpl_set {
	struct tmpl_item *items; /* owned array of n */
	size_t n;
};

/* ---- the walker ---------------------------------------------------------- */

enum tag_kind { TAG_LITERAL, TAG_SLOT, TAG_OPEN, TAG_CLOSE };

struct tag {
	enum tag_kind kind;
	const char *name; /* points into the text */
	size_t nlen;
	size_t end; /* offset just past the tag */
};

struct section {
	const char *name;
	size_t nlen;
	size_t pos; /* offset of its {{#name}} */
};

struct walker {
	const char *text;
	size_t len;
	/* check mode */
	int check_names;            /* validate names against allowed */
	const char *const *allowed; /* NULL = any name */
	size_t nallowed;
	/* render mode */
	struct buf *out; /* NULL in check mode */
	const struct tmpl_slot *slots;
	size_t nslots;
	/* messages */
	const char *where; /* file path, or NULL for "line N" */
	const char *tname; /* template name, or NULL */
	struct err *err;
};

static int is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

static size_t line_of(const char *text, size_t pos)
{
	size_t line = 1;
	for (size_t i = 0; i < pos; i++)
		line += text[i] == '\n';
	return line;
}

/* Sets err to "<where>:<line>: <msg>" (or "line <line>: <msg>"). */
__attribute__((format(printf, 3, 4))) static int fail(const struct walker *w, size_t pos, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	size_t line = line_of(w->text, pos);
	if (w->where)
		return err_set(w->err, CONVBI_ETEMPLATE, "%s:%zu: %s", w->where, line, msg);
	return err_set(w->err, CONVBI_ETEMPLATE, "line %zu: %s", line, msg);
}

/* Up to 24 bytes from pos, printable ASCII only, for a message. */
static void snippet(const char *text, size_t len, size_t pos, char *out, size_t outsz)
{
	size_t k = 0;
	for (size_t i = pos; i < len && k + 1 < outsz && k < 24 && text[i] != '\n'; i++) {
		unsigned char c = (unsigned char)text[i];
		out[k++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	out[k] = '\0';
}

/* Parses the tag at pos (text[pos..pos+2) == "{{"). */
static int parse_tag(const struct walker *w, size_t pos, struct tag *t)
{
	const char *s = w->text;
	size_t len = w->len, i = pos + 2;
	if (i + 1 < len && s[i] == '{' && s[i + 1] == '{') {
		t->kind = TAG_LITERAL;
		t->end = pos + 4;
		return CONVBI_OK;
	}
	t->kind = TAG_SLOT;
	if (i < len && (s[i] == '#' || s[i] == '/')) {
		t->kind = s[i] == '#' ? TAG_OPEN : TAG_CLOSE;
		i++;
	}
	size_t start = i;
	while (i < len && is_name_char(s[i]) && i - start <= TMPL_MAX_NAME)
		i++;
	char near[32];
	snippet(s, len, pos, near, sizeof near);
	if (i - start > TMPL_MAX_NAME)
		return fail(w, pos, "placeholder name longer than %d bytes near \"%s\"; shorten it", TMPL_MAX_NAME, near);
	if (i == start || i + 1 >= len || s[i] != '}' || s[i + 1] != '}')
		return fail(w, pos,
		            "\"%s\" is not a placeholder; write {{name}} with a name of [a-z0-9_], "
		            "or {{{{ for a literal {{",
		            near);
	t->name = s + start;
	t->nlen = i - start;
	t->end = i + 2;
	return CONVBI_OK;
}

/* If the section tag [pos, end) stands alone on its line, widens it to the
 * whole line (*from = line start, *to = after the line ending). */
static int standalone(const char *s, size_t len, size_t pos, size_t end, size_t *from, size_t *to)
{
	size_t a = pos;
	while (a > 0 && (s[a - 1] == ' ' || s[a - 1] == '\t'))
		a--;
	if (a > 0 && s[a - 1] != '\n')
		return 0;
	size_t b = end;
	while (b < len && (s[b] == ' ' || s[b] == '\t'))
		b++;
	if (b < len && s[b] == '\r' && b + 1 < len && s[b + 1] == '\n')
		b += 2;
	else if (b < len && s[b] == '\n')
		b++;
	else if (b < len)
		return 0;
	*from = a;
	*to = b;
	return 1;
}

/* Levenshtein distance of two short names (each at most TMPL_MAX_NAME). */
static size_t distance(const char *a, size_t al, const char *b, size_t bl)
{
	size_t row[TMPL_MAX_NAME + 2];
	if (al > TMPL_MAX_NAME || bl > TMPL_MAX_NAME)
		return (size_t)-1;
	for (size_t j = 0; j <= bl; j++)
		row[j] = j;
	for (size_t i = 1; i <= al; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= bl; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[bl];
}

/* The unknown-placeholder error, with a suggestion and the allowed list. */
static int unknown_name(const struct walker *w, size_t pos, const struct tag *t)
{
	char list[320] = "", hint[96] = "";
	size_t used = 0, best = (size_t)-1, bi = 0;
	for (size_t k = 0; k < w->nallowed; k++) {
		const char *a = w->allowed[k];
		int n = snprintf(list + used, sizeof list - used, "%s{{%s}}", k ? ", " : "", a);
		if (n < 0 || (size_t)n >= sizeof list - used) {
			snprintf(list + used, sizeof list - used, ", ...");
			break;
		}
		used += (size_t)n;
	}
	for (size_t k = 0; k < w->nallowed; k++) {
		size_t d = distance(t->name, t->nlen, w->allowed[k], strlen(w->allowed[k]));
		if (d < best) {
			best = d;
			bi = k;
		}
	}
	if (best <= 2)
		snprintf(hint, sizeof hint, "did you mean {{%s}}? ", w->allowed[bi]);
	const char *sigil = t->kind == TAG_OPEN ? "#" : t->kind == TAG_CLOSE ? "/" : "";
	char who[TMPL_MAX_NAME + 32] = "this template";
	if (w->tname)
		snprintf(who, sizeof who, "the %.*s template", TMPL_MAX_NAME, w->tname);
	if (!w->nallowed)
		return fail(w, pos,
		            "unknown placeholder {{%s%.*s}}; %s takes no placeholders, remove "
		            "it",
		            sigil, (int)t->nlen, t->name, who);
	return fail(w, pos, "unknown placeholder {{%s%.*s}}; %s%s accepts %s", sigil, (int)t->nlen, t->name, hint, who, list);
}

static int name_allowed(const struct walker *w, const struct tag *t)
{
	if (!w->allowed)
		return 1;
	for (size_t k = 0; k < w->nallowed; k++)
		if (strlen(w->allowed[k]) == t->nlen && memcmp(w->allowed[k], t->name, t->nlen) == 0)
			return 1;
	return 0;
}

static const struct tmpl_slot *find_slot(const struct walker *w, const struct tag *t)
{
	for (size_t k = 0; k < w->nslots; k++) {
		const char *n = w->slots[k].name;
		if (n && strlen(n) == t->nlen && memcmp(n, t->name, t->nlen) == 0)
			return &w->slots[k];
	}
	return NULL;
}

static int emit(const struct walker *w, const char *s, size_t n)
{
	if (!w->out || !n)
		return CONVBI_OK;
	int rc = buf_add(w->out, s, n);
	if (rc == CONVBI_ETOOBIG)
		return err_set(w->err, rc,
		               "the rendered prompt exceeds its %zu-byte cap; shorten the "
		               "inputs or raise the cap",
		               w->out->max);
	return rc ? err_code(w->err, rc) : CONVBI_OK;
}

/* A slot's value, cut on a UTF-8 boundary at max_bytes. */
static int emit_value(const struct walker *w, const struct tmpl_slot *slot)
{
	if (!slot || !slot->value)
		return CONVBI_OK;
	size_t n = strlen(slot->value);
	if (!slot->max_bytes || n <= slot->max_bytes)
		return emit(w, slot->value, n);
	size_t cut = slot->max_bytes;
	for (int back = 0; back < 3 && cut > 0 && ((unsigned char)slot->value[cut] & 0xC0) == 0x80; back++)
		cut--;
	int rc = emit(w, slot->value, cut);
	return rc ? rc : emit(w, TMPL_TRUNCATED_MARK, sizeof TMPL_TRUNCATED_MARK - 1);
}

static int walk(const struct walker *w)
{
	struct section stack[TMPL_MAX_DEPTH];
	size_t depth = 0, skip_from = (size_t)-1; /* depth of the first empty section */
	const char *s = w->text;
	size_t len = w->len, pos = 0;
	int rc = CONVBI_OK;
	while (pos < len && !rc) {
		const char *hit = NULL;
		for (size_t i = pos; i + 1 < len; i++) {
			if (s[i] == '{' && s[i + 1] == '{') {
				hit = s + i;
				break;
			}
		}
		int quiet = skip_from != (size_t)-1;
		if (!hit) {
			rc = quiet ? CONVBI_OK : emit(w, s + pos, len - pos);
			pos = len;
			break;
		}
		size_t at = (size_t)(hit - s);
		struct tag t = {TAG_LITERAL, NULL, 0, 0};
		if ((rc = parse_tag(w, at, &t)))
			break;
		size_t text_end = at, next = t.end;
		if (t.kind == TAG_OPEN || t.kind == TAG_CLOSE)
			standalone(s, len, at, t.end, &text_end, &next);
		if (!quiet && (rc = emit(w, s + pos, text_end - pos)))
			break;
		pos = next;
		if (t.kind != TAG_LITERAL && w->check_names && !name_allowed(w, &t)) {
			rc = unknown_name(w, at, &t);
			break;
		}
		switch (t.kind) {
		case TAG_LITERAL: rc = quiet ? CONVBI_OK : emit(w, "{{", 2); break;
		case TAG_SLOT: rc = quiet ? CONVBI_OK : emit_value(w, find_slot(w, &t)); break;
		case TAG_OPEN:
			for (size_t k = 0; k < depth; k++)
				if (stack[k].nlen == t.nlen && !memcmp(stack[k].name, t.name, t.nlen))
					return fail(w, at,
					            "{{#%.*s}} is already open (line %zu); close it "
					            "with {{/%.*s}} first",
					            (int)t.nlen, t.name, line_of(s, stack[k].pos), (int)t.nlen, t.name);
			if (depth == TMPL_MAX_DEPTH)
				return fail(w, at, "sections nest deeper than %d; flatten them", TMPL_MAX_DEPTH);
			stack[depth] = (struct section){t.name, t.nlen, at};
			if (!quiet && w->out) {
				const struct tmpl_slot *slot = find_slot(w, &t);
				if (!slot || !slot->value || !slot->value[0])
					skip_from = depth;
			}
			depth++;
			break;
		case TAG_CLOSE:
			if (!depth)
				return fail(w, at,
				            "{{/%.*s}} closes no section; remove it or add "
				            "{{#%.*s}} before it",
				            (int)t.nlen, t.name, (int)t.nlen, t.name);
			if (stack[depth - 1].nlen != t.nlen || memcmp(stack[depth - 1].name, t.name, t.nlen))
				return fail(w, at,
				            "{{/%.*s}} does not match {{#%.*s}} (line %zu); close "
				            "that section first",
				            (int)t.nlen, t.name, (int)stack[depth - 1].nlen, stack[depth - 1].name,
				            line_of(s, stack[depth - 1].pos));
			depth--;
			if (skip_from == depth)
				skip_from = (size_t)-1;
			break;
		}
	}
	if (!rc && depth) {
		const struct section *open = &stack[depth - 1];
		return fail(w, open->pos,
		            "{{#%.*s}} is never closed; add {{/%.*s}} after its "
		            "text",
		            (int)open->nlen, open->name, (int)open->nlen, open->name);
	}
	return rc;
}

/* ---- checking ------------------------------------------------------------- */

static int check(const struct walker *w)
{
	if (w->len > TMPL_MAX_BYTES) {
		if (w->where)
			return err_set(w->err, CONVBI_ETEMPLATE,
			               "%s is %zu bytes; the limit is %zu, "
			               "shorten it",
			               w->where, w->len, TMPL_MAX_BYTES);
		return err_set(w->err, CONVBI_ETEMPLATE,
		               "the template is %zu bytes; the limit is "
		               "%zu, shorten it",
		               w->len, TMPL_MAX_BYTES);
	}
	const unsigned char *u = (const unsigned char *)w->text;
	for (size_t i = 0; i < w->len;) {
		if (!u[i])
			return fail(w, i, "NUL byte in the template; remove it");
		size_t k = utf8_decode(u + i, w->len - i, NULL);
		if (!k)
			return fail(w, i, "invalid UTF-8 (byte 0x%02x); save the file as UTF-8", u[i]);
		i += k;
	}
	return walk(w);
}

int tmpl_check(const char *text, size_t len, const char *const *allowed, size_t nallowed, struct err *err)
{
	struct walker w = {text, len, 1, allowed, nallowed, NULL, NULL, 0, NULL, NULL, err};
	return check(&w);
}

int tmpl_render(struct buf *out, const char *text, const struct tmpl_slot *slots, size_t n, struct err *err)
{
	assert(out && text);
	struct walker w = {text, strlen(text), 0, NULL, 0, out, slots, n, NULL, NULL, err};
	int rc = walk(&w);
	if (rc)
		buf_release(out);
	return rc;
}

/* ---- the set ------------------------------------------------------------ */

static int valid_name(const char *name)
{
	if (!name || !*name || strlen(name) > TMPL_MAX_NAME)
		return 0;
	for (const char *p = name; *p; p++)
		if (!is_name_char(*p))
			return 0;
	return 1;
}

/* Reads path whole into *text (owned, NUL-terminated): a regular file of
 * at most TMPL_MAX_BYTES.  A FIFO or a device is refused before any read
 * (it could block or never end), a bigger file before reading a byte. */
static int read_file(const char *path, char **text, size_t *len, struct err *err)
{
	mode_t mode = 0;
	int e = regfile_read(path, TMPL_MAX_BYTES, text, len, &mode);
	if (!e)
		return CONVBI_OK;
	if (e == ENOENT)
		return err_set(err, CONVBI_ETEMPLATE,
		               "%s is missing; restore it or point "
		               "--prompts (prompts_dir, CONVBI_PROMPTS) at a folder that has it",
		               path);
	if (e == EACCES)
		return err_set(err, CONVBI_ETEMPLATE,
		               "%s is not readable (permission denied); "
		               "fix its permissions",
		               path);
	if (e == REGFILE_NOT_REGULAR)
		return err_set(err, CONVBI_ETEMPLATE, "%s is %s; it must be a text file", path, regfile_kind(mode));
	struct stat st;
	if (e == EFBIG && stat(path, &st) == 0)
		return err_set(err, CONVBI_ETEMPLATE, "%s is %lld bytes; the limit is %zu, shorten it", path,
		               (long long)st.st_size, TMPL_MAX_BYTES);
	if (e == EFBIG)
		return err_set(err, CONVBI_ETEMPLATE, "%s is larger than %zu bytes, the limit; shorten it", path, TMPL_MAX_BYTES);
	if (e == ENOMEM)
		return err_code(err, CONVBI_ENOMEM);
	return err_set(err, CONVBI_ETEMPLATE, "cannot read %s (%s); check the path", path, strerror(e));
}

int tmpl_set_load(struct tmpl_set **out, const char *dir, const struct tmpl_spec *specs, size_t n, struct err *err)
{
	struct tmpl_set *set = NULL;
	struct buf path = BUF_INIT;
	char *text = NULL;
	int rc = CONVBI_OK;
	*out = NULL;
	if (!dir || (n && !specs))
		return err_set(err, CONVBI_EINVAL, "tmpl_set_load needs a directory and specs");
	set = xcalloc(1, sizeof *set);
	if (!set || !(set->items = xcalloc(n ? n : 1, sizeof *set->items))) {
		rc = err_code(err, CONVBI_ENOMEM);
		goto done;
	}
	for (size_t k = 0; k < n; k++) {
		const struct tmpl_spec *sp = &specs[k];
		if (!valid_name(sp->name)) {
			rc = err_set(err, CONVBI_EINVAL, "template name \"%s\" is not [a-z0-9_]+",
			             sp->name ? sp->name : "(null)");
			goto done;
		}
		buf_reset(&path);
		if ((rc = buf_printf(&path, "%s/%s.txt", dir, sp->name))) {
			rc = err_code(err, rc);
			goto done;
		}
		size_t len = 0;
		if ((rc = read_file(path.data, &text, &len, err)))
			goto done;
		static const char *const no_slots[1] = {NULL};
		struct walker w = {
		        text,      len,      1,  sp->slots ? sp->slots : no_slots, sp->slots ? sp->nslots : 0, NULL, NULL, 0,
		        path.data, sp->name, err};
		if ((rc = check(&w)))
			goto done;
		set->items[k].name = xstrdup(sp->name);
		if (!set->items[k].name) {
			rc = err_code(err, CONVBI_ENOMEM);
			goto done;
		}
		set->items[k].text = text;
		text = NULL;
		set->n = k + 1;
	}
	*out = set;
	set = NULL;
done:
	free(text);
	buf_release(&path);
	tmpl_set_free(set);
	return rc;
}

void tmpl_set_free(struct tmpl_set *s)
{
	if (!s)
		return;
	for (size_t k = 0; k < s->n; k++) {
		free(s->items[k].name);
		free(s->items[k].text);
	}
	free(s->items);
	free(s);
}

const char *tmpl_text(const struct tmpl_set *s, const char *name)
{
	if (!s || !name)
		return NULL;
	for (size_t k = 0; k < s->n; k++)
		if (strcmp(s->items[k].name, name) == 0)
			return s->items[k].text;
	return NULL;
}
