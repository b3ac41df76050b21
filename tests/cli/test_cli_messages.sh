#!/usr/bin/env bash
# test_cli_messages.sh -- the messages an outside tester found wanting
# (outside attack #1, finding 14, the command line's part):
# `eval --dataset foo DIR` names the unknown dataset before looking at DIR;
# `help nope` says there is no such command and exits 2; a daily quota's
# 429 (Retry-After: one day) says until which date and time, not only the
# time of day, and `endpoints` shows its cooldown in hours.
. "$(dirname "$0")/lib.sh"
K=k-msg-4d7b2a9e
start_fake '{"endpoints":[{"name":"east","api_key":"'$K'","deployment":"gpt-4o","faults":[{"kind":"daily_quota","count":-1}]}],"default_reply":"hi"}'
write_config "$T/c.json" east:$K

expect_code 2 "eval --dataset foo on a folder without dev.json" "$CONVBI" eval --dataset foo "$T"
check "the message names the dataset, not the folder" test "$ERR" = 'convbi: --dataset takes spider or bird, not `foo`'

expect_code 2 "help nope" "$CONVBI" help nope
check "one line: no such command, and where the list is" test "$ERR" = "convbi: no command nope; try convbi help"
check "no general help on stdout" test -z "$OUT"
expect_code 0 "help ask still shows ask's usage" "$CONVBI" help ask
contains "$OUT" "usage: convbi ask" "per-command help"

tomorrow=$(date -u -d '+1 day' +%F)
expect_code 1 "a call refused by a daily quota" "$CONVBI" llm --config "$T/c.json" "hello"
after=$(date -u -d '+1 day' +%F)
case "$ERR" in
  *"rate limited until $tomorrow "*|*"rate limited until $after "*) ok "the message gives tomorrow's date";;
  *) bad "the message gives no date for tomorrow ($tomorrow): $ERR";;
esac
lacks "$ERR" "$K" "and no key"
expect_code 0 "endpoints after the daily quota's 429" "$CONVBI" endpoints --config "$T/c.json"
contains "$OUT" " 24.0h " "a cooldown of a day reads in hours (attack6 F10), not 86399.9s"
finish
