#!/usr/bin/env bash
# test_serve_options.sh -- REST and MCP take a question's options (and db,
# sql) by one rule, the one their published schemas state: null, wrong
# types, out-of-range numbers, dates that do not exist, lengths
# (tests/node/options_test.mjs, with Ajv over GET /v1/openapi.json and
# tools/list).  Needs the `node` fixture.
. "$(dirname "$0")/lib.sh"
N=$BUILD_DIR/node
[ -f "$N/options_test.mjs" ] || { bad "the node fixture did not run (tests/node/setup.sh)"; finish; exit 1; }
I='You are the intent classifier'; S='You are the SQL writer'; A='You are the answer writer'
start_fake '{"endpoints":[{"name":"east","api_key":"k-opt-4d2c","deployment":"gpt-4o"}],
 "rules":[{"match":"'"$I"'","reply":"{\"intent\":\"data_question\"}"},
          {"match":"'"$S"'","reply":"```sql\nSELECT count(*) AS n FROM customers\n```"},
          {"match":"'"$A"'","reply":"Counted."}], "default_reply":"OK"}'
C=$T/config.json
write_config "$C" east:k-opt-4d2c
. "$(dirname "$0")/serve_lib.sh"
serve_start "$T/serve.log" --db shop="$SAMPLE_DB"
node "$N/options_test.mjs" "$SV" > "$T/node.out" 2>&1; rc=$?
grep -v '^ok' "$T/node.out" | head -40
[ $rc = 0 ] && ok "REST, MCP and both schemas agree on every option ($(tail -1 "$T/node.out"))" || bad "options: $(tail -1 "$T/node.out")"
serve_stop
finish
