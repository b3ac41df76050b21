/* chart_term.h -- an answer's chart drawn in the terminal (`.chart on`). */
#ifndef CONVBI_CLI_CHART_TERM_H
#define CONVBI_CLI_CHART_TERM_H

#include <stdio.h>

#include "convbi/convbi.h"

/* 1 when LC_ALL / LC_CTYPE / LANG (the first set) names UTF-8. */
int chart_term_utf8(void);
/* Draws the chart convbi_answer_chart_json chooses for a (nothing when it
 * chooses none): Unicode blocks when utf8, else plain ASCII.  Returns a
 * CONVBI_* status. */
int chart_term_print(FILE *f, const convbi_answer *a, int utf8);

#endif
