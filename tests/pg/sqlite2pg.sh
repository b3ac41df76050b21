#!/usr/bin/env bash
# tests/pg/sqlite2pg.sh -- a SQLite database as a PostgreSQL script.
#
#   sqlite2pg.sh FILE.sqlite > load.sql     (then: psql -f load.sql)
#
# Used by the test suite to load the sample shop database and, under the
# `spider` label, the Spider dev databases into a throw-away cluster.  For
# each table: CREATE TABLE with lower-cased names (so the unquoted names of
# SQL written for SQLite resolve the same way), a column type chosen from
# the data -- bigint when every value is an integer, double precision when
# every value is a number, text otherwise (SQLite's declared types are only
# hints; text holding only canonical integers becomes bigint, as SQLite's
# affinity compares it with numbers) -- then the rows through COPY ... CSV,
# then ANALYZE.  Primary and
# foreign keys are added last, each in a statement of its own, so a key
# the data breaks (Spider has some) is skipped with psql's error instead of
# failing the load.  Views, triggers and indexes are not converted.
set -euo pipefail
db=${1:?FILE.sqlite}
q() { sqlite3 -batch -noheader "$db" "$@"; }
ident() { local s=${1,,}; printf '"%s"' "${s//\"/\"\"}"; }

tables=$(q "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid")
echo "SET client_min_messages = warning;"
echo "\\set ON_ERROR_STOP 1"
while IFS= read -r t; do
  [ -n "$t" ] || continue
  qt=${t//\"/\"\"}
  cols=() ; defs=() ; sel=()
  while IFS='|' read -r cid name; do
    qc=${name//\"/\"\"}
    kinds=$(q "SELECT group_concat(k) FROM (SELECT DISTINCT typeof(\"$qc\") AS k FROM \"$qt\" WHERE \"$qc\" IS NOT NULL ORDER BY 1)")
    if [ "$kinds" = text ] || [ "$kinds" = integer,text ]; then
      # text that is every time a canonical integer ('42', not '042' or ''):
      # SQLite compares it with integers by affinity, PostgreSQL needs bigint
      odd=$(q "SELECT count(*) FROM \"$qt\" WHERE typeof(\"$qc\") = 'text' AND
               CAST(CAST(\"$qc\" AS INTEGER) AS TEXT) IS NOT \"$qc\"")
      [ "$odd" = 0 ] && kinds=integer
    fi
    case $kinds in
      integer|'') type=bigint ;;
      integer,real|real) type="double precision" ;;
      blob) type=text ;;
      *) type=text ;;
    esac
    [ -z "$kinds" ] && type=text
    defs+=("$(ident "$name") $type")
    if [ "$kinds" = blob ]; then sel+=("hex(\"$qc\")"); else sel+=("\"$qc\""); fi
  done < <(q "SELECT cid, name FROM pragma_table_info('$(printf '%s' "$t" | sed "s/'/''/g")') ORDER BY cid")
  printf 'CREATE TABLE %s (%s);\n' "$(ident "$t")" "$(IFS=,; echo "${defs[*]}")"
  printf "COPY %s FROM STDIN WITH (FORMAT csv, NULL '@@convbi-null@@');\n" "$(ident "$t")"
  sqlite3 -batch -noheader -csv -cmd '.nullvalue @@convbi-null@@' "$db" "SELECT $(IFS=,; echo "${sel[*]}") FROM \"$qt\""
  echo '\.'
done <<< "$tables"
echo "\\set ON_ERROR_STOP 0"
while IFS= read -r t; do
  [ -n "$t" ] || continue
  tl=$(printf '%s' "$t" | sed "s/'/''/g")
  pk=$(q "SELECT group_concat(name, '|') FROM (SELECT name FROM pragma_table_info('$tl') WHERE pk > 0 ORDER BY pk)")
  if [ -n "$pk" ]; then
    IFS='|' read -ra pks <<< "$pk"; list=()
    for c in "${pks[@]}"; do list+=("$(ident "$c")"); done
    printf 'ALTER TABLE %s ADD PRIMARY KEY (%s);\n' "$(ident "$t")" "$(IFS=,; echo "${list[*]}")"
  fi
done <<< "$tables"
while IFS= read -r t; do
  [ -n "$t" ] || continue
  tl=$(printf '%s' "$t" | sed "s/'/''/g")
  while IFS='|' read -r id ref from to; do
    [ -n "$id" ] || continue
    [ -n "$to" ] || continue
    printf 'ALTER TABLE %s ADD FOREIGN KEY (%s) REFERENCES %s (%s);\n' "$(ident "$t")" "$(ident "$from")" \
      "$(ident "$ref")" "$(ident "$to")"
  done < <(q "SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list('$tl') WHERE id IN
              (SELECT id FROM pragma_foreign_key_list('$tl') GROUP BY id HAVING count(*) = 1)")
done <<< "$tables"
echo "ANALYZE;"
