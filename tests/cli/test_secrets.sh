#!/usr/bin/env bash
# test_secrets.sh -- every CLI path run with recognisable keys (from a
# config file, from api_key_env and from the seed's AZURE_OPENAI_API_KEY_i
# variables), successes and failures alike (wrong key, all endpoints down,
# verbose traces, streaming); fails if any key appears in stdout, stderr,
# batch or eval result files, the shared state file, the REPL history file
# or the fake server's request log.
. "$(dirname "$0")/lib.sh"
K1=sk-convbi-SECRET-east-6f2a9d4c1b7e
K2=sk-convbi-SECRET-west-0d8e2b6a4c9f
K3=sk-convbi-SECRET-env3-3c5e7a9b1d2f
KBAD=sk-convbi-SECRET-wrong-9a8b7c6d5e4f
I='You are the intent classifier'; S='You are the SQL writer'
start_fake '{"endpoints":[{"name":"east","api_key":"'$K1'","deployment":"gpt-4o"},{"name":"west","api_key":"'$K2'","deployment":"gpt-4o"},
 {"name":"seed","api_key":"'$K3'","deployment":"gpt-4o"},{"name":"down","api_key":"'$K1'","deployment":"gpt-4o","faults":[{"kind":"http503"}]}],
 "rules":[{"match":"'"$I"'","reply":"{\"intent\":\"data_question\"}"},{"match":"'"$S"'","reply":"```sql\nSELECT count(*) AS n FROM customers\n```"}],
 "default_reply":"There are 200 customers."}'
C=$T/config.json
export CONVBI_TEST_WEST_KEY=$K2
printf '{"endpoints":[{"name":"east","url":"http://127.0.0.1:%s","deployment":"gpt-4o","api_key":"%s"},{"name":"west","url":"http://127.0.0.1:%s","deployment":"gpt-4o","api_key_env":"CONVBI_TEST_WEST_KEY"},{"name":"down","url":"http://127.0.0.1:%s","deployment":"gpt-4o","api_key":"%s"}],"retry":{"deadline_ms":5000},"state":{"path":"%s/state"}}' \
  "$PORT_east" "$K1" "$PORT_west" "$PORT_down" "$K1" "$T" > "$C"
printf '{"endpoints":[{"name":"east","url":"http://127.0.0.1:%s","deployment":"gpt-4o","api_key":"%s"}],"retry":{"deadline_ms":3000},"state":{"path":"%s/state-bad"}}' \
  "$PORT_east" "$KBAD" "$T" > "$T/bad.json"
printf 'How many customers?\nHow many customers, again?\n' > "$T/questions.txt"
# a three-question evaluation set in BIRD's layout over the sample database
mkdir -p "$T/bird/dev_databases/shop" && cp "$SAMPLE_DB" "$T/bird/dev_databases/shop/shop.sqlite"
printf '[{"question_id":%d,"db_id":"shop","question":"How many customers? (%d)","evidence":"","SQL":"SELECT count(*) FROM customers","difficulty":"simple"}' 0 0 > "$T/bird/dev.json"
printf ',{"question_id":%d,"db_id":"shop","question":"How many customers? (%d)","evidence":"","SQL":"SELECT count(*) FROM customers","difficulty":"simple"}' 1 1 2 2 >> "$T/bird/dev.json"
printf ']\n' >> "$T/bird/dev.json"
run() { "$@" >>"$T/all.out" 2>>"$T/all.err"; echo "rc=$? $*" >> "$T/rcs"; }

run "$CONVBI" llm --config "$C" --json "hello"
run "$CONVBI" llm --config "$C" --stream "hello"
run "$CONVBI" llm --config "$T/bad.json" --json "hello"            # 401: the wrong key
run "$CONVBI" endpoints --config "$C" --json
run "$CONVBI" endpoints --config "$C"
run "$CONVBI" ask --config "$C" --db "$SAMPLE_DB" --json "How many customers?"
run "$CONVBI" ask --config "$C" --db "$SAMPLE_DB" -v --stream "How many customers?"
run "$CONVBI" ask --config "$T/bad.json" --db "$SAMPLE_DB" -v "How many customers?"
printf 'How many customers?\n.endpoints\n.history\n.quit\n' | run "$CONVBI" repl --config "$C" --db "$SAMPLE_DB" -v --history-file "$T/history"
run "$CONVBI" batch --config "$C" --db "$SAMPLE_DB" -j 2 --out "$T/batch.jsonl" -v "$T/questions.txt"
run "$CONVBI" batch --config "$C" --db "$SAMPLE_DB" --format csv --out "$T/batch.csv" "$T/questions.txt"
run "$CONVBI" batch --config "$T/bad.json" --db "$SAMPLE_DB" --out "$T/batch-bad.jsonl" "$T/questions.txt"
run "$CONVBI" eval --config "$C" --limit 3 --out "$T/eval.jsonl" -v "$T/bird"
# the seed's variables
env -u CONVBI_CONFIG AZURE_OPENAI_ENDPOINT_0="http://127.0.0.1:$PORT_seed" AZURE_OPENAI_DEPLOYMENT_NAME_0=gpt-4o \
  AZURE_OPENAI_API_KEY_0="$K3" AZURE_OPENAI_ENDPOINT_1="http://127.0.0.1:$PORT_down" AZURE_OPENAI_DEPLOYMENT_NAME_1=gpt-4o \
  AZURE_OPENAI_API_KEY_1="$K1" "$CONVBI" llm --json "from the environment" >>"$T/all.out" 2>>"$T/all.err"
env -u CONVBI_CONFIG AZURE_OPENAI_ENDPOINT_0="http://127.0.0.1:$PORT_down" AZURE_OPENAI_DEPLOYMENT_NAME_0=gpt-4o \
  AZURE_OPENAI_API_KEY_0="$K3" "$CONVBI" ask --db "$SAMPLE_DB" -v "all down" >>"$T/all.out" 2>>"$T/all.err"

grep -q "rc=0 $CONVBI llm --config $C --json" "$T/rcs" && ok "the key paths ran (llm ok)" || bad "llm failed: $(cat "$T/rcs")"
grep -q '"status":"EAUTH"' "$T/all.out" && ok "the wrong key was refused (EAUTH)" || bad "no EAUTH seen"
[ -s "$T/batch.jsonl" ] && [ -s "$T/eval.jsonl" ] && ok "result files were written" || bad "result files missing"
for f in "$T/all.out" "$T/all.err" "$T/batch.jsonl" "$T/batch.csv" "$T/batch-bad.jsonl" "$T/eval.jsonl" \
         "$T/history" "$T/state" "$T/requests.log"; do
  [ -e "$f" ] || continue
  if grep -a -q -E 'sk-convbi-SECRET' "$f"; then bad "a key appears in $(basename "$f")"; else ok "no key in $(basename "$f")"; fi
done
# the state files (one per endpoint set) hold no key either
for f in "$T"/state*; do grep -a -q 'sk-convbi-SECRET' "$f" && bad "a key in $f"; done
ok "no key in the state files"
finish
