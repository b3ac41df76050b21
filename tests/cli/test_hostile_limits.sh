#!/usr/bin/env bash
# test_hostile_limits.sh -- the limits hold through the whole engine and the
# command line, measured from the process (issue 16, items 1-3 and 8).
#
# Every run goes through tests/tools/measure ($MEASURE), which reports the
# wall time, the peak resident memory (wait4's ru_maxrss) and the peak of
# the temporary files SQLite keeps open under $T/tmp.  Cases: a database
# with a 64 MB cell (the schema sampler and a question read a prefix of
# it, never the cell); hostile SQL from the model at the default budgets
# (1,000 columns of zeroblob(1 MB): ETOOBIG within 256 MB; a recursive CTE
# that never ends: ETIMEOUT at the deadline, repairs included); a batch
# INPUT with a 256 MB line (refused at the line limit, without reading the
# rest); a database locked by another process, before the question and
# while it is asked: one message, exit 2, every time.
# Environment (from CTest): CONVBI FAKE_AOAI BUILD_DIR SAMPLE_DB MEASURE.
. "$(dirname "$0")/lib.sh"
: "${SAMPLE_DB:?}" "${MEASURE:?}"

MB=1048576
TO="timeout 120"   # a hang is a failure, never a stuck suite
mkdir -p "$T/tmp"
# measured REPORT CMD... -- runs CMD under measure; the numbers go to REPORT
measured() { local report=$1; shift; "$MEASURE" "$T/tmp" "$report" -- "$@"; }
# field REPORT NAME -- one number of a report
field() { sed -n "s/.*\\b$2=\\([0-9-]*\\).*/\\1/p" "$1"; }
# at_most REPORT NAME LIMIT DESC -- rss_kb limits are doubled, plus 256 MB,
# when the build is instrumented (CONVBI_VALGRIND: the sanitizers' shadow
# memory and quarantine)
at_most() {
	local v limit=$3; v=$(field "$1" "$2")
	[ "$2" = rss_kb ] && [ -n "${CONVBI_VALGRIND:-}" ] && limit=$((2 * limit + 256 * 1024))
	set -- "$1" "$2" "$limit" "$4"
	if [ -n "$v" ] && [ "$v" -le "$3" ]; then ok "$4 ($2=$v <= $3)"; else bad "$4: $2=${v:-?} > $3 ($(cat "$1"))"; fi
}

wide="SELECT zeroblob(1048576) AS c1"
for i in $(seq 2 1000); do wide="$wide, zeroblob(1048576) AS c$i"; done
cat >"$T/sql_map.json" <<JSON
{
 "How many rows hold big cells?": "\`\`\`sql\nSELECT count(*) AS n FROM c\n\`\`\`",
 "How long is the big cell?": "\`\`\`sql\nSELECT length(t) AS n FROM c\n\`\`\`",
 "Show a very wide row": "\`\`\`sql\n$wide\n\`\`\`",
 "Count forever": "\`\`\`sql\nWITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) AS n FROM n\n\`\`\`",
 "How many customers are there?": "\`\`\`sql\nSELECT count(*) AS n FROM customers\n\`\`\`"
}
JSON
launch_map_fake
DB="$T/shop.db"
cp "$SAMPLE_DB" "$DB"

# ---- a 64 MB cell: introspection and questions read a prefix ------------------------------------
sqlite3 "$T/cell.db" "CREATE TABLE c (id INTEGER PRIMARY KEY, t TEXT); INSERT INTO c VALUES (1, printf('%.*c', 64 * $MB, 'a'));"
expect_code 0 "schema of a database with a 64 MB cell" measured "$T/m1" $TO "$CONVBI" schema --db "$T/cell.db"
contains "$OUT" "t: 'aaaaaaaa" "the sample is a prefix of the cell"
at_most "$T/m1" rss_kb $((40 * 1024)) "the schema sampler does not hold the cell"
expect_code 0 "a question on it" measured "$T/m2" $TO "$CONVBI" ask --config "$T/config.json" --db "$T/cell.db" "How many rows hold big cells?"
contains "$OUT" "| 1 |" "answered from the database"
at_most "$T/m2" rss_kb $((48 * 1024)) "the question does not hold the cell"
expect_code 1 "a question that must read the cell" measured "$T/m3" $TO "$CONVBI" ask --config "$T/config.json" --db "$T/cell.db" "How long is the big cell?"
contains "$ERR" "the SQL reads or makes a value over the 2 MB limit" "the value limit names itself"
at_most "$T/m3" rss_kb $((48 * 1024)) "and the cell is never read whole"

# ---- hostile SQL from the model, at the default budgets ------------------------------------------
expect_code 1 "1,000 columns of zeroblob(1 MB)" measured "$T/m4" $TO "$CONVBI" ask --config "$T/config.json" --db "$DB" "Show a very wide row"
contains "$ERR" "the query needs more than 256 MB of memory" "the memory budget names itself"
at_most "$T/m4" rss_kb $(((256 + 64) * 1024)) "peak RSS within the 256 MB budget and the engine's base"
at_most "$T/m4" temp_bytes 0 "no temporary files"
expect_code 1 "the same row within --sql-memory-mb 8" measured "$T/m4b" $TO "$CONVBI" ask --config "$T/config.json" --db "$DB" --sql-memory-mb 8 "Show a very wide row"
contains "$ERR" "the query needs more than 8 MB of memory" "the budget is the option's"
at_most "$T/m4b" rss_kb $(((8 + 40) * 1024)) "peak RSS within 8 MB and the engine's base"
expect_code 2 "--sql-memory-mb 0" $TO "$CONVBI" ask --config "$T/config.json" --db "$DB" --sql-memory-mb 0 "Show a very wide row"
contains "$ERR" "--sql-memory-mb" "names the option"
expect_code 1 "a recursive CTE that never ends, one repair" measured "$T/m5" $TO "$CONVBI" ask --config "$T/config.json" --db "$DB" --sql-timeout-ms 500 --max-repairs 1 "Count forever"
contains "$ERR" "ran longer than 500 ms" "the deadline names itself"
# two runs of 500 ms + 100 ms each, the model calls and start-up, less the
# time the machine kept convbi waiting for a CPU
w=$(( $(field "$T/m5" wall_ms) - $(field "$T/m5" wait_ms) ))
if [ "$w" -le $((2 * 600 + 3000)) ]; then ok "the question ends at its deadlines (${w} ms)"; else bad "the question took ${w} ms: $(cat "$T/m5")"; fi

# ---- a batch INPUT with a 256 MB line: refused at the line limit --------------------------------
{ printf 'How many customers are there?\n'; head -c $((256 * MB)) /dev/zero | tr '\0' 'q'; printf '\n'; } >"$T/long.txt"
expect_code 2 "batch on a 256 MB line" measured "$T/m6" $TO "$CONVBI" batch --config "$T/config.json" --db "$DB" "$T/long.txt"
contains "$ERR" "$T/long.txt:2: the line is longer than" "names the line and the limit"
at_most "$T/m6" rss_kb $((48 * 1024)) "without holding the line"
rm -f "$T/long.txt"

# ---- a locked database: one message, one exit code -----------------------------------------------
cp "$SAMPLE_DB" "$T/lock.db"
# hold_lock / release_lock -- another process (sqlite3, fed through a FIFO)
# takes an exclusive lock on lock.db and keeps it until released
mkfifo "$T/lockctl"
hold_lock() {
	sqlite3 "$T/lock.db" <"$T/lockctl" >/dev/null 2>&1 &
	LOCK_PID=$!
	exec 3>"$T/lockctl"
	echo ".timeout 10000" >&3
	echo "BEGIN EXCLUSIVE; CREATE TABLE held (a);" >&3
	for _ in $(seq 200); do sqlite3 "$T/lock.db" "SELECT 1 FROM customers LIMIT 1" >/dev/null 2>&1 || return 0; sleep 0.05; done
	bad "the lock was not taken"
}
release_lock() { echo "ROLLBACK;" >&3; exec 3>&-; wait "$LOCK_PID"; }
LOCKED="database \`$T/lock.db\` is locked or being changed by another process; try again when it is done"
hold_lock
printf 'How many customers are there?\n' >"$T/q.txt"
expect_code 2 "schema of a locked database" $TO "$CONVBI" schema --db "$T/lock.db"
contains "$ERR" "$LOCKED" "says it is locked"
expect_code 2 "ask on a locked database" $TO "$CONVBI" ask --config "$T/config.json" --db "$T/lock.db" "How many customers are there?"
contains "$ERR" "$LOCKED" "the same message"
expect_code 2 "batch on a locked database" $TO "$CONVBI" batch --config "$T/config.json" --db "$T/lock.db" --out "$T/lock.jsonl" "$T/q.txt"
contains "$ERR" "$LOCKED" "the same message"
release_lock
# locked after the engine opened it: the model's first two replies come
# 1.5 s late each, and the lock is taken once convbi has the file open
curl -s -X POST --data '[{"kind":"slow_first_token","delay_ms":1500,"count":2}]' "http://127.0.0.1:$PORT_a/_fake/faults" >/dev/null
"$CONVBI" ask --config "$T/config.json" --db "$T/lock.db" "How many customers are there?" >"$T/late.out" 2>"$T/late.err" &
RUN_PID=$!  # killed at exit if it hangs (lib.sh)
for _ in $(seq 200); do
	ls -l "/proc/$RUN_PID/fd" 2>/dev/null | grep -q "lock.db" && break
	sleep 0.05
done
hold_lock
wait "$RUN_PID"; rc=$?
RUN_PID=""
if [ "$rc" = 2 ]; then ok "ask locked out after it opened the database (exit 2)"; else bad "ask locked out after it opened the database: exit $rc, wanted 2; $(cat "$T/late.err")"; fi
contains "$(cat "$T/late.err")" "$LOCKED" "the same message"
release_lock

finish
