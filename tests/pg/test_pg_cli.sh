#!/usr/bin/env bash
# test_pg_cli.sh -- the convbi command on PostgreSQL, unchanged: ask, the
# REPL through piped stdin, batch, schema with --schemas, eval over a small
# dataset whose databases are PostgreSQL URIs ({db_id} template), the
# dialect in the SQL prompt, PostgreSQL's error with its position fed back
# to the repair loop, and no password in any output, log or result file.
# Needs the "pg" fixture (SCRATCH: $BUILD_DIR/scratch/pg/env).
. "$(dirname "$0")/../cli/lib.sh"
. "$BUILD_DIR/scratch/pg/env" || { echo "FAIL: no pg fixture env" >&2; exit 1; }
I='You are the intent classifier'; S='You are the SQL writer'; A='You are the answer writer'
start_fake '{"endpoints":[{"name":"east","api_key":"k-pg-1","deployment":"gpt-4o"}],
 "rules":[{"match":"'"$I"'","reply":"{\"intent\":\"data_question\"}"},
          {"match":"'"$S"'[\\s\\S]*column \\\"nme\\\" does not exist","reply":"```sql\nSELECT count(*) AS n FROM customers\n```"},
          {"match":"'"$S"'[\\s\\S]*Question: typo","reply":"```sql\nSELECT nme FROM customers\n```"},
          {"match":"'"$S"'[\\s\\S]*Question: gift orders","reply":"```sql\nSELECT count(*) AS n FROM \"Sales\".\"Orders\" WHERE note = '"'"'gift'"'"'\n```"},
          {"match":"'"$S"'[\\s\\S]*Question: stacked","reply":"```sql\nSELECT 1; COMMIT; DELETE FROM customers\n```"},
          {"match":"'"$S"'","reply":"```sql\nSELECT count(*) AS n FROM customers\n```"},
          {"match":"'"$A"'","reply":"There are that many."}]}'
write_config "$T/config.json" east:k-pg-1
SECRET=owner-secret
DB=$PG_SUPER_URI
export XDG_CACHE_HOME="$T/cache"

expect_code 0 "ask on PostgreSQL" "$CONVBI" ask --config "$T/config.json" --db "$DB" "how many customers?"
contains "$OUT" "200" "the count comes from PostgreSQL"
contains "$(cat "$T/requests.log")" "PostgreSQL 15" "the SQL prompt names the dialect and version"

expect_code 0 "a PostgreSQL error goes back to the model with its position" \
  "$CONVBI" ask --json --config "$T/config.json" --db "$DB" "typo"
contains "$OUT" 'at character 8' "the repair saw PostgreSQL's position"
contains "$OUT" '200' "the repaired query answered"

expect_code 0 "--schemas reaches a mixed-case schema" \
  "$CONVBI" ask --config "$T/config.json" --db "$DB" --schemas 'Sales,public' "gift orders"
contains "$OUT" "100" "the quoted, schema-qualified table answered"

expect_code 1 "a stacked COMMIT never runs" "$CONVBI" ask --config "$T/config.json" --db "$DB" --max-repairs 0 "stacked"
contains "$ERR$OUT" "statements; only one SELECT is allowed" "the gate names the extra statements"
n=$(psql -X -At -h "$PG_SOCKET" -p "$PGPORT" -U owner -d shop -c "SELECT count(*) FROM customers")
check "customers are all still there ($n)" test "$n" = 200

expect_code 0 "schema with --schemas" "$CONVBI" schema --db "$DB" --schemas Sales
contains "$OUT" 'CREATE TABLE "Sales"."Orders"' "quoted, schema-qualified names"

printf 'how many customers?\n' > "$T/in.txt"
expect_code 0 "the REPL on PostgreSQL" bash -c "'$CONVBI' repl --config '$T/config.json' --db '$DB' < '$T/in.txt'"
contains "$OUT" "200" "the REPL answered from PostgreSQL"

printf 'how many customers?\ntypo\n' > "$T/questions.txt"
expect_code 0 "batch on PostgreSQL" "$CONVBI" batch --config "$T/config.json" --db "$DB" -j 2 --out "$T/batch.jsonl" "$T/questions.txt"
check "batch wrote two answers" test "$(grep -c '"error":null,' "$T/batch.jsonl")" -eq 2

# eval: a two-question dataset whose database is the shop copy
mkdir -p "$T/ds"
cat > "$T/ds/dev.json" <<'JSON'
[
    {
        "db_id": "shop",
        "query": "SELECT count(*) FROM customers",
        "question": "how many customers?"
    },
    {
        "db_id": "shop",
        "query": "SELECT count(*) FROM customers",
        "question": "typo"
    }
]
JSON
printf 'SELECT count(*) FROM customers\tshop\nSELECT count(*) FROM customers\tshop\n' > "$T/ds/dev_gold.sql"
expect_code 0 "eval with PostgreSQL databases" \
  "$CONVBI" eval --config "$T/config.json" --db "$PG_URI_BASE/{db_id}" --out "$T/eval.jsonl" "$T/ds"
check "both eval answers are correct" test "$(grep -c '"verdict":"correct"' "$T/eval.jsonl")" -eq 2

# serve: a URI named on the command line, and an unnamed key=value string
# (named after its dbname, not after its first key)
C=$T/config.json
. "$SOURCE_DIR/tests/cli/serve_lib.sh"
serve_start "$T/serve.log" --db pg="$DB" --db "host=127.0.0.1 port=$PGPORT dbname=shop user=owner password=$SECRET"
req GET /v1/databases;           is 200 "serve lists the PostgreSQL databases"
contains "$BODY" '{"name":"pg"},{"name":"shop"}' "by the names given or their dbname"
req POST /v1/sessions -d '{"db":"pg"}'; is 201 "a session on PostgreSQL"
sid=$(printf '%s' "$BODY" | sed -n 's/.*"session":"\([0-9a-f]*\)".*/\1/p')
req POST "/v1/sessions/$sid/questions" -d '{"question":"how many customers?"}'; is 200 "serve answers from PostgreSQL"
contains "$BODY" '"rows":[[200]]' "the count came from PostgreSQL"
req POST /v1/sql -d '{"db":"shop","sql":"SELECT count(*) AS n FROM \"Sales\".\"Orders\""}'; is 200 "/v1/sql on PostgreSQL"
contains "$BODY" '[[200]]' "through the gate, unchanged"
req POST /v1/sql -d '{"db":"shop","sql":"SELECT 1; COMMIT; DELETE FROM customers"}'
contains "$BODY" 'only one SELECT is allowed' "/v1/sql refuses a stacked COMMIT"
req GET "/v1/schema?db=pg";      is 200 "/v1/schema on PostgreSQL"
contains "$BODY" 'public.customers' "the schema is PostgreSQL's"
serve_stop
printf '%s' "$ALL" > "$T/serve_responses.txt"
expect_code 2 "serve with a wrong password" "$CONVBI" serve --listen 127.0.0.1:0 --config "$C" \
  --db "bad=postgresql://owner:Wr0ng-Pa55@127.0.0.1:$PGPORT/shop"
contains "$ERR" 'database `bad`: cannot connect' "names the database"
expect_code 2 "an unnamed target without a database name" "$CONVBI" serve --listen 127.0.0.1:0 --config "$C" \
  --db "postgresql://owner:Wr0ng-Pa55@127.0.0.1:$PGPORT"
contains "$ERR" "database name is not 1-63 letters, digits, '_' or '-'; write --db NAME=TARGET" "asks for a name"
# PostgreSQL going away under a running serve (a relay to it killed): the
# clients read the reason without host, port or user; the operator's log
# names the target (never the password)
python3 "$SOURCE_DIR/tests/pg/pg_proxy.py" "$T/proxy.port" "$PGPORT" &
PROXY=$!
for _ in $(seq 100); do [ -s "$T/proxy.port" ] && break; sleep 0.05; done
PP=$(cat "$T/proxy.port")
serve_start "$T/down.log" --db down="host=127.0.0.1 port=$PP dbname=shop user=owner password=$SECRET"
req POST /v1/sessions -d '{"db":"down"}'; is 201 "a session on PostgreSQL through the relay"
sid=$(printf '%s' "$BODY" | sed -n 's/.*"session":"\([0-9a-f]*\)".*/\1/p')
kill "$PROXY"; wait "$PROXY" 2>/dev/null
printf '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run_sql","arguments":{"db":"down","sql":"SELECT 1"}}}' > "$T/down_mcp.json"
for how in sql question mcp; do
  case $how in
    sql) req POST /v1/sql -d '{"db":"down","sql":"SELECT 1 AS x"}';;
    question) req POST "/v1/sessions/$sid/questions" -d '{"question":"how many customers?"}';;
    mcp) req POST /mcp -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' --data-binary @"$T/down_mcp.json";;
  esac
  contains "$BODY" 'cannot connect to database `shop` (Connection refused)' "$how with PostgreSQL down: the reason"
  lacks "$BODY" "127.0.0.1" "$how: no host"
  lacks "$BODY" "$PP" "$how: no port"
  lacks "$BODY" "owner" "$how: no user"
done
serve_stop
contains "$(cat "$T/down.log")" "database \`down\` at postgresql://owner@127.0.0.1:$PP/shop: cannot connect to database \`shop\` (Connection refused)" "the operator's log names the target"
lacks "$(cat "$T/down.log")" "$SECRET" "but not its password"

# the value index on PostgreSQL: 'Cork' is one customer's city, not among
# pg_stats' frequent values the plain schema text shows
expect_code 0 "schema without a question" "$CONVBI" schema --db "$DB"
lacks "$OUT" "'Cork'" "the plain schema text has no 'Cork'"
expect_code 0 "schema for a question naming a stored value" "$CONVBI" schema --db "$DB" "customers in cork"
contains "$OUT" "city: 'Cork'," "the value index grounds the city as stored"
expect_code 0 "index on PostgreSQL" "$CONVBI" index --json --db "$DB"
contains "$OUT" '"built":false' "the index built by the first use is reused"
contains "$OUT" "$T/cache/convbi/pg-shop-" "cached under XDG_CACHE_HOME/convbi"
expect_code 0 "index --rebuild with --schemas" "$CONVBI" index --json --rebuild --db "$DB" --schemas Sales
contains "$OUT" '"values":2,"columns":1,' "only the Sales schema: note's 'gift' and 'rush'"
contains "$OUT" '"built":true' "rebuilt"
PGPASSWORD=reader-secret expect_code 0 "index as the reader" "$CONVBI" index --json --db "$PG_RO_URI"
ro_index=$(printf '%s' "$OUT" | sed -n 's/.*"path":"\([^"]*\)".*/\1/p')
check "the reader's index holds nothing of the unreadable table" bash -c "test -s '$ro_index' && ! grep -aq do-not-read '$ro_index'"
# staleness, in a database of its own (pg.test_pg checksums every table of shop)
pgq() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKET" -p "$PGPORT" -U owner -d "$1" -c "$2"; }
pgq postgres "DROP DATABASE IF EXISTS cli_vindex"
pgq postgres "CREATE DATABASE cli_vindex"
pgq cli_vindex "CREATE TABLE t AS SELECT g AS n, CASE WHEN g % 2 = 0 THEN 'alpha' ELSE 'beta' END AS kind
                  FROM generate_series(1, 100) g"
VDB=$PG_URI_BASE/cli_vindex
expect_code 0 "index a database of 100 rows" "$CONVBI" index --json --db "$VDB"
contains "$OUT" '"values":2,' "alpha and beta"
pgq cli_vindex "INSERT INTO t VALUES (101, 'gamma'), (102, 'gamma')"
expect_code 0 "2 rows of 100 changed" "$CONVBI" index --json --db "$VDB"
contains "$OUT" '"built":false' "a few changed rows keep the index"
pgq cli_vindex "INSERT INTO t SELECT g, 'gamma' FROM generate_series(103, 120) g"
expect_code 0 "20 rows of 100 changed" "$CONVBI" index --json --db "$VDB"
contains "$OUT" '"values":3,' "the stale index was rebuilt with the new value"
contains "$OUT" '"built":true' "rebuilt"
# a table bigger than one column's read (200,000 rows): pg_stats' frequent
# values and a TABLESAMPLE, through the gate
pgq cli_vindex "CREATE TABLE big AS SELECT g AS n, 'mode ' || (g % 7) AS mode FROM generate_series(1, 300000) g;
                ANALYZE big"
expect_code 0 "index with a table of 300,000 rows" "$CONVBI" index --json --rebuild --db "$VDB"
contains "$OUT" '"values":10,"columns":2,"sampled":1,' "alpha, beta, gamma and the 7 modes, the modes from a sample"
contains "$OUT" '"partial":false' "within the bounds"
expect_code 0 "schema names a mode of the big table" "$CONVBI" schema --db "$VDB" "rows in mode 6"
contains "$OUT" "mode: 'mode 6'" "grounded from the sampled table"
pgq postgres "DROP DATABASE cli_vindex"
for f in "$T"/cache/convbi/*; do
  check "no password in the cache's name or content ($(basename "$f"))" \
    bash -c "! grep -aq -e '$SECRET' -e 'reader-secret' '$f' && case '$f' in *secret*) false;; esac"
done

wrong="postgresql://owner:Wr0ng-Pa55@127.0.0.1:$PGPORT/shop"
expect_code 2 "a wrong password is a usage error" "$CONVBI" ask --config "$T/config.json" --db "$wrong" "x"
contains "$ERR" "password authentication failed" "the message says why"
for f in "$T"/*; do
  [ -f "$f" ] || continue
  check "no password in $(basename "$f")" bash -c "! grep -aq -e '$SECRET' -e 'Wr0ng-Pa55' '$f'"
done
finish
