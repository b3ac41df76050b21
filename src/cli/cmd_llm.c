/* cmd_llm.c -- `convbi llm`, `convbi endpoints`, `convbi schema` and
 * `convbi graph`: the commands that look at one part of the engine. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/print.h"
#include "cli/term.h"

struct llm_print {
	int printing; /* tokens are written to stdout */
	int printed;  /* some were */
	int verbose;
	struct spinner spin;
	int err_tty;
	struct term_text text; /* the streamed reply, made safe piece by piece */
};

/* Streams tokens, shows retries and the spinner; Ctrl-C cancels at once. */
static int llm_event(const convbi_event *ev, void *payload)
{
	struct llm_print *p = payload;
	if (cli_interrupted) {
		spinner_clear(&p->spin);
		return 1;
	}
	if (ev->kind == CONVBI_EVENT_PROGRESS && !p->printed) {
		spinner_tick(&p->spin);
	} else if (ev->kind == CONVBI_EVENT_TOKEN && p->printing) {
		spinner_clear(&p->spin);
		term_text_put(&p->text, stdout, ev->text, ev->len);
		fflush(stdout);
		p->printed = 1;
	} else if (ev->kind == CONVBI_EVENT_RETRY) {
		spinner_clear(&p->spin);
		term_text_end(&p->text, stdout);
		if (p->printed)
			fputc('\n', stdout);
		if (p->verbose || p->err_tty)
			term_printf(stderr, "convbi: %s: %.*s\n", ev->endpoint ? ev->endpoint : "?", (int)ev->len, ev->text);
	}
	return 0;
}

/* Opens a model-only engine (no database). */
static int open_model_engine(convbi_engine **e, const struct cli_opts *o)
{
	convbi_options opts;
	cli_engine_options(&opts, o);
	opts.db_path = NULL;
	int rc = convbi_engine_open(e, &opts);
	if (rc) {
		cli_error("%s", *e ? convbi_engine_errmsg(*e) : convbi_errstr(rc));
		convbi_engine_close(*e);
		*e = NULL;
	}
	return rc;
}

int cmd_llm(struct cli_opts *o)
{
	convbi_engine *e = NULL;
	int rc = open_model_engine(&e, o);
	if (rc)
		return cli_exit_code(rc);
	char *json = NULL;
	int stream = o->stream == 1;
	struct llm_print p = {stream && !o->json, 0, o->verbose, {0}, isatty(2), {{0}, 0}};
	spinner_start(&p.spin, p.err_tty);
	spinner_stage(&p.spin, "waiting for the model");
	cli_catch_sigint();
	rc = convbi_engine_chat(e, o->system, o->question, stream, llm_event, &p, &json);
	spinner_clear(&p.spin);
	term_text_end(&p.text, stdout);
	if (rc == CONVBI_ECANCELED) {
		if (p.printed)
			fputc('\n', stdout);
		cli_error("canceled");
		convbi_free(json);
		convbi_engine_close(e);
		return EXIT_INTERRUPTED;
	}
	if (o->verbose && json)
		print_attempts_json(stderr, json);
	if (o->json && json) {
		fputs(json, stdout);
		fputc('\n', stdout);
	} else if (rc == CONVBI_OK && !stream && json) {
		cJSON *root = cJSON_Parse(json);
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "content");
		if (cJSON_IsString(c))
			term_put(stdout, c->valuestring, strlen(c->valuestring));
		fputc('\n', stdout);
		cJSON_Delete(root);
	} else if (rc == CONVBI_OK) {
		fputc('\n', stdout);
	}
	if (rc)
		cli_error("%s", convbi_engine_errmsg(e));
	convbi_free(json);
	convbi_engine_close(e);
	return rc == CONVBI_ENOENDPOINT || rc == CONVBI_ECONFIG ? EXIT_USAGE : rc ? EXIT_FAIL : EXIT_OK;
}

static double num_of(const cJSON *it, const char *name)
{
	const cJSON *v = cJSON_GetObjectItem(it, name);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *str_of(const cJSON *it, const char *name)
{
	const cJSON *v = cJSON_GetObjectItem(it, name);
	return cJSON_IsString(v) ? v->valuestring : "?";
}

/* "285 (429)", or "-" when nothing is learned. */
static void learned_cell(char *out, size_t cap, const cJSON *it, const char *rate, const char *from)
{
	double v = num_of(it, rate);
	if (v > 0)
		snprintf(out, cap, "%.0f (%s)", v, str_of(it, from));
	else
		snprintf(out, cap, "-");
}

/* What an endpoint spent today: "$0.0123" ("/ $5.00" with a daily
 * budget), "reserved" for a PTU deployment, "-" without a price. */
static void spent_cell(char *out, size_t cap, const cJSON *it)
{
	const cJSON *budget = cJSON_GetObjectItem(it, "budget");
	double daily = num_of(budget, "daily");
	if (cJSON_IsTrue(cJSON_GetObjectItem(it, "reserved")))
		snprintf(out, cap, "reserved");
	else if (!cJSON_IsObject(cJSON_GetObjectItem(it, "price")))
		snprintf(out, cap, "-");
	else if (daily > 0)
		snprintf(out, cap, "$%.4f/$%.2f", num_of(it, "spent_today_usd"), daily);
	else
		snprintf(out, cap, "$%.4f", num_of(it, "spent_today_usd"));
}

/* The endpoints JSON as an aligned table (also the REPL's .endpoints). */
void print_endpoints(const char *json, FILE *f)
{
	cJSON *arr = cJSON_Parse(json);
	const cJSON *sb = cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "state_backend");
	if (cJSON_IsString(sb))
		fprintf(f, "shared state: %s\n", sb->valuestring);
	fprintf(f, "%-14s %-8s %4s %6s  %-10s %-9s %9s %9s %-14s %-16s %7s %5s %8s  %s\n", "NAME", "KIND", "TIER", "WEIGHT",
	        "COOLING", "BREAKER", "REM_REQ", "REM_TOK", "LEARNED_RPM", "LEARNED_TPM", "CALLS", "429S", "FAILURES",
	        "SPENT_TODAY");
	const cJSON *it;
	cJSON_ArrayForEach(it, arr)
	{
		char cooling[32] = "-";
		double ms = num_of(it, "cooling_ms");
		if (ms >= 3600000) /* a daily quota's, a service's wait of days: in hours */
			snprintf(cooling, sizeof cooling, "%.1fh", ms / 3600000.0);
		else if (ms > 0)
			snprintf(cooling, sizeof cooling, "%.1fs", ms / 1000.0);
		char rr[24] = "-", rt[24] = "-", lr[32], lt[32];
		double v = num_of(it, "remaining_requests");
		if (v >= 0)
			snprintf(rr, sizeof rr, "%.0f", v);
		v = num_of(it, "remaining_tokens");
		if (v >= 0)
			snprintf(rt, sizeof rt, "%.0f", v);
		learned_cell(lr, sizeof lr, it, "learned_rpm", "learned_rpm_from");
		learned_cell(lt, sizeof lt, it, "learned_tpm", "learned_tpm_from");
		char spent[48];
		spent_cell(spent, sizeof spent, it);
		fprintf(f, "%-14s %-8s %4d %6d  %-10s %-9s %9s %9s %-14s %-16s %7.0f %5.0f %8.0f  %s\n", str_of(it, "name"),
		        str_of(it, "kind"), (int)num_of(it, "tier"), (int)num_of(it, "weight"), cooling, str_of(it, "breaker"),
		        rr, rt, lr, lt, num_of(it, "calls"), num_of(it, "rate_limited"), num_of(it, "failures"), spent);
	}
	cJSON_Delete(arr);
}

/* One line per endpoint reset, saying what its shared state held. */
static void print_cleared(const char *json)
{
	cJSON *arr = cJSON_Parse(json);
	const cJSON *it;
	cJSON_ArrayForEach(it, arr)
	{
		char what[512] = "";
		size_t n = 0;
		double ms = num_of(it, "cooling_ms");
		const char *reason = str_of(it, "cooling_reason");
		if (ms > 0)
			n += (size_t)snprintf(what + n, sizeof what - n, ", %s cooldown with %.1f s left",
			                      !strcmp(reason, "auth")     ? "an auth"
			                      : !strcmp(reason, "server") ? "a server"
			                                                  : "a rate-limit",
			                      ms / 1000.0);
		if (strcmp(str_of(it, "breaker"), "closed") && n < sizeof what)
			n += (size_t)snprintf(what + n, sizeof what - n, ", a breaker %s", str_of(it, "breaker"));
		if (num_of(it, "learned_rpm") > 0 && n < sizeof what)
			n += (size_t)snprintf(what + n, sizeof what - n, ", learned rpm %.0f (from %s)",
			                      num_of(it, "learned_rpm"), str_of(it, "learned_rpm_from"));
		if (num_of(it, "learned_tpm") > 0 && n < sizeof what)
			n += (size_t)snprintf(what + n, sizeof what - n, ", learned tpm %.0f (from %s)",
			                      num_of(it, "learned_tpm"), str_of(it, "learned_tpm_from"));
		if (num_of(it, "calls") > 0 && n < sizeof what)
			n += (size_t)snprintf(what + n, sizeof what - n, ", statistics of %.0f call%s", num_of(it, "calls"),
			                      num_of(it, "calls") == 1 ? "" : "s");
		printf("endpoint `%s`: cleared %s\n", str_of(it, "name"), n ? what + 2 : "its shared state (it held nothing)");
	}
	cJSON_Delete(arr);
}

/* "spent today (UTC, every process): $X of a $Y daily budget; this
 * month: ..." when the configuration has a budget or a priced endpoint. */
static void print_spend(convbi_engine *e)
{
	char *json = NULL;
	if (convbi_engine_spend(e, &json))
		return;
	cJSON *o = cJSON_Parse(json);
	const cJSON *b = cJSON_GetObjectItem(o, "budget");
	double today = num_of(o, "spent_today_usd"), month = num_of(o, "spent_month_usd");
	if (cJSON_IsObject(b) || month > 0) {
		printf("spent today (UTC, every process): $%.4f", today);
		if (num_of(b, "daily") > 0)
			printf(" of a $%.2f daily budget", num_of(b, "daily"));
		printf("; this month: $%.4f", month);
		if (num_of(b, "monthly") > 0)
			printf(" of a $%.2f monthly budget", num_of(b, "monthly"));
		putchar('\n');
	}
	cJSON_Delete(o);
	convbi_free(json);
}

/* `endpoints --reset --json`: each endpoint reset as `endpoints --json`
 * shows it now (after the reset), with "cleared": the state it held
 * before (json, the engine's answer).  Returns a string to free with
 * cJSON_free, or NULL when out of memory. */
static char *reset_json(convbi_engine *e, const char *json)
{
	static const char *const fields[] = {
	        "cooling_ms",       "cooling_until_ms", "cooling_reason", "breaker",     "remaining_requests",
	        "remaining_tokens", "window_requests",  "window_tokens",  "learned_rpm", "learned_rpm_from",
	        "learned_tpm",      "learned_tpm_from", "calls",          "ok",          "rate_limited",
	        "failures"};
	char *after = NULL, *text = NULL;
	cJSON *before = cJSON_Parse(json), *now = NULL, *out = cJSON_CreateArray();
	if (!before || !out || convbi_engine_endpoints(e, &after) || !(now = cJSON_Parse(after)))
		goto done;
	const cJSON *was;
	cJSON_ArrayForEach(was, before)
	{
		const cJSON *it;
		cJSON_ArrayForEach(it, now)
		{
			if (strcmp(str_of(it, "name"), str_of(was, "name")))
				continue;
			cJSON *item = cJSON_Duplicate(it, 1), *cleared = cJSON_CreateObject();
			if (!item || !cleared || !cJSON_AddItemToObject(item, "cleared", cleared) ||
			    !cJSON_AddItemToArray(out, item)) {
				cJSON_Delete(item);
				goto done;
			}
			for (size_t k = 0; k < sizeof fields / sizeof *fields; k++) {
				const cJSON *v = cJSON_GetObjectItem(was, fields[k]);
				if (v)
					cJSON_AddItemToObject(cleared, fields[k], cJSON_Duplicate(v, 1));
			}
		}
	}
	text = cJSON_PrintUnformatted(out);
done:
	cJSON_Delete(before);
	cJSON_Delete(now);
	cJSON_Delete(out);
	convbi_free(after);
	return text;
}

int cmd_endpoints(struct cli_opts *o)
{
	if (o->nargs && !o->reset) {
		cli_error("`convbi endpoints` takes a NAME only with --reset; usage: convbi endpoints --reset [NAME]");
		return EXIT_USAGE;
	}
	convbi_engine *e = NULL;
	int rc = open_model_engine(&e, o);
	if (rc)
		return cli_exit_code(rc);
	char *json = NULL;
	if (o->reset)
		rc = convbi_engine_endpoints_reset(e, o->nargs ? o->args[0] : NULL, &json);
	else
		rc = convbi_engine_endpoints(e, &json);
	if (rc) {
		cli_error("%s", convbi_engine_errmsg(e));
		convbi_engine_close(e);
		return rc == CONVBI_EINVAL ? EXIT_USAGE : cli_exit_code(rc);
	}
	if (o->json && o->reset) {
		char *text = reset_json(e, json);
		if (!text) {
			cli_error("out of memory writing the reset's JSON");
			rc = CONVBI_ENOMEM;
		} else {
			printf("%s\n", text);
			cJSON_free(text);
		}
	} else if (o->json)
		printf("%s\n", json);
	else if (o->reset)
		print_cleared(json);
	else {
		print_endpoints(json, stdout);
		print_spend(e);
	}
	convbi_free(json);
	convbi_engine_close(e);
	return cli_exit_code(rc);
}

int cmd_schema(struct cli_opts *o)
{
	convbi_engine *e = NULL;
	int rc = cli_open_engine(&e, o);
	if (rc)
		return rc;
	char *text = NULL; /* with --today, --notes or --examples: the rest of what the SQL agent is given */
	rc = o->today || o->notes || o->examples ? convbi_engine_context(e, o->question, &text)
	                                         : convbi_engine_schema(e, o->question, &text);
	if (rc)
		cli_error("%s", convbi_engine_errmsg(e));
	else
		term_put(stdout, text, strlen(text));
	convbi_free(text);
	convbi_engine_close(e);
	return cli_exit_code(rc);
}

int cmd_graph(struct cli_opts *o)
{
	char *text = NULL;
	int rc = convbi_workflow_graph(o->format ? o->format : "mermaid", &text);
	if (rc == CONVBI_EINVAL) {
		cli_error("--format is `%s`; use mermaid or dot", o->format);
		return EXIT_USAGE;
	}
	if (rc)
		return cli_exit_code(rc);
	fputs(text, stdout);
	convbi_free(text);
	return EXIT_OK;
}
