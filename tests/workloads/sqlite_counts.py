"""Runs each of a few known SQL statements a given number of times through Python's stdlib
sqlite3 module, on an in-memory database: a host's share of a fleet's SQL.

usage: sqlite_counts.py [NAME=COUNT...]   NAME: insert, select, update or delete

The table is created first (one CREATE TABLE), then each NAME's statement runs COUNT times,
with parameters, so the text libsqlite3 prepares is the normalized statement as written here.
Autocommit mode (isolation_level=None): the module adds no BEGIN/COMMIT of its own, so these
are all the statements libsqlite3 runs. Prints one JSON line per statement run:
  {"statement": TEXT, "executions": N}
"""
import json
import sqlite3
import sys

CREATE = "CREATE TABLE items (id INTEGER PRIMARY KEY, qty INTEGER)"
STATEMENTS = {
    "insert": ("INSERT INTO items (qty) VALUES (?)", lambda n: (n % 7,)),
    "select": ("SELECT id FROM items WHERE qty > ?", lambda n: (n % 5,)),
    "update": ("UPDATE items SET qty = qty + ? WHERE id = ?", lambda n: (1, n)),
    "delete": ("DELETE FROM items WHERE id = ?", lambda n: (n,)),
}


def main():
    counts = dict(arg.split("=") for arg in sys.argv[1:])
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute(CREATE)
    print(json.dumps({"statement": CREATE, "executions": 1}))
    for name, count in counts.items():
        statement, params = STATEMENTS[name]
        for n in range(int(count)):
            conn.execute(statement, params(n)).fetchall()
        print(json.dumps({"statement": statement, "executions": int(count)}))
    conn.close()


main()
