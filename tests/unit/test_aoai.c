/* test_aoai.c -- the wire format: URLs, auth headers, request bodies, and
 * tolerant reading of replies, stream chunks and error bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "convbi/convbi.h"
#include "llm/aoai.h"
#include "llm/backoff.h"

static struct ep_cfg ep_of(int kind)
{
	struct ep_cfg e;
	memset(&e, 0, sizeof e);
	e.name = "east";
	e.kind = kind;
	e.url = "https://east.openai.azure.com";
	e.deployment = "gpt-4o";
	e.model = "m";
	e.api_version = "2024-10-21";
	secret_set(&e.key, "k-east-0123456789");
	return e;
}

static void each_kind_builds_its_own_url_and_auth_header(void **state)
{
	static const struct {
		int kind;
		const char *url;
		const char *auth;
	} cases[] = {
	        {EP_AZURE, "https://east.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
	         "api-key: k-east-0123456789"},
	        {EP_AZURE_V1, "https://east.openai.azure.com/openai/v1/chat/completions", "api-key: k-east-0123456789"},
	        {EP_OPENAI, "https://east.openai.azure.com/chat/completions", "Authorization: Bearer k-east-0123456789"},
	};
	for (size_t i = 0; i < 3; i++) {
		struct ep_cfg e = ep_of(cases[i].kind);
		struct buf b = BUF_INIT;
		assert_int_equal(aoai_url(&b, &e), CONVBI_OK);
		assert_string_equal(b.data, cases[i].url);
		buf_reset(&b);
		assert_int_equal(aoai_auth_header(&b, &e), CONVBI_OK);
		assert_string_equal(b.data, cases[i].auth);
		buf_release(&b);
		secret_release(&e.key);
	}
}

static void bodies_escape_text_and_name_the_model_where_the_kind_needs_it(void **state)
{
	struct chat_msg msgs[] = {{"system", "be \"brief\""}, {"user", "line1\nline2\t\x01"}};
	struct chat_req req = {msgs, 2, 100, 0, 1, 0};
	struct ep_cfg e = ep_of(EP_AZURE);
	struct buf b = BUF_INIT;
	assert_int_equal(aoai_body(&b, &e, &req), CONVBI_OK);
	assert_non_null(strstr(b.data, "\"content\":\"be \\\"brief\\\"\""));
	assert_non_null(strstr(b.data, "line1\\nline2\\t\\u0001"));
	assert_null(strstr(b.data, "\"model\""));
	assert_non_null(strstr(b.data, "\"stream\":true,\"stream_options\":{\"include_usage\":true}"));
	assert_non_null(strstr(b.data, "\"max_tokens\":100"));
	buf_reset(&b);
	e.kind = EP_AZURE_V1;
	assert_int_equal(aoai_body(&b, &e, &req), CONVBI_OK);
	assert_non_null(strstr(b.data, "\"model\":\"gpt-4o\""));
	buf_release(&b);
	secret_release(&e.key);
}

static void a_reply_gives_content_model_and_usage(void **state)
{
	const char *body =
	        "{\"id\":\"x\",\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"SELECT 1\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15}}";
	struct aoai_reply r;
	struct err err = ERR_INIT;
	aoai_reply_init(&r);
	assert_int_equal(aoai_parse_reply(&r, body, strlen(body), &err), CONVBI_OK);
	assert_string_equal(r.content.data, "SELECT 1");
	assert_string_equal(r.model, "gpt-4o-2024-08-06");
	assert_int_equal(r.prompt_tokens, 12);
	assert_int_equal(r.completion_tokens, 3);
	assert_string_equal(r.finish_reason, "stop");
	aoai_reply_release(&r);
	static const char *const bad[] = {"", "[]", "{\"choices\":[]}", "{\"choices\":{}}", "{\"choices\":[{}]}", "nul\0l"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		aoai_reply_init(&r);
		assert_int_equal(aoai_parse_reply(&r, bad[i], strlen(bad[i]), &err), CONVBI_EPROTOCOL);
		aoai_reply_release(&r);
	}
}

static void n_asks_for_choices_which_come_back_in_index_order(void **state)
{
	struct chat_msg m = {"user", "q"};
	struct chat_req req = {&m, 1, 100, 0.7, 0, 3};
	struct ep_cfg e = ep_of(EP_AZURE);
	struct buf b = BUF_INIT;
	assert_int_equal(aoai_body(&b, &e, &req), CONVBI_OK);
	assert_non_null(strstr(b.data, "\"n\":3"));
	assert_non_null(strstr(b.data, "\"temperature\":0.7"));
	buf_reset(&b);
	req.choices = 1;
	assert_int_equal(aoai_body(&b, &e, &req), CONVBI_OK);
	assert_null(strstr(b.data, "\"n\":")); /* one: not sent, as before */
	buf_release(&b);
	secret_release(&e.key);
	const char *body =
	        "{\"choices\":[{\"index\":2,\"message\":{\"content\":\"C\"},\"finish_reason\":\"stop\"},"
	        "{\"index\":0,\"message\":{\"content\":\"A\"},\"finish_reason\":\"stop\"},"
	        "{\"index\":3,\"message\":{\"content\":\"bad\"},\"finish_reason\":\"content_filter\"},"
	        "{\"index\":1,\"message\":{\"content\":\"B\"},\"finish_reason\":\"stop\"}]}";
	struct aoai_reply r;
	struct err err = ERR_INIT;
	aoai_reply_init(&r);
	assert_int_equal(aoai_parse_reply(&r, body, strlen(body), &err), CONVBI_OK);
	assert_string_equal(r.content.data, "A");
	assert_int_equal(r.nextra, 2); /* the filtered one is left out */
	assert_string_equal(r.extra[0], "B");
	assert_string_equal(r.extra[1], "C");
	aoai_reply_release(&r);
}

static void stream_chunks_accumulate_and_tolerate_an_empty_first_chunk(void **state)
{
	static const char *const chunks[] = {
	        "{\"id\":\"\",\"object\":\"\",\"created\":0,\"model\":\"\",\"prompt_filter_results\":[],\"choices\":[]}",
	        "{\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}",
	        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}",
	        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":null}]}",
	        "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}",
	        "{\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}",
	        "[DONE]",
	};
	struct aoai_reply r;
	struct err err = ERR_INIT;
	aoai_reply_init(&r);
	size_t deltas = 0;
	for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
		const char *d;
		size_t n;
		assert_int_equal(aoai_parse_chunk(&r, chunks[i], strlen(chunks[i]), &d, &n, &err), CONVBI_OK);
		deltas += n;
	}
	assert_string_equal(r.content.data, "Hello");
	assert_int_equal(deltas, 5);
	assert_true(r.done);
	assert_string_equal(r.finish_reason, "stop");
	assert_int_equal(r.completion_tokens, 2);
	const char *d;
	size_t n;
	assert_int_equal(aoai_parse_chunk(&r, "{\"choices\":[{\"delta\":{\"content\":", 31, &d, &n, &err), CONVBI_EPROTOCOL);
	assert_int_equal(aoai_parse_chunk(&r, "{\"error\":{\"message\":\"boom\"}}", 28, &d, &n, &err), CONVBI_EPROTOCOL);
	aoai_reply_release(&r);
}

static void error_bodies_yield_code_and_message(void **state)
{
	struct aoai_error e;
	const char *b1 =
	        "{\"error\":{\"code\":\"content_filter\",\"message\":\"The response was filtered\\nbecause...\",\"innererror\":{\"code\":\"ResponsibleAIPolicyViolation\"}}}";
	aoai_parse_error(&e, b1, strlen(b1));
	assert_string_equal(e.code, "content_filter");
	assert_null(strchr(e.message, '\n'));
	const char *b2 = "{\"error\":{\"code\":429,\"message\":\"Please retry after 20 seconds.\"}}";
	aoai_parse_error(&e, b2, strlen(b2));
	assert_string_equal(e.code, "429");
	aoai_parse_error(&e, "upstream connect error", 22);
	assert_string_equal(e.message, "upstream connect error");
	assert_string_equal(e.code, "");
}

static void backoff_grows_with_jitter_and_respects_its_cap(void **state)
{
	for (uint32_t rnd = 0; rnd < 1000; rnd += 37) {
		int64_t d0 = backoff_delay_ms(0, 100, 2000, rnd);
		assert_true(d0 >= 50 && d0 <= 100);
		int64_t d3 = backoff_delay_ms(3, 100, 2000, rnd);
		assert_true(d3 >= 400 && d3 <= 800);
		int64_t d9 = backoff_delay_ms(9, 100, 2000, rnd);
		assert_true(d9 >= 1000 && d9 <= 2000);
		int64_t w = backoff_cooling_wait_ms(20000, rnd);
		assert_true(w >= 20000 && w <= 20100);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(each_kind_builds_its_own_url_and_auth_header),
	        cmocka_unit_test(bodies_escape_text_and_name_the_model_where_the_kind_needs_it),
	        cmocka_unit_test(a_reply_gives_content_model_and_usage),
	        cmocka_unit_test(n_asks_for_choices_which_come_back_in_index_order),
	        cmocka_unit_test(stream_chunks_accumulate_and_tolerate_an_empty_first_chunk),
	        cmocka_unit_test(error_bodies_yield_code_and_message),
	        cmocka_unit_test(backoff_grows_with_jitter_and_respects_its_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
