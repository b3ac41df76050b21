/* config_cost.c -- the money part of the configuration: prices and budgets.
 *
 * Per endpoint:
 *   "price": {"input": USD, "cached_input": USD, "output": USD}
 *            US dollars per million tokens; input and output required,
 *            cached_input (prompt tokens served from Azure's prompt cache)
 *            defaults to input;
 *   "reserved": true
 *            a provisioned (PTU) deployment: its calls cost 0 and are
 *            counted apart (also accepted as "price": {"reserved": true});
 *   "budget": {"daily": USD, "monthly": USD}
 *            at least one of them; UTC calendar day and month.
 * At the top level, "budget" caps the whole configuration the same way.
 *
 * A budget must be countable: a budgeted endpoint needs a price (a
 * reserved one costs nothing, so a budget on it is refused as a mistake),
 * and a configuration budget needs every endpoint priced or reserved.
 * Budgets are kept as micro-USD (1e-6 USD) integers, the unit of the
 * shared state (state.h).  Every message names the source, the endpoint,
 * the field and the fix.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "convbi/convbi.h"
#include "llm/config.h"
#include "util/jsonx.h"

/* Reads the number field key of o into *out when present: finite, from
 * min to max.  Returns 0 (absent leaves *out alone), or -1 with what was
 * there written to shown. */
static int money(const cJSON *o, const char *key, double min, double max, double *out, char *shown, size_t cap)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < min || v->valuedouble > max) {
		if (cJSON_IsNumber(v))
			snprintf(shown, cap, "%.15g", v->valuedouble);
		else if (cJSON_IsString(v))
			snprintf(shown, cap, "\"%.40s\" (a string)", v->valuestring);
		else
			snprintf(shown, cap, "%s", cJSON_IsBool(v) ? "a boolean" : cJSON_IsArray(v) ? "an array" : "an object");
		return -1;
	}
	*out = v->valuedouble;
	return 0;
}

/* Reads a "budget" object; who is "endpoint `x` has" or "the configuration has". */
static int parse_budget_obj(struct budget_cfg *b, const cJSON *o, const char *src, const char *who, struct err *err)
{
	if (!o || cJSON_IsNull(o))
		return CONVBI_OK;
	if (!cJSON_IsObject(o))
		return err_set(err, CONVBI_ECONFIG,
		               "%s: %s a `budget` that is not an object; write {\"daily\": 5, \"monthly\": 100} (US dollars)",
		               src, who);
	static const char *const keys[] = {"daily", "monthly"};
	int64_t *slots[] = {&b->daily_uusd, &b->monthly_uusd};
	for (int i = 0; i < 2; i++) {
		double usd = -1;
		char shown[64];
		if (money(o, keys[i], 0, CONFIG_MAX_BUDGET_USD, &usd, shown, sizeof shown) || usd == 0)
			return err_set(err, CONVBI_ECONFIG,
			               "%s: %s budget.%s %s; use a positive number of US dollars up to %.0f "
			               "(leave it out for no cap)",
			               src, who, keys[i], usd == 0 ? "0" : shown, CONFIG_MAX_BUDGET_USD);
		if (usd > 0)
			*slots[i] = (int64_t)ceil(usd * 1e6);
	}
	if (!b->daily_uusd && !b->monthly_uusd)
		return err_set(err, CONVBI_ECONFIG, "%s: %s an empty `budget`; give \"daily\" and/or \"monthly\" in US dollars",
		               src, who);
	return CONVBI_OK;
}

int config_parse_cost(struct ep_cfg *e, const cJSON *o, const char *src, struct err *err)
{
	char who[160];
	snprintf(who, sizeof who, "endpoint `%s` has", e->name);
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "price");
	int bad = 0;
	int reserved = jsonx_bool(o, "reserved", 0, &bad);
	if (bad)
		return err_set(
		        err, CONVBI_ECONFIG,
		        "%s: endpoint `%s` has a `reserved` that is not true or false; write \"reserved\": true for a provisioned (PTU) deployment",
		        src, e->name);
	if (p && !cJSON_IsNull(p)) {
		if (!cJSON_IsObject(p))
			return err_set(
			        err, CONVBI_ECONFIG,
			        "%s: endpoint `%s` has a `price` that is not an object; write {\"input\": 2.5, \"cached_input\": 1.25, \"output\": 10} (US dollars per million tokens)",
			        src, e->name);
		int pres = jsonx_bool(p, "reserved", 0, &bad);
		if (bad)
			return err_set(err, CONVBI_ECONFIG, "%s: endpoint `%s` has a price.reserved that is not true or false",
			               src, e->name);
		if (pres && cJSON_GetArraySize(p) == 1) {
			reserved = 1;
		} else {
			static const char *const keys[] = {"input", "cached_input", "output"};
			double *slots[] = {&e->price.input, &e->price.cached_input, &e->price.output};
			e->price.cached_input = -1;
			for (int i = 0; i < 3; i++) {
				char shown[64];
				if (money(p, keys[i], 0, CONFIG_MAX_PRICE_USD, slots[i], shown, sizeof shown))
					return err_set(
					        err, CONVBI_ECONFIG,
					        "%s: endpoint `%s` has price.%s %s; use a number of US dollars per million tokens from 0 to %.0f",
					        src, e->name, keys[i], shown, CONFIG_MAX_PRICE_USD);
			}
			for (int i = 0; i < 3; i += 2)
				if (!cJSON_GetObjectItemCaseSensitive(p, keys[i]))
					return err_set(
					        err, CONVBI_ECONFIG,
					        "%s: endpoint `%s` has a `price` without `%s`; give input and output in US dollars per million tokens",
					        src, e->name, keys[i]);
			if (pres || reserved)
				return err_set(
				        err, CONVBI_ECONFIG,
				        "%s: endpoint `%s` has both a price and \"reserved\": true; a provisioned (PTU) deployment costs 0 per call, so keep one",
				        src, e->name);
			if (e->price.cached_input < 0)
				e->price.cached_input = e->price.input;
			e->price.set = 1;
		}
	}
	e->price.reserved = reserved;
	int rc = parse_budget_obj(&e->budget, cJSON_GetObjectItemCaseSensitive(o, "budget"), src, who, err);
	if (rc)
		return rc;
	if ((e->budget.daily_uusd || e->budget.monthly_uusd) && e->price.reserved)
		return err_set(
		        err, CONVBI_ECONFIG,
		        "%s: endpoint `%s` is reserved (PTU, cost 0) and has a budget it can never spend; remove its `budget`",
		        src, e->name);
	if ((e->budget.daily_uusd || e->budget.monthly_uusd) && !e->price.set)
		return err_set(
		        err, CONVBI_ECONFIG,
		        "%s: endpoint `%s` has a budget but no price to count it with; add \"price\": {\"input\": ..., \"output\": ...}",
		        src, e->name);
	return CONVBI_OK;
}

int config_parse_budget(struct llm_config *c, const cJSON *root, const char *src, struct err *err)
{
	int rc =
	        parse_budget_obj(&c->budget, cJSON_GetObjectItemCaseSensitive(root, "budget"), src, "the configuration has", err);
	if (rc || (!c->budget.daily_uusd && !c->budget.monthly_uusd))
		return rc;
	for (size_t i = 0; i < c->n; i++)
		if (!c->eps[i].price.set && !c->eps[i].price.reserved)
			return err_set(err, CONVBI_ECONFIG,
			               "%s: the configuration has a budget but endpoint `%s` has no price to count it with; "
			               "add its \"price\" (or \"reserved\": true for a provisioned deployment)",
			               src, c->eps[i].name);
	return CONVBI_OK;
}
