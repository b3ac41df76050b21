#!/usr/bin/env bash
# test_llm_faults.sh -- the fault matrix through `convbi llm` (separate
# processes sharing the state file): each fault on one of two endpoints is
# survived, plain and streaming, with the content whole; on both, the call
# fails with exit 1, one line on stderr, and a JSON error naming its class.
. "$(dirname "$0")/lib.sh"
REPLY="The whole reply, in several stream chunks, ends with this sentence."
K1=k-llmf-a-5e7c9a1b3d; K2=k-llmf-b-2f4a6c8e0b
faults=(
  '{"kind":"http500","count":1}' '{"kind":"http503"}' '{"kind":"reset"}' '{"kind":"hang"}'
  '{"kind":"slow_first_token","delay_ms":3000}' '{"kind":"stream_cut","after_chunks":3}'
  '{"kind":"stream_stall","after_chunks":3}' '{"kind":"malformed_chunk","after_chunks":2}'
  '{"kind":"http401"}' '{"kind":"http404"}' '{"kind":"rate_limit","retry_after_s":20}' '{"kind":"daily_quota"}'
)
# the class expected when every endpoint has the fault ("ok": the fault passes; a|b: either)
classes=(ok server_error transport timeout timeout stream_error timeout "stream_error|protocol" auth "not_found|auth" rate_limited rate_limited)
for i in "${!faults[@]}"; do
  f=${faults[$i]}
  for where in one both; do
    fb='[]'; [ $where = both ] && fb="[$f]"
    [ -n "$FAKE_PID" ] && { kill "$FAKE_PID"; wait "$FAKE_PID" 2>/dev/null; }
    rm -f "$T/state"
    start_fake '{"endpoints":[{"name":"a","api_key":"'$K1'","deployment":"gpt-4o","faults":['"$f"']},{"name":"b","api_key":"'$K2'","deployment":"gpt-4o","faults":'"$fb"'}],"default_reply":"'"$REPLY"'"}'
    write_config "$T/c.json" a:$K1 b:$K2
    sed -i 's/"deadline_ms":10000,"first_byte_timeout_ms":2000,"idle_timeout_ms":1000/"deadline_ms":4000,"first_byte_timeout_ms":500,"idle_timeout_ms":400/' "$T/c.json"
    for mode in "" --stream; do
      start=$(date +%s%N)
      "$CONVBI" llm --config "$T/c.json" --json $mode "hello" >"$T/o" 2>"$T/e"; rc=$?
      ms=$(( ($(date +%s%N) - start) / 1000000 ))
      o=$(cat "$T/o"); e=$(cat "$T/e")
      tag="${f} on $where ${mode:-plain}"
      if [ $where = one ] || [ "${classes[$i]}" = ok ]; then
        [ $rc = 0 ] && case "$o" in *"\"content\":\"$REPLY\""*) true;; *) false;; esac && ok "$tag: answered whole" || bad "$tag: rc $rc $o $e"
      else
        cls=$(printf '%s' "$o" | sed -n 's/.*"error_class":"\([a-z_]*\)".*/\1/p')
        [ $rc = 1 ] && [ "$(printf '%s\n' "$e" | wc -l)" = 1 ] && [[ "$cls" =~ ^(${classes[$i]})$ ]] &&
          ok "$tag: one clean error (${classes[$i]})" || bad "$tag: rc $rc, want 1 and class ${classes[$i]}: $o / $e"
      fi
      [ "$ms" -lt 5500 ] || bad "$tag: took $ms ms, past the 4 s deadline"
      case "$o$e" in *k-llmf-*) bad "$tag: a key leaked";; esac
    done
  done
done
# ---- a fail-over is shown as it happens, naming where the call goes next ----------------------
[ -n "$FAKE_PID" ] && { kill "$FAKE_PID"; wait "$FAKE_PID" 2>/dev/null; }
rm -f "$T/state"
start_fake '{"endpoints":[{"name":"a","api_key":"'$K1'","deployment":"gpt-4o","faults":[{"kind":"http503"}]},{"name":"b","api_key":"'$K2'","deployment":"gpt-4o"}],"default_reply":"'"$REPLY"'"}'
write_config "$T/c.json" a:$K1 b:$K2
sed -i 's/"api_key":"'$K2'"}/"api_key":"'$K2'","priority":1}/' "$T/c.json"   # a is tried first
"$CONVBI" llm --config "$T/c.json" -v "hello" >"$T/o" 2>"$T/e"; rc=$?
[ $rc = 0 ] && grep -q "$REPLY" "$T/o" && ok "fail-over: answered by b" || bad "fail-over: rc $rc $(cat "$T/o" "$T/e")"
grep -q '^convbi: a: .*503.*; retrying on b$' "$T/e" && ok "-v says a failed and the call goes on to b" ||
  bad "no 'a: ...; retrying on b' line: $(cat "$T/e")"

# ---- transport failures are told in plain words, never libcurl's ----------------------------
[ -n "$FAKE_PID" ] && { kill "$FAKE_PID"; wait "$FAKE_PID" 2>/dev/null; }
rm -f "$T/state"
start_fake '{"endpoints":[{"name":"a","api_key":"'$K1'","deployment":"gpt-4o","faults":[{"kind":"stream_cut","after_chunks":2,"count":1}]},{"name":"b","api_key":"'$K2'","deployment":"gpt-4o","faults":[{"kind":"reset"}]}],"default_reply":"'"$REPLY"'"}'
write_config "$T/c.json" a:$K1
"$CONVBI" llm --config "$T/c.json" -v --stream "hello" >"$T/o" 2>"$T/e"
contains "$(cat "$T/e")" 'a: the stream was cut before its end (the endpoint closed the connection mid-reply)' "a cut stream is told in plain words"
write_config "$T/c.json" b:$K2; rm -f "$T/state"
"$CONVBI" llm --config "$T/c.json" "hello" >"$T/o" 2>"$T/e"
contains "$(cat "$T/e")" 'reset: the connection broke before a reply' "a reset connection too"
sed 's|"url":"[^"]*"|"url":"http://127.0.0.1:1"|' "$T/c.json" > "$T/closed.json"; rm -f "$T/state"
"$CONVBI" llm --config "$T/closed.json" "hello" >"$T/o" 2>"$T/e"
contains "$(cat "$T/e")" 'connect: the endpoint refused the connection or could not be reached (http://127.0.0.1:1)' "and a refused connection"
for f in e o; do
  for w in 'Transferred a partial file' 'Failure when receiving' "Couldn't connect" 'Server returned nothing'; do
    lacks "$(cat "$T/$f")" "$w" "no libcurl wording ($w) in std$([ $f = e ] && echo err || echo out)"
  done
done
finish
