#!/usr/bin/env bash
# test_batch_resume.sh -- `convbi batch --resume` after a crash.
#
# A run over 40 questions (the fake answers each call after 150 ms) is
# killed with SIGKILL part-way; a torn last line (what a crash in the middle
# of a write leaves) is appended by hand.  The rerun with --resume must cut
# the torn line off, skip every id already written, answer the rest, and
# leave every id exactly once, every line whole.  A second --resume has
# nothing to do.  The same for --format csv, with a record torn inside a
# quoted field.  Environment (from CTest): CONVBI FAKE_AOAI BUILD_DIR SAMPLE_DB.
. "$(dirname "$0")/lib.sh"
: "${CONVBI:?}" "${FAKE_AOAI:?}" "${BUILD_DIR:?}" "${SAMPLE_DB:?}"

cat >"$T/scenario.json" <<'EOF'
{
 "endpoints": [{"name": "east", "api_key": "k", "deployment": "gpt-4o", "latency_ms": 150}],
 "rules": [
  {"match": "intent classifier", "reply": "{\"intent\": \"data_question\", \"standalone_question\": \"\", \"reply\": \"\"}"},
  {"match": "SQL writer[\\s\\S]*\\nQuestion: Question number (\\d+)", "reply": "```sql\nSELECT $1 AS n, 'a, \"quoted\"\nvalue' AS t\n```"},
  {"match": "answer writer", "reply": "The answer is here, \"quoted\",\non two lines."}
 ]
}
EOF
launch_fake "$T/scenario.json"
PORT=$(awk '$1 == "east" { print $2 }' "$T/ports")
cat >"$T/config.json" <<EOF
{"endpoints": [{"name": "east", "kind": "azure", "url": "http://127.0.0.1:$PORT", "deployment": "gpt-4o",
  "api_version": "2024-10-21", "api_key": "k", "priority": 0, "weight": 1}],
 "retry": {"max_attempts": 6, "deadline_ms": 20000, "connect_timeout_ms": 1000, "first_byte_timeout_ms": 5000,
  "idle_timeout_ms": 5000},
 "state": {"path": "$T/state"}}
EOF
N=40
for i in $(seq $N); do echo "Question number $i"; done >"$T/questions.txt"

# wait_lines FILE N: until FILE has at least N lines (10 s at most)
wait_lines() {
	for _ in $(seq 200); do
		[ -f "$1" ] && [ "$(grep -c . "$1")" -ge "$2" ] && return 0
		sleep 0.05
	done
	return 1
}
# ids FILE: the id of every JSON line
ids() { sed -n 's/^{"id":\([0-9]*\),.*/\1/p' "$1"; }
# every_id_once FILE: ids 1..N each exactly once, and nothing else
every_id_once() { test "$(ids "$1" | sort -n | tr '\n' ' ')" = "$(seq -s ' ' $N) "; }
# all_whole FILE: every line is one JSON object
all_whole() { test "$(grep -c . "$1")" -eq "$(grep -c '^{"id":[0-9]*,.*}$' "$1")"; }

# ---- JSONL: kill -9 in the middle, then a torn line ---------------------------------------
OUT="$T/out.jsonl"
"$CONVBI" batch --db "$SAMPLE_DB" --config "$T/config.json" -j 2 --out "$OUT" "$T/questions.txt" 2>"$T/run1.err" &
RUN_PID=$!
check "the first run writes lines as it goes" wait_lines "$OUT" 6
{ kill -9 "$RUN_PID" && wait "$RUN_PID"; } 2>/dev/null
RUN_PID=
done1=$(grep -c . "$OUT")
check "the killed run left some ($done1) but not all lines" test "$done1" -ge 6 -a "$done1" -lt $N
check "the killed run left only whole lines" all_whole "$OUT"
missing=$(comm -13 <(ids "$OUT" | sort) <(seq $N | sort) | sort -n | tail -n1)
printf '{"id":%s,"question":"Question number %s","intent":"data_qu' "$missing" "$missing" >>"$OUT"
"$CONVBI" batch --db "$SAMPLE_DB" --config "$T/config.json" -j 4 --resume --out "$OUT" "$T/questions.txt" \
	>"$T/run2.out" 2>"$T/run2.err"
rc=$?
check "the resumed run exits 0 (got $rc)" test "$rc" -eq 0
check "it says how many were done" grep -q "resuming .*: $done1 of $N questions already answered" "$T/run2.err"
check "it drops the torn line" grep -q "dropped a torn last line" "$T/run2.err"
check "every id exactly once after resuming" every_id_once "$OUT"
check "every line whole after resuming" all_whole "$OUT"
check "the torn id was answered again" grep -q "^{\"id\":$missing,.*\"error\":null" "$OUT"
check "it asked only the missing questions" grep -q "$((N - done1)) of $((N - done1)) questions" "$T/run2.err"
before=$(cksum <"$OUT")
"$CONVBI" batch --db "$SAMPLE_DB" --config "$T/config.json" --resume --out "$OUT" "$T/questions.txt" 2>"$T/run3.err"
rc=$?
check "a complete output resumes to nothing (exit $rc)" test "$rc" -eq 0
check "and says so" grep -q "nothing to do" "$T/run3.err"
check "and leaves the file alone" test "$(cksum <"$OUT")" = "$before"

# ---- damage before the last line is not guessed at ------------------------------------------
cp "$OUT" "$T/damaged.jsonl"
sed -i '3s/.*/garbage/' "$T/damaged.jsonl"
"$CONVBI" batch --db "$SAMPLE_DB" --config "$T/config.json" --resume --out "$T/damaged.jsonl" "$T/questions.txt" \
	2>"$T/damaged.err"
rc=$?
check "a damaged middle line is a usage error (exit $rc)" test "$rc" -eq 2
check "naming the line" grep -q "damaged.jsonl:3: not a result line" "$T/damaged.err"

# ---- CSV: a record torn inside a quoted field --------------------------------------------------
CSV="$T/out.csv"
head -n 10 "$T/questions.txt" >"$T/ten.txt"
"$CONVBI" batch --db "$SAMPLE_DB" --config "$T/config.json" -j 4 --format csv --out "$CSV" "$T/ten.txt" 2>"$T/csv1.err"
rc=$?
check "the CSV run exits 0 (got $rc)" test "$rc" -eq 0
# cut the file inside the last record's quoted fields (which span lines)
last_id=$(grep -E '^[0-9]+,Question number' "$CSV" | tail -n 1 | cut -d, -f1)
size=$(wc -c <"$CSV")
truncate -s $((size - 30)) "$CSV"
"$CONVBI" batch --db "$SAMPLE_DB" --config "$T/config.json" --format csv --resume --out "$CSV" "$T/ten.txt" \
	2>"$T/csv2.err"
rc=$?
check "the CSV resume exits 0 (got $rc)" test "$rc" -eq 0
check "it drops the torn record" grep -q "dropped a torn last line" "$T/csv2.err"
check "it asks only the torn one again" grep -q "9 of 10 questions already answered" "$T/csv2.err"
check "one header" test "$(grep -c '^id,question,' "$CSV")" -eq 1
# records start with "<id>,Question number <id>," at the start of a line
check "every CSV id exactly once" test "$(sed -n 's/^\([0-9]*\),Question number \1,.*/\1/p' "$CSV" | sort -n | tr '\n' ' ')" = "$(seq -s ' ' 10) "
check "the torn id ($last_id) is whole again" grep -q "^$last_id,Question number $last_id,data_question," "$CSV"
check "10 records end in CRLF outside quotes" test "$(grep -c '[0-9]'$'\r''$' "$CSV")" -eq 10

# ---- a changed INPUT is not "already answered" (attack6 F6) ---------------------------------
# The output answers "Question number 1..N"; resumed with another question
# file (or this one with a line inserted, every later id shifted), it must
# not call those questions answered.
for i in $(seq $N); do echo "Other question $i"; done >"$T/other.txt"
JL=$T/out.jsonl
cp "$JL" "$T/out.before"
expect_code 2 "--resume with another question file" "$CONVBI" batch --db "$SAMPLE_DB" --config "$T/config.json" --resume --out "$JL" "$T/other.txt"
contains "$ERR" "answers \`Question number " "names the stored question"
contains "$ERR" "of INPUT is \`Other question " "and the INPUT's"
check "the output is unchanged" cmp -s "$JL" "$T/out.before"
{ echo "Question number 0"; cat "$T/questions.txt"; } >"$T/shifted.txt"
expect_code 2 "--resume after a line was inserted in INPUT" "$CONVBI" batch --db "$SAMPLE_DB" --config "$T/config.json" --resume --out "$JL" "$T/shifted.txt"
expect_code 2 "--resume of the CSV with another question file" "$CONVBI" batch --db "$SAMPLE_DB" --config "$T/config.json" --format csv --rows "$T/rows-other" --resume --out "$CSV" "$T/other.txt"
contains "$ERR" "of INPUT is \`Other question " "the CSV too"

finish
