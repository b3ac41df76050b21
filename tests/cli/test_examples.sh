#!/usr/bin/env bash
# test_examples.sh -- verified examples end to end: `convbi examples add`
# (the SQL must pass the gate; duplicates and broken files refused),
# `examples import` (only an eval run's correct answers), the REPL's
# `.save`; the SQL prompt's {{examples}} (a draft first, the examples
# chosen again by its skeleton, a second call only when they change); and
# `convbi eval --examples --notes --candidates` (the run's own questions
# never offered as examples, notes per database, tokens per question).
. "$(dirname "$0")/lib.sh"
export XDG_CACHE_HOME="$T/cache"
K=k-examples-5c1d0e9b
start_fake '{"endpoints":[{"name":"east","api_key":"'$K'","deployment":"gpt-4o"}],
 "rules":[{"match":"You are the intent classifier","reply":"{\"intent\":\"data_question\"}"},
  {"match":"You are the SQL writer[\\s\\S]*\\nQuestion: How many customers are in each segment","sequence":[
    "```sql\nSELECT segment FROM customers\n```","```sql\nSELECT segment, count(*) FROM customers GROUP BY segment\n```"]},
  {"match":"You are the SQL writer","reply":"```sql\nSELECT count(*) AS n FROM customers\n```"},
  {"match":"You are the answer writer","reply":"Done."}],
 "default_reply":"OK"}'
C=$T/config.json
write_config "$C" east:$K
cp "$SAMPLE_DB" "$T/shop.db"
EX=$T/shop.examples.jsonl
sqlreqs() { tail -n +"$((MARK + 1))" "$T/requests.log" | grep 'You are the SQL writer'; }
mark() { MARK=$(wc -l < "$T/requests.log"); }

# ---- adding by hand -----------------------------------------------------------
expect_code 0 "examples add" "$CONVBI" examples add --examples "$EX" --db "$T/shop.db" \
  "How many customers are in each city?" "SELECT city, count(*) FROM customers GROUP BY city"
contains "$OUT" "added to $EX (shop;" "it says where and for which database"
contains "$(cat "$EX")" '{"question":"How many customers are in each city?","sql":"SELECT city, count(*) FROM customers GROUP BY city","db":"shop"}' "one JSON line with the database's name"
expect_code 0 "the same question again" "$CONVBI" examples add --examples "$EX" --db "$T/shop.db" \
  "How many customers are in each city?" "SELECT city, count(city) FROM customers GROUP BY 1"
contains "$OUT" "already has this question" "a question already there is not added twice"
expect_code 2 "SQL that writes is refused" "$CONVBI" examples add --examples "$EX" --db "$T/shop.db" "Remove them" "DELETE FROM customers"
contains "$ERR" "only SELECT is allowed" "the gate's reason is given"
expect_code 2 "SQL that does not run is refused" "$CONVBI" examples add --examples "$EX" --db "$T/shop.db" "Q" "SELECT nope FROM customers"
contains "$ERR" "no such column: nope" "the database's reason is given"
expect_code 2 "no --examples" "$CONVBI" examples add --db "$T/shop.db" "Q" "SELECT 1"
contains "$ERR" "--examples F" "the message says what to give"
for q in "How many orders are in each channel?|SELECT channel, count(*) FROM orders GROUP BY channel" \
         "How many products are in each category?|SELECT c.name, count(*) FROM products p JOIN categories c ON c.id = p.category_id GROUP BY c.name" \
         "List the segment of every customer|SELECT segment FROM customers"; do
  "$CONVBI" examples add --examples "$EX" --db "$T/shop.db" "${q%%|*}" "${q#*|}" >/dev/null || bad "adding ${q%%|*}"
done
[ "$(wc -l < "$EX")" = 4 ] && ok "four examples in the file" || bad "examples: $(wc -l < "$EX")"
cp "$EX" "$T/broken.jsonl"; echo '{"question": "no sql"}' >> "$T/broken.jsonl"
expect_code 2 "a broken examples file is refused" "$CONVBI" ask --config "$C" --db "$T/shop.db" --examples "$T/broken.jsonl" "how many?"
contains "$ERR" "broken.jsonl:5: \`sql\` is missing" "the message names the file and the line"

# ---- the SQL prompt -------------------------------------------------------------
mark
expect_code 0 "ask with examples" "$CONVBI" ask --config "$C" --db "$T/shop.db" --examples "$EX" --json "How many customers are there?"
R=$(sqlreqs)
[ "$(printf '%s\n' "$R" | grep -c .)" = 1 ] && ok "the draft stands when the examples stay the same" || bad "SQL requests: $(printf '%s\n' "$R" | grep -c .)"
contains "$R" "Verified examples" "the examples section is in the SQL prompt"
contains "$R" "Question: How many customers are in each city?" "the example closest to the question is shown"
mark
expect_code 0 "a draft whose skeleton changes the examples" "$CONVBI" ask --config "$C" --db "$T/shop.db" --examples "$EX" --json "How many customers are in each segment?"
R=$(sqlreqs)
[ "$(printf '%s\n' "$R" | grep -c .)" = 2 ] && ok "two SQL calls: the draft, then the final" || bad "SQL requests: $(printf '%s\n' "$R" | grep -c .)"
lacks "$(printf '%s\n' "$R" | head -1)" "List the segment of every customer" "the draft's examples are chosen by the question"
contains "$(printf '%s\n' "$R" | tail -1)" "List the segment of every customer" "the final call's examples include the one sharing the draft's skeleton"
contains "$OUT" '"sql":"SELECT segment, count(*) FROM customers GROUP BY segment"' "the final call's SQL is the answer"
mark
expect_code 0 "ask without examples" "$CONVBI" ask --config "$C" --db "$T/shop.db" "How many customers are there?"
lacks "$(sqlreqs)" "Verified examples" "no examples file, no examples section"

# a tuned prompt written before {{today}}, {{notes}}, {{examples}} and {{dialect}} still loads
mkdir -p "$T/oldprompts"; cp "$SOURCE_DIR"/prompts/*.txt "$T/oldprompts/"
sed -i -e 's/{{#today}}.*{{\/today}}//' -e '/notes}}/d' -e '/examples}}/d' -e '/^Business notes/d' -e '/^Verified examples/d' \
  -e 's/in the SQL dialect of {{dialect}}/in SQLite/' -e 's/that {{dialect}} has/that SQLite has/' "$T/oldprompts/sql.txt"
mark
expect_code 0 "a prompt without the new placeholders still loads" "$CONVBI" ask --config "$C" --db "$T/shop.db" \
  --prompts "$T/oldprompts" --examples "$EX" "How many customers are there?"
lacks "$(sqlreqs)" "Verified examples" "and the examples simply stay out of it"

# ---- the REPL's .save -----------------------------------------------------------
printf 'How many customers are there?\n.save\n.save\n' | "$CONVBI" --config "$C" --db "$T/shop.db" --examples "$T/saved.jsonl" >"$T/out" 2>"$T/err"
contains "$(cat "$T/out")" "saved to $T/saved.jsonl: How many customers are there?" ".save says what it kept"
contains "$(cat "$T/out")" "already has this question" "saving twice keeps one"
contains "$(cat "$T/saved.jsonl")" '{"question":"How many customers are there?","sql":"SELECT count(*) AS n FROM customers","db":"shop"}' "the question and the SQL that answered it"
printf '.save\n' | "$CONVBI" --config "$C" --db "$T/shop.db" --examples "$T/saved.jsonl" >"$T/out" 2>"$T/err"
contains "$(cat "$T/err")" "no answered question to save" "nothing asked, nothing saved"

# ---- importing an eval run ---------------------------------------------------------
cat >"$T/result.jsonl" <<'EOF'
{"index":0,"db_id":"shop","question":"How many stores are there?","gold_sql":"SELECT count(*) FROM stores","pred_sql":"SELECT count(id) FROM stores","verdict":"correct"}
{"index":1,"db_id":"shop","question":"Which store is oldest?","gold_sql":"SELECT name FROM stores ORDER BY opened_on LIMIT 1","pred_sql":"SELECT name FROM stores LIMIT 1","verdict":"wrong_result"}
{"index":2,"db_id":"shop","question":"How many customers are in each city?","gold_sql":"x","pred_sql":"SELECT city, count(*) FROM customers GROUP BY 1","verdict":"correct"}
{"index":3,"db_id":"shop","question":"Nothing written","gold_sql":"x","pred_sql":null,"verdict":"model_failure"}
EOF
expect_code 0 "examples import" "$CONVBI" examples import --examples "$EX" "$T/result.jsonl"
contains "$OUT" "imported 1 example into $EX (2 correct of 4 results; 1 already there)" "only new correct answers are imported"
contains "$(tail -1 "$EX")" '{"question":"How many stores are there?","sql":"SELECT count(id) FROM stores","db":"shop"}' "with the predicted SQL and its database"
# an edited result file: every line's SQL goes through the gate on its own database (attack3 F9)
cp "$T/shop.db" "$T/shop2.db"
cat >"$T/hostile.jsonl" <<EOF
{"index":0,"db_id":"shop","question":"hostile correct","gold_sql":"DELETE FROM orders","pred_sql":"DELETE FROM orders","verdict":"correct"}
{"index":1,"db_id":"../../etc","question":"path db","gold_sql":"x","pred_sql":"SELECT 1","verdict":"correct"}
{"index":2,"db_id":"other","question":"elsewhere","gold_sql":"x","pred_sql":"SELECT 1","verdict":"correct"}
{"index":3,"db_id":"shop","question":"How many orders are there?","gold_sql":"x","pred_sql":"SELECT count(*) FROM orders","verdict":"correct"}
{"index":4,"db_id":"shop2","question":"How many stores, again?","gold_sql":"x","pred_sql":"SELECT count(*) FROM stores","verdict":"correct","db_path":"$T/shop2.db"}
{"index":5,"db_id":"shop2","question":"Nope","gold_sql":"x","pred_sql":"SELECT nope FROM stores","verdict":"correct","db_path":"$T/shop2.db"}
EOF
expect_code 0 "examples import gates each line" "$CONVBI" examples import --examples "$EX" --db "$T/shop.db" "$T/hostile.jsonl"
contains "$OUT" "imported 2 examples into $EX (6 correct of 6 results; 0 already there; 4 skipped, see above)" "refused lines are counted"
contains "$ERR" "hostile.jsonl:1: skipped: the SQL does not pass on" "a DELETE is refused by the gate"
contains "$ERR" 'hostile.jsonl:2: skipped: db_id `../../etc` is not a database name' "a path for a db_id is refused"
contains "$ERR" 'hostile.jsonl:3: skipped: its SQL cannot be checked: no database named `other`' "a line without its database is skipped"
contains "$ERR" "hostile.jsonl:6: skipped: the SQL does not pass on" "SQL that does not run on the line's db_path is refused"
lacks "$(cat "$EX")" "DELETE" "no DELETE became an example"
contains "$(cat "$EX")" '"sql":"SELECT count(*) FROM stores","db":"shop2"' "a line is gated on its db_path"
echo '{"question": "x"}' > "$T/notresult.jsonl"
expect_code 2 "a file that is no eval result" "$CONVBI" examples import --examples "$EX" "$T/notresult.jsonl"
contains "$ERR" "notresult.jsonl:1: not a \`convbi eval --out\` line" "the message names the line"

# ---- eval with examples, notes and candidates ---------------------------------------
mkdir -p "$T/spider/database/shop" "$T/notes"
cp "$SAMPLE_DB" "$T/spider/database/shop/shop.sqlite"
cat >"$T/spider/dev.json" <<'EOF'
[{"db_id": "shop", "question": "How many stores are there?", "query": "SELECT count(*) FROM stores"},
 {"db_id": "shop", "question": "How many customers are there?", "query": "SELECT count(*) FROM customers"}]
EOF
printf '# Stores\nA store is a row of the stores table.\n' > "$T/notes/shop.md"
mark
expect_code 0 "eval --examples --notes --candidates" "$CONVBI" eval --config "$C" --examples "$EX" \
  --notes "$T/notes/{db_id}.md" --candidates 2 -j 1 --out "$T/eval.jsonl" "$T/spider"
contains "$OUT" "context: examples $EX (this run's own questions left out), notes $T/notes/{db_id}.md, candidates 2; 1 example line left out" "the report says what the model was given"
contains "$OUT" "tokens per question" "tokens per question beside EX"
contains "$OUT" "tokens/q" "and per database and difficulty"
R=$(sqlreqs)
lacks "$R" "Question: How many stores are there?\\nSQL:" "a question of the run is never its own example"
contains "$R" "Question: How many customers are in each city?" "the other examples are offered"
contains "$R" "A store is a row of the stores table" "the database's own notes reach the prompt"
contains "$R" '\"n\":2' "two candidates are asked for"
contains "$(head -1 "$T/eval.jsonl")" '"tokens":' "each --out line has its tokens"
[ -z "$(ls "${TMPDIR:-/tmp}" | grep "^convbi-eval-" | while read -r d; do [ -d "${TMPDIR:-/tmp}/$d" ] && find "${TMPDIR:-/tmp}/$d" -newer "$T/result.jsonl" -print; done)" ] \
  && ok "the temporary copies are removed" || bad "temporary copies remain"
finish
