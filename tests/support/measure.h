/* measure.h -- what a process used, measured from outside the code under
 * test: wall time, peak resident memory, peak temporary disk, and the time
 * the kernel kept its threads waiting for a CPU.
 *
 * The limits of the SQL gate (time, memory, temporary disk) are checked
 * against these numbers, never against the gate's own accounting:
 *   memory  the kernel's peak resident set (ru_maxrss from wait4 for a
 *           child; VmHWM after a reset through /proc/self/clear_refs for
 *           the calling process);
 *   disk    the blocks allocated to the process's open files under a
 *           directory (SQLite's temporary files are unlinked at once but
 *           stay open, so /proc/PID/fd is the only place they are seen),
 *           sampled every MEASURE_SAMPLE_US;
 *   wait    the run-queue delay of every thread (/proc/PID/task/TID/
 *           schedstat, field 2): time bounds subtract it, so that a
 *           machine busy with other work does not fail them while a
 *           process that really runs late still does.
 * Linux only; no dependency on the library or on CMocka, so the libFuzzer
 * targets compile it too.
 */
#ifndef CONVBI_TESTS_MEASURE_H
#define CONVBI_TESTS_MEASURE_H

#include <stdint.h>
#include <sys/types.h>

#define MEASURE_SAMPLE_US 1000 /* between two samples of a process's open files */

struct tu_usage {
	int status;          /* exit status, 128+N when killed by signal N, -1 = not waited for */
	int64_t wall_ms;     /* from tu_watch's call to the child's exit */
	int64_t rss_peak_kb; /* ru_maxrss */
	int64_t temp_peak;   /* bytes on disk of open files under the directory, at the highest sample */
	int64_t wait_ms;     /* run-queue delay of the child's threads, at the last sample */
};

/* Samples pid (a child of the caller) until it exits, then reaps it with
 * wait4.  dir (may be NULL: no disk sampling) is the directory whose files
 * count as temporary.  timeout_ms > 0 kills the child with SIGKILL when it
 * runs longer.  Returns 0, or -1 when wait4 failed. */
int tu_watch(pid_t pid, const char *dir, int timeout_ms, struct tu_usage *out);

/* Bytes on disk (st_blocks * 512) of the files pid (0 = this process) has
 * open under dir; 0 when there are none or pid is gone. */
int64_t tu_open_bytes(pid_t pid, const char *dir);

/* Run-queue delay of all threads of pid (0 = this process), in ms; -1 when
 * the kernel does not report it. */
int64_t tu_wait_ms(pid_t pid);

/* This process's resident set now (VmRSS) and at its peak (VmHWM), in KB;
 * -1 when unknown. */
int64_t tu_rss_kb(void);
int64_t tu_rss_peak_kb(void);

/* Starts a new peak: VmHWM becomes VmRSS (Linux >= 4.0).  Returns 0 or -1. */
int tu_rss_peak_reset(void);

/* The run-queue delay after a deadline: tu_deadline_start starts a thread
 * that sleeps until ms from now and then reads tu_wait_ms(0);
 * tu_deadline_wait_ms stops it and returns the delay accumulated since the
 * deadline, plus how late the thread itself woke (0 when the deadline did
 * not come).  One at a time; start
 * returns 0 or -1. */
int tu_deadline_start(int64_t ms);
int64_t tu_deadline_wait_ms(void);

/* Monotonic milliseconds. */
int64_t tu_mono_ms(void);

/* A span of work in this process, for time bounds that must hold on a
 * loaded machine: tu_span_start notes the time and the run-queue delay
 * of this process's threads; tu_span_ms returns the wall time since,
 * less the run-queue delay accrued meanwhile (never below 0 and never
 * more than the wall time): how long the work ran or slept, not how long
 * it waited for a CPU that other work held.  Without schedstat it is the
 * wall time.  tu_span_wall_ms is the plain wall time since the start. */
struct tu_span {
	int64_t t0_ms;   /* tu_mono_ms at the start */
	int64_t wait_ms; /* tu_wait_ms(0) at the start; -1 = not reported */
};
void tu_span_start(struct tu_span *s);
int64_t tu_span_ms(const struct tu_span *s);
int64_t tu_span_wall_ms(const struct tu_span *s);

/* Samples this process's open files under dir from a thread until
 * tu_sampler_stop, which returns the peak bytes.  One sampler at a time;
 * tu_sampler_start returns 0 or -1. */
int tu_sampler_start(const char *dir);
int64_t tu_sampler_stop(void);

#endif
