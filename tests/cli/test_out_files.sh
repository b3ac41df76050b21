#!/usr/bin/env bash
# test_out_files.sh -- an output never destroys a file of the user's
# (outside attack #1, findings 1, 2 and 9; issue 16 item 4).
#
# ask --out and the REPL's .output/.once refuse every input of the run
# (the database, also through a hard or symbolic link, the config, the
# notes, the examples, a prompt file) and any other SQLite database,
# before anything is opened; an existing file is replaced only once the
# rows were written whole, so a failed question, a missing config or an
# answer without rows leaves it byte for byte as it was; ask --json --out
# writes the JSON to the file.  batch --rows DIR gives every id its own
# file (ids "x/" and "x_-L1" used to share one) and never writes into a
# folder of files it did not write.  Every check compares the user's file
# with a copy taken before.
# Environment (from CTest): CONVBI FAKE_AOAI BUILD_DIR SAMPLE_DB SOURCE_DIR.
. "$(dirname "$0")/lib.sh"
: "${SAMPLE_DB:?}" "${SOURCE_DIR:?}"

cat >"$T/sql_map.json" <<'JSON'
{
 "How many customers are there?": "```sql\nSELECT count(*) AS n FROM customers\n```",
 "orders by status": "```sql\nSELECT status, count(*) AS n FROM orders GROUP BY 1 ORDER BY 1\n```",
 "broken question": "```sql\nSELECT nosuch FROM customers\n```"
}
JSON
cat >"$T/scenario.json" <<'JSON'
{
 "endpoints": [{"name": "a", "api_key": "k-a", "deployment": "gpt-4o"}],
 "rules": [
  {"match": "intent classifier[\\s\\S]*hello there", "reply": "{\"intent\": \"chitchat\", \"reply\": \"Hello!\"}"},
  {"match": "intent classifier", "reply": "{\"intent\": \"data_question\", \"standalone_question\": \"\", \"reply\": \"\"}"},
  {"match": "SQL writer[\\s\\S]*\\nQuestion: ([^\\n]*)", "map_file": "sql_map.json", "default": "```sql\nSELECT 1 AS one\n```"},
  {"match": "answer writer", "reply": "Here is the answer."}
 ]
}
JSON
launch_fake "$T/scenario.json"
C="$T/config.json"
write_config "$C" a:k-a
DB="$T/shop.db"
cp "$SAMPLE_DB" "$DB"
cp "$DB" "$T/shop.orig"
same_db() { cmp -s "$DB" "$T/shop.orig"; }
TO="timeout 30"
ASK=($TO "$CONVBI" ask --config "$C" --db "$DB" --max-repairs 0)
no_tmp() { ! ls "$1" | grep -q '\.tmp'; }

# ---- ask --out: every input is refused before anything is opened -----------------------------
expect_code 2 "ask --out naming the database" "${ASK[@]}" --format csv --out "$DB" "How many customers are there?"
contains "$ERR" "--out $DB is the database (--db); convbi would overwrite it" "the message names it"
check "the database is unchanged" same_db
expect_code 2 "ask --out naming the database with a broken config" $TO "$CONVBI" ask --config "$T/nope.json" --db "$DB" --out "$DB" "q"
check "the database is unchanged (the check comes before the config)" same_db
ln "$DB" "$T/hard.db"
ln -s "$DB" "$T/soft.db"
expect_code 2 "ask --out naming a hard link to the database" "${ASK[@]}" --out "$T/hard.db" "How many customers are there?"
expect_code 2 "ask --out naming a symbolic link to the database" "${ASK[@]}" --out "$T/soft.db" "How many customers are there?"
check "the database is unchanged" same_db
cp "$C" "$T/config.orig"
expect_code 2 "ask --out naming the config" "${ASK[@]}" --out "$C" "How many customers are there?"
contains "$ERR" "is the endpoint configuration" "names the config"
check "the config is unchanged" cmp -s "$C" "$T/config.orig"
printf '# Notes\nA customer is a row of customers.\n' >"$T/shop.notes.md"
cp "$T/shop.notes.md" "$T/notes.orig"
expect_code 2 "ask --out naming the notes beside the database" "${ASK[@]}" --out "$T/shop.notes.md" "How many customers are there?"
contains "$ERR" "is the business notes" "names the notes"
check "the notes are unchanged" cmp -s "$T/shop.notes.md" "$T/notes.orig"
rm "$T/shop.notes.md"
printf '{"question":"How many customers?","sql":"SELECT count(*) FROM customers","db":"shop"}\n' >"$T/ex.jsonl"
cp "$T/ex.jsonl" "$T/ex.orig"
expect_code 2 "ask --out naming the examples file" "${ASK[@]}" --examples "$T/ex.jsonl" --out "$T/ex.jsonl" "How many customers are there?"
check "the examples are unchanged" cmp -s "$T/ex.jsonl" "$T/ex.orig"
mkdir "$T/prompts" && cp "$SOURCE_DIR"/prompts/*.txt "$T/prompts/"
cp "$T/prompts/sql.txt" "$T/sql.orig"
expect_code 2 "ask --out naming a prompt file" "${ASK[@]}" --prompts "$T/prompts" --out "$T/prompts/sql.txt" "How many customers are there?"
check "the prompt is unchanged" cmp -s "$T/prompts/sql.txt" "$T/sql.orig"
cp "$DB" "$T/other.db"
expect_code 2 "ask --out naming another SQLite database" "${ASK[@]}" --out "$T/other.db" "How many customers are there?"
contains "$ERR" "is a SQLite database" "says what it is"
check "that database is unchanged" cmp -s "$T/other.db" "$DB"

# ---- ask --out: an existing file is replaced only by a whole result ----------------------------
printf 'precious\n' >"$T/keep.csv"
chmod 640 "$T/keep.csv"
expect_code 1 "ask --out on a question that fails" "${ASK[@]}" --format csv --out "$T/keep.csv" "broken question"
check "the existing file is unchanged" test "$(cat "$T/keep.csv")" = precious
expect_code 2 "ask --out with a config that does not exist" $TO "$CONVBI" ask --config "$T/nope.json" --db "$DB" --out "$T/keep.csv" "q"
check "the existing file is unchanged" test "$(cat "$T/keep.csv")" = precious
expect_code 0 "ask --out on an answer without rows" "${ASK[@]}" --out "$T/keep.csv" "hello there"
contains "$ERR" "the answer has no rows; $T/keep.csv was left as it was" "says so"
check "the existing file is unchanged" test "$(cat "$T/keep.csv")" = precious
expect_code 0 "ask --out on an answered question" "${ASK[@]}" --format csv --out "$T/keep.csv" "How many customers are there?"
check "the file holds the rows" cmp -s "$T/keep.csv" <(printf 'n\r\n200\r\n')
check "and kept its mode" test "$(stat -c %a "$T/keep.csv")" = 640
check "no file is left aside" no_tmp "$T"
(umask 027 && "${ASK[@]}" --format csv --out "$T/new.csv" "How many customers are there?" 2>/dev/null)
check "a new file gets its mode from the umask" test "$(stat -c %a "$T/new.csv")" = 640
printf 'old\n' >"$T/target.csv"
ln -s target.csv "$T/link.csv"
expect_code 0 "ask --out through a symbolic link" "${ASK[@]}" --format csv --out "$T/link.csv" "How many customers are there?"
check "the link is still a link" test -L "$T/link.csv"
check "the file it names holds the rows" cmp -s "$T/target.csv" <(printf 'n\r\n200\r\n')
expect_code 0 "ask --out /dev/null" "${ASK[@]}" --format csv --out /dev/null "How many customers are there?"

# ---- ask --json --out: the JSON goes to the file ----------------------------------------------
printf 'precious\n' >"$T/a.json"
expect_code 1 "ask --json --out on a question that fails" "${ASK[@]}" --json --out "$T/a.json" "broken question"
check "the existing file is unchanged" test "$(cat "$T/a.json")" = precious
expect_code 0 "ask --json --out" "${ASK[@]}" --json --out "$T/a.json" "How many customers are there?"
check "stdout is empty" test -z "$OUT"
check "the file holds the answer's JSON" grep -q '"rows":\[\[200\]\]' "$T/a.json"

# ---- the REPL's .output and .once ---------------------------------------------------------------
printf 'precious\n' >"$T/keep2.csv"
cp "$C" "$T/config.orig"
cat >"$T/script" <<EOF
.mode csv
.once $DB
SELECT 1 AS refused_once
.output $T/soft.db
.once $C
.once $T/other.db
.output $T/good.csv
SELECT 2 AS good
.output $DB
SELECT 3 AS still_good
.output
.once $T/keep2.csv
broken question
SELECT 4 AS on_screen
.quit
EOF
$TO "$CONVBI" repl --config "$C" --db "$DB" --max-repairs 0 <"$T/script" >"$T/repl.out" 2>"$T/repl.err"
R=$(cat "$T/repl.out"); RE=$(cat "$T/repl.err")
contains "$RE" ".once $DB is the database (--db); convbi would overwrite it" ".once on the open database is refused"
contains "$RE" ".output $T/soft.db is the database (--db)" ".output on a link to it is refused"
contains "$RE" ".once $C is the endpoint configuration" ".once on the config is refused"
contains "$RE" ".once $T/other.db is a SQLite database" ".once on another database is refused"
check "the database is unchanged" same_db
check "the config is unchanged" cmp -s "$C" "$T/config.orig"
check "the other database is unchanged" cmp -s "$T/other.db" "$DB"
contains "$R" "refused_once" "after a refused .once the rows stay on the screen"
check "a refused .output keeps the previous one" cmp -s "$T/good.csv" <(printf 'good\r\n2\r\nstill_good\r\n3\r\n')
check "a failed question leaves the .once file as it was" test "$(cat "$T/keep2.csv")" = precious
contains "$R" "on_screen" "the failed question used up the .once"
check "no file is left aside" no_tmp "$T"

# ---- batch and eval --out share the check ------------------------------------------------------
printf 'How many customers are there?\n' >"$T/q.txt"
expect_code 2 "batch --out naming another SQLite database" $TO "$CONVBI" batch --config "$C" --db "$DB" --out "$T/other.db" "$T/q.txt"
check "that database is unchanged" cmp -s "$T/other.db" "$DB"
printf '[{"db_id":"shop","question":"How many customers are there?","query":"SELECT count(*) FROM customers"}]\n' >"$T/dev.json"
cp "$T/dev.json" "$T/dev.orig"
expect_code 2 "eval --out naming its question file" $TO "$CONVBI" eval --config "$C" --out "$T/dev.json" "$T/dev.json"
contains "$ERR" "is the question file" "names it"
check "the question file is unchanged" cmp -s "$T/dev.json" "$T/dev.orig"

# ---- batch --rows DIR: one file per id, never over a file of the user's ---------------------------
printf '{"question":"How many customers are there?","id":"x/"}\n{"question":"orders by status","id":"x_-L1"}\n{"question":"How many customers are there?","id":"x_2F"}\n{"question":"orders by status","id":".hidden"}\n' >"$T/coll.jsonl"
expect_code 0 "batch --rows with ids that used to collide" $TO "$CONVBI" batch --config "$C" --db "$DB" --format csv --rows "$T/rows" --out "$T/coll.csv" "$T/coll.jsonl"
check "four questions, four rows files" test "$(ls "$T/rows" | grep -c '\.csv$')" = 4
check "id x/ has its own file" cmp -s "$T/rows/x_2F.csv" <(printf 'n\r\n200\r\n')
check "id x_-L1 has its own file" grep -q '^status,n' "$T/rows/x_5F-L1.csv"
check "id x_2F has its own file" cmp -s "$T/rows/x_5F2F.csv" <(printf 'n\r\n200\r\n')
check "id .hidden is not a hidden file" test -f "$T/rows/_2Ehidden.csv"
expect_code 0 "the same run again writes over its own files" $TO "$CONVBI" batch --config "$C" --db "$DB" --format csv --rows "$T/rows" --out "$T/coll.csv" "$T/coll.jsonl"
mkdir "$T/mine" && printf 'my,data\r\n' >"$T/mine/x_2F.csv"
expect_code 2 "batch --rows into a folder of the user's files" $TO "$CONVBI" batch --config "$C" --db "$DB" --format csv --rows "$T/mine" --out "$T/coll2.csv" "$T/coll.jsonl"
contains "$ERR" "holds files convbi did not write" "says why"
check "the user's file is unchanged" test "$(cat "$T/mine/x_2F.csv")" = $'my,data\r'
check "nothing was written there" test "$(ls -A "$T/mine")" = x_2F.csv
mkdir "$T/empty"
expect_code 0 "batch --rows into an empty folder" $TO "$CONVBI" batch --config "$C" --db "$DB" --format csv --rows "$T/empty" --out "$T/coll3.csv" "$T/coll.jsonl"
check "the rows are there" test -f "$T/empty/x_2F.csv"

# ---- the endpoint state file and the database's journal (attack6 F1, F12) --------------------
# The state file keeps the month's spending: an output over it handed the budget out again.
rm -f "$T/state"
expect_code 2 "ask --out naming state.path before the state file exists" "${ASK[@]}" --out "$T/state" "How many customers are there?"
contains "$ERR" "is the endpoint state file (state.path" "names the state file"
check "no file was made at state.path by the refused output" test ! -s "$T/state" -o "$(head -c 8 "$T/state")" = CVBISTAT
expect_code 0 "a question makes the state file" "${ASK[@]}" "How many customers are there?"
cp "$T/state" "$T/state.orig"
expect_code 2 "ask --out naming the state file" "${ASK[@]}" --format csv --out "$T/state" "How many customers are there?"
expect_code 2 "batch --out naming the state file" $TO "$CONVBI" batch --config "$C" --db "$DB" --out "$T/state" "$T/coll.jsonl"
contains "$ERR" "--out $T/state is the endpoint state file" "batch names it"
printf '.once %s\nHow many customers are there?\n.output %s\n' "$T/state" "$T/state" | $TO "$CONVBI" --config "$C" --db "$DB" >"$T/repl.out" 2>"$T/repl.err"
contains "$(cat "$T/repl.err")" ".once $T/state is the endpoint state file" "the REPL's .once refuses it"
contains "$(cat "$T/repl.err")" ".output $T/state is the endpoint state file" "the REPL's .output refuses it"
check "the state file still starts with its magic" test "$(head -c 8 "$T/state")" = CVBISTAT
cp "$T/state" "$T/other.state"
expect_code 2 "ask --out naming another convbi state file" "${ASK[@]}" --out "$T/other.state" "How many customers are there?"
contains "$ERR" "is a convbi endpoint state file" "names what it is"
expect_code 2 "batch --out naming the database's journal" $TO "$CONVBI" batch --config "$C" --db "$DB" --out "$DB-journal" "$T/coll.jsonl"
contains "$ERR" "is the database's journal, WAL or shared-memory file" "names the journal"
check "no journal was made" test ! -e "$DB-journal"
expect_code 2 "ask --out naming the database's WAL" "${ASK[@]}" --out "$DB-wal" "How many customers are there?"
cp "$SAMPLE_DB" "$T/other.db"
expect_code 2 "batch --out naming another database's journal" $TO "$CONVBI" batch --config "$C" --db "$DB" --out "$T/other.db-journal" "$T/coll.jsonl"
contains "$ERR" "of a SQLite database" "names what it is"
check "no journal was made beside the other database" test ! -e "$T/other.db-journal"
check "the database is unchanged" same_db

# ---- a result that cannot be written is a failure (attack6 F7) ------------------------------
for f in table csv json; do
  expect_code 1 "ask --format $f --out /dev/full" "${ASK[@]}" --format $f --out /dev/full "How many customers are there?"
  contains "$ERR" "No space left on device" "says why ($f)"
done
printf '.output /dev/full\nSELECT 1;\n' | $TO "$CONVBI" --config "$C" --db "$DB" >/dev/null 2>"$T/full.err"
check "the piped REPL exits 1 when .output cannot be written" test $? = 1
expect_code 1 "schema to a full standard output" sh -c '"$0" schema --db "$1" >/dev/full' "$CONVBI" "$DB"
# a forgotten value (attack9 F9): refused before any model call, no file named --json
expect_code 2 "ask --out --json" "${ASK[@]}" --out --json "How many customers are there?"
contains "$ERR" "--out takes a value, not the option \`--json\`" "says the value is missing"
check "no file named --json was written" test ! -e ./--json -a ! -e "$T/--json"
expect_code 2 "ask --out ''" "${ASK[@]}" --out "" "How many customers are there?"
contains "$ERR" "--out takes a value, not an empty one" "says it is empty"
expect_code 2 "serve --tokens --listen" $TO "$CONVBI" serve --tokens --listen 127.0.0.1:0
contains "$ERR" "--tokens takes a value, not the option \`--listen\`" "serve says so too"
expect_code 1 "--version to a full standard output" sh -c '"$0" --version >/dev/full' "$CONVBI"
expect_code 1 "--help to a full standard output" sh -c '"$0" --help >/dev/full' "$CONVBI"
expect_code 1 "help ask to a full standard output" sh -c '"$0" help ask >/dev/full' "$CONVBI"
contains "$ERR" "writing the standard output failed" "says so"

# ---- batch --out never empties a file convbi did not write (attack7 N2) -----------------------
printf 'precious\n' >"$T/keep.jsonl"
expect_code 2 "batch --out over a file of the user's" $TO "$CONVBI" batch --config "$C" --db "$DB" --out "$T/keep.jsonl" "$T/coll.jsonl"
contains "$ERR" "exists and is not a JSONL result file of \`convbi batch\`" "says why"
check "the user's file is unchanged" test "$(cat "$T/keep.jsonl")" = precious
printf 'a,b\r\n1,2\r\n' >"$T/keep.csv"
expect_code 2 "batch --format csv --out over a CSV of the user's" $TO "$CONVBI" batch --config "$C" --db "$DB" --format csv --rows "$T/rows-keep" --out "$T/keep.csv" "$T/coll.jsonl"
check "the user's CSV is unchanged" cmp -s "$T/keep.csv" <(printf 'a,b\r\n1,2\r\n')
head -c 3000 /dev/urandom >"$T/blob.bin"
cp "$T/blob.bin" "$T/blob.orig"
expect_code 2 "batch --out over a binary file (an installed library, say)" $TO "$CONVBI" batch --config "$C" --db "$DB" --out "$T/blob.bin" "$T/coll.jsonl"
check "the binary file is unchanged" cmp -s "$T/blob.bin" "$T/blob.orig"
expect_code 0 "batch --out over its own earlier results" $TO "$CONVBI" batch --config "$C" --db "$DB" --out "$T/again.jsonl" "$T/coll.jsonl"
expect_code 0 "batch --out over its own earlier results, again" $TO "$CONVBI" batch --config "$C" --db "$DB" --out "$T/again.jsonl" "$T/coll.jsonl"

finish
