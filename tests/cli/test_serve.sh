#!/usr/bin/env bash
# test_serve.sh -- `convbi serve` over real HTTP (curl) against the fake
# model: every route, SSE event names and the done event's chart, the one
# error shape, security by default (loopback without --tokens, bearer
# tokens, per-token databases, Host/Origin allow-list, size limits), the
# question and session caps (503 + Retry-After), idle expiry, a client
# that disconnects cancelling its question, /metrics, SIGTERM draining,
# and that no key or token reaches any response or log line.
. "$(dirname "$0")/lib.sh"
KEY=k-serve-east-5e1f0c9b7a
TOK_ALL=tok-all-8f3e2d1c0b9a8f7e6d5c
TOK_SHOP=tok-shop-1a2b3c4d5e6f7a8b9c0d
I='You are the intent classifier'; S='You are the SQL writer'; A='You are the answer writer'
start_fake '{"endpoints":[{"name":"east","api_key":"'$KEY'","deployment":"gpt-4o","chunk_ms":5}],
 "rules":[{"match":"'"$I"'","reply":"{\"intent\":\"data_question\"}"},
          {"match":"'"$S"'[\\s\\S]*Question: .*per month","reply":"```sql\nSELECT substr(order_date,1,7) AS month, count(*) AS n FROM orders GROUP BY 1 ORDER BY 1 LIMIT 6\n```"},
          {"match":"'"$S"'","reply":"```sql\nSELECT country_code, count(*) AS n FROM customers GROUP BY 1 ORDER BY 2 DESC LIMIT 8\n```"},
          {"match":"'"$A"'","reply":"Most customers are in the United States, then Great Britain."}],
 "default_reply":"OK"}'
C=$T/config.json
write_config "$C" east:$KEY

. "$(dirname "$0")/serve_lib.sh"

serve_start "$T/serve.log" --db shop="$SAMPLE_DB" --max-sessions 3 --max-questions 1
req GET /healthz;                is 200 "healthz"; contains "$BODY" '"status":"ok"' "healthz says ok"
req GET /v1/databases;           is 200 "databases"; contains "$BODY" '{"name":"shop"}' "databases lists shop"
req GET "/v1/schema?db=shop";    is 200 "schema"; contains "$BODY" 'customers' "schema names customers"
req GET "/v1/schema?db=nope";    is 404 "schema of an unknown database"
contains "$BODY" '{"error":{"code":"unknown_database","message":' "the one error shape"
req POST /v1/sessions -d '{}';   is 201 "session created"
SID=$(printf '%s' "$BODY" | sed -n 's/.*"session":"\([0-9a-f]*\)".*/\1/p')
[ ${#SID} = 32 ] && ok "session id is 32 hex characters" || bad "session id [$SID]"

# SSE: every event name, and done carries the answer JSON with its chart.
req POST "/v1/sessions/$SID/questions" -H 'Accept: text/event-stream' -d '{"question":"customers per country?"}'
is 200 "SSE question"
contains "$HDRS" "text/event-stream" "SSE content type"
for e in stage sql token rows done; do contains "$BODY" "event: $e" "SSE has a $e event"; done
lacks "$BODY" "event: error" "no error event"
DONE=$(printf '%s\n' "$BODY" | sed -n '/^event: done/{n;p}')
contains "$DONE" '"chart":{"$schema":"https://vega.github.io/schema/vega-lite/v5.json"' "done has the chart"
contains "$DONE" '"mark":{"type":"bar"' "a category and a number make a bar chart"
contains "$DONE" '"sql":"SELECT country_code' "done has the SQL"
# one JSON answer without SSE; a follow-up on the same session
req POST "/v1/sessions/$SID/questions" -d '{"question":"orders per month?"}'
is 200 "JSON question"
contains "$BODY" '"mark":{"type":"line"' "a month and a number make a line chart"
contains "$BODY" '"timeUnit":"yearmonth"' "the line's x has a timeUnit"
req POST "/v1/sessions/$SID/questions" -d '{"question":"x","bogus":1}';  is 400 "unknown field"
contains "$BODY" 'unknown field `bogus`' "the unknown field is named"
req POST "/v1/sessions/$SID/questions" -d '[1]';                       is 400 "a body that is not an object"
req POST "/v1/sessions/$SID/questions" -d '{"question":""}';           is 400 "an empty question"
head -c 20000 /dev/zero | tr '\0' 'a' > "$T/q.txt"
printf '{"question":"%s"}' "$(cat "$T/q.txt")" > "$T/big.json"
req POST "/v1/sessions/$SID/questions" --data-binary @"$T/big.json";    is 413 "a question over the limit"
head -c 300000 /dev/zero | tr '\0' 'a' > "$T/huge.json"
req POST /v1/sql --data-binary @"$T/huge.json";                          is 413 "a body over the limit"
req GET /v1/databases -H "X-Big: $(head -c 20000 /dev/zero | tr '\0' 'a')"; is 431 "headers over the limit"
contains "$BODY" '{"error":{"code":"headers_too_large"' "431 has the error shape"
req POST "/v1/sessions/0123456789abcdef0123456789abcdef/questions" -d '{"question":"hi"}'; is 404 "an unknown session"

# /v1/sql through the gate
req POST /v1/sql -d '{"sql":"SELECT count(*) AS n FROM customers"}';     is 200 "SQL runs"
contains "$BODY" '"rows":[[200]]' "SQL rows"
req POST /v1/sql -d '{"db":"shop","sql":"DELETE FROM customers"}';       is 422 "a write is rejected"
contains "$BODY" '{"error":{"code":"EREJECTED"' "rejected with the error shape"
req POST /v1/sql -d '{"sql":"SELECT 1; DROP TABLE customers"}';         is 422 "stacked statements are rejected"

# routes and methods
req GET /nope;              is 404 "unknown route"
req GET /v1/sql;            is 405 "wrong method"; contains "$HDRS" "Allow: POST" "405 says Allow"
req GET /v1/openapi.json;   is 200 "OpenAPI document"
req GET /;                  is 200 "the page"; contains "$HDRS" "Content-Security-Policy" "the page has a CSP"

# DNS rebinding: a foreign Host or Origin is refused.
req GET /v1/databases -H 'Host: evil.example:80';          is 403 "a foreign Host"
req GET /v1/databases -H 'Origin: http://evil.example';    is 403 "a foreign Origin"
req GET /v1/databases -H "Origin: $SV";                    is 200 "our own Origin"

# caps: the fourth session, and a second question while one runs
req POST /v1/sessions; req POST /v1/sessions
req POST /v1/sessions;      is 503 "past the session cap"
RA=$(printf '%s' "$HDRS" | tr -d '\r' | sed -n 's/^Retry-After: //p')
check "its Retry-After is when the idle session that expires first does (~900 s, not 1: attack5 F12)" \
  test "${RA:-0}" -ge 850 -a "${RA:-0}" -le 900
contains "$BODY" 'close one you hold (DELETE /v1/sessions/{id}), or retry after the Retry-After seconds' "the message says how to free one"
contains "$BODY" '"code":"too_many_sessions"' "the session cap is named"
curl -s -X POST --data '[{"kind":"slow_first_token","delay_ms":1500,"count":1}]' "http://127.0.0.1:$PORT_east/_fake/faults" >/dev/null
curl -s -X POST "$SV/v1/sessions/$SID/questions" -d '{"question":"customers per country?"}' >"$T/slow.out" &
SLOW=$!
for _ in $(seq 100); do curl -s "$SV/metrics" | grep -q '^convbi_questions_running 1' && break; sleep 0.02; done
req POST /v1/sql -d '{"sql":"SELECT 1"}';   is 503 "past the question cap"
contains "$HDRS" "Retry-After: 1" "question cap 503 has Retry-After"
req POST "/v1/sessions/$SID/questions" -d '{"question":"again?"}'
[ "$CODE" = 409 ] || [ "$CODE" = 503 ] && ok "a second question on a busy session is refused ($CODE)" || bad "busy session: $CODE"
wait $SLOW
contains "$(cat "$T/slow.out")" '"answer":"Most customers' "the slow question still answers"

# A client that disconnects cancels its question.
curl -s -X POST --data '[{"kind":"slow_first_token","delay_ms":3000,"count":1}]' "http://127.0.0.1:$PORT_east/_fake/faults" >/dev/null
before=$(grep -c '"endpoint":"east"' "$T/requests.log")
curl -s -N --max-time 0.7 -H 'Accept: text/event-stream' -X POST "$SV/v1/sessions/$SID/questions" -d '{"question":"customers per country?"}' >/dev/null
for _ in $(seq 100); do curl -s "$SV/metrics" | grep -q 'convbi_questions_total{outcome="ECANCELED"} 1' && break; sleep 0.05; done
M=$(curl -s "$SV/metrics")
contains "$M" 'convbi_questions_total{outcome="ECANCELED"} 1' "the disconnect canceled the question"
sleep 0.5
after=$(grep -c '"endpoint":"east"' "$T/requests.log")
[ $((after - before)) -le 1 ] && ok "no model call after the client left ($((after - before)))" || bad "$((after - before)) model calls after the client left"
lacks "$(cat "$T/serve.log")" "Closing connection" "libmicrohttpd's repeat of the early close is not logged (the access line says it)"
lacks "$(cat "$T/serve.log")" "Application reported internal error" "nor its internal-error line"
# (the door answers malformed requests itself; a chunked body malformed
# past the 16 KiB it looks at is libmicrohttpd's to find, and the server
# answers in its place)
{ printf 'POST /v1/sql HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n4000\r\n'
  head -c 16384 /dev/zero | tr '\0' a; printf '\r\nzz\r\n0\r\n\r\n'; } > "$T/v99.req"
R=$(python3 "$(dirname "$0")/serve_client.py" raw "${SV##*:}" "$T/v99.req")
contains "$R" '{"error":{"code":"bad_request","message":"the chunked body is malformed' "a chunk size malformed past the door's look is a JSON 400"
for _ in $(seq 40); do grep -q 'POST other 400' "$T/serve.log" && break; sleep 0.05; done
contains "$(cat "$T/serve.log")" "convbi serve: POST other 400" "one line in the log's format"
lacks "$(cat "$T/serve.log")" "<html>" "without its HTML"

# The same for a JSON answer, in the middle of a model call: the question
# ends long before the 8 s model reply would have come.
curl -s -X POST --data '[{"kind":"slow_first_token","delay_ms":8000,"count":1}]' "http://127.0.0.1:$PORT_east/_fake/faults" >/dev/null
curl -s --max-time 0.7 -X POST "$SV/v1/sessions/$SID/questions" -d '{"question":"customers per country?"}' >/dev/null
t0=$(date +%s%N)
for _ in $(seq 100); do curl -s "$SV/metrics" | grep -q 'convbi_questions_total{outcome="ECANCELED"} 2' && break; sleep 0.05; done
waited=$(( ($(date +%s%N) - t0) / 1000000 ))
M=$(curl -s "$SV/metrics")
contains "$M" 'convbi_questions_total{outcome="ECANCELED"} 2' "a JSON client leaving cancels its question"
[ "$waited" -lt 6000 ] && ok "it was canceled during the model call (${waited} ms after the client left)" || bad "canceled only after ${waited} ms"

# metrics
for m in 'convbi_questions_total{outcome="ok"}' 'convbi_stage_duration_seconds_bucket{stage="sql",le="0.005"}' \
         'convbi_endpoint_calls_total{endpoint="east"}' 'convbi_endpoint_429_total{endpoint="east"}' \
         'convbi_endpoint_failures_total{endpoint="east"}' 'convbi_endpoint_cooldown_seconds{endpoint="east"}' \
         'convbi_endpoint_remaining_requests{endpoint="east"}' 'convbi_endpoint_attempt_duration_seconds_bucket{endpoint="east",le="+Inf"}' \
         'convbi_http_requests_total{route="/v1/sql",status="422"}' '# TYPE convbi_question_duration_seconds histogram'; do
  contains "$M" "$m" "metrics has $m"
done
req DELETE "/v1/sessions/$SID";                              is 204 "session deleted"
req POST "/v1/sessions/$SID/questions" -d '{"question":"hi"}'; is 404 "a deleted session is gone"
serve_stop
ALL="$ALL$(cat "$T/serve.log")$M"

# With every session answering no time can be promised: no Retry-After,
# a message saying how to free one (attack5 F12).
serve_start "$T/cap1.log" --db shop="$SAMPLE_DB" --max-sessions 1 --session-idle-s 30
req POST /v1/sessions; SID=$(printf '%s' "$BODY" | sed -n 's/.*"session":"\([0-9a-f]*\)".*/\1/p')
req POST /v1/sessions; is 503 "a second session past --max-sessions 1"
contains "$HDRS" "Retry-After: 30" "Retry-After is --session-idle-s for a session idle since just now"
curl -s -X POST --data '[{"kind":"slow_first_token","delay_ms":1500,"count":1}]' "http://127.0.0.1:$PORT_east/_fake/faults" >/dev/null
curl -s -X POST "$SV/v1/sessions/$SID/questions" -d '{"question":"customers per country?"}' >/dev/null &
SLOW=$!
for _ in $(seq 100); do curl -s "$SV/metrics" | grep -q '^convbi_questions_running 1' && break; sleep 0.02; done
req POST /v1/sessions; is 503 "past the cap while its one session answers"
lacks "$HDRS" "Retry-After" "no Retry-After when every session is answering"
contains "$BODY" 'every one is answering a question: close one you hold (DELETE /v1/sessions/{id}) once its answer is in' "the message says how to free one"
wait $SLOW
serve_stop

# Idle sessions expire.
serve_start "$T/idle.log" --db shop="$SAMPLE_DB" --session-idle-s 1
req POST /v1/sessions; SID=$(printf '%s' "$BODY" | sed -n 's/.*"session":"\([0-9a-f]*\)".*/\1/p')
sleep 2.5
req POST "/v1/sessions/$SID/questions" -d '{"question":"hi"}'; is 404 "an idle session expired"
serve_stop

# SIGTERM drains: the running question finishes, then the server exits 0.
serve_start "$T/drain.log" --db shop="$SAMPLE_DB"
req POST /v1/sessions; SID=$(printf '%s' "$BODY" | sed -n 's/.*"session":"\([0-9a-f]*\)".*/\1/p')
curl -s -X POST --data '[{"kind":"slow_first_token","delay_ms":1500,"count":1}]' "http://127.0.0.1:$PORT_east/_fake/faults" >/dev/null
curl -s -w '\n%{http_code}' -X POST "$SV/v1/sessions/$SID/questions" -d '{"question":"customers per country?"}' >"$T/drain.out" &
Q=$!
for _ in $(seq 100); do curl -s "$SV/metrics" | grep -q '^convbi_questions_running 1' && break; sleep 0.02; done
kill -TERM "$SV_PID"
wait $Q
wait "$SV_PID"; rc=$?; RUN_PID=""
[ $rc = 0 ] && ok "serve exits 0 after SIGTERM" || bad "serve exit $rc after SIGTERM"
contains "$(cat "$T/drain.out")" '"answer":"Most customers' "the in-flight question finished during the drain"
contains "$(tail -1 "$T/drain.out")" "200" "and got 200"
contains "$(cat "$T/drain.log")" "draining: 1 question(s) in flight" "the drain is logged"

# Non-loopback without --tokens is refused; with tokens, auth and tenants.
expect_code 2 "a non-loopback bind without --tokens" "$CONVBI" serve --listen 0.0.0.0:0 --config "$C" --db shop="$SAMPLE_DB"
contains "$ERR" "without --tokens" "the refusal says why"
printf '# tokens\n%s\n%s shop\n' "$TOK_ALL" "$TOK_SHOP" > "$T/tokens"; chmod 600 "$T/tokens"
sqlite3 "$T/other.db" 'CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (1);'
serve_start "$T/auth.log" --db shop="$SAMPLE_DB" --db other="$T/other.db" --tokens "$T/tokens"
req GET /v1/databases;                                           is 401 "no token"
contains "$HDRS" "WWW-Authenticate: Bearer" "401 asks for a bearer token"
req GET /v1/databases -H "Authorization: Bearer wrong-token-0000000000"; is 401 "a wrong token"
# a refusal before the body is read closes the connection, and the client sees its end
PY="python3 $(dirname "$0")/serve_client.py"
printf 'GET /v1/databases HTTP/1.1\r\nHost: localhost\r\n\r\n' > "$T/noauth.req"
printf 'GET /v1/databases HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer %s\r\n\r\n' "$TOK_ALL" > "$T/evilhost.req"
printf 'GET /v1/databases HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n\r\n' "$TOK_ALL" > "$T/authed.req"
contains "$($PY ends "${SV##*:}" "$T/noauth.req")" "HTTP/1.1 401 Unauthorized EOF" "a 401 (Connection: close) ends the connection"
contains "$($PY ends "${SV##*:}" "$T/evilhost.req")" "HTTP/1.1 403 Forbidden EOF" "a 403 for a foreign Host ends it too"
contains "$($PY ends "${SV##*:}" "$T/authed.req")" "HTTP/1.1 200 OK open" "an answered keep-alive request keeps it open"
req GET /healthz;                                                is 200 "healthz needs no token"
req GET /v1/databases -H "Authorization: Bearer $TOK_ALL";       is 200 "the all-databases token"
contains "$BODY" '"other"' "it sees other"
req GET /v1/databases -H "Authorization: Bearer $TOK_SHOP";      is 200 "the tenant token"
lacks "$BODY" '"other"' "the tenant does not see other"
req POST /v1/sql -H "Authorization: Bearer $TOK_SHOP" -d '{"db":"other","sql":"SELECT 1"}'; is 404 "the tenant may not query other (as if it were not there)"
req POST /v1/sessions -H "Authorization: Bearer $TOK_SHOP" -d '{"db":"other"}';            is 404 "nor open a session on it"
req POST /v1/sessions -H "Authorization: Bearer $TOK_ALL" -d '{"db":"other"}';             is 201 "the all token may"
SID=$(printf '%s' "$BODY" | sed -n 's/.*"session":"\([0-9a-f]*\)".*/\1/p')
req POST "/v1/sessions/$SID/questions" -H "Authorization: Bearer $TOK_SHOP" -d '{"question":"hi"}'; is 404 "another token's session does not exist"
req POST /v1/sql -H "Authorization: Bearer $TOK_ALL" -d '{"db":"other","sql":"SELECT x FROM t"}'; is 200 "SQL on other"
serve_stop
ALL="$ALL$(cat "$T/auth.log" "$T/idle.log" "$T/drain.log")"
expect_code 2 "a bad --listen" "$CONVBI" serve --listen nonsense --config "$C"
expect_code 2 "a tokens file naming an unknown database" bash -c "printf '%s nope\n' $TOK_ALL > '$T/bad_tokens'; '$CONVBI' serve --listen 127.0.0.1:0 --config '$C' --db shop='$SAMPLE_DB' --tokens '$T/bad_tokens'"
contains "$ERR" "no database is named \`nope\`" "the unknown database is named"
ALL="$ALL$OUT$ERR"

lacks "$ALL" "$KEY" "the API key appears in no response or log"
lacks "$ALL" "$TOK_ALL" "the token appears in no response or log"
lacks "$ALL" "$TOK_SHOP" "the tenant token appears in no response or log"
finish
