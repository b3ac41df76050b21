#!/usr/bin/env bash
# test_repl_tty.sh -- the REPL on a real terminal (tmux): the prompt, line
# editing with the history (Up recalls the last line), the history file,
# Ctrl-C at the prompt dropping the typed line without leaving, and .quit.
# (Ctrl-C during a question is test_repl_cancel.sh.)
. "$(dirname "$0")/lib.sh"
command -v tmux >/dev/null || { bad "tmux is not installed (bash .ci/deps installs it)"; finish; exit 1; }
K=k-tty-east-4b6d8f0a2c
I='You are the intent classifier'; S='You are the SQL writer'
start_fake '{"endpoints":[{"name":"east","api_key":"'$K'","deployment":"gpt-4o"}],
 "rules":[{"match":"'"$I"'","reply":"{\"intent\":\"data_question\"}"},
          {"match":"'"$S"'","reply":"```sql\nSELECT count(*) AS n FROM customers\n```"}],
 "default_reply":"There are 200 customers."}'
write_config "$T/c.json" east:$K
SOCK="$T/tmux.sock"
tm() { tmux -S "$SOCK" "$@"; }
screen() { tm capture-pane -t r -p; }
wait_screen() {  # wait_screen TEXT SECONDS
  for _ in $(seq $(( $2 * 20 ))); do screen | grep -qF -- "$1" && return 0; sleep 0.05; done
  return 1
}
tm new-session -d -s r -x 120 -y 40 "HOME=$T '$CONVBI' --config '$T/c.json' --db '$SAMPLE_DB' --history-file '$T/hist'; echo REPL-EXITED \$?; sleep 30"
check "the prompt appears" wait_screen "convbi>" 5
tm send-keys -t r "How many customers?" Enter
check "the answer is streamed" wait_screen "There are 200 customers." 5
check "the rows are printed as a table" wait_screen "200 |" 2
tm send-keys -t r Up
check "Up recalls the last line" wait_screen "convbi> How many customers?" 2
tm send-keys -t r C-u "something half typed"
sleep 0.2
tm send-keys -t r C-c
sleep 0.3
tm send-keys -t r ".sql off" Enter
sleep 0.3
check "Ctrl-C at the prompt does not leave the REPL" bash -c "! tmux -S '$SOCK' capture-pane -t r -p | grep -q REPL-EXITED"
tm send-keys -t r ".quit" Enter
check ".quit leaves with exit 0" wait_screen "REPL-EXITED 0" 5
check "the history file keeps the question (libedit encodes spaces)" grep -q "customers?" "$T/hist"
tm kill-server 2>/dev/null
lacks "$(cat "$T/hist" 2>/dev/null)" "$K" "no key in the history file"
finish
