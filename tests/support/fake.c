/* fake.c -- the harness around the fake Azure OpenAI server (see fake.h).
 *
 * Start: fork, exec FAKE_AOAI_BIN with its output in server.err and
 * PR_SET_PDEATHSIG so a crashed test never leaves a server behind, then
 * poll for the port file (the server renames it into place only once every
 * port listens).  Stop: SIGTERM and reap.  The config writer reads the
 * scenario text again (for keys, deployments and "client" overrides) and
 * builds the config with cJSON.  The control client is a minimal HTTP/1.1
 * client over a blocking socket with timeouts; it understands
 * Content-Length, chunked and read-to-EOF bodies.
 */
#include "fake.h"
#include "rawhttp.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#ifndef FAKE_AOAI_BIN
#define FAKE_AOAI_BIN "fake_aoai"
#endif

#define START_TIMEOUT_MS 5000
#define STOP_TIMEOUT_MS 3000
#define CONTROL_TIMEOUT_S 10
#define CONTROL_MAX_REPLY (64u << 20)

static char *path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static void echo_server_err(const struct fake *f)
{
	char *errp = path_join(f->dir, "server.err");
	char *text = errp ? tu_read_file(errp, NULL) : NULL;
	if (text && *text)
		fprintf(stderr, "fake: server said: %s", text);
	free(text);
	free(errp);
}

/* Parses the port file; 0 when it names every endpoint. */
static int read_ports(struct fake *f, const char *path)
{
	char *text = tu_read_file(path, NULL);
	if (!text)
		return -1;
	f->nendpoints = 0;
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct fake_endpoint *e = &f->ep[f->nendpoints];
		if (f->nendpoints == FAKE_MAX_ENDPOINTS || sscanf(line, "%63s %d", e->name, &e->port) != 2)
			break;
		f->nendpoints++;
	}
	free(text);
	return f->nendpoints > 0 ? 0 : -1;
}

static pid_t spawn(const struct fake *f, const char *ports)
{
	char *errp = path_join(f->dir, "server.err");
	if (!errp)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int nul = open("/dev/null", O_RDONLY);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (nul >= 0)
			dup2(nul, 0);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execl(FAKE_AOAI_BIN, "fake_aoai", "--scenario", f->scenario_path, "--port-file", ports, "--log", f->log_path,
		      (char *)NULL);
		dprintf(2, "cannot execute %s: %s\n", FAKE_AOAI_BIN, strerror(errno));
		_exit(127);
	}
	free(errp);
	return pid;
}

/* Starts the server on f->scenario_path and waits for its port file. */
static int launch(struct fake *f)
{
	char *ports = path_join(f->dir, "ports");
	int rc = -1;
	f->log_path = path_join(f->dir, "requests.log");
	if (!ports || !f->log_path)
		goto done;
	f->pid = spawn(f, ports);
	if (f->pid < 0) {
		f->pid = 0;
		fprintf(stderr, "fake: cannot fork: %s\n", strerror(errno));
		goto done;
	}
	int64_t deadline = tu_now_ms() + START_TIMEOUT_MS;
	while (tu_now_ms() < deadline) {
		int ws;
		if (waitpid(f->pid, &ws, WNOHANG) == f->pid) {
			f->pid = 0;
			fprintf(stderr, "fake: the server exited (status %d) before listening\n",
			        WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws));
			echo_server_err(f);
			goto done;
		}
		if (access(ports, F_OK) == 0) {
			rc = read_ports(f, ports);
			if (rc)
				fprintf(stderr, "fake: the port file %s is malformed\n", ports);
			goto done;
		}
		usleep(2000);
	}
	fprintf(stderr, "fake: the server did not write its port file within %d ms\n", START_TIMEOUT_MS);
	echo_server_err(f);
done:
	free(ports);
	return rc;
}

int fake_start(struct fake *f, const char *scenario_json)
{
	memset(f, 0, sizeof *f);
	f->dir = tu_mkdtemp("fake");
	if (!f->dir) {
		fprintf(stderr, "fake: cannot create a scratch directory: %s\n", strerror(errno));
		return -1;
	}
	f->scenario = strdup(scenario_json);
	f->scenario_path = path_join(f->dir, "scenario.json");
	if (!f->scenario || !f->scenario_path || tu_write_file(f->scenario_path, scenario_json)) {
		fprintf(stderr, "fake: cannot write the scenario into %s\n", f->dir);
		fake_stop(f);
		return -1;
	}
	if (launch(f)) {
		fake_stop(f);
		return -1;
	}
	return 0;
}

int fake_start_file(struct fake *f, const char *scenario_path)
{
	memset(f, 0, sizeof *f);
	f->dir = tu_mkdtemp("fake");
	if (!f->dir) {
		fprintf(stderr, "fake: cannot create a scratch directory: %s\n", strerror(errno));
		return -1;
	}
	f->scenario = tu_read_file(scenario_path, NULL);
	f->scenario_path = strdup(scenario_path);
	if (!f->scenario || !f->scenario_path) {
		fprintf(stderr, "fake: cannot read the scenario %s\n", scenario_path);
		fake_stop(f);
		return -1;
	}
	if (launch(f)) {
		fake_stop(f);
		return -1;
	}
	return 0;
}

void fake_stop(struct fake *f)
{
	if (!f)
		return;
	if (f->pid > 0) {
		int ws = 0;
		kill(f->pid, SIGTERM);
		int64_t deadline = tu_now_ms() + STOP_TIMEOUT_MS;
		pid_t r;
		while ((r = waitpid(f->pid, &ws, WNOHANG)) == 0 && tu_now_ms() < deadline)
			usleep(2000);
		if (r == 0) {
			fprintf(stderr, "fake: the server ignored SIGTERM for %d ms; killing it\n", STOP_TIMEOUT_MS);
			kill(f->pid, SIGKILL);
			waitpid(f->pid, &ws, 0);
		} else if (r == f->pid && !(WIFEXITED(ws) && WEXITSTATUS(ws) == 0)) {
			fprintf(stderr, "fake: the server did not exit cleanly (wait status 0x%x)\n", ws);
		}
	}
	if (f->dir && !getenv("KEEP_SCRATCH"))
		tu_rmtree(f->dir);
	free(f->dir);
	free(f->scenario_path);
	free(f->log_path);
	free(f->scenario);
	memset(f, 0, sizeof *f);
}

int fake_port(const struct fake *f, const char *name)
{
	for (int i = 0; i < f->nendpoints; i++)
		if (strcmp(f->ep[i].name, name) == 0)
			return f->ep[i].port;
	return -1;
}

/* ---- config -------------------------------------------------------------- */

/* Merges src's fields over dst (objects recursively, null deletes). */
static void json_merge(cJSON *dst, const cJSON *src)
{
	const cJSON *s;
	cJSON_ArrayForEach(s, src)
	{
		cJSON *d = cJSON_GetObjectItemCaseSensitive(dst, s->string);
		if (cJSON_IsNull(s)) {
			cJSON_DeleteItemFromObjectCaseSensitive(dst, s->string);
		} else if (d && cJSON_IsObject(d) && cJSON_IsObject(s)) {
			json_merge(d, s);
		} else if (d) {
			cJSON_ReplaceItemInObjectCaseSensitive(dst, s->string, cJSON_Duplicate(s, 1));
		} else {
			cJSON_AddItemToObject(dst, s->string, cJSON_Duplicate(s, 1));
		}
	}
}

static const char *str_of(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : "";
}

int fake_write_config(const struct fake *f, const char *path, const char *extra)
{
	cJSON *scen = cJSON_Parse(f->scenario), *cfg = cJSON_CreateObject(), *more = NULL;
	char *text = NULL, *state = path_join(f->dir, "state");
	int rc = -1;

	const cJSON *eps = cJSON_GetObjectItemCaseSensitive(scen, "endpoints");
	if (!cJSON_IsArray(eps) || !state) {
		fprintf(stderr, "fake_write_config: the scenario has no endpoints array\n");
		goto done;
	}
	cJSON *list = cJSON_AddArrayToObject(cfg, "endpoints");
	const cJSON *e;
	cJSON_ArrayForEach(e, eps)
	{
		const char *name = str_of(e, "name");
		int port = fake_port(f, name);
		if (port < 0) {
			fprintf(stderr, "fake_write_config: endpoint %s has no port\n", name);
			goto done;
		}
		char url[64];
		snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", name);
		cJSON_AddStringToObject(o, "kind", "azure");
		cJSON_AddStringToObject(o, "url", url);
		cJSON_AddStringToObject(o, "deployment", str_of(e, "deployment"));
		cJSON_AddStringToObject(o, "api_version", "2024-10-21");
		cJSON_AddStringToObject(o, "api_key", str_of(e, "api_key"));
		cJSON_AddNumberToObject(o, "priority", 0);
		cJSON_AddNumberToObject(o, "weight", 1);
		const cJSON *client = cJSON_GetObjectItemCaseSensitive(e, "client");
		if (cJSON_IsObject(client))
			json_merge(o, client);
		cJSON_AddItemToArray(list, o);
	}
	cJSON *retry = cJSON_AddObjectToObject(cfg, "retry");
	cJSON_AddNumberToObject(retry, "max_attempts", 6);
	cJSON_AddNumberToObject(retry, "deadline_ms", 20000);
	cJSON_AddNumberToObject(retry, "connect_timeout_ms", 1000);
	cJSON_AddNumberToObject(retry, "first_byte_timeout_ms", 2000);
	cJSON_AddNumberToObject(retry, "idle_timeout_ms", 1000);
	cJSON *st = cJSON_AddObjectToObject(cfg, "state");
	cJSON_AddStringToObject(st, "path", state);
	if (extra) {
		more = cJSON_Parse(extra);
		if (!cJSON_IsObject(more)) {
			fprintf(stderr, "fake_write_config: extra is not a JSON object: %s\n", extra);
			goto done;
		}
		json_merge(cfg, more);
	}
	text = cJSON_Print(cfg);
	if (!text || tu_write_file(path, text)) {
		fprintf(stderr, "fake_write_config: cannot write %s: %s\n", path, strerror(errno));
		goto done;
	}
	rc = 0;
done:
	cJSON_free(text);
	cJSON_Delete(scen);
	cJSON_Delete(cfg);
	cJSON_Delete(more);
	free(state);
	return rc;
}

/* ---- control client ---------------------------------------------------------- */

static int dial(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct timeval tv = {CONTROL_TIMEOUT_S, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((unsigned short)port);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Decodes a chunked body in place; returns its length or -1. */
static long dechunk(char *p, size_t n)
{
	size_t in = 0, out = 0;
	for (;;) {
		char *end;
		unsigned long size = strtoul(p + in, &end, 16);
		char *crlf = strstr(p + in, "\r\n");
		if (end == p + in || !crlf || (size_t)(crlf - p) + 2 + size > n)
			return -1;
		in = (size_t)(crlf - p) + 2;
		if (size == 0)
			return (long)out;
		memmove(p + out, p + in, size);
		out += size;
		in += size + 2;
	}
}

int fake_control(const struct fake *f, const char *endpoint, const char *method, const char *path, const char *body,
                 char **reply_out)
{
	char head[1024], buf[65536];
	char *resp = NULL;
	size_t len = 0;
	int status = -1, fd = -1;

	if (reply_out)
		*reply_out = NULL;
	int port = fake_port(f, endpoint);
	if (port < 0 || (fd = dial(port)) < 0)
		goto done;
	size_t blen = body ? strlen(body) : 0;
	int hn = snprintf(head, sizeof head,
	                  "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n"
	                  "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
	                  method, path, port, blen);
	if (hn < 0 || (size_t)hn >= sizeof head || rawhttp_send_n(fd, head, (size_t)hn) ||
	    rawhttp_send_n(fd, body ? body : "", blen))
		goto done;
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto done;
		if (n == 0)
			break;
		if (len + (size_t)n > CONTROL_MAX_REPLY)
			goto done;
		char *p = realloc(resp, len + (size_t)n + 1);
		if (!p)
			goto done;
		resp = p;
		memcpy(resp + len, buf, (size_t)n);
		len += (size_t)n;
		resp[len] = '\0';
	}
	char *sep = resp ? strstr(resp, "\r\n\r\n") : NULL;
	int code;
	if (!sep || sscanf(resp, "HTTP/1.%*d %d", &code) != 1)
		goto done;
	*sep = '\0';
	char *bodyp = sep + 4;
	size_t body_len = len - (size_t)(bodyp - resp);
	if (strcasestr(resp, "\r\ntransfer-encoding: chunked")) {
		long n = dechunk(bodyp, body_len);
		if (n < 0)
			goto done;
		body_len = (size_t)n;
	}
	if (reply_out) {
		*reply_out = malloc(body_len + 1);
		if (!*reply_out)
			goto done;
		memcpy(*reply_out, bodyp, body_len);
		(*reply_out)[body_len] = '\0';
	}
	status = code;
done:
	if (fd >= 0)
		close(fd);
	free(resp);
	return status;
}

double fake_stat_num(const struct fake *f, const char *endpoint, const char *field)
{
	char *reply = NULL;
	double v = -1;
	if (fake_control(f, endpoint, "GET", "/_fake/stats", NULL, &reply) == 200) {
		cJSON *o = cJSON_Parse(reply);
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, field);
		if (cJSON_IsNumber(n))
			v = n->valuedouble;
		cJSON_Delete(o);
	}
	free(reply);
	return v;
}

long fake_stat(const struct fake *f, const char *endpoint, const char *field)
{
	return (long)fake_stat_num(f, endpoint, field);
}

char *fake_log(const struct fake *f)
{
	if (!f->log_path)
		return NULL;
	return tu_read_file(f->log_path, NULL);
}

int fake_log_count(const struct fake *f, const char *needle)
{
	char *log = fake_log(f);
	if (!log)
		return -1;
	int count = 0;
	for (char *line = log; *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (strstr(line, needle))
			count++;
		if (!nl)
			break;
		line = nl + 1;
	}
	free(log);
	return count;
}
