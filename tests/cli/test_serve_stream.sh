#!/usr/bin/env bash
# test_serve_stream.sh -- how `convbi serve` ends a question's work and its
# stream (outside attack #5): a client that stops reading an SSE answer
# holds no --max-questions slot once the answer is queued, and its stalled
# connection is cut after --request-timeout-s (F1).
. "$(dirname "$0")/lib.sh"
cat >"$T/sql_map.json" <<'JSON'
{"bigrows": "```sql\nWITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 5000) SELECT x, printf('%.3000c','a') AS w FROM c\n```",
 "count": "```sql\nSELECT count(*) AS n FROM customers\n```"}
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

finish
