#!/usr/bin/env bash
# test_openapi.sh -- GET /v1/openapi.json against the served routes
# (tests/node/openapi_test.mjs), with a bearer token and the fake model.
# Needs the `node` fixture.
. "$(dirname "$0")/lib.sh"
N=$BUILD_DIR/node
[ -f "$N/openapi_test.mjs" ] || { bad "the node fixture did not run (tests/node/setup.sh)"; finish; exit 1; }
KEY=k-openapi-1f3e5d7c9b
TOK=tok-openapi-9a8b7c6d5e4f3a2b1c0d
I='You are the intent classifier'; S='You are the SQL writer'; A='You are the answer writer'
start_fake '{"endpoints":[{"name":"east","api_key":"'$KEY'","deployment":"gpt-4o"}],
 "rules":[{"match":"'"$I"'","reply":"{\"intent\":\"data_question\"}"},
          {"match":"'"$S"'","reply":"```sql\nSELECT country_code, count(*) AS n FROM customers GROUP BY 1\n```"},
          {"match":"'"$A"'","reply":"Counted."}], "default_reply":"OK"}'
C=$T/config.json
write_config "$C" east:$KEY
printf '%s\n' "$TOK" > "$T/tokens"; chmod 600 "$T/tokens"
"$CONVBI" serve --listen 127.0.0.1:0 --config "$C" --db shop="$SAMPLE_DB" --tokens "$T/tokens" 2>"$T/serve.log" &
RUN_PID=$!
for _ in $(seq 200); do PORT=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/serve.log"); [ -n "$PORT" ] && break; sleep 0.05; done
[ -n "$PORT" ] || { bad "serve did not start: $(cat "$T/serve.log")"; finish; exit 1; }
node "$N/openapi_test.mjs" "http://127.0.0.1:$PORT" "$TOK" > "$T/node.out" 2>&1; rc=$?
grep -v '^ok' "$T/node.out" | head -30
[ $rc = 0 ] && ok "the OpenAPI document matches the served routes ($(tail -1 "$T/node.out"))" || bad "openapi: $(tail -1 "$T/node.out")"
finish
