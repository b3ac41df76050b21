#!/usr/bin/env bash
# test_cli_fixes.sh -- issue 13: Ctrl-C cancels `ask` and `llm` at once
# while the model takes 20 s (the canceled attempt not held against the
# endpoint); batch --rows DIR; and every smaller defect of point 8: a
# zero-byte file is not an empty database, --resume asks failed questions
# again, the row-cap footer says it once and gives the total, an
# unreachable endpoint's message names its URL, a piped REPL whose
# questions all failed exits 1, an invalid JSON config names line and
# column.  (Ctrl-D's newline and Ctrl-C in the REPL: test_repl_term.sh.)
. "$(dirname "$0")/lib.sh"
K=k-fixes-2b7d9f1c3e
I='You are the intent classifier'; S='You are the SQL writer'
start_fake '{"endpoints":[{"name":"fast","api_key":"'$K'","deployment":"gpt-4o"},
                          {"name":"slow","api_key":"'$K'","deployment":"gpt-4o","latency_ms":20000}],
 "rules":[{"match":"'"$I"'","reply":"{\"intent\":\"data_question\"}"},
          {"match":"'"$S"'[^$]*broken","reply":"```sql\nSELECT nosuch FROM customers\n```"},
          {"match":"'"$S"'[^$]*ids","reply":"```sql\nSELECT id FROM customers ORDER BY id LIMIT 150\n```"},
          {"match":"'"$S"'","reply":"```sql\nSELECT count(*) AS n FROM customers\n```"}],
 "default_reply":"There are 200 customers."}'
C=$T/c.json
write_config "$C" fast:$K
write_config "$T/slow.json" slow:$K
sed -i 's/"deadline_ms":10000,"first_byte_timeout_ms":2000/"deadline_ms":60000,"first_byte_timeout_ms":30000/' "$T/slow.json"

# ---- Ctrl-C in ask and llm while the model takes 20 s ------------------------------
for cmd in "ask --db $SAMPLE_DB How many customers?" "llm say something slowly"; do
  # shellcheck disable=SC2086
  "$CONVBI" --config "$T/slow.json" $cmd >"$T/o" 2>"$T/e" &
  RUN_PID=$!
  for _ in $(seq 100); do grep -q "something slowly\|How many customers" "$T/requests.log" 2>/dev/null && break; sleep 0.05; done
  sleep 0.3
  start=$(date +%s%N)
  kill -INT "$RUN_PID"
  wait "$RUN_PID"; rc=$?
  RUN_PID=""
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  check "${cmd%% *}: Ctrl-C exits 130 (got $rc)" test "$rc" = 130
  [ $ms -lt 1000 ] && ok "${cmd%% *}: Ctrl-C returns in ${ms} ms (the model takes 20 s)" || bad "${cmd%% *}: Ctrl-C took ${ms} ms"
  contains "$(cat "$T/e")" "canceled" "${cmd%% *}: says canceled"
done
"$CONVBI" endpoints --config "$T/slow.json" --json >"$T/ep.json"
check "the canceled attempts are not held against the endpoint" grep -q '"failures":0' "$T/ep.json"
lacks "$(cat "$T/ep.json")" '"breaker":"open"' "the breaker stays closed"

# ---- a zero-byte file, a database without tables -----------------------------------
: >"$T/empty.db"
expect_code 2 "a zero-byte --db is refused" "$CONVBI" ask --config "$C" --db "$T/empty.db" "How many customers?"
contains "$ERR" "is empty (0 bytes), not a SQLite database" "says the file is empty"
check "the model was not asked" bash -c "! grep -q empty.db '$T/requests.log'"
expect_code 2 "schema of a zero-byte file" "$CONVBI" schema --db "$T/empty.db"
sqlite3 "$T/notables.db" "PRAGMA user_version = 1;"
n0=$(wc -l <"$T/requests.log")
expect_code 2 "a database without tables" "$CONVBI" ask --config "$C" --db "$T/notables.db" "How many customers?"
contains "$ERR" "has no tables or views" "says there is nothing to ask about"
check "the model was not asked about it" test "$(wc -l <"$T/requests.log")" = "$n0"

# ---- the row cap: said once, with the total ------------------------------------------
expect_code 0 "ask with a row cap" "$CONVBI" ask --config "$C" --db "$SAMPLE_DB" --row-cap 5 --format table "List customer ids"
contains "$OUT" "(5 rows; the query returned 150, cut by the row cap)" "the footer gives the total"
check "the cap is said once" test "$(grep -c "row cap" <<<"$OUT$ERR")" = 1

# ---- an unreachable endpoint names its URL --------------------------------------------
printf '{"endpoints":[{"name":"gone","kind":"azure","url":"http://user:pw@127.0.0.1:1/x?y=z","deployment":"d","api_key":"%s"}],"retry":{"deadline_ms":3000},"state":{"path":"%s/state2"}}' "$K" "$T" >"$T/gone.json"
expect_code 1 "an unreachable endpoint" "$CONVBI" llm --config "$T/gone.json" "hello"
contains "$ERR" "(http://127.0.0.1:1)" "the message names the endpoint's URL"
lacks "$ERR" "pw@" "without its user info"

# ---- an invalid JSON config names line and column -------------------------------------
printf '{"endpoints": [\n  {"name": "a",,}\n]}\n' >"$T/broken.json"
expect_code 2 "an invalid JSON config" "$CONVBI" llm --config "$T/broken.json" "hello"
contains "$ERR" "line 2, column" "names the line and column"

# ---- the piped REPL exits 1 when every question failed --------------------------------
printf 'broken question\nbroken again\n' | "$CONVBI" repl --config "$C" --db "$SAMPLE_DB" --max-repairs 0 >/dev/null 2>"$T/r.err"; rc=$?
check "a piped REPL whose questions failed exits 1 (got $rc)" test "$rc" = 1

# ---- batch: --rows DIR, --resume asks failed questions again ---------------------------
printf '{"id":"a","question":"How many customers?"}\n{"id":"b/c","question":"broken question"}\n{"id":"d","question":"List customer ids"}\n' >"$T/in.jsonl"
expect_code 1 "batch --format csv --rows DIR" "$CONVBI" batch --config "$C" --max-repairs 0 --format csv --rows "$T/rows" --out "$T/out.csv" "$T/in.jsonl"
check "the rows of a are in rows/a.csv" cmp -s "$T/rows/a.csv" <(printf 'n\r\n200\r\n')
check "every row of d is kept" test "$(wc -l <"$T/rows/d.csv")" = 151
check "a failed question writes no rows file" test ! -e "$T/rows/b_2Fc.csv"
n_before=$(grep -c "broken question" "$T/requests.log")
n_a=$(grep -c "How many customers" "$T/requests.log")
expect_code 1 "batch --resume" "$CONVBI" batch --config "$C" --max-repairs 0 --format csv --rows "$T/rows" --out "$T/out.csv" --resume "$T/in.jsonl"
check "--resume asks the failed question again" test "$(grep -c "broken question" "$T/requests.log")" -gt "$n_before"
check "--resume does not ask an answered one again" test "$(grep -c "How many customers" "$T/requests.log")" = "$n_a"
contains "$ERR" "2 of 3 questions already answered, 1 to go" "the resume line counts only answers"
printf 'How many customers?\n' >"$T/in.txt"
expect_code 0 "batch --format csv without --rows" "$CONVBI" batch --config "$C" --format csv "$T/in.txt"
contains "$ERR" "add --rows DIR" "says how to get the rows"
lacks "$(cat "$T"/o "$T"/e "$T/out.csv" "$T/r.err")" "$K" "no key in any output"
finish
