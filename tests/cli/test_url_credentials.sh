#!/usr/bin/env bash
# test_url_credentials.sh -- credentials in an endpoint's URL are never
# printed (outside attack #1, finding 12).
#
# A URL with a user name and password (user:pass@) and query parameters
# (api-key, sig, token) is shown with "***" in their place -- by
# `endpoints --json`, the endpoints table, the REPL's .endpoints, the
# message of an endpoint that refuses the call (which names its URL),
# `-v` and a config error that quotes the URL -- while api-version stays.
. "$(dirname "$0")/lib.sh"
: "${SAMPLE_DB:?}"
start_fake '{"endpoints":[{"name":"a","api_key":"k-url-7c2e","deployment":"gpt-4o"}],"default_reply":"hi"}'
URL="http://bob:pw-SECRET1@127.0.0.1:$PORT_a/?api-key=SECRET2&sig=SECRET3&token=SECRET4&api-version=2024-10-21#SECRET5"
SHOWN="http://***@127.0.0.1:$PORT_a/?api-key=***&sig=***&token=***&api-version=2024-10-21#***"
printf '{"endpoints":[{"name":"a","kind":"azure","url":"%s","deployment":"gpt-4o","api_key":"k-url-7c2e"}],"retry":{"deadline_ms":3000},"state":{"path":"%s/state"}}' \
	"$URL" "$T" >"$T/c.json"
no_secret() { ! grep -q 'SECRET' "$@"; }

expect_code 0 "endpoints --json" "$CONVBI" endpoints --config "$T/c.json" --json
contains "$OUT" "\"url\":\"$SHOWN\"" "the URL is shown with *** for the password and the query's values"
check "no credential in endpoints --json" no_secret "$T/out" "$T/err"
expect_code 0 "endpoints" "$CONVBI" endpoints --config "$T/c.json"
check "no credential in the endpoints table" no_secret "$T/out" "$T/err"
printf '.endpoints\n' | "$CONVBI" repl --config "$T/c.json" --db "$SAMPLE_DB" >"$T/r.out" 2>&1
check "no credential in .endpoints" no_secret "$T/r.out"
# the request goes to the wrong path (the query sits before it): the fake says 404, and the
# message names the endpoint and its URL
expect_code 1 "an endpoint that refuses the call" "$CONVBI" llm --config "$T/c.json" -v "hello"
contains "$ERR" "($SHOWN)" "the message names the URL, redacted"
check "no credential in the message or -v" no_secret "$T/out" "$T/err"
printf '{"endpoints":[{"name":"a","kind":"azure","url":"ftp://bob:pw-SECRET1@host/?key=SECRET2","deployment":"gpt-4o","api_key":"k-url-7c2e"}]}' >"$T/bad.json"
expect_code 2 "a URL that is not http(s)" "$CONVBI" endpoints --config "$T/bad.json"
contains "$ERR" 'has url `ftp://***@host/?key=***`; it must start with http:// or https://' "the config error quotes it redacted"
check "no credential in the config error" no_secret "$T/err"
finish
