"""Known SQL over one PyMySQL connection, each statement printed with what the server said.

usage: sql_mysql.py HOST PORT USER PASSWORD DATABASE [--go GO_FILE]

With --go, waits for GO_FILE before connecting, so a tracer attached meanwhile sees the
whole connection from its handshake on. Prints JSON lines:
  {"event": "connected", "pid": ..., "session": ID, "local_port": PORT}   ID: the server's
      connection id, the key to its general query log (PyMySQL itself also sends SET NAMES / SET AUTOCOMMIT on
      connect: they are in that log, not printed here)
  {"event": "query", "session": ID, "statement": TEXT AS SENT, "rows": N | null,
   "error_code": "1146" | null, "error": MESSAGE | null}
  {"event": "done", "queries": COUNT}
rows is the affected-row count for writes and the row count for SELECTs. The expected
values are checked here too: a server that disagrees makes this program fail.
"""
import argparse
import json
import os
import sys
import time

import pymysql

# (statement, parameters or None, expected rows, expected errno)
QUERIES = [
    ("CREATE TEMPORARY TABLE items (id INT PRIMARY KEY, name VARCHAR(32), qty INT)",
     None, 0, None),
    ("INSERT INTO items VALUES (1, 'apple', 3), (2, 'pear', 5), (3, 'plum', 7)", None, 3, None),
    ("INSERT INTO items VALUES (%s, %s, %s)", (4, "fig", 1), 1, None),
    ("SELECT id, name FROM items WHERE qty > %s ORDER BY id", (2,), 3, None),
    ("UPDATE items SET qty = qty + 1 WHERE id <= 2", None, 2, None),
    ("SELECT COUNT(*) FROM items", None, 1, None),
    ("SELECT * FROM no_such_table", None, None, 1146),
    ("DELETE FROM items WHERE id = 4", None, 1, None),
    ("SELECT name, qty FROM items ORDER BY id", None, 3, None),
]


def wait_for(go_file):
    deadline = time.monotonic() + 60
    while not os.path.exists(go_file):
        if time.monotonic() > deadline:
            sys.exit("go file never appeared")
        time.sleep(0.02)


def emit(**fields):
    print(json.dumps(fields), flush=True)


def main():
    parser = argparse.ArgumentParser()
    for name in ("host", "port", "user", "password", "database"):
        parser.add_argument(name)
    parser.add_argument("--go")
    args = parser.parse_args()
    if args.go:
        wait_for(args.go)

    conn = pymysql.connect(host=args.host, port=int(args.port), user=args.user,
                           password=args.password, database=args.database)
    session = conn.thread_id()
    emit(event="connected", pid=os.getpid(), session=session,
         local_port=conn._sock.getsockname()[1])
    cursor = conn.cursor()
    for statement, params, want_rows, want_errno in QUERIES:
        sent = cursor.mogrify(statement, params)
        rows, errno, error = None, None, None
        try:
            rows = cursor.execute(statement, params)
            cursor.fetchall()
        except pymysql.MySQLError as e:
            errno, error = e.args[0], e.args[1]
        if (rows, errno) != (want_rows, want_errno):
            sys.exit(f"{sent!r}: rows {rows} errno {errno}, expected {want_rows} {want_errno}")
        emit(event="query", session=session, statement=sent, rows=rows,
             error_code=None if errno is None else str(errno), error=error)
    conn.close()
    emit(event="done", queries=len(QUERIES))


main()
