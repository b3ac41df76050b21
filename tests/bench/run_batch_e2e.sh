#!/usr/bin/env bash
# run_batch_e2e.sh -- batch end to end: the Spider dev set answered by
# `convbi eval -j 8` against three rate-limited fake endpoints (20, 15 and
# 10 requests/s: a 45/s quota; latency median 40 ms, p95 120 ms), and the
# wall time next to the bound the quotas impose (model calls / 45 s).  Two
# runs side by side: the client told the quotas (rpm per endpoint, as a
# user copies them from the portal) and not told (it learns from 429s).
#
# usage: tests/bench/run_batch_e2e.sh [-j N] [--limit N]   (BUILD_DIR, default build/;
#        ONLY=told or ONLY=untold runs one of the two)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-$src/build}
spider=${SPIDER_DIR:-$src/../shared/data/spider-dev}
jobs=8
limit=()
while [ $# -gt 0 ]; do
  case $1 in
    -j) jobs=$2; shift 2;;
    --limit) limit=(--limit "$2"); shift 2;;
    *) echo "usage: $0 [-j N] [--limit N]" >&2; exit 2;;
  esac
done
cmake --build "$build" -j2 --target convbi_cli fake_aoai >/dev/null
T=$(mktemp -d "${TMPDIR:-/tmp}/convbi-e2e.XXXXXX")
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$T"' EXIT
awk -v gold="$spider/dev_gold.sql" -v mode=oracle -v sqlmap="$T/map.json" -v intmap="$T/intent.json" \
  -f "$src/tests/support/spider_maps.awk" "$spider/dev.json"
lat='"latency_ms":{"median":40,"p95":120}'
cat > "$T/scenario.json" <<JSON
{"endpoints":[{"name":"east","api_key":"k-e2e-east","deployment":"gpt-4o","rps":20,$lat},
 {"name":"west","api_key":"k-e2e-west","deployment":"gpt-4o","rps":15,$lat},
 {"name":"north","api_key":"k-e2e-north","deployment":"gpt-4o","rps":10,$lat}],
 "rules":[{"match":"intent classifier","reply":"{\"intent\":\"data_question\"}"},
  {"match":"SQL writer[\\\\s\\\\S]*\\\\nQuestion: ([^\\\\n]*)","map_file":"map.json","default":"no map entry"},
  {"match":"answer writer","reply":"Done."}]}
JSON
run() {  # run ID LABEL RPM_EAST RPM_WEST RPM_NORTH
  rm -f "$T/ports"
  "$build/tests/fake_aoai" --scenario "$T/scenario.json" --port-file "$T/ports" 2>"$T/fake.err" &
  pid=$!
  for _ in $(seq 100); do [ -s "$T/ports" ] && break; sleep 0.05; done
  local pe pw pn
  pe=$(awk '$1=="east"{print $2}' "$T/ports"); pw=$(awk '$1=="west"{print $2}' "$T/ports"); pn=$(awk '$1=="north"{print $2}' "$T/ports")
  printf '{"endpoints":[{"name":"east","url":"http://127.0.0.1:%s","deployment":"gpt-4o","api_key":"k-e2e-east","rpm":%s},{"name":"west","url":"http://127.0.0.1:%s","deployment":"gpt-4o","api_key":"k-e2e-west","rpm":%s},{"name":"north","url":"http://127.0.0.1:%s","deployment":"gpt-4o","api_key":"k-e2e-north","rpm":%s}],"retry":{"deadline_ms":60000},"state":{"path":"%s/state-%s"}}' \
    "$pe" "$3" "$pw" "$4" "$pn" "$5" "$T" "$1" > "$T/config-$1.json"
  local t0 t1
  t0=$(date +%s.%N)
  "$build/convbi" eval --config "$T/config-$1.json" -j "$jobs" "${limit[@]}" --out "$T/eval-$1.jsonl" "$spider" >"$T/eval-$1.txt" 2>"$T/eval-$1.err" || true
  t1=$(date +%s.%N)
  local calls n429
  calls=$(grep -h -o '"requests":[0-9]*' <(for p in $pe $pw $pn; do curl -s "http://127.0.0.1:$p/_fake/stats"; echo; done) | awk -F: '{s+=$2} END {print s}')
  n429=$(grep -h -o '"rate_limited":[0-9]*' <(for p in $pe $pw $pn; do curl -s "http://127.0.0.1:$p/_fake/stats"; echo; done) | awk -F: '{s+=$2} END {print s}')
  kill $pid; wait $pid 2>/dev/null || true; pid=""
  local ex
  ex=$(grep -o '^EX [0-9.]*% ([0-9]*/[0-9]*' "$T/eval-$1.txt" || echo "EX ?")
  awk -v name="$2" -v t0="$t0" -v t1="$t1" -v calls="$calls" -v n429="$n429" -v ex="$ex" 'BEGIN {
    ok = calls - n429; bound = ok / 45.0; wall = t1 - t0
    printf "%-22s %8.1f s %10.1f s %8.1f%% %7d %6d   %s)\n", name, wall, bound, 100 * bound / wall, ok, n429, ex }'
}
printf '%-22s %10s %12s %9s %7s %6s   %s\n' "client" "wall" "quota bound" "of bound" "calls" "429s" "result"
[ "${ONLY:-}" = untold ] || run told "told the quotas (rpm)" 1200 900 600
[ "${ONLY:-}" = told ] || run untold "not told (429s only)" 0 0 0
