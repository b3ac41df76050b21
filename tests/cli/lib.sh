# lib.sh -- shared harness of the CLI tests (sourced, not run): a scratch
# dir $T under $BUILD_DIR/scratch removed at exit (kept with KEEP_SCRATCH
# or on failure), the fake Azure OpenAI server, a convbi config for it,
# and assertions that count.  The last line of every test is finish's
# "N passed, N failed", which is also what CI reads.
set -u
: "${CONVBI:?}" "${FAKE_AOAI:?}" "${BUILD_DIR:?}"
mkdir -p "$BUILD_DIR/scratch"
T=$(mktemp -d "$BUILD_DIR/scratch/$(basename "$0" .sh).XXXXXX")
FAKE_PID=""
RUN_PID=""   # a convbi run a test may have in the background
FAILS=0
PASSES=0
cleanup() {
  [ -n "$RUN_PID" ] && kill -9 "$RUN_PID" 2>/dev/null
  [ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null && wait "$FAKE_PID" 2>/dev/null
  [ -z "${KEEP_SCRATCH:-}" ] && rm -rf "$T"
}
trap cleanup EXIT

# launch_fake FILE -- starts the server on a scenario file (relative
# map_file paths resolve next to it); sets PORT_<name> for each endpoint.
launch_fake() {
  rm -f "$T/ports"
  "$FAKE_AOAI" --scenario "$1" --port-file "$T/ports" --log "$T/requests.log" >"$T/fake.out" 2>&1 &
  FAKE_PID=$!
  for _ in $(seq 200); do [ -s "$T/ports" ] && break; sleep 0.05; done
  [ -s "$T/ports" ] || { echo "FAIL: the fake server did not start: $(cat "$T/fake.out")" >&2; exit 1; }
  while read -r name port; do eval "PORT_$name=$port"; done < "$T/ports"
}
# start_fake SCENARIO_JSON -- the same from text.
start_fake() {
  printf '%s' "$1" > "$T/scenario.json"
  launch_fake "$T/scenario.json"
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

# launch_map_fake -- the fake as a model that classifies every question as
# a data question, writes the SQL $T/sql_map.json maps the question to
# ("SELECT 1 AS one" when it has none) and answers "Here is the answer.";
# one endpoint `a` (key k-a) and its config in $T/config.json.
launch_map_fake() {
  cat >"$T/scenario.json" <<'JSON'
{
 "endpoints": [{"name": "a", "api_key": "k-a", "deployment": "gpt-4o"}],
 "rules": [
  {"match": "intent classifier", "reply": "{\"intent\": \"data_question\", \"standalone_question\": \"\", \"reply\": \"\"}"},
  {"match": "SQL writer[\\s\\S]*\\nQuestion: ([^\\n]*)", "map_file": "sql_map.json", "default": "```sql\nSELECT 1 AS one\n```"},
  {"match": "answer writer", "reply": "Here is the answer."}
 ]
}
JSON
  launch_fake "$T/scenario.json"
  write_config "$T/config.json" a:k-a
}

ok()    { PASSES=$((PASSES+1)); echo "ok - $1"; }
bad()   { FAILS=$((FAILS+1)); echo "FAIL - $1" >&2; }
fail()  { bad "$@"; }
# check DESC COMMAND... -- passes when COMMAND succeeds.
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
# expect_code WANT DESC CMD... -- runs CMD, output in $OUT/$ERR, checks exit.
expect_code() {
  local want=$1 desc=$2; shift 2
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  OUT=$(cat "$T/out"); ERR=$(cat "$T/err")
  if [ "$rc" = "$want" ]; then ok "$desc (exit $rc)"; else bad "$desc: exit $rc, wanted $want; stderr: $ERR"; fi
}
contains() { case "$1" in *"$2"*) ok "$3";; *) bad "$3: missing [$2] in: ${1:0:400}";; esac; }
lacks()    { case "$1" in *"$2"*) bad "$3: found [$2]";; *) ok "$3";; esac; }
finish() {
  echo "$PASSES passed, $FAILS failed"
  [ "$FAILS" = 0 ] || { echo "scratch kept in $T" >&2; KEEP_SCRATCH=1; }
  [ "$FAILS" = 0 ]
}
