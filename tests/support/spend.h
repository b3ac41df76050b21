/* spend.h -- many processes spending one budget: N processes of M threads,
 * each thread repeating one model call through its own process's client
 * until a budget stops it (test_budget, bench_budget).
 *
 * Each process opens its client from its configuration file (written
 * beforehand by the caller: children only read it), so the processes share
 * whatever state the configuration names -- one file, Redis, or none.
 * Results travel back through a pipe; a child never returns.
 */
#ifndef CONVBI_TESTS_SPEND_H
#define CONVBI_TESTS_SPEND_H

struct spend_total {
	long ok;      /* calls that succeeded */
	long refused; /* threads that ended on CONVBI_EBUDGET */
	long other;   /* calls that failed otherwise */
};

/* Runs procs processes of threads threads; process k reads configs[k]
 * (configs[0] for all when nconfigs is 1).  Every thread sends prompt with
 * max_tokens until CONVBI_EBUDGET, more than 3 other failures, or cap
 * successes.  Returns 0 with *out summed over the processes, or -1 when a
 * process did not report (said on stderr). */
int spend_processes(const char *const *configs, int nconfigs, int procs, int threads, const char *prompt, int max_tokens,
                    long cap, struct spend_total *out);

#endif
