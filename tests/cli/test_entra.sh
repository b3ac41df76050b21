#!/usr/bin/env bash
# test_entra.sh -- the CLI on Azure as enterprises run it (issue 17): an
# endpoint with key authentication disabled reached with a managed
# identity's token, a client secret that is refused, a PTU deployment that
# spills over, and `-v` telling where each attempt went.  Fails if a token
# the fake issued, the client secret or the identity header appears in
# stdout, stderr, result files, the state file or the request log.
. "$(dirname "$0")/lib.sh"
SECRET=cs-convbi-SECRET-5e4d3c2b1a
IDH=idh-convbi-SECRET-0a1b2c3d
I='You are the intent classifier'; S='You are the SQL writer'
start_fake '{"entra":{"tenant_id":"tnt","client_id":"cid","client_secret":"'$SECRET'","identity_header":"'$IDH'"},
 "endpoints":[{"name":"ptu","api_key":"k-unused-ptu-1","deployment":"gpt-4o-ptu","local_auth":false,"rpm":2,
   "region":"swedencentral","spillover_deployments":["gpt-4o-std"]}],
 "rules":[{"match":"'"$I"'","reply":"{\"intent\":\"data_question\"}"},{"match":"'"$S"'","reply":"```sql\nSELECT count(*) AS n FROM customers\n```"}],
 "default_reply":"There are 200 customers."}'
C=$T/config.json
printf '{"endpoints":[{"name":"ptu","url":"http://127.0.0.1:%s","deployment":"gpt-4o-ptu","spillover_deployment":"gpt-4o-std",
  "auth":{"type":"managed_identity","token_url":"http://127.0.0.1:%s/metadata/identity/oauth2/token"}}],"retry":{"deadline_ms":8000},"state":{"path":"%s/state"}}' \
  "$PORT_ptu" "$PORT_ptu" "$T" > "$C"
export CONVBI_TEST_SECRET=wrong-$SECRET
printf '{"endpoints":[{"name":"ptu","url":"http://127.0.0.1:%s","deployment":"gpt-4o-ptu",
  "auth":{"type":"client_secret","tenant_id":"tnt","client_id":"cid","client_secret_env":"CONVBI_TEST_SECRET","token_url":"http://127.0.0.1:%s/tnt/oauth2/v2.0/token"}}],"retry":{"deadline_ms":3000},"state":{"path":"%s/state-bad"}}' \
  "$PORT_ptu" "$PORT_ptu" "$T" > "$T/bad.json"
printf 'How many customers?\nHow many customers, again?\n' > "$T/questions.txt"

expect_code 0 "llm with a managed identity's token on a keyless resource" "$CONVBI" llm --config "$C" -v "hello"
contains "$ERR" "convbi: attempt: ptu HTTP 200 ok" "-v lists the attempt"
contains "$ERR" "[deployment gpt-4o-ptu, region swedencentral, apim-request-id " "-v shows where it was served"
# rpm 2 on the PTU: the next calls spill over to the standard deployment
"$CONVBI" llm --config "$C" --json "again" > "$T/o1.json" 2>>"$T/all.err"
expect_code 0 "a spilled-over call still succeeds" "$CONVBI" llm --config "$C" --json -v "and again"
contains "$OUT" '"deployment_name":"gpt-4o-std","spillover_from_deployment":"gpt-4o-ptu","spillover_error":"429"' "--json attempts carry the spillover"
contains "$ERR" "[deployment gpt-4o-std, spilled over from gpt-4o-ptu after HTTP 429, region swedencentral" "-v names the spillover"
cat "$T/out" "$T/o1.json" >> "$T/all.out"; cat "$T/err" >> "$T/all.err"
expect_code 0 "ask -v on the keyless resource" "$CONVBI" ask --config "$C" --db "$SAMPLE_DB" -v "How many customers?"
contains "$ERR" "convbi: attempt: sql ptu HTTP 200 ok" "ask -v lists its attempts with their stage"
contains "$ERR" "spilled over from gpt-4o-ptu" "ask -v shows the provenance of its attempts"
cat "$T/out" >> "$T/all.out"; cat "$T/err" >> "$T/all.err"
expect_code 0 "endpoints" "$CONVBI" endpoints --config "$C" --json
contains "$OUT" '"auth":"managed_identity"' "endpoints --json names the auth type"
cat "$T/out" >> "$T/all.out"
"$CONVBI" batch --config "$C" --db "$SAMPLE_DB" -j 2 --out "$T/batch.jsonl" -v "$T/questions.txt" >>"$T/all.out" 2>>"$T/all.err"
expect_code 1 "a refused client secret fails the call" "$CONVBI" llm --config "$T/bad.json" --json "hello"
contains "$OUT" 'HTTP 401 invalid_client: AADSTS7000215: Invalid client secret provided.' "the refusal is the token service's own words"
cat "$T/out" >> "$T/all.out"; cat "$T/err" >> "$T/all.err"
check "a token went on the wire" grep -q '"authorization":"<token>"' "$T/requests.log"
for f in "$T/all.out" "$T/all.err" "$T/batch.jsonl" "$T/requests.log" "$T"/state*; do
  [ -e "$f" ] || continue
  if grep -a -q -E 'eyJ0eXAiOiJKV1QifQ\.fk|SECRET' "$f"; then bad "a token or secret appears in $(basename "$f")"; else ok "no token or secret in $(basename "$f")"; fi
done
finish
