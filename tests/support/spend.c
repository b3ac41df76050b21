/* spend.c -- many processes spending one budget (see spend.h). */
#include "spend.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "convbi/convbi.h"
#include "llm/config.h"
#include "llm/llm.h"

#define SPEND_MAX_THREADS 64
#define SPEND_MAX_OTHER 3

struct spender {
	struct llm *l;
	const char *prompt;
	int max_tokens;
	long cap;
	struct spend_total t;
};

static void *spend_thread(void *arg)
{
	struct spender *s = arg;
	while (s->t.ok < s->cap) {
		struct chat_msg m = {"user", s->prompt};
		struct llm_request req = {.msgs = &m, .n = 1, .max_tokens = s->max_tokens, .temperature = -1};
		struct llm_reply rep;
		struct err err = ERR_INIT;
		int rc = llm_chat(s->l, &req, &rep, &err);
		llm_reply_release(&rep);
		if (rc == CONVBI_OK) {
			s->t.ok++;
		} else if (rc == CONVBI_EBUDGET) {
			s->t.refused++;
			break;
		} else if (++s->t.other > SPEND_MAX_OTHER) {
			fprintf(stderr, "spend: %s\n", err.msg);
			break;
		}
	}
	return NULL;
}

static _Noreturn void spend_child(const char *config, int threads, const char *prompt, int max_tokens, long cap, int fd)
{
	struct llm_config cfg;
	struct err err = ERR_INIT;
	struct spend_total sum = {0, 0, 0};
	struct spender sp[SPEND_MAX_THREADS];
	pthread_t t[SPEND_MAX_THREADS];
	struct llm *l = NULL;
	if (config_load(&cfg, config, &err) || llm_open(&l, &cfg, &err)) {
		fprintf(stderr, "spend: %s\n", err.msg);
		_exit(2);
	}
	memset(sp, 0, sizeof sp);
	for (int i = 0; i < threads; i++) {
		sp[i] = (struct spender){l, prompt, max_tokens, cap, {0, 0, 0}};
		if (pthread_create(&t[i], NULL, spend_thread, &sp[i]))
			_exit(3);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		sum.ok += sp[i].t.ok;
		sum.refused += sp[i].t.refused;
		sum.other += sp[i].t.other;
	}
	llm_close(l);
	_exit(write(fd, &sum, sizeof sum) == (ssize_t)sizeof sum ? 0 : 4);
}

int spend_processes(const char *const *configs, int nconfigs, int procs, int threads, const char *prompt, int max_tokens,
                    long cap, struct spend_total *out)
{
	int res[2], rc = 0;
	memset(out, 0, sizeof *out);
	if (threads < 1 || threads > SPEND_MAX_THREADS || pipe(res))
		return -1;
	pid_t *pid = calloc((size_t)procs, sizeof *pid);
	if (!pid)
		return -1;
	for (int k = 0; k < procs; k++) {
		pid[k] = fork();
		if (pid[k] == 0) {
			close(res[0]);
			spend_child(configs[nconfigs > 1 ? k : 0], threads, prompt, max_tokens, cap, res[1]);
		}
	}
	close(res[1]);
	for (int k = 0; k < procs; k++) {
		struct spend_total t;
		if (read(res[0], &t, sizeof t) != (ssize_t)sizeof t) {
			fprintf(stderr, "spend: a process did not report\n");
			rc = -1;
			break;
		}
		out->ok += t.ok;
		out->refused += t.refused;
		out->other += t.other;
	}
	close(res[0]);
	for (int k = 0; k < procs; k++)
		if (pid[k] > 0)
			waitpid(pid[k], NULL, 0);
	free(pid);
	return rc;
}
