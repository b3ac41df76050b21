#!/usr/bin/env bash
# vendor.sh -- copies the page's scripts (vega, vega-lite, vega-embed) from
# the npm packages pinned in tests/node/package-lock.json into
# web/assets/vendor/.  Run after changing those pins (npm ci in tests/node
# first, or pass the node_modules directory).
set -euo pipefail
cd "$(dirname "$0")/.."
M=${1:-tests/node/node_modules}
[ -d "$M/vega-embed" ] || { echo "no $M/vega-embed: run npm ci in tests/node first" >&2; exit 1; }
cp "$M/vega/build/vega.min.js" "$M/vega-lite/build/vega-lite.min.js" "$M/vega-embed/build/vega-embed.min.js" web/assets/vendor/
cp "$M/vega-lite/LICENSE" web/assets/vendor/LICENSE-vega-lite
cp "$M/vega-embed/LICENSE" web/assets/vendor/LICENSE-vega-embed
echo "vendored vega $(node -p "require('./$M/vega/package.json').version"), vega-lite $(node -p "require('./$M/vega-lite/package.json').version"), vega-embed $(node -p "require('./$M/vega-embed/package.json').version"); update web/assets/vendor/README.md"
