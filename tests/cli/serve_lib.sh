# serve_lib.sh -- driving a `convbi serve` child from a shell test (sourced
# after lib.sh, not run): start it on a free port, send requests with curl,
# check statuses.  $C is the convbi config it starts with.

# serve_start LOG ARGS... -- starts convbi serve on a free port; sets SV and SV_PID.
serve_start() {
  local log=$1; shift
  "$CONVBI" serve --listen 127.0.0.1:0 --config "$C" "$@" 2>"$log" &
  SV_PID=$!
  RUN_PID=$SV_PID
  local port=""
  for _ in $(seq 200); do
    port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { bad "serve did not start: $(cat "$log")"; finish; exit 1; }
  SV=http://127.0.0.1:$port
}
serve_stop() { kill -TERM "$SV_PID" 2>/dev/null; wait "$SV_PID" 2>/dev/null; RUN_PID=""; }
# req METHOD PATH [curl args...] -- body in $BODY, status in $CODE, headers in
# $HDRS; every body and header set is also appended to $ALL.
ALL=""
req() {
  local m=$1 p=$2; shift 2
  CODE=$(curl -s -o "$T/body" -D "$T/hdrs" -w '%{http_code}' -X "$m" "$@" "$SV$p")
  BODY=$(cat "$T/body"); HDRS=$(cat "$T/hdrs")
  ALL="$ALL$BODY$HDRS"
}
is() { [ "$CODE" = "$1" ] && ok "$2 ($CODE)" || bad "$2: HTTP $CODE, wanted $1: ${BODY:0:300}"; }
