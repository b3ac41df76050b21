#!/usr/bin/env bash
# test_repl_term.sh -- the REPL on a real terminal (tmux), issue 13: Ctrl-C
# during a 20 s model call gives the prompt back within 1 s (the spinner
# shows the stage meanwhile); a result longer than the screen goes through
# the pager (less -FRX); a table wider than the screen is shown vertically
# or cut with a marker; NULL is styled, and not with NO_COLOR; Tab completes
# dot-commands, tables and columns; .edit opens $EDITOR and runs the saved
# SQL; after Ctrl-D the shell's prompt starts on its own line.
. "$(dirname "$0")/lib.sh"
command -v tmux >/dev/null || { bad "tmux is not installed (bash .ci/deps installs it)"; finish; exit 1; }
command -v less >/dev/null || { bad "less is not installed (bash .ci/deps installs it)"; finish; exit 1; }
K=k-term-8a2c4e6f1b
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
# the number of lines on screen holding TEXT
count_screen() { screen | grep -cF -- "$1"; }
cat >"$T/editor.sh" <<'EOF'
#!/bin/sh
sed -i 's/count(\*) AS n/count(*) + 1 AS edited/' "$1"
EOF
chmod +x "$T/editor.sh"
tm new-session -d -s r -x 100 -y 30 "HOME=$T EDITOR='$T/editor.sh' PAGER= '$CONVBI' --config '$T/c.json' --db '$SAMPLE_DB' --history-file '$T/hist'; echo REPL-EXITED \$?; sleep 30"
check "the prompt appears" wait_screen "convbi>" 5

# Tab completion: a dot-command, a table, a column
tm send-keys -t r ".tab" Tab
check "Tab completes a dot-command" wait_screen "convbi> .tables" 2
tm send-keys -t r C-u "SELECT regi" Tab
check "Tab completes a column" wait_screen "SELECT region" 2
tm send-keys -t r "FROM countri" Tab
check "Tab completes a table" wait_screen "FROM countries" 2
tm send-keys -t r " LIMIT 1" Enter
check "the completed SQL runs without the model" wait_screen "(1 row)" 3

# .edit: the last SQL in $EDITOR, the saved version runs
tm send-keys -t r "How many customers?" Enter
check "the question is answered" wait_screen "There are 200 customers." 5
tm send-keys -t r ".edit" Enter
check ".edit runs the edited SQL" wait_screen "| edited |" 5
check "the edited SQL gives 201" wait_screen "|    201 |" 2

# the pager: 100 rows on a 30-line screen
tm send-keys -t r "WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 100) SELECT v FROM s" Enter
check "a long result opens the pager" wait_screen "|  20 |" 3
check "the pager holds the rest" bash -c "! tmux -S '$SOCK' capture-pane -t r -p | grep -qF '(100 rows)'"
tm send-keys -t r q
check "q leaves the pager and the prompt is back" wait_screen "convbi>" 3
tm send-keys -t r ".pager off" Enter "WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 100) SELECT v FROM s" Enter
check ".pager off prints straight to the screen" wait_screen "(100 rows)" 3
tm send-keys -t r "clear" Enter C-l
sleep 0.2

# width: a table wider than 100 columns is shown vertically, or cut with a marker
W="SELECT 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' AS first_long_column, 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' AS second_long_column, 3.5 AS x, NULL AS missing"
tm send-keys -t r "$W" Enter
check "a wide table is shown vertically" wait_screen " first_long_column = aaaa" 3
check "each column on its own line" wait_screen "second_long_column = bbbb" 1
tm send-keys -t r ".fit cut" Enter "$W" Enter
check "with .fit cut a marker shows cut columns" wait_screen "| … |" 3
check "the footer says how many columns were cut" wait_screen "1 more column not shown" 1

# decimals line up; NULL is styled (colours on a terminal)
tm send-keys -t r "SELECT 1.5 AS v, NULL AS z UNION ALL SELECT 10.25, 'x' UNION ALL SELECT 3, 'y'" Enter
check "decimal points line up" wait_screen "| 10.25 |" 3
check "1.5 is padded to the point" wait_screen "|  1.5  |" 1
tm capture-pane -t r -p -e > "$T/styled"
grep -q $'\033\\[2mNULL' "$T/styled" && ok "NULL is dim on a terminal" || bad "NULL not styled: $(grep -a NULL "$T/styled" | head -3 | od -c | head)"

# Ctrl-C during a 20 s model call
curl -s -X POST --data '[{"kind":"slow_first_token","delay_ms":20000,"count":1}]' "http://127.0.0.1:$PORT_east/_fake/faults" >/dev/null
tm send-keys -t r "clear" Enter C-l
tm send-keys -t r "How many customers?" Enter
check "the spinner shows the stage while the model is slow" wait_screen "(Ctrl-C cancels)" 3
sleep 0.5
start=$(date +%s%N)
tm send-keys -t r C-c
wait_screen "convbi: canceled" 2
for _ in $(seq 100); do screen | tail -n 3 | grep -q "^convbi> *$" && break; sleep 0.01; done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ $ms -lt 1000 ] && ok "Ctrl-C gives the prompt back in ${ms} ms (the model takes 20 s)" || bad "Ctrl-C took ${ms} ms"
check "the question says canceled" wait_screen "convbi: canceled" 1
tm send-keys -t r "How many customers?" Enter
check "the REPL still answers after the cancel" wait_screen "There are 200 customers." 5
tm send-keys -t r ".quit" Enter
check ".quit leaves with exit 0" wait_screen "REPL-EXITED 0" 5
tm kill-server 2>/dev/null

# NO_COLOR: no styles at all (a server of its own: the first may still be
# shutting down)
SOCK="$T/tmux2.sock"
tm new-session -d -s r -x 100 -y 30 "HOME=$T NO_COLOR=1 '$CONVBI' --config '$T/c.json' --db '$SAMPLE_DB' --history-file '$T/hist'; echo REPL-EXITED \$?; sleep 30"
wait_screen "convbi>" 5
tm send-keys -t r "SELECT NULL AS z" Enter
check "the query ran" wait_screen "(1 row)" 10
tm capture-pane -t r -p -e > "$T/plain"
grep -q $'\033\\[[0-9;]*m' "$T/plain" && bad "NO_COLOR set, yet styles were sent" || ok "NO_COLOR: no colours"
# Ctrl-D only once readline waits at the prompt (a ^D typed while the query
# runs is taken by the terminal in cooked mode, before libedit sees it)
at_prompt() { screen | grep -v '^$' | tail -n 1 | grep -q '^convbi> *$'; }
for _ in $(seq 200); do at_prompt && break; sleep 0.05; done
sleep 0.2
tm send-keys -t r C-d
check "Ctrl-D leaves with exit 0" wait_screen "REPL-EXITED 0" 5
check "after Ctrl-D the shell's output starts on its own line" bash -c "tmux -S '$SOCK' capture-pane -t r -p | grep -q '^REPL-EXITED 0'"
tm kill-server 2>/dev/null
finish
