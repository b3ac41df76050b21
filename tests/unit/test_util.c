/* test_util.c -- the bottom layer's one-of-each helpers: the strict UTF-8
 * decoder every module shares (overlong forms, surrogates, bad lead bytes,
 * truncation), the regular-file reader (FIFO, directory, device, a file
 * over the limit refused before a byte is read), CSV fields, the buffer's
 * sticky error, the string map and the status names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convbi/convbi.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/regfile.h"
#include "util/secret.h"
#include "util/strmap.h"
#include "util/utf8.h"

/* ---- UTF-8 ---------------------------------------------------------------------- */

struct utf8_case {
	const char *bytes;
	size_t len;
	size_t want; /* utf8_decode's length, 0 = invalid */
	uint32_t cp; /* the code point when valid */
};

#define U(s, want, cp)                    \
	{                                 \
		s, sizeof s - 1, want, cp \
	}

static const struct utf8_case utf8_cases[] = {
        U("A", 1, 0x41),
        U("\x7F", 1, 0x7F),
        U("\xC2\x80", 2, 0x80),
        U("\xDF\xBF", 2, 0x7FF),
        U("\xE0\xA0\x80", 3, 0x800),
        U("\xED\x9F\xBF", 3, 0xD7FF), /* the last before the surrogates */
        U("\xEE\x80\x80", 3, 0xE000), /* the first after them */
        U("\xEF\xBF\xBF", 3, 0xFFFF),
        U("\xF0\x90\x80\x80", 4, 0x10000),
        U("\xF4\x8F\xBF\xBF", 4, 0x10FFFF),
        U("\xC0\x80", 0, 0),     /* overlong NUL */
        U("\xC1\xBF", 0, 0),     /* overlong DEL */
        U("\xE0\x80\x80", 0, 0), /* overlong 3-byte */
        U("\xE0\x9F\xBF", 0, 0),
        U("\xF0\x80\x80\x80", 0, 0), /* overlong 4-byte */
        U("\xF0\x8F\xBF\xBF", 0, 0),
        U("\xED\xA0\x80", 0, 0),     /* U+D800 */
        U("\xED\xBF\xBF", 0, 0),     /* U+DFFF */
        U("\xF4\x90\x80\x80", 0, 0), /* U+110000 */
        U("\xF5\x80\x80\x80", 0, 0), /* lead bytes F5..FF */
        U("\xF7\xBF\xBF\xBF", 0, 0),
        U("\xFF", 0, 0),
        U("\x80", 0, 0), /* a lone continuation byte */
        U("\xC3", 0, 0), /* truncated */
        U("\xE2\x82", 0, 0),
        U("\xF0\x9F\x98", 0, 0),
        U("\xC3\x28", 0, 0), /* bad continuation */
        U("\xE2\x28\xA1", 0, 0),
};

static void utf8_decode_is_strict(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof utf8_cases / sizeof *utf8_cases; i++) {
		const struct utf8_case *c = &utf8_cases[i];
		uint32_t cp = 0xFFFFFFFF;
		size_t n = utf8_decode((const unsigned char *)c->bytes, c->len, &cp);
		if (n != c->want)
			fail_msg("case %zu: length %zu, want %zu", i, n, c->want);
		if (n)
			assert_int_equal(cp, c->cp);
		size_t bad = 99;
		assert_int_equal(utf8_valid(c->bytes, c->len, &bad), c->want == c->len);
		if (!c->want)
			assert_int_equal(bad, 0);
	}
}

static void utf8_valid_names_the_first_bad_byte(void **state)
{
	(void)state;
	const char s[] = "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80 ok \xED\xA0\x80 tail";
	size_t bad = 0;
	assert_false(utf8_valid(s, sizeof s - 1, &bad));
	assert_int_equal(bad, strstr(s, "\xED") - s);
	assert_true(utf8_valid(s, (size_t)(strstr(s, "\xED") - s), NULL));
	assert_true(utf8_valid("a\0b", 3, NULL)); /* NUL is a character; callers refuse it themselves */
	assert_true(utf8_valid("", 0, NULL));
	assert_false(utf8_valid("ab\xC3", 3, NULL));
	assert_int_equal(utf8_decode((const unsigned char *)"\xC3\xA9", 2, NULL), 2); /* cp may be NULL */
}

/* ---- regular files -------------------------------------------------------------- */

static char dir[512];

static int make_dir(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "%s/test_util.XXXXXX", SCRATCH_DIR);
	return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
	(void)state;
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static char *path_in(const char *name)
{
	static char p[600];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	return p;
}

static void regfile_reads_a_regular_file_whole(void **state)
{
	(void)state;
	const char *p = path_in("small.txt");
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs("hello\nworld", f);
	fclose(f);
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(regfile_read(p, 100, &text, &len, NULL), 0);
	assert_int_equal(len, 11);
	assert_string_equal(text, "hello\nworld");
	free(text);
	/* exactly at the limit is fine, one byte over is not */
	assert_int_equal(regfile_read(p, 11, &text, &len, NULL), 0);
	free(text);
	assert_int_equal(regfile_read(p, 10, &text, &len, NULL), EFBIG);
	assert_null(text);
	assert_string_equal(regfile_strerror(EFBIG, 0), "larger than the limit");
	assert_int_equal(regfile_read(path_in("absent"), 10, &text, &len, NULL), ENOENT);
	assert_string_equal(regfile_strerror(ENOENT, 0), strerror(ENOENT));
}

static void regfile_refuses_what_is_not_a_regular_file_without_blocking(void **state)
{
	(void)state;
	char *text = NULL;
	size_t len = 0;
	mode_t mode = 0;
	const char *fifo = path_in("fifo");
	assert_int_equal(mkfifo(fifo, 0600), 0);
	/* no writer: a blocking open would hang the test here */
	assert_int_equal(regfile_read(fifo, 100, &text, &len, &mode), REGFILE_NOT_REGULAR);
	assert_string_equal(regfile_strerror(REGFILE_NOT_REGULAR, mode), "a FIFO (named pipe), not a regular file");
	assert_int_equal(regfile_read(dir, 100, &text, &len, &mode), REGFILE_NOT_REGULAR);
	assert_string_equal(regfile_kind(mode), "a directory");
	assert_int_equal(regfile_read("/dev/zero", 100, &text, &len, &mode), REGFILE_NOT_REGULAR);
	assert_string_equal(regfile_kind(mode), "a character device");
	assert_null(text);
	int fd = -1;
	assert_int_equal(regfile_open("/dev/null", &fd, NULL), REGFILE_NOT_REGULAR);
	assert_int_equal(fd, -1);
}

static void a_huge_file_is_refused_before_a_byte_is_read(void **state)
{
	(void)state;
	const char *p = path_in("sparse");
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)4 << 30), 0); /* 4 GiB, sparse: reading it would take seconds */
	close(fd);
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(regfile_read(p, 1 << 20, &text, &len, NULL), EFBIG);
	assert_null(text);
}

static void a_line_over_its_limit_stops_the_read(void **state)
{
	(void)state;
	const char *p = path_in("lines.txt");
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs("short\n", f);
	for (int i = 0; i < 300000; i++)
		fputc('x', f);
	fputs("\nend\n", f);
	fclose(f);
	char *text = NULL;
	size_t len = 0;
	long line = 0;
	assert_int_equal(regfile_read_lines(p, 1 << 20, 1000, &text, &len, NULL, &line), REGFILE_LONG_LINE);
	assert_int_equal(line, 2);
	assert_null(text);
	/* a line exactly at the limit passes */
	assert_int_equal(regfile_read_lines(p, 1 << 20, 300000, &text, &len, NULL, &line), 0);
	assert_int_equal(len, 6 + 300001 + 4);
	free(text);
	/* one line of 1 GiB (sparse: zeros, no line break) is refused after its first bytes */
	p = path_in("one-line");
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)1 << 30), 0);
	close(fd);
	assert_int_equal(regfile_read_lines(p, (size_t)2 << 30, 1 << 16, &text, &len, NULL, &line), REGFILE_LONG_LINE);
	assert_int_equal(line, 1);
}

/* ---- buffers and maps ----------------------------------------------------------- */

static void csv_fields_follow_rfc_4180(void **state)
{
	(void)state;
	static const char *const cases[][2] = {
	        {"plain", "plain"},
	        {"", "\"\""},
	        {"a,b", "\"a,b\""},
	        {"say \"hi\"", "\"say \"\"hi\"\"\""},
	        {"two\nlines", "\"two\nlines\""},
	        {"cr\r", "\"cr\r\""},
	        {" lead", "\" lead\""},
	        {"trail ", "\"trail \""},
	        {"\"", "\"\"\"\""},
	        {"in side", "in side"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct buf b = BUF_INIT;
		assert_int_equal(buf_csv_field(&b, cases[i][0]), CONVBI_OK);
		assert_string_equal(buf_str(&b), cases[i][1]);
		buf_release(&b);
	}
	struct buf b = BUF_INIT;
	assert_int_equal(buf_csv_field(&b, NULL), CONVBI_OK); /* NULL: an empty field */
	assert_int_equal(b.len, 0);
	buf_init(&b, 4);
	assert_int_equal(buf_csv_field(&b, "a,bc"), CONVBI_ETOOBIG); /* refused whole, nothing half-written */
	assert_int_equal(b.len, 0);
	buf_release(&b);
}

static void a_failed_append_is_remembered_until_reset(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 8);
	assert_int_equal(b.err, 0);
	assert_int_equal(buf_puts(&b, "12345"), CONVBI_OK);
	assert_int_equal(buf_puts(&b, "6789"), CONVBI_ETOOBIG);
	assert_int_equal(buf_puts(&b, "6"), CONVBI_OK); /* later appends still work ... */
	assert_int_equal(b.err, CONVBI_ETOOBIG);        /* ... and the builder still learns of the loss */
	buf_reset(&b);
	assert_int_equal(b.err, 0);
	buf_release(&b);
}

static void buf_printf_fits_grows_and_refuses_past_max_without_a_trace(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 100);
	assert_int_equal(buf_printf(&b, "%s-%d", "ab", 7), CONVBI_OK); /* into a fresh buffer */
	assert_int_equal(buf_printf(&b, "|%d|", 42), CONVBI_OK);       /* into the room left */
	assert_string_equal(buf_str(&b), "ab-7|42|");
	char big[80];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	assert_int_equal(buf_printf(&b, "%s", big), CONVBI_OK); /* past the room: grown */
	assert_int_equal(b.len, 8 + 79);
	assert_int_equal(buf_printf(&b, "%s", "0123456789abcdef"), CONVBI_ETOOBIG); /* fits the room, not max */
	assert_int_equal(b.len, 8 + 79);
	assert_int_equal(strlen(buf_str(&b)), 8 + 79); /* nothing of it is left */
	assert_int_equal(strncmp(buf_str(&b), "ab-7|42|xxx", 11), 0);
	buf_release(&b);
}

/* buf_put_int and buf_put_fixed write what printf's %lld and %.*f write:
 * the edges, ties and a spread of values from a fixed seed. */
static void buf_put_int_and_fixed_write_what_printf_writes(void **state)
{
	static const long long ints[] = {0, 1, -1, 9, 10, -10, 123456789, LLONG_MAX, LLONG_MIN, LLONG_MIN + 1};
	static const double reals[] = {0,        -0.0,           0.5,       1.5,       2.5,
	                               -0.5,     0.0000005,      0.0000015, 0.0000025, -0.0000005,
	                               1e-9,     -1e-9,          0.1,       0.3,       1.0 / 3,
	                               2.675,    999999.9999995, 1e9,       -1e9,      123456789.123456,
	                               1e300,    -1e300,         NAN,       INFINITY,  -INFINITY,
	                               4.35e-05, 0.000123};
	char want[400];
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
		buf_reset(&b);
		assert_int_equal(buf_put_int(&b, ints[i]), CONVBI_OK);
		snprintf(want, sizeof want, "%lld", ints[i]);
		assert_string_equal(buf_str(&b), want);
	}
	unsigned long long x = 88172645463325252ull; /* xorshift64 */
	for (int i = 0; i < 20000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		double v = i < (int)(sizeof reals / sizeof reals[0]) ? reals[i]
		           : i % 3 == 0                              ? (double)(x % 100000000) / 1e7 /* ties at the 6th decimal */
		           : i % 3 == 1                              ? (double)(int64_t)x / 9.3e9
		                                                     : (double)(x >> 11) * 0x1p-53 * 0.01;
		for (int d = 0; d <= 9; d += 3) {
			buf_reset(&b);
			assert_int_equal(buf_put_fixed(&b, v, d), CONVBI_OK);
			snprintf(want, sizeof want, "%.*f", d, v);
			if (strcmp(buf_str(&b), want))
				fail_msg("%.17g with %d decimals: %s, printf %s", v, d, buf_str(&b), want);
		}
	}
	buf_release(&b);
}

static void buf_json_str_escapes_what_json_needs_and_copies_the_rest_as_is(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	static const char in[] = "caf\xc3\xa9 \"q\" a\\b\n\r\t\x01\x7f end";
	assert_int_equal(buf_json_str(&b, in, sizeof in - 1), CONVBI_OK);
	assert_string_equal(buf_str(&b), "\"caf\xc3\xa9 \\\"q\\\" a\\\\b\\n\\r\\t\\u0001\\u007f end\"");
	buf_reset(&b);
	assert_int_equal(buf_json_str(&b, "x\0y", 3), CONVBI_OK); /* a NUL inside the length is escaped */
	assert_string_equal(buf_str(&b), "\"x\\u0000y\"");
	buf_release(&b);
	buf_init(&b, 8);
	assert_int_equal(buf_puts(&b, "ab"), CONVBI_OK);
	assert_int_equal(buf_json_str(&b, "0123456789", 10), CONVBI_ETOOBIG); /* past max: nothing of it stays */
	assert_string_equal(buf_str(&b), "ab");
	buf_release(&b);
}

static void strmap_keeps_the_first_value_of_a_key(void **state)
{
	(void)state;
	struct strmap m = STRMAP_INIT;
	char key[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof key, "id-%d", i);
		assert_int_equal(strmap_put(&m, key, i, NULL), 0);
	}
	int old = -1, v = -1;
	assert_int_equal(strmap_put(&m, "id-7", 99, &old), 1);
	assert_int_equal(old, 7);
	assert_int_equal(strmap_get(&m, "id-999", &v), 1);
	assert_int_equal(v, 999);
	assert_int_equal(strmap_get(&m, "id-1000", &v), 0);
	assert_int_equal(m.n, 1000);
	assert_true(strmap_hash("a") != strmap_hash("b"));
	strmap_release(&m);
}

/* ---- xgrow ------------------------------------------------------------------------ */

static void xgrow_doubles_from_first_and_keeps_the_array_when_it_fails(void **state)
{
	(void)state;
	int *v = NULL;
	alloc_fail_at(1000000, 0); /* count allocations, fail none */
	for (size_t n = 0; n < 100; n++) {
		int *p = xgrow(v, n, sizeof *v, 8);
		assert_non_null(p);
		v = p;
		v[n] = (int)n;
	}
	/* reallocated at 0, 8, 16, 32 and 64 elements only */
	assert_int_equal(alloc_fail_at(1, 0), 5);        /* and the next allocation fails */
	assert_ptr_equal(xgrow(v, 99, sizeof *v, 8), v); /* room: no allocation */
	assert_null(xgrow(v, 128, sizeof *v, 8));        /* full: the realloc fails */
	alloc_fail_at(0, 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(v[i], i);             /* still the caller's, whole */
	assert_null(xgrow(v, (size_t)1 << 62, 16, 8)); /* the size would overflow */
	free(v);
}

/* ---- status names --------------------------------------------------------------- */

static void every_status_has_a_name_and_a_message(void **state)
{
	(void)state;
	assert_string_equal(convbi_errname(CONVBI_OK), "OK");
	assert_string_equal(convbi_errname(CONVBI_ECANCELED), "ECANCELED");
	assert_string_equal(convbi_errname(CONVBI_EDB), "EDB");
	for (int code = 0; code < 64; code++) {
		const char *name = convbi_errname(code), *msg = convbi_errstr(code);
		assert_non_null(name);
		assert_non_null(msg);
		assert_true(msg[0] != '\0');
	}
	assert_non_null(convbi_errname(-5));
	assert_non_null(convbi_errstr(100000));
}

/* ---- URLs as they may be shown --------------------------------------------- */

static void a_shown_url_never_holds_a_password_or_a_query_value(void **state)
{
	(void)state;
	static const struct {
		const char *url, *shown;
	} cases[] = {
	        {"https://east.openai.azure.com", "https://east.openai.azure.com"},
	        {"http://u:p@h:1/x", "http://***@h:1/x"},
	        {"http://u:p@ss@h/", "http://***@h/"}, /* the last '@' ends the user info */
	        {"http://h/p?api-key=K&api-version=2024-10-21&sig=S", "http://h/p?api-key=***&api-version=2024-10-21&sig=***"},
	        {"http://h?tok", "http://h?***"},
	        {"http://h/p#frag", "http://h/p#***"},
	        {"h@x/y?k=v", "***@x/y?k=***"},   /* no scheme */
	        {"http://h/a@b", "http://h/a@b"}, /* an '@' in the path is not user info */
	};
	char out[128];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		secret_url_shown(out, sizeof out, cases[i].url);
		assert_string_equal(out, cases[i].shown);
	}
	secret_url_shown(out, 12, "http://user:secret@host");
	assert_string_equal(out, "http://***@"); /* cut, never past the cap */
}

int main(void)
{
	const struct CMUnitTest utf8[] = {
	        cmocka_unit_test(buf_printf_fits_grows_and_refuses_past_max_without_a_trace),
	        cmocka_unit_test(buf_json_str_escapes_what_json_needs_and_copies_the_rest_as_is),
	        cmocka_unit_test(buf_put_int_and_fixed_write_what_printf_writes),
	        cmocka_unit_test(utf8_decode_is_strict),
	        cmocka_unit_test(utf8_valid_names_the_first_bad_byte),
	};
	const struct CMUnitTest files[] = {
	        cmocka_unit_test(regfile_reads_a_regular_file_whole),
	        cmocka_unit_test(regfile_refuses_what_is_not_a_regular_file_without_blocking),
	        cmocka_unit_test(a_huge_file_is_refused_before_a_byte_is_read),
	        cmocka_unit_test(a_line_over_its_limit_stops_the_read),
	};
	const struct CMUnitTest bufs[] = {
	        cmocka_unit_test(csv_fields_follow_rfc_4180),
	        cmocka_unit_test(a_failed_append_is_remembered_until_reset),
	        cmocka_unit_test(strmap_keeps_the_first_value_of_a_key),
	        cmocka_unit_test(xgrow_doubles_from_first_and_keeps_the_array_when_it_fails),
	};
	const struct CMUnitTest status[] = {
	        cmocka_unit_test(every_status_has_a_name_and_a_message),
	        cmocka_unit_test(a_shown_url_never_holds_a_password_or_a_query_value),
	};
	int failed = cmocka_run_group_tests_name("utf8", utf8, NULL, NULL);
	failed += cmocka_run_group_tests_name("regfile", files, make_dir, remove_dir);
	failed += cmocka_run_group_tests_name("buf", bufs, NULL, NULL);
	failed += cmocka_run_group_tests_name("status", status, NULL, NULL);
	return failed ? 1 : 0;
}
