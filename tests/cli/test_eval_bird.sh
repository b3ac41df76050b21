#!/usr/bin/env bash
# test_eval_bird.sh -- `convbi eval` on a BIRD-shaped set, and how results
# are compared.
#
# A small set in BIRD's layout (dev.json with question_id, db_id, question,
# evidence, SQL, difficulty; dev_databases/<db>/<db>.sqlite) over the sample
# database, detected without --dataset.  The evidence must reach the SQL
# prompt as the hint.  The fake "model" answers each question with SQL
# chosen to probe the comparison: numeric tolerance (0.1+0.2 vs 0.3), "1"
# vs "1.0", text "1" vs number 1, NULL vs NULL, rows compared as multisets
# unless the gold SQL orders them at the top level (an ORDER BY inside a
# subquery does not count), duplicates counted, a gold query that fails
# (excluded, and the model not asked).
# Environment (from CTest): CONVBI FAKE_AOAI BUILD_DIR SAMPLE_DB.
. "$(dirname "$0")/lib.sh"
: "${CONVBI:?}" "${FAKE_AOAI:?}" "${BUILD_DIR:?}" "${SAMPLE_DB:?}"

mkdir -p "$T/bird/dev_databases/shop"
cp "$SAMPLE_DB" "$T/bird/dev_databases/shop/shop.sqlite"
# question_id, question, gold SQL, predicted SQL, difficulty, expected verdict
cat >"$T/cases.tsv" <<'EOF'
0	How many customers are there?	SELECT count(*) FROM customers	SELECT count(id) FROM customers	simple	correct
1	What is 0.1 plus 0.2?	SELECT 0.1 + 0.2	SELECT 0.3	simple	correct
2	Give one as a real	SELECT 1	SELECT 1.0	moderate	correct
3	Give one as text	SELECT '1'	SELECT 1	moderate	correct
4	Give a null	SELECT NULL	SELECT NULL AS empty_value	moderate	correct
5	List the first three country codes in order	SELECT code FROM countries ORDER BY code LIMIT 3	SELECT code FROM (SELECT code FROM countries ORDER BY code LIMIT 3) ORDER BY code DESC	challenging	wrong_result
6	List three country codes	SELECT code FROM (SELECT code FROM countries ORDER BY code LIMIT 3)	SELECT code FROM (SELECT code FROM countries ORDER BY code LIMIT 3) ORDER BY code DESC	challenging	correct
7	Count duplicates	SELECT 1 UNION ALL SELECT 1	SELECT 1	challenging	wrong_result
8	Close but not equal	SELECT 1.0	SELECT 1.001	simple	wrong_result
9	Two columns swapped	SELECT 1, 'a'	SELECT 'a', 1	simple	wrong_result
10	A gold query that fails	SELECT * FROM no_such_table	SELECT 1	simple	gold_failure
EOF
# dev.json and the fake's SQL map, from the table (no tabs, quotes or
# backslashes in it beyond the single quotes above)
awk -F'\t' -v dev="$T/bird/dev.json" -v map="$T/sql_map.json" '
	function j(s) { gsub(/"/, "\\\"", s); return "\"" s "\"" }
	{
		ev = $1 == 0 ? "customers are the rows of the customers table" : ""
		printf "%s\n {\"question_id\": %d, \"db_id\": \"shop\", \"question\": %s, \"evidence\": %s, \"SQL\": %s, \"difficulty\": %s}", (NR > 1 ? "," : "["), $1, j($2), j(ev), j($3), j($5) > dev
		printf "%s\n %s: %s", (NR > 1 ? "," : "{"), j($2), j("```sql\\n" $4 "\\n```") > map
	}
	END { print "\n]" > dev; print "\n}" > map }' "$T/cases.tsv"

cat >"$T/scenario.json" <<'EOF'
{
 "endpoints": [{"name": "east", "api_key": "k", "deployment": "gpt-4o"}],
 "rules": [
  {"match": "intent classifier", "reply": "{\"intent\": \"data_question\", \"standalone_question\": \"\", \"reply\": \"\"}"},
  {"match": "SQL writer[\\s\\S]*\\nQuestion: ([^\\n]*)", "map_file": "sql_map.json", "default": "no map entry"},
  {"match": "answer writer", "reply": "Done."}
 ]
}
EOF
launch_fake "$T/scenario.json"
PORT=$(awk '$1 == "east" { print $2 }' "$T/ports")
cat >"$T/config.json" <<EOF
{"endpoints": [{"name": "east", "kind": "azure", "url": "http://127.0.0.1:$PORT", "deployment": "gpt-4o",
  "api_version": "2024-10-21", "api_key": "k", "priority": 0, "weight": 1}],
 "retry": {"max_attempts": 6, "deadline_ms": 20000, "connect_timeout_ms": 1000, "first_byte_timeout_ms": 5000,
  "idle_timeout_ms": 5000},
 "state": {"path": "$T/state"}}
EOF

"$CONVBI" eval --config "$T/config.json" -j 3 --out "$T/out.jsonl" "$T/bird" >"$T/report.txt" 2>"$T/err.txt"
rc=$?
check "eval on a BIRD directory exits 0 (got $rc)" test "$rc" -eq 0
check "the dataset is detected as BIRD" grep -q '^convbi eval: bird ' "$T/report.txt"
while IFS=$'\t' read -r id q gold pred diff want; do
	line=$(grep "^{\"index\":$id,\"id\":$id," "$T/out.jsonl")
	check "#$id ($q): $want" grep -q "\"verdict\":\"$want\"" <<<"$line"
	check "#$id carries its difficulty ($diff)" grep -q "\"difficulty\":\"$diff\"" <<<"$line"
done <"$T/cases.tsv"
check "the evidence reaches the SQL prompt as the hint" grep -q 'SQL writer.*Evidence (facts that help to write the query): customers are the rows of the customers table.*Question: How many customers are there?' "$T/requests.log"
check "the evidence is in the --out line" grep -q '"evidence":"customers are the rows of the customers table"' "$T/out.jsonl"
check "an empty evidence is no hint" bash -c '! grep -F "Question: Give a null" "$1" | grep -q "Evidence ("' _ "$T/requests.log"
check "the model is not asked when the gold query fails" bash -c '! grep -q "A gold query that fails" "$1"' _ "$T/requests.log"
check "the gold failure is listed with SQLite's reason" grep -q '^  #10 shop: the gold SQL fails: .*no such table: no_such_table' "$T/report.txt"
check "EX over the runnable questions" grep -q '^EX 60.00% (6/10 runnable; 1 gold failures excluded)' "$T/report.txt"
check "BIRD's difficulties in their order" test "$(grep -oE '^  (simple|moderate|challenging) ' "$T/report.txt" | tr -s ' ' | tr '\n' '|')" = ' simple | moderate | challenging |'
check "a wrong result names the difference" grep -q '"index":8,.*"error":"the rows differ (as multisets): column [0-9]* holds the value 1.001 in the prediction where the gold result has the value 1.0"' "$T/out.jsonl"
check "an order difference names the row" grep -q '"index":5,.*"error":"row 1 column 1 holds the value .* where the gold result has the value' "$T/out.jsonl"

"$CONVBI" eval --config "$T/config.json" --dataset spider "$T/bird" >"$T/wrong.txt" 2>&1
rc=$?
check "a BIRD file read as Spider is a usage error (exit $rc)" test "$rc" -eq 2
check "naming the missing field" grep -q 'lacks a string .db_id., .question. or .query.' "$T/wrong.txt"

finish
