#!/usr/bin/env bash
# run.sh -- build every libFuzzer target and run each for SECONDS.
#
# usage: tests/fuzz/run.sh SECONDS [BUILD_DIR]
#
# Builds tests/fuzz/fuzz_*.c with clang into BUILD_DIR (default
# $TMPDIR/convbi-fuzz-build), with the whole library instrumented for
# coverage (-fsanitize=fuzzer-no-link) and checked by ASan and UBSan (UB
# aborts).  Each target runs on a copy of its seed corpus
# tests/fuzz/corpus/<target>/ in a temporary directory, so nothing is ever
# written into the repository.  Prints the executions of each target and
# exits non-zero if any target crashed, leaked, timed out or failed an
# oracle; the crashing input and the log are then kept and their path
# printed.
set -euo pipefail

usage() { echo "usage: $0 SECONDS [BUILD_DIR]" >&2; exit 2; }
[[ $# -ge 1 && $# -le 2 && $1 =~ ^[0-9]+$ && $1 -gt 0 ]] || usage
secs=$1
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${2:-${TMPDIR:-/tmp}/convbi-fuzz-build}
mkdir -p "$build" && build=$(cd "$build" && pwd)  # absolute: the runs happen elsewhere
cc=${CC:-clang}

flags="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
mkdir -p "$build"
cmake -S "$src" -B "$build" -DCMAKE_C_COMPILER="$cc" -DCONVBI_FUZZ=ON \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS="$flags" \
	-DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >"$build/configure.log" 2>&1 || {
	cat "$build/configure.log" >&2
	exit 1
}

targets=()
for f in "$here"/fuzz_*.c; do
	targets+=("$(basename "$f" .c)")
done
cmake --build "$build" -j2 --target "${targets[@]}"

work=$(mktemp -d "${TMPDIR:-/tmp}/convbi-fuzz.XXXXXX")
keep=0
cleanup() { if [[ $keep == 0 ]]; then rm -rf "$work"; fi; }
trap cleanup EXIT

failed=0
printf '%-16s %14s %8s  %s\n' target executions corpus result
for t in "${targets[@]}"; do
	exe=$(find "$build" -type f -name "$t" -perm -u+x | head -n 1)
	if [[ -z $exe ]]; then
		echo "$t: binary not found under $build" >&2
		failed=1
		continue
	fi
	corpus="$work/$t.corpus"
	mkdir -p "$corpus"
	if [[ -d $here/corpus/$t ]]; then
		cp -R "$here/corpus/$t/." "$corpus/"
	fi
	log="$work/$t.log"
	rc=0
	(cd "$work" && "$exe" -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
		-artifact_prefix="$work/$t-" "$corpus") >"$log" 2>&1 || rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	units=$(find "$corpus" -type f | wc -l)
	if [[ $rc == 0 ]]; then
		printf '%-16s %14s %8s  %s\n' "$t" "${execs:-?}" "$units" ok
	else
		printf '%-16s %14s %8s  %s\n' "$t" "${execs:-?}" "$units" "FAILED (exit $rc)"
		grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -n 20 >&2 || true
		failed=1
		keep=1
	fi
done
if [[ $failed != 0 ]]; then
	echo "fuzzing found a problem; logs and crashing inputs are in $work" >&2
	exit 1
fi
