"""Known SQL to MariaDB/MySQL, each statement printed with what the server said: first over
one PyMySQL connection (the text protocol: COM_QUERY, parameters interpolated by the client,
as OpenStack does), then over one mysql-connector-python connection with a prepared cursor
(the binary protocol: COM_STMT_PREPARE once per statement text, COM_STMT_EXECUTE per
execution, COM_STMT_RESET/CLOSE between them).

usage: sql_mysql.py HOST PORT USER PASSWORD DATABASE [--go GO_FILE] [--tls CA_FILE]

With --tls, both connections are TLS, the server's certificate checked against CA_FILE.

With --go, waits for GO_FILE before connecting, so a tracer attached meanwhile sees the
whole connection from its handshake on. Prints JSON lines:
  {"event": "connected", "pid": ..., "session": ID, "local_port": PORT,
   "driver": "pymysql"|"mysql-connector", "protocol": "text"|"binary"}
      ID: the server's connection id, the key to its general query log. Both drivers also
      send SET NAMES / SET autocommit on connect: they are in that log, not printed here.
  {"event": "query", "session": ID, "protocol": "text"|"binary", "statement": TEXT AS SENT
   (COM_QUERY) or AS PREPARED (`?` placeholders), "params": [...] | null (binary),
   "prepared": true when this execution prepared the statement (false: re-executed),
   "rows": N | null, "error_code": "1146" | null, "error": MESSAGE | null}
  {"event": "done", "queries": COUNT}
rows is the affected-row count for writes and the row count for SELECTs. The expected
values are checked here too: a server that disagrees makes this program fail.
"""
import argparse
import json
import os
import sys
import time

import mysql.connector
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

# (statement, parameters or None for COM_QUERY, expected rows, expected errno)
BINARY = [
    ("CREATE TEMPORARY TABLE items (id INT PRIMARY KEY, name VARCHAR(32), qty INT)",
     None, 0, None),
    ("INSERT INTO items VALUES (?, ?, ?)", (1, "apple", 3), 1, None),
    ("INSERT INTO items VALUES (?, ?, ?)", (2, "pear", 5), 1, None),
    ("SELECT id, name FROM items WHERE qty > ?", (2,), 2, None),
    ("SELECT * FROM no_such_table WHERE id = ?", (1,), None, 1146),
    ("UPDATE items SET qty = ? WHERE id = ?", (9, 1), 1, None),
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
    parser.add_argument("--tls")
    args = parser.parse_args()
    if args.go:
        wait_for(args.go)

    queries = text_protocol(args) + binary_protocol(args)
    emit(event="done", queries=queries)


def check(sent, rows, errno, want_rows, want_errno):
    if (rows, errno) != (want_rows, want_errno):
        sys.exit(f"{sent!r}: rows {rows} errno {errno}, expected {want_rows} {want_errno}")


def text_protocol(args):
    # Both drivers use TLS whenever the server offers it, unless told not to.
    tls = {"ssl_ca": args.tls} if args.tls else {"ssl_disabled": True}
    conn = pymysql.connect(host=args.host, port=int(args.port), user=args.user,
                           password=args.password, database=args.database, **tls)
    session = conn.thread_id()
    emit(event="connected", pid=os.getpid(), session=session,
         local_port=conn._sock.getsockname()[1], driver="pymysql", protocol="text")
    cursor = conn.cursor()
    for statement, params, want_rows, want_errno in QUERIES:
        sent = cursor.mogrify(statement, params)
        rows, errno, error = None, None, None
        try:
            rows = cursor.execute(statement, params)
            cursor.fetchall()
        except pymysql.MySQLError as e:
            errno, error = e.args[0], e.args[1]
        check(sent, rows, errno, want_rows, want_errno)
        emit(event="query", session=session, protocol="text", statement=sent, params=None,
             prepared=False, rows=rows, error_code=None if errno is None else str(errno),
             error=error)
    conn.close()
    return len(QUERIES)


def binary_protocol(args):
    # use_pure: the protocol code is the Python one, like the rest of the workloads.
    tls = {"ssl_ca": args.tls, "ssl_verify_cert": True} if args.tls else {"ssl_disabled": True}
    conn = mysql.connector.connect(host=args.host, port=int(args.port), user=args.user,
                                   password=args.password, database=args.database,
                                   use_pure=True, **tls)
    session = conn.connection_id
    emit(event="connected", pid=os.getpid(), session=session,
         local_port=conn._socket.sock.getsockname()[1], driver="mysql-connector",
         protocol="binary")
    text = conn.cursor()
    prepared = conn.cursor(prepared=True)
    last_prepared = None
    for statement, params, want_rows, want_errno in BINARY:
        rows, errno, error = None, None, None
        try:
            if params is None:
                text.execute(statement)
                rows = text.rowcount
            else:
                prepared.execute(statement, params)
                # Not cursor.description: after a failed prepare it still describes the
                # statement before.
                if statement.startswith("SELECT"):
                    rows = len(prepared.fetchall())
                else:
                    rows = prepared.rowcount
        except mysql.connector.Error as e:
            errno, error = e.errno, e.msg
        check(statement, rows, errno, want_rows, want_errno)
        # The prepared cursor prepares a statement when its text differs from the last one
        # (closing that one first).
        newly_prepared = params is not None and statement != last_prepared
        if params is not None:
            last_prepared = statement
        emit(event="query", session=session, protocol="text" if params is None else "binary",
             statement=statement, params=None if params is None else list(params),
             prepared=newly_prepared, rows=rows,
             error_code=None if errno is None else str(errno), error=error)
    conn.close()
    return len(BINARY)


main()
