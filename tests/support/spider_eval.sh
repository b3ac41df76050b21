# spider_eval.sh -- what the `convbi eval` tests over the Spider dev set
# share (sourced after tests/cli/lib.sh, not run): the oracle maps, the
# fake model that answers from them with two endpoints, and the verdicts
# of an --out file.  Used by tests/spider/test_eval.sh (SQLite) and
# tests/pg/test_pg_eval.sh (the PostgreSQL copies).
: "${SPIDER_DIR:?}" "${SOURCE_DIR:?}"

# make_maps MODE: writes $T/sql_map.json and $T/intent_map.json from
# dev.json and dev_gold.sql (tests/support/spider_maps.awk: each question's
# JSON string is the key, its gold SQL the "model's" reply; the counts must
# agree or the map is wrong and the test fails, never skips).  MODE
# "oracle" answers every question with its gold SQL, "subset" answers the
# questions with index % 10 == 3, 5, 7, 9 wrongly.
make_maps() {
	awk -v gold="$SPIDER_DIR/dev_gold.sql" -v mode="$1" -v sqlmap="$T/sql_map.json" -v intmap="$T/intent_map.json" \
		-f "$SOURCE_DIR/tests/support/spider_maps.awk" "$SPIDER_DIR/dev.json"
}

cat >"$T/scenario.json" <<'JSON'
{
 "endpoints": [{"name": "east", "api_key": "k", "deployment": "gpt-4o"},
               {"name": "west", "api_key": "k", "deployment": "gpt-4o"}],
 "rules": [
  {"match": "intent classifier[\\s\\S]*\\nUser message: ([^\\n]*)", "map_file": "intent_map.json",
   "default": "{\"intent\": \"data_question\", \"standalone_question\": \"\", \"reply\": \"\"}"},
  {"match": "SQL writer[\\s\\S]*\\nQuestion: ([^\\n]*)", "map_file": "sql_map.json", "default": "no map entry"},
  {"match": "answer writer", "reply": "Done."}
 ]
}
JSON

# restart_fake: (re)starts the server, which reads the maps once, and
# writes $T/config.json for its two endpoints.
restart_fake() {
	if [ -n "$FAKE_PID" ]; then kill "$FAKE_PID" && wait "$FAKE_PID" 2>/dev/null; fi
	rm -f "$T/ports"
	launch_fake "$T/scenario.json"
	local east west
	east=$(awk '$1 == "east" { print $2 }' "$T/ports")
	west=$(awk '$1 == "west" { print $2 }' "$T/ports")
	cat >"$T/config.json" <<JSON
{"endpoints": [
  {"name": "east", "kind": "azure", "url": "http://127.0.0.1:$east", "deployment": "gpt-4o", "api_version": "2024-10-21",
   "api_key": "k", "priority": 0, "weight": 1},
  {"name": "west", "kind": "azure", "url": "http://127.0.0.1:$west", "deployment": "gpt-4o", "api_version": "2024-10-21",
   "api_key": "k", "priority": 0, "weight": 1}],
 "retry": {"max_attempts": 6, "deadline_ms": 20000, "connect_timeout_ms": 1000, "first_byte_timeout_ms": 5000,
  "idle_timeout_ms": 5000},
 "state": {"path": "$T/state"}}
JSON
}

# verdicts FILE: "index db_id verdict" per --out line
verdicts() { sed -n 's/^{"index":\([0-9]*\),"db_id":"\([^"]*\)",.*"verdict":"\([a-z_]*\)".*/\1 \2 \3/p' "$1"; }
