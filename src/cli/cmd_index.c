/* cmd_index.c -- `convbi index --db F`: builds the value index ahead of
 * time (the first question would otherwise build it), showing progress on
 * stderr about twice a second, and says where it is and what it holds. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <time.h>

#include "cli/cli.h"

#define PROGRESS_EVERY_MS 500

struct progress {
	long long last_ms;
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_progress(const char *table, const char *column, size_t done, size_t total, int64_t values, void *payload)
{
	struct progress *p = payload;
	long long t = now_ms();
	if (t - p->last_ms < PROGRESS_EVERY_MS && done < total)
		return;
	p->last_ms = t;
	fprintf(stderr, "convbi: indexing %zu/%zu columns (%s.%s), %lld values\n", done, total, table, column, (long long)values);
}

int cmd_index(struct cli_opts *o)
{
	convbi_options opts;
	cli_engine_options(&opts, o);
	opts.value_index = 0; /* built below, with progress */
	convbi_engine *e = NULL;
	int rc = convbi_engine_open(&e, &opts);
	if (rc) {
		cli_error("%s", e ? convbi_engine_errmsg(e) : convbi_errstr(rc));
		convbi_engine_close(e);
		return cli_exit_code(rc);
	}
	struct progress p = {now_ms()};
	char *json = NULL;
	rc = convbi_engine_index(e, o->rebuild, on_progress, &p, &json);
	if (rc) {
		cli_error("%s", convbi_engine_errmsg(e));
	} else if (o->json) {
		printf("%s\n", json);
	} else {
		cJSON *j = cJSON_Parse(json);
		const cJSON *built = cJSON_GetObjectItem(j, "built"), *partial = cJSON_GetObjectItem(j, "partial");
		printf("%s value index %s: %.0f values from %.0f columns%s%s\n", cJSON_IsTrue(built) ? "built" : "reused",
		       cJSON_GetStringValue(cJSON_GetObjectItem(j, "path")),
		       cJSON_GetNumberValue(cJSON_GetObjectItem(j, "values")),
		       cJSON_GetNumberValue(cJSON_GetObjectItem(j, "columns")), cJSON_IsTrue(built) ? "" : " (up to date)",
		       cJSON_IsTrue(partial) ? "; partial: a time bound cut the build" : "");
		if (cJSON_IsTrue(built))
			printf("built in %.0f ms\n", cJSON_GetNumberValue(cJSON_GetObjectItem(j, "build_ms")));
		cJSON_Delete(j);
	}
	convbi_free(json);
	convbi_engine_close(e);
	return cli_exit_code(rc);
}
