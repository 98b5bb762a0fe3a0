"""Known SQL through Python's stdlib sqlite3 module, each statement printed with its outcome.

usage: sqlite_queries.py [--go GO_FILE] [--trace-callback]

sqlite3 is imported (so libsqlite3 is mapped) before waiting for GO_FILE: a tracer that
finds the library in /proc/PID/maps can attach its uprobes meanwhile. The database is a
file in a fresh temporary directory, removed at the end. Autocommit mode
(isolation_level=None): the module adds no BEGIN/COMMIT of its own, so the statements
libsqlite3 prepares are exactly those printed. Prints JSON lines:
  {"event": "loaded", "pid": ..., "libsqlite3": PATH, "sqlite_version": ...}
  {"event": "query", "statement": TEXT, "params": [...] | null, "executions": N,
   "rows": N | null, "error_code": "SQLITE_ERROR" | null, "error": MESSAGE | null}
  {"event": "done", "queries": COUNT}
executions is how many times the statement ran (executemany steps one prepared statement
once per parameter set). The module caches prepared statements by text: a statement text
seen before is stepped again without a new sqlite3_prepare_v2 ("cached": true).
rows: affected rows for writes, returned rows for SELECTs, null for DDL.
With --trace-callback, libsqlite3's own account of what it ran (sqlite3_trace_v2, through
Connection.set_trace_callback; it runs Python inside each sqlite3_step, so it is off by
default) is printed too, one line per execution, literals expanded:
  {"event": "executed", "sql": TEXT}
"""
import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time

# (statement, parameter sets (one per execution) or None, expected rows, expected error)
QUERIES = [
    ("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)", None, None, None),
    ("INSERT INTO items VALUES (?, ?, ?)", [(1, "apple", 3), (2, "pear", 5), (3, "plum", 7)],
     3, None),
    ("SELECT id, name FROM items WHERE qty > ?", [(4,)], 2, None),
    ("UPDATE items SET qty = qty + 1 WHERE id <= 2", None, 2, None),
    ("SELECT * FROM no_such_table", None, None, "SQLITE_ERROR"),
    ("SELECT id, name FROM items WHERE qty > ?", [(0,)], 3, None),
    ("DELETE FROM items WHERE id = 3", None, 1, None),
]


def emit(**fields):
    print(json.dumps(fields), flush=True)


def mapped_libsqlite3():
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if "libsqlite3" in os.path.basename(path):
                return path
    return None


def run(conn, statement, param_sets):
    cursor = conn.cursor()
    if param_sets is None:
        cursor.execute(statement)
    elif len(param_sets) == 1:
        cursor.execute(statement, param_sets[0])
    else:
        cursor.executemany(statement, param_sets)
    if cursor.description is not None:
        return len(cursor.fetchall())
    return cursor.rowcount if cursor.rowcount >= 0 else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--go")
    parser.add_argument("--trace-callback", action="store_true")
    args = parser.parse_args()
    emit(event="loaded", pid=os.getpid(), libsqlite3=mapped_libsqlite3(),
         sqlite_version=sqlite3.sqlite_version)
    if args.go:
        deadline = time.monotonic() + 60
        while not os.path.exists(args.go):
            if time.monotonic() > deadline:
                sys.exit("go file never appeared")
            time.sleep(0.02)

    directory = tempfile.mkdtemp(prefix="scalpels-sqlite-")
    try:
        conn = sqlite3.connect(os.path.join(directory, "items.db"), isolation_level=None)
        if args.trace_callback:
            conn.set_trace_callback(lambda sql: emit(event="executed", sql=sql))
        seen = set()
        for statement, param_sets, want_rows, want_error in QUERIES:
            rows, code, error = None, None, None
            try:
                rows = run(conn, statement, param_sets)
            except sqlite3.Error as e:
                code, error = e.sqlite_errorname, str(e)
            if (rows, code) != (want_rows, want_error):
                sys.exit(f"{statement!r}: rows {rows} error {code}, "
                         f"expected {want_rows} {want_error}")
            emit(event="query", statement=statement,
                 params=None if param_sets is None else [list(p) for p in param_sets],
                 executions=len(param_sets or [None]), cached=statement in seen, rows=rows,
                 error_code=code, error=error)
            if code is None:
                seen.add(statement)
        conn.close()
    finally:
        shutil.rmtree(directory)
    emit(event="done", queries=len(QUERIES))


main()
