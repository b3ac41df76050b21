#!/usr/bin/env bash
# test_serve_ground.sh -- the grounding options of `convbi serve` and
# `convbi mcp`: --today, --notes (by default DB.notes.md beside each
# database), --examples and --candidates reach the prompts and the vote,
# and serve's questions route takes "today" and "candidates" per request
# (bad values refused with 400 naming them; a bad flag exits 2).
. "$(dirname "$0")/lib.sh"
export XDG_CACHE_HOME="$T/cache"
K=k-serve-ground-6a2b9c1d
I='You are the intent classifier'; S='You are the SQL writer'; A='You are the answer writer'
sql() { printf '```sql\\n%s\\n```' "$1"; }
start_fake '{"endpoints":[{"name":"east","api_key":"'$K'","deployment":"gpt-4o"}],
 "rules":[{"match":"'"$I"'","reply":"{\"intent\":\"data_question\"}"},
  {"match":"'"$S"'[\\s\\S]*Question: vote","sequence":["'"$(sql 'SELECT 7 AS n')"'","'"$(sql 'SELECT 7 AS n')"'","'"$(sql 'SELECT 8 AS n')"'"]},
  {"match":"'"$S"'","reply":"'"$(sql 'SELECT count(*) AS n FROM customers')"'"},
  {"match":"'"$A"'","reply":"Done."}],
 "default_reply":"OK"}'
C=$T/config.json
write_config "$C" east:$K
cp "$SAMPLE_DB" "$T/shop.db"
cp "$SAMPLE_DB" "$T/other.db"
cp "$SOURCE_DIR/data/shop.notes.md" "$T/shop.notes.md"
printf '# Loyalty\nA loyal customer has the word zebracorn in their notes.\n' >"$T/own.md"
printf '%s\n' '{"question":"How many customers are in each city?","sql":"SELECT city, count(*) FROM customers GROUP BY city","db":"shop"}' >"$T/ex.jsonl"
mark() { MARK=$(wc -l < "$T/requests.log"); }
sqlreq() { tail -n +"$((MARK + 1))" "$T/requests.log" | grep "$S" | tail -1; }
intentreq() { tail -n +"$((MARK + 1))" "$T/requests.log" | grep "$I" | tail -1; }
# session DB -- opens a session on DB; its id in $SID
session() {
  req POST /v1/sessions -d '{"db":"'"$1"'"}'; is 201 "a session on $1"
  SID=$(printf '%s' "$BODY" | sed -n 's/.*"session":"\([0-9a-f]*\)".*/\1/p')
}
# ask JSON -- asks on $SID after a mark
ask() { mark; req POST "/v1/sessions/$SID/questions" -d "$1"; }

. "$(dirname "$0")/serve_lib.sh"

# ---- serve: the flags --------------------------------------------------------
serve_start "$T/serve.log" --db shop="$T/shop.db" --db other="$T/other.db" --today 2024-06-15 \
  --examples "$T/ex.jsonl" --candidates 1
session other; OTHER=$SID
session shop
ask '{"question":"what was the revenue last month per customer city?"}'
is 200 "a question"
contains "$(sqlreq)" "Today is 2024-06-15" "--today reaches the SQL prompt"
contains "$(intentreq)" "Today is 2024-06-15" "and the intent prompt"
contains "$(sqlreq)" "Revenue is the **net amount**" "shop's notes beside its database reach the SQL prompt"
contains "$(sqlreq)" "How many customers are in each city?" "--examples reach the SQL prompt"
SHOP=$SID SID=$OTHER
ask '{"question":"what was the revenue last month?"}'
is 200 "a question on other"
lacks "$(sqlreq)" "Business notes" "a database without notes beside it gets none"
SID=$SHOP

# ---- serve: per request ------------------------------------------------------
ask '{"question":"how many customers?","today":"2025-01-31"}'
is 200 "a question with its own today"
contains "$(sqlreq)" "Today is 2025-01-31" "the request's today wins over --today"
ask '{"question":"how many customers again?"}'
contains "$(sqlreq)" "Today is 2024-06-15" "the next question has the server's today again"
ask '{"question":"vote","candidates":3}'
is 200 "a question with three candidates"
contains "$BODY" '"vote":{' "the answer has the vote"
contains "$BODY" '"votes":2' "the two equal results win"
contains "$(sqlreq)" '\"n\":3' "one request asks for three candidates"
ask '{"question":"x","candidates":17}'
is 400 "17 candidates"
contains "$BODY" '\"candidates\" must be a whole number from 1 to 16, not 17' "the message names the field, its range and the value"
ask '{"question":"x","candidates":1.5}'
is 400 "a fraction of a candidate"
ask '{"question":"x","candidates":1e300}'
is 400 "a huge number of candidates"
ask '{"question":"x","candidates":"2"}'
is 400 "candidates as a string"
ask '{"question":"x","today":"2026-02-30"}'
is 400 "a date that does not exist"
contains "$BODY" 'give a date as YYYY-MM-DD' "the message says the format"
contains "$BODY" '{"error":{"code":"bad_request","message":"today is `2026-02-30`, which is no real date (February 2026 has no day 30)' "bad_request naming today and why, as candidates (attack4 F1) and as MCP"
lacks "$BODY" '"answer"' "and no answer object"
req POST "/v1/sessions/$SID/questions" -H 'Accept: text/event-stream' -d '{"question":"x","today":"2024-02-30"}'
is 400 "SSE: a date that does not exist is 400 before the stream"
contains "$BODY" '{"error":{"code":"bad_request","message":"today is `2024-02-30`, which is no real date' "SSE: the same error shape"
ask '{"question":"x","today":"2024-13-01"}'
is 400 "month 13"
ask '{"question":"x","today":"0000-01-01"}'
is 400 "year 0 (there is none)"
contains "$BODY" '{"error":{"code":"bad_request","message":"today is `0000-01-01`, which is no real date (there is no year 0)' "year 0 is bad_request naming today"
ask '{"question":"x","today":"0001-01-01"}'
is 200 "year 1 is a real date"
ask '{"question":"x","today":"2024-02-29"}'
is 200 "a leap day is a real date"
ask '{"question":"x","today":7}'
is 400 "today as a number"
contains "$BODY" '\"today\" must be a string, not a number' "the message names the field"
req POST "/v1/sessions/$SID/questions" -H 'Accept: text/event-stream' -d '{"question":"vote","candidates":3,"today":"2023-03-03"}'
is 200 "SSE with per-request options"
contains "$BODY" 'event: done' "the stream finishes"
contains "$(printf '%s\n' "$BODY" | sed -n '/^event: done/{n;p}')" '"vote":{' "the streamed answer has the vote"
serve_stop

# ---- serve: --notes FILE for every database, '' for none, bad values -----------
serve_start "$T/serve2.log" --db shop="$T/shop.db" --db other="$T/other.db" --notes "$T/own.md"
for db in shop other; do
  session $db
  ask '{"question":"how many loyal customers?"}'
  contains "$(sqlreq)" "zebracorn" "--notes F reaches $db's SQL prompt"
  lacks "$(sqlreq)" "Revenue is the **net amount**" "in place of the notes beside $db"
done
serve_stop
serve_start "$T/serve3.log" --db shop="$T/shop.db" --notes ''
session shop
ask '{"question":"what was the revenue last month?"}'
lacks "$(sqlreq)" "Business notes" "--notes '' turns the notes off"
serve_stop
expect_code 2 "serve --today 2026-13-01" "$CONVBI" serve --listen 127.0.0.1:0 --config "$C" --db "$T/shop.db" --today 2026-13-01
contains "$ERR" "give a date as YYYY-MM-DD" "the bad date is named"
expect_code 2 "serve --candidates 0" "$CONVBI" serve --listen 127.0.0.1:0 --config "$C" --db "$T/shop.db" --candidates 0
contains "$ERR" "--candidates takes a whole number from 1 to 16" "the range is named"
expect_code 2 "serve --notes of a missing file" "$CONVBI" serve --listen 127.0.0.1:0 --config "$C" --db "$T/shop.db" --notes "$T/nope.md"
contains "$ERR" "nope.md" "the file is named"
expect_code 2 "serve --examples of a missing file" "$CONVBI" serve --listen 127.0.0.1:0 --config "$C" --db "$T/shop.db" --examples "$T/nope.jsonl"
contains "$ERR" "nope.jsonl" "the file is named"
expect_code 0 "serve --help" "$CONVBI" serve --help
contains "$OUT" "[--candidates N]" "the usage lists --candidates"

# ---- mcp over stdio ---------------------------------------------------------
M='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'
mark
printf '%s\n' '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{'"$M"',"name":"ask","arguments":{"question":"vote"}}}' |
  "$CONVBI" mcp --config "$C" --db shop="$T/shop.db" --today 2022-02-22 --candidates 3 --notes "$T/own.md" \
    --examples "$T/ex.jsonl" >"$T/mcp.out" 2>"$T/mcp.err"
contains "$(cat "$T/mcp.out")" '"isError":false' "mcp answers"
contains "$(sqlreq)" "Today is 2022-02-22" "mcp --today reaches the SQL prompt"
contains "$(sqlreq)" '\"n\":3' "mcp --candidates asks for three"
contains "$(sqlreq)" "How many customers are in each city?" "mcp --examples reach the SQL prompt"
mark
printf '%s\n' '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{'"$M"',"name":"ask","arguments":{"question":"how many loyal customers?"}}}' |
  "$CONVBI" mcp --config "$C" --db shop="$T/shop.db" --notes "$T/own.md" >"$T/mcp.out" 2>"$T/mcp.err"
contains "$(sqlreq)" "zebracorn" "mcp --notes reaches the SQL prompt"
printf '%s\n' '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{'"$M"',"name":"ask","arguments":{"question":"x","today":"0000-01-01"}}}' |
  "$CONVBI" mcp --config "$C" --db shop="$T/shop.db" >"$T/mcp.out" 2>"$T/mcp.err"
contains "$(cat "$T/mcp.out")" '"isError":true' "mcp: today in year 0 is a tool error"
contains "$(cat "$T/mcp.out")" 'which is no real date (there is no year 0)' "naming the year"
expect_code 2 "serve --today 0000-12-31" "$CONVBI" serve --listen 127.0.0.1:0 --config "$C" --db "$T/shop.db" --today 0000-12-31
contains "$ERR" "there is no year 0" "serve --today in year 0 is refused"
expect_code 2 "mcp --candidates 99" "$CONVBI" mcp --config "$C" --db "$T/shop.db" --candidates 99
finish
