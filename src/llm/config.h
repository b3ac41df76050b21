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
 *      "priority", "weight", "rpm", "tpm"}],
 *    "retry": {"max_attempts", "deadline_ms", "connect_timeout_ms",
 *              "first_byte_timeout_ms", "idle_timeout_ms"},
 *    "state": {"backend": "file"|"memory"|"redis", "path", "url", "prefix"}}
 * Keys live only in struct secret; every error names the file, the
 * endpoint and the fix, never the key.
 */
#ifndef CONVBI_LLM_CONFIG_H
#define CONVBI_LLM_CONFIG_H

#include <stddef.h>

#include "util/err.h"
#include "util/secret.h"

enum ep_kind { EP_AZURE, EP_AZURE_V1, EP_OPENAI };

struct ep_cfg {
	char *name;         /* owned; unique, shown in logs and results */
	int kind;           /* enum ep_kind */
	char *url;          /* owned; base URL without trailing '/' */
	char *deployment;   /* owned; azure kinds (NULL for openai) */
	char *model;        /* owned; model name sent in the body, may be NULL */
	char *api_version;  /* owned; kind azure */
	struct secret key;  /* never printed */
	int priority;       /* tier, 0 first */
	int weight;         /* >= 1 */
	int rpm, tpm;       /* client-side budgets, 0 = none */
};

struct retry_cfg {
	int max_attempts;           /* model attempts per call */
	int deadline_ms;            /* total per call, waits included */
	int connect_timeout_ms;
	int first_byte_timeout_ms;  /* request sent -> first response byte */
	int idle_timeout_ms;        /* longest gap while streaming */
};

struct state_cfg {
	char *backend;   /* owned; "file" (default), "memory" (this process only) or "redis" */
	char *path;      /* owned; shared state file, NULL = default */
	char *url;       /* owned; redis URL */
	char *prefix;    /* owned; redis key prefix */
	int redis_timeout_ms;
	int cache_ms;    /* redis: client-side cooldown cache interval */
};

struct llm_config {
	struct ep_cfg *eps;   /* owned array */
	size_t n;
	struct retry_cfg retry;
	struct state_cfg state;
	char *source;         /* owned; "config file X" or "environment" */
};

#define CONFIG_MAX_ENDPOINTS 64
#define CONFIG_MAX_FILE_BYTES (1 << 20)
#define CONFIG_MAX_PRIORITY 1000      /* tiers 0 .. 1000 */
#define CONFIG_MAX_WEIGHT 1000
#define CONFIG_MAX_RPM 100000000      /* requests per minute a deployment may declare */
#define CONFIG_MAX_TPM 2000000000     /* tokens per minute: fits an int */

/* Loads from path, else $CONVBI_CONFIG, else the environment.  Returns
 * CONVBI_ENOENDPOINT (with a message naming what to set) when nothing is
 * configured, CONVBI_ECONFIG for a bad file. */
int config_load(struct llm_config *out, const char *path, struct err *err);
/* Parses config text; source names it in messages. */
int config_parse(struct llm_config *out, const char *text, size_t len, const char *source,
                 struct err *err);
void config_release(struct llm_config *c);
const char *config_kind_name(int kind);

#endif
