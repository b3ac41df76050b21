#!/usr/bin/env bash
# test_page.sh -- the page at GET / in headless Chromium (Debian's
# `chromium`, driven by the pinned puppeteer-core: tests/node/page_test.mjs):
# it asks a question against the fake model, waits for the done event, takes
# a screenshot (kept as $BUILD_DIR/page.png), checks the table and the
# chart's SVG, and re-runs edited SQL.  Also: the page loads nothing from another origin,
# and the vendored scripts are byte-for-byte the pinned npm packages' files.
. "$(dirname "$0")/lib.sh"
N=$BUILD_DIR/node
[ -d "$N/node_modules/vega-embed" ] || { bad "the node fixture did not run (tests/node/setup.sh)"; finish; exit 1; }
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || { bad "chromium is missing: run .ci/deps"; finish; exit 1; }
KEY=k-page-east-7d9f1b3c5e
I='You are the intent classifier'; S='You are the SQL writer'; A='You are the answer writer'
start_fake '{"endpoints":[{"name":"east","api_key":"'$KEY'","deployment":"gpt-4o","chunk_ms":10}],
 "rules":[{"match":"'"$I"'","reply":"{\"intent\":\"data_question\"}"},
          {"match":"'"$S"'","reply":"```sql\nSELECT country_code, count(*) AS n FROM customers GROUP BY 1 ORDER BY 2 DESC LIMIT 8\n```"},
          {"match":"'"$A"'","reply":"Most customers are in the United States, then Great Britain."}],
 "default_reply":"OK"}'
C=$T/config.json
write_config "$C" east:$KEY
"$CONVBI" serve --listen 127.0.0.1:0 --config "$C" --db shop="$SAMPLE_DB" 2>"$T/serve.log" &
RUN_PID=$!
for _ in $(seq 200); do PORT=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/serve.log"); [ -n "$PORT" ] && break; sleep 0.05; done
[ -n "$PORT" ] || { bad "serve did not start: $(cat "$T/serve.log")"; finish; exit 1; }
rm -f "$BUILD_DIR/page.png"
node "$N/page_test.mjs" "$CHROMIUM" "http://127.0.0.1:$PORT/" "$BUILD_DIR/page.png" > "$T/node.out" 2>&1; rc=$?
grep -v '^ok' "$T/node.out" | head -20
[ $rc = 0 ] && ok "the page in Chromium: asked, streamed, table and chart SVG, SQL re-run ($(tail -1 "$T/node.out"))" || bad "page: $(tail -1 "$T/node.out")"
s=$(stat -c %s "$BUILD_DIR/page.png" 2>/dev/null || echo 0)
[ "$s" -gt 10000 ] && ok "screenshot taken ($BUILD_DIR/page.png, $s bytes)" || bad "no screenshot ($s bytes)"

# Self-contained: every script and style comes from this server.
P=$(curl -s "http://127.0.0.1:$PORT/")
echo "$P" | grep -Eq '(src|href)="(https?:)?//' && bad "the page loads from another origin" || ok "the page loads nothing from another origin"
for f in vega.min.js vega-lite.min.js vega-embed.min.js; do
  curl -s "http://127.0.0.1:$PORT/assets/vendor/$f" > "$T/$f"
done
cmp -s "$T/vega.min.js" "$N/node_modules/vega/build/vega.min.js" && ok "vega.min.js is the pinned vega's" || bad "vega.min.js differs from the pinned package (run web/vendor.sh)"
cmp -s "$T/vega-lite.min.js" "$N/node_modules/vega-lite/build/vega-lite.min.js" && ok "vega-lite.min.js is the pinned vega-lite's" || bad "vega-lite.min.js differs (run web/vendor.sh)"
cmp -s "$T/vega-embed.min.js" "$N/node_modules/vega-embed/build/vega-embed.min.js" && ok "vega-embed.min.js is the pinned vega-embed's" || bad "vega-embed.min.js differs (run web/vendor.sh)"
CODE=$(curl -s --path-as-is -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/assets/../../README.md")
[ "$CODE" = 404 ] && ok "no path outside web/ is served" || bad "path traversal: $CODE"
lacks "$(cat "$T/node.out" "$T/serve.log")$P" "$KEY" "no key in the page or the log"
finish
