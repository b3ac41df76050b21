/* test_config.c -- the endpoint configuration: file format, environment
 * variables, defaults, and one clear message per mistake (never a key). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convbi/convbi.h"
#include "llm/config.h"

#ifndef SCRATCH_DIR
#define SCRATCH_DIR "/tmp"
#endif

#define EP "{\"name\":\"e\",\"url\":\"https://a\",\"deployment\":\"d\",\"api_key\":\"kkkk\""

static int parse(struct llm_config *c, const char *text, struct err *err)
{
	return config_parse(c, text, strlen(text), "config file t.json", err);
}

static void full_file_is_read_with_every_field(void **state)
{
	struct llm_config c;
	struct err err = ERR_INIT;
	setenv("TEST_EAST_KEY", "sekret-east-0001", 1);
	const char *text =
		"{\"endpoints\": [{\"name\": \"east\", \"kind\": \"azure\", \"url\": \"https://east.openai.azure.com/\","
		" \"deployment\": \"gpt-4o\", \"api_version\": \"2024-10-21\", \"api_key_env\": \"TEST_EAST_KEY\","
		" \"priority\": 0, \"weight\": 3, \"rpm\": 60, \"tpm\": 1000},"
		" {\"name\": \"local\", \"kind\": \"openai\", \"url\": \"http://127.0.0.1:8080/v1\", \"model\": \"m\", \"api_key\": \"x\", \"priority\": 1},"
		" {\"name\": \"v1\", \"kind\": \"azure-v1\", \"url\": \"https://v1.example\", \"deployment\": \"d\", \"api_key\": \"kkkk\"}],"
		" \"retry\": {\"max_attempts\": 4, \"deadline_ms\": 5000, \"connect_timeout_ms\": 100,"
		" \"first_byte_timeout_ms\": 200, \"idle_timeout_ms\": 300}, \"state\": {\"path\": \"/tmp/convbi-state\"}}";
	assert_int_equal(parse(&c, text, &err), CONVBI_OK);
	assert_int_equal(c.n, 3);
	assert_string_equal(c.eps[0].name, "east");
	assert_string_equal(c.eps[0].url, "https://east.openai.azure.com");
	assert_string_equal(secret_value(&c.eps[0].key), "sekret-east-0001");
	assert_int_equal(c.eps[0].weight, 3);
	assert_int_equal(c.eps[0].rpm, 60);
	assert_int_equal(c.eps[0].tpm, 1000);
	assert_int_equal(c.eps[1].kind, EP_OPENAI);
	assert_int_equal(c.eps[1].priority, 1);
	assert_int_equal(c.eps[2].kind, EP_AZURE_V1);
	assert_string_equal(c.eps[2].api_version, "2024-10-21");
	assert_int_equal(c.retry.max_attempts, 4);
	assert_int_equal(c.retry.idle_timeout_ms, 300);
	assert_string_equal(c.state.path, "/tmp/convbi-state");
	config_release(&c);
}

static void defaults_fill_what_the_file_leaves_out(void **state)
{
	struct llm_config c;
	struct err err = ERR_INIT;
	assert_int_equal(parse(&c, "{\"endpoints\":[{\"url\":\"https://a\",\"deployment\":\"d\",\"api_key\":\"k123\"}]}", &err), CONVBI_OK);
	assert_string_equal(c.eps[0].name, "endpoint-0");
	assert_int_equal(c.eps[0].kind, EP_AZURE);
	assert_int_equal(c.eps[0].weight, 1);
	assert_int_equal(c.retry.max_attempts, 6);
	assert_int_equal(c.retry.deadline_ms, 60000);
	assert_null(c.state.path);
	config_release(&c);
}

struct bad_case {
	const char *text;
	const char *must_contain;
};

static void every_mistake_gets_one_line_naming_source_endpoint_and_fix(void **state)
{
	static const struct bad_case cases[] = {
		{"not json", "is not valid JSON"},
		{"[]", "top level must be an object"},
		{"{}", "has no \"endpoints\" array"},
		{"{\"endpoints\":[]}", "has no \"endpoints\" array"},
		{"{\"endpoints\":[1]}", "endpoints[0] is not an object"},
		{"{\"endpoints\":[{\"name\":\"e\",\"kind\":\"gcp\",\"url\":\"https://a\"}]}", "use \"azure\", \"azure-v1\" or \"openai\""},
		{"{\"endpoints\":[{\"name\":\"e\",\"deployment\":\"d\",\"api_key\":\"kkkk\"}]}", "endpoint `e` has no `url`"},
		{"{\"endpoints\":[{\"name\":\"e\",\"url\":\"ftp://a\",\"deployment\":\"d\",\"api_key\":\"kkkk\"}]}", "must start with http"},
		{"{\"endpoints\":[{\"name\":\"e\",\"url\":\"https://a\",\"api_key\":\"kkkk\"}]}", "has no `deployment`"},
		{"{\"endpoints\":[{\"name\":\"e\",\"url\":\"https://a\",\"deployment\":\"d\"}]}", "has no API key"},
		{"{\"endpoints\":[{\"name\":\"e\",\"url\":\"https://a\",\"deployment\":\"d\",\"api_key_env\":\"CONVBI_TEST_UNSET_VAR\"}]}", "$CONVBI_TEST_UNSET_VAR, which is not set"},
		{"{\"endpoints\":[{\"name\":\"e\",\"url\":\"https://a\",\"deployment\":\"d\",\"api_key\":\"kkkk\",\"weight\":0}]}", "weight 0"},
		{"{\"endpoints\":[{\"name\":\"e\",\"url\":\"https://a\",\"deployment\":\"d\",\"api_key\":\"kkkk\",\"weight\":\"x\"}]}", "weight \"x\" (a string); use a whole number from 1 to 1000"},
		{"{\"endpoints\":[{\"name\":\"e\",\"url\":\"https://a\",\"deployment\":\"d\",\"api_key\":\"kkkk\"},{\"name\":\"e\",\"url\":\"https://b\",\"deployment\":\"d\",\"api_key\":\"kkkk\"}]}", "two endpoints are named `e`"},
		{"{\"endpoints\":[{\"name\":\"e\",\"url\":\"https://a\",\"deployment\":\"d\",\"api_key\":\"kkkk\"}],\"retry\":{\"max_attempts\":0}}", "retry.max_attempts"},
		{"{\"endpoints\":[{\"name\":\"e\",\"url\":\"https://a\",\"deployment\":\"d\",\"api_key\":\"kkkk\"}],\"state\":{\"backend\":\"etcd\"}}", "state.backend"},
	};
	unsetenv("CONVBI_TEST_UNSET_VAR");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct llm_config c;
		struct err err = ERR_INIT;
		int rc = parse(&c, cases[i].text, &err);
		if (rc != CONVBI_ECONFIG || !strstr(err.msg, cases[i].must_contain) || !strstr(err.msg, "t.json") ||
		    strchr(err.msg, '\n') || strstr(err.msg, "kkkk"))
			fail_msg("case %zu: rc %d, message \"%s\"", i, rc, err.msg);
		assert_int_equal(c.n, 0);
	}
}

static void seed_environment_variables_are_discovered_until_the_first_gap(void **state)
{
	setenv("AZURE_OPENAI_ENDPOINT_0", "https://zero.openai.azure.com/", 1);
	setenv("AZURE_OPENAI_DEPLOYMENT_NAME_0", "gpt-4o", 1);
	setenv("AZURE_OPENAI_API_KEY_0", "key-zero-123", 1);
	setenv("AZURE_OPENAI_ENDPOINT_1", "https://one.openai.azure.com", 1);
	setenv("AZURE_OPENAI_DEPLOYMENT_NAME_1", "gpt-4o-mini", 1);
	setenv("AZURE_OPENAI_API_VERSION_1", "2024-06-01", 1);
	setenv("AZURE_OPENAI_API_KEY_1", "key-one-123", 1);
	setenv("AZURE_OPENAI_ENDPOINT_3", "https://three.openai.azure.com", 1);  /* after a gap: ignored */
	unsetenv("AZURE_OPENAI_ENDPOINT_2");
	unsetenv("CONVBI_CONFIG");
	struct llm_config c;
	struct err err = ERR_INIT;
	assert_int_equal(config_load(&c, NULL, &err), CONVBI_OK);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.eps[0].url, "https://zero.openai.azure.com");
	assert_string_equal(c.eps[0].api_version, "2024-10-21");
	assert_string_equal(c.eps[1].deployment, "gpt-4o-mini");
	assert_string_equal(c.eps[1].api_version, "2024-06-01");
	assert_string_equal(c.source, "environment");
	config_release(&c);

	/* Numbering may start at 1, as the seed's scripts did. */
	unsetenv("AZURE_OPENAI_ENDPOINT_0");
	setenv("AZURE_OPENAI_DEPLOYMENT_NAME_2", "d2", 1);
	setenv("AZURE_OPENAI_API_KEY_2", "key-two-123", 1);
	setenv("AZURE_OPENAI_ENDPOINT_2", "https://two.openai.azure.com", 1);
	unsetenv("AZURE_OPENAI_ENDPOINT_3");
	assert_int_equal(config_load(&c, NULL, &err), CONVBI_OK);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.eps[0].name, "env-1");
	config_release(&c);
	for (int i = 0; i < 4; i++) {
		char n[64];
		snprintf(n, sizeof n, "AZURE_OPENAI_ENDPOINT_%d", i);
		unsetenv(n);
	}
}

static void nothing_configured_says_what_to_set(void **state)
{
	unsetenv("CONVBI_CONFIG");
	unsetenv("AZURE_OPENAI_ENDPOINT_0");
	unsetenv("AZURE_OPENAI_ENDPOINT_1");
	struct llm_config c;
	struct err err = ERR_INIT;
	assert_int_equal(config_load(&c, NULL, &err), CONVBI_ENOENDPOINT);
	assert_non_null(strstr(err.msg, "--config"));
	assert_non_null(strstr(err.msg, "AZURE_OPENAI_ENDPOINT_0"));
}

static void a_missing_file_is_named(void **state)
{
	struct llm_config c;
	struct err err = ERR_INIT;
	assert_int_equal(config_load(&c, "/nonexistent/convbi.json", &err), CONVBI_ECONFIG);
	assert_non_null(strstr(err.msg, "/nonexistent/convbi.json"));
}

/* Each value is refused, never cut, wrapped or truncated, and the message
 * names the field and its range. */
static void numbers_must_be_whole_and_in_range_and_strings_whole(void **state)
{
	static const struct bad_case cases[] = {
		{"{\"endpoints\":[" EP ",\"weight\":4294967297}]}", "weight 4294967297; use a whole number from 1 to 1000"},
		{"{\"endpoints\":[" EP ",\"priority\":4294967296}]}", "priority 4294967296; use a whole number from 0 to 1000"},
		{"{\"endpoints\":[" EP ",\"weight\":1.9}]}", "weight 1.9; use a whole number from 1 to 1000"},
		{"{\"endpoints\":[" EP ",\"rpm\":1e12}]}", "rpm 1000000000000; use a whole number from 0 to 100000000"},
		{"{\"endpoints\":[" EP ",\"tpm\":-1}]}", "tpm -1; use a whole number from 0 to 2000000000"},
		{"{\"endpoints\":[" EP ",\"priority\":true}]}", "priority true (a boolean)"},
		{"{\"endpoints\":[" EP "}],\"retry\":{\"deadline_ms\":60000.5}}", "retry.deadline_ms is 60000.5; use a whole number from 100 to 3600000"},
		{"{\"endpoints\":[" EP "}],\"retry\":{\"max_attempts\":4294967302}}", "retry.max_attempts is 4294967302; use a whole number from 1 to 100"},
		{"{\"endpoints\":[" EP "}],\"state\":{\"timeout_ms\":0}}", "state.timeout_ms is 0; use a whole number from 1 to 600000"},
		{"{\"endpoints\":[" EP "}],\"state\":{\"cache_ms\":1e300}}", "state.cache_ms is 1e+300"},
		{"{\"endpoints\":[" EP "}]} trailing", "has text after the JSON value (line 1, column 82)"},
		{"{\"endpoints\":[" EP "}]}{}", "has text after the JSON value"},
		{"{\"endpoints\":[{\"name\":\"e\\u0000x\",\"url\":\"https://a\",\"deployment\":\"d\",\"api_key\":\"kkkk\"}]}", "holds a NUL character"},
		{"{\"endpoints\":[" EP ",\"model\":\"m\\u0000\"}]}", "holds a NUL character"},
		{"{\"endpoints\":[\n" EP ",\n\"weight\": }]}", "is not valid JSON (line 3, column 11)"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct llm_config c;
		struct err err = ERR_INIT;
		int rc = parse(&c, cases[i].text, &err);
		if (rc != CONVBI_ECONFIG || !strstr(err.msg, cases[i].must_contain) || !strstr(err.msg, "t.json"))
			fail_msg("case %zu: rc %d, message \"%s\"", i, rc, err.msg);
	}
	/* a raw NUL byte inside the text: config_parse is given its length */
	static const char raw[] = "{\"endpoints\":[{\"name\":\"e\0x\",\"url\":\"https://a\",\"deployment\":\"d\",\"api_key\":\"kkkk\"}]}";
	struct llm_config c;
	struct err err = ERR_INIT;
	assert_int_equal(config_parse(&c, raw, sizeof raw - 1, "config file t.json", &err), CONVBI_ECONFIG);
	assert_non_null(strstr(err.msg, "NUL"));
	/* in range, whole numbers written with an exponent or ".0" are fine */
	assert_int_equal(parse(&c, "{\"endpoints\":[" EP ",\"weight\":2.0,\"tpm\":1e6}]}\n\n", &err), CONVBI_OK);
	assert_int_equal(c.eps[0].weight, 2);
	assert_int_equal(c.eps[0].tpm, 1000000);
	config_release(&c);
}

/* A CR LF in a key, deployment, version, model, url or name would inject
 * an HTTP header or a log line: refused at load, the key never shown. */
static void header_values_with_cr_lf_or_control_characters_are_refused(void **state)
{
	static const struct bad_case cases[] = {
		{"{\"endpoints\":[{\"name\":\"e\",\"url\":\"https://a\",\"deployment\":\"d\",\"api_key\":\"kkkk\\r\\nX-Evil: 1\"}]}", "carriage return (CR) in its API key"},
		{"{\"endpoints\":[{\"name\":\"e\",\"url\":\"https://a\",\"deployment\":\"d\",\"api_key\":\"kkkk\\nX\"}]}", "line feed (LF) in its API key"},
		{"{\"endpoints\":[{\"name\":\"e\",\"url\":\"https://a\",\"deployment\":\"d\\r\\nX-Evil: 1\",\"api_key\":\"kkkk\"}]}", "in its `deployment`"},
		{"{\"endpoints\":[" EP ",\"api_version\":\"2024\\n\"}]}", "line feed (LF) in its `api_version`"},
		{"{\"endpoints\":[" EP ",\"model\":\"m\\u0001\"}]}", "a control character in its `model`"},
		{"{\"endpoints\":[{\"name\":\"e\",\"url\":\"https://a\\r\\nHost: x\",\"deployment\":\"d\",\"api_key\":\"kkkk\"}]}", "in its `url`"},
		{"{\"endpoints\":[{\"name\":\"e\\nfake log line\",\"url\":\"https://a\",\"deployment\":\"d\",\"api_key\":\"kkkk\"}]}", "endpoints[0] has a line feed (LF) in its `name`"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct llm_config c;
		struct err err = ERR_INIT;
		int rc = parse(&c, cases[i].text, &err);
		if (rc != CONVBI_ECONFIG || !strstr(err.msg, cases[i].must_contain) || strchr(err.msg, '\n') ||
		    strchr(err.msg, '\r') || strstr(err.msg, "kkkk"))
			fail_msg("case %zu: rc %d, message \"%s\"", i, rc, err.msg);
	}
	/* the same from the environment */
	unsetenv("CONVBI_CONFIG");
	unsetenv("AZURE_OPENAI_ENDPOINT_1");
	setenv("AZURE_OPENAI_ENDPOINT_0", "https://zero.openai.azure.com/", 1);
	setenv("AZURE_OPENAI_DEPLOYMENT_NAME_0", "gpt-4o", 1);
	setenv("AZURE_OPENAI_API_KEY_0", "key-zero\r\nX-Evil: 1", 1);
	struct llm_config c;
	struct err err = ERR_INIT;
	assert_int_equal(config_load(&c, NULL, &err), CONVBI_ECONFIG);
	assert_non_null(strstr(err.msg, "carriage return (CR) in its API key"));
	assert_null(strstr(err.msg, "key-zero"));
	setenv("AZURE_OPENAI_API_KEY_0", "key-zero", 1);
	setenv("AZURE_OPENAI_DEPLOYMENT_NAME_0", "gpt\n4o", 1);
	assert_int_equal(config_load(&c, NULL, &err), CONVBI_ECONFIG);
	assert_non_null(strstr(err.msg, "line feed (LF) in its `deployment`"));
	unsetenv("AZURE_OPENAI_ENDPOINT_0");
	unsetenv("AZURE_OPENAI_DEPLOYMENT_NAME_0");
	unsetenv("AZURE_OPENAI_API_KEY_0");
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "config_load hung on a non-regular file\n";
	(void)!write(2, msg, sizeof msg - 1);
	_exit(1);
}

/* A FIFO, a device or a directory is refused at once with one line; a
 * file over the limit is refused before it is read (a sparse 4 GiB file
 * would take seconds and 4 GiB to read). */
static void the_config_file_must_be_a_small_regular_file(void **state)
{
	char fifo[512], big[512];
	snprintf(fifo, sizeof fifo, "%s/test_config.%d.fifo", SCRATCH_DIR, (int)getpid());
	snprintf(big, sizeof big, "%s/test_config.%d.big", SCRATCH_DIR, (int)getpid());
	unlink(fifo);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	signal(SIGALRM, on_alarm);
	alarm(10);
	const struct bad_case cases[] = {
		{fifo, "is a FIFO (named pipe), not a regular file"},
		{"/dev/zero", "is a character device, not a regular file"},
		{SCRATCH_DIR, "is a directory, not a regular file"},
		{big, "is larger than 1048576 bytes"},
	};
	int fd = open(big, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)4 << 30), 0);
	close(fd);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct llm_config c;
		struct err err = ERR_INIT;
		int rc = config_load(&c, cases[i].text, &err);
		if (rc != CONVBI_ECONFIG || !strstr(err.msg, cases[i].must_contain) || !strstr(err.msg, cases[i].text))
			fail_msg("case %zu: rc %d, message \"%s\"", i, rc, err.msg);
	}
	alarm(0);
	unlink(fifo);
	unlink(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(full_file_is_read_with_every_field),
		cmocka_unit_test(defaults_fill_what_the_file_leaves_out),
		cmocka_unit_test(every_mistake_gets_one_line_naming_source_endpoint_and_fix),
		cmocka_unit_test(seed_environment_variables_are_discovered_until_the_first_gap),
		cmocka_unit_test(nothing_configured_says_what_to_set),
		cmocka_unit_test(a_missing_file_is_named),
		cmocka_unit_test(numbers_must_be_whole_and_in_range_and_strings_whole),
		cmocka_unit_test(header_values_with_cr_lf_or_control_characters_are_refused),
		cmocka_unit_test(the_config_file_must_be_a_small_regular_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
