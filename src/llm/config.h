/* config.h -- the endpoint configuration: a JSON file or environment vars.
 *
 * Sources, first found wins: an explicit path (--config / options), the
 * file named by $CONVBI_CONFIG, then the seed-compatible variables
 * AZURE_OPENAI_ENDPOINT_i, AZURE_OPENAI_DEPLOYMENT_NAME_i,
 * AZURE_OPENAI_API_VERSION_i, AZURE_OPENAI_API_KEY_i for i = 0, 1, ...
 * (starting at 1 when _0 is absent) until the first missing index.
 *
 * File format (every field but endpoints optional):
 *   {"endpoints": [{"name", "kind": "azure"|"azure-v1"|"openai", "url",
 *      "deployment", "model", "api_version", "api_key" | "api_key_env",
 *      "priority", "weight", "rpm", "tpm", "spillover_deployment",
 *      "context_window", "auth": {"type", "token_url", "client_id",
 *      "tenant_id", "client_secret_env", "scope"},
 *      "price": {"input", "cached_input", "output"} | "reserved": true,
 *      "budget": {"daily", "monthly"}}],
 *    "budget": {"daily", "monthly"},
 *    "retry": {"max_attempts", "deadline_ms", "connect_timeout_ms",
 *              "first_byte_timeout_ms", "idle_timeout_ms"},
 *    "state": {"backend": "file"|"memory"|"redis", "path", "url", "prefix"}}
 * Keys live only in struct secret; every error names the file, the
 * endpoint and the fix, never the key.
 */
#ifndef CONVBI_LLM_CONFIG_H
#define CONVBI_LLM_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/limits.h"
#include "util/secret.h"

enum ep_kind { EP_AZURE, EP_AZURE_V1, EP_OPENAI };

/* How an endpoint authenticates: its key (api-key / Bearer KEY), or a
 * Microsoft Entra ID token from one of three sources (llm/token.h). */
enum auth_type { AUTH_API_KEY, AUTH_MANAGED_IDENTITY, AUTH_WORKLOAD_IDENTITY, AUTH_CLIENT_SECRET };

#define AUTH_DEFAULT_SCOPE "https://cognitiveservices.azure.com/.default"
#define AUTH_DEFAULT_AUTHORITY "https://login.microsoftonline.com/"

/* The "auth" object of an endpoint, with what the environment adds
 * (read once, when the configuration is loaded). */
struct auth_cfg {
	int type;                      /* enum auth_type; AUTH_API_KEY by default */
	char *token_url;               /* owned; overrides the type's token endpoint, NULL = default */
	char *client_id;               /* owned; NULL = system-assigned (managed identity) */
	char *tenant_id;               /* owned; workload_identity, client_secret */
	char *scope;                   /* owned; never NULL for a token type */
	char *authority;               /* owned; workload_identity: $AZURE_AUTHORITY_HOST or the default */
	char *token_file;              /* owned; workload_identity: $AZURE_FEDERATED_TOKEN_FILE */
	char *identity_endpoint;       /* owned; managed_identity: $IDENTITY_ENDPOINT when set with the header */
	struct secret identity_header; /* managed_identity: $IDENTITY_HEADER; never printed */
	struct secret client_secret;   /* client_secret: from the variable client_secret_env */
};

/* What an endpoint's calls cost (config_cost.c). */
struct price_cfg {
	int set;             /* "price" was given */
	int reserved;        /* "reserved": true -- provisioned (PTU): cost 0, counted apart */
	double input;        /* USD per million prompt tokens not served from the cache */
	double cached_input; /* USD per million cached prompt tokens (default: input) */
	double output;       /* USD per million completion tokens */
};

/* A spending cap, in micro-USD (1e-6 USD); 0 = none.  Periods are UTC
 * calendar days and months. */
struct budget_cfg {
	int64_t daily_uusd;
	int64_t monthly_uusd;
};

struct ep_cfg {
	char *name;        /* owned; unique, shown in logs and results */
	int kind;          /* enum ep_kind */
	char *url;         /* owned; base URL without trailing '/' */
	char *deployment;  /* owned; azure kinds (NULL for openai) */
	char *model;       /* owned; model name sent in the body, may be NULL */
	char *api_version; /* owned; kind azure */
	struct secret key; /* never printed */
	int priority;      /* tier, 0 first */
	int weight;        /* >= 1 */
	int rpm, tpm;      /* client-side budgets, 0 = none */
	struct auth_cfg auth;
	char *spillover_deployment; /* owned; sent as x-ms-spillover-deployment, NULL = none */
	int context_window;         /* tokens the deployment accepts, 0 = not said */
	struct price_cfg price;
	struct budget_cfg budget; /* this endpoint's spending cap */
};

struct retry_cfg {
	int max_attempts; /* model attempts per call */
	int deadline_ms;  /* total per call, waits included */
	int connect_timeout_ms;
	int first_byte_timeout_ms; /* request sent -> first response byte */
	int idle_timeout_ms;       /* longest gap while streaming */
};

struct state_cfg {
	char *backend; /* owned; "file" (default), "memory" (this process only) or "redis" */
	char *path;    /* owned; shared state file, NULL = default */
	char *url;     /* owned; redis URL */
	char *prefix;  /* owned; redis key prefix */
	int redis_timeout_ms;
	int cache_ms;      /* redis: client-side cooldown cache interval */
	int local_budgets; /* 1: budgets may be this process's alone when the state file cannot be used */
};

struct llm_config {
	struct ep_cfg *eps; /* owned array */
	size_t n;
	struct retry_cfg retry;
	struct state_cfg state;
	struct budget_cfg budget; /* the whole configuration's spending cap */
	char *source;             /* owned; "config file X" or "environment" */
};

#define CONFIG_MAX_ENDPOINTS 64
#define CONFIG_MAX_PRIORITY 1000 /* tiers 0 .. 1000 */
#define CONFIG_MAX_WEIGHT 1000
#define CONFIG_MAX_RPM 100000000            /* requests per minute a deployment may declare */
#define CONFIG_MAX_TPM 2000000000           /* tokens per minute: fits an int */
#define CONFIG_MAX_CONTEXT_WINDOW 100000000 /* tokens */
#define CONFIG_MAX_PRICE_USD 100000.0       /* per million tokens */
#define CONFIG_MAX_BUDGET_USD 1e8           /* a day's or a month's cap (fits the state's 48 bits of micro-USD) */

/* Loads from path, else $CONVBI_CONFIG, else the environment.  Returns
 * CONVBI_ENOENDPOINT (with a message naming what to set) when nothing is
 * configured, CONVBI_ECONFIG for a bad file. */
int config_load(struct llm_config *out, const char *path, struct err *err);
/* Parses config text; source names it in messages. */
int config_parse(struct llm_config *out, const char *text, size_t len, const char *source, struct err *err);
void config_release(struct llm_config *c);
/* Reads an endpoint's "price", "reserved" and "budget" fields from o into
 * e (config_cost.c).  Returns CONVBI_OK or CONVBI_ECONFIG with a message
 * naming src, the endpoint, the field and the fix. */
struct cJSON;
int config_parse_cost(struct ep_cfg *e, const struct cJSON *o, const char *src, struct err *err);
/* Reads the top-level "budget" into c->budget and checks that every budget
 * can be counted: a budgeted endpoint has a price, and a configuration
 * budget needs every endpoint priced or reserved. */
int config_parse_budget(struct llm_config *c, const struct cJSON *root, const char *src, struct err *err);
const char *config_kind_name(int kind);
/* "api_key", "managed_identity", "workload_identity", "client_secret". */
const char *config_auth_name(int type);

/* For config*.c only. */
/* The name of the first control character in s ("a line feed (LF)"), or
 * NULL when there is none (NULL s has none). */
const char *config_control_char(const char *s);
/* The name of the first member of object o that is none of the n names in
 * fields (a misspelt field would be dropped without a word), or NULL. */
const char *config_unknown_field(const struct cJSON *o, const char *const *fields, size_t n);
/* Reads the endpoint's "auth" object (o may be NULL: api_key) and what its
 * type takes from the environment; src names the file in messages.
 * CONVBI_ECONFIG with one line naming the endpoint and the fix. */
struct cJSON;
int config_parse_auth(struct ep_cfg *e, const struct cJSON *o, const char *src, struct err *err);
void config_auth_release(struct auth_cfg *a);

#endif
