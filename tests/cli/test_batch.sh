#!/usr/bin/env bash
# test_batch.sh -- `convbi batch` against the fake Azure OpenAI server.
#
# Covers: conversations (lines sharing a "session") answered in order with
# their history -- the follow-up's SQL prompt must carry the first
# question and not another session's -- while different sessions run in
# parallel (seen in the fake's request log: several requests arrive at
# once); the JSONL fields, the row cap, exact big integers; the CSV format
# (RFC 4180 quoting); exit codes 0 (all answered), 1 (some failed) and 2
# (usage: missing or bad INPUT named as FILE:LINE, duplicate ids,
# bad flags).  Assertions are bash, grep and awk only.
# Environment (from CTest): CONVBI FAKE_AOAI BUILD_DIR SAMPLE_DB.
. "$(dirname "$0")/lib.sh"
: "${CONVBI:?}" "${FAKE_AOAI:?}" "${BUILD_DIR:?}" "${SAMPLE_DB:?}"

# ---- the fake server ---------------------------------------------------------
cat >"$T/sql_map.json" <<'EOF'
{
 "How many customers are there?": "```sql\nSELECT count(*) AS n FROM customers\n```",
 "How many customers are in Europe?": "```sql\nSELECT count(*) AS n FROM customers c JOIN countries k ON k.code = c.country_code WHERE k.region = 'Europe'\n```",
 "How many products are there?": "```sql\nSELECT count(*) AS n FROM products\n```",
 "How many products are in the Toys category?": "```sql\nSELECT count(*) AS n FROM products p JOIN categories c ON c.id = p.category_id WHERE c.name = 'Toys'\n```",
 "List 150 customer ids": "```sql\nSELECT id FROM customers ORDER BY id LIMIT 150\n```",
 "What is the big number?": "```sql\nSELECT 9007199254740993 AS big, 0.5 AS half\n```",
 "Write broken SQL": "```sql\nSELEC nothing FROM nowhere\n```"
}
EOF
cat >"$T/scenario.json" <<'EOF'
{
 "endpoints": [
  {"name": "slow", "api_key": "k-slow", "deployment": "gpt-4o", "latency_ms": 400},
  {"name": "fast", "api_key": "k-fast", "deployment": "gpt-4o"}
 ],
 "rules": [
  {"match": "intent classifier[\\s\\S]*User message: and only those in Europe\\?",
   "reply": "{\"intent\": \"follow_up\", \"standalone_question\": \"How many customers are in Europe?\", \"reply\": \"\"}"},
  {"match": "intent classifier[\\s\\S]*User message: and only the Toys\\?",
   "reply": "{\"intent\": \"follow_up\", \"standalone_question\": \"How many products are in the Toys category?\", \"reply\": \"\"}"},
  {"match": "intent classifier",
   "reply": "{\"intent\": \"data_question\", \"standalone_question\": \"\", \"reply\": \"\"}"},
  {"match": "SQL writer[\\s\\S]*\\nQuestion: ([^\\n]*)", "map_file": "sql_map.json",
   "default": "```sql\nSELECT 1 AS one\n```"},
  {"match": "answer writer", "reply": "Here is the answer."}
 ]
}
EOF
launch_fake "$T/scenario.json"

# config NAME FILE: a convbi config with the one endpoint NAME
config() {
	local port
	port=$(awk -v n="$1" '$1 == n { print $2 }' "$T/ports")
	cat >"$2" <<EOF
{"endpoints": [{"name": "$1", "kind": "azure", "url": "http://127.0.0.1:$port", "deployment": "gpt-4o",
  "api_version": "2024-10-21", "api_key": "k-$1", "priority": 0, "weight": 1}],
 "retry": {"max_attempts": 6, "deadline_ms": 20000, "connect_timeout_ms": 1000, "first_byte_timeout_ms": 5000,
  "idle_timeout_ms": 5000},
 "state": {"path": "$T/state-$1"}}
EOF
}
config slow "$T/slow.json"
config fast "$T/fast.json"

# ids FILE: the id of every JSON line, one per line
ids() { sed -n 's/^{"id":\("[^"]*"\|[0-9]*\),.*/\1/p' "$1"; }
# line_of FILE ID: the JSON line of one id
line_of() { grep -F "{\"id\":$2," "$1"; }

# ---- sessions: parallel conversations, follow-ups with their history -------------
cat >"$T/sessions.jsonl" <<'EOF'
{"id": "a1", "session": "A", "question": "How many customers are there?"}
{"id": "b1", "session": "B", "question": "How many products are there?"}
{"id": "a2", "session": "A", "question": "and only those in Europe?"}
{"id": "b2", "session": "B", "question": "and only the Toys?"}

{"id": "c", "question": "Standalone question one"}
{"id": "d", "question": "Standalone question two"}
{"id": "e", "question": "Standalone question three"}
{"id": "f", "question": "Standalone question four"}
EOF
"$CONVBI" batch --db "$SAMPLE_DB" --config "$T/slow.json" -j 4 --out "$T/sessions.out" "$T/sessions.jsonl" \
	2>"$T/sessions.err"
rc=$?
check "batch with sessions exits 0 (got $rc)" test "$rc" -eq 0
check "8 result lines" test "$(grep -c . "$T/sessions.out")" -eq 8
check "every id exactly once" test "$(ids "$T/sessions.out" | sort | uniq | tr '\n' ' ')" = '"a1" "a2" "b1" "b2" "c" "d" "e" "f" '
check "the follow-up is classified follow_up" grep -q '"intent":"follow_up"' <<<"$(line_of "$T/sessions.out" '"a2"')"
check "the follow-up carries its session" grep -q '"session":"A"' <<<"$(line_of "$T/sessions.out" '"a2"')"
# the SQL prompt of A's follow-up holds A's first question and not B's
euro=$(grep -F 'Question: How many customers are in Europe?' "$T/requests.log" | grep -F 'SQL writer')
check "the follow-up's SQL prompt was sent" test -n "$euro"
check "the follow-up's SQL prompt holds the first question of its session" grep -qF 'How many customers are there?' <<<"$euro"
check "the follow-up's SQL prompt holds no other session's question" bash -c '! grep -qF "How many products are there?" <<<"$1"' _ "$euro"
toys=$(grep -F 'Question: How many products are in the Toys category?' "$T/requests.log" | grep -F 'SQL writer')
check "B's follow-up's SQL prompt holds B's first question" grep -qF 'How many products are there?' <<<"$toys"
check "the first question of a session has no history" bash -c '! grep -F "Question: How many customers are there?" "$1" | grep -qF "Conversation so far"' _ "$T/requests.log"
check "the follow-up ran its own SQL" grep -qF "region = 'Europe'" <<<"$(line_of "$T/sessions.out" '"a2"')"
# parallel: with 400 ms per call, a serial run has one request in its first 300 ms
first_burst=$(awk -F'"t_ms":' 'NF > 1 { split($2, a, ","); t[++n] = a[1] }
	END { m = t[1]; for (i = 1; i <= n; i++) if (t[i] < m) m = t[i];
	      c = 0; for (i = 1; i <= n; i++) if (t[i] - m < 300) c++; print c }' "$T/requests.log")
check "sessions ran in parallel ($first_burst requests in the first 300 ms, want >= 3)" test "$first_burst" -ge 3
check "the summary names the answered count" grep -q '8 answered, 0 failed' "$T/sessions.err"
check "the summary lists calls per endpoint" grep -q 'calls per endpoint: slow 24' "$T/sessions.err"
check "plain progress lines when stderr is not a terminal" bash -c '! grep -q $'"'"'\r'"'"' "$1"' _ "$T/sessions.err"

# ---- JSONL fields, row cap, exact numbers ---------------------------------------------
printf 'List 150 customer ids\nWhat is the big number?\n' >"$T/fields.txt"
"$CONVBI" batch --db "$SAMPLE_DB" --config "$T/fast.json" "$T/fields.txt" >"$T/fields.out" 2>"$T/fields.err"
rc=$?
check "a text INPUT exits 0 (got $rc)" test "$rc" -eq 0
l1=$(line_of "$T/fields.out" 1)
for f in id question intent sql columns rows row_count truncated answer error error_class usage attempts \
	attempts_per_endpoint elapsed_ms; do
	check "the JSON line has \"$f\"" grep -q "\"$f\":" <<<"$l1"
done
nrows=$(sed 's/.*"rows":\[\(.*\)\],"row_count".*/\1/' <<<"$l1" | grep -o '\[' | wc -l)
check "JSONL keeps every row up to the default row cap, as ask (got $nrows)" test "$nrows" -eq 150
check "row_count is the whole count" grep -q '"row_count":150,"truncated":false' <<<"$l1"
"$CONVBI" batch --db "$SAMPLE_DB" --config "$T/fast.json" --row-cap 100 "$T/fields.txt" >"$T/cap.out" 2>"$T/cap.err"
l1=$(line_of "$T/cap.out" 1)
nrows=$(sed 's/.*"rows":\[\(.*\)\],"row_count".*/\1/' <<<"$l1" | grep -o '\[' | wc -l)
check "--row-cap 100 keeps 100 rows (got $nrows)" test "$nrows" -eq 100
check "a cut result says truncated" grep -q '"truncated":true' <<<"$l1"
l1=$(line_of "$T/fields.out" 1)
check "ids default to the line number" test "$(ids "$T/fields.out" | sort | tr '\n' ' ')" = "1 2 "
check "a 64-bit integer is written exactly" grep -q '"rows":\[\[9007199254740993,0.5\]\]' <<<"$(line_of "$T/fields.out" 2)"
check "attempts per endpoint are counted" grep -q '"attempts_per_endpoint":{"fast":{"attempts":3,"rate_limited":0,"cost_usd":0}}' <<<"$l1"

# ---- CSV -----------------------------------------------------------------------------
printf '%s\n' '{"id": 7, "question": "List three, \"quoted\" things"}' '{"id": 8, "question": "How many customers are there?"}' \
	>"$T/csv.jsonl"
"$CONVBI" batch --db "$SAMPLE_DB" --config "$T/fast.json" --format csv --out "$T/out.csv" "$T/csv.jsonl" 2>"$T/csv.err"
rc=$?
check "--format csv exits 0 (got $rc)" test "$rc" -eq 0
check "the CSV header" test "$(head -n1 "$T/out.csv")" = $'id,question,intent,sql,answer,error,error_class,elapsed_ms,cost_usd\r'
check "3 CSV records" test "$(grep -c $'\r$' "$T/out.csv")" -eq 3
check "a field with a comma and quotes is quoted, quotes doubled" grep -q '^7,"List three, ""quoted"" things",data_question,SELECT 1 AS one,Here is the answer.,,,[0-9]*,0.000000'$'\r''$' "$T/out.csv"
check "a plain row" grep -q '^8,How many customers are there?,data_question,SELECT count(\*) AS n FROM customers,Here is the answer.,,,[0-9]*,0.000000'$'\r''$' "$T/out.csv"

# ---- exit 1: some questions fail ---------------------------------------------------------
printf 'How many customers are there?\nWrite broken SQL\n' >"$T/some.txt"
"$CONVBI" batch --db "$SAMPLE_DB" --config "$T/fast.json" --max-repairs 0 -v "$T/some.txt" >"$T/some.out" 2>"$T/some.err"
rc=$?
check "a failed question makes the exit code 1 (got $rc)" test "$rc" -eq 1
check "the failure is written with its class" grep -q '"error_class":"EREPAIR"' <<<"$(line_of "$T/some.out" 2)"
check "the good question is written too" grep -q '"error":null' <<<"$(line_of "$T/some.out" 1)"
check "the summary counts failures by class" grep -q '1 answered, 1 failed (EREPAIR 1)' "$T/some.err"
check "-v names the failed question as it fails" grep -q '^convbi: batch: id 2 failed: EREPAIR: no valid SQL' "$T/some.err"

# ---- exit 2: usage ---------------------------------------------------------------------------
usage() { # WHAT EXPECTED-STDERR-REGEX ARGS...
	local what=$1 re=$2
	shift 2
	"$CONVBI" batch "$@" >"$T/usage.out" 2>"$T/usage.err"
	local rc=$?
	check "$what exits 2 (got $rc)" test "$rc" -eq 2
	check "$what says so in one line" bash -c 'test "$(grep -c . "$1")" -eq 1 && grep -qE -e "$2" "$1"' _ "$T/usage.err" "$re"
	check "$what writes no result" test ! -s "$T/usage.out"
}
usage "a missing INPUT" "cannot read INPUT .*nope.txt.*No such file" --db "$SAMPLE_DB" --config "$T/fast.json" "$T/nope.txt"
printf '{"question": "fine"}\n{"question": "broken"\n' >"$T/bad.jsonl"
usage "a bad JSONL line" "bad.jsonl:2: not a JSON object" --db "$SAMPLE_DB" --config "$T/fast.json" "$T/bad.jsonl"
printf '{"question": "q"}\n{"id": 5}\n' >"$T/noq.jsonl"
usage "a line without question" "noq.jsonl:2: .question. is missing" --db "$SAMPLE_DB" --config "$T/fast.json" "$T/noq.jsonl"
printf '{"id": 1, "question": "a"}\n{"id": 1, "question": "b"}\n' >"$T/dup.jsonl"
usage "a duplicate id" "dup.jsonl:2: id .1. is already used on line 1" --db "$SAMPLE_DB" --config "$T/fast.json" "$T/dup.jsonl"
"$CONVBI" batch --config "$T/fast.json" "$T/fields.txt" >"$T/nodb.out" 2>"$T/nodb.err"; rc=$?
check "without --db the sample database is used, as in ask (got $rc)" test "$rc" -eq 0
check "without --db every question is answered" test "$(grep -c '"error":null' "$T/nodb.out")" -eq 2
usage "a bad --format" "--format takes jsonl or csv" --db "$SAMPLE_DB" --format xml "$T/fields.txt"
usage "--resume without --out" "--resume needs --out" --db "$SAMPLE_DB" --resume "$T/fields.txt"
usage "--limit 0" "--limit 0 selects no question of INPUT; give --limit 1 or more" --db "$SAMPLE_DB" --config "$T/fast.json" --limit 0 "$T/fields.txt"
usage "a missing database" "does not exist" --db "$T/missing.db" --config "$T/fast.json" "$T/fields.txt"
printf '{"question": "q", "db": "%s"}\n' "$T/other-missing.db" >"$T/baddb.jsonl"
usage "a missing per-line db" "baddb.jsonl:1: .*does not exist" --db "$SAMPLE_DB" --config "$T/fast.json" "$T/baddb.jsonl"
printf '\n\n' >"$T/empty.txt"
usage "an INPUT without questions" "holds no question" --db "$SAMPLE_DB" --config "$T/fast.json" "$T/empty.txt"

env -u CONVBI_CONFIG -u AZURE_OPENAI_ENDPOINT_0 -u AZURE_OPENAI_API_KEY_0 -u AZURE_OPENAI_DEPLOYMENT_NAME_0 \
	"$CONVBI" batch --db "$SAMPLE_DB" "$T/fields.txt" >"$T/noep.out" 2>"$T/noep.err"
rc=$?
check "no endpoint configured exits 2 before asking anything (got $rc)" test "$rc" -eq 2 -a ! -s "$T/noep.out"
check "and says what to set" grep -q 'no model endpoint is configured; pass --config FILE' "$T/noep.err"

# ---- a per-line db: one engine per database file ------------------------------------------
cp "$SAMPLE_DB" "$T/copy.db"
printf '{"id": 1, "question": "How many customers are there?"}\n{"id": 2, "question": "How many customers are there?", "db": "%s"}\n' \
	"$T/copy.db" >"$T/twodb.jsonl"
"$CONVBI" batch --db "$SAMPLE_DB" --config "$T/fast.json" "$T/twodb.jsonl" >"$T/twodb.out" 2>"$T/twodb.err"
rc=$?
check "a per-line db exits 0 (got $rc)" test "$rc" -eq 0
check "the per-line db is echoed" grep -qF "\"db\":\"$T/copy.db\"" <<<"$(line_of "$T/twodb.out" 2)"
check "both databases answer the same" test "$(grep -c '"rows":\[\[200\]\]' "$T/twodb.out")" -eq 2

finish
