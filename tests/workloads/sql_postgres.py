"""Known SQL to PostgreSQL, each statement printed with what the server said: first over one
psycopg2 connection (the simple query protocol: one Query message per statement, parameters
interpolated by the client), then over one psycopg 3 connection with server-side
parameters (the extended protocol: Parse/Bind/Describe/Execute/Sync, `$n` placeholders),
including a named prepared statement executed twice. psycopg 3 sends a statement without
parameters (its CREATE TABLE) as a simple Query: its "protocol" says so.

usage: sql_postgres.py HOST PORT USER PASSWORD DATABASE [--go GO_FILE]

With --go, waits for GO_FILE before connecting. Both connections are in autocommit mode, so
neither driver adds BEGIN/COMMIT: the server's log of each session holds exactly the
statements printed. Prints JSON lines:
  {"event": "connected", "pid": ..., "session": BACKEND_PID, "driver": "psycopg2"|"psycopg",
   "protocol": "simple"|"extended", "local_port": PORT}
  {"event": "query", "session": ..., "protocol": ..., "statement": TEXT AS SENT,
   "params": [TEXT, ...] | null, "prepared": NAME | null, "rows": N | null,
   "error_code": SQLSTATE | null, "error": MESSAGE | null}
  {"event": "done", "queries": COUNT}
rows is what the server's CommandComplete reports (null for commands without a count);
prepared is "" for the unnamed statement, psycopg's name for a prepared one.
"""
import argparse
import json
import os
import socket
import sys
import time

import psycopg
import psycopg2

# (statement, parameters or None, expected rows, expected SQLSTATE)
SIMPLE = [
    ("CREATE TEMPORARY TABLE items (id INT PRIMARY KEY, name TEXT, qty INT)", None, None, None),
    ("INSERT INTO items VALUES (1, 'apple', 3), (2, 'pear', 5), (3, 'plum', 7)", None, 3, None),
    ("INSERT INTO items VALUES (%s, %s, %s)", (4, "fig", 1), 1, None),
    ("SELECT id, name FROM items WHERE qty > %s ORDER BY id", (2,), 3, None),
    ("UPDATE items SET qty = qty + 1 WHERE id <= 2", None, 2, None),
    ("SELECT * FROM no_such_table", None, None, "42P01"),
    ("DELETE FROM items WHERE id = 4", None, 1, None),
]
# (statement, parameters, prepare, expected rows, expected SQLSTATE)
EXTENDED = [
    ("CREATE TEMPORARY TABLE items (id INT PRIMARY KEY, name TEXT, qty INT)", None, False,
     None, None),
    ("INSERT INTO items VALUES (%s, %s, %s), (%s, %s, %s)", (1, "apple", 3, 2, "pear", 5),
     False, 2, None),
    ("SELECT id, name FROM items WHERE qty > %s", (4,), False, 1, None),
    ("INSERT INTO items VALUES (%s, %s, %s)", (1, "again", 1), False, None, "23505"),
    ("UPDATE items SET qty = %s WHERE id = %s", (9, 1), True, 1, None),
    ("UPDATE items SET qty = %s WHERE id = %s", (8, 2), True, 1, None),
    ("SELECT name FROM items WHERE id = %s", (2,), False, 1, None),
]


def wait_for(go_file):
    deadline = time.monotonic() + 60
    while not os.path.exists(go_file):
        if time.monotonic() > deadline:
            sys.exit("go file never appeared")
        time.sleep(0.02)


def emit(**fields):
    print(json.dumps(fields), flush=True)


def check(sent, rows, code, want_rows, want_code):
    if (rows, code) != (want_rows, want_code):
        sys.exit(f"{sent!r}: rows {rows} SQLSTATE {code}, expected {want_rows} {want_code}")


def dollar_placeholders(statement):
    """The text psycopg 3 sends: each %s becomes $1, $2, ..."""
    parts = statement.split("%s")
    return parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], 1))


def local_port(fd):
    with socket.socket(fileno=os.dup(fd)) as sock:
        return sock.getsockname()[1]


def simple(args):
    conn = psycopg2.connect(host=args.host, port=args.port, user=args.user,
                            password=args.password, dbname=args.database)
    conn.autocommit = True
    session = conn.get_backend_pid()
    emit(event="connected", pid=os.getpid(), session=session, driver="psycopg2",
         protocol="simple", local_port=local_port(conn.fileno()))
    cursor = conn.cursor()
    for statement, params, want_rows, want_code in SIMPLE:
        sent = cursor.mogrify(statement, params).decode()
        rows, code, error = None, None, None
        try:
            cursor.execute(statement, params)
            rows = cursor.rowcount if cursor.rowcount >= 0 else None
        except psycopg2.Error as e:
            code, error = e.pgcode, e.diag.message_primary
        check(sent, rows, code, want_rows, want_code)
        emit(event="query", session=session, protocol="simple", statement=sent, params=None,
             prepared=None, rows=rows, error_code=code, error=error)
    conn.close()
    return len(SIMPLE)


def extended(args):
    conn = psycopg.connect(host=args.host, port=args.port, user=args.user,
                           password=args.password, dbname=args.database, autocommit=True)
    session = conn.info.backend_pid
    emit(event="connected", pid=os.getpid(), session=session, driver="psycopg",
         protocol="extended", local_port=local_port(conn.fileno()))
    prepared_names = {}
    for statement, params, prepare, want_rows, want_code in EXTENDED:
        rows, code, error = None, None, None
        try:
            # prepare=False keeps psycopg from preparing a statement by itself after it has
            # seen it a few times: only the marked ones are named prepared statements.
            cursor = conn.execute(statement, params, prepare=prepare)
            rows = cursor.rowcount if cursor.rowcount >= 0 else None
        except psycopg.Error as e:
            code, error = e.sqlstate, e.diag.message_primary
        sent = dollar_placeholders(statement)
        check(sent, rows, code, want_rows, want_code)
        if prepare:
            prepared_names.setdefault(sent, f"_pg3_{len(prepared_names)}")
        # Without parameters psycopg sends a simple Query.
        protocol = "extended" if params else "simple"
        emit(event="query", session=session, protocol=protocol, statement=sent,
             params=[str(p) for p in params] if params else None,
             prepared=prepared_names.get(sent, "") if params else None,
             rows=rows, error_code=code, error=error)
    conn.close()
    return len(EXTENDED)


def main():
    parser = argparse.ArgumentParser()
    for name in ("host", "port", "user", "password", "database"):
        parser.add_argument(name)
    parser.add_argument("--go")
    args = parser.parse_args()
    if args.go:
        wait_for(args.go)
    queries = simple(args) + extended(args)
    emit(event="done", queries=queries)


main()
