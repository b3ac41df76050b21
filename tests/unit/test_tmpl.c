/* test_tmpl.c -- prompt templates: rendering, checking, loading from files.
 *
 * Rendering and checking are table-driven, one CMocka test per row.  Each
 * render row is also checked with tmpl_check (allowing any name) so that
 * the two entry points can never disagree about what is well-formed.  The
 * loading tests write real files into a fresh directory under SCRATCH_DIR
 * (removed again by the group teardown) and include an allocation-failure
 * sweep over tmpl_set_load.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <signal.h>

#include "convbi/convbi.h"
#include "prompt/tmpl.h"
#include "util/alloc.h"

#define MARK TMPL_TRUNCATED_MARK

/* ---- rendering ------------------------------------------------------------------ */

struct render_case {
	const char *name;
	const char *text;
	struct tmpl_slot slots[4]; /* ends at the first NULL name */
	const char *want;          /* expected output, NULL when rc != OK */
	int rc;
	const char *msg; /* a substring of the error message */
};

static const struct render_case renders[] = {
        {"plain text renders unchanged", "No tags here.\n", {{0}}, "No tags here.\n", 0, NULL},
        {"an empty template renders empty", "", {{0}}, "", 0, NULL},
        {"a slot is replaced by its value", "Hello {{name}}!", {{"name", "World", 0}}, "Hello World!", 0, NULL},
        {"a slot can be used twice", "{{a}}-{{a}}", {{"a", "x", 0}}, "x-x", 0, NULL},
        {"a slot missing from the list renders empty", "[{{gone}}]", {{"other", "x", 0}}, "[]", 0, NULL},
        {"a null value renders empty", "[{{a}}]", {{"a", NULL, 0}}, "[]", 0, NULL},
        {"the first of two slots with one name wins", "{{a}}", {{"a", "1", 0}, {"a", "2", 0}}, "1", 0, NULL},
        {"values are not expanded again", "{{a}}", {{"a", "{{b}} {{#c}}", 0}, {"b", "no", 0}}, "{{b}} {{#c}}", 0, NULL},
        {"a section with a value is kept", "a{{#h}}[{{h}}]{{/h}}b", {{"h", "x", 0}}, "a[x]b", 0, NULL},
        {"a section with an empty value is dropped", "a{{#h}}[{{h}}]{{/h}}b", {{"h", "", 0}}, "ab", 0, NULL},
        {"a section with a null value is dropped", "a{{#h}}[{{h}}]{{/h}}b", {{"h", NULL, 0}}, "ab", 0, NULL},
        {"a section for a missing slot is dropped", "a{{#h}}[{{h}}]{{/h}}b", {{0}}, "ab", 0, NULL},
        {"a section may use other slots", "{{#h}}{{q}}{{/h}}", {{"h", "1", 0}, {"q", "Q", 0}}, "Q", 0, NULL},
        {"nested sections both kept", "{{#a}}A{{#b}}B{{/b}}{{/a}}", {{"a", "1", 0}, {"b", "1", 0}}, "AB", 0, NULL},
        {"an inner empty section is dropped", "{{#a}}A{{#b}}B{{/b}}{{/a}}", {{"a", "1", 0}, {"b", "", 0}}, "A", 0, NULL},
        {"an outer empty section drops its inner one", "{{#a}}A{{#b}}B{{/b}}{{/a}}.", {{"a", "", 0}, {"b", "1", 0}}, ".", 0, NULL},
        {"a section can open again after it closes", "{{#a}}1{{/a}}{{#a}}2{{/a}}", {{"a", "y", 0}}, "12", 0, NULL},
        {"a standalone section line vanishes when kept",
         "Q\n{{#hint}}\nHint: {{hint}}\n{{/hint}}\nEnd\n",
         {{"hint", "use joins", 0}},
         "Q\nHint: use joins\nEnd\n",
         0,
         NULL},
        {"a standalone section line vanishes when dropped",
         "Q\n{{#hint}}\nHint: {{hint}}\n{{/hint}}\nEnd\n",
         {{"hint", "", 0}},
         "Q\nEnd\n",
         0,
         NULL},
        {"standalone lines may be indented and end in crlf",
         "Q\r\n  {{#h}}  \r\nH\r\n\t{{/h}}\r\nE",
         {{"h", "1", 0}},
         "Q\r\nH\r\nE",
         0,
         NULL},
        {"a standalone tag on the last line takes its indentation", "Q\n{{#h}}H\n  {{/h}}", {{"h", "1", 0}}, "Q\nH\n", 0, NULL},
        {"a section tag sharing its line is not standalone", "x {{#h}}y{{/h}} z\n", {{"h", "1", 0}}, "x y z\n", 0, NULL},
        {"a slot tag alone on its line keeps the line", "a\n{{v}}\nb", {{"v", "", 0}}, "a\n\nb", 0, NULL},
        {"four braces are a literal pair", "{{{{literal}}", {{"literal", "no", 0}}, "{{literal}}", 0, NULL},
        {"closing braces alone are literal", "}} and }", {{0}}, "}} and }", 0, NULL},
        {"single braces are literal", "{\"sql\": \"...\"} {x}", {{0}}, "{\"sql\": \"...\"} {x}", 0, NULL},
        {"a value is cut at its cap", "{{v}}", {{"v", "abcdefgh", 5}}, "abcde" MARK, 0, NULL},
        {"a value at its cap is not cut", "{{v}}", {{"v", "abcde", 5}}, "abcde", 0, NULL},
        {"a cap of zero means no cap", "{{v}}", {{"v", "abcdefgh", 0}}, "abcdefgh", 0, NULL},
        {"a cut never splits a two byte character", "{{v}}", {{"v", "h\xC3\xA9llo", 2}}, "h" MARK, 0, NULL},
        {"a cut never splits a four byte character", "{{v}}", {{"v", "ab\xF0\x9F\x98\x80z", 5}}, "ab" MARK, 0, NULL},
        {"a cut after a whole character keeps it", "{{v}}", {{"v", "ab\xF0\x9F\x98\x80z", 6}}, "ab\xF0\x9F\x98\x80" MARK, 0, NULL},
        {"a capped value still opens its section", "{{#v}}[{{v}}]{{/v}}", {{"v", "xyz", 1}}, "[x" MARK "]", 0, NULL},
        {"an unclosed section is an error",
         "a\n{{#h}}x",
         {{0}},
         NULL,
         CONVBI_ETEMPLATE,
         "line 2: {{#h}} is never closed; add {{/h}}"},
        {"a close without an open is an error", "x {{/h}}", {{0}}, NULL, CONVBI_ETEMPLATE, "line 1: {{/h}} closes no section"},
        {"mismatched sections are an error",
         "{{#a}}\n{{#b}}\n{{/a}}{{/b}}",
         {{0}},
         NULL,
         CONVBI_ETEMPLATE,
         "line 3: {{/a}} does not match {{#b}} (line 2)"},
        {"a section inside one of the same name is an error",
         "{{#a}}{{#a}}{{/a}}{{/a}}",
         {{0}},
         NULL,
         CONVBI_ETEMPLATE,
         "{{#a}} is already open (line 1)"},
        {"spaces inside a tag are an error", "{{ name }}", {{0}}, NULL, CONVBI_ETEMPLATE, "\"{{ name }}\" is not a placeholder"},
        {"uppercase names are an error",
         "\n\n{{Name}}",
         {{0}},
         NULL,
         CONVBI_ETEMPLATE,
         "line 3: \"{{Name}}\" is not a placeholder"},
        {"an empty tag is an error", "{{}}", {{0}}, NULL, CONVBI_ETEMPLATE, "is not a placeholder"},
        {"an empty section name is an error", "{{#}}", {{0}}, NULL, CONVBI_ETEMPLATE, "is not a placeholder"},
        {"an unterminated tag is an error", "text {{name", {{0}}, NULL, CONVBI_ETEMPLATE, "\"{{name\" is not a placeholder"},
        {"a tag closed by one brace is an error", "{{name}", {{0}}, NULL, CONVBI_ETEMPLATE, "is not a placeholder"},
        {"three braces are an error",
         "{{{name}}}",
         {{0}},
         NULL,
         CONVBI_ETEMPLATE,
         "write {{name}} with a name of [a-z0-9_], or {{{{ for a literal {{"},
        {"a name over 64 bytes is an error",
         "{{a1234567890123456789012345678901234567890123456789012345678901234}}",
         {{0}},
         NULL,
         CONVBI_ETEMPLATE,
         "longer than 64 bytes"},
        {"sections nested 17 deep are an error",
         "{{#a}}{{#b}}{{#c}}{{#d}}{{#e}}{{#f}}{{#g}}{{#h}}{{#i}}{{#j}}{{#k}}{{#l}}{{#m}}{{#n}}"
         "{{#o}}{{#p}}{{#q}}",
         {{0}},
         NULL,
         CONVBI_ETEMPLATE,
         "nest deeper than 16"},
        {"an error inside a dropped section is still found",
         "{{#a}}{{bad name}}{{/a}}",
         {{"a", "", 0}},
         NULL,
         CONVBI_ETEMPLATE,
         "is not a placeholder"},
};

static void render_gives_the_expected_text(void **state)
{
	const struct render_case *c = *state;
	size_t n = 0;
	while (n < 4 && c->slots[n].name)
		n++;
	struct buf out = BUF_INIT;
	struct err err = ERR_INIT;
	int rc = tmpl_render(&out, c->text, c->slots, n, &err);
	assert_int_equal(rc, c->rc);
	if (!rc) {
		assert_string_equal(buf_str(&out), c->want);
	} else {
		assert_null(out.data); /* a failed render releases the buffer */
		if (!strstr(err.msg, c->msg))
			fail_msg("message \"%s\" lacks \"%s\"", err.msg, c->msg);
	}
	buf_release(&out);
	/* tmpl_check agrees about well-formedness */
	struct err cerr = ERR_INIT;
	assert_int_equal(tmpl_check(c->text, strlen(c->text), NULL, 0, &cerr), c->rc);
	if (c->rc)
		assert_string_equal(cerr.msg, err.msg);
}

/* ---- checking -------------------------------------------------------------------- */

static const char *const sql_slots[] = {"schema", "question", "hint"};

struct check_case {
	const char *name;
	const char *text;
	size_t len; /* bytes (the text may hold NUL) */
	int rc;
	const char *msg; /* the exact message, or NULL */
};

#define C(name, text, rc, msg)                        \
	{                                             \
		name, text, sizeof(text) - 1, rc, msg \
	}

static const struct check_case checks[] = {
        C("a template using its slots passes", "Schema:\n{{schema}}\n{{#hint}}Hint: {{hint}}\n{{/hint}}Q: {{question}}\n", 0,
          NULL),
        C("literal braces pass", "{{{{ not a tag }}", 0, NULL),
        C("valid utf8 of every length passes", "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF", 0, NULL),
        C("an unknown placeholder is named with a suggestion and the list", "Schema:\n{{schema}}\n\nQuestion: {{questoin}}\n",
          CONVBI_ETEMPLATE,
          "line 4: unknown placeholder {{questoin}}; did you mean {{question}}? this template "
          "accepts {{schema}}, {{question}}, {{hint}}"),
        C("an unknown placeholder far from every slot has no suggestion", "{{database_dialect}}", CONVBI_ETEMPLATE,
          "line 1: unknown placeholder {{database_dialect}}; this template "
          "accepts {{schema}}, {{question}}, {{hint}}"),
        C("an unknown section name is reported", "{{#evidence}}x{{/evidence}}", CONVBI_ETEMPLATE, NULL),
        C("a nul byte is rejected", "ab\0c", CONVBI_ETEMPLATE,
          "line 1: NUL byte in the template; "
          "remove it"),
        C("an overlong encoding is rejected", "ok\n\xC0\x80", CONVBI_ETEMPLATE,
          "line 2: invalid UTF-8 (byte 0xc0); save the file as UTF-8"),
        C("a surrogate is rejected", "\xED\xA0\x80", CONVBI_ETEMPLATE, NULL),
        C("a code point above the unicode range is rejected", "\xF4\x90\x80\x80", CONVBI_ETEMPLATE, NULL),
        C("a byte that never starts utf8 is rejected", "\xF5\x80\x80\x80", CONVBI_ETEMPLATE, NULL),
        C("a truncated sequence is rejected", "x\xE2\x82", CONVBI_ETEMPLATE, NULL),
        C("a lone continuation byte is rejected", "\x80", CONVBI_ETEMPLATE, NULL),
        C("latin1 text is rejected", "caf\xE9", CONVBI_ETEMPLATE, NULL),
};

static void check_gives_the_expected_verdict(void **state)
{
	const struct check_case *c = *state;
	struct err err = ERR_INIT;
	assert_int_equal(tmpl_check(c->text, c->len, sql_slots, 3, &err), c->rc);
	if (c->msg)
		assert_string_equal(err.msg, c->msg);
	if (c->rc)
		assert_non_null(strchr(err.msg, ';')); /* every message names a fix */
}

static void check_with_no_slots_rejects_every_placeholder(void **state)
{
	static const char *const none[1] = {NULL};
	struct err err = ERR_INIT;
	assert_int_equal(tmpl_check("x {{a}}", 7, none, 0, &err), CONVBI_ETEMPLATE);
	assert_string_equal(err.msg,
	                    "line 1: unknown placeholder {{a}}; this template takes no "
	                    "placeholders, remove it");
	assert_int_equal(tmpl_check("plain {{{{", 10, none, 0, &err), CONVBI_OK);
}

static void check_rejects_a_template_over_the_size_cap(void **state)
{
	char *big = malloc(TMPL_MAX_BYTES + 1);
	assert_non_null(big);
	memset(big, 'a', TMPL_MAX_BYTES + 1);
	struct err err = ERR_INIT;
	int at_cap = tmpl_check(big, TMPL_MAX_BYTES, NULL, 0, &err);
	int over = tmpl_check(big, TMPL_MAX_BYTES + 1, NULL, 0, &err);
	free(big);
	assert_int_equal(at_cap, CONVBI_OK);
	assert_int_equal(over, CONVBI_ETEMPLATE);
	assert_string_equal(err.msg, "the template is 65537 bytes; the limit is 65536, shorten it");
}

static void render_stops_at_the_output_cap_and_releases(void **state)
{
	struct buf out;
	struct err err = ERR_INIT;
	struct tmpl_slot v = {"v", "0123456789", 0};
	buf_init(&out, 8);
	assert_int_equal(tmpl_render(&out, "ab{{v}}", &v, 1, &err), CONVBI_ETOOBIG);
	assert_null(out.data);
	assert_non_null(strstr(err.msg, "8-byte cap"));
	buf_init(&out, 12);
	assert_int_equal(tmpl_render(&out, "ab{{v}}", &v, 1, &err), CONVBI_OK);
	assert_string_equal(out.data, "ab0123456789");
	buf_release(&out);
}

static void render_appends_to_what_the_buffer_holds(void **state)
{
	struct buf out = BUF_INIT;
	struct err err = ERR_INIT;
	assert_int_equal(buf_puts(&out, "system: "), CONVBI_OK);
	assert_int_equal(tmpl_render(&out, "hi", NULL, 0, &err), CONVBI_OK);
	assert_string_equal(out.data, "system: hi");
	buf_release(&out);
}

/* ---- loading from files ------------------------------------------------------------ */

static char dir[512]; /* the group's temp dir */

static void put_file(const char *name, const char *text, size_t len)
{
	char path[600];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void put_text(const char *name, const char *text)
{
	put_file(name, text, strlen(text));
}

static void rm_file(const char *name)
{
	char path[600];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	unlink(path);
	rmdir(path);
}

static const char *const sql_only[] = {"schema", "question"};
static const char *const intent_slots[] = {"history", "question"};

static void load_reads_every_template(void **state)
{
	put_text("sql.txt", "S: {{schema}}\nQ: {{question}}\n");
	put_text("intent.txt", "{{#history}}H: {{history}}\n{{/history}}{{question}}");
	struct tmpl_spec specs[] = {{"sql", sql_only, 2}, {"intent", intent_slots, 2}};
	struct tmpl_set *set = (struct tmpl_set *)1;
	struct err err = ERR_INIT;
	assert_int_equal(tmpl_set_load(&set, dir, specs, 2, &err), CONVBI_OK);
	assert_string_equal(tmpl_text(set, "sql"), "S: {{schema}}\nQ: {{question}}\n");
	assert_null(tmpl_text(set, "answer"));
	assert_null(tmpl_text(NULL, "sql"));
	struct tmpl_slot slots[] = {{"question", "how many?", 0}, {"history", "", 0}};
	struct buf out = BUF_INIT;
	assert_int_equal(tmpl_render(&out, tmpl_text(set, "intent"), slots, 2, &err), CONVBI_OK);
	assert_string_equal(out.data, "how many?");
	buf_release(&out);
	tmpl_set_free(set);
	tmpl_set_free(NULL);
}

static void load_names_the_file_line_and_fix_of_an_unknown_placeholder(void **state)
{
	const char *text = "line1\nline2\n\n{{schema}}\n{{shema}}\n";
	put_file("sql.txt", text, strlen(text));
	struct tmpl_spec spec = {"sql", sql_only, 2};
	struct tmpl_set *set = (struct tmpl_set *)1;
	struct err err = ERR_INIT;
	char want[700];
	snprintf(want, sizeof want,
	         "%s/sql.txt:5: unknown placeholder {{shema}}; did you mean "
	         "{{schema}}? the sql template accepts {{schema}}, {{question}}",
	         dir);
	assert_int_equal(tmpl_set_load(&set, dir, &spec, 1, &err), CONVBI_ETEMPLATE);
	assert_null(set);
	assert_string_equal(err.msg, want);
}

static void load_names_the_path_of_a_missing_file(void **state)
{
	struct tmpl_spec spec = {"absent", sql_only, 2};
	struct tmpl_set *set = (struct tmpl_set *)1;
	struct err err = ERR_INIT;
	char want[700];
	snprintf(want, sizeof want,
	         "%s/absent.txt is missing; restore it or point --prompts "
	         "(prompts_dir, CONVBI_PROMPTS) at a folder that has it",
	         dir);
	assert_int_equal(tmpl_set_load(&set, dir, &spec, 1, &err), CONVBI_ETEMPLATE);
	assert_null(set);
	assert_string_equal(err.msg, want);
}

static void load_rejects_a_directory_in_place_of_a_file(void **state)
{
	char path[600];
	snprintf(path, sizeof path, "%s/folder.txt", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	struct tmpl_spec spec = {"folder", sql_only, 2};
	struct tmpl_set *set = NULL;
	struct err err = ERR_INIT;
	assert_int_equal(tmpl_set_load(&set, dir, &spec, 1, &err), CONVBI_ETEMPLATE);
	assert_non_null(strstr(err.msg, "folder.txt is a directory"));
	rm_file("folder.txt");
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "tmpl_set_load hung on a FIFO\n";
	(void)!write(2, msg, sizeof msg - 1);
	_exit(1);
}

/* open() of a FIFO blocks until a writer comes: refused before that. */
static void load_rejects_a_fifo_in_place_of_a_file_without_blocking(void **state)
{
	char path[600];
	snprintf(path, sizeof path, "%s/pipe.txt", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	struct tmpl_spec spec = {"pipe", sql_only, 2};
	struct tmpl_set *set = NULL;
	struct err err = ERR_INIT;
	signal(SIGALRM, on_alarm);
	alarm(10);
	assert_int_equal(tmpl_set_load(&set, dir, &spec, 1, &err), CONVBI_ETEMPLATE);
	alarm(0);
	assert_non_null(strstr(err.msg, "pipe.txt is a FIFO (named pipe); it must be a text file"));
	rm_file("pipe.txt");
}

static void load_enforces_the_size_cap_to_the_byte(void **state)
{
	char *big = malloc(TMPL_MAX_BYTES + 1);
	assert_non_null(big);
	memset(big, 'x', TMPL_MAX_BYTES + 1);
	struct tmpl_spec spec = {"big", NULL, 0};
	struct tmpl_set *set = NULL;
	struct err err = ERR_INIT;
	put_file("big.txt", big, TMPL_MAX_BYTES);
	int at_cap = tmpl_set_load(&set, dir, &spec, 1, &err);
	size_t len = at_cap ? 0 : strlen(tmpl_text(set, "big"));
	tmpl_set_free(set);
	put_file("big.txt", big, TMPL_MAX_BYTES + 1);
	int over = tmpl_set_load(&set, dir, &spec, 1, &err);
	free(big);
	assert_int_equal(at_cap, CONVBI_OK);
	assert_int_equal(len, TMPL_MAX_BYTES);
	assert_int_equal(over, CONVBI_ETEMPLATE);
	assert_null(set);
	assert_non_null(strstr(err.msg, "big.txt is 65537 bytes; the limit is 65536"));
	rm_file("big.txt");
}

static void load_names_the_line_of_invalid_utf8(void **state)
{
	put_text("bad.txt", "ok\nalso ok\ncaf\xE9\n");
	struct tmpl_spec spec = {"bad", NULL, 0};
	struct tmpl_set *set = NULL;
	struct err err = ERR_INIT;
	char want[700];
	snprintf(want, sizeof want,
	         "%s/bad.txt:3: invalid UTF-8 (byte 0xe9); save the file as "
	         "UTF-8",
	         dir);
	assert_int_equal(tmpl_set_load(&set, dir, &spec, 1, &err), CONVBI_ETEMPLATE);
	assert_string_equal(err.msg, want);
	rm_file("bad.txt");
}

static void load_with_no_slot_list_rejects_placeholders(void **state)
{
	put_text("plain.txt", "You are a SQL expert.\n{{question}}");
	struct tmpl_spec spec = {"plain", NULL, 0};
	struct tmpl_set *set = NULL;
	struct err err = ERR_INIT;
	assert_int_equal(tmpl_set_load(&set, dir, &spec, 1, &err), CONVBI_ETEMPLATE);
	assert_non_null(strstr(err.msg,
	                       "plain.txt:2: unknown placeholder {{question}}; the plain "
	                       "template takes no placeholders"));
	rm_file("plain.txt");
}

static void load_refuses_a_template_name_that_is_not_a_plain_word(void **state)
{
	static const char *const bad[] = {"../etc/passwd", "", "Sql", "a b", NULL};
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		struct tmpl_spec spec = {bad[k], NULL, 0};
		struct tmpl_set *set = (struct tmpl_set *)1;
		struct err err = ERR_INIT;
		assert_int_equal(tmpl_set_load(&set, dir, &spec, 1, &err), CONVBI_EINVAL);
		assert_null(set);
	}
}

static void load_of_nothing_gives_an_empty_set(void **state)
{
	struct tmpl_set *set = NULL;
	struct err err = ERR_INIT;
	assert_int_equal(tmpl_set_load(&set, dir, NULL, 0, &err), CONVBI_OK);
	assert_non_null(set);
	assert_null(tmpl_text(set, "sql"));
	tmpl_set_free(set);
}

static void load_reports_allocation_failure_at_every_point(void **state)
{
	put_text("sql.txt", "S: {{schema}}\nQ: {{question}}\n");
	put_text("intent.txt", "{{#history}}H: {{history}}\n{{/history}}{{question}}");
	struct tmpl_spec specs[] = {{"sql", sql_only, 2}, {"intent", intent_slots, 2}};
	for (long k = 1;; k++) {
		struct tmpl_set *set = (struct tmpl_set *)1;
		struct err err = ERR_INIT;
		alloc_fail_at(k, 0);
		int rc = tmpl_set_load(&set, dir, specs, 2, &err);
		long used = alloc_fail_at(0, 0);
		if (rc == CONVBI_OK) {
			assert_true(used < k);
			assert_non_null(tmpl_text(set, "intent"));
			tmpl_set_free(set);
			break;
		}
		assert_int_equal(rc, CONVBI_ENOMEM);
		assert_null(set);
		assert_true(k < 100);
	}
}

static int make_dir(void **state)
{
	snprintf(dir, sizeof dir, "%s/tmpl-XXXXXX", SCRATCH_DIR);
	mkdir(SCRATCH_DIR, 0700);
	return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
	rm_file("sql.txt");
	rm_file("intent.txt");
	return rmdir(dir);
}

#define ROWS(arr, fn)                                                \
	for (size_t i = 0; i < sizeof arr / sizeof arr[0]; i++)      \
		tests[k++] = (struct CMUnitTest)                     \
		{                                                    \
			arr[i].name, fn, NULL, NULL, (void *)&arr[i] \
		}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
	        cmocka_unit_test(check_with_no_slots_rejects_every_placeholder),
	        cmocka_unit_test(check_rejects_a_template_over_the_size_cap),
	        cmocka_unit_test(render_stops_at_the_output_cap_and_releases),
	        cmocka_unit_test(render_appends_to_what_the_buffer_holds),
	        cmocka_unit_test(load_reads_every_template),
	        cmocka_unit_test(load_names_the_file_line_and_fix_of_an_unknown_placeholder),
	        cmocka_unit_test(load_names_the_path_of_a_missing_file),
	        cmocka_unit_test(load_rejects_a_directory_in_place_of_a_file),
	        cmocka_unit_test(load_enforces_the_size_cap_to_the_byte),
	        cmocka_unit_test(load_rejects_a_fifo_in_place_of_a_file_without_blocking),
	        cmocka_unit_test(load_names_the_line_of_invalid_utf8),
	        cmocka_unit_test(load_with_no_slot_list_rejects_placeholders),
	        cmocka_unit_test(load_refuses_a_template_name_that_is_not_a_plain_word),
	        cmocka_unit_test(load_of_nothing_gives_an_empty_set),
	        cmocka_unit_test(load_reports_allocation_failure_at_every_point),
	};
	static struct CMUnitTest
	        tests[sizeof renders / sizeof renders[0] + sizeof checks / sizeof checks[0] + sizeof fixed / sizeof fixed[0]];
	size_t k = 0;
	ROWS(renders, render_gives_the_expected_text);
	ROWS(checks, check_gives_the_expected_verdict);
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
		tests[k++] = fixed[i];
	return _cmocka_run_group_tests("tmpl", tests, k, make_dir, remove_dir);
}
