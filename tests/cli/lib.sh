# lib.sh -- shared helpers for the CLI tests: a scratch dir, the fake Azure
# OpenAI server, a convbi config for it, and assertions.  Sourced, not run.
set -u
T=$(mktemp -d "${BUILD_DIR:-/tmp}/scratch/cli.XXXXXX")
FAKE_PID=""
FAILS=0
PASSES=0
cleanup() { [ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null; wait 2>/dev/null; [ -z "${KEEP_SCRATCH:-}" ] && rm -rf "$T"; }
trap cleanup EXIT

# start_fake SCENARIO_JSON -- starts the server; sets PORT_<name> variables.
start_fake() {
  printf '%s' "$1" > "$T/scenario.json"
  "$FAKE_AOAI" --scenario "$T/scenario.json" --port-file "$T/ports" --log "$T/requests.log" 2>"$T/fake.err" &
  FAKE_PID=$!
  for _ in $(seq 100); do [ -s "$T/ports" ] && break; sleep 0.05; done
  [ -s "$T/ports" ] || { echo "fake server did not start: $(cat "$T/fake.err")"; exit 1; }
  while read -r name port; do eval "PORT_$name=$port"; done < "$T/ports"
}

# write_config FILE NAME:KEY ... -- a config with azure endpoints on the fake.
write_config() {
  local file=$1; shift
  local sep="" eps=""
  for spec in "$@"; do
    local name=${spec%%:*} key=${spec#*:}
    local port; eval "port=\$PORT_$name"
    eps="$eps$sep{\"name\":\"$name\",\"kind\":\"azure\",\"url\":\"http://127.0.0.1:$port\",\"deployment\":\"gpt-4o\",\"api_key\":\"$key\"}"
    sep=","
  done
  printf '{"endpoints":[%s],"retry":{"deadline_ms":10000,"first_byte_timeout_ms":2000,"idle_timeout_ms":1000},"state":{"path":"%s/state"}}' "$eps" "$T" > "$file"
}

ok()   { PASSES=$((PASSES+1)); echo "ok - $1"; }
bad()  { FAILS=$((FAILS+1)); echo "FAIL - $1"; }
# expect_code WANT DESC CMD... -- runs CMD, output in $OUT/$ERR, checks exit.
expect_code() {
  local want=$1 desc=$2; shift 2
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  OUT=$(cat "$T/out"); ERR=$(cat "$T/err")
  if [ "$rc" = "$want" ]; then ok "$desc (exit $rc)"; else bad "$desc: exit $rc, wanted $want; stderr: $ERR"; fi
}
contains() { case "$1" in *"$2"*) ok "$3";; *) bad "$3: missing [$2] in: ${1:0:400}";; esac; }
lacks()    { case "$1" in *"$2"*) bad "$3: found [$2]";; *) ok "$3";; esac; }
finish()   { echo "$PASSES passed, $FAILS failed"; [ "$FAILS" = 0 ]; }
