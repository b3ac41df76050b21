/* fake.h -- the test harness around the fake Azure OpenAI server
 * (tests/fake_aoai): start it on a scenario, learn its ports, write a
 * convbi config that points at it, drive its control API, read its log.
 *
 * A struct fake lives in the caller's storage.  fake_start gives it a fresh
 * scratch directory (SCRATCH_DIR/fake-XXXXXX) holding:
 *   scenario.json  the scenario (fake_start only)
 *   ports          the server's port file, "NAME PORT" per line
 *   requests.log   the server's request log, one JSON object per line
 *   server.err     the server's stdout and stderr
 *   state          the default "state.path" of fake_write_config
 * fake_stop removes the directory unless the environment has KEEP_SCRATCH.
 * The harness talks to the server over plain sockets and never calls the
 * library under test, so it stays a fair witness.
 *
 * Returns: 0 / -1 for the int functions unless said otherwise; on -1 a line
 * saying why is printed on stderr (this is test code: loud is good).
 */
#ifndef CONVBI_TESTS_FAKE_H
#define CONVBI_TESTS_FAKE_H

#include <sys/types.h>

#define FAKE_MAX_ENDPOINTS 64

struct fake_endpoint {
	char name[64]; /* as in the scenario */
	int port;      /* on 127.0.0.1 */
};

struct fake {
	pid_t pid;           /* the server process; 0 when not running */
	char *dir;           /* owned: the scratch directory */
	char *scenario_path; /* owned: the scenario file the server read */
	char *log_path;      /* owned: dir/requests.log */
	char *scenario;      /* owned: the scenario's text */
	int nendpoints;
	struct fake_endpoint ep[FAKE_MAX_ENDPOINTS]; /* in scenario order */
};

/* Writes scenario_json into a fresh scratch directory, starts FAKE_AOAI_BIN
 * on it with --log and waits (at most 5 s) for its port file.  Relative
 * map_file paths resolve against the scratch directory.  On failure the
 * server's stderr is echoed, everything is cleaned up and f is left zeroed
 * (fake_stop on it is harmless). */
int fake_start(struct fake *f, const char *scenario_json);

/* The same for a scenario file on disk, which the server reads in place
 * (so its relative map_file paths resolve next to it, e.g. under
 * tests/scenarios/). */
int fake_start_file(struct fake *f, const char *scenario_path);

/* SIGTERM, wait (SIGKILL after 3 s), remove the scratch directory unless
 * KEEP_SCRATCH is set, zero f.  Accepts NULL and a stopped fake. */
void fake_stop(struct fake *f);

/* The port of endpoint `name`, or -1. */
int fake_port(const struct fake *f, const char *name);

/* Writes a convbi config for every endpoint to path:
 *   {"endpoints": [{"name", "kind": "azure", "url": "http://127.0.0.1:PORT",
 *                   "deployment", "api_version": "2024-10-21", "api_key",
 *                   "priority": 0, "weight": 1}, ...],
 *    "retry": {"max_attempts": 6, "deadline_ms": 20000,
 *              "connect_timeout_ms": 1000, "first_byte_timeout_ms": 2000,
 *              "idle_timeout_ms": 1000},
 *    "state": {"path": "<scratch dir>/state"}}
 * A scenario endpoint's "client" object is merged over its entry (e.g.
 * {"kind": "azure-v1", "priority": 1, "weight": 2}).  extra (NULL or a JSON
 * object's text) is merged over the whole: objects merge recursively, other
 * values replace, and null deletes a field. */
int fake_write_config(const struct fake *f, const char *path, const char *extra);

/* One HTTP request to an endpoint's port (Connection: close, no auth),
 * body sent as application/json when not NULL.  Returns the HTTP status, or
 * -1 on a transport failure (10 s timeout).  *reply_out (when reply_out is
 * not NULL) gets the body, de-chunked, malloc'd; NULL on failure. */
int fake_control(const struct fake *f, const char *endpoint, const char *method, const char *path, const char *body,
                 char **reply_out);

/* A field of GET /_fake/stats ("requests", "ok", "rate_limited",
 * "faulted") for an endpoint, or -1. */
long fake_stat(const struct fake *f, const char *endpoint, const char *field);

/* A numeric field of GET /_fake/stats as it is (the billed "cost_usd",
 * "prompt_tokens", "cached_tokens", "completion_tokens", ...), or -1. */
double fake_stat_num(const struct fake *f, const char *endpoint, const char *field);

/* The whole request log (malloc'd, caller frees; "" before any request),
 * or NULL when it cannot be read. */
char *fake_log(const struct fake *f);

/* How many log lines contain needle (-1 if the log cannot be read). */
int fake_log_count(const struct fake *f, const char *needle);

#endif
