/* eval_compare.c -- are two answers' results the same?  (execution accuracy)
 *
 * The comparison itself is util's rescmp (the one `--candidates` voting
 * uses too); this file only reads public answers through it: every cell
 * through convbi_answer_cell (text, NULL for SQL NULL).
 */
#include "cli/eval.h"
#include "util/rescmp.h"

static const char *answer_cell(const void *obj, int64_t row, int col)
{
	return convbi_answer_cell(obj, row, col);
}

int results_match(const convbi_answer *gold, const convbi_answer *pred, int ordered, char *why, size_t whylen)
{
	struct rescmp_result g = {convbi_answer_column_count(gold), convbi_answer_row_count(gold), answer_cell, gold};
	struct rescmp_result p = {convbi_answer_column_count(pred), convbi_answer_row_count(pred), answer_cell, pred};
	return rescmp_match(&g, &p, ordered, why, whylen);
}
