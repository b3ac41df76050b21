#!/usr/bin/env bash
# test_cost.sh -- what calls cost and how budgets stop them, through the CLI.
#
# Covers: cost_usd in `convbi llm --json` (with cached tokens, and 0 for a
# reserved endpoint), in `ask --json` (total, per stage, per attempt), in
# batch JSONL/CSV lines and the batch and eval summaries (total, per
# endpoint); `convbi endpoints` showing today's spend per endpoint and the
# configuration's budget; a spent configuration budget failing `ask` at
# once with EBUDGET naming it; --max-cost stopping batch and eval cleanly
# (exit 1, "stopped:"), and --resume finishing them with every question
# exactly once.  The fake bills at the same prices: its stats are the
# witness for the totals.
# Environment (from CTest): CONVBI FAKE_AOAI BUILD_DIR SAMPLE_DB.
. "$(dirname "$0")/lib.sh"
: "${CONVBI:?}" "${FAKE_AOAI:?}" "${BUILD_DIR:?}" "${SAMPLE_DB:?}"

PRICE='{"input": 10, "cached_input": 5, "output": 20}'
cat >"$T/scenario.json" <<EOF
{
 "endpoints": [
  {"name": "east", "api_key": "k-east", "deployment": "gpt-4o", "cached_tokens": 100, "price": $PRICE},
  {"name": "ptu", "api_key": "k-ptu", "deployment": "gpt-4o"}
 ],
 "rules": [
  {"match": "intent classifier", "reply": "{\"intent\": \"data_question\", \"standalone_question\": \"\", \"reply\": \"\"}"},
  {"match": "SQL writer", "reply": "\`\`\`sql\nSELECT count(*) AS n FROM customers\n\`\`\`"},
  {"match": "answer writer", "reply": "There are some customers."}
 ],
 "default_reply": "Hello there."
}
EOF
launch_fake "$T/scenario.json"

# config FILE EXTRA_TOP_LEVEL_JSON [PTU_TIER EAST_TIER]: east priced (tier
# 0), ptu reserved (tier 1)
config() {
	cat >"$1" <<EOF
{"endpoints": [
  {"name": "east", "kind": "azure", "url": "http://127.0.0.1:$PORT_east", "deployment": "gpt-4o", "api_key": "k-east",
   "price": $PRICE, "priority": ${4:-0}},
  {"name": "ptu", "kind": "azure", "url": "http://127.0.0.1:$PORT_ptu", "deployment": "gpt-4o", "api_key": "k-ptu",
   "reserved": true, "priority": ${3:-1}}],
 "retry": {"deadline_ms": 10000, "first_byte_timeout_ms": 5000, "idle_timeout_ms": 5000},
 "state": {"path": "$T/state-$(basename "$1" .json)"}$2}
EOF
}
stat_of() { curl -s "http://127.0.0.1:$1/_fake/stats" | sed -n "s/.*\"$2\":\([0-9.e+-]*\).*/\1/p"; }
reset_fake() { curl -s -X POST "http://127.0.0.1:$PORT_east/_fake/reset" >/dev/null; curl -s -X POST "http://127.0.0.1:$PORT_ptu/_fake/reset" >/dev/null; }
# same_usd A B: the two amounts agree to the micro-dollar
same_usd() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; exit !(a != "" && b != "" && d < 0.0000015 && d > -0.0000015) }'; }

config "$T/c.json" ""
config "$T/ptu.json" "" 0 1

# ---- llm --json ---------------------------------------------------------------
expect_code 0 "llm --json" "$CONVBI" --config "$T/c.json" llm --json "$(printf 'x%.0s' $(seq 800))"
contains "$OUT" '"cached_tokens":100}' "the reply's usage has the cached tokens"
cost=$(sed -n 's/.*"cost_usd":\([0-9.]*\),"reserved":false.*/\1/p' <<<"$OUT")
check "llm --json has cost_usd ($cost) equal to what the fake billed" same_usd "$cost" "$(stat_of "$PORT_east" cost_usd)"
# 200 prompt tokens (100 cached), 3 completion: 100 x 10 + 100 x 5 + 3 x 20 = 1560 micro-USD
check "and it is the price times the usage" same_usd "$cost" 0.001560
expect_code 0 "llm --json on a reserved endpoint" "$CONVBI" --config "$T/ptu.json" llm --json hi
contains "$OUT" '"cost_usd":0.000000,"reserved":true' "a reserved endpoint costs 0 and says reserved"

# ---- ask --json and endpoints ---------------------------------------------------
reset_fake
expect_code 0 "ask --json" "$CONVBI" --config "$T/c.json" ask --json --db "$SAMPLE_DB" how many customers
total=$(sed -n 's/.*},"cost_usd":\([0-9.]*\),"stages".*/\1/p' <<<"$OUT")
check "ask --json has the question's cost_usd ($total), what the fake billed" same_usd "$total" "$(stat_of "$PORT_east" cost_usd)"
contains "$OUT" '"intent":{"ms":' "stages are listed"
check "each stage has its cost" test "$(grep -o '"calls":1,"prompt_tokens":[0-9]*,"completion_tokens":[0-9]*,"cost_usd":0\.[0-9]*' <<<"$OUT" | wc -l)" -ge 3
check "each attempt has its cost" test "$(grep -o '"elapsed_ms":[0-9]*,"cost_usd":0\.[0-9]*}' <<<"$OUT" | wc -l)" -ge 3

expect_code 0 "ask -v" "$CONVBI" --config "$T/c.json" ask -v --db "$SAMPLE_DB" how many customers
check "-v says what the question cost" grep -Eq 'answered in [0-9]+ ms with [0-9]+ tokens for \$0\.[0-9]{6}' <<<"$ERR"
expect_code 0 "endpoints" "$CONVBI" --config "$T/c.json" endpoints
contains "$OUT" "SPENT_TODAY" "endpoints has a SPENT_TODAY column"
check "east shows what it spent today" grep -Eq '^east .* \$0\.[0-9]{4}$' <<<"$OUT"
check "ptu shows reserved" grep -Eq '^ptu .* reserved$' <<<"$OUT"
contains "$OUT" "spent today (UTC, every process): \$" "a line gives the whole configuration's spend"
expect_code 0 "endpoints --json" "$CONVBI" --config "$T/c.json" endpoints --json
contains "$OUT" '"price":{"input":10,"cached_input":5,"output":20},"reserved":false,"budget":null,"spent_today_usd":0.' "endpoints --json has price, budget and spend"

# ---- a spent budget --------------------------------------------------------------
config "$T/b.json" ', "budget": {"daily": 0.0001}'
expect_code 1 "ask under a spent configuration budget fails" "$CONVBI" --config "$T/b.json" ask --db "$SAMPLE_DB" how many customers
contains "$ERR" "the configuration's daily budget of \$0.0001 cannot cover this call" "the message names the budget"
contains "$ERR" "raise budget.daily or wait" "and the fix"
expect_code 1 "ask --json under a spent budget" "$CONVBI" --config "$T/b.json" ask --json --db "$SAMPLE_DB" how many customers
contains "$OUT" '"error_class":"EBUDGET"' "the answer's error_class is EBUDGET"
expect_code 0 "endpoints with a configuration budget" "$CONVBI" --config "$T/b.json" endpoints
contains "$OUT" 'of a $0.00 daily budget' "the budget is shown beside the spend"

# ---- the API: cost in the answer, 402 when the budget is spent ---------------------
. "$(dirname "$0")/serve_lib.sh"
C="$T/c.json"
serve_start "$T/serve.log" --db "shop=$SAMPLE_DB"
S=$(curl -s -X POST "$SV/v1/sessions" -d '{"db":"shop"}' | sed 's/.*"session":"\([0-9a-f]*\)".*/\1/')
req POST "/v1/sessions/$S/questions" -d '{"question":"how many customers?"}'
is 200 "a question through the API"
contains "$BODY" '"cost_usd":0.0' "the API's answer has its cost"
serve_stop
C="$T/b.json"
serve_start "$T/serve-b.log" --db "shop=$SAMPLE_DB"
S=$(curl -s -X POST "$SV/v1/sessions" -d '{"db":"shop"}' | sed 's/.*"session":"\([0-9a-f]*\)".*/\1/')
req POST "/v1/sessions/$S/questions" -d '{"question":"how many customers?"}'
is 402 "a spent budget is 402 in the API"
contains "$BODY" '"code":"EBUDGET"' "with the code EBUDGET"
lacks "$BODY" "\$0.0001" "the API client is not told the server's budget (attack5 F8)"
contains "$BODY" "the server's log says which budget" "it is told where the operator finds it"
serve_stop
contains "$(cat "$T/serve-b.log")" "daily budget of \$0.0001" "the server's log names the budget"

# ---- batch --max-cost and --resume ----------------------------------------------
for i in $(seq 1 8); do echo "how many customers, take $i?"; done >"$T/q.txt"
reset_fake
expect_code 0 "a batch that fits" "$CONVBI" --config "$T/c.json" batch --db "$SAMPLE_DB" -j 1 --out "$T/all.jsonl" "$T/q.txt"
per_q=$(awk -F'"cost_usd":' 'NR == 1 { split($2, a, ","); print a[1] }' "$T/all.jsonl")
contains "$ERR" "cost: \$" "the batch summary gives the total cost"
contains "$ERR" "calls per endpoint: east 24 for \$" "and each endpoint's"
billed=$(stat_of "$PORT_east" cost_usd)
summary=$(sed -n 's/.*cost: \$\([0-9.]*\).*/\1/p' <<<"$ERR")
check "the summary's total ($summary) is what the fake billed ($billed)" same_usd "$summary" "$billed"
check "every JSONL line has its question's cost" test "$(grep -c '"cost_usd":0\.0' "$T/all.jsonl")" -eq 8
check "attempts_per_endpoint has the cost" grep -q '"attempts_per_endpoint":{"east":{"attempts":3,"rate_limited":0,"cost_usd":0\.' "$T/all.jsonl"
max=$(awk -v c="$per_q" 'BEGIN { printf "%.6f", c * 2.5 }')
expect_code 1 "batch --max-cost stops the run" "$CONVBI" --config "$T/c.json" batch --db "$SAMPLE_DB" -j 1 --max-cost "$max" --out "$T/part.jsonl" "$T/q.txt"
contains "$ERR" "stopped: the questions answered cost \$" "it says why it stopped"
contains "$ERR" "5 not asked: run the same command with --resume to continue" "and how to continue"
check "three questions were answered" test "$(wc -l <"$T/part.jsonl")" -eq 3
expect_code 0 "batch --resume finishes the run" "$CONVBI" --config "$T/c.json" batch --db "$SAMPLE_DB" -j 1 --resume --out "$T/part.jsonl" "$T/q.txt"
check "every question is answered exactly once" test "$(grep -o '"id":[0-9]*' "$T/part.jsonl" | sort -u | wc -l)" -eq 8 -a "$(wc -l <"$T/part.jsonl")" -eq 8
expect_code 0 "batch --format csv" "$CONVBI" --config "$T/c.json" batch --db "$SAMPLE_DB" --format csv --out "$T/out.csv" "$T/q.txt"
check "the CSV lines end with the cost" test "$(grep -Ec ',[0-9]+,0\.[0-9]{6}'$'\r''$' "$T/out.csv")" -eq 8
expect_code 2 "--max-cost must be a positive amount" "$CONVBI" --config "$T/c.json" batch --max-cost -1 "$T/q.txt"
contains "$ERR" "--max-cost takes a positive amount of US dollars" "the message says what it takes"

# ---- eval --max-cost and --resume --------------------------------------------------
mkdir -p "$T/bird/dev_databases/shop"
cp "$SAMPLE_DB" "$T/bird/dev_databases/shop/shop.sqlite"
{
	echo "["
	for i in 0 1 2 3 4 5; do
		printf '%s {"question_id": %d, "db_id": "shop", "question": "How many customers, case %d?", "evidence": "", "SQL": "SELECT count(*) FROM customers", "difficulty": "simple"}\n' \
			"$([ $i -gt 0 ] && echo ,)" $i $i
	done
	echo "]"
} >"$T/bird/dev.json"
expect_code 1 "eval --max-cost stops the run" "$CONVBI" --config "$T/c.json" eval -j 1 --max-cost "$max" --out "$T/eval.jsonl" "$T/bird"
contains "$OUT" "stopped: the questions answered cost \$" "eval says why it stopped"
left=$(sed -n 's/.*, not run \([0-9]*\)$/\1/p' <<<"$OUT")
check "it counts what it did not run (${left:-none})" test "${left:-0}" -ge 1 -a "${left:-0}" -le 5
check "the others have --out lines, each with its cost" test "$(grep -c '"cost_usd":0\.0' "$T/eval.jsonl")" -eq $((6 - ${left:-0}))
expect_code 0 "eval --resume finishes the run" "$CONVBI" --config "$T/c.json" eval -j 2 --resume --out "$T/eval.jsonl" "$T/bird"
contains "$ERR" "$((6 - ${left:-0})) of 6 questions already in" "it says what it kept"
contains "$OUT" "EX 100.00% (6/6 runnable" "the report covers the kept questions too"
check "--out holds every question once, in dataset order" test "$(grep -o '^{"index":[0-9]*' "$T/eval.jsonl" | tr -dc '0-9\n' | tr '\n' ' ')" = "0 1 2 3 4 5 "
printf 'not ours\n' >"$T/foreign.jsonl"
expect_code 2 "eval --resume refuses a file it did not write" "$CONVBI" --config "$T/c.json" eval --resume --out "$T/foreign.jsonl" "$T/bird"
contains "$ERR" "is not a result file of \`convbi eval\`" "naming the file"
check "which is left as it was" test "$(cat "$T/foreign.jsonl")" = "not ours"

finish
