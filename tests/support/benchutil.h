/* benchutil.h -- what the benchmarks share: percentiles over samples, and
 * the "one pick + one report" call whose cost bench_routing and
 * bench_redis measure on different state backends. */
#ifndef CONVBI_TESTS_BENCHUTIL_H
#define CONVBI_TESTS_BENCHUTIL_H

struct pool;

/* Sorts n doubles ascending, in place. */
void bench_sort(double *v, int n);
/* The p-th percentile (0..100, nearest rank) of sorted[0..n); NAN if n <= 0. */
double bench_pct(const double *sorted, int n, double p);
/* One pick and a successful report with typical budget headers; returns
 * the endpoint, -1 if none could be picked. */
int bench_pick_report(struct pool *p);

#endif
