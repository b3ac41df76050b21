#!/usr/bin/env bash
# run_engine_compare.sh -- convbi's engine overhead next to the same flow
# written with LangGraph.js, on the same Spider dev questions, in one run.
#
#   tests/bench/run_engine_compare.sh [--limit N] [--out FILE] [--build-dir DIR]
#
# 1. builds bench_engine and fake_aoai (cmake; BUILD_DIR or --build-dir,
#    default <repo>/build),
# 2. `npm ci` in tests/bench/langgraph when its packages do not resolve,
# 3. writes the zero-latency scenario + map.json (the same one bench_engine
#    writes for itself) into a temp dir and starts one fake_aoai on it,
# 4. runs bench_engine (it cannot take an external server, so it starts its
#    own, identical fake server) and then langgraph/flow.mjs against the
#    script's fake server, on the same first N questions of dev.json,
#    one after the other (never concurrently),
# 5. prints median / p95 CPU per question, wall time, peak RSS and the
#    ratios LangGraph.js / convbi, and writes both results and the ratios to
#    --out (default bench_engine_compare.json).
# SPIDER_DIR is the one bench_engine was compiled with (CONVBI_SPIDER_DIR).
# Everything generated goes to a temp dir that is removed at exit
# (KEEP_SCRATCH=1 keeps it).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LG="$HERE/langgraph"
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
LIMIT=-1
OUT=bench_engine_compare.json

usage() {
	echo "usage: $0 [--limit N] [--out FILE] [--build-dir DIR]" >&2
	exit 2
}
while [ $# -gt 0 ]; do
	case $1 in
	--limit) [ $# -ge 2 ] || usage; LIMIT=$2; shift 2 ;;
	--out) [ $# -ge 2 ] || usage; OUT=$2; shift 2 ;;
	--build-dir) [ $# -ge 2 ] || usage; BUILD_DIR=$2; shift 2 ;;
	-h | --help) usage ;;
	*) usage ;;
	esac
done
case $LIMIT in -1 | [0-9]*) ;; *) usage ;; esac

# ---- 1. build ----------------------------------------------------------------
echo "== build ($BUILD_DIR)"
BUILD_LOG=$(mktemp "${TMPDIR:-/tmp}/engine-compare-build-XXXXXX")
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
	cmake -S "$ROOT" -B "$BUILD_DIR" >"$BUILD_LOG" 2>&1 || { cat "$BUILD_LOG" >&2; exit 1; }
fi
cmake --build "$BUILD_DIR" -j2 --target bench_engine fake_aoai >"$BUILD_LOG" 2>&1 || { cat "$BUILD_LOG" >&2; exit 1; }
rm -f "$BUILD_LOG"
BENCH="$BUILD_DIR/tests/bench_engine"
FAKE="$BUILD_DIR/tests/fake_aoai"
for b in "$BENCH" "$FAKE"; do
	[ -x "$b" ] || { echo "$b was not built" >&2; exit 1; }
done
SPIDER_DIR=$(sed -n 's/^CONVBI_SPIDER_DIR:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt")
SPIDER_DIR=${SPIDER_DIR:-$ROOT/../shared/data/spider-dev}
[ -f "$SPIDER_DIR/dev.json" ] || { echo "no Spider dev set at $SPIDER_DIR (dev.json)" >&2; exit 1; }

# ---- 2. node modules ---------------------------------------------------------
if ! (cd "$LG" && node -e 'for (const m of ["@langchain/langgraph", "@langchain/openai", "better-sqlite3"]) require.resolve(m)' 2>/dev/null); then
	echo "== npm ci ($LG)"
	(cd "$LG" && npm ci --no-audit --no-fund --loglevel=error)
fi

# ---- 3. scenario and fake server ---------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/engine-compare-XXXXXX")
FAKE_PID=
cleanup() {
	if [ -n "$FAKE_PID" ]; then
		kill "$FAKE_PID" 2>/dev/null || true
		wait "$FAKE_PID" 2>/dev/null || true
	fi
	if [ -z "${KEEP_SCRATCH:-}" ]; then rm -rf "$TMP"; else echo "scratch kept: $TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

node "$LG/flow.mjs" --write-scenario "$TMP" --limit "$LIMIT" --spider "$SPIDER_DIR" >/dev/null

# better-sqlite3 compiles SQLite with SQLITE_DQS=0: a double-quoted string
# literal ("JetBlue Airways") is an error there, while convbi's SQLite
# accepts it as SQLite does by default.  ~22% of the Spider gold SQL has
# such literals and would spin through the repair loop on the LangGraph side
# only, so flow.mjs loads this tiny extension on each connection to turn
# DQS back on: both sides then run the same flow with the same model calls.
cat >"$TMP/dqs.c" <<'C'
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1
int sqlite3_extension_init(sqlite3 *db, char **err, const sqlite3_api_routines *api)
{
	(void)err;
	SQLITE_EXTENSION_INIT2(api);
	sqlite3_db_config(db, SQLITE_DBCONFIG_DQS_DML, 1, (int *)0);
	sqlite3_db_config(db, SQLITE_DBCONFIG_DQS_DDL, 1, (int *)0);
	return SQLITE_OK;
}
C
${CC:-cc} -O2 -shared -fPIC -I "$LG/node_modules/better-sqlite3/deps/sqlite3" -o "$TMP/dqs.so" "$TMP/dqs.c"
"$FAKE" --scenario "$TMP/scenario.json" --port-file "$TMP/ports" --log "$TMP/requests.log" >"$TMP/server.err" 2>&1 &
FAKE_PID=$!
for _ in $(seq 100); do
	[ -s "$TMP/ports" ] && break
	kill -0 "$FAKE_PID" 2>/dev/null || { cat "$TMP/server.err" >&2; exit 1; }
	sleep 0.05
done
[ -s "$TMP/ports" ] || { echo "fake_aoai wrote no port file in 5 s" >&2; cat "$TMP/server.err" >&2; exit 1; }

# ---- 4. the two benchmarks, one after the other ------------------------------
LIMIT_ARGS=()
[ "$LIMIT" = -1 ] || LIMIT_ARGS=(--limit "$LIMIT")
echo "== convbi: bench_engine ${LIMIT_ARGS[*]}"
"$BENCH" "${LIMIT_ARGS[@]}" --out "$TMP/convbi.json" 2>"$TMP/convbi.err" | grep -v '^JSON:'
echo
echo "== LangGraph.js: flow.mjs ${LIMIT_ARGS[*]} (fake server $(cut -d' ' -f2 "$TMP/ports"))"
node "$LG/flow.mjs" --port-file "$TMP/ports" --spider "$SPIDER_DIR" --questions "$TMP/questions.json" \
	--sqlite-extension "$TMP/dqs.so" --out "$TMP/langgraph.json" 2>"$TMP/langgraph.err" | grep -v '^JSON:'
echo

# ---- 5. side by side ---------------------------------------------------------
node - "$TMP/convbi.json" "$TMP/langgraph.json" "$OUT" "$LIMIT" <<'EOF'
const fs = require("fs");
const os = require("os");
const [cPath, lPath, out, limit] = process.argv.slice(2);
const c = JSON.parse(fs.readFileSync(cPath, "utf8"));
const l = JSON.parse(fs.readFileSync(lPath, "utf8"));
const mib = (k) => k / 1024;
const rows = [
	["CPU / question, median (ms)", c.cpu_ms_median, l.cpu_ms_median, 3],
	["CPU / question, p95 (ms)", c.cpu_ms_p95, l.cpu_ms_p95, 3],
	["CPU / question, mean (ms)", c.cpu_ms_mean, l.cpu_ms_mean, 3],
	["wall / question, median (ms)", c.wall_ms_median, l.wall_ms_median, 3],
	["wall / question, p95 (ms)", c.wall_ms_p95, l.wall_ms_p95, 3],
	["peak RSS (MiB)", mib(c.peak_rss_kib), mib(l.peak_rss_kib), 1],
];
const w = 30;
console.log(`${"".padEnd(w)} ${"convbi".padStart(10)} ${"LangGraph.js".padStart(13)} ${"LG ÷ convbi".padStart(12)}`);
console.log(`${"questions asked / OK".padEnd(w)} ${`${c.asked}/${c.ok}`.padStart(10)} ${`${l.asked}/${l.ok}`.padStart(13)}`);
console.log(`${"model calls (fake requests)".padEnd(w)} ${String(c.fake_requests).padStart(10)} ${String(l.fake_requests).padStart(13)}`);
const ratios = {};
for (const [name, a, b, d] of rows) {
	const r = b / a;
	ratios[name] = r;
	console.log(`${name.padEnd(w)} ${a.toFixed(d).padStart(10)} ${b.toFixed(d).padStart(13)} ${(r.toFixed(1) + "×").padStart(12)}`);
}
const targets = {
	convbi_cpu_median_under_1ms: c.cpu_ms_median < 1,
	convbi_peak_rss_under_20mib: mib(c.peak_rss_kib) < 20,
	cpu_median_ratio_at_least_10x: l.cpu_ms_median / c.cpu_ms_median >= 10,
	peak_rss_ratio_at_least_10x: l.peak_rss_kib / c.peak_rss_kib >= 10,
};
console.log("\ntargets:");
for (const [k, v] of Object.entries(targets)) console.log(`  ${v ? "met   " : "MISSED"} ${k}`);
if (c.asked !== l.asked) console.log(`warning: convbi asked ${c.asked} questions, LangGraph.js ${l.asked}`);
const combined = {
	date: new Date().toISOString(),
	limit: Number(limit),
	host: { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model, node: process.version, platform: `${os.type()} ${os.release()}` },
	convbi: c,
	langgraph: l,
	ratios_langgraph_over_convbi: {
		cpu_ms_median: l.cpu_ms_median / c.cpu_ms_median,
		cpu_ms_p95: l.cpu_ms_p95 / c.cpu_ms_p95,
		cpu_ms_mean: l.cpu_ms_mean / c.cpu_ms_mean,
		wall_ms_median: l.wall_ms_median / c.wall_ms_median,
		wall_ms_p95: l.wall_ms_p95 / c.wall_ms_p95,
		peak_rss: l.peak_rss_kib / c.peak_rss_kib,
	},
	targets,
};
fs.writeFileSync(out, JSON.stringify(combined, null, 2) + "\n");
console.log(`\nJSON: ${out}`);
EOF
if [ -s "$TMP/convbi.err" ] || [ -s "$TMP/langgraph.err" ]; then
	echo "(stderr of the runs: first lines)"
	head -n 4 "$TMP/convbi.err" | sed 's/^/  convbi: /'
	head -n 4 "$TMP/langgraph.err" | sed 's/^/  langgraph: /'
fi
