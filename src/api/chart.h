/* chart.h -- the chart chosen for a result (private to src/api/). */
#ifndef CONVBI_API_CHART_H
#define CONVBI_API_CHART_H

#include "db/table.h"
#include "util/buf.h"

/* Results with more rows than this get no chart (the spec inlines them). */
#define CHART_MAX_ROWS 1000

/* The Vega-Lite v5 spec for t as compact JSON in *out (caller frees with
 * free), or *out = NULL when the result's shape suits no chart.  Returns
 * CONVBI_OK or CONVBI_ENOMEM. */
int chart_build(char **out, const struct table *t);

/* The same spec appended to out, or `null` when there is none.  Returns
 * CONVBI_OK, or CONVBI_ENOMEM with out as it was. */
int chart_put(struct buf *out, const struct table *t);

#endif
