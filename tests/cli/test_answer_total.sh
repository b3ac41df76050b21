#!/usr/bin/env bash
# test_answer_total.sh -- a result cut by a cap (attack9 F7): `ask --json`
# says by which cap and how many rows the query returned in all (a count,
# or "at least" when counting stopped at its time bound), in fields and in
# a note; the answer writer is told the total; the chart carries a bounded
# number of rows and says in its title that it shows only the first ones,
# so a result at the 1 MB size cap no longer doubles the answer.
. "$(dirname "$0")/lib.sh"
cat >"$T/sql_map.json" <<'JSON'
{
 "Two thousand numbers": "```sql\nWITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM r WHERE i<2000) SELECT i, i % 7 AS m FROM r\n```",
 "Wide labels": "```sql\nWITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM r WHERE i<5000) SELECT printf('%.*c', 4000, 'x') || i AS label, i AS n FROM r\n```",
 "Endless numbers": "```sql\nWITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM r) SELECT i, i % 7 AS m FROM r\n```",
 "Few numbers": "```sql\nWITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM r WHERE i<30) SELECT i, i % 7 AS m FROM r\n```"
}
JSON
launch_map_fake
C=$T/config.json
# field EXPR -- a Python expression over the answer d (from $T/out)
field() { python3 -c "import json,sys; d=json.load(open('$T/out')); c=d['chart']; print($1)"; }
whitelist='sorted(c)==["$schema","data","description","encoding","mark","title"]'

# ---- the row cap: the total counted to the end --------------------------------------
expect_code 0 "ask --json, 2000 rows at the row cap" "$CONVBI" ask --config "$C" --db "$SAMPLE_DB" --json "Two thousand numbers"
check "row_count and truncated keep their meaning" test "$(field 'd["row_count"], d["truncated"], len(d["rows"])')" = "1000 True 1000"
check "total_rows is the whole count" test "$(field 'd["total_rows"], d["total_rows_exact"], d["truncated_by"]')" = "2000 True row_cap"
check "a note says it" test "$(field 'd["notes"][0]')" = "the query returned 2000 rows; the first 1000 are kept, cut by the row cap"
check "the chart says it shows the first rows" test "$(field 'c["title"], len(c["data"]["values"])')" = "First 1000 of 2000 rows 1000"
check "the chart keeps the whitelist (title and description are our words)" test "$(field "$whitelist")" = True
check "the answer writer was told the total" grep -q 'the query returned 2000 rows; the first 1000 are kept' "$T/requests.log"

# ---- the result size cap: the total, and a chart of bounded size ----------------------
expect_code 0 "ask --json, 4 KB labels at the 1 MB size cap" "$CONVBI" ask --config "$C" --db "$SAMPLE_DB" --json "Wide labels"
check "truncated by the size cap, with the total" test "$(field 'd["truncated"], d["total_rows"], d["total_rows_exact"], d["truncated_by"]')" = "True 5000 True result_size_cap"
kept=$(field 'd["row_count"]')
check "the size cap kept some 250 rows ($kept)" test "$kept" -gt 200 -a "$kept" -lt 300
check "the note gives the total" test "$(field 'd["notes"][0]')" = "the query returned 5000 rows; the first $kept are kept, cut by the result size cap"
charted=$(field 'len(c["data"]["values"])')
check "the chart carries at most 64 KB of values ($charted rows)" test "$charted" -ge 1 -a "$charted" -le 16
check "its title says so" test "$(field 'c["title"]')" = "First $charted of 5000 rows"
check "and its description why" grep -q 'a chart holds at most 1000 rows and 64 KB of values' "$T/out"
size=$(wc -c <"$T/out")
check "the answer is not doubled by its chart ($size bytes)" test "$size" -lt 1200000

# ---- counting that stops at its time bound: "at least" ----------------------------------
expect_code 0 "ask --json, endless rows" "$CONVBI" ask --config "$C" --db "$SAMPLE_DB" --json --sql-timeout-ms 60000 "Endless numbers"
least=$(field 'd["total_rows"]')
check "total_rows is a lower bound past the cap ($least)" test "$(field 'd["total_rows_exact"]')" = False -a "$least" -gt 1000
check "the note says at least" test "$(field 'd["notes"][0]')" = "the query returned at least $least rows; the first 1000 are kept, cut by the row cap"
check "the chart's title too" test "$(field 'c["title"]')" = "First 1000 of at least $least rows"

# ---- a whole result: the total is the row count, the chart as before ----------------------
expect_code 0 "ask --json, 30 rows" "$CONVBI" ask --config "$C" --db "$SAMPLE_DB" --json "Few numbers"
check "a whole result: total_rows = row_count, exact, not truncated" test "$(field 'd["total_rows"], d["total_rows_exact"], d["truncated_by"], d["truncated"], d["notes"]')" = "30 True None False []"
check "its chart has no title" test "$(field 'sorted(c)')" = "['\$schema', 'data', 'encoding', 'mark']"
finish
