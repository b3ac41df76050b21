#!/usr/bin/env bash
# test_batch_signal.sh -- Ctrl-C (SIGINT) during `convbi batch`.
#
# One SIGINT: no new question starts, the ones in flight finish and are
# written -- so the questions the fake server saw and the lines written are
# the same set -- and the exit code is 130.  Two SIGINTs: the questions in
# flight are canceled and not written.  After either, --resume answers the
# rest and every id is there exactly once.
# Environment (from CTest): CONVBI FAKE_AOAI BUILD_DIR SAMPLE_DB.
. "$(dirname "$0")/lib.sh"
: "${CONVBI:?}" "${FAKE_AOAI:?}" "${BUILD_DIR:?}" "${SAMPLE_DB:?}"

# Two endpoints: "quick" answers after 300 ms, "slow" after 2 s.
cat >"$T/scenario.json" <<'EOF'
{
 "endpoints": [{"name": "quick", "api_key": "k", "deployment": "gpt-4o", "latency_ms": 300},
               {"name": "slow", "api_key": "k", "deployment": "gpt-4o", "latency_ms": 2000}],
 "rules": [
  {"match": "intent classifier", "reply": "{\"intent\": \"data_question\", \"standalone_question\": \"\", \"reply\": \"\"}"},
  {"match": "SQL writer[\\s\\S]*\\nQuestion: Question number (\\d+)", "reply": "```sql\nSELECT $1 AS n\n```"},
  {"match": "answer writer", "reply": "Done."}
 ]
}
EOF
launch_fake "$T/scenario.json"
config() {
	local port
	port=$(awk -v n="$1" '$1 == n { print $2 }' "$T/ports")
	cat >"$2" <<EOF
{"endpoints": [{"name": "$1", "kind": "azure", "url": "http://127.0.0.1:$port", "deployment": "gpt-4o",
  "api_version": "2024-10-21", "api_key": "k", "priority": 0, "weight": 1}],
 "retry": {"max_attempts": 6, "deadline_ms": 30000, "connect_timeout_ms": 1000, "first_byte_timeout_ms": 10000,
  "idle_timeout_ms": 10000},
 "state": {"path": "$T/state-$1"}}
EOF
}
config quick "$T/quick.json"
config slow "$T/slow.json"
N=30
for i in $(seq $N); do echo "Question number $i"; done >"$T/questions.txt"

wait_for() { # SECONDS COMMAND...: until COMMAND succeeds
	local n=$(($1 * 20))
	shift
	for _ in $(seq $n); do "$@" && return 0; sleep 0.05; done
	return 1
}
lines_at_least() { [ -f "$1" ] && [ "$(grep -c . "$1")" -ge "$2" ]; }
# new_log: the request log lines since mark_log
mark_log() { LOG_MARK=$(wc -l <"$T/requests.log"); }
new_log() { tail -n +$((LOG_MARK + 1)) "$T/requests.log"; }
# intents_seen: how many intent requests the fake server got since mark_log
intents_seen() { new_log | grep -c 'intent classifier'; }
intents_at_least() { [ "$(intents_seen)" -ge "$1" ]; }
ids() { sed -n 's/^{"id":\([0-9]*\),.*/\1/p' "$1" | sort -n | tr '\n' ' '; }
# asked: the question numbers whose intent request reached the server
asked() {
	new_log | grep -F 'intent classifier' | grep -o 'User message: Question number [0-9]*' |
		sed 's/.* //' | sort -n | tr '\n' ' '
}
every_id_once() { test "$(ids "$1")" = "$(seq -s ' ' $N) "; }

# ---- one Ctrl-C: finish what is in flight ------------------------------------------------------
OUT="$T/one.jsonl"
mark_log
"$CONVBI" batch --db "$SAMPLE_DB" --config "$T/quick.json" -j 3 --out "$OUT" "$T/questions.txt" 2>"$T/one.err" &
RUN_PID=$!
check "the run writes lines" wait_for 15 lines_at_least "$OUT" 3
kill -INT "$RUN_PID"
wait "$RUN_PID"
rc=$?
RUN_PID=
check "one Ctrl-C exits 130 (got $rc)" test "$rc" -eq 130
check "it says it finishes the questions in flight" grep -q "interrupted: finishing the questions in flight" "$T/one.err"
n1=$(grep -c . "$OUT")
check "it stopped early ($n1 of $N written)" test "$n1" -lt $N
check "every question that started was finished and written" test "$(asked)" = "$(ids "$OUT")"
check "the summary says some were not run" grep -q "$((N - n1)) not run" "$T/one.err"
"$CONVBI" batch --db "$SAMPLE_DB" --config "$T/quick.json" -j 6 --resume --out "$OUT" "$T/questions.txt" 2>"$T/one2.err"
rc=$?
check "--resume after Ctrl-C exits 0 (got $rc)" test "$rc" -eq 0
check "every id exactly once after resuming" every_id_once "$OUT"

# ---- two Ctrl-C: cancel what is in flight ---------------------------------------------------------
OUT="$T/two.jsonl"
mark_log
"$CONVBI" batch --db "$SAMPLE_DB" --config "$T/slow.json" -j 3 --out "$OUT" "$T/questions.txt" 2>"$T/two.err" &
RUN_PID=$!
check "three questions are in flight" wait_for 15 intents_at_least 3
kill -INT "$RUN_PID"
sleep 0.2
kill -INT "$RUN_PID"
wait "$RUN_PID"
rc=$?
RUN_PID=
check "two Ctrl-C exit 130 (got $rc)" test "$rc" -eq 130
check "it says it cancels" grep -q "canceling the questions in flight" "$T/two.err"
check "no canceled question is written" test ! -s "$OUT"
check "the summary counts them as not run" grep -q "$N not run (canceled or interrupted)" "$T/two.err"
check "no new question started after the first Ctrl-C" test "$(intents_seen)" -eq 3
# the canceled questions' calls are in the summary (attack7 N5: "calls per endpoint: none")
check "the summary counts the calls the canceled questions made" grep -Eq "calls per endpoint: [a-z]+ [1-9]" "$T/two.err"
"$CONVBI" batch --db "$SAMPLE_DB" --config "$T/quick.json" -j 6 --resume --out "$OUT" "$T/questions.txt" 2>"$T/two2.err"
rc=$?
check "--resume after two Ctrl-C exits 0 (got $rc)" test "$rc" -eq 0
check "every id exactly once after resuming" every_id_once "$OUT"

# ---- Ctrl-C while a big INPUT is read (attack6 F4) ------------------------------------------
# 2,000,000 JSON lines take seconds to read (a text INPUT of as many lines
# is read in 0.2 s): the first Ctrl-C stops there, exit 130, nothing asked
# and no output made (it had been lost, and a run of days began).
python3 -c "import sys; sys.stdout.write('{\"question\": \"How many customers are there?\"}\\n' * 2000000)" >"$T/big.jsonl"
BIGOUT=$T/big.out
"$CONVBI" batch --db "$SAMPLE_DB" --config "$T/quick.json" --out "$BIGOUT" "$T/big.jsonl" 2>"$T/big.err" &
RUN_PID=$!
sleep 0.3
t0=$(date +%s%N)
kill -INT "$RUN_PID"
wait "$RUN_PID"; rc=$?
RUN_PID=
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "Ctrl-C while reading a big INPUT exits 130 (got $rc)" test "$rc" = 130
check "and at once ($ms ms)" test "$ms" -lt 3000
check "saying nothing was asked" grep -q "nothing was asked\|before any question was asked" "$T/big.err"
check "and making no output" test ! -e "$BIGOUT"
rm -f "$T/big.jsonl"

finish
