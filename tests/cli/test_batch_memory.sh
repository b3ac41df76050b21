#!/usr/bin/env bash
# test_batch_memory.sh -- what `convbi batch` holds per INPUT question, and
# the INPUT shapes its compact form must still read right.
#
# Memory: a 1,000,000-line text INPUT (34 MB) and a 1,000,000-line JSONL
# INPUT with ids and sessions (82 MB), run against an endpoint nobody
# listens on; once the run has begun asking (its --out exists) the peak
# resident memory (VmHWM) must be within 3x the file's size.  The bound is
# generous: measured 57 MB and 132 MB, the process's own 15 MB included;
# before INPUT's strings stayed in its text, 295 MB and 365 MB.
# Shapes (against the fake): escapes decoded over their line, number ids
# and sessions whose text is longer than the line's JSON (kept aside),
# a line-number id that another line's `id` took, a session that changes
# its database, blank lines and --resume on a text INPUT (ids are line
# numbers), sessions interleaved.
# --resume reads the output back a chunk at a time: over 1,000,000 lines
# (100 MB) it holds no more than the INPUT run did; records across chunk
# boundaries, CSV records with line breaks, torn last lines cut.
# Environment (from CTest): CONVBI FAKE_AOAI BUILD_DIR SAMPLE_DB MEASURE.
. "$(dirname "$0")/lib.sh"
: "${SAMPLE_DB:?}" "${MEASURE:?}"

# ---- the peak memory of a big INPUT ------------------------------------------------------------
printf '{"endpoints":[{"name":"dead","kind":"azure","url":"http://127.0.0.1:1","deployment":"gpt-4o","api_key":"k-dead"}],"state":{"path":"%s/state"}}' "$T" >"$T/dead.json"
awk 'BEGIN { for (i = 1; i <= 1000000; i++) printf "How many customers in city %d?\n", i }' >"$T/big.txt"
awk 'BEGIN { for (i = 1; i <= 1000000; i++) printf "{\"id\":\"q%d\",\"session\":\"s%d\",\"question\":\"How many customers in city %d?\"}\n", i, i / 3, i }' >"$T/big.jsonl"

# peak INPUT -- runs batch on INPUT until it has begun asking, then two
# Ctrl-C; sets HWM (kB) and RC
peak() {
	rm -f "$T/big.out"
	"$CONVBI" batch --config "$T/dead.json" --db "$SAMPLE_DB" -j 1 --out "$T/big.out" "$1" 2>"$T/big.err" &
	RUN_PID=$!
	for _ in $(seq 2400); do
		[ -e "$T/big.out" ] && break
		kill -0 "$RUN_PID" 2>/dev/null || break
		sleep 0.05
	done
	HWM=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB$/\1/p' "/proc/$RUN_PID/status" 2>/dev/null)
	kill -INT "$RUN_PID" 2>/dev/null
	sleep 0.2
	kill -INT "$RUN_PID" 2>/dev/null
	wait "$RUN_PID"
	RC=$?
	RUN_PID=""
}
for f in big.txt big.jsonl; do
	peak "$T/$f"
	size_kb=$(($(stat -c %s "$T/$f") / 1024))
	limit=$((3 * size_kb))
	# instrumented builds (CONVBI_VALGRIND): shadow memory and ASan's quarantine (256 MB of freed
	# blocks, the arrays' old copies among them)
	[ -n "${CONVBI_VALGRIND:-}" ] && limit=$((2 * limit + 512 * 1024))
	check "$f: the run began asking and stopped at Ctrl-C (exit $RC)" test "$RC" = 130
	if [ -n "$HWM" ] && [ "$HWM" -le "$limit" ]; then
		ok "$f: peak memory ${HWM} kB <= ${limit} kB (3x its ${size_kb} kB)"
	else
		bad "$f: peak memory ${HWM:-?} kB > ${limit} kB (3x its ${size_kb} kB); $(tail -n 3 "$T/big.err")"
	fi
done

# --resume reads the output a chunk at a time, never whole: 1,000,000 answered lines (100 MB, lines
# across every chunk boundary) and a torn last line; then a CSV output whose quoted fields hold
# line breaks (CRLF records across chunk boundaries), with --limit
awk 'BEGIN { for (i = 1; i <= 1000000; i++) printf "{\"id\":%d,\"question\":\"How many customers in city %d?\",\"answer\":\"There are 200.\",\"error\":null}\n", i, i; printf "{\"id\":1000001,\"quest" }' >"$T/big.out"
size=$(stat -c %s "$T/big.out")
mkdir -p "$T/tmp"
expect_code 0 "--resume over 1,000,000 answered lines" "$MEASURE" "$T/tmp" "$T/m" -- "$CONVBI" batch --config "$T/dead.json" --db "$SAMPLE_DB" --resume --out "$T/big.out" "$T/big.txt"
contains "$ERR" "1000000 of 1000000 questions already answered, 0 to go" "finds every id"
contains "$ERR" "dropped a torn last line (20 bytes)" "cuts the torn last line"
check "the file ends at the last whole line" test "$(stat -c %s "$T/big.out")" = $((size - 20))
rss=$(sed -n 's/.*rss_kb=\([0-9]*\).*/\1/p' "$T/m")
limit=$((3 * $(stat -c %s "$T/big.txt") / 1024))
[ -n "${CONVBI_VALGRIND:-}" ] && limit=$((2 * limit + 512 * 1024))
if [ -n "$rss" ] && [ "$rss" -le "$limit" ]; then ok "peak memory ${rss} kB <= ${limit} kB: the output is not held"; else bad "peak memory ${rss:-?} kB > ${limit} kB ($(cat "$T/m"))"; fi
awk 'BEGIN { printf "id,question,intent,sql,answer,error,error_class,elapsed_ms,cost_usd\r\n"
	for (i = 1; i <= 20000; i++) printf "%d,How many customers in city %d?,data_question,\"SELECT\ncount(*)\",\"There are\r\n\"\"200\"\", %060d.\",,,5,0.000000\r\n", i, i, i
	printf "20001,How many customers in city 20001?,data_question,\"SELECT\n" }' >"$T/big.csv"
size=$(stat -c %s "$T/big.csv")
expect_code 0 "--resume over a CSV of multi-line records" "$CONVBI" batch --config "$T/dead.json" --db "$SAMPLE_DB" --format csv --limit 20000 --resume --out "$T/big.csv" "$T/big.txt"
contains "$ERR" "20000 of 20000 questions already answered, 0 to go" "finds every id"
check "the file ends at the last whole record" test "$(stat -c %s "$T/big.csv")" = $((size - 62))
rm -f "$T/big.txt" "$T/big.jsonl" "$T/big.out" "$T/big.csv"

# ---- shapes of INPUT ----------------------------------------------------------------------------
echo "{}" >"$T/sql_map.json"
launch_map_fake
C=$T/config.json
run() { expect_code "$@"; }

# escapes and number ids/sessions: a number's text (1e-7 -> 9.9999999999999995e-08) may be longer
# than the JSON it came from
printf '%s\n' \
	'{"id":1e-7,"session":1e15,"question":"Say \"hi\"\n\u00e9"}' \
	'{"question":"Q two","id":"t\u0041b\\","session":0.1}' \
	'{"session":1e15,"question":"Q three"}' \
	'{"session":0.1,"db":"'"$SAMPLE_DB"'","question":"Q four","id":2.5}' >"$T/shapes.jsonl"
run 2 "a session that changes its database" "$CONVBI" batch --config "$C" --db "$SAMPLE_DB" --out "$T/s.out" "$T/shapes.jsonl"
contains "$ERR" "shapes.jsonl:4: session \`0.10000000000000001\` uses database \`(--db)\` since line 2; a session keeps one database" \
	"names the session, its database and its first line"
sed -i '4d' "$T/shapes.jsonl"
run 0 "number ids and sessions, escapes" "$CONVBI" batch --config "$C" --db "$SAMPLE_DB" --out "$T/s.out" "$T/shapes.jsonl"
contains "$(cat "$T/s.out")" '{"id":9.9999999999999995e-08,"session":1000000000000000,"question":"Say \"hi\"\né",' "a number id and session as JSON numbers, the question decoded"
contains "$(cat "$T/s.out")" '{"id":"tAb\\","session":0.10000000000000001,"question":"Q two",' "a string id decoded, a number session"
contains "$(cat "$T/s.out")" '{"id":3,"session":1000000000000000,"question":"Q three",' "the line number as id"
check "line 3's prompts carry line 1, its session's first question" bash -c "grep -F 'Q three' '$T/requests.log' | grep -qF 'Say'"
check "line 2's carry no other session's question" bash -c "! grep -F 'Q two' '$T/requests.log' | grep -qF 'Say'"

printf '%s\n' '{"id":3,"question":"Q one"}' '{"question":"Q two"}' '{"question":"Q three"}' >"$T/taken.jsonl"
run 2 "a line number taken as another line's id" "$CONVBI" batch --config "$C" --db "$SAMPLE_DB" --out "$T/t.out" "$T/taken.jsonl"
contains "$ERR" "taken.jsonl:3: id \`3\` is already used on line 1; give every line its own id" "names both lines"

# a text INPUT with blank lines: ids are line numbers, --resume finds them
printf '  Q one  \n\n\tQ three\r\n\nQ five' >"$T/blank.txt"
run 0 "a text INPUT with blank lines" "$CONVBI" batch --config "$C" --db "$SAMPLE_DB" --out "$T/b.out" "$T/blank.txt"
check "ids 1, 3 and 5, questions trimmed" test "$(sed -n 's/^{"id":\([0-9]*\),"question":"\([^"]*\)".*/\1=\2/p' "$T/b.out" | sort | tr '\n' ' ')" = "1=Q one 3=Q three 5=Q five "
sed -i '/"id":3,/d' "$T/b.out"
n0=$(grep -c "SQL writer" "$T/requests.log")
run 0 "--resume on it" "$CONVBI" batch --config "$C" --db "$SAMPLE_DB" --resume --out "$T/b.out" "$T/blank.txt"
contains "$ERR" "2 of 3 questions already answered, 1 to go" "finds ids 1 and 5"
check "asks only line 3 again" test "$(($(grep -c "SQL writer" "$T/requests.log") - n0))" = 1
check "which is back in the output" grep -q '^{"id":3,"question":"Q three"' "$T/b.out"

finish
