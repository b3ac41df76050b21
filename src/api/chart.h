/* chart.h -- the chart chosen for a result (private to src/api/). */
#ifndef CONVBI_API_CHART_H
#define CONVBI_API_CHART_H

#include "db/table.h"
#include "util/buf.h"

/* A chart inlines at most the first CHART_MAX_ROWS rows of a result, and
 * no more of them than hold CHART_MAX_BYTES bytes of cell text together:
 * the spec repeats the rows it shows, so a result at the 1 MB size cap
 * would otherwise double the answer (attack9 F7).  A chart of fewer rows
 * than the query returned says so in its title and description. */
#define CHART_MAX_ROWS 1000
#define CHART_MAX_BYTES (64 << 10)

/* The Vega-Lite v5 spec for t as compact JSON in *out (caller frees with
 * free), or *out = NULL when the result's shape suits no chart.  Returns
 * CONVBI_OK or CONVBI_ENOMEM. */
int chart_build(char **out, const struct table *t);

/* The same spec appended to out, or `null` when there is none.  Returns
 * CONVBI_OK, or CONVBI_ENOMEM with out as it was. */
int chart_put(struct buf *out, const struct table *t);

#endif
