#!/usr/bin/env bash
# test_pg_eval.sh -- `convbi eval` with an oracle model on the PostgreSQL
# copies of the Spider dev databases (labels spider and pg).
#
# The same oracle maps as tests/spider/test_eval.sh (the "model" writes each
# question's gold SQL), with --db 'postgresql://.../{db_id}' so every
# question runs on the database's PostgreSQL copy, loaded at test time by
# the pg_spider fixture.  Gold SQL that is not valid PostgreSQL (SQLite's
# dialect) is a gold failure there; every other question must be correct,
# so EX is 100 % of the runnable questions, and no password appears in any
# output.
# Environment (from CTest): CONVBI FAKE_AOAI BUILD_DIR SPIDER_DIR SOURCE_DIR.
. "$(dirname "$0")/../cli/lib.sh"
: "${CONVBI:?}" "${FAKE_AOAI:?}" "${BUILD_DIR:?}" "${SPIDER_DIR:?}"
. "$BUILD_DIR/scratch/pg-spider/env" || { echo "FAIL: no pg_spider fixture env" >&2; exit 1; }

# ---- the maps ------------------------------------------------------------------------------
# dev.json is Spider's own pretty-printed file: each question sits on one
# line `        "question": "<JSON string>",` (non-ASCII as \u escapes), in
# the order of dev_gold.sql's `SQL<TAB>db_id` lines.  The JSON string is
# copied as the map key; the gold SQL is escaped for JSON.  The counts must
# agree or the map is wrong (and the test fails, never skips).
# make_maps MODE: writes $T/sql_map.json and $T/intent_map.json; MODE
# "oracle" answers every question with its gold SQL, "subset" answers the
# questions with index % 10 == 3, 5, 7, 9 wrongly (see expected()).
make_maps() {
	awk -v gold="$SPIDER_DIR/dev_gold.sql" -v mode="$1" -v sqlmap="$T/sql_map.json" -v intmap="$T/intent_map.json" \
		-f "$SOURCE_DIR/tests/support/spider_maps.awk" "$SPIDER_DIR/dev.json"
}

cat >"$T/scenario.json" <<'EOF'
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
EOF
# restart_fake: (re)starts the server, which reads the maps once
restart_fake() {
	if [ -n "$FAKE_PID" ]; then kill "$FAKE_PID" && wait "$FAKE_PID" 2>/dev/null; fi
	rm -f "$T/ports"
	launch_fake "$T/scenario.json"
	local east west
	east=$(awk '$1 == "east" { print $2 }' "$T/ports")
	west=$(awk '$1 == "west" { print $2 }' "$T/ports")
	cat >"$T/config.json" <<EOF
{"endpoints": [
  {"name": "east", "kind": "azure", "url": "http://127.0.0.1:$east", "deployment": "gpt-4o", "api_version": "2024-10-21",
   "api_key": "k", "priority": 0, "weight": 1},
  {"name": "west", "kind": "azure", "url": "http://127.0.0.1:$west", "deployment": "gpt-4o", "api_version": "2024-10-21",
   "api_key": "k", "priority": 0, "weight": 1}],
 "retry": {"max_attempts": 6, "deadline_ms": 20000, "connect_timeout_ms": 1000, "first_byte_timeout_ms": 5000,
  "idle_timeout_ms": 5000},
 "state": {"path": "$T/state"}}
EOF
}
# verdicts FILE: "index db_id verdict" per --out line
verdicts() { sed -n 's/^{"index":\([0-9]*\),"db_id":"\([^"]*\)",.*"verdict":"\([a-z_]*\)".*/\1 \2 \3/p' "$1"; }

make_maps oracle || { echo "FAIL: cannot build the oracle map" >&2; exit 1; }
restart_fake

"$CONVBI" eval --config "$T/config.json" -j 4 --db "$PG_URI_BASE/{db_id}" --out "$T/full.jsonl" "$SPIDER_DIR" \
	>"$T/full.txt" 2>"$T/full.err"
rc=$?
check "eval on the PostgreSQL copies exits 0 (got $rc)" test "$rc" -eq 0
cat "$T/full.txt" | grep -E '^(EX|outcomes)'
check "EX is 100% of the runnable questions" grep -qE '^EX 100.00% \(([0-9]+)/\1 runnable' "$T/full.txt"
runnable=$(sed -nE 's/^EX 100.00% \(([0-9]+)\/.*/\1/p' "$T/full.txt")
check "most questions are runnable on PostgreSQL ($runnable)" test "${runnable:-0}" -ge 648  # two thirds of the 972; 695 when written
check "only correct answers and gold failures" \
	test "$(verdicts "$T/full.jsonl" | awk '$3 != "correct" && $3 != "gold_failure"' | wc -l)" -eq 0
check "no password in the output" bash -c "! grep -aq owner-secret '$T/full.txt' '$T/full.err' '$T/full.jsonl'"
finish
