/* config_auth.c -- an endpoint's "auth" object (see config.h, llm/token.h).
 *
 *   "auth": {"type": "api_key" | "managed_identity" | "workload_identity" |
 *                    "client_secret",
 *            "token_url", "client_id", "tenant_id", "client_secret_env",
 *            "scope"}
 * Absent, the type is api_key: the endpoint's `api_key`/`api_key_env`, as
 * before.  The other types fetch a Microsoft Entra ID token; what each
 * needs from the environment is read here, once, so that a missing
 * variable is one line at start-up rather than a failed call later:
 *   managed_identity   client_id optional (a user-assigned identity);
 *                      $IDENTITY_ENDPOINT with $IDENTITY_HEADER (App
 *                      Service, Container Apps) when both are set, else
 *                      the instance metadata service;
 *   workload_identity  client_id (or $AZURE_CLIENT_ID), tenant_id (or
 *                      $AZURE_TENANT_ID), $AZURE_FEDERATED_TOKEN_FILE,
 *                      $AZURE_AUTHORITY_HOST (default login.microsoftonline.com);
 *   client_secret      tenant_id and client_id (or the same variables), the
 *                      secret from the variable client_secret_env (default
 *                      AZURE_CLIENT_SECRET).
 * token_url replaces the type's token endpoint (tenant and authority are
 * then not needed); scope defaults to AUTH_DEFAULT_SCOPE.  Unknown fields
 * are refused: a misspelt "client_id" would otherwise silently select the
 * system-assigned identity.  A token type and an API key together are
 * refused too, as is a token type on kind openai.  Secrets (the client
 * secret, the identity header) live in struct secret and are never shown.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convbi/convbi.h"
#include "llm/config.h"
#include "util/alloc.h"
#include "util/jsonx.h"

static const char *const auth_names[] = {"api_key", "managed_identity", "workload_identity", "client_secret"};
static const char *const auth_fields[] = {"type", "token_url", "client_id", "tenant_id", "client_secret_env", "scope"};

const char *config_auth_name(int type)
{
	return type >= 0 && type <= AUTH_CLIENT_SECRET ? auth_names[type] : "?";
}

void config_auth_release(struct auth_cfg *a)
{
	if (!a)
		return;
	free(a->token_url);
	free(a->client_id);
	free(a->tenant_id);
	free(a->scope);
	free(a->authority);
	free(a->token_file);
	free(a->identity_endpoint);
	secret_release(&a->identity_header);
	secret_release(&a->client_secret);
	memset(a, 0, sizeof *a);
	a->type = AUTH_API_KEY;
}

/* The config's value, else the environment variable's (either may be
 * absent); copied into *dst. */
static int field_or_env(char **dst, const char *value, const char *var)
{
	const char *v = value && *value ? value : getenv(var);
	if (!v || !*v)
		return CONVBI_OK;
	*dst = xstrdup(v);
	return *dst ? CONVBI_OK : CONVBI_ENOMEM;
}

static int is_http_url(const char *u)
{
	return !strncmp(u, "http://", 7) || !strncmp(u, "https://", 8);
}

/* Everything that ends up in a URL, a header or a request body: one line,
 * and the URLs http(s). */
static int check_values(const struct ep_cfg *e, const char *src, struct err *err)
{
	const struct auth_cfg *a = &e->auth;
	const struct {
		const char *field, *value;
	} f[] = {
	        {"auth.token_url", a->token_url},
	        {"auth.client_id", a->client_id},
	        {"auth.tenant_id", a->tenant_id},
	        {"auth.scope", a->scope},
	        {"$AZURE_AUTHORITY_HOST", a->authority},
	        {"$IDENTITY_ENDPOINT", a->identity_endpoint},
	        {"$IDENTITY_HEADER", secret_value(&a->identity_header)},
	        {"the client secret", secret_value(&a->client_secret)},
	};
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
		const char *what = config_control_char(f[i].value);
		if (what)
			return err_set(err, CONVBI_ECONFIG,
			               "%s: endpoint `%s` has %s in %s; remove it (it goes into an HTTP request as it is)", src,
			               e->name, what, f[i].field);
	}
	const struct {
		const char *field, *value;
	} urls[] = {
	        {"auth.token_url", a->token_url},
	        {"$AZURE_AUTHORITY_HOST", a->authority},
	        {"$IDENTITY_ENDPOINT", a->identity_endpoint},
	};
	for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++)
		if (urls[i].value && !is_http_url(urls[i].value))
			return err_set(err, CONVBI_ECONFIG,
			               "%s: endpoint `%s` has %s `%s`; it must start with http:// or https://", src, e->name,
			               urls[i].field, urls[i].value);
	return CONVBI_OK;
}

/* What each token type needs beyond the common fields. */
static int read_type_env(struct ep_cfg *e, const cJSON *o, const char *src, struct err *err)
{
	struct auth_cfg *a = &e->auth;
	const char *type = config_auth_name(a->type);
	int rc;
	if (a->type == AUTH_MANAGED_IDENTITY) {
		const char *ep = getenv("IDENTITY_ENDPOINT"), *hdr = getenv("IDENTITY_HEADER");
		if (ep && *ep && hdr && *hdr) {
			if (!(a->identity_endpoint = xstrdup(ep)) || (rc = secret_set(&a->identity_header, hdr)))
				return CONVBI_ENOMEM;
		}
		return CONVBI_OK;
	}
	if ((rc = field_or_env(&a->client_id, jsonx_str(o, "client_id"), "AZURE_CLIENT_ID")) ||
	    (rc = field_or_env(&a->tenant_id, jsonx_str(o, "tenant_id"), "AZURE_TENANT_ID")))
		return rc;
	if (!a->client_id)
		return err_set(err, CONVBI_ECONFIG,
		               "%s: endpoint `%s` (auth %s) has no client id; set `auth.client_id` or export AZURE_CLIENT_ID",
		               src, e->name, type);
	if (!a->tenant_id && !a->token_url)
		return err_set(err, CONVBI_ECONFIG,
		               "%s: endpoint `%s` (auth %s) has no tenant id; set `auth.tenant_id` or export AZURE_TENANT_ID",
		               src, e->name, type);
	if (a->type == AUTH_WORKLOAD_IDENTITY) {
		const char *file = getenv("AZURE_FEDERATED_TOKEN_FILE");
		if (!file || !*file)
			return err_set(
			        err, CONVBI_ECONFIG,
			        "%s: endpoint `%s` uses workload_identity but $AZURE_FEDERATED_TOKEN_FILE is not set; "
			        "enable workload identity on the pod (azure.workload.identity/use: \"true\") or choose another auth type",
			        src, e->name);
		const char *host = getenv("AZURE_AUTHORITY_HOST");
		if (!(a->token_file = xstrdup(file)) || !(a->authority = xstrdup(host && *host ? host : AUTH_DEFAULT_AUTHORITY)))
			return CONVBI_ENOMEM;
		return CONVBI_OK;
	}
	const char *var = jsonx_str(o, "client_secret_env");
	if (!var)
		var = "AZURE_CLIENT_SECRET";
	const char *secret = getenv(var);
	if (!secret || !*secret)
		return err_set(err, CONVBI_ECONFIG,
		               "%s: endpoint `%s` reads its client secret from $%s, which is not set; export it or name "
		               "another variable in `auth.client_secret_env`",
		               src, e->name, var);
	if (!(a->authority = xstrdup(AUTH_DEFAULT_AUTHORITY)))
		return CONVBI_ENOMEM;
	return secret_set(&a->client_secret, secret);
}

int config_parse_auth(struct ep_cfg *e, const cJSON *o, const char *src, struct err *err)
{
	struct auth_cfg *a = &e->auth;
	int rc;
	a->type = AUTH_API_KEY;
	if (!o || cJSON_IsNull(o))
		return CONVBI_OK;
	if (!cJSON_IsObject(o))
		return err_set(err, CONVBI_ECONFIG,
		               "%s: endpoint `%s` has an `auth` that is not an object; write {\"type\": \"managed_identity\"}",
		               src, e->name);
	const char *unknown = config_unknown_field(o, auth_fields, sizeof auth_fields / sizeof auth_fields[0]);
	if (unknown)
		return err_set(err, CONVBI_ECONFIG,
		               "%s: endpoint `%s` has an unknown field `auth.%.40s`; the fields are type, token_url, "
		               "client_id, tenant_id, client_secret_env and scope",
		               src, e->name, unknown);
	const cJSON *f;
	cJSON_ArrayForEach(f, o)
	{
		if (!cJSON_IsString(f))
			return err_set(err, CONVBI_ECONFIG, "%s: endpoint `%s` has a non-string `auth.%s`; write it as a string",
			               src, e->name, f->string);
	}
	const char *type = jsonx_str(o, "type");
	if (!type)
		return err_set(err, CONVBI_ECONFIG,
		               "%s: endpoint `%s` has an `auth` without `type`; use \"api_key\", \"managed_identity\", "
		               "\"workload_identity\" or \"client_secret\"",
		               src, e->name);
	a->type = -1;
	for (int i = 0; i <= AUTH_CLIENT_SECRET; i++)
		if (!strcmp(type, auth_names[i]))
			a->type = i;
	if (a->type < 0) {
		a->type = AUTH_API_KEY;
		return err_set(err, CONVBI_ECONFIG,
		               "%s: endpoint `%s` has auth type `%.40s`; use \"api_key\", \"managed_identity\", "
		               "\"workload_identity\" or \"client_secret\"",
		               src, e->name, type);
	}
	if (a->type == AUTH_API_KEY) {
		if (cJSON_GetArraySize(o) > 1)
			return err_set(err, CONVBI_ECONFIG,
			               "%s: endpoint `%s` has auth type api_key with other `auth` fields; those are for the "
			               "Entra ID types, remove them or choose one",
			               src, e->name);
		return CONVBI_OK;
	}
	if (e->kind == EP_OPENAI)
		return err_set(err, CONVBI_ECONFIG,
		               "%s: endpoint `%s` (kind openai) has auth type %s; Entra ID tokens are for Azure endpoints "
		               "(kind azure or azure-v1), use `api_key` here",
		               src, e->name, type);
	if (secret_is_set(&e->key))
		return err_set(err, CONVBI_ECONFIG,
		               "%s: endpoint `%s` has both an API key and auth type %s; remove `api_key`/`api_key_env` "
		               "(the token replaces the key)",
		               src, e->name, type);
	if (a->type != AUTH_CLIENT_SECRET && jsonx_str(o, "client_secret_env"))
		return err_set(err, CONVBI_ECONFIG,
		               "%s: endpoint `%s` (auth %s) has `auth.client_secret_env`; it belongs to auth type "
		               "client_secret, remove it",
		               src, e->name, type);
	if (a->type == AUTH_MANAGED_IDENTITY && jsonx_str(o, "tenant_id"))
		return err_set(err, CONVBI_ECONFIG,
		               "%s: endpoint `%s` (auth managed_identity) has `auth.tenant_id`; a managed identity "
		               "belongs to the resource's tenant, remove it",
		               src, e->name);
	const char *url = jsonx_str(o, "token_url"), *scope = jsonx_str(o, "scope");
	if ((url && !(a->token_url = xstrdup(url))) || !(a->scope = xstrdup(scope && *scope ? scope : AUTH_DEFAULT_SCOPE)))
		return CONVBI_ENOMEM;
	const char *cid = jsonx_str(o, "client_id");
	if (a->type == AUTH_MANAGED_IDENTITY && cid && *cid && !(a->client_id = xstrdup(cid)))
		return CONVBI_ENOMEM;
	if ((rc = read_type_env(e, o, src, err)))
		return rc;
	return check_values(e, src, err);
}
