/* example.c -- a BI application embedding convbi through the installed
 * package only (header, shared library, CMake package or pkg-config).
 * Usage: example DB [QUESTION]; with a question it needs endpoints
 * ($CONVBI_CONFIG); without one it prints the schema the model would see. */
#include <convbi/convbi.h>
#include <stdio.h>

static int on_event(const convbi_event *ev, void *payload)
{
	(void)payload;
	if (ev->kind == CONVBI_EVENT_TOKEN)
		fwrite(ev->text, 1, ev->len, stdout);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: example DB [QUESTION]\n");
		return 2;
	}
	convbi_options opts = CONVBI_OPTIONS_INIT;
	opts.db_path = argv[1];
	convbi_engine *engine = NULL;
	int rc = convbi_engine_open(&engine, &opts);
	if (rc) {
		fprintf(stderr, "example: %s\n", convbi_engine_errmsg(engine));
		convbi_engine_close(engine);
		return 1;
	}
	if (argc < 3) {
		char *schema = NULL;
		rc = convbi_engine_schema(engine, NULL, &schema);
		if (!rc)
			fputs(schema, stdout);
		convbi_free(schema);
	} else {
		convbi_session *session = NULL;
		convbi_answer *answer = NULL;
		rc = convbi_session_new(&session, engine);
		if (!rc)
			rc = convbi_session_ask(session, argv[2], NULL, on_event, NULL, &answer);
		printf("\nSQL: %s\nrows: %lld\nstatus: %s\n", convbi_answer_sql(answer),
		       (long long)convbi_answer_row_count(answer), convbi_errname(rc));
		convbi_answer_free(answer);
		convbi_session_free(session);
	}
	convbi_engine_close(engine);
	return rc ? 1 : 0;
}
