#!/usr/bin/env bash
# test_chart_term.sh -- the REPL's `.chart on|off`: the chart the API
# chooses, drawn in the terminal -- eighth-block bars for categories (and
# arc shares), a sparkline for a time series, a dot grid for two numbers,
# and plain ASCII when the locale is not UTF-8; `.chart off` draws nothing.
. "$(dirname "$0")/lib.sh"
KEY=k-chart-term-2b4d6f8a0c
I='You are the intent classifier'; S='You are the SQL writer'; A='You are the answer writer'
start_fake '{"endpoints":[{"name":"east","api_key":"'$KEY'","deployment":"gpt-4o"}],
 "rules":[{"match":"'"$I"'","reply":"{\"intent\":\"data_question\"}"},
          {"match":"'"$S"'[\\s\\S]*Question: .*per month","reply":"```sql\nSELECT substr(order_date,1,7) AS month, count(*) AS n FROM orders GROUP BY 1 ORDER BY 1\n```"},
          {"match":"'"$S"'[\\s\\S]*Question: .*by status","reply":"```sql\nSELECT status, count(*) AS n FROM orders GROUP BY 1\n```"},
          {"match":"'"$S"'[\\s\\S]*Question: .*price and cost","reply":"```sql\nSELECT unit_price, cost FROM products\n```"},
          {"match":"'"$S"'","reply":"```sql\nSELECT country_code, count(*) AS n FROM customers GROUP BY 1 ORDER BY 2 DESC LIMIT 8\n```"},
          {"match":"'"$A"'","reply":"Here it is."}], "default_reply":"OK"}'
C=$T/config.json
write_config "$C" east:$KEY
repl() { printf "$1" | env LC_ALL= LC_CTYPE= LANG="$2" "$CONVBI" repl --config "$C" --db "$SAMPLE_DB" 2>"$T/err"; }

R=$(repl '.chart on\ncustomers per country?\n' C.UTF-8)
contains "$R" "US ████████████████████████████████████████ 44" "the largest category gets the full bar"
contains "$R" "GB █████████████████████████▌" "a fraction ends in an eighth block"
R=$(repl '.chart on\ncustomers per country?\n' C)
contains "$R" "US ######################################## 44" "ASCII bars when the locale is not UTF-8"
lacks "$R" "█" "no block characters in ASCII mode"
R=$(repl '.chart on\norders per month?\n' C.UTF-8)
echo "$R" | grep -q '^[▁▂▃▄▅▆▇█]\{6,\}  20[0-9][0-9]-[0-9][0-9] \.\. 20[0-9][0-9]-[0-9][0-9], ' && ok "a time series is a sparkline" || bad "no sparkline: $R"
R=$(repl '.chart on\norders per month?\n' POSIX)
echo "$R" | grep -q '^[ .:=+*#-]\{6,\}  20[0-9][0-9]-' && ok "an ASCII sparkline when not UTF-8" || bad "no ASCII sparkline: $R"
R=$(repl '.chart on\norders by status?\n' en_US.UTF-8)
echo "$R" | grep -q '%)$' && ok "parts of a whole show their share" || bad "no shares: $R"
R=$(repl '.chart on\nprice and cost?\n' C.UTF-8)
contains "$R" "•" "two numbers are a dot grid"
contains "$R" "└────" "with an axis"
R=$(repl '.chart on\n.chart off\ncustomers per country?\n' C.UTF-8)
lacks "$R" "█" ".chart off draws nothing"
R=$(repl '.chart maybe\n.help\n' C.UTF-8)
contains "$(cat "$T/err")" ".chart takes on or off" "a bad argument gets one line"
contains "$R" ".chart" ".help lists .chart"

# The same chart is "chart" in ask --json and in batch JSONL.
expect_code 0 "ask --json" "$CONVBI" ask --config "$C" --db "$SAMPLE_DB" --json "customers per country?"
contains "$OUT" '"chart":{"$schema":"https://vega.github.io/schema/vega-lite/v5.json"' "ask --json has the chart"
printf 'customers per country?\norders per month?\n' > "$T/questions.txt"
expect_code 0 "batch" "$CONVBI" batch --config "$C" --db "$SAMPLE_DB" --format jsonl --out "$T/out.jsonl" "$T/questions.txt"
B=$(cat "$T/out.jsonl")
contains "$B" '"mark":{"type":"bar"' "batch JSONL has the bar chart"
contains "$B" '"mark":{"type":"line"' "batch JSONL has the line chart"
finish
