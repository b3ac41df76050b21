/* benchutil.c -- shared benchmark helpers (see benchutil.h). */
#include "benchutil.h"

#include <math.h>
#include <stdlib.h>

#include "convbi/convbi.h"
#include "llm/pool.h"
#include "util/clock.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

void bench_sort(double *v, int n)
{
	if (n > 1)
		qsort(v, (size_t)n, sizeof *v, cmp_double);
}

double bench_pct(const double *sorted, int n, double p)
{
	if (n <= 0)
		return NAN;
	int i = (int)ceil(p / 100.0 * n) - 1;
	return sorted[i < 0 ? 0 : i >= n ? n - 1 : i];
}

int bench_pick_report(struct pool *p)
{
	struct pool_pick k;
	if (pool_pick(p, clock_wall_ms(), 0, 800, &k) != CONVBI_OK || k.ep < 0)
		return -1;
	struct pool_outcome o = pool_outcome_of(POOL_OK);
	o.remaining_requests = 900;
	o.remaining_tokens = 90000;
	o.reset_requests_ms = 6000;
	o.reset_tokens_ms = 6000;
	o.tokens = 750;
	o.probe = k.probe;
	pool_report(p, k.ep, clock_wall_ms(), &o);
	return k.ep;
}
