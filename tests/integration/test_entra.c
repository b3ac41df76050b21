/* test_entra.c -- Entra ID authentication against the fake Azure OpenAI server
 * and its fake token service (issue 17 items 1 and 6): every auth type on a
 * resource with key authentication disabled, tokens shared by endpoints and
 * by processes (one fetch per expiry under 16 callers in 4 processes),
 * refresh before expiry and once on a 401, the private cache file, and no
 * token, secret or identity header in any output.  The metadata address is
 * never contacted: every test points token_url or the environment at the
 * fake on loopback. */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "convbi/convbi.h"
#include "fake.h"
#include "llm/config.h"
#include "llm/llm.h"
#include "testutil.h"
#include "util/clock.h"

#define SECRET "cs~Sekr3t-value-000111"
#define FED "eyJhbGciOiJSUzI1NiJ9.federated-assertion-777"
#define IDH "853b9a84-5bfa-4b22-a3f3-0b9a43d9ad8a"
#define TOKEN_PREFIX "eyJ0eXAiOiJKV1QifQ.fk" /* every token the fake issues starts so */

static char scen[4096];

/* Two keyless endpoints (east, west) and one that takes keys (keyed). */
static const char *scenario(int lifetime_s, int token_latency_ms)
{
	snprintf(scen, sizeof scen,
	         "{\"entra\": {\"tenant_id\": \"tnt-1\", \"client_id\": \"cid-1\", \"client_secret\": \"" SECRET
	         "\","
	         " \"federated_token\": \"" FED "\", \"identity_header\": \"" IDH
	         "\", \"lifetime_s\": %d, \"latency_ms\": %d},"
	         " \"endpoints\": ["
	         "{\"name\": \"east\", \"api_key\": \"k-east-unused-1\", \"deployment\": \"gpt-4o\", \"local_auth\": false},"
	         "{\"name\": \"west\", \"api_key\": \"k-west-unused-2\", \"deployment\": \"gpt-4o\", \"local_auth\": false},"
	         "{\"name\": \"keyed\", \"api_key\": \"k-keyed-3\", \"deployment\": \"gpt-4o\"}],"
	         " \"default_reply\": \"OK\"}",
	         lifetime_s, token_latency_ms);
	return scen;
}

struct env {
	struct fake f;
	struct llm *l;
	char cfg[1024];
};

/* Writes a config with the named endpoints (comma-separated), each with
 * the given auth object; "%P" in auth becomes the fake's port. */
static void write_config(struct env *e, const char *names, const char *auth, const char *extra_top)
{
	char buf[8192], a[1024];
	int port = fake_port(&e->f, "east");
	const char *p = strstr(auth, "%P");
	if (p)
		snprintf(a, sizeof a, "%.*s%d%s", (int)(p - auth), auth, port, p + 2);
	else
		snprintf(a, sizeof a, "%s", auth);
	int n = snprintf(buf, sizeof buf, "{\"endpoints\": [");
	char list[256];
	snprintf(list, sizeof list, "%s", names);
	int first = 1;
	for (char *name = strtok(list, ","); name; name = strtok(NULL, ",")) {
		n += snprintf(buf + n, sizeof buf - n,
		              "%s{\"name\": \"%s\", \"url\": \"http://127.0.0.1:%d\", \"deployment\": \"gpt-4o\", \"auth\": %s}",
		              first ? "" : ",", name, fake_port(&e->f, name), a);
		first = 0;
	}
	snprintf(buf + n, sizeof buf - n,
	         "], \"retry\": {\"max_attempts\": 4, \"deadline_ms\": 20000, \"connect_timeout_ms\": 1000,"
	         " \"first_byte_timeout_ms\": 5000, \"idle_timeout_ms\": 5000},"
	         " \"state\": {\"path\": \"%s/state\"}%s%s}",
	         e->f.dir, extra_top ? "," : "", extra_top ? extra_top : "");
	snprintf(e->cfg, sizeof e->cfg, "%s/config.json", e->f.dir);
	assert_int_equal(tu_write_file(e->cfg, buf), 0);
}

static int open_llm(struct env *e, struct llm **out, struct err *err)
{
	struct llm_config cfg;
	int rc = config_load(&cfg, e->cfg, err);
	if (rc)
		return rc;
	return llm_open(out, &cfg, err);
}

static void start_fake_only(struct env *e, int lifetime_s)
{
	memset(e, 0, sizeof *e);
	assert_int_equal(fake_start(&e->f, scenario(lifetime_s, 0)), 0);
}

/* Opens the client on the named endpoints with auth, while the variables
 * vars (name, value, ..., NULL) are set: a type reads them at load. */
static void open_with(struct env *e, const char *names, const char *auth, const char *const *vars)
{
	for (size_t i = 0; vars && vars[i]; i += 2)
		setenv(vars[i], vars[i + 1], 1);
	write_config(e, names, auth, NULL);
	struct err err = ERR_INIT;
	if (open_llm(e, &e->l, &err))
		fail_msg("open: %s", err.msg);
	for (size_t i = 0; vars && vars[i]; i += 2)
		unsetenv(vars[i]);
}

static void start(struct env *e, int lifetime_s, const char *names, const char *auth)
{
	start_fake_only(e, lifetime_s);
	open_with(e, names, auth, NULL);
}

static void stop(struct env *e)
{
	llm_close(e->l);
	fake_stop(&e->f);
}

static int chat(struct llm *l, struct llm_reply *rep, struct err *err)
{
	struct chat_msg m = {"user", "hello"};
	struct llm_request req = {.msgs = &m, .n = 1, .temperature = -1};
	return llm_chat(l, &req, rep, err);
}

static void assert_chat_ok(struct llm *l)
{
	struct llm_reply rep;
	struct err err = ERR_INIT;
	int rc = chat(l, &rep, &err);
	if (rc)
		fail_msg("chat: %s", err.msg);
	assert_string_equal(rep.content, "OK");
	llm_reply_release(&rep);
}

/* Nothing the test can see holds an issued token, the client secret, the
 * federated assertion or the identity header. */
static void assert_no_secret(const char *text)
{
	if (!text)
		return;
	const char *bad[] = {TOKEN_PREFIX, SECRET, FED, IDH};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (strstr(text, bad[i]))
			fail_msg("a secret (%s...) leaked into: %.300s", bad[i], text);
}

static void assert_log_clean(struct env *e)
{
	char *log = fake_log(&e->f);
	assert_non_null(log);
	assert_no_secret(log);
	free(log);
}

/* ---- each auth type --------------------------------------------------------- */

static void managed_identity_from_the_metadata_service_sends_a_bearer_token_to_a_keyless_resource(void **state)
{
	struct env e;
	start(&e, 3600, "east",
	      "{\"type\": \"managed_identity\", \"client_id\": \"cid-1\","
	      " \"token_url\": \"http://127.0.0.1:%P/metadata/identity/oauth2/token\"}");
	assert_chat_ok(e.l);
	assert_chat_ok(e.l);
	assert_int_equal(fake_stat(&e.f, "east", "token_requests"), 1);
	assert_int_equal(fake_log_count(&e.f, "\"metadata\":\"true\""), 1);
	assert_int_equal(
	        fake_log_count(&e.f,
	                       "api-version=2018-02-01&resource=https%3A%2F%2Fcognitiveservices.azure.com%2F&client_id=cid-1"),
	        1);
	assert_int_equal(fake_log_count(&e.f, "\"authorization\":\"<token>\""), 2);
	assert_int_equal(fake_log_count(&e.f, "\"api-key\""), 0);
	assert_log_clean(&e);
	stop(&e);
}

static void managed_identity_on_app_service_uses_identity_endpoint_and_header(void **state)
{
	struct env e;
	start_fake_only(&e, 3600);
	char ep[256];
	snprintf(ep, sizeof ep, "http://127.0.0.1:%d/msi/token", fake_port(&e.f, "east"));
	const char *const vars[] = {"IDENTITY_ENDPOINT", ep, "IDENTITY_HEADER", IDH, NULL};
	open_with(&e, "east", "{\"type\": \"managed_identity\"}", vars);
	assert_chat_ok(e.l);
	assert_int_equal(fake_log_count(&e.f, "/msi/token?api-version=2019-08-01&resource="), 1);
	assert_int_equal(fake_log_count(&e.f, "\"x-identity-header\":\"<match>\""), 1);
	assert_int_equal(fake_log_count(&e.f, "\"authorization\":\"<token>\""), 1);
	assert_log_clean(&e);
	stop(&e);
}

static void workload_identity_exchanges_the_federated_token_at_the_authority(void **state)
{
	struct env e;
	start_fake_only(&e, 3600);
	char authority[128], fed[1024];
	snprintf(authority, sizeof authority, "http://127.0.0.1:%d/", fake_port(&e.f, "east"));
	snprintf(fed, sizeof fed, "%s/azure-identity-token", e.f.dir);
	assert_int_equal(tu_write_file(fed, FED "\n"), 0);
	const char *const vars[] = {"AZURE_AUTHORITY_HOST",
	                            authority,
	                            "AZURE_FEDERATED_TOKEN_FILE",
	                            fed,
	                            "AZURE_TENANT_ID",
	                            "tnt-1",
	                            "AZURE_CLIENT_ID",
	                            "cid-1",
	                            NULL};
	open_with(&e, "east", "{\"type\": \"workload_identity\"}", vars);
	assert_chat_ok(e.l);
	assert_int_equal(fake_log_count(&e.f, "\"path\":\"/tnt-1/oauth2/v2.0/token\""), 1);
	assert_int_equal(
	        fake_log_count(
	                &e.f,
	                "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=<redacted>"),
	        1);
	assert_int_equal(fake_log_count(&e.f, "scope=https%3A%2F%2Fcognitiveservices.azure.com%2F.default"), 1);
	assert_int_equal(fake_log_count(&e.f, "\"authorization\":\"<token>\""), 1);
	assert_log_clean(&e);
	stop(&e);
}

static void client_secret_gets_a_token_with_the_client_credentials_grant(void **state)
{
	struct env e;
	setenv("CONVBI_TEST_CLIENT_SECRET", SECRET, 1);
	start(&e, 3600, "east",
	      "{\"type\": \"client_secret\", \"tenant_id\": \"tnt-1\", \"client_id\": \"cid-1\","
	      " \"client_secret_env\": \"CONVBI_TEST_CLIENT_SECRET\","
	      " \"token_url\": \"http://127.0.0.1:%P/tnt-1/oauth2/v2.0/token\"}");
	assert_chat_ok(e.l);
	assert_int_equal(fake_log_count(&e.f, "grant_type=client_credentials&client_id=cid-1"), 1);
	assert_int_equal(fake_log_count(&e.f, "client_secret=<redacted>"), 1);
	assert_int_equal(fake_log_count(&e.f, "\"authorization\":\"<token>\""), 1);
	assert_log_clean(&e);
	stop(&e);
	unsetenv("CONVBI_TEST_CLIENT_SECRET");
}

/* ---- refusals, one clear line each ----------------------------------------------- */

static void a_key_on_a_resource_with_key_auth_disabled_is_refused_with_a_clear_error(void **state)
{
	struct env e;
	start_fake_only(&e, 3600);
	write_config(&e, "east", "{\"type\": \"api_key\"}", NULL);
	/* an api_key auth needs the key: add it */
	char *text = tu_read_file(e.cfg, NULL);
	char *at = strstr(text, "\"auth\"");
	char fixed[8192];
	snprintf(fixed, sizeof fixed, "%.*s\"api_key\": \"k-east-unused-1\", %s", (int)(at - text), text, at);
	assert_int_equal(tu_write_file(e.cfg, fixed), 0);
	free(text);
	struct err err = ERR_INIT;
	assert_int_equal(open_llm(&e, &e.l, &err), CONVBI_OK);
	struct llm_reply rep;
	assert_int_equal(chat(e.l, &rep, &err), CONVBI_EAUTH);
	assert_non_null(strstr(err.msg, "AuthenticationTypeDisabled"));
	assert_non_null(strstr(err.msg, "Key based authentication is disabled"));
	assert_null(strstr(err.msg, "k-east-unused-1"));
	llm_reply_release(&rep);
	stop(&e);
}

static void a_refused_client_secret_is_one_clear_line_without_the_secret(void **state)
{
	struct env e;
	setenv("CONVBI_TEST_CLIENT_SECRET", "wrong-" SECRET, 1);
	start(&e, 3600, "east",
	      "{\"type\": \"client_secret\", \"tenant_id\": \"tnt-1\", \"client_id\": \"cid-1\","
	      " \"client_secret_env\": \"CONVBI_TEST_CLIENT_SECRET\","
	      " \"token_url\": \"http://127.0.0.1:%P/tnt-1/oauth2/v2.0/token\"}");
	struct llm_reply rep;
	struct err err = ERR_INIT;
	assert_int_equal(chat(e.l, &rep, &err), CONVBI_EAUTH);
	assert_non_null(strstr(err.msg, "no Entra ID token (client_secret) from http://127.0.0.1:"));
	assert_non_null(strstr(err.msg, "HTTP 401 invalid_client: AADSTS7000215: Invalid client secret provided."));
	assert_null(strchr(err.msg, '\n'));
	assert_no_secret(err.msg);
	/* nothing was sent to the model endpoint without a token */
	assert_int_equal(fake_stat(&e.f, "east", "requests"), 0);
	struct buf j = BUF_INIT;
	assert_int_equal(llm_reply_json(&j, &rep, CONVBI_EAUTH, err.msg), CONVBI_OK);
	assert_no_secret(j.data);
	buf_release(&j);
	llm_reply_release(&rep);
	assert_log_clean(&e);
	stop(&e);
	unsetenv("CONVBI_TEST_CLIENT_SECRET");
}

static void an_unreachable_token_service_fails_the_call_and_is_not_asked_again_at_once(void **state)
{
	struct env e;
	start(&e, 3600, "east",
	      "{\"type\": \"managed_identity\", \"token_url\": \"http://127.0.0.1:1/metadata/identity/oauth2/token\"}");
	struct llm_reply rep;
	struct err err = ERR_INIT;
	int64_t t0 = clock_mono_ms();
	assert_int_equal(chat(e.l, &rep, &err), CONVBI_EAUTH);
	assert_non_null(
	        strstr(err.msg,
	               "no Entra ID token (managed_identity) from http://127.0.0.1:1/metadata/identity/oauth2/token: connect"));
	llm_reply_release(&rep);
	/* the failure is held briefly: a second call fails without three more connects */
	assert_int_equal(chat(e.l, &rep, &err), CONVBI_EAUTH);
	llm_reply_release(&rep);
	assert_true(clock_mono_ms() - t0 < 15000);
	stop(&e);
}

/* ---- sharing and refreshing -------------------------------------------------------- */

static void endpoints_with_one_identity_share_one_token(void **state)
{
	struct env e;
	start(&e, 3600, "east,west",
	      "{\"type\": \"managed_identity\", \"token_url\": \"http://127.0.0.1:%P/metadata/identity/oauth2/token\"}");
	for (int i = 0; i < 6; i++)
		assert_chat_ok(e.l);
	assert_true(fake_stat(&e.f, "east", "requests") > 0);
	assert_true(fake_stat(&e.f, "west", "requests") > 0);
	assert_int_equal(fake_stat(&e.f, "east", "token_requests"), 1);
	/* and a second engine (another process would be the same) reads it from the private cache */
	struct llm *l2 = NULL;
	struct err err = ERR_INIT;
	assert_int_equal(open_llm(&e, &l2, &err), CONVBI_OK);
	assert_chat_ok(l2);
	llm_close(l2);
	assert_int_equal(fake_stat(&e.f, "east", "token_requests"), 1);
	stop(&e);
}

/* The names of the token cache files in dir (0 or more). */
static int cache_files(const char *dir, char paths[][1024], int max)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *de;
	while (d && (de = readdir(d)) && n < max)
		if (!strncmp(de->d_name, "convbi-token-", 13) && strstr(de->d_name, ".tok") &&
		    !strcmp(de->d_name + strlen(de->d_name) - 4, ".tok"))
			snprintf(paths[n++], 1024, "%s/%s", dir, de->d_name);
	if (d)
		closedir(d);
	return n;
}

static void the_cache_file_is_private_and_a_foreign_one_is_ignored(void **state)
{
	struct env e;
	start(&e, 3600, "east",
	      "{\"type\": \"managed_identity\", \"token_url\": \"http://127.0.0.1:%P/metadata/identity/oauth2/token\"}");
	assert_chat_ok(e.l);
	char paths[4][1024];
	assert_int_equal(cache_files(e.f.dir, paths, 4), 1);
	struct stat st;
	assert_int_equal(stat(paths[0], &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	char lock[1100];
	snprintf(lock, sizeof lock, "%.*s.lock", (int)strlen(paths[0]) - 4, paths[0]);
	assert_int_equal(stat(lock, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	char *text = tu_read_file(paths[0], NULL);
	assert_non_null(strstr(text, TOKEN_PREFIX)); /* the file holds the token; nothing else may show it */
	free(text);
	llm_close(e.l);
	e.l = NULL;

	/* a cache file others can read is not trusted: a new engine fetches its own */
	assert_int_equal(tu_write_file(paths[0], "convbi-token 1\n99999999999999 3600000\nplanted-token-abc\n"), 0);
	assert_int_equal(chmod(paths[0], 0644), 0);
	struct err err = ERR_INIT;
	assert_int_equal(open_llm(&e, &e.l, &err), CONVBI_OK);
	assert_chat_ok(e.l);
	assert_int_equal(fake_stat(&e.f, "east", "token_requests"), 2);
	assert_int_equal(fake_log_count(&e.f, "<mismatch>"), 0);
	stop(&e);
}

static int64_t slow_factor(void)
{
	return getenv("CONVBI_VALGRIND") ? 4 : 1;
}

static void a_token_is_refreshed_before_it_expires_and_never_sent_expired(void **state)
{
	struct env e;
	/* 2 s tokens: refreshed 1/12 of the lifetime (167 ms) before expiry */
	start(&e, 2, "east",
	      "{\"type\": \"managed_identity\", \"token_url\": \"http://127.0.0.1:%P/metadata/identity/oauth2/token\"}");
	int64_t t0 = clock_mono_ms();
	int calls = 0;
	while (clock_mono_ms() - t0 < 4500 * slow_factor()) {
		assert_chat_ok(e.l);
		calls++;
		clock_sleep_ms(50);
	}
	long fetched = fake_stat(&e.f, "east", "token_requests");
	int64_t secs = (clock_mono_ms() - t0) / 1000;
	/* one fetch per lifetime (at 0, ~1.8 s, ~3.7 s ...), never one per call */
	assert_true(fetched >= 2);
	assert_true(fetched <= secs / 1 + 1);
	assert_true(calls > 3 * fetched);
	assert_int_equal(fake_log_count(&e.f, "<expired token>"), 0);
	assert_int_equal(fake_log_count(&e.f, "\"status\":401"), 0);
	stop(&e);
}

static void a_401_refreshes_the_token_once_and_the_call_succeeds(void **state)
{
	struct env e;
	start(&e, 3600, "east",
	      "{\"type\": \"managed_identity\", \"token_url\": \"http://127.0.0.1:%P/metadata/identity/oauth2/token\"}");
	assert_chat_ok(e.l);
	assert_int_equal(fake_control(&e.f, "east", "POST", "/_fake/revoke_tokens", NULL, NULL), 200);
	struct llm_reply rep;
	struct err err = ERR_INIT;
	assert_int_equal(chat(e.l, &rep, &err), CONVBI_OK);
	assert_int_equal(rep.nattempts, 2);
	assert_int_equal(rep.attempts[0].status, 401);
	assert_string_equal(rep.attempts[0].endpoint, "east");
	assert_int_equal(rep.attempts[1].status, 200);
	assert_string_equal(rep.attempts[1].endpoint, "east");
	llm_reply_release(&rep);
	assert_int_equal(fake_stat(&e.f, "east", "token_requests"), 2);
	assert_int_equal(fake_log_count(&e.f, "<revoked token>"), 1);
	/* the endpoint was not put in an auth cooldown: the next call goes straight through */
	assert_chat_ok(e.l);
	assert_int_equal(fake_stat(&e.f, "east", "token_requests"), 2);
	stop(&e);
}

static void a_second_401_is_not_refreshed_again(void **state)
{
	struct env e;
	start(&e, 3600, "east",
	      "{\"type\": \"managed_identity\", \"token_url\": \"http://127.0.0.1:%P/metadata/identity/oauth2/token\"}");
	assert_int_equal(fake_control(&e.f, "east", "POST", "/_fake/faults", "[{\"kind\": \"http401\", \"count\": 5}]", NULL),
	                 200);
	struct llm_reply rep;
	struct err err = ERR_INIT;
	assert_int_equal(chat(e.l, &rep, &err), CONVBI_EAUTH);
	assert_int_equal(rep.nattempts, 2); /* the first, then once with a fresh token */
	assert_int_equal(fake_stat(&e.f, "east", "token_requests"), 2);
	assert_non_null(strstr(err.msg, "Cognitive Services OpenAI User"));
	assert_no_secret(err.msg);
	llm_reply_release(&rep);
	stop(&e);
}

/* ---- 16 callers in 4 processes ------------------------------------------------------ */

struct caller {
	struct llm *l;
	int64_t until;
	int ok, failed;
	char why[300];
};

static void *caller_main(void *arg)
{
	struct caller *c = arg;
	while (clock_mono_ms() < c->until) {
		struct llm_reply rep;
		struct err err = ERR_INIT;
		if (chat(c->l, &rep, &err) == CONVBI_OK)
			c->ok++;
		else {
			c->failed++;
			snprintf(c->why, sizeof c->why, "%s", err.msg);
		}
		llm_reply_release(&rep);
		clock_sleep_ms(40); /* ~400 calls/s per process: enough to meet every refresh, light on a shared machine */
	}
	return NULL;
}

/* One process: 16 threads calling for run_ms; exit 0 when every call
 * succeeded. */
static int one_process(struct env *e, int64_t run_ms)
{
	struct llm *l = NULL;
	struct err err = ERR_INIT;
	if (open_llm(e, &l, &err)) {
		fprintf(stderr, "open: %s\n", err.msg);
		return 1;
	}
	struct caller c[16];
	pthread_t t[16];
	int64_t until = clock_mono_ms() + run_ms;
	for (int i = 0; i < 16; i++) {
		c[i] = (struct caller){l, until, 0, 0, ""};
		pthread_create(&t[i], NULL, caller_main, &c[i]);
	}
	int bad = 0, ok = 0;
	for (int i = 0; i < 16; i++) {
		pthread_join(t[i], NULL);
		ok += c[i].ok;
		if (c[i].failed) {
			fprintf(stderr, "caller %d: %d failed: %s\n", i, c[i].failed, c[i].why);
			bad = 1;
		}
	}
	llm_close(l);
	return bad || ok < 16 ? 1 : 0;
}

static void sixteen_callers_in_four_processes_fetch_one_token_per_expiry(void **state)
{
	struct env e;
	memset(&e, 0, sizeof e);
	/* 3 s tokens (refreshed 250 ms before expiry), the token service 30 ms slow so that
	 * callers really do arrive while a fetch is in flight */
	assert_int_equal(fake_start(&e.f, scenario(3, 30)), 0);
	write_config(&e, "east,west",
	             "{\"type\": \"managed_identity\", \"token_url\": \"http://127.0.0.1:%P/metadata/identity/oauth2/token\"}",
	             NULL);
	int64_t run_ms = 7000 * slow_factor();
	int64_t t0 = clock_mono_ms();
	pid_t kids[4];
	for (int i = 0; i < 4; i++) {
		kids[i] = fork();
		assert_true(kids[i] >= 0);
		if (kids[i] == 0)
			_exit(one_process(&e, run_ms));
	}
	for (int i = 0; i < 4; i++) {
		int st = 0;
		assert_int_equal(waitpid(kids[i], &st, 0), kids[i]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	int64_t elapsed = clock_mono_ms() - t0;
	long fetched = fake_stat(&e.f, "east", "token_requests");
	long model = fake_stat(&e.f, "east", "requests") + fake_stat(&e.f, "west", "requests");
	/* a token is good for 2.75 s: one fetch at the start and one per 2.75 s after */
	long expiries = (long)(elapsed / 2750) + 1;
	print_message("%ld model requests, %ld token fetches in %lld ms (at most %ld expiries)\n", model, fetched,
	              (long long)elapsed, expiries);
	assert_true(fetched >= 2);
	assert_true(fetched <= expiries);
	assert_true(model > 20 * fetched);
	/* fetches are one lifetime apart, not bunched */
	char *log = fake_log(&e.f);
	long long last = 0;
	for (char *p = log; (p = strstr(p, "\"path\":\"/metadata/identity")); p++) {
		char *t = p;
		while (t > log && strncmp(t, "{\"t_ms\":", 8))
			t--;
		long long ms = atoll(t + 8);
		if (last)
			assert_true(ms - last >= 2000);
		last = ms;
	}
	assert_no_secret(log);
	free(log);
	assert_int_equal(fake_log_count(&e.f, "\"status\":401"), 0);
	fake_stop(&e.f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(managed_identity_from_the_metadata_service_sends_a_bearer_token_to_a_keyless_resource),
	        cmocka_unit_test(managed_identity_on_app_service_uses_identity_endpoint_and_header),
	        cmocka_unit_test(workload_identity_exchanges_the_federated_token_at_the_authority),
	        cmocka_unit_test(client_secret_gets_a_token_with_the_client_credentials_grant),
	        cmocka_unit_test(a_key_on_a_resource_with_key_auth_disabled_is_refused_with_a_clear_error),
	        cmocka_unit_test(a_refused_client_secret_is_one_clear_line_without_the_secret),
	        cmocka_unit_test(an_unreachable_token_service_fails_the_call_and_is_not_asked_again_at_once),
	        cmocka_unit_test(endpoints_with_one_identity_share_one_token),
	        cmocka_unit_test(the_cache_file_is_private_and_a_foreign_one_is_ignored),
	        cmocka_unit_test(a_token_is_refreshed_before_it_expires_and_never_sent_expired),
	        cmocka_unit_test(a_401_refreshes_the_token_once_and_the_call_succeeds),
	        cmocka_unit_test(a_second_401_is_not_refreshed_again),
	        cmocka_unit_test(sixteen_callers_in_four_processes_fetch_one_token_per_expiry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
