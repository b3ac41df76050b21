#!/usr/bin/env bash
# test_candidates.sh -- `--candidates N`: N SQL candidates in one request
# with `n` (at a temperature above 0), or one request each when the
# endpoint ignores or refuses `n`; every candidate through the gate and
# run; the largest group of equal results wins (the first group on a tie);
# the answer JSON lists every candidate with its group and the vote; the
# tokens of every SQL call are counted.
. "$(dirname "$0")/lib.sh"
K=k-cand-7d2e9a41c3
I='You are the intent classifier'; S='You are the SQL writer'; A='You are the answer writer'
sql() { printf '```sql\\n%s\\n```' "$1"; }
start_fake '{"endpoints":[{"name":"full","api_key":"'$K'","deployment":"gpt-4o"},
   {"name":"ollama","api_key":"'$K'","deployment":"gpt-4o","n":"ignore"},
   {"name":"llama","api_key":"'$K'","deployment":"gpt-4o","n":"reject"}],
 "rules":[{"match":"'"$I"'","reply":"{\"intent\":\"data_question\"}"},
  {"match":"'"$S"'[\\s\\S]*Question: majority","sequence":["'"$(sql 'SELECT 7 AS n')"'","'"$(sql 'SELECT count(*) AS n FROM customers')"'","'"$(sql 'SELECT 200.0 AS n')"'"]},
  {"match":"'"$S"'[\\s\\S]*Question: tie","sequence":["'"$(sql 'SELECT 1 AS n')"'","'"$(sql 'SELECT 2 AS n')"'"]},
  {"match":"'"$S"'[\\s\\S]*Question: gate","sequence":["'"$(sql 'DELETE FROM customers')"'","no SQL here","'"$(sql 'SELECT 3 AS n')"'"]},
  {"match":"'"$S"'[\\s\\S]*Question: none","sequence":["'"$(sql 'DELETE FROM customers')"'","'"$(sql 'SELECT nope FROM customers')"'","'"$(sql 'SELECT 4 AS n')"'"]},
  {"match":"'"$S"'[\\s\\S]*Question: ignored","sequence":["'"$(sql 'SELECT 5 AS n')"'"]},
  {"match":"'"$S"'[\\s\\S]*Question: refused","sequence":["'"$(sql 'SELECT 6 AS n')"'"]},
  {"match":"'"$A"'","reply":"Done."}],
 "default_reply":"OK"}'
write_config "$T/full.json" full:$K
write_config "$T/ollama.json" ollama:$K
write_config "$T/llama.json" llama:$K
DB=$SAMPLE_DB
# sql_requests: the SQL writer's requests logged since the mark
mark() { MARK=$(wc -l < "$T/requests.log"); }
sql_requests() { tail -n +"$((MARK + 1))" "$T/requests.log" | grep 'You are the SQL writer'; }
jq_() { python3 -c "import json,sys; d=json.load(open('$T/out')); print($1)"; }

mark
expect_code 0 "the largest group wins" "$CONVBI" ask --config "$T/full.json" --db "$DB" --candidates 3 --json "majority"
contains "$(jq_ 'd["sql"]')" "SELECT count(*) AS n FROM customers" "the first candidate of the largest group is the answer's SQL"
contains "$(jq_ '[c.get("group") for c in d["candidates"]]')" "[0, 1, 1]" "every candidate is listed with its group"
contains "$(jq_ 'd["vote"]')" "'winner': 1, 'votes': 2" "the vote names the winner and its votes"
contains "$(jq_ 'd["vote"]["groups"]')" "2" "two distinct results"
contains "$(jq_ 'd["rows"]')" "[[200]]" "the rows are the winner's"
R=$(sql_requests)
[ "$(printf '%s\n' "$R" | grep -c .)" = 1 ] && ok "one SQL request for three candidates" || bad "SQL requests: $(printf '%s\n' "$R" | grep -c .)"
contains "$R" '\"n\":3' "the request asks for n = 3"
contains "$R" '\"temperature\":0.7' "at a temperature above 0"
contains "$(jq_ 'd["stages"]["sql"]["calls"], d["stages"]["sql"]["completion_tokens"] > 0')" "1 True" "the tokens of all three choices are counted"

expect_code 0 "a tie goes to the first" "$CONVBI" ask --config "$T/full.json" --db "$DB" --candidates 2 --json "tie"
contains "$(jq_ 'd["sql"], d["vote"]["winner"], d["vote"]["votes"]')" "SELECT 1 AS n 0 1" "the first group wins a tie"

expect_code 0 "candidates the gate refuses do not vote" "$CONVBI" ask --config "$T/full.json" --db "$DB" --candidates 3 --json "gate"
contains "$(jq_ '[c.get("group") for c in d["candidates"]]')" "[None, None, 0]" "a refused candidate and a reply without SQL have no group"
contains "$(jq_ 'd["candidates"][0]["error"]')" "DELETE" "the refused candidate says why"
contains "$(jq_ 'd["sql"]')" "SELECT 3 AS n" "the one that ran answers"

mark
expect_code 0 "when none runs, a single repair follows" "$CONVBI" ask --config "$T/full.json" --db "$DB" --candidates 2 --json "none"
contains "$(jq_ 'd["sql"], d["repairs"], len(d["candidates"])')" "SELECT 4 AS n 1 3" "the repair is the third candidate"
R=$(sql_requests)
[ "$(printf '%s\n' "$R" | grep -c .)" = 2 ] && ok "two SQL requests: the vote, then the repair" || bad "SQL requests: $(printf '%s\n' "$R" | grep -c .)"
contains "$(printf '%s\n' "$R" | tail -1)" "SELECT nope FROM customers" "the repair is shown the last candidate and its error"
lacks "$(printf '%s\n' "$R" | tail -1)" '\"n\":' "a repair asks for one candidate"

mark
expect_code 0 "an endpoint that ignores n" "$CONVBI" ask --config "$T/ollama.json" --db "$DB" --candidates 3 --json "ignored"
R=$(sql_requests)
[ "$(printf '%s\n' "$R" | grep -c .)" = 3 ] && ok "the missing candidates are asked one by one" || bad "SQL requests: $(printf '%s\n' "$R" | grep -c .)"
contains "$(jq_ 'len(d["candidates"]), d["vote"]["votes"], d["stages"]["sql"]["calls"]')" "3 3 3" "three candidates, one group, three calls counted"

mark
expect_code 0 "an endpoint that refuses n" "$CONVBI" ask --config "$T/llama.json" --db "$DB" --candidates 3 --json "refused"
R=$(sql_requests)
[ "$(printf '%s\n' "$R" | grep -c .)" = 4 ] && ok "a refused n, then one request each" || bad "SQL requests: $(printf '%s\n' "$R" | grep -c .)"
contains "$(jq_ 'd["sql"], len(d["candidates"]), d["error"]')" "SELECT 6 AS n 3 None" "the answer stands"

curl -s -X POST "http://127.0.0.1:$PORT_full/_fake/reset" >/dev/null
printf 'majority\n.why\n' | "$CONVBI" --config "$T/full.json" --db "$DB" --candidates 3 >"$T/out" 2>"$T/err"
contains "$(cat "$T/out")" "vote:     3 candidates, 2 distinct results; SQL 2 answers with 2 votes" ".why shows the vote"
contains "$(cat "$T/out")" "ran, result 2" ".why shows each candidate's result group"

expect_code 2 "--candidates 17 is refused" "$CONVBI" ask --config "$T/full.json" --db "$DB" --candidates 17 "majority"
contains "$ERR" "--candidates" "the message names the option"
finish
