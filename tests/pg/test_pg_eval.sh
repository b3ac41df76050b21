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

. "$SOURCE_DIR/tests/support/spider_eval.sh"

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
