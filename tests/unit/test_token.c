/* test_token.c -- the Entra ID token wire (token_wire.c): the requests each
 * source sends, the replies of IMDS, App Service and the v2.0 endpoint in
 * their own shapes (numbers as strings or not), errors as one line, and
 * when a token is refreshed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "convbi/convbi.h"
#include "llm/token.h"

#define NOW 1700000000000LL /* ms */

static void auth(struct auth_cfg *a, int type)
{
	memset(a, 0, sizeof *a);
	a->type = type;
	a->scope = AUTH_DEFAULT_SCOPE;
}

static void managed_identity_asks_imds_with_the_resource_and_the_metadata_header(void **state)
{
	struct auth_cfg a;
	auth(&a, AUTH_MANAGED_IDENTITY);
	a.client_id = "11111111-aaaa";
	struct token_req r;
	token_req_init(&r);
	assert_int_equal(token_request(&r, &a, NULL), CONVBI_OK);
	assert_true(r.get);
	assert_string_equal(r.url.data,
	                    "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01"
	                    "&resource=https%3A%2F%2Fcognitiveservices.azure.com%2F&client_id=11111111-aaaa");
	assert_string_equal(r.header.data, "Metadata: true");
	assert_int_equal(r.body.len, 0);
	token_req_release(&r);

	/* token_url replaces the address, with or without a query of its own */
	a.client_id = NULL;
	a.token_url = "http://127.0.0.1:9/mi?x=1";
	token_req_init(&r);
	assert_int_equal(token_request(&r, &a, NULL), CONVBI_OK);
	assert_string_equal(
	        r.url.data,
	        "http://127.0.0.1:9/mi?x=1&api-version=2018-02-01&resource=https%3A%2F%2Fcognitiveservices.azure.com%2F");
	token_req_release(&r);
	struct buf b = BUF_INIT;
	assert_int_equal(token_endpoint_name(&b, &a), CONVBI_OK);
	assert_string_equal(b.data, "http://127.0.0.1:9/mi");
	buf_release(&b);
}

static void app_service_uses_identity_endpoint_and_its_header(void **state)
{
	struct auth_cfg a;
	auth(&a, AUTH_MANAGED_IDENTITY);
	a.identity_endpoint = "http://localhost:42356/msi/token";
	assert_int_equal(secret_set(&a.identity_header, "hdr-value-1234"), CONVBI_OK);
	struct token_req r;
	token_req_init(&r);
	assert_int_equal(token_request(&r, &a, NULL), CONVBI_OK);
	assert_string_equal(
	        r.url.data,
	        "http://localhost:42356/msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fcognitiveservices.azure.com%2F");
	assert_string_equal(r.header.data, "X-IDENTITY-HEADER: hdr-value-1234");
	token_req_release(&r);
	secret_release(&a.identity_header);
}

static void workload_identity_and_client_secret_post_a_client_credentials_form(void **state)
{
	struct auth_cfg a;
	auth(&a, AUTH_WORKLOAD_IDENTITY);
	a.client_id = "cid";
	a.tenant_id = "tid";
	a.authority = "https://login.microsoftonline.com/";
	struct token_req r;
	token_req_init(&r);
	assert_int_equal(token_request(&r, &a, "eyJ.a+b/c="), CONVBI_OK);
	assert_false(r.get);
	assert_string_equal(r.url.data, "https://login.microsoftonline.com/tid/oauth2/v2.0/token");
	assert_string_equal(r.header.data, "Content-Type: application/x-www-form-urlencoded");
	assert_string_equal(
	        r.body.data,
	        "grant_type=client_credentials&client_id=cid&scope=https%3A%2F%2Fcognitiveservices.azure.com%2F.default"
	        "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
	        "&client_assertion=eyJ.a%2Bb%2Fc%3D");
	token_req_release(&r);

	auth(&a, AUTH_CLIENT_SECRET);
	a.client_id = "cid";
	a.tenant_id = "tid";
	assert_int_equal(secret_set(&a.client_secret, "s&cret=1"), CONVBI_OK);
	token_req_init(&r);
	assert_int_equal(token_request(&r, &a, NULL), CONVBI_OK);
	assert_string_equal(r.url.data, "https://login.microsoftonline.com/tid/oauth2/v2.0/token");
	assert_non_null(strstr(r.body.data, "&client_secret=s%26cret%3D1"));
	token_req_release(&r);
	secret_release(&a.client_secret);
}

static void identities_differ_by_type_endpoint_client_tenant_and_scope(void **state)
{
	struct auth_cfg a, b;
	auth(&a, AUTH_MANAGED_IDENTITY);
	auth(&b, AUTH_MANAGED_IDENTITY);
	struct buf x = BUF_INIT, y = BUF_INIT;
	assert_int_equal(token_identity(&x, &a), CONVBI_OK);
	assert_int_equal(token_identity(&y, &b), CONVBI_OK);
	assert_string_equal(x.data, y.data);
	b.client_id = "user-assigned";
	buf_reset(&y);
	assert_int_equal(token_identity(&y, &b), CONVBI_OK);
	assert_string_not_equal(x.data, y.data);
	buf_release(&x);
	buf_release(&y);
}

static void replies_in_every_shape_give_a_token_and_its_expiry(void **state)
{
	static const struct {
		const char *body;
		int64_t expires, lifetime;
	} ok[] = {
	        /* IMDS: numbers as strings, expires_in wins over expires_on */
	        {"{\"access_token\":\"eyJ0.a\",\"refresh_token\":\"\",\"expires_in\":\"3599\",\"expires_on\":\"1\","
	         "\"not_before\":\"1\",\"resource\":\"https://cognitiveservices.azure.com/\",\"token_type\":\"Bearer\"}",
	         NOW + 3599000, 3599000},
	        /* v2.0: numbers */
	        {"{\"token_type\":\"Bearer\",\"expires_in\":3599,\"ext_expires_in\":3599,\"access_token\":\"eyJ0.b\"}",
	         NOW + 3599000, 3599000},
	        /* App Service: only expires_on, Unix seconds as a string */
	        {"{\"access_token\":\"eyJ0.c\",\"expires_on\":\"1700003600\",\"resource\":\"r\",\"token_type\":\"Bearer\"}",
	         1700003600000LL, 3600000},
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		struct token_val v;
		struct err err = ERR_INIT;
		if (token_parse_reply(&v, ok[i].body, strlen(ok[i].body), NOW, &err))
			fail_msg("case %zu: %s", i, err.msg);
		assert_true(!strncmp(v.token, "eyJ0.", 5));
		assert_int_equal(v.expires_ms, ok[i].expires);
		assert_int_equal(v.lifetime_ms, ok[i].lifetime);
		token_val_release(&v);
	}
}

static void unusable_replies_are_refused_without_showing_the_token(void **state)
{
	static const struct {
		const char *body, *says;
	} bad[] = {
	        {"[]", "not a JSON object"},
	        {"{\"expires_in\":10}", "no access_token"},
	        {"{\"access_token\":\"tok-visible-1\",\"token_type\":\"Bearer\"}", "no usable expires_in or expires_on"},
	        {"{\"access_token\":\"tok-visible-1\",\"expires_in\":\"ten\"}", "no usable expires_in"},
	        {"{\"access_token\":\"tok-visible-1\",\"expires_in\":3600,\"token_type\":\"pop\"}", "type `pop`"},
	        {"{\"access_token\":\"tok visible\",\"expires_in\":3600}", "a character a header cannot carry"},
	        {"{\"access_token\":\"tok-visible-1\",\"expires_on\":\"1600000000\"}", "already expired"},
	        {"{\"access_token\":\"tok-visible-1\",\"expires_in\":0}", "expires at once"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct token_val v;
		struct err err = ERR_INIT;
		int rc = token_parse_reply(&v, bad[i].body, strlen(bad[i].body), NOW, &err);
		if (rc != CONVBI_EAUTH || !strstr(err.msg, bad[i].says) || strstr(err.msg, "visible"))
			fail_msg("case %zu: rc %d, \"%s\"", i, rc, err.msg);
		assert_null(v.token);
	}
}

static void errors_are_one_line_with_code_and_description(void **state)
{
	char out[300];
	const char *aad =
	        "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid client secret provided.\\r\\nTrace ID: x\","
	        "\"error_codes\":[7000215]}";
	token_error_text(out, sizeof out, 401, aad, strlen(aad));
	assert_string_equal(out, "HTTP 401 invalid_client: AADSTS7000215: Invalid client secret provided.  Trace ID: x");
	const char *imds = "{\"error\":\"invalid_request\",\"error_description\":\"Identity not found\"}";
	token_error_text(out, sizeof out, 400, imds, strlen(imds));
	assert_string_equal(out, "HTTP 400 invalid_request: Identity not found");
	token_error_text(out, sizeof out, 503, "Service Unavailable", 19);
	assert_string_equal(out, "HTTP 503");
}

static void a_token_is_refreshed_five_minutes_early_or_a_twelfth_of_a_short_life(void **state)
{
	assert_int_equal(token_refresh_at(NOW + 3600000, 3600000), NOW + 3600000 - 300000);
	assert_int_equal(token_refresh_at(NOW + 86400000, 86400000), NOW + 86400000 - 300000);
	assert_int_equal(token_refresh_at(NOW + 6000, 6000), NOW + 6000 - 500);
	assert_int_equal(token_refresh_at(NOW + 5, 5), NOW + 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(managed_identity_asks_imds_with_the_resource_and_the_metadata_header),
	        cmocka_unit_test(app_service_uses_identity_endpoint_and_its_header),
	        cmocka_unit_test(workload_identity_and_client_secret_post_a_client_credentials_form),
	        cmocka_unit_test(identities_differ_by_type_endpoint_client_tenant_and_scope),
	        cmocka_unit_test(replies_in_every_shape_give_a_token_and_its_expiry),
	        cmocka_unit_test(unusable_replies_are_refused_without_showing_the_token),
	        cmocka_unit_test(errors_are_one_line_with_code_and_description),
	        cmocka_unit_test(a_token_is_refreshed_five_minutes_early_or_a_twelfth_of_a_short_life),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
