#!/usr/bin/env bash
# setup.sh -- the `node` test fixture: copies tests/node (package.json, the
# pinned package-lock.json, the test programs) to $BUILD_DIR/node and runs
# `npm ci` there from the npm registry when the installed packages do not
# match the lock.  Needs node and npm (.ci/deps installs them).
set -euo pipefail
: "${BUILD_DIR:?}" "${SOURCE_DIR:?}"
N=$BUILD_DIR/node
mkdir -p "$N"
cp "$SOURCE_DIR"/tests/node/package.json "$SOURCE_DIR"/tests/node/package-lock.json "$SOURCE_DIR"/tests/node/*.mjs "$N"/
command -v npm >/dev/null || { echo "npm is missing: run .ci/deps (it installs nodejs and npm)" >&2; exit 1; }
if ! cmp -s "$N/package-lock.json" "$N/node_modules/.package-lock.copy.json" 2>/dev/null; then
  (cd "$N" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$N/package-lock.json" "$N/node_modules/.package-lock.copy.json"
fi
echo "node packages ready in $N"
