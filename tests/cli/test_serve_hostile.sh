#!/usr/bin/env bash
# test_serve_hostile.sh -- `convbi serve` and `convbi mcp` against a hostile
# client (outside attack #1, issue 14): slowloris heads, bodies and idle
# keep-alives are closed at --request-timeout-s; connection caps in all and
# per address answer 503 in the JSON shape and /healthz stays answerable
# with 1100 slow connections open; Ctrl-C cancels running questions at once
# and exits 130; a SIGTERM drain answers new requests 503 `draining`; NUL
# bytes and text that is not UTF-8 are refused (400) naming the field and
# every response is UTF-8 JSON; CORS needs the exact origin; configuration
# errors exit 2; over-long targets and malformed Content-Length get one
# JSON error; clear messages for odd bodies.  Raw-socket clients are in
# serve_client.py.
. "$(dirname "$0")/lib.sh"
PY="python3 $(dirname "$0")/serve_client.py"
KEY=k-hostile-east-7d2c9a4b1e
I='You are the intent classifier'; S='You are the SQL writer'; A='You are the answer writer'
start_fake '{"endpoints":[{"name":"east","api_key":"'$KEY'","deployment":"gpt-4o"}],
 "rules":[{"match":"'"$I"'","reply":"{\"intent\":\"data_question\"}"},
          {"match":"'"$S"'","reply":"```sql\nSELECT count(*) AS n FROM customers\n```"},
          {"match":"'"$A"'","reply":"There are 200 customers."}],
 "default_reply":"OK"}'
C=$T/config.json
write_config "$C" east:$KEY
. "$(dirname "$0")/serve_lib.sh"
port_of() { printf '%s' "${SV##*:}"; }
slow_model() { curl -s -X POST --data '[{"kind":"slow_first_token","delay_ms":'"$1"',"count":'"$2"'}]' "http://127.0.0.1:$PORT_east/_fake/faults" >/dev/null; }
running() { for _ in $(seq 200); do curl -s "$SV/metrics" | grep -q "^convbi_questions_running $1" && return 0; sleep 0.05; done; return 1; }
new_session() { req POST /v1/sessions; printf '%s' "$BODY" | sed -n 's/.*"session":"\([0-9a-f]*\)".*/\1/p'; }

# ---- 5: slowloris ----------------------------------------------------------------
serve_start "$T/slow.log" --db shop="$SAMPLE_DB"
R=$($PY slow "$(port_of)" 1100 5)
contains "$R" "opened 1100" "1100 connections with half a request head are open"
contains "$R" "healthz 200" "/healthz answers while they are"
serve_stop

serve_start "$T/deadline.log" --db shop="$SAMPLE_DB" --request-timeout-s 1 --max-connections 50 --max-connections-per-ip 20
P=$(port_of)
R=$($PY trickle "$P" 15)
case "$R" in "closed after "[0-4].*": HTTP/1.1 408 Request Timeout") ok "a head trickled a line at a time is cut at the deadline ($R)";;
  *) bad "a trickled head: $R";; esac
R=$($PY slowbody "$P" 15)
case "$R" in "closed after "[0-4].*) ok "a body trickled a byte at a time is cut at the deadline ($R)";; *) bad "a trickled body: $R";; esac
R=$($PY idle "$P" 15)
case "$R" in "closed after "[0-4].*) ok "an idle keep-alive connection is closed at the deadline ($R)";; *) bad "an idle keep-alive: $R";; esac
R=$($PY thentrickle "$P" 15)
case "$R" in "closed after "[0-4].*": HTTP/1.1 408 Request Timeout") ok "a keep-alive connection's second head trickled is cut at the deadline with 408 ($R)";;
  *) bad "a trickled second head: $R";; esac
# the caps: 20 per address, 50 in all, each refused with the JSON 503
python3 - "$P" > "$T/caps.out" <<'EOF'
import socket, sys
port = int(sys.argv[1])
def conn(src):
    s = socket.socket(); s.bind((src, 0)); s.settimeout(5); s.connect(("127.0.0.1", port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n"); return s
def answer(s):
    out = b""
    while True:
        d = s.recv(4096)
        if not d: return out.decode()
        out += d
held = [conn("127.0.0.2") for _ in range(20)]
print("per-address:", answer(conn("127.0.0.2")))
held += [conn("127.0.0.%d" % (3 + i // 15)) for i in range(30)]
print("total:", answer(conn("127.0.0.9")))
EOF
R=$(cat "$T/caps.out")
contains "$R" 'per-address: HTTP/1.1 503' "the 21st connection from one address gets 503"
contains "$R" '"code":"too_many_connections","message":"20 connections from your address are open' "and says why"
contains "$R" 'total: HTTP/1.1 503' "the 51st connection in all gets 503"
contains "$R" 'Retry-After: 1' "with Retry-After"
contains "$R" '"message":"50 connections are open, the most this server keeps' "and says why"
sleep 1.5
req GET /healthz; is 200 "/healthz answers again once the slow ones are cut"
serve_stop

# keep-alive connections waiting for their next head hold no thread (attack4
# F8): 300 of them, each trickling half a second head, leave the server a
# handful of threads; each still gets its 408 at the deadline, and a client
# idle between two requests keeps its connection
serve_start "$T/kept.log" --db shop="$SAMPLE_DB" --request-timeout-s 3 --max-connections-per-ip 200
R=$($PY kept "$(port_of)" "$SV_PID" 300 2)
TH=$(printf '%s' "$R" | sed -n 's/^threads \([0-9]*\) .*/\1/p')
[ -n "$TH" ] && [ "$TH" -lt 60 ] && ok "300 trickling keep-alive connections: $TH threads ($R)" || bad "kept connections: $R"
contains "$R" "healthz 200" "/healthz answers meanwhile"
contains "$R" "408s 300 of 300" "each trickled head gets 408 at the deadline"
R=$($PY reuse "$(port_of)" 0.8)
[ "$(printf '%s' "$R" | grep -c '^HTTP/1.1 200 OK$')" = 4 ] &&
	ok "a connection idle 0.8 s between requests is kept and answered, and stays kept for the next ones" ||
	bad "reuse (four 200s without Connection: close): $R"
R=$(grep -v -E '^convbi serve: (listening on |GET /[a-z0-9/]* [0-9]{3} |\(connection\) 408 )' "$T/kept.log")
[ -z "$R" ] && ok "the log has the requests and the 408s, nothing from libmicrohttpd" || bad "other log lines: ${R:0:300}"
serve_stop

# ---- 13: long targets, bad Content-Length: one JSON error ---------------------------------
serve_start "$T/head.log" --db shop="$SAMPLE_DB"
P=$(port_of)
req GET "/healthz?x=$(head -c 20000 /dev/zero | tr '\0' a)"; is 414 "a 20000-byte query string"
contains "$BODY" '{"error":{"code":"uri_too_long"' "414 has the JSON shape"
printf 'GET /v1/schema?question=%s HTTP/1.1\r\nHost: localhost\r\n\r\n' "$(head -c 100000 /dev/zero | tr '\0' a)" > "$T/long.req"
R=$($PY raw "$P" "$T/long.req")
contains "$R" '{"error":{"code":"uri_too_long"' "a 100 KB target gets the JSON 414"
contains "$R" 'Referrer-Policy: no-referrer' "the front door's answers carry Referrer-Policy (attack4 F9)"
contains "$R" 'Date: ' "and Date"
req GET /healthz -H "X-Big: $(head -c 20000 /dev/zero | tr '\0' a)"; is 431 "20 KB of headers"
contains "$BODY" '{"error":{"code":"headers_too_large"' "431 has the JSON shape"
printf 'POST /v1/sql HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n{"sql":"SELECT 1"}' > "$T/cl.req"
R=$($PY raw "$P" "$T/cl.req")
[ "$(printf '%s' "$R" | grep -c '^HTTP/1.1')" = 1 ] && ok "Content-Length -1: one status line" || bad "Content-Length -1: $R"
contains "$R" 'HTTP/1.1 400 Bad Request' "Content-Length -1 is 400"
contains "$R" '{"error":{"code":"bad_request","message":"the Content-Length header is not a number' "in the JSON shape"
printf 'POST /v1/sql HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999999999999999999999\r\n\r\n{}' > "$T/cl2.req"
R=$($PY raw "$P" "$T/cl2.req")
[ "$(printf '%s' "$R" | grep -c '^HTTP/1.1')" = 1 ] && ok "a huge Content-Length: one status line" || bad "huge Content-Length: $R"
contains "$R" '{"error":{"code":"too_large"' "a huge Content-Length is a JSON 413"
# a NUL in a header, a second Host/Origin/Authorization: 400; leading zeros
# in Content-Length are judged by the value; an unknown Transfer-Encoding is
# 501 at once (attack4 F11, F4, F5, F12) -- on a first and a later request
printf 'GET /v1/databases HTTP/1.1\r\nHost: localhost\r\nOrigin: http://localhost\0.evil.com\r\n\r\n' > "$T/nul1.req"
printf 'GET /v1/databases HTTP/1.1\r\nHost: localhost\0evil\r\n\r\n' > "$T/nul2.req"
printf 'GET /v1/databases HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer x\0garbage\r\n\r\n' > "$T/nul3.req"
printf 'GET /v1/databases HTTP/1.1\r\nHost: localhost\r\nHost: evil.com\r\n\r\n' > "$T/dup1.req"
printf 'GET /v1/databases HTTP/1.1\r\nHost: localhost\r\nOrigin: http://localhost\r\norigin: http://evil.com\r\n\r\n' > "$T/dup2.req"
printf 'GET /v1/databases HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n' > "$T/dup3.req"
printf 'POST /v1/sql HTTP/1.1\r\nHost: localhost\r\nContent-Length: 00000000000000000000000000000000010\r\n\r\n{"sql":"s"}' > "$T/zeros.req"
printf 'POST /v1/sql HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n' > "$T/te1.req"
printf 'POST /v1/sql HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n' > "$T/te2.req"
for how in raw then; do
  for f in nul1:Origin nul2:Host nul3:Authorization; do
    R=$($PY $how "$P" "$T/${f%%:*}.req")
    contains "$R" '{"error":{"code":"bad_request","message":"the `'"${f#*:}"'` header holds a NUL byte' "$how: a NUL in $f is 400 naming it"
  done
  for f in dup1:Host dup2:Origin dup3:Authorization; do
    R=$($PY $how "$P" "$T/${f%%:*}.req")
    contains "$R" '"message":"the request has more than one '"${f#*:}"' header' "$how: two ${f#*:} headers are 400"
  done
  R=$($PY $how "$P" "$T/zeros.req")
  lacks "$R" 'too_large' "$how: Content-Length 000...010 is judged as 10, not 413"
  contains "$R" 'HTTP/1.1 400' "$how: and its 10-byte body is read (not JSON: 400)"
  for f in te1 te2; do
    R=$(timeout 5 $PY $how "$P" "$T/$f.req")
    contains "$R" 'HTTP/1.1 501' "$how: Transfer-Encoding of $f is 501 at once"
  done
done
# the second request of a keep-alive connection gets the same checks as the first
R=$($PY then "$P" "$T/cl.req")
[ "$(printf '%s' "$R" | grep -c '^HTTP/1.1')" = 1 ] && ok "keep-alive, then Content-Length -1: one status line" || bad "keep-alive, then Content-Length -1: $R"
contains "$R" '{"error":{"code":"bad_request","message":"the Content-Length header is not a number' "keep-alive, then Content-Length -1: the JSON 400"
R=$($PY then "$P" "$T/long.req")
contains "$R" '{"error":{"code":"uri_too_long"' "keep-alive, then a 100 KB target: the JSON 414"
printf 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: %s\r\n\r\n' "$(head -c 40000 /dev/zero | tr '\0' a)" > "$T/big.req"
R=$($PY then "$P" "$T/big.req")
contains "$R" 'HTTP/1.1 431' "keep-alive, then 40 KB of headers: 431"
contains "$R" '{"error":{"code":"headers_too_large","message":"the request head exceeds' "the door's JSON 431"
printf 'GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\nGET /v1/databases HTTP/1.1\r\nHost: localhost\r\n\r\n' > "$T/pipe.req"
R=$($PY then "$P" "$T/pipe.req")
[ "$(printf '%s' "$R" | grep -o 'HTTP/1.1 200' | wc -l)" = 2 ] && ok "keep-alive, then two pipelined requests: both answered" || bad "pipelined: $R"
contains "$R" 'Connection: close' "and the connection closes after what the door could not look at"

# ---- 7, 8: NUL and invalid UTF-8 are refused naming the field; all responses are JSON ------
: > "$T/responses"
send() { req POST "$1" --data-binary @"$2"; printf '%s\n' "$BODY" >> "$T/responses"; }
printf '{"sql":"SELECT 1\\u0000; DELETE FROM customers"}' > "$T/b1"
send /v1/sql "$T/b1"; is 400 "\\u0000 in sql"; contains "$BODY" '`sql` holds a NUL character' "the field is named"
printf '{"sql":"SELECT \x27\xff\xfe\x27 AS v"}' > "$T/b2"
send /v1/sql "$T/b2"; is 400 "sql that is not UTF-8"; contains "$BODY" '`sql` is not valid UTF-8' "the field is named"
printf '{"sql":"SELECT 1"}\0' > "$T/b3"
send /v1/sql "$T/b3"; is 400 "a raw NUL byte in the body"; contains "$BODY" 'NUL byte' "it says so"
printf '{"db":"shop\\u0000x","sql":"SELECT 1"}' > "$T/b4"
send /v1/sql "$T/b4"; is 400 "\\u0000 in db"; contains "$BODY" '`db` holds a NUL' "db is named"
SID=$(new_session)
printf '{"question":"How many customers are there?\\u0000 DROP"}' > "$T/b5"
send "/v1/sessions/$SID/questions" "$T/b5"; is 400 "\\u0000 in a question"; contains "$BODY" '`question` holds a NUL' "question is named"
printf '{"question":"How many?","hint":"x\\u0000y"}' > "$T/b6"
send "/v1/sessions/$SID/questions" "$T/b6"; is 400 "\\u0000 in a hint"; contains "$BODY" '`hint` holds a NUL' "hint is named"
printf '{"db":"\xc3\x28"}' > "$T/b7"
send /v1/sessions "$T/b7"; is 400 "a db name that is not UTF-8"
req DELETE "/v1/sessions/$SID%00x"; is 400 "%00 in the path"
req POST "/v1/sessions/$SID/questions" -d '{"question":"How many customers are there?"}'; is 200 "the session %00 named is still there"
# MCP over HTTP: the same refusals; in a tool's arguments they are tool
# errors (isError) as any other bad argument (MCP 2025-11-25, SEP-1303)
printf '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"run_sql","arguments":{"sql":"SELECT \x27\xff\x27"}}}' > "$T/m1"
send /mcp "$T/m1"; is 200 "MCP run_sql that is not UTF-8 (HTTP)"
contains "$BODY" '"id":7,"result":{"content":[{"type":"text","text":"`sql` is not valid UTF-8' "a tool error naming sql"
contains "$BODY" '"isError":true' "with isError"
printf '{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"run_sql","arguments":{"sql":"SELECT 1\\u0000; DELETE FROM customers"}}}' > "$T/m2"
send /mcp "$T/m2"; is 200 "MCP run_sql with \\u0000 (HTTP)"; contains "$BODY" '"isError":true' "a tool error"
printf '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"ask","arguments":{"question":"hi","today":"2024-01-01\\u0000x"}}}' > "$T/m3"
send /mcp "$T/m3"; is 200 "MCP ask with \\u0000 in today (HTTP)"
contains "$BODY" '"id":9,"result":{"content":[{"type":"text","text":"`today` holds a NUL character' "a tool error naming today, as a bad date is"
contains "$BODY" '"isError":true' "with isError"
printf '{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"nope","arguments":{"sql":"x\\u0000"}}}' > "$T/m4"
send /mcp "$T/m4"; contains "$BODY" '"id":10,"error":{"code":-32602,"message":"Unknown tool' "an unknown tool stays a protocol error"
printf '{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"ask\\u0000","arguments":{}}}' > "$T/m5"
send /mcp "$T/m5"; is 400 "a NUL in the tool's name"; contains "$BODY" '"id":11,"error":{"code":-32602' "is a protocol error"
# a body starting with a byte order mark is named as one on every route,
# not called "not valid UTF-8" (JSON text must not start with one, RFC 8259)
BOM='the request starts with a byte order mark (BOM, bytes EF BB BF)'
printf '\xef\xbb\xbf{"sql":"SELECT 1 AS a"}' > "$T/bom1"
send /v1/sql "$T/bom1"; is 400 "/v1/sql: a BOM before the JSON"; contains "$BODY" "$BOM" "/v1/sql: the BOM is named"
printf '\xef\xbb\xbf{}' > "$T/bom2"
send /v1/sessions "$T/bom2"; is 400 "/v1/sessions: a BOM before the JSON"; contains "$BODY" "$BOM" "/v1/sessions: the BOM is named"
printf '\xef\xbb\xbf{"question":"How many customers are there?"}' > "$T/bom3"
send "/v1/sessions/$SID/questions" "$T/bom3"; is 400 "questions: a BOM before the JSON"; contains "$BODY" "$BOM" "questions: the BOM is named"
printf '\xef\xbb\xbf{"jsonrpc":"2.0","id":12,"method":"ping"}' > "$T/bom4"
send /mcp "$T/bom4"; is 400 "/mcp: a BOM before the message"
contains "$BODY" '"code":-32700,"message":"Parse error: '"$BOM" "/mcp: a parse error naming the BOM"
printf '{"sql":\xc3\xa9}' > "$T/b8"
send /v1/sql "$T/b8"; is 400 "a UTF-8 letter outside a string"; lacks "$BODY" 'UTF-8' "is no UTF-8 problem"
$PY jsonlines "$T/responses" > "$T/json.out" && ok "every response above is UTF-8 JSON" || bad "responses: $(cat "$T/json.out")"
[ "$(sqlite3 "$SAMPLE_DB" 'SELECT count(*) FROM customers')" = 200 ] && ok "no row was deleted" || bad "rows were deleted"

# ---- 11: CORS needs the exact origin -------------------------------------------------------
for o in http://localhost http://127.0.0.1 "https://localhost:$P" "http://localhost:$P.evil.example" "http://localhost:$((P + 1))"; do
  req GET /v1/databases -H "Origin: $o"; is 403 "Origin $o is another origin"
done
req GET /v1/databases -H "Origin: http://localhost:$P"; is 200 "Origin http://localhost:$P is ours"
contains "$HDRS" "Access-Control-Allow-Origin: http://localhost:$P" "and gets CORS"

# ---- 14: messages ------------------------------------------------------------------------
python3 -c 'print("[" * 5000 + "]" * 5000)' > "$T/deep.json"
req POST /v1/sql --data-binary @"$T/deep.json"; is 400 "5000 nested arrays"
contains "$BODY" 'nests objects or arrays deeper than 64 levels' "the nesting is named"
req POST /v1/sessions -d 'not json'; is 400 "a malformed body on /v1/sessions"
contains "$BODY" '{\"db\": \"NAME\"}' "the hint shows the sessions body"
lacks "$BODY" 'question' "and not a question"
req POST /v1/sql -d '[1]'; is 400 "an array body"; contains "$BODY" 'the body is a JSON array' "it says array"
# strict JSON (attack5 F15): nothing after the value, no key twice (cJSON
# would run the first; a proxy checking the last sees another request)
req POST /v1/sql -d '{"sql":"SELECT 1 AS a"} xyz'; is 400 "text after the body's JSON value"
contains "$BODY" 'there is more after the JSON value (at byte 24)' "the trailing text is named"
req POST /v1/sql -d '{"sql":"SELECT 1 AS a"}  '; is 200 "trailing whitespace is fine"
req POST /v1/sql -d '{"sql":"SELECT 1 AS a","sql":"SELECT 2 AS b"}'; is 400 "a key twice"
contains "$BODY" 'the field `sql` appears twice in one object' "the repeated key is named"
req POST /mcp -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
  -d '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"run_sql","arguments":{"sql":"SELECT 1","sql":"SELECT 2"}}}'
is 400 "MCP: a key twice in the arguments"
contains "$BODY" '"code":-32700,"message":"Parse error: the field `sql` appears twice' "is a parse error naming it"
req POST /mcp -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' -d '{"jsonrpc":"2.0","id":6,"method":"ping"}]'
is 400 "MCP: text after the message"
req POST /mcp -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' -d '{"jsonrpc":"1.0","id":6,"method":"ping"}'
is 400 "MCP: jsonrpc 1.0"; contains "$BODY" '"id":6,"error":{"code":-32600,"message":"Invalid Request: \"jsonrpc\" must be \"2.0\""' "is an invalid request"
req POST /v1/sql -d '{"sql":"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000) SELECT count(*) AS n FROM c"}'
is 200 "a slow /v1/sql query"
MS=$(printf '%s' "$BODY" | sed -n 's/.*"elapsed_ms":\([0-9]*\).*/\1/p')
[ "${MS:-0}" -gt 0 ] && ok "its elapsed_ms is measured (${MS} ms)" || bad "elapsed_ms: ${BODY:0:300}"
serve_stop

# MCP over stdio: the same refusals; every line is UTF-8 JSON
printf '%s\n' \
  '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run_sql","arguments":{"sql":"SELECT 1\u0000; DELETE FROM customers"}}}' \
  '{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}' \
  '{"jsonrpc":"2.0","id":"x\u0000y","method":"ping"}' \
  '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"ask","arguments":{"question":"hi","conversation":"ab\u0000cd"}}}' > "$T/mcp.in"
printf '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"run_sql","arguments":{"sql":"SELECT \x27\xff\xfe\x27 AS v"}}}\n' >> "$T/mcp.in"
printf '\xef\xbb\xbf{"jsonrpc":"2.0","id":4,"method":"ping"}\n' >> "$T/mcp.in"
"$CONVBI" mcp --config "$C" --db shop="$SAMPLE_DB" < "$T/mcp.in" > "$T/mcp.out" 2>"$T/mcp.err"
M=$(cat "$T/mcp.out")
contains "$(sed -n 1p "$T/mcp.out")" '"id":1,"result":{"content":[{"type":"text","text":"`sql` holds a NUL' "stdio: \\u0000 in run_sql is a tool error"
contains "$(sed -n 2p "$T/mcp.out")" '"id":null,"error":{"code":-32600,"message":"Invalid Request: \"id\" must be a string or a number"' "an object id is named as such"
contains "$(sed -n 3p "$T/mcp.out")" '"id":null,"error":{"code":-32600,"message":"Invalid Request: `id` holds a NUL' "a NUL in the id"
contains "$(sed -n 4p "$T/mcp.out")" '"id":3,"result":{"content":[{"type":"text","text":"`conversation` holds a NUL' "a NUL in a conversation id: a tool error"
contains "$(sed -n 5p "$T/mcp.out")" '"id":2,"result":{"content":[{"type":"text","text":"`sql` is not valid UTF-8' "stdio: run_sql that is not UTF-8 is a tool error"
contains "$(sed -n 6p "$T/mcp.out")" '"code":-32700,"message":"Parse error: the request starts with a byte order mark' "stdio: a BOM is named"
$PY jsonlines "$T/mcp.out" > "$T/json.out" && ok "every stdio reply is UTF-8 JSON" || bad "stdio replies: $(cat "$T/json.out")"

# ---- 6: Ctrl-C cancels at once and exits 130; a drain answers 503 -------------------------------
serve_start "$T/int.log" --db shop="$SAMPLE_DB"
S1=$(new_session); S2=$(new_session)
slow_model 20000 2
curl -s -w '\n%{http_code}' -X POST "$SV/v1/sessions/$S1/questions" -d '{"question":"How many customers are there?"}' > "$T/q1.out" &
Q1=$!
curl -s -N -H 'Accept: text/event-stream' -X POST "$SV/v1/sessions/$S2/questions" -d '{"question":"How many customers are there?"}' > "$T/q2.out" &
Q2=$!
running 2 && ok "two questions run" || bad "the questions did not start"
t0=$(date +%s%N)
kill -INT "$SV_PID"
wait "$SV_PID"; rc=$?; RUN_PID=""
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ $rc = 130 ] && ok "Ctrl-C: serve exits 130" || bad "Ctrl-C: exit $rc"
[ $ms -lt 8000 ] && ok "at once: ${ms} ms, while the model would take 20 s" || bad "Ctrl-C took ${ms} ms"
wait $Q1 $Q2
contains "$(cat "$T/q1.out")" '"code":"ECANCELED"' "the JSON question was canceled"
contains "$(tail -1 "$T/q1.out")" "503" "with 503"
contains "$(cat "$T/q2.out")" 'event: error' "the streamed question ends with an error event"
contains "$(cat "$T/int.log")" "interrupted: canceling 2 running" "the log says so"

serve_start "$T/term.log" --db shop="$SAMPLE_DB"
S1=$(new_session)
slow_model 20000 1
curl -s -w '\n%{http_code}' -X POST "$SV/v1/sessions/$S1/questions" -d '{"question":"How many customers are there?"}' > "$T/q3.out" &
Q3=$!
running 1 || bad "the question did not start"
kill -TERM "$SV_PID"
for _ in $(seq 100); do grep -q draining "$T/term.log" && break; sleep 0.05; done
req GET /v1/databases;    is 503 "during a drain a new request gets 503"
contains "$BODY" '{"error":{"code":"draining"' "with the JSON error"
contains "$HDRS" "Retry-After:" "and Retry-After"
req GET /healthz;         is 503 "/healthz says draining"
t0=$(date +%s%N)
kill -INT "$SV_PID"
wait "$SV_PID"; rc=$?; RUN_PID=""
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ $rc = 130 ] && [ $ms -lt 8000 ] && ok "Ctrl-C during a drain cancels at once (${ms} ms, exit 130)" || bad "Ctrl-C in a drain: exit $rc after ${ms} ms"
wait $Q3

# ---- 13: configuration errors exit 2 ------------------------------------------------------
printf 'tok-hostile-0123456789abcdef nope\n' > "$T/tok_nodb"; chmod 600 "$T/tok_nodb"
printf 'short\n' > "$T/tok_short"; chmod 600 "$T/tok_short"
expect_code 2 "two databases of one name" "$CONVBI" serve --listen 127.0.0.1:0 --config "$C" --db shop="$SAMPLE_DB" --db shop="$SAMPLE_DB"
expect_code 2 "--db =FILE" "$CONVBI" serve --listen 127.0.0.1:0 --config "$C" --db ="$SAMPLE_DB"
expect_code 2 "--tokens naming no file" "$CONVBI" serve --listen 127.0.0.1:0 --config "$C" --db shop="$SAMPLE_DB" --tokens /nonexistent/tokens
expect_code 2 "a token that is too short" "$CONVBI" serve --listen 127.0.0.1:0 --config "$C" --db shop="$SAMPLE_DB" --tokens "$T/tok_short"
printf 'tok-hostile-dup-0123456789 shop\n# a comment\ntok-hostile-dup-0123456789 shop\n' > "$T/tok_dup"; chmod 600 "$T/tok_dup"
expect_code 2 "a token repeated in the tokens file (attack5 F15)" "$CONVBI" serve --listen 127.0.0.1:0 --config "$C" --db shop="$SAMPLE_DB" --tokens "$T/tok_dup"
contains "$ERR" "line 3 repeats the token of line 1; give each token once" "the lines are named"
lacks "$ERR" "tok-hostile-dup" "and not the token"
expect_code 2 "a token naming an unknown database" "$CONVBI" serve --listen 127.0.0.1:0 --config "$C" --db shop="$SAMPLE_DB" --tokens "$T/tok_nodb"
expect_code 2 "a database that does not open" "$CONVBI" serve --listen 127.0.0.1:0 --config "$C" --db shop=/nonexistent/shop.db
expect_code 2 "--max-connections 0" "$CONVBI" serve --listen 127.0.0.1:0 --config "$C" --max-connections 0
expect_code 2 "mcp: two databases of one name" "$CONVBI" mcp --config "$C" --db shop="$SAMPLE_DB" --db shop="$SAMPLE_DB"

# ---- tenants: a token whose databases exclude the first gets its own by
# default, never another tenant's name; one token cannot take every session
# slot: with two tokens each holds at most half of --max-sessions (attack4 F3, F14)
cp "$SAMPLE_DB" "$T/shop2.db"
printf 'tokAAAAAAAAAAAAAAAAAAAAAA shop\ntokBBBBBBBBBBBBBBBBBBBBBB shop2\n' > "$T/tenants"; chmod 600 "$T/tenants"
serve_start "$T/tenants.log" --db shop="$SAMPLE_DB" --db shop2="$T/shop2.db" --tokens "$T/tenants" --max-sessions 4
AA=(-H 'Authorization: Bearer tokAAAAAAAAAAAAAAAAAAAAAA'); BB=(-H 'Authorization: Bearer tokBBBBBBBBBBBBBBBBBBBBBB')
req POST /v1/sessions "${BB[@]}" -d '{}'; is 201 "tenant B without db: a session"
contains "$BODY" '"db":"shop2"' "on B's own database"
printf '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"schema","arguments":{}}}' > "$T/tschema.json"
req POST /mcp "${BB[@]}" -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' --data-binary @"$T/tschema.json"
contains "$BODY" '"db":"shop2"' "mcp without db: B's own database"
lacks "$BODY" 'shop`' "and no other tenant's name"
req POST /v1/sessions "${BB[@]}" -d '{}'; is 201 "B's second session"
req POST /v1/sessions "${BB[@]}" -d '{}'; is 503 "B's third: over its share (2 of 4)"
contains "$BODY" 'its share of --max-sessions' "the 503 names the share"
contains "$HDRS" 'Retry-After' "with Retry-After"
req POST /v1/sessions "${AA[@]}" -d '{}'; is 201 "tenant A still gets a session"
serve_stop
# nor every question slot: with --max-questions 3 and three tokens each runs one at a time
# (the third, for every database, reads /metrics: a tenant's token may not)
printf 'tokCCCCCCCCCCCCCCCCCCCCCC\n' >> "$T/tenants"
CC=(-H 'Authorization: Bearer tokCCCCCCCCCCCCCCCCCCCCCC')
serve_start "$T/tenantsq.log" --db shop="$SAMPLE_DB" --db shop2="$T/shop2.db" --tokens "$T/tenants" --max-questions 3
req POST /v1/sessions "${BB[@]}" -d '{}'; SB=$(printf '%s' "$BODY" | sed -n 's/.*"session":"\([0-9a-f]*\)".*/\1/p')
slow_model 4000 1
curl -s -o /dev/null "${BB[@]}" -X POST "$SV/v1/sessions/$SB/questions" -d '{"question":"How many customers are there?"}' &
QB=$!
for _ in $(seq 200); do curl -s "${CC[@]}" "$SV/metrics" | grep -q "^convbi_questions_running 1" && break; sleep 0.05; done
req POST /v1/sql "${BB[@]}" -d '{"sql":"SELECT 1 AS x"}'; is 503 "B's second run while its question runs: over its share (1 of 3)"
contains "$BODY" 'this token runs its share of --max-questions (1 at once)' "the 503 names the share"
contains "$HDRS" 'Retry-After' "with Retry-After"
req POST /v1/sql "${AA[@]}" -d '{"sql":"SELECT 1 AS x"}'; is 200 "tenant A still runs SQL meanwhile"
printf '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run_sql","arguments":{"sql":"SELECT 1"}}}' > "$T/tsql.json"
req POST /mcp "${BB[@]}" -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' --data-binary @"$T/tsql.json"
contains "$BODY" 'its share of --max-questions' "mcp run_sql over B's share is a tool error naming it"
wait $QB
req POST /v1/sql "${BB[@]}" -d '{"sql":"SELECT 1 AS x"}'; is 200 "B runs again once its question ended"
serve_stop

lacks "$(cat "$T"/*.log "$T/mcp.err")" "$KEY" "the key is in no log"
finish
