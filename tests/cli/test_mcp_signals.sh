#!/usr/bin/env bash
# test_mcp_signals.sh -- `convbi mcp` on SIGTERM and SIGINT (attack5 F11):
# the call in flight is canceled and answered (a tool result with isError,
# ECANCELED) before the process exits -- 0 after SIGTERM, 130 after SIGINT.
. "$(dirname "$0")/lib.sh"
cat >"$T/sql_map.json" <<'JSON'
{"slow": "```sql\nWITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) AS n FROM c\n```"}
JSON
launch_map_fake
C=$T/config.json
INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}'
ASK='{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"ask","arguments":{"question":"slow"}}}'

# signal SIG WANT: asks "slow" (its SQL runs until a 60 s timeout), sends
# SIG once the SQL runs, and checks the reply to id 2 and the exit code
signal() {
  local sig=$1 want=$2
  rm -f "$T/in" && mkfifo "$T/in"
  "$CONVBI" mcp --config "$C" --db shop="$SAMPLE_DB" --sql-timeout-ms 60000 --question-timeout-ms 60000 \
    <"$T/in" >"$T/out.$sig" 2>"$T/err.$sig" &
  local pid=$!
  RUN_PID=$pid
  exec 3>"$T/in"
  printf '%s\n%s\n' "$INIT" "$ASK" >&3
  for _ in $(seq 200); do grep -q 'answer writer\|SQL writer' "$T/requests.log" 2>/dev/null && break; sleep 0.05; done
  sleep 0.5 # the SQL runs
  local t0; t0=$(date +%s%N)
  kill -"$sig" "$pid"
  wait "$pid"; local rc=$?
  local ms=$((($(date +%s%N) - t0) / 1000000))
  exec 3>&-
  RUN_PID=""
  [ "$rc" = "$want" ] && ok "SIG$sig: exit $rc" || bad "SIG$sig: exit $rc, wanted $want: $(cat "$T/err.$sig")"
  [ "$ms" -lt 10000 ] && ok "SIG$sig: ends at once ($ms ms)" || bad "SIG$sig: took $ms ms"
  local r; r=$(grep '"id":2' "$T/out.$sig")
  contains "$r" '"isError":true' "SIG$sig: the call in flight is answered, as an error"
  contains "$r" 'ECANCELED' "SIG$sig: canceled"
  contains "$(cat "$T/err.$sig")" "1 call(s) in flight canceled and answered" "SIG$sig: the log says so"
  : > "$T/requests.log"
}
signal TERM 0
signal INT 130
finish
