#!/usr/bin/env bash
# test_term_escape.sh -- no escape sequence from the model or the database
# reaches the terminal (outside attack #1, finding 10).
#
# The fake model puts ESC sequences, BEL and the C1 CSI (U+009B) into the
# answer sentence (printed whole and streamed), a chitchat reply, the SQL
# (echoed on the `SQL:` line and quoted by the error of a failed query), an
# explanation, a plain `llm` reply and a database value shown in every
# REPL mode.  Every one is printed with the control characters made
# visible (\x1b, \x07, \x9b) -- piped and on a real terminal (tmux, whose
# pane must show no colour the model asked for) -- while rows written to
# a file stay the data as it is.
. "$(dirname "$0")/lib.sh"
: "${SAMPLE_DB:?}"
command -v tmux >/dev/null || { bad "tmux is not installed (bash .ci/deps installs it)"; finish; exit 1; }
K=k-esc-5e8a1c3f9d
I='You are the intent classifier'; S='You are the SQL writer'; X='You are the SQL explainer'
ESC='\u001b[31m'   # what the model sends, inside JSON strings
start_fake '{"endpoints":[{"name":"east","api_key":"'$K'","deployment":"gpt-4o"}],
 "rules":[{"match":"'"$I"'[^$]*hello","reply":"{\"intent\":\"chitchat\",\"reply\":\"Hi '"$ESC"'RED chitchat\"}"},
          {"match":"'"$I"'","reply":"{\"intent\":\"data_question\"}"},
          {"match":"'"$S"'[^$]*broken","reply":"```sql\nSELECT \"bad'"$ESC"'col\" FROM customers\n```"},
          {"match":"'"$S"'","reply":"```sql\nSELECT count(*) AS n, '"'"'v'"$ESC"'x'"'"' AS v FROM customers\n```"},
          {"match":"'"$X"'","reply":"It counts '"$ESC"'explained."},
          {"match":"say escape","reply":"llm '"$ESC"'reply\u0007 done"}],
 "default_reply":"There are '"$ESC"'200\u001b]0;pwned\u0007 customers \u009b31m here."}'
C="$T/c.json"
write_config "$C" east:$K
ASK=("$CONVBI" ask --config "$C" --db "$SAMPLE_DB" --max-repairs 0)
raw_esc() { LC_ALL=C grep -q $'\x1b\|\x07\|\xc2\x9b' "$@"; }
visible() { grep -qF -- "$2" "$1"; }

# ---- piped: every text the model wrote ----------------------------------------------------
"${ASK[@]}" "How many customers?" >"$T/a.out" 2>"$T/a.err"
cat "$T/a.out" "$T/a.err" >"$T/a.all"
check "ask: no raw ESC, BEL or C1 in the output" bash -c "! LC_ALL=C grep -q \$'\\x1b\\|\\x07\\|\\xc2\\x9b' '$T/a.all'"
check "ask: the sentence shows \\x1b" visible "$T/a.out" 'There are \x1b[31m200\x1b]0;pwned\x07 customers \x9b31m here.'
check "ask: the SQL line shows \\x1b" visible "$T/a.out" "SQL: SELECT count(*) AS n, 'v\\x1b[31mx' AS v FROM customers"
check "ask: the table cell shows \\x1b" visible "$T/a.out" 'v\x1b[31mx'
"${ASK[@]}" --stream "How many customers?" >"$T/s.out" 2>&1
check "ask --stream: no raw ESC" bash -c "! LC_ALL=C grep -q \$'\\x1b\\|\\x07\\|\\xc2\\x9b' '$T/s.out'"
check "ask --stream: the streamed sentence shows \\x1b" visible "$T/s.out" 'There are \x1b[31m200\x1b]0;pwned\x07 customers \x9b31m here.'
"${ASK[@]}" "hello" >"$T/h.out" 2>&1
check "chitchat: no raw ESC" bash -c "! LC_ALL=C grep -q \$'\\x1b' '$T/h.out'"
check "chitchat: the reply shows \\x1b" visible "$T/h.out" 'Hi \x1b[31mRED chitchat'
"${ASK[@]}" "broken question" >"$T/b.out" 2>&1
check "a failed query: no raw ESC" bash -c "! LC_ALL=C grep -q \$'\\x1b' '$T/b.out'"
check "a failed query: the error quotes the SQL visibly" visible "$T/b.out" 'bad\x1b[31mcol'
"$CONVBI" llm --config "$C" "say escape" >"$T/l.out" 2>&1
check "llm: no raw ESC or BEL" bash -c "! LC_ALL=C grep -q \$'\\x1b\\|\\x07' '$T/l.out'"
check "llm: the reply shows them" visible "$T/l.out" 'llm \x1b[31mreply\x07 done'
"$CONVBI" llm --config "$C" --stream "say escape" >"$T/ls.out" 2>&1
check "llm --stream: the reply shows them" visible "$T/ls.out" 'llm \x1b[31mreply\x07 done'

cat >"$T/script" <<'EOF'
How many customers?
.why
.explain
.history
.mode line
SELECT 'line' || char(155) || char(7) AS l
EOF
"$CONVBI" repl --config "$C" --db "$SAMPLE_DB" <"$T/script" >"$T/r.out" 2>&1
check "the REPL: no raw ESC, BEL or C1 anywhere" bash -c "! LC_ALL=C grep -q \$'\\x1b\\|\\x07\\|\\xc2\\x9b' '$T/r.out'"
check ".why shows the SQL visibly" visible "$T/r.out" "SQL 1:    SELECT count(*) AS n, 'v\\x1b[31mx' AS v FROM customers"
check ".explain shows the text visibly" visible "$T/r.out" 'It counts \x1b[31mexplained.'
check ".history shows the question's answer visibly" visible "$T/r.out" 'There are \x1b[31m200'
check ".mode line shows a C1 control as \\x9b" visible "$T/r.out" 'line\x9b\x07'

# ---- rows to a file stay the data -----------------------------------------------------------
"${ASK[@]}" --format csv --out "$T/rows.csv" "How many customers?" 2>/dev/null
check "rows written to a file keep the value as it is" raw_esc "$T/rows.csv"

# ---- on a terminal: the same, and CSV/JSON rows (raw data) made visible on the screen ---------
tm() { tmux -S "$SOCK" "$@"; }
pane_has() { for _ in $(seq 200); do tm capture-pane -t r -p | grep -q "$1" && return 0; sleep 0.05; done; return 1; }
no_red() { ! grep -q $'\x1b\\[[0-9;]*31m' "$1"; }  # the model's ESC[31m was not obeyed
# in_pane SOCKET COMMAND -- runs COMMAND on a terminal of its own
in_pane() { SOCK="$T/$1"; tm new-session -d -s r -x 160 -y 30 "$2; echo EXITED \$?; sleep 30"; }
# screen_of SOCKET COMMAND [KEYS...] -- COMMAND on a terminal of its own (KEYS typed once
# it prompts); what the pane showed, with its styles, goes to $T/SOCKET.pane
screen_of() {
  local sock=$1 cmd=$2; shift 2
  in_pane "$sock" "$cmd"
  [ $# -gt 0 ] && pane_has "convbi>" && tm send-keys -t r "$@"
  pane_has "EXITED"
  tm capture-pane -t r -p -e >"$T/$sock.pane"
  tm kill-server 2>/dev/null
  check "no red text on the terminal ($sock)" no_red "$T/$sock.pane"
}
screen_of ask "'$CONVBI' ask --config '$C' --db '$SAMPLE_DB' 'How many customers?'"
check "the pane shows the sentence with \\x1b" grep -qF 'There are \x1b[31m200' "$T/ask.pane"
check "the pane shows the SQL with \\x1b" grep -qF "'v\\x1b[31mx'" "$T/ask.pane"
screen_of repl "PAGER= '$CONVBI' --config '$C' --db '$SAMPLE_DB' --history-file ''" \
  ".mode csv" Enter "SELECT char(27) || '[31mcsv' AS c" Enter ".mode json" Enter \
  "SELECT char(27) || '[31mjson' || char(155) AS j" Enter ".quit" Enter
check "CSV rows on the screen show \\x1b" grep -qF '\x1b[31mcsv' "$T/repl.pane"
check "JSON rows on the screen show the C1 control as \\x9b" grep -qF '\u001b[31mjson\x9b' "$T/repl.pane"
finish
