#!/usr/bin/env bash
# test_eval.sh -- `convbi eval` on the Spider dev set with an oracle model.
#
# The fake server answers the SQL agent from a map built here out of
# dev.json and dev_gold.sql, keyed by the question exactly as the SQL
# prompt's `Question: ...` line shows it (a fresh data question is its own
# standalone question), so the "model" writes the gold SQL: EX must be
# 100 % of the runnable questions, and the 62 wta_1 questions (shipped
# without a database) must be listed as gold failures.  Then a second map
# answers a known subset wrongly -- a wrong result, SQL that fails, SQL the
# gate refuses, and (through the intent agent) no SQL at all -- and every
# question's verdict in --out must be the expected one.  Also: --only-db,
# the official difficulty split, usage errors.
# Environment (from CTest): CONVBI FAKE_AOAI BUILD_DIR SPIDER_DIR.
. "$(dirname "$0")/../cli/lib.sh"
: "${CONVBI:?}" "${FAKE_AOAI:?}" "${BUILD_DIR:?}" "${SPIDER_DIR:?}"

. "$SOURCE_DIR/tests/support/spider_eval.sh"
# expected INDEX DB_ID: the verdict the subset map must produce
expected() {
	if [ "$2" = wta_1 ]; then echo gold_failure; return; fi
	case $(($1 % 10)) in
	3) echo wrong_result ;; 5) echo sql_error ;; 7) echo rejected ;; 9) echo model_failure ;; *) echo correct ;;
	esac
}

make_maps oracle || { echo "FAIL: cannot build the oracle map" >&2; exit 1; }
check "the oracle map has 1034 questions" test "$(grep -c '```sql' "$T/sql_map.json")" -eq 1034
restart_fake

# ---- the oracle, limited and parallel --------------------------------------------------------------
"$CONVBI" eval --config "$T/config.json" -j 8 --limit 200 --out "$T/limit.jsonl" "$SPIDER_DIR" >"$T/limit.txt" 2>"$T/limit.err"
rc=$?
check "eval --limit 200 exits 0 (got $rc)" test "$rc" -eq 0
check "the oracle scores EX 100% on 200 questions" grep -q '^EX 100.00% (200/200 runnable; 0 gold failures excluded)' "$T/limit.txt"
check "200 lines in --out, in dataset order" test "$(verdicts "$T/limit.jsonl" | awk '{ print $1 }' | tr '\n' ' ')" = "$(seq -s ' ' 0 199) "
check "every one correct" test "$(verdicts "$T/limit.jsonl" | grep -c ' correct$')" -eq 200
check "both endpoints were used" grep -q 'calls per endpoint: east [1-9][0-9]*, west [1-9][0-9]*$' "$T/limit.txt"
check "a --out line has the fields" grep -q '^{"index":0,"db_id":"concert_singer","question":"How many singers do we have?","gold_sql":"SELECT count(\*) FROM singer","pred_sql":"SELECT count(\*) FROM singer","verdict":"correct","difficulty":"easy","error":null,"truncated":false,"tokens":[0-9]*,"calls":[0-9]*,"elapsed_ms":[0-9]*,"cost_usd":0,"db_path":"/[^"]*/concert_singer.sqlite"}$' "$T/limit.jsonl"

# ---- the oracle on the whole dev set ----------------------------------------------------------------
"$CONVBI" eval --config "$T/config.json" -j 8 --out "$T/full.jsonl" "$SPIDER_DIR/dev.json" >"$T/full.txt" 2>"$T/full.err"
rc=$?
check "the full eval exits 0 (got $rc)" test "$rc" -eq 0
check "the oracle scores EX 100% on the 972 runnable questions" grep -q '^EX 100.00% (972/972 runnable; 62 gold failures excluded)' "$T/full.txt"
check "the outcome counts" grep -q '^outcomes: correct 972, wrong_result 0, sql_error 0, rejected 0, model_failure 0, gold_failure 62$' "$T/full.txt"
check "the wta_1 questions are the gold failures" test "$(verdicts "$T/full.jsonl" | awk '$3 == "gold_failure" { print $2 }' | sort -u)" = wta_1
check "and are listed with the reason" grep -q '^  #429 wta_1: database .*wta_1.sqlite.* does not exist' "$T/full.txt"
# Spider's official split of dev: easy 248, medium 446, hard 174, extra 166
for row in "easy 232 16" "medium 416 30" "hard 160 14" "extra 164 2"; do
	set -- $row
	check "difficulty $1: $2 runnable, $3 excluded" grep -qE "^  $1 +$2 +$2 +100.00% +[0-9]+  \($3 excluded\)$" "$T/full.txt"
done
check "per database" grep -qE '^  world_1 +120 +120 +100.00% +[0-9]+$' "$T/full.txt"

# ---- --only-db ------------------------------------------------------------------------------------------
"$CONVBI" eval --config "$T/config.json" --only-db pets_1 --out "$T/pets.jsonl" "$SPIDER_DIR" >"$T/pets.txt" 2>&1
rc=$?
check "--only-db exits 0 (got $rc)" test "$rc" -eq 0
check "--only-db runs that database's 42 questions" test "$(verdicts "$T/pets.jsonl" | awk '$2 == "pets_1"' | wc -l)" -eq 42
check "and no other" test "$(grep -c . "$T/pets.jsonl")" -eq 42

# ---- a known subset answered wrongly ----------------------------------------------------------------------
make_maps subset || { echo "FAIL: cannot build the subset map" >&2; exit 1; }
restart_fake
"$CONVBI" eval --config "$T/config.json" -j 8 -v --limit 300 --out "$T/subset.jsonl" "$SPIDER_DIR" >"$T/subset.txt" 2>"$T/subset.err"
rc=$?
check "a run with wrong answers still exits 0 (got $rc)" test "$rc" -eq 0
verdicts "$T/subset.jsonl" >"$T/subset.got"
while read -r i db v; do echo "$i $db $(expected "$i" "$db")"; done <"$T/subset.got" >"$T/subset.want"
check "300 verdicts" test "$(grep -c . "$T/subset.got")" -eq 300
check "every verdict is the expected one" cmp -s "$T/subset.got" "$T/subset.want"
diff "$T/subset.want" "$T/subset.got" | head -n 5
check "the outcome counts" grep -q '^outcomes: correct 180, wrong_result 30, sql_error 30, rejected 30, model_failure 30, gold_failure 0$' "$T/subset.txt"
check "EX is 60%" grep -q '^EX 60.00% (180/300 runnable' "$T/subset.txt"
check "-v names each question that is not correct" test "$(grep -c '^convbi: eval: #[0-9]* [A-Za-z_0-9]*: [a-z_]*: ' "$T/subset.err")" -eq 120
check "a wrong result says how" grep -q '"verdict":"wrong_result".*"error":"the prediction has [0-9]* rows\? where the gold result has\|"verdict":"wrong_result".*"error":".*column\|"verdict":"wrong_result".*"error":"the rows differ' "$T/subset.jsonl"
check "a rejected query keeps its SQL and the gate's reason" grep -q '"pred_sql":"DELETE FROM no_such_table","verdict":"rejected",.*only SELECT' "$T/subset.jsonl"
check "a model failure says why" grep -q '"pred_sql":null,"verdict":"model_failure",.*"error":"the intent agent classified the question as `chitchat`' "$T/subset.jsonl"

# ---- usage ----------------------------------------------------------------------------------------------------
usage() { # WHAT REGEX ARGS...
	local what=$1 re=$2
	shift 2
	"$CONVBI" eval "$@" >"$T/usage.out" 2>"$T/usage.err"
	local rc=$?
	check "$what exits 2 (got $rc)" test "$rc" -eq 2
	check "$what says so" grep -qE -e "$re" "$T/usage.err"
}
usage "a missing directory" "cannot read the question file .*nowhere.*No such file" --config "$T/config.json" "$T/nowhere"
usage "an unknown --dataset" "--dataset takes spider or bird" --config "$T/config.json" --dataset wikisql "$SPIDER_DIR"
usage "an unknown --only-db" "no question .* is for database .nosuch." --config "$T/config.json" --only-db nosuch "$SPIDER_DIR"
printf '{"not": "a list"}' >"$T/notalist.json"
usage "a file that is not a question list" "is not a JSON array of question objects" --config "$T/config.json" "$T/notalist.json"

finish
