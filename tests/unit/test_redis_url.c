/* test_redis_url.c -- the redis:// URL parser (src/llm/state_redis_url.c):
 * every documented form parses to the right parts, everything else is
 * refused with a message that never repeats the password.  Pure: no
 * server is started. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "convbi/convbi.h"
#include "llm/state_redis_url.h"

/* ---- the URL --------------------------------------------------------------------- */

struct url_case {
	const char *url;
	int ok;
	const char *host;
	int port, db;
	const char *user, *pass;
};

static void url_parser_accepts_the_documented_forms_and_rejects_the_rest(void **state)
{
	(void)state;
	static const struct url_case cases[] = {
	        {"redis://127.0.0.1:6379/0", 1, "127.0.0.1", 6379, 0, "", ""},
	        {"redis://localhost", 1, "localhost", 6379, 0, "", ""},
	        {"redis://localhost/", 1, "localhost", 6379, 0, "", ""},
	        {"REDIS://cache.internal:7000/12", 1, "cache.internal", 7000, 12, "", ""},
	        {"redis://:hunter2-pass@10.0.0.5:6380/1", 1, "10.0.0.5", 6380, 1, "", "hunter2-pass"},
	        {"redis://fleet:s3cret@h:1/2", 1, "h", 1, 2, "fleet", "s3cret"},
	        {"redis://fl%65et:p%40ss%3Aw%2Frd@h:65535/3", 1, "h", 65535, 3, "fleet", "p@ss:w/rd"},
	        {"redis://:a@b@h/0", 1, "h", 6379, 0, "", "a@b"},
	        {"redis://[::1]:6390/4", 1, "::1", 6390, 4, "", ""},
	        {"redis://[::1]", 1, "::1", 6379, 0, "", ""},
	        {"redis://h:6379/99999", 1, "h", 6379, 99999, "", ""},
	        {"redis://u%20x:p%25@h", 1, "h", 6379, 0, "u x", "p%"},
	        {"", 0, NULL, 0, 0, NULL, NULL},
	        {"http://h:6379", 0, NULL, 0, 0, NULL, NULL},
	        {"rediss://:topsecret@h:6379", 0, NULL, 0, 0, NULL, NULL},
	        {"redis://", 0, NULL, 0, 0, NULL, NULL},
	        {"redis://:6379/0", 0, NULL, 0, 0, NULL, NULL},
	        {"redis://h:0", 0, NULL, 0, 0, NULL, NULL},
	        {"redis://h:65536", 0, NULL, 0, 0, NULL, NULL},
	        {"redis://h:63x9", 0, NULL, 0, 0, NULL, NULL},
	        {"redis://h:", 0, NULL, 0, 0, NULL, NULL},
	        {"redis://h/db1", 0, NULL, 0, 0, NULL, NULL},
	        {"redis://h/0?timeout=1", 0, NULL, 0, 0, NULL, NULL},
	        {"redis://onlyuser@h/0", 0, NULL, 0, 0, NULL, NULL},
	        {"redis://user:@h/0", 0, NULL, 0, 0, NULL, NULL},
	        {"redis://:secret-pw@h:70000/0", 0, NULL, 0, 0, NULL, NULL},
	        {"redis://:secret-pw@h/x", 0, NULL, 0, 0, NULL, NULL},
	        {"redis://:secret-pw@/0", 0, NULL, 0, 0, NULL, NULL},
	        {"redis://:bad%zzsecret@h/0", 0, NULL, 0, 0, NULL, NULL},
	        {"redis://:nul%00secret@h/0", 0, NULL, 0, 0, NULL, NULL},
	        {"redis://[::1/0", 0, NULL, 0, 0, NULL, NULL},
	        {"redis://[]:6379", 0, NULL, 0, 0, NULL, NULL},
	        {"redis://h:6379/100000", 0, NULL, 0, 0, NULL, NULL},
	        {"redis://h:6379/0#frag", 0, NULL, 0, 0, NULL, NULL},
	        {"redis://:secret-pw@h:-1/0", 0, NULL, 0, 0, NULL, NULL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		const struct url_case *c = &cases[i];
		struct state_redis_url u;
		struct err e = ERR_INIT;
		int rc = state_redis_url_parse(&u, c->url, &e);
		if (c->ok) {
			if (rc != CONVBI_OK)
				fail_msg("%s: %s", c->url, e.msg);
			assert_string_equal(u.host, c->host);
			assert_int_equal(u.port, c->port);
			assert_int_equal(u.db, c->db);
			assert_string_equal(u.user, c->user);
			assert_string_equal(u.pass, c->pass);
		} else {
			if (rc != CONVBI_ECONFIG)
				fail_msg("%s was accepted", c->url);
			assert_true(strlen(e.msg) > 10);
			assert_null(strstr(e.msg, "secret")); /* never repeats the password */
		}
	}
}

static void a_refused_url_leaves_no_password_behind(void **state)
{
	(void)state;
	struct state_redis_url u;
	struct err e = ERR_INIT;
	assert_int_equal(state_redis_url_parse(&u, "redis://:secret-pw@/0", &e), CONVBI_ECONFIG);
	assert_string_equal(u.pass, "");
	assert_int_equal(state_redis_url_parse(&u, "redis://:bad%zzsecret@h/0", &e), CONVBI_ECONFIG);
	assert_string_equal(u.pass, "");
	assert_int_equal(state_redis_url_parse(&u, NULL, &e), CONVBI_ECONFIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(url_parser_accepts_the_documented_forms_and_rejects_the_rest),
	        cmocka_unit_test(a_refused_url_leaves_no_password_behind),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
