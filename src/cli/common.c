/* common.c -- what every command shares: opening the engine from the
 * command line, the default database, and the status -> exit code map. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "util/datadir.h"
#include "cli/cli.h"

const char *cli_default_db(void)
{
	const char *env = getenv("CONVBI_DB");
	if (env && *env)
		return env;
	return datadir_path(DATADIR_SAMPLE_DB);
}

void cli_engine_options(convbi_options *o, const struct cli_opts *c)
{
	convbi_options init = CONVBI_OPTIONS_INIT;
	*o = init;
	o->db_path = c->db ? c->db : cli_default_db();
	o->db_schemas = c->schemas;
	o->config_path = c->config;
	o->prompts_dir = c->prompts;
	if (c->max_repairs >= 0)
		o->max_repairs = c->max_repairs;
	if (c->row_cap > 0)
		o->row_cap = c->row_cap;
	if (c->sql_timeout_ms > 0)
		o->sql_timeout_ms = c->sql_timeout_ms;
	if (c->sql_memory_mb > 0)
		o->sql_memory_mb = c->sql_memory_mb;
	if (c->sql_temp_mb > 0)
		o->sql_temp_mb = c->sql_temp_mb;
	o->model_review = c->review;
	o->stream = c->stream != 0;
	o->today = c->today;
	o->notes_path = c->notes;
	o->examples_path = c->examples;
	if (c->candidates > 0)
		o->candidates = c->candidates;
}

int cli_exit_code(int status)
{
	switch (status) {
	case CONVBI_OK: return EXIT_OK;
	case CONVBI_EINVAL:
	case CONVBI_EMISUSE:
	case CONVBI_ECONFIG:
	case CONVBI_ENOENDPOINT:
	case CONVBI_ETEMPLATE:
	case CONVBI_EDB: return EXIT_USAGE;
	case CONVBI_ECANCELED: return EXIT_INTERRUPTED;
	default: return EXIT_FAIL;
	}
}

int cli_open_engine(convbi_engine **out, const struct cli_opts *c)
{
	convbi_options o;
	cli_engine_options(&o, c);
	int rc = convbi_engine_open(out, &o);
	if (rc) {
		cli_error("%s", *out ? convbi_engine_errmsg(*out) : convbi_errstr(rc));
		convbi_engine_close(*out);
		*out = NULL;
		return cli_exit_code(rc);
	}
	return EXIT_OK;
}
