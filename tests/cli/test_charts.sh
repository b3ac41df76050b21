#!/usr/bin/env bash
# test_charts.sh -- the chart each result shape gets, end to end: SQL of
# every shape runs through `convbi serve`'s /v1/sql (no model), the chart
# choice is checked here, and every spec is validated by node against the
# Vega-Lite v5 JSON schema of the pinned `vega-lite` npm package plus the
# whitelist (tests/node/chart_schema_test.mjs).  Needs the `node` fixture.
. "$(dirname "$0")/lib.sh"
N=$BUILD_DIR/node
[ -d "$N/node_modules/vega-lite" ] || { bad "the node fixture did not run (tests/node/setup.sh)"; finish; exit 1; }
echo '{"endpoints":[]}' > "$T/none.json"
"$CONVBI" serve --listen 127.0.0.1:0 --db shop="$SAMPLE_DB" 2>"$T/serve.log" &
RUN_PID=$!
for _ in $(seq 200); do PORT=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/serve.log"); [ -n "$PORT" ] && break; sleep 0.05; done
[ -n "$PORT" ] || { bad "serve did not start: $(cat "$T/serve.log")"; finish; exit 1; }
: > "$T/specs.tsv"

# chart NAME SQL WANT... -- runs SQL; the chart must contain every WANT
# (or be null when WANT is "none"); keeps the spec for the schema check.
chart() {
  local name=$1 sql=$2; shift 2
  local body; body=$(printf '{"sql":%s}' "$(printf '%s' "$sql" | sed 's/\\/\\\\/g; s/"/\\"/g; s/^/"/; s/$/"/')")
  local out; out=$(curl -s -X POST "http://127.0.0.1:$PORT/v1/sql" -d "$body")
  local spec; spec=$(printf '%s' "$out" | sed -n 's/.*"chart":\(.*\)}$/\1/p')
  if [ "$1" = none ]; then
    [ "$spec" = null ] && ok "$name: no chart" || bad "$name: wanted no chart, got ${spec:0:300} from ${out:0:200}"
    return
  fi
  for want in "$@"; do contains "$spec" "$want" "$name: chart has $want"; done
  printf '%s\t%s\n' "$name" "$spec" >> "$T/specs.tsv"
}

chart "category and number" "SELECT country_code, count(*) AS n FROM customers GROUP BY 1 ORDER BY 2 DESC LIMIT 8" \
  '"mark":{"type":"bar"' '"x":{"field":"country_code","type":"nominal"' '"y":{"field":"n","type":"quantitative"'
chart "long labels" "SELECT name || ' (long product label)' AS product, unit_price FROM products ORDER BY unit_price DESC LIMIT 7" \
  '"mark":{"type":"bar"' '"y":{"field":"product","type":"nominal"' '"x":{"field":"unit_price","type":"quantitative"'
chart "parts of a whole" "SELECT status, count(*) AS n FROM orders GROUP BY 1" '"mark":{"type":"arc"' '"theta":{"field":"n"' '"color":{"field":"status"'
chart "month and number" "SELECT substr(order_date,1,7) AS month, count(*) AS n FROM orders GROUP BY 1 ORDER BY 1" \
  '"mark":{"type":"line"' '"x":{"field":"month","type":"temporal","timeUnit":"yearmonth"'
chart "date and number" "SELECT order_date, count(*) AS n FROM orders GROUP BY 1 ORDER BY 1 LIMIT 20" '"timeUnit":"yearmonthdate"'
chart "year and number" "SELECT substr(order_date,1,4) AS year, count(*) AS n FROM orders GROUP BY 1 ORDER BY 1" '"timeUnit":"year"'
chart "more series" "SELECT substr(o.order_date,1,7) AS month, c.country_code, count(*) AS n FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.country_code IN ('US','GB') GROUP BY 1, 2 ORDER BY 1" \
  '"mark":{"type":"line"' '"color":{"field":"country_code","type":"nominal"'
chart "two categories" "SELECT c.country_code, o.status, count(*) AS n FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.country_code IN ('US','GB') GROUP BY 1, 2" \
  '"mark":{"type":"bar"' '"color":{"field":"status"' '"xOffset":{"field":"status"'
chart "two numbers" "SELECT unit_price, cost FROM products" '"mark":{"type":"point"' '"x":{"field":"unit_price","type":"quantitative"' '"y":{"field":"cost"'
chart "two numbers and a category" "SELECT unit_price, cost, CASE WHEN active THEN 'active' ELSE 'gone' END AS state FROM products" \
  '"mark":{"type":"point"' '"color":{"field":"state"'
chart "repeated categories" "SELECT c.country_code, o.id AS n FROM orders o JOIN customers c ON c.id = o.customer_id LIMIT 30" '"aggregate":"sum"'
chart "a dot in a column name" "SELECT country_code AS \"c.code\", count(*) AS \"n[1]\" FROM customers GROUP BY 1 LIMIT 8" \
  '"field":"c\\.code"' '"field":"n\\[1\\]"'
chart "a result cut by the row cap" "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM r WHERE i<2000) SELECT i, i % 7 AS m FROM r" \
  '"mark":{"type":"point"' '"title":"First 1000 of 2000 rows"' '"description":"Only the first 1000 rows are charted; the query returned 2000 rows'
chart "a result at the size cap" "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM r WHERE i<5000) SELECT printf('%.*c', 4000, 'x') || i AS label, i AS n FROM r" \
  '"mark":{"type":"bar"' '"title":"First 16 of 5000 rows"' 'a chart holds at most 1000 rows and 64 KB of values'
chart "one column" "SELECT count(*) AS n FROM customers" none
chart "text only" "SELECT name, country_code FROM customers LIMIT 5" none
chart "no rows" "SELECT country_code, count(*) FROM customers WHERE 0 GROUP BY 1" none
chart "four columns" "SELECT id, name, country_code, id FROM customers LIMIT 3" none
kill "$RUN_PID"; wait "$RUN_PID" 2>/dev/null; RUN_PID=""

node "$N/chart_schema_test.mjs" "$T/specs.tsv" > "$T/node.out" 2>&1; rc=$?
grep -v '^ok' "$T/node.out" | head -20
[ $rc = 0 ] && ok "every spec is valid Vega-Lite v5 within the whitelist ($(tail -1 "$T/node.out"))" || bad "schema check: $(tail -1 "$T/node.out")"
finish
