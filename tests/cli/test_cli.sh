#!/usr/bin/env bash
# test_cli.sh -- golden checks of `convbi llm`, `endpoints`, `ask`, `schema`,
# `graph`, the REPL driven through piped stdin, configuration errors and
# exit codes, and that no API key ever reaches any output or log.
. "$(dirname "$0")/lib.sh"
K1=k-cli-east-8c2f6e0a4d; K2=k-cli-west-1b3d5f7a9c
I='You are the intent classifier'; S='You are the SQL writer'; A='You are the answer writer'
start_fake '{"endpoints":[{"name":"east","api_key":"'$K1'","deployment":"gpt-4o"},{"name":"west","api_key":"'$K2'","deployment":"gpt-4o","latency_ms":300}],
 "rules":[{"match":"'"$I"'[\\s\\S]*User message: and by country","reply":"{\"intent\":\"follow_up\",\"standalone_question\":\"How many customers per country?\"}"},
          {"match":"'"$I"'","reply":"{\"intent\":\"data_question\"}"},
          {"match":"'"$S"'[\\s\\S]*Question: How many customers per country","reply":"```sql\nSELECT country_code, count(*) AS n FROM customers GROUP BY 1 ORDER BY 2 DESC LIMIT 3\n```"},
          {"match":"'"$S"'","reply":"```sql\nSELECT count(*) AS n FROM customers\n```"},
          {"match":"'"$A"'","reply":"There are 200 customers."},
          {"match":"say (\\w+)","reply":"you said $1"}],
 "default_reply":"OK"}'
C=$T/config.json
write_config "$C" east:$K1 west:$K2
ALL=""

expect_code 0 "llm --json answers" "$CONVBI" llm --config "$C" --json "say hello"
contains "$OUT" '"content":"you said hello"' "llm --json has the content"
contains "$OUT" '"attempts":[{"endpoint":' "llm --json has the attempts"
contains "$OUT" '"usage":{"prompt_tokens":' "llm --json has usage"
ALL="$ALL$OUT$ERR"
expect_code 0 "llm --stream prints the text" "$CONVBI" llm --config "$C" --stream "say streaming"
contains "$OUT" "you said streaming" "streamed text"
ALL="$ALL$OUT$ERR"

# A 429 with retry-after 20 on east: every later call, from any process, goes elsewhere.
# (west answers 300 ms slower, so the client, which prefers quick endpoints, tries east first)
echo '[{"kind":"rate_limit","retry_after_s":20,"count":1}]' > "$T/f.json"
curl -s -X POST --data @"$T/f.json" "http://127.0.0.1:$PORT_east/_fake/faults" >/dev/null 2>&1 ||
  printf 'POST /_fake/faults HTTP/1.1\r\nHost: x\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s' "$(wc -c <"$T/f.json")" "$(cat "$T/f.json")" > /dev/tcp/127.0.0.1/$PORT_east
for i in 1 2 3 4 5 6; do "$CONVBI" llm --config "$C" --json "say $i" >>"$T/many" 2>&1 || bad "call $i failed"; done
n_east=$(grep -c '"endpoint":"east"' "$T/requests.log")
before=$n_east
for i in 1 2 3 4; do "$CONVBI" llm --config "$C" "say again$i" >/dev/null 2>&1 || bad "later call $i failed"; done
n_east=$(grep -c '"endpoint":"east"' "$T/requests.log")
[ "$n_east" = "$before" ] && ok "no request reached east while it cools ($n_east in all)" || bad "east got requests while cooling ($before -> $n_east)"
grep -q '"retry_after_source":"retry-after-ms"' "$T/many" && ok "the attempt names retry-after-ms" || bad "no retry_after_source in $(head -c 600 "$T/many")"
expect_code 0 "endpoints --json" "$CONVBI" endpoints --config "$C" --json
contains "$OUT" '"name":"east"' "endpoints lists east"
echo "$OUT" | grep -q '"name":"east"[^}]*"cooling_ms":1[0-9][0-9][0-9][0-9]' && ok "east shows its cooldown" || bad "east cooldown not shown: $OUT"
expect_code 0 "endpoints table" "$CONVBI" endpoints --config "$C"
contains "$OUT" "BREAKER" "the table has a header"
contains "$OUT" "LEARNED_RPM" "the table shows learned request rates"
contains "$OUT" "LEARNED_TPM" "the table shows learned token rates"
ALL="$ALL$OUT$ERR$(cat "$T/many")"
expect_code 0 "endpoints --json (learned)" "$CONVBI" endpoints --config "$C" --json
for f in '"learned_rpm":' '"learned_rpm_from":"' '"learned_tpm":' '"learned_tpm_from":"' '"cooling_reason":"rate_limit"'; do
  contains "$OUT" "$f" "endpoints --json has $f"
done
# --reset NAME clears that endpoint's shared state and says what it held
expect_code 2 "endpoints --reset of an unknown name" "$CONVBI" endpoints --config "$C" --reset nowhere
contains "$ERR" 'no endpoint is named `nowhere`; the configured ones are `east`, `west`' "the unknown name is named, with the known ones"
expect_code 2 "endpoints NAME without --reset" "$CONVBI" endpoints --config "$C" east
expect_code 0 "endpoints --reset east" "$CONVBI" endpoints --config "$C" --reset east
contains "$OUT" 'endpoint `east`: cleared a rate-limit cooldown with 1' "the reset says what it cleared"
lacks "$OUT" 'endpoint `west`' "the reset leaves west alone"
expect_code 0 "endpoints --json after the reset" "$CONVBI" endpoints --config "$C" --json
echo "$OUT" | grep -q '"name":"east"[^}]*"cooling_ms":0,' && ok "east no longer cools" || bad "east still cools: $OUT"
expect_code 0 "endpoints --reset (all)" "$CONVBI" endpoints --config "$C" --reset
contains "$OUT" 'endpoint `west`: cleared' "a reset without a name clears every endpoint"
ALL="$ALL$OUT$ERR"
# --reset --json: each endpoint as it is now, with what it held before under "cleared"
"$CONVBI" llm --config "$C" "say json" >/dev/null 2>&1 || bad "the call before the JSON reset failed"
expect_code 0 "endpoints --reset --json" "$CONVBI" endpoints --config "$C" --reset --json
echo "$OUT" | grep -q '"calls":1,[^}]*}}' && ok "\"cleared\" holds the call counted before" || bad "no cleared calls: $OUT"
echo "$OUT" | grep -q '^\[{"name":"east"[^{}]*"calls":0,[^{}]*"cleared":{' && ok "the endpoint itself shows the state after the reset" || bad "not the state after: $OUT"
# a reset that cannot reach the shared state clears nothing and says so (exit 1)
sed "s#\"path\":\"[^\"]*\"#\"path\":\"$T/no-such-dir/state\"#" "$C" >"$T/unreachable.json"
expect_code 1 "endpoints --reset on an unreachable state" "$CONVBI" endpoints --config "$T/unreachable.json" --reset
contains "$ERR" "nothing was cleared" "says nothing was cleared"
lacks "$OUT" "cleared" "and claims no clearing"

# ask, schema, graph
expect_code 0 "ask answers" "$CONVBI" ask --config "$C" --db "$SAMPLE_DB" "How many customers?"
contains "$OUT" "SELECT count(*) AS n FROM customers" "ask shows the SQL"
contains "$OUT" "There are 200 customers." "ask shows the answer"
contains "$OUT" "200" "ask shows the rows"
expect_code 0 "ask --json" "$CONVBI" ask --config "$C" --db "$SAMPLE_DB" --json "How many customers?"
for f in '"intent":"data_question"' '"sql":' '"columns":["n"]' '"rows":[[200]]' '"answer":' '"usage":' '"attempts":' '"elapsed_ms":'; do
  contains "$OUT" "$f" "ask --json has $f"
done
ALL="$ALL$OUT$ERR"
expect_code 0 "schema" "$CONVBI" schema --db "$SAMPLE_DB"
contains "$OUT" "customers" "schema names customers"
expect_code 0 "graph mermaid" "$CONVBI" graph
contains "$OUT" "flowchart" "mermaid graph"
expect_code 0 "graph dot" "$CONVBI" graph --format dot
contains "$OUT" "digraph" "dot graph"
expect_code 2 "graph with a bad format" "$CONVBI" graph --format svg

# The REPL through piped stdin: a question, a follow-up, dot-commands.
printf 'How many customers?\n.mode csv\nand by country?\n.history\n.sql off\n.help\n.bogus\n.quit\n' |
  "$CONVBI" repl --config "$C" --db "$SAMPLE_DB" >"$T/repl.out" 2>"$T/repl.err"; rc=$?
R=$(cat "$T/repl.out"); RE=$(cat "$T/repl.err")
[ $rc = 0 ] && ok "repl exits 0" || bad "repl exit $rc: $RE"
contains "$R" "SQL: SELECT count(*) AS n FROM customers" "repl shows the SQL"
contains "$R" "There are 200 customers." "repl streams the answer"
contains "$R" "country_code,n" "repl follow-up printed as csv"
contains "$R" 'How many customers per country?' ".history shows the rewritten follow-up"
contains "$R" ".endpoints" ".help lists the dot-commands"
contains "$RE" "unknown command \`.bogus\`" "unknown dot-command gets one line"
ALL="$ALL$R$RE"

# Configuration errors: one line, exit 2, naming the fix.
env -u CONVBI_CONFIG -u AZURE_OPENAI_ENDPOINT_0 -u AZURE_OPENAI_ENDPOINT_1 "$CONVBI" ask --db "$SAMPLE_DB" "hi" >"$T/out" 2>"$T/err"; rc=$?
[ $rc = 2 ] && ok "no endpoint: exit 2" || bad "no endpoint: exit $rc"
contains "$(cat "$T/err")" "AZURE_OPENAI_ENDPOINT_0" "no endpoint: says which variables to set"
[ "$(wc -l < "$T/err")" = 1 ] && ok "no endpoint: one line" || bad "no endpoint: $(cat "$T/err")"
echo '{"endpoints": [' > "$T/bad.json"
expect_code 2 "a config that is not JSON" "$CONVBI" llm --config "$T/bad.json" "x"
contains "$ERR" "is not valid JSON" "bad config is named"
expect_code 2 "an unknown flag" "$CONVBI" llm --bogus x
expect_code 2 "a flag of another command" "$CONVBI" graph --db x
expect_code 2 "an unknown command" "$CONVBI" frobnicate
mkdir -p "$T/badprompts" && cp "$SOURCE_DIR"/prompts/*.txt "$T/badprompts/" && echo '{{shema}}' >> "$T/badprompts/sql.txt"
expect_code 2 "a misspelled global option before the command (attack6 F11)" "$CONVBI" --confg x ask hi
contains "$ERR" "unknown option \`--confg\`" "names the option, not its value as a command"
expect_code 2 "a template with an unknown placeholder" "$CONVBI" ask --config "$C" --db "$SAMPLE_DB" --prompts "$T/badprompts" "x"
contains "$ERR" "sql.txt" "the template error names the file"

# No key anywhere: outputs, errors and the server's request log.
ALL="$ALL$(cat "$T/requests.log")$(cat "$T"/err)"
lacks "$ALL" "$K1" "key of east never printed or logged"
lacks "$ALL" "$K2" "key of west never printed or logged"
finish
