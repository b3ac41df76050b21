#!/usr/bin/env bash
# test_ground.sh -- grounding from the command line: `convbi index` (builds
# under $XDG_CACHE_HOME/convbi with progress, then reuses; never writes the
# database), `convbi schema QUESTION` naming a stored value the samples do
# not show, ranges, --today reaching the prompts (and a bad date refused),
# and the sample database's business notes reaching the SQL prompt only
# when the question needs them (and --notes '' turning them off).
. "$(dirname "$0")/lib.sh"
export XDG_CACHE_HOME="$T/cache"
K=k-ground-4f1e2d3c5b
I='You are the intent classifier'; S='You are the SQL writer'; A='You are the answer writer'
start_fake '{"endpoints":[{"name":"east","api_key":"'$K'","deployment":"gpt-4o"}],
 "rules":[{"match":"'"$I"'","reply":"{\"intent\":\"data_question\"}"},
          {"match":"'"$S"'","reply":"```sql\nSELECT count(*) AS n FROM customers\n```"},
          {"match":"'"$A"'","reply":"There are 200 customers."}],
 "default_reply":"OK"}'
C=$T/config.json
write_config "$C" east:$K
cp "$SAMPLE_DB" "$T/shop.db"
cp "$SOURCE_DIR/data/shop.notes.md" "$T/shop.notes.md"
SUM=$(sha256sum "$T/shop.db" | cut -d' ' -f1)

expect_code 0 "index builds" "$CONVBI" index --db "$T/shop.db"
contains "$OUT" "built value index $T/cache/convbi/shop.db-" "the index lives under XDG_CACHE_HOME/convbi"
contains "$ERR" "convbi: indexing " "progress is shown on stderr"
expect_code 0 "index again" "$CONVBI" index --db "$T/shop.db"
contains "$OUT" "reused value index" "a fresh index is reused"
[ "$(sha256sum "$T/shop.db" | cut -d' ' -f1)" = "$SUM" ] && ok "the database's bytes are unchanged" || bad "the database changed"
# a build that was killed (Ctrl-C) left its temporary file: the next build sweeps it, a live one's stays
IDX=$(ls "$T"/cache/convbi/shop.db-*.vindex | head -1)
DEAD=$(sh -c 'echo $$')
printf 'partial' >"$IDX.tmp.$DEAD"
sleep 300 & LIVE=$!
printf 'partial' >"$IDX.tmp.$LIVE"
expect_code 0 "index --rebuild" "$CONVBI" index --rebuild --db "$T/shop.db"
check "a dead build's temporary file is removed" test ! -e "$IDX.tmp.$DEAD"
check "a running build's is left alone" test -e "$IDX.tmp.$LIVE"
kill $LIVE; rm -f "$IDX.tmp.$LIVE"

# a customer's name is no generic sample: only the index can name it
NAME=$(sqlite3 "$T/shop.db" "SELECT name FROM customers ORDER BY id DESC LIMIT 1")
expect_code 0 "schema without the question" "$CONVBI" schema --db "$T/shop.db"
lacks "$OUT" "'$NAME'" "the plain schema text does not show the customer"
expect_code 0 "schema with the question" "$CONVBI" schema --db "$T/shop.db" "how many orders did $NAME place?"
contains "$OUT" "name: '$NAME'" "the grounded schema text names the stored value"
contains "$OUT" "('2023-01-01'..'2025-12-31')" "a date column shows its range after its samples"

# schema takes --today, --notes and --examples and shows what the SQL writer gets with them (attack3 F12)
printf '{"question":"How many stores are there?","sql":"SELECT count(*) FROM stores","db":"shop"}\n' > "$T/ctx_examples.jsonl"
expect_code 0 "schema with --today, --notes and --examples" "$CONVBI" schema --db "$T/shop.db" --today 2024-06-15 \
  --notes "$SOURCE_DIR/data/shop.notes.md" --examples "$T/ctx_examples.jsonl" "what was the revenue of our stores?"
contains "$OUT" "-- today: 2024-06-15" "the date the prompt calls today"
contains "$OUT" "Revenue is the **net amount**" "the notes' section the question gets"
lacks "$OUT" "The return rate is" "and not a section it does not get"
contains "$OUT" "SQL: SELECT count(*) FROM stores" "the example its first SQL call is shown"
expect_code 2 "schema with a --today that is no real date" "$CONVBI" schema --db "$T/shop.db" --today 2024-02-30
contains "$ERR" "today is \`2024-02-30\`, which is no real date (February 2024 has no day 30); give a date as YYYY-MM-DD" "the message says the day does not exist"
expect_code 2 "schema with --today in year 0" "$CONVBI" schema --db "$T/shop.db" --today 0000-01-01
contains "$ERR" "today is \`0000-01-01\`, which is no real date (there is no year 0); give a date as YYYY-MM-DD" "year 0 is refused in the same words"
expect_code 2 "a bad --today is refused" "$CONVBI" ask --config "$C" --db "$T/shop.db" --today 2026-02-30 "how many customers?"
contains "$ERR" "give a date as YYYY-MM-DD" "the message says the format"
expect_code 0 "ask with --today" "$CONVBI" ask --config "$C" --db "$T/shop.db" --today 2024-06-15 "what was the revenue last month?"
SQLREQ=$(grep 'You are the SQL writer' "$T/requests.log" | tail -1)
contains "$SQLREQ" "Today is 2024-06-15" "the SQL prompt gets today's date"
contains "$(grep 'You are the intent classifier' "$T/requests.log" | tail -1)" "Today is 2024-06-15" "the intent prompt gets it too"
contains "$SQLREQ" "Revenue is the **net amount**" "the notes' revenue section reaches the SQL prompt"
lacks "$SQLREQ" "The return rate is" "a section the question does not need stays out"

expect_code 0 "ask with --notes ''" "$CONVBI" ask --config "$C" --db "$T/shop.db" --notes '' "what was the revenue last month?"
lacks "$(grep 'You are the SQL writer' "$T/requests.log" | tail -1)" "Business notes" "--notes '' turns the notes off"
expect_code 2 "a missing --notes file is refused" "$CONVBI" ask --config "$C" --db "$T/shop.db" --notes "$T/nope.md" "revenue?"
contains "$ERR" "nope.md" "the message names the file"
finish
