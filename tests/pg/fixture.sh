#!/usr/bin/env bash
# tests/pg/fixture.sh -- the PostgreSQL fixture of the test suite (CTest
# FIXTURES_SETUP / FIXTURES_CLEANUP "pg").
#
#   fixture.sh setup DIR SHOP_DB [SPIDER_DIR]   start a cluster in DIR, load
#                                               the shop database (and the
#                                               Spider dev databases)
#   fixture.sh cleanup DIR                      stop the cluster
#
# After setup, DIR/env holds the connection facts the tests source:
#   PGPORT, PG_SOCKET (the private socket dir), PG_SUPER_URI (superuser
#   `owner`, password in the URI), PG_RO_URI (role `reader`, SELECT only,
#   no password in it: the tests give it through PGPASSWORD or ~/.pgpass).
# The shop database also gets a mixed-case schema "Sales" with a table
# "Orders" and a view, comments on tables and columns, and an
# unreadable table, for the introspection tests.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:?setup|cleanup}
dir=$(realpath -m "${2:?DIR}")
if [ "$cmd" = cleanup ]; then
  exec "$here/cluster.sh" stop "$dir"
fi
shop=${3:?SHOP_DB}
spider=${4:-}
port=$("$here/cluster.sh" start "$dir")
psql_() { psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U owner "$@"; }
psql_ -d postgres -c "CREATE DATABASE shop" -c "CREATE ROLE reader LOGIN PASSWORD 'reader-secret'"
"$here/sqlite2pg.sh" "$shop" > "$dir/shop.sql"
psql_ -d shop -f "$dir/shop.sql" >/dev/null 2>"$dir/shop.err" || { cat "$dir/shop.err" >&2; exit 1; }
psql_ -d shop >/dev/null <<'SQL'
COMMENT ON TABLE customers IS 'People and companies who bought at least once';
COMMENT ON COLUMN customers.segment IS 'consumer, business or wholesale';
CREATE SCHEMA "Sales";
CREATE TABLE "Sales"."Orders" ("OrderId" integer PRIMARY KEY, "Customer" bigint REFERENCES public.customers(id),
                               "Total Amount" numeric(10,2), note text);
INSERT INTO "Sales"."Orders" SELECT g, 1 + g % 50, g * 1.5, CASE WHEN g % 2 = 0 THEN 'gift' ELSE 'rush' END
  FROM generate_series(1, 200) g;
CREATE VIEW "Sales"."BigOrders" AS SELECT * FROM "Sales"."Orders" WHERE "Total Amount" > 100;
CREATE TABLE secrets (k text, v text);
INSERT INTO secrets VALUES ('api', 'do-not-read');
CREATE SCHEMA hidden;
CREATE TABLE hidden.stuff (x int);
GRANT USAGE ON SCHEMA "Sales" TO reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader;
GRANT SELECT ON ALL TABLES IN SCHEMA "Sales" TO reader;
REVOKE SELECT ON secrets FROM reader;
CREATE EXTENSION IF NOT EXISTS dblink;
ANALYZE;
SQL
if [ -n "$spider" ] && [ -d "$spider/database" ]; then
  for d in "$spider"/database/*/; do
    id=$(basename "$d")
    [ -f "$d/$id.sqlite" ] || continue
    psql_ -d postgres -c "CREATE DATABASE \"$id\"" >/dev/null
    "$here/sqlite2pg.sh" "$d/$id.sqlite" > "$dir/spider-$id.sql"
    psql_ -d "$id" -f "$dir/spider-$id.sql" >/dev/null 2>>"$dir/spider.err" || { tail -5 "$dir/spider.err" >&2; exit 1; }
    psql_ -d "$id" -c "GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader" >/dev/null
  done
fi
cat > "$dir/env" <<ENV
PGPORT=$port
PG_SOCKET=$dir
PG_SUPER_URI=postgresql://owner:owner-secret@127.0.0.1:$port/shop
PG_RO_URI=postgresql://reader@127.0.0.1:$port/shop
PG_URI_BASE=postgresql://owner:owner-secret@127.0.0.1:$port
ENV
echo "PostgreSQL test cluster on 127.0.0.1:$port ($dir)"
