#!/usr/bin/env bash
# test_hostile_files.sh -- nothing of the user's is touched, and the output
# is always valid, whatever the files and the data (issue 16, items 4-7).
#
# Each case is a mistake a user can make or a hostile database: the
# checks assert the exit code, the one-line message, and that the user's
# file is byte for byte what it was (cmp against a copy taken before).
# Cases: state.path naming the database; --out naming the database, the
# config, INPUT or a prompt file; --resume on a file that is not ours;
# --config, INPUT, --notes, --tokens, eval's question file and prompt files that are FIFOs (must not hang: every
# run is under `timeout`); a WAL-mode database leaves no -wal/-shm file;
# SELECT 1e308*10 through ask --json and batch gives valid JSON.
# Environment (from CTest): CONVBI FAKE_AOAI BUILD_DIR SAMPLE_DB SOURCE_DIR.
. "$(dirname "$0")/lib.sh"
: "${SAMPLE_DB:?}" "${SOURCE_DIR:?}"

cat >"$T/sql_map.json" <<'JSON'
{
 "How big is infinity?": "```sql\nSELECT 1e308*10 AS big, -1e308*10 AS small, 1 AS one\n```",
 "How many customers are there?": "```sql\nSELECT count(*) AS n FROM customers\n```",
 "How many rows in t?": "```sql\nSELECT count(*) AS n FROM t\n```"
}
JSON
launch_map_fake
DB="$T/shop.db"
cp "$SAMPLE_DB" "$DB"
cp "$DB" "$T/shop.orig"
same_db() { cmp -s "$DB" "$T/shop.orig"; }
TO="timeout 30"   # a hang is a failure, never a stuck suite

# ---- the state file: never written over a file that is not ours ----------------------------
port=$(awk '$1 == "a" { print $2 }' "$T/ports")
printf '{"endpoints":[{"name":"a","kind":"azure","url":"http://127.0.0.1:%s","deployment":"gpt-4o","api_key":"k-a"}],"state":{"path":"%s"}}' \
	"$port" "$DB" >"$T/state_is_db.json"
expect_code 2 "state.path naming the database is refused" $TO "$CONVBI" ask --config "$T/state_is_db.json" --db "$DB" "How many customers are there?"
contains "$ERR" "is not a convbi state file; convbi never overwrites a file it did not write" "the message says why and never rebuilds"
check "the database is unchanged" same_db
check "and is still a SQLite database" grep -q "SQLite format 3" "$DB"

# ---- non-finite numbers: valid JSON, null plus a note; inf in text --------------------------
expect_code 0 "ask --json on SELECT 1e308*10" $TO "$CONVBI" ask --config "$T/config.json" --db "$DB" --json "How big is infinity?"
contains "$OUT" '"rows":[[null,null,1]]' "infinity is null in the JSON rows"
contains "$OUT" '"notes":["column `big`: inf written as null (JSON has no infinity or NaN)","column `small`: -inf written as null' "with a note per column"
lacks "$OUT" "Inf" "no bare Inf (invalid JSON) anywhere"
expect_code 0 "ask (table) on SELECT 1e308*10" $TO "$CONVBI" ask --config "$T/config.json" --db "$DB" "How big is infinity?"
contains "$OUT" "| inf |  -inf |   1 |" "the table says inf and -inf"
printf 'How big is infinity?\n' >"$T/inf.txt"
expect_code 0 "batch on SELECT 1e308*10 counts it answered" $TO "$CONVBI" batch --config "$T/config.json" --db "$DB" --out "$T/inf.jsonl" "$T/inf.txt"
check "the result line is the answer, not an error" grep -q '"rows":\[\[null,null,1\]\],"row_count":1,"truncated":false,"notes":\[' "$T/inf.jsonl"
check "with no error class" grep -q '"error":null,"error_class":null' "$T/inf.jsonl"
contains "$ERR" "1 answered, 0 failed" "the summary counts it answered"

# ---- a FIFO where a regular file is expected never hangs -------------------------------------
mkfifo "$T/fifo.json"
expect_code 2 "--config naming a FIFO" $TO "$CONVBI" endpoints --config "$T/fifo.json"
contains "$ERR" "config file $T/fifo.json is a FIFO (named pipe), not a regular file" "says what it is"
expect_code 2 "\$CONVBI_CONFIG naming a character device" env CONVBI_CONFIG=/dev/zero $TO "$CONVBI" endpoints
contains "$ERR" "is a character device, not a regular file" "says what it is"

# ---- --out is never an input; --resume only continues our own file ---------------------------
printf 'How many customers are there?\n' >"$T/q.txt"
expect_code 2 "batch --out naming the database" $TO "$CONVBI" batch --config "$T/config.json" --db "$DB" --out "$DB" "$T/q.txt"
contains "$ERR" "--out $DB is the database (--db); convbi would overwrite it" "the message names it"
check "the database is unchanged" same_db
expect_code 2 "batch --resume --out naming the database" $TO "$CONVBI" batch --config "$T/config.json" --db "$DB" --resume --out "$DB" "$T/q.txt"
check "the database is unchanged (not cut to zero bytes)" same_db
ln "$DB" "$T/hardlink.db"
expect_code 2 "batch --out naming a hard link to the database" $TO "$CONVBI" batch --config "$T/config.json" --db "$DB" --out "$T/hardlink.db" "$T/q.txt"
check "the database is unchanged" same_db
cp "$T/config.json" "$T/config.orig"
expect_code 2 "batch --out naming the config" $TO "$CONVBI" batch --config "$T/config.json" --db "$DB" --out "$T/config.json" "$T/q.txt"
check "the config is unchanged" cmp -s "$T/config.json" "$T/config.orig"
cp "$T/q.txt" "$T/q.orig"
expect_code 2 "batch --out naming INPUT" $TO "$CONVBI" batch --config "$T/config.json" --db "$DB" --out "$T/q.txt" "$T/q.txt"
check "INPUT is unchanged" cmp -s "$T/q.txt" "$T/q.orig"
mkdir "$T/prompts" && cp "$SOURCE_DIR"/prompts/*.txt "$T/prompts/"
cp "$T/prompts/sql.txt" "$T/sql.orig"
expect_code 2 "batch --out naming a prompt file" $TO "$CONVBI" batch --config "$T/config.json" --db "$DB" --prompts "$T/prompts" --out "$T/prompts/sql.txt" "$T/q.txt"
check "the prompt is unchanged" cmp -s "$T/prompts/sql.txt" "$T/sql.orig"
cp "$DB" "$T/other.db" && cp "$DB" "$T/other.orig"
expect_code 2 "batch --resume on another database" $TO "$CONVBI" batch --config "$T/config.json" --db "$DB" --resume --out "$T/other.db" "$T/q.txt"
contains "$ERR" "is a SQLite database; convbi would overwrite it" "says it is a database"
check "that file is unchanged" cmp -s "$T/other.db" "$T/other.orig"
head -c 4096 "$DB" | tail -c 3000 >"$T/other.bin" && cp "$T/other.bin" "$T/other.bin.orig"
expect_code 2 "batch --resume on a file that is not ours" $TO "$CONVBI" batch --config "$T/config.json" --db "$DB" --resume --out "$T/other.bin" "$T/q.txt"
contains "$ERR" "is not a JSONL result file of \`convbi batch\`" "says it is not ours"
check "that file is unchanged" cmp -s "$T/other.bin" "$T/other.bin.orig"
printf 'my notes, no newline' >"$T/notes.txt"
expect_code 2 "batch --resume on a text file without a newline" $TO "$CONVBI" batch --config "$T/config.json" --db "$DB" --resume --out "$T/notes.txt" "$T/q.txt"
check "it is not cut to zero bytes" test "$(cat "$T/notes.txt")" = "my notes, no newline"
mkfifo "$T/input.fifo"
expect_code 2 "batch INPUT naming a FIFO" $TO "$CONVBI" batch --config "$T/config.json" --db "$DB" "$T/input.fifo"
contains "$ERR" "INPUT \`$T/input.fifo\`: a FIFO (named pipe), not a regular file" "says what it is"
expect_code 2 "--notes naming a FIFO" $TO "$CONVBI" ask --config "$T/config.json" --db "$DB" --notes "$T/input.fifo" "How many customers are there?"
contains "$ERR" "cannot be read (a FIFO (named pipe), not a regular file)" "says what it is"
head -c 300000 /dev/zero | tr '\0' 'n' >"$T/big_notes.md"
expect_code 2 "--notes over its size limit is a usage error" $TO "$CONVBI" ask --config "$T/config.json" --db "$DB" --notes "$T/big_notes.md" "How many customers are there?"
contains "$ERR" "is over 262144 bytes; keep the notes shorter" "says the limit"
expect_code 2 "serve --tokens naming a FIFO" $TO "$CONVBI" serve --config "$T/config.json" --db "$DB" --listen 127.0.0.1:0 --tokens "$T/input.fifo"
contains "$ERR" "cannot read the tokens file $T/input.fifo: a FIFO (named pipe), not a regular file" "says what it is"
expect_code 2 "eval on a question file that is a FIFO" $TO "$CONVBI" eval --config "$T/config.json" "$T/input.fifo"
contains "$ERR" "a FIFO (named pipe), not a regular file" "says what it is"
expect_code 0 "a fresh --out still works" $TO "$CONVBI" batch --config "$T/config.json" --db "$DB" --out "$T/fresh.jsonl" "$T/q.txt"
expect_code 0 "and --resume on it" $TO "$CONVBI" batch --config "$T/config.json" --db "$DB" --resume --out "$T/fresh.jsonl" "$T/q.txt"
# a line answers a question only when it was asked of the same database (attack7 N4)
printf '{"id":"q1","question":"How many customers are there?"}\n' >"$T/j_a.jsonl"
printf '{"id":"q1","question":"How many customers are there?","db":"%s"}\n' "$T/wal-less.db" >"$T/j_d.jsonl"
expect_code 0 "batch over a JSONL INPUT" $TO "$CONVBI" batch --config "$T/config.json" --db "$DB" --out "$T/jj.jsonl" "$T/j_a.jsonl"
cp "$T/jj.jsonl" "$T/jj.orig"
expect_code 2 "--resume when INPUT now names another db for an answered id" $TO "$CONVBI" batch --config "$T/config.json" --db "$DB" --resume --out "$T/jj.jsonl" "$T/j_d.jsonl"
contains "$ERR" "$T/jj.jsonl:1 answers id q1 from --db's database, but INPUT now asks it of \`$T/wal-less.db\`" "names both databases"
check "the output is unchanged" cmp -s "$T/jj.jsonl" "$T/jj.orig"
# a hand-written line with no answer and no error is not a result line, even as the last one
printf '{"id":1,"question":"How many customers are there?"}\n' >"$T/mine.jsonl"
cp "$T/mine.jsonl" "$T/mine.orig"
expect_code 2 "--resume on a hand-written line without an answer" $TO "$CONVBI" batch --config "$T/config.json" --db "$DB" --resume --out "$T/mine.jsonl" "$T/q.txt"
contains "$ERR" "$T/mine.jsonl:1: not a result line of \`convbi batch\`" "says which line is not ours"
check "the user's line is not cut" cmp -s "$T/mine.jsonl" "$T/mine.orig"

# ---- a WAL-mode database: no -wal or -shm appears beside it ---------------------------------
mkdir "$T/wal" && cp "$DB" "$T/wal/shop.db"
sqlite3 "$T/wal/shop.db" "PRAGMA journal_mode=WAL" >/dev/null
check "the copy is in WAL mode with no side files" test "$(ls "$T/wal")" = "shop.db"
expect_code 0 "schema of a WAL-mode database" $TO "$CONVBI" schema --db "$T/wal/shop.db"
expect_code 0 "a question on it" $TO "$CONVBI" ask --config "$T/config.json" --db "$T/wal/shop.db" "How many customers are there?"
contains "$OUT" "200" "answered from the database"
check "nothing new in the user's folder" test "$(ls "$T/wal")" = "shop.db"

finish
