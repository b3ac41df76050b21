#!/usr/bin/env bash
# test_serve_stream.sh -- how `convbi serve` ends a question's work and its
# stream (outside attack #5): a client that stops reading an SSE answer
# holds no --max-questions slot once the answer is queued, and its stalled
# connection is cut after --request-timeout-s (F1); closing a session that
# is answering (DELETE) cancels its question, which ends at once (F2); a NUL
# in a model reply (answer text or SQL) is refused as malformed, visibly,
# never cut (F16); a retry event says whether the tokens streamed so far
# are void (restarted) (F5).
. "$(dirname "$0")/lib.sh"
cat >"$T/sql_map.json" <<'JSON'
{"bigrows": "```sql\nWITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 5000) SELECT x, printf('%.3000c','a') AS w FROM c\n```",
 "count": "```sql\nSELECT count(*) AS n FROM customers\n```",
 "slow": "```sql\nWITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) AS n FROM c\n```"}
JSON
launch_map_fake
C=$T/config.json
. "$(dirname "$0")/serve_lib.sh"
new_session() { req POST /v1/sessions; printf '%s' "$BODY" | sed -n 's/.*"session":"\([0-9a-f]*\)".*/\1/p'; }
# answered N: waits until N questions have been answered (their work ended)
answered() { for _ in $(seq 200); do curl -s "$SV/metrics" | grep -q '^convbi_questions_total{outcome="ok"} '"$1"'$' && return 0; sleep 0.05; done; return 1; }

# noread PORT SESSION HOLD: POSTs "bigrows" for SSE with a 2 KiB receive
# buffer and reads nothing for HOLD s; then reads what is there: "cut" when
# the server closed the stream before its last chunk, "complete" when the
# whole stream came, else "open".
noread() {
  python3 - "$@" <<'EOF'
import socket, sys, time
port, sid, hold = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
s.connect(("127.0.0.1", port))
body = b'{"question":"bigrows"}'
s.sendall(b"POST /v1/sessions/%s/questions HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n"
          b"Content-Length: %d\r\n\r\n%s" % (sid.encode(), len(body), body))
time.sleep(hold)
s.settimeout(5)
tail, how = b"", "open"
try:
    while True:
        d = s.recv(1 << 16)
        if not d:
            how = "cut"
            break
        tail = (tail + d)[-16:]
        if tail.endswith(b"\r\n0\r\n\r\n"):
            how = "complete"
            break
except ConnectionResetError:
    how = "cut"
except socket.timeout:
    pass
print(how)
EOF
}

# ---- F1: a client that stops reading -------------------------------------------------
serve_start "$T/noread.log" --db shop="$SAMPLE_DB" --max-questions 1 --request-timeout-s 2
P=${SV##*:}
S1=$(new_session)
noread "$P" "$S1" 8 >"$T/noread.out" &
NR=$!
check "the question of a client that does not read is answered" answered 1
S2=$(new_session)
req POST "/v1/sessions/$S2/questions" --data '{"question":"count"}'
is 200 "its slot is given back once the answer is queued: another question is answered (--max-questions 1)"
req POST "/v1/sessions/$S1/questions" --data '{"question":"count"}'
is 200 "the stalled stream's session takes its next question"
wait "$NR"
R=$(cat "$T/noread.out")
[ "$R" = cut ] && ok "the stalled stream is cut after --request-timeout-s ($R)" || bad "the stalled stream: $R"
contains "$(cat "$T/noread.log")" "a client took none of its answer for 2 s (--request-timeout-s): connection closed" \
  "the log says why"
serve_stop

# ---- F16: a model reply holding a NUL ------------------------------------------------
# status faults send replies as written: the intent, then the SQL (or a SQL
# reply with \u0000), then a streamed answer whose second chunk holds one
cat >"$T/nul_answer.json" <<'EOF'
[{"kind":"status","status":200,"count":1,"body":"{\"choices\":[{\"message\":{\"content\":\"{\\\"intent\\\":\\\"data_question\\\"}\"}}]}"},
 {"kind":"status","status":200,"count":1,"body":"{\"choices\":[{\"message\":{\"content\":\"```sql\\nSELECT 1 AS one\\n```\"}}]}"},
 {"kind":"status","status":200,"count":1,"headers":{"Content-Type":"text/event-stream"},
  "body":"data: {\"choices\":[{\"delta\":{\"content\":\"A\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"\\u0000B C\"}}]}\n\ndata: [DONE]\n\n"}]
EOF
cat >"$T/nul_sql.json" <<'EOF'
[{"kind":"status","status":200,"count":1,"body":"{\"choices\":[{\"message\":{\"content\":\"{\\\"intent\\\":\\\"data_question\\\"}\"}}]}"},
 {"kind":"status","status":200,"body":"{\"choices\":[{\"message\":{\"content\":\"```sql\\nSELECT 'a' AS \\\"col\\u0000x\\\"\\n```\"}}]}"}]
EOF
faults() { curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary "@$1" "http://127.0.0.1:$PORT_a/_fake/faults"; }
serve_start "$T/nul.log" --db shop="$SAMPLE_DB"
S=$(new_session)
[ "$(faults "$T/nul_answer.json")" = 200 ] || bad "the fake took no faults"
R=$(curl -sN -H 'Accept: text/event-stream' "$SV/v1/sessions/$S/questions" --data '{"question":"nul"}')
contains "$R" 'a stream chunk contains a NUL character' "a NUL in a streamed answer is refused, and the stream says so"
R1=$(printf '%s\n' "$R" | grep -A1 '^event: retry' | grep '^data:')
contains "$R1" '"restarted":true' "the retry event after streamed tokens says restarted: drop them (F5)"
contains "$R" '"answer":"Here is the answer."' "the answer is the restarted stream's, whole"
lacks "$R" '"answer":"A"' "never the text cut at the NUL"
[ "$(faults "$T/nul_sql.json")" = 200 ] || bad "the fake took no faults"
R=$(curl -sN -H 'Accept: text/event-stream' "$SV/v1/sessions/$S/questions" --data '{"question":"nul"}')
contains "$R" 'contains a NUL character' "a NUL in the model's SQL is refused, saying so"
contains "$R" '"sql":null' "no SQL cut at the NUL is run"
R1=$(printf '%s\n' "$R" | grep -A1 '^event: retry' | grep '^data:')
contains "$R1" '"restarted":false' "a retry before any token says restarted false (F5)"
lacks "$R1" '"restarted":true' "and never true"
# the endpoint closing the stream mid-answer: the retry event says so in
# plain words, not libcurl's ("Transferred a partial file")
echo '[{"kind":"stream_cut","count":1,"after_chunks":2}]' > "$T/cut.json"
[ "$(faults "$T/cut.json")" = 200 ] || bad "the fake took no faults"
R=$(curl -sN -H 'Accept: text/event-stream' "$SV/v1/sessions/$S/questions" --data '{"question":"nul"}')
R1=$(printf '%s\n' "$R" | grep -A1 '^event: retry' | grep '^data:')
contains "$R1" 'was cut before its end (the endpoint closed the connection mid-reply)' "a cut stream's retry event says what happened in plain words"
lacks "$R" 'Transferred a partial file' "never libcurl's words"
contains "$R" '"answer":"Here is the answer."' "and the answer comes whole"
echo '[]' > "$T/nofaults.json"
[ "$(faults "$T/nofaults.json")" = 200 ] || bad "faults cleared"
serve_stop

# ---- F2: DELETE of a session that is answering ----------------------------------------
running() { for _ in $(seq 200); do curl -s "$SV/metrics" | grep -q "^convbi_questions_running $1\$" && return 0; sleep 0.05; done; return 1; }
serve_start "$T/delete.log" --db shop="$SAMPLE_DB" --sql-timeout-ms 60000 --question-timeout-ms 20000 --max-sessions 1
S=$(new_session)
curl -s -o "$T/del.out" -w '%{http_code}' "$SV/v1/sessions/$S/questions" --data '{"question":"slow"}' >"$T/del.code" &
CP=$!
check "a slow question runs" running 1
sleep 0.3
T0=$(date +%s%N)
req DELETE "/v1/sessions/$S"
is 204 "DELETE of the session answering it"
wait "$CP"
MS=$((($(date +%s%N) - T0) / 1000000))
[ "$MS" -lt 10000 ] && ok "the question ends at once ($MS ms after the DELETE, --question-timeout-ms 20000)" || bad "the question ended $MS ms after the DELETE"
[ "$(cat "$T/del.code")" = 503 ] && ok "its client gets 503" || bad "its client got $(cat "$T/del.code")"
contains "$(cat "$T/del.out")" '"code":"ECANCELED","message":"the session was closed (DELETE) while answering this question' \
  "ECANCELED saying the session was closed"
req POST "/v1/sessions/$S/questions" --data '{"question":"count"}'
is 404 "the closed session takes no further question"
check "no question runs" running 0
req POST /v1/sessions
is 201 "its place is free for a new session (--max-sessions 1)"
S=$(printf '%s' "$BODY" | sed -n 's/.*"session":"\([0-9a-f]*\)".*/\1/p')
curl -sN -H 'Accept: text/event-stream' "$SV/v1/sessions/$S/questions" --data '{"question":"slow"}' >"$T/del.sse" &
CP=$!
check "a slow streamed question runs" running 1
sleep 0.3
req DELETE "/v1/sessions/$S"
is 204 "DELETE of the session streaming it"
wait "$CP"
R=$(cat "$T/del.sse")
contains "$R" 'event: error' "the stream ends with an error event"
contains "$R" '"code":"ECANCELED","message":"the session was closed (DELETE) while answering this question' "saying why"
check "no question runs after it" running 0
serve_stop

finish
