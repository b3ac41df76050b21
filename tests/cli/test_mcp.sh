#!/usr/bin/env bash
# test_mcp.sh -- MCP with real clients: the official TypeScript SDKs
# (pinned in tests/node/package-lock.json; v1 speaks 2025-11-25, v2 probes
# with server/discover and speaks 2026-07-28) drive `convbi mcp` over stdio
# and `/mcp` on `convbi serve` over Streamable HTTP with a bearer token
# (tests/node/mcp_test.mjs), plus raw JSON-RPC edge cases over stdio:
# server/discover, an unknown protocol version, an unknown method, a
# notification, malformed JSON.  Needs the `node` fixture.
. "$(dirname "$0")/lib.sh"
N=$BUILD_DIR/node
[ -d "$N/node_modules/@modelcontextprotocol/sdk" ] || { bad "the node fixture did not run (tests/node/setup.sh)"; finish; exit 1; }
KEY=k-mcp-east-3c5e7a9b1d
TOK=tok-mcp-0f1e2d3c4b5a69788796a5b4
I='You are the intent classifier'; S='You are the SQL writer'; A='You are the answer writer'
start_fake '{"endpoints":[{"name":"east","api_key":"'$KEY'","deployment":"gpt-4o"},
  {"name":"slow","api_key":"k-slow-9a8b","deployment":"gpt-4o","latency_ms":2500}],
 "rules":[{"match":"'"$I"'[\\s\\S]*User message: and by country","reply":"{\"intent\":\"follow_up\",\"standalone_question\":\"How many customers per country?\"}"},
          {"match":"'"$I"'","reply":"{\"intent\":\"data_question\"}"},
          {"match":"'"$S"'[\\s\\S]*count forever","reply":"```sql\nWITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) AS n FROM c\n```"},
          {"match":"'"$S"'","reply":"```sql\nSELECT country_code, count(*) AS n FROM customers GROUP BY 1 ORDER BY 2 DESC LIMIT 8\n```"},
          {"match":"'"$A"'","reply":"Most customers are in the United States."}],
 "default_reply":"OK"}'
C=$T/config.json
write_config "$C" east:$KEY
printf '%s\n' "$TOK" > "$T/tokens"; chmod 600 "$T/tokens"

"$CONVBI" serve --listen 127.0.0.1:0 --config "$C" --db shop="$SAMPLE_DB" --tokens "$T/tokens" 2>"$T/serve.log" &
RUN_PID=$!
for _ in $(seq 200); do PORT=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/serve.log"); [ -n "$PORT" ] && break; sleep 0.05; done
[ -n "$PORT" ] || { bad "serve did not start: $(cat "$T/serve.log")"; finish; exit 1; }

node "$N/mcp_test.mjs" "$CONVBI" "$C" "$SAMPLE_DB" "http://127.0.0.1:$PORT/mcp" "$TOK" > "$T/node.out" 2>&1; rc=$?
grep -v '^ok' "$T/node.out" | head -30
[ $rc = 0 ] && ok "the SDK clients pass over stdio and HTTP ($(tail -1 "$T/node.out"))" || bad "SDK clients: $(tail -1 "$T/node.out")"

# No model endpoint: ask says what is missing and the operator's fix, in an
# MCP client's terms (not the command line's "pass --config"); run_sql works.
printf '%s\n' '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ask","arguments":{"question":"How many customers are there?"}}}' \
  '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"run_sql","arguments":{"sql":"SELECT 1 AS x"}}}' |
  env -u CONVBI_CONFIG -u AZURE_OPENAI_ENDPOINT_0 "$CONVBI" mcp --db shop="$SAMPLE_DB" > "$T/nomodel.out" 2>"$T/nomodel.err"
contains "$(sed -n 1p "$T/nomodel.out")" '"text":"this MCP server has no model endpoint configured, so ask cannot answer questions; its operator must add --config FILE naming the model endpoints to the command that starts it' "no model: ask tells the client what is missing and the operator's fix"
contains "$(sed -n 1p "$T/nomodel.out")" '"error_class":"ENOENDPOINT"},"isError":true' "as an isError tool result"
lacks "$(cat "$T/nomodel.out")" 'pass --config' "in no command-line user's words"
contains "$(sed -n 2p "$T/nomodel.out")" '"rows":[[1]]' "run_sql works without a model"
contains "$(cat "$T/nomodel.err")" 'convbi mcp: warning: no model endpoint is configured' "convbi mcp warns its operator at start"

# Raw JSON-RPC over stdio.
M='"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'
printf '%s\n' \
  '{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{'"$M"'}}' \
  '{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"1999-01-01"}}}' \
  '{"jsonrpc":"2.0","id":3,"method":"resources/list","params":{}}' \
  '{"jsonrpc":"2.0","method":"notifications/initialized"}' \
  'not json' \
  '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"nope","arguments":{}}}' \
  '{"jsonrpc":"2.0","id":5,"method":"tools/list","params":{'"$M"'}}' \
  '{"jsonrpc":"1.0","id":6,"method":"ping"}' '{"id":7,"method":"ping"}' '{"jsonrpc":"2.0","id":8,"method":"ping"} x' |
  "$CONVBI" mcp --config "$C" --db shop="$SAMPLE_DB" > "$T/raw.out" 2>"$T/raw.err"; rc=$?
R=$(cat "$T/raw.out")
[ $rc = 0 ] && ok "convbi mcp exits 0 at EOF" || bad "convbi mcp exit $rc: $(cat "$T/raw.err")"
[ "$(wc -l < "$T/raw.out")" = 9 ] && ok "nine replies for nine requests (none for the notification)" || bad "replies: $R"
contains "$(sed -n 7p "$T/raw.out")" '"id":6,"error":{"code":-32600,"message":"Invalid Request: \"jsonrpc\" must be \"2.0\""' "jsonrpc 1.0 is an invalid request (attack5 F15)"
contains "$(sed -n 8p "$T/raw.out")" '"id":7,"error":{"code":-32600' "as is a message without jsonrpc"
contains "$(sed -n 9p "$T/raw.out")" '"code":-32700,"message":"Parse error: there is more after the JSON value' "text after the message is a parse error"
L1=$(sed -n 1p "$T/raw.out")
contains "$L1" '"id":1,"result":{"supportedVersions":["2026-07-28","2025-11-25"' "discover lists the versions"
contains "$L1" '"resultType":"complete"' "discover's result has resultType"
contains "$L1" '"serverInfo":{"name":"convbi"' "discover has serverInfo"
contains "$L1" '"capabilities":{"tools":' "discover has the tools capability"
contains "$(sed -n 2p "$T/raw.out")" '"code":-32004,"message":"Unsupported protocol version","data":{"supported":["2026-07-28"' "an unknown version gets -32004"
contains "$(sed -n 3p "$T/raw.out")" '"id":3,"error":{"code":-32601' "an unknown method gets -32601"
contains "$(sed -n 4p "$T/raw.out")" '"id":null,"error":{"code":-32700' "malformed JSON gets -32700"
contains "$(sed -n 5p "$T/raw.out")" '"id":4,"error":{"code":-32602' "an unknown tool gets -32602"
L6=$(sed -n 6p "$T/raw.out")
contains "$L6" '"readOnlyHint":true' "tools/list marks readOnlyHint"
contains "$L6" '"ttlMs":' "a 2026-07-28 tools/list carries ttlMs"
contains "$L6" '"cacheScope":"public","resultType":"complete"' "and cacheScope and resultType"
R=$(grep 'You are the SQL writer' "$T/requests.log" | grep '2031-02-03')
[ "$(printf '%s\n' "$R" | grep -c .)" = 4 ] && ok "ask's today reached the SQL prompt of each client's question" \
  || bad "SQL requests dated 2031-02-03: $(printf '%s\n' "$R" | grep -c .)"
contains "$R" '\"n\":2' "ask's candidates reached the SQL request"

# ask's today and candidates are checked like the other tool arguments
ask_with() { printf '{"jsonrpc":"2.0","id":%s,"method":"tools/call","params":{"name":"ask","arguments":{"question":"q",%s}}}\n' "$1" "$2"; }
{ ask_with 1 '"candidates":0'; ask_with 2 '"candidates":2.5'; ask_with 3 '"candidates":"2"'; ask_with 4 '"today":5'
  ask_with 5 '"today":"tomorrow"'; } | "$CONVBI" mcp --config "$C" --db shop="$SAMPLE_DB" > "$T/args.out" 2>>"$T/raw.err"
for i in 1 2 3; do
  contains "$(grep "\"id\":$i," "$T/args.out")" '"candidates\" must be a whole number from 1 to 16, not ' "a bad candidates is a tool error ($i)"
done
contains "$(grep '"id":4,' "$T/args.out")" '"today\" must be a string, not a number"' "a today that is no string is a tool error"
contains "$(grep '"id":5,' "$T/args.out")" 'today is `tomorrow`; give a date as YYYY-MM-DD' "a today that is no date is a tool error"
check "every bad argument is an isError result" test "$(grep -c '"isError":true' "$T/args.out")" = 5
# Every tool's arguments are checked against the inputSchema tools/list
# declares -- type, required, no unknown key -- and a mistake is a tool
# error naming the argument, never a run on the default database (attack5 F3).
call() { printf '{"jsonrpc":"2.0","id":%s,"method":"tools/call","params":{"name":"%s","arguments":%s}}\n' "$1" "$2" "$3"; }
{ call 1 run_sql '{"sql":"select 1","db":5}'; call 2 run_sql '{"sql":"select 1","db":["shop"]}'
  call 3 schema '{"db":{"x":1}}'; call 4 run_sql '{"sql":"select 1","extra":1}'
  call 5 ask '{"question":"How many?","conversation":12}'; call 6 ask '{"question":"How many?","bogus":1}'
  call 7 list_databases '{"x":1}'; call 8 run_sql '{"db":"shop"}'; call 9 run_sql '{"sql":"select 1","db":null}'
  call 10 run_sql '{"sql":"select 1 as x","db":"shop"}'; call 11 schema '{"question":true}'; } |
  "$CONVBI" mcp --config "$C" --db shop="$SAMPLE_DB" --db other="$SAMPLE_DB" > "$T/types.out" 2>>"$T/raw.err"
tool_text() { grep "\"id\":$1," "$T/types.out"; }
contains "$(tool_text 1)" '"db\" must be a string, not a number' "run_sql db:5 is a tool error naming db"
contains "$(tool_text 2)" '"db\" must be a string, not an array' "run_sql db:[...] is a tool error naming db"
contains "$(tool_text 3)" '"db\" must be a string, not an object' "schema db:{...} is a tool error naming db"
contains "$(tool_text 4)" 'unknown argument \"extra\"; run_sql takes sql, db' "an unknown run_sql argument is named"
contains "$(tool_text 5)" '"conversation\" must be a string, not a number' "ask conversation:12 is a tool error, no new conversation"
contains "$(tool_text 6)" 'unknown argument \"bogus\"; ask takes question, hint, conversation, db, today, candidates' "an unknown ask argument is named"
contains "$(tool_text 7)" 'unknown argument \"x\"; list_databases takes no arguments' "list_databases takes no arguments"
contains "$(tool_text 8)" '\"sql\" is needed: one SELECT statement' "a missing required argument is named"
contains "$(tool_text 9)" '"db\" must be a string, not null; leave it out for the default' "db:null is refused, saying to leave it out"
contains "$(tool_text 11)" '"question\" must be a string, not true or false' "schema question:true is refused"
check "each of the ten is an isError result" test "$(grep -c '"isError":true' "$T/types.out")" = 10
contains "$(tool_text 10)" '"isError":false' "a well-typed run_sql still runs"
check "no conversation was minted by the refused asks" test "$(grep -c '"conversation":"' "$T/types.out")" = 0
# A running ask does not block the stdio reader: ping and tools/list are
# answered first; notifications/cancelled stops the ask before its SQL is
# asked for (each model call takes 2.5 s); on /mcp a client that leaves
# cancels its ask (499), as on the questions route (attack4 F6, F7).
C2=$T/config_slow.json
write_config "$C2" slow:k-slow-9a8b
python3 - "$CONVBI" "$C2" "$SAMPLE_DB" > "$T/cancel.out" 2>>"$T/raw.err" <<'PY'
import json, subprocess, sys, time
p = subprocess.Popen([sys.argv[1], "mcp", "--config", sys.argv[2], "--db", "shop=" + sys.argv[3]],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
def send(o): p.stdin.write(json.dumps(o) + "\n"); p.stdin.flush()
send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "ask", "arguments": {"question": "stdio slow zq1"}}})
send({"jsonrpc": "2.0", "id": 2, "method": "ping"})
send({"jsonrpc": "2.0", "id": 3, "method": "tools/list"})
order = [json.loads(p.stdout.readline())["id"] for _ in range(2)]
send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1, "reason": "test"}})
r = json.loads(p.stdout.readline())
p.stdin.close(); p.wait(60)
print("order", *order, "then", r["id"], "isError", r["result"]["isError"], "exit", p.returncode)
PY
contains "$(cat "$T/cancel.out")" "order 2 3 then 1 isError True exit 0" "stdio: ping and tools/list are answered while an ask runs; the canceled ask ends as an error"
kill "$RUN_PID"; wait "$RUN_PID" 2>/dev/null
"$CONVBI" serve --listen 127.0.0.1:0 --config "$C2" --db shop="$SAMPLE_DB" --tokens "$T/tokens" 2>"$T/serve2.log" &
RUN_PID=$!
for _ in $(seq 200); do PORT2=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/serve2.log"); [ -n "$PORT2" ] && break; sleep 0.05; done
python3 - "$PORT2" "$TOK" <<'PY'
import json, socket, sys, time
body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "ask", "arguments": {"question": "http slow zq2"}}})
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nAuthorization: Bearer %s\r\nAccept: application/json, text/event-stream\r\n"
           "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (sys.argv[1], sys.argv[2], len(body), body)).encode())
time.sleep(1); s.close()
PY
for _ in $(seq 200); do grep -q 'POST /mcp 499' "$T/serve2.log" && break; sleep 0.05; done
check "http: a client that leaves POST /mcp cancels its ask (499)" grep -q 'POST /mcp 499' "$T/serve2.log"
kill "$RUN_PID"; wait "$RUN_PID" 2>/dev/null; RUN_PID=""
# MCP conversations (attack5 F4) live apart from REST sessions, at most
# --max-conversations (the least recently used one is closed for a new
# one), end with end_conversation, and an ask refused as busy, or canceled,
# leaves none behind.
"$CONVBI" serve --listen 127.0.0.1:0 --config "$C" --db shop="$SAMPLE_DB" --tokens "$T/tokens" --max-sessions 1 \
  --max-conversations 2 2>"$T/serve3.log" &
RUN_PID=$!
for _ in $(seq 200); do PORT3=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/serve3.log"); [ -n "$PORT3" ] && break; sleep 0.05; done
U3=http://127.0.0.1:$PORT3
hc() { curl -s -H "Authorization: Bearer $TOK" -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' "$@"; }
mcp3() { hc "$U3/mcp" -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"'"$1"'","arguments":'"$2"'}}'; }
conv_of() { printf '%s' "$1" | sed -n 's/.*"conversation":"\([0-9a-f]*\)".*/\1/p'; }
gauge() { hc "$1/metrics" | sed -n "s/^$2 //p"; }
for i in 1 2 3 4 5; do A[$i]=$(mcp3 ask '{"question":"customers per country?"}'); done
check "five independent asks over --max-conversations 2 are all answered" test "$(printf '%s\n' "${A[@]:1}" | grep -c '"isError":false')" = 5
check "the MCP conversations stay at --max-conversations" test "$(gauge "$U3" convbi_mcp_conversations_open)" = 2
check "MCP asks open no REST session" test "$(gauge "$U3" convbi_sessions_open)" = 0
CODE=$(hc -o /dev/null -w '%{http_code}' -X POST "$U3/v1/sessions" -d '{}')
check "a REST session is still there for the taking after them" test "$CODE" = 201
R=$(mcp3 ask '{"question":"and by country?","conversation":"'"$(conv_of "${A[5]}")"'"}')
contains "$R" '"isError":false' "the latest conversation continues"
R=$(mcp3 ask '{"question":"and by country?","conversation":"'"$(conv_of "${A[1]}")"'"}')
contains "$R" 'no such conversation' "the least recently used one was closed for a newer one"
R=$(mcp3 end_conversation '{"conversation":"'"$(conv_of "${A[5]}")"'"}')
contains "$R" '"ended":true' "end_conversation ends one"
check "and it is gone" test "$(gauge "$U3" convbi_mcp_conversations_open)" = 1
contains "$(mcp3 end_conversation '{"conversation":"'"$(conv_of "${A[5]}")"'"}')" '"isError":true' "ending it again is a tool error"
# Ending a conversation whose ask is running (its SQL counts forever)
# cancels that ask at once: its caller gets isError, ECANCELED, saying why,
# and the conversation is gone (attack7 N1).
ENDED='the conversation was ended (end_conversation) while answering this question'
CV=$(conv_of "$(mcp3 ask '{"question":"customers per country?"}')")
OPEN=$(gauge "$U3" convbi_mcp_conversations_open)
mcp3 ask '{"question":"count forever zq5","conversation":"'"$CV"'"}' > "$T/ended.out" &
BG=$!
for _ in $(seq 200); do grep "$S" "$T/requests.log" | grep -q 'count forever zq5' && break; sleep 0.05; done
sleep 0.5 # the SQL runs
contains "$(mcp3 end_conversation '{"conversation":"'"$CV"'"}')" '"ended":true' "http: end_conversation of an answering conversation"
wait "$BG"
R=$(cat "$T/ended.out")
contains "$R" '"isError":true' "http: its running ask is answered as an error"
contains "$R" '"error_class":"ECANCELED"' "http: canceled (ECANCELED)"
contains "$R" "$ENDED" "http: saying the conversation was ended"
contains "$(mcp3 ask '{"question":"and by country?","conversation":"'"$CV"'"}')" 'no such conversation' "http: the ended conversation cannot be continued"
check "http: it is no longer counted" test "$(gauge "$U3" convbi_mcp_conversations_open)" = $((OPEN - 1))
check "http: no question runs on" test "$(gauge "$U3" convbi_questions_running)" = 0
kill "$RUN_PID"; wait "$RUN_PID" 2>/dev/null
python3 - "$CONVBI" "$C" "$SAMPLE_DB" "$T/requests.log" > "$T/ended_stdio.out" 2>>"$T/raw.err" <<'PY'
import json, subprocess, sys, time
p = subprocess.Popen([sys.argv[1], "mcp", "--config", sys.argv[2], "--db", "shop=" + sys.argv[3]],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
def send(o): p.stdin.write(json.dumps(o) + "\n"); p.stdin.flush()
def call(i, name, args): send({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": name, "arguments": args}})
call(1, "ask", {"question": "customers per country?"})
conv = json.loads(p.stdout.readline())["result"]["structuredContent"]["conversation"]
call(2, "ask", {"question": "count forever zq6", "conversation": conv})
for _ in range(200):
    if any("SQL writer" in l and "count forever zq6" in l for l in open(sys.argv[4])): break
    time.sleep(0.05)
time.sleep(0.5)  # the SQL runs
call(3, "end_conversation", {"conversation": conv})
got = {}
for _ in range(2):
    r = json.loads(p.stdout.readline()); got[r["id"]] = r["result"]
call(4, "ask", {"question": "and by country?", "conversation": conv})
again = json.loads(p.stdout.readline())["result"]
p.stdin.close(); p.wait(60)
print("ended", got[3]["structuredContent"].get("ended"), "ask isError", got[2]["isError"],
      got[2]["structuredContent"].get("error_class"), got[2]["content"][0]["text"])
print("again", again["isError"], again["content"][0]["text"])
PY
R=$(cat "$T/ended_stdio.out")
contains "$R" "ended True ask isError True ECANCELED $ENDED" "stdio: end_conversation cancels the conversation's running ask"
contains "$R" "again True no such conversation" "stdio: the ended conversation cannot be continued"
# with two tokens each holds its share: A's asks close A's own least
# recently used conversation, never B's
TOK2=tok-mcp-b-9a8b7c6d5e4f3a2b1c0d
printf '%s\n%s\n' "$TOK" "$TOK2" > "$T/tokens2"; chmod 600 "$T/tokens2"
"$CONVBI" serve --listen 127.0.0.1:0 --config "$C" --db shop="$SAMPLE_DB" --tokens "$T/tokens2" --max-conversations 2 \
  2>"$T/serve5.log" &
RUN_PID=$!
for _ in $(seq 200); do PORT5=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/serve5.log"); [ -n "$PORT5" ] && break; sleep 0.05; done
U3=http://127.0.0.1:$PORT5
B1=$(TOK=$TOK2 mcp3 ask '{"question":"customers per country?"}')
for i in 1 2 3; do mcp3 ask '{"question":"customers per country?"}' >/dev/null; done
R=$(TOK=$TOK2 mcp3 ask '{"question":"and by country?","conversation":"'"$(conv_of "$B1")"'"}')
contains "$R" '"isError":false' "tenant B's conversation outlives tenant A's asks (a share per token)"
check "two conversations open: one each" test "$(gauge "$U3" convbi_mcp_conversations_open)" = 2
kill "$RUN_PID"; wait "$RUN_PID" 2>/dev/null
"$CONVBI" serve --listen 127.0.0.1:0 --config "$C2" --db shop="$SAMPLE_DB" --tokens "$T/tokens" --max-questions 1 2>"$T/serve4.log" &
RUN_PID=$!
for _ in $(seq 200); do PORT4=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/serve4.log"); [ -n "$PORT4" ] && break; sleep 0.05; done
U4=http://127.0.0.1:$PORT4
hc "$U4/mcp" -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ask","arguments":{"question":"busy zq3"}}}' >/dev/null &
BG=$!
for _ in $(seq 200); do [ "$(gauge "$U4" convbi_questions_running)" = 1 ] && break; sleep 0.05; done
for i in 1 2 3; do
  contains "$(hc "$U4/mcp" -d '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"ask","arguments":{"question":"busy zq4"}}}')" \
    'the server is busy' "an ask beyond --max-questions is refused ($i)"
done
check "refused asks leave no conversation (only the running one is open)" test "$(gauge "$U4" convbi_mcp_conversations_open)" = 1
kill "$BG"; wait "$BG" 2>/dev/null
for _ in $(seq 200); do [ "$(gauge "$U4" convbi_questions_running)" = 0 ] && break; sleep 0.05; done
check "a canceled first ask leaves no conversation either" test "$(gauge "$U4" convbi_mcp_conversations_open)" = 0
kill "$RUN_PID"; wait "$RUN_PID" 2>/dev/null; RUN_PID=""
check "no canceled ask went on to ask for its SQL" test "$(grep 'You are the SQL writer' "$T/requests.log" | grep -c 'slow zq')" = 0
lacks "$R$(cat "$T/raw.err" "$T/serve.log" "$T/node.out")" "$KEY" "no key in any output"
lacks "$(cat "$T"/serve*.log "$T/node.out")" "$TOK" "no token in any output"
finish
