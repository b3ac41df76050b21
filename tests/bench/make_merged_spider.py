#!/usr/bin/env python3
"""make_merged_spider.py -- one SQLite file holding many Spider databases, for
tests/bench/context_recall (a schema of several hundred tables).

Every table of every database in tables.json becomes `<db_id>__<table>` in one
file, with its columns, declared types, primary key and foreign keys (renamed
the same way).  The databases present under database/<db_id>/<db_id>.sqlite
(the dev set's) keep their real DDL types and all their rows; the others
(tables.json describes all 166) are created empty, as realistic distractors.
Built at bench time, never committed.

usage: make_merged_spider.py SPIDER_DIR OUT.sqlite
"""
import json
import os
import sqlite3
import sys

TYPES = {"text": "TEXT", "number": "NUMERIC", "time": "DATETIME", "boolean": "BOOLEAN", "others": "TEXT"}


def q(name):
    return '"' + name.replace('"', '""') + '"'


def ddl_from_file(src, db_id, table):
    cols = src.execute("SELECT name, type, pk FROM pragma_table_info(?)", (table,)).fetchall()
    fks = src.execute('SELECT id, "table", "from", "to" FROM pragma_foreign_key_list(?) ORDER BY id, seq',
                      (table,)).fetchall()
    parts = [q(c[0]) + (" " + c[1] if c[1] else "") for c in cols]
    pk = [c[0] for c in sorted(cols, key=lambda c: c[2]) if c[2]]
    if pk:
        parts.append("PRIMARY KEY (" + ", ".join(q(c) for c in pk) + ")")
    groups = {}
    for fid, ref, frm, to in fks:
        groups.setdefault(fid, []).append((ref, frm, to))
    for g in groups.values():
        ref = g[0][0]
        tos = [t for _, _, t in g]
        refcols = "(" + ", ".join(q(t) for t in tos) + ")" if all(tos) else ""
        parts.append("FOREIGN KEY (" + ", ".join(q(f) for _, f, _ in g) + ") REFERENCES " +
                     q(db_id + "__" + ref) + refcols)
    return "CREATE TABLE " + q(db_id + "__" + table) + " (" + ", ".join(parts) + ")", [c[0] for c in cols]


def ddl_from_json(db):
    tables = db["table_names_original"]
    cols = db["column_names_original"]
    out = []
    for ti, t in enumerate(tables):
        names = [(ci, c[1]) for ci, c in enumerate(cols) if c[0] == ti]
        parts = [q(n) + " " + TYPES.get(db["column_types"][ci], "TEXT") for ci, n in names]
        pks = []
        for pk in db["primary_keys"]:
            for p in (pk if isinstance(pk, list) else [pk]):
                if cols[p][0] == ti:
                    pks.append(cols[p][1])
        if pks:
            parts.append("PRIMARY KEY (" + ", ".join(q(p) for p in pks) + ")")
        for a, b in db["foreign_keys"]:
            if cols[a][0] == ti:
                parts.append("FOREIGN KEY (" + q(cols[a][1]) + ") REFERENCES " +
                             q(db["db_id"] + "__" + tables[cols[b][0]]) + " (" + q(cols[b][1]) + ")")
        out.append("CREATE TABLE " + q(db["db_id"] + "__" + t) + " (" + ", ".join(parts) + ")")
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    spider, out = sys.argv[1], sys.argv[2]
    if os.path.exists(out):
        os.unlink(out)
    dst = sqlite3.connect(out)
    dbs = json.load(open(os.path.join(spider, "tables.json")))
    ntables = nrows = 0
    for db in dbs:
        path = os.path.join(spider, "database", db["db_id"], db["db_id"] + ".sqlite")
        if os.path.exists(path):
            src = sqlite3.connect("file:" + path + "?mode=ro", uri=True)
            src.text_factory = bytes
            names = [r[0].decode() for r in src.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid")]
            src.text_factory = str
            for t in names:
                sql, cols = ddl_from_file(src, db["db_id"], t)
                dst.execute(sql)
                src.text_factory = bytes
                rows = src.execute("SELECT " + ", ".join(q(c) for c in cols) + " FROM " + q(t)).fetchall()
                src.text_factory = str
                rows = [tuple(v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in r) for r in rows]
                dst.executemany("INSERT INTO " + q(db["db_id"] + "__" + t) + " VALUES (" +
                                ", ".join("?" * len(cols)) + ")", rows)
                ntables += 1
                nrows += len(rows)
            src.close()
        else:
            for sql in ddl_from_json(db):
                dst.execute(sql)
                ntables += 1
    dst.commit()
    dst.close()
    print("%s: %d tables, %d rows" % (out, ntables, nrows))


if __name__ == "__main__":
    main()
