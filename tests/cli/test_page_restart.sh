#!/usr/bin/env bash
# test_page_restart.sh -- the page at GET / in headless Chromium when the
# model stream is cut mid-answer (attack5 F5): serve's `retry` event says
# "restarted": true and the page drops the text streamed so far
# (tests/node/page_restart_test.mjs).
. "$(dirname "$0")/lib.sh"
N=$BUILD_DIR/node
[ -d "$N/node_modules/puppeteer-core" ] || { bad "the node fixture did not run (tests/node/setup.sh)"; finish; exit 1; }
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || { bad "chromium is missing: run .ci/deps"; finish; exit 1; }
start_fake '{"endpoints":[{"name":"east","api_key":"k-restart-east-1","deployment":"gpt-4o","chunk_ms":10}],
 "rules":[{"match":"answer writer","reply":"Most customers are in the United States, then Great Britain."}],
 "default_reply":"OK"}'
C=$T/config.json
write_config "$C" east:k-restart-east-1
. "$(dirname "$0")/serve_lib.sh"
# the intent and the SQL as written, then the answer stream cut after 4
# chunks, then every attempt refused (400: not retried)
cat >"$T/faults.json" <<'JSON'
[{"kind":"status","status":200,"count":1,"body":"{\"choices\":[{\"message\":{\"content\":\"{\\\"intent\\\":\\\"data_question\\\"}\"}}]}"},
 {"kind":"status","status":200,"count":1,"body":"{\"choices\":[{\"message\":{\"content\":\"```sql\\nSELECT count(*) AS n FROM customers\\n```\"}}]}"},
 {"kind":"stream_cut","count":1,"after_chunks":4},
 {"kind":"status","status":400,"message":"refused"}]
JSON
serve_start "$T/serve.log" --db shop="$SAMPLE_DB"
node "$N/page_restart_test.mjs" "$CHROMIUM" "$SV/" "http://127.0.0.1:$PORT_east/_fake/faults" "$(cat "$T/faults.json")" >"$T/node.out" 2>&1
rc=$?
grep -v '^ok' "$T/node.out" | head -20
[ $rc = 0 ] && ok "the page drops the cut stream's text on a restart ($(tail -1 "$T/node.out"))" || bad "page: $(tail -1 "$T/node.out")"
serve_stop
finish
