#!/usr/bin/env bash
# test_history_file.sh -- --history-file never overwrites a file that is
# not a history file, and never chmods one (outside attack #1, finding 3).
#
# Refused with one line and exit 2, the file untouched: a SQLite database
# (the open one and another), a file with NUL bytes, the endpoint config,
# a FIFO, a character device (/dev/null: libedit would chmod it 0600).
# Accepted, on a real terminal (tmux) so that libedit writes: libedit's
# own format and plain lines (GNU readline's), whose old lines are kept and
# whose mode stays what it was; `--history-file ''` keeps no history.
. "$(dirname "$0")/lib.sh"
: "${SAMPLE_DB:?}"
command -v tmux >/dev/null || { bad "tmux is not installed (bash .ci/deps installs it)"; finish; exit 1; }
K=k-hist-3b9d1f7a2c
start_fake '{"endpoints":[{"name":"east","api_key":"'$K'","deployment":"gpt-4o"}],"default_reply":"hi"}'
C="$T/c.json"
write_config "$C" east:$K
DB="$T/shop.db"
cp "$SAMPLE_DB" "$DB"
TO="timeout 30"
REPL=($TO "$CONVBI" --config "$C" --db "$DB")

# ---- refused, piped or not ------------------------------------------------------------------
cp "$DB" "$T/db.orig"
expect_code 2 "--history-file naming the open database" "${REPL[@]}" --history-file "$DB" </dev/null
contains "$ERR" "--history-file $DB is the database (--db), not a history file; convbi would overwrite it" "one line says why"
check "the database is unchanged" cmp -s "$DB" "$T/db.orig"
cp "$DB" "$T/other.db" && chmod 644 "$T/other.db"
expect_code 2 "--history-file naming another database" "${REPL[@]}" --history-file "$T/other.db" </dev/null
contains "$ERR" "is a SQLite database, not a history file" "says it is a database"
printf 'a\0b\n' >"$T/nul.txt"
expect_code 2 "--history-file naming a file with NUL bytes" "${REPL[@]}" --history-file "$T/nul.txt" </dev/null
contains "$ERR" "holds NUL bytes" "says why"
cp "$C" "$T/c.orig"
expect_code 2 "--history-file naming the config" "${REPL[@]}" --history-file "$C" </dev/null
contains "$ERR" "is the endpoint configuration" "names the config"
mkfifo "$T/fifo"
expect_code 2 "--history-file naming a FIFO" "${REPL[@]}" --history-file "$T/fifo" </dev/null
contains "$ERR" "is a FIFO (named pipe), not a history file" "says what it is"
expect_code 2 "--history-file naming a device" "${REPL[@]}" --history-file /dev/null </dev/null
contains "$ERR" "is a character device, not a history file" "says what it is"
contains "$ERR" "--history-file '' keeps none" "and how to keep no history"

# ---- on a terminal: refused before libedit writes; accepted files keep their lines and mode ----
NRUN=0
tm() { tmux -S "$SOCK" "$@"; }
screen() { tm capture-pane -t r -p; }
wait_screen() {  # wait_screen TEXT SECONDS
  for _ in $(seq $(( $2 * 20 ))); do screen | grep -qF -- "$1" && return 0; sleep 0.05; done
  return 1
}
# run_repl HISTORY -- a REPL on a terminal with --history-file HISTORY; types a line and .quit
# Each run gets a tmux server of its own: the last one may still be shutting down.
run_repl() {
  [ $NRUN -gt 0 ] && tm kill-server 2>/dev/null
  NRUN=$((NRUN + 1)); SOCK="$T/tmux$NRUN.sock"
  tm new-session -d -s r -x 120 -y 20 "HOME=$T '$CONVBI' --config '$C' --db '$DB' --history-file '$1'; echo REPL-EXITED \$?; sleep 30"
}
run_repl "$T/other.db"
check "on a terminal another database is refused" wait_screen "REPL-EXITED 2" 10
check "the database is unchanged" cmp -s "$T/other.db" "$DB"
check "and its mode too" test "$(stat -c %a "$T/other.db")" = 644

# recalls HISTORY WHAT LINE -- the REPL opens on HISTORY and Up recalls LINE
recalls() {
  run_repl "$1"
  check "$2 is accepted" wait_screen "convbi>" 10
  tm send-keys -t r Up
  check "its lines are read" wait_screen "$3" 3
}
printf 'SELECT 1 AS old_one\nSELECT 2 AS old_two\n' >"$T/plain_hist" && chmod 644 "$T/plain_hist"
recalls "$T/plain_hist" "a plain-lines history" old_two
tm send-keys -t r C-u "SELECT 3 AS new_three" Enter
check "the query runs" wait_screen "new_three" 5
tm send-keys -t r ".quit" Enter
check "the REPL leaves" wait_screen "REPL-EXITED 0" 5
check "the old lines are kept" grep -q 'old_one' "$T/plain_hist"
check "the new line is added" grep -q 'new_three' "$T/plain_hist"
check "the file keeps its mode (no chmod)" test "$(stat -c %a "$T/plain_hist")" = 644
check "no file is left aside" bash -c "! ls '$T' | grep -q 'plain_hist.tmp'"

printf '_HiStOrY_V2_\nSELECT\\0401\\040AS\\040from_libedit\n' >"$T/edit_hist" && chmod 640 "$T/edit_hist"
ln -s edit_hist "$T/hist_link"
recalls "$T/hist_link" "libedit's format through a link" from_libedit
tm send-keys -t r C-u ".quit" Enter
check "the REPL leaves" wait_screen "REPL-EXITED 0" 5
check "the link is still a link" test -L "$T/hist_link"
check "the file it names has the new line" grep -q 'quit' "$T/edit_hist"
check "and keeps its mode" test "$(stat -c %a "$T/edit_hist")" = 640

rm -f "$T/.convbi_history"
run_repl ""
check "--history-file '' opens the REPL" wait_screen "convbi>" 10
tm send-keys -t r ".quit" Enter
check "the REPL leaves" wait_screen "REPL-EXITED 0" 5
check "and keeps no history" test ! -e "$T/.convbi_history"
tm kill-server 2>/dev/null
finish
