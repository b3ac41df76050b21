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
	assert_int_equal(parse(&c, "{\"endpoints\":[{\"url\":\"https://a\",\"deployment\":\"d\",\"api_key\":\"k123\"}]}", &err),
	                 CONVBI_OK);
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

/* Each case must be refused with ECONFIG, one line naming the file and
 * holding must_contain, never the key "kkkk". */
static void expect_config_errors(const struct bad_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct llm_config c;
		struct err err = ERR_INIT;
		int rc = parse(&c, cases[i].text, &err);
		if (rc != CONVBI_ECONFIG || !strstr(err.msg, cases[i].must_contain) || !strstr(err.msg, "t.json") ||
		    strchr(err.msg, '\n') || strstr(err.msg, "kkkk"))
			fail_msg("case %zu: rc %d, message \"%s\"", i, rc, err.msg);
		assert_int_equal(c.n, 0);
	}
}

static void every_mistake_gets_one_line_naming_source_endpoint_and_fix(void **state)
{
	static const struct bad_case cases[] = {
	        {"not json", "is not valid JSON"},
	        {"[]", "top level must be an object"},
	        {"{}", "has no \"endpoints\" array"},
	        {"{\"endpoints\":[]}", "its \"endpoints\" array is empty"},
	        {"{\"endpoints\":[{\"name\":\"e\",\"url\":\"https://a\",\"deployment\":\"d\",\"api-key\":\"kkkk\"}]}",
	         "endpoint `e` has an unknown field `api-key`; remove it or correct its name"},
	        {"{\"endpoints\":[1]}", "endpoints[0] is not an object"},
	        {"{\"endpoints\":[{\"name\":\"e\",\"kind\":\"gcp\",\"url\":\"https://a\"}]}",
	         "use \"azure\", \"azure-v1\" or \"openai\""},
	        {"{\"endpoints\":[{\"name\":\"e\",\"deployment\":\"d\",\"api_key\":\"kkkk\"}]}", "endpoint `e` has no `url`"},
	        {"{\"endpoints\":[{\"name\":\"e\",\"url\":\"ftp://a\",\"deployment\":\"d\",\"api_key\":\"kkkk\"}]}",
	         "must start with http"},
	        {"{\"endpoints\":[{\"name\":\"e\",\"url\":\"https://a\",\"api_key\":\"kkkk\"}]}", "has no `deployment`"},
	        {"{\"endpoints\":[{\"name\":\"e\",\"url\":\"https://a\",\"deployment\":\"d\"}]}", "has no API key"},
	        {"{\"endpoints\":[{\"name\":\"e\",\"url\":\"https://a\",\"deployment\":\"d\",\"api_key_env\":\"CONVBI_TEST_UNSET_VAR\"}]}",
	         "$CONVBI_TEST_UNSET_VAR, which is not set"},
	        {"{\"endpoints\":[{\"name\":\"e\",\"url\":\"https://a\",\"deployment\":\"d\",\"api_key\":\"kkkk\",\"weight\":0}]}",
	         "weight 0"},
	        {"{\"endpoints\":[{\"name\":\"e\",\"url\":\"https://a\",\"deployment\":\"d\",\"api_key\":\"kkkk\",\"weight\":\"x\"}]}",
	         "weight \"x\" (a string); use a whole number from 1 to 1000"},
	        {"{\"endpoints\":[{\"name\":\"e\",\"url\":\"https://a\",\"deployment\":\"d\",\"api_key\":\"kkkk\"},{\"name\":\"e\",\"url\":\"https://b\",\"deployment\":\"d\",\"api_key\":\"kkkk\"}]}",
	         "two endpoints are named `e`"},
	        {"{\"endpoints\":[{\"name\":\"e\",\"url\":\"https://a\",\"deployment\":\"d\",\"api_key\":\"kkkk\"}],\"retry\":{\"max_attempts\":0}}",
	         "retry.max_attempts"},
	        {"{\"endpoints\":[{\"name\":\"e\",\"url\":\"https://a\",\"deployment\":\"d\",\"api_key\":\"kkkk\"}],\"state\":{\"backend\":\"etcd\"}}",
	         "state.backend"},
	};
	unsetenv("CONVBI_TEST_UNSET_VAR");
	expect_config_errors(cases, sizeof cases / sizeof cases[0]);
}

static void prices_reserved_and_budgets_are_read_in_dollars(void **state)
{
	struct llm_config c;
	struct err err = ERR_INIT;
	const char *text =
	        "{\"endpoints\":[" EP
	        ",\"price\":{\"input\":2.5,\"cached_input\":1.25,\"output\":10},"
	        "\"budget\":{\"daily\":5,\"monthly\":100.005}},"
	        "{\"name\":\"m\",\"url\":\"https://b\",\"deployment\":\"d\",\"api_key\":\"kkkk\",\"price\":{\"input\":0.15,\"output\":0.6}},"
	        "{\"name\":\"ptu\",\"url\":\"https://c\",\"deployment\":\"d\",\"api_key\":\"kkkk\",\"reserved\":true},"
	        "{\"name\":\"ptu2\",\"url\":\"https://d\",\"deployment\":\"d\",\"api_key\":\"kkkk\",\"price\":{\"reserved\":true}}],"
	        "\"budget\":{\"daily\":20}}";
	assert_int_equal(parse(&c, text, &err), CONVBI_OK);
	assert_true(c.eps[0].price.set);
	assert_true(c.eps[0].price.input == 2.5 && c.eps[0].price.cached_input == 1.25 && c.eps[0].price.output == 10);
	assert_int_equal(c.eps[0].budget.daily_uusd, 5000000);
	assert_int_equal(c.eps[0].budget.monthly_uusd, 100005000);
	assert_true(c.eps[1].price.cached_input == 0.15); /* defaults to input */
	assert_int_equal(c.eps[1].budget.daily_uusd, 0);
	assert_true(c.eps[2].price.reserved && !c.eps[2].price.set);
	assert_true(c.eps[3].price.reserved && !c.eps[3].price.set);
	assert_int_equal(c.budget.daily_uusd, 20000000);
	assert_int_equal(c.budget.monthly_uusd, 0);
	config_release(&c);
}

static void a_budget_that_cannot_be_counted_is_refused(void **state)
{
	static const struct bad_case cases[] = {
	        {"{\"endpoints\":[" EP ",\"budget\":{\"daily\":5}}]}", "endpoint `e` has a budget but no price"},
	        {"{\"endpoints\":[" EP "}],\"budget\":{\"monthly\":5}}",
	         "the configuration has a budget but endpoint `e` has no price"},
	        {"{\"endpoints\":[" EP ",\"reserved\":true,\"budget\":{\"daily\":5}}]}", "is reserved (PTU, cost 0)"},
	        {"{\"endpoints\":[" EP ",\"reserved\":true,\"price\":{\"input\":1,\"output\":2}}]}",
	         "both a price and \"reserved\": true"},
	        {"{\"endpoints\":[" EP ",\"price\":{\"input\":1}}]}", "a `price` without `output`"},
	        {"{\"endpoints\":[" EP ",\"price\":{\"input\":-1,\"output\":2}}]}",
	         "price.input -1; use a number of US dollars per million tokens"},
	        {"{\"endpoints\":[" EP ",\"price\":{\"input\":\"1\",\"output\":2}}]}", "price.input \"1\" (a string)"},
	        {"{\"endpoints\":[" EP ",\"price\":5}]}", "a `price` that is not an object"},
	        {"{\"endpoints\":[" EP ",\"reserved\":\"yes\"}]}", "a `reserved` that is not true or false"},
	        {"{\"endpoints\":[" EP ",\"price\":{\"input\":1,\"output\":2},\"budget\":{\"daily\":0}}]}",
	         "budget.daily 0; use a positive number"},
	        {"{\"endpoints\":[" EP ",\"price\":{\"input\":1,\"output\":2},\"budget\":{}}]}", "an empty `budget`"},
	        {"{\"endpoints\":[" EP ",\"price\":{\"input\":1,\"output\":2}}],\"budget\":{\"daily\":1e12}}",
	         "the configuration has budget.daily 1000000000000"},
	        {"{\"endpoints\":[" EP ",\"price\":{\"input\":1,\"output\":2}}],\"budget\":[1]}",
	         "a `budget` that is not an object"},
	};
	expect_config_errors(cases, sizeof cases / sizeof cases[0]);
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
	setenv("AZURE_OPENAI_ENDPOINT_3", "https://three.openai.azure.com", 1); /* after a gap: ignored */
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
	        {"{\"endpoints\":[" EP "}],\"retry\":{\"deadline_ms\":60000.5}}",
	         "retry.deadline_ms is 60000.5; use a whole number from 100 to 3600000"},
	        {"{\"endpoints\":[" EP "}],\"retry\":{\"max_attempts\":4294967302}}",
	         "retry.max_attempts is 4294967302; use a whole number from 1 to 100"},
	        {"{\"endpoints\":[" EP "}],\"state\":{\"timeout_ms\":0}}",
	         "state.timeout_ms is 0; use a whole number from 1 to 600000"},
	        {"{\"endpoints\":[" EP "}],\"state\":{\"cache_ms\":1e300}}", "state.cache_ms is 1e+300"},
	        {"{\"endpoints\":[" EP "}]} trailing", "has text after the JSON value (line 1, column 82)"},
	        {"{\"endpoints\":[" EP "}]}{}", "has text after the JSON value"},
	        {"{\"endpoints\":[{\"name\":\"e\\u0000x\",\"url\":\"https://a\",\"deployment\":\"d\",\"api_key\":\"kkkk\"}]}",
	         "holds a NUL character"},
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
	static const char raw[] =
	        "{\"endpoints\":[{\"name\":\"e\0x\",\"url\":\"https://a\",\"deployment\":\"d\",\"api_key\":\"kkkk\"}]}";
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
	        {"{\"endpoints\":[{\"name\":\"e\",\"url\":\"https://a\",\"deployment\":\"d\",\"api_key\":\"kkkk\\r\\nX-Evil: 1\"}]}",
	         "carriage return (CR) in its API key"},
	        {"{\"endpoints\":[{\"name\":\"e\",\"url\":\"https://a\",\"deployment\":\"d\",\"api_key\":\"kkkk\\nX\"}]}",
	         "line feed (LF) in its API key"},
	        {"{\"endpoints\":[{\"name\":\"e\",\"url\":\"https://a\",\"deployment\":\"d\\r\\nX-Evil: 1\",\"api_key\":\"kkkk\"}]}",
	         "in its `deployment`"},
	        {"{\"endpoints\":[" EP ",\"api_version\":\"2024\\n\"}]}", "line feed (LF) in its `api_version`"},
	        {"{\"endpoints\":[" EP ",\"model\":\"m\\u0001\"}]}", "a control character in its `model`"},
	        {"{\"endpoints\":[{\"name\":\"e\",\"url\":\"https://a\\r\\nHost: x\",\"deployment\":\"d\",\"api_key\":\"kkkk\"}]}",
	         "in its `url`"},
	        {"{\"endpoints\":[{\"name\":\"e\\nfake log line\",\"url\":\"https://a\",\"deployment\":\"d\",\"api_key\":\"kkkk\"}]}",
	         "endpoints[0] has a line feed (LF) in its `name`"},
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

/* ---- Entra ID auth, spillover, context window (issue 17) ---------------- */

#define AZ "{\"name\":\"e\",\"url\":\"https://a\",\"deployment\":\"d\""

static void clear_azure_identity_env(void)
{
	const char *vars[] = {"AZURE_CLIENT_ID",      "AZURE_TENANT_ID",     "AZURE_FEDERATED_TOKEN_FILE",
	                      "AZURE_AUTHORITY_HOST", "AZURE_CLIENT_SECRET", "IDENTITY_ENDPOINT",
	                      "IDENTITY_HEADER",      "CONVBI_TEST_SECRET"};
	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
		unsetenv(vars[i]);
}

static void each_auth_type_is_read_with_what_the_environment_adds(void **state)
{
	struct llm_config c;
	struct err err = ERR_INIT;
	clear_azure_identity_env();
	setenv("CONVBI_TEST_SECRET", "sec-ret-value-9", 1);
	setenv("AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/azure/tokens/azure-identity-token", 1);
	setenv("AZURE_TENANT_ID", "tenant-from-env", 1);
	setenv("AZURE_CLIENT_ID", "client-from-env", 1);
	setenv("IDENTITY_ENDPOINT", "http://localhost:42356/msi/token", 1);
	setenv("IDENTITY_HEADER", "853b9a84-header", 1);
	const char *text =
	        "{\"endpoints\":[" AZ
	        ",\"api_key\":\"kkkk\"},"
	        "{\"name\":\"mi\",\"url\":\"https://a\",\"deployment\":\"d\",\"auth\":{\"type\":\"managed_identity\",\"client_id\":\"uami\"},"
	        " \"spillover_deployment\":\"std\",\"context_window\":128000},"
	        "{\"name\":\"wi\",\"kind\":\"azure-v1\",\"url\":\"https://a\",\"deployment\":\"d\",\"auth\":{\"type\":\"workload_identity\"}},"
	        "{\"name\":\"cs\",\"url\":\"https://a\",\"deployment\":\"d\",\"auth\":{\"type\":\"client_secret\",\"tenant_id\":\"t1\","
	        " \"client_id\":\"c1\",\"client_secret_env\":\"CONVBI_TEST_SECRET\",\"token_url\":\"http://127.0.0.1:9/tok\",\"scope\":\"https://x/.default\"}}]}";
	assert_int_equal(parse(&c, text, &err), CONVBI_OK);
	assert_int_equal(c.eps[0].auth.type, AUTH_API_KEY);
	assert_null(c.eps[0].spillover_deployment);
	assert_int_equal(c.eps[0].context_window, 0);
	const struct auth_cfg *mi = &c.eps[1].auth, *wi = &c.eps[2].auth, *cs = &c.eps[3].auth;
	assert_int_equal(mi->type, AUTH_MANAGED_IDENTITY);
	assert_string_equal(mi->client_id, "uami");
	assert_string_equal(mi->scope, AUTH_DEFAULT_SCOPE);
	assert_string_equal(mi->identity_endpoint, "http://localhost:42356/msi/token");
	assert_string_equal(secret_value(&mi->identity_header), "853b9a84-header");
	assert_string_equal(c.eps[1].spillover_deployment, "std");
	assert_int_equal(c.eps[1].context_window, 128000);
	assert_int_equal(wi->type, AUTH_WORKLOAD_IDENTITY);
	assert_string_equal(wi->client_id, "client-from-env");
	assert_string_equal(wi->tenant_id, "tenant-from-env");
	assert_string_equal(wi->authority, AUTH_DEFAULT_AUTHORITY);
	assert_string_equal(wi->token_file, "/var/run/secrets/azure/tokens/azure-identity-token");
	assert_int_equal(cs->type, AUTH_CLIENT_SECRET);
	assert_string_equal(cs->tenant_id, "t1");
	assert_string_equal(cs->client_id, "c1");
	assert_string_equal(cs->token_url, "http://127.0.0.1:9/tok");
	assert_string_equal(cs->scope, "https://x/.default");
	assert_string_equal(secret_value(&cs->client_secret), "sec-ret-value-9");
	config_release(&c);
	clear_azure_identity_env();
}

static void auth_mistakes_get_one_line_each_and_never_the_secret(void **state)
{
	static const struct bad_case cases[] = {
	        {"{\"endpoints\":[" AZ ",\"auth\":\"mi\"}]}", "`auth` that is not an object"},
	        {"{\"endpoints\":[" AZ ",\"auth\":{}}]}", "`auth` without `type`"},
	        {"{\"endpoints\":[" AZ ",\"auth\":{\"type\":\"kerberos\"}}]}", "auth type `kerberos`; use \"api_key\""},
	        {"{\"endpoints\":[" AZ ",\"auth\":{\"type\":\"managed_identity\",\"clientid\":\"x\"}}]}",
	         "unknown field `auth.clientid`"},
	        {"{\"endpoints\":[" AZ ",\"auth\":{\"type\":\"managed_identity\",\"client_id\":7}}]}",
	         "non-string `auth.client_id`"},
	        {"{\"endpoints\":[" AZ ",\"api_key\":\"kkkk\",\"auth\":{\"type\":\"managed_identity\"}}]}",
	         "both an API key and auth type managed_identity"},
	        {"{\"endpoints\":[{\"name\":\"e\",\"kind\":\"openai\",\"url\":\"https://a\",\"auth\":{\"type\":\"managed_identity\"}}]}",
	         "Entra ID tokens are for Azure endpoints"},
	        {"{\"endpoints\":[" AZ ",\"auth\":{\"type\":\"api_key\",\"token_url\":\"http://x\"}}]}",
	         "auth type api_key with other `auth` fields"},
	        {"{\"endpoints\":[" AZ ",\"auth\":{\"type\":\"managed_identity\",\"tenant_id\":\"t\"}}]}",
	         "a managed identity belongs to the resource's tenant"},
	        {"{\"endpoints\":[" AZ ",\"auth\":{\"type\":\"managed_identity\",\"client_secret_env\":\"X\"}}]}",
	         "belongs to auth type client_secret"},
	        {"{\"endpoints\":[" AZ ",\"auth\":{\"type\":\"managed_identity\",\"token_url\":\"ftp://x\"}}]}",
	         "auth.token_url `ftp://x`; it must start with http"},
	        {"{\"endpoints\":[" AZ ",\"auth\":{\"type\":\"managed_identity\",\"client_id\":\"a\\r\\nX-Evil: 1\"}}]}",
	         "carriage return (CR) in auth.client_id"},
	        {"{\"endpoints\":[" AZ ",\"auth\":{\"type\":\"workload_identity\",\"client_id\":\"c\",\"tenant_id\":\"t\"}}]}",
	         "$AZURE_FEDERATED_TOKEN_FILE is not set"},
	        {"{\"endpoints\":[" AZ ",\"auth\":{\"type\":\"workload_identity\",\"tenant_id\":\"t\"}}]}",
	         "no client id; set `auth.client_id` or export AZURE_CLIENT_ID"},
	        {"{\"endpoints\":[" AZ ",\"auth\":{\"type\":\"client_secret\",\"client_id\":\"c\"}}]}",
	         "no tenant id; set `auth.tenant_id` or export AZURE_TENANT_ID"},
	        {"{\"endpoints\":[" AZ ",\"auth\":{\"type\":\"client_secret\",\"client_id\":\"c\",\"tenant_id\":\"t\"}}]}",
	         "$AZURE_CLIENT_SECRET, which is not set"},
	        {"{\"endpoints\":[" AZ
	         ",\"auth\":{\"type\":\"client_secret\",\"client_id\":\"c\",\"tenant_id\":\"t\",\"client_secret_env\":\"CONVBI_BAD_SECRET\"}}]}",
	         "carriage return (CR) in the client secret"},
	        {"{\"endpoints\":[{\"name\":\"e\",\"kind\":\"openai\",\"url\":\"https://a\",\"api_key\":\"kkkk\",\"spillover_deployment\":\"s\"}]}",
	         "spillover is an Azure feature"},
	        {"{\"endpoints\":[" AZ ",\"api_key\":\"kkkk\",\"spillover_deployment\":\"\"}]}", "empty `spillover_deployment`"},
	        {"{\"endpoints\":[" AZ ",\"api_key\":\"kkkk\",\"spillover_deployment\":\"s\\n\"}]}",
	         "line feed (LF) in its `spillover_deployment`"},
	        {"{\"endpoints\":[" AZ ",\"api_key\":\"kkkk\",\"context_window\":-5}]}",
	         "context_window -5; use a whole number from 0 to 100000000"},
	        {"{\"endpoints\":[" AZ ",\"api_key\":\"kkkk\",\"context_window\":8192.5}]}", "context_window 8192.5"},
	};
	clear_azure_identity_env();
	setenv("CONVBI_BAD_SECRET", "top-secret-value\r\nX: y", 1);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct llm_config c;
		struct err err = ERR_INIT;
		int rc = parse(&c, cases[i].text, &err);
		if (rc != CONVBI_ECONFIG || !strstr(err.msg, cases[i].must_contain) || !strstr(err.msg, "t.json") ||
		    strchr(err.msg, '\n') || strstr(err.msg, "kkkk") || strstr(err.msg, "top-secret"))
			fail_msg("case %zu: rc %d, message \"%s\"", i, rc, err.msg);
		assert_int_equal(c.n, 0);
	}
	unsetenv("CONVBI_BAD_SECRET");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(full_file_is_read_with_every_field),
	        cmocka_unit_test(defaults_fill_what_the_file_leaves_out),
	        cmocka_unit_test(every_mistake_gets_one_line_naming_source_endpoint_and_fix),
	        cmocka_unit_test(prices_reserved_and_budgets_are_read_in_dollars),
	        cmocka_unit_test(a_budget_that_cannot_be_counted_is_refused),
	        cmocka_unit_test(seed_environment_variables_are_discovered_until_the_first_gap),
	        cmocka_unit_test(nothing_configured_says_what_to_set),
	        cmocka_unit_test(a_missing_file_is_named),
	        cmocka_unit_test(numbers_must_be_whole_and_in_range_and_strings_whole),
	        cmocka_unit_test(header_values_with_cr_lf_or_control_characters_are_refused),
	        cmocka_unit_test(the_config_file_must_be_a_small_regular_file),
	        cmocka_unit_test(each_auth_type_is_read_with_what_the_environment_adds),
	        cmocka_unit_test(auth_mistakes_get_one_line_each_and_never_the_secret),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
