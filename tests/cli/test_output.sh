#!/usr/bin/env bash
# test_output.sh -- the command line as an analyst uses it (issue 13):
# output you can save (ask --format/--answer/--out, the REPL's .output,
# .once and rows-only CSV/JSON modes), SQL in hand (SELECT lines, .sql
# QUERY, .confirm, .explain, .why), readable dot-commands, the work shown
# (-v and the REPL: a follow-up's rewrite, failed SQL with its error,
# retries), and parsing as people expect (options anywhere, several words,
# `ask -`, `llm -`, per-command --help).
. "$(dirname "$0")/lib.sh"
K=k-output-5c1e9a7b3d
I='You are the intent classifier'; S='You are the SQL writer'; X='You are the SQL explainer'
start_fake '{"endpoints":[{"name":"east","api_key":"'$K'","deployment":"gpt-4o","faults":[{"kind":"http503","count":1}]},
                          {"name":"west","api_key":"'$K'","deployment":"gpt-4o"}],
 "rules":[{"match":"'"$I"'[^$]*per country","reply":"{\"intent\":\"follow_up\",\"standalone_question\":\"How many customers per country?\"}"},
          {"match":"'"$I"'","reply":"{\"intent\":\"data_question\"}"},
          {"match":"'"$S"'[^$]*per country","reply":"```sql\nSELECT country_code, count(*) AS n FROM customers GROUP BY 1 ORDER BY 2 DESC LIMIT 3\n```"},
          {"match":"'"$S"'[^$]*no such column","reply":"```sql\nSELECT count(*) AS n FROM customers\n```"},
          {"match":"'"$S"'[^$]*broken","reply":"```sql\nSELECT nosuch FROM customers\n```"},
          {"match":"'"$S"'","reply":"```sql\nSELECT count(*) AS n FROM customers\n```"},
          {"match":"'"$X"'","reply":"It counts the customers."}],
 "default_reply":"There are 200 customers."}'
C=$T/c.json
write_config "$C" east:$K west:$K

# ---- ask --format: rows only on stdout ------------------------------------------
"$CONVBI" --config "$C" --db "$SAMPLE_DB" ask --format csv "How many customers?" >"$T/f.csv" 2>"$T/f.err"; rc=$?
check "ask --format csv exits 0" test $rc = 0
check "the CSV file holds the rows only" cmp -s "$T/f.csv" <(printf 'n\r\n200\r\n')
contains "$(cat "$T/f.err")" "There are 200 customers." "the answer sentence goes to stderr"
expect_code 0 "ask --format csv --answer" "$CONVBI" ask --config "$C" --db "$SAMPLE_DB" --format csv --answer "How many customers?"
contains "$OUT" "There are 200 customers." "--answer puts the sentence on stdout"
contains "$OUT" $'n\r\n200' "--answer keeps the rows"
expect_code 0 "ask --format json" "$CONVBI" ask --config "$C" --db "$SAMPLE_DB" --format json "How many customers?"
check "json rows only" test "$OUT" = '[{"n":200}]'
expect_code 0 "ask --format markdown" "$CONVBI" ask --config "$C" --db "$SAMPLE_DB" --format markdown "How many customers?"
check "markdown rows only" test "$OUT" = $'|  n  |\n|----:|\n| 200 |'
expect_code 0 "ask --format line" "$CONVBI" ask --config "$C" --db "$SAMPLE_DB" --format line "How many customers?"
contains "$OUT" "n = 200" "line mode: one column = value line"
expect_code 0 "ask --format table" "$CONVBI" ask --config "$C" --db "$SAMPLE_DB" --format table "How many customers?"
lacks "$OUT" "There are 200" "table format: no sentence on stdout"
contains "$OUT" "| 200 |" "table format: the rows"
expect_code 0 "ask --out FILE" "$CONVBI" ask --config "$C" --db "$SAMPLE_DB" --format csv --out "$T/out.csv" "How many customers?"
check "--out holds the rows" cmp -s "$T/out.csv" <(printf 'n\r\n200\r\n')
expect_code 2 "an unknown --format" "$CONVBI" ask --config "$C" --db "$SAMPLE_DB" --format xml "q"
contains "$ERR" "use table, csv, json, markdown or line" "names the formats"

# ---- parsing --------------------------------------------------------------------
expect_code 0 "options after the question and several words" "$CONVBI" ask How many customers? --config "$C" --db "$SAMPLE_DB" --format csv
check "the words made one question" grep -q 'How many customers?' "$T/requests.log"
expect_code 0 "global options before the command" "$CONVBI" --config "$C" --db "$SAMPLE_DB" ask --format csv "How many customers?"
echo "How many customers from stdin?" | "$CONVBI" ask --config "$C" --db "$SAMPLE_DB" --format csv - >"$T/o" 2>"$T/e"
check "ask - reads the question from stdin" grep -q 'customers from stdin' "$T/requests.log"
echo "say hello from stdin" | "$CONVBI" llm --config "$C" - >"$T/o" 2>"$T/e"
check "llm - reads the prompt from stdin" grep -q 'say hello from stdin' "$T/requests.log"
expect_code 2 "ask - with empty stdin" bash -c "'$CONVBI' ask --config '$C' - </dev/null"
contains "$ERR" "stdin held no text" "says stdin was empty"
expect_code 0 "ask --help" "$CONVBI" ask --help
contains "$OUT" "usage: convbi ask" "per-command usage"
contains "$OUT" "--format" "lists ask's flags"
lacks "$OUT" "--jobs" "only ask's flags"
expect_code 0 "help batch" "$CONVBI" help batch
contains "$OUT" "usage: convbi batch" "convbi help COMMAND"
expect_code 2 "unknown command" "$CONVBI" frobnicate
contains "$ERR" "unknown command" "names the unknown command"

# ---- -v shows the work ------------------------------------------------------------
expect_code 0 "ask -v with a repair" "$CONVBI" ask --config "$C" --db "$SAMPLE_DB" -v "broken question"
contains "$ERR" "SQL 1 failed: SELECT nosuch FROM customers" "-v shows the failed SQL"
contains "$ERR" "no such column" "-v shows its error"
contains "$ERR" "stage sql" "-v shows the stages"
contains "$ERR" "answered in" "-v shows the time and tokens"

# ---- the REPL: rows only in csv, .output/.once, SQL in hand, dot-commands ----------
cat >"$T/script" <<EOF
.mode
.mode csv
How many customers?
.once $T/once.csv
How many customers?
.output $T/all.csv
SELECT 1 AS one
select 2 AS two
.output
.mode table
WITH t AS (SELECT 3 AS three) SELECT * FROM t
.sql SELECT 4 AS four
.sql off
.sql
.sql on
and per country?
.why
.explain
.history
.tables
.endpoints
.maxrows 1
WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 5) SELECT v FROM s
.quit
EOF
before=$(wc -l <"$T/requests.log")
# one 503 on each endpoint: the REPL's first model call fails over as it happens
echo '[{"kind":"http503","count":1}]' > "$T/f.json"
for p in $PORT_east $PORT_west; do curl -s -X POST --data @"$T/f.json" "http://127.0.0.1:$p/_fake/faults" >/dev/null; done
"$CONVBI" repl --config "$C" --db "$SAMPLE_DB" <"$T/script" >"$T/repl.out" 2>"$T/repl.err"; rc=$?
R=$(cat "$T/repl.out"); RE=$(cat "$T/repl.err")
check "the piped REPL exits 0" test $rc = 0
contains "$R" "table" ".mode with no argument shows the mode"
check "csv mode prints rows only on stdout" grep -qx $'n\r' "$T/repl.out"
lacks "$R" "SQL: SELECT count(*)" "csv mode: the SQL line is not on stdout"
contains "$RE" "There are 200 customers." "csv mode: the sentence goes to stderr"
check ".once wrote the next result" cmp -s "$T/once.csv" <(printf 'n\r\n200\r\n')
check ".output collects results" cmp -s "$T/all.csv" <(printf 'one\r\n1\r\ntwo\r\n2\r\n')
contains "$R" "| three |" "a WITH line runs as SQL"
contains "$R" "| four |" ".sql QUERY runs SQL"
contains "$R" "SQL is not shown" ".sql off keeps its meaning"
contains "$R" "SQL: SELECT country_code" ".sql on shows the SQL again"
contains "$RE" "follow-up understood as: How many customers per country?" "the REPL shows the rewritten follow-up"
contains "$R" "as:       How many customers per country?" ".why shows the standalone question"
contains "$R" "stage:    sql" ".why shows the stages"
contains "$R" "total:" ".why shows time and tokens"
contains "$R" "It counts the customers." ".explain answers in plain words"
contains "$R" "QUESTION" ".history is a table"
contains "$R" "How many customers per country?" ".history lists the turn"
contains "$R" "customers" ".tables lists the tables"
contains "$R" "COLUMNS" ".tables shows columns"
contains "$R" "BREAKER" ".endpoints is a table"
contains "$R" "(showing 1 of 5 rows)" ".maxrows limits the rows shown"
n_sql=$(tail -n +"$((before + 1))" "$T/requests.log" | grep -c "$S")
check "SQL lines never reached the model ($n_sql SQL-writer calls for 3 questions)" test "$n_sql" = 3
contains "$RE" "HTTP 503" "the REPL shows a retry as it happens"

# .confirm: n declines, y runs (answers come from the same stdin)
printf '.confirm on\nHow many customers?\nn\nHow many customers?\ny\n' |
  "$CONVBI" repl --config "$C" --db "$SAMPLE_DB" >"$T/c.out" 2>"$T/c.err"; rc=$?
contains "$(cat "$T/c.err")" "run this? [Y/n/e]" ".confirm asks before running"
contains "$(cat "$T/c.out")" "Not run." "n declines"
contains "$(cat "$T/c.out")" "| 200 |" "y runs it"
check ".confirm's decline is not a failure" test $rc = 0

# the piped REPL exits 1 when a question fails
printf 'SELECT nosuch FROM customers\n' | "$CONVBI" repl --config "$C" --db "$SAMPLE_DB" >/dev/null 2>"$T/f.err"; rc=$?
check "a failed query makes the piped REPL exit 1" test $rc = 1
contains "$(cat "$T/f.err")" "no such column" "says why"
lacks "$(cat "$T/repl.out" "$T/repl.err" "$T/c.out" "$T/c.err" "$T/f.err")" "$K" "no key in any output"
finish
