/* batch_common.c -- Ctrl-C, the engine cache, run statistics and the
 * progress display shared by `convbi batch` and `convbi eval` (batch.h).
 *
 * Statistics come from each answer's JSON (convbi_answer_json): "attempts"
 * holds every HTTP attempt with its endpoint and class, "usage" the tokens,
 * "error_class" the status name.  Nothing here knows the library's
 * internals.
 */
#include "cli/batch.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/print.h"
#include "util/clock.h"
#include "util/limits.h"
#include "util/regfile.h"

/* ---- Ctrl-C ----------------------------------------------------------------- */

static volatile sig_atomic_t interrupts;

static void on_sigint(int sig)
{
	(void)sig;
	if (interrupts < 100)
		interrupts++;
	if (interrupts >= 3)
		signal(SIGINT, SIG_DFL); /* async-signal-safe; the next one kills */
}

void bulk_catch_sigint(void)
{
	cli_on_sigint(on_sigint);
	signal(SIGPIPE, SIG_IGN);
}

int bulk_resume_read(const char *path, const char *named, char **text, size_t *len)
{
	mode_t mode = 0;
	*text = NULL;
	int e = regfile_read(path, INPUT_FILE_MAX_BYTES, text, len, &mode);
	if (e == ENOENT)
		return EXIT_OK;
	if (e) {
		cli_error("cannot read %s `%s` to resume: %s", named, path, regfile_strerror(e, mode));
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

int bulk_interrupts(void)
{
	return interrupts;
}

int bulk_event(const convbi_event *ev, void *payload)
{
	(void)ev;
	(void)payload;
	return interrupts >= 2;
}

void bulk_block_sigint(int block)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

int64_t bulk_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- engines ----------------------------------------------------------------- */

/* The last lookup's path text and its engine; forgotten when out of memory. */
static void remember_last(struct engines *c, const char *path, int i)
{
	free(c->last_path);
	c->last_path = strdup(path);
	c->last = c->last_path ? i : -1;
}

int engines_get(struct engines *c, const struct cli_opts *o, const char *path, convbi_engine **out, char *msg, size_t msglen)
{
	*out = NULL;
	if (c->last >= 0 && !strcmp(path, c->last_path)) { /* no realpath: a million of them took 26 s */
		*out = c->v[c->last].e;
		return CONVBI_OK;
	}
	char real[PATH_MAX];
	const char *key = realpath(path, real) ? real : path;
	int i;
	if (strmap_get(&c->idx, key, &i)) {
		*out = c->v[i].e;
		remember_last(c, path, i);
		return CONVBI_OK;
	}
	if (c->n == c->cap) {
		int cap = c->cap ? c->cap * 2 : 8;
		struct engine_ent *v = realloc(c->v, (size_t)cap * sizeof *v);
		if (!v)
			return snprintf(msg, msglen, "out of memory"), CONVBI_ENOMEM;
		c->v = v;
		c->cap = cap;
	}
	convbi_options opts;
	cli_engine_options(&opts, o);
	opts.db_path = path;
	convbi_engine *e = NULL;
	int rc = convbi_engine_open(&e, &opts);
	if (rc) {
		snprintf(msg, msglen, "%s", e ? convbi_engine_errmsg(e) : convbi_errstr(rc));
		convbi_engine_close(e);
		return rc;
	}
	if (!c->checked) {
		/* Without endpoints every question would fail the same way:
		 * say it once, before the run. */
		char *json = NULL;
		rc = convbi_engine_endpoints(e, &json);
		convbi_free(json);
		if (rc) {
			snprintf(msg, msglen, "%s", convbi_engine_errmsg(e));
			convbi_engine_close(e);
			return rc;
		}
		c->checked = 1;
	}
	struct engine_ent *ent = &c->v[c->n];
	ent->e = e;
	ent->key = strdup(key);
	if (!ent->key || strmap_put(&c->idx, key, c->n, NULL) < 0) {
		free(ent->key);
		convbi_engine_close(e);
		return snprintf(msg, msglen, "out of memory"), CONVBI_ENOMEM;
	}
	remember_last(c, path, c->n++);
	*out = e;
	return CONVBI_OK;
}

void engines_close(struct engines *c)
{
	for (int i = 0; i < c->n; i++) {
		convbi_engine_close(c->v[i].e);
		free(c->v[i].key);
	}
	free(c->v);
	free(c->last_path);
	strmap_release(&c->idx);
	memset(c, 0, sizeof *c);
	c->last = -1;
}

/* ---- statistics ---------------------------------------------------------------- */

void runstats_init(struct runstats *s, int64_t total)
{
	memset(s, 0, sizeof *s);
	s->total = total;
	s->start_ms = bulk_now_ms();
}

int runstats_over_cost(const struct runstats *s, double max_cost)
{
	return max_cost > 0 && s->cost_usd >= max_cost;
}

void runstats_print_stopped(const struct runstats *s, double max_cost, int64_t not_run, const char *prefix, FILE *f)
{
	fprintf(f,
	        "%sstopped: the questions answered cost $%.6f, reaching --max-cost $%.2f; %lld not asked: run the same "
	        "command with --resume to continue\n",
	        prefix, s->cost_usd, max_cost, (long long)not_run);
}

static double usd_of(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static int64_t num_of(const cJSON *o, const char *key)
{
	return (int64_t)usd_of(o, key);
}

int status_of_answer(const cJSON *answer)
{
	const cJSON *cls = cJSON_GetObjectItemCaseSensitive(answer, "error_class");
	if (!cJSON_IsString(cls))
		return CONVBI_OK;
	for (int code = 1; code < RUNSTATS_MAX_STATUS; code++)
		if (!strcmp(convbi_errname(code), cls->valuestring))
			return code;
	return CONVBI_ELLM;
}

static struct ep_stats *ep_of(struct ep_stats *ep, int *n, int max, const char *name)
{
	for (int i = 0; i < *n; i++)
		if (!strcmp(ep[i].name, name))
			return &ep[i];
	if (*n == max)
		return NULL;
	struct ep_stats *e = &ep[(*n)++];
	memset(e, 0, sizeof *e);
	snprintf(e->name, sizeof e->name, "%s", name);
	return e;
}

void runstats_add(struct runstats *s, int status, const cJSON *answer)
{
	s->done++;
	if (status) {
		s->failed++;
		if (status > 0 && status < RUNSTATS_MAX_STATUS)
			s->by_status[status]++;
	}
	runstats_add_spend(s, answer);
}

void runstats_add_spend(struct runstats *s, const cJSON *answer)
{
	const cJSON *usage = cJSON_GetObjectItemCaseSensitive(answer, "usage");
	s->prompt_tokens += num_of(usage, "prompt_tokens");
	s->completion_tokens += num_of(usage, "completion_tokens");
	s->reserved_tokens += num_of(usage, "reserved_tokens");
	s->cost_usd += usd_of(answer, "cost_usd");
	const cJSON *a;
	cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(answer, "attempts"))
	{
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(a, "endpoint");
		const cJSON *cls = cJSON_GetObjectItemCaseSensitive(a, "class");
		int limited = cJSON_IsString(cls) && !strcmp(cls->valuestring, "rate_limited");
		s->rate_limited += limited;
		struct ep_stats *e =
		        ep_of(s->ep, &s->nep, RUNSTATS_MAX_ENDPOINTS, cJSON_IsString(name) ? name->valuestring : "?");
		if (e) {
			e->attempts++;
			e->rate_limited += limited;
			e->cost_usd += usd_of(a, "cost_usd");
		}
	}
}

cJSON *attempts_per_endpoint(const cJSON *answer)
{
	struct ep_stats ep[RUNSTATS_MAX_ENDPOINTS];
	int n = 0;
	const cJSON *a;
	cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(answer, "attempts"))
	{
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(a, "endpoint");
		const cJSON *cls = cJSON_GetObjectItemCaseSensitive(a, "class");
		struct ep_stats *e = ep_of(ep, &n, RUNSTATS_MAX_ENDPOINTS, cJSON_IsString(name) ? name->valuestring : "?");
		if (e) {
			e->attempts++;
			e->rate_limited += cJSON_IsString(cls) && !strcmp(cls->valuestring, "rate_limited");
			e->cost_usd += usd_of(a, "cost_usd");
		}
	}
	cJSON *o = cJSON_CreateObject();
	for (int i = 0; o && i < n; i++) {
		cJSON *e = cJSON_AddObjectToObject(o, ep[i].name);
		if (!e || !cJSON_AddNumberToObject(e, "attempts", (double)ep[i].attempts) ||
		    !cJSON_AddNumberToObject(e, "rate_limited", (double)ep[i].rate_limited) ||
		    !cJSON_AddNumberToObject(e, "cost_usd", ep[i].cost_usd)) {
			cJSON_Delete(o);
			return NULL;
		}
	}
	return o;
}

void runstats_failures(const struct runstats *s, struct buf *b)
{
	int first = 1;
	for (int code = 1; code < RUNSTATS_MAX_STATUS; code++) {
		if (!s->by_status[code])
			continue;
		buf_printf(b, "%s%s %lld", first ? "" : ", ", convbi_errname(code), (long long)s->by_status[code]);
		first = 0;
	}
}

static int ep_by_name(const void *a, const void *b)
{
	return strcmp(((const struct ep_stats *)a)->name, ((const struct ep_stats *)b)->name);
}

void runstats_print_usage(const struct runstats *s, const char *prefix, FILE *f)
{
	struct ep_stats ep[RUNSTATS_MAX_ENDPOINTS];
	memcpy(ep, s->ep, (size_t)s->nep * sizeof *ep);
	qsort(ep, (size_t)s->nep, sizeof *ep, ep_by_name);
	fprintf(f, "%stokens: %lld (prompt %lld, completion %lld", prefix, (long long)(s->prompt_tokens + s->completion_tokens),
	        (long long)s->prompt_tokens, (long long)s->completion_tokens);
	if (s->reserved_tokens)
		fprintf(f, "; %lld on reserved endpoints, cost 0", (long long)s->reserved_tokens);
	fprintf(f, ")\n%scost: $%.6f", prefix, s->cost_usd);
	if (s->done)
		fprintf(f, " ($%.6f per question)", s->cost_usd / (double)s->done);
	fputc('\n', f);
	fprintf(f, "%scalls per endpoint:", prefix);
	if (!s->nep)
		fputs(" none", f);
	for (int i = 0; i < s->nep; i++) {
		fprintf(f, "%s %s %lld", i ? "," : "", ep[i].name, (long long)ep[i].attempts);
		if (ep[i].rate_limited)
			fprintf(f, " (%lld rate-limited)", (long long)ep[i].rate_limited);
		if (ep[i].cost_usd > 0)
			fprintf(f, " for $%.6f", ep[i].cost_usd);
	}
	fputc('\n', f);
}

/* ---- progress --------------------------------------------------------------------- */

#define PROGRESS_TTY_MS 200
#define PROGRESS_LINE_MS 2000
#define PROGRESS_BAR 24

void progress_init(struct progress *p, const char *what)
{
	memset(p, 0, sizeof *p);
	p->tty = isatty(STDERR_FILENO);
	p->what = what;
	p->last_ms = bulk_now_ms();
}

static void fmt_duration(char *out, size_t n, int64_t ms)
{
	int64_t s = (ms + 500) / 1000;
	if (s >= 3600)
		snprintf(out, n, "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
	else if (s >= 60)
		snprintf(out, n, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
	else
		snprintf(out, n, "%llds", (long long)s);
}

void progress_show(struct progress *p, const struct runstats *s, int force)
{
	int64_t now = bulk_now_ms();
	if (!force && now - p->last_ms < (p->tty ? PROGRESS_TTY_MS : PROGRESS_LINE_MS))
		return;
	p->last_ms = now;
	double secs = (double)(now - s->start_ms) / 1000.0;
	double rate = secs > 0 ? (double)s->done / secs : 0;
	char eta[32] = "?";
	if (s->done >= s->total)
		snprintf(eta, sizeof eta, "0s");
	else if (rate > 0)
		fmt_duration(eta, sizeof eta, (int64_t)((double)(s->total - s->done) / rate * 1000.0));
	int pct = s->total ? (int)(s->done * 100 / s->total) : 100;
	if (p->tty) {
		char bar[PROGRESS_BAR + 1];
		int fill = s->total ? (int)(s->done * PROGRESS_BAR / s->total) : PROGRESS_BAR;
		for (int i = 0; i < PROGRESS_BAR; i++)
			bar[i] = i < fill ? '#' : '-';
		bar[PROGRESS_BAR] = '\0';
		fprintf(stderr, "\r\033[K[%s] %lld/%lld %3d%%  %.1f/s  ETA %s  failed %lld  429s %lld", bar, (long long)s->done,
		        (long long)s->total, pct, rate, eta, (long long)s->failed, (long long)s->rate_limited);
		p->drawn = 1;
	} else {
		fprintf(stderr, "convbi: %s: %lld/%lld done (%d%%), %.1f/s, ETA %s, %lld failed, %lld rate-limited attempts\n",
		        p->what, (long long)s->done, (long long)s->total, pct, rate, eta, (long long)s->failed,
		        (long long)s->rate_limited);
	}
	fflush(stderr);
}

void progress_end(struct progress *p)
{
	if (p->tty && p->drawn) {
		fputc('\n', stderr);
		p->drawn = 0;
	}
}

/* ---- the worker supervisor ----------------------------------------------------- */

void workers_init(struct workers *w)
{
	pthread_mutex_init(&w->mu, NULL);
	clock_cond_init(&w->cv);
}

void workers_release(struct workers *w)
{
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
}

void workers_notify(struct workers *w)
{
	pthread_cond_signal(&w->cv);
}

static void *worker_main(void *arg)
{
	struct workers *w = arg;
	for (;;) {
		pthread_mutex_lock(&w->mu);
		int stop = bulk_interrupts() || (w->stopping && w->stopping(w->ctx));
		int task = stop || w->next >= w->ntasks ? -1 : w->next++;
		pthread_mutex_unlock(&w->mu);
		if (task < 0)
			break;
		w->run(w->ctx, task);
	}
	pthread_mutex_lock(&w->mu);
	w->running--;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int workers_run(struct workers *w, int jobs)
{
	if (jobs > w->ntasks)
		jobs = w->ntasks;
	if (jobs < 1)
		jobs = 1;
	pthread_t *tids = calloc((size_t)jobs, sizeof *tids);
	if (!tids)
		return 0;
	bulk_catch_sigint();
	bulk_block_sigint(1); /* workers inherit the mask: Ctrl-C lands in this thread */
	int started = 0;
	for (; started < jobs; started++) {
		pthread_mutex_lock(&w->mu);
		w->running++;
		pthread_mutex_unlock(&w->mu);
		if (pthread_create(&tids[started], NULL, worker_main, w)) {
			pthread_mutex_lock(&w->mu);
			w->running--;
			pthread_mutex_unlock(&w->mu);
			break;
		}
	}
	bulk_block_sigint(0);
	int told = 0;
	pthread_mutex_lock(&w->mu);
	while (w->running > 0) {
		clock_cond_wait_ms(&w->cv, &w->mu, 100);
		int n = bulk_interrupts();
		if (n > told) {
			if (w->pg)
				progress_end(w->pg);
			fprintf(stderr,
			        n == 1 ? "convbi: interrupted: finishing the questions in flight; Ctrl-C again cancels them\n"
			               : "convbi: canceling the questions in flight\n");
			told = n;
		}
		if (w->tick)
			w->tick(w->ctx, 0);
	}
	if (w->tick)
		w->tick(w->ctx, 1);
	pthread_mutex_unlock(&w->mu);
	for (int i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	free(tids);
	return started;
}
