/* bench_tokens.c -- Entra ID token fetches per hour: one cache for the host vs one per process.
 *
 * Issue 17's measure: token fetches per hour for 4 processes x 16 callers
 * over a 3-hour run with 60-minute tokens (target: <= 4 per hour in all).
 * Time is simulated by scaling it down --scale times (default 600): the
 * fake token service issues tokens of 3600/scale s (6 s), the run lasts
 * 3 h / scale (18 s), and each caller thinks --think-ms between calls.
 * The client's refresh margin is 5 minutes or a twelfth of the token's
 * lifetime, whichever is shorter -- for a 60-minute token that is the same
 * 5 minutes, so the scaled run keeps the real schedule (refresh at 55 of
 * every 60 simulated minutes) -- and nothing else in the client depends on
 * the token's age.  Fetches are counted by the token service itself (its
 * request log, bucketed by simulated hour), not by the client.
 *
 * Two clients run the same load against a fresh fake each, one after the
 * other:
 *   shared       convbi as configured by default: one token per identity
 *                for the host, in the private cache file beside the state;
 *   per-process  the same with state.backend "memory": each process keeps
 *                its own token (what a client without a shared cache does);
 * and a third line gives what fetching a token for every call would cost
 * (= the calls made), for scale.
 *
 * Usage: bench_tokens [--scale N] [--think-ms N] [--out FILE]
 * The target is printed as PASS/FAIL, never an exit status.
 */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "convbi/convbi.h"
#include "fake.h"
#include "llm/config.h"
#include "llm/llm.h"
#include "testutil.h"
#include "util/clock.h"

#define PROCS 4
#define CALLERS 16
#define HOURS 3

struct opts {
	int scale;
	int think_ms;
	const char *out;
};

struct result {
	const char *mode;
	long fetches;
	long per_hour[HOURS + 1]; /* the last bucket catches a fetch after the end */
	long calls, failed;
	double seconds;
};

struct caller {
	struct llm *l;
	int64_t until;
	int think_ms;
	long ok, failed;
};

static void *caller_main(void *arg)
{
	struct caller *c = arg;
	struct chat_msg m = {"user", "hello"};
	struct llm_request req = {.msgs = &m, .n = 1, .temperature = -1};
	while (clock_mono_ms() < c->until) {
		struct llm_reply rep;
		struct err err = ERR_INIT;
		if (llm_chat(c->l, &req, &rep, &err) == CONVBI_OK)
			c->ok++;
		else
			c->failed++;
		llm_reply_release(&rep);
		clock_sleep_ms(c->think_ms);
	}
	return NULL;
}

/* One process: CALLERS threads until `until`; writes "ok failed" to fd. */
static int child(const char *cfg, int64_t until, int think_ms, int fd)
{
	struct llm_config c;
	struct llm *l = NULL;
	struct err err = ERR_INIT;
	if (config_load(&c, cfg, &err) || llm_open(&l, &c, &err)) {
		fprintf(stderr, "bench_tokens: %s\n", err.msg);
		return 1;
	}
	struct caller cs[CALLERS];
	pthread_t t[CALLERS];
	for (int i = 0; i < CALLERS; i++) {
		cs[i] = (struct caller){l, until, think_ms, 0, 0};
		pthread_create(&t[i], NULL, caller_main, &cs[i]);
	}
	long ok = 0, failed = 0;
	for (int i = 0; i < CALLERS; i++) {
		pthread_join(t[i], NULL);
		ok += cs[i].ok;
		failed += cs[i].failed;
	}
	llm_close(l);
	char line[64];
	int n = snprintf(line, sizeof line, "%ld %ld\n", ok, failed);
	return write(fd, line, (size_t)n) == n ? 0 : 1;
}

static int run_mode(const struct opts *o, const char *mode, const char *backend, struct result *r)
{
	struct fake f;
	char scen[1024], cfg[1024], text[2048];
	long lifetime_s = 3600 / o->scale;
	snprintf(scen, sizeof scen,
	         "{\"entra\": {\"lifetime_s\": %ld, \"latency_ms\": 20},"
	         " \"endpoints\": [{\"name\": \"east\", \"api_key\": \"k-unused-east\", \"deployment\": \"gpt-4o\", \"local_auth\": false},"
	         "{\"name\": \"west\", \"api_key\": \"k-unused-west\", \"deployment\": \"gpt-4o\", \"local_auth\": false}],"
	         " \"default_reply\": \"OK\"}",
	         lifetime_s);
	if (fake_start(&f, scen))
		return -1;
	snprintf(cfg, sizeof cfg, "%s/config.json", f.dir);
	int port = fake_port(&f, "east");
	snprintf(text, sizeof text,
	         "{\"endpoints\": [{\"name\": \"east\", \"url\": \"http://127.0.0.1:%d\", \"deployment\": \"gpt-4o\", \"auth\": %s},"
	         "{\"name\": \"west\", \"url\": \"http://127.0.0.1:%d\", \"deployment\": \"gpt-4o\", \"auth\": %s}],"
	         " \"state\": {\"backend\": \"%s\", \"path\": \"%s/state\"}}",
	         port,
	         "{\"type\": \"managed_identity\", \"token_url\": \"http://127.0.0.1:%PORT/metadata/identity/oauth2/token\"}",
	         fake_port(&f, "west"),
	         "{\"type\": \"managed_identity\", \"token_url\": \"http://127.0.0.1:%PORT/metadata/identity/oauth2/token\"}",
	         backend, f.dir);
	char port_s[16], *p;
	snprintf(port_s, sizeof port_s, "%d", port);
	while ((p = strstr(text, "%PORT"))) { /* both endpoints' identity asks the one token service */
		memmove(p + strlen(port_s), p + 5, strlen(p + 5) + 1);
		memcpy(p, port_s, strlen(port_s));
	}
	tu_write_file(cfg, text);

	int64_t run_ms = (int64_t)HOURS * 3600 * 1000 / o->scale;
	int64_t wall0 = (int64_t)clock_wall_ms(), t0 = clock_mono_ms(), until = t0 + run_ms;
	int fds[2];
	if (pipe(fds))
		return -1;
	pid_t kids[PROCS];
	for (int i = 0; i < PROCS; i++) {
		kids[i] = fork();
		if (kids[i] == 0) {
			close(fds[0]);
			_exit(child(cfg, until, o->think_ms, fds[1]));
		}
	}
	close(fds[1]);
	memset(r, 0, sizeof *r);
	r->mode = mode;
	FILE *in = fdopen(fds[0], "r");
	long ok, failed;
	while (in && fscanf(in, "%ld %ld", &ok, &failed) == 2) {
		r->calls += ok + failed;
		r->failed += failed;
	}
	if (in)
		fclose(in);
	int bad = 0;
	for (int i = 0; i < PROCS; i++) {
		int st = 0;
		waitpid(kids[i], &st, 0);
		bad |= !WIFEXITED(st) || WEXITSTATUS(st);
	}
	r->seconds = (double)(clock_mono_ms() - t0) / 1000.0;

	/* the token service's own count, by simulated hour */
	char *log = fake_log(&f);
	int64_t hour_ms = 3600000 / o->scale;
	for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
		if (!strstr(line, "\"path\":\"/metadata/identity/oauth2/token"))
			continue;
		cJSON *j = cJSON_Parse(line);
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "t_ms");
		long h = cJSON_IsNumber(t) ? (long)(((int64_t)t->valuedouble - wall0) / hour_ms) : 0;
		r->per_hour[h < 0 ? 0 : h > HOURS ? HOURS : h]++;
		r->fetches++;
		cJSON_Delete(j);
	}
	free(log);
	fake_stop(&f);
	return bad ? -1 : 0;
}

int main(int argc, char **argv)
{
	struct opts o = {600, 100, "bench_tokens.json"};
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--scale") && i + 1 < argc)
			o.scale = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--think-ms") && i + 1 < argc)
			o.think_ms = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--out") && i + 1 < argc)
			o.out = argv[++i];
		else {
			fprintf(stderr, "usage: bench_tokens [--scale N] [--think-ms N] [--out FILE]\n");
			return 2;
		}
	}
	if (o.scale < 1 || 3600 % o.scale || o.think_ms < 0) {
		fprintf(stderr, "bench_tokens: --scale must divide 3600 (the token lifetime is whole seconds)\n");
		return 2;
	}
	printf("%d processes x %d callers, %d simulated hours of 60-minute tokens, time scaled %dx "
	       "(tokens of %d s, a run of %d s), %d ms between a caller's calls\n\n",
	       PROCS, CALLERS, HOURS, o.scale, 3600 / o.scale, HOURS * 3600 / o.scale, o.think_ms);
	struct result r[2];
	if (run_mode(&o, "shared (cache file)", "file", &r[0]) || run_mode(&o, "per process", "memory", &r[1])) {
		fprintf(stderr, "bench_tokens: a run failed\n");
		return 1;
	}
	printf("| client | token fetches | per hour (h1 / h2 / h3) | per hour, mean | calls | failed calls |\n");
	printf("|---|---|---|---|---|---|\n");
	for (int i = 0; i < 2; i++)
		printf("| %s | %ld | %ld / %ld / %ld%s | %.2f | %ld | %ld |\n", r[i].mode, r[i].fetches, r[i].per_hour[0],
		       r[i].per_hour[1], r[i].per_hour[2], r[i].per_hour[3] ? " (+1 at the end)" : "",
		       (double)r[i].fetches / HOURS, r[i].calls, r[i].failed);
	printf("| a fetch per call | %ld | | %.0f | %ld | |\n\n", r[0].calls, (double)r[0].calls / HOURS, r[0].calls);
	long worst = 0;
	for (int h = 0; h < HOURS; h++)
		worst = r[0].per_hour[h] > worst ? r[0].per_hour[h] : worst;
	printf("target: <= 4 fetches per hour in all: %s (worst hour %ld); per process / shared = %.1fx; per call / shared = %.0fx\n",
	       worst <= 4 && !r[0].failed ? "PASS" : "FAIL", worst, r[0].fetches ? (double)r[1].fetches / r[0].fetches : 0,
	       r[0].fetches ? (double)r[0].calls / r[0].fetches : 0);
	FILE *out = fopen(o.out, "w");
	if (out) {
		fprintf(out, "{\"scale\":%d,\"think_ms\":%d,\"processes\":%d,\"callers\":%d,\"hours\":%d,\"runs\":[", o.scale,
		        o.think_ms, PROCS, CALLERS, HOURS);
		for (int i = 0; i < 2; i++)
			fprintf(out,
			        "%s{\"mode\":\"%s\",\"fetches\":%ld,\"per_hour\":[%ld,%ld,%ld],\"calls\":%ld,\"failed\":%ld,\"seconds\":%.1f}",
			        i ? "," : "", r[i].mode, r[i].fetches, r[i].per_hour[0], r[i].per_hour[1], r[i].per_hour[2],
			        r[i].calls, r[i].failed, r[i].seconds);
		fprintf(out, "]}\n");
		fclose(out);
	}
	return 0;
}
